-- ---------------------------------------------------------------- barcodes

-- Every GTIN (UPC, EAN-13 ...) StockX lists for a variant, one row each,
-- so that a barcode finds its product and size through an index.  gtin is
-- the identifier as StockX sends it, blanks trimmed; entries whose
-- identifier is not a JSON string of digits are left out.  A variant that
-- lists the same identifier twice has one row (the first entry's type).
--
-- The table is derived from stockx_variant.gtins and kept in step by the
-- triggers below; deleting a variant deletes its rows (the foreign key).
--
-- Dump and restore: the table is NOT registered with
-- pg_extension_config_dump.  A dump restores stockx_variant's rows with
-- COPY into a database where CREATE EXTENSION has already made these
-- triggers, and COPY fires row triggers: the restore rebuilds the table by
-- itself.  Dumping its rows as well would make that restore fail (the rows
-- COPY brings in would collide with those the trigger made, and the foreign
-- key puts stockx_variant's data first).  Only a data-only restore with
-- --disable-triggers leaves it empty: SELECT stockx_gtin_rebuild() then.
CREATE TABLE @extschema@.stockx_gtin (
	gtin text NOT NULL
		CHECK (gtin ~ '^[0-9]+$'),
	gtin_type text,
	variant_id uuid NOT NULL
		REFERENCES @extschema@.stockx_variant (variant_id) ON DELETE CASCADE ON UPDATE CASCADE,
	sku text NOT NULL,
	PRIMARY KEY (gtin, variant_id)
);
CREATE INDEX stockx_gtin_variant_id_idx ON @extschema@.stockx_gtin (variant_id);
CREATE INDEX stockx_gtin_sku_idx ON @extschema@.stockx_gtin (sku);

COMMENT ON TABLE @extschema@.stockx_gtin IS
	'GTINs of stockx_variant.gtins, one row each, kept by triggers on stockx_variant';

-- The (gtin, gtin_type) entries of a variant's gtins as StockX sends them
-- (an array of {identifier, type}): identifiers that are strings of digits
-- once blanks are trimmed, each once, in the order of the array.  Anything
-- else (NULL, not an array, other entries) gives no row.
CREATE FUNCTION @extschema@.stockx_gtin_entries(gtins jsonb)
RETURNS TABLE (gtin text, gtin_type text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT DISTINCT ON (x.gtin) x.gtin, x.gtin_type
	  FROM pg_catalog.jsonb_array_elements(
			   CASE WHEN pg_catalog.jsonb_typeof($1) = 'array' THEN $1 ELSE '[]'::jsonb END)
		   WITH ORDINALITY AS e (entry, ord)
	 CROSS JOIN LATERAL (
		SELECT pg_catalog.btrim(e.entry ->> 'identifier') AS gtin,
			   CASE WHEN pg_catalog.jsonb_typeof(e.entry -> 'type') = 'string'
					THEN pg_catalog.btrim(e.entry ->> 'type') END AS gtin_type) x
	 WHERE pg_catalog.jsonb_typeof(e.entry) = 'object'
	   AND pg_catalog.jsonb_typeof(e.entry -> 'identifier') = 'string'
	   AND x.gtin ~ '^[0-9]+$'
	 ORDER BY x.gtin, e.ord
$$;

CREATE FUNCTION @extschema@.stockx_gtin_sync()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		DELETE FROM @extschema@.stockx_gtin
		 WHERE variant_id IN (OLD.variant_id, NEW.variant_id);
	END IF;
	INSERT INTO @extschema@.stockx_gtin (gtin, gtin_type, variant_id, sku)
	SELECT e.gtin, e.gtin_type, NEW.variant_id, NEW.sku
	  FROM @extschema@.stockx_gtin_entries(NEW.gtins) e;
	RETURN NULL;
END
$$;

-- The workers' upsert rewrites gtins at every variants call: only a real
-- change touches stockx_gtin.  A SKU renamed in stockx_product reaches
-- stockx_variant.sku by ON UPDATE CASCADE, which fires the update trigger.
CREATE TRIGGER stockx_variant_gtin_insert
	AFTER INSERT ON @extschema@.stockx_variant
	FOR EACH ROW EXECUTE FUNCTION @extschema@.stockx_gtin_sync();
CREATE TRIGGER stockx_variant_gtin_update
	AFTER UPDATE OF gtins, sku ON @extschema@.stockx_variant
	FOR EACH ROW
	WHEN (OLD.gtins IS DISTINCT FROM NEW.gtins OR OLD.sku IS DISTINCT FROM NEW.sku)
	EXECUTE FUNCTION @extschema@.stockx_gtin_sync();

-- Empties stockx_gtin and fills it again from stockx_variant; returns the
-- number of rows.  Needed only after the triggers were bypassed (a
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
-- stored variant does.  Blanks in the input are ignored; anything else
-- that is not a valid GTIN is an error (22023).
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
	RETURN QUERY
	SELECT g.sku, p.title, p.brand, p.style_id, v.variant_value, g.variant_id,
		   g.gtin_type, p.status
	  FROM @extschema@.stockx_gtin g
	  JOIN @extschema@.stockx_variant v ON v.variant_id = g.variant_id
	  JOIN @extschema@.stockx_product p ON p.sku = g.sku
	 WHERE g.gtin = ANY (@extschema@.stockx_gtin_forms(digits))
	 ORDER BY g.sku, v.variant_value, g.variant_id;
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
