//! `#[pg_test]`s of the notification side of the security model (SPEC §3.6,
//! issue 13): the webhook destination policy, URLs never echoed by a failing
//! write, `LISTEN` payloads that carry ids only, size caps and deep JSON,
//! the `test_channel` rate limit and lease order, and interval overflow.

use pgrx::prelude::*;

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    /// What an ERROR said: SQLSTATE, message, DETAIL.
    #[derive(Debug)]
    struct Failure {
        code: String,
        message: String,
        detail: String,
    }

    /// Runs `sql` expecting an ERROR, inside a PL/pgSQL exception block (a
    /// subtransaction), so the test's transaction stays usable afterwards
    /// and an internal error (XX000, a Rust panic) is reported like any other.
    fn failure(sql: &str) -> Failure {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.vigil_err(stmt text, OUT code text, OUT message text, OUT detail text)
             LANGUAGE plpgsql AS $f$
             BEGIN
                 EXECUTE stmt;
                 code := ''; message := 'no error'; detail := '';
             EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                         detail = PG_EXCEPTION_DETAIL;
             END
             $f$",
        )
        .unwrap();
        let (code, message, detail) = Spi::get_three_with_args::<String, String, String>(
            "SELECT code, message, coalesce(detail, '') FROM pg_temp.vigil_err($1)",
            &[sql.into()],
        )
        .unwrap();
        let f = Failure {
            code: code.unwrap_or_default(),
            message: message.unwrap_or_default(),
            detail: detail.unwrap_or_default(),
        };
        assert!(!f.code.is_empty(), "{sql}: expected an error");
        f
    }

    fn assert_fails(sql: &str, code: &str, needle: &str) -> Failure {
        let f = failure(sql);
        assert_eq!(f.code, code, "{sql}: {f:?}");
        assert!(
            f.message.contains(needle),
            "{sql}: expected {needle:?} in {f:?}"
        );
        f
    }

    const INVALID: &str = "22023";
    const TOO_BIG: &str = "54000";

    // ------------------------------------------------ destination policy

    #[pg_test]
    fn link_local_metadata_and_unspecified_webhook_hosts_are_refused() {
        for (i, url) in [
            "http://169.254.169.254/latest/meta-data/SECRET",
            "http://2852039166/SECRET",
            "http://0xa9.0xfe.0xa9.0xfe/SECRET",
            "http://0251.0376.0251.0376/SECRET",
            "http://[::ffff:169.254.169.254]/SECRET",
            "http://[fe80::1%25eth0]/SECRET",
            "http://[fe80::1]/SECRET",
            "http://[fd00:ec2::254]/SECRET",
            "http://100.100.100.200/SECRET",
            "http://metadata.google.internal/computeMetadata/v1/SECRET",
            "http://0.0.0.0:9/SECRET",
            "http://[::]:9/SECRET",
        ]
        .iter()
        .enumerate()
        {
            let f = failure(&format!(
                "SELECT vigil.create_channel('p{i}', 'webhook', '{url}', group_by => NULL)"
            ));
            assert_eq!(f.code, INVALID, "{url}: {f:?}");
            assert!(f.message.starts_with("url "), "{url}: {f:?}");
            assert!(!f.message.contains("SECRET"), "{url}: {f:?}");
            assert!(!f.detail.contains("SECRET"), "{url}: {f:?}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM vigil.channels"), Some(0));
    }

    #[pg_test]
    fn destination_policy_errors_name_the_host_the_parser_normalised() {
        assert_fails(
            "SELECT vigil.create_channel('p', 'webhook', 'http://2852039166/x', group_by => NULL)",
            INVALID,
            "url host 169.254.169.254 is a cloud metadata address, refused by the destination policy; \
             list it in vigil.allowed_internal_hosts to allow it",
        );
    }

    #[pg_test]
    fn a_backslash_url_is_judged_by_the_host_reqwest_connects_to() {
        // '\' ends the host for the url crate (and reqwest): this is 169.254.169.254.
        assert_fails(
            r"SELECT vigil.create_channel('b1', 'webhook', 'http://169.254.169.254\x.example.com/', group_by => NULL)",
            INVALID,
            "169.254.169.254",
        );
        // ... and this one connects to 127.0.0.1 ("@169.254.169.254" is path).
        assert!(one::<i64>(
            r"SELECT vigil.create_channel('b2', 'webhook', 'http://127.0.0.1\@169.254.169.254/', group_by => NULL)"
        )
        .is_some());
    }

    #[pg_test]
    fn loopback_and_private_webhook_hosts_stay_allowed() {
        for (i, url) in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "https://hooks.slack.com/services/T/B/X",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                one::<i64>(&format!(
                    "SELECT vigil.create_channel('ok{i}', 'webhook', '{url}', group_by => NULL)"
                ))
                .is_some(),
                "{url}"
            );
        }
    }

    #[pg_test]
    fn direct_writes_to_channels_get_the_destination_policy() {
        Spi::run("SELECT vigil.create_channel('d', 'webhook', 'http://127.0.0.1:9/SECRET', group_by => NULL)")
            .unwrap();
        let f = assert_fails(
            "UPDATE vigil.channels SET url = 'http://[::ffff:a9fe:a9fe]/SECRET' WHERE name = 'd'",
            INVALID,
            "refused by the destination policy",
        );
        assert!(!f.message.contains("SECRET") && !f.detail.contains("SECRET"));
        assert_fails(
            "INSERT INTO vigil.channels (name, kind, url) VALUES ('d2', 'slack', 'http://169.254.0.1/')",
            INVALID,
            "link-local",
        );
    }

    #[pg_test]
    fn notification_limit_settings_are_sighup_with_documented_defaults() {
        assert_eq!(
            one::<String>(
                "SELECT setting || '/' || context FROM pg_settings WHERE name = 'vigil.allowed_internal_hosts'"
            )
            .as_deref(),
            Some("/sighup")
        );
        assert_eq!(
            one::<String>(
                "SELECT setting || '/' || context FROM pg_settings WHERE name = 'vigil.max_payload_bytes'"
            )
            .as_deref(),
            Some("65536/sighup")
        );
    }

    // ------------------------------------------- no URL in error DETAIL

    #[pg_test]
    fn no_failing_channel_write_prints_the_url_or_headers() {
        Spi::run(
            "SELECT vigil.create_channel('leak', 'webhook', 'http://127.0.0.1:9/URLSECRET',
                                         headers => '{\"Authorization\": \"Bearer HDRSECRET\"}', group_by => NULL)",
        )
        .unwrap();
        Spi::run("SELECT vigil.create_channel('other', 'webhook', 'http://127.0.0.1:9/o', group_by => NULL)")
            .unwrap();
        for set in [
            "enabled = NULL",
            "send_resolved = NULL",
            "min_severity = NULL",
            "created_at = NULL",
            "name = NULL",
            "name = ''",
            "kind = NULL",
            "kind = 'email'",
            "url = NULL",
            "url = 'not a url URLSECRET'",
            "headers = '[\"HDRSECRET\"]'",
            "repeat_interval = NULL",
            "repeat_interval = '-1 day'",
            "delivery_deadline = NULL",
            "delivery_deadline = '0'",
            "delivery_deadline = '31 days'",
            "max_per_second = -1",
            "max_per_second = 'NaN'",
            "name = 'other'",
        ] {
            let sql = format!("UPDATE vigil.channels SET {set} WHERE name = 'leak'");
            let f = failure(&sql);
            for secret in ["URLSECRET", "HDRSECRET", "127.0.0.1"] {
                assert!(
                    !f.message.contains(secret) && !f.detail.contains(secret),
                    "{sql}: {f:?}"
                );
            }
            // The trigger answers first: no NOT NULL / CHECK violation (whose
            // DETAIL is the whole row).
            assert!(
                !matches!(f.code.as_str(), "23502" | "23514"),
                "{sql}: {f:?}"
            );
        }
        for insert in [
            "INSERT INTO vigil.channels (name, kind, url, enabled) VALUES ('n', 'webhook', 'http://127.0.0.1/URLSECRET', NULL)",
            "INSERT INTO vigil.channels (name, kind, url, updated_at) VALUES ('n', 'webhook', 'http://127.0.0.1/URLSECRET', NULL)",
            "INSERT INTO vigil.channels (name, kind, url) VALUES ('leak', 'webhook', 'http://127.0.0.1/URLSECRET')",
        ] {
            let f = failure(insert);
            assert!(
                !f.message.contains("URLSECRET") && !f.detail.contains("URLSECRET"),
                "{insert}: {f:?}"
            );
        }
    }

    // --------------------------------------------------- LISTEN payloads

    #[pg_test]
    fn vigil_alerts_notifications_carry_only_the_alert_id_and_event() {
        let id = one::<i64>(
            "SELECT alert_id FROM vigil.raise_alert('leak_check', 'secret-entity', 'critical', 'secret title')",
        )
        .unwrap();
        let payload = one::<String>(&format!(
            "SELECT vigil.alert_event(a, 'new')::text FROM vigil.alerts a WHERE a.id = {id}"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": id, "event": "new"}),
            "{payload}"
        );
    }

    #[pg_test]
    fn pg_notify_channels_receive_only_the_alert_id_and_event() {
        Spi::run("SELECT vigil.create_channel('listeners', 'pg_notify', 'vigil_sec_out', group_by => NULL)").unwrap();
        let id = one::<i64>(
            "SELECT alert_id FROM vigil.raise_alert('leak_check', 'secret-entity', 'high', 'secret title')",
        )
        .unwrap();
        let payload = one::<String>(
            "SELECT n.payload::text FROM vigil.notifications n
             JOIN vigil.channels c ON c.id = n.channel_id WHERE c.name = 'listeners'",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": id, "event": "new"}),
            "{payload}"
        );
    }

    // -------------------------------------------------------- size caps

    #[pg_test]
    fn raise_alert_stores_details_over_the_cap_as_a_truncation_marker() {
        let id = one::<i64>(
            "SELECT alert_id FROM vigil.raise_alert('big', 'e', 'low', 't',
                 details => jsonb_build_object('blob', repeat('x', 100000)))",
        )
        .unwrap();
        let details =
            one::<pgrx::JsonB>(&format!("SELECT details FROM vigil.alerts WHERE id = {id}"))
                .unwrap()
                .0;
        assert_eq!(details["truncated"], serde_json::json!(true), "{details}");
        assert!(details["original_bytes"].as_i64().unwrap() > 100_000);
        // Bumps that merge small details one by one are capped too.
        Spi::run(
            "SELECT vigil.raise_alert('grow', 'e', 'low', 't', details => jsonb_build_object('k' || i, repeat('y', 1000)))
             FROM generate_series(1, 80) i",
        )
        .unwrap();
        assert!(
            one::<i32>(
                "SELECT octet_length(details::text) FROM vigil.alerts WHERE anomaly_type = 'grow'"
            )
            .unwrap()
                <= 65_536
        );
    }

    #[pg_test]
    fn check_metric_cannot_queue_a_notification_over_the_cap() {
        Spi::run("SELECT vigil.create_rule('big_ctx', 'm_big', '>', 0, 'high')").unwrap();
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        Spi::run(
            "SELECT count(*) FROM vigil.check_metric('m_big', 1, 'e1',
                 jsonb_build_object('blob', repeat('x', 5000000)))",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications"),
            Some(1)
        );
        let size =
            one::<i32>("SELECT max(octet_length(payload::text)) FROM vigil.notifications").unwrap();
        assert!(size <= 65_536, "{size}");
        assert_eq!(
            one::<bool>(
                "SELECT (payload -> 'vigil' -> 'alert' -> 'details' ->> 'truncated')::bool
                 FROM vigil.notifications"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn enqueued_payloads_with_huge_texts_are_cut_with_a_marker() {
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        Spi::run("SELECT vigil.raise_alert('big', 'e', 'high', repeat('T', 200000), repeat('S', 200000))")
            .unwrap();
        let size =
            one::<i32>("SELECT octet_length(payload::text) FROM vigil.notifications").unwrap();
        assert!(size <= 65_536, "{size}");
        assert_eq!(
            one::<bool>(
                "SELECT (payload -> 'vigil' -> 'alert' ->> 'truncated')::bool FROM vigil.notifications"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn send_webhook_refuses_a_payload_over_the_cap_naming_payload() {
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        assert_fails(
            "SELECT vigil.send_webhook('hook', jsonb_build_object('blob', repeat('x', 70000)))",
            TOO_BIG,
            "bytes; vigil.max_payload_bytes allows at most 65536",
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications"),
            Some(0)
        );
    }

    #[pg_test]
    fn deep_json_is_54000_naming_the_argument_never_an_internal_error() {
        let deep = |n: usize| format!("('{}1{}')::jsonb", "[".repeat(n), "]".repeat(n));
        let obj = |n: usize| format!("('{}1{}')::jsonb", "{\"a\": ".repeat(n), "}".repeat(n));
        assert_fails(
            &format!("SELECT vigil.slack_payload({}, 'new')", deep(200)),
            TOO_BIG,
            "alert is nested 200 levels deep",
        );
        assert_fails(
            &format!("SELECT vigil.webhook_payload({}, 'new', 'r')", obj(1000)),
            TOO_BIG,
            "alert is nested 1000 levels deep",
        );
        assert_fails(
            &format!(
                "SELECT vigil.create_channel('h', 'webhook', 'http://127.0.0.1/', headers => {}, group_by => NULL)",
                obj(300)
            ),
            TOO_BIG,
            "headers is nested 300 levels deep",
        );
        // With a channel, a deep details used to fail inside the payload builder.
        Spi::run("SELECT vigil.create_channel('hook', 'slack', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        assert_fails(
            &format!(
                "SELECT vigil.raise_alert('deep', 'e', 'high', 't', details => {})",
                obj(200)
            ),
            TOO_BIG,
            "details is nested 200 levels deep",
        );
        assert_fails(
            &format!("SELECT vigil.send_webhook('hook', {})", deep(150)),
            TOO_BIG,
            "payload is nested 150 levels deep",
        );
    }

    #[pg_test]
    fn numbers_beyond_f64_in_json_are_22023_naming_the_argument() {
        assert_fails(
            "SELECT vigil.slack_payload('{\"urgency\": 1e400}', 'new')",
            INVALID,
            "alert cannot be read as JSON: number out of range",
        );
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        assert_fails(
            "SELECT vigil.raise_alert('num', 'e', 'high', 't', details => '{\"x\": 1e400}')",
            INVALID,
            "details cannot be read as JSON",
        );
    }

    // ------------------------------------------------------ test_channel

    #[pg_test]
    fn a_second_test_of_a_channel_within_10_seconds_is_55000() {
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        assert!(one::<i64>("SELECT vigil.test_channel('hook')").is_some());
        assert_fails(
            "SELECT vigil.test_channel('hook')",
            "55000",
            "was tested less than 10 seconds ago",
        );
        // Other channels have their own window.
        Spi::run("SELECT vigil.create_channel('hook2', 'webhook', 'http://127.0.0.1:9/h2', group_by => NULL)")
            .unwrap();
        assert!(one::<i64>("SELECT vigil.test_channel('hook2')").is_some());
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications WHERE event = 'test'"),
            Some(2)
        );
    }

    #[pg_test]
    fn worker_leases_alert_notifications_before_older_test_messages() {
        Spi::run("SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)").unwrap();
        Spi::run("SELECT vigil.test_channel('hook')").unwrap();
        // The test message has been waiting longer than the alert.
        Spi::run(
            "UPDATE vigil.notifications SET next_attempt_at = now() - interval '1 hour' WHERE event = 'test'",
        )
        .unwrap();
        Spi::run("SELECT vigil.raise_alert('urgent', 'e', 'critical', 'paging')").unwrap();
        let claimed = crate::notify::outbox::claim(1, 60_000, &[]).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            one::<String>(&format!(
                "SELECT event FROM vigil.notifications WHERE id = {}",
                claimed[0].id
            ))
            .as_deref(),
            Some("new")
        );
    }

    // ------------------------------------------------- interval overflow

    #[pg_test]
    fn repeat_interval_that_would_overflow_is_refused_naming_it() {
        assert_fails(
            "SELECT vigil.create_channel('h', 'webhook', 'http://127.0.0.1:9/h',
                                         repeat_interval => '178000000 years', group_by => NULL)",
            INVALID,
            "repeat_interval must be at most 100 years",
        );
        Spi::run(
            "SELECT vigil.create_channel('h', 'webhook', 'http://127.0.0.1:9/h', group_by => NULL)",
        )
        .unwrap();
        assert_fails(
            "UPDATE vigil.channels SET repeat_interval = '1000 years' WHERE name = 'h'",
            INVALID,
            "repeat_interval",
        );
        // Alerts on the channel still enqueue.
        Spi::run("SELECT vigil.raise_alert('x', 'e', 'high', 't')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications"),
            Some(1)
        );
    }

    #[pg_test]
    fn delivery_deadline_is_positive_and_at_most_30_days_naming_it() {
        for bad in ["'0'", "'-1 hour'", "'30 days 1 second'", "'2 months'"] {
            assert_fails(
                &format!(
                    "SELECT vigil.create_channel('d', 'webhook', 'http://127.0.0.1:9/d',
                                                 delivery_deadline => {bad}, group_by => NULL)"
                ),
                INVALID,
                "delivery_deadline must be a positive interval of at most 30 days, got",
            );
        }
        assert_fails(
            "SELECT vigil.create_channel('d', 'webhook', 'http://127.0.0.1:9/d', delivery_deadline => NULL, group_by => NULL)",
            "22004",
            "delivery_deadline must not be NULL",
        );
        Spi::run(
            "SELECT vigil.create_channel('d', 'webhook', 'http://127.0.0.1:9/d', group_by => NULL)",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT delivery_deadline::text FROM vigil.channels WHERE name = 'd'"),
            Some("24:00:00".into())
        );
        Spi::run(
            "SELECT vigil.create_channel('e', 'webhook', 'http://127.0.0.1:9/e',
                                         delivery_deadline => '30 days', group_by => NULL)",
        )
        .unwrap();
        Spi::run("UPDATE vigil.channels SET delivery_deadline = '2 seconds' WHERE name = 'd'")
            .unwrap();
        assert_fails(
            "UPDATE vigil.channels SET delivery_deadline = '0' WHERE name = 'd'",
            INVALID,
            "delivery_deadline",
        );
    }

    #[pg_test]
    fn purge_and_raise_alert_interval_overflows_name_their_argument() {
        assert_fails(
            "SELECT vigil.purge_notifications('178000000 years')",
            "22008",
            "older_than is too large",
        );
        assert_fails(
            "SELECT vigil.raise_alert('x', 'e', 'high', 't', expires_in => '178000000 years')",
            INVALID,
            "expires_in must be at most 100 years",
        );
        assert_fails(
            "SELECT vigil.raise_alert('x', 'e', 'high', 't', dedup_window => '178000000 years')",
            INVALID,
            "dedup_window must be at most 100 years",
        );
    }
}
