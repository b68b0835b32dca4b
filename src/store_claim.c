/*-------------------------------------------------------------------------
 * store_claim.c
 *	  Claims and leases: which rows are due, leasing a batch of them to a
 *	  worker, renewing and giving back the leases (see store.c for how the
 *	  store runs its statements).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "extension.h"
#include "store.h"
#include "store_int.h"

/* not leased by a live worker ($3), not waiting for a retry */
#define CLAIMABLE                                                                                  \
	"(next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now()) "                            \
	"AND (lease_pid IS NULL OR lease_until < pg_catalog.now() OR lease_pid <> ALL ($3))"

#define CLAIM_SQL(where, order)                                                                     \
	"UPDATE @extschema@.stockx_product p "                                                          \
	"   SET lease_pid = $2, lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => $5) " \
	"  FROM (SELECT sku FROM @extschema@.stockx_product "                                           \
	"         WHERE " where " AND " CLAIMABLE "         ORDER BY " order                            \
	" LIMIT $1 FOR UPDATE SKIP LOCKED) due "                                                        \
	" WHERE p.sku = due.sku "                                                                       \
	"RETURNING p.sku, p.status, p.stockx_product_id::text, p.attempts, "                            \
	"  ARRAY(SELECT v.variant_id::text FROM @extschema@.stockx_variant v WHERE v.sku = p.sku), "    \
	"  p.query_kind = 'gtin'"

#define CLAIM_TYPES                                                                                \
	{                                                                                              \
		INT4OID, INT4OID, INT4ARRAYOID, FLOAT8OID, FLOAT8OID                                       \
	}

/*
 * The $1 due refreshes that come first (by priority, then the longest
 * overdue), from the heads of two indexes: products on refresh_after ($4
 * seconds, 0 = never), in (priority, market_updated_at) order, and products
 * with their own refresh_every, sorted among themselves.
 */
#define REFRESH_CANDIDATES                                                                         \
	"SELECT c.sku FROM ("                                                                          \
	"  (SELECT sku, priority, market_updated_at + pg_catalog.make_interval(secs => $4) AS due_at " \
	"     FROM @extschema@.stockx_product "                                                        \
	"    WHERE status = 'enriched' AND refresh_every IS NULL AND $4 > 0 "                          \
	"      AND market_updated_at < pg_catalog.now() - pg_catalog.make_interval(secs => $4) "       \
	"      AND " CLAIMABLE " ORDER BY priority DESC, market_updated_at LIMIT $1) "                 \
	"  UNION ALL "                                                                                 \
	"  (SELECT sku, priority, market_updated_at + refresh_every "                                  \
	"     FROM @extschema@.stockx_product "                                                        \
	"    WHERE status = 'enriched' AND refresh_every IS NOT NULL "                                 \
	"      AND market_updated_at < pg_catalog.now() - refresh_every "                              \
	"      AND " CLAIMABLE                                                                         \
	" ORDER BY priority DESC, market_updated_at + refresh_every LIMIT $1)) c "                     \
	" ORDER BY c.priority DESC, c.due_at LIMIT $1"

/* ---------------------------------------------------------------- claims */

/*
 * The lock that serializes claims: a lock on the extension's own catalog
 * entry, with a sub-id no SQL command uses.  Advisory-lock keys are public
 * (pg_advisory_lock needs no privilege), so a role with no grants could
 * hold one for ever; nothing but this code can take this lock.
 */
#define SX_CLAIM_LOCK_SUBID 1

/*
 * Serialize the claims of a database until the end of the transaction.  A
 * claim takes over leases whose pid is no live worker, so the caller must
 * read the live workers after this lock: every lease a sibling committed
 * before then belongs to a worker that had attached before it claimed, and
 * no claim can commit in between.  (Reading them before, a sibling that
 * attached and claimed meanwhile would look dead, and its fresh rows would
 * be taken twice.)
 */
void
stockx_store_lock_claims(void)
{
	LockDatabaseObject(ExtensionRelationId, stockx_extension_oid(), SX_CLAIM_LOCK_SUBID,
	                   ExclusiveLock);
}

static Statement st_claim_pending = {
	CLAIM_SQL("status = 'pending'", "priority DESC, next_attempt_at NULLS FIRST, created_at"), 5,
	CLAIM_TYPES
};

static Statement st_claim_refresh = {
	CLAIM_SQL("sku = ANY (ARRAY(" REFRESH_CANDIDATES "))", "priority DESC"), 5, CLAIM_TYPES
};

static Statement st_claim_not_found = {
	CLAIM_SQL("status = 'not_found' AND updated_at < pg_catalog.now() - "
	          "interval '7 days'",
	          "updated_at"),
	5, CLAIM_TYPES
};

/*
 * Lease up to limit due rows: never-enriched first (by priority), then
 * enriched rows whose market data is older than their refresh_every (or
 * refresh_after), by priority and then the longest overdue, then
 * not_found rows older than a week.  A
 * lease is free when it expired or its pid is no live worker; live_pids
 * must have been read after stockx_store_lock_claims().
 */
int
stockx_store_claim(const StockxStoreConfig *config, int limit, const int32 *live_pids, int npids,
                   StockxClaim **claims, MemoryContext cxt)
{
	Statement *const kinds[] = { &st_claim_pending, &st_claim_refresh, &st_claim_not_found };
	StockxClaim *out = MemoryContextAllocZero(cxt, sizeof(StockxClaim) * Max(limit, 1));
	Datum *pid_datums = palloc(sizeof(Datum) * (npids + 1));
	int got = 0;
	int k, i;

	for (i = 0; i < npids; i++)
		pid_datums[i] = Int32GetDatum(live_pids[i]);

	for (k = 0; k < (int) lengthof(kinds) && got < limit; k++)
	{
		Params p = { 0 };
		uint64 row;

		store_param_int4(&p, limit - got);
		store_param_int4(&p, MyProcPid);
		store_param(&p, store_array_datum(pid_datums, NULL, npids, INT4OID), false);
		store_param_float8(&p, (double) config->refresh_after_s);
		store_param_float8(&p, (double) config->lease_s);
		store_run(kinds[k], &p, SPI_OK_UPDATE_RETURNING);

		for (row = 0; row < store_rows() && got < limit; row++)
		{
			HeapTuple tup = SPI_tuptable->vals[row];
			TupleDesc desc = SPI_tuptable->tupdesc;
			StockxClaim *c = &out[got++];
			bool isnull;
			bool known_isnull;
			Datum known = SPI_getbinval(tup, desc, 5, &known_isnull);
			const char *sku = SPI_getvalue(tup, desc, 1);

			c->sku = MemoryContextStrdup(cxt, sku);
			c->sku_utf8 = MemoryContextStrdup(cxt, pg_server_to_any(sku, strlen(sku), PG_UTF8));
			c->status = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
			if (SPI_getvalue(tup, desc, 3) != NULL)
				c->product_id = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 3));
			c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			c->by_gtin = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
			if (!known_isnull)
			{
				Datum *ids;
				bool *id_nulls;
				int nids;
				int j;

				deconstruct_array(DatumGetArrayTypeP(known), TEXTOID, -1, false, TYPALIGN_INT, &ids,
				                  &id_nulls, &nids);
				c->known_variants = MemoryContextAlloc(cxt, sizeof(char *) * (nids + 1));
				for (j = 0; j < nids; j++)
					if (!id_nulls[j])
						c->known_variants[c->nknown++] =
						    MemoryContextStrdup(cxt, TextDatumGetCString(ids[j]));
			}
		}
	}
	*claims = out;
	return got;
}

/* ---------------------------------------------------------------- leases */

static Datum
sku_array(StockxClaim **claims, int n)
{
	Datum *skus = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		skus[i] = CStringGetTextDatum(claims[i]->sku);
	return store_array_datum(skus, NULL, n, TEXTOID);
}

static Statement st_renew = {
	"UPDATE @extschema@.stockx_product "
	"   SET lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => $3) "
	" WHERE sku = ANY ($1) AND lease_pid = $2 RETURNING sku",
	3,
	{ TEXTARRAYOID, INT4OID, FLOAT8OID }
};

/* Extend the leases of claims; held[i] says whether claims[i] is still ours. */
int
stockx_store_renew_leases(const StockxStoreConfig *config, StockxClaim **claims, int n, bool *held)
{
	Params p = { 0 };
	int kept = 0;
	int i;
	uint64 row;

	for (i = 0; i < n; i++)
		held[i] = false;
	if (n == 0)
		return 0;
	store_param(&p, sku_array(claims, n), false);
	store_param_int4(&p, MyProcPid);
	store_param_float8(&p, (double) config->lease_s);
	store_run(&st_renew, &p, SPI_OK_UPDATE_RETURNING);
	for (row = 0; row < store_rows(); row++)
	{
		char *sku = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1);

		for (i = 0; i < n; i++)
			if (!held[i] && strcmp(claims[i]->sku, sku) == 0)
			{
				held[i] = true;
				kept++;
				break;
			}
	}
	return kept;
}

static Statement st_release = {
	"UPDATE @extschema@.stockx_product SET lease_pid = NULL, lease_until = NULL "
	" WHERE sku = ANY ($1) AND lease_pid = $2",
	2,
	{ TEXTARRAYOID, INT4OID }
};

/* Give back the leases of rows this worker did not settle. */
void
stockx_store_release(StockxClaim **claims, int n)
{
	Params p = { 0 };

	if (n == 0)
		return;
	store_param(&p, sku_array(claims, n), false);
	store_param_int4(&p, MyProcPid);
	store_run(&st_release, &p, SPI_OK_UPDATE);
}

static Statement st_anything_due = {
	"SELECT EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	"                WHERE status = 'pending' "
	"                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now())) "
	"    OR EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	"                WHERE status = 'enriched' AND market_updated_at < pg_catalog.now() - "
	"                      coalesce(refresh_every, CASE WHEN $1 > 0 "
	"                               THEN pg_catalog.make_interval(secs => $1) END) "
	"                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now())) "
	"    OR EXISTS (SELECT 1 FROM @extschema@.stockx_product "
	"                WHERE status = 'not_found' "
	"                  AND updated_at < pg_catalog.now() - interval '7 days' "
	"                  AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now()))",
	1,
	{ FLOAT8OID }
};

/* Is any row due now (what a claim could take, leases aside)? */
bool
stockx_store_anything_due(const StockxStoreConfig *config)
{
	Params p = { 0 };
	bool isnull;

	store_param_float8(&p, (double) config->refresh_after_s);
	store_run(&st_anything_due, &p, SPI_OK_SELECT);
	return store_rows() == 1 &&
	       DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}
