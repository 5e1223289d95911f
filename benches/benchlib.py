"""Shared helpers for pg_vigil benchmarks: a throwaway cluster under
target/bench (run as user postgres when we are root), timing of SQL
statements through psql, and the ratio table every benchmark prints."""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_CONFIG = os.environ.get("PG_CONFIG", "/usr/lib/postgresql/15/bin/pg_config")
BINDIR = Path(subprocess.check_output([PG_CONFIG, "--bindir"], text=True).strip())
BENCH_DIR = ROOT / "target" / "bench"
PORT = int(os.environ.get("BENCH_PORT", "5498"))
DB = "vigil_bench"


def as_pg(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Cluster:
    """One throwaway cluster. `name` gives it its own directory under
    target/bench and `port` its own port (several at once: the Citus
    benchmark's coordinator and workers, which also listen on 127.0.0.1)."""

    def __init__(self, conf_lines=(), name=None, port=PORT):
        self.dir = BENCH_DIR / name if name else BENCH_DIR
        self.port = port
        self.data = self.dir / "data"
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(BENCH_DIR, "postgres", "postgres")
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            as_pg([str(BINDIR / "initdb"), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync", "-D", str(self.data)]),
            check=True, stdout=subprocess.DEVNULL)
        conf = [
            f"port = {port}",
            f"listen_addresses = '{'127.0.0.1' if name else ''}'",
            f"unix_socket_directories = '{self.dir}'",
            "shared_buffers = '1GB'",
            "max_wal_size = '8GB'",
            "checkpoint_timeout = '30min'",
            *conf_lines,
        ]
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n".join(conf) + "\n")
        subprocess.run(
            as_pg([str(BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                   "-w", "start"]),
            check=True, stdout=subprocess.DEVNULL)
        self.psql("postgres", f"CREATE DATABASE {DB}")

    def stop(self):
        subprocess.run(as_pg([str(BINDIR / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       check=False, stdout=subprocess.DEVNULL)

    def psql(self, db, sql, settings=()):
        script = "".join(f"SET {s};\n" for s in settings) + sql
        out = subprocess.run(
            [str(BINDIR / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
             "-p", str(self.port), "-U", "postgres", "-d", db],
            input=script, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"psql failed: {out.stderr}\n{sql}")
        return out.stdout.strip()

    def time_ms(self, sql, settings=()):
        """Server-side execution time of one run of `sql`, in milliseconds."""
        script = "".join(f"SET {s};\n" for s in settings) + "\\timing on\n" + sql
        out = subprocess.run(
            [str(BINDIR / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
             "-p", str(self.port), "-U", "postgres", "-d", DB],
            input=script, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"psql failed: {out.stderr}\n{sql}")
        times = re.findall(r"Time: ([0-9.]+) ms", out.stdout)
        return float(times[-1])

    def pgbench(self, scripts, clients, seconds, options=""):
        """TPS of pgbench running `scripts` ((sql, weight) pairs) with
        `clients` clients for `seconds` (`options`: PGOPTIONS, settings
        for every connection)."""
        with tempfile.TemporaryDirectory(dir="/tmp") as d:
            os.chmod(d, 0o755)
            args = []
            for i, (sql, weight) in enumerate(scripts):
                f = Path(d) / f"s{i}.sql"
                f.write_text(sql)
                args += ["-f", f"{f}@{weight}"]
            out = subprocess.run(
                [str(BINDIR / "pgbench"), "-n", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
                 "-c", str(clients), "-j", str(clients), "-T", str(seconds), *args, DB],
                capture_output=True, text=True, env={**os.environ, "PGOPTIONS": options})
        for line in out.stdout.splitlines():
            if line.startswith("tps ="):
                return float(line.split()[2])
        sys.exit(f"pgbench failed: {out.stdout}\n{out.stderr}")

    def compare(self, ours, theirs, settings=(), rounds=5):
        """Times both statements alternately, `rounds` times each after one
        warm-up of each; returns (median ours, median theirs)."""
        self.time_ms(ours, settings)
        self.time_ms(theirs, settings)
        a, b = [], []
        for _ in range(rounds):
            a.append(self.time_ms(ours, settings))
            b.append(self.time_ms(theirs, settings))
        return statistics.median(a), statistics.median(b)


def print_table(title, rows):
    """rows: (what, ours_ms, theirs_ms, target text, met(ratio) -> bool or
    None when there is no target, note)"""
    print(f"\n{title}")
    print(f"| {'what':<58} | {'ours ms':>9} | {'theirs ms':>9} | {'ratio':>6} | {'target':>7} | met |")
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 9}|-----|")
    for what, ours, theirs, target, met, note in rows:
        ratio = ours / theirs
        print(f"| {what:<58} | {ours:9.3f} | {theirs:9.3f} | {ratio:6.3f} | {target:>7} | {'-' if met is None else 'yes' if met(ratio) else 'NO':<3} |"
              + (f" {note}" if note else ""))
