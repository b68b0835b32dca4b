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
	src/store_alerts.o \
	src/store_selling.o \
	src/worker_sync.o \
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

# ---- supported majors, documentation, PGXN release ---------------------------

# Which PostgreSQL is supported is said once: test/matrix/versions, a
# "major release" line per tested major.  A server older than its oldest
# major is refused; one it does not list (newer than the newest, or between
# two) builds with a warning.  clean, dist, unit and format need no server.
SUPPORTED_MAJORS := $(shell awk '$$1 ~ /^[0-9]+$$/ { print $$1 }' $(srcdir)/test/matrix/versions 2>/dev/null | sort -n)
PG_MAJOR := $(shell $(PG_CONFIG) --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
ifeq ($(filter-out clean distclean maintainer-clean dist unit format,$(or $(MAKECMDGOALS),all)),)
else ifeq ($(SUPPORTED_MAJORS),)
$(warning test/matrix/versions is missing: the PostgreSQL major is not checked)
else ifeq ($(PG_MAJOR),)
$(error cannot read a PostgreSQL major from "$(PG_CONFIG) --version": set PG_CONFIG to the pg_config of the server to build for)
else ifeq ($(shell test $(PG_MAJOR) -lt $(firstword $(SUPPORTED_MAJORS)) && echo older),older)
$(error PostgreSQL $(PG_MAJOR) ($(PG_CONFIG)) is not supported: stockx_enrich needs PostgreSQL $(firstword $(SUPPORTED_MAJORS)) or later (tested: $(SUPPORTED_MAJORS), see test/matrix/versions). Set PG_CONFIG to the pg_config of a supported server)
else ifeq ($(filter $(PG_MAJOR),$(SUPPORTED_MAJORS)),)
$(warning PostgreSQL $(PG_MAJOR) is not one of the tested majors ($(SUPPORTED_MAJORS), test/matrix/versions): building it anyway, untested)
endif

# Documentation: the README and the SQL reference, installed into a
# directory of their own, $(docdir)/extension/stockx_enrich/ (PGXS puts DOCS
# straight into extension/, where another extension's README.md would
# collide; and pgxs.mk reads DOCS as it is included, so this rule is ours).
DOCS = README.md doc/stockx_enrich.md
docs_dir = $(docdir)/$(docmoduledir)/$(EXTENSION)

install: install-docs
uninstall: uninstall-docs

install-docs:
	$(MKDIR_P) '$(DESTDIR)$(docs_dir)'
	$(INSTALL_DATA) $(addprefix $(srcdir)/, $(DOCS)) '$(DESTDIR)$(docs_dir)/'

uninstall-docs:
	rm -f $(addprefix '$(DESTDIR)$(docs_dir)'/, $(notdir $(DOCS)))
	-rmdir '$(DESTDIR)$(docs_dir)'

# make dist: the PGXN release, $(EXTENSION)-<META.json version>.zip, from
# `git archive` of DIST_REV (default HEAD: what is committed, not the
# working tree).  DIST_ZIP names the file.
DISTVERSION = $(shell perl -MJSON::PP -0777 -ne 'print decode_json($$_)->{version}' $(srcdir)/META.json)
DIST_REV ?= HEAD
DIST_ZIP ?= $(EXTENSION)-$(DISTVERSION).zip

dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(DISTVERSION)/ -o $(DIST_ZIP) $(DIST_REV)

.PHONY: install-docs uninstall-docs dist
