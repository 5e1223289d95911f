-- Scenario 5, agent approvals analytics: four dashboard tiles, each read
-- from a trigger-maintained rollup instead of scanning the raw tables.

CREATE TABLE agent_approvals (
    id bigserial PRIMARY KEY,
    agent text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    urgent boolean NOT NULL DEFAULT false,
    confidence float8 NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE agent_queries (agent text NOT NULL, created_at timestamptz NOT NULL, latency_ms float8 NOT NULL);
CREATE TABLE agent_feedback (agent text NOT NULL, created_at timestamptz NOT NULL, rating int NOT NULL);

INSERT INTO agent_approvals (agent, status, urgent, confidence, created_at)
SELECT format('agent_%s', 1 + g % 4),
       CASE WHEN g % 9 = 0 THEN 'pending' WHEN g % 5 = 0 THEN 'rejected' ELSE 'approved' END,
       g % 23 = 0, 0.5 + (g % 50) / 100.0,
       now() - (g % 1440) * interval '1 minute'
FROM generate_series(1, 5000) g;
INSERT INTO agent_queries
SELECT format('agent_%s', 1 + g % 4), now() - (g % 3600) * interval '1 second',
       CASE WHEN g % 97 = 0 THEN 1500 + g % 800 ELSE 40 + (g * 31 % 400) * (1 + g % 4) END
FROM generate_series(1, 20000) g;
INSERT INTO agent_feedback
SELECT format('agent_%s', 1 + g % 4), now() - (g % 10080) * interval '1 minute', 1 + (g * 7) % 5
FROM generate_series(1, 3000) g;

SELECT vigil.create_rollup('approvals_hourly', 'agent_approvals', 'created_at', '1 hour', '{}',
    '{"created":  {"agg": "count"},
      "pending":  {"agg": "count", "filter": "status = ''pending''"},
      "urgent":   {"agg": "count", "filter": "status = ''pending'' AND urgent"},
      "approved": {"agg": "count", "filter": "status = ''approved''"},
      "decided":  {"agg": "count", "filter": "status <> ''pending''"},
      "pending_confidence": {"agg": "stats", "column": "confidence", "filter": "status = ''pending''"},
      "oldest_pending":     {"agg": "min", "column": "created_at", "filter": "status = ''pending''"}}');
SELECT vigil.create_rollup('queries_5m', 'agent_queries', 'created_at', '5 minutes', '{agent}',
    '{"queries": {"agg": "count"},
      "slow":    {"agg": "count", "filter": "latency_ms > 1000"},
      "latency": {"agg": "percentile", "column": "latency_ms"},
      "latency_stats": {"agg": "stats", "column": "latency_ms"}}');
SELECT vigil.create_rollup('feedback_daily', 'agent_feedback', 'created_at', '1 day', '{agent}',
    '{"ratings": {"agg": "count"}, "rating": {"agg": "avg", "column": "rating"},
      "low": {"agg": "count", "filter": "rating <= 2"}}');

CREATE VIEW tile_queue_status AS
SELECT sum(pending) AS pending, sum(urgent) AS urgent,
       round(vigil.mean(vigil.rollup(pending_confidence))::numeric, 3) AS avg_confidence,
       date_trunc('second', now() - min(oldest_pending)) AS oldest_pending_age
FROM approvals_hourly;

CREATE VIEW tile_approval_rate_24h AS
SELECT bucket AS hour, sum(approved) AS approved, sum(decided) AS decided,
       round(sum(approved)::numeric / nullif(sum(decided), 0), 3) AS approval_rate
FROM approvals_hourly WHERE bucket >= now() - interval '24 hours'
GROUP BY bucket;

CREATE VIEW tile_agent_latency_1h AS
SELECT agent, queries, slow,
       round(vigil.mean(rollup_stats)::numeric, 1) AS avg_ms,
       round(vigil.approx_percentile(latency, 0.95)::numeric, 1) AS p95_ms,
       CASE WHEN vigil.approx_percentile(latency, 0.95) < 200 THEN 'excellent'
            WHEN vigil.approx_percentile(latency, 0.95) < 500 THEN 'good'
            WHEN vigil.approx_percentile(latency, 0.95) < 1000 THEN 'fair'
            ELSE 'needs attention' END AS rating
FROM (SELECT agent, sum(queries) AS queries, sum(slow) AS slow,
             vigil.rollup(latency) AS latency, vigil.rollup(latency_stats) AS rollup_stats
      FROM queries_5m WHERE bucket >= now() - interval '1 hour' GROUP BY agent) q;

CREATE VIEW tile_feedback_7d AS
SELECT agent, ratings, round(rating::numeric, 2) AS avg_rating, low AS low_ratings
FROM feedback_daily_7d;

\echo 'Queue status:'
SELECT * FROM tile_queue_status;
\echo 'Hourly approval rate (last 24 h, latest 6 hours):'
SELECT * FROM tile_approval_rate_24h ORDER BY hour DESC LIMIT 6;
\echo 'Agent latency, last hour:'
SELECT * FROM tile_agent_latency_1h ORDER BY agent;
\echo '7-day feedback quality:'
SELECT * FROM tile_feedback_7d ORDER BY agent;

\echo 'Approving the oldest pending items updates the queue tile in the same transaction:'
UPDATE agent_approvals SET status = 'approved'
WHERE id IN (SELECT id FROM agent_approvals WHERE status = 'pending' ORDER BY created_at LIMIT 100);
SELECT * FROM tile_queue_status;

-- Alerts on the queue (SPEC §6.5): more than 50 pending, or the oldest
-- pending approval waiting over an hour. Neither needs an entity column:
-- the whole queue is one entity, named after the monitor.
SELECT vigil.create_monitor('approval_queue_depth', 'count', 'agent_approvals',
    '{"filter": {"status": "pending"}, "thresholds": {"high": 51},
      "anomaly_type": "queue_depth", "metric_name": "pending approvals"}') > 0 AS created;
SELECT vigil.create_monitor('approval_queue_age', 'stall', 'agent_approvals',
    '{"time": "created_at", "filter": {"status": "pending"}, "thresholds": {"high": "1 hour"},
      "urgency_from": "wait_hours", "anomaly_type": "queue_age", "label": "pending approvals"}') > 0 AS created;
SELECT (vigil.scan(m))->'anomalies_detected' AS anomalies
FROM unnest(ARRAY['approval_queue_depth', 'approval_queue_age']) AS m;
SELECT anomaly_type, entity, severity, urgency, title FROM vigil.active_alerts
WHERE monitor IN ('approval_queue_depth', 'approval_queue_age') ORDER BY anomaly_type;
