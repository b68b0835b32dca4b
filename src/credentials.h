/*-------------------------------------------------------------------------
 * credentials.h
 *	  Where the StockX secrets come from: the stockx_enrich.* settings, or
 *	  the file named by stockx_enrich.credentials_file, which overrides them.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CREDENTIALS_H
#define STOCKX_CREDENTIALS_H

typedef enum StockxSecret
{
	SX_SECRET_API_KEY = 0,
	SX_SECRET_CLIENT_ID,
	SX_SECRET_CLIENT_SECRET,
	SX_SECRET_REFRESH_TOKEN,
	SX_SECRET_ACCESS_TOKEN,
	SX_SECRET_COUNT
} StockxSecret;

extern void stockx_credentials_load(void);
extern bool stockx_credentials_reload(void);
extern const char *stockx_secret(StockxSecret which);
extern bool stockx_credentials_configured(const char **missing);
extern bool stockx_credentials_in_file(StockxSecret which);
extern bool stockx_credentials_save_refresh_token(const char *token, char *errbuf, size_t errlen);
extern bool stockx_secret_is_clean(const char *value);

#endif /* STOCKX_CREDENTIALS_H */
