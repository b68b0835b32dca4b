/*-------------------------------------------------------------------------
 * shmem.c
 *	  Lay out stockx_enrich's shared memory and hand each part to its owner:
 *	  slots.c (runs and workers), shared_limiter.c (the rate limiter) and
 *	  token_cache.c (the OAuth token).  Each part has a lock of its own,
 *	  from the named tranche "stockx_enrich"; the owners' banners say what
 *	  each lock guards.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "settings.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "token_cache.h"

#define SX_LOCK_SLOTS   0
#define SX_LOCK_LIMITER 1
#define SX_LOCK_TOKEN   2
#define SX_NLOCKS       3

static bool attached = false;

static Size
part_offset(int part)
{
	Size offset = 0;

	if (part > 0)
		offset = add_size(offset, MAXALIGN(stockx_slots_shmem_size(stockx_settings_max_workers())));
	if (part > 1)
		offset = add_size(offset, MAXALIGN(stockx_limiter_shmem_size()));
	if (part > 2)
		offset = add_size(offset, MAXALIGN(stockx_token_shmem_size()));
	return offset;
}

void
stockx_shmem_request(void)
{
	RequestAddinShmemSpace(part_offset(3));
	RequestNamedLWLockTranche("stockx_enrich", SX_NLOCKS);
}

void
stockx_shmem_startup(void)
{
	bool found;
	char *base;
	LWLockPadded *locks = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	base = ShmemInitStruct("stockx_enrich", part_offset(3), &found);
	if (!found)
		locks = GetNamedLWLockTranche("stockx_enrich");
	stockx_slots_shmem_init(base + part_offset(0), stockx_settings_max_workers(),
	                        locks ? &locks[SX_LOCK_SLOTS].lock : NULL, found);
	stockx_limiter_shmem_init(base + part_offset(1), locks ? &locks[SX_LOCK_LIMITER].lock : NULL,
	                          found);
	stockx_token_shmem_init(base + part_offset(2), locks ? &locks[SX_LOCK_TOKEN].lock : NULL,
	                        found);
	LWLockRelease(AddinShmemInitLock);
	attached = true;
}

/* Error out when the library was not preloaded (no shared memory). */
void
stockx_check_shared(void)
{
	if (!attached)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("stockx_enrich must be loaded via shared_preload_libraries"),
		                errhint("Add stockx_enrich to shared_preload_libraries in postgresql.conf "
		                        "and restart the server.")));
}
