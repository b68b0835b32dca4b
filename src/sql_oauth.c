/*-------------------------------------------------------------------------
 * sql_oauth.c
 *	  From install to the first real request: a superuser logs the account
 *	  in to StockX through OAuth's authorization-code flow, in two calls.
 *
 * stockx_enrich_authorize_url(redirect_uri) builds the URL a person opens
 * in a browser (stockx_enrich.authorize_url with response_type=code, the
 * client id, the redirect URI, scope "offline_access openid", audience
 * gateway.stockx.com and a state).  The state is 32 bytes of
 * pg_strong_random() in hex; stockx_oauth_state keeps its SHA-256 (never
 * the state itself) with the redirect URI, for SX_STATE_TTL_MIN minutes
 * and one use.
 *
 * stockx_enrich_redeem_code(code, state) checks the state (known, not
 * expired, not used: the row is locked, so two calls with one state
 * cannot both pass), redeems the code at stockx_enrich.token_url in this
 * backend (http.c: libcurl waited on with the latch, so a cancel,
 * statement_timeout and postmaster death end it, and request_timeout_ms
 * bounds it), writes the refresh token to stockx_enrich.credentials_file
 * (credentials.c), shares the access token with the workers
 * (token_cache.c), and marks the state used.  A login needs the file: a
 * refresh token in a setting would have to be written with ALTER SYSTEM,
 * whose value the server logs on reload.
 *
 * Secrets (the client secret, the code, the tokens) never reach a result,
 * an error message or a log line: errors name what failed, the token
 * endpoint's error code and description (with the code and client secret
 * masked, should it repeat them), never a value; every message raised
 * while the function runs hides the statement (errhidestmt), whose text
 * holds the code; buffers that held a secret are zeroed.  Both functions
 * check superuser() here as well as through their ACL.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "checks.h"
#include "credentials.h"
#include "extension.h"
#include "http.h"
#include "settings.h"
#include "shmem.h"
#include "stockx_json.h"
#include "support.h"
#include "token_cache.h"

PG_FUNCTION_INFO_V1(stockx_enrich_authorize_url);
PG_FUNCTION_INFO_V1(stockx_enrich_redeem_code);

#define SX_STATE_BYTES      32      /* 64 hex digits */
#define SX_STATE_TTL_MIN    10      /* a state is good for this many minutes */
#define SX_STATE_KEEP       "1 day" /* used and expired states are forgotten after this */
#define SX_REDIRECT_URI_MAX 2048
#define SX_CODE_MAX         2048
#define SX_SCOPE            "offline_access openid"
#define SX_AUDIENCE         "gateway.stockx.com"
#define SX_MASK             "********"

/* The token endpoint's answer, as far as the caller may see it. */
typedef struct TokenAnswer
{
	StockxTransport transport;
	long status;
	char transport_error[256];
	char error[64];        /* OAuth "error", printable ASCII */
	char description[200]; /* "error_description" (or the like), printable ASCII */
	char parse_error[SX_ERRBUF_SIZE];
	bool parsed;      /* token holds the tokens (status 200) */
	SxToken token;    /* in the answer's context; zeroed by forget_answer */
	char scope[256];  /* granted scope, printable ASCII */
	bool token_clean; /* no control character in a token */
} TokenAnswer;

/* ---------------------------------------------------------------- checks */

static void
hide_statement(void *arg)
{
	/* the statement's text holds the code (and a state): never log it */
	errhidestmt(true);
}

static void
require_superuser_on_primary(const char *function)
{
	if (!superuser())
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		         errmsg("only a superuser may call %s", function),
		         errdetail("A login to StockX writes the account's refresh token to "
		                   "stockx_enrich.credentials_file, for every database of the cluster."),
		         errhint("Log in as a superuser.")));
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
		                errmsg("cannot log in to StockX on a standby"),
		                errhint("Call %s on the primary server.", function)));
}

/* An argument: not empty, not too long, no control character (no value repeated). */
static char *
argument(text *arg, const char *name, int max, const char *hint)
{
	char *value = text_to_cstring(arg);

	if (value[0] == '\0' || strlen(value) > (size_t) max || !sx_secret_is_clean(value))
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid %s", name),
		         errdetail("It must have 1 to %d characters and no control characters.", max),
		         errhint("%s", hint)));
	return value;
}

/*
 * A login needs the credentials file (where the refresh token goes) and the
 * application's client id and secret (from the file or the settings).
 */
static void
require_credentials(void)
{
	const char *missing = NULL;

	if (stockx_settings_credentials_file() == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("stockx_enrich.credentials_file is not set"),
		         errdetail("The refresh token of a login is written to the credentials file; in a "
		                   "setting it would have to be written with ALTER SYSTEM, whose value the "
		                   "server logs."),
		         errhint("Create a file only the server's user can read (chmod 600) with api_key, "
		                 "client_id and client_secret lines, then ALTER SYSTEM SET "
		                 "stockx_enrich.credentials_file = '/path/to/it' and SELECT "
		                 "pg_reload_conf().")));
	stockx_credentials_load();
	if (stockx_secret(SX_SECRET_CLIENT_ID) == NULL)
		missing = stockx_secret(SX_SECRET_CLIENT_SECRET) == NULL ? "client_id and client_secret"
		                                                         : "client_id";
	else if (stockx_secret(SX_SECRET_CLIENT_SECRET) == NULL)
		missing = "client_secret";
	if (missing != NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("the StockX application's client id or secret is not configured"),
		                errdetail("Missing: %s.", missing),
		                errhint("Add the application's client_id and client_secret (from StockX's "
		                        "developer portal) to stockx_enrich.credentials_file.")));
}

/* The redirect URI: https://, or http:// to a loopback address; no fragment. */
static void
check_redirect_uri(const char *uri)
{
	char why[200];

	if (strchr(uri, '#') != NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("invalid redirect_uri \"%s\"", uri),
		                errdetail("A redirect URI must not have a fragment (#)."),
		                errhint("Use the callback URL registered for the application at StockX.")));
	if (!sx_url_allowed(uri, why, sizeof(why)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("invalid redirect_uri \"%s\"", uri), errdetail("%s", why),
		                errhint("Use the callback URL registered for the application at StockX: "
		                        "https://, or http:// to 127.0.0.1, ::1 or localhost only.")));
}

/* ---------------------------------------------------------------- the state */

static bytea *
state_hash(const char *state)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	bytea *out = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
	    pg_cryptohash_update(ctx, (const uint8 *) state, strlen(state)) < 0 ||
	    pg_cryptohash_final(ctx, (uint8 *) VARDATA(out), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute a SHA-256 hash");
	pg_cryptohash_free(ctx);
	SET_VARSIZE(out, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return out;
}

static char *
new_state(void)
{
	static const char hex[] = "0123456789abcdef";
	uint8 bytes[SX_STATE_BYTES];
	char *state = palloc(SX_STATE_BYTES * 2 + 1);
	int i;

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("could not generate a random OAuth state")));
	for (i = 0; i < SX_STATE_BYTES; i++)
	{
		state[2 * i] = hex[bytes[i] >> 4];
		state[2 * i + 1] = hex[bytes[i] & 0xf];
	}
	state[SX_STATE_BYTES * 2] = '\0';
	explicit_bzero(bytes, sizeof(bytes));
	return state;
}

/* Remember a state (by its hash) for SX_STATE_TTL_MIN minutes; forget old ones. */
static void
remember_state(const char *state, const char *redirect_uri)
{
	Oid types[2] = { BYTEAOID, TEXTOID };
	Datum values[2];
	char *sql;

	values[0] = PointerGetDatum(state_hash(state));
	values[1] = CStringGetTextDatum(redirect_uri);
	SPI_connect();
	stockx_extension_find();
	sql = psprintf("DELETE FROM %s.stockx_oauth_state WHERE expires_at < "
	               "pg_catalog.clock_timestamp() - interval '" SX_STATE_KEEP "'",
	               stockx_extension_schema());
	if (SPI_execute(sql, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget old OAuth states");
	sql = psprintf("INSERT INTO %s.stockx_oauth_state (state_hash, redirect_uri, created_at, "
	               "expires_at) SELECT $1, $2, t, t + interval '%d minutes' FROM "
	               "pg_catalog.clock_timestamp() t",
	               stockx_extension_schema(), SX_STATE_TTL_MIN);
	if (SPI_execute_with_args(sql, 2, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not remember the OAuth state");
	SPI_finish();
}

/*
 * Check the state and lock its row: unknown, expired and used states are
 * errors.  Returns the redirect URI it was made for (in SPI's memory: good
 * until SPI_finish).  Call between SPI_connect and SPI_finish.
 */
static char *
claim_state(const char *state)
{
	Oid types[1] = { BYTEAOID };
	Datum values[1];
	char *sql;
	bool isnull;
	bool expired, used;

	values[0] = PointerGetDatum(state_hash(state));
	stockx_extension_find();
	sql = psprintf("SELECT redirect_uri, expires_at <= pg_catalog.clock_timestamp(), "
	               "used_at IS NOT NULL FROM %s.stockx_oauth_state WHERE state_hash = $1 "
	               "FOR UPDATE",
	               stockx_extension_schema());
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the OAuth state");
	if (SPI_processed == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("the OAuth state does not belong to a StockX login of this database"),
		         errdetail("The state must be the one the browser came back with, from a URL "
		                   "stockx_enrich_authorize_url() made in this database."),
		         errhint("Pass the state parameter of the redirect unchanged; if in doubt, make a "
		                 "new URL with stockx_enrich_authorize_url() and log in again.")));
	expired = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	used = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (used)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the OAuth state was used already"),
		         errdetail("A state redeems one code, once."),
		         errhint("The refresh token of that login is in stockx_enrich.credentials_file. To "
		                 "log in again, make a new URL with stockx_enrich_authorize_url().")));
	if (expired)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the OAuth state has expired"),
		         errdetail("A state is good for %d minutes after stockx_enrich_authorize_url() "
		                   "made it.",
		                   SX_STATE_TTL_MIN),
		         errhint("Make a new URL with stockx_enrich_authorize_url(), log in, and redeem "
		                 "the code at once.")));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
mark_state_used(const char *state)
{
	Oid types[1] = { BYTEAOID };
	Datum values[1];
	char *sql;

	values[0] = PointerGetDatum(state_hash(state));
	sql = psprintf("UPDATE %s.stockx_oauth_state SET used_at = pg_catalog.clock_timestamp() "
	               "WHERE state_hash = $1",
	               stockx_extension_schema());
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_UPDATE ||
	    SPI_processed != 1)
		elog(ERROR, "could not mark the OAuth state used");
}

/* ---------------------------------------------------------------- the token endpoint */

static void
zero_free(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		pfree(s);
	}
}

/* Replace every occurrence of secret in buf by the mask (in place, within buflen). */
static void
mask(char *buf, size_t buflen, const char *secret)
{
	size_t slen = secret ? strlen(secret) : 0;
	const char *p = buf;
	char *out;
	size_t o = 0;

	if (slen == 0 || strstr(buf, secret) == NULL)
		return;
	out = palloc0(buflen);
	while (*p != '\0' && o + 1 < buflen)
	{
		if (strncmp(p, secret, slen) == 0)
		{
			size_t m = Min(sizeof(SX_MASK) - 1, buflen - 1 - o);

			memcpy(out + o, SX_MASK, m);
			o += m;
			p += slen;
		}
		else
			out[o++] = *p++;
	}
	out[o] = '\0';
	memcpy(buf, out, o + 1);
	explicit_bzero(out, buflen);
	pfree(out);
}

/* What the caller may know of the answer; the tokens into a->token (in cxt). */
static void
read_answer(const StockxResponse *resp, TokenAnswer *a, MemoryContext cxt)
{
	SxAllocator alloc = { .alloc = stockx_palloc_no_oom, .context = cxt };

	a->transport = resp->transport;
	a->status = resp->status;
	strlcpy(a->transport_error, resp->error, sizeof(a->transport_error));
	if (resp->transport != SX_TRANSPORT_OK)
		return;
	if (resp->status != 200)
	{
		sx_parse_string_member(resp->body, resp->body_len, "error", a->error, sizeof(a->error));
		sx_parse_error_message(resp->body, resp->body_len, a->description, sizeof(a->description));
		return;
	}
	if (sx_parse_token(resp->body, resp->body_len, &alloc, &a->token, a->parse_error) !=
	    SX_PARSE_OK)
		return;
	a->parsed = true;
	a->token_clean = sx_secret_is_clean(a->token.access_token) &&
	                 (a->token.refresh_token == NULL || sx_secret_is_clean(a->token.refresh_token));
	sx_parse_string_member(resp->body, resp->body_len, "scope", a->scope, sizeof(a->scope));
}

static void
forget_answer(TokenAnswer *a)
{
	if (a->token.access_token != NULL)
		explicit_bzero(a->token.access_token, strlen(a->token.access_token));
	if (a->token.refresh_token != NULL)
		explicit_bzero(a->token.refresh_token, strlen(a->token.refresh_token));
}

/*
 * POST the form to the token endpoint and wait for the answer, in this
 * backend: a cancel or statement_timeout interrupts the wait (the latch is
 * set), request_timeout_ms and connect_timeout_ms bound the request.  The
 * form (palloc'd) and the answer's body are zeroed whatever happens.
 */
static void
post_to_token_endpoint(char *form, TokenAnswer *a, MemoryContext cxt)
{
	StockxHttpConfig config;
	StockxHttp *volatile http = NULL;
	StockxTransfer *volatile done = NULL;
	static char owner;

	stockx_settings_http(&config, cxt);
	PG_TRY();
	{
		http = stockx_http_create(&config);
		(void) stockx_http_post_token(http, form, &owner, cxt);
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			done = stockx_http_next_done(http);
			if (done != NULL)
				break;
			stockx_http_wait(http, 1000, stockx_wait_event(SX_WAIT_HTTP_ANSWER));
		}
		read_answer(stockx_transfer_response(done), a, cxt);
	}
	PG_FINALLY();
	{
		explicit_bzero(form, strlen(form));
		if (done != NULL)
		{
			const StockxResponse *resp = stockx_transfer_response(done);

			if (resp->body != NULL)
				explicit_bzero(resp->body, resp->body_len);
			stockx_http_release(http, done);
		}
		if (http != NULL)
			stockx_http_destroy(http);
	}
	PG_END_TRY();
	pfree(form);
}

/* The form of the authorization-code grant (palloc'd; zero it after use). */
static char *
code_grant_form(const char *code, const char *redirect_uri)
{
	char *fields[4];
	char *form;
	int i;

	fields[0] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_ID));
	fields[1] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_SECRET));
	fields[2] = stockx_http_escape(code);
	fields[3] = stockx_http_escape(redirect_uri);
	form = psprintf("grant_type=authorization_code&client_id=%s&client_secret=%s&code=%s"
	                "&redirect_uri=%s",
	                fields[0], fields[1], fields[2], fields[3]);
	for (i = 0; i < 4; i++)
		zero_free(fields[i]);
	return form;
}

/* An answer that gives no tokens: the error the caller sees (no secret in it). */
static void
refuse_answer(TokenAnswer *a, const char *code)
{
	const char *url = NULL;
	StockxHttpConfig config;

	stockx_settings_http(&config, CurrentMemoryContext);
	url = config.token_url;
	mask(a->description, sizeof(a->description), code);
	mask(a->description, sizeof(a->description), stockx_secret(SX_SECRET_CLIENT_SECRET));
	mask(a->error, sizeof(a->error), code);
	mask(a->error, sizeof(a->error), stockx_secret(SX_SECRET_CLIENT_SECRET));

	if (a->transport != SX_TRANSPORT_OK)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
		                errmsg("could not reach the StockX token endpoint %s", url),
		                errdetail("%s", a->transport_error),
		                errhint("Check stockx_enrich.token_url and the network, then redeem the "
		                        "same code and state again while the code is still valid (a few "
		                        "minutes).")));
	if (a->status == 429 || a->status >= 500)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
		                errmsg("the StockX token endpoint failed with HTTP %ld", a->status),
		                a->description[0] ? errdetail("%s", a->description) : 0,
		                errhint("Redeem the same code and state again in a moment, while the code "
		                        "is still valid (a few minutes).")));
	if (a->status != 200)
	{
		bool client = strcmp(a->error, "invalid_client") == 0 ||
		              strcmp(a->error, "unauthorized_client") == 0 ||
		              strcmp(a->error, "access_denied") == 0;

		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
		         client ? errmsg("StockX refused the application's client id or secret")
		                : errmsg("StockX refused the authorization code"),
		         errdetail("The token endpoint answered HTTP %ld%s%s%s%s%s.", a->status,
		                   a->error[0] ? ": " : "", a->error, a->description[0] ? " (" : "",
		                   a->description, a->description[0] ? ")" : ""),
		         client ? errhint("Check client_id and client_secret in "
		                          "stockx_enrich.credentials_file, then log in again.")
		                : errhint("A code is good once, for a few minutes, with the redirect URI "
		                          "it was issued for: make a new URL with "
		                          "stockx_enrich_authorize_url(), log in, and redeem the new code "
		                          "at once.")));
	}
	if (!a->parsed)
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
		                errmsg("the StockX token endpoint's answer cannot be used"),
		                errdetail("%s.", a->parse_error),
		                errhint("Check that stockx_enrich.token_url is StockX's token endpoint.")));
	if (!a->token_clean)
		ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
		                errmsg("the StockX token endpoint's answer cannot be used"),
		                errdetail("A token contains control characters.")));
	if (a->token.refresh_token == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("StockX granted no refresh token"),
		         errdetail("Granted scope: \"%s\".", a->scope),
		         errhint("The login must grant offline access: use the URL of "
		                 "stockx_enrich_authorize_url() (scope \"" SX_SCOPE "\") and allow offline "
		                 "access when StockX asks.")));
}

/*
 * Share the login's access token with the workers, unless a worker is
 * refreshing right now (then the workers' own refresh decides).  Returns
 * when the token expires, 0 when it was not shared.
 */
static TimestampTz
share_access_token(const TokenAnswer *a)
{
	StockxHttpConfig config;
	uint64 generation;
	int64 renew_at;
	int64 stale_us;

	stockx_settings_http(&config, CurrentMemoryContext);
	stale_us = ((int64) config.connect_timeout_ms + config.request_timeout_ms + 1000) * 1000;
	if (stockx_token_begin_refresh(stale_us) != SX_REFRESH_MINE)
		return 0;
	if (!stockx_token_publish(a->token.access_token, a->token.expires_in, a->token.refresh_token,
	                          NULL, &generation, &renew_at))
		return 0;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), a->token.expires_in * 1000);
}

/*
 * A login that gave tokens: the refresh token into the credentials file,
 * the access token to the workers.  The tokens are zeroed whatever
 * happens.  Returns when the shared access token expires (0: not shared).
 */
static TimestampTz
keep_login(TokenAnswer *a, const char *code)
{
	volatile TimestampTz expires_at = 0;
	char why[MAXPGPATH + 200];

	PG_TRY();
	{
		refuse_answer(a, code);
		if (!stockx_credentials_write_refresh_token(a->token.refresh_token, why, sizeof(why)))
			ereport(ERROR,
			        (errcode(ERRCODE_IO_ERROR),
			         errmsg("could not write the refresh token to stockx_enrich.credentials_file"),
			         errdetail("%s.", why),
			         errhint("The server's user must be able to create a file in the file's "
			                 "directory; fix that, then log in again (the code is spent).")));
		expires_at = share_access_token(a);
	}
	PG_CATCH();
	{
		forget_answer(a);
		PG_RE_THROW();
	}
	PG_END_TRY();
	forget_answer(a);
	return expires_at;
}

/* ---------------------------------------------------------------- SQL functions */

/*
 * stockx_enrich_authorize_url(redirect_uri text) RETURNS text: the URL a
 * person opens to log the account in; its state is good for
 * SX_STATE_TTL_MIN minutes, once.
 */
Datum
stockx_enrich_authorize_url(PG_FUNCTION_ARGS)
{
	char *redirect_uri;
	char *state;
	char *fields[5];
	const char *base = stockx_settings_authorize_url();
	char *url;
	int i;

	require_superuser_on_primary("stockx_enrich_authorize_url()");
	redirect_uri = argument(PG_GETARG_TEXT_PP(0), "redirect_uri", SX_REDIRECT_URI_MAX,
	                        "Use the callback URL registered for the application at StockX.");
	check_redirect_uri(redirect_uri);
	require_credentials();

	state = new_state();
	remember_state(state, redirect_uri);

	fields[0] = stockx_http_escape(stockx_secret(SX_SECRET_CLIENT_ID));
	fields[1] = stockx_http_escape(redirect_uri);
	fields[2] = stockx_http_escape(SX_SCOPE);
	fields[3] = stockx_http_escape(SX_AUDIENCE);
	fields[4] = stockx_http_escape(state);
	url = psprintf("%s%sresponse_type=code&client_id=%s&redirect_uri=%s&scope=%s&audience=%s"
	               "&state=%s",
	               base, strchr(base, '?') == NULL ? "?" : "&", fields[0], fields[1], fields[2],
	               fields[3], fields[4]);
	for (i = 0; i < 5; i++)
		pfree(fields[i]);
	PG_RETURN_TEXT_P(cstring_to_text(url));
}

/*
 * stockx_enrich_redeem_code(code text, state text, OUT credentials_file
 * text, OUT scope text, OUT access_token_expires_at timestamptz): the
 * second step of the login.
 */
Datum
stockx_enrich_redeem_code(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = { .callback = hide_statement, .previous = error_context_stack };
	MemoryContext answer_cxt;
	TupleDesc tupdesc;
	TokenAnswer answer;
	char *code;
	char *state;
	char *redirect_uri;
	Datum values[3];
	bool nulls[3] = { false, false, false };
	TimestampTz expires_at;
	HeapTuple tuple;

	error_context_stack = &hide;
	require_superuser_on_primary("stockx_enrich_redeem_code()");
	stockx_check_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	code = argument(PG_GETARG_TEXT_PP(0), "code", SX_CODE_MAX,
	                "Pass the code parameter of the redirect after the login, URL-decoded.");
	state = argument(PG_GETARG_TEXT_PP(1), "state", SX_STATE_BYTES * 2,
	                 "Pass the state parameter of the redirect after the login unchanged.");
	require_credentials();

	SPI_connect();
	redirect_uri = claim_state(state);

	memset(&answer, 0, sizeof(answer));
	answer_cxt = AllocSetContextCreate(CurrentMemoryContext, "stockx_enrich token answer",
	                                   ALLOCSET_SMALL_SIZES);
	post_to_token_endpoint(code_grant_form(code, redirect_uri), &answer, answer_cxt);
	expires_at = keep_login(&answer, code);
	MemoryContextDelete(answer_cxt);
	explicit_bzero(code, strlen(code));

	mark_state_used(state);
	SPI_finish();

	values[0] = CStringGetTextDatum(stockx_settings_credentials_file());
	values[1] = CStringGetTextDatum(answer.scope);
	nulls[1] = (answer.scope[0] == '\0');
	values[2] = TimestampTzGetDatum(expires_at);
	nulls[2] = (expires_at == 0);
	tuple = heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls);
	error_context_stack = hide.previous;
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
