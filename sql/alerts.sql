-- Alerts: the store, deduplication, grouping and the lifecycle
-- firing -> acknowledged -> resolved | dismissed | expired (SPEC §3.4).
-- Every writer goes through vigil.raise_alert, which keeps at most one open
-- alert per dedup key even under concurrent callers.

CREATE TYPE vigil.alert_status AS ENUM ('firing', 'acknowledged', 'resolved', 'dismissed', 'expired');
COMMENT ON TYPE vigil.alert_status IS
    'Alert lifecycle state; firing and acknowledged alerts are open, the others are closed';

CREATE FUNCTION vigil._require_text(value text, argument text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = format('%s must not be NULL', argument);
    END IF;
    IF btrim(value) = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s must not be empty', argument);
    END IF;
    RETURN value;
END
$$;
COMMENT ON FUNCTION vigil._require_text(text, text) IS
    'Internal: value unchanged, or ERROR 22004 when NULL / 22023 when blank, naming the argument';

-- Free text people type into the alert lifecycle (by, note): at most 8 KiB.
CREATE FUNCTION vigil._cap_text(value text, argument text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF octet_length(value) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = '22001',
            MESSAGE = format('%s is %s bytes; at most 8192 are accepted', argument, octet_length(value));
    END IF;
    RETURN value;
END
$$;
COMMENT ON FUNCTION vigil._cap_text(text, text) IS
    'Internal: value unchanged, or ERROR 22001 when longer than 8192 bytes, naming the argument';

CREATE FUNCTION vigil.escalate_severity(severity vigil.severity) RETURNS vigil.severity
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE severity
        WHEN 'info' THEN 'low'
        WHEN 'low' THEN 'medium'
        WHEN 'medium' THEN 'high'
        ELSE 'critical'
    END::vigil.severity
$$;
COMMENT ON FUNCTION vigil.escalate_severity(vigil.severity) IS
    'The next severity level up, capped at critical';

-- Scans -----------------------------------------------------------------

CREATE TABLE vigil.scan_runs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_ms float8      CHECK (duration_ms >= 0),
    monitor     text,
    report      jsonb,
    success     bool
);
CREATE INDEX scan_runs_started_at_idx ON vigil.scan_runs (started_at DESC);
COMMENT ON TABLE vigil.scan_runs IS
    'One row per vigil.scan() run: timing, the monitor scanned (NULL = all) and the returned report';
SELECT pg_catalog.pg_extension_config_dump('vigil.scan_runs', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.scan_runs_id_seq', '');

-- Alerts ----------------------------------------------------------------

CREATE TABLE vigil.alert_groups (
    id             bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id        bigint         REFERENCES vigil.scan_runs (id) ON DELETE SET NULL,
    anomaly_type   text           NOT NULL,
    severity       vigil.severity NOT NULL,
    urgency        int            NOT NULL CHECK (urgency BETWEEN 0 AND 100),
    affected_count int            NOT NULL CHECK (affected_count > 0),
    entities       text[]         NOT NULL,
    created_at     timestamptz    NOT NULL DEFAULT now()
);
CREATE INDEX alert_groups_scan_id_idx ON vigil.alert_groups (scan_id);
COMMENT ON TABLE vigil.alert_groups IS
    'Related alerts of one anomaly type from one scan: worst severity (one level higher with >= 3 alerts), max urgency, entities';
SELECT pg_catalog.pg_extension_config_dump('vigil.alert_groups', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.alert_groups_id_seq', '');

CREATE TABLE vigil.alerts (
    id                  bigint             GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor             text,
    rule                text,
    anomaly_type        text               NOT NULL CHECK (btrim(anomaly_type) <> ''),
    severity            vigil.severity     NOT NULL,
    urgency             int                NOT NULL CHECK (urgency BETWEEN 0 AND 100),
    entity              text               NOT NULL CHECK (btrim(entity) <> ''),
    title               text               NOT NULL,
    summary             text,
    details             jsonb              NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    recommended_actions text[]             NOT NULL DEFAULT '{}',
    dedup_key           text               NOT NULL CHECK (btrim(dedup_key) <> ''),
    group_id            bigint             REFERENCES vigil.alert_groups (id) ON DELETE SET NULL,
    status              vigil.alert_status NOT NULL DEFAULT 'firing',
    created_at          timestamptz        NOT NULL DEFAULT now(),
    last_seen_at        timestamptz        NOT NULL DEFAULT now(),
    occurrences         int                NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    expires_at          timestamptz        NOT NULL DEFAULT now() + interval '48 hours',
    acknowledged_by     text,
    acknowledged_at     timestamptz,
    ack_note            text,
    resolved_by         text,
    resolved_at         timestamptz,
    resolve_note        text,
    dismissed_by        text,
    dismissed_at        timestamptz,
    dismiss_note        text,
    -- The database role (session_user) that acknowledged, resolved or
    -- dismissed: `by` is what the caller typed, this is who it was.
    acknowledged_role   name,
    resolved_role       name,
    dismissed_role      name,
    -- Identity (0.2.0): string labels, and their fingerprint without
    -- severity (vigil.alert_fingerprint); cleared_at: when the condition of
    -- a dismissed alert was last seen clear, which ends its suppression.
    labels              jsonb              NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    fingerprint         text               NOT NULL,
    cleared_at          timestamptz
);
-- The dedup invariant: at most one open alert per key and monitor (a key
-- one monitor's data produces never lands on another monitor's alert, so
-- one tenant's rows cannot escalate or re-title another's). raise_alert's
-- INSERT ... ON CONFLICT infers this index.
CREATE UNIQUE INDEX alerts_open_fingerprint_idx ON vigil.alerts ((coalesce(monitor, '')), fingerprint)
    WHERE status IN ('firing', 'acknowledged');
CREATE INDEX alerts_dismissed_fingerprint_idx ON vigil.alerts ((coalesce(monitor, '')), fingerprint, last_seen_at)
    WHERE status = 'dismissed' AND cleared_at IS NULL;
CREATE INDEX alerts_dedup_key_created_at_idx ON vigil.alerts (dedup_key, created_at);
CREATE INDEX alerts_open_urgency_idx ON vigil.alerts (urgency DESC, created_at)
    WHERE status IN ('firing', 'acknowledged');
CREATE INDEX alerts_open_monitor_idx ON vigil.alerts (monitor)
    WHERE status IN ('firing', 'acknowledged');
CREATE INDEX alerts_open_expires_at_idx ON vigil.alerts (expires_at)
    WHERE status IN ('firing', 'acknowledged');
CREATE INDEX alerts_rule_idx ON vigil.alerts (rule) WHERE rule IS NOT NULL;
CREATE INDEX alerts_group_id_idx ON vigil.alerts (group_id);
CREATE INDEX alerts_created_at_idx ON vigil.alerts (created_at);
COMMENT ON TABLE vigil.alerts IS
    'Alerts raised by monitors and rules, one open alert per fingerprint (its labels but severity); written through '
    'vigil.raise_alert and the lifecycle functions';
COMMENT ON COLUMN vigil.alerts.monitor IS 'Name of the monitor that raised the alert (NULL for rules and direct calls)';
COMMENT ON COLUMN vigil.alerts.rule IS 'Name of the rule that raised the alert (NULL for monitors and direct calls)';
COMMENT ON COLUMN vigil.alerts.dedup_key IS 'The finding''s key when the alert opened (scans: dated, {type}_{entity}_{UTC date}); a field, not the identity';
COMMENT ON COLUMN vigil.alerts.labels IS 'String labels: alertname, severity, anomaly_type, entity, monitor or rule, and the monitor''s own labels';
COMMENT ON COLUMN vigil.alerts.fingerprint IS 'Identity: vigil.alert_fingerprint(labels), every label but severity; stable across days and scans';
COMMENT ON COLUMN vigil.alerts.cleared_at IS 'For a dismissed alert: when its condition was seen clear, which ends the dismissal''s suppression';
COMMENT ON COLUMN vigil.alerts.occurrences IS 'How many times the condition was reported while this alert was open';
COMMENT ON COLUMN vigil.alerts.expires_at IS 'An open alert not seen again by then is expired by vigil.expire_alerts()';
SELECT pg_catalog.pg_extension_config_dump('vigil.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.alerts_id_seq', '');

-- Recommended actions ---------------------------------------------------

CREATE TABLE vigil.recommended_actions (
    anomaly_type text           NOT NULL CHECK (btrim(anomaly_type) <> ''),
    severity     vigil.severity,
    actions      text[]         NOT NULL,
    UNIQUE NULLS NOT DISTINCT (anomaly_type, severity)
);
COMMENT ON TABLE vigil.recommended_actions IS
    'Actions copied into new alerts by anomaly type and severity; the row with severity NULL is the fallback for the type';

-- Shipped defaults; vigil.recommended_actions starts as a copy. Dump/restore
-- keeps the user's edits, additions and deletions of those copies (below).
CREATE TABLE vigil.default_recommended_actions (
    anomaly_type text           NOT NULL,
    severity     vigil.severity,
    actions      text[]         NOT NULL,
    UNIQUE NULLS NOT DISTINCT (anomaly_type, severity)
);
COMMENT ON TABLE vigil.default_recommended_actions IS
    'The recommended actions pg_vigil ships, as CREATE EXTENSION copied them into vigil.recommended_actions. '
    'Read-only reference: edit vigil.recommended_actions';

-- The scenarios' own anomaly types (what the examples' monitors and the
-- default rules raise); each kind's follow below.
INSERT INTO vigil.default_recommended_actions (anomaly_type, severity, actions) VALUES
    -- scenario 2: client vitals
    ('health_drop', 'critical', ARRAY[
        'Call the client today and escalate to the account owner',
        'Review support tickets and product usage of the last 7 days for the cause',
        'Book an executive check-in within 48 hours']),
    ('health_drop', 'high', ARRAY[
        'Contact the client within 24 hours',
        'Review usage and support history of the last 7 days']),
    ('health_drop', 'medium', ARRAY[
        'Check usage trends and open tickets',
        'Add the client to this week''s account review']),
    ('health_drop', NULL, ARRAY['Review the client''s recent health score history']),
    ('deal_stalled', 'critical', ARRAY[
        'Escalate to the sales manager',
        'Re-qualify the deal or close it as lost',
        'Offer a time-bound incentive to restart the conversation']),
    ('deal_stalled', 'high', ARRAY[
        'Book a call with the decision maker',
        'Send a proposal for the next step with a date']),
    ('deal_stalled', 'medium', ARRAY[
        'Follow up with the contact',
        'Record the next step and its date in the CRM']),
    ('deal_stalled', NULL, ARRAY['Follow up on the deal and record the next step']),
    ('sync_failure', 'critical', ARRAY[
        'Check the integration credentials and the provider''s API status',
        'Pause automations that depend on this source until the sync recovers',
        'Tell the data owner that figures from this source may be stale']),
    ('sync_failure', 'high', ARRAY[
        'Inspect the sync error log for this source',
        'Re-authenticate the integration and retry the sync']),
    ('sync_failure', 'medium', ARRAY[
        'Inspect the sync error log for this source',
        'Retry the sync']),
    ('sync_failure', NULL, ARRAY['Inspect the sync error log for this source']),
    ('lead_unresponded', 'critical', ARRAY[
        'Assign the lead to an available rep now',
        'Respond today: lead conversion falls sharply after 24 hours',
        'Check the lead routing rules for gaps']),
    ('lead_unresponded', 'high', ARRAY[
        'Respond within the hour',
        'Check that the lead was routed to an active rep']),
    ('lead_unresponded', 'medium', ARRAY['Respond to the lead today']),
    ('lead_unresponded', NULL, ARRAY['Respond to the lead']),
    -- scenario 5: agent approvals
    ('queue_depth', 'critical', ARRAY[
        'Add reviewers to the approval queue now',
        'Check for an agent flooding the queue',
        'Auto-approve high-confidence items if policy allows']),
    ('queue_depth', NULL, ARRAY[
        'Add reviewers to the approval queue',
        'Check for an agent flooding the queue']),
    ('queue_age', 'critical', ARRAY[
        'Page the on-call reviewer',
        'Review the oldest pending approvals first']),
    ('queue_age', NULL, ARRAY['Review the oldest pending approvals first']),
    -- scenario 4: metric rules
    ('rule', 'critical', ARRAY[
        'Act now: pause the affected campaign or ad set',
        'Check billing, budget caps and policy notices',
        'Acknowledge the alert with a note on the action taken']),
    ('rule', 'high', ARRAY[
        'Review the campaign within the hour',
        'Compare the metric with the rule threshold and recent changes']),
    ('rule', NULL, ARRAY[
        'Compare the metric with the rule threshold and recent changes',
        'Adjust the campaign if the breach persists']);

-- Each monitor kind's own (src/monitor/kinds/<kind>.rs: saturation and
-- exhaustion of scenario 1, early kill of scenario 3, the z-score, count,
-- drop, threshold, stall, freshness and health kinds' types).
INSERT INTO vigil.default_recommended_actions (anomaly_type, severity, actions)
SELECT k.anomaly_type, k.severity::vigil.severity, k.actions FROM vigil._kind_default_actions() k;

INSERT INTO vigil.recommended_actions (anomaly_type, severity, actions)
SELECT anomaly_type, severity, actions FROM vigil.default_recommended_actions;

-- Dump and restore: as for vigil.rules (sql/rules.sql), the dump holds the
-- rows that differ from the shipped defaults plus a tombstone per deleted
-- default; the key (anomaly_type, severity) is the identity.

CREATE FUNCTION vigil._recommended_action_is_default(action vigil.recommended_actions) RETURNS bool
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM vigil.default_recommended_actions d
        WHERE d.anomaly_type = action.anomaly_type AND d.severity IS NOT DISTINCT FROM action.severity
          AND d.actions = action.actions)
$$;
COMMENT ON FUNCTION vigil._recommended_action_is_default(vigil.recommended_actions) IS
    'Internal: true when the row is a shipped default exactly as shipped; such rows are left out of dumps, '
    'CREATE EXTENSION recreates them';
SELECT pg_catalog.pg_extension_config_dump('vigil.recommended_actions',
                                           'WHERE NOT vigil._recommended_action_is_default(recommended_actions)');

CREATE TABLE vigil.deleted_default_recommended_actions (
    anomaly_type text           NOT NULL,
    severity     vigil.severity,
    deleted_at   timestamptz    NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (anomaly_type, severity)
);
COMMENT ON TABLE vigil.deleted_default_recommended_actions IS
    'Default recommended actions whose (anomaly_type, severity) is no longer in vigil.recommended_actions, kept by '
    'triggers: dumped, so that a restore deletes them again';
SELECT pg_catalog.pg_extension_config_dump('vigil.deleted_default_recommended_actions', '');

-- SECURITY DEFINER: vigil_admin's own DML records tombstones in a table it
-- cannot write.
CREATE FUNCTION vigil._recommended_actions_track_deleted_defaults() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_RELID <> 'vigil.recommended_actions'::regclass OR TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION USING ERRCODE = '39P01',
            MESSAGE = 'vigil._recommended_actions_track_deleted_defaults() runs only as the AFTER statement trigger '
                      'of vigil.recommended_actions';
    END IF;
    INSERT INTO vigil.deleted_default_recommended_actions AS t (anomaly_type, severity)
    SELECT d.anomaly_type, d.severity FROM vigil.default_recommended_actions d
    WHERE NOT EXISTS (SELECT 1 FROM vigil.recommended_actions r
                      WHERE r.anomaly_type = d.anomaly_type AND r.severity IS NOT DISTINCT FROM d.severity)
    ON CONFLICT (anomaly_type, severity) DO NOTHING;
    DELETE FROM vigil.deleted_default_recommended_actions t
    WHERE EXISTS (SELECT 1 FROM vigil.recommended_actions r
                  WHERE r.anomaly_type = t.anomaly_type AND r.severity IS NOT DISTINCT FROM t.severity);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION vigil._recommended_actions_track_deleted_defaults() IS
    'Internal: AFTER statement trigger of vigil.recommended_actions; vigil.deleted_default_recommended_actions '
    'lists exactly the default keys missing from vigil.recommended_actions';
CREATE TRIGGER recommended_actions_track_deleted_defaults
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vigil.recommended_actions
    FOR EACH STATEMENT EXECUTE FUNCTION vigil._recommended_actions_track_deleted_defaults();

-- Only a superuser's INSERT (a restore) replaces a default; anyone else's
-- collides as usual (23505).
CREATE FUNCTION vigil._recommended_actions_restore_replaces_default() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT 1 FROM vigil.recommended_actions t
                   WHERE t.anomaly_type = NEW.anomaly_type AND t.severity IS NOT DISTINCT FROM NEW.severity
                     AND vigil._recommended_action_is_default(t)) THEN
        DELETE FROM vigil.recommended_actions t
        WHERE t.anomaly_type = NEW.anomaly_type AND t.severity IS NOT DISTINCT FROM NEW.severity;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION vigil._recommended_actions_restore_replaces_default() IS
    'Internal: BEFORE INSERT row trigger of vigil.recommended_actions; a superuser''s INSERT (a restore) with the key '
    'of an unchanged default replaces that default';
CREATE TRIGGER recommended_actions_restore_replaces_default BEFORE INSERT ON vigil.recommended_actions
    FOR EACH ROW EXECUTE FUNCTION vigil._recommended_actions_restore_replaces_default();

CREATE FUNCTION vigil._deleted_default_recommended_actions_apply() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Deleting fires the tracking trigger, which records this very key.
    IF EXISTS (SELECT 1 FROM vigil.recommended_actions r
               WHERE r.anomaly_type = NEW.anomaly_type AND r.severity IS NOT DISTINCT FROM NEW.severity
                 AND vigil._recommended_action_is_default(r)) THEN
        DELETE FROM vigil.recommended_actions r
        WHERE r.anomaly_type = NEW.anomaly_type AND r.severity IS NOT DISTINCT FROM NEW.severity;
    END IF;
    -- A tombstone is kept only for a default that is gone, and once.
    IF EXISTS (SELECT 1 FROM vigil.recommended_actions r
               WHERE r.anomaly_type = NEW.anomaly_type AND r.severity IS NOT DISTINCT FROM NEW.severity)
       OR EXISTS (SELECT 1 FROM vigil.deleted_default_recommended_actions t
                  WHERE t.anomaly_type = NEW.anomaly_type AND t.severity IS NOT DISTINCT FROM NEW.severity) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION vigil._deleted_default_recommended_actions_apply() IS
    'Internal: BEFORE INSERT row trigger of vigil.deleted_default_recommended_actions; a loaded tombstone deletes its '
    'default if that is still unchanged, and is skipped when the key is still present or already recorded';
CREATE TRIGGER deleted_default_recommended_actions_apply BEFORE INSERT ON vigil.deleted_default_recommended_actions
    FOR EACH ROW EXECUTE FUNCTION vigil._deleted_default_recommended_actions_apply();

CREATE FUNCTION vigil.recommended_actions_for(anomaly_type text, severity vigil.severity) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((
        SELECT r.actions
        FROM vigil.recommended_actions r
        WHERE r.anomaly_type = $1 AND (r.severity = $2 OR r.severity IS NULL)
        ORDER BY r.severity IS NULL
        LIMIT 1), '{}')
$$;
COMMENT ON FUNCTION vigil.recommended_actions_for(text, vigil.severity) IS
    'Actions for a type and severity from vigil.recommended_actions (the type''s fallback row, else empty)';

-- Notification payload --------------------------------------------------

CREATE FUNCTION vigil.alert_event(alert vigil.alerts, event text) RETURNS json
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- Any role can LISTEN vigil_alerts, so the payload carries only what
    -- says "something changed": the alert id and the event. A listener that
    -- may read vigil.alerts looks the row up; one that may not learns nothing.
    -- The shape is vigil._pg_notify_payload's, the pg_notify channels' too.
    SELECT vigil._pg_notify_payload(jsonb_build_object('id', (alert).id), event)::json
$$;
COMMENT ON FUNCTION vigil.alert_event(vigil.alerts, text) IS
    'The JSON sent on channel vigil_alerts, {"id": <alert id>, "event": new|escalated|resolved}: ids and the event only, '
    'since any role can LISTEN; read the alert itself from vigil.alerts (privileges apply)';

-- vigil._notify_alert(alert, event), which every alert event below calls,
-- is defined in notify.sql: it needs the outbox.

-- Size caps ---------------------------------------------------------------

CREATE FUNCTION vigil._max_payload_bytes() RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('vigil.max_payload_bytes', true), '')::int, 65536)
$$;
COMMENT ON FUNCTION vigil._max_payload_bytes() IS
    'Internal: vigil.max_payload_bytes (default 65536), the cap on notification payloads and alert details';

CREATE FUNCTION vigil._cap_details(details jsonb, argument text) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cap int := vigil._max_payload_bytes();
    -- 54000 naming the argument when nested deeper than 32 levels.
    n bigint := vigil._json_size(details::text, argument, cap);
BEGIN
    IF n > cap THEN
        RETURN jsonb_build_object('truncated', true, 'original_bytes', n);
    END IF;
    RETURN details;
END
$$;
COMMENT ON FUNCTION vigil._cap_details(jsonb, text) IS
    'Internal: details unchanged, or {"truncated": true, "original_bytes": N} when larger than vigil.max_payload_bytes; '
    'ERROR 54000 naming the argument when nested deeper than 32 levels';

-- Raising ---------------------------------------------------------------

COMMENT ON FUNCTION vigil._check_labels(jsonb, text) IS
    'Internal: labels unchanged, or ERROR 22023 naming the argument and the label: a JSON object of at most 32 string '
    'labels, names [A-Za-z_][A-Za-z0-9_]* not starting with __, values non-empty and at most 8192 bytes';
COMMENT ON FUNCTION vigil._labels_at_raise(jsonb) IS
    'Internal: labels of one raise made total: names checked (22023), strings kept, numbers and booleans as text, '
    'nulls dropped';
COMMENT ON FUNCTION vigil.alert_fingerprint(jsonb) IS
    'An alert''s identity from its labels: Alertmanager''s label-set fingerprint (FNV-1a 64 over the sorted names and '
    'values) of every label but severity, as 16 hex digits; ERROR 22023 unless labels is a JSON object';

CREATE FUNCTION vigil._alert_labels(labels jsonb, anomaly_type text, entity text, severity vigil.severity,
                                    monitor text, rule text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- Total: data (entity, a finding's subkey) never fails a raise; what
    -- users configure was checked where they configured it.
    SELECT l || jsonb_build_object('alertname', coalesce(l ->> 'alertname', rule, monitor, anomaly_type))
        || jsonb_strip_nulls(jsonb_build_object(
               'anomaly_type', anomaly_type, 'entity', entity, 'severity', severity::text,
               'monitor', monitor, 'rule', rule))
    FROM vigil._labels_at_raise(coalesce(labels, '{}')) AS l
$$;
COMMENT ON FUNCTION vigil._alert_labels(jsonb, text, text, vigil.severity, text, text) IS
    'Internal: an alert''s labels: the given ones (vigil._labels_at_raise: label names checked, values as text), '
    'alertname (given, else the rule, the monitor or the anomaly type), and anomaly_type, entity, severity, monitor '
    'and rule, which override given ones; never fails on values';

CREATE FUNCTION vigil.raise_alert(
    anomaly_type text,
    entity text,
    severity vigil.severity,
    title text,
    summary text DEFAULT NULL,
    details jsonb DEFAULT '{}',
    urgency int DEFAULT NULL,
    monitor text DEFAULT NULL,
    rule text DEFAULT NULL,
    dedup_key text DEFAULT NULL,
    dedup_window interval DEFAULT '24 hours',
    expires_in interval DEFAULT '48 hours',
    labels jsonb DEFAULT NULL,
    OUT alert_id bigint,
    OUT is_new bool
)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    dk text;
    lbl jsonb;
    fp text;
    new_urgency int;
    new_details jsonb := coalesce(raise_alert.details, '{}');
    cur vigil.alerts;
    escalated bool;
BEGIN
    PERFORM vigil._require_text(raise_alert.anomaly_type, 'anomaly_type'),
            vigil._require_text(raise_alert.entity, 'entity'),
            vigil._require_text(raise_alert.title, 'title');
    IF raise_alert.severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'severity must not be NULL (allowed: info, low, medium, high, critical)';
    END IF;
    IF jsonb_typeof(new_details) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('details must be a JSON object, got %s', jsonb_typeof(new_details));
    END IF;
    new_details := vigil._cap_details(new_details, 'details');
    IF raise_alert.urgency NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION USING ERRCODE = '22003',
            MESSAGE = format('urgency must be between 0 and 100, got %s', raise_alert.urgency);
    END IF;
    IF raise_alert.dedup_window IS NULL OR raise_alert.dedup_window <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('dedup_window must be a positive interval, got %s', coalesce(raise_alert.dedup_window::text, 'NULL'));
    END IF;
    IF raise_alert.expires_in IS NULL OR raise_alert.expires_in <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('expires_in must be a positive interval, got %s', coalesce(raise_alert.expires_in::text, 'NULL'));
    END IF;
    -- Bounds that keep now() +/- these intervals inside the timestamp range.
    IF raise_alert.dedup_window > interval '100 years' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('dedup_window must be at most 100 years, got %s', raise_alert.dedup_window);
    END IF;
    IF raise_alert.expires_in > interval '100 years' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('expires_in must be at most 100 years, got %s', raise_alert.expires_in);
    END IF;
    lbl := vigil._alert_labels(raise_alert.labels, raise_alert.anomaly_type, raise_alert.entity,
                               raise_alert.severity, raise_alert.monitor, raise_alert.rule);
    IF raise_alert.dedup_key IS NOT NULL THEN
        dk := vigil._require_text(raise_alert.dedup_key, 'dedup_key');
        -- A caller that names the key but no labels means that key alone as
        -- the identity, as 0.1.0 did (callers with labels, such as scans,
        -- pass a dated key that is only a field).
        IF raise_alert.labels IS NULL THEN
            lbl := lbl || jsonb_build_object('dedup_key', dk);
            fp := vigil.alert_fingerprint(jsonb_build_object('dedup_key', dk));
        END IF;
    ELSE
        dk := vigil.dedup_key(raise_alert.anomaly_type, raise_alert.entity, now());
    END IF;
    fp := coalesce(fp, vigil.alert_fingerprint(lbl));
    new_urgency := coalesce(raise_alert.urgency, vigil.urgency_score(raise_alert.severity));

    -- Lock the open alert of this identity if there is one, else insert. An
    -- insert that loses the race to a concurrent caller (ON CONFLICT ... DO
    -- NOTHING waits for that caller's commit) loops and bumps the winner's
    -- row. Under REPEATABLE READ the conflict raises 40001 instead of looping.
    FOR attempt IN 1..5 LOOP
        SELECT * INTO cur FROM vigil.alerts a
        WHERE a.fingerprint = fp AND a.status IN ('firing', 'acknowledged')
          AND coalesce(a.monitor, '') = coalesce(raise_alert.monitor, '')
        FOR UPDATE;
        IF FOUND THEN
            IF cur.last_seen_at >= now() - raise_alert.dedup_window THEN
                escalated := raise_alert.severity > cur.severity OR new_urgency > cur.urgency;
                UPDATE vigil.alerts a SET
                    last_seen_at = greatest(a.last_seen_at, now()),
                    occurrences = a.occurrences + 1,
                    expires_at = greatest(a.expires_at, now() + raise_alert.expires_in),
                    details = vigil._cap_details(a.details || new_details, 'details'),
                    severity = greatest(a.severity, raise_alert.severity),
                    labels = a.labels || jsonb_build_object('severity', greatest(a.severity, raise_alert.severity)::text),
                    urgency = greatest(a.urgency, new_urgency),
                    title = CASE WHEN escalated THEN raise_alert.title ELSE a.title END,
                    summary = CASE WHEN escalated THEN coalesce(raise_alert.summary, a.summary) ELSE a.summary END,
                    recommended_actions = CASE WHEN escalated
                        THEN vigil.recommended_actions_for(a.anomaly_type, greatest(a.severity, raise_alert.severity))
                        ELSE a.recommended_actions END
                WHERE a.id = cur.id
                RETURNING * INTO cur;
                IF escalated THEN
                    PERFORM vigil._notify_alert(cur, 'escalated');
                END IF;
                alert_id := cur.id;
                is_new := false;
                RETURN;
            END IF;
            -- Open but not seen for longer than the window: a new incident.
            UPDATE vigil.alerts a SET status = 'expired' WHERE a.id = cur.id RETURNING * INTO cur;
            PERFORM vigil._notify_alert(cur, 'expired');
        END IF;

        -- Dismissed means dismissed: while the condition holds (seen within
        -- the window, not cleared by a scan since), repeats land on the
        -- dismissed alert and notify nobody.
        -- A dismissal covers its severity: a worse one is a new alert.
        SELECT * INTO cur FROM vigil.alerts a
        WHERE a.fingerprint = fp AND a.status = 'dismissed' AND a.cleared_at IS NULL
          AND coalesce(a.monitor, '') = coalesce(raise_alert.monitor, '')
          AND a.last_seen_at >= now() - raise_alert.dedup_window
          AND a.severity >= raise_alert.severity
        ORDER BY a.last_seen_at DESC
        LIMIT 1
        FOR UPDATE;
        IF FOUND THEN
            UPDATE vigil.alerts a SET last_seen_at = greatest(a.last_seen_at, now()), occurrences = a.occurrences + 1
            WHERE a.id = cur.id;
            alert_id := cur.id;
            is_new := false;
            RETURN;
        END IF;

        INSERT INTO vigil.alerts AS a (
            monitor, rule, anomaly_type, severity, urgency, entity, title, summary,
            details, recommended_actions, dedup_key, expires_at, labels, fingerprint)
        VALUES (
            raise_alert.monitor, raise_alert.rule, raise_alert.anomaly_type, raise_alert.severity,
            new_urgency, raise_alert.entity, raise_alert.title, raise_alert.summary, new_details,
            vigil.recommended_actions_for(raise_alert.anomaly_type, raise_alert.severity),
            dk, now() + raise_alert.expires_in, lbl, fp)
        ON CONFLICT ((coalesce(monitor, '')), fingerprint) WHERE status IN ('firing', 'acknowledged') DO NOTHING
        RETURNING * INTO cur;
        IF FOUND THEN
            PERFORM vigil._notify_alert(cur, 'new');
            alert_id := cur.id;
            is_new := true;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = '40001',
        MESSAGE = format('could not raise alert %s (fingerprint %s): the open alert kept changing concurrently', dk, fp);
END
$$;
COMMENT ON FUNCTION vigil.raise_alert(text, text, vigil.severity, text, text, jsonb, int, text, text, text, interval, interval, jsonb) IS
    'Raise an alert, or bump the open alert with the same identity last seen within dedup_window (occurrences, '
    'last_seen_at, expires_at; higher severity/urgency is an escalation). The identity is the fingerprint of the labels '
    '(vigil._alert_labels: given labels, alertname, anomaly_type, entity, monitor, rule), never the date: a condition '
    'that holds across midnight is one alert; a caller that passes dedup_key but no labels makes that key alone the '
    'identity, as before. While a dismissed alert of the '
    'same identity is still seen (within dedup_window, not cleared), repeats at or below its severity bump it silently. Notifies channel '
    'vigil_alerts on new, escalated and expired alerts. dedup_key (a field) defaults to vigil.dedup_key(anomaly_type, '
    'entity, now()), urgency to vigil.urgency_score(severity). details (merged into the open alert''s on a bump) larger '
    'than vigil.max_payload_bytes are stored as {"truncated": true, "original_bytes": N}; nested deeper than 32 levels '
    'is ERROR 54000; bad labels 22023 naming the label';

-- Grouping --------------------------------------------------------------

CREATE FUNCTION vigil.group_alerts(scan_id bigint, alert_ids bigint[]) RETURNS SETOF vigil.alert_groups
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    missing text;
    g vigil.alert_groups;
BEGIN
    IF group_alerts.alert_ids IS NULL OR array_position(group_alerts.alert_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'alert_ids must not be NULL or contain NULL';
    END IF;
    SELECT string_agg(i::text, ', ' ORDER BY i) INTO missing
    FROM unnest(group_alerts.alert_ids) AS i
    WHERE NOT EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.id = i);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('alert_ids: no alert with id %s', missing);
    END IF;

    FOR g IN
        INSERT INTO vigil.alert_groups (scan_id, anomaly_type, severity, urgency, affected_count, entities)
        SELECT group_alerts.scan_id, a.anomaly_type,
               CASE WHEN count(*) >= 3 THEN vigil.escalate_severity(max(a.severity)) ELSE max(a.severity) END,
               max(a.urgency), count(DISTINCT a.entity), array_agg(DISTINCT a.entity ORDER BY a.entity)
        FROM vigil.alerts a
        WHERE a.id = ANY (group_alerts.alert_ids)
        GROUP BY a.anomaly_type
        ORDER BY a.anomaly_type
        RETURNING *
    LOOP
        UPDATE vigil.alerts a SET group_id = g.id
        WHERE a.id = ANY (group_alerts.alert_ids) AND a.anomaly_type = g.anomaly_type;
        RETURN NEXT g;
    END LOOP;
END
$$;
COMMENT ON FUNCTION vigil.group_alerts(bigint, bigint[]) IS
    'Group alerts by anomaly type (one vigil.alert_groups row per type): worst severity, one level higher when the group has '
    '>= 3 alerts (capped at critical), max urgency, distinct entities; sets alerts.group_id';

-- Lifecycle -------------------------------------------------------------

CREATE FUNCTION vigil._lock_alert(alert_id bigint, action text, allowed vigil.alert_status[]) RETURNS vigil.alerts
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a vigil.alerts;
BEGIN
    IF alert_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'alert_id must not be NULL';
    END IF;
    SELECT * INTO a FROM vigil.alerts t WHERE t.id = alert_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('alert %s does not exist', alert_id);
    END IF;
    IF a.status <> ALL (allowed) THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('cannot %s alert %s: it is %s (allowed only when %s)',
                             action, alert_id, a.status, array_to_string(allowed, ' or '));
    END IF;
    RETURN a;
END
$$;
COMMENT ON FUNCTION vigil._lock_alert(bigint, text, vigil.alert_status[]) IS
    'Internal: lock an alert for a transition; ERROR P0002 when it does not exist, 55000 when its status does not allow the action';

CREATE FUNCTION vigil.acknowledge(alert_id bigint, by text, note text DEFAULT NULL) RETURNS vigil.alerts
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    a vigil.alerts;
BEGIN
    PERFORM vigil._require_text(acknowledge.by, 'by');
    PERFORM vigil._cap_text(acknowledge.by, 'by');
    PERFORM vigil._cap_text(acknowledge.note, 'note');
    PERFORM vigil._lock_alert(acknowledge.alert_id, 'acknowledge', '{firing}');
    UPDATE vigil.alerts t
    SET status = 'acknowledged', acknowledged_by = acknowledge.by, acknowledged_at = now(), ack_note = acknowledge.note,
        acknowledged_role = session_user
    WHERE t.id = acknowledge.alert_id
    RETURNING * INTO a;
    -- PagerDuty channels acknowledge their incident (no other kind is told).
    PERFORM vigil._enqueue_alert(a, 'acknowledged');
    RETURN a;
END
$$;
COMMENT ON FUNCTION vigil.acknowledge(bigint, text, text) IS
    'Acknowledge a firing alert (someone is on it); it stays open and still deduplicates repeats';

CREATE FUNCTION vigil.resolve(alert_id bigint, by text DEFAULT NULL, note text DEFAULT NULL) RETURNS vigil.alerts
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    a vigil.alerts;
    who text := session_user;
BEGIN
    IF resolve.by IS NOT NULL THEN
        who := vigil._require_text(resolve.by, 'by');
    END IF;
    PERFORM vigil._cap_text(who, 'by');
    PERFORM vigil._cap_text(resolve.note, 'note');
    PERFORM vigil._lock_alert(resolve.alert_id, 'resolve', '{firing,acknowledged}');
    UPDATE vigil.alerts t
    SET status = 'resolved', resolved_by = who, resolved_at = now(), resolve_note = resolve.note,
        resolved_role = session_user
    WHERE t.id = resolve.alert_id
    RETURNING * INTO a;
    PERFORM vigil._notify_alert(a, 'resolved');
    RETURN a;
END
$$;
COMMENT ON FUNCTION vigil.resolve(bigint, text, text) IS
    'Resolve an open alert (by defaults to the session user); notifies channel vigil_alerts with event resolved';

CREATE FUNCTION vigil.dismiss(alert_id bigint, by text, note text DEFAULT NULL) RETURNS vigil.alerts
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    a vigil.alerts;
BEGIN
    PERFORM vigil._require_text(dismiss.by, 'by');
    PERFORM vigil._cap_text(dismiss.by, 'by');
    PERFORM vigil._cap_text(dismiss.note, 'note');
    PERFORM vigil._lock_alert(dismiss.alert_id, 'dismiss', '{firing,acknowledged}');
    UPDATE vigil.alerts t
    SET status = 'dismissed', dismissed_by = dismiss.by, dismissed_at = now(), dismiss_note = dismiss.note,
        dismissed_role = session_user
    WHERE t.id = dismiss.alert_id
    RETURNING * INTO a;
    PERFORM vigil._notify_alert(a, 'dismissed');
    RETURN a;
END
$$;
COMMENT ON FUNCTION vigil.dismiss(bigint, text, text) IS
    'Dismiss an open alert as not actionable (false positive, known cause): repeats of its condition stay on it, '
    'silently, until the condition clears (a scan no longer finds it, or it is not seen for the dedup window); '
    'notifies channel vigil_alerts with event dismissed';

CREATE FUNCTION vigil.expire_alerts() RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a vigil.alerts;
    n bigint := 0;
BEGIN
    FOR a IN
        UPDATE vigil.alerts t SET status = 'expired'
        WHERE t.status IN ('firing', 'acknowledged') AND t.expires_at <= now()
        RETURNING *
    LOOP
        PERFORM vigil._notify_alert(a, 'expired');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.expire_alerts() IS
    'Mark open alerts past expires_at as expired, notifying channel vigil_alerts with event expired; returns how many';

CREATE FUNCTION vigil.auto_resolve(monitor text, still_firing_keys text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    a vigil.alerts;
    n bigint := 0;
    keys text[];
BEGIN
    PERFORM vigil._require_text(auto_resolve.monitor, 'monitor');
    IF auto_resolve.still_firing_keys IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'still_firing_keys must not be NULL (pass an empty array when nothing fires)';
    END IF;
    keys := array_remove(auto_resolve.still_firing_keys, NULL);
    FOR a IN
        UPDATE vigil.alerts t
        SET status = 'resolved', resolved_by = 'vigil', resolved_at = now(), resolve_note = 'condition cleared'
        WHERE t.monitor = auto_resolve.monitor
          AND t.status IN ('firing', 'acknowledged')
          AND t.fingerprint <> ALL (keys)
          AND t.dedup_key <> ALL (keys)
        RETURNING *
    LOOP
        PERFORM vigil._notify_alert(a, 'resolved');
        n := n + 1;
    END LOOP;
    -- The condition of a dismissed alert cleared: the next one is new.
    UPDATE vigil.alerts t SET cleared_at = now()
    WHERE coalesce(t.monitor, '') = auto_resolve.monitor
      AND t.status = 'dismissed' AND t.cleared_at IS NULL
      AND t.fingerprint <> ALL (keys)
      AND t.dedup_key <> ALL (keys);
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.auto_resolve(text, text[]) IS
    'Resolve (by vigil, note ''condition cleared'') the open alerts of a monitor whose fingerprint (or dedup_key) is not '
    'in still_firing_keys, and end the suppression of its dismissed alerts not in it; returns how many were resolved';

-- Views -----------------------------------------------------------------

CREATE VIEW vigil.active_alerts AS
SELECT a.id, a.status, a.severity, a.urgency, vigil.urgency_band(a.urgency) AS urgency_band,
       a.anomaly_type, a.entity, a.title, a.summary, a.recommended_actions, a.occurrences,
       a.monitor, a.rule, a.group_id, a.dedup_key,
       a.created_at, a.last_seen_at, now() - a.created_at AS age, a.expires_at,
       a.acknowledged_by, a.acknowledged_at, a.ack_note, a.details, a.labels, a.fingerprint
FROM vigil.alerts a
WHERE a.status IN ('firing', 'acknowledged')
ORDER BY a.urgency DESC, a.created_at, a.id;
COMMENT ON VIEW vigil.active_alerts IS
    'Open (firing or acknowledged) alerts, most urgent first, with urgency band and age';

CREATE VIEW vigil.alert_history AS
SELECT a.id, a.status, a.severity, a.urgency, a.anomaly_type, a.entity, a.title,
       a.monitor, a.rule, a.occurrences, a.created_at, a.last_seen_at,
       a.acknowledged_by, a.acknowledged_at, a.ack_note,
       a.acknowledged_at - a.created_at AS time_to_acknowledge,
       a.resolved_by, a.resolved_at, a.resolve_note,
       a.resolved_at - a.created_at AS time_to_resolve,
       a.dismissed_by, a.dismissed_at, a.dismiss_note,
       a.acknowledged_role, a.resolved_role, a.dismissed_role
FROM vigil.alerts a
ORDER BY a.created_at DESC, a.id DESC;
COMMENT ON VIEW vigil.alert_history IS
    'Every alert, newest first, with time to acknowledge and time to resolve';

CREATE VIEW vigil.alert_stats AS
SELECT a.anomaly_type, a.severity,
       count(*) FILTER (WHERE a.status IN ('firing', 'acknowledged')) AS open,
       count(*) FILTER (WHERE a.status = 'firing') AS firing,
       count(*) FILTER (WHERE a.status = 'acknowledged') AS acknowledged,
       count(*) FILTER (WHERE a.status = 'resolved') AS resolved,
       count(*) FILTER (WHERE a.status = 'dismissed') AS dismissed,
       count(*) FILTER (WHERE a.status = 'expired') AS expired,
       count(*) AS total,
       sum(a.occurrences) AS total_occurrences,
       avg(a.acknowledged_at - a.created_at)
           FILTER (WHERE a.created_at >= now() - interval '7 days') AS mean_time_to_acknowledge_7d,
       avg(a.resolved_at - a.created_at)
           FILTER (WHERE a.created_at >= now() - interval '7 days') AS mean_time_to_resolve_7d
FROM vigil.alerts a
GROUP BY a.anomaly_type, a.severity
ORDER BY a.anomaly_type, a.severity;
COMMENT ON VIEW vigil.alert_stats IS
    'Per anomaly type and severity: alerts by status, total occurrences, and mean time to acknowledge / resolve '
    'over the alerts created in the last 7 days';

-- Writers go through these functions; roles get EXECUTE in the roles module.
REVOKE EXECUTE ON FUNCTION
    vigil.raise_alert(text, text, vigil.severity, text, text, jsonb, int, text, text, text, interval, interval, jsonb),
    vigil.group_alerts(bigint, bigint[]),
    vigil.acknowledge(bigint, text, text),
    vigil.resolve(bigint, text, text),
    vigil.dismiss(bigint, text, text),
    vigil.expire_alerts(),
    vigil.auto_resolve(text, text[]),
    vigil._lock_alert(bigint, text, vigil.alert_status[]),
    vigil._recommended_actions_track_deleted_defaults(),
    vigil._recommended_actions_restore_replaces_default(),
    vigil._deleted_default_recommended_actions_apply()
FROM PUBLIC;
