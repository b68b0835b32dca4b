/*-------------------------------------------------------------------------
 * tap.h
 *	  A tiny TAP (Test Anything Protocol) producer for the unit tests of the
 *	  pure core.
 *
 * Each check prints "ok N - name" or "not ok N - name"; a failure adds a
 * "#" diagnostic line with file:line and, for comparisons, both values.
 * done_testing() prints the plan "1..N" and returns the exit status for
 * main(): 0 when every check passed, 1 otherwise, so
 *
 *		int main(void) { ...; return done_testing(); }
 *
 * works with "prove --exec ''".  Header-only: include it from exactly one
 * translation unit per test program.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_TAP_H
#define STOCKX_TAP_H

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tap_run = 0;
static int tap_failed = 0;

static inline bool
tap_ok(bool pass, const char *name, const char *file, int line)
{
	tap_run++;
	printf("%s %d - %s\n", pass ? "ok" : "not ok", tap_run, name);
	if (!pass)
	{
		tap_failed++;
		printf("#   Failed test '%s'\n#   at %s line %d.\n", name, file, line);
	}
	fflush(stdout);
	return pass;
}

static inline bool
tap_is_int(int64_t got, int64_t want, const char *name, const char *file, int line)
{
	bool pass = tap_ok(got == want, name, file, line);

	if (!pass)
		printf("#          got: %" PRId64 "\n#     expected: %" PRId64 "\n", got, want);
	return pass;
}

static inline bool
tap_is_dbl(double got, double want, double eps, const char *name, const char *file, int line)
{
	bool pass = tap_ok(fabs(got - want) <= eps, name, file, line);

	if (!pass)
		printf("#          got: %.17g\n#     expected: %.17g (+/- %g)\n", got, want, eps);
	return pass;
}

/* NULL-safe: two NULLs are equal, NULL and a string are not. */
static inline bool
tap_is_str(const char *got, const char *want, const char *name, const char *file, int line)
{
	bool same;
	bool pass;

	if (got == NULL || want == NULL)
		same = (got == NULL && want == NULL);
	else
		same = strcmp(got, want) == 0;
	pass = tap_ok(same, name, file, line);
	if (!pass)
	{
		if (got)
			printf("#          got: '%s'\n", got);
		else
			printf("#          got: NULL\n");
		if (want)
			printf("#     expected: '%s'\n", want);
		else
			printf("#     expected: NULL\n");
	}
	return pass;
}

/* A free-form "#" line, printf-style. */
static inline void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_run);
	if (tap_failed > 0)
		printf("# Looks like you failed %d test%s of %d.\n", tap_failed, tap_failed == 1 ? "" : "s",
		       tap_run);
	fflush(stdout);
	return tap_failed > 0 ? 1 : 0;
}

#define ok(cond, name) tap_ok((cond) ? true : false, (name), __FILE__, __LINE__)
#define is_int(got, want, name)                                                                    \
	tap_is_int((int64_t) (got), (int64_t) (want), (name), __FILE__, __LINE__)
#define is_dbl(got, want, eps, name)                                                               \
	tap_is_dbl((double) (got), (double) (want), (eps), (name), __FILE__, __LINE__)
#define is_str(got, want, name) tap_is_str((got), (want), (name), __FILE__, __LINE__)
#define diag(...)               tap_diag(__VA_ARGS__)
#define done_testing()          tap_done()

#endif /* STOCKX_TAP_H */
