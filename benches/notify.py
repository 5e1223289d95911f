"""SPEC §4 last row: the worker's delivery to a loopback sink. Throughput
draining a backlog of webhooks, insert-to-received latency at a steady
rate, and the worker's memory idle and under load. The sink is the e2e
crate's HTTP server (`vigil_sink`, release build) on 127.0.0.1; every
request it receives is logged with its arrival time."""

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import BENCH_DIR, BINDIR, DB, PORT, ROOT, Cluster

BACKLOG = int(os.environ.get("BENCH_NOTIFY_BACKLOG", "20000"))
RATE = int(os.environ.get("BENCH_NOTIFY_RATE", "200"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
# A realistic body: an alert-sized JSON document (~600 bytes).
PADDING = "x" * 500


def start_sink(out):
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "pg_vigil_e2e", "--bin", "vigil_sink"],
                   cwd=ROOT, check=True)
    sink = subprocess.Popen([str(ROOT / "target/release/vigil_sink"), "--port", "0", "--out", str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline().split()[1])
    return sink, port


def received(out):
    """(arrival_us, body) per request logged so far."""
    rows = []
    if out.exists():
        for line in out.read_text().splitlines():
            us, _key, body = line.split("\t", 2)
            rows.append((int(us), body))
    return rows


def wait_for_count(out, n, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = received(out)
        if len(got) >= n:
            return got
        time.sleep(0.05)
    raise SystemExit(f"sink got {len(received(out))} of {n} within {timeout} s")


def worker_memory_kb(c):
    pid = c.psql(DB, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_vigil worker'")
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


def steady_latencies(c, port):
    """pgbench enqueues RATE webhooks/s for SECONDS; each carries its insert time."""
    script = ("SELECT vigil.send_webhook('steady', jsonb_build_object("
              "'t', (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, 'pad', :'pad'));\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir="/tmp") as f:
        f.write(script.replace(":'pad'", f"'{PADDING}'"))
    os.chmod(f.name, 0o644)
    subprocess.run(
        [str(BINDIR / "pgbench"), "-n", "-h", str(BENCH_DIR), "-p", str(PORT), "-U", "postgres",
         "-c", "2", "-j", "2", "-R", str(RATE), "-T", str(SECONDS), "-f", f.name, DB],
        check=True, capture_output=True)
    os.unlink(f.name)


def main():
    c = Cluster(conf_lines=("shared_preload_libraries = 'pg_vigil'", f"vigil.database = '{DB}'",
                            "max_connections = 50"))
    c.psql(DB, "CREATE EXTENSION pg_vigil;")
    out = Path(tempfile.mkdtemp(dir="/tmp")) / "sink.log"
    sink, port = start_sink(out)
    try:
        for name in ("backlog", "steady"):
            c.psql(DB, f"SELECT vigil.create_channel('{name}', 'webhook', 'http://127.0.0.1:{port}/{name}', group_by => NULL)")
        deadline = time.time() + 30
        while c.psql(DB, "SELECT state FROM vigil.worker_status()") != "idle":
            if time.time() > deadline:
                raise SystemExit("worker did not become idle")
            time.sleep(0.2)
        time.sleep(2)
        idle_rss, idle_anon = worker_memory_kb(c)

        # Throughput: one transaction enqueues the backlog; time from its
        # commit to the last request received.
        t0_us = int(c.psql(DB, f"""
            SELECT count(vigil.send_webhook('backlog', jsonb_build_object('n', g, 'pad', '{PADDING}')))
            FROM generate_series(1, {BACKLOG}) g;
            SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint;""").splitlines()[-1])
        got = wait_for_count(out, BACKLOG, 300)
        drain_s = (max(us for us, _ in got) - t0_us) / 1e6
        load_rss, load_anon = worker_memory_kb(c)
        unsent = c.psql(DB, "SELECT count(*) FROM vigil.notifications WHERE status <> 'sent'")
        assert unsent == "0", f"{unsent} notifications not sent"

        # Latency at a steady rate.
        before = len(got)
        steady_latencies(c, port)
        expected = int(c.psql(DB, "SELECT count(*) FROM vigil.notifications n JOIN vigil.channels ch "
                                  "ON ch.id = n.channel_id WHERE ch.name = 'steady'"))
        got = wait_for_count(out, before + expected, 60)
        lat_ms = sorted((us - json.loads(body)["t"]) / 1000.0
                        for us, body in got[before:] if '"t"' in body)
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)
        c.stop()

    p50 = statistics.median(lat_ms)
    p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
    rate = BACKLOG / drain_s
    print(f"\nworker delivery to a loopback webhook sink (vigil.batch_size 200, max_concurrency 32)")
    print("| what | measured | target | met |")
    print("|---|---:|---:|---|")
    print(f"| drain {BACKLOG:,} queued webhooks | {rate:,.0f} notifications/s ({drain_s:.2f} s) | >= 2 000/s "
          f"| {'yes' if rate >= 2000 else 'NO'} |")
    print(f"| insert -> received p50 at {RATE}/s ({len(lat_ms)} sent) | {p50:.1f} ms | < 50 ms "
          f"| {'yes' if p50 < 50 else 'NO'} |")
    print(f"| insert -> received p99 at {RATE}/s | {p99:.1f} ms | < 500 ms | {'yes' if p99 < 500 else 'NO'} |")
    print(f"| worker RSS idle (private) | {idle_rss / 1024:.1f} MB ({idle_anon / 1024:.1f} MB) | | |")
    print(f"| worker RSS after the drain (private) | {load_rss / 1024:.1f} MB ({load_anon / 1024:.1f} MB) | | |")


if __name__ == "__main__":
    main()
