/*-------------------------------------------------------------------------
 * store_runs.c
 *	  The store's bookkeeping: runs (their rows, counters and how they
 *	  ended), pruning old runs and events, the price history's upkeep, and
 *	  what the limiter keeps across a restart (stockx_quota).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "events.h"
#include "extension.h"
#include "store.h"
#include "store_int.h"
#include "support.h"

/* the payload of a run_end event: what RETURNING gives of the run's row */
#define RUN_END_PAYLOAD                                                                            \
	"pg_catalog.jsonb_build_object('run_id', run_id, 'stop_reason', stop_reason, "                 \
	"  'started_at', started_at, 'finished_at', finished_at, 'workers', workers, "                 \
	"  'processed', processed, 'enriched', enriched, 'not_found', not_found, 'failed', failed, "   \
	"  'requests', requests, 'responses_429', responses_429, 'retries', retries)::text"

/* ---------------------------------------------------------------- runs */
static Statement st_run_counters = {
	"INSERT INTO @extschema@.stockx_run AS r (run_id, processed, enriched, not_found, failed, "
	"  requests, responses_429, retries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	"ON CONFLICT (run_id) DO UPDATE SET processed = r.processed + EXCLUDED.processed, "
	"  enriched = r.enriched + EXCLUDED.enriched, "
	"  not_found = r.not_found + EXCLUDED.not_found, failed = r.failed + EXCLUDED.failed, "
	"  requests = r.requests + EXCLUDED.requests, "
	"  responses_429 = r.responses_429 + EXCLUDED.responses_429, "
	"  retries = r.retries + EXCLUDED.retries RETURNING r.processed",
	8,
	{ INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID }
};

int64
stockx_store_add_run_counters(int64 run_id, const StockxCounters *d)
{
	Params p = { 0 };
	bool isnull;

	store_param_int8(&p, run_id);
	store_param_int8(&p, d->processed);
	store_param_int8(&p, d->enriched);
	store_param_int8(&p, d->not_found);
	store_param_int8(&p, d->failed);
	store_param_int8(&p, d->requests);
	store_param_int8(&p, d->responses_429);
	store_param_int8(&p, d->retries);
	store_run(&st_run_counters, &p, SPI_OK_INSERT_RETURNING);
	if (store_rows() != 1)
		return -1; /* a trigger kept the row from being written */
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}
static Statement st_run_ensure = {
	"INSERT INTO @extschema@.stockx_run (run_id, workers, max_products, "
	"  started_at) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING",
	4,
	{ INT8OID, INT4OID, INT8OID, TIMESTAMPTZOID }
};

void
stockx_store_ensure_run(int64 run_id, int workers, int64 max_products, TimestampTz started_at)
{
	Params p = { 0 };

	store_param_int8(&p, run_id);
	store_param_int4(&p, workers);
	store_param(&p, Int64GetDatum(max_products), max_products <= 0);
	store_param(&p, TimestampTzGetDatum(started_at), false);
	store_run(&st_run_ensure, &p, SPI_OK_INSERT);
}

/* Queue a run_end event for each run an UPDATE ... RETURNING RUN_END_PAYLOAD closed. */
static void
queue_run_ends(StockxEventQueue *events)
{
	uint64 row;

	for (row = 0; row < store_rows(); row++)
		stockx_events_add(events, "run_end",
		                  SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
}

static Statement st_run_orphans = {
	"UPDATE @extschema@.stockx_run SET finished_at = pg_catalog.now(), "
	"  stop_reason = 'error' "
	" WHERE finished_at IS NULL AND run_id <> ALL ($1) RETURNING " RUN_END_PAYLOAD,
	1,
	{ INT8ARRAYOID }
};

/* Runs left unfinished by a crash or a restart are closed as errors. */
void
stockx_store_close_orphan_runs(const int64 *active, int nactive, StockxEventQueue *events)
{
	Params p = { 0 };
	Datum *ids = palloc(sizeof(Datum) * (nactive + 1));
	int i;

	for (i = 0; i < nactive; i++)
		ids[i] = Int64GetDatum(active[i]);
	store_param(&p, store_array_datum(ids, NULL, nactive, INT8OID), false);
	store_run(&st_run_orphans, &p, SPI_OK_UPDATE_RETURNING);
	queue_run_ends(events);
}

static Statement st_run_finish = {
	"UPDATE @extschema@.stockx_run SET finished_at = pg_catalog.now(), "
	"  stop_reason = $2 WHERE run_id = $1 AND finished_at IS NULL "
	"RETURNING " RUN_END_PAYLOAD,
	2,
	{ INT8OID, TEXTOID }
};

/* Close a run with its stop reason; false when it was closed already. */
bool
stockx_store_finish_run(int64 run_id, StockxStopReason reason, StockxEventQueue *events)
{
	Params p = { 0 };

	store_param_int8(&p, run_id);
	store_param_text(&p, stockx_stop_reason_name(reason));
	store_run(&st_run_finish, &p, SPI_OK_UPDATE_RETURNING);
	queue_run_ends(events);
	return store_rows() == 1;
}
static Statement st_next_run_id = { "SELECT pg_catalog.nextval($1)", 1, { REGCLASSOID } };

int64
stockx_store_next_run_id(void)
{
	Params p = { 0 };
	Oid seq = get_relname_relid("stockx_run_run_id_seq", stockx_extension_schema_oid());
	bool isnull;

	if (!OidIsValid(seq))
		ereport(ERROR,
		        (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("sequence of stockx_run is missing"),
		         errhint("Reinstall the extension stockx_enrich.")));
	store_param(&p, ObjectIdGetDatum(seq), false);
	store_run(&st_next_run_id, &p, SPI_OK_SELECT);
	if (store_rows() != 1)
		elog(ERROR, "stockx_enrich: nextval returned no row");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static Statement st_run_reason = { "SELECT coalesce(stop_reason, 'error') "
	                               "  FROM @extschema@.stockx_run WHERE run_id = $1",
	                               1,
	                               { INT8OID } };

/* The stop_reason of a run (palloc'd in the caller's context), or NULL. */
char *
stockx_store_run_reason(int64 run_id)
{
	Params p = { 0 };
	char *reason;

	store_param_int8(&p, run_id);
	store_run(&st_run_reason, &p, SPI_OK_SELECT);
	if (store_rows() != 1)
		return NULL;
	reason = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return reason ? MemoryContextStrdup(TopTransactionContext, reason) : NULL;
}

/* Run a DELETE of rows older than retention_s seconds (0 keeps them all). */
static void
prune(Statement *st, int retention_s)
{
	Params p = { 0 };

	if (retention_s <= 0)
		return;
	store_param_float8(&p, (double) retention_s);
	store_run(st, &p, SPI_OK_DELETE);
}

static Statement st_run_prune = {
	"DELETE FROM @extschema@.stockx_run "
	" WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
	1,
	{ FLOAT8OID }
};

/* Delete the rows of runs that finished longer than retention_s ago (0 = keep). */
void
stockx_store_prune_runs(int retention_s)
{
	prune(&st_run_prune, retention_s);
}

static Statement st_event_prune = {
	"DELETE FROM @extschema@.stockx_event "
	" WHERE created_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
	1,
	{ FLOAT8OID }
};

/*
 * Delete events older than retention_s (0 keeps them); not now when
 * stockx_event cannot be locked at once: no event work ever waits.
 */
void
stockx_store_prune_events(int retention_s)
{
	Oid rel = stockx_extension_relid("stockx_event");

	if (retention_s <= 0 || (OidIsValid(rel) && !ConditionalLockRelationOid(rel, RowExclusiveLock)))
		return;
	prune(&st_event_prune, retention_s);
}

/* ---------------------------------------------------------------- price history */

/* UTC month (year * 12 + month - 1) whose history partitions we made sure of, in history_ext */
static int history_month = -1;
static Oid history_ext = InvalidOid;
/* after a failed upkeep, when to try again */
static TimestampTz history_retry_at = 0;

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

	if (history_ext != stockx_extension_oid())
	{
		/* another extension (dropped and created again): nothing is known */
		history_ext = stockx_extension_oid();
		history_month = -1;
		history_retry_at = 0;
	}
	if (now < history_retry_at)
		return false;
	return history_month < 0 || utc_month(now) != history_month;
}

/*
 * Run st as the extension's owner, whoever started the run (the worker
 * changes its user id for the statement, as a SECURITY DEFINER function
 * would, in a restricted operation).  No SQL entry point lets another role
 * run these statements, or hold their locks.  An error leaves through the
 * transaction's abort, which restores the user id.
 */
static void
run_as_owner(Statement *st, Params *p, int expected)
{
	Oid save_userid;
	int save_sec_context;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(stockx_extension_owner(), save_sec_context |
	                                                     SECURITY_LOCAL_USERID_CHANGE |
	                                                     SECURITY_RESTRICTED_OPERATION);
	store_run(st, p, expected);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

static Statement st_history_maintain = {
	"SELECT pg_catalog.count(*) FROM @extschema@.stockx_price_history_maintain()", 0, { InvalidOid }
};

/*
 * Create the monthly partitions of stockx_price_history ahead and drop those
 * older than history_retention: stockx_price_history_maintain() with its
 * defaults, as the extension's owner (the function pins the settings its
 * DDL depends on).  After a failure the next try waits a minute.
 */
void
stockx_store_maintain_history(void)
{
	Params p = { 0 };

	history_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000);
	run_as_owner(&st_history_maintain, &p, SPI_OK_SELECT);
	history_month = utc_month(GetCurrentTimestamp());
	history_retry_at = 0;
}

/* ---------------------------------------------------------------- queue statistics */

/*
 * Whether the queue's statistics are missing or stale by autovacuum's own
 * default rule (50 rows plus a tenth of the table changed since the last
 * ANALYZE); a table never analyzed, or truncated, has reltuples -1.
 */
static Statement st_queue_stale = {
	"SELECT c.reltuples < 0 "
	"    OR pg_catalog.pg_stat_get_mod_since_analyze(c.oid) > 50 + 0.1 * c.reltuples "
	"  FROM pg_catalog.pg_class c WHERE c.oid = $1",
	1,
	{ OIDOID }
};

static Statement st_queue_analyze = { "ANALYZE (SKIP_LOCKED) @extschema@.stockx_product",
	                                  0,
	                                  { InvalidOid } };

/*
 * ANALYZE stockx_product when its statistics are missing or stale, as the
 * extension's owner.  A run usually starts right after a bulk enqueue,
 * before autovacuum's next look: planned on a table it believes empty,
 * every claim would sort the whole queue instead of reading the head of
 * stockx_product_pending_idx.  SKIP_LOCKED: a VACUUM or ANALYZE already
 * at work on the table is left to it.
 */
void
stockx_store_analyze_queue(void)
{
	Params p = { 0 };
	bool isnull;

	store_param(&p, ObjectIdGetDatum(stockx_extension_relid("stockx_product")), false);
	store_run(&st_queue_stale, &p, SPI_OK_SELECT);
	if (store_rows() != 1 ||
	    !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ||
	    isnull)
		return;
	memset(&p, 0, sizeof(p));
	run_as_owner(&st_queue_analyze, &p, SPI_OK_UTILITY);
}

/* ---------------------------------------------------------------- quota */

/* today's count, and the window and margin of the latest row */
static Statement st_quota_load = {
	"SELECT (SELECT t.requests FROM @extschema@.stockx_quota t "
	"         WHERE t.day = DATE '1970-01-01' + $1), "
	"       l.window_latest, l.window_counts, l.pacing_margin_us "
	"  FROM (SELECT window_latest, window_counts, pacing_margin_us "
	"          FROM @extschema@.stockx_quota ORDER BY day DESC LIMIT 1) l",
	1,
	{ INT4OID }
};

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
	store_param_int4(&p, (int32) day);
	store_run(&st_quota_load, &p, SPI_OK_SELECT);
	if (store_rows() != 1)
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

/*
 * The day's count only grows; of two windows the newer wins, and two of
 * the same latest bucket merge bucket by bucket (two workers' snapshots).
 */
static Statement st_quota_save = {
	"INSERT INTO @extschema@.stockx_quota AS q (day, requests, window_latest, "
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
	{ INT4OID, INT8OID, INT8OID, INT4ARRAYOID, INT8OID }
};

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
	store_param_int4(&p, (int32) in->day);
	store_param_int8(&p, in->requests);
	store_param(&p, Int64GetDatum(in->window_latest), !any);
	store_param(&p, store_array_datum(elems, NULL, SX_WINDOW_BUCKETS, INT4OID), !any);
	store_param_int8(&p, in->margin_us);
	store_run(&st_quota_save, &p, SPI_OK_INSERT);
}
