-- Scenario 3, variant early kill (SPEC §6.3): interactions arriving for a
-- registered variant decide kill/continue inside the inserting transaction;
-- a kill records why, raises an alert and enqueues an action webhook (to
-- cancel the post) on the channel named by options.action_channel
-- (`make demo` creates ops-webhook). Variants without a decision expire on
-- the next scan after their timeout.

CREATE TABLE variant_interactions (
    variant text NOT NULL,
    event text NOT NULL CHECK (event IN ('view', 'like', 'comment', 'share')),
    at timestamptz NOT NULL DEFAULT now()
);

SELECT vigil.create_monitor('variant_early_kill', 'early_kill', 'variant_interactions',
    '{"variant": "variant", "event": "event", "view_events": ["view"],
      "kill_threshold": 0.5, "min_interactions": 10, "timeout": "10 minutes",
      "action_channel": "ops-webhook"}') > 0 AS created;

-- Expected engagement 10% for A and B, 8% for C; C is given a 1 second
-- timeout so that the example can show an expiry.
SELECT v.variant, v.status, v.expected_rate, v.kill_threshold, v.min_interactions, v.timeout
FROM (VALUES ('variant-A', 0.10, 'Ava', 'post-101', NULL::interval),
             ('variant-B', 0.10, 'Ben', 'post-102', NULL),
             ('variant-C', 0.08, 'Cleo', 'post-103', interval '1 second')) AS r(variant, rate, persona, post, timeout),
     LATERAL vigil.register_variant('variant_early_kill', r.variant, r.rate, r.persona, r.post, timeout => r.timeout) AS v
ORDER BY 1;

-- Traffic generator: A engages at 4% (below 0.5 x 10%), B at 15%. Each
-- batch is one INSERT statement, as an ingestion job would write it.
INSERT INTO variant_interactions (variant, event)
SELECT 'variant-A', CASE WHEN g % 25 = 0 THEN 'like' ELSE 'view' END FROM generate_series(1, 150) g;
SELECT variant, status, views, interactions FROM vigil.variant_monitoring ORDER BY variant;

\echo 'A reaches 10 interactions at 4% engagement: killed by the INSERT itself.'
INSERT INTO variant_interactions (variant, event)
SELECT 'variant-A', CASE WHEN g % 25 = 0 THEN 'comment' ELSE 'view' END FROM generate_series(1, 150) g;
INSERT INTO variant_interactions (variant, event)
SELECT 'variant-B', CASE WHEN g % 20 < 3 THEN 'like' ELSE 'view' END FROM generate_series(1, 200) g;
SELECT variant, status, views, interactions, reason FROM vigil.variant_monitoring ORDER BY variant;

\echo 'Interactions after the decision are not counted; the kill alert and the action webhook:'
INSERT INTO variant_interactions (variant, event) VALUES ('variant-A', 'like');
SELECT anomaly_type, entity, severity, urgency, title FROM vigil.alerts WHERE monitor = 'variant_early_kill';
SELECT c.name AS channel, n.idempotency_key, n.payload->>'action' AS action, n.payload->>'post' AS post
FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
WHERE n.idempotency_key LIKE 'early_kill:%';

\echo 'C saw no traffic: the next scan after its timeout expires it.'
SELECT pg_sleep(1.1);
SELECT r->'variants_expired' AS variants_expired FROM vigil.scan('variant_early_kill') AS r;
SELECT variant, status, reason FROM vigil.variant_monitoring WHERE variant = 'variant-C';
