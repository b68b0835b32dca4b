/*-------------------------------------------------------------------------
 * token_cache.h
 *	  The StockX access token of the cluster, refreshed once for every
 *	  worker, and the refresh token StockX rotated last.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_TOKEN_CACHE_H
#define STOCKX_TOKEN_CACHE_H

#include "storage/lwlock.h"

typedef enum StockxRefreshTurn
{
	SX_REFRESH_MINE = 0, /* this process refreshes now */
	SX_REFRESH_WAIT      /* another one is at it, or the last attempt failed just now */
} StockxRefreshTurn;

extern void stockx_token_shmem_request(void);
extern void stockx_token_shmem_startup(void);

extern bool stockx_token_get(char *buf, size_t buflen, uint64 *generation, int64 *renew_at);
extern StockxRefreshTurn stockx_token_begin_refresh(int64 stale_after_us);
extern bool stockx_token_publish(const char *access_token, int64 expires_in_s,
                                 const char *used_refresh_token, const char *rotated,
                                 uint64 *generation, int64 *renew_at);
extern void stockx_token_refresh_failed(int64 retry_in_us);
extern void stockx_token_invalidate(uint64 generation);
extern bool stockx_token_refresh_secret(const char *configured, char *buf, size_t buflen);
extern bool stockx_token_static_refused(const char *configured_access_token);
extern void stockx_token_refuse_static(const char *configured_access_token);

#endif /* STOCKX_TOKEN_CACHE_H */
