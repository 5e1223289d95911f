//! Rollups under a DBA's day (issue #14): DDL on the watched table, drops,
//! dump/restore of the application's schema and of the whole database, and
//! DROP EXTENSION. Each test checks that the application's writes go on and
//! that the rollup stays exact (`verify_rollup` = 0) or is refused/dropped
//! the way PostgreSQL treats a view.

use pg_vigil_e2e::{try_sql, Cluster};
use postgres::Client;

fn one_i64(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

fn one_text(db: &mut Client, sql: &str) -> String {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// A database with role `ddl_owner` owning schema app, table app.ev (100
/// rows) and three rollups over it; returns (superuser, owner) clients.
fn setup(c: &Cluster, db: &str) -> (Client, Client) {
    let mut su = c.fresh_db(db);
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_owner') THEN CREATE ROLE ddl_owner LOGIN; END IF;
         END $$;
         CREATE SCHEMA app AUTHORIZATION ddl_owner;",
    )
    .unwrap();
    let mut owner = c.connect_as(db, "ddl_owner");
    owner
        .batch_execute(
            "CREATE TABLE app.ev (ts timestamptz NOT NULL, entity text, status text, v float8, extra int);
             INSERT INTO app.ev SELECT now() - i * interval '7 minutes', 'e' || (i % 3),
                    CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'free' END, i, i FROM generate_series(1, 100) i;
             SELECT vigil.create_rollup('app.r1', 'app.ev', 'ts', '1 hour', ARRAY['entity'],
                 '{\"n\": {\"agg\": \"count\"}, \"paid\": {\"agg\": \"count\", \"filter\": \"status = ''paid'' AND v > 0\"},
                   \"s\": {\"agg\": \"sum\", \"column\": \"v\"}, \"st\": {\"agg\": \"stats\", \"column\": \"v\"},
                   \"mx\": {\"agg\": \"max\", \"column\": \"v\"}}');
             SELECT vigil.create_rollup('app.r2', 'app.ev', 'ts', '1 hour', ARRAY['entity'],
                 '{\"n\": {\"agg\": \"count\"}, \"x\": {\"agg\": \"max\", \"column\": \"extra\"}}');
             SELECT vigil.create_rollup('app.r3', 'app.ev', 'ts', '1 day', '{}',
                 '{\"n\": {\"agg\": \"count\", \"filter\": \"status = ''paid''\"}}');",
        )
        .unwrap();
    (su, owner)
}

/// Inserts, updates and deletes through `owner`, then checks every rollup
/// in `rollups` is exact.
fn write_and_verify(
    owner: &mut Client,
    table: &str,
    cols: (&str, &str, &str, &str),
    rollups: &[&str],
) {
    let (ts, entity, status, v) = cols;
    owner
        .batch_execute(&format!(
            "INSERT INTO {table} ({ts}, {entity}, {status}, {v}) VALUES (now(), 'e1', 'paid', 5), (now() - interval '2 hours', 'e9', 'free', 7);
             UPDATE {table} SET {v} = {v} + 1, {entity} = 'e2' WHERE {v} < 10;
             DELETE FROM {table} WHERE {v} > 90;"
        ))
        .unwrap();
    for r in rollups {
        assert_eq!(
            one_i64(owner, &format!("SELECT vigil.verify_rollup('{r}')")),
            0,
            "{r} is not exact after writes to {table}"
        );
    }
}

pub fn rollups_follow_renames_and_refuse_ddl_that_would_break_them(c: &Cluster) {
    let (mut su, mut owner) = setup(c, "rollup_ddl");
    // Like a view: a used column cannot be dropped or retyped.
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.ev DROP COLUMN v"),
        "2BP01"
    );
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.ev ALTER COLUMN v TYPE text"),
        "0A000"
    );
    assert_eq!(
        try_sql(
            &mut owner,
            "ALTER TABLE app.ev ALTER COLUMN status TYPE varchar(9)"
        ),
        "0A000"
    );
    // Renames of every kind of column it reads, of the table and of the
    // summary: writes go on and stay exact.
    for stmt in [
        "ALTER TABLE app.ev RENAME COLUMN status TO state",
        "ALTER TABLE app.ev RENAME COLUMN entity TO creator",
        "ALTER TABLE app.ev RENAME COLUMN v TO value",
        "ALTER TABLE app.ev RENAME COLUMN ts TO at",
    ] {
        assert_eq!(try_sql(&mut owner, stmt), "ok", "{stmt}");
    }
    write_and_verify(
        &mut owner,
        "app.ev",
        ("at", "creator", "state", "value"),
        &["app.r1", "app.r2", "app.r3"],
    );
    let filter = one_text(
        &mut su,
        "SELECT measures->'paid'->>'filter' FROM vigil.rollup_defs WHERE summary = 'app.r1'::regclass",
    );
    assert_eq!(filter, "\"state\" = 'paid' AND \"value\" > 0");
    // Filters name columns alone (a table name in them would not survive
    // a rename of the table).
    assert_eq!(
        try_sql(
            &mut owner,
            "SELECT vigil.create_rollup('app.rq', 'app.ev', 'at', '1 hour', '{}', '{\"n\": {\"agg\": \"count\", \"filter\": \"ev.value > 1\"}}')"
        ),
        "22023"
    );
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.ev RENAME TO events"),
        "ok"
    );
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.r1 RENAME TO r_hourly"),
        "ok"
    );
    write_and_verify(
        &mut owner,
        "app.events",
        ("at", "creator", "state", "value"),
        &["app.r_hourly", "app.r2", "app.r3"],
    );
    // The window views and _since follow the summary's rename.
    assert!(one_i64(&mut owner, "SELECT count(*) FROM app.r1_24h") > 0);
    // The summary's columns belong to the rollup.
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.r2 RENAME COLUMN x TO y"),
        "0A000"
    );
    // Their types too, even once nothing else depends on them (the
    // `_since` functions dropped): every type, typmod included, and the
    // rollup's own columns.
    for alter in [
        "ALTER COLUMN x TYPE bigint",
        "ALTER COLUMN n TYPE numeric",
        "ALTER COLUMN entity TYPE varchar(20)",
        "ALTER COLUMN _rows TYPE numeric",
    ] {
        assert_eq!(
            try_sql(
                &mut owner,
                &format!(
                    "BEGIN; DROP FUNCTION app.r2_since(interval) CASCADE; \
                     DROP FUNCTION app.r2_since(interval, boolean) CASCADE; ALTER TABLE app.r2 {alter}"
                )
            ),
            "0A000",
            "{alter}"
        );
        owner.batch_execute("ROLLBACK").unwrap();
    }
    // A schema someone else controls is refused for the source.
    su.batch_execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_other') THEN CREATE ROLE ddl_other; END IF; END $$;
         CREATE SCHEMA other AUTHORIZATION ddl_other; GRANT CREATE, USAGE ON SCHEMA other TO ddl_owner;",
    )
    .unwrap();
    assert_eq!(
        try_sql(&mut owner, "ALTER TABLE app.events SET SCHEMA other"),
        "42501"
    );
    // A trigger of a rollup is not dropped alone; a disabled one shows.
    assert_eq!(
        try_sql(&mut owner, "DROP TRIGGER vigil_rollup_r2_upd ON app.events"),
        "2BP01"
    );
    owner
        .batch_execute("ALTER TABLE app.events DISABLE TRIGGER vigil_rollup_r3_ins")
        .unwrap();
    assert_eq!(
        one_text(
            &mut su,
            "SELECT status FROM vigil.rollups WHERE name = 'app.r3'::regclass"
        ),
        "stale: trigger(s) vigil_rollup_r3_ins disabled"
    );
    assert_eq!(
        one_i64(&mut su, "SELECT rollups_broken FROM vigil.health"),
        1
    );
    owner
        .batch_execute("ALTER TABLE app.events ENABLE TRIGGER vigil_rollup_r3_ins")
        .unwrap();
    // CASCADE drops exactly the rollup that read the column, whole.
    owner
        .batch_execute("ALTER TABLE app.events DROP COLUMN extra CASCADE")
        .unwrap();
    assert_eq!(
        one_i64(&mut su, "SELECT count(*) FROM pg_class WHERE relname LIKE 'r2%' AND relnamespace = 'app'::regnamespace"),
        0
    );
    assert_eq!(
        one_i64(&mut su, "SELECT count(*) FROM vigil.rollup_defs"),
        2
    );
    assert_eq!(
        one_i64(&mut su, "SELECT rollups_broken FROM vigil.health"),
        0
    );
    write_and_verify(
        &mut owner,
        "app.events",
        ("at", "creator", "state", "value"),
        &["app.r_hourly", "app.r3"],
    );
    // The owner (no vigil role) verifies, rebuilds and drops its own rollup.
    let groups = one_i64(
        &mut owner,
        "SELECT count(*) FROM (SELECT 1 FROM app.r3 GROUP BY bucket HAVING sum(_rows) > 0) g",
    );
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.rebuild_rollup('app.r3')"),
        groups
    );
    owner
        .batch_execute("SELECT vigil.drop_rollup('app.r3')")
        .unwrap();
    // The source cannot be dropped from under a rollup; CASCADE takes it.
    assert_eq!(try_sql(&mut owner, "DROP TABLE app.events"), "2BP01");
    owner
        .batch_execute("DROP TABLE app.events CASCADE")
        .unwrap();
    assert_eq!(
        one_i64(&mut su, "SELECT count(*) FROM vigil.rollup_defs"),
        0
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace"
        ),
        0,
        "DROP TABLE … CASCADE left part of a rollup behind"
    );
}

fn dump(c: &Cluster, args: &[&str]) {
    let out = c.run_client("pg_dump", args);
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "pg_dump warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores bring rollups back working — and a trigger that another role
/// (with TRIGGER on the source) made to look like a rollup's, restored
/// with the rest and sorted before vigil's, is never linked, nor is its
/// definition (a one-minute bucket here; a filter could be any SQL, run as
/// the owner) registered: the summary's definition constraint names
/// vigil's own triggers and carries the definition.
pub fn rollups_work_after_restoring_the_app_schema_or_the_whole_database(c: &Cluster) {
    let (mut su0, mut owner) = setup(c, "rollup_dump");
    owner
        .batch_execute("ALTER TABLE app.ev RENAME COLUMN entity TO creator; ALTER TABLE app.r1 RENAME TO r_hourly;")
        .unwrap();
    // A rolling total of the renamed rollup (its definition is vigil's
    // configuration: restored with the whole database, not with -n app).
    owner
        .batch_execute("SELECT vigil.create_rolling('app.r_24h', 'app.r_hourly', '24 hours')")
        .unwrap();
    su0.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_forger') THEN CREATE ROLE ddl_forger LOGIN; END IF;
         END $$;",
    )
    .unwrap();
    owner
        .batch_execute(
            "GRANT USAGE ON SCHEMA app TO ddl_forger; GRANT TRIGGER ON app.ev TO ddl_forger",
        )
        .unwrap();
    let forged = pg_vigil_e2e::forged_rollup_trigger(
        &mut su0,
        "app.ev",
        "vigil_rollup_r1_ins",
        "app.r_hourly",
        "{bucket}",
        "\"0 days 60000000 microseconds\"",
    );
    assert!(forged.contains("60000000"), "{forged}");
    c.connect_as("rollup_dump", "ddl_forger")
        .batch_execute(&forged)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("vigil_dump_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app_sql = dir.join("app.sql");
    let full = dir.join("full.dump");
    dump(
        c,
        &["-n", "app", "-f", app_sql.to_str().unwrap(), "rollup_dump"],
    );
    dump(c, &["-Fc", "-f", full.to_str().unwrap(), "rollup_dump"]);
    // The application's schema alone, into a database where only
    // CREATE EXTENSION ran: the triggers bring their definitions.
    let mut fresh = c.fresh_db("rollup_restore_app");
    drop(fresh.batch_execute("SELECT 1"));
    let out = c.run_client(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "rollup_restore_app",
            "-f",
            app_sql.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "restore of -n app failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The whole database, with pg_restore.
    let mut admin = c.connect("postgres");
    admin
        .batch_execute("DROP DATABASE IF EXISTS rollup_restore_full WITH (FORCE)")
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE rollup_restore_full")
        .unwrap();
    let out = c.run_client(
        "pg_restore",
        &["-d", "rollup_restore_full", full.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "pg_restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for db in ["rollup_restore_app", "rollup_restore_full"] {
        let mut su = c.connect(db);
        let statuses: Vec<String> = su
            .query("SELECT status FROM vigil.rollups ORDER BY name::text", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(statuses, vec!["ok"; 3], "{db}");
        assert_eq!(
            one_i64(&mut su, "SELECT count(*) FROM pg_depend d JOIN pg_trigger t ON t.oid = d.objid
                              WHERE t.tgname = 'aaa_forged' AND d.refobjid = 'app.r_hourly'::regclass"),
            0,
            "{db}: the copied trigger is not linked"
        );
        assert_eq!(
            one_i64(&mut su, "SELECT count(*) FROM vigil.rollup_defs WHERE bucket <> interval '1 hour' AND bucket <> interval '1 day'"),
            0,
            "{db}: the copied trigger's definition is not registered"
        );
        // Linked again: DDL protection holds after the restore too.
        assert_eq!(
            one_i64(&mut su, "SELECT count(*) FROM pg_depend WHERE refobjid = 'app.r_hourly'::regclass AND classid = 'pg_trigger'::regclass"),
            4,
            "{db}"
        );
        let mut o = c.connect_as(db, "ddl_owner");
        write_and_verify(
            &mut o,
            "app.ev",
            ("ts", "creator", "status", "v"),
            &["app.r_hourly", "app.r2", "app.r3"],
        );
        if db == "rollup_restore_full" {
            assert_eq!(
                one_i64(&mut o, "SELECT vigil.verify_rolling('app.r_24h')"),
                0,
                "{db}: the rolling total follows the writes after the restore"
            );
            assert_eq!(
                one_i64(&mut o, "SELECT count(*) FROM app.r_24h WHERE rows > 0"),
                one_i64(&mut o, "SELECT count(*) FROM app.r1_since('24 hours')"),
                "{db}"
            );
        } else {
            // Without vigil's configuration the view says what it lacks.
            assert_eq!(try_sql(&mut o, "SELECT * FROM app.r_24h"), "42P01", "{db}");
        }
        assert_eq!(
            try_sql(&mut o, "ALTER TABLE app.ev DROP COLUMN v"),
            "2BP01",
            "{db}"
        );
        assert_eq!(
            one_i64(&mut su, "SELECT rollups_broken FROM vigil.health"),
            0,
            "{db}"
        );
    }
    drop(fresh);
    std::fs::remove_dir_all(&dir).ok();
}

pub fn drop_extension_cascade_leaves_the_application_writable(c: &Cluster) {
    let (mut su, mut owner) = setup(c, "rollup_dropext");
    su.batch_execute("DROP EXTENSION pg_vigil CASCADE").unwrap();
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.ev'::regclass"
        ),
        0
    );
    for stmt in [
        "INSERT INTO app.ev VALUES (now(), 'e1', 'paid', 1, 1)",
        "UPDATE app.ev SET v = v + 1",
        "DELETE FROM app.ev WHERE v > 50",
        "TRUNCATE app.ev",
    ] {
        assert_eq!(
            try_sql(&mut owner, stmt),
            "ok",
            "{stmt} after DROP EXTENSION"
        );
    }
    // Summaries stay as plain tables (their vigil-typed columns went with
    // the types); CREATE EXTENSION works again.
    assert_eq!(one_i64(&mut su, "SELECT count(*) FROM pg_class WHERE relname IN ('r1', 'r2', 'r3') AND relnamespace = 'app'::regnamespace"), 3);
    su.batch_execute("CREATE EXTENSION pg_vigil").unwrap();
    assert_eq!(one_i64(&mut su, "SELECT count(*) FROM vigil.rollups"), 0);
}

pub fn partitioned_sources_stay_exact_on_every_path(c: &Cluster) {
    let (mut su, mut owner) = setup(c, "rollup_parts");
    let verify = |o: &mut Client, step: &str| {
        assert_eq!(
            one_i64(o, "SELECT vigil.verify_rollup('app.pr')"),
            0,
            "not exact after {step}"
        );
    };
    owner
        .batch_execute(
            "CREATE TABLE app.pe (ts timestamptz NOT NULL, k text, v float8) PARTITION BY RANGE (ts);
             CREATE TABLE app.pe_old PARTITION OF app.pe FOR VALUES FROM ('2000-01-01') TO ('2026-01-01');
             CREATE TABLE app.pe_new PARTITION OF app.pe FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (k);
             CREATE TABLE app.pe_new_a PARTITION OF app.pe_new FOR VALUES IN ('a');
             CREATE TABLE app.pe_new_b PARTITION OF app.pe_new DEFAULT;
             INSERT INTO app.pe VALUES ('2025-06-01', 'a', 1), ('2026-06-01', 'a', 2), ('2026-06-02', 'b', 3);
             SELECT vigil.create_rollup('app.pr', 'app.pe', 'ts', '1 day', ARRAY['k'],
                 '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}, \"mx\": {\"agg\": \"max\", \"column\": \"v\"}}');",
        )
        .unwrap();
    // Every table of the tree has the rollup's triggers.
    assert_eq!(
        one_i64(&mut su, "SELECT count(DISTINCT tgrelid) FROM pg_trigger WHERE tgfoid = 'vigil._rollup_trigger'::regproc AND tgrelid::regclass::text LIKE 'app.pe%'"),
        5
    );
    for (step, sql) in [
        ("INSERT into a leaf", "INSERT INTO app.pe_old VALUES ('2025-06-02', 'a', 10)"),
        ("INSERT into a sub-partition", "INSERT INTO app.pe_new_a VALUES ('2026-06-03', 'a', 11)"),
        ("INSERT through an intermediate partition", "INSERT INTO app.pe_new VALUES ('2026-06-04', 'c', 12)"),
        ("UPDATE of a leaf", "UPDATE app.pe_new_b SET v = v + 1"),
        ("UPDATE moving rows across partitions", "UPDATE app.pe SET ts = '2025-07-01' WHERE v = 2"),
        ("DELETE of the max from a leaf", "DELETE FROM app.pe_new_a WHERE v = 11"),
        ("COPY-like multi-row INSERT through the parent", "INSERT INTO app.pe SELECT '2026-02-01'::timestamptz + i * interval '1 hour', 'b', i FROM generate_series(1, 50) i"),
        ("a partition created later", "CREATE TABLE app.pe_2027 PARTITION OF app.pe FOR VALUES FROM ('2027-01-01') TO ('2028-01-01'); INSERT INTO app.pe_2027 VALUES ('2027-03-01', 'z', 5)"),
        ("a table with rows attached", "CREATE TABLE app.pe_2028 (ts timestamptz NOT NULL, k text, v float8); INSERT INTO app.pe_2028 VALUES ('2028-03-01', 'y', 6); ALTER TABLE app.pe ATTACH PARTITION app.pe_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01'); INSERT INTO app.pe_2028 VALUES ('2028-03-02', 'y', 7)"),
        ("TRUNCATE of a partition", "TRUNCATE app.pe_2027"),
        ("TRUNCATE of a partitioned partition", "TRUNCATE app.pe_new"),
    ] {
        owner.batch_execute(sql).unwrap_or_else(|e| panic!("{step}: {e}"));
        verify(&mut owner, step);
    }
    // Retention: detaching or dropping the oldest partition keeps the
    // summary's history; verify compares the range the source still has.
    let history = one_i64(
        &mut owner,
        "SELECT count(*) FROM app.pr WHERE bucket < '2026-01-01'",
    );
    assert!(history > 0);
    owner
        .batch_execute("ALTER TABLE app.pe DETACH PARTITION app.pe_old")
        .unwrap();
    verify(&mut owner, "DETACH of the oldest partition");
    assert_eq!(
        one_i64(
            &mut owner,
            "SELECT count(*) FROM app.pr WHERE bucket < '2026-01-01'"
        ),
        history
    );
    // The detached table is an ordinary table again: writable, no triggers.
    owner
        .batch_execute(
            "INSERT INTO app.pe_old VALUES ('2025-08-01', 'q', 1); DROP TABLE app.pe_old",
        )
        .unwrap();
    owner.batch_execute("DROP TABLE app.pe_2028").unwrap();
    assert_eq!(
        one_text(
            &mut su,
            "SELECT status FROM vigil.rollups WHERE name = 'app.pr'::regclass"
        ),
        "ok"
    );
    owner
        .batch_execute("INSERT INTO app.pe VALUES ('2027-04-01', 'a', 1)")
        .unwrap();
    verify(&mut owner, "DROP of a partition");
    owner.batch_execute("TRUNCATE app.pe").unwrap();
    assert_eq!(one_i64(&mut owner, "SELECT count(*) FROM app.pr"), 0);
}

pub fn a_rollup_changes_hands_only_explicitly_and_whole(c: &Cluster) {
    let mut su = c.fresh_db("rollup_owner");
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_owner') THEN CREATE ROLE ddl_owner LOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_heir') THEN CREATE ROLE ddl_heir LOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddl_reader') THEN CREATE ROLE ddl_reader LOGIN; END IF;
         END $$;
         -- A schema only a superuser controls: any owner's rollup may live there.
         CREATE SCHEMA shared; GRANT USAGE ON SCHEMA shared TO PUBLIC; GRANT CREATE ON SCHEMA shared TO ddl_owner;
         CREATE TABLE shared.ev (ts timestamptz NOT NULL, k text, v float8);
         ALTER TABLE shared.ev OWNER TO ddl_owner;
         CREATE SCHEMA reader AUTHORIZATION ddl_reader;",
    )
    .unwrap();
    let mut owner = c.connect_as("rollup_owner", "ddl_owner");
    owner
        .batch_execute(
            "INSERT INTO shared.ev VALUES (now(), 'a', 1);
             SELECT vigil.create_rollup('shared.ev_1h', 'shared.ev', 'ts', '1 hour', ARRAY['k'], '{\"n\": {\"agg\": \"count\"}}');
             GRANT SELECT ON shared.ev_1h TO ddl_reader;",
        )
        .unwrap();
    // Another role's function over the summary is not the rollup's.
    let mut reader = c.connect_as("rollup_owner", "ddl_reader");
    reader
        .batch_execute(
            "CREATE FUNCTION reader.total(since interval) RETURNS bigint LANGUAGE sql
             BEGIN ATOMIC SELECT sum(n) FROM shared.ev_1h; END;",
        )
        .unwrap();
    // The source alone cannot change hands: its rollup would run as the
    // new owner over a summary (and whatever its owner put on it) that
    // is not theirs. Nothing is handed over automatically.
    assert_eq!(
        try_sql(&mut su, "ALTER TABLE shared.ev OWNER TO ddl_heir"),
        "42501"
    );
    // The hand-over, in one transaction: the summary and what
    // create_rollup made, then the source; the heir, not the old owner,
    // may now create in the schema (the schema rule holds for the heir).
    su.batch_execute(
        "BEGIN; REVOKE CREATE ON SCHEMA shared FROM ddl_owner; GRANT CREATE ON SCHEMA shared TO ddl_heir;
         ALTER TABLE shared.ev_1h OWNER TO ddl_heir; ALTER FUNCTION shared.ev_1h_since(interval) OWNER TO ddl_heir;
         ALTER FUNCTION shared.ev_1h_since(interval, boolean) OWNER TO ddl_heir;
         ALTER VIEW shared.ev_1h_1h OWNER TO ddl_heir; ALTER VIEW shared.ev_1h_24h OWNER TO ddl_heir;
         ALTER VIEW shared.ev_1h_7d OWNER TO ddl_heir;
         ALTER TABLE shared.ev OWNER TO ddl_heir; COMMIT;",
    )
    .unwrap();
    assert_eq!(
        one_text(
            &mut su,
            "SELECT status FROM vigil.rollups WHERE name = 'shared.ev_1h'::regclass"
        ),
        "ok"
    );
    let owners: Vec<(String, String)> = su
        .query(
            "SELECT c.relname::text, c.relowner::regrole::text FROM pg_class c
             WHERE c.relnamespace = 'shared'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(owners.iter().all(|(_, o)| o == "ddl_heir"), "{owners:?}");
    assert_eq!(
        one_text(
            &mut su,
            "SELECT string_agg(DISTINCT proowner::regrole::text, ',') || ' ' || count(*) FROM pg_proc WHERE proname = 'ev_1h_since'"
        ),
        "ddl_heir 2"
    );
    assert_eq!(
        one_text(
            &mut su,
            "SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'total'"
        ),
        "ddl_reader"
    );
    let mut heir = c.connect_as("rollup_owner", "ddl_heir");
    heir.batch_execute(
        "INSERT INTO shared.ev VALUES (now(), 'b', 2); DELETE FROM shared.ev WHERE k = 'a'",
    )
    .unwrap();
    assert_eq!(
        one_i64(&mut heir, "SELECT vigil.verify_rollup('shared.ev_1h')"),
        0
    );
}

/// pg_partman (Debian postgresql-15-partman) makes the partitions ahead of
/// time and drops old ones by its retention setting: the partitions it
/// makes carry the rollup's triggers, and what it drops stays in the
/// summary's history.
pub fn pg_partman_partitions_and_retention_keep_the_rollup_exact(c: &Cluster) {
    let (mut su, mut owner) = setup(c, "rollup_partman");
    su.batch_execute(
        "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman;
         GRANT ALL ON SCHEMA partman TO ddl_owner;
         GRANT ALL ON ALL TABLES IN SCHEMA partman TO ddl_owner;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO ddl_owner;
         GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO ddl_owner;",
    )
    .unwrap();
    owner
        .batch_execute(
            "CREATE TABLE app.pm (ts timestamptz NOT NULL, k text, v float8) PARTITION BY RANGE (ts);
             SELECT partman.create_parent(p_parent_table => 'app.pm', p_control => 'ts', p_type => 'native',
                                          p_interval => 'daily', p_premake => 3, p_start_partition => (now() - interval '6 days')::text);
             INSERT INTO app.pm SELECT now() - i * interval '1 hour', 'k' || (i % 4), i FROM generate_series(0, 140) i;
             SELECT vigil.create_rollup('app.pm_1h', 'app.pm', 'ts', '1 hour', ARRAY['k'],
                 '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}}');",
        )
        .unwrap();
    let partitions = one_i64(
        &mut su,
        "SELECT count(*) FROM pg_partition_tree('app.pm') WHERE level > 0",
    );
    let with_triggers = one_i64(
        &mut su,
        "SELECT count(DISTINCT t.tgrelid) FROM pg_trigger t JOIN pg_partition_tree('app.pm') p ON p.relid = t.tgrelid
         WHERE t.tgfoid = 'vigil._rollup_trigger'::regproc AND p.level > 0",
    );
    assert_eq!(with_triggers, partitions);
    // Writes into partitions by name (as loaders do), then retention.
    let leaf = one_text(
        &mut su,
        "SELECT tableoid::regclass::text FROM app.pm ORDER BY ts DESC LIMIT 1",
    );
    owner
        .batch_execute(&format!(
            "INSERT INTO {leaf} SELECT ts, 'k9', 9 FROM app.pm ORDER BY ts DESC LIMIT 1;
             DELETE FROM {leaf} WHERE k = 'k1'; UPDATE {leaf} SET v = v + 1"
        ))
        .unwrap();
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.verify_rollup('app.pm_1h')"),
        0
    );
    let before = one_i64(&mut owner, "SELECT sum(n)::int8 FROM app.pm_1h");
    owner
        .batch_execute(
            "UPDATE partman.part_config SET retention = '3 days', retention_keep_table = false WHERE parent_table = 'app.pm';
             SELECT partman.run_maintenance('app.pm');",
        )
        .unwrap();
    let after_partitions = one_i64(
        &mut su,
        "SELECT count(*) FROM pg_partition_tree('app.pm') WHERE level > 0",
    );
    assert!(
        after_partitions < partitions + 3,
        "retention dropped nothing"
    );
    assert!(
        one_i64(
            &mut su,
            "SELECT (min(ts) > now() - interval '4 days 1 hour')::int::int8 FROM app.pm"
        ) == 1,
        "the partitions past retention are still there"
    );
    assert!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM app.pm_1h WHERE bucket < now() - interval '4 days 1 hour'"
        ) > 0,
        "the summary lost the dropped partitions' history"
    );
    // History kept; what the source still has is exact; new partitions
    // premade by maintenance carry the triggers.
    assert_eq!(
        one_i64(&mut owner, "SELECT sum(n)::int8 FROM app.pm_1h"),
        before
    );
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.verify_rollup('app.pm_1h')"),
        0
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM pg_partition_tree('app.pm') p WHERE p.level > 0 AND NOT EXISTS
               (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = p.relid AND t.tgfoid = 'vigil._rollup_trigger'::regproc)"
        ),
        0
    );
    assert_eq!(
        one_text(
            &mut su,
            "SELECT status FROM vigil.rollups WHERE name = 'app.pm_1h'::regclass"
        ),
        "ok"
    );
}

pub fn ddl_keeps_paused_triggers_paused_follows_types_and_schemas_and_refuses_inheritance(
    c: &Cluster,
) {
    let (mut su, mut owner) = setup(c, "rollup_ddl2");
    // Renaming the summary re-creates its triggers' arguments: a paused
    // trigger stays paused.
    owner
        .batch_execute("ALTER TABLE app.ev DISABLE TRIGGER vigil_rollup_r3_ins; ALTER TABLE app.r3 RENAME TO r3_daily;")
        .unwrap();
    assert_eq!(
        one_text(
            &mut su,
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'vigil_rollup_r3_ins'"
        ),
        "D"
    );
    owner
        .batch_execute("ALTER TABLE app.ev ENABLE TRIGGER vigil_rollup_r3_ins; SELECT vigil.rebuild_rollup('app.r3_daily');")
        .unwrap();
    // A schema rename reaches the triggers' arguments (what a dump keeps).
    su.batch_execute("ALTER SCHEMA app RENAME TO app2").unwrap();
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM pg_trigger WHERE tgfoid = 'vigil._rollup_trigger'::regproc
              AND pg_catalog.encode(tgargs, 'escape') NOT LIKE '\"app2\".%'"
        ),
        0
    );
    su.batch_execute("ALTER SCHEMA app2 RENAME TO app").unwrap();
    write_and_verify(
        &mut owner,
        "app.ev",
        ("ts", "entity", "status", "v"),
        &["app.r1", "app.r2", "app.r3_daily"],
    );
    // Inheritance around a source is refused.
    assert_eq!(
        try_sql(&mut owner, "CREATE TABLE app.child () INHERITS (app.ev)"),
        "0A000"
    );
    // A typed table's column renamed through its type is followed.
    owner
        .batch_execute(
            "CREATE TYPE app.row_t AS (ts timestamptz, k text, v float8);
             CREATE TABLE app.typed OF app.row_t;
             INSERT INTO app.typed VALUES (now(), 'a', 1);
             SELECT vigil.create_rollup('app.typed_1h', 'app.typed', 'ts', '1 hour', ARRAY['k'],
                 '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}}');
             ALTER TYPE app.row_t RENAME ATTRIBUTE v TO value CASCADE;
             INSERT INTO app.typed VALUES (now(), 'b', 2);",
        )
        .unwrap();
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.verify_rollup('app.typed_1h')"),
        0
    );
    // A superuser (or pg_partman as one) may create a partition of the
    // owner's partitioned source.
    owner
        .batch_execute(
            "CREATE TABLE app.pp (ts timestamptz NOT NULL, k text, v float8) PARTITION BY RANGE (ts);
             SELECT vigil.create_rollup('app.pp_1h', 'app.pp', 'ts', '1 hour', ARRAY['k'], '{\"n\": {\"agg\": \"count\"}}');",
        )
        .unwrap();
    su.batch_execute(
        "CREATE TABLE app.pp1 PARTITION OF app.pp FOR VALUES FROM ('2000-01-01') TO ('2100-01-01')",
    )
    .unwrap();
    su.batch_execute("INSERT INTO app.pp1 VALUES (now(), 'a', 1)")
        .unwrap();
    assert_eq!(one_i64(&mut owner, "SELECT sum(n)::int8 FROM app.pp_1h"), 1);
}

/// `vigil.set_rollup_on_detach(summary, 'subtract')`: a detached
/// partition's buckets are recomputed from what the source still holds, so
/// the summary equals the source again; attaching the table back adds its
/// rows again. Only someone with the source owner's rights may choose.
pub fn detached_partitions_can_be_subtracted(c: &Cluster) {
    let (mut su, mut owner) = setup(c, "rollup_subtract");
    owner
        .batch_execute(
            "CREATE TABLE app.se (ts timestamptz NOT NULL, k text, v float8) PARTITION BY RANGE (ts);
             CREATE TABLE app.se_2025 PARTITION OF app.se FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             CREATE TABLE app.se_2026 PARTITION OF app.se FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO app.se SELECT '2025-12-31 20:00+00'::timestamptz + i * interval '1 hour', 'k' || (i % 2), i
             FROM generate_series(0, 9) i;
             SELECT vigil.create_rollup('app.sr', 'app.se', 'ts', '1 day', ARRAY['k'],
                 '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}, \"mx\": {\"agg\": \"max\", \"column\": \"v\"}}');",
        )
        .unwrap();
    assert_eq!(
        try_sql(
            &mut su,
            "SELECT vigil.set_rollup_on_detach('app.sr', 'sometimes')"
        ),
        "22023"
    );
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_e2e_other') THEN
             CREATE ROLE vigil_e2e_other LOGIN;
           END IF;
         END $$;",
    )
    .unwrap();
    owner
        .batch_execute("GRANT USAGE ON SCHEMA app TO vigil_e2e_other")
        .unwrap();
    let mut stranger = c.connect_as("rollup_subtract", "vigil_e2e_other");
    assert_eq!(
        try_sql(
            &mut stranger,
            "SELECT vigil.set_rollup_on_detach('app.sr', 'subtract')"
        ),
        "42501"
    );
    owner
        .batch_execute("SELECT vigil.set_rollup_on_detach('app.sr', 'subtract')")
        .unwrap();
    let total = |o: &mut Client| one_i64(o, "SELECT coalesce(sum(n), 0)::bigint FROM app.sr");
    assert_eq!(total(&mut owner), 10);
    owner
        .batch_execute("ALTER TABLE app.se DETACH PARTITION app.se_2025")
        .unwrap();
    assert_eq!(total(&mut owner), 6, "the 4 rows of 2025 left the summary");
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.verify_rollup('app.sr')"),
        0
    );
    assert_eq!(
        one_i64(
            &mut owner,
            "SELECT count(*) FROM app.sr WHERE bucket < '2026-01-01'"
        ),
        0
    );
    owner
        .batch_execute("ALTER TABLE app.se ATTACH PARTITION app.se_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
        .unwrap();
    assert_eq!(
        total(&mut owner),
        10,
        "attached again, its rows count again"
    );
    assert_eq!(
        one_i64(&mut owner, "SELECT vigil.verify_rollup('app.sr')"),
        0
    );
}
