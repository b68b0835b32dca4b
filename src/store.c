/*-------------------------------------------------------------------------
 * store.c
 *	  Everything stockx_enrich reads from or writes to its tables, through
 *	  SPI and always with parameters.  Table names are qualified with the
 *	  extension's schema, looked up once per process.
 *
 * Writing a batch: each row is written in its own subtransaction, so a row
 * the database refuses (say, a \u0000 in its JSON) is marked failed with the
 * error text while the rest of the batch commits.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "store.h"

#define SX_MAX_PARAMS 16
/* live workers' leases are recognised by pid; expiry only guards against a reused pid */
#define SX_LEASE "interval '1 hour'"

typedef struct Params
{
	int n;
	Oid types[SX_MAX_PARAMS];
	Datum values[SX_MAX_PARAMS];
	char nulls[SX_MAX_PARAMS];
} Params;

static char *schema = NULL; /* quoted, in TopMemoryContext */

static void
param_text(Params *p, const char *s)
{
	Assert(p->n < SX_MAX_PARAMS);
	p->types[p->n] = TEXTOID;
	p->values[p->n] = s ? CStringGetTextDatum(s) : (Datum) 0;
	p->nulls[p->n] = s ? ' ' : 'n';
	p->n++;
}

static void
param_int4(Params *p, int32 v)
{
	p->types[p->n] = INT4OID;
	p->values[p->n] = Int32GetDatum(v);
	p->nulls[p->n] = ' ';
	p->n++;
}

static void
param_int8(Params *p, int64 v)
{
	p->types[p->n] = INT8OID;
	p->values[p->n] = Int64GetDatum(v);
	p->nulls[p->n] = ' ';
	p->n++;
}

static void
param_float8(Params *p, double v)
{
	p->types[p->n] = FLOAT8OID;
	p->values[p->n] = Float8GetDatum(v);
	p->nulls[p->n] = ' ';
	p->n++;
}

static void
param_array(Params *p, Oid array_type, Oid elem_type, Datum *elems, int n)
{
	int16 typlen;
	bool typbyval;
	char typalign;

	get_typlenbyvalalign(elem_type, &typlen, &typbyval, &typalign);
	p->types[p->n] = array_type;
	p->values[p->n] =
	    PointerGetDatum(construct_array(elems, n, elem_type, typlen, typbyval, typalign));
	p->nulls[p->n] = ' ';
	p->n++;
}

/* Run one statement; the SQL template's %s are the schema. */
static void
run(const char *sql, Params *p, int expected)
{
	int rc = SPI_execute_with_args(sql, p ? p->n : 0, p ? p->types : NULL, p ? p->values : NULL,
	                               p ? p->nulls : NULL, false, 0);

	if (rc != expected)
		elog(ERROR, "stockx_enrich: SPI_execute_with_args returned %s", SPI_result_code_string(rc));
}

/* The SQL text with every @extschema@ replaced by the extension's schema. */
static char *
Q(const char *sql)
{
	StringInfoData buf;
	const char *p = sql;
	const char *hit;

	initStringInfo(&buf);
	while ((hit = strstr(p, "@extschema@")) != NULL)
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, schema);
		p = hit + strlen("@extschema@");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/* Look up the extension's schema (once per process). */
void
stockx_store_init(void)
{
	bool isnull;
	Datum nsp;

	if (schema != NULL)
		return;
	if (SPI_execute("SELECT n.nspname FROM pg_catalog.pg_extension e "
	                "  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
	                " WHERE e.extname = 'stockx_enrich'",
	                true, 1) != SPI_OK_SELECT)
		elog(ERROR, "stockx_enrich: could not look up the extension's schema");
	if (SPI_processed != 1)
		ereport(
		    ERROR,
		    (errcode(ERRCODE_UNDEFINED_OBJECT),
		     errmsg("extension \"stockx_enrich\" is not installed in this database"),
		     errhint(
		         "Run CREATE EXTENSION stockx_enrich in the database that holds the catalogue.")));
	nsp = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	schema = MemoryContextStrdup(TopMemoryContext, quote_identifier(NameStr(*DatumGetName(nsp))));
}

/*
 * Lease up to limit due rows: never-enriched first, then stale enriched
 * rows (with refresh_after), then not_found rows older than a week.  A
 * lease is free when it expired or its pid is no live worker of ours.
 */
int
stockx_store_claim(int limit, StockxClaim **claims, MemoryContext cxt)
{
	/* each kind reads the head of its own partial index, in index order */
	static const struct
	{
		const char *where;
		const char *order_by;
	} kinds[] = {
		{ "status = 'pending'", "next_attempt_at NULLS FIRST, created_at" },
		{ "status = 'enriched' AND market_updated_at < now() - make_interval(secs => $4)",
		  "market_updated_at" },
		{ "status = 'not_found' AND updated_at < now() - interval '7 days'", "updated_at" },
	};
	int pids[256];
	int npids = Min(stockx_worker_slots(InvalidOid, 0, pids, lengthof(pids)), (int) lengthof(pids));
	Datum pid_datums[256];
	StockxClaim *out = MemoryContextAllocZero(cxt, sizeof(StockxClaim) * limit);
	int got = 0;
	int k, i;

	for (i = 0; i < npids; i++)
		pid_datums[i] = Int32GetDatum(pids[i]);

	for (k = 0; k < (int) lengthof(kinds) && got < limit; k++)
	{
		Params p = { 0 };
		char *sql;
		uint64 row;

		if (k == 1 && stockx_refresh_after_s <= 0)
			continue;
		sql = psprintf("UPDATE %s.stockx_product p "
		               "   SET lease_pid = $2, lease_until = now() + " SX_LEASE " "
		               "  FROM (SELECT sku FROM %s.stockx_product "
		               "         WHERE %s "
		               "           AND (next_attempt_at IS NULL OR next_attempt_at <= now()) "
		               "           AND (lease_pid IS NULL OR lease_until < now() "
		               "                OR lease_pid <> ALL ($3)) "
		               "         ORDER BY %s LIMIT $1 FOR UPDATE SKIP LOCKED) due "
		               " WHERE p.sku = due.sku "
		               "RETURNING p.sku, p.status, p.stockx_product_id::text, p.attempts, "
		               "  (SELECT string_agg(v.variant_id::text, ',') "
		               "     FROM %s.stockx_variant v WHERE v.sku = p.sku)",
		               schema, schema, kinds[k].where, kinds[k].order_by, schema);
		param_int4(&p, limit - got);
		param_int4(&p, MyProcPid);
		param_array(&p, INT4ARRAYOID, INT4OID, pid_datums, npids);
		param_float8(&p, (double) stockx_refresh_after_s);
		run(sql, &p, SPI_OK_UPDATE_RETURNING);

		for (row = 0; row < SPI_processed; row++)
		{
			HeapTuple tup = SPI_tuptable->vals[row];
			TupleDesc desc = SPI_tuptable->tupdesc;
			StockxClaim *c = &out[got++];
			char *known = SPI_getvalue(tup, desc, 5);
			bool isnull;

			c->sku = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
			c->status = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
			if (SPI_getvalue(tup, desc, 3) != NULL)
				c->product_id = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 3));
			c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			if (known != NULL)
			{
				char *copy = MemoryContextStrdup(cxt, known);
				char *tok;
				char *save;
				int cap = 1;

				for (tok = copy; *tok; tok++)
					cap += (*tok == ',');
				c->known_variants = MemoryContextAlloc(cxt, sizeof(char *) * cap);
				for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
					c->known_variants[c->nknown++] = tok;
			}
		}
	}
	*claims = out;
	return got;
}

static void
write_variants(StockxResult *r)
{
	char *sql_variant =
	    Q("INSERT INTO @extschema@.stockx_variant AS v "
	      "  (variant_id, sku, variant_name, variant_value, gtins, size_chart) "
	      "VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb) "
	      "ON CONFLICT (variant_id) DO UPDATE SET sku = EXCLUDED.sku, "
	      "  variant_name = EXCLUDED.variant_name, variant_value = EXCLUDED.variant_value, "
	      "  gtins = EXCLUDED.gtins, size_chart = EXCLUDED.size_chart");
	Datum *ids = palloc(sizeof(Datum) * (r->nvariants + 1));
	Params p = { 0 };
	int i;

	for (i = 0; i < r->nvariants; i++)
	{
		SxVariant *v = &r->variants[i];
		Params vp = { 0 };

		param_text(&vp, v->variant_id);
		param_text(&vp, r->claim->sku);
		param_text(&vp, v->variant_name);
		param_text(&vp, v->variant_value);
		param_text(&vp, v->gtins_json);
		param_text(&vp, v->size_chart_json);
		run(sql_variant, &vp, SPI_OK_INSERT);
		ids[i] = CStringGetTextDatum(v->variant_id);
	}
	/* a full variants list replaces the old one */
	param_text(&p, r->claim->sku);
	param_array(&p, TEXTARRAYOID, TEXTOID, ids, r->nvariants);
	run(Q("DELETE FROM @extschema@.stockx_variant WHERE sku = $1 AND variant_id::text <> ALL ($2)"),
	    &p, SPI_OK_DELETE);
}

static void
write_market(StockxResult *r)
{
	char *sql = Q("UPDATE @extschema@.stockx_variant SET lowest_ask = $3::numeric, "
	              "  highest_bid = $4::numeric, sell_faster = $5::numeric, "
	              "  earn_more = $6::numeric, flex_lowest_ask = $7::numeric, "
	              "  currency_code = $8, market_updated_at = now() "
	              " WHERE variant_id = $1::uuid AND sku = $2");
	Params p = { 0 };
	int i;

	for (i = 0; i < r->nmarket; i++)
	{
		SxMarket *m = &r->market[i];
		Params mp = { 0 };

		param_text(&mp, m->variant_id);
		param_text(&mp, r->claim->sku);
		param_text(&mp, m->lowest_ask);
		param_text(&mp, m->highest_bid);
		param_text(&mp, m->sell_faster);
		param_text(&mp, m->earn_more);
		param_text(&mp, m->flex_lowest_ask);
		param_text(&mp, m->currency_code ? m->currency_code : stockx_currency_code);
		run(sql, &mp, SPI_OK_UPDATE);
	}
	/* product-level summary: minimum ask and maximum bid over the variants */
	param_text(&p, r->claim->sku);
	param_text(&p, stockx_currency_code);
	run(Q("UPDATE @extschema@.stockx_product p SET lowest_ask = v.lo, highest_bid = v.hi, "
	      "  currency_code = $2, market_updated_at = now(), updated_at = now(), "
	      "  attempts = 0, last_error = NULL, next_attempt_at = NULL, "
	      "  lease_pid = NULL, lease_until = NULL "
	      "  FROM (SELECT min(lowest_ask) AS lo, max(highest_bid) AS hi "
	      "          FROM @extschema@.stockx_variant WHERE sku = $1) v "
	      " WHERE p.sku = $1"),
	    &p, SPI_OK_UPDATE);
}

static void
write_enriched(StockxResult *r)
{
	SxProduct *pr = &r->product;
	Params p = { 0 };

	param_text(&p, r->claim->sku);
	param_text(&p, pr->product_id);
	param_text(&p, pr->url_key);
	param_text(&p, pr->style_id);
	param_text(&p, pr->title);
	param_text(&p, pr->brand);
	param_text(&p, pr->product_type);
	param_text(&p, pr->gender);
	param_text(&p, pr->season);
	param_text(&p, pr->colorway);
	param_text(&p, pr->color);
	param_text(&p, pr->retail_price);
	param_text(&p, pr->release_date);
	param_text(&p, pr->json);
	run(Q("UPDATE @extschema@.stockx_product SET status = 'enriched', stockx_product_id = "
	      "$2::uuid, "
	      "  url_key = $3, style_id = $4, title = $5, brand = $6, product_type = $7, "
	      "  gender = $8, season = $9, colorway = $10, color = $11, "
	      "  retail_price = $12::numeric, release_date = $13::date, product = $14::jsonb, "
	      "  enriched_at = now(), updated_at = now() "
	      " WHERE sku = $1"),
	    &p, SPI_OK_UPDATE);
	write_variants(r);
	write_market(r);
}

/* The status column of the row an UPDATE ... RETURNING status touched. */
static const char *
returned_status(void)
{
	if (SPI_processed != 1)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* Settle one row; returns the row's status afterwards. */
static const char *
write_one(StockxResult *r)
{
	Params p = { 0 };

	switch (r->outcome)
	{
		case SX_OUTCOME_ENRICHED:
			write_enriched(r);
			return "enriched";
		case SX_OUTCOME_REFRESHED:
			if (r->variants != NULL)
				write_variants(r);
			write_market(r);
			return "enriched";
		case SX_OUTCOME_NOT_FOUND:
			param_text(&p, r->claim->sku);
			run(Q("UPDATE @extschema@.stockx_product SET status = 'not_found', attempts = 0, "
			      "  next_attempt_at = NULL, last_error = NULL, lease_pid = NULL, "
			      "  lease_until = NULL, updated_at = now() WHERE sku = $1"),
			    &p, SPI_OK_UPDATE);
			return "not_found";
		case SX_OUTCOME_RETRY_LATER:
			param_text(&p, r->claim->sku);
			param_text(&p, r->error);
			param_int4(&p, stockx_max_attempts);
			param_float8(&p, (double) sx_backoff_us(stockx_backoff_base_ms, stockx_backoff_max_ms,
			                                        r->claim->attempts, 0.5 + stockx_random() / 2) /
			                     1e6);
			run(Q("UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
			      "  status = CASE WHEN status = 'pending' AND attempts + 1 >= $3 "
			      "                THEN 'failed' ELSE status END, "
			      "  next_attempt_at = now() + make_interval(secs => $4), "
			      "  lease_pid = NULL, lease_until = NULL, updated_at = now() "
			      " WHERE sku = $1 RETURNING status"),
			    &p, SPI_OK_UPDATE_RETURNING);
			return returned_status();
		case SX_OUTCOME_FAILED:
			param_text(&p, r->claim->sku);
			param_text(&p, r->error);
			run(Q("UPDATE @extschema@.stockx_product SET attempts = attempts + 1, last_error = $2, "
			      "  next_attempt_at = CASE WHEN status = 'pending' THEN NULL "
			      "                         ELSE now() + interval '1 day' END, "
			      "  status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, "
			      "  lease_pid = NULL, lease_until = NULL, updated_at = now() "
			      " WHERE sku = $1 RETURNING status"),
			    &p, SPI_OK_UPDATE_RETURNING);
			return returned_status();
		default:
			return NULL;
	}
}

static void
count_outcome(StockxCounters *c, const char *status, StockxOutcome outcome)
{
	if (status == NULL)
		return;
	c->processed++;
	if (outcome == SX_OUTCOME_RETRY_LATER && strcmp(status, "failed") != 0)
		return; /* still due: not a final result */
	if (strcmp(status, "enriched") == 0)
		c->enriched++;
	else if (strcmp(status, "not_found") == 0)
		c->not_found++;
	else if (strcmp(status, "failed") == 0)
		c->failed++;
}

/*
 * Write the settled rows of a batch, each in a subtransaction, and count
 * them into *counters.  Rows left unsettled keep their lease until
 * stockx_store_release.
 */
void
stockx_store_write_results(StockxResult *results, int n, StockxCounters *counters)
{
	int i;

	for (i = 0; i < n; i++)
	{
		StockxResult *r = &results[i];
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		const char *status = NULL;

		if (r->outcome == SX_OUTCOME_NONE || r->outcome == SX_OUTCOME_DEFERRED)
			continue;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			status = write_one(r);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			ErrorData *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;

			ereport(WARNING, (errmsg("stockx_enrich: could not store SKU \"%s\": %s", r->claim->sku,
			                         edata->message)));
			r->outcome = SX_OUTCOME_FAILED;
			r->error = psprintf("could not store the answer: %s", edata->message);
			FreeErrorData(edata);
			status = write_one(r);
		}
		PG_END_TRY();
		count_outcome(counters, status, r->outcome);
	}
}

/* Give back the leases of rows this worker did not settle. */
void
stockx_store_release(StockxClaim *claims, int n)
{
	Params p = { 0 };
	Datum *skus;
	int i;

	if (n == 0)
		return;
	skus = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		skus[i] = CStringGetTextDatum(claims[i].sku);
	param_array(&p, TEXTARRAYOID, TEXTOID, skus, n);
	param_int4(&p, MyProcPid);
	run(Q("UPDATE @extschema@.stockx_product SET lease_pid = NULL, lease_until = NULL "
	      " WHERE sku = ANY ($1) AND lease_pid = $2"),
	    &p, SPI_OK_UPDATE);
}

int64
stockx_store_add_run_counters(int64 run_id, const StockxCounters *d)
{
	Params p = { 0 };
	bool isnull;

	param_int8(&p, run_id);
	param_int8(&p, d->processed);
	param_int8(&p, d->enriched);
	param_int8(&p, d->not_found);
	param_int8(&p, d->failed);
	param_int8(&p, d->requests);
	param_int8(&p, d->responses_429);
	param_int8(&p, d->retries);
	run(Q("INSERT INTO @extschema@.stockx_run AS r (run_id, processed, enriched, not_found, "
	      "failed, "
	      "  requests, responses_429, retries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	      "ON CONFLICT (run_id) DO UPDATE SET processed = r.processed + EXCLUDED.processed, "
	      "  enriched = r.enriched + EXCLUDED.enriched, not_found = r.not_found + "
	      "EXCLUDED.not_found, "
	      "  failed = r.failed + EXCLUDED.failed, requests = r.requests + EXCLUDED.requests, "
	      "  responses_429 = r.responses_429 + EXCLUDED.responses_429, "
	      "  retries = r.retries + EXCLUDED.retries RETURNING r.processed"),
	    &p, SPI_OK_INSERT_RETURNING);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

const char *
stockx_stop_reason_name(StockxStopReason reason)
{
	switch (reason)
	{
		case SX_STOP_NONE:
		case SX_STOP_DONE:
			return "done";
		case SX_STOP_MAX_PRODUCTS:
			return "max_products";
		case SX_STOP_STOPPED:
			return "stopped";
		case SX_STOP_QUOTA:
			return "quota";
		case SX_STOP_CIRCUIT_OPEN:
			return "circuit_open";
		case SX_STOP_CREDENTIALS:
			return "credentials";
		case SX_STOP_ERROR:
			return "error";
	}
	return "error";
}

void
stockx_store_finish_run(int64 run_id, StockxStopReason reason)
{
	Params p = { 0 };

	param_int8(&p, run_id);
	param_text(&p, stockx_stop_reason_name(reason));
	run(Q("UPDATE @extschema@.stockx_run SET finished_at = now(), stop_reason = $2 "
	      " WHERE run_id = $1 AND finished_at IS NULL"),
	    &p, SPI_OK_UPDATE);
}

int64
stockx_store_next_run_id(void)
{
	bool isnull;

	run(Q("SELECT nextval('@extschema@.stockx_run_run_id_seq')"), NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
stockx_store_insert_run(int64 run_id, int workers, int64 max_products)
{
	Params p = { 0 };

	param_int8(&p, run_id);
	param_int4(&p, workers);
	param_int8(&p, max_products);
	if (max_products <= 0)
		p.nulls[2] = 'n';
	run(Q("INSERT INTO @extschema@.stockx_run AS r (run_id, workers, max_products) VALUES ($1, $2, "
	      "$3) "
	      "ON CONFLICT (run_id) DO UPDATE SET workers = EXCLUDED.workers, "
	      "  max_products = EXCLUDED.max_products"),
	    &p, SPI_OK_INSERT);
}

/* The stop_reason of a run (palloc'd in the caller's context), or NULL. */
char *
stockx_store_run_reason(int64 run_id)
{
	Params p = { 0 };
	char *reason;

	param_int8(&p, run_id);
	run(Q("SELECT coalesce(stop_reason, 'error') FROM @extschema@.stockx_run WHERE run_id = $1"),
	    &p, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return NULL;
	reason = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return reason ? MemoryContextStrdup(TopTransactionContext, reason) : NULL;
}

/* Runs left unfinished by a crash or a restart are closed as errors. */
void
stockx_store_fail_orphan_runs(void)
{
	run(Q("UPDATE @extschema@.stockx_run SET finished_at = now(), stop_reason = 'error' "
	      " WHERE finished_at IS NULL"),
	    NULL, SPI_OK_UPDATE);
}

/* Merge today's persisted request count into the shared limiter. */
void
stockx_store_load_quota(void)
{
	Params p = { 0 };
	int64 day = sx_day_of(stockx_now_us());
	bool isnull;
	int64 requests = 0;

	param_int4(&p, (int32) day);
	run(Q("SELECT requests FROM @extschema@.stockx_quota WHERE day = DATE '1970-01-01' + $1"), &p,
	    SPI_OK_SELECT);
	if (SPI_processed == 1)
		requests =
		    DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	stockx_quota_merge(day, requests);
}

/* Persist the shared count of today's requests. */
void
stockx_store_save_quota(void)
{
	Params p = { 0 };
	SxLimiter snap;

	stockx_limiter_snapshot(&snap);
	if (snap.requests_today == 0)
		return;
	param_int4(&p, (int32) snap.quota_day);
	param_int8(&p, snap.requests_today);
	run(Q("INSERT INTO @extschema@.stockx_quota AS q (day, requests) "
	      "VALUES (DATE '1970-01-01' + $1, $2) "
	      "ON CONFLICT (day) DO UPDATE SET requests = GREATEST(q.requests, EXCLUDED.requests)"),
	    &p, SPI_OK_INSERT);
}
