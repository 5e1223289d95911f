-- Notifications: channels and the durable outbox the worker drains
-- (SPEC §3.5). New, escalated and (per channel) resolved alerts enqueue one
-- row per matching channel in the same transaction that changed the alert, so
-- a notification exists exactly when its alert change committed.

CREATE TYPE vigil.notification_status AS ENUM ('pending', 'sending', 'sent', 'failed', 'dead');
COMMENT ON TYPE vigil.notification_status IS
    'Outbox row state: pending (due at next_attempt_at), sending (leased by the worker), sent, failed (rejected, 4xx), dead (still undeliverable at the channel''s delivery deadline)';

-- Channels --------------------------------------------------------------

CREATE TABLE vigil.channels (
    id              bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text           NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    -- The kinds are the library's (src/notify/channel.rs), checked by
    -- vigil._check_channel in the channels_check trigger on every write.
    kind            text           NOT NULL,
    url             text           NOT NULL,
    headers         jsonb          NOT NULL DEFAULT '{}',
    -- What a kind needs besides url and headers (pagerduty: routing_key).
    options         jsonb          NOT NULL DEFAULT '{}',
    min_severity    vigil.severity NOT NULL DEFAULT 'info',
    anomaly_types   text[],
    send_resolved   bool           NOT NULL DEFAULT false,
    max_per_second  float8         CHECK (max_per_second >= 0.001 AND max_per_second <= 100000),
    repeat_interval interval       NOT NULL DEFAULT '1 hour' CHECK (repeat_interval >= interval '0'),
    delivery_deadline interval     NOT NULL DEFAULT '24 hours'
                    CONSTRAINT channels_delivery_deadline_check
                    CHECK (delivery_deadline > interval '0' AND delivery_deadline <= interval '30 days'),
    -- Grouping (as Alertmanager's route): alerts whose labels agree on
    -- group_by go out as one message per group; NULL: one per alert event.
    group_by        text[]         DEFAULT '{alertname}',
    group_wait      interval       NOT NULL DEFAULT '30 seconds' CONSTRAINT channels_group_wait_check
                    CHECK (group_wait >= interval '0' AND group_wait <= interval '1 day'),
    group_interval  interval       NOT NULL DEFAULT '5 minutes' CONSTRAINT channels_group_interval_check
                    CHECK (group_interval > interval '0' AND group_interval <= interval '1 day'),
    enabled         bool           NOT NULL DEFAULT true,
    created_at      timestamptz    NOT NULL DEFAULT now(),
    updated_at      timestamptz    NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.channels IS
    'Where notifications go. url, headers and options are secrets (vigil_admin only). Slack channels default to max_per_second 1';
COMMENT ON COLUMN vigil.channels.url IS
    'http(s) URL for slack, webhook, pagerduty (the Events API v2 endpoint), msteams (the Workflows webhook) and '
    'alertmanager (its /api/v2/alerts endpoint); smtp://host[:port] (STARTTLS) or smtps://host[:port] for email; '
    'the NOTIFY channel name for pg_notify. Secret';
COMMENT ON COLUMN vigil.channels.headers IS 'Extra HTTP headers, a JSON object of strings (e.g. Authorization). Secret';
COMMENT ON COLUMN vigil.channels.options IS
    'What the kind needs besides url and headers, a JSON object: pagerduty {"routing_key": "<integration key>"}; '
    'email {"from", "to": [...], "cc"?, "username"?, "password"?, "tls"?: "starttls" | "none"}; other kinds none. Secret';
COMMENT ON COLUMN vigil.channels.min_severity IS 'Alerts below this severity are not sent here';
COMMENT ON COLUMN vigil.channels.anomaly_types IS 'Only these anomaly types (NULL = all)';
COMMENT ON COLUMN vigil.channels.send_resolved IS 'Also notify when an alert is resolved';
COMMENT ON COLUMN vigil.channels.max_per_second IS 'Delivery rate limit (NULL = none; slack defaults to 1)';
COMMENT ON COLUMN vigil.channels.repeat_interval IS
    'A notification with the same alert key and event is not repeated on this channel within this interval (0 to 100 years)';
COMMENT ON COLUMN vigil.channels.group_by IS
    'Labels whose values make a group: its alerts go out together, one message per flush (NULL: one message per alert '
    'event; pg_notify channels are never grouped)';
COMMENT ON COLUMN vigil.channels.group_wait IS 'How long a new group waits for more alerts before its first message';
COMMENT ON COLUMN vigil.channels.group_interval IS 'Least time between two messages of a group about changes in it';
COMMENT ON COLUMN vigil.channels.delivery_deadline IS
    'How long after a notification is queued (or replayed) retryable failures are retried; after that it is dead (over 0, at most 30 days)';
SELECT pg_catalog.pg_extension_config_dump('vigil.channels', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.channels_id_seq', '');

CREATE FUNCTION vigil._channels_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
$$;
CREATE TRIGGER channels_check BEFORE INSERT OR UPDATE ON vigil.channels
    FOR EACH ROW EXECUTE FUNCTION vigil._channels_check();

CREATE FUNCTION vigil.create_channel(
    name text,
    kind text,
    url text,
    headers jsonb DEFAULT '{}',
    min_severity vigil.severity DEFAULT 'info',
    anomaly_types text[] DEFAULT NULL,
    send_resolved bool DEFAULT false,
    max_per_second float8 DEFAULT NULL,
    repeat_interval interval DEFAULT '1 hour',
    delivery_deadline interval DEFAULT '24 hours',
    group_by text[] DEFAULT '{alertname}',
    group_wait interval DEFAULT '30 seconds',
    group_interval interval DEFAULT '5 minutes',
    options jsonb DEFAULT '{}'
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil.create_channel(text, text, text, jsonb, vigil.severity, text[], bool, float8, interval, interval, text[], interval, interval, jsonb) IS
    'Add a notification channel (kind slack, webhook, pg_notify, pagerduty, msteams, alertmanager or email); the url, headers '
    'and options (pagerduty: {"routing_key": ...}; email: {"from", "to", ...}) are checked and never echoed. PagerDuty and Alertmanager channels are never grouped '
    'and always send resolves. '
    'Alerts are grouped by the group_by labels (default alertname; NULL: one message per alert event) and sent '
    'after group_wait, then at most every group_interval on changes, and every repeat_interval while unacknowledged';

-- Outbox ----------------------------------------------------------------

CREATE TABLE vigil.notifications (
    id               bigint                    GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id       bigint                    NOT NULL REFERENCES vigil.channels (id) ON DELETE CASCADE,
    alert_id         bigint                    REFERENCES vigil.alerts (id) ON DELETE SET NULL,
    event            text                      NOT NULL
                     -- The events are the library's (src/notify/mod.rs).
                     CONSTRAINT notifications_event_check CHECK (vigil._is_notification_event(event)),
    notify_key       text,
    payload          jsonb                     NOT NULL,
    status           vigil.notification_status NOT NULL DEFAULT 'pending',
    attempts         int                       NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz               NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    last_http_status int,
    last_error       text,
    idempotency_key  text                      NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    created_at       timestamptz               NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    sent_at          timestamptz,
    updated_at       timestamptz               NOT NULL DEFAULT now()
);
-- Payloads are compressed with lz4 where the server was built with it:
-- pglz took a tenth of a grouped flush (a message lists up to 200 alerts).
DO $$
BEGIN
    ALTER TABLE vigil.notifications ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
-- The worker's claim walks this per channel, oldest due first.
CREATE INDEX notifications_due_idx ON vigil.notifications (channel_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notifications_repeat_idx ON vigil.notifications (channel_id, notify_key, created_at)
    WHERE notify_key IS NOT NULL;
CREATE INDEX notifications_alert_id_idx ON vigil.notifications (alert_id);

CREATE INDEX notifications_sent_at_idx ON vigil.notifications (sent_at) WHERE status = 'sent';
CREATE INDEX notifications_undelivered_idx ON vigil.notifications (updated_at)
    WHERE status IN ('failed', 'dead');
COMMENT ON TABLE vigil.notifications IS
    'Outbox of notifications, drained by the pg_vigil worker: at-least-once delivery, every request carries the row''s Idempotency-Key';
COMMENT ON COLUMN vigil.notifications.next_attempt_at IS
    'When the row is due (pending), or when its lease ends (sending)';
COMMENT ON COLUMN vigil.notifications.notify_key IS
    'Identity for the channel''s repeat_interval: alert dedup key, event, and for escalations the severity; '
    '''test'' for vigil.test_channel messages (its rate limit)';
COMMENT ON COLUMN vigil.notifications.replayed_at IS
    'Last requeue by vigil.replay_notifications; the channel''s delivery_deadline counts from here (else from created_at)';
COMMENT ON COLUMN vigil.notifications.idempotency_key IS
    'Sent as the Idempotency-Key header on every attempt, so receivers can drop repeats';
SELECT pg_catalog.pg_extension_config_dump('vigil.notifications', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.notifications_id_seq', '');

-- Enqueueing ------------------------------------------------------------

CREATE FUNCTION vigil._render_payload(kind text, channel_name text, alert jsonb, event text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._render_payload(text, text, jsonb, text) IS
    'Internal: the payload a channel of this kind receives for an alert event (pg_notify: {"id", "event"} only)';

CREATE FUNCTION vigil._capped_payload(kind text, channel_name text, alert jsonb, event text) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._capped_payload(text, text, jsonb, text) IS
    'Internal: vigil._render_payload, kept within vigil.max_payload_bytes: over the cap the alert''s details become '
    '{"truncated": true, "original_bytes": N}, then title/entity/summary are cut and the alert marked truncated, '
    'and as a last resort the payload is only {"truncated": true, "original_bytes", "alert_id", "event"}';

-- Groups ----------------------------------------------------------------
-- One row per channel and group (the alert labels the channel groups by):
-- the alerts it holds, when it is next due, and what its last message said
-- of each alert. vigil._group_alert adds alerts as their events happen;
-- the worker calls vigil._flush_groups() each round.

CREATE TABLE vigil.notification_groups (
    channel_id   bigint      NOT NULL REFERENCES vigil.channels (id) ON DELETE CASCADE,
    group_key    text        NOT NULL,
    group_labels jsonb       NOT NULL,
    alert_ids    bigint[]    NOT NULL DEFAULT '{}',
    -- alert id -> severity, as the last message reported it firing
    notified     jsonb       NOT NULL DEFAULT '{}',
    flush_at     timestamptz,
    flushed_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- open alerts of the group silenced or inhibited at the last flush
    held         bigint[]    NOT NULL DEFAULT '{}',
    PRIMARY KEY (channel_id, group_key)
);
CREATE INDEX notification_groups_flush_at_idx ON vigil.notification_groups (flush_at) WHERE flush_at IS NOT NULL;
COMMENT ON TABLE vigil.notification_groups IS
    'Alert groups of grouped channels (channels.group_by): their alerts, the next flush (group_wait, group_interval, '
    'repeat_interval reminders) and what the last message reported';

-- Raisers only append here (no shared row to lock, so concurrent scans
-- never wait on, or deadlock over, a group); the worker folds these events
-- into vigil.notification_groups when it flushes.
CREATE TABLE vigil.notification_group_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id   bigint      NOT NULL REFERENCES vigil.channels (id) ON DELETE CASCADE,
    group_key    text        NOT NULL,
    group_labels jsonb       NOT NULL,
    alert_id     bigint      NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.notification_group_events IS
    'Alert events of grouped channels, appended in the raising transaction and folded into vigil.notification_groups '
    'by the worker';

CREATE FUNCTION vigil._group_alert(c vigil.channels, alert vigil.alerts) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gl jsonb := (SELECT coalesce(jsonb_object_agg(k, coalesce(alert.labels ->> k, '')), '{}')
                 FROM unnest(c.group_by) AS k);
BEGIN
    INSERT INTO vigil.notification_group_events (channel_id, group_key, group_labels, alert_id)
    VALUES (c.id, gl::text, gl, alert.id);
END
$$;
COMMENT ON FUNCTION vigil._group_alert(vigil.channels, vigil.alerts) IS
    'Internal: records that the alert changed for its group on a grouped channel (vigil.notification_group_events); '
    'the caller (vigil._enqueue_alert) wakes the worker';

CREATE FUNCTION vigil._flush_groups(max_groups int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._flush_groups(int) IS
    'Internal: folds new alert events into their groups, then sends the due groups (run by the worker each round): '
    'one message per group listing its firing alerts '
    '(and, with send_resolved, those resolved since), when an alert joined or escalated, one closed, or a reminder is '
    'due (repeat_interval while an alert is firing unacknowledged); returns how many messages were queued';

-- The alert as the payload builders read it (one per alert event, however
-- many ungrouped channels it goes to).
CREATE FUNCTION vigil._alert_document(alert vigil.alerts) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_jsonb(alert) || jsonb_build_object('affected_count',
        (SELECT g.affected_count FROM vigil.alert_groups g WHERE g.id = alert.group_id))
$$;
COMMENT ON FUNCTION vigil._alert_document(vigil.alerts) IS
    'Internal: the alert row as JSON with its group''s affected_count, what the single-alert payloads are built from';

CREATE FUNCTION vigil._enqueue_to(c vigil.channels, alert vigil.alerts, event text, doc jsonb DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._enqueue_to(vigil.channels, vigil.alerts, text, jsonb) IS
    'Internal: the alert event for one channel: into its group (grouped channels), or one outbox row (built from doc, '
    'else vigil._alert_document) unless the channel got the same fingerprint and event within its repeat_interval; '
    'returns 1 when something was queued';

CREATE FUNCTION vigil._enqueue_alert(alert vigil.alerts, event text) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._enqueue_alert(vigil.alerts, text) IS
    'Internal: the alert event for every enabled channel it is routed to (vigil.route_alert) whose severity and type '
    'filters it passes (the closing events resolved, dismissed and expired only to channels with send_resolved, or '
    'grouped); a silenced or inhibited alert is held back (vigil.held_notifications), a firing one starts its '
    'escalation policies';

-- Alertmanager forgets an alert at its endsAt: open alerts are re-posted
-- every vigil.alertmanager_resend_interval with endsAt four intervals
-- ahead (what Prometheus does), so they stay active while open, come back
-- after an Alertmanager restart, and end by themselves if pg_vigil stops.
CREATE FUNCTION vigil._resend_alertmanager() RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil._resend_alertmanager() IS
    'Internal (the worker, each round): for every enabled alertmanager channel not re-posted within '
    'vigil.alertmanager_resend_interval, one outbox row (event resend) per slice of its open, routed, unsuppressed '
    'alerts, with endsAt four intervals ahead; returns how many rows it queued';

-- Every alert event: pg_notify on vigil_alerts, counted in vigil.metrics,
-- and onto the channels' outbox. Defined here once (alerts.sql's functions
-- call it; PL/pgSQL resolves it when they run).
CREATE FUNCTION vigil._notify_alert(alert vigil.alerts, event text) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.pg_notify('vigil_alerts', vigil.alert_event(alert, event)::text);
    -- vigil.metrics counts the event when this transaction commits.
    SELECT vigil._count_alert(event, (alert).severity::text);
    SELECT vigil._enqueue_alert(alert, event);
$$;
COMMENT ON FUNCTION vigil._notify_alert(vigil.alerts, text) IS
    'Internal: pg_notify on channel vigil_alerts (delivered at commit)';

CREATE FUNCTION vigil._channel(name text) RETURNS vigil.channels
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c vigil.channels;
BEGIN
    SELECT * INTO c FROM vigil.channels ch WHERE ch.name = vigil._require_text(_channel.name, 'channel');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('channel "%s" does not exist', _channel.name);
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION vigil._channel(text) IS 'Internal: the channel of that name, or ERROR 42704';

CREATE FUNCTION vigil.test_channel(name text) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil.test_channel(text) IS
    'Enqueue a test message on the channel; returns the notification id (watch its status in vigil.notifications). '
    'Rate limited: a second test of the same channel within 10 seconds is ERROR 55000. '
    'The worker sends test messages only after the channel''s due alert notifications';

CREATE FUNCTION vigil.send_webhook(channel text, payload jsonb, idempotency_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil.send_webhook(text, jsonb, text) IS
    'Enqueue an arbitrary JSON body (an action webhook, e.g. cancel a post) on a channel. '
    'With an idempotency_key, enqueueing the same key again returns the first row''s id and sends nothing new. '
    'A payload larger than vigil.max_payload_bytes (default 65536) or nested deeper than 32 levels is ERROR 54000';

-- Operations ------------------------------------------------------------

CREATE FUNCTION vigil.replay_notifications(
    channel text DEFAULT NULL,
    statuses vigil.notification_status[] DEFAULT '{dead}'
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION vigil.replay_notifications(text, vigil.notification_status[]) IS
    'Requeue dead (and optionally failed) notifications, of one channel or all, with fresh attempts and a fresh '
    'delivery deadline (counted from the replay); they keep their Idempotency-Key. Returns how many';

CREATE VIEW vigil.notification_queue AS
SELECT c.name                                             AS channel,
       c.kind,
       c.enabled,
       count(*) FILTER (WHERE n.status = 'pending')       AS pending,
       count(*) FILTER (WHERE n.status = 'sending')       AS sending,
       count(*) FILTER (WHERE n.status = 'failed')        AS failed,
       count(*) FILTER (WHERE n.status = 'dead')          AS dead,
       count(*) FILTER (WHERE n.status = 'sent' AND n.sent_at > now() - interval '1 hour') AS sent_1h,
       min(n.created_at) FILTER (WHERE n.status IN ('pending', 'sending')) AS oldest_pending_at
FROM vigil.channels c
LEFT JOIN vigil.notifications n ON n.channel_id = c.id
GROUP BY c.id, c.name, c.kind, c.enabled
ORDER BY c.name;
COMMENT ON VIEW vigil.notification_queue IS
    'Per channel: queued, in-flight, failed and dead notifications, sends in the last hour, oldest queued';

REVOKE ALL ON vigil.channels FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    vigil.create_channel(text, text, text, jsonb, vigil.severity, text[], bool, float8, interval, interval, text[], interval, interval, jsonb),
    vigil._notify_alert(vigil.alerts, text),
    vigil._enqueue_alert(vigil.alerts, text),
    vigil._enqueue_to(vigil.channels, vigil.alerts, text, jsonb),
    vigil._alert_document(vigil.alerts),
    vigil._group_alert(vigil.channels, vigil.alerts),
    vigil._flush_groups(int),
    vigil._resend_alertmanager(),
    vigil.test_channel(text),
    vigil.send_webhook(text, jsonb, text),
    vigil.replay_notifications(text, vigil.notification_status[]),
    vigil._wake_worker()
FROM PUBLIC;
