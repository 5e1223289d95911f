//! `#[pg_test]`s of the alert lifecycle, rule alerts and dismissal, through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::{one, sql_error};
    use pgrx::prelude::*;

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
}
