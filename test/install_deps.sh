#!/usr/bin/env bash
# Install the Debian packages stockx_enrich needs to build, run and test,
# for the PostgreSQL major this machine uses.  Run as root; does nothing
# when everything is already there.
#
#   test/install_deps.sh               install what is missing
#   test/install_deps.sh --major       print the PostgreSQL major, install nothing
#   test/install_deps.sh --pg-config   print that major's pg_config, install nothing
#
# The major is, in this order: the one of $PG_CONFIG when it is set; the one
# test/matrix/versions lists for this Debian release (VERSION_CODENAME in
# /etc/os-release); else the one the release's `postgresql` metapackage
# depends on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_update() {
	[ $apt_updated -eq 1 ] && return 0
	apt-get update -qq >&2
	apt_updated=1
}

metapackage_major() {
	apt-cache depends postgresql 2>/dev/null |
		sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1
}

pg_major() {
	local m codename
	if [ -n "${PG_CONFIG:-}" ]; then
		m=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
		[ -n "$m" ] || { echo "cannot read a major version from $PG_CONFIG --version" >&2; return 1; }
		echo "$m"
		return 0
	fi
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	if [ -n "$codename" ]; then
		m=$(awk -v c="$codename" '!/^#/ && $2 == c { print $1; exit }' "$here/matrix/versions")
		[ -n "$m" ] && { echo "$m"; return 0; }
	fi
	m=$(metapackage_major)
	if [ -z "$m" ]; then
		apt_update
		m=$(metapackage_major)
	fi
	[ -n "$m" ] || { echo "cannot tell which PostgreSQL this release provides (no postgresql package?)" >&2; return 1; }
	echo "$m"
}

case "${1:-}" in
--major)
	pg_major
	exit 0
	;;
--pg-config)
	if [ -n "${PG_CONFIG:-}" ]; then echo "$PG_CONFIG"; else echo "/usr/lib/postgresql/$(pg_major)/bin/pg_config"; fi
	exit 0
	;;
"") ;;
*)
	sed -n '2,13p' "$0" >&2
	exit 2
	;;
esac

major=$(pg_major)
packages=(
	make gcc pkgconf
	"postgresql-$major" "postgresql-server-dev-$major" "postgresql-$major-cron"
	libcurl4-openssl-dev libjson-c-dev
	libipc-run-perl python3 python3-jsonschema openssl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt_update
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
