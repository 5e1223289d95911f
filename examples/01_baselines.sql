-- Hour-of-week baselines (SPEC §3.1, scenario 1): 90 days of hourly message
-- counts per creator with a weekly rhythm, and a planted spike in the current
-- hour for creator_3. The z-score against the same hour-of-week finds it.

CREATE TEMP TABLE raw_messages AS
WITH creators AS (SELECT format('creator_%s', i) AS creator_name, i FROM generate_series(1, 5) i),
     hours AS (
         SELECT h AS hour FROM generate_series(date_trunc('hour', now()) - interval '90 days',
                                               date_trunc('hour', now()) - interval '1 hour',
                                               interval '1 hour') h)
SELECT c.creator_name,
       hours.hour + (k * interval '1 second') AS ts
FROM creators c
CROSS JOIN hours
-- busy evenings, quiet nights, busier weekends, plus creator-specific volume
CROSS JOIN LATERAL generate_series(1, (2 + c.i
        + 6 * (extract(hour FROM hours.hour) BETWEEN 17 AND 22)::int
        + 3 * (extract(isodow FROM hours.hour) >= 6)::int
        + (floor(random() * 3))::int)) AS k;

-- the current hour: normal traffic, except creator_3 who gets 60 messages
INSERT INTO raw_messages
SELECT format('creator_%s', i), date_trunc('hour', now()) + k * interval '1 second'
FROM generate_series(1, 5) i,
     LATERAL generate_series(1, CASE WHEN i = 3 THEN 60 ELSE 2 + i
        + 6 * (extract(hour FROM now()) BETWEEN 17 AND 22)::int
        + 3 * (extract(isodow FROM now()) >= 6)::int END) k;

\echo 'Current hour vs the same hour-of-week over the last 90 days:'
WITH hourly AS (
    SELECT creator_name, date_trunc('hour', ts) AS hour, count(*)::float8 AS n
    FROM raw_messages
    WHERE ts >= now() - interval '90 days'
    GROUP BY 1, 2),
baseline AS (
    SELECT creator_name, vigil.hour_of_week(hour) AS how, vigil.stats_agg(n) AS s
    FROM hourly WHERE hour < date_trunc('hour', now())
    GROUP BY 1, 2),
current AS (
    SELECT creator_name, count(*)::float8 AS n
    FROM raw_messages WHERE ts >= date_trunc('hour', now())
    GROUP BY 1)
SELECT c.creator_name,
       vigil.hour_of_week(now())               AS hour_of_week,
       c.n                                     AS this_hour,
       round(vigil.mean(b.s)::numeric, 1)      AS usual,
       round(vigil.zscore(b.s, c.n)::numeric, 1) AS z,
       vigil.is_anomaly(vigil.zscore(b.s, c.n)) AS anomaly
FROM current c
JOIN baseline b ON b.creator_name = c.creator_name AND b.how = vigil.hour_of_week(now())
ORDER BY z DESC;

\echo 'Message spacing percentiles per creator (quantile sketch, 1% relative error):'
SELECT creator_name,
       vigil.num_vals(s)                                  AS messages,
       round(vigil.approx_median(s)::numeric, 1)          AS median_gap_s,
       round(vigil.approx_percentile(s, 0.95)::numeric, 1) AS p95_gap_s
FROM (SELECT creator_name, vigil.percentile_agg(gap) AS s
      FROM (SELECT creator_name,
                   extract(epoch FROM ts - lag(ts) OVER (PARTITION BY creator_name ORDER BY ts))::float8 AS gap
            FROM raw_messages) g
      WHERE gap IS NOT NULL
      GROUP BY 1) q
ORDER BY 1;
