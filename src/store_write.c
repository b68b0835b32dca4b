/*-------------------------------------------------------------------------
 * store_write.c
 *	  Writing a worker's settled rows: the product, its variants and their
 *	  barcodes, its market data in every currency with what changed into
 *	  the price history (and the price moves into the worker's event
 *	  queue), or the row's failure, each row in its own subtransaction and
 *	  only while the worker holds its lease.  See store.c for the rules.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "events.h"
#include "store.h"
#include "store_int.h"

/* the columns an UPDATE sets when a row is settled, whatever the outcome */
#define SETTLED "lease_pid = NULL, lease_until = NULL, updated_at = pg_catalog.now()"

/* ---------------------------------------------------------------- writing a row */

/* Per variant: identity from the variants answer, prices from market data. */
static void
variant_arrays(const char *sku, StockxResult *r, const char *currency, Params *p)
{
	int n = r->nvariants;
	char **cols[10];
	bool *priced = palloc0(sizeof(bool) * (n + 1));
	int c, i, j;

	for (c = 0; c < 10; c++)
		cols[c] = palloc0(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		SxVariant *v = &r->variants[i];

		cols[0][i] = v->variant_id;
		cols[1][i] = v->variant_name;
		cols[2][i] = v->variant_value;
		cols[3][i] = v->gtins_json;
		cols[4][i] = v->size_chart_json;
		for (j = 0; j < r->nmarket[0]; j++)
		{
			SxMarket *m = &r->market[0][j];

			if (pg_strcasecmp(m->variant_id, v->variant_id) != 0)
				continue;
			cols[5][i] = m->lowest_ask;
			cols[6][i] = m->highest_bid;
			cols[7][i] = m->sell_faster;
			cols[8][i] = m->earn_more;
			cols[9][i] = m->flex_lowest_ask;
			priced[i] = true;
			break;
		}
	}
	store_param_text(p, sku);
	for (c = 0; c < 10; c++)
		store_param_api_array(p, cols[c], n);
	store_param_bool_array(p, priced, n);
	store_param_text(p, currency);
}

/*
 * The variants of a product, $2..$12 one array element per variant: the
 * upsert, and the barcodes of every row it wrote (RETURNING hands over the
 * gtins already parsed) into stockx_gtin.  A row whose gtins, sku or id
 * changed gets its barcodes again from the stockx_variant_gtin_update
 * trigger too, at the end of the statement: the insert skips what is there.
 */
static Statement st_variants_write = {
	"WITH v AS ( "
	"  INSERT INTO @extschema@.stockx_variant AS v (variant_id, sku, variant_name, "
	"    variant_value, gtins, size_chart, lowest_ask, highest_bid, sell_faster, earn_more, "
	"    flex_lowest_ask, currency_code, market_updated_at) "
	"  SELECT DISTINCT ON (u.id::uuid) u.id::uuid, $1, u.name, u.value, u.gtins::jsonb, "
	"         u.chart::jsonb, u.ask::numeric, u.bid::numeric, u.faster::numeric, "
	"         u.more::numeric, u.flex::numeric, "
	"         CASE WHEN u.priced THEN $13 END, CASE WHEN u.priced THEN pg_catalog.now() END "
	"    FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "
	"         pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
	"         pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[]), "
	"         pg_catalog.unnest($8::text[]), pg_catalog.unnest($9::text[]), "
	"         pg_catalog.unnest($10::text[]), pg_catalog.unnest($11::text[]), "
	"         pg_catalog.unnest($12::bool[])) "
	"         AS u(id, name, value, gtins, chart, ask, bid, faster, more, flex, priced) "
	"   ORDER BY u.id::uuid "
	"  ON CONFLICT (variant_id) DO UPDATE SET sku = EXCLUDED.sku, "
	"    variant_name = EXCLUDED.variant_name, variant_value = EXCLUDED.variant_value, "
	"    gtins = EXCLUDED.gtins, size_chart = EXCLUDED.size_chart, "
	"    lowest_ask = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.lowest_ask "
	"                      ELSE EXCLUDED.lowest_ask END, "
	"    highest_bid = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.highest_bid "
	"                       ELSE EXCLUDED.highest_bid END, "
	"    sell_faster = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.sell_faster "
	"                       ELSE EXCLUDED.sell_faster END, "
	"    earn_more = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.earn_more "
	"                     ELSE EXCLUDED.earn_more END, "
	"    flex_lowest_ask = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.flex_lowest_ask "
	"                           ELSE EXCLUDED.flex_lowest_ask END, "
	"    currency_code = coalesce(EXCLUDED.currency_code, v.currency_code), "
	"    market_updated_at = coalesce(EXCLUDED.market_updated_at, v.market_updated_at) "
	"  RETURNING v.variant_id, v.sku, v.gtins) "
	"INSERT INTO @extschema@.stockx_gtin (gtin, gtin_type, variant_id, sku) "
	"SELECT e.gtin, e.gtin_type, v.variant_id, v.sku "
	"  FROM v CROSS JOIN LATERAL @extschema@.stockx_gtin_entries(v.gtins) e "
	" ORDER BY e.gtin, v.variant_id "
	"ON CONFLICT DO NOTHING",
	13,
	{ TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	  TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLARRAYOID, TEXTOID }
};

/* the variants a full variants answer no longer lists (their barcodes and markets follow) */
static Statement st_variants_delete_stale = { "DELETE FROM @extschema@.stockx_variant "
	                                          " WHERE sku = $1 AND variant_id <> ALL ($2::uuid[])",
	                                          2,
	                                          { TEXTOID, TEXTARRAYOID } };

/* the barcodes of the variants a row holds, written again after this */
static Statement st_gtin_delete = {
	"DELETE FROM @extschema@.stockx_gtin g USING @extschema@.stockx_variant v "
	" WHERE v.sku = $1 AND g.variant_id = v.variant_id",
	1,
	{ TEXTOID }
};

/*
 * Write the variants of a product, and their barcodes into stockx_gtin.  A
 * row that had variants when it was claimed loses those the answer no
 * longer lists and has its barcodes written anew; a row that had none (a
 * new product: we hold its lease) has nothing to replace.
 */
static void
write_variants(const char *sku, StockxResult *r, const char *currency, bool had_variants)
{
	Params p = { 0 };
	int i;

	if (had_variants)
	{
		Params d = { 0 };
		Params g = { 0 };
		char **ids = palloc0(sizeof(char *) * (r->nvariants + 1));

		/* ids compare as uuid */
		for (i = 0; i < r->nvariants; i++)
			ids[i] = r->variants[i].variant_id;
		store_param_text(&d, sku);
		store_param_api_array(&d, ids, r->nvariants);
		store_run(&st_variants_delete_stale, &d, SPI_OK_DELETE);
		store_param_text(&g, sku);
		store_run(&st_gtin_delete, &g, SPI_OK_DELETE);
	}
	variant_arrays(sku, r, currency, &p);
	store_run(&st_variants_write, &p, SPI_OK_INSERT);
}

/* Market data of currency c as six text arrays after the SKU: id, ask, bid, faster, more, flex. */
static void
market_arrays(const char *sku, StockxResult *r, int c, Params *p)
{
	int n = r->nmarket[c];
	char **cols[6];
	int k, i;

	for (k = 0; k < 6; k++)
		cols[k] = palloc0(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		SxMarket *m = &r->market[c][i];

		cols[0][i] = m->variant_id;
		cols[1][i] = m->lowest_ask;
		cols[2][i] = m->highest_bid;
		cols[3][i] = m->sell_faster;
		cols[4][i] = m->earn_more;
		cols[5][i] = m->flex_lowest_ask;
	}
	store_param_text(p, sku);
	for (k = 0; k < 6; k++)
		store_param_api_array(p, cols[k], n);
}

/*
 * A decimal string as a JSON number: "+1" is 1, ".5" 0.5, "2." 2 (the
 * forms sx_is_decimal() admits that JSON does not).
 */
static void
append_json_number(StringInfo buf, const char *d)
{
	if (*d == '+')
		d++;
	if (*d == '-')
		appendStringInfoChar(buf, *d++);
	if (*d == '.')
		appendStringInfoChar(buf, '0');
	for (; *d != '\0'; d++)
	{
		appendStringInfoChar(buf, *d);
		if (*d == '.' && !isdigit((unsigned char) d[1]))
			buf->data[--buf->len] = '\0';
	}
}

/* A nested market (flex, direct) as a JSON object, NULL when StockX sent none. */
static char *
market_set_json(const SxMarketSet *set)
{
	const char *keys[] = { "lowest_ask", "highest_bid", "sell_faster", "earn_more", "beat_us" };
	const char *vals[] = { set->lowest_ask, set->highest_bid, set->sell_faster, set->earn_more,
		                   set->beat_us };
	StringInfoData buf;
	int i;

	if (!set->present)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < (int) lengthof(keys); i++)
	{
		appendStringInfo(&buf, "%s\"%s\": ", i > 0 ? ", " : "", keys[i]);
		if (vals[i] == NULL)
			appendStringInfoString(&buf, "null");
		else
			append_json_number(&buf, vals[i]);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Market data of currency c beyond the summary: beat_us, flex and direct (as JSON). */
static void
market_detail_arrays(StockxResult *r, int c, Params *p)
{
	int n = r->nmarket[c];
	char **beat = palloc0(sizeof(char *) * (n + 1));
	char **flex = palloc0(sizeof(char *) * (n + 1));
	char **direct = palloc0(sizeof(char *) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
	{
		SxMarket *m = &r->market[c][i];

		beat[i] = m->standard.beat_us;
		flex[i] = market_set_json(&m->flex);
		direct[i] = market_set_json(&m->direct);
	}
	store_param_api_array(p, beat, n);
	store_param_api_array(p, flex, n);
	store_param_api_array(p, direct, n);
}

static Statement st_market_update = {
	"UPDATE @extschema@.stockx_variant v SET lowest_ask = u.ask::numeric, "
	"  highest_bid = u.bid::numeric, sell_faster = u.faster::numeric, "
	"  earn_more = u.more::numeric, flex_lowest_ask = u.flex::numeric, "
	"  currency_code = $8, market_updated_at = pg_catalog.now() "
	"  FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "
	"       pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
	"       pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[])) "
	"       AS u(id, ask, bid, faster, more, flex) "
	" WHERE v.variant_id = u.id::uuid AND v.sku = $1",
	8,
	{ TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	  TEXTOID }
};

/*
 * The market data of one currency, as parameters: $1 the SKU, $2..$7 the
 * variants' ids and summary amounts, $8 the currency, $9 the price-move
 * threshold, $10..$12 beat_us and the flex and direct objects (JSON).
 * u: those of the SKU's variants, once each; up: the upsert into
 * stockx_market.
 */
#define MARKET_U_UP                                                                                \
	"WITH u AS ( "                                                                                 \
	"  SELECT DISTINCT ON (u.id::uuid) u.id::uuid AS variant_id, u.ask::numeric AS ask, "          \
	"         u.bid::numeric AS bid, u.faster::numeric AS faster, u.more::numeric AS more, "       \
	"         u.flex::numeric AS flex, u.beat::numeric AS beat, u.flexm::jsonb AS flexm, "         \
	"         u.directm::jsonb AS directm "                                                        \
	"    FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "           \
	"         pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "                      \
	"         pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[]), "                      \
	"         pg_catalog.unnest($10::text[]), pg_catalog.unnest($11::text[]), "                    \
	"         pg_catalog.unnest($12::text[])) "                                                    \
	"         AS u(id, ask, bid, faster, more, flex, beat, flexm, directm) "                       \
	"   WHERE u.id::uuid IN (SELECT variant_id FROM @extschema@.stockx_variant WHERE sku = $1) "   \
	"   ORDER BY u.id::uuid), "                                                                    \
	"up AS ( "                                                                                     \
	"  INSERT INTO @extschema@.stockx_market AS m (variant_id, currency_code, lowest_ask, "        \
	"         highest_bid, sell_faster, earn_more, flex_lowest_ask, beat_us, flex, direct, "       \
	"         market_updated_at) "                                                                 \
	"  SELECT variant_id, $8, ask, bid, faster, more, flex, beat, flexm, directm, "                \
	"         pg_catalog.now() FROM u "                                                            \
	"  ON CONFLICT (variant_id, currency_code) DO UPDATE SET "                                     \
	"    lowest_ask = EXCLUDED.lowest_ask, highest_bid = EXCLUDED.highest_bid, "                   \
	"    sell_faster = EXCLUDED.sell_faster, earn_more = EXCLUDED.earn_more, "                     \
	"    flex_lowest_ask = EXCLUDED.flex_lowest_ask, beat_us = EXCLUDED.beat_us, "                 \
	"    flex = EXCLUDED.flex, direct = EXCLUDED.direct, "                                         \
	"    market_updated_at = EXCLUDED.market_updated_at "                                          \
	"  RETURNING m.variant_id, m.lowest_ask, m.highest_bid, m.sell_faster, m.earn_more) "
#define MARKET_TYPES                                                                               \
	{                                                                                              \
		TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,             \
		    TEXTARRAYOID, TEXTOID, FLOAT8OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID             \
	}

/*
 * The market data of a product met for the first time: every amount is
 * new, so every variant gets its first history row; no comparison with
 * what stockx_market held (nothing, or another SKU's rows of a shared
 * product), no price move.
 */
static Statement st_market_first = {
	MARKET_U_UP "INSERT INTO @extschema@.stockx_price_history (variant_id, sku, currency_code, "
	            "       observed_at, lowest_ask, highest_bid, sell_faster, earn_more) "
	            "SELECT up.variant_id, $1, $8, pg_catalog.now(), up.lowest_ask, up.highest_bid, "
	            "       up.sell_faster, up.earn_more FROM up "
	            "ON CONFLICT DO NOTHING",
	12, MARKET_TYPES
};

/*
 * The market data of a refresh: a variant gets a history row only when
 * one of its amounts differs from what stockx_market held (old: every
 * sub-statement sees the table as it was before the upsert; looked up by
 * primary key per variant).  Returns the payload of a price_move event for
 * each variant whose ask or bid moved by more than $9 percent; the caller
 * queues them (events.c).
 */
static Statement st_market_record = {
	MARKET_U_UP
	", "
	"old AS ( "
	"  SELECT m.variant_id, m.lowest_ask, m.highest_bid, m.sell_faster, m.earn_more "
	"    FROM u CROSS JOIN LATERAL (SELECT * FROM @extschema@.stockx_market m "
	"          WHERE m.variant_id = u.variant_id AND m.currency_code = $8) m), "
	"hist AS ( "
	"  INSERT INTO @extschema@.stockx_price_history (variant_id, sku, currency_code, "
	"         observed_at, lowest_ask, highest_bid, sell_faster, earn_more) "
	"  SELECT up.variant_id, $1, $8, pg_catalog.now(), up.lowest_ask, up.highest_bid, "
	"         up.sell_faster, up.earn_more "
	"    FROM up LEFT JOIN old ON old.variant_id = up.variant_id "
	"   WHERE old.variant_id IS NULL "
	"      OR (old.lowest_ask, old.highest_bid, old.sell_faster, old.earn_more) "
	"         IS DISTINCT FROM (up.lowest_ask, up.highest_bid, up.sell_faster, up.earn_more) "
	"  ON CONFLICT DO NOTHING) "
	"SELECT pg_catalog.jsonb_build_object('sku', $1, "
	"       'variant_id', up.variant_id, 'size', (SELECT v.variant_value "
	"         FROM @extschema@.stockx_variant v WHERE v.variant_id = up.variant_id), "
	"       'currency_code', $8, 'lowest_ask', up.lowest_ask, "
	"       'lowest_ask_before', old.lowest_ask, 'highest_bid', up.highest_bid, "
	"       'highest_bid_before', old.highest_bid)::text "
	"  FROM up JOIN old ON old.variant_id = up.variant_id "
	" WHERE $9 > 0 "
	"   AND (pg_catalog.abs(up.lowest_ask - old.lowest_ask) * 100 > $9::numeric * old.lowest_ask "
	"     OR pg_catalog.abs(up.highest_bid - old.highest_bid) * 100 > $9::numeric * old.highest_bid) "
	" ORDER BY up.variant_id",
	12, MARKET_TYPES
};

/*
 * Every currency's amounts into stockx_market, and what changed into the
 * history (all of it when the product is first met); with update_variants
 * also the first currency's into
 * stockx_variant (a refresh without a variants answer), from the same
 * arrays; then the price alerts on the product (store_alerts.c).
 */
static void
record_market(const StockxStoreConfig *config, const char *sku, StockxResult *r,
              bool update_variants, bool first, StockxEventQueue *events)
{
	int c;
	uint64 row;

	for (c = 0; c < config->currencies.n; c++)
	{
		Params p = { 0 };

		market_arrays(sku, r, c, &p);
		if (c == 0 && update_variants)
		{
			Params v = p;

			store_param_text(&v, config->currencies.code[0]);
			store_run(&st_market_update, &v, SPI_OK_UPDATE);
		}
		store_param_text(&p, config->currencies.code[c]);
		store_param_float8(&p, config->notify_change_pct);
		market_detail_arrays(r, c, &p);
		if (first)
		{
			store_run(&st_market_first, &p, SPI_OK_INSERT);
			continue;
		}
		store_run(&st_market_record, &p, SPI_OK_SELECT);
		for (row = 0; row < store_rows(); row++)
			stockx_events_add(events, "price_move",
			                  SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
	}
	stockx_store_check_alerts(sku, events);
}

/* the row that holds a product already (a barcode's joins it) */
static Statement st_product_owner = {
	"SELECT sku FROM @extschema@.stockx_product "
	" WHERE stockx_product_id = $1::uuid AND sku <> $2 AND status = 'enriched' "
	" ORDER BY enriched_at, sku LIMIT 1",
	2,
	{ TEXTOID, TEXTOID }
};

/*
 * The SKU of the row that holds StockX product product_id already, other
 * than sku (palloc'd in the caller's context), or NULL.
 */
char *
stockx_store_product_owner(const char *product_id, const char *sku)
{
	Params p = { 0 };
	char *owner;

	store_param_text(&p, product_id);
	store_param_text(&p, sku);
	store_run(&st_product_owner, &p, SPI_OK_SELECT);
	if (store_rows() != 1)
		return NULL;
	owner = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return owner ? MemoryContextStrdup(TopTransactionContext, owner) : NULL;
}

static Statement st_merged = {
	"UPDATE @extschema@.stockx_product SET status = 'merged', merged_into = $2, "
	"  stockx_product_id = $3::uuid, attempts = 0, last_error = NULL, "
	"  next_attempt_at = NULL, " SETTLED " WHERE sku = $1 AND lease_pid = $4 RETURNING status",
	4,
	{ TEXTOID, TEXTOID, TEXTOID, INT4OID }
};

/* A barcode row whose product another row holds: it joins that row. */
static const char *
write_merged(const char *sku, const char *owner, const char *product_id)
{
	Params p = { 0 };

	store_param_text(&p, sku);
	store_param_text(&p, owner);
	store_param_text(&p, product_id);
	store_param_int4(&p, MyProcPid);
	store_run(&st_merged, &p, SPI_OK_UPDATE_RETURNING);
	return store_returned_status();
}
static Statement st_product_enriched = {
	"UPDATE @extschema@.stockx_product SET status = 'enriched', stockx_product_id = $2::uuid, "
	"  url_key = $3, style_id = $4, title = $5, brand = $6, product_type = $7, gender = $8, "
	"  season = $9, colorway = $10, color = $11, retail_price = $12::numeric, "
	"  release_date = $13::date, product = $14::jsonb, currency_code = $15, "
	"  lowest_ask = (SELECT pg_catalog.min(a) FROM pg_catalog.unnest($16::numeric[]) a), "
	"  highest_bid = (SELECT pg_catalog.max(b) FROM pg_catalog.unnest($17::numeric[]) b), "
	"  market_updated_at = pg_catalog.now(), enriched_at = pg_catalog.now(), "
	"  attempts = 0, last_error = NULL, next_attempt_at = NULL, " SETTLED
	" WHERE sku = $1 AND lease_pid = $18 RETURNING status",
	18,
	{ TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	  TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID }
};

static const char *
write_enriched(const StockxStoreConfig *config, const StockxClaim *claim, StockxResult *r,
               StockxEventQueue *events)
{
	const char *sku = claim->sku;
	SxProduct *pr = &r->product;
	Params p = { 0 };
	char **asks = palloc0(sizeof(char *) * (r->nvariants + 1));
	char **bids = palloc0(sizeof(char *) * (r->nvariants + 1));
	const char *status;
	int i, j;

	/* a barcode whose product another row took meanwhile: join it instead */
	if (claim->by_gtin)
	{
		char *owner = stockx_store_product_owner(pr->product_id, sku);

		if (owner != NULL)
		{
			r->outcome = SX_OUTCOME_MERGED;
			r->merged_into = owner;
			return write_merged(sku, owner, pr->product_id);
		}
	}

	/* the product's summary: over the variants we store */
	for (i = 0; i < r->nvariants; i++)
		for (j = 0; j < r->nmarket[0]; j++)
			if (pg_strcasecmp(r->market[0][j].variant_id, r->variants[i].variant_id) == 0)
			{
				asks[i] = r->market[0][j].lowest_ask;
				bids[i] = r->market[0][j].highest_bid;
				break;
			}
	store_param_text(&p, sku);
	store_param_api_text(&p, pr->product_id);
	store_param_api_text(&p, pr->url_key);
	store_param_api_text(&p, pr->style_id);
	store_param_api_text(&p, pr->title);
	store_param_api_text(&p, pr->brand);
	store_param_api_text(&p, pr->product_type);
	store_param_api_text(&p, pr->gender);
	store_param_api_text(&p, pr->season);
	store_param_api_text(&p, pr->colorway);
	store_param_api_text(&p, pr->color);
	store_param_api_text(&p, pr->retail_price);
	store_param_api_text(&p, pr->release_date);
	store_param_api_text(&p, pr->json);
	store_param_text(&p, config->currencies.code[0]);
	store_param_api_array(&p, asks, r->nvariants);
	store_param_api_array(&p, bids, r->nvariants);
	store_param_int4(&p, MyProcPid);
	store_run(&st_product_enriched, &p, SPI_OK_UPDATE_RETURNING);
	status = store_returned_status();
	if (status == NULL)
		return NULL; /* not ours any more */
	write_variants(sku, r, config->currencies.code[0], claim->nknown > 0);
	/* a row that had no variants: its product is new to it */
	record_market(config, sku, r, false, claim->nknown == 0, events);
	return status;
}

static Statement st_product_lock = { "SELECT status FROM @extschema@.stockx_product "
	                                 " WHERE sku = $1 AND lease_pid = $2 FOR UPDATE",
	                                 2,
	                                 { TEXTOID, INT4OID } };

/* Lock the row if it is still ours; false when the lease was lost. */
static bool
lock_leased(const char *sku)
{
	Params p = { 0 };

	store_param_text(&p, sku);
	store_param_int4(&p, MyProcPid);
	store_run(&st_product_lock, &p, SPI_OK_SELECT);
	return store_rows() == 1;
}
static Statement st_product_refreshed = {
	"UPDATE @extschema@.stockx_product p SET lowest_ask = s.lo, highest_bid = s.hi, "
	"  currency_code = $2, market_updated_at = pg_catalog.now(), "
	"  attempts = 0, last_error = NULL, next_attempt_at = NULL, " SETTLED
	"  FROM (SELECT pg_catalog.min(lowest_ask) AS lo, pg_catalog.max(highest_bid) AS hi "
	"          FROM @extschema@.stockx_variant WHERE sku = $1) s "
	" WHERE p.sku = $1 AND p.lease_pid = $3 RETURNING p.status",
	3,
	{ TEXTOID, TEXTOID, INT4OID }
};

static const char *
write_refreshed(const StockxStoreConfig *config, const char *sku, StockxResult *r,
                StockxEventQueue *events)
{
	Params p = { 0 };

	if (!lock_leased(sku))
		return NULL;
	if (r->variants != NULL)
		write_variants(sku, r, config->currencies.code[0], true);
	record_market(config, sku, r, r->variants == NULL, false, events);
	store_param_text(&p, sku);
	store_param_text(&p, config->currencies.code[0]);
	store_param_int4(&p, MyProcPid);
	store_run(&st_product_refreshed, &p, SPI_OK_UPDATE_RETURNING);
	return store_returned_status();
}
static Statement st_failed = {
	"UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
	"  next_attempt_at = CASE WHEN status = 'pending' THEN NULL "
	"                         ELSE pg_catalog.now() + interval '1 day' END, "
	"  status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, " SETTLED
	" WHERE sku = $1 AND lease_pid = $3 RETURNING status",
	3,
	{ TEXTOID, TEXTOID, INT4OID }
};

static const char *
write_failed(const char *sku, const char *error)
{
	Params p = { 0 };

	store_param_text(&p, sku);
	store_param_text(&p, error);
	store_param_int4(&p, MyProcPid);
	store_run(&st_failed, &p, SPI_OK_UPDATE_RETURNING);
	return store_returned_status();
}

static Statement st_not_found = {
	"UPDATE @extschema@.stockx_product SET status = 'not_found', attempts = 0, "
	"  next_attempt_at = NULL, last_error = NULL, " SETTLED
	" WHERE sku = $1 AND lease_pid = $2 RETURNING status",
	2,
	{ TEXTOID, INT4OID }
};

static Statement st_retry_later = {
	"UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
	"  status = CASE WHEN status = 'pending' AND attempts + 1 >= $3 "
	"                THEN 'failed' ELSE status END, "
	"  next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => $4), " SETTLED
	" WHERE sku = $1 AND lease_pid = $5 RETURNING status",
	5,
	{ TEXTOID, TEXTOID, INT4OID, FLOAT8OID, INT4OID }
};

/* Settle one row; returns its status afterwards, NULL when it is not ours. */
static const char *
write_one(const StockxStoreConfig *config, StockxClaim *claim, StockxResult *r,
          StockxEventQueue *events)
{
	Params p = { 0 };

	switch (r->outcome)
	{
		case SX_OUTCOME_ENRICHED:
			return write_enriched(config, claim, r, events);
		case SX_OUTCOME_REFRESHED:
			return write_refreshed(config, claim->sku, r, events);
		case SX_OUTCOME_NOT_FOUND:
			store_param_text(&p, claim->sku);
			store_param_int4(&p, MyProcPid);
			store_run(&st_not_found, &p, SPI_OK_UPDATE_RETURNING);
			return store_returned_status();
		case SX_OUTCOME_RETRY_LATER:
			store_param_text(&p, claim->sku);
			store_param_text(&p, r->error);
			store_param_int4(&p, config->max_attempts);
			store_param_float8(&p, r->retry_in_s);
			store_param_int4(&p, MyProcPid);
			store_run(&st_retry_later, &p, SPI_OK_UPDATE_RETURNING);
			return store_returned_status();
		case SX_OUTCOME_FAILED:
			return write_failed(claim->sku, r->error);
		case SX_OUTCOME_MERGED:
			return write_merged(claim->sku, r->merged_into, r->product.product_id);
		case SX_OUTCOME_NONE:
		case SX_OUTCOME_DEFERRED:
			break;
	}
	return NULL;
}

/* Data errors of the row itself: what the database refuses in its values. */
static bool
is_row_data_error(int sqlerrcode)
{
	int category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION || category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
}

/*
 * Whether edata is PostgreSQL's refusal of a price history row because a
 * partition of its month was attached meanwhile.  A row of a month that
 * has no partition goes to the default one; the upkeep that makes that
 * month (stockx_price_history_maintain) locks the default partition, moves
 * the month's rows out and attaches the new partition, and a write routed
 * to the default partition before that waits for the lock, then fails the
 * default partition's new constraint (SQLSTATE 23514, raised with
 * errtable() of the partition and, unlike a CHECK constraint, no
 * constraint name).  Not the row's fault: repeated, the write goes to the
 * new partition.
 */
static bool
history_partition_changed(const ErrorData *edata)
{
	Oid history;
	Oid nsp;
	Oid rel;

	if (edata->sqlerrcode != ERRCODE_CHECK_VIOLATION || edata->constraint_name != NULL ||
	    edata->schema_name == NULL || edata->table_name == NULL)
		return false;
	history = stockx_extension_relid("stockx_price_history");
	nsp = get_namespace_oid(edata->schema_name, true);
	if (!OidIsValid(history) || !OidIsValid(nsp))
		return false;
	rel = get_relname_relid(edata->table_name, nsp);
	return OidIsValid(rel) && list_member_oid(get_partition_ancestors(rel), history);
}

/*
 * Write one settled row in a subtransaction.  A data error of the row
 * marks it failed with the reason; any other error propagates, and a
 * price history row refused because its partitions changed meanwhile as a
 * serialization failure, which the worker repeats the write for.  The
 * price moves found go into events (and out again when the row is not
 * written).
 */
void
stockx_store_write_row(const StockxStoreConfig *config, StockxClaim *claim, StockxResult *result,
                       StockxWritten *written, StockxEventQueue *events)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	const char *volatile status = NULL;
	ErrorData *edata = NULL;
	int mark = stockx_events_mark(events);

	written->write = SX_WRITE_SKIPPED;
	written->status = NULL;
	if (result->outcome == SX_OUTCOME_NONE)
		return;
	if (result->outcome == SX_OUTCOME_DEFERRED)
	{
		/* not the row's fault (429s): back to the queue untouched */
		stockx_store_release(&claim, 1);
		return;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		status = write_one(config, claim, result, events);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		stockx_events_rewind(events, mark);
		if (!is_row_data_error(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		if (history_partition_changed(edata))
			ereport(
			    ERROR,
			    (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			     errmsg("stockx_enrich: could not store SKU \"%s\": the partitions of the price "
			            "history changed during the write",
			            claim->sku),
			     errdetail_internal("%s", edata->message)));
		ereport(WARNING, (errmsg("stockx_enrich: could not store SKU \"%s\": %s", claim->sku,
		                         edata->message)));
		result->outcome = SX_OUTCOME_FAILED;
		result->error = psprintf("could not store the answer: %s", edata->message);
		status = write_failed(claim->sku, result->error);
		written->write = status ? SX_WRITE_ROW_FAILED : SX_WRITE_LOST_LEASE;
		written->status = status;
		FreeErrorData(edata);
		return;
	}
	written->write = status ? SX_WRITE_DONE : SX_WRITE_LOST_LEASE;
	written->status = status;
}

/* Mark a row failed with error (used when the row cannot be written at all). */
bool
stockx_store_fail_row(const StockxStoreConfig *config, StockxClaim *claim, const char *error,
                      StockxWritten *written)
{
	const char *status = write_failed(claim->sku, error);

	written->write = status ? SX_WRITE_ROW_FAILED : SX_WRITE_LOST_LEASE;
	written->status = status;
	return status != NULL;
}
