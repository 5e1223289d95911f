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
    _workers: Vec<Cluster>,
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
            _workers: workers,
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

/// Until rollups on distributed tables exist (issue 18, item 2),
/// `create_rollup` refuses a distributed source with one clear error,
/// creates nothing, and the table keeps taking writes.
pub fn create_rollup_refuses_a_distributed_source_cleanly(_c: &Cluster) {
    let citus = CitusCluster::start();
    let mut db = citus.db();
    db.batch_execute(
        "CREATE TABLE ev (entity int, ts timestamptz, v float8);
         SELECT create_distributed_table('ev', 'entity');",
    )
    .unwrap();
    let e = db
        .batch_execute(
            "SELECT vigil.create_rollup('ev_1h', 'ev', 'ts', '1 hour', ARRAY['entity'], '{\"n\": {\"agg\": \"count\"}}')",
        )
        .unwrap_err();
    let e = e.as_db_error().expect("a database error");
    assert_eq!(e.code().code(), "0A000", "{e:?}");
    assert_eq!(
        e.message(),
        "source: public.ev is a Citus distributed table; rollups of tables Citus manages are not supported yet"
    );
    assert!(e.detail().is_none(), "no backtrace or internals: {e:?}");
    db.batch_execute(
        "CREATE TABLE refs (k int PRIMARY KEY); SELECT create_reference_table('refs')",
    )
    .unwrap();
    let e = db
        .batch_execute(
            "SELECT vigil.create_rollup('refs_1h', 'refs', 'k', '1 hour', ARRAY[]::text[], '{\"n\": {\"agg\": \"count\"}}')",
        )
        .unwrap_err();
    assert!(
        e.as_db_error()
            .is_some_and(|e| e.code().code() == "0A000"
                && e.message().contains("is a Citus reference table")),
        "{e:?}"
    );
    let left: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM vigil.rollup_defs)
                  + (SELECT count(*) FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid
                     WHERE t.tgrelid IN ('ev'::regclass, 'refs'::regclass)
                       AND f.pronamespace = 'vigil'::regnamespace)
                  + (SELECT count(*) FROM pg_catalog.pg_class WHERE relname IN ('ev_1h', 'refs_1h'))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "a refused rollup leaves nothing behind");
    db.batch_execute("INSERT INTO ev VALUES (1, now(), 1), (2, now(), 2)")
        .unwrap();

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
