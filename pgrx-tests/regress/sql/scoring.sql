-- pg_regress: the scoring functions' documented outputs (SPEC §3.2).
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET search_path = public;  -- callers need not have vigil on their path

-- severity_above: value >= critical/high/medium
SELECT v, vigil.severity_above(v, 10, 15, 25) AS sev
FROM unnest(ARRAY[9.999, 10, 14.999, 15, 24.999, 25, 1e6]::float8[]) AS v;

-- severity_below: value <= critical/high/medium
SELECT v, vigil.severity_below(v, 12, 6, 2) AS sev
FROM unnest(ARRAY[13, 12, 6.001, 6, 2.001, 2, -1]::float8[]) AS v;

-- the enum is ordered
SELECT 'critical'::vigil.severity > 'high' AS critical_gt_high,
       (SELECT max(s) FROM unnest(ARRAY['low', 'info', 'medium']::vigil.severity[]) AS s) AS worst;

-- thresholds out of order, NaN and unknown enum text are rejected
SELECT vigil.severity_above(1, 15, 10, 25);
SELECT vigil.severity_below(1, 2, 6, 12);
SELECT vigil.severity_above('NaN', 10, 15, 25);
SELECT vigil.urgency_score('urgent');

-- saturation
SELECT vigil.saturation_status(0.09, 0.2, 151, 100) AS red,
       vigil.saturation_status(0.13, 0.2, 121, 100) AS yellow,
       vigil.saturation_status(0.18, 0.2, 300, 100) AS green,
       vigil.saturation_status(0.15, 0.2, 100, 100) AS gap,
       vigil.saturation_status(0.15, NULL, 100, 100) AS null_input,
       vigil.saturation_status(0.15, 0.2, 100, 0) AS zero_baseline;
SELECT vigil.saturation_predicted(-2.1, 2.1, 0) AS both_z,
       vigil.saturation_predicted(-2.0, 2.1, 0) AS z_at_boundary,
       vigil.saturation_predicted(NULL, NULL, 3) AS decline_days,
       vigil.saturation_predicted(NULL, 3, 1) AS unknown;
SELECT vigil.exhaustion_score(0.1, 0.2, 150, 100, 2) AS mid,
       vigil.exhaustion_score(0.3, 0.2, 50, 100, 0) AS clamped_low,
       vigil.exhaustion_score(0, 0.2, 900, 100, 9) AS clamped_high,
       vigil.exhaustion_score(0.1, 0.2, 150, 100, NULL) AS null_days;
SELECT vigil.saturation_status(0.1, 0.2, -5, 100);

-- urgency: base + capped bonuses, rounded half up, clamped
SELECT s AS severity, vigil.urgency_score(s) AS base
FROM unnest(enum_range(NULL::vigil.severity)) AS s;
SELECT vigil.urgency_score('medium', drop_points => 1) AS half_up,
       vigil.urgency_score('low', stall_days => 21, failure_count => 2, wait_hours => 3) AS mixed,
       vigil.urgency_score('high', health_zone => 'yellow', deal_value => 25000) AS deal,
       vigil.urgency_score('critical', drop_points => 40, health_zone => 'RED') AS clamped;
SELECT score, vigil.urgency_band(score) FROM unnest(ARRAY[100, 90, 89, 70, 69, 50, 49, 30, 29, 0]) AS score;
SELECT vigil.urgency_score('low', failure_count => -1);
SELECT vigil.urgency_score('low', health_zone => 'BLUE');

-- dedup key: UTC day whatever the session time zone
SET TimeZone = 'Asia/Tokyo';
SELECT vigil.dedup_key('deal_stalled', 'deal-42', '2026-03-01 08:59:59+09') AS before_utc_midnight,
       vigil.dedup_key('deal_stalled', 'deal-42', '2026-03-01 09:00:00+09') AS at_utc_midnight;
RESET TimeZone;

-- early kill
SELECT vigil.early_kill_decision(0.1, i, v, '2026-01-01 00:00Z',
                                 at => '2026-01-01 00:00Z'::timestamptz + make_interval(mins => m)) AS decision,
       i AS interactions, v AS views, m AS minutes
FROM (VALUES (10, 300, 1), (9, 300, 1), (10, 200, 1), (40, 0, 1), (1, 10, 9), (1, 10, 10)) AS t(i, v, m)
ORDER BY i, v, m;
SELECT vigil.early_kill_decision(0.1, 5, -1, now());
