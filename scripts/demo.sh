#!/usr/bin/env bash
# `make demo` / `make demo-stop`: a throwaway cluster under target/demo that
# preloads pg_cron and pg_vigil, loaded with the example scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
ROOT=$(pwd)/target/demo
DATA=$ROOT/data
PORT=${DEMO_PORT:-5499}
DB=vigil_demo

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_demo() { "$BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$ROOT" -p "$PORT" -U postgres "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop() {
    if [ -f "$DATA/postmaster.pid" ]; then
        as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop
    else
        echo "demo cluster is not running"
    fi
}

start() {
    mkdir -p "$ROOT"
    [ "$(id -u)" = 0 ] && chown postgres: "$ROOT"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        say "initdb $DATA"
        as_pg "$BINDIR/initdb" --auth=trust -U postgres -E UTF8 -D "$DATA" >/dev/null
        cat >> "$DATA/postgresql.conf" <<CONF
# pg_vigil demo
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$ROOT'
shared_preload_libraries = 'pg_cron,pg_vigil'
cron.database_name = '$DB'
vigil.database = '$DB'
CONF
    fi
    if [ -f "$DATA/postmaster.pid" ]; then
        say "restarting the demo cluster (picks up the freshly installed library)"
        as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w start >/dev/null

    say "database $DB with pg_cron and pg_vigil"
    psql_demo -d postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    psql_demo -d "$DB" -q -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION pg_vigil"

    for f in examples/*.sql; do
        say "example: $f"
        psql_demo -d "$DB" -f "$f"
    done

    say "worker heartbeat (vigil.health)"
    for _ in $(seq 1 40); do
        state=$(psql_demo -d "$DB" -Atc "SELECT worker_state FROM vigil.health")
        [ "$state" = idle ] && break
        sleep 0.25
    done
    psql_demo -d "$DB" -x -c "SELECT * FROM vigil.health"

    say "the demo cluster is running; explore it with:"
    echo "  psql -h $ROOT -p $PORT -U postgres $DB"
    echo "  (stop it with: make demo-stop)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
