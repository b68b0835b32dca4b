#!/usr/bin/env python3
"""StockX API stand-in for the stockx_enrich tests (Python 3 standard library only).

Run: python3 stockx_standin.py --port 0 --port-file F [--api-key K] [--client-id C]
         [--client-secret S] [--refresh-token R] [--static-token T] [--verbose]
Binds 127.0.0.1 only; the port (digits + newline) is written atomically to F once
listening.  SIGTERM/SIGINT stop it cleanly (F is removed if it still holds our
port).  Nothing goes to stderr unless --verbose.

API (clients use base URL http://127.0.0.1:PORT/v2), as StockX's OpenAPI
document ("StockX Public API 2.0.0") gives it; endpoint names (log, stats,
fail_next) in brackets:
    GET  /authorize?response_type=code&client_id=&redirect_uri=&scope=&audience=&state=
         the login page, as the browser sees it once the person has logged
         in: 302 to redirect_uri?code=...&state=... (see Login below)
    POST /oauth/token                                   [token]
         refresh-token and authorization-code grants (form-urlencoded)
    GET  /v2/catalog/search?query=&pageNumber=&pageSize=            [search]
         200 Search {count, pageSize, pageNumber, hasNextPage, products:
         [SearchProduct]}; never 400 or 404 (see Search below)
    GET  /v2/catalog/products/variants/gtins/{gtin}                 [gtin]
         200 ONE variant (ProductVariantDetails, with its productId);
         400 not a GTIN; 404 a valid GTIN no registered variant carries
    GET  /v2/catalog/products/{productId}                           [product]
         200 Product (with sizeChart and the two flags); 404 unknown
    GET  /v2/catalog/products/{productId}/variants                  [variants]
         200 bare array of ProductVariant; 404 unknown product
    GET  /v2/catalog/products/{productId}/variants/{variantId}      [variant]
         200 ProductVariantDetails; 400 the variant is not one of that
         product's; 404 unknown product
    GET  /v2/catalog/products/{productId}/market-data?currencyCode= [market]
         200 bare array of MarketData, one per variant; an unknown product
         gives 200 [] (the document lists no 404 for this call)
    GET  /v2/catalog/products/{productId}/variants/{variantId}/market-data?currencyCode=
                                                                    [variant_market]
         200 one MarketData; 400 the variant is not one of that product's,
         also when the product is unknown (the document lists 400 and no 404)
    anything else under /v2: 404 [other]; a method other than GET on a
    catalogue route: 405.
Every /v2 call needs `x-api-key` (else 403) and `Authorization: Bearer <tok>`
with the static token or an issued, unexpired token (else 401).  Every error
body of a /v2 call is {"statusCode": <the HTTP status>, "message": "..."}.
Ids in paths are matched case-insensitively.  currencyCode is one of the 30
codes of the document's CurrencyCode enum (see Currencies); any other value,
or none, gives USD (the answer's currencyCode says so): the document gives
the market calls no 400 for it.  A query string that is not UTF-8 is read
with U+FFFD in place of the bad bytes.

Search: pageSize 1-50, default 1; pageNumber >= 1, default 1; a value out of
range is clamped into it, one that is not an integer takes the default (the
document gives search no 400).  count is the number of all hits, the page
holds hits (pageNumber-1)*pageSize+1 .. pageNumber*pageSize, hasNextPage
says whether a later page holds any.  A query that is missing, empty or over
100 characters finds nothing (count 0).  Every hit is registered (see
below), whatever page shows it.  Search items are SearchProducts: productId,
urlKey, styleId, productType, title, brand, productAttributes and nothing
else (no sizeChart, no isFlexEligible / isDirectEligible).
GET /products/{id} gives the Product: the same keys plus
    "sizeChart": {"availableConversions": [{"name": "US M", "type": "us m"},
                                           {"name": "EU", "type": "eu"}],
                  "defaultConversion": {"name": "US M", "type": "us m"}}
(US W / us w for women, US Y / us y for children; NUL-: no conversions and
defaultConversion null), "isFlexEligible" and "isDirectEligible".  Note
"name" here where a variant's sizeChart has "size".

GTIN lookup (/catalog/products/variants/gtins/{gtin}): a GTIN is 8, 12, 13
or 14 ASCII digits whose last digit is the GS1 check digit of the others;
anything else (other lengths, blanks, letters, a wrong check digit) is 400.
The forms of one number padded with leading zeros are the same GTIN (GS1
pads to 14 digits): the 12-digit UPC of a variant is found as 0+UPC (13) or
00+UPC (14) too.  The answer is the variant (of a REGISTERED product, see
below, as its variants are now) that lists the GTIN, as a single-variant
call gives it (variantValue null becomes ""); several such products: the
first by productId.  Not found: 404.  A lookup registers nothing.  It goes
through the same gating (block, limiter, fail_next, ratio, auth) as every
/v2 call.

Catalogue: everything derives from sha256 of the normalised SKU (strip, upper),
so answers are repeatable.  Kind by SKU prefix (case-insensitive):
    NF-    not found: search returns 3 near-misses only (count 3)
    CMP-   compound styleId "<OTHER-CODE> / <sku with swapped case>"
    NUL-   title, brand, every productAttributes value and every amount null;
           2 variants, the 2nd with variantValue null and defaultConversion null
    MANY-  60 variants
    NUM-   amounts as JSON numbers; count/pageSize/pageNumber as 3.0, 10.0 ...
    LAT-   title "<brand> <model> Crème Brûlée Café Señor" and a colorway with
           accented letters that all exist in LATIN1
    UNI-   title "<brand> <model> “Sakura” 桜 👟" and a colorway with characters
           outside LATIN1 (curly quotes, Greek, CJK, emoji)
    ZERO-  title "<brand> Air\u0000Max <colorway>": an embedded NUL, sent as the
           JSON escape \u0000
    BADUTF- title "<brand> <model> ?? <colorway>" where ?? are the raw bytes FF FE
           (invalid UTF-8) in the body of search and /products/{id} answers;
           /_admin/expect shows them as two U+FFFD and adds
           "invalid_utf8": {"field": "title", "raw_hex": "fffe"}
    BIG-   every variantValue is the size, a blank and 9,000 "x" (a value longer
           than a NOTIFY payload may be)
    other  1 + (hash % 12) variants
LAT-, UNI-, ZERO-, BADUTF- and BIG- products have 1 + (hash % 12) variants, like "other".
For found kinds search returns 2 near-misses FIRST, then the product (count 3;
search_extra_hits adds more near-misses between them).
CMP- uses Python's str.swapcase(), which swaps non-ASCII letters too ("CMP-ÉTÉ-1"
gives the part "cmp-été-1") and may change the length ("ß" becomes "SS").
Near-miss styleIds: SKU+"0", SKU[:-1]+"X" (or "Y"), "A"+SKU.  A productId is
known to /products/... (and its GTINs to the GTIN lookup) only after it
appeared in a search or /_admin/expect since the server started: it is then
"registered" (the registry survives /_admin/reset).
Ids: productIds and variantIds are lower-case UUIDs (v4) unless odd_ids or
uppercase_ids say otherwise; the document types them as plain strings.

Search by GTIN: a query of 8 to 14 ASCII digits (surrounding blanks ignored)
is a barcode, not a SKU.  Every variant carries two GTINs with valid GS1
check digits: {"identifier": <12 digits>, "type": "UPC"} and
{"identifier": <13 digits>, "type": "EAN-13"}.  When the digits equal
(exactly, as strings: no zero padding between UPC and EAN-13) an identifier
of a variant of a REGISTERED product (see above; as its variants are now,
extra_variant_skus included), search answers like a style-id search: the
query's first 2 near-misses (styleIds query+"0" and query[:-1]+"X"), then
that product (count 3; several such products: all of them, by productId).
Otherwise the answer is empty: {"count": 0, ..., "products": []}, and
nothing is registered.  Search answers carry no gtins: a client must fetch
each candidate's variants to find the one that carries the GTIN.
/_admin/expect?sku=<such digits> answers for the matched product (the first
one) and adds "gtin_match": {"sku", "variantId", "type"}; unmatched digits
give {"found": false, ...}.  Queries that are not 8-14 digits are SKUs.

Login (OAuth authorization-code flow, as Auth0 plays it for StockX): GET
/authorize (not logged, not gated) stands for the login page after a
successful login.  An unknown client_id, or a redirect_uri that is missing
or not http(s):// (or has a fragment), is 400 {"error", "error_description"}
with no redirect (Auth0 shows an error page).  Otherwise the answer is 302
with Location redirect_uri plus "?" (or "&" when it has a query already)
and either code=<new code>&state=<state> (state only when one was sent,
URL-encoded as received) or, when response_type is not "code",
error=unsupported_response_type, or when audience is not
"gateway.stockx.com", error=access_denied (&error_description=..., &state=).
A code is good once, for code_ttl_s seconds (default 600), for the
client_id and redirect_uri of its /authorize, and gives a refresh token
only when the scope (space-separated) holds offline_access.
POST /oauth/token with grant_type=authorization_code, client_id,
client_secret, code, redirect_uri: a missing field is 400 invalid_request;
a client_id or client_secret other than the stand-in's is 401
{"error": "access_denied", "error_description": "Unauthorized"} (the code
stays good); an unknown, used or expired code, or one issued for another
redirect_uri or client: 403 {"error": "invalid_grant", "error_description":
"Invalid authorization code"} (a known code is spent by the attempt);
else 200 {"access_token", "refresh_token" (with offline_access), "id_token",
"scope", "expires_in" (token_ttl_s), "token_type": "Bearer"}.  The refresh
token (48 hex digits) is then good for the refresh-token grant, besides
--refresh-token: the stand-in keeps a set of good refresh tokens; with
rotate_refresh_token a refresh replaces the token it used by the new one.
grant_type=refresh_token needs client_id, client_secret, refresh_token and
audience (gateway.stockx.com): anything wrong is 401 invalid_grant.  Any
other grant_type is 400 unsupported_grant_type.  POST /_admin/config with
"expire_codes": true expires every code issued so far.

Config keys that change the catalogue's answers (POST /_admin/config):
    uppercase_ids      bool, default false: every productId and variantId in the
                       API answers (search, product, variants, variant, gtin,
                       market, variant_market) and in /_admin/expect is
                       upper-case.
                       Routes accept ids in any case.
    alias_skus         {alias: target}, default {}: the alias (as written, blanks
                       stripped) becomes one more " / "-separated part of the
                       target's styleId, wherever the target's product appears
                       (plain "X" -> "X / ALIAS"; CMP- compounds get one more part).
                       A search for the alias returns the alias's first 2
                       near-misses, then the TARGET's product (same productId,
                       variants and market data); /_admin/expect?sku=<alias>
                       returns the target's answer.  An alias cannot be its own
                       target nor a target of another alias; NF- targets are
                       refused.
    variants_order     "as_is" (default) | "reverse" | "shuffle": order of the
                       variants array and of the market array in each API answer
                       (shuffle: a new random order per answer).  /_admin/expect
                       always lists them in catalogue order.
    latency_jitter_pct number 0-100, default 0: each /v2 answer waits
                       latency_ms * (1 + u), u uniform in [-pct/100, +pct/100].
    token_crlf         bool, default false: the token endpoint issues access
                       tokens "crlf-token-<hex>\r\nX-Injected: 1" (a header
                       injection if a client puts it in a header unchecked).  Such
                       a token is valid only when the Authorization header carries
                       it verbatim, which HTTP/1.1 cannot do: split across two
                       header lines it is refused with 401.
    price_moves        {"SKU#i": n}, default {}: the lowest ask (and with it every
                       amount derived from it) of variant i (0-based, catalogue
                       order) of SKU moves by n USD (n an integer), in every
                       currency and in /_admin/expect.  market_epoch moves every
                       variant of every SKU.
    rate_tolerance_ms  may be 0: then a gap shorter than exactly 1/rate_limit_rps
                       is refused.
    search_extra_hits  {"SKU": n}, default {}: a search for SKU (a style-id
                       query, alias or NF- included; not a GTIN query) gets n
                       more near-miss products, styleIds "<SKU>-01" ...
                       "<SKU>-<n>" (n 0-1000), after its first 2 near-misses and
                       BEFORE the product, so that with pageSize 50 and n >= 48
                       the exact match sits on page 2 or later.  count grows by
                       n.  /_admin/expect is unaffected.
    market_shape       {"CUR": "top" | "nested" | "both"}, default {}: where the
                       MarketData of that currency carries its prices (see
                       Market data); a currency not listed takes its default:
                       "nested" for AUD, JPY and KRW, "both" for the others.
    odd_ids            ["SKU", ...], default []: the variantIds of these SKUs are
                       not UUIDs but "v-<n>-<i>" (n a number from the SKU's
                       hash, i the variant's index), in every answer (variants,
                       variant, gtin, market, variant_market, /_admin/expect);
                       routes accept them.  productIds stay UUIDs.

Admin (no auth, not logged, no latency):
    GET  /_admin/expect?sku=X[&currencyCode=USD]
         -> {"found", "product", "variants", "market"}
    GET  /_admin/log    -> {"requests": [{"t", "wall", "method", "path", "query",
                                          "status", "endpoint", "header_names"}]}
         header_names: the lower-cased names of the request's headers, in the
         order received (names only, never values)
    GET  /_admin/stats  -> {"total", "api_total", "token_total", "by_status",
         "by_endpoint", "by_endpoint_status", "min_gap_ms", "count_429",
         "blocked", "blocks", "block_started_t", "block_until_t",
         "tokens_issued", "codes_issued", "codes_redeemed", "now_t"}
    GET  /_admin/config -> current config
    POST /_admin/config JSON object merged (top-level keys replaced) into config;
         keys: see DEFAULT_CONFIG below, plus the actions "expire_tokens": true
         and "expire_codes": true.
    POST /_admin/reset  clears log, counters, block state, config, the codes
         and the refresh tokens issued (--refresh-token is good again).
Endpoint names: token search gtin product variants variant market
variant_market other.

Market data: every MarketData has productId, variantId and currencyCode.
Where its prices are depends on the shape of the currency (market_shape):
    "top"     lowestAskAmount, highestBidAmount, sellFasterAmount,
              earnMoreAmount, flexLowestAskAmount, and no nested object;
    "nested"  standardMarketData, flexMarketData, directMarketData, each
              {lowestAsk, highestBidAmount, sellFaster, earnMore, beatUS}, and
              none of the five top-level amounts (the keys are absent);
    "both"    all of them: the top-level amounts equal standardMarketData's
              (lowestAsk, highestBidAmount, sellFaster, earnMore) and
              flexLowestAskAmount equals flexMarketData.lowestAsk.
Every amount is a decimal string or null (NUM-: JSON numbers).  Standard:
the catalogue's prices; beatUS 2 USD under the lowest ask (null for every
5th variant, i % 5 == 4).  Flex: only even variants (i % 2 == 0), the
others all null; lowestAsk 7 USD above standard (the old
flexLowestAskAmount), bid 2 %, sellFaster and earnMore 4 % above standard,
beatUS null.  Direct: only variants of products that are isDirectEligible,
the others all null; lowestAsk, sellFaster, earnMore and beatUS 3 % under
standard, highestBidAmount null.  Figures are computed in USD (to half
dollars), then converted.  /_admin/expect shows the market in the shape of
the currency it is asked for.

Currencies: the 30 codes of the document's CurrencyCode enum, each at a fixed
rate per USD (RATES).  By ISO 4217, CLP, JPY, KRW and VND have no minor unit:
their amounts are whole.  Every other amount is rounded to half units (.5),
KWD (3 minor units) and IDR, HUF, TWD (2 in ISO 4217) included.

Answer log: when the environment variable STOCKX_STANDIN_ANSWERS names a
directory (made if missing), the stand-in appends every /v2 answer it gives
(not token or admin calls) to <dir>/standin-<pid>-<ms>.jsonl, one JSON
object a line:
    {"endpoint", "method", "path", "query", "status", "forced", "broken", "body"}
forced: a fail_next rule gave the answer.  body: the JSON answer as sent,
or null when broken is set: broken says why the body is off the contract on
purpose (malformed_skus, oversize_skus, BADUTF- raw bytes, ZERO- embedded
NUL, NUM- numeric amounts, a body over 4 MiB), so that a contract check
skips it.  token_crlf changes token answers only, which are not logged here.

Gating order for a /v2 request (decided on arrival, before latency_ms):
block -> rate limiter -> fail_next -> error_429_ratio -> api key -> bearer.
Token requests skip block, limiter, ratio, latency and slow body; fail_next
rules without "endpoint" never match token requests.
"""
import argparse, copy, datetime, email.utils, hashlib, json, os, re, secrets
import random, signal, socket, sys, threading, time, unicodedata, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode

# The 30 codes of the document's CurrencyCode enum, each with a fixed rate
# (units of the currency per USD; plausible, not live).
RATES = {"AUD": 1.5, "BRL": 5.0, "CAD": 1.35, "CHF": 0.9, "CLP": 950, "CNY": 7.2,
         "DKK": 6.9, "EUR": 0.92, "GBP": 0.79, "HKD": 7.8, "HUF": 360, "IDR": 15800,
         "ILS": 3.7, "JPY": 150, "KRW": 1330, "KWD": 0.31, "MOP": 8.05, "MXN": 17,
         "MYR": 4.7, "NOK": 10.7, "NZD": 1.6, "PEN": 3.75, "PHP": 56, "PLN": 4.0,
         "SEK": 10.5, "SGD": 1.35, "THB": 36, "TWD": 32, "USD": 1, "VND": 24500}
# ISO 4217 minor units of the codes above where they are not 2.  The ones with
# none (0) get whole amounts; every other amount is rounded to half units.
# (ISO 4217 gives IDR, HUF and TWD 2 minor units, whatever cash looks like.)
MINOR_UNITS = {"CLP": 0, "JPY": 0, "KRW": 0, "VND": 0, "KWD": 3}
WHOLE_CURRENCIES = {c for c, d in MINOR_UNITS.items() if d == 0}
# market_shape: where a MarketData carries its prices
MARKET_SHAPES = ("top", "nested", "both")
NESTED_ONLY_CURRENCIES = {"AUD", "JPY", "KRW"}    # default "nested"; others "both"
NESTED_KEYS = ("lowestAsk", "highestBidAmount", "sellFaster", "earnMore", "beatUS")
# the keys of a SearchProduct (a Product has these, sizeChart and the flags)
SEARCH_PRODUCT_KEYS = ("productId", "urlKey", "styleId", "productType", "title", "brand",
                       "productAttributes")
BRANDS = ["Nike", "Jordan", "adidas", "New Balance", "ASICS", "Converse", "Vans", "Puma"]
MODELS = ["Air Max 90", "Dunk Low", "Air Force 1 Low", "Yeezy Boost 350 V2", "990v5",
          "Gel-Lyte III", "Chuck 70 Hi", "Old Skool", "Suede Classic", "Samba OG"]
COLORWAYS = ["White/Black", "Panda", "Bred", "Triple White", "Sail/Gum", "University Blue",
             "Black/Cement Grey", "Crème Brûlée", "Wolf Grey 'Reflective'", "Volt",
             "Chicago", "Sea Glass"]
COLORS = ["White", "Black", "Red", "Blue", "Grey", None]
KINDS = (("NF-", "nf"), ("CMP-", "cmp"), ("NUL-", "nul"), ("MANY-", "many"), ("NUM-", "num"),
         ("LAT-", "lat"), ("UNI-", "uni"), ("ZERO-", "zero"), ("BADUTF-", "badutf"),
         ("BIG-", "big"))
# BIG-: each variantValue is the size followed by this many "x"
BIG_SIZE_PAD = 9000
# LAT-: accented letters that all exist in LATIN1 (ISO 8859-1)
LAT_TITLE = "Crème Brûlée Café Señor"
LAT_COLORWAYS = ["Crème/Café", "Forêt Noire/Blé Doré", "Señor Rojo/Ébène", "Grün/Weiß",
                 "Smørrebrød Brun", "Açaí/Pêche"]
# UNI-: characters outside LATIN1 (curly quotes, Greek, CJK, a 4-byte emoji)
UNI_TITLE = "\u201cSakura\u201d \u685c \U0001F45F"
UNI_COLORWAYS = ["\u201cPanda\u201d Black/White", "\u03a9mega Grey \u2013 Volt",
                 "\u685c Pink/Ivory", "Midnight \U0001F319 Navy"]
# BADUTF-: this marker (two private-use characters) is replaced by the raw bytes
# FF FE in API answers, and by two U+FFFD in /_admin/expect
BAD_MARK = "\ue000\ue001"
BAD_MARK_BYTES = BAD_MARK.encode("utf-8")
BAD_RAW = b"\xff\xfe"
VARIANTS_ORDERS = ("as_is", "reverse", "shuffle")
ENDPOINTS = {"token", "search", "product", "variants", "variant", "gtin", "market",
             "variant_market", "other"}
MESSAGES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
DEFAULT_CONFIG = {
    "latency_ms": 0,             # delay before answering each /v2 call
    "fail_next": [],             # [{status, count, endpoint?, retry_after?, retry_after_date_s?}]
    "rate_limit_rps": None,      # strict limiter on /v2 calls
    "rate_tolerance_ms": 15,
    "block": None,               # {"after_429s": K, "seconds": N}
    "error_429_ratio": 0,        # every round(1/ratio)-th /v2 call gets 429
    "token_ttl_s": 43200,        # expires_in of newly issued tokens
    "code_ttl_s": 600,           # authorization codes are good this long (and once)
    "revoke_tokens": False,      # every bearer (static too) -> 401
    "revoke_refresh_token": False,   # extra: token endpoint -> 401 invalid_grant
    "rotate_refresh_token": False,   # extra: each refresh returns a new refresh_token
    "slow_body_ms": 0,           # /v2 answers: headers, sleep, body
    "extra_variant_skus": [],
    "market_epoch": 0,
    "oversize_skus": [],         # search answer padded past 10 MiB
    "malformed_skus": [],        # search answer is truncated JSON
    "uppercase_ids": False,      # productId/variantId upper-case in every API answer
    "alias_skus": {},            # {alias: target}: the alias is one more styleId part of target
    "latency_jitter_pct": 0,     # latency_ms * (1 + u), u uniform in [-pct/100, +pct/100]
    "variants_order": "as_is",   # as_is | reverse | shuffle (variants and market arrays)
    "token_crlf": False,         # issued access tokens contain "\r\nX-Injected: 1"
    "price_moves": {},           # {"SKU#i": n}: variant i of SKU's ask moves by n USD
    "search_extra_hits": {},     # {"SKU": n}: n more near-misses before the product
    "market_shape": {},          # {"CUR": "top" | "nested" | "both"}
    "odd_ids": [],               # SKUs whose variantIds are not UUIDs ("v-<n>-<i>")
}
ROUTES = [
    (re.compile(r"^/v2/catalog/search$"), "search"),
    (re.compile(r"^/v2/catalog/products/variants/gtins/([^/]+)$"), "gtin"),
    (re.compile(r"^/v2/catalog/products/([^/]+)$"), "product"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants$"), "variants"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants/([^/]+)$"), "variant"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/market-data$"), "market"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants/([^/]+)/market-data$"), "variant_market"),
]
PAD_BYTES = 10 * 1024 * 1024
MAX_EXTRA_HITS = 1000            # search_extra_hits per SKU
MAX_PAGE_NUMBER = 10 ** 6        # pageNumber is clamped to 1 .. this
GTIN_QUERY = re.compile(r"[0-9]{8,14}")


# ---------------------------------------------------------------- catalogue

def norm(sku):
    return sku.strip().upper()


def hnum(n, label):
    """Deterministic 64-bit number for (normalised SKU, label)."""
    return int.from_bytes(hashlib.sha256(f"{n}\x00{label}".encode()).digest()[:8], "big")


def huuid(n, label):
    digest = hashlib.sha256(f"{n}\x00uuid\x00{label}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def pick(items, n, label):
    return items[hnum(n, label) % len(items)]


def kind_of(sku):
    n = norm(sku)
    for prefix, kind in KINDS:
        if n.startswith(prefix):
            return kind
    return "plain"


def near_misses(sku):
    s = sku.strip()
    last = "Y" if s[-1:].upper() == "X" else "X"
    return [s + "0", s[:-1] + last, "A" + s]


def alias_target(sku, cfg):
    """The target SKU an alias resolves to (alias_skus), or None."""
    n = norm(sku)
    for alias, target in (cfg or {}).get("alias_skus", {}).items():
        if norm(alias) == n:
            return target
    return None


def aliases_of(sku, cfg):
    n = norm(sku)
    return [a.strip() for a, t in (cfg or {}).get("alias_skus", {}).items() if norm(t) == n]


def extra_misses(sku, cfg):
    """The search_extra_hits near-misses of a query: "<query>-01" ... "<query>-<n>",
    distinct styleIds none of which equals the query."""
    n = (cfg or {}).get("search_extra_hits", {}).get(norm(sku), 0)
    s = sku.strip()
    return [(f"{s}-{k:02d}", "plain") for k in range(1, n + 1)]


def search_hits(sku, cfg=None):
    """[(sku, kind)] in the order search returns them ([] for a blank query).
    An alias (alias_skus) returns its own 2 near-misses, then its target.
    search_extra_hits adds its near-misses after the first 2 (before the
    product)."""
    if not norm(sku):
        return []
    misses = [(s, "plain") for s in near_misses(sku)]
    extra = extra_misses(sku, cfg)
    target = alias_target(sku, cfg)
    if target is not None:
        return misses[:2] + extra + [(target, kind_of(target))]
    kind = kind_of(sku)
    return misses + extra if kind == "nf" else misses[:2] + extra + [(sku, kind)]


def fmt_num(x):
    return str(int(x)) if float(x).is_integer() else ("%.2f" % x).rstrip("0")


def slug(text):
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "product"


def gs1(digits):
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return digits + str((10 - total % 10) % 10)


def make_product(sku, kind, cfg=None):
    n = norm(sku)
    style = sku
    if kind == "cmp":
        other = "%06d-%03d" % (hnum(n, "other") % 1000000, hnum(n, "other2") % 1000)
        style = f"{other} / {sku.strip().swapcase()}"
    for alias in aliases_of(sku, cfg):
        style = f"{style} / {alias}"
    product = {"productId": huuid(n, "product"), "urlKey": slug(n), "styleId": style,
               "productType": "sneakers", "title": None, "brand": None,
               "productAttributes": dict.fromkeys(
                   ["gender", "season", "releaseDate", "retailPrice", "colorway", "color"]),
               "sizeChart": {"availableConversions": [], "defaultConversion": None},
               "isFlexEligible": False, "isDirectEligible": False}
    if kind == "nul":
        return product
    brand, colorway = pick(BRANDS, n, "brand"), pick(COLORWAYS, n, "colorway")
    model = pick(MODELS, n, 'model')
    title = f"{brand} {model} {colorway}"
    if kind == "lat":
        colorway = pick(LAT_COLORWAYS, n, "colorway")
        title = f"{brand} {model} {LAT_TITLE}"
    elif kind == "uni":
        colorway = pick(UNI_COLORWAYS, n, "colorway")
        title = f"{brand} {model} {UNI_TITLE}"
    elif kind == "zero":
        title = f"{brand} Air\x00Max {colorway}"
    elif kind == "badutf":
        title = f"{brand} {model} {BAD_MARK} {colorway}"
    release = datetime.date(2012, 1, 1) + datetime.timedelta(days=hnum(n, "release") % 4400)
    season = None
    if hnum(n, "season") % 3:
        season = ("SS" if release.month <= 6 else "FW") + "%02d" % (release.year % 100)
    price = 110 + 10 * (hnum(n, "price") % 15)
    if hnum(n, "cents") % 4 == 0:
        price = round(price - 0.01, 2)
    product.update(
        urlKey=slug(f"{title} {n}"), title=title, brand=brand,
        productAttributes={"gender": pick(["men", "women", "unisex", "child"], n, "gender"),
                           "season": season, "releaseDate": release.isoformat(),
                           "retailPrice": price, "colorway": colorway,
                           "color": pick(COLORS, n, "color")},
        isFlexEligible=hnum(n, "flex") % 2 == 0, isDirectEligible=hnum(n, "direct") % 3 == 0)
    ctype = size_type(product)
    default = {"name": ctype.upper(), "type": ctype}
    product["sizeChart"] = {"availableConversions": [default, {"name": "EU", "type": "eu"}],
                            "defaultConversion": default}
    return product


def size_type(product):
    """The size chart type of a product: by its gender."""
    gender = product["productAttributes"]["gender"]
    return {"women": "us w", "child": "us y"}.get(gender, "us m")


def search_item(product):
    """A Product cut down to a SearchProduct (no sizeChart, no flags)."""
    return {k: product[k] for k in SEARCH_PRODUCT_KEYS}


def variant_count(sku, kind):
    return {"many": 60, "nul": 2}.get(kind, 1 + hnum(norm(sku), "nvariants") % 12)


def variant_gtins(n, i):
    """The GTINs of variant i of normalised SKU n (before the NUL- exception)."""
    return [{"identifier": gs1("%011d" % (hnum(n, f"upc|{i}") % 10**11)), "type": "UPC"},
            {"identifier": gs1("%012d" % (hnum(n, f"ean|{i}") % 10**12)),
             "type": "EAN-13"}]


def gtin14(digits):
    """A GTIN of up to 14 digits padded to 14 with leading zeros (GS1's way
    of comparing GTIN-8, -12, -13 and -14)."""
    return digits.zfill(14)


def gtin_valid(text):
    """Whether text is a GTIN: 8, 12, 13 or 14 ASCII digits whose last is
    the GS1 check digit of the others."""
    return (len(text) in (8, 12, 13, 14) and all("0" <= c <= "9" for c in text)
            and gs1(text[:-1]) == text)


def gtin_query(query):
    """The digits of a GTIN query (8 to 14 ASCII digits, blanks around), or None."""
    q = query.strip()
    return q if GTIN_QUERY.fullmatch(q) else None


def make_variants(sku, kind, cfg):
    n, product = norm(sku), make_product(sku, kind, cfg)
    count = variant_count(sku, kind)
    if n in {norm(s) for s in cfg["extra_variant_skus"]}:
        count += 1
    gender = product["productAttributes"]["gender"]
    base = {"women": 5.0, "child": 3.5}.get(gender, 7.0)
    suffix = {"women": "W", "child": "Y"}.get(gender, "")
    ctype = size_type(product)
    odd = n in {norm(s) for s in cfg.get("odd_ids", [])}
    out = []
    for i in range(count):
        size = fmt_num(base + 0.5 * i)
        default = {"size": f"{ctype.upper()} {size}", "type": ctype}
        vid = f"v-{hnum(n, 'oddid') % 1000000}-{i}" if odd else huuid(n, f"variant|{i}")
        v = {"productId": product["productId"], "variantId": vid,
             "variantName": f"{product['urlKey']}:{size}{suffix}",
             "variantValue": size + suffix,
             "sizeChart": {"defaultConversion": default, "availableConversions": [
                 default, {"size": "EU " + fmt_num(base + 0.5 * i + 33.5), "type": "eu"}]},
             "gtins": variant_gtins(n, i),
             "isFlexEligible": product["isFlexEligible"] and i % 3 != 2,
             "isDirectEligible": product["isDirectEligible"]}
        if kind == "big":
            v["variantValue"] = size + suffix + " " + "x" * BIG_SIZE_PAD
        if kind == "nul" and i == 1:
            v.update(variantName=product["urlKey"], variantValue=None, gtins=[],
                     sizeChart={"defaultConversion": None, "availableConversions": []})
        out.append(v)
    return out


def market_shape(cfg, currency):
    """Where the MarketData of this currency carries its prices: "top",
    "nested" or "both" (market_shape, else the default by currency)."""
    default = "nested" if currency in NESTED_ONLY_CURRENCIES else "both"
    return (cfg or {}).get("market_shape", {}).get(currency, default)


def scaled(x, factor):
    """x (USD) times factor, in half dollars; None stays None."""
    return None if x is None else max(1, round(x * factor * 2) / 2)


def make_market(sku, kind, cfg, currency):
    n, rate, numeric = norm(sku), RATES[currency], kind == "num"
    shape = market_shape(cfg, currency)

    def money(x):
        if x is None:
            return None
        y = x * rate
        y = float(round(y)) if currency in WHOLE_CURRENCIES else round(y * 2) / 2
        if numeric:
            return int(y) if y.is_integer() else y
        return fmt_num(y)

    out = []
    for i, v in enumerate(make_variants(sku, kind, cfg)):
        # the three markets, in USD before conversion; None is null
        std, flex, direct = (dict.fromkeys(NESTED_KEYS) for _ in range(3))
        if kind != "nul":
            ask = 60 + (hnum(n, f"ask|{i}") + 37 * int(cfg["market_epoch"])) % 400
            ask = max(1, ask + cfg["price_moves"].get(f"{n}#{i}", 0))
            ask += 0.5 * (hnum(n, f"half|{i}") % 2)
            bid = None if i % 4 == 3 else max(1, ask - 5 - hnum(n, f"bid|{i}") % 40)
            faster = max(1, ask - 1 - hnum(n, f"fast|{i}") % 5)
            more = ask + 10 + hnum(n, f"more|{i}") % 20
            beat = None if i % 5 == 4 else max(1, ask - 2)
            std = {"lowestAsk": ask, "highestBidAmount": bid, "sellFaster": faster,
                   "earnMore": more, "beatUS": beat}
            if i % 2 == 0:
                # Flex: asks 7 USD above standard, the rest about 4 % above;
                # no Flex market at all for odd variants (every figure null)
                flex = {"lowestAsk": ask + 7, "highestBidAmount": scaled(bid, 1.02),
                        "sellFaster": scaled(faster, 1.04), "earnMore": scaled(more, 1.04),
                        "beatUS": None}
            if v["isDirectEligible"]:
                # Direct: about 3 % below standard, never a bid
                direct = {"lowestAsk": scaled(ask, 0.97), "highestBidAmount": None,
                          "sellFaster": scaled(faster, 0.97), "earnMore": scaled(more, 0.97),
                          "beatUS": scaled(beat, 0.97)}
        md = {"productId": v["productId"], "variantId": v["variantId"], "currencyCode": currency}
        if shape in ("top", "both"):
            md.update(lowestAskAmount=money(std["lowestAsk"]),
                      highestBidAmount=money(std["highestBidAmount"]),
                      sellFasterAmount=money(std["sellFaster"]),
                      earnMoreAmount=money(std["earnMore"]),
                      flexLowestAskAmount=money(flex["lowestAsk"]))
        if shape in ("nested", "both"):
            md.update(standardMarketData={k: money(x) for k, x in std.items()},
                      flexMarketData={k: money(x) for k, x in flex.items()},
                      directMarketData={k: money(x) for k, x in direct.items()})
        out.append(md)
    return out


def reorder(items, cfg):
    """The variants or market array in the order variants_order asks for."""
    order = cfg.get("variants_order", "as_is")
    items = list(items)
    if order == "reverse":
        items.reverse()
    elif order == "shuffle":
        random.shuffle(items)
    return items


def variant_details(v):
    """A variant as the single-variant and GTIN calls give it: their schema
    types variantValue as a string, never null, so null becomes ""."""
    v = copy.deepcopy(v)
    if v["variantValue"] is None:
        v["variantValue"] = ""
    return v


def upper_ids(obj):
    """obj with every productId / variantId string upper-cased (recursively)."""
    if isinstance(obj, list):
        return [upper_ids(x) for x in obj]
    if isinstance(obj, dict):
        return {k: (v.upper() if k in ("productId", "variantId") and isinstance(v, str)
                    else upper_ids(v)) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------- state

def _num(v, key, lo=0, hi=None, integer=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= lo
    ok = ok and (hi is None or v <= hi) and (not integer or float(v).is_integer())
    if not ok:
        raise ValueError(f"{key}: bad value {v!r}")
    return int(v) if integer else v


def _rule(r):
    keys = {"status", "count", "endpoint", "retry_after", "retry_after_date_s"}
    if not isinstance(r, dict) or set(r) - keys:
        raise ValueError(f"fail_next: bad rule {r!r}")
    rule = dict.fromkeys(keys)
    rule.update(r, status=_num(r.get("status"), "status", 400, 599, True),
                count=_num(r.get("count", 1), "count", 0, integer=True))
    if rule["endpoint"] is not None and rule["endpoint"] not in ENDPOINTS:
        raise ValueError(f"fail_next: unknown endpoint {rule['endpoint']!r}")
    if not isinstance(rule["retry_after"], (str, type(None))):
        raise ValueError("fail_next: retry_after must be a string")
    if rule["retry_after_date_s"] is not None:
        _num(rule["retry_after_date_s"], "retry_after_date_s", -1e9)
    return rule


def _aliases(v):
    if not isinstance(v, dict):
        raise ValueError("alias_skus must be an object {alias: target}")
    targets = set()
    for alias, target in v.items():
        if not isinstance(target, str) or not norm(alias) or not norm(target):
            raise ValueError(f"alias_skus: bad entry {alias!r}: {target!r}")
        if norm(alias) == norm(target):
            raise ValueError(f"alias_skus: {alias!r} is its own target")
        if kind_of(target) == "nf":
            raise ValueError(f"alias_skus: the target {target!r} is an NF- (unknown) SKU")
        targets.add(norm(target))
    if len({norm(a) for a in v}) != len(v):
        raise ValueError("alias_skus: an alias is listed twice")
    if targets & {norm(a) for a in v}:
        raise ValueError("alias_skus: a target cannot itself be an alias")
    return dict(v)


def validate_config(cfg, patch):
    """Return cfg with the top-level keys of patch replaced, or raise ValueError."""
    if not isinstance(patch, dict):
        raise ValueError("config body must be a JSON object")
    new = copy.deepcopy(cfg)
    for key, v in patch.items():
        default = DEFAULT_CONFIG.get(key, KeyError)
        if key in ("expire_tokens", "expire_codes"):
            continue
        if default is KeyError:
            raise ValueError(f"unknown config key {key!r}")
        if isinstance(default, list) and not isinstance(v, list):
            raise ValueError(f"{key} must be a list")
        if key == "fail_next":
            v = [_rule(r) for r in v]
        elif isinstance(default, list):
            if not all(isinstance(x, str) for x in v):
                raise ValueError(f"{key} must be a list of strings")
        elif key == "block" and v is not None:
            if not isinstance(v, dict) or set(v) != {"after_429s", "seconds"}:
                raise ValueError("block must be null or {after_429s, seconds}")
            v = {"after_429s": _num(v["after_429s"], key, 1, integer=True),
                 "seconds": _num(v["seconds"], key)}
        elif key == "rate_limit_rps":
            v = None if v is None else _num(v, key, 1e-9)
        elif key == "market_epoch":
            v = _num(v, key, -2**62, integer=True)
        elif key == "alias_skus":
            v = _aliases(v)
        elif key == "price_moves":
            if not isinstance(v, dict) or not all(
                    isinstance(k, str) and re.fullmatch(r".+#\d+", k) and isinstance(n, int)
                    and not isinstance(n, bool) for k, n in v.items()):
                raise ValueError('price_moves must be an object {"SKU#i": integer}')
            v = {f"{norm(k.rsplit('#', 1)[0])}#{int(k.rsplit('#', 1)[1])}": n for k, n in v.items()}
        elif key == "market_shape":
            if not isinstance(v, dict) or not all(
                    isinstance(c, str) and c.strip().upper() in RATES and shape in MARKET_SHAPES
                    for c, shape in v.items()):
                raise ValueError('market_shape must be an object {"CUR": "top" | "nested" | '
                                 '"both"} with currencies of the CurrencyCode enum')
            v = {c.strip().upper(): shape for c, shape in v.items()}
        elif key == "search_extra_hits":
            if not isinstance(v, dict) or not all(
                    isinstance(k, str) and norm(k) and isinstance(n, int)
                    and not isinstance(n, bool) and 0 <= n <= MAX_EXTRA_HITS
                    for k, n in v.items()):
                raise ValueError('search_extra_hits must be an object {"SKU": n}, '
                                 f"n an integer from 0 to {MAX_EXTRA_HITS}")
            v = {norm(k): n for k, n in v.items()}
        elif key == "variants_order":
            if v not in VARIANTS_ORDERS:
                raise ValueError("variants_order must be one of " + ", ".join(VARIANTS_ORDERS))
        elif key == "latency_jitter_pct":
            v = _num(v, key, 0, 100)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ValueError(f"{key} must be a boolean")
        elif key != "block":
            v = _num(v, key, 0, 1 if key == "error_429_ratio" else None)
        new[key] = v
    return new


def error_body(status, message=None):
    return {"statusCode": status, "message": message or MESSAGES.get(status, "Error")}


class AnswerLog:
    """Every /v2 answer as one JSON line in <dir>/standin-<pid>-<ms>.jsonl when
    the directory is given (STOCKX_STANDIN_ANSWERS); nothing otherwise."""

    MAX_BODY = 4 * 1024 * 1024     # larger bodies are recorded as null

    def __init__(self, directory):
        self.lock = threading.Lock()
        self.fd = None
        if directory:
            os.makedirs(directory, exist_ok=True)
            name = f"standin-{os.getpid()}-{int(time.time() * 1000)}.jsonl"
            self.fd = os.open(os.path.join(directory, name),
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, meta, body):
        """meta: a dict (endpoint, method, path, query, status, forced, broken);
        body: the answer's bytes, valid UTF-8 JSON unless meta["broken"]."""
        if self.fd is None:
            return
        if meta["broken"] is None and len(body) > self.MAX_BODY:
            meta = dict(meta, broken="body over %d bytes, not recorded" % self.MAX_BODY)
        head = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        line = head[:-1] + b', "body": ' + (b"null" if meta["broken"] else body) + b"}\n"
        with self.lock:
            while line:
                line = line[os.write(self.fd, line):]


class State:
    """All mutable server state; every access holds self.lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.registry = {}      # productId -> (sku spelling, kind)
        self.gtin_index = {}    # GTIN -> {productId} (candidates; see gtin_hits)
        self.gtin_indexed = set()   # productIds whose GTINs are in gtin_index
        self.tokens = {}        # access token -> monotonic expiry
        self.answers = AnswerLog(os.environ.get("STOCKX_STANDIN_ANSWERS"))
        self.reset()

    def reset(self):
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.log = []
        self.seq = 0
        self.last_accepted = None
        self.n429_since_block = 0
        self.blocks = 0
        self.block_started_t = self.block_until_t = None
        self.tokens_issued = 0
        # the refresh tokens the token endpoint accepts (rotation replaces one)
        self.refresh_tokens = {self.args.refresh_token}
        self.codes = {}         # authorization code -> its grant (see serve_authorize)
        self.codes_issued = self.codes_redeemed = 0
        self.gate_rule = False

    def register(self, hits):
        for sku, kind in hits:
            self.registry[huuid(norm(sku), "product")] = (sku, kind)

    def gtin_matches(self, gtin, cfg, padded=False):
        """[(sku, kind)] of the registered products, by productId, that have a
        variant carrying the GTIN (digits) now: the very string, or with
        padded, the same number padded to 14 digits.  The index (by the
        14-digit form) is built lazily, for each variant a product could have
        (extra_variant_skus adds one), and every candidate is checked against
        make_variants."""
        for pid, (sku, kind) in self.registry.items():
            if pid not in self.gtin_indexed:
                n = norm(sku)
                for i in range(variant_count(sku, kind) + 1):
                    for g in variant_gtins(n, i):
                        self.gtin_index.setdefault(gtin14(g["identifier"]), set()).add(pid)
                self.gtin_indexed.add(pid)
        same = (lambda ident: gtin14(ident) == gtin14(gtin)) if padded else gtin.__eq__
        out = []
        for pid in sorted(self.gtin_index.get(gtin14(gtin), ())):
            sku, kind = self.registry[pid]
            if any(same(g["identifier"]) for v in make_variants(sku, kind, cfg)
                   for g in v["gtins"]):
                out.append((sku, kind))
        return out

    def gtin_hits(self, gtin, cfg):
        """Search hits for a GTIN query: 2 near-misses, then the products that
        carry it; [] when no registered product does."""
        matches = self.gtin_matches(gtin, cfg)
        if not matches:
            return []
        return [(s, "plain") for s in near_misses(gtin)[:2]] + matches

    def too_many(self, t, counted=True):
        if counted:
            self.n429_since_block += 1
            blk = self.config["block"]
            if blk and self.n429_since_block >= blk["after_429s"]:
                self.blocks += 1
                self.n429_since_block = 0
                self.block_started_t, self.block_until_t = t, t + blk["seconds"]
        return 429, {}, error_body(429)

    def gate(self, endpoint, t):
        """Forced answer (status, headers, body) for an arriving request, or None."""
        cfg = self.config
        self.gate_rule = False      # set when a fail_next rule gives the answer
        if endpoint != "token":
            self.seq += 1
            if self.block_until_t is not None and t < self.block_until_t:
                return self.too_many(t, counted=False)
            if cfg["rate_limit_rps"]:
                gap = 1.0 / cfg["rate_limit_rps"] - cfg["rate_tolerance_ms"] / 1000.0
                if self.last_accepted is not None and t - self.last_accepted < gap:
                    return self.too_many(t)
                self.last_accepted = t
        for rule in cfg["fail_next"]:
            match = rule["endpoint"] == endpoint if rule["endpoint"] else endpoint != "token"
            if rule["count"] > 0 and match:
                rule["count"] -= 1
                cfg["fail_next"] = [r for r in cfg["fail_next"] if r["count"] > 0]
                headers = {}
                if rule["retry_after"] is not None:
                    headers["Retry-After"] = rule["retry_after"]
                elif rule["retry_after_date_s"] is not None:
                    headers["Retry-After"] = email.utils.formatdate(
                        time.time() + rule["retry_after_date_s"], usegmt=True)
                if rule["status"] == 429:
                    self.too_many(t)
                self.gate_rule = True
                return rule["status"], headers, error_body(rule["status"])
        ratio = cfg["error_429_ratio"]
        if endpoint != "token" and ratio > 0 and self.seq % max(1, round(1 / ratio)) == 0:
            return self.too_many(t)
        return None

    def check_auth(self, headers):
        if headers.get("x-api-key") != self.args.api_key:
            return 403, {}, error_body(403)
        scheme, _, tok = headers.get("Authorization", "").strip().partition(" ")
        tok = tok.strip()
        ok = scheme.lower() == "bearer" and tok and not self.config["revoke_tokens"]
        if ok and tok != self.args.static_token:
            ok = time.monotonic() < self.tokens.get(tok, float("-inf"))
        return None if ok else (401, {}, error_body(401))

    def stats(self):
        by_status, by_ep, by_ep_status = {}, {}, {}
        for e in self.log:
            by_ep[e["endpoint"]] = by_ep.get(e["endpoint"], 0) + 1
            if e["status"] is not None:
                s = str(e["status"])
                by_status[s] = by_status.get(s, 0) + 1
                d = by_ep_status.setdefault(e["endpoint"], {})
                d[s] = d.get(s, 0) + 1
        ts = sorted(e["t"] for e in self.log if e["endpoint"] != "token")
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        now = time.monotonic()
        return {"total": len(self.log), "api_total": len(ts),
                "token_total": by_ep.get("token", 0), "by_status": by_status,
                "by_endpoint": by_ep, "by_endpoint_status": by_ep_status,
                "min_gap_ms": round(min(gaps) * 1000, 3) if gaps else None,
                "count_429": by_status.get("429", 0),
                "blocked": self.block_until_t is not None and now < self.block_until_t,
                "blocks": self.blocks, "block_started_t": self.block_started_t,
                "block_until_t": self.block_until_t, "tokens_issued": self.tokens_issued,
                "codes_issued": self.codes_issued, "codes_redeemed": self.codes_redeemed,
                "now_t": now}

    def issue_access_token(self):
        """A new access token (self.lock held): the answer of a grant, without
        refresh_token and scope."""
        now, ttl = time.monotonic(), self.config["token_ttl_s"]
        self.tokens = {k: exp for k, exp in self.tokens.items() if exp > now}
        token = secrets.token_hex(32)
        if self.config["token_crlf"]:
            token = f"crlf-token-{token}\r\nX-Injected: 1"
        self.tokens[token] = now + ttl
        self.tokens_issued += 1
        return {"access_token": token, "expires_in": ttl, "token_type": "Bearer"}


# ---------------------------------------------------------------- HTTP

def first(params, key):
    vals = params.get(key)
    return vals[0] if vals else None


def int_param(params, key, default, lo, hi):
    """An integer query parameter clamped to lo .. hi; the default when it is
    missing or not an integer."""
    raw = first(params, key)
    if raw is None or not re.fullmatch(r"\s*[-+]?[0-9]{1,12}\s*", raw):
        return default
    return min(hi, max(lo, int(raw)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stockx-standin/1.0"
    sys_version = ""
    timeout = 300

    def parse_request(self):
        # Called right after the request line was read: this is the arrival time.
        self.t_arrival, self.wall_arrival = time.monotonic(), time.time()
        return super().parse_request()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("standin: %s\n" % (fmt % args))

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle plus
        # the client's delayed ACK would add ~40 ms to many answers.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.dispatch(self.command)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # -- plumbing

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise ValueError("chunked request bodies are not supported")
        length = int(self.headers.get("Content-Length") or 0)   # ValueError if bad
        if not 0 <= length <= 1 << 20:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def respond(self, status, payload, headers=None, slow_ms=0):
        body = encode_body(payload)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if slow_ms:
                time.sleep(slow_ms / 1000.0)
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def dispatch(self, method):
        raw_path, _, raw_query = self.path.partition("?")
        endpoint, ids = "other", ()
        if raw_path == "/oauth/token":
            endpoint = "token"
        for rx, name in ROUTES:
            m = rx.match(raw_path)
            if m:
                endpoint, ids = name, tuple(unquote(g).lower() for g in m.groups())
                break
        # what the answer log says of this answer (see record_answer)
        self.forced, self.broken = False, None
        try:
            body = self.read_body()
        except ValueError as exc:
            self.close_connection = True
            payload = error_body(400, str(exc))
            if not raw_path.startswith("/_admin/") and endpoint != "token":
                self.record_answer(method, endpoint, raw_path, raw_query, 400, payload)
            return self.respond(400, payload)
        if raw_path.startswith("/_admin/"):
            return self.admin(method, raw_path, raw_query, body)
        if raw_path == "/authorize":
            return self.serve_authorize(method, raw_query)
        st = self.server.state
        entry = {"t": self.t_arrival, "wall": self.wall_arrival, "method": method,
                 "path": raw_path, "query": raw_query, "status": None, "endpoint": endpoint,
                 "header_names": [k.lower() for k in self.headers.keys()]}
        with st.lock:
            st.log.append(entry)
            forced = st.gate(endpoint, self.t_arrival)
            # a fail_next rule answered (429s of the limiter and blocks are not "forced")
            self.forced = forced is not None and st.gate_rule
            if forced is None and endpoint != "token":
                forced = st.check_auth(self.headers)
            cfg = copy.deepcopy({k: v for k, v in st.config.items() if k != "fail_next"})
        if forced is not None:
            status, headers, payload = forced
        elif endpoint == "token":
            status, headers, payload = self.serve_token(method, body)
        else:
            status, headers, payload = self.serve_api(method, endpoint, ids, raw_query, cfg)
        with st.lock:
            entry["status"] = status
        slow = 0
        if endpoint != "token":
            payload = self.record_answer(method, endpoint, raw_path, raw_query, status, payload)
            if cfg["latency_ms"]:
                pct = cfg["latency_jitter_pct"] / 100.0
                time.sleep(cfg["latency_ms"] * (1 + random.uniform(-pct, pct)) / 1000.0)
            slow = cfg["slow_body_ms"]
        self.respond(status, payload, headers, slow)

    def record_answer(self, method, endpoint, path, query, status, payload):
        """Write the answer to the answer log (if one is kept); returns the
        body as bytes.  A body that is broken on purpose is marked with why,
        so that a contract check skips it."""
        body = encode_body(payload)
        broken = self.broken
        if broken is None and BAD_RAW in body:
            broken = "BADUTF-: raw bytes FF FE (invalid UTF-8) in a title"
        elif broken is None and b"\\u0000" in body:
            broken = "ZERO-: a string with an embedded NUL (\\u0000)"
        self.server.state.answers.record(
            {"endpoint": endpoint, "method": method, "path": path, "query": query,
             "status": status, "forced": self.forced, "broken": broken}, body)
        return body

    # -- token endpoint

    def serve_token(self, method, body):
        def fail(status, error, desc):
            return status, {}, {"error": error, "error_description": desc}
        if method != "POST":
            return fail(405, "invalid_request", "use POST")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return fail(400, "invalid_request",
                        "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            return fail(400, "invalid_request", "body is not UTF-8")
        grant_type = first(form, "grant_type")
        if grant_type == "authorization_code":
            return self.serve_code_grant(form, fail)
        if grant_type not in (None, "", "refresh_token"):
            return fail(400, "unsupported_grant_type",
                        "grant_type must be refresh_token or authorization_code")
        fields = {k: first(form, k) for k in
                  ("grant_type", "client_id", "client_secret", "refresh_token", "audience")}
        missing = sorted(k for k, v in fields.items() if not v)
        if missing:
            return fail(400, "invalid_request", "missing field(s): " + ", ".join(missing))
        st, a = self.server.state, self.server.state.args
        with st.lock:
            good = (fields["client_id"] == a.client_id
                    and fields["client_secret"] == a.client_secret
                    and fields["refresh_token"] in st.refresh_tokens
                    and fields["audience"] == "gateway.stockx.com"
                    and not st.config["revoke_refresh_token"])
            if not good:
                return fail(401, "invalid_grant", "Unknown or invalid refresh token.")
            answer = st.issue_access_token()
            answer.update(scope="offline_access openid", id_token="x")
            if st.config["rotate_refresh_token"]:
                st.refresh_tokens.discard(fields["refresh_token"])
                answer["refresh_token"] = secrets.token_hex(24)
                st.refresh_tokens.add(answer["refresh_token"])
        return 200, {}, answer

    def serve_code_grant(self, form, fail):
        """grant_type=authorization_code: a code of /authorize, once."""
        fields = {k: first(form, k) for k in
                  ("client_id", "client_secret", "code", "redirect_uri")}
        missing = sorted(k for k, v in fields.items() if not v)
        if missing:
            return fail(400, "invalid_request", "missing field(s): " + ", ".join(missing))
        st, a = self.server.state, self.server.state.args
        with st.lock:
            if fields["client_id"] != a.client_id or fields["client_secret"] != a.client_secret:
                return fail(401, "access_denied", "Unauthorized")
            grant = st.codes.pop(fields["code"], None)      # spent by any attempt
            if (grant is None or time.monotonic() >= grant["expires"]
                    or grant["client_id"] != fields["client_id"]
                    or grant["redirect_uri"] != fields["redirect_uri"]):
                return fail(403, "invalid_grant", "Invalid authorization code")
            answer = st.issue_access_token()
            answer.update(scope=grant["scope"], id_token="x")
            if "offline_access" in grant["scope"].split():
                answer["refresh_token"] = secrets.token_hex(24)
                st.refresh_tokens.add(answer["refresh_token"])
            st.codes_redeemed += 1
        return 200, {}, answer

    # -- the login page

    def serve_authorize(self, method, raw_query):
        """GET /authorize as the browser sees it after the person logged in:
        a redirect to redirect_uri with a new code and the state."""
        st, a = self.server.state, self.server.state.args
        if method != "GET":
            return self.respond(405, {"error": "invalid_request", "error_description": "use GET"})
        params = parse_qs(raw_query, keep_blank_values=True)
        client_id, redirect_uri = first(params, "client_id"), first(params, "redirect_uri")
        state, scope = first(params, "state"), first(params, "scope") or ""
        if client_id != a.client_id:
            return self.respond(400, {"error": "invalid_request",
                                      "error_description": "Unknown client"})
        if not redirect_uri or not re.match(r"https?://[^/?#]+", redirect_uri) \
                or "#" in redirect_uri:
            return self.respond(400, {"error": "invalid_request",
                                      "error_description": "redirect_uri is missing or invalid"})
        back = {}
        if first(params, "response_type") != "code":
            back = {"error": "unsupported_response_type",
                    "error_description": "Unsupported response type"}
        elif first(params, "audience") != "gateway.stockx.com":
            back = {"error": "access_denied",
                    "error_description": "Service not found: %s" % first(params, "audience")}
        else:
            code = secrets.token_urlsafe(24)
            with st.lock:
                now = time.monotonic()
                st.codes = {c: g for c, g in st.codes.items() if g["expires"] > now}
                st.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri,
                                  "scope": scope,
                                  "expires": now + st.config["code_ttl_s"]}
                st.codes_issued += 1
            back = {"code": code}
        if state is not None:
            back["state"] = state
        location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(back)
        self.respond(302, {"redirect": location}, {"Location": location})

    # -- catalogue endpoints

    def serve_api(self, method, endpoint, ids, raw_query, cfg):
        if endpoint == "other":
            return 404, {}, error_body(404)
        if method != "GET":
            return 405, {}, error_body(405)
        # the document gives search and product market data no 400: a query
        # string that is not UTF-8 is read with U+FFFD in place of bad bytes
        params = parse_qs(raw_query, keep_blank_values=True, errors="replace")
        if endpoint == "search":
            status, headers, payload = self.serve_search(params, cfg)
        elif endpoint == "gtin":
            status, headers, payload = self.serve_gtin(ids[0], cfg)
        else:
            status, headers, payload = self.serve_catalog(endpoint, ids, params, cfg)
        if status == 200 and cfg["uppercase_ids"] and not isinstance(payload, bytes):
            payload = upper_ids(payload)
        return status, headers, payload

    def serve_catalog(self, endpoint, ids, params, cfg):
        st = self.server.state
        with st.lock:
            found = st.registry.get(ids[0])
        if found is None:
            if endpoint == "market":
                return 200, {}, []          # the document gives this call no 404
            if endpoint == "variant_market":
                # no 404 either: an unknown product holds no variant
                return 400, {}, error_body(400, "The variant does not belong to the product")
            return 404, {}, error_body(404, "Product not found")
        sku, kind = found
        if endpoint == "product":
            return 200, {}, make_product(sku, kind, cfg)
        if endpoint == "variants":
            return 200, {}, reorder(make_variants(sku, kind, cfg), cfg)
        if endpoint == "variant":
            for v in make_variants(sku, kind, cfg):
                if v["variantId"].lower() == ids[1]:
                    return 200, {}, variant_details(v)
            return 400, {}, error_body(400, "The variant does not belong to the product")
        # currencyCode outside the CurrencyCode enum: USD (the answer's
        # currencyCode says which), as the document gives market data no 400
        # for it
        currency = first(params, "currencyCode")
        currency = currency if currency in RATES else "USD"
        market = make_market(sku, kind, cfg, currency)
        if kind == "num":
            self.broken = "NUM-: amounts as JSON numbers, not strings"
        if endpoint == "market":
            return 200, {}, reorder(market, cfg)
        for md in market:
            if md["variantId"].lower() == ids[1]:
                return 200, {}, md
        return 400, {}, error_body(400, "The variant does not belong to the product")

    def serve_gtin(self, gtin, cfg):
        if not gtin_valid(gtin):
            return 400, {}, error_body(
                400, "Invalid GTIN: 8, 12, 13 or 14 digits with a valid check digit expected")
        st = self.server.state
        with st.lock:
            matches = st.gtin_matches(gtin, cfg, padded=True)
        for sku, kind in matches[:1]:
            for v in make_variants(sku, kind, cfg):
                if any(gtin14(g["identifier"]) == gtin14(gtin) for g in v["gtins"]):
                    return 200, {}, variant_details(v)
        return 404, {}, error_body(404, "No variant has this GTIN")

    def serve_search(self, params, cfg):
        # The document gives search no 400: a missing, empty or over-long
        # query finds nothing; pageSize and pageNumber out of range (or not
        # integers) are clamped (or take their default).
        query = first(params, "query") or ""
        size = int_param(params, "pageSize", 1, 1, 50)
        page = int_param(params, "pageNumber", 1, 1, MAX_PAGE_NUMBER)
        gtin = gtin_query(query) if len(query) <= 100 else None
        st = self.server.state
        if len(query) > 100:
            hits = []
        elif gtin is not None:
            with st.lock:
                hits = st.gtin_hits(gtin, cfg)
                st.register(hits)
        else:
            hits = search_hits(query, cfg)
            with st.lock:
                st.register(hits)
        n = norm(query)
        if n and n in {norm(s) for s in cfg["malformed_skus"]}:
            self.broken = "malformed_skus: truncated JSON"
            return 200, {}, b'{"count": 1, "products": ['
        shown = hits[(page - 1) * size:page * size]
        products = [search_item(make_product(s, k, cfg)) for s, k in shown]
        conv = float if kind_of(query) == "num" else int
        answer = {"count": conv(len(hits)), "pageSize": conv(size), "pageNumber": conv(page),
                  "hasNextPage": page * size < len(hits), "products": products}
        if n and n in {norm(s) for s in cfg["oversize_skus"]}:
            self.broken = "oversize_skus: padded past 10 MiB with a key of its own"
            answer["padding"] = "x" * PAD_BYTES
        return 200, {}, answer

    # -- admin

    def admin(self, method, path, raw_query, body):
        st = self.server.state
        route = (method, path)
        if route == ("GET", "/_admin/expect"):
            params = parse_qs(raw_query, keep_blank_values=True)
            sku, currency = first(params, "sku"), first(params, "currencyCode") or "USD"
            if sku is None or currency not in RATES:
                return self.respond(400, {"error": "need sku (and a valid currencyCode)"})
            gtin, match = gtin_query(sku), None
            with st.lock:
                cfg = copy.deepcopy(st.config)
                if gtin is not None:
                    hits = st.gtin_hits(gtin, cfg)
                else:
                    hits = search_hits(sku, cfg)
                st.register(hits)
            target = alias_target(sku, cfg) if gtin is None else None
            if gtin is not None and hits:
                sku = hits[2][0]
                match = next({"sku": sku, "variantId": v["variantId"], "type": g["type"]}
                             for v in make_variants(sku, kind_of(sku), cfg)
                             for g in v["gtins"] if g["identifier"] == gtin)
            elif target is not None:
                sku = target
            elif not hits or kind_of(sku) == "nf":
                return self.respond(200, {"found": False, "product": None,
                                          "variants": [], "market": []})
            kind = kind_of(sku)
            answer = {"found": True, "product": make_product(sku, kind, cfg),
                      "variants": make_variants(sku, kind, cfg),
                      "market": make_market(sku, kind, cfg, currency)}
            if kind == "badutf":
                answer["product"]["title"] = answer["product"]["title"].replace(
                    BAD_MARK, "\ufffd\ufffd")
                answer["invalid_utf8"] = {"field": "title", "raw_hex": BAD_RAW.hex()}
            if match is not None:
                answer["gtin_match"] = match
            if cfg["uppercase_ids"]:
                answer = upper_ids(answer)
            return self.respond(200, answer)
        with st.lock:
            if route == ("GET", "/_admin/log"):
                answer = {"requests": sorted((dict(e) for e in st.log), key=lambda e: e["t"])}
            elif route == ("GET", "/_admin/stats"):
                answer = st.stats()
            elif route == ("GET", "/_admin/config"):
                answer = copy.deepcopy(st.config)
            elif route == ("POST", "/_admin/reset"):
                st.reset()
                answer = {"ok": True}
            elif route == ("POST", "/_admin/config"):
                try:
                    patch = json.loads(body.decode("utf-8") or "{}")
                    st.config = validate_config(st.config, patch)
                except (ValueError, UnicodeDecodeError) as exc:
                    return self.respond(400, {"error": str(exc)})
                if patch.get("expire_tokens"):
                    now = time.monotonic()
                    st.tokens = {k: min(exp, now) for k, exp in st.tokens.items()}
                if patch.get("expire_codes"):
                    now = time.monotonic()
                    st.codes = {c: dict(g, expires=min(g["expires"], now))
                                for c, g in st.codes.items()}
                answer = {"ok": True, "config": copy.deepcopy(st.config)}
            else:
                return self.respond(404, {"error": f"no admin route {method} {path}"})
        self.respond(200, answer)


def encode_body(payload):
    """The bytes of an answer: payload itself when it is bytes, else its JSON
    (UTF-8); the BADUTF- marker becomes the raw invalid bytes FF FE."""
    body = payload if isinstance(payload, bytes) else json.dumps(
        payload, ensure_ascii=False).encode("utf-8")
    return body.replace(BAD_MARK_BYTES, BAD_RAW)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    verbose = False

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="StockX API stand-in (127.0.0.1 only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--api-key", default="test-api-key")
    ap.add_argument("--client-id", default="test-client")
    ap.add_argument("--client-secret", default="test-secret")
    ap.add_argument("--refresh-token", default="test-refresh")
    ap.add_argument("--static-token", default="test-access-token")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    args = ap.parse_args(argv)

    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        # TLS for tests of certificate verification; the handshake happens in
        # the handler thread, so a client that refuses it blocks nobody
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    server.verbose = args.verbose
    server.state = State(args)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    if args.verbose:
        sys.stderr.write(f"standin: listening on 127.0.0.1:{port}\n")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if args.port_file:
        try:
            with open(args.port_file) as f:
                if f.read().strip() == str(port):
                    os.unlink(args.port_file)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
