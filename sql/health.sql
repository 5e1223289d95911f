-- One-row operational summary. Later modules add columns at the end
-- (CREATE OR REPLACE VIEW keeps existing columns in place).

CREATE VIEW vigil.health AS
SELECT
    w.running                                   AS worker_running,
    w.pid                                       AS worker_pid,
    w.state                                     AS worker_state,
    w.database                                  AS worker_database,
    w.started_at                                AS worker_started_at,
    w.heartbeat_at                              AS worker_heartbeat_at,
    extract(epoch FROM clock_timestamp() - w.heartbeat_at)::float8
                                                AS worker_heartbeat_age_s
FROM vigil.worker_status() AS w;

COMMENT ON VIEW vigil.health IS 'pg_vigil operational summary (one row)';
