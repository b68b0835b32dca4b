/*-------------------------------------------------------------------------
 * enrich.c
 *	  Enrich one SKU: search with an exact styleId match, then variants,
 *	  then product-level market data (3 requests); a refresh of a known
 *	  product asks for market data only (1 request).
 *
 * Every request passes the shared limiter, retries included.  Answers are
 * classified here: 429 pauses the cluster and is retried up to
 * max_retries without blaming the row; 5xx, timeouts and connection errors
 * are retried with full-jitter backoff and then cost the row one attempt;
 * 400, 404 and malformed bodies fail the row at once; 401 refreshes the
 * token once, a second 401 (or 403) ends the run for credentials.
 *
 * Response bodies are allocated in the caller's current (per-row) memory
 * context; parsed results in result_cxt (per batch).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "enrich.h"

typedef enum RequestResult
{
	REQ_OK,
	REQ_NOT_FOUND, /* HTTP 404 */
	REQ_RETRY_LATER,
	REQ_FAILED,
	REQ_DEFERRED,
	REQ_STOP /* see *signal */
} RequestResult;

static void
describe_http_error(StockxResponse *resp, const char *endpoint, char **error)
{
	char msg[200];

	sx_parse_error_message(resp->body, resp->body_len, msg, sizeof(msg));
	*error = psprintf("%s: HTTP %ld%s%s", endpoint, resp->status, msg[0] ? ": " : "", msg);
}

/*
 * Get a token (force: a fresh one).  A refusal asks the run to stop for
 * credentials; an outage is described in *error for a transient retry.
 */
static StockxTokenResult
obtain_token(StockxEnricher *e, bool force, char **error, StockxRunSignal *signal)
{
	char errbuf[256];
	StockxTokenResult result = stockx_client_token(e->client, force, errbuf, sizeof(errbuf));

	if (result == SX_TOKEN_REJECTED)
	{
		snprintf(e->credentials_error, sizeof(e->credentials_error), "%s", errbuf);
		*signal = SX_RUN_STOP_CREDENTIALS;
	}
	else if (result == SX_TOKEN_UNAVAILABLE)
		*error = pstrdup(errbuf);
	return result;
}

/*
 * Send one GET through the limiter, with retries.  On REQ_OK the answer is
 * in *resp; otherwise *error says why (palloc'd) and *signal may ask the
 * run to stop.
 */
static RequestResult
request(StockxEnricher *e, const char *path, const char *endpoint, const char *sku,
        StockxResponse *resp, char **error, StockxRunSignal *signal)
{
	int retries = 0;
	bool token_refreshed = false;

	for (;;)
	{
		int64 wait_us;
		SxVerdict verdict;
		StockxTokenResult token;
		bool transient;

		CHECK_FOR_INTERRUPTS();
		if (stockx_worker_stop_requested())
		{
			*signal = SX_RUN_STOP_REQUESTED;
			return REQ_STOP;
		}

		token = obtain_token(e, false, error, signal);
		if (token == SX_TOKEN_REJECTED)
			return REQ_STOP;
		transient = (token == SX_TOKEN_UNAVAILABLE);

		if (!transient)
		{
			/* wait for a slot of the shared limiter */
			for (;;)
			{
				verdict = stockx_limiter_acquire(&wait_us);
				if (verdict == SX_GO)
					break;
				if (verdict == SX_REFUSED_CIRCUIT)
				{
					*signal = SX_RUN_STOP_CIRCUIT;
					return REQ_STOP;
				}
				if (verdict == SX_REFUSED_QUOTA)
				{
					*signal = SX_RUN_STOP_QUOTA;
					return REQ_STOP;
				}
				if (!stockx_worker_sleep(wait_us, verdict == SX_PAUSED
				                                      ? SX_STATE_BACKING_OFF
				                                      : SX_STATE_WAITING_RATE_LIMIT))
				{
					*signal = SX_RUN_STOP_REQUESTED;
					return REQ_STOP;
				}
			}

			stockx_worker_set_state(SX_STATE_REQUESTING, sku);
			e->counters->requests++;
			stockx_client_get(e->client, path, resp);

			if (resp->transport == SX_TRANSPORT_INTERRUPTED)
			{
				stockx_limiter_other_failure();
				*signal = SX_RUN_STOP_REQUESTED;
				return REQ_STOP;
			}
			if (resp->transport == SX_TRANSPORT_TOO_LARGE)
			{
				stockx_limiter_success();
				*error = psprintf("%s: %s", endpoint, resp->error);
				return REQ_FAILED;
			}
			if (resp->transport != SX_TRANSPORT_OK)
			{
				*error = psprintf("%s: %s", endpoint, resp->error);
				transient = true;
			}
			else if (resp->status == 200)
			{
				stockx_limiter_success();
				return REQ_OK;
			}
			else if (resp->status == 429)
			{
				int64 pause = stockx_limiter_429(resp->retry_after_us);

				e->counters->responses_429++;
				ereport(LOG,
				        (errmsg("stockx_enrich: rate limited endpoint=%s sku=\"%s\" retry=%d/%d "
				                "wait_ms=" INT64_FORMAT " retry_after_ms=" INT64_FORMAT,
				                endpoint, sku, retries, stockx_max_retries, pause / 1000,
				                resp->retry_after_us >= 0 ? resp->retry_after_us / 1000 : -1)));
				if (retries >= stockx_max_retries)
				{
					describe_http_error(resp, endpoint, error);
					return REQ_DEFERRED;
				}
				retries++;
				e->counters->retries++;
				continue;
			}
			else if (resp->status == 401 && !token_refreshed)
			{
				/* an expired or revoked token: refresh it once and repeat */
				stockx_limiter_success();
				token = obtain_token(e, true, error, signal);
				if (token == SX_TOKEN_REJECTED)
					return REQ_STOP;
				if (token == SX_TOKEN_OK)
				{
					token_refreshed = true;
					continue;
				}
				transient = true;
			}
			else if (resp->status == 401 || resp->status == 403)
			{
				stockx_limiter_success();
				snprintf(e->credentials_error, sizeof(e->credentials_error),
				         "%s answered HTTP %ld%s", endpoint, resp->status,
				         resp->status == 401 ? " again after a token refresh" : "");
				*signal = SX_RUN_STOP_CREDENTIALS;
				return REQ_STOP;
			}
			else if (resp->status >= 500)
			{
				describe_http_error(resp, endpoint, error);
				transient = true;
			}
			else
			{
				stockx_limiter_success();
				describe_http_error(resp, endpoint, error);
				return resp->status == 404 ? REQ_NOT_FOUND : REQ_FAILED;
			}
		}

		/* transient failure: back off on our own, then retry */
		Assert(transient);
		stockx_limiter_other_failure();
		if (retries >= stockx_max_retries)
			return REQ_RETRY_LATER;
		ereport(DEBUG1, (errmsg("stockx_enrich: transient failure endpoint=%s retry=%d/%d: %s",
		                        endpoint, retries + 1, stockx_max_retries, *error)));
		if (!stockx_worker_sleep(sx_backoff_us(stockx_backoff_base_ms, stockx_backoff_max_ms,
		                                       retries, stockx_random()),
		                         SX_STATE_BACKING_OFF))
		{
			*signal = SX_RUN_STOP_REQUESTED;
			return REQ_STOP;
		}
		retries++;
		e->counters->retries++;
	}
}

/* Map a request failure to the row's outcome; true when the row is settled. */
static bool
settle_failure(RequestResult rr, StockxResult *result, char *error, MemoryContext result_cxt)
{
	switch (rr)
	{
		case REQ_OK:
			return false;
		case REQ_NOT_FOUND:
		case REQ_FAILED:
			result->outcome = SX_OUTCOME_FAILED;
			break;
		case REQ_RETRY_LATER:
			result->outcome = SX_OUTCOME_RETRY_LATER;
			break;
		case REQ_DEFERRED:
			result->outcome = SX_OUTCOME_DEFERRED;
			break;
		case REQ_STOP:
			result->outcome = SX_OUTCOME_NONE;
			break;
	}
	result->error = error ? MemoryContextStrdup(result_cxt, error) : NULL;
	return true;
}

static bool
settle_parse(SxParseResult pr, const char *what, const char *errbuf, StockxResult *result,
             MemoryContext result_cxt)
{
	if (pr == SX_PARSE_OK)
		return false;
	if (pr == SX_PARSE_NO_MEMORY)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
		                errmsg("out of memory while parsing the %s answer", what)));
	result->outcome = SX_OUTCOME_FAILED;
	result->error =
	    MemoryContextStrdup(result_cxt, psprintf("%s: malformed answer: %s", what, errbuf));
	return true;
}

static bool
market_names_unknown_variant(StockxClaim *claim, StockxResult *result)
{
	int i, j;

	for (i = 0; i < result->nmarket; i++)
	{
		bool known = false;

		for (j = 0; j < claim->nknown && !known; j++)
			known = pg_strcasecmp(claim->known_variants[j], result->market[i].variant_id) == 0;
		if (!known)
			return true;
	}
	return false;
}

StockxRunSignal
stockx_enrich_one(StockxEnricher *e, StockxClaim *claim, StockxResult *result,
                  MemoryContext result_cxt)
{
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = result_cxt };
	StockxRunSignal signal = SX_RUN_CONTINUE;
	StockxResponse resp;
	RequestResult rr;
	char *error = NULL;
	char errbuf[SX_ERRBUF_SIZE];
	char *product_id;
	char *path;
	bool refresh;

	memset(result, 0, sizeof(*result));
	result->claim = claim;
	refresh = claim->product_id != NULL && strcmp(claim->status, "enriched") == 0;

	if (!refresh)
	{
		path = psprintf("/catalog/search?query=%s&pageNumber=1&pageSize=50",
		                stockx_client_escape(e->client, claim->sku));
		rr = request(e, path, "search", claim->sku, &resp, &error, &signal);
		if (settle_failure(rr, result, error, result_cxt))
			return signal;
		switch (
		    sx_parse_search(resp.body, resp.body_len, claim->sku, &alloc, &result->product, errbuf))
		{
			case SX_PARSE_NOT_FOUND:
				result->outcome = SX_OUTCOME_NOT_FOUND;
				return signal;
			case SX_PARSE_OK:
				break;
			default:
				settle_parse(SX_PARSE_MALFORMED, "search", errbuf, result, result_cxt);
				return signal;
		}
		product_id = result->product.product_id;
	}
	else
		product_id = claim->product_id;

	/* a refresh asks for market data first: variants only when it needs them */
	if (refresh)
	{
		path = psprintf("/catalog/products/%s/market-data?currencyCode=%s", product_id,
		                stockx_client_escape(e->client, stockx_currency_code));
		rr = request(e, path, "market-data", claim->sku, &resp, &error, &signal);
		if (settle_failure(rr, result, error, result_cxt))
			return signal;
		if (settle_parse(sx_parse_market(resp.body, resp.body_len, &alloc, &result->market,
		                                 &result->nmarket, errbuf),
		                 "market-data", errbuf, result, result_cxt))
			return signal;
		result->outcome = SX_OUTCOME_REFRESHED;
		if (!market_names_unknown_variant(claim, result))
			return signal;
	}

	path = psprintf("/catalog/products/%s/variants", product_id);
	rr = request(e, path, "variants", claim->sku, &resp, &error, &signal);
	if (settle_failure(rr, result, error, result_cxt))
		return signal;
	if (settle_parse(sx_parse_variants(resp.body, resp.body_len, &alloc, &result->variants,
	                                   &result->nvariants, errbuf),
	                 "variants", errbuf, result, result_cxt))
		return signal;
	if (refresh)
		return signal;

	path = psprintf("/catalog/products/%s/market-data?currencyCode=%s", product_id,
	                stockx_client_escape(e->client, stockx_currency_code));
	rr = request(e, path, "market-data", claim->sku, &resp, &error, &signal);
	if (settle_failure(rr, result, error, result_cxt))
		return signal;
	if (settle_parse(sx_parse_market(resp.body, resp.body_len, &alloc, &result->market,
	                                 &result->nmarket, errbuf),
	                 "market-data", errbuf, result, result_cxt))
		return signal;
	result->outcome = SX_OUTCOME_ENRICHED;
	return signal;
}
