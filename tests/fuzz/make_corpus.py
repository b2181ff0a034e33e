#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_heap (tests/fuzz/corpus/).

Each seed is a small program in fuzz_heap.c's input encoding that exercises
one kind of operation (or a few together), so that fuzzing starts with every
operation reachable. The encoding is described at the top of fuzz_heap.c;
OP below must match its op_table (the first index of each operation).

usage: make_corpus.py [OUT_DIR]     (default: corpus/ next to this script)
Existing seed_*.bin files in OUT_DIR are replaced; other files are kept.
"""
import os
import struct
import sys

# First op byte that op_table maps to each operation.
OP = {
    "alloc": 0, "free": 6, "realloc": 11, "aligned": 15, "calloc": 17,
    "handoff": 19, "create": 22, "destroy": 23, "reset": 24, "trim": 25,
    "check": 26, "misuse": 27, "verify": 28, "sync": 29, "probe": 30,
    "impossible": 31,
}

KiB = 1 << 10
MiB = 1 << 20

# Task numbers of a hand-off (enum task_action).
TASK = {"free": 0, "realloc": 1, "thread_free": 2, "realloc_free": 3, "wrong_frontend": 4}


def size(n):
    """read_size's encoding of exactly n bytes (n <= 64 MiB)."""
    if n < 256:
        return bytes([0, n])
    if n < 64 * KiB:
        return bytes([128]) + struct.pack("<H", n)
    if n < 2 * MiB:
        return bytes([208]) + struct.pack("<I", n)
    if n < 64 * MiB:
        return bytes([240]) + struct.pack("<I", n)
    if n == 64 * MiB:
        return bytes([255])
    raise ValueError(n)


def alignment_shift(a):
    """fuzz_heap.c's alignment_shift: log2 of the alignment byte a asks for."""
    if a < 128:
        return a % 13
    if a < 232:
        return 13 + (a - 128) % 11
    return 24 + (a - 232) % 7


def align_byte(shift):
    """The first align byte that asks for 2^shift (0 <= shift <= 30)."""
    return next(a for a in range(240) if alignment_shift(a) == shift)


def edge(index, delta_code=3):
    """A size near edge_sizes[index]: delta_code 0..15 as read_size takes it."""
    return bytes([176 + delta_code, index])


def cfg(checked=False, limit=0, region=0, reuse=0, keep=False):
    """create's configuration byte; limit/region/reuse are indices into
    create_heap's tables (region 0 = 8 MiB, 1 = the library default)."""
    return (int(checked) | limit << 1 | region << 3 | reuse << 5 | int(keep) << 7)


class Program:
    def __init__(self):
        self.b = bytearray()

    def op(self, name, *args):
        self.b.append(OP[name])
        for a in args:
            self.b += a if isinstance(a, (bytes, bytearray)) else bytes([a])
        return self

    def create(self, c=0, c2=0):
        return self.op("create", c, c2)

    def alloc(self, heap, n, via_thread=False):
        return self.op("alloc", heap, int(via_thread), size(n))

    def aligned(self, heap, shift, n):
        return self.op("aligned", heap, align_byte(shift), size(n))

    def aligned_invalid(self, heap, k, n):
        return self.op("aligned", heap, 240 + k, size(n))

    def calloc(self, heap, count, n):
        return self.op("calloc", heap, count, size(n))

    def realloc(self, slot, heap, n):
        return self.op("realloc", slot, heap, size(n))

    def free(self, slot, variant=0):
        return self.op("free", slot, variant)

    def handoff(self, slot, worker, task, n=None):
        args = [slot, worker | TASK[task] << 1]
        if n is not None:
            args.append(size(n))
        return self.op("handoff", *args)


def seeds():
    out = {}

    p = Program()
    for n in (0, 1, 15, 16, 17, 100, 255):
        p.alloc(0, n)
    for _ in range(7):
        p.free(0)
    out["alloc_free_small"] = p

    p = Program()
    for n in (256, 257, 1000, 4096, 40000, 65535, 300 * KiB, MiB, MiB + 1, 3 * MiB, 20 * MiB):
        p.alloc(0, n)
    p.op("check", 0, 0)
    for _ in range(11):
        p.free(3)
    out["alloc_free_sizes"] = p

    p = Program()
    for i in range(18):
        p.op("alloc", 0, 0, edge(i, 3))
    for i in range(18):
        p.op("alloc", 0, 0, edge(i, 8 + (i % 8)))
    p.op("check", 0, 1)
    out["alloc_edges"] = p

    p = Program()
    for _ in range(300):
        p.alloc(0, 48)
    for i in range(300):
        p.free(i % 7)
    p.op("check", 0, 0)
    out["alloc_many_free_all"] = p

    p = Program()
    p.alloc(0, 32, via_thread=True).alloc(0, 5000, via_thread=True).alloc(0, 2 * MiB, True)
    p.free(0, 1).free(0, 1).free(0, 3)
    out["thread_alloc_free"] = p

    p = Program()
    for e in range(0, 31):
        p.aligned(0, e, 1 + e * 3)
    p.op("check", 0, 0)
    for _ in range(31):
        p.free(0)
    out["aligned_all_powers"] = p

    p = Program()
    for e in (6, 7, 8, 12, 21, 22):
        p.aligned(0, e, 3 * MiB)
        p.aligned(0, e, 100)
    for _ in range(12):
        p.realloc(0, 0, 5000)
    out["aligned_then_realloc"] = p

    p = Program()
    for k in range(11):
        p.aligned_invalid(0, k, 64)
    out["aligned_invalid"] = p

    p = Program()
    for count, n in ((0, 10), (1, 0), (3, 7), (10, 100), (200, 255), (7, 40000), (1, 5 * MiB), (3, MiB)):
        p.calloc(0, count, n)
    for _ in range(4):
        p.free(1)
    for count, n in ((2, 3 * MiB), (1, 300 * KiB), (16, 16)):
        p.calloc(0, count, n)
    out["calloc_reuse"] = p

    p = Program()
    p.realloc(255, 0, 10)
    for n in (20, 100, 300, 5000, 70000, MiB, MiB + 4096, 3 * MiB, 5 * MiB, 2 * MiB, 500, 0, 17):
        p.realloc(0, 0, n)
    out["realloc_chain"] = p

    p = Program()
    for n in (1, 100, 10000, 3 * MiB):
        p.alloc(0, n)
    for i in range(4):
        p.realloc(i, 0, 0)
    p.op("verify", 0, 0, 0).op("verify", 1, 5, 0)
    out["realloc_to_zero"] = p

    p = Program()
    p.alloc(0, 2 * MiB + 100).alloc(0, 8 * MiB).free(0)
    p.realloc(0, 0, 9 * MiB).realloc(0, 0, 4 * MiB).realloc(0, 0, 12 * MiB)
    out["realloc_huge_in_place"] = p

    p = Program()
    for n in (16, 200, 3000, 70000, 3 * MiB, 64, 64, 64):
        p.alloc(0, n)
    p.handoff(0, 0, "free").handoff(0, 1, "thread_free")
    p.handoff(0, 0, "realloc", 500).handoff(0, 1, "realloc", 4 * MiB)
    p.handoff(0, 0, "realloc_free", 10).handoff(0, 1, "wrong_frontend")
    p.op("sync", 0).op("check", 0, 0)
    for _ in range(4):
        p.free(0)
    out["handoff_each_task"] = p

    p = Program()
    for _ in range(40):
        p.alloc(0, 32)
    for i in range(40):
        p.handoff(0, i & 1, "free" if i % 3 else "realloc", None if i % 3 else 64)
    p.op("sync", 1)
    for _ in range(20):
        p.alloc(0, 32)
    p.op("check", 0, 0)
    out["handoff_many_then_join"] = p

    p = Program()
    p.create(cfg(checked=True)).create(cfg(limit=1)).create(cfg(limit=2, region=1)).create(cfg(reuse=1, keep=True))
    for h in range(4):
        for n in (8, 300, 70000, MiB + 1):
            p.alloc(h, n)
    p.op("check", 0, 3).op("check", 1, 1).op("check", 2, 0).op("check", 3, 0)
    p.op("destroy", 1).op("reset", 2).op("trim", 3)
    out["four_heaps"] = p

    p = Program()
    p.create(cfg(limit=1))
    for _ in range(12):
        p.alloc(0, 300 * KiB)
    p.alloc(0, 3 * MiB)
    p.op("reset", 0)
    for _ in range(6):
        p.alloc(0, 300 * KiB)
    out["limit_exhaust_reset"] = p

    p = Program()
    p.create(cfg(limit=3))
    for _ in range(8):
        p.alloc(0, 8 * MiB)
    for _ in range(8):
        p.free(0)
    for _ in range(8):
        p.alloc(0, 7 * MiB)
    out["limit_huge_reuse"] = p

    p = Program()
    p.create(cfg(region=2, reuse=2))
    for _ in range(10):
        p.alloc(0, 3 * MiB)
    for i in range(10):
        p.free(i % 3)
    p.op("trim", 0).op("check", 0, 0)
    out["region_growth_trim"] = p

    p = Program()
    p.create(cfg(keep=True))
    for n in (16, 16, 512, 4096, 100000):
        p.alloc(0, n)
    p.op("reset", 0)
    for n in (16, 512, 100000):
        p.alloc(0, n)
    p.op("reset", 0).op("destroy", 0).alloc(0, 5)
    out["reset_keep"] = p

    p = Program()
    p.create(cfg(checked=True)).create(0)
    for n in (16, 100, 2000, 3 * MiB):
        p.alloc(0, n)
        p.alloc(1, n)
    for kind in range(8):
        p.op("misuse", kind, 0, 1)
        p.op("misuse", kind | 0x80, 1, 2)
    p.op("destroy", 1).op("misuse", 5, 0, 0)
    out["misuse_each"] = p

    p = Program()
    p.create(cfg(checked=True))
    for n in (16, 16, 16, 48, 3 * MiB, 5000):
        p.alloc(0, n)
    for slot in range(4):
        p.op("misuse", 4, 0, slot)
    for k in (6, 0x16, 0x7e, 0xf6, 0x86):
        p.op("misuse", k, 0, 0)
    out["misuse_checked"] = p

    p = Program()
    p.alloc(0, 100)
    for g in (0, 1, 0x7fffffffffff, 0x800000000000, 0xffffffffffffffff, 0x10000, 0x100000000000):
        p.op("probe", struct.pack("<Q", g))
    out["probe"] = p

    p = Program()
    p.alloc(0, 100)
    for kind in range(6):
        for sub in range(5):
            p.op("impossible", 0, kind + 6 * sub, 0)
    out["impossible"] = p

    p = Program()
    p.create(0, 1).create(0, 3).create(0, 2).alloc(0, 10).op("check", 0, 3)
    out["create_invalid_and_unnamed"] = p

    p = Program()
    p.create(cfg(checked=True, limit=2))
    for i in range(60):
        p.alloc(0, (i * 37) % 256)
        if i % 3 == 2:
            p.handoff(i, i & 1, "realloc", 100 + i)
        if i % 5 == 4:
            p.free(i)
    p.op("check", 0, 0).op("sync", 1).op("check", 0, 0)
    out["checked_mixed_threads"] = p

    p = Program()
    for i in range(20):
        p.aligned(0, 21 + (i % 10), MiB * (i % 3))
    p.op("check", 0, 0).op("reset", 0)
    for i in range(5):
        p.aligned(0, 30, 100)
    out["aligned_huge_alignments"] = p

    p = Program()
    for n in (3 * MiB, 5 * MiB, 7 * MiB):
        p.alloc(0, n)
    p.free(1).free(0)
    for count in (3, 5, 1):
        p.calloc(0, count, MiB)
    out["calloc_after_huge_free"] = p

    p = Program()
    for i in range(64):
        p.op("verify", i, i, i)
        p.alloc(0, i * 4)
        p.op("sync", i & 1)
    out["verify_sync"] = p

    p = Program()
    for i in range(8):
        p.create(cfg(checked=bool(i & 1), limit=i % 4, region=(i >> 1) % 4, reuse=i % 4, keep=bool(i & 4)))
        p.alloc(i, 1000 * i)
        p.op("destroy", i + 1)
    out["create_destroy_cycle"] = p

    p = Program()
    p.alloc(0, 64 * MiB).alloc(0, 64 * MiB).alloc(0, 64 * MiB).alloc(0, 64 * MiB).alloc(0, 1)
    p.free(0).free(0)
    out["live_cap"] = p

    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.startswith("seed_") and name.endswith(".bin"):
            os.remove(os.path.join(out_dir, name))
    for name, prog in sorted(seeds().items()):
        data = bytes(prog.b)
        if len(data) > 4096:
            raise SystemExit(f"seed {name} is {len(data)} bytes, over -max_len")
        with open(os.path.join(out_dir, f"seed_{name}.bin"), "wb") as f:
            f.write(data)
    print(f"{len(seeds())} seeds in {out_dir}")


if __name__ == "__main__":
    main()
