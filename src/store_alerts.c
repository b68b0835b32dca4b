/*-------------------------------------------------------------------------
 * store_alerts.c
 *	  Price alerts: after a product's market data is written, every alert
 *	  on it (stockx_price_alert: "ask at or below" or "bid at or above" an
 *	  amount, in a currency, for one size or for the best of all sizes) is
 *	  compared with what stockx_market now holds.  An alert that crosses
 *	  its line is marked crossed and queues one price_alert event; while it
 *	  stays crossed nothing more is sent; when the price goes back over the
 *	  line it is marked clear, ready for the next crossing.
 *
 * The alert rows are the shop's: a worker never waits for one.  It locks
 * the alerts it compares with SKIP LOCKED, so an alert somebody holds in
 * an open transaction is compared at the product's next write instead.
 * Runs inside the row's subtransaction (store_write.c), so a refused write
 * takes its alert changes and events with it.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "events.h"
#include "store.h"
#include "store_int.h"

/*
 * $1: the SKU whose variants and market data were just written.  Alerts on
 * it, and on the barcode rows merged into it, which hold no variants of
 * their own.  The price an alert is compared with: the lowest ask (or
 * highest bid) of its size, or of all sizes when it names none, in its
 * currency; no price, not crossed.
 */
static Statement st_alerts = {
	"WITH a AS ( "
	"  SELECT a.alert_id, a.sku, a.currency_code, a.condition, a.amount, a.crossed, "
	"         b.variant_id, b.variant_value, b.price "
	"    FROM @extschema@.stockx_price_alert a "
	"    LEFT JOIN LATERAL ( "
	"      SELECT v.variant_id, v.variant_value, "
	"             CASE a.condition WHEN 'ask_at_or_below' THEN m.lowest_ask "
	"                  ELSE m.highest_bid END AS price "
	"        FROM @extschema@.stockx_variant v "
	"        JOIN @extschema@.stockx_market m ON m.variant_id = v.variant_id "
	"         AND m.currency_code = a.currency_code "
	"       WHERE v.sku = $1 AND (a.size IS NULL OR v.variant_value = a.size) "
	"         AND CASE a.condition WHEN 'ask_at_or_below' THEN m.lowest_ask "
	"                  ELSE m.highest_bid END IS NOT NULL "
	"       ORDER BY CASE a.condition WHEN 'ask_at_or_below' THEN m.lowest_ask "
	"                  ELSE -m.highest_bid END, v.variant_value, v.variant_id "
	"       LIMIT 1) b ON true "
	"   WHERE a.sku = ANY (ARRAY(SELECT $1 UNION ALL SELECT p.sku "
	"           FROM @extschema@.stockx_product p WHERE p.merged_into = $1)) "
	"     FOR NO KEY UPDATE OF a SKIP LOCKED), "
	"n AS ( "
	"  SELECT a.*, COALESCE(CASE a.condition WHEN 'ask_at_or_below' THEN a.price <= a.amount "
	"                            ELSE a.price >= a.amount END, false) AS now_crossed "
	"    FROM a), "
	"up AS ( "
	"  UPDATE @extschema@.stockx_price_alert t SET crossed = n.now_crossed, "
	"         crossed_at = CASE WHEN n.now_crossed THEN pg_catalog.now() END, "
	"         crossed_price = CASE WHEN n.now_crossed THEN n.price END, "
	"         crossed_variant_id = CASE WHEN n.now_crossed THEN n.variant_id END, "
	"         fired = t.fired + CASE WHEN n.now_crossed THEN 1 ELSE 0 END "
	"    FROM n WHERE t.alert_id = n.alert_id AND t.crossed <> n.now_crossed "
	"  RETURNING t.alert_id, t.sku, t.size, t.currency_code, t.condition, t.amount, "
	"            n.now_crossed, n.variant_id, n.variant_value, n.price) "
	"SELECT pg_catalog.jsonb_build_object('alert_id', alert_id, 'sku', sku, "
	"       'size', variant_value, 'variant_id', variant_id, 'alert_size', size, "
	"       'currency_code', currency_code, 'condition', condition, 'amount', amount, "
	"       'price', price)::text "
	"  FROM up WHERE now_crossed ORDER BY alert_id",
	1,
	{ TEXTOID }
};

/*
 * Compare the alerts on sku with its market data as just written; queue a
 * price_alert event for each that crossed its line.
 */
void
stockx_store_check_alerts(const char *sku, StockxEventQueue *events)
{
	Params p = { 0 };
	uint64 row;

	store_param_text(&p, sku);
	store_run(&st_alerts, &p, SPI_OK_SELECT);
	for (row = 0; row < store_rows(); row++)
		stockx_events_add(events, "price_alert",
		                  SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
}
