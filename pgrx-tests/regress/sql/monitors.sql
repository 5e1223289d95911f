-- pg_regress: monitors and scans (SPEC §3.4, scenarios 1–5). Option
-- validation with nothing left behind, hostile identifiers, then the
-- examples with planted anomalies: the exact alerts, dedup on a second scan,
-- auto-resolve after recovery, early kill in the inserting transaction.
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET search_path = public;
DELETE FROM vigil.notifications;
DELETE FROM vigil.alerts;
DELETE FROM vigil.alert_groups;
DELETE FROM vigil.metric_values;

CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TABLE metrics (entity text, v float8, at timestamptz, kind text, amount numeric);
CREATE VIEW metrics_view AS SELECT * FROM metrics;

-- Bad input: each is refused with its SQLSTATE and nothing is created.
SELECT e AS error FROM (VALUES
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'spike', 'metrics', '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor(NULL, 'count', 'metrics', '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor(' ', 'count', 'metrics', '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', NULL, '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', NULL)$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'no_such_table', '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '"thresholds"')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}, "windw": "1 hour"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3, "medium": 5}}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": "NaN"}}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}, "time": "at", "window": "1 month"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}, "time": "entity"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}, "entity": "nope"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'drop', 'metrics', '{"entity": "entity", "time": "at", "value": "kind"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'zscore', 'metrics', '{"entity": "entity", "time": "at", "baseline_days": 1.5}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'threshold', 'metrics', '{"time": "at", "op": "=>", "threshold": 1, "agg": "count"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'stall', 'metrics', '{"time": "at", "thresholds": {"medium": "2 days", "high": "1 day"}}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}, "filter": {"amount": "lots"}}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'early_kill', 'metrics_view', '{"variant": "entity", "event": "kind"}')$$)),
    (pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'vigil.alerts', '{"thresholds": {"high": 3}}')$$)),
    (pg_temp.err($$SELECT vigil.drop_monitor('nope')$$)),
    (pg_temp.err($$SELECT vigil.scan('nope')$$)),
    (pg_temp.err($$SELECT vigil.schedule_scan('*/5 * * * *')$$)),
    (pg_temp.err($$SELECT vigil.register_variant('nope', 'a', 0.1)$$))
) AS t(e);
SELECT count(*) AS monitors, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'metrics'::regclass) AS triggers
FROM vigil.monitors;

-- A name clash; options come back with defaults filled in.
SELECT vigil.create_monitor('m', 'count', 'metrics_view', '{"thresholds": {"high": 3}, "entity": "entity"}') > 0 AS created;
SELECT pg_temp.err($$SELECT vigil.create_monitor('m', 'count', 'metrics', '{"thresholds": {"high": 3}}')$$) AS clash;
SELECT name, kind, source_schema, source_table, jsonb_pretty(options) FROM vigil.monitors;
SELECT (vigil.disable_monitor('m')).enabled, (vigil.scan())->'monitors_scanned' AS scanned;
SELECT (vigil.enable_monitor('m')).enabled, (vigil.scan())->'monitors_scanned' AS scanned;
SELECT vigil.drop_monitor('m');

-- Roles: readers see monitors but cannot create or scan; operators scan;
-- admins create monitors on tables they can read.
CREATE ROLE mon_reader IN ROLE vigil_reader;
CREATE ROLE mon_operator IN ROLE vigil_operator;
CREATE ROLE mon_admin IN ROLE vigil_admin;
GRANT SELECT ON metrics TO mon_admin;
SET ROLE mon_reader;
SELECT pg_temp.err($$SELECT vigil.create_monitor('r', 'count', 'metrics', '{"thresholds": {"high": 3}}')$$) AS reader_create,
       pg_temp.err($$SELECT vigil.scan()$$) AS reader_scan,
       (SELECT count(*) FROM vigil.monitors) AS reader_sees;
SET ROLE mon_admin;
SELECT vigil.create_monitor('by_admin', 'count', 'metrics', '{"thresholds": {"high": 3}}') > 0 AS admin_created;
SELECT pg_temp.err($$SELECT vigil.create_monitor('x', 'count', 'metrics_view', '{"thresholds": {"high": 3}}')$$) AS unreadable;
SET ROLE mon_operator;
SELECT (vigil.scan('by_admin'))->'success' AS operator_scan,
       pg_temp.err($$SELECT vigil.drop_monitor('by_admin')$$) AS operator_drop;
RESET ROLE;
SELECT vigil.drop_monitor('by_admin');
DROP ROLE mon_reader, mon_operator;
REVOKE SELECT ON metrics FROM mon_admin;
DROP ROLE mon_admin;

-- Hostile identifiers: a table and columns named to break spliced SQL work
-- as plain names.
CREATE TABLE "evil""; DROP TABLE metrics; --" ("who"" --" text, "when'); DROP TABLE metrics; --" timestamptz);
INSERT INTO "evil""; DROP TABLE metrics; --"
SELECT 'x''); DROP TABLE metrics; --', now() - g * interval '1 minute' FROM generate_series(1, 4) g;
SELECT vigil.create_monitor('evil"; DROP TABLE metrics; --', 'count', '"evil""; DROP TABLE metrics; --"',
    '{"entity": "who\" --", "time": "when''); DROP TABLE metrics; --", "window": "1 hour",
      "thresholds": {"medium": 2}, "filter": {"who\" --": "x''); DROP TABLE metrics; --"}}') > 0 AS created;
SELECT r->'anomalies_detected' AS anomalies, r->'success' AS success FROM vigil.scan() r;
SELECT entity, title FROM vigil.alerts WHERE monitor = 'evil"; DROP TABLE metrics; --';
SELECT to_regclass('metrics') IS NOT NULL AS metrics_still_there;
SELECT vigil.drop_monitor('evil"; DROP TABLE metrics; --');

-- A monitor whose source changed under it is reported; the others go on.
ALTER TABLE metrics ADD COLUMN gone timestamptz;
SELECT vigil.create_monitor('breaks', 'count', 'metrics', '{"thresholds": {"high": 1}, "time": "gone"}') > 0 AS created;
SELECT vigil.create_monitor('works', 'count', 'metrics', '{"thresholds": {"high": 1}}') > 0 AS created;
INSERT INTO metrics (entity) VALUES ('e1');
ALTER TABLE metrics DROP COLUMN gone;
SELECT r->'success' AS success, r->'anomalies_detected' AS anomalies, r->'errors' AS errors FROM vigil.scan() r;
SELECT name, last_anomalies, last_error FROM vigil.monitors ORDER BY name;
SELECT vigil.drop_monitor('breaks'), vigil.drop_monitor('works');
DELETE FROM vigil.alerts;

-- Scenario 2: client vitals.
\getenv abs_srcdir PG_ABS_SRCDIR
\set example :abs_srcdir '/../../examples/05_client_vitals.sql'
\i :example
SELECT anomaly_type, severity, count(*), min(urgency), max(urgency), sum(occurrences) AS occurrences
FROM vigil.alerts GROUP BY 1, 2 ORDER BY 1, 2;
-- The open alerts left are exactly the planted problems still present.
SELECT anomaly_type, entity, severity, urgency, occurrences, status FROM vigil.alerts
ORDER BY anomaly_type, entity;

-- Scenario 3: early kill. A kill inside a transaction that rolls back
-- leaves nothing behind.
SELECT vigil.create_channel('ops-webhook', 'webhook', 'http://127.0.0.1:9/hooks', group_by => NULL) > 0 AS channel;
\set example :abs_srcdir '/../../examples/06_variant_early_kill.sql'
\i :example
SELECT (vigil.register_variant('variant_early_kill', 'variant-D', 0.2)).status;
BEGIN;
INSERT INTO variant_interactions (variant, event)
SELECT 'variant-D', CASE WHEN g % 50 = 0 THEN 'like' ELSE 'view' END FROM generate_series(1, 1000) g;
SELECT status, interactions FROM vigil.variant_monitoring WHERE variant = 'variant-D';
ROLLBACK;
SELECT status, interactions, views, alert_id IS NULL AS no_alert FROM vigil.variant_monitoring WHERE variant = 'variant-D';
SELECT count(*) AS kill_alerts FROM vigil.alerts WHERE anomaly_type = 'early_kill';
SELECT pg_temp.err($$SELECT vigil.register_variant('variant_early_kill', 'variant-D', 0.2)$$) AS again,
       pg_temp.err($$SELECT vigil.register_variant('variant_early_kill', 'variant-E', 'NaN')$$) AS nan_rate,
       pg_temp.err($$SELECT vigil.register_variant('variant_early_kill', 'variant-E', 0.1, kill_threshold => 2)$$) AS threshold,
       pg_temp.err($$SELECT vigil.register_variant('client_health', 'variant-E', 0.1)$$) AS wrong_kind;
-- Disabled: the trigger leaves counts alone. Dropped: the trigger goes too.
SELECT (vigil.disable_monitor('variant_early_kill')).enabled;
INSERT INTO variant_interactions (variant, event) VALUES ('variant-D', 'like');
SELECT interactions FROM vigil.variant_monitoring WHERE variant = 'variant-D';
SELECT vigil.drop_monitor('variant_early_kill');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'variant_interactions'::regclass AND NOT tgisinternal;
SELECT count(*) AS variants FROM vigil.variant_monitoring;

-- Scenario 4: campaign rules.
\set example :abs_srcdir '/../../examples/07_campaign_rules.sql'
\i :example

-- Scenario 1: creator monitors.
\set example :abs_srcdir '/../../examples/08_creator_monitors.sql'
\i :example
SELECT r->'anomalies_detected' AS anomalies, r->'alerts_saved' AS saved, r->'duplicates_skipped' AS duplicates
FROM vigil.scan('creator_hourly_z') r;

-- Every run is recorded with its report.
SELECT count(*) > 0 AS runs, bool_and(finished_at >= started_at) AS timed, bool_and(report ? 'breakdown') AS reported
FROM vigil.scan_runs;
SELECT last_scan_at IS NOT NULL AS scanned, monitors_enabled, open_alerts > 0 AS has_open, rollup_lag_s FROM vigil.health;

-- Leave the database as the other suites expect it.
SELECT count(*) AS dropped FROM vigil.monitors m, LATERAL vigil.drop_monitor(m.name) d;
DELETE FROM vigil.notifications;
DELETE FROM vigil.channels;
DELETE FROM vigil.alerts;
DELETE FROM vigil.alert_groups;
DELETE FROM vigil.metric_values;
