#!/usr/bin/env bash
# The test command: install dependencies, build and install the extension
# (as root), then run every test as the postgres user in a scratch copy of
# the tree: unit tests of the pure core, pg_regress, and the TAP
# integration tests against the bundled StockX stand-in; the unit tests and
# the fuzz harness also run under AddressSanitizer and UBSan (test/sanitize.sh).
#
#   sudo test/run_tests.sh            # everything
#   sudo test/run_tests.sh t/010_enrich.pl   # one TAP file (plus unit and regress)
#   sudo test/run_tests.sh --installed [t/...]   # the same against the installed
#        Debian package (test/package.sh --install): nothing is built or
#        installed from the tree; fails unless a package installed the
#        extension and its files are as the package shipped them
#
# SANITIZE=0 leaves out the sanitizer run (the autopkgtest does: it tests
# the tree's pure core, not the package).
# PostgreSQL is found through pg_config: $PG_CONFIG when set, else the
# pg_config of the server test/install_deps.sh installs for this release.
# KEEP_TEST_DIR=1 keeps the scratch copy (logs, regression.diffs) and prints
# where it is.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

installed=0
if [ "${1:-}" = --installed ]; then
	installed=1
	shift
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: it installs packages and the extension, then drops to postgres" >&2
	exit 1
fi

# Nothing may depend on the machine's locale: the test instances are created
# UTF8 without a locale (Makefile REGRESS_OPTS, StockxTest.pm), and psql and
# Perl get a UTF-8 locale that every Debian has when the caller has none.
[ "$(locale charmap 2>/dev/null)" = UTF-8 ] || export LC_ALL=C.UTF-8

test/install_deps.sh
PG_CONFIG=$(test/install_deps.sh --pg-config)
PG_CONFIG=$(command -v "$PG_CONFIG" || echo "$PG_CONFIG")
[ -x "$PG_CONFIG" ] || { echo "no pg_config at $PG_CONFIG" >&2; exit 1; }
export PG_CONFIG
bindir=$("$PG_CONFIG" --bindir)
export PATH="$bindir:$PATH"
pgxs=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)

if [ $installed -eq 0 ]; then
	make -s clean
	make -s
	make -s install
else
	# the package's files, untouched since it was installed (a `make
	# install` over them shows here as changed files)
	so="$("$PG_CONFIG" --pkglibdir)/stockx_enrich.so"
	pkg=$(dpkg-query -S "$so" 2>/dev/null | sed -n '1s/: .*//p')
	if [ -z "$pkg" ]; then
		echo "--installed: no package installed $so (build and install one with test/package.sh --install)" >&2
		exit 1
	fi
	changed=$(dpkg --verify "$pkg" 2>&1 | grep -E '\.(so|control|sql)$' || true)
	if [ -n "$changed" ]; then
		printf '%s\n' "--installed: files of $pkg differ from the package:" "$changed" >&2
		exit 1
	fi
	echo "== testing the installed package $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
fi

work=$(mktemp -d /tmp/stockx_enrich_test.XXXXXX)
if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then
	trap 'echo "test files kept in $work"' EXIT
else
	trap 'rm -rf "$work"' EXIT
fi
cp -a "$top/." "$work/"
chown -R postgres: "$work"
chmod 755 "$work"
# the postgres user may not be able to enter the checkout (e.g. /root/project)
cd "$work"

as_pg() { runuser -u postgres -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" "$@"; }

status=0
echo "== layers (includes go down, no circle: test/check_layers.py)"
python3 test/check_layers.py || status=1

echo "== unit tests (pure core)"
as_pg make -s -C "$work" unit
unit_tests=()
for c in "$work"/test/unit/test_*.c; do unit_tests+=("${c%.c}"); done
as_pg prove --exec '' "${unit_tests[@]}" || status=1

echo "== sanitizers (the unit tests and the fuzz harness under ASan and UBSan)"
# as root: it may install clang's sanitizer runtime; it builds in a scratch
# directory of its own and needs no database
if [ "${SANITIZE:-1}" = 0 ]; then
	echo "(left out: SANITIZE=0)"
else
	test/sanitize.sh || status=1
fi

echo "== pg_regress"
# TAP_TESTS= : pg_regress alone here; the TAP suite runs below, with its
# file arguments and its logs
if ! as_pg make -s -C "$work" installcheck TAP_TESTS=; then
	cat "$work/regression.diffs" 2>/dev/null || true
	status=1
fi

echo "== isolation specs (test/isolation/run.sh: claims, leases, starts, history upkeep)"
as_pg test/isolation/run.sh || status=1

echo "== TAP integration tests"
tap_tests=("$@")
[ ${#tap_tests[@]} -gt 0 ] || tap_tests=(--ext .pl t/)
# TESTDATADIR and TESTLOGDIR are where PostgreSQL 16 and later put the test
# clusters and logs (15 derives them from TESTDIR): absolute paths, as PGXS's
# prove_installcheck gives them, so every version uses the same place.
if ! (cd "$work/test" && as_pg env TESTDIR="$work/test" \
		TESTDATADIR="$work/test/tmp_check" TESTLOGDIR="$work/test/tmp_check/log" \
		PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
		STOCKX_STANDIN="$work/test/standin/stockx_standin.py" \
		prove -I "$pgxs/src/test/perl" -I "$work/test/perl" "${tap_tests[@]}"); then
	status=1
	for f in "$work"/test/tmp_check/log/*; do
		[ -f "$f" ] && { echo "---- $f (last 60 lines)"; tail -n 60 "$f"; }
	done
fi

if [ $status -eq 0 ]; then echo "ALL TESTS PASSED"; else echo "SOME TESTS FAILED"; fi
exit $status
