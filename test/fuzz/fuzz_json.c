/*-------------------------------------------------------------------------
 * fuzz_json.c
 *	  libFuzzer entry point for the StockX JSON parsing (src/stockx_json.c).
 *
 * Every input is fed, as is, to all parse functions, once with an allocator
 * that never fails and once with one that fails after a number of
 * allocations taken from the input's length; every block handed out is
 * tracked and freed after each call, so LeakSanitizer sees json-c leaks
 * only.  The validators get a NUL-terminated copy of the input.
 *
 * Build and run from the top of the tree:
 *
 *	clang -g -O1 -fsanitize=fuzzer,address -Isrc $(pkg-config --cflags json-c) \
 *		-o fuzz_json test/fuzz/fuzz_json.c src/stockx_json.c src/unicode_fold.c $(pkg-config --libs json-c)
 *	./fuzz_json -max_total_time=60 -max_len=4096 corpus/
 *
 * Add ",undefined" to -fsanitize to catch undefined behaviour as well.
 *-------------------------------------------------------------------------
 */
#include "stockx_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct FuzzAlloc
{
	void **ptrs;
	size_t count;
	size_t cap;
	long limit; /* -1: never fail */
} FuzzAlloc;

static void *
fuzz_alloc(void *context, size_t size)
{
	FuzzAlloc *f = context;
	void *p;

	if (f->limit >= 0 && (long) f->count >= f->limit)
		return NULL;
	if (f->count == f->cap)
	{
		size_t ncap = f->cap ? f->cap * 2 : 32;
		void **n = realloc(f->ptrs, ncap * sizeof(void *));

		if (n == NULL)
			return NULL;
		f->ptrs = n;
		f->cap = ncap;
	}
	p = malloc(size ? size : 1);
	if (p != NULL)
		f->ptrs[f->count++] = p;
	return p;
}

static void
fuzz_release(FuzzAlloc *f)
{
	size_t i;

	for (i = 0; i < f->count; i++)
		free(f->ptrs[i]);
	f->count = 0;
}

/* Touch every string of a result, so ASan checks they are valid. */
static size_t
touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static void
run_all(const char *body, size_t len, const char *sku, FuzzAlloc *f, const SxAllocator *a)
{
	char errbuf[SX_ERRBUF_SIZE];
	char msg[128];
	SxProduct p;
	SxVariant *v;
	SxMarket *m;
	SxToken t;
	bool next;
	int n;
	int i;
	volatile size_t sink = 0;

	if (sx_parse_search(body, len, sku, a, &p, &next, errbuf) == SX_PARSE_OK)
		sink += touch(p.product_id) + touch(p.url_key) + touch(p.style_id) + touch(p.product_type) +
		        touch(p.title) + touch(p.brand) + touch(p.gender) + touch(p.season) +
		        touch(p.release_date) + touch(p.retail_price) + touch(p.colorway) + touch(p.color) +
		        touch(p.json);
	fuzz_release(f);

	sink += next;
	if (sx_parse_product(body, len, a, &p, errbuf) == SX_PARSE_OK)
		sink += touch(p.product_id) + touch(p.style_id) + touch(p.json);
	fuzz_release(f);

	{
		SxVariant g;
		char *pid;

		if (sx_parse_gtin_variant(body, len, a, &g, &pid, errbuf) == SX_PARSE_OK)
			sink += touch(g.variant_id) + touch(g.gtins_json) + touch(pid);
	}
	fuzz_release(f);

	if (sx_parse_variants(body, len, a, &v, &n, errbuf) == SX_PARSE_OK)
		for (i = 0; i < n; i++)
		{
			sink += touch(v[i].variant_id) + touch(v[i].variant_name) + touch(v[i].variant_value) +
			        touch(v[i].gtins_json) + touch(v[i].size_chart_json);
		}
	fuzz_release(f);

	if (sx_parse_market(body, len, a, &m, &n, errbuf) == SX_PARSE_OK)
		for (i = 0; i < n; i++)
			sink += touch(m[i].variant_id) + touch(m[i].currency_code) + touch(m[i].lowest_ask) +
			        touch(m[i].highest_bid) + touch(m[i].sell_faster) + touch(m[i].earn_more) +
			        touch(m[i].flex_lowest_ask) + touch(m[i].standard.beat_us) +
			        touch(m[i].flex.highest_bid) + touch(m[i].direct.earn_more);
	fuzz_release(f);

	if (sx_parse_token(body, len, a, &t, errbuf) == SX_PARSE_OK)
		sink += touch(t.access_token) + touch(t.refresh_token);
	fuzz_release(f);

	if (sx_parse_page(body, len, "listings", "listingId", &n, &next, errbuf) == SX_PARSE_OK)
		sink += (size_t) n + next;
	if (sx_parse_page(body, len, "orders", "orderNumber", &n, &next, errbuf) == SX_PARSE_OK)
		sink += (size_t) n + next;

	sx_parse_error_message(body, len, msg, sizeof(msg));
	sink += touch(msg);
	(void) sink;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzAlloc f = { NULL, 0, 0, -1 };
	SxAllocator a = { fuzz_alloc, &f };
	char *copy;
	char *sku;

	/* the body: exactly the input, not NUL-terminated */
	run_all((const char *) data, size, "CU9225-001", &f, &a);

	/* again with an allocator that fails after (size % 16) allocations */
	f.limit = (long) (size % 16);
	run_all((const char *) data, size, "315122-111/CW2288-111", &f, &a);
	f.limit = -1;

	/* the validators and the SKU match work on C strings */
	copy = malloc(size + 1);
	if (copy != NULL)
	{
		memcpy(copy, data, size);
		copy[size] = '\0';
		(void) sx_is_uuid(copy);
		(void) sx_is_decimal(copy);
		(void) sx_is_date(copy);
		sku = strchr(copy, '\n');
		if (sku != NULL)
		{
			*sku++ = '\0';
			(void) sx_style_id_matches(copy, sku);
			/* the part before the newline as SKU of the whole input */
			run_all((const char *) data, size, copy, &f, &a);
		}
		else
			(void) sx_style_id_matches(copy, copy);
		free(copy);
	}
	free(f.ptrs);
	return 0;
}
