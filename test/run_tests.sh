#!/usr/bin/env bash
# The test command: install dependencies, build and install the extension
# (as root), then run every test as the postgres user in a scratch copy of
# the tree: unit tests of the pure core, pg_regress, and the TAP
# integration tests against the bundled StockX stand-in.
#
#   sudo test/run_tests.sh            # everything
#   sudo test/run_tests.sh t/010_enrich.pl   # one TAP file (plus unit and regress)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: it installs packages and the extension, then drops to postgres" >&2
	exit 1
fi

test/install_deps.sh
export PATH="/usr/lib/postgresql/15/bin:$PATH"
pgxs=$(cd "$(dirname "$(pg_config --pgxs)")/../.." && pwd)

make -s clean
make -s
make -s install

work=$(mktemp -d /tmp/stockx_enrich_test.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$top/." "$work/"
chown -R postgres: "$work"
chmod 755 "$work"

as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }

status=0
echo "== unit tests (pure core)"
as_pg make -s -C "$work" unit
as_pg prove --exec '' "$work/test/unit/test_limiter" "$work/test/unit/test_json" || status=1

echo "== pg_regress"
if ! as_pg make -s -C "$work" installcheck; then
	cat "$work/regression.diffs" 2>/dev/null || true
	status=1
fi

echo "== TAP integration tests"
tap_tests=("$@")
[ ${#tap_tests[@]} -gt 0 ] || tap_tests=(--ext .pl t/)
if ! (cd "$work/test" && as_pg env TESTDIR="$work/test" \
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
