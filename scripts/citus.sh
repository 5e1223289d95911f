#!/usr/bin/env bash
# Builds and installs Citus (issue 18's scale-out tests) into the
# PostgreSQL that PG_CONFIG names, from the anchor source kept beside this
# repository (../shared/anchors) or on this machine (/work/shared/anchors).
# Idempotent: the anchor script does nothing when Citus 13.2 is installed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
for dir in "${VIGIL_ANCHORS:-}" "$here/../shared/anchors" /work/shared/anchors; do
    if [ -n "$dir" ] && [ -x "$dir/install-anchor.sh" ]; then
        exec "$dir/install-anchor.sh" citus
    fi
done
echo "scripts/citus.sh: no anchors directory with install-anchor.sh found" \
     "(looked in \$VIGIL_ANCHORS, $here/../shared/anchors, /work/shared/anchors)" >&2
exit 1
