//! `#[pg_test]`s of the statistics aggregates (`stats_agg`, `statsagg`, z-scores, hour of week), through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::{
        assert_invalid, assert_partial_and_finalize, force_parallel_plan, hostile_table, one, rel,
        sql_error,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn stats_agg_matches_builtins_on_hostile_data() {
        hostile_table();
        let row = Spi::get_one::<Vec<Option<f64>>>(
            "SELECT ARRAY[vigil.mean(s), a, vigil.stddev(s), sd, vigil.variance(s), v,
                          vigil.stddev_pop(s), sdp, vigil.min_val(s), mn, vigil.max_val(s), mx,
                          vigil.num_vals(s), c]
             FROM (SELECT vigil.stats_agg(x) s, avg(x) a, stddev_samp(x) sd, var_samp(x) v,
                          stddev_pop(x) sdp, min(x) mn, max(x) mx, count(x) c FROM hostile) q",
        )
        .unwrap()
        .unwrap();
        for pair in row.chunks(2) {
            let (ours, builtin) = (pair[0].unwrap(), pair[1].unwrap());
            assert!(rel(ours, builtin) <= 1e-9, "{ours} vs {builtin}");
        }
    }

    #[pg_test]
    fn stats_agg_runs_partial_and_finalize_in_a_parallel_plan() {
        Spi::run(
            "CREATE TABLE par AS SELECT (g % 1000)::float8 * 1.5 + 1e6 AS x FROM generate_series(1, 100000) g;
             ANALYZE par",
        )
        .unwrap();
        let serial = Spi::get_one::<String>("SELECT vigil.stats_agg(x)::text FROM par").unwrap();
        force_parallel_plan();
        assert_partial_and_finalize("SELECT vigil.stats_agg(x) FROM par");
        let parallel = Spi::get_one::<String>("SELECT vigil.stats_agg(x)::text FROM par").unwrap();
        let mean = |t: &Option<String>| {
            Spi::get_one::<f64>(&format!(
                "SELECT vigil.mean('{}'::vigil.statsagg)",
                t.as_ref().unwrap()
            ))
            .unwrap()
            .unwrap()
        };
        let sd = |t: &Option<String>| {
            Spi::get_one::<f64>(&format!(
                "SELECT vigil.stddev('{}'::vigil.statsagg)",
                t.as_ref().unwrap()
            ))
            .unwrap()
            .unwrap()
        };
        assert!(rel(mean(&parallel), mean(&serial)) < 1e-12);
        assert!(rel(sd(&parallel), sd(&serial)) < 1e-9);
    }

    #[pg_test]
    fn rollup_of_group_summaries_equals_one_pass() {
        hostile_table();
        let diff = Spi::get_one::<Vec<f64>>(
            "WITH parts AS (SELECT g % 7 AS k, vigil.stats_agg(x) AS s FROM hostile GROUP BY 1),
                  whole AS (SELECT vigil.stats_agg(x) AS s FROM hostile),
                  merged AS (SELECT vigil.rollup(s) AS s FROM parts)
             SELECT ARRAY[vigil.num_vals(m.s) - vigil.num_vals(w.s),
                          abs(vigil.mean(m.s) - vigil.mean(w.s)) / abs(vigil.mean(w.s)),
                          abs(vigil.stddev(m.s) - vigil.stddev(w.s)) / vigil.stddev(w.s),
                          vigil.min_val(m.s) - vigil.min_val(w.s)]::float8[]
             FROM merged m, whole w",
        )
        .unwrap()
        .unwrap();
        assert_eq!(diff[0], 0.0);
        assert!(diff[1] < 1e-12 && diff[2] < 1e-9, "{diff:?}");
        assert_eq!(diff[3], 0.0);
    }

    /// The statsagg aggregates keep their state in `vigil.stats_state`, a
    /// concrete type (what Citus needs to push them down): partial states
    /// sent as text and combined give the one-pass summary, and the
    /// support functions, which update their state in place, refuse to run
    /// outside an aggregate.
    #[pg_test]
    fn stats_state_crosses_nodes_as_text_and_stays_inside_aggregates() {
        assert_eq!(
            one::<String>(
                "SELECT string_agg(aggtranstype::regtype::text, ',' ORDER BY aggfnoid::regprocedure::text)
                 FROM pg_aggregate WHERE aggfnoid::regprocedure::text IN
                     ('vigil.stats_agg(double precision)', 'vigil.rollup(vigil.statsagg)')"
            )
            .as_deref(),
            Some("vigil.stats_state,vigil.stats_state")
        );
        // What Citus does: a partial aggregate per shard, its state as
        // text, parsed and combined on the coordinator.
        Spi::run(
            "CREATE TEMP TABLE shards AS
                 SELECT g % 3 AS shard, 1e6 + sin(g) * 1e3 AS x FROM generate_series(1, 3000) g;
             CREATE AGGREGATE pg_temp.partial_stats(float8) (SFUNC = vigil.stats_agg_trans, STYPE = vigil.stats_state);
             CREATE AGGREGATE pg_temp.combined_stats(vigil.stats_state) (
                 SFUNC = vigil.stats_agg_combine, STYPE = vigil.stats_state, FINALFUNC = vigil.stats_agg_final);",
        )
        .unwrap();
        let same = one::<bool>(
            "WITH sent AS (SELECT pg_temp.partial_stats(x)::text AS t FROM shards GROUP BY shard),
                  got AS (SELECT pg_temp.combined_stats(t::vigil.stats_state) AS s FROM sent),
                  whole AS (SELECT vigil.stats_agg(x) AS s FROM shards)
             SELECT vigil.num_vals(got.s) = 3000 AND vigil.num_vals(got.s) = vigil.num_vals(whole.s)
                    AND abs(vigil.mean(got.s) / vigil.mean(whole.s) - 1) < 1e-12
                    AND abs(vigil.stddev(got.s) / vigil.stddev(whole.s) - 1) < 1e-12
                    AND vigil.min_val(got.s) = vigil.min_val(whole.s) AND vigil.max_val(got.s) = vigil.max_val(whole.s)
             FROM got, whole",
        );
        assert_eq!(same, Some(true));
        // The text form round-trips exactly; the binary form is its bytes.
        assert_eq!(
            one::<bool>(
                "SELECT s::text::vigil.stats_state::text = s::text
                        AND octet_length(vigil.stats_state_send(s)) = 42
                 FROM (SELECT pg_temp.partial_stats(x) s FROM shards) p"
            ),
            Some(true)
        );
        for sql in [
            "SELECT vigil.stats_agg_trans(NULL, 1.0)",
            "SELECT vigil.stats_agg_trans(pg_temp.partial_stats(1.0)::text::vigil.stats_state, 1.0)",
            "SELECT vigil.stats_agg_combine(s, s) FROM (SELECT pg_temp.partial_stats(1.0) s) p",
            "SELECT vigil.stats_rollup_trans(NULL, vigil.stats_agg(1.0))",
        ] {
            let (code, msg) = sql_error(sql);
            assert_eq!(code, "ERRCODE_FEATURE_NOT_SUPPORTED", "{sql}: {msg}");
            assert!(msg.contains("can only be called by an aggregate"), "{sql}: {msg}");
        }
        for bad in ["stats_state:01", "x", "stats_state:02000000000000f03f000000000000f03f0000000000000000000000000000f03f000000000000f03f01"] {
            let (code, msg) = sql_error(&format!("SELECT '{bad}'::vigil.stats_state"));
            assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{bad}: {msg}");
            assert!(msg.contains("stats_state"), "{bad}: {msg}");
        }
    }

    #[pg_test]
    fn stats_agg_skips_nulls_rejects_nan_and_is_null_for_no_rows() {
        assert_eq!(one::<i64>("SELECT vigil.num_vals(vigil.stats_agg(x)) FROM (VALUES (1.0::float8), (NULL), (3.0)) v(x)"), Some(2));
        assert_eq!(
            one::<bool>(
                "SELECT vigil.stats_agg(x) IS NULL FROM (SELECT 1.0::float8 WHERE false) v(x)"
            ),
            Some(true)
        );
        assert_invalid(
            "SELECT vigil.stats_agg(x) FROM (VALUES (1.0::float8), ('NaN')) v(x)",
            "value must be a finite number",
        );
        assert_invalid(
            "SELECT vigil.stats_agg(x) FROM (VALUES ('-Infinity'::float8)) v(x)",
            "value must be a finite number",
        );
    }

    #[pg_test]
    fn statsagg_text_round_trips_and_rejects_garbage() {
        let text = one::<String>(
            "SELECT vigil.stats_agg(x)::text FROM (VALUES (0.1::float8), (0.2), (1e100)) v(x)",
        )
        .unwrap();
        let again = one::<String>(&format!("SELECT ('{text}'::vigil.statsagg)::text")).unwrap();
        assert_eq!(text, again);
        assert_eq!(
            one::<i64>("SELECT vigil.num_vals('(n:0)'::vigil.statsagg)"),
            Some(0)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.mean('(n:0)') IS NULL"),
            Some(true)
        );
        assert_invalid(
            "SELECT '(n:2,mean:1)'::vigil.statsagg",
            "statsagg text must look like",
        );
        assert_invalid(
            "SELECT '(n:2,mean:1.0,m2:-1.0,min:0.0,max:2.0)'::vigil.statsagg",
            "m2 must be >= 0",
        );
    }

    #[pg_test]
    fn removing_values_and_subtracting_summaries() {
        assert_eq!(
            one::<Vec<Option<f64>>>(
                "SELECT ARRAY[vigil.mean(s), vigil.min_val(s), vigil.max_val(s)]
                 FROM (SELECT vigil.remove_value(vigil.stats_agg(x), 2) s FROM generate_series(1, 3) x) q"
            ),
            Some(vec![Some(2.0), Some(1.0), Some(3.0)])
        );
        assert_eq!(
            one::<Vec<Option<f64>>>(
                "SELECT ARRAY[vigil.mean(s), vigil.min_val(s), vigil.max_val(s)]
                 FROM (SELECT vigil.remove_value(vigil.stats_agg(x), 3) s FROM generate_series(1, 3) x) q"
            ),
            Some(vec![Some(1.5), None, None])
        );
        let d = one::<f64>(
            "WITH a AS (SELECT vigil.stats_agg(x) s FROM generate_series(1, 100) x),
                  b AS (SELECT vigil.stats_agg(x) s FROM generate_series(101, 150) x)
             SELECT abs(vigil.stddev(vigil.subtract(vigil.merge(a.s, b.s), b.s)) - vigil.stddev(a.s)) FROM a, b",
        )
        .unwrap();
        assert!(d < 1e-9, "{d}");
        assert_invalid(
            "SELECT vigil.remove_value('(n:0)'::vigil.statsagg, 1)",
            "cannot remove a value from an empty summary",
        );
    }

    #[pg_test]
    fn zscore_and_is_anomaly() {
        assert_eq!(one::<f64>("SELECT vigil.zscore(13, 10, 1.5)"), Some(2.0));
        assert_eq!(
            one::<bool>("SELECT vigil.zscore(13, 10, 0) IS NULL"),
            Some(true)
        );
        assert_eq!(one::<f64>("SELECT vigil.zscore(vigil.stats_agg(x), 4) FROM (VALUES (1.0::float8), (3.0)) v(x)"), Some(2.0 / 2.0_f64.sqrt()));
        // A spread that is only float noise next to the mean is none.
        assert_eq!(
            one::<bool>("SELECT vigil.zscore(0.2, 0.3, 6e-17) IS NULL AND vigil.zscore(0.2, 0.3, 2e-9) < -1e7"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT vigil.zscore(vigil.stats_agg(0.3::float8), 0.2) IS NULL FROM generate_series(1, 30)"),
            Some(true)
        );
        assert_eq!(one::<bool>("SELECT vigil.is_anomaly(3)"), Some(false));
        assert_eq!(one::<bool>("SELECT vigil.is_anomaly(-3.01)"), Some(true));
        assert_eq!(
            one::<bool>("SELECT vigil.is_anomaly(2.5, threshold => 2)"),
            Some(true)
        );
        assert_invalid("SELECT vigil.zscore(1, 0, -1)", "stddev must be >= 0");
        assert_invalid("SELECT vigil.is_anomaly(1, -1)", "threshold must be >= 0");
    }

    #[pg_test]
    fn hour_of_week_is_monday_based_and_follows_dst() {
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-11-23 00:30Z')"),
            Some(0)
        ); // Monday
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-11-22 23:59Z')"),
            Some(167)
        ); // Sunday
           // New York springs forward on Sunday 2026-03-08: 01:30 EST, then 03:30 EDT.
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-03-08 06:30Z', 'America/New_York')"),
            Some(145)
        );
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-03-08 07:30Z', 'America/New_York')"),
            Some(147)
        );
        // ...and falls back on Sunday 2026-11-01: 01:30 happens twice.
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-11-01 05:30Z', 'America/New_York')"),
            Some(145)
        );
        assert_eq!(
            one::<i32>("SELECT vigil.hour_of_week('2026-11-01 06:30Z', 'America/New_York')"),
            Some(145)
        );
        assert_invalid(
            "SELECT vigil.hour_of_week(now(), 'Mars/Olympus')",
            "tz must be a time zone name",
        );
        assert_invalid(
            "SELECT vigil.hour_of_week('infinity')",
            "ts must be a finite timestamp",
        );
    }

    #[pg_test]
    fn statsagg_text_that_no_values_could_produce_is_refused() {
        assert_invalid(
            "SELECT '(n:2,mean:5.0,m2:0.0,min:1.0,max:3.0)'::vigil.statsagg",
            "outside",
        );
        assert_invalid(
            "SELECT '(n:2,mean:2.0,m2:100.0,min:1.0,max:3.0)'::vigil.statsagg",
            "m2",
        );
    }
}
