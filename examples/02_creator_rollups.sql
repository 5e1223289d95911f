-- Scenario 1, rolling creator metrics from a realtime rollup (SPEC §3.3, §6.1).
-- raw_messages gets 7 days of generated traffic; creator_hourly is kept exact
-- by triggers, and the dashboard reads 1 h / 24 h / 7 d windows from it.
-- Views: creator_dashboard (with percentile ranks), executive_dashboard,
-- creator_drilldown (hourly series of one creator), pattern_performance
-- (top and worst 5 content patterns of the last hour); the monitor health
-- view is in 08_creator_monitors.sql.

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
       -- conversion depends on the creator and on the price point and trigger
       CASE WHEN (g * 7) % 10 < 1 + g % 8 / 3 + (2 - g / 9 % 3) - (g / 3 % 3 = 2)::int
            THEN 'paid' ELSE 'unpaid' END,
       (ARRAY[4.99, 9.99, 14.99, 24.99])[1 + g % 4],
       30 + (g * 7919 % 900),
       (ARRAY['photo', 'video', 'text'])[1 + g % 3],
       (ARRAY['welcome', 'reengage', 'promo'])[1 + g / 3 % 3],
       (ARRAY['low', 'mid', 'high'])[1 + g / 9 % 3]
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
       -- a sum over no paid message is NULL, as in SQL; the board shows 0
       coalesce(d.revenue, 0) AS revenue_24h, coalesce(w.revenue, 0) AS revenue_7d,
       round(vigil.approx_median(d.response)::numeric) AS median_response_s_24h
FROM creator_hourly_24h d
JOIN creator_hourly_7d w USING (creator_name)
LEFT JOIN creator_hourly_1h h USING (creator_name);

-- Patterns: 27 (content_type, trigger_type, price_point) combinations in
-- 5-minute buckets, so "the last hour" is close to 60 minutes.
SELECT vigil.create_rollup(
    'pattern_5m', 'raw_messages', 'ts', '5 minutes', '{content_type,trigger_type,price_point}',
    '{"messages": {"agg": "count"},
      "paid":     {"agg": "count", "filter": "payment_status = ''paid''"},
      "revenue":  {"agg": "sum", "column": "price", "filter": "payment_status = ''paid''"}}');

-- Every creator with its percentile rank among creators (1.0 = the best).
CREATE VIEW creator_ranks AS
SELECT creator_name, messages_24h, conversion_24h, revenue_24h,
       round(percent_rank() OVER (ORDER BY revenue_24h)::numeric, 2) AS revenue_pct_rank,
       round(percent_rank() OVER (ORDER BY conversion_24h)::numeric, 2) AS conversion_pct_rank,
       round(percent_rank() OVER (ORDER BY median_response_s_24h DESC)::numeric, 2) AS response_pct_rank
FROM creator_dashboard;

-- The whole business at a glance: one row, three windows.
CREATE VIEW executive_dashboard AS
SELECT (SELECT count(*) FROM creator_hourly_24h) AS active_creators_24h,
       (SELECT sum(messages) FROM creator_hourly_1h) AS messages_1h,
       sum(d.messages) AS messages_24h,
       round(sum(d.paid)::numeric / nullif(sum(d.messages), 0), 3) AS conversion_24h,
       sum(d.revenue) AS revenue_24h,
       (SELECT sum(revenue) FROM creator_hourly_7d) AS revenue_7d,
       round(vigil.approx_median(vigil.rollup(d.response))::numeric) AS median_response_s_24h,
       round(vigil.approx_percentile(vigil.rollup(d.response), 0.95)::numeric) AS p95_response_s_24h
FROM creator_hourly_24h d;

-- One creator hour by hour (filter on creator_name).
CREATE VIEW creator_drilldown AS
SELECT creator_name, bucket AS hour, sum(messages)::bigint AS messages, sum(paid)::bigint AS paid,
       round(sum(paid)::numeric / nullif(sum(messages), 0), 3) AS conversion, sum(revenue) AS revenue,
       round(vigil.approx_median(vigil.rollup(response))::numeric) AS median_response_s
FROM creator_hourly
WHERE bucket >= date_bin('1 hour', now() - interval '24 hours', '2000-01-03')
GROUP BY creator_name, bucket;

-- Patterns with at least 10 messages in the last hour, ranked both ways.
CREATE VIEW pattern_performance AS
SELECT content_type, trigger_type, price_point, messages, paid,
       round(paid::numeric / messages, 3) AS conversion, coalesce(revenue, 0) AS revenue,
       row_number() OVER (ORDER BY paid::numeric / messages DESC, coalesce(revenue, 0) DESC,
                                   content_type, trigger_type, price_point) AS best_rank,
       row_number() OVER (ORDER BY paid::numeric / messages, coalesce(revenue, 0),
                                   content_type, trigger_type, price_point) AS worst_rank
FROM pattern_5m_since(interval '1 hour')
WHERE messages >= 10;

\echo 'Executive dashboard:'
SELECT * FROM executive_dashboard;

\echo 'Creator percentile ranks (24 h):'
SELECT * FROM creator_ranks ORDER BY revenue_pct_rank DESC, creator_name;

\echo 'creator_1, last 6 hours:'
SELECT * FROM creator_drilldown WHERE creator_name = 'creator_1' ORDER BY hour DESC LIMIT 6;

\echo 'Top 5 patterns of the last hour (>= 10 messages):'
SELECT content_type, trigger_type, price_point, messages, conversion, revenue
FROM pattern_performance WHERE best_rank <= 5 ORDER BY best_rank;

\echo 'Worst 5 patterns of the last hour (>= 10 messages):'
SELECT content_type, trigger_type, price_point, messages, conversion, revenue
FROM pattern_performance WHERE worst_rank <= 5 ORDER BY worst_rank;

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
