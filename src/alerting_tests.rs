//! `#[pg_test]`s of routing, silences, inhibition and escalation (issue 15):
//! what lands in the outbox, held back or released, as the worker's SQL
//! steps (`_release_held`, `_run_escalations`, `_flush_groups`) see it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    fn text(sql: &str) -> String {
        one::<String>(sql).unwrap_or_default()
    }

    use crate::sql_tests::tests::sql_error;

    fn assert_error(sql: &str, code: &str, needle: &str) {
        let (got, msg) = sql_error(sql);
        assert_eq!(got, code, "{sql}: {msg}");
        assert!(msg.contains(needle), "{sql}: {needle:?} not in {msg:?}");
    }

    /// Ungrouped webhook channels (nothing listens on port 9: the worker
    /// never runs inside a test transaction anyway).
    fn channels(names: &[&str]) {
        for n in names {
            Spi::run(&format!(
                "SELECT vigil.create_channel('{n}', 'webhook', 'http://127.0.0.1:9/{n}', group_by => NULL,
                                             send_resolved => true)"
            ))
            .unwrap();
        }
    }

    fn raise(anomaly: &str, entity: &str, severity: &str) -> i64 {
        one::<i64>(&format!(
            "SELECT (vigil.raise_alert('{anomaly}', '{entity}', '{severity}', '{anomaly} {entity}')).alert_id"
        ))
        .unwrap()
    }

    /// "channel:event:entity" of every outbox row, in order.
    /// The flush's set-wise suppression (`_suppressed_alerts`) says the
    /// same as the per-alert check (`alert_suppressed_by`) of every alert.
    fn suppression_paths_agree() {
        let differing = text(
            "SELECT coalesce(string_agg(a.id || ': ' || coalesce(vigil.alert_suppressed_by(a), '-') || ' vs '
                                        || coalesce(s.reason, '-'), '; '), '')
             FROM vigil.alerts a
             LEFT JOIN vigil._suppressed_alerts(ARRAY(SELECT id FROM vigil.alerts)) s ON s.alert_id = a.id
             WHERE vigil.alert_suppressed_by(a) IS DISTINCT FROM s.reason",
        );
        assert_eq!(differing, "", "per alert vs set-wise");
    }

    fn outbox() -> String {
        text(
            "SELECT coalesce(string_agg(c.name || ':' || n.event || ':' || coalesce(a.entity, '-'), ' ' ORDER BY n.id), '')
             FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
             LEFT JOIN vigil.alerts a ON a.id = n.alert_id",
        )
    }

    #[pg_test]
    fn matchers_are_alertmanagers_and_errors_name_the_matcher() {
        assert_eq!(
            text(
                r#"SELECT vigil._matchers(ARRAY['team = pay', 'alertname=~"ROAS_.*"'], 'matchers')::text"#
            ),
            r#"{"team=\"pay\"","alertname=~\"ROAS_.*\""}"#
        );
        assert_eq!(
            one::<bool>(
                r#"SELECT vigil.labels_match('{"alertname": "ROAS_DROP", "team": "pay"}',
                                             ARRAY['alertname=~"ROAS.*"', 'team!=ops', 'region='])"#
            ),
            Some(true)
        );
        // Anchored: a partial match is no match.
        assert_eq!(
            one::<bool>(
                r#"SELECT vigil.labels_match('{"alertname": "ROAS_DROP"}', ARRAY['alertname=~ROAS'])"#
            ),
            Some(false)
        );
        assert_error(
            "SELECT vigil.labels_match('{}', ARRAY['a=b', 'team=~(x'])",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "matchers[2]: invalid regular expression",
        );
        assert_error(
            "SELECT vigil._matchers(NULL, 'matchers')",
            "ERRCODE_NULL_VALUE_NOT_ALLOWED",
            "matchers must not be NULL",
        );
        assert_error(
            "SELECT vigil.labels_match('[]', ARRAY['a=b'])",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "labels must be a JSON object",
        );
    }

    #[pg_test]
    fn routes_send_by_labels_first_match_continue_and_fallback() {
        channels(&["pay", "ops", "all", "spare"]);
        // No routes: every channel.
        assert_eq!(
            text(r#"SELECT vigil.route_alert('{"team": "pay"}')::text"#),
            "{pay,ops,all,spare}"
        );
        Spi::run(
            r#"SELECT vigil.create_route('payments', '{pay,all}', ARRAY['team="pay"'], "continue" => true, sort_order => 10);
               SELECT vigil.create_route('critical', '{ops}', ARRAY['severity=critical'], sort_order => 20);
               SELECT vigil.create_route('late', '{spare}', ARRAY['severity=~".+"'], sort_order => 30);"#,
        )
        .unwrap();
        let route = |labels: &str| text(&format!("SELECT vigil.route_alert('{labels}')::text"));
        // continue: payments, then critical; critical stops the walk.
        assert_eq!(
            route(r#"{"team": "pay", "severity": "critical"}"#),
            "{pay,all,ops}"
        );
        assert_eq!(
            route(r#"{"team": "pay", "severity": "low"}"#),
            "{pay,all,spare}"
        );
        assert_eq!(route(r#"{"severity": "critical"}"#), "{ops}");
        // Nothing matches: the channels no route names (none here).
        assert_eq!(route(r#"{"team": "ops"}"#), "{}");
        Spi::run("UPDATE vigil.routes SET enabled = false WHERE name = 'late'").unwrap();
        assert_eq!(route(r#"{"team": "ops"}"#), "{spare}");

        // Raised alerts reach only their routes' channels, through each
        // channel's own filters.
        Spi::run("UPDATE vigil.channels SET min_severity = 'high' WHERE name = 'all'").unwrap();
        Spi::run(
            r#"SELECT vigil.raise_alert('queue_depth', 'q1', 'medium', 'q1', labels => '{"team": "pay"}');
               SELECT vigil.raise_alert('queue_depth', 'q2', 'critical', 'q2');
               SELECT vigil.raise_alert('queue_depth', 'q3', 'low', 'q3');"#,
        )
        .unwrap();
        assert_eq!(outbox(), "pay:new:q1 ops:new:q2 spare:new:q3");

        // Checks, each naming what is wrong.
        assert_error(
            "SELECT vigil.create_route('x', '{nope}')",
            "ERRCODE_UNDEFINED_OBJECT",
            "channels: channel \"nope\" does not exist",
        );
        assert_error(
            "SELECT vigil.create_route('payments', '{pay}')",
            "ERRCODE_DUPLICATE_OBJECT",
            "route \"payments\" already exists",
        );
        assert_error(
            "SELECT vigil.create_route('x', '{}')",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "channels must name at least one channel",
        );
        assert_error(
            "UPDATE vigil.routes SET matchers = ARRAY['1a=b'] WHERE name = 'payments'",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "matchers[1]: expected a label name",
        );
        assert_error(
            "SELECT vigil.drop_route('nope')",
            "ERRCODE_UNDEFINED_OBJECT",
            "route \"nope\" does not exist",
        );
        // A channel a route names cannot be dropped; a rename follows.
        assert_error(
            "DELETE FROM vigil.channels WHERE name = 'ops'",
            "ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST",
            "route \"critical\" sends to it",
        );
        Spi::run("UPDATE vigil.channels SET name = 'ops2' WHERE name = 'ops'").unwrap();
        assert_eq!(
            text("SELECT channels::text FROM vigil.routes WHERE name = 'critical'"),
            "{ops2}"
        );
        Spi::run(
            "SELECT vigil.drop_route('critical'); DELETE FROM vigil.channels WHERE name = 'ops2'",
        )
        .unwrap();
    }

    #[pg_test]
    fn a_silence_holds_notifications_until_it_ends() {
        channels(&["hook"]);
        Spi::run(
            "SELECT vigil.create_channel('grouped', 'webhook', 'http://127.0.0.1:9/g', group_wait => '0 seconds',
                                         send_resolved => true)",
        )
        .unwrap();
        let silence = one::<i64>(
            "SELECT vigil.create_silence(ARRAY['entity=~\"db-.*\"'], now() + interval '2 hours', 'maintenance', 'ann')",
        )
        .unwrap();
        assert_eq!(
            text("SELECT state || ':' || matching_alerts FROM vigil.active_silences"),
            "active:0"
        );
        raise("sync_failure", "db-1", "high");
        let closed_while_silenced = raise("sync_failure", "db-2", "high");
        raise("sync_failure", "web-1", "high");
        assert_eq!(outbox(), "hook:new:web-1");
        suppression_paths_agree();
        assert_eq!(
            text("SELECT string_agg(reason, ',') FROM vigil.held_notifications"),
            format!("silence {silence},silence {silence}")
        );
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        assert_eq!(
            text("SELECT payload -> 'alerts' -> 0 -> 'labels' ->> 'entity' FROM vigil.notifications WHERE event = 'group'"),
            "web-1"
        );
        assert_eq!(
            one::<i64>("SELECT matching_alerts FROM vigil.active_silences"),
            Some(2)
        );
        // Still silenced: releasing sends nothing.
        assert_eq!(one::<i32>("SELECT vigil._release_held()"), Some(0));
        // Closing while held: a receiver never told it fired is not told
        // it resolved.
        Spi::run(&format!("SELECT vigil.resolve({closed_while_silenced})")).unwrap();
        assert_eq!(outbox(), "hook:new:web-1 grouped:group:-");

        Spi::run(&format!("SELECT vigil.expire_silence({silence})")).unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.active_silences"),
            Some(0)
        );
        assert_eq!(one::<i32>("SELECT vigil._release_held()"), Some(1));
        assert_eq!(outbox(), "hook:new:web-1 grouped:group:- hook:new:db-1");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.held_notifications"),
            Some(0)
        );
        // The group is due again and its message now lists db-1.
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        assert_eq!(
            text(
                "SELECT string_agg(e, ',' ORDER BY e) FROM vigil.notifications n,
                        jsonb_array_elements(n.payload -> 'alerts') a, LATERAL (SELECT a -> 'labels' ->> 'entity') x(e)
                 WHERE n.id = (SELECT max(id) FROM vigil.notifications WHERE event = 'group')"
            ),
            "db-1,web-1"
        );

        // Checks.
        assert_error(
            &format!("SELECT vigil.expire_silence({silence})"),
            "ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE",
            "already ended",
        );
        assert_error(
            "SELECT vigil.expire_silence(999999)",
            "ERRCODE_NO_DATA_FOUND",
            "silence 999999 does not exist",
        );
        assert_error(
            "SELECT vigil.create_silence(ARRAY['team!=x'], now() + interval '1 hour', 'c')",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "would match every alert",
        );
        assert_error(
            "SELECT vigil.create_silence(ARRAY['team=x'], now() - interval '1 hour', 'c', starts_at => now() - interval '2 hours')",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "ends_at must be in the future",
        );
        assert_error(
            "SELECT vigil.create_silence(ARRAY['team=x'], now() + interval '1 hour', '  ')",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "comment must not be empty",
        );
        assert_error(
            "SELECT vigil.create_silence(ARRAY['team=x'], now() + interval '400 days', 'c')",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "a silence lasts at most 1 year",
        );
        // What a restore copies in (an ended silence) is accepted.
        Spi::run(
            "INSERT INTO vigil.silences (matchers, starts_at, ends_at, created_by, comment)
             VALUES (ARRAY['team=x'], now() - interval '2 hours', now() - interval '1 hour', 'ann', 'old')",
        )
        .unwrap();
        // A pending silence does not silence yet.
        Spi::run(
            "SELECT vigil.create_silence(ARRAY['entity=later'], now() + interval '2 hours', 'c',
                                         starts_at => now() + interval '1 hour')",
        )
        .unwrap();
        raise("sync_failure", "later", "high");
        assert!(outbox().ends_with("hook:new:later"), "{}", outbox());
    }

    #[pg_test]
    fn a_group_that_failed_to_send_waits_out_its_retry_even_when_a_silence_ends() {
        Spi::run(
            "SELECT vigil.create_channel('retry-grouped', 'webhook', 'http://127.0.0.1:9/g', group_wait => '0 seconds')",
        )
        .unwrap();
        let silence = one::<i64>(
            "SELECT vigil.create_silence(ARRAY['entity=retry-s1'], now() + interval '1 hour', 'maintenance')",
        )
        .unwrap();
        raise("sync_failure", "retry-s1", "high");
        raise("sync_failure", "retry-s2", "high");
        // Sent, with s1 held.
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        assert_eq!(
            one::<i32>("SELECT cardinality(held) FROM vigil.notification_groups"),
            Some(1)
        );
        // The group's message cannot be built (its labels are garbled by
        // hand; pg tests run side by side, so no DDL on vigil's tables).
        Spi::run(
            "UPDATE vigil.notification_groups SET group_labels = jsonb_build_array(group_labels)",
        )
        .unwrap();
        // s3 joins; the next message cannot be sent: retried in 5 minutes.
        raise("sync_failure", "retry-s3", "high");
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(0));
        Spi::run("UPDATE vigil.notification_groups SET flush_at = now()").unwrap();
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(0));
        let waiting =
            "SELECT flush_at > now() + interval '4 minutes' FROM vigil.notification_groups";
        assert_eq!(one::<bool>(waiting), Some(true));
        // The silence ends: releasing does not cut the retry short.
        Spi::run(&format!("SELECT vigil.expire_silence({silence})")).unwrap();
        assert_eq!(one::<i32>("SELECT vigil._release_held()"), Some(0));
        assert_eq!(one::<bool>(waiting), Some(true));
        // The retry lists all three.
        Spi::run("UPDATE vigil.notification_groups SET group_labels = group_labels -> 0, flush_at = now()")
            .unwrap();
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        assert_eq!(
            one::<i32>(
                "SELECT jsonb_array_length(payload -> 'alerts') FROM vigil.notifications ORDER BY id DESC LIMIT 1"
            ),
            Some(3)
        );
    }

    #[pg_test]
    fn inhibition_holds_targets_while_a_source_fires() {
        channels(&["hook"]);
        Spi::run(
            r#"SELECT vigil.create_inhibit_rule('critical-mutes-lower', ARRAY['severity=critical'],
                                                ARRAY['severity=~"low|medium"'], '{entity}')"#,
        )
        .unwrap();
        let crit = raise("queue_age", "e1", "critical");
        let target = raise("queue_depth", "e1", "medium");
        raise("queue_depth", "e2", "medium");
        raise("lead_unresponded", "e1", "high");
        assert_eq!(
            text(&format!(
                "SELECT vigil.alert_suppressed_by(a) FROM vigil.alerts a WHERE id = {target}"
            )),
            format!("inhibit rule critical-mutes-lower (alert {crit})")
        );
        assert_eq!(outbox(), "hook:new:e1 hook:new:e2 hook:new:e1");
        suppression_paths_agree();
        // A source that matches the target side too does not inhibit one
        // that matches both (Alertmanager's rule): no self-inhibition.
        Spi::run(
            "SELECT vigil.create_inhibit_rule('any-mutes-low', ARRAY['alertname=~\".+\"'], ARRAY['severity=low'])",
        )
        .unwrap();
        let low = raise("lead_unresponded", "e9", "low");
        assert!(
            text(&format!(
                "SELECT vigil.alert_suppressed_by(a) FROM vigil.alerts a WHERE id = {low}"
            ))
            .starts_with("inhibit rule any-mutes-low"),
            "other open alerts do inhibit it"
        );
        suppression_paths_agree();
        // Equal labels: an absent label equals an absent one, never a
        // present one (also not an empty one).
        Spi::run(
            r#"SELECT vigil.create_inhibit_rule('team-outage', ARRAY['alertname=outage'],
                                                ARRAY['alertname=slow'], '{team}')"#,
        )
        .unwrap();
        Spi::run(
            r#"SELECT vigil.raise_alert('outage', 'o1', 'high', 'outage', labels => '{"team": "a"}');
               SELECT vigil.raise_alert('outage', 'o2', 'high', 'outage');
               SELECT vigil.raise_alert('slow', 's1', 'high', 'slow', labels => '{"team": "a"}');
               SELECT vigil.raise_alert('slow', 's2', 'high', 'slow', labels => '{"team": "b"}');
               SELECT vigil.raise_alert('slow', 's3', 'high', 'slow');
               SELECT vigil.raise_alert('slow', 's4', 'high', 'slow', labels => '{"team": ""}');"#,
        )
        .unwrap();
        assert_eq!(
            text(
                "SELECT string_agg(a.entity, ',' ORDER BY a.entity) FROM vigil.alerts a
                 WHERE a.anomaly_type = 'slow' AND vigil.alert_suppressed_by(a) LIKE 'inhibit rule team-outage%'"
            ),
            "s1,s3"
        );
        suppression_paths_agree();
        Spi::run("SELECT vigil.drop_inhibit_rule('team-outage')").unwrap();
        Spi::run(
            "SELECT vigil.resolve(id) FROM vigil.alerts WHERE anomaly_type IN ('outage', 'slow')",
        )
        .unwrap();
        Spi::run("SELECT vigil.drop_inhibit_rule('any-mutes-low')").unwrap();
        assert_eq!(one::<i32>("SELECT vigil._release_held()"), Some(1));
        // The source resolves: the target still fires and is notified.
        Spi::run(&format!("SELECT vigil.resolve({crit})")).unwrap();
        assert_eq!(one::<i32>("SELECT vigil._release_held()"), Some(1));
        assert!(
            outbox().ends_with("hook:resolved:e1 hook:new:e1"),
            "{}",
            outbox()
        );
        assert_error(
            "SELECT vigil.create_inhibit_rule('x', '{}', ARRAY['a=b'])",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "must each hold at least one matcher",
        );
        assert_error(
            "SELECT vigil.create_inhibit_rule('x', ARRAY['a=b'], ARRAY['a=c'], ARRAY['bad-name'])",
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "equal must be at most 32 label names",
        );
    }

    #[pg_test]
    fn an_escalation_chain_steps_until_acknowledged() {
        channels(&["esc-hook", "esc-pager", "esc-boss"]);
        Spi::run(
            r#"SELECT vigil.create_route('hook-only', '{esc-hook}');
               SELECT vigil.create_escalation_policy('oncall',
                   '[{"after": "5 minutes", "channels": ["esc-pager"]}, {"after": "10 minutes", "channels": ["esc-pager", "esc-boss"]}]',
                   min_severity => 'high', "repeat" => true)"#,
        )
        .unwrap();
        let a1 = raise("queue_age", "esc-q1", "critical");
        let a2 = raise("queue_age", "esc-q2", "high");
        raise("queue_age", "esc-q3", "medium");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.escalations"),
            Some(2)
        );
        // Not due yet.
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(0));
        let due = || Spi::run("UPDATE vigil.escalations SET next_at = now()").unwrap();
        due();
        // Step 1: one message on pager listing both alerts.
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(1));
        assert_eq!(
            text(
                "SELECT c.name || ':' || jsonb_array_length(n.payload -> 'alerts') || ':' || n.notify_key
                 FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id WHERE n.event = 'escalation'"
            ),
            "esc-pager:2:escalation:oncall:1"
        );
        assert_eq!(
            text("SELECT string_agg(step::text, ',') FROM vigil.escalations"),
            "1,1"
        );
        // Acknowledging one stops its chain; the other goes on to step 2.
        Spi::run(&format!("SELECT vigil.acknowledge({a2}, 'ann')")).unwrap();
        due();
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(2));
        assert_eq!(
            text(&format!(
                "SELECT string_agg(c.name || ':' || n.notify_key, ' ' ORDER BY n.id)
                 FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
                 WHERE n.event = 'escalation' AND n.alert_id = {a1}"
            )),
            "esc-pager:escalation:oncall:2 esc-boss:escalation:oncall:2"
        );
        // repeat: the chain starts over (cycle 1, step 0).
        assert_eq!(
            text("SELECT step || ':' || cycles FROM vigil.escalations"),
            "0:1"
        );
        // A step that cannot be sent (here its channel list is garbled by
        // hand, past the policies' check; pg tests run side by side, so no
        // DDL on vigil's tables) warns and is retried in a minute; the
        // chain stays.
        let garble = |steps: &str| {
            Spi::run(&format!(
                "SET LOCAL session_replication_role = replica;
                 UPDATE vigil.escalation_policies SET steps = {steps} WHERE name = 'oncall';
                 SET LOCAL session_replication_role = origin;"
            ))
            .unwrap()
        };
        garble("jsonb_set(steps, '{0,channels}', to_jsonb((steps -> 0 -> 'channels')::text))");
        let before = one::<i64>("SELECT count(*) FROM vigil.notifications").unwrap();
        due();
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(0));
        assert_eq!(
            one::<bool>(
                "SELECT step = 0 AND cycles = 1 AND next_at > now() + interval '50 seconds' FROM vigil.escalations"
            ),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.notifications"),
            Some(before)
        );
        garble("jsonb_set(steps, '{0,channels}', (steps -> 0 ->> 'channels')::jsonb)");
        due();
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(1));
        assert_eq!(
            text("SELECT step || ':' || cycles FROM vigil.escalations"),
            "1:1"
        );
        // Silenced: no page, the chain waits where it is.
        Spi::run(
            "SELECT vigil.create_silence(ARRAY['entity=esc-q1'], now() + interval '1 hour', 'fixing')",
        )
        .unwrap();
        due();
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(0));
        assert_eq!(
            one::<bool>("SELECT step = 1 AND next_at > now() FROM vigil.escalations"),
            Some(true)
        );
        // Resolved: the chain stops.
        Spi::run(&format!("SELECT vigil.resolve({a1})")).unwrap();
        assert_eq!(one::<i32>("SELECT vigil._run_escalations()"), Some(0));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.escalations"),
            Some(0)
        );
        // The pages never went through routing: hook got the alerts, only
        // the policy's channels the escalations.
        assert_eq!(
            text("SELECT string_agg(DISTINCT c.name, ',') FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id WHERE n.event <> 'escalation'"),
            "esc-hook"
        );

        assert_error(
            r#"SELECT vigil.create_escalation_policy('fast', '[{"after": "10 seconds", "channels": ["esc-pager"]}]')"#,
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "at least 1 minute in all",
        );
        assert_error(
            r#"SELECT vigil.create_escalation_policy('bad', '[{"after": "1 hour", "channels": ["nope"]}]')"#,
            "ERRCODE_UNDEFINED_OBJECT",
            "steps[1].channels: channel \"nope\" does not exist",
        );
        assert_error(
            r#"SELECT vigil.create_escalation_policy('bad', '[{"after": "soon", "channels": ["esc-pager"]}]')"#,
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "steps[1].after is not an interval",
        );
        // What the check adds up is what the clock adds: no months, no
        // negative parts.
        for after in ["1 mon", "-1 year 360 days 1 minute", "1 day -23 hours"] {
            assert_error(
                &format!(
                    r#"SELECT vigil.create_escalation_policy('bad', '[{{"after": "{after}", "channels": ["esc-pager"]}}]')"#
                ),
                "ERRCODE_INVALID_PARAMETER_VALUE",
                "must be days and time, none negative",
            );
        }
        assert_error(
            r#"SELECT vigil.create_escalation_policy('bad', '[{"wait": "1 hour"}]')"#,
            "ERRCODE_INVALID_PARAMETER_VALUE",
            "steps[1] must be",
        );
        assert_error(
            "DELETE FROM vigil.channels WHERE name = 'esc-boss'",
            "ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST",
            "escalation policy \"oncall\" sends to it",
        );
        Spi::run("UPDATE vigil.channels SET name = 'chief' WHERE name = 'esc-boss'").unwrap();
        assert_eq!(
            text("SELECT steps -> 1 -> 'channels' ->> 1 FROM vigil.escalation_policies"),
            "chief"
        );
    }

    #[pg_test]
    fn silences_are_for_operators_routes_for_admins() {
        Spi::run(
            "SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/h');
             SET LOCAL ROLE vigil_operator;
             SELECT vigil.create_silence(ARRAY['entity=x'], now() + interval '1 hour', 'op');",
        )
        .unwrap();
        assert_error(
            "SELECT vigil.create_route('r', '{hook}')",
            "ERRCODE_INSUFFICIENT_PRIVILEGE",
            "permission denied",
        );
        assert_error(
            "INSERT INTO vigil.silences (matchers, ends_at, created_by, comment) VALUES ('{entity=y}', now() + interval '1 hour', 'me', 'c')",
            "ERRCODE_INSUFFICIENT_PRIVILEGE",
            "permission denied",
        );
        Spi::run("SET LOCAL ROLE vigil_reader").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.active_silences"),
            Some(1)
        );
        assert_error(
            "SELECT vigil.create_silence(ARRAY['entity=x'], now() + interval '1 hour', 'r')",
            "ERRCODE_INSUFFICIENT_PRIVILEGE",
            "permission denied",
        );
        Spi::run("SET LOCAL ROLE vigil_admin").unwrap();
        Spi::run("SELECT vigil.create_route('r', '{hook}')").unwrap();
        Spi::run("RESET ROLE").unwrap();
    }
}
