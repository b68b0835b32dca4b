/*-------------------------------------------------------------------------
 * credentials.h
 *	  Where the StockX secrets come from: the stockx_enrich.* settings, or
 *	  the file named by stockx_enrich.credentials_file, which overrides them.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CREDENTIALS_H
#define STOCKX_CREDENTIALS_H

#include "stockx_types.h"

extern void stockx_credentials_load(void);
extern bool stockx_credentials_reload(void);
extern const char *stockx_secret(StockxSecret which);
extern bool stockx_credentials_configured(const char **missing);
extern bool stockx_credentials_in_file(StockxSecret which);
extern bool stockx_credentials_save_refresh_token(const char *token, char *errbuf, size_t errlen);
extern bool stockx_credentials_write_refresh_token(const char *token, char *errbuf, size_t errlen);

#endif /* STOCKX_CREDENTIALS_H */
