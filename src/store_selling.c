/*-------------------------------------------------------------------------
 * store_selling.c
 *	  Writing the selling side's sync: a page of listings or orders, as
 *	  StockX sent it, into stockx_listing or stockx_order, the products
 *	  they name that no row holds queued for enrichment, and the feed's
 *	  resume point in stockx_sync_state, all in one statement, so a page is
 *	  written whole with the page to ask next or not at all.
 *
 * SQL reads the elements from the body (jsonb); sx_parse_page() checked
 * the envelope before.  The worker runs each call in a transaction of its
 * own (worker_sync.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "store.h"
#include "store_int.h"

/* the product's and the variant's id as uuid where they are one (odd ids stay in data) */
#define UUID_PATTERN "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
#define PRODUCT_UUID                                                                               \
	"CASE WHEN e->'product'->>'productId' ~* " UUID_PATTERN                                        \
	" THEN (e->'product'->>'productId')::uuid END"
#define VARIANT_UUID                                                                               \
	"CASE WHEN e->'variant'->>'variantId' ~* " UUID_PATTERN                                        \
	" THEN (e->'variant'->>'variantId')::uuid END"

/*
 * Begin (or go on with) a pass of feed $1 for run $2: the page to ask, and
 * for the order history the fromDate.  A pass that a stop, the quota or
 * the circuit interrupted goes on at its next page with its fromDate; a
 * new pass of the history starts at the oldest order not yet seen in the
 * history (of the last 90 days), else a day before the newest one there.
 */
static Statement st_sync_begin = {
	"INSERT INTO @extschema@.stockx_sync_state AS s (feed, next_page, pass_started_at, "
	"       from_date, rows_this_pass, last_run_id) "
	"SELECT $1, 1, pg_catalog.now(), "
	"       CASE WHEN $1 = 'orders_history' THEN (SELECT (LEAST( "
	"         (SELECT pg_catalog.min(o.created_at) FROM @extschema@.stockx_order o "
	"           WHERE NOT o.in_history AND o.created_at > pg_catalog.now() - interval '90 days'), "
	"         (SELECT pg_catalog.max(o.created_at) FROM @extschema@.stockx_order o "
	"           WHERE o.in_history) - interval '1 day') AT TIME ZONE 'UTC')::date) END, "
	"       0, $2 "
	"ON CONFLICT (feed) DO UPDATE SET "
	"  next_page = CASE WHEN s.pass_started_at IS NULL THEN 1 ELSE s.next_page END, "
	"  from_date = CASE WHEN s.pass_started_at IS NULL THEN EXCLUDED.from_date "
	"                   ELSE s.from_date END, "
	"  rows_this_pass = CASE WHEN s.pass_started_at IS NULL THEN 0 ELSE s.rows_this_pass END, "
	"  pass_started_at = COALESCE(s.pass_started_at, EXCLUDED.pass_started_at), "
	"  last_run_id = EXCLUDED.last_run_id "
	"RETURNING s.next_page, pg_catalog.to_char(s.from_date, 'YYYY-MM-DD')",
	2,
	{ TEXTOID, INT8OID }
};

/*
 * Where the pass of feed stands: *page, the page to ask next (1 on a new
 * pass), and *from_date ("YYYY-MM-DD", palloc'd in the caller's context)
 * or NULL.
 */
void
stockx_store_sync_begin(const char *feed, int64 run_id, int *page, char **from_date)
{
	Params p = { 0 };
	char *d;

	store_param_text(&p, feed);
	store_param_int8(&p, run_id);
	store_run(&st_sync_begin, &p, SPI_OK_INSERT_RETURNING);
	*page = atoi(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	d = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*from_date = d ? pstrdup(d) : NULL;
}

/*
 * The resume point after page $2 of feed $3 was written ($4: StockX has a
 * further page; $5: rows on the page; $6: the run): the next page, or the
 * pass finished.  Pages asked today are counted per UTC day.
 */
#define SYNC_STATE_AFTER_PAGE                                                                      \
	"st AS ( "                                                                                     \
	"  UPDATE @extschema@.stockx_sync_state s SET "                                                \
	"    next_page = CASE WHEN $4 THEN $2 + 1 ELSE 1 END, "                                        \
	"    rows_this_pass = CASE WHEN $4 THEN s.rows_this_pass + $5 ELSE 0 END, "                    \
	"    pass_started_at = CASE WHEN $4 THEN s.pass_started_at END, "                              \
	"    last_finished_at = CASE WHEN $4 THEN s.last_finished_at ELSE pg_catalog.now() END, "      \
	"    last_pages = CASE WHEN $4 THEN s.last_pages ELSE $2 END, "                                \
	"    last_rows = CASE WHEN $4 THEN s.last_rows ELSE s.rows_this_pass + $5 END, "               \
	"    pages_today = CASE WHEN s.pages_day = (pg_catalog.now() AT TIME ZONE 'UTC')::date "       \
	"                       THEN s.pages_today + 1 ELSE 1 END, "                                   \
	"    pages_day = (pg_catalog.now() AT TIME ZONE 'UTC')::date, "                                \
	"    last_error = NULL, last_error_at = NULL, last_run_id = $6 "                               \
	"   WHERE s.feed = $3) "

/* Products named on a page that no row holds: queued by their style id. */
#define SYNC_QUEUE_UNKNOWN                                                                         \
	"q AS ( "                                                                                      \
	"  INSERT INTO @extschema@.stockx_product (sku) "                                              \
	"  SELECT DISTINCT pg_catalog.btrim(u.style_id) FROM up u "                                    \
	"   WHERE pg_catalog.length(pg_catalog.btrim(u.style_id)) BETWEEN 1 AND 100 "                  \
	"     AND (u.product_id IS NULL OR NOT EXISTS (SELECT FROM @extschema@.stockx_product p "      \
	"          WHERE p.stockx_product_id = u.product_id)) "                                        \
	"  ON CONFLICT (sku) DO NOTHING RETURNING sku) "

/*
 * A listing that no page of a finished pass listed (deleted long ago, or
 * its ask expired: StockX leaves those out) is missing_since then, until a
 * pass lists it again.
 */
static Statement st_listings_page = {
	"WITH e AS (SELECT x AS e FROM pg_catalog.jsonb_array_elements(($1::jsonb) -> 'listings') x), "
	"up AS ( "
	"  INSERT INTO @extschema@.stockx_listing AS l (listing_id, status, amount, currency_code, "
	"         inventory_type, product_id, style_id, product_name, variant_id, variant_value, "
	"         ask_id, order_number, order_status, created_at, updated_at, data, synced_at) "
	"  SELECT e->>'listingId', e->>'status', (e->>'amount')::numeric, e->>'currencyCode', "
	"         e->>'inventoryType', " PRODUCT_UUID
	", e->'product'->>'styleId', e->'product'->>'productName', " VARIANT_UUID
	", e->'variant'->>'variantValue', "
	"         e->'ask'->>'askId', e->'order'->>'orderNumber', e->'order'->>'orderStatus', "
	"         (e->>'createdAt')::timestamptz, (e->>'updatedAt')::timestamptz, e, "
	"         pg_catalog.now() "
	"    FROM e "
	"  ON CONFLICT (listing_id) DO UPDATE SET status = EXCLUDED.status, "
	"    amount = EXCLUDED.amount, currency_code = EXCLUDED.currency_code, "
	"    inventory_type = EXCLUDED.inventory_type, product_id = EXCLUDED.product_id, "
	"    style_id = EXCLUDED.style_id, product_name = EXCLUDED.product_name, "
	"    variant_id = EXCLUDED.variant_id, variant_value = EXCLUDED.variant_value, "
	"    ask_id = EXCLUDED.ask_id, order_number = EXCLUDED.order_number, "
	"    order_status = EXCLUDED.order_status, created_at = EXCLUDED.created_at, "
	"    updated_at = EXCLUDED.updated_at, data = EXCLUDED.data, "
	"    synced_at = EXCLUDED.synced_at, missing_since = NULL "
	"  RETURNING l.product_id, l.style_id), " SYNC_QUEUE_UNKNOWN ", " SYNC_STATE_AFTER_PAGE ", "
	"gone AS ( "
	"  UPDATE @extschema@.stockx_listing l SET missing_since = pg_catalog.now() "
	"   WHERE NOT $4 AND l.missing_since IS NULL "
	"     AND l.synced_at < (SELECT s.pass_started_at FROM @extschema@.stockx_sync_state s "
	"                         WHERE s.feed = $3) "
	"     AND l.listing_id NOT IN (SELECT e->>'listingId' FROM e)) "
	"SELECT (SELECT pg_catalog.count(*) FROM up), (SELECT pg_catalog.count(*) FROM q)",
	6,
	{ TEXTOID, INT4OID, TEXTOID, BOOLOID, INT4OID, INT8OID }
};

/*
 * $7: the page is of the active orders.  An order of the history is
 * in_history for good; an active order that no page of a finished pass of
 * the active orders listed has left them (active false).  A payout the
 * list does not give (null) leaves the one known.
 */
static Statement st_orders_page = {
	"WITH e AS (SELECT x AS e FROM pg_catalog.jsonb_array_elements(($1::jsonb) -> 'orders') x), "
	"up AS ( "
	"  INSERT INTO @extschema@.stockx_order AS o (order_number, listing_id, ask_id, status, "
	"         active, in_history, amount, currency_code, inventory_type, product_id, style_id, "
	"         product_name, variant_id, variant_value, created_at, updated_at, sale_price, "
	"         payout_adjustments, payout_total, payout_currency, payout, data, synced_at) "
	"  SELECT e->>'orderNumber', e->>'listingId', e->>'askId', e->>'status', $7, NOT $7, "
	"         (e->>'amount')::numeric, e->>'currencyCode', e->>'inventoryType', " PRODUCT_UUID
	", e->'product'->>'styleId', e->'product'->>'productName', " VARIANT_UUID
	", e->'variant'->>'variantValue', "
	"         (e->>'createdAt')::timestamptz, (e->>'updatedAt')::timestamptz, "
	"         (e->'payout'->>'salePrice')::numeric, "
	"         (e->'payout'->>'totalAdjustments')::numeric, "
	"         (e->'payout'->>'totalPayout')::numeric, e->'payout'->>'currencyCode', "
	"         CASE WHEN pg_catalog.jsonb_typeof(e->'payout') = 'object' THEN e->'payout' END, "
	"         e, pg_catalog.now() "
	"    FROM e "
	"  ON CONFLICT (order_number) DO UPDATE SET listing_id = EXCLUDED.listing_id, "
	"    ask_id = EXCLUDED.ask_id, status = EXCLUDED.status, active = EXCLUDED.active, "
	"    in_history = o.in_history OR EXCLUDED.in_history, amount = EXCLUDED.amount, "
	"    currency_code = EXCLUDED.currency_code, inventory_type = EXCLUDED.inventory_type, "
	"    product_id = EXCLUDED.product_id, style_id = EXCLUDED.style_id, "
	"    product_name = EXCLUDED.product_name, variant_id = EXCLUDED.variant_id, "
	"    variant_value = EXCLUDED.variant_value, created_at = EXCLUDED.created_at, "
	"    updated_at = EXCLUDED.updated_at, "
	"    sale_price = COALESCE(EXCLUDED.sale_price, o.sale_price), "
	"    payout_adjustments = COALESCE(EXCLUDED.payout_adjustments, o.payout_adjustments), "
	"    payout_total = COALESCE(EXCLUDED.payout_total, o.payout_total), "
	"    payout_currency = COALESCE(EXCLUDED.payout_currency, o.payout_currency), "
	"    payout = COALESCE(EXCLUDED.payout, o.payout), data = EXCLUDED.data, "
	"    synced_at = EXCLUDED.synced_at "
	"  RETURNING o.product_id, o.style_id), " SYNC_QUEUE_UNKNOWN ", " SYNC_STATE_AFTER_PAGE ", "
	"gone AS ( "
	"  UPDATE @extschema@.stockx_order o SET active = false "
	"   WHERE $7 AND NOT $4 AND o.active "
	"     AND o.synced_at < (SELECT s.pass_started_at FROM @extschema@.stockx_sync_state s "
	"                         WHERE s.feed = $3) "
	"     AND o.order_number NOT IN (SELECT e->>'orderNumber' FROM e)) "
	"SELECT (SELECT pg_catalog.count(*) FROM up), (SELECT pg_catalog.count(*) FROM q)",
	7,
	{ TEXTOID, INT4OID, TEXTOID, BOOLOID, INT4OID, INT8OID, BOOLOID }
};

/*
 * Write page `page` of feed (its body, checked by sx_parse_page(): nitems
 * elements, has_next) with the feed's resume point; *queued is how many
 * products it queued for enrichment.  Returns the rows written.
 */
int64
stockx_store_sync_page(const char *feed, const char *body, int page, bool has_next, int nitems,
                       int64 run_id, int64 *queued)
{
	bool listings = strcmp(feed, "listings") == 0;
	Params p = { 0 };
	int64 rows;

	store_param_text(&p, body);
	store_param_int4(&p, page);
	store_param_text(&p, feed);
	store_param(&p, BoolGetDatum(has_next), false);
	store_param_int4(&p, nitems);
	store_param_int8(&p, run_id);
	if (!listings)
		store_param(&p, BoolGetDatum(strcmp(feed, "orders_active") == 0), false);
	store_run(listings ? &st_listings_page : &st_orders_page, &p, SPI_OK_SELECT);
	rows = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10);
	*queued = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), NULL, 10);
	return rows;
}

/*
 * Is a sync of feed $1 (NULL: of any list) due: never finished, a pass in
 * progress, or the last pass finished $2 seconds ago or longer?
 */
static Statement st_sync_due = {
	"SELECT EXISTS (SELECT FROM pg_catalog.unnest(ARRAY['listings', 'orders_active', "
	"       'orders_history']) AS f(feed) "
	"  LEFT JOIN @extschema@.stockx_sync_state s ON s.feed = f.feed "
	" WHERE ($1 IS NULL OR f.feed = $1) "
	"   AND (s.feed IS NULL OR s.pass_started_at IS NOT NULL OR s.last_finished_at IS NULL "
	"        OR s.last_finished_at <= pg_catalog.now() - pg_catalog.make_interval(secs => $2)))",
	2,
	{ TEXTOID, FLOAT8OID }
};

bool
stockx_store_sync_due(const char *feed, int every_s)
{
	Params p = { 0 };
	bool isnull;

	store_param_text(&p, feed);
	store_param_float8(&p, (double) every_s);
	store_run(&st_sync_due, &p, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static Statement st_sync_failed = {
	"UPDATE @extschema@.stockx_sync_state SET last_error = $2, "
	"  last_error_at = pg_catalog.now(), last_run_id = $3 WHERE feed = $1",
	3,
	{ TEXTOID, TEXTOID, INT8OID }
};

/* Why the pass of feed stopped short (it goes on from its page next time). */
void
stockx_store_sync_failed(const char *feed, const char *error, int64 run_id)
{
	Params p = { 0 };

	store_param_text(&p, feed);
	store_param_text(&p, error);
	store_param_int8(&p, run_id);
	store_run(&st_sync_failed, &p, SPI_OK_UPDATE);
}
