# stockx_enrich: PGXS build.  The version lives in stockx_enrich.control only.

EXTENSION = stockx_enrich
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = stockx_enrich
OBJS = \
	src/limiter.o \
	src/checks.o \
	src/unicode_fold.o \
	src/stockx_json.o \
	src/support.o \
	src/settings.o \
	src/credentials.o \
	src/shmem.o \
	src/slots.o \
	src/shared_limiter.o \
	src/token_cache.o \
	src/http.o \
	src/enrich.o \
	src/extension.o \
	src/events.o \
	src/store.o \
	src/store_claim.o \
	src/store_write.o \
	src/store_runs.o \
	src/quota.o \
	src/worker_tx.o \
	src/worker_token.o \
	src/worker_commit.o \
	src/worker_run.o \
	src/worker.o \
	src/sql_runs.o \
	src/sql_budget.o \
	src/sql_views.o \
	src/sql_oauth.o \
	src/stockx_enrich.o

# every versioned script: the full script of the current version (written
# by tools/full_script.sh), 1.0 and the updates from it
DATA = $(wildcard sql/$(EXTENSION)--*.sql)
PGFILEDESC = "stockx_enrich - StockX catalogue enrichment"

PG_CPPFLAGS = -DSTOCKX_ENRICH_VERSION='"$(EXTVERSION)"' $(shell pkg-config --cflags json-c)
SHLIB_LINK = $(shell curl-config --libs) $(shell pkg-config --libs json-c) -lm

# pg_regress runs against a temporary instance that preloads the library.
REGRESS = install settings arguments enqueue
REGRESS_OPTS = --temp-instance=./tmp_regress --temp-config=$(srcdir)/test/regress.conf --encoding=UTF8 --no-locale

# make installcheck runs the TAP suite too (test/t, against the stand-in)
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
include $(srcdir)/test/isolation/isolation.mk

# after PGXS, whose Makefile.global sets them empty
PROVE_TESTS ?= test/t/*.pl
PROVE_FLAGS += -I $(srcdir)/test/perl

# every object depends on every header of ours: PGXS tracks no header
# dependencies unless the server was configured with --enable-depend
$(OBJS): $(wildcard src/*.h)

override CFLAGS += -Wextra -Wno-unused-parameter -Wno-missing-field-initializers

# Unit tests of the pure core: no PostgreSQL, plain C.
UNIT_CFLAGS = -std=c11 -O1 -g -Wall -Wextra -Isrc $(shell pkg-config --cflags json-c)
UNIT_LIBS = $(shell pkg-config --libs json-c) -lm

test/unit/test_limiter: test/unit/test_limiter.c src/limiter.c src/limiter.h
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/test_limiter.c src/limiter.c $(UNIT_LIBS)

test/unit/test_json: test/unit/test_json.c src/stockx_json.c src/stockx_json.h src/unicode_fold.c
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/test_json.c src/stockx_json.c src/unicode_fold.c $(UNIT_LIBS)

test/unit/test_unicode_fold: test/unit/test_unicode_fold.c src/unicode_fold.c src/unicode_fold.h src/unicode_fold_table.h
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/test_unicode_fold.c src/unicode_fold.c

test/unit/test_checks: test/unit/test_checks.c src/checks.c src/checks.h
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/test_checks.c src/checks.c $(shell curl-config --libs)

unit: test/unit/test_limiter test/unit/test_json test/unit/test_unicode_fold test/unit/test_checks

format:
	clang-format -i src/*.c src/*.h test/unit/*.c test/fuzz/*.c

EXTRA_CLEAN = test/unit/test_limiter test/unit/test_json test/unit/test_unicode_fold test/unit/test_checks tmp_check tmp_regress

.PHONY: unit format
