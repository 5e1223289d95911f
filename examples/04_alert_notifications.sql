-- Alerts delivered to people (scenarios 2 and 4): client-vitals alerts and
-- a campaign rule breach become Slack and webhook notifications. `make demo`
-- points a Slack-format channel and a webhook channel at a local sink
-- before this file runs; without channels the alerts are still raised.

-- Scenario 2: client vitals, urgency from the scoring function.
SELECT a.alert_id, a.is_new
FROM (VALUES
    ('health_drop', 'Acme Corp', 'critical'::vigil.severity, 'Health score dropped 27 points',
     'Acme Corp health 53, 7-day average 80 (RED zone)',
     '{"drop_points": 27, "current": 53, "average_7d": 80, "zone": "RED"}'::jsonb,
     vigil.urgency_score('critical', drop_points => 27, health_zone => 'RED')),
    ('deal_stalled', 'Globex renewal', 'high', 'Deal stalled 23 days in Negotiation',
     'No activity since the pricing call; deal value 48 000',
     '{"stage": "Negotiation", "stall_days": 23, "deal_value": 48000}',
     vigil.urgency_score('high', stall_days => 23, deal_value => 48000)),
    ('sync_failure', 'stripe', 'critical', 'Stripe sync failed 5 times in 24 h',
     'Last error: 401 Unauthorized',
     '{"failures_24h": 5, "last_error": "401 Unauthorized"}',
     vigil.urgency_score('critical', failure_count => 5)),
    ('lead_unresponded', 'lead #8812 (Initech)', 'medium', 'Lead waiting 7 hours for a response',
     NULL, '{"wait_hours": 7}', vigil.urgency_score('medium', wait_hours => 7))
) AS v(kind, entity, severity, title, summary, details, urgency),
LATERAL vigil.raise_alert(v.kind, v.entity, v.severity, v.title, v.summary, v.details, v.urgency) AS a;

-- Scenario 4: a pushed campaign metric breaks two default rules.
SELECT rule, severity, title FROM vigil.check_metric('roas', 1.4, 'campaign-7') ORDER BY rule;

-- Someone fixes the Stripe credentials: resolving notifies channels that
-- asked for resolved events.
SELECT (vigil.resolve(id, 'ops-oncall', 'rotated the API key')).status
FROM vigil.alerts WHERE anomaly_type = 'sync_failure' AND entity = 'stripe' AND status = 'firing';

SELECT severity, urgency, urgency_band, anomaly_type, entity, title FROM vigil.active_alerts;
SELECT channel, kind, pending + sending AS queued, failed, dead FROM vigil.notification_queue;
