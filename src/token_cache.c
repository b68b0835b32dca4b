/*-------------------------------------------------------------------------
 * token_cache.c
 *	  The StockX OAuth state of the cluster, in shared memory, and the
 *	  only code that touches it: the current access token with the time
 *	  to renew it, who is refreshing it now, and the refresh token StockX
 *	  rotated last.
 *
 * One worker refreshes for everybody: the others wait for the new token
 * (they poll; a refresh takes one request) instead of each spending a
 * call and, with rotation, invalidating each other's refresh token.  A
 * rotated refresh token replaces the configured one as long as the
 * configured one is a link of the same rotation chain (the token it
 * replaced, or one before); a refresh token the administrator configures
 * afterwards starts a new chain.  Tokens are compared by 64-bit hashes.
 *
 * Lock: "stockx_enrich token" (StockxTokenShared.lock) guards every
 * field.  Never held across I/O.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/shmem.h"

#include "clock.h"
#include "token_cache.h"

/* the name of the area and of its lock, as pg_stat_activity shows waits on it */
#define SX_TOKEN_TRANCHE "stockx_enrich token"

#define SX_ACCESS_TOKEN_MAX  8192
#define SX_REFRESH_TOKEN_MAX 4096
#define SX_CHAIN_MAX         16
/* renew a token this long before it expires (at most half its lifetime) */
#define SX_TOKEN_MARGIN_US (60 * USECS_PER_SEC)

typedef struct StockxTokenShared
{
	LWLock *lock;
	uint64 generation;     /* bumped whenever access_token changes */
	int64 renew_at;        /* monotonic; 0 = no usable token */
	pid_t refresher;       /* 0 = nobody is refreshing */
	int64 refresh_began;   /* monotonic */
	int64 retry_after;     /* monotonic: no new attempt before, after a failure */
	uint64 refused_static; /* hash of a configured access token StockX refused */
	int nchain;
	uint64 chain[SX_CHAIN_MAX]; /* refresh tokens of the current rotation chain */
	char access_token[SX_ACCESS_TOKEN_MAX];
	char refresh_token[SX_REFRESH_TOKEN_MAX]; /* rotated; "" = none */
} StockxTokenShared;

static StockxTokenShared *shared = NULL;

static uint64
token_hash(const char *s)
{
	return hash_bytes_extended((const unsigned char *) s, strlen(s), UINT64CONST(0x5458));
}

/* Ask for the area and its lock (from the shmem_request_hook). */
void
stockx_token_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(StockxTokenShared));
	RequestNamedLWLockTranche(SX_TOKEN_TRANCHE, 1);
}

/* Attach to the area, making it the first time (AddinShmemInitLock held). */
void
stockx_token_shmem_startup(void)
{
	bool found;

	shared = ShmemInitStruct(SX_TOKEN_TRANCHE, sizeof(StockxTokenShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		shared->lock = &GetNamedLWLockTranche(SX_TOKEN_TRANCHE)->lock;
	}
}

/* Copy the current access token if it is usable; false otherwise. */
bool
stockx_token_get(char *buf, size_t buflen, uint64 *generation, int64 *renew_at)
{
	bool ok = false;

	LWLockAcquire(shared->lock, LW_SHARED);
	if (shared->renew_at != 0 && stockx_mono_now() < shared->renew_at &&
	    strlen(shared->access_token) < buflen)
	{
		strlcpy(buf, shared->access_token, buflen);
		*generation = shared->generation;
		*renew_at = shared->renew_at;
		ok = true;
	}
	LWLockRelease(shared->lock);
	return ok;
}

/*
 * Whose turn is it to refresh?  A refresh begun more than stale_after_us
 * ago belongs to a process that cannot finish it any more.
 */
StockxRefreshTurn
stockx_token_begin_refresh(int64 stale_after_us)
{
	StockxRefreshTurn turn = SX_REFRESH_WAIT;
	int64 now;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	now = stockx_mono_now();
	if ((shared->refresher == 0 || now - shared->refresh_began > stale_after_us) &&
	    now >= shared->retry_after)
	{
		shared->refresher = MyProcPid;
		shared->refresh_began = now;
		turn = SX_REFRESH_MINE;
	}
	LWLockRelease(shared->lock);
	return turn;
}

static bool
in_chain(uint64 h)
{
	int i;

	for (i = 0; i < shared->nchain; i++)
		if (shared->chain[i] == h)
			return true;
	return false;
}

static void
chain_add(uint64 h)
{
	if (in_chain(h))
		return;
	if (shared->nchain == SX_CHAIN_MAX)
	{
		memmove(&shared->chain[0], &shared->chain[1], sizeof(uint64) * (SX_CHAIN_MAX - 1));
		shared->nchain--;
	}
	shared->chain[shared->nchain++] = h;
}

/*
 * A refresh succeeded: share the new access token (and the rotated refresh
 * token, if StockX sent one).  used is the refresh token the request
 * carried.  False when the token is too long to share; the caller then
 * keeps using its own copy.
 */
bool
stockx_token_publish(const char *access_token, int64 expires_in_s, const char *used,
                     const char *rotated, uint64 *generation, int64 *renew_at)
{
	int64 lifetime = Max(expires_in_s, 1) * USECS_PER_SEC;
	bool fits = strlen(access_token) < SX_ACCESS_TOKEN_MAX;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->generation++;
	*generation = shared->generation;
	*renew_at = stockx_mono_now() + lifetime - Min(SX_TOKEN_MARGIN_US, lifetime / 2);
	if (fits)
	{
		strlcpy(shared->access_token, access_token, SX_ACCESS_TOKEN_MAX);
		shared->renew_at = *renew_at;
	}
	else
	{
		explicit_bzero(shared->access_token, SX_ACCESS_TOKEN_MAX);
		shared->renew_at = 0;
	}
	if (rotated != NULL && strlen(rotated) < SX_REFRESH_TOKEN_MAX)
	{
		if (!in_chain(token_hash(used)))
			shared->nchain = 0;
		chain_add(token_hash(used));
		chain_add(token_hash(rotated));
		strlcpy(shared->refresh_token, rotated, SX_REFRESH_TOKEN_MAX);
	}
	shared->refresher = 0;
	shared->retry_after = 0;
	LWLockRelease(shared->lock);
	return fits;
}

/* A refresh failed: let somebody try again after retry_in_us. */
void
stockx_token_refresh_failed(int64 retry_in_us)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (shared->refresher == MyProcPid)
		shared->refresher = 0;
	shared->retry_after = stockx_mono_now() + retry_in_us;
	LWLockRelease(shared->lock);
}

/* StockX refused the token of that generation: nobody uses it any more. */
void
stockx_token_invalidate(uint64 generation)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (shared->generation == generation)
	{
		shared->renew_at = 0;
		explicit_bzero(shared->access_token, SX_ACCESS_TOKEN_MAX);
	}
	LWLockRelease(shared->lock);
}

/*
 * The refresh token to send: the rotated one when the configured token
 * belongs to its chain, else the configured one.
 */
bool
stockx_token_refresh_secret(const char *configured, char *buf, size_t buflen)
{
	bool rotated = false;

	LWLockAcquire(shared->lock, LW_SHARED);
	if (shared->refresh_token[0] != '\0' && configured != NULL &&
	    in_chain(token_hash(configured)) && strlen(shared->refresh_token) < buflen)
	{
		strlcpy(buf, shared->refresh_token, buflen);
		rotated = true;
	}
	LWLockRelease(shared->lock);
	if (!rotated)
	{
		if (configured == NULL || strlen(configured) >= buflen)
			return false;
		strlcpy(buf, configured, buflen);
	}
	return true;
}

bool
stockx_token_static_refused(const char *configured_access_token)
{
	bool refused;

	LWLockAcquire(shared->lock, LW_SHARED);
	refused = shared->refused_static == token_hash(configured_access_token);
	LWLockRelease(shared->lock);
	return refused;
}

void
stockx_token_refuse_static(const char *configured_access_token)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->refused_static = token_hash(configured_access_token);
	LWLockRelease(shared->lock);
}
