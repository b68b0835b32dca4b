/*-------------------------------------------------------------------------
 * store.h
 *	  SPI access to the extension's tables: claims, results, runs, quota.
 *	  Every function expects a transaction with SPI connected.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_STORE_H
#define STOCKX_STORE_H

#include "enrich.h"

extern void stockx_store_init(void);
extern int stockx_store_claim(int limit, StockxClaim **claims, MemoryContext cxt);
extern void stockx_store_write_results(StockxResult *results, int n, StockxCounters *counters);
extern void stockx_store_release(StockxClaim *claims, int n);
extern int64 stockx_store_add_run_counters(int64 run_id, const StockxCounters *delta);
extern void stockx_store_finish_run(int64 run_id, StockxStopReason reason);
extern int64 stockx_store_next_run_id(void);
extern void stockx_store_insert_run(int64 run_id, int workers, int64 max_products);
extern char *stockx_store_run_reason(int64 run_id);
extern void stockx_store_fail_orphan_runs(void);
extern void stockx_store_load_quota(void);
extern void stockx_store_save_quota(void);
extern const char *stockx_stop_reason_name(StockxStopReason reason);

#endif /* STOCKX_STORE_H */
