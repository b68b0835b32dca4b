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
#include "settings.h"
#include "shared_limiter.h"
#include "quota.h"
#include "shmem.h"
#include "slots.h"
#include "store.h"
#include "token_cache.h"
#include "worker.h"

#define SX_MAX_BATCHES        2
#define SX_WRITE_ATTEMPTS     4
#define SX_TOKEN_POLL_MS      50
#define SX_COMMIT_AFTER_US    (5 * USECS_PER_SEC)
#define SX_PUBLISH_EVERY_US   (100 * 1000)
#define SX_MAX_LIVE_PIDS      256
#define SX_MAX_SHORT_NAPS     4
#define SX_EVENT_FLUSH_TRIES  5
#define SX_EVENT_FLUSH_NAP_MS 200

typedef struct Batch
{
	bool in_use;
	MemoryContext cxt; /* its claims and jobs */
	StockxJob *jobs;
	int n;
	int live; /* jobs not yet written or given back */
} Batch;

typedef struct Worker
{
	StockxWorkerArgs args;
	StockxWorkerConfig config;
	StockxEnrichConfig enrich_config;
	StockxStoreConfig store_config;
	StockxJobEnv env;
	StockxHttp *http;
	MemoryContext loop_cxt; /* scratch, reset every turn of the loop */

	Batch batches[SX_MAX_BATCHES];
	StockxJob **settled; /* waiting to be written */
	int nsettled;
	int64 settled_since;
	bool no_more_rows;
	StockxStopReason stop; /* SX_STOP_NONE while running */
	char credentials_error[256];
	int64 leases_due;

	/* the access token this worker sends */
	char *token;
	uint64 token_generation;
	int64 token_renew_at;
	bool token_configured; /* stockx_enrich.access_token, not a refreshed one */
	StockxTransfer *token_transfer;
	char *token_refresh_used;
	MemoryContext token_cxt;
	int64 token_retry_at;
	int64 refresh_stale_us; /* a refresh begun this long ago will never end */

	StockxEventQueue events;  /* waiting to be written to stockx_event */
	StockxEventIds event_ids; /* written by the open transaction: NOTIFY after its commit */
	bool events_written;
	MemoryContext notify_cxt; /* event_ids */

	StockxCounters counters; /* requests as they go, outcomes once committed */
	StockxCounters flushed;  /* part already added to stockx_run */
	int64 run_processed;     /* the run's total, as of our last commit */
	StockxWorkerState state;
	const char *sku; /* shown in the status view */
	int64 published_at;
	int64 memory_bytes; /* as of the last checkpoint */
	bool budget_spent;  /* max_products reached */
} Worker;

/* the owner of the token request, to tell it from the rows' requests */
static char token_owner;

static void begin_stop(Worker *w, StockxStopReason reason);
static void maintain_history(Worker *w);
static void notify_events(Worker *w, const StockxEventIds *written);

/* ---------------------------------------------------------------- state */

static double
unit_random(void)
{
	return stockx_random();
}

static void
load_config(Worker *w, bool first)
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

static void
publish(Worker *w, bool checkpoint)
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

static void
set_state(Worker *w, StockxWorkerState state, const char *sku)
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
		publish(w, false);
}

static bool
stop_requested(Worker *w)
{
	return ShutdownRequestPending || stockx_slots_stop_requested(w->args.run_index, w->args.run_id);
}

/* A cancel (pg_cancel_backend) of the worker means: stop this worker. */
static void
check_interrupts(Worker *w)
{
	if (QueryCancelPending)
	{
		QueryCancelPending = false;
		if (w->stop == SX_STOP_NONE)
			begin_stop(w, SX_STOP_STOPPED);
	}
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		(void) stockx_credentials_reload();
		load_config(w, false);
	}
}

/* Sleep up to ms on the latch; false when asked to stop meanwhile. */
static bool
nap(Worker *w, long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
	                 stockx_wait_event(SX_WAIT_BACKOFF));
	ResetLatch(MyLatch);
	check_interrupts(w);
	return !stop_requested(w);
}

/* ---------------------------------------------------------------- transactions */

/* the memory context to come back to after a transaction (commit resets it) */
static MemoryContext tx_caller_cxt = NULL;

static void
tx_begin(void)
{
	tx_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	stockx_store_init();
}

static void
tx_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(tx_caller_cxt);
	pgstat_report_stat(false);
}

/* Roll back whatever is open after an error; returns the error (caller frees). */
static ErrorData *
tx_abort(MemoryContext cxt)
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

/* What a transaction of the worker does, between begin and commit. */
typedef void (*TxBody)(Worker *w, void *arg);

/*
 * Run body(w, arg) in a transaction of its own.  Returns NULL when it
 * committed, else the error (everything rolled back; the caller frees it).
 * Events the body wrote (write_events) are notified once it committed.
 */
static ErrorData *
in_transaction(Worker *w, TxBody body, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData *volatile edata = NULL;

	w->events_written = false;
	PG_TRY();
	{
		tx_begin();
		body(w, arg);
		tx_commit();
	}
	PG_CATCH();
	{
		edata = tx_abort(cxt);
	}
	PG_END_TRY();
	if (edata == NULL && w->events_written)
	{
		w->events_written = false;
		stockx_events_clear(&w->events);
		notify_events(w, &w->event_ids);
	}
	w->events_written = false;
	MemoryContextReset(w->notify_cxt);
	return edata;
}

/*
 * In a transaction body: write the queued events, waiting for stockx_event
 * (as long as lock_timeout allows) or only if it can be had at once.
 */
static void
write_events(Worker *w, bool wait)
{
	w->events_written = stockx_events_write(&w->events, wait, w->notify_cxt, &w->event_ids);
}

/* Errors after which the same write, repeated, may well succeed. */
static bool
is_transient(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_TRANSACTION_ROLLBACK ||
	       sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* Errors after which this worker should not go on. */
static bool
ends_worker(int sqlerrcode)
{
	int category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_INSUFFICIENT_RESOURCES ||
	       category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_INTERNAL_ERROR ||
	       category == ERRCODE_SYSTEM_ERROR;
}

/* ---------------------------------------------------------------- rows */

static int
held_jobs(Worker *w, bool unsettled_only)
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
static void
job_done(Worker *w, StockxJob *j)
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

static void report_sends(Worker *w);

/* Abandon a row's request in flight (its slot may never have been used). */
static void
cancel_request(Worker *w, StockxJob *j)
{
	if (!j->in_flight)
		return;
	/* a request that left must be counted as sent before it is dropped */
	report_sends(w);
	if (!stockx_transfer_was_sent(j->transfer))
		stockx_limiter_unsent();
	stockx_http_cancel(w->http, j->transfer);
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
	if (held_jobs(w, true) >= w->config.requests_in_flight && held_jobs(w, false) > 0)
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

	set_state(w, SX_STATE_CLAIMING, "");
	batch->cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich batch", ALLOCSET_DEFAULT_SIZES);
	a.batch = batch;
	a.limit = limit;
	edata = in_transaction(w, claim_body, &a);
	n = a.n;
	claims = a.claims;
	if (edata != NULL)
	{
		/* a lock timeout or the like: try again on the next turn */
		if (!is_transient(edata->sqlerrcode))
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

/* ---------------------------------------------------------------- the token */

static void
drop_token(Worker *w)
{
	if (w->token != NULL)
	{
		explicit_bzero(w->token, strlen(w->token));
		pfree(w->token);
	}
	w->token = NULL;
	w->token_configured = false;
}

static void
keep_token(Worker *w, const char *token, uint64 generation, int64 renew_at, bool configured)
{
	drop_token(w);
	w->token = MemoryContextStrdup(TopMemoryContext, token);
	w->token_generation = generation;
	w->token_renew_at = renew_at;
	w->token_configured = configured;
}

/* Ask the token endpoint for a fresh access token (for the whole cluster). */
static void
start_token_request(Worker *w)
{
	const char *configured = stockx_secret(SX_SECRET_REFRESH_TOKEN);
	char refresh[4096];
	char *fields[3];
	char *form;
	int i;

	if (!stockx_token_refresh_secret(configured, refresh, sizeof(refresh)))
	{
		stockx_token_refresh_failed(0);
		snprintf(w->credentials_error, sizeof(w->credentials_error),
		         "the refresh token is missing or too long");
		begin_stop(w, SX_STOP_CREDENTIALS);
		return;
	}
	fields[0] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_ID));
	fields[1] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_SECRET));
	fields[2] = stockx_http_escape(refresh);
	form = psprintf("grant_type=refresh_token&audience=gateway.stockx.com&client_id=%s"
	                "&client_secret=%s&refresh_token=%s",
	                fields[0], fields[1], fields[2]);
	if (w->token_refresh_used)
	{
		explicit_bzero(w->token_refresh_used, strlen(w->token_refresh_used));
		pfree(w->token_refresh_used);
	}
	w->token_refresh_used = MemoryContextStrdup(TopMemoryContext, refresh);
	w->token_transfer = stockx_http_post_token(w->http, form, &token_owner, w->token_cxt);
	explicit_bzero(form, strlen(form));
	pfree(form);
	for (i = 0; i < 3; i++)
	{
		explicit_bzero(fields[i], strlen(fields[i]));
		pfree(fields[i]);
	}
	explicit_bzero(refresh, sizeof(refresh));
}

/*
 * Is there a token to send right now?  If not, start or wait for a
 * refresh (ours, or another worker's for the whole cluster).
 */
static bool
have_token(Worker *w, int64 now)
{
	char buf[8192];
	uint64 generation;
	int64 renew_at;
	const char *configured = stockx_secret(SX_SECRET_ACCESS_TOKEN);

	if (w->token != NULL)
	{
		if (w->token_configured ? !stockx_token_static_refused(w->token) : now < w->token_renew_at)
			return true;
		drop_token(w);
	}
	if (stockx_token_get(buf, sizeof(buf), &generation, &renew_at))
	{
		keep_token(w, buf, generation, renew_at, false);
		explicit_bzero(buf, sizeof(buf));
		return true;
	}
	if (configured != NULL && !stockx_token_static_refused(configured))
	{
		keep_token(w, configured, 0, INT64_MAX, true);
		return true;
	}
	if (w->token_transfer != NULL || now < w->token_retry_at)
		return false;
	if (stockx_secret(SX_SECRET_REFRESH_TOKEN) == NULL ||
	    stockx_secret(SX_SECRET_CLIENT_ID) == NULL ||
	    stockx_secret(SX_SECRET_CLIENT_SECRET) == NULL)
	{
		snprintf(w->credentials_error, sizeof(w->credentials_error),
		         "the access token was refused and no refresh token is configured");
		begin_stop(w, SX_STOP_CREDENTIALS);
		return false;
	}
	if (stockx_token_begin_refresh(w->refresh_stale_us) == SX_REFRESH_MINE)
		start_token_request(w);
	return false;
}

/* A row's result is final: it waits for the next commit. */
static void
settle_job(Worker *w, StockxJob *j)
{
	w->settled[w->nsettled++] = j;
	if (w->nsettled == 1)
		w->settled_since = stockx_mono_now();
}

/* Jobs that waited for a token the endpoint could not give: a transient failure each. */
static void
token_unavailable(Worker *w, const char *error)
{
	int b, i;

	for (b = 0; b < SX_MAX_BATCHES; b++)
	{
		Batch *batch = &w->batches[b];

		if (!batch->in_use)
			continue;
		for (i = 0; i < batch->n; i++)
		{
			StockxJob *j = &batch->jobs[i];

			if (j->cxt == NULL || j->settled || j->in_flight || j->step == SX_STEP_DONE)
				continue;
			if (stockx_job_transient(j, error, &w->env) == SX_JOB_SETTLED)
				settle_job(w, j);
		}
	}
}

/* The token endpoint answered. */
static void
take_token_answer(Worker *w, StockxTransfer *t)
{
	const StockxResponse *resp = stockx_transfer_response(t);
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = w->token_cxt };
	SxToken token;
	char parse_err[SX_ERRBUF_SIZE];
	char error[300];
	bool rejected = false;

	w->token_transfer = NULL;
	error[0] = '\0';
	if (resp->transport != SX_TRANSPORT_OK)
		snprintf(error, sizeof(error), "token request failed: %s", resp->error);
	else if (resp->status != 200)
	{
		char msg[200];

		sx_parse_error_message(resp->body, resp->body_len, msg, sizeof(msg));
		snprintf(error, sizeof(error), "token endpoint answered HTTP %ld%s%s", resp->status,
		         msg[0] ? ": " : "", msg);
		rejected = resp->status >= 400 && resp->status < 500 && resp->status != 429;
	}
	else if (sx_parse_token(resp->body, resp->body_len, &alloc, &token, parse_err) != SX_PARSE_OK)
		snprintf(error, sizeof(error), "token answer unusable: %s", parse_err);
	else if (!stockx_secret_is_clean(token.access_token) ||
	         (token.refresh_token != NULL && !stockx_secret_is_clean(token.refresh_token)))
		snprintf(error, sizeof(error),
		         "token answer unusable: the token contains control characters");
	else
	{
		uint64 generation;
		int64 renew_at;
		char why[300];

		(void) stockx_token_publish(token.access_token, token.expires_in, w->token_refresh_used,
		                            token.refresh_token, &generation, &renew_at);
		keep_token(w, token.access_token, generation, renew_at, false);
		if (token.refresh_token != NULL)
		{
			if (stockx_credentials_save_refresh_token(token.refresh_token, why, sizeof(why)))
				ereport(LOG, (errmsg("stockx_enrich: StockX rotated the refresh token; the new one "
				                     "is saved in stockx_enrich.credentials_file")));
			else
				ereport(WARNING,
				        (errmsg("stockx_enrich: StockX rotated the refresh token, but the new one "
				                "could not be persisted"),
				         errdetail("%s. Until the server restarts, every worker uses the new token "
				                   "from shared memory.",
				                   why),
				         errhint("Keep the secrets in stockx_enrich.credentials_file (writable by "
				                 "the server) so that rotated tokens are saved there.")));
		}
	}
	/* no copy of a token stays behind in the answer's memory */
	if (resp->body != NULL)
		explicit_bzero(resp->body, resp->body_len);
	stockx_http_release(w->http, t);
	MemoryContextReset(w->token_cxt);

	if (error[0] == '\0')
		return;
	if (rejected)
	{
		stockx_token_refresh_failed(0);
		strlcpy(w->credentials_error, error, sizeof(w->credentials_error));
		begin_stop(w, SX_STOP_CREDENTIALS);
		return;
	}
	{
		int64 backoff = sx_backoff_us(w->enrich_config.backoff_base_ms,
		                              w->enrich_config.backoff_max_ms, 0, stockx_random());

		stockx_token_refresh_failed(backoff);
		w->token_retry_at = stockx_mono_now() + backoff;
		token_unavailable(w, error);
	}
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
	set_state(w, SX_STATE_REQUESTING, j->claim->sku);
}

/* Report to the limiter when granted requests really left. */
static void
report_sends(Worker *w)
{
	StockxTransfer *t;
	int64 sent_at;
	bool first;

	while ((t = stockx_http_next_sent(w->http, &sent_at, &first)) != NULL)
		if (stockx_transfer_owner(t) != &token_owner)
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
	ErrorData *edata = in_transaction(w, owner_body, &a);

	if (edata != NULL)
	{
		if (ends_worker(edata->sqlerrcode) || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		ereport(LOG, (errmsg("stockx_enrich: could not look for the row of product %s, trying "
		                     "again: %s",
		                     stockx_job_owner_wanted(j), edata->message)));
		FreeErrorData(edata);
		return;
	}
	if (stockx_job_owner_found(j, a.owner) == SX_JOB_SETTLED)
		settle_job(w, j);
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
			if (!have_token(w, now))
			{
				*timeout_ms = Min(*timeout_ms, SX_TOKEN_POLL_MS);
				return;
			}
			switch (stockx_limiter_acquire(&wait_us))
			{
				case SX_GO:
					send_request(w, j);
					report_sends(w);
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
						set_state(w,
						          wait_us > 2 * USECS_PER_SEC ? SX_STATE_BACKING_OFF
						                                      : SX_STATE_WAITING_RATE_LIMIT,
						          j->claim->sku);
					return;
				case SX_REFUSED_CIRCUIT:
					begin_stop(w, SX_STOP_CIRCUIT_OPEN);
					return;
				case SX_REFUSED_QUOTA:
					begin_stop(w, SX_STOP_QUOTA);
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
			settle_job(w, j);
			break;
		case SX_JOB_NEED_TOKEN:
			/* the token it carried is refused: nobody should send it again */
			if (w->token != NULL && w->token_generation == j->token_generation)
			{
				if (w->token_configured)
					stockx_token_refuse_static(w->token);
				else
					stockx_token_invalidate(w->token_generation);
				drop_token(w);
			}
			break;
		case SX_JOB_BAD_CREDENTIALS:
			strlcpy(w->credentials_error, info.credentials_error, sizeof(w->credentials_error));
			begin_stop(w, SX_STOP_CREDENTIALS);
			break;
	}
}

static void
take_answers(Worker *w)
{
	StockxTransfer *t;

	report_sends(w);
	while ((t = stockx_http_next_done(w->http)) != NULL)
	{
		void *owner = stockx_transfer_owner(t);

		if (owner == &token_owner)
			take_token_answer(w, t);
		else
			take_answer(w, (StockxJob *) owner, t);
	}
}

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
	write_events(w, false);
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
	edata = in_transaction(w, write_body, &a);
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
			begin_stop(w, SX_STOP_STOPPED);
			FreeErrorData(edata);
			return false;
		}
		if (ends_worker(edata->sqlerrcode) ||
		    (is_transient(edata->sqlerrcode) && attempt == SX_WRITE_ATTEMPTS))
			ReThrowError(edata);
		if (!is_transient(edata->sqlerrcode))
			break;
		ereport(LOG, (errmsg("stockx_enrich: writing the results of %d products failed, trying "
		                     "again (%d of %d): %s",
		                     n, attempt, SX_WRITE_ATTEMPTS - 1, edata->message)));
		FreeErrorData(edata);
		if (!nap(w, 100L * attempt))
		{
			begin_stop(w, SX_STOP_STOPPED);
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
		if (is_transient(edata->sqlerrcode) || edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		    ends_worker(edata->sqlerrcode))
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
static bool
commit_settled(Worker *w)
{
	int n = w->nsettled;
	bool ok;
	int i;

	if (n == 0)
		return true;
	set_state(w, SX_STATE_COMMITTING, NULL);
	maintain_history(w);
	ok = write_settled(w, w->settled, n);
	if (!ok)
		return false;
	for (i = 0; i < n; i++)
		job_done(w, w->settled[i]);
	w->nsettled = 0;
	publish(w, true);
	log_checkpoint(w);
	return true;
}

static bool
commit_due(Worker *w)
{
	if (w->nsettled == 0)
		return false;
	return w->nsettled >= w->config.commit_every || held_jobs(w, true) == 0 ||
	       w->stop != SX_STOP_NONE || stockx_mono_now() - w->settled_since > SX_COMMIT_AFTER_US;
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
	tx_begin();
	(void) stockx_store_renew_leases(&w->store_config, claims, n, held);
	tx_commit();
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
		job_done(w, j);
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
	tx_begin();
	stockx_store_release(claims, n);
	tx_commit();
	for (i = 0; i < n; i++)
		job_done(w, jobs[i]);
}

/* ---------------------------------------------------------------- stopping */

static void
begin_stop(Worker *w, StockxStopReason reason)
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

static StockxStopReason
run(Worker *w)
{
	for (;;)
	{
		long timeout_ms = 1000;

		MemoryContextReset(w->loop_cxt);
		MemoryContextSwitchTo(w->loop_cxt);
		check_interrupts(w);
		if (w->stop == SX_STOP_NONE && stop_requested(w))
			begin_stop(w, SX_STOP_STOPPED);

		maybe_claim(w);
		start_requests(w, &timeout_ms);
		if (commit_due(w) && !commit_settled(w))
			break;
		if (w->stop == SX_STOP_NONE)
			renew_leases(w);

		if (stockx_http_in_flight(w->http) == 0)
		{
			if (w->stop != SX_STOP_NONE)
				break;
			if (w->no_more_rows && held_jobs(w, false) == 0)
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
			set_state(w, SX_STATE_WAITING_RATE_LIMIT, NULL);
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
	set_state(w, SX_STATE_STOPPING, "");
	if (w->nsettled > 0)
		(void) commit_settled(w);
	release_rows(w);
	return w->stop;
}

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
static void
maintain_history(Worker *w)
{
	ErrorData *edata;

	if (!stockx_store_history_due())
		return;
	edata = in_transaction(w, maintain_history_body, NULL);
	if (edata == NULL)
		return;
	if (ends_worker(edata->sqlerrcode))
		ReThrowError(edata);
	ereport(
	    WARNING,
	    (errmsg("stockx_enrich: could not look after the partitions of stockx_price_history: %s",
	            edata->message),
	     errhint("Run SELECT stockx_price_history_maintain() as the extension's owner.")));
	FreeErrorData(edata);
}

static void
prepare_run_body(Worker *w, void *arg)
{
	int64 active[64];
	int nactive = stockx_slots_active_runs(w->args.database, active, lengthof(active));

	stockx_store_ensure_run(w->args.run_id, w->args.workers, w->args.max_products,
	                        w->args.started_at);
	stockx_store_close_orphan_runs(active, nactive, &w->events);
	write_events(w, false);
	stockx_store_prune_runs(w->store_config.run_retention_s);
	stockx_store_prune_events(w->store_config.event_retention_s);
	stockx_quota_restore();
}

/* The worker's first transaction: the run row, orphans of crashes, the quota. */
static void
prepare_run(Worker *w)
{
	ErrorData *edata = in_transaction(w, prepare_run_body, NULL);

	if (edata != NULL)
		ReThrowError(edata);
	maintain_history(w);
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
static void
notify_events(Worker *w, const StockxEventIds *written)
{
	ErrorData *edata;

	if (written->n == 0)
		return;
	edata = in_transaction(w, notify_body, (void *) written);
	if (edata == NULL)
		return;
	if (ends_worker(edata->sqlerrcode))
		ReThrowError(edata);
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		begin_stop(w, SX_STOP_STOPPED);
	else
		ereport(LOG, (errmsg("stockx_enrich: could not notify listeners of %d new events: %s",
		                     written->n, edata->message),
		              errhint("The events are in stockx_event; consumers read them with "
		                      "stockx_events_since().")));
	FreeErrorData(edata);
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
	write_events(w, true);
}

/* Add our last counters to stockx_run; false (error reported) if that failed. */
static bool
flush_counters(Worker *w)
{
	ErrorData *edata = in_transaction(w, flush_counters_body, NULL);

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
	write_events(w, true);
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
		edata = in_transaction(w, flush_events_body, NULL);
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
	write_events(w, true);
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

	set_state(w, SX_STATE_STOPPING, "");
	if (!flush_counters(w))
		reason = SX_STOP_ERROR;
	final_reason = stockx_slots_finish(w->args.slot, reason, &last);
	if (last)
	{
		ErrorData *edata = in_transaction(w, close_run_body, &final_reason);

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
	w->settled =
	    MemoryContextAllocZero(TopMemoryContext, sizeof(StockxJob *) * SX_MAX_BATCHES * 1000 + 1);
	cxt = AllocSetContextCreate(TopMemoryContext, "stockx_enrich worker", ALLOCSET_SMALL_SIZES);
	stockx_events_init(&w->events, TopMemoryContext);
	w->notify_cxt =
	    AllocSetContextCreate(TopMemoryContext, "stockx_enrich notify", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		stockx_credentials_load();
		load_config(w, true);
		/* starting: show the worker's memory from the first moment */
		publish(w, false);
		prepare_run(w);
		reason = run(w);
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
		edata = tx_abort(cxt);
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
	drop_token(w);
	finish(w, reason);
	proc_exit(0);
}
