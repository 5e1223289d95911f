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
                          description, enabled, alertname, labels) FROM vigil.rules ORDER BY id",
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
                                         '{\"Authorization\": \"Bearer s3cret\"}', min_severity => 'high', group_by => NULL);
             SELECT vigil.create_channel('ops-slack', 'slack', 'https://hooks.slack.com/services/T/B/x',
                                         send_resolved => true, delivery_deadline => '3 days', group_by => NULL);
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
            "SELECT vigil.create_channel('after-restore', 'pg_notify', 'vigil_after', group_by => NULL);
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

/// `statsagg` and `sketch` have binary send/receive (issue 16): `COPY …
/// (FORMAT binary)` out of one table and into another, and values read and
/// sent as binary parameters by a client, come back equal.
pub fn statsagg_and_sketch_travel_in_binary(c: &Cluster) {
    use postgres::types::{FromSql, IsNull, ToSql, Type};
    use std::io::{Read, Write};

    /// A value as raw binary-format bytes, whatever its type.
    #[derive(Debug)]
    struct Raw(Vec<u8>);
    impl<'a> FromSql<'a> for Raw {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw(raw.to_vec()))
        }
        fn accepts(_: &Type) -> bool {
            true
        }
    }
    impl ToSql for Raw {
        fn to_sql(
            &self,
            _: &Type,
            out: &mut postgres::types::private::BytesMut,
        ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            out.extend_from_slice(&self.0);
            Ok(IsNull::No)
        }
        fn accepts(_: &Type) -> bool {
            true
        }
        postgres::types::to_sql_checked!();
    }

    let mut db = c.connect("postgres");
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DROP TABLE IF EXISTS bin_a, bin_b;
         CREATE TABLE bin_a (k int, s vigil.statsagg, p vigil.sketch);
         INSERT INTO bin_a SELECT g % 3, vigil.stats_agg(v), vigil.percentile_agg(v)
         FROM generate_series(1, 300) g, LATERAL (SELECT g * 1.5 AS v) x GROUP BY g % 3;
         CREATE TABLE bin_b (LIKE bin_a);",
    )
    .unwrap();
    let mut out = Vec::new();
    db.copy_out("COPY bin_a TO STDOUT (FORMAT binary)")
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    let mut w = db.copy_in("COPY bin_b FROM STDIN (FORMAT binary)").unwrap();
    w.write_all(&out).unwrap();
    w.finish().unwrap();
    let same: i64 = db
        .query_one(
            "SELECT count(*) FROM bin_a a JOIN bin_b b ON a.k = b.k
             WHERE a.s::text = b.s::text AND a.p::text = b.p::text",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(same, 3, "COPY BINARY round trip");

    // The binary protocol: read as binary, send back as a binary parameter.
    let row = db
        .query_one("SELECT s, p FROM bin_a WHERE k = 1", &[])
        .unwrap();
    let (s, p): (Raw, Raw) = (row.get(0), row.get(1));
    let back = db
        .query_one(
            "SELECT $1::vigil.statsagg::text = (SELECT s::text FROM bin_a WHERE k = 1),
                    $2::vigil.sketch::text = (SELECT p::text FROM bin_a WHERE k = 1)",
            &[&s, &p],
        )
        .unwrap();
    assert!(back.get::<_, bool>(0) && back.get::<_, bool>(1));
    // Bytes that are no statsagg are refused as input, not stored.
    let bad = Raw(vec![1, 2, 3]);
    let err = db
        .query_one("SELECT $1::vigil.statsagg IS NULL", &[&bad])
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    db.batch_execute("DROP TABLE bin_a, bin_b").unwrap();
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0, so the body ends with the
/// connection); None until something answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The value of the first sample of `metric` whose labels contain `labels`.
fn sample(scrape: &str, metric: &str, labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        let bare = name.split('{').next()?;
        (bare == metric && name.contains(labels)).then(|| value.parse().ok())?
    })
}

/// contrib/prometheus and contrib/grafana work against the real tools
/// (issue 16): Debian's postgres_exporter, run with our queries as a role
/// that has only vigil_reader, exports pg_vigil's health, open alerts and
/// counters; promtool checks and unit-tests the alert rules; every query of
/// the Grafana dashboard names a metric the exporter exports.
pub fn prometheus_exporter_rules_and_dashboard_work(c: &Cluster) {
    let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let mut db = c.connect("postgres");
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_exporter') THEN
             CREATE ROLE vigil_exporter LOGIN;
           END IF;
         END $$;
         GRANT vigil_reader TO vigil_exporter;
         SELECT vigil.raise_alert('exporter_test', 'e1', 'critical', 'exporter test');
         SELECT vigil.scan();",
    )
    .unwrap();
    let port = pg_vigil_e2e::free_port();
    let mut exporter = std::process::Command::new("prometheus-postgres-exporter")
        .args([
            &format!("--web.listen-address=127.0.0.1:{port}"),
            &format!(
                "--extend.query-path={}",
                contrib.join("prometheus/postgres_exporter.yml").display()
            ),
            "--disable-default-metrics",
            "--disable-settings-metrics",
        ])
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "postgresql://vigil_exporter@127.0.0.1:{}/postgres?sslmode=disable",
                c.port
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prometheus-postgres-exporter (installed by scripts/setup.sh)");
    let scrape = pg_vigil_e2e::wait_for(
        "the exporter's metrics",
        std::time::Duration::from_secs(30),
        || http_get(port, "/metrics").filter(|m| m.contains("pg_vigil_worker_up")),
    );
    let _ = exporter.kill();
    let _ = exporter.wait();
    assert_eq!(
        sample(&scrape, "pg_vigil_worker_up", ""),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "pg_vigil_open_alerts_count",
            "severity=\"critical\""
        ),
        Some(1.0)
    );
    assert!(sample(&scrape, "pg_vigil_counters_scans_total", "").unwrap_or(0.0) >= 1.0);
    for m in [
        "pg_vigil_notification_queue_depth",
        "pg_vigil_seconds_since_last_scan",
        "pg_vigil_rollups_broken",
        "pg_vigil_counters_notifications_dead_total",
    ] {
        assert!(sample(&scrape, m, "").is_some(), "{m} missing:\n{scrape}");
    }
    assert!(
        scrape.contains("# TYPE pg_vigil_counters_notifications_sent_total counter"),
        "counters are Prometheus counters"
    );

    let promtool = |args: &[&str]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(contrib.join("prometheus"))
            .output()
            .expect("promtool (Debian prometheus, installed by scripts/setup.sh)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    promtool(&["check", "rules", "pg_vigil.rules.yml"]);
    promtool(&["test", "rules", "pg_vigil.rules.test.yml"]);

    // Every metric a dashboard query or an alert rule reads is exported.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib.join("grafana/pg_vigil.json")).unwrap(),
    )
    .unwrap();
    let rules = std::fs::read_to_string(contrib.join("prometheus/pg_vigil.rules.yml")).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    exprs.extend(
        rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: ").map(str::to_owned)),
    );
    assert!(exprs.len() > 10);
    for e in &exprs {
        for word in e.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')) {
            if word.starts_with("pg_vigil_") {
                assert!(
                    scrape.contains(&format!("\n{word}{{"))
                        || scrape.contains(&format!("\n{word} ")),
                    "{word} (in {e}) is not exported"
                );
            }
        }
    }
}
