/*-------------------------------------------------------------------------
 * events.c
 *	  Writing to the outbox stockx_event, and NOTIFY stockx_enrich.
 *
 * A process queues the events it has to report (a price move found while
 * writing a product, a run's end, the circuit opening) in its own memory,
 * and writes the queue in the transaction of the data they describe.  An
 * event never fails or blocks that write:
 *
 *	- the queue is written in a subtransaction, and only when stockx_event
 *	  can be locked at once: while its owner truncates or locks the table,
 *	  the events stay queued for a later commit instead of making the
 *	  worker wait (and time out, and give up the rows);
 *	- any error there (no privilege, say) rolls back the subtransaction
 *	  only: the events stay queued, and are given up with a WARNING only
 *	  when the queue is full or the table refuses their very data;
 *	- NOTIFY goes in a transaction of its own after the data committed
 *	  (stockx_events_notify() is called there), so a full notification
 *	  queue fails only that one.  It carries the event's id and kind and
 *	  nothing else: anyone may LISTEN or NOTIFY on any channel, so the
 *	  payload is a wake-up call and consumers read the rows, which only
 *	  the roles granted SELECT on stockx_event can (stockx_events_since()).
 *
 * The queue belongs to one process; nothing here is shared.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "events.h"
#include "extension.h"

/* the most events a process keeps waiting for the table */
#define SX_EVENT_QUEUE_MAX 10000
/* above this share of the notification queue, listeners are not woken */
#define SX_NOTIFY_QUEUE_FULL 0.5
#define SX_NOTIFY_CHANNEL    "stockx_enrich"

void
stockx_events_init(StockxEventQueue *q, MemoryContext parent)
{
	memset(q, 0, sizeof(*q));
	q->cxt = AllocSetContextCreate(parent, "stockx_enrich events", ALLOCSET_SMALL_SIZES);
}

/* Queue an event; payload is JSON text (copied). */
void
stockx_events_add(StockxEventQueue *q, const char *kind, const char *payload)
{
	if (q->n == SX_EVENT_QUEUE_MAX)
	{
		if (q->dropped++ == 0)
			ereport(WARNING,
			        (errmsg("stockx_enrich: %d events wait to be written; later ones are given up",
			                SX_EVENT_QUEUE_MAX),
			         errhint("stockx_event could not be written for a long time; see the earlier "
			                 "log lines.  Prices and runs themselves are written as usual.")));
		return;
	}
	if (q->n == q->cap)
	{
		int cap = Max(q->cap * 2, 16);

		if (q->cap == 0)
		{
			q->kinds = MemoryContextAlloc(q->cxt, sizeof(char *) * cap);
			q->payloads = MemoryContextAlloc(q->cxt, sizeof(char *) * cap);
		}
		else
		{
			q->kinds = repalloc(q->kinds, sizeof(char *) * cap);
			q->payloads = repalloc(q->payloads, sizeof(char *) * cap);
		}
		q->cap = cap;
	}
	q->kinds[q->n] = kind;
	q->payloads[q->n] = MemoryContextStrdup(q->cxt, payload);
	q->n++;
}

/* Where the queue is now, to go back to when what was added since is undone. */
int
stockx_events_mark(const StockxEventQueue *q)
{
	return q->n;
}

/* Forget the events added after mark (their transaction rolled back). */
void
stockx_events_rewind(StockxEventQueue *q, int mark)
{
	if (mark < q->n)
		q->n = mark;
	if (q->n == 0)
		stockx_events_clear(q);
}

/* Empty the queue (its events committed). */
void
stockx_events_clear(StockxEventQueue *q)
{
	MemoryContextReset(q->cxt);
	q->n = 0;
	q->cap = 0;
	q->kinds = NULL;
	q->payloads = NULL;
}

static Datum
text_array(const char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Insert the queue in one statement; the new ids into *written (in cxt). */
static void
insert_queue(StockxEventQueue *q, MemoryContext cxt, StockxEventIds *written)
{
	Oid types[2] = { TEXTARRAYOID, TEXTARRAYOID };
	Datum values[2];
	char *sql;
	uint64 i;
	int rc;

	sql =
	    psprintf("INSERT INTO %s.stockx_event (kind, payload) "
	             "SELECT u.kind, u.payload::jsonb "
	             "  FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) "
	             "       WITH ORDINALITY AS u(kind, payload, ord) ORDER BY u.ord "
	             "RETURNING event_id, kind",
	             stockx_extension_schema());
	values[0] = text_array(q->kinds, q->n);
	values[1] = text_array((const char **) q->payloads, q->n);
	rc = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "stockx_enrich: writing events returned %s", SPI_result_code_string(rc));

	written->n = (int) SPI_processed;
	written->ids = MemoryContextAlloc(cxt, sizeof(int64) * (written->n + 1));
	written->kinds = MemoryContextAlloc(cxt, sizeof(char *) * (written->n + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;

		written->ids[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		written->kinds[i] = MemoryContextStrdup(cxt, SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
	}
}

/* Errors that are not the events' business: the caller must see them. */
static bool
must_propagate(int sqlerrcode)
{
	int category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return sqlerrcode == ERRCODE_QUERY_CANCELED || category == ERRCODE_INSUFFICIENT_RESOURCES ||
	       category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_SYSTEM_ERROR ||
	       category == ERRCODE_INTERNAL_ERROR;
}

/*
 * Write the queued events in the current transaction (SPI connected).
 * With wait, waits for stockx_event as long as lock_timeout allows;
 * without, writes only when the table can be locked at once.  Returns
 * whether they were written: then *written lists them (in cxt) and the
 * caller clears the queue once its transaction committed.  On false the
 * events stay queued (or were given up, when the table refuses their data).
 */
bool
stockx_events_write(StockxEventQueue *q, bool wait, MemoryContext cxt, StockxEventIds *written)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData *edata = NULL;
	Oid rel;

	memset(written, 0, sizeof(*written));
	if (q->n == 0)
		return true;
	rel = stockx_extension_relid("stockx_event");
	if (!wait && OidIsValid(rel) && !ConditionalLockRelationOid(rel, RowExclusiveLock))
	{
		if (!q->deferred)
			ereport(LOG, (errmsg("stockx_enrich: stockx_event is locked by another transaction; "
			                     "%d events wait for a later commit",
			                     q->n)));
		q->deferred = true;
		return false;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		insert_queue(q, cxt, written);
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
		if (must_propagate(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();

	if (edata == NULL)
	{
		if (q->deferred)
			ereport(LOG, (errmsg("stockx_enrich: %d waiting events written", q->n)));
		q->deferred = false;
		return true;
	}
	memset(written, 0, sizeof(*written));
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
	    ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
	{
		/* they would never go in: give them up rather than retry for ever */
		ereport(WARNING, (errmsg("stockx_enrich: %d events could not be written and are given up: "
		                         "%s",
		                         q->n, edata->message)));
		q->dropped += q->n;
		stockx_events_clear(q);
	}
	else if (!q->deferred)
		ereport(LOG, (errmsg("stockx_enrich: %d events could not be written yet: %s", q->n,
		                     edata->message),
		              errhint("They are tried again at the next commit.")));
	q->deferred = true;
	FreeErrorData(edata);
	return false;
}

/* How full the notification queue is (0 to 1). */
static double
notify_queue_usage(void)
{
	LOCAL_FCINFO(fcinfo, 0);

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	return DatumGetFloat8(pg_notification_queue_usage(fcinfo));
}

/*
 * NOTIFY stockx_enrich, '{"event_id": N, "kind": "..."}' for each written
 * event, in the current transaction; nothing when the notification queue is
 * more than half full (a listener that does not read holds it: the events
 * are in the table all the same).  Returns how many were sent.
 */
int
stockx_events_notify(const StockxEventIds *written)
{
	int i;

	if (written->n == 0)
		return 0;
	if (notify_queue_usage() > SX_NOTIFY_QUEUE_FULL)
	{
		ereport(LOG, (errmsg("stockx_enrich: the notification queue is more than half full; %d "
		                     "events are written but not notified",
		                     written->n),
		              errhint("A session that LISTENs without reading holds the queue; "
		                      "see pg_notification_queue_usage().")));
		return 0;
	}
	for (i = 0; i < written->n; i++)
	{
		char payload[96];

		snprintf(payload, sizeof(payload), "{\"event_id\": " INT64_FORMAT ", \"kind\": \"%s\"}",
		         written->ids[i], written->kinds[i]);
		Async_Notify(SX_NOTIFY_CHANNEL, payload);
	}
	return written->n;
}

/* A timestamp as a JSON string, in the form to_json() gives it. */
char *
stockx_json_time(TimestampTz t)
{
	char buf[MAXDATELEN + 1];
	StringInfoData out;

	JsonEncodeDateTime(buf, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL);
	initStringInfo(&out);
	escape_json(&out, buf);
	return out.data;
}
