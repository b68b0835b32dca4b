/*-------------------------------------------------------------------------
 * support.h
 *	  Small server-side helpers every layer above the settings shares:
 *	  names of the vocabulary's values, counter arithmetic, randomness, the
 *	  wait events, the allocator handed to the pure JSON code.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SUPPORT_H
#define STOCKX_SUPPORT_H

#include "stockx_types.h"

extern const char *stockx_worker_state_name(StockxWorkerState state);
extern const char *stockx_stop_reason_name(StockxStopReason reason);
extern void stockx_counters_add(StockxCounters *into, const StockxCounters *delta);
extern StockxCounters stockx_counters_minus(const StockxCounters *a, const StockxCounters *b);
extern double stockx_random(void);
extern uint32 stockx_wait_event(StockxWaitEvent which);
extern void *stockx_palloc_no_oom(void *context, size_t size);

#endif /* STOCKX_SUPPORT_H */
