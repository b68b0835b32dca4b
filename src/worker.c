/*-------------------------------------------------------------------------
 * worker.c
 *	  The background worker: claim a batch, enrich its rows one by one,
 *	  commit every commit_every rows, publish state and counters, and end
 *	  the run's part when nothing is due, on stop, or when the limiter says
 *	  so (quota, circuit, credentials).
 *
 * Memory: a context per batch (claims and parsed results) and one per row
 * (HTTP bodies), both reset after use, so memory stays flat however many
 * rows a run processes.  No transaction is open while a request is under
 * way: the claim and each commit are short transactions of their own.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "credentials.h"
#include "enrich.h"
#include "store.h"
#include "worker_args.h"

static int my_slot_index = -1;
static StockxWorkerArgs my_args;
static StockxCounters counters; /* since this worker started */
static StockxCounters flushed;  /* part already added to stockx_run */
static StockxWorkerState my_state = SX_STATE_STARTING;

static const char *const state_names[] = { "starting",    "claiming",
	                                       "requesting",  "waiting_rate_limit",
	                                       "backing_off", "committing",
	                                       "stopping" };

const char *
stockx_worker_state_name(StockxWorkerState state)
{
	return state_names[state];
}

static StockxWorkerSlot *
my_slot(void)
{
	return &stockx_shared->workers[my_slot_index];
}

/* Publish state, current SKU, counters and memory in shared memory. */
static void
publish(const char *sku, bool checkpoint)
{
	StockxWorkerSlot *slot = my_slot();
	int64 memory = MemoryContextMemAllocated(TopMemoryContext, true);

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	slot->state = my_state;
	if (sku != NULL)
		strlcpy(slot->current_sku, sku, sizeof(slot->current_sku));
	slot->counters = counters;
	slot->memory_bytes = memory;
	if (checkpoint)
		slot->last_checkpoint_at = GetCurrentTimestamp();
	LWLockRelease(stockx_shared->slots_lock);
}

void
stockx_worker_set_state(StockxWorkerState state, const char *sku)
{
	char activity[64 + STOCKX_SKU_BUF];

	my_state = state;
	publish(sku, false);
	snprintf(activity, sizeof(activity), "stockx_enrich: %s%s%s", state_names[state],
	         sku ? " " : "", sku ? sku : "");
	pgstat_report_activity(STATE_RUNNING, activity);
}

bool
stockx_worker_stop_requested(void)
{
	bool stop;

	if (ShutdownRequestPending)
		return true;
	LWLockAcquire(stockx_shared->slots_lock, LW_SHARED);
	stop = stockx_shared->runs[my_args.run_index].stop_requested;
	LWLockRelease(stockx_shared->slots_lock);
	return stop;
}

static void
process_reload(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		stockx_credentials_load();
	}
}

/* Sleep up to wait_us on our latch; false when asked to stop meanwhile. */
bool
stockx_worker_sleep(int64 wait_us, StockxWorkerState state)
{
	TimestampTz end = GetCurrentTimestamp() + wait_us;

	stockx_worker_set_state(state, NULL);
	for (;;)
	{
		long remaining_ms;

		CHECK_FOR_INTERRUPTS();
		process_reload();
		if (stockx_worker_stop_requested())
			return false;
		remaining_ms = (long) ((end - GetCurrentTimestamp() + 999) / 1000);
		if (remaining_ms <= 0)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
		                 Min(remaining_ms, 1000L), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static void
tx_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
tx_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

static StockxCounters
counters_minus(const StockxCounters *a, const StockxCounters *b)
{
	StockxCounters d;

	d.processed = a->processed - b->processed;
	d.enriched = a->enriched - b->enriched;
	d.not_found = a->not_found - b->not_found;
	d.failed = a->failed - b->failed;
	d.requests = a->requests - b->requests;
	d.responses_429 = a->responses_429 - b->responses_429;
	d.retries = a->retries - b->retries;
	return d;
}

/* Add what this worker did since the last flush to stockx_run; returns the run's processed total. */
static int64
flush_run_counters(void)
{
	StockxCounters delta = counters_minus(&counters, &flushed);
	int64 total = stockx_store_add_run_counters(my_args.run_id, &delta);

	stockx_store_save_quota();
	return total;
}

/* Write settled results in one short transaction and log a checkpoint. */
static void
commit_results(StockxResult *results, int n)
{
	int64 total;

	stockx_worker_set_state(SX_STATE_COMMITTING, NULL);
	tx_begin();
	stockx_store_write_results(results, n, &counters);
	total = flush_run_counters();
	tx_commit();
	flushed = counters;
	publish(NULL, true);

	ereport(LOG, (errmsg("stockx_enrich: checkpoint run=" INT64_FORMAT " processed=" INT64_FORMAT
	                     " total=" INT64_FORMAT " enriched=" INT64_FORMAT " not_found=" INT64_FORMAT
	                     " failed=" INT64_FORMAT " requests=" INT64_FORMAT " 429s=" INT64_FORMAT
	                     " retries=" INT64_FORMAT " memory=" INT64_FORMAT,
	                     my_args.run_id, counters.processed, total, counters.enriched,
	                     counters.not_found, counters.failed, counters.requests,
	                     counters.responses_429, counters.retries, my_slot()->memory_bytes)));
}

/* Take up to want products from the run's max_products budget. */
static int
reserve_products(int want)
{
	StockxRunSlot *run = &stockx_shared->runs[my_args.run_index];
	int got = want;

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	if (run->max_products > 0)
	{
		got = (int) Min((int64) want, Max(run->max_products - run->reserved, 0));
		run->reserved += got;
	}
	LWLockRelease(stockx_shared->slots_lock);
	return got;
}

static void
unreserve_products(int n)
{
	StockxRunSlot *run = &stockx_shared->runs[my_args.run_index];

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	if (run->max_products > 0)
		run->reserved -= n;
	LWLockRelease(stockx_shared->slots_lock);
}

static StockxStopReason
reason_for(StockxRunSignal signal, StockxEnricher *e)
{
	switch (signal)
	{
		case SX_RUN_CONTINUE:
			return SX_STOP_DONE;
		case SX_RUN_STOP_REQUESTED:
			return SX_STOP_STOPPED;
		case SX_RUN_STOP_QUOTA:
			ereport(
			    LOG,
			    (errmsg("stockx_enrich: daily request quota reached, run " INT64_FORMAT " stops",
			            my_args.run_id),
			     errhint("The quota resets at 00:00 UTC; see stockx_enrich.daily_request_limit.")));
			return SX_STOP_QUOTA;
		case SX_RUN_STOP_CIRCUIT:
			ereport(LOG, (errmsg("stockx_enrich: circuit breaker open after repeated 429 answers, "
			                     "run " INT64_FORMAT " stops",
			                     my_args.run_id),
			              errhint("See stockx_enrich_limiter for when requests may resume.")));
			return SX_STOP_CIRCUIT_OPEN;
		case SX_RUN_STOP_CREDENTIALS:
			ereport(WARNING, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			                  errmsg("stockx_enrich: StockX refused the credentials: %s",
			                         e->credentials_error),
			                  errhint("Check stockx_enrich.api_key, stockx_enrich.client_id, "
			                          "stockx_enrich.client_secret and stockx_enrich.refresh_token "
			                          "(or stockx_enrich.access_token).")));
			return SX_STOP_CREDENTIALS;
	}
	return SX_STOP_ERROR;
}

/* The worker's loop; returns why it ended. */
static StockxStopReason
run_batches(StockxEnricher *e, MemoryContext batch_cxt, MemoryContext row_cxt)
{
	for (;;)
	{
		StockxClaim *claims;
		StockxResult *results;
		StockxRunSignal signal = SX_RUN_CONTINUE;
		int limit;
		int n;
		int done = 0;
		int written = 0;
		int unsettled = 0;
		int i;

		CHECK_FOR_INTERRUPTS();
		process_reload();
		if (stockx_worker_stop_requested())
			return SX_STOP_STOPPED;

		limit = reserve_products(stockx_batch_size);
		if (limit == 0)
			return SX_STOP_MAX_PRODUCTS;

		stockx_worker_set_state(SX_STATE_CLAIMING, "");
		tx_begin();
		n = stockx_store_claim(limit, &claims, batch_cxt);
		tx_commit();
		unreserve_products(limit - n);
		if (n == 0)
			return SX_STOP_DONE;

		results = MemoryContextAllocZero(batch_cxt, sizeof(StockxResult) * n);
		for (i = 0; i < n && signal == SX_RUN_CONTINUE; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(row_cxt);

			stockx_worker_set_state(SX_STATE_REQUESTING, claims[i].sku);
			signal = stockx_enrich_one(e, &claims[i], &results[i], batch_cxt);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
			done = i + 1;
			publish(NULL, false);

			if (done - written >= stockx_commit_every || done == n || signal != SX_RUN_CONTINUE)
			{
				commit_results(results + written, done - written);
				written = done;
			}
		}

		/* leases of rows not settled go back to the queue at once */
		for (i = 0; i < n; i++)
		{
			if (i >= done || results[i].outcome == SX_OUTCOME_NONE ||
			    results[i].outcome == SX_OUTCOME_DEFERRED)
				claims[unsettled++] = claims[i];
		}
		if (unsettled > 0)
		{
			tx_begin();
			stockx_store_release(claims, unsettled);
			tx_commit();
		}
		MemoryContextReset(batch_cxt);

		if (signal != SX_RUN_CONTINUE)
			return reason_for(signal, e);
	}
}

/* Leave our slot; the last worker of a run frees the run slot too. */
static void
detach_slot(int code, Datum arg)
{
	StockxWorkerSlot *slot = my_slot();
	int i;
	bool others = false;

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	for (i = 0; i < stockx_shared->nslots; i++)
	{
		StockxWorkerSlot *w = &stockx_shared->workers[i];

		if (i != my_slot_index && w->in_use && w->run_index == slot->run_index &&
		    w->run_id == slot->run_id)
			others = true;
	}
	if (!others)
		memset(&stockx_shared->runs[slot->run_index], 0, sizeof(StockxRunSlot));
	memset(slot, 0, sizeof(*slot));
	LWLockRelease(stockx_shared->slots_lock);
}

/* Report the error being handled and roll back whatever transaction is open. */
static void
recover_from_error(void)
{
	HOLD_INTERRUPTS();
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	MemoryContextSwitchTo(TopMemoryContext);
	RESUME_INTERRUPTS();
}

/* Add our last counters to stockx_run; false (error reported) if that failed. */
static bool
try_flush_run_counters(void)
{
	volatile bool ok = true;

	PG_TRY();
	{
		tx_begin();
		flush_run_counters();
		tx_commit();
		flushed = counters;
	}
	PG_CATCH();
	{
		recover_from_error();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Record why we ended; the last worker of the run closes its stockx_run
 * row.  Runs on every way out of the loop, errors included.
 */
static void
finish(StockxStopReason reason)
{
	StockxRunSlot *run = &stockx_shared->runs[my_args.run_index];
	StockxStopReason final_reason;
	bool last = true;
	int i;

	stockx_worker_set_state(SX_STATE_STOPPING, "");
	if (!try_flush_run_counters())
		reason = SX_STOP_ERROR;

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	my_slot()->exiting = true;
	if (reason > run->stop_reason)
		run->stop_reason = reason;
	final_reason = run->stop_reason;
	for (i = 0; i < stockx_shared->nslots; i++)
	{
		StockxWorkerSlot *w = &stockx_shared->workers[i];

		if (w->in_use && !w->exiting && w->run_id == my_args.run_id)
			last = false;
	}
	LWLockRelease(stockx_shared->slots_lock);

	if (last)
	{
		tx_begin();
		stockx_store_finish_run(my_args.run_id, final_reason);
		tx_commit();
		ereport(LOG, (errmsg("stockx_enrich: run " INT64_FORMAT " finished: %s", my_args.run_id,
		                     stockx_stop_reason_name(final_reason))));
	}
}

void
stockx_enrich_worker_main(Datum main_arg)
{
	StockxEnricher enricher = { 0 };
	MemoryContext batch_cxt;
	MemoryContext row_cxt;
	StockxStopReason reason;
	StockxWorkerSlot *slot;

	my_slot_index = DatumGetInt32(main_arg);
	memcpy(&my_args, MyBgworkerEntry->bgw_extra, sizeof(my_args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	if (stockx_shared == NULL || my_slot_index < 0 || my_slot_index >= stockx_shared->nslots)
		proc_exit(1);

	/* attach to the slot stockx_enrich_start() reserved for us */
	slot = my_slot();
	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	if (!slot->in_use || slot->run_id != my_args.run_id)
	{
		LWLockRelease(stockx_shared->slots_lock);
		proc_exit(0);
	}
	slot->pid = MyProcPid;
	slot->started_at = GetCurrentTimestamp();
	LWLockRelease(stockx_shared->slots_lock);
	before_shmem_exit(detach_slot, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(my_args.database, my_args.role, 0);
	pgstat_report_appname("stockx_enrich worker");

	batch_cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich batch", ALLOCSET_DEFAULT_SIZES);
	row_cxt = AllocSetContextCreate(TopMemoryContext, "stockx_enrich row", ALLOCSET_DEFAULT_SIZES);
	enricher.counters = &counters;

	PG_TRY();
	{
		stockx_credentials_load();
		enricher.client = stockx_client_create();
		tx_begin();
		stockx_store_init();
		stockx_store_load_quota();
		tx_commit();
		reason = run_batches(&enricher, batch_cxt, row_cxt);
	}
	PG_CATCH();
	{
		/* report, clean up, and still close the run properly */
		recover_from_error();
		reason = SX_STOP_ERROR;
	}
	PG_END_TRY();

	stockx_client_destroy(enricher.client);
	finish(reason);
	proc_exit(0);
}
