//! `#[pg_test]`s of the percentile sketches (`percentile_agg`, `sketch`), through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::{
        assert_invalid, assert_partial_and_finalize, force_parallel_plan, one, sql_error,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn sketch_state_crosses_nodes_as_text_and_stays_inside_aggregates() {
        assert_eq!(
            one::<String>(
                "SELECT string_agg(DISTINCT aggtranstype::regtype::text, ',')
                 FROM pg_aggregate WHERE aggfnoid::regprocedure::text IN
                     ('vigil.percentile_agg(double precision)', 'vigil.percentile_agg(double precision,double precision)',
                      'vigil.rollup(vigil.sketch)')"
            )
            .as_deref(),
            Some("vigil.sketch_state")
        );
        // Citus's way: a partial aggregate per shard, its state as text,
        // parsed and combined on the coordinator; exactly the one-pass
        // sketch. Then parallel-style combining of flat states, a rollup of
        // stored sketches, and window aggregates (the final function runs
        // on a live state that then grows, and moving frames restart it).
        Spi::run(
            "CREATE TEMP TABLE sk AS
                 SELECT g % 3 AS shard, g, CASE WHEN g % 7 = 0 THEN -1 ELSE 1 END * exp(g % 50) AS x
                 FROM generate_series(1, 3000) g;
             CREATE AGGREGATE pg_temp.partial_sketch(float8) (SFUNC = vigil.percentile_agg_trans, STYPE = vigil.sketch_state);
             CREATE AGGREGATE pg_temp.combined_sketch(vigil.sketch_state) (
                 SFUNC = vigil.sketch_combine, STYPE = vigil.sketch_state, FINALFUNC = vigil.sketch_final);",
        )
        .unwrap();
        assert_eq!(
            one::<bool>(
                "WITH sent AS (SELECT pg_temp.partial_sketch(x)::text AS t FROM sk GROUP BY shard),
                      got AS (SELECT pg_temp.combined_sketch(t::vigil.sketch_state) AS s FROM sent),
                      per_shard AS (SELECT vigil.percentile_agg(x) AS s FROM sk GROUP BY shard)
                 SELECT got.s::text = (SELECT vigil.percentile_agg(x)::text FROM sk)
                        AND got.s::text = (SELECT vigil.rollup(s)::text FROM per_shard)
                        AND vigil.num_vals(got.s) = 3000
                 FROM got"
            ),
            Some(true)
        );
        assert_eq!(
            one::<bool>(
                "SELECT bool_and(vigil.num_vals(running) = g AND vigil.num_vals(last3) = least(g, 3)
                                 AND abs(vigil.approx_percentile(last3, 1) - max3) <= 0.0101 * abs(max3))
                 FROM (SELECT g, vigil.percentile_agg(x) OVER (ORDER BY g) AS running,
                              vigil.percentile_agg(x) OVER (ORDER BY g ROWS 2 PRECEDING) AS last3,
                              max(x) OVER (ORDER BY g ROWS 2 PRECEDING) AS max3
                       FROM sk WHERE g <= 200) w"
            ),
            Some(true)
        );
        // The text and binary forms are a vigil.sketch's.
        assert_eq!(
            one::<bool>(
                "SELECT s::text = vigil.sketch_final(s)::text
                        AND s::text::vigil.sketch_state::text = s::text
                        AND vigil.sketch_state_send(s) = vigil.sketch_send(vigil.sketch_final(s))
                 FROM (SELECT pg_temp.partial_sketch(x) s FROM sk) p"
            ),
            Some(true)
        );
        for sql in [
            "SELECT vigil.percentile_agg_trans(NULL, 1.0)",
            "SELECT vigil.percentile_agg_trans(pg_temp.partial_sketch(1.0)::text::vigil.sketch_state, 1.0)",
            "SELECT vigil.sketch_combine(s, s) FROM (SELECT pg_temp.partial_sketch(1.0) s) p",
            "SELECT vigil.sketch_rollup_trans(NULL, vigil.percentile_agg(1.0))",
        ] {
            let (code, msg) = sql_error(sql);
            assert_eq!(code, "ERRCODE_FEATURE_NOT_SUPPORTED", "{sql}: {msg}");
            assert!(msg.contains("can only be called by an aggregate"), "{sql}: {msg}");
        }
        let (code, msg) = sql_error("SELECT 'x'::vigil.sketch_state");
        assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{msg}");
    }

    #[pg_test]
    fn percentile_agg_refuses_a_value_it_cannot_count_instead_of_dropping_it() {
        // At relative_error 0.0001, 1e-300 and 1e300 together need more
        // buckets than a sketch may have: the aggregate fails, it does not
        // answer as if the second value were not there.
        let (code, msg) = sql_error(
            "SELECT vigil.percentile_agg(x, 0.0001) FROM (VALUES (1e-300::float8), (1e300)) v(x)",
        );
        assert_eq!(code, "ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE", "{msg}");
        assert!(msg.contains("relative_error"), "{msg}");
        let (code, _) =
            sql_error("SELECT vigil.percentile_agg(x) FROM (VALUES (1::float8), ('NaN')) v(x)");
        assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE");
        assert_eq!(
            one::<i64>("SELECT vigil.num_vals(vigil.percentile_agg(x)) FROM (VALUES (1::float8), (1e300), (NULL)) v(x)"),
            Some(2)
        );
    }

    #[pg_test]
    fn percentile_agg_states_count_against_work_mem_so_hash_aggregation_spills() {
        // 600 groups of values spanning 1e-3 .. 1e9: ~11 kB of buckets
        // each, ~7 MB in all, against work_mem 1 MB. PostgreSQL sees the
        // buckets only if they live in the aggregate's memory context.
        Spi::run(
            "CREATE TABLE sk_wide AS
                 SELECT g, power(10, ((i * 7919) % 1200) / 100.0 - 3)::float8 AS x
                 FROM generate_series(0, 599) g, generate_series(1, 40) i;
             ANALYZE sk_wide;
             SET LOCAL work_mem = '1MB'; SET LOCAL enable_sort = off;
             SET LOCAL max_parallel_workers_per_gather = 0;
             CREATE FUNCTION pg_temp.batches() RETURNS int LANGUAGE plpgsql AS $$
             DECLARE p json;
             BEGIN
                 EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) SELECT g, vigil.percentile_agg(x) FROM sk_wide GROUP BY g' INTO p;
                 RETURN (p->0->'Plan'->>'HashAgg Batches')::int;
             END $$;",
        )
        .unwrap();
        let batches = one::<i32>("SELECT pg_temp.batches()").unwrap();
        assert!(
            batches > 1,
            "hash aggregate did not spill: {batches} batch(es)"
        );
        // Spilled or not, every value is counted once.
        assert_eq!(
            one::<i64>(
                "SELECT sum(vigil.num_vals(s))::bigint FROM (SELECT vigil.percentile_agg(x) s FROM sk_wide GROUP BY g) q"
            ),
            Some(24_000)
        );
    }

    #[pg_test]
    fn percentile_agg_quantiles_are_within_the_relative_error() {
        Spi::run(
            "CREATE TEMP TABLE lat AS
             SELECT CASE WHEN g % 10 = 0 THEN 0 ELSE exp((g % 1000) / 100.0) * (1 + (g % 7)) END::float8 AS x
             FROM generate_series(1, 30000) g",
        )
        .unwrap();
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0] {
            // the sketch answers the order statistic at rank floor(q(n-1))
            let (approx, exact) = Spi::get_two::<f64, f64>(&format!(
                "SELECT vigil.approx_percentile(vigil.percentile_agg(x), {q}),
                        (SELECT x FROM lat ORDER BY x OFFSET (SELECT floor({q} * (count(*) - 1))::int FROM lat) LIMIT 1)
                 FROM lat"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
            let (approx, exact) = (approx.unwrap(), exact.unwrap());
            assert!(
                (approx - exact).abs() <= 0.01 * exact.abs() + 1e-300,
                "q={q}: {approx} vs {exact}"
            );
        }
        let coarse =
            one::<f64>("SELECT vigil.relative_error(vigil.percentile_agg(x, 0.05)) FROM lat");
        assert_eq!(coarse, Some(0.05));
    }

    #[pg_test]
    fn percentile_agg_runs_in_parallel_and_rolls_up() {
        Spi::run(
            "CREATE TABLE plat AS SELECT (g % 5000)::float8 + 0.5 AS x, g % 4 AS k FROM generate_series(1, 100000) g;
             ANALYZE plat",
        )
        .unwrap();
        let serial = one::<String>("SELECT vigil.percentile_agg(x)::text FROM plat").unwrap();
        let rolled = one::<String>(
            "SELECT vigil.rollup(s)::text FROM (SELECT vigil.percentile_agg(x) s FROM plat GROUP BY k) q",
        )
        .unwrap();
        assert_eq!(serial, rolled);
        force_parallel_plan();
        assert_partial_and_finalize("SELECT vigil.percentile_agg(x) FROM plat");
        let parallel = one::<String>("SELECT vigil.percentile_agg(x)::text FROM plat").unwrap();
        assert_eq!(
            serial, parallel,
            "bucket counts must not depend on the plan"
        );
    }

    #[pg_test]
    fn sketch_values_can_be_removed_and_round_trip_as_text() {
        let after = one::<String>(
            "SELECT vigil.remove_value(vigil.percentile_agg(x), 3)::text FROM (VALUES (1.0::float8), (3), (-2), (0)) v(x)",
        )
        .unwrap();
        let direct = one::<String>(
            "SELECT vigil.percentile_agg(x)::text FROM (VALUES (1.0::float8), (-2), (0)) v(x)",
        )
        .unwrap();
        assert_eq!(after, direct);
        assert_eq!(
            one::<String>(&format!("SELECT ('{direct}'::vigil.sketch)::text")),
            Some(direct.clone())
        );
        assert_eq!(
            one::<i64>(&format!("SELECT vigil.num_vals('{direct}'::vigil.sketch)")),
            Some(3)
        );
        assert_eq!(
            one::<bool>(
                "SELECT vigil.percentile_agg(x) IS NULL FROM (SELECT 1.0::float8 WHERE false) v(x)"
            ),
            Some(true)
        );
        assert_invalid("SELECT vigil.remove_value(vigil.percentile_agg(x), 500) FROM (VALUES (1.0::float8)) v(x)", "value 500 cannot be removed");
        assert_invalid(
            "SELECT vigil.percentile_agg(x) FROM (VALUES ('Infinity'::float8)) v(x)",
            "value must be a finite number",
        );
        assert_invalid(
            "SELECT vigil.percentile_agg(x, 0.9) FROM (VALUES (1.0::float8)) v(x)",
            "relative_error must be between",
        );
        let (code, msg) = sql_error(
            "SELECT vigil.approx_percentile(vigil.percentile_agg(x), -0.1) FROM (VALUES (1.0::float8)) v(x)",
        );
        assert_eq!(code, "ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE", "{msg}");
        assert!(msg.starts_with("q must be between 0 and 1"), "{msg}");
        assert_invalid("SELECT 'garbage'::vigil.sketch", "sketch");
    }
}
