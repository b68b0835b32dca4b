/*-------------------------------------------------------------------------
 * enrich.h
 *	  Enriching one SKU: the requests, their retries, and what came of it.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_ENRICH_ONE_H
#define STOCKX_ENRICH_ONE_H

#include "stockx_client.h"
#include "stockx_enrich.h"
#include "stockx_json.h"

/* A row leased by a worker. */
typedef struct StockxClaim
{
	char *sku;
	char *status;     /* pending | enriched | not_found */
	char *product_id; /* known StockX product, or NULL */
	int attempts;
	int nknown; /* variants we already store */
	char **known_variants;
} StockxClaim;

typedef enum StockxOutcome
{
	SX_OUTCOME_NONE = 0,  /* not processed (left for later) */
	SX_OUTCOME_ENRICHED,  /* product, variants and market data */
	SX_OUTCOME_REFRESHED, /* market data (and new variants, if any) */
	SX_OUTCOME_NOT_FOUND,
	SX_OUTCOME_RETRY_LATER, /* transient failure: one attempt used */
	SX_OUTCOME_FAILED,      /* permanent failure: fail at once */
	SX_OUTCOME_DEFERRED     /* not the row's fault (429s): untouched */
} StockxOutcome;

typedef struct StockxResult
{
	StockxClaim *claim;
	StockxOutcome outcome;
	char *error; /* for RETRY_LATER and FAILED */
	SxProduct product;
	SxVariant *variants;
	int nvariants;
	SxMarket *market;
	int nmarket;
} StockxResult;

/* What the worker and the run should do next. */
typedef enum StockxRunSignal
{
	SX_RUN_CONTINUE = 0,
	SX_RUN_STOP_REQUESTED,
	SX_RUN_STOP_QUOTA,
	SX_RUN_STOP_CIRCUIT,
	SX_RUN_STOP_CREDENTIALS
} StockxRunSignal;

typedef struct StockxEnricher
{
	StockxClient *client;
	StockxCounters *counters; /* the worker's own counters */
	char credentials_error[256];
} StockxEnricher;

extern StockxRunSignal stockx_enrich_one(StockxEnricher *e, StockxClaim *claim,
                                         StockxResult *result, MemoryContext result_cxt);

/* worker.c: publish state; sleep interruptibly (false when asked to stop) */
extern void stockx_worker_set_state(StockxWorkerState state, const char *sku);
extern bool stockx_worker_sleep(int64 wait_us, StockxWorkerState state);
extern bool stockx_worker_stop_requested(void);

#endif /* STOCKX_ENRICH_ONE_H */
