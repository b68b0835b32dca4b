/*-------------------------------------------------------------------------
 * checks.h
 *	  Pure checks of what a user configures: the currency list, secrets,
 *	  the URLs secrets may be sent to.  No PostgreSQL dependency (libcurl
 *	  parses URLs): they report why in a buffer instead of raising errors,
 *	  so check hooks and the unit tests call them alike.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CHECKS_H
#define STOCKX_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

/* StockX's enum has 30 codes: a list holds each at most once */
#define SX_MAX_CURRENCIES 30

/* A parsed currency list: n codes of three upper-case letters, in order. */
typedef struct SxCurrencyList
{
	int n;
	char code[SX_MAX_CURRENCIES][4];
} SxCurrencyList;

extern bool sx_parse_currencies(const char *list, SxCurrencyList *out, char *why, size_t whylen);
extern bool sx_currency_known(const char *code);
extern bool sx_secret_is_clean(const char *value);
extern bool sx_url_allowed(const char *url, char *why, size_t whylen);

#endif /* STOCKX_CHECKS_H */
