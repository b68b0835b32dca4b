/*-------------------------------------------------------------------------
 * stockx_config.h
 *	  What each part of stockx_enrich reads from the settings, as plain
 *	  structs that settings.c fills on load and after each reload (the GUC
 *	  variables themselves are private to settings.c).  The limiter's own
 *	  config, SxLimiterConfig, is in limiter.h with the arithmetic it drives.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CONFIG_H
#define STOCKX_CONFIG_H

#include "checks.h"
#include "stockx_types.h"

/* The HTTP client (http.c). */
typedef struct StockxHttpConfig
{
	char *api_base_url; /* owned by the config's memory context */
	char *token_url;
	int connect_timeout_ms;
	int request_timeout_ms;
	int max_response_bytes;
} StockxHttpConfig;

/* Enriching one SKU (enrich.c). */
typedef struct StockxEnrichConfig
{
	SxCurrencyList currencies; /* the first is the products' */
	int search_max_pages;      /* pages of a search followed while no hit matches */
	int max_retries;
	int backoff_base_ms;
	int backoff_max_ms;
} StockxEnrichConfig;

/* The store (store*.c). */
typedef struct StockxStoreConfig
{
	int max_attempts;
	int refresh_after_s; /* 0 = only products with their own refresh_every */
	int lease_s;
	int run_retention_s;       /* 0 = keep every run */
	int history_retention_s;   /* 0 = keep all price history */
	int event_retention_s;     /* 0 = keep every event */
	double notify_change_pct;  /* price moves above this are events; 0 = none */
	SxCurrencyList currencies; /* the first is the products' */
} StockxStoreConfig;

/* The worker loop (worker.c). */
typedef struct StockxWorkerConfig
{
	int batch_size;
	int commit_every;
	int requests_in_flight;
	int lease_s;
} StockxWorkerConfig;

#endif /* STOCKX_CONFIG_H */
