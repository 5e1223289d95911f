-- Roles (SPEC §3.6): vigil_reader (dashboards: views and alerts, never
-- channel secrets), vigil_operator (+ acknowledge/resolve/dismiss, push
-- metrics, test channels), vigil_admin (+ configure everything, read secrets).
-- Roles are cluster-wide: created if missing, left in place by DROP EXTENSION.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'vigil_reader') THEN
        CREATE ROLE vigil_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'vigil_operator') THEN
        CREATE ROLE vigil_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'vigil_admin') THEN
        CREATE ROLE vigil_admin NOLOGIN;
    END IF;
END
$$;
GRANT vigil_reader TO vigil_operator;
GRANT vigil_operator TO vigil_admin;

-- Every role may use vigil's types, aggregates and invoker functions (a
-- table's owner creates rollups on it; their maintenance runs as that
-- owner and calls vigil's functions). Tables, SECURITY DEFINER functions
-- and configuration stay behind the grants below.
GRANT USAGE ON SCHEMA vigil TO PUBLIC;

-- Reader: every view and the alert, scan, rule and outbox tables.
GRANT SELECT ON
    vigil.alerts, vigil.alert_groups, vigil.scan_runs, vigil.recommended_actions,
    vigil.rules, vigil.metric_values, vigil.notifications, vigil.rollup_defs, vigil.rolling_defs, vigil.rolling,
    vigil.active_alerts, vigil.alert_history, vigil.alert_stats, vigil.rule_history,
    vigil.rule_stats, vigil.rollups, vigil.health, vigil.notification_queue,
    vigil.monitors, vigil.variant_monitoring,
    vigil.default_rules, vigil.deleted_default_rules,
    vigil.default_recommended_actions, vigil.deleted_default_recommended_actions,
    vigil.notification_groups, vigil.notification_group_events,
    vigil.routes, vigil.silences, vigil.active_silences, vigil.inhibit_rules, vigil.held_notifications,
    vigil.escalation_policies, vigil.escalations
TO vigil_reader;
-- Channels without their secrets (url, headers, options).
GRANT SELECT (id, name, kind, min_severity, anomaly_types, send_resolved, max_per_second,
              repeat_interval, delivery_deadline, group_by, group_wait, group_interval, enabled, created_at,
              updated_at)
    ON vigil.channels TO vigil_reader;

-- Operator: the alert lifecycle, pushed metrics, channel tests, replays.
GRANT EXECUTE ON FUNCTION
    vigil.acknowledge(bigint, text, text),
    vigil.resolve(bigint, text, text),
    vigil.dismiss(bigint, text, text),
    vigil.expire_alerts(),
    vigil.check_metric(text, float8, text, jsonb),
    vigil.test_channel(text),
    vigil.replay_notifications(text, vigil.notification_status[]),
    vigil.scan(text),
    vigil.register_variant(text, text, float8, text, text, float8, int, interval),
    vigil.create_silence(text[], timestamptz, text, text, timestamptz),
    vigil.expire_silence(bigint)
TO vigil_operator;

-- Admin: configuration and secrets.
GRANT SELECT, INSERT, UPDATE, DELETE ON vigil.channels, vigil.rules, vigil.recommended_actions, vigil.monitors,
    vigil.routes, vigil.inhibit_rules, vigil.escalation_policies
TO vigil_admin;
GRANT DELETE ON vigil.notifications TO vigil_admin;
GRANT EXECUTE ON FUNCTION
    vigil.create_channel(text, text, text, jsonb, vigil.severity, text[], bool, float8, interval, interval, text[], interval, interval, jsonb),
    vigil.send_webhook(text, jsonb, text),
    vigil.purge_notifications(interval, bigint),
    vigil.purge_alerts(interval, bigint),
    vigil.purge_metric_values(interval, bigint),
    vigil.purge_scan_runs(interval, bigint),
    vigil.raise_alert(text, text, vigil.severity, text, text, jsonb, int, text, text, text, interval, interval, jsonb),
    vigil.create_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, text, jsonb),
    vigil.update_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, bool, text, jsonb),
    vigil.enable_rule(text),
    vigil.disable_rule(text),
    vigil.delete_rule(text),
    vigil.create_monitor(text, text, regclass, jsonb),
    vigil.drop_monitor(text),
    vigil._set_monitor_enabled(text, bool),
    vigil.enable_monitor(text),
    vigil.disable_monitor(text),
    vigil.set_monitor_timeout(text, interval),
    vigil._monitor_run(bigint),
    vigil._early_kill_trigger(),
    vigil.schedule_scan(text, text),
    vigil.unschedule_scan(text),
    vigil.create_route(text, text[], text[], bool, int),
    vigil.drop_route(text),
    vigil.create_inhibit_rule(text, text[], text[], text[]),
    vigil.drop_inhibit_rule(text),
    vigil.create_escalation_policy(text, jsonb, text[], vigil.severity, bool),
    vigil.drop_escalation_policy(text)
TO vigil_admin;
