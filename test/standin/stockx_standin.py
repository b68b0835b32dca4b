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
    GET  /v2/selling/listings?pageNumber=&pageSize=&listingStatuses=&productIds=
         &variantIds=&batchIds=&inventoryTypes=&initiatedShipmentDisplayIds=
         &fromDate=&toDate=&isExpired=                              [listings]
         200 Listings {count, pageSize, pageNumber, hasNextPage, listings:
         [ListListings]}; 400 a bad parameter (see Selling below)
    GET  /v2/selling/listings/{listingId}                           [listing]
         200 ListingResponse; 400 not a UUID; 404 unknown
    GET  /v2/selling/orders/active?pageNumber=&pageSize=&orderStatus=&productId=
         &variantId=&sortOrder=&inventoryTypes=&initiatedShipmentDisplayIds=
                                                                    [orders_active]
    GET  /v2/selling/orders/history?fromDate=&toDate=&pageNumber=&pageSize=
         &orderStatus=&productId=&variantId=&inventoryTypes=
         &initiatedShipmentDisplayIds=                              [orders_history]
         200 Orders {count, pageSize, pageNumber, hasNextPage, orders:
         [ListOrders]}; 400 a bad parameter
    GET  /v2/selling/orders/{orderNumber}                           [order]
         200 DetailedOrder; 404 unknown (the document lists no 404 here)
    anything else under /v2: 404 [other]; a method other than GET on a
    catalogue or selling route: 405 (the stand-in makes no listings).
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

Selling (the read side of a seller's account): a seeded, deterministic
account of 14 listings and 8 orders (SEED_LISTINGS, SEED_ORDERS; the
README has the table) of the products of SX-SELL-1, SX-SELL-2, SX-SELL-3,
CMP-SX-SELL-4 (meant to be queued by the tests) and SX-SELL-NEW-5 (meant
NOT to be); those five products are registered from the start.  Product
and variant objects come from the catalogue as it is now (uppercase_ids,
odd_ids and alias_skus reach them).  As the document has them:
  - A listing (ListingResponse, the single-listing call): listingId, status
    (INACTIVE ACTIVE DELETED CANCELED MATCHED COMPLETED), amount and
    currencyCode (decimal string / code, or null), inventoryType, createdAt,
    updatedAt, batch, ask {askId, askCreatedAt, askUpdatedAt, askExpiresAt}
    or null, order {orderNumber, orderCreatedAt, orderStatus} or null,
    product {productId, productName, styleId}, variant {variantId,
    variantName, variantValue}, authenticationDetails, payout, lastOperation,
    initiatedShipments, condition, conditionDescription.  A list item
    (ListListings) is the same without payout and lastOperation.
  - An order in a list (ListOrders): orderNumber, listingId (or null),
    askId, amount, currencyCode, status, createdAt, updatedAt, product,
    variant, authenticationDetails, payout (or null), initiatedShipments,
    inventoryType, condition, conditionDescription.  The single order
    (DetailedOrder): askId, orderNumber, listingId, amount, currencyCode,
    createdAt, updatedAt, variant, product, status, shipment {shipByDate,
    trackingNumber, trackingUrl, carrierCode, shippingLabelUrl,
    shippingDocumentUrl} or null, initiatedShipments, inventoryType,
    authenticationDetails and a payout that is never null; no condition keys.
  - Payout: {totalPayout, salePrice, totalAdjustments, currencyCode,
    adjustments: [{adjustmentType, amount, percentage}]}, every figure a
    decimal string in the currency's minor units (JPY whole); fees are
    negative lines, a bonus positive; a rate line's amount is the rate of
    the sale price rounded half away from zero, percentage the rate
    ("0.085"), a flat line's percentage "0"; totalAdjustments is the sum of
    the lines and totalPayout salePrice + totalAdjustments.  The lists (and
    the single listing) give payout null for an order nothing is paid for
    (CREATED, CANCELED); the single order always gives it.
Paging: pageNumber an integer >= 1 (at most 2^31-1), pageSize an integer
1-100; defaults: pageNumber 1, pageSize 1 for listings ("By default the page
size starts at 1"), 10 for the history ("By default the number is 10") and
for active orders (the document is silent).  count: all matching items;
pageSize and pageNumber as asked; hasNextPage: pageNumber * pageSize <
count; a page past the end is empty.  Listings are newest first (createdAt,
then listingId), orders newest first (createdAt); sortOrder=SHIPBYDATE
(active orders) puts the soonest shipment.shipByDate first.
Filters: listingStatuses (INACTIVE ACTIVE CANCELED MATCHED COMPLETED: the
filter's list, which lacks DELETED), inventoryTypes (STANDARD FLEX DIRECT),
productIds, variantIds, batchIds and initiatedShipmentDisplayIds are
comma-separated (blanks around items ignored; ids in any case); fromDate /
toDate are YYYY-MM-DD, both included, on the UTC day of createdAt (listings
and the history; active orders take no dates); isExpired true | false
(default false: listings whose ask expired, askExpiresAt <= now, are left
out; true includes them); orderStatus one value of ActiveOrderStatus
(active) or HistoricalOrderStatus (history); productId, variantId one id;
sortOrder CREATEDAT (default) | SHIPBYDATE.  400 {statusCode, message}:
pageNumber / pageSize not an integer or out of range (also empty),
brackets, quotation marks or an empty item in a list, a value outside its
list (case matters), a date that is not YYYY-MM-DD or not a real day,
fromDate after toDate, isExpired other than true / false.  Parameters the
document does not give a call are ignored.  Active orders: the account's
orders with an ActiveOrderStatus; the history: those with a
HistoricalOrderStatus.  GET /selling/listings/{id}: 400 when the id is not a
UUID, 404 when no listing has it (DELETED and expired ones are found).
GET /selling/orders/{n}: any order, its number in any case; 404 unknown.

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
    selling_listing_count  null (default: the 14 seeded listings) or N, 0-10000:
                       N < 14 keeps the first N of the seed (orders keep the
                       listingIds of dropped ones); N > 14 adds N-14 ACTIVE
                       USD STANDARD listings of the four catalogue SKUs (ids
                       from "G<j>", created 2026-01-01 plus j minutes, asks
                       that never expire), so the lists run over many pages.
    selling_add_orders [{sku, amount, variant?, currencyCode?, status?,
                       inventoryType?, createdAt?, orderNumber?, shippingFee?}],
                       default []: one more order each (and its listing:
                       MATCHED for an active status, COMPLETED, else CANCELED).
                       Defaults: variant 0, USD, CREATED, STANDARD, createdAt
                       the time of the POST, orderNumber "<700000001+i>-
                       <699900001+i>".  Payout: Transaction Fee (9%), Payment
                       Processing (3%), and "Shipping Fee" -shippingFee when
                       given.  The SKU is registered.  A known orderNumber, an
                       NF- SKU or a variant it lacks is refused (400).
    selling_listing_changes {listingId: {status?, amount?, currencyCode?}},
                       default {}: the listing changes (updatedAt: the time of
                       the POST); INACTIVE or DELETED drops its ask, another
                       status gives one if it had none; a new amount or
                       currency updates askUpdatedAt.  An unknown id is refused.

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
    GET  /_admin/selling -> {"now", "listings" (every ListingResponse, list order,
         expired included), "expired" (their listingIds), "orders" (every
         DetailedOrder, newest first), "order_items" (the same as ListOrders),
         "skus" [{"sku", "role", "productId"}]}: the account as it stands
    GET  /_admin/config -> current config
    POST /_admin/config JSON object merged (top-level keys replaced) into config;
         keys: see DEFAULT_CONFIG below, plus the actions "expire_tokens": true
         and "expire_codes": true.
    POST /_admin/reset  clears log, counters, block state, config, the codes
         and the refresh tokens issued (--refresh-token is good again).
Endpoint names: token search gtin product variants variant market
variant_market listings listing orders_active orders_history order other.

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
from decimal import ROUND_HALF_UP, Decimal
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
SELLING_ENDPOINTS = {"listings", "listing", "orders_active", "orders_history", "order"}
ENDPOINTS = {"token", "search", "product", "variants", "variant", "gtin", "market",
             "variant_market", "other"} | SELLING_ENDPOINTS
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
    "selling_listing_count": None,   # null: the 14 seeded listings; N: the first N / more
    "selling_add_orders": [],    # [{sku, amount, ...}]: orders (and their listings) added
    "selling_listing_changes": {},   # {listingId: {status?, amount?, currencyCode?}}
}
ROUTES = [
    (re.compile(r"^/v2/catalog/search$"), "search"),
    (re.compile(r"^/v2/catalog/products/variants/gtins/([^/]+)$"), "gtin"),
    (re.compile(r"^/v2/catalog/products/([^/]+)$"), "product"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants$"), "variants"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants/([^/]+)$"), "variant"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/market-data$"), "market"),
    (re.compile(r"^/v2/catalog/products/([^/]+)/variants/([^/]+)/market-data$"), "variant_market"),
    (re.compile(r"^/v2/selling/listings$"), "listings"),
    (re.compile(r"^/v2/selling/listings/([^/]+)$"), "listing"),
    (re.compile(r"^/v2/selling/orders/active$"), "orders_active"),
    (re.compile(r"^/v2/selling/orders/history$"), "orders_history"),
    (re.compile(r"^/v2/selling/orders/([^/]+)$"), "order"),
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


# ---------------------------------------------------------------- selling (read side)
#
# The seller's account behind /v2/selling/...: listings and orders, a pure
# function of the config (the seed below, selling_listing_count,
# selling_add_orders, selling_listing_changes), of the catalogue (products
# and variants come from make_product / make_variants, so uppercase_ids,
# odd_ids and alias_skus reach them) and, for expiry only, of the clock.

SELL_NS = "SELL"            # namespace of the hashes behind the selling ids
# The products of the account: (sku, role).  "catalogue": a product the
# tests are meant to queue in the extension; "unqueued": one they are meant
# NOT to queue (a listing and an order of it exist), so that a listing of an
# unknown product can be seen to queue it.  All are registered from the
# start: /catalog/products/{id} knows them without a search.
SELL_SKUS = (("SX-SELL-1", "catalogue"), ("SX-SELL-2", "catalogue"),
             ("SX-SELL-3", "catalogue"), ("CMP-SX-SELL-4", "catalogue"),
             ("SX-SELL-NEW-5", "unqueued"))
SELL_CATALOGUE_SKUS = tuple(s for s, role in SELL_SKUS if role == "catalogue")
# the document's values (ListListings.status, the listingStatuses filter,
# ActiveOrderStatus, HistoricalOrderStatus, InventoryType, sortOrder)
LISTING_STATUSES = ("INACTIVE", "ACTIVE", "DELETED", "CANCELED", "MATCHED", "COMPLETED")
LISTING_STATUS_FILTER = ("INACTIVE", "ACTIVE", "CANCELED", "MATCHED", "COMPLETED")
ACTIVE_ORDER_STATUSES = ("CREATED", "CCAUTHORIZATIONFAILED", "SHIPPED", "RECEIVED",
                         "AUTHENTICATING", "AUTHENTICATED", "PAYOUTPENDING", "PAYOUTCOMPLETED",
                         "SYSTEMFULFILLED", "PAYOUTFAILED", "SUSPENDED", "PENDING", "DONOTSHIP")
HISTORICAL_ORDER_STATUSES = ("AUTHFAILED", "DIDNOTSHIP", "CANCELED", "COMPLETED", "RETURNED")
INVENTORY_TYPES = ("STANDARD", "FLEX", "DFS", "DIRECT")
INVENTORY_TYPE_FILTER = ("STANDARD", "FLEX", "DIRECT")
SORT_ORDERS = ("CREATEDAT", "SHIPBYDATE")
# orders the lists (and the single listing) give "payout": null: nothing is
# paid out yet, or ever will be; the single-order call always gives it (the
# document requires it there): what the sale pays, or would have paid
UNPAID_ORDER_STATUSES = ("CREATED", "CANCELED")
# pageSize: 1-100 on every selling list; the default: listings 1 ("By default
# the page size starts at 1"), history 10 ("By default the number is 10"),
# active orders 10 (the document says nothing)
PAGE_DEFAULTS = {"listings": 1, "orders_active": 10, "orders_history": 10}
SELL_PAGE_MAX = 100
INT32_MAX = 2 ** 31 - 1
FAR_EXPIRY = "2099-12-31T23:59:59.000Z"     # asks of the seed that never expire
MAX_LISTING_COUNT = 10000
ISO_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
DATE_RX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UUID_RX = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DECIMAL_RX = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")

# Payout lines: (adjustmentType, signed rate of the sale price or None,
# signed flat amount or None).  Fees are negative, a bonus positive.
TXN_9 = ("Transaction Fee (9%)", "-0.09", None)
TXN_85 = ("Transaction Fee (8.5%)", "-0.085", None)
TXN_8 = ("Transaction Fee (8%)", "-0.08", None)
PROC_3 = ("Payment Processing (3%)", "-0.03", None)
SHIP_BONUS_1 = ("Successful Ship Bonus (1%)", "0.01", None)


def SHIP(flat):
    return ("Shipping Fee", None, "-" + flat)


# The seeded listings, in seed order (selling_listing_count N < 14 keeps the
# first N).  ask: (askCreatedAt, askUpdatedAt, askExpiresAt) or None.
SEED_LISTINGS = [
    dict(key="L01", sku=0, variant=0, status="ACTIVE", amount="180", currency="USD",
         inventory="STANDARD", created="2026-11-20T10:00:00.000Z",
         updated="2026-11-20T10:00:00.000Z",
         ask=("2026-11-20T10:00:00.000Z", "2026-11-20T10:00:00.000Z", FAR_EXPIRY)),
    dict(key="L02", sku=1, variant=1, status="ACTIVE", amount="156", currency="EUR",
         inventory="STANDARD", created="2026-11-18T08:30:00.000Z",
         updated="2026-11-19T12:00:00.000Z", batch=True,
         ask=("2026-11-18T08:30:00.000Z", "2026-11-19T12:00:00.000Z", FAR_EXPIRY)),
    dict(key="L03", sku=3, variant=0, status="ACTIVE", amount="140", currency="GBP",
         inventory="FLEX", created="2026-11-15T16:45:00.000Z",
         updated="2026-11-15T16:45:00.000Z", shipment_display="IB-SXS-0003",
         ask=("2026-11-15T16:45:00.000Z", "2026-11-15T16:45:00.000Z", FAR_EXPIRY)),
    dict(key="L04", sku=2, variant=0, status="INACTIVE", amount="210", currency="USD",
         inventory="STANDARD", created="2026-10-30T09:00:00.000Z",
         updated="2026-11-02T11:20:00.000Z", ask=None),
    dict(key="L05", sku=0, variant=1, status="INACTIVE", amount="199", currency="USD",
         inventory="STANDARD", created="2026-03-02T14:00:00.000Z",
         updated="2026-06-30T00:00:00.000Z",
         ask=("2026-03-02T14:00:00.000Z", "2026-03-02T14:00:00.000Z",
              "2026-06-30T00:00:00.000Z")),
    dict(key="L06", sku=1, variant=0, status="DELETED", amount=None, currency=None,
         inventory="STANDARD", created="2026-09-12T07:10:00.000Z",
         updated="2026-09-20T18:00:00.000Z", ask=None),
    dict(key="L07", sku=2, variant=1, status="DELETED", amount="32000", currency="JPY",
         inventory="STANDARD", created="2026-09-05T03:00:00.000Z",
         updated="2026-10-01T03:00:00.000Z", ask=None),
    dict(key="L08", sku=0, variant=2, status="MATCHED", amount="220", currency="USD",
         inventory="STANDARD", created="2026-11-10T10:00:00.000Z",
         updated="2026-12-01T09:12:00.000Z",
         ask=("2026-11-10T10:00:00.000Z", "2026-11-10T10:00:00.000Z", FAR_EXPIRY)),
    dict(key="L09", sku=4, variant=0, status="MATCHED", amount="130", currency="USD",
         inventory="STANDARD", created="2026-11-01T12:00:00.000Z",
         updated="2026-11-25T15:40:00.000Z",
         ask=("2026-11-01T12:00:00.000Z", "2026-11-01T12:00:00.000Z", FAR_EXPIRY)),
    dict(key="L10", sku=1, variant=2, status="MATCHED", amount="175", currency="EUR",
         inventory="STANDARD", created="2026-10-20T08:00:00.000Z",
         updated="2026-11-22T07:05:00.000Z",
         ask=("2026-10-20T08:00:00.000Z", "2026-10-28T08:00:00.000Z", FAR_EXPIRY)),
    dict(key="L11", sku=3, variant=1, status="MATCHED", amount="95", currency="USD",
         inventory="DIRECT", created="2026-10-11T19:30:00.000Z",
         updated="2026-11-16T10:00:00.000Z",
         ask=("2026-10-11T19:30:00.000Z", "2026-10-11T19:30:00.000Z", FAR_EXPIRY)),
    dict(key="L12", sku=2, variant=2, status="COMPLETED", amount="36000", currency="JPY",
         inventory="STANDARD", created="2026-09-20T01:00:00.000Z",
         updated="2026-10-24T05:00:00.000Z",
         ask=("2026-09-20T01:00:00.000Z", "2026-09-20T01:00:00.000Z", FAR_EXPIRY)),
    dict(key="L13", sku=0, variant=3, status="COMPLETED", amount="160", currency="EUR",
         inventory="STANDARD", created="2026-09-01T10:00:00.000Z",
         updated="2026-10-12T10:00:00.000Z",
         ask=("2026-09-01T10:00:00.000Z", "2026-09-01T10:00:00.000Z", FAR_EXPIRY)),
    dict(key="L14", sku=1, variant=3, status="CANCELED", amount="140", currency="USD",
         inventory="STANDARD", created="2026-10-15T13:00:00.000Z",
         updated="2026-10-23T09:00:00.000Z",
         ask=("2026-10-15T13:00:00.000Z", "2026-10-15T13:00:00.000Z", FAR_EXPIRY)),
]
# The seeded orders.  listing: the key of its listing (None: an order whose
# listing is gone, listingId null).  shipment: (shipByDate, carrierCode,
# trackingNumber) or None.
SEED_ORDERS = [
    dict(key="O1", number="412093871-411987552", listing="L08", status="CREATED",
         created="2026-12-01T09:12:00.000Z", updated="2026-12-01T09:12:00.000Z",
         fees=[TXN_9, PROC_3], shipment=("2026-12-04T09:12:00.000Z", None, None)),
    dict(key="O2", number="412001236-411902417", listing="L09", status="SHIPPED",
         created="2026-11-25T15:40:00.000Z", updated="2026-11-27T10:02:00.000Z",
         fees=[TXN_9, PROC_3, SHIP("4.00")],
         shipment=("2026-11-28T15:40:00.000Z", "UPS", "1Z999AA10123456784")),
    dict(key="O3", number="411870350-411778061", listing="L10", status="AUTHENTICATING",
         created="2026-11-22T07:05:00.000Z", updated="2026-11-26T13:30:00.000Z",
         fees=[TXN_85, PROC_3, SHIP("7.00")],
         shipment=("2026-11-25T07:05:00.000Z", "DHL", "JD014600003828304657")),
    dict(key="O4", number="06-SXK4D7Q2MN", listing="L11", status="PAYOUTPENDING",
         created="2026-11-16T10:00:00.000Z", updated="2026-11-20T16:00:00.000Z",
         fees=[TXN_8, PROC_3, SHIP_BONUS_1],
         shipment=("2026-11-19T10:00:00.000Z", "UPS", "1Z999AA10123456795")),
    dict(key="O5", number="409115847-409020913", listing="L12", status="COMPLETED",
         created="2026-10-10T05:00:00.000Z", updated="2026-10-24T05:00:00.000Z",
         fees=[TXN_9, PROC_3, SHIP("1100")],
         shipment=("2026-10-13T05:00:00.000Z", "YAMATO", "4873-2210-9936")),
    dict(key="O6", number="408662031-408570288", listing="L13", status="COMPLETED",
         created="2026-09-28T10:00:00.000Z", updated="2026-10-12T10:00:00.000Z",
         fees=[TXN_9, PROC_3, SHIP("7.00")],
         shipment=("2026-10-01T10:00:00.000Z", "DHL", "JD014600003828301122")),
    dict(key="O7", number="410334219-410241976", listing="L14", status="CANCELED",
         created="2026-10-20T11:00:00.000Z", updated="2026-10-23T09:00:00.000Z",
         fees=[TXN_9, PROC_3], shipment=None),
    dict(key="O8", number="404218550-404127733", listing=None, status="COMPLETED",
         sku=3, variant=2, amount="120", currency="GBP", inventory="STANDARD",
         created="2026-08-14T17:25:00.000Z", updated="2026-08-29T08:00:00.000Z",
         fees=[TXN_9, PROC_3, SHIP("4.50")], shipment=None),
]


class BadParam(Exception):
    """A query parameter the document's validation refuses: 400."""


def sell_ask_id(key):
    """A numeric askId of 20 digits, like the document's example."""
    return str(10 ** 19 + hnum(SELL_NS, f"ask|{key}") % (9 * 10 ** 19))


def iso_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def iso_plus(ts, minutes):
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    t += datetime.timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def money_str(x, currency):
    """x (a Decimal) in the currency's ISO 4217 minor units (half away from 0)."""
    q = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    return str(x.quantize(q, rounding=ROUND_HALF_UP))


def make_payout(amount, currency, fees):
    """The Payout of a sale: one adjustment per fee line (a rate of the sale
    price, or a flat amount), totalAdjustments their sum and totalPayout the
    sale price plus it; every figure a decimal string in the currency's
    minor units."""
    sale = Decimal(amount)
    adjustments, total = [], Decimal(0)
    for label, rate, flat in fees:
        value = Decimal(money_str(sale * Decimal(rate) if rate is not None else Decimal(flat),
                                  currency))
        total += value
        adjustments.append({"adjustmentType": label, "amount": money_str(value, currency),
                            "percentage": str(abs(Decimal(rate))) if rate is not None else "0"})
    return {"totalPayout": money_str(sale + total, currency),
            "salePrice": money_str(sale, currency),
            "totalAdjustments": money_str(total, currency),
            "currencyCode": currency, "adjustments": adjustments}


def added_fees(spec):
    fees = [TXN_9, PROC_3]
    if spec.get("shippingFee") is not None:
        fees.append(SHIP(spec["shippingFee"]))
    return fees


def listing_status_of_order(status):
    """The status a listing takes from its order's."""
    if status in ACTIVE_ORDER_STATUSES:
        return "MATCHED"
    return "COMPLETED" if status == "COMPLETED" else "CANCELED"


def selling_rows(cfg):
    """(listing rows, order rows) of the account the config describes, before
    the catalogue is applied.  Rows are plain dicts (see selling_account)."""
    count = cfg.get("selling_listing_count")
    seed = SEED_LISTINGS if count is None else SEED_LISTINGS[:count]
    listings = []
    for s in seed:
        row = dict(s, id=huuid(SELL_NS, f"listing|{s['key']}"), sku=SELL_SKUS[s["sku"]][0],
                   askId=sell_ask_id(s["key"]), order=None)
        row.setdefault("batch", False)
        row.setdefault("shipment_display", None)
        listings.append(row)
    for j in range(len(SEED_LISTINGS), count or 0):
        sku = SELL_CATALOGUE_SKUS[j % len(SELL_CATALOGUE_SKUS)]
        created = iso_plus("2026-01-01T00:00:00.000Z", j)
        key = f"G{j + 1:05d}"
        listings.append(dict(
            key=key, id=huuid(SELL_NS, f"listing|{key}"), sku=sku,
            variant=j % variant_count(sku, kind_of(sku)), status="ACTIVE",
            amount=str(100 + j % 300), currency="USD", inventory="STANDARD",
            created=created, updated=created, ask=(created, created, FAR_EXPIRY),
            askId=sell_ask_id(key), batch=False, shipment_display=None, order=None))
    by_key = {row["key"]: row for row in listings}
    orders = []
    for o in SEED_ORDERS:
        row = dict(o, id=o["number"])
        lrow = by_key.get(o["listing"]) if o["listing"] else None
        if o["listing"] and lrow is None:
            # selling_listing_count dropped its listing: the order keeps the id
            lrow = dict(SEED_LISTINGS[int(o["listing"][1:]) - 1])
            lrow.update(id=huuid(SELL_NS, f"listing|{lrow['key']}"),
                        sku=SELL_SKUS[lrow["sku"]][0], askId=sell_ask_id(lrow["key"]))
        if lrow is not None:
            row.update(listing_id=lrow["id"], askId=lrow["askId"], sku=lrow["sku"],
                       variant=lrow["variant"], amount=lrow["amount"],
                       currency=lrow["currency"], inventory=lrow["inventory"])
            if lrow["key"] in by_key:
                by_key[lrow["key"]]["order"] = row
        else:
            row.update(listing_id=None, askId=sell_ask_id(o["key"]),
                       sku=SELL_SKUS[o["sku"]][0])
        orders.append(row)
    for spec in cfg.get("selling_add_orders", []):
        number = spec["orderNumber"]
        lid = huuid(SELL_NS, f"added|{number}")
        row = dict(key=number, number=number, id=number, listing_id=lid,
                   askId=sell_ask_id("added|" + number), sku=spec["sku"],
                   variant=spec["variant"], amount=spec["amount"],
                   currency=spec["currencyCode"], inventory=spec["inventoryType"],
                   status=spec["status"], created=spec["createdAt"], updated=spec["createdAt"],
                   fees=added_fees(spec),
                   shipment=(iso_plus(spec["createdAt"], 3 * 24 * 60), None, None)
                   if spec["status"] in ACTIVE_ORDER_STATUSES else None)
        orders.append(row)
        listings.append(dict(
            key=number, id=lid, sku=spec["sku"], variant=spec["variant"],
            status=listing_status_of_order(spec["status"]), amount=spec["amount"],
            currency=spec["currencyCode"], inventory=spec["inventoryType"],
            created=spec["createdAt"], updated=spec["createdAt"],
            ask=(spec["createdAt"], spec["createdAt"], FAR_EXPIRY), askId=row["askId"],
            batch=False, shipment_display=None, order=row))
    changes = cfg.get("selling_listing_changes", {})
    for row in listings:
        change = changes.get(row["id"])
        if not change:
            continue
        row.update(updated=change["updatedAt"])
        if "amount" in change:
            row["amount"] = change["amount"]
        if "currencyCode" in change:
            row["currency"] = change["currencyCode"]
        if "status" in change:
            row["status"] = change["status"]
            if row["status"] in ("INACTIVE", "DELETED"):
                row["ask"] = None
            elif row["ask"] is None:
                row["ask"] = (change["updatedAt"], change["updatedAt"], FAR_EXPIRY)
        if row["ask"] is not None and ("amount" in change or "currencyCode" in change):
            row["ask"] = (row["ask"][0], change["updatedAt"], row["ask"][2])
    return listings, orders


def selling_account(cfg):
    """The account as the API shows it: {"listings": [(ListingResponse,
    expires)], "orders": [(ListOrders item, DetailedOrder)]}, listings newest
    first (createdAt, then listingId), orders newest first.  expires: the
    ask's askExpiresAt, or None without an ask."""
    listings, orders = selling_rows(cfg)
    cache = {}

    def catalogue(sku, i):
        if sku not in cache:
            kind = kind_of(sku)
            cache[sku] = (make_product(sku, kind, cfg), make_variants(sku, kind, cfg))
        product, variants = cache[sku]
        v = variants[i]
        return ({"productId": product["productId"], "productName": product["title"],
                 "styleId": product["styleId"]},
                {"variantId": v["variantId"], "variantName": v["variantName"],
                 "variantValue": v["variantValue"]})

    payouts = {o["id"]: make_payout(o["amount"], o["currency"], o["fees"]) for o in orders}
    out_l = []
    for r in listings:
        product, variant = catalogue(r["sku"], r["variant"])
        o = r["order"]
        ask = None if r["ask"] is None else {
            "askId": r["askId"], "askCreatedAt": r["ask"][0], "askUpdatedAt": r["ask"][1],
            "askExpiresAt": r["ask"][2]}
        out_l.append(({
            "listingId": r["id"], "status": r["status"], "amount": r["amount"],
            "currencyCode": r["currency"], "inventoryType": r["inventory"],
            "createdAt": r["created"], "updatedAt": r["updated"],
            "batch": {"batchId": huuid(SELL_NS, f"batch|{r['key']}"),
                      "taskId": huuid(SELL_NS, f"task|{r['key']}")} if r["batch"] else None,
            "ask": ask,
            "order": None if o is None else {"orderNumber": o["number"],
                                             "orderCreatedAt": o["created"],
                                             "orderStatus": o["status"]},
            "product": product, "variant": variant, "authenticationDetails": None,
            "payout": payouts[o["id"]] if o is not None
            and o["status"] not in UNPAID_ORDER_STATUSES else None,
            "lastOperation": None,
            "initiatedShipments": {"inbound": {"displayId": r["shipment_display"]}}
            if r["shipment_display"] else None,
            "condition": None, "conditionDescription": None},
            None if ask is None else ask["askExpiresAt"]))
    out_l.sort(key=lambda x: x[0]["listingId"])
    out_l.sort(key=lambda x: x[0]["createdAt"], reverse=True)
    out_o = []
    for o in orders:
        product, variant = catalogue(o["sku"], o["variant"])
        payout = payouts[o["id"]]
        shipment = None
        if o["shipment"] is not None:
            ship_by, carrier, tracking = o["shipment"]
            shipment = {"shipByDate": ship_by, "trackingNumber": tracking,
                        "trackingUrl": f"https://tracking.stockx-standin.invalid/"
                                       f"{carrier.lower()}/{tracking}" if tracking else None,
                        "carrierCode": carrier, "shippingLabelUrl": None,
                        "shippingDocumentUrl": None}
        item = {"orderNumber": o["number"], "listingId": o["listing_id"], "askId": o["askId"],
                "amount": o["amount"], "currencyCode": o["currency"], "status": o["status"],
                "createdAt": o["created"], "updatedAt": o["updated"], "product": product,
                "variant": variant, "authenticationDetails": None,
                "payout": None if o["status"] in UNPAID_ORDER_STATUSES else payout,
                "initiatedShipments": None,
                "inventoryType": o["inventory"], "condition": None,
                "conditionDescription": None}
        detail = {"askId": o["askId"], "orderNumber": o["number"],
                  "listingId": o["listing_id"], "amount": o["amount"],
                  "currencyCode": o["currency"], "createdAt": o["created"],
                  "updatedAt": o["updated"], "variant": variant, "product": product,
                  "status": o["status"], "shipment": shipment, "initiatedShipments": None,
                  "inventoryType": o["inventory"], "authenticationDetails": None,
                  "payout": payout}
        out_o.append((item, detail))
    out_o.sort(key=lambda x: x[0]["orderNumber"])
    out_o.sort(key=lambda x: x[0]["createdAt"], reverse=True)
    return {"listings": out_l, "orders": out_o}


# -- the query parameters of the selling calls (BadParam: 400)

def strict_int(params, key, default, lo, hi):
    """An integer parameter that must lie in lo .. hi (the document's int32
    minimum / maximum); missing: the default."""
    raw = first(params, key)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not lo <= int(raw) <= hi:
        raise BadParam(f"{key} must be an integer from {lo} to {hi}")
    return int(raw)


def csv_param(params, key, allowed=None, lower=False):
    """A comma-separated list (blanks around items ignored) as a set, or None
    when the parameter is missing.  Brackets, quotation marks and empty
    items are refused, and with allowed, any value not in it."""
    raw = first(params, key)
    if raw is None:
        return None
    if any(c in raw for c in "[]\"'"):
        raise BadParam(f"{key} must not include array brackets or quotation marks")
    items = [x.strip() for x in raw.split(",")]
    if not all(items):
        raise BadParam(f"{key} must be a comma separated list without empty items")
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise BadParam(f"{key}: invalid value {bad[0]!r}; available values: "
                           + ", ".join(allowed))
    return {x.lower() for x in items} if lower else set(items)


def date_param(params, key):
    """A YYYY-MM-DD date (a real one), or None when missing."""
    raw = first(params, key)
    if raw is None:
        return None
    try:
        if not DATE_RX.fullmatch(raw):
            raise ValueError
        datetime.date.fromisoformat(raw)
    except ValueError:
        raise BadParam(f"{key} must be a date in the format YYYY-MM-DD") from None
    return raw


def date_range(params):
    lo, hi = date_param(params, "fromDate"), date_param(params, "toDate")
    if lo is not None and hi is not None and lo > hi:
        raise BadParam("fromDate must not be after toDate")
    return lo, hi


def in_range(ts, lo, hi):
    """Whether the UTC date of the timestamp ts lies in lo .. hi (inclusive)."""
    day = ts[:10]
    return (lo is None or day >= lo) and (hi is None or day <= hi)


def one_of(params, key, allowed):
    raw = first(params, key)
    if raw is not None and raw not in allowed:
        raise BadParam(f"{key}: invalid value {raw!r}; available values: " + ", ".join(allowed))
    return raw


def page(items, params, endpoint, key):
    size = strict_int(params, "pageSize", PAGE_DEFAULTS[endpoint], 1, SELL_PAGE_MAX)
    number = strict_int(params, "pageNumber", 1, 1, INT32_MAX)
    start = (number - 1) * size
    return {"count": len(items), "pageSize": size, "pageNumber": number,
            "hasNextPage": number * size < len(items), key: items[start:start + size]}


def listing_item(listing):
    """A ListingResponse cut down to a ListListings item (no payout, no
    lastOperation)."""
    return {k: v for k, v in listing.items() if k not in ("payout", "lastOperation")}


def serve_listings(params, cfg, now):
    """GET /selling/listings: 200 Listings, or BadParam."""
    statuses = csv_param(params, "listingStatuses", LISTING_STATUS_FILTER)
    products = csv_param(params, "productIds", lower=True)
    variants = csv_param(params, "variantIds", lower=True)
    batches = csv_param(params, "batchIds", lower=True)
    kinds = csv_param(params, "inventoryTypes", INVENTORY_TYPE_FILTER)
    shipments = csv_param(params, "initiatedShipmentDisplayIds", lower=True)
    expired = first(params, "isExpired")
    if expired not in (None, "true", "false"):
        raise BadParam("isExpired must be true or false")
    lo, hi = date_range(params)
    out = []
    for listing, expires in selling_account(cfg)["listings"]:
        if expired != "true" and expires is not None and expires <= now:
            continue
        if statuses is not None and listing["status"] not in statuses:
            continue
        if products is not None and listing["product"]["productId"].lower() not in products:
            continue
        if variants is not None and listing["variant"]["variantId"].lower() not in variants:
            continue
        if batches is not None and (listing["batch"] is None
                                    or listing["batch"]["batchId"] not in batches):
            continue
        if kinds is not None and listing["inventoryType"] not in kinds:
            continue
        if shipments is not None and (
                listing["initiatedShipments"] is None
                or listing["initiatedShipments"]["inbound"]["displayId"].lower() not in shipments):
            continue
        if not in_range(listing["createdAt"], lo, hi):
            continue
        out.append(listing_item(listing))
    return page(out, params, "listings", "listings")


def serve_orders(endpoint, params, cfg):
    """GET /selling/orders/active and /selling/orders/history: 200 Orders, or
    BadParam."""
    active = endpoint == "orders_active"
    statuses = ACTIVE_ORDER_STATUSES if active else HISTORICAL_ORDER_STATUSES
    status = one_of(params, "orderStatus", statuses)
    product, variant = first(params, "productId"), first(params, "variantId")
    kinds = csv_param(params, "inventoryTypes", INVENTORY_TYPE_FILTER)
    shipments = csv_param(params, "initiatedShipmentDisplayIds", lower=True)
    sort = one_of(params, "sortOrder", SORT_ORDERS) if active else None
    lo, hi = (None, None) if active else date_range(params)
    out = []
    for item, detail in selling_account(cfg)["orders"]:
        if item["status"] not in statuses or (status is not None and item["status"] != status):
            continue
        if product is not None and item["product"]["productId"].lower() != product.lower():
            continue
        if variant is not None and item["variant"]["variantId"].lower() != variant.lower():
            continue
        if kinds is not None and item["inventoryType"] not in kinds:
            continue
        if shipments is not None and (
                item["initiatedShipments"] is None
                or item["initiatedShipments"]["inbound"]["displayId"].lower() not in shipments):
            continue
        if not in_range(item["createdAt"], lo, hi):
            continue
        out.append((item, detail))
    if sort == "SHIPBYDATE":
        # soonest ship-by date first; orders without one last (a stable sort
        # keeps them newest first among equals)
        out.sort(key=lambda x: ((x[1]["shipment"] or {}).get("shipByDate") is None,
                                (x[1]["shipment"] or {}).get("shipByDate") or ""))
    return page([item for item, _ in out], params, endpoint, "orders")


def serve_listing(listing_id, cfg):
    """GET /selling/listings/{listingId}: (status, body)."""
    if not UUID_RX.fullmatch(listing_id):
        return 400, error_body(400, "listingId must be a UUID")
    for listing, _ in selling_account(cfg)["listings"]:
        if listing["listingId"] == listing_id:
            return 200, listing
    return 404, error_body(404, "Listing not found")


def serve_order(number, cfg):
    """GET /selling/orders/{orderNumber}: (status, body).  The document lists
    no 404 for this call; an unknown order number gets one all the same."""
    for _, detail in selling_account(cfg)["orders"]:
        if detail["orderNumber"].lower() == number:
            return 200, detail
    return 404, error_body(404, "Order not found")


# -- config keys of the selling account

def _added_order(spec, i):
    keys = {"sku", "variant", "amount", "currencyCode", "status", "inventoryType",
            "createdAt", "orderNumber", "shippingFee"}
    if not isinstance(spec, dict) or set(spec) - keys:
        raise ValueError(f"selling_add_orders: bad order {spec!r} (keys: {sorted(keys)})")
    sku = spec.get("sku")
    if not isinstance(sku, str) or not norm(sku) or kind_of(sku) == "nf":
        raise ValueError("selling_add_orders: sku must be a SKU the catalogue has (not NF-)")
    out = {"sku": sku.strip(), "variant": spec.get("variant", 0),
           "amount": spec.get("amount"), "currencyCode": spec.get("currencyCode", "USD"),
           "status": spec.get("status", "CREATED"),
           "inventoryType": spec.get("inventoryType", "STANDARD"),
           "createdAt": spec.get("createdAt") or iso_now(),
           "orderNumber": spec.get("orderNumber") or f"{700000001 + i}-{699900001 + i}",
           "shippingFee": spec.get("shippingFee")}
    v = out["variant"]
    if not isinstance(v, int) or isinstance(v, bool) \
            or not 0 <= v < variant_count(sku, kind_of(sku)):
        raise ValueError(f"selling_add_orders: {sku} has no variant {v!r}")
    for key in ("amount", "shippingFee"):
        if (out[key] is not None or key == "amount") and not (
                isinstance(out[key], str) and DECIMAL_RX.fullmatch(out[key])):
            raise ValueError(f"selling_add_orders: {key} must be a decimal string")
    if out["currencyCode"] not in RATES:
        raise ValueError("selling_add_orders: currencyCode must be one of the CurrencyCode enum")
    if out["status"] not in ACTIVE_ORDER_STATUSES + HISTORICAL_ORDER_STATUSES:
        raise ValueError("selling_add_orders: status must be an ActiveOrderStatus or a "
                         "HistoricalOrderStatus")
    if out["inventoryType"] not in INVENTORY_TYPES:
        raise ValueError("selling_add_orders: inventoryType must be one of "
                         + ", ".join(INVENTORY_TYPES))
    if not isinstance(out["createdAt"], str) or not ISO_TS.fullmatch(out["createdAt"]):
        raise ValueError("selling_add_orders: createdAt must be like 2026-12-01T09:12:00.000Z")
    if not isinstance(out["orderNumber"], str) \
            or not re.fullmatch(r"[A-Za-z0-9-]{1,40}", out["orderNumber"]):
        raise ValueError("selling_add_orders: orderNumber must be letters, digits and -")
    return out


def _listing_changes(v):
    if not isinstance(v, dict):
        raise ValueError("selling_listing_changes must be an object {listingId: change}")
    now, out = iso_now(), {}
    for lid, change in v.items():
        if not isinstance(change, dict) or not change \
                or set(change) - {"status", "amount", "currencyCode"}:
            raise ValueError(f"selling_listing_changes: bad change {change!r} "
                             "(keys: status, amount, currencyCode)")
        if "status" in change and change["status"] not in LISTING_STATUSES:
            raise ValueError("selling_listing_changes: status must be one of "
                             + ", ".join(LISTING_STATUSES))
        if "amount" in change and change["amount"] is not None and not (
                isinstance(change["amount"], str) and DECIMAL_RX.fullmatch(change["amount"])):
            raise ValueError("selling_listing_changes: amount must be a decimal string or null")
        if "currencyCode" in change and change["currencyCode"] is not None \
                and change["currencyCode"] not in RATES:
            raise ValueError("selling_listing_changes: currencyCode must be one of the "
                             "CurrencyCode enum, or null")
        out[str(lid).lower()] = dict(change, updatedAt=now)
    return out


def check_selling(cfg):
    """Cross-checks of the selling keys once merged: order numbers are
    unique, every changed listing exists."""
    listings, orders = selling_rows(dict(cfg, selling_listing_changes={}))
    numbers = [o["number"].lower() for o in orders]
    if len(set(numbers)) != len(numbers):
        raise ValueError("selling_add_orders: an orderNumber is taken")
    unknown = set(cfg["selling_listing_changes"]) - {r["id"] for r in listings}
    if unknown:
        raise ValueError(f"selling_listing_changes: no listing {sorted(unknown)[0]}")


def selling_view(cfg):
    """GET /_admin/selling: the whole account as the API would show it now."""
    account, now = selling_account(cfg), iso_now()
    answer = {
        "now": now,
        "listings": [listing for listing, _ in account["listings"]],
        "expired": [listing["listingId"] for listing, expires in account["listings"]
                    if expires is not None and expires <= now],
        "orders": [detail for _, detail in account["orders"]],
        "order_items": [item for item, _ in account["orders"]],
        "skus": [{"sku": sku, "role": role, "productId": huuid(norm(sku), "product")}
                 for sku, role in SELL_SKUS]}
    return upper_ids(answer) if cfg["uppercase_ids"] else answer


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
        elif key == "selling_add_orders":
            v = [_added_order(spec, i) for i, spec in enumerate(v)]
        elif key == "selling_listing_count":
            v = None if v is None else _num(v, key, 0, MAX_LISTING_COUNT, True)
        elif key == "selling_listing_changes":
            v = _listing_changes(v)
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
    if {"selling_listing_count", "selling_add_orders", "selling_listing_changes"} & set(patch):
        check_selling(new)
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
        # the products of the selling account are known by id from the start
        self.register([(sku, kind_of(sku)) for sku, _ in SELL_SKUS])
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
        elif endpoint in SELLING_ENDPOINTS:
            status, headers, payload = self.serve_selling(endpoint, ids, params, cfg)
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

    def serve_selling(self, endpoint, ids, params, cfg):
        """The selling read side (see Selling in the docstring)."""
        try:
            if endpoint == "listings":
                return 200, {}, serve_listings(params, cfg, iso_now())
            if endpoint in ("orders_active", "orders_history"):
                return 200, {}, serve_orders(endpoint, params, cfg)
        except BadParam as exc:
            return 400, {}, error_body(400, str(exc))
        if endpoint == "listing":
            status, payload = serve_listing(ids[0], cfg)
        else:
            status, payload = serve_order(ids[0], cfg)
        return status, {}, payload

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
        if route == ("GET", "/_admin/selling"):
            with st.lock:
                cfg = copy.deepcopy(st.config)
            return self.respond(200, selling_view(cfg))
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
                st.register([(o["sku"], kind_of(o["sku"]))
                             for o in st.config["selling_add_orders"]])
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
