#!/usr/bin/env bash
# Redrafts part 3 (functions, views, triggers, new tables, comments,
# privileges) of migrations/pg_vigil--0.1.0--0.2.0.sql from a fresh 0.1.0
# install and a fresh install of the current build, in place. Parts 1, 2,
# 4 and 5 (drops, table changes, data, rollups) are written by hand: what
# the draft cannot write is listed (exit status 3). Run after changing the
# extension's SQL, then `make e2e` (the upgrade test compares the upgraded
# schema with a fresh install object by object).
#
#   PG_CONFIG=<PostgreSQL with the current build installed> scripts/migration-draft.sh
#
# Uses scripts/old-version.sh for 0.1.0, two throwaway clusters on ports
# 5461/5462 (run as user postgres) and pg_dump --binary-upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
new_bin=$("$PG_CONFIG" --bindir)
old_bin=$(scripts/old-version.sh 0.1.0)
migration=migrations/pg_vigil--0.1.0--0.2.0.sql
work=$(mktemp -d /tmp/migration-draft.XXXXXX)
chown postgres "$work"
as_pg() { runuser -u postgres -- "$@"; }

dump() { # bindir port name
    local bin=$1 port=$2 dir=$work/$3
    as_pg "$bin/initdb" -D "$dir" -A trust -U postgres >/dev/null
    cat >>"$dir/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
shared_preload_libraries = 'pg_cron,pg_vigil'
cron.database_name = 'postgres'
vigil.worker_enabled = off
EOF
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir.log" -w start >/dev/null
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qX -v ON_ERROR_STOP=1 \
        -c 'CREATE EXTENSION pg_cron' -c 'CREATE EXTENSION pg_vigil' >/dev/null
    as_pg "$bin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --schema-only --binary-upgrade postgres \
        >"$work/$3.sql"
    as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
}
dump "$old_bin" 5461 old
dump "$new_bin" 5462 new

status=0
python3 scripts/migration-draft.py "$work/old.sql" "$work/new.sql" >"$work/part3.sql" || status=$?
[ "$status" = 0 ] || [ "$status" = 3 ] || exit "$status"
python3 - "$migration" "$work/part3.sql" <<'EOF'
import sys
path, part3 = sys.argv[1], open(sys.argv[2], encoding="utf-8").read()
text = open(path, encoding="utf-8").read()
start_mark = "SET LOCAL check_function_bodies = off;\n\n"
end_mark = "\n\n-- 4. "
a = text.index(start_mark) + len(start_mark)
b = text.index(end_mark, a)
open(path, "w", encoding="utf-8").write(text[:a] + part3.rstrip("\n") + text[b:])
EOF
echo "migration-draft: part 3 of $migration redrafted (dumps in $work)" >&2
exit "$status"
