#!/usr/bin/env bash
# Run the memory/throughput benchmark against the stand-in and print its
# figures.  As root, after test/run_tests.sh (or make install) has installed
# the extension.  BENCH_SKUS and BENCH_RATE tune it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
# the server is the one pg_config names (PG_CONFIG, or the first on PATH)
pg_config=${PG_CONFIG:-$(command -v pg_config)}
export PATH="$("$pg_config" --bindir):$PATH"
pgxs=$(cd "$(dirname "$("$pg_config" --pgxs)")/../.." && pwd)
work=$(mktemp -d /tmp/stockx_enrich_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$top/." "$work/"
chown -R postgres: "$work"
cd "$work/test"
runuser -u postgres -- env PATH="$PATH" TESTDIR="$work/test" \
	PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	BENCH_SKUS="${BENCH_SKUS:-3000}" BENCH_RATE="${BENCH_RATE:-300}" \
	perl -I "$pgxs/src/test/perl" -I "$work/test/perl" bench/memory_soak.pl
