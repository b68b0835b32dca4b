/*-------------------------------------------------------------------------
 * worker.c
 *	  The background worker: claim rows in batches, drive each row's
 *	  enrichment (enrich.c) with several requests in flight (http.c), each
 *	  taking its own slot from the shared limiter, commit every
 *	  commit_every settled rows, renew the leases of the rows it holds,
 *	  and end the run's part when nothing is due, on stop, or when the
 *	  limiter or StockX say so (quota, circuit, credentials).
 *
 * Memory: a context per batch (its claims) and one per row (parsed results,
 * with a child for the answer being read, reset after each answer); a row's
 * context goes when the row is written or given back, a batch's when its
 * last row does, so memory stays flat however many rows a run processes.
 * No transaction is open while a request is under way: the claim, each
 * commit and each lease renewal are short transactions of their own.
 *
 * The worker pins its own session settings (search_path, isolation level,
 * statement and lock timeouts) so that none set on its role or database
 * changes how it behaves; a lock wait never lasts more than lock_timeout,
 * so a stop request is always noticed within a second.
 *
 * Stopping: stockx_enrich_stop() sets the run's flag and the worker's
 * latch; SIGTERM and a cancel (pg_cancel_backend) do the same for this
 * worker.  Requests in flight are then abandoned at once, settled rows are
 * committed and the others go back to the queue.  Other interrupts (a
 * reload, a procsignal barrier, a memory-context dump) only wake the loop.
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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "credentials.h"
#include "enrich.h"
#include "events.h"
#include "http.h"
#include "quota.h"
#include "settings.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "store.h"
#include "support.h"
#include "token_cache.h"
#include "worker.h"
#include "worker_int.h"

/* ---------------------------------------------------------------- state */

static double
unit_random(void)
{
	return stockx_random();
}

void
worker_load_config(Worker *w, bool first)
{
	StockxHttpConfig http_config;

	stockx_settings_worker(&w->config);
	stockx_settings_enrich(&w->enrich_config);
	stockx_settings_store(&w->store_config);
	stockx_settings_http(&http_config, w->loop_cxt);
	w->refresh_stale_us =
	    ((int64) http_config.connect_timeout_ms + http_config.request_timeout_ms + 1000) * 1000;
	w->env.config = &w->enrich_config;
	w->env.unit_random = unit_random;
	w->env.now = stockx_mono_now;
	if (first)
		w->http = stockx_http_create(&http_config);
	else
		stockx_http_configure(w->http, &http_config);
}

void
worker_publish(Worker *w, bool checkpoint)
{
	StockxWorkerReport report;

	report.state = w->state;
	report.sku = w->sku;
	report.counters = &w->counters;
	/* measured at checkpoints (and once at start): it walks every memory context */
	if (checkpoint || w->memory_bytes == 0)
		w->memory_bytes = (int64) MemoryContextMemAllocated(TopMemoryContext, true);
	report.memory_bytes = w->memory_bytes;
	report.in_flight = w->http ? stockx_http_in_flight(w->http) : 0;
	report.checkpoint = checkpoint;
	stockx_slots_publish(w->args.slot, &report);
	w->published_at = stockx_mono_now();
}

void
worker_set_state(Worker *w, StockxWorkerState state, const char *sku)
{
	bool changed = state != w->state || (sku != NULL && sku != w->sku);

	w->state = state;
	if (sku != NULL)
		w->sku = sku;
	if (changed)
	{
		char activity[64 + STOCKX_SKU_BUF];

		snprintf(activity, sizeof(activity), "stockx_enrich: %s%s%s",
		         stockx_worker_state_name(state), w->sku && w->sku[0] ? " " : "",
		         w->sku ? w->sku : "");
		pgstat_report_activity(STATE_RUNNING, activity);
	}
	if (changed || stockx_mono_now() - w->published_at > SX_PUBLISH_EVERY_US)
		worker_publish(w, false);
}

/* Has the run been asked to stop (stockx_enrich_stop, a shutdown)? */
bool
worker_stop_requested(Worker *w)
{
	return ShutdownRequestPending || stockx_slots_stop_requested(w->args.run_index, w->args.run_id);
}

/* A cancel (pg_cancel_backend) of the worker means: stop this worker. */
void
worker_check_interrupts(Worker *w)
{
	if (QueryCancelPending)
	{
		QueryCancelPending = false;
		if (w->stop == SX_STOP_NONE)
			worker_begin_stop(w, SX_STOP_STOPPED);
	}
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		(void) stockx_credentials_reload();
		worker_load_config(w, false);
	}
}

/* Sleep up to ms on the latch; false when asked to stop meanwhile. */
bool
worker_nap(Worker *w, long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
	                 stockx_wait_event(SX_WAIT_BACKOFF));
	ResetLatch(MyLatch);
	worker_check_interrupts(w);
	return !worker_stop_requested(w);
}

/* ---------------------------------------------------------------- rows */

int
worker_held_jobs(Worker *w, bool unsettled_only)
{
	int b, i, n = 0;

	for (b = 0; b < SX_MAX_BATCHES; b++)
	{
		Batch *batch = &w->batches[b];

		if (!batch->in_use)
			continue;
		for (i = 0; i < batch->n; i++)
		{
			StockxJob *j = &batch->jobs[i];

			if (j->cxt != NULL && (!unsettled_only || !j->settled))
				n++;
		}
	}
	return n;
}

/* A row is written or given back: free its memory, and its batch's with the last. */
void
worker_job_done(Worker *w, StockxJob *j)
{
	Batch *batch = &w->batches[j->batch];

	Assert(!j->in_flight);
	MemoryContextDelete(j->cxt);
	j->cxt = NULL;
	j->body_cxt = NULL;
	if (--batch->live == 0)
	{
		MemoryContextDelete(batch->cxt);
		memset(batch, 0, sizeof(*batch));
	}
}

/* Abandon a row's request in flight (its slot may never have been used). */
static void
cancel_request(Worker *w, StockxJob *j)
{
	if (!j->in_flight)
		return;
	worker_cancel_transfer(w, j->transfer);
	j->transfer = NULL;
	j->in_flight = false;
}

/*
 * The free batch to claim into, when the rows in hand cannot keep every
 * request slot busy; NULL otherwise.
 */
static Batch *
claim_wanted(Worker *w)
{
	int b;

	if (w->no_more_rows || w->stop != SX_STOP_NONE)
		return NULL;
	if (worker_held_jobs(w, true) >= w->config.requests_in_flight && worker_held_jobs(w, false) > 0)
		return NULL;
	for (b = 0; b < SX_MAX_BATCHES; b++)
		if (!w->batches[b].in_use)
			return &w->batches[b];
	return NULL;
}

/* What a claim needs and gives back. */
typedef struct ClaimArgs
{
	Batch *batch;
	int limit;
	int n;
	StockxClaim *claims;
} ClaimArgs;

static void
claim_body(Worker *w, void *arg)
{
	ClaimArgs *a = (ClaimArgs *) arg;
	int32 pids[SX_MAX_LIVE_PIDS];
	int npids;

	stockx_store_lock_claims();
	/* after the lock: see stockx_store_lock_claims() */
	npids = stockx_slots_live_pids(pids, lengthof(pids));
	a->n = stockx_store_claim(&w->store_config, a->limit, pids, npids, &a->claims, a->batch->cxt);
}

/* Claim a new batch when the rows in hand cannot keep every request slot busy. */
static void
maybe_claim(Worker *w)
{
	ErrorData *edata;
	ClaimArgs a = { 0 };
	int limit;
	int n;
	StockxClaim *claims;
	Batch *batch = claim_wanted(w);
	int i;

	if (batch == NULL)
		return;

	limit = stockx_slots_take_products(w->args.run_index, w->args.run_id, w->config.batch_size);
	if (limit == 0)
	{
		w->no_more_rows = true;
		w->budget_spent = true;
		return;
	}

	worker_set_state(w, SX_STATE_CLAIMING, "");
	batch->cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich batch", ALLOCSET_DEFAULT_SIZES);
	a.batch = batch;
	a.limit = limit;
	edata = worker_in_transaction(w, claim_body, &a);
	n = a.n;
	claims = a.claims;
	if (edata != NULL)
	{
		/* a lock timeout or the like: try again on the next turn */
		if (!worker_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		ereport(LOG,
		        (errmsg("stockx_enrich: claiming rows failed, trying again: %s", edata->message)));
		FreeErrorData(edata);
		MemoryContextDelete(batch->cxt);
		batch->cxt = NULL;
		stockx_slots_return_products(w->args.run_index, w->args.run_id, limit);
		return;
	}
	stockx_slots_return_products(w->args.run_index, w->args.run_id, limit - n);
	if (n == 0)
	{
		MemoryContextDelete(batch->cxt);
		batch->cxt = NULL;
		w->no_more_rows = true;
		return;
	}

	batch->in_use = true;
	batch->n = n;
	batch->live = n;
	batch->jobs = MemoryContextAllocZero(batch->cxt, sizeof(StockxJob) * n);
	for (i = 0; i < n; i++)
	{
		MemoryContext row_cxt =
		    AllocSetContextCreate(batch->cxt, "stockx_enrich row", ALLOCSET_SMALL_SIZES);

		stockx_job_init(&batch->jobs[i], &claims[i], row_cxt, (int) (batch - w->batches));
		batch->jobs[i].body_cxt =
		    AllocSetContextCreate(row_cxt, "stockx_enrich answer", ALLOCSET_SMALL_SIZES);
	}
	if (w->leases_due == 0)
		w->leases_due = stockx_mono_now() + (int64) w->config.lease_s * USECS_PER_SEC / 2;
}

/* A row's result is final: it waits for the next commit. */
void
worker_settle_job(Worker *w, StockxJob *j)
{
	w->settled[w->nsettled++] = j;
	if (w->nsettled == 1)
		w->settled_since = stockx_mono_now();
}

/* ---------------------------------------------------------------- requests */

/* Send the job's next request; its slot has been granted. */
static void
send_request(Worker *w, StockxJob *j)
{
	const char *endpoint;
	char *path = stockx_job_path(j, &w->enrich_config, &endpoint);

	j->transfer =
	    stockx_http_get(w->http, path, w->token, stockx_secret(SX_SECRET_API_KEY), j, j->body_cxt);
	j->in_flight = true;
	j->token_generation = w->token_generation;
	w->counters.requests++;
	worker_set_state(w, SX_STATE_REQUESTING, j->claim->sku);
}

/*
 * Abandon a request in flight; a request that left is counted as sent
 * before it is dropped, one that never left gives its slot back.
 */
void
worker_cancel_transfer(Worker *w, StockxTransfer *t)
{
	worker_report_sends(w);
	if (!stockx_transfer_was_sent(t))
		stockx_limiter_unsent();
	stockx_http_cancel(w->http, t);
}

/* Report to the limiter when granted requests really left. */
void
worker_report_sends(Worker *w)
{
	StockxTransfer *t;
	int64 sent_at;
	bool first;

	while ((t = stockx_http_next_sent(w->http, &sent_at, &first)) != NULL)
		if (stockx_transfer_owner(t) != &worker_token_owner)
			stockx_limiter_sent(sent_at, first);
}

/* What looking for a product's row needs and gives back. */
typedef struct OwnerArgs
{
	StockxJob *job;
	char *owner;
} OwnerArgs;

static void
owner_body(Worker *w, void *arg)
{
	OwnerArgs *a = (OwnerArgs *) arg;
	char *owner = stockx_store_product_owner(stockx_job_owner_wanted(a->job), a->job->claim->sku);

	a->owner = owner ? MemoryContextStrdup(a->job->cxt, owner) : NULL;
}

/*
 * A barcode's lookup named its product: when a row holds that product
 * already, the barcode joins it and costs no further request.  A database
 * error leaves the job as it is, for the next turn.
 */
static void
resolve_owner(Worker *w, StockxJob *j)
{
	OwnerArgs a = { j, NULL };
	ErrorData *edata = worker_in_transaction(w, owner_body, &a);

	if (edata != NULL)
	{
		if (worker_ends(edata->sqlerrcode) || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		ereport(LOG, (errmsg("stockx_enrich: could not look for the row of product %s, trying "
		                     "again: %s",
		                     stockx_job_owner_wanted(j), edata->message)));
		FreeErrorData(edata);
		return;
	}
	if (stockx_job_owner_found(j, a.owner) == SX_JOB_SETTLED)
		worker_settle_job(w, j);
}

/*
 * Start the requests of rows that are ready, while there is room in flight
 * and the limiter grants slots.  *timeout_ms shrinks to the next moment
 * something could be sent.
 */
static void
start_requests(Worker *w, long *timeout_ms)
{
	int64 now = stockx_mono_now();
	int naps = 0;
	int b, i;

	if (w->stop != SX_STOP_NONE)
		return;
	for (b = 0; b < SX_MAX_BATCHES; b++)
	{
		Batch *batch = &w->batches[b];

		if (!batch->in_use)
			continue;
		for (i = 0; i < batch->n; i++)
		{
			StockxJob *j = &batch->jobs[i];
			int64 wait_us;

			if (stockx_http_in_flight(w->http) >= w->config.requests_in_flight)
				return;
			if (j->cxt == NULL || j->settled || j->in_flight || j->step == SX_STEP_DONE)
				continue;
			if (stockx_job_owner_wanted(j) != NULL)
			{
				resolve_owner(w, j);
				now = stockx_mono_now();
				if (j->settled)
					continue;
			}
			if (!stockx_job_ready(j, now))
			{
				*timeout_ms = Min(*timeout_ms, (long) ((j->not_before - now) / 1000 + 1));
				continue;
			}
			if (!worker_have_token(w, now))
			{
				*timeout_ms = Min(*timeout_ms, SX_TOKEN_POLL_MS);
				return;
			}
			switch (stockx_limiter_acquire(&wait_us))
			{
				case SX_GO:
					send_request(w, j);
					worker_report_sends(w);
					now = stockx_mono_now();
					naps = 0;
					break;
				case SX_WAIT:
				case SX_PAUSED:
					/*
					 * Latch waits have millisecond resolution: wake up to a
					 * millisecond early and sleep the rest here, so that fast
					 * rates are paced to the microsecond.
					 */
					if (wait_us < 1000 && naps++ < SX_MAX_SHORT_NAPS)
					{
						pg_usleep(wait_us);
						now = stockx_mono_now();
						i--;
						continue;
					}
					*timeout_ms = Min(*timeout_ms, Max((long) (wait_us / 1000), 1L));
					if (stockx_http_in_flight(w->http) == 0)
						worker_set_state(w,
						                 wait_us > 2 * USECS_PER_SEC ? SX_STATE_BACKING_OFF
						                                             : SX_STATE_WAITING_RATE_LIMIT,
						                 j->claim->sku);
					return;
				case SX_REFUSED_CIRCUIT:
					worker_begin_stop(w, SX_STOP_CIRCUIT_OPEN);
					return;
				case SX_REFUSED_QUOTA:
					worker_begin_stop(w, SX_STOP_QUOTA);
					return;
			}
		}
	}
}

/* An answer arrived for a row. */
static void
take_answer(Worker *w, StockxJob *j, StockxTransfer *t)
{
	StockxAnswerInfo info;
	StockxStep step;

	j->in_flight = false;
	j->transfer = NULL;
	if (!stockx_transfer_was_sent(t))
		stockx_limiter_unsent();
	step = stockx_job_answer(j, stockx_transfer_response(t), &w->env, &info);
	stockx_http_release(w->http, t);
	MemoryContextReset(j->body_cxt);

	switch (info.limiter_event)
	{
		case SX_LIMITER_SUCCESS:
			stockx_limiter_success();
			break;
		case SX_LIMITER_RATE_LIMITED:
		{
			int64 pause = stockx_limiter_429(info.retry_after_us);

			w->counters.responses_429++;
			ereport(LOG, (errmsg("stockx_enrich: rate limited endpoint=%s sku=\"%s\" retry=%d/%d "
			                     "wait_ms=" INT64_FORMAT " retry_after_ms=" INT64_FORMAT,
			                     info.endpoint, j->claim->sku, j->retries - (info.retried ? 1 : 0),
			                     w->enrich_config.max_retries, pause / 1000,
			                     info.retry_after_us >= 0 ? info.retry_after_us / 1000 : -1)));
			break;
		}
		case SX_LIMITER_FAILURE:
			stockx_limiter_other_failure();
			break;
	}
	if (info.retried)
		w->counters.retries++;

	switch (step)
	{
		case SX_JOB_NEXT:
			break;
		case SX_JOB_SETTLED:
			worker_settle_job(w, j);
			break;
		case SX_JOB_NEED_TOKEN:
			worker_token_refused(w, j->token_generation);
			break;
		case SX_JOB_BAD_CREDENTIALS:
			strlcpy(w->credentials_error, info.credentials_error, sizeof(w->credentials_error));
			worker_begin_stop(w, SX_STOP_CREDENTIALS);
			break;
	}
}

static void
take_answers(Worker *w)
{
	StockxTransfer *t;

	worker_report_sends(w);
	while ((t = stockx_http_next_done(w->http)) != NULL)
	{
		void *owner = stockx_transfer_owner(t);

		if (owner == &worker_token_owner)
			worker_take_token_answer(w, t);
		else
			take_answer(w, (StockxJob *) owner, t);
	}
}

/* ---------------------------------------------------------------- leases */

/* Collect the claims of the rows in hand that are not settled yet. */
static int
unsettled_jobs(Worker *w, StockxJob **out)
{
	int b, i, n = 0;

	for (b = 0; b < SX_MAX_BATCHES; b++)
	{
		Batch *batch = &w->batches[b];

		if (!batch->in_use)
			continue;
		for (i = 0; i < batch->n; i++)
			if (batch->jobs[i].cxt != NULL && !batch->jobs[i].settled)
				out[n++] = &batch->jobs[i];
	}
	return n;
}

/*
 * Renew the leases of the rows in hand, halfway through their lifetime, so
 * that no other worker takes them over while we wait (a long Retry-After,
 * a backoff); a row found taken over is dropped without being written.
 */
static void
renew_leases(Worker *w)
{
	StockxJob **jobs;
	StockxClaim **claims;
	bool *held;
	int n, i;

	if (w->leases_due == 0 || stockx_mono_now() < w->leases_due)
		return;
	jobs = palloc(sizeof(StockxJob *) * SX_MAX_BATCHES * Max(w->config.batch_size, 1) * 2 + 1);
	n = unsettled_jobs(w, jobs);
	for (i = 0; i < w->nsettled; i++)
		jobs[n++] = w->settled[i];
	claims = palloc(sizeof(StockxClaim *) * (n + 1));
	held = palloc(sizeof(bool) * (n + 1));
	for (i = 0; i < n; i++)
		claims[i] = jobs[i]->claim;
	worker_tx_begin();
	(void) stockx_store_renew_leases(&w->store_config, claims, n, held);
	worker_tx_commit();
	w->leases_due = stockx_mono_now() + (int64) w->config.lease_s * USECS_PER_SEC / 2;

	for (i = 0; i < n; i++)
	{
		StockxJob *j = jobs[i];
		int k;

		if (held[i])
			continue;
		ereport(LOG, (errmsg("stockx_enrich: lost the lease of SKU \"%s\"; its result is not "
		                     "written",
		                     j->claim->sku),
		              errdetail("The lease expired and another worker took the row over.")));
		cancel_request(w, j);
		for (k = 0; k < w->nsettled; k++)
			if (w->settled[k] == j)
				w->settled[k] = w->settled[--w->nsettled];
		worker_job_done(w, j);
	}
}

/* Give back every row in hand that is not written. */
static void
release_rows(Worker *w)
{
	StockxJob **jobs;
	StockxClaim **claims;
	int n, i;

	jobs = palloc(sizeof(StockxJob *) * SX_MAX_BATCHES * Max(w->config.batch_size, 1) * 2 + 1);
	n = unsettled_jobs(w, jobs);
	for (i = 0; i < w->nsettled; i++)
		jobs[n++] = w->settled[i];
	w->nsettled = 0;
	if (n == 0)
		return;
	claims = palloc(sizeof(StockxClaim *) * n);
	for (i = 0; i < n; i++)
	{
		cancel_request(w, jobs[i]);
		claims[i] = jobs[i]->claim;
	}
	worker_tx_begin();
	stockx_store_release(claims, n);
	worker_tx_commit();
	for (i = 0; i < n; i++)
		worker_job_done(w, jobs[i]);
}

/* ---------------------------------------------------------------- stopping */

void
worker_begin_stop(Worker *w, StockxStopReason reason)
{
	int b, i;

	if (w->stop != SX_STOP_NONE)
		return;
	w->stop = reason;
	switch (reason)
	{
		case SX_STOP_STOPPED:
			/* a stop ends everything at once: abandon what is in flight */
			for (b = 0; b < SX_MAX_BATCHES; b++)
				if (w->batches[b].in_use)
					for (i = 0; i < w->batches[b].n; i++)
						cancel_request(w, &w->batches[b].jobs[i]);
			if (w->token_transfer != NULL)
			{
				stockx_http_cancel(w->http, w->token_transfer);
				w->token_transfer = NULL;
				stockx_token_refresh_failed(0);
			}
			break;
		case SX_STOP_QUOTA:
			ereport(
			    LOG,
			    (errmsg("stockx_enrich: daily request quota reached, run " INT64_FORMAT " stops",
			            w->args.run_id),
			     errhint("The limit holds per UTC day and in any 24 hours; stockx_enrich_limiter "
			             "shows when the next request is allowed.")));
			break;
		case SX_STOP_CIRCUIT_OPEN:
			ereport(LOG, (errmsg("stockx_enrich: circuit breaker open after repeated 429 answers, "
			                     "run " INT64_FORMAT " stops",
			                     w->args.run_id),
			              errhint("See stockx_enrich_limiter for when requests may resume.")));
			break;
		case SX_STOP_CREDENTIALS:
			ereport(WARNING, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			                  errmsg("stockx_enrich: StockX refused the credentials: %s",
			                         w->credentials_error),
			                  errhint("Check stockx_enrich.api_key, stockx_enrich.client_id, "
			                          "stockx_enrich.client_secret and stockx_enrich.refresh_token "
			                          "(or stockx_enrich.access_token).")));
			break;
		default:
			break;
	}
}

/* ---------------------------------------------------------------- the loop */

StockxStopReason
worker_loop(Worker *w)
{
	for (;;)
	{
		long timeout_ms = 1000;

		MemoryContextReset(w->loop_cxt);
		MemoryContextSwitchTo(w->loop_cxt);
		worker_check_interrupts(w);
		if (w->stop == SX_STOP_NONE && worker_stop_requested(w))
			worker_begin_stop(w, SX_STOP_STOPPED);

		maybe_claim(w);
		start_requests(w, &timeout_ms);
		if (worker_commit_due(w) && !worker_commit_settled(w))
			break;
		if (w->stop == SX_STOP_NONE)
			renew_leases(w);

		if (stockx_http_in_flight(w->http) == 0)
		{
			if (w->stop != SX_STOP_NONE)
				break;
			if (w->no_more_rows && worker_held_jobs(w, false) == 0)
			{
				w->stop = w->budget_spent ? SX_STOP_MAX_PRODUCTS : SX_STOP_DONE;
				break;
			}
		}
		if (w->nsettled > 0)
			timeout_ms = Min(
			    timeout_ms,
			    (long) ((SX_COMMIT_AFTER_US - (stockx_mono_now() - w->settled_since)) / 1000 + 1));
		if (stockx_http_in_flight(w->http) == 0 && w->state == SX_STATE_REQUESTING)
			worker_set_state(w, SX_STATE_WAITING_RATE_LIMIT, NULL);
		/* answers may have come in already, while requests were being sent */
		if (stockx_http_has_done(w->http))
			timeout_ms = 0;
		/* room for more rows: claim them at once rather than after the wait */
		if (claim_wanted(w) != NULL)
			timeout_ms = 0;
		stockx_http_wait(w->http, Max(timeout_ms, 0),
		                 stockx_wait_event(stockx_http_in_flight(w->http) > 0 ? SX_WAIT_HTTP_ANSWER
		                                   : w->state == SX_STATE_BACKING_OFF ? SX_WAIT_BACKOFF
		                                                                      : SX_WAIT_RATE_SLOT));
		take_answers(w);
	}

	MemoryContextSwitchTo(w->loop_cxt);
	worker_set_state(w, SX_STATE_STOPPING, "");
	if (w->nsettled > 0)
		(void) worker_commit_settled(w);
	release_rows(w);
	return w->stop;
}
