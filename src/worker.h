/*-------------------------------------------------------------------------
 * worker.h
 *	  The background worker: what stockx_enrich_start() hands it, and what
 *	  it reads from the settings.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_WORKER_H
#define STOCKX_WORKER_H

#include "datatype/timestamp.h"
#include "postmaster/bgworker.h"

/* What stockx_enrich_start() hands a worker in bgw_extra. */
typedef struct StockxWorkerArgs
{
	Oid database;
	Oid role;
	int64 run_id;
	int run_index; /* run slot */
	int slot;      /* worker slot */
	int workers;   /* of the run */
	int64 max_products;
	TimestampTz started_at;
	bool sync_selling;  /* this worker syncs the listings and orders first */
	bool sync_only;     /* and does nothing else (stockx_enrich_sync) */
	int32 sync_every_s; /* sync a list only when its last pass is older (0: always) */
} StockxWorkerArgs;

StaticAssertDecl(sizeof(StockxWorkerArgs) <= BGW_EXTRALEN,
                 "StockxWorkerArgs must fit in bgw_extra");

/* stockx_enrich_start() registers it with bgw_function_name "stockx_enrich_worker_main" */
extern PGDLLEXPORT void stockx_enrich_worker_main(Datum main_arg);

#endif /* STOCKX_WORKER_H */
