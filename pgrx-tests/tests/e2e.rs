//! End-to-end tests against a real PostgreSQL 15 cluster that preloads
//! pg_cron and pg_vigil. Run with `cargo test -p pg_vigil_e2e` after
//! `make install`; `make test` does both.

use pg_vigil_e2e::{run, wait_for, Cluster, Test};
use std::time::Duration;

const WORKER: &str = "pg_vigil worker";

fn worker_pid(c: &Cluster) -> Option<i32> {
    let mut db = c.connect("postgres");
    db.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = $1",
        &[&WORKER],
    )
    .unwrap()
    .map(|r| r.get(0))
}

/// (state, heartbeats, poll_interval_ms) as the worker last reported them.
fn worker_status(db: &mut postgres::Client) -> (String, i64, Option<i32>) {
    let r = db
        .query_one(
            "SELECT state, heartbeats, poll_interval_ms FROM vigil.worker_status()",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn worker_starts_with_the_cluster_before_the_extension_exists(c: &Cluster) {
    // The worker must be up and tolerate `postgres` not having pg_vigil yet.
    wait_for(
        "worker in pg_stat_activity",
        Duration::from_secs(20),
        || worker_pid(c),
    );
    let mut db = c.connect("postgres");
    let installed: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_vigil')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !installed,
        "this test must run before the extension is created"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        worker_pid(c).is_some(),
        "worker died while the extension was missing"
    );

    db.batch_execute("CREATE EXTENSION pg_vigil").unwrap();
    let (state, first, _) = wait_for("worker idle", Duration::from_secs(10), || {
        let s = worker_status(&mut db);
        (s.0 == "idle").then_some(s)
    });
    assert_eq!(state, "idle");
    wait_for("heartbeat advancing", Duration::from_secs(10), || {
        (worker_status(&mut db).1 > first).then_some(())
    });
    let row = db
        .query_one(
            "SELECT worker_running, worker_pid, worker_heartbeat_age_s FROM vigil.health",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<i32>>(1), worker_pid(c));
    let age: f64 = row.get(2);
    assert!((0.0..60.0).contains(&age), "heartbeat age {age}");
}

/// ALTER SYSTEM cannot share a transaction with anything, so one statement each.
fn set_config(db: &mut postgres::Client, statements: &[&str]) {
    for sql in statements {
        db.batch_execute(sql).unwrap();
    }
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
}

fn worker_reloads_settings_on_sighup(c: &Cluster) {
    let mut db = c.connect("postgres");
    set_config(&mut db, &["ALTER SYSTEM SET vigil.poll_interval_ms = 250"]);
    wait_for("poll interval 250 applied", Duration::from_secs(10), || {
        (worker_status(&mut db).2 == Some(250)).then_some(())
    });
    set_config(&mut db, &["ALTER SYSTEM SET vigil.worker_enabled = off"]);
    wait_for("worker disabled", Duration::from_secs(10), || {
        (worker_status(&mut db).0 == "disabled").then_some(())
    });
    set_config(
        &mut db,
        &[
            "ALTER SYSTEM RESET vigil.worker_enabled",
            "ALTER SYSTEM RESET vigil.poll_interval_ms",
        ],
    );
    wait_for("worker idle again", Duration::from_secs(10), || {
        let s = worker_status(&mut db);
        (s.0 == "idle" && s.2 == Some(1000)).then_some(())
    });
}

fn worker_comes_back_after_pg_terminate_backend(c: &Cluster) {
    let before = worker_pid(c).expect("worker running");
    let mut db = c.connect("postgres");
    db.execute("SELECT pg_terminate_backend($1)", &[&before])
        .unwrap();
    let after = wait_for("a new worker", Duration::from_secs(20), || {
        worker_pid(c).filter(|p| *p != before)
    });
    assert!(c
        .log()
        .contains(&format!("[{before}] {WORKER} LOG:  {WORKER} stopped")));
    wait_for("new worker idle", Duration::from_secs(10), || {
        let s = worker_status(&mut db);
        (s.0 == "idle").then_some(())
    });
    assert_ne!(before, after);
}

fn worker_follows_vigil_database_and_waits_for_it_to_exist(c: &Cluster) {
    let mut admin = c.connect("postgres");
    admin
        .batch_execute("DROP DATABASE IF EXISTS vigil_later")
        .unwrap();
    set_config(
        &mut admin,
        &["ALTER SYSTEM SET vigil.database = 'vigil_later'"],
    );
    // The worker restarts to follow the setting, cannot connect yet, and
    // says so instead of pretending to run.
    wait_for(
        "worker reports it cannot connect",
        Duration::from_secs(20),
        || {
            let r = admin
                .query_one(
                    "SELECT running, state, database FROM vigil.worker_status()",
                    &[],
                )
                .unwrap();
            let (running, state, database): (bool, String, String) = (r.get(0), r.get(1), r.get(2));
            (!running && state == "connecting" && database == "vigil_later").then_some(())
        },
    );
    admin.batch_execute("CREATE DATABASE vigil_later").unwrap();
    wait_for(
        "worker connected to vigil_later",
        Duration::from_secs(30),
        || {
            admin
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE backend_type = $1 AND datname = 'vigil_later'",
                &[&WORKER],
            )
            .unwrap()
        },
    );
    set_config(&mut admin, &["ALTER SYSTEM RESET vigil.database"]);
    wait_for("worker back in postgres", Duration::from_secs(30), || {
        let s = worker_status(&mut admin);
        let row = admin
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE backend_type = $1 AND datname = 'postgres'",
                &[&WORKER],
            )
            .unwrap();
        (s.0 == "idle" && row.is_some()).then_some(())
    });
    admin
        .batch_execute("DROP DATABASE vigil_later WITH (FORCE)")
        .unwrap();
}

fn scoring_functions_answer_in_the_preloaded_cluster(c: &Cluster) {
    let mut db = c.fresh_db("scoring");
    let r = db
        .query_one(
            "SELECT vigil.severity_above(18, 10, 15, 25)::text,
                    vigil.severity_below(12, 50, 30, 10)::text,
                    vigil.saturation_status(0.09, 0.2, 151, 100)::text,
                    vigil.saturation_predicted(-2.5, 2.5, 0),
                    vigil.exhaustion_score(0.1, 0.2, 150, 100, 2),
                    vigil.urgency_score('high', drop_points => 18, health_zone => 'RED'),
                    vigil.dedup_key('health_drop', 'acme', '2026-11-22 23:30:00+00'),
                    vigil.early_kill_decision(0.1, 10, 300, now() - interval '1 minute')",
            &[],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "high");
    assert_eq!(r.get::<_, String>(1), "high");
    assert_eq!(r.get::<_, String>(2), "RED");
    assert!(r.get::<_, bool>(3));
    assert!((r.get::<_, f64>(4) - 60.0).abs() < 1e-9);
    assert_eq!(r.get::<_, i32>(5), 94);
    assert_eq!(r.get::<_, String>(6), "health_drop_acme_2026-11-22");
    assert_eq!(r.get::<_, String>(7), "kill");

    let err = db
        .query_one("SELECT vigil.severity_above(1, 30, 20, 10)", &[])
        .unwrap_err();
    let err = err.as_db_error().expect("a database error");
    assert_eq!(err.code().code(), "22023");
    assert!(
        err.message().contains("medium < high < critical"),
        "{}",
        err.message()
    );
}

fn pg_regress_suite_matches_expected_output(c: &Cluster) {
    if let Err(diff) = c.pg_regress("vigil_regress") {
        panic!("pg_regress failed:\n{diff}");
    }
}

fn worker_stops_cleanly_with_the_cluster_and_returns_on_start(c: &Cluster) {
    let before = worker_pid(c).expect("worker running");
    c.pg_ctl_stop("fast");
    let log = c.log();
    assert!(
        log.contains(&format!("[{before}] {WORKER} LOG:  {WORKER} stopped")),
        "worker did not log a clean stop"
    );
    assert!(
        !log.contains("terminated by signal"),
        "a process was killed by a signal"
    );
    c.pg_ctl_start();
    let after = wait_for("worker back after restart", Duration::from_secs(20), || {
        worker_pid(c)
    });
    assert_ne!(before, after);
    let mut db = c.connect("postgres");
    wait_for("worker idle after restart", Duration::from_secs(10), || {
        (worker_status(&mut db).0 == "idle").then_some(())
    });
}

fn main() {
    let cluster = Cluster::start("main", &["vigil.database = 'postgres'"]);
    let tests: &[Test] = &[
        (
            "worker_starts_with_the_cluster_before_the_extension_exists",
            worker_starts_with_the_cluster_before_the_extension_exists,
        ),
        (
            "worker_reloads_settings_on_sighup",
            worker_reloads_settings_on_sighup,
        ),
        (
            "worker_comes_back_after_pg_terminate_backend",
            worker_comes_back_after_pg_terminate_backend,
        ),
        (
            "worker_follows_vigil_database_and_waits_for_it_to_exist",
            worker_follows_vigil_database_and_waits_for_it_to_exist,
        ),
        (
            "scoring_functions_answer_in_the_preloaded_cluster",
            scoring_functions_answer_in_the_preloaded_cluster,
        ),
        (
            "pg_regress_suite_matches_expected_output",
            pg_regress_suite_matches_expected_output,
        ),
        (
            "worker_stops_cleanly_with_the_cluster_and_returns_on_start",
            worker_stops_cleanly_with_the_cluster_and_returns_on_start,
        ),
    ];
    run(cluster, tests);
}
