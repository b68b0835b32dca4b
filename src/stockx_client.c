/*-------------------------------------------------------------------------
 * stockx_client.c
 *	  Talk to StockX over libcurl: one reused easy handle per worker
 *	  (keep-alive), the OAuth refresh-token flow, timeouts, a response size
 *	  cap, and transfers that a stop request interrupts.
 *
 * Secrets (API key, client secret, tokens) live only in this process's
 * memory and in the request headers libcurl sends; they are never put in
 * an error message or a log line, and buffers that held them are zeroed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "limiter.h"
#include "credentials.h"
#include "stockx_client.h"
#include "stockx_enrich.h"
#include "stockx_json.h"

#define SX_USER_AGENT "stockx_enrich/" STOCKX_ENRICH_VERSION
/* renew a token this long before it expires (at most half its lifetime) */
#define SX_TOKEN_MARGIN_US (60 * USECS_PER_SEC)

struct StockxClient
{
	CURL *curl;
	MemoryContext cxt;           /* owns the token copies */
	char *access_token;          /* NULL until we have one */
	TimestampTz token_renew_at;  /* 0 = never (configured token) */
	char *rotated_refresh_token; /* set when the server rotated it */
	char errbuf[CURL_ERROR_SIZE];
};

/* Receive state of one transfer. */
typedef struct Transfer
{
	MemoryContext cxt;
	char *data;
	size_t len;
	size_t cap;
	size_t limit;
	bool too_large;
	bool no_memory;
	char retry_after[64];
} Transfer;

static bool curl_initialized = false;

static void
zero_and_free(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		pfree(s);
	}
}

StockxClient *
stockx_client_create(void)
{
	StockxClient *client;
	MemoryContext cxt;

	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "stockx_enrich client", ALLOCSET_SMALL_SIZES);
	client = MemoryContextAllocZero(cxt, sizeof(StockxClient));
	client->cxt = cxt;
	client->curl = curl_easy_init();
	if (client->curl == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not create a libcurl handle")));
	return client;
}

void
stockx_client_destroy(StockxClient *client)
{
	if (client == NULL)
		return;
	zero_and_free(client->access_token);
	zero_and_free(client->rotated_refresh_token);
	curl_easy_cleanup(client->curl);
	MemoryContextDelete(client->cxt);
}

/* Escape a query or path value; the result is palloc'd. */
char *
stockx_client_escape(StockxClient *client, const char *value)
{
	char *escaped = curl_easy_escape(client->curl, value, 0);
	char *result;

	if (escaped == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}

static size_t
receive_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Transfer *t = (Transfer *) userdata;
	size_t n = size * nmemb;

	if (t->len + n > t->limit)
	{
		t->too_large = true;
		return 0; /* aborts the transfer */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t cap = Max(t->cap * 2, t->len + n + 1);
		char *grown;

		cap = Min(cap, t->limit + 1);
		/* never ereport inside a libcurl callback: fail the transfer */
		grown = MemoryContextAllocExtended(t->cxt, cap, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
		if (grown == NULL)
		{
			t->no_memory = true;
			return 0;
		}
		if (t->data)
		{
			memcpy(grown, t->data, t->len);
			pfree(t->data);
		}
		t->data = grown;
		t->cap = cap;
	}
	memcpy(t->data + t->len, ptr, n);
	t->len += n;
	t->data[t->len] = '\0';
	return n;
}

static size_t
receive_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Transfer *t = (Transfer *) userdata;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 && pg_strncasecmp(buffer, name, sizeof(name) - 1) == 0)
	{
		size_t vlen = n - (sizeof(name) - 1);
		const char *v = buffer + sizeof(name) - 1;

		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen < sizeof(t->retry_after))
		{
			memcpy(t->retry_after, v, vlen);
			t->retry_after[vlen] = '\0';
		}
	}
	return n;
}

/* libcurl calls this often during a transfer: abort when asked to stop. */
static int
check_interrupts(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                 curl_off_t ulnow)
{
	return (ShutdownRequestPending || InterruptPending) ? 1 : 0;
}

static void
set_common_options(StockxClient *client, const char *url, Transfer *t)
{
	CURL *curl = client->curl;

	curl_easy_reset(curl);
	client->errbuf[0] = '\0';
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, client->errbuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) stockx_connect_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) stockx_request_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, SX_USER_AGENT);
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, receive_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, receive_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_interrupts);
}

/* Run the prepared transfer and fill resp. */
static void
perform(StockxClient *client, Transfer *t, StockxResponse *resp)
{
	CURLcode rc;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after_us = -1;
	rc = curl_easy_perform(client->curl);
	curl_easy_getinfo(client->curl, CURLINFO_RESPONSE_CODE, &resp->status);

	switch (rc)
	{
		case CURLE_OK:
			resp->transport = SX_TRANSPORT_OK;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			resp->transport = SX_TRANSPORT_TIMEOUT;
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
			resp->transport = SX_TRANSPORT_CONNECT;
			break;
		case CURLE_ABORTED_BY_CALLBACK:
			resp->transport = SX_TRANSPORT_INTERRUPTED;
			break;
		case CURLE_WRITE_ERROR:
			resp->transport = t->too_large ? SX_TRANSPORT_TOO_LARGE : SX_TRANSPORT_OTHER;
			break;
		default:
			resp->transport = SX_TRANSPORT_OTHER;
			break;
	}
	if (rc != CURLE_OK)
	{
		if (t->too_large)
			snprintf(resp->error, sizeof(resp->error),
			         "response larger than stockx_enrich.max_response_bytes (%d bytes)",
			         stockx_max_response_bytes);
		else if (t->no_memory)
			snprintf(resp->error, sizeof(resp->error), "out of memory receiving the response");
		else
			snprintf(resp->error, sizeof(resp->error), "%s",
			         client->errbuf[0] ? client->errbuf : curl_easy_strerror(rc));
	}
	if (t->retry_after[0])
		resp->retry_after_us = sx_parse_retry_after(t->retry_after, stockx_now_us());
	if (t->data == NULL)
	{
		t->data = MemoryContextAllocZero(t->cxt, 1);
		t->len = 0;
	}
	resp->body = t->data;
	resp->body_len = t->len;
}

static void
init_transfer(Transfer *t)
{
	memset(t, 0, sizeof(*t));
	t->cxt = CurrentMemoryContext;
	t->limit = (size_t) stockx_max_response_bytes;
}

/*
 * Make sure we hold an access token: the configured one, a cached one that
 * is not about to expire, or a fresh one from the refresh-token flow.
 */
StockxTokenResult
stockx_client_token(StockxClient *client, bool force_refresh, char *errbuf, size_t errlen)
{
	const char *refresh;
	StringInfoData form;
	char *fields[5];
	Transfer t;
	StockxResponse resp;
	struct curl_slist *headers = NULL;
	SxToken token;
	SxAllocator alloc = { .alloc = NULL };
	char parse_err[SX_ERRBUF_SIZE];
	int i;

	errbuf[0] = '\0';
	if (!force_refresh && client->access_token != NULL &&
	    (client->token_renew_at == 0 || GetCurrentTimestamp() < client->token_renew_at))
		return SX_TOKEN_OK;

	refresh = client->rotated_refresh_token ? client->rotated_refresh_token
	                                        : stockx_secret(SX_SECRET_REFRESH_TOKEN);
	if (!force_refresh && client->access_token == NULL &&
	    stockx_secret(SX_SECRET_ACCESS_TOKEN) != NULL)
	{
		client->access_token =
		    MemoryContextStrdup(client->cxt, stockx_secret(SX_SECRET_ACCESS_TOKEN));
		client->token_renew_at = 0;
		return SX_TOKEN_OK;
	}
	if (refresh == NULL || stockx_secret(SX_SECRET_CLIENT_ID) == NULL ||
	    stockx_secret(SX_SECRET_CLIENT_SECRET) == NULL)
	{
		snprintf(errbuf, errlen, "the access token was refused and no refresh token is configured");
		return SX_TOKEN_REJECTED;
	}

	fields[0] = stockx_client_escape(client, stockx_secret(SX_SECRET_CLIENT_ID));
	fields[1] = stockx_client_escape(client, stockx_secret(SX_SECRET_CLIENT_SECRET));
	fields[2] = stockx_client_escape(client, refresh);
	initStringInfo(&form);
	appendStringInfo(&form,
	                 "grant_type=refresh_token&audience=gateway.stockx.com&client_id=%s&client_"
	                 "secret=%s&refresh_token=%s",
	                 fields[0], fields[1], fields[2]);
	for (i = 0; i < 3; i++)
		zero_and_free(fields[i]);

	init_transfer(&t);
	set_common_options(client, stockx_token_url, &t);
	headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
	headers = curl_slist_append(headers, "Accept: application/json");
	curl_easy_setopt(client->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(client->curl, CURLOPT_POSTFIELDS, form.data);
	curl_easy_setopt(client->curl, CURLOPT_POSTFIELDSIZE, (long) form.len);
	perform(client, &t, &resp);
	curl_slist_free_all(headers);
	curl_easy_setopt(client->curl, CURLOPT_POSTFIELDS, NULL);
	explicit_bzero(form.data, form.len);
	pfree(form.data);

	if (resp.transport != SX_TRANSPORT_OK)
	{
		snprintf(errbuf, errlen, "token request failed: %s", resp.error);
		return SX_TOKEN_UNAVAILABLE;
	}
	if (resp.status != 200)
	{
		char msg[200];

		sx_parse_error_message(resp.body, resp.body_len, msg, sizeof(msg));
		snprintf(errbuf, errlen, "token endpoint answered HTTP %ld%s%s", resp.status,
		         msg[0] ? ": " : "", msg);
		return (resp.status >= 400 && resp.status < 500 && resp.status != 429)
		           ? SX_TOKEN_REJECTED
		           : SX_TOKEN_UNAVAILABLE;
	}

	/* copy the token straight into the client's context */
	alloc.alloc = stockx_palloc_no_oom;
	alloc.context = client->cxt;
	zero_and_free(client->access_token);
	client->access_token = NULL;
	if (sx_parse_token(resp.body, resp.body_len, &alloc, &token, parse_err) != SX_PARSE_OK)
	{
		explicit_bzero(resp.body, resp.body_len);
		snprintf(errbuf, errlen, "token answer unusable: %s", parse_err);
		return SX_TOKEN_UNAVAILABLE;
	}
	explicit_bzero(resp.body, resp.body_len);
	client->access_token = token.access_token;
	/* renew a minute early, or halfway through a token shorter-lived than two minutes */
	client->token_renew_at = GetCurrentTimestamp() + Max(token.expires_in, 1) * USECS_PER_SEC -
	                         Min(SX_TOKEN_MARGIN_US, Max(token.expires_in, 1) * USECS_PER_SEC / 2);
	if (token.refresh_token != NULL)
	{
		zero_and_free(client->rotated_refresh_token);
		client->rotated_refresh_token = token.refresh_token;
	}
	return SX_TOKEN_OK;
}

/* GET api_base_url || path with our headers.  The body lands in CurrentMemoryContext. */
void
stockx_client_get(StockxClient *client, const char *path, StockxResponse *resp)
{
	Transfer t;
	struct curl_slist *headers = NULL;
	char *url = psprintf("%s%s", stockx_api_base_url, path);
	char *auth =
	    psprintf("Authorization: Bearer %s", client->access_token ? client->access_token : "");
	const char *api_key = stockx_secret(SX_SECRET_API_KEY);
	char *key = psprintf("x-api-key: %s", api_key ? api_key : "");

	init_transfer(&t);
	set_common_options(client, url, &t);
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, auth);
	headers = curl_slist_append(headers, key);
	curl_easy_setopt(client->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(client->curl, CURLOPT_HTTPGET, 1L);
	perform(client, &t, resp);
	curl_slist_free_all(headers);
	zero_and_free(auth);
	zero_and_free(key);
	pfree(url);
}
