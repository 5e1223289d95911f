//! `#[pg_test]`s of scans at the seed's boundaries: a value exactly at a
//! threshold the seed calls "above" does not alert, one just over does; an
//! inclusive threshold is met exactly even on numeric columns; a baseline
//! without spread yields no z-score, no anomaly and no prediction.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    /// `entity:severity` of the monitor's alerts of one type, by entity.
    fn alerts(monitor: &str, anomaly_type: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT coalesce(string_agg(entity || ':' || severity, ',' ORDER BY entity), '')
             FROM vigil.alerts WHERE monitor = $1 AND anomaly_type = $2",
            &[monitor.into(), anomaly_type.into()],
        )
        .unwrap()
        .unwrap_or_default()
    }

    fn scan(monitor: &str) -> pgrx::JsonB {
        let report =
            Spi::get_one_with_args::<pgrx::JsonB>("SELECT vigil.scan($1)", &[monitor.into()])
                .unwrap()
                .unwrap();
        assert_eq!(report.0["success"], true, "{}", report.0);
        report
    }

    #[pg_test]
    fn a_drop_of_exactly_10_on_a_numeric_column_is_a_medium_alert() {
        // 71.8, 77.3, 69.6 average 72.9 exactly; in float8 the drop to 62.9
        // comes out as 9.999999999999993.
        Spi::run(
            "CREATE TABLE public.boundary_health (client text, at timestamptz, score numeric(4,1));
             INSERT INTO public.boundary_health
             SELECT c, now() - (4 - i) * interval '1 day', s
             FROM (VALUES ('exact'), ('under'), ('over')) e(c),
                  unnest('{71.8, 77.3, 69.6}'::numeric[]) WITH ORDINALITY b(s, i);
             INSERT INTO public.boundary_health VALUES
                 ('exact', now() - interval '1 hour', 62.9),
                 ('under', now() - interval '1 hour', 63.0),
                 ('over', now() - interval '1 hour', 62.8);
             SELECT vigil.create_monitor('boundary_drop', 'drop', 'public.boundary_health',
                 '{\"entity\": \"client\", \"time\": \"at\", \"value\": \"score\",
                   \"zones\": {\"red\": 62.9, \"yellow\": 70}}');",
        )
        .unwrap();
        scan("boundary_drop");
        assert_eq!(alerts("boundary_drop", "drop"), "exact:medium,over:medium");
        assert_eq!(
            one::<String>(
                "SELECT details->>'drop_points' || ' ' || (details->>'zone')
                 FROM vigil.alerts WHERE monitor = 'boundary_drop' AND entity = 'exact'"
            ),
            // 62.9 is not below a red zone of 62.9.
            Some("10.00 YELLOW".into())
        );
    }

    /// Rows of `public.boundary_events` in the hour-of-week slot `w` weeks
    /// back (0: the last complete hour), `n` per entity, as the scan counts them.
    fn events(rows: &str) {
        Spi::run(&format!(
            "INSERT INTO public.boundary_events
             SELECT e, date_trunc('hour', now()) - interval '1 hour' - w * interval '1 week'
                       + interval '10 minutes'
             FROM (VALUES {rows}) v(e, w, n), generate_series(1, v.n)"
        ))
        .unwrap();
    }

    #[pg_test]
    fn a_zscore_of_exactly_3_is_no_anomaly_and_just_over_is() {
        Spi::run("CREATE TABLE public.boundary_events (creator text, at timestamptz)").unwrap();
        // Baseline 8, 10, 12: mean 10, sample stddev 2. Now 16 is z = 3
        // exactly, 17 is z = 3.5; a flat baseline has no z at all.
        events(
            "('at3', 1, 8), ('at3', 2, 10), ('at3', 3, 12), ('at3', 0, 16),
             ('over3', 1, 8), ('over3', 2, 10), ('over3', 3, 12), ('over3', 0, 17),
             ('flat', 1, 10), ('flat', 2, 10), ('flat', 3, 10), ('flat', 0, 40)",
        );
        let options = r#"{"entity": "creator", "time": "at", "baseline_days": 21, "min_weeks": 3}"#;
        Spi::run_with_args(
            "SELECT vigil.create_monitor('boundary_z', 'zscore', 'public.boundary_events', $1::jsonb)",
            &[options.into()],
        )
        .unwrap();
        scan("boundary_z");
        assert_eq!(alerts("boundary_z", "zscore_anomaly"), "over3:medium");
        // A probe just below 3 shows the scan saw z = 3 for at3, so the
        // case above really sits on the boundary.
        Spi::run(
            "SELECT vigil.create_monitor('boundary_z_probe', 'zscore', 'public.boundary_events',
                 '{\"entity\": \"creator\", \"time\": \"at\", \"baseline_days\": 21, \"min_weeks\": 3,
                   \"anomaly_type\": \"z_probe\", \"thresholds\": {\"medium\": 2.999}}')",
        )
        .unwrap();
        scan("boundary_z_probe");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity || '=' || (details->>'z'), ',' ORDER BY entity)
                 FROM vigil.alerts WHERE anomaly_type = 'z_probe'"
            ),
            Some("at3=3.000,over3=3.500".into())
        );
    }

    /// 20 baseline days (2 to 21 days ago: none yesterday, so no decline
    /// chain) of 15 messages, 6 converted: daily baseline 300 / 30 = 10
    /// messages, conversion 0.4.
    fn messages_with_baseline(creator: &str) {
        Spi::run_with_args(
            "INSERT INTO public.boundary_messages
             SELECT $1, now() - d * interval '1 day' - interval '1 hour', i <= 6
             FROM generate_series(2, 21) d, generate_series(1, 15) i",
            &[creator.into()],
        )
        .unwrap();
    }

    fn messages_today(creator: &str, sent: i32, converted: i32) {
        Spi::run_with_args(
            "INSERT INTO public.boundary_messages
             SELECT $1, now() - interval '1 hour', i <= $3 FROM generate_series(1, $2) i",
            &[creator.into(), sent.into(), converted.into()],
        )
        .unwrap();
    }

    #[pg_test]
    fn an_exhaustion_score_of_exactly_70_is_no_alert_and_75_is() {
        Spi::run("CREATE TABLE public.boundary_messages (creator text, at timestamptz, paid bool)")
            .unwrap();
        // Today 25 messages (2.5 × baseline: +45) converting at 0.2 (half
        // the baseline: +25) scores exactly 70; converting at 0.16, 75.
        for (creator, converted) in [("at70", 5), ("over70", 4)] {
            messages_with_baseline(creator);
            messages_today(creator, 25, converted);
        }
        Spi::run(
            "SELECT vigil.create_monitor('boundary_sat', 'saturation', 'public.boundary_messages',
                 '{\"entity\": \"creator\", \"time\": \"at\", \"converted\": {\"paid\": true}}')",
        )
        .unwrap();
        scan("boundary_sat");
        assert_eq!(alerts("boundary_sat", "exhaustion"), "over70:high");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity || '=' || (details->>'exhaustion_score'), ',' ORDER BY entity)
                 FROM vigil.alerts WHERE monitor = 'boundary_sat' AND anomaly_type = 'saturation'"
            ),
            Some("at70=70.0,over70=75.0".into())
        );
    }

    #[pg_test]
    fn a_conversion_without_spread_has_no_zscore_and_predicts_nothing() {
        Spi::run(
            "CREATE TABLE public.boundary_messages (creator text, at timestamptz, paid bool);
             -- 30 days converting at exactly 0.3 (3 of 10, 6 of 20), whose
             -- stddev_samp is 6e-17, not 0; today 40 messages at 0.2.
             INSERT INTO public.boundary_messages
             SELECT 'flat', now() - d * interval '1 day' - interval '1 hour', i <= 3 * (1 + d % 2)
             FROM generate_series(1, 30) d, generate_series(1, 10 * (1 + d % 2)) i;
             INSERT INTO public.boundary_messages
             SELECT 'flat', now() - interval '1 hour', i <= 8 FROM generate_series(1, 40) i;
             SELECT vigil.create_monitor('boundary_flat', 'saturation', 'public.boundary_messages',
                 '{\"entity\": \"creator\", \"time\": \"at\", \"converted\": {\"paid\": true}}');",
        )
        .unwrap();
        assert!(
            one::<f64>(
                "SELECT stddev_samp(r) FROM (SELECT (3 * (1 + d % 2))::float8 / (10 * (1 + d % 2)) AS r
                 FROM generate_series(1, 30) d) x"
            )
            .unwrap()
                > 0.0,
            "the case needs a baseline whose stddev is float noise, not 0"
        );
        let report = scan("boundary_flat");
        assert_eq!(
            report.0["predictions"],
            serde_json::json!([]),
            "{}",
            report.0
        );
        assert_eq!(
            one::<String>(
                "SELECT (details->'conversion_z')::text || ' ' || (details->>'volume_z')
                 FROM vigil.alerts WHERE monitor = 'boundary_flat' AND anomaly_type = 'saturation'"
            ),
            Some("null 4.92".into())
        );
    }

    #[pg_test]
    fn freshness_alerts_on_sources_and_entities_whose_newest_row_is_too_old() {
        // A feed per source: stripe's newest row is 30 minutes old, hubspot's
        // 7 hours, salesforce's 2 days; an empty table is the worst level.
        Spi::run(
            "CREATE TABLE public.fresh_feed (source text, at timestamptz);
             INSERT INTO public.fresh_feed VALUES
                 ('stripe', now() - interval '3 days'), ('stripe', now() - interval '30 minutes'),
                 ('hubspot', now() - interval '7 hours'), ('salesforce', now() - interval '2 days');
             CREATE TABLE public.fresh_empty (at timestamptz);
             SELECT vigil.create_monitor('fresh_sources', 'freshness', 'public.fresh_feed',
                 '{\"entity\": \"source\", \"time\": \"at\", \"label\": \"feeds\",
                   \"thresholds\": {\"medium\": \"6 hours\", \"critical\": \"1 day\"}}');
             SELECT vigil.create_monitor('fresh_nothing', 'freshness', 'public.fresh_empty',
                 '{\"time\": \"at\", \"thresholds\": {\"medium\": \"1 hour\", \"high\": \"2 hours\"}}');",
        )
        .unwrap();
        let report = scan("fresh_sources");
        assert_eq!(
            alerts("fresh_sources", "freshness"),
            "hubspot:medium,salesforce:critical"
        );
        assert_eq!(
            report.0["insights"],
            serde_json::json!(["2 feeds stale. Longest lag: 48.0 hours."])
        );
        assert_eq!(
            one::<String>(
                "SELECT title FROM vigil.alerts WHERE monitor = 'fresh_sources' AND entity = 'salesforce'"
            )
            .as_deref(),
            Some("No new rows for 2 days")
        );
        scan("fresh_nothing");
        assert_eq!(alerts("fresh_nothing", "freshness"), "fresh_nothing:high");
        // Rows arrive: the next scan resolves both.
        Spi::run(
            "INSERT INTO public.fresh_feed VALUES ('hubspot', now()), ('salesforce', now());
             INSERT INTO public.fresh_empty VALUES (now());",
        )
        .unwrap();
        let report = scan("fresh_sources");
        assert_eq!(report.0["alerts_resolved"], 2);
        let report = scan("fresh_nothing");
        assert_eq!(report.0["alerts_resolved"], 1);
    }

    fn refusal(sql: &str) -> String {
        let e = crate::security::catching_failure(|| Spi::run(sql)).expect_err("should be refused");
        format!("{}: {}", e.sqlstate, e.message)
    }

    #[pg_test]
    fn monitors_read_a_rollups_buckets_instead_of_raw_rows() {
        // 30 days of baseline per creator (20 messages a day, 4 paid), then
        // today: c1 as usual, c2 three times the messages at a quarter of
        // the conversion. Rows are placed inside UTC days, as daily buckets
        // count them.
        Spi::run(
            "CREATE TABLE public.sat_src (creator text, ts timestamptz, paid bool);
             INSERT INTO public.sat_src
             SELECT c, date_trunc('day', now()) - k * interval '1 day' + interval '1 hour', i <= 4
             FROM unnest(ARRAY['c1', 'c2']) c, generate_series(1, 30) k, generate_series(1, 20) i;
             INSERT INTO public.sat_src
             SELECT 'c1', date_trunc('day', now()), i <= 4 FROM generate_series(1, 20) i
             UNION ALL
             SELECT 'c2', date_trunc('day', now()), i <= 3 FROM generate_series(1, 60) i;
             -- c3 converts less each day for four days: predicted saturation.
             INSERT INTO public.sat_src
             SELECT 'c3', date_trunc('day', now()) - k * interval '1 day' + interval '1 hour',
                    i <= CASE WHEN k >= 4 THEN 4 ELSE k END
             FROM generate_series(1, 30) k, generate_series(1, 20) i
             UNION ALL
             SELECT 'c3', date_trunc('day', now()), false FROM generate_series(1, 20) i;
             SELECT vigil.create_rollup('public.sat_daily', 'public.sat_src', 'ts', '1 day', '{creator}',
                 '{\"messages\": {\"agg\": \"count\"}, \"paid\": {\"agg\": \"count\", \"filter\": \"paid\"}}');
             SELECT vigil.create_monitor('sat_rollup', 'saturation', 'public.sat_daily',
                 '{\"entity\": \"creator\", \"time\": \"bucket\", \"converted_count\": \"paid\",
                   \"label\": \"creators\", \"predicted_severity\": \"low\"}');
             SELECT vigil.create_monitor('count_rollup', 'count', 'public.sat_daily',
                 '{\"entity\": \"creator\", \"thresholds\": {\"medium\": 1}}');",
        )
        .unwrap();
        let report = scan("sat_rollup");
        assert_eq!(alerts("sat_rollup", "saturation"), "c2:high");
        // The predicted saturation is an alert of its own, at the severity
        // asked for, and still a prediction in the report.
        assert_eq!(alerts("sat_rollup", "saturation_predicted"), "c3:low");
        assert_eq!(
            one::<String>(
                "SELECT title FROM vigil.alerts WHERE monitor = 'sat_rollup' AND anomaly_type = 'saturation_predicted'"
            )
            .as_deref(),
            Some("Heading for saturation: conversion z -5.7, volume z n/a, 4 day(s) of decline")
        );
        assert!(report.0["insights"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("1 creators heading for saturation.")));
        assert_eq!(report.0["predictions"][0]["entity"], "c3");
        assert_eq!(
            one::<String>(
                "SELECT (details->>'messages_24h') || ' ' || (details->>'baseline_daily_messages') || ' ' || (details->>'conversion_24h')
                 FROM vigil.alerts WHERE monitor = 'sat_rollup'"
            )
            .as_deref(),
            Some("60 20.00 0.0500")
        );
        // Counting a summary counts the raw rows its groups hold.
        scan("count_rollup");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity || '=' || (details->>'count'), ',' ORDER BY entity)
                 FROM vigil.alerts WHERE monitor = 'count_rollup'"
            ),
            one::<String>(
                "SELECT string_agg(creator || '=' || n, ',' ORDER BY creator)
                 FROM (SELECT creator, count(*) AS n FROM public.sat_src GROUP BY 1) r"
            )
        );
        // What a summary cannot answer is refused when the monitor is made.
        for (sql, want) in [
            (
                "SELECT vigil.create_monitor('r1', 'stall', 'public.sat_daily', '{\"entity\": \"creator\", \"time\": \"bucket\", \"thresholds\": {\"medium\": \"1 day\"}}')",
                "22023: source: kind stall reads raw rows",
            ),
            (
                "SELECT vigil.create_monitor('r2', 'count', 'public.sat_daily', '{\"entity\": \"creator\", \"time\": \"messages\", \"thresholds\": {\"medium\": 1}}')",
                "42804: options.time: column \"messages\" is bigint",
            ),
            (
                "SELECT vigil.create_monitor('r3', 'count', 'public.sat_daily', '{\"entity\": \"creator\", \"filter\": {\"paid\": 1}, \"thresholds\": {\"medium\": 1}}')",
                "22023: options.filter: \"paid\" is not a group column of the rollup",
            ),
            (
                "SELECT vigil.create_monitor('r4', 'saturation', 'public.sat_daily', '{\"entity\": \"creator\", \"time\": \"bucket\", \"converted\": {\"creator\": \"c1\"}}')",
                "22023: options.converted filters raw rows",
            ),
            (
                "SELECT vigil.create_monitor('r5', 'zscore', 'public.sat_daily', '{\"entity\": \"creator\", \"time\": \"bucket\"}')",
                "22023: source: the zscore kind compares hours; the rollup's bucket (86400 s)",
            ),
            (
                "SELECT vigil.create_monitor('r6', 'threshold', 'public.sat_daily', '{\"entity\": \"creator\", \"time\": \"bucket\", \"value\": \"messages\", \"agg\": \"min\", \"op\": \">\", \"threshold\": 1}')",
                "22023: options.value: measure \"messages\" is a count measure; options.agg needs a min or stats measure",
            ),
        ] {
            let got = refusal(sql);
            assert!(got.starts_with(want), "{sql}: {got}");
        }
    }

    #[pg_test]
    fn a_drop_monitor_over_a_rollup_compares_its_latest_bucket_with_the_others() {
        // One score a day for a week at 80; today c2 scores 65 (a drop of
        // 15: high), c3 70 (10: medium), c1 80. Daily buckets hold one
        // sample each, so over the rollup the figures equal the raw ones.
        Spi::run(
            "CREATE TABLE public.scores (client text, ts timestamptz, score numeric(4,1));
             INSERT INTO public.scores
             SELECT c, date_trunc('day', now()) - k * interval '1 day' + interval '1 hour', 80.0
             FROM unnest(ARRAY['c1', 'c2', 'c3']) c, generate_series(1, 6) k;
             INSERT INTO public.scores VALUES ('c1', date_trunc('day', now()), 80.0),
                 ('c2', date_trunc('day', now()), 65.0), ('c3', date_trunc('day', now()), 70.0);
             SELECT vigil.create_rollup('public.scores_daily', 'public.scores', 'ts', '1 day', '{client}',
                 '{\"mean\": {\"agg\": \"avg\", \"column\": \"score\"}, \"total\": {\"agg\": \"sum\", \"column\": \"score\"},
                   \"lo\": {\"agg\": \"min\", \"column\": \"score\"}, \"p\": {\"agg\": \"percentile\", \"column\": \"score\"}}');
             SELECT vigil.create_monitor('drop_raw', 'drop', 'public.scores',
                 '{\"entity\": \"client\", \"time\": \"ts\", \"value\": \"score\"}');
             SELECT vigil.create_monitor('drop_mean', 'drop', 'public.scores_daily',
                 '{\"entity\": \"client\", \"time\": \"bucket\", \"value\": \"mean\"}');
             SELECT vigil.create_monitor('drop_total', 'drop', 'public.scores_daily',
                 '{\"entity\": \"client\", \"time\": \"bucket\", \"value\": \"total\"}');
             SELECT vigil.create_monitor('drop_lo', 'drop', 'public.scores_daily',
                 '{\"entity\": \"client\", \"time\": \"bucket\", \"value\": \"lo\"}');",
        )
        .unwrap();
        for m in ["drop_raw", "drop_mean", "drop_total", "drop_lo"] {
            scan(m);
            assert_eq!(alerts(m, "drop"), "c2:high,c3:medium", "{m}");
        }
        let details = |m: &str| {
            one::<String>(&format!(
                "SELECT string_agg((details->>'current') || '/' || (details->>'average') || '/' || (details->>'drop_points'), ' ' ORDER BY entity)
                 FROM vigil.alerts WHERE monitor = '{m}'"
            ))
        };
        assert_eq!(
            details("drop_raw").as_deref(),
            Some("65.00/80.00/15.00 70.00/80.00/10.00")
        );
        for m in ["drop_mean", "drop_total", "drop_lo"] {
            assert_eq!(details(m), details("drop_raw"), "{m}");
        }
        // A bucket emptied by deletions is no sample: with today's rows
        // gone, yesterday is the latest and nothing dropped.
        Spi::run(
            "DELETE FROM public.scores WHERE ts = date_trunc('day', now());
             SELECT vigil.resolve(id) FROM vigil.alerts WHERE monitor = 'drop_total';",
        )
        .unwrap();
        scan("drop_total");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.alerts WHERE monitor = 'drop_total' AND status = 'firing'"),
            Some(0)
        );
        let got = refusal(
            "SELECT vigil.create_monitor('drop_p', 'drop', 'public.scores_daily', '{\"entity\": \"client\", \"time\": \"bucket\", \"value\": \"p\"}')",
        );
        assert!(
            got.starts_with(
                "42804: options.value: column \"p\" is vigil.sketch, expected a numeric column"
            ),
            "{got}"
        );
    }

    #[pg_test]
    fn a_drop_monitor_over_float_measures_merges_each_bucket_in_one_aggregate() {
        // Two float8 scores a day for a week (80 and 82); today c2 scores
        // 60 and 70, c3 70 and 72, c1 as usual. Float8 measures take
        // vigil._drop_buckets: each bucket's value is its mean, sum, min
        // or max of two scores.
        Spi::run(
            "CREATE TABLE public.fscores (client text, ts timestamptz, score float8);
             INSERT INTO public.fscores
             SELECT c, date_trunc('day', now()) - k * interval '1 day' + h * interval '1 hour', 78 + 2 * h
             FROM unnest(ARRAY['c1', 'c2', 'c3']) c, generate_series(1, 6) k, generate_series(1, 2) h;
             INSERT INTO public.fscores VALUES
                 ('c1', date_trunc('day', now()), 80), ('c1', date_trunc('day', now()), 82),
                 ('c2', date_trunc('day', now()), 60), ('c2', date_trunc('day', now()), 70),
                 ('c3', date_trunc('day', now()), 70), ('c3', date_trunc('day', now()), 72);
             SELECT vigil.create_rollup('public.fscores_daily', 'public.fscores', 'ts', '1 day', '{client}',
                 '{\"mean\": {\"agg\": \"avg\", \"column\": \"score\"}, \"total\": {\"agg\": \"sum\", \"column\": \"score\"},
                   \"lo\": {\"agg\": \"min\", \"column\": \"score\"}, \"hi\": {\"agg\": \"max\", \"column\": \"score\"}}');",
        )
        .unwrap();
        for (m, want, details) in [
            (
                "mean",
                "c2:high,c3:medium",
                "65.00/81.00/16.00 71.00/81.00/10.00",
            ),
            (
                "total",
                "c2:critical,c3:high",
                "130.00/162.00/32.00 142.00/162.00/20.00",
            ),
            (
                "lo",
                "c2:high,c3:medium",
                "60.00/80.00/20.00 70.00/80.00/10.00",
            ),
            (
                "hi",
                "c2:medium,c3:medium",
                "70.00/82.00/12.00 72.00/82.00/10.00",
            ),
        ] {
            let name = format!("fdrop_{m}");
            Spi::run(&format!(
                "SELECT vigil.create_monitor('{name}', 'drop', 'public.fscores_daily',
                     '{{\"entity\": \"client\", \"time\": \"bucket\", \"value\": \"{m}\"}}')"
            ))
            .unwrap();
            scan(&name);
            assert_eq!(alerts(&name, "drop"), want, "{m}");
            assert_eq!(
                one::<String>(&format!(
                    "SELECT string_agg((details->>'current') || '/' || (details->>'average') || '/' || (details->>'drop_points'), ' ' ORDER BY entity)
                     FROM vigil.alerts WHERE monitor = '{name}'"
                ))
                .as_deref(),
                Some(details),
                "{m}"
            );
        }
        // Today's rows deleted: their buckets are emptied, yesterday is the
        // latest sample and nothing dropped.
        Spi::run(
            "DELETE FROM public.fscores WHERE ts = date_trunc('day', now());
             SELECT vigil.resolve(id) FROM vigil.alerts WHERE monitor LIKE 'fdrop_%';",
        )
        .unwrap();
        for m in ["mean", "total", "lo", "hi"] {
            scan(&format!("fdrop_{m}"));
        }
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.alerts WHERE monitor LIKE 'fdrop_%' AND status = 'firing'"),
            Some(0)
        );
    }

    #[pg_test]
    fn a_monitors_actions_run_once_per_new_alert_as_its_creator() {
        Spi::run(
            "CREATE ROLE act_owner;
             GRANT vigil_admin TO act_owner;
             CREATE TABLE public.act_src (source text, at timestamptz DEFAULT now());
             INSERT INTO public.act_src (source) VALUES ('stripe'), ('stripe'), ('hubspot');
             GRANT SELECT ON public.act_src TO act_owner;
             CREATE TABLE public.act_log (who text, entity text, alert_id bigint);
             GRANT INSERT ON public.act_log TO act_owner;
             CREATE PROCEDURE public.pause_source(alert jsonb) LANGUAGE sql AS
                 $$ INSERT INTO public.act_log VALUES (current_user, alert->>'entity', (alert->>'alert_id')::bigint) $$;
             CREATE PROCEDURE public.broken_action(alert jsonb) LANGUAGE sql AS $$ SELECT 1 / 0 $$;
             SELECT vigil.create_channel('act-hook', 'webhook', 'http://127.0.0.1:9/act');
             SET ROLE act_owner;
             SELECT vigil.create_monitor('act_count', 'count', 'public.act_src',
                 '{\"entity\": \"source\", \"thresholds\": {\"medium\": 1},
                   \"action_channel\": \"act-hook\", \"action_procedure\": \"public.pause_source\"}');
             SELECT vigil.create_monitor('act_broken', 'count', 'public.act_src',
                 '{\"entity\": \"source\", \"thresholds\": {\"medium\": 2}, \"action_procedure\": \"public.broken_action\"}');
             RESET ROLE;",
        )
        .unwrap();
        let report = scan("act_count");
        assert_eq!(report.0["monitors"][0]["actions"], 4, "{}", report.0);
        // The procedure ran as the monitor's creator, once per new alert.
        assert_eq!(
            one::<String>(
                "SELECT string_agg(who || ':' || entity, ',' ORDER BY entity) FROM public.act_log"
            )
            .as_deref(),
            Some("act_owner:hubspot,act_owner:stripe")
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM vigil.notifications n JOIN vigil.alerts a
                   ON n.idempotency_key = 'action:act_count:' || a.id
                 WHERE a.monitor = 'act_count' AND n.payload->>'action' = 'monitor_fired'"
            ),
            Some(2)
        );
        // Repeats of open alerts run nothing again.
        scan("act_count");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.act_log"), Some(2));
        // A failing action is reported; its alert is raised all the same.
        let report = scan("act_broken");
        let m = &report.0["monitors"][0];
        assert_eq!(m["anomalies"], 1, "{}", report.0);
        assert_eq!(m["actions"], 0);
        assert!(
            m["action_errors"][0]["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("22012: division by zero"),
            "{m}"
        );
        assert_eq!(alerts("act_broken", "count"), "stripe:medium");
        // Unqualified or inaccessible procedures are refused at the call.
        Spi::run(
            "REVOKE EXECUTE ON PROCEDURE public.broken_action(jsonb) FROM PUBLIC;
             UPDATE vigil.alerts SET status = 'resolved', resolved_at = now() WHERE monitor = 'act_broken';",
        )
        .unwrap();
        let report = scan("act_broken");
        assert!(
            report.0["monitors"][0]["action_errors"][0]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("may not EXECUTE public.broken_action"),
            "{}",
            report.0
        );
    }

    #[pg_test]
    fn zscore_and_threshold_monitors_watch_a_ratio() {
        // Conversion per hour: the same hour of five earlier weeks converted
        // 18-22 of 100 messages; the last complete hour 5 of 100 (c1), 20 of
        // 100 (c2). Hours without messages have no conversion at all.
        Spi::run(
            "CREATE TABLE public.conv_src (creator text, ts timestamptz, status text);
             INSERT INTO public.conv_src
             SELECT c, date_trunc('hour', now()) - interval '1 hour' - w * interval '1 week' + interval '10 minutes',
                    CASE WHEN i <= 18 + w THEN 'paid' ELSE 'free' END
             FROM unnest(ARRAY['c1', 'c2']) c, generate_series(0, 5) w, generate_series(1, 100) i
             WHERE w > 0;
             INSERT INTO public.conv_src
             SELECT c, date_trunc('hour', now()) - interval '50 minutes', CASE WHEN i <= p THEN 'paid' ELSE 'free' END
             FROM (VALUES ('c1', 5), ('c2', 20)) v(c, p), generate_series(1, 100) i;
             SELECT vigil.create_monitor('conv_z', 'zscore', 'public.conv_src',
                 '{\"entity\": \"creator\", \"time\": \"ts\", \"baseline_days\": 42, \"min_weeks\": 4,
                   \"metric_name\": \"conversion\",
                   \"ratio\": {\"numerator\": {\"status\": \"paid\"}, \"denominator\": {}}}');
             SELECT vigil.create_monitor('conv_low', 'threshold', 'public.conv_src',
                 '{\"entity\": \"creator\", \"time\": \"ts\", \"lookback\": \"2 hours\", \"op\": \"<\",
                   \"threshold\": 0.1, \"metric_name\": \"conversion\",
                   \"ratio\": {\"numerator\": {\"status\": \"paid\"}, \"denominator\": {}}}');
             SELECT vigil.create_rollup('public.conv_hourly', 'public.conv_src', 'ts', '1 hour', '{creator}',
                 '{\"messages\": {\"agg\": \"count\"}, \"paid\": {\"agg\": \"count\", \"filter\": \"status = ''paid''\"}}');
             SELECT vigil.create_monitor('conv_z_rollup', 'zscore', 'public.conv_hourly',
                 '{\"entity\": \"creator\", \"time\": \"bucket\", \"baseline_days\": 42, \"min_weeks\": 4,
                   \"metric_name\": \"conversion\", \"ratio\": {\"numerator\": \"paid\", \"denominator\": \"messages\"}}');",
        )
        .unwrap();
        let report = scan("conv_z");
        assert_eq!(
            alerts("conv_z", "zscore_anomaly"),
            "c1:critical",
            "{}",
            report.0
        );
        assert_eq!(
            one::<String>(
                "SELECT (details->>'current') || ' ' || (details->>'mean') || ' ' || (details->>'weeks')
                 FROM vigil.alerts WHERE monitor = 'conv_z'"
            )
            .as_deref(),
            Some("0.05 0.210 5")
        );
        // The same from the hourly rollup's measures.
        scan("conv_z_rollup");
        assert_eq!(alerts("conv_z_rollup", "zscore_anomaly"), "c1:critical");
        scan("conv_low");
        assert_eq!(alerts("conv_low", "threshold"), "c1:medium");
        assert_eq!(
            one::<String>("SELECT title FROM vigil.alerts WHERE monitor = 'conv_low'").as_deref(),
            Some("conversion 0.0500 < 0.1")
        );
        let got = refusal(
            "SELECT vigil.create_monitor('conv_bad', 'threshold', 'public.conv_hourly',
                 '{\"entity\": \"creator\", \"time\": \"bucket\", \"op\": \"<\", \"threshold\": 0.1,
                   \"ratio\": {\"numerator\": {\"creator\": \"c1\"}, \"denominator\": {}}}')",
        );
        assert!(
            got.starts_with("22023: options.ratio.numerator: a filter counts raw rows"),
            "{got}"
        );
        let got = refusal(
            "SELECT vigil.create_monitor('conv_bad', 'zscore', 'public.conv_src',
                 '{\"entity\": \"creator\", \"time\": \"ts\", \"ratio\": {\"numerator\": \"status\", \"denominator\": {}}}')",
        );
        assert!(
            got.starts_with("42804: options.ratio.numerator: column \"status\" is text"),
            "{got}"
        );
    }

    #[pg_test]
    fn a_health_monitor_alerts_on_broken_rollups_and_failing_monitors() {
        Spi::run(
            "CREATE ROLE health_owner;
             GRANT vigil_admin TO health_owner;
             CREATE TABLE public.h_src (k text, ts timestamptz DEFAULT now(), gone int);
             INSERT INTO public.h_src (k) VALUES ('a');
             SELECT vigil.create_rollup('public.h_roll', 'public.h_src', 'ts', '1 hour', '{k}', '{\"n\": {\"agg\": \"count\"}}');
             ALTER TABLE public.h_src DISABLE TRIGGER USER;
             CREATE TABLE public.h_other (k text, gone timestamptz);
             SELECT vigil.create_monitor('h_failing', 'count', 'public.h_other',
                 '{\"entity\": \"k\", \"time\": \"gone\", \"thresholds\": {\"medium\": 1}}');
             ALTER TABLE public.h_other DROP COLUMN gone;
             SET ROLE health_owner;
             SELECT vigil.create_monitor('h_vigil', 'health', 'vigil.health', '{}');
             RESET ROLE;",
        )
        .unwrap();
        let failing = Spi::get_one::<pgrx::JsonB>("SELECT vigil.scan('h_failing')")
            .unwrap()
            .unwrap();
        assert_eq!(failing.0["success"], false);
        let report = scan("h_vigil");
        let found = one::<String>(
            "SELECT string_agg(entity || ':' || severity, ',' ORDER BY entity) FROM vigil.alerts
             WHERE monitor = 'h_vigil' AND entity <> 'worker'",
        );
        assert_eq!(
            found.as_deref(),
            Some("monitor h_failing:high,rollup public.h_roll:critical"),
            "{}",
            report.0
        );
        assert_eq!(
            one::<String>(
                "SELECT title || ' / ' || (details->>'check') FROM vigil.alerts
                 WHERE monitor = 'h_vigil' AND entity = 'rollup public.h_roll'"
            )
            .as_deref(),
            Some("Rollup not kept exact / rollup")
        );
        // Fixed, they resolve on the next scan.
        Spi::run(
            "ALTER TABLE public.h_src ENABLE TRIGGER USER;
             SELECT vigil.drop_monitor('h_failing');",
        )
        .unwrap();
        let report = scan("h_vigil");
        assert_eq!(report.0["alerts_resolved"], 2, "{}", report.0);
        // vigil.health is this kind's source and no other's.
        for (sql, want) in [
            (
                "SELECT vigil.create_monitor('h_bad', 'count', 'vigil.health', '{\"thresholds\": {\"medium\": 1}}')",
                "22023: source: kind health watches vigil.health and only it",
            ),
            (
                "SELECT vigil.create_monitor('h_bad', 'health', 'public.h_src', '{}')",
                "22023: source: kind health watches vigil.health and only it",
            ),
            (
                "SELECT vigil.create_monitor('h_bad', 'count', 'vigil.alerts', '{\"thresholds\": {\"medium\": 1}}')",
                "22023: source vigil.alerts is one of pg_vigil's own tables",
            ),
        ] {
            let got = refusal(sql);
            assert!(got.starts_with(want), "{sql}: {got}");
        }
    }

    #[pg_test]
    fn an_action_that_outlasts_the_monitors_timeout_is_reported_and_the_alert_stays() {
        Spi::run(
            "CREATE TABLE public.slow_src (k text);
             INSERT INTO public.slow_src VALUES ('a');
             CREATE PROCEDURE public.slow_action(alert jsonb) LANGUAGE sql AS $$ SELECT pg_sleep(5) $$;
             SELECT vigil.create_monitor('slow_act', 'count', 'public.slow_src',
                 '{\"entity\": \"k\", \"thresholds\": {\"medium\": 1}, \"action_procedure\": \"public.slow_action\"}');
             SELECT vigil.set_monitor_timeout('slow_act', '300 milliseconds');",
        )
        .unwrap();
        let report = scan("slow_act");
        let m = &report.0["monitors"][0];
        assert_eq!(
            m["action_errors"][0]["error"], "54000: exceeded the monitor's timeout of 300 ms",
            "{m}"
        );
        assert_eq!(alerts("slow_act", "count"), "a:medium");
    }

    /// The early-kill flow (kinds/early_kill.rs) end to end in one
    /// transaction: the action webhook's payload, the alert's details and
    /// labels, a kill whose action channel does not exist, and an expiry
    /// decided by the trigger itself (a variant past its timeout that gets
    /// interactions without being killed).
    #[pg_test]
    fn early_kill_records_kills_and_expiries_with_what_its_sql_did() {
        // killed_at is written as to_jsonb(now()) writes it: in the
        // session's TimeZone.
        Spi::run("SET LOCAL TimeZone = 'America/St_Johns'").unwrap();
        Spi::run(
            r#"CREATE TABLE ek_events (variant text, event text);
               SELECT vigil.create_channel('ek-hook', 'webhook', 'http://127.0.0.1:9/ek');
               SELECT vigil.create_monitor('ek', 'early_kill', 'ek_events',
                   '{"variant": "variant", "event": "event", "min_interactions": 2, "kill_threshold": 0.5,
                     "action_channel": "ek-hook", "labels": {"team": "growth"}, "alertname": "VariantKilled"}');
               SELECT vigil.create_monitor('ek_nochan', 'early_kill', 'ek_events',
                   '{"variant": "variant", "event": "event", "min_interactions": 2, "action_channel": "missing"}');
               SELECT vigil.register_variant('ek', 'A', 0.5, 'Ava', 'post-1');
               SELECT vigil.register_variant('ek', 'slow', 0.5, timeout => '1 minute');
               UPDATE vigil.variant_monitoring SET started_at = now() - interval '1 hour' WHERE variant = 'slow';
               SELECT vigil.register_variant('ek_nochan', 'B', 0.5);
               INSERT INTO ek_events SELECT 'A', CASE WHEN g <= 2 THEN 'like' ELSE 'view' END FROM generate_series(1, 40) g;
               INSERT INTO ek_events SELECT 'B', CASE WHEN g <= 2 THEN 'like' ELSE 'view' END FROM generate_series(1, 40) g;
               INSERT INTO ek_events VALUES ('slow', 'view');"#,
        )
        .unwrap();
        let payload = one::<pgrx::JsonB>(
            "SELECT n.payload FROM vigil.notifications n WHERE n.idempotency_key = 'early_kill:ek:A'",
        )
        .unwrap()
        .0;
        let reason =
            "engagement 5.26% is below 0.5 x the expected 50.00% after 2 interactions and 38 views";
        let killed_at = one::<String>("SELECT to_jsonb(now())->>0").unwrap();
        assert_eq!(
            payload,
            serde_json::json!({
                "action": "cancel_post", "monitor": "ek", "variant": "A", "persona": "Ava", "post": "post-1",
                "reason": reason, "interactions": 2, "views": 38, "expected_rate": 0.5,
                "observed_rate": 2.0 / 38.0, "killed_at": killed_at,
            })
        );
        let alert = one::<pgrx::JsonB>(
            "SELECT jsonb_build_object('type', a.anomaly_type, 'entity', a.entity, 'severity', a.severity,
                                       'title', a.title, 'summary', a.summary, 'details', a.details,
                                       'labels', a.labels, 'dedup', a.dedup_key)
             FROM vigil.alerts a WHERE a.monitor = 'ek'",
        )
        .unwrap()
        .0;
        let mut details = payload.clone();
        for k in ["action", "monitor", "variant"] {
            details.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(alert["type"], "early_kill");
        assert_eq!(alert["entity"], "A");
        assert_eq!(alert["severity"], "high");
        assert_eq!(alert["title"], "Variant A killed early");
        assert_eq!(alert["summary"], reason);
        assert_eq!(alert["details"], details);
        assert_eq!(alert["dedup"], "early_kill:ek:A");
        assert_eq!(alert["labels"]["team"], "growth");
        assert_eq!(alert["labels"]["alertname"], "VariantKilled");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(variant || ':' || status || ':' || (alert_id IS NOT NULL) || ':' || (notification_id IS NOT NULL), ',' ORDER BY variant)
                 FROM vigil.variant_monitoring"
            )
            .as_deref(),
            Some("A:killed:true:true,B:killed:true:false,slow:expired:false:false")
        );
        assert_eq!(
            one::<String>(
                "SELECT details->>'action_webhook' FROM vigil.alerts WHERE monitor = 'ek_nochan'"
            )
            .as_deref(),
            Some("channel \"missing\" does not exist")
        );
        assert_eq!(
            one::<String>("SELECT reason FROM vigil.variant_monitoring WHERE variant = 'slow'")
                .as_deref(),
            Some("no decision within 00:01:00 (0 interactions, 1 views)")
        );
        assert!(killed_at.ends_with("-03:30"), "{killed_at}");
        // A column the monitor counts by, renamed: the writer's error names
        // the monitor (last: the error is not rolled back here).
        Spi::run("ALTER TABLE ek_events RENAME COLUMN variant TO v2").unwrap();
        let (code, message) =
            crate::sql_tests::tests::sql_error("INSERT INTO ek_events VALUES ('A', 'view')");
        assert_eq!(code, "ERRCODE_UNDEFINED_COLUMN");
        assert!(
            message.starts_with("early_kill monitor \"ek\": column n.variant does not exist"),
            "{message}"
        );
    }
}
