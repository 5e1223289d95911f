-- pg_regress: statistics aggregates, sketches and baselines (SPEC §3.1).
CREATE EXTENSION IF NOT EXISTS pg_vigil;
SET extra_float_digits = 0;

-- two-step aggregate: summary, then accessors
SELECT vigil.stats_agg(x) FROM generate_series(1, 10) x;
SELECT vigil.num_vals(s), vigil.mean(s), vigil.stddev(s), vigil.stddev_pop(s),
       vigil.variance(s), vigil.min_val(s), vigil.max_val(s)
FROM (SELECT vigil.stats_agg(x) AS s FROM generate_series(1, 10) x) q;
SELECT avg(x), stddev_samp(x), stddev_pop(x), var_samp(x) FROM generate_series(1, 10) x;

-- NULLs are skipped; no rows give NULL; NaN is rejected
SELECT vigil.stats_agg(x) FROM (VALUES (1.0::float8), (NULL), (2.0)) v(x);
SELECT vigil.stats_agg(x) IS NULL AS no_rows FROM generate_series(1, 0) x;
SELECT vigil.stats_agg(x) FROM (VALUES (1.0::float8), ('NaN')) v(x);

-- rollup of stored summaries equals one pass
CREATE TEMP TABLE hourly AS
SELECT x % 4 AS shard, vigil.stats_agg(x::float8) AS s FROM generate_series(1, 1000) x GROUP BY 1;
SELECT vigil.rollup(s) FROM hourly;
SELECT vigil.stats_agg(x::float8) FROM generate_series(1, 1000) x;

-- text form round-trips; the empty summary is (n:0)
SELECT '(n:3,mean:2.0,m2:2.0,min:1.0,max:3.0)'::vigil.statsagg;
SELECT vigil.mean('(n:0)'::vigil.statsagg) IS NULL AS empty_mean;
SELECT '(n:3,mean:2.0)'::vigil.statsagg;

-- removal (for rollups): removing an extreme makes min/max unknown
SELECT vigil.remove_value(vigil.stats_agg(x), 5), vigil.remove_value(vigil.stats_agg(x), 10)
FROM generate_series(1, 10) x;
SELECT vigil.merge(a, b) AS merged, vigil.subtract(vigil.merge(a, b), b) AS a_again, a
FROM (SELECT vigil.stats_agg(x) a FROM generate_series(1, 5) x) p,
     (SELECT vigil.stats_agg(x) b FROM generate_series(6, 9) x) q;

-- z-scores
SELECT vigil.zscore(13, 10, 1.5) AS z, vigil.zscore(13, 10, 0) AS zero_stddev,
       vigil.is_anomaly(3) AS at_threshold, vigil.is_anomaly(-3.5) AS beyond,
       vigil.is_anomaly(2.5, threshold => 2) AS custom;
SELECT vigil.zscore(vigil.stats_agg(x), 8.5) FROM generate_series(1, 10) x;

-- hour of week: Monday 00:00 = 0 … Sunday 23:00 = 167, in any time zone
SELECT ts, vigil.hour_of_week(ts) AS utc, vigil.hour_of_week(ts, 'America/New_York') AS new_york
FROM unnest(ARRAY['2026-11-23 00:00Z', '2026-11-22 23:59Z', '2026-03-08 06:30Z',
                  '2026-03-08 07:30Z']::timestamptz[]) AS ts;
SELECT vigil.hour_of_week(now(), 'Nowhere/Special');

-- quantile sketch
SELECT vigil.percentile_agg(x) FROM (VALUES (1.0::float8), (2), (3), (0), (-5)) v(x);
SELECT q, vigil.approx_percentile(s, q) AS approx
FROM (SELECT vigil.percentile_agg(x::float8) s FROM generate_series(1, 1000) x) t,
     unnest(ARRAY[0, 0.25, 0.5, 0.9, 0.99, 1]) AS q;
SELECT vigil.approx_median(vigil.percentile_agg(x::float8, 0.001)) FROM generate_series(1, 1000) x;
SELECT vigil.num_vals(vigil.rollup(s)) FROM (SELECT vigil.percentile_agg(x::float8) s FROM generate_series(1, 999) x GROUP BY x % 3) q;
SELECT vigil.remove_value(vigil.percentile_agg(x), 3) FROM (VALUES (1.0::float8), (3)) v(x);
SELECT vigil.percentile_agg(x, 0.6) FROM (VALUES (1.0::float8)) v(x);
SELECT vigil.approx_percentile(vigil.percentile_agg(x), 2) FROM (VALUES (1.0::float8)) v(x);
