/*-------------------------------------------------------------------------
 * shared_limiter.h
 *	  The cluster-wide rate limiter in shared memory (see limiter.h for its
 *	  arithmetic).
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SHARED_LIMITER_H
#define STOCKX_SHARED_LIMITER_H

#include "storage/lwlock.h"

#include "limiter.h"

/* A consistent copy of the limiter with the clock readings it was taken at. */
typedef struct StockxLimiterSnapshot
{
	SxLimiter limiter;
	SxLimiterConfig config;
	int64 mono_now;
	int64 wall_now;
} StockxLimiterSnapshot;

extern void stockx_limiter_shmem_request(void);
extern void stockx_limiter_shmem_startup(void);

extern SxVerdict stockx_limiter_acquire(int64 *wait_us);
extern void stockx_limiter_sent(int64 sent_at, bool first);
extern void stockx_limiter_sent_outside(void);
extern void stockx_limiter_unsent(void);
extern void stockx_limiter_success(void);
extern int64 stockx_limiter_429(int64 retry_after_us);
extern void stockx_limiter_other_failure(void);
extern void stockx_limiter_snapshot(StockxLimiterSnapshot *snap);
extern void stockx_limiter_refuse(SxVerdict verdict, const char *circuit_hint);
extern void stockx_limiter_import(const SxPersisted *in);
extern void stockx_limiter_export(SxPersisted *out);

#endif /* STOCKX_SHARED_LIMITER_H */
