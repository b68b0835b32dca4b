#!/usr/bin/env bash
# Install the Debian packages stockx_enrich needs to build, run and test.
# Run as root; does nothing when everything is already there.
set -euo pipefail

packages=(
	make gcc pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron
	libcurl4-openssl-dev libjson-c-dev
	libipc-run-perl python3 openssl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
