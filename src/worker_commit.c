/*-------------------------------------------------------------------------
 * worker_commit.c
 *	  Writing what a worker has settled: every commit_every rows (or when
 *	  nothing else is in hand, or 5 s after the first settled, or on the
 *	  way out), in one transaction with the run's counters and the quota;
 *	  a deadlock or lock timeout repeats it from memory, any other error
 *	  is isolated row by row (store_write.c decides what is the row's
 *	  fault).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "clock.h"
#include "quota.h"
#include "store.h"
#include "support.h"
#include "worker_int.h"

/* ---------------------------------------------------------------- commits */

static void
count_outcome(StockxCounters *c, const StockxWritten *written, StockxOutcome outcome)
{
	if (written->write != SX_WRITE_DONE && written->write != SX_WRITE_ROW_FAILED)
		return;
	c->processed++;
	if (written->status == NULL)
		return;
	if (outcome == SX_OUTCOME_RETRY_LATER && strcmp(written->status, "failed") != 0)
		return; /* still due: not a final result */
	/* a barcode that joined the row of its product is resolved: enriched */
	if (strcmp(written->status, "enriched") == 0 || strcmp(written->status, "merged") == 0)
		c->enriched++;
	else if (strcmp(written->status, "not_found") == 0)
		c->not_found++;
	else if (strcmp(written->status, "failed") == 0)
		c->failed++;
}

/* What writing some settled rows needs and gives back. */
typedef struct WriteArgs
{
	StockxJob **jobs;
	int n;
	const char *fail_with; /* not NULL: mark them failed with this */
	StockxWritten *written;
	StockxCounters outcomes;
} WriteArgs;

/*
 * Write a->jobs and this worker's counters, and the events waiting (when
 * stockx_event can be had at once), in one transaction.
 */
static void
write_body(Worker *w, void *arg)
{
	WriteArgs *a = (WriteArgs *) arg;
	StockxCounters delta;
	int i;

	memset(&a->outcomes, 0, sizeof(a->outcomes));
	for (i = 0; i < a->n; i++)
	{
		StockxJob *j = a->jobs[i];

		if (a->fail_with != NULL)
		{
			j->result.outcome = SX_OUTCOME_FAILED;
			(void) stockx_store_fail_row(&w->store_config, j->claim, a->fail_with, &a->written[i]);
		}
		else
			stockx_store_write_row(&w->store_config, j->claim, &j->result, &a->written[i],
			                       &w->events);
		count_outcome(&a->outcomes, &a->written[i], j->result.outcome);
	}
	worker_write_events(w, false);
	delta = stockx_counters_minus(&w->counters, &w->flushed);
	stockx_counters_add(&delta, &a->outcomes);
	w->run_processed = stockx_store_add_run_counters(w->args.run_id, &delta);
	stockx_quota_persist();
}

/*
 * Write jobs[0..n) (marked failed with fail_with unless NULL) in one
 * transaction: NULL when it committed, else the error (rolled back).  The
 * counters of the rows count only once the transaction has committed.
 */
static ErrorData *
try_write_rows(Worker *w, StockxJob **jobs, int n, const char *fail_with)
{
	WriteArgs a = { 0 };
	int mark = stockx_events_mark(&w->events);
	ErrorData *edata;
	int i;

	a.jobs = jobs;
	a.n = n;
	a.fail_with = fail_with;
	a.written = palloc0(sizeof(StockxWritten) * Max(n, 1));
	edata = worker_in_transaction(w, write_body, &a);
	if (edata != NULL)
	{
		/* the price moves of rows that were not written are no events */
		stockx_events_rewind(&w->events, mark);
		return edata;
	}
	stockx_counters_add(&w->counters, &a.outcomes);
	w->flushed = w->counters;
	for (i = 0; i < n; i++)
		if (a.written[i].write == SX_WRITE_LOST_LEASE)
			ereport(LOG, (errmsg("stockx_enrich: lost the lease of SKU \"%s\"; its result is not "
			                     "written",
			                     jobs[i]->claim->sku),
			              errdetail("Another worker or a user took the row over, or a trigger "
			                        "kept it from being updated.")));
	pfree(a.written);
	return NULL;
}

/*
 * Write the settled rows.  A deadlock, serialization failure or lock
 * timeout repeats the whole write (the results are still in memory, no
 * request is spent again); any other error that is not the rows' data is
 * isolated by writing the rows one per transaction, and a row that still
 * fails alone is marked failed with the error.  Errors that end the worker
 * are raised again; false when a stop came in meanwhile.
 */
static bool
write_settled(Worker *w, StockxJob **jobs, int n)
{
	ErrorData *edata = NULL;
	int attempt;
	int i;

	for (attempt = 1;; attempt++)
	{
		edata = try_write_rows(w, jobs, n, NULL);
		if (edata == NULL)
			return true;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		{
			/* a cancel while writing: this worker stops */
			ereport(LOG, (errmsg("stockx_enrich: writing the results of %d products was canceled: "
			                     "%s",
			                     n, edata->message)));
			worker_begin_stop(w, SX_STOP_STOPPED);
			FreeErrorData(edata);
			return false;
		}
		if (worker_ends(edata->sqlerrcode) ||
		    (worker_is_transient(edata->sqlerrcode) && attempt == SX_WRITE_ATTEMPTS))
			ReThrowError(edata);
		if (!worker_is_transient(edata->sqlerrcode))
			break;
		ereport(LOG, (errmsg("stockx_enrich: writing the results of %d products failed, trying "
		                     "again (%d of %d): %s",
		                     n, attempt, SX_WRITE_ATTEMPTS - 1, edata->message)));
		FreeErrorData(edata);
		if (!worker_nap(w, 100L * attempt))
		{
			worker_begin_stop(w, SX_STOP_STOPPED);
			return false;
		}
	}

	/* not transient: find the row it belongs to */
	ereport(LOG, (errmsg("stockx_enrich: writing the results of %d products failed, writing them "
	                     "one by one: %s",
	                     n, edata->message)));
	FreeErrorData(edata);
	for (i = 0; i < n; i++)
	{
		char *error;

		edata = try_write_rows(w, &jobs[i], 1, NULL);
		if (edata == NULL)
			continue;
		if (worker_is_transient(edata->sqlerrcode) || edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		    worker_ends(edata->sqlerrcode))
			ReThrowError(edata);
		ereport(WARNING, (errmsg("stockx_enrich: could not store SKU \"%s\": %s",
		                         jobs[i]->claim->sku, edata->message)));
		error = psprintf("could not store the answer: %s", edata->message);
		FreeErrorData(edata);
		/* the row cannot even be marked failed: the database is in the way */
		edata = try_write_rows(w, &jobs[i], 1, error);
		if (edata != NULL)
			ReThrowError(edata);
	}
	return true;
}

static void
log_checkpoint(Worker *w)
{
	ereport(LOG, (errmsg("stockx_enrich: checkpoint run=" INT64_FORMAT " processed=" INT64_FORMAT
	                     " total=" INT64_FORMAT " enriched=" INT64_FORMAT " not_found=" INT64_FORMAT
	                     " failed=" INT64_FORMAT " requests=" INT64_FORMAT " 429s=" INT64_FORMAT
	                     " retries=" INT64_FORMAT " in_flight=%d memory=" INT64_FORMAT,
	                     w->args.run_id, w->counters.processed, w->run_processed,
	                     w->counters.enriched, w->counters.not_found, w->counters.failed,
	                     w->counters.requests, w->counters.responses_429, w->counters.retries,
	                     stockx_http_in_flight(w->http), w->memory_bytes)));
}

/* Write what is settled; false when that failed and the worker should stop. */
bool
worker_commit_settled(Worker *w)
{
	int n = w->nsettled;
	bool ok;
	int i;

	if (n == 0)
		return true;
	worker_set_state(w, SX_STATE_COMMITTING, NULL);
	worker_maintain_history(w);
	ok = write_settled(w, w->settled, n);
	if (!ok)
		return false;
	for (i = 0; i < n; i++)
		worker_job_done(w, w->settled[i]);
	w->nsettled = 0;
	worker_publish(w, true);
	log_checkpoint(w);
	return true;
}

bool
worker_commit_due(Worker *w)
{
	if (w->nsettled == 0)
		return false;
	return w->nsettled >= w->config.commit_every || worker_held_jobs(w, true) == 0 ||
	       w->stop != SX_STOP_NONE || stockx_mono_now() - w->settled_since > SX_COMMIT_AFTER_US;
}
