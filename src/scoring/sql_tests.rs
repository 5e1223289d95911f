//! `#[pg_test]`s of the scoring functions (severities, saturation, urgency, dedup keys, the early-kill decision), through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::{
        assert_invalid, assert_partial_and_finalize, force_parallel_plan, one, sql_error,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn severity_functions_return_the_sql_enum_without_vigil_on_search_path() {
        Spi::run("SET search_path = pg_catalog").unwrap();
        assert_eq!(
            one::<String>("SELECT vigil.severity_above(16, 10, 15, 25)::text").as_deref(),
            Some("high")
        );
        assert_eq!(
            one::<String>("SELECT vigil.severity_below(5, 50, 30, 10)::text").as_deref(),
            Some("critical")
        );
        assert_eq!(
            one::<bool>("SELECT vigil.severity_above(9, 10, 15, 25) IS NULL"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.severity_above(25, 10, 15, 25) > 'high'::vigil.severity"),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT pg_typeof(vigil.severity_above(30, 10, 15, 25))::text")
                .as_deref(),
            Some("vigil.severity")
        );
    }

    #[pg_test]
    fn severity_functions_reject_bad_thresholds_and_nan() {
        assert_invalid(
            "SELECT vigil.severity_above(1, 15, 10, 25)",
            "medium < high < critical",
        );
        assert_invalid(
            "SELECT vigil.severity_below(1, 10, 30, 50)",
            "medium > high > critical",
        );
        assert_invalid(
            "SELECT vigil.severity_above('NaN', 10, 15, 25)",
            "value must be a finite number",
        );
        assert_invalid(
            "SELECT vigil.severity_above(1, 10, 15, 'Infinity')",
            "critical must be a finite number",
        );
        assert_eq!(
            one::<bool>("SELECT vigil.severity_above(NULL, 10, 15, 25) IS NULL"),
            Some(true)
        );
    }

    #[pg_test]
    fn unknown_severity_text_is_rejected_by_the_enum() {
        let (code, msg) = sql_error("SELECT vigil.urgency_score('severe')");
        assert_eq!(code, "ERRCODE_INVALID_TEXT_REPRESENTATION", "{msg}");
        assert!(
            msg.contains("vigil.severity") || msg.contains("severity"),
            "{msg}"
        );
    }

    #[pg_test]
    fn saturation_functions_through_sql() {
        assert_eq!(
            one::<String>("SELECT vigil.saturation_status(0.09, 0.2, 151, 100)::text").as_deref(),
            Some("RED")
        );
        assert_eq!(
            one::<String>("SELECT vigil.saturation_status(0.13, 0.2, 121, 100)::text").as_deref(),
            Some("YELLOW")
        );
        assert_eq!(
            one::<String>("SELECT vigil.saturation_status(0.19, 0.2, 50, 100)::text").as_deref(),
            Some("GREEN")
        );
        assert_eq!(
            one::<String>("SELECT vigil.saturation_status(NULL, 0.2, 50, 100)::text").as_deref(),
            Some("UNKNOWN")
        );
        assert_eq!(
            one::<String>("SELECT vigil.saturation_status(0.1, 0, 50, 100)::text").as_deref(),
            Some("UNKNOWN")
        );
        assert_invalid(
            "SELECT vigil.saturation_status(0.1, 0.2, -1, 100)",
            "messages_24h must be >= 0",
        );
        assert_eq!(
            one::<bool>("SELECT vigil.saturation_predicted(-2.5, 2.5, 0)"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.saturation_predicted(NULL, NULL, 3)"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.saturation_predicted(-1, 1, 2)"),
            Some(false)
        );
        assert_invalid(
            "SELECT vigil.saturation_predicted(0, 0, -1)",
            "consecutive_decline_days must be >= 0",
        );
        assert_eq!(
            one::<f64>("SELECT vigil.exhaustion_score(0.1, 0.2, 150, 100, 2)"),
            Some(60.0)
        );
        assert_eq!(
            one::<f64>("SELECT vigil.exhaustion_score(0, 0.2, 900, 100, 9)"),
            Some(100.0)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.exhaustion_score(0.1, NULL, 150, 100, 2) IS NULL"),
            Some(true)
        );
    }

    #[pg_test]
    fn urgency_score_uses_named_arguments_and_defaults() {
        assert_eq!(
            one::<i32>("SELECT vigil.urgency_score('critical')"),
            Some(90)
        );
        assert_eq!(
            one::<i32>("SELECT vigil.urgency_score('medium', drop_points => 18)"),
            Some(59)
        );
        assert_eq!(
            one::<i32>(
                "SELECT vigil.urgency_score('high', health_zone => 'red', deal_value => 10000.01)"
            ),
            Some(95)
        );
        assert_eq!(
            one::<i32>("SELECT vigil.urgency_score('high', deal_value => 10000)"),
            Some(70)
        );
        assert_eq!(one::<i32>("SELECT vigil.urgency_score('low', stall_days => 21, failure_count => 2, wait_hours => 3)"), Some(42));
        assert_eq!(one::<i32>("SELECT vigil.urgency_score('critical', drop_points => 50, health_zone => 'RED', failure_count => 9)"), Some(100));
        assert_eq!(
            one::<bool>("SELECT vigil.urgency_score(NULL) IS NULL"),
            Some(true)
        );
        assert_invalid(
            "SELECT vigil.urgency_score('low', health_zone => 'purple')",
            "health_zone must be one of",
        );
        assert_invalid(
            "SELECT vigil.urgency_score('low', failure_count => -2)",
            "failure_count must be >= 0",
        );
        assert_invalid(
            "SELECT vigil.urgency_score('low', deal_value => 'NaN')",
            "deal_value must be a finite number",
        );
        assert_invalid(
            "SELECT vigil.urgency_score('low', deal_value => -5)",
            "deal_value must be >= 0",
        );
        assert_eq!(
            one::<String>("SELECT vigil.urgency_band(vigil.urgency_score('high'))").as_deref(),
            Some("hours")
        );
        let (code, _) = sql_error("SELECT vigil.urgency_band(101)");
        assert_eq!(code, "ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE");
    }

    #[pg_test]
    fn dedup_key_uses_the_utc_day_whatever_the_session_time_zone() {
        Spi::run("SET TimeZone = 'America/Los_Angeles'").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT vigil.dedup_key('health_drop', 'acme', '2024-03-10 20:30:00-08')"
            )
            .as_deref(),
            Some("health_drop_acme_2024-03-11")
        );
        assert_eq!(
            one::<bool>("SELECT vigil.dedup_key('t', 'e') = 't_e_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
            Some(true)
        );
        assert_invalid(
            "SELECT vigil.dedup_key('', 'acme')",
            "anomaly_type must not be empty",
        );
        assert_invalid(
            "SELECT vigil.dedup_key('t', 'e', 'infinity')",
            "at must be a finite timestamp",
        );
    }

    #[pg_test]
    fn early_kill_decision_through_sql() {
        let q = |args: &str| {
            one::<String>(&format!("SELECT vigil.early_kill_decision({args})")).unwrap()
        };
        assert_eq!(
            q("0.1, 10, 300, '2026-01-01 00:00Z', at => '2026-01-01 00:01Z'"),
            "kill"
        );
        assert_eq!(
            q("0.1, 9, 300, '2026-01-01 00:00Z', at => '2026-01-01 00:01Z'"),
            "continue"
        );
        assert_eq!(
            q("0.1, 50, 0, '2026-01-01 00:00Z', at => '2026-01-01 00:01Z'"),
            "continue"
        );
        assert_eq!(
            q("0.1, 1, 100, '2026-01-01 00:00Z', at => '2026-01-01 00:10Z'"),
            "expired"
        );
        assert_eq!(
            q("0.1, 1, 100, '2026-01-01 00:00Z', at => '2026-01-01 00:09:59.999999Z'"),
            "continue"
        );
        assert_eq!(
            q("0.1, 10, 100, '2026-01-01 00:00Z', at => '2026-01-01 00:01Z', kill_threshold => 0.9, min_interactions => 5, timeout => '30 seconds'"),
            "expired"
        );
        assert_invalid(
            "SELECT vigil.early_kill_decision(0.1, -1, 10, now())",
            "interactions must be >= 0",
        );
        assert_invalid(
            "SELECT vigil.early_kill_decision(0.1, 1, -10, now())",
            "views must be >= 0",
        );
        assert_invalid(
            "SELECT vigil.early_kill_decision(0.1, 1, 10, now(), timeout => '-1 minute')",
            "timeout must not be negative",
        );
    }

    /// `vigil._saturation_days` equals the two grouped passes the
    /// saturation kind's query made before it (per entity and day, then per
    /// entity), over random rows with slot-like repeats, emptied days and
    /// NULL conversions; and refuses rows outside its days.
    #[pg_test]
    fn saturation_days_equal_the_two_grouped_passes() {
        Spi::run(
            "CREATE TABLE sd AS
             SELECT 'e' || (g % 7) AS e, now() - (random() * 9 * 86400) * interval '1 second' AS at,
                    CASE WHEN g % 11 = 0 THEN 0 ELSE 1 + (g % 5) END::float8 AS n,
                    CASE WHEN g % 13 = 0 THEN NULL ELSE (g % 3) END::float8 AS c
             FROM generate_series(1, 3000) g",
        )
        .unwrap();
        let mismatches = one::<i64>(
            "WITH daily AS (
               SELECT e, floor(date_part('epoch', now() - at) / 86400)::int AS d,
                      sum(n) AS n, coalesce(sum(c), 0) AS c
               FROM sd GROUP BY 1, 2 HAVING sum(n) > 0),
             old AS (
               SELECT e, coalesce(sum(n) FILTER (WHERE d = 0), 0) AS m24,
                      coalesce(sum(c) FILTER (WHERE d = 0), 0) AS c24,
                      coalesce(sum(n) FILTER (WHERE d > 0), 0) AS mb,
                      coalesce(sum(c) FILTER (WHERE d > 0), 0) AS cb,
                      coalesce(sum(n * n) FILTER (WHERE d > 0), 0) AS mb2,
                      avg(c / n) FILTER (WHERE d > 0) AS rate_mean,
                      stddev_samp(c / n) FILTER (WHERE d > 0) AS rate_sd
               FROM daily GROUP BY e),
             new AS (SELECT e, vigil._saturation_days(now(), at, n, c) AS a FROM sd GROUP BY e)
             SELECT count(*) FROM old FULL JOIN new USING (e)
             WHERE new.a IS NULL OR old.e IS NULL
                OR a[1] <> m24 OR a[2] <> c24 OR a[3] <> mb OR a[4] <> cb OR a[5] <> mb2
                OR abs(a[6] - rate_mean) > 1e-12 OR abs(a[7] - rate_sd) > 1e-12",
        );
        assert_eq!(mismatches, Some(0));
        // A day of declines: today 0.1 < yesterday 0.2 < 0.3 the day before.
        assert_eq!(
            one::<f64>(
                "SELECT (vigil._saturation_days(now(), now() - d * interval '1 day' - interval '1 hour', 10, r * 10))[8]
                 FROM (VALUES (0, 0.1), (1, 0.2), (2, 0.3), (3, 0.3)) v(d, r)"
            ),
            Some(2.0)
        );
        // NULL times and rows add nothing; no rows at all is NULL.
        assert_eq!(
            one::<Vec<Option<f64>>>(
                "SELECT vigil._saturation_days(now(), at, n, 1) FROM (VALUES (NULL::timestamptz, 1::float8), (now(), NULL)) v(at, n)"
            ),
            Some(vec![Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.0), None, None, Some(0.0)])
        );
        assert_eq!(
            one::<bool>(
                "SELECT vigil._saturation_days(now(), now(), 1, 1) IS NULL FROM sd WHERE false"
            ),
            Some(true)
        );
        assert_invalid(
            "SELECT vigil._saturation_days(now(), now() + interval '1 second', 1, 1)",
            "at must be between now and 366 days before it, got -1 days before",
        );
        assert_invalid(
            "SELECT vigil._saturation_days(now(), now() - interval '367 days', 1, 1)",
            "got 367 days before",
        );
        // Parallel workers' partial states combine to the serial result
        // (whole numbers: exact in any order).
        let q = "SELECT vigil._saturation_days(now(), at, n, c)::text FROM sd";
        Spi::run("ANALYZE sd").unwrap();
        let serial = one::<String>(q);
        force_parallel_plan();
        assert_partial_and_finalize(q);
        assert_eq!(one::<String>(q), serial);
    }

    /// `vigil._drop_buckets` equals the grouping per entity and bucket it
    /// replaced (the bucket's slot rows merged by SQL's aggregates), over
    /// random slot rows of statsagg, sum, min and max measures with
    /// emptied buckets; and refuses a merge it does not know or that
    /// changes between rows.
    #[pg_test]
    fn drop_buckets_equal_the_grouping_per_bucket() {
        Spi::run(
            "CREATE TABLE db AS
             SELECT 'e' || (g % 5) AS e, date_trunc('day', now()) - (g % 9) * interval '1 day' AS at,
                    CASE WHEN g % 17 = 0 THEN 0 ELSE 1 END::float8 AS rows,
                    vigil.stats_agg(v) AS s, sum(v) AS total, count(*)::float8 AS n, min(v) AS lo, max(v) AS hi
             FROM generate_series(1, 400) g, LATERAL (SELECT random() * 100 + g % 7 AS v FROM generate_series(1, 1 + g % 3)) x
             GROUP BY g",
        )
        .unwrap();
        for (old, parts, merge) in [
            (
                "vigil.mean(vigil.rollup(s))",
                "vigil.mean(s) * vigil.num_vals(s), vigil.num_vals(s)::float8",
                0,
            ),
            ("CASE WHEN sum(n) > 0 THEN sum(total) END", "total, n", 1),
            ("min(lo)", "lo, NULL", 3),
            ("max(hi)", "hi, NULL", 4),
        ] {
            let mismatches = one::<i64>(&format!(
                "WITH b AS (SELECT e, at, ({old})::float8 AS v FROM db GROUP BY 1, 2 HAVING sum(rows) > 0),
                 o AS (SELECT e, (max(ARRAY[date_part('epoch', at), v]))[2] AS cur, sum(v) AS tot, count(*) AS k
                       FROM b WHERE v IS NOT NULL GROUP BY 1),
                 n AS (SELECT e, vigil._drop_buckets(at, rows, {parts}, {merge}) AS a FROM db GROUP BY 1)
                 SELECT count(*) FROM o FULL JOIN n USING (e)
                 WHERE (o.e IS NULL) <> (n.a IS NULL) OR abs(a[1] - cur) > 1e-9 * abs(cur)
                    OR abs(a[2] - tot) > 1e-9 * abs(tot) OR a[3] <> k"
            ));
            assert_eq!(mismatches, Some(0), "{old}");
        }
        assert_eq!(
            one::<bool>("SELECT vigil._drop_buckets(now(), 0, 1, 1, 0) IS NULL"),
            Some(true)
        );
        assert_invalid(
            "SELECT vigil._drop_buckets(now(), 1, 1, 1, 9)",
            "merge must be one of 0 to 4 and the same on every row, got 9",
        );
        assert_invalid(
            "SELECT vigil._drop_buckets(now(), 1, 1, 1, g) FROM generate_series(0, 1) g",
            "got 1",
        );
        // Parallel workers' partial states combine to the serial result.
        let q = "SELECT vigil._drop_buckets(at, rows, lo, NULL, 3)::text FROM db";
        Spi::run("ANALYZE db").unwrap();
        let serial = one::<String>(q);
        assert!(serial.is_some());
        force_parallel_plan();
        assert_partial_and_finalize(q);
        assert_eq!(one::<String>(q), serial);
    }

    /// `vigil._drop_latest` equals the SQL it replaced in the raw drop
    /// query (`max(ARRAY[epoch, v])[2]`, `sum(v)`, `count(*)` of the rows
    /// with a value), over random rows with ties at the latest time, NULL
    /// values and times, and a NaN; and its parallel partial states
    /// combine to the serial result.
    #[pg_test]
    fn drop_latest_equals_the_array_max_it_replaced() {
        Spi::run(
            "CREATE TABLE dl AS
             SELECT 'e' || (g % 7) AS e,
                    CASE WHEN g % 31 = 0 THEN NULL
                         ELSE date_trunc('hour', now()) - (g % 13) * interval '1 hour' END AS at,
                    CASE WHEN g % 23 = 0 THEN NULL ELSE round((random() * 100)::numeric, 1)::float8 END AS v
             FROM generate_series(1, 3000) g;
             INSERT INTO dl VALUES ('nan', now(), 'NaN'), ('nan', now(), 5), ('one', now(), 3),
                                   ('none', now(), NULL)",
        )
        .unwrap();
        let mismatches = one::<i64>(
            "WITH o AS (SELECT e, (max(ARRAY[extract(epoch FROM at)::float8, v]))[2] AS cur, sum(v) AS tot,
                               count(*) AS k
                        FROM dl WHERE v IS NOT NULL AND at IS NOT NULL GROUP BY 1),
                  n AS (SELECT e, vigil._drop_latest(at, v) AS a FROM dl GROUP BY 1 HAVING vigil._drop_latest(at, v) IS NOT NULL)
             SELECT count(*) FROM o FULL JOIN n USING (e)
             WHERE (o.e IS NULL) <> (n.a IS NULL) OR a[1] IS DISTINCT FROM cur
                OR abs(a[2] - tot) > 1e-9 * abs(tot) OR a[3] <> k",
        );
        assert_eq!(mismatches, Some(0));
        assert_eq!(
            one::<String>("SELECT vigil._drop_latest(at, v)::text FROM dl WHERE e = 'nan'"),
            Some("{NaN,NaN,2}".into()),
            "NaN is the greatest value of a tie"
        );
        assert_eq!(
            one::<bool>("SELECT vigil._drop_latest(at, v) IS NULL FROM dl WHERE e = 'none'"),
            Some(true)
        );
        let q = "SELECT vigil._drop_latest(at, v)::text FROM dl WHERE e <> 'nan'";
        Spi::run("ANALYZE dl").unwrap();
        let serial = one::<String>(q);
        assert!(serial.is_some());
        force_parallel_plan();
        assert_partial_and_finalize(q);
        let parallel = one::<String>(q).unwrap();
        let parts = |t: &str| -> Vec<f64> {
            t.trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .map(|x| x.parse().unwrap())
                .collect()
        };
        let (a, b) = (parts(&serial.unwrap()), parts(&parallel));
        assert_eq!((a[0], a[2]), (b[0], b[2]));
        assert!((a[1] - b[1]).abs() <= 1e-9 * a[1].abs(), "{a:?} {b:?}");
    }
}
