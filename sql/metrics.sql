-- pg_vigil's own counters (src/metrics): monotonic, kept in shared memory
-- for the whole cluster, zero again after a server restart (Prometheus
-- reads that as a counter reset). contrib/prometheus exports them.

CREATE VIEW vigil.metrics AS
SELECT m.name, m.channel_kind, m.severity, m.le, m.value
FROM vigil._metrics() AS m;

COMMENT ON VIEW vigil.metrics IS
    'pg_vigil''s counters since the server started, one row per series (Prometheus counters and a histogram; '
    'seconds): notifications sent, retried, failed and dead and the delivery latency per channel kind, scans, '
    'alerts raised, resolved, dismissed and expired per severity, rollup trigger errors. Those of the database '
    'vigil.database names (elsewhere empty), in shared memory: a restart starts them at 0; empty unless pg_vigil is '
    'in shared_preload_libraries';
COMMENT ON COLUMN vigil.metrics.name IS
    'Counter name (exported as pg_vigil_<name>): notifications_{sent,retried,failed,dead}_total, '
    'notification_delivery_seconds_{bucket,sum,count}, scans_total, scan_failures_total, monitor_failures_total, '
    'alerts_{raised,resolved,dismissed,expired}_total, rollup_trigger_errors_total';
COMMENT ON COLUMN vigil.metrics.channel_kind IS
    'The channel kind of notification counters (slack, webhook, pg_notify, pagerduty, msteams, alertmanager, email); '
    'NULL for the others';
COMMENT ON COLUMN vigil.metrics.severity IS 'The alert severity of alert counters; NULL for the others';
COMMENT ON COLUMN vigil.metrics.le IS
    'Upper bound in seconds (inclusive) of a notification_delivery_seconds_bucket row, Infinity for +Inf; NULL for the '
    'others';
COMMENT ON COLUMN vigil.metrics.value IS
    'The count (cumulative for buckets); seconds for notification_delivery_seconds_sum';

REVOKE EXECUTE ON FUNCTION vigil._metrics(), vigil._count_alert(text, text), vigil._count_scan(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vigil._metrics() TO vigil_reader;
GRANT SELECT ON vigil.metrics TO vigil_reader;
