/*-------------------------------------------------------------------------
 * unicode_fold.h
 *	  Case-insensitive equality of UTF-8 strings under Unicode simple case
 *	  folding, for matching a shop's SKU against a StockX styleId.
 *
 * Plain C11 with no PostgreSQL dependency and no locale: the folding comes
 * from a table generated from Unicode's CaseFolding.txt (statuses C and S,
 * one code point to one code point; see unicode_fold_table.h for the
 * version and tools/gen_unicode_fold.py to regenerate it).  So 'É' equals
 * 'é', 'Σ', 'σ' and 'ς' are all equal, the Kelvin sign equals 'k', but 'ß'
 * does not equal "ss" (a full folding) and 'İ' (U+0130) equals no other
 * letter (it has Turkic and full foldings only).
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_UNICODE_FOLD_H
#define STOCKX_UNICODE_FOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The simple case folding of one code point: itself when it has none, and
 * when it is not a Unicode scalar value at all.
 */
extern uint32_t sx_unicode_simple_fold(uint32_t cp);

/*
 * Are the alen bytes at a and the blen bytes at b equal once every code
 * point is simply case-folded?  Reads no byte past either length and needs
 * no terminating NUL; a pointer may be NULL when its length is 0.  Bytes
 * that do not start a well-formed UTF-8 sequence (stray continuation bytes,
 * overlong forms, surrogates, code points above U+10FFFF, a sequence cut
 * short) are compared one byte at a time, exactly: such a byte equals the
 * same byte and nothing else.
 */
extern bool sx_utf8_equal_ci(const char *a, size_t alen, const char *b, size_t blen);

#endif /* STOCKX_UNICODE_FOLD_H */
