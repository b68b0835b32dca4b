#!/usr/bin/env bash
# The isolation specs (test/isolation/specs) under PostgreSQL's own
# isolationtester, on a temporary instance that preloads stockx_enrich.
#
#   test/isolation/run.sh [--outputdir DIR] [spec ...]
#
# Run as a user that may run PostgreSQL (not root), after the extension is
# installed into the server pg_config names ($PG_CONFIG, else pg_config on
# PATH).  It
#   1. builds the test-only module test/isolation/module in DIR/module
#      (never installed: the instance finds it through dynamic_library_path),
#   2. checks that the installed stockx_enrich.so exports the functions the
#      module calls,
#   3. starts the StockX stand-in (test/standin, 127.0.0.1) and points the
#      instance at it, so that no worker a spec starts can reach the network,
#   4. runs pg_isolation_regress --temp-instance on the specs named (default:
#      every specs/*.spec) and exits non-zero when one fails, printing
#      regression.diffs.
# DIR defaults to test/isolation/output: results, regression.diffs, the
# server's log (log/postmaster.log) and the stand-in's (log/standin.log).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

out="$here/output"
specs=()
while [ $# -gt 0 ]; do
	case $1 in
		--outputdir) out=$2; shift 2 ;;
		--outputdir=*) out=${1#--outputdir=}; shift ;;
		-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
		*) specs+=("$(basename "${1%.spec}")"); shift ;;
	esac
done
if [ ${#specs[@]} -eq 0 ]; then
	for f in "$here"/specs/*.spec; do specs+=("$(basename "${f%.spec}")"); done
fi

if [ "$(id -u)" -eq 0 ]; then
	echo "run.sh: run as a user that may run PostgreSQL, not root (e.g. runuser -u postgres -- $0)" >&2
	exit 1
fi

PG_CONFIG=${PG_CONFIG:-pg_config}
PG_CONFIG=$(command -v "$PG_CONFIG" || echo "$PG_CONFIG")
[ -x "$PG_CONFIG" ] || { echo "run.sh: no pg_config at $PG_CONFIG (set PG_CONFIG)" >&2; exit 1; }
bindir=$("$PG_CONFIG" --bindir)
pkglibdir=$("$PG_CONFIG" --pkglibdir)
isolation_dir="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/isolation"
regress="$isolation_dir/pg_isolation_regress"
[ -x "$regress" ] || {
	echo "run.sh: no pg_isolation_regress at $regress (Debian: package postgresql-client-NN)" >&2
	exit 1
}
[ -f "$pkglibdir/stockx_enrich.so" ] || {
	echo "run.sh: stockx_enrich is not installed in $pkglibdir (make install first)" >&2
	exit 1
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/module" "$out/results" "$out/log" "$out/tmp_instance" \
	"$out/regression.diffs" "$out/regression.out"
mkdir -p "$out/module" "$out/log"

# 1. the test module, built out of the tree against the tree's headers
echo "== building the test module (test/isolation/module) in $out/module"
make -s -C "$out/module" -f "$here/module/Makefile" VPATH="$here/module" \
	STOCKX_SRC="$top/src" PG_CONFIG="$PG_CONFIG" with_llvm=no

# 2. the functions it looks up in the installed library.  PostgreSQL 16
# and later build modules with -fvisibility=hidden: there only functions
# marked PGDLLEXPORT are found.
if command -v nm >/dev/null; then
	missing=()
	exported=$(nm -D --defined-only "$pkglibdir/stockx_enrich.so" | awk '{ print $NF }')
	for f in $(sed -n 's/.*find("\([a-z_]*\)").*/\1/p' "$here/module/stockx_isolation.c"); do
		grep -qx "$f" <<<"$exported" || missing+=("$f")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "run.sh: $pkglibdir/stockx_enrich.so does not export ${missing[*]}," >&2
		echo "  which the isolation specs call as the workers do; declare them PGDLLEXPORT" >&2
		echo "  (src/store.h, src/settings.h, src/slots.h, src/events.h)" >&2
		exit 1
	fi
fi

# 3. the stand-in, on a free port of 127.0.0.1
standin=${STOCKX_STANDIN:-$top/test/standin/stockx_standin.py}
port_file="$out/standin.port"
rm -f "$port_file"
python3 "$standin" --port 0 --port-file "$port_file" >"$out/log/standin.log" 2>&1 &
standin_pid=$!
trap 'kill "$standin_pid" 2>/dev/null || true; wait "$standin_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ -s "$port_file" ] && break
	kill -0 "$standin_pid" 2>/dev/null || break
	sleep 0.1
done
[ -s "$port_file" ] || { echo "run.sh: the stand-in did not start:" >&2; cat "$out/log/standin.log" >&2; exit 1; }
port=$(cat "$port_file")

conf="$out/isolation.conf"
{
	cat "$here/isolation.conf"
	echo "# added by run.sh"
	echo "dynamic_library_path = '\$libdir:$out/module'"
	echo "stockx_enrich.api_base_url = 'http://127.0.0.1:$port/v2'"
	echo "stockx_enrich.token_url = 'http://127.0.0.1:$port/oauth/token'"
} >"$conf"

# 4. the specs.  A step waits 300 s by default before isolationtester
# cancels it; none of ours takes more than a second, so a defect that makes
# one wait for ever costs a minute, not five.
export PGISOLATIONTIMEOUT=${PGISOLATIONTIMEOUT:-60}
echo "== isolation specs: ${specs[*]}"
status=0
"$regress" --temp-instance="$out/tmp_instance" --temp-config="$conf" \
	--inputdir="$here" --outputdir="$out" --bindir="$bindir" \
	--encoding=UTF8 --no-locale --dbname=isolation_regression \
	"${specs[@]}" || status=$?
if [ $status -ne 0 ]; then
	cat "$out/regression.diffs" 2>/dev/null || true
	echo "isolation specs FAILED (results and diffs in $out, server log in $out/log/postmaster.log)" >&2
fi
exit $status
