-- Scenario 1's monitors (SPEC §6.1): z-scores of the last complete hour
-- against the same hour of the previous 12 weeks, and saturation, predicted
-- saturation and audience exhaustion from the last 24 hours against a
-- 30-day baseline. creator_messages has raw_messages' columns; the generator
-- writes 31 days of daily traffic (20% paid) and the same hour of 13 weeks,
-- and plants: creator_2 spikes and creator_4 collapses in the last hour,
-- creator_6 is mildly up, creator_5 floods an audience that stopped paying
-- (RED), creator_3 is tiring (YELLOW).

-- Generators count whole days and hours in UTC, as scans do.
SET TimeZone = 'UTC';

CREATE TABLE creator_messages (
    creator_name text NOT NULL,
    ts timestamptz NOT NULL,
    payment_status text NOT NULL,
    price numeric(10, 2),
    response_time_seconds float8,
    content_type text,
    trigger_type text,
    price_point text
);
CREATE INDEX ON creator_messages (ts);

-- Daily traffic, 6 hours before now on each of the last 31 days.
INSERT INTO creator_messages (creator_name, ts, payment_status, price, content_type)
SELECT format('creator_%s', c), now() - d * interval '1 day' - interval '6 hours' + i * interval '1 second',
       CASE WHEN i <= v.paid THEN 'paid' ELSE 'unpaid' END, 9.99, 'photo'
FROM generate_series(1, 6) c, generate_series(0, 30) d,
     LATERAL (SELECT CASE WHEN d = 0 AND c = 5 THEN 200 WHEN d = 0 AND c = 3 THEN 130 ELSE 100 + (c + d) % 5 - 2 END AS n,
                     CASE WHEN d = 0 AND c = 5 THEN 10 WHEN d = 0 AND c = 3 THEN 13 ELSE 20 + (c + d) % 3 - 1 END AS paid) v,
     generate_series(1, v.n) i;

-- The hour-of-week slots: the last complete hour (w = 0) and the same hour
-- of the 12 weeks before it, about 20 messages each.
INSERT INTO creator_messages (creator_name, ts, payment_status, price, content_type)
SELECT format('creator_%s', c),
       date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 hour'
           - w * interval '168 hours' + k * interval '50 seconds',
       CASE WHEN k % 5 = 0 THEN 'paid' ELSE 'unpaid' END, 9.99, 'video'
FROM generate_series(1, 6) c, generate_series(0, 12) w,
     LATERAL (SELECT CASE WHEN w > 0 THEN 20 + w % 3 - 1
                          WHEN c = 2 THEN 60 WHEN c = 4 THEN 2 WHEN c = 6 THEN 23 ELSE 20 END AS n) v,
     generate_series(0, v.n - 1) k;

SELECT vigil.create_monitor('creator_hourly_z', 'zscore', 'creator_messages',
    '{"entity": "creator_name", "time": "ts", "baseline_days": 90, "min_weeks": 4,
      "thresholds": {"medium": 3, "high": 4, "critical": 5},
      "metric_name": "messages", "label": "creators"}') > 0 AS created;
SELECT vigil.create_monitor('creator_saturation', 'saturation', 'creator_messages',
    '{"entity": "creator_name", "time": "ts", "converted": {"payment_status": "paid"},
      "baseline_days": 30, "exhaustion_threshold": 70, "label": "creators"}') > 0 AS created;

SELECT m AS monitor, r->'anomalies_detected' AS anomalies, r->'alerts_saved' AS saved, r->'insights' AS insights
FROM unnest(ARRAY['creator_hourly_z', 'creator_saturation']) AS m, LATERAL vigil.scan(m) AS r;
SELECT anomaly_type, entity, severity, urgency, title
FROM vigil.active_alerts WHERE monitor IN ('creator_hourly_z', 'creator_saturation')
ORDER BY anomaly_type, entity;
SELECT p->>'entity' AS creator, p->>'message' AS prediction
FROM vigil.scan_runs s, jsonb_array_elements(s.report->'predictions') p
WHERE s.id = (SELECT max(id) FROM vigil.scan_runs) ORDER BY 1;

-- Monitor health for the creator dashboard.
CREATE VIEW creator_monitor_health AS
SELECT m.name, m.kind, m.enabled, m.last_scan_at IS NOT NULL AS scanned, m.last_anomalies, m.last_error
FROM vigil.monitors m WHERE m.source_table = 'creator_messages';
SELECT * FROM creator_monitor_health ORDER BY name;
