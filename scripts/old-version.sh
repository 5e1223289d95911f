#!/usr/bin/env bash
# Builds a released pg_vigil from its git commit and installs it into a
# private copy of the local PostgreSQL 15 under target/pg-<version>/, for
# the upgrade test (pgrx-tests/tests/upgrade). Prints that copy's bindir.
# Idempotent: a copy built from the same commit is reused.
#
#   scripts/old-version.sh 0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${1:-0.1.0}
case "$VERSION" in
    # The commit each released version was built from (tag v<version>).
    0.1.0) COMMIT=ce2d420309c9a828bb91ecffae3d54b3ad616f8c ;;
    *) echo "old-version.sh: no commit known for version $VERSION" >&2; exit 2 ;;
esac

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
root=$PWD/target/pg-$VERSION
stamp=$root/built-from-$COMMIT
bindir=$root/usr/lib/postgresql/15/bin
if [ -e "$stamp" ]; then
    echo "$bindir"
    exit 0
fi

say() { printf '\033[1mold-version:\033[0m %s\n' "$*" >&2; }
say "building pg_vigil $VERSION from $COMMIT into $root"
rm -rf "$root"
mkdir -p "$root/src" "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
# PostgreSQL finds its lib and share folders relative to its binaries, so a
# copy of both trees is a second installation that the current build's
# `make install` never touches.
cp -a "$("$PG_CONFIG" --pkglibdir)/.." "$root/usr/lib/postgresql/15"
cp -a "$("$PG_CONFIG" --sharedir)" "$root/usr/share/postgresql/15"
rm -f "$root"/usr/lib/postgresql/15/lib/pg_vigil.so "$root"/usr/share/postgresql/15/extension/pg_vigil*
git archive "$COMMIT" | tar -x -C "$root/src"
# Its own target folder: sharing ours would rebuild pgrx's bindings (they
# depend on the pg_config path) at every switch between the two.
(cd "$root/src" &&
    CARGO_TARGET_DIR="$PWD/../../old-target" cargo pgrx install \
        --pg-config "$bindir/pg_config" --no-default-features --features pg15 >&2)
touch "$stamp"
echo "$bindir"
