/*-------------------------------------------------------------------------
 * events.h
 *	  The event outbox (stockx_event) as a process writes to it: events wait
 *	  in a queue in its memory until they can be written with the data they
 *	  describe, and NOTIFY stockx_enrich tells listeners once they committed.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_EVENTS_H
#define STOCKX_EVENTS_H

#include "datatype/timestamp.h"
#include "utils/palloc.h"

/* Events waiting to be written; owned by one process. */
typedef struct StockxEventQueue
{
	MemoryContext cxt; /* the payloads; reset whenever the queue empties */
	int n;
	int cap;
	const char **kinds; /* static strings: run_end, price_move ... */
	char **payloads;    /* JSON text */
	int64 dropped;      /* events given up (queue full, unwritable) */
	bool deferred;      /* the last write could not take the table */
} StockxEventQueue;

/* Events one write put into the table, for the NOTIFY after its commit. */
typedef struct StockxEventIds
{
	int n;
	int64 *ids;
	const char **kinds;
} StockxEventIds;

extern PGDLLEXPORT void stockx_events_init(StockxEventQueue *q, MemoryContext parent);
extern void stockx_events_add(StockxEventQueue *q, const char *kind, const char *payload);
extern int stockx_events_mark(const StockxEventQueue *q);
extern void stockx_events_rewind(StockxEventQueue *q, int mark);
extern bool stockx_events_write(StockxEventQueue *q, bool wait, MemoryContext cxt,
                                StockxEventIds *written);
extern void stockx_events_clear(StockxEventQueue *q);
extern int stockx_events_notify(const StockxEventIds *written);
extern char *stockx_json_time(TimestampTz t);

#endif /* STOCKX_EVENTS_H */
