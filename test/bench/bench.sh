#!/usr/bin/env bash
# stockx_enrich behind a strict third-party limiter: one command, one table.
#
# Starts the StockX stand-in, nginx on 127.0.0.1 (limit_req with no burst in
# front of the stand-in, or serving prepared answers itself for the ceiling
# scenarios) and a scratch cluster, runs a suite of scenarios (or one of your
# own) and prints one table.  With a network delay (--net-jitter, the jitter
# suite) jitter_proxy.py sits between the workers and nginx and holds each
# request for a random 0..J ms.  Everything runs as postgres in a scratch
# directory that is removed on exit, also on Ctrl-C and errors.
#
# As root, after `make install` (the extension is not built here):
#   test/bench/bench.sh                 # the suite (about 10 minutes)
#   test/bench/bench.sh --only 2,4      # some scenarios of the suite
#   test/bench/bench.sh --jitter-suite  # network delay, scenarios 7-10 (about 12 minutes)
#   test/bench/bench.sh --rate 2 --net-jitter 40 --skus 20 --workers 1
#   test/bench/bench.sh --rate 5 --latency 300 --workers 2 --skus 60
#   test/bench/bench.sh --help
# PG_CONFIG picks the PostgreSQL installation (default: pg_config on PATH,
# else the newest /usr/lib/postgresql/*/bin/pg_config).  nginx is installed
# with apt-get when missing.  See test/bench/README.md.
set -euo pipefail

die() { echo "bench.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
standin="$top/test/standin/stockx_standin.py"
proxy="$here/jitter_proxy.py"

case " $* " in
*" --help "* | *" -h "*)
	exec python3 "$here/bench.py" --help ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (it installs nginx if missing and runs everything as postgres)"
id postgres >/dev/null 2>&1 || die "no postgres user: install PostgreSQL's server package"
command -v python3 >/dev/null || die "python3 is needed"
command -v setpriv >/dev/null || die "setpriv (util-linux) is needed"
[ -f "$standin" ] || die "no stand-in at $standin"
[ -f "$proxy" ] || die "no delay proxy at $proxy"

pg_config=${PG_CONFIG:-}
if [ -z "$pg_config" ]; then
	pg_config=$(command -v pg_config || true)
fi
if [ -z "$pg_config" ]; then
	pg_config=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n 1)
fi
[ -n "$pg_config" ] || die "no pg_config found: set PG_CONFIG"
[ -x "$pg_config" ] || die "pg_config '$pg_config' is not executable"
bindir=$("$pg_config" --bindir)
sharedir=$("$pg_config" --sharedir)
pkglibdir=$("$pg_config" --pkglibdir)
for b in initdb pg_ctl postgres psql; do
	[ -x "$bindir/$b" ] || die "$bindir/$b missing (server package of $pg_config not installed?)"
done
if [ ! -f "$sharedir/extension/stockx_enrich.control" ] || [ ! -f "$pkglibdir/stockx_enrich.so" ]; then
	die "stockx_enrich is not installed in $("$pg_config" --version) ($pg_config): run 'make install PG_CONFIG=$pg_config' first"
fi

nginx=$(command -v nginx || true)
if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then
	nginx=/usr/sbin/nginx
fi
if [ -z "$nginx" ]; then
	echo "bench.sh: installing nginx (Debian package)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends nginx >/dev/null
	nginx=/usr/sbin/nginx
	[ -x "$nginx" ] || die "nginx did not install"
fi

work=$(mktemp -d /tmp/stockx_bench.XXXXXX)
child=
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	# bench.py stops what it started; this is for a bench.py that was killed
	if [ -f "$work/pgdata/postmaster.pid" ]; then
		runuser -u postgres -- "$bindir/pg_ctl" -D "$work/pgdata" -m immediate -w stop \
			>/dev/null 2>&1 || true
	fi
	for f in "$work/nginx/nginx.pid" "$work/standin.pid" "$work/proxy.pid"; do
		[ -f "$f" ] || continue
		pid=$(head -n 1 "$f")
		case "$pid" in '' | *[!0-9]*) continue ;; esac
		# only a process of ours: its command line names the scratch directory
		if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$work"; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$here/bench.py" "$proxy" "$standin" "$work/"
chown -R postgres: "$work"
chmod 700 "$work"

# bench.py is this shell's child (setpriv and env exec), so it gets our
# SIGTERM from cleanup(); Ctrl-C reaches it directly as well
setpriv --reuid=postgres --regid=postgres --init-groups \
	env -i PATH=/usr/sbin:/usr/bin:/bin HOME="$work" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
	python3 "$work/bench.py" --scratch "$work" --bindir "$bindir" --nginx "$nginx" \
	--standin "$work/stockx_standin.py" "$@" &
child=$!
rc=0
wait "$child" || rc=$?
child=
exit "$rc"
