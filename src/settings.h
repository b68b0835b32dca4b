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

#include "credentials.h"

struct SxLimiterConfig;
struct StockxHttpConfig;
struct StockxEnrichConfig;
struct StockxStoreConfig;
struct StockxWorkerConfig;

extern void stockx_settings_define(void);

extern void stockx_settings_limiter(struct SxLimiterConfig *config);
extern void stockx_settings_http(struct StockxHttpConfig *config, MemoryContext cxt);
extern void stockx_settings_enrich(struct StockxEnrichConfig *config);
extern void stockx_settings_store(struct StockxStoreConfig *config);
extern void stockx_settings_worker(struct StockxWorkerConfig *config);

extern int stockx_settings_max_workers(void);
extern const char *stockx_settings_secret(StockxSecret which);
extern const char *stockx_settings_credentials_file(void);

#endif /* STOCKX_SETTINGS_H */
