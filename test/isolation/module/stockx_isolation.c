/*-------------------------------------------------------------------------
 * stockx_isolation.c
 *	  A test-only module for the isolation specs (test/isolation/specs):
 *	  SQL functions that run the workers' claim, lease renewal and row
 *	  write in a session, so that isolationtester can step them.  Built
 *	  by test/isolation/run.sh in its output directory, never installed,
 *	  loaded through dynamic_library_path of the test instance only.
 *
 * Each function calls stockx_enrich's own C functions, the ones the
 * worker calls, found in the preloaded library with
 * load_external_function() (as PostgreSQL's transform modules find
 * hstore's and plperl's): no statement of the extension is copied here,
 * so a change to a claim, a renewal or a write is what the specs test.
 * What a function adds is only what a worker would supply itself:
 *
 *   stockx_isolation_claim(limit, live_pids)
 *	   worker.c claim_body(): lock the claims, read the live workers,
 *	   stockx_store_claim(); the sessions playing workers are no
 *	   background workers, so live_pids adds their pids to the live ones
 *	   read from shared memory.  Returns the SKUs leased, in claim order.
 *   stockx_isolation_renew(skus)
 *	   worker.c renew_leases(): stockx_store_renew_leases() of the rows
 *	   the session holds.  Returns the SKUs whose lease is still ours.
 *   stockx_isolation_write(sku, outcome)
 *	   worker_commit.c write_body(): stockx_store_write_row() of one row
 *	   settled as not_found, failed or retry_later, or as enriched: a new
 *	   product (no variants stored yet) with one size priced in every
 *	   currency of the settings, so that the write records its first
 *	   price history rows.  Returns the row's status afterwards, or 'lost
 *	   the lease' when the write found the row no longer ours (nothing
 *	   written).
 *
 * Every call uses the session's own transaction (the specs open and
 * close it), so the locks a worker holds for its short transaction are
 * held until the spec's COMMIT.  The lease pid is the session's
 * (MyProcPid), as a worker's is its own.  A session keeps its own
 * lock_timeout (none): a worker's 500 ms would end a wait with an error
 * and the claim would be tried again on its next turn, where the session
 * waits, which is what isolationtester shows.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "events.h"
#include "settings.h"
#include "slots.h"
#include "store.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(stockx_isolation_claim);
PG_FUNCTION_INFO_V1(stockx_isolation_renew);
PG_FUNCTION_INFO_V1(stockx_isolation_write);

/* as worker.c sizes the live pids it reads */
#define ISO_MAX_LIVE_PIDS 256

/* ---------------------------------------------------------------- the extension's functions */

typedef void (*store_init_fn)(void);
typedef void (*settings_store_fn)(StockxStoreConfig *config);
typedef void (*lock_claims_fn)(void);
typedef int (*live_pids_fn)(int32 *pids, int max);
typedef int (*claim_fn)(const StockxStoreConfig *config, int limit, const int32 *live_pids,
                        int npids, StockxClaim **claims, MemoryContext cxt);
typedef int (*renew_fn)(const StockxStoreConfig *config, StockxClaim **claims, int n, bool *held);
typedef void (*write_row_fn)(const StockxStoreConfig *config, StockxClaim *claim,
                             StockxResult *result, StockxWritten *written,
                             StockxEventQueue *events);
typedef void (*events_init_fn)(StockxEventQueue *q, MemoryContext parent);

static struct
{
	bool loaded;
	store_init_fn store_init;
	settings_store_fn settings_store;
	lock_claims_fn lock_claims;
	live_pids_fn live_pids;
	claim_fn claim;
	renew_fn renew;
	write_row_fn write_row;
	events_init_fn events_init;
} sx;

/*
 * The functions, from the library the server preloaded.  A server built
 * with hidden symbols (PostgreSQL 16 and later build modules with
 * -fvisibility=hidden) exports only what is marked PGDLLEXPORT: then the
 * lookup fails here with the name of the function.
 */
static void *
find(const char *name)
{
	return (void *) load_external_function("$libdir/stockx_enrich", name, true, NULL);
}

static void
load_stockx(void)
{
	if (sx.loaded)
		return;
	sx.store_init = (store_init_fn) find("stockx_store_init");
	sx.settings_store = (settings_store_fn) find("stockx_settings_store");
	sx.lock_claims = (lock_claims_fn) find("stockx_store_lock_claims");
	sx.live_pids = (live_pids_fn) find("stockx_slots_live_pids");
	sx.claim = (claim_fn) find("stockx_store_claim");
	sx.renew = (renew_fn) find("stockx_store_renew_leases");
	sx.write_row = (write_row_fn) find("stockx_store_write_row");
	sx.events_init = (events_init_fn) find("stockx_events_init");
	sx.loaded = true;
}

/* What every worker transaction starts with (worker_tx.c worker_tx_begin). */
static void
begin_store(StockxStoreConfig *config)
{
	load_stockx();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sx.store_init();
	sx.settings_store(config);
}

static ArrayType *
text_array(char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strs[i]);
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/* A claim of a row the session holds (renew and write read only its SKU). */
static StockxClaim *
claim_of(char *sku)
{
	StockxClaim *claim = palloc0(sizeof(StockxClaim));

	claim->sku = sku;
	claim->sku_utf8 = sku;
	claim->status = "pending";
	return claim;
}

/* The claims of a text[] of SKUs. */
static StockxClaim **
claims_of(ArrayType *skus, int *n)
{
	Datum *elems;
	bool *nulls;
	StockxClaim **claims;
	int i;

	deconstruct_array(skus, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	claims = palloc0(sizeof(StockxClaim *) * (*n + 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a SKU is NULL")));
		claims[i] = claim_of(TextDatumGetCString(elems[i]));
	}
	return claims;
}

/* ---------------------------------------------------------------- claim */

Datum
stockx_isolation_claim(PG_FUNCTION_ARGS)
{
	int limit = PG_GETARG_INT32(0);
	ArrayType *extra = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	MemoryContext cxt = CurrentMemoryContext;
	StockxStoreConfig config;
	int32 pids[ISO_MAX_LIVE_PIDS * 2];
	int npids;
	StockxClaim *claims;
	char **skus;
	int n, i;

	begin_store(&config);

	/* worker.c claim_body(), with the sessions that play workers as live ones */
	sx.lock_claims();
	npids = sx.live_pids(pids, ISO_MAX_LIVE_PIDS);
	if (extra != NULL)
	{
		Datum *elems;
		bool *nulls;
		int nextra;

		deconstruct_array(extra, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &nextra);
		for (i = 0; i < nextra && npids < (int) lengthof(pids); i++)
			if (!nulls[i])
				pids[npids++] = DatumGetInt32(elems[i]);
	}
	n = sx.claim(&config, limit, pids, npids, &claims, cxt);

	SPI_finish();
	skus = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		skus[i] = claims[i].sku;
	PG_RETURN_ARRAYTYPE_P(text_array(skus, n));
}

/* ---------------------------------------------------------------- renew */

Datum
stockx_isolation_renew(PG_FUNCTION_ARGS)
{
	StockxStoreConfig config;
	StockxClaim **claims;
	bool *held;
	char **kept;
	int n, nkept = 0, i;

	claims = claims_of(PG_GETARG_ARRAYTYPE_P(0), &n);
	held = palloc0(sizeof(bool) * (n + 1));
	begin_store(&config);
	(void) sx.renew(&config, claims, n, held);
	SPI_finish();

	kept = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		if (held[i])
			kept[nkept++] = claims[i]->sku;
	PG_RETURN_ARRAYTYPE_P(text_array(kept, nkept));
}

/* ---------------------------------------------------------------- write */

/*
 * What a worker holds for a new product once its search, variants and
 * market data answered: one product (the ids are the test's own), one
 * size, an ask of 100 in each currency of the settings.
 */
static void
enriched_result(StockxResult *result, const char *sku, const StockxStoreConfig *config)
{
	SxVariant *v = palloc0(sizeof(SxVariant));
	int c;

	result->outcome = SX_OUTCOME_ENRICHED;
	result->product.product_id = "00000000-0000-0000-0000-00000000a000";
	result->product.style_id = pstrdup(sku);
	result->product.title = "isolation test product";
	result->product.json = "{}";
	v->variant_id = "00000000-0000-0000-0000-00000000a001";
	v->variant_value = "9";
	result->variants = v;
	result->nvariants = 1;
	for (c = 0; c < config->currencies.n; c++)
	{
		SxMarket *m = palloc0(sizeof(SxMarket));

		m->variant_id = v->variant_id;
		m->currency_code = pstrdup(config->currencies.code[c]);
		m->lowest_ask = "100";
		result->market[c] = m;
		result->nmarket[c] = 1;
	}
}

Datum
stockx_isolation_write(PG_FUNCTION_ARGS)
{
	char *outcome = text_to_cstring(PG_GETARG_TEXT_PP(1));
	MemoryContext cxt = CurrentMemoryContext;
	StockxStoreConfig config;
	StockxClaim *claim;
	StockxResult result;
	StockxWritten written;
	StockxEventQueue events;
	const char *answer;

	claim = claim_of(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	memset(&result, 0, sizeof(result));
	if (strcmp(outcome, "not_found") == 0)
		result.outcome = SX_OUTCOME_NOT_FOUND;
	else if (strcmp(outcome, "failed") == 0)
		result.outcome = SX_OUTCOME_FAILED;
	else if (strcmp(outcome, "retry_later") == 0)
	{
		result.outcome = SX_OUTCOME_RETRY_LATER;
		result.retry_in_s = 60;
	}
	else if (strcmp(outcome, "enriched") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("outcome must be not_found, failed, retry_later or enriched")));
	result.error = "settled by an isolation test";

	begin_store(&config);
	if (strcmp(outcome, "enriched") == 0)
		enriched_result(&result, claim->sku, &config);
	sx.events_init(&events, cxt);
	sx.write_row(&config, claim, &result, &written, &events);
	SPI_finish();

	if (written.write == SX_WRITE_LOST_LEASE)
		answer = "lost the lease";
	else if (written.status != NULL)
		answer = written.status;
	else
		answer = "not written";
	PG_RETURN_TEXT_P(cstring_to_text(answer));
}
