//! `#[pg_test]`s of the SQL surface as a whole (every function commented,
//! honest volatility, the enumerations, settings) and the helpers the
//! modules' own `sql_tests` share. Each area's tests live beside it
//! (`src/<area>/sql_tests.rs`), inside a test cluster that preloads
//! pg_vigil.

use pgrx::prelude::*;

#[pg_schema]
pub(crate) mod tests {
    use pgrx::prelude::*;

    pub(crate) fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
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

    pub(crate) fn assert_invalid(sql: &str, needle: &str) {
        let (code, msg) = sql_error(sql);
        assert_eq!(code, "ERRCODE_INVALID_PARAMETER_VALUE", "{sql}: {msg}");
        assert!(
            msg.contains(needle),
            "{sql}: expected {needle:?} in {msg:?}"
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
                                     '_drop_rollup', '_rollup_size', '_rollup_slot', '_rollup_slot_held', '_rollup_trigger', '_early_kill_trigger',
                                     '_wake_worker', '_monitor_run', '_scan', '_base_type', '_rollup_stats',
                                     '_rollup_ddl', '_rollup_status', '_rollup_dropped', '_upgrade_rollup',
                                     'webhook_payload', 'pagerduty_payload', 'msteams_payload',
                                     'alertmanager_payload', '_alertmanager_batches', '_alertmanager_resend_seconds',
                                     'email_payload', 'slack_payload',
                                     '_set_rollup_on_detach', '_group_message',
                                     '_count_alert', '_count_scan', '_metrics',
                                     '_create_rolling', '_age_rolling', '_verify_rolling', '_drop_rolling',
                                     '_rolling_read', '_rolling_stats')
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
                                             '_rollup_trigger', 'create_rolling', '_create_rolling', 'age_rolling',
                                             '_age_rolling', 'verify_rolling', '_verify_rolling', 'drop_rolling',
                                             '_drop_rolling')").as_deref(),
            Some("vu")
        );
        // The rolling view's reader reads with the statement's snapshot,
        // as its owner: STABLE, parallel restricted, strict.
        assert_eq!(
            one::<String>(
                "SELECT provolatile::text || proparallel::text || proisstrict::text FROM pg_proc
                           WHERE oid = 'vigil._rolling_read(regclass)'::regprocedure"
            )
            .as_deref(),
            Some("srtrue")
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
                                             '_early_kill_trigger', 'scan', 'schedule_scan', 'unschedule_scan')").as_deref(),
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
            Some(8)
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
    pub(crate) fn force_parallel_plan() {
        Spi::run(
            "SET LOCAL force_parallel_mode = on; SET LOCAL parallel_setup_cost = 0;
             SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
             SET LOCAL max_parallel_workers_per_gather = 2",
        )
        .unwrap();
    }

    /// The plan of `query` runs the aggregate's combine path.
    pub(crate) fn assert_partial_and_finalize(query: &str) {
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

    pub(crate) fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }

    pub(crate) fn hostile_table() {
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
}
