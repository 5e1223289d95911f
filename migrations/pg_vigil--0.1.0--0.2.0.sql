-- pg_vigil 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_vigil UPDATE (as a
-- superuser, in one transaction: it all happens or nothing does).
--
-- Install the 0.2.0 package and restart the server first (the library is
-- preloaded). Until this update has run, the 0.2.0 library lets writes to
-- watched tables through without maintaining their rollups and refuses
-- the rest with a hint to run it (src/version.rs); this script then
-- recomputes every rollup. How it was made and how it is checked: README
-- "Upgrades"; the test in pgrx-tests/tests/upgrade installs 0.1.0 (built
-- from tag v0.1.0), runs this update and compares the schema with a fresh
-- 0.2.0 install.
\echo Use "ALTER EXTENSION pg_vigil UPDATE TO '0.2.0'" to load this file. \quit

-- 1. What 0.2.0 no longer has. 0.1.0's rollup INSERT triggers run
-- vigil._rollup_insert(); their other triggers and generated functions are
-- replaced in part 5.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel FROM pg_catalog.pg_trigger tg
             WHERE tg.tgfoid = 'vigil._rollup_insert()'::pg_catalog.regprocedure LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END
$$;
DROP FUNCTION vigil._rollup_insert();
DROP FUNCTION vigil.purge_notifications(interval);

-- 2. Tables: new columns (at the end, where ALTER TABLE puts them; the
-- comparison with a fresh install ignores column order), the open-alert
-- key per monitor, rule ids 1-999 reserved for shipped defaults.
ALTER TABLE vigil.alerts
    ADD COLUMN acknowledged_role name,
    ADD COLUMN resolved_role name,
    ADD COLUMN dismissed_role name,
    ADD COLUMN labels jsonb NOT NULL DEFAULT '{}' CONSTRAINT alerts_labels_check CHECK (jsonb_typeof(labels) = 'object'),
    ADD COLUMN fingerprint text,
    ADD COLUMN cleared_at timestamptz;
ALTER TABLE vigil.channels ADD COLUMN delivery_deadline interval NOT NULL DEFAULT '24 hours'
    CONSTRAINT channels_delivery_deadline_check
    CHECK (delivery_deadline > interval '0' AND delivery_deadline <= interval '30 days');
ALTER TABLE vigil.notifications ADD COLUMN replayed_at timestamptz;
-- Grouping: 0.1.0's channels keep one message per alert event (group_by
-- NULL); channels made from now on group by alertname unless told otherwise.
ALTER TABLE vigil.channels
    ADD COLUMN group_by text[],
    ADD COLUMN group_wait interval NOT NULL DEFAULT '30 seconds' CONSTRAINT channels_group_wait_check
        CHECK (group_wait >= interval '0' AND group_wait <= interval '1 day'),
    ADD COLUMN group_interval interval NOT NULL DEFAULT '5 minutes' CONSTRAINT channels_group_interval_check
        CHECK (group_interval > interval '0' AND group_interval <= interval '1 day');
ALTER TABLE vigil.channels ALTER COLUMN group_by SET DEFAULT '{alertname}';
-- The event list is the library's: the CHECK comes back in part 4, once
-- part 3 has made vigil._is_notification_event.
ALTER TABLE vigil.notifications DROP CONSTRAINT notifications_event_check;
-- Channel kinds pagerduty, msteams, alertmanager and email, and what a kind needs besides url
-- and headers (pagerduty: its routing key). The kind list is written once, in
-- the library (src/notify/channel.rs); the channels trigger checks it.
ALTER TABLE vigil.channels ADD COLUMN options jsonb NOT NULL DEFAULT '{}',
    DROP CONSTRAINT channels_kind_check;
-- Payloads are compressed with lz4 where the server was built with it:
-- pglz took a tenth of a grouped flush (a message lists up to 200 alerts).
DO $$
BEGIN
    ALTER TABLE vigil.notifications ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
ALTER TABLE vigil.monitors
    ADD COLUMN source_oid oid,
    ADD COLUMN created_by name NOT NULL DEFAULT current_user,
    ADD COLUMN timeout_ms int CONSTRAINT monitors_timeout_ms_check CHECK (timeout_ms > 0),
    -- The kind list is written once, in the library (vigil.monitor_kinds());
    -- vigil._monitors_guard checks it with the options.
    DROP CONSTRAINT monitors_kind_check;
ALTER TABLE vigil.rollup_defs ADD COLUMN group_source name[],
    ADD COLUMN on_detach text NOT NULL DEFAULT 'keep' CONSTRAINT rollup_defs_on_detach_check
        CHECK (on_detach IN ('keep', 'subtract'));
ALTER TABLE vigil.rules
    ADD COLUMN alertname text CONSTRAINT rules_alertname_check CHECK (btrim(alertname) <> ''),
    ADD COLUMN labels jsonb NOT NULL DEFAULT '{}' CONSTRAINT rules_labels_check CHECK (jsonb_typeof(labels) = 'object');
ALTER TABLE vigil.rules ALTER COLUMN id SET START WITH 1000;
REVOKE USAGE ON SCHEMA vigil FROM vigil_reader;

-- The statsagg and sketch aggregates' states become concrete types (Citus
-- pushes them down to its workers): the types before part 3's functions
-- use them. Part 3 then points stats_agg, percentile_agg and both rollup
-- aggregates at the new support functions with CREATE OR REPLACE AGGREGATE
-- (views and functions that call them stay as they are) and drops 0.1.0's
-- internal-state functions.
CREATE TYPE vigil.stats_state;
CREATE FUNCTION vigil.stats_state_in(cstring) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_in' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_out(vigil.stats_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vigil_stats_state_out' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_recv(internal) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_recv' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_send(vigil.stats_state) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_stats_state_send' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE vigil.stats_state (
    INPUT = vigil.stats_state_in,
    OUTPUT = vigil.stats_state_out,
    SEND = vigil.stats_state_send,
    RECEIVE = vigil.stats_state_recv,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = plain
);
CREATE TYPE vigil.sketch_state;
CREATE FUNCTION vigil.sketch_state_in(cstring) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_in' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_out(vigil.sketch_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_out' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_recv(internal) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_recv' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_send(vigil.sketch_state) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_send' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE vigil.sketch_state (
    INPUT = vigil.sketch_state_in,
    OUTPUT = vigil.sketch_state_out,
    SEND = vigil.sketch_state_send,
    RECEIVE = vigil.sketch_state_recv,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);

-- 3. Functions, views, triggers, event triggers, new tables, comments and
-- privileges that are new or changed in 0.2.0: drafted from pg_dump of a
-- 0.1.0 and a fresh 0.2.0 install (in the fresh dump's order, which
-- respects dependencies), CREATE made CREATE OR REPLACE.
SET LOCAL check_function_bodies = off;

DROP FUNCTION IF EXISTS vigil._decide_variant(vigil.monitors, vigil.variant_monitoring, text);

DROP FUNCTION IF EXISTS vigil._finding_key(text, text, text, text);

DROP FUNCTION IF EXISTS vigil._rollup_insert();

DROP FUNCTION IF EXISTS vigil._scan_insight(text, text, text, text, text, bigint, double precision, double precision, double precision, text, text);

DROP FUNCTION IF EXISTS vigil.create_channel(text, text, text, jsonb, vigil.severity, text[], boolean, double precision, interval);

DROP FUNCTION IF EXISTS vigil.create_rule(text, text, text, double precision, vigil.severity, interval, interval, text, text);

DROP FUNCTION IF EXISTS vigil.purge_notifications(interval);

DROP FUNCTION IF EXISTS vigil.raise_alert(text, text, vigil.severity, text, text, jsonb, integer, text, text, text, interval, interval);

DROP FUNCTION IF EXISTS vigil.update_rule(text, text, text, double precision, vigil.severity, interval, interval, text, text, boolean);

COMMENT ON TYPE vigil.notification_status IS 'Outbox row state: pending (due at next_attempt_at), sending (leased by the worker), sent, failed (rejected, 4xx), dead (still undeliverable at the channel''s delivery deadline)';

COMMENT ON FUNCTION vigil.sketch_in(input cstring) IS 'Input of vigil.sketch (the text form sketch_out prints)';

COMMENT ON FUNCTION vigil.sketch_out(value vigil.sketch) IS 'Output of vigil.sketch: relative error, count and runs of buckets';

CREATE OR REPLACE FUNCTION vigil.sketch_recv(buf internal) RETURNS vigil.sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'sketch_recv_wrapper';

COMMENT ON FUNCTION vigil.sketch_recv(buf internal) IS 'Binary input of vigil.sketch: the bytes sketch_send wrote, checked like stored ones';

CREATE OR REPLACE FUNCTION vigil.sketch_send(value vigil.sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'sketch_send_wrapper';

COMMENT ON FUNCTION vigil.sketch_send(value vigil.sketch) IS 'Binary output of vigil.sketch (COPY BINARY, binary protocol): its stored bytes';

CREATE OR REPLACE FUNCTION vigil.sketch_state_in(cstring) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_in';

COMMENT ON FUNCTION vigil.sketch_state_in(cstring) IS 'Internal: text input of vigil.sketch_state (the text form of vigil.sketch)';

CREATE OR REPLACE FUNCTION vigil.sketch_state_out(vigil.sketch_state) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_out';

COMMENT ON FUNCTION vigil.sketch_state_out(vigil.sketch_state) IS 'Internal: text output of vigil.sketch_state';

CREATE OR REPLACE FUNCTION vigil.sketch_state_recv(internal) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_recv';

COMMENT ON FUNCTION vigil.sketch_state_recv(internal) IS 'Internal: binary input of vigil.sketch_state';

CREATE OR REPLACE FUNCTION vigil.sketch_state_send(vigil.sketch_state) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_send';

COMMENT ON FUNCTION vigil.sketch_state_send(vigil.sketch_state) IS 'Internal: binary output of vigil.sketch_state';

COMMENT ON TYPE vigil.sketch_state IS 'Transition state of vigil.percentile_agg and vigil.rollup(sketch); text form that of vigil.sketch, lossless, as Citus ships partial aggregates between nodes';

CREATE OR REPLACE FUNCTION vigil.stats_state_in(cstring) RETURNS vigil.stats_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_in';

COMMENT ON FUNCTION vigil.stats_state_in(cstring) IS 'Internal: text input of vigil.stats_state';

CREATE OR REPLACE FUNCTION vigil.stats_state_out(vigil.stats_state) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_out';

COMMENT ON FUNCTION vigil.stats_state_out(vigil.stats_state) IS 'Internal: text output of vigil.stats_state';

CREATE OR REPLACE FUNCTION vigil.stats_state_recv(internal) RETURNS vigil.stats_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_recv';

COMMENT ON FUNCTION vigil.stats_state_recv(internal) IS 'Internal: binary input of vigil.stats_state';

CREATE OR REPLACE FUNCTION vigil.stats_state_send(vigil.stats_state) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_send';

COMMENT ON FUNCTION vigil.stats_state_send(vigil.stats_state) IS 'Internal: binary output of vigil.stats_state';

COMMENT ON TYPE vigil.stats_state IS 'Transition state of vigil.stats_agg and vigil.rollup(statsagg) (count, sums, extremes); text form "stats_state:" and hex, lossless, as Citus ships partial aggregates between nodes';

COMMENT ON FUNCTION vigil.statsagg_in(input cstring) IS 'Input of vigil.statsagg: (n:…,mean:…,m2:…,min:…,max:…); refuses summaries no values could produce';

COMMENT ON FUNCTION vigil.statsagg_out(value vigil.statsagg) IS 'Output of vigil.statsagg, exact (round-trips through statsagg_in)';

CREATE OR REPLACE FUNCTION vigil.statsagg_recv(buf internal) RETURNS vigil.statsagg
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'statsagg_recv_wrapper';

COMMENT ON FUNCTION vigil.statsagg_recv(buf internal) IS 'Binary input of vigil.statsagg: the bytes statsagg_send wrote, checked like stored ones';

CREATE OR REPLACE FUNCTION vigil.statsagg_send(value vigil.statsagg) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'statsagg_send_wrapper';

COMMENT ON FUNCTION vigil.statsagg_send(value vigil.statsagg) IS 'Binary output of vigil.statsagg (COPY BINARY, binary protocol): its stored bytes';

CREATE OR REPLACE FUNCTION vigil._age_rolling(name oid) RETURNS bigint
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'age_rolling_wrapper';

COMMENT ON FUNCTION vigil._age_rolling(name oid) IS 'Internal: vigil.age_rolling''s work';

COMMENT ON TABLE vigil.alerts IS 'Alerts raised by monitors and rules, one open alert per fingerprint (its labels but severity); written through vigil.raise_alert and the lifecycle functions';

COMMENT ON COLUMN vigil.alerts.dedup_key IS 'The finding''s key when the alert opened (scans: dated, {type}_{entity}_{UTC date}); a field, not the identity';

COMMENT ON COLUMN vigil.alerts.labels IS 'String labels: alertname, severity, anomaly_type, entity, monitor or rule, and the monitor''s own labels';

COMMENT ON COLUMN vigil.alerts.fingerprint IS 'Identity: vigil.alert_fingerprint(labels), every label but severity; stable across days and scans';

COMMENT ON COLUMN vigil.alerts.cleared_at IS 'For a dismissed alert: when its condition was seen clear, which ends the dismissal''s suppression';

CREATE OR REPLACE FUNCTION vigil._alert_document(alert vigil.alerts) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT to_jsonb(alert) || jsonb_build_object('affected_count',
        (SELECT g.affected_count FROM vigil.alert_groups g WHERE g.id = alert.group_id))
$$;

COMMENT ON FUNCTION vigil._alert_document(alert vigil.alerts) IS 'Internal: the alert row as JSON with its group''s affected_count, what the single-alert payloads are built from';

CREATE OR REPLACE FUNCTION vigil._alert_labels(labels jsonb, anomaly_type text, entity text, severity vigil.severity, monitor text, rule text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- Total: data (entity, a finding's subkey) never fails a raise; what
    -- users configure was checked where they configured it.
    SELECT l || jsonb_build_object('alertname', coalesce(l ->> 'alertname', rule, monitor, anomaly_type))
        || jsonb_strip_nulls(jsonb_build_object(
               'anomaly_type', anomaly_type, 'entity', entity, 'severity', severity::text,
               'monitor', monitor, 'rule', rule))
    FROM vigil._labels_at_raise(coalesce(labels, '{}')) AS l
$$;

COMMENT ON FUNCTION vigil._alert_labels(labels jsonb, anomaly_type text, entity text, severity vigil.severity, monitor text, rule text) IS 'Internal: an alert''s labels: the given ones (vigil._labels_at_raise: label names checked, values as text), alertname (given, else the rule, the monitor or the anomaly type), and anomaly_type, entity, severity, monitor and rule, which override given ones; never fails on values';

CREATE OR REPLACE FUNCTION vigil._alertmanager_batches(ids bigint[], cap integer) RETURNS SETOF jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS 'MODULE_PATHNAME', 'alertmanager_batches_wrapper';

COMMENT ON FUNCTION vigil._alertmanager_batches(ids bigint[], cap integer) IS 'Internal: the Alertmanager bodies re-posting these open alerts (at most 200 read), each within cap bytes';

CREATE OR REPLACE FUNCTION vigil._alertmanager_resend_seconds() RETURNS integer
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'alertmanager_resend_seconds_wrapper';

COMMENT ON FUNCTION vigil._alertmanager_resend_seconds() IS 'Internal: vigil.alertmanager_resend_interval, in seconds';

CREATE OR REPLACE FUNCTION vigil._base_type(typ oid, typmod integer) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'base_type_wrapper';

COMMENT ON FUNCTION vigil._base_type(typ oid, typmod integer) IS 'Internal: format_type of a type''s base type (itself unless a domain), NULL for no type';

CREATE OR REPLACE FUNCTION vigil._cap_details(details jsonb, argument text) RETURNS jsonb
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil._cap_details(details jsonb, argument text) IS 'Internal: details unchanged, or {"truncated": true, "original_bytes": N} when larger than vigil.max_payload_bytes; ERROR 54000 naming the argument when nested deeper than 32 levels';

CREATE OR REPLACE FUNCTION vigil._cap_text(value text, argument text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF octet_length(value) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = '22001',
            MESSAGE = format('%s is %s bytes; at most 8192 are accepted', argument, octet_length(value));
    END IF;
    RETURN value;
END
$$;

COMMENT ON FUNCTION vigil._cap_text(value text, argument text) IS 'Internal: value unchanged, or ERROR 22001 when longer than 8192 bytes, naming the argument';

CREATE OR REPLACE FUNCTION vigil._capped_payload(kind text, channel_name text, alert jsonb, event text) RETURNS jsonb
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    cap int := vigil._max_payload_bytes();
    p jsonb := vigil._render_payload(kind, channel_name, alert, event);
    n bigint := octet_length(p::text);
    cut jsonb;
BEGIN
    IF n <= cap THEN
        RETURN p;
    END IF;
    -- Too large: first the details go (their size stays in the marker) ...
    cut := alert || jsonb_build_object('details', jsonb_build_object(
        'truncated', true, 'original_bytes', octet_length((alert -> 'details')::text)));
    p := vigil._render_payload(kind, channel_name, cut, event);
    IF octet_length(p::text) <= cap THEN
        RETURN p;
    END IF;
    -- ... then long texts are cut, and the payload says so ...
    cut := cut || jsonb_build_object(
        'title', left(cut ->> 'title', 250), 'entity', left(cut ->> 'entity', 250),
        'summary', left(cut ->> 'summary', 1000), 'recommended_actions', '[]'::jsonb,
        'truncated', true, 'original_bytes', n);
    p := vigil._render_payload(kind, channel_name, cut, event);
    IF octet_length(p::text) <= cap THEN
        RETURN p;
    END IF;
    -- ... and a payload that still does not fit is replaced by a marker.
    RETURN jsonb_build_object('truncated', true, 'original_bytes', n,
                              'alert_id', alert -> 'id', 'event', event);
END
$$;

COMMENT ON FUNCTION vigil._capped_payload(kind text, channel_name text, alert jsonb, event text) IS 'Internal: vigil._render_payload, kept within vigil.max_payload_bytes: over the cap the alert''s details become {"truncated": true, "original_bytes": N}, then title/entity/summary are cut and the alert marked truncated, and as a last resort the payload is only {"truncated": true, "original_bytes", "alert_id", "event"}';

COMMENT ON TABLE vigil.channels IS 'Where notifications go. url, headers and options are secrets (vigil_admin only). Slack channels default to max_per_second 1';

COMMENT ON COLUMN vigil.channels.url IS 'http(s) URL for slack, webhook, pagerduty (the Events API v2 endpoint), msteams (the Workflows webhook) and alertmanager (its /api/v2/alerts endpoint); smtp://host[:port] (STARTTLS) or smtps://host[:port] for email; the NOTIFY channel name for pg_notify. Secret';

COMMENT ON COLUMN vigil.channels.options IS 'What the kind needs besides url and headers, a JSON object: pagerduty {"routing_key": "<integration key>"}; email {"from", "to": [...], "cc"?, "username"?, "password"?, "tls"?: "starttls" | "none"}; other kinds none. Secret';

COMMENT ON COLUMN vigil.channels.repeat_interval IS 'A notification with the same alert key and event is not repeated on this channel within this interval (0 to 100 years)';

COMMENT ON COLUMN vigil.channels.delivery_deadline IS 'How long after a notification is queued (or replayed) retryable failures are retried; after that it is dead (over 0, at most 30 days)';

COMMENT ON COLUMN vigil.channels.group_by IS 'Labels whose values make a group: its alerts go out together, one message per flush (NULL: one message per alert event; pg_notify channels are never grouped)';

COMMENT ON COLUMN vigil.channels.group_wait IS 'How long a new group waits for more alerts before its first message';

COMMENT ON COLUMN vigil.channels.group_interval IS 'Least time between two messages of a group about changes in it';

CREATE OR REPLACE FUNCTION vigil._channel_kind_traits(kind text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'channel_kind_traits_wrapper';

COMMENT ON FUNCTION vigil._channel_kind_traits(kind text) IS 'Internal: what a channel kind decides for its rows (groups, always_resolved, default_max_per_second), applied by the channels trigger; NULL for a kind that is none';

CREATE OR REPLACE FUNCTION vigil._channel_names(names text[], argument text) RETURNS text[]
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    missing text;
BEGIN
    IF names IS NULL OR cardinality(names) = 0 OR array_position(names, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s must name at least one channel, and no NULL', argument);
    END IF;
    SELECT n INTO missing FROM unnest(names) n
    WHERE NOT EXISTS (SELECT 1 FROM vigil.channels ch WHERE ch.name = n) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('%s: channel "%s" does not exist', argument, missing);
    END IF;
    RETURN vigil._distinct_names(names);
END
$$;

COMMENT ON FUNCTION vigil._channel_names(names text[], argument text) IS 'Internal: channel names without repeats, or ERROR 22023 (none, NULL) / 42704 (unknown) naming the argument';

CREATE OR REPLACE FUNCTION vigil._channel_references() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    user_name text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT 'route "' || r.name || '"' INTO user_name FROM vigil.routes r WHERE OLD.name = ANY (r.channels) LIMIT 1;
        IF user_name IS NULL THEN
            SELECT 'escalation policy "' || p.name || '"' INTO user_name FROM vigil.escalation_policies p
            WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(p.steps) st
                          WHERE st -> 'channels' ? OLD.name) LIMIT 1;
        END IF;
        IF user_name IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '2BP01',
                MESSAGE = format('cannot drop channel "%s": %s sends to it', OLD.name, user_name),
                HINT = 'Remove the channel from the route or policy first.';
        END IF;
        RETURN OLD;
    END IF;
    -- A rename follows into the routes and policies that name the channel.
    UPDATE vigil.routes r SET channels = array_replace(r.channels, OLD.name, NEW.name)
    WHERE OLD.name = ANY (r.channels);
    UPDATE vigil.escalation_policies p
    SET steps = (SELECT jsonb_agg(jsonb_set(st, '{channels}',
                     (SELECT jsonb_agg(CASE WHEN c = to_jsonb(OLD.name) THEN to_jsonb(NEW.name) ELSE c END)
                      FROM jsonb_array_elements(st -> 'channels') c)) ORDER BY i)
                 FROM jsonb_array_elements(p.steps) WITH ORDINALITY s(st, i))
    WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(p.steps) st WHERE st -> 'channels' ? OLD.name);
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._channel_references() IS 'Internal: triggers of vigil.channels: a channel a route or escalation step names cannot be dropped (2BP01); a rename follows into them';

CREATE OR REPLACE FUNCTION vigil._channels_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    traits jsonb;
BEGIN
    -- Every check of every column runs here, before the table's own
    -- constraints (CHECK, NOT NULL), whose errors would print the failing
    -- row (URL and headers) in DETAIL. Messages name the column, never the
    -- URL. (UNIQUE (name) reports only the name.)
    PERFORM vigil._require_text(NEW.name, 'name');
    PERFORM vigil._check_channel(NEW.kind, NEW.url, NEW.headers);
    PERFORM vigil._check_channel_options(NEW.kind, NEW.options);
    IF NEW.max_per_second IS NOT NULL AND NOT (NEW.max_per_second >= 0.001 AND NEW.max_per_second <= 100000) THEN
        RAISE EXCEPTION USING ERRCODE = '22003',
            MESSAGE = format('max_per_second must be between 0.001 and 100000, got %s', NEW.max_per_second);
    END IF;
    IF NEW.repeat_interval IS NULL OR NEW.repeat_interval < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('repeat_interval must be a non-negative interval, got %s',
                             coalesce(NEW.repeat_interval::text, 'NULL'));
    END IF;
    -- The bound keeps now() - repeat_interval (computed at every enqueue) in
    -- range: a larger value would make every later alert fail.
    IF NEW.repeat_interval > interval '100 years' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('repeat_interval must be at most 100 years, got %s', NEW.repeat_interval);
    END IF;
    IF NEW.delivery_deadline IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'delivery_deadline must not be NULL';
    END IF;
    -- The bound keeps the worker's retries of one row finite and within
    -- vigil.max_attempts at the backoff cap.
    IF NOT (NEW.delivery_deadline > interval '0' AND NEW.delivery_deadline <= interval '30 days') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('delivery_deadline must be a positive interval of at most 30 days, got %s',
                             NEW.delivery_deadline);
    END IF;
    IF NEW.group_by IS NOT NULL AND (cardinality(NEW.group_by) > 32 OR EXISTS (
            SELECT 1 FROM unnest(NEW.group_by) l WHERE l IS NULL OR l !~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$')) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'group_by must be at most 32 label names ([A-Za-z_][A-Za-z0-9_]*), or NULL for no grouping';
    END IF;
    -- What the kind decides (src/notify/channel.rs, kind_traits): whether
    -- it groups, whether it hears of every close, its default rate.
    traits := vigil._channel_kind_traits(NEW.kind);
    IF NOT (traits->>'groups')::bool THEN
        NEW.group_by := NULL;
    END IF;
    IF (traits->>'always_resolved')::bool THEN
        NEW.send_resolved := true;
    END IF;
    IF NEW.group_wait IS NULL OR NOT (NEW.group_wait >= interval '0' AND NEW.group_wait <= interval '1 day') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('group_wait must be an interval from 0 to 1 day, got %s', coalesce(NEW.group_wait::text, 'NULL'));
    END IF;
    IF NEW.group_interval IS NULL OR NOT (NEW.group_interval > interval '0' AND NEW.group_interval <= interval '1 day') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('group_interval must be an interval over 0 and at most 1 day, got %s',
                             coalesce(NEW.group_interval::text, 'NULL'));
    END IF;
    IF NEW.headers IS NULL THEN
        NEW.headers := '{}';
    END IF;
    IF NEW.min_severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'min_severity must not be NULL (allowed: info, low, medium, high, critical)';
    END IF;
    IF NEW.send_resolved IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'send_resolved must not be NULL';
    END IF;
    IF NEW.enabled IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'enabled must not be NULL';
    END IF;
    IF NEW.created_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'created_at must not be NULL';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.updated_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'updated_at must not be NULL';
    END IF;
    IF NEW.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'id must not be NULL';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.max_per_second IS NULL THEN
        NEW.max_per_second := (traits->>'default_max_per_second')::float8;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$_$;

COMMENT ON FUNCTION vigil._channels_check() IS 'Internal: BEFORE trigger of vigil.channels; every check of a channel row, with messages that never print its URL or headers';

COMMENT ON FUNCTION vigil._check_channel(kind text, url text, headers jsonb) IS 'Internal: ERROR 22004/22023 naming what is wrong with a channel''s kind, url or headers (never repeating the URL)';

CREATE OR REPLACE FUNCTION vigil._check_channel_options(kind text, options jsonb) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'check_channel_options_wrapper';

COMMENT ON FUNCTION vigil._check_channel_options(kind text, options jsonb) IS 'Internal: ERROR 22023 naming what is wrong when a channel''s options do not suit its kind (pagerduty: routing_key); never repeats the values';

CREATE OR REPLACE FUNCTION vigil._check_labels(labels jsonb, argument text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'check_labels_wrapper';

COMMENT ON FUNCTION vigil._check_labels(labels jsonb, argument text) IS 'Internal: labels unchanged, or ERROR 22023 naming the argument and the label: a JSON object of at most 32 string labels, names [A-Za-z_][A-Za-z0-9_]* not starting with __, values non-empty and at most 8192 bytes';

COMMENT ON TABLE vigil.rules IS 'Alert rules on pushed metrics: value <op> threshold, or pct_drop / pct_rise (percent change vs the entity''s average over lookback) >= threshold. cooldown: no new alert for the same rule and entity that soon after the last one closed';

COMMENT ON COLUMN vigil.rules.cooldown IS 'After the rule''s alert for an entity closed (resolved, dismissed, or last seen when it expired), no new alert for that entity until this has passed (repeats still bump the open alert); as a threshold monitor''s cooldown';

COMMENT ON COLUMN vigil.rules.alertname IS 'The alertname label of the rule''s alerts (NULL: the rule''s name); the defaults carry the seed''s names, e.g. ROAS_DROP';

COMMENT ON COLUMN vigil.rules.labels IS 'String labels added to every alert of the rule, e.g. {"team": "ads"}';

CREATE OR REPLACE FUNCTION vigil._check_rule(rule vigil.rules) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM vigil._require_text(rule.name, 'name'),
            vigil._require_text(rule.metric, 'metric'),
            vigil._require_text(rule.anomaly_type, 'anomaly_type'),
            vigil._check_labels(coalesce(rule.labels, '{}'), 'labels');
    IF rule.alertname IS NOT NULL THEN
        PERFORM vigil._require_text(rule.alertname, 'alertname');
        PERFORM vigil._check_labels(jsonb_build_object('alertname', rule.alertname), 'alertname');
    END IF;
    IF rule.operator IS NULL OR rule.operator NOT IN ('<', '<=', '>', '>=', '=', '!=', 'pct_drop', 'pct_rise') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('operator must be one of <, <=, >, >=, =, !=, pct_drop, pct_rise, got %s',
                             coalesce(quote_literal(rule.operator), 'NULL'));
    END IF;
    IF rule.threshold IS NULL OR rule.threshold IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('threshold must be a finite number, got %s', coalesce(rule.threshold::text, 'NULL'));
    END IF;
    IF rule.operator IN ('pct_drop', 'pct_rise') AND rule.threshold <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('threshold of a %s rule must be a percentage > 0, got %s', rule.operator, rule.threshold);
    END IF;
    IF rule.severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'severity must not be NULL (allowed: info, low, medium, high, critical)';
    END IF;
    IF rule.lookback IS NULL OR rule.lookback < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('lookback must be an interval >= 0, got %s', coalesce(rule.lookback::text, 'NULL'));
    END IF;
    IF rule.operator IN ('pct_drop', 'pct_rise') AND rule.lookback = interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('lookback of a %s rule must be > 0: it is the window of the baseline average', rule.operator);
    END IF;
    IF rule.cooldown IS NULL OR rule.cooldown < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('cooldown must be an interval >= 0, got %s', coalesce(rule.cooldown::text, 'NULL'));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vigil._config_row_check(enabled boolean, created_at timestamp with time zone, updated_at timestamp with time zone, op text) RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF enabled IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'enabled must not be NULL';
    END IF;
    IF created_at IS NULL OR updated_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'created_at and updated_at must not be NULL';
    END IF;
    RETURN CASE WHEN op = 'UPDATE' THEN now() ELSE updated_at END;
END
$$;

COMMENT ON FUNCTION vigil._config_row_check(enabled boolean, created_at timestamp with time zone, updated_at timestamp with time zone, op text) IS 'Internal: ERROR 22004 when enabled, created_at or updated_at is NULL; else the updated_at to store (now() on UPDATE)';

CREATE OR REPLACE FUNCTION vigil._count_alert(event text, severity text) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'count_alert_wrapper';

COMMENT ON FUNCTION vigil._count_alert(event text, severity text) IS 'Internal: counts an alert event (new, resolved, dismissed, expired; others are not counted) of a severity in vigil.metrics when the transaction commits';

CREATE OR REPLACE FUNCTION vigil._count_scan(failed_monitors integer) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'count_scan_wrapper';

COMMENT ON FUNCTION vigil._count_scan(failed_monitors integer) IS 'Internal: counts a vigil.scan() run and its failed monitors in vigil.metrics when the transaction commits';

CREATE OR REPLACE FUNCTION vigil._create_rolling(name text, rollup oid, since interval) RETURNS oid
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'create_rolling_wrapper';

COMMENT ON FUNCTION vigil._create_rolling(name text, rollup oid, since interval) IS 'Internal: vigil.create_rolling''s work, as the source''s owner';

COMMENT ON FUNCTION vigil._create_rollup(name text, source oid, time_column text, bucket interval, group_by text[], measures jsonb) IS 'Internal: vigil.create_rollup''s work, as the source''s owner';

CREATE OR REPLACE FUNCTION vigil._cron_job_name(monitor text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE WHEN monitor IS NULL THEN 'vigil_scan' ELSE 'vigil_scan:' || monitor END
$$;

COMMENT ON FUNCTION vigil._cron_job_name(monitor text) IS 'Internal: the pg_cron job name of a scan schedule (vigil_scan, or vigil_scan:<monitor>)';

CREATE OR REPLACE FUNCTION vigil._deleted_default_recommended_actions_apply() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil._deleted_default_recommended_actions_apply() IS 'Internal: BEFORE INSERT row trigger of vigil.deleted_default_recommended_actions; a loaded tombstone deletes its default if that is still unchanged, and is skipped when the key is still present or already recorded';

CREATE OR REPLACE FUNCTION vigil._deleted_default_rules_apply() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- Deleting fires the tracking trigger, which records this very id.
    IF EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = NEW.id AND vigil._rule_is_default(r)) THEN
        DELETE FROM vigil.rules r WHERE r.id = NEW.id AND vigil._rule_is_default(r);
    END IF;
    -- A tombstone is kept only for a default that is gone, and once.
    IF EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = NEW.id)
       OR EXISTS (SELECT 1 FROM vigil.deleted_default_rules t WHERE t.id = NEW.id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._deleted_default_rules_apply() IS 'Internal: BEFORE INSERT row trigger of vigil.deleted_default_rules; a loaded tombstone deletes its default rule if that is still unchanged, and is skipped when the id is still in vigil.rules or already recorded';

CREATE OR REPLACE FUNCTION vigil._distinct_names(names text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT ARRAY(SELECT n FROM unnest(names) WITH ORDINALITY u(n, i) GROUP BY n ORDER BY min(i))
$$;

COMMENT ON FUNCTION vigil._distinct_names(names text[]) IS 'Internal: the names without repeats, each where it first appears';

CREATE OR REPLACE FUNCTION vigil._drop_buckets_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_combine';

COMMENT ON FUNCTION vigil._drop_buckets_combine(internal, internal) IS 'Internal: combine function of vigil._drop_buckets (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_buckets_deserial(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_deserial';

COMMENT ON FUNCTION vigil._drop_buckets_deserial(bytea, internal) IS 'Internal: deserialization of vigil._drop_buckets''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_buckets_final(internal) RETURNS double precision[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_final';

COMMENT ON FUNCTION vigil._drop_buckets_final(internal) IS 'Internal: final function of vigil._drop_buckets';

CREATE OR REPLACE FUNCTION vigil._drop_buckets_serial(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_serial';

COMMENT ON FUNCTION vigil._drop_buckets_serial(internal) IS 'Internal: serialization of vigil._drop_buckets''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_buckets_trans(internal, timestamp with time zone, double precision, double precision, double precision, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_trans';

COMMENT ON FUNCTION vigil._drop_buckets_trans(internal, timestamp with time zone, double precision, double precision, double precision, integer) IS 'Internal: transition of vigil._drop_buckets';

CREATE OR REPLACE FUNCTION vigil._drop_latest_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_combine';

COMMENT ON FUNCTION vigil._drop_latest_combine(internal, internal) IS 'Internal: combine function of vigil._drop_latest (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_latest_deserial(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_deserial';

COMMENT ON FUNCTION vigil._drop_latest_deserial(bytea, internal) IS 'Internal: deserialization of vigil._drop_latest''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_latest_final(internal) RETURNS double precision[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_final';

COMMENT ON FUNCTION vigil._drop_latest_final(internal) IS 'Internal: final function of vigil._drop_latest';

CREATE OR REPLACE FUNCTION vigil._drop_latest_serial(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_serial';

COMMENT ON FUNCTION vigil._drop_latest_serial(internal) IS 'Internal: serialization of vigil._drop_latest''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._drop_latest_trans(internal, timestamp with time zone, double precision) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_trans';

COMMENT ON FUNCTION vigil._drop_latest_trans(internal, timestamp with time zone, double precision) IS 'Internal: transition of vigil._drop_latest';

CREATE OR REPLACE FUNCTION vigil._drop_rolling(name oid) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'drop_rolling_wrapper';

COMMENT ON FUNCTION vigil._drop_rolling(name oid) IS 'Internal: vigil.drop_rolling''s work';

COMMENT ON FUNCTION vigil._drop_rollup(name oid) IS 'Internal: vigil.drop_rollup''s work';

CREATE OR REPLACE FUNCTION vigil._early_kill_trigger() RETURNS trigger
    LANGUAGE c SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS 'MODULE_PATHNAME', 'early_kill_trigger_wrapper';

CREATE OR REPLACE FUNCTION vigil._enqueue_alert(alert vigil.alerts, event text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    c vigil.channels;
    routed text[];         -- NULL: every channel (no routes)
    firing bool := event IN ('new', 'escalated');
    has_routes bool;
    has_policies bool;
    suppressing bool;
    why text;
    checked bool := false; -- whether why is known (only ungrouped channels need it)
    doc jsonb;             -- the alert document, made for the first ungrouped channel
    was_held text;
    queued int := 0;
BEGIN
    -- One look at what is configured, so an install without routes,
    -- policies, silences or inhibition rules pays for none of them.
    SELECT EXISTS (SELECT 1 FROM vigil.routes r WHERE r.enabled),
           firing AND EXISTS (SELECT 1 FROM vigil.escalation_policies p WHERE p.enabled),
           firing AND vigil._suppression_active()
    INTO has_routes, has_policies, suppressing;
    IF has_routes THEN
        routed := vigil.route_alert(alert.labels);
    END IF;
    IF has_policies THEN
        PERFORM vigil._start_escalations(alert);
    END IF;
    FOR c IN
        SELECT * FROM vigil.channels ch
        WHERE ch.enabled
          AND (routed IS NULL OR ch.name = ANY (routed))
          AND alert.severity >= ch.min_severity
          AND (ch.anomaly_types IS NULL OR alert.anomaly_type = ANY (ch.anomaly_types))
          AND (firing OR ch.send_resolved OR ch.group_by IS NOT NULL)
          -- An acknowledgement is news only to PagerDuty (its incident's state).
          AND (event <> 'acknowledged' OR ch.kind = 'pagerduty')
        ORDER BY ch.id
    LOOP
        IF c.group_by IS NULL THEN
            -- Grouped channels decide suppression when they flush; the
            -- first ungrouped one decides it for the rest.
            IF suppressing AND NOT checked THEN
                why := vigil.alert_suppressed_by(alert);
                checked := true;
            END IF;
            IF why IS NOT NULL THEN
                -- Silenced or inhibited: held back until released; a
                -- receiver not told of it yet hears of it as new.
                INSERT INTO vigil.held_notifications AS h (channel_id, alert_id, event, reason)
                VALUES (c.id, alert.id, event, why)
                ON CONFLICT (channel_id, alert_id) DO UPDATE SET reason = excluded.reason;
                CONTINUE;
            END IF;
            was_held := NULL;
            DELETE FROM vigil.held_notifications h WHERE h.channel_id = c.id AND h.alert_id = alert.id
            RETURNING h.event INTO was_held;
            -- A receiver never told the alert fired is not told it closed,
            -- and hears of an escalation of it as a new alert.
            CONTINUE WHEN NOT firing AND was_held = 'new';
            doc := coalesce(doc, vigil._alert_document(alert));
            IF was_held = 'new' THEN
                queued := queued + vigil._enqueue_to(c, alert, 'new', doc);
                CONTINUE;
            END IF;
        END IF;
        queued := queued + vigil._enqueue_to(c, alert, event, doc);
    END LOOP;
    IF queued > 0 THEN
        PERFORM vigil._wake_worker();
    END IF;
    RETURN queued;
END
$$;

COMMENT ON FUNCTION vigil._enqueue_alert(alert vigil.alerts, event text) IS 'Internal: the alert event for every enabled channel it is routed to (vigil.route_alert) whose severity and type filters it passes (the closing events resolved, dismissed and expired only to channels with send_resolved, or grouped); a silenced or inhibited alert is held back (vigil.held_notifications), a firing one starts its escalation policies';

CREATE OR REPLACE FUNCTION vigil._enqueue_to(c vigil.channels, alert vigil.alerts, event text, doc jsonb DEFAULT NULL::jsonb) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    key text := alert.fingerprint || ':' || event
        || CASE WHEN event = 'escalated' THEN ':' || alert.severity::text ELSE '' END;
BEGIN
    -- A grouped channel: the alert joins its group, which the worker
    -- flushes as one message (vigil._flush_groups).
    -- (pg_notify channels never have group_by: the channels trigger.)
    IF c.group_by IS NOT NULL THEN
        PERFORM vigil._group_alert(c, alert);
        RETURN 1;
    END IF;
    -- Events of one key are already serialised by the alert's row lock
    -- (raise_alert, resolve), so this check cannot pass twice at once.
    -- Repeats of one event are held back for repeat_interval, unless the
    -- channel was told the alert ended since (then a new one must go out).
    IF c.repeat_interval > interval '0' AND EXISTS (
            SELECT 1 FROM vigil.notifications n
            WHERE n.channel_id = c.id AND n.notify_key = key
              AND n.created_at > now() - c.repeat_interval
              AND NOT EXISTS (
                  SELECT 1 FROM vigil.notifications m
                  WHERE m.channel_id = c.id AND m.created_at >= n.created_at AND m.id > n.id
                    AND m.notify_key IN (alert.fingerprint || ':resolved', alert.fingerprint || ':dismissed',
                                         alert.fingerprint || ':expired'))) THEN
        RETURN 0;
    END IF;
    INSERT INTO vigil.notifications (channel_id, alert_id, event, notify_key, payload)
    VALUES (c.id, alert.id, event, key,
            vigil._capped_payload(c.kind, c.name, coalesce(doc, vigil._alert_document(alert)), event));
    RETURN 1;
END
$$;

COMMENT ON FUNCTION vigil._enqueue_to(c vigil.channels, alert vigil.alerts, event text, doc jsonb) IS 'Internal: the alert event for one channel: into its group (grouped channels), or one outbox row (built from doc, else vigil._alert_document) unless the channel got the same fingerprint and event within its repeat_interval; returns 1 when something was queued';

CREATE OR REPLACE FUNCTION vigil._escalation_policies_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    st jsonb;
    i int := 0;
    after interval;
    total interval := interval '0';
    canonical jsonb := '[]';
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    IF NEW.min_severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'min_severity must not be NULL';
    END IF;
    IF NEW.steps IS NULL OR jsonb_typeof(NEW.steps) <> 'array'
       OR jsonb_array_length(NEW.steps) NOT BETWEEN 1 AND 20 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'steps must be a JSON array of 1 to 20 {"after": interval, "channels": [names]}';
    END IF;
    FOR st IN SELECT x FROM jsonb_array_elements(NEW.steps) x LOOP
        i := i + 1;
        IF jsonb_typeof(st) <> 'object' OR jsonb_typeof(st -> 'after') IS DISTINCT FROM 'string'
           OR jsonb_typeof(st -> 'channels') IS DISTINCT FROM 'array'
           OR EXISTS (SELECT 1 FROM jsonb_object_keys(st) k WHERE k NOT IN ('after', 'channels'))
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(st -> 'channels') c WHERE jsonb_typeof(c) <> 'string') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s] must be {"after": interval, "channels": [channel names]}', i);
        END IF;
        BEGIN
            after := (st ->> 'after')::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow
                       OR invalid_parameter_value THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after is not an interval: %s', i, left(st ->> 'after', 100));
        END;
        -- Days and time only, none negative: what the check adds up is what
        -- the clock will add (months and mixed signs are not).
        IF extract(year FROM after) <> 0 OR extract(month FROM after) <> 0 OR extract(day FROM after) < 0
           OR after - make_interval(days => extract(day FROM after)::int) < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after must be days and time, none negative (no months), got %s', i, after);
        END IF;
        IF after > interval '7 days' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after must be from 0 to 7 days, got %s', i, after);
        END IF;
        total := total + after;
        canonical := canonical || jsonb_build_array(jsonb_build_object(
            'after', after::text,
            'channels', to_jsonb(vigil._channel_names(
                ARRAY(SELECT jsonb_array_elements_text(st -> 'channels')), format('steps[%s].channels', i)))));
    END LOOP;
    IF NEW."repeat" IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'repeat must not be NULL';
    END IF;
    -- A chain that repeats pages at most once a minute.
    IF NEW."repeat" AND total < interval '1 minute' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('a repeating chain must take at least 1 minute in all; its steps take %s', total);
    END IF;
    NEW.steps := canonical;
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._escalation_policies_check() IS 'Internal: BEFORE trigger of vigil.escalation_policies: canonical steps (intervals, existing channels), matchers';

CREATE OR REPLACE FUNCTION vigil._flush_groups(max_groups integer DEFAULT 1000) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    g vigil.notification_groups;
    due vigil.notification_groups[];  -- the groups this flush sends, locked
    c vigil.channels;
    firing jsonb;          -- id -> severity of the group's open alerts
    closed bigint[];       -- alerts closed since a message reported them firing
    held_ids bigint[];     -- open alerts silenced or inhibited now
    message bool;          -- whether this flush sends the group a message
    changed bool;
    unacked bool;
    suppressing bool := vigil._suppression_active();
    suppressed jsonb := '{}';  -- alert id -> why, for the open alerts of the due groups
    queued int := 0;
    failure text;
BEGIN
    -- Fold the events into their groups: a new group is due group_wait after
    -- its first event; one that already sent a message is due a change
    -- group_interval after that message (or sooner if a reminder is due).
    WITH ev AS (
        DELETE FROM vigil.notification_group_events e RETURNING e.*),
    per AS (
        SELECT ev.channel_id, ev.group_key, min(ev.group_labels::text)::jsonb AS group_labels,
               array_agg(DISTINCT ev.alert_id) AS ids, min(ev.at) AS first_at
        FROM ev GROUP BY 1, 2)
    INSERT INTO vigil.notification_groups AS ng (channel_id, group_key, group_labels, alert_ids, flush_at)
    SELECT per.channel_id, per.group_key, per.group_labels, per.ids, per.first_at + ch.group_wait
    FROM per JOIN vigil.channels ch ON ch.id = per.channel_id
    ON CONFLICT (channel_id, group_key) DO UPDATE SET
        alert_ids = ARRAY(SELECT DISTINCT x FROM unnest(ng.alert_ids || excluded.alert_ids) x),
        flush_at = CASE WHEN ng.flushed_at IS NULL THEN ng.flush_at
                        ELSE least(coalesce(ng.flush_at, 'infinity'),
                                   greatest(now(), ng.flushed_at + (SELECT ch.group_interval FROM vigil.channels ch
                                                                    WHERE ch.id = ng.channel_id))) END;
    -- The due groups are locked once (another session's flush, or an
    -- admin's open DELETE on a channel, holds its own), and suppression is
    -- decided for exactly their alerts at once.
    due := ARRAY(
        SELECT t FROM vigil.notification_groups t JOIN vigil.channels ch ON ch.id = t.channel_id
        WHERE t.flush_at <= now() AND ch.enabled
        ORDER BY t.flush_at, t.channel_id, t.group_key
        LIMIT max_groups
        FOR UPDATE OF t SKIP LOCKED);
    IF suppressing THEN
        suppressed := (
            SELECT coalesce(jsonb_object_agg(s.alert_id::text, s.reason), '{}')
            FROM vigil._suppressed_alerts(ARRAY(
                SELECT DISTINCT x FROM unnest(due) d, unnest(d.alert_ids) x)) s);
    END IF;
    FOREACH g IN ARRAY due
    LOOP
        -- Each group on its own: one that cannot be sent is retried later
        -- and never holds back the others or the rest of the outbox.
        BEGIN
            SELECT * INTO c FROM vigil.channels ch WHERE ch.id = g.channel_id;
            -- Silenced or inhibited open alerts are left out of the message
            -- (held): the receiver keeps what it was last told of them, and
            -- hears of them when they are released (vigil._release_held).
            SELECT coalesce(jsonb_object_agg(x.id::text, x.severity::text) FILTER (WHERE x.open AND NOT x.sup), '{}'),
                   coalesce(array_agg(x.id) FILTER (WHERE x.open AND x.sup), '{}'),
                   coalesce(array_agg(x.id) FILTER (WHERE NOT x.open AND g.notified ? x.id::text), '{}'),
                   coalesce(bool_or(x.open AND NOT x.sup
                                    AND (NOT g.notified ? x.id::text
                                         OR (g.notified ->> x.id::text)::vigil.severity < x.severity)), false),
                   coalesce(bool_or(x.status = 'firing' AND NOT x.sup), false)
            INTO firing, held_ids, closed, changed, unacked
            FROM (SELECT a.id, a.severity, a.status, a.status IN ('firing', 'acknowledged') AS open,
                         a.status IN ('firing', 'acknowledged') AND suppressed ? a.id::text AS sup
                  FROM vigil.alerts a
                  WHERE a.id = ANY (g.alert_ids) AND a.severity >= c.min_severity
                    AND (c.anomaly_types IS NULL OR a.anomaly_type = ANY (c.anomaly_types))) x;
            IF NOT c.send_resolved THEN
                closed := '{}';
            END IF;
            message := changed OR cardinality(closed) > 0
                OR coalesce(unacked AND c.repeat_interval > interval '0' AND g.flushed_at + c.repeat_interval <= now(),
                            false);
            IF message THEN
                -- At most 200 alerts go into a message, worst and newest
                -- first, each with its long texts cut; the rest are counted.
                INSERT INTO vigil.notifications (channel_id, alert_id, event, notify_key, payload)
                VALUES (c.id, NULL, 'group', g.group_key,
                        vigil._group_message(c.kind, c.name,
                            ARRAY(SELECT k::bigint FROM jsonb_object_keys(firing) k) || closed,
                            g.group_labels, vigil._max_payload_bytes()));
                queued := queued + 1;
                g.flushed_at := now();
            END IF;
            -- The receiver now knows what this message said of the firing
            -- ones, and still what it was told before of the held ones.
            g.notified := (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(g.notified) e(k, v)
                           WHERE k::bigint = ANY (held_ids) OR (firing ? k AND NOT message))
                          || CASE WHEN message THEN firing ELSE '{}' END;
            IF firing = '{}' AND cardinality(held_ids) = 0 THEN
                DELETE FROM vigil.notification_groups t WHERE t.channel_id = g.channel_id AND t.group_key = g.group_key;
            ELSE
                -- Reminders while an alert of the group is firing unacknowledged.
                UPDATE vigil.notification_groups t
                SET alert_ids = ARRAY(SELECT k::bigint FROM jsonb_object_keys(firing) k) || held_ids,
                    held = held_ids,
                    notified = g.notified, flushed_at = g.flushed_at,
                    flush_at = CASE WHEN unacked AND c.repeat_interval > interval '0'
                                    THEN coalesce(g.flushed_at, now()) + c.repeat_interval END
                WHERE t.channel_id = g.channel_id AND t.group_key = g.group_key;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
            RAISE WARNING USING ERRCODE = '08006',
                MESSAGE = format('pg_vigil: group %s of channel %s could not be sent (retried in 5 minutes): %s',
                                 g.group_key, g.channel_id, failure);
            -- Nothing held is recorded meanwhile, so releasing a silence
            -- cannot cut the 5 minutes short (the retry works it out anew).
            UPDATE vigil.notification_groups t SET flush_at = now() + interval '5 minutes', held = '{}'
            WHERE t.channel_id = g.channel_id AND t.group_key = g.group_key;
        END;
    END LOOP;
    -- No wake-up: the worker, which calls this, sends the new rows next.
    RETURN queued;
END
$$;

COMMENT ON FUNCTION vigil._flush_groups(max_groups integer) IS 'Internal: folds new alert events into their groups, then sends the due groups (run by the worker each round): one message per group listing its firing alerts (and, with send_resolved, those resolved since), when an alert joined or escalated, one closed, or a reminder is due (repeat_interval while an alert is firing unacknowledged); returns how many messages were queued';

CREATE OR REPLACE FUNCTION vigil._forget_dropped_rollups() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    DELETE FROM vigil.rollup_defs d
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND d.summary::oid = o.objid;
    DELETE FROM vigil.rolling_defs r
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid IN (r.totals::oid, r.summary::oid, r.view::oid);
    DELETE FROM vigil.rollup_detached d
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid IN (d.summary, d.rel);
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() o WHERE o.object_type = 'trigger') THEN
        PERFORM vigil._rollup_dropped();
    END IF;
END
$$;

COMMENT ON FUNCTION vigil._forget_dropped_rollups() IS 'Internal: event trigger that forgets dropped summaries, drops a rollup whose source triggers a CASCADE dropped, and refuses dropping one of its triggers alone';

CREATE OR REPLACE FUNCTION vigil._group_alert(c vigil.channels, alert vigil.alerts) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    gl jsonb := (SELECT coalesce(jsonb_object_agg(k, coalesce(alert.labels ->> k, '')), '{}')
                 FROM unnest(c.group_by) AS k);
BEGIN
    INSERT INTO vigil.notification_group_events (channel_id, group_key, group_labels, alert_id)
    VALUES (c.id, gl::text, gl, alert.id);
END
$$;

COMMENT ON FUNCTION vigil._group_alert(c vigil.channels, alert vigil.alerts) IS 'Internal: records that the alert changed for its group on a grouped channel (vigil.notification_group_events); the caller (vigil._enqueue_alert) wakes the worker';

CREATE OR REPLACE FUNCTION vigil._group_message(kind text, channel_name text, ids bigint[], group_labels jsonb, cap integer) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS 'MODULE_PATHNAME', 'group_message_wrapper';

COMMENT ON FUNCTION vigil._group_message(kind text, channel_name text, ids bigint[], group_labels jsonb, cap integer) IS 'Internal: the Slack message or webhook (Alertmanager''s grouped shape) for a group of alerts, read from vigil.alerts (at most 200, open first, worst and newest first, long texts cut, large details dropped), within a byte cap; alerts left out are counted in truncatedAlerts';

CREATE OR REPLACE FUNCTION vigil._inhibit_rules_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.source_matchers := vigil._matchers(NEW.source_matchers, 'source_matchers');
    NEW.target_matchers := vigil._matchers(NEW.target_matchers, 'target_matchers');
    IF cardinality(NEW.source_matchers) = 0 OR cardinality(NEW.target_matchers) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'source_matchers and target_matchers must each hold at least one matcher';
    END IF;
    IF NEW.equal IS NULL OR cardinality(NEW.equal) > 32 OR EXISTS (
            SELECT 1 FROM unnest(NEW.equal) l WHERE l IS NULL OR l !~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'equal must be at most 32 label names ([A-Za-z_][A-Za-z0-9_]*)';
    END IF;
    NEW.equal := ARRAY(SELECT DISTINCT l FROM unnest(NEW.equal) l ORDER BY l);
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$_$;

COMMENT ON FUNCTION vigil._inhibit_rules_check() IS 'Internal: BEFORE trigger of vigil.inhibit_rules: canonical matchers on both sides, equal label names';

CREATE OR REPLACE FUNCTION vigil._is_notification_event(event text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_notification_event_wrapper';

COMMENT ON FUNCTION vigil._is_notification_event(event text) IS 'Internal: whether a queued notification may carry this event (the CHECK of vigil.notifications.event); the list is the library''s';

CREATE OR REPLACE FUNCTION vigil._json_size(doc text, argument text, cap integer) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'json_size_wrapper';

COMMENT ON FUNCTION vigil._json_size(doc text, argument text, cap integer) IS 'Internal: size in bytes of a JSON document; ERROR 54000 when nested too deep, 22023 when unreadable';

CREATE OR REPLACE FUNCTION vigil._kind_default_actions() RETURNS TABLE(anomaly_type text, severity text, actions text[])
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'kind_default_actions_wrapper';

COMMENT ON FUNCTION vigil._kind_default_actions() IS 'Internal: the recommended actions each monitor kind ships for its anomaly types (src/monitor/kinds), which fill vigil.default_recommended_actions';

CREATE OR REPLACE FUNCTION vigil._labels_at_raise(labels jsonb) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'labels_at_raise_wrapper';

COMMENT ON FUNCTION vigil._labels_at_raise(labels jsonb) IS 'Internal: labels of one raise made total: names checked (22023), strings kept, numbers and booleans as text, nulls dropped';

CREATE OR REPLACE FUNCTION vigil._matchers(matchers text[], argument text) RETURNS text[]
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'matchers_wrapper';

COMMENT ON FUNCTION vigil._matchers(matchers text[], argument text) IS 'Internal: Alertmanager matchers parsed and written canonically (name op "value"); ERROR 22023 naming argument[i] when one is malformed or its regex does not compile';

CREATE OR REPLACE FUNCTION vigil._matchers_equalities(matchers text[]) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'matchers_equalities_wrapper';

COMMENT ON FUNCTION vigil._matchers_equalities(matchers text[]) IS 'Internal: the = matchers with a non-empty value as a labels object (what a matching alert''s labels contain)';

CREATE OR REPLACE FUNCTION vigil._max_payload_bytes() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT coalesce(nullif(current_setting('vigil.max_payload_bytes', true), '')::int, 65536)
$$;

COMMENT ON FUNCTION vigil._max_payload_bytes() IS 'Internal: vigil.max_payload_bytes (default 65536), the cap on notification payloads and alert details';

CREATE OR REPLACE FUNCTION vigil._metrics() RETURNS TABLE(name text, channel_kind text, severity text, le double precision, value double precision)
    LANGUAGE c STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'metrics_wrapper';

COMMENT ON FUNCTION vigil._metrics() IS 'The counters vigil.metrics shows (name, channel_kind, severity, le, value), read from shared memory; no rows unless pg_vigil is preloaded';

COMMENT ON FUNCTION vigil._monitor_by_name(name text) IS 'Internal: the monitor of that name, or ERROR 42704';

CREATE OR REPLACE FUNCTION vigil._monitor_kind_trigger(kind text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'monitor_kind_trigger_wrapper';

COMMENT ON FUNCTION vigil._monitor_kind_trigger(kind text) IS 'Internal: the statement trigger function a monitor kind that decides on write adds to its source (early_kill), NULL for a kind that scans';

CREATE OR REPLACE FUNCTION vigil._monitor_labels(options jsonb, subkey text) RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'monitor_labels_wrapper';

COMMENT ON FUNCTION vigil._monitor_labels(options jsonb, subkey text) IS 'Internal: the labels a monitor gives its alerts: options.labels, options.alertname, and subkey (the finding''s key suffix, e.g. a stall monitor''s status) when there is one';

COMMENT ON FUNCTION vigil._monitor_plan(kind text, options jsonb, source text, columns_json jsonb) IS 'Internal: a monitor''s options checked and defaulted, and its scan query (a source that is no rollup''s summary)';

CREATE OR REPLACE FUNCTION vigil._monitor_plan(kind text, options jsonb, source text, columns_json jsonb, rollup jsonb) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'monitor_plan_on_wrapper';

COMMENT ON FUNCTION vigil._monitor_plan(kind text, options jsonb, source text, columns_json jsonb, rollup jsonb) IS 'Internal: a monitor''s options checked and defaulted, and its scan query, over a rollup''s summary when the last argument is its definition (vigil._source_rollup)';

CREATE OR REPLACE FUNCTION vigil._monitor_run(monitor bigint) RETURNS jsonb
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'monitor_run_wrapper';

COMMENT ON FUNCTION vigil._monitor_run(monitor bigint) IS 'Internal: runs one monitor''s query as its source''s owner, restricted, under its timeout; jsonb rows';

CREATE OR REPLACE FUNCTION vigil._monitors_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    src regclass;
    relkind "char";
    sch name;
    is_super bool := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.kind, NEW.source_schema, NEW.source_table, NEW.source_oid, NEW.options, NEW.created_by)
            IS NOT DISTINCT FROM (OLD.kind, OLD.source_schema, OLD.source_table, OLD.source_oid, OLD.options, OLD.created_by) THEN
        RETURN NEW;
    END IF;
    IF NOT is_super OR NEW.created_by IS NULL THEN
        NEW.created_by := current_user;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = NEW.created_by) THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('created_by: role "%s" does not exist', NEW.created_by);
    END IF;
    src := to_regclass(format('%I.%I', NEW.source_schema, NEW.source_table));
    IF src IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = format('source: relation %I.%I does not exist', NEW.source_schema, NEW.source_table);
    END IF;
    SELECT c.relkind, n.nspname INTO relkind, sch FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = src;
    -- A kind that decides on write adds a trigger to its source
    -- (vigil._monitor_kind_trigger): a table, not a view.
    IF relkind NOT IN ('r', 'p', 'v', 'm', 'f')
       OR (vigil._monitor_kind_trigger(NEW.kind) IS NOT NULL AND relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('source %s must be a %s', src,
                             CASE WHEN vigil._monitor_kind_trigger(NEW.kind) IS NOT NULL
                                  THEN format('table (%s adds a trigger to it)', NEW.kind)
                                  ELSE 'table, view or materialized view' END);
    END IF;
    -- vigil.health is the one pg_vigil relation a monitor may watch (the
    -- health kind, which the planner pins to it; it runs as the creator).
    IF (sch IN ('vigil', 'pg_catalog', 'information_schema') OR sch LIKE 'pg\_toast%')
       AND src IS DISTINCT FROM 'vigil.health'::regclass THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('source %s is a pg_vigil or system table', src);
    END IF;
    -- A superuser's write may be a restore, run before the source's grants:
    -- every scan checks again.
    IF NOT is_super AND NOT has_table_privilege(NEW.created_by, src, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('permission denied: source %s is not readable by %s', src, NEW.created_by);
    END IF;
    NEW.source_oid := src;
    PERFORM vigil._require_sane_json(NEW.options, 'options');
    NEW.options := vigil._monitor_plan(NEW.kind, NEW.options, format('%I.%I', NEW.source_schema, NEW.source_table),
                                       vigil._source_columns(src), vigil._source_rollup(src))->'options';
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._monitors_guard() IS 'Internal: validates every insert or definition change of vigil.monitors like vigil.create_monitor (source pinned by oid, writer recorded as created_by and able to SELECT it, options checked)';

CREATE OR REPLACE FUNCTION vigil._notify_alert(alert vigil.alerts, event text) RETURNS void
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT pg_catalog.pg_notify('vigil_alerts', vigil.alert_event(alert, event)::text);
    -- vigil.metrics counts the event when this transaction commits.
    SELECT vigil._count_alert(event, (alert).severity::text);
    SELECT vigil._enqueue_alert(alert, event);
$$;

CREATE OR REPLACE FUNCTION vigil._pg_notify_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pg_notify_payload_wrapper';

COMMENT ON FUNCTION vigil._pg_notify_payload(alert jsonb, event text) IS 'Internal: what LISTENers get for an alert event (channel vigil_alerts, pg_notify channels): {"id", "event"} only, since any role can LISTEN';

COMMENT ON FUNCTION vigil._rebuild_rollup(name oid) IS 'Internal: vigil.rebuild_rollup''s work';

CREATE OR REPLACE FUNCTION vigil._recommended_action_is_default(action vigil.recommended_actions) RETURNS boolean
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM vigil.default_recommended_actions d
        WHERE d.anomaly_type = action.anomaly_type AND d.severity IS NOT DISTINCT FROM action.severity
          AND d.actions = action.actions)
$$;

COMMENT ON FUNCTION vigil._recommended_action_is_default(action vigil.recommended_actions) IS 'Internal: true when the row is a shipped default exactly as shipped; such rows are left out of dumps, CREATE EXTENSION recreates them';

CREATE OR REPLACE FUNCTION vigil._recommended_actions_restore_replaces_default() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil._recommended_actions_restore_replaces_default() IS 'Internal: BEFORE INSERT row trigger of vigil.recommended_actions; a superuser''s INSERT (a restore) with the key of an unchanged default replaces that default';

CREATE OR REPLACE FUNCTION vigil._recommended_actions_track_deleted_defaults() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil._recommended_actions_track_deleted_defaults() IS 'Internal: AFTER statement trigger of vigil.recommended_actions; vigil.deleted_default_recommended_actions lists exactly the default keys missing from vigil.recommended_actions';

CREATE OR REPLACE FUNCTION vigil._release_held(max_rows integer DEFAULT 5000) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    h record;
    released int := 0;
BEGIN
    -- Ungrouped channels: what was held is sent once the alert is no longer
    -- suppressed (a closed alert's row went with its closing event).
    FOR h IN
        SELECT t.channel_id, t.alert_id, t.event, a AS alert, ch AS channel
        FROM vigil.held_notifications t
        JOIN vigil.alerts a ON a.id = t.alert_id
        JOIN vigil.channels ch ON ch.id = t.channel_id
        ORDER BY t.held_at
        LIMIT max_rows
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF (h.alert).status IN ('firing', 'acknowledged') AND vigil.alert_suppressed_by(h.alert) IS NOT NULL THEN
            CONTINUE;
        END IF;
        DELETE FROM vigil.held_notifications t WHERE t.channel_id = h.channel_id AND t.alert_id = h.alert_id;
        IF (h.alert).status IN ('firing', 'acknowledged') THEN
            released := released + vigil._enqueue_to(h.channel, h.alert, h.event);
        END IF;
    END LOOP;
    -- Grouped channels: a group holding an alert that is no longer
    -- suppressed (or closed) is due now; the flush sends what changed.
    UPDATE vigil.notification_groups g SET flush_at = now()
    WHERE cardinality(g.held) > 0 AND (g.flush_at IS NULL OR g.flush_at > now())
      AND EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.id = ANY (g.held)
                  AND (a.status NOT IN ('firing', 'acknowledged') OR vigil.alert_suppressed_by(a) IS NULL));
    RETURN released;
END
$$;

COMMENT ON FUNCTION vigil._release_held(max_rows integer) IS 'Internal (the worker, every few seconds while anything is held): sends the held notifications of alerts no longer silenced or inhibited (at most max_rows held rows per call, oldest first), and makes groups holding such alerts due; returns how many rows it queued';

CREATE OR REPLACE FUNCTION vigil._render_payload(kind text, channel_name text, alert jsonb, event text) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE kind
        WHEN 'slack' THEN vigil.slack_payload(alert, event)
        WHEN 'webhook' THEN vigil.webhook_payload(alert, event, channel_name)
        WHEN 'pagerduty' THEN vigil.pagerduty_payload(alert, event)
        WHEN 'msteams' THEN vigil.msteams_payload(alert, event)
        WHEN 'alertmanager' THEN vigil.alertmanager_payload(alert, event)
        WHEN 'email' THEN vigil.email_payload(alert, event)
        -- pg_notify: what channel vigil_alerts carries, the alert id and the
        -- event only (any role can LISTEN on any channel).
        ELSE vigil._pg_notify_payload(alert, event)
    END
$$;

COMMENT ON FUNCTION vigil._render_payload(kind text, channel_name text, alert jsonb, event text) IS 'Internal: the payload a channel of this kind receives for an alert event (pg_notify: {"id", "event"} only)';

COMMENT ON FUNCTION vigil._require_cron() IS 'Internal: ERROR 55000 with a hint unless pg_cron is installed in this database';

CREATE OR REPLACE FUNCTION vigil._require_sane_json(value jsonb, argument text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    IF value IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_column_size(value) > 1048576 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = format('%s is %s bytes; at most 1 MiB is accepted', argument, pg_column_size(value));
    END IF;
    IF jsonb_path_exists(value, 'strict $.**{32 to last}') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s is nested more than 32 levels deep', argument);
    END IF;
    RETURN value;
END
$_$;

COMMENT ON FUNCTION vigil._require_sane_json(value jsonb, argument text) IS 'Internal: refuses (54000, 22023) a JSON argument over 1 MiB or nested deeper than 32 levels, naming the argument';

CREATE OR REPLACE FUNCTION vigil._resend_alertmanager() RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    c vigil.channels;
    every interval := make_interval(secs => vigil._alertmanager_resend_seconds());
    has_routes bool;
    suppressing bool;
    ids bigint[];
    body jsonb;
    queued int := 0;
BEGIN
    FOR c IN
        SELECT * FROM vigil.channels ch
        WHERE ch.enabled AND ch.kind = 'alertmanager'
          AND NOT EXISTS (SELECT 1 FROM vigil.notifications n
                          WHERE n.channel_id = ch.id AND n.notify_key = 'resend' AND n.created_at > now() - every)
        ORDER BY ch.id
    LOOP
        -- A re-post still queued (the Alertmanager was unreachable) is
        -- superseded: the new one says the same with a later endsAt, and
        -- the old one must not arrive after it.
        UPDATE vigil.notifications n
        SET status = 'failed', last_error = 'superseded by a newer re-post', updated_at = now()
        WHERE n.channel_id = c.id AND n.notify_key = 'resend' AND n.status = 'pending';
        IF has_routes IS NULL THEN
            has_routes := EXISTS (SELECT 1 FROM vigil.routes r WHERE r.enabled);
            suppressing := vigil._suppression_active();
        END IF;
        -- The open alerts this channel would be sent, as _enqueue_alert
        -- decides it: routed to it, severity and type passing its filters,
        -- not silenced or inhibited.
        ids := ARRAY(SELECT a.id FROM vigil.alerts a
                     WHERE a.status IN ('firing', 'acknowledged')
                       AND a.severity >= c.min_severity
                       AND (c.anomaly_types IS NULL OR a.anomaly_type = ANY (c.anomaly_types))
                       AND (NOT has_routes OR c.name = ANY (vigil.route_alert(a.labels)))
                     ORDER BY a.id);
        IF suppressing AND cardinality(ids) > 0 THEN
            ids := ARRAY(SELECT x FROM unnest(ids) x
                         EXCEPT SELECT s.alert_id FROM vigil._suppressed_alerts(ids) s);
        END IF;
        -- In slices of 200 (what one read of vigil._alertmanager_batches
        -- takes), each split to fit vigil.max_payload_bytes.
        FOR i IN 0 .. (cardinality(ids) - 1) / 200 LOOP
            FOR body IN SELECT b FROM vigil._alertmanager_batches(ids[i * 200 + 1 : i * 200 + 200],
                                                                  vigil._max_payload_bytes()) b
            LOOP
                INSERT INTO vigil.notifications (channel_id, event, notify_key, payload)
                VALUES (c.id, 'resend', 'resend', body);
                queued := queued + 1;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN queued;
END
$$;

COMMENT ON FUNCTION vigil._resend_alertmanager() IS 'Internal (the worker, each round): for every enabled alertmanager channel not re-posted within vigil.alertmanager_resend_interval, one outbox row (event resend) per slice of its open, routed, unsuppressed alerts, with endsAt four intervals ahead; returns how many rows it queued';

CREATE OR REPLACE FUNCTION vigil._retention_cutoff(older_than interval, max_rows bigint) RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'older_than must not be NULL';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('older_than must be a non-negative interval, got %s', older_than);
    END IF;
    IF max_rows IS NOT NULL AND max_rows < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('max_rows must be at least 1 (NULL: no limit), got %s', max_rows);
    END IF;
    RETURN now() - older_than;
EXCEPTION WHEN datetime_field_overflow THEN
    RAISE EXCEPTION USING ERRCODE = '22008',
        MESSAGE = format('older_than is too large: now() - %s is out of the timestamp range', older_than);
END
$$;

COMMENT ON FUNCTION vigil._retention_cutoff(older_than interval, max_rows bigint) IS 'Internal: now() - older_than for the purge functions; ERROR 22004 for a NULL older_than, 22023 for a negative one or max_rows < 1, 22008 when the cutoff is out of the timestamp range';

CREATE OR REPLACE FUNCTION vigil._rolling_read(totals regclass) RETURNS SETOF record
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'vigil_rolling_read';

COMMENT ON FUNCTION vigil._rolling_read(totals regclass) IS 'Internal: the rows of a rolling total''s view (read it through the view; needs SELECT on the view)';

CREATE OR REPLACE FUNCTION vigil._rolling_size(totals regclass, OUT cutoff timestamp with time zone, OUT groups bigint, OUT unfolded bigint) RETURNS record
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT (j->>'cutoff')::timestamptz, (j->>'groups')::bigint, (j->>'unfolded')::bigint FROM vigil._rolling_stats(totals) j
$$;

COMMENT ON FUNCTION vigil._rolling_size(totals regclass, OUT cutoff timestamp with time zone, OUT groups bigint, OUT unfolded bigint) IS 'Internal: a rolling total''s cutoff, groups and unfolded slot rows for vigil.rolling, NULL while another transaction locks its table';

CREATE OR REPLACE FUNCTION vigil._rolling_stats(totals oid) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'rolling_stats_wrapper';

COMMENT ON FUNCTION vigil._rolling_stats(totals oid) IS 'Internal: cutoff, groups and unfolded slot rows of a rolling total, read as its owner';

CREATE OR REPLACE FUNCTION vigil._rollup_ddl(classid oid, objid oid) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'rollup_ddl_wrapper';

COMMENT ON FUNCTION vigil._rollup_ddl(classid oid, objid oid) IS 'Internal: keeps the rollups that involve an object just created or altered working (follows renames and owner changes, records dependencies, registers a restored trigger''s definition) or refuses the change';

CREATE OR REPLACE FUNCTION vigil._rollup_ddl_event() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT DISTINCT e.classid, e.objid FROM pg_event_trigger_ddl_commands() e
             WHERE e.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass, 'pg_type'::regclass, 'pg_namespace'::regclass)
             ORDER BY 1, 2
    LOOP
        PERFORM vigil._rollup_ddl(c.classid, c.objid);
    END LOOP;
END
$$;

COMMENT ON FUNCTION vigil._rollup_ddl_event() IS 'Internal: event trigger (ddl_command_end) that keeps rollups working across DDL on their tables and restores';

CREATE OR REPLACE FUNCTION vigil._rollup_dropped() RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'rollup_dropped_wrapper';

COMMENT ON FUNCTION vigil._rollup_dropped() IS 'Internal: for the sql_drop event trigger; the rollups that lost a trigger in this command are dropped (CASCADE) or the command refused (DROP TRIGGER)';

CREATE OR REPLACE FUNCTION vigil._rollup_size(summary regclass, OUT rows bigint, OUT latest_bucket timestamp with time zone) RETURNS record
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT (j->>'rows')::bigint, (j->>'latest_bucket')::timestamptz FROM vigil._rollup_stats(summary) j
$$;

COMMENT ON FUNCTION vigil._rollup_size(summary regclass, OUT rows bigint, OUT latest_bucket timestamp with time zone) IS 'Internal: a summary''s size for vigil.rollups, NULL while another transaction locks it';

COMMENT ON FUNCTION vigil._rollup_slot(summary oid, key_hash integer) IS 'Internal: the slot of a group that no other inserting transaction holds (never waits)';

CREATE OR REPLACE FUNCTION vigil._rollup_slot_held(summary oid, key_hash integer, slot integer) RETURNS boolean
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'slot_held_wrapper';

COMMENT ON FUNCTION vigil._rollup_slot_held(summary oid, key_hash integer, slot integer) IS 'Internal: whether a removal may lock and fold a slot row (at commit, only the slot rows this transaction holds)';

CREATE OR REPLACE FUNCTION vigil._rollup_stats(summary oid) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'rollup_stats_wrapper';

COMMENT ON FUNCTION vigil._rollup_stats(summary oid) IS 'Internal: rows and groups of a summary, read as its owner';

CREATE OR REPLACE FUNCTION vigil._rollup_status(summary oid) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'rollup_status_wrapper';

COMMENT ON FUNCTION vigil._rollup_status(summary oid) IS 'Internal: ok, or why the rollup of a summary is not kept exact (a trigger missing or disabled, the source gone)';

CREATE OR REPLACE FUNCTION vigil._rollup_trigger() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'rollup_trigger_wrapper';

COMMENT ON FUNCTION vigil._rollup_trigger() IS 'Internal: the statement trigger every rollup shares (INSERT, UPDATE, DELETE, TRUNCATE); runs as the source''s owner, restricted';

CREATE OR REPLACE FUNCTION vigil._routes_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    NEW.channels := vigil._channel_names(NEW.channels, 'channels');
    IF NEW.sort_order IS NULL THEN
        NEW.sort_order := coalesce((SELECT max(r.sort_order) FROM vigil.routes r), 0) + 10;
    END IF;
    IF NEW."continue" IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'continue must not be NULL';
    END IF;
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._routes_check() IS 'Internal: BEFORE trigger of vigil.routes: canonical matchers, existing channels, default position';

CREATE OR REPLACE FUNCTION vigil._rule_is_default(rule vigil.rules) RETURNS boolean
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM vigil.default_rules d
        WHERE d.id = rule.id
          AND (d.name, d.metric, d.operator, d.threshold, d.severity, d.lookback, d.cooldown, d.anomaly_type, d.enabled)
              = (rule.name, rule.metric, rule.operator, rule.threshold, rule.severity, rule.lookback, rule.cooldown,
                 rule.anomaly_type, rule.enabled)
          AND d.description IS NOT DISTINCT FROM rule.description
          AND d.alertname IS NOT DISTINCT FROM rule.alertname AND d.labels = rule.labels)
$$;

COMMENT ON FUNCTION vigil._rule_is_default(rule vigil.rules) IS 'Internal: true when the rule is a shipped default exactly as shipped (timestamps aside); such rows are left out of dumps, CREATE EXTENSION recreates them';

CREATE OR REPLACE FUNCTION vigil._rules_restore_replaces_default() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT 1 FROM vigil.rules t
                   WHERE (t.id = NEW.id OR t.name = NEW.name) AND vigil._rule_is_default(t)) THEN
        DELETE FROM vigil.rules t WHERE (t.id = NEW.id OR t.name = NEW.name) AND vigil._rule_is_default(t);
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._rules_restore_replaces_default() IS 'Internal: BEFORE INSERT row trigger of vigil.rules; a superuser''s INSERT (a restore) of a rule with the id or name of an unchanged default replaces that default';

CREATE OR REPLACE FUNCTION vigil._rules_track_deleted_defaults() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_RELID <> 'vigil.rules'::regclass OR TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION USING ERRCODE = '39P01',
            MESSAGE = 'vigil._rules_track_deleted_defaults() runs only as the AFTER statement trigger of vigil.rules';
    END IF;
    INSERT INTO vigil.deleted_default_rules AS t (id, name)
    SELECT d.id, d.name FROM vigil.default_rules d
    WHERE NOT EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = d.id)
    ON CONFLICT (id) DO NOTHING;
    DELETE FROM vigil.deleted_default_rules t WHERE EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = t.id);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION vigil._rules_track_deleted_defaults() IS 'Internal: AFTER statement trigger of vigil.rules; vigil.deleted_default_rules lists exactly the default ids missing from vigil.rules';

CREATE OR REPLACE FUNCTION vigil._run_escalations(max_rows integer DEFAULT 1000) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    e record;
    nsteps int;
    nstep int;
    ncycles int;
    due jsonb := '[]';     -- each due escalation: what it pages and where its chain goes next
    b record;
    c vigil.channels;
    alertname text;
    sent int;
    queued int := 0;
    failure text;
BEGIN
    -- Acknowledged or closed: the chain stops.
    DELETE FROM vigil.escalations t USING vigil.alerts a
    WHERE a.id = t.alert_id AND a.status <> 'firing';
    FOR e IN
        SELECT t.policy_id, t.alert_id, t.step, t.cycles, p.name, p.steps, p."repeat" AS rep, p.enabled,
               a AS alert
        FROM vigil.escalations t
        JOIN vigil.escalation_policies p ON p.id = t.policy_id
        JOIN vigil.alerts a ON a.id = t.alert_id
        WHERE t.next_at <= now()
        ORDER BY t.next_at
        LIMIT max_rows
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF NOT e.enabled OR (e.alert).status <> 'firing' THEN
            DELETE FROM vigil.escalations t WHERE t.policy_id = e.policy_id AND t.alert_id = e.alert_id;
            CONTINUE;
        END IF;
        -- Silenced or inhibited: no page now; the chain waits where it is.
        IF vigil.alert_suppressed_by(e.alert) IS NOT NULL THEN
            UPDATE vigil.escalations t SET next_at = now() + interval '1 minute'
            WHERE t.policy_id = e.policy_id AND t.alert_id = e.alert_id;
            CONTINUE;
        END IF;
        nsteps := jsonb_array_length(e.steps);
        nstep := e.step + 1;
        ncycles := e.cycles;
        IF nstep >= nsteps THEN
            -- The last step: without repeat the chain ends once it paged.
            nstep := CASE WHEN e.rep THEN 0 END;
            ncycles := ncycles + 1;
        END IF;
        due := due || jsonb_build_array(jsonb_build_object(
            'policy', e.name, 'policy_id', e.policy_id, 'step', least(e.step, nsteps - 1), 'alert', e.alert_id,
            'next', nstep, 'cycles', ncycles,
            'next_at', now() + (e.steps -> coalesce(nstep, 0) ->> 'after')::interval));
    END LOOP;
    -- One message per policy, step and channel, listing the alerts due.
    -- Each policy and step on its own: one that cannot be sent is retried
    -- in a minute (its chains stay where they are) and never holds back the
    -- others.
    FOR b IN
        SELECT x ->> 'policy' AS policy, (x ->> 'step')::int AS step,
               array_agg((x ->> 'alert')::bigint ORDER BY (x ->> 'alert')::bigint) AS ids, jsonb_agg(x) AS items
        FROM jsonb_array_elements(due) x
        GROUP BY 1, 2
        ORDER BY 1, 2
    LOOP
        BEGIN
            -- alertname: the one the alerts share, else the policy's name.
            SELECT CASE WHEN count(DISTINCT a.labels ->> 'alertname') = 1 THEN min(a.labels ->> 'alertname')
                        ELSE b.policy END
            INTO alertname FROM vigil.alerts a WHERE a.id = ANY (b.ids);
            sent := 0;
            FOR c IN
                SELECT ch.* FROM vigil.channels ch
                JOIN vigil.escalation_policies p ON p.name = b.policy
                WHERE ch.enabled AND ch.name IN (SELECT jsonb_array_elements_text(p.steps -> b.step -> 'channels'))
                ORDER BY ch.id
            LOOP
                INSERT INTO vigil.notifications (channel_id, alert_id, event, notify_key, payload)
                VALUES (c.id, CASE WHEN cardinality(b.ids) = 1 THEN b.ids[1] END, 'escalation',
                        'escalation:' || b.policy || ':' || (b.step + 1),
                        CASE WHEN c.kind = 'pg_notify'
                             THEN jsonb_build_object('event', 'escalation', 'policy', left(b.policy, 200),
                                                     'step', b.step + 1, 'alert_ids', to_jsonb(b.ids[1:300]))
                             ELSE vigil._group_message(c.kind, c.name, b.ids,
                                      jsonb_build_object('alertname', alertname, 'escalation_policy', b.policy,
                                                         'escalation_step', (b.step + 1)::text),
                                      vigil._max_payload_bytes()) END);
                sent := sent + 1;
            END LOOP;
            -- Paged: the chains move on (or end).
            DELETE FROM vigil.escalations t USING jsonb_array_elements(b.items) x
            WHERE x -> 'next' = 'null'::jsonb
              AND t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
            UPDATE vigil.escalations t
            SET step = (x ->> 'next')::int, cycles = (x ->> 'cycles')::int, last_step_at = now(),
                next_at = (x ->> 'next_at')::timestamptz
            FROM jsonb_array_elements(b.items) x
            WHERE x -> 'next' <> 'null'::jsonb
              AND t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
            queued := queued + sent;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
            RAISE WARNING USING ERRCODE = '08006',
                MESSAGE = format('pg_vigil: escalation %s step %s could not be sent (retried in 1 minute): %s',
                                 b.policy, b.step + 1, failure);
            UPDATE vigil.escalations t SET next_at = now() + interval '1 minute'
            FROM jsonb_array_elements(b.items) x
            WHERE t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
        END;
    END LOOP;
    RETURN queued;
END
$$;

COMMENT ON FUNCTION vigil._run_escalations(max_rows integer) IS 'Internal (the worker, each round): stops the escalations of alerts acknowledged or closed, runs the due steps (a silenced or inhibited alert waits), one message per policy, step and channel (a policy step that cannot be sent warns and is retried in a minute, its chains unmoved); returns how many were queued';

CREATE OR REPLACE FUNCTION vigil._saturation_days_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_combine';

COMMENT ON FUNCTION vigil._saturation_days_combine(internal, internal) IS 'Internal: combine function of vigil._saturation_days (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._saturation_days_deserial(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_deserial';

COMMENT ON FUNCTION vigil._saturation_days_deserial(bytea, internal) IS 'Internal: deserialization of vigil._saturation_days''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._saturation_days_final(internal) RETURNS double precision[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_final';

COMMENT ON FUNCTION vigil._saturation_days_final(internal) IS 'Internal: final function of vigil._saturation_days';

CREATE OR REPLACE FUNCTION vigil._saturation_days_serial(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_serial';

COMMENT ON FUNCTION vigil._saturation_days_serial(internal) IS 'Internal: serialization of vigil._saturation_days''s state (parallel aggregation)';

CREATE OR REPLACE FUNCTION vigil._saturation_days_trans(internal, timestamp with time zone, timestamp with time zone, double precision, double precision) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_trans';

COMMENT ON FUNCTION vigil._saturation_days_trans(internal, timestamp with time zone, timestamp with time zone, double precision, double precision) IS 'Internal: transition of vigil._saturation_days';

CREATE OR REPLACE FUNCTION vigil._scan(monitor text) RETURNS jsonb
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'scan_wrapper';

COMMENT ON FUNCTION vigil._scan(monitor text) IS 'Internal: the scan loop of vigil.scan() (src/monitor/scan.rs), run by its SECURITY DEFINER wrapper';

COMMENT ON FUNCTION vigil._set_monitor_enabled(name text, enabled boolean) IS 'Internal: enables or disables a monitor by name; returns it';

CREATE OR REPLACE FUNCTION vigil._set_rollup_on_detach(name oid, mode text) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'set_rollup_on_detach_wrapper';

COMMENT ON FUNCTION vigil._set_rollup_on_detach(name oid, mode text) IS 'Internal: vigil.set_rollup_on_detach''s work';

CREATE OR REPLACE FUNCTION vigil._silences_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    -- As Alertmanager: at least one matcher that the empty string does not
    -- satisfy, so a silence never matches every alert by accident.
    IF vigil.labels_match('{}', NEW.matchers) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'matchers must include one that an absent label does not satisfy (e.g. alertname="X"): '
                      'this silence would match every alert';
    END IF;
    PERFORM vigil._require_text(NEW.comment, 'comment');
    PERFORM vigil._cap_text(NEW.comment, 'comment');
    PERFORM vigil._require_text(NEW.created_by, 'created_by');
    PERFORM vigil._cap_text(NEW.created_by, 'created_by');
    IF NEW.starts_at IS NULL OR NEW.ends_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'starts_at and ends_at must not be NULL';
    END IF;
    IF NOT isfinite(NEW.starts_at) OR NOT isfinite(NEW.ends_at) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'starts_at and ends_at must be finite timestamps';
    END IF;
    IF NEW.ends_at < NEW.starts_at THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ends_at (%s) must not be before starts_at (%s)', NEW.ends_at, NEW.starts_at);
    END IF;
    -- (A restore copies ended silences too: "in the future" is checked by
    -- vigil.create_silence, not here.)
    IF NEW.ends_at - NEW.starts_at > interval '1 year' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('a silence lasts at most 1 year; this one would last %s', NEW.ends_at - NEW.starts_at);
    END IF;
    IF NEW.created_role IS NULL OR NEW.created_at IS NULL OR NEW.updated_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'created_role, created_at and updated_at must not be NULL';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION vigil._silences_check() IS 'Internal: BEFORE trigger of vigil.silences: canonical matchers (one not matching an absent label), comment, times';

COMMENT ON FUNCTION vigil._sketch_of(value double precision, relative_error double precision) IS 'Internal: the sketch of one value at a relative error (what a rollup adds for a single-row INSERT)';

CREATE OR REPLACE FUNCTION vigil._source_columns(source regclass) RETURNS jsonb
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT coalesce(jsonb_object_agg(a.attname, jsonb_build_object(
        'category', CASE
            WHEN a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN 'time'
            WHEN t.typcategory = 'N' THEN 'numeric'
            WHEN t.typcategory = 'S' THEN 'text'
            WHEN t.typcategory = 'B' THEN 'bool'
            ELSE 'other' END,
        'type', vigil._base_type(a.atttypid, a.atttypmod))), '{}')
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
$$;

COMMENT ON FUNCTION vigil._source_columns(source regclass) IS 'Internal: {"column": {"category": time|numeric|text|bool|other, "type": ...}} for the monitor planner (domains as their base type)';

CREATE OR REPLACE FUNCTION vigil._source_rollup(source regclass) RETURNS jsonb
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT coalesce((SELECT jsonb_build_object(
        'bucket_seconds', extract(epoch FROM d.bucket), 'group_by', to_jsonb(d.group_by),
        'measures', coalesce((SELECT jsonb_object_agg(m.key, m.value->>'agg') FROM jsonb_each(d.measures) m), '{}'))
    FROM vigil.rollup_defs d WHERE d.summary = $1), 'null')
$_$;

COMMENT ON FUNCTION vigil._source_rollup(source regclass) IS 'Internal: for a rollup''s summary table, {"bucket_seconds", "group_by", "measures": {"name": agg}} for the monitor planner (monitors read its buckets instead of raw rows); JSON null for any other relation';

CREATE OR REPLACE FUNCTION vigil._start_escalations(alert vigil.alerts) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF alert.status <> 'firing' THEN
        RETURN;
    END IF;
    INSERT INTO vigil.escalations (policy_id, alert_id, next_at)
    SELECT p.id, alert.id, now() + (p.steps -> 0 ->> 'after')::interval
    FROM vigil.escalation_policies p
    WHERE p.enabled AND alert.severity >= p.min_severity AND vigil.labels_match(alert.labels, p.matchers)
    ON CONFLICT (policy_id, alert_id) DO NOTHING;
END
$$;

COMMENT ON FUNCTION vigil._start_escalations(alert vigil.alerts) IS 'Internal: starts the escalation of a firing alert under every enabled policy it matches';

COMMENT ON FUNCTION vigil._stats_of(value double precision) IS 'Internal: the summary of one value (what a rollup adds for a single-row INSERT)';

COMMENT ON FUNCTION vigil._stats_with_extremes(summary vigil.statsagg, min double precision, max double precision) IS 'Internal: rollup repair; the summary with the group''s recomputed min and max (NULLs: unchanged)';

CREATE OR REPLACE FUNCTION vigil._suppressed_alerts(ids bigint[]) RETURNS TABLE(alert_id bigint, reason text)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET enable_nestloop TO 'off'
    SET jit TO 'off'
    AS $$
    WITH sil AS MATERIALIZED (
        SELECT x.id, x.matchers FROM vigil.silences x WHERE x.ends_at > now() AND x.starts_at <= now()),
    t AS MATERIALIZED (
        SELECT a.id, a.labels,
               (SELECT min(s.id) FROM sil s WHERE vigil.labels_match(a.labels, s.matchers)) AS silence
        FROM vigil.alerts a
        WHERE a.id = ANY (ids) AND a.status IN ('firing', 'acknowledged')),
    rules AS MATERIALIZED (
        SELECT r.name, r.source_matchers, r.target_matchers, r.equal FROM vigil.inhibit_rules r WHERE r.enabled),
    targets AS MATERIALIZED (
        SELECT r.name, r.source_matchers, t.id, t.labels, ARRAY(SELECT t.labels -> e FROM unnest(r.equal) e) AS k
        FROM rules r JOIN t ON t.silence IS NULL AND vigil.labels_match(t.labels, r.target_matchers)),
    -- An absent label equals an absent one: the keys hold NULL for it,
    -- and array equality takes two NULL elements as equal.
    sources AS MATERIALIZED (
        SELECT r.name, r.target_matchers, s.id, s.labels, ARRAY(SELECT s.labels -> e FROM unnest(r.equal) e) AS k
        FROM rules r JOIN vigil.alerts s ON s.status IN ('firing', 'acknowledged')
        WHERE r.name IN (SELECT tg.name FROM targets tg) AND vigil.labels_match(s.labels, r.source_matchers)),
    -- A target matching both sides is inhibited only by a source that
    -- does not (checked only for the pairs that meet).
    inhibited AS (
        SELECT DISTINCT ON (tg.id) tg.id, format('inhibit rule %s (alert %s)', tg.name, src.id) AS reason
        FROM targets tg
        JOIN sources src ON src.name = tg.name AND src.k = tg.k AND src.id <> tg.id
        WHERE NOT (vigil.labels_match(tg.labels, tg.source_matchers)
                   AND vigil.labels_match(src.labels, src.target_matchers))
        ORDER BY tg.id, tg.name, src.id)
    SELECT t.id, 'silence ' || t.silence FROM t WHERE t.silence IS NOT NULL
    UNION ALL
    SELECT i.id, i.reason FROM inhibited i
$$;

COMMENT ON FUNCTION vigil._suppressed_alerts(ids bigint[]) IS 'Internal: vigil.alert_suppressed_by for a set of alerts at once (the open ones of ids that are suppressed, and why), reading the silences, rules and source alerts once';

CREATE OR REPLACE FUNCTION vigil._suppression_active() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM vigil.silences s WHERE s.ends_at > now() AND s.starts_at <= now())
        OR EXISTS (SELECT 1 FROM vigil.inhibit_rules r WHERE r.enabled)
$$;

COMMENT ON FUNCTION vigil._suppression_active() IS 'Internal: whether a silence is active or an inhibition rule enabled now';

CREATE OR REPLACE FUNCTION vigil._untrusted_schema(schema oid, owner oid) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH n AS (
        SELECT n.nspname, n.nspowner, n.nspacl,
               CASE WHEN n.nspowner = 'pg_database_owner'::regrole
                    THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database())
                    ELSE n.nspowner END AS effective
        FROM pg_namespace n WHERE n.oid = schema),
    others AS (
        SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ') AS who
        FROM n, aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
        WHERE a.privilege_type = 'CREATE' AND a.grantee NOT IN (n.nspowner, n.effective, owner)
          AND NOT coalesce(g.rolsuper, false))
    SELECT CASE
        WHEN n.nspname IS NULL THEN format('schema %s does not exist', schema)
        WHEN n.effective <> owner AND NOT r.rolsuper
            THEN format('schema %I belongs to %s, neither %s nor a superuser', n.nspname, n.effective::regrole, owner::regrole)
        WHEN o.who IS NOT NULL
            THEN format('%s may create objects in schema %I', o.who, n.nspname)
        END
    FROM n JOIN pg_roles r ON r.oid = n.effective, others o
$$;

COMMENT ON FUNCTION vigil._untrusted_schema(schema oid, owner oid) IS 'Internal: why work run as owner cannot trust the names in schema (owned by another non-superuser, or others may CREATE in it); NULL when it can';

CREATE OR REPLACE FUNCTION vigil._upgrade_rollup(summary oid) RETURNS text
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'upgrade_rollup_wrapper';

COMMENT ON FUNCTION vigil._upgrade_rollup(summary oid) IS 'Internal: run by ALTER EXTENSION pg_vigil UPDATE; makes a rollup an older version created into one of this version''s (source owner''s objects, shared trigger, dependencies) and recomputes it. NULL, or why it was left unlinked';

CREATE OR REPLACE FUNCTION vigil._verify_rolling(name oid) RETURNS bigint
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'verify_rolling_wrapper';

COMMENT ON FUNCTION vigil._verify_rolling(name oid) IS 'Internal: vigil.verify_rolling''s work';

COMMENT ON FUNCTION vigil._verify_rollup(name oid) IS 'Internal: vigil.verify_rollup''s work';

COMMENT ON FUNCTION vigil._wake_worker() IS 'Internal: wakes the pg_vigil worker at commit';

CREATE OR REPLACE FUNCTION vigil.acknowledge(alert_id bigint, by text, note text DEFAULT NULL::text) RETURNS vigil.alerts
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil.add_value(sketch vigil.sketch, value double precision) IS 'The sketch with one more value';

COMMENT ON FUNCTION vigil.add_value(summary vigil.statsagg, value double precision) IS 'The summary with one more value';

CREATE OR REPLACE FUNCTION vigil.age_rolling(name regclass DEFAULT NULL::regclass) RETURNS bigint
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._age_rolling(name) $$;

COMMENT ON FUNCTION vigil.age_rolling(name regclass) IS 'Move a rolling total''s window (the worker does this every poll): subtract the buckets that left it. NULL: every rolling total (superuser). Returns how many moved';

CREATE OR REPLACE FUNCTION vigil.alert_event(alert vigil.alerts, event text) RETURNS json
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- Any role can LISTEN vigil_alerts, so the payload carries only what
    -- says "something changed": the alert id and the event. A listener that
    -- may read vigil.alerts looks the row up; one that may not learns nothing.
    -- The shape is vigil._pg_notify_payload's, the pg_notify channels' too.
    SELECT vigil._pg_notify_payload(jsonb_build_object('id', (alert).id), event)::json
$$;

COMMENT ON FUNCTION vigil.alert_event(alert vigil.alerts, event text) IS 'The JSON sent on channel vigil_alerts, {"id": <alert id>, "event": new|escalated|resolved}: ids and the event only, since any role can LISTEN; read the alert itself from vigil.alerts (privileges apply)';

CREATE OR REPLACE FUNCTION vigil.alert_fingerprint(labels jsonb) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'alert_fingerprint_wrapper';

COMMENT ON FUNCTION vigil.alert_fingerprint(labels jsonb) IS 'An alert''s identity from its labels: Alertmanager''s label-set fingerprint (FNV-1a 64 over the sorted names and values) of every label but severity, as 16 hex digits; ERROR 22023 unless labels is a JSON object';

CREATE OR REPLACE FUNCTION vigil.alert_suppressed_by(alert vigil.alerts) RETURNS text
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    why text;
    r vigil.inhibit_rules;
    probe jsonb;
    both_sides bool;
    src bigint;
BEGIN
    IF alert.status NOT IN ('firing', 'acknowledged') THEN
        RETURN NULL;
    END IF;
    -- Active silences first (an index range), only then their matchers.
    SELECT 'silence ' || s.id INTO why
    FROM (SELECT t.id, t.matchers FROM vigil.silences t WHERE t.ends_at > now() AND t.starts_at <= now()
          OFFSET 0) s
    WHERE vigil.labels_match(alert.labels, s.matchers)
    ORDER BY s.id LIMIT 1;
    IF why IS NOT NULL THEN
        RETURN why;
    END IF;
    FOR r IN SELECT * FROM vigil.inhibit_rules t WHERE t.enabled ORDER BY t.name LOOP
        CONTINUE WHEN NOT vigil.labels_match(alert.labels, r.target_matchers);
        both_sides := vigil.labels_match(alert.labels, r.source_matchers);
        -- What a source must contain: the source side's equalities and the
        -- alert's values of the equal labels (the open-labels index).
        probe := vigil._matchers_equalities(r.source_matchers)
            || (SELECT coalesce(jsonb_object_agg(e, alert.labels ->> e), '{}')
                FROM unnest(r.equal) e WHERE alert.labels ? e);
        SELECT x.id INTO src
        FROM (SELECT s.id, s.status, s.labels FROM vigil.alerts s WHERE probe <> '{}' AND s.labels @> probe
              UNION ALL
              -- Nothing to probe by: the open alerts (their partial index).
              SELECT s.id, s.status, s.labels FROM vigil.alerts s
              WHERE probe = '{}' AND s.status IN ('firing', 'acknowledged')
              OFFSET 0) x
        WHERE x.status IN ('firing', 'acknowledged') AND x.id <> alert.id
          AND vigil.labels_match(x.labels, r.source_matchers)
          AND NOT EXISTS (SELECT 1 FROM unnest(r.equal) e WHERE NOT alert.labels ? e AND x.labels ? e)
          AND NOT (both_sides AND vigil.labels_match(x.labels, r.target_matchers))
        ORDER BY x.id LIMIT 1;
        IF src IS NOT NULL THEN
            RETURN format('inhibit rule %s (alert %s)', r.name, src);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION vigil.alert_suppressed_by(alert vigil.alerts) IS 'Why an open alert is not notified now: ''silence <id>'' (an active silence matches it), ''inhibit rule <name> (alert <id>)'' (an open source alert inhibits it), or NULL';

CREATE OR REPLACE FUNCTION vigil.alertmanager_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'alertmanager_payload_wrapper';

COMMENT ON FUNCTION vigil.alertmanager_payload(alert jsonb, event text) IS 'The Alertmanager API v2 body (an array of one postableAlert) for an alert and an event: endsAt four vigil.alertmanager_resend_intervals ahead while open, the closing time once closed';

COMMENT ON FUNCTION vigil.approx_median(sketch vigil.sketch) IS 'approx_percentile(sketch, 0.5)';

COMMENT ON FUNCTION vigil.approx_percentile(sketch vigil.sketch, q double precision) IS 'Value at quantile q (0-1), within the sketch''s relative error; NULL for an empty sketch';

CREATE OR REPLACE FUNCTION vigil.auto_resolve(monitor text, still_firing_keys text[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil.auto_resolve(monitor text, still_firing_keys text[]) IS 'Resolve (by vigil, note ''condition cleared'') the open alerts of a monitor whose fingerprint (or dedup_key) is not in still_firing_keys, and end the suppression of its dismissed alerts not in it; returns how many were resolved';

CREATE OR REPLACE FUNCTION vigil.check_metric(metric text, value double precision, entity text, context jsonb DEFAULT '{}'::jsonb) RETURNS SETOF vigil.alerts
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    val float8 := check_metric.value;
    ctx jsonb := coalesce(check_metric.context, '{}');
    r vigil.rules;
    baseline numeric;
    change numeric;
    breached bool;
    dk text;
    title text;
    details jsonb;
    raised bigint[] := '{}';
    res record;
BEGIN
    PERFORM vigil._require_text(check_metric.metric, 'metric'),
            vigil._require_text(check_metric.entity, 'entity');
    IF val IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'value must not be NULL';
    END IF;
    IF val IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('value must be a finite number, got %s', val);
    END IF;
    IF jsonb_typeof(ctx) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('context must be a JSON object, got %s', jsonb_typeof(ctx));
    END IF;

    FOR r IN
        SELECT * FROM vigil.rules t WHERE t.metric = check_metric.metric AND t.enabled ORDER BY t.name
    LOOP
        change := NULL;
        baseline := NULL;
        IF r.operator IN ('pct_drop', 'pct_rise') THEN
            -- Earlier values only: this one is recorded after the rules ran.
            -- In numeric so that a drop of exactly the threshold (0.05 -> 0.04 is 20%) counts.
            SELECT avg(m.value::numeric) INTO baseline
            FROM vigil.metric_values m
            WHERE m.metric = check_metric.metric AND m.entity = check_metric.entity
              AND m.recorded_at >= now() - r.lookback;
            CONTINUE WHEN baseline IS NULL OR baseline = 0;
            change := (val::numeric - baseline) / abs(baseline) * 100;
            breached := CASE r.operator
                WHEN 'pct_drop' THEN -change >= r.threshold::numeric
                ELSE change >= r.threshold::numeric
            END;
        ELSE
            breached := CASE r.operator
                WHEN '<' THEN val < r.threshold
                WHEN '<=' THEN val <= r.threshold
                WHEN '>' THEN val > r.threshold
                WHEN '>=' THEN val >= r.threshold
                WHEN '=' THEN val = r.threshold
                WHEN '!=' THEN val <> r.threshold
            END;
        END IF;
        CONTINUE WHEN NOT breached;

        -- One incident per rule and entity (no date in the key): repeats bump
        -- the open alert. The cooldown only holds back a *new* alert after the
        -- last one was closed, so a flapping metric does not page again at once.
        dk := format('rule:%s:%s', r.name, check_metric.entity);
        CONTINUE WHEN r.cooldown > interval '0'
            AND EXISTS (SELECT 1 FROM vigil.alerts a
                        WHERE a.dedup_key = dk
                          AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at) > now() - r.cooldown)
            AND NOT EXISTS (SELECT 1 FROM vigil.alerts a
                            WHERE a.dedup_key = dk AND a.status IN ('firing', 'acknowledged'));

        IF change IS NULL THEN
            title := format('%s: %s %s %s %s for %s', r.name, r.metric, val, r.operator, r.threshold, check_metric.entity);
        ELSE
            title := format('%s: %s %s is %s%% %s its %s-minute average %s for %s',
                            r.name, r.metric, val, trim_scale(round(abs(change), 1)),
                            CASE WHEN change < 0 THEN 'below' ELSE 'above' END,
                            trim_scale(round(extract(epoch FROM r.lookback) / 60, 1)),
                            trim_scale(round(baseline, 6)), check_metric.entity);
        END IF;
        details := jsonb_build_object(
            'metric', r.metric, 'value', val, 'operator', r.operator, 'threshold', r.threshold,
            'lookback_seconds', trim_scale(extract(epoch FROM r.lookback)), 'context', ctx);
        IF change IS NOT NULL THEN
            details := details || jsonb_build_object('baseline', trim_scale(round(baseline, 6)), 'pct_change', trim_scale(round(change, 2)));
        END IF;

        -- The window covers the cooldown so that a repeat inside the cooldown
        -- always finds the open alert rather than starting a new one.
        SELECT * INTO res FROM vigil.raise_alert(
            anomaly_type => r.anomaly_type, entity => check_metric.entity, severity => r.severity,
            title => title, summary => r.description, details => details, rule => r.name,
            dedup_key => dk, dedup_window => greatest(interval '24 hours', r.cooldown),
            labels => r.labels || jsonb_strip_nulls(jsonb_build_object('alertname', r.alertname)));
        raised := raised || res.alert_id;
    END LOOP;

    INSERT INTO vigil.metric_values (metric, entity, value, context)
    VALUES (check_metric.metric, check_metric.entity, val, ctx);

    RETURN QUERY SELECT * FROM vigil.alerts a WHERE a.id = ANY (raised) ORDER BY a.id;
END
$$;

CREATE OR REPLACE FUNCTION vigil.create_channel(name text, kind text, url text, headers jsonb DEFAULT '{}'::jsonb, min_severity vigil.severity DEFAULT 'info'::vigil.severity, anomaly_types text[] DEFAULT NULL::text[], send_resolved boolean DEFAULT false, max_per_second double precision DEFAULT NULL::double precision, repeat_interval interval DEFAULT '01:00:00'::interval, delivery_deadline interval DEFAULT '24:00:00'::interval, group_by text[] DEFAULT '{alertname}'::text[], group_wait interval DEFAULT '00:00:30'::interval, group_interval interval DEFAULT '00:05:00'::interval, options jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.channels c WHERE c.name = create_channel.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('channel "%s" already exists', create_channel.name);
    END IF;
    INSERT INTO vigil.channels AS c (name, kind, url, headers, min_severity, anomaly_types,
                                     send_resolved, max_per_second, repeat_interval, delivery_deadline,
                                     group_by, group_wait, group_interval, options)
    VALUES (create_channel.name, create_channel.kind, create_channel.url,
            coalesce(create_channel.headers, '{}'), coalesce(create_channel.min_severity, 'info'),
            create_channel.anomaly_types, coalesce(create_channel.send_resolved, false),
            create_channel.max_per_second, create_channel.repeat_interval, create_channel.delivery_deadline,
            create_channel.group_by, create_channel.group_wait, create_channel.group_interval,
            coalesce(create_channel.options, '{}'))
    RETURNING c.id INTO new_id;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.create_channel(name text, kind text, url text, headers jsonb, min_severity vigil.severity, anomaly_types text[], send_resolved boolean, max_per_second double precision, repeat_interval interval, delivery_deadline interval, group_by text[], group_wait interval, group_interval interval, options jsonb) IS 'Add a notification channel (kind slack, webhook, pg_notify, pagerduty, msteams, alertmanager or email); the url, headers and options (pagerduty: {"routing_key": ...}; email: {"from", "to", ...}) are checked and never echoed. PagerDuty and Alertmanager channels are never grouped and always send resolves. Alerts are grouped by the group_by labels (default alertname; NULL: one message per alert event) and sent after group_wait, then at most every group_interval on changes, and every repeat_interval while unacknowledged';

CREATE OR REPLACE FUNCTION vigil.create_escalation_policy(name text, steps jsonb, matchers text[] DEFAULT '{}'::text[], min_severity vigil.severity DEFAULT 'high'::vigil.severity, repeat boolean DEFAULT true) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.escalation_policies p WHERE p.name = create_escalation_policy.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('escalation policy "%s" already exists', create_escalation_policy.name);
    END IF;
    INSERT INTO vigil.escalation_policies AS p (name, steps, matchers, min_severity, "repeat")
    VALUES (create_escalation_policy.name, create_escalation_policy.steps, create_escalation_policy.matchers,
            create_escalation_policy.min_severity, create_escalation_policy."repeat")
    RETURNING p.id INTO new_id;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.create_escalation_policy(name text, steps jsonb, matchers text[], min_severity vigil.severity, repeat boolean) IS 'Add an escalation chain, e.g. steps ''[{"after": "10 minutes", "channels": ["oncall"]}, {"after": "20 minutes", "channels": ["manager"]}]'': a firing alert at or above min_severity (default high) matching the matchers that nobody acknowledged within 10 minutes pages oncall, 20 minutes later manager, and (repeat, the default) then the chain again, until acknowledged or closed. One message per step and channel lists every alert due. Returns the id';

CREATE OR REPLACE FUNCTION vigil.create_inhibit_rule(name text, source_matchers text[], target_matchers text[], equal text[] DEFAULT '{}'::text[]) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.inhibit_rules r WHERE r.name = create_inhibit_rule.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('inhibit rule "%s" already exists', create_inhibit_rule.name);
    END IF;
    INSERT INTO vigil.inhibit_rules AS r (name, source_matchers, target_matchers, equal)
    VALUES (create_inhibit_rule.name, create_inhibit_rule.source_matchers, create_inhibit_rule.target_matchers,
            coalesce(create_inhibit_rule.equal, '{}'))
    RETURNING r.id INTO new_id;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.create_inhibit_rule(name text, source_matchers text[], target_matchers text[], equal text[]) IS 'Add an inhibition rule: while an open alert matches source_matchers, open alerts matching target_matchers with the same equal labels are not notified (e.g. source severity="critical", target severity=~"low|medium", equal {entity}); when the source closes, those still firing are notified. Returns the id';

CREATE OR REPLACE FUNCTION vigil.create_monitor(name text, kind text, source regclass, options jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET standard_conforming_strings TO 'on'
    AS $_$
#variable_conflict use_variable
DECLARE
    sch name;
    tbl name;
    relkind "char";
    plan jsonb;
    cols jsonb;
    new_id bigint;
    key text;
    col text;
    vals jsonb;
    err_state text;
    err_text text;
    citus_table bool := false;
    -- The trigger function of a kind that decides on write (else NULL).
    on_write text := vigil._monitor_kind_trigger(kind);
BEGIN
    PERFORM vigil._require_text(name, 'name'), vigil._require_text(kind, 'kind');
    IF source IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'source must not be NULL';
    END IF;
    IF options IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'options must not be NULL (pass ''{}'' for defaults)';
    END IF;
    PERFORM vigil._require_sane_json(options, 'options');
    SELECT n.nspname, c.relname, c.relkind INTO sch, tbl, relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
    IF relkind NOT IN ('r', 'p', 'v', 'm', 'f') OR (on_write IS NOT NULL AND relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('source %s must be a %s', source,
                             CASE WHEN on_write IS NOT NULL THEN format('table (%s adds a trigger to it)', kind)
                                  ELSE 'table, view or materialized view' END);
    END IF;
    -- Citus fires a distributed table's triggers on its workers' shards,
    -- where vigil's tables are not: a kind that decides on write needs a
    -- local table.
    IF on_write IS NOT NULL AND to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)'
            INTO citus_table USING source;
    END IF;
    IF citus_table THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = format('source %s is a table Citus manages; %s monitors need a local table (their trigger runs where the rows are written)', source, kind);
    END IF;
    IF sch = 'vigil' AND source IS DISTINCT FROM 'vigil.health'::regclass THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('source %s is one of pg_vigil''s own tables', source);
    END IF;
    IF NOT has_table_privilege(source, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('permission denied: source %s is not readable by %s', source, current_user);
    END IF;
    IF EXISTS (SELECT 1 FROM vigil.monitors m WHERE m.name = name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710', MESSAGE = format('name: monitor "%s" already exists', name);
    END IF;

    cols := vigil._source_columns(source);
    plan := vigil._monitor_plan(kind, options, format('%I.%I', sch, tbl), cols, vigil._source_rollup(source));
    -- Filter values must read as the column's type. Checked here, as the
    -- caller, only for pg_catalog's types: a cast to any other type may be
    -- its owner's code (CREATE CAST), so those values are checked by the
    -- try-run below, which runs as the source's owner, restricted.
    FOR key, col, vals IN
        SELECT k.key, f.key, f.value
        FROM unnest(ARRAY['filter', 'converted']) AS k(key), jsonb_each(plan->'options'->k.key) AS f
        WHERE jsonb_typeof(f.value) = 'array'
          AND (SELECT t.typnamespace = 'pg_catalog'::regnamespace FROM pg_type t
               WHERE t.oid = (cols->f.key->>'type')::regtype)
    LOOP
        BEGIN
            EXECUTE format('SELECT ARRAY(SELECT jsonb_array_elements_text($1))::%s[]', cols->col->>'type') USING vals;
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_text = MESSAGE_TEXT;
            RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = format('options.%s.%s: %s', key, col, err_text);
        END;
    END LOOP;
    INSERT INTO vigil.monitors (name, kind, source_schema, source_table, options)
    VALUES (name, kind, sch, tbl, plan->'options')
    RETURNING id INTO new_id;

    IF on_write IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I.%I REFERENCING NEW TABLE AS vigil_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                       'vigil_' || kind || '_' || new_id, sch, tbl, on_write::regproc, new_id);
    ELSE
        -- Run the query once, the way scans run it (as the source's owner,
        -- restricted), so that what only the executor can check fails now.
        PERFORM vigil._monitor_run(new_id);
    END IF;
    RETURN new_id;
END
$_$;

COMMENT ON FUNCTION vigil.create_monitor(name text, kind text, source regclass, options jsonb) IS 'Create a monitor of one of the kinds vigil.monitor_kinds() lists on a table; options are validated (unknown keys, types, columns, threshold order) and the scan query is tried once. early_kill adds an AFTER INSERT statement trigger to the table. Returns the monitor id';

CREATE OR REPLACE FUNCTION vigil.create_rolling(name text, rollup regclass, since interval) RETURNS regclass
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    missing text := CASE WHEN name IS NULL THEN 'name' WHEN rollup IS NULL THEN 'rollup'
                         WHEN since IS NULL THEN 'since' END;
BEGIN
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = missing || ' must not be NULL';
    END IF;
    RETURN vigil._create_rolling(name, rollup, since)::regclass;
END
$$;

COMMENT ON FUNCTION vigil.create_rolling(name text, rollup regclass, since interval) IS 'Create a view with one row per group of a rollup''s count and sum measures over its last since (bucket-aligned, as <rollup>_since(since)), read from per-group totals kept exact at commit and aged by the worker';

CREATE OR REPLACE FUNCTION vigil.create_rollup(name text, source regclass, time_column name, bucket interval, group_by name[], measures jsonb) RETURNS regclass
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    missing text := CASE
        WHEN name IS NULL THEN 'name' WHEN source IS NULL THEN 'source'
        WHEN time_column IS NULL THEN 'time_column' WHEN bucket IS NULL THEN 'bucket'
        WHEN group_by IS NULL THEN 'group_by' WHEN measures IS NULL THEN 'measures' END;
BEGIN
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = missing || ' must not be NULL';
    END IF;
    PERFORM vigil._require_sane_json(measures, 'measures');
    RETURN vigil._create_rollup(name, source, time_column, bucket, group_by::text[], measures)::regclass;
END
$$;

CREATE OR REPLACE FUNCTION vigil.create_route(name text, channels text[], matchers text[] DEFAULT '{}'::text[], continue boolean DEFAULT false, sort_order integer DEFAULT NULL::integer) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.routes r WHERE r.name = create_route.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710', MESSAGE = format('route "%s" already exists', create_route.name);
    END IF;
    INSERT INTO vigil.routes AS r (name, channels, matchers, "continue", sort_order)
    VALUES (create_route.name, create_route.channels, create_route.matchers,
            create_route."continue", create_route.sort_order)
    RETURNING r.id INTO new_id;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.create_route(name text, channels text[], matchers text[], continue boolean, sort_order integer) IS 'Add a route: alerts whose labels satisfy every matcher (Alertmanager syntax, e.g. team="payments", severity=~"high|critical") go to these channels; routes are walked by sort_order (default: after the last), the first match wins unless it has continue. Channels keep their min_severity/anomaly_types filters. Returns the id';

CREATE OR REPLACE FUNCTION vigil.create_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval DEFAULT '01:00:00'::interval, cooldown interval DEFAULT '00:00:00'::interval, description text DEFAULT NULL::text, anomaly_type text DEFAULT 'rule'::text, alertname text DEFAULT NULL::text, labels jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    r vigil.rules;
BEGIN
    r.name := create_rule.name;
    r.metric := create_rule.metric;
    r.operator := create_rule.operator;
    r.threshold := create_rule.threshold;
    r.severity := create_rule.severity;
    r.lookback := create_rule.lookback;
    r.cooldown := create_rule.cooldown;
    r.anomaly_type := create_rule.anomaly_type;
    r.alertname := create_rule.alertname;
    r.labels := coalesce(create_rule.labels, '{}');
    PERFORM vigil._check_rule(r);
    -- Checked here, not only by the unique index: create_rule runs as a
    -- superuser, whose INSERT would replace an unchanged default.
    IF EXISTS (SELECT 1 FROM vigil.rules t WHERE t.name = r.name) THEN
        RAISE unique_violation;
    END IF;
    INSERT INTO vigil.rules (name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type, description,
                             alertname, labels)
    VALUES (r.name, r.metric, r.operator, r.threshold, r.severity, r.lookback, r.cooldown, r.anomaly_type,
            create_rule.description, r.alertname, r.labels)
    RETURNING id INTO r.id;
    RETURN r.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = '42710',
        MESSAGE = format('rule %s already exists', quote_literal(create_rule.name)),
        HINT = 'Use vigil.update_rule to change it, or pick another name.';
END
$$;

COMMENT ON FUNCTION vigil.create_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, alertname text, labels jsonb) IS 'Create an enabled rule; returns its id. alertname (default the rule''s name) and labels go on its alerts. ERROR 42710 when the name is taken, 22023 for an unknown operator, a negative interval or bad labels';

CREATE OR REPLACE FUNCTION vigil.create_silence(matchers text[], ends_at timestamp with time zone, comment text, created_by text DEFAULT NULL::text, starts_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
BEGIN
    IF create_silence.ends_at IS NOT NULL AND create_silence.ends_at <= now() THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ends_at must be in the future, got %s', create_silence.ends_at);
    END IF;
    -- Every active silence is matched against every alert event: bounded.
    -- (The lock makes concurrent creators take turns at the count.)
    LOCK TABLE vigil.silences IN SHARE ROW EXCLUSIVE MODE;
    IF (SELECT count(*) FROM vigil.silences s WHERE s.ends_at > now()) >= 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = 'there are already 1000 pending or active silences; expire some first';
    END IF;
    INSERT INTO vigil.silences AS s (matchers, starts_at, ends_at, created_by, created_role, comment)
    VALUES (create_silence.matchers, coalesce(create_silence.starts_at, now()), create_silence.ends_at,
            coalesce(create_silence.created_by, session_user), session_user, create_silence.comment)
    RETURNING s.id INTO new_id;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.create_silence(matchers text[], ends_at timestamp with time zone, comment text, created_by text, starts_at timestamp with time zone) IS 'Silence alerts whose labels satisfy every matcher (Alertmanager syntax) from starts_at (default now) to ends_at: they are recorded but not notified (nor escalated), and notified when the silence ends if still firing. created_by defaults to the session user; comment is required; at most 1 year long and 1000 silences pending or active at once (54000). Returns the id';

COMMENT ON FUNCTION vigil.dedup_key(anomaly_type text, entity text, at timestamp with time zone) IS '{type}_{entity}_{YYYY-MM-DD} with the UTC date of at (default now())';

CREATE OR REPLACE FUNCTION vigil.dismiss(alert_id bigint, by text, note text DEFAULT NULL::text) RETURNS vigil.alerts
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil.dismiss(alert_id bigint, by text, note text) IS 'Dismiss an open alert as not actionable (false positive, known cause): repeats of its condition stay on it, silently, until the condition clears (a scan no longer finds it, or it is not seen for the dedup window); notifies channel vigil_alerts with event dismissed';

CREATE OR REPLACE FUNCTION vigil.drop_escalation_policy(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    DELETE FROM vigil.escalation_policies p WHERE p.name = vigil._require_text(drop_escalation_policy.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('escalation policy "%s" does not exist', drop_escalation_policy.name);
    END IF;
END
$$;

COMMENT ON FUNCTION vigil.drop_escalation_policy(name text) IS 'Remove an escalation policy and stop its running escalations; ERROR 42704 when unknown';

CREATE OR REPLACE FUNCTION vigil.drop_inhibit_rule(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    DELETE FROM vigil.inhibit_rules r WHERE r.name = vigil._require_text(drop_inhibit_rule.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('inhibit rule "%s" does not exist', drop_inhibit_rule.name);
    END IF;
END
$$;

COMMENT ON FUNCTION vigil.drop_inhibit_rule(name text) IS 'Remove an inhibition rule (what it held back is notified at the worker''s next rounds); ERROR 42704 when unknown';

CREATE OR REPLACE FUNCTION vigil.drop_monitor(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    m vigil.monitors := vigil._monitor_by_name(name);
BEGIN
    IF vigil._monitor_kind_trigger(m.kind) IS NOT NULL AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = m.source_oid) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'vigil_' || m.kind || '_' || m.id, m.source_oid::regclass);
    END IF;
    DELETE FROM vigil.monitors t WHERE t.id = m.id;
END
$$;

CREATE OR REPLACE FUNCTION vigil.drop_rolling(name regclass) RETURNS void
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._drop_rolling(name) $$;

COMMENT ON FUNCTION vigil.drop_rolling(name regclass) IS 'Drop a rolling total: its view and totals table';

CREATE OR REPLACE FUNCTION vigil.drop_rollup(name regclass) RETURNS void
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._drop_rollup(name) $$;

CREATE OR REPLACE FUNCTION vigil.drop_route(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    DELETE FROM vigil.routes r WHERE r.name = vigil._require_text(drop_route.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('route "%s" does not exist', drop_route.name);
    END IF;
END
$$;

COMMENT ON FUNCTION vigil.drop_route(name text) IS 'Remove a route; ERROR 42704 when there is none of that name';

COMMENT ON FUNCTION vigil.early_kill_decision(expected_rate double precision, interactions bigint, views bigint, started_at timestamp with time zone, at timestamp with time zone, kill_threshold double precision, min_interactions integer, timeout interval) IS 'kill, expired or continue for a variant under test (scenario 3)';

CREATE OR REPLACE FUNCTION vigil.email_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'email_payload_wrapper';

COMMENT ON FUNCTION vigil.email_payload(alert jsonb, event text) IS 'The email (subject, text and HTML parts, as a JSON object) for an alert and an event';

CREATE OR REPLACE FUNCTION vigil.escalate_severity(severity vigil.severity) RETURNS vigil.severity
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE severity
        WHEN 'info' THEN 'low'
        WHEN 'low' THEN 'medium'
        WHEN 'medium' THEN 'high'
        ELSE 'critical'
    END::vigil.severity
$$;

COMMENT ON FUNCTION vigil.exhaustion_score(conversion_24h double precision, baseline_conversion double precision, messages_24h double precision, baseline_daily_messages double precision, consecutive_decline_days integer) IS 'Audience exhaustion score 0-100 from conversion, volume and consecutive days of decline; NULL when unknown';

CREATE OR REPLACE FUNCTION vigil.expire_alerts() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil.expire_alerts() IS 'Mark open alerts past expires_at as expired, notifying channel vigil_alerts with event expired; returns how many';

CREATE TABLE vigil.silences (
    id bigint NOT NULL,
    matchers text[] NOT NULL,
    starts_at timestamp with time zone DEFAULT now() NOT NULL,
    ends_at timestamp with time zone NOT NULL,
    created_by text NOT NULL,
    created_role name DEFAULT SESSION_USER NOT NULL,
    comment text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT silences_ends_after_start CHECK ((ends_at >= starts_at))
);

COMMENT ON TABLE vigil.silences IS 'Silences (Alertmanager''s): from starts_at to ends_at, open alerts whose labels satisfy every matcher are still recorded but not notified; when the silence ends (or is expired), those still firing are notified';

COMMENT ON COLUMN vigil.silences.created_by IS 'Who asked for the silence, as the caller typed it';

COMMENT ON COLUMN vigil.silences.created_role IS 'The database role (session_user) that created it';

CREATE OR REPLACE FUNCTION vigil.expire_silence(silence_id bigint) RETURNS vigil.silences
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    s vigil.silences;
BEGIN
    IF expire_silence.silence_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'silence_id must not be NULL';
    END IF;
    SELECT * INTO s FROM vigil.silences t WHERE t.id = expire_silence.silence_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('silence %s does not exist', expire_silence.silence_id);
    END IF;
    IF s.ends_at <= now() THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('silence %s already ended at %s', s.id, s.ends_at);
    END IF;
    UPDATE vigil.silences t SET ends_at = now(), starts_at = least(t.starts_at, now())
    WHERE t.id = s.id RETURNING * INTO s;
    -- What it held back goes out at the worker's next round.
    PERFORM vigil._wake_worker();
    RETURN s;
END
$$;

COMMENT ON FUNCTION vigil.expire_silence(silence_id bigint) IS 'End a pending or active silence now; alerts it held back that still fire are notified. ERROR P0002 when there is no such silence, 55000 when it already ended';

COMMENT ON FUNCTION vigil.hour_of_week(ts timestamp with time zone, tz text) IS 'Hour of the week 0-167 on the wall clock of time zone tz (default UTC): Monday 00:00 is 0, Sunday 23:00 is 167';

COMMENT ON FUNCTION vigil.is_anomaly(z double precision, threshold double precision) IS 'Whether |z| is strictly above threshold (default 3)';

CREATE OR REPLACE FUNCTION vigil.labels_match(labels jsonb, matchers text[]) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'labels_match_wrapper';

COMMENT ON FUNCTION vigil.labels_match(labels jsonb, matchers text[]) IS 'Whether labels satisfy every matcher (Alertmanager syntax and semantics: =, !=, =~, !~; regexes RE2, anchored, linear time; a missing label reads as ""); an empty list always holds';

COMMENT ON FUNCTION vigil.max_val(summary vigil.statsagg) IS 'Largest summarised value; NULL when empty or after a removal took away the maximum';

COMMENT ON FUNCTION vigil.mean(summary vigil.statsagg) IS 'Mean of the summarised values; NULL when empty';

COMMENT ON FUNCTION vigil.merge(a vigil.sketch, b vigil.sketch) IS 'The sketch of both sketches'' values (same relative error)';

COMMENT ON FUNCTION vigil.merge(a vigil.statsagg, b vigil.statsagg) IS 'The summary of both summaries'' values (exact parallel combination)';

COMMENT ON FUNCTION vigil.min_val(summary vigil.statsagg) IS 'Smallest summarised value; NULL when empty or after a removal took away the minimum';

CREATE OR REPLACE FUNCTION vigil.monitor_kinds() RETURNS text[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'monitor_kinds_wrapper';

COMMENT ON FUNCTION vigil.monitor_kinds() IS 'The kinds vigil.create_monitor accepts, in the order its errors list them';

CREATE OR REPLACE FUNCTION vigil.msteams_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'msteams_payload_wrapper';

COMMENT ON FUNCTION vigil.msteams_payload(alert jsonb, event text) IS 'The Microsoft Teams Workflows webhook message (an Adaptive Card) for an alert and an event';

COMMENT ON FUNCTION vigil.num_vals(sketch vigil.sketch) IS 'Number of values counted in the sketch';

COMMENT ON FUNCTION vigil.num_vals(summary vigil.statsagg) IS 'Number of values summarised';

CREATE OR REPLACE FUNCTION vigil.pagerduty_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pagerduty_payload_wrapper';

COMMENT ON FUNCTION vigil.pagerduty_payload(alert jsonb, event text) IS 'The PagerDuty Events API v2 event (trigger, acknowledge or resolve; dedup_key the alert fingerprint) for an alert and an event, without the routing key (the worker adds it from the channel''s options)';

CREATE OR REPLACE FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_trans';

COMMENT ON FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision) IS 'Internal: transition of vigil.percentile_agg(float8) at the default relative error';

CREATE OR REPLACE FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision, double precision) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_trans';

COMMENT ON FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision, double precision) IS 'Internal: transition of vigil.percentile_agg(float8, relative_error)';

CREATE OR REPLACE FUNCTION vigil.purge_alerts(older_than interval DEFAULT '90 days'::interval, max_rows bigint DEFAULT NULL::bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.alerts t
    WHERE t.id IN (
        SELECT a.id FROM vigil.alerts a
        WHERE a.status IN ('resolved', 'dismissed', 'expired')
          -- closed, and neither seen nor closed since the cutoff
          AND greatest(a.created_at, a.last_seen_at, a.resolved_at, a.dismissed_at,
                       CASE WHEN a.status = 'expired' THEN a.expires_at END) < cutoff
          -- its notifications still queued may be replayed or rendered
          AND NOT EXISTS (SELECT 1 FROM vigil.notifications q
                          WHERE q.alert_id = a.id AND q.status IN ('pending', 'sending'))
          -- a rule's and a threshold monitor's cooldown count from the
          -- closing of the last alert (its last sighting if it expired)
          AND NOT EXISTS (SELECT 1 FROM vigil.rules r
                          WHERE r.name = a.rule
                            AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at) > now() - r.cooldown)
          AND NOT EXISTS (SELECT 1 FROM vigil.monitors m
                          WHERE m.name = a.monitor AND m.kind = 'threshold' AND m.options ? 'cooldown'
                            AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at)
                                > now() - (m.options ->> 'cooldown')::interval)
        ORDER BY a.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Groups whose alerts are all gone.
    DELETE FROM vigil.alert_groups g
    WHERE g.created_at < cutoff
      AND NOT EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.group_id = g.id);
    RETURN n;
END
$$;

COMMENT ON FUNCTION vigil.purge_alerts(older_than interval, max_rows bigint) IS 'Delete closed (resolved, dismissed, expired) alerts neither seen nor closed since now() - older_than, at most max_rows (NULL: all), oldest first, then the alert groups older than that with no alert left. Keeps open and acknowledged alerts, alerts with pending or sending notifications, and alerts a rule or threshold monitor cooldown still counts from. Returns how many alerts';

CREATE OR REPLACE FUNCTION vigil.purge_metric_values(older_than interval DEFAULT '30 days'::interval, max_rows bigint DEFAULT NULL::bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.metric_values t
    WHERE t.id IN (
        SELECT m.id FROM vigil.metric_values m
        WHERE m.recorded_at < cutoff
          -- the baseline of a pct_drop / pct_rise rule on the metric
          AND NOT EXISTS (SELECT 1 FROM vigil.rules r
                          WHERE r.metric = m.metric AND r.operator IN ('pct_drop', 'pct_rise')
                            AND m.recorded_at >= now() - r.lookback)
        ORDER BY m.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION vigil.purge_metric_values(older_than interval, max_rows bigint) IS 'Delete pushed metric values recorded before now() - older_than, at most max_rows (NULL: all), oldest first; values inside the lookback of a pct_drop / pct_rise rule on their metric are kept. Returns how many';

CREATE OR REPLACE FUNCTION vigil.purge_notifications(older_than interval DEFAULT '7 days'::interval, max_rows bigint DEFAULT NULL::bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    -- pending and sending rows are work still to do: never purged.
    DELETE FROM vigil.notifications t
    WHERE t.id IN (SELECT x.id FROM vigil.notifications x
                   WHERE x.status IN ('sent', 'failed', 'dead') AND x.updated_at < cutoff
                   ORDER BY x.id LIMIT max_rows
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION vigil.purge_notifications(older_than interval, max_rows bigint) IS 'Delete finished (sent, failed, dead) notifications last changed before now() - older_than, at most max_rows (NULL: all), oldest first; pending and sending rows are kept. Returns how many';

CREATE OR REPLACE FUNCTION vigil.purge_scan_runs(older_than interval DEFAULT '30 days'::interval, max_rows bigint DEFAULT NULL::bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.scan_runs t
    WHERE t.id IN (
        SELECT s.id FROM vigil.scan_runs s
        WHERE s.started_at < cutoff
          -- vigil.health reports the last scan
          AND s.id <> (SELECT l.id FROM vigil.scan_runs l ORDER BY l.started_at DESC, l.id DESC LIMIT 1)
        ORDER BY s.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION vigil.purge_scan_runs(older_than interval, max_rows bigint) IS 'Delete scan reports started before now() - older_than, at most max_rows (NULL: all), oldest first; the latest run (what vigil.health shows) is kept, and alert groups keep their alerts with scan_id set to NULL. Returns how many';

CREATE OR REPLACE FUNCTION vigil.raise_alert(anomaly_type text, entity text, severity vigil.severity, title text, summary text DEFAULT NULL::text, details jsonb DEFAULT '{}'::jsonb, urgency integer DEFAULT NULL::integer, monitor text DEFAULT NULL::text, rule text DEFAULT NULL::text, dedup_key text DEFAULT NULL::text, dedup_window interval DEFAULT '24:00:00'::interval, expires_in interval DEFAULT '48:00:00'::interval, labels jsonb DEFAULT NULL::jsonb, OUT alert_id bigint, OUT is_new boolean) RETURNS record
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION vigil.raise_alert(anomaly_type text, entity text, severity vigil.severity, title text, summary text, details jsonb, urgency integer, monitor text, rule text, dedup_key text, dedup_window interval, expires_in interval, labels jsonb, OUT alert_id bigint, OUT is_new boolean) IS 'Raise an alert, or bump the open alert with the same identity last seen within dedup_window (occurrences, last_seen_at, expires_at; higher severity/urgency is an escalation). The identity is the fingerprint of the labels (vigil._alert_labels: given labels, alertname, anomaly_type, entity, monitor, rule), never the date: a condition that holds across midnight is one alert; a caller that passes dedup_key but no labels makes that key alone the identity, as before. While a dismissed alert of the same identity is still seen (within dedup_window, not cleared), repeats at or below its severity bump it silently. Notifies channel vigil_alerts on new, escalated and expired alerts. dedup_key (a field) defaults to vigil.dedup_key(anomaly_type, entity, now()), urgency to vigil.urgency_score(severity). details (merged into the open alert''s on a bump) larger than vigil.max_payload_bytes are stored as {"truncated": true, "original_bytes": N}; nested deeper than 32 levels is ERROR 54000; bad labels 22023 naming the label';

CREATE OR REPLACE FUNCTION vigil.rebuild_rollup(name regclass) RETURNS bigint
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._rebuild_rollup(name) $$;

COMMENT ON FUNCTION vigil.redact_url(url text) IS 'Scheme and host of a URL, for messages and logs (the rest may hold secrets)';

COMMENT ON FUNCTION vigil.relative_error(sketch vigil.sketch) IS 'The relative error the sketch guarantees for its quantiles';

COMMENT ON FUNCTION vigil.remove_value(sketch vigil.sketch, value double precision) IS 'The sketch without one value it counts; ERROR 22023 for a value it does not hold';

COMMENT ON FUNCTION vigil.remove_value(summary vigil.statsagg, value double precision) IS 'The summary without one value it holds; min/max become unknown (NULL) when that value was an extreme';

CREATE OR REPLACE FUNCTION vigil.replay_notifications(channel text DEFAULT NULL::text, statuses vigil.notification_status[] DEFAULT '{dead}'::vigil.notification_status[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    only_channel bigint;
    n bigint;
BEGIN
    IF replay_notifications.statuses IS NULL
       OR NOT replay_notifications.statuses <@ '{failed,dead}'::vigil.notification_status[] THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('statuses must be a subset of {failed,dead}, got %s',
                             coalesce(replay_notifications.statuses::text, 'NULL'));
    END IF;
    IF replay_notifications.channel IS NOT NULL THEN
        only_channel := (vigil._channel(replay_notifications.channel)).id;
    END IF;
    UPDATE vigil.notifications t
    SET status = 'pending', attempts = 0, next_attempt_at = now(), replayed_at = now(), updated_at = now()
    WHERE t.status = ANY (replay_notifications.statuses)
      AND (only_channel IS NULL OR t.channel_id = only_channel);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM vigil._wake_worker();
    END IF;
    RETURN n;
END
$$;

COMMENT ON FUNCTION vigil.replay_notifications(channel text, statuses vigil.notification_status[]) IS 'Requeue dead (and optionally failed) notifications, of one channel or all, with fresh attempts and a fresh delivery deadline (counted from the replay); they keep their Idempotency-Key. Returns how many';

CREATE OR REPLACE FUNCTION vigil.resolve(alert_id bigint, by text DEFAULT NULL::text, note text DEFAULT NULL::text) RETURNS vigil.alerts
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE OR REPLACE FUNCTION vigil.route_alert(labels jsonb) RETURNS text[]
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    r record;
    out text[];
BEGIN
    FOR r IN SELECT t.matchers, t.channels, t."continue" AS cont FROM vigil.routes t
             WHERE t.enabled ORDER BY t.sort_order, t.name
    LOOP
        IF vigil.labels_match(labels, r.matchers) THEN
            out := coalesce(out, '{}') || r.channels;
            EXIT WHEN NOT r.cont;
        END IF;
    END LOOP;
    IF out IS NULL THEN
        -- No route matched: the channels no enabled route names.
        RETURN ARRAY(SELECT ch.name FROM vigil.channels ch
                     WHERE NOT EXISTS (SELECT 1 FROM vigil.routes t WHERE t.enabled AND ch.name = ANY (t.channels))
                     ORDER BY ch.id);
    END IF;
    RETURN vigil._distinct_names(out);
END
$$;

COMMENT ON FUNCTION vigil.route_alert(labels jsonb) IS 'The channels an alert with these labels is routed to (before each channel''s own severity and type filters): those of the first matching enabled route, and of later matching ones while a matched route has continue; with no matching route, every channel no enabled route names';

COMMENT ON FUNCTION vigil.saturation_predicted(conversion_z double precision, volume_z double precision, consecutive_decline_days integer) IS 'Whether saturation is predicted from the conversion and volume z-scores and consecutive days of decline; NULL when unknown';

COMMENT ON FUNCTION vigil.saturation_status(conversion_24h double precision, baseline_conversion double precision, messages_24h double precision, baseline_daily_messages double precision) IS 'Audience saturation RED / YELLOW / GREEN / UNKNOWN from 24 h conversion and volume against their baselines (SPEC §3.2)';

CREATE OR REPLACE FUNCTION vigil.scan(monitor text DEFAULT NULL::text) RETURNS jsonb
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "TimeZone" TO 'UTC'
    SET standard_conforming_strings TO 'on'
    AS $$ SELECT vigil._scan(monitor) $$;

COMMENT ON FUNCTION vigil.scan(monitor text) IS 'Run the enabled monitors (or one): raise and deduplicate alerts, auto-resolve cleared ones, expire old alerts and timed-out variants, group new alerts per type; returns the report (also kept in vigil.scan_runs). A failing monitor is reported under errors and does not stop the others; one another scan is running is reported under skipped. Each monitor runs as its source''s owner in a security-restricted operation under vigil.monitor_timeout_ms';

CREATE OR REPLACE FUNCTION vigil.send_webhook(channel text, payload jsonb, idempotency_key text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    c vigil.channels := vigil._channel(send_webhook.channel);
    new_id bigint;
    size bigint;
    cap int := vigil._max_payload_bytes();
BEGIN
    IF send_webhook.payload IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'payload must not be NULL';
    END IF;
    -- 54000 naming payload when nested deeper than 32 levels.
    size := vigil._json_size(send_webhook.payload::text, 'payload', cap);
    IF size > cap THEN
        -- The caller's own body: refused, never cut.
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = format('payload is %s bytes; vigil.max_payload_bytes allows at most %s', size, cap);
    END IF;
    IF c.kind = 'pg_notify' AND size > 7999 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('payload is %s bytes; a pg_notify channel carries at most 7999', size);
    END IF;
    INSERT INTO vigil.notifications AS n (channel_id, event, payload, idempotency_key)
    VALUES (c.id, 'action', send_webhook.payload,
            CASE WHEN send_webhook.idempotency_key IS NULL THEN gen_random_uuid()::text
                 ELSE vigil._require_text(send_webhook.idempotency_key, 'idempotency_key') END)
    ON CONFLICT ON CONSTRAINT notifications_idempotency_key_key DO NOTHING
    RETURNING n.id INTO new_id;
    IF new_id IS NULL THEN
        -- Already enqueued under this key: the caller's retry is a no-op.
        SELECT n.id INTO new_id FROM vigil.notifications n
        WHERE n.idempotency_key = send_webhook.idempotency_key;
        RETURN new_id;
    END IF;
    PERFORM vigil._wake_worker();
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.send_webhook(channel text, payload jsonb, idempotency_key text) IS 'Enqueue an arbitrary JSON body (an action webhook, e.g. cancel a post) on a channel. With an idempotency_key, enqueueing the same key again returns the first row''s id and sends nothing new. A payload larger than vigil.max_payload_bytes (default 65536) or nested deeper than 32 levels is ERROR 54000';

CREATE OR REPLACE FUNCTION vigil.set_monitor_timeout(name text, timeout interval) RETURNS vigil.monitors
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    m vigil.monitors := vigil._monitor_by_name(name);
    ms float8;
BEGIN
    IF timeout IS NOT NULL THEN
        ms := extract(epoch FROM timeout) * 1000;
        IF NOT (ms >= 1 AND ms <= 2147483647) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('timeout must be between 1 ms and 24 days, got %s', timeout);
        END IF;
    END IF;
    UPDATE vigil.monitors t SET timeout_ms = ms::int, updated_at = now() WHERE t.id = m.id RETURNING * INTO m;
    RETURN m;
END
$$;

COMMENT ON FUNCTION vigil.set_monitor_timeout(name text, timeout interval) IS 'Set how long one scan of the monitor may run, lock waits included (NULL: vigil.monitor_timeout_ms); a monitor that takes longer is reported as failed (54000) and the scan goes on';

CREATE OR REPLACE FUNCTION vigil.set_rollup_on_detach(name regclass, mode text) RETURNS void
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._set_rollup_on_detach(name, mode) $$;

COMMENT ON FUNCTION vigil.set_rollup_on_detach(name regclass, mode text) IS 'What a partition detached from a partitioned source does to the rollup: keep (default: its rows stay as history, like continuous aggregates after drop_chunks) or subtract (the buckets it covered are recomputed from what the source still holds). Needs the source owner''s rights; ERROR 22023 for another mode';

COMMENT ON FUNCTION vigil.severity_above(value double precision, medium double precision, high double precision, critical double precision) IS 'Severity of a value that is worse when larger: critical/high/medium at or above those thresholds, else NULL';

COMMENT ON FUNCTION vigil.severity_below(value double precision, medium double precision, high double precision, critical double precision) IS 'Severity of a value that is worse when smaller: critical/high/medium at or below those thresholds, else NULL';

CREATE OR REPLACE FUNCTION vigil.sketch_combine(vigil.sketch_state, vigil.sketch_state) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_combine';

COMMENT ON FUNCTION vigil.sketch_combine(vigil.sketch_state, vigil.sketch_state) IS 'Internal: combine function of the sketch aggregates (parallel workers, Citus coordinators)';

CREATE OR REPLACE FUNCTION vigil.sketch_final(vigil.sketch_state) RETURNS vigil.sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_final';

COMMENT ON FUNCTION vigil.sketch_final(vigil.sketch_state) IS 'Internal: final function of the sketch aggregates';

CREATE OR REPLACE FUNCTION vigil.sketch_rollup_trans(vigil.sketch_state, vigil.sketch) RETURNS vigil.sketch_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_rollup_trans';

COMMENT ON FUNCTION vigil.sketch_rollup_trans(vigil.sketch_state, vigil.sketch) IS 'Internal: transition of vigil.rollup(sketch)';

CREATE OR REPLACE FUNCTION vigil.slack_payload(alert jsonb, event text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'slack_payload_wrapper';

COMMENT ON FUNCTION vigil.slack_payload(alert jsonb, event text) IS 'The Slack message (a Block Kit body in the severity''s colour) for an alert (to_jsonb of a vigil.alerts row) and an event';

CREATE OR REPLACE FUNCTION vigil.stats_agg_combine(vigil.stats_state, vigil.stats_state) RETURNS vigil.stats_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_combine';

COMMENT ON FUNCTION vigil.stats_agg_combine(vigil.stats_state, vigil.stats_state) IS 'Internal: combine function of the statsagg aggregates (parallel workers, Citus coordinators)';

CREATE OR REPLACE FUNCTION vigil.stats_agg_final(vigil.stats_state) RETURNS vigil.statsagg
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_final';

COMMENT ON FUNCTION vigil.stats_agg_final(vigil.stats_state) IS 'Internal: final function of the statsagg aggregates';

CREATE OR REPLACE FUNCTION vigil.stats_agg_trans(vigil.stats_state, double precision) RETURNS vigil.stats_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_trans';

COMMENT ON FUNCTION vigil.stats_agg_trans(vigil.stats_state, double precision) IS 'Internal: transition of vigil.stats_agg(float8)';

CREATE OR REPLACE FUNCTION vigil.stats_rollup_trans(vigil.stats_state, vigil.statsagg) RETURNS vigil.stats_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'vigil_stats_state_rollup_trans';

COMMENT ON FUNCTION vigil.stats_rollup_trans(vigil.stats_state, vigil.statsagg) IS 'Internal: transition of vigil.rollup(statsagg)';

COMMENT ON FUNCTION vigil.stddev(summary vigil.statsagg) IS 'Sample standard deviation (n - 1); NULL for fewer than 2 values';

COMMENT ON FUNCTION vigil.stddev_pop(summary vigil.statsagg) IS 'Population standard deviation (n); NULL when empty';

COMMENT ON FUNCTION vigil.subtract(a vigil.sketch, b vigil.sketch) IS 'The sketch of a''s values without b''s; ERROR 22023 when b is not part of a';

COMMENT ON FUNCTION vigil.subtract(a vigil.statsagg, b vigil.statsagg) IS 'The summary of a''s values without b''s (b must be part of a); rounding residue clamped';

CREATE OR REPLACE FUNCTION vigil.test_channel(name text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    c vigil.channels := vigil._channel(test_channel.name);
    doc jsonb;
    new_id bigint;
BEGIN
    IF NOT c.enabled THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('channel "%s" is disabled; enable it before testing', c.name);
    END IF;
    -- At most one test message per channel per 10 seconds. The row lock
    -- (which inserts into vigil.notifications do not conflict with) makes
    -- concurrent callers take turns, so the check cannot pass twice at once.
    PERFORM 1 FROM vigil.channels ch WHERE ch.id = c.id FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM vigil.notifications n
               WHERE n.channel_id = c.id AND n.notify_key = 'test'
                 AND n.created_at > now() - interval '10 seconds') THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('channel "%s" was tested less than 10 seconds ago; wait before testing it again', c.name);
    END IF;
    doc := jsonb_build_object(
        'id', 0, 'anomaly_type', 'test', 'severity', 'info', 'urgency', 0, 'entity', c.name,
        'title', 'pg_vigil test notification',
        'summary', format('Test message for channel %s, requested by %s. If you can read this, delivery works.',
                          c.name, session_user),
        'details', '{}'::jsonb, 'recommended_actions', '[]'::jsonb, 'dedup_key', 'test:' || c.name,
        'status', 'firing', 'created_at', now(), 'last_seen_at', now(), 'occurrences', 1);
    INSERT INTO vigil.notifications (channel_id, event, notify_key, payload)
    VALUES (c.id, 'test', 'test', vigil._capped_payload(c.kind, c.name, doc, 'test'))
    RETURNING id INTO new_id;
    PERFORM vigil._wake_worker();
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION vigil.test_channel(name text) IS 'Enqueue a test message on the channel; returns the notification id (watch its status in vigil.notifications). Rate limited: a second test of the same channel within 10 seconds is ERROR 55000. The worker sends test messages only after the channel''s due alert notifications';

CREATE OR REPLACE FUNCTION vigil.update_rule(name text, metric text DEFAULT NULL::text, operator text DEFAULT NULL::text, threshold double precision DEFAULT NULL::double precision, severity vigil.severity DEFAULT NULL::vigil.severity, lookback interval DEFAULT NULL::interval, cooldown interval DEFAULT NULL::interval, description text DEFAULT NULL::text, anomaly_type text DEFAULT NULL::text, enabled boolean DEFAULT NULL::boolean, alertname text DEFAULT NULL::text, labels jsonb DEFAULT NULL::jsonb) RETURNS vigil.rules
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    r vigil.rules := vigil._rule_by_name(update_rule.name);
BEGIN
    r.metric := coalesce(update_rule.metric, r.metric);
    r.operator := coalesce(update_rule.operator, r.operator);
    r.threshold := coalesce(update_rule.threshold, r.threshold);
    r.severity := coalesce(update_rule.severity, r.severity);
    r.lookback := coalesce(update_rule.lookback, r.lookback);
    r.cooldown := coalesce(update_rule.cooldown, r.cooldown);
    r.description := coalesce(update_rule.description, r.description);
    r.anomaly_type := coalesce(update_rule.anomaly_type, r.anomaly_type);
    r.enabled := coalesce(update_rule.enabled, r.enabled);
    r.alertname := coalesce(update_rule.alertname, r.alertname);
    r.labels := coalesce(update_rule.labels, r.labels);
    PERFORM vigil._check_rule(r);
    UPDATE vigil.rules t
    SET metric = r.metric, operator = r.operator, threshold = r.threshold, severity = r.severity,
        lookback = r.lookback, cooldown = r.cooldown, description = r.description,
        anomaly_type = r.anomaly_type, enabled = r.enabled, alertname = r.alertname, labels = r.labels,
        updated_at = now()
    WHERE t.id = r.id
    RETURNING * INTO r;
    RETURN r;
END
$$;

COMMENT ON FUNCTION vigil.update_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, enabled boolean, alertname text, labels jsonb) IS 'Change the given fields of a rule (NULL leaves a field unchanged); returns the updated rule. ERROR P0002 for an unknown name, 22023 for invalid values';

COMMENT ON FUNCTION vigil.urgency_band(score integer) IS 'Response band of an urgency score: immediate, hours, within 24h, this week, backlog';

COMMENT ON FUNCTION vigil.urgency_score(severity vigil.severity, drop_points double precision, health_zone text, stall_days double precision, deal_value numeric, failure_count integer, wait_hours double precision) IS 'Urgency 0-100 from severity and optional aggravating factors (drop points, health zone, stall days, deal value, failures, wait hours)';

COMMENT ON FUNCTION vigil.variance(summary vigil.statsagg) IS 'Sample variance (n - 1); NULL for fewer than 2 values';

COMMENT ON FUNCTION vigil.variance_pop(summary vigil.statsagg) IS 'Population variance (n); NULL when empty';

CREATE OR REPLACE FUNCTION vigil.verify_rolling(name regclass) RETURNS bigint
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._verify_rolling(name) $$;

COMMENT ON FUNCTION vigil.verify_rolling(name regclass) IS 'Number of groups where a rolling total''s view differs from its rollup''s buckets in the window (0 when exact)';

CREATE OR REPLACE FUNCTION vigil.verify_rollup(name regclass) RETURNS bigint
    LANGUAGE sql STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT vigil._verify_rollup(name) $$;

CREATE OR REPLACE FUNCTION vigil.webhook_payload(alert jsonb, event text, receiver text) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'webhook_payload_wrapper';

COMMENT ON FUNCTION vigil.webhook_payload(alert jsonb, event text, receiver text) IS 'The webhook body (Alertmanager webhook v4 plus vigil) for an alert, an event and a receiver name';

COMMENT ON FUNCTION vigil.worker_status() IS 'The pg_vigil worker as it last reported itself in shared memory: running, pid, state, database, heartbeat';

COMMENT ON FUNCTION vigil.zscore(summary vigil.statsagg, value double precision) IS 'z-score of value against the summary: (value - mean) / stddev; NULL without spread';

COMMENT ON FUNCTION vigil.zscore(value double precision, mean double precision, stddev double precision) IS 'z-score (value - mean) / stddev; NULL when stddev is 0 or NULL';

CREATE OR REPLACE AGGREGATE vigil._drop_buckets(at timestamp with time zone, rows double precision, a double precision, b double precision, merge integer) (
    SFUNC = vigil._drop_buckets_trans,
    STYPE = internal,
    SSPACE = 1576,
    FINALFUNC = vigil._drop_buckets_final,
    COMBINEFUNC = vigil._drop_buckets_combine,
    SERIALFUNC = vigil._drop_buckets_serial,
    DESERIALFUNC = vigil._drop_buckets_deserial,
    PARALLEL = safe
);

COMMENT ON AGGREGATE vigil._drop_buckets(at timestamp with time zone, rows double precision, a double precision, b double precision, merge integer) IS 'Internal: the drop kind''s samples over a rollup from one entity''s slot rows (each bucket merged by merge: 0 sum(a)/sum(b), 1 sum(a) when sum(b) > 0, 2 sum(a), 3 min(a), 4 max(a); buckets with no rows or no value left out): {latest, total, samples}, NULL without samples';

CREATE OR REPLACE AGGREGATE vigil._drop_latest(at timestamp with time zone, v double precision) (
    SFUNC = vigil._drop_latest_trans,
    STYPE = internal,
    SSPACE = 40,
    FINALFUNC = vigil._drop_latest_final,
    COMBINEFUNC = vigil._drop_latest_combine,
    SERIALFUNC = vigil._drop_latest_serial,
    DESERIALFUNC = vigil._drop_latest_deserial,
    PARALLEL = safe
);

COMMENT ON AGGREGATE vigil._drop_latest(at timestamp with time zone, v double precision) IS 'Internal: the drop kind''s samples over one entity''s raw rows (rows with a NULL time or value left out): {latest, total, samples}, the latest being the greatest value of the latest time; NULL without rows';

CREATE OR REPLACE AGGREGATE vigil._saturation_days(now timestamp with time zone, at timestamp with time zone, rows double precision, converted double precision) (
    SFUNC = vigil._saturation_days_trans,
    STYPE = internal,
    SSPACE = 544,
    FINALFUNC = vigil._saturation_days_final,
    COMBINEFUNC = vigil._saturation_days_combine,
    SERIALFUNC = vigil._saturation_days_serial,
    DESERIALFUNC = vigil._saturation_days_deserial,
    PARALLEL = safe
);

COMMENT ON AGGREGATE vigil._saturation_days(now timestamp with time zone, at timestamp with time zone, rows double precision, converted double precision) IS 'Internal: the saturation kind''s figures per entity from its rows by whole days from at back to now (0 = the last 24 hours, up to 366): {rows_24h, converted_24h, rows_baseline, converted_baseline, rows_baseline_sq, rate_mean, rate_sd, decline_days}';

CREATE OR REPLACE AGGREGATE vigil.percentile_agg(double precision) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = safe
);

CREATE OR REPLACE AGGREGATE vigil.percentile_agg(double precision, relative_error double precision) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = safe
);

CREATE OR REPLACE AGGREGATE vigil.rollup(vigil.sketch) (
    SFUNC = vigil.sketch_rollup_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = safe
);

CREATE OR REPLACE AGGREGATE vigil.rollup(vigil.statsagg) (
    SFUNC = vigil.stats_rollup_trans,
    STYPE = vigil.stats_state,
    SSPACE = 56,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    PARALLEL = safe
);

CREATE OR REPLACE AGGREGATE vigil.stats_agg(double precision) (
    SFUNC = vigil.stats_agg_trans,
    STYPE = vigil.stats_state,
    SSPACE = 56,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    PARALLEL = safe
);

CREATE OR REPLACE VIEW vigil.active_alerts AS
 SELECT a.id,
    a.status,
    a.severity,
    a.urgency,
    vigil.urgency_band(a.urgency) AS urgency_band,
    a.anomaly_type,
    a.entity,
    a.title,
    a.summary,
    a.recommended_actions,
    a.occurrences,
    a.monitor,
    a.rule,
    a.group_id,
    a.dedup_key,
    a.created_at,
    a.last_seen_at,
    (now() - a.created_at) AS age,
    a.expires_at,
    a.acknowledged_by,
    a.acknowledged_at,
    a.ack_note,
    a.details,
    a.labels,
    a.fingerprint
   FROM vigil.alerts a
  WHERE (a.status = ANY (ARRAY['firing'::vigil.alert_status, 'acknowledged'::vigil.alert_status]))
  ORDER BY a.urgency DESC, a.created_at, a.id;

CREATE OR REPLACE VIEW vigil.active_silences AS
 SELECT s.id,
        CASE
            WHEN (s.starts_at > now()) THEN 'pending'::text
            ELSE 'active'::text
        END AS state,
    s.matchers,
    s.starts_at,
    s.ends_at,
    s.created_by,
    s.created_role,
    s.comment,
    ( SELECT count(*) AS count
           FROM vigil.alerts a
          WHERE ((a.status = ANY (ARRAY['firing'::vigil.alert_status, 'acknowledged'::vigil.alert_status])) AND vigil.labels_match(a.labels, s.matchers))) AS matching_alerts
   FROM vigil.silences s
  WHERE (s.ends_at > now())
  ORDER BY s.ends_at, s.id;

COMMENT ON VIEW vigil.active_silences IS 'Silences not ended yet (pending: not started), with how many open alerts they match now';

CREATE OR REPLACE VIEW vigil.alert_history AS
 SELECT a.id,
    a.status,
    a.severity,
    a.urgency,
    a.anomaly_type,
    a.entity,
    a.title,
    a.monitor,
    a.rule,
    a.occurrences,
    a.created_at,
    a.last_seen_at,
    a.acknowledged_by,
    a.acknowledged_at,
    a.ack_note,
    (a.acknowledged_at - a.created_at) AS time_to_acknowledge,
    a.resolved_by,
    a.resolved_at,
    a.resolve_note,
    (a.resolved_at - a.created_at) AS time_to_resolve,
    a.dismissed_by,
    a.dismissed_at,
    a.dismiss_note,
    a.acknowledged_role,
    a.resolved_role,
    a.dismissed_role
   FROM vigil.alerts a
  ORDER BY a.created_at DESC, a.id DESC;

CREATE TABLE vigil.default_recommended_actions (
    anomaly_type text NOT NULL,
    severity vigil.severity,
    actions text[] NOT NULL
);

COMMENT ON TABLE vigil.default_recommended_actions IS 'The recommended actions pg_vigil ships, as CREATE EXTENSION copied them into vigil.recommended_actions. Read-only reference: edit vigil.recommended_actions';

CREATE TABLE vigil.default_rules (
    id bigint NOT NULL,
    name text NOT NULL,
    metric text NOT NULL,
    operator text NOT NULL,
    threshold double precision NOT NULL,
    severity vigil.severity NOT NULL,
    lookback interval NOT NULL,
    cooldown interval NOT NULL,
    anomaly_type text DEFAULT 'rule'::text NOT NULL,
    description text,
    enabled boolean DEFAULT true NOT NULL,
    alertname text,
    labels jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT default_rules_id_check CHECK (((id >= 1) AND (id <= 999)))
);

COMMENT ON TABLE vigil.default_rules IS 'The rules pg_vigil ships, as CREATE EXTENSION copied them into vigil.rules (same ids). Read-only reference: edit vigil.rules';

CREATE TABLE vigil.deleted_default_recommended_actions (
    anomaly_type text NOT NULL,
    severity vigil.severity,
    deleted_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE vigil.deleted_default_recommended_actions IS 'Default recommended actions whose (anomaly_type, severity) is no longer in vigil.recommended_actions, kept by triggers: dumped, so that a restore deletes them again';

CREATE TABLE vigil.deleted_default_rules (
    id bigint NOT NULL,
    name text NOT NULL,
    deleted_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE vigil.deleted_default_rules IS 'Default rules that are no longer in vigil.rules (by default id), kept by triggers: dumped, so that a restore deletes them again';

CREATE TABLE vigil.escalation_policies (
    id bigint NOT NULL,
    name text NOT NULL,
    matchers text[] DEFAULT '{}'::text[] NOT NULL,
    min_severity vigil.severity DEFAULT 'high'::vigil.severity NOT NULL,
    steps jsonb NOT NULL,
    repeat boolean DEFAULT true NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT escalation_policies_name_check CHECK ((btrim(name) <> ''::text)),
    CONSTRAINT escalation_policies_steps_check CHECK ((jsonb_typeof(steps) = 'array'::text))
);

COMMENT ON TABLE vigil.escalation_policies IS 'Escalation chains (Grafana OnCall''s): an alert at or above min_severity matching the matchers that is still firing unacknowledged after a step''s wait notifies that step''s channels, step after step (and, with repeat, the chain again) until it is acknowledged or closed';

COMMENT ON COLUMN vigil.escalation_policies.steps IS 'JSON array of {"after": interval, "channels": [names]}: "after" counts from the alert firing (first step) or from the previous step';

ALTER TABLE vigil.escalation_policies ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vigil.escalation_policies_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vigil.escalations (
    policy_id bigint NOT NULL,
    alert_id bigint NOT NULL,
    step integer DEFAULT 0 NOT NULL,
    cycles integer DEFAULT 0 NOT NULL,
    next_at timestamp with time zone NOT NULL,
    last_step_at timestamp with time zone,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT escalations_cycles_check CHECK ((cycles >= 0)),
    CONSTRAINT escalations_step_check CHECK ((step >= 0))
);

COMMENT ON TABLE vigil.escalations IS 'Running escalations: per policy and alert, the next step (0-based), how many times the chain ran, when it is due';

COMMENT ON COLUMN vigil.notifications.notify_key IS 'Identity for the channel''s repeat_interval: alert dedup key, event, and for escalations the severity; ''test'' for vigil.test_channel messages (its rate limit)';

COMMENT ON COLUMN vigil.notifications.replayed_at IS 'Last requeue by vigil.replay_notifications; the channel''s delivery_deadline counts from here (else from created_at)';

CREATE OR REPLACE VIEW vigil.health AS
 SELECT w.running AS worker_running,
    w.pid AS worker_pid,
    w.state AS worker_state,
    w.database AS worker_database,
    w.started_at AS worker_started_at,
    w.heartbeat_at AS worker_heartbeat_at,
    (EXTRACT(epoch FROM (clock_timestamp() - w.heartbeat_at)))::double precision AS worker_heartbeat_age_s,
    q.depth AS notification_queue_depth,
    (EXTRACT(epoch FROM (clock_timestamp() - q.oldest)))::double precision AS oldest_pending_age_s,
    ( SELECT count(*) AS count
           FROM vigil.notifications n
          WHERE ((n.status = 'sent'::vigil.notification_status) AND (n.sent_at > (now() - '01:00:00'::interval)))) AS deliveries_1h,
    ( SELECT count(*) AS count
           FROM vigil.notifications n
          WHERE ((n.status = ANY (ARRAY['failed'::vigil.notification_status, 'dead'::vigil.notification_status])) AND (n.updated_at > (now() - '01:00:00'::interval)))) AS delivery_failures_1h,
    s.started_at AS last_scan_at,
    ((EXTRACT(epoch FROM (now() - s.started_at)))::double precision / (60)::double precision) AS minutes_since_last_scan,
    s.duration_ms AS last_scan_duration_ms,
    s.success AS last_scan_success,
    ( SELECT count(*) AS count
           FROM vigil.monitors m
          WHERE m.enabled) AS monitors_enabled,
    ( SELECT count(*) AS count
           FROM vigil.monitors m
          WHERE (m.enabled AND (m.last_error IS NOT NULL))) AS monitors_failing,
    a.open_alerts,
    a.open_critical,
    a.open_high,
    a.open_medium,
    a.open_low,
    a.open_info,
    ( SELECT count(*) AS count
           FROM vigil.rollup_defs) AS rollups,
    (0)::double precision AS rollup_lag_s,
    (( SELECT count(*) AS count
           FROM vigil.rollup_defs d
          WHERE (vigil._rollup_status((d.summary)::oid) <> 'ok'::text)) + ( SELECT count(*) AS count
           FROM pg_trigger t
          WHERE ((t.tgfoid = ('vigil._rollup_trigger'::regproc)::oid) AND (NOT (EXISTS ( SELECT 1
                   FROM vigil.rollup_defs d
                  WHERE ((d.source)::oid = t.tgrelid))))))) AS rollups_broken
   FROM vigil.worker_status() w(running, pid, state, database, started_at, heartbeat_at, heartbeats, poll_interval_ms),
    ((LATERAL ( SELECT count(*) AS depth,
            min(n.created_at) AS oldest
           FROM vigil.notifications n
          WHERE (n.status = ANY (ARRAY['pending'::vigil.notification_status, 'sending'::vigil.notification_status]))) q
     LEFT JOIN LATERAL ( SELECT r.started_at,
            r.duration_ms,
            r.success
           FROM vigil.scan_runs r
          ORDER BY r.started_at DESC
         LIMIT 1) s ON (true))
     CROSS JOIN LATERAL ( SELECT count(*) AS open_alerts,
            count(*) FILTER (WHERE (al.severity = 'critical'::vigil.severity)) AS open_critical,
            count(*) FILTER (WHERE (al.severity = 'high'::vigil.severity)) AS open_high,
            count(*) FILTER (WHERE (al.severity = 'medium'::vigil.severity)) AS open_medium,
            count(*) FILTER (WHERE (al.severity = 'low'::vigil.severity)) AS open_low,
            count(*) FILTER (WHERE (al.severity = 'info'::vigil.severity)) AS open_info
           FROM vigil.alerts al
          WHERE (al.status = ANY (ARRAY['firing'::vigil.alert_status, 'acknowledged'::vigil.alert_status]))) a);

CREATE TABLE vigil.held_notifications (
    channel_id bigint NOT NULL,
    alert_id bigint NOT NULL,
    event text NOT NULL,
    reason text NOT NULL,
    held_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT held_notifications_event_check CHECK ((event = ANY (ARRAY['new'::text, 'escalated'::text])))
);

COMMENT ON TABLE vigil.held_notifications IS 'Alert notifications of ungrouped channels held back by a silence or an inhibition: sent by the worker when the alert is no longer suppressed and still open, dropped (with its closing notification) when it closes first';

CREATE TABLE vigil.inhibit_rules (
    id bigint NOT NULL,
    name text NOT NULL,
    source_matchers text[] NOT NULL,
    target_matchers text[] NOT NULL,
    equal text[] DEFAULT '{}'::text[] NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT inhibit_rules_name_check CHECK ((btrim(name) <> ''::text))
);

COMMENT ON TABLE vigil.inhibit_rules IS 'Inhibition (Alertmanager''s inhibit_rules): an open alert matching target_matchers is not notified while another open alert matches source_matchers and has the same values of the equal labels (an absent label equals an absent one); an alert matching both sides is inhibited only by one that does not';

ALTER TABLE vigil.inhibit_rules ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vigil.inhibit_rules_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE OR REPLACE VIEW vigil.metrics AS
 SELECT m.name,
    m.channel_kind,
    m.severity,
    m.le,
    m.value
   FROM vigil._metrics() m(name, channel_kind, severity, le, value);

COMMENT ON VIEW vigil.metrics IS 'pg_vigil''s counters since the server started, one row per series (Prometheus counters and a histogram; seconds): notifications sent, retried, failed and dead and the delivery latency per channel kind, scans, alerts raised, resolved, dismissed and expired per severity, rollup trigger errors. Those of the database vigil.database names (elsewhere empty), in shared memory: a restart starts them at 0; empty unless pg_vigil is in shared_preload_libraries';

COMMENT ON COLUMN vigil.metrics.name IS 'Counter name (exported as pg_vigil_<name>): notifications_{sent,retried,failed,dead}_total, notification_delivery_seconds_{bucket,sum,count}, scans_total, scan_failures_total, monitor_failures_total, alerts_{raised,resolved,dismissed,expired}_total, rollup_trigger_errors_total';

COMMENT ON COLUMN vigil.metrics.channel_kind IS 'The channel kind of notification counters (slack, webhook, pg_notify, pagerduty, msteams, alertmanager, email); NULL for the others';

COMMENT ON COLUMN vigil.metrics.severity IS 'The alert severity of alert counters; NULL for the others';

COMMENT ON COLUMN vigil.metrics.le IS 'Upper bound in seconds (inclusive) of a notification_delivery_seconds_bucket row, Infinity for +Inf; NULL for the others';

COMMENT ON COLUMN vigil.metrics.value IS 'The count (cumulative for buckets); seconds for notification_delivery_seconds_sum';

CREATE TABLE vigil.notification_group_events (
    id bigint NOT NULL,
    channel_id bigint NOT NULL,
    group_key text NOT NULL,
    group_labels jsonb NOT NULL,
    alert_id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE vigil.notification_group_events IS 'Alert events of grouped channels, appended in the raising transaction and folded into vigil.notification_groups by the worker';

ALTER TABLE vigil.notification_group_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vigil.notification_group_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vigil.notification_groups (
    channel_id bigint NOT NULL,
    group_key text NOT NULL,
    group_labels jsonb NOT NULL,
    alert_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    notified jsonb DEFAULT '{}'::jsonb NOT NULL,
    flush_at timestamp with time zone,
    flushed_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    held bigint[] DEFAULT '{}'::bigint[] NOT NULL
);

COMMENT ON TABLE vigil.notification_groups IS 'Alert groups of grouped channels (channels.group_by): their alerts, the next flush (group_wait, group_interval, repeat_interval reminders) and what the last message reported';

CREATE TABLE vigil.rolling_defs (
    totals regclass NOT NULL,
    summary regclass NOT NULL,
    view regclass NOT NULL,
    since interval NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE vigil.rolling_defs IS 'Rolling totals of rollups: the totals table, its summary, the view that reads it, the window';

CREATE OR REPLACE VIEW vigil.rolling AS
 SELECT r.view AS name,
    r.summary AS rollup,
    r.since,
    s.cutoff,
    (date_bin(d.bucket, (now() - r.since), '2000-01-03 00:00:00+00'::timestamp with time zone) - s.cutoff) AS lag,
    s.groups,
    s.unfolded,
    r.totals,
    r.created_at
   FROM (vigil.rolling_defs r
     JOIN vigil.rollup_defs d ON (((d.summary)::oid = (r.summary)::oid))),
    LATERAL vigil._rolling_size(r.totals) s(cutoff, groups, unfolded);

COMMENT ON VIEW vigil.rolling IS 'Rolling totals: the window''s first bucket they count from (cutoff), how far the ager is behind now''s window (lag: 0 when current; the view stays exact either way, only slower to read), groups, slot rows not folded yet';

CREATE TABLE vigil.rollup_detached (
    summary oid NOT NULL,
    rel oid NOT NULL,
    detached_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE vigil.rollup_detached IS 'Internal: partitions detached from a rollup''s source whose rows its summary keeps as history; attaching one again adds nothing';

CREATE TABLE vigil.rollup_triggers (
    trigger oid NOT NULL,
    summary oid NOT NULL,
    on_source boolean NOT NULL
);

COMMENT ON TABLE vigil.rollup_triggers IS 'Internal: the summary each linked rollup trigger maintains, and whether it is on the source itself (not a partition)';

CREATE OR REPLACE VIEW vigil.rollups AS
 SELECT d.summary AS name,
    d.source,
    d.time_column,
    d.bucket,
    d.group_by,
    d.measures,
    s.rows,
    s.latest_bucket,
    d.created_at,
    vigil._rollup_status((d.summary)::oid) AS status
   FROM vigil.rollup_defs d,
    LATERAL vigil._rollup_size(d.summary) s(rows, latest_bucket);

COMMENT ON VIEW vigil.rollups IS 'Rollups with their summary row count, latest bucket and status (ok, or why the summary is not being kept exact)';

CREATE TABLE vigil.routes (
    id bigint NOT NULL,
    name text NOT NULL,
    sort_order integer NOT NULL,
    matchers text[] DEFAULT '{}'::text[] NOT NULL,
    channels text[] NOT NULL,
    continue boolean DEFAULT false NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT routes_channels_check CHECK ((cardinality(channels) > 0)),
    CONSTRAINT routes_name_check CHECK ((btrim(name) <> ''::text))
);

COMMENT ON TABLE vigil.routes IS 'Where alerts go, by their labels (Alertmanager''s routes): walked by sort_order (then name), the first route whose matchers all hold sends the alert to its channels, and so does every later matching one while the matched route has continue. An alert no route matches goes to the channels no enabled route names (with no routes: every channel)';

COMMENT ON COLUMN vigil.routes.matchers IS 'Alertmanager matchers (name op "value"), all must hold; empty: every alert';

COMMENT ON COLUMN vigil.routes.channels IS 'Channel names; a channel a route names can be renamed but not dropped';

COMMENT ON COLUMN vigil.routes.continue IS 'After this route matched, keep walking the later routes';

ALTER TABLE vigil.routes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vigil.routes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE vigil.silences ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vigil.silences_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY vigil.default_recommended_actions
    ADD CONSTRAINT default_recommended_actions_anomaly_type_severity_key UNIQUE NULLS NOT DISTINCT (anomaly_type, severity);

ALTER TABLE ONLY vigil.default_rules
    ADD CONSTRAINT default_rules_name_key UNIQUE (name);

ALTER TABLE ONLY vigil.default_rules
    ADD CONSTRAINT default_rules_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.deleted_default_recommended_actions
    ADD CONSTRAINT deleted_default_recommended_actions_anomaly_type_severity_key UNIQUE NULLS NOT DISTINCT (anomaly_type, severity);

ALTER TABLE ONLY vigil.deleted_default_rules
    ADD CONSTRAINT deleted_default_rules_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.escalation_policies
    ADD CONSTRAINT escalation_policies_name_key UNIQUE (name);

ALTER TABLE ONLY vigil.escalation_policies
    ADD CONSTRAINT escalation_policies_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.escalations
    ADD CONSTRAINT escalations_pkey PRIMARY KEY (policy_id, alert_id);

ALTER TABLE ONLY vigil.held_notifications
    ADD CONSTRAINT held_notifications_pkey PRIMARY KEY (channel_id, alert_id);

ALTER TABLE ONLY vigil.inhibit_rules
    ADD CONSTRAINT inhibit_rules_name_key UNIQUE (name);

ALTER TABLE ONLY vigil.inhibit_rules
    ADD CONSTRAINT inhibit_rules_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.notification_group_events
    ADD CONSTRAINT notification_group_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.notification_groups
    ADD CONSTRAINT notification_groups_pkey PRIMARY KEY (channel_id, group_key);

ALTER TABLE ONLY vigil.rolling_defs
    ADD CONSTRAINT rolling_defs_pkey PRIMARY KEY (totals);

ALTER TABLE ONLY vigil.rollup_detached
    ADD CONSTRAINT rollup_detached_pkey PRIMARY KEY (summary, rel);

ALTER TABLE ONLY vigil.rollup_triggers
    ADD CONSTRAINT rollup_triggers_pkey PRIMARY KEY (trigger);

ALTER TABLE ONLY vigil.routes
    ADD CONSTRAINT routes_name_key UNIQUE (name);

ALTER TABLE ONLY vigil.routes
    ADD CONSTRAINT routes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vigil.silences
    ADD CONSTRAINT silences_pkey PRIMARY KEY (id);

CREATE INDEX escalations_alert_id_idx ON vigil.escalations USING btree (alert_id);

CREATE INDEX escalations_next_at_idx ON vigil.escalations USING btree (next_at);

CREATE INDEX held_notifications_alert_id_idx ON vigil.held_notifications USING btree (alert_id);

CREATE INDEX notification_groups_flush_at_idx ON vigil.notification_groups USING btree (flush_at) WHERE (flush_at IS NOT NULL);

CREATE INDEX silences_ends_at_idx ON vigil.silences USING btree (ends_at);

CREATE TRIGGER channels_references_delete BEFORE DELETE ON vigil.channels FOR EACH ROW EXECUTE FUNCTION vigil._channel_references();

CREATE TRIGGER channels_references_rename AFTER UPDATE OF name ON vigil.channels FOR EACH ROW WHEN ((old.name IS DISTINCT FROM new.name)) EXECUTE FUNCTION vigil._channel_references();

CREATE TRIGGER deleted_default_recommended_actions_apply BEFORE INSERT ON vigil.deleted_default_recommended_actions FOR EACH ROW EXECUTE FUNCTION vigil._deleted_default_recommended_actions_apply();

CREATE TRIGGER deleted_default_rules_apply BEFORE INSERT ON vigil.deleted_default_rules FOR EACH ROW EXECUTE FUNCTION vigil._deleted_default_rules_apply();

CREATE TRIGGER escalation_policies_check BEFORE INSERT OR UPDATE ON vigil.escalation_policies FOR EACH ROW EXECUTE FUNCTION vigil._escalation_policies_check();

CREATE TRIGGER inhibit_rules_check BEFORE INSERT OR UPDATE ON vigil.inhibit_rules FOR EACH ROW EXECUTE FUNCTION vigil._inhibit_rules_check();

CREATE TRIGGER monitors_guard BEFORE INSERT OR UPDATE ON vigil.monitors FOR EACH ROW EXECUTE FUNCTION vigil._monitors_guard();

CREATE TRIGGER recommended_actions_restore_replaces_default BEFORE INSERT ON vigil.recommended_actions FOR EACH ROW EXECUTE FUNCTION vigil._recommended_actions_restore_replaces_default();

CREATE TRIGGER recommended_actions_track_deleted_defaults AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON vigil.recommended_actions FOR EACH STATEMENT EXECUTE FUNCTION vigil._recommended_actions_track_deleted_defaults();

CREATE TRIGGER routes_check BEFORE INSERT OR UPDATE ON vigil.routes FOR EACH ROW EXECUTE FUNCTION vigil._routes_check();

CREATE TRIGGER rules_restore_replaces_default BEFORE INSERT ON vigil.rules FOR EACH ROW EXECUTE FUNCTION vigil._rules_restore_replaces_default();

CREATE TRIGGER rules_track_deleted_defaults AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON vigil.rules FOR EACH STATEMENT EXECUTE FUNCTION vigil._rules_track_deleted_defaults();

CREATE TRIGGER silences_check BEFORE INSERT OR UPDATE ON vigil.silences FOR EACH ROW EXECUTE FUNCTION vigil._silences_check();

ALTER TABLE ONLY vigil.escalations
    ADD CONSTRAINT escalations_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES vigil.alerts(id) ON DELETE CASCADE;

ALTER TABLE ONLY vigil.escalations
    ADD CONSTRAINT escalations_policy_id_fkey FOREIGN KEY (policy_id) REFERENCES vigil.escalation_policies(id) ON DELETE CASCADE;

ALTER TABLE ONLY vigil.held_notifications
    ADD CONSTRAINT held_notifications_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES vigil.alerts(id) ON DELETE CASCADE;

ALTER TABLE ONLY vigil.held_notifications
    ADD CONSTRAINT held_notifications_channel_id_fkey FOREIGN KEY (channel_id) REFERENCES vigil.channels(id) ON DELETE CASCADE;

ALTER TABLE ONLY vigil.notification_group_events
    ADD CONSTRAINT notification_group_events_channel_id_fkey FOREIGN KEY (channel_id) REFERENCES vigil.channels(id) ON DELETE CASCADE;

ALTER TABLE ONLY vigil.notification_groups
    ADD CONSTRAINT notification_groups_channel_id_fkey FOREIGN KEY (channel_id) REFERENCES vigil.channels(id) ON DELETE CASCADE;

-- ACL SCHEMA vigil


REVOKE USAGE ON SCHEMA vigil FROM vigil_reader;

GRANT USAGE ON SCHEMA vigil TO PUBLIC;

-- ACL FUNCTION _alert_document(alert vigil.alerts)


REVOKE ALL ON FUNCTION vigil._alert_document(alert vigil.alerts) FROM PUBLIC;

-- ACL COLUMN channels.delivery_deadline


GRANT SELECT(delivery_deadline) ON TABLE vigil.channels TO vigil_reader;

-- ACL COLUMN channels.group_by


GRANT SELECT(group_by) ON TABLE vigil.channels TO vigil_reader;

-- ACL COLUMN channels.group_wait


GRANT SELECT(group_wait) ON TABLE vigil.channels TO vigil_reader;

-- ACL COLUMN channels.group_interval


GRANT SELECT(group_interval) ON TABLE vigil.channels TO vigil_reader;

-- ACL FUNCTION _count_alert(event text, severity text)


REVOKE ALL ON FUNCTION vigil._count_alert(event text, severity text) FROM PUBLIC;

-- ACL FUNCTION _count_scan(failed_monitors integer)


REVOKE ALL ON FUNCTION vigil._count_scan(failed_monitors integer) FROM PUBLIC;

-- ACL FUNCTION _deleted_default_recommended_actions_apply()


REVOKE ALL ON FUNCTION vigil._deleted_default_recommended_actions_apply() FROM PUBLIC;

-- ACL FUNCTION _deleted_default_rules_apply()


REVOKE ALL ON FUNCTION vigil._deleted_default_rules_apply() FROM PUBLIC;

-- ACL FUNCTION _enqueue_to(c vigil.channels, alert vigil.alerts, event text, doc jsonb)


REVOKE ALL ON FUNCTION vigil._enqueue_to(c vigil.channels, alert vigil.alerts, event text, doc jsonb) FROM PUBLIC;

-- ACL FUNCTION _flush_groups(max_groups integer)


REVOKE ALL ON FUNCTION vigil._flush_groups(max_groups integer) FROM PUBLIC;

-- ACL FUNCTION _forget_dropped_rollups()


REVOKE ALL ON FUNCTION vigil._forget_dropped_rollups() FROM PUBLIC;

-- ACL FUNCTION _group_alert(c vigil.channels, alert vigil.alerts)


REVOKE ALL ON FUNCTION vigil._group_alert(c vigil.channels, alert vigil.alerts) FROM PUBLIC;

-- ACL FUNCTION _metrics()


REVOKE ALL ON FUNCTION vigil._metrics() FROM PUBLIC;
GRANT ALL ON FUNCTION vigil._metrics() TO vigil_reader;

-- ACL FUNCTION _monitor_run(monitor bigint)


REVOKE ALL ON FUNCTION vigil._monitor_run(monitor bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil._monitor_run(monitor bigint) TO vigil_admin;

-- ACL FUNCTION _monitors_guard()


REVOKE ALL ON FUNCTION vigil._monitors_guard() FROM PUBLIC;

-- ACL FUNCTION _recommended_actions_restore_replaces_default()


REVOKE ALL ON FUNCTION vigil._recommended_actions_restore_replaces_default() FROM PUBLIC;

-- ACL FUNCTION _recommended_actions_track_deleted_defaults()


REVOKE ALL ON FUNCTION vigil._recommended_actions_track_deleted_defaults() FROM PUBLIC;

-- ACL FUNCTION _release_held(max_rows integer)


REVOKE ALL ON FUNCTION vigil._release_held(max_rows integer) FROM PUBLIC;

-- ACL FUNCTION _resend_alertmanager()


REVOKE ALL ON FUNCTION vigil._resend_alertmanager() FROM PUBLIC;

-- ACL FUNCTION _rules_restore_replaces_default()


REVOKE ALL ON FUNCTION vigil._rules_restore_replaces_default() FROM PUBLIC;

-- ACL FUNCTION _rules_track_deleted_defaults()


REVOKE ALL ON FUNCTION vigil._rules_track_deleted_defaults() FROM PUBLIC;

-- ACL FUNCTION _run_escalations(max_rows integer)


REVOKE ALL ON FUNCTION vigil._run_escalations(max_rows integer) FROM PUBLIC;

-- ACL FUNCTION _scan(monitor text)


REVOKE ALL ON FUNCTION vigil._scan(monitor text) FROM PUBLIC;

-- ACL FUNCTION _start_escalations(alert vigil.alerts)


REVOKE ALL ON FUNCTION vigil._start_escalations(alert vigil.alerts) FROM PUBLIC;

-- ACL FUNCTION _upgrade_rollup(summary oid)


REVOKE ALL ON FUNCTION vigil._upgrade_rollup(summary oid) FROM PUBLIC;

-- ACL FUNCTION create_channel(name text, kind text, url text, headers jsonb, min_severity vigil.severity, anomaly_types text[], send_resolved boolean, max_per_second double precision, repeat_interval interval, delivery_deadline interval, group_by text[], group_wait interval, group_interval interval, options jsonb)


REVOKE ALL ON FUNCTION vigil.create_channel(name text, kind text, url text, headers jsonb, min_severity vigil.severity, anomaly_types text[], send_resolved boolean, max_per_second double precision, repeat_interval interval, delivery_deadline interval, group_by text[], group_wait interval, group_interval interval, options jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_channel(name text, kind text, url text, headers jsonb, min_severity vigil.severity, anomaly_types text[], send_resolved boolean, max_per_second double precision, repeat_interval interval, delivery_deadline interval, group_by text[], group_wait interval, group_interval interval, options jsonb) TO vigil_admin;

-- ACL FUNCTION create_escalation_policy(name text, steps jsonb, matchers text[], min_severity vigil.severity, repeat boolean)


REVOKE ALL ON FUNCTION vigil.create_escalation_policy(name text, steps jsonb, matchers text[], min_severity vigil.severity, repeat boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_escalation_policy(name text, steps jsonb, matchers text[], min_severity vigil.severity, repeat boolean) TO vigil_admin;

-- ACL FUNCTION create_inhibit_rule(name text, source_matchers text[], target_matchers text[], equal text[])


REVOKE ALL ON FUNCTION vigil.create_inhibit_rule(name text, source_matchers text[], target_matchers text[], equal text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_inhibit_rule(name text, source_matchers text[], target_matchers text[], equal text[]) TO vigil_admin;

-- ACL FUNCTION create_route(name text, channels text[], matchers text[], continue boolean, sort_order integer)


REVOKE ALL ON FUNCTION vigil.create_route(name text, channels text[], matchers text[], continue boolean, sort_order integer) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_route(name text, channels text[], matchers text[], continue boolean, sort_order integer) TO vigil_admin;

-- ACL FUNCTION create_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, alertname text, labels jsonb)


REVOKE ALL ON FUNCTION vigil.create_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, alertname text, labels jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, alertname text, labels jsonb) TO vigil_admin;

-- ACL FUNCTION create_silence(matchers text[], ends_at timestamp with time zone, comment text, created_by text, starts_at timestamp with time zone)


REVOKE ALL ON FUNCTION vigil.create_silence(matchers text[], ends_at timestamp with time zone, comment text, created_by text, starts_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.create_silence(matchers text[], ends_at timestamp with time zone, comment text, created_by text, starts_at timestamp with time zone) TO vigil_operator;

-- ACL FUNCTION drop_escalation_policy(name text)


REVOKE ALL ON FUNCTION vigil.drop_escalation_policy(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.drop_escalation_policy(name text) TO vigil_admin;

-- ACL FUNCTION drop_inhibit_rule(name text)


REVOKE ALL ON FUNCTION vigil.drop_inhibit_rule(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.drop_inhibit_rule(name text) TO vigil_admin;

-- ACL FUNCTION drop_route(name text)


REVOKE ALL ON FUNCTION vigil.drop_route(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.drop_route(name text) TO vigil_admin;

-- ACL TABLE silences


GRANT SELECT ON TABLE vigil.silences TO vigil_reader;

-- ACL FUNCTION expire_silence(silence_id bigint)


REVOKE ALL ON FUNCTION vigil.expire_silence(silence_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.expire_silence(silence_id bigint) TO vigil_operator;

-- ACL FUNCTION purge_alerts(older_than interval, max_rows bigint)


REVOKE ALL ON FUNCTION vigil.purge_alerts(older_than interval, max_rows bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.purge_alerts(older_than interval, max_rows bigint) TO vigil_admin;

-- ACL FUNCTION purge_metric_values(older_than interval, max_rows bigint)


REVOKE ALL ON FUNCTION vigil.purge_metric_values(older_than interval, max_rows bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.purge_metric_values(older_than interval, max_rows bigint) TO vigil_admin;

-- ACL FUNCTION purge_notifications(older_than interval, max_rows bigint)


REVOKE ALL ON FUNCTION vigil.purge_notifications(older_than interval, max_rows bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.purge_notifications(older_than interval, max_rows bigint) TO vigil_admin;

-- ACL FUNCTION purge_scan_runs(older_than interval, max_rows bigint)


REVOKE ALL ON FUNCTION vigil.purge_scan_runs(older_than interval, max_rows bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.purge_scan_runs(older_than interval, max_rows bigint) TO vigil_admin;

-- ACL FUNCTION raise_alert(anomaly_type text, entity text, severity vigil.severity, title text, summary text, details jsonb, urgency integer, monitor text, rule text, dedup_key text, dedup_window interval, expires_in interval, labels jsonb, OUT alert_id bigint, OUT is_new boolean)


REVOKE ALL ON FUNCTION vigil.raise_alert(anomaly_type text, entity text, severity vigil.severity, title text, summary text, details jsonb, urgency integer, monitor text, rule text, dedup_key text, dedup_window interval, expires_in interval, labels jsonb, OUT alert_id bigint, OUT is_new boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.raise_alert(anomaly_type text, entity text, severity vigil.severity, title text, summary text, details jsonb, urgency integer, monitor text, rule text, dedup_key text, dedup_window interval, expires_in interval, labels jsonb, OUT alert_id bigint, OUT is_new boolean) TO vigil_admin;

-- ACL FUNCTION set_monitor_timeout(name text, timeout interval)


REVOKE ALL ON FUNCTION vigil.set_monitor_timeout(name text, timeout interval) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.set_monitor_timeout(name text, timeout interval) TO vigil_admin;

-- ACL FUNCTION update_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, enabled boolean, alertname text, labels jsonb)


REVOKE ALL ON FUNCTION vigil.update_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, enabled boolean, alertname text, labels jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION vigil.update_rule(name text, metric text, operator text, threshold double precision, severity vigil.severity, lookback interval, cooldown interval, description text, anomaly_type text, enabled boolean, alertname text, labels jsonb) TO vigil_admin;

-- ACL TABLE active_silences


GRANT SELECT ON TABLE vigil.active_silences TO vigil_reader;

-- ACL TABLE default_recommended_actions


GRANT SELECT ON TABLE vigil.default_recommended_actions TO vigil_reader;

-- ACL TABLE default_rules


GRANT SELECT ON TABLE vigil.default_rules TO vigil_reader;

-- ACL TABLE deleted_default_recommended_actions


GRANT SELECT ON TABLE vigil.deleted_default_recommended_actions TO vigil_reader;

-- ACL TABLE deleted_default_rules


GRANT SELECT ON TABLE vigil.deleted_default_rules TO vigil_reader;

-- ACL TABLE escalation_policies


GRANT SELECT ON TABLE vigil.escalation_policies TO vigil_reader;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE vigil.escalation_policies TO vigil_admin;

-- ACL TABLE escalations


GRANT SELECT ON TABLE vigil.escalations TO vigil_reader;

-- ACL TABLE held_notifications


GRANT SELECT ON TABLE vigil.held_notifications TO vigil_reader;

-- ACL TABLE inhibit_rules


GRANT SELECT ON TABLE vigil.inhibit_rules TO vigil_reader;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE vigil.inhibit_rules TO vigil_admin;

-- ACL TABLE metrics


GRANT SELECT ON TABLE vigil.metrics TO vigil_reader;

-- ACL TABLE notification_group_events


GRANT SELECT ON TABLE vigil.notification_group_events TO vigil_reader;

-- ACL TABLE notification_groups


GRANT SELECT ON TABLE vigil.notification_groups TO vigil_reader;

-- ACL TABLE rolling_defs


GRANT SELECT ON TABLE vigil.rolling_defs TO vigil_reader;

-- ACL TABLE rolling


GRANT SELECT ON TABLE vigil.rolling TO vigil_reader;

-- ACL TABLE routes


GRANT SELECT ON TABLE vigil.routes TO vigil_reader;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE vigil.routes TO vigil_admin;

CREATE EVENT TRIGGER vigil_forget_dropped_rollups ON sql_drop
   EXECUTE FUNCTION vigil._forget_dropped_rollups();

CREATE EVENT TRIGGER vigil_rollup_ddl ON ddl_command_end
         WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'ALTER TYPE', 'ALTER SCHEMA')
   EXECUTE FUNCTION vigil._rollup_ddl_event();

DROP FUNCTION IF EXISTS vigil.percentile_agg_trans(internal, double precision);

DROP FUNCTION IF EXISTS vigil.percentile_agg_trans(internal, double precision, double precision);

DROP FUNCTION IF EXISTS vigil.sketch_combine(internal, internal);

DROP FUNCTION IF EXISTS vigil.sketch_deserial(bytea, internal);

DROP FUNCTION IF EXISTS vigil.sketch_final(internal);

DROP FUNCTION IF EXISTS vigil.sketch_rollup_trans(internal, vigil.sketch);

DROP FUNCTION IF EXISTS vigil.sketch_serial(internal);

DROP FUNCTION IF EXISTS vigil.stats_agg_combine(internal, internal);

DROP FUNCTION IF EXISTS vigil.stats_agg_deserial(bytea, internal);

DROP FUNCTION IF EXISTS vigil.stats_agg_final(internal);

DROP FUNCTION IF EXISTS vigil.stats_agg_serial(internal);

DROP FUNCTION IF EXISTS vigil.stats_agg_trans(internal, double precision);

DROP FUNCTION IF EXISTS vigil.stats_rollup_trans(internal, vigil.statsagg);

-- 4. Types and data. statsagg and sketch gain binary send/receive (COPY
-- BINARY, the binary protocol), now that part 3 made the functions.
ALTER TYPE vigil.statsagg SET (SEND = vigil.statsagg_send, RECEIVE = vigil.statsagg_recv);
ALTER TYPE vigil.sketch SET (SEND = vigil.sketch_send, RECEIVE = vigil.sketch_recv);
ALTER TABLE vigil.notifications
    ADD CONSTRAINT notifications_event_check CHECK (vigil._is_notification_event(event));

-- The shipped defaults become reference tables (0.1.0 inserted
-- the same rules and actions, in the same order, so rule ids 1-10 are the
-- defaults); user rules move to ids from 1000; the statement triggers then
-- record deleted defaults as tombstones; the config tables are dumped as
-- a fresh install dumps them.
INSERT INTO vigil.default_rules (id, name, metric, operator, threshold, severity, lookback, cooldown, description,
                                 alertname) VALUES
    (1, 'roas_below_2', 'roas', '<', 2.0, 'high', '60 minutes', '30 minutes',
     'Return on ad spend below 2.0', 'ROAS_DROP'),
    (2, 'roas_below_3', 'roas', '<', 3.0, 'medium', '120 minutes', '60 minutes',
     'Return on ad spend below 3.0', 'ROAS_DROP'),
    (3, 'budget_80pct', 'budget_utilization', '>=', 80, 'medium', '24 hours', '6 hours',
     'Budget utilization at or above 80%', 'BUDGET_WARNING'),
    (4, 'budget_100pct', 'budget_utilization', '>=', 100, 'critical', '24 hours', '12 hours',
     'Budget exhausted: utilization at or above 100%', 'BUDGET_DEPLETED'),
    (5, 'ad_disapproved', 'ad_disapprovals', '>=', 1, 'critical', '10 minutes', '0',
     'At least one ad disapproved', 'AD_DISAPPROVED'),
    (6, 'ctr_drop_20pct', 'ctr', 'pct_drop', 20, 'medium', '60 minutes', '2 hours',
     'Click-through rate at least 20% below its 60-minute average', 'CTR_ANOMALY'),
    (7, 'conversion_spike_50pct', 'conversions', 'pct_rise', 50, 'low', '60 minutes', '2 hours',
     'Conversions at least 50% above their 60-minute average', 'CONVERSION_SPIKE'),
    (8, 'prediction_error_30pct', 'prediction_error', '>=', 30, 'low', '4 hours', '6 hours',
     'Prediction error at or above 30%', 'PREDICTION_MISS'),
    (9, 'cpa_above_100', 'cpa', '>', 100, 'high', '2 hours', '1 hour',
     'Cost per acquisition above 100', 'HIGH_CPA'),
    (10, 'impressions_below_1000', 'impressions', '<', 1000, 'medium', '1 hour', '2 hours',
     'Fewer than 1000 impressions', 'LOW_IMPRESSIONS');

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

-- Each monitor kind's own (src/monitor/kinds), as a fresh install has them;
-- the kinds' types 0.1.0 did not ship recommended actions for (count, drop,
-- threshold, stall, freshness, vigil_health) get them, the others keep the
-- user's rows.
INSERT INTO vigil.default_recommended_actions (anomaly_type, severity, actions)
SELECT k.anomaly_type, k.severity::vigil.severity, k.actions FROM vigil._kind_default_actions() k;
INSERT INTO vigil.recommended_actions (anomaly_type, severity, actions)
SELECT d.anomaly_type, d.severity, d.actions FROM vigil.default_recommended_actions d
WHERE d.anomaly_type IN ('count', 'drop', 'threshold', 'stall', 'freshness', 'vigil_health')
  AND NOT EXISTS (SELECT 1 FROM vigil.recommended_actions r
                  WHERE r.anomaly_type = d.anomaly_type AND r.severity IS NOT DISTINCT FROM d.severity);

SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('vigil.rules', 'id'),
                         greatest(1000, (SELECT max(r.id) + 1 FROM vigil.rules r)), false);
UPDATE vigil.rules SET id = DEFAULT WHERE id BETWEEN 11 AND 999;
-- The defaults' alerts get the seed's alertnames (ROAS_DROP, ...).
UPDATE vigil.rules r SET alertname = d.alertname FROM vigil.default_rules d WHERE r.id = d.id;
UPDATE vigil.recommended_actions SET actions = actions WHERE false;
SELECT pg_catalog.pg_extension_config_dump('vigil.rules', 'WHERE NOT vigil._rule_is_default(rules)');
SELECT pg_catalog.pg_extension_config_dump('vigil.rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.deleted_default_rules', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.recommended_actions',
                                           'WHERE NOT vigil._recommended_action_is_default(recommended_actions)');
SELECT pg_catalog.pg_extension_config_dump('vigil.deleted_default_recommended_actions', '');

-- Monitors: 0.1.0 scanned as the superuser; 0.2.0 scans as the source's
-- owner, bounded by created_by's SELECT rights: created_by becomes the
-- source's owner, and vigil._monitors_guard pins the source by oid and
-- checks the options as for a new monitor. A monitor whose source is gone
-- or whose options no longer pass keeps its row and reports the error at
-- its next scan.
DO $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT mo.id, mo.name, c.relowner FROM vigil.monitors mo
             LEFT JOIN pg_catalog.pg_class c
                    ON c.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', mo.source_schema, mo.source_table))
             ORDER BY mo.id LOOP
        BEGIN
            UPDATE vigil.monitors SET created_by = coalesce(pg_catalog.pg_get_userbyid(m.relowner), current_user)
            WHERE id = m.id;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pg_vigil 0.2.0: monitor % kept as it was: %', m.name, SQLERRM;
        END;
    END LOOP;
END
$$;
-- 0.1.0 did not record who made a monitor (any vigil_admin could insert
-- one over any table, and scans ran as the superuser), so the owner taken
-- as created_by above may not be who made it: a monitor someone planted
-- over a table they cannot read would go on reporting its rows. Upgraded
-- monitors therefore start disabled, for a DBA to review and enable
-- (SELECT vigil.enable_monitor(name)), unless the
-- update runs with SET vigil.upgrade_keep_monitors = on (every 0.1.0
-- monitor trusted, as 0.1.0 trusted them).
DO $$
DECLARE
    names text;
BEGIN
    IF coalesce(nullif(pg_catalog.current_setting('vigil.upgrade_keep_monitors', true), ''), 'off')::bool THEN
        RETURN;
    END IF;
    WITH off AS (
        UPDATE vigil.monitors SET enabled = false,
            last_error = 'disabled by the upgrade to 0.2.0: 0.1.0 did not record who created it; review it and enable it'
        WHERE enabled
        RETURNING name)
    SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) INTO names FROM off;
    IF names IS NOT NULL THEN
        RAISE WARNING 'pg_vigil 0.2.0: monitors disabled until reviewed: %', names
            USING HINT = 'Check each one''s source and options, then SELECT vigil.enable_monitor(name) for each; '
                         'or run the update with SET vigil.upgrade_keep_monitors = on to keep them all enabled.';
    END IF;
END
$$;

-- Alerts: labels and the fingerprint that is now their identity (0.1.0's
-- dated dedup_key stays as a field). A rule's or monitor's alert gets the
-- labels it would get today (a monitor's own options.labels did not exist;
-- a finding's key suffix is only in the old key, so such an alert is
-- raised anew by the next scan and this one resolved); a direct call's
-- alert keeps its dedup_key as its identity, as raise_alert does for
-- callers that pass a key but no labels. Open alerts that now share an identity (0.1.0
-- opened one per UTC day) keep the newest; the others expire.
UPDATE vigil.alerts a SET labels = pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'alertname', coalesce((SELECT r.alertname FROM vigil.rules r WHERE r.name = a.rule), a.rule, a.monitor,
                          a.anomaly_type),
    'anomaly_type', a.anomaly_type, 'entity', a.entity,
    'severity', a.severity::text, 'monitor', a.monitor, 'rule', a.rule,
    'dedup_key', CASE WHEN a.monitor IS NULL AND a.rule IS NULL THEN a.dedup_key END));
UPDATE vigil.alerts SET fingerprint = vigil.alert_fingerprint(CASE WHEN monitor IS NULL AND rule IS NULL
    THEN pg_catalog.jsonb_build_object('dedup_key', dedup_key) ELSE labels END);
ALTER TABLE vigil.alerts ALTER COLUMN fingerprint SET NOT NULL;
UPDATE vigil.alerts a SET status = 'expired'
WHERE a.status IN ('firing', 'acknowledged')
  AND EXISTS (SELECT 1 FROM vigil.alerts b
              WHERE b.status IN ('firing', 'acknowledged') AND b.fingerprint = a.fingerprint
                AND coalesce(b.monitor, '') = coalesce(a.monitor, '')
                AND (b.last_seen_at, b.id) > (a.last_seen_at, a.id));
DROP INDEX vigil.alerts_open_dedup_key_idx;
CREATE UNIQUE INDEX alerts_open_fingerprint_idx ON vigil.alerts ((coalesce(monitor, '')), fingerprint)
    WHERE status IN ('firing', 'acknowledged');
CREATE INDEX alerts_dismissed_fingerprint_idx ON vigil.alerts ((coalesce(monitor, '')), fingerprint, last_seen_at)
    WHERE status = 'dismissed' AND cleared_at IS NULL;
-- Routing, silences, inhibition and escalation are configuration: dumped.
SELECT pg_catalog.pg_extension_config_dump('vigil.routes', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.routes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.silences', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.silences_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.inhibit_rules', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.inhibit_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.held_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.escalation_policies', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.escalation_policies_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.escalations', '');
-- Rolling totals' definitions are configuration: dumped.
SELECT pg_catalog.pg_extension_config_dump('vigil.rolling_defs', '');
-- Alerts by labels (the inhibition probe).
CREATE INDEX alerts_labels_idx ON vigil.alerts USING gin (labels jsonb_path_ops) WITH (gin_pending_list_limit = 64);

-- 5. Rollups: each becomes a 0.2.0 rollup (vigil._upgrade_rollup: the
-- source owner's objects, the shared trigger with its dependencies) and is
-- recomputed from its source.
DO $$
DECLARE
    d record;
    why text;
BEGIN
    FOR d IN SELECT r.summary FROM vigil.rollup_defs r ORDER BY r.created_at, r.summary::oid LOOP
        why := vigil._upgrade_rollup(d.summary::oid);
        IF why IS NOT NULL THEN
            RAISE WARNING 'pg_vigil 0.2.0: rollup % is not maintained: %', d.summary, why
                USING HINT = 'Fix the cause and run vigil.rebuild_rollup, or vigil.drop_rollup it.';
        END IF;
    END LOOP;
END
$$;

-- A rule's cooldown counts from the closing of its last alert, as a
-- threshold monitor's does (0.1.0 counted it from the alert's creation).
COMMENT ON TABLE vigil.rules IS 'Alert rules on pushed metrics: value <op> threshold, or pct_drop / pct_rise (percent change vs the entity''s average over lookback) >= threshold. cooldown: no new alert for the same rule and entity that soon after the last one closed';
COMMENT ON COLUMN vigil.rules.cooldown IS 'After the rule''s alert for an entity closed (resolved, dismissed, or last seen when it expired), no new alert for that entity until this has passed (repeats still bump the open alert); as a threshold monitor''s cooldown';
