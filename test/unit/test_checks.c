/*-------------------------------------------------------------------------
 * test_checks.c
 *	  Unit tests of the pure checks of settings (src/checks.c): the
 *	  currency list, secrets, the URLs secrets may go to.  Output is TAP.
 *-------------------------------------------------------------------------
 */
#include "checks.h"

#include <stdio.h>
#include <string.h>

#include "tap.h"

static char why[256];

static bool
currencies(const char *list, SxCurrencyList *out)
{
	why[0] = '\0';
	return sx_parse_currencies(list, out, why, sizeof(why));
}

static void
test_currencies(void)
{
	static const char *const all =
	    "AUD,BRL,CAD,CHF,CLP,CNY,DKK,EUR,GBP,HKD,HUF,IDR,ILS,JPY,KRW,KWD,MOP,MXN,MYR,NOK,NZD,PEN,"
	    "PHP,PLN,SEK,SGD,THB,TWD,USD,VND";
	SxCurrencyList l;

	ok(currencies("USD", &l) && l.n == 1 && strcmp(l.code[0], "USD") == 0, "currencies: one");
	ok(currencies(" usd ,\teur ", &l) && l.n == 2 && strcmp(l.code[1], "EUR") == 0,
	   "currencies: blanks ignored, letters folded, order kept");
	ok(currencies(all, &l) && l.n == 30, "currencies: the 30 codes of StockX's enum");
	ok(!currencies("USD,XYZ", &l) && strstr(why, "\"XYZ\"") != NULL,
	   "currencies: an unknown code is named");
	ok(!currencies("USD,,EUR", &l) && strstr(why, "empty entry") != NULL,
	   "currencies: an empty entry");
	ok(!currencies("USDX", &l) && strstr(why, "three letters") != NULL, "currencies: four letters");
	ok(!currencies("USD,usd", &l) && strstr(why, "twice") != NULL, "currencies: twice");
	ok(!currencies("USD EUR", &l) && strstr(why, "commas") != NULL,
	   "currencies: separated by a blank only");
	ok(!currencies("", &l), "currencies: empty list");
	ok(sx_currency_known("VND") && !sx_currency_known("vnd") && !sx_currency_known("RUB"),
	   "currency_known: upper-case codes of the enum only");
}

static void
test_secrets(void)
{
	ok(sx_secret_is_clean("abc-DEF_123.~!"), "secret: printable text is clean");
	ok(!sx_secret_is_clean("abc\r\nX-Injected: 1"), "secret: CR LF is not");
	ok(!sx_secret_is_clean("tab\tin"), "secret: a tab is not");
	ok(!sx_secret_is_clean("del\x7f"), "secret: DEL is not");
	ok(sx_secret_is_clean("caf\xc3\xa9"), "secret: UTF-8 letters are");
}

static bool
url(const char *u)
{
	why[0] = '\0';
	return sx_url_allowed(u, why, sizeof(why));
}

static void
test_urls(void)
{
	ok(url("https://api.stockx.com/v2"), "url: https anywhere");
	ok(url("http://127.0.0.1:8080/v2") && url("http://localhost/v2") && url("http://[::1]:9/v2"),
	   "url: http to loopback (127/8, localhost, ::1)");
	ok(url("http://127.9.9.9/"), "url: all of 127/8 is loopback");
	ok(!url("http://api.stockx.com/v2") && strstr(why, "loopback") != NULL,
	   "url: http elsewhere is refused");
	ok(!url("http://[::2]/") && !url("http://128.0.0.1/"), "url: other addresses are not loopback");
	ok(!url("https://user:pw@api.stockx.com/v2") && strstr(why, "user name") != NULL,
	   "url: credentials in the URL are refused");
	ok(!url("ftp://127.0.0.1/") && strstr(why, "https://") != NULL, "url: other schemes");
	ok(!url("") && !url("not a url"), "url: empty or unparseable");
}

int
main(void)
{
	test_currencies();
	test_secrets();
	test_urls();
	return done_testing();
}
