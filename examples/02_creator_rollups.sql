-- Scenario 1, rolling creator metrics from a realtime rollup (SPEC §3.3, §6.1).
-- raw_messages gets 7 days of generated traffic; creator_hourly is kept exact
-- by triggers, and the dashboard reads 1 h / 24 h / 7 d windows from it.

CREATE TABLE raw_messages (
    creator_name text NOT NULL,
    ts timestamptz NOT NULL,
    payment_status text NOT NULL,
    price numeric(10, 2),
    response_time_seconds float8,
    content_type text,
    trigger_type text,
    price_point text
);
CREATE INDEX ON raw_messages (creator_name, ts);

INSERT INTO raw_messages
SELECT format('creator_%s', 1 + g % 8),
       now() - (g % 10080) * interval '1 minute' - (g % 60) * interval '1 second',
       CASE WHEN (g * 7) % 10 < 2 + g % 8 / 3 THEN 'paid' ELSE 'unpaid' END,
       (ARRAY[4.99, 9.99, 14.99, 24.99])[1 + g % 4],
       30 + (g * 7919 % 900),
       (ARRAY['photo', 'video', 'text'])[1 + g % 3],
       (ARRAY['welcome', 'reengage', 'promo'])[1 + g % 3],
       (ARRAY['low', 'mid', 'high'])[1 + g % 3]
FROM generate_series(1, 60000) g;

SELECT vigil.create_rollup(
    'creator_hourly', 'raw_messages', 'ts', '1 hour', '{creator_name}',
    '{"messages": {"agg": "count"},
      "paid":     {"agg": "count", "filter": "payment_status = ''paid''"},
      "revenue":  {"agg": "sum", "column": "price", "filter": "payment_status = ''paid''"},
      "response": {"agg": "percentile", "column": "response_time_seconds"}}');

CREATE VIEW creator_dashboard AS
SELECT d.creator_name,
       h.messages AS messages_1h, d.messages AS messages_24h, w.messages AS messages_7d,
       round(d.paid::numeric / nullif(d.messages, 0), 3) AS conversion_24h,
       round(w.paid::numeric / nullif(w.messages, 0), 3) AS conversion_7d,
       d.revenue AS revenue_24h, w.revenue AS revenue_7d,
       round(vigil.approx_median(d.response)::numeric) AS median_response_s_24h
FROM creator_hourly_24h d
JOIN creator_hourly_7d w USING (creator_name)
LEFT JOIN creator_hourly_1h h USING (creator_name);

\echo 'Creator dashboard (from the rollup):'
SELECT * FROM creator_dashboard ORDER BY revenue_24h DESC;

\echo 'A burst of paid messages for creator_3, a refund and a deletion: the rollup follows at once.'
INSERT INTO raw_messages (creator_name, ts, payment_status, price, response_time_seconds)
SELECT 'creator_3', now(), 'paid', 24.99, 45 FROM generate_series(1, 25);
UPDATE raw_messages SET payment_status = 'refunded'
WHERE ctid = (SELECT ctid FROM raw_messages WHERE creator_name = 'creator_3' AND payment_status = 'paid' LIMIT 1);
DELETE FROM raw_messages WHERE creator_name = 'creator_8' AND ts < now() - interval '6 days';
SELECT creator_name, messages_1h, messages_24h, revenue_24h FROM creator_dashboard
WHERE creator_name IN ('creator_3', 'creator_8') ORDER BY 1;

\echo 'Rollups and their exactness (verify_rollup = groups differing from a recompute):'
SELECT name, source, bucket, rows, vigil.verify_rollup(name) AS differing_groups FROM vigil.rollups;
