/*-------------------------------------------------------------------------
 * slots.h
 *	  The lifecycle of runs and their workers in shared memory: reserve
 *	  (stockx_enrich_start), attach and publish (the worker), finish and
 *	  detach (the worker's way out), stop, and the readers behind the views.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SLOTS_H
#define STOCKX_SLOTS_H

#include "datatype/timestamp.h"
#include "storage/lwlock.h"

#include "stockx_types.h"

/* What a worker publishes about itself. */
typedef struct StockxWorkerReport
{
	StockxWorkerState state;
	const char *sku; /* NULL: keep the current one; "": none */
	const StockxCounters *counters;
	int64 memory_bytes; /* -1: unchanged */
	int in_flight;
	bool checkpoint;
} StockxWorkerReport;

/* A copy of one worker slot, for stockx_enrich_status. */
typedef struct StockxWorkerView
{
	int pid; /* 0 while launching */
	Oid database;
	int64 run_id;
	StockxWorkerState state;
	char current_sku[STOCKX_SKU_BUF];
	StockxCounters counters;
	int in_flight;
	TimestampTz started_at;
	TimestampTz last_checkpoint_at;
	int64 memory_bytes;
} StockxWorkerView;

typedef enum StockxReserveResult
{
	SX_RESERVED = 0,
	SX_RESERVE_RUN_ACTIVE, /* a run of this database is active: *active_run_id */
	SX_RESERVE_NO_SLOTS    /* not enough free worker slots: *free_slots */
} StockxReserveResult;

extern void stockx_slots_shmem_request(void);
extern void stockx_slots_shmem_startup(void);

/* stockx_enrich_start */
extern StockxReserveResult stockx_slots_reserve(Oid database, int64 run_id, int64 max_products,
                                                int workers, int *run_index, int *slots,
                                                int *free_slots, int64 *active_run_id);
extern void stockx_slots_release_unattached(int64 run_id, int run_index);
extern bool stockx_slots_release_slot(int slot, int64 run_id);
extern int stockx_slots_capacity(void);

/* the worker */
extern bool stockx_slots_attach(int slot, int64 run_id);
extern void stockx_slots_publish(int slot, const StockxWorkerReport *report);
extern bool stockx_slots_stop_requested(int run_index, int64 run_id);
extern int stockx_slots_take_products(int run_index, int64 run_id, int want);
extern void stockx_slots_return_products(int run_index, int64 run_id, int n);
extern int stockx_slots_active_runs(Oid database, int64 *run_ids, int max);
extern StockxStopReason stockx_slots_finish(int slot, StockxStopReason reason, bool *last);
extern void stockx_slots_detach(int slot);
extern PGDLLEXPORT int stockx_slots_live_pids(int32 *pids, int max);

/* stop, wait, views */
extern int stockx_slots_request_stop(Oid database);
extern int stockx_slots_count(Oid database, int64 run_id);
extern void stockx_slots_reclaim(void);
extern bool stockx_slots_finished_reason(Oid database, int64 run_id, StockxStopReason *reason);
extern int stockx_slots_snapshot(StockxWorkerView *out, int max);

#endif /* STOCKX_SLOTS_H */
