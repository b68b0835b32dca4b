/*-------------------------------------------------------------------------
 * enrich.h
 *	  Enriching one SKU as a small state machine that the worker drives:
 *	  which request the row needs next, and what an answer means for it.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_ENRICH_ONE_H
#define STOCKX_ENRICH_ONE_H

#include "utils/palloc.h"

#include "http.h"
#include "stockx_config.h"
#include "stockx_types.h"
#include "stockx_json.h"

/* A row leased by a worker. */
typedef struct StockxClaim
{
	char *sku;        /* as stored, in the database encoding */
	char *sku_utf8;   /* as sent to StockX */
	char *status;     /* pending | enriched | not_found */
	char *product_id; /* known StockX product, or NULL */
	int attempts;
	bool by_gtin;          /* sku is a barcode: look it up (GET .../gtins/{gtin}) */
	int nknown;            /* variants we already store */
	char **known_variants; /* their ids, lower case */
} StockxClaim;

typedef enum StockxOutcome
{
	SX_OUTCOME_NONE = 0,  /* not processed (left for later) */
	SX_OUTCOME_ENRICHED,  /* product, variants and market data */
	SX_OUTCOME_REFRESHED, /* market data (and new variants, if any) */
	SX_OUTCOME_NOT_FOUND,
	SX_OUTCOME_RETRY_LATER, /* transient failure: one attempt used */
	SX_OUTCOME_FAILED,      /* permanent failure: fail at once */
	SX_OUTCOME_DEFERRED,    /* not the row's fault (429s): untouched */
	SX_OUTCOME_MERGED       /* a barcode of a product another row holds: joins that row */
} StockxOutcome;

typedef struct StockxResult
{
	StockxOutcome outcome;
	char *error; /* for RETRY_LATER and FAILED */
	SxProduct product;
	SxVariant *variants; /* NULL unless fetched */
	int nvariants;
	SxMarket *market[SX_MAX_CURRENCIES]; /* per currency of the config, in its order */
	int nmarket[SX_MAX_CURRENCIES];
	char *merged_into; /* MERGED: the SKU of the row that holds the product */
	double retry_in_s; /* RETRY_LATER: when the row is due again */
} StockxResult;

/* What the enricher needs from the worker, as stockx_json.c gets its allocator. */
typedef struct StockxJobEnv
{
	const StockxEnrichConfig *config;
	double (*unit_random)(void); /* in [0, 1) */
	int64 (*now)(void);          /* monotonic microseconds */
} StockxJobEnv;

typedef enum StockxJobStep
{
	SX_STEP_SEARCH = 0, /* a style id: search, page by page */
	SX_STEP_GTIN,       /* a barcode: its variant and product */
	SX_STEP_OWNER,      /* no request: does a row hold that product already? */
	SX_STEP_PRODUCT,    /* the product of a barcode */
	SX_STEP_VARIANTS,
	SX_STEP_MARKET,
	SX_STEP_DONE
} StockxJobStep;

typedef struct StockxJob
{
	StockxClaim *claim;
	MemoryContext cxt; /* parsed results; reset when the row is done */
	StockxJobStep step;
	int currency;         /* of the market-data request, index into the config's list */
	bool refresh;         /* market data only, variants when new ones appear */
	int retries;          /* of the current request */
	bool token_refreshed; /* the current request already had a 401 */
	int64 not_before;     /* backoff: monotonic time before which it waits */
	bool in_flight;
	struct StockxTransfer *transfer; /* while in flight */
	MemoryContext body_cxt;          /* the answer being read; reset after each */
	uint64 token_generation;         /* of the token the request carried */
	StockxResult result;
	int page;     /* of the search answer asked for */
	bool settled; /* result final, waiting to be written */
	int batch;    /* index of the worker's batch that owns the claim */
} StockxJob;

/* What the limiter should hear about an answer. */
typedef enum StockxLimiterEvent
{
	SX_LIMITER_SUCCESS = 0,  /* StockX counted it and did not refuse it for the rate */
	SX_LIMITER_RATE_LIMITED, /* 429 */
	SX_LIMITER_FAILURE       /* 5xx, timeout, no connection: decides nothing */
} StockxLimiterEvent;

typedef enum StockxStep
{
	SX_JOB_NEXT = 0,       /* send the next (or the same) request when allowed */
	SX_JOB_SETTLED,        /* result is final */
	SX_JOB_NEED_TOKEN,     /* 401: get a fresh token, then repeat */
	SX_JOB_BAD_CREDENTIALS /* StockX refuses our credentials: stop the run */
} StockxStep;

typedef struct StockxAnswerInfo
{
	StockxLimiterEvent limiter_event;
	int64 retry_after_us; /* for 429, -1 when absent */
	bool retried;         /* the same request will be repeated */
	const char *endpoint;
	char credentials_error[256];
} StockxAnswerInfo;

extern void stockx_job_init(StockxJob *job, StockxClaim *claim, MemoryContext cxt, int batch);
extern char *stockx_job_path(StockxJob *job, const StockxEnrichConfig *config,
                             const char **endpoint);
extern StockxStep stockx_job_answer(StockxJob *job, const StockxResponse *resp,
                                    const StockxJobEnv *env, StockxAnswerInfo *info);
extern StockxStep stockx_job_transient(StockxJob *job, const char *error, const StockxJobEnv *env);
extern bool stockx_job_ready(const StockxJob *job, int64 now);
extern const char *stockx_job_owner_wanted(const StockxJob *job);
extern StockxStep stockx_job_owner_found(StockxJob *job, const char *owner_sku);

#endif /* STOCKX_ENRICH_ONE_H */
