//! End-to-end tests of day-2 operations: a whole-database `pg_dump` restored
//! into a fresh database keeps every configuration edit (issue 14); the
//! observability pack (contrib/prometheus, contrib/grafana) against the real
//! exporters, Prometheus and the dashboards' SQL (issue 16).

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

/// The value of the first sample of `metric` whose labels contain every
/// one of `labels` (fragments such as `le="+Inf"`).
fn sample(scrape: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        let bare = name.split('{').next()?;
        (bare == metric && labels.iter().all(|f| name.contains(f))).then(|| value.parse().ok())?
    })
}

/// A process of the test's, killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String], env: &[(&str, String)], what: &str) -> Running {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("{program} ({what}): {e}")),
    )
}

fn contrib() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib")
}

/// The login role the exporters and dashboards use: vigil_reader only.
fn reader_role(db: &mut postgres::Client) {
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_exporter') THEN
             CREATE ROLE vigil_exporter LOGIN;
           END IF;
         END $$;
         GRANT vigil_reader TO vigil_exporter;",
    )
    .unwrap();
}

/// The value of one `vigil.metrics` series (0 when absent).
fn metric(db: &mut postgres::Client, name: &str, label: &str) -> f64 {
    db.query_one(
        "SELECT coalesce(sum(value), 0) FROM vigil.metrics
         WHERE name = $1 AND coalesce(channel_kind, severity, '') = $2 AND le IS NULL",
        &[&name, &label],
    )
    .unwrap()
    .get(0)
}

/// contrib/prometheus against the real tools (issue 16): real events —
/// a webhook notification retried once and delivered to the loopback sink,
/// an alert raised and resolved, a scan, a write its rollup trigger fails —
/// show in `vigil.metrics`; Debian's postgres_exporter (queries.yaml) and
/// sql_exporter (sql_exporter.yml), run as a role that has only
/// vigil_reader, export them (the histogram as one); Prometheus, with
/// prometheus.yml, scrapes both, gets the same names from each, and
/// evaluates every rule without error; promtool checks and unit-tests the
/// rules; every metric the rules and the Prometheus dashboard read is
/// exported.
pub fn prometheus_and_sql_exporters_export_vigil_metrics_and_the_rules_evaluate(c: &Cluster) {
    use pg_vigil_e2e::sink::{Reply, Sink};
    use std::time::Duration;
    let contrib = contrib();
    let mut db = c.connect("postgres");
    reader_role(&mut db);
    let before = |db: &mut postgres::Client| {
        [
            ("notifications_sent_total", "webhook"),
            ("notifications_retried_total", "webhook"),
            ("notification_delivery_seconds_count", "webhook"),
            ("notification_delivery_seconds_sum", "webhook"),
            ("alerts_raised_total", "high"),
            ("alerts_resolved_total", "high"),
            ("scans_total", ""),
            ("rollup_trigger_errors_total", ""),
        ]
        .map(|(n, l)| metric(db, n, l))
    };
    // The counters are the cluster's: pg_cron's scans (an earlier test
    // schedules one) would count, raise and resolve alerts meanwhile, so its
    // jobs pause for this test. A scan first, on its own: it counts once, and
    // what it raises, resolves or expires comes before the baseline.
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_cron;
         CREATE TEMP TABLE paused_jobs AS SELECT jobid FROM cron.job WHERE active;
         UPDATE cron.job SET active = false WHERE jobid IN (SELECT jobid FROM paused_jobs);",
    )
    .unwrap();
    let scans = metric(&mut db, "scans_total", "");
    db.batch_execute("SELECT vigil.scan()").unwrap();
    assert_eq!(metric(&mut db, "scans_total", ""), scans + 1.0, "scans");
    let b = before(&mut db);

    let sink = Sink::start();
    sink.push("/metrics-hook", [Reply::Status(503)]);
    db.execute(
        "SELECT vigil.create_channel('metrics-hook', 'webhook', $1, group_by => NULL)",
        &[&sink.url("/metrics-hook")],
    )
    .unwrap();
    let alert: i64 = db
        .query_one(
            "SELECT (vigil.raise_alert('metrics_e2e', 'm1', 'high', 'metrics test')).alert_id",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        sink.wait_for_count(2, Duration::from_secs(60)),
        "a 503, then the retry"
    );
    pg_vigil_e2e::wait_for("the retry recorded", Duration::from_secs(30), || {
        (metric(&mut db, "notifications_sent_total", "webhook") > b[0]).then_some(())
    });
    db.execute("SELECT vigil.resolve($1, 'e2e')", &[&alert])
        .unwrap();
    // An aborted transaction counts nothing.
    db.batch_execute(
        "BEGIN; SELECT vigil.raise_alert('metrics_e2e', 'rolled back', 'high', 'x'); ROLLBACK;",
    )
    .unwrap();
    db.batch_execute(
        "CREATE TABLE public.metrics_src (ts timestamptz NOT NULL, g text NOT NULL);
         SELECT vigil.create_rollup('metrics_src_1h', 'public.metrics_src', 'ts', '1 hour', '{g}',
                                    '{\"n\": {\"agg\": \"count\"}}');
         ALTER TABLE public.metrics_src_1h ADD CONSTRAINT no_b CHECK (g <> 'b');",
    )
    .unwrap();
    // The summary refuses the row: the writer's statement fails with the
    // summary's own error, unchanged, and the error is counted.
    let err = db
        .execute(
            "INSERT INTO public.metrics_src VALUES (now(), 'a'), (now(), 'b')",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::CHECK_VIOLATION),
        "{err}"
    );
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(message.contains("\"no_b\""), "{message}");
    // A rollup of that summary whose filter fails: one failed write, counted
    // once, not once per nested rollup trigger.
    db.batch_execute(
        "SELECT vigil.create_rollup('metrics_src_1d', 'public.metrics_src_1h', 'bucket', '1 day', '{g}',
                                    '{\"n\": {\"agg\": \"count\", \"filter\": \"1/(length(g) - 1) > 0\"}}');",
    )
    .unwrap();
    let err = db
        .execute("INSERT INTO public.metrics_src VALUES (now(), 'c')", &[])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::DIVISION_BY_ZERO),
        "{err}"
    );
    // The trigger attached by anyone to a table of their own is refused
    // (39P01): provoking that is not a rollup's failure and counts nothing.
    db.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'metrics_nobody') THEN
             CREATE ROLE metrics_nobody LOGIN;
           END IF;
         END $$;",
    )
    .unwrap();
    let mut nobody = c.connect_as("postgres", "metrics_nobody");
    nobody
        .batch_execute(
            "CREATE TEMP TABLE x (a int);
             CREATE TRIGGER x AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION vigil._rollup_trigger();
             DO $$ BEGIN FOR i IN 1..50 LOOP
               BEGIN INSERT INTO x VALUES (1); EXCEPTION WHEN trigger_protocol_violated THEN NULL; END;
             END LOOP; END $$;",
        )
        .unwrap();
    drop(nobody);

    let a = before(&mut db);
    assert!(a[0] >= b[0] + 1.0, "sent {} -> {}", b[0], a[0]);
    assert!(a[1] >= b[1] + 1.0, "retried {} -> {}", b[1], a[1]);
    assert!(a[2] >= b[2] + 1.0, "latency count {} -> {}", b[2], a[2]);
    // The retry waited at least half its 1 s backoff.
    assert!(a[3] - b[3] >= 0.5, "latency sum {} -> {}", b[3], a[3]);
    assert_eq!(a[4], b[4] + 1.0, "raised (the rolled-back one not)");
    assert_eq!(a[5], b[5] + 1.0, "resolved");
    assert_eq!(a[6], b[6], "scans (none since the baseline)");
    assert_eq!(
        a[7],
        b[7] + 2.0,
        "rollup trigger errors: the CHECK and the nested filter, once each; no refusal"
    );
    // The counters are vigil.database's: another database of the cluster
    // shows none of them, and what happens there counts nothing.
    db.batch_execute("DROP DATABASE IF EXISTS metrics_other")
        .unwrap();
    db.batch_execute("CREATE DATABASE metrics_other").unwrap();
    {
        let mut other = c.connect("metrics_other");
        other
            .batch_execute(
                "CREATE EXTENSION pg_vigil;
                 SELECT vigil.raise_alert('metrics_other', 'x', 'high', 'elsewhere');
                 SELECT vigil.scan();",
            )
            .unwrap();
        let shown: i64 = other
            .query_one("SELECT count(*) FROM vigil.metrics", &[])
            .unwrap()
            .get(0);
        assert_eq!(shown, 0, "another database's vigil.metrics");
    }
    assert_eq!(metric(&mut db, "alerts_raised_total", "high"), a[4]);
    assert_eq!(metric(&mut db, "scans_total", ""), a[6]);
    db.batch_execute("DROP DATABASE metrics_other").unwrap();
    db.batch_execute(
        "SELECT vigil.drop_rollup('public.metrics_src_1d');
         SELECT vigil.drop_rollup('public.metrics_src_1h');
         DROP TABLE public.metrics_src;
         DELETE FROM vigil.channels WHERE name = 'metrics-hook';
         UPDATE cron.job SET active = true WHERE jobid IN (SELECT jobid FROM paused_jobs);",
    )
    .unwrap();
    sink.stop();

    let dsn = format!(
        "postgresql://vigil_exporter@127.0.0.1:{}/postgres?sslmode=disable",
        c.port
    );
    let pe_port = pg_vigil_e2e::free_port();
    let _pe = spawn(
        "prometheus-postgres-exporter",
        &[
            format!("--web.listen-address=127.0.0.1:{pe_port}"),
            format!(
                "--extend.query-path={}",
                contrib.join("prometheus/queries.yaml").display()
            ),
            "--disable-default-metrics".into(),
            "--disable-settings-metrics".into(),
        ],
        &[("DATA_SOURCE_NAME", dsn.clone())],
        "installed by scripts/setup.sh",
    );
    let se_port = pg_vigil_e2e::free_port();
    let _se = spawn(
        "prometheus-sql-exporter",
        &[
            format!(
                "-config.file={}",
                contrib.join("prometheus/sql_exporter.yml").display()
            ),
            format!("-web.listen-address=127.0.0.1:{se_port}"),
        ],
        // (sql_exporter picks its driver by the URL's scheme: postgres://.)
        &[(
            "PG_VIGIL_DSN",
            dsn.replacen("postgresql://", "postgres://", 1),
        )],
        "installed by scripts/setup.sh",
    );
    let scrape = pg_vigil_e2e::wait_for(
        "postgres_exporter's metrics",
        Duration::from_secs(30),
        || http_get(pe_port, "/metrics").filter(|m| m.contains("\npg_vigil_worker_up")),
    );
    let sql_scrape =
        pg_vigil_e2e::wait_for("sql_exporter's metrics", Duration::from_secs(30), || {
            http_get(se_port, "/metrics")
                .filter(|m| m.contains("\nsql_pg_vigil_notification_delivery_seconds{"))
        });
    let kind = "channel_kind=\"webhook\"";
    let exported = |scrape: &str, name: &str, labels: &[&str]| {
        sample(scrape, name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{scrape}"))
    };
    let checks: &[(&str, &str, &[&str], f64)] = &[
        (&scrape, "pg_vigil_worker_up", &[], 1.0),
        (&scrape, "pg_vigil_notifications_sent_total", &[kind], a[0]),
        (
            &scrape,
            "pg_vigil_notifications_retried_total",
            &[kind],
            a[1],
        ),
        (
            &scrape,
            "pg_vigil_notification_delivery_seconds_count",
            &[kind],
            a[2],
        ),
        (
            &scrape,
            "pg_vigil_notification_delivery_seconds_sum",
            &[kind],
            a[3],
        ),
        (
            &scrape,
            "pg_vigil_alerts_raised_total",
            &["severity=\"high\""],
            a[4],
        ),
        (
            &scrape,
            "pg_vigil_alerts_resolved_total",
            &["severity=\"high\""],
            a[5],
        ),
        (&scrape, "pg_vigil_scans_total", &[], a[6]),
        (&scrape, "pg_vigil_rollup_trigger_errors_total", &[], a[7]),
        (&sql_scrape, "sql_pg_vigil", &["col=\"worker_up\""], 1.0),
        (
            &sql_scrape,
            "sql_pg_vigil_notifications",
            &["col=\"sent_total\""],
            0.0,
        ),
        (
            &sql_scrape,
            "sql_pg_vigil_alerts",
            &["col=\"raised_total\""],
            0.0,
        ),
        (&sql_scrape, "sql_pg_vigil", &["col=\"scans_total\""], a[6]),
        (
            &sql_scrape,
            "sql_pg_vigil",
            &["col=\"rollup_trigger_errors_total\""],
            a[7],
        ),
    ];
    for &(scrape, name, labels, floor) in checks {
        let v = exported(scrape, name, labels);
        assert!(
            v >= floor,
            "{name}{labels:?} = {v}, expected at least {floor}"
        );
    }
    // sql_exporter labels the value column: the webhook kind's rows.
    let sql_sent = exported(
        &sql_scrape,
        "sql_pg_vigil_notifications",
        &[kind, "col=\"sent_total\""],
    );
    assert!(sql_sent >= a[0], "{sql_sent}");
    let sql_inf = exported(
        &sql_scrape,
        "sql_pg_vigil_notification_delivery_seconds",
        &[kind, "le=\"+Inf\""],
    );
    assert!(sql_inf >= a[2], "{sql_inf}");
    assert!(
        !sql_scrape
            .lines()
            .any(|l| l.starts_with("sql_exporter_last_scrape_failed{") && !l.ends_with(" 0")),
        "a sql_exporter query failed:\n{sql_scrape}"
    );
    // postgres_exporter's histogram: typed, cumulative, +Inf is the count.
    assert!(scrape.contains("# TYPE pg_vigil_notification_delivery_seconds histogram"));
    assert!(scrape.contains("# TYPE pg_vigil_notifications_sent_total counter"));
    let bucket = |le: &str| {
        exported(
            &scrape,
            "pg_vigil_notification_delivery_seconds_bucket",
            &[kind, &format!("le=\"{le}\"")],
        )
    };
    assert_eq!(
        bucket("+Inf"),
        exported(
            &scrape,
            "pg_vigil_notification_delivery_seconds_count",
            &[kind]
        )
    );
    assert!(bucket("0.01") <= bucket("1") && bucket("1") <= bucket("86400"));
    assert!(bucket("86400") <= bucket("+Inf"));

    // Prometheus with the shipped configuration, pointed at both exporters.
    let work = std::env::temp_dir().join(format!("pg_vigil_prometheus_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let config = std::fs::read_to_string(contrib.join("prometheus/prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 30s", "scrape_interval: 1s")
        .replace("evaluation_interval: 30s", "evaluation_interval: 1s")
        .replace("127.0.0.1:9187", &format!("127.0.0.1:{pe_port}"))
        .replace("127.0.0.1:9237", &format!("127.0.0.1:{se_port}"))
        .replace(
            "- pg_vigil.rules.yml",
            &format!(
                "- {}",
                contrib.join("prometheus/pg_vigil.rules.yml").display()
            ),
        );
    assert!(config.contains(&format!("127.0.0.1:{se_port}")));
    std::fs::write(work.join("prometheus.yml"), config).unwrap();
    let prom_port = pg_vigil_e2e::free_port();
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", work.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", work.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &[],
        "Debian prometheus, installed by scripts/setup.sh",
    );
    let api = |query: &str| -> Option<serde_json::Value> {
        let body = http_get(prom_port, &format!("/api/v1/query?query={query}"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].clone())
    };
    // The same names from both jobs (sql_exporter's after relabelling).
    for name in [
        "pg_vigil_worker_up",
        "pg_vigil_rollup_trigger_errors_total",
        "pg_vigil_notifications_sent_total",
        "pg_vigil_alerts_raised_total",
        "pg_vigil_notification_delivery_seconds_bucket",
        "pg_vigil_notification_delivery_seconds_sum",
        "pg_vigil_open_alerts_count",
    ] {
        let jobs = pg_vigil_e2e::wait_for(
            &format!("{name} from both exporters in Prometheus"),
            Duration::from_secs(60),
            || {
                let result = api(name)?;
                let mut jobs: Vec<String> = result
                    .as_array()?
                    .iter()
                    .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
                    .collect();
                jobs.sort();
                jobs.dedup();
                (jobs.len() == 2).then_some(jobs)
            },
        );
        assert_eq!(
            jobs,
            ["pg_vigil_postgres_exporter", "pg_vigil_sql_exporter"],
            "{name}"
        );
    }
    let errors = api("pg_vigil_rollup_trigger_errors_total").unwrap();
    for s in errors.as_array().unwrap() {
        assert!(s["metric"]["col"].is_null(), "relabelled: {s}");
        let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(v, a[7], "{s}");
    }
    // Every rule evaluates (no PromQL error on the real series).
    let rules = pg_vigil_e2e::wait_for("every rule evaluated", Duration::from_secs(60), || {
        let body = http_get(prom_port, "/api/v1/rules")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rules: Vec<serde_json::Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (!rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown")).then_some(rules)
    });
    assert_eq!(rules.len(), 11);
    for r in &rules {
        assert_eq!(r["health"], "ok", "{r}");
    }
    // Every query of the Prometheus dashboard is PromQL Prometheus runs.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib.join("grafana/pg_vigil-prometheus.json")).unwrap(),
    )
    .unwrap();
    let dashboard_exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().replace("$instance", ".*"))
        .collect();
    for e in &dashboard_exprs {
        let encoded: String = e
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        assert!(api(&encoded).is_some(), "Prometheus refuses {e}");
    }
    drop(_prom);
    let _ = std::fs::remove_dir_all(&work);

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
    promtool(&["check", "config", "prometheus.yml"]);

    // Every metric an alert rule or the Prometheus dashboard reads is exported.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib.join("grafana/pg_vigil-prometheus.json")).unwrap(),
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
    assert!(exprs.len() > 15);
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

/// One Grafana time range and interval, as the test substitutes them.
struct Range {
    from: String,
    to: String,
    interval_s: u64,
}

/// Seconds of a Grafana interval: `60s`, `'5m'`, `1h`, `1d`.
fn interval_seconds(arg: &str) -> Result<u64, String> {
    let arg = arg.trim().trim_matches('\'');
    let (n, unit) = arg.split_at(arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len()));
    let n: u64 = n.parse().map_err(|_| format!("interval {arg:?}"))?;
    let unit = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("interval {arg:?}")),
    };
    Ok(n * unit)
}

/// The SQL Grafana's PostgreSQL data source sends for `raw`: `$__interval`
/// replaced, then the macros the dashboard uses, as Grafana writes them
/// (pkg/tsdb/grafana-postgresql-datasource/macros.go). Any other `$__`
/// macro or a `$variable` is an error: it would reach PostgreSQL as is.
fn grafana_sql(raw: &str, r: &Range) -> Result<String, String> {
    let text = raw.replace("$__interval", &format!("{}s", r.interval_s));
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let name_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        if !tail.starts_with('(') {
            return Err(format!("macro $__{name} without arguments"));
        }
        let mut depth = 0;
        let close = tail
            .char_indices()
            .find(|(_, ch)| {
                match ch {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .ok_or_else(|| format!("unbalanced $__{name}("))?;
        let args: Vec<&str> = tail[1..close]
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let group = |args: &[&str]| -> Result<String, String> {
            let s = interval_seconds(args[1])?;
            Ok(format!("floor(extract(epoch from {})/{s})*{s}", args[0]))
        };
        out.push_str(&match (name, args.len()) {
            ("timeFilter", 1) => format!("{} BETWEEN '{}' AND '{}'", args[0], r.from, r.to),
            ("timeFrom", 0) => format!("'{}'", r.from),
            ("timeTo", 0) => format!("'{}'", r.to),
            ("timeGroup", 2) => group(&args)?,
            ("timeGroupAlias", 2) => format!("{} AS \"time\"", group(&args)?),
            _ => return Err(format!("unknown Grafana macro $__{name} with {args:?}")),
        });
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    let variable = out
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || w[1] == b'_' || w[1] == b'{'));
    if variable {
        return Err(format!("a dashboard variable is left in {out}"));
    }
    Ok(out)
}

/// `grafana_sql` writes what Grafana writes, and refuses what it cannot.
fn grafana_macros_are_substituted_as_grafana_does() {
    let r = Range {
        from: "2026-01-01T00:00:00Z".into(),
        to: "2026-01-01T06:00:00Z".into(),
        interval_s: 60,
    };
    assert_eq!(
        grafana_sql(
            "SELECT $__timeGroupAlias(t, $__interval), x FROM a WHERE $__timeFilter(t) AND t < $__timeTo()",
            &r
        )
        .unwrap(),
        "SELECT floor(extract(epoch from t)/60)*60 AS \"time\", x FROM a \
         WHERE t BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T06:00:00Z' AND t < '2026-01-01T06:00:00Z'"
    );
    assert_eq!(
        grafana_sql("$__timeGroup(t, '5m') > $__timeFrom()", &r).unwrap(),
        "floor(extract(epoch from t)/300)*300 > '2026-01-01T00:00:00Z'"
    );
    for unknown in [
        "$__unixEpochFilter(t)",
        "$__timeFilter",
        "$severity",
        "${datasource}",
        "$__timeGroup(t, 5x)",
    ] {
        assert!(grafana_sql(unknown, &r).is_err(), "{unknown}");
    }
}

/// contrib/grafana/pg_vigil.json (Grafana's PostgreSQL data source): every
/// panel's query and the alert annotations, with Grafana's macros
/// substituted, run as a login role that has only vigil_reader and return
/// what the panel reads — a `time` column for time series; health, queue,
/// alerts by severity and the raised-and-resolved alert as an annotation
/// with its end.
pub fn grafana_dashboard_queries_run_as_vigil_reader(c: &Cluster) {
    grafana_macros_are_substituted_as_grafana_does();
    let mut db = c.connect("postgres");
    reader_role(&mut db);
    db.batch_execute(
        "DELETE FROM vigil.channels WHERE name = 'grafana-e2e';
         SELECT vigil.create_channel('grafana-e2e', 'pg_notify', 'vigil_grafana_e2e');",
    )
    .unwrap();
    let alert: i64 = db
        .query_one(
            "SELECT (vigil.raise_alert('grafana_e2e', 'g1', 'medium', 'dashboard test')).alert_id",
            &[],
        )
        .unwrap()
        .get(0);
    db.execute("SELECT vigil.resolve($1, 'e2e')", &[&alert])
        .unwrap();
    let (from, to): (String, String) = {
        let r = db
            .query_one(
                "SELECT to_char((now() - interval '6 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        to_char((now() + interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let range = Range {
        from,
        to,
        interval_s: 60,
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib().join("grafana/pg_vigil.json")).unwrap(),
    )
    .unwrap();
    let mut reader = c.connect_as("postgres", "vigil_exporter");
    let mut queries: Vec<(String, String, String)> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            p["datasource"]["type"], "grafana-postgresql-datasource",
            "{}",
            p["title"]
        );
        for t in p["targets"].as_array().unwrap() {
            queries.push((
                p["title"].as_str().unwrap().to_owned(),
                t["format"].as_str().unwrap().to_owned(),
                t["rawSql"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let annotations = dashboard["annotations"]["list"].as_array().unwrap();
    for a in annotations {
        queries.push((
            format!("annotation {}", a["name"]),
            "annotation".into(),
            a["target"]["rawSql"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(
        queries.len() >= 10,
        "panels and annotations: {}",
        queries.len()
    );
    let mut seen = std::collections::BTreeMap::new();
    for (title, format, raw) in &queries {
        let sql = grafana_sql(raw, &range).unwrap_or_else(|e| panic!("{title}: {e}"));
        let rows = reader
            .query(sql.as_str(), &[])
            .unwrap_or_else(|e| panic!("{title}: {e}\n{sql}"));
        let stmt = reader.prepare(sql.as_str()).unwrap();
        let columns: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
        match format.as_str() {
            "time_series" => {
                assert_eq!(columns[0], "time", "{title}: {columns:?}");
                assert!(columns.len() >= 2, "{title}: {columns:?}");
            }
            "annotation" => assert_eq!(columns, ["time", "timeend", "text", "tags"], "{title}"),
            _ => assert!(!columns.is_empty(), "{title}"),
        }
        seen.insert(title.clone(), rows);
    }
    let rows = |title: &str| {
        seen.get(title)
            .unwrap_or_else(|| panic!("no panel {title:?}"))
    };
    let health = rows("Health");
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].get::<_, i32>("worker up"), 1);
    let by_severity = rows("Open alerts by severity");
    assert_eq!(by_severity.len(), 5, "every severity, open or not");
    assert_eq!(by_severity[0].get::<_, String>("severity"), "critical");
    assert!(!rows("Queue per channel").is_empty());
    assert!(!rows("Scans").is_empty(), "the scan above is in the range");
    let raised = rows("Alerts raised by severity");
    assert!(raised
        .iter()
        .any(|r| r.get::<_, String>("metric") == "medium" && r.get::<_, i64>("value") >= 1));
    assert!(!rows("Counters since the server started").is_empty());
    let annotation = rows(&format!("annotation {}", annotations[0]["name"]));
    let mine = annotation
        .iter()
        .find(|r| r.get::<_, String>("text").contains("dashboard test"))
        .expect("the alert is an annotation");
    assert!(
        mine.get::<_, Option<std::time::SystemTime>>("timeend")
            .is_some(),
        "resolved: the annotation has an end"
    );
    assert_eq!(mine.get::<_, String>("tags"), "medium,grafana_e2e,resolved");
    // A role without vigil_reader reads nothing through the dashboard.
    db.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_nobody') THEN
             CREATE ROLE vigil_nobody LOGIN;
           END IF;
         END $$;",
    )
    .unwrap();
    let mut nobody = c.connect_as("postgres", "vigil_nobody");
    let err = nobody
        .query(grafana_sql(&queries[0].2, &range).unwrap().as_str(), &[])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    db.batch_execute("DELETE FROM vigil.channels WHERE name = 'grafana-e2e'")
        .unwrap();
}
