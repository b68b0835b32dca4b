/*-------------------------------------------------------------------------
 * stockx_json.h
 *	  StockX JSON bodies to plain C structs (json-c).
 *
 * No PostgreSQL dependency: strings are copied with an allocator the caller
 * passes (palloc in a memory context in the server, malloc in the unit
 * tests).  The allocator returns NULL on failure and never jumps away, so
 * every json-c object is freed on every path.  Amounts and prices come out
 * as validated decimal strings; dates as validated YYYY-MM-DD; ids as
 * validated UUID strings (StockX types them as plain strings: an id of
 * another shape makes the answer malformed, with the id in the message, so
 * that the one row it belongs to fails and says why).
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_JSON_H
#define STOCKX_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SxAllocator
{
	void *(*alloc)(void *context, size_t size); /* NULL on failure */
	void *context;
} SxAllocator;

typedef enum SxParseResult
{
	SX_PARSE_OK = 0,
	SX_PARSE_NOT_FOUND, /* search: no exact styleId match */
	SX_PARSE_MALFORMED, /* not the JSON we expect: see errbuf */
	SX_PARSE_NO_MEMORY
} SxParseResult;

typedef struct SxProduct
{
	char *product_id;
	char *url_key;
	char *style_id;
	char *product_type;
	char *title;
	char *brand;
	char *gender;
	char *season;
	char *release_date;
	char *retail_price;
	char *colorway;
	char *color;
	char *json; /* the product object as received */
} SxProduct;

typedef struct SxVariant
{
	char *variant_id;
	char *variant_name;
	char *variant_value;
	char *gtins_json;
	char *size_chart_json;
} SxVariant;

/* The prices of one market (standard, flex, direct): decimal strings or NULL. */
typedef struct SxMarketSet
{
	bool present; /* the answer carried this object */
	char *lowest_ask;
	char *highest_bid;
	char *sell_faster;
	char *earn_more;
	char *beat_us;
} SxMarketSet;

/*
 * One variant's market data.  The summary amounts are the top-level ones
 * (lowestAskAmount ...); an answer that carries an amount only in
 * standardMarketData (the shape some regions get) has it taken from there,
 * and flexLowestAskAmount from flexMarketData.lowestAsk.  The three nested
 * objects are kept as they came.
 */
typedef struct SxMarket
{
	char *variant_id;
	char *currency_code;
	char *lowest_ask;
	char *highest_bid;
	char *sell_faster;
	char *earn_more;
	char *flex_lowest_ask;
	SxMarketSet standard;
	SxMarketSet flex;
	SxMarketSet direct;
} SxMarket;

typedef struct SxToken
{
	char *access_token;
	char *refresh_token; /* NULL unless the server rotated it */
	int64_t expires_in;  /* seconds */
} SxToken;

#define SX_ERRBUF_SIZE 256

extern SxParseResult sx_parse_search(const char *body, size_t len, const char *sku,
                                     const SxAllocator *a, SxProduct *out, bool *has_next_page,
                                     char *errbuf);
extern SxParseResult sx_parse_product(const char *body, size_t len, const SxAllocator *a,
                                      SxProduct *out, char *errbuf);
extern SxParseResult sx_parse_gtin_variant(const char *body, size_t len, const SxAllocator *a,
                                           SxVariant *out, char **product_id, char *errbuf);
extern SxParseResult sx_parse_variants(const char *body, size_t len, const SxAllocator *a,
                                       SxVariant **out, int *count, char *errbuf);
extern SxParseResult sx_parse_market(const char *body, size_t len, const SxAllocator *a,
                                     SxMarket **out, int *count, char *errbuf);
extern SxParseResult sx_parse_token(const char *body, size_t len, const SxAllocator *a,
                                    SxToken *out, char *errbuf);
extern void sx_parse_error_message(const char *body, size_t len, char *buf, size_t buflen);
extern void sx_parse_string_member(const char *body, size_t len, const char *key, char *buf,
                                   size_t buflen);

extern SxParseResult sx_parse_page(const char *body, size_t len, const char *key,
                                   const char *id_key, int *nitems, bool *has_next_page,
                                   char *errbuf);
extern bool sx_style_id_matches(const char *style_id, const char *sku);
extern bool sx_is_uuid(const char *s);
extern bool sx_is_decimal(const char *s);
extern bool sx_is_date(const char *s);

#endif /* STOCKX_JSON_H */
