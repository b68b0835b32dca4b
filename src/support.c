/*-------------------------------------------------------------------------
 * support.c
 *	  Small server-side helpers every layer above the settings shares (see
 *	  support.h).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "support.h"

static const char *const state_names[] = { "starting",    "claiming",
	                                       "requesting",  "waiting_rate_limit",
	                                       "backing_off", "committing",
	                                       "stopping" };

const char *
stockx_worker_state_name(StockxWorkerState state)
{
	return state_names[state];
}

const char *
stockx_stop_reason_name(StockxStopReason reason)
{
	switch (reason)
	{
		case SX_STOP_NONE:
		case SX_STOP_DONE:
			return "done";
		case SX_STOP_MAX_PRODUCTS:
			return "max_products";
		case SX_STOP_STOPPED:
			return "stopped";
		case SX_STOP_QUOTA:
			return "quota";
		case SX_STOP_CIRCUIT_OPEN:
			return "circuit_open";
		case SX_STOP_CREDENTIALS:
			return "credentials";
		case SX_STOP_ERROR:
			return "error";
	}
	return "error";
}

void
stockx_counters_add(StockxCounters *into, const StockxCounters *d)
{
	into->processed += d->processed;
	into->enriched += d->enriched;
	into->not_found += d->not_found;
	into->failed += d->failed;
	into->requests += d->requests;
	into->responses_429 += d->responses_429;
	into->retries += d->retries;
}

StockxCounters
stockx_counters_minus(const StockxCounters *a, const StockxCounters *b)
{
	StockxCounters d;

	d.processed = a->processed - b->processed;
	d.enriched = a->enriched - b->enriched;
	d.not_found = a->not_found - b->not_found;
	d.failed = a->failed - b->failed;
	d.requests = a->requests - b->requests;
	d.responses_429 = a->responses_429 - b->responses_429;
	d.retries = a->retries - b->retries;
	return d;
}

double
stockx_random(void)
{
	return pg_prng_double(&pg_global_prng_state);
}

/*
 * The wait event of a wait: custom wait events from 17 on (made once per
 * process, shared by name with every other), "Extension" before.
 */
uint32
stockx_wait_event(StockxWaitEvent which)
{
#if PG_VERSION_NUM >= 170000
	static const char *const names[] = { "StockxEnrichHttpAnswer", "StockxEnrichRateSlot",
		                                 "StockxEnrichBackoff" };
	static uint32 events[lengthof(names)];

	if (events[which] == 0)
		events[which] = WaitEventExtensionNew(names[which]);
	return events[which];
#else
	return PG_WAIT_EXTENSION;
#endif
}

/* SxAllocator callback: palloc in the given context, NULL when out of memory. */
void *
stockx_palloc_no_oom(void *context, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) context, size, MCXT_ALLOC_NO_OOM);
}
