/* stockx_enrich--1.0--1.1.sql: upgrade to 1.1 (also how 1.1 is installed). */

\echo Use "ALTER EXTENSION stockx_enrich UPDATE TO '1.1'" to load this file. \quit

-- Every function runs with a search_path of its own: nothing on the
-- caller's path can stand in for what it calls.
ALTER FUNCTION @extschema@.stockx_enrich_start(int, bigint) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.stockx_enrich_stop(int) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.stockx_enrich_wait(bigint, int) SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION @extschema@.stockx_enrich_enqueue(skus text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	added bigint;
BEGIN
	IF skus IS NULL THEN
		RAISE EXCEPTION 'SKU array must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass an array of style codes, e.g. ARRAY[''DD1391-100''].';
	END IF;
	SELECT s INTO bad
	  FROM pg_catalog.unnest(skus) AS s
	 WHERE s IS NULL OR pg_catalog.length(pg_catalog.btrim(s)) = 0
		OR pg_catalog.length(pg_catalog.btrim(s)) > 100
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid SKU %', coalesce(pg_catalog.quote_literal(bad), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A SKU must have 1 to 100 characters after trimming blanks.',
				  HINT = 'Fix or remove that SKU; nothing was queued.';
	END IF;
	INSERT INTO @extschema@.stockx_product (sku)
	SELECT DISTINCT pg_catalog.btrim(s) FROM pg_catalog.unnest(skus) AS s
	ON CONFLICT (sku) DO NOTHING;
	GET DIAGNOSTICS added = ROW_COUNT;
	RETURN added;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.stockx_enrich_requeue(status text DEFAULT 'failed')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	moved bigint;
BEGIN
	IF status IS NULL OR status NOT IN ('enriched', 'not_found', 'failed') THEN
		RAISE EXCEPTION 'cannot requeue rows of status %',
			coalesce(pg_catalog.quote_literal(status), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use one of ''failed'', ''not_found'' or ''enriched''.';
	END IF;
	UPDATE @extschema@.stockx_product p
	   SET status = 'pending', attempts = 0, next_attempt_at = NULL,
		   last_error = NULL, updated_at = pg_catalog.now()
	 WHERE p.status = stockx_enrich_requeue.status;
	GET DIAGNOSTICS moved = ROW_COUNT;
	RETURN moved;
END
$$;

-- The status readers gain a column each: requests in flight per worker,
-- and the pacing margin in force.
DROP VIEW @extschema@.stockx_enrich_alerts;
DROP VIEW @extschema@.stockx_enrich_status;
DROP VIEW @extschema@.stockx_enrich_limiter;
DROP FUNCTION @extschema@.stockx_enrich_worker_status();
DROP FUNCTION @extschema@.stockx_enrich_limiter_state();

CREATE FUNCTION @extschema@.stockx_enrich_worker_status(
	OUT pid int, OUT database oid, OUT run_id bigint, OUT state text,
	OUT current_sku text, OUT processed bigint, OUT enriched bigint,
	OUT not_found bigint, OUT failed bigint, OUT requests bigint,
	OUT responses_429 bigint, OUT retries bigint, OUT started_at timestamptz,
	OUT last_checkpoint_at timestamptz, OUT memory_bytes bigint,
	OUT requests_in_flight int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'stockx_enrich_worker_status'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.stockx_enrich_limiter_state(
	OUT requests_per_second float8, OUT effective_rate float8,
	OUT next_slot_at timestamptz, OUT paused_until timestamptz,
	OUT requests_today bigint, OUT daily_limit bigint,
	OUT quota_resets_at timestamptz, OUT circuit_state text,
	OUT circuit_open_until timestamptz, OUT consecutive_429 int,
	OUT responses_429_total bigint, OUT pacing_margin_ms float8)
RETURNS record
AS 'MODULE_PATHNAME', 'stockx_enrich_limiter_state'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_worker_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_limiter_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stockx_enrich_worker_status() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.stockx_enrich_limiter_state() TO pg_monitor;

CREATE VIEW @extschema@.stockx_enrich_status AS
	SELECT pid, run_id, state, current_sku, processed, enriched, not_found,
		   failed, requests, responses_429, retries, started_at,
		   last_checkpoint_at, memory_bytes, requests_in_flight
	  FROM @extschema@.stockx_enrich_worker_status()
	 WHERE database = (SELECT oid FROM pg_catalog.pg_database
						WHERE datname = pg_catalog.current_database());

-- requests_today also reads stockx_quota, so that the count persisted before
-- a restart shows before any worker has merged it back into shared memory
CREATE VIEW @extschema@.stockx_enrich_limiter AS
	SELECT l.requests_per_second, l.effective_rate, l.next_slot_at, l.paused_until,
		   greatest(l.requests_today,
					coalesce((SELECT q.requests FROM @extschema@.stockx_quota q
							   WHERE q.day = (l.quota_resets_at AT TIME ZONE 'UTC')::date - 1),
							 0)) AS requests_today,
		   l.daily_limit, l.quota_resets_at, l.circuit_state, l.circuit_open_until,
		   l.consecutive_429, l.responses_429_total, l.pacing_margin_ms
	  FROM @extschema@.stockx_enrich_limiter_state() l;

CREATE VIEW @extschema@.stockx_enrich_alerts AS
	WITH l AS (
		SELECT * FROM @extschema@.stockx_enrich_limiter
	), r AS (
		SELECT * FROM @extschema@.stockx_run ORDER BY run_id DESC LIMIT 1
	)
	SELECT 'responses_429'::text AS alert,
		   pg_catalog.format('%s of %s requests answered 429', r.responses_429, r.requests) AS detail
	  FROM r WHERE r.requests > 0 AND r.responses_429 * 10 > r.requests
	UNION ALL
	SELECT 'failures', pg_catalog.format('%s of %s products failed', r.failed, r.processed)
	  FROM r WHERE r.processed > 0 AND r.failed * 5 > r.processed
	UNION ALL
	SELECT 'circuit_open', pg_catalog.format('circuit is %s until %s', l.circuit_state, l.circuit_open_until)
	  FROM l WHERE l.circuit_state <> 'closed'
	UNION ALL
	SELECT 'quota', pg_catalog.format('%s of %s daily requests used', l.requests_today, l.daily_limit)
	  FROM l WHERE l.daily_limit > 0 AND l.requests_today * 10 > l.daily_limit * 9
	UNION ALL
	SELECT 'worker_memory', pg_catalog.format('worker %s uses %s bytes', s.pid, s.memory_bytes)
	  FROM @extschema@.stockx_enrich_worker_status() s
	 WHERE s.memory_bytes > pg_catalog.pg_size_bytes(pg_catalog.current_setting('stockx_enrich.memory_alert_bytes'));

GRANT SELECT ON @extschema@.stockx_enrich_status, @extschema@.stockx_enrich_limiter,
	@extschema@.stockx_enrich_queue, @extschema@.stockx_enrich_alerts TO pg_monitor;
