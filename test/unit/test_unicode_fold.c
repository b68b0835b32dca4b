/*-------------------------------------------------------------------------
 * test_unicode_fold.c
 *	  Unit tests of the case-insensitive UTF-8 comparison
 *	  (src/unicode_fold.c) and of its generated table.
 *
 * Every comparison goes through eq(), which copies both strings into heap
 * blocks of exactly their length (so AddressSanitizer flags any read past
 * a length) and compares them in both orders (equality must be symmetric).
 * The exhaustive part checks the folding of every code point against the
 * plain list of pairs the generator emits beside its runs, and, when
 * /usr/share/unicode/CaseFolding.txt of the same Unicode version is there
 * (or the file named by SX_CASEFOLDING_TXT), that list against the file.
 * Output is TAP.
 *-------------------------------------------------------------------------
 */
#include "unicode_fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SX_FOLD_WANT_RANGES
#define SX_FOLD_WANT_PAIRS
#include "unicode_fold_table.h"

#include "tap.h"

#define MAX_CP           UINT32_C(0x10FFFF)
#define N_CODES          (MAX_CP + 1)
#define IS_SURROGATE(cp) ((cp) >= 0xD800 && (cp) <= 0xDFFF)

/* Calls of eq() whose two orders disagreed. */
static int asymmetric = 0;

static char *
dup_exact(const char *s, size_t len)
{
	char *p;

	if (len == 0)
		return NULL;
	p = malloc(len);
	if (p == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	memcpy(p, s, len);
	return p;
}

static bool
eq(const char *a, size_t alen, const char *b, size_t blen)
{
	char *ca = dup_exact(a, alen);
	char *cb = dup_exact(b, blen);
	bool ab = sx_utf8_equal_ci(ca, alen, cb, blen);
	bool ba = sx_utf8_equal_ci(cb, blen, ca, alen);

	if (ab != ba)
	{
		asymmetric++;
		diag("asymmetric: %d one way, %d the other", (int) ab, (int) ba);
	}
	free(ca);
	free(cb);
	return ab;
}

/* Look-alikes of ASCII or Greek letters, spelled as bytes to stay exact. */
#define KELVIN   "\xE2\x84\xAA" /* U+212A KELVIN SIGN */
#define ANGSTROM "\xE2\x84\xAB" /* U+212B ANGSTROM SIGN */
#define OHM      "\xE2\x84\xA6" /* U+2126 OHM SIGN */
#define MICRO    "\xC2\xB5"     /* U+00B5 MICRO SIGN */
#define LONG_S   "\xC5\xBF"     /* U+017F LATIN SMALL LETTER LONG S */

/* string literals, lengths from sizeof (so embedded NULs count) */
#define EQ(a, b) eq((a), sizeof(a) - 1, (b), sizeof(b) - 1)

/* UTF-8 encoding of a scalar value; returns its length */
static size_t
enc(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *) out;

	if (cp < 0x80)
	{
		o[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		o[0] = (unsigned char) (0xC0 | (cp >> 6));
		o[1] = (unsigned char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		o[0] = (unsigned char) (0xE0 | (cp >> 12));
		o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char) (0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char) (0xF0 | (cp >> 18));
	o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char) (0x80 | (cp & 0x3F));
	return 4;
}

/* Are the single code points x and y equal through the UTF-8 API? */
static bool
eq_cp(uint32_t x, uint32_t y)
{
	char bx[4];
	char by[4];
	size_t lx = enc(x, bx);
	size_t ly = enc(y, by);

	return eq(bx, lx, by, ly);
}

/* Deterministic xorshift64* generator: the tests must be reproducible. */
static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static uint32_t
rng_below(uint32_t n)
{
	return (uint32_t) (rng_next() % n);
}

static void
test_ascii(void)
{
	ok(EQ("CU9225-001", "cu9225-001"), "ascii: SKU equal in another case");
	ok(EQ("Dd1391-100", "dD1391-100"), "ascii: mixed case");
	ok(!EQ("CU9225-001", "CU9225-002"), "ascii: one digit differs");
	ok(!EQ("abc", "abd"), "ascii: last letter differs");
	ok(!EQ("@", "`"), "ascii: '@' and '`' differ (not letters, 32 apart)");
	ok(!EQ("[", "{"), "ascii: '[' and '{' differ");
	ok(!EQ("^", "~"), "ascii: '^' and '~' differ");
	ok(!EQ("1", "\x11"), "ascii: digit and control byte differ");
	ok(EQ("a\0B", "A\0b"), "ascii: embedded NUL compared as a byte");
	ok(!EQ("a\0b", "a\0c"), "ascii: bytes after an embedded NUL count");
	ok(EQ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"), "ascii: whole alphabet");
}

static void
test_latin(void)
{
	ok(EQ("É", "é"), "latin-1: É = é");
	ok(EQ("CAFÉ", "café"), "latin-1: CAFÉ = café");
	ok(EQ("ÀÖØÞ", "àöøþ"), "latin-1: run edges À Ö Ø Þ");
	ok(!EQ("×", "÷"), "latin-1: × and ÷ differ (sign, not letter)");
	ok(!EQ("É", "e"), "latin-1: É is not e");
	ok(!EQ("É", "E"), "latin-1: É is not E");
	ok(EQ("ÿ", "Ÿ"), "latin-1/ext-A: ÿ = Ÿ (U+0178)");
	ok(EQ(MICRO, "μ"), "latin-1: micro sign = Greek mu (U+03BC)");
	ok(EQ(MICRO, "\xCE\x9C"), "latin-1: micro sign = Greek capital mu (U+039C)");
	ok(EQ("ĀĂĄĆŁŽ", "āăąćłž"), "latin ext-A: alternating pairs");
	ok(!EQ("ā", "Ă"), "latin ext-A: ā is not Ă (neighbour pair)");
	ok(EQ(LONG_S, "s") && EQ(LONG_S, "S"), "latin ext-A: long s = s = S");
	ok(EQ("Ǆ", "ǅ") && EQ("ǅ", "ǆ") && EQ("Ǆ", "ǆ"), "latin ext-B: DŽ titlecase trio");
	ok(EQ("Ⱥ", "ⱥ"), "latin ext-B/C: Ⱥ (2 bytes) = ⱥ (3 bytes)");
	ok(EQ("ẞ", "ß"), "latin ext additional: capital sharp s = ß (status S)");
	ok(!EQ("ß", "ss") && !EQ("ß", "SS") && !EQ("ẞ", "ss"), "ß is not ss (full folding only)");
	ok(EQ("Ꟁ", "ꟁ"), "latin ext-D: Old Polish O (Unicode 14)");
}

static void
test_dotted_i(void)
{
	ok(EQ("I", "i"), "I = i");
	ok(!EQ("İ", "i"), "İ (U+0130) is not i: no simple C/S folding");
	ok(!EQ("İ", "I"), "İ is not I");
	ok(!EQ("İ", "i\xCC\x87"), "İ is not i + combining dot (full folding only)");
	ok(!EQ("ı", "i") && !EQ("ı", "I"), "dotless ı is neither i nor I");
	ok(EQ("İ", "İ") && EQ("ı", "ı"), "İ and ı equal themselves");
	ok(!EQ("İ", "ı"), "İ is not ı");
	is_int(sx_unicode_simple_fold(0x130), 0x130, "fold(U+0130) is itself");
	is_int(sx_unicode_simple_fold(0x131), 0x131, "fold(U+0131) is itself");
}

static void
test_greek(void)
{
	ok(EQ("Σ", "σ") && EQ("Σ", "ς") && EQ("σ", "ς"), "greek: Σ = σ = ς");
	ok(EQ("ΟΔΥΣΣΕΥΣ", "οδυσσευς"), "greek: word with final sigma");
	ok(EQ("ΟΔΥΣΣΕΥΣ", "οδυςσευσ"), "greek: sigma forms anywhere");
	ok(EQ("Ά", "ά"), "greek: Ά = ά");
	ok(EQ("ϐ", "β") && EQ("ϐ", "Β"), "greek: beta symbol = β = Β");
	ok(EQ(OHM, "ω") && EQ(OHM, "\xCE\xA9"), "greek: ohm sign = ω = Ω (U+03A9)");
	ok(EQ("ͅ", "ι"), "greek: ypogegrammeni folds to ι");
	ok(!EQ("σ", "τ"), "greek: σ is not τ");
}

static void
test_cyrillic_armenian(void)
{
	ok(EQ("МОСКВА", "москва"), "cyrillic: МОСКВА = москва");
	ok(EQ("Ё", "ё") && EQ("Ѕ", "ѕ"), "cyrillic: Ё = ё, Ѕ = ѕ (+80 block)");
	ok(EQ("ѢѤ", "ѣѥ"), "cyrillic: historic letters, alternating pairs");
	ok(EQ("ᲀ", "в"), "cyrillic: rounded ve (U+1C80) folds to в");
	ok(!EQ("Д", "д\xCC\x81"), "cyrillic: length differs with a combining mark");
	ok(EQ("ՀԱՅԱՍՏԱՆ", "հայաստան"), "armenian: ՀԱՅԱՍՏԱՆ = հայաստան");
	ok(!EQ("Ա", "բ"), "armenian: different letters differ");
}

static void
test_astral(void)
{
	ok(EQ("Ꭰ", "ꭰ"), "cherokee: U+13A0 = U+AB70 (folds to capital)");
	ok(EQ("Ᏸ", "ᏸ"), "cherokee: U+13F0 = U+13F8");
	is_int(sx_unicode_simple_fold(0xAB70), 0x13A0, "fold(U+AB70) = U+13A0");
	ok(EQ("𐐀", "𐐨"), "deseret: U+10400 = U+10428 (4 bytes)");
	ok(EQ("𐐧", "𐑏"), "deseret: last letter of the run");
	ok(!EQ("𐐀", "𐐩"), "deseret: neighbour letters differ");
	ok(EQ("x𐐀Y", "X𐐨y"), "deseret between ASCII letters");
	ok(EQ("𐒰", "𐓘"), "osage: U+104B0 = U+104D8");
	ok(EQ("𞤀", "𞤢"), "adlam: U+1E900 = U+1E922");
	ok(EQ("😀", "😀") && !EQ("😀", "😁"), "emoji: equal to itself only");
}

static void
test_signs(void)
{
	ok(EQ(KELVIN, "k") && EQ(KELVIN, "K"), "Kelvin sign = k = K");
	ok(EQ("5" KELVIN, "5k"), "Kelvin sign inside a string (3 bytes vs 1)");
	ok(!EQ(KELVIN, "\xE2\x84\xAB"), "Kelvin sign is not the Angstrom sign");
	ok(EQ(ANGSTROM, "å") && EQ(ANGSTROM, "Å"), "Angstrom sign = å = Å");
	is_int(sx_unicode_simple_fold(0x212A), 'k', "fold(U+212A) = 'k'");
	is_int(sx_unicode_simple_fold('K'), 'k', "fold('K') = 'k'");
}

static void
test_lengths(void)
{
	ok(!EQ("abc", "abcd"), "a prefix is not equal");
	ok(!EQ("abcd", "abc"), "a longer string is not equal");
	ok(!EQ("é", "e"), "é (2 bytes) is not e");
	ok(!EQ("éa", "é"), "extra letter after a multibyte one");
	ok(EQ(LONG_S KELVIN, "SK"), "same letters, 5 bytes vs 2");
	ok(eq("ABCDEF", 3, "abcxyz", 3), "only the given lengths count");
	ok(!eq("ABCDEF", 4, "abcxyz", 3), "lengths 4 and 3");
}

static void
test_empty(void)
{
	ok(sx_utf8_equal_ci(NULL, 0, NULL, 0), "NULL/0 equals NULL/0");
	ok(sx_utf8_equal_ci("", 0, NULL, 0), "empty equals NULL/0");
	ok(EQ("", ""), "empty equals empty");
	ok(!EQ("", "a") && !EQ("a", ""), "empty is not a letter");
	ok(!sx_utf8_equal_ci(NULL, 0, "x", 1), "NULL/0 is not \"x\"");
	ok(!EQ("", "\x80"), "empty is not a stray byte");
}

static void
test_invalid(void)
{
	ok(EQ("\xFF", "\xFF"), "invalid: 0xFF equals itself");
	ok(!EQ("\xFF", "\xFE"), "invalid: 0xFF is not 0xFE");
	ok(EQ("\x80", "\x80") && !EQ("\x80", "\x81"), "invalid: stray continuation bytes");
	ok(!EQ("\xC9", "É"), "invalid: byte 0xC9 is not É (U+00C9)");
	ok(!EQ("\xC9", "\xE9"), "invalid: Latin-1 bytes for É and é are not folded");
	ok(!EQ("\xC1\x81", "A") && !EQ("\xC1\x81", "a"), "overlong 'A' is not A or a");
	ok(EQ("\xC1\x81", "\xC1\x81"), "overlong 'A' equals itself");
	ok(!EQ("\xC1\x81", "\xC1\xA1"), "overlong 'A' is not overlong 'a' (bytes)");
	ok(!EQ("\xE0\x81\x81", "\xC1\x81"), "two overlong forms differ");
	ok(!EQ("\xE0\x80\xAF", "/"), "3-byte overlong '/' is not '/'");
	ok(!EQ("\xF0\x80\x80\xAF", "/"), "4-byte overlong '/' is not '/'");
	ok(EQ("\xED\xA0\x80", "\xED\xA0\x80"), "surrogate U+D800 equals its bytes");
	ok(!EQ("\xED\xA0\x80", "\xED\xB0\x80"), "U+D800 is not U+DC00");
	ok(!EQ("\xED\xA0\x80\xED\xB0\x80", "😀"), "CESU-8 pair is not the 4-byte form");
	ok(EQ("\xF4\x90\x80\x80", "\xF4\x90\x80\x80"), "above U+10FFFF: equal bytes");
	ok(!EQ("\xF4\x90\x80\x80", "\xF4\x90\x80\x81"), "above U+10FFFF: other bytes");
	ok(!EQ("\xF4\x90\x82\x80", "\x80") && !EQ("\xF4\x90\x83\xBF", "\xFF"),
	   "above U+10FFFF: not taken for a single stray byte");
	ok(EQ("\xF8\x88\x80\x80\x80", "\xF8\x88\x80\x80\x80"), "5-byte form: equal bytes");
	ok(EQ("\x80"
	      "É",
	      "\x80"
	      "é"),
	   "stray byte then É = stray byte then é");
	ok(EQ("\xC3"
	      "É",
	      "\xC3"
	      "é"),
	   "lead byte then É = lead byte then é");
	ok(EQ("É\xFF"
	      "A",
	      "é\xFF"
	      "a"),
	   "valid, invalid, valid: letters still fold");
	ok(!EQ("É\xFF"
	       "A",
	       "é\xFE"
	       "a"),
	   "valid, invalid, valid: invalid bytes differ");
	ok(!EQ("\xC3", "\xC3\xA9"), "lone lead byte is not é");
}

/* The byte after the length completes a sequence: it must not be read. */
static void
test_truncated(void)
{
	ok(eq("\xC3\x89", 1, "\xC3\x8A", 1), "É and Ê cut to 1 byte: both the byte C3");
	ok(!eq("\xC3\x89", 1, "\xC3\x89", 2), "É cut to 1 byte is not É");
	ok(!eq("\xC3\x89", 1, "\xC3\xA9", 2), "É cut to 1 byte is not é");
	ok(eq("\xE2\x84\xAA", 2, "\xE2\x84\xAB", 2), "Kelvin and Angstrom cut to 2 bytes");
	ok(!eq("\xE2\x84\xAA", 2, "k", 1), "Kelvin cut to 2 bytes is not k");
	ok(eq("\xF0\x90\x90\x80", 3, "\xF0\x90\x90\x81", 3), "two Deseret letters cut to 3 bytes");
	ok(!eq("\xF0\x90\x90\x80", 3, "\xF0\x90\x90\xA8", 4), "Deseret cut to 3 is not its folding");
	ok(eq("A\xF0\x90\x90\x80", 4, "a\xF0\x90\x90\x81", 4), "letter then a cut sequence");
	ok(!eq("\xF0\x90\x90", 3, "\xF0\x90\x90\x80", 4), "cut 4-byte sequence vs complete one");
	ok(eq("\xF0\x90\x90"
	      "A",
	      4,
	      "\xF0\x90\x90"
	      "a",
	      4),
	   "cut sequence then a letter folds");
}

/* Runs: sorted, disjoint, stride 1 or 2, count >= 1. */
static void
test_runs_shape(void)
{
	int i;
	int bad = 0;

	for (i = 0; i < SX_FOLD_RANGE_COUNT; i++)
	{
		const SxFoldRange *r = &sx_fold_ranges[i];
		uint32_t last = r->first + (uint32_t) (r->count - 1) * r->stride;

		if (r->count < 1 || (r->stride != 1 && r->stride != 2) || last > MAX_CP ||
		    (i + 1 < SX_FOLD_RANGE_COUNT && last >= sx_fold_ranges[i + 1].first))
		{
			if (bad++ < 5)
				diag("bad run %d: first %04X count %u stride %u", i, (unsigned) r->first,
				     (unsigned) r->count, (unsigned) r->stride);
		}
	}
	is_int(bad, 0, "runs sorted, disjoint, stride 1 or 2");
	ok(SX_FOLD_RANGE_COUNT * 4 < SX_FOLD_PAIR_COUNT, "runs are at most a quarter of the pairs");
	diag("Unicode %s: %d pairs in %d runs", SX_UNICODE_VERSION, SX_FOLD_PAIR_COUNT,
	     SX_FOLD_RANGE_COUNT);
}

/* fold[cp] for every code point, from the plain list of pairs */
static uint32_t *
expected_folds(void)
{
	uint32_t *fold = malloc(N_CODES * sizeof(uint32_t));
	uint32_t cp;
	int i;

	if (fold == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	for (cp = 0; cp < N_CODES; cp++)
		fold[cp] = cp;
	for (i = 0; i < SX_FOLD_PAIR_COUNT; i++)
		fold[sx_fold_pairs[i][0]] = sx_fold_pairs[i][1];
	return fold;
}

static void
test_exhaustive(const uint32_t *fold)
{
	uint32_t cp;
	int i;
	long bad_fold = 0;
	long bad_self = 0;
	long bad_target = 0;
	long bad_next = 0;
	long bad_pair = 0;
	long bad_class = 0;
	int sorted = 1;

	for (i = 1; i < SX_FOLD_PAIR_COUNT; i++)
		if (sx_fold_pairs[i - 1][0] >= sx_fold_pairs[i][0])
			sorted = 0;
	ok(sorted, "pairs sorted by code point, no duplicate");

	for (cp = 0; cp < N_CODES; cp++)
	{
		if (sx_unicode_simple_fold(cp) != fold[cp] && bad_fold++ < 5)
			diag("fold(%04X) = %04X, list says %04X", (unsigned) cp,
			     (unsigned) sx_unicode_simple_fold(cp), (unsigned) fold[cp]);
	}
	is_int(bad_fold, 0, "sx_unicode_simple_fold agrees with the pair list on all code points");
	is_int(sx_unicode_simple_fold(0x110000), 0x110000, "fold(0x110000) is itself");
	is_int(sx_unicode_simple_fold(UINT32_MAX), UINT32_MAX, "fold(UINT32_MAX) is itself");

	for (cp = 0; cp < N_CODES; cp++)
	{
		uint32_t f = fold[cp];

		if (IS_SURROGATE(cp))
			continue;
		if (!eq_cp(cp, cp) && bad_self++ < 5)
			diag("U+%04X not equal to itself", (unsigned) cp);
		if (!eq_cp(cp, f) && bad_target++ < 5)
			diag("U+%04X not equal to its folding U+%04X", (unsigned) cp, (unsigned) f);
		if (cp < MAX_CP && !IS_SURROGATE(cp + 1) &&
		    eq_cp(cp, cp + 1) != (fold[cp] == fold[cp + 1]) && bad_next++ < 5)
			diag("U+%04X vs U+%04X wrong", (unsigned) cp, (unsigned) cp + 1);
		if (f < MAX_CP && !IS_SURROGATE(f + 1) && eq_cp(cp, f + 1) != (fold[f + 1] == f) &&
		    bad_next++ < 5)
			diag("U+%04X vs U+%04X wrong", (unsigned) cp, (unsigned) f + 1);
	}
	is_int(bad_self, 0, "every scalar value equals itself");
	is_int(bad_target, 0, "every scalar value equals its folding");
	is_int(bad_next, 0, "neighbours equal exactly when their foldings are");

	for (i = 0; i < SX_FOLD_PAIR_COUNT; i++)
	{
		char a[16];
		char b[16];
		size_t la = 0;
		size_t lb = 0;

		/* "x" + code point + "Y" against "X" + folding + "y" */
		a[la++] = 'x';
		la += enc(sx_fold_pairs[i][0], a + la);
		a[la++] = 'Y';
		b[lb++] = 'X';
		lb += enc(sx_fold_pairs[i][1], b + lb);
		b[lb++] = 'y';
		if (!eq(a, la, b, lb) && bad_pair++ < 5)
			diag("pair %04X %04X not equal", (unsigned) sx_fold_pairs[i][0],
			     (unsigned) sx_fold_pairs[i][1]);
	}
	is_int(bad_pair, 0, "every pair equal between ASCII letters of other cases");

	/* code points sharing a folding are all equal to each other */
	for (i = 0; i < SX_FOLD_PAIR_COUNT; i++)
	{
		int j;

		for (j = i + 1; j < SX_FOLD_PAIR_COUNT; j++)
		{
			bool same = sx_fold_pairs[i][1] == sx_fold_pairs[j][1];

			if (eq_cp(sx_fold_pairs[i][0], sx_fold_pairs[j][0]) != same && bad_class++ < 5)
				diag("U+%04X vs U+%04X wrong", (unsigned) sx_fold_pairs[i][0],
				     (unsigned) sx_fold_pairs[j][0]);
		}
	}
	is_int(bad_class, 0, "any two folded code points equal exactly when their foldings are");
}

/*
 * CaseFolding.txt itself, when the one installed is of the table's version:
 * its C and S lines must be exactly the pair list.
 */
static void
test_against_file(void)
{
	const char *path = getenv("SX_CASEFOLDING_TXT");
	FILE *f;
	char line[512];
	char version[64] = "";
	int n = 0;
	int bad = 0;

	if (path == NULL || path[0] == '\0')
		path = "/usr/share/unicode/CaseFolding.txt";
	f = fopen(path, "r");
	if (f == NULL)
	{
		diag("%s not readable: table not checked against it", path);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char *p;
		unsigned long code;
		unsigned long target;
		char status;

		if (version[0] == '\0' && sscanf(line, "# CaseFolding-%63[0-9.]", version) == 1)
		{
			size_t vl = strlen(version);

			if (vl > 0 && version[vl - 1] == '.')
				version[vl - 1] = '\0';
			continue;
		}
		if (line[0] == '#' || line[0] == '\n')
			continue;
		code = strtoul(line, &p, 16);
		if (p == line || *p != ';')
			continue;
		p++;
		while (*p == ' ')
			p++;
		status = *p;
		if (status != 'C' && status != 'S')
			continue;
		p++;
		if (*p != ';')
			continue;
		target = strtoul(p + 1, NULL, 16);
		if (n < SX_FOLD_PAIR_COUNT &&
		    (sx_fold_pairs[n][0] != code || sx_fold_pairs[n][1] != target) && bad++ < 5)
			diag("line %lX; %c; %lX vs pair %04X %04X", code, status, target,
			     (unsigned) sx_fold_pairs[n][0], (unsigned) sx_fold_pairs[n][1]);
		n++;
	}
	fclose(f);
	if (strcmp(version, SX_UNICODE_VERSION) != 0)
	{
		diag("%s is Unicode '%s', the table %s: not compared", path, version, SX_UNICODE_VERSION);
		return;
	}
	is_int(n, SX_FOLD_PAIR_COUNT, "CaseFolding.txt has as many C and S lines as pairs");
	is_int(bad, 0, "CaseFolding.txt C and S lines are the pairs, in order");
}

/* A fragment of a random string: bytes, and the code point if valid. */
typedef struct Frag
{
	char bytes[4];
	size_t len;
	bool valid;
	uint32_t cp;
} Frag;

/* code points with interesting foldings, and plain ones */
static const uint32_t sample_cps[] = { 'A',     'a',     'K',     'k',     'S',    's',     'I',
	                                   'i',     '0',     '-',     '/',     ' ',    0xC9,    0xE9,
	                                   0xDF,    0xFF,    0x178,   0x17F,   0x130,  0x131,   0x1C4,
	                                   0x1C5,   0x1C6,   0x3A3,   0x3C2,   0x3C3,  0x3D0,   0x3B2,
	                                   0x392,   0x401,   0x451,   0x531,   0x561,  0x13A0,  0xAB70,
	                                   0x1E9E,  0x2126,  0x212A,  0x212B,  0xE5,   0xC5,    0x10400,
	                                   0x10428, 0x1E900, 0x1E922, 0x1F600, 0xFFFD, 0x10FFFF };

#define N_SAMPLES ((uint32_t) (sizeof(sample_cps) / sizeof(sample_cps[0])))

static Frag
random_frag(void)
{
	Frag fr;
	uint32_t kind = rng_below(10);

	memset(&fr, 0, sizeof(fr));
	if (kind < 6)
	{
		fr.valid = true;
		fr.cp = sample_cps[rng_below(N_SAMPLES)];
		fr.len = enc(fr.cp, fr.bytes);
	}
	else if (kind < 8)
	{
		/* any byte from 0x80 up: stray, lead, or never valid */
		fr.bytes[0] = (char) (0x80 + rng_below(0x80));
		fr.len = 1;
	}
	else
	{
		/* a multibyte sample cut short */
		char full[4];
		size_t n;

		do
			n = enc(sample_cps[rng_below(N_SAMPLES)], full);
		while (n < 2);
		fr.len = 1 + rng_below((uint32_t) n - 1);
		memcpy(fr.bytes, full, fr.len);
	}
	return fr;
}

/* another code point with the same folding as cp (maybe cp itself) */
static uint32_t
same_class(const uint32_t *fold, uint32_t cp)
{
	uint32_t members[8];
	int n = 0;
	int i;

	members[n++] = fold[cp];
	for (i = 0; i < SX_FOLD_PAIR_COUNT && n < 8; i++)
		if (sx_fold_pairs[i][1] == fold[cp])
			members[n++] = sx_fold_pairs[i][0];
	return members[rng_below((uint32_t) n)];
}

/*
 * Random strings of valid letters, stray bytes and cut sequences.  Swapping
 * a valid code point for another of its class keeps the strings equal (a
 * valid sequence starts with a non-continuation byte, so the bytes before
 * it tokenize the same); swapping it for one of another class, or adding a
 * letter, makes them differ.
 */
static void
test_random(const uint32_t *fold)
{
	int round;
	int bad_same = 0;
	int bad_diff = 0;
	int bad_longer = 0;

	for (round = 0; round < 20000; round++)
	{
		Frag frags[24];
		int nfrag = (int) rng_below(24) + 1;
		char a[96];
		char b[100];
		size_t la = 0;
		size_t lb = 0;
		int i;
		int changed = -1;

		for (i = 0; i < nfrag; i++)
			frags[i] = random_frag();
		/* pick a valid fragment to change in b, if any */
		for (i = 0; i < nfrag; i++)
			if (frags[i].valid && rng_below(3) == 0)
				changed = i;

		for (i = 0; i < nfrag; i++)
		{
			memcpy(a + la, frags[i].bytes, frags[i].len);
			la += frags[i].len;
			if (frags[i].valid)
				lb += enc(same_class(fold, frags[i].cp), b + lb);
			else
			{
				memcpy(b + lb, frags[i].bytes, frags[i].len);
				lb += frags[i].len;
			}
		}
		if (!eq(a, la, b, lb) && bad_same++ < 5)
			diag("round %d: class swaps made the strings differ", round);

		/* append a letter to b */
		b[lb] = 'q';
		if (eq(a, la, b, lb + 1) && bad_longer++ < 5)
			diag("round %d: equal after appending a letter", round);

		if (changed >= 0)
		{
			uint32_t other;

			lb = 0;
			do
				other = sample_cps[rng_below(N_SAMPLES)];
			while (fold[other] == fold[frags[changed].cp]);
			for (i = 0; i < nfrag; i++)
			{
				if (i == changed)
					lb += enc(other, b + lb);
				else
				{
					memcpy(b + lb, frags[i].bytes, frags[i].len);
					lb += frags[i].len;
				}
			}
			if (eq(a, la, b, lb) && bad_diff++ < 5)
				diag("round %d: equal although a letter changed class", round);
		}
	}
	is_int(bad_same, 0, "random strings: equal after swapping letters within their class");
	is_int(bad_diff, 0, "random strings: differ after changing one letter's class");
	is_int(bad_longer, 0, "random strings: differ after appending a letter");
}

int
main(void)
{
	uint32_t *fold;

	test_ascii();
	test_latin();
	test_dotted_i();
	test_greek();
	test_cyrillic_armenian();
	test_astral();
	test_signs();
	test_lengths();
	test_empty();
	test_invalid();
	test_truncated();
	test_runs_shape();

	fold = expected_folds();
	test_exhaustive(fold);
	test_against_file();
	test_random(fold);
	free(fold);

	is_int(asymmetric, 0, "every comparison gave the same answer both ways");
	return done_testing();
}
