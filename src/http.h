/*-------------------------------------------------------------------------
 * http.h
 *	  Several HTTP requests in flight per worker (libcurl multi), waited on
 *	  together with the process latch.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_HTTP_H
#define STOCKX_HTTP_H

#include "utils/palloc.h"

#include "stockx_config.h"

/* How a transfer ended, before looking at the HTTP status. */
typedef enum StockxTransport
{
	SX_TRANSPORT_OK = 0, /* an HTTP answer arrived: see status */
	SX_TRANSPORT_TIMEOUT,
	SX_TRANSPORT_CONNECT,   /* DNS, connect, TLS */
	SX_TRANSPORT_TOO_LARGE, /* over stockx_enrich.max_response_bytes */
	SX_TRANSPORT_OTHER
} StockxTransport;

typedef struct StockxResponse
{
	StockxTransport transport;
	long status; /* HTTP status when transport is OK */
	char *body;  /* NUL-terminated, in the transfer's memory context */
	size_t body_len;
	int64 retry_after_us; /* -1 when absent or malformed */
	char error[256];      /* transport error text (never a secret) */
} StockxResponse;

typedef struct StockxHttp StockxHttp;
typedef struct StockxTransfer StockxTransfer;

extern StockxHttp *stockx_http_create(const StockxHttpConfig *config);
extern void stockx_http_configure(StockxHttp *http, const StockxHttpConfig *config);
extern void stockx_http_destroy(StockxHttp *http);

extern StockxTransfer *stockx_http_get(StockxHttp *http, const char *path, const char *bearer,
                                       const char *api_key, void *owner, MemoryContext body_cxt);
extern StockxTransfer *stockx_http_post_token(StockxHttp *http, const char *form, void *owner,
                                              MemoryContext body_cxt);
extern void stockx_http_cancel(StockxHttp *http, StockxTransfer *t);
extern void stockx_http_cancel_all(StockxHttp *http);

extern void stockx_http_wait(StockxHttp *http, long timeout_ms, uint32 wait_event_info);
extern StockxTransfer *stockx_http_next_sent(StockxHttp *http, int64 *sent_at, bool *first);
extern StockxTransfer *stockx_http_next_done(StockxHttp *http);
extern int stockx_http_in_flight(const StockxHttp *http);
extern bool stockx_http_has_done(StockxHttp *http);

extern void *stockx_transfer_owner(const StockxTransfer *t);
extern const StockxResponse *stockx_transfer_response(const StockxTransfer *t);
extern bool stockx_transfer_was_sent(const StockxTransfer *t);
extern void stockx_http_release(StockxHttp *http, StockxTransfer *t);

extern char *stockx_http_escape(const char *value);

#endif /* STOCKX_HTTP_H */
