//! Upgrades (issue 14): a cluster on pg_vigil 0.1.0 (built from tag v0.1.0
//! by scripts/old-version.sh into a private copy of PostgreSQL) with
//! rollups, monitors, rule edits, a channel and queued notifications gets
//! this build's package and a restart, then `ALTER EXTENSION pg_vigil
//! UPDATE`. The upgraded schema must equal a fresh install's (pg_dump of
//! both, compared object by object), and what the user had must go on
//! working. Because the comparison is with this build's own SQL, any change
//! to the extension's SQL without the matching migration fails here.

use pg_vigil_e2e::sink::Sink;
use pg_vigil_e2e::{wait_for, Cluster};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const POPULATE: &str = include_str!("populate-0.1.0.sql");

/// C entry points of 0.1.0's SQL that this library no longer implements
/// with that declaration (src/version.rs, `retired`).
const RETIRED: &[&str] = &[
    "rollup_insert_wrapper",
    "vigil_stats_agg_trans",
    "stats_rollup_trans_wrapper",
    "stats_agg_combine_wrapper",
    "stats_agg_serial_wrapper",
    "stats_agg_deserial_wrapper",
    "stats_agg_final_wrapper",
    "vigil_percentile_agg_trans",
    "sketch_rollup_trans_wrapper",
    "sketch_combine_wrapper",
    "sketch_serial_wrapper",
    "sketch_deserial_wrapper",
    "sketch_final_wrapper",
];

/// The bindir of the private PostgreSQL with 0.1.0 installed.
fn old_bindir() -> PathBuf {
    let dir = std::env::var_os("PG_VIGIL_OLD_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/pg-0.1.0/usr/lib/postgresql/15/bin")
        });
    assert!(
        dir.join("postgres").exists(),
        "{} has no PostgreSQL with pg_vigil 0.1.0: run scripts/old-version.sh 0.1.0 (make e2e does)",
        dir.display()
    );
    dir
}

fn one(db: &mut postgres::Client, sql: &str) -> String {
    db.query_one(&format!("SELECT ({sql})::text"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

fn lines(db: &mut postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// The extension's objects in a `pg_dump --schema-only --binary-upgrade`
/// (which, unlike a plain dump, lists every member of an extension), keyed
/// by pg_dump's own "Name; Type; Schema" header, normalised for what only
/// says how an object came to be: OIDs and frozen xids, dropped and
/// missing-value column bookkeeping, session settings, column order within
/// a table (ALTER TABLE ADD COLUMN appends), sequence positions (data) and
/// the extension's own entry (compared as its config list instead).
fn schema_objects(c: &Cluster, db: &str) -> BTreeMap<String, String> {
    let out = c.run_client("pg_dump", &["--schema-only", "--binary-upgrade", "-d", db]);
    assert!(
        out.status.success(),
        "pg_dump {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut objects = BTreeMap::new();
    let mut key: Option<String> = None;
    let mut body = String::new();
    let flush = |key: &Option<String>, body: &str, objects: &mut BTreeMap<String, String>| {
        if let Some(k) = key {
            objects.insert(k.clone(), normalise(body));
        }
    };
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("-- Name: ") {
            flush(&key, &body, &mut objects);
            body.clear();
            // "<name>; Type: <type>; Schema: <schema>; Owner: <owner>"
            let parts: Vec<&str> = header.split("; ").collect();
            let (name, typ, schema) = (
                parts[0],
                parts[1].trim_start_matches("Type: "),
                parts[2].trim_start_matches("Schema: "),
            );
            let ours = schema == "vigil"
                || (schema == "-" && (typ == "EVENT TRIGGER" || name.contains("vigil")));
            key = (ours && typ != "SEQUENCE SET" && typ != "EXTENSION")
                .then(|| format!("{typ} {schema}.{name}"));
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&key, &body, &mut objects);
    objects
}

fn normalise(body: &str) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut skip_update = false;
    for line in body.lines() {
        if skip_update {
            skip_update = !line.ends_with(';');
            continue;
        }
        if line.starts_with("UPDATE pg_catalog.pg_class")
            || line.starts_with("UPDATE pg_catalog.pg_attribute")
        {
            skip_update = !line.ends_with(';');
            continue;
        }
        let noise = line.starts_with("SELECT pg_catalog.binary_upgrade_")
            || line.starts_with("-- For binary upgrade")
            || line.starts_with("-- set missing value")
            || line.starts_with("ALTER EXTENSION ")
            || line.starts_with('\\')
            || line.starts_with("SET ")
            || line.contains("pg.dropped")
            || line.trim() == "--"
            || line.trim().is_empty();
        if !noise {
            kept.push(line.trim_end_matches(',').to_string());
        }
    }
    // Column lines of a CREATE TABLE in name order.
    let mut out = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        out.push(kept[i].clone());
        if kept[i].starts_with("CREATE TABLE ") && kept[i].ends_with('(') {
            let start = i + 1;
            let mut end = start;
            while end < kept.len() && !kept[end].starts_with(')') {
                end += 1;
            }
            let mut cols: Vec<String> = kept[start..end]
                .iter()
                .map(|c| c.trim().to_string())
                .collect();
            cols.sort();
            out.extend(cols);
            i = end;
            continue;
        }
        i += 1;
    }
    out.join("\n")
}

fn config_tables(db: &mut postgres::Client) -> Vec<String> {
    lines(
        db,
        "SELECT c::regclass::text || ' ' || cond FROM pg_extension e, unnest(e.extconfig, e.extcondition) u(c, cond)
         WHERE e.extname = 'pg_vigil' ORDER BY 1",
    )
}

/// (symbol, declaration) of every C function the extension declares.
fn c_entry_points(db: &mut postgres::Client) -> BTreeMap<String, String> {
    db.query(
        "SELECT p.prosrc, p.oid::regprocedure::text || ' -> ' || pg_get_function_result(p.oid)
                || CASE WHEN p.proretset THEN ' setof' ELSE '' END
         FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
         JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_vigil'
         WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

pub fn upgrade_from_0_1_0_equals_a_fresh_install_and_keeps_working(_main: &Cluster) {
    let sink = Sink::start();
    let mut c = Cluster::start_with_bindir(
        "upgrade",
        &["vigil.database = 'postgres'", "vigil.worker_enabled = off"],
        old_bindir(),
    );
    let mut db = c.connect("postgres");
    db.batch_execute("CREATE EXTENSION pg_vigil CASCADE")
        .unwrap();
    assert_eq!(
        one(
            &mut db,
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_vigil'"
        ),
        "0.1.0"
    );
    db.batch_execute(POPULATE).unwrap();
    db.execute(
        "UPDATE vigil.channels SET url = $1 WHERE name = 'hook'",
        &[&sink.url("/hook")],
    )
    .unwrap();
    let queued: i64 = db
        .query_one(
            "SELECT count(*) FROM vigil.notifications WHERE status = 'pending'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        queued >= 2,
        "0.1.0 queued the alerts' notifications: {queued}"
    );
    let old_entry_points = c_entry_points(&mut db);
    drop(db);

    // The new package, and a restart: the database still has 0.1.0's SQL.
    c.restart_with_bindir(None);
    let mut db = c.connect("postgres");
    db.batch_execute("ALTER SYSTEM SET vigil.worker_enabled = on")
        .unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(
        "worker waiting for the update",
        Duration::from_secs(30),
        || {
            (one(&mut db, "SELECT state FROM vigil.worker_status()") == "waiting_for_update")
                .then_some(())
        },
    );
    // The application's writes go on (unmaintained, with a WARNING) ...
    db.batch_execute(
        "INSERT INTO app.events (entity, ts, amount, latency, kind)
         SELECT 'e' || (i % 5), timestamptz '2026-11-03 00:00+00' + i * interval '1 minute', 2.5, i, 'paid'
         FROM generate_series(1, 50) i;
         INSERT INTO public.measures VALUES ('2026-12-02 10:00+00', 's9', 4)",
    )
    .unwrap();
    // ... while the rest is refused with the fix as a hint.
    let refused = db
        .batch_execute(
            "SELECT vigil.create_rollup('app.more', 'app.events', 'ts', '1 day', ARRAY['entity'], '{\"n\": {\"agg\": \"count\"}}')",
        )
        .unwrap_err();
    let e = refused.as_db_error().expect("a database error");
    assert_eq!(e.code().code(), "55000", "{e:?}");
    assert!(
        e.message().contains("version 0.1.0") && e.message().contains("library is version 0.2.0"),
        "{e:?}"
    );
    assert_eq!(
        e.hint(),
        Some("Run ALTER EXTENSION pg_vigil UPDATE in this database.")
    );
    assert_eq!(sink.count(), 0, "nothing is sent before the update");
    // 0.1.0's stats_agg names retired internal-state functions: the same
    // error, not a call into code that reads its state as another type.
    for sql in [
        "SELECT vigil.stats_agg(x) FROM generate_series(1, 3) x",
        "SELECT vigil.percentile_agg(x) FROM generate_series(1, 3) x",
    ] {
        let e = db.batch_execute(sql).unwrap_err();
        let e = e.as_db_error().expect("a database error");
        assert_eq!(
            (e.code().code(), e.hint()),
            (
                "55000",
                Some("Run ALTER EXTENSION pg_vigil UPDATE in this database.")
            ),
            "{sql}: {e:?}"
        );
    }

    db.batch_execute("ALTER EXTENSION pg_vigil UPDATE").unwrap();
    assert_eq!(
        one(
            &mut db,
            "SELECT vigil.stats_agg(x)::text || ' ' || vigil.rollup(s)::text FROM generate_series(1, 3) x,
                    LATERAL (SELECT vigil.stats_agg(y) s FROM generate_series(1, x) y) q"
        ),
        "(n:3,mean:2.0,m2:2.0,min:1.0,max:3.0) (n:6,mean:1.6666666666666667,m2:3.3333333333333335,min:1.0,max:3.0)",
        "stats_agg and rollup(statsagg) work after the update"
    );
    assert_eq!(
        one(
            &mut db,
            "SELECT vigil.percentile_agg(x)::text || ' ' || vigil.rollup(s)::text FROM generate_series(1, 3) x,
                    LATERAL (SELECT vigil.percentile_agg(y) s FROM generate_series(1, x) y) q"
        ),
        "(alpha:0.01,n:3,zero:0,neg:[],pos:[0:1;35:1;55:1]) (alpha:0.01,n:6,zero:0,neg:[],pos:[0:3;35:2;55:1])",
        "percentile_agg and rollup(sketch) work after the update"
    );
    let log = c.log();
    assert!(
        log.contains("rollup app.clicks_1d is not maintained"),
        "a rollup the update cannot rebuild is reported, and the update goes on"
    );
    assert!(
        log.contains("monitors disabled until reviewed: busy_entities, kill_variants"),
        "0.1.0 monitors wait for a review"
    );
    assert_eq!(
        one(
            &mut db,
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_vigil'"
        ),
        "0.2.0"
    );

    // (a) The schema equals a fresh 0.2.0 install's.
    db.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut fresh = c.connect("fresh");
    fresh
        .batch_execute("CREATE EXTENSION pg_vigil CASCADE")
        .unwrap();
    let upgraded = schema_objects(&c, "postgres");
    let installed = schema_objects(&c, "fresh");
    let mut differences = Vec::new();
    for (k, v) in &installed {
        match upgraded.get(k) {
            None => differences.push(format!("missing after the upgrade: {k}")),
            Some(u) if u != v => {
                differences.push(format!("differs: {k}\n--- upgraded\n{u}\n--- fresh\n{v}"))
            }
            _ => {}
        }
    }
    for k in upgraded.keys().filter(|k| !installed.contains_key(*k)) {
        differences.push(format!("left over from 0.1.0: {k}"));
    }
    assert!(
        installed.len() > 300,
        "the dump lists the extension's objects: {}",
        installed.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(config_tables(&mut db), config_tables(&mut fresh));

    // Every C symbol 0.1.0's SQL names keeps its declaration or is retired
    // (and then exported, so the old declaration fails cleanly).
    let new_entry_points = c_entry_points(&mut fresh);
    for (symbol, declaration) in &old_entry_points {
        if RETIRED.contains(&symbol.as_str()) {
            assert!(
                !new_entry_points.contains_key(symbol),
                "{symbol} is retired"
            );
            fresh
                .batch_execute(&format!(
                    "CREATE FUNCTION pg_temp.retired() RETURNS trigger LANGUAGE c AS 'pg_vigil', '{symbol}'; \
                     DROP FUNCTION pg_temp.retired()"
                ))
                .unwrap_or_else(|e| panic!("retired {symbol} is still exported: {e}"));
        } else {
            assert_eq!(
                new_entry_points.get(symbol),
                Some(declaration),
                "C symbol {symbol}: 0.1.0's declaration must keep working with this library"
            );
        }
    }

    // (b) What the user had keeps working. Rollups: recomputed (the rows
    // written before the update are in), owned by the source's owner,
    // exact under more DML.
    assert_eq!(
        lines(
            &mut db,
            "SELECT name::text || ' ' || status FROM vigil.rollups ORDER BY 1"
        ),
        [
            "app.clicks_1d broken: no trigger maintains it on INSERT, DELETE, UPDATE, TRUNCATE",
            "app.events_1h ok",
            "measures_1d ok"
        ]
    );
    // The rollup that could not be rebuilt: none of 0.1.0's triggers or
    // generated functions are left, and its source stays writable.
    assert_eq!(
        one(
            &mut db,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.clicks'::regclass"
        ),
        "0"
    );
    assert_eq!(
        one(
            &mut db,
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'clicks_1d%'"
        ),
        "0"
    );
    db.batch_execute(
        "SET ROLE app_owner; INSERT INTO app.clicks VALUES (now(), 'e1');
         UPDATE app.clicks SET entity = 'e3' WHERE entity = 'e0'; DELETE FROM app.clicks WHERE entity = 'e1';
         RESET ROLE",
    )
    .unwrap();
    assert_eq!(
        one(
            &mut db,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.events_1h'::regclass"
        ),
        "app_owner"
    );
    assert_eq!(one(&mut db, "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'app.events_1h_since(interval)'::regprocedure"), "app_owner");
    // the exact window function, new in 0.2.0, is made for upgraded rollups too
    assert_eq!(one(&mut db, "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'app.events_1h_since(interval, boolean)'::regprocedure"), "app_owner");
    db.batch_execute(
        "DELETE FROM app.events WHERE id % 4 = 0;
         UPDATE app.events SET latency = latency + 1, entity = 'e9' WHERE id % 7 = 1;
         UPDATE public.measures SET v = v * 2 WHERE site = 's1';
         DELETE FROM public.measures_2026_11 WHERE v > 8;
         SET ROLE app_owner; INSERT INTO app.events (entity, ts, amount, latency, kind) VALUES ('e1', now(), 1, 1, 'free'); RESET ROLE",
    )
    .unwrap();
    for r in ["app.events_1h", "public.measures_1d"] {
        assert_eq!(
            one(&mut db, &format!("SELECT vigil.verify_rollup('{r}')")),
            "0",
            "{r}"
        );
    }
    // An upgraded sum counts its values: over NULLs alone it reads NULL.
    db.batch_execute("INSERT INTO public.measures VALUES (now(), 'snull', NULL)")
        .unwrap();
    assert_eq!(
        one(
            &mut db,
            "SELECT n || ' ' || coalesce(total::text, 'NULL') FROM public.measures_1d_since('1 day') WHERE site = 'snull'"
        ),
        "1 NULL"
    );
    assert_eq!(
        one(&mut db, "SELECT vigil.verify_rollup('public.measures_1d')"),
        "0"
    );
    assert_eq!(
        one(
            &mut db,
            "SELECT count(*) FROM pg_trigger WHERE tgfoid = 'vigil._rollup_trigger'::regproc"
        ),
        "16",
        "4 triggers on each source and on each of the 2 partitions"
    );
    // Monitors scan as their source's owner and raise alerts, once a DBA
    // has reviewed and enabled them.
    assert_eq!(
        lines(&mut db, "SELECT name || ' ' || enabled || ' ' || (last_error LIKE 'disabled by the upgrade%') FROM vigil.monitors ORDER BY id"),
        ["busy_entities false true", "kill_variants false true"]
    );
    db.batch_execute("SELECT vigil.enable_monitor(name) FROM vigil.monitors")
        .unwrap();
    assert_eq!(
        lines(&mut db, "SELECT name || ' ' || created_by || ' ' || source_oid::regclass FROM vigil.monitors ORDER BY id"),
        ["busy_entities app_owner app.events", "kill_variants app_owner app.interactions"]
    );
    let report = one(&mut db, "SELECT vigil.scan()");
    assert!(
        report.contains("\"success\": true") && report.contains("busy_entities"),
        "{report}"
    );
    // An open default-rule alert keeps its identity: the same breach bumps
    // it instead of opening a second alert under the seed's alertname.
    db.batch_execute("SELECT vigil.check_metric('roas', 1.0, 'campaign-1')")
        .unwrap();
    assert_eq!(
        lines(&mut db, "SELECT labels->>'alertname' || ' ' || occurrences || ' ' || status FROM vigil.alerts WHERE rule = 'roas_below_2' ORDER BY id"),
        ["ROAS_DROP 2 firing"]
    );
    // Rule edits survive and the defaults are tracked as 0.2.0 does.
    assert_eq!(
        lines(&mut db, "SELECT id || ' ' || name || ' ' || threshold FROM vigil.rules WHERE id = 1 OR id >= 1000 ORDER BY id"),
        ["1 roas_below_2 1.5", "1000 my_rule 5"]
    );
    assert_eq!(
        lines(&mut db, "SELECT name FROM vigil.deleted_default_rules"),
        ["impressions_below_1000"]
    );
    assert_eq!(
        one(
            &mut db,
            "SELECT count(*) FROM vigil.deleted_default_recommended_actions"
        ),
        "1"
    );
    // The outbox: 0.1.0's queued notifications arrive, and new ones too.
    db.batch_execute("SELECT vigil.raise_alert('spike', 'e3', 'critical', 'spike on e3')")
        .unwrap();
    assert!(
        sink.wait_for_count(queued as usize + 1, Duration::from_secs(60)),
        "delivered {} of {}",
        sink.count(),
        queued + 1
    );
    assert_eq!(
        one(&mut db, "SELECT state FROM vigil.worker_status()"),
        "idle"
    );
    let log = c.log();
    assert!(
        log.contains("Rollups are not maintained until then"),
        "the unmaintained writes were warned about"
    );
}
