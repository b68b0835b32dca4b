/* stockx_enrich--1.2--1.3.sql: trust no role but the owner. */

\echo Use "ALTER EXTENSION stockx_enrich UPDATE TO '1.3'" to load this file. \quit

-- Rules of this version (README, "Roles and what they can do"): no SECURITY
-- DEFINER function is executable by PUBLIC unless it is meant for everyone;
-- each pins search_path and builds no SQL from what its caller or trigger
-- hands it; a trigger function checks that it fires on the table it
-- belongs to; nothing a caller's open transaction holds is something a
-- worker waits for; no lock the workers serialize on can be taken by a role
-- without grants.

-- ---------------------------------------------------------------- currencies

-- The 30 codes of StockX's CurrencyCode enum (its prose lists 12), in one
-- place: the CHECK constraints and the functions that check a currency
-- read them from here.
CREATE FUNCTION @extschema@.stockx_currency_codes()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT ARRAY['AUD', 'BRL', 'CAD', 'CHF', 'CLP', 'CNY', 'DKK', 'EUR', 'GBP', 'HKD',
				 'HUF', 'IDR', 'ILS', 'JPY', 'KRW', 'KWD', 'MOP', 'MXN', 'MYR', 'NOK',
				 'NZD', 'PEN', 'PHP', 'PLN', 'SEK', 'SGD', 'THB', 'TWD', 'USD', 'VND']::text[]
$$;

-- ---------------------------------------------------------------- events

-- Events are written by the code that knows of them (the workers, the
-- budget functions), never by a trigger on stockx_run: the run_end trigger
-- ran as the extension's owner and could be attached to anyone's table.
DROP TRIGGER stockx_run_ended ON @extschema@.stockx_run;
DROP FUNCTION @extschema@.stockx_run_ended();

-- NOTIFY stockx_enrich is only a wake-up call, sent by the writers after
-- their data committed; it carries the event's id and kind, nothing more
-- (anyone can LISTEN, and anyone can NOTIFY).  A consumer reads the rows.
DROP TRIGGER stockx_event_notify ON @extschema@.stockx_event;
DROP FUNCTION @extschema@.stockx_event_notify();

-- The transaction that wrote each event, so that a consumer can read them
-- in an order in which no event commits behind its cursor (see
-- stockx_events_since).  Stamped by a trigger whatever the insert says, so
-- that restored rows belong to the restoring transaction.
ALTER TABLE @extschema@.stockx_event ADD COLUMN txid xid8;
UPDATE @extschema@.stockx_event SET txid = pg_catalog.pg_current_xact_id();
ALTER TABLE @extschema@.stockx_event
	ALTER COLUMN txid SET DEFAULT pg_catalog.pg_current_xact_id(),
	ALTER COLUMN txid SET NOT NULL;
CREATE INDEX stockx_event_txid_idx ON @extschema@.stockx_event (txid, event_id);

CREATE FUNCTION @extschema@.stockx_event_stamp()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.txid := pg_catalog.pg_current_xact_id();
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_event_stamp() FROM PUBLIC;
CREATE TRIGGER stockx_event_stamp BEFORE INSERT ON @extschema@.stockx_event
	FOR EACH ROW EXECUTE FUNCTION @extschema@.stockx_event_stamp();

-- The events after cursor (NULL: from the oldest kept), at most
-- max_events, in the order they are delivered, each with the cursor to
-- pass next time.  Only events of transactions older than every
-- transaction still in progress are returned: one that commits later
-- always sorts after every event already returned, so a consumer that
-- keeps the last cursor it saw misses nothing, whatever order the writers
-- committed in.  An event can come later than its event_id suggests, never
-- be skipped.  With the caller's rights (SELECT on stockx_event: pg_monitor
-- has it).
CREATE FUNCTION @extschema@.stockx_events_since(cursor text DEFAULT NULL,
	max_events int DEFAULT 1000)
RETURNS TABLE (event_id bigint, kind text, created_at timestamptz, payload jsonb,
			   next_cursor text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	parts text[];
	after_txid xid8 := '0';
	after_id bigint := 0;
	horizon xid8 := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
BEGIN
	IF max_events IS NULL OR max_events < 1 THEN
		RAISE EXCEPTION 'max_events must be at least 1'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass how many events to read at most, e.g. 1000.';
	END IF;
	IF stockx_events_since.cursor IS NOT NULL THEN
		parts := pg_catalog.regexp_match(stockx_events_since.cursor, '^([0-9]{1,20})/([0-9]{1,19})$');
		IF parts IS NULL THEN
			RAISE EXCEPTION 'invalid event cursor %', pg_catalog.quote_literal(stockx_events_since.cursor)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass the next_cursor of the last event you read, or NULL to start from the oldest.';
		END IF;
		after_txid := parts[1]::xid8;
		after_id := parts[2]::bigint;
		IF after_txid >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()) THEN
			RAISE EXCEPTION 'event cursor % is ahead of this server', pg_catalog.quote_literal(stockx_events_since.cursor)
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'It names a transaction this server has not reached: the database was restored from a dump since.',
					  HINT = 'Start again with NULL; events are then delivered again from the oldest kept.';
		END IF;
	END IF;
	RETURN QUERY
	SELECT e.event_id, e.kind, e.created_at, e.payload, e.txid::text || '/' || e.event_id::text
	  FROM @extschema@.stockx_event e
	 WHERE e.txid < horizon
	   AND (e.txid, e.event_id) > (after_txid, after_id)
	 ORDER BY e.txid, e.event_id
	 LIMIT max_events;
END
$$;

-- ---------------------------------------------------------------- price history upkeep

-- The workers run the upkeep as the extension's owner themselves (the way
-- a SECURITY DEFINER function would, with no SQL entry point): nobody else
-- can hold its locks.
DROP FUNCTION @extschema@.stockx_price_history_upkeep();

-- Partitions from the month of `since` to `months_ahead` months after this
-- one, and drops those wholly older than history_retention.  Everything is
-- found and acted on by OID: the parent and the default partition as
-- members of the extension, monthly partitions as the parent's children
-- with their bounds, whatever they are named or wherever they were moved.
-- A month whose partition name is taken by something that is not its
-- partition is an error (its rows wait in the default partition).
-- Serialized by SHARE UPDATE EXCLUSIVE on the parent (which only roles
-- that may change the history can take), the default partition locked
-- before its rows move so that no writer adds one in between.
CREATE OR REPLACE FUNCTION @extschema@.stockx_price_history_maintain(since timestamptz DEFAULT NULL,
		months_ahead int DEFAULT 2)
RETURNS TABLE (partition_name text, action text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET default_tablespace = ''
SET default_table_access_method = 'heap'
SET default_toast_compression = 'pglz'
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
	ext oid;
	nsp name;
	parent regclass;
	deflt regclass;
	this_month timestamp := pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC');
	m timestamp;
	lo timestamptz;
	hi timestamptz;
	squatter regclass;
	retention_s bigint;
	part record;
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
	SELECT e.oid, n.nspname INTO ext, nsp
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'stockx_enrich';
	SELECT pg_catalog.max(c.oid) FILTER (WHERE c.relname = 'stockx_price_history'),
		   pg_catalog.max(c.oid) FILTER (WHERE c.relname = 'stockx_price_history_default')
	  INTO parent, deflt
	  FROM pg_catalog.pg_depend d
	  JOIN pg_catalog.pg_class c ON c.oid = d.objid
	 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND d.refobjid = ext AND d.deptype = 'e';
	-- one caller at a time; inserts (ROW EXCLUSIVE) go on meanwhile
	EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);

	m := pg_catalog.date_trunc('month', least(coalesce(since, pg_catalog.now()), pg_catalog.now())
											 AT TIME ZONE 'UTC');
	WHILE m <= this_month + pg_catalog.make_interval(months => months_ahead) LOOP
		lo := m AT TIME ZONE 'UTC';
		hi := (m + interval '1 month') AT TIME ZONE 'UTC';
		partition_name := 'stockx_price_history_' || pg_catalog.to_char(m, 'YYYYMM');
		m := m + interval '1 month';
		-- a partition already holds that month (whatever its name or schema)
		CONTINUE WHEN EXISTS (
			SELECT 1 FROM @extschema@.stockx_price_history_partitions(parent) p
			 WHERE p.lower_bound < hi AND p.upper_bound > lo);
		squatter := pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, partition_name));
		IF squatter IS NOT NULL THEN
			RAISE EXCEPTION 'relation % is in the way of the price history partition for %',
				squatter, pg_catalog.to_char(lo, 'YYYY-MM')
				USING ERRCODE = 'duplicate_table',
					  DETAIL = 'It is not a partition of stockx_price_history; rows of that month stay in stockx_price_history_default meanwhile.',
					  HINT = 'Rename or drop that relation, then run SELECT * FROM stockx_price_history_maintain() as the extension''s owner.';
		END IF;
		-- made apart, with its own indexes, then attached; rows of that
		-- month waiting in the default partition move in first, with the
		-- default partition locked so that no writer adds one in between
		-- (ATTACH takes that lock anyway)
		EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', deflt);
		EXECUTE pg_catalog.format(
			'CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
			nsp, partition_name, parent);
		EXECUTE pg_catalog.format(
			'CREATE UNIQUE INDEX %I ON %I.%I (variant_id, currency_code, observed_at)',
			partition_name || '_key', nsp, partition_name);
		EXECUTE pg_catalog.format('CREATE INDEX %I ON %I.%I (sku, observed_at)',
			partition_name || '_sku_idx', nsp, partition_name);
		EXECUTE pg_catalog.format(
			'WITH moved AS (DELETE FROM %s WHERE observed_at >= %L AND observed_at < %L RETURNING *) '
			'INSERT INTO %I.%I SELECT * FROM moved',
			deflt, lo, hi, nsp, partition_name);
		GET DIAGNOSTICS moved = ROW_COUNT;
		EXECUTE pg_catalog.format(
			'ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
			parent, nsp, partition_name, lo, hi);
		action := CASE WHEN moved > 0 THEN 'created from the default partition'
					   ELSE 'created' END;
		RETURN NEXT;
	END LOOP;

	-- whole months older than the retention go (0 keeps everything)
	SELECT s.setting::bigint INTO retention_s
	  FROM pg_catalog.pg_settings s WHERE s.name = 'stockx_enrich.history_retention';
	IF coalesce(retention_s, 0) = 0 THEN
		RETURN;
	END IF;
	FOR part IN
		SELECT p.partition
		  FROM @extschema@.stockx_price_history_partitions(parent) p
		 WHERE p.upper_bound <= pg_catalog.now() - pg_catalog.make_interval(secs => retention_s)
		 ORDER BY p.lower_bound
	LOOP
		-- its name, qualified when it was moved out of the extension's schema
		SELECT CASE WHEN n.nspname = nsp THEN c.relname::text ELSE part.partition::text END
		  INTO partition_name
		  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = part.partition;
		EXECUTE pg_catalog.format('DROP TABLE %s', part.partition);
		action := 'dropped';
		RETURN NEXT;
	END LOOP;
	EXECUTE pg_catalog.format('DELETE FROM %s WHERE observed_at < %L',
		deflt, pg_catalog.now() - pg_catalog.make_interval(secs => retention_s));
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_price_history_maintain(timestamptz, int) FROM PUBLIC;

-- The partitions of the price history (not the default one) with the
-- range each holds, read from their bounds.
CREATE FUNCTION @extschema@.stockx_price_history_partitions(parent regclass)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $$
	SELECT c.oid::pg_catalog.regclass, b[1]::timestamptz, b[2]::timestamptz
	  FROM pg_catalog.pg_inherits i
	  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	 CROSS JOIN LATERAL pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
			'^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS b
	 WHERE i.inhparent = $1
$$;

-- ---------------------------------------------------------------- freshness

-- A floor under refresh_every (a refresh of a microsecond would spend the
-- day's quota on one row) and bounds on priority.  Rows outside are
-- brought inside first.
UPDATE @extschema@.stockx_product SET refresh_every = interval '5 minutes'
 WHERE refresh_every < interval '5 minutes';
UPDATE @extschema@.stockx_product SET priority = greatest(least(priority, 1000), -1000)
 WHERE priority NOT BETWEEN -1000 AND 1000;
ALTER TABLE @extschema@.stockx_product
	DROP CONSTRAINT stockx_product_refresh_every_check,
	ADD CONSTRAINT stockx_product_refresh_every_check
		CHECK (refresh_every >= interval '5 minutes'),
	ADD CONSTRAINT stockx_product_priority_check
		CHECK (priority BETWEEN -1000 AND 1000);

-- Refresh claims read the heads of two indexes: rows on the setting
-- refresh_after in (priority, market_updated_at) order, and rows with their
-- own refresh_every, which are sorted among themselves (a few, as a rule).
DROP INDEX @extschema@.stockx_product_refresh_idx;
CREATE INDEX stockx_product_refresh_idx
	ON @extschema@.stockx_product (priority DESC, market_updated_at)
	WHERE status = 'enriched' AND refresh_every IS NULL;
CREATE INDEX stockx_product_refresh_own_idx
	ON @extschema@.stockx_product (priority DESC, market_updated_at)
	WHERE status = 'enriched' AND refresh_every IS NOT NULL;

-- ---------------------------------------------------------------- restore in parallel

-- pg_restore -j loads the extension's tables in parallel, while the
-- constraints CREATE EXTENSION made already stand: a foreign key between
-- two of them fails when the referencing rows come first.  What the
-- foreign keys did (deleting and renaming along) triggers do now; the
-- workers only ever write variants, markets and barcodes of the product
-- they hold.

DROP TRIGGER stockx_variant_gtin_update ON @extschema@.stockx_variant;
ALTER TABLE @extschema@.stockx_variant DROP CONSTRAINT stockx_variant_sku_fkey;
ALTER TABLE @extschema@.stockx_market DROP CONSTRAINT stockx_market_variant_id_fkey;
ALTER TABLE @extschema@.stockx_gtin DROP CONSTRAINT stockx_gtin_variant_id_fkey;

DROP FUNCTION @extschema@.stockx_gtin_sync();

-- One trigger function for what the foreign keys did and for keeping
-- stockx_gtin in step:
--   stockx_product  DELETE    deletes the variants and price alerts of the deleted SKUs
--                   TRUNCATE  empties stockx_variant and stockx_price_alert
--                   UPDATE    (of sku, row by row) renames the SKU in its variants
--                             and price alerts
--   stockx_variant  DELETE    deletes the market rows and barcodes of the deleted variants
--                   TRUNCATE  empties stockx_market and stockx_gtin
--                   UPDATE    (of gtins, sku or variant_id, row by row) writes the
--                             variant's barcodes again; a new variant_id
--                             carries its market rows along
-- It runs only on those two tables: it first checks that the table it
-- fires on is one of them, a member of the extension (by OID, so a trigger
-- attached to any other table refuses to run), and takes the schema from
-- that table, so it follows a rename of the schema.  With the rights of
-- whoever changed the table.
CREATE FUNCTION @extschema@.stockx_cascade()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp name;
BEGIN
	-- a statement that deleted nothing has nothing to pass on
	IF TG_OP = 'DELETE' AND TG_LEVEL = 'STATEMENT' THEN
		PERFORM FROM old_rows LIMIT 1;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
	END IF;
	SELECT n.nspname INTO nsp
	  FROM pg_catalog.pg_depend d
	  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
	  JOIN pg_catalog.pg_class c ON c.oid = d.objid
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND d.deptype = 'e'
	   AND e.extname = 'stockx_enrich'
	   AND c.oid = TG_RELID
	   AND c.relname IN ('stockx_product', 'stockx_variant');
	IF nsp IS NULL THEN
		RAISE EXCEPTION 'stockx_cascade() fires only on the tables stockx_product and stockx_variant of stockx_enrich'
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Drop that trigger; the function belongs to the extension stockx_enrich.';
	END IF;

	IF TG_TABLE_NAME = 'stockx_product' THEN
		IF TG_OP = 'DELETE' THEN
			EXECUTE pg_catalog.format(
				'DELETE FROM %I.stockx_variant v USING old_rows o WHERE v.sku = o.sku', nsp);
			EXECUTE pg_catalog.format(
				'DELETE FROM %I.stockx_price_alert a USING old_rows o WHERE a.sku = o.sku', nsp);
		ELSIF TG_OP = 'TRUNCATE' THEN
			EXECUTE pg_catalog.format('TRUNCATE %1$I.stockx_variant, %1$I.stockx_price_alert', nsp);
		ELSIF TG_OP = 'UPDATE' THEN
			EXECUTE pg_catalog.format('UPDATE %I.stockx_variant SET sku = $1 WHERE sku = $2', nsp)
			  USING NEW.sku, OLD.sku;
			EXECUTE pg_catalog.format('UPDATE %I.stockx_price_alert SET sku = $1 WHERE sku = $2', nsp)
			  USING NEW.sku, OLD.sku;
		END IF;
	ELSIF TG_OP = 'DELETE' THEN
		EXECUTE pg_catalog.format(
			'DELETE FROM %I.stockx_market m USING old_rows o WHERE m.variant_id = o.variant_id', nsp);
		EXECUTE pg_catalog.format(
			'DELETE FROM %I.stockx_gtin g USING old_rows o WHERE g.variant_id = o.variant_id', nsp);
	ELSIF TG_OP = 'TRUNCATE' THEN
		EXECUTE pg_catalog.format('TRUNCATE %1$I.stockx_market, %1$I.stockx_gtin', nsp);
	ELSIF TG_OP = 'UPDATE' THEN
		IF OLD.variant_id IS DISTINCT FROM NEW.variant_id THEN
			EXECUTE pg_catalog.format(
				'UPDATE %I.stockx_market SET variant_id = $1 WHERE variant_id = $2', nsp)
			  USING NEW.variant_id, OLD.variant_id;
		END IF;
		EXECUTE pg_catalog.format(
			'DELETE FROM %I.stockx_gtin WHERE variant_id IN ($1, $2)', nsp)
		  USING OLD.variant_id, NEW.variant_id;
		EXECUTE pg_catalog.format(
			'INSERT INTO %1$I.stockx_gtin (gtin, gtin_type, variant_id, sku) '
			'SELECT e.gtin, e.gtin_type, $1, $2 FROM %1$I.stockx_gtin_entries($3) e', nsp)
		  USING NEW.variant_id, NEW.sku, NEW.gtins;
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_cascade() FROM PUBLIC;

CREATE TRIGGER stockx_product_delete AFTER DELETE ON @extschema@.stockx_product
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.stockx_cascade();
CREATE TRIGGER stockx_product_truncate AFTER TRUNCATE ON @extschema@.stockx_product
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.stockx_cascade();
CREATE TRIGGER stockx_product_rename AFTER UPDATE OF sku ON @extschema@.stockx_product
	FOR EACH ROW WHEN (OLD.sku IS DISTINCT FROM NEW.sku)
	EXECUTE FUNCTION @extschema@.stockx_cascade();
CREATE TRIGGER stockx_variant_delete AFTER DELETE ON @extschema@.stockx_variant
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.stockx_cascade();
CREATE TRIGGER stockx_variant_truncate AFTER TRUNCATE ON @extschema@.stockx_variant
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.stockx_cascade();
-- the workers' upsert rewrites gtins at every variants call and their
-- market writes update every variant: the WHEN clause keeps it to real changes
CREATE TRIGGER stockx_variant_gtin_update
	AFTER UPDATE OF gtins, sku, variant_id ON @extschema@.stockx_variant
	FOR EACH ROW
	WHEN (OLD.gtins IS DISTINCT FROM NEW.gtins OR OLD.sku IS DISTINCT FROM NEW.sku
		  OR OLD.variant_id IS DISTINCT FROM NEW.variant_id)
	EXECUTE FUNCTION @extschema@.stockx_cascade();

-- ---------------------------------------------------------------- inputs

-- A GTIN with no digit other than 0 is no barcode: the check digit of all
-- zeros is right, but it would match identifiers that are empty or zero.
CREATE OR REPLACE FUNCTION @extschema@.stockx_gtin_normalize(gtin text)
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
	   AND d.g ~ '[1-9]'
$$;

-- NaN and infinity are numerics too, and no sale price.
CREATE OR REPLACE FUNCTION @extschema@.stockx_payout(amount numeric, seller_level int DEFAULT NULL,
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
	IF amount = 'NaN'::numeric OR amount = 'Infinity'::numeric THEN
		RAISE EXCEPTION 'sale amount must be a finite number: %', amount
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the sale price, 0 or more.';
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
	IF NOT cur = ANY (@extschema@.stockx_currency_codes()) THEN
		RAISE EXCEPTION 'unknown currency %', pg_catalog.quote_literal(stockx_payout.currency)
			USING ERRCODE = 'no_data_found',
				  HINT = pg_catalog.format('StockX currencies are the 30 codes of its API (%s).',
										   pg_catalog.array_to_string(@extschema@.stockx_currency_codes(), ', '));
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

	-- the minor unit of ISO 4217
	digits := CASE WHEN cur IN ('CLP', 'JPY', 'KRW', 'VND') THEN 0 WHEN cur = 'KWD' THEN 3 ELSE 2 END;
	RETURN amount
		   - greatest(pg_catalog.round(amount * fee.transaction_fee_pct / 100, digits)
					  + pg_catalog.round(amount * fee.payment_fee_pct / 100, digits),
					  fee.minimum_fee)
		   - fee.shipping;
END
$$;

-- ---------------------------------------------------------------- the published contract

-- A barcode of a product another row holds joins that row: status
-- 'merged', merged_into its SKU (one product, one row, however many of its
-- barcodes were queued).  The workers look products up by StockX id.
ALTER TABLE @extschema@.stockx_product
	DROP CONSTRAINT stockx_product_status_check,
	ADD CONSTRAINT stockx_product_status_check
		CHECK (status IN ('pending', 'enriched', 'not_found', 'failed', 'merged')),
	ADD COLUMN merged_into text;
CREATE INDEX stockx_product_stockx_id_idx ON @extschema@.stockx_product (stockx_product_id)
	WHERE stockx_product_id IS NOT NULL;
-- the barcode rows merged into a SKU (whose price alerts its writes compare)
CREATE INDEX stockx_product_merged_into_idx ON @extschema@.stockx_product (merged_into)
	WHERE merged_into IS NOT NULL;

-- Market data "may vary by region": what the summary columns do not hold.
-- lowest_ask, highest_bid, sell_faster and earn_more are the top-level
-- amounts of StockX's answer, or standardMarketData's where an answer has
-- none; beat_us is standardMarketData's; flex and direct are
-- flexMarketData and directMarketData as numbers ({lowest_ask,
-- highest_bid, sell_faster, earn_more, beat_us}), NULL when not sent.
ALTER TABLE @extschema@.stockx_market
	ADD COLUMN beat_us numeric,
	ADD COLUMN flex jsonb,
	ADD COLUMN direct jsonb;

-- What the limiter keeps across a restart besides the day's count: its
-- record of send times over the rolling 24 hours (requests per 5-minute
-- bucket, window_counts[i] being bucket window_latest - 288 + i - 1 of the
-- wall clock) and the pacing margin it learnt.
ALTER TABLE @extschema@.stockx_quota
	ADD COLUMN window_latest bigint,
	ADD COLUMN window_counts int[],
	ADD COLUMN pacing_margin_us bigint NOT NULL DEFAULT 0;

-- The 30 currencies of StockX's CurrencyCode enum.
ALTER TABLE @extschema@.stockx_fee_schedule
	DROP CONSTRAINT stockx_fee_schedule_currency_code_check,
	ADD CONSTRAINT stockx_fee_schedule_currency_code_check
		CHECK (currency_code OPERATOR(pg_catalog.=) ANY (@extschema@.stockx_currency_codes()));

-- ---------------------------------------------------------------- limiter, budget, alerts

-- The limiter's state gains the rolling 24 hours: requests in them and
-- when the next request is allowed (the daily limit holds per UTC day and
-- in any 24 hours).  The views on it are made again.
DROP VIEW @extschema@.stockx_enrich_alerts;
DROP VIEW @extschema@.stockx_enrich_budget;
DROP VIEW @extschema@.stockx_enrich_limiter;
DROP FUNCTION @extschema@.stockx_enrich_limiter_state();

CREATE FUNCTION @extschema@.stockx_enrich_limiter_state(
	OUT requests_per_second float8, OUT effective_rate float8,
	OUT next_slot_at timestamptz, OUT paused_until timestamptz,
	OUT requests_today bigint, OUT daily_limit bigint,
	OUT quota_resets_at timestamptz, OUT circuit_state text,
	OUT circuit_open_until timestamptz, OUT consecutive_429 int,
	OUT responses_429_total bigint, OUT pacing_margin_ms float8,
	OUT requests_last_24h bigint, OUT next_request_allowed_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'stockx_enrich_limiter_state'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_limiter_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stockx_enrich_limiter_state() TO pg_monitor;

-- requests_today also reads stockx_quota, so that the count persisted before
-- a restart shows before any worker has merged it back into shared memory
CREATE VIEW @extschema@.stockx_enrich_limiter AS
	SELECT l.requests_per_second, l.effective_rate, l.next_slot_at, l.paused_until,
		   greatest(l.requests_today,
					coalesce((SELECT q.requests FROM @extschema@.stockx_quota q
							   WHERE q.day = (l.quota_resets_at AT TIME ZONE 'UTC')::date - 1),
							 0)) AS requests_today,
		   l.daily_limit, l.quota_resets_at, l.circuit_state, l.circuit_open_until,
		   l.consecutive_429, l.responses_429_total, l.pacing_margin_ms,
		   l.requests_last_24h, l.next_request_allowed_at
	  FROM @extschema@.stockx_enrich_limiter_state() l;

-- Where the sync of the selling side stands, per feed (listings, active
-- orders, order history): the page the next request asks for (a stop, the
-- quota or the circuit leave a pass there, and the next sync goes on from
-- it), the fromDate of the order history's pass, how many pages the last
-- finished pass took and how many were asked today.  Written by the workers
-- (worker_sync.c, store_selling.c); dumped, so that a restored database
-- goes on where it was.
CREATE TABLE @extschema@.stockx_sync_state (
	feed text PRIMARY KEY
		CHECK (feed IN ('listings', 'orders_active', 'orders_history')),
	next_page int NOT NULL DEFAULT 1 CHECK (next_page >= 1),
	pass_started_at timestamptz,
	from_date date,
	rows_this_pass bigint NOT NULL DEFAULT 0,
	last_finished_at timestamptz,
	last_pages int,
	last_rows bigint,
	pages_day date,
	pages_today int NOT NULL DEFAULT 0,
	last_error text,
	last_error_at timestamptz,
	last_run_id bigint
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_sync_state', '');
GRANT SELECT ON @extschema@.stockx_sync_state TO pg_monitor;

-- Today's requests: what the due work needs (a new product by style id 2 +
-- one per currency, by barcode one more, a refresh one per currency, a
-- not_found recheck one) against what the daily limit leaves, per UTC day
-- and in the last 24 hours, and when the backlog is done at the configured
-- rate; backlog_takes is how long that is (after an update from 1.1, every
-- enriched product is due for a refresh at once).  The selling side's sync
-- (stockx_enrich_sync): the pages its last full pass took, the pages asked
-- today.
CREATE VIEW @extschema@.stockx_enrich_budget AS
	WITH cfg AS (
		SELECT pg_catalog.array_length(pg_catalog.string_to_array(
				   pg_catalog.replace(pg_catalog.current_setting('stockx_enrich.currency_code'), ' ', ''), ','), 1) AS currencies,
			   (SELECT s.setting::bigint FROM pg_catalog.pg_settings s
				 WHERE s.name = 'stockx_enrich.refresh_after') AS refresh_after_s
	), l AS (
		SELECT lim.*,
			   GREATEST(lim.daily_limit - lim.requests_today, 0) AS left_today,
			   GREATEST(lim.daily_limit - lim.requests_last_24h, 0) AS left_24h,
			   LEAST(GREATEST(lim.daily_limit - lim.requests_today, 0),
					 GREATEST(lim.daily_limit - lim.requests_last_24h, 0)) AS left_now
		  FROM @extschema@.stockx_enrich_limiter lim
	), due AS (
		SELECT pg_catalog.count(*) FILTER (WHERE p.status = 'pending') AS new_products,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'enriched'
					AND p.market_updated_at + r.every <= pg_catalog.now()) AS refreshes,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'enriched'
					AND p.market_updated_at + r.every > pg_catalog.now()
					AND p.market_updated_at + r.every <= (SELECT quota_resets_at FROM l)) AS refreshes_later_today,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'not_found'
					AND p.updated_at < pg_catalog.now() - interval '7 days') AS not_found_rechecks,
			   pg_catalog.count(*) FILTER (WHERE p.status = 'pending'
					AND p.query_kind = 'gtin') AS new_barcodes
		  FROM @extschema@.stockx_product p
		 CROSS JOIN cfg
		 CROSS JOIN LATERAL (SELECT coalesce(p.refresh_every,
				   CASE WHEN cfg.refresh_after_s > 0
						THEN pg_catalog.make_interval(secs => cfg.refresh_after_s) END) AS every) r
		 WHERE p.next_attempt_at IS NULL OR p.next_attempt_at <= pg_catalog.now()
	), need AS (
		SELECT due.*, cfg.currencies,
			   due.new_products * (2 + cfg.currencies) + due.new_barcodes
			   + due.refreshes * cfg.currencies + due.not_found_rechecks AS requests_due,
			   due.refreshes_later_today * cfg.currencies AS requests_due_later_today
		  FROM due, cfg
	)
	SELECT d.*, d.backlog_done_at - pg_catalog.now() AS backlog_takes
	  FROM (
	SELECT need.new_products, need.refreshes, need.refreshes_later_today, need.not_found_rechecks,
		   need.currencies, need.requests_due, need.requests_due_later_today,
		   l.requests_today, l.daily_limit,
		   CASE WHEN l.daily_limit > 0 THEN l.left_today END AS quota_left_today,
		   l.quota_resets_at, l.requests_per_second,
		   CASE
			 WHEN need.requests_due = 0 THEN NULL
			 WHEN l.daily_limit = 0 OR need.requests_due <= l.left_now
			   THEN GREATEST(l.next_request_allowed_at, pg_catalog.now())
					+ pg_catalog.make_interval(secs => need.requests_due / l.requests_per_second)
			 -- the rest spills over the following days, daily_limit a day
			 ELSE GREATEST(l.quota_resets_at, l.next_request_allowed_at)
				  + pg_catalog.make_interval(days => ((need.requests_due - l.left_now - 1) / l.daily_limit)::int)
				  + pg_catalog.make_interval(secs => (((need.requests_due - l.left_now - 1) % l.daily_limit) + 1) / l.requests_per_second)
		   END AS backlog_done_at,
		   l.requests_last_24h,
		   CASE WHEN l.daily_limit > 0 THEN l.left_24h END AS quota_left_24h,
		   l.next_request_allowed_at,
		   need.new_barcodes,
		   sync.sync_requests_last, sync.sync_requests_today
	  FROM need, l,
		   (SELECT pg_catalog.sum(ss.last_pages) AS sync_requests_last,
				   coalesce(pg_catalog.sum(ss.pages_today) FILTER (
					   WHERE ss.pages_day = (pg_catalog.now() AT TIME ZONE 'UTC')::date), 0) AS sync_requests_today
			  FROM @extschema@.stockx_sync_state ss) sync) d;

-- A month whose partition could not be made (the workers' upkeep failed,
-- say for a relation in the way of its name) keeps its rows in the default
-- partition: say so.  The quota alert counts the rolling 24 hours too.
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
	SELECT 'quota', pg_catalog.format('%s of %s daily requests used today, %s in the last 24 hours',
									  l.requests_today, l.daily_limit, l.requests_last_24h)
	  FROM l WHERE l.daily_limit > 0
			   AND GREATEST(l.requests_today, l.requests_last_24h) * 10 > l.daily_limit * 9
	UNION ALL
	SELECT 'worker_memory', pg_catalog.format('worker %s uses %s bytes', s.pid, s.memory_bytes)
	  FROM @extschema@.stockx_enrich_worker_status() s
	 WHERE s.memory_bytes > pg_catalog.pg_size_bytes(pg_catalog.current_setting('stockx_enrich.memory_alert_bytes'))
	UNION ALL
	SELECT 'history_partitions',
		   pg_catalog.format('%s rows of this month or later wait in stockx_price_history_default',
							 pg_catalog.count(*))
	  FROM @extschema@.stockx_price_history_default h
	 WHERE h.observed_at >= pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	HAVING pg_catalog.count(*) > 0;

GRANT SELECT ON @extschema@.stockx_enrich_limiter, @extschema@.stockx_enrich_budget,
	@extschema@.stockx_enrich_alerts TO pg_monitor;

-- ---------------------------------------------------------------- logging in to StockX

-- From install to the first real request: a superuser logs the account in
-- through OAuth's authorization-code flow.  stockx_enrich_authorize_url()
-- makes the URL a person opens in a browser, with a state good for 10
-- minutes and one use; stockx_enrich_redeem_code() checks the state,
-- redeems the code the browser came back with at the token endpoint, and
-- writes the refresh token to stockx_enrich.credentials_file.  The table
-- keeps a state's SHA-256 only (never the state, never a secret), with the
-- redirect URI the code must be redeemed with; rows a day past their
-- expiry are deleted by the next stockx_enrich_authorize_url().
CREATE TABLE @extschema@.stockx_oauth_state (
	state_hash bytea PRIMARY KEY,
	redirect_uri text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	expires_at timestamptz NOT NULL,
	used_at timestamptz
);
REVOKE ALL ON @extschema@.stockx_oauth_state FROM PUBLIC;

-- Superusers only (checked in C too); not SECURITY DEFINER.
CREATE FUNCTION @extschema@.stockx_enrich_authorize_url(redirect_uri text)
RETURNS text
AS 'MODULE_PATHNAME', 'stockx_enrich_authorize_url'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_authorize_url(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.stockx_enrich_redeem_code(code text, state text,
	OUT credentials_file text, OUT scope text, OUT access_token_expires_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'stockx_enrich_redeem_code'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_redeem_code(text, text) FROM PUBLIC;

-- ---------------------------------------------------------------- price alerts

-- A shop's price alerts: "tell me when the lowest ask of this SKU (one
-- size, or the best of all sizes) in this currency falls to 180 or below",
-- or when the highest bid reaches an amount.  The workers compare every
-- alert on a product each time they write its market data
-- (store_alerts.c) and queue one price_alert event per crossing: crossed
-- says the line is crossed now, fired how many crossings there were.  A
-- changed line (SKU, size, currency, condition, amount) is a new alert.
-- The shop's business: no privilege for PUBLIC or pg_monitor.
CREATE TABLE @extschema@.stockx_price_alert (
	alert_id bigserial PRIMARY KEY,
	sku text NOT NULL,
	size text,
	currency_code text NOT NULL DEFAULT 'USD',
	condition text NOT NULL,
	amount numeric NOT NULL,
	note text,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	crossed boolean NOT NULL DEFAULT false,
	crossed_at timestamptz,
	crossed_price numeric,
	crossed_variant_id uuid,
	fired integer NOT NULL DEFAULT 0,
	CONSTRAINT stockx_price_alert_condition_check
		CHECK (condition IN ('ask_at_or_below', 'bid_at_or_above')),
	CONSTRAINT stockx_price_alert_amount_check CHECK (amount > 0 AND amount < 'Infinity'),
	CONSTRAINT stockx_price_alert_currency_code_check
		CHECK (currency_code OPERATOR(pg_catalog.=) ANY (@extschema@.stockx_currency_codes()))
);
CREATE INDEX stockx_price_alert_sku_idx ON @extschema@.stockx_price_alert (sku);
REVOKE ALL ON @extschema@.stockx_price_alert FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.stockx_price_alert_alert_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_price_alert', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_price_alert_alert_id_seq', '');

-- Bad input gets a message and a hint before the constraints see it; an
-- alert watches a SKU of stockx_product (23503 otherwise; COPY is not
-- checked against stockx_product, so that a restore loads the tables in
-- any order).  Runs only on
-- stockx_price_alert of this extension (checked by OID, as
-- stockx_cascade() does), with the rights of whoever writes the alert.
CREATE FUNCTION @extschema@.stockx_price_alert_check()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp name;
	found_rows bigint;
	codes text[];
BEGIN
	SELECT n.nspname INTO nsp
	  FROM pg_catalog.pg_depend d
	  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
	  JOIN pg_catalog.pg_class c ON c.oid = d.objid
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND d.deptype = 'e'
	   AND e.extname = 'stockx_enrich'
	   AND c.oid = TG_RELID
	   AND c.relname = 'stockx_price_alert';
	IF nsp IS NULL THEN
		RAISE EXCEPTION 'stockx_price_alert_check() fires only on the table stockx_price_alert of stockx_enrich'
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Drop that trigger; the function belongs to the extension stockx_enrich.';
	END IF;
	-- the workers' updates of crossed, crossed_at, ... leave the line alone
	IF TG_OP = 'UPDATE'
	   AND (NEW.sku, NEW.size, NEW.currency_code, NEW.condition, NEW.amount)
		   IS NOT DISTINCT FROM (OLD.sku, OLD.size, OLD.currency_code, OLD.condition, OLD.amount) THEN
		RETURN NEW;
	END IF;

	NEW.currency_code := pg_catalog.upper(pg_catalog.btrim(NEW.currency_code));
	NEW.condition := pg_catalog.lower(pg_catalog.btrim(NEW.condition));
	NEW.size := NULLIF(pg_catalog.btrim(NEW.size), '');
	EXECUTE pg_catalog.format('SELECT %I.stockx_currency_codes()', nsp) INTO codes;
	IF NEW.currency_code IS NULL OR NOT NEW.currency_code = ANY (codes) THEN
		RAISE EXCEPTION 'unknown currency % for a price alert', COALESCE(pg_catalog.quote_literal(NEW.currency_code), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = pg_catalog.format('StockX currencies are the 30 codes of its API (%s); the workers must fetch that currency (stockx_enrich.currency_code).',
										   pg_catalog.array_to_string(codes, ', '));
	END IF;
	IF NEW.condition IS NULL OR NEW.condition NOT IN ('ask_at_or_below', 'bid_at_or_above') THEN
		RAISE EXCEPTION 'unknown price alert condition %', COALESCE(pg_catalog.quote_literal(NEW.condition), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''ask_at_or_below'' (the lowest ask falls to the amount or below) or ''bid_at_or_above'' (the highest bid reaches the amount).';
	END IF;
	IF NEW.amount IS NULL OR NOT (NEW.amount > 0 AND NEW.amount < 'Infinity') THEN
		RAISE EXCEPTION 'price alert amount % is not a positive amount', COALESCE(NEW.amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give an amount in the alert''s currency above 0, e.g. 180.';
	END IF;
	-- not under COPY, which is how pg_restore loads the table: a parallel
	-- restore may load the alerts before (or while) it loads the products
	IF pg_catalog.current_query() OPERATOR(pg_catalog.~*) '^\s*copy\M' THEN
		found_rows := 1;
	ELSE
		EXECUTE pg_catalog.format('SELECT FROM %I.stockx_product WHERE sku = $1', nsp) USING NEW.sku;
		GET DIAGNOSTICS found_rows = ROW_COUNT;
	END IF;
	IF found_rows = 0 THEN
		RAISE EXCEPTION 'unknown SKU % for a price alert', COALESCE(pg_catalog.quote_literal(NEW.sku), 'NULL')
			USING ERRCODE = 'foreign_key_violation',
				  HINT = 'An alert watches a product of stockx_product: queue the SKU first with stockx_enrich_enqueue(ARRAY[''...'']).';
	END IF;

	-- a new line is a new alert: crossed when a write shows it crossed
	NEW.crossed := false;
	NEW.crossed_at := NULL;
	NEW.crossed_price := NULL;
	NEW.crossed_variant_id := NULL;
	IF TG_OP = 'INSERT' THEN
		NEW.fired := 0;
	END IF;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_price_alert_check() FROM PUBLIC;
CREATE TRIGGER stockx_price_alert_check BEFORE INSERT OR UPDATE ON @extschema@.stockx_price_alert
	FOR EACH ROW EXECUTE FUNCTION @extschema@.stockx_price_alert_check();

ALTER TABLE @extschema@.stockx_event
	DROP CONSTRAINT stockx_event_kind_check,
	ADD CONSTRAINT stockx_event_kind_check
		CHECK (kind IN ('run_end', 'circuit_open', 'quota_spent', 'price_move', 'price_alert'));

-- ---------------------------------------------------------------- the selling side

-- The account's listings and orders as StockX's selling API lists them
-- (GET /selling/listings, /selling/orders/active, /selling/orders/history),
-- synced by stockx_enrich_sync() (or by every run, stockx_enrich.sync_selling)
-- through the same limiter, quota and run as enrichment.  Nothing here is
-- ever sent back to StockX.  data is the element as StockX sent it; the
-- columns are read from it.  A listing a finished pass did not list (its
-- ask expired, say: StockX leaves those out) is missing_since then, until a
-- pass lists it again.  The shop's business: no privilege for PUBLIC
-- or pg_monitor.
CREATE TABLE @extschema@.stockx_listing (
	listing_id text PRIMARY KEY,
	status text NOT NULL,
	amount numeric,
	currency_code text,
	inventory_type text,
	product_id uuid,
	style_id text,
	product_name text,
	variant_id uuid,
	variant_value text,
	ask_id text,
	order_number text,
	order_status text,
	created_at timestamptz,
	updated_at timestamptz,
	data jsonb NOT NULL,
	synced_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	missing_since timestamptz
);
CREATE INDEX stockx_listing_variant_idx ON @extschema@.stockx_listing (variant_id);
CREATE INDEX stockx_listing_product_idx ON @extschema@.stockx_listing (product_id);

-- active: the order was in the last pass of /selling/orders/active (false
-- once it has left it, or when it came from the history); in_history: the
-- order history has listed it (until then, the history's passes start no
-- later than its creation, so that its final status is read).  payout_* are the
-- payout StockX reports for the sale: the price, the adjustments (fees, as
-- negative amounts) and what the seller is paid.
CREATE TABLE @extschema@.stockx_order (
	order_number text PRIMARY KEY,
	listing_id text,
	ask_id text,
	status text NOT NULL,
	active boolean NOT NULL,
	in_history boolean NOT NULL DEFAULT false,
	amount numeric,
	currency_code text,
	inventory_type text,
	product_id uuid,
	style_id text,
	product_name text,
	variant_id uuid,
	variant_value text,
	created_at timestamptz,
	updated_at timestamptz,
	sale_price numeric,
	payout_adjustments numeric,
	payout_total numeric,
	payout_currency text,
	payout jsonb,
	data jsonb NOT NULL,
	synced_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX stockx_order_listing_idx ON @extschema@.stockx_order (listing_id);
CREATE INDEX stockx_order_created_idx ON @extschema@.stockx_order (created_at);

-- What the shop paid: per listing, or per variant (every listing and order
-- of that size), in a currency; a listing's own cost wins.
CREATE TABLE @extschema@.stockx_cost (
	cost_id bigserial PRIMARY KEY,
	listing_id text UNIQUE,
	variant_id uuid UNIQUE,
	cost numeric NOT NULL,
	currency_code text NOT NULL DEFAULT 'USD',
	note text,
	CONSTRAINT stockx_cost_one_key CHECK (pg_catalog.num_nonnulls(listing_id, variant_id) = 1),
	CONSTRAINT stockx_cost_cost_check CHECK (cost >= 0 AND cost < 'Infinity'),
	CONSTRAINT stockx_cost_currency_code_check
		CHECK (currency_code OPERATOR(pg_catalog.=) ANY (@extschema@.stockx_currency_codes()))
);

REVOKE ALL ON @extschema@.stockx_listing, @extschema@.stockx_order, @extschema@.stockx_cost FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.stockx_cost_cost_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_listing', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_order', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_cost', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stockx_cost_cost_id_seq', '');

-- A cost gets a message and a hint: negative, NaN or infinite (22023), a
-- currency not among StockX's 30 (22023).  Runs only on stockx_cost of
-- this extension (checked by OID).
CREATE FUNCTION @extschema@.stockx_cost_check()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp name;
	codes text[];
BEGIN
	SELECT n.nspname INTO nsp
	  FROM pg_catalog.pg_depend d
	  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
	  JOIN pg_catalog.pg_class c ON c.oid = d.objid
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND d.deptype = 'e'
	   AND e.extname = 'stockx_enrich'
	   AND c.oid = TG_RELID
	   AND c.relname = 'stockx_cost';
	IF nsp IS NULL THEN
		RAISE EXCEPTION 'stockx_cost_check() fires only on the table stockx_cost of stockx_enrich'
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Drop that trigger; the function belongs to the extension stockx_enrich.';
	END IF;
	NEW.currency_code := pg_catalog.upper(pg_catalog.btrim(NEW.currency_code));
	EXECUTE pg_catalog.format('SELECT %I.stockx_currency_codes()', nsp) INTO codes;
	IF NEW.currency_code IS NULL OR NOT NEW.currency_code = ANY (codes) THEN
		RAISE EXCEPTION 'unknown currency % for a cost', COALESCE(pg_catalog.quote_literal(NEW.currency_code), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = pg_catalog.format('StockX currencies are the 30 codes of its API (%s); give the cost in the currency of the listing.',
										   pg_catalog.array_to_string(codes, ', '));
	END IF;
	IF NEW.cost IS NULL OR NOT (NEW.cost >= 0 AND NEW.cost < 'Infinity') THEN
		RAISE EXCEPTION 'cost % is not an amount of 0 or more', COALESCE(NEW.cost::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give what the item cost the shop, 0 or more, e.g. 80.';
	END IF;
	IF pg_catalog.num_nonnulls(NEW.listing_id, NEW.variant_id) <> 1 THEN
		RAISE EXCEPTION 'a cost belongs to one listing or one variant'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Set listing_id (one listing) or variant_id (every listing of that size), not both.';
	END IF;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.stockx_cost_check() FROM PUBLIC;
CREATE TRIGGER stockx_cost_check BEFORE INSERT OR UPDATE ON @extschema@.stockx_cost
	FOR EACH ROW EXECUTE FUNCTION @extschema@.stockx_cost_check();

-- Start a sync of the selling side: a run of one worker that asks for the
-- listings, the active orders and the order history (from where the last
-- pass got to), page by page, and writes them; returns the run id (the
-- active run's when one is running in this database, which then syncs
-- nothing more).  Same privileges as stockx_enrich_start().
CREATE FUNCTION @extschema@.stockx_enrich_sync()
RETURNS bigint
AS 'MODULE_PATHNAME', 'stockx_enrich_sync'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.stockx_enrich_sync() FROM PUBLIC;

-- ---------------------------------------------------------------- selling: views

-- What stockx_payout() gives for a sale of StockX product $5 (its
-- category from the row that holds it), or NULL where stockx_fee_schedule
-- has no row for that level and currency on that day, or an amount or
-- currency is missing: the views below go over many orders in many
-- currencies, and one without fee rows must not fail them all.
CREATE FUNCTION @extschema@.stockx_payout_or_null(amount numeric, seller_level int,
	currency text, at timestamptz, product_id uuid)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN $1 IS NOT NULL AND $3 IS NOT NULL
				 AND EXISTS (SELECT FROM @extschema@.stockx_fee_schedule f
							  WHERE f.seller_level = $2 AND f.currency_code = $3
								AND f.valid_from <= ($4 AT TIME ZONE 'UTC')::date)
				THEN @extschema@.stockx_payout($1, $2, $3, $4,
					 (SELECT p.product_type FROM @extschema@.stockx_product p
					   WHERE p.stockx_product_id = $5 AND p.status = 'enriched'
					   ORDER BY p.enriched_at LIMIT 1))
		   END
$$;

-- Real payouts against the fee schedule: per order with a payout, what
-- StockX paid, what stockx_payout() computes for the shop's seller level
-- (stockx_enrich.seller_level) from stockx_fee_schedule, and the drift.
CREATE VIEW @extschema@.stockx_payout_drift AS
	SELECT o.order_number, o.created_at, o.style_id, o.variant_value AS size,
		   o.currency_code, o.amount, o.payout_total AS actual_payout,
		   o.amount - o.payout_total AS actual_fees,
		   lvl.seller_level, e.expected_payout,
		   o.payout_total - e.expected_payout AS drift,
		   pg_catalog.round(100 * (o.payout_total - e.expected_payout) / NULLIF(o.amount, 0), 2) AS drift_pct
	  FROM @extschema@.stockx_order o
	 CROSS JOIN (SELECT coalesce(NULLIF(pg_catalog.btrim(
					pg_catalog.current_setting('stockx_enrich.seller_level', true)), ''),
					'1')::int AS seller_level) lvl
	 CROSS JOIN LATERAL (
		SELECT @extschema@.stockx_payout_or_null(o.amount, lvl.seller_level, o.currency_code,
												 o.created_at, o.product_id) AS expected_payout) e
	 WHERE o.payout_total IS NOT NULL AND o.amount IS NOT NULL AND o.currency_code IS NOT NULL;

-- The same per seller level 1 to 5: how far the fee schedule is from what
-- StockX paid, over every order with a payout, in percent of the amount
-- (orders in several currencies).  The level whose drift is
-- near 0 is the one the account is on; when none is, the fee rows are out
-- of date.
CREATE VIEW @extschema@.stockx_payout_drift_by_level AS
	SELECT lvl.seller_level,
		   pg_catalog.count(*) AS orders,
		   pg_catalog.count(x.expected) AS orders_with_fees,
		   pg_catalog.round(pg_catalog.avg(100 * (o.payout_total - x.expected) / NULLIF(o.amount, 0)), 2) AS mean_drift_pct,
		   pg_catalog.round(pg_catalog.max(pg_catalog.abs(100 * (o.payout_total - x.expected) / NULLIF(o.amount, 0))), 2) AS max_abs_drift_pct,
		   pg_catalog.count(*) FILTER (WHERE pg_catalog.abs(o.payout_total - x.expected) <= 0.01 * o.amount) AS orders_within_1pct,
		   lvl.seller_level = coalesce(NULLIF(pg_catalog.btrim(
				pg_catalog.current_setting('stockx_enrich.seller_level', true)), ''), '1')::int AS configured
	  FROM pg_catalog.generate_series(1, 5) AS lvl(seller_level)
	 CROSS JOIN @extschema@.stockx_order o
	 CROSS JOIN LATERAL (
		SELECT @extschema@.stockx_payout_or_null(o.amount, lvl.seller_level, o.currency_code,
												 o.created_at, o.product_id) AS expected) x
	 WHERE o.payout_total IS NOT NULL AND o.amount IS NOT NULL AND o.currency_code IS NOT NULL
	 GROUP BY lvl.seller_level
	 ORDER BY lvl.seller_level;

-- The cost of a listing: its own row of stockx_cost, else its variant's.
CREATE VIEW @extschema@.stockx_listing_cost AS
	SELECT l.listing_id, l.variant_id, c.cost, c.currency_code AS cost_currency,
		   CASE WHEN c.listing_id IS NOT NULL THEN 'listing' WHEN c.variant_id IS NOT NULL THEN 'variant' END AS cost_from
	  FROM @extschema@.stockx_listing l
	  LEFT JOIN LATERAL (
		SELECT * FROM @extschema@.stockx_cost c
		 WHERE c.listing_id = l.listing_id OR c.variant_id = l.variant_id
		 ORDER BY c.listing_id IS NULL LIMIT 1) c ON true;

-- Each order's profit: what StockX paid (or, for an active order whose
-- payout is not known yet, what the fee schedule says it will) minus the
-- cost, in the order's currency; NULL where the cost is missing or in
-- another currency, or for a past order nothing was paid for (canceled).
CREATE VIEW @extschema@.stockx_order_profit AS
	SELECT o.order_number, o.created_at, o.status, o.style_id, o.variant_value AS size,
		   o.currency_code, o.amount,
		   coalesce(o.payout_total, d.expected_payout) AS payout,
		   o.payout_total IS NOT NULL AS payout_actual,
		   c.cost, c.cost_currency,
		   CASE WHEN c.cost_currency = o.currency_code
				THEN coalesce(o.payout_total, d.expected_payout) - c.cost END AS profit,
		   CASE WHEN c.cost_currency = o.currency_code AND c.cost > 0
				THEN pg_catalog.round(100 * (coalesce(o.payout_total, d.expected_payout) - c.cost) / c.cost, 1) END AS profit_pct
	  FROM @extschema@.stockx_order o
	  LEFT JOIN LATERAL (
		SELECT x.cost, x.currency_code AS cost_currency FROM @extschema@.stockx_cost x
		 WHERE x.listing_id = o.listing_id OR x.variant_id = o.variant_id
		 ORDER BY x.listing_id IS NULL LIMIT 1) c ON true
	  LEFT JOIN LATERAL (
		SELECT CASE WHEN o.payout_total IS NULL AND o.active
					THEN @extschema@.stockx_payout_or_null(o.amount, s.lvl, o.currency_code,
						 coalesce(o.created_at, pg_catalog.now()), o.product_id) END AS expected_payout
		  FROM (SELECT coalesce(NULLIF(pg_catalog.btrim(
					pg_catalog.current_setting('stockx_enrich.seller_level', true)), ''), '1')::int AS lvl) s) d ON true;

-- The reprice plan: for each active listing with an amount (that the last
-- pass listed), the size's
-- lowest ask and highest bid in the listing's currency (stockx_market),
-- whether the listing is the lowest ask, and a suggested amount: the
-- lowest ask minus stockx_enrich.reprice_step, never below floor_amount,
-- the smallest whole amount whose payout covers the cost plus
-- stockx_enrich.reprice_min_profit (no cost: no floor); the payout at the
-- amount and at the suggestion.  A plan only: nothing is sent to StockX.
CREATE VIEW @extschema@.stockx_reprice_plan AS
	WITH cfg AS (
		SELECT coalesce(NULLIF(pg_catalog.btrim(
					pg_catalog.current_setting('stockx_enrich.seller_level', true)), ''), '1')::int AS lvl,
			   pg_catalog.current_setting('stockx_enrich.reprice_step')::numeric AS step,
			   pg_catalog.current_setting('stockx_enrich.reprice_min_profit')::numeric AS min_profit
	), l AS (
		SELECT l.listing_id, l.style_id, l.variant_value AS size, l.variant_id, l.currency_code, l.amount,
			   m.lowest_ask, m.highest_bid, c.cost, c.cost_currency, pt.product_type,
			   f.transaction_fee_pct, f.payment_fee_pct, f.minimum_fee, f.shipping,
			   cfg.lvl, cfg.step, cfg.min_profit
		  FROM @extschema@.stockx_listing l
		  CROSS JOIN cfg
		  LEFT JOIN @extschema@.stockx_market m
			ON m.variant_id = l.variant_id AND m.currency_code = l.currency_code
		  LEFT JOIN @extschema@.stockx_listing_cost c ON c.listing_id = l.listing_id
		  LEFT JOIN LATERAL (
			SELECT p.product_type FROM @extschema@.stockx_product p
			 WHERE p.stockx_product_id = l.product_id AND p.status = 'enriched'
			 ORDER BY p.enriched_at LIMIT 1) pt ON true
		  -- the fee row stockx_payout() picks
		  LEFT JOIN LATERAL (
			SELECT f.* FROM @extschema@.stockx_fee_schedule f
			 WHERE f.seller_level = cfg.lvl AND f.currency_code = l.currency_code
			   AND f.valid_from <= (pg_catalog.now() AT TIME ZONE 'UTC')::date
			   AND (f.product_type IS NULL OR f.product_type = pt.product_type)
			 ORDER BY f.product_type IS NULL, f.valid_from DESC LIMIT 1) f ON true
		 WHERE l.status = 'ACTIVE' AND l.missing_since IS NULL
		   AND l.amount IS NOT NULL AND l.currency_code IS NOT NULL
	), floor AS (
		-- the payout is the amount less max(percentage fees, minimum fee) less
		-- shipping: the floor is the larger of what each branch needs, in
		-- whole units, raised by one unit while rounding leaves it short
		SELECT l.*,
			   CASE WHEN l.cost IS NULL OR l.cost_currency IS DISTINCT FROM l.currency_code
						 OR l.transaction_fee_pct IS NULL THEN NULL
					ELSE GREATEST(
						pg_catalog.ceil((l.cost + l.min_profit + l.shipping)
										/ (1 - (l.transaction_fee_pct + l.payment_fee_pct) / 100)),
						pg_catalog.ceil(l.cost + l.min_profit + l.minimum_fee + l.shipping))
			   END AS floor0
		  FROM l
	), plan AS (
		SELECT f.*,
			   CASE WHEN f.floor0 IS NULL THEN NULL
					WHEN @extschema@.stockx_payout(f.floor0, f.lvl, f.currency_code, pg_catalog.now(), f.product_type)
						 >= f.cost + f.min_profit THEN f.floor0
					ELSE f.floor0 + 1 END AS floor_amount
		  FROM floor f
	)
	SELECT p.listing_id, p.style_id, p.size, p.currency_code, p.amount, p.lowest_ask, p.highest_bid,
		   p.lowest_ask IS NOT NULL AND p.amount <= p.lowest_ask AS is_lowest_ask,
		   p.cost, p.floor_amount, s.suggested_amount,
		   CASE WHEN s.suggested_amount = p.amount THEN 'keep'
				WHEN s.suggested_amount < p.amount THEN 'lower'
				ELSE 'raise' END AS action,
		   p.floor_amount IS NOT NULL AND p.lowest_ask IS NOT NULL
			 AND p.lowest_ask - p.step < p.floor_amount AS held_by_cost,
		   CASE WHEN p.transaction_fee_pct IS NOT NULL
				THEN @extschema@.stockx_payout(p.amount, p.lvl, p.currency_code, pg_catalog.now(), p.product_type) END AS payout_at_amount,
		   CASE WHEN p.transaction_fee_pct IS NOT NULL
				THEN @extschema@.stockx_payout(s.suggested_amount, p.lvl, p.currency_code, pg_catalog.now(), p.product_type) END AS payout_at_suggested
	  FROM plan p
	 CROSS JOIN LATERAL (
		SELECT GREATEST(CASE WHEN p.lowest_ask IS NULL OR p.amount <= p.lowest_ask THEN p.amount
							 ELSE p.lowest_ask - p.step END,
						p.floor_amount) AS suggested_amount) s;

REVOKE ALL ON @extschema@.stockx_payout_drift, @extschema@.stockx_payout_drift_by_level,
	@extschema@.stockx_listing_cost, @extschema@.stockx_order_profit,
	@extschema@.stockx_reprice_plan FROM PUBLIC;
