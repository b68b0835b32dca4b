/*-------------------------------------------------------------------------
 * shared_limiter.c
 *	  The one rate limiter of the cluster, in shared memory, and the only
 *	  code that touches it.  Every request of every worker, retries
 *	  included, takes a slot here, and reports when it was really sent and
 *	  how StockX answered.
 *
 * Lock: "stockx_enrich limiter" (StockxLimiterShared.lock) guards the
 * limiter.  Taken exclusively for every call (a few arithmetic
 * operations), shared for snapshots; never held across I/O.  The
 * monotonic clock is read while holding it, so the limiter sees time go
 * forward in every process's calls.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/shmem.h"

#include "clock.h"
#include "settings.h"
#include "shared_limiter.h"
#include "support.h"

/* the name of the area and of its lock, as pg_stat_activity shows waits on it */
#define SX_LIMITER_TRANCHE "stockx_enrich limiter"

typedef struct StockxLimiterShared
{
	LWLock *lock;
	SxLimiter limiter;
} StockxLimiterShared;

static StockxLimiterShared *shared = NULL;

/* Ask for the area and its lock (from the shmem_request_hook). */
void
stockx_limiter_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(StockxLimiterShared));
	RequestNamedLWLockTranche(SX_LIMITER_TRANCHE, 1);
}

/* Attach to the area, making it the first time (AddinShmemInitLock held). */
void
stockx_limiter_shmem_startup(void)
{
	bool found;

	shared = ShmemInitStruct(SX_LIMITER_TRANCHE, sizeof(StockxLimiterShared), &found);
	if (!found)
	{
		SxLimiterConfig cfg;

		stockx_settings_limiter(&cfg);
		memset(shared, 0, sizeof(*shared));
		shared->lock = &GetNamedLWLockTranche(SX_LIMITER_TRANCHE)->lock;
		sx_limiter_init(&shared->limiter, &cfg, stockx_mono_now(), sx_day_of(stockx_wall_now()));
	}
}

SxVerdict
stockx_limiter_acquire(int64 *wait_us)
{
	SxLimiterConfig cfg;
	SxVerdict verdict;
	int64 wall_now = stockx_wall_now();

	stockx_settings_limiter(&cfg);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	verdict = sx_limiter_acquire(&shared->limiter, &cfg, stockx_mono_now(), wall_now, wait_us);
	LWLockRelease(shared->lock);
	return verdict;
}

/* A granted request really left at sent_at (monotonic), for the first time or again. */
void
stockx_limiter_sent(int64 sent_at, bool first)
{
	SxLimiterConfig cfg;

	stockx_settings_limiter(&cfg);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_sent(&shared->limiter, &cfg, sent_at, first);
	LWLockRelease(shared->lock);
}

/* A granted slot handed to a program outside the database (stockx_enrich_acquire). */
void
stockx_limiter_sent_outside(void)
{
	SxLimiterConfig cfg;

	stockx_settings_limiter(&cfg);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_sent_within(&shared->limiter, &cfg, stockx_mono_now(), cfg.outside_slack_ms * 1000);
	LWLockRelease(shared->lock);
}

/* A granted request that was never sent. */
void
stockx_limiter_unsent(void)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_unsent(&shared->limiter);
	LWLockRelease(shared->lock);
}

void
stockx_limiter_success(void)
{
	SxLimiterConfig cfg;

	stockx_settings_limiter(&cfg);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_on_success(&shared->limiter, &cfg);
	LWLockRelease(shared->lock);
}

/* Record a 429; returns the cluster-wide pause now in force. */
int64
stockx_limiter_429(int64 retry_after_us)
{
	SxLimiterConfig cfg;
	int64 pause;
	double u = stockx_random();

	stockx_settings_limiter(&cfg);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	pause = sx_limiter_on_429(&shared->limiter, &cfg, stockx_mono_now(), retry_after_us, u);
	LWLockRelease(shared->lock);
	return pause;
}

void
stockx_limiter_other_failure(void)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_on_other_failure(&shared->limiter);
	LWLockRelease(shared->lock);
}

/* A consistent copy of the limiter, with the quota day rolled forward. */
void
stockx_limiter_snapshot(StockxLimiterSnapshot *snap)
{
	stockx_settings_limiter(&snap->config);
	snap->wall_now = stockx_wall_now();
	LWLockAcquire(shared->lock, LW_SHARED);
	snap->mono_now = stockx_mono_now();
	snap->limiter = shared->limiter;
	LWLockRelease(shared->lock);
	(void) sx_limiter_quota_spent(&snap->limiter, &snap->config, snap->wall_now);
}

/*
 * Raise the error of a refusal (SX_REFUSED_CIRCUIT or SX_REFUSED_QUOTA), with
 * the hint of the caller for an open circuit.
 */
void
stockx_limiter_refuse(SxVerdict verdict, const char *circuit_hint)
{
	StockxLimiterSnapshot snap;

	stockx_limiter_snapshot(&snap);
	if (verdict == SX_REFUSED_CIRCUIT)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("StockX circuit breaker is open until %s",
		                timestamptz_to_str(stockx_timestamp_from_mono(
		                    snap.limiter.circuit_open_until, snap.mono_now, snap.wall_now))),
		         errdetail("StockX answered HTTP 429 %d times in a row; sending more could get the "
		                   "account blocked.",
		                   snap.limiter.consecutive_429),
		         errhint("%s", circuit_hint)));
	ereport(ERROR,
	        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
	         errmsg("daily StockX request quota is spent (" INT64_FORMAT " of " INT64_FORMAT
	                " requests today, " INT64_FORMAT " in the last 24 hours)",
	                snap.limiter.requests_today, snap.config.daily_limit,
	                sx_limiter_window_count(&snap.limiter, snap.wall_now)),
	         errdetail("The limit holds per UTC day and in any 24 hours."),
	         errhint("The next request is allowed at %s; see stockx_enrich.daily_request_limit.",
	                 timestamptz_to_str(stockx_timestamp_from_wall(
	                     sx_limiter_next_allowed(&snap.limiter, &snap.config, snap.wall_now))))));
}

/* Merge what was persisted into the limiter (see sx_limiter_import()). */
void
stockx_limiter_import(const SxPersisted *in)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	sx_limiter_import(&shared->limiter, in);
	LWLockRelease(shared->lock);
}

/* What to persist of the limiter, as of now. */
void
stockx_limiter_export(SxPersisted *out)
{
	StockxLimiterSnapshot snap;

	stockx_limiter_snapshot(&snap);
	sx_limiter_export(&snap.limiter, out);
}
