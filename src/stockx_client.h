/*-------------------------------------------------------------------------
 * stockx_client.h
 *	  HTTP client for the StockX API (libcurl) and its OAuth token.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CLIENT_H
#define STOCKX_CLIENT_H

#include "postgres.h"

typedef struct StockxClient StockxClient;

/* How a transfer ended, before looking at the HTTP status. */
typedef enum StockxTransport
{
	SX_TRANSPORT_OK = 0, /* an HTTP answer arrived: see status */
	SX_TRANSPORT_TIMEOUT,
	SX_TRANSPORT_CONNECT,     /* DNS, connect, TLS */
	SX_TRANSPORT_TOO_LARGE,   /* over stockx_enrich.max_response_bytes */
	SX_TRANSPORT_INTERRUPTED, /* a stop request aborted it */
	SX_TRANSPORT_OTHER
} StockxTransport;

typedef struct StockxResponse
{
	StockxTransport transport;
	long status; /* HTTP status when transport is OK */
	char *body;  /* NUL-terminated, in the caller's context */
	size_t body_len;
	int64 retry_after_us; /* -1 when absent or malformed */
	char error[256];      /* transport error text (never a secret) */
} StockxResponse;

typedef enum StockxTokenResult
{
	SX_TOKEN_OK = 0,
	SX_TOKEN_REJECTED,   /* the token endpoint refused our credentials */
	SX_TOKEN_UNAVAILABLE /* transient: network or server error */
} StockxTokenResult;

extern StockxClient *stockx_client_create(void);
extern void stockx_client_destroy(StockxClient *client);
extern StockxTokenResult stockx_client_token(StockxClient *client, bool force_refresh, char *errbuf,
                                             size_t errlen);
extern void stockx_client_get(StockxClient *client, const char *path, StockxResponse *resp);
extern char *stockx_client_escape(StockxClient *client, const char *value);

#endif /* STOCKX_CLIENT_H */
