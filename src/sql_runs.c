/*-------------------------------------------------------------------------
 * sql_runs.c
 *	  The SQL functions that control runs: stockx_enrich_start(),
 *	  stockx_enrich_sync() (a run that syncs the selling side only),
 *	  stockx_enrich_stop() and stockx_enrich_wait().
 *
 * start reserves a run slot and its worker slots, then registers the
 * workers.  Every way out of that window (an error, a cancel, a
 * terminate, a postmaster with no room left, a launch that ends before the
 * worker attached) gives back what the workers did not take
 * (PG_ENSURE_ERROR_CLEANUP, as autoprewarm does), so no run is left
 * wedged.  start writes nothing in the caller's transaction that a worker
 * needs: the run's row is written by the workers, which therefore never
 * wait on the caller, and wait() in the same transaction works.
 *
 * start returns NULL and starts nothing when no row is due, so a schedule
 * that fires every minute adds no run rows while there is nothing to do.
 *
 * The functions run with search_path pinned to pg_catalog, pg_temp (a SET
 * clause on each), so nothing on the caller's path can stand in for what
 * they call.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "credentials.h"
#include "quota.h"
#include "settings.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "store.h"
#include "support.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(stockx_enrich_start);
PG_FUNCTION_INFO_V1(stockx_enrich_sync);
PG_FUNCTION_INFO_V1(stockx_enrich_stop);
PG_FUNCTION_INFO_V1(stockx_enrich_wait);

/* What the error cleanup of a start must give back. */
typedef struct PendingStart
{
	int64 run_id;
	int run_index;
	int nhandles;
	BackgroundWorkerHandle *handles[SX_MAX_WORKERS];
} PendingStart;

static void
refuse_if_limited(void)
{
	StockxLimiterSnapshot snap;

	stockx_quota_restore();
	stockx_limiter_snapshot(&snap);
	if (sx_limiter_circuit_refuses(&snap.limiter, snap.mono_now))
		stockx_limiter_refuse(SX_REFUSED_CIRCUIT,
		                      "Call stockx_enrich_start() again after that time; one probe request "
		                      "will then decide.");
	if (sx_limiter_quota_spent(&snap.limiter, &snap.config, snap.wall_now))
		stockx_limiter_refuse(SX_REFUSED_QUOTA, NULL);
}

/* Workers connect as the caller: a role that cannot log in could start none. */
static void
check_role_can_log_in(void)
{
	Oid role = GetUserId();
	HeapTuple tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	bool can_login;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", role);
	can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	ReleaseSysCache(tup);
	if (!can_login)
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		         errmsg("role \"%s\" is not permitted to log in", GetUserNameFromId(role, false)),
		         errdetail("stockx_enrich workers connect to the database as the role that "
		                   "starts them."),
		         errhint("Start the run as a role with LOGIN, or grant LOGIN to this one.")));
}

/* Register one worker; false when the postmaster has no room. */
static bool
register_worker(const StockxWorkerArgs *args, BackgroundWorkerHandle **handle)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "stockx_enrich", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "stockx_enrich_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "stockx_enrich worker (run " INT64_FORMAT ")", args->run_id);
	strlcpy(bgw.bgw_type, "stockx_enrich worker", BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(args->slot);
	memcpy(bgw.bgw_extra, args, sizeof(*args));
	bgw.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&bgw, handle);
}

/* Error cleanup of a start: stop late launches, free what no worker took. */
static void
start_cleanup(int code, Datum arg)
{
	PendingStart *pending = (PendingStart *) DatumGetPointer(arg);
	int i;

	for (i = 0; i < pending->nhandles; i++)
		TerminateBackgroundWorker(pending->handles[i]);
	stockx_slots_release_unattached(pending->run_id, pending->run_index);
}

/*
 * Start a run of workers (sync_only: one worker that syncs the selling
 * side and nothing else); the run id, the active run's, or NULL when
 * nothing is due.
 */
static Datum
start_run(FunctionCallInfo fcinfo, volatile int workers, int64 max_products, bool sync_only)
{
	int max_workers = stockx_settings_max_workers();
	const char *missing;
	int64 run_id;
	int64 active;
	int slots[SX_MAX_WORKERS];
	int free_slots = 0;
	volatile int launched = 0;
	volatile int i;
	StockxWorkerArgs args;
	StockxStoreConfig store_config;
	PendingStart *pending;
	bool sync;

	stockx_check_shared();
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
		                errmsg("cannot start stockx_enrich workers during recovery"),
		                errhint("Run stockx_enrich_start() on the primary server.")));
	if (workers < 1 || workers > max_workers)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("workers must be between 1 and %d", max_workers),
		         errhint("stockx_enrich.max_workers sets the upper bound; changing it needs a "
		                 "restart.")));

	/* a run already active in this database: hand back its id */
	stockx_slots_reclaim();
	if (stockx_slots_active_runs(MyDatabaseId, &active, 1) > 0)
		PG_RETURN_INT64(active);

	check_role_can_log_in();
	stockx_credentials_load();
	if (!stockx_credentials_configured(&missing))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("StockX credentials are not configured"),
		                errdetail("Missing: %s.", missing),
		                errhint("Set them with ALTER SYSTEM SET and SELECT pg_reload_conf(), or in "
		                        "stockx_enrich.credentials_file; see the README.")));

	SPI_connect();
	stockx_store_init();
	/*
	 * nothing due: no workers, no run row (pg_cron may fire every minute);
	 * a sync always has something to ask
	 */
	stockx_settings_store(&store_config);
	sync = sync_only || (stockx_settings_sync_selling() &&
	                     stockx_store_sync_due(NULL, stockx_settings_sync_every()));
	if (!sync && !stockx_store_anything_due(&store_config))
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	refuse_if_limited();
	run_id = stockx_store_next_run_id();
	SPI_finish();

	pending = palloc0(sizeof(PendingStart));
	pending->run_id = run_id;
	switch (stockx_slots_reserve(MyDatabaseId, run_id, max_products, workers, &pending->run_index,
	                             slots, &free_slots, &active))
	{
		case SX_RESERVED:
			break;
		case SX_RESERVE_RUN_ACTIVE:
			PG_RETURN_INT64(active);
		case SX_RESERVE_NO_SLOTS:
			ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			                errmsg("only %d of the %d stockx_enrich worker slots are free",
			                       free_slots, stockx_slots_capacity()),
			                errhint("Runs in other databases use the rest; start fewer workers or "
			                        "raise stockx_enrich.max_workers.")));
	}

	memset(&args, 0, sizeof(args));
	args.database = MyDatabaseId;
	args.role = GetUserId();
	args.run_id = run_id;
	args.run_index = pending->run_index;
	args.workers = workers;
	args.max_products = max_products;
	args.started_at = GetCurrentTimestamp();
	args.sync_only = sync_only;
	args.sync_every_s = sync_only ? 0 : stockx_settings_sync_every();

	PG_ENSURE_ERROR_CLEANUP(start_cleanup, PointerGetDatum(pending));
	{
		for (i = 0; i < workers; i++)
		{
			BackgroundWorkerHandle *handle;
			BgwHandleStatus status;
			pid_t pid;

			args.slot = slots[i];
			/* the first worker syncs the selling side (the others enrich meanwhile) */
			args.sync_selling = i == 0 && sync;
			if (!register_worker(&args, &handle))
				break;
			pending->handles[pending->nhandles++] = handle;
			status = WaitForBackgroundWorkerStartup(handle, &pid);
			if (status == BGWH_POSTMASTER_DIED)
				ereport(ERROR, (errcode(ERRCODE_ADMIN_SHUTDOWN),
				                errmsg("postmaster exited while starting stockx_enrich workers")));
			/* stopped: it either never attached (a failed launch) or ran already */
			if (status == BGWH_STARTED || !stockx_slots_release_slot(slots[i], run_id))
				launched++;
		}
		/* slots of workers the postmaster had no room for */
		for (; i < workers; i++)
			(void) stockx_slots_release_slot(slots[i], run_id);
	}
	PG_END_ENSURE_ERROR_CLEANUP(start_cleanup, PointerGetDatum(pending));

	if (launched == 0)
	{
		stockx_slots_release_unattached(run_id, pending->run_index);
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                errmsg("could not start stockx_enrich background workers"),
		                errhint("Raise max_worker_processes (needs a restart), or wait for other "
		                        "background workers to end.")));
	}
	if (launched < workers)
		ereport(WARNING, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                  errmsg("started %d of %d stockx_enrich workers", launched, workers),
		                  errhint("Raise max_worker_processes (needs a restart).")));
	PG_RETURN_INT64(run_id);
}

Datum
stockx_enrich_start(PG_FUNCTION_ARGS)
{
	int workers = PG_ARGISNULL(0) ? 1 : PG_GETARG_INT32(0);
	int64 max_products = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);

	if (!PG_ARGISNULL(1) && max_products < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("max_products must be at least 1"),
		                errhint("Pass NULL to process every due product.")));
	return start_run(fcinfo, workers, max_products, false);
}

Datum
stockx_enrich_sync(PG_FUNCTION_ARGS)
{
	return start_run(fcinfo, 1, 0, true);
}

Datum
stockx_enrich_stop(PG_FUNCTION_ARGS)
{
	int timeout_ms = PG_GETARG_INT32(0);
	int before;
	TimestampTz deadline;

	stockx_check_shared();
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("timeout_ms must not be negative")));

	before = stockx_slots_request_stop(MyDatabaseId);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	while (stockx_slots_count(MyDatabaseId, 0) > 0 && GetCurrentTimestamp() < deadline)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20L,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	PG_RETURN_INT32(before - stockx_slots_count(MyDatabaseId, 0));
}

Datum
stockx_enrich_wait(PG_FUNCTION_ARGS)
{
	int64 run_id = PG_GETARG_INT64(0);
	int timeout_ms = PG_GETARG_INT32(1);
	TimestampTz deadline;
	StockxStopReason reason;
	char *name;

	stockx_check_shared();
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("timeout_ms must not be negative")));
	stockx_slots_reclaim();
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	while (stockx_slots_count(MyDatabaseId, run_id) > 0)
	{
		if (GetCurrentTimestamp() >= deadline)
			PG_RETURN_NULL();
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50L,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	/* shared memory remembers recent runs, whatever the caller's snapshot sees */
	if (stockx_slots_finished_reason(MyDatabaseId, run_id, &reason))
		PG_RETURN_TEXT_P(cstring_to_text(stockx_stop_reason_name(reason)));
	SPI_connect();
	stockx_store_init();
	name = stockx_store_run_reason(run_id);
	SPI_finish();
	if (name == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}
