#!/usr/bin/env bash
# Demo: install and build stockx_enrich, start a scratch PostgreSQL
# cluster that preloads it, queue a sample catalogue, run
# SELECT stockx_enrich_start(2), and print the enriched products and the run;
# then sync the account's listings and orders (stockx_enrich_sync(), read
# only) and print the reprice plan.
#
# Without credentials it talks to the bundled StockX stand-in on 127.0.0.1.
# With STOCKX_API_KEY, STOCKX_CLIENT_ID, STOCKX_CLIENT_SECRET and
# STOCKX_REFRESH_TOKEN in the environment it talks to the real StockX API at
# the real limit (1 request/s).  Run as root: it installs packages, then runs
# the cluster as the postgres user.  PostgreSQL is found through pg_config:
# $PG_CONFIG when set, else the server test/install_deps.sh installs.
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

# psql aligns its tables by character: give it a UTF-8 locale (every Debian
# has C.UTF-8) when the caller has none.
[ "$(locale charmap 2>/dev/null)" = UTF-8 ] || export LC_ALL=C.UTF-8

test/install_deps.sh
PG_CONFIG=$(test/install_deps.sh --pg-config)
PG_CONFIG=$(command -v "$PG_CONFIG" || echo "$PG_CONFIG")
[ -x "$PG_CONFIG" ] || { echo "no pg_config at $PG_CONFIG" >&2; exit 1; }
export PG_CONFIG
bindir=$("$PG_CONFIG" --bindir)
export PATH="$bindir:$PATH"
make -s
make -s install

dir=/tmp/stockx_enrich_demo
port=${DEMO_PORT:-55499}
as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }
if [ -f "$dir/data/postmaster.pid" ]; then (cd / && as_pg pg_ctl -D "$dir/data" -m fast stop >/dev/null) || true; fi
rm -rf "$dir"
mkdir -p "$dir"
chown postgres: "$dir"
chmod 700 "$dir"
# From here on everything runs as postgres, which may not be able to enter
# the checkout (e.g. /root/project): work from the demo's own directory, with
# a copy of the stand-in in it.
cd "$dir"

standin_pid=""
cleanup() {
	[ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null || true
	as_pg pg_ctl -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

as_pg initdb -D "$dir/data" -A peer -U postgres --encoding=UTF8 --no-locale >/dev/null
conf="$dir/data/postgresql.conf"
{
	echo "port = $port"
	echo "unix_socket_directories = '$dir'"
	echo "listen_addresses = ''"
	echo "shared_preload_libraries = 'stockx_enrich'"
} >>"$conf"

if [ -n "${STOCKX_API_KEY:-}" ] && [ -n "${STOCKX_REFRESH_TOKEN:-}" ]; then
	mode="the real StockX API (1 request/s)"
	skus="DD1391-100 CW2288-111 DZ5485-612 FD0774-101 555088-134 DV0833-104 HQ4540 GW2871 U9060GRY 1201A789-020"
	# secrets go to a private file the server reads, not to postgresql.conf
	creds="$dir/data/stockx.credentials"
	(
		umask 077
		{
			echo "api_key = '${STOCKX_API_KEY}'"
			echo "client_id = '${STOCKX_CLIENT_ID:-}'"
			echo "client_secret = '${STOCKX_CLIENT_SECRET:-}'"
			echo "refresh_token = '${STOCKX_REFRESH_TOKEN}'"
		} >"$creds"
	)
	chown postgres: "$creds"
	echo "stockx_enrich.credentials_file = '$creds'" >>"$conf"
else
	mode="the bundled StockX stand-in (5 requests/s)"
	skus="DD1391-100 CW2288-111 DZ5485-612 FD0774-101 555088-134 DV0833-104 HQ4540 GW2871 NF-UNKNOWN-1 NF-UNKNOWN-2 CMP-AF1 NUL-1 MANY-1 NUM-1"
	install -o postgres -m 644 "$top/test/standin/stockx_standin.py" "$dir/stockx_standin.py"
	as_pg bash -c "python3 '$dir/stockx_standin.py' --port 0 --port-file '$dir/standin.port' >'$dir/standin.log' 2>&1 & echo \$! > '$dir/standin.pid'"
	standin_pid=$(cat "$dir/standin.pid")
	for _ in $(seq 100); do [ -s "$dir/standin.port" ] && break; sleep 0.1; done
	[ -s "$dir/standin.port" ] || { echo "the stand-in did not start:" >&2; cat "$dir/standin.log" >&2; exit 1; }
	sport=$(cat "$dir/standin.port")
	{
		echo "stockx_enrich.api_base_url = 'http://127.0.0.1:$sport/v2'"
		echo "stockx_enrich.token_url = 'http://127.0.0.1:$sport/oauth/token'"
		echo "stockx_enrich.api_key = 'test-api-key'"
		echo "stockx_enrich.client_id = 'test-client'"
		echo "stockx_enrich.client_secret = 'test-secret'"
		echo "stockx_enrich.refresh_token = 'test-refresh'"
		echo "stockx_enrich.requests_per_second = 5"
	} >>"$conf"
fi
chmod 600 "$conf"

as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql_() { as_pg psql -h "$dir" -p "$port" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

echo "== stockx_enrich demo against $mode"
psql_ -c "CREATE EXTENSION stockx_enrich"
array=$(printf "'%s'," $skus)
psql_ -c "SELECT stockx_enrich_enqueue(ARRAY[${array%,}]) AS queued"
run=$(psql_ -At -c "SELECT stockx_enrich_start(2)")
echo "run $run started; workers while it runs:"
sleep 2
psql_ -c "SELECT pid, state, current_sku, processed, requests, memory_bytes FROM stockx_enrich_status"
psql_ -At -c "SELECT 'run ' || $run || ' ended: ' || stockx_enrich_wait($run, 600000)"

psql_ -c "SELECT sku, status, title, brand, retail_price, release_date, lowest_ask, highest_bid,
                 (SELECT count(*) FROM stockx_variant v WHERE v.sku = p.sku) AS sizes
            FROM stockx_product p ORDER BY status, sku"
psql_ -x -c "SELECT run_id, workers, processed, enriched, not_found, failed, requests,
                    responses_429, retries, stop_reason, finished_at - started_at AS took
               FROM stockx_run WHERE run_id = $run"
psql_ -c "SELECT requests_per_second, effective_rate, requests_today, daily_limit, circuit_state
            FROM stockx_enrich_limiter"

# the selling side: the account's listings and orders (read only), the
# products they name enriched, then the reprice plan
sync=$(psql_ -At -c "SELECT stockx_enrich_sync()")
psql_ -At -c "SELECT 'sync run ' || $sync || ' ended: ' || stockx_enrich_wait($sync, 600000)"
psql_ -At -c "SELECT 'its requests: ' || requests FROM stockx_run WHERE run_id = $sync"
psql_ -c "SELECT feed, last_pages AS pages, last_rows AS rows, last_error FROM stockx_sync_state ORDER BY feed"
more=$(psql_ -At -c "SELECT stockx_enrich_start(2)")
if [ -n "$more" ]; then
	psql_ -At -c "SELECT 'run ' || $more || ' (the products of the listings) ended: ' || stockx_enrich_wait($more, 600000)"
fi
psql_ -c "SELECT style_id, size, currency_code AS cur, amount, lowest_ask, suggested_amount, action,
                 payout_at_amount, payout_at_suggested
            FROM stockx_reprice_plan ORDER BY style_id, size"
echo "checkpoint lines from the server log:"
grep "stockx_enrich: checkpoint" "$dir/server.log" | sed 's/^.*LOG: */  /'
