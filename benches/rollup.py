"""SPEC §4 rows 4–7: write cost of a trigger-maintained rollup and the speed
of reading from it. Three identical tables in one cluster — no trigger, a
vigil rollup, and the naive design (a statement trigger running REFRESH
MATERIALIZED VIEW CONCURRENTLY) — driven by pgbench with single-row INSERTs,
1 and 4 clients, uniform keys and one hot key. Default durability settings
(fsync, synchronous_commit on), as users run it."""

import os
import subprocess
import tempfile
from pathlib import Path

from benchlib import BENCH_DIR, BINDIR, DB, PORT, Cluster, as_pg, print_table

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
BASE_ROWS = 250_000
RAW_ROWS = int(os.environ.get("BENCH_RAW_ROWS", "10000000"))

TABLE = """CREATE TABLE {t} (entity text NOT NULL, ts timestamptz NOT NULL, status text,
                              amount numeric, latency float8);
           INSERT INTO {t} SELECT 'e' || (g % 1000), now() - (g % 10080) * interval '1 minute',
                  (ARRAY['paid','free'])[1 + g % 2], g % 100, (g * 37 % 1000) / 10.0
           FROM generate_series(1, {rows}) g;
           CREATE INDEX ON {t} (entity, ts);"""

MEASURES = ("'{\"messages\": {\"agg\": \"count\"}, "
            "\"paid\": {\"agg\": \"count\", \"filter\": \"status = ''paid''\"}, "
            "\"revenue\": {\"agg\": \"sum\", \"column\": \"amount\"}, "
            "\"latency\": {\"agg\": \"stats\", \"column\": \"latency\"}}'")

NAIVE = """CREATE MATERIALIZED VIEW ev_naive_mv AS
           SELECT entity, date_bin('1 hour', ts, '2000-01-03') AS bucket, count(*) AS messages,
                  count(*) FILTER (WHERE status = 'paid') AS paid, sum(amount) AS revenue,
                  avg(latency) AS latency
           FROM ev_naive GROUP BY 1, 2;
           CREATE UNIQUE INDEX ON ev_naive_mv (entity, bucket);
           CREATE FUNCTION refresh_naive() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN REFRESH MATERIALIZED VIEW CONCURRENTLY ev_naive_mv; RETURN NULL; END $$;
           CREATE TRIGGER refresh_naive AFTER INSERT OR UPDATE OR DELETE ON ev_naive
               FOR EACH STATEMENT EXECUTE FUNCTION refresh_naive();"""


def pgbench_tps(table, clients, hot, seconds=SECONDS):
    entity = "'hot'" if hot else "'e' || (random() * 999)::int"
    script = (f"INSERT INTO {table} VALUES ({entity}, now(), 'paid', 10, random() * 100);\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir="/tmp") as f:
        f.write(script)
    os.chmod(f.name, 0o644)
    out = subprocess.run(
        [str(BINDIR / "pgbench"), "-n", "-h", str(BENCH_DIR), "-p", str(PORT), "-U", "postgres",
         "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", f.name, DB],
        capture_output=True, text=True)
    os.unlink(f.name)
    for line in out.stdout.splitlines():
        if line.startswith("tps ="):
            return float(line.split()[2])
    raise SystemExit(f"pgbench failed: {out.stdout}\n{out.stderr}")


def latencies_ms(sql, runs):
    """Per-execution latency of `sql` via pgbench's transaction log."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o777)
        script = Path(d) / "q.sql"
        script.write_text(sql + "\n")
        subprocess.run(
            [str(BINDIR / "pgbench"), "-n", "-h", str(BENCH_DIR), "-p", str(PORT), "-U", "postgres",
             "-t", str(runs), "-f", str(script), "-l", "--log-prefix", f"{d}/log", DB],
            check=True, capture_output=True, cwd=d)
        lat = []
        for log in Path(d).glob("log*"):
            for line in log.read_text().splitlines():
                lat.append(int(line.split()[2]) / 1000.0)
    lat.sort()
    return lat


def main():
    parts = os.environ.get("BENCH_PARTS", "writes,bulk,tiles").split(",")
    c = Cluster(conf_lines=("max_connections = 50",))
    c.psql(DB, "CREATE EXTENSION pg_vigil;")
    for t in ("ev_plain", "ev_rollup", "ev_naive"):
        c.psql(DB, TABLE.format(t=t, rows=BASE_ROWS))
    c.psql(DB, f"SELECT vigil.create_rollup('ev_rollup_1h', 'ev_rollup', 'ts', '1 hour', '{{entity}}', {MEASURES});")
    c.psql(DB, NAIVE)
    c.psql(DB, "VACUUM ANALYZE;")

    if "writes" in parts:
        writes(c)
    if "bulk" in parts:
        bulk_insert(c)
    if "tiles" in parts:
        tiles(c)
    c.stop()


def writes(c):
    rows = []
    plain = {}
    for clients in (1, 4):
        for hot in (False, True):
            keys = "hot key" if hot else "uniform keys"
            plain[(clients, hot)] = base = pgbench_tps("ev_plain", clients, hot)
            with_rollup = pgbench_tps("ev_rollup", clients, hot)
            rows.append((f"INSERT TPS, rollup vs none, {clients} client(s), {keys}",
                         with_rollup, base, ">= 0.7", lambda r: r >= 0.7, ""))
    naive = {}
    for clients in (1, 4):
        naive[clients] = pgbench_tps("ev_naive", clients, False, seconds=min(SECONDS, 10))
        rollup_tps = rows[0 if clients == 1 else 2][1]
        rows.append((f"INSERT TPS, rollup vs naive REFRESH trigger, {clients} client(s)",
                     rollup_tps, naive[clients], ">= 300", lambda r: r >= 300, ""))
    print_table(f"rollup write cost: pgbench single-row INSERT, {SECONDS} s each, "
                f"{BASE_ROWS:,} rows preloaded (ratios are TPS ratios: higher is better)", rows)
    assert c.psql(DB, "SELECT vigil.verify_rollup('ev_rollup_1h')") == "0", "rollup drifted under load"



def bulk_insert(c):
    """100k-row INSERT ... SELECT with vs without the rollup."""
    bulk = ("INSERT INTO {t} SELECT 'e' || (g % 1000), now() - (g % 600) * interval '1 minute', 'paid', "
            "g % 100, g % 1000 / 10.0 FROM generate_series(1, 100000) g")
    ours, theirs = c.compare(bulk.format(t="ev_rollup"), bulk.format(t="ev_plain"), rounds=3)
    print_table("bulk insert (time ratio: lower is better)",
                [("100k-row INSERT ... SELECT, rollup vs none", ours, theirs, "<= 1.3",
                  lambda r: r <= 1.3, "")])



def tiles(c):
    """Dashboard tiles from rollups vs the same GROUP BY on raw events. The
    raw side gets the indexes a DBA would add for each query: (ts) and
    (entity, ts)."""
    print(f"\nloading {RAW_ROWS:,} raw events for the dashboard tiles...", flush=True)
    c.psql(DB, f"""
        CREATE TABLE raw_events (entity text NOT NULL, ts timestamptz NOT NULL, status text,
                                 amount numeric, latency float8);
        INSERT INTO raw_events SELECT 'e' || (g % 1000), now() - (g % 10080) * interval '1 minute',
               (ARRAY['paid','free'])[1 + g % 2], g % 100, (g * 37 % 1000) / 10.0
        FROM generate_series(1, {RAW_ROWS}) g;
        SELECT vigil.create_rollup('raw_events_1h', 'raw_events', 'ts', '1 hour', '{{entity}}', {MEASURES});
        SELECT vigil.create_rollup('raw_events_all_1h', 'raw_events', 'ts', '1 hour', '{{}}', {MEASURES});
        -- The board's per-entity rolling totals (issue 17 item 6).
        SELECT vigil.create_rolling('raw_events_24h', 'raw_events_1h', '24 hours');
        CREATE INDEX ON raw_events (entity, ts);
        CREATE INDEX ON raw_events (ts);
        VACUUM ANALYZE raw_events; VACUUM ANALYZE raw_events_1h; VACUUM ANALYZE raw_events_all_1h;
        VACUUM ANALYZE raw_events_24h_totals;""")
    raw_cols = "count(*), count(*) FILTER (WHERE status = 'paid'), sum(amount), avg(latency)"
    rollup_cols = "sum(messages), sum(paid), sum(revenue), vigil.mean(vigil.rollup(latency))"
    tiles = (
        # (what, rollup query, raw query, raw runs)
        ("hourly series, last 24 h (scenario 5 approval-rate tile)",
         f"SELECT bucket, {rollup_cols} FROM raw_events_all_1h WHERE bucket >= now() - interval '24 hours' GROUP BY bucket",
         f"SELECT date_bin('1 hour', ts, '2000-01-03'), {raw_cols} FROM raw_events WHERE ts >= now() - interval '24 hours' GROUP BY 1",
         5),
        ("7-day totals (scenario 5 feedback tile)",
         f"SELECT {rollup_cols} FROM raw_events_all_1h WHERE bucket >= now() - interval '7 days'",
         f"SELECT {raw_cols} FROM raw_events WHERE ts >= now() - interval '7 days'",
         5),
        ("one entity, last 24 h",
         f"SELECT entity, {rollup_cols} FROM raw_events_1h WHERE bucket >= now() - interval '24 hours' AND entity = 'e42' GROUP BY entity",
         f"SELECT entity, {raw_cols} FROM raw_events WHERE ts >= now() - interval '24 hours' AND entity = 'e42' GROUP BY entity",
         100),
        ("all 1000 entities, last 24 h",
         f"SELECT entity, {rollup_cols} FROM raw_events_1h WHERE bucket >= now() - interval '24 hours' GROUP BY entity",
         f"SELECT entity, {raw_cols} FROM raw_events WHERE ts >= now() - interval '24 hours' GROUP BY entity",
         10),
        # The same board's count and sum columns, from the summary's 24 000
        # rows and from the rolling totals' one row per entity.
        ("all 1000 entities, last 24 h, counts and sums from the summary",
         "SELECT entity, sum(messages), sum(paid), sum(revenue) FROM raw_events_1h "
         "WHERE bucket >= date_bin('1 hour', now() - interval '24 hours', '2000-01-03') GROUP BY entity",
         "SELECT entity, count(*), count(*) FILTER (WHERE status = 'paid'), sum(amount) FROM raw_events "
         "WHERE ts >= date_bin('1 hour', now() - interval '24 hours', '2000-01-03') GROUP BY entity",
         10),
        ("all 1000 entities, last 24 h, counts and sums from rolling totals (`vigil.create_rolling`)",
         "SELECT entity, messages, paid, revenue FROM raw_events_24h",
         "SELECT entity, count(*), count(*) FILTER (WHERE status = 'paid'), sum(amount) FROM raw_events "
         "WHERE ts >= date_bin('1 hour', now() - interval '24 hours', '2000-01-03') GROUP BY entity",
         10),
        # Exact rolling windows (issue 17 item 6): whole buckets from the
        # summary, the edge bucket's rows from the source's (ts) index.
        ("one entity, exactly the last 24 h (`_since(…, exact => true)`)",
         "SELECT entity, messages, paid, revenue, vigil.mean(latency) "
         "FROM raw_events_1h_since('24 hours', exact => true) WHERE entity = 'e42'",
         f"SELECT entity, {raw_cols} FROM raw_events WHERE ts > now() - interval '24 hours' AND entity = 'e42' GROUP BY entity",
         100),
        ("all 1000 entities, exactly the last 24 h",
         "SELECT entity, messages, paid, revenue, vigil.mean(latency) FROM raw_events_1h_since('24 hours', exact => true)",
         f"SELECT entity, {raw_cols} FROM raw_events WHERE ts > now() - interval '24 hours' GROUP BY entity",
         10),
    )
    tile_rows = []
    for what, ours_sql, theirs_sql, runs in tiles:
        # Per-execution latencies (client side, unix socket) from pgbench logs.
        lat = latencies_ms(ours_sql, 300)
        raw = latencies_ms(theirs_sql, runs)
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
        tile_rows.append((f"tile: {what}", p50, raw[len(raw) // 2], "<= 0.01",
                          lambda r: r <= 0.01, f"rollup p99 {p99:.3f} ms (target < 1 ms)"))
    print_table(f"dashboard reads over {RAW_ROWS:,} raw events, median latency per execution "
                f"(time ratio: lower is better)", tile_rows)


if __name__ == "__main__":
    main()
