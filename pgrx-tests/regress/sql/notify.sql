-- pg_regress: notification channels and the outbox (SPEC §3.5): validation
-- of hostile channel definitions, enqueue rules, payload shapes, replay.
-- Runs in a database the worker does not drain, so rows stay pending.
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET search_path = public;

CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Keys carry the UTC day; mask it so the output does not depend on the date.
CREATE FUNCTION pg_temp.day(t text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(t, '[0-9]{4}-[0-9]{2}-[0-9]{2}', 'YYYY-MM-DD', 'g')
$$;

------------------------------------------------------------- bad channels
SELECT pg_temp.err(format('SELECT vigil.create_channel(%L, %L, %L, group_by => NULL)', n, k, u)) AS error
FROM (VALUES
    ('c1', 'sms',       'https://example.com/x'),
    ('c2', 'webhook',   'ftp://example.com/x'),
    ('c3', 'webhook',   'file:///etc/passwd'),
    ('c4', 'webhook',   'https://user:hunter2@example.com/x'),
    ('c5', 'webhook',   'https:///nohost'),
    ('c6', 'slack',     'https://hooks.slack.com:99999/x'),
    ('c7', 'slack',     E'https://hooks.slack.com/x\r\nX-Injected: 1'),
    ('c8', 'webhook',   'example.com/hook'),
    ('c9', 'pg_notify', ''),
    ('',   'webhook',   'https://example.com/x')
) AS t(n, k, u);
SELECT pg_temp.err($$SELECT vigil.create_channel('h1', 'webhook', 'https://example.com/x', headers => '{"Bad Name": "v"}', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('h2', 'webhook', 'https://example.com/x', headers => '{"X-A": "v\r\nX-B: 1"}', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('h3', 'webhook', 'https://example.com/x', headers => '{"X-A": 1}', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('h4', 'webhook', 'https://example.com/x', headers => '["x"]', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('h5', 'webhook', 'https://example.com/x', headers => '{"Idempotency-Key": "mine"}', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('r1', 'webhook', 'https://example.com/x', max_per_second => 0, group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('r2', 'webhook', 'https://example.com/x', max_per_second => 'NaN', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('r3', 'webhook', 'https://example.com/x', repeat_interval => '-1 hour', group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('r4', 'webhook', NULL, group_by => NULL)$$);
SELECT pg_temp.err($$SELECT vigil.create_channel('r5', 'webhook', 'https://example.com/x', min_severity => 'urgent', group_by => NULL)$$);
SELECT pg_temp.err($$INSERT INTO vigil.channels (name, kind, url) VALUES ('direct', 'webhook', 'gopher://x')$$);
SELECT count(*) AS channels_after_bad_input FROM vigil.channels;

------------------------------------------------------------ good channels
SELECT vigil.create_channel('slack', 'slack', 'https://hooks.slack.com/services/T0/B0/secret',
                            send_resolved => true, group_by => NULL) > 0 AS created;
SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/hook',
                            headers => '{"Authorization": "Bearer x"}', min_severity => 'medium', group_by => NULL) > 0 AS created;
SELECT vigil.create_channel('deals', 'webhook', 'http://127.0.0.1:9/deals',
                            anomaly_types => '{deal_stalled}', group_by => NULL) > 0 AS created;
SELECT vigil.create_channel('listen', 'pg_notify', 'vigil_out', group_by => NULL) > 0 AS created;
SELECT pg_temp.err($$SELECT vigil.create_channel('slack', 'slack', 'https://hooks.slack.com/x', group_by => NULL)$$);
-- Slack gets Slack's 1 message/s unless told otherwise.
SELECT name, kind, min_severity, anomaly_types, send_resolved, max_per_second, repeat_interval
FROM vigil.channels ORDER BY name;
SELECT pg_temp.err($$UPDATE vigil.channels SET url = 'not a url' WHERE name = 'hook'$$);
-- plain DML gets the same checks (and no DETAIL line echoing the row's URL)
SELECT pg_temp.err($$UPDATE vigil.channels SET max_per_second = 0 WHERE name = 'hook'$$);
SELECT pg_temp.err($$UPDATE vigil.channels SET repeat_interval = NULL WHERE name = 'hook'$$);
SELECT pg_temp.err($$UPDATE vigil.channels SET name = ' ' WHERE name = 'hook'$$);
SELECT vigil.redact_url(url) FROM vigil.channels WHERE name = 'slack';

------------------------------------------------------------------ enqueue
-- low: below hook's min_severity, not deal_stalled: slack and listen only
SELECT is_new FROM vigil.raise_alert('health_drop', 'n-acme', 'low', 'Health dropped 5 points');
SELECT c.name, n.event, n.status, n.attempts, pg_temp.day(n.notify_key) AS notify_key
FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id ORDER BY c.name, n.id;
-- a repeat is a dedup bump: no new notification
SELECT is_new FROM vigil.raise_alert('health_drop', 'n-acme', 'low', 'Health dropped 5 points');
-- an escalation notifies every matching channel
SELECT is_new FROM vigil.raise_alert('health_drop', 'n-acme', 'high', 'Health dropped 16 points',
                                     details => '{"drop_points": 16}');
SELECT c.name, n.event, pg_temp.day(n.notify_key) AS notify_key
FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE n.event = 'escalated' ORDER BY c.name;
-- resolved only where send_resolved
SELECT (vigil.resolve(id, 'oncall')).status FROM vigil.alerts WHERE entity = 'n-acme';
SELECT c.name, n.event FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE n.event = 'resolved';
-- firing again within the hour: not repeated, except where the channel was told it was resolved (slack)
SELECT is_new FROM vigil.raise_alert('health_drop', 'n-acme', 'low', 'Health dropped 5 points');
SELECT count(*) AS new_notifications_for_acme FROM vigil.notifications WHERE event = 'new';
-- type filter
SELECT is_new FROM vigil.raise_alert('deal_stalled', 'n-deal-9', 'medium', 'Deal stalled 16 days');
SELECT c.name FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
JOIN vigil.alerts a ON a.id = n.alert_id WHERE a.anomaly_type = 'deal_stalled' ORDER BY c.name;
-- disabled channels get nothing
UPDATE vigil.channels SET enabled = false WHERE name = 'listen';
SELECT is_new FROM vigil.raise_alert('sync_failure', 'n-stripe', 'critical', 'Stripe sync failed 5 times');
SELECT c.name FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
JOIN vigil.alerts a ON a.id = n.alert_id WHERE a.anomaly_type = 'sync_failure' ORDER BY c.name;
SELECT pg_temp.err($$SELECT vigil.test_channel('listen')$$);
SELECT pg_temp.err($$SELECT vigil.test_channel('nope')$$);
UPDATE vigil.channels SET enabled = true WHERE name = 'listen';

----------------------------------------------------------------- payloads
-- the slack row of the escalation
SELECT jsonb_pretty(n.payload - 'attachments') AS slack_fallback,
       n.payload -> 'attachments' -> 0 ->> 'color' AS colour,
       n.payload #>> '{attachments,0,blocks,0,text,text}' AS header,
       n.payload #>> '{attachments,0,blocks,-1,elements,0,text}'
           ~ '^pg_vigil · health_drop · alert #[0-9]+ · last seen <!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|[0-9: -]+ UTC>$' AS context_ok,
       (SELECT string_agg(b ->> 'type', ', ') FROM jsonb_array_elements(n.payload #> '{attachments,0,blocks}') b) AS blocks,
       (SELECT string_agg(f ->> 'text', E'\n') FROM jsonb_array_elements(n.payload #> '{attachments,0,blocks}') b,
               jsonb_array_elements(b -> 'fields') f) AS fields
FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE c.name = 'slack' AND n.event = 'escalated';
-- the webhook row of the escalation: Alertmanager v4 shape
SELECT n.payload ->> 'version' AS version, n.payload ->> 'status' AS status, n.payload ->> 'receiver' AS receiver,
       pg_temp.day(n.payload -> 'alerts' -> 0 ->> 'labels') AS labels,
       n.payload -> 'alerts' -> 0 ->> 'fingerprint' ~ '^[0-9a-f]{16}$' AS fingerprint_ok,
       n.payload -> 'vigil' ->> 'event' AS event
FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE c.name = 'hook' AND n.event = 'escalated';
-- pg_notify rows carry the compact event
SELECT n.payload - 'id' AS payload FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE c.name = 'listen' AND n.event = 'escalated';
SELECT pg_temp.err($$SELECT vigil.slack_payload('{}', 'exploded')$$);
SELECT vigil.slack_payload('{"title": "x <@U1> & y", "severity": "critical"}', 'new') ->> 'text' AS escaped;

--------------------------------------------------------- action webhooks
SELECT vigil.send_webhook('hook', '{"action": "cancel_post", "post": 42}', 'kill:variant-7') =
       vigil.send_webhook('hook', '{"action": "cancel_post", "post": 42}', 'kill:variant-7') AS same_row;
SELECT count(*) AS action_rows FROM vigil.notifications WHERE idempotency_key = 'kill:variant-7';
SELECT pg_temp.err($$SELECT vigil.send_webhook('hook', NULL)$$);
SELECT pg_temp.err($$SELECT vigil.send_webhook('hook', '{}', '  ')$$);
SELECT pg_temp.err(format('SELECT vigil.send_webhook(%L, %L)', 'listen',
                          jsonb_build_object('blob', repeat('x', 9000))));

----------------------------------------------------------- replay, purge
UPDATE vigil.notifications SET status = 'dead', attempts = 10, last_error = 'HTTP 503'
WHERE event = 'test' OR event = 'action';
SELECT pg_temp.err($$SELECT vigil.replay_notifications(statuses => '{sent}')$$);
SELECT vigil.replay_notifications('hook') AS replayed;
SELECT status, attempts, last_error FROM vigil.notifications WHERE idempotency_key = 'kill:variant-7';
SELECT pg_temp.err($$SELECT vigil.purge_notifications('-1 day')$$);
SELECT vigil.purge_notifications() AS purged_recent;
SELECT notification_queue_depth > 0 AS queued FROM vigil.health;
SELECT channel, pending, sending, failed, dead FROM vigil.notification_queue;
