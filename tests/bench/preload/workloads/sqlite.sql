-- sqlite3 :memory: < sqlite.sql (tests/bench/preload/run.sh): 200k rows inserted,
-- indexed, joined, updated, deleted and aggregated in an in-memory database,
-- whose pages all live in malloc'ed memory.
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, payload BLOB);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000)
INSERT INTO t(k, name, payload)
  SELECT (i * 7919) % 100003, printf('name-%08d-%s', i, hex(i * 31)), zeroblob(i % 200) FROM c;
COMMIT;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(k), sum(length(name)), sum(length(payload)) FROM t;
SELECT k, count(*) FROM t GROUP BY k ORDER BY count(*) DESC, k LIMIT 5;
SELECT sum(a.id) FROM t a JOIN t b ON a.k = b.k WHERE a.id < b.id AND a.id % 10 = 0;
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), max(name), min(name) FROM t;
SELECT group_concat(name, ',') IS NOT NULL, length(group_concat(name, ',')) FROM (SELECT name FROM t ORDER BY name DESC LIMIT 50000);
