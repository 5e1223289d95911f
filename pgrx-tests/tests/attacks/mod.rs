//! The attack suite (SPEC §3.6, issue 13): for each class of escalation an
//! audit found, plain login roles (a hostile tenant, a table owner, a schema
//! owner, vigil_admin, vigil_operator, vigil_reader) try to become superuser
//! or read what they must not, through a real cluster and real logins. Each
//! test asserts the attacker stays NOSUPERUSER and sees nothing, and that the
//! specific defence answered (an SQLSTATE, a broken-monitor report), so a
//! regression fails here rather than passing quietly.

use pg_vigil_e2e::{try_sql, wait_for, Cluster};
use postgres::Client;
use std::time::Duration;

const DB: &str = "attacks";

/// A fresh database with pg_vigil, and the cast of roles (re)created.
fn setup(c: &Cluster) -> Client {
    let mut su = c.connect("postgres");
    su.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .unwrap();
    su.batch_execute(
        "DO $$ DECLARE r text; BEGIN
           FOREACH r IN ARRAY ARRAY['mallory', 'alice', 'bob', 'adm', 'op', 'rdr'] LOOP
             IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
               EXECUTE format('DROP OWNED BY %I CASCADE', r);
             ELSE
               EXECUTE format('CREATE ROLE %I LOGIN', r);
             END IF;
             EXECUTE format('ALTER ROLE %I NOSUPERUSER', r);
             -- A test may have granted a pg_vigil role; the next starts clean.
             IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vigil_admin') THEN
               EXECUTE format('REVOKE vigil_admin, vigil_operator, vigil_reader FROM %I', r);
             END IF;
           END LOOP;
         END $$;",
    )
    .unwrap();
    su.batch_execute(&format!("CREATE DATABASE {DB}")).unwrap();
    let mut db = c.connect(DB);
    db.batch_execute(
        "CREATE EXTENSION pg_vigil;
         GRANT vigil_admin TO adm; GRANT vigil_operator TO op; GRANT vigil_reader TO rdr;
         GRANT CREATE ON DATABASE attacks TO alice, bob, mallory;
         -- Each tenant works in a schema of its own: nobody else may
         -- CREATE there (pg_vigil refuses schemas others control).
         CREATE SCHEMA AUTHORIZATION mallory; CREATE SCHEMA AUTHORIZATION alice;
         CREATE SCHEMA AUTHORIZATION bob; CREATE SCHEMA AUTHORIZATION adm;
         GRANT USAGE ON SCHEMA mallory, alice, bob, adm TO PUBLIC;
         CREATE FUNCTION public.vigil_err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN EXECUTE stmt; RETURN 'ok';
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;",
    )
    .unwrap();
    db
}

fn is_super(db: &mut Client, role: &str) -> bool {
    db.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0)
}

fn assert_nobody_escalated(db: &mut Client) {
    for r in ["mallory", "alice", "bob", "adm", "op", "rdr"] {
        assert!(!is_super(db, r), "{r} became superuser");
    }
}

/// The function every escalation attempt plants: it tries to make its
/// owner superuser (works only if a superuser runs it), records who ran
/// it, and never fails, so a write or scan that reaches it goes on.
fn plant_escalator(db: &mut Client, owner: &str) {
    db.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {owner}.{owner}_ran (who text, at timestamptz DEFAULT now());
         GRANT INSERT ON {owner}.{owner}_ran TO PUBLIC;
         CREATE OR REPLACE FUNCTION {owner}.{owner}_escalate() RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO {owner}.{owner}_ran (who) VALUES (current_user);
             BEGIN EXECUTE 'ALTER ROLE {owner} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
             RETURN true;
         END $f$;"
    ))
    .unwrap();
}

fn ran_as(db: &mut Client, owner: &str) -> Vec<String> {
    db.query(
        &format!("SELECT DISTINCT who FROM {owner}.{owner}_ran ORDER BY 1"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

pub fn rollup_trigger_cannot_be_attached_to_another_table_or_fed_a_fake_transition_table(
    c: &Cluster,
) {
    let mut su = setup(c);
    su.batch_execute(
        "CREATE TABLE public.sales (shop text, at timestamptz, amount numeric);
         SELECT vigil.create_rollup('sales_hourly', 'public.sales', 'at', '1 hour', '{shop}',
                                    '{\"n\": {\"agg\": \"count\"}, \"total\": {\"agg\": \"sum\", \"column\": \"amount\"}}');
         INSERT INTO public.sales VALUES ('a', now(), 5), ('b', now(), 7);",
    )
    .unwrap();
    let mut m = c.connect_as(DB, "mallory");
    plant_escalator(&mut m, "mallory");
    // Its own table with the shared trigger pointed at the superuser's rollup.
    m.batch_execute(
        "CREATE TABLE mallory.mine (shop text, at timestamptz, amount numeric);
         CREATE TRIGGER t AFTER DELETE ON mallory.mine REFERENCING OLD TABLE AS vigil_old
             FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger('public.sales_hourly');
         INSERT INTO mallory.mine VALUES ('a', now(), 1);",
    )
    .unwrap();
    assert_eq!(try_sql(&mut m, "DELETE FROM mallory.mine"), "39P01");
    // A temp view named like the transition tables, on a trigger without them.
    m.batch_execute(
        "CREATE TEMP VIEW vigil_new AS SELECT 'x'::text AS shop, now() AS at, 1::numeric AS amount
             WHERE mallory.mallory_escalate();
         CREATE TRIGGER t2 AFTER INSERT ON mallory.mine FOR EACH STATEMENT
             EXECUTE FUNCTION vigil._rollup_trigger('public.sales_hourly');",
    )
    .unwrap();
    assert_eq!(
        try_sql(&mut m, "INSERT INTO mallory.mine VALUES ('z', now(), 1)"),
        "39P01"
    );
    // No generated function to call: the rollup made none.
    let generated: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'sales_hourly%' AND prosecdef",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(generated, 0);
    // Mallory cannot wipe or forge the superuser's summary.
    assert_eq!(try_sql(&mut m, "TRUNCATE public.sales_hourly"), "42501");
    assert_eq!(
        try_sql(
            &mut m,
            "INSERT INTO public.sales_hourly (shop) VALUES ('x')"
        ),
        "42501"
    );
    let v: i64 = su
        .query_one("SELECT vigil.verify_rollup('public.sales_hourly')", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    assert!(ran_as(&mut su, "mallory").is_empty());
    assert_nobody_escalated(&mut su);
}

pub fn rollup_maintenance_runs_as_the_source_owner_and_leaves_the_writers_session_alone(
    c: &Cluster,
) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    plant_escalator(&mut a, "alice");
    a.batch_execute(
        "CREATE SCHEMA alice_s;
         CREATE TABLE alice_s.ev (k text, at timestamptz, v float8);
         GRANT USAGE ON SCHEMA alice_s TO PUBLIC; GRANT INSERT, UPDATE, DELETE, SELECT ON alice_s.ev TO PUBLIC;",
    )
    .unwrap();
    // A superuser creates the rollup on alice's table: alice owns it all.
    su.batch_execute(
        "SELECT vigil.create_rollup('alice_s.ev_hourly', 'alice_s.ev', 'at', '1 hour', '{k}',
                                    '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"stats\", \"column\": \"v\"}}')",
    )
    .unwrap();
    let owners: Vec<String> = su
        .query(
            "SELECT DISTINCT r.rolname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
             WHERE c.relnamespace = 'alice_s'::regnamespace
             UNION SELECT DISTINCT r.rolname::text FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
             WHERE p.pronamespace = 'alice_s'::regnamespace",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec!["alice".to_string()]);
    // Alice's own code on her summary: escalate, and change the writer's
    // session (search_path) for later.
    a.batch_execute(
        "CREATE FUNCTION alice_s.on_summary() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
             PERFORM alice.alice_escalate();
             PERFORM set_config('search_path', 'alice_s, public', false);
             RETURN NULL;
         END $f$;
         CREATE TRIGGER spy AFTER INSERT OR UPDATE OR DELETE ON alice_s.ev_hourly
             FOR EACH STATEMENT EXECUTE FUNCTION alice_s.on_summary();",
    )
    .unwrap();
    su.batch_execute(
        "SET search_path = public;
         INSERT INTO alice_s.ev VALUES ('x', now(), 1), ('y', now(), 2);
         INSERT INTO alice_s.ev VALUES ('x', now(), 3);
         UPDATE alice_s.ev SET v = v + 1;
         DELETE FROM alice_s.ev WHERE k = 'y';
         TRUNCATE alice_s.ev;
         INSERT INTO alice_s.ev VALUES ('z', now(), 4);",
    )
    .unwrap();
    let path: String = su.query_one("SHOW search_path", &[]).unwrap().get(0);
    assert_eq!(
        path, "public",
        "alice's code changed the superuser's session"
    );
    // Her policy on the summary: an admin reading vigil.rollups must not
    // run it with the admin's rights.
    a.batch_execute(
        "CREATE FUNCTION alice_s.pol() RETURNS boolean LANGUAGE sql AS 'SELECT alice.alice_escalate()';
         ALTER TABLE alice_s.ev_hourly ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
         CREATE POLICY p ON alice_s.ev_hourly USING (alice_s.pol());",
    )
    .unwrap();
    let mut adm = c.connect_as(DB, "adm");
    let rows: i64 = adm
        .query_one(
            "SELECT rows FROM vigil.rollups WHERE name = 'alice_s.ev_hourly'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(rows >= 1);
    assert_eq!(ran_as(&mut su, "alice"), vec!["alice".to_string()]);
    let v: i64 = su
        .query_one("SELECT vigil.verify_rollup('alice_s.ev_hourly')", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    assert_nobody_escalated(&mut su);
}

/// The single-row write of a count/sum rollup that skips the executor
/// (rollup/direct.rs) keeps the identity of the statements it replaces: a
/// superuser's single-row INSERT, UPDATE and DELETE on a tenant's table run
/// the tenant's expression index on the summary (kept on the direct path)
/// and CHECK constraint (left to the upsert) as the tenant, and an
/// operator `+` the tenant puts on the writer's search path is not the one
/// that adds.
pub fn single_row_direct_writes_run_tenant_code_as_the_tenant_only(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    plant_escalator(&mut a, "alice");
    a.batch_execute(
        "CREATE TABLE alice.orders (shop text, at timestamptz, amount bigint);
         GRANT INSERT, UPDATE, DELETE, SELECT ON alice.orders TO PUBLIC;",
    )
    .unwrap();
    su.batch_execute(
        "SELECT vigil.create_rollup('alice.orders_hourly', 'alice.orders', 'at', '1 hour', '{shop}',
             '{\"n\": {\"agg\": \"count\"}, \"total\": {\"agg\": \"sum\", \"column\": \"amount\"}}');
         INSERT INTO alice.orders VALUES ('s', date_trunc('hour', now()), 1);",
    )
    .unwrap();
    // Alice's code on her summary, reached by every write of its slot row,
    // and an operator that would make every sum her function's.
    a.batch_execute(
        "CREATE FUNCTION alice.seen(numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN PERFORM alice.alice_escalate(); RETURN $1; END $f$;
         ALTER TABLE alice.orders_hourly ADD CONSTRAINT spy CHECK (alice.alice_escalate());
         CREATE INDEX ON alice.orders_hourly (alice.seen(total));
         CREATE FUNCTION alice.plus(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS $f$
         BEGIN PERFORM alice.alice_escalate(); RETURN 0; END $f$;
         CREATE OPERATOR alice.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = alice.plus);
         CREATE FUNCTION alice.plus(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
         BEGIN PERFORM alice.alice_escalate(); RETURN 0; END $f$;
         CREATE OPERATOR alice.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = alice.plus);",
    )
    .unwrap();
    su.batch_execute(
        "SET search_path = alice, pg_catalog, public;
         INSERT INTO alice.orders VALUES ('s', date_trunc('hour', now()), 5);
         UPDATE alice.orders SET amount = amount OPERATOR(pg_catalog.+) 10 WHERE amount = 5;
         DELETE FROM alice.orders WHERE amount = 1;
         RESET search_path;",
    )
    .unwrap();
    let (n, total): (i64, i64) = {
        let r = su
            .query_one(
                "SELECT sum(n)::bigint, sum(total)::bigint FROM alice.orders_hourly WHERE shop = 's'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, total), (1, 15), "the sums were added by pg_catalog's +");
    assert_eq!(
        ran_as(&mut su, "alice"),
        vec!["alice".to_string()],
        "alice's constraint and index ran, as alice only"
    );
    let v: i64 = su
        .query_one("SELECT vigil.verify_rollup('alice.orders_hourly')", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    assert_nobody_escalated(&mut su);
}

pub fn create_rollup_needs_the_source_owner_an_owned_schema_and_one_parsed_expression(c: &Cluster) {
    let mut su = setup(c);
    su.batch_execute(
        "CREATE TABLE public.orders (shop text, at timestamptz, amount numeric, status text)",
    )
    .unwrap();
    let mut m = c.connect_as(DB, "mallory");
    assert_eq!(
        try_sql(
            &mut m,
            "SELECT vigil.create_rollup('mallory_orders', 'public.orders', 'at', '1 hour', '{shop}', '{\"n\": {\"agg\": \"count\"}}')"
        ),
        "42501"
    );
    // A superuser's table, summary in a schema mallory owns: she could
    // rename schemas under the trigger's cached plans.
    let mut ms = c.connect_as(DB, "mallory");
    ms.batch_execute("CREATE SCHEMA analytics").unwrap();
    assert_eq!(
        try_sql(
            &mut su,
            "SELECT vigil.create_rollup('analytics.o_hourly', 'public.orders', 'at', '1 hour', '{shop}', '{\"n\": {\"agg\": \"count\"}}')"
        ),
        "42501"
    );
    // A source in a schema others may create in.
    su.batch_execute(
        "CREATE SCHEMA shared; GRANT CREATE, USAGE ON SCHEMA shared TO PUBLIC;
         CREATE TABLE shared.orders (shop text, at timestamptz, amount numeric, status text);",
    )
    .unwrap();
    assert_eq!(
        try_sql(
            &mut su,
            "SELECT vigil.create_rollup('public.s_hourly', 'shared.orders', 'at', '1 hour', '{shop}', '{\"n\": {\"agg\": \"count\"}}')"
        ),
        "42501"
    );
    // Alice's table, summary in bob's schema: bob could swap the summary.
    let mut b = c.connect_as(DB, "bob");
    b.batch_execute("CREATE SCHEMA bob_s; GRANT USAGE, CREATE ON SCHEMA bob_s TO alice;")
        .unwrap();
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        "CREATE TABLE alice.a_orders (shop text, at timestamptz, amount numeric, status text)",
    )
    .unwrap();
    assert_eq!(
        try_sql(
            &mut a,
            "SELECT vigil.create_rollup('bob_s.a_hourly', 'alice.a_orders', 'at', '1 hour', '{shop}', '{\"n\": {\"agg\": \"count\"}}')"
        ),
        "42501"
    );
    a.batch_execute("CREATE SCHEMA alice_s").unwrap();
    // Filters PostgreSQL's parser does not read as exactly one expression.
    for f in [
        "true) FROM pg_authid WHERE (true",
        "true)) AS x, (SELECT rolpassword FROM pg_authid LIMIT 1",
        "E'\\\\'' = '') ; SELECT 1 --",
        "status = (SELECT 'paid')",
        "EXISTS (SELECT 1 FROM pg_class)",
        "count(*) > 0",
        "true; SELECT 1",
    ] {
        let measures = serde_json_escape(f);
        let sql = format!(
            "SELECT vigil.create_rollup('alice_s.f_hourly', 'alice.a_orders', 'at', '1 hour', '{{shop}}', \
             $m${{\"n\": {{\"agg\": \"count\", \"filter\": \"{measures}\"}}}}$m$)"
        );
        let code = try_sql(&mut a, &sql);
        assert!(code == "22023" || code == "42601", "{f}: {code}");
    }
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'f_hourly%' OR relname LIKE 'mallory_orders%' OR relname LIKE 'a_hourly%'
                 OR relname LIKE 'o_hourly%' OR relname LIKE 's_hourly%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "a refused rollup left objects behind");
    // A proper one works for the owner, in her schema.
    a.batch_execute(
        "SELECT vigil.create_rollup('alice_s.ok_hourly', 'alice.a_orders', 'at', '1 hour', '{shop}',
                                    '{\"paid\": {\"agg\": \"count\", \"filter\": \"status = ''paid''\"}}')",
    )
    .unwrap();
    assert_nobody_escalated(&mut su);
}

fn serde_json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn worker_ignores_operators_planted_in_public(c: &Cluster) {
    // The worker connects to vigil.database (postgres here) as superuser.
    let mut su = c.connect("postgres");
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mallory') THEN CREATE ROLE mallory LOGIN; END IF;
         END $$;
         ALTER ROLE mallory NOSUPERUSER;
         CREATE EXTENSION IF NOT EXISTS pg_vigil;
         GRANT CREATE ON SCHEMA public TO mallory;",
    )
    .unwrap();
    let mut m = c.connect_as("postgres", "mallory");
    // Exact-match operators for expressions a worker might write without a
    // cast (float8 * int, bigint * interval, timestamptz + interval, =).
    m.batch_execute(
        "CREATE OR REPLACE FUNCTION public.esc_f(float8, int) RETURNS float8 LANGUAGE plpgsql AS $f$
         BEGIN BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN $1; END $f$;
         CREATE OR REPLACE FUNCTION public.esc_b(bigint, interval) RETURNS interval LANGUAGE plpgsql AS $f$
         BEGIN BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN $2; END $f$;
         CREATE OR REPLACE FUNCTION public.esc_n(numeric, int) RETURNS numeric LANGUAGE plpgsql AS $f$
         BEGIN BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN $1; END $f$;
         DROP OPERATOR IF EXISTS public.* (float8, int);
         DROP OPERATOR IF EXISTS public.* (bigint, interval);
         DROP OPERATOR IF EXISTS public.* (numeric, int);
         CREATE OPERATOR public.* (LEFTARG = float8, RIGHTARG = int, FUNCTION = public.esc_f);
         CREATE OPERATOR public.* (LEFTARG = bigint, RIGHTARG = interval, FUNCTION = public.esc_b);
         CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = int, FUNCTION = public.esc_n);",
    )
    .unwrap();
    // Make the worker do work: a channel to a closed port (retries, backoff).
    su.batch_execute(
        "DELETE FROM vigil.channels WHERE name = 'attack_sink';
         SELECT vigil.create_channel('attack_sink', 'webhook', 'http://127.0.0.1:9/hook', group_by => NULL);
         SELECT vigil.test_channel('attack_sink');",
    )
    .unwrap();
    wait_for(
        "the worker attempted delivery",
        Duration::from_secs(20),
        || {
            let n: i64 = su
            .query_one(
                "SELECT count(*) FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
                 WHERE c.name = 'attack_sink' AND n.attempts > 0",
                &[],
            )
            .unwrap()
            .get(0);
            (n > 0).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    let sup = is_super(&mut su, "mallory");
    su.batch_execute(
        "DROP OPERATOR public.* (float8, int); DROP OPERATOR public.* (bigint, interval);
         DROP OPERATOR public.* (numeric, int);
         DROP FUNCTION public.esc_f(float8, int), public.esc_b(bigint, interval), public.esc_n(numeric, int);
         DELETE FROM vigil.notifications WHERE channel_id = (SELECT id FROM vigil.channels WHERE name = 'attack_sink');
         DELETE FROM vigil.channels WHERE name = 'attack_sink';
         REVOKE CREATE ON SCHEMA public FROM mallory;
         ALTER ROLE mallory NOSUPERUSER;",
    )
    .unwrap();
    assert!(!sup, "mallory became superuser through the worker");
}

/// alice owns the watched table; adm (vigil_admin) may read it and creates
/// the monitor; scans run as superuser (pg_cron, an operator).
fn monitored(c: &Cluster) -> (Client, Client, Client) {
    let su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    plant_escalator(&mut a, "alice");
    a.batch_execute(
        "CREATE TABLE alice.metrics (entity text, v float8, at timestamptz DEFAULT now());
         INSERT INTO alice.metrics (entity, v) SELECT 'e' || (i % 3), i FROM generate_series(1, 30) i;
         GRANT SELECT ON alice.metrics TO adm;",
    )
    .unwrap();
    let mut adm = c.connect_as(DB, "adm");
    adm.batch_execute(&count_monitor("m_count", "alice.metrics"))
        .unwrap();
    (su, a, adm)
}

/// A count monitor per entity that fires on any row.
fn count_monitor(name: &str, source: &str) -> String {
    format!(
        "SELECT vigil.create_monitor('{name}', 'count', '{source}', '{{\"thresholds\": {{\"high\": 1}}, \"entity\": \"entity\"}}')"
    )
}

fn scan(su: &mut Client) -> serde_json::Value {
    let v: String = su
        .query_one("SELECT vigil.scan()::text", &[])
        .unwrap()
        .get(0);
    serde_json::from_str(&v).unwrap()
}

pub fn scan_reports_a_renamed_source_as_broken_instead_of_following_a_planted_view(c: &Cluster) {
    let (mut su, mut a, _adm) = monitored(c);
    let first = scan(&mut su);
    assert_eq!(first["errors"], serde_json::json!([]), "{first}");
    a.batch_execute(
        "ALTER TABLE alice.metrics RENAME TO metrics_old;
         CREATE VIEW alice.metrics AS SELECT entity, v, at FROM alice.metrics_old WHERE alice.alice_escalate();
         GRANT SELECT ON alice.metrics TO adm;",
    )
    .unwrap();
    let report = scan(&mut su);
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("m_count") && errors.contains("renamed or replaced"),
        "{report}"
    );
    assert!(ran_as(&mut su, "alice").is_empty(), "the planted view ran");
    // Dropped and replaced under the same name: also broken, not followed.
    a.batch_execute(
        "DROP VIEW alice.metrics; DROP TABLE alice.metrics_old;
         CREATE TABLE alice.metrics (entity text, v float8, at timestamptz DEFAULT now());",
    )
    .unwrap();
    let report = scan(&mut su);
    assert!(
        report["errors"].to_string().contains("no longer exists"),
        "{report}"
    );
    assert_nobody_escalated(&mut su);
}

pub fn scan_runs_the_sources_code_with_its_owners_rights_only(c: &Cluster) {
    let (mut su, mut a, mut adm) = monitored(c);
    a.batch_execute(
        "CREATE VIEW alice.metrics_v AS SELECT entity, v, at FROM alice.metrics WHERE alice.alice_escalate();
         GRANT SELECT ON alice.metrics_v TO adm;",
    )
    .unwrap();
    adm.batch_execute(&count_monitor("m_view", "alice.metrics_v"))
        .unwrap();
    su.batch_execute("DELETE FROM alice.alice_ran").unwrap();
    let report = scan(&mut su);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(
        report["anomalies_detected"].as_i64().unwrap() >= 3,
        "{report}"
    );
    assert_eq!(ran_as(&mut su, "alice"), vec!["alice".to_string()]);
    // The view's code runs in a security-restricted operation: it may not
    // create temp objects (nor SET ROLE) though alice normally may.
    a.batch_execute(
        "CREATE FUNCTION alice.alice_setrole() RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN EXECUTE 'CREATE TEMP TABLE IF NOT EXISTS alice_tmp (x int)'; RETURN true; END $f$;
         CREATE VIEW alice.metrics_r AS SELECT entity, v, at FROM alice.metrics WHERE alice.alice_setrole();
         GRANT SELECT ON alice.metrics_r TO adm;",
    )
    .unwrap();
    let code = try_sql(&mut adm, &count_monitor("m_role", "alice.metrics_r"));
    assert_eq!(code, "42501");
    assert_nobody_escalated(&mut su);
}

pub fn monitors_report_only_rows_their_creator_may_select(c: &Cluster) {
    let (mut su, mut a, mut adm) = monitored(c);
    // RLS that hides rows from adm: the monitor would report them.
    a.batch_execute(
        "CREATE TABLE alice.secret (entity text, v float8, at timestamptz DEFAULT now());
         INSERT INTO alice.secret VALUES ('hidden', 1);
         ALTER TABLE alice.secret ENABLE ROW LEVEL SECURITY;
         CREATE POLICY none_for_adm ON alice.secret FOR SELECT TO adm USING (false);
         GRANT SELECT ON alice.secret TO adm;",
    )
    .unwrap();
    let code = try_sql(&mut adm, &count_monitor("m_rls", "alice.secret"));
    assert_eq!(code, "42501");
    // Privilege revoked after creation: the next scan reports it, no alerts.
    a.batch_execute("REVOKE SELECT ON alice.metrics FROM adm")
        .unwrap();
    su.batch_execute("DELETE FROM vigil.alerts").unwrap();
    let report = scan(&mut su);
    assert!(
        report["errors"]
            .to_string()
            .contains("may no longer SELECT"),
        "{report}"
    );
    let alerts: i64 = su
        .query_one("SELECT count(*) FROM vigil.alerts", &[])
        .unwrap()
        .get(0);
    assert_eq!(alerts, 0);
    // Direct writes to vigil.monitors are validated like create_monitor.
    for sql in [
        "INSERT INTO vigil.monitors (name, kind, source_schema, source_table, options)
         VALUES ('leak', 'count', 'pg_catalog', 'pg_authid', '{\"thresholds\": {\"high\": 1}, \"entity\": \"rolname\"}')",
        "INSERT INTO vigil.monitors (name, kind, source_schema, source_table, options)
         VALUES ('leak2', 'count', 'vigil', 'channels', '{\"thresholds\": {\"high\": 1}, \"entity\": \"url\"}')",
        "UPDATE vigil.monitors SET source_schema = 'pg_catalog', source_table = 'pg_authid',
             options = '{\"thresholds\": {\"high\": 1}, \"entity\": \"rolname\"}' WHERE name = 'm_count'",
        "UPDATE vigil.monitors SET created_by = 'postgres' WHERE name = 'm_count'",
    ] {
        let code = try_sql(&mut adm, sql);
        let after: String = su
            .query_one(
                "SELECT string_agg(name || ':' || source_table || ':' || created_by, ',' ORDER BY name) FROM vigil.monitors",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(
            code != "ok" || after == "m_count:metrics:adm",
            "{sql}: {code}, monitors now {after}"
        );
        assert_eq!(after, "m_count:metrics:adm", "{sql}");
    }
    // Readers and operators cannot write monitors at all.
    for role in ["rdr", "op", "mallory"] {
        let mut r = c.connect_as(DB, role);
        assert_eq!(
            try_sql(&mut r, "DELETE FROM vigil.monitors"),
            "42501",
            "{role}"
        );
        assert_eq!(
            try_sql(&mut r, "SELECT vigil._monitor_run(1)"),
            "42501",
            "{role}"
        );
    }
    assert_nobody_escalated(&mut su);
}

pub fn a_locked_or_slow_source_cannot_stall_the_scan(c: &Cluster) {
    let (mut su, mut a, mut adm) = monitored(c);
    a.batch_execute(
        "CREATE TABLE alice.other (entity text, v float8, at timestamptz DEFAULT now());
         INSERT INTO alice.other VALUES ('o', 1);
         GRANT SELECT ON alice.other TO adm;",
    )
    .unwrap();
    adm.batch_execute(&count_monitor("m_other", "alice.other"))
        .unwrap();
    adm.batch_execute("SELECT vigil.set_monitor_timeout('m_count', '300 ms')")
        .unwrap();
    // The owner locks the source and sits on it; any role can take the old
    // advisory lock too.
    let mut locker = c.connect_as(DB, "alice");
    locker
        .batch_execute("BEGIN; LOCK TABLE alice.metrics IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute("SELECT pg_advisory_lock(2034419261, 1), pg_advisory_lock(2034419261, 2)")
        .unwrap();
    let t = std::time::Instant::now();
    let report = scan(&mut su);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(20), "scan took {took:?}");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("m_count") && errors.contains("54000"),
        "{report}"
    );
    let monitors = report["monitors"].to_string();
    assert!(monitors.contains("m_other"), "{report}");
    locker.batch_execute("ROLLBACK").unwrap();
    // A scan already running a monitor makes another skip it, not wait.
    let mut holder = c.connect(DB);
    holder
        .batch_execute("BEGIN; SELECT 1 FROM vigil.monitors WHERE name = 'm_other' FOR UPDATE;")
        .unwrap();
    let report = scan(&mut su);
    assert!(
        report["skipped"].to_string().contains("m_other"),
        "{report}"
    );
    holder.batch_execute("ROLLBACK").unwrap();
    assert_nobody_escalated(&mut su);
}

pub fn early_kill_trigger_refuses_tables_it_was_not_created_for(c: &Cluster) {
    let mut su = setup(c);
    su.batch_execute(
        "CREATE TABLE public.interactions (variant text, event text, at timestamptz DEFAULT now());
         SELECT vigil.create_monitor('ek', 'early_kill', 'public.interactions',
                                     '{\"variant\": \"variant\", \"event\": \"event\"}');
",
    )
    .unwrap();
    let id: i64 = su
        .query_one("SELECT id FROM vigil.monitors WHERE name = 'ek'", &[])
        .unwrap()
        .get(0);
    let mut adm = c.connect_as(DB, "adm");
    adm.batch_execute(&format!(
        "CREATE TABLE adm.fake (variant text, event text);
         CREATE TRIGGER t AFTER INSERT ON adm.fake REFERENCING NEW TABLE AS vigil_new
             FOR EACH STATEMENT EXECUTE FUNCTION vigil._early_kill_trigger('{id}');"
    ))
    .unwrap();
    assert_eq!(
        try_sql(&mut adm, "INSERT INTO adm.fake VALUES ('v', 'view')"),
        "39P01"
    );
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute("CREATE TABLE mallory.mfake (variant text, event text)")
        .unwrap();
    assert_eq!(
        try_sql(
            &mut m,
            &format!(
                "CREATE TRIGGER t AFTER INSERT ON mallory.mfake REFERENCING NEW TABLE AS vigil_new
                 FOR EACH STATEMENT EXECUTE FUNCTION vigil._early_kill_trigger('{id}')"
            )
        ),
        "42501"
    );
    assert_nobody_escalated(&mut su);
}

pub fn create_extension_refuses_a_vigil_schema_someone_else_controls(c: &Cluster) {
    let mut su = c.connect("postgres");
    for (db, plant) in [
        ("attacks_schema1", "owned"),
        ("attacks_schema2", "public_create"),
    ] {
        su.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .unwrap();
        su.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        su.batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mallory') THEN CREATE ROLE mallory LOGIN; END IF;
             END $$;
             GRANT CREATE ON DATABASE {db} TO mallory;"
        ))
        .unwrap();
        if plant == "owned" {
            let mut m = c.connect_as(db, "mallory");
            m.batch_execute("CREATE SCHEMA vigil").unwrap();
        } else {
            let mut d = c.connect(db);
            d.batch_execute("CREATE SCHEMA vigil; GRANT CREATE ON SCHEMA vigil TO PUBLIC;")
                .unwrap();
        }
        let mut d = c.connect(db);
        assert_eq!(
            try_sql(&mut d, "CREATE EXTENSION pg_vigil"),
            "42501",
            "{plant}"
        );
        let installed: bool = d
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_vigil')",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(!installed, "{plant}");
        drop(d);
        su.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .unwrap();
    }
}

pub fn catalog_invariants_hold_for_vigil_and_everything_it_generates(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        "CREATE SCHEMA alice_s;
         CREATE TABLE alice_s.ev (k text, at timestamptz, v float8);
         SELECT vigil.create_rollup('ev_hourly', 'alice_s.ev', 'at', '1 hour', '{k}',
                                    '{\"n\": {\"agg\": \"count\"}, \"p\": {\"agg\": \"percentile\", \"column\": \"v\"}}');",
    )
    .unwrap();
    su.batch_execute(
        "CREATE TABLE public.su_ev (k text, at timestamptz, v float8);
         SELECT vigil.create_rollup('su_ev_hourly', 'public.su_ev', 'at', '1 hour', '{k}', '{\"n\": {\"agg\": \"count\"}}');",
    )
    .unwrap();
    // No SECURITY DEFINER function of vigil (or anywhere in this database
    // outside pg_catalog) is executable by PUBLIC.
    let open: Option<String> = su
        .query_one(
            "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND has_function_privilege('public', p.oid, 'EXECUTE')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, None, "SECURITY DEFINER and executable by PUBLIC");
    // Every SECURITY DEFINER function pins search_path.
    let unpinned: Option<String> = su
        .query_one(
            "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog%', false)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        unpinned, None,
        "SECURITY DEFINER without a pinned search_path"
    );
    // Every SQL and PL/pgSQL function of vigil pins it too: privileged
    // callers never resolve its names through a schema others control.
    let loose: Option<String> = su
        .query_one(
            "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
             JOIN pg_language l ON l.oid = p.prolang
             WHERE p.pronamespace = 'vigil'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
               AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog%', false)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(loose, None, "vigil functions without a pinned search_path");
    // Everything a rollup generates is owned by its source's owner.
    let wrong: Option<String> = su
        .query_one(
            "WITH gen AS (
                 SELECT d.summary::oid AS obj, 'pg_class'::regclass AS cat, src.relowner AS want
                 FROM vigil.rollup_defs d JOIN pg_class src ON src.oid = d.source
                 UNION ALL
                 SELECT dep.objid, dep.classid, src.relowner
                 FROM vigil.rollup_defs d JOIN pg_class src ON src.oid = d.source
                 JOIN pg_depend dep ON dep.refobjid = d.summary AND dep.classid IN ('pg_class'::regclass, 'pg_proc'::regclass)
                                    AND dep.deptype = 'n')
             SELECT string_agg(gen.obj::text, ', ') FROM gen
             LEFT JOIN pg_class c ON gen.cat = 'pg_class'::regclass AND c.oid = gen.obj
             LEFT JOIN pg_proc p ON gen.cat = 'pg_proc'::regclass AND p.oid = gen.obj
             LEFT JOIN pg_rewrite rw ON rw.oid = gen.obj
             WHERE coalesce(c.relowner, p.proowner) IS DISTINCT FROM gen.want AND rw.oid IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(wrong, None, "generated objects owned by another role");
    let since_owner: String = su
        .query_one(
            "SELECT string_agg(DISTINCT proowner::regrole::text, ',') || ' ' || count(*) FROM pg_proc WHERE proname = 'ev_hourly_since'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        since_owner, "alice 2",
        "both window functions, the exact one too"
    );
    // Triggers on watched tables only ever run vigil's C trigger or the
    // early-kill function.
    let foreign: Option<String> = su
        .query_one(
            "SELECT string_agg(t.tgname, ', ') FROM pg_trigger t
             WHERE t.tgname LIKE 'vigil_rollup_%'
               AND t.tgfoid <> 'vigil._rollup_trigger'::regproc",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(foreign, None);
    assert_nobody_escalated(&mut su);
}

// ---------------------------------------------------------------------
// Second review (hostile re-audit of the security model)

/// With `standard_conforming_strings` off a backslash used to end a
/// literal early in SQL vigil runs as a superuser: through a trigger
/// argument (any role, on its own temp table) and through column names
/// (any table owner, in create_rollup's catalog write).
pub fn rollup_sql_stays_literal_with_standard_conforming_strings_off(c: &Cluster) {
    let mut su = setup(c);
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        r#"CREATE TEMP TABLE t (ts timestamptz);
           CREATE TEMP TABLE s (bucket timestamptz);
           CREATE TRIGGER x AFTER TRUNCATE ON t FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger(
            $q$x\')::oid);ALTER ROLE mallory SUPERUSER;SELECT 1::oid, 1::oid, true--$q$);
           SET standard_conforming_strings = off; SET escape_string_warning = off;"#,
    )
    .unwrap();
    // Not a rollup: no error for the writer either (a warning at most).
    let code = try_sql(&mut m, "TRUNCATE t");
    assert!(code == "ok" || code == "39P01" || code == "42P01", "{code}");
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev (ts timestamptz, "g\" text, "]::name[],$${}$$::jsonb);ALTER ROLE alice SUPERUSER--" text);
           SET standard_conforming_strings = off; SET escape_string_warning = off;"#,
    )
    .unwrap();
    let code = try_sql(
        &mut a,
        r#"SELECT vigil.create_rollup('alice.ev_sum', 'alice.ev', 'ts', '1 hour',
               ARRAY[$q$g\$q$, $q$]::name[],$${}$$::jsonb);ALTER ROLE alice SUPERUSER--$q$]::name[], '{"n":{"agg":"count"}}')"#,
    );
    assert_eq!(code, "ok");
    // The definition holds exactly the two column names.
    let groups: Vec<String> = su
        .query_one(
            "SELECT group_by::text[] FROM vigil.rollup_defs WHERE summary = 'alice.ev_sum'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        groups,
        vec![
            "g\\".to_string(),
            "]::name[],$${}$$::jsonb);ALTER ROLE alice SUPERUSER--".to_string()
        ]
    );
    a.batch_execute("INSERT INTO alice.ev VALUES (now(), 'a', 'b')")
        .unwrap();
    assert_eq!(one(&mut a, "SELECT vigil.verify_rollup('alice.ev_sum')"), 0);
    assert_nobody_escalated(&mut su);
}

fn one(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// A writer's TimeZone, standard_conforming_strings or DateStyle must not
/// change what the owner's filters count.
pub fn a_writers_session_settings_do_not_change_a_rollups_filters(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev2 (ts timestamptz, k text, v int);
           GRANT INSERT, SELECT, UPDATE ON alice.ev2 TO bob;
           SELECT vigil.create_rollup('alice.ev2_sum', 'alice.ev2', 'ts', '1 hour', ARRAY['k']::name[],
             '{"n":{"agg":"count"}, "morning":{"agg":"count","filter":"extract(hour from ts) < 12"},
               "digits":{"agg":"count","filter":"k ~ ''^\\d+$''"},
               "jan":{"agg":"count","filter":"ts::date::text = ''2026-01-01''"},
               "stem":{"agg":"count","filter":"to_tsvector(k) @@ to_tsquery(''run'')"}}');"#,
    )
    .unwrap();
    let mut b = c.connect_as(DB, "bob");
    b.batch_execute(
        "SET TimeZone = 'Pacific/Kiritimati'; SET DateStyle = 'SQL, DMY';
         SET standard_conforming_strings = off; SET escape_string_warning = off;
         SET default_text_search_config = 'pg_catalog.english';
         INSERT INTO alice.ev2 VALUES ('2026-01-01 06:00+00', 'dd', 1), ('2026-01-01 06:00+00', 'dd', 1);
         INSERT INTO alice.ev2 VALUES ('2026-01-01 06:00+00', 'dd', 1);
         INSERT INTO alice.ev2 VALUES ('2026-01-01 06:00+00', 'running', 1);
         UPDATE alice.ev2 SET v = 2;",
    )
    .unwrap();
    // bob's own settings are his again afterwards.
    let tz: String = b.query_one("SHOW TimeZone", &[]).unwrap().get(0);
    assert_eq!(tz, "Pacific/Kiritimati");
    let row = a
        .query_one(
            "SELECT sum(n)::int8, sum(morning)::int8, sum(digits)::int8, sum(jan)::int8, sum(stem)::int8 FROM alice.ev2_sum",
            &[],
        )
        .unwrap();
    let got: (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    // 'running' is 'run' only under english stemming: the filter runs
    // under pg_catalog.simple whatever the writer set.
    assert_eq!(
        got,
        (4, 4, 0, 4, 0),
        "filters evaluated under the writer's settings"
    );
    assert_eq!(
        one(&mut a, "SELECT vigil.verify_rollup('alice.ev2_sum')"),
        0
    );
    assert_nobody_escalated(&mut su);
}

/// A filter's function that stops being immutable (ALTER FUNCTION ...
/// STABLE) gets the text search pin from then on, also in a writer's
/// session whose rollup plans were made while it was immutable.
pub fn a_filter_function_made_stable_gets_the_text_search_pin(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev9 (ts timestamptz, k text);
           GRANT INSERT ON alice.ev9 TO bob;
           CREATE FUNCTION alice.stems(t text) RETURNS boolean LANGUAGE sql IMMUTABLE
             AS $$ SELECT pg_catalog.to_tsvector(t) @@ pg_catalog.to_tsquery('run') $$;
           SELECT vigil.create_rollup('alice.ev9_sum', 'alice.ev9', 'ts', '1 hour', ARRAY['k']::name[],
             '{"n":{"agg":"count"}, "stem":{"agg":"count","filter":"alice.stems(k)"}}');"#,
    )
    .unwrap();
    let mut b = c.connect_as(DB, "bob");
    b.batch_execute(
        "SET default_text_search_config = 'pg_catalog.english';
         INSERT INTO alice.ev9 VALUES ('2026-01-01 06:00+00', 'running');",
    )
    .unwrap();
    let stem = |a: &mut Client| one(a, "SELECT coalesce(sum(stem), 0)::int8 FROM alice.ev9_sum");
    let before = stem(&mut a);
    a.batch_execute("ALTER FUNCTION alice.stems(text) STABLE")
        .unwrap();
    // bob's backend keeps its plans; the function's change reaches it.
    b.batch_execute("INSERT INTO alice.ev9 VALUES ('2026-01-01 06:00+00', 'running')")
        .unwrap();
    assert_eq!(one(&mut a, "SELECT sum(n)::int8 FROM alice.ev9_sum"), 2);
    assert_eq!(
        stem(&mut a),
        before,
        "a stable filter ran under the writer's text search configuration"
    );
    assert_nobody_escalated(&mut su);
}

/// A role with TRIGGER on the source cannot make a rollup count rows twice:
/// not with a WHEN clause that plants a dependency on the summary, not with
/// a second plain trigger (only the owner's triggers are linked).
pub fn a_trigger_grantee_cannot_make_a_rollup_count_twice(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev3 (ts timestamptz, k text);
           GRANT INSERT, SELECT, TRIGGER ON alice.ev3 TO bob;
           SELECT vigil.create_rollup('alice.ev3_sum', 'alice.ev3', 'ts', '1 hour', ARRAY['k']::name[], '{"n":{"agg":"count"}}');"#,
    )
    .unwrap();
    let mut b = c.connect_as(DB, "bob");
    b.batch_execute(
        "CREATE TRIGGER zz_double AFTER INSERT ON alice.ev3 REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
           WHEN ('alice.ev3_sum'::regclass IS NOT NULL) EXECUTE FUNCTION vigil._rollup_trigger('whatever')",
    )
    .unwrap();
    assert_eq!(
        try_sql(&mut b, "INSERT INTO alice.ev3 VALUES (now(), 'x')"),
        "39P01"
    );
    a.batch_execute("DROP TRIGGER zz_double ON alice.ev3")
        .unwrap();
    b.batch_execute(
        "CREATE TRIGGER zz_twice AFTER INSERT ON alice.ev3 REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('alice.ev3_sum')",
    )
    .unwrap();
    // Not linked (bob made it): it maintains nothing, the owner's trigger
    // counts the row once, and bob's write goes on.
    assert_eq!(
        try_sql(&mut b, "INSERT INTO alice.ev3 VALUES (now(), 'x')"),
        "ok"
    );
    // Nor may bob replace the owner's own trigger (refused like DROP
    // TRIGGER): it keeps counting, once.
    assert_eq!(
        try_sql(
            &mut b,
            "CREATE OR REPLACE TRIGGER vigil_rollup_ev3_sum_ins AFTER INSERT ON alice.ev3 REFERENCING NEW TABLE AS vigil_new
               FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger('\"alice\".\"ev3_sum\"')"
        ),
        "2BP01"
    );
    b.batch_execute("INSERT INTO alice.ev3 VALUES (now(), 'x')")
        .unwrap();
    assert_eq!(one(&mut a, "SELECT sum(n)::int8 FROM alice.ev3_sum"), 2);
    a.batch_execute("DROP TRIGGER zz_twice ON alice.ev3")
        .unwrap();
    assert_eq!(
        one(&mut a, "SELECT vigil.verify_rollup('alice.ev3_sum')"),
        0
    );
    // A rollup written at commit (a max measure): bob's copy of its INSERT
    // and DELETE triggers, named to sort first, is not the one its kept
    // rows are written through; they are counted once, by the owner's.
    a.batch_execute(
        r#"CREATE TABLE alice.ev4 (ts timestamptz, k text, v int);
           GRANT INSERT, SELECT, DELETE, TRIGGER ON alice.ev4 TO bob;
           SELECT vigil.create_rollup('alice.ev4_max', 'alice.ev4', 'ts', '1 hour', ARRAY['k']::name[],
                                      '{"n":{"agg":"count"},"hi":{"agg":"max","column":"v"}}');"#,
    )
    .unwrap();
    b.batch_execute(
        "CREATE TRIGGER aa_ins AFTER INSERT ON alice.ev4 REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('\"alice\".\"ev4_max\"');
         CREATE TRIGGER aa_del AFTER DELETE ON alice.ev4 REFERENCING OLD TABLE AS vigil_old FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('\"alice\".\"ev4_max\"');
         BEGIN; INSERT INTO alice.ev4 VALUES (now(), 'x', 5), (now(), 'x', 9); DELETE FROM alice.ev4 WHERE v = 5; COMMIT",
    )
    .unwrap();
    assert_eq!(one(&mut a, "SELECT sum(n)::int8 FROM alice.ev4_max"), 1);
    assert_eq!(one(&mut a, "SELECT max(hi)::int8 FROM alice.ev4_max"), 9);
    assert_eq!(
        one(&mut a, "SELECT vigil.verify_rollup('alice.ev4_max')"),
        0
    );
    // Nor can bob call the slot-lock function to make the commits of
    // alice's writers wait on him.
    assert_eq!(
        try_sql(
            &mut b,
            "SELECT vigil._rollup_slot('alice.ev4_max'::regclass, 1)"
        ),
        "42501"
    );
    assert_nobody_escalated(&mut su);
}

/// security_invoker is read the way PostgreSQL reads it (any spelling of
/// true), and a monitor of one tenant never bumps another's alert.
pub fn monitors_refuse_security_invoker_views_and_keep_tenants_alerts_apart(c: &Cluster) {
    let (mut su, mut a, mut adm) = monitored(c);
    a.batch_execute(
        "CREATE TABLE alice.hidden (entity text, v float8, at timestamptz DEFAULT now());
         ALTER TABLE alice.hidden ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own ON alice.hidden USING (entity = current_user);
         INSERT INTO alice.hidden VALUES ('TOP-SECRET', 1);
         GRANT SELECT ON alice.hidden TO adm;
         CREATE VIEW alice.sv1 WITH (security_invoker) AS SELECT * FROM alice.hidden;
         CREATE VIEW alice.sv2 WITH (security_invoker = 'True') AS SELECT * FROM alice.hidden;
         CREATE VIEW alice.sv3 WITH (security_invoker = 'y') AS SELECT * FROM alice.hidden;
         GRANT SELECT ON alice.sv1, alice.sv2, alice.sv3 TO adm;",
    )
    .unwrap();
    for v in ["alice.sv1", "alice.sv2", "alice.sv3"] {
        assert_eq!(
            try_sql(&mut adm, &count_monitor(&format!("m_{}", &v[6..]), v)),
            "42501",
            "{v}"
        );
    }
    // Two tenants, same kind, same entity value: separate alerts.
    let mut b = c.connect_as(DB, "bob");
    b.batch_execute(
        "CREATE TABLE bob.metrics (entity text, v float8, at timestamptz DEFAULT now());
         INSERT INTO bob.metrics (entity, v) VALUES ('e1', 1);
         GRANT SELECT ON bob.metrics TO adm;",
    )
    .unwrap();
    adm.batch_execute(&count_monitor("m_bob", "bob.metrics"))
        .unwrap();
    scan(&mut su);
    let per_monitor: Vec<(String, i64)> = su
        .query(
            "SELECT monitor, count(*) FROM vigil.alerts WHERE entity = 'e1' AND status = 'firing' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        per_monitor,
        vec![("m_bob".to_string(), 1), ("m_count".to_string(), 1)]
    );
    assert_nobody_escalated(&mut su);
}

/// A rollup owner who locks its summary does not hang vigil.rollups for
/// everyone else (sizes are NULL meanwhile).
pub fn a_locked_summary_does_not_hang_vigil_rollups(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev4 (ts timestamptz, k text);
           SELECT vigil.create_rollup('alice.ev4_sum', 'alice.ev4', 'ts', '1 hour', ARRAY['k']::name[], '{"n":{"agg":"count"}}');"#,
    )
    .unwrap();
    a.batch_execute("BEGIN").unwrap();
    a.batch_execute("LOCK TABLE alice.ev4_sum IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut r = c.connect_as(DB, "rdr");
    r.batch_execute("SET statement_timeout = '5s'").unwrap();
    let row = r
        .query_one(
            "SELECT rows IS NULL, status FROM vigil.rollups WHERE name = 'alice.ev4_sum'::regclass",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    a.batch_execute("COMMIT").unwrap();
    assert_nobody_escalated(&mut su);
}

/// Internal functions anyone can call answer bad input with a specific
/// SQLSTATE, never an internal error.
pub fn internal_functions_answer_bad_input_without_internal_errors(c: &Cluster) {
    let mut su = setup(c);
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute("CREATE TABLE mallory.ev (ts timestamptz, k text)")
        .unwrap();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (sql, want) in [
        ("SELECT vigil._base_type(0, 0) IS NULL".to_string(), "ok"),
        (format!("SELECT vigil._monitor_plan('count', '{deep}'::jsonb, 'x', '{{}}')"), "54000"),
        (format!("SELECT vigil._monitor_plan('count', '{{}}', 'x', '{deep}'::jsonb)"), "54000"),
        (format!("SELECT vigil._create_rollup('mallory.q1', 'mallory.ev'::regclass, 'ts', '1h', '{{}}', '{deep}'::jsonb)"), "54000"),
        ("SELECT vigil._create_rollup('mallory.q1', 'mallory.ev'::regclass, 'ts', '1h', ARRAY[NULL], '{\"n\":{\"agg\":\"count\"}}')".to_string(), "22004"),
    ] {
        assert_eq!(try_sql(&mut m, &sql), want, "{sql}");
    }
    assert_nobody_escalated(&mut su);
}

/// The DDL event triggers act only on the rollups a command touches, run
/// no code a partition's owner controls as the partitioned table's owner,
/// and never fail on malformed trigger-carried definitions.
pub fn rollup_ddl_hooks_touch_only_their_own_rollups_and_run_no_partition_owner_code(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        r#"CREATE TABLE alice.ev5 (ts timestamptz NOT NULL, k text, v int);
           INSERT INTO alice.ev5 VALUES (now(), 'a', 1);
           SELECT vigil.create_rollup('alice.ev5_sum', 'alice.ev5', 'ts', '1 hour', ARRAY['k']::name[], '{"n":{"agg":"count"}}');"#,
    )
    .unwrap();
    // Another role's DROP of its own temp table with a trigger leaves
    // alice's rollup alone, and its own broken rollup blocks no one.
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        r#"CREATE TABLE mallory.src (ts timestamptz NOT NULL, k text);
           SELECT vigil.create_rollup('mallory.src_sum', 'mallory.src', 'ts', '1 hour', ARRAY['k']::name[], '{"n":{"agg":"count"}}');
           ALTER TABLE mallory.src DISABLE TRIGGER vigil_rollup_src_sum_upd;
           CREATE TEMP TABLE t (x int);
           CREATE FUNCTION mallory.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
           CREATE TRIGGER tt AFTER INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION mallory.noop();
           DROP TABLE t;
           CREATE TABLE mallory.other (x int);
           CREATE TRIGGER ot AFTER INSERT ON mallory.other FOR EACH STATEMENT EXECUTE FUNCTION mallory.noop();
           DROP TRIGGER ot ON mallory.other;"#,
    )
    .unwrap();
    assert_eq!(
        one(
            &mut su,
            "SELECT count(*) FROM vigil.rollup_defs WHERE summary = 'alice.ev5_sum'::regclass"
        ),
        1
    );
    // A partition owned by mallory with a policy that records who reads it:
    // truncating or attaching it never runs that policy as alice.
    plant_escalator(&mut m, "mallory");
    a.batch_execute(
        r#"CREATE TABLE alice.pe (ts timestamptz NOT NULL, k text) PARTITION BY RANGE (ts);
           CREATE TABLE alice.pe1 PARTITION OF alice.pe FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');
           SELECT vigil.create_rollup('alice.pe_sum', 'alice.pe', 'ts', '1 day', ARRAY['k']::name[], '{"n":{"agg":"count"}}');
           INSERT INTO alice.pe VALUES (now(), 'x');
           CREATE TABLE alice.pe2 (ts timestamptz NOT NULL, k text);"#,
    )
    .unwrap();
    su.batch_execute(
        "ALTER TABLE alice.pe2 OWNER TO mallory;
         GRANT USAGE ON SCHEMA mallory TO alice;",
    )
    .unwrap();
    m.batch_execute(
        "INSERT INTO alice.pe2 VALUES ('2150-01-01', 'y');
         ALTER TABLE alice.pe2 ENABLE ROW LEVEL SECURITY;
         CREATE POLICY spy ON alice.pe2 USING (mallory.mallory_escalate());",
    )
    .unwrap();
    su.batch_execute(
        "ALTER TABLE alice.pe ATTACH PARTITION alice.pe2 FOR VALUES FROM ('2100-01-01') TO ('2200-01-01');",
    )
    .unwrap();
    assert_eq!(one(&mut a, "SELECT vigil.verify_rollup('alice.pe_sum')"), 0);
    assert_eq!(one(&mut a, "SELECT sum(n)::int8 FROM alice.pe_sum"), 2);
    su.batch_execute("TRUNCATE alice.pe2").unwrap();
    assert!(
        !ran_as(&mut su, "mallory").contains(&"alice".to_string()),
        "a partition owner's policy ran as the partitioned table's owner"
    );
    assert_eq!(one(&mut a, "SELECT vigil.verify_rollup('alice.pe_sum')"), 0);
    // A NUL in a trigger-carried definition is no internal error.
    let code = try_sql(
        &mut a,
        "CREATE TABLE alice.q (ts timestamptz NOT NULL, k text);
         CREATE TRIGGER vigil_rollup_q_ins AFTER INSERT ON alice.q REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('alice.ev5_sum', '{\"time_column\":\"ts\",\"bucket\":\"1 month\",\"group_by\":[],\"measures\":{\"n\":{\"agg\":\"count\",\"filter\":\"k = \\u0000\"}}}');
         INSERT INTO alice.q VALUES (now(), 'a');",
    );
    assert!(code == "ok" || code == "39P01", "{code}");
    assert_nobody_escalated(&mut su);
}

/// Review of 2026-12-02: a partition's owner cannot make another role's
/// rollup count that partition's rows again (rename and replace its
/// triggers, then have the rollup re-examined); DETACH and ATTACH of the
/// same table adds nothing twice; a superuser can hand a partition to
/// another role; errors caught on bad trigger arguments leak nothing; a
/// filter that spells a column as U&"..." is refused up front.
pub fn partition_owners_cannot_recount_and_detach_attach_stays_exact(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        "CREATE TABLE alice.q (ts timestamptz NOT NULL, k text) PARTITION BY RANGE (ts);
         CREATE TABLE alice.q1 (ts timestamptz NOT NULL, k text);
         INSERT INTO alice.q1 SELECT '2026-01-05', 'a' FROM generate_series(1, 10);
         SELECT vigil.create_rollup('alice.q_sum', 'alice.q', 'ts', '1 day', ARRAY['k'], '{\"n\": {\"agg\": \"count\"}}');
         CREATE TABLE alice.q2 PARTITION OF alice.q FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
         INSERT INTO alice.q SELECT '2026-02-05', 'b' FROM generate_series(1, 5);",
    )
    .unwrap();
    su.batch_execute(
        "ALTER TABLE alice.q1 OWNER TO mallory;
         ALTER TABLE alice.q ATTACH PARTITION alice.q1 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');",
    )
    .unwrap();
    let total = |a: &mut Client| -> (i64, i64) {
        let r = a
            .query_one(
                "SELECT (SELECT sum(n) FROM alice.q_sum)::bigint, vigil.verify_rollup('alice.q_sum')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        total(&mut a),
        (15, 0),
        "the attached partition's rows joined once"
    );

    // mallory owns q1 only: renaming its triggers is harmless (they are
    // linked by oid); replacing one is refused like dropping it; and the
    // rollup cannot be re-examined outside a DDL command.
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        "CREATE FUNCTION mallory.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         ALTER TRIGGER vigil_rollup_q_sum_ins ON alice.q1 RENAME TO m1;",
    )
    .unwrap();
    assert_eq!(
        try_sql(
            &mut m,
            "CREATE OR REPLACE TRIGGER m1 AFTER INSERT ON alice.q1 FOR EACH STATEMENT EXECUTE FUNCTION mallory.noop()"
        ),
        "2BP01"
    );
    assert_eq!(
        try_sql(
            &mut m,
            "SELECT vigil._rollup_ddl('pg_class'::regclass, 'alice.q'::regclass)"
        ),
        "39P03"
    );
    // DDL on the tree by either of them re-examines the rollup: nothing
    // is added again.
    m.batch_execute("ALTER TABLE alice.q1 SET (fillfactor = 90)")
        .unwrap();
    a.batch_execute(
        "ALTER TABLE alice.q OWNER TO alice; INSERT INTO alice.q VALUES ('2026-01-06', 'a')",
    )
    .unwrap();
    assert_eq!(
        total(&mut a),
        (16, 0),
        "nothing counted twice; the renamed trigger still maintains"
    );

    // The owner's routine DETACH and ATTACH of the same table.
    su.batch_execute("ALTER TABLE alice.q1 OWNER TO alice")
        .unwrap();
    a.batch_execute("ALTER TABLE alice.q DETACH PARTITION alice.q2")
        .unwrap();
    assert_eq!(
        total(&mut a).0,
        16,
        "a detached partition's rows stay as history"
    );
    a.batch_execute(
        "ALTER TABLE alice.q ATTACH PARTITION alice.q2 FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
         INSERT INTO alice.q2 VALUES ('2026-02-06', 'b');",
    )
    .unwrap();
    assert_eq!(total(&mut a), (17, 0), "re-attaching adds nothing twice");
    assert_eq!(
        su.query_one("SELECT count(*) FROM vigil.rollup_detached", &[])
            .unwrap()
            .get::<_, i64>(0),
        0
    );

    // A superuser hands a partition to another role: the triggers follow.
    su.batch_execute("ALTER TABLE alice.q1 OWNER TO bob")
        .unwrap();
    a.batch_execute("INSERT INTO alice.q VALUES ('2026-01-07', 'a')")
        .unwrap();
    assert_eq!(total(&mut a), (18, 0));
    assert_eq!(
        su.query_one(
            "SELECT status FROM vigil.rollups WHERE name = 'alice.q_sum'::regclass",
            &[]
        )
        .unwrap()
        .get::<_, String>(0),
        "ok"
    );

    // Bad trigger arguments are caught in a subtransaction: no leak.
    m.batch_execute(
        "CREATE TABLE mallory.t2 (ts timestamptz NOT NULL, k text);
         SET client_min_messages = warning;",
    )
    .unwrap();
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = notices.clone();
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(c.port)
        .user("mallory")
        .dbname(DB);
    cfg.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    let mut m2 = cfg.connect(postgres::NoTls).unwrap();
    m2.batch_execute(
        "CREATE TRIGGER x AFTER INSERT ON mallory.t2 REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('a.b.c.d.e');
         INSERT INTO mallory.t2 VALUES (now(), 'a');
         CREATE TRIGGER y AFTER DELETE ON mallory.t2 REFERENCING OLD TABLE AS vigil_old FOR EACH STATEMENT
           EXECUTE FUNCTION vigil._rollup_trigger('mallory.t2_sum', '{\"time_column\": \"ts\", \"bucket\": \"not an interval\", \"group_by\": [], \"measures\": {}}');",
    )
    .unwrap();
    let seen = notices.lock().unwrap().clone();
    assert!(
        !seen
            .iter()
            .any(|n| n.contains("leak") || n.contains("still active")),
        "{seen:?}"
    );

    // U&"..." identifiers in a filter: refused by create_rollup.
    a.batch_execute("CREATE TABLE alice.ev (ts timestamptz NOT NULL, v int)")
        .unwrap();
    assert_eq!(
        try_sql(
            &mut a,
            "SELECT vigil.create_rollup('alice.ev_sum', 'alice.ev', 'ts', '1 day', ARRAY[]::name[],
               '{\"n\": {\"agg\": \"count\", \"filter\": \"U&\\\"v\\\" > 0\"}}')"
        ),
        "22023"
    );
    assert_nobody_escalated(&mut su);
}

/// The caller's search path never reaches the lookups vigil makes before
/// it switches to a restricted identity (review 2026-12-02b, findings 1
/// and 2): a vigil_admin's own `=` operators cannot swap the monitor whose
/// plan `_monitor_run` runs as a source owner, and a writer's cannot make
/// the rollup trigger read another extension's version and skip the
/// owner's summary.
pub fn a_callers_operators_cannot_steer_vigils_own_lookups(c: &Cluster) {
    let mut su = setup(c);
    su.batch_execute(
        "CREATE SCHEMA hr AUTHORIZATION bob;
         SET ROLE bob;
         CREATE TABLE hr.salaries (emp text NOT NULL, ts timestamptz NOT NULL DEFAULT now(), amount int);
         INSERT INTO hr.salaries (emp, amount) VALUES ('ceo_alice', 900000), ('cfo_bob', 700000);
         RESET ROLE;
         SELECT vigil.create_monitor('hr_watch', 'count', 'hr.salaries',
           '{\"entity\": \"emp\", \"time\": \"ts\", \"window\": \"500 weeks\", \"thresholds\": {\"high\": 1}}');
         CREATE TABLE public.lookup (emp text NOT NULL, ts timestamptz NOT NULL DEFAULT now());
         INSERT INTO public.lookup (emp) VALUES ('nobody');
         GRANT SELECT ON public.lookup TO PUBLIC;",
    )
    .unwrap();
    let target: i64 = su
        .query_one("SELECT id FROM vigil.monitors WHERE name = 'hr_watch'", &[])
        .unwrap()
        .get(0);
    let mut adm = c.connect_as(DB, "adm");
    assert_eq!(
        try_sql(&mut adm, "SELECT count(*) FROM hr.salaries"),
        "42501"
    );
    let mine: i64 = adm
        .query_one(
            "SELECT vigil.create_monitor('mine', 'count', 'public.lookup',
               '{\"entity\": \"emp\", \"time\": \"ts\", \"window\": \"500 weeks\", \"thresholds\": {\"high\": 1}}')",
            &[],
        )
        .unwrap()
        .get(0);
    adm.batch_execute(&format!(
        "CREATE FUNCTION adm.int8eq(bigint, bigint) RETURNS bool LANGUAGE sql IMMUTABLE
             AS $$ SELECT $1 OPERATOR(pg_catalog.=) {target} OR $1 OPERATOR(pg_catalog.=) $2 AND false $$;
         CREATE OPERATOR adm.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = adm.int8eq);
         CREATE FUNCTION adm.nameeq(name, name) RETURNS bool LANGUAGE sql IMMUTABLE
             AS $$ SELECT $1 OPERATOR(pg_catalog.=) 'postgres'::name $$;
         CREATE OPERATOR adm.= (LEFTARG = name, RIGHTARG = name, FUNCTION = adm.nameeq);
         SET search_path = adm, pg_catalog;"
    ))
    .unwrap();
    let rows: serde_json::Value = adm
        .query_one(&format!("SELECT vigil._monitor_run({mine})::text"), &[])
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    let text = rows.to_string();
    assert!(
        !text.contains("ceo_alice") && !text.contains("cfo_bob"),
        "the caller's operators picked another monitor's plan: {text}"
    );
    assert!(text.contains("nobody"), "its own monitor ran: {text}");

    // A writer with INSERT on alice's source, in a fresh session.
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        "CREATE TABLE alice.ev (ts timestamptz NOT NULL, k text NOT NULL);
         SELECT vigil.create_rollup('alice.ev_1h', 'alice.ev', 'ts', '1 hour', ARRAY['k'], '{\"n\": {\"agg\": \"count\"}}');
         GRANT INSERT ON alice.ev TO mallory;",
    )
    .unwrap();
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        "CREATE FUNCTION mallory.nameeq(name, name) RETURNS bool LANGUAGE sql IMMUTABLE
             AS $$ SELECT $1 OPERATOR(pg_catalog.=) 'plpgsql'::name $$;
         CREATE OPERATOR mallory.= (LEFTARG = name, RIGHTARG = name, FUNCTION = mallory.nameeq);
         SET search_path = mallory, pg_catalog;
         INSERT INTO alice.ev SELECT '2026-12-01 10:00+00', 'a' FROM generate_series(1, 100);",
    )
    .unwrap_or_else(|e| panic!("writes pass: {e}"));
    let verified: i64 = a
        .query_one("SELECT vigil.verify_rollup('alice.ev_1h')", &[])
        .unwrap()
        .get(0);
    let n: i64 = a
        .query_one("SELECT coalesce(sum(n), 0)::bigint FROM alice.ev_1h", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        (n, verified),
        (100, 0),
        "the writer's operator skipped maintenance"
    );
    assert_nobody_escalated(&mut su);
}

/// A writer's data can affect at most its own entity's alert (review
/// 2026-12-02c, findings 01 and 06): entities that are blank to Rust's or
/// PostgreSQL's eyes, longer than a label value may be, or values that are
/// NaN or ±Infinity, neither fail the monitor nor hide another entity's
/// alert, and the scan goes on for every monitor.
pub fn a_writers_rows_cannot_blind_a_monitor(c: &Cluster) {
    let mut su = setup(c);
    let mut a = c.connect_as(DB, "alice");
    a.batch_execute(
        "CREATE TABLE alice.health (entity text NOT NULL, ts timestamptz NOT NULL, v numeric);
         INSERT INTO alice.health
         SELECT e, now() - g * interval '1 hour', CASE WHEN g = 0 THEN 60 ELSE 80 END
         FROM unnest(ARRAY['victim', E'\\t', repeat('z', 9000)]) e, generate_series(0, 5) g;
         INSERT INTO alice.health VALUES ('nan-entity', now(), 'NaN'), ('nan-entity', now() - interval '1 hour', 80),
                                         ('inf-entity', now(), 'Infinity'), ('inf-entity', now() - interval '1 hour', 80);
         GRANT INSERT ON alice.health TO mallory;",
    )
    .unwrap();
    let mut adm = c.connect_as(DB, "adm");
    adm.batch_execute("GRANT USAGE ON SCHEMA alice TO adm;")
        .ok();
    a.batch_execute("GRANT SELECT ON alice.health TO adm")
        .unwrap();
    adm.batch_execute(
        "SELECT vigil.create_monitor('health_drop', 'drop', 'alice.health',
             '{\"entity\": \"entity\", \"time\": \"ts\", \"value\": \"v\", \"baseline\": \"1 day\"}');
         SELECT vigil.create_monitor('busy', 'count', 'alice.health',
             '{\"entity\": \"entity\", \"thresholds\": {\"medium\": 1}}');",
    )
    .unwrap();
    let report = scan(&mut su);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let victims: i64 = su
        .query_one(
            "SELECT count(*) FROM vigil.alerts WHERE entity = 'victim' AND status = 'firing'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(victims, 2, "both monitors alert for the victim: {report}");
    let odd: i64 = su
        .query_one(
            "SELECT count(*) FROM vigil.alerts WHERE monitor = 'health_drop' AND entity IN (E'\\t', repeat('z', 9000))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(odd, 2, "odd entities are ordinary entities");
    let non_finite: i64 = su
        .query_one(
            "SELECT count(*) FROM vigil.alerts WHERE monitor = 'health_drop' AND entity IN ('nan-entity', 'inf-entity')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        non_finite, 0,
        "non-finite values are left out of the arithmetic"
    );
    assert_nobody_escalated(&mut su);
}

/// The alerting paths (issue 15's routes, silences, inhibition, escalation)
/// run as the extension's owner where they are SECURITY DEFINER
/// (`create_silence`, `expire_silence`, `_enqueue_alert`) and as the worker
/// otherwise. An operator plants operators and functions named like the
/// ones those paths use, puts them first on its search_path, and writes SQL
/// into every text it may pass; a superuser then raises, routes, silences,
/// inhibits, flushes, releases and escalates with that same search_path.
/// None of the planted code runs as anyone but the operator, the texts stay
/// data, and a reader cannot silence anything.
pub fn alerting_paths_run_no_code_a_caller_planted(c: &Cluster) {
    let mut su = setup(c);
    su.batch_execute("GRANT vigil_operator TO mallory; GRANT vigil_admin TO mallory")
        .unwrap();
    plant_escalator(&mut su, "mallory");
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        "CREATE FUNCTION mallory.jeq(jsonb, jsonb) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.=) $2 $$;
         CREATE OPERATOR mallory.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = mallory.jeq);
         CREATE FUNCTION mallory.jcontains(jsonb, jsonb) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.@>) $2 $$;
         CREATE OPERATOR mallory.@> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = mallory.jcontains);
         CREATE FUNCTION mallory.jhas(jsonb, text) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.?) $2 $$;
         CREATE OPERATOR mallory.? (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = mallory.jhas);
         CREATE FUNCTION mallory.teq(text, text) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.=) $2 $$;
         CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.teq);
         CREATE FUNCTION mallory.tsgt(timestamptz, timestamptz) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.>) $2 $$;
         CREATE OPERATOR mallory.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mallory.tsgt);
         CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE sql
             AS $$ SELECT CASE WHEN mallory.mallory_escalate() THEN pg_catalog.now() END $$;
         CREATE FUNCTION mallory.unnest(text[]) RETURNS SETOF text LANGUAGE sql
             AS $$ SELECT x FROM pg_catalog.unnest($1) x WHERE mallory.mallory_escalate() $$;
         CREATE FUNCTION mallory.labels_match(jsonb, text[]) RETURNS bool LANGUAGE sql
             AS $$ SELECT mallory.mallory_escalate() $$;
         CREATE FUNCTION mallory.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql
             AS $$ SELECT CASE WHEN mallory.mallory_escalate() THEN '{}'::jsonb END $$;
         SET search_path = mallory, pg_catalog, public;",
    )
    .unwrap();
    // As operator and admin, with the planted search_path, through every
    // entry point it has; the texts carry SQL that must stay text.
    let payload = "x'); ALTER ROLE mallory SUPERUSER; --";
    let silence: i64 = m
        .query_one(
            "SELECT vigil.create_silence(ARRAY['entity=~\"db-.*\"', 'team!=\"'');DROP TABLE vigil.alerts;--\"'],
                                         now() + interval '1 hour', $1, $1)",
            &[&payload],
        )
        .unwrap()
        .get(0);
    let other: i64 = m
        .query_one(
            "SELECT vigil.create_silence(ARRAY['entity=\"nothing\"'], now() + interval '1 hour', 'c')",
            &[],
        )
        .unwrap()
        .get(0);
    m.batch_execute(&format!(
        "SELECT vigil.expire_silence({other});
         SELECT count(*) FROM vigil.active_silences;
         SELECT vigil.create_channel('flat', 'webhook', 'http://127.0.0.1:9/flat', group_by => NULL);
         SELECT vigil.create_channel('grouped', 'webhook', 'http://127.0.0.1:9/grouped', group_wait => '0 seconds');
         SELECT vigil.create_route('all', ARRAY['flat', 'grouped'], ARRAY['alertname=~\".+\"']);
         SELECT vigil.create_inhibit_rule('crit', ARRAY['severity=critical'], ARRAY['severity=high'], '{{entity}}');
         SELECT vigil.create_escalation_policy('page', '[{{\"after\": \"0 seconds\", \"channels\": [\"flat\"]}}]',
                                               min_severity => 'high', \"repeat\" => false);"
    ))
    .unwrap_or_else(|e| panic!("the operator's calls work: {e}"));
    let stored: String = su
        .query_one(
            &format!(
                "SELECT comment || '|' || created_by FROM vigil.silences WHERE id = {silence}"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, format!("{payload}|{payload}"), "texts stay data");

    // A superuser's session with the same search_path: every vigil path
    // pins its own.
    su.batch_execute(
        "SET search_path = mallory, pg_catalog, public;
         SELECT vigil.raise_alert('disk', 'db-1', 'high', 'silenced');
         SELECT vigil.raise_alert('outage', 'web-1', 'critical', 'source');
         SELECT vigil.raise_alert('disk', 'web-1', 'high', 'inhibited');
         SELECT vigil.raise_alert('disk', 'web-2', 'high', 'sent');
         SELECT vigil._flush_groups();
         SELECT vigil._run_escalations();
         SELECT vigil._release_held();
         SELECT vigil.alert_suppressed_by(a) FROM vigil.alerts a;
         SELECT * FROM vigil._suppressed_alerts(ARRAY(SELECT id FROM vigil.alerts));
         SELECT vigil.route_alert('{\"alertname\": \"disk\"}');
         RESET search_path;",
    )
    .unwrap_or_else(|e| panic!("the alerting paths work: {e}"));
    // The paths did their work: held by the silence and the inhibition,
    // the rest sent (grouped: one message per alertname).
    let held: String = su
        .query_one(
            "SELECT string_agg(a.entity || ':' || split_part(h.reason, ' ', 1), ',' ORDER BY a.entity)
             FROM vigil.held_notifications h JOIN vigil.alerts a ON a.id = h.alert_id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, "db-1:silence,web-1:inhibit", "suppression decided");
    let grouped: i64 = su
        .query_one(
            "SELECT count(*) FROM vigil.notifications n JOIN vigil.channels ch ON ch.id = n.channel_id
             WHERE ch.name = 'grouped' AND n.event = 'group'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        grouped, 2,
        "each alertname's group (disk, outage) was flushed"
    );
    assert!(
        ran_as(&mut su, "mallory").iter().all(|w| w == "mallory"),
        "planted code ran as {:?}",
        ran_as(&mut su, "mallory")
    );
    // Readers cannot silence or route.
    let mut r = c.connect_as(DB, "rdr");
    assert_eq!(
        try_sql(
            &mut r,
            "SELECT vigil.create_silence(ARRAY['a=b'], now() + interval '1 hour', 'c')"
        ),
        "42501"
    );
    assert_eq!(
        try_sql(
            &mut r,
            "SELECT vigil.create_route('r', ARRAY['flat'], ARRAY['a=b'])"
        ),
        "42501"
    );
    assert_nobody_escalated(&mut su);
}

/// The exact window form reads the source as its caller: a tenant who owns
/// the source and plants look-alike functions and operators in a schema a
/// superuser's search_path puts ahead of pg_catalog (`now`, `date_bin`,
/// `-`, `+`, `>`, `<`, `>=`) gets none of them run by a superuser who
/// reads the rollup, through either `_since` form or the window views:
/// their bodies were parsed, pinned to pg_catalog, when the rollup was
/// made.
pub fn exact_windows_run_no_code_a_tenant_planted(c: &Cluster) {
    let mut su = setup(c);
    plant_escalator(&mut su, "mallory");
    let mut m = c.connect_as(DB, "mallory");
    m.batch_execute(
        "CREATE TABLE mallory.ev (k text, ts timestamptz NOT NULL, v int);
         CREATE INDEX ON mallory.ev (ts);
         INSERT INTO mallory.ev SELECT 'k' || (g % 3), now() - g * interval '7 minutes', g FROM generate_series(1, 500) g;
         SELECT vigil.create_rollup('mallory.ev_h', 'mallory.ev', 'ts', '1 hour', '{k}',
             '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}}');
         CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE sql
             AS $f$ SELECT pg_catalog.now() WHERE mallory.mallory_escalate() $f$;
         CREATE FUNCTION mallory.date_bin(interval, timestamptz, timestamptz) RETURNS timestamptz LANGUAGE sql
             AS $f$ SELECT pg_catalog.date_bin($1, $2, $3) WHERE mallory.mallory_escalate() $f$;
         CREATE FUNCTION mallory.ts_minus(timestamptz, interval) RETURNS timestamptz LANGUAGE sql
             AS $f$ SELECT $1 OPERATOR(pg_catalog.-) $2 WHERE mallory.mallory_escalate() $f$;
         CREATE FUNCTION mallory.ts_plus(timestamptz, interval) RETURNS timestamptz LANGUAGE sql
             AS $f$ SELECT $1 OPERATOR(pg_catalog.+) $2 WHERE mallory.mallory_escalate() $f$;
         CREATE FUNCTION mallory.ts_cmp(timestamptz, timestamptz) RETURNS bool LANGUAGE sql
             AS $f$ SELECT mallory.mallory_escalate() AND $1 OPERATOR(pg_catalog.<>) $2 $f$;
         CREATE OPERATOR mallory.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = mallory.ts_minus);
         CREATE OPERATOR mallory.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = mallory.ts_plus);
         CREATE OPERATOR mallory.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mallory.ts_cmp);
         CREATE OPERATOR mallory.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mallory.ts_cmp);
         CREATE OPERATOR mallory.>= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mallory.ts_cmp);",
    )
    .unwrap();
    su.batch_execute("SET search_path = mallory, public, pg_catalog")
        .unwrap();
    let want: i64 = su
        .query_one(
            "SELECT count(*) FROM mallory.ev WHERE ts OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '3 hours')",
            &[],
        )
        .unwrap()
        .get(0);
    for read in [
        "SELECT sum(rows)::bigint FROM mallory.ev_h_since('3 hours', exact => true)",
        "SELECT sum(rows)::bigint FROM mallory.ev_h_since('3 hours', false)",
        "SELECT sum(rows)::bigint FROM mallory.ev_h_since('3 hours')",
        "SELECT sum(rows)::bigint FROM mallory.ev_h_24h",
    ] {
        let n: Option<i64> = su.query_one(read, &[]).unwrap().get(0);
        assert!(n.is_some(), "{read}");
        if read.contains("exact") {
            assert_eq!(
                n,
                Some(want),
                "{read}: the exact figure, with pg_catalog's operators"
            );
        }
    }
    su.batch_execute("RESET search_path").unwrap();
    assert_eq!(
        ran_as(&mut su, "mallory"),
        Vec::<String>::new(),
        "planted code ran"
    );
    assert_nobody_escalated(&mut su);
}
