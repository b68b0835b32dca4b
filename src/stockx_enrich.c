/*-------------------------------------------------------------------------
 * stockx_enrich.c
 *	  Module entry: _PG_init (settings and shared memory hooks), and the
 *	  small helpers every file shares: names of states and stop reasons,
 *	  counter arithmetic, randomness and the allocator handed to the pure
 *	  JSON code.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/memutils.h"

#include "settings.h"
#include "shmem.h"
#include "stockx_enrich.h"

#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "stockx_enrich", .version = STOCKX_ENRICH_VERSION);
#else
PG_MODULE_MAGIC;
#endif

void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	stockx_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	stockx_shmem_startup();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("stockx_enrich must be loaded via shared_preload_libraries"),
		                errhint("Add stockx_enrich to shared_preload_libraries in postgresql.conf "
		                        "and restart the server.")));

	stockx_settings_define();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

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

/*
 * Parse a comma-separated list of currency codes (blanks around codes
 * ignored, letters folded to upper case) into *out.  On failure says why,
 * without repeating more of the value than the offending code.
 */
bool
stockx_parse_currencies(const char *list, StockxCurrencies *out, char *why, size_t whylen)
{
	/* the CurrencyCode enum of StockX's published API document */
	static const char *const known[] = { "AUD", "BRL", "CAD", "CHF", "CLP", "CNY", "DKK", "EUR",
		                                 "GBP", "HKD", "HUF", "IDR", "ILS", "JPY", "KRW", "KWD",
		                                 "MOP", "MXN", "MYR", "NOK", "NZD", "PEN", "PHP", "PLN",
		                                 "SEK", "SGD", "THB", "TWD", "USD", "VND" };
	const char *p = list;

	memset(out, 0, sizeof(*out));
	for (;;)
	{
		char code[4];
		int len = 0;
		int i, k;

		while (*p == ' ' || *p == '\t')
			p++;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
		{
			if (len < 3)
				code[len] = pg_ascii_toupper((unsigned char) *p);
			len++;
			p++;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (len != 3)
		{
			snprintf(why, whylen, "%s",
			         len == 0 ? "The list has an empty entry."
			                  : "A currency code has three letters.");
			return false;
		}
		code[3] = '\0';
		for (k = 0; k < (int) lengthof(known) && strcmp(code, known[k]) != 0; k++)
			;
		if (k == (int) lengthof(known))
		{
			snprintf(why, whylen, "StockX does not know the currency \"%s\".", code);
			return false;
		}
		for (i = 0; i < out->n; i++)
			if (strcmp(out->code[i], code) == 0)
			{
				snprintf(why, whylen, "The currency \"%s\" is listed twice.", code);
				return false;
			}
		memcpy(out->code[out->n++], code, 4);
		if (*p == '\0')
			return true;
		if (*p != ',')
		{
			snprintf(why, whylen, "Separate currency codes with commas.");
			return false;
		}
		p++;
	}
}
