/*-------------------------------------------------------------------------
 * sql_views.c
 *	  The shared-memory readers behind stockx_enrich_status and
 *	  stockx_enrich_limiter.  They copy under the owners' locks and build
 *	  tuples afterwards; times of the monotonic clock are shown as wall
 *	  clock times.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "clock.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "slots.h"
#include "support.h"

PG_FUNCTION_INFO_V1(stockx_enrich_worker_status);
PG_FUNCTION_INFO_V1(stockx_enrich_limiter_state);

static Datum
timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

Datum
stockx_enrich_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StockxWorkerView *views;
	int n;
	int i;

	stockx_check_shared();
	InitMaterializedSRF(fcinfo, 0);
	views = palloc(sizeof(StockxWorkerView) * stockx_slots_capacity());
	n = stockx_slots_snapshot(views, stockx_slots_capacity());

	for (i = 0; i < n; i++)
	{
		StockxWorkerView *w = &views[i];
		Datum values[16];
		bool nulls[16] = { 0 };

		values[0] = Int32GetDatum(w->pid);
		nulls[0] = (w->pid == 0);
		values[1] = ObjectIdGetDatum(w->database);
		values[2] = Int64GetDatum(w->run_id);
		values[3] = CStringGetTextDatum(stockx_worker_state_name(w->state));
		values[4] = CStringGetTextDatum(w->current_sku);
		nulls[4] = (w->current_sku[0] == '\0');
		values[5] = Int64GetDatum(w->counters.processed);
		values[6] = Int64GetDatum(w->counters.enriched);
		values[7] = Int64GetDatum(w->counters.not_found);
		values[8] = Int64GetDatum(w->counters.failed);
		values[9] = Int64GetDatum(w->counters.requests);
		values[10] = Int64GetDatum(w->counters.responses_429);
		values[11] = Int64GetDatum(w->counters.retries);
		values[12] = timestamp_or_null(w->started_at, &nulls[12]);
		values[13] = timestamp_or_null(w->last_checkpoint_at, &nulls[13]);
		values[14] = Int64GetDatum(w->memory_bytes);
		values[15] = Int32GetDatum(w->in_flight);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
stockx_enrich_limiter_state(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	StockxLimiterSnapshot snap;
	SxLimiter *l = &snap.limiter;
	Datum values[14];
	bool nulls[14] = { 0 };
	const char *circuit;

	stockx_check_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	stockx_limiter_snapshot(&snap);
	if (l->circuit == SX_CIRCUIT_CLOSED)
		circuit = "closed";
	else if (sx_limiter_circuit_refuses(l, snap.mono_now))
		circuit = "open";
	else
		circuit = "half_open";

	values[0] = Float8GetDatum(snap.config.requests_per_second);
	values[1] = Float8GetDatum(l->effective_rate > 0
	                               ? Min(l->effective_rate, snap.config.requests_per_second)
	                               : snap.config.requests_per_second);
	values[2] = TimestampTzGetDatum(stockx_timestamp_from_mono(
	    sx_limiter_next_slot(l, &snap.config, snap.mono_now), snap.mono_now, snap.wall_now));
	values[3] = TimestampTzGetDatum(
	    stockx_timestamp_from_mono(l->paused_until, snap.mono_now, snap.wall_now));
	nulls[3] = (l->paused_until <= snap.mono_now);
	values[4] = Int64GetDatum(l->requests_today);
	values[5] = Int64GetDatum(snap.config.daily_limit);
	values[6] = TimestampTzGetDatum(stockx_timestamp_from_wall(sx_quota_resets_at(l)));
	values[7] = CStringGetTextDatum(circuit);
	values[8] = TimestampTzGetDatum(
	    stockx_timestamp_from_mono(l->circuit_open_until, snap.mono_now, snap.wall_now));
	nulls[8] = (l->circuit == SX_CIRCUIT_CLOSED);
	values[9] = Int32GetDatum(l->consecutive_429);
	values[10] = Int64GetDatum(l->responses_429_total);
	/* the margin in force: the interval beyond 1/rate */
	values[11] = Float8GetDatum((double) sx_limiter_margin(l, &snap.config) / 1000.0);
	/* the daily limit holds per UTC day and in any 24 hours */
	values[12] = Int64GetDatum(sx_limiter_window_count(l, snap.wall_now));
	values[13] = TimestampTzGetDatum(
	    stockx_timestamp_from_wall(sx_limiter_next_allowed(l, &snap.config, snap.wall_now)));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
