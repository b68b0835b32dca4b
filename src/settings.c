/*-------------------------------------------------------------------------
 * settings.c
 *	  The stockx_enrich.* settings: definitions, checks, and the config
 *	  structs the rest of the code reads them through.
 *
 * Secrets (api_key, client_id, client_secret, refresh_token, access_token)
 * never stay in a GUC variable: the check hook keeps the value in the
 * hook's private "extra" block and stores a fixed mask as the setting's
 * value.  So every column of pg_settings (setting, reset_val, boot_val
 * ...), SHOW and current_setting() show the mask to anybody but a
 * superuser, and the server's "parameter changed" log line never fires
 * for them (the stored mask does not change).  Values with control
 * characters are refused, so none can inject an HTTP header; the error
 * never repeats the value.
 *
 * URLs must be https://, or http:// to a loopback address (the token URL
 * carries the client secret, the API URL the API key, the authorization
 * URL a person's login), and may not carry a user name or password.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "checks.h"
#include "compat.h"
#include "limiter.h"
#include "settings.h"
#include "stockx_config.h"

#define SX_SECRET_MASK "********"

static char *api_base_url = NULL;
static char *token_url = NULL;
static char *authorize_url = NULL;
static char *credentials_file = NULL;
static double requests_per_second = 1.0;
static double pacing_margin_ms = 2.0;
static int burst = 1;
static int daily_request_limit = 25000;
static int batch_size = 10;
static int commit_every = 5;
static int requests_in_flight = 4;
static int max_retries = 3;
static int search_max_pages = 3;
static int backoff_base_ms = 2000;
static int backoff_max_ms = 60000;
static int max_attempts = 5;
static int request_timeout_ms = 30000;
static int connect_timeout_ms = 5000;
static int max_response_bytes = 8 * 1024 * 1024;
static char *currency_code = NULL;
static int refresh_after_s = 86400;
static int history_retention_s = 365 * 86400;
static int seller_level = 1;
static int lease_timeout_s = 3600;
static int run_retention_s = 30 * 86400;
static int circuit_threshold = 5;
static int circuit_open_ms = 15 * 60 * 1000;
static int max_workers = 4;
static int memory_alert_bytes = 64 * 1024 * 1024;
static int client_send_slack_ms = 50;
static int event_retention_s = 7 * 86400;
static double notify_change_pct = 10.0;
static bool sync_selling = false;
static int sync_every_s = 3600;
static double reprice_step = 1.0;
static double reprice_min_profit = 0.0;

/* the GUC variables of the secrets only ever hold the mask */
static char *secret_masks[SX_SECRET_COUNT];
/* the values, owned by the GUC machinery as the hooks' "extra" */
static const char *secret_values[SX_SECRET_COUNT];

static const char *const secret_names[SX_SECRET_COUNT] = {
	"stockx_enrich.api_key", "stockx_enrich.client_id", "stockx_enrich.client_secret",
	"stockx_enrich.refresh_token", "stockx_enrich.access_token"
};

/* ---------------------------------------------------------------- secrets */

static bool
check_secret(char **newval, void **extra, const char *name)
{
	const char *value = *newval ? *newval : "";
	char *copy;
	char *mask;

	if (!sx_secret_is_clean(value))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid value for parameter \"%s\"", name);
		GUC_check_errdetail("Secrets must not contain control characters such as carriage "
		                    "returns or line feeds.");
		return false;
	}
	copy = sx_guc_malloc(strlen(value) + 1);
	mask = sx_guc_malloc(sizeof(SX_SECRET_MASK));
	if (copy == NULL || mask == NULL)
	{
		if (copy)
			sx_guc_free(copy);
		if (mask)
			sx_guc_free(mask);
		return false;
	}
	strcpy(copy, value);
	strcpy(mask, SX_SECRET_MASK);
	if (*newval)
		sx_guc_free(*newval);
	*newval = mask;
	*extra = copy;
	return true;
}

static const char *
show_secret(StockxSecret which)
{
	const char *value = secret_values[which];

	if (value == NULL || value[0] == '\0')
		return "";
	return superuser() ? value : SX_SECRET_MASK;
}

/* one check, assign and show hook per secret: the hooks do not know their GUC */
#define SECRET_HOOKS(which, field)                                                                 \
	static bool check_##field(char **newval, void **extra, GucSource source)                       \
	{                                                                                              \
		return check_secret(newval, extra, secret_names[which]);                                   \
	}                                                                                              \
	static void assign_##field(const char *newval, void *extra)                                    \
	{                                                                                              \
		secret_values[which] = (const char *) extra;                                               \
	}                                                                                              \
	static const char *show_##field(void)                                                          \
	{                                                                                              \
		return show_secret(which);                                                                 \
	}

SECRET_HOOKS(SX_SECRET_API_KEY, api_key)
SECRET_HOOKS(SX_SECRET_CLIENT_ID, client_id)
SECRET_HOOKS(SX_SECRET_CLIENT_SECRET, client_secret)
SECRET_HOOKS(SX_SECRET_REFRESH_TOKEN, refresh_token)
SECRET_HOOKS(SX_SECRET_ACCESS_TOKEN, access_token)

static void
define_secret(StockxSecret which, const char *desc, GucStringCheckHook check,
              GucStringAssignHook assign, GucShowHook show)
{
	DefineCustomStringVariable(secret_names[which], desc, NULL, &secret_masks[which], "",
	                           PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, check, assign,
	                           show);
}

/* ---------------------------------------------------------------- checks */

static bool
check_url(char **newval, void **extra, GucSource source)
{
	char why[200];

	if (!sx_url_allowed(*newval, why, sizeof(why)))
	{
		GUC_check_errdetail("%s", why);
		GUC_check_errhint("Use https://, or http:// to 127.0.0.1, ::1 or localhost only.");
		return false;
	}
	return true;
}

static bool
check_currency(char **newval, void **extra, GucSource source)
{
	SxCurrencyList parsed;
	char why[128];

	if (sx_parse_currencies(*newval ? *newval : "", &parsed, why, sizeof(why)))
		return true;
	GUC_check_errdetail("%s", why);
	GUC_check_errhint("Give one currency code or a comma-separated list, e.g. 'USD' or 'USD, "
	                  "EUR'; StockX accepts AUD, CAD, CHF, EUR, GBP, HKD, JPY, KRW, MXN, NZD, SGD "
	                  "and USD.");
	return false;
}

/* ---------------------------------------------------------------- definitions */

static void
define_int(const char *name, const char *desc, int *var, int boot, int min, int max,
           GucContext context, int flags)
{
	DefineCustomIntVariable(name, desc, NULL, var, boot, min, max, context, flags, NULL, NULL,
	                        NULL);
}

/* An integer setting whose 0 means something else: long_desc says what. */
static void
define_int_zero(const char *name, const char *desc, const char *zero, int *var, int boot, int max,
                GucContext context, int flags)
{
	DefineCustomIntVariable(name, desc, zero, var, boot, 0, max, context, flags, NULL, NULL, NULL);
}

void
stockx_settings_define(void)
{
	DefineCustomStringVariable("stockx_enrich.api_base_url",
	                           "Base URL of the StockX API, version included.", NULL, &api_base_url,
	                           "https://api.stockx.com/v2", PGC_SIGHUP, 0, check_url, NULL, NULL);
	DefineCustomStringVariable("stockx_enrich.token_url",
	                           "OAuth token endpoint used to refresh the access token.", NULL,
	                           &token_url, "https://accounts.stockx.com/oauth/token", PGC_SIGHUP, 0,
	                           check_url, NULL, NULL);
	DefineCustomStringVariable("stockx_enrich.authorize_url",
	                           "OAuth authorization endpoint a person logs in at (the URL of "
	                           "stockx_enrich_authorize_url()).",
	                           NULL, &authorize_url, "https://accounts.stockx.com/authorize",
	                           PGC_SIGHUP, 0, check_url, NULL, NULL);
	define_secret(SX_SECRET_API_KEY, "StockX API key (x-api-key header).", check_api_key,
	              assign_api_key, show_api_key);
	define_secret(SX_SECRET_CLIENT_ID, "OAuth client id.", check_client_id, assign_client_id,
	              show_client_id);
	define_secret(SX_SECRET_CLIENT_SECRET, "OAuth client secret.", check_client_secret,
	              assign_client_secret, show_client_secret);
	define_secret(SX_SECRET_REFRESH_TOKEN, "OAuth refresh token.", check_refresh_token,
	              assign_refresh_token, show_refresh_token);
	define_secret(SX_SECRET_ACCESS_TOKEN, "A ready access token, used until it is refused.",
	              check_access_token, assign_access_token, show_access_token);
	DefineCustomStringVariable(
	    "stockx_enrich.credentials_file",
	    "File with the StockX secrets (key = value lines); overrides the secret settings.", NULL,
	    &credentials_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL,
	    NULL);

	DefineCustomRealVariable(
	    "stockx_enrich.requests_per_second", "Requests per second for the whole cluster.", NULL,
	    &requests_per_second, 1.0, 0.001, 10000.0, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("stockx_enrich.pacing_margin_ms",
	                         "Safety margin added to the interval between two requests.", NULL,
	                         &pacing_margin_ms, 2.0, 0.0, 1000.0, PGC_SIGHUP, 0, NULL, NULL, NULL);
	define_int("stockx_enrich.burst", "Requests that may go at once before the rate applies.",
	           &burst, 1, 1, 100, PGC_SIGHUP, 0);
	define_int_zero("stockx_enrich.daily_request_limit",
	                "Requests per UTC day and in any 24 hours for the whole cluster.",
	                "0 = no limit.", &daily_request_limit, 25000, INT_MAX, PGC_SIGHUP, 0);
	define_int("stockx_enrich.batch_size", "Products a worker claims at a time.", &batch_size, 10,
	           1, SX_MAX_BATCH_SIZE, PGC_SIGHUP, 0);
	define_int("stockx_enrich.commit_every", "Products written per commit.", &commit_every, 5, 1,
	           SX_MAX_BATCH_SIZE, PGC_SIGHUP, 0);
	define_int("stockx_enrich.requests_in_flight",
	           "Requests one worker may have in flight at a time.", &requests_in_flight, 4, 1,
	           SX_MAX_IN_FLIGHT, PGC_SIGHUP, 0);
	define_int("stockx_enrich.search_max_pages",
	           "Pages of a search answer (50 hits each) read while none matches the SKU exactly; "
	           "each page is a request.",
	           &search_max_pages, 3, 1, 20, PGC_SIGHUP, 0);
	define_int("stockx_enrich.max_retries",
	           "Retries of one request after 429, 5xx or network errors.", &max_retries, 3, 0, 20,
	           PGC_SIGHUP, 0);
	define_int("stockx_enrich.backoff_base_ms", "Base of the exponential backoff.",
	           &backoff_base_ms, 2000, 1, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int("stockx_enrich.backoff_max_ms", "Cap of the exponential backoff.", &backoff_max_ms,
	           60000, 1, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int("stockx_enrich.max_attempts", "Attempts per product before it is marked failed.",
	           &max_attempts, 5, 1, 1000, PGC_SIGHUP, 0);
	define_int("stockx_enrich.request_timeout_ms", "Total timeout of one HTTP request.",
	           &request_timeout_ms, 30000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int("stockx_enrich.connect_timeout_ms", "Connect timeout of one HTTP request.",
	           &connect_timeout_ms, 5000, 100, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int("stockx_enrich.max_response_bytes", "Largest response body accepted.",
	           &max_response_bytes, 8 * 1024 * 1024, 1024, 256 * 1024 * 1024, PGC_SIGHUP,
	           GUC_UNIT_BYTE);
	DefineCustomStringVariable(
	    "stockx_enrich.currency_code",
	    "Currencies of market data, comma-separated; the first is the one products carry.", NULL,
	    &currency_code, "USD", PGC_SIGHUP, GUC_LIST_INPUT, check_currency, NULL, NULL);
	define_int_zero("stockx_enrich.refresh_after",
	                "Age after which an enriched product's market data is refreshed, unless the "
	                "product sets refresh_every.",
	                "0 = only products with their own refresh_every.", &refresh_after_s, 86400,
	                INT_MAX, PGC_SIGHUP, GUC_UNIT_S);
	define_int_zero("stockx_enrich.history_retention",
	                "How long price history is kept; older monthly partitions are dropped.",
	                "0 = for ever.", &history_retention_s, 365 * 86400, INT_MAX, PGC_SIGHUP,
	                GUC_UNIT_S);
	define_int("stockx_enrich.seller_level",
	           "Seller level (1 to 5) whose fees stockx_variant_payout deducts.", &seller_level, 1,
	           1, 5, PGC_USERSET, 0);
	DefineCustomBoolVariable("stockx_enrich.sync_selling",
	                         "Whether every run also syncs the account's listings and orders.",
	                         "Off: only stockx_enrich_sync() does.", &sync_selling, false,
	                         PGC_SIGHUP, 0, NULL, NULL, NULL);
	define_int_zero("stockx_enrich.sync_every",
	                "With sync_selling, how old a list's last sync must be before a run syncs it "
	                "again.",
	                "0 = at every run.", &sync_every_s, 3600, INT_MAX, PGC_SIGHUP, GUC_UNIT_S);
	DefineCustomRealVariable("stockx_enrich.reprice_step",
	                         "How far under the lowest ask stockx_reprice_plan suggests to list.",
	                         NULL, &reprice_step, 1.0, 0.0, 1000000.0, PGC_USERSET, 0, NULL, NULL,
	                         NULL);
	DefineCustomRealVariable("stockx_enrich.reprice_min_profit",
	                         "Profit over cost that a suggestion of stockx_reprice_plan keeps.",
	                         "In the listing's currency; 0 = the payout covers the cost.",
	                         &reprice_min_profit, 0.0, 0.0, 1000000000.0, PGC_USERSET, 0, NULL,
	                         NULL, NULL);
	define_int("stockx_enrich.lease_timeout",
	           "How long a claimed product stays leased to its worker without renewal.",
	           &lease_timeout_s, 3600, 1, 7 * 86400, PGC_SIGHUP, GUC_UNIT_S);
	define_int_zero("stockx_enrich.run_retention",
	                "How long the rows of finished runs are kept in stockx_run.", "0 = for ever.",
	                &run_retention_s, 30 * 86400, INT_MAX, PGC_SIGHUP, GUC_UNIT_S);
	define_int_zero("stockx_enrich.circuit_threshold",
	                "Consecutive 429 answers that open the circuit.", "0 = never.",
	                &circuit_threshold, 5, 1000, PGC_SIGHUP, 0);
	define_int("stockx_enrich.circuit_open_ms",
	           "How long an open circuit refuses requests; doubles on repeated trips up to 24 "
	           "hours.",
	           &circuit_open_ms, 15 * 60 * 1000, 1, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int_zero("stockx_enrich.event_retention", "How long the rows of stockx_event are kept.",
	                "0 = for ever.", &event_retention_s, 7 * 86400, INT_MAX, PGC_SIGHUP,
	                GUC_UNIT_S);
	DefineCustomRealVariable(
	    "stockx_enrich.notify_change_pct",
	    "A move of a lowest ask or highest bid by more than this percentage is an event.",
	    "0 = no price_move events.", &notify_change_pct, 10.0, 0.0, 1000.0, PGC_SIGHUP, 0, NULL,
	    NULL, NULL);
	define_int("stockx_enrich.client_send_slack_ms",
	           "Time within which a program that called stockx_enrich_acquire() sends its request.",
	           &client_send_slack_ms, 50, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS);
	define_int("stockx_enrich.max_workers", "Worker slots in shared memory for the whole cluster.",
	           &max_workers, 4, 1, SX_MAX_WORKERS, PGC_POSTMASTER, 0);
	define_int("stockx_enrich.memory_alert_bytes",
	           "Worker memory above which stockx_enrich_alerts reports it.", &memory_alert_bytes,
	           64 * 1024 * 1024, 1024 * 1024, INT_MAX, PGC_SIGHUP, GUC_UNIT_BYTE);
	MarkGUCPrefixReserved("stockx_enrich");
}

/* ---------------------------------------------------------------- config structs */

void
stockx_settings_limiter(SxLimiterConfig *config)
{
	config->requests_per_second = requests_per_second;
	config->burst = burst;
	config->daily_limit = daily_request_limit;
	config->backoff_base_ms = backoff_base_ms;
	config->backoff_max_ms = backoff_max_ms;
	config->circuit_threshold = circuit_threshold;
	config->circuit_open_ms = circuit_open_ms;
	/* a request cannot outlive its connect and total timeouts */
	config->probe_timeout_ms = (int64) connect_timeout_ms + request_timeout_ms + 1000;
	config->margin_ms = pacing_margin_ms;
	/* a slot is sent within milliseconds, or after a connect at the latest */
	config->send_timeout_ms = (int64) connect_timeout_ms + 1000;
	config->outside_slack_ms = client_send_slack_ms;
}

void
stockx_settings_http(StockxHttpConfig *config, MemoryContext cxt)
{
	config->api_base_url = MemoryContextStrdup(cxt, api_base_url);
	config->token_url = MemoryContextStrdup(cxt, token_url);
	config->connect_timeout_ms = connect_timeout_ms;
	config->request_timeout_ms = request_timeout_ms;
	config->max_response_bytes = max_response_bytes;
}

/* The currency list was checked when it was set. */
static void
currencies(SxCurrencyList *out)
{
	char why[128];

	if (!sx_parse_currencies(currency_code, out, why, sizeof(why)))
		elog(ERROR, "stockx_enrich: currency_code passed its check but does not parse: %s", why);
}

void
stockx_settings_enrich(StockxEnrichConfig *config)
{
	currencies(&config->currencies);
	config->search_max_pages = search_max_pages;
	config->max_retries = max_retries;
	config->backoff_base_ms = backoff_base_ms;
	config->backoff_max_ms = backoff_max_ms;
}

void
stockx_settings_store(StockxStoreConfig *config)
{
	config->max_attempts = max_attempts;
	config->refresh_after_s = refresh_after_s;
	config->lease_s = lease_timeout_s;
	config->run_retention_s = run_retention_s;
	config->history_retention_s = history_retention_s;
	config->event_retention_s = event_retention_s;
	config->notify_change_pct = notify_change_pct;
	currencies(&config->currencies);
}

void
stockx_settings_worker(StockxWorkerConfig *config)
{
	config->batch_size = batch_size;
	config->commit_every = commit_every;
	config->requests_in_flight = requests_in_flight;
	config->lease_s = lease_timeout_s;
}

int
stockx_settings_max_workers(void)
{
	return max_workers;
}

/* The configured secret, or NULL when unset. */
const char *
stockx_settings_secret(StockxSecret which)
{
	const char *value = secret_values[which];

	return (value != NULL && value[0] != '\0') ? value : NULL;
}

/* The authorization endpoint (checked like token_url). */
const char *
stockx_settings_authorize_url(void)
{
	return authorize_url;
}

const char *
stockx_settings_credentials_file(void)
{
	return (credentials_file != NULL && credentials_file[0] != '\0') ? credentials_file : NULL;
}

/* Does every run also sync the selling side (stockx_enrich.sync_selling)? */
bool
stockx_settings_sync_selling(void)
{
	return sync_selling;
}

/* How old a list's last sync must be before a run syncs it again. */
int
stockx_settings_sync_every(void)
{
	return sync_every_s;
}
