"""Issue 18, item 5: the statistics and sketch aggregates on a Citus
cluster (a coordinator and 2 workers on loopback, all on this machine's 2
cores) against the same rows in one node's table (with 2 parallel
workers, the same cores), and percentile_agg against tdigest, which Citus
also pushes down. Ratios come from one run: each pair is timed alternately.

Then single-row INSERT throughput (pgbench, through the coordinator) into
two distributed tables of the same shape, one with a rollup (hourly per
entity: count, filtered count, sum; the summary co-located with it), at 1
and 4 clients, BENCH_ROUNDS alternating rounds of BENCH_SECONDS each.
Target: the rollup keeps >= 0.7 of the TPS without it. BENCH_CITUS_ONLY=insert
runs only this part."""

import os
import statistics

from benchlib import DB, PORT, Cluster, print_table

ROWS = int(os.environ.get("BENCH_ROWS", "10000000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
INSERT = ("INSERT INTO {t} (entity, ts, kind, amount) "
          "VALUES ((random() * 999)::int, now(), CASE WHEN random() < 0.3 THEN 'paid' ELSE 'free' END, 10);\n")
CONF = ("shared_preload_libraries = 'citus,pg_vigil'", "citus.node_conninfo = 'sslmode=disable'",
        "max_worker_processes = 16", "vigil.worker_enabled = off")
ONE_NODE = ("max_parallel_workers_per_gather = 2", "parallel_setup_cost = 0",
            "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0")


def main():
    workers = [Cluster(CONF, name=f"citus_w{i}", port=PORT + 10 + i) for i in (1, 2)]
    coord = Cluster(CONF, name="citus_coord", port=PORT + 10)
    for node in workers + [coord]:
        node.psql(DB, "CREATE EXTENSION citus; CREATE EXTENSION pg_vigil; CREATE EXTENSION tdigest;")
    coord.psql(DB, f"SELECT citus_set_coordinator_host('127.0.0.1', {coord.port});"
               + "".join(f"SELECT citus_add_node('127.0.0.1', {w.port});" for w in workers))
    if os.environ.get("BENCH_CITUS_ONLY") == "insert":
        insert_throughput(coord)
        for node in [coord] + workers:
            node.stop()
        return
    print(f"loading {ROWS:,} rows into a local and a distributed table (32 shards, 2 workers)...",
          flush=True)
    coord.psql(DB, f"""
        CREATE TABLE m_local AS
        SELECT (g % 1000)::int AS entity, exp(ln(0.01) + random() * ln(2e6))::float8 * (1 + random()) AS x
        FROM generate_series(1, {ROWS}) g;
        CREATE TABLE m (entity int, x float8);
        SELECT create_distributed_table('m', 'entity');
        INSERT INTO m SELECT * FROM m_local;
        VACUUM ANALYZE m_local;
        VACUUM ANALYZE m;
    """)
    for q in ("SELECT vigil.stats_agg(x) FROM m", "SELECT vigil.percentile_agg(x) FROM m"):
        plan = coord.psql(DB, f"EXPLAIN (VERBOSE, COSTS OFF) {q}")
        if "worker_partial_agg" not in plan:
            raise SystemExit(f"not pushed down: {q}\n{plan}")
    plan = coord.psql(DB, "EXPLAIN (VERBOSE, COSTS OFF) SELECT tdigest_percentile(x, 100, 0.5) FROM m")
    print("tdigest on Citus:", "partial per shard" if "tdigest(" in plan.split("Task Count")[-1]
          else "rows pulled to the coordinator", flush=True)

    rows = []
    ours, theirs = coord.compare(
        "SELECT vigil.mean(s), vigil.stddev(s) FROM (SELECT vigil.stats_agg(x) s FROM m) q",
        "SELECT vigil.mean(s), vigil.stddev(s) FROM (SELECT vigil.stats_agg(x) s FROM m_local) q",
        ONE_NODE)
    rows.append(("stats_agg: Citus, 2 workers vs one node, 2 parallel workers", ours, theirs,
                 "report", None, ""))
    ours, theirs = coord.compare(
        "SELECT vigil.approx_percentile(vigil.percentile_agg(x), 0.5) FROM m",
        "SELECT vigil.approx_percentile(vigil.percentile_agg(x), 0.5) FROM m_local", ONE_NODE)
    rows.append(("percentile_agg: Citus, 2 workers vs one node, 2 parallel", ours, theirs,
                 "report", None, ""))
    ours, theirs = coord.compare(
        "SELECT vigil.approx_percentile(vigil.percentile_agg(x), 0.5) FROM m",
        "SELECT tdigest_percentile(x, 100, 0.5) FROM m", ONE_NODE)
    rows.append(("percentile_agg vs tdigest(100), both on Citus", ours, theirs,
                 "<= 1.0", lambda r: r <= 1.0, ""))
    ours, theirs = coord.compare(
        "SELECT entity, vigil.stats_agg(x) FROM m GROUP BY entity",
        "SELECT entity, vigil.stats_agg(x) FROM m_local GROUP BY entity", ONE_NODE)
    rows.append(("stats_agg per entity (1 000 groups): Citus vs one node", ours, theirs,
                 "report", None, ""))
    print_table(f"Citus benchmarks, {ROWS:,} rows (median of 5 alternating runs)", rows)
    insert_throughput(coord)
    for node in [coord] + workers:
        node.stop()


def insert_throughput(coord):
    coord.psql(DB, """
        CREATE TABLE ev_plain (entity int, ts timestamptz, kind text, amount numeric);
        SELECT create_distributed_table('ev_plain', 'entity');
        CREATE TABLE ev (entity int, ts timestamptz, kind text, amount numeric);
        SELECT create_distributed_table('ev', 'entity');
    """)
    coord.psql(DB, """SELECT vigil.create_rollup('ev_1h', 'ev', 'ts', '1 hour', ARRAY['entity'],
        '{"n": {"agg": "count"}, "paid": {"agg": "count", "filter": "kind = ''paid''"},
          "revenue": {"agg": "sum", "column": "amount"}}')""")
    print(f"\nsingle-row INSERT into a distributed table through the coordinator "
          f"(median of {ROUNDS} alternating {SECONDS} s rounds, durable commits)")
    print("| clients | no rollup TPS | with rollup TPS | ratio | target | met |")
    print("|--------:|--------------:|----------------:|------:|-------:|-----|")
    for clients in (1, 4):
        none, ours = [], []
        for _ in range(ROUNDS):
            none.append(coord.pgbench([(INSERT.format(t="ev_plain"), 1)], clients, SECONDS))
            ours.append(coord.pgbench([(INSERT.format(t="ev"), 1)], clients, SECONDS))
        a, b = statistics.median(ours), statistics.median(none)
        print(f"| {clients} | {b:,.0f} | {a:,.0f} | {a / b:.2f} | >= 0.7 | {'yes' if a / b >= 0.7 else 'NO'} |",
              flush=True)
    differing = coord.psql(DB, "SELECT vigil.verify_rollup('ev_1h')")
    if differing != "0":
        raise SystemExit(f"the rollup differs from a recompute in {differing} groups")


if __name__ == "__main__":
    main()
