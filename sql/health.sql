-- One-row operational summary: the worker, the notification queue, scans,
-- monitors, open alerts and rollups. Loaded after every module whose tables
-- it reads (src/lib.rs), so it is defined once, here.

CREATE VIEW vigil.health AS
SELECT
    w.running                                   AS worker_running,
    w.pid                                       AS worker_pid,
    w.state                                     AS worker_state,
    w.database                                  AS worker_database,
    w.started_at                                AS worker_started_at,
    w.heartbeat_at                              AS worker_heartbeat_at,
    extract(epoch FROM clock_timestamp() - w.heartbeat_at)::float8
                                                AS worker_heartbeat_age_s,
    q.depth                                     AS notification_queue_depth,
    extract(epoch FROM clock_timestamp() - q.oldest)::float8
                                                AS oldest_pending_age_s,
    (SELECT count(*) FROM vigil.notifications n
     WHERE n.status = 'sent' AND n.sent_at > now() - interval '1 hour')
                                                AS deliveries_1h,
    (SELECT count(*) FROM vigil.notifications n
     WHERE n.status IN ('failed', 'dead') AND n.updated_at > now() - interval '1 hour')
                                                AS delivery_failures_1h,
    s.started_at                                AS last_scan_at,
    extract(epoch FROM now() - s.started_at)::float8 / 60
                                                AS minutes_since_last_scan,
    s.duration_ms                               AS last_scan_duration_ms,
    s.success                                   AS last_scan_success,
    (SELECT count(*) FROM vigil.monitors m WHERE m.enabled) AS monitors_enabled,
    (SELECT count(*) FROM vigil.monitors m WHERE m.enabled AND m.last_error IS NOT NULL) AS monitors_failing,
    a.open_alerts,
    a.open_critical,
    a.open_high,
    a.open_medium,
    a.open_low,
    a.open_info,
    (SELECT count(*) FROM vigil.rollup_defs) AS rollups,
    -- Rollups are maintained inside the writing transaction: never behind.
    0::float8                                   AS rollup_lag_s,
    -- Rollups not being kept exact (vigil.rollups.status), plus rollup
    -- triggers whose definition is missing (a partial restore).
    (SELECT count(*) FROM vigil.rollup_defs d WHERE vigil._rollup_status(d.summary) <> 'ok')
    + (SELECT count(*) FROM pg_trigger t
       WHERE t.tgfoid = 'vigil._rollup_trigger'::regproc
         AND NOT EXISTS (SELECT 1 FROM vigil.rollup_defs d WHERE d.source::oid = t.tgrelid))
                                                AS rollups_broken
FROM vigil.worker_status() AS w,
     LATERAL (SELECT count(*) AS depth, min(n.created_at) AS oldest
              FROM vigil.notifications n WHERE n.status IN ('pending', 'sending')) AS q
LEFT JOIN LATERAL (SELECT r.started_at, r.duration_ms, r.success FROM vigil.scan_runs r
                   ORDER BY r.started_at DESC LIMIT 1) AS s ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS open_alerts,
           count(*) FILTER (WHERE al.severity = 'critical') AS open_critical,
           count(*) FILTER (WHERE al.severity = 'high') AS open_high,
           count(*) FILTER (WHERE al.severity = 'medium') AS open_medium,
           count(*) FILTER (WHERE al.severity = 'low') AS open_low,
           count(*) FILTER (WHERE al.severity = 'info') AS open_info
    FROM vigil.alerts al WHERE al.status IN ('firing', 'acknowledged')) AS a;

COMMENT ON VIEW vigil.health IS 'pg_vigil operational summary (one row)';
