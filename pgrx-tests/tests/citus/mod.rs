//! pg_vigil on a real Citus cluster (issue 18): a coordinator and two
//! workers on loopback ports, each a PostgreSQL 15 with Citus and pg_vigil
//! preloaded (Citus 13.2.2 built from the anchor source by
//! `scripts/citus.sh`, which `make e2e` runs first).

use pg_vigil_e2e::Cluster;
use postgres::Client;

/// A coordinator with two workers added, pg_vigil in every node's
/// `postgres` database. The clusters stop when the value is dropped.
pub struct CitusCluster {
    pub coordinator: Cluster,
    pub workers: Vec<Cluster>,
}

const CONF: &[&str] = &[
    // Citus must come first; pg_cron is not needed here.
    "shared_preload_libraries = 'citus,pg_vigil'",
    "citus.node_conninfo = 'sslmode=disable'",
    "max_connections = 100",
];

impl CitusCluster {
    pub fn start() -> CitusCluster {
        let workers: Vec<Cluster> = (1..=2)
            .map(|i| Cluster::start(&format!("citus_w{i}"), CONF))
            .collect();
        let coordinator = Cluster::start("citus_coord", CONF);
        for node in workers.iter().chain([&coordinator]) {
            node.connect("postgres")
                .batch_execute("CREATE EXTENSION citus; CREATE EXTENSION pg_vigil;")
                .unwrap();
        }
        let mut db = coordinator.connect("postgres");
        db.execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&i32::from(coordinator.port)],
        )
        .unwrap();
        for w in &workers {
            db.execute(
                "SELECT citus_add_node('127.0.0.1', $1)",
                &[&i32::from(w.port)],
            )
            .unwrap();
        }
        CitusCluster {
            coordinator,
            workers,
        }
    }

    pub fn db(&self) -> Client {
        self.coordinator.connect("postgres")
    }
}

/// Asserts that Citus aggregates `sql` partially on the shards.
fn assert_pushed_down(db: &mut Client, sql: &str) {
    let p = plan(db, sql);
    assert!(
        p.contains("worker_partial_agg") && p.contains("coord_combine_agg"),
        "not pushed down: {sql}\n{p}"
    );
}

fn plan(db: &mut Client, sql: &str) -> String {
    db.query(&format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `stats_agg` and `rollup(statsagg)` are partially aggregated on each
/// shard (Citus's `worker_partial_agg`, combined on the coordinator by
/// `coord_combine_agg`) and give what the same rows give on one node
/// (within 1e-12 relative, count and extremes exact); stored summaries read
/// across shards with Citus's binary protocol. The sketch aggregates are
/// pushed down the same way and are exact.
pub fn stats_aggregates_are_pushed_down_to_citus_workers(_c: &Cluster) {
    let citus = CitusCluster::start();
    let mut db = citus.db();
    db.batch_execute(
        "CREATE TABLE events (entity int, region int, latency float8);
         SELECT create_distributed_table('events', 'entity');
         INSERT INTO events
             SELECT g % 97, g % 5, CASE WHEN g % 1000 = 0 THEN NULL ELSE 1e6 + 1e3 * sin(g) END
             FROM generate_series(1, 100000) g;
         CREATE TABLE events_local AS SELECT * FROM events;",
    )
    .unwrap();
    let shards: i64 = db
        .query_one(
            "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'events'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(shards, 2, "the shards are spread over both workers");

    // Across all shards, and grouped by a column that is not the
    // distribution column: both need a partial aggregate per shard.
    for sql in [
        "SELECT vigil.stats_agg(latency) FROM events",
        "SELECT region, vigil.stats_agg(latency) FROM events GROUP BY region",
    ] {
        assert_pushed_down(&mut db, sql);
    }
    let differing: i64 = db
        .query_one(
            "WITH d AS (SELECT region, vigil.stats_agg(latency) s FROM events GROUP BY region
                        UNION ALL SELECT -1, vigil.stats_agg(latency) FROM events),
                  l AS (SELECT region, vigil.stats_agg(latency) s FROM events_local GROUP BY region
                        UNION ALL SELECT -1, vigil.stats_agg(latency) FROM events_local)
             SELECT count(*) FROM d FULL JOIN l USING (region)
             WHERE NOT (vigil.num_vals(d.s) = vigil.num_vals(l.s)
                        AND abs(vigil.mean(d.s) / vigil.mean(l.s) - 1) < 1e-12
                        AND abs(vigil.stddev(d.s) / vigil.stddev(l.s) - 1) < 1e-12
                        AND vigil.min_val(d.s) = vigil.min_val(l.s)
                        AND vigil.max_val(d.s) = vigil.max_val(l.s))
                OR d.s IS NULL OR l.s IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(differing, 0, "distributed and local summaries differ");

    // Stored summaries: a co-located summary table, merged across shards.
    db.batch_execute(
        "SET citus.enable_binary_protocol = on;
         CREATE TABLE per_entity (entity int, region int, s vigil.statsagg);
         SELECT create_distributed_table('per_entity', 'entity', colocate_with => 'events');
         INSERT INTO per_entity SELECT entity, region, vigil.stats_agg(latency) FROM events GROUP BY 1, 2;",
    )
    .unwrap();
    assert_pushed_down(&mut db, "SELECT vigil.rollup(s) FROM per_entity");
    let same: bool = db
        .query_one(
            "SELECT vigil.num_vals(r) = vigil.num_vals(l)
                    AND abs(vigil.stddev(r) / vigil.stddev(l) - 1) < 1e-12
                    AND vigil.min_val(r) = vigil.min_val(l)
             FROM (SELECT vigil.rollup(s) r FROM per_entity) a,
                  (SELECT vigil.stats_agg(latency) l FROM events_local) b",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(same, "rollup of stored summaries differs from one pass");
    // Whole stored values cross the binary protocol (send/receive).
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT s FROM per_entity ORDER BY entity, region) q WHERE s IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 97 * 5);

    // Sketches: pushed down too, and exactly the sketch of the same rows on
    // one node (bucket by bucket: the text forms are equal), for
    // percentile_agg at both relative errors and rollup of stored sketches.
    for sql in [
        "SELECT vigil.percentile_agg(latency) FROM events",
        "SELECT region, vigil.percentile_agg(latency, 0.001) FROM events GROUP BY region",
    ] {
        assert_pushed_down(&mut db, sql);
    }
    let differing: i64 = db
        .query_one(
            "WITH d AS (SELECT region, vigil.percentile_agg(latency, 0.001)::text s FROM events GROUP BY region
                        UNION ALL SELECT -1, vigil.percentile_agg(latency)::text FROM events),
                  l AS (SELECT region, vigil.percentile_agg(latency, 0.001)::text s FROM events_local GROUP BY region
                        UNION ALL SELECT -1, vigil.percentile_agg(latency)::text FROM events_local)
             SELECT count(*) FROM d FULL JOIN l USING (region) WHERE d.s IS DISTINCT FROM l.s",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(differing, 0, "distributed and local sketches differ");
    db.batch_execute(
        "CREATE TABLE per_entity_q (entity int, q vigil.sketch);
         SELECT create_distributed_table('per_entity_q', 'entity', colocate_with => 'events');
         INSERT INTO per_entity_q SELECT entity, vigil.percentile_agg(latency) FROM events GROUP BY 1;",
    )
    .unwrap();
    assert_pushed_down(&mut db, "SELECT vigil.rollup(q) FROM per_entity_q");
    let same: bool = db
        .query_one(
            "SELECT (SELECT vigil.rollup(q)::text FROM per_entity_q)
                  = (SELECT vigil.percentile_agg(latency)::text FROM events_local)",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(same, "rollup of distributed sketches differs from one pass");
}

/// What `sql` returns on each worker (`run_command_on_workers`), in node order.
fn on_workers(db: &mut Client, sql: &str) -> Vec<String> {
    db.query(
        "SELECT result FROM run_command_on_workers($1) ORDER BY nodeport",
        &[&sql],
    )
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

/// Asserts that `count` (a query on every worker counting what must be
/// gone) reaches 0 on every worker, running Citus's cleanup of the
/// placements shard moves left behind meanwhile (it skips one whose lock
/// its maintenance daemon holds: tried again for up to 30 s).
fn assert_gone_on_workers(db: &mut Client, count: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        db.batch_execute("CALL citus_cleanup_orphaned_resources()")
            .unwrap();
        let left = on_workers(db, count);
        if left.iter().all(|n| n == "0") {
            return;
        }
        if std::time::Instant::now() > deadline {
            let names = on_workers(
                db,
                "SELECT string_agg(relname, ', ') FROM pg_class WHERE relname ~ '^ev'",
            );
            panic!("{what}: {left:?} left on the workers ({names:?})");
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The rollups of `app.ev` agree with a recompute (`verify_rollup` = 0 for
/// both), and their `_since` readings equal the source's own aggregates.
fn assert_exact(db: &mut Client, when: &str) {
    for summary in ["app.ev_1h", "app.ev_spread"] {
        let differing: i64 = db
            .query_one(
                "SELECT vigil.verify_rollup($1::text::regclass)",
                &[&summary],
            )
            .unwrap()
            .get(0);
        assert_eq!(differing, 0, "{summary} differs from a recompute {when}");
    }
    let (read, direct): (String, String) = {
        let row = db
            .query_one(
                "SELECT (SELECT string_agg(format('%s:%s:%s:%s', entity, n, paid, total), ',' ORDER BY entity)
                         FROM app.ev_1h_since('100 years')),
                        (SELECT string_agg(format('%s:%s:%s:%s', entity, n, paid, total), ',' ORDER BY entity)
                         FROM (SELECT entity, count(*) n, count(*) FILTER (WHERE kind = 'paid') paid, sum(v) total
                               FROM app.ev GROUP BY entity) d)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(read, direct, "_since through the coordinator {when}");
    // The exact window: whole buckets from the distributed summary, the
    // edge bucket's rows from the distributed source.
    let row = db
        .query_one(
            "SELECT (SELECT string_agg(format('%s:%s:%s:%s', entity, n, paid, total), ',' ORDER BY entity)
                     FROM app.ev_1h_since(now() - '2026-01-02 00:31:30+00', exact => true)),
                    (SELECT string_agg(format('%s:%s:%s:%s', entity, n, paid, total), ',' ORDER BY entity)
                     FROM (SELECT entity, count(*) n, count(*) FILTER (WHERE kind = 'paid') paid, sum(v) total
                           FROM app.ev WHERE ts > '2026-01-02 00:31:30+00' GROUP BY entity) d)",
            &[],
        )
        .unwrap();
    let (read, direct): (Option<String>, Option<String>) = (row.get(0), row.get(1));
    assert!(direct.is_some(), "rows after the cutoff {when}");
    assert_eq!(read, direct, "exact _since through the coordinator {when}");
}

/// Rollups of a distributed table (issue 18, item 2): the summary is a
/// distributed table co-located with the source, each shard's trigger keeps
/// its co-located summary shard as the source's owner (a plain role here),
/// and the rollup is exact under INSERT (one row, many, INSERT … SELECT,
/// COPY), UPDATE (in place, across buckets), DELETE and TRUNCATE through the
/// coordinator, in a transaction block and after a rollback, after a shard
/// move, and when a worker fails mid-write. Tables Citus manages otherwise
/// are refused cleanly, and `drop_rollup` leaves nothing on any node.
pub fn rollups_of_distributed_tables_stay_exact(_c: &Cluster) {
    let mut citus = CitusCluster::start();
    let mut db = citus.db();
    db.batch_execute(
        "CREATE ROLE app LOGIN;
         CREATE SCHEMA app AUTHORIZATION app;",
    )
    .unwrap();
    let mut app = citus.coordinator.connect_as("postgres", "app");
    app.batch_execute(
        "CREATE TABLE app.ev (entity int, ts timestamptz, v float8, kind text);
         SELECT create_distributed_table('app.ev', 'entity');
         INSERT INTO app.ev
             SELECT g % 50, '2026-01-01'::timestamptz + g * interval '1 minute', g % 7,
                    CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'free' END
             FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    // In a transaction that already wrote to several shards in parallel,
    // Citus cannot give the rollup one connection per worker: refused,
    // saying what to do, and nothing is left.
    let e = app
        .batch_execute(
            "BEGIN;
             INSERT INTO app.ev SELECT g, '2026-01-01', 1, 'paid' FROM generate_series(1, 40) g;
             SELECT vigil.create_rollup('app.ev_early', 'app.ev', 'ts', '1 hour', ARRAY['entity'], '{\"n\": {\"agg\": \"count\"}}');",
        )
        .unwrap_err();
    let e = e.as_db_error().expect("a database error");
    assert_eq!(e.code().code(), "25000", "{e:?}");
    assert!(
        e.hint()
            .is_some_and(|h| h.contains("transaction of its own")),
        "{e:?}"
    );
    app.batch_execute("ROLLBACK").unwrap();
    app.batch_execute(
        "SELECT vigil.create_rollup('app.ev_1h', 'app.ev', 'ts', '1 hour', ARRAY['entity'],
             '{\"n\": {\"agg\": \"count\"}, \"paid\": {\"agg\": \"count\", \"filter\": \"kind = ''paid''\"},
               \"total\": {\"agg\": \"sum\", \"column\": \"v\"}}');
         SELECT vigil.create_rollup('app.ev_spread', 'app.ev', 'ts', '1 day', ARRAY['entity'],
             '{\"spread\": {\"agg\": \"stats\", \"column\": \"v\"}, \"hi\": {\"agg\": \"max\", \"column\": \"v\"}}');",
    )
    .unwrap();
    let colocated: i64 = db
        .query_one(
            "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
             WHERE logicalrelid IN ('app.ev'::regclass, 'app.ev_1h'::regclass, 'app.ev_spread'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(colocated, 1, "the summaries are co-located with the source");
    // Every shard of the source has the triggers, each linked to its own
    // co-located summary shard, on both workers.
    let per_worker = on_workers(
        &mut db,
        "SELECT count(*) FROM vigil.rollup_defs d JOIN pg_class c ON c.oid = d.summary::oid WHERE c.relname ~ '^ev_(1h|spread)_[0-9]+$'",
    );
    let shards: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid IN ('app.ev_1h'::regclass, 'app.ev_spread'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    let registered: i64 = per_worker.iter().map(|n| n.parse::<i64>().unwrap()).sum();
    assert_eq!(
        registered, shards,
        "one shard rollup per summary shard: {per_worker:?}"
    );
    assert!(per_worker.iter().all(|n| n != "0"), "{per_worker:?}");
    assert_exact(&mut db, "after the backfill");

    // A role with TRIGGER on the source that copies a rollup trigger — its
    // name sorting before vigil's, its definition its own — makes nothing
    // any worker accepts: not when Citus copies it to the shards as that
    // role, and not when a shard move later recreates it as the owner
    // (below): workers link only vigil's own trigger names, with the
    // definition the summary shards carry. So nothing is counted twice or
    // counted by someone else's definition.
    db.batch_execute("CREATE ROLE mallory LOGIN").unwrap();
    app.batch_execute(
        "GRANT USAGE ON SCHEMA app TO mallory; GRANT TRIGGER, INSERT ON app.ev TO mallory",
    )
    .unwrap();
    let forged = pg_vigil_e2e::forged_rollup_trigger(
        &mut db,
        "app.ev",
        "vigil_rollup_ev_1h_ins",
        "app.ev_1h",
        "{measures,n}",
        r#"{"agg": "count", "filter": "v > 1000"}"#,
    );
    assert!(forged.contains("v > 1000"), "{forged}");
    let mut mallory = citus.coordinator.connect_as("postgres", "mallory");
    mallory
        .batch_execute("SET citus.enable_unsafe_triggers = on")
        .unwrap();
    let made = mallory.batch_execute(&forged);
    assert!(
        made.is_ok(),
        "Citus lets a role with TRIGGER make it: {made:?}"
    );
    let copies = on_workers(
        &mut db,
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'aaa\\_forged%' AND tgrelid::regclass::text LIKE 'app.ev\\_%'",
    );
    assert!(
        copies.iter().all(|n| n != "0"),
        "the copy is on the shards: {copies:?}"
    );
    let forged_defs =
        "SELECT count(*) FROM vigil.rollup_defs WHERE measures::text LIKE '%v > 1000%'";
    let defs_now: i64 = on_workers(&mut db, "SELECT count(*) FROM vigil.rollup_defs")
        .iter()
        .map(|n| n.parse::<i64>().unwrap())
        .sum();
    assert_eq!(defs_now, shards, "no worker registered the copy");
    mallory
        .batch_execute("INSERT INTO app.ev VALUES (21, '2026-01-02 05:00', 2, 'paid'), (22, '2026-01-02 05:00', 3, 'free')")
        .unwrap();
    assert_exact(&mut db, "after a copied trigger fired");

    app.batch_execute(
        "INSERT INTO app.ev VALUES (7, '2026-01-02 00:30', 3, 'paid');
         INSERT INTO app.ev VALUES (8, '2026-01-02 00:31', 4, 'free'), (9, '2026-01-02 00:32', 5, 'paid'), (8, '2026-01-03', 1, 'paid');
         CREATE TABLE app.staging (LIKE app.ev);
         SELECT create_distributed_table('app.staging', 'entity', colocate_with => 'app.ev');
         INSERT INTO app.staging SELECT g % 13, '2026-01-04'::timestamptz + g * interval '1 second', g, 'paid' FROM generate_series(1, 300) g;
         INSERT INTO app.ev SELECT * FROM app.staging;
         INSERT INTO app.ev SELECT entity + 1, ts, v, 'free' FROM app.staging WHERE entity < 5;",
    )
    .unwrap();
    assert_exact(&mut db, "after INSERTs");
    {
        let mut w = app
            .copy_in("COPY app.ev (entity, ts, v, kind) FROM STDIN")
            .unwrap();
        use std::io::Write;
        for i in 0..400 {
            writeln!(
                w,
                "{}\t2026-01-05 {:02}:00:00+00\t{}\tpaid",
                i % 31,
                i % 24,
                i
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    assert_exact(&mut db, "after COPY");
    app.batch_execute(
        "UPDATE app.ev SET v = v + 1 WHERE entity = 7 AND ts = '2026-01-02 00:30';
         UPDATE app.ev SET kind = 'paid' WHERE entity = 3;
         -- (Citus plans no STABLE function of a column in an UPDATE, so
         -- no ts + interval: the rows move to another bucket by constant.)
         UPDATE app.ev SET ts = '2026-01-11 03:00+00', v = v * 2 WHERE entity IN (4, 5, 6) AND v < 3;
         DELETE FROM app.ev WHERE entity = 9 AND ts = '2026-01-02 00:32';
         DELETE FROM app.ev WHERE v > 5 AND entity < 20;
         BEGIN;
         INSERT INTO app.ev VALUES (11, '2026-01-06', 10, 'paid');
         UPDATE app.ev SET v = 0 WHERE entity = 11;
         DELETE FROM app.ev WHERE entity = 12;
         COMMIT;
         BEGIN;
         INSERT INTO app.ev SELECT g % 40, '2026-01-07', 1, 'paid' FROM generate_series(1, 200) g;
         DELETE FROM app.ev WHERE entity = 13;
         ROLLBACK;",
    )
    .unwrap();
    assert_exact(
        &mut db,
        "after UPDATE, DELETE, a transaction block and a rollback",
    );

    // A shard move (with its co-located summary shards) keeps the rollup:
    // the moved placement gets the triggers, linked to its summary shard.
    let (shard, from, to): (i64, i32, i32) = {
        let r = db
            .query_one(
                "SELECT s.shardid, p.nodeport, (SELECT max(nodeport) FROM pg_dist_node WHERE nodeport <> p.nodeport AND shouldhaveshards)
                 FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
                 WHERE s.logicalrelid = 'app.ev'::regclass ORDER BY s.shardid LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    db.execute(
        "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')",
        &[&shard, &from, &to],
    )
    .unwrap();
    let on_target: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_dist_shard_placement WHERE shardid = $1 AND nodeport = $2",
            &[&shard, &to],
        )
        .unwrap()
        .get(0);
    assert_eq!(on_target, 1, "the shard moved");
    let moved_entity: i32 = db
        .query_one(
            "SELECT e FROM generate_series(0, 1000) e WHERE get_shard_id_for_distribution_column('app.ev', e) = $1 LIMIT 1",
            &[&shard],
        )
        .unwrap()
        .get(0);
    app.execute(
        "INSERT INTO app.ev SELECT $1, '2026-01-08'::timestamptz + g * interval '1 hour', g, 'paid' FROM generate_series(1, 30) g",
        &[&moved_entity],
    )
    .unwrap();
    app.execute(
        "DELETE FROM app.ev WHERE entity = $1 AND v > 25",
        &[&moved_entity],
    )
    .unwrap();
    assert_exact(&mut db, "after a shard move");
    for n in on_workers(&mut db, forged_defs) {
        assert_eq!(
            n, "0",
            "the move recreated the copied trigger, and no worker took its definition"
        );
    }
    let moved_copies = on_workers(
        &mut db,
        &format!("SELECT count(*) FROM pg_trigger WHERE tgname = 'aaa_forged_{shard}'"),
    );
    assert!(
        moved_copies.iter().any(|n| n == "1"),
        "the move recreated the copy: {moved_copies:?}"
    );

    // A worker that fails mid-write fails the whole transaction: nothing is
    // half applied on the other worker.
    let count = "SELECT (SELECT sum(n) FROM app.ev_1h)::bigint, (SELECT count(*) FROM app.ev)";
    let before: (i64, i64) = {
        let r = db.query_one(count, &[]).unwrap();
        (r.get(0), r.get(1))
    };
    // Written (and the summary shards maintained) on both workers, then
    // one stops before the commit: Citus's two-phase commit fails it.
    let mut tx = app.transaction().unwrap();
    tx.batch_execute(
        "INSERT INTO app.ev SELECT g, '2026-01-09', 1, 'paid' FROM generate_series(1, 100) g",
    )
    .unwrap();
    citus.workers[1].pg_ctl_stop("fast");
    assert!(tx.commit().is_err(), "the commit fails with a worker down");
    citus.workers[1].pg_ctl_start();
    // Fresh sessions: Citus keeps the old ones' connections to the worker.
    app = citus.coordinator.connect_as("postgres", "app");
    db = citus.db();
    let after: (i64, i64) = pg_vigil_e2e::wait_for(
        "the worker back",
        std::time::Duration::from_secs(30),
        || db.query_one(count, &[]).ok().map(|r| (r.get(0), r.get(1))),
    );
    assert_exact(&mut db, "after a worker failed mid-write");
    assert_eq!(
        after, before,
        "nothing of the failed write reached the source or a summary"
    );

    // TRUNCATE through the coordinator empties every summary shard.
    app.batch_execute("TRUNCATE app.staging; INSERT INTO app.staging VALUES (1, '2026-01-10', 1, 'paid'); TRUNCATE app.ev")
        .unwrap();
    let left: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM app.ev_1h) + (SELECT count(*) FROM app.ev_spread)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "TRUNCATE of the source empties the summaries");
    app.batch_execute("INSERT INTO app.ev SELECT * FROM app.staging")
        .unwrap();
    assert_exact(&mut db, "after TRUNCATE");

    // A mixed load from concurrent sessions through the coordinator.
    // (Writers of the stats rollup may deadlock with each other — issue
    // 14 — and Citus then cancels one; what commits must be exact.)
    let port = citus.coordinator.port;
    let load: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(
                    &format!("host=127.0.0.1 port={port} user=app dbname=postgres"),
                    postgres::NoTls,
                )
                .unwrap();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let mut next = |m: u64| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 33) % m
                };
                let (mut done, mut refused) = (0, 0);
                for _ in 0..120 {
                    let (e, h, v) = (next(60), next(48), next(9));
                    let sql = match next(5) {
                        0 => format!("INSERT INTO app.ev VALUES ({e}, '2026-02-01'::timestamptz + interval '{h} hours', {v}, 'paid')"),
                        1 => format!("INSERT INTO app.ev SELECT g, '2026-02-02'::timestamptz + interval '{h} hours', {v}, 'free' FROM generate_series({e}, {e} + 5) g"),
                        2 => format!("UPDATE app.ev SET v = v + 1 WHERE entity = {e} AND v < {v}"),
                        3 => format!("DELETE FROM app.ev WHERE entity = {e} AND v = {v}"),
                        _ => format!("BEGIN; INSERT INTO app.ev VALUES ({e}, '2026-02-03', {v}, 'paid'); DELETE FROM app.ev WHERE entity = {} AND v > 7; COMMIT", next(60)),
                    };
                    match c.batch_execute(&sql) {
                        Ok(()) => done += 1,
                        Err(err) => {
                            let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
                            assert!(matches!(code.as_str(), "40P01" | "40001"), "{sql}: {err:?}");
                            let _ = c.batch_execute("ROLLBACK");
                            refused += 1;
                        }
                    }
                }
                (done, refused)
            })
        })
        .collect();
    let results: Vec<(i32, i32)> = load.into_iter().map(|h| h.join().unwrap()).collect();
    let done: i32 = results.iter().map(|r| r.0).sum();
    assert!(done > 300, "most of the load committed: {results:?}");
    assert_exact(&mut db, "after a concurrent mixed load");

    // rebuild_rollup works through the coordinator, and vigil.rollups
    // reports both rollups as kept.
    let groups: i64 = app
        .query_one("SELECT vigil.rebuild_rollup('app.ev_spread')", &[])
        .unwrap()
        .get(0);
    assert!(groups > 0);
    assert_exact(&mut db, "after rebuild_rollup");
    let statuses: String = db
        .query_one(
            "SELECT string_agg(name::text || '=' || status, ',' ORDER BY name::text) FROM vigil.rollups",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(statuses, "app.ev_1h=ok,app.ev_spread=ok");

    // A node added and the shards rebalanced onto it: the moved shards
    // keep their rollups there.
    let third = Cluster::start("citus_w3", CONF);
    third
        .connect("postgres")
        .batch_execute("CREATE EXTENSION citus; CREATE EXTENSION pg_vigil;")
        .unwrap();
    db.execute(
        "SELECT citus_add_node('127.0.0.1', $1)",
        &[&i32::from(third.port)],
    )
    .unwrap();
    db.batch_execute("SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')")
        .unwrap();
    let moved: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid)
             WHERE s.logicalrelid = 'app.ev'::regclass AND p.nodeport = $1",
            &[&i32::from(third.port)],
        )
        .unwrap()
        .get(0);
    assert!(moved > 0, "the rebalancer moved shards to the new node");
    let mut on_third = third.connect("postgres");
    // (Citus hides shards from a client's catalog queries.)
    on_third
        .batch_execute("SET citus.override_table_visibility = off")
        .unwrap();
    let linked: i64 = on_third
        .query_one(
            "SELECT count(*) FROM vigil.rollup_defs d JOIN pg_class c ON c.oid = d.summary::oid WHERE c.relname ~ '^ev_1h_[0-9]+$'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        linked, moved,
        "each moved source shard has its summary shard's rollup"
    );
    citus.workers.push(third);
    app.batch_execute(
        "INSERT INTO app.ev SELECT g % 70, '2026-03-01'::timestamptz + g * interval '1 minute', g % 5, 'paid' FROM generate_series(1, 700) g;
         UPDATE app.ev SET v = v + 2 WHERE v = 1;
         DELETE FROM app.ev WHERE v = 3;",
    )
    .unwrap();
    assert_exact(&mut db, "after a node was added and the shards rebalanced");

    // Other tables Citus manages are refused up front, with no internals.
    for (sql, expected) in [
        (
            "SELECT vigil.create_rollup('app.ev_kind', 'app.ev', 'ts', '1 hour', ARRAY['kind'], '{\"n\": {\"agg\": \"count\"}}')",
            "group_by: app.ev is distributed by \"entity\", which group_by does not list; a rollup of a distributed table groups by its distribution column",
        ),
        (
            "CREATE TABLE app.refs (k int PRIMARY KEY, ts timestamptz); SELECT create_reference_table('app.refs');
             SELECT vigil.create_rollup('app.refs_1h', 'app.refs', 'ts', '1 hour', ARRAY['k'], '{\"n\": {\"agg\": \"count\"}}')",
            "source: app.refs is a Citus reference table; rollups of Citus tables need a hash-distributed source",
        ),
    ] {
        let e = app.batch_execute(sql).unwrap_err();
        let e = e.as_db_error().expect("a database error");
        assert_eq!((e.code().code(), e.message()), ("0A000", expected), "{e:?}");
        assert!(e.detail().is_none(), "no backtrace or internals: {e:?}");
    }

    for n in on_workers(&mut db, forged_defs) {
        assert_eq!(
            n, "0",
            "after the rebalance, still no worker took the copy's definition"
        );
    }
    app.batch_execute("SET citus.enable_unsafe_triggers = on")
        .unwrap();
    app.batch_execute("DROP TRIGGER aaa_forged ON app.ev")
        .unwrap();
    app.batch_execute("RESET citus.enable_unsafe_triggers")
        .unwrap();

    // drop_rollup removes the triggers, summary shards and definitions on
    // every node; the source keeps taking writes.
    app.batch_execute(
        "SELECT vigil.drop_rollup('app.ev_1h'); SELECT vigil.drop_rollup('app.ev_spread');",
    )
    .unwrap();
    assert_gone_on_workers(
        &mut db,
        "SELECT (SELECT count(*) FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid WHERE f.proname = '_rollup_trigger')
              + (SELECT count(*) FROM vigil.rollup_defs)
              + (SELECT count(*) FROM pg_class WHERE relname ~ '^ev_(1h|spread)')",
        "drop_rollup leaves nothing on a worker",
    );
    app.batch_execute("INSERT INTO app.ev VALUES (1, now(), 1, 'paid'); DELETE FROM app.ev;")
        .unwrap();

    // Renaming the distributed source and summary keeps the rollup; DROP
    // TABLE … CASCADE of the source takes the distributed summary with it,
    // on every node.
    app.batch_execute(
        "CREATE TABLE app.ev2 (entity int, ts timestamptz, v float8);
         SELECT create_distributed_table('app.ev2', 'entity');
         INSERT INTO app.ev2 SELECT g % 20, '2026-04-01'::timestamptz + g * interval '1 minute', g FROM generate_series(1, 500) g;",
    )
    .unwrap();
    app.batch_execute(
        "SELECT vigil.create_rollup('app.ev2_1h', 'app.ev2', 'ts', '1 hour', ARRAY['entity'],
             '{\"n\": {\"agg\": \"count\"}, \"total\": {\"agg\": \"sum\", \"column\": \"v\"}}')",
    )
    .unwrap();
    app.batch_execute("ALTER TABLE app.ev2 RENAME TO ev3")
        .unwrap();
    app.batch_execute("ALTER TABLE app.ev2_1h RENAME TO ev3_1h")
        .unwrap();
    app.batch_execute("ALTER TABLE app.ev3 RENAME COLUMN v TO val")
        .unwrap();
    app.batch_execute(
        "INSERT INTO app.ev3 SELECT g % 20, '2026-04-02', g FROM generate_series(1, 100) g;
         UPDATE app.ev3 SET val = val + 1 WHERE entity = 3;
         DELETE FROM app.ev3 WHERE entity = 4;",
    )
    .unwrap();
    // A shard moved after the column rename registers with the current
    // definition (the summary's definition constraint follows the rename).
    let (shard3, from3, to3): (i64, i32, i32) = {
        let r = db
            .query_one(
                "SELECT s.shardid, p.nodeport, (SELECT min(nodeport) FROM pg_dist_node WHERE nodeport <> p.nodeport AND shouldhaveshards)
                 FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
                 WHERE s.logicalrelid = 'app.ev3'::regclass ORDER BY s.shardid DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    db.execute(
        "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')",
        &[&shard3, &from3, &to3],
    )
    .unwrap();
    app.batch_execute(
        "INSERT INTO app.ev3 SELECT g % 20, '2026-04-03', g FROM generate_series(1, 200) g;
         DELETE FROM app.ev3 WHERE val = 7;",
    )
    .unwrap();
    let (differing, n, read): (i64, i64, i64) = {
        let r = app
            .query_one(
                "SELECT vigil.verify_rollup('app.ev3_1h'), (SELECT count(*) FROM app.ev3),
                        (SELECT sum(n)::bigint FROM app.ev2_1h_since('100 years'))",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        (differing, read),
        (0, n),
        "renamed (table, summary, column) and moved, the rollup is exact; worker warnings: {}",
        citus.workers[0]
            .log()
            .lines()
            .filter(|l| l.contains("WARNING") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The exact window of a distributed rollup names the source's columns
    // as text: written again after the column rename, it still reads
    // (and reads exactly); DROP … CASCADE still takes it along.
    let (exact, direct): (String, String) = {
        let r = app
            .query_one(
                "SELECT (SELECT format('%s:%s', sum(n), sum(total)) FROM app.ev2_1h_since(now() - '2026-04-01 03:30:30+00', exact => true)),
                        (SELECT format('%s:%s', count(*), sum(val)) FROM app.ev3 WHERE ts > '2026-04-01 03:30:30+00')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(exact, direct, "exact window after the column rename");
    app.batch_execute("DROP TABLE app.ev3 CASCADE").unwrap();
    assert_eq!(
        db.query_one(
            "SELECT count(*) FROM pg_proc WHERE proname = 'ev2_1h_since'",
            &[]
        )
        .unwrap()
        .get::<_, i64>(0),
        0,
        "both window functions dropped with the summary"
    );
    assert_gone_on_workers(
        &mut db,
        "SELECT (SELECT count(*) FROM pg_class WHERE relname ~ '^ev[23]') + (SELECT count(*) FROM vigil.rollup_defs)",
        "DROP TABLE … CASCADE leaves nothing on a worker",
    );
    let dangling: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM pg_dist_partition p WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p.logicalrelid))
                  + (SELECT count(*) FROM pg_class WHERE relname ~ '^ev[23]')
                  + (SELECT count(*) FROM vigil.rollup_defs d WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.summary::oid))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        dangling, 0,
        "DROP TABLE … CASCADE leaves nothing on the coordinator"
    );

    // A local table on the coordinator keeps its rollup as on one node.
    db.batch_execute(
        "CREATE TABLE loc (entity int, ts timestamptz, v float8);
         SELECT vigil.create_rollup('loc_1h', 'loc', 'ts', '1 hour', ARRAY['entity'], '{\"n\": {\"agg\": \"count\"}}');
         INSERT INTO loc SELECT g % 3, now(), g FROM generate_series(1, 30) g;
         DELETE FROM loc WHERE entity = 0;",
    )
    .unwrap();
    let differing: i64 = db
        .query_one("SELECT vigil.verify_rollup('loc_1h')", &[])
        .unwrap()
        .get(0);
    let n: i64 = db
        .query_one("SELECT sum(n)::bigint FROM loc_1h", &[])
        .unwrap()
        .get(0);
    assert_eq!((differing, n), (0, 20), "the local rollup is exact");
}

/// Monitors scan distributed tables through the coordinator and find what
/// they find on a local copy of the same rows: scenario 2's tables
/// (examples/05_client_vitals.sql) distributed by their entity, plus a
/// threshold monitor, side by side with the same monitors on local copies.
pub fn monitors_scan_distributed_tables_like_local_ones(_c: &Cluster) {
    let citus = CitusCluster::start();
    let mut db = citus.db();
    let setup = |file: &str| {
        let example =
            std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        example[..example.find("SELECT vigil.create_monitor").unwrap()].to_string()
    };
    db.batch_execute(&format!(
        "CREATE SCHEMA dist; CREATE SCHEMA loc; SET search_path = dist, public;
         {} {}
         SELECT create_distributed_table('dist.health_scores', 'client');
         SELECT create_distributed_table('dist.deals', 'deal');
         SELECT create_distributed_table('dist.sync_errors', 'source');
         SELECT create_distributed_table('dist.leads', 'lead');
         SELECT create_distributed_table('dist.creator_messages', 'creator_name');
         RESET search_path;",
        setup("05_client_vitals.sql"),
        setup("08_creator_monitors.sql"),
    ))
    .unwrap();
    let distributed: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'dist.%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(distributed, 5);
    let monitors = [
        (
            "health",
            "drop",
            "health_scores",
            r#"{"entity": "client", "time": "recorded_at", "value": "score", "baseline": "7 days",
             "thresholds": {"medium": 10, "high": 15, "critical": 25}, "zones": {"red": 60, "yellow": 70},
             "anomaly_type": "health_drop"}"#,
        ),
        (
            "deals",
            "stall",
            "deals",
            r#"{"entity": "deal", "time": "stage_changed_at", "group_column": "stage", "value": "value",
             "filter": {"stage": ["Assessment", "Proposal", "Negotiation", "Trial"]},
             "thresholds": {"medium": "14 days", "high": "21 days", "critical": "30 days"},
             "anomaly_type": "deal_stalled"}"#,
        ),
        (
            "syncs",
            "count",
            "sync_errors",
            r#"{"entity": "source", "time": "occurred_at", "window": "24 hours",
             "thresholds": {"medium": 2, "high": 3, "critical": 5}, "anomaly_type": "sync_failure"}"#,
        ),
        (
            "leads",
            "stall",
            "leads",
            r#"{"entity": "lead", "time": "created_at", "filter": {"responded_at": null},
             "thresholds": {"medium": "6 hours", "high": "12 hours", "critical": "24 hours"},
             "urgency_from": "wait_hours", "anomaly_type": "lead_unresponded"}"#,
        ),
        (
            "pipeline",
            "threshold",
            "deals",
            r#"{"time": "stage_changed_at", "op": ">", "threshold": 100000, "value": "value",
             "agg": "sum", "lookback": "60 days", "severity": "high", "anomaly_type": "pipeline"}"#,
        ),
        (
            "hourly_z",
            "zscore",
            "creator_messages",
            r#"{"entity": "creator_name", "time": "ts", "baseline_days": 90, "min_weeks": 4,
             "thresholds": {"medium": 3, "high": 4, "critical": 5}}"#,
        ),
        (
            "saturation",
            "saturation",
            "creator_messages",
            r#"{"entity": "creator_name", "time": "ts", "converted": {"payment_status": "paid"},
             "baseline_days": 30, "exhaustion_threshold": 70}"#,
        ),
    ];
    for (name, kind, table, options) in monitors {
        db.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS loc.{table} AS SELECT * FROM dist.{table};
             SELECT vigil.create_monitor('d_{name}', '{kind}', 'dist.{table}', '{options}');
             SELECT vigil.create_monitor('l_{name}', '{kind}', 'loc.{table}', '{options}');"
        ))
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // early_kill's trigger would run on the shards: refused up front.
    let e = db
        .batch_execute(
            "SELECT vigil.create_monitor('d_kill', 'early_kill', 'dist.creator_messages',
                 '{\"variant\": \"content_type\", \"event\": \"payment_status\"}')",
        )
        .unwrap_err();
    assert!(
        e.as_db_error().is_some_and(|e| e.code().code() == "0A000"
            && e.message() == "source dist.creator_messages is a table Citus manages; early_kill monitors need a local table (their trigger runs where the rows are written)"),
        "{e:?}"
    );
    let report = scan(&mut db);
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let found = |db: &mut Client, prefix: &str| -> Vec<String> {
        db.query(
            "SELECT substr(monitor, 3) || ' ' || anomaly_type || ' ' || replace(coalesce(entity, '-'), monitor, 'self') || ' '
                    || severity || ' ' || round(urgency::numeric, 6)
             FROM vigil.alerts WHERE monitor LIKE $1 || '\\_%' AND status = 'firing' ORDER BY 1",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let on_citus = found(&mut db, "d");
    let local = found(&mut db, "l");
    // Every monitor found its planted problems (examples 05 and 08).
    for (name, ..) in monitors {
        assert!(
            local.iter().any(|a| a.starts_with(&format!("{name} "))),
            "{name} found nothing: {local:#?}"
        );
    }
    assert_eq!(
        on_citus, local,
        "a distributed source alerts like a local one"
    );

    // The next scan after writes through the coordinator: the recovered
    // client and the answered lead resolve on both sides.
    db.batch_execute(
        "INSERT INTO dist.health_scores VALUES ('client-03', 80, now());
         INSERT INTO loc.health_scores VALUES ('client-03', 80, now());
         UPDATE dist.leads SET responded_at = now() WHERE lead = 'lead-8814';
         UPDATE loc.leads SET responded_at = now() WHERE lead = 'lead-8814';",
    )
    .unwrap();
    let report = scan(&mut db);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let on_citus = found(&mut db, "d");
    assert!(
        !on_citus
            .iter()
            .any(|a| a.contains("client-03") || a.contains("lead-8814")),
        "resolved on the distributed side: {on_citus:#?}"
    );
    assert_eq!(on_citus.len(), local.len() - 2);
    assert_eq!(on_citus, found(&mut db, "l"));
}

fn scan(db: &mut Client) -> serde_json::Value {
    let text: String = db
        .query_one("SELECT vigil.scan()::text", &[])
        .unwrap()
        .get(0);
    serde_json::from_str(&text).unwrap()
}
