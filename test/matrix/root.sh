#!/usr/bin/env bash
# Throwaway Debian roots for testing stockx_enrich on other releases.
#
# A pristine minimal root per release (debootstrap --variant=minbase, no
# locales, nothing of ours) is built once and cached under
#   $MATRIX_CACHE/roots/<release>      (default /var/cache/stockx_enrich)
# Every run works in a fresh copy of it that is deleted afterwards.  The
# .deb files apt downloads inside are kept in $MATRIX_CACHE/apt/<release>
# so a second run does not download them again (the root stays fresh: the
# packages are installed anew each time).
#
# As a command (run as root):
#   test/matrix/root.sh prepare RELEASE          build the cached root if missing
#   test/matrix/root.sh shell RELEASE [TREE]     interactive shell in a fresh copy
#   test/matrix/root.sh run RELEASE TREE CMD...  copy TREE to /root/project in a
#        fresh copy and run CMD there with bash -c, as root, cwd /root/project,
#        with an empty environment (no LANG, no LC_*), like a minimal container
#   test/matrix/root.sh drop RELEASE             delete the cached root
# TREE is a directory or a .tar file (e.g. from git archive).
# MATRIX_KEEP_ROOT=1 keeps the copy (its path is printed) instead of deleting it.
#
# As a library (source it): mx_prepare, mx_new, mx_put_tree, mx_mount,
# mx_exec, mx_cleanup; see run.sh.  The root shares the host's network
# namespace, so servers inside listen on the host's 127.0.0.1.

MATRIX_CACHE=${MATRIX_CACHE:-/var/cache/stockx_enrich}
MATRIX_MIRROR=${MATRIX_MIRROR:-http://deb.debian.org/debian}
MATRIX_SECURITY_MIRROR=${MATRIX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
MATRIX_WORK=${MATRIX_WORK:-/var/tmp}

MX_ROOT=""      # the throwaway root of this process
MX_REL=""       # its release
MX_MOUNTS=()    # what mx_mount mounted, in order

mx_log() { echo "[matrix] $*" >&2; }

mx_need_root() {
	[ "$(id -u)" -eq 0 ] || { echo "run as root: it runs debootstrap, mount and chroot" >&2; exit 1; }
}

# Is this suite on the mirror?  (bookworm-updates yes, forky-updates no)
mx_suite_exists() {
	local url=$1 suite=$2
	curl -fsS -m 30 -o /dev/null "$url/dists/$suite/Release" 2>/dev/null
}

# mx_prepare RELEASE: the cached pristine root of RELEASE, built if missing.
# Prints its path.
mx_prepare() {
	local rel=$1 cache="$MATRIX_CACHE/roots/$1"
	mkdir -p "$MATRIX_CACHE/roots" "$MATRIX_CACHE/apt/$rel"
	(
		flock 9
		[ -f "$cache/.stockx_matrix_ready" ] && exit 0
		command -v debootstrap >/dev/null || {
			mx_log "installing debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
		}
		# A release newer than this debootstrap (forky on bookworm) has no
		# script of its own; the sid script builds it from the release name.
		local script=/usr/share/debootstrap/scripts/$rel
		[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
		local tmp="$cache.tmp.$$"
		rm -rf "$tmp"
		mx_log "debootstrap $rel (minbase) into $cache"
		if ! debootstrap --variant=minbase --cache-dir="$MATRIX_CACHE/apt/$rel" \
				"$rel" "$tmp" "$MATRIX_MIRROR" "$script" >"$cache.debootstrap.log" 2>&1; then
			tail -n 30 "$cache.debootstrap.log" >&2
			rm -rf "$tmp"
			exit 1
		fi
		# apt sources as on an installed machine: the release, its updates
		# and security suites when the mirror has them.
		{
			echo "deb $MATRIX_MIRROR $rel main"
			if mx_suite_exists "$MATRIX_MIRROR" "$rel-updates"; then
				echo "deb $MATRIX_MIRROR $rel-updates main"
			fi
			if mx_suite_exists "$MATRIX_SECURITY_MIRROR" "$rel-security"; then
				echo "deb $MATRIX_SECURITY_MIRROR $rel-security main"
			fi
		} >"$tmp/etc/apt/sources.list"
		# The archive reachable here is a frozen snapshot: testing's Release
		# (forky) is past its Valid-Until date, so apt must not insist on it.
		echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99stockx-matrix"
		# As in a container image: packages do not start services (a
		# postgresql package would otherwise start a cluster on port 5432 of
		# the shared network namespace).
		printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
		chmod 755 "$tmp/usr/sbin/policy-rc.d"
		rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* 2>/dev/null || true
		touch "$tmp/.stockx_matrix_ready"
		rm -rf "$cache"
		mv "$tmp" "$cache"
	) 9>"$MATRIX_CACHE/roots/.lock-$rel" || return 1
	echo "$cache"
}

# mx_new RELEASE: a fresh throwaway copy of the cached root in MX_ROOT.
mx_new() {
	local rel=$1 cache
	cache=$(mx_prepare "$rel") || return 1
	MX_REL=$rel
	MX_ROOT=$(mktemp -d "$MATRIX_WORK/stockx_matrix_$rel.XXXXXX")
	cp -a "$cache/." "$MX_ROOT/"
	rm -f "$MX_ROOT/.stockx_matrix_ready"
	cp -L /etc/resolv.conf "$MX_ROOT/etc/resolv.conf" 2>/dev/null || true
}

# mx_put_tree SRC: copy a checkout (directory, or tar file) to /root/project,
# owned by root as a clone made by root would be.
mx_put_tree() {
	local src=$1 dst="$MX_ROOT/root/project"
	mkdir -p "$dst"
	if [ -d "$src" ]; then
		tar -C "$src" --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude=./tmp_check --exclude=./results --exclude=./log \
			--exclude=regression.diffs --exclude=regression.out -cf - . | tar -C "$dst" -xf -
	else
		tar -C "$dst" -xf "$src"
	fi
	chown -R root:root "$dst"
}

mx_mount1() {
	mount "$@" && MX_MOUNTS+=("${!#}")
}

# mx_mount: /proc, /sys, /dev, /dev/pts, a private /dev/shm (PostgreSQL's
# dynamic shared memory lives there) and the release's .deb cache.
mx_mount() {
	local r=$MX_ROOT
	mkdir -p "$MATRIX_CACHE/apt/$MX_REL"
	mx_mount1 -t proc proc "$r/proc" &&
		mx_mount1 -t sysfs -o ro sysfs "$r/sys" &&
		mx_mount1 --bind /dev "$r/dev" &&
		mx_mount1 --bind /dev/pts "$r/dev/pts" &&
		mx_mount1 -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm" &&
		mx_mount1 --bind "$MATRIX_CACHE/apt/$MX_REL" "$r/var/cache/apt/archives"
}

# Kill what still runs inside the root (servers, the stand-in), by pid.
mx_kill_inside() {
	[ -n "$MX_ROOT" ] || return 0
	local sig pid r pids
	for sig in TERM KILL; do
		pids=()
		for pid in /proc/[0-9]*; do
			pid=${pid#/proc/}
			r=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
			[ "$r" = "$MX_ROOT" ] && pids+=("$pid")
		done
		[ ${#pids[@]} -gt 0 ] || return 0
		kill -s "$sig" "${pids[@]}" 2>/dev/null || true
		sleep 2
	done
}

mx_umount() {
	local i m
	for ((i = ${#MX_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${MX_MOUNTS[$i]}
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || mx_log "could not unmount $m"
	done
	MX_MOUNTS=()
}

# mx_cleanup: stop what runs inside, unmount, delete the copy.  Safe to call
# twice; meant for trap ... EXIT.
mx_cleanup() {
	[ -n "$MX_ROOT" ] || return 0
	mx_kill_inside
	mx_umount
	if [ "${MATRIX_KEEP_ROOT:-0}" = 1 ]; then
		mx_log "kept $MX_ROOT"
	else
		# never delete through a mount that is still there
		if grep -qs " $MX_ROOT/" /proc/mounts; then
			mx_log "mounts left under $MX_ROOT; not deleting it"
		else
			rm -rf "$MX_ROOT"
		fi
	fi
	MX_ROOT=""
}

# mx_exec CMD: run CMD (bash -c) as root in /root/project inside the root,
# environment emptied as in a minimal container: no LANG, no LC_*.
mx_exec() {
	chroot "$MX_ROOT" /usr/bin/env -i \
		HOME=/root TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "cd /root/project 2>/dev/null || cd /; $1" </dev/null
}

mx_main() {
	set -euo pipefail
	mx_need_root
	local cmd=${1:-} rel=${2:-}
	[ -n "$cmd" ] && [ -n "$rel" ] || { sed -n '2,23p' "$0" >&2; exit 2; }
	case $cmd in
	prepare) mx_prepare "$rel" ;;
	drop) rm -rf "${MATRIX_CACHE:?}/roots/$rel" ;;
	shell | run)
		trap mx_cleanup EXIT
		trap 'exit 130' INT TERM
		mx_new "$rel"
		[ -z "${3:-}" ] || mx_put_tree "$3"
		mx_mount
		if [ "$cmd" = shell ]; then
			chroot "$MX_ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
				PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -l
		else
			[ $# -ge 4 ] || { echo "run RELEASE TREE CMD..." >&2; exit 2; }
			shift 3
			mx_exec "$*"
		fi
		;;
	*) sed -n '2,23p' "$0" >&2; exit 2 ;;
	esac
}

# (one line, so that editing this file cannot disturb a run in progress)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then mx_main "$@"; exit $?; fi
