/*-------------------------------------------------------------------------
 * http.c
 *	  Several HTTP requests in flight per worker, through one libcurl multi
 *	  handle (connections are kept alive and reused), waited on in one
 *	  WaitEventSet together with the process latch and postmaster death.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to call it back (CURLMOPT_TIMERFUNCTION); stockx_http_wait() turns
 * that into a WaitEventSet and hands the ready sockets back to libcurl.
 * A transfer records the moment its request really leaves (libcurl's
 * pre-request callback), which the caller reports to the rate limiter.
 * Nothing in a libcurl callback can raise an error: they only record.
 *
 * Only the caller aborts transfers (stockx_http_cancel); interrupts such
 * as a reload or a procsignal barrier merely wake the wait.
 *
 * Secrets (API key, tokens, the token request's form) live only in this
 * process's memory and in the requests libcurl sends; they are never put
 * in an error message, and buffers that held them are zeroed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "clock.h"
#include "compat.h"
#include "http.h"
#include "limiter.h"

#define SX_USER_AGENT      "stockx_enrich/" STOCKX_ENRICH_VERSION
#define SX_MAX_SOCKETS     160
#define SX_SPARE_HANDLES   16
#define SX_RETRY_AFTER_MAX 64

struct StockxTransfer
{
	dlist_node node; /* in http->in_flight or http->done */
	StockxHttp *http;
	CURL *easy;
	struct curl_slist *headers;
	char *url;
	char *form; /* token request body, zeroed on release */
	void *owner;
	MemoryContext body_cxt;
	/* receive state, filled by libcurl callbacks */
	char *data;
	size_t len;
	size_t cap;
	size_t limit;
	bool too_large;
	bool no_memory;
	char retry_after[SX_RETRY_AFTER_MAX];
	char errbuf[CURL_ERROR_SIZE];
	int64 sent_at;     /* monotonic; 0 until the request left; the latest try */
	int64 reported_at; /* sent_at as last handed to the caller */
	StockxResponse resp;
};

typedef struct WatchedSocket
{
	curl_socket_t fd;
	int what;     /* CURL_POLL_IN, _OUT, _INOUT */
	int position; /* in the wait set; -1 until it is added */
	bool changed; /* what changed since the wait set was made */
} WatchedSocket;

struct StockxHttp
{
	CURLM *multi;
	MemoryContext cxt;
	StockxHttpConfig config;
	dlist_head in_flight;
	dlist_head done;
	int n_in_flight;
	int nsockets;
	WatchedSocket sockets[SX_MAX_SOCKETS];
	bool sockets_overflow;
	bool sockets_changed;
	long timer_ms;     /* libcurl's last timeout request; -1 = none */
	int64 timer_start; /* monotonic time of that request */
	WaitEventSet *wait_set;
	int nspare;
	CURL *spare[SX_SPARE_HANDLES]; /* easy handles kept for the next transfers */
};

static bool curl_initialized = false;

/* ---------------------------------------------------------------- libcurl callbacks */

static int
socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	StockxHttp *http = (StockxHttp *) userp;
	int i;

	for (i = 0; i < http->nsockets; i++)
		if (http->sockets[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < http->nsockets)
		{
			http->sockets[i] = http->sockets[--http->nsockets];
			http->sockets_changed = true; /* a set cannot forget a socket: make a new one */
		}
		return 0;
	}
	if (i == http->nsockets)
	{
		if (http->nsockets == SX_MAX_SOCKETS)
		{
			http->sockets_overflow = true;
			return -1;
		}
		http->nsockets++;
		http->sockets[i].fd = fd;
		http->sockets[i].position = -1;
		http->sockets_changed = true;
	}
	else if (http->sockets[i].what != what)
		http->sockets[i].changed = true;
	http->sockets[i].what = what;
	return 0;
}

static int
timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	StockxHttp *http = (StockxHttp *) userp;

	http->timer_ms = timeout_ms;
	http->timer_start = stockx_mono_now();
	return 0;
}

/* Right before the request is sent on its connection: when it really left. */
static int
prereq_callback(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	StockxTransfer *t = (StockxTransfer *) clientp;

	/* a retry on a fresh connection (the kept one had died) counts from its own send */
	t->sent_at = stockx_mono_now();
	return CURL_PREREQFUNC_OK;
}

static size_t
receive_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	StockxTransfer *t = (StockxTransfer *) userdata;
	size_t n = size * nmemb;

	if (t->len + n > t->limit)
	{
		t->too_large = true;
		return 0; /* aborts the transfer */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t cap = Max(t->cap * 2, t->len + n + 1);
		char *grown;

		cap = Max(Min(cap, t->limit + 1), t->len + n + 1);
		grown = MemoryContextAllocExtended(t->body_cxt, cap, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
		if (grown == NULL)
		{
			t->no_memory = true;
			return 0;
		}
		if (t->data)
		{
			memcpy(grown, t->data, t->len);
			pfree(t->data);
		}
		t->data = grown;
		t->cap = cap;
	}
	memcpy(t->data + t->len, ptr, n);
	t->len += n;
	t->data[t->len] = '\0';
	return n;
}

static size_t
receive_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
	StockxTransfer *t = (StockxTransfer *) userdata;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 && pg_strncasecmp(buffer, name, sizeof(name) - 1) == 0)
	{
		size_t vlen = n - (sizeof(name) - 1);
		const char *v = buffer + sizeof(name) - 1;

		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen < sizeof(t->retry_after))
		{
			memcpy(t->retry_after, v, vlen);
			t->retry_after[vlen] = '\0';
		}
	}
	return n;
}

/* ---------------------------------------------------------------- setup */

StockxHttp *
stockx_http_create(const StockxHttpConfig *config)
{
	MemoryContext cxt;
	StockxHttp *http;

	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "stockx_enrich http", ALLOCSET_SMALL_SIZES);
	http = MemoryContextAllocZero(cxt, sizeof(StockxHttp));
	http->cxt = cxt;
	dlist_init(&http->in_flight);
	dlist_init(&http->done);
	http->timer_ms = -1;
	http->sockets_changed = true;
	http->multi = curl_multi_init();
	if (http->multi == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	stockx_http_configure(http, config);
	return http;
}

void
stockx_http_configure(StockxHttp *http, const StockxHttpConfig *config)
{
	if (http->config.api_base_url)
		pfree(http->config.api_base_url);
	if (http->config.token_url)
		pfree(http->config.token_url);
	http->config = *config;
	http->config.api_base_url = MemoryContextStrdup(http->cxt, config->api_base_url);
	http->config.token_url = MemoryContextStrdup(http->cxt, config->token_url);
}

void
stockx_http_destroy(StockxHttp *http)
{
	if (http == NULL)
		return;
	stockx_http_cancel_all(http);
	while (!dlist_is_empty(&http->done))
		stockx_http_release(
		    http, dlist_container(StockxTransfer, node, dlist_pop_head_node(&http->done)));
	if (http->wait_set)
		FreeWaitEventSet(http->wait_set);
	while (http->nspare > 0)
		curl_easy_cleanup(http->spare[--http->nspare]);
	curl_multi_cleanup(http->multi);
	MemoryContextDelete(http->cxt);
}

/* ---------------------------------------------------------------- transfers */

static void
free_headers(struct curl_slist *headers)
{
	struct curl_slist *h;

	for (h = headers; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

static struct curl_slist *
append_header(struct curl_slist *headers, const char *name, const char *prefix, const char *value)
{
	char *line = psprintf("%s: %s%s", name, prefix, value ? value : "");
	struct curl_slist *more = curl_slist_append(headers, line);

	explicit_bzero(line, strlen(line));
	pfree(line);
	if (more == NULL)
	{
		free_headers(headers);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	return more;
}

static StockxTransfer *
new_transfer(StockxHttp *http, const char *url, void *owner, MemoryContext body_cxt)
{
	StockxTransfer *t = MemoryContextAllocZero(http->cxt, sizeof(StockxTransfer));
	CURL *easy = http->nspare > 0 ? http->spare[--http->nspare] : curl_easy_init();

	if (easy == NULL)
	{
		pfree(t);
		ereport(ERROR,
		        (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not create a libcurl handle")));
	}
	t->http = http;
	t->easy = easy;
	t->owner = owner;
	t->body_cxt = body_cxt;
	t->limit = (size_t) http->config.max_response_bytes;
	t->url = MemoryContextStrdup(http->cxt, url);
	t->resp.retry_after_us = -1;

	curl_easy_setopt(easy, CURLOPT_URL, t->url);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) http->config.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) http->config.request_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, SX_USER_AGENT);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, receive_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, receive_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_callback);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, t);
	return t;
}

/* Let libcurl act on timers that are due (sends new requests at once). */
static void
run_timeouts(StockxHttp *http)
{
	int running;

	http->timer_ms = -1;
	curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

static void collect_done(StockxHttp *http);

static void
start(StockxHttp *http, StockxTransfer *t)
{
	CURLMcode rc = curl_multi_add_handle(http->multi, t->easy);

	if (rc != CURLM_OK)
	{
		free_headers(t->headers);
		curl_easy_cleanup(t->easy);
		pfree(t->url);
		pfree(t);
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
		                errmsg("could not start an HTTP request: %s", curl_multi_strerror(rc))));
	}
	dlist_push_tail(&http->in_flight, &t->node);
	http->n_in_flight++;
	run_timeouts(http);
	collect_done(http);
}

/* GET api_base_url || path with our headers; the body lands in body_cxt. */
StockxTransfer *
stockx_http_get(StockxHttp *http, const char *path, const char *bearer, const char *api_key,
                void *owner, MemoryContext body_cxt)
{
	char *url = psprintf("%s%s", http->config.api_base_url, path);
	StockxTransfer *t = new_transfer(http, url, owner, body_cxt);

	pfree(url);
	t->headers = append_header(t->headers, "Accept", "", "application/json");
	t->headers = append_header(t->headers, "Authorization", "Bearer ", bearer);
	t->headers = append_header(t->headers, "x-api-key", "", api_key);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
	start(http, t);
	return t;
}

/* POST a form to the token URL; form is copied and zeroed after use. */
StockxTransfer *
stockx_http_post_token(StockxHttp *http, const char *form, void *owner, MemoryContext body_cxt)
{
	StockxTransfer *t = new_transfer(http, http->config.token_url, owner, body_cxt);

	t->form = MemoryContextStrdup(http->cxt, form);
	t->headers = append_header(t->headers, "Content-Type", "", "application/x-www-form-urlencoded");
	t->headers = append_header(t->headers, "Accept", "", "application/json");
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->form);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(t->form));
	start(http, t);
	return t;
}

/* Turn libcurl's verdict into the response. */
static void
finish_response(StockxTransfer *t, CURLcode rc)
{
	StockxResponse *resp = &t->resp;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp->status);
	switch (rc)
	{
		case CURLE_OK:
			resp->transport = SX_TRANSPORT_OK;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			resp->transport = SX_TRANSPORT_TIMEOUT;
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
			resp->transport = SX_TRANSPORT_CONNECT;
			break;
		case CURLE_WRITE_ERROR:
			resp->transport = t->too_large ? SX_TRANSPORT_TOO_LARGE : SX_TRANSPORT_OTHER;
			break;
		default:
			resp->transport = SX_TRANSPORT_OTHER;
			break;
	}
	if (rc != CURLE_OK)
	{
		if (t->too_large)
			snprintf(resp->error, sizeof(resp->error),
			         "response larger than stockx_enrich.max_response_bytes (%zu bytes)", t->limit);
		else if (t->no_memory)
			snprintf(resp->error, sizeof(resp->error), "out of memory receiving the response");
		else
			snprintf(resp->error, sizeof(resp->error), "%s",
			         t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
	}
	if (t->retry_after[0])
		resp->retry_after_us = sx_parse_retry_after(t->retry_after, stockx_wall_now());
	if (t->data == NULL)
	{
		t->data = MemoryContextAllocZero(t->body_cxt, 1);
		t->len = 0;
	}
	resp->body = t->data;
	resp->body_len = t->len;
}

static void
collect_done(StockxHttp *http)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(http->multi, &left)) != NULL)
	{
		StockxTransfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		finish_response(t, msg->data.result);
		curl_multi_remove_handle(http->multi, t->easy);
		dlist_delete(&t->node);
		http->n_in_flight--;
		dlist_push_tail(&http->done, &t->node);
	}
}

/* Free a transfer (done or cancelled); its body stays in body_cxt. */
void
stockx_http_release(StockxHttp *http, StockxTransfer *t)
{
	free_headers(t->headers);
	/* the handle goes back to the pool, forgetting every option of this transfer */
	if (http->nspare < SX_SPARE_HANDLES)
	{
		curl_easy_reset(t->easy);
		http->spare[http->nspare++] = t->easy;
	}
	else
		curl_easy_cleanup(t->easy);
	if (t->form)
	{
		explicit_bzero(t->form, strlen(t->form));
		pfree(t->form);
	}
	pfree(t->url);
	pfree(t);
}

/* Abort a transfer still in flight (or drop a finished one unread). */
void
stockx_http_cancel(StockxHttp *http, StockxTransfer *t)
{
	dlist_iter iter;

	dlist_foreach(iter, &http->in_flight)
	{
		if (iter.cur == &t->node)
		{
			curl_multi_remove_handle(http->multi, t->easy);
			http->n_in_flight--;
			break;
		}
	}
	dlist_delete(&t->node);
	stockx_http_release(http, t);
}

void
stockx_http_cancel_all(StockxHttp *http)
{
	while (!dlist_is_empty(&http->in_flight))
		stockx_http_cancel(
		    http, dlist_container(StockxTransfer, node, dlist_head_node(&http->in_flight)));
}

int
stockx_http_in_flight(const StockxHttp *http)
{
	return http->n_in_flight;
}

bool
stockx_http_has_done(StockxHttp *http)
{
	return !dlist_is_empty(&http->done);
}

void *
stockx_transfer_owner(const StockxTransfer *t)
{
	return t->owner;
}

const StockxResponse *
stockx_transfer_response(const StockxTransfer *t)
{
	return &t->resp;
}

bool
stockx_transfer_was_sent(const StockxTransfer *t)
{
	return t->sent_at != 0;
}

/*
 * A transfer whose request left (or left again, on a fresh connection)
 * since the last call, with when; *first tells a first send from a retry.
 * NULL if none.
 */
StockxTransfer *
stockx_http_next_sent(StockxHttp *http, int64 *sent_at, bool *first)
{
	dlist_head *lists[2] = { &http->in_flight, &http->done };
	int i;

	for (i = 0; i < 2; i++)
	{
		dlist_iter iter;

		dlist_foreach(iter, lists[i])
		{
			StockxTransfer *t = dlist_container(StockxTransfer, node, iter.cur);

			if (t->sent_at != 0 && t->sent_at != t->reported_at)
			{
				*first = (t->reported_at == 0);
				t->reported_at = t->sent_at;
				*sent_at = t->sent_at;
				return t;
			}
		}
	}
	return NULL;
}

/* A finished transfer (take it off the list; release it when done); NULL if none. */
StockxTransfer *
stockx_http_next_done(StockxHttp *http)
{
	StockxTransfer *t;

	if (dlist_is_empty(&http->done))
		return NULL;
	t = dlist_container(StockxTransfer, node, dlist_pop_head_node(&http->done));
	t->node.prev = t->node.next = NULL;
	return t;
}

/* ---------------------------------------------------------------- waiting */

static uint32
socket_events(int what)
{
	uint32 events = 0;

	if (what & CURL_POLL_IN)
		events |= WL_SOCKET_READABLE;
	if (what & CURL_POLL_OUT)
		events |= WL_SOCKET_WRITEABLE;
	return events;
}

/*
 * Bring the wait set in line with the sockets libcurl watches: a new set
 * when a socket came or went (sets cannot drop one), else the events of
 * the sockets whose interest changed.
 */
static void
update_wait_set(StockxHttp *http)
{
	int i;

	if (http->sockets_changed || http->wait_set == NULL)
	{
		if (http->wait_set)
			FreeWaitEventSet(http->wait_set);
		http->wait_set = NULL;
		http->wait_set = sx_create_wait_event_set(http->nsockets + 2);
		AddWaitEventToSet(http->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(http->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < http->nsockets; i++)
		{
			http->sockets[i].position =
			    AddWaitEventToSet(http->wait_set, socket_events(http->sockets[i].what),
			                      http->sockets[i].fd, NULL, NULL);
			http->sockets[i].changed = false;
		}
		http->sockets_changed = false;
		return;
	}
	for (i = 0; i < http->nsockets; i++)
	{
		if (!http->sockets[i].changed)
			continue;
		ModifyWaitEvent(http->wait_set, http->sockets[i].position,
		                socket_events(http->sockets[i].what), NULL);
		http->sockets[i].changed = false;
	}
}

/*
 * Wait up to timeout_ms for the latch, a socket or a libcurl timer, and let
 * libcurl act on what happened.  Finished transfers go to the done list.
 * The latch is reset here: the caller checks its flags after every wait.
 */
void
stockx_http_wait(StockxHttp *http, long timeout_ms, uint32 wait_event_info)
{
	WaitEvent events[16];
	int n;
	int i;
	int running;
	bool timed_out;

	if (http->sockets_overflow)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
		                errmsg("stockx_enrich: too many sockets in use by HTTP requests")));
	if (http->timer_ms >= 0)
	{
		int64 left_ms = http->timer_ms - (stockx_mono_now() - http->timer_start) / 1000;

		if (left_ms <= 0)
		{
			run_timeouts(http);
			collect_done(http);
			timeout_ms = 0;
		}
		else
			timeout_ms = Min(timeout_ms, (long) left_ms);
	}
	update_wait_set(http);

	n = WaitEventSetWait(http->wait_set, Max(timeout_ms, 0), events, lengthof(events),
	                     wait_event_info);
	timed_out = (n == 0);
	for (i = 0; i < n; i++)
	{
		WaitEvent *ev = &events[i];
		int mask = 0;

		if (ev->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			continue;
		}
		if (ev->events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (ev->events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		if (mask != 0)
			curl_multi_socket_action(http->multi, ev->fd, mask, &running);
	}
	if (timed_out || (http->timer_ms >= 0 &&
	                  stockx_mono_now() - http->timer_start >= (int64) http->timer_ms * 1000))
		run_timeouts(http);
	collect_done(http);
}

/* ---------------------------------------------------------------- helpers */

/* Escape a query or path value; the result is palloc'd. */
char *
stockx_http_escape(const char *value)
{
	char *escaped = curl_easy_escape(NULL, value, 0);
	char *result;

	if (escaped == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}
