#!/usr/bin/env bash
# Build the unit tests of the pure core and the libFuzzer harness with clang
# under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer comes
# with ASan), run the unit tests (TAP) and the fuzzer for a bounded number
# of runs, and exit non-zero on any test failure or sanitizer report.
#
#   test/sanitize.sh                       # everything
#   FUZZ_RUNS=1000000 FUZZ_SECONDS=600 test/sanitize.sh
#   FUZZ_RUNS=0 test/sanitize.sh           # unit tests only
#   KEEP=1 test/sanitize.sh                # keep the scratch directory
#
# Needs no database and writes nothing into the tree: binaries, logs, the
# fuzzing corpus and crash inputs go to a scratch directory (kept when
# something fails).  Builds whatever sources are in the working tree.  As
# root it installs missing packages with apt-get; as another user it says
# which are missing.  The source lists below are the only thing to edit
# when a test or a source file is added.
set -euo pipefail

# ---- what to build: "name: source..." (paths from the top of the tree) ----
UNIT_TESTS=(
	"test_limiter: test/unit/test_limiter.c src/limiter.c"
	"test_json: test/unit/test_json.c src/stockx_json.c src/unicode_fold.c"
	"test_unicode_fold: test/unit/test_unicode_fold.c src/unicode_fold.c"
	"test_checks: test/unit/test_checks.c src/checks.c"
)
FUZZERS=(
	"fuzz_json: test/fuzz/fuzz_json.c src/stockx_json.c src/unicode_fold.c"
)
# seed corpus directories, used when they exist (read only)
FUZZ_SEED_DIRS=(test/fuzz/corpus test/fuzz/corpus_json)

# ---- bounds of the fuzzing run (whichever comes first) ----
FUZZ_RUNS=${FUZZ_RUNS:-200000}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-4096}

SAN_FLAGS=("-fsanitize=address,undefined" -fno-sanitize-recover=all -fno-omit-frame-pointer)
FUZZ_SAN_FLAGS=("-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=all
	-fno-omit-frame-pointer)
CFLAGS_COMMON=(-std=c11 -O1 -g -Wall -Wextra -Isrc)

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

log() { printf '== %s\n' "$*"; }

# ---- tools ----------------------------------------------------------------
need_pkgs=()
command -v clang >/dev/null 2>&1 || need_pkgs+=(clang)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
pkg-config --exists json-c 2>/dev/null || need_pkgs+=(libjson-c-dev)
# optional: lets test_unicode_fold check its table against CaseFolding.txt
want_pkgs=()
[ -r /usr/share/unicode/CaseFolding.txt ] || want_pkgs+=(unicode-data)

apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: $*; run as root or: apt-get install $*" >&2
		return 1
	fi
	log "installing: $*"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

if [ "$(id -u)" -eq 0 ]; then
	need_pkgs+=("${want_pkgs[@]}")
elif [ ${#want_pkgs[@]} -gt 0 ]; then
	echo "not installing optional packages (not root): ${want_pkgs[*]}"
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
	apt_install "${need_pkgs[@]}"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/stockx_sanitize.XXXXXX")
status=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ "$status" -ne 0 ] || [ -n "${KEEP:-}" ]; then
		echo "scratch directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# Can clang link a sanitized program and a fuzzer?  If not, install the
# compiler-rt runtime: the default version's package, then the one that
# matches this clang.
probe_runtime() {
	printf 'int main(void) { return 0; }\n' >"$work/probe.c"
	printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void) d; (void) n; return 0; }\n' >"$work/probe_fuzz.c"
	clang "${SAN_FLAGS[@]}" -o "$work/probe" "$work/probe.c" >/dev/null 2>&1 &&
		clang "${FUZZ_SAN_FLAGS[@]}" -o "$work/probe_fuzz" "$work/probe_fuzz.c" >/dev/null 2>&1
}
if ! probe_runtime; then
	major=$(clang -dumpversion | cut -d. -f1)
	apt_install libclang-rt-dev || true
	if ! probe_runtime; then
		apt_install "libclang-rt-${major}-dev" || true
	fi
	if ! probe_runtime; then
		echo "clang cannot link -fsanitize=fuzzer,address,undefined programs:" >&2
		clang "${FUZZ_SAN_FLAGS[@]}" -o "$work/probe_fuzz" "$work/probe_fuzz.c" >&2 || true
		status=1
		exit 1
	fi
fi
log "$(clang --version | head -n 1)"

read -r -a JSONC_CFLAGS <<<"$(pkg-config --cflags json-c)"
read -r -a JSONC_LIBS <<<"$(pkg-config --libs json-c)"
read -r -a CURL_LIBS <<<"$(curl-config --libs)"

# ASan reports leaks too; a sanitizer report always ends the program with
# a non-zero status (halt_on_error, -fno-sanitize-recover=all).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1:print_summary=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1"

# A sanitizer report in a log, even if the exit status hid it?
has_report() {
	grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$1"
}

passed=0
failed=0
fail() {
	echo "FAILED: $*"
	failed=$((failed + 1))
	status=1
}

# "name: a.c b.c" -> name and the source list; every source must exist.
split_entry() {
	entry_name=${1%%:*}
	read -r -a entry_srcs <<<"${1#*:}"
	local s
	for s in "${entry_srcs[@]}"; do
		if [ ! -f "$s" ]; then
			echo "$entry_name: source $s not found (edit the lists at the top of $0)" >&2
			return 1
		fi
	done
}

# ---- unit tests ------------------------------------------------------------
for entry in "${UNIT_TESTS[@]}"; do
	split_entry "$entry" || {
		fail "$entry_name (sources)"
		continue
	}
	bin="$work/$entry_name"
	log "build $entry_name: ${entry_srcs[*]}"
	if ! clang "${CFLAGS_COMMON[@]}" "${SAN_FLAGS[@]}" "${JSONC_CFLAGS[@]}" -o "$bin" \
		"${entry_srcs[@]}" "${JSONC_LIBS[@]}" "${CURL_LIBS[@]}" -lm >"$work/$entry_name.build.log" 2>&1; then
		cat "$work/$entry_name.build.log"
		fail "$entry_name (build)"
		continue
	fi
	# compiler warnings are shown, not fatal
	[ -s "$work/$entry_name.build.log" ] && cat "$work/$entry_name.build.log"

	log "run $entry_name"
	rc=0
	(cd "$work" && "$bin") >"$work/$entry_name.log" 2>&1 || rc=$?
	plan=$(grep -Ec '^1\.\.[0-9]+$' "$work/$entry_name.log" || true)
	notok=$(grep -c '^not ok' "$work/$entry_name.log" || true)
	oks=$(grep -c '^ok' "$work/$entry_name.log" || true)
	if [ "$rc" -ne 0 ] || [ "$plan" -ne 1 ] || [ "$notok" -ne 0 ] || [ "$oks" -eq 0 ] ||
		has_report "$work/$entry_name.log"; then
		# the failures and any sanitizer report, not the hundreds of "ok" lines
		grep -v '^ok ' "$work/$entry_name.log" | tail -n 200
		fail "$entry_name (exit $rc, $oks ok, $notok not ok, plan lines $plan)"
	else
		echo "$entry_name: $oks checks ok"
		passed=$((passed + 1))
	fi
done

# ---- fuzzers ---------------------------------------------------------------
write_seeds() {
	local d=$1
	mkdir -p "$d"
	cat >"$d/search" <<'EOF'
{"count": 1, "pageNumber": 1, "pageSize": 10, "hasNextPage": false, "products": [
 {"productId": "c07b2c5e-7a20-42c8-99ed-bfff0202e97c",
  "urlKey": "nike-air-force-1-low-supreme-box-logo-black",
  "styleId": "CU9225-001", "productType": "sneakers",
  "title": "Nike Air Force 1 Low Supreme Black", "brand": "Nike",
  "productAttributes": {"color": null, "colorway": "Black/Black-Black",
   "gender": "men", "releaseDate": "2020-03-05", "retailPrice": 124, "season": null}}]}
EOF
	cat >"$d/search_sku" <<'EOF'
cu9225-001
{"products": [{"productId": "c07b2c5e-7a20-42c8-99ed-bfff0202e97c", "styleId": "315122-111/CU9225-001"}]}
EOF
	cat >"$d/search_utf8_sku" <<'EOF'
ÉTÉ-ΣΊΣΥΦΟΣ-K
{"products": [{"productId": "c07b2c5e-7a20-42c8-99ed-bfff0202e97c", "styleId": "été-σίσυφος-k"}]}
EOF
	cat >"$d/variants" <<'EOF'
[{"productId": "c07b2c5e-7a20-42c8-99ed-bfff0202e97c",
  "variantId": "cc38fede-0b2a-4bbd-8b3c-6a1f0b1d7e11", "variantName": "Nike-AF1-Supreme:9.5",
  "variantValue": "9.5",
  "sizeChart": {"defaultConversion": {"size": "US M 9.5", "type": "us m"},
                "availableConversions": [{"size": "US M 9.5", "type": "us m"}, {"size": "EU 43", "type": "eu"}]},
  "gtins": [{"identifier": "197611157695", "type": "UPC"}],
  "isFlexEligible": true, "isDirectEligible": false}]
EOF
	cat >"$d/market" <<'EOF'
[{"productId": "c07b2c5e-7a20-42c8-99ed-bfff0202e97c",
  "variantId": "cc38fede-0b2a-4bbd-8b3c-6a1f0b1d7e11", "currencyCode": "EUR",
  "lowestAskAmount": "212", "highestBidAmount": "180", "sellFasterAmount": "205",
  "earnMoreAmount": "230", "flexLowestAskAmount": null}]
EOF
	cat >"$d/token" <<'EOF'
{"access_token": "eyJhbGciOi.J9.sig", "expires_in": 43200, "token_type": "Bearer", "scope": "offline_access openid", "id_token": "eyJ.id.tok"}
EOF
	cat >"$d/error" <<'EOF'
{"statusCode": 429, "message": "Rate limit exceeded", "errorMessage": "x", "error_description": "y", "error": "z"}
EOF
	printf '2024-02-29\n12.50' >"$d/validators"
}

if [ "$FUZZ_RUNS" != 0 ]; then
	for entry in "${FUZZERS[@]}"; do
		split_entry "$entry" || {
			fail "$entry_name (sources)"
			continue
		}
		bin="$work/$entry_name"
		log "build $entry_name: ${entry_srcs[*]}"
		if ! clang "${CFLAGS_COMMON[@]}" "${FUZZ_SAN_FLAGS[@]}" "${JSONC_CFLAGS[@]}" -o "$bin" \
			"${entry_srcs[@]}" "${JSONC_LIBS[@]}" -lm >"$work/$entry_name.build.log" 2>&1; then
			cat "$work/$entry_name.build.log"
			fail "$entry_name (build)"
			continue
		fi
		[ -s "$work/$entry_name.build.log" ] && cat "$work/$entry_name.build.log"

		corpus="$work/$entry_name.corpus"
		write_seeds "$corpus"
		seeds=()
		for d in "${FUZZ_SEED_DIRS[@]}"; do
			[ -d "$d" ] && seeds+=("$top/$d")
		done
		mkdir -p "$work/$entry_name.artifacts"
		log "run $entry_name: at most $FUZZ_RUNS runs or $FUZZ_SECONDS s"
		rc=0
		(cd "$work" && "$bin" -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_SECONDS" \
			-max_len="$FUZZ_MAX_LEN" -timeout=30 -rss_limit_mb=4096 -seed=1 \
			-print_final_stats=1 -artifact_prefix="$work/$entry_name.artifacts/" \
			"$corpus" "${seeds[@]}") >"$work/$entry_name.log" 2>&1 || rc=$?
		if [ "$rc" -ne 0 ] || has_report "$work/$entry_name.log"; then
			grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)' "$work/$entry_name.log" | tail -n 120
			for art in "$work/$entry_name.artifacts"/*; do
				[ -f "$art" ] || continue
				echo "---- crashing input $art ($(wc -c <"$art") bytes):"
				od -A d -c "$art" | head -n 40
			done
			fail "$entry_name (exit $rc)"
		else
			grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$entry_name.log" || true
			echo "$entry_name: no sanitizer report, corpus of $(find "$corpus" -type f | wc -l) inputs"
			passed=$((passed + 1))
		fi
	done
fi

echo "sanitize: $passed passed, $failed failed"
exit $status
