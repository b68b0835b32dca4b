/*-------------------------------------------------------------------------
 * worker_sync.c
 *	  The selling side's sync (stockx_enrich_sync(), or every run with
 *	  stockx_enrich.sync_selling), done by the first worker of the run
 *	  before it enriches: the order history, the listings and the active
 *	  orders of the account, page by page while StockX says hasNextPage.
 *
 * Every page is one request through the shared limiter like any other
 * (the run's requests, 429s and retries count it, the quota and the
 * circuit stop it), sent one at a time: the next page depends on this
 * one's hasNextPage.  A page is written whole, with the page to ask next,
 * in a transaction of its own (store_selling.c), so a stop, the quota or
 * the circuit leave the feed at a page the next sync goes on from.  A 429
 * pauses everyone (the limiter) and the page is asked again; a server
 * error or a broken answer is retried after a backoff, max_retries times,
 * and then the feed is left for this run with its error in
 * stockx_sync_state (the other feeds and the enrichment go on).
 *
 * History first, so that an order that has just left the active list is
 * read with its final status before the active pass marks it gone.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "clock.h"
#include "credentials.h"
#include "limiter.h"
#include "shared_limiter.h"
#include "store.h"
#include "stockx_json.h"
#include "support.h"
#include "worker_int.h"

/* the most elements StockX gives on one page of a selling list */
#define SX_SYNC_PAGE_SIZE 100

typedef struct SyncFeed
{
	const char *name;   /* stockx_sync_state.feed */
	const char *path;   /* under stockx_enrich.api_base_url */
	const char *key;    /* the page's array */
	const char *id_key; /* every element's id */
	const char *label;  /* for the status view */
} SyncFeed;

static const SyncFeed feeds[] = {
	{ "orders_history", "/selling/orders/history", "orders", "orderNumber", "sync order history" },
	{ "listings", "/selling/listings", "listings", "listingId", "sync listings" },
	{ "orders_active", "/selling/orders/active", "orders", "orderNumber", "sync active orders" },
};

/* the owner of the sync's request, to tell its answer from the token's */
static char sync_owner;

/* A feed's pass in progress. */
typedef struct SyncPass
{
	const SyncFeed *feed;
	int page;
	char *from_date;         /* orders_history: "YYYY-MM-DD", or NULL */
	int attempts;            /* failed tries of this page */
	uint64 token_generation; /* of the token the page's request carried */
	int64 rows;
	int64 queued;
	int pages;
	char *error; /* why the pass stopped short */
} SyncPass;

typedef enum PageOutcome
{
	PAGE_NEXT,    /* written; another page follows */
	PAGE_LAST,    /* written; the pass is finished */
	PAGE_AGAIN,   /* ask for the same page again */
	PAGE_GIVE_UP, /* the feed is left for this run (pass->error) */
	PAGE_STOPPED  /* the run stops (w->stop) */
} PageOutcome;

/* ---------------------------------------------------------------- waiting */

/*
 * Wait for the latch, the sockets or ms, then take what came: token
 * answers go to the token's code; *ours gets the sync's answer.
 */
static void
pump(Worker *w, long ms, StockxWaitEvent what, StockxTransfer **ours)
{
	StockxTransfer *t;

	stockx_http_wait(w->http, Max(ms, 0), stockx_wait_event(what));
	worker_report_sends(w);
	while ((t = stockx_http_next_done(w->http)) != NULL)
	{
		if (stockx_transfer_owner(t) == &worker_token_owner)
			worker_take_token_answer(w, t);
		else if (ours != NULL)
			*ours = t;
		else
			stockx_http_release(w->http, t);
	}
	worker_check_interrupts(w);
	if (w->stop == SX_STOP_NONE && worker_stop_requested(w))
		worker_begin_stop(w, SX_STOP_STOPPED);
}

/* Sleep ms (a backoff), still answering token requests; false if stopping. */
static bool
sync_nap(Worker *w, int64 us)
{
	int64 until = stockx_mono_now() + us;

	while (w->stop == SX_STOP_NONE)
	{
		int64 left = until - stockx_mono_now();

		if (left <= 0)
			return true;
		pump(w, (long) (left / 1000 + 1), SX_WAIT_BACKOFF, NULL);
	}
	return false;
}

/*
 * A token and a slot of the limiter: true when the request may go now,
 * false when the run stops (a stop, the circuit, the quota).
 */
static bool
sync_acquire(Worker *w, const SyncFeed *feed)
{
	for (;;)
	{
		int64 wait_us;

		if (w->stop != SX_STOP_NONE)
			return false;
		if (!worker_have_token(w, stockx_mono_now()))
		{
			pump(w, SX_TOKEN_POLL_MS, SX_WAIT_HTTP_ANSWER, NULL);
			continue;
		}
		switch (stockx_limiter_acquire(&wait_us))
		{
			case SX_GO:
				return true;
			case SX_WAIT:
			case SX_PAUSED:
				worker_set_state(w,
				                 wait_us > 2 * USECS_PER_SEC ? SX_STATE_BACKING_OFF
				                                             : SX_STATE_WAITING_RATE_LIMIT,
				                 feed->label);
				if (wait_us < 1000)
					pg_usleep(wait_us);
				else
					pump(w, (long) (wait_us / 1000), SX_WAIT_RATE_SLOT, NULL);
				break;
			case SX_REFUSED_CIRCUIT:
				worker_begin_stop(w, SX_STOP_CIRCUIT_OPEN);
				return false;
			case SX_REFUSED_QUOTA:
				worker_begin_stop(w, SX_STOP_QUOTA);
				return false;
		}
	}
}

/* ---------------------------------------------------------------- one page */

static char *
page_path(const SyncPass *pass)
{
	return psprintf("%s?pageNumber=%d&pageSize=%d%s%s", pass->feed->path, pass->page,
	                SX_SYNC_PAGE_SIZE, pass->from_date ? "&fromDate=" : "",
	                pass->from_date ? pass->from_date : "");
}

/* Send the page's request and wait for its answer (NULL: the run stops). */
static StockxTransfer *
request_page(Worker *w, SyncPass *pass, MemoryContext body_cxt)
{
	StockxTransfer *t;
	StockxTransfer *answer = NULL;

	t = stockx_http_get(w->http, page_path(pass), w->token, stockx_secret(SX_SECRET_API_KEY),
	                    &sync_owner, body_cxt);
	pass->token_generation = w->token_generation;
	w->counters.requests++;
	worker_set_state(w, SX_STATE_REQUESTING, pass->feed->label);
	while (answer == NULL)
	{
		pump(w, 1000, SX_WAIT_HTTP_ANSWER, &answer);
		if (answer == NULL && w->stop == SX_STOP_STOPPED)
		{
			worker_cancel_transfer(w, t);
			return NULL;
		}
	}
	if (!stockx_transfer_was_sent(answer))
		stockx_limiter_unsent();
	return answer;
}

/* What writing a page needs and gives back. */
typedef struct PageWrite
{
	SyncPass *pass;
	const StockxResponse *resp;
	bool has_next;
	int nitems;
	int64 rows;
	int64 queued;
} PageWrite;

static void
write_page_body(Worker *w, void *arg)
{
	PageWrite *pw = (PageWrite *) arg;

	pw->rows = stockx_store_sync_page(pw->pass->feed->name, pw->resp->body, pw->pass->page,
	                                  pw->has_next, pw->nitems, w->args.run_id, &pw->queued);
}

/* A failure of this page: try again after a backoff, or give the feed up. */
static PageOutcome
page_failed(Worker *w, SyncPass *pass, char *error)
{
	if (pass->attempts >= w->enrich_config.max_retries)
	{
		pass->error = error;
		return PAGE_GIVE_UP;
	}
	ereport(DEBUG1, (errmsg("stockx_enrich: %s page %d failed, retry %d/%d: %s", pass->feed->name,
	                        pass->page, pass->attempts + 1, w->enrich_config.max_retries, error)));
	w->counters.retries++;
	if (!sync_nap(w,
	              sx_backoff_us(w->enrich_config.backoff_base_ms, w->enrich_config.backoff_max_ms,
	                            pass->attempts, stockx_random())))
		return PAGE_STOPPED;
	pass->attempts++;
	return PAGE_AGAIN;
}

/* A 200: the page's envelope, then the page written with the resume point. */
static PageOutcome
take_page(Worker *w, SyncPass *pass, const StockxResponse *resp)
{
	char errbuf[SX_ERRBUF_SIZE];
	PageWrite pw = { pass, resp, false, 0, 0, 0 };
	ErrorData *edata;

	if (sx_parse_page(resp->body, resp->body_len, pass->feed->key, pass->feed->id_key, &pw.nitems,
	                  &pw.has_next, errbuf) != SX_PARSE_OK)
	{
		stockx_limiter_other_failure();
		return page_failed(w, pass,
		                   psprintf("%s page %d: %s", pass->feed->path, pass->page, errbuf));
	}
	stockx_limiter_success();
	edata = worker_in_transaction(w, write_page_body, &pw);
	if (edata != NULL)
	{
		if (worker_ends(edata->sqlerrcode))
			ReThrowError(edata);
		/* StockX answered; what it said does not fit: asking again will not help */
		pass->error = psprintf("%s page %d could not be stored: %s", pass->feed->path, pass->page,
		                       edata->message);
		FreeErrorData(edata);
		return PAGE_GIVE_UP;
	}
	pass->rows += pw.rows;
	pass->queued += pw.queued;
	pass->pages++;
	pass->attempts = 0;
	return pw.has_next ? PAGE_NEXT : PAGE_LAST;
}

/* What an answer means for the page. */
static PageOutcome
take_answer(Worker *w, SyncPass *pass, const StockxResponse *resp)
{
	char msg[200];

	if (resp->transport != SX_TRANSPORT_OK)
	{
		stockx_limiter_other_failure();
		return page_failed(w, pass,
		                   psprintf("%s page %d: %s", pass->feed->path, pass->page, resp->error));
	}
	if (resp->status == 200)
		return take_page(w, pass, resp);
	if (resp->status == 429)
	{
		int64 pause = stockx_limiter_429(resp->retry_after_us);

		w->counters.responses_429++;
		w->counters.retries++;
		ereport(LOG, (errmsg("stockx_enrich: rate limited endpoint=%s page=%d wait_ms=" INT64_FORMAT
		                     " retry_after_ms=" INT64_FORMAT,
		                     pass->feed->path, pass->page, pause / 1000,
		                     resp->retry_after_us >= 0 ? resp->retry_after_us / 1000 : -1)));
		return PAGE_AGAIN; /* the limiter holds everyone back for the pause */
	}
	if (resp->status == 401 && pass->attempts < w->enrich_config.max_retries)
	{
		/* the token it carried is refused: get another, ask again */
		stockx_limiter_other_failure();
		worker_token_refused(w, pass->token_generation);
		pass->attempts++;
		return PAGE_AGAIN;
	}
	stockx_limiter_other_failure();
	sx_parse_error_message(resp->body, resp->body_len, msg, sizeof(msg));
	if (resp->status >= 500)
		return page_failed(w, pass,
		                   psprintf("%s page %d: HTTP %ld%s%s", pass->feed->path, pass->page,
		                            resp->status, msg[0] ? ": " : "", msg));
	/* 400, 403, 404 ...: asking again gets the same */
	pass->error = psprintf("%s page %d: HTTP %ld%s%s", pass->feed->path, pass->page, resp->status,
	                       msg[0] ? ": " : "", msg);
	return PAGE_GIVE_UP;
}

/* One page: a slot, the request, its answer. */
static PageOutcome
sync_page(Worker *w, SyncPass *pass, MemoryContext page_cxt)
{
	StockxTransfer *t;
	PageOutcome outcome;

	if (!sync_acquire(w, pass->feed))
		return PAGE_STOPPED;
	t = request_page(w, pass, page_cxt);
	if (t == NULL)
		return PAGE_STOPPED;
	outcome = take_answer(w, pass, stockx_transfer_response(t));
	stockx_http_release(w->http, t);
	return outcome;
}

/* ---------------------------------------------------------------- a feed */

typedef struct BeginArgs
{
	SyncPass *pass;
	MemoryContext cxt; /* where the pass keeps its fromDate */
} BeginArgs;

static void
begin_body(Worker *w, void *arg)
{
	BeginArgs *a = (BeginArgs *) arg;
	char *from_date;

	stockx_store_sync_begin(a->pass->feed->name, w->args.run_id, &a->pass->page, &from_date);
	a->pass->from_date = from_date ? MemoryContextStrdup(a->cxt, from_date) : NULL;
}

static void
failed_body(Worker *w, void *arg)
{
	SyncPass *pass = (SyncPass *) arg;

	stockx_store_sync_failed(pass->feed->name, pass->error, w->args.run_id);
}

typedef struct DueArgs
{
	const SyncFeed *feed;
	bool due;
} DueArgs;

static void
due_body(Worker *w, void *arg)
{
	DueArgs *a = (DueArgs *) arg;

	a->due = stockx_store_sync_due(a->feed->name, w->args.sync_every_s);
}

/*
 * Is the feed due (a run of stockx_enrich_start syncs a list only when its
 * last pass is stockx_enrich.sync_every old; stockx_enrich_sync always)?
 */
static bool
feed_due(Worker *w, const SyncFeed *feed)
{
	DueArgs a = { feed, true };
	ErrorData *edata;

	if (w->args.sync_every_s <= 0)
		return true;
	edata = worker_in_transaction(w, due_body, &a);
	if (edata != NULL)
		ReThrowError(edata);
	return a.due;
}

/* The pass of one feed, from where it stands to its last page or a stop. */
static void
sync_feed(Worker *w, const SyncFeed *feed, MemoryContext cxt)
{
	SyncPass pass = { feed, 1, NULL, 0, 0, 0, 0, 0, NULL };
	BeginArgs begin = { &pass, cxt };
	MemoryContext page_cxt;
	PageOutcome outcome = PAGE_NEXT;
	ErrorData *edata;

	edata = worker_in_transaction(w, begin_body, &begin);
	if (edata != NULL)
		ReThrowError(edata);
	page_cxt = AllocSetContextCreate(cxt, "stockx_enrich sync page", ALLOCSET_DEFAULT_SIZES);
	while (outcome == PAGE_NEXT || outcome == PAGE_AGAIN)
	{
		MemoryContext old;

		/* the last page's error stays readable after the loop */
		MemoryContextReset(page_cxt);
		old = MemoryContextSwitchTo(page_cxt);
		outcome = sync_page(w, &pass, page_cxt);
		MemoryContextSwitchTo(old);
		if (outcome == PAGE_NEXT)
			pass.page++;
	}
	if (outcome == PAGE_GIVE_UP)
	{
		ereport(WARNING, (errmsg("stockx_enrich: sync of %s stopped at page %d: %s", feed->name,
		                         pass.page, pass.error),
		                  errhint("The next stockx_enrich_sync() goes on from that page; "
		                          "stockx_sync_state shows the error.")));
		edata = worker_in_transaction(w, failed_body, &pass);
		if (edata != NULL)
		{
			if (worker_ends(edata->sqlerrcode))
				ReThrowError(edata);
			FreeErrorData(edata);
		}
	}
	ereport(LOG, (errmsg("stockx_enrich: sync of %s %s: %d pages, " INT64_FORMAT
	                     " rows, " INT64_FORMAT " products queued",
	                     feed->name,
	                     outcome == PAGE_LAST      ? "finished"
	                     : outcome == PAGE_GIVE_UP ? "left for this run"
	                                               : "interrupted",
	                     pass.pages, pass.rows, pass.queued)));
	MemoryContextDelete(page_cxt);
}

/*
 * Sync the listings and orders; returns when every feed is done or left,
 * or the run stops (w->stop says why).
 */
void
worker_sync_selling(Worker *w)
{
	MemoryContext cxt =
	    AllocSetContextCreate(CurrentMemoryContext, "stockx_enrich sync", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int f;

	for (f = 0; f < (int) lengthof(feeds) && w->stop == SX_STOP_NONE; f++)
	{
		if (feed_due(w, &feeds[f]))
			sync_feed(w, &feeds[f], cxt);
		MemoryContextReset(cxt);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
