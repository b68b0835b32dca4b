-- The extension installs its tables, functions and views.
CREATE EXTENSION stockx_enrich;

SELECT extversion FROM pg_extension WHERE extname = 'stockx_enrich';

SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relname LIKE 'stockx%'
 ORDER BY c.relname;

-- the claim reads partial indexes, never the whole table
SELECT indexname, indexdef FROM pg_indexes
 WHERE tablename = 'stockx_product' ORDER BY indexname;

-- start, stop and requeue are not for PUBLIC; the views are for pg_monitor
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p
 WHERE p.proname LIKE 'stockx_enrich%'
 ORDER BY p.proname;
SELECT c.relname, has_table_privilege('pg_monitor', c.oid, 'SELECT') AS monitor_may_read
  FROM pg_class c WHERE c.relname LIKE 'stockx_enrich%' ORDER BY c.relname;

-- nothing runs, the limiter is closed and idle
SELECT count(*) FROM stockx_enrich_status;
SELECT requests_per_second, effective_rate, daily_limit, circuit_state, consecutive_429
  FROM stockx_enrich_limiter;
SELECT * FROM stockx_enrich_alerts;

-- the claim of pending rows is an index scan
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT sku FROM stockx_product
 WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
 ORDER BY priority DESC, next_attempt_at NULLS FIRST, created_at LIMIT 10;
RESET enable_seqscan;
