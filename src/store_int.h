/*-------------------------------------------------------------------------
 * store_int.h
 *	  What the store's files (store*.c) share and nobody else sees: a
 *	  statement with its kept plan, the parameters of one execution, and
 *	  the helpers that run them.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_STORE_INT_H
#define STOCKX_STORE_INT_H

#include "executor/spi.h"

#include "events.h"

#define SX_MAX_PARAMS 24

/*
 * One SQL statement of the store, defined next to the function that fills
 * its parameters.  @extschema@ in the text stands for the extension's
 * schema, quoted; the plan is prepared on first use and kept for the
 * process (re-prepared when the extension was dropped and created again).
 */
typedef struct Statement
{
	const char *sql;
	int nargs;
	Oid types[SX_MAX_PARAMS];
	SPIPlanPtr plan;  /* kept plan, or NULL */
	Oid prepared_for; /* the extension the plan was prepared for */
} Statement;

/* Parameters of one execution. */
typedef struct Params
{
	int n;
	Datum values[SX_MAX_PARAMS];
	char nulls[SX_MAX_PARAMS];
} Params;

extern void store_run(Statement *st, Params *p, int expected);
extern uint64 store_rows(void);
extern const char *store_returned_status(void);
extern void store_param(Params *p, Datum value, bool isnull);
extern void store_param_text(Params *p, const char *s);
extern void store_param_api_text(Params *p, const char *s);
extern void store_param_int4(Params *p, int32 v);
extern void store_param_int8(Params *p, int64 v);
extern void store_param_float8(Params *p, double v);
extern void store_param_api_array(Params *p, char **strs, int n);
extern void store_param_bool_array(Params *p, bool *vals, int n);
extern Datum store_array_datum(Datum *elems, bool *nulls, int n, Oid elem_type);

/* store_alerts.c */
extern void stockx_store_check_alerts(const char *sku, StockxEventQueue *events);

#endif /* STOCKX_STORE_INT_H */
