/*
 * scalloc_bench: the suite driver. It runs every (allocator, workload,
 * thread count) as a fresh process of that allocator's driver binary
 * (scalloc_bench_<name>, found next to this program), several times, with
 * the allocators alternating inside each repetition so that machine drift
 * falls on all of them alike. It then writes:
 *
 *   raw.csv      every run
 *   medians.csv  the median of every figure per (allocator, workload, threads)
 *   table.md     ratios to the best allocator per workload, and details
 *   charts.gp    a gnuplot script (run by run.sh) over plot/<chart>.dat
 *   log.txt      what the runs wrote to stderr
 *
 * and prints table.md. --quick runs everything once at small sizes and
 * checks that the results are sane (verification passed, operation counts
 * add up, RSS figures positive, glibc really is glibc); it exits non-zero
 * when one is not. Times are never checked.
 *
 * This program itself allocates with glibc malloc only; it links no
 * allocator under test.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ALLOCATORS 8
#define MAX_WORKLOADS 16
#define MAX_THREAD_COUNTS 16
#define MAX_KV 40

static const char *const known_allocators[] = {"scalloc", "glibc", "jemalloc", "mimalloc",
                                               "tcmalloc"};
#define NKNOWN (sizeof known_allocators / sizeof known_allocators[0])

typedef struct allocator {
    char name[32];
    char path[4096];
    char api[128];
    char version[128];
    char malloc_owner[512];
    int can_destroy;
    int sanitized;
} allocator;

typedef struct kv {
    char key[32];
    double value;
} kv;

typedef struct run_record {
    int alloc, wl, ti, rep;
    int status; /* exit status; 128+n for signal n */
    int nkv;
    kv kv[MAX_KV];
} run_record;

typedef struct median {
    int runs;
    int nkv;
    kv kv[MAX_KV];
} median;

static struct {
    int quick;
    int runs;
    unsigned threads[MAX_THREAD_COUNTS];
    int nthreads;
    char out[4096];
    char bindir[4096];
    char only_workloads[1024];
    char only_allocators[256];
    unsigned long seed;
    int timeout_s;
    char command[2048];
} opt;

static allocator allocs[MAX_ALLOCATORS];
static double load_before = NAN, load_after = NAN; /* 1-minute load averages */
static double suite_seconds;
static int nallocs;
static char workloads[MAX_WORKLOADS][32];
static char workload_what[MAX_WORKLOADS][128];
static int nworkloads;
static run_record *records;
static size_t nrecords, records_cap;
static median medians[MAX_ALLOCATORS][MAX_WORKLOADS][MAX_THREAD_COUNTS];
static int sanity_failures;

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "scalloc_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void insane(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "SANITY FAILURE: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    sanity_failures++;
}

/* In a comma-separated list (empty list: everything matches). */
static int listed(const char *list, const char *name)
{
    if (list[0] == '\0')
        return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

static double kv_get(const kv *kvs, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kvs[i].key, key) == 0)
            return kvs[i].value;
    return NAN;
}

static double med(int a, int w, int ti, const char *key)
{
    if (a < 0 || w < 0)
        return NAN;
    const median *m = &medians[a][w][ti];
    return m->runs > 0 ? kv_get(m->kv, m->nkv, key) : NAN;
}

static int alloc_index(const char *name)
{
    for (int a = 0; a < nallocs; a++)
        if (strcmp(allocs[a].name, name) == 0)
            return a;
    return -1;
}

static int workload_index(const char *name)
{
    for (int w = 0; w < nworkloads; w++)
        if (strcmp(workloads[w], name) == 0)
            return w;
    return -1;
}

/* The 1-minute load average: other work on the machine skews wall time,
 * so the report says how busy the machine was. */
static double load_average(void)
{
    double load = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load) != 1)
            load = NAN;
        fclose(f);
    }
    return load;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Runs path with argv, stdout captured into out, stderr appended to the
 * log. Returns the exit status (128 + signal when killed). */
static int run_child(char *const argv[], char *out, size_t outlen, FILE *log)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    fflush(log);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fileno(log), 2);
        close(fds[0]);
        close(fds[1]);
        alarm((unsigned)opt.timeout_s); /* survives exec: a hung run dies */
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    for (;;) {
        char buf[4096];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = (size_t)got;
        if (used + take >= outlen)
            take = outlen - used - 1;
        memcpy(out + used, buf, take);
        used += take;
    }
    out[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The value after "key\t" on its own line of out, copied into dst. */
static int info_field(const char *out, const char *key, char *dst, size_t len)
{
    size_t klen = strlen(key);
    for (const char *line = out; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t linelen = nl ? (size_t)(nl - line) : strlen(line);
        if (linelen > klen && strncmp(line, key, klen) == 0 && line[klen] == '\t') {
            size_t vlen = linelen - klen - 1;
            if (vlen >= len)
                vlen = len - 1;
            memcpy(dst, line + klen + 1, vlen);
            dst[vlen] = '\0';
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    dst[0] = '\0';
    return -1;
}

/* ------------------------------------------------------------------------ */
/* discovery                                                                */
/* ------------------------------------------------------------------------ */

static void find_bindir(const char *argv0)
{
    if (opt.bindir[0] != '\0')
        return;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(self, sizeof self, "%s", argv0);
        n = (ssize_t)strlen(self);
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(self, sizeof self, ".");
    snprintf(opt.bindir, sizeof opt.bindir, "%s", self);
}

static void discover(FILE *log)
{
    char out[8192];
    for (size_t k = 0; k < NKNOWN; k++) {
        if (!listed(opt.only_allocators, known_allocators[k]))
            continue;
        allocator *a = &allocs[nallocs];
        char path[sizeof a->path];
        int len = snprintf(path, sizeof path, "%s/scalloc_bench_%s", opt.bindir,
                           known_allocators[k]);
        if (len < 0 || (size_t)len >= sizeof path || access(path, X_OK) != 0)
            continue;
        memcpy(a->path, path, (size_t)len + 1);
        snprintf(a->name, sizeof a->name, "%s", known_allocators[k]);
        char *argv[] = {a->path, "--info", NULL};
        if (run_child(argv, out, sizeof out, log) != 0) {
            insane("%s --info failed", a->path);
            continue;
        }
        char field[64];
        info_field(out, "api", a->api, sizeof a->api);
        info_field(out, "version", a->version, sizeof a->version);
        info_field(out, "malloc_owner", a->malloc_owner, sizeof a->malloc_owner);
        info_field(out, "can_destroy", field, sizeof field);
        a->can_destroy = atoi(field);
        info_field(out, "sanitized", field, sizeof field);
        a->sanitized = atoi(field);
        /* glibc must be glibc, and scalloc must leave malloc alone. */
        if ((strcmp(a->name, "glibc") == 0 || strcmp(a->name, "scalloc") == 0) &&
            !a->sanitized && strstr(a->malloc_owner, "libc.so") == NULL)
            insane("%s: malloc comes from %s, not glibc", a->name, a->malloc_owner);
        if (nworkloads == 0) {
            char *largv[] = {a->path, "--list", NULL};
            if (run_child(largv, out, sizeof out, log) != 0)
                die("%s --list failed", a->path);
            for (char *line = strtok(out, "\n"); line != NULL && nworkloads < MAX_WORKLOADS;
                 line = strtok(NULL, "\n")) {
                char *tab = strchr(line, '\t');
                if (tab == NULL)
                    continue;
                *tab = '\0';
                if (!listed(opt.only_workloads, line))
                    continue;
                snprintf(workloads[nworkloads], sizeof workloads[0], "%s", line);
                snprintf(workload_what[nworkloads], sizeof workload_what[0], "%s", tab + 1);
                nworkloads++;
            }
        }
        nallocs++;
    }
    if (nallocs == 0)
        die("no scalloc_bench_<allocator> binaries in %s", opt.bindir);
    if (nworkloads == 0)
        die("no workloads selected");
}

/* ------------------------------------------------------------------------ */
/* running                                                                  */
/* ------------------------------------------------------------------------ */

static void parse_result(const char *out, run_record *r)
{
    const char *line = strstr(out, "result\t");
    if (line == NULL)
        return;
    line += strlen("result\t");
    while (*line != '\0' && *line != '\n' && r->nkv < MAX_KV) {
        while (*line == ' ')
            line++;
        const char *eq = strchr(line, '=');
        const char *end = line + strcspn(line, " \n");
        if (eq == NULL || eq > end)
            break;
        size_t klen = (size_t)(eq - line);
        char value[64];
        size_t vlen = (size_t)(end - eq - 1);
        if (klen < sizeof r->kv[0].key && vlen < sizeof value) {
            memcpy(value, eq + 1, vlen);
            value[vlen] = '\0';
            char *vend;
            double v = strtod(value, &vend);
            if (*vend == '\0' && vlen > 0) { /* numbers only; names are known */
                memcpy(r->kv[r->nkv].key, line, klen);
                r->kv[r->nkv].key[klen] = '\0';
                r->kv[r->nkv].value = v;
                r->nkv++;
            }
        }
        line = end;
    }
}

static int skipped(int a, int w)
{
    return strcmp(workloads[w], "destroy") == 0 && !allocs[a].can_destroy;
}

static void write_raw_header(FILE *f)
{
    fprintf(f, "run,allocator,workload,threads,status,seconds,ops,expected_ops,ops_per_s,"
               "peak_rss_kb,base_rss_kb,live_peak_kb,rss_per_live,failures,extra\n");
}

static const char *const fixed_keys[] = {
    "seconds",     "ops",          "expected_ops", "ops_per_s", "peak_rss_kb",
    "base_rss_kb", "live_peak_kb", "rss_per_live", "failures"};
#define NFIXED (sizeof fixed_keys / sizeof fixed_keys[0])

static int is_fixed(const char *key)
{
    if (strcmp(key, "threads") == 0 || strcmp(key, "seed") == 0)
        return 1;
    for (size_t i = 0; i < NFIXED; i++)
        if (strcmp(key, fixed_keys[i]) == 0)
            return 1;
    return 0;
}

static void write_extra(FILE *f, const kv *kvs, int n)
{
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (is_fixed(kvs[i].key))
            continue;
        fprintf(f, "%s%s=%.6g", first ? "" : ";", kvs[i].key, kvs[i].value);
        first = 0;
    }
}

static void write_raw(FILE *f, const run_record *r)
{
    fprintf(f, "%d,%s,%s,%u,%d", r->rep + 1, allocs[r->alloc].name, workloads[r->wl],
            opt.threads[r->ti], r->status);
    for (size_t i = 0; i < NFIXED; i++) {
        double v = kv_get(r->kv, r->nkv, fixed_keys[i]);
        if (isnan(v))
            fprintf(f, ",");
        else
            fprintf(f, ",%.6g", v);
    }
    fprintf(f, ",");
    write_extra(f, r->kv, r->nkv);
    fprintf(f, "\n");
    fflush(f);
}

/* Sanity of one run: what --quick checks, and what a full run reports. */
static void check_run(const run_record *r)
{
    const char *an = allocs[r->alloc].name, *wn = workloads[r->wl];
    unsigned t = opt.threads[r->ti];
    if (r->status != 0) {
        insane("%s %s threads=%u: exit status %d (see log.txt)", an, wn, t, r->status);
        return;
    }
    double ops = kv_get(r->kv, r->nkv, "ops"), expected = kv_get(r->kv, r->nkv, "expected_ops");
    if (isnan(ops) || ops <= 0 || ops != expected)
        insane("%s %s threads=%u: %g ops, expected %g", an, wn, t, ops, expected);
    if (!(kv_get(r->kv, r->nkv, "failures") == 0))
        insane("%s %s threads=%u: verification failures", an, wn, t);
    if (!(kv_get(r->kv, r->nkv, "seconds") > 0) || !(kv_get(r->kv, r->nkv, "ops_per_s") > 0))
        insane("%s %s threads=%u: no time measured", an, wn, t);
    if (!(kv_get(r->kv, r->nkv, "peak_rss_kb") > 0))
        insane("%s %s threads=%u: peak RSS not positive", an, wn, t);
    for (int i = 0; i < r->nkv; i++)
        if (strncmp(r->kv[i].key, "rss_", 4) == 0 && strstr(r->kv[i].key, "_kb") != NULL &&
            !(r->kv[i].value > 0))
            insane("%s %s threads=%u: %s not positive", an, wn, t, r->kv[i].key);
    double per_live = kv_get(r->kv, r->nkv, "rss_per_live");
    if (kv_get(r->kv, r->nkv, "live_peak_kb") > 0 && !(per_live > 0))
        insane("%s %s threads=%u: RSS/live not positive", an, wn, t);
}

static void run_all(FILE *raw, FILE *log)
{
    size_t total = 0, done = 0;
    for (int w = 0; w < nworkloads; w++)
        for (int a = 0; a < nallocs; a++)
            if (!skipped(a, w))
                total += (size_t)opt.runs * (size_t)opt.nthreads;
    records_cap = total;
    records = calloc(total > 0 ? total : 1, sizeof *records);
    if (records == NULL)
        die("out of memory");
    double start = (double)time(NULL);
    char out[16384];
    for (int rep = 0; rep < opt.runs; rep++) {
        for (int w = 0; w < nworkloads; w++) {
            for (int ti = 0; ti < opt.nthreads; ti++) {
                /* Rotate who goes first so that no allocator always runs
                 * right after the same neighbour or on a cold machine. */
                for (int k = 0; k < nallocs; k++) {
                    int a = (k + rep + w + ti) % nallocs;
                    if (skipped(a, w))
                        continue;
                    char threads[16], seed[32];
                    snprintf(threads, sizeof threads, "%u", opt.threads[ti]);
                    snprintf(seed, sizeof seed, "%lu", opt.seed + (unsigned long)rep);
                    char *argv[] = {allocs[a].path, workloads[w], threads,
                                    opt.quick ? "quick" : "full", seed, NULL};
                    fprintf(log, "== %s %s %s run %d\n", allocs[a].name, workloads[w], threads,
                            rep + 1);
                    run_record *r = &records[nrecords++];
                    r->alloc = a;
                    r->wl = w;
                    r->ti = ti;
                    r->rep = rep;
                    r->status = run_child(argv, out, sizeof out, log);
                    parse_result(out, r);
                    write_raw(raw, r);
                    check_run(r);
                    done++;
                }
            }
            fprintf(stderr, "[run %d/%d] %-14s done %zu/%zu, %.0f s elapsed\n", rep + 1,
                    opt.runs, workloads[w], done, total, (double)time(NULL) - start);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* medians                                                                  */
/* ------------------------------------------------------------------------ */

static void compute_medians(FILE *f)
{
    fprintf(f, "allocator,workload,threads,runs,seconds,ops_per_s,peak_rss_kb,live_peak_kb,"
               "rss_per_live,extra\n");
    double *values = calloc((size_t)opt.runs + 1, sizeof *values);
    for (int a = 0; a < nallocs; a++) {
        for (int w = 0; w < nworkloads; w++) {
            for (int ti = 0; ti < opt.nthreads; ti++) {
                median *m = &medians[a][w][ti];
                /* keys: those of the first sane run of the group */
                const run_record *first = NULL;
                for (size_t i = 0; i < nrecords; i++) {
                    const run_record *r = &records[i];
                    if (r->alloc == a && r->wl == w && r->ti == ti && r->status == 0) {
                        if (first == NULL)
                            first = r;
                        m->runs++;
                    }
                }
                if (first == NULL)
                    continue;
                for (int k = 0; k < first->nkv; k++) {
                    int n = 0;
                    for (size_t i = 0; i < nrecords; i++) {
                        const run_record *r = &records[i];
                        if (r->alloc == a && r->wl == w && r->ti == ti && r->status == 0) {
                            double v = kv_get(r->kv, r->nkv, first->kv[k].key);
                            if (!isnan(v) && n < opt.runs)
                                values[n++] = v;
                        }
                    }
                    if (n == 0)
                        continue;
                    qsort(values, (size_t)n, sizeof values[0], cmp_double);
                    double mv = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
                    snprintf(m->kv[m->nkv].key, sizeof m->kv[0].key, "%s", first->kv[k].key);
                    m->kv[m->nkv].value = mv;
                    m->nkv++;
                }
                fprintf(f, "%s,%s,%u,%d,%.6g,%.6g,%.6g,%.6g,%.6g,", allocs[a].name,
                        workloads[w], opt.threads[ti], m->runs, med(a, w, ti, "seconds"),
                        med(a, w, ti, "ops_per_s"), med(a, w, ti, "peak_rss_kb"),
                        med(a, w, ti, "live_peak_kb"), med(a, w, ti, "rss_per_live"));
                write_extra(f, m->kv, m->nkv);
                fprintf(f, "\n");
            }
        }
    }
    free(values);
}

/* ------------------------------------------------------------------------ */
/* report                                                                   */
/* ------------------------------------------------------------------------ */

/* Geometric mean over thread counts of value / best value at that count;
 * higher_better picks max or min as "best". peers_only: the best among the
 * allocators other than scalloc, for the "scalloc / best peer" column. */
static double relative(int a, int w, const char *key, int higher_better, int peers_only)
{
    int sc = alloc_index("scalloc");
    double log_sum = 0;
    int n = 0;
    for (int ti = 0; ti < opt.nthreads; ti++) {
        double v = med(a, w, ti, key);
        double best = NAN;
        for (int b = 0; b < nallocs; b++) {
            if (peers_only && b == sc)
                continue;
            double x = med(b, w, ti, key);
            if (isnan(x) || x <= 0)
                continue;
            if (isnan(best) || (higher_better ? x > best : x < best))
                best = x;
        }
        if (isnan(v) || v <= 0 || isnan(best))
            continue;
        log_sum += log(v / best);
        n++;
    }
    return n > 0 ? exp(log_sum / n) : NAN;
}

static void cell(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        fprintf(f, " – |");
    else {
        fprintf(f, " ");
        fprintf(f, fmt, v);
        fprintf(f, " |");
    }
}

static void header_row(FILE *f, const char *first, const char *last)
{
    fprintf(f, "| %s |", first);
    for (int a = 0; a < nallocs; a++)
        fprintf(f, " %s |", allocs[a].name);
    if (last != NULL)
        fprintf(f, " %s |", last);
    fprintf(f, "\n|---|");
    for (int a = 0; a < nallocs; a++)
        fprintf(f, "---:|");
    if (last != NULL)
        fprintf(f, "---:|");
    fprintf(f, "\n");
}

static void machine(FILE *f)
{
    char model[256] = "unknown CPU";
    long mem_kb = 0;
    FILE *c = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (c != NULL && fgets(line, sizeof line, c) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon != NULL) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    }
    if (c != NULL)
        fclose(c);
    FILE *m = fopen("/proc/meminfo", "r");
    while (m != NULL && fgets(line, sizeof line, m) != NULL)
        if (sscanf(line, "MemTotal: %ld", &mem_kb) == 1)
            break;
    if (m != NULL)
        fclose(m);
    struct utsname u;
    uname(&u);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    fprintf(f, "Machine: %ld cores (%s), %.0f GiB RAM, Linux %s. %s.\n\n",
            sysconf(_SC_NPROCESSORS_ONLN), model, (double)mem_kb / 1048576.0, u.release, date);
    fprintf(f, "Command: `%s` — %s, %d run%s per point (medians), thread counts", opt.command,
            opt.quick ? "quick sizes" : "full sizes", opt.runs, opt.runs > 1 ? "s" : "");
    for (int ti = 0; ti < opt.nthreads; ti++)
        fprintf(f, "%s%u", ti ? ", " : " ", opt.threads[ti]);
    fprintf(f, ". The suite took %.0f s; 1-minute load average %.2f at the start, %.2f at the "
               "end.\n\n",
            suite_seconds, load_before, load_after);
    fprintf(f, "| allocator | version | API used |\n|---|---|---|\n");
    for (int a = 0; a < nallocs; a++)
        fprintf(f, "| %s | %s | %s |\n", allocs[a].name, allocs[a].version, allocs[a].api);
    fprintf(f, "\n");
}

static void report(FILE *f)
{
    int sc = alloc_index("scalloc");
    const char *vs = sc >= 0 && nallocs > 1 ? "scalloc ÷ best peer" : NULL;
    fprintf(f, "# scalloc benchmark results\n\n");
    machine(f);

    fprintf(f, "## Throughput against the fastest (1.00 = fastest; geometric mean over the "
               "thread counts)\n\n");
    header_row(f, "workload", vs);
    for (int w = 0; w < nworkloads; w++) {
        fprintf(f, "| %s |", workloads[w]);
        for (int a = 0; a < nallocs; a++)
            cell(f, relative(a, w, "ops_per_s", 1, 0), "%.2f");
        if (vs != NULL)
            cell(f, relative(sc, w, "ops_per_s", 1, 1), "**%.2f×**");
        fprintf(f, "\n");
    }
    fprintf(f, "\n## Peak RSS against the smallest (1.00 = smallest; lower is better)\n\n");
    header_row(f, "workload", vs);
    for (int w = 0; w < nworkloads; w++) {
        fprintf(f, "| %s |", workloads[w]);
        for (int a = 0; a < nallocs; a++)
            cell(f, relative(a, w, "peak_rss_kb", 0, 0), "%.2f");
        if (vs != NULL)
            cell(f, relative(sc, w, "peak_rss_kb", 0, 1), "**%.2f×**");
        fprintf(f, "\n");
    }
    fprintf(f, "\nscalloc ÷ best peer: above 1 is faster than every peer in the first table; "
               "below 1 is smaller than every peer in the second.\n");

    fprintf(f, "\n## Per thread count\n\nEach cell: Mops/s · peak RSS MiB · peak RSS ÷ peak "
               "live bytes (where the workload has a live set; RSS taken before the workload "
               "started is subtracted first).\n");
    for (int w = 0; w < nworkloads; w++) {
        fprintf(f, "\n### %s — %s\n\n", workloads[w], workload_what[w]);
        fprintf(f, "| threads |");
        for (int a = 0; a < nallocs; a++)
            fprintf(f, " %s |", allocs[a].name);
        if (vs != NULL)
            fprintf(f, " scalloc ÷ best peer: speed | RSS |");
        fprintf(f, "\n|---:|");
        for (int a = 0; a < nallocs + (vs != NULL ? 2 : 0); a++)
            fprintf(f, "---:|");
        fprintf(f, "\n");
        for (int ti = 0; ti < opt.nthreads; ti++) {
            fprintf(f, "| %u |", opt.threads[ti]);
            for (int a = 0; a < nallocs; a++) {
                double ops = med(a, w, ti, "ops_per_s"), rss = med(a, w, ti, "peak_rss_kb");
                double per_live = med(a, w, ti, "rss_per_live");
                if (isnan(ops)) {
                    fprintf(f, " – |");
                    continue;
                }
                fprintf(f, " %.2f · %.1f", ops / 1e6, rss / 1024.0);
                if (per_live > 0)
                    fprintf(f, " · %.2f", per_live);
                fprintf(f, " |");
            }
            if (vs != NULL) {
                double best_ops = NAN, best_rss = NAN;
                for (int b = 0; b < nallocs; b++) {
                    double o = med(b, w, ti, "ops_per_s"), r = med(b, w, ti, "peak_rss_kb");
                    if (b == sc)
                        continue;
                    if (!isnan(o) && (isnan(best_ops) || o > best_ops))
                        best_ops = o;
                    if (!isnan(r) && (isnan(best_rss) || r < best_rss))
                        best_rss = r;
                }
                cell(f, med(sc, w, ti, "ops_per_s") / best_ops, "%.2f");
                cell(f, med(sc, w, ti, "peak_rss_kb") / best_rss, "%.2f");
            }
            fprintf(f, "\n");
        }
    }

    int wf = workload_index("frag");
    if (wf >= 0) {
        static const char *const phases[] = {"fill", "free90", "other", "trim", "end"};
        fprintf(f, "\n## Fragmentation: RSS (MiB) after each phase, live MiB in brackets\n\n");
        fprintf(f, "fill = 64 B blocks; free90 = 90%% freed at random; other = 512 B blocks "
                   "for half the freed bytes; trim = after each allocator's trim; end = "
                   "everything freed and trimmed. Baseline = RSS before the fill.\n\n");
        fprintf(f, "| threads | allocator | baseline |");
        for (int p = 0; p < 5; p++)
            fprintf(f, " %s |", phases[p]);
        fprintf(f, " RSS÷live after trim |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int ti = 0; ti < opt.nthreads; ti++) {
            for (int a = 0; a < nallocs; a++) {
                if (isnan(med(a, wf, ti, "rss_fill_kb")))
                    continue;
                fprintf(f, "| %u | %s | %.1f |", opt.threads[ti], allocs[a].name,
                        med(a, wf, ti, "rss_base_kb") / 1024.0);
                for (int p = 0; p < 5; p++) {
                    char rk[32], lk[32];
                    snprintf(rk, sizeof rk, "rss_%s_kb", phases[p]);
                    snprintf(lk, sizeof lk, "live_%s_kb", phases[p]);
                    fprintf(f, " %.1f (%.1f) |", med(a, wf, ti, rk) / 1024.0,
                            med(a, wf, ti, lk) / 1024.0);
                }
                double live = med(a, wf, ti, "live_trim_kb");
                fprintf(f, " %.2f |\n", live > 0 ? med(a, wf, ti, "rss_trim_kb") / live : NAN);
            }
        }
    }

    int wd = workload_index("destroy"), we = workload_index("free-each");
    if (wd >= 0 || we >= 0) {
        fprintf(f, "\n## Releasing a heap: destroy against freeing each block\n\n");
        fprintf(f, "Million blocks released per second; RSS (MiB) before the release and "
                   "after it.\n\n");
        fprintf(f, "| threads | allocator | destroy | free each | RSS before | after destroy "
                   "| after free each |\n|---:|---|---:|---:|---:|---:|---:|\n");
        for (int ti = 0; ti < opt.nthreads; ti++) {
            for (int a = 0; a < nallocs; a++) {
                fprintf(f, "| %u | %s |", opt.threads[ti], allocs[a].name);
                cell(f, med(a, wd, ti, "ops_per_s") / 1e6, "%.1f");
                cell(f, med(a, we, ti, "ops_per_s") / 1e6, "%.1f");
                double before = med(a, we, ti, "rss_before_kb");
                if (isnan(before))
                    before = med(a, wd, ti, "rss_before_kb");
                cell(f, before / 1024.0, "%.1f");
                cell(f, med(a, wd, ti, "rss_after_kb") / 1024.0, "%.1f");
                cell(f, med(a, we, ti, "rss_after_kb") / 1024.0, "%.1f");
                fprintf(f, "\n");
            }
        }
    }

    int wt = workload_index("cache-thrash"), ws = workload_index("cache-scratch");
    if ((wt >= 0 || ws >= 0) && opt.threads[0] == 1 && opt.nthreads > 1) {
        fprintf(f, "\n## False sharing: throughput at T threads ÷ the same allocator at 1 "
                   "thread\n\nThe work is fixed and split over the threads: on %ld cores the "
                   "ideal is %ld.00 from %ld threads on.\n\n",
                sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_NPROCESSORS_ONLN),
                sysconf(_SC_NPROCESSORS_ONLN));
        fprintf(f, "| workload | threads |");
        for (int a = 0; a < nallocs; a++)
            fprintf(f, " %s |", allocs[a].name);
        fprintf(f, "\n|---|---:|");
        for (int a = 0; a < nallocs; a++)
            fprintf(f, "---:|");
        fprintf(f, "\n");
        int which[2] = {wt, ws};
        for (int i = 0; i < 2; i++) {
            if (which[i] < 0)
                continue;
            for (int ti = 1; ti < opt.nthreads; ti++) {
                fprintf(f, "| %s | %u |", workloads[which[i]], opt.threads[ti]);
                for (int a = 0; a < nallocs; a++)
                    cell(f, med(a, which[i], ti, "ops_per_s") / med(a, which[i], 0, "ops_per_s"),
                         "%.2f");
                fprintf(f, "\n");
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* charts                                                                   */
/* ------------------------------------------------------------------------ */

static void write_plot_data(const char *dir)
{
    char path[8192];
    static const char *const metric[2] = {"ops_per_s", "peak_rss_kb"};
    static const char *const prefix[2] = {"throughput", "rss"};
    static const double scale[2] = {1e-6, 1.0 / 1024.0};
    for (int w = 0; w < nworkloads; w++) {
        for (int m = 0; m < 2; m++) {
            snprintf(path, sizeof path, "%s/plot/%s_%s.dat", dir, prefix[m], workloads[w]);
            FILE *f = fopen(path, "w");
            if (f == NULL)
                die("%s: %s", path, strerror(errno));
            fprintf(f, "threads");
            for (int a = 0; a < nallocs; a++)
                fprintf(f, " %s", allocs[a].name);
            fprintf(f, "\n");
            for (int ti = 0; ti < opt.nthreads; ti++) {
                fprintf(f, "%u", opt.threads[ti]);
                for (int a = 0; a < nallocs; a++) {
                    double v = med(a, w, ti, metric[m]);
                    if (isnan(v))
                        fprintf(f, " ?");
                    else
                        fprintf(f, " %.6g", v * scale[m]);
                }
                fprintf(f, "\n");
            }
            fclose(f);
        }
    }
    int wf = workload_index("frag");
    if (wf >= 0) {
        /* RSS by phase at the first thread count, one column per allocator */
        static const char *const phases[] = {"fill", "free90", "other", "trim", "end"};
        snprintf(path, sizeof path, "%s/plot/frag_phases.dat", dir);
        FILE *f = fopen(path, "w");
        if (f == NULL)
            die("%s: %s", path, strerror(errno));
        /* no header line: a histogram would draw it as an empty cluster */
        fprintf(f, "# phase live");
        for (int a = 0; a < nallocs; a++)
            fprintf(f, " %s", allocs[a].name);
        fprintf(f, "\n");
        for (int p = 0; p < 5; p++) {
            char rk[32], lk[32];
            snprintf(rk, sizeof rk, "rss_%s_kb", phases[p]);
            snprintf(lk, sizeof lk, "live_%s_kb", phases[p]);
            double live = NAN;
            for (int a = 0; a < nallocs && isnan(live); a++)
                live = med(a, wf, 0, lk);
            fprintf(f, "%s %.6g", phases[p], isnan(live) ? 0 : live / 1024.0);
            for (int a = 0; a < nallocs; a++) {
                double v = med(a, wf, 0, rk);
                if (isnan(v))
                    fprintf(f, " ?");
                else
                    fprintf(f, " %.6g", v / 1024.0);
            }
            fprintf(f, "\n");
        }
        fclose(f);
    }
}

/* A fixed gnuplot line type per allocator, whatever subset is run. */
static int line_type(const char *name)
{
    for (size_t k = 0; k < NKNOWN; k++)
        if (strcmp(name, known_allocators[k]) == 0)
            return (int)k + 1;
    return 8;
}

static void write_gnuplot(const char *dir)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/charts.gp", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    int cols = nworkloads > 6 ? 4 : 3;
    int rows = (nworkloads + cols - 1) / cols;
    fprintf(f, "# gnuplot script written by scalloc_bench; run in this directory.\n");
    fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size %d,%d font ',9'\n"
               "} else {\n"
               "  set terminal png size %d,%d\n"
               "}\n",
            cols * 420, rows * 330 + 40, cols * 420, rows * 330 + 40);
    fprintf(f, "set datafile missing '?'\nset logscale x 2\nset xtics (");
    for (int ti = 0; ti < opt.nthreads; ti++)
        fprintf(f, "%s%u", ti ? ", " : "", opt.threads[ti]);
    fprintf(f, ")\nset xrange [%g:%g]\nset xlabel 'threads'\nset grid\n"
               "set key top left font ',8'\nset yrange [0:*]\n",
            opt.threads[0] * 0.8, opt.threads[opt.nthreads - 1] * 1.25);
    static const char *const prefix[2] = {"throughput", "rss"};
    static const char *const metric[2] = {"ops_per_s", "peak_rss_kb"};
    static const char *const ylabel[2] = {"Mops/s", "peak RSS MiB"};
    static const char *const title[2] = {"Throughput (higher is better)",
                                         "Peak RSS (lower is better)"};
    for (int m = 0; m < 2; m++) {
        fprintf(f, "set output '%s.png'\nset ylabel '%s'\n", prefix[m], ylabel[m]);
        fprintf(f, "set multiplot layout %d,%d title \"scalloc benchmark: %s — %ld cores\"\n",
                rows, cols, title[m], sysconf(_SC_NPROCESSORS_ONLN));
        for (int w = 0; w < nworkloads; w++) {
            /* destroy rates differ by orders of magnitude between allocators */
            int log_y = m == 0 && strcmp(workloads[w], "destroy") == 0;
            if (log_y)
                fprintf(f, "set logscale y\nset yrange [*:*]\n");
            fprintf(f, "set title '%s%s'\nplot", workloads[w], log_y ? " (log scale)" : "");
            int lines = 0;
            for (int a = 0; a < nallocs; a++) {
                int has_data = 0;
                for (int ti = 0; ti < opt.nthreads; ti++)
                    has_data |= !isnan(med(a, w, ti, metric[m]));
                if (!has_data)
                    continue;
                /* one colour per allocator in every panel; scalloc bolder */
                fprintf(f, "%s 'plot/%s_%s.dat' using 1:%d with linespoints lt %d lw %d "
                           "title '%s'",
                        lines++ ? "," : "", prefix[m], workloads[w], a + 2,
                        line_type(allocs[a].name), strcmp(allocs[a].name, "scalloc") ? 1 : 3,
                        allocs[a].name);
            }
            /* a panel without data still needs a plot to keep the layout */
            fprintf(f, "%s\n", lines ? "" : " NaN notitle");
            if (log_y)
                fprintf(f, "unset logscale y\nset yrange [0:*]\n");
        }
        fprintf(f, "unset multiplot\n");
    }
    if (workload_index("frag") >= 0) {
        fprintf(f, "reset\n"
                   "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
                   "  set terminal pngcairo size 800,500 font ',10'\n"
                   "} else {\n"
                   "  set terminal png size 800,500\n"
                   "}\n"
                   "set output 'fragmentation.png'\nset datafile missing '?'\n"
                   "set title 'Fragmentation: RSS after each phase, %u thread(s)'\n"
                   "set ylabel 'MiB'\nset yrange [0:*]\nset grid\n"
                   "set key outside right top Left reverse width 2\n"
                   "set style data histogram\nset style histogram cluster gap 1\n"
                   "set style fill solid 0.8 border -1\n"
                   "plot 'plot/frag_phases.dat' using 2:xtic(1) title 'live' lc rgb 'gray'",
                opt.threads[0]);
        for (int a = 0; a < nallocs; a++)
            fprintf(f, ", '' using %d title '%s' lt %d", a + 3, allocs[a].name,
                    line_type(allocs[a].name));
        fprintf(f, "\n");
    }
    fclose(f);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: scalloc_bench [--quick] [--out DIR] [--runs N] [--threads 1,2,4,8,16]\n"
            "                     [--workloads a,b] [--allocators a,b] [--bindir DIR]\n"
            "                     [--seed N] [--timeout S] [--command TEXT]\n");
    exit(64);
}

static void parse_threads(const char *list)
{
    opt.nthreads = 0;
    char *copy = strdup(list);
    for (char *tok = strtok(copy, ","); tok != NULL; tok = strtok(NULL, ",")) {
        long t = strtol(tok, NULL, 10);
        if (t < 1 || t > 256 || opt.nthreads == MAX_THREAD_COUNTS)
            usage();
        opt.threads[opt.nthreads++] = (unsigned)t;
    }
    free(copy);
    if (opt.nthreads == 0)
        usage();
}

int main(int argc, char **argv)
{
    opt.runs = -1;
    opt.seed = 1;
    opt.timeout_s = -1;
    const char *threads = NULL;
    snprintf(opt.out, sizeof opt.out, "bench-results");
    size_t cl = 0;
    for (int i = 0; i < argc && cl < sizeof opt.command - 1; i++)
        cl += (size_t)snprintf(opt.command + cl, sizeof opt.command - cl, "%s%s", i ? " " : "",
                               argv[i]);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--quick") == 0) {
            opt.quick = 1;
            continue;
        }
        if (val == NULL)
            usage();
        i++;
        if (strcmp(arg, "--out") == 0)
            snprintf(opt.out, sizeof opt.out, "%s", val);
        else if (strcmp(arg, "--runs") == 0)
            opt.runs = atoi(val);
        else if (strcmp(arg, "--threads") == 0)
            threads = val;
        else if (strcmp(arg, "--workloads") == 0)
            snprintf(opt.only_workloads, sizeof opt.only_workloads, "%s", val);
        else if (strcmp(arg, "--allocators") == 0)
            snprintf(opt.only_allocators, sizeof opt.only_allocators, "%s", val);
        else if (strcmp(arg, "--bindir") == 0)
            snprintf(opt.bindir, sizeof opt.bindir, "%s", val);
        else if (strcmp(arg, "--seed") == 0)
            opt.seed = strtoul(val, NULL, 10);
        else if (strcmp(arg, "--timeout") == 0)
            opt.timeout_s = atoi(val);
        else if (strcmp(arg, "--command") == 0)
            snprintf(opt.command, sizeof opt.command, "%s", val);
        else
            usage();
    }
    if (opt.runs < 0)
        opt.runs = opt.quick ? 1 : 5;
    if (opt.runs < 1 || opt.runs > 100)
        usage();
    if (opt.timeout_s < 0)
        opt.timeout_s = opt.quick ? 30 : 120;
    parse_threads(threads != NULL ? threads : opt.quick ? "1,4,16" : "1,2,4,8,16");
    find_bindir(argv[0]);

    char path[8192];
    mkdir(opt.out, 0777);
    snprintf(path, sizeof path, "%s/plot", opt.out);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/log.txt", opt.out);
    FILE *log = fopen(path, "w");
    if (log == NULL)
        die("%s: %s", path, strerror(errno));
    setvbuf(log, NULL, _IOLBF, 0);

    discover(log);
    fprintf(stderr, "scalloc_bench: %d allocators (", nallocs);
    for (int a = 0; a < nallocs; a++)
        fprintf(stderr, "%s%s", a ? " " : "", allocs[a].name);
    fprintf(stderr, "), %d workloads, %d thread counts, %d run(s) each -> %s\n", nworkloads,
            opt.nthreads, opt.runs, opt.out);

    snprintf(path, sizeof path, "%s/raw.csv", opt.out);
    FILE *raw = fopen(path, "w");
    if (raw == NULL)
        die("%s: %s", path, strerror(errno));
    write_raw_header(raw);
    load_before = load_average();
    double start = (double)time(NULL);
    run_all(raw, log);
    suite_seconds = (double)time(NULL) - start;
    load_after = load_average();
    fclose(raw);

    snprintf(path, sizeof path, "%s/medians.csv", opt.out);
    FILE *mf = fopen(path, "w");
    if (mf == NULL)
        die("%s: %s", path, strerror(errno));
    compute_medians(mf);
    fclose(mf);

    snprintf(path, sizeof path, "%s/table.md", opt.out);
    FILE *tf = fopen(path, "w");
    if (tf == NULL)
        die("%s: %s", path, strerror(errno));
    report(tf);
    fclose(tf);
    report(stdout);
    write_plot_data(opt.out);
    write_gnuplot(opt.out);
    fclose(log);

    if (sanity_failures > 0) {
        fprintf(stderr, "scalloc_bench: %d sanity failure(s); see above and %s/log.txt\n",
                sanity_failures, opt.out);
        return 1;
    }
    fprintf(stderr, "scalloc_bench: %zu runs, all sane. Results in %s\n", nrecords, opt.out);
    return 0;
}
