#!/usr/bin/env bash
# Build the Debian package of stockx_enrich for this machine's PostgreSQL
# major the way Debian and apt.postgresql.org build extensions
# (dpkg-buildpackage, debhelper's pgxs_loop sequence, pg_buildext), check it
# with lintian and by its contents, and optionally install it with apt and
# run the test suite against it.  Run as root; installs what it needs.
#
#   test/package.sh               build the source and binary packages, lintian, contents
#   test/package.sh --install     ... then apt install the .deb (dependencies resolved)
#   test/package.sh --test        ... then test/run_tests.sh --installed [TAP files]
#   test/package.sh --test -- t/010_enrich.pl
#
# The major is the one test/install_deps.sh picks ($PG_CONFIG's when set,
# else the one test/matrix/versions lists for this release): the build is
# pinned to it (PG_SUPPORTED_VERSIONS), whatever else is installed.  It
# builds in a scratch copy of the tree (the checkout is left as it is) and
# leaves the packages in $PKG_OUT (default /var/tmp/stockx_enrich_deb):
#   postgresql-NN-stockx-enrich_<version>_<arch>.deb, the source package
#   (.dsc, .orig.tar.gz, .debian.tar.xz), .changes, .buildinfo, lintian.txt
# Lintian errors fail the build; warnings are printed, and the ones this
# package cannot avoid are listed in debian/README.source.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

install=0
run_tests=0
tap=()
while [ $# -gt 0 ]; do
	case $1 in
	--install) install=1; shift ;;
	--test) install=1; run_tests=1; shift ;;
	--) shift; tap=("$@"); break ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: it installs the build dependencies (and the package)" >&2
	exit 1
fi
[ "$(locale charmap 2>/dev/null)" = UTF-8 ] || export LC_ALL=C.UTF-8
export DEBIAN_FRONTEND=noninteractive

log() { printf '== %s\n' "$*"; }
now() { date +%s; }
t0=$(now)

major=$(test/install_deps.sh --major)
export PG_SUPPORTED_VERSIONS=$major
out=${PKG_OUT:-/var/tmp/stockx_enrich_deb}

# ---- tools and build dependencies -------------------------------------------
apt_updated=0
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	log "installing: ${missing[*]}"
	if [ $apt_updated -eq 0 ]; then
		apt-get update -qq
		apt_updated=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# the server-dev package of the pinned major: postgresql-server-dev-all
# depends only on the release's default one
apt_install dpkg-dev debhelper lintian postgresql-server-dev-all "postgresql-server-dev-$major"

# ---- a scratch copy of the tree, without .git and build products ------------
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${version%-*}
source=$(dpkg-parsechangelog -l debian/changelog -S Source)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/stockx_enrich_pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/$source-$upstream"
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked and new files as they are in the working tree, nothing ignored
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -C "$src" -xf -
else
	tar --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=./tmp_check --exclude=./tmp_regress --exclude=./results --exclude=./log \
		--exclude=./test/tmp_check --exclude=__pycache__ \
		--exclude=regression.diffs --exclude=regression.out -cf - . | tar -C "$src" -xf -
fi
# the upstream tarball is the tree without debian/ (as `make dist` ships it,
# packaging included, a Debian source package carries debian/ on its own)
tar -C "$work" --exclude="$source-$upstream/debian" -czf "$work/${source}_$upstream.orig.tar.gz" "$source-$upstream"

# debian/control for the majors of this machine (the checked-in one names
# the majors of the machine it was last generated on)
(cd "$src" && pg_buildext updatecontrol)
log "PostgreSQL $major: $(sed -n 's/^Package: //p' "$src/debian/control" | tr '\n' ' ')"
apt-get build-dep -y -qq "$src" >/dev/null

# ---- build ------------------------------------------------------------------
log "dpkg-buildpackage (source and binary) in $src"
tb=$(now)
if ! (cd "$src" && PG_UPDATECONTROL=yes dpkg-buildpackage -us -uc) >"$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log"
	echo "dpkg-buildpackage failed; the whole log was in $work/build.log" >&2
	exit 1
fi
grep -E '^(dpkg-deb: building|dpkg-source: info: building)' "$work/build.log" || true
log "built in $(($(now) - tb)) s"

arch=$(dpkg --print-architecture)
changes="$work/${source}_${version}_$arch.changes"
debs=()
while read -r pkg; do
	debs+=("$work/${pkg}_${version}_$arch.deb")
done < <(sed -n 's/^Package: //p' "$src/debian/control")

# ---- lintian ----------------------------------------------------------------
log "lintian"
# as root lintian says so on stderr; it reads the files only
lintian --display-info --pedantic "$changes" >"$work/lintian.txt" 2>&1 || true
grep -v '^N: ' "$work/lintian.txt" | grep -v 'running with root privileges' || echo "(no tags)"
status=0
if grep -q '^E: ' "$work/lintian.txt"; then
	echo "lintian found errors" >&2
	status=1
fi

# ---- contents ---------------------------------------------------------------
log "contents"
fail() { echo "FAIL: $*" >&2; status=1; }
for deb in "${debs[@]}"; do
	[ -f "$deb" ] || { fail "$deb was not built"; continue; }
	v=$(basename "$deb" | sed -n 's/^postgresql-\([0-9][0-9]*\)-.*/\1/p')
	list=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
	want=("/usr/lib/postgresql/$v/lib/stockx_enrich.so"
		"/usr/share/postgresql/$v/extension/stockx_enrich.control")
	for f in sql/stockx_enrich--*.sql; do
		want+=("/usr/share/postgresql/$v/extension/$(basename "$f")")
	done
	for f in "${want[@]}"; do
		grep -qxF "$f" <<<"$list" || fail "$(basename "$deb") lacks $f"
	done
	for f in README.md stockx_enrich.md; do
		grep -qE "^/usr/share/doc/postgresql-doc-$v/extension/stockx_enrich/$f(\.gz)?$" <<<"$list" ||
			fail "$(basename "$deb") lacks the documentation $f"
	done
	depends=$(dpkg-deb -f "$deb" Depends)
	for d in "postgresql-$v" libcurl libjson-c; do
		grep -q "$d" <<<"$depends" || fail "$(basename "$deb") does not depend on $d ($depends)"
	done
	echo "$(basename "$deb"): $(grep -c . <<<"$list") paths; Depends: $depends"
done

mkdir -p "$out"
cp "$work"/*.deb "$work"/*.dsc "$work"/*.tar.* "$work"/*.changes "$work"/*.buildinfo \
	"$work/lintian.txt" "$out/"
log "packages in $out"
[ $status -eq 0 ] || exit $status

# ---- install ----------------------------------------------------------------
if [ $install -eq 1 ]; then
	log "apt install ${debs[*]##*/}"
	inst=()
	for deb in "${debs[@]}"; do inst+=("$out/$(basename "$deb")"); done
	if [ $apt_updated -eq 0 ]; then apt-get update -qq; fi
	# the packaged files replace any a `make install` left there
	apt-get install -y -qq --no-install-recommends --reinstall "${inst[@]}" >/dev/null
	dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}\n' "$(basename "${debs[0]}" | cut -d_ -f1)"
fi
log "package stage: $(($(now) - t0)) s"

if [ $run_tests -eq 1 ]; then
	exec test/run_tests.sh --installed "${tap[@]}"
fi
