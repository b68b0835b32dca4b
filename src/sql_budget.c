/*-------------------------------------------------------------------------
 * sql_budget.c
 *	  The account's request budget, shared with programs outside the
 *	  database: stockx_enrich_acquire() waits for a slot of the cluster's
 *	  limiter (the one the workers use) and stockx_enrich_report() feeds
 *	  StockX's answer back.
 *
 * A listing tool or a script that calls StockX with the same account asks
 * for a slot before each request and reports the answer after it.  It is
 * then paced with the workers (rate, margin, the pause after a 429, the
 * circuit, the daily quota), its 429s pause every worker, and its requests
 * count once against the same daily quota.  The limiter cannot see when
 * such a program really sends, so its slot counts as sent
 * client_send_slack_ms after the grant (the program must send within that
 * time), and the next slot goes an interval after that.
 *
 * Nothing here writes a row the workers write: the count lives in shared
 * memory and the workers persist it (stockx_quota) at their commits, so a
 * client that keeps its transaction open (psycopg2 does, until commit)
 * holds no lock a worker waits for.
 *
 * When a client's 429 opens the circuit, or its slot spends the last of
 * the daily quota, an event says so (stockx_event, then NOTIFY
 * stockx_enrich), written in the caller's transaction: it is seen when the
 * caller commits.
 *
 * The shared state is the limiter's (shared_limiter.c); nothing here
 * touches shared memory directly.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "events.h"
#include "limiter.h"
#include "quota.h"
#include "shared_limiter.h"
#include "shmem.h"
#include "store.h"
#include "support.h"

PG_FUNCTION_INFO_V1(stockx_enrich_acquire);
PG_FUNCTION_INFO_V1(stockx_enrich_report);

/* The limiter is the primary's: a standby's shared memory paces nobody. */
static void
check_callable(void)
{
	stockx_check_shared();
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
		                errmsg("cannot share the StockX request budget on a standby"),
		                errhint("Call stockx_enrich_acquire() and stockx_enrich_report() on the "
		                        "primary server, where the workers run.")));
}

/* The store, as the extension's owner (the SQL functions are SECURITY DEFINER). */
static void
store_open(void)
{
	SPI_connect();
	stockx_store_init();
}

/*
 * Write one event in the caller's transaction (as the extension's owner,
 * the functions being SECURITY DEFINER) and wake the listeners at its commit.
 */
static void
add_event(const char *kind, const char *payload)
{
	StockxEventQueue q;
	StockxEventIds written;

	store_open();
	stockx_events_init(&q, CurrentMemoryContext);
	stockx_events_add(&q, kind, payload);
	if (stockx_events_write(&q, true, CurrentMemoryContext, &written))
		(void) stockx_events_notify(&written);
	SPI_finish();
}

/*
 * stockx_enrich_acquire(timeout_ms int) returns timestamptz
 *
 * Wait until the caller may send one request to StockX, at most timeout_ms;
 * returns when the slot was granted.  Errors when the circuit is open, the
 * daily quota is spent, or no slot comes within timeout_ms.
 */
Datum
stockx_enrich_acquire(PG_FUNCTION_ARGS)
{
	int32 timeout_ms = PG_GETARG_INT32(0);
	int64 deadline;

	check_callable();
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("timeout_ms must not be negative"),
		                errhint("Pass 0 to take a slot only if one is free now.")));
	store_open();
	stockx_quota_restore();
	SPI_finish();
	deadline = stockx_mono_now() + (int64) timeout_ms * 1000;

	for (;;)
	{
		int64 wait_us = 0;
		SxVerdict verdict;
		int64 now;

		CHECK_FOR_INTERRUPTS();
		verdict = stockx_limiter_acquire(&wait_us);
		if (verdict == SX_GO)
		{
			StockxLimiterSnapshot snap;

			stockx_limiter_sent_outside();
			stockx_limiter_snapshot(&snap);
			/* this slot spent the last of the quota: say so */
			if (snap.config.daily_limit > 0 &&
			    snap.limiter.requests_today == snap.config.daily_limit)
				add_event("quota_spent",
				          psprintf("{\"source\": \"client\", \"requests_today\": " INT64_FORMAT
				                   ", \"daily_limit\": " INT64_FORMAT ", \"quota_resets_at\": %s}",
				                   snap.limiter.requests_today, snap.config.daily_limit,
				                   stockx_json_time(stockx_timestamp_from_wall(
				                       sx_quota_resets_at(&snap.limiter)))));
			PG_RETURN_TIMESTAMPTZ(GetCurrentTimestamp());
		}
		if (verdict == SX_REFUSED_CIRCUIT || verdict == SX_REFUSED_QUOTA)
			stockx_limiter_refuse(verdict, "Send nothing to StockX until then; after that one "
			                               "probe request decides.");

		now = stockx_mono_now();
		if (now + wait_us > deadline)
			ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			                errmsg("no StockX request slot within %d ms", timeout_ms),
			                errdetail(verdict == SX_PAUSED
			                              ? "Every caller is paused after a 429 for another %ld ms."
			                              : "The next slot is %ld ms away.",
			                          (long) (wait_us / 1000)),
			                errhint("Call again later or with a larger timeout_ms; "
			                        "stockx_enrich_limiter shows the next slot.")));
		if (wait_us < 1000)
			pg_usleep(wait_us);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
			                 (long) (wait_us / 1000), stockx_wait_event(SX_WAIT_RATE_SLOT));
			ResetLatch(MyLatch);
		}
	}
}

/*
 * A 429 of a client: pause everybody; returns the pause, and in *event the
 * payload of a circuit_open event when this 429 opened the circuit.
 */
static int64
report_429(text *retry_after, const char **event)
{
	int64 retry_after_us = -1;
	int64 pause_us;
	StockxLimiterSnapshot before;
	StockxLimiterSnapshot after;

	if (retry_after != NULL)
	{
		char *value = text_to_cstring(retry_after);

		retry_after_us = sx_parse_retry_after(value, stockx_wall_now());
		pfree(value);
	}
	stockx_limiter_snapshot(&before);
	pause_us = stockx_limiter_429(retry_after_us);
	stockx_limiter_snapshot(&after);
	if (!sx_limiter_circuit_refuses(&before.limiter, before.mono_now) &&
	    sx_limiter_circuit_refuses(&after.limiter, after.mono_now))
		*event = psprintf("{\"source\": \"client\", \"circuit_open_until\": %s, "
		                  "\"consecutive_429\": %d}",
		                  stockx_json_time(stockx_timestamp_from_mono(
		                      after.limiter.circuit_open_until, after.mono_now, after.wall_now)),
		                  after.limiter.consecutive_429);
	return pause_us;
}

/*
 * stockx_enrich_report(status int, retry_after text) returns bigint
 *
 * What StockX answered the request of the last slot: 429 pauses every
 * caller (until Retry-After, seconds or an HTTP date, else a jittered
 * backoff) and counts toward the circuit; an answer of StockX's API (2xx,
 * 400, 404) is a success; anything else (no answer at all as status 0, a
 * 5xx, a redirect, 401, 403 ...) decides nothing (sx_answer_class()).
 * Returns the cluster-wide pause now in force, in milliseconds (0: none).
 */
Datum
stockx_enrich_report(PG_FUNCTION_ARGS)
{
	int32 status;
	int64 pause_us = 0;
	const char *event = NULL;

	check_callable();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
		        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("status must not be null"),
		         errhint("Pass the HTTP status StockX answered, or 0 when no answer came.")));
	status = PG_GETARG_INT32(0);
	if (status != 0 && (status < 100 || status > 599))
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("%d is not an HTTP status", status),
		         errhint("Pass the HTTP status StockX answered, or 0 when no answer came.")));

	switch (sx_answer_class(status))
	{
		case SX_ANSWER_RATE_LIMITED:
			pause_us = report_429(PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1), &event);
			break;
		case SX_ANSWER_SUCCESS:
			stockx_limiter_success();
			break;
		case SX_ANSWER_NEUTRAL:
			stockx_limiter_other_failure();
			break;
	}
	if (event != NULL)
		add_event("circuit_open", event);
	PG_RETURN_INT64(pause_us / 1000);
}
