-- Hour-of-week baselines (SPEC §3.1, scenario 1): 90 days of hourly message
-- counts per creator with a weekly rhythm. In the last complete hour
-- creator_3 spikes and creator_5 goes silent; z-scores against the same
-- hour-of-week find both.

CREATE TEMP TABLE raw_messages AS
WITH creators AS (SELECT format('creator_%s', i) AS creator_name, i FROM generate_series(1, 5) i),
     hours AS (
         SELECT h AS hour FROM generate_series(date_trunc('hour', now(), 'UTC') - interval '90 days',
                                               date_trunc('hour', now(), 'UTC') - interval '2 hours',
                                               interval '1 hour') h)
SELECT c.creator_name, hours.hour + (k * interval '1 second') AS ts
FROM creators c
CROSS JOIN hours
-- busy evenings, busier weekends, plus creator-specific volume and noise
CROSS JOIN LATERAL generate_series(1, (2 + c.i
        + 6 * (extract(hour FROM hours.hour AT TIME ZONE 'UTC') BETWEEN 17 AND 22)::int
        + 3 * (extract(isodow FROM hours.hour AT TIME ZONE 'UTC') >= 6)::int
        + (floor(random() * 3))::int)) AS k;

-- the last complete hour: creator_3 gets 60 messages, creator_5 none
INSERT INTO raw_messages
SELECT format('creator_%s', i), date_trunc('hour', now(), 'UTC') - interval '1 hour' + k * interval '1 second'
FROM generate_series(1, 4) i,
     LATERAL generate_series(1, CASE WHEN i = 3 THEN 60 ELSE 3 + i
        + 6 * (extract(hour FROM (now() - interval '1 hour') AT TIME ZONE 'UTC') BETWEEN 17 AND 22)::int
        + 3 * (extract(isodow FROM (now() - interval '1 hour') AT TIME ZONE 'UTC') >= 6)::int END) k;

\echo 'Last complete hour vs the same hour-of-week over the last 90 days:'
WITH hours AS (
    SELECT h FROM generate_series(date_trunc('hour', now(), 'UTC') - interval '90 days',
                                  date_trunc('hour', now(), 'UTC') - interval '1 hour',
                                  interval '1 hour') AS h),
creators AS (SELECT DISTINCT creator_name FROM raw_messages
             WHERE ts >= now() - interval '90 days'),
counts AS (
    SELECT creator_name, date_trunc('hour', ts, 'UTC') AS h, count(*)::float8 AS n
    FROM raw_messages WHERE ts >= now() - interval '90 days'
    GROUP BY 1, 2),
hourly AS (
    SELECT creator_name, h, coalesce(counts.n, 0) AS n
    FROM creators CROSS JOIN hours LEFT JOIN counts USING (creator_name, h)),
latest AS (SELECT max(h) AS h FROM hours),
baseline AS (
    SELECT creator_name, vigil.hour_of_week(hourly.h) AS how, vigil.stats_agg(n) AS s
    FROM hourly, latest WHERE hourly.h < latest.h
    GROUP BY 1, 2)
SELECT hr.creator_name,
       vigil.hour_of_week(hr.h)                     AS hour_of_week,
       hr.n                                         AS last_hour,
       round(vigil.mean(b.s)::numeric, 1)           AS usual,
       round(vigil.zscore(b.s, hr.n)::numeric, 1)   AS z,
       vigil.is_anomaly(vigil.zscore(b.s, hr.n))    AS anomaly
FROM hourly hr
JOIN latest ON hr.h = latest.h
JOIN baseline b ON b.creator_name = hr.creator_name AND b.how = vigil.hour_of_week(hr.h)
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
