-- pg_regress: rollups in the scenario examples (SPEC §3.3, §6.1, §6.5).
-- The examples' data is relative to now(), so this prints what holds at any
-- time of day: every rollup exact, and every dashboard tile equal to the
-- same query over the raw rows (windows aligned to the rollup's buckets).
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET search_path = public;
\getenv abs_srcdir PG_ABS_SRCDIR
\set ECHO none
\o /dev/null
\set example :abs_srcdir '/../../examples/02_creator_rollups.sql'
\i :example
\set example :abs_srcdir '/../../examples/03_agent_approvals.sql'
\i :example
\o
\set ECHO all

SELECT name, source, bucket, group_by, vigil.verify_rollup(name) AS differing_groups
FROM vigil.rollups ORDER BY name::text;

-- Scenario 1: rolling creator metrics, 1 h / 24 h / 7 d.
CREATE FUNCTION pg_temp.raw_creators(since interval) RETURNS TABLE (
    creator_name text, messages bigint, paid bigint, revenue numeric, median float8)
LANGUAGE sql AS $$
    SELECT creator_name, count(*), count(*) FILTER (WHERE payment_status = 'paid'),
           coalesce(sum(price) FILTER (WHERE payment_status = 'paid'), 0),
           percentile_disc(0.5) WITHIN GROUP (ORDER BY response_time_seconds)
    FROM raw_messages
    WHERE ts >= date_bin('1 hour', now() - since, '2000-01-03 00:00:00+00')
    GROUP BY creator_name
$$;
SELECT count(*) AS creators,
       count(*) FILTER (WHERE d.messages_24h = r.messages AND d.revenue_24h = r.revenue
                          AND d.conversion_24h = round(r.paid::numeric / r.messages, 3)) AS equal_24h,
       count(*) FILTER (WHERE d.messages_7d = w.messages AND d.revenue_7d = w.revenue) AS equal_7d,
       count(*) FILTER (WHERE d.messages_1h IS NOT DISTINCT FROM h.messages) AS equal_1h,
       count(*) FILTER (WHERE abs(d.median_response_s_24h - r.median) <= 0.02 * r.median) AS median_within_2pct
FROM creator_dashboard d
JOIN pg_temp.raw_creators('24 hours') r USING (creator_name)
JOIN pg_temp.raw_creators('7 days') w USING (creator_name)
LEFT JOIN pg_temp.raw_creators('1 hour') h USING (creator_name);

SELECT e.messages_24h = (SELECT sum(messages) FROM pg_temp.raw_creators('24 hours')) AS executive_messages,
       e.revenue_7d = (SELECT sum(revenue) FROM pg_temp.raw_creators('7 days')) AS executive_revenue,
       e.active_creators_24h
FROM executive_dashboard e;

SELECT count(*) AS creators, min(revenue_pct_rank) AS lowest, max(revenue_pct_rank) AS highest
FROM creator_ranks;

-- Top and worst 5 patterns of the last hour with at least 10 messages.
WITH raw AS (
    SELECT content_type, trigger_type, price_point, count(*) AS messages,
           count(*) FILTER (WHERE payment_status = 'paid') AS paid,
           coalesce(sum(price) FILTER (WHERE payment_status = 'paid'), 0) AS revenue
    FROM raw_messages
    WHERE ts >= date_bin('5 minutes', now() - interval '1 hour', '2000-01-03 00:00:00+00')
    GROUP BY 1, 2, 3 HAVING count(*) >= 10)
SELECT (SELECT count(*) FROM pattern_performance WHERE best_rank <= 5) AS top,
       (SELECT count(*) FROM pattern_performance WHERE worst_rank <= 5) AS worst,
       (SELECT count(*) FROM raw) = (SELECT count(*) FROM pattern_performance) AS same_patterns,
       NOT EXISTS (SELECT 1 FROM pattern_performance p JOIN raw r USING (content_type, trigger_type, price_point)
                   WHERE (p.messages, p.paid, p.revenue) IS DISTINCT FROM (r.messages, r.paid, r.revenue)) AS same_values,
       (SELECT bool_and(conversion >= (SELECT max(conversion) FROM pattern_performance WHERE worst_rank <= 5))
        FROM pattern_performance WHERE best_rank <= 5) AS top_beats_worst;

-- Scenario 5: the four tiles.
SELECT q.pending = r.pending AS pending, q.urgent = r.urgent AS urgent,
       q.avg_confidence = round(r.conf::numeric, 3) AS avg_confidence,
       q.oldest_pending_age = date_trunc('second', now() - r.oldest) AS oldest_age
FROM tile_queue_status q,
     (SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
             count(*) FILTER (WHERE status = 'pending' AND urgent) AS urgent,
             avg(confidence) FILTER (WHERE status = 'pending') AS conf,
             min(created_at) FILTER (WHERE status = 'pending') AS oldest
      FROM agent_approvals) r;

SELECT count(*) AS hours,
       count(*) FILTER (WHERE (t.approved, t.decided) = (r.approved, r.decided)) AS equal
FROM tile_approval_rate_24h t
FULL JOIN (SELECT date_bin('1 hour', created_at, '2000-01-03 00:00:00+00') AS hour,
                  count(*) FILTER (WHERE status = 'approved') AS approved,
                  count(*) FILTER (WHERE status <> 'pending') AS decided
           FROM agent_approvals
           WHERE date_bin('1 hour', created_at, '2000-01-03 00:00:00+00') >= now() - interval '24 hours'
           GROUP BY 1) r USING (hour);

SELECT count(*) AS agents,
       count(*) FILTER (WHERE (t.queries, t.slow) = (r.queries, r.slow) AND t.avg_ms = round(r.avg_ms::numeric, 1)) AS equal,
       count(*) FILTER (WHERE abs(t.p95_ms - r.p95) <= 0.02 * r.p95) AS p95_within_2pct
FROM tile_agent_latency_1h t
JOIN (SELECT agent, count(*) AS queries, count(*) FILTER (WHERE latency_ms > 1000) AS slow,
             avg(latency_ms) AS avg_ms,
             percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
      FROM agent_queries
      WHERE date_bin('5 minutes', created_at, '2000-01-03 00:00:00+00') >= now() - interval '1 hour'
      GROUP BY agent) r USING (agent);

SELECT count(*) AS agents,
       count(*) FILTER (WHERE t.ratings = r.ratings AND t.avg_rating = round(r.avg_rating, 2)
                          AND t.low_ratings = r.low) AS equal
FROM tile_feedback_7d t
JOIN (SELECT agent, count(*) AS ratings, avg(rating) AS avg_rating, count(*) FILTER (WHERE rating <= 2) AS low
      FROM agent_feedback
      WHERE created_at >= date_bin('1 day', now() - interval '7 days', '2000-01-03 00:00:00+00')
      GROUP BY agent) r USING (agent);

-- The queue alerts of scenario 5.
SELECT anomaly_type, entity, severity FROM vigil.active_alerts
WHERE monitor IN ('approval_queue_depth', 'approval_queue_age') ORDER BY anomaly_type;

-- More writes of every kind, then still exact.
INSERT INTO raw_messages (creator_name, ts, payment_status, price, response_time_seconds, content_type, trigger_type, price_point)
VALUES ('creator_9', now(), 'paid', 9.99, 60, 'photo', 'promo', 'low');
UPDATE raw_messages SET creator_name = 'creator_9', price = price + 1 WHERE creator_name = 'creator_2' AND ts > now() - interval '3 hours';
DELETE FROM agent_queries WHERE latency_ms > 1500;
UPDATE agent_approvals SET status = 'rejected' WHERE status = 'pending' AND urgent;
SELECT name, vigil.verify_rollup(name) AS differing_groups FROM vigil.rollups ORDER BY name::text;

SELECT vigil.drop_monitor('approval_queue_depth'), vigil.drop_monitor('approval_queue_age');
DELETE FROM vigil.alerts;
DELETE FROM vigil.alert_groups;
DELETE FROM vigil.notifications;
