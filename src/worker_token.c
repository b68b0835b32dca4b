/*-------------------------------------------------------------------------
 * worker_token.c
 *	  The access token a worker sends: the configured one, or one refreshed
 *	  for the whole cluster (token_cache.c) by whichever worker's turn it
 *	  is, through the OAuth refresh-token grant.  A rotated refresh token is
 *	  saved (credentials.c).  No secret is logged or kept past its use: the
 *	  buffers that held one are zeroed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "checks.h"
#include "clock.h"
#include "credentials.h"
#include "limiter.h"
#include "support.h"
#include "token_cache.h"
#include "worker_int.h"

/* the owner of the token request, to tell it from the rows' requests */
char worker_token_owner;

/* ---------------------------------------------------------------- the token */

void
worker_drop_token(Worker *w)
{
	if (w->token != NULL)
	{
		explicit_bzero(w->token, strlen(w->token));
		pfree(w->token);
	}
	w->token = NULL;
	w->token_configured = false;
}

/*
 * StockX refused the token a request carried (generation): nobody should
 * send it again.  A token renewed since that request left stays.
 */
void
worker_token_refused(Worker *w, uint64 generation)
{
	if (w->token == NULL || w->token_generation != generation)
		return;
	if (w->token_configured)
		stockx_token_refuse_static(w->token);
	else
		stockx_token_invalidate(w->token_generation);
	worker_drop_token(w);
}

static void
keep_token(Worker *w, const char *token, uint64 generation, int64 renew_at, bool configured)
{
	worker_drop_token(w);
	w->token = MemoryContextStrdup(TopMemoryContext, token);
	w->token_generation = generation;
	w->token_renew_at = renew_at;
	w->token_configured = configured;
}

/* Ask the token endpoint for a fresh access token (for the whole cluster). */
static void
start_token_request(Worker *w)
{
	const char *configured = stockx_secret(SX_SECRET_REFRESH_TOKEN);
	char refresh[4096];
	char *fields[3];
	char *form;
	int i;

	if (!stockx_token_refresh_secret(configured, refresh, sizeof(refresh)))
	{
		stockx_token_refresh_failed(0);
		snprintf(w->credentials_error, sizeof(w->credentials_error),
		         "the refresh token is missing or too long");
		worker_begin_stop(w, SX_STOP_CREDENTIALS);
		return;
	}
	fields[0] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_ID));
	fields[1] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_SECRET));
	fields[2] = stockx_http_escape(refresh);
	form = psprintf("grant_type=refresh_token&audience=gateway.stockx.com&client_id=%s"
	                "&client_secret=%s&refresh_token=%s",
	                fields[0], fields[1], fields[2]);
	if (w->token_refresh_used)
	{
		explicit_bzero(w->token_refresh_used, strlen(w->token_refresh_used));
		pfree(w->token_refresh_used);
	}
	w->token_refresh_used = MemoryContextStrdup(TopMemoryContext, refresh);
	w->token_transfer = stockx_http_post_token(w->http, form, &worker_token_owner, w->token_cxt);
	explicit_bzero(form, strlen(form));
	pfree(form);
	for (i = 0; i < 3; i++)
	{
		explicit_bzero(fields[i], strlen(fields[i]));
		pfree(fields[i]);
	}
	explicit_bzero(refresh, sizeof(refresh));
}

/*
 * Is there a token to send right now?  If not, start or wait for a
 * refresh (ours, or another worker's for the whole cluster).
 */
bool
worker_have_token(Worker *w, int64 now)
{
	char buf[8192];
	uint64 generation;
	int64 renew_at;
	const char *configured = stockx_secret(SX_SECRET_ACCESS_TOKEN);

	if (w->token != NULL)
	{
		if (w->token_configured ? !stockx_token_static_refused(w->token) : now < w->token_renew_at)
			return true;
		worker_drop_token(w);
	}
	if (stockx_token_get(buf, sizeof(buf), &generation, &renew_at))
	{
		keep_token(w, buf, generation, renew_at, false);
		explicit_bzero(buf, sizeof(buf));
		return true;
	}
	if (configured != NULL && !stockx_token_static_refused(configured))
	{
		keep_token(w, configured, 0, INT64_MAX, true);
		return true;
	}
	if (w->token_transfer != NULL || now < w->token_retry_at)
		return false;
	if (stockx_secret(SX_SECRET_REFRESH_TOKEN) == NULL ||
	    stockx_secret(SX_SECRET_CLIENT_ID) == NULL ||
	    stockx_secret(SX_SECRET_CLIENT_SECRET) == NULL)
	{
		snprintf(w->credentials_error, sizeof(w->credentials_error),
		         "the access token was refused and no refresh token is configured");
		worker_begin_stop(w, SX_STOP_CREDENTIALS);
		return false;
	}
	if (stockx_token_begin_refresh(w->refresh_stale_us) == SX_REFRESH_MINE)
		start_token_request(w);
	return false;
}

/* Jobs that waited for a token the endpoint could not give: a transient failure each. */
static void
token_unavailable(Worker *w, const char *error)
{
	int b, i;

	for (b = 0; b < SX_MAX_BATCHES; b++)
	{
		Batch *batch = &w->batches[b];

		if (!batch->in_use)
			continue;
		for (i = 0; i < batch->n; i++)
		{
			StockxJob *j = &batch->jobs[i];

			if (j->cxt == NULL || j->settled || j->in_flight || j->step == SX_STEP_DONE)
				continue;
			if (stockx_job_transient(j, error, &w->env) == SX_JOB_SETTLED)
				worker_settle_job(w, j);
		}
	}
}

/* The token endpoint answered. */
void
worker_take_token_answer(Worker *w, StockxTransfer *t)
{
	const StockxResponse *resp = stockx_transfer_response(t);
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = w->token_cxt };
	SxToken token;
	char parse_err[SX_ERRBUF_SIZE];
	char error[300];
	bool rejected = false;

	w->token_transfer = NULL;
	error[0] = '\0';
	if (resp->transport != SX_TRANSPORT_OK)
		snprintf(error, sizeof(error), "token request failed: %s", resp->error);
	else if (resp->status != 200)
	{
		char msg[200];

		sx_parse_error_message(resp->body, resp->body_len, msg, sizeof(msg));
		snprintf(error, sizeof(error), "token endpoint answered HTTP %ld%s%s", resp->status,
		         msg[0] ? ": " : "", msg);
		rejected = resp->status >= 400 && resp->status < 500 && resp->status != 429;
	}
	else if (sx_parse_token(resp->body, resp->body_len, &alloc, &token, parse_err) != SX_PARSE_OK)
		snprintf(error, sizeof(error), "token answer unusable: %s", parse_err);
	else if (!sx_secret_is_clean(token.access_token) ||
	         (token.refresh_token != NULL && !sx_secret_is_clean(token.refresh_token)))
		snprintf(error, sizeof(error),
		         "token answer unusable: the token contains control characters");
	else
	{
		uint64 generation;
		int64 renew_at;
		char why[300];

		(void) stockx_token_publish(token.access_token, token.expires_in, w->token_refresh_used,
		                            token.refresh_token, &generation, &renew_at);
		keep_token(w, token.access_token, generation, renew_at, false);
		if (token.refresh_token != NULL)
		{
			if (stockx_credentials_save_refresh_token(token.refresh_token, why, sizeof(why)))
				ereport(LOG, (errmsg("stockx_enrich: StockX rotated the refresh token; the new one "
				                     "is saved in stockx_enrich.credentials_file")));
			else
				ereport(WARNING,
				        (errmsg("stockx_enrich: StockX rotated the refresh token, but the new one "
				                "could not be persisted"),
				         errdetail("%s. Until the server restarts, every worker uses the new token "
				                   "from shared memory.",
				                   why),
				         errhint("Keep the secrets in stockx_enrich.credentials_file (writable by "
				                 "the server) so that rotated tokens are saved there.")));
		}
	}
	/* no copy of a token stays behind in the answer's memory */
	if (resp->body != NULL)
		explicit_bzero(resp->body, resp->body_len);
	stockx_http_release(w->http, t);
	MemoryContextReset(w->token_cxt);

	if (error[0] == '\0')
		return;
	if (rejected)
	{
		stockx_token_refresh_failed(0);
		strlcpy(w->credentials_error, error, sizeof(w->credentials_error));
		worker_begin_stop(w, SX_STOP_CREDENTIALS);
		return;
	}
	{
		int64 backoff = sx_backoff_us(w->enrich_config.backoff_base_ms,
		                              w->enrich_config.backoff_max_ms, 0, stockx_random());

		stockx_token_refresh_failed(backoff);
		w->token_retry_at = stockx_mono_now() + backoff;
		token_unavailable(w, error);
	}
}
