-- A tour of pg_vigil's scoring functions (SPEC §3.2) on generated data.
-- Creators with their 24 h conversion and message volume against baselines.

CREATE TEMP TABLE creator_day AS
SELECT format('creator_%s', i) AS creator,
       round((0.20 * (0.35 + (i % 7) * 0.12))::numeric, 4)::float8 AS conversion_24h,
       0.20::float8                                                 AS baseline_conversion,
       (100 * (0.8 + (i % 5) * 0.25))::float8                       AS messages_24h,
       100::float8                                                  AS baseline_daily_messages,
       (i % 4)                                                      AS decline_days
FROM generate_series(1, 10) AS i;

\echo 'Saturation, prediction, exhaustion and urgency per creator:'
SELECT creator,
       conversion_24h,
       messages_24h,
       vigil.saturation_status(conversion_24h, baseline_conversion,
                               messages_24h, baseline_daily_messages)        AS status,
       vigil.saturation_predicted(conversion_z => (conversion_24h - baseline_conversion) / 0.02,
                                  volume_z => (messages_24h - baseline_daily_messages) / 15,
                                  consecutive_decline_days => decline_days) AS predicted,
       round(vigil.exhaustion_score(conversion_24h, baseline_conversion,
                                    messages_24h, baseline_daily_messages,
                                    decline_days)::numeric, 1)              AS exhaustion,
       vigil.urgency_score('high', health_zone => vigil.saturation_status(
                               conversion_24h, baseline_conversion,
                               messages_24h, baseline_daily_messages)::text) AS urgency
FROM creator_day
ORDER BY exhaustion DESC;

\echo 'Severity from thresholds (health drop 10/15/25 points; leads waiting 6/12/24 h):'
SELECT drop_points,
       vigil.severity_above(drop_points, 10, 15, 25) AS health_drop_severity
FROM unnest(ARRAY[5, 10, 14.9, 15, 24, 25, 40]) AS drop_points;

\echo 'Urgency with named arguments, and its band:'
SELECT vigil.urgency_score('medium', drop_points => 18, health_zone => 'YELLOW') AS score,
       vigil.urgency_band(vigil.urgency_score('medium', drop_points => 18, health_zone => 'YELLOW')) AS band,
       vigil.dedup_key('health_drop', 'acme-corp')                              AS dedup_key;

\echo 'Early kill of a post variant (expected engagement 10%):'
SELECT interactions, views,
       vigil.early_kill_decision(0.10, interactions, views,
                                 started_at => now() - interval '3 minutes') AS decision
FROM (VALUES (4, 40), (12, 400), (30, 200), (50, 0)) AS v(interactions, views);
