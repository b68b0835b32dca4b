/*-------------------------------------------------------------------------
 * stockx_enrich.h
 *	  Types shared by the PostgreSQL side of stockx_enrich: what a worker
 *	  is doing, why a run ended, the counters a run keeps, and the small
 *	  helpers of the module file.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_ENRICH_H
#define STOCKX_ENRICH_H

#define STOCKX_SKU_MAX 100
/* room for 100 characters of any encoding */
#define STOCKX_SKU_BUF (STOCKX_SKU_MAX * 4 + 1)

/*
 * The currencies market data is asked for (stockx_enrich.currency_code, a
 * list); the first is the one stockx_product and stockx_variant carry.
 */
#define SX_MAX_CURRENCIES 30
typedef struct StockxCurrencies
{
	int n;
	char code[SX_MAX_CURRENCIES][4];
} StockxCurrencies;

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

/* stockx_enrich.c */
extern const char *stockx_worker_state_name(StockxWorkerState state);
extern const char *stockx_stop_reason_name(StockxStopReason reason);
extern void stockx_counters_add(StockxCounters *into, const StockxCounters *delta);
extern StockxCounters stockx_counters_minus(const StockxCounters *a, const StockxCounters *b);
extern double stockx_random(void);
extern uint32 stockx_wait_event(StockxWaitEvent which);
extern void *stockx_palloc_no_oom(void *context, size_t size);
extern bool stockx_parse_currencies(const char *list, StockxCurrencies *out, char *why,
                                    size_t whylen);

/* worker.c */
extern PGDLLEXPORT void stockx_enrich_worker_main(Datum main_arg);

#endif /* STOCKX_ENRICH_H */
