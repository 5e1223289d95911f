"""Issue 16's delivery benchmark: the worker draining a backlog of alert
notifications to real servers on 127.0.0.1 — an SMTP server (Debian's
python3-aiosmtpd, the e2e suite's smtp_sink.py) for an `email` channel and
a real Alertmanager (Debian's prometheus-alertmanager) for an
`alertmanager` channel. One transaction raises the alerts; the time is from
its commit to the last notification's `sent_at`, and the servers' own
account (messages received; alerts Alertmanager holds) must match."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import DB, ROOT, Cluster

EMAILS = int(os.environ.get("BENCH_EMAILS", "2000"))
AM_ALERTS = int(os.environ.get("BENCH_AM_ALERTS", "5000"))
ROUNDS = int(os.environ.get("BENCH_DELIVERY_ROUNDS", "3"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, timeout, probe):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise SystemExit(f"{what}: not within {timeout} s")


def drain(c, kind, n, round_no):
    """Raises n alerts in one transaction; seconds from its commit until the
    last of the channel's n notifications was sent."""
    t0 = float(c.psql(DB, f"""
        SELECT count(*) FROM generate_series(1, {n}) g,
            LATERAL vigil.raise_alert('bench_{kind}_{round_no}', 'e' || g, 'high', 'Bench alert ' || g,
                                      'A backlog of alert notifications', jsonb_build_object('n', g));
        SELECT extract(epoch FROM clock_timestamp());""").splitlines()[-1])

    def done():
        row = c.psql(DB, f"""
            SELECT count(*) FILTER (WHERE n.status = 'sent'), count(*) FILTER (WHERE n.status IN ('failed', 'dead')),
                   extract(epoch FROM max(n.sent_at))
            FROM vigil.notifications n JOIN vigil.channels ch ON ch.id = n.channel_id
            JOIN vigil.alerts a ON a.id = n.alert_id
            WHERE ch.kind = '{kind}' AND a.anomaly_type = 'bench_{kind}_{round_no}'""")
        sent, failed, last = row.split("|")
        if int(failed):
            raise SystemExit(f"{kind}: {failed} notifications failed")
        return float(last) if int(sent) == n else None

    return wait(f"{n} {kind} notifications sent", 600, done) - t0


def email(c, tmp):
    port = free_port()
    out = tmp / "mail.jsonl"
    sink = subprocess.Popen(["/usr/bin/python3", str(ROOT / "pgrx-tests/tests/notify/smtp_sink.py"),
                             str(port), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        c.psql(DB, f"""SELECT vigil.create_channel('mail', 'email', 'smtp://127.0.0.1:{port}', group_by => NULL,
                          options => '{{"from": "vigil@bench.example", "to": ["oncall@bench.example"], "tls": "none"}}')""")
        times = [drain(c, "email", EMAILS, r) for r in range(ROUNDS)]
        received = len(out.read_text().splitlines())
        assert received == EMAILS * ROUNDS, f"the SMTP server received {received} of {EMAILS * ROUNDS}"
        c.psql(DB, "UPDATE vigil.channels SET enabled = false WHERE name = 'mail'")
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)
    return times


def alertmanager(c, tmp):
    port = free_port()
    cfg = tmp / "alertmanager.yml"
    # Alertmanager's own notifications go nowhere: the benchmark is the push.
    cfg.write_text("route:\n  receiver: none\nreceivers:\n- name: none\n")
    am = subprocess.Popen(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp / 'am'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v2/alerts"

    def held():
        with urllib.request.urlopen(api + "?active=true&silenced=false&inhibited=false") as r:
            return json.load(r)

    try:
        wait("Alertmanager ready", 20, lambda: _answers(api))
        c.psql(DB, f"SELECT vigil.create_channel('am', 'alertmanager', '{api}')")
        times = [drain(c, "alertmanager", AM_ALERTS, r) for r in range(ROUNDS)]
        got = sum(1 for a in held() if a["labels"].get("alertname", "").startswith("bench_alertmanager_"))
        assert got == AM_ALERTS * ROUNDS, f"Alertmanager holds {got} of {AM_ALERTS * ROUNDS} alerts"
    finally:
        am.terminate()
        am.wait(timeout=10)
    return times


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def main():
    # A long re-post interval keeps the alertmanager channel's periodic
    # re-send out of the measured drain.
    c = Cluster(conf_lines=("shared_preload_libraries = 'pg_vigil'", f"vigil.database = '{DB}'",
                            "vigil.alertmanager_resend_interval = 3600", "max_connections = 50"))
    c.psql(DB, "CREATE EXTENSION pg_vigil;")
    wait("worker idle", 30, lambda: c.psql(DB, "SELECT state FROM vigil.worker_status()") == "idle")
    tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        mail = email(c, tmp)
        am = alertmanager(c, tmp)
    finally:
        c.stop()
    print(f"\nworker delivery to real loopback servers (vigil.batch_size 200), {ROUNDS} rounds, median (range)")
    print("| channel | backlog | drained in s | notifications/s |")
    print("|---|---:|---:|---:|")
    for kind, n, times in (("email (aiosmtpd, plain SMTP)", EMAILS, mail),
                           ("alertmanager (prometheus-alertmanager)", AM_ALERTS, am)):
        rates = sorted(n / t for t in times)
        med = sorted(times)[len(times) // 2]
        print(f"| {kind} | {n:,} | {med:.2f} ({min(times):.2f}–{max(times):.2f}) | "
              f"{n / med:,.0f} ({rates[0]:,.0f}–{rates[-1]:,.0f}) |")


if __name__ == "__main__":
    main()
