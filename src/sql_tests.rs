//! `#[pg_test]`s: the SQL surface as a user calls it, inside a test cluster
//! that preloads pg_vigil.

use pgrx::prelude::*;

#[pg_schema]
pub(crate) mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    /// Runs `sql` expecting an ERROR and returns (sqlstate, message).
    pub(crate) fn sql_error(sql: &str) -> (String, String) {
        let sql = sql.to_string();
        PgTryBuilder::new(move || {
            Spi::run(&sql).unwrap();
            (String::new(), String::from("no error"))
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => {
                (format!("{:?}", r.sql_error_code()), r.message().to_string())
            }
            pg_sys::panic::CaughtError::RustPanic { ereport, .. } => (
                format!("{:?}", ereport.sql_error_code()),
                ereport.message().to_string(),
            ),
        })
        .execute()
    }

    fn assert_invalid(sql: &str, needle: &str) {
        let (code, msg) = sql_error(sql);
        assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{sql}: {msg}");
        assert!(
            msg.contains(needle),
            "{sql}: expected {needle:?} in {msg:?}"
        );
    }

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

    /// Each enumeration is written once: SQL types that must spell the
    /// library's lists do, and the tables take the library's word for
    /// the rest (channel kinds, notification events).
    #[pg_test]
    fn sql_enumerations_are_the_librarys() {
        assert_eq!(
            one::<Vec<String>>("SELECT enum_range(NULL::vigil.severity)::text[]"),
            Some(crate::alert::SEVERITIES.map(String::from).to_vec())
        );
        // no CHECK lists the channel kinds: a kind is the library's
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'vigil.channels'::regclass
                 AND pg_get_constraintdef(oid) LIKE '%slack%'"
            ),
            Some(0)
        );
        for kind in crate::notify::channel::KINDS {
            assert!(
                one::<pgrx::JsonB>(&format!("SELECT vigil._channel_kind_traits('{kind}')"))
                    .is_some(),
                "{kind}"
            );
        }
        let (code, msg) = sql_error(
            "INSERT INTO vigil.channels (name, kind, url) VALUES ('x', 'sms', 'http://127.0.0.1:1/')",
        );
        assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{msg}");
        assert!(
            msg.starts_with("kind must be one of slack, webhook"),
            "{msg}"
        );
        // a Slack channel still gets its default rate, PagerDuty its closes
        Spi::run(
            "INSERT INTO vigil.channels (name, kind, url) VALUES ('s', 'slack', 'https://hooks.slack.com/services/x');
             INSERT INTO vigil.channels (name, kind, url, options, send_resolved)
             VALUES ('p', 'pagerduty', 'https://events.pagerduty.com/v2/enqueue', '{\"routing_key\": \"0123456789abcdef0123456789abcdef\"}', false);",
        )
        .unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(format('%s:%s:%s:%s', name, max_per_second, send_resolved, group_by), ' ' ORDER BY name)
                 FROM vigil.channels WHERE name IN ('s', 'p')"
            )
            .as_deref(),
            Some("p::t: s:1:f:{alertname}")
        );
        // every event the library knows is accepted by the outbox, no other
        for event in crate::notify::ALERT_EVENTS
            .iter()
            .chain(&crate::notify::QUEUE_EVENTS)
        {
            assert_eq!(
                one::<bool>(&format!("SELECT vigil._is_notification_event('{event}')")),
                Some(true),
                "{event}"
            );
        }
        let (code, msg) = sql_error(
            "INSERT INTO vigil.notifications (channel_id, event, payload)
             SELECT id, 'paged', '{}' FROM vigil.channels WHERE name = 's'",
        );
        assert_eq!(code, "ERRCODE_CHECK_VIOLATION", "{msg}");
    }

    #[pg_test]
    fn functions_declare_honest_volatility_strictness_and_parallel_safety() {
        let bad = one::<i64>(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'vigil'
               AND p.proname IN ('severity_above','severity_below','saturation_status','saturation_predicted',
                                 'exhaustion_score','urgency_score','urgency_band','dedup_key','early_kill_decision')
               AND (p.provolatile <> 'i' OR p.proparallel <> 's')",
        );
        assert_eq!(bad, Some(0));
        let strict = one::<i64>(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'vigil' AND p.proisstrict
               AND p.proname IN ('severity_above','severity_below','dedup_key','early_kill_decision','urgency_band')",
        );
        assert_eq!(strict, Some(5));
        // Every other Rust function is IMMUTABLE PARALLEL SAFE too, except
        // the ones that read state or change things, which say so.
        let mislabelled = one::<String>(
            "SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'vigil' AND p.prokind = 'f'
               AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
               AND p.proname NOT IN ('worker_status', 'create_rollup', '_create_rollup', 'verify_rollup',
                                     '_verify_rollup', 'rebuild_rollup', '_rebuild_rollup', 'drop_rollup',
                                     '_drop_rollup', '_rollup_size', '_rollup_slot', '_rollup_trigger',
                                     '_wake_worker', '_monitor_run', '_scan', '_base_type', '_rollup_stats',
                                     '_rollup_ddl', '_rollup_status', '_rollup_dropped', '_upgrade_rollup',
                                     'webhook_payload', 'pagerduty_payload', 'msteams_payload',
                                     'alertmanager_payload', '_alertmanager_batches', '_alertmanager_resend_seconds',
                                     'email_payload', 'slack_payload',
                                     '_set_rollup_on_detach', '_group_message',
                                     '_count_alert', '_count_scan', '_metrics')
               AND (p.provolatile <> 'i' OR p.proparallel <> 's')",
        );
        assert_eq!(mislabelled.as_deref(), Some(""));
        // The counters: counting changes state and only the leader's commit
        // publishes it (parallel unsafe); reading them is volatile.
        assert_eq!(
            one::<String>(
                "SELECT string_agg(proname || ':' || provolatile::text || proparallel::text, ',' ORDER BY proname)
                 FROM pg_proc WHERE pronamespace = 'vigil'::regnamespace
                   AND proname IN ('_count_alert', '_count_scan', '_metrics')"
            )
            .as_deref(),
            Some("_count_alert:vu,_count_scan:vu,_metrics:vs")
        );
        assert_eq!(
            one::<String>("SELECT string_agg(DISTINCT provolatile::text || proparallel::text, ',') FROM pg_proc
                           WHERE pronamespace = 'vigil'::regnamespace
                             AND proname IN ('create_rollup', '_create_rollup', 'verify_rollup', 'rebuild_rollup', 'drop_rollup',
                                             '_rollup_trigger')").as_deref(),
            Some("vu")
        );
        // The alert and rule functions that write are VOLATILE PARALLEL UNSAFE.
        assert_eq!(
            one::<String>("SELECT string_agg(DISTINCT provolatile::text || proparallel::text, ',') FROM pg_proc
                           WHERE pronamespace = 'vigil'::regnamespace
                             AND proname IN ('raise_alert', 'group_alerts', 'acknowledge', 'resolve', 'dismiss',
                                             'expire_alerts', 'auto_resolve', 'check_metric', 'create_rule',
                                             'update_rule', 'enable_rule', 'disable_rule', 'delete_rule',
                                             'create_channel', 'test_channel', 'send_webhook',
                                             'replay_notifications', 'purge_notifications', '_enqueue_alert',
                                             '_wake_worker', 'create_monitor', 'drop_monitor', 'enable_monitor',
                                             'disable_monitor', '_set_monitor_enabled', 'register_variant',
                                             '_decide_variant', 'scan', 'schedule_scan', 'unschedule_scan')").as_deref(),
            Some("vu")
        );
        // Payload builders are pure functions of their arguments; the
        // webhook's and Slack's also of the two link settings.
        assert_eq!(
            one::<String>("SELECT string_agg(DISTINCT provolatile::text || proparallel::text || proisstrict::text, ',')
                           FROM pg_proc WHERE pronamespace = 'vigil'::regnamespace
                             AND proname IN ('redact_url', 'alert_fingerprint', '_check_labels')").as_deref(),
            Some("istrue")
        );
        assert_eq!(
            one::<String>(
                "SELECT provolatile::text || proparallel::text || proisstrict::text
                           FROM pg_proc WHERE oid = 'vigil.webhook_payload'::regproc"
            )
            .as_deref(),
            Some("sstrue")
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(DISTINCT provolatile::text || proparallel::text || proisstrict::text, ',')
                           FROM pg_proc WHERE pronamespace = 'vigil'::regnamespace
                             AND proname IN ('slack_payload', 'pagerduty_payload', 'msteams_payload', 'alertmanager_payload', 'email_payload',
                                             '_alertmanager_batches', '_alertmanager_resend_seconds')"
            )
            .as_deref(),
            Some("sstrue")
        );
        // Every aggregate can run in parallel: combine set, and serial and
        // deserial for an internal state.
        let incomplete = one::<i64>(
            "SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
             WHERE p.pronamespace = 'vigil'::regnamespace
               AND (a.aggcombinefn = 0 OR p.proparallel <> 's'
                    OR (a.aggtranstype = 'internal'::regtype AND (a.aggserialfn = 0 OR a.aggdeserialfn = 0)))",
        );
        assert_eq!(incomplete, Some(0));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid WHERE p.pronamespace = 'vigil'::regnamespace"),
            Some(5)
        );
    }

    #[pg_test]
    fn worker_heartbeat_is_visible_in_sql() {
        // The test cluster preloads pg_vigil; its worker sits in database
        // `postgres`, where the extension is not installed.
        let (running, state) =
            Spi::get_two::<bool, String>("SELECT running, state FROM vigil.worker_status()")
                .unwrap();
        assert_eq!(running, Some(true));
        assert_eq!(state.as_deref(), Some("waiting_for_extension"));
        assert_eq!(
            one::<String>("SELECT worker_database FROM vigil.health").as_deref(),
            Some("postgres")
        );
    }

    /// Makes the planner use parallel workers for everything in this transaction.
    fn force_parallel_plan() {
        Spi::run(
            "SET LOCAL force_parallel_mode = on; SET LOCAL parallel_setup_cost = 0;
             SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
             SET LOCAL max_parallel_workers_per_gather = 2",
        )
        .unwrap();
    }

    /// The plan of `query` runs the aggregate's combine path.
    fn assert_partial_and_finalize(query: &str) {
        let plan: Vec<String> = Spi::connect(|c| {
            c.select(&format!("EXPLAIN (COSTS OFF) {query}"), None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        });
        let plan = plan.join("\n");
        assert!(
            plan.contains("Partial Aggregate") && plan.contains("Finalize Aggregate"),
            "{plan}"
        );
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }

    fn hostile_table() {
        Spi::run(
            "CREATE TEMP TABLE hostile AS
             SELECT g, CASE WHEN g % 3 = 0 THEN 1e9 + (g % 97) * 1e-3
                            WHEN g % 3 = 1 THEN (g % 13) * 1e-6
                            ELSE -(g % 1009) * 1e6 END::float8 AS x
             FROM generate_series(1, 20000) g
             UNION ALL SELECT 0, NULL",
        )
        .unwrap();
    }

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

    const ROLLUP_SOURCE: &str = "
        CREATE TABLE events (entity text, grp int, ts timestamptz NOT NULL, status text,
                             amount numeric, latency float8);
        SELECT setseed(0.42);
        INSERT INTO events
        SELECT 'e' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE g % 3 END,
               '2026-10-20 00:00Z'::timestamptz + (g * 97 % 4000) * interval '1 minute',
               (ARRAY['paid', 'free', 'refund'])[1 + g % 3], (g % 50) * 1.25, (g * 7919 % 1000) / 10.0
        FROM generate_series(1, 3000) g;";

    const ROLLUP_MEASURES: &str = r#"{
        "n": {"agg": "count"},
        "paid": {"agg": "count", "filter": "status = 'paid'"},
        "revenue": {"agg": "sum", "column": "amount", "filter": "status = 'paid'"},
        "total_latency": {"agg": "sum", "column": "latency"},
        "avg_amount": {"agg": "avg", "column": "amount"},
        "lo": {"agg": "min", "column": "amount"},
        "hi": {"agg": "max", "column": "latency"},
        "lat": {"agg": "stats", "column": "latency"},
        "p": {"agg": "percentile", "column": "latency"}
    }"#;

    fn make_rollup() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(&format!(
            "SELECT vigil.create_rollup('ev_hourly', 'events', 'ts', '1 hour', '{{entity,grp}}', '{}')",
            ROLLUP_MEASURES.replace('\'', "''")
        ))
        .unwrap();
    }

    fn verify() -> i64 {
        one::<i64>("SELECT vigil.verify_rollup('ev_hourly')").unwrap()
    }

    #[pg_test]
    fn rollup_backfills_exactly_and_reads_windows() {
        make_rollup();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            Some(3000)
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM vigil.rollups WHERE name = 'ev_hourly'::regclass")
                .map(|r| r > 0),
            Some(true)
        );
        // windows are bucket-aligned: everything is older than a day here
        assert_eq!(one::<i64>("SELECT count(*) FROM ev_hourly_1h"), Some(0));
        let all = one::<i64>(
            "SELECT sum(n)::bigint FROM ev_hourly_since(now() - '2026-10-19'::timestamptz)",
        );
        assert_eq!(all, Some(3000));
        let (mean, exact) = Spi::get_two::<f64, f64>(
            "SELECT vigil.mean(vigil.rollup(lat)), (SELECT avg(latency) FROM events) FROM ev_hourly",
        )
        .unwrap();
        assert!(rel(mean.unwrap(), exact.unwrap()) < 1e-12);
    }

    /// The groups of `_since(window, exact => true)` and of the same
    /// figures over `events WHERE ts > now() - window` that differ.
    fn exact_window_differences(window: &str) -> i64 {
        let w = format!("'{window}'::interval");
        one::<i64>(&format!(
            "WITH f AS (SELECT entity, grp, rows, n, paid, revenue, lo, hi, vigil.num_vals(lat) AS lat_n,
                               vigil.num_vals(p) AS p_n
                          FROM ev_hourly_since({w}, exact => true)),
                  r AS (SELECT entity, grp, count(*) AS rows, count(*) AS n,
                               count(*) FILTER (WHERE status = 'paid') AS paid,
                               sum(amount) FILTER (WHERE status = 'paid') AS revenue,
                               min(amount) AS lo, max(latency) AS hi, count(latency) AS lat_n,
                               count(latency) AS p_n
                          FROM events WHERE ts > now() - {w} GROUP BY 1, 2)
             SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE r) a)
                  + (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE f) b)"
        ))
        .unwrap()
    }

    #[pg_test]
    fn exact_windows_equal_where_ts_after_now_minus_the_window() {
        Spi::run(
            "CREATE TABLE events (entity text, grp int, ts timestamptz NOT NULL, status text,
                                  amount numeric, latency float8);
             CREATE INDEX ON events (ts);
             SELECT setseed(0.11);
             INSERT INTO events
             SELECT 'e' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE g % 3 END,
                    now() - random() * interval '9 days' + interval '10 minutes',
                    (ARRAY['paid', 'free', 'refund'])[1 + g % 3],
                    CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 50) * 1.25 END, (g * 7919 % 1000) / 10.0
             FROM generate_series(1, 4000) g;",
        )
        .unwrap();
        Spi::run(&format!(
            "SELECT vigil.create_rollup('ev_hourly', 'events', 'ts', '1 hour', '{{entity,grp}}', '{}')",
            ROLLUP_MEASURES.replace('\'', "''")
        ))
        .unwrap();
        let windows = [
            "1 hour",
            "90 minutes",
            "24 hours",
            "7 days",
            "2 days 3 hours 17 minutes",
        ];
        for w in windows {
            assert_eq!(exact_window_differences(w), 0, "window {w}");
        }
        // the bucket-aligned form counts the whole edge bucket: more rows
        let (aligned, exact) = Spi::get_two::<i64, i64>(
            "SELECT (SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')),
                    (SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours', exact => true))",
        )
        .unwrap();
        assert!(aligned.unwrap() > exact.unwrap(), "{aligned:?} {exact:?}");
        assert_eq!(
            exact,
            one::<i64>("SELECT count(*) FROM events WHERE ts > now() - interval '24 hours'")
        );
        // exact => false is the one-argument form
        assert_eq!(
            one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours', false)"),
            aligned
        );
        // still exact after DML of every kind, at the edge too
        Spi::run(
            "UPDATE events SET amount = amount + 1, status = 'paid' WHERE ts > now() - interval '25 hours' AND grp = 1;
             DELETE FROM events WHERE ts BETWEEN now() - interval '24 hours 30 minutes' AND now() - interval '23 hours 30 minutes';
             UPDATE events SET ts = ts - interval '50 minutes' WHERE entity = 'e3';
             INSERT INTO events VALUES ('e9', 1, now() - interval '24 hours' + interval '1 second', 'paid', 3, 1),
                                       ('e9', 1, now() - interval '24 hours', 'paid', 5, 1);",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT vigil.verify_rollup('ev_hourly')"),
            Some(0)
        );
        for w in windows {
            assert_eq!(exact_window_differences(w), 0, "window {w} after DML");
        }
        // rows ahead of now count as they do in the WHERE clause; a NULL
        // flag gives no rows
        assert_eq!(exact_window_differences("0 seconds"), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly_since('7 days', NULL)"),
            Some(0)
        );
        // the exact form reads the source: a reader of the summary alone
        // may use the aligned one, and is told which table it lacks
        let aligned = one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')");
        Spi::run(
            "CREATE ROLE exact_reader; GRANT SELECT ON ev_hourly TO exact_reader;
             SET LOCAL ROLE exact_reader",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')"),
            aligned
        );
        let (code, msg) = sql_error("SELECT * FROM ev_hourly_since('24 hours', exact => true)");
        assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE", "{msg}");
        assert!(msg.contains("table events"), "{msg}");
        Spi::run("RESET ROLE").unwrap();
        // a timestamp column holds UTC whatever the session's TimeZone
        Spi::run(
            "SET LOCAL TimeZone = 'America/New_York';
             CREATE TABLE naive AS SELECT entity, (ts AT TIME ZONE 'UTC') AS ts FROM events;
             CREATE INDEX ON naive (ts);
             SELECT vigil.create_rollup('naive_hourly', 'naive', 'ts', '1 hour', '{entity}', '{\"n\": {\"agg\": \"count\"}}');",
        )
        .unwrap();
        for w in windows {
            let w = format!("'{w}'::interval");
            assert_eq!(
                one::<i64>(&format!(
                    "WITH f AS (SELECT entity, rows FROM naive_hourly_since({w}, exact => true)),
                          r AS (SELECT entity, count(*) FROM naive WHERE ts > (now() - {w}) AT TIME ZONE 'UTC' GROUP BY 1)
                     SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE r) a)
                          + (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE f) b)"
                )),
                Some(0),
                "window {w}"
            );
        }
    }

    #[pg_test]
    fn rollup_stays_exact_under_random_mixed_dml() {
        make_rollup();
        Spi::run("SELECT setseed(0.7)").unwrap();
        let statements = [
            "INSERT INTO events SELECT 'e' || floor(random() * 9), CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 3) END,
                    '2026-11-20 00:00Z'::timestamptz + random() * interval '3 days', (ARRAY['paid','free'])[1 + floor(random() * 2)],
                    round((random() * 100)::numeric, 2), random() * 500 FROM generate_series(1, 1 + floor(random() * 40)::int)",
            "DELETE FROM events WHERE random() < 0.03",
            "UPDATE events SET entity = 'e' || floor(random() * 9) WHERE random() < 0.02",
            "UPDATE events SET ts = ts + interval '90 minutes', amount = amount + 1 WHERE random() < 0.02",
            "UPDATE events SET latency = latency * 2, status = 'paid' WHERE random() < 0.02",
            "DELETE FROM events WHERE latency = (SELECT max(latency) FROM events)",
            "DELETE FROM events WHERE amount = (SELECT min(amount) FROM events WHERE entity = 'e1')",
            "UPDATE events SET grp = NULL WHERE random() < 0.02",
        ];
        for round in 0..40 {
            Spi::run(statements[round % statements.len()]).unwrap();
            if round % 8 == 7 {
                assert_eq!(verify(), 0, "after round {round}");
            }
        }
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            one::<i64>("SELECT count(*) FROM events")
        );
    }

    #[pg_test]
    fn rollup_is_exact_across_subtransaction_rollback_and_truncate() {
        make_rollup();
        // A PL/pgSQL exception block is a subtransaction: its work rolls back.
        Spi::run(
            "DO $$ BEGIN
                 DELETE FROM events WHERE entity = 'e1';
                 INSERT INTO events VALUES ('zz', 1, now(), 'paid', 5, 1);
                 RAISE EXCEPTION 'roll back';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$",
        )
        .unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'zz'"),
            Some(0)
        );
        assert!(one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'e1'").unwrap() > 0);
        Spi::run(
            "DO $$ BEGIN
                 UPDATE events SET entity = 'moved' WHERE entity = 'e2';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$",
        )
        .unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'e2'"),
            Some(0)
        );
        Spi::run("TRUNCATE events").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM ev_hourly"), Some(0));
        Spi::run("INSERT INTO events VALUES ('a', NULL, now(), 'paid', 1, 2), ('a', NULL, now(), 'free', 3, 4)").unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT n FROM ev_hourly WHERE entity = 'a' AND grp IS NULL"),
            Some(2)
        );
    }

    #[pg_test]
    fn the_alert_lifecycle_records_who_acted_and_caps_its_free_text() {
        let id = one::<i64>(
            "SELECT alert_id FROM vigil.raise_alert('who_acted', 'e1', 'high', 'title')",
        )
        .unwrap();
        Spi::run(&format!(
            "SELECT vigil.acknowledge({id}, 'the ceo', 'on it')"
        ))
        .unwrap();
        assert_eq!(
            one::<bool>(&format!(
                "SELECT acknowledged_by = 'the ceo' AND acknowledged_role = session_user FROM vigil.alerts WHERE id = {id}"
            )),
            Some(true)
        );
        let (code, msg) = sql_error(&format!(
            "SELECT vigil.resolve({id}, 'ops', repeat('x', 9000))"
        ));
        assert_eq!(code, "ERRCODE_STRING_DATA_RIGHT_TRUNCATION", "{msg}");
        assert!(msg.contains("note is 9000 bytes"), "{msg}");
        Spi::run(&format!("SELECT vigil.resolve({id}, 'ops')")).unwrap();
        assert_eq!(
            one::<bool>(&format!(
                "SELECT resolved_role = session_user FROM vigil.alert_history WHERE id = {id}"
            )),
            Some(true)
        );
    }

    #[pg_test]
    fn rollup_filters_that_could_read_a_setting_keep_every_value_pinned() {
        Spi::run(
            "CREATE TABLE fx (ts timestamptz NOT NULL, k text, v int);
             SELECT vigil.create_rollup('fx_plain', 'fx', 'ts', '1 hour', '{k}', '{\"n\": {\"agg\": \"count\"}}');
             SELECT vigil.create_rollup('fx_eq', 'fx', 'ts', '1 hour', '{k}',
                 '{\"paid\": {\"agg\": \"count\", \"filter\": \"k = ''paid'' AND v > 2\"}}');
             SELECT vigil.create_rollup('fx_ts', 'fx', 'ts', '1 hour', '{k}',
                 '{\"run\": {\"agg\": \"count\", \"filter\": \"to_tsvector(k) @@ to_tsquery(''run'')\"}}');
             SELECT vigil.create_rollup('fx_tz', 'fx', 'ts', '1 hour', '{k}',
                 '{\"am\": {\"agg\": \"count\", \"filter\": \"extract(hour from ts) < 12\"}}');",
        )
        .unwrap();
        let immutable = |name: &str| {
            let oid = one::<pg_sys::Oid>(&format!("SELECT '{name}'::regclass::oid")).unwrap();
            crate::rollup::sql::filters_immutable(&crate::rollup::sql::load(oid))
        };
        assert!(immutable("fx_plain"));
        assert!(immutable("fx_eq"));
        assert!(
            !immutable("fx_ts"),
            "to_tsvector(text) reads default_text_search_config"
        );
        assert!(
            !immutable("fx_tz"),
            "extract from timestamptz reads TimeZone"
        );
    }

    #[pg_test]
    fn rollup_stats_removals_leave_no_float_residue() {
        Spi::run(
            "CREATE TABLE lat (ts timestamptz NOT NULL, k text, v float8);
             SELECT vigil.create_rollup('lat_1h', 'lat', 'ts', '1 hour', '{k}',
                 '{\"st\": {\"agg\": \"stats\", \"column\": \"v\"}}');
             INSERT INTO lat VALUES (now(), 'a', 900), (now(), 'a', 1100), (now(), 'a', 900);
             DELETE FROM lat WHERE v = 1100;",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('lat_1h')"), Some(0));
        assert_eq!(
            one::<f64>("SELECT vigil.stddev(vigil.rollup(st)) FROM lat_1h"),
            Some(0.0)
        );
        Spi::run("INSERT INTO lat VALUES (now(), 'a', 700); UPDATE lat SET v = 900 WHERE v = 700")
            .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('lat_1h')"), Some(0));
        assert_eq!(
            one::<f64>("SELECT vigil.stddev(vigil.rollup(st)) FROM lat_1h"),
            Some(0.0)
        );
    }

    #[pg_test]
    fn rollup_slot_reuses_its_own_lock_and_caps_locks_per_transaction() {
        let held = || {
            one::<i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 22087 \
                 AND pid = pg_backend_pid()",
            )
            .unwrap()
        };
        let slot = |hash: i32| {
            one::<i32>(&format!(
                "SELECT vigil._rollup_slot('pg_class'::regclass, {hash})"
            ))
        };
        assert_eq!(slot(7), Some(0));
        assert_eq!(slot(7), Some(0), "the group's lock is already ours");
        assert_eq!(held(), 1);
        Spi::run(
            "SELECT vigil._rollup_slot('pg_class'::regclass, g) FROM generate_series(100, 199) g",
        )
        .unwrap();
        assert_eq!(held(), 64, "a bulk statement stops taking slot locks at 64");
        assert_eq!(slot(1000), Some(0));
    }

    #[pg_test]
    fn rollup_single_row_inserts_match_a_recompute() {
        make_rollup();
        Spi::run("SELECT setseed(0.3)").unwrap();
        // One row per statement takes the non-aggregating upsert: NULLs in
        // every column, filters true, false and NULL.
        for _ in 0..150 {
            Spi::run(
                "INSERT INTO events SELECT 'e' || floor(random() * 4),
                        CASE WHEN random() < 0.3 THEN NULL ELSE floor(random() * 3) END,
                        '2026-11-20 00:00Z'::timestamptz + random() * interval '5 hours',
                        (ARRAY['paid', 'free', NULL])[1 + floor(random() * 3)],
                        CASE WHEN random() < 0.2 THEN NULL ELSE round((random() * 100)::numeric, 2) END,
                        CASE WHEN random() < 0.2 THEN NULL ELSE random() * 500 END",
            )
            .unwrap();
        }
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            one::<i64>("SELECT count(*) FROM events")
        );
    }

    #[pg_test]
    fn rollup_insert_trigger_runs_as_the_owner_with_a_pinned_search_path() {
        make_rollup();
        // A writer with INSERT on the source only keeps the summary current,
        // and an operator on the writer's search_path that would make every
        // comparison true does not reach the filter "status = 'paid'".
        Spi::run(
            "CREATE ROLE vigil_test_writer;
             GRANT USAGE ON SCHEMA public TO vigil_test_writer;
             GRANT INSERT ON events TO vigil_test_writer;
             CREATE SCHEMA evil;
             CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
             GRANT USAGE ON SCHEMA evil TO vigil_test_writer;
             SET LOCAL ROLE vigil_test_writer;
             SET LOCAL search_path = evil, pg_catalog, public;
             INSERT INTO public.events VALUES ('w', 1, '2026-11-21 10:00Z', 'free', 2, 3);
             INSERT INTO public.events VALUES ('w', 1, '2026-11-21 10:05Z', 'paid', 2, 3),
                                              ('w', 1, '2026-11-21 10:10Z', 'free', 2, 3);
             RESET ROLE;
             RESET search_path;",
        )
        .unwrap();
        assert_eq!(
            Spi::get_two::<i64, i64>(
                "SELECT sum(n)::bigint, sum(paid)::bigint FROM ev_hourly WHERE entity = 'w'"
            )
            .unwrap(),
            (Some(3), Some(1))
        );
        assert_eq!(
            one::<String>("SELECT current_user::text"),
            one::<String>("SELECT session_user::text")
        );
        assert_eq!(verify(), 0);
    }

    #[pg_test]
    fn rollup_insert_trigger_refuses_other_tables_and_events() {
        make_rollup();
        Spi::run(
            "CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;
             CREATE TABLE other (LIKE events);
             CREATE TRIGGER t AFTER INSERT ON other REFERENCING NEW TABLE AS vigil_new
                 FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger('public.ev_hourly');",
        )
        .unwrap();
        let insert = "SELECT pg_temp.err($$INSERT INTO other VALUES ('x', 1, '2026-11-21 10:00Z', 'paid', 1, 1)$$)";
        let msg = one::<String>(insert).unwrap();
        assert!(
            msg.starts_with("39P01 ") && msg.contains("does not summarize the table"),
            "{msg}"
        );
        Spi::run(
            "DROP TRIGGER t ON other;
             CREATE TRIGGER t AFTER INSERT ON other FOR EACH ROW
                 EXECUTE FUNCTION vigil._rollup_trigger('public.ev_hourly');",
        )
        .unwrap();
        let msg = one::<String>(insert).unwrap();
        assert!(
            msg.starts_with("39P01 ") && msg.contains("FOR EACH STATEMENT"),
            "{msg}"
        );
        assert_eq!(verify(), 0);
    }

    #[pg_test]
    fn dropping_a_summary_needs_cascade_and_leaves_the_sources_writes_working() {
        make_rollup();
        let (code, msg) = sql_error("DROP TABLE ev_hourly");
        assert_eq!(code, "ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST", "{msg}");
        Spi::run("DROP TABLE ev_hourly CASCADE").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.rollup_defs WHERE summary::oid NOT IN (SELECT oid FROM pg_class)"),
            Some(0)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'vigil_rollup_ev_hourly%'"
            ),
            Some(0)
        );
        Spi::run("INSERT INTO events VALUES ('after', 1, '2026-11-21 10:00Z', 'paid', 2, 3); DELETE FROM events WHERE entity = 'after'")
            .unwrap();
    }

    #[pg_test]
    fn deep_json_arguments_are_refused_naming_the_argument_not_as_internal_errors() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(
            "CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;",
        )
        .unwrap();
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let monitor = one::<String>(&format!(
            "SELECT pg_temp.err($q$SELECT vigil.create_monitor('deep', 'count', 'events', '{{\"thresholds\": {deep}}}')$q$)"
        ))
        .unwrap();
        assert!(monitor.starts_with("22023 options is nested"), "{monitor}");
        let rollup = one::<String>(&format!(
            "SELECT pg_temp.err($q$SELECT vigil.create_rollup('deep_hourly', 'events', 'ts', '1 hour', '{{entity}}', '{{\"n\": {deep}}}')$q$)"
        ))
        .unwrap();
        assert!(rollup.starts_with("22023 measures is nested"), "{rollup}");
        assert_eq!(
            one::<bool>("SELECT to_regclass('deep_hourly') IS NULL"),
            Some(true)
        );
    }

    #[pg_test]
    fn rollup_trigger_rechecks_its_kept_plans_after_a_rename_and_a_schema_grant() {
        make_rollup();
        // Plans are kept by this INSERT, then the summary is renamed under
        // them: the next INSERT prepares afresh under the new name.
        Spi::run("INSERT INTO events VALUES ('k', 1, '2026-11-21 10:00Z', 'paid', 2, 3)").unwrap();
        Spi::run("ALTER TABLE ev_hourly RENAME TO ev_kept").unwrap();
        Spi::run(
            "INSERT INTO events VALUES ('k', 1, '2026-11-21 10:02Z', 'free', 2, 3);
             DELETE FROM events WHERE entity = 'k' AND status = 'free';",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('ev_kept')"), Some(0));
        // Someone else may now create objects in the summary's schema: the
        // kept plans are refused until that is undone.
        Spi::run(
            "CREATE ROLE vigil_test_squatter; GRANT CREATE ON SCHEMA public TO vigil_test_squatter",
        )
        .unwrap();
        let (code, msg) =
            sql_error("INSERT INTO events VALUES ('k', 1, '2026-11-21 10:03Z', 'paid', 2, 3)");
        assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE", "{msg}");
        assert!(msg.contains("vigil_test_squatter"), "{msg}");
    }

    #[pg_test]
    fn rollup_trigger_finds_a_renamed_summary_by_oid() {
        make_rollup();
        // No INSERT has run in this backend yet: the trigger looks the
        // rollup up afresh, after the rename.
        Spi::run("CREATE SCHEMA moved; ALTER TABLE ev_hourly RENAME TO ev_renamed; ALTER TABLE ev_renamed SET SCHEMA moved")
            .unwrap();
        Spi::run(
            "INSERT INTO events VALUES ('r', 1, '2026-11-21 10:00Z', 'paid', 2, 3), ('r', 1, '2026-11-21 10:01Z', 'free', 2, 3);
             UPDATE events SET amount = amount + 1 WHERE entity = 'r';
             DELETE FROM events WHERE entity = 'r' AND status = 'free';",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT vigil.verify_rollup('moved.ev_renamed')"),
            Some(0)
        );
    }

    #[pg_test]
    fn rebuild_and_drop_rollup() {
        make_rollup();
        // tamper with the summary, see verify notice, rebuild repairs it
        Spi::run("UPDATE ev_hourly SET n = n + 1 WHERE entity = 'e3'").unwrap();
        assert!(verify() > 0);
        let groups = one::<i64>("SELECT vigil.rebuild_rollup('ev_hourly')").unwrap();
        assert_eq!(
            groups,
            one::<i64>("SELECT count(*) FROM ev_hourly").unwrap()
        );
        assert_eq!(verify(), 0);
        Spi::run("SELECT vigil.drop_rollup('ev_hourly')").unwrap();
        assert_eq!(
            one::<bool>(
                "SELECT to_regclass('ev_hourly') IS NULL AND to_regclass('ev_hourly_24h') IS NULL"
            ),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.rollup_defs"),
            Some(0)
        );
        Spi::run("INSERT INTO events VALUES ('after', 1, now(), 'paid', 1, 1)").unwrap();
    }

    #[pg_test]
    fn rollup_with_hostile_names_is_quoted_everywhere() {
        Spi::run(
            r#"CREATE SCHEMA "odd ""schema";
               CREATE TABLE "odd ""schema"."src; DROP" ("Who ""is""" text, "t s" timestamp, "v-1" float8);
               INSERT INTO "odd ""schema"."src; DROP" VALUES ('a', '2026-01-01 10:00', 1), (NULL, '2026-01-01 10:30', 2), ('a', '2026-01-01 11:00', 3)"#,
        )
        .unwrap();
        Spi::run(
            r#"SELECT vigil.create_rollup('"sum""mary"', '"odd ""schema"."src; DROP"', 't s', '30 minutes',
                   ARRAY['Who "is"']::name[], '{"x; y": {"agg": "sum", "column": "v-1"}, "m": {"agg": "max", "column": "v-1"}}')"#,
        )
        .unwrap();
        assert_eq!(
            one::<i64>(r#"SELECT vigil.verify_rollup('"odd ""schema"."sum""mary"')"#),
            Some(0)
        );
        Spi::run(r#"DELETE FROM "odd ""schema"."src; DROP" WHERE "v-1" = 3"#).unwrap();
        assert_eq!(
            one::<i64>(r#"SELECT vigil.verify_rollup('"odd ""schema"."sum""mary"')"#),
            Some(0)
        );
        assert_eq!(
            one::<f64>(r#"SELECT sum("x; y") FROM "odd ""schema"."sum""mary""#),
            Some(3.0)
        );
    }

    #[pg_test]
    fn webhook_links_come_from_superuser_settings() {
        Spi::run(
            "SET vigil.external_url = 'https://grafana.example/d/vigil';
             SET vigil.generator_url = 'https://grafana.example/d/vigil?var-alert={id}&var-fp={fingerprint}'",
        )
        .unwrap();
        let hook = one::<pgrx::JsonB>(
            r#"SELECT vigil.webhook_payload('{"id": 7, "fingerprint": "00000000000000ab", "severity": "high"}', 'new', 'r')"#,
        )
        .unwrap()
        .0;
        assert_eq!(hook["externalURL"], "https://grafana.example/d/vigil");
        assert_eq!(
            hook["alerts"][0]["generatorURL"],
            "https://grafana.example/d/vigil?var-alert=7&var-fp=00000000000000ab"
        );
        // Only a superuser may set them (they reach every receiver).
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'vigil.external_url'")
                .as_deref(),
            Some("superuser")
        );
    }

    #[pg_test]
    fn rule_alerts_carry_the_seeds_alertnames_and_the_rules_labels() {
        Spi::run(
            "CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
        )
        .unwrap();
        let labels = |sql: &str| one::<pgrx::JsonB>(sql).unwrap().0;
        let l = labels(
            "SELECT labels FROM vigil.check_metric('roas', 1.4, 'campaign-7') ORDER BY id LIMIT 1",
        );
        assert_eq!(l["alertname"], "ROAS_DROP");
        assert_eq!(l["rule"], "roas_below_2");
        assert_eq!(l["entity"], "campaign-7");
        Spi::run(
            r#"SELECT vigil.create_rule('spend_cap', 'spend', '>', 100, 'high',
                   alertname => 'SPEND_CAP', labels => '{"team": "ads"}')"#,
        )
        .unwrap();
        let l = labels("SELECT labels FROM vigil.check_metric('spend', 150, 'acct-1')");
        assert_eq!(
            (l["alertname"].as_str(), l["team"].as_str()),
            (Some("SPEND_CAP"), Some("ads"))
        );
        // The identity is the labels but severity: the same rule and entity
        // bump one alert.
        Spi::run("SELECT vigil.check_metric('spend', 170, 'acct-1')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.alerts WHERE rule = 'spend_cap'"),
            Some(1)
        );
        for (sql, code) in [
            (
                r#"SELECT vigil.create_rule('r2', 'm', '>', 1, 'low', labels => '{"bad-name": "x"}')"#,
                "22023",
            ),
            (
                r#"SELECT vigil.create_rule('r3', 'm', '>', 1, 'low', labels => '{"team": 5}')"#,
                "22023",
            ),
            (
                r#"SELECT vigil.create_rule('r4', 'm', '>', 1, 'low', alertname => ' ')"#,
                "22023",
            ),
            (
                r#"SELECT vigil.update_rule('spend_cap', labels => '[]')"#,
                "22023",
            ),
        ] {
            let got = Spi::get_one::<String>(&format!(
                "SELECT pg_temp.sqlstate_of({})",
                crate::rollup::literal(sql)
            ));
            assert_eq!(got.ok().flatten().as_deref(), Some(code), "{sql}");
        }
    }

    #[pg_test]
    fn functions_have_comments() {
        // Every function and aggregate in schema vigil, SQL or Rust.
        let missing = one::<String>(
            "SELECT coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY 1), '')
             FROM pg_proc p WHERE p.pronamespace = 'vigil'::regnamespace
               AND obj_description(p.oid, 'pg_proc') IS NULL",
        );
        assert_eq!(missing.as_deref(), Some(""), "functions without COMMENT ON");
    }

    #[pg_test]
    fn a_misspelt_vigil_setting_is_an_error() {
        Spi::run(
            "CREATE FUNCTION pg_temp.set_it() RETURNS text LANGUAGE plpgsql AS $$
             BEGIN PERFORM set_config('vigil.databse', 'x', false); RETURN 'accepted';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT pg_temp.set_it()").as_deref(),
            Some("42602")
        );
        assert_eq!(
            one::<String>("SELECT current_setting('vigil.upgrade_keep_monitors')").as_deref(),
            Some("off")
        );
    }

    #[pg_test]
    fn dismissal_covers_its_severity_and_a_refire_after_resolve_is_notified() {
        Spi::run(
            "SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/hook', send_resolved => true, group_by => NULL)",
        )
        .unwrap();
        let raise = |sev: &str| {
            Spi::get_one::<i64>(&format!(
                "SELECT alert_id FROM vigil.raise_alert('stall', 'order-17', '{sev}', 'order 17 stalled', \
                 monitor => 'm', labels => '{{}}')"
            ))
            .unwrap()
            .unwrap()
        };
        let low = raise("low");
        Spi::run(&format!("SELECT vigil.dismiss({low}, 'op')")).unwrap();
        assert_eq!(
            raise("low"),
            low,
            "a repeat at its severity stays dismissed"
        );
        let critical = raise("critical");
        assert_ne!(critical, low, "a worse one is a new alert");
        assert_eq!(
            one::<String>(&format!(
                "SELECT status::text FROM vigil.alerts WHERE id = {critical}"
            ))
            .as_deref(),
            Some("firing")
        );
        // Fire, resolve, fire again within repeat_interval (1 hour): the
        // receiver, told it was resolved, hears of the new one.
        Spi::run(&format!("SELECT vigil.resolve({critical})")).unwrap();
        let again = raise("critical");
        assert_ne!(again, critical);
        assert_eq!(
            one::<String>(
                "SELECT string_agg(n.event, ',' ORDER BY n.id) FROM vigil.notifications n
                 JOIN vigil.channels c ON c.id = n.channel_id WHERE c.name = 'hook'"
            )
            .as_deref(),
            Some("new,dismissed,new,resolved,new")
        );
    }

    #[pg_test]
    fn a_flooded_group_is_one_message_within_the_payload_cap() {
        Spi::run(
            "SELECT vigil.create_channel('g', 'webhook', 'http://127.0.0.1:9/g', group_wait => '0 seconds');
             SELECT vigil.raise_alert('flood', repeat('e', 20000) || i, 'high', repeat('t', 5000))
             FROM generate_series(1, 300) i;",
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        let (size, listed, truncated) = Spi::get_three::<i32, i32, i32>(
            "SELECT octet_length(payload::text), jsonb_array_length(payload -> 'alerts'),
                    (payload ->> 'truncatedAlerts')::int
             FROM vigil.notifications WHERE event = 'group'",
        )
        .unwrap();
        let (size, listed, truncated) = (size.unwrap(), listed.unwrap(), truncated.unwrap());
        assert!(size <= 65536, "{size} bytes");
        assert!(listed > 0);
        assert_eq!(listed + truncated, 300);
        // Nothing is left due: the next round sends nothing.
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(0));
    }

    /// A group message lists an alert as the one-alert webhook does, even
    /// at the edges of what a row can hold: infinite timestamps read as
    /// `to_jsonb` writes them, and details the builders cannot hold (a
    /// number beyond f64, written into vigil.alerts by hand) say so rather
    /// than stopping the group's messages.
    #[pg_test]
    fn a_group_message_lists_an_alert_as_its_own_webhook_does() {
        let text = |sql: &str| one::<String>(sql).unwrap_or_default();
        let id =
            one::<i64>("SELECT (vigil.raise_alert('edge', 'e1', 'high', 'edge case')).alert_id")
                .unwrap();
        Spi::run(&format!(
            "UPDATE vigil.alerts SET status = 'resolved', created_at = '-infinity', resolved_at = 'infinity'
             WHERE id = {id}"
        ))
        .unwrap();
        let differs = text(&format!(
            "SELECT coalesce((SELECT (g.m -> 'alerts' -> 0)::text || ' vs ' || (u.m -> 'alerts' -> 0)::text
             FROM (SELECT vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) m) g,
                  (SELECT vigil.webhook_payload(vigil._alert_document(a), 'resolved', 'g') m
                   FROM vigil.alerts a WHERE a.id = {id}) u
             WHERE g.m -> 'alerts' -> 0 IS DISTINCT FROM u.m -> 'alerts' -> 0), '')"
        ));
        assert_eq!(differs, "", "grouped vs one-alert webhook");
        assert_eq!(
            text(&format!(
                "SELECT (vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) -> 'alerts' -> 0)
                        ->> 'startsAt'"
            )),
            "-infinity"
        );
        Spi::run(&format!(
            "UPDATE vigil.alerts SET details = '{{\"rows\": 1e400}}' WHERE id = {id}"
        ))
        .unwrap();
        let description = text(&format!(
            "SELECT vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) #>> '{{alerts,0,annotations,description}}'"
        ));
        assert!(
            description.contains("cannot be read as JSON"),
            "{description}"
        );
    }
}
