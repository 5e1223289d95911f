-- pg_regress: alert store, dedup, grouping, lifecycle and metric rules
-- (SPEC §3.4, scenarios 2 and 4). Output avoids ids and clock times.
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET search_path = public;  -- callers need not have vigil on their path

-- An error as "SQLSTATE: message", without the context lines; alert ids masked.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'alert [0-9]+', 'alert N');
END
$$;

-- The rules a pushed value fired, as "rule:severity:occurrences".
CREATE FUNCTION pg_temp.fired(metric text, value float8, entity text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(a.rule || ':' || a.severity || ':' || a.occurrences, ', ' ORDER BY a.rule), '-')
    FROM vigil.check_metric(metric, value, entity) AS a
$$;

------------------------------------------------------------------ dedup
-- a repeat of an open key inside the window bumps the alert
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'medium', 'Health dropped 12 points',
                                     details => '{"drop": 12, "zone": "YELLOW"}');
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'medium', 'Health dropped 11 points',
                                     details => '{"drop": 11}');
SELECT count(*) AS alerts, max(occurrences) AS occurrences, max(title) AS title, max(details::text) AS details,
       bool_and(last_seen_at > created_at) AS last_seen_moved,
       bool_and(expires_at = last_seen_at + interval '48 hours') AS expiry_extended
FROM vigil.alerts WHERE entity = 'client-a';
-- defaults: dedup key per type, entity and UTC day; urgency from severity; actions by severity
SELECT dedup_key = vigil.dedup_key('health_drop', 'client-a') AS daily_key,
       urgency = vigil.urgency_score('medium') AS default_urgency,
       status, recommended_actions
FROM vigil.alerts WHERE entity = 'client-a';

-- escalation: a higher severity raises severity, urgency, title and actions
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'high', 'Health dropped 18 points',
                                     details => '{"drop": 18}');
-- a lower one afterwards changes nothing but the count
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'low', 'Health dropped 5 points');
SELECT count(*) AS alerts, max(occurrences) AS occurrences, max(severity) AS severity, max(urgency) AS urgency,
       max(title) AS title, max(recommended_actions[1]) AS first_action
FROM vigil.alerts WHERE entity = 'client-a';
-- an explicit urgency above the current one is an escalation too
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'high', 'Health dropped 19 points', urgency => 85);
SELECT severity, urgency, title FROM vigil.alerts WHERE entity = 'client-a';

-- after the window the same key is a new incident; the stale one is expired
UPDATE vigil.alerts SET last_seen_at = last_seen_at - interval '25 hours' WHERE entity = 'client-a';
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'medium', 'Health dropped 10 points');
SELECT status, severity, occurrences, count(*) AS alerts
FROM vigil.alerts WHERE entity = 'client-a' GROUP BY 1, 2, 3 ORDER BY 1;
-- a shorter window given by the caller: last seen 2 minutes ago is outside 1 minute
UPDATE vigil.alerts SET last_seen_at = last_seen_at - interval '2 minutes'
WHERE entity = 'client-a' AND status = 'firing';
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'medium', 'Health dropped 10 points',
                                     dedup_window => '1 minute');
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-a', 'medium', 'Health dropped 10 points',
                                     dedup_window => '1 minute');
SELECT status, count(*) AS alerts, max(occurrences) AS max_occurrences
FROM vigil.alerts WHERE entity = 'client-a' GROUP BY 1 ORDER BY 1;

-- an explicit key dedups across types and entities; expires_in sets the expiry
SELECT is_new FROM vigil.raise_alert('lead_unresponded', 'lead-1', 'medium', 'Lead waiting 6 h',
                                     dedup_key => 'lead-router', expires_in => '1 hour');
SELECT is_new FROM vigil.raise_alert('lead_unresponded', 'lead-2', 'medium', 'Lead waiting 7 h',
                                     dedup_key => 'lead-router', expires_in => '1 hour');
SELECT entity, occurrences, expires_at = last_seen_at + interval '1 hour' AS expires_in_1h,
       recommended_actions
FROM vigil.alerts WHERE dedup_key = 'lead-router';

--------------------------------------------------------- notifications
-- LISTEN shows the payloads; sed masks the sender's PID and the alert id.
LISTEN vigil_alerts;
\o | sed -E -e 's/PID [0-9]+/PID N/' -e 's/"id": [0-9]+/"id": N/'
SELECT is_new FROM vigil.raise_alert('sync_failure', 'hubspot', 'medium', 'hubspot sync failed 2 times in 24 h');
SELECT is_new FROM vigil.raise_alert('sync_failure', 'hubspot', 'medium', 'hubspot sync failed 2 times in 24 h');
SELECT is_new FROM vigil.raise_alert('sync_failure', 'hubspot', 'high', 'hubspot sync failed 3 times in 24 h');
SELECT status, resolved_by, resolve_note
FROM vigil.resolve((SELECT id FROM vigil.alerts WHERE entity = 'hubspot'), 'ops', 'token renewed');
\o
UNLISTEN vigil_alerts;

-------------------------------------------------------------- grouping
-- three health drops (escalated one level), two stalled deals (not), three
-- critical sync failures (capped at critical)
CREATE TEMP TABLE batch AS
SELECT r.alert_id
FROM (VALUES ('health_drop', 'client-b', 'medium'::vigil.severity, 55),
             ('health_drop', 'client-c', 'medium', 60),
             ('health_drop', 'client-d', 'high', 72),
             ('deal_stalled', 'deal-1', 'medium', 50),
             ('deal_stalled', 'deal-2', 'high', 74),
             ('sync_failure', 'stripe', 'critical', 90),
             ('sync_failure', 'salesforce', 'critical', 95),
             ('sync_failure', 'zendesk', 'critical', 91)) AS t(type, entity, severity, urgency),
     LATERAL vigil.raise_alert(t.type, t.entity, t.severity, t.type || ' on ' || t.entity, urgency => t.urgency) AS r;
INSERT INTO vigil.scan_runs (monitor, success) VALUES ('grouping-test', true);
SELECT anomaly_type, severity, urgency, affected_count, entities, scan_id IS NOT NULL AS has_scan
FROM vigil.group_alerts((SELECT max(id) FROM vigil.scan_runs), (SELECT array_agg(alert_id) FROM batch))
ORDER BY anomaly_type;
SELECT g.anomaly_type, count(*) AS alerts_in_group
FROM vigil.alerts a JOIN vigil.alert_groups g ON g.id = a.group_id
WHERE a.id IN (SELECT alert_id FROM batch)
GROUP BY g.anomaly_type ORDER BY 1;
-- a group of one, with no scan
SELECT anomaly_type, severity, affected_count, scan_id IS NULL AS no_scan
FROM vigil.group_alerts(NULL, (SELECT array_agg(id) FROM vigil.alerts WHERE entity = 'lead-1'));
SELECT count(*) AS groups FROM vigil.group_alerts(NULL, '{}');
SELECT pg_temp.err($$SELECT vigil.group_alerts(NULL, NULL)$$);
SELECT pg_temp.err($$SELECT vigil.group_alerts(NULL, '{-1, -2}')$$);

------------------------------------------------------------- lifecycle
CREATE TEMP TABLE ids AS
SELECT (SELECT id FROM vigil.alerts WHERE entity = 'deal-1') AS deal1,
       (SELECT id FROM vigil.alerts WHERE entity = 'deal-2') AS deal2,
       (SELECT id FROM vigil.alerts WHERE entity = 'client-b') AS clientb;
SELECT status, acknowledged_by, ack_note, acknowledged_at IS NOT NULL AS acked_at
FROM vigil.acknowledge((SELECT deal1 FROM ids), 'ann', 'calling them');
SELECT pg_temp.err(format('SELECT vigil.acknowledge(%s, %L)', deal1, 'bob')) AS ack_twice FROM ids;
SELECT status, resolved_by, resolve_note FROM vigil.resolve((SELECT deal1 FROM ids), 'ann', 'deal moved to Won');
SELECT pg_temp.err(format('SELECT vigil.resolve(%s)', deal1)) AS resolve_twice,
       pg_temp.err(format('SELECT vigil.acknowledge(%s, %L)', deal1, 'bob')) AS ack_resolved,
       pg_temp.err(format('SELECT vigil.dismiss(%s, %L)', deal1, 'bob')) AS dismiss_resolved
FROM ids;
SELECT status, dismissed_by, dismiss_note, dismissed_at IS NOT NULL AS dismissed_at
FROM vigil.dismiss((SELECT deal2 FROM ids), 'bob', 'duplicate deal');
-- resolve straight from firing; by defaults to the session user
SELECT status, resolved_by = session_user AS by_session_user FROM vigil.resolve((SELECT clientb FROM ids));
SELECT time_to_acknowledge IS NOT NULL AS has_tta, time_to_resolve >= time_to_acknowledge AS ttr_after_tta
FROM vigil.alert_history WHERE entity = 'deal-1';
SELECT pg_temp.err($$SELECT vigil.acknowledge(-42, 'ann')$$) AS unknown_id,
       pg_temp.err($$SELECT vigil.resolve(NULL)$$) AS null_id;
SELECT pg_temp.err(format('SELECT vigil.acknowledge(%s, NULL)', clientb)) AS null_by,
       pg_temp.err(format('SELECT vigil.dismiss(%s, %L)', clientb, ' ')) AS blank_by
FROM ids;
-- a repeat of an acknowledged alert still deduplicates into it
SELECT status FROM vigil.acknowledge((SELECT id FROM vigil.alerts WHERE entity = 'client-c'), 'ann');
SELECT is_new FROM vigil.raise_alert('health_drop', 'client-c', 'medium', 'health_drop on client-c');
SELECT status, occurrences FROM vigil.alerts WHERE entity = 'client-c';

---------------------------------------------------------------- expiry
SELECT vigil.expire_alerts() AS nothing_due;
UPDATE vigil.alerts SET expires_at = now() - interval '1 second' WHERE dedup_key = 'lead-router';
SELECT vigil.expire_alerts() AS expired;
SELECT status FROM vigil.alerts WHERE dedup_key = 'lead-router';
SELECT pg_temp.err(format('SELECT vigil.acknowledge(%s, %L)', id, 'ann')) AS ack_expired
FROM vigil.alerts WHERE dedup_key = 'lead-router';

----------------------------------------------------------- auto_resolve
SELECT count(*) AS raised
FROM unnest(ARRAY['deal-7', 'deal-8', 'deal-9']) AS e,
     LATERAL vigil.raise_alert('deal_stalled', e, 'medium', 'stalled', monitor => 'deals') AS r;
SELECT vigil.auto_resolve('deals', ARRAY[vigil.dedup_key('deal_stalled', 'deal-8')]) AS resolved;
SELECT entity, status, resolved_by, resolve_note FROM vigil.alerts WHERE monitor = 'deals' ORDER BY entity;
SELECT vigil.auto_resolve('deals', '{}') AS resolved_rest, vigil.auto_resolve('no-such-monitor', '{}') AS none;
SELECT pg_temp.err($$SELECT vigil.auto_resolve('deals', NULL)$$) AS null_keys,
       pg_temp.err($$SELECT vigil.auto_resolve(NULL, '{}')$$) AS null_monitor;

------------------------------------------------------------ bad inputs
SELECT pg_temp.err($$SELECT vigil.raise_alert(NULL, 'e', 'low', 't')$$) AS null_type,
       pg_temp.err($$SELECT vigil.raise_alert(' ', 'e', 'low', 't')$$) AS blank_type;
SELECT pg_temp.err($$SELECT vigil.raise_alert('x', NULL, 'low', 't')$$) AS null_entity,
       pg_temp.err($$SELECT vigil.raise_alert('x', '', 'low', 't')$$) AS empty_entity;
SELECT pg_temp.err($$SELECT vigil.raise_alert('x', 'e', NULL, 't')$$) AS null_severity,
       pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'urgent', 't')$$) AS unknown_severity;
SELECT pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', urgency => 101)$$) AS urgency_101,
       pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', urgency => -1)$$) AS urgency_neg;
SELECT pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', dedup_window => '0')$$) AS zero_window,
       pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', expires_in => '-1 hour')$$) AS neg_expiry;
SELECT pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', details => '[1]')$$) AS array_details,
       pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', 't', dedup_key => '')$$) AS empty_key,
       pg_temp.err($$SELECT vigil.raise_alert('x', 'e', 'low', NULL)$$) AS null_title;
SELECT count(*) AS nothing_written FROM vigil.alerts WHERE anomaly_type = 'x';

----------------------------------------------------------------- views
SELECT anomaly_type, entity, status, urgency, urgency_band, age >= interval '0' AS has_age
FROM vigil.active_alerts;
SELECT anomaly_type, severity, open, firing, acknowledged, resolved, dismissed, expired, total, total_occurrences,
       mean_time_to_acknowledge_7d IS NOT NULL AS has_mtta, mean_time_to_resolve_7d IS NOT NULL AS has_mttr
FROM vigil.alert_stats WHERE anomaly_type IN ('deal_stalled', 'health_drop');

----------------------------------------------------------------- rules
SELECT name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type, enabled
FROM vigil.rules ORDER BY id;

-- each default rule fires at its threshold and not just short of it
SELECT m AS metric, v AS value, pg_temp.fired(m, v, 'camp-' || m || '-' || v) AS fired
FROM (VALUES ('roas', 3.0), ('roas', 2.99), ('roas', 2.0), ('roas', 1.99),
             ('budget_utilization', 79.9), ('budget_utilization', 80), ('budget_utilization', 99.9),
             ('budget_utilization', 100),
             ('ad_disapprovals', 0), ('ad_disapprovals', 1),
             ('prediction_error', 29.9), ('prediction_error', 30),
             ('cpa', 100), ('cpa', 100.01),
             ('impressions', 1000), ('impressions', 999),
             ('unwatched_metric', 1)) AS t(m, v);

-- pct change vs the entity's average over the lookback: no history, no alert
SELECT pg_temp.fired('ctr', 0.05, 'ad-1') AS first_value;
SELECT pg_temp.fired('ctr', 0.05, 'ad-1') AS steady;
SELECT pg_temp.fired('ctr', 0.0401, 'ad-1') AS drop_19_8pct;
SELECT pg_temp.fired('ctr', 0.05, 'ad-2'), pg_temp.fired('ctr', 0.05, 'ad-2');
SELECT pg_temp.fired('ctr', 0.04, 'ad-2') AS drop_20pct;
SELECT pg_temp.fired('ctr', 0.09, 'ad-3') AS rise_on_drop_rule;
SELECT title, details - 'context' AS details FROM vigil.alerts WHERE rule = 'ctr_drop_20pct';
-- values older than the lookback are not a baseline
INSERT INTO vigil.metric_values (metric, entity, value, recorded_at)
VALUES ('conversions', 'shop-1', 10, now() - interval '61 minutes');
SELECT pg_temp.fired('conversions', 30, 'shop-1') AS only_old_history;
SELECT pg_temp.fired('conversions', 10, 'shop-2'), pg_temp.fired('conversions', 14.9, 'shop-2') AS rise_49pct;
SELECT pg_temp.fired('conversions', 10, 'shop-3'), pg_temp.fired('conversions', 15, 'shop-3') AS rise_50pct;
SELECT pg_temp.fired('conversions', 1, 'shop-4') AS drop_on_rise_rule;
-- every pushed value is recorded, with its context
SELECT count(*) AS recorded, max(context::text) AS context
FROM vigil.metric_values WHERE metric = 'ctr' AND entity = 'ad-1';
SELECT count(*) AS recorded FROM vigil.check_metric('ctr', 0.05, 'ad-9', '{"campaign": "spring"}');
SELECT context FROM vigil.metric_values WHERE entity = 'ad-9';

-- cooldown: repeats bump the open alert; after it is closed, no new alert
-- until the cooldown has passed (roas_below_2: 30 min, roas_below_3: 60 min)
SELECT pg_temp.fired('roas', 1.5, 'camp-cd') AS first, pg_temp.fired('roas', 1.4, 'camp-cd') AS repeat;
SELECT status, occurrences, details ->> 'value' AS last_value FROM vigil.alerts WHERE rule = 'roas_below_2' AND entity = 'camp-cd';
SELECT status FROM vigil.resolve((SELECT id FROM vigil.alerts WHERE rule = 'roas_below_2' AND entity = 'camp-cd'), 'ann');
SELECT pg_temp.fired('roas', 1.5, 'camp-cd') AS within_cooldown;
-- it counts from the closing, not the opening
UPDATE vigil.alerts SET created_at = created_at - interval '31 minutes' WHERE entity = 'camp-cd';
SELECT pg_temp.fired('roas', 1.5, 'camp-cd') AS opened_long_ago_closed_now;
UPDATE vigil.alerts SET last_seen_at = last_seen_at - interval '31 minutes', resolved_at = resolved_at - interval '31 minutes'
WHERE entity = 'camp-cd';
SELECT pg_temp.fired('roas', 1.5, 'camp-cd') AS after_cooldown;
SELECT rule, status, occurrences FROM vigil.alerts WHERE entity = 'camp-cd' ORDER BY rule, status;
-- cooldown 0: a new alert right after the last one was resolved
SELECT status FROM vigil.resolve((SELECT id FROM vigil.alerts WHERE entity = 'camp-ad_disapprovals-1'), 'ann');
SELECT pg_temp.fired('ad_disapprovals', 2, 'camp-ad_disapprovals-1') AS no_cooldown;
SELECT status, count(*) FROM vigil.alerts WHERE entity = 'camp-ad_disapprovals-1' GROUP BY 1 ORDER BY 1;
-- rule alerts carry the rule and its defaults
SELECT anomaly_type, rule, monitor, dedup_key, title, summary, recommended_actions[1] AS first_action
FROM vigil.alerts WHERE entity = 'camp-roas-1.99' ORDER BY rule;

-- administration
SELECT vigil.create_rule('queue_depth_50', 'approval_queue_depth', '>', 50, 'high', cooldown => '1 hour',
                         description => 'Approval queue deeper than 50', anomaly_type => 'queue_depth') > 0 AS created;
SELECT pg_temp.fired('approval_queue_depth', 51, 'queue');
SELECT anomaly_type, recommended_actions[1] AS first_action FROM vigil.alerts WHERE rule = 'queue_depth_50';
SELECT threshold, lookback, cooldown, updated_at >= created_at AS touched
FROM vigil.update_rule('queue_depth_50', threshold => 60, lookback => '30 minutes');
SELECT pg_temp.fired('approval_queue_depth', 55, 'queue-2') AS below_new_threshold;
SELECT enabled FROM vigil.disable_rule('queue_depth_50');
SELECT pg_temp.fired('approval_queue_depth', 500, 'queue-3') AS disabled;
SELECT enabled FROM vigil.enable_rule('queue_depth_50');
SELECT pg_temp.fired('approval_queue_depth', 500, 'queue-3') AS enabled_again;
SELECT vigil.delete_rule('queue_depth_50') > 0 AS deleted;
SELECT count(*) AS alerts_kept FROM vigil.alerts WHERE rule = 'queue_depth_50';
SELECT pg_temp.err($$SELECT vigil.delete_rule('queue_depth_50')$$) AS delete_twice;

-- bad rules and values: clear errors, nothing written
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', '=>', 1, 'low')$$) AS bad_operator;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', '<', 1, 'low', lookback => '-1 minute')$$) AS neg_lookback;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', '<', 1, 'low', cooldown => '-1 minute')$$) AS neg_cooldown;
SELECT pg_temp.err($$SELECT vigil.create_rule('roas_below_2', 'm', '<', 1, 'low')$$) AS duplicate;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', '<', 'NaN', 'low')$$) AS nan_threshold;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', 'pct_drop', 0, 'low')$$) AS zero_pct;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', 'pct_rise', 10, 'low', lookback => '0')$$) AS pct_no_lookback;
SELECT pg_temp.err($$SELECT vigil.create_rule('r', 'm', '<', 1, NULL)$$) AS null_severity;
SELECT pg_temp.err($$SELECT vigil.create_rule('', 'm', '<', 1, 'low')$$) AS empty_name;
SELECT pg_temp.err($$SELECT vigil.update_rule('no_such_rule', threshold => 1)$$) AS update_unknown;
SELECT pg_temp.err($$SELECT vigil.update_rule('roas_below_2', operator => 'between')$$) AS update_bad_operator;
SELECT pg_temp.err($$SELECT vigil.enable_rule('no_such_rule')$$) AS enable_unknown;
SELECT count(*) AS rules, max(threshold) FILTER (WHERE name = 'roas_below_2') AS roas_threshold FROM vigil.rules;
SELECT pg_temp.err($$SELECT vigil.check_metric('roas', 'NaN', 'c')$$) AS nan,
       pg_temp.err($$SELECT vigil.check_metric('roas', 'Infinity', 'c')$$) AS inf,
       pg_temp.err($$SELECT vigil.check_metric('roas', '-Infinity', 'c')$$) AS neg_inf;
SELECT pg_temp.err($$SELECT vigil.check_metric('roas', NULL, 'c')$$) AS null_value,
       pg_temp.err($$SELECT vigil.check_metric('', 1, 'c')$$) AS empty_metric,
       pg_temp.err($$SELECT vigil.check_metric('roas', 1, NULL)$$) AS null_entity,
       pg_temp.err($$SELECT vigil.check_metric('roas', 1, 'c', '[]')$$) AS array_context;
SELECT count(*) AS nothing_recorded FROM vigil.metric_values WHERE entity = 'c';

-- rule views
SELECT name, times_fired, total_occurrences, open_alerts, last_fired IS NOT NULL AS has_fired
FROM vigil.rule_stats WHERE name IN ('roas_below_2', 'roas_below_3', 'ad_disapproved', 'ctr_drop_20pct', 'cpa_above_100')
ORDER BY name;
SELECT rule, metric, operator, threshold, count(*) AS alerts, max(last_value) AS max_last_value
FROM vigil.rule_history GROUP BY 1, 2, 3, 4 ORDER BY 1;
