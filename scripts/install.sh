#!/usr/bin/env bash
# Builds pg_vigil and installs it, with its upgrade scripts, into the
# PostgreSQL that PG_CONFIG names. PROFILE=release (default) or debug.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PROFILE=${PROFILE:-release}

args=(--pg-config "$PG_CONFIG" --no-default-features --features pg15)
[ "$PROFILE" = release ] && args+=(--release)
[ "$(id -u)" = 0 ] || args+=(--sudo)
cargo pgrx install "${args[@]}"

extdir="$("$PG_CONFIG" --sharedir)/extension"
shopt -s nullglob
for f in migrations/pg_vigil--*--*.sql; do
    if [ "$(id -u)" = 0 ]; then install -m 644 "$f" "$extdir/"; else sudo install -m 644 "$f" "$extdir/"; fi
done
