/*-------------------------------------------------------------------------
 * settings.h
 *	  The stockx_enrich.* settings.  The GUC variables are private to
 *	  settings.c; the rest of the code gets config structs filled from them
 *	  on load and after each reload.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SETTINGS_H
#define STOCKX_SETTINGS_H

#include "utils/palloc.h"

#include "limiter.h"
#include "stockx_config.h"
#include "stockx_types.h"

extern void stockx_settings_define(void);

extern void stockx_settings_limiter(SxLimiterConfig *config);
extern void stockx_settings_http(StockxHttpConfig *config, MemoryContext cxt);
extern void stockx_settings_enrich(StockxEnrichConfig *config);
extern PGDLLEXPORT void stockx_settings_store(StockxStoreConfig *config);
extern void stockx_settings_worker(StockxWorkerConfig *config);

extern int stockx_settings_max_workers(void);
extern bool stockx_settings_sync_selling(void);
extern int stockx_settings_sync_every(void);
extern const char *stockx_settings_secret(StockxSecret which);
extern const char *stockx_settings_credentials_file(void);
extern const char *stockx_settings_authorize_url(void);

#endif /* STOCKX_SETTINGS_H */
