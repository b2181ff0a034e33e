# Big dicts, lists, strings and sets built and dropped: the allocator sees
# pymalloc's arenas and every object above 512 bytes (dict tables, list
# arrays, long strings); with PYTHONMALLOC=malloc, every object.
import hashlib
h = hashlib.md5()
for r in range(4):
    d = {i: str(i * r) for i in range(200000)}
    l = [x * 3 for x in range(400000)]
    s = {str(x) + "-" + str(r) for x in range(100000)}
    t = ["x" * (i % 700) for i in range(30000)]
    h.update(str(len(d) + sum(l) + len(s) + sum(map(len, t))).encode())
    del d, l, s, t
lists = [[j for j in range(i % 100)] for i in range(100000)]
h.update(str(sum(map(len, lists))).encode())
print(h.hexdigest())
