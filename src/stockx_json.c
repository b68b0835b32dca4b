/*-------------------------------------------------------------------------
 * stockx_json.c
 *	  Parse StockX answers (search, variants, market data, token, error
 *	  bodies) into the plain structs of stockx_json.h.
 *
 * Every function parses the whole body with one json_tokener, copies what
 * it keeps through the caller's allocator, and drops its json-c objects
 * before returning, whatever the outcome.
 *-------------------------------------------------------------------------
 */
#include "stockx_json.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "unicode_fold.h"

#define SX_JSON_MAX_DEPTH    64
#define SX_TOKEN_DEFAULT_TTL 300
#define SX_TOKEN_MAX_TTL     (366 * 86400)
/* integers beyond this lose digits in json-c's int64; prices never get there */
#define SX_MAX_INTEGER_AMOUNT INT64_C(1000000000000000)

static void set_error(char *errbuf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_error(char *errbuf, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, SX_ERRBUF_SIZE, fmt, ap);
	va_end(ap);
}

static char *
copy_string(const SxAllocator *a, const char *s)
{
	size_t len = strlen(s);
	char *copy = a->alloc(a->context, len + 1);

	if (copy != NULL)
		memcpy(copy, s, len + 1);
	return copy;
}

/* Parse a whole body; NULL (with errbuf set) unless it is one JSON value. */
static json_object *
parse_body(const char *body, size_t len, char *errbuf)
{
	json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	size_t end;

	if (body == NULL || len == 0)
	{
		set_error(errbuf, "empty response body");
		return NULL;
	}
	if (len > INT_MAX)
	{
		set_error(errbuf, "response body too large to parse");
		return NULL;
	}
	tok = json_tokener_new_ex(SX_JSON_MAX_DEPTH);
	if (tok == NULL)
	{
		set_error(errbuf, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int) len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr == json_tokener_error_parse_utf8_string)
	{
		set_error(errbuf, "the answer is not valid UTF-8");
		json_object_put(root);
		return NULL;
	}
	if (jerr != json_tokener_success || root == NULL)
	{
		set_error(errbuf, "invalid JSON: %s",
		          jerr == json_tokener_continue ? "unexpected end of input"
		                                        : json_tokener_error_desc(jerr));
		json_object_put(root);
		return NULL;
	}
	for (; end < len; end++)
	{
		if (!isspace((unsigned char) body[end]))
		{
			set_error(errbuf, "invalid JSON: trailing data after the value");
			json_object_put(root);
			return NULL;
		}
	}
	return root;
}

/* A JSON string with an embedded \u0000 would be cut short as C text. */
static bool
has_nul(json_object *val, const char *key, char *errbuf)
{
	if (json_object_is_type(val, json_type_string) &&
	    (size_t) json_object_get_string_len(val) != strlen(json_object_get_string(val)))
	{
		set_error(errbuf, "field \"%s\" contains a NUL character (\\u0000)", key);
		return true;
	}
	return false;
}

/*
 * Read an optional scalar member as text.  Missing or null gives NULL;
 * objects and arrays are malformed.
 */
static SxParseResult
get_text(const SxAllocator *a, json_object *obj, const char *key, char **out, char *errbuf)
{
	json_object *val;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &val) || val == NULL)
		return SX_PARSE_OK;
	switch (json_object_get_type(val))
	{
		case json_type_null:
			return SX_PARSE_OK;
		case json_type_object:
		case json_type_array:
			set_error(errbuf, "field \"%s\" is not a scalar", key);
			return SX_PARSE_MALFORMED;
		default:
			if (has_nul(val, key, errbuf))
				return SX_PARSE_MALFORMED;
			*out = copy_string(a, json_object_get_string(val));
			return *out ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
	}
}

static SxParseResult
get_uuid(const SxAllocator *a, json_object *obj, const char *key, char **out, char *errbuf)
{
	json_object *val;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &val) || !json_object_is_type(val, json_type_string))
	{
		set_error(errbuf, "field \"%s\" is missing or not a string", key);
		return SX_PARSE_MALFORMED;
	}
	if (!sx_is_uuid(json_object_get_string(val)))
	{
		/* the id as sent, shortened, for the row's last_error */
		char shown[48];
		size_t i;

		snprintf(shown, sizeof(shown), "%s", json_object_get_string(val));
		for (i = 0; shown[i] != '\0'; i++)
			if ((unsigned char) shown[i] < 0x20 || (unsigned char) shown[i] >= 0x80 ||
			    shown[i] == '"' || shown[i] == '\\')
				shown[i] = '?';
		set_error(errbuf, "field \"%s\" is \"%s%s\", not a UUID (ids are stored as uuid)", key,
		          shown, strlen(json_object_get_string(val)) >= sizeof(shown) ? "..." : "");
		return SX_PARSE_MALFORMED;
	}
	*out = copy_string(a, json_object_get_string(val));
	return *out ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
}

/* Amounts: decimal strings or numbers; null, missing or "" give NULL. */
static SxParseResult
get_decimal(const SxAllocator *a, json_object *obj, const char *key, char **out, char *errbuf)
{
	json_object *val;
	const char *text;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &val) || val == NULL ||
	    json_object_is_type(val, json_type_null))
		return SX_PARSE_OK;
	if (!json_object_is_type(val, json_type_string) && !json_object_is_type(val, json_type_int) &&
	    !json_object_is_type(val, json_type_double))
	{
		set_error(errbuf, "field \"%s\" is not a number", key);
		return SX_PARSE_MALFORMED;
	}
	if (json_object_is_type(val, json_type_int))
	{
		int64_t v = json_object_get_int64(val);

		if (v >= SX_MAX_INTEGER_AMOUNT || v <= -SX_MAX_INTEGER_AMOUNT)
		{
			set_error(errbuf, "field \"%s\" is out of range", key);
			return SX_PARSE_MALFORMED;
		}
	}
	text = json_object_get_string(val);
	if (json_object_is_type(val, json_type_string) && text[0] == '\0')
		return SX_PARSE_OK;
	if (!sx_is_decimal(text))
	{
		set_error(errbuf, "field \"%s\" is not a decimal number", key);
		return SX_PARSE_MALFORMED;
	}
	*out = copy_string(a, text);
	return *out ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
}

/* Dates: "YYYY-MM-DD", optionally followed by a time part we drop. */
static SxParseResult
get_date(const SxAllocator *a, json_object *obj, const char *key, char **out, char *errbuf)
{
	json_object *val;
	const char *text;
	char date[11];

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &val) || val == NULL ||
	    json_object_is_type(val, json_type_null))
		return SX_PARSE_OK;
	if (!json_object_is_type(val, json_type_string))
	{
		set_error(errbuf, "field \"%s\" is not a date", key);
		return SX_PARSE_MALFORMED;
	}
	text = json_object_get_string(val);
	if (text[0] == '\0')
		return SX_PARSE_OK;
	if (strlen(text) < 10 || (text[10] != '\0' && text[10] != 'T' && text[10] != ' '))
	{
		set_error(errbuf, "field \"%s\" is not a date", key);
		return SX_PARSE_MALFORMED;
	}
	memcpy(date, text, 10);
	date[10] = '\0';
	if (!sx_is_date(date))
	{
		set_error(errbuf, "field \"%s\" is not a date", key);
		return SX_PARSE_MALFORMED;
	}
	*out = copy_string(a, date);
	return *out ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
}

/* A member kept as JSON text (objects and arrays); null or missing give NULL. */
static SxParseResult
get_json(const SxAllocator *a, json_object *obj, const char *key, char **out)
{
	json_object *val;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &val) || val == NULL ||
	    json_object_is_type(val, json_type_null))
		return SX_PARSE_OK;
	*out = copy_string(a, json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
	                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
	return *out ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
}

#define TRY(expr)                                                                                  \
	do                                                                                             \
	{                                                                                              \
		SxParseResult r_ = (expr);                                                                 \
		if (r_ != SX_PARSE_OK)                                                                     \
			return r_;                                                                             \
	} while (0)

static SxParseResult
read_product(const SxAllocator *a, json_object *p, SxProduct *out, char *errbuf)
{
	json_object *attrs = NULL;

	memset(out, 0, sizeof(*out));
	TRY(get_uuid(a, p, "productId", &out->product_id, errbuf));
	TRY(get_text(a, p, "urlKey", &out->url_key, errbuf));
	TRY(get_text(a, p, "styleId", &out->style_id, errbuf));
	TRY(get_text(a, p, "productType", &out->product_type, errbuf));
	TRY(get_text(a, p, "title", &out->title, errbuf));
	TRY(get_text(a, p, "brand", &out->brand, errbuf));

	if (json_object_object_get_ex(p, "productAttributes", &attrs) && attrs != NULL &&
	    !json_object_is_type(attrs, json_type_null))
	{
		if (!json_object_is_type(attrs, json_type_object))
		{
			set_error(errbuf, "field \"productAttributes\" is not an object");
			return SX_PARSE_MALFORMED;
		}
		TRY(get_text(a, attrs, "gender", &out->gender, errbuf));
		TRY(get_text(a, attrs, "season", &out->season, errbuf));
		TRY(get_date(a, attrs, "releaseDate", &out->release_date, errbuf));
		TRY(get_decimal(a, attrs, "retailPrice", &out->retail_price, errbuf));
		TRY(get_text(a, attrs, "colorway", &out->colorway, errbuf));
		TRY(get_text(a, attrs, "color", &out->color, errbuf));
	}
	out->json = copy_string(a, json_object_to_json_string_ext(
	                               p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return out->json ? SX_PARSE_OK : SX_PARSE_NO_MEMORY;
}

static SxParseResult
search_products(json_object *root, const char *sku, const SxAllocator *a, SxProduct *out,
                bool *has_next_page, char *errbuf)
{
	json_object *products;
	json_object *next;
	size_t i, n;

	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "products", &products) ||
	    !json_object_is_type(products, json_type_array))
	{
		set_error(errbuf, "search answer has no \"products\" array");
		return SX_PARSE_MALFORMED;
	}
	*has_next_page = json_object_object_get_ex(root, "hasNextPage", &next) &&
	                 json_object_is_type(next, json_type_boolean) && json_object_get_boolean(next);
	n = json_object_array_length(products);
	for (i = 0; i < n; i++)
	{
		json_object *p = json_object_array_get_idx(products, i);
		json_object *style;

		if (!json_object_is_type(p, json_type_object) ||
		    !json_object_object_get_ex(p, "styleId", &style) ||
		    !json_object_is_type(style, json_type_string))
			continue;
		if (sx_style_id_matches(json_object_get_string(style), sku))
			return read_product(a, p, out, errbuf);
	}
	return SX_PARSE_NOT_FOUND;
}

/*
 * One page of a search answer: the product whose styleId matches the SKU
 * exactly (NOT_FOUND when none on this page does), and whether StockX has
 * a further page (hasNextPage).  Only the matching product is read, so
 * other hits of another shape do not matter.
 */
SxParseResult
sx_parse_search(const char *body, size_t len, const char *sku, const SxAllocator *a, SxProduct *out,
                bool *has_next_page, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	SxParseResult result;

	memset(out, 0, sizeof(*out));
	*has_next_page = false;
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	result = search_products(root, sku, a, out, has_next_page, errbuf);
	json_object_put(root);
	return result;
}

/* The answer of GET /catalog/products/{productId}: one Product object. */
SxParseResult
sx_parse_product(const char *body, size_t len, const SxAllocator *a, SxProduct *out, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	SxParseResult result;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	if (!json_object_is_type(root, json_type_object))
	{
		set_error(errbuf, "product answer is not a JSON object");
		result = SX_PARSE_MALFORMED;
	}
	else
		result = read_product(a, root, out, errbuf);
	json_object_put(root);
	return result;
}

/* An ElementReader: the signature is the one parse_array() calls through. */
static SxParseResult
read_variant(const SxAllocator *a, json_object *v, void *elem, char *errbuf)
{
	SxVariant *out = (SxVariant *) elem;

	if (!json_object_is_type(v, json_type_object))
	{
		set_error(errbuf, "variant is not an object");
		return SX_PARSE_MALFORMED;
	}
	TRY(get_uuid(a, v, "variantId", &out->variant_id, errbuf));
	TRY(get_text(a, v, "variantName", &out->variant_name, errbuf));
	TRY(get_text(a, v, "variantValue", &out->variant_value, errbuf));
	TRY(get_json(a, v, "gtins", &out->gtins_json));
	TRY(get_json(a, v, "sizeChart", &out->size_chart_json));
	return SX_PARSE_OK;
}

/*
 * The answer of GET /catalog/products/variants/gtins/{gtin}: one Variant
 * object, with the productId of the product it belongs to.
 */
SxParseResult
sx_parse_gtin_variant(const char *body, size_t len, const SxAllocator *a, SxVariant *out,
                      char **product_id, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	SxParseResult result;

	memset(out, 0, sizeof(*out));
	*product_id = NULL;
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	result = read_variant(a, root, out, errbuf);
	if (result == SX_PARSE_OK)
		result = get_uuid(a, root, "productId", product_id, errbuf);
	json_object_put(root);
	return result;
}

/*
 * A nested market object (standardMarketData ...): missing or null leave
 * the set absent; anything but an object is malformed.
 */
static SxParseResult
read_market_set(const SxAllocator *a, json_object *m, const char *key, SxMarketSet *out,
                char *errbuf)
{
	json_object *set;

	memset(out, 0, sizeof(*out));
	if (!json_object_object_get_ex(m, key, &set) || set == NULL ||
	    json_object_is_type(set, json_type_null))
		return SX_PARSE_OK;
	if (!json_object_is_type(set, json_type_object))
	{
		set_error(errbuf, "field \"%s\" is not an object", key);
		return SX_PARSE_MALFORMED;
	}
	out->present = true;
	TRY(get_decimal(a, set, "lowestAsk", &out->lowest_ask, errbuf));
	TRY(get_decimal(a, set, "highestBidAmount", &out->highest_bid, errbuf));
	TRY(get_decimal(a, set, "sellFaster", &out->sell_faster, errbuf));
	TRY(get_decimal(a, set, "earnMore", &out->earn_more, errbuf));
	TRY(get_decimal(a, set, "beatUS", &out->beat_us, errbuf));
	return SX_PARSE_OK;
}

/* The top-level amount when there is one, else the nested one. */
static char *
either(char *top, char *nested)
{
	return top != NULL ? top : nested;
}

/* An ElementReader, like read_variant(). */
static SxParseResult
read_market(const SxAllocator *a, json_object *m, void *elem, char *errbuf)
{
	SxMarket *out = (SxMarket *) elem;

	if (!json_object_is_type(m, json_type_object))
	{
		set_error(errbuf, "market data entry is not an object");
		return SX_PARSE_MALFORMED;
	}
	TRY(get_uuid(a, m, "variantId", &out->variant_id, errbuf));
	TRY(get_text(a, m, "currencyCode", &out->currency_code, errbuf));
	TRY(get_decimal(a, m, "lowestAskAmount", &out->lowest_ask, errbuf));
	TRY(get_decimal(a, m, "highestBidAmount", &out->highest_bid, errbuf));
	TRY(get_decimal(a, m, "sellFasterAmount", &out->sell_faster, errbuf));
	TRY(get_decimal(a, m, "earnMoreAmount", &out->earn_more, errbuf));
	TRY(get_decimal(a, m, "flexLowestAskAmount", &out->flex_lowest_ask, errbuf));
	TRY(read_market_set(a, m, "standardMarketData", &out->standard, errbuf));
	TRY(read_market_set(a, m, "flexMarketData", &out->flex, errbuf));
	TRY(read_market_set(a, m, "directMarketData", &out->direct, errbuf));
	out->lowest_ask = either(out->lowest_ask, out->standard.lowest_ask);
	out->highest_bid = either(out->highest_bid, out->standard.highest_bid);
	out->sell_faster = either(out->sell_faster, out->standard.sell_faster);
	out->earn_more = either(out->earn_more, out->standard.earn_more);
	out->flex_lowest_ask = either(out->flex_lowest_ask, out->flex.lowest_ask);
	return SX_PARSE_OK;
}

typedef SxParseResult (*ElementReader)(const SxAllocator *a, json_object *elem, void *out,
                                       char *errbuf);

/* Shared walk over a bare JSON array of objects. */
static SxParseResult
parse_array(const char *body, size_t len, const SxAllocator *a, size_t elem_size,
            ElementReader reader, void **out, int *count, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	SxParseResult result = SX_PARSE_OK;
	size_t i, n;
	char *items;

	*out = NULL;
	*count = 0;
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	if (!json_object_is_type(root, json_type_array))
	{
		set_error(errbuf, "answer is not a JSON array");
		json_object_put(root);
		return SX_PARSE_MALFORMED;
	}
	n = json_object_array_length(root);
	if (n > 10000)
	{
		set_error(errbuf, "answer has too many elements (%zu)", n);
		json_object_put(root);
		return SX_PARSE_MALFORMED;
	}
	items = a->alloc(a->context, elem_size * (n > 0 ? n : 1));
	if (items == NULL)
	{
		json_object_put(root);
		return SX_PARSE_NO_MEMORY;
	}
	memset(items, 0, elem_size * (n > 0 ? n : 1));
	for (i = 0; i < n && result == SX_PARSE_OK; i++)
		result = reader(a, json_object_array_get_idx(root, i), items + i * elem_size, errbuf);
	json_object_put(root);
	if (result != SX_PARSE_OK)
		return result;
	*out = items;
	*count = (int) n;
	return SX_PARSE_OK;
}

SxParseResult
sx_parse_variants(const char *body, size_t len, const SxAllocator *a, SxVariant **out, int *count,
                  char *errbuf)
{
	void *items;
	SxParseResult r =
	    parse_array(body, len, a, sizeof(SxVariant), read_variant, &items, count, errbuf);

	*out = (SxVariant *) items;
	return r;
}

SxParseResult
sx_parse_market(const char *body, size_t len, const SxAllocator *a, SxMarket **out, int *count,
                char *errbuf)
{
	void *items;
	SxParseResult r =
	    parse_array(body, len, a, sizeof(SxMarket), read_market, &items, count, errbuf);

	*out = (SxMarket *) items;
	return r;
}

static SxParseResult
read_token(json_object *root, const SxAllocator *a, SxToken *out, char *errbuf)
{
	json_object *val;

	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "access_token", &val) ||
	    !json_object_is_type(val, json_type_string) || json_object_get_string_len(val) == 0)
	{
		set_error(errbuf, "token answer has no \"access_token\"");
		return SX_PARSE_MALFORMED;
	}
	out->access_token = copy_string(a, json_object_get_string(val));
	if (out->access_token == NULL)
		return SX_PARSE_NO_MEMORY;

	/* lifetime in seconds: missing or absurd values fall back to 5 minutes */
	out->expires_in = SX_TOKEN_DEFAULT_TTL;
	if (json_object_object_get_ex(root, "expires_in", &val) &&
	    (json_object_is_type(val, json_type_int) || json_object_is_type(val, json_type_double)))
	{
		double ttl = json_object_get_double(val);

		if (ttl >= 1 && ttl <= SX_TOKEN_MAX_TTL)
			out->expires_in = (int64_t) ttl;
	}

	if (json_object_object_get_ex(root, "refresh_token", &val) &&
	    json_object_is_type(val, json_type_string) && json_object_get_string_len(val) > 0)
	{
		out->refresh_token = copy_string(a, json_object_get_string(val));
		if (out->refresh_token == NULL)
			return SX_PARSE_NO_MEMORY;
	}
	return SX_PARSE_OK;
}

SxParseResult
sx_parse_token(const char *body, size_t len, const SxAllocator *a, SxToken *out, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	SxParseResult result;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	result = read_token(root, a, out, errbuf);
	json_object_put(root);
	return result;
}

/*
 * The message of an error body ({"statusCode", "message"} or
 * {"errorMessage"} or OAuth's {"error_description"}), printable ASCII only.
 */
/* Printable ASCII of s into buf ('?' for anything else), cut to buflen. */
static void
copy_printable(const char *s, char *buf, size_t buflen)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0' && o + 1 < buflen; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[o] = '\0';
}

/*
 * The first of keys[0..nkeys) that is a string member of the JSON object
 * body, as printable ASCII in buf; "" when there is none.
 */
static void
first_string_member(const char *body, size_t len, const char *const *keys, size_t nkeys, char *buf,
                    size_t buflen)
{
	json_object *root;
	size_t i;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	root = parse_body(body, len, NULL);
	if (root != NULL && json_object_is_type(root, json_type_object))
	{
		for (i = 0; i < nkeys; i++)
		{
			json_object *val;

			if (json_object_object_get_ex(root, keys[i], &val) &&
			    json_object_is_type(val, json_type_string))
			{
				copy_printable(json_object_get_string(val), buf, buflen);
				break;
			}
		}
	}
	json_object_put(root);
}

void
sx_parse_error_message(const char *body, size_t len, char *buf, size_t buflen)
{
	static const char *const keys[] = { "message", "errorMessage", "error_description", "error" };

	first_string_member(body, len, keys, sizeof(keys) / sizeof(keys[0]), buf, buflen);
}

/*
 * A string member of a JSON object body as printable ASCII (the OAuth
 * "error" code of a refused grant, the "scope" granted); "" when absent.
 */
void
sx_parse_string_member(const char *body, size_t len, const char *key, char *buf, size_t buflen)
{
	first_string_member(body, len, &key, 1, buf, buflen);
}

/*
 * The envelope of one page of a selling list (GET /selling/listings,
 * /selling/orders/active, /selling/orders/history): an object whose member
 * key is an array of objects, each with a non-empty string id_key, and a
 * boolean hasNextPage.  *nitems is the length of the array.  The elements
 * themselves are read by SQL from the same body; this decides, before any
 * transaction, whether the body is a page at all.
 */
SxParseResult
sx_parse_page(const char *body, size_t len, const char *key, const char *id_key, int *nitems,
              bool *has_next_page, char *errbuf)
{
	json_object *root = parse_body(body, len, errbuf);
	json_object *items;
	json_object *next;
	SxParseResult result = SX_PARSE_MALFORMED;
	size_t i, n;

	*nitems = 0;
	*has_next_page = false;
	if (root == NULL)
		return SX_PARSE_MALFORMED;
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, key, &items) ||
	    !json_object_is_type(items, json_type_array))
		set_error(errbuf, "page has no array \"%s\"", key);
	else if (!json_object_object_get_ex(root, "hasNextPage", &next) ||
	         !json_object_is_type(next, json_type_boolean))
		set_error(errbuf, "page has no boolean \"hasNextPage\"");
	else
	{
		n = json_object_array_length(items);
		for (i = 0; i < n; i++)
		{
			json_object *e = json_object_array_get_idx(items, i);
			json_object *id;

			if (!json_object_is_type(e, json_type_object) ||
			    !json_object_object_get_ex(e, id_key, &id) ||
			    !json_object_is_type(id, json_type_string) || json_object_get_string_len(id) == 0)
			{
				set_error(errbuf, "element %zu of \"%s\" has no string \"%s\"", i, key, id_key);
				break;
			}
		}
		if (i == n)
		{
			*nitems = (int) n;
			*has_next_page = json_object_get_boolean(next);
			result = SX_PARSE_OK;
		}
	}
	json_object_put(root);
	return result;
}

static void
trim_bounds(const char *s, size_t len, size_t *start, size_t *end)
{
	*start = 0;
	*end = len;
	while (*start < *end && isspace((unsigned char) s[*start]))
		(*start)++;
	while (*end > *start && isspace((unsigned char) s[*end - 1]))
		(*end)--;
}

/*
 * Does the SKU equal the styleId, or one of its '/'-separated parts?
 * Case-insensitive for any letter (Unicode simple case folding), blanks
 * around the SKU and each part ignored.  The whole
 * styleId is tried first, so a SKU that itself contains '/' still matches.
 */
bool
sx_style_id_matches(const char *style_id, const char *sku)
{
	size_t ks, ke, ws, we;
	const char *part = style_id;

	if (style_id == NULL || sku == NULL)
		return false;
	trim_bounds(sku, strlen(sku), &ks, &ke);
	if (ke == ks)
		return false;
	trim_bounds(style_id, strlen(style_id), &ws, &we);
	if (sx_utf8_equal_ci(style_id + ws, we - ws, sku + ks, ke - ks))
		return true;
	for (;;)
	{
		const char *slash = strchr(part, '/');
		size_t plen = slash ? (size_t) (slash - part) : strlen(part);
		size_t ps, pe;

		trim_bounds(part, plen, &ps, &pe);
		if (sx_utf8_equal_ci(part + ps, pe - ps, sku + ks, ke - ks))
			return true;
		if (slash == NULL)
			return false;
		part = slash + 1;
	}
}

bool
sx_is_uuid(const char *s)
{
	int i;

	if (s == NULL || strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

/* [-+]digits[.digits][e[-+]digits], at least one digit in the mantissa */
bool
sx_is_decimal(const char *s)
{
	int digits = 0;

	if (s == NULL || strlen(s) > 64)
		return false;
	if (*s == '-' || *s == '+')
		s++;
	for (; isdigit((unsigned char) *s); s++)
		digits++;
	if (*s == '.')
		for (s++; isdigit((unsigned char) *s); s++)
			digits++;
	if (digits == 0)
		return false;
	if (*s == 'e' || *s == 'E')
	{
		int exp_digits = 0;

		s++;
		if (*s == '-' || *s == '+')
			s++;
		for (; isdigit((unsigned char) *s) && exp_digits < 4; s++)
			exp_digits++;
		if (exp_digits == 0)
			return false;
	}
	return *s == '\0';
}

/* YYYY-MM-DD naming a real day of the Gregorian calendar */
bool
sx_is_date(const char *s)
{
	static const int days_in_month[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int i, y, m, d, dim;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char) s[i]))
			return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	dim = days_in_month[m - 1];
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		dim = 29;
	return d <= dim;
}
