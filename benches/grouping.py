"""Issue 15's grouping benchmark: 10 000 alerts raised in one transaction
across 200 alert names reach a grouped webhook channel as at most 200
messages, and turning the due groups into those messages (vigil._flush_groups)
takes under a second. Side by side in one run: the same 10 000 alerts on an
ungrouped channel (one message per alert, as before grouping) and on a
grouped one."""

import os
from benchlib import Cluster, DB, print_table

ALERTS = int(os.environ.get("BENCH_GROUP_ALERTS", "10000"))
GROUPS = 200


def main():
    c = Cluster(["shared_preload_libraries = 'pg_vigil'", f"vigil.database = '{DB}'",
                 "vigil.worker_enabled = off"])
    try:
        c.psql(DB, "CREATE EXTENSION pg_vigil")
        raise_sql = (f"SELECT count(*) FROM (SELECT vigil.raise_alert('type_' || (i % {GROUPS}), 'entity_' || i, "
                     f"'high', 'alert ' || i) FROM generate_series(1, {ALERTS}) i) x")
        rows = []
        # Ungrouped: every alert event is a message.
        c.psql(DB, "SELECT vigil.create_channel('flat', 'webhook', 'http://127.0.0.1:9/flat', group_by => NULL)")
        flat_ms = c.time_ms(raise_sql)
        flat_msgs = int(c.psql(DB, "SELECT count(*) FROM vigil.notifications"))
        c.psql(DB, "DELETE FROM vigil.notifications; DELETE FROM vigil.alerts; DELETE FROM vigil.channels")
        # Grouped by alertname (200 names), due at once.
        c.psql(DB, "SELECT vigil.create_channel('grouped', 'webhook', 'http://127.0.0.1:9/grouped', "
                   "group_wait => '0 seconds')")
        grouped_ms = c.time_ms(raise_sql)
        flush_ms = c.time_ms("SELECT vigil._flush_groups(1000)")
        msgs = int(c.psql(DB, "SELECT count(*) FROM vigil.notifications"))
        listed = int(c.psql(DB, "SELECT sum(jsonb_array_length(payload -> 'alerts')) + "
                                "sum((payload ->> 'truncatedAlerts')::int) FROM vigil.notifications"))
        print(f"\n{ALERTS} alerts, {GROUPS} alert names: ungrouped channel {flat_msgs} messages, "
              f"grouped channel {msgs} messages listing {listed} alerts")
        # The same with routing and suppression in play: three routes, a
        # silence matching about a tenth of the alerts and an inhibition
        # rule checked for every one (its source never fires).
        c.psql(DB, "DELETE FROM vigil.notifications; DELETE FROM vigil.notification_groups; "
                   "DELETE FROM vigil.alerts")
        c.psql(DB, "SELECT vigil.create_channel('spare', 'webhook', 'http://127.0.0.1:9/spare', group_by => NULL); "
                   "SELECT vigil.create_route('payments', '{spare}', ARRAY['team=\"payments\"']); "
                   "SELECT vigil.create_route('critical', '{spare}', ARRAY['severity=\"critical\"']); "
                   "SELECT vigil.create_route('rest', '{grouped}', ARRAY['alertname=~\"type_.*\"']); "
                   "SELECT vigil.create_silence(ARRAY['entity=~\"entity_1[0-9]*\"'], now() + interval '1 hour', "
                   "'bench'); "
                   "SELECT vigil.create_inhibit_rule('crit', ARRAY['severity=\"critical\"'], "
                   "ARRAY['severity=\"high\"'], '{entity}')")
        suppressed_raise_ms = c.time_ms(raise_sql)
        suppressed_flush_ms = c.time_ms("SELECT vigil._flush_groups(1000)")
        held = int(c.psql(DB, "SELECT coalesce(sum(cardinality(held)), 0) FROM vigil.notification_groups"))
        release_ms = c.time_ms("SELECT vigil._release_held()")
        print(f"with routes, a silence and an inhibition rule: {held} alerts held back by the silence")
        rows.append((f"raise {ALERTS} alerts, grouped vs ungrouped channel", grouped_ms, flat_ms,
                     "<= 1.1", lambda r: r <= 1.1, ""))
        rows.append((f"messages per channel, grouped vs ungrouped", float(msgs), float(flat_msgs),
                     "<= 0.02", lambda r: r <= GROUPS / ALERTS, f"({msgs} <= {GROUPS})"))
        rows.append(("flush of the due groups, ms vs 1000 ms", flush_ms, 1000.0, "< 1", lambda r: r < 1,
                     ""))
        rows.append(("raise with 3 routes, a silence, an inhibit rule vs without", suppressed_raise_ms, grouped_ms,
                     "<= 1.5", lambda r: r <= 1.5, ""))
        rows.append(("flush with a silence and an inhibit rule, ms vs 1000 ms", suppressed_flush_ms, 1000.0, "< 1",
                     lambda r: r < 1, ""))
        rows.append((f"re-check of {held} held alerts (worker, every 5 s), ms vs 1000 ms", release_ms, 1000.0,
                     "< 0.5", lambda r: r < 0.5, ""))
        print_table("alert grouping (vigil._flush_groups)", rows)
        assert listed == ALERTS, f"every alert is in a message ({listed} of {ALERTS})"
    finally:
        c.stop()


if __name__ == "__main__":
    main()
