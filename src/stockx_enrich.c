/*-------------------------------------------------------------------------
 * stockx_enrich.c
 *	  Module entry: _PG_init, the stockx_enrich.* settings, and the SQL
 *	  functions stockx_enrich_start/stop/wait and the shared-memory readers
 *	  behind the status views.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "credentials.h"
#include "stockx_client.h"
#include "stockx_enrich.h"
#include "store.h"
#include "worker_args.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* Settings; see the README for what each one does. */
char *stockx_api_base_url = NULL;
char *stockx_token_url = NULL;
char *stockx_api_key = NULL;
char *stockx_client_id = NULL;
char *stockx_client_secret = NULL;
char *stockx_refresh_token = NULL;
char *stockx_access_token = NULL;
char *stockx_credentials_file = NULL;
double stockx_requests_per_second = 1.0;
int stockx_burst = 1;
int stockx_daily_request_limit = 25000;
int stockx_batch_size = 10;
int stockx_commit_every = 5;
int stockx_max_retries = 3;
int stockx_backoff_base_ms = 2000;
int stockx_backoff_max_ms = 60000;
int stockx_max_attempts = 5;
int stockx_request_timeout_ms = 30000;
int stockx_connect_timeout_ms = 5000;
int stockx_max_response_bytes = 8 * 1024 * 1024;
char *stockx_currency_code = NULL;
int stockx_refresh_after_s = 0;
int stockx_circuit_threshold = 5;
int stockx_circuit_open_ms = 15 * 60 * 1000;
int stockx_max_workers = 4;
int stockx_memory_alert_bytes = 64 * 1024 * 1024;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(stockx_enrich_start);
PG_FUNCTION_INFO_V1(stockx_enrich_stop);
PG_FUNCTION_INFO_V1(stockx_enrich_wait);
PG_FUNCTION_INFO_V1(stockx_enrich_worker_status);
PG_FUNCTION_INFO_V1(stockx_enrich_limiter_state);

/* Secrets show as a mask to everybody but superusers. */
static const char *
show_secret(const char *value)
{
	if (value == NULL || value[0] == '\0')
		return "";
	return superuser() ? value : "********";
}

static const char *
show_api_key(void)
{
	return show_secret(stockx_api_key);
}

static const char *
show_client_id(void)
{
	return show_secret(stockx_client_id);
}

static const char *
show_client_secret(void)
{
	return show_secret(stockx_client_secret);
}

static const char *
show_refresh_token(void)
{
	return show_secret(stockx_refresh_token);
}

static const char *
show_access_token(void)
{
	return show_secret(stockx_access_token);
}

static bool
check_url(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL ||
	    (strncmp(*newval, "https://", 8) != 0 && strncmp(*newval, "http://", 7) != 0))
	{
		GUC_check_errdetail("The URL must start with https:// or http://.");
		return false;
	}
	return true;
}

static bool
check_currency(char **newval, void **extra, GucSource source)
{
	static const char *const codes[] = { "AUD", "CAD", "CHF", "EUR", "GBP", "HKD",
		                                 "JPY", "KRW", "MXN", "NZD", "SGD", "USD" };
	int i;

	for (i = 0; i < (int) lengthof(codes); i++)
		if (*newval && strcmp(*newval, codes[i]) == 0)
			return true;
	GUC_check_errdetail(
	    "StockX accepts AUD, CAD, CHF, EUR, GBP, HKD, JPY, KRW, MXN, NZD, SGD and USD.");
	return false;
}

static void
define_secret(const char *name, const char *desc, char **var, GucShowHook show)
{
	DefineCustomStringVariable(name, desc, NULL, var, "", PGC_SIGHUP,
	                           GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL, show);
}

static void
define_settings(void)
{
	DefineCustomStringVariable(
	    "stockx_enrich.api_base_url", "Base URL of the StockX API, version included.", NULL,
	    &stockx_api_base_url, "https://api.stockx.com/v2", PGC_SIGHUP, 0, check_url, NULL, NULL);
	DefineCustomStringVariable("stockx_enrich.token_url",
	                           "OAuth token endpoint used to refresh the access token.", NULL,
	                           &stockx_token_url, "https://accounts.stockx.com/oauth/token",
	                           PGC_SIGHUP, 0, check_url, NULL, NULL);
	define_secret("stockx_enrich.api_key", "StockX API key (x-api-key header).", &stockx_api_key,
	              show_api_key);
	define_secret("stockx_enrich.client_id", "OAuth client id.", &stockx_client_id, show_client_id);
	define_secret("stockx_enrich.client_secret", "OAuth client secret.", &stockx_client_secret,
	              show_client_secret);
	define_secret("stockx_enrich.refresh_token", "OAuth refresh token.", &stockx_refresh_token,
	              show_refresh_token);
	define_secret("stockx_enrich.access_token", "A ready access token, used until it is refused.",
	              &stockx_access_token, show_access_token);
	DefineCustomStringVariable(
	    "stockx_enrich.credentials_file",
	    "File with the StockX secrets (key = value lines); overrides the secret settings.", NULL,
	    &stockx_credentials_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL,
	    NULL, NULL);

	DefineCustomRealVariable(
	    "stockx_enrich.requests_per_second", "Requests per second for the whole cluster.", NULL,
	    &stockx_requests_per_second, 1.0, 0.001, 1000.0, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.burst",
	                        "Requests that may go at once before the rate applies.", NULL,
	                        &stockx_burst, 1, 1, 100, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.daily_request_limit",
	                        "Requests per UTC day for the whole cluster (0 = no limit).", NULL,
	                        &stockx_daily_request_limit, 25000, 0, INT_MAX, PGC_SIGHUP, 0, NULL,
	                        NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.batch_size", "Products a worker claims at a time.", NULL,
	                        &stockx_batch_size, 10, 1, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.commit_every", "Products written per commit.", NULL,
	                        &stockx_commit_every, 5, 1, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.max_retries",
	                        "Retries of one request after 429, 5xx or network errors.", NULL,
	                        &stockx_max_retries, 3, 0, 20, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.backoff_base_ms", "Base of the exponential backoff.",
	                        NULL, &stockx_backoff_base_ms, 2000, 1, 3600 * 1000, PGC_SIGHUP,
	                        GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.backoff_max_ms", "Cap of the exponential backoff.", NULL,
	                        &stockx_backoff_max_ms, 60000, 1, 24 * 3600 * 1000, PGC_SIGHUP,
	                        GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.max_attempts",
	                        "Attempts per product before it is marked failed.", NULL,
	                        &stockx_max_attempts, 5, 1, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.request_timeout_ms",
	                        "Total timeout of one HTTP request.", NULL, &stockx_request_timeout_ms,
	                        30000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.connect_timeout_ms",
	                        "Connect timeout of one HTTP request.", NULL,
	                        &stockx_connect_timeout_ms, 5000, 100, 600 * 1000, PGC_SIGHUP,
	                        GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.max_response_bytes", "Largest response body accepted.",
	                        NULL, &stockx_max_response_bytes, 8 * 1024 * 1024, 1024,
	                        256 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomStringVariable("stockx_enrich.currency_code", "Currency of market data.", NULL,
	                           &stockx_currency_code, "USD", PGC_SIGHUP, 0, check_currency, NULL,
	                           NULL);
	DefineCustomIntVariable(
	    "stockx_enrich.refresh_after",
	    "Age after which an enriched product's market data is refreshed (0 = never).", NULL,
	    &stockx_refresh_after_s, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.circuit_threshold",
	                        "Consecutive 429 answers that open the circuit (0 = never).", NULL,
	                        &stockx_circuit_threshold, 5, 0, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(
	    "stockx_enrich.circuit_open_ms",
	    "How long an open circuit refuses requests; doubles on repeated trips up to 24 hours.",
	    NULL, &stockx_circuit_open_ms, 15 * 60 * 1000, 1, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
	    NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.max_workers",
	                        "Worker slots in shared memory for the whole cluster.", NULL,
	                        &stockx_max_workers, 4, 1, 64, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("stockx_enrich.memory_alert_bytes",
	                        "Worker memory above which stockx_enrich_alerts reports it.", NULL,
	                        &stockx_memory_alert_bytes, 64 * 1024 * 1024, 1024 * 1024, INT_MAX,
	                        PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	MarkGUCPrefixReserved("stockx_enrich");
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	stockx_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	stockx_shmem_startup();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("stockx_enrich must be loaded via shared_preload_libraries"),
		                errhint("Add stockx_enrich to shared_preload_libraries in postgresql.conf "
		                        "and restart the server.")));

	define_settings();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

static int64
active_run_of_database(Oid database)
{
	int i;

	for (i = 0; i < stockx_shared->nslots; i++)
	{
		StockxRunSlot *run = &stockx_shared->runs[i];

		if (run->in_use && run->database == database)
			return run->run_id;
	}
	return 0;
}

static void
refuse_if_limited(void)
{
	SxLimiter snap;
	SxLimiterConfig cfg;
	int64 now = stockx_now_us();

	stockx_store_load_quota();
	stockx_limiter_config(&cfg);
	stockx_limiter_snapshot(&snap);
	if (sx_limiter_circuit_refuses(&snap, now))
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("StockX circuit breaker is open until %s",
		                timestamptz_to_str(stockx_timestamp_from_us(snap.circuit_open_until))),
		         errdetail("StockX answered HTTP 429 %d times in a row; sending more could get the "
		                   "account blocked.",
		                   snap.consecutive_429),
		         errhint("Call stockx_enrich_start() again after that time; one probe request will "
		                 "then decide.")));
	if (sx_limiter_quota_spent(&snap, &cfg, now))
		ereport(
		    ERROR,
		    (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		     errmsg("daily StockX request quota is spent (" INT64_FORMAT " of " INT64_FORMAT
		            " requests)",
		            snap.requests_today, cfg.daily_limit),
		     errhint("The quota resets at %s (00:00 UTC); see stockx_enrich.daily_request_limit.",
		             timestamptz_to_str(stockx_timestamp_from_us(sx_quota_resets_at(&snap))))));
}

/* Register one worker for slot; false if the postmaster has no room. */
static bool
launch_worker(int slot, StockxWorkerArgs *args)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	pid_t pid;
	BgwHandleStatus status;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "stockx_enrich", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "stockx_enrich_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "stockx_enrich worker (run " INT64_FORMAT ")", args->run_id);
	strlcpy(bgw.bgw_type, "stockx_enrich worker", BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(slot);
	memcpy(bgw.bgw_extra, args, sizeof(*args));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return false;
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(ERROR, (errcode(ERRCODE_ADMIN_SHUTDOWN),
		                errmsg("postmaster exited while starting stockx_enrich workers")));

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	if (status == BGWH_STARTED && stockx_shared->workers[slot].pid == 0)
		stockx_shared->workers[slot].pid = pid;
	LWLockRelease(stockx_shared->slots_lock);
	return true;
}

/* Free a reserved slot whose worker never attached. */
static void
release_unstarted_slot(int slot)
{
	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	if (stockx_shared->workers[slot].in_use && stockx_shared->workers[slot].pid == 0)
		memset(&stockx_shared->workers[slot], 0, sizeof(StockxWorkerSlot));
	LWLockRelease(stockx_shared->slots_lock);
}

Datum
stockx_enrich_start(PG_FUNCTION_ARGS)
{
	int workers = PG_ARGISNULL(0) ? 1 : PG_GETARG_INT32(0);
	int64 max_products = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	const char *missing;
	int64 run_id;
	int run_index = -1;
	int slots[64];
	int nslots = 0;
	int launched = 0;
	int i;
	StockxWorkerArgs args;

	stockx_check_shared();
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
		                errmsg("cannot start stockx_enrich workers during recovery"),
		                errhint("Run stockx_enrich_start() on the primary server.")));
	if (workers < 1 || workers > stockx_max_workers)
		ereport(
		    ERROR,
		    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		     errmsg("workers must be between 1 and %d", stockx_max_workers),
		     errhint(
		         "stockx_enrich.max_workers sets the upper bound; changing it needs a restart.")));
	if (!PG_ARGISNULL(1) && max_products < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("max_products must be at least 1"),
		                errhint("Pass NULL to process every due product.")));

	/* a run already active in this database: hand back its id */
	LWLockAcquire(stockx_shared->slots_lock, LW_SHARED);
	run_id = active_run_of_database(MyDatabaseId);
	LWLockRelease(stockx_shared->slots_lock);
	if (run_id != 0)
		PG_RETURN_INT64(run_id);

	stockx_credentials_load();
	if (!stockx_credentials_configured(&missing))
		ereport(
		    ERROR,
		    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		     errmsg("StockX credentials are not configured"), errdetail("Missing: %s.", missing),
		     errhint(
		         "Set them with ALTER SYSTEM SET and SELECT pg_reload_conf(); see the README.")));

	SPI_connect();
	stockx_store_init();
	refuse_if_limited();
	run_id = stockx_store_next_run_id();

	/* reserve a run slot and the worker slots, or find the run that beat us */
	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	{
		int64 existing = active_run_of_database(MyDatabaseId);

		if (existing != 0)
		{
			LWLockRelease(stockx_shared->slots_lock);
			SPI_finish();
			PG_RETURN_INT64(existing);
		}
	}
	for (i = 0; i < stockx_shared->nslots; i++)
	{
		if (!stockx_shared->runs[i].in_use)
		{
			run_index = i;
			break;
		}
	}
	for (i = 0; i < stockx_shared->nslots && nslots < workers; i++)
		if (!stockx_shared->workers[i].in_use)
			slots[nslots++] = i;
	if (run_index < 0 || nslots < workers)
	{
		LWLockRelease(stockx_shared->slots_lock);
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                errmsg("only %d of the %d stockx_enrich worker slots are free", nslots,
		                       stockx_shared->nslots),
		                errhint("Runs in other databases use the rest; start fewer workers or "
		                        "raise stockx_enrich.max_workers.")));
	}
	{
		StockxRunSlot *run = &stockx_shared->runs[run_index];

		memset(run, 0, sizeof(*run));
		run->in_use = true;
		run->database = MyDatabaseId;
		run->run_id = run_id;
		run->max_products = max_products;
	}
	for (i = 0; i < nslots; i++)
	{
		StockxWorkerSlot *w = &stockx_shared->workers[slots[i]];

		memset(w, 0, sizeof(*w));
		w->in_use = true;
		w->database = MyDatabaseId;
		w->run_id = run_id;
		w->run_index = run_index;
		w->state = SX_STATE_STARTING;
		w->started_at = GetCurrentTimestamp();
	}
	LWLockRelease(stockx_shared->slots_lock);

	/* no worker of this database is alive: unfinished runs were interrupted */
	stockx_store_fail_orphan_runs();
	stockx_store_insert_run(run_id, workers, max_products);
	SPI_finish();

	args.database = MyDatabaseId;
	args.role = GetUserId();
	args.run_id = run_id;
	args.run_index = run_index;
	for (i = 0; i < nslots; i++)
	{
		if (launch_worker(slots[i], &args))
			launched++;
		else
			release_unstarted_slot(slots[i]);
	}
	if (launched == 0)
	{
		LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
		memset(&stockx_shared->runs[run_index], 0, sizeof(StockxRunSlot));
		LWLockRelease(stockx_shared->slots_lock);
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                errmsg("could not register stockx_enrich background workers"),
		                errhint("Raise max_worker_processes (needs a restart).")));
	}
	if (launched < workers)
		ereport(WARNING, (errmsg("started %d of %d stockx_enrich workers", launched, workers),
		                  errhint("Raise max_worker_processes (needs a restart).")));
	PG_RETURN_INT64(run_id);
}

Datum
stockx_enrich_stop(PG_FUNCTION_ARGS)
{
	int timeout_ms = PG_GETARG_INT32(0);
	int pids[64];
	int before;
	int i;
	TimestampTz deadline;

	stockx_check_shared();
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("timeout_ms must not be negative")));

	LWLockAcquire(stockx_shared->slots_lock, LW_EXCLUSIVE);
	for (i = 0; i < stockx_shared->nslots; i++)
		if (stockx_shared->runs[i].in_use && stockx_shared->runs[i].database == MyDatabaseId)
			stockx_shared->runs[i].stop_requested = true;
	LWLockRelease(stockx_shared->slots_lock);

	before = stockx_worker_slots(MyDatabaseId, 0, pids, (int) lengthof(pids));
	for (i = 0; i < Min(before, (int) lengthof(pids)); i++)
		if (pids[i] != 0)
			kill(pids[i], SIGTERM);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	while (stockx_worker_slots(MyDatabaseId, 0, NULL, 0) > 0 && GetCurrentTimestamp() < deadline)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20L,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	PG_RETURN_INT32(before - stockx_worker_slots(MyDatabaseId, 0, NULL, 0));
}

Datum
stockx_enrich_wait(PG_FUNCTION_ARGS)
{
	int64 run_id = PG_GETARG_INT64(0);
	int timeout_ms = PG_GETARG_INT32(1);
	TimestampTz deadline;
	char *reason;

	stockx_check_shared();
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("timeout_ms must not be negative")));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	while (stockx_worker_slots(MyDatabaseId, run_id, NULL, 0) > 0)
	{
		if (GetCurrentTimestamp() >= deadline)
			PG_RETURN_NULL();
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50L,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	SPI_connect();
	stockx_store_init();
	reason = stockx_store_run_reason(run_id);
	SPI_finish();
	if (reason == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(reason));
}

static Datum
timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

Datum
stockx_enrich_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StockxWorkerSlot *copy;
	int n = 0;
	int i;

	stockx_check_shared();
	InitMaterializedSRF(fcinfo, 0);

	/* copy under the lock, build tuples after */
	copy = palloc(sizeof(StockxWorkerSlot) * stockx_shared->nslots);
	LWLockAcquire(stockx_shared->slots_lock, LW_SHARED);
	for (i = 0; i < stockx_shared->nslots; i++)
		if (stockx_shared->workers[i].in_use)
			copy[n++] = stockx_shared->workers[i];
	LWLockRelease(stockx_shared->slots_lock);

	for (i = 0; i < n; i++)
	{
		StockxWorkerSlot *w = &copy[i];
		Datum values[15];
		bool nulls[15] = { 0 };

		values[0] = Int32GetDatum(w->pid);
		nulls[0] = (w->pid == 0);
		values[1] = ObjectIdGetDatum(w->database);
		values[2] = Int64GetDatum(w->run_id);
		values[3] = CStringGetTextDatum(stockx_worker_state_name(w->state));
		values[4] = CStringGetTextDatum(w->current_sku);
		nulls[4] = (w->current_sku[0] == '\0');
		values[5] = Int64GetDatum(w->counters.processed);
		values[6] = Int64GetDatum(w->counters.enriched);
		values[7] = Int64GetDatum(w->counters.not_found);
		values[8] = Int64GetDatum(w->counters.failed);
		values[9] = Int64GetDatum(w->counters.requests);
		values[10] = Int64GetDatum(w->counters.responses_429);
		values[11] = Int64GetDatum(w->counters.retries);
		values[12] = timestamp_or_null(w->started_at, &nulls[12]);
		values[13] = timestamp_or_null(w->last_checkpoint_at, &nulls[13]);
		values[14] = Int64GetDatum(w->memory_bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
stockx_enrich_limiter_state(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	SxLimiter snap;
	SxLimiterConfig cfg;
	Datum values[11];
	bool nulls[11] = { 0 };
	int64 now = stockx_now_us();
	const char *circuit;

	stockx_check_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	stockx_limiter_config(&cfg);
	stockx_limiter_snapshot(&snap);

	if (snap.circuit == SX_CIRCUIT_CLOSED)
		circuit = "closed";
	else if (snap.circuit == SX_CIRCUIT_OPEN && now < snap.circuit_open_until)
		circuit = "open";
	else
		circuit = "half_open";

	values[0] = Float8GetDatum(cfg.requests_per_second);
	values[1] =
	    Float8GetDatum(snap.effective_rate > 0 ? Min(snap.effective_rate, cfg.requests_per_second)
	                                           : cfg.requests_per_second);
	values[2] =
	    TimestampTzGetDatum(stockx_timestamp_from_us(sx_limiter_next_slot(&snap, &cfg, now)));
	values[3] = TimestampTzGetDatum(stockx_timestamp_from_us(snap.paused_until));
	nulls[3] = (snap.paused_until <= now);
	values[4] = Int64GetDatum(snap.requests_today);
	values[5] = Int64GetDatum(cfg.daily_limit);
	values[6] = TimestampTzGetDatum(stockx_timestamp_from_us(sx_quota_resets_at(&snap)));
	values[7] = CStringGetTextDatum(circuit);
	values[8] = TimestampTzGetDatum(stockx_timestamp_from_us(snap.circuit_open_until));
	nulls[8] = (snap.circuit == SX_CIRCUIT_CLOSED);
	values[9] = Int32GetDatum(snap.consecutive_429);
	values[10] = Int64GetDatum(snap.responses_429_total);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
