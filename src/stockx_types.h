/*-------------------------------------------------------------------------
 * stockx_types.h
 *	  The vocabulary every layer of stockx_enrich shares: the limits that
 *	  must agree, what a worker is doing, why a run ends, the counters a run
 *	  keeps, the waits pg_stat_activity shows, the secrets.  Types and
 *	  constants only; the functions on them are in
 *	  support.c.  Nothing here includes a header of the project.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_TYPES_H
#define STOCKX_TYPES_H

/* Limits that must agree wherever they are used. */
#define SX_MAX_WORKERS    64   /* stockx_enrich.max_workers and the arrays sized by it */
#define SX_MAX_BATCH_SIZE 1000 /* stockx_enrich.batch_size and commit_every */
#define SX_MAX_BATCHES    2    /* batches a worker holds: one under way, one claimed ahead */
#define SX_MAX_IN_FLIGHT  64   /* stockx_enrich.requests_in_flight: requests per worker */

#define STOCKX_SKU_MAX 100
/* room for 100 characters of any encoding */
#define STOCKX_SKU_BUF (STOCKX_SKU_MAX * 4 + 1)

/* What a worker is doing, as shown by stockx_enrich_status. */
typedef enum StockxWorkerState
{
	SX_STATE_STARTING = 0,
	SX_STATE_CLAIMING,
	SX_STATE_REQUESTING,
	SX_STATE_WAITING_RATE_LIMIT,
	SX_STATE_BACKING_OFF,
	SX_STATE_COMMITTING,
	SX_STATE_STOPPING
} StockxWorkerState;

/* Why a run (or one worker of it) ended; larger values win when merged. */
typedef enum StockxStopReason
{
	SX_STOP_NONE = 0,
	SX_STOP_DONE,
	SX_STOP_MAX_PRODUCTS,
	SX_STOP_STOPPED,
	SX_STOP_QUOTA,
	SX_STOP_CIRCUIT_OPEN,
	SX_STOP_CREDENTIALS,
	SX_STOP_ERROR
} StockxStopReason;

/* Counters a worker keeps; the same shape is added to stockx_run. */
typedef struct StockxCounters
{
	int64 processed;
	int64 enriched;
	int64 not_found;
	int64 failed;
	int64 requests;
	int64 responses_429;
	int64 retries;
} StockxCounters;

/* What a process waits for, as pg_stat_activity.wait_event shows it. */
typedef enum StockxWaitEvent
{
	SX_WAIT_HTTP_ANSWER = 0,
	SX_WAIT_RATE_SLOT,
	SX_WAIT_BACKOFF
} StockxWaitEvent;

/* The secrets of the StockX account (settings or credentials_file). */
typedef enum StockxSecret
{
	SX_SECRET_API_KEY = 0,
	SX_SECRET_CLIENT_ID,
	SX_SECRET_CLIENT_SECRET,
	SX_SECRET_REFRESH_TOKEN,
	SX_SECRET_ACCESS_TOKEN,
	SX_SECRET_COUNT
} StockxSecret;

#endif /* STOCKX_TYPES_H */
