//! End-to-end tests of day-2 operations: a whole-database `pg_dump` restored
//! into a fresh database keeps every configuration edit (issue 14).

use pg_vigil_e2e::Cluster;

const SOURCE: &str = "vigil_dump_src";

/// Configuration as users see it, one line per row, in a fixed order:
/// identical before the dump and after the restore. (Timestamps of
/// unchanged defaults are those of the install and are left out.)
const STATE: &[(&str, &str)] = &[
    (
        "rules",
        "SELECT concat_ws('|', id, name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type,
                          description, enabled) FROM vigil.rules ORDER BY id",
    ),
    (
        "recommended_actions",
        "SELECT concat_ws('|', anomaly_type, severity, actions) FROM vigil.recommended_actions
         ORDER BY anomaly_type, severity NULLS FIRST",
    ),
    (
        "deleted_default_rules",
        "SELECT concat_ws('|', id, name) FROM vigil.deleted_default_rules ORDER BY id",
    ),
    (
        "deleted_default_recommended_actions",
        "SELECT concat_ws('|', anomaly_type, severity) FROM vigil.deleted_default_recommended_actions
         ORDER BY anomaly_type, severity NULLS FIRST",
    ),
    (
        "channels",
        "SELECT concat_ws('|', id, name, kind, url, headers, min_severity, anomaly_types, send_resolved,
                          max_per_second, repeat_interval, delivery_deadline, enabled, created_at) FROM vigil.channels ORDER BY id",
    ),
    (
        "monitors",
        "SELECT concat_ws('|', id, name, kind, source_schema, source_table, created_by, options, enabled,
                          created_at) FROM vigil.monitors ORDER BY id",
    ),
    (
        "alerts",
        "SELECT concat_ws('|', id, rule, entity, status, occurrences, created_at) FROM vigil.alerts ORDER BY id",
    ),
    (
        "notifications",
        "SELECT concat_ws('|', id, channel_id, alert_id, event, status, idempotency_key)
         FROM vigil.notifications ORDER BY id",
    ),
];

fn state(db: &mut postgres::Client) -> Vec<(String, Vec<String>)> {
    STATE
        .iter()
        .map(|(name, sql)| {
            let rows = db
                .query(*sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            (name.to_string(), rows)
        })
        .collect()
}

fn one_i64(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// The cluster's worker serves `vigil.database = 'postgres'`, so nothing
/// delivers (and changes) the notifications queued in these databases
/// between the dump and the comparison.
pub fn dump_and_restore_keep_configuration_edits(c: &Cluster) {
    let mut src = c.fresh_db(SOURCE);
    src.batch_execute(
        "DROP ROLE IF EXISTS dump_admin;
         CREATE ROLE dump_admin LOGIN IN ROLE vigil_admin;
         CREATE TABLE public.sync_errors (source text NOT NULL, occurred_at timestamptz NOT NULL);
         GRANT SELECT ON public.sync_errors TO dump_admin;",
    )
    .unwrap();
    // The edits an administrator makes, through the API and by direct DML.
    let mut admin = c.connect_as(SOURCE, "dump_admin");
    admin
        .batch_execute(
            "SELECT vigil.update_rule('roas_below_2', threshold => 1.5, description => 'tighter');
             SELECT vigil.disable_rule('impressions_below_1000');
             UPDATE vigil.rules SET name = 'cpa_over_100' WHERE name = 'cpa_above_100';
             SELECT vigil.delete_rule('budget_80pct');
             SELECT vigil.delete_rule('roas_below_3');
             SELECT vigil.create_rule('roas_below_3', 'roas', '<', 2.5, 'low', cooldown => '15 minutes');
             SELECT vigil.create_rule('queue_depth_50', 'approval_queue_depth', '>', 50, 'high',
                                      anomaly_type => 'queue_depth');
             UPDATE vigil.recommended_actions SET actions = '{Call the on-call lead}'
             WHERE anomaly_type = 'rule' AND severity = 'critical';
             DELETE FROM vigil.recommended_actions WHERE anomaly_type = 'queue_age' AND severity = 'critical';
             INSERT INTO vigil.recommended_actions VALUES ('queue_depth', 'high', '{Add reviewers}');
             SELECT vigil.create_channel('ops-hook', 'webhook', 'https://hooks.example.com/vigil',
                                         '{\"Authorization\": \"Bearer s3cret\"}', min_severity => 'high');
             SELECT vigil.create_channel('ops-slack', 'slack', 'https://hooks.slack.com/services/T/B/x',
                                         send_resolved => true, delivery_deadline => '3 days');
             SELECT vigil.create_monitor('sync', 'count', 'public.sync_errors',
                 '{\"entity\": \"source\", \"time\": \"occurred_at\", \"thresholds\": {\"high\": 3}}');",
        )
        .unwrap();
    // Some history and queued work, which the dump keeps as it is.
    src.batch_execute(
        "SELECT vigil.check_metric('roas', 1.2, 'campaign-1');
         SELECT vigil.check_metric('approval_queue_depth', 70, 'queue');",
    )
    .unwrap();
    let before = state(&mut src);
    let max_rule = one_i64(&mut src, "SELECT max(id) FROM vigil.rules");
    assert!(
        max_rule >= 1001,
        "user rules after the reserved ids: {max_rule}"
    );
    drop(admin);
    drop(src);

    for format in ["custom", "plain"] {
        let target = format!("vigil_restored_{format}");
        let dump = c.tool_output(
            "pg_dump",
            &["--format", format, "--dbname", SOURCE],
            "pg_dump",
        );
        let mut pg = c.connect("postgres");
        pg.batch_execute(&format!("DROP DATABASE IF EXISTS {target} WITH (FORCE)"))
            .unwrap();
        pg.batch_execute(&format!("CREATE DATABASE {target} TEMPLATE template0"))
            .unwrap();
        // Any error fails the restore: no duplicate keys, no skipped rows.
        match format {
            "custom" => c.tool_input(
                "pg_restore",
                &["--exit-on-error", "--dbname", &target],
                &dump,
            ),
            _ => c.tool_input(
                "psql",
                &["-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", &target],
                &dump,
            ),
        };
        let mut db = c.connect(&target);
        let after = state(&mut db);
        for ((name, want), (_, got)) in before.iter().zip(&after) {
            assert_eq!(got, want, "{format} restore: {name} differs");
        }
        // Spot checks of what the state comparison covers.
        let rules: Vec<String> = db
            .query(
                "SELECT name || ':' || threshold || ':' || enabled FROM vigil.rules
                 WHERE name IN ('roas_below_2', 'roas_below_3', 'budget_80pct', 'cpa_above_100', 'cpa_over_100',
                                'impressions_below_1000', 'queue_depth_50') ORDER BY name",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            rules,
            [
                "cpa_over_100:100:true",
                "impressions_below_1000:1000:false",
                "queue_depth_50:50:true",
                "roas_below_2:1.5:true",
                "roas_below_3:2.5:true",
            ],
            "{format} restore"
        );
        // Sequences continue past the restored ids; the restored database
        // accepts new configuration and records further deletions.
        let next = one_i64(
            &mut db,
            "SELECT vigil.create_rule('after_restore', 'm', '>', 1, 'low')",
        );
        assert!(
            next > max_rule,
            "{format}: new rule id {next} <= {max_rule}"
        );
        db.batch_execute(
            "SELECT vigil.create_channel('after-restore', 'pg_notify', 'vigil_after');
             SELECT vigil.delete_rule('ad_disapproved');
             SELECT vigil.raise_alert('restored', 'e', 'low', 'after restore');",
        )
        .unwrap();
        assert_eq!(
            one_i64(
                &mut db,
                "SELECT count(*) FROM vigil.deleted_default_rules WHERE name IN ('ad_disapproved', 'budget_80pct')"
            ),
            2
        );
        drop(db);
        pg.batch_execute(&format!("DROP DATABASE {target} WITH (FORCE)"))
            .unwrap();
    }
    let mut pg = c.connect("postgres");
    pg.batch_execute(&format!("DROP DATABASE {SOURCE} WITH (FORCE)"))
        .unwrap();
    pg.batch_execute("DROP ROLE dump_admin").unwrap();
}
