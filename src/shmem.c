/*-------------------------------------------------------------------------
 * shmem.c
 *	  stockx_enrich's shared memory: the hooks that ask for it and attach
 *	  to it, handing off to the three owners, each with an area and a
 *	  named lock (tranche) of its own, as pg_stat_activity shows waits on
 *	  them:
 *
 *	    "stockx_enrich slots"    runs and their workers   slots.c
 *	    "stockx_enrich limiter"  the rate limiter         shared_limiter.c
 *	    "stockx_enrich token"    the OAuth token          token_cache.c
 *
 *	  The owners' banners say what each lock guards.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "token_cache.h"

static bool attached = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	stockx_slots_shmem_request();
	stockx_limiter_shmem_request();
	stockx_token_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stockx_slots_shmem_startup();
	stockx_limiter_shmem_startup();
	stockx_token_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
	attached = true;
}

/* Install the hooks (from _PG_init, while shared_preload_libraries loads). */
void
stockx_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
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
