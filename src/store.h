/*-------------------------------------------------------------------------
 * store.h
 *	  SPI access to the extension's tables: claims, results, leases, runs,
 *	  quota.  Every function expects a transaction with SPI connected.
 *	  PGDLLEXPORT marks what the isolation specs' test module calls
 *	  (test/isolation/module; PostgreSQL 16 and later hide the rest).
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_STORE_H
#define STOCKX_STORE_H

#include "datatype/timestamp.h"

#include "enrich.h"
#include "events.h"
#include "limiter.h"
#include "stockx_config.h"
#include "stockx_types.h"

/* How writing one row went. */
typedef enum StockxWriteStatus
{
	SX_WRITE_SKIPPED = 0, /* nothing to write (outcome NONE or DEFERRED) */
	SX_WRITE_DONE,        /* written; *status says what the row is now */
	SX_WRITE_ROW_FAILED,  /* the database refused the row's data: marked failed */
	SX_WRITE_LOST_LEASE   /* the row is no longer ours: nothing written */
} StockxWriteStatus;

typedef struct StockxWritten
{
	StockxWriteStatus write;
	const char *status; /* pending, enriched, not_found, failed, merged (static) */
} StockxWritten;

extern PGDLLEXPORT void stockx_store_init(void);
extern const char *stockx_store_schema(void);
extern Oid stockx_extension_relid(const char *relname);
extern PGDLLEXPORT void stockx_store_lock_claims(void);
extern PGDLLEXPORT int stockx_store_claim(const StockxStoreConfig *config, int limit,
                                          const int32 *live_pids, int npids, StockxClaim **claims,
                                          MemoryContext cxt);
extern PGDLLEXPORT void stockx_store_write_row(const StockxStoreConfig *config, StockxClaim *claim,
                                               StockxResult *result, StockxWritten *written,
                                               StockxEventQueue *events);
extern char *stockx_store_product_owner(const char *product_id, const char *sku);
extern bool stockx_store_fail_row(const StockxStoreConfig *config, StockxClaim *claim,
                                  const char *error, StockxWritten *written);
extern PGDLLEXPORT int stockx_store_renew_leases(const StockxStoreConfig *config,
                                                 StockxClaim **claims, int n, bool *held);
extern void stockx_store_release(StockxClaim **claims, int n);
extern int64 stockx_store_add_run_counters(int64 run_id, const StockxCounters *delta);
extern void stockx_store_ensure_run(int64 run_id, int workers, int64 max_products,
                                    TimestampTz started_at);
extern void stockx_store_close_orphan_runs(const int64 *active, int nactive,
                                           StockxEventQueue *events);
extern bool stockx_store_finish_run(int64 run_id, StockxStopReason reason,
                                    StockxEventQueue *events);
extern int64 stockx_store_next_run_id(void);
extern char *stockx_store_run_reason(int64 run_id);
extern bool stockx_store_anything_due(const StockxStoreConfig *config);
extern void stockx_store_prune_runs(int retention_s);
extern void stockx_store_prune_events(int retention_s);
extern bool stockx_store_history_due(void);
extern void stockx_store_maintain_history(void);
extern void stockx_store_analyze_queue(void);
extern void stockx_store_load_quota(int64 day, SxPersisted *out);
extern void stockx_store_save_quota(const SxPersisted *in);

/* store_selling.c: the selling side's sync */
extern void stockx_store_sync_begin(const char *feed, int64 run_id, int *page, char **from_date);
extern int64 stockx_store_sync_page(const char *feed, const char *body, int page, bool has_next,
                                    int nitems, int64 run_id, int64 *queued);
extern void stockx_store_sync_failed(const char *feed, const char *error, int64 run_id);
extern bool stockx_store_sync_due(const char *feed, int every_s);

#endif /* STOCKX_STORE_H */
