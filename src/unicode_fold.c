/*-------------------------------------------------------------------------
 * unicode_fold.c
 *	  Unicode simple case folding and case-insensitive UTF-8 equality (see
 *	  unicode_fold.h).
 *
 * Each string is read as a sequence of tokens: a well-formed UTF-8
 * sequence (Unicode's table 3-7: no overlong form, no surrogate, nothing
 * above U+10FFFF) is one token, its code point; any other byte is a token
 * of its own, numbered above every code point so that it can only equal
 * the same byte.  Two strings are equal when their token sequences have the
 * same length and equal tokens after folding the code points.
 *
 * The folding looks code points up by binary search in runs generated from
 * CaseFolding.txt (unicode_fold_table.h), ASCII by arithmetic.
 *-------------------------------------------------------------------------
 */
#include "unicode_fold.h"

#define SX_FOLD_WANT_RANGES
#include "unicode_fold_table.h"

/* A byte that starts no well-formed sequence becomes SX_RAW_BYTE + byte. */
#define SX_RAW_BYTE UINT32_C(0x110000)

uint32_t
sx_unicode_simple_fold(uint32_t cp)
{
	size_t lo = 0;
	size_t hi = SX_FOLD_RANGE_COUNT;
	const SxFoldRange *r;
	uint32_t offset;

	if (cp < 0x80)
		return (cp >= 'A' && cp <= 'Z') ? cp + ('a' - 'A') : cp;
	if (cp < sx_fold_ranges[0].first)
		return cp;

	/* the last run whose first code point is <= cp */
	while (hi - lo > 1)
	{
		size_t mid = lo + (hi - lo) / 2;

		if (sx_fold_ranges[mid].first <= cp)
			lo = mid;
		else
			hi = mid;
	}
	r = &sx_fold_ranges[lo];
	offset = cp - r->first;
	if (offset % r->stride != 0 || offset / r->stride >= r->count)
		return cp;
	return (uint32_t) ((int32_t) cp + r->delta);
}

static bool
is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/*
 * The token that starts at s[*pos] (*pos < len); *pos moves past it.  The
 * accepted ranges of the second byte are those of table 3-7 of the Unicode
 * standard: they rule out overlong forms, surrogates and values above
 * U+10FFFF.
 */
static uint32_t
next_token(const unsigned char *s, size_t len, size_t *pos)
{
	size_t i = *pos;
	size_t left = len - i;
	unsigned char c = s[i];
	unsigned char lo2 = 0x80;
	unsigned char hi2 = 0xBF;
	size_t n;
	uint32_t cp;
	size_t k;

	if (c < 0x80)
	{
		*pos = i + 1;
		return c;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		cp = c & 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		cp = c & 0x0F;
		if (c == 0xE0)
			lo2 = 0xA0;
		else if (c == 0xED)
			hi2 = 0x9F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		cp = c & 0x07;
		if (c == 0xF0)
			lo2 = 0x90;
		else if (c == 0xF4)
			hi2 = 0x8F;
	}
	else
		goto raw;

	if (left < n || s[i + 1] < lo2 || s[i + 1] > hi2)
		goto raw;
	for (k = 1; k < n; k++)
	{
		if (!is_cont(s[i + k]))
			goto raw;
		cp = (cp << 6) | (uint32_t) (s[i + k] & 0x3F);
	}
	*pos = i + n;
	return cp;

raw:
	*pos = i + 1;
	return SX_RAW_BYTE + c;
}

bool
sx_utf8_equal_ci(const char *a, size_t alen, const char *b, size_t blen)
{
	const unsigned char *sa = (const unsigned char *) a;
	const unsigned char *sb = (const unsigned char *) b;
	size_t ia = 0;
	size_t ib = 0;

	while (ia < alen && ib < blen)
	{
		uint32_t ta;
		uint32_t tb;

		/* ASCII on both sides: no decoding, no table */
		if (sa[ia] < 0x80 && sb[ib] < 0x80)
		{
			ta = sa[ia++];
			tb = sb[ib++];
			if (ta != tb && sx_unicode_simple_fold(ta) != sx_unicode_simple_fold(tb))
				return false;
			continue;
		}
		ta = next_token(sa, alen, &ia);
		tb = next_token(sb, blen, &ib);
		if (ta == tb)
			continue;
		if (ta >= SX_RAW_BYTE || tb >= SX_RAW_BYTE)
			return false;
		if (sx_unicode_simple_fold(ta) != sx_unicode_simple_fold(tb))
			return false;
	}
	return ia == alen && ib == blen;
}
