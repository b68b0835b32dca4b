/*-------------------------------------------------------------------------
 * quota.c
 *	  The limiter's state that outlives a restart: the UTC day's count of
 *	  requests, the rolling record of send times (the daily limit holds in
 *	  every UTC day and in any 24 hours) and the pacing margin it learnt.
 *	  The store reads and writes it (stockx_quota), the shared limiter owns
 *	  it in memory; this file only carries it from one to the other.
 *
 * Restored (merged: the larger counts and margin win) before a run's first
 * request and before a start or an outside program's slot is granted;
 * persisted by the workers at every commit.  Both need SPI connected.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "clock.h"
#include "limiter.h"
#include "quota.h"
#include "shared_limiter.h"
#include "store.h"

void
stockx_quota_restore(void)
{
	SxPersisted p;

	stockx_store_load_quota(sx_day_of(stockx_wall_now()), &p);
	stockx_limiter_import(&p);
}

void
stockx_quota_persist(void)
{
	SxPersisted p;

	stockx_limiter_export(&p);
	stockx_store_save_quota(&p);
}
