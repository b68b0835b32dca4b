#!/usr/bin/env bash
# The version matrix: once per line of test/matrix/versions, each in a fresh
# minimal root of that Debian release with that release's PostgreSQL
# packages, build the Debian package postgresql-NN-stockx-enrich with the
# Debian tools (test/package.sh: dpkg-buildpackage, pg_buildext, lintian),
# install it with apt, and run the whole test suite against the installed
# package (test/run_tests.sh --installed: unit, sanitizers, pg_regress, TAP
# with pg_cron; nothing is built or installed from the tree); then print a
# table.  Run as root; exits non-zero when any version fails.
#
#   test/matrix/run.sh                      every version of the list
#   test/matrix/run.sh 17 18                these majors only
#   test/matrix/run.sh 18 -- t/010_enrich.pl    TAP files passed to run_tests.sh
#   test/matrix/run.sh --git HEAD           test `git archive HEAD` instead of
#                                           the working tree
#   test/matrix/run.sh --demo               also run ./demo.sh in each root
#
# What it copies is the checkout this script is in (without .git and build
# products), to /root/project in the root, where it runs test/install_deps.sh,
# test/package.sh --install and test/run_tests.sh --installed as root with
# no LANG or LC_* set.  Roots and downloaded .deb files are cached under
# $MATRIX_CACHE (root.sh); logs go to $MATRIX_LOGS (default
# /var/tmp/stockx_matrix_logs/<date>), with the packages built in each root
# (deb-<major>/: .deb, source package, lintian.txt).
# MATRIX_KEEP_ROOT=1 keeps each root (with the test files, KEEP_TEST_DIR=1)
# for a look afterwards.

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=root.sh
. "$here/root.sh"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# run_version MAJOR RELEASE TREE LOG RESULTS -- TAP...: one line to RESULTS
run_version() {
	local major=$1 rel=$2 tree=$3 log=$4 results=$5
	shift 6
	local t root_s="-" apt_s="-" pkg_s="-" tests_s="-" result=FAIL cache=warm rc
	local keep=${MATRIX_KEEP_ROOT:-0} tap="" a
	for a in "$@"; do tap+=" $(printf '%q' "$a")"; done
	[ -f "$MATRIX_CACHE/roots/$rel/.stockx_matrix_ready" ] || cache=cold
	(
		trap mx_cleanup EXIT
		trap 'exit 130' INT TERM
		t=$(now)
		mx_new "$rel" >>"$log" 2>&1 || { echo "$major $rel FAIL $cache $(since "$t") - - - root" >"$results.$major"; exit 1; }
		mx_put_tree "$tree"
		mx_mount || { echo "$major $rel FAIL $cache $(since "$t") - - - mount" >"$results.$major"; exit 1; }
		root_s=$(since "$t")
		mx_log "$major/$rel: root ready in ${root_s}s ($cache) at $MX_ROOT"

		t=$(now)
		if ! mx_exec "test/install_deps.sh" 2>&1 | tee -a "$log"; then
			echo "$major $rel FAIL $cache $root_s $(since "$t") - - apt" >"$results.$major"
			exit 1
		fi
		apt_s=$(since "$t")
		mx_exec "echo \"PostgreSQL: \$(\$(test/install_deps.sh --pg-config) --version)\"" 2>&1 | tee -a "$log" || true

		# (the demo builds and installs from the tree; the package installed
		# next replaces those files)
		if [ "${MATRIX_DEMO:-0}" = 1 ]; then
			mx_exec "./demo.sh" 2>&1 | tee -a "$log" || echo "DEMO FAILED" | tee -a "$log"
		fi

		# the package, built and installed as a shop would: the suites
		# below test it, not the tree
		t=$(now)
		set +e
		mx_exec "PKG_OUT=/var/tmp/stockx_enrich_deb test/package.sh --install" 2>&1 | tee -a "$log"
		rc=${PIPESTATUS[0]}
		set -e
		pkg_s=$(since "$t")
		mkdir -p "$(dirname "$log")/deb-$major"
		cp -p "$MX_ROOT"/var/tmp/stockx_enrich_deb/* "$(dirname "$log")/deb-$major/" 2>/dev/null || true
		if [ "$rc" -ne 0 ]; then
			echo "$major $rel FAIL $cache $root_s $apt_s $pkg_s - package" >"$results.$major"
			exit 1
		fi

		t=$(now)
		set +e
		mx_exec "KEEP_TEST_DIR=$keep test/run_tests.sh --installed$tap" 2>&1 | tee -a "$log"
		rc=${PIPESTATUS[0]}
		set -e
		tests_s=$(since "$t")
		[ "$rc" -eq 0 ] && result=PASS
		grep -q "^DEMO FAILED" "$log" && result=FAIL
		echo "$major $rel $result $cache $root_s $apt_s $pkg_s $tests_s" >"$results.$major"
	)
}

matrix_main() {
	set -euo pipefail
	mx_need_root
	local git_rev="" majors=() tap=() want line major rel
	while [ $# -gt 0 ]; do
		case $1 in
		--git) git_rev=$2; shift 2 ;;
		--demo) export MATRIX_DEMO=1; shift ;;
		--) shift; tap=("$@"); break ;;
		-h | --help) sed -n '2,27p' "$0"; exit 0 ;;
		*) majors+=("$1"); shift ;;
		esac
	done

	local list=()
	while read -r major rel _; do
		case $major in '' | \#*) continue ;; esac
		if [ ${#majors[@]} -gt 0 ]; then
			want=0
			for m in "${majors[@]}"; do [ "$m" = "$major" ] && want=1; done
			[ $want -eq 1 ] || continue
		fi
		list+=("$major $rel")
	done <"$here/versions"
	[ ${#list[@]} -gt 0 ] || { echo "no such version in $here/versions: ${majors[*]}" >&2; exit 2; }

	local logs=${MATRIX_LOGS:-/var/tmp/stockx_matrix_logs/$(date +%Y%m%d-%H%M%S)}
	mkdir -p "$logs"
	local tree=$top
	if [ -n "$git_rev" ]; then
		tree="$logs/tree.tar"
		git -C "$top" archive --format=tar "$git_rev" >"$tree"
	fi
	local results="$logs/results"

	local start
	start=$(now)
	for line in "${list[@]}"; do
		read -r major rel <<<"$line"
		echo "======== PostgreSQL $major on Debian $rel (log: $logs/$major-$rel.log)"
		: >"$logs/$major-$rel.log"
		run_version "$major" "$rel" "$tree" "$logs/$major-$rel.log" "$results" -- "${tap[@]}" || true
		[ -s "$results.$major" ] || echo "$major $rel FAIL - - - - - interrupted" >"$results.$major"
	done

	local passed=0 failed=0
	echo
	echo "stockx_enrich version matrix (seconds; root = cached root copied (warm) or debootstrapped first (cold);"
	echo "package = build deps, dpkg-buildpackage, lintian, apt install; tests = the suites on the installed package)"
	printf '%-8s %-10s %-6s %-5s %8s %8s %9s %8s  %s\n' major release result root root_s apt_s package_s tests_s note
	for line in "${list[@]}"; do
		read -r major rel <<<"$line"
		read -r m r res cache root_s apt_s pkg_s tests_s note <"$results.$major"
		printf '%-8s %-10s %-6s %-5s %8s %8s %9s %8s  %s\n' "$m" "$r" "$res" "$cache" "$root_s" "$apt_s" "$pkg_s" "$tests_s" "${note:-}"
		if [ "$res" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	done
	echo "total $(since "$start") s; logs in $logs"
	echo "matrix: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# (one line, so that editing this file cannot disturb a run in progress)
matrix_main "$@"; exit $?
