#!/usr/bin/env bash
# `make bench`: runs every benches/*.sh in order; each prints its own ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
benches=(benches/*.sh)
if [ ${#benches[@]} -eq 0 ]; then
    echo "no benchmarks yet"
    exit 0
fi
for b in "${benches[@]}"; do
    echo "== $b"
    bash "$b"
done
