/*-------------------------------------------------------------------------
 * shared_state.c
 *	  The shared memory of stockx_enrich: the cluster-wide rate limiter and
 *	  the run and worker slots read by the status views.
 *
 * Locks (named tranche "stockx_enrich"):
 *	  limiter_lock: StockxShared.limiter.  Taken exclusively for every
 *		limiter call (a few arithmetic operations), shared for snapshots.
 *	  slots_lock: runs[] and workers[].  Workers take it exclusively to
 *		publish their state and counters; readers take it shared, so a view
 *		never sees a half-written slot.
 * Neither lock is ever held across I/O or while waiting.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "stockx_enrich.h"

StockxShared *stockx_shared = NULL;

#define UNIX_TO_PG_EPOCH_US ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static Size
stockx_shmem_size(void)
{
	Size size = offsetof(StockxShared, workers);

	size = add_size(size, mul_size(stockx_max_workers, sizeof(StockxWorkerSlot)));
	size = MAXALIGN(size);
	size = add_size(size, mul_size(stockx_max_workers, sizeof(StockxRunSlot)));
	return size;
}

void
stockx_shmem_request(void)
{
	RequestAddinShmemSpace(stockx_shmem_size());
	RequestNamedLWLockTranche("stockx_enrich", 2);
}

void
stockx_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stockx_shared = ShmemInitStruct("stockx_enrich", stockx_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("stockx_enrich");
		SxLimiterConfig cfg;

		memset(stockx_shared, 0, stockx_shmem_size());
		stockx_shared->limiter_lock = &locks[0].lock;
		stockx_shared->slots_lock = &locks[1].lock;
		stockx_shared->nslots = stockx_max_workers;
		stockx_shared->runs =
		    (StockxRunSlot *) ((char *) stockx_shared +
		                       MAXALIGN(offsetof(StockxShared, workers) +
		                                stockx_max_workers * sizeof(StockxWorkerSlot)));
		stockx_limiter_config(&cfg);
		sx_limiter_init(&stockx_shared->limiter, &cfg, stockx_now_us());
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Error out when the library was not preloaded (no shared memory). */
void
stockx_check_shared(void)
{
	if (stockx_shared == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("stockx_enrich must be loaded via shared_preload_libraries"),
		                errhint("Add stockx_enrich to shared_preload_libraries in postgresql.conf "
		                        "and restart the server.")));
}

/* Microseconds since the Unix epoch: the limiter's clock. */
int64
stockx_now_us(void)
{
	return GetCurrentTimestamp() + UNIX_TO_PG_EPOCH_US;
}

TimestampTz
stockx_timestamp_from_us(int64 us)
{
	return us - UNIX_TO_PG_EPOCH_US;
}

double
stockx_random(void)
{
	return pg_prng_double(&pg_global_prng_state);
}

/* SxAllocator callback: palloc in the given context, NULL when out of memory. */
void *
stockx_palloc_no_oom(void *context, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) context, size, MCXT_ALLOC_NO_OOM);
}

void
stockx_limiter_config(SxLimiterConfig *cfg)
{
	cfg->requests_per_second = stockx_requests_per_second;
	cfg->burst = stockx_burst;
	cfg->daily_limit = stockx_daily_request_limit;
	cfg->backoff_base_ms = stockx_backoff_base_ms;
	cfg->backoff_max_ms = stockx_backoff_max_ms;
	cfg->circuit_threshold = stockx_circuit_threshold;
	cfg->circuit_open_ms = stockx_circuit_open_ms;
	/* a request cannot outlive its connect and total timeouts */
	cfg->probe_timeout_ms = (int64) stockx_connect_timeout_ms + stockx_request_timeout_ms + 1000;
}

SxVerdict
stockx_limiter_acquire(int64 *wait_us)
{
	SxLimiterConfig cfg;
	SxVerdict verdict;

	stockx_limiter_config(&cfg);
	LWLockAcquire(stockx_shared->limiter_lock, LW_EXCLUSIVE);
	verdict = sx_limiter_acquire(&stockx_shared->limiter, &cfg, stockx_now_us(), wait_us);
	LWLockRelease(stockx_shared->limiter_lock);
	return verdict;
}

void
stockx_limiter_success(void)
{
	SxLimiterConfig cfg;

	stockx_limiter_config(&cfg);
	LWLockAcquire(stockx_shared->limiter_lock, LW_EXCLUSIVE);
	sx_limiter_on_success(&stockx_shared->limiter, &cfg);
	LWLockRelease(stockx_shared->limiter_lock);
}

/* Record a 429; returns the cluster-wide pause now in force. */
int64
stockx_limiter_429(int64 retry_after_us)
{
	SxLimiterConfig cfg;
	int64 pause;
	double u = stockx_random();

	stockx_limiter_config(&cfg);
	LWLockAcquire(stockx_shared->limiter_lock, LW_EXCLUSIVE);
	pause = sx_limiter_on_429(&stockx_shared->limiter, &cfg, stockx_now_us(), retry_after_us, u);
	LWLockRelease(stockx_shared->limiter_lock);
	return pause;
}

void
stockx_limiter_other_failure(void)
{
	LWLockAcquire(stockx_shared->limiter_lock, LW_EXCLUSIVE);
	sx_limiter_on_other_failure(&stockx_shared->limiter);
	LWLockRelease(stockx_shared->limiter_lock);
}

/* A consistent copy of the limiter, with the quota day rolled forward. */
void
stockx_limiter_snapshot(SxLimiter *copy)
{
	SxLimiterConfig cfg;

	stockx_limiter_config(&cfg);
	LWLockAcquire(stockx_shared->limiter_lock, LW_SHARED);
	*copy = stockx_shared->limiter;
	LWLockRelease(stockx_shared->limiter_lock);
	(void) sx_limiter_quota_spent(copy, &cfg, stockx_now_us());
}

/*
 * Count the workers in use (launching or running) of a database, or of every
 * database when it is InvalidOid, and of one run, or of all when run_id is 0.
 * The first max of their pids go to pids (0 for one still launching).
 */
int
stockx_worker_slots(Oid database, int64 run_id, int *pids, int max)
{
	int i, n = 0;

	LWLockAcquire(stockx_shared->slots_lock, LW_SHARED);
	for (i = 0; i < stockx_shared->nslots; i++)
	{
		StockxWorkerSlot *w = &stockx_shared->workers[i];

		if (w->in_use && (!OidIsValid(database) || w->database == database) &&
		    (run_id == 0 || w->run_id == run_id))
		{
			if (pids != NULL && n < max)
				pids[n] = w->pid;
			n++;
		}
	}
	LWLockRelease(stockx_shared->slots_lock);
	return n;
}

/* Merge a persisted count of requests for day into the limiter. */
void
stockx_quota_merge(int64 day, int64 requests)
{
	LWLockAcquire(stockx_shared->limiter_lock, LW_EXCLUSIVE);
	sx_limiter_note_persisted(&stockx_shared->limiter, stockx_now_us(), day, requests);
	LWLockRelease(stockx_shared->limiter_lock);
}
