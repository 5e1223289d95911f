//! `#[pg_test]`s of day-2 operations (issue 14): retention purges keep open
//! alerts and pending work, and the bookkeeping that lets edits of the
//! default rules and recommended actions survive dump/restore (the real
//! `pg_dump` round trip is in the e2e suite).

use pgrx::prelude::*;

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    fn text(sql: &str) -> String {
        one::<String>(sql).unwrap_or_default()
    }

    /// Runs `sql` expecting an ERROR inside a PL/pgSQL exception block, so
    /// the test's transaction stays usable; returns "SQLSTATE: message".
    fn error(sql: &str) -> String {
        // Created once: a test may call this after SET ROLE.
        if one::<bool>("SELECT to_regprocedure('pg_temp.ops_err(text)') IS NULL") == Some(true) {
            Spi::run(
                "CREATE FUNCTION pg_temp.ops_err(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN
                 EXECUTE stmt;
                 RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN
                 RETURN SQLSTATE || ': ' || SQLERRM;
             END
             $f$",
            )
            .unwrap();
        }
        Spi::get_one_with_args::<String>("SELECT pg_temp.ops_err($1)", &[sql.into()])
            .unwrap()
            .unwrap()
    }

    /// One alert per lifecycle state, all last touched 100 days ago unless
    /// `recent`; returns its id.
    fn alert(entity: &str, status: &str, recent: bool) -> i64 {
        let id = Spi::get_one_with_args::<i64>(
            "SELECT alert_id FROM vigil.raise_alert('retention', $1, 'high', 'title ' || $1)",
            &[entity.into()],
        )
        .unwrap()
        .unwrap();
        let close = match status {
            "acknowledged" => "SELECT vigil.acknowledge($1, 'ann')",
            "resolved" => "SELECT vigil.resolve($1, 'ann')",
            "dismissed" => "SELECT vigil.dismiss($1, 'ann')",
            "expired" => "UPDATE vigil.alerts SET status = 'expired' WHERE id = $1",
            _ => "SELECT $1",
        };
        Spi::run_with_args(close, &[id.into()]).unwrap();
        if !recent {
            Spi::run_with_args(
                "UPDATE vigil.alerts SET created_at = created_at - interval '100 days',
                        last_seen_at = last_seen_at - interval '100 days',
                        expires_at = expires_at - interval '100 days',
                        acknowledged_at = acknowledged_at - interval '100 days',
                        resolved_at = resolved_at - interval '100 days',
                        dismissed_at = dismissed_at - interval '100 days'
                 WHERE id = $1",
                &[id.into()],
            )
            .unwrap();
        }
        id
    }

    fn left(sql: &str) -> String {
        text(&format!(
            "SELECT coalesce(string_agg(entity, ',' ORDER BY entity), '') FROM ({sql}) x"
        ))
    }

    #[pg_test]
    fn purge_alerts_keeps_open_alerts_queued_notifications_and_cooldowns() {
        Spi::run(
            "SELECT vigil.create_channel('ops', 'webhook', 'http://127.0.0.1:9/hook', send_resolved => true, group_by => NULL)",
        )
        .unwrap();
        alert("firing-old", "firing", false);
        alert("acked-old", "acknowledged", false);
        let delivered = alert("resolved-old-delivered", "resolved", false);
        let queued = alert("resolved-old-queued", "resolved", false);
        alert("dismissed-old", "dismissed", false);
        alert("expired-old", "expired", false);
        alert("resolved-recent", "resolved", true);
        // Every alert enqueued its 'new' (and resolved ones a 'resolved')
        // notification; mark all delivered except one of `queued`.
        Spi::run("UPDATE vigil.notifications SET status = 'sent', sent_at = now()").unwrap();
        Spi::run_with_args(
            "UPDATE vigil.notifications SET status = 'pending'
             WHERE id = (SELECT max(id) FROM vigil.notifications WHERE alert_id = $1)",
            &[queued.into()],
        )
        .unwrap();
        // A rule alert inside its rule's cooldown (counted from its closing).
        Spi::run(
            "SELECT vigil.create_rule('slow_rule', 'm_slow', '>', 1, 'low', cooldown => '365 days');
             SELECT vigil.check_metric('m_slow', 5, 'rule-in-cooldown');",
        )
        .unwrap();
        Spi::run(
            "UPDATE vigil.alerts SET created_at = created_at - interval '100 days',
                    last_seen_at = last_seen_at - interval '100 days'
             WHERE entity = 'rule-in-cooldown';
             SELECT vigil.resolve(id, 'ann') FROM vigil.alerts WHERE entity = 'rule-in-cooldown';
             UPDATE vigil.alerts SET resolved_at = resolved_at - interval '100 days' WHERE entity = 'rule-in-cooldown';
             UPDATE vigil.notifications SET status = 'sent' WHERE status = 'pending' AND alert_id IN
                 (SELECT id FROM vigil.alerts WHERE entity = 'rule-in-cooldown');",
        )
        .unwrap();

        let outbox = one::<i64>("SELECT count(*) FROM vigil.notifications");
        assert_eq!(one::<i64>("SELECT vigil.purge_alerts('90 days')"), Some(3));
        assert_eq!(
            left("SELECT entity FROM vigil.alerts"),
            "acked-old,firing-old,resolved-old-queued,resolved-recent,rule-in-cooldown"
        );
        // The delivered history stays in the outbox, detached from the alert.
        assert_eq!(
            Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM vigil.notifications WHERE alert_id = $1",
                &[delivered.into()]
            )
            .unwrap(),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications"),
            outbox
        );
        // Nothing more to do; the queued alert goes once its row is sent.
        assert_eq!(one::<i64>("SELECT vigil.purge_alerts('90 days')"), Some(0));
        Spi::run("UPDATE vigil.notifications SET status = 'dead' WHERE status = 'pending'")
            .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.purge_alerts('90 days')"), Some(1));
        // Finished notifications go with purge_notifications; queued ones never.
        Spi::run(
            "UPDATE vigil.notifications SET updated_at = updated_at - interval '1 day';
             SELECT vigil.raise_alert('retention', 'still-queued', 'high', 't');
             UPDATE vigil.notifications SET updated_at = updated_at - interval '1 day' WHERE status = 'pending';",
        )
        .unwrap();
        let purged = one::<i64>("SELECT vigil.purge_notifications('0')").unwrap();
        assert!(purged > 0);
        assert_eq!(
            text("SELECT string_agg(DISTINCT status::text, ',') FROM vigil.notifications"),
            "pending"
        );
    }

    #[pg_test]
    fn purge_alerts_works_in_batches_and_drops_emptied_groups() {
        for i in 0..5 {
            alert(&format!("old-{i}"), "resolved", false);
        }
        alert("open", "firing", false);
        Spi::run(
            "INSERT INTO vigil.alert_groups (anomaly_type, severity, urgency, affected_count, entities, created_at)
             VALUES ('retention', 'high', 50, 6, '{x}', now() - interval '100 days');
             UPDATE vigil.alerts SET group_id = currval('vigil.alert_groups_id_seq');
             INSERT INTO vigil.alert_groups (anomaly_type, severity, urgency, affected_count, entities, created_at)
             VALUES ('retention', 'high', 50, 1, '{y}', now() - interval '100 days');",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT vigil.purge_alerts('90 days', max_rows => 2)"),
            Some(2)
        );
        assert_eq!(
            left("SELECT entity FROM vigil.alerts"),
            "old-2,old-3,old-4,open"
        );
        assert_eq!(
            one::<i64>("SELECT vigil.purge_alerts('90 days', 10)"),
            Some(3)
        );
        // The empty group went, the one still holding the open alert stays.
        assert_eq!(
            text("SELECT string_agg(entities[1], ',') FROM vigil.alert_groups"),
            "x"
        );
    }

    #[pg_test]
    fn purge_metric_values_keeps_the_baseline_of_pct_rules() {
        // ctr_drop_20pct (a default) averages ctr over 60 minutes; roas rules
        // compare the pushed value only.
        Spi::run(
            "INSERT INTO vigil.metric_values (metric, entity, value, recorded_at) VALUES
                 ('ctr', 'ad-1', 0.05, now() - interval '10 minutes'),
                 ('ctr', 'ad-1', 0.05, now() - interval '2 hours'),
                 ('roas', 'c-1', 3, now() - interval '10 minutes'),
                 ('roas', 'c-1', 3, now() - interval '40 days');",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.purge_metric_values()"), Some(1));
        assert_eq!(one::<i64>("SELECT vigil.purge_metric_values('0')"), Some(2));
        assert_eq!(
            text("SELECT string_agg(metric, ',') FROM vigil.metric_values"),
            "ctr"
        );
    }

    #[pg_test]
    fn purge_scan_runs_keeps_the_latest_run_and_its_groups() {
        Spi::run(
            "INSERT INTO vigil.scan_runs (started_at, finished_at, success)
             SELECT now() - g * interval '10 days', now() - g * interval '10 days', true
             FROM generate_series(4, 6) g;
             INSERT INTO vigil.alert_groups (scan_id, anomaly_type, severity, urgency, affected_count, entities)
             SELECT max(id), 'retention', 'low', 1, 1, '{z}' FROM vigil.scan_runs;",
        )
        .unwrap();
        // Everything is older than 30 days, but health needs the last run.
        assert_eq!(one::<i64>("SELECT vigil.purge_scan_runs()"), Some(2));
        assert_eq!(
            one::<bool>("SELECT started_at < now() - interval '39 days' FROM vigil.scan_runs"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT last_scan_at IS NOT NULL FROM vigil.health"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT scan_id IS NULL FROM vigil.alert_groups"),
            Some(true)
        );
    }

    #[pg_test]
    fn purge_functions_name_their_bad_arguments() {
        for f in [
            "purge_alerts",
            "purge_metric_values",
            "purge_scan_runs",
            "purge_notifications",
        ] {
            assert_eq!(
                error(&format!("SELECT vigil.{f}(NULL)")),
                "22004: older_than must not be NULL"
            );
            assert_eq!(
                error(&format!("SELECT vigil.{f}('-1 day')")),
                "22023: older_than must be a non-negative interval, got -1 days"
            );
            assert_eq!(
                error(&format!("SELECT vigil.{f}('178000000 years')")),
                "22008: older_than is too large: now() - 178000000 years is out of the timestamp range"
            );
            assert_eq!(
                error(&format!("SELECT vigil.{f}('1 day', 0)")),
                "22023: max_rows must be at least 1 (NULL: no limit), got 0"
            );
        }
    }

    #[pg_test]
    fn purge_functions_are_for_vigil_admin_only() {
        Spi::run(
            "CREATE ROLE ops_op IN ROLE vigil_operator;
             CREATE ROLE ops_admin IN ROLE vigil_admin;",
        )
        .unwrap();
        for f in [
            "purge_alerts",
            "purge_metric_values",
            "purge_scan_runs",
            "purge_notifications",
        ] {
            let sql = format!("SELECT vigil.{f}('1 day')");
            Spi::run("SET ROLE ops_op").unwrap();
            let refused = error(&sql);
            Spi::run("RESET ROLE; SET ROLE ops_admin").unwrap();
            let allowed = error(&sql);
            Spi::run("RESET ROLE").unwrap();
            assert!(refused.starts_with("42501:"), "{f}: {refused}");
            assert_eq!(allowed, "no error", "{f}");
            assert_eq!(
                one::<bool>(&format!(
                    "SELECT prosecdef AND provolatile = 'v' AND proparallel = 'u' AND NOT proisstrict
                     FROM pg_proc WHERE oid = 'vigil.{f}(interval, bigint)'::regprocedure"
                )),
                Some(true)
            );
        }
    }

    /// Rows a dump of the table would hold: its pg_extension_config_dump filter applied.
    fn dumped(table: &str, columns: &str) -> String {
        let filter = text(&format!(
            "SELECT c.cond FROM pg_extension e,
                    unnest(e.extconfig, e.extcondition) AS c(tab, cond)
             WHERE e.extname = 'pg_vigil' AND c.tab = 'vigil.{table}'::regclass"
        ));
        text(&format!(
            "SELECT coalesce(string_agg(x, ';' ORDER BY x), '') FROM
                 (SELECT concat_ws(':', {columns}) AS x FROM ONLY vigil.{table} {filter}) d"
        ))
    }

    #[pg_test]
    fn dumps_hold_changed_defaults_user_rows_and_tombstones_only() {
        assert_eq!(dumped("rules", "name"), "");
        assert_eq!(dumped("recommended_actions", "anomaly_type, severity"), "");
        assert_eq!(
            one::<i64>("SELECT min(id) FROM vigil.rules"),
            Some(1),
            "defaults keep their shipped ids"
        );
        Spi::run(
            "CREATE ROLE cfg_admin IN ROLE vigil_admin;
             SET ROLE cfg_admin;
             SELECT vigil.update_rule('roas_below_2', threshold => 1.5);
             SELECT vigil.disable_rule('cpa_above_100');
             SELECT vigil.delete_rule('budget_80pct');
             SELECT vigil.create_rule('my_rule', 'm', '>', 1, 'low');
             UPDATE vigil.recommended_actions SET actions = '{call ops}'
             WHERE anomaly_type = 'rule' AND severity = 'critical';
             DELETE FROM vigil.recommended_actions WHERE anomaly_type = 'queue_age' AND severity IS NULL;
             INSERT INTO vigil.recommended_actions VALUES ('my_type', NULL, '{look}');
             RESET ROLE;",
        )
        .unwrap();
        assert_eq!(
            dumped("rules", "name, threshold, enabled"),
            "cpa_above_100:100:f;my_rule:1:t;roas_below_2:1.5:t"
        );
        assert!(
            one::<i64>("SELECT id FROM vigil.rules WHERE name = 'my_rule'").unwrap() >= 1000,
            "user rules start after the reserved default ids"
        );
        assert_eq!(
            dumped("deleted_default_rules", "id, name"),
            "3:budget_80pct"
        );
        assert_eq!(
            dumped("recommended_actions", "anomaly_type, severity, actions"),
            "my_type:{look};rule:critical:{\"call ops\"}"
        );
        assert_eq!(
            dumped(
                "deleted_default_recommended_actions",
                "anomaly_type, severity"
            ),
            "queue_age"
        );
        // Editing a default back to what was shipped drops it from the dump;
        // re-creating a deleted default's key drops its tombstone.
        Spi::run(
            "SELECT vigil.update_rule('roas_below_2', threshold => 2);
             INSERT INTO vigil.recommended_actions SELECT * FROM vigil.default_recommended_actions
             WHERE anomaly_type = 'queue_age' AND severity IS NULL;",
        )
        .unwrap();
        assert_eq!(dumped("rules", "name"), "cpa_above_100;my_rule");
        assert_eq!(
            dumped("deleted_default_recommended_actions", "anomaly_type"),
            ""
        );
        // Admins cannot forge tombstones.
        Spi::run("SET ROLE cfg_admin").unwrap();
        let forged =
            error("INSERT INTO vigil.deleted_default_rules (id, name) VALUES (1, 'roas_below_2')");
        Spi::run("RESET ROLE").unwrap();
        assert!(forged.starts_with("42501:"), "{forged}");
    }

    #[pg_test]
    fn a_restored_row_replaces_its_fresh_default_in_either_order() {
        // What a restore does after CREATE EXTENSION, as a superuser: load
        // the dumped rows (COPY with ids) and tombstones, in any order.
        Spi::run(
            "INSERT INTO vigil.rules
                 (id, name, metric, operator, threshold, severity, lookback, cooldown, enabled)
             OVERRIDING SYSTEM VALUE VALUES (1, 'roas_low', 'roas', '<', 1.5, 'critical', '1 hour', '0', true),
                    (1000, 'roas_below_3', 'roas', '<', 2.5, 'low', '1 hour', '0', true);
             INSERT INTO vigil.deleted_default_rules (id, name) VALUES (2, 'roas_below_3'), (3, 'budget_80pct');
             INSERT INTO vigil.recommended_actions VALUES ('rule', 'critical', '{call ops}');
             INSERT INTO vigil.deleted_default_recommended_actions (anomaly_type, severity)
             VALUES ('queue_age', NULL), ('rule', 'critical');",
        )
        .unwrap();
        assert_eq!(
            text("SELECT string_agg(id || ':' || name || ':' || threshold, ',' ORDER BY id) FROM vigil.rules
                  WHERE id IN (1, 2, 3, 1000)"),
            "1:roas_low:1.5,1000:roas_below_3:2.5"
        );
        assert_eq!(
            text("SELECT string_agg(id::text, ',' ORDER BY id) FROM vigil.deleted_default_rules"),
            "2,3"
        );
        // The tombstone of a key that is present (edited) is not kept.
        assert_eq!(
            text(
                "SELECT array_to_string(actions, ',') FROM vigil.recommended_actions
                  WHERE anomaly_type = 'rule' AND severity = 'critical'"
            ),
            "call ops"
        );
        assert_eq!(
            text("SELECT string_agg(anomaly_type, ',') FROM vigil.deleted_default_recommended_actions"),
            "queue_age"
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM vigil.recommended_actions WHERE anomaly_type = 'queue_age'"
            ),
            Some(1)
        );
    }

    #[pg_test]
    fn only_a_superusers_insert_replaces_a_default() {
        Spi::run("CREATE ROLE cfg_admin2 IN ROLE vigil_admin; SET ROLE cfg_admin2").unwrap();
        let rule = error(
            "INSERT INTO vigil.rules (name, metric, operator, threshold, severity)
             VALUES ('roas_below_2', 'roas', '<', 1, 'low')",
        );
        let action = error("INSERT INTO vigil.recommended_actions VALUES ('rule', 'high', '{x}')");
        let api = error("SELECT vigil.create_rule('roas_below_2', 'roas', '<', 1, 'low')");
        Spi::run("RESET ROLE").unwrap();
        assert!(rule.starts_with("23505:"), "{rule}");
        assert!(action.starts_with("23505:"), "{action}");
        assert_eq!(api, "42710: rule 'roas_below_2' already exists");
        // create_rule runs as the extension owner, a superuser: still 42710.
        assert_eq!(
            error("SELECT vigil.create_rule('roas_below_2', 'roas', '<', 1, 'low')"),
            "42710: rule 'roas_below_2' already exists"
        );
        assert_eq!(
            one::<f64>("SELECT threshold FROM vigil.rules WHERE name = 'roas_below_2'"),
            Some(2.0)
        );
    }
}
