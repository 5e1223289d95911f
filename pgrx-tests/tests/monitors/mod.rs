//! End-to-end tests of monitors in the preloaded cluster: a scan scheduled
//! with pg_cron runs on its own and raises alerts.

use pg_vigil_e2e::{wait_for, Cluster};
use std::time::Duration;

pub fn pg_cron_scheduled_scan_raises_alerts(c: &Cluster) {
    // pg_cron runs its jobs in cron.database_name (postgres).
    let mut db = c.connect("postgres");
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_cron;
         CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DROP TABLE IF EXISTS cron_sync_errors;
         CREATE TABLE cron_sync_errors (source text NOT NULL, occurred_at timestamptz NOT NULL);
         INSERT INTO cron_sync_errors
         SELECT s, now() - g * interval '10 minutes'
         FROM (VALUES ('stripe', 5), ('hubspot', 3), ('zendesk', 1)) AS v(s, n), generate_series(1, v.n) g;
         SELECT vigil.create_monitor('cron_sync', 'count', 'cron_sync_errors',
             '{\"entity\": \"source\", \"time\": \"occurred_at\",
               \"thresholds\": {\"medium\": 2, \"high\": 3, \"critical\": 5},
               \"anomaly_type\": \"sync_failure\"}');",
    )
    .unwrap();
    let job: i64 = db
        .query_one("SELECT vigil.schedule_scan('* * * * *', 'cron_sync')", &[])
        .unwrap()
        .get(0);
    // Scheduling again replaces the job instead of adding one.
    let again: i64 = db
        .query_one("SELECT vigil.schedule_scan('* * * * *', 'cron_sync')", &[])
        .unwrap()
        .get(0);
    assert_eq!(job, again);
    let command: String = db
        .query_one("SELECT command FROM cron.job WHERE jobid = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(command, "SELECT vigil.scan('cron_sync')");

    // pg_cron's smallest period is a minute: the first run comes within 60 s.
    let alerts: Vec<(String, String)> = wait_for("a pg_cron scan", Duration::from_secs(90), || {
        let rows = db
            .query(
                "SELECT entity, severity::text FROM vigil.alerts WHERE monitor = 'cron_sync' ORDER BY entity",
                &[],
            )
            .unwrap();
        (!rows.is_empty()).then(|| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    });
    assert_eq!(
        alerts,
        vec![
            ("hubspot".to_string(), "high".to_string()),
            ("stripe".to_string(), "critical".to_string())
        ]
    );
    let run = db
        .query_one(
            "SELECT success, (report->>'alerts_saved')::int FROM vigil.scan_runs
             WHERE monitor = 'cron_sync' ORDER BY id LIMIT 1",
            &[],
        )
        .unwrap();
    assert!(run.get::<_, bool>(0));
    assert_eq!(run.get::<_, i32>(1), 2);
    let succeeded: i64 = wait_for("pg_cron records the run", Duration::from_secs(10), || {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM cron.job_run_details WHERE jobid = $1 AND status = 'succeeded'",
                &[&job],
            )
            .unwrap()
            .get(0);
        (n > 0).then_some(n)
    });
    assert!(succeeded >= 1);
    let health: bool = db
        .query_one(
            "SELECT last_scan_at IS NOT NULL AND last_scan_success FROM vigil.health",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(health);

    let removed: bool = db
        .query_one("SELECT vigil.unschedule_scan('cron_sync')", &[])
        .unwrap()
        .get(0);
    assert!(removed);
    let left: i64 = db
        .query_one("SELECT count(*) FROM cron.job WHERE jobid = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let removed_again: bool = db
        .query_one("SELECT vigil.unschedule_scan('cron_sync')", &[])
        .unwrap()
        .get(0);
    assert!(!removed_again);
    db.batch_execute(
        "SELECT vigil.drop_monitor('cron_sync');
         DELETE FROM vigil.notifications; DELETE FROM vigil.alerts;
         DROP TABLE cron_sync_errors;",
    )
    .unwrap();
}
