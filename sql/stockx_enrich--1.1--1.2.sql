/* stockx_enrich--1.1--1.2.sql: price history, payout after fees, freshness by priority, currencies. */

\echo Use "ALTER EXTENSION stockx_enrich UPDATE TO '1.2'" to load this file. \quit

-- ---------------------------------------------------------------- freshness

-- refresh_every: how often this product's market data is refreshed (NULL:
-- the setting stockx_enrich.refresh_after); priority: higher is claimed
-- first, among new products and among due refreshes.
ALTER TABLE @extschema@.stockx_product
	ADD COLUMN refresh_every interval CHECK (refresh_every > interval '0'),
	ADD COLUMN priority int NOT NULL DEFAULT 0;

DROP INDEX @extschema@.stockx_product_pending_idx;
DROP INDEX @extschema@.stockx_product_refresh_idx;
CREATE INDEX stockx_product_pending_idx
	ON @extschema@.stockx_product (priority DESC, next_attempt_at NULLS FIRST, created_at)
	WHERE status = 'pending';
CREATE INDEX stockx_product_refresh_idx
	ON @extschema@.stockx_product (priority DESC, market_updated_at)
	WHERE status = 'enriched';

-- ---------------------------------------------------------------- current market data

-- The market data of every variant in every configured currency
-- (stockx_enrich.currency_code); stockx_variant keeps the first currency's.
CREATE TABLE @extschema@.stockx_market (
	variant_id uuid NOT NULL
		REFERENCES @extschema@.stockx_variant (variant_id) ON DELETE CASCADE,
	currency_code text NOT NULL,
	lowest_ask numeric,
	highest_bid numeric,
	sell_faster numeric,
	earn_more numeric,
	flex_lowest_ask numeric,
	market_updated_at timestamptz NOT NULL,
	PRIMARY KEY (variant_id, currency_code)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_market', '');

-- What 1.1 stored is the first observation in its currency.
INSERT INTO @extschema@.stockx_market (variant_id, currency_code, lowest_ask, highest_bid,
		sell_faster, earn_more, flex_lowest_ask, market_updated_at)
	SELECT variant_id, currency_code, lowest_ask, highest_bid, sell_faster, earn_more,
		   flex_lowest_ask, market_updated_at
	  FROM @extschema@.stockx_variant
	 WHERE currency_code IS NOT NULL AND market_updated_at IS NOT NULL;

-- ---------------------------------------------------------------- price history

-- One row per variant and currency each time one of its amounts changed.
-- Monthly partitions (UTC) named stockx_price_history_YYYYMM, made ahead
-- and dropped after stockx_enrich.history_retention by
-- stockx_price_history_maintain(); the workers call it.
CREATE TABLE @extschema@.stockx_price_history (
	variant_id uuid NOT NULL,
	sku text NOT NULL,
	currency_code text NOT NULL,
	observed_at timestamptz NOT NULL,
	lowest_ask numeric,
	highest_bid numeric,
	sell_faster numeric,
	earn_more numeric,
	PRIMARY KEY (variant_id, currency_code, observed_at)
) PARTITION BY RANGE (observed_at);
CREATE INDEX stockx_price_history_sku_idx
	ON @extschema@.stockx_price_history (sku, observed_at);

-- Partitions from the month of `since` to `months_ahead` months after this
-- one, and drops those wholly older than history_retention.  Runs as the
-- extension's owner: it only ever does what the server's settings say.
CREATE FUNCTION @extschema@.stockx_price_history_maintain(since timestamptz DEFAULT NULL,
		months_ahead int DEFAULT 2)
RETURNS TABLE (partition_name text, action text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp name;
	parent regclass;
	this_month timestamp := pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC');
	m timestamp;
	retention_s bigint;
	part record;
BEGIN
	IF months_ahead IS NULL OR months_ahead NOT BETWEEN 0 AND 24 THEN
		RAISE EXCEPTION 'months_ahead must be between 0 and 24'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Partitions are made for this month and up to 24 months ahead.';
	END IF;
	IF since < pg_catalog.now() - interval '10 years' THEN
		RAISE EXCEPTION 'since must be within the last 10 years'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Partitions are monthly: ten years make 120 of them.';
	END IF;
	SELECT n.nspname INTO nsp
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'stockx_enrich';
	parent := pg_catalog.format('%I.stockx_price_history', nsp)::regclass;
	-- one caller at a time: every worker calls it
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('stockx_price_history_maintain'));

	m := pg_catalog.date_trunc('month', least(coalesce(since, pg_catalog.now()), pg_catalog.now())
											 AT TIME ZONE 'UTC');
	WHILE m <= this_month + pg_catalog.make_interval(months => months_ahead) LOOP
		partition_name := 'stockx_price_history_' || pg_catalog.to_char(m, 'YYYYMM');
		IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, partition_name)) IS NULL THEN
			EXECUTE pg_catalog.format(
				'CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
				nsp, partition_name, parent,
				m::text || '+00', (m + interval '1 month')::text || '+00');
			action := 'created';
			RETURN NEXT;
		END IF;
		m := m + interval '1 month';
	END LOOP;

	-- whole months older than the retention go (0 keeps everything)
	SELECT s.setting::bigint INTO retention_s
	  FROM pg_catalog.pg_settings s WHERE s.name = 'stockx_enrich.history_retention';
	IF coalesce(retention_s, 0) = 0 THEN
		RETURN;
	END IF;
	FOR part IN
		SELECT c.relname
		  FROM pg_catalog.pg_inherits i
		  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = parent
		   AND c.relname ~ '^stockx_price_history_[0-9]{6}$'
		   AND (pg_catalog.to_timestamp(pg_catalog.right(c.relname, 6), 'YYYYMM')::timestamp
				+ interval '1 month') AT TIME ZONE 'UTC'
			   <= pg_catalog.now() - pg_catalog.make_interval(secs => retention_s)
		 ORDER BY c.relname
	LOOP
		EXECUTE pg_catalog.format('DROP TABLE %I.%I', nsp, part.relname);
		partition_name := part.relname;
		action := 'dropped';
		RETURN NEXT;
	END LOOP;
END
$$;

-- ---------------------------------------------------------------- trend

-- Per SKU, size and currency: the current ask and bid, their change over 1,
-- 7 and 30 days (against the amount in force then), the range over the
-- last 30 days, and the spread.
CREATE VIEW @extschema@.stockx_price_trend AS
	SELECT v.sku, v.variant_value AS size, m.variant_id, m.currency_code,
		   m.lowest_ask, m.highest_bid,
		   m.lowest_ask - d1.lowest_ask AS ask_change_1d,
		   pg_catalog.round((m.lowest_ask - d1.lowest_ask) * 100 / NULLIF(d1.lowest_ask, 0), 2) AS ask_change_1d_pct,
		   m.highest_bid - d1.highest_bid AS bid_change_1d,
		   pg_catalog.round((m.highest_bid - d1.highest_bid) * 100 / NULLIF(d1.highest_bid, 0), 2) AS bid_change_1d_pct,
		   m.lowest_ask - d7.lowest_ask AS ask_change_7d,
		   pg_catalog.round((m.lowest_ask - d7.lowest_ask) * 100 / NULLIF(d7.lowest_ask, 0), 2) AS ask_change_7d_pct,
		   m.highest_bid - d7.highest_bid AS bid_change_7d,
		   pg_catalog.round((m.highest_bid - d7.highest_bid) * 100 / NULLIF(d7.highest_bid, 0), 2) AS bid_change_7d_pct,
		   m.lowest_ask - d30.lowest_ask AS ask_change_30d,
		   pg_catalog.round((m.lowest_ask - d30.lowest_ask) * 100 / NULLIF(d30.lowest_ask, 0), 2) AS ask_change_30d_pct,
		   m.highest_bid - d30.highest_bid AS bid_change_30d,
		   pg_catalog.round((m.highest_bid - d30.highest_bid) * 100 / NULLIF(d30.highest_bid, 0), 2) AS bid_change_30d_pct,
		   LEAST(w.ask_min, d30.lowest_ask) AS ask_min_30d,
		   GREATEST(w.ask_max, d30.lowest_ask) AS ask_max_30d,
		   LEAST(w.bid_min, d30.highest_bid) AS bid_min_30d,
		   GREATEST(w.bid_max, d30.highest_bid) AS bid_max_30d,
		   m.lowest_ask - m.highest_bid AS spread,
		   m.market_updated_at
	  FROM @extschema@.stockx_market m
	  JOIN @extschema@.stockx_variant v ON v.variant_id = m.variant_id
	  LEFT JOIN LATERAL (
		SELECT h.lowest_ask, h.highest_bid FROM @extschema@.stockx_price_history h
		 WHERE h.variant_id = m.variant_id AND h.currency_code = m.currency_code
		   AND h.observed_at <= pg_catalog.now() - interval '1 day'
		 ORDER BY h.observed_at DESC LIMIT 1) d1 ON true
	  LEFT JOIN LATERAL (
		SELECT h.lowest_ask, h.highest_bid FROM @extschema@.stockx_price_history h
		 WHERE h.variant_id = m.variant_id AND h.currency_code = m.currency_code
		   AND h.observed_at <= pg_catalog.now() - interval '7 days'
		 ORDER BY h.observed_at DESC LIMIT 1) d7 ON true
	  LEFT JOIN LATERAL (
		SELECT h.lowest_ask, h.highest_bid FROM @extschema@.stockx_price_history h
		 WHERE h.variant_id = m.variant_id AND h.currency_code = m.currency_code
		   AND h.observed_at <= pg_catalog.now() - interval '30 days'
		 ORDER BY h.observed_at DESC LIMIT 1) d30 ON true
	  LEFT JOIN LATERAL (
		SELECT pg_catalog.min(h.lowest_ask) AS ask_min, pg_catalog.max(h.lowest_ask) AS ask_max,
			   pg_catalog.min(h.highest_bid) AS bid_min, pg_catalog.max(h.highest_bid) AS bid_max
		  FROM @extschema@.stockx_price_history h
		 WHERE h.variant_id = m.variant_id AND h.currency_code = m.currency_code
		   AND h.observed_at > pg_catalog.now() - interval '30 days') w ON true;

-- ---------------------------------------------------------------- budget

-- Today's requests: what the due work needs (a new product 2 + one per
-- currency, a refresh one per currency, a not_found recheck one search)
-- against what is left of the daily quota, and when the backlog is done
-- at the configured rate and quota.
CREATE VIEW @extschema@.stockx_enrich_budget AS
	WITH cfg AS (
		SELECT pg_catalog.array_length(pg_catalog.string_to_array(
				   pg_catalog.replace(pg_catalog.current_setting('stockx_enrich.currency_code'), ' ', ''), ','), 1) AS currencies,
			   (SELECT s.setting::bigint FROM pg_catalog.pg_settings s
				 WHERE s.name = 'stockx_enrich.refresh_after') AS refresh_after_s
	), l AS (
		SELECT * FROM @extschema@.stockx_enrich_limiter
	), due AS (
		SELECT pg_catalog.count(*) FILTER (WHERE p.status = 'pending') AS new_products,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'enriched'
					AND p.market_updated_at + r.every <= pg_catalog.now()) AS refreshes,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'enriched'
					AND p.market_updated_at + r.every > pg_catalog.now()
					AND p.market_updated_at + r.every <= (SELECT quota_resets_at FROM l)) AS refreshes_later_today,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'not_found'
					AND p.updated_at < pg_catalog.now() - interval '7 days') AS not_found_rechecks
		  FROM @extschema@.stockx_product p
		 CROSS JOIN cfg
		 CROSS JOIN LATERAL (SELECT coalesce(p.refresh_every,
				   CASE WHEN cfg.refresh_after_s > 0
						THEN pg_catalog.make_interval(secs => cfg.refresh_after_s) END) AS every) r
		 WHERE p.next_attempt_at IS NULL OR p.next_attempt_at <= pg_catalog.now()
	), need AS (
		SELECT due.*, cfg.currencies,
			   due.new_products * (2 + cfg.currencies) + due.refreshes * cfg.currencies
			   + due.not_found_rechecks AS requests_due,
			   due.refreshes_later_today * cfg.currencies AS requests_due_later_today
		  FROM due, cfg
	)
	SELECT need.new_products, need.refreshes, need.refreshes_later_today, need.not_found_rechecks,
		   need.currencies, need.requests_due, need.requests_due_later_today,
		   l.requests_today, l.daily_limit,
		   CASE WHEN l.daily_limit > 0 THEN GREATEST(l.daily_limit - l.requests_today, 0) END AS quota_left_today,
		   l.quota_resets_at, l.requests_per_second,
		   CASE
			 WHEN need.requests_due = 0 THEN NULL
			 WHEN l.daily_limit = 0 OR need.requests_due <= GREATEST(l.daily_limit - l.requests_today, 0)
			   THEN pg_catalog.now() + pg_catalog.make_interval(secs => need.requests_due / l.requests_per_second)
			 -- the rest spills over the following days, daily_limit a day
			 ELSE l.quota_resets_at
				  + pg_catalog.make_interval(days => ((need.requests_due - GREATEST(l.daily_limit - l.requests_today, 0) - 1) / l.daily_limit)::int)
				  + pg_catalog.make_interval(secs => (((need.requests_due - GREATEST(l.daily_limit - l.requests_today, 0) - 1) % l.daily_limit) + 1) / l.requests_per_second)
		   END AS backlog_done_at
	  FROM need, l;

GRANT SELECT ON @extschema@.stockx_price_trend, @extschema@.stockx_enrich_budget TO pg_monitor;

-- like stockx_enrich_start(): for the roles that run the workers
REVOKE ALL ON FUNCTION @extschema@.stockx_price_history_maintain(timestamptz, int) FROM PUBLIC;
