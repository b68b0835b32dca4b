/*-------------------------------------------------------------------------
 * store.c
 *	  Everything stockx_enrich reads from or writes to its tables, through
 *	  SPI plans prepared once per process and kept (SPI_keepplan), always
 *	  with parameters.  The SQL is built one way: Q() puts the extension's
 *	  schema, quoted, wherever the text says @extschema@; functions are
 *	  qualified with pg_catalog, and the callers run with search_path
 *	  pinned to pg_catalog, pg_temp.
 *
 * Writing a row: every write is conditional on the row's lease still
 * being ours (lease_pid); a row whose lease was lost is left alone.  The
 * variants of a product go in one statement (arrays unnested, in id
 * order), not one per variant.  Each row is written in its own
 * subtransaction: when the database refuses the row's own data (SQLSTATE
 * classes 22 and 23: say a value the database encoding cannot represent)
 * the row is marked failed with the reason and the rest of the batch
 * goes on; any other error (a deadlock, a lock timeout, a cancel) is not
 * the row's fault and aborts the whole write, which the worker repeats.
 * Neither is a price history row refused because its month's partition
 * was attached meanwhile: store_write.c raises it as a serialization
 * failure.
 *
 * Text from StockX is UTF-8 and is converted to the database encoding
 * here; a value that cannot be represented is such a data error.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "extension.h"
#include "store.h"
#include "store_int.h"

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
		appendStringInfoString(&buf, stockx_extension_schema());
		p = hit + strlen("@extschema@");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/* Find the extension for the store's statements (once per transaction). */
void
stockx_store_init(void)
{
	stockx_extension_find();
}

/* The statement's kept plan, prepared now if it has none for this extension. */
static SPIPlanPtr
plan(Statement *st)
{
	if (st->plan != NULL && st->prepared_for != stockx_extension_oid())
	{
		SPI_freeplan(st->plan);
		st->plan = NULL;
	}
	if (st->plan == NULL)
	{
		char *sql = Q(st->sql);
		SPIPlanPtr p = SPI_prepare(sql, st->nargs, st->types);

		if (p == NULL)
			elog(ERROR, "stockx_enrich: SPI_prepare failed: %s",
			     SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		st->plan = p;
		st->prepared_for = stockx_extension_oid();
		pfree(sql);
	}
	return st->plan;
}

/* Execute a statement's kept plan; errors unless SPI answers `expected`. */
void
store_run(Statement *st, Params *p, int expected)
{
	int rc;

	Assert(p->n == st->nargs);
	rc = SPI_execute_plan(plan(st), p->values, p->nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "stockx_enrich: statement \"%.40s...\" returned %s", st->sql,
		     SPI_result_code_string(rc));
}

/* ---------------------------------------------------------------- parameters */

void
store_param(Params *p, Datum value, bool isnull)
{
	Assert(p->n < SX_MAX_PARAMS);
	p->values[p->n] = value;
	p->nulls[p->n] = isnull ? 'n' : ' ';
	p->n++;
}

/* Text in the database encoding (SKUs, our own words). */
void
store_param_text(Params *p, const char *s)
{
	store_param(p, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL);
}

/* Text from StockX (UTF-8), converted to the database encoding. */
static Datum
api_text_datum(const char *s)
{
	return PointerGetDatum(cstring_to_text(pg_any_to_server(s, strlen(s), PG_UTF8)));
}

void
store_param_api_text(Params *p, const char *s)
{
	store_param(p, s ? api_text_datum(s) : (Datum) 0, s == NULL);
}

void
store_param_int4(Params *p, int32 v)
{
	store_param(p, Int32GetDatum(v), false);
}

void
store_param_int8(Params *p, int64 v)
{
	store_param(p, Int64GetDatum(v), false);
}

void
store_param_float8(Params *p, double v)
{
	store_param(p, Float8GetDatum(v), false);
}

/* A one-dimensional array of n datums (NULL where nulls[i]). */
Datum
store_array_datum(Datum *elems, bool *nulls, int n, Oid elem_type)
{
	int16 typlen;
	bool typbyval;
	char typalign;
	int dims[1] = { n };
	int lbs[1] = { 1 };

	get_typlenbyvalalign(elem_type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(
	    construct_md_array(elems, nulls, 1, dims, lbs, elem_type, typlen, typbyval, typalign));
}

/* A text[] of strings from StockX, with NULL for NULL entries. */
void
store_param_api_array(Params *p, char **strs, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	bool *nulls = palloc(sizeof(bool) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = strs[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : api_text_datum(strs[i]);
	}
	store_param(p, store_array_datum(elems, nulls, n, TEXTOID), false);
}

void
store_param_bool_array(Params *p, bool *vals, int n)
{
	Datum *elems = palloc(sizeof(Datum) * (n + 1));
	int i;

	for (i = 0; i < n; i++)
		elems[i] = BoolGetDatum(vals[i]);
	store_param(p, store_array_datum(elems, NULL, n, BOOLOID), false);
}

/* How many rows a statement touched or returned. */
uint64
store_rows(void)
{
	return SPI_processed;
}

static const char *
static_status(const char *status)
{
	static const char *const known[] = { "pending", "enriched", "not_found", "failed", "merged" };
	int i;

	for (i = 0; i < (int) lengthof(known); i++)
		if (status != NULL && strcmp(status, known[i]) == 0)
			return known[i];
	return NULL;
}

/* The status column of the one row an UPDATE ... RETURNING status touched. */
const char *
store_returned_status(void)
{
	if (store_rows() != 1)
		return NULL;
	return static_status(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}
