#!/usr/bin/env bash
# `make package`: a Debian package of pg_vigil for PostgreSQL 15,
# target/package/postgresql-15-pg-vigil_<version>_<arch>.deb, built with
# `cargo pgrx package` and dpkg-deb. It installs where Debian's postgresql-15
# looks (pkglibdir, sharedir/extension) on a machine without Rust or a
# compiler: the library links only the C runtime (checked below).
#
#   PG_CONFIG=<pg_config>   the PostgreSQL to build against (Debian's 15)
#   PROFILE=release|debug   release (default) is what ships; make test builds
#                           a debug package to test the packaging itself
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PROFILE=${PROFILE:-release}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
name=postgresql-15-pg-vigil
out=$PWD/target/package
stage=$out/$name
deb=$out/${name}_${version}_${arch}.deb
say() { printf '\033[1mpackage:\033[0m %s\n' "$*" >&2; }

build=$out/build
rm -rf "$stage" "$build" "$deb"
mkdir -p "$build"
args=(--pg-config "$PG_CONFIG" --no-default-features --features pg15 --out-dir "$build")
[ "$PROFILE" = debug ] && args+=(--debug)
cargo pgrx package "${args[@]}"

# Where Debian's postgresql-15 looks, whatever PostgreSQL built it.
built_lib=$build$("$PG_CONFIG" --pkglibdir)
built_ext=$build$("$PG_CONFIG" --sharedir)/extension
libdir=$stage/usr/lib/postgresql/15/lib
extdir=$stage/usr/share/postgresql/15/extension
[ -f "$built_lib/pg_vigil.so" ] && [ -f "$built_ext/pg_vigil--$version.sql" ] ||
    { echo "package: cargo pgrx package did not produce pg_vigil.so and pg_vigil--$version.sql in $build" >&2; exit 1; }
mkdir -p "$libdir" "$extdir"
install -m 755 "$built_lib/pg_vigil.so" "$libdir/"
install -m 644 "$built_ext"/pg_vigil* migrations/pg_vigil--*--*.sql "$extdir/"
rm -rf "$build"
# A debug package (for make test) without its debug info: 140 MB less to
# compress, the same code.
[ "$PROFILE" = debug ] && strip --strip-debug "$libdir/pg_vigil.so"

# Nothing but the C runtime: Rust's standard library is linked statically.
needed=$(objdump -p "$libdir/pg_vigil.so" | awk '/NEEDED/ {print $2}' | sort)
for lib in $needed; do
    case "$lib" in
        libc.so.*|libm.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;;
        *) echo "package: pg_vigil.so needs $lib, which a PostgreSQL server does not have" >&2; exit 1 ;;
    esac
done

doc=$stage/usr/share/doc/$name
mkdir -p "$doc" "$stage/DEBIAN"
install -m 644 README.md BENCHMARKS.md META.json "$doc/"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pg_vigil
Files: *
License: PostgreSQL
COPYRIGHT
cat >"$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: pg_vigil developers <pg-vigil@localhost>
Installed-Size: $(du -sk "$stage" | cut -f1)
Depends: postgresql-15, libc6 (>= 2.34), libgcc-s1
Recommends: postgresql-15-cron
Section: database
Priority: optional
Description: anomaly statistics, realtime rollups, monitors and alerts inside PostgreSQL
 pg_vigil watches business metrics in place: statistics and quantile
 sketch aggregates, trigger-maintained rollups, monitors scanned by
 pg_cron, an alert lifecycle and a background worker that delivers
 notifications. Add pg_vigil to shared_preload_libraries and restart,
 then CREATE EXTENSION pg_vigil (README: Installing into an existing
 PostgreSQL 15).
CONTROL
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
say "$deb"
echo "$deb"
