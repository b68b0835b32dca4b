/*-------------------------------------------------------------------------
 * enrich.c
 *	  Enrich one SKU, as a state machine the worker drives: search with an
 *	  exact styleId match, then variants, then product-level market data
 *	  (3 requests); a refresh of a known product asks for market data only
 *	  (1 request), and for variants when the market data names a new one.
 *	  Market data is asked once per configured currency: each currency
 *	  after the first costs one more request.
 *
 * A row queued by barcode searches with the GTIN; the search answer does
 * not say which product carries it, so the variants of the first products
 * of the answer are asked in turn (at most SX_GTIN_CANDIDATES) and the
 * product whose variants list the GTIN exactly is kept: 3 requests when
 * StockX lists it first, one more for each product before it.
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
#include "stockx_enrich.h"

#define SX_GTIN_CANDIDATES 3

static const char *const step_endpoints[] = { "search", "variants", "market-data", "done" };

void
stockx_job_init(StockxJob *job, StockxClaim *claim, MemoryContext cxt, int batch)
{
	memset(job, 0, sizeof(*job));
	job->claim = claim;
	job->cxt = cxt;
	job->batch = batch;
	job->refresh = claim->product_id != NULL && strcmp(claim->status, "enriched") == 0;
	job->step = job->refresh ? SX_STEP_MARKET : SX_STEP_SEARCH;
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
			if (job->claim->by_gtin)
			{
				/* a barcode as catalogues list it: 0 + a UPC is searched as the UPC */
				char gtin[32];

				sx_gtin_short_form(job->claim->sku_utf8, gtin, sizeof(gtin));
				return psprintf("/catalog/search?query=%s&pageNumber=1&pageSize=50",
				                stockx_http_escape(gtin));
			}
			return psprintf("/catalog/search?query=%s&pageNumber=1&pageSize=50",
			                stockx_http_escape(job->claim->sku_utf8));
		case SX_STEP_VARIANTS:
			return psprintf("/catalog/products/%s/variants", product_id(job));
		case SX_STEP_MARKET:
			return psprintf("/catalog/products/%s/market-data?currencyCode=%s", product_id(job),
			                stockx_http_escape(config->currencies.code[job->currency]));
		case SX_STEP_DONE:
			break;
	}
	elog(ERROR, "stockx_enrich: a settled job has no next request");
	return NULL;
}

bool
stockx_job_ready(const StockxJob *job, int64 now)
{
	return !job->settled && !job->in_flight && job->step != SX_STEP_DONE && now >= job->not_before;
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
		return settle(job, SX_OUTCOME_RETRY_LATER, error);
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

/* Whether a variant of the product in hand lists the row's barcode. */
static bool
variants_carry_gtin(const StockxJob *job)
{
	int i;

	for (i = 0; i < job->result.nvariants; i++)
		if (sx_gtins_contain(job->result.variants[i].gtins_json, job->claim->sku_utf8))
			return true;
	return false;
}

/* Parse a 200 answer for the current step; moves the job on. */
static StockxStep
take_answer(StockxJob *job, const StockxResponse *resp, const StockxEnrichConfig *cfg)
{
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = job->cxt };
	StockxResult *r = &job->result;
	char errbuf[SX_ERRBUF_SIZE];
	SxParseResult pr = SX_PARSE_OK;
	const char *endpoint = step_endpoints[job->step];

	errbuf[0] = '\0';
	switch (job->step)
	{
		case SX_STEP_SEARCH:
			if (job->claim->by_gtin)
			{
				pr = sx_parse_search_candidates(resp->body, resp->body_len, &alloc,
				                                SX_GTIN_CANDIDATES, &job->candidates,
				                                &job->ncandidates, errbuf);
				if (pr == SX_PARSE_OK)
					r->product = job->candidates[0];
			}
			else
				pr = sx_parse_search(resp->body, resp->body_len, job->claim->sku_utf8, &alloc,
				                     &r->product, errbuf);
			if (pr == SX_PARSE_NOT_FOUND)
				return settle(job, SX_OUTCOME_NOT_FOUND, NULL);
			break;
		case SX_STEP_VARIANTS:
			pr = sx_parse_variants(resp->body, resp->body_len, &alloc, &r->variants, &r->nvariants,
			                       errbuf);
			break;
		case SX_STEP_MARKET:
			pr = sx_parse_market(resp->body, resp->body_len, &alloc, &r->market[job->currency],
			                     &r->nmarket[job->currency], errbuf);
			break;
		case SX_STEP_DONE:
			elog(ERROR, "stockx_enrich: answer for a settled job");
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
			return advance(job, SX_STEP_VARIANTS);
		case SX_STEP_VARIANTS:
			if (job->refresh)
				return settle(job, SX_OUTCOME_REFRESHED, NULL);
			if (job->claim->by_gtin && !variants_carry_gtin(job))
			{
				/* not this product: the next one of the search answer, if any */
				if (++job->candidate >= job->ncandidates)
					return settle(job, SX_OUTCOME_NOT_FOUND, NULL);
				r->product = job->candidates[job->candidate];
				r->variants = NULL;
				r->nvariants = 0;
				return advance(job, SX_STEP_VARIANTS);
			}
			return advance(job, SX_STEP_MARKET);
		case SX_STEP_MARKET:
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
		return take_answer(job, resp, cfg);
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
	return settle(job, SX_OUTCOME_FAILED, http_error(resp, endpoint));
}
