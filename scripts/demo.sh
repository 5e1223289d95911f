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
SINK_PORT=${DEMO_SINK_PORT:-5599}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_demo() { "$BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$ROOT" -p "$PORT" -U postgres "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_sink() {
    if [ -f "$ROOT/sink.pid" ]; then
        kill -- "-$(cat "$ROOT/sink.pid")" 2>/dev/null || true
        rm -f "$ROOT/sink.pid"
    fi
}

# A local HTTP server standing in for Slack and a webhook receiver: it logs
# every request it receives to $ROOT/sink.log.
start_sink() {
    stop_sink
    cargo build -q -p pg_vigil_e2e --bin vigil_sink
    rm -f "$ROOT/sink.log"
    # Its own process group, so demo-stop ends the sink and its stdin feeder.
    setsid bash -c "sleep 1000000 | exec target/debug/vigil_sink --port $SINK_PORT --out $ROOT/sink.log >/dev/null" &
    echo $! > "$ROOT/sink.pid"
}

stop() {
    stop_sink
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

    say "notification channels pointing at a local sink (127.0.0.1:$SINK_PORT)"
    start_sink
    psql_demo -d "$DB" -q -c "SELECT vigil.create_channel('ops-slack', 'slack', 'http://127.0.0.1:$SINK_PORT/slack', send_resolved => true, max_per_second => 20)" \
        -c "SELECT vigil.create_channel('ops-webhook', 'webhook', 'http://127.0.0.1:$SINK_PORT/webhook', min_severity => 'high')" >/dev/null

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

    say "notifications received by the local sink (Slack messages as Slack would show them)"
    for _ in $(seq 1 60); do
        left=$(psql_demo -d "$DB" -Atc "SELECT count(*) FROM vigil.notifications WHERE status IN ('pending', 'sending')")
        [ "$left" = 0 ] && break
        sleep 0.25
    done
    sleep 0.2
    python3 scripts/show_sink.py "$ROOT/sink.log"
    psql_demo -d "$DB" -c "SELECT channel, kind, pending, sending, failed, dead, sent_1h FROM vigil.notification_queue"

    say "the demo cluster is running; explore it with:"
    echo "  psql -h $ROOT -p $PORT -U postgres $DB"
    echo "  (stop it with: make demo-stop)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
