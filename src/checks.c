/*-------------------------------------------------------------------------
 * checks.c
 *	  Pure checks of settings (see checks.h).
 *
 * The currency list: comma-separated codes of StockX's CurrencyCode enum
 * (the 30 of its published API document), blanks around codes ignored,
 * letters folded to upper case, none twice.  A failure says why without
 * repeating more of the value than the offending code.
 *
 * Secrets must hold no control character: a carriage return or line feed
 * would let a value add a header to an HTTP request.
 *
 * URLs that carry secrets (the API key, the client secret): https://
 * anywhere, http:// only to a loopback address, never with a user name or
 * password in them.
 *-------------------------------------------------------------------------
 */
#include "checks.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* the CurrencyCode enum of StockX's published API document */
static const char *const currencies[] = { "AUD", "BRL", "CAD", "CHF", "CLP", "CNY", "DKK", "EUR",
	                                      "GBP", "HKD", "HUF", "IDR", "ILS", "JPY", "KRW", "KWD",
	                                      "MOP", "MXN", "MYR", "NOK", "NZD", "PEN", "PHP", "PLN",
	                                      "SEK", "SGD", "THB", "TWD", "USD", "VND" };

bool
sx_currency_known(const char *code)
{
	size_t k;

	for (k = 0; k < sizeof(currencies) / sizeof(currencies[0]); k++)
		if (strcmp(code, currencies[k]) == 0)
			return true;
	return false;
}

bool
sx_parse_currencies(const char *list, SxCurrencyList *out, char *why, size_t whylen)
{
	const char *p = list;

	memset(out, 0, sizeof(*out));
	for (;;)
	{
		char code[4];
		int len = 0;
		int i;

		while (*p == ' ' || *p == '\t')
			p++;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
		{
			if (len < 3)
				code[len] = (char) toupper((unsigned char) *p);
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
		if (!sx_currency_known(code))
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
		if (out->n == SX_MAX_CURRENCIES)
		{
			snprintf(why, whylen, "The list has more than %d currencies.", SX_MAX_CURRENCIES);
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

bool
sx_secret_is_clean(const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *) value; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static bool
host_is_loopback(const char *host)
{
	struct in_addr v4;
	size_t len = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
	{
		struct in6_addr v6;
		char inner[INET6_ADDRSTRLEN + 1];

		if (len - 2 >= sizeof(inner))
			return false;
		memcpy(inner, host + 1, len - 2);
		inner[len - 2] = '\0';
		return inet_pton(AF_INET6, inner, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
	}
	return false;
}

bool
sx_url_allowed(const char *url, char *why, size_t whylen)
{
	CURLU *u;
	char *scheme = NULL;
	char *host = NULL;
	char *user = NULL;
	bool ok = false;

	if (url == NULL || url[0] == '\0')
	{
		snprintf(why, whylen, "The URL is empty.");
		return false;
	}
	u = curl_url();
	if (u == NULL)
	{
		snprintf(why, whylen, "Out of memory.");
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		snprintf(why, whylen, "The URL cannot be parsed.");
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		snprintf(why, whylen, "The URL must not contain a user name or password.");
	else if (strcasecmp(scheme, "https") == 0)
		ok = true;
	else if (strcasecmp(scheme, "http") != 0)
		snprintf(why, whylen, "The URL must start with https:// or http://.");
	else if (!host_is_loopback(host))
		snprintf(why, whylen, "http:// is allowed for loopback addresses only.");
	else
		ok = true;
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(u);
	return ok;
}
