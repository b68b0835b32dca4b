/*-------------------------------------------------------------------------
 * store.c
 *	  Everything stockx_enrich reads from or writes to its tables, through
 *	  SPI plans prepared once per process and kept (SPI_keepplan), always
 *	  with parameters.  The SQL is built one way: Q() puts the extension's
 *	  schema, quoted, wherever the text says @extschema@; functions are
 *	  qualified with pg_catalog, and the callers run with search_path
 *	  pinned to pg_catalog, pg_temp.
 *
 * Writing a row: every write is conditional on the row's lease still
 * being ours (lease_pid); a row whose lease was lost is left alone.  The
 * variants of a product go in one statement (arrays unnested, in id
 * order), not one per variant.  Each row is written in its own
 * subtransaction: when the database refuses the row's own data (SQLSTATE
 * classes 22 and 23: say a value the database encoding cannot represent)
 * the row is marked failed with the reason and the rest of the batch
 * goes on; any other error (a deadlock, a lock timeout, a cancel) is not
 * the row's fault and aborts the whole write, which the worker repeats.
 *
 * Text from StockX is UTF-8 and is converted to the database encoding
 * here; a value that cannot be represented is such a data error.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "events.h"
#include "limiter.h"
#include "store.h"

#define SX_MAX_PARAMS 24

typedef enum StatementId
{
	ST_CLAIM_PENDING = 0,
	ST_CLAIM_REFRESH,
	ST_CLAIM_NOT_FOUND,
	ST_PRODUCT_ENRICHED,
	ST_PRODUCT_LOCK,
	ST_PRODUCT_REFRESHED,
	ST_VARIANTS_UPSERT,
	ST_VARIANTS_DELETE_STALE,
	ST_MARKET_UPDATE,
	ST_NOT_FOUND,
	ST_RETRY_LATER,
	ST_FAILED,
	ST_RELEASE,
	ST_RENEW,
	ST_RUN_COUNTERS,
	ST_RUN_ENSURE,
	ST_RUN_ORPHANS,
	ST_RUN_FINISH,
	ST_RUN_REASON,
	ST_NEXT_RUN_ID,
	ST_QUOTA_LOAD,
	ST_QUOTA_SAVE,
	ST_ANYTHING_DUE,
	ST_RUN_PRUNE,
	ST_EVENT_PRUNE,
	ST_GTIN_DELETE,
	ST_GTIN_INSERT,
	ST_MARKET_RECORD,
	ST_HISTORY_MAINTAIN,
	ST_PRODUCT_OWNER,
	ST_MERGED,
	ST_COUNT
} StatementId;

typedef struct Statement
{
	const char *sql; /* @extschema@ stands for the extension's schema */
	int nargs;
	Oid types[SX_MAX_PARAMS];
} Statement;

#define CLAIM_SQL(where, order)                                                                     \
	"UPDATE @extschema@.stockx_product p "                                                          \
	"   SET lease_pid = $2, lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => $5) " \
	"  FROM (SELECT sku FROM @extschema@.stockx_product "                                           \
	"         WHERE " where " AND " CLAIMABLE "         ORDER BY " order                            \
	" LIMIT $1 FOR UPDATE SKIP LOCKED) due "                                                        \
	" WHERE p.sku = due.sku "                                                                       \
	"RETURNING p.sku, p.status, p.stockx_product_id::text, p.attempts, "                            \
	"  ARRAY(SELECT v.variant_id::text FROM @extschema@.stockx_variant v WHERE v.sku = p.sku), "    \
	"  p.query_kind = 'gtin'"
#define CLAIM_TYPES                                                                                \
	{                                                                                              \
		INT4OID, INT4OID, INT4ARRAYOID, FLOAT8OID, FLOAT8OID                                       \
	}

/* not leased by a live worker ($3), not waiting for a retry */
#define CLAIMABLE                                                                                  \
	"(next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now()) "                            \
	"AND (lease_pid IS NULL OR lease_until < pg_catalog.now() OR lease_pid <> ALL ($3))"

/*
 * The $1 due refreshes that come first (by priority, then the longest
 * overdue), from the heads of two indexes: products on refresh_after ($4
 * seconds, 0 = never), in (priority, market_updated_at) order, and products
 * with their own refresh_every, sorted among themselves.
 */
#define REFRESH_CANDIDATES                                                                         \
	"SELECT c.sku FROM ("                                                                          \
	"  (SELECT sku, priority, market_updated_at + pg_catalog.make_interval(secs => $4) AS due_at " \
	"     FROM @extschema@.stockx_product "                                                        \
	"    WHERE status = 'enriched' AND refresh_every IS NULL AND $4 > 0 "                          \
	"      AND market_updated_at < pg_catalog.now() - pg_catalog.make_interval(secs => $4) "       \
	"      AND " CLAIMABLE " ORDER BY priority DESC, market_updated_at LIMIT $1) "                 \
	"  UNION ALL "                                                                                 \
	"  (SELECT sku, priority, market_updated_at + refresh_every "                                  \
	"     FROM @extschema@.stockx_product "                                                        \
	"    WHERE status = 'enriched' AND refresh_every IS NOT NULL "                                 \
	"      AND market_updated_at < pg_catalog.now() - refresh_every "                              \
	"      AND " CLAIMABLE                                                                         \
	" ORDER BY priority DESC, market_updated_at + refresh_every LIMIT $1)) c "                     \
	" ORDER BY c.priority DESC, c.due_at LIMIT $1"

/* the payload of a run_end event: what RETURNING gives of the run's row */
#define RUN_END_PAYLOAD                                                                            \
	"pg_catalog.jsonb_build_object('run_id', run_id, 'stop_reason', stop_reason, "                 \
	"  'started_at', started_at, 'finished_at', finished_at, 'workers', workers, "                 \
	"  'processed', processed, 'enriched', enriched, 'not_found', not_found, 'failed', failed, "   \
	"  'requests', requests, 'responses_429', responses_429, 'retries', retries)::text"

/* the columns an UPDATE sets when a row is settled, whatever the outcome */
#define SETTLED "lease_pid = NULL, lease_until = NULL, updated_at = pg_catalog.now()"

static const Statement statements[ST_COUNT] = {
	[ST_CLAIM_PENDING] = { CLAIM_SQL("status = 'pending'",
	                                 "priority DESC, next_attempt_at NULLS FIRST, created_at"),
	                       5, CLAIM_TYPES },
	[ST_CLAIM_REFRESH] = { CLAIM_SQL("sku = ANY (ARRAY(" REFRESH_CANDIDATES "))", "priority DESC"),
	                       5, CLAIM_TYPES },
	[ST_CLAIM_NOT_FOUND] = { CLAIM_SQL("status = 'not_found' AND updated_at < pg_catalog.now() - "
	                                   "interval '7 days'",
	                                   "updated_at"),
	                         5, CLAIM_TYPES },
	[ST_PRODUCT_ENRICHED] = { "UPDATE @extschema@.stockx_product SET status = 'enriched', stockx_product_id = $2::uuid, "
	                          "  url_key = $3, style_id = $4, title = $5, brand = $6, product_type = $7, gender = $8, "
	                          "  season = $9, colorway = $10, color = $11, retail_price = $12::numeric, "
	                          "  release_date = $13::date, product = $14::jsonb, currency_code = $15, "
	                          "  lowest_ask = (SELECT pg_catalog.min(a) FROM pg_catalog.unnest($16::numeric[]) a), "
	                          "  highest_bid = (SELECT pg_catalog.max(b) FROM pg_catalog.unnest($17::numeric[]) b), "
	                          "  market_updated_at = pg_catalog.now(), enriched_at = pg_catalog.now(), "
	                          "  attempts = 0, last_error = NULL, next_attempt_at = NULL, " SETTLED
	                          " WHERE sku = $1 AND lease_pid = $18 RETURNING status",
	                          18,
	                          { TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	                            TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	                            TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID } },
	[ST_PRODUCT_LOCK] = { "SELECT status FROM @extschema@.stockx_product "
	                      " WHERE sku = $1 AND lease_pid = $2 FOR UPDATE",
	                      2,
	                      { TEXTOID, INT4OID } },
	[ST_PRODUCT_REFRESHED] = { "UPDATE @extschema@.stockx_product p SET lowest_ask = s.lo, highest_bid = s.hi, "
	                           "  currency_code = $2, market_updated_at = pg_catalog.now(), "
	                           "  attempts = 0, last_error = NULL, next_attempt_at = NULL, " SETTLED
	                           "  FROM (SELECT pg_catalog.min(lowest_ask) AS lo, pg_catalog.max(highest_bid) AS hi "
	                           "          FROM @extschema@.stockx_variant WHERE sku = $1) s "
	                           " WHERE p.sku = $1 AND p.lease_pid = $3 RETURNING p.status",
	                           3,
	                           { TEXTOID, TEXTOID, INT4OID } },
	[ST_VARIANTS_UPSERT] = { "INSERT INTO @extschema@.stockx_variant AS v (variant_id, sku, variant_name, "
	                         "  variant_value, gtins, size_chart, lowest_ask, highest_bid, sell_faster, earn_more, "
	                         "  flex_lowest_ask, currency_code, market_updated_at) "
	                         "SELECT DISTINCT ON (u.id::uuid) u.id::uuid, $1, u.name, u.value, u.gtins::jsonb, "
	                         "       u.chart::jsonb, u.ask::numeric, u.bid::numeric, u.faster::numeric, "
	                         "       u.more::numeric, u.flex::numeric, "
	                         "       CASE WHEN u.priced THEN $13 END, CASE WHEN u.priced THEN pg_catalog.now() END "
	                         "  FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "
	                         "       pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
	                         "       pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[]), "
	                         "       pg_catalog.unnest($8::text[]), pg_catalog.unnest($9::text[]), "
	                         "       pg_catalog.unnest($10::text[]), pg_catalog.unnest($11::text[]), "
	                         "       pg_catalog.unnest($12::bool[])) "
	                         "       AS u(id, name, value, gtins, chart, ask, bid, faster, more, flex, priced) "
	                         " ORDER BY u.id::uuid "
	                         "ON CONFLICT (variant_id) DO UPDATE SET sku = EXCLUDED.sku, "
	                         "  variant_name = EXCLUDED.variant_name, variant_value = EXCLUDED.variant_value, "
	                         "  gtins = EXCLUDED.gtins, size_chart = EXCLUDED.size_chart, "
	                         "  lowest_ask = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.lowest_ask "
	                         "                    ELSE EXCLUDED.lowest_ask END, "
	                         "  highest_bid = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.highest_bid "
	                         "                     ELSE EXCLUDED.highest_bid END, "
	                         "  sell_faster = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.sell_faster "
	                         "                     ELSE EXCLUDED.sell_faster END, "
	                         "  earn_more = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.earn_more "
	                         "                   ELSE EXCLUDED.earn_more END, "
	                         "  flex_lowest_ask = CASE WHEN EXCLUDED.market_updated_at IS NULL THEN v.flex_lowest_ask "
	                         "                         ELSE EXCLUDED.flex_lowest_ask END, "
	                         "  currency_code = coalesce(EXCLUDED.currency_code, v.currency_code), "
	                         "  market_updated_at = coalesce(EXCLUDED.market_updated_at, "
	                         "                                          v.market_updated_at)",
	                         13,
	                         { TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	                           TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	                           TEXTARRAYOID, BOOLARRAYOID, TEXTOID } },
	[ST_VARIANTS_DELETE_STALE] = { "DELETE FROM @extschema@.stockx_variant "
	                               " WHERE sku = $1 AND variant_id <> ALL ($2::uuid[])",
	                               2,
	                               { TEXTOID, TEXTARRAYOID } },
	[ST_MARKET_UPDATE] = { "UPDATE @extschema@.stockx_variant v SET lowest_ask = u.ask::numeric, "
	                       "  highest_bid = u.bid::numeric, sell_faster = u.faster::numeric, "
	                       "  earn_more = u.more::numeric, flex_lowest_ask = u.flex::numeric, "
	                       "  currency_code = $8, market_updated_at = pg_catalog.now() "
	                       "  FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "
	                       "       pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
	                       "       pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[])) "
	                       "       AS u(id, ask, bid, faster, more, flex) "
	                       " WHERE v.variant_id = u.id::uuid AND v.sku = $1",
	                       8,
	                       { TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	                         TEXTARRAYOID, TEXTARRAYOID, TEXTOID } },
	[ST_NOT_FOUND] = { "UPDATE @extschema@.stockx_product SET status = 'not_found', attempts = 0, "
	                   "  next_attempt_at = NULL, last_error = NULL, " SETTLED
	                   " WHERE sku = $1 AND lease_pid = $2 RETURNING status",
	                   2,
	                   { TEXTOID, INT4OID } },
	[ST_RETRY_LATER] = { "UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
	                     "  status = CASE WHEN status = 'pending' AND attempts + 1 >= $3 "
	                     "                THEN 'failed' ELSE status END, "
	                     "  next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => $4), " SETTLED
	                     " WHERE sku = $1 AND lease_pid = $5 RETURNING status",
	                     5,
	                     { TEXTOID, TEXTOID, INT4OID, FLOAT8OID, INT4OID } },
	[ST_FAILED] = { "UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
	                "  next_attempt_at = CASE WHEN status = 'pending' THEN NULL "
	                "                         ELSE pg_catalog.now() + interval '1 day' END, "
	                "  status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, " SETTLED
	                " WHERE sku = $1 AND lease_pid = $3 RETURNING status",
	                3,
	                { TEXTOID, TEXTOID, INT4OID } },
	[ST_RELEASE] = { "UPDATE @extschema@.stockx_product SET lease_pid = NULL, lease_until = NULL "
	                 " WHERE sku = ANY ($1) AND lease_pid = $2",
	                 2,
	                 { TEXTARRAYOID, INT4OID } },
	[ST_RENEW] = { "UPDATE @extschema@.stockx_product "
	               "   SET lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => $3) "
	               " WHERE sku = ANY ($1) AND lease_pid = $2 RETURNING sku",
	               3,
	               { TEXTARRAYOID, INT4OID, FLOAT8OID } },
	[ST_RUN_COUNTERS] = { "INSERT INTO @extschema@.stockx_run AS r (run_id, processed, enriched, not_found, failed, "
	                      "  requests, responses_429, retries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	                      "ON CONFLICT (run_id) DO UPDATE SET processed = r.processed + EXCLUDED.processed, "
	                      "  enriched = r.enriched + EXCLUDED.enriched, "
	                      "  not_found = r.not_found + EXCLUDED.not_found, failed = r.failed + EXCLUDED.failed, "
	                      "  requests = r.requests + EXCLUDED.requests, "
	                      "  responses_429 = r.responses_429 + EXCLUDED.responses_429, "
	                      "  retries = r.retries + EXCLUDED.retries RETURNING r.processed",
	                      8,
	                      { INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	                        INT8OID } },
	[ST_RUN_ENSURE] = { "INSERT INTO @extschema@.stockx_run (run_id, workers, max_products, "
	                    "  started_at) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING",
	                    4,
	                    { INT8OID, INT4OID, INT8OID, TIMESTAMPTZOID } },
	[ST_RUN_ORPHANS] = { "UPDATE @extschema@.stockx_run SET finished_at = pg_catalog.now(), "
	                     "  stop_reason = 'error' "
	                     " WHERE finished_at IS NULL AND run_id <> ALL ($1) RETURNING " RUN_END_PAYLOAD,
	                     1,
	                     { INT8ARRAYOID } },
	[ST_RUN_FINISH] = { "UPDATE @extschema@.stockx_run SET finished_at = pg_catalog.now(), "
	                    "  stop_reason = $2 WHERE run_id = $1 AND finished_at IS NULL "
	                    "RETURNING " RUN_END_PAYLOAD,
	                    2,
	                    { INT8OID, TEXTOID } },
	[ST_RUN_REASON] = { "SELECT coalesce(stop_reason, 'error') "
	                    "  FROM @extschema@.stockx_run WHERE run_id = $1",
	                    1,
	                    { INT8OID } },
	[ST_NEXT_RUN_ID] = { "SELECT pg_catalog.nextval($1)", 1, { REGCLASSOID } },
	/* today's count, and the window and margin of the latest row */
	[ST_QUOTA_LOAD] = { "SELECT (SELECT t.requests FROM @extschema@.stockx_quota t "
	                    "         WHERE t.day = DATE '1970-01-01' + $1), "
	                    "       l.window_latest, l.window_counts, l.pacing_margin_us "
	                    "  FROM (SELECT window_latest, window_counts, pacing_margin_us "
	                    "          FROM @extschema@.stockx_quota ORDER BY day DESC LIMIT 1) l",
	                    1,
	                    { INT4OID } },
	[ST_ANYTHING_DUE] = { "SELECT EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	                      "                WHERE status = 'pending' "
	                      "                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now())) "
	                      "    OR EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	                      "                WHERE status = 'enriched' AND market_updated_at < pg_catalog.now() - "
	                      "                      coalesce(refresh_every, CASE WHEN $1 > 0 "
	                      "                               THEN pg_catalog.make_interval(secs => $1) END) "
	                      "                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now())) "
	                      "    OR EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	                      "                WHERE status = 'not_found' "
	                      "                  AND updated_at < pg_catalog.now() - interval '7 days' "
	                      "                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now()))",
	                      1,
	                      { FLOAT8OID } },
	[ST_EVENT_PRUNE] = { "DELETE FROM @extschema@.stockx_event "
	                     " WHERE created_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
	                     1,
	                     { FLOAT8OID } },
	[ST_GTIN_DELETE] = { "DELETE FROM @extschema@.stockx_gtin g USING @extschema@.stockx_variant v "
	                     " WHERE v.sku = $1 AND g.variant_id = v.variant_id",
	                     1,
	                     { TEXTOID } },
	[ST_GTIN_INSERT] = { "INSERT INTO @extschema@.stockx_gtin (gtin, gtin_type, variant_id, sku) "
	                     "SELECT e.gtin, e.gtin_type, v.variant_id, v.sku "
	                     "  FROM @extschema@.stockx_variant v "
	                     " CROSS JOIN LATERAL @extschema@.stockx_gtin_entries(v.gtins) e "
	                     " WHERE v.sku = $1 ORDER BY e.gtin, v.variant_id "
	                     "ON CONFLICT DO NOTHING",
	                     1,
	                     { TEXTOID } },
	[ST_RUN_PRUNE] = { "DELETE FROM @extschema@.stockx_run "
	                   " WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
	                   1,
	                   { FLOAT8OID } },
	/*
	 * The market data of one currency: stockx_market holds the current
	 * amounts, and a variant gets a history row only when one of its
	 * amounts differs from what stockx_market held (every sub-statement
	 * sees the table as it was before the upsert).  Returns the payload of
	 * a price_move event for each variant whose ask or bid moved by more
	 * than $9 percent; the caller queues them (events.c).
	 */
	[ST_MARKET_RECORD] = { "WITH u AS ( "
	                       "  SELECT DISTINCT ON (u.id::uuid) u.id::uuid AS variant_id, u.ask::numeric AS ask, "
	                       "         u.bid::numeric AS bid, u.faster::numeric AS faster, u.more::numeric AS more, "
	                       "         u.flex::numeric AS flex, u.beat::numeric AS beat, u.flexm::jsonb AS flexm, "
	                       "         u.directm::jsonb AS directm "
	                       "    FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), "
	                       "         pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
	                       "         pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[]), "
	                       "         pg_catalog.unnest($10::text[]), pg_catalog.unnest($11::text[]), "
	                       "         pg_catalog.unnest($12::text[])) "
	                       "         AS u(id, ask, bid, faster, more, flex, beat, flexm, directm) "
	                       "   WHERE u.id::uuid IN (SELECT variant_id FROM @extschema@.stockx_variant WHERE sku = $1) "
	                       "   ORDER BY u.id::uuid), "
	                       "old AS ( "
	                       "  SELECT m.variant_id, m.lowest_ask, m.highest_bid, m.sell_faster, m.earn_more "
	                       "    FROM @extschema@.stockx_market m JOIN u ON u.variant_id = m.variant_id "
	                       "   WHERE m.currency_code = $8), "
	                       "up AS ( "
	                       "  INSERT INTO @extschema@.stockx_market AS m (variant_id, currency_code, lowest_ask, "
	                       "         highest_bid, sell_faster, earn_more, flex_lowest_ask, beat_us, flex, direct, "
	                       "         market_updated_at) "
	                       "  SELECT variant_id, $8, ask, bid, faster, more, flex, beat, flexm, directm, "
	                       "         pg_catalog.now() FROM u "
	                       "  ON CONFLICT (variant_id, currency_code) DO UPDATE SET "
	                       "    lowest_ask = EXCLUDED.lowest_ask, highest_bid = EXCLUDED.highest_bid, "
	                       "    sell_faster = EXCLUDED.sell_faster, earn_more = EXCLUDED.earn_more, "
	                       "    flex_lowest_ask = EXCLUDED.flex_lowest_ask, beat_us = EXCLUDED.beat_us, "
	                       "    flex = EXCLUDED.flex, direct = EXCLUDED.direct, "
	                       "    market_updated_at = EXCLUDED.market_updated_at "
	                       "  RETURNING m.variant_id, m.lowest_ask, m.highest_bid, m.sell_faster, m.earn_more), "
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
	                       12,
	                       { TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	                         TEXTARRAYOID, TEXTARRAYOID, TEXTOID, FLOAT8OID, TEXTARRAYOID,
	                         TEXTARRAYOID, TEXTARRAYOID } },
	[ST_HISTORY_MAINTAIN] = { "SELECT pg_catalog.count(*) FROM @extschema@.stockx_price_history_maintain()",
	                          0,
	                          { InvalidOid } },
	/* the row that holds a product already (a barcode's joins it) */
	[ST_PRODUCT_OWNER] = { "SELECT sku FROM @extschema@.stockx_product "
	                       " WHERE stockx_product_id = $1::uuid AND sku <> $2 AND status = 'enriched' "
	                       " ORDER BY enriched_at, sku LIMIT 1",
	                       2,
	                       { TEXTOID, TEXTOID } },
	[ST_MERGED] = { "UPDATE @extschema@.stockx_product SET status = 'merged', merged_into = $2, "
	                "  stockx_product_id = $3::uuid, attempts = 0, last_error = NULL, "
	                "  next_attempt_at = NULL, " SETTLED
	                " WHERE sku = $1 AND lease_pid = $4 RETURNING status",
	                4,
	                { TEXTOID, TEXTOID, TEXTOID, INT4OID } },
	/*
	 * The day's count only grows; of two windows the newer wins, and two of
	 * the same latest bucket merge bucket by bucket (two workers' snapshots).
	 */
	[ST_QUOTA_SAVE] = { "INSERT INTO @extschema@.stockx_quota AS q (day, requests, window_latest, "
	                    "  window_counts, pacing_margin_us) "
	                    "VALUES (DATE '1970-01-01' + $1, $2, $3, $4, $5) "
	                    "ON CONFLICT (day) DO UPDATE SET requests = greatest(q.requests, EXCLUDED.requests), "
	                    "  window_counts = CASE "
	                    "    WHEN EXCLUDED.window_latest IS NULL THEN q.window_counts "
	                    "    WHEN q.window_latest IS NULL OR EXCLUDED.window_latest > q.window_latest "
	                    "      THEN EXCLUDED.window_counts "
	                    "    WHEN EXCLUDED.window_latest < q.window_latest THEN q.window_counts "
	                    "    ELSE ARRAY(SELECT greatest(u.a, u.b) "
	                    "                 FROM ROWS FROM (pg_catalog.unnest(q.window_counts), "
	                    "                      pg_catalog.unnest(EXCLUDED.window_counts)) "
	                    "                      WITH ORDINALITY AS u(a, b, o) ORDER BY u.o) END, "
	                    "  window_latest = greatest(q.window_latest, EXCLUDED.window_latest), "
	                    "  pacing_margin_us = EXCLUDED.pacing_margin_us",
	                    5,
	                    { INT4OID, INT8OID, INT8OID, INT4ARRAYOID, INT8OID } },
};

/* Per process: the extension we prepared for, its schema, and the kept plans. */
static Oid extension_oid = InvalidOid;
static Oid extension_owner = InvalidOid;
static Oid schema_oid = InvalidOid;
static char *schema_quoted = NULL;
static SPIPlanPtr plans[ST_COUNT];
/* UTC month (year * 12 + month - 1) whose history partitions we made sure of */
static int history_month = -1;
/* after a failed upkeep, when to try again */
static TimestampTz history_retry_at = 0;

/* Parameters of one execution. */
typedef struct Params
{
	int n;
	Datum values[SX_MAX_PARAMS];
	char nulls[SX_MAX_PARAMS];
} Params;

/* The SQL text with every @extschema@ replaced by the extension's schema. */
static char *
Q(const char *sql)
{
	StringInfoData buf;
	const char *p = sql;
	const char *hit;

	initStringInfo(&buf);
	while ((hit = strstr(p, "@extschema@")) != NULL)
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, schema_quoted);
		p = hit + strlen("@extschema@");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/*
 * The schema and the installed version of an extension (what
 * get_extension_schema() does from 16 on, and the version with it).
 */
static Oid
extension_schema(Oid ext, char **version, Oid *owner)
{
	Relation rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tup;
	Oid nsp = InvalidOid;

	*version = NULL;
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool isnull;
		Datum v = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		if (!isnull)
			*version = TextDatumGetCString(v);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/*
 * Find the extension (one index lookup per transaction); when it is not
 * the one our plans were prepared for, forget them.  The library speaks
 * the schema of its own version only: a database still on an older one
 * must be updated first.
 */
void
stockx_store_init(void)
{
	Oid ext = get_extension_oid("stockx_enrich", true);
	char *version;
	Oid nsp;
	Oid owner = InvalidOid;
	int i;

	if (!OidIsValid(ext))
		ereport(
		    ERROR,
		    (errcode(ERRCODE_UNDEFINED_OBJECT),
		     errmsg("extension \"stockx_enrich\" is not installed in this database"),
		     errhint(
		         "Run CREATE EXTENSION stockx_enrich in the database that holds the catalogue.")));
	if (ext == extension_oid)
		return;
	nsp = extension_schema(ext, &version, &owner);
	if (version == NULL || strcmp(version, STOCKX_ENRICH_VERSION) != 0)
		ereport(
		    ERROR,
		    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		     errmsg(
		         "extension \"stockx_enrich\" is installed at version %s in this database, but the library is version %s",
		         version ? version : "(none)", STOCKX_ENRICH_VERSION),
		     errhint("Run ALTER EXTENSION stockx_enrich UPDATE in this database.")));
	for (i = 0; i < ST_COUNT; i++)
	{
		if (plans[i] != NULL)
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	if (schema_quoted != NULL)
		pfree(schema_quoted);
	schema_oid = nsp;
	schema_quoted =
	    MemoryContextStrdup(TopMemoryContext, quote_identifier(get_namespace_name(schema_oid)));
	extension_oid = ext;
	extension_owner = owner;
	history_month = -1;
	history_retry_at = 0;
}

/* The extension's schema, quoted for SQL (after stockx_store_init()). */
const char *
stockx_store_schema(void)
{
	return schema_quoted;
}

/* The OID of the extension's relation relname, InvalidOid when there is none. */
Oid
stockx_store_relid(const char *relname)
{
	return get_relname_relid(relname, schema_oid);
}

static SPIPlanPtr
plan(StatementId id)
{
	if (plans[id] == NULL)
	{
		const Statement *st = &statements[id];
		char *sql = Q(st->sql);
		SPIPlanPtr p = SPI_prepare(sql, st->nargs, (Oid *) st->types);

		if (p == NULL)
			elog(ERROR, "stockx_enrich: SPI_prepare failed: %s",
			     SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plans[id] = p;
		pfree(sql);
	}
	return plans[id];
}

/* Execute a kept plan; errors unless SPI answers `expected`. */
static void
run(StatementId id, Params *p, int expected)
{
	int rc;

	Assert(p->n == statements[id].nargs);
	rc = SPI_execute_plan(plan(id), p->values, p->nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "stockx_enrich: statement %d returned %s", (int) id,
		     SPI_result_code_string(rc));
}

/* ---------------------------------------------------------------- parameters */

static void
param(Params *p, Datum value, bool isnull)
{
	Assert(p->n < SX_MAX_PARAMS);
	p->values[p->n] = value;
	p->nulls[p->n] = isnull ? 'n' : ' ';
	p->n++;
}

/* Text in the database encoding (SKUs, our own words). */
static void
param_text(Params *p, const char *s)
{
	param(p, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL);
}

/* Text from StockX (UTF-8), converted to the database encoding. */
static Datum
api_text_datum(const char *s)
{
	return PointerGetDatum(cstring_to_text(pg_any_to_server(s, strlen(s), PG_UTF8)));
}

static void
param_api_text(Params *p, const char *s)
{
	param(p, s ? api_text_datum(s) : (Datum) 0, s == NULL);
}

static void
param_int4(Params *p, int32 v)
{
	param(p, Int32GetDatum(v), false);
}

static void
param_int8(Params *p, int64 v)
{
	param(p, Int64GetDatum(v), false);
}

static void
param_float8(Params *p, double v)
{
	param(p, Float8GetDatum(v), false);
}

/* A one-dimensional array of n datums (NULL where nulls[i]). */
static Datum
array_datum(Datum *elems, bool *nulls, int n, Oid elem_type)
{
	int16 typlen;
	bool typbyval;
	char typalign;
	int dims[1] = { n };
	int lbs[1] = { 1 };

	get_typlenbyvalalign(elem_type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(
	    construct_md_array(elems, nulls, 1, dims, lbs, elem_type, typlen, typbyval, typalign));
}

/* A text[] of strings from StockX, with NULL for NULL entries. */
static void
param_api_array(Params *p, char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	bool *nulls = palloc(sizeof(bool) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = strs[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : api_text_datum(strs[i]);
	}
	param(p, array_datum(elems, nulls, n, TEXTOID), false);
}

static void
param_bool_array(Params *p, bool *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		elems[i] = BoolGetDatum(vals[i]);
	param(p, array_datum(elems, NULL, n, BOOLOID), false);
}

/* How many rows a statement touched or returned. */
static uint64
rows(void)
{
	return SPI_processed;
}

static const char *
static_status(const char *status)
{
	static const char *const known[] = { "pending", "enriched", "not_found", "failed", "merged" };
	int i;

	for (i = 0; i < (int) lengthof(known); i++)
		if (status != NULL && strcmp(status, known[i]) == 0)
			return known[i];
	return NULL;
}

/* The status column of the one row an UPDATE ... RETURNING status touched. */
static const char *
returned_status(void)
{
	if (rows() != 1)
		return NULL;
	return static_status(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/* ---------------------------------------------------------------- claims */

/*
 * The lock that serializes claims: a lock on the extension's own catalog
 * entry, with a sub-id no SQL command uses.  Advisory-lock keys are public
 * (pg_advisory_lock needs no privilege), so a role with no grants could
 * hold one for ever; nothing but this code can take this lock.
 */
#define SX_CLAIM_LOCK_SUBID 1

/*
 * Serialize the claims of a database until the end of the transaction.  A
 * claim takes over leases whose pid is no live worker, so the caller must
 * read the live workers after this lock: every lease a sibling committed
 * before then belongs to a worker that had attached before it claimed, and
 * no claim can commit in between.  (Reading them before, a sibling that
 * attached and claimed meanwhile would look dead, and its fresh rows would
 * be taken twice.)
 */
void
stockx_store_lock_claims(void)
{
	LockDatabaseObject(ExtensionRelationId, extension_oid, SX_CLAIM_LOCK_SUBID, ExclusiveLock);
}

/*
 * Lease up to limit due rows: never-enriched first (by priority), then
 * enriched rows whose market data is older than their refresh_every (or
 * refresh_after), by priority and then the longest overdue, then
 * not_found rows older than a week.  A
 * lease is free when it expired or its pid is no live worker; live_pids
 * must have been read after stockx_store_lock_claims().
 */
int
stockx_store_claim(const StockxStoreConfig *config, int limit, const int32 *live_pids, int npids,
                   StockxClaim **claims, MemoryContext cxt)
{
	static const StatementId kinds[] = { ST_CLAIM_PENDING, ST_CLAIM_REFRESH, ST_CLAIM_NOT_FOUND };
	StockxClaim *out = MemoryContextAllocZero(cxt, sizeof(StockxClaim) * Max(limit, 1));
	Datum *pid_datums = palloc(sizeof(Datum) * (npids + 1));
	int got = 0;
	int k, i;

	for (i = 0; i < npids; i++)
		pid_datums[i] = Int32GetDatum(live_pids[i]);

	for (k = 0; k < (int) lengthof(kinds) && got < limit; k++)
	{
		Params p = { 0 };
		uint64 row;

		param_int4(&p, limit - got);
		param_int4(&p, MyProcPid);
		param(&p, array_datum(pid_datums, NULL, npids, INT4OID), false);
		param_float8(&p, (double) config->refresh_after_s);
		param_float8(&p, (double) config->lease_s);
		run(kinds[k], &p, SPI_OK_UPDATE_RETURNING);

		for (row = 0; row < rows() && got < limit; row++)
		{
			HeapTuple tup = SPI_tuptable->vals[row];
			TupleDesc desc = SPI_tuptable->tupdesc;
			StockxClaim *c = &out[got++];
			bool isnull;
			bool known_isnull;
			Datum known = SPI_getbinval(tup, desc, 5, &known_isnull);
			const char *sku = SPI_getvalue(tup, desc, 1);

			c->sku = MemoryContextStrdup(cxt, sku);
			c->sku_utf8 = MemoryContextStrdup(cxt, pg_server_to_any(sku, strlen(sku), PG_UTF8));
			c->status = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
			if (SPI_getvalue(tup, desc, 3) != NULL)
				c->product_id = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 3));
			c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			c->by_gtin = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
			if (!known_isnull)
			{
				Datum *ids;
				bool *id_nulls;
				int nids;
				int j;

				deconstruct_array(DatumGetArrayTypeP(known), TEXTOID, -1, false, TYPALIGN_INT, &ids,
				                  &id_nulls, &nids);
				c->known_variants = MemoryContextAlloc(cxt, sizeof(char *) * (nids + 1));
				for (j = 0; j < nids; j++)
					if (!id_nulls[j])
						c->known_variants[c->nknown++] =
						    MemoryContextStrdup(cxt, TextDatumGetCString(ids[j]));
			}
		}
	}
	*claims = out;
	return got;
}

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
	param_text(p, sku);
	for (c = 0; c < 10; c++)
		param_api_array(p, cols[c], n);
	param_bool_array(p, priced, n);
	param_text(p, currency);
}

/*
 * Write the variants of a product, and their barcodes into stockx_gtin.
 * A row that had no variants when it was claimed (a new product: we hold
 * its lease) has nothing to replace: two statements fewer.
 */
static void
write_variants(const char *sku, StockxResult *r, const char *currency, bool had_variants)
{
	Params p = { 0 };
	Params d = { 0 };
	Params g = { 0 };
	char **ids = palloc0(sizeof(char *) * (r->nvariants + 1));
	int i;

	param_text(&g, sku);
	variant_arrays(sku, r, currency, &p);
	run(ST_VARIANTS_UPSERT, &p, SPI_OK_INSERT);
	if (had_variants)
	{
		/* a full variants list replaces the old one; ids compare as uuid */
		for (i = 0; i < r->nvariants; i++)
			ids[i] = r->variants[i].variant_id;
		param_text(&d, sku);
		param_api_array(&d, ids, r->nvariants);
		run(ST_VARIANTS_DELETE_STALE, &d, SPI_OK_DELETE);
		run(ST_GTIN_DELETE, &g, SPI_OK_DELETE);
	}
	run(ST_GTIN_INSERT, &g, SPI_OK_INSERT);
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
	param_text(p, sku);
	for (k = 0; k < 6; k++)
		param_api_array(p, cols[k], n);
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
	param_api_array(p, beat, n);
	param_api_array(p, flex, n);
	param_api_array(p, direct, n);
}

/*
 * Every currency's amounts into stockx_market, and what changed into the
 * history; with update_variants also the first currency's into
 * stockx_variant (a refresh without a variants answer), from the same
 * arrays.
 */
static void
record_market(const StockxStoreConfig *config, const char *sku, StockxResult *r,
              bool update_variants, StockxEventQueue *events)
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

			param_text(&v, config->currencies.code[0]);
			run(ST_MARKET_UPDATE, &v, SPI_OK_UPDATE);
		}
		param_text(&p, config->currencies.code[c]);
		param_float8(&p, config->notify_change_pct);
		market_detail_arrays(r, c, &p);
		run(ST_MARKET_RECORD, &p, SPI_OK_SELECT);
		for (row = 0; row < rows(); row++)
			stockx_events_add(events, "price_move",
			                  SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
	}
}

/*
 * The SKU of the row that holds StockX product product_id already, other
 * than sku (palloc'd in the caller's context), or NULL.
 */
char *
stockx_store_product_owner(const char *product_id, const char *sku)
{
	Params p = { 0 };
	char *owner;

	param_text(&p, product_id);
	param_text(&p, sku);
	run(ST_PRODUCT_OWNER, &p, SPI_OK_SELECT);
	if (rows() != 1)
		return NULL;
	owner = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return owner ? MemoryContextStrdup(TopTransactionContext, owner) : NULL;
}

/* A barcode row whose product another row holds: it joins that row. */
static const char *
write_merged(const char *sku, const char *owner, const char *product_id)
{
	Params p = { 0 };

	param_text(&p, sku);
	param_text(&p, owner);
	param_text(&p, product_id);
	param_int4(&p, MyProcPid);
	run(ST_MERGED, &p, SPI_OK_UPDATE_RETURNING);
	return returned_status();
}

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
	param_text(&p, sku);
	param_api_text(&p, pr->product_id);
	param_api_text(&p, pr->url_key);
	param_api_text(&p, pr->style_id);
	param_api_text(&p, pr->title);
	param_api_text(&p, pr->brand);
	param_api_text(&p, pr->product_type);
	param_api_text(&p, pr->gender);
	param_api_text(&p, pr->season);
	param_api_text(&p, pr->colorway);
	param_api_text(&p, pr->color);
	param_api_text(&p, pr->retail_price);
	param_api_text(&p, pr->release_date);
	param_api_text(&p, pr->json);
	param_text(&p, config->currencies.code[0]);
	param_api_array(&p, asks, r->nvariants);
	param_api_array(&p, bids, r->nvariants);
	param_int4(&p, MyProcPid);
	run(ST_PRODUCT_ENRICHED, &p, SPI_OK_UPDATE_RETURNING);
	status = returned_status();
	if (status == NULL)
		return NULL; /* not ours any more */
	write_variants(sku, r, config->currencies.code[0], claim->nknown > 0);
	record_market(config, sku, r, false, events);
	return status;
}

/* Lock the row if it is still ours; false when the lease was lost. */
static bool
lock_leased(const char *sku)
{
	Params p = { 0 };

	param_text(&p, sku);
	param_int4(&p, MyProcPid);
	run(ST_PRODUCT_LOCK, &p, SPI_OK_SELECT);
	return rows() == 1;
}

static const char *
write_refreshed(const StockxStoreConfig *config, const char *sku, StockxResult *r,
                StockxEventQueue *events)
{
	Params p = { 0 };

	if (!lock_leased(sku))
		return NULL;
	if (r->variants != NULL)
		write_variants(sku, r, config->currencies.code[0], true);
	record_market(config, sku, r, r->variants == NULL, events);
	param_text(&p, sku);
	param_text(&p, config->currencies.code[0]);
	param_int4(&p, MyProcPid);
	run(ST_PRODUCT_REFRESHED, &p, SPI_OK_UPDATE_RETURNING);
	return returned_status();
}

static const char *
write_failed(const char *sku, const char *error)
{
	Params p = { 0 };

	param_text(&p, sku);
	param_text(&p, error);
	param_int4(&p, MyProcPid);
	run(ST_FAILED, &p, SPI_OK_UPDATE_RETURNING);
	return returned_status();
}

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
			param_text(&p, claim->sku);
			param_int4(&p, MyProcPid);
			run(ST_NOT_FOUND, &p, SPI_OK_UPDATE_RETURNING);
			return returned_status();
		case SX_OUTCOME_RETRY_LATER:
			param_text(&p, claim->sku);
			param_text(&p, r->error);
			param_int4(&p, config->max_attempts);
			param_float8(&p, (double) sx_backoff_us(config->backoff_base_ms, config->backoff_max_ms,
			                                        claim->attempts, 0.5 + stockx_random() / 2) /
			                     1e6);
			param_int4(&p, MyProcPid);
			run(ST_RETRY_LATER, &p, SPI_OK_UPDATE_RETURNING);
			return returned_status();
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
 * Write one settled row in a subtransaction.  A data error of the row
 * marks it failed with the reason; any other error propagates.  The
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

/* ---------------------------------------------------------------- leases */

static Datum
sku_array(StockxClaim **claims, int n)
{
	Datum *skus = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		skus[i] = CStringGetTextDatum(claims[i]->sku);
	return array_datum(skus, NULL, n, TEXTOID);
}

/* Extend the leases of claims; held[i] says whether claims[i] is still ours. */
int
stockx_store_renew_leases(const StockxStoreConfig *config, StockxClaim **claims, int n, bool *held)
{
	Params p = { 0 };
	int kept = 0;
	int i;
	uint64 row;

	for (i = 0; i < n; i++)
		held[i] = false;
	if (n == 0)
		return 0;
	param(&p, sku_array(claims, n), false);
	param_int4(&p, MyProcPid);
	param_float8(&p, (double) config->lease_s);
	run(ST_RENEW, &p, SPI_OK_UPDATE_RETURNING);
	for (row = 0; row < rows(); row++)
	{
		char *sku = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1);

		for (i = 0; i < n; i++)
			if (!held[i] && strcmp(claims[i]->sku, sku) == 0)
			{
				held[i] = true;
				kept++;
				break;
			}
	}
	return kept;
}

/* Give back the leases of rows this worker did not settle. */
void
stockx_store_release(StockxClaim **claims, int n)
{
	Params p = { 0 };

	if (n == 0)
		return;
	param(&p, sku_array(claims, n), false);
	param_int4(&p, MyProcPid);
	run(ST_RELEASE, &p, SPI_OK_UPDATE);
}

/* ---------------------------------------------------------------- runs */

int64
stockx_store_add_run_counters(int64 run_id, const StockxCounters *d)
{
	Params p = { 0 };
	bool isnull;

	param_int8(&p, run_id);
	param_int8(&p, d->processed);
	param_int8(&p, d->enriched);
	param_int8(&p, d->not_found);
	param_int8(&p, d->failed);
	param_int8(&p, d->requests);
	param_int8(&p, d->responses_429);
	param_int8(&p, d->retries);
	run(ST_RUN_COUNTERS, &p, SPI_OK_INSERT_RETURNING);
	if (rows() != 1)
		return -1; /* a trigger kept the row from being written */
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
stockx_store_ensure_run(int64 run_id, int workers, int64 max_products, TimestampTz started_at)
{
	Params p = { 0 };

	param_int8(&p, run_id);
	param_int4(&p, workers);
	param(&p, Int64GetDatum(max_products), max_products <= 0);
	param(&p, TimestampTzGetDatum(started_at), false);
	run(ST_RUN_ENSURE, &p, SPI_OK_INSERT);
}

/* Queue a run_end event for each run an UPDATE ... RETURNING RUN_END_PAYLOAD closed. */
static void
queue_run_ends(StockxEventQueue *events)
{
	uint64 row;

	for (row = 0; row < rows(); row++)
		stockx_events_add(events, "run_end",
		                  SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
}

/* Runs left unfinished by a crash or a restart are closed as errors. */
void
stockx_store_close_orphan_runs(const int64 *active, int nactive, StockxEventQueue *events)
{
	Params p = { 0 };
	Datum *ids = palloc(sizeof(Datum) * (nactive + 1));
	int i;

	for (i = 0; i < nactive; i++)
		ids[i] = Int64GetDatum(active[i]);
	param(&p, array_datum(ids, NULL, nactive, INT8OID), false);
	run(ST_RUN_ORPHANS, &p, SPI_OK_UPDATE_RETURNING);
	queue_run_ends(events);
}

/* Close a run with its stop reason; false when it was closed already. */
bool
stockx_store_finish_run(int64 run_id, StockxStopReason reason, StockxEventQueue *events)
{
	Params p = { 0 };

	param_int8(&p, run_id);
	param_text(&p, stockx_stop_reason_name(reason));
	run(ST_RUN_FINISH, &p, SPI_OK_UPDATE_RETURNING);
	queue_run_ends(events);
	return rows() == 1;
}

int64
stockx_store_next_run_id(void)
{
	Params p = { 0 };
	Oid seq = get_relname_relid("stockx_run_run_id_seq", schema_oid);
	bool isnull;

	if (!OidIsValid(seq))
		ereport(ERROR,
		        (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("sequence of stockx_run is missing"),
		         errhint("Reinstall the extension stockx_enrich.")));
	param(&p, ObjectIdGetDatum(seq), false);
	run(ST_NEXT_RUN_ID, &p, SPI_OK_SELECT);
	if (rows() != 1)
		elog(ERROR, "stockx_enrich: nextval returned no row");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The stop_reason of a run (palloc'd in the caller's context), or NULL. */
char *
stockx_store_run_reason(int64 run_id)
{
	Params p = { 0 };
	char *reason;

	param_int8(&p, run_id);
	run(ST_RUN_REASON, &p, SPI_OK_SELECT);
	if (rows() != 1)
		return NULL;
	reason = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return reason ? MemoryContextStrdup(TopTransactionContext, reason) : NULL;
}

/* Is any row due now (what a claim could take, leases aside)? */
bool
stockx_store_anything_due(const StockxStoreConfig *config)
{
	Params p = { 0 };
	bool isnull;

	param_float8(&p, (double) config->refresh_after_s);
	run(ST_ANYTHING_DUE, &p, SPI_OK_SELECT);
	return rows() == 1 &&
	       DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Run a DELETE of rows older than retention_s seconds (0 keeps them all). */
static void
prune(StatementId id, int retention_s)
{
	Params p = { 0 };

	if (retention_s <= 0)
		return;
	param_float8(&p, (double) retention_s);
	run(id, &p, SPI_OK_DELETE);
}

/* Delete the rows of runs that finished longer than retention_s ago (0 = keep). */
void
stockx_store_prune_runs(int retention_s)
{
	prune(ST_RUN_PRUNE, retention_s);
}

/*
 * Delete events older than retention_s (0 keeps them); not now when
 * stockx_event cannot be locked at once: no event work ever waits.
 */
void
stockx_store_prune_events(int retention_s)
{
	Oid rel = stockx_store_relid("stockx_event");

	if (retention_s <= 0 || (OidIsValid(rel) && !ConditionalLockRelationOid(rel, RowExclusiveLock)))
		return;
	prune(ST_EVENT_PRUNE, retention_s);
}

/* ---------------------------------------------------------------- price history */

static int
utc_month(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return -1;
	return tm.tm_year * 12 + tm.tm_mon - 1;
}

/*
 * Whether the month changed since the history partitions were last looked
 * after (and a failed upkeep is not waiting for its next try).
 */
bool
stockx_store_history_due(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now < history_retry_at)
		return false;
	return history_month < 0 || utc_month(now) != history_month;
}

/*
 * Create the monthly partitions of stockx_price_history ahead and drop those
 * older than history_retention: stockx_price_history_maintain() with its
 * defaults, run as the extension's owner whoever started the run (the
 * worker changes its user id for the call, as a SECURITY DEFINER function
 * would; the function pins the settings its DDL depends on).  No SQL entry
 * point lets another role run it, or hold its locks.  After a failure the
 * next try waits a minute.
 */
void
stockx_store_maintain_history(void)
{
	Params p = { 0 };
	Oid save_userid;
	int save_sec_context;

	history_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(extension_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
	                                            SECURITY_RESTRICTED_OPERATION);
	/* an error leaves through the transaction's abort, which restores both */
	run(ST_HISTORY_MAINTAIN, &p, SPI_OK_SELECT);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	history_month = utc_month(GetCurrentTimestamp());
	history_retry_at = 0;
}

/* ---------------------------------------------------------------- quota */

/*
 * What was persisted of the limiter: the count of UTC day `day`, and the
 * window and margin of the latest row (after midnight today's row may not
 * exist yet: the window that reaches back into yesterday is in
 * yesterday's).  Nothing persisted gives zeros and no window.
 */
void
stockx_store_load_quota(int64 day, SxPersisted *out)
{
	Params p = { 0 };
	HeapTuple tup;
	TupleDesc desc;
	bool isnull;
	Datum d;

	memset(out, 0, sizeof(*out));
	out->day = day;
	out->window_latest = -1;
	param_int4(&p, (int32) day);
	run(ST_QUOTA_LOAD, &p, SPI_OK_SELECT);
	if (rows() != 1)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	out->requests = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	out->margin_us = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	if (!isnull)
	{
		Datum counts = SPI_getbinval(tup, desc, 3, &isnull);
		Datum *elems;
		bool *nulls;
		int n, i;

		if (isnull)
			return;
		deconstruct_array(DatumGetArrayTypeP(counts), INT4OID, 4, true, TYPALIGN_INT, &elems,
		                  &nulls, &n);
		if (n != SX_WINDOW_BUCKETS)
			return; /* another version's layout: start a new record */
		out->window_latest = DatumGetInt64(d);
		for (i = 0; i < n; i++)
			out->window[i] = nulls[i] ? 0 : DatumGetInt32(elems[i]);
	}
}

/* Persist what the limiter keeps across a restart (see stockx_store_load_quota()). */
void
stockx_store_save_quota(const SxPersisted *in)
{
	Params p = { 0 };
	Datum elems[SX_WINDOW_BUCKETS];
	bool any = false;
	int i;

	for (i = 0; i < SX_WINDOW_BUCKETS; i++)
	{
		elems[i] = Int32GetDatum(in->window[i]);
		any = any || in->window[i] != 0;
	}
	if (in->requests == 0 && !any && in->margin_us == 0)
		return;
	param_int4(&p, (int32) in->day);
	param_int8(&p, in->requests);
	param(&p, Int64GetDatum(in->window_latest), !any);
	param(&p, array_datum(elems, NULL, SX_WINDOW_BUCKETS, INT4OID), !any);
	param_int8(&p, in->margin_us);
	run(ST_QUOTA_SAVE, &p, SPI_OK_INSERT);
}
