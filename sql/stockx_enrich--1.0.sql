/* stockx_enrich--1.0.sql: tables, functions and views of the extension. */

\echo Use "CREATE EXTENSION stockx_enrich" to load this file. \quit

-- The queue and the results: one row per SKU.
CREATE TABLE stockx_product (
	sku text PRIMARY KEY
		CHECK (length(btrim(sku)) BETWEEN 1 AND 100),
	status text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'enriched', 'not_found', 'failed')),
	attempts int NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_error text,
	lease_pid int,
	lease_until timestamptz,
	stockx_product_id uuid,
	url_key text,
	style_id text,
	title text,
	brand text,
	product_type text,
	gender text,
	season text,
	colorway text,
	color text,
	retail_price numeric,
	release_date date,
	currency_code text,
	lowest_ask numeric,
	highest_bid numeric,
	market_updated_at timestamptz,
	product jsonb,
	enriched_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- One partial index per kind of due row, each in the order the claim takes
-- them, so that claiming reads only the head of an index.
CREATE INDEX stockx_product_pending_idx
	ON stockx_product (next_attempt_at NULLS FIRST, created_at)
	WHERE status = 'pending';
CREATE INDEX stockx_product_refresh_idx
	ON stockx_product (market_updated_at)
	WHERE status = 'enriched';
CREATE INDEX stockx_product_not_found_idx
	ON stockx_product (updated_at)
	WHERE status = 'not_found';

-- One row per StockX variant (size) of an enriched product.
CREATE TABLE stockx_variant (
	variant_id uuid PRIMARY KEY,
	sku text NOT NULL REFERENCES stockx_product (sku) ON DELETE CASCADE ON UPDATE CASCADE,
	variant_name text,
	variant_value text,
	gtins jsonb,
	size_chart jsonb,
	lowest_ask numeric,
	highest_bid numeric,
	sell_faster numeric,
	earn_more numeric,
	flex_lowest_ask numeric,
	currency_code text,
	market_updated_at timestamptz
);
CREATE INDEX stockx_variant_sku_idx ON stockx_variant (sku);

-- One row per run of stockx_enrich_start().
CREATE TABLE stockx_run (
	run_id bigserial PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz,
	workers int NOT NULL DEFAULT 0,
	max_products bigint,
	processed bigint NOT NULL DEFAULT 0,
	enriched bigint NOT NULL DEFAULT 0,
	not_found bigint NOT NULL DEFAULT 0,
	failed bigint NOT NULL DEFAULT 0,
	requests bigint NOT NULL DEFAULT 0,
	responses_429 bigint NOT NULL DEFAULT 0,
	retries bigint NOT NULL DEFAULT 0,
	stop_reason text
		CHECK (stop_reason IN ('done', 'stopped', 'max_products', 'quota',
							   'circuit_open', 'credentials', 'error'))
);

-- Requests sent per UTC day, so that the daily quota survives restarts.
CREATE TABLE stockx_quota (
	day date PRIMARY KEY,
	requests bigint NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('stockx_product', '');
SELECT pg_catalog.pg_extension_config_dump('stockx_variant', '');
SELECT pg_catalog.pg_extension_config_dump('stockx_run', '');
SELECT pg_catalog.pg_extension_config_dump('stockx_run_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stockx_quota', '');

-- Functions

CREATE FUNCTION stockx_enrich_start(workers int DEFAULT 1, max_products bigint DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'stockx_enrich_start'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION stockx_enrich_stop(timeout_ms int DEFAULT 5000)
RETURNS int
AS 'MODULE_PATHNAME', 'stockx_enrich_stop'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stockx_enrich_wait(run_id bigint, timeout_ms int DEFAULT 60000)
RETURNS text
AS 'MODULE_PATHNAME', 'stockx_enrich_wait'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stockx_enrich_enqueue(skus text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = @extschema@, pg_catalog
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
	  FROM unnest(skus) AS s
	 WHERE s IS NULL OR length(btrim(s)) = 0 OR length(btrim(s)) > 100
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid SKU %', coalesce(quote_literal(bad), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A SKU must have 1 to 100 characters after trimming blanks.',
				  HINT = 'Fix or remove that SKU; nothing was queued.';
	END IF;
	INSERT INTO stockx_product (sku)
	SELECT DISTINCT btrim(s) FROM unnest(skus) AS s
	ON CONFLICT (sku) DO NOTHING;
	GET DIAGNOSTICS added = ROW_COUNT;
	RETURN added;
END
$$;

CREATE FUNCTION stockx_enrich_requeue(status text DEFAULT 'failed')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = @extschema@, pg_catalog
AS $$
DECLARE
	moved bigint;
BEGIN
	IF status IS NULL OR status NOT IN ('enriched', 'not_found', 'failed') THEN
		RAISE EXCEPTION 'cannot requeue rows of status %', coalesce(quote_literal(status), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use one of ''failed'', ''not_found'' or ''enriched''.';
	END IF;
	UPDATE stockx_product p
	   SET status = 'pending', attempts = 0, next_attempt_at = NULL,
		   last_error = NULL, updated_at = now()
	 WHERE p.status = stockx_enrich_requeue.status;
	GET DIAGNOSTICS moved = ROW_COUNT;
	RETURN moved;
END
$$;

REVOKE ALL ON FUNCTION stockx_enrich_start(int, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION stockx_enrich_stop(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION stockx_enrich_requeue(text) FROM PUBLIC;

-- Shared-memory readers behind the views.

CREATE FUNCTION stockx_enrich_worker_status(
	OUT pid int, OUT database oid, OUT run_id bigint, OUT state text,
	OUT current_sku text, OUT processed bigint, OUT enriched bigint,
	OUT not_found bigint, OUT failed bigint, OUT requests bigint,
	OUT responses_429 bigint, OUT retries bigint, OUT started_at timestamptz,
	OUT last_checkpoint_at timestamptz, OUT memory_bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'stockx_enrich_worker_status'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stockx_enrich_limiter_state(
	OUT requests_per_second float8, OUT effective_rate float8,
	OUT next_slot_at timestamptz, OUT paused_until timestamptz,
	OUT requests_today bigint, OUT daily_limit bigint,
	OUT quota_resets_at timestamptz, OUT circuit_state text,
	OUT circuit_open_until timestamptz, OUT consecutive_429 int,
	OUT responses_429_total bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'stockx_enrich_limiter_state'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION stockx_enrich_worker_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION stockx_enrich_limiter_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stockx_enrich_worker_status() TO pg_monitor;
GRANT EXECUTE ON FUNCTION stockx_enrich_limiter_state() TO pg_monitor;

-- Views for psql.

CREATE VIEW stockx_enrich_status AS
	SELECT pid, run_id, state, current_sku, processed, enriched, not_found,
		   failed, requests, responses_429, retries, started_at,
		   last_checkpoint_at, memory_bytes
	  FROM stockx_enrich_worker_status()
	 WHERE database = (SELECT oid FROM pg_catalog.pg_database
						WHERE datname = pg_catalog.current_database());

-- requests_today also reads stockx_quota, so that the count persisted before
-- a restart shows before any worker has merged it back into shared memory
CREATE VIEW stockx_enrich_limiter AS
	SELECT l.requests_per_second, l.effective_rate, l.next_slot_at, l.paused_until,
		   greatest(l.requests_today,
					coalesce((SELECT q.requests FROM stockx_quota q
							   WHERE q.day = (l.quota_resets_at AT TIME ZONE 'UTC')::date - 1),
							 0)) AS requests_today,
		   l.daily_limit, l.quota_resets_at, l.circuit_state, l.circuit_open_until,
		   l.consecutive_429, l.responses_429_total
	  FROM stockx_enrich_limiter_state() l;

CREATE VIEW stockx_enrich_queue AS
	SELECT status,
		   count(*) AS products,
		   count(*) FILTER (WHERE lease_pid IS NOT NULL
							AND lease_until > now()) AS leased,
		   min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending_at,
		   min(next_attempt_at) FILTER (WHERE next_attempt_at > now()) AS next_retry_at
	  FROM stockx_product
	 GROUP BY status;

CREATE VIEW stockx_enrich_alerts AS
	WITH l AS (
		SELECT * FROM stockx_enrich_limiter
	), r AS (
		SELECT * FROM stockx_run ORDER BY run_id DESC LIMIT 1
	)
	SELECT 'responses_429'::text AS alert,
		   format('%s of %s requests answered 429', r.responses_429, r.requests) AS detail
	  FROM r WHERE r.requests > 0 AND r.responses_429 * 10 > r.requests
	UNION ALL
	SELECT 'failures', format('%s of %s products failed', r.failed, r.processed)
	  FROM r WHERE r.processed > 0 AND r.failed * 5 > r.processed
	UNION ALL
	SELECT 'circuit_open', format('circuit is %s until %s', l.circuit_state, l.circuit_open_until)
	  FROM l WHERE l.circuit_state <> 'closed'
	UNION ALL
	SELECT 'quota', format('%s of %s daily requests used', l.requests_today, l.daily_limit)
	  FROM l WHERE l.daily_limit > 0 AND l.requests_today * 10 > l.daily_limit * 9
	UNION ALL
	SELECT 'worker_memory', format('worker %s uses %s bytes', s.pid, s.memory_bytes)
	  FROM stockx_enrich_worker_status() s
	 WHERE s.memory_bytes > pg_catalog.pg_size_bytes(pg_catalog.current_setting('stockx_enrich.memory_alert_bytes'));

GRANT SELECT ON stockx_enrich_status, stockx_enrich_limiter, stockx_enrich_queue,
	stockx_enrich_alerts TO pg_monitor;
