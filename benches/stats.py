"""SPEC §4, first three rows: stats_agg vs avg/stddev_samp, percentile_agg vs
percentile_cont (with rank error) and vs the tdigest extension, over 10M
float8 rows, serial and with 2 parallel workers. Ratios come from one run:
each pair is timed alternately on the same table."""

import os

from benchlib import Cluster, print_table

ROWS = int(os.environ.get("BENCH_ROWS", "10000000"))
SERIAL = ("max_parallel_workers_per_gather = 0",)
PARALLEL = ("max_parallel_workers_per_gather = 2", "parallel_setup_cost = 0",
            "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0")


def main():
    c = Cluster()
    c.psql("vigil_bench", "CREATE EXTENSION pg_vigil; CREATE EXTENSION tdigest;")
    print(f"loading {ROWS:,} rows (lognormal-ish latencies, 0.01 ms .. 20 s)...", flush=True)
    c.psql("vigil_bench", f"""
        CREATE TABLE m AS
        SELECT exp(ln(0.01) + random() * ln(2e6))::float8 * (1 + random()) AS x
        FROM generate_series(1, {ROWS});
        VACUUM ANALYZE m;
    """)

    rows = []
    for label, settings in (("serial", SERIAL), ("2 workers", PARALLEL)):
        ours, theirs = c.compare(
            "SELECT vigil.mean(s), vigil.stddev(s) FROM (SELECT vigil.stats_agg(x) s FROM m) q",
            "SELECT avg(x), stddev_samp(x) FROM m", settings)
        rows.append((f"stats_agg + accessors vs avg, stddev_samp ({label})", ours, theirs,
                     "<= 1.0", lambda r: r <= 1.0, ""))
        ours, theirs = c.compare(
            "SELECT vigil.approx_percentile(vigil.percentile_agg(x), 0.5) FROM m",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM m", settings, rounds=3)
        rows.append((f"percentile_agg vs percentile_cont ({label})", ours, theirs,
                     "<= 0.2", lambda r: r <= 0.2, ""))
        ours, theirs = c.compare(
            "SELECT vigil.approx_percentile(vigil.percentile_agg(x), 0.5) FROM m",
            "SELECT tdigest_percentile(x, 100, 0.5) FROM m", settings)
        rows.append((f"percentile_agg vs tdigest(100) ({label})", ours, theirs,
                     "<= 1.0", lambda r: r <= 1.0, ""))

    print_table(f"stats benchmarks, {ROWS:,} rows (median of 5 alternating runs; percentile_cont 3)",
                rows)

    print("\naccuracy (q: rank error = |fraction of rows <= answer - q|, value error vs exact)")
    for q in (0.5, 0.9, 0.99, 0.999):
        out = c.psql("vigil_bench", f"""
            WITH a AS (SELECT vigil.approx_percentile(vigil.percentile_agg(x), {q}) AS ours,
                              tdigest_percentile(x, 100, {q}) AS td,
                              percentile_disc({q}) WITHIN GROUP (ORDER BY x) AS exact FROM m)
            SELECT abs((SELECT count(*) FILTER (WHERE x <= ours) FROM m)::float8 / {ROWS} - {q}),
                   abs(ours - exact) / exact,
                   abs((SELECT count(*) FILTER (WHERE x <= td) FROM m)::float8 / {ROWS} - {q}),
                   abs(td - exact) / exact
            FROM a""", SERIAL)
        r_ours, v_ours, r_td, v_td = (float(v) for v in out.split("|"))
        print(f"  q={q:<6} percentile_agg: rank error {r_ours:.5f}, value error {v_ours:.5f}"
              f" | tdigest(100): rank error {r_td:.5f}, value error {v_td:.5f}")
    size = c.psql("vigil_bench", "SELECT pg_column_size(vigil.percentile_agg(x)) FROM m", SERIAL)
    print(f"  sketch size for all {ROWS:,} rows: {size} bytes")
    c.stop()


if __name__ == "__main__":
    main()
