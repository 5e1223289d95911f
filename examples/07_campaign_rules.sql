-- Scenario 4, campaign alert rules (SPEC §6.4): the ten default rules judge
-- metrics that an ad platform job pushes with vigil.check_metric. The
-- generator pushes an hour of healthy history for eight campaigns, then a
-- current batch with planted breaches; the rules raise exactly those.

CREATE TABLE campaign_metrics (campaign text, metric text, value float8, batch text);

-- Healthy history (batch 'history'): the baseline for the percent-change rules.
INSERT INTO campaign_metrics
SELECT format('campaign-%s', c), m.metric, m.value * (1 + (c % 3) / 100.0), 'history'
FROM generate_series(1, 8) c,
     (VALUES ('ctr', 2.0), ('conversions', 10.0)) AS m(metric, value),
     generate_series(1, 6) s;

-- Current batch: every campaign healthy ...
INSERT INTO campaign_metrics
SELECT format('campaign-%s', c), m.metric, m.value, 'current'
FROM generate_series(1, 8) c,
     (VALUES ('roas', 4.2), ('budget_utilization', 55.0), ('ad_disapprovals', 0.0), ('ctr', 2.0),
             ('conversions', 10.0), ('prediction_error', 8.0), ('cpa', 42.0), ('impressions', 25000.0)) AS m(metric, value);
-- ... except the planted breaches.
UPDATE campaign_metrics c SET value = p.value
FROM (VALUES ('campaign-1', 'conversions', 16.0),        -- +60%: conversion spike (low)
             ('campaign-1', 'prediction_error', 35.0),   -- prediction error (low)
             ('campaign-2', 'ad_disapprovals', 1.0),     -- ad disapproved (critical)
             ('campaign-3', 'roas', 1.5),                -- ROAS < 2 (high) and < 3 (medium)
             ('campaign-4', 'ctr', 1.4),                 -- CTR -30% (medium)
             ('campaign-5', 'budget_utilization', 85.0), -- budget >= 80% (medium)
             ('campaign-6', 'budget_utilization', 104.0),-- budget >= 80% (medium) and >= 100% (critical)
             ('campaign-7', 'cpa', 130.0),               -- CPA > 100 (high)
             ('campaign-8', 'impressions', 600.0))       -- impressions < 1000 (medium)
     AS p(campaign, metric, value)
WHERE c.batch = 'current' AND (c.campaign, c.metric) = (p.campaign, p.metric);

SELECT count(*) AS alerts_from_history
FROM campaign_metrics m, LATERAL vigil.check_metric(m.metric, m.value, m.campaign) a
WHERE m.batch = 'history';

\echo 'The current batch breaks eleven rules:'
SELECT a.entity AS campaign, a.rule, a.severity, a.urgency, a.title
FROM campaign_metrics m, LATERAL vigil.check_metric(m.metric, m.value, m.campaign) a
WHERE m.batch = 'current'
ORDER BY a.severity DESC, a.entity, a.rule;

\echo 'The same batch again an instant later: open alerts are bumped, nothing new (the conversion'
\echo 'spike is now part of its own baseline, +47%, and no longer fires).'
SELECT count(*) AS alerts_returned, count(*) FILTER (WHERE a.occurrences = 1) AS new_alerts
FROM campaign_metrics m, LATERAL vigil.check_metric(m.metric, m.value, m.campaign) a
WHERE m.batch = 'current';

\echo 'The on-call engineer acknowledges the disapproval and resolves the budget alerts.'
SELECT (vigil.acknowledge(id, 'sam', 'appealing the disapproval')).status
FROM vigil.alerts WHERE rule = 'ad_disapproved' AND status = 'firing';
SELECT (vigil.resolve(id, 'sam', 'budget raised')).status
FROM vigil.alerts WHERE rule IN ('budget_80pct', 'budget_100pct') AND status = 'firing' ORDER BY id;

\echo 'campaign-6 still over budget: the resolved rules are in their cooldown (6 h / 12 h), no new alert.'
SELECT count(*) AS new_alerts FROM vigil.check_metric('budget_utilization', 104, 'campaign-6');

SELECT name, severity, times_fired, open_alerts FROM vigil.rule_stats WHERE times_fired > 0 ORDER BY name;
