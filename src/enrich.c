/*-------------------------------------------------------------------------
 * enrich.c
 *	  Enrich one SKU, as a state machine the worker drives: search with an
 *	  exact styleId match, then variants, then product-level market data
 *	  (3 requests); a refresh of a known product asks for market data only
 *	  (1 request), and for variants when the market data names a new one.
 *	  Market data is asked once per configured currency: each currency
 *	  after the first costs one more request.
 *
 * A search answer has at most 50 hits a page: while no hit on the page
 * matches and StockX says there is a next page (hasNextPage), the next one
 * is asked, up to search_max_pages pages, each a request.
 *
 * A row queued by barcode asks GET /catalog/products/variants/gtins/{gtin},
 * which names the variant and its product.  The worker then looks for a
 * row that holds that product already (SX_STEP_OWNER, no request): there,
 * the barcode joins that row (MERGED, 1 request in all); else the product,
 * its variants and market data follow (4 requests).
 *
 * The job never waits, sends or sleeps itself: stockx_job_path() says what
 * to ask next, stockx_job_answer() classifies what came back and moves the
 * job on.  Answers are classified here: 429 is repeated up to max_retries
 * without blaming the row; 5xx, timeouts and connection errors are
 * repeated after a full-jitter backoff and then cost the row one attempt;
 * 400, 404 and malformed bodies fail the row at once; the first 401 asks
 * for a fresh token, a second one (or a 403) means the credentials are
 * refused.  What the shared limiter should hear is reported, not done.
 *
 * Parsed results live in the job's memory context; response bodies in the
 * transfer's, which the worker resets after each answer.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "enrich.h"
#include "limiter.h"
#include "support.h"

static const char *const step_endpoints[] = { "search",   "gtin",        "owner", "product",
	                                          "variants", "market-data", "done" };

void
stockx_job_init(StockxJob *job, StockxClaim *claim, MemoryContext cxt, int batch)
{
	memset(job, 0, sizeof(*job));
	job->claim = claim;
	job->cxt = cxt;
	job->batch = batch;
	job->refresh = claim->product_id != NULL && strcmp(claim->status, "enriched") == 0;
	job->step = job->refresh ? SX_STEP_MARKET : claim->by_gtin ? SX_STEP_GTIN : SX_STEP_SEARCH;
	job->page = 1;
}

static const char *
product_id(const StockxJob *job)
{
	return job->refresh ? job->claim->product_id : job->result.product.product_id;
}

/* The path of the request the job needs now, palloc'd in the current context. */
char *
stockx_job_path(StockxJob *job, const StockxEnrichConfig *config, const char **endpoint)
{
	*endpoint = step_endpoints[job->step];
	switch (job->step)
	{
		case SX_STEP_SEARCH:
			return psprintf("/catalog/search?query=%s&pageNumber=%d&pageSize=50",
			                stockx_http_escape(job->claim->sku_utf8), job->page);
		case SX_STEP_GTIN:
			return psprintf("/catalog/products/variants/gtins/%s",
			                stockx_http_escape(job->claim->sku_utf8));
		case SX_STEP_PRODUCT:
			return psprintf("/catalog/products/%s", stockx_http_escape(product_id(job)));
		case SX_STEP_OWNER:
			break;
		case SX_STEP_VARIANTS:
			return psprintf("/catalog/products/%s/variants", product_id(job));
		case SX_STEP_MARKET:
			return psprintf("/catalog/products/%s/market-data?currencyCode=%s", product_id(job),
			                stockx_http_escape(config->currencies.code[job->currency]));
		case SX_STEP_DONE:
			break;
	}
	elog(ERROR, "stockx_enrich: job step %d sends no request", (int) job->step);
	return NULL;
}

bool
stockx_job_ready(const StockxJob *job, int64 now)
{
	return !job->settled && !job->in_flight && job->step != SX_STEP_DONE &&
	       job->step != SX_STEP_OWNER && now >= job->not_before;
}

static StockxStep
settle(StockxJob *job, StockxOutcome outcome, const char *error)
{
	job->result.outcome = outcome;
	job->result.error = error ? MemoryContextStrdup(job->cxt, error) : NULL;
	job->settled = true;
	job->step = SX_STEP_DONE;
	return SX_JOB_SETTLED;
}

/*
 * The row gives up for now, one attempt used: it is due again after half
 * to all of the backoff of its attempt count.
 */
static StockxStep
settle_retry_later(StockxJob *job, const StockxJobEnv *env, const char *error)
{
	const StockxEnrichConfig *cfg = env->config;

	job->result.retry_in_s =
	    (double) sx_backoff_us(cfg->backoff_base_ms, cfg->backoff_max_ms, job->claim->attempts,
	                           0.5 + env->unit_random() / 2) /
	    1e6;
	return settle(job, SX_OUTCOME_RETRY_LATER, error);
}

/* Move on to the next request of the job. */
static StockxStep
advance(StockxJob *job, StockxJobStep step)
{
	job->step = step;
	job->retries = 0;
	job->token_refreshed = false;
	job->not_before = 0;
	return SX_JOB_NEXT;
}

/*
 * A transient failure (5xx, timeout, no connection, token endpoint down):
 * repeat after a full-jitter backoff, or give the row back with one attempt
 * used once max_retries is spent.
 */
StockxStep
stockx_job_transient(StockxJob *job, const char *error, const StockxJobEnv *env)
{
	const StockxEnrichConfig *cfg = env->config;

	if (job->retries >= cfg->max_retries)
		return settle_retry_later(job, env, error);
	ereport(DEBUG1, (errmsg("stockx_enrich: transient failure sku=\"%s\" retry=%d/%d: %s",
	                        job->claim->sku, job->retries + 1, cfg->max_retries, error)));
	job->not_before = env->now() + sx_backoff_us(cfg->backoff_base_ms, cfg->backoff_max_ms,
	                                             job->retries, env->unit_random());
	job->retries++;
	return SX_JOB_NEXT;
}

static char *
http_error(const StockxResponse *resp, const char *endpoint)
{
	char msg[200];

	sx_parse_error_message(resp->body, resp->body_len, msg, sizeof(msg));
	return psprintf("%s: HTTP %ld%s%s", endpoint, resp->status, msg[0] ? ": " : "", msg);
}

static bool
market_names_unknown_variant(const StockxJob *job)
{
	const StockxClaim *claim = job->claim;
	int c, i, j;

	for (c = 0; c <= job->currency; c++)
		for (i = 0; i < job->result.nmarket[c]; i++)
		{
			bool known = false;

			for (j = 0; j < claim->nknown && !known; j++)
				known = pg_strcasecmp(claim->known_variants[j],
				                      job->result.market[c][i].variant_id) == 0;
			if (!known)
				return true;
		}
	return false;
}

/*
 * The product whose holder the worker must look for: a barcode's, once the
 * lookup named it; NULL for any other job.
 */
const char *
stockx_job_owner_wanted(const StockxJob *job)
{
	return job->step == SX_STEP_OWNER ? job->result.product.product_id : NULL;
}

/*
 * What the worker found: owner_sku is the row that holds the product (the
 * barcode joins it: no further request), NULL when no row does (the
 * product, its variants and market data follow).
 */
StockxStep
stockx_job_owner_found(StockxJob *job, const char *owner_sku)
{
	Assert(job->step == SX_STEP_OWNER);
	if (owner_sku != NULL)
	{
		job->result.merged_into = MemoryContextStrdup(job->cxt, owner_sku);
		return settle(job, SX_OUTCOME_MERGED, NULL);
	}
	return advance(job, SX_STEP_PRODUCT);
}

/*
 * Whether a market-data answer says nothing of a product that has sizes:
 * StockX answers an unknown product id with an empty list (no 404), which
 * must not pass for a product without prices.
 */
static bool
market_empty_for_known_sizes(const StockxJob *job)
{
	return job->result.nmarket[job->currency] == 0 &&
	       (job->result.nvariants > 0 || job->claim->nknown > 0);
}

/* Parse a 200 answer for the current step; moves the job on. */
static StockxStep
take_answer(StockxJob *job, const StockxResponse *resp, const StockxJobEnv *env)
{
	const StockxEnrichConfig *cfg = env->config;
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = job->cxt };
	StockxResult *r = &job->result;
	char errbuf[SX_ERRBUF_SIZE];
	SxParseResult pr = SX_PARSE_OK;
	const char *endpoint = step_endpoints[job->step];

	errbuf[0] = '\0';
	switch (job->step)
	{
		case SX_STEP_SEARCH:
		{
			bool has_next_page;

			pr = sx_parse_search(resp->body, resp->body_len, job->claim->sku_utf8, &alloc,
			                     &r->product, &has_next_page, errbuf);
			if (pr == SX_PARSE_NOT_FOUND && has_next_page && job->page < cfg->search_max_pages)
			{
				/* no exact match on this page: the next one may have it */
				advance(job, SX_STEP_SEARCH);
				job->page++;
				return SX_JOB_NEXT;
			}
			if (pr == SX_PARSE_NOT_FOUND)
				return settle(job, SX_OUTCOME_NOT_FOUND, NULL);
			break;
		}
		case SX_STEP_GTIN:
		{
			SxVariant v;

			pr = sx_parse_gtin_variant(resp->body, resp->body_len, &alloc, &v,
			                           &r->product.product_id, errbuf);
			break;
		}
		case SX_STEP_PRODUCT:
			pr = sx_parse_product(resp->body, resp->body_len, &alloc, &r->product, errbuf);
			break;
		case SX_STEP_VARIANTS:
			pr = sx_parse_variants(resp->body, resp->body_len, &alloc, &r->variants, &r->nvariants,
			                       errbuf);
			break;
		case SX_STEP_MARKET:
			pr = sx_parse_market(resp->body, resp->body_len, &alloc, &r->market[job->currency],
			                     &r->nmarket[job->currency], errbuf);
			break;
		case SX_STEP_OWNER:
		case SX_STEP_DONE:
			elog(ERROR, "stockx_enrich: answer for a job that sent nothing");
	}
	if (pr == SX_PARSE_NO_MEMORY)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
		                errmsg("out of memory while parsing the %s answer", endpoint)));
	if (pr != SX_PARSE_OK)
		return settle(job, SX_OUTCOME_FAILED,
		              psprintf("%s: malformed answer: %s", endpoint, errbuf));

	switch (job->step)
	{
		case SX_STEP_SEARCH:
		case SX_STEP_PRODUCT:
			return advance(job, SX_STEP_VARIANTS);
		case SX_STEP_GTIN:
			return advance(job, SX_STEP_OWNER);
		case SX_STEP_VARIANTS:
			if (job->refresh)
				return settle(job, SX_OUTCOME_REFRESHED, NULL);
			return advance(job, SX_STEP_MARKET);
		case SX_STEP_MARKET:
			if (market_empty_for_known_sizes(job))
				return job->refresh
				           ? settle(job, SX_OUTCOME_NOT_FOUND, NULL)
				           : settle_retry_later(
				                 job, env,
				                 psprintf("%s: StockX answered no market data for product %s, "
				                          "which has %d sizes",
				                          endpoint, r->product.product_id, r->nvariants));
			if (job->currency + 1 < cfg->currencies.n)
			{
				advance(job, SX_STEP_MARKET);
				job->currency++;
				return SX_JOB_NEXT;
			}
			if (!job->refresh)
				return settle(job, SX_OUTCOME_ENRICHED, NULL);
			/* a refresh asks for variants only when market data names a new one */
			if (market_names_unknown_variant(job))
				return advance(job, SX_STEP_VARIANTS);
			return settle(job, SX_OUTCOME_REFRESHED, NULL);
		case SX_STEP_OWNER:
		case SX_STEP_DONE:
			break;
	}
	return SX_JOB_SETTLED;
}

/*
 * Classify the answer to the job's request.  *info says what the limiter
 * should hear and whether the request is repeated.
 */
StockxStep
stockx_job_answer(StockxJob *job, const StockxResponse *resp, const StockxJobEnv *env,
                  StockxAnswerInfo *info)
{
	const StockxEnrichConfig *cfg = env->config;
	const char *endpoint = step_endpoints[job->step];
	int retries_before = job->retries;
	StockxStep next;

	memset(info, 0, sizeof(*info));
	info->endpoint = endpoint;
	info->retry_after_us = -1;
	switch (sx_answer_class(resp->transport == SX_TRANSPORT_OK ? resp->status : 0))
	{
		case SX_ANSWER_SUCCESS:
			info->limiter_event = SX_LIMITER_SUCCESS;
			break;
		case SX_ANSWER_RATE_LIMITED:
			info->limiter_event = SX_LIMITER_RATE_LIMITED;
			break;
		case SX_ANSWER_NEUTRAL:
			info->limiter_event = SX_LIMITER_FAILURE;
			break;
	}

	if (resp->transport == SX_TRANSPORT_TOO_LARGE)
		return settle(job, SX_OUTCOME_FAILED, psprintf("%s: %s", endpoint, resp->error));
	if (resp->transport != SX_TRANSPORT_OK)
	{
		next = stockx_job_transient(job, psprintf("%s: %s", endpoint, resp->error), env);
		info->retried = job->retries > retries_before;
		return next;
	}

	if (resp->status == 200)
		return take_answer(job, resp, env);
	if (resp->status == 429)
	{
		info->retry_after_us = resp->retry_after_us;
		if (job->retries >= cfg->max_retries)
			return settle(job, SX_OUTCOME_DEFERRED, http_error(resp, endpoint));
		job->retries++;
		info->retried = true;
		return SX_JOB_NEXT;
	}
	if (resp->status == 401 && !job->token_refreshed)
	{
		/* an expired or revoked token: a fresh one, then the same request */
		job->token_refreshed = true;
		info->retried = true;
		return SX_JOB_NEED_TOKEN;
	}
	if (resp->status == 401 || resp->status == 403)
	{
		snprintf(info->credentials_error, sizeof(info->credentials_error), "%s answered HTTP %ld%s",
		         endpoint, resp->status, resp->status == 401 ? " again after a token refresh" : "");
		return SX_JOB_BAD_CREDENTIALS;
	}
	if (resp->status >= 500)
	{
		next = stockx_job_transient(job, http_error(resp, endpoint), env);
		info->retried = job->retries > retries_before;
		return next;
	}
	/* an unknown barcode; an invalid one (400) fails the row */
	if (resp->status == 404 && job->step == SX_STEP_GTIN)
		return settle(job, SX_OUTCOME_NOT_FOUND, NULL);
	return settle(job, SX_OUTCOME_FAILED, http_error(resp, endpoint));
}
