#!/usr/bin/env bash
# `make bench`: runs every benches/*.py; each starts its own cluster under
# target/bench and prints a table of ratios measured side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in benches/*.py; do
    [ "$(basename "$b")" = benchlib.py ] && continue
    echo "== $b"
    python3 "$b"
done
