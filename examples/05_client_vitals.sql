-- Scenario 2, client vitals (SPEC §6.2): four monitors on the CRM's own
-- tables, a generator that plants known problems among healthy data, and a
-- scan that finds exactly those: 5 health drops, 3 stalled deals, 3 failing
-- syncs and 3 leads waiting for a response.

-- Generators count whole days and hours in UTC, as scans do.
SET TimeZone = 'UTC';

CREATE TABLE health_scores (client text NOT NULL, score int NOT NULL, recorded_at timestamptz NOT NULL);
CREATE TABLE deals (deal text PRIMARY KEY, stage text NOT NULL, value numeric(12, 2) NOT NULL,
                    stage_changed_at timestamptz NOT NULL);
CREATE TABLE sync_errors (source text NOT NULL, error text NOT NULL, occurred_at timestamptz NOT NULL);
CREATE TABLE leads (lead text PRIMARY KEY, company text NOT NULL, created_at timestamptz NOT NULL,
                    responded_at timestamptz);
CREATE INDEX ON health_scores (recorded_at);
CREATE INDEX ON sync_errors (occurred_at);

-- 25 clients with a daily score for the past week, all near 80; today's
-- reading is 80 except for the five planted drops (27, 18, 16, 14, 12 points).
INSERT INTO health_scores
SELECT format('client-%s', lpad(c::text, 2, '0')), 80 + (c + d) % 3 - 1, now() - d * interval '1 day'
FROM generate_series(1, 25) c, generate_series(1, 7) d;
UPDATE health_scores SET score = 80
WHERE client IN ('client-03', 'client-07', 'client-11', 'client-16', 'client-21');
INSERT INTO health_scores
SELECT format('client-%s', lpad(c::text, 2, '0')),
       CASE c WHEN 3 THEN 53 WHEN 7 THEN 62 WHEN 11 THEN 64 WHEN 16 THEN 66 WHEN 21 THEN 68 ELSE 80 END,
       now() - interval '1 hour'
FROM generate_series(1, 25) c;

-- Deals: three stalled past 14/21/30 days in watched stages; a won deal and
-- fresh deals are left alone.
INSERT INTO deals VALUES
    ('Globex renewal',   'Negotiation', 48000, now() - interval '23 days'),
    ('Stark expansion',  'Proposal',    12000, now() - interval '35 days'),
    ('Wayne pilot',      'Trial',        5000, now() - interval '16 days'),
    ('Tyrell upsell',    'Closed Won',  90000, now() - interval '40 days'),
    ('Cyberdyne trial',  'Trial',        8000, now() - interval '3 days'),
    ('Soylent proposal', 'Proposal',    20000, now() - interval '10 days');

-- Sync failures in the last 24 hours: stripe 5, hubspot 3, salesforce 2,
-- zendesk 1; stripe's older failures are outside the window.
INSERT INTO sync_errors
SELECT s.source, '401 Unauthorized', now() - (i * 2) * interval '1 hour'
FROM (VALUES ('stripe', 5), ('hubspot', 3), ('salesforce', 2), ('zendesk', 1)) AS s(source, n),
     generate_series(1, s.n) i;
INSERT INTO sync_errors SELECT 'stripe', 'timeout', now() - interval '3 days' FROM generate_series(1, 4);

-- Leads: waiting 7 h, 13 h and 30 h without a response; one answered, one new.
INSERT INTO leads VALUES
    ('lead-8812', 'Initrode',  now() - interval '7 hours',  NULL),
    ('lead-8813', 'Massive',   now() - interval '13 hours', NULL),
    ('lead-8814', 'Vandelay',  now() - interval '30 hours', NULL),
    ('lead-8815', 'Prestige',  now() - interval '40 hours', now() - interval '39 hours'),
    ('lead-8816', 'Bluth',     now() - interval '2 hours',  NULL);

SELECT vigil.create_monitor('client_health', 'drop', 'health_scores',
    '{"entity": "client", "time": "recorded_at", "value": "score", "baseline": "7 days",
      "thresholds": {"medium": 10, "high": 15, "critical": 25}, "zones": {"red": 60, "yellow": 70},
      "anomaly_type": "health_drop", "metric_name": "health score", "label": "clients"}') > 0 AS created;
SELECT vigil.create_monitor('stalled_deals', 'stall', 'deals',
    '{"entity": "deal", "time": "stage_changed_at", "group_column": "stage", "value": "value",
      "filter": {"stage": ["Assessment", "Proposal", "Negotiation", "Trial"]},
      "thresholds": {"medium": "14 days", "high": "21 days", "critical": "30 days"},
      "anomaly_type": "deal_stalled", "label": "deals"}') > 0 AS created;
SELECT vigil.create_monitor('sync_failures', 'count', 'sync_errors',
    '{"entity": "source", "time": "occurred_at", "window": "24 hours",
      "thresholds": {"medium": 2, "high": 3, "critical": 5},
      "anomaly_type": "sync_failure", "metric_name": "sync failures", "label": "sources"}') > 0 AS created;
SELECT vigil.create_monitor('unanswered_leads', 'stall', 'leads',
    '{"entity": "lead", "time": "created_at", "filter": {"responded_at": null},
      "thresholds": {"medium": "6 hours", "high": "12 hours", "critical": "24 hours"},
      "urgency_from": "wait_hours", "anomaly_type": "lead_unresponded", "label": "leads"}') > 0 AS created;

\echo 'First scan: the planted problems, grouped per type, with insights and predictions.'
SELECT r->'anomalies_detected' AS anomalies, r->'alerts_saved' AS saved, r->'duplicates_skipped' AS duplicates,
       r->'alert_groups_created' AS groups, r->'success' AS success
FROM vigil.scan() AS r;
SELECT g->>'type' AS type, g->>'severity' AS severity, g->>'urgency' AS urgency, g->>'affected_count' AS affected
FROM vigil.scan_runs s, jsonb_array_elements(s.report->'alert_groups') g
WHERE s.id = (SELECT max(id) FROM vigil.scan_runs) ORDER BY 1;
SELECT jsonb_array_elements_text(report->'insights') AS insight
FROM vigil.scan_runs WHERE id = (SELECT max(id) FROM vigil.scan_runs);
SELECT p->>'type' AS prediction, p->>'message' AS message
FROM vigil.scan_runs s, jsonb_array_elements(s.report->'predictions') p
WHERE s.id = (SELECT max(id) FROM vigil.scan_runs) ORDER BY 1, 2;

CREATE VIEW client_vitals_dashboard AS
SELECT anomaly_type, entity, severity, urgency, urgency_band, title
FROM vigil.active_alerts
WHERE monitor IN ('client_health', 'stalled_deals', 'sync_failures', 'unanswered_leads');
SELECT * FROM client_vitals_dashboard ORDER BY urgency DESC, anomaly_type, entity;

\echo 'Second scan: nothing new, every finding is a duplicate of an open alert.'
SELECT r->'anomalies_detected' AS anomalies, r->'alerts_saved' AS saved, r->'duplicates_skipped' AS duplicates
FROM vigil.scan() AS r;

\echo 'client-03 recovers and the lead gets an answer: their alerts resolve on the next scan.'
INSERT INTO health_scores VALUES ('client-03', 80, now());
UPDATE leads SET responded_at = now() WHERE lead = 'lead-8814';
SELECT r->'anomalies_detected' AS anomalies, r->'alerts_resolved' AS resolved FROM vigil.scan() AS r;
SELECT entity, status, resolved_by, resolve_note FROM vigil.alerts
WHERE entity IN ('client-03', 'lead-8814') ORDER BY entity;
