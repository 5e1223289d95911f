//! Read replicas for dashboards (README "Scaling out"): a hot standby
//! streams the primary's summaries, so rollup reads, the statistics and
//! sketch aggregates and vigil's views answer there exactly as on the
//! primary; what would write (scans, alerts) is refused as any write on a
//! standby is; the notification worker does not run until the standby is
//! promoted, then it starts there and delivers.

use pg_vigil_e2e::{wait_for, Cluster};
use postgres::Client;
use std::time::Duration;

const DASHBOARD: &str = "SELECT string_agg(entity || ' ' || rows || ' ' || n || ' ' || vigil.num_vals(s) || ' '
                                || round(vigil.mean(s)::numeric, 6) || ' ' || vigil.approx_median(p), '; ' ORDER BY entity)
                         FROM m_1h_since('1 day')";

fn text(db: &mut Client, sql: &str) -> String {
    db.query_one(&format!("SELECT ({sql})::text"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

/// Waits until the standby has replayed everything the primary wrote so far
/// (the primary's session commits synchronously, so its last commit record
/// is written when `pg_current_wal_lsn()` is read).
fn caught_up(primary: &mut Client, standby: &mut Client) {
    let lsn = text(primary, "SELECT pg_current_wal_lsn()");
    wait_for("standby replay", Duration::from_secs(30), || {
        (text(
            standby,
            &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        ) == "true")
            .then_some(())
    });
}

pub fn dashboards_read_rollups_on_a_hot_standby_and_the_worker_waits_for_promotion(c: &Cluster) {
    let mut db = c.fresh_db("replica_reads");
    // The test cluster commits asynchronously (synchronous_commit = off):
    // this session's commits must be written before `caught_up` reads the
    // WAL position.
    db.batch_execute("SET synchronous_commit = on").unwrap();
    db.batch_execute(
        "CREATE TABLE m (ts timestamptz, entity text, v float8);
         SELECT vigil.create_rollup('m_1h', 'm', 'ts', '1 hour', ARRAY['entity'],
             '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"stats\", \"column\": \"v\"},
               \"p\": {\"agg\": \"percentile\", \"column\": \"v\"}}');
         INSERT INTO m SELECT now() - g * interval '20 seconds', 'e' || (g % 4), g FROM generate_series(1, 2000) g;",
    )
    .unwrap();
    let standby = c.standby("replica");
    let mut replica = standby.connect("replica_reads");
    caught_up(&mut db, &mut replica);
    assert_eq!(text(&mut replica, "SELECT pg_is_in_recovery()"), "true");

    // The same answers on both, before and after more writes.
    let on_primary = text(&mut db, DASHBOARD);
    assert!(on_primary.starts_with("e0 500 500 500 "), "{on_primary}");
    assert_eq!(text(&mut replica, DASHBOARD), on_primary);
    db.batch_execute(
        "INSERT INTO m SELECT now(), 'e' || (g % 4), -g FROM generate_series(1, 40) g;
         DELETE FROM m WHERE v BETWEEN 100 AND 200;",
    )
    .unwrap();
    caught_up(&mut db, &mut replica);
    let on_primary = text(&mut db, DASHBOARD);
    assert_eq!(text(&mut replica, DASHBOARD), on_primary);
    for sql in [
        "SELECT vigil.stats_agg(v)::text FROM m",
        "SELECT vigil.percentile_agg(v)::text FROM m",
        "SELECT count(*) FROM m_1h_24h",
        "SELECT vigil.verify_rollup('m_1h')",
        "SELECT status FROM vigil.rollups WHERE name = 'm_1h'::regclass",
    ] {
        assert_eq!(text(&mut replica, sql), text(&mut db, sql), "{sql}");
    }
    assert_eq!(
        text(&mut replica, "SELECT vigil.verify_rollup('m_1h')"),
        "0"
    );

    // Writes are refused like any write on a standby, with its SQLSTATE.
    for sql in [
        "SELECT vigil.scan()",
        "SELECT vigil.raise_alert('replica', 'test', 'high', 'on a standby')",
        "INSERT INTO m VALUES (now(), 'e1', 1)",
    ] {
        let e = replica.batch_execute(sql).unwrap_err();
        assert_eq!(
            e.as_db_error().map(|e| e.code().code()),
            Some("25006"),
            "{sql}: {e:?}"
        );
    }

    // No worker on the standby (it starts once recovery has finished) ...
    assert_eq!(
        text(
            &mut replica,
            "SELECT running::text || ' ' || state FROM vigil.worker_status()"
        ),
        "false not_started"
    );
    let mut sb = standby.connect("postgres");
    assert_eq!(
        text(
            &mut sb,
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_vigil worker'"
        ),
        "0"
    );
    // ... and after promotion it starts and answers as on any primary.
    standby.promote();
    wait_for(
        "worker on the promoted standby",
        Duration::from_secs(30),
        || {
            (text(&mut replica, "SELECT running FROM vigil.worker_status()") == "true")
                .then_some(())
        },
    );
    let log = standby.log();
    assert!(
        !log.contains("pg_vigil worker ERROR") && !log.contains("PANIC"),
        "standby log:\n{log}"
    );
    drop(replica);
    db.batch_execute("SELECT 1").unwrap();
    drop(db);
    c.connect("postgres")
        .batch_execute("DROP DATABASE replica_reads WITH (FORCE)")
        .unwrap();
}
