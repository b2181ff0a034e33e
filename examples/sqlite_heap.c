/*
 * sqlite_heap — SQLite with all of its memory in one scalloc heap.
 *
 * sqlite3_config(SQLITE_CONFIG_MALLOC) replaces SQLite's allocator with a
 * table of functions; it must be called before sqlite3_initialize. Here
 * each function forwards to a heap that xInit creates and xShutdown
 * destroys, so the database engine's memory can be measured on its own
 * (sc_heap_get_stats) and given back in one call when SQLite shuts down.
 *
 * The workload: an in-memory database, 50,000 rows inserted in one
 * transaction, two indexes, aggregate and join queries, an update and a
 * delete. Every answer is recomputed in C. SQLite's own count of the memory
 * it holds (SQLITE_STATUS_MEMORY_USED, the sum of xSize over live blocks)
 * must equal the heap's live bytes. The heap tracks requested sizes
 * (SC_HEAP_TRACK_REQUESTED), so its statistics also say exactly how many
 * of those bytes SQLite asked for; since SQLite rounds its requests up
 * with xRoundup, the two differ only by what sqlite3_realloc shrank in
 * place. Exit status 0 means every check passed.
 */
#include <scalloc/scalloc.h>

#include <sqlite3.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NUM_ROWS = 50000, NUM_CUSTOMERS = 1000, NUM_PRODUCTS = 200 };

/* ------------------------------------------------------------------------ */
/* SQLite's allocator, backed by one heap                                   */
/* ------------------------------------------------------------------------ */

/* The allocation functions receive no context pointer, so the heap is a
 * file-level variable, set by xInit before SQLite allocates anything. */
static sc_heap_t *sqlite_heap;
static unsigned long misaligned_blocks;

static void *heap_malloc(int n)
{
    /* SQLite needs 8-byte alignment; scalloc gives 16. Checked anyway,
     * since a violation would corrupt data silently on some platforms. */
    void *p = sc_alloc(sqlite_heap, n > 0 ? (size_t)n : 0);
    if (((uintptr_t)p & 7) != 0)
        misaligned_blocks++;
    return p;
}

static void heap_free(void *p) { sc_free(sqlite_heap, p); }

static void *heap_realloc(void *p, int n)
{
    /* SQLite only calls this with p != NULL and n > 0. */
    void *q = sc_realloc(sqlite_heap, p, n > 0 ? (size_t)n : 0);
    if (((uintptr_t)q & 7) != 0)
        misaligned_blocks++;
    return q;
}

/* SQLite accounts memory with this (SQLITE_STATUS_MEMORY_USED) and may use
 * the whole block, so it must be the block's real usable size. */
static int heap_size(void *p)
{
    if (p == NULL)
        return 0;
    size_t n = sc_usable_size(sqlite_heap, p);
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* SQLite asks how much a request would really get, to use the slack:
 * exactly the size class's block size (sc_good_size). */
static int heap_roundup(int n)
{
    if (n <= 0)
        return n;
    size_t good = sc_good_size((size_t)n);
    return good == 0 || good > INT_MAX ? n : (int)good;
}

static int heap_init(void *app_data)
{
    sc_heap_config_t cfg = {.name = app_data, .flags = SC_HEAP_TRACK_REQUESTED};
    sqlite_heap = sc_heap_create(&cfg);
    return sqlite_heap != NULL ? SQLITE_OK : SQLITE_NOMEM;
}

static void heap_shutdown(void *app_data)
{
    (void)app_data;
    /* Whatever SQLite still holds goes with the heap. */
    sc_heap_destroy(sqlite_heap);
    sqlite_heap = NULL;
}

static int install_heap_allocator(void)
{
    static char heap_name[] = "sqlite";
    static const sqlite3_mem_methods methods = {
        .xMalloc = heap_malloc,
        .xFree = heap_free,
        .xRealloc = heap_realloc,
        .xSize = heap_size,
        .xRoundup = heap_roundup,
        .xInit = heap_init,
        .xShutdown = heap_shutdown,
        .pAppData = heap_name,
    };
    /* Both must come before sqlite3_initialize; SQLite copies methods. */
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) != SQLITE_OK)
        return -1;
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK)
        return -1;
    return sqlite3_initialize() == SQLITE_OK ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The workload                                                             */
/* ------------------------------------------------------------------------ */

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "sqlite_heap: check failed: %s\n", what);
        failures++;
    }
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "sqlite_heap: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlite_heap: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* Runs a query that returns one row and stores its integer columns (and the
 * text of column text_col, if text_out is not NULL). */
static void query_row(sqlite3 *db, const char *sql, long long *ints, int nints,
                      int text_col, char *text_out, size_t text_size)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die(db, sql);
    if (sqlite3_step(st) != SQLITE_ROW)
        die(db, sql);
    for (int c = 0; c < nints; c++)
        ints[c] = sqlite3_column_int64(st, c);
    if (text_out != NULL) {
        const unsigned char *t = sqlite3_column_text(st, text_col);
        snprintf(text_out, text_size, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
}

/* Row i's columns: a pure function of i, so C can compute every answer. */
static int customer_of(int i) { return (int)(((long long)i * 7919) % NUM_CUSTOMERS); }
static int product_of(int i) { return (i * 31) % NUM_PRODUCTS; }
static int qty_of(int i) { return 1 + i % 9; }
static int price_of(int i) { return 100 + (i * 37) % 5000; }
static int note_length_of(int i) { return (i * 13) % 181; }

static void insert_rows(sqlite3 *db)
{
    exec(db, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    exec(db, "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER NOT NULL,"
             " product TEXT NOT NULL, qty INTEGER NOT NULL,"
             " price_cents INTEGER NOT NULL, note TEXT NOT NULL)");
    exec(db, "BEGIN");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO customers VALUES(?1, printf('customer-%04d', ?1))",
                           -1, &st, NULL) != SQLITE_OK)
        die(db, "prepare customers");
    for (int c = 0; c < NUM_CUSTOMERS; c++) {
        sqlite3_bind_int(st, 1, c);
        if (sqlite3_step(st) != SQLITE_DONE)
            die(db, "insert customer");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);

    if (sqlite3_prepare_v2(db, "INSERT INTO orders VALUES(?, ?, ?, ?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        die(db, "prepare orders");
    char product[32], note[200];
    for (int i = 1; i <= NUM_ROWS; i++) {
        int note_len = note_length_of(i);
        for (int j = 0; j < note_len; j++)
            note[j] = (char)('a' + (i + j) % 26);
        snprintf(product, sizeof product, "product-%03d", product_of(i));
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_int(st, 2, customer_of(i));
        sqlite3_bind_text(st, 3, product, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, qty_of(i));
        sqlite3_bind_int(st, 5, price_of(i));
        sqlite3_bind_text(st, 6, note, note_len, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            die(db, "insert order");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec(db, "COMMIT");
    exec(db, "CREATE INDEX orders_customer ON orders(customer)");
    exec(db, "CREATE INDEX orders_product ON orders(product, qty)");
}

static void run_queries(sqlite3 *db)
{
    /* Expected answers, from the same row functions. */
    long long qty_sum = 0, revenue = 0, note_bytes = 0, customer_42 = 0;
    long long units[NUM_PRODUCTS] = {0}, by_customer[NUM_CUSTOMERS] = {0};
    for (int i = 1; i <= NUM_ROWS; i++) {
        qty_sum += qty_of(i);
        revenue += (long long)qty_of(i) * price_of(i);
        note_bytes += note_length_of(i);
        customer_42 += customer_of(i) == 42;
        units[product_of(i)] += qty_of(i);
        by_customer[customer_of(i)] += (long long)qty_of(i) * price_of(i);
    }
    int best_product = 0, best_customer = 0;
    for (int p = 1; p < NUM_PRODUCTS; p++)
        if (units[p] > units[best_product])
            best_product = p; /* ties keep the smaller name, as ORDER BY does */
    for (int c = 1; c < NUM_CUSTOMERS; c++)
        if (by_customer[c] > by_customer[best_customer])
            best_customer = c;

    long long r[4];
    char text[64], want[64];

    query_row(db, "SELECT count(*), sum(qty), sum(qty * price_cents), sum(length(note))"
                  " FROM orders", r, 4, 0, NULL, 0);
    check(r[0] == NUM_ROWS && r[1] == qty_sum && r[2] == revenue && r[3] == note_bytes,
          "totals");

    query_row(db, "SELECT sum(qty) AS units, product FROM orders GROUP BY product"
                  " ORDER BY units DESC, product LIMIT 1", r, 1, 1, text, sizeof text);
    snprintf(want, sizeof want, "product-%03d", best_product);
    check(r[0] == units[best_product] && strcmp(text, want) == 0, "best-selling product");

    query_row(db, "SELECT count(*) FROM orders WHERE customer = 42", r, 1, 0, NULL, 0);
    check(r[0] == customer_42, "orders of customer 42 (through the index)");

    query_row(db, "SELECT sum(o.qty * o.price_cents) AS revenue, c.name FROM orders o"
                  " JOIN customers c ON c.id = o.customer GROUP BY c.id"
                  " ORDER BY revenue DESC, c.id LIMIT 1", r, 1, 1, text, sizeof text);
    snprintf(want, sizeof want, "customer-%04d", best_customer);
    check(r[0] == by_customer[best_customer] && strcmp(text, want) == 0, "best customer");

    /* One 600 KB string grown by repeated reallocation. */
    query_row(db, "SELECT length(group_concat(product, ',')) FROM orders", r, 1, 0, NULL, 0);
    check(r[0] == (long long)NUM_ROWS * 11 + NUM_ROWS - 1, "group_concat length");

    long long bumped = 0, kept = 0, kept_qty = 0;
    for (int i = 1; i <= NUM_ROWS; i++) {
        int q = qty_of(i) + (customer_of(i) < 100);
        bumped += customer_of(i) < 100;
        if (i % 2 != 0) {
            kept++;
            kept_qty += q;
        }
    }
    exec(db, "UPDATE orders SET qty = qty + 1 WHERE customer < 100");
    check(sqlite3_changes(db) == bumped, "rows updated");
    exec(db, "DELETE FROM orders WHERE id % 2 = 0");
    query_row(db, "SELECT count(*), sum(qty) FROM orders", r, 2, 0, NULL, 0);
    check(r[0] == kept && r[1] == kept_qty, "rows left after update and delete");
}

/* SQLite's count of its memory (the sum of xSize over its live blocks)
 * must be exactly the heap's live bytes. */
static void check_accounting(const char *when)
{
    sqlite3_int64 used, highwater;
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &highwater, 0);
    sc_heap_stats_t s;
    sc_heap_get_stats(sqlite_heap, &s);
    printf("  %-16s SQLite says %9lld bytes in use; heap: %6zu blocks, %9zu live bytes, "
           "%9zu requested\n",
           when, (long long)used, s.live_blocks, s.live_bytes, s.requested_bytes);
    if (!s.requested_exact || s.requested_bytes > s.live_bytes) {
        fprintf(stderr, "sqlite_heap: %s: requested bytes %zu (exact %d) above live bytes %zu\n",
                when, s.requested_bytes, s.requested_exact, s.live_bytes);
        failures++;
    }
    if ((size_t)used != s.live_bytes) {
        fprintf(stderr, "sqlite_heap: %s: SQLite counts %lld bytes, the heap %zu\n", when,
                (long long)used, s.live_bytes);
        failures++;
    }
}

int main(void)
{
    if (install_heap_allocator() != 0) {
        fprintf(stderr, "sqlite_heap: cannot install the heap allocator\n");
        return 1;
    }
    printf("sqlite_heap: SQLite %s, memory from scalloc heap \"%s\"\n\n", sqlite3_libversion(),
           sc_heap_name(sqlite_heap));

    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        die(db, "sqlite3_open");
    check_accounting("after open");
    insert_rows(db);
    check_accounting("after inserts");
    run_queries(db);
    check_accounting("after queries");

    sqlite3_int64 used, highwater;
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &highwater, 0);
    printf("  SQLite's high-water mark: %lld bytes\n\n", (long long)highwater);
    printf("sc_heap_print_stats(sqlite), database open:\n");
    sc_heap_print_stats(sqlite_heap, stdout, SC_STATS_TEXT);
    printf("\n");

    if (sqlite3_close(db) != SQLITE_OK)
        die(db, "sqlite3_close");
    check_accounting("after close");
    /* xShutdown destroys the heap, with anything SQLite still holds. */
    sqlite3_shutdown();
    check(sqlite_heap == NULL, "heap destroyed by sqlite3_shutdown");
    check(misaligned_blocks == 0, "every block 8-byte aligned");

    printf("\n%s\n", failures == 0 ? "OK: every query result checked" : "FAILED");
    return failures == 0 ? 0 : 1;
}
