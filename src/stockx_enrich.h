/*-------------------------------------------------------------------------
 * stockx_enrich.h
 *	  Declarations shared by the PostgreSQL side of stockx_enrich: settings,
 *	  the shared-memory layout, and the entry points of each file.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_ENRICH_H
#define STOCKX_ENRICH_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/lwlock.h"

#include "limiter.h"

#define STOCKX_SKU_MAX 100
/* room for 100 characters of any encoding */
#define STOCKX_SKU_BUF (STOCKX_SKU_MAX * 4 + 1)

/* Settings (stockx_enrich.c) */
extern char *stockx_api_base_url;
extern char *stockx_token_url;
extern char *stockx_api_key;
extern char *stockx_client_id;
extern char *stockx_client_secret;
extern char *stockx_refresh_token;
extern char *stockx_access_token;
extern char *stockx_credentials_file;
extern double stockx_requests_per_second;
extern int stockx_burst;
extern int stockx_daily_request_limit;
extern int stockx_batch_size;
extern int stockx_commit_every;
extern int stockx_max_retries;
extern int stockx_backoff_base_ms;
extern int stockx_backoff_max_ms;
extern int stockx_max_attempts;
extern int stockx_request_timeout_ms;
extern int stockx_connect_timeout_ms;
extern int stockx_max_response_bytes;
extern char *stockx_currency_code;
extern int stockx_refresh_after_s;
extern int stockx_circuit_threshold;
extern int stockx_circuit_open_ms;
extern int stockx_max_workers;
extern int stockx_memory_alert_bytes;

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

/* One live (or launching) worker. */
typedef struct StockxWorkerSlot
{
	bool in_use;
	bool exiting; /* finished its loop, writing its last words */
	pid_t pid;    /* 0 while launching */
	Oid database;
	int64 run_id;
	int run_index; /* index into StockxShared.runs */
	StockxWorkerState state;
	char current_sku[STOCKX_SKU_BUF];
	StockxCounters counters;
	TimestampTz started_at;
	TimestampTz last_checkpoint_at;
	int64 memory_bytes;
} StockxWorkerSlot;

/* One active run: the workers of one stockx_enrich_start() call. */
typedef struct StockxRunSlot
{
	bool in_use;
	Oid database;
	int64 run_id;
	int64 max_products; /* 0 = no limit */
	int64 reserved;     /* products handed to workers so far */
	bool stop_requested;
	StockxStopReason stop_reason;
} StockxRunSlot;

/*
 * The shared state.  limiter_lock guards limiter; slots_lock guards runs[]
 * and workers[].  Neither is held across I/O.
 */
typedef struct StockxShared
{
	LWLock *limiter_lock;
	LWLock *slots_lock;
	SxLimiter limiter;
	int nslots;
	StockxRunSlot *runs; /* nslots entries, after workers[] */
	StockxWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} StockxShared;

/* shared_state.c */
extern StockxShared *stockx_shared;
extern void stockx_shmem_request(void);
extern void stockx_shmem_startup(void);
extern void stockx_check_shared(void);
extern int64 stockx_now_us(void);
extern TimestampTz stockx_timestamp_from_us(int64 us);
extern void stockx_limiter_config(SxLimiterConfig *cfg);
extern SxVerdict stockx_limiter_acquire(int64 *wait_us);
extern void stockx_limiter_success(void);
extern int64 stockx_limiter_429(int64 retry_after_us);
extern void stockx_limiter_other_failure(void);
extern void stockx_limiter_snapshot(SxLimiter *copy);
extern int stockx_worker_slots(Oid database, int64 run_id, int *pids, int max);
extern double stockx_random(void);
extern void stockx_quota_merge(int64 day, int64 requests);
extern void *stockx_palloc_no_oom(void *context, size_t size);

/* worker.c */
extern PGDLLEXPORT void stockx_enrich_worker_main(Datum main_arg);
extern const char *stockx_worker_state_name(StockxWorkerState state);

#endif /* STOCKX_ENRICH_H */
