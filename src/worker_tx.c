/*-------------------------------------------------------------------------
 * worker_tx.c
 *	  The worker's transactions: every database access of the worker is a
 *	  short transaction of its own (none is open while a request is under
 *	  way), run through worker_in_transaction(), which rolls back and hands
 *	  the error to the caller; events the body wrote are notified in a
 *	  transaction of their own once it committed (events.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "events.h"
#include "store.h"
#include "worker_int.h"

/* ---------------------------------------------------------------- transactions */

/* the memory context to come back to after a transaction (commit resets it) */
static MemoryContext tx_caller_cxt = NULL;

void
worker_tx_begin(void)
{
	tx_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	stockx_store_init();
}

void
worker_tx_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(tx_caller_cxt);
	pgstat_report_stat(false);
}

/* Roll back whatever is open after an error; returns the error (caller frees). */
ErrorData *
worker_tx_abort(MemoryContext cxt)
{
	ErrorData *edata;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(cxt);
	RESUME_INTERRUPTS();
	return edata;
}

typedef void (*TxBody)(Worker *w, void *arg);

/*
 * Run body(w, arg) in a transaction of its own.  Returns NULL when it
 * committed, else the error (everything rolled back; the caller frees it).
 * Events the body wrote (write_events) are notified once it committed.
 */
ErrorData *
worker_in_transaction(Worker *w, TxBody body, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData *volatile edata = NULL;

	w->events_written = false;
	PG_TRY();
	{
		worker_tx_begin();
		body(w, arg);
		worker_tx_commit();
	}
	PG_CATCH();
	{
		edata = worker_tx_abort(cxt);
	}
	PG_END_TRY();
	if (edata == NULL && w->events_written)
	{
		w->events_written = false;
		stockx_events_clear(&w->events);
		worker_notify_events(w, &w->event_ids);
	}
	w->events_written = false;
	MemoryContextReset(w->notify_cxt);
	return edata;
}

/*
 * In a transaction body: write the queued events, waiting for stockx_event
 * (as long as lock_timeout allows) or only if it can be had at once.
 */
void
worker_write_events(Worker *w, bool wait)
{
	w->events_written = stockx_events_write(&w->events, wait, w->notify_cxt, &w->event_ids);
}

/* Errors after which the same write, repeated, may well succeed. */
bool
worker_is_transient(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_TRANSACTION_ROLLBACK ||
	       sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* Errors after which this worker should not go on. */
bool
worker_ends(int sqlerrcode)
{
	int category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_INSUFFICIENT_RESOURCES ||
	       category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_INTERNAL_ERROR ||
	       category == ERRCODE_SYSTEM_ERROR;
}

static void
notify_body(Worker *w, void *arg)
{
	(void) stockx_events_notify((const StockxEventIds *) arg);
}

/*
 * After a commit that wrote events: wake the listeners, in a transaction of
 * its own (a full notification queue fails that one only).
 */
void
worker_notify_events(Worker *w, const StockxEventIds *written)
{
	ErrorData *edata;

	if (written->n == 0)
		return;
	edata = worker_in_transaction(w, notify_body, (void *) written);
	if (edata == NULL)
		return;
	if (worker_ends(edata->sqlerrcode))
		ReThrowError(edata);
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		worker_begin_stop(w, SX_STOP_STOPPED);
	else
		ereport(LOG, (errmsg("stockx_enrich: could not notify listeners of %d new events: %s",
		                     written->n, edata->message),
		              errhint("The events are in stockx_event; consumers read them with "
		                      "stockx_events_since().")));
	FreeErrorData(edata);
}
