/*-------------------------------------------------------------------------
 * worker_int.h
 *	  What the files of the background worker (worker*.c) share: the
 *	  worker's state, its batches, and the functions one file calls in
 *	  another.  Nothing outside the worker includes it.
 *
 *	    worker.c         the loop: claims, requests, answers, leases, stopping
 *	    worker_commit.c  writing what is settled, every commit_every rows
 *	    worker_token.c   the access token this worker sends
 *	    worker_tx.c      transactions of the worker, events notified after them
 *	    worker_run.c     the worker's life: its start, its end, the run's row
 *	    worker_sync.c    the selling side's sync: listings and orders, page by page
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_WORKER_INT_H
#define STOCKX_WORKER_INT_H

#include "enrich.h"
#include "events.h"
#include "http.h"
#include "stockx_config.h"
#include "stockx_types.h"
#include "worker.h"

#define SX_WRITE_ATTEMPTS     4
#define SX_TOKEN_POLL_MS      50
#define SX_COMMIT_AFTER_US    (5 * USECS_PER_SEC)
#define SX_PUBLISH_EVERY_US   (100 * 1000)
#define SX_MAX_LIVE_PIDS      256
#define SX_MAX_SHORT_NAPS     4
#define SX_EVENT_FLUSH_TRIES  5
#define SX_EVENT_FLUSH_NAP_MS 200

typedef struct Batch
{
	bool in_use;
	MemoryContext cxt; /* its claims and jobs */
	StockxJob *jobs;
	int n;
	int live; /* jobs not yet written or given back */
} Batch;

typedef struct Worker
{
	StockxWorkerArgs args;
	StockxWorkerConfig config;
	StockxEnrichConfig enrich_config;
	StockxStoreConfig store_config;
	StockxJobEnv env;
	StockxHttp *http;
	MemoryContext loop_cxt; /* scratch, reset every turn of the loop */

	Batch batches[SX_MAX_BATCHES];
	StockxJob **settled; /* waiting to be written */
	int nsettled;
	int64 settled_since;
	bool no_more_rows;
	StockxStopReason stop; /* SX_STOP_NONE while running */
	char credentials_error[256];
	int64 leases_due;

	/* the access token this worker sends */
	char *token;
	uint64 token_generation;
	int64 token_renew_at;
	bool token_configured; /* stockx_enrich.access_token, not a refreshed one */
	StockxTransfer *token_transfer;
	char *token_refresh_used;
	MemoryContext token_cxt;
	int64 token_retry_at;
	int64 refresh_stale_us; /* a refresh begun this long ago will never end */

	StockxEventQueue events;  /* waiting to be written to stockx_event */
	StockxEventIds event_ids; /* written by the open transaction: NOTIFY after its commit */
	bool events_written;
	MemoryContext notify_cxt; /* event_ids */

	StockxCounters counters; /* requests as they go, outcomes once committed */
	StockxCounters flushed;  /* part already added to stockx_run */
	int64 run_processed;     /* the run's total, as of our last commit */
	StockxWorkerState state;
	const char *sku; /* shown in the status view */
	int64 published_at;
	int64 memory_bytes; /* as of the last checkpoint */
	bool budget_spent;  /* max_products reached */
} Worker;

/* the owner of the token request, to tell it from the rows' requests */
extern char worker_token_owner;

/* What a transaction of the worker does, between begin and commit. */
typedef void (*TxBody)(Worker *w, void *arg);

/* worker.c */
extern void worker_load_config(Worker *w, bool first);
extern void worker_publish(Worker *w, bool checkpoint);
extern void worker_set_state(Worker *w, StockxWorkerState state, const char *sku);
extern void worker_check_interrupts(Worker *w);
extern bool worker_stop_requested(Worker *w);
extern void worker_report_sends(Worker *w);
extern void worker_cancel_transfer(Worker *w, StockxTransfer *t);
extern bool worker_nap(Worker *w, long ms);
extern int worker_held_jobs(Worker *w, bool unsettled_only);
extern void worker_job_done(Worker *w, StockxJob *j);
extern void worker_settle_job(Worker *w, StockxJob *j);
extern void worker_begin_stop(Worker *w, StockxStopReason reason);
extern StockxStopReason worker_loop(Worker *w);

/* worker_commit.c */
extern bool worker_commit_due(Worker *w);
extern bool worker_commit_settled(Worker *w);

/* worker_token.c */
extern bool worker_have_token(Worker *w, int64 now);
extern void worker_take_token_answer(Worker *w, StockxTransfer *t);
extern void worker_drop_token(Worker *w);
extern void worker_token_refused(Worker *w, uint64 generation);

/* worker_tx.c */
extern void worker_tx_begin(void);
extern void worker_tx_commit(void);
extern ErrorData *worker_tx_abort(MemoryContext cxt);
extern ErrorData *worker_in_transaction(Worker *w, TxBody body, void *arg);
extern void worker_write_events(Worker *w, bool wait);
extern void worker_notify_events(Worker *w, const StockxEventIds *written);
extern bool worker_is_transient(int sqlerrcode);
extern bool worker_ends(int sqlerrcode);

/* worker_run.c */
extern void worker_maintain_history(Worker *w);

/* worker_sync.c */
extern void worker_sync_selling(Worker *w);

#endif /* STOCKX_WORKER_INT_H */
