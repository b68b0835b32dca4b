/* stockx_enrich--1.1--1.2.sql: price history, payout after fees, freshness by priority, currencies. */

\echo Use "ALTER EXTENSION stockx_enrich UPDATE TO '1.2'" to load this file. \quit

-- ---------------------------------------------------------------- freshness

-- refresh_every: how often this product's market data is refreshed (NULL:
-- the setting stockx_enrich.refresh_after); priority: higher is claimed
-- first, among new products and among due refreshes.
ALTER TABLE @extschema@.stockx_product
	ADD COLUMN refresh_every interval CHECK (refresh_every > interval '0'),
	ADD COLUMN priority int NOT NULL DEFAULT 0;

-- query_kind 'gtin': the row's sku is a barcode (queued by
-- stockx_enrich_enqueue_gtins); the worker keeps the product whose
-- variants carry it exactly.
ALTER TABLE @extschema@.stockx_product
	ADD COLUMN query_kind text NOT NULL DEFAULT 'style_id'
		CHECK (query_kind IN ('style_id', 'gtin'));

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
	earn_more numeric
) PARTITION BY RANGE (observed_at);
-- The indexes are each partition's own, not the parent's: the monthly
-- partitions are not members of the extension, and pg_dump cannot restore
-- a partition whose index is attached to an index of an extension.
-- A write never fails for want of a partition: a month nobody made yet
-- lands in the default partition, and maintenance moves it out later.
CREATE TABLE @extschema@.stockx_price_history_default
	PARTITION OF @extschema@.stockx_price_history DEFAULT;
CREATE UNIQUE INDEX stockx_price_history_default_key
	ON @extschema@.stockx_price_history_default (variant_id, currency_code, observed_at);
CREATE INDEX stockx_price_history_default_sku_idx
	ON @extschema@.stockx_price_history_default (sku, observed_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_price_history_default', '');

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
	lo text;
	hi text;
	moved bigint;
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
		lo := m::text || '+00';
		hi := (m + interval '1 month')::text || '+00';
		IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, partition_name)) IS NULL THEN
			-- made apart, with its own indexes, then attached: rows of that
			-- month waiting in the default partition move in first
			EXECUTE pg_catalog.format(
				'CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
				nsp, partition_name, parent);
			EXECUTE pg_catalog.format(
				'CREATE UNIQUE INDEX %I ON %I.%I (variant_id, currency_code, observed_at)',
				partition_name || '_key', nsp, partition_name);
			EXECUTE pg_catalog.format('CREATE INDEX %I ON %I.%I (sku, observed_at)',
				partition_name || '_sku_idx', nsp, partition_name);
			EXECUTE pg_catalog.format(
				'WITH moved AS (DELETE FROM %I.stockx_price_history_default '
				'WHERE observed_at >= %L AND observed_at < %L RETURNING *) '
				'INSERT INTO %I.%I SELECT * FROM moved',
				nsp, lo, hi, nsp, partition_name);
			GET DIAGNOSTICS moved = ROW_COUNT;
			EXECUTE pg_catalog.format(
				'ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
				parent, nsp, partition_name, lo, hi);
			action := CASE WHEN moved > 0 THEN 'created from the default partition'
						   ELSE 'created' END;
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
	EXECUTE pg_catalog.format(
		'DELETE FROM %I.stockx_price_history_default WHERE observed_at < %L',
		nsp, pg_catalog.now() - pg_catalog.make_interval(secs => retention_s));
END
$$;

-- What 1.1 stored is also the first row of the history (in the default
-- partition: the monthly ones are made by the workers, and are not
-- members of the extension).
INSERT INTO @extschema@.stockx_price_history (variant_id, sku, currency_code, observed_at,
		lowest_ask, highest_bid, sell_faster, earn_more)
	SELECT variant_id, sku, currency_code, market_updated_at, lowest_ask, highest_bid,
		   sell_faster, earn_more
	  FROM @extschema@.stockx_variant
	 WHERE currency_code IS NOT NULL AND market_updated_at IS NOT NULL;

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
		SELECT lim.*, GREATEST(lim.daily_limit - lim.requests_today, 0) AS left_today
		  FROM @extschema@.stockx_enrich_limiter lim
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
		   CASE WHEN l.daily_limit > 0 THEN l.left_today END AS quota_left_today,
		   l.quota_resets_at, l.requests_per_second,
		   CASE
			 WHEN need.requests_due = 0 THEN NULL
			 WHEN l.daily_limit = 0 OR need.requests_due <= l.left_today
			   THEN pg_catalog.now() + pg_catalog.make_interval(secs => need.requests_due / l.requests_per_second)
			 -- the rest spills over the following days, daily_limit a day
			 ELSE l.quota_resets_at
				  + pg_catalog.make_interval(days => ((need.requests_due - l.left_today - 1) / l.daily_limit)::int)
				  + pg_catalog.make_interval(secs => (((need.requests_due - l.left_today - 1) % l.daily_limit) + 1) / l.requests_per_second)
		   END AS backlog_done_at
	  FROM need, l;

GRANT SELECT ON @extschema@.stockx_price_trend, @extschema@.stockx_enrich_budget TO pg_monitor;

-- The arguments reach back and ahead further than the policy: for the
-- extension's owner and whom it grants them to.
REVOKE ALL ON FUNCTION @extschema@.stockx_price_history_maintain(timestamptz, int) FROM PUBLIC;

-- What the workers call, whatever role started them: the partitions the
-- settings ask for, nothing a caller can choose.
CREATE FUNCTION @extschema@.stockx_price_history_upkeep()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- the schema as it is named now (it may have been renamed)
	EXECUTE pg_catalog.format('SELECT count(*) FROM %I.stockx_price_history_maintain()',
		(SELECT n.nspname FROM pg_catalog.pg_extension e
		   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
		  WHERE e.extname = 'stockx_enrich'));
END
$$;

-- ---------------------------------------------------------------- events

-- A durable outbox of what a consumer may want to act on; every row is
-- also sent as NOTIFY stockx_enrich with the same JSON, so a listener
-- hears it at once and a consumer that was offline reads what it missed
-- (event_id > the last it saw).  Kept for stockx_enrich.event_retention.
CREATE TABLE @extschema@.stockx_event (
	event_id bigserial PRIMARY KEY,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	kind text NOT NULL
		CHECK (kind IN ('run_end', 'circuit_open', 'quota_spent', 'price_move')),
	payload jsonb NOT NULL
);
CREATE INDEX stockx_event_created_at_idx ON @extschema@.stockx_event (created_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_event', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_event_event_id_seq', '');
GRANT SELECT ON @extschema@.stockx_event TO pg_monitor;

CREATE FUNCTION @extschema@.stockx_event_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_catalog.pg_notify('stockx_enrich',
		(pg_catalog.jsonb_build_object('event_id', NEW.event_id, 'kind', NEW.kind,
			'created_at', NEW.created_at) OPERATOR(pg_catalog.||) NEW.payload)::text);
	RETURN NULL;
END
$$;
CREATE TRIGGER stockx_event_notify AFTER INSERT ON @extschema@.stockx_event
	FOR EACH ROW EXECUTE FUNCTION @extschema@.stockx_event_notify();

-- When a run ends (its last worker sets finished_at): its stop reason and
-- counters, and the circuit or the quota when that is why it ended.  As the
-- extension's owner: it reads the limiter's state for the payload.
CREATE FUNCTION @extschema@.stockx_run_ended()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp name := pg_catalog.quote_ident(TG_TABLE_SCHEMA);
	l record;
BEGIN
	EXECUTE pg_catalog.format('INSERT INTO %s.stockx_event (kind, payload) VALUES (%L, $1)',
		nsp, 'run_end')
	USING pg_catalog.jsonb_build_object('run_id', NEW.run_id, 'stop_reason', NEW.stop_reason,
		'started_at', NEW.started_at, 'finished_at', NEW.finished_at, 'workers', NEW.workers,
		'processed', NEW.processed, 'enriched', NEW.enriched, 'not_found', NEW.not_found,
		'failed', NEW.failed, 'requests', NEW.requests, 'responses_429', NEW.responses_429,
		'retries', NEW.retries);
	IF NEW.stop_reason IN ('circuit_open', 'quota') THEN
		EXECUTE pg_catalog.format('SELECT * FROM %s.stockx_enrich_limiter_state()', nsp) INTO l;
		IF NEW.stop_reason = 'circuit_open' THEN
			EXECUTE pg_catalog.format('INSERT INTO %s.stockx_event (kind, payload) VALUES (%L, $1)',
				nsp, 'circuit_open')
			USING pg_catalog.jsonb_build_object('source', 'run', 'run_id', NEW.run_id,
				'circuit_open_until', l.circuit_open_until, 'consecutive_429', l.consecutive_429);
		ELSE
			EXECUTE pg_catalog.format('INSERT INTO %s.stockx_event (kind, payload) VALUES (%L, $1)',
				nsp, 'quota_spent')
			USING pg_catalog.jsonb_build_object('source', 'run', 'run_id', NEW.run_id,
				'requests_today', l.requests_today, 'daily_limit', l.daily_limit,
				'quota_resets_at', l.quota_resets_at);
		END IF;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER stockx_run_ended AFTER UPDATE OF finished_at ON @extschema@.stockx_run
	FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
	EXECUTE FUNCTION @extschema@.stockx_run_ended();

-- ---------------------------------------------------------------- one budget for the account

-- Programs outside the database that call StockX with the same account
-- take a slot of the workers' limiter before each request and report the
-- answer after it.  SECURITY DEFINER: they read and write the persisted
-- quota as the extension's owner.  Grant them to the role those programs
-- log in as.
CREATE FUNCTION @extschema@.stockx_enrich_acquire(timeout_ms int DEFAULT 10000)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'stockx_enrich_acquire'
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.stockx_enrich_report(status int, retry_after text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'stockx_enrich_report'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_acquire(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_report(int, text) FROM PUBLIC;

-- ---------------------------------------------------------------- payout after fees

-- Payout after fees: StockX's seller fees as data a user can edit, a
-- function that turns a sale price into the seller's payout, and a view of
-- the payout at the highest bid and at the lowest ask of every variant.

-- StockX's seller fees, one row per date from which they apply, seller
-- level, currency and category (product_type NULL: every category without
-- a row of its own; categories are lower case, as StockX's productType).
-- The rows of the extension (shipped) are recreated by CREATE EXTENSION and
-- left out of dumps; rows a user adds (shipped = false) are dumped.  To
-- change a fee, add a row with a later valid_from rather than editing a
-- shipped row: an edit of a shipped row is lost by a dump and restore.
CREATE TABLE @extschema@.stockx_fee_schedule (
	valid_from date NOT NULL,
	seller_level int NOT NULL
		CHECK (seller_level BETWEEN 1 AND 5),
	currency_code text NOT NULL
		CHECK (currency_code IN ('AUD', 'CAD', 'CHF', 'EUR', 'GBP', 'HKD',
								 'JPY', 'KRW', 'MXN', 'NZD', 'SGD', 'USD')),
	product_type text
		CHECK (product_type = pg_catalog.lower(pg_catalog.btrim(product_type))
			   AND product_type <> ''),
	transaction_fee_pct numeric NOT NULL
		CHECK (transaction_fee_pct >= 0),
	payment_fee_pct numeric NOT NULL
		CHECK (payment_fee_pct >= 0),
	minimum_fee numeric NOT NULL DEFAULT 0
		CHECK (minimum_fee >= 0),
	shipping numeric NOT NULL DEFAULT 0
		CHECK (shipping >= 0),
	source text,
	shipped boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX stockx_fee_schedule_key_idx
	ON @extschema@.stockx_fee_schedule
	(valid_from, seller_level, currency_code, coalesce(product_type, ''));

COMMENT ON TABLE @extschema@.stockx_fee_schedule IS
	'StockX seller fees used by stockx_payout(); add rows (shipped = false) with a later valid_from to change them';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.product_type IS
	'category (lower case, e.g. watches); NULL: every category without rows of its own';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.transaction_fee_pct IS
	'transaction fee in percent of the sale price (9 for 9%)';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.payment_fee_pct IS
	'payment processing fee in percent of the sale price';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.minimum_fee IS
	'the two fees together are at least this amount';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.shipping IS
	'flat amount per sale the seller pays on top of the fees';
COMMENT ON COLUMN @extschema@.stockx_fee_schedule.shipped IS
	'true: row of the extension, recreated by CREATE EXTENSION and not dumped';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_fee_schedule'::pg_catalog.regclass,
										   'WHERE NOT shipped');

-- The fees of StockX's help pages for sellers as published in 2026: every
-- currency and level, the base rates for every category, then the watches
-- and handbags exceptions (one rate at every level).  StockX lists no
-- minimum seller fee for USD, EUR and GBP in the copy we had (the list is
-- cut off before the United States, EU shows no figure, the United Kingdom
-- is not reached): those ship with minimum_fee 0 and say so in source.
INSERT INTO @extschema@.stockx_fee_schedule
	(valid_from, seller_level, currency_code, product_type, transaction_fee_pct,
	 payment_fee_pct, minimum_fee, shipping, source, shipped)
SELECT DATE '2026-01-01', l.seller_level, c.currency_code, k.product_type,
	   coalesce(k.transaction_fee_pct, l.transaction_fee_pct), 3, c.minimum_fee, 0,
	   'StockX help pages for sellers as published in 2026 '
	   || '(https://stockx.com/help/articles/what-are-stockxs-fees-for-sellers, '
	   || 'https://help.stockx.com/en/articles/1187286-sellers-fees-watches); '
	   || 'figures taken for stockx_enrich 1.2'
	   || c.note,
	   true
  FROM (VALUES (1, 9), (2, 8.5), (3, 8), (4, 7.5), (5, 7))
	   AS l (seller_level, transaction_fee_pct)
 CROSS JOIN (VALUES
		('AUD', 7.50, ''), ('CAD', 7.00, ''), ('CHF', 4.50, ''),
		('HKD', 45, ''), ('JPY', 800, ''), ('KRW', 7500, ''),
		('MXN', 100, ''), ('NZD', 16, ''), ('SGD', 7.00, ''),
		('USD', 0, '; the minimum seller fee for USD was not published in the sources we had '
				|| '(they mention a USD 10.00 minimum only for sellers whose local currency StockX does not list): '
				|| 'minimum_fee 0, add a row with the current minimum'),
		('EUR', 0, '; the minimum seller fee for EUR was not published in the sources we had: '
				|| 'minimum_fee 0, add a row with the current minimum'),
		('GBP', 0, '; the minimum seller fee for GBP was not published in the sources we had: '
				|| 'minimum_fee 0, add a row with the current minimum'))
	   AS c (currency_code, minimum_fee, note)
 CROSS JOIN (VALUES (NULL::text, NULL::numeric), ('watches', 9.9), ('handbags', 14.5))
	   AS k (product_type, transaction_fee_pct);

-- The seller's payout for a sale of amount in currency, at seller_level
-- (NULL: the setting stockx_enrich.seller_level, 1 when unset), with the
-- fees in force on the UTC date of at, for a product of product_type:
--
--   amount - greatest(round(amount * transaction_fee_pct / 100, d)
--                     + round(amount * payment_fee_pct / 100, d),
--                     minimum_fee) - shipping
--
-- d = 0 for JPY and KRW, 2 for the other currencies; each fee is rounded on
-- its own, half away from zero (numeric round).  The fee row: the latest
-- valid_from on or before that date among the rows of that level and
-- currency for that category; only when the category has none there, the
-- latest among the rows for every category (product_type NULL).  So a
-- category exception stays in force until a row for that category replaces
-- it, whatever later rows for every category say.
--
-- The payout is not floored at 0: when the minimum fee (plus shipping)
-- exceeds the amount it is negative, which is what the seller would owe.
CREATE FUNCTION @extschema@.stockx_payout(amount numeric, seller_level int DEFAULT NULL,
	currency text DEFAULT 'USD', at timestamptz DEFAULT pg_catalog.now(),
	product_type text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	lvl int := stockx_payout.seller_level;
	cur text := pg_catalog.upper(pg_catalog.btrim(stockx_payout.currency));
	category text := pg_catalog.lower(pg_catalog.btrim(stockx_payout.product_type));
	setting text;
	on_day date;
	digits int;
	fee record;
BEGIN
	IF amount IS NULL THEN
		RETURN NULL;
	END IF;
	IF amount < 0 THEN
		RAISE EXCEPTION 'sale amount must not be negative: %', amount
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the sale price, 0 or more.';
	END IF;
	IF lvl IS NULL THEN
		setting := pg_catalog.btrim(pg_catalog.current_setting('stockx_enrich.seller_level', true));
		IF setting IS NULL OR setting = '' THEN
			lvl := 1;
		ELSIF setting ~ '^[0-9]{1,9}$' THEN
			lvl := setting::int;
		ELSE
			RAISE EXCEPTION 'invalid seller level %', pg_catalog.quote_literal(setting)
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The level comes from the setting stockx_enrich.seller_level.',
					  HINT = 'SET stockx_enrich.seller_level to 1, 2, 3, 4 or 5.';
		END IF;
	END IF;
	IF lvl NOT BETWEEN 1 AND 5 THEN
		RAISE EXCEPTION 'seller level % is out of range', lvl
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'StockX seller levels are 1 to 5.';
	END IF;
	IF cur IS NULL THEN
		RAISE EXCEPTION 'currency must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass a StockX currency code, e.g. ''USD''.';
	END IF;
	IF stockx_payout.at IS NULL THEN
		RAISE EXCEPTION 'time of sale must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass the time of the sale, e.g. now().';
	END IF;
	IF cur NOT IN ('AUD', 'CAD', 'CHF', 'EUR', 'GBP', 'HKD', 'JPY', 'KRW',
				   'MXN', 'NZD', 'SGD', 'USD') THEN
		RAISE EXCEPTION 'unknown currency %', pg_catalog.quote_literal(stockx_payout.currency)
			USING ERRCODE = 'no_data_found',
				  HINT = 'StockX currencies are AUD, CAD, CHF, EUR, GBP, HKD, JPY, KRW, MXN, NZD, SGD and USD.';
	END IF;

	on_day := (stockx_payout.at AT TIME ZONE 'UTC')::date;
	SELECT f.transaction_fee_pct, f.payment_fee_pct, f.minimum_fee, f.shipping
	  INTO fee
	  FROM @extschema@.stockx_fee_schedule f
	 WHERE f.seller_level = lvl
	   AND f.currency_code = cur
	   AND f.valid_from <= on_day
	   AND (f.product_type IS NULL OR f.product_type = category)
	 ORDER BY f.product_type IS NULL, f.valid_from DESC
	 LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no seller fees for currency %, seller level % on %', cur, lvl, on_day
			USING ERRCODE = 'no_data_found',
				  HINT = 'Insert a row into @extschema@.stockx_fee_schedule for that currency and level with a valid_from on or before that date.';
	END IF;

	digits := CASE WHEN cur IN ('JPY', 'KRW') THEN 0 ELSE 2 END;
	RETURN amount
		   - greatest(pg_catalog.round(amount * fee.transaction_fee_pct / 100, digits)
					  + pg_catalog.round(amount * fee.payment_fee_pct / 100, digits),
					  fee.minimum_fee)
		   - fee.shipping;
END
$$;

-- The payout at the highest bid (selling now) and at the lowest ask, per
-- variant and currency of stockx_market, at the seller level of the setting
-- stockx_enrich.seller_level and today's fees; a product's product_type
-- picks the fees of its category when there are any.
CREATE VIEW @extschema@.stockx_variant_payout AS
	SELECT v.sku, p.title, v.variant_value AS size, v.variant_id, m.currency_code,
		   s.seller_level, m.highest_bid,
		   @extschema@.stockx_payout(m.highest_bid, s.seller_level, m.currency_code,
									 pg_catalog.now(), p.product_type) AS payout_sell_now,
		   m.lowest_ask,
		   @extschema@.stockx_payout(m.lowest_ask, s.seller_level, m.currency_code,
									 pg_catalog.now(), p.product_type) AS payout_at_lowest_ask,
		   m.market_updated_at
	  FROM @extschema@.stockx_market m
	  JOIN @extschema@.stockx_variant v ON v.variant_id = m.variant_id
	  JOIN @extschema@.stockx_product p ON p.sku = v.sku
	 CROSS JOIN (SELECT coalesce(nullif(pg_catalog.btrim(
					pg_catalog.current_setting('stockx_enrich.seller_level', true)), ''),
					'1')::int AS seller_level) s;

-- Fees are public figures: anyone may compute payouts (the function reads
-- the schedule with the caller's rights, so readers of the view need it too).
GRANT SELECT ON @extschema@.stockx_fee_schedule TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stockx_payout(numeric, int, text, timestamptz, text) TO PUBLIC;
GRANT SELECT ON @extschema@.stockx_variant_payout TO pg_monitor;

-- ---------------------------------------------------------------- barcodes

-- Every GTIN (UPC, EAN-13 ...) StockX lists for a variant, one row each,
-- so that a barcode finds its product and size through an index.  gtin is
-- the identifier as StockX sends it, blanks trimmed; entries whose
-- identifier is not a JSON string of digits are left out.  A variant that
-- lists the same identifier twice has one row (the first entry's type).
--
-- The table is derived from stockx_variant.gtins: the workers write a
-- product's rows with its variants, the trigger below follows later changes,
-- and deleting a variant deletes its rows (the foreign key).  Variants
-- inserted by hand need SELECT stockx_gtin_rebuild().  Its rows are dumped
-- like the variants' (after them: the foreign key orders the data).
CREATE TABLE @extschema@.stockx_gtin (
	gtin text NOT NULL
		CHECK (gtin ~ '^[0-9]+$'),
	gtin_type text,
	variant_id uuid NOT NULL
		REFERENCES @extschema@.stockx_variant (variant_id) ON DELETE CASCADE ON UPDATE CASCADE,
	sku text NOT NULL,
	PRIMARY KEY (variant_id, gtin)
);
-- two indexes, not more: the workers write some 20 rows per product
CREATE INDEX stockx_gtin_gtin_idx ON @extschema@.stockx_gtin (gtin);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_gtin', '');

COMMENT ON TABLE @extschema@.stockx_gtin IS
	'GTINs of stockx_variant.gtins, one row each, kept by triggers on stockx_variant';

-- The (gtin, gtin_type) entries of a variant's gtins as StockX sends them
-- (an array of {identifier, type}): identifiers that are strings of digits
-- once blanks are trimmed, each once (with the type of its first entry).
-- Anything else (NULL, not an array, other entries) gives no row.
CREATE FUNCTION @extschema@.stockx_gtin_entries(gtins jsonb)
RETURNS TABLE (gtin text, gtin_type text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- no SET clause, so that the planner inlines it into the workers' insert;
-- every function and operator is qualified instead
AS $$
	SELECT DISTINCT ON (x.gtin) x.gtin, x.gtin_type
	  FROM pg_catalog.jsonb_array_elements(
			   CASE WHEN pg_catalog.jsonb_typeof($1) OPERATOR(pg_catalog.=) 'array'
					THEN $1 ELSE '[]'::jsonb END)
		   WITH ORDINALITY AS e (entry, ord)
	 CROSS JOIN LATERAL (
		SELECT pg_catalog.btrim(e.entry OPERATOR(pg_catalog.->>) 'identifier') AS gtin,
			   CASE WHEN pg_catalog.jsonb_typeof(e.entry OPERATOR(pg_catalog.->) 'type')
						 OPERATOR(pg_catalog.=) 'string'
					THEN pg_catalog.btrim(e.entry OPERATOR(pg_catalog.->>) 'type') END AS gtin_type) x
	 WHERE pg_catalog.jsonb_typeof(e.entry) OPERATOR(pg_catalog.=) 'object'
	   AND pg_catalog.jsonb_typeof(e.entry OPERATOR(pg_catalog.->) 'identifier')
		   OPERATOR(pg_catalog.=) 'string'
	   AND x.gtin OPERATOR(pg_catalog.~) '^[0-9]+$'
	 ORDER BY x.gtin, e.ord
$$;

-- The trigger names the tables through the schema of the table it fires
-- on, not @extschema@: the workers store variants through it, and it keeps
-- working when the extension's schema is renamed.

-- A variant whose gtins or sku changed: its rows again.
CREATE FUNCTION @extschema@.stockx_gtin_sync()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format(
		'DELETE FROM %I.stockx_gtin WHERE variant_id IN ($1, $2)', TG_TABLE_SCHEMA)
	  USING OLD.variant_id, NEW.variant_id;
	EXECUTE pg_catalog.format(
		'INSERT INTO %1$I.stockx_gtin (gtin, gtin_type, variant_id, sku) '
		'SELECT e.gtin, e.gtin_type, $1, $2 FROM %1$I.stockx_gtin_entries($3) e',
		TG_TABLE_SCHEMA)
	  USING NEW.variant_id, NEW.sku, NEW.gtins;
	RETURN NULL;
END
$$;

-- The workers write a product's rows of stockx_gtin themselves, with its
-- variants (one statement for all, where a row trigger cost more than the
-- rest of the product's write).  This trigger keeps the table in step with
-- other changes: a SKU renamed in stockx_product reaches stockx_variant.sku
-- by ON UPDATE CASCADE, gtins edited by hand.  The workers' upsert rewrites
-- gtins at every variants call and their market writes update every
-- variant: the WHEN clause keeps it to real changes.
CREATE TRIGGER stockx_variant_gtin_update
	AFTER UPDATE OF gtins, sku ON @extschema@.stockx_variant
	FOR EACH ROW
	WHEN (OLD.gtins IS DISTINCT FROM NEW.gtins OR OLD.sku IS DISTINCT FROM NEW.sku)
	EXECUTE FUNCTION @extschema@.stockx_gtin_sync();

-- Empties stockx_gtin and fills it again from stockx_variant; returns the
-- number of rows.  Needed only after variants were inserted by hand or the
-- trigger was bypassed (a
-- data-only restore with --disable-triggers, session_replication_role).
CREATE FUNCTION @extschema@.stockx_gtin_rebuild()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM @extschema@.stockx_gtin;
	INSERT INTO @extschema@.stockx_gtin (gtin, gtin_type, variant_id, sku)
	SELECT e.gtin, e.gtin_type, v.variant_id, v.sku
	  FROM @extschema@.stockx_variant v
	 CROSS JOIN LATERAL @extschema@.stockx_gtin_entries(v.gtins) e;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_gtin_rebuild() FROM PUBLIC;

-- What 1.1 stored.
SELECT @extschema@.stockx_gtin_rebuild();

-- A GTIN as a user writes it: the digits once every blank (space, tab ...)
-- is removed, when they make a valid GTIN-8, GTIN-12 (UPC-A), GTIN-13
-- (EAN-13) or GTIN-14 with a correct GS1 check digit; else NULL.  Hyphens
-- and other characters are not removed: such input is invalid.
CREATE FUNCTION @extschema@.stockx_gtin_normalize(gtin text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN (SELECT pg_catalog.sum(pg_catalog.substr(pg_catalog.reverse(d.g), i, 1)::int
											* CASE WHEN i % 2 = 0 THEN 3 ELSE 1 END) % 10 = 0
						FROM pg_catalog.generate_series(1, pg_catalog.length(d.g)) AS i)
				THEN d.g END
	  FROM (SELECT pg_catalog.regexp_replace($1, '[[:space:]]+', '', 'g') AS g) d
	 WHERE d.g ~ '^([0-9]{8}|[0-9]{12,14})$'
$$;

-- The forms under which a (normalized) GTIN can be stored: the same code
-- written with 8, 12, 13 or 14 digits, leading zeros added or removed (GS1
-- compares GTINs as 14 digits padded with zeros), so that the EAN-13
-- 0197611157695 finds the UPC 197611157695 StockX lists, and back.
CREATE FUNCTION @extschema@.stockx_gtin_forms(gtin text)
RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.array_agg(pg_catalog.lpad(c.core, w.n, '0') ORDER BY w.n)
	  FROM (SELECT pg_catalog.ltrim($1, '0') AS core) c
	 CROSS JOIN pg_catalog.unnest('{8,12,13,14}'::int[]) AS w (n)
	 WHERE w.n >= pg_catalog.length(c.core)
$$;

-- The product and size a barcode belongs to: one row per variant that
-- lists it (in any of its 8-, 12-, 13- or 14-digit forms), none when no
-- stored variant does; gtin_type is StockX's type of the matching entry.
-- Blanks in the input are ignored; anything else that is not a valid GTIN
-- is an error (22023).
CREATE FUNCTION @extschema@.stockx_lookup_gtin(gtin text)
RETURNS TABLE (sku text, title text, brand text, style_id text, size text,
			   variant_id uuid, gtin_type text, status text)
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	digits text := @extschema@.stockx_gtin_normalize(stockx_lookup_gtin.gtin);
BEGIN
	IF digits IS NULL THEN
		RAISE EXCEPTION 'invalid GTIN %', pg_catalog.quote_literal(stockx_lookup_gtin.gtin)
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A GTIN has 8, 12, 13 or 14 digits, the last one a GS1 check digit.',
				  HINT = 'Pass the barcode''s digits, e.g. ''197611157695''; blanks are ignored.';
	END IF;
	-- one row per variant (StockX may list a UPC and its EAN-13 both):
	-- the type of the form written as the input, else of the shortest
	RETURN QUERY
	SELECT r.sku, r.title, r.brand, r.style_id, r.size, r.variant_id, r.gtin_type, r.status
	  FROM (SELECT DISTINCT ON (g.variant_id)
				   g.sku, p.title, p.brand, p.style_id, v.variant_value AS size, g.variant_id,
				   g.gtin_type, p.status
			  FROM @extschema@.stockx_gtin g
			  JOIN @extschema@.stockx_variant v ON v.variant_id = g.variant_id
			  JOIN @extschema@.stockx_product p ON p.sku = g.sku
			 WHERE g.gtin = ANY (@extschema@.stockx_gtin_forms(digits))
			 ORDER BY g.variant_id, g.gtin = digits DESC, pg_catalog.length(g.gtin)) r
	 ORDER BY r.sku, r.size, r.variant_id;
END
$$;

-- Queues products by barcode: each GTIN becomes a stockx_product row with
-- query_kind 'gtin' and the GTIN's digits (blanks removed, otherwise as
-- given: a UPC stays 12 digits, an EAN-13 13) as its sku; the workers
-- search StockX with it.  Not queued: a GTIN some stored variant already
-- lists, in any of its forms (its product is there); one queued before, in
-- any form; the same code twice in the array (the first is kept).  Returns
-- how many rows were added.  Any invalid GTIN is an error and queues
-- nothing.
CREATE FUNCTION @extschema@.stockx_enrich_enqueue_gtins(gtins text[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	added bigint;
BEGIN
	IF gtins IS NULL THEN
		RAISE EXCEPTION 'GTIN array must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass an array of barcodes, e.g. ARRAY[''197611157695''].';
	END IF;
	SELECT s INTO bad
	  FROM pg_catalog.unnest(gtins) AS s
	 WHERE @extschema@.stockx_gtin_normalize(s) IS NULL
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid GTIN %', coalesce(pg_catalog.quote_literal(bad), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A GTIN has 8, 12, 13 or 14 digits, the last one a GS1 check digit.',
				  HINT = 'Fix or remove that GTIN; nothing was queued.';
	END IF;
	INSERT INTO @extschema@.stockx_product (sku, query_kind)
	SELECT n.g, 'gtin'
	  FROM (SELECT DISTINCT ON (pg_catalog.lpad(d.g, 14, '0')) d.g
			  FROM (SELECT @extschema@.stockx_gtin_normalize(s) AS g, o
					  FROM pg_catalog.unnest(gtins) WITH ORDINALITY AS u (s, o)) d
			 ORDER BY pg_catalog.lpad(d.g, 14, '0'), d.o) n
	 WHERE NOT EXISTS (SELECT 1 FROM @extschema@.stockx_gtin k
						WHERE k.gtin = ANY (@extschema@.stockx_gtin_forms(n.g)))
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.stockx_product q
						WHERE q.sku = ANY (@extschema@.stockx_gtin_forms(n.g))
						  AND q.query_kind = 'gtin')
	ON CONFLICT (sku) DO NOTHING;
	GET DIAGNOSTICS added = ROW_COUNT;
	RETURN added;
END
$$;

-- ---------------------------------------------------------------- size conversion

-- One row per variant: its size and the same size in US men's, US women's,
-- UK, EU and centimetres, from the size chart StockX sends with the
-- variant (availableConversions: [{size, type}], types compared without
-- regard to case).  The label is removed from the size ("US M 9.5" gives
-- 9.5, "EU 42 2/3" 42 2/3, "27.5 cm" 27.5); NULL when the chart has no
-- size of that type (the first one counts when it has several).
CREATE VIEW @extschema@.stockx_size_conversion AS
	SELECT v.sku, v.variant_id, v.variant_value AS size,
		   c.us_m, c.us_w, c.uk, c.eu, c.cm
	  FROM @extschema@.stockx_variant v
	 CROSS JOIN LATERAL (
		SELECT (pg_catalog.array_agg(x.size ORDER BY e.ord) FILTER (WHERE x.type = 'us m'))[1] AS us_m,
			   (pg_catalog.array_agg(x.size ORDER BY e.ord) FILTER (WHERE x.type = 'us w'))[1] AS us_w,
			   (pg_catalog.array_agg(x.size ORDER BY e.ord) FILTER (WHERE x.type = 'uk'))[1] AS uk,
			   (pg_catalog.array_agg(x.size ORDER BY e.ord) FILTER (WHERE x.type = 'eu'))[1] AS eu,
			   (pg_catalog.array_agg(x.size ORDER BY e.ord) FILTER (WHERE x.type = 'cm'))[1] AS cm
		  FROM pg_catalog.jsonb_array_elements(
				   CASE WHEN pg_catalog.jsonb_typeof(v.size_chart -> 'availableConversions') = 'array'
						THEN v.size_chart -> 'availableConversions' ELSE '[]'::jsonb END)
			   WITH ORDINALITY AS e (conv, ord)
		 CROSS JOIN LATERAL (
			SELECT pg_catalog.lower(pg_catalog.regexp_replace(pg_catalog.btrim(e.conv ->> 'type'),
															  '[[:space:]]+', ' ', 'g')) AS type,
				   -- "US M 9.5" -> "9.5", "EU 43" -> "43", "27.5 cm" -> "27.5"
				   pg_catalog.regexp_replace(
					   pg_catalog.regexp_replace(pg_catalog.btrim(e.conv ->> 'size'),
						   '^(US[[:space:]]*[MWY]?|UK|EU|CM)[[:space:]]*(?=[0-9])', '', 'i'),
					   '(?<=[0-9])[[:space:]]*CM$', '', 'i') AS size) x
		 WHERE pg_catalog.jsonb_typeof(e.conv) = 'object'
		   AND pg_catalog.jsonb_typeof(e.conv -> 'size') = 'string') c;

GRANT SELECT ON @extschema@.stockx_gtin, @extschema@.stockx_size_conversion TO pg_monitor;
