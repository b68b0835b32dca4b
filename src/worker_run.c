/*-------------------------------------------------------------------------
 * worker_run.c
 *	  A worker's life: it attaches to the slot stockx_enrich_start()
 *	  reserved, connects as the starting role with its own session settings,
 *	  writes the run's row and closes what crashes left open, looks after
 *	  the price history's partitions, runs the loop (worker.c), and on every
 *	  way out records its counters and why it ended; the last worker of the
 *	  run closes the run's row, with the events that say so.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "clock.h"
#include "credentials.h"
#include "quota.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "store.h"
#include "support.h"
#include "worker_int.h"

/* ---------------------------------------------------------------- start and finish */

/* Pin the session settings the worker depends on, whatever its role or database set. */
static void
pin_session(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("statement_timeout", "60s", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("lock_timeout", "500ms", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_SESSION);
#if PG_VERSION_NUM >= 170000
	SetConfigOption("transaction_timeout", "0", PGC_SUSET, PGC_S_SESSION);
#endif
}

static void
maintain_history_body(Worker *w, void *arg)
{
	stockx_store_maintain_history();
}

/*
 * Make sure of the price history's partitions for this month and the next
 * ones (at the start of a run, then when the month changes), in a
 * transaction of its own.  A failure is only a warning: the partitions are
 * made months ahead, and a month without one is kept in the default
 * partition until a later upkeep moves it out.
 */
void
worker_maintain_history(Worker *w)
{
	ErrorData *edata;

	if (!stockx_store_history_due())
		return;
	edata = worker_in_transaction(w, maintain_history_body, NULL);
	if (edata == NULL)
		return;
	if (worker_ends(edata->sqlerrcode))
		ReThrowError(edata);
	ereport(
	    WARNING,
	    (errmsg("stockx_enrich: could not look after the partitions of stockx_price_history: %s",
	            edata->message),
	     errhint("Run SELECT stockx_price_history_maintain() as the extension's owner.")));
	FreeErrorData(edata);
}

static void
analyze_queue_body(Worker *w, void *arg)
{
	stockx_store_analyze_queue();
}

/*
 * Statistics for the claims (stockx_store_analyze_queue()), in a
 * transaction of its own; a failure is only a warning: the claims work on
 * any plan, slower.
 */
static void
analyze_queue(Worker *w)
{
	ErrorData *edata = worker_in_transaction(w, analyze_queue_body, NULL);

	if (edata == NULL)
		return;
	if (worker_ends(edata->sqlerrcode))
		ReThrowError(edata);
	ereport(WARNING, (errmsg("stockx_enrich: could not analyze stockx_product: %s", edata->message),
	                  errhint("Run ANALYZE on stockx_product after enqueuing many rows.")));
	FreeErrorData(edata);
}

static void
prepare_run_body(Worker *w, void *arg)
{
	int64 active[SX_MAX_WORKERS];
	int nactive = stockx_slots_active_runs(w->args.database, active, lengthof(active));

	stockx_store_ensure_run(w->args.run_id, w->args.workers, w->args.max_products,
	                        w->args.started_at);
	stockx_store_close_orphan_runs(active, nactive, &w->events);
	worker_write_events(w, false);
	stockx_store_prune_runs(w->store_config.run_retention_s);
	stockx_store_prune_events(w->store_config.event_retention_s);
	stockx_quota_restore();
}

/* The worker's first transaction: the run row, orphans of crashes, the quota. */
static void
prepare_run(Worker *w)
{
	ErrorData *edata = worker_in_transaction(w, prepare_run_body, NULL);

	if (edata != NULL)
		ReThrowError(edata);
	worker_maintain_history(w);
	analyze_queue(w);
}

/* The event of a run that ends because the circuit opened or the quota is spent. */
static void
queue_limiter_event(Worker *w, StockxStopReason reason)
{
	StockxLimiterSnapshot snap;

	if (reason != SX_STOP_CIRCUIT_OPEN && reason != SX_STOP_QUOTA)
		return;
	stockx_limiter_snapshot(&snap);
	if (reason == SX_STOP_CIRCUIT_OPEN)
		stockx_events_add(
		    &w->events, "circuit_open",
		    psprintf("{\"source\": \"run\", \"run_id\": " INT64_FORMAT
		             ", \"circuit_open_until\": %s, \"consecutive_429\": %d}",
		             w->args.run_id,
		             stockx_json_time(stockx_timestamp_from_mono(snap.limiter.circuit_open_until,
		                                                         snap.mono_now, snap.wall_now)),
		             snap.limiter.consecutive_429));
	else
		stockx_events_add(
		    &w->events, "quota_spent",
		    psprintf(
		        "{\"source\": \"run\", \"run_id\": " INT64_FORMAT
		        ", \"requests_today\": " INT64_FORMAT ", \"daily_limit\": " INT64_FORMAT
		        ", \"quota_resets_at\": %s}",
		        w->args.run_id, snap.limiter.requests_today, snap.config.daily_limit,
		        stockx_json_time(stockx_timestamp_from_wall(sx_quota_resets_at(&snap.limiter)))));
}

/* Our last counters, and the events this worker still holds (waiting for the table). */
static void
flush_counters_body(Worker *w, void *arg)
{
	StockxCounters delta = stockx_counters_minus(&w->counters, &w->flushed);

	(void) stockx_store_add_run_counters(w->args.run_id, &delta);
	stockx_quota_persist();
	worker_write_events(w, true);
}

/* Add our last counters to stockx_run; false (error reported) if that failed. */
static bool
flush_counters(Worker *w)
{
	ErrorData *edata = worker_in_transaction(w, flush_counters_body, NULL);

	if (edata == NULL)
	{
		w->flushed = w->counters;
		return true;
	}
	ereport(WARNING,
	        (errmsg("stockx_enrich: could not record the counters of run " INT64_FORMAT ": %s",
	                w->args.run_id, edata->message)));
	FreeErrorData(edata);
	return false;
}

static void
flush_events_body(Worker *w, void *arg)
{
	worker_write_events(w, true);
}

/*
 * Events still queued when the worker ends (stockx_event was locked at its
 * last commits): a few more tries, waiting for the table each time as long
 * as lock_timeout allows; one when the worker was asked to stop.
 */
static void
flush_events(Worker *w)
{
	int tries = w->stop == SX_STOP_STOPPED ? 1 : SX_EVENT_FLUSH_TRIES;
	int i;

	for (i = 0; i < tries && w->events.n > 0; i++)
	{
		ErrorData *edata;

		if (i > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
			                 SX_EVENT_FLUSH_NAP_MS, stockx_wait_event(SX_WAIT_BACKOFF));
			ResetLatch(MyLatch);
			if (ShutdownRequestPending)
				break;
		}
		edata = worker_in_transaction(w, flush_events_body, NULL);
		if (edata != NULL)
			FreeErrorData(edata);
	}
}

/* The last worker of a run closes it, with the events that says so. */
static void
close_run_body(Worker *w, void *arg)
{
	StockxStopReason reason = *(StockxStopReason *) arg;

	if (stockx_store_finish_run(w->args.run_id, reason, &w->events))
		queue_limiter_event(w, reason);
	worker_write_events(w, true);
}

/*
 * Record why we ended; the last worker of the run closes its stockx_run
 * row.  Runs on every way out of the loop, errors included.
 */
static void
finish(Worker *w, StockxStopReason reason)
{
	StockxStopReason final_reason;
	bool last;

	worker_set_state(w, SX_STATE_STOPPING, "");
	if (!flush_counters(w))
		reason = SX_STOP_ERROR;
	final_reason = stockx_slots_finish(w->args.slot, reason, &last);
	if (last)
	{
		ErrorData *edata = worker_in_transaction(w, close_run_body, &final_reason);

		if (edata != NULL)
		{
			ereport(WARNING, (errmsg("stockx_enrich: could not close run " INT64_FORMAT ": %s",
			                         w->args.run_id, edata->message)));
			FreeErrorData(edata);
		}
		ereport(LOG, (errmsg("stockx_enrich: run " INT64_FORMAT " finished: %s", w->args.run_id,
		                     stockx_stop_reason_name(final_reason))));
	}
	flush_events(w);
	if (w->events.n > 0 || w->events.dropped > 0)
		ereport(WARNING,
		        (errmsg("stockx_enrich: " INT64_FORMAT " events of run " INT64_FORMAT
		                " could not be written to stockx_event",
		                w->events.n + w->events.dropped, w->args.run_id),
		         errhint("The prices and runs they describe are written; see the earlier log "
		                 "lines for why the events were not.")));
}

static void
detach(int code, Datum arg)
{
	stockx_slots_detach(DatumGetInt32(arg));
}

void
stockx_enrich_worker_main(Datum main_arg)
{
	Worker *w;
	StockxStopReason reason;
	MemoryContext cxt;
	ErrorData *volatile edata = NULL;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	stockx_check_shared();
	w = MemoryContextAllocZero(TopMemoryContext, sizeof(Worker));
	memcpy(&w->args, MyBgworkerEntry->bgw_extra, sizeof(w->args));

	/* attach to the slot stockx_enrich_start() reserved for us */
	if (!stockx_slots_attach(w->args.slot, w->args.run_id))
		proc_exit(0);
	before_shmem_exit(detach, Int32GetDatum(w->args.slot));

	BackgroundWorkerInitializeConnectionByOid(w->args.database, w->args.role, 0);
	pin_session();
	pgstat_report_appname("stockx_enrich worker");

	w->loop_cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich loop", ALLOCSET_DEFAULT_SIZES);
	w->token_cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich token", ALLOCSET_SMALL_SIZES);
	w->settled = MemoryContextAllocZero(
	    TopMemoryContext, sizeof(StockxJob *) * SX_MAX_BATCHES * SX_MAX_BATCH_SIZE + 1);
	cxt = AllocSetContextCreate(TopMemoryContext, "stockx_enrich worker", ALLOCSET_SMALL_SIZES);
	stockx_events_init(&w->events, TopMemoryContext);
	w->notify_cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich notify", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		stockx_credentials_load();
		worker_load_config(w, true);
		/* starting: show the worker's memory from the first moment */
		worker_publish(w, false);
		prepare_run(w);
		if (w->args.sync_selling)
			worker_sync_selling(w);
		if (w->args.sync_only)
			reason = w->stop != SX_STOP_NONE ? w->stop : SX_STOP_DONE;
		else
			reason = worker_loop(w);
	}
	PG_CATCH();
	{
		/*
		 * Report, clean up, and still close the run properly.  A cancel
		 * (pg_cancel_backend of the worker) is a stop, not an error.
		 */
		MemoryContextSwitchTo(cxt);
		if (geterrcode() != ERRCODE_QUERY_CANCELED)
		{
			EmitErrorReport();
			reason = SX_STOP_ERROR;
		}
		else
			reason = SX_STOP_STOPPED;
		edata = worker_tx_abort(cxt);
	}
	PG_END_TRY();
	if (edata != NULL)
		FreeErrorData(edata);

	MemoryContextSwitchTo(cxt);
	if (w->http != NULL)
	{
		stockx_http_cancel_all(w->http);
		stockx_http_destroy(w->http);
		w->http = NULL;
	}
	worker_drop_token(w);
	finish(w, reason);
	proc_exit(0);
}
