/*-------------------------------------------------------------------------
 * worker_args.h
 *	  What stockx_enrich_start() hands a worker in bgw_extra.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_WORKER_ARGS_H
#define STOCKX_WORKER_ARGS_H

#include "postgres.h"

#include "postmaster/bgworker.h"

#include "stockx_enrich.h"

typedef struct StockxWorkerArgs
{
	Oid database;
	Oid role;
	int64 run_id;
	int run_index;
} StockxWorkerArgs;

StaticAssertDecl(sizeof(StockxWorkerArgs) <= BGW_EXTRALEN,
                 "StockxWorkerArgs must fit in bgw_extra");

#endif /* STOCKX_WORKER_ARGS_H */
