//! `#[pg_test]`s of rollups: backfill, windows, DML of every kind, the trigger's identity and kept plans, rebuild and drop, through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::{one, rel, sql_error};
    use pgrx::prelude::*;

    const ROLLUP_SOURCE: &str = "
        CREATE TABLE events (entity text, grp int, ts timestamptz NOT NULL, status text,
                             amount numeric, latency float8);
        SELECT setseed(0.42);
        INSERT INTO events
        SELECT 'e' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE g % 3 END,
               '2026-10-20 00:00Z'::timestamptz + (g * 97 % 4000) * interval '1 minute',
               (ARRAY['paid', 'free', 'refund'])[1 + g % 3], (g % 50) * 1.25, (g * 7919 % 1000) / 10.0
        FROM generate_series(1, 3000) g;";

    const ROLLUP_MEASURES: &str = r#"{
        "n": {"agg": "count"},
        "paid": {"agg": "count", "filter": "status = 'paid'"},
        "revenue": {"agg": "sum", "column": "amount", "filter": "status = 'paid'"},
        "total_latency": {"agg": "sum", "column": "latency"},
        "avg_amount": {"agg": "avg", "column": "amount"},
        "lo": {"agg": "min", "column": "amount"},
        "hi": {"agg": "max", "column": "latency"},
        "lat": {"agg": "stats", "column": "latency"},
        "p": {"agg": "percentile", "column": "latency"}
    }"#;

    fn make_rollup() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(&format!(
            "SELECT vigil.create_rollup('ev_hourly', 'events', 'ts', '1 hour', '{{entity,grp}}', '{}')",
            ROLLUP_MEASURES.replace('\'', "''")
        ))
        .unwrap();
    }

    /// `pg_temp.err(sql)`: runs `sql` in a subtransaction and returns
    /// `SQLSTATE message` of its error, or `no error`.
    fn define_err() {
        Spi::run(
            "CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;",
        )
        .unwrap();
    }

    fn verify() -> i64 {
        one::<i64>("SELECT vigil.verify_rollup('ev_hourly')").unwrap()
    }

    #[pg_test]
    fn rollup_backfills_exactly_and_reads_windows() {
        make_rollup();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            Some(3000)
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM vigil.rollups WHERE name = 'ev_hourly'::regclass")
                .map(|r| r > 0),
            Some(true)
        );
        // windows are bucket-aligned: everything is older than a day here
        assert_eq!(one::<i64>("SELECT count(*) FROM ev_hourly_1h"), Some(0));
        let all = one::<i64>(
            "SELECT sum(n)::bigint FROM ev_hourly_since(now() - '2026-10-19'::timestamptz)",
        );
        assert_eq!(all, Some(3000));
        let (mean, exact) = Spi::get_two::<f64, f64>(
            "SELECT vigil.mean(vigil.rollup(lat)), (SELECT avg(latency) FROM events) FROM ev_hourly",
        )
        .unwrap();
        assert!(rel(mean.unwrap(), exact.unwrap()) < 1e-12);
    }

    /// The groups of `_since(window, exact => true)` and of the same
    /// figures over `events WHERE ts > now() - window` that differ.
    fn exact_window_differences(window: &str) -> i64 {
        let w = format!("'{window}'::interval");
        one::<i64>(&format!(
            "WITH f AS (SELECT entity, grp, rows, n, paid, revenue, lo, hi, vigil.num_vals(lat) AS lat_n,
                               vigil.num_vals(p) AS p_n
                          FROM ev_hourly_since({w}, exact => true)),
                  r AS (SELECT entity, grp, count(*) AS rows, count(*) AS n,
                               count(*) FILTER (WHERE status = 'paid') AS paid,
                               sum(amount) FILTER (WHERE status = 'paid') AS revenue,
                               min(amount) AS lo, max(latency) AS hi, count(latency) AS lat_n,
                               count(latency) AS p_n
                          FROM events WHERE ts > now() - {w} GROUP BY 1, 2)
             SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE r) a)
                  + (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE f) b)"
        ))
        .unwrap()
    }

    #[pg_test]
    fn exact_windows_equal_where_ts_after_now_minus_the_window() {
        Spi::run(
            "CREATE TABLE events (entity text, grp int, ts timestamptz NOT NULL, status text,
                                  amount numeric, latency float8, note text, code int);
             CREATE INDEX ON events (ts);
             SELECT setseed(0.11);
             INSERT INTO events
             SELECT 'e' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE g % 3 END,
                    now() - random() * interval '9 days' + interval '10 minutes',
                    (ARRAY['paid', 'free', 'refund'])[1 + g % 3],
                    CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 50) * 1.25 END, (g * 7919 % 1000) / 10.0
             FROM generate_series(1, 4000) g;
             -- a row at the start of the 24 h window's edge bucket, before
             -- its cutoff, whatever the time of day the test runs at
             INSERT INTO events VALUES ('e1', 1, date_bin('1 hour', now() - interval '24 hours', '2000-01-03 00:00+00'),
                                        'paid', 1, 1);",
        )
        .unwrap();
        Spi::run(&format!(
            "SELECT vigil.create_rollup('ev_hourly', 'events', 'ts', '1 hour', '{{entity,grp}}', '{}')",
            ROLLUP_MEASURES.replace('\'', "''")
        ))
        .unwrap();
        let windows = [
            "1 hour",
            "90 minutes",
            "24 hours",
            "7 days",
            "2 days 3 hours 17 minutes",
        ];
        for w in windows {
            assert_eq!(exact_window_differences(w), 0, "window {w}");
        }
        // the bucket-aligned form counts the whole edge bucket: more rows
        let (aligned, exact) = Spi::get_two::<i64, i64>(
            "SELECT (SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')),
                    (SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours', exact => true))",
        )
        .unwrap();
        assert!(aligned.unwrap() > exact.unwrap(), "{aligned:?} {exact:?}");
        assert_eq!(
            exact,
            one::<i64>("SELECT count(*) FROM events WHERE ts > now() - interval '24 hours'")
        );
        // exact => false is the one-argument form
        assert_eq!(
            one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours', false)"),
            aligned
        );
        // still exact after DML of every kind, at the edge too
        Spi::run(
            "UPDATE events SET amount = amount + 1, status = 'paid' WHERE ts > now() - interval '25 hours' AND grp = 1;
             DELETE FROM events WHERE ts BETWEEN now() - interval '24 hours 30 minutes' AND now() - interval '23 hours 30 minutes';
             UPDATE events SET ts = ts - interval '50 minutes' WHERE entity = 'e3';
             INSERT INTO events VALUES ('e9', 1, now() - interval '24 hours' + interval '1 second', 'paid', 3, 1),
                                       ('e9', 1, now() - interval '24 hours', 'paid', 5, 1);",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT vigil.verify_rollup('ev_hourly')"),
            Some(0)
        );
        for w in windows {
            assert_eq!(exact_window_differences(w), 0, "window {w} after DML");
        }
        // rows ahead of now count as they do in the WHERE clause; a NULL
        // flag gives no rows
        assert_eq!(exact_window_differences("0 seconds"), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly_since('7 days', NULL)"),
            Some(0)
        );
        // the exact form reads the source: a reader of the summary alone
        // may use the aligned one, and is told which table it lacks
        let aligned = one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')");
        Spi::run(
            "CREATE ROLE exact_reader; GRANT SELECT ON ev_hourly TO exact_reader;
             SET LOCAL ROLE exact_reader",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT sum(rows)::bigint FROM ev_hourly_since('24 hours')"),
            aligned
        );
        let (code, msg) = sql_error("SELECT * FROM ev_hourly_since('24 hours', exact => true)");
        assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE", "{msg}");
        assert!(msg.contains("table events"), "{msg}");
        Spi::run("RESET ROLE").unwrap();
        // it reads only the columns the rollup reads: a reader granted
        // those may use it, and the owner may still drop or retype the
        // others (the stored query names them, not `*`)
        Spi::run(
            "GRANT SELECT (entity, grp, ts, status, amount, latency) ON events TO exact_reader;
             SET LOCAL ROLE exact_reader",
        )
        .unwrap();
        assert_eq!(exact_window_differences("24 hours"), 0);
        Spi::run(
            "RESET ROLE;
             ALTER TABLE events DROP COLUMN note;
             ALTER TABLE events ALTER COLUMN code TYPE bigint;",
        )
        .unwrap();
        assert_eq!(exact_window_differences("24 hours"), 0);
        // a timestamp column holds UTC whatever the session's TimeZone
        Spi::run(
            "SET LOCAL TimeZone = 'America/New_York';
             CREATE TABLE naive AS SELECT entity, (ts AT TIME ZONE 'UTC') AS ts FROM events;
             CREATE INDEX ON naive (ts);
             SELECT vigil.create_rollup('naive_hourly', 'naive', 'ts', '1 hour', '{entity}', '{\"n\": {\"agg\": \"count\"}}');",
        )
        .unwrap();
        for w in windows {
            let w = format!("'{w}'::interval");
            assert_eq!(
                one::<i64>(&format!(
                    "WITH f AS (SELECT entity, rows FROM naive_hourly_since({w}, exact => true)),
                          r AS (SELECT entity, count(*) FROM naive WHERE ts > (now() - {w}) AT TIME ZONE 'UTC' GROUP BY 1)
                     SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE r) a)
                          + (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE f) b)"
                )),
                Some(0),
                "window {w}"
            );
        }
    }

    /// A row without a time is in no bucket: writes of such rows (one or
    /// many, INSERT, UPDATE to and from NULL, DELETE) go through, whatever
    /// path the rollup takes (signed deltas, or locks and repairs for
    /// extremes), and leave the summary equal to a recompute.
    #[pg_test]
    fn rows_without_a_time_are_in_no_bucket_and_never_stop_a_write() {
        Spi::run(
            "CREATE TABLE nt (k text, ts timestamptz, v int);
             INSERT INTO nt VALUES ('a', '2026-11-01 10:00Z', 1), ('b', NULL, 2);
             SELECT vigil.create_rollup('nt_sums', 'nt', 'ts', '1 hour', '{k}',
                 '{\"n\": {\"agg\": \"count\"}, \"s\": {\"agg\": \"sum\", \"column\": \"v\"}}');
             SELECT vigil.create_rollup('nt_max', 'nt', 'ts', '1 hour', '{k}',
                 '{\"n\": {\"agg\": \"count\"}, \"hi\": {\"agg\": \"max\", \"column\": \"v\"}}');
             INSERT INTO nt VALUES ('a', NULL, 3);
             INSERT INTO nt VALUES ('a', NULL, 4), ('b', '2026-11-01 11:00Z', 5), ('c', NULL, 6);
             UPDATE nt SET ts = NULL WHERE v = 1;
             UPDATE nt SET ts = '2026-11-01 12:00Z' WHERE v = 3;
             UPDATE nt SET v = v + 10 WHERE ts IS NULL AND v = 4;
             UPDATE nt SET v = v + 10 WHERE v = 6;
             DELETE FROM nt WHERE v = 2;
             DELETE FROM nt WHERE ts IS NULL AND k = 'a';",
        )
        .unwrap();
        for summary in ["nt_sums", "nt_max"] {
            assert_eq!(
                one::<i64>(&format!("SELECT vigil.verify_rollup('{summary}')")),
                Some(0),
                "{summary}"
            );
            assert_eq!(
                one::<i64>(&format!("SELECT sum(n)::bigint FROM {summary}")),
                one::<i64>("SELECT count(*) FROM nt WHERE ts IS NOT NULL"),
                "{summary}"
            );
        }
        assert_eq!(
            one::<String>(
                "SELECT string_agg(k || ':' || hi, ',' ORDER BY k) FROM nt_max_since('100 years')"
            )
            .as_deref(),
            Some("a:3,b:5")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM nt WHERE ts IS NULL"),
            Some(1)
        );
    }

    #[pg_test]
    fn rollup_stays_exact_under_random_mixed_dml() {
        make_rollup();
        Spi::run("SELECT setseed(0.7)").unwrap();
        let statements = [
            "INSERT INTO events SELECT 'e' || floor(random() * 9), CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 3) END,
                    '2026-11-20 00:00Z'::timestamptz + random() * interval '3 days', (ARRAY['paid','free'])[1 + floor(random() * 2)],
                    round((random() * 100)::numeric, 2), random() * 500 FROM generate_series(1, 1 + floor(random() * 40)::int)",
            "DELETE FROM events WHERE random() < 0.03",
            "UPDATE events SET entity = 'e' || floor(random() * 9) WHERE random() < 0.02",
            "UPDATE events SET ts = ts + interval '90 minutes', amount = amount + 1 WHERE random() < 0.02",
            "UPDATE events SET latency = latency * 2, status = 'paid' WHERE random() < 0.02",
            "DELETE FROM events WHERE latency = (SELECT max(latency) FROM events)",
            "DELETE FROM events WHERE amount = (SELECT min(amount) FROM events WHERE entity = 'e1')",
            "UPDATE events SET grp = NULL WHERE random() < 0.02",
        ];
        for round in 0..40 {
            Spi::run(statements[round % statements.len()]).unwrap();
            if round % 8 == 7 {
                assert_eq!(verify(), 0, "after round {round}");
            }
        }
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            one::<i64>("SELECT count(*) FROM events")
        );
    }

    #[pg_test]
    fn rollup_is_exact_across_subtransaction_rollback_and_truncate() {
        make_rollup();
        // A PL/pgSQL exception block is a subtransaction: its work rolls back.
        Spi::run(
            "DO $$ BEGIN
                 DELETE FROM events WHERE entity = 'e1';
                 INSERT INTO events VALUES ('zz', 1, now(), 'paid', 5, 1);
                 RAISE EXCEPTION 'roll back';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$",
        )
        .unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'zz'"),
            Some(0)
        );
        assert!(one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'e1'").unwrap() > 0);
        Spi::run(
            "DO $$ BEGIN
                 UPDATE events SET entity = 'moved' WHERE entity = 'e2';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$",
        )
        .unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ev_hourly WHERE entity = 'e2'"),
            Some(0)
        );
        Spi::run("TRUNCATE events").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM ev_hourly"), Some(0));
        Spi::run("INSERT INTO events VALUES ('a', NULL, now(), 'paid', 1, 2), ('a', NULL, now(), 'free', 3, 4)").unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT n FROM ev_hourly WHERE entity = 'a' AND grp IS NULL"),
            Some(2)
        );
    }

    #[pg_test]
    fn rollup_filters_that_could_read_a_setting_keep_every_value_pinned() {
        Spi::run(
            "CREATE TABLE fx (ts timestamptz NOT NULL, k text, v int);
             SELECT vigil.create_rollup('fx_plain', 'fx', 'ts', '1 hour', '{k}', '{\"n\": {\"agg\": \"count\"}}');
             SELECT vigil.create_rollup('fx_eq', 'fx', 'ts', '1 hour', '{k}',
                 '{\"paid\": {\"agg\": \"count\", \"filter\": \"k = ''paid'' AND v > 2\"}}');
             SELECT vigil.create_rollup('fx_ts', 'fx', 'ts', '1 hour', '{k}',
                 '{\"run\": {\"agg\": \"count\", \"filter\": \"to_tsvector(k) @@ to_tsquery(''run'')\"}}');
             SELECT vigil.create_rollup('fx_tz', 'fx', 'ts', '1 hour', '{k}',
                 '{\"am\": {\"agg\": \"count\", \"filter\": \"extract(hour from ts) < 12\"}}');",
        )
        .unwrap();
        let immutable = |name: &str| {
            let oid = one::<pg_sys::Oid>(&format!("SELECT '{name}'::regclass::oid")).unwrap();
            crate::rollup::sql::filters_immutable(&crate::rollup::sql::load(oid))
        };
        assert!(immutable("fx_plain"));
        assert!(immutable("fx_eq"));
        assert!(
            !immutable("fx_ts"),
            "to_tsvector(text) reads default_text_search_config"
        );
        assert!(
            !immutable("fx_tz"),
            "extract from timestamptz reads TimeZone"
        );
    }

    /// A writer's `bytea_output` does not move a filter that prints a
    /// bytea (the pin reads the setting's variable): single-row writes
    /// (direct) and multi-row ones count the same rows.
    #[pg_test]
    fn rollup_filters_print_bytea_as_hex_whatever_the_writer_set() {
        Spi::run(
            r#"CREATE TABLE bx (ts timestamptz NOT NULL, k text);
               SELECT vigil.create_rollup('bx_1h', 'bx', 'ts', '1 hour', '{}',
                   '{"n": {"agg": "count"}, "paid": {"agg": "count", "filter": "k::bytea::text = ''\\x70616964''"}}');
               INSERT INTO bx VALUES ('2026-10-20 05:10Z', 'paid'), ('2026-10-20 05:20Z', 'free');
               SET LOCAL bytea_output = escape;"#,
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT 'paid'::bytea::text").as_deref(),
            Some("paid"),
            "the session prints bytea escaped"
        );
        Spi::run("INSERT INTO bx VALUES ('2026-10-20 05:30Z', 'paid')").unwrap();
        Spi::run(
            "INSERT INTO bx VALUES ('2026-10-20 05:40Z', 'paid'), ('2026-10-20 05:50Z', 'free')",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT sum(n) || '/' || sum(paid) FROM bx_1h").as_deref(),
            Some("5/3")
        );
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('bx_1h')"), Some(0));
    }

    #[pg_test]
    fn rollup_stats_removals_leave_no_float_residue() {
        Spi::run(
            "CREATE TABLE lat (ts timestamptz NOT NULL, k text, v float8);
             SELECT vigil.create_rollup('lat_1h', 'lat', 'ts', '1 hour', '{k}',
                 '{\"st\": {\"agg\": \"stats\", \"column\": \"v\"}}');
             INSERT INTO lat VALUES (now(), 'a', 900), (now(), 'a', 1100), (now(), 'a', 900);
             DELETE FROM lat WHERE v = 1100;",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('lat_1h')"), Some(0));
        assert_eq!(
            one::<f64>("SELECT vigil.stddev(vigil.rollup(st)) FROM lat_1h"),
            Some(0.0)
        );
        Spi::run("INSERT INTO lat VALUES (now(), 'a', 700); UPDATE lat SET v = 900 WHERE v = 700")
            .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('lat_1h')"), Some(0));
        assert_eq!(
            one::<f64>("SELECT vigil.stddev(vigil.rollup(st)) FROM lat_1h"),
            Some(0.0)
        );
    }

    #[pg_test]
    fn rollup_slot_reuses_its_own_lock_and_caps_locks_per_transaction() {
        // Called as the rollup trigger's statements call it, for the
        // summary they write.
        let pg_class = one::<pg_sys::Oid>("SELECT 'pg_class'::regclass::oid").unwrap();
        let _writing = super::super::sql::Writing::enter(pg_class);
        let held = || {
            one::<i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 22087 \
                 AND pid = pg_backend_pid()",
            )
            .unwrap()
        };
        let slot = |hash: i32| {
            one::<i32>(&format!(
                "SELECT vigil._rollup_slot('pg_class'::regclass, {hash})"
            ))
        };
        assert_eq!(slot(7), Some(0));
        assert_eq!(slot(7), Some(0), "the group's lock is already ours");
        assert_eq!(held(), 1);
        Spi::run(
            "SELECT vigil._rollup_slot('pg_class'::regclass, g) FROM generate_series(100, 199) g",
        )
        .unwrap();
        assert_eq!(held(), 64, "a bulk statement stops taking slot locks at 64");
        let summary_locks = |mode: &str| {
            one::<i64>(&format!(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 22088 \
                 AND pid = pg_backend_pid() AND mode = '{mode}' AND classid = 'pg_class'::regclass::oid AND objid = 0"
            ))
            .unwrap()
        };
        assert_eq!(
            summary_locks("ShareLock"),
            1,
            "the groups' slot 0 is marked taken once"
        );
        assert_eq!(summary_locks("ExclusiveLock"), 1);
        assert_eq!(
            slot(1000),
            Some(0),
            "further groups share the one slot held for the whole summary"
        );
        assert_eq!(held(), 64);
        assert_eq!(summary_locks("ExclusiveLock"), 1);
    }

    #[pg_test]
    fn rollup_single_row_inserts_match_a_recompute() {
        make_rollup();
        Spi::run("SELECT setseed(0.3)").unwrap();
        // One row per statement takes the non-aggregating upsert: NULLs in
        // every column, filters true, false and NULL.
        for _ in 0..150 {
            Spi::run(
                "INSERT INTO events SELECT 'e' || floor(random() * 4),
                        CASE WHEN random() < 0.3 THEN NULL ELSE floor(random() * 3) END,
                        '2026-11-20 00:00Z'::timestamptz + random() * interval '5 hours',
                        (ARRAY['paid', 'free', NULL])[1 + floor(random() * 3)],
                        CASE WHEN random() < 0.2 THEN NULL ELSE round((random() * 100)::numeric, 2) END,
                        CASE WHEN random() < 0.2 THEN NULL ELSE random() * 500 END",
            )
            .unwrap();
        }
        assert_eq!(verify(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_hourly"),
            one::<i64>("SELECT count(*) FROM events")
        );
    }

    #[pg_test]
    fn rollup_insert_trigger_runs_as_the_owner_with_a_pinned_search_path() {
        make_rollup();
        // A writer with INSERT on the source only keeps the summary current,
        // and an operator on the writer's search_path that would make every
        // comparison true does not reach the filter "status = 'paid'".
        Spi::run(
            "CREATE ROLE vigil_test_writer;
             GRANT USAGE ON SCHEMA public TO vigil_test_writer;
             GRANT INSERT ON events TO vigil_test_writer;
             CREATE SCHEMA evil;
             CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
             GRANT USAGE ON SCHEMA evil TO vigil_test_writer;
             SET LOCAL ROLE vigil_test_writer;
             SET LOCAL search_path = evil, pg_catalog, public;
             INSERT INTO public.events VALUES ('w', 1, '2026-11-21 10:00Z', 'free', 2, 3);
             INSERT INTO public.events VALUES ('w', 1, '2026-11-21 10:05Z', 'paid', 2, 3),
                                              ('w', 1, '2026-11-21 10:10Z', 'free', 2, 3);
             RESET ROLE;
             RESET search_path;",
        )
        .unwrap();
        assert_eq!(
            Spi::get_two::<i64, i64>(
                "SELECT sum(n)::bigint, sum(paid)::bigint FROM ev_hourly WHERE entity = 'w'"
            )
            .unwrap(),
            (Some(3), Some(1))
        );
        assert_eq!(
            one::<String>("SELECT current_user::text"),
            one::<String>("SELECT session_user::text")
        );
        assert_eq!(verify(), 0);
    }

    #[pg_test]
    fn rollup_insert_trigger_refuses_other_tables_and_events() {
        make_rollup();
        Spi::run(
            "CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;
             CREATE TABLE other (LIKE events);
             CREATE TRIGGER t AFTER INSERT ON other REFERENCING NEW TABLE AS vigil_new
                 FOR EACH STATEMENT EXECUTE FUNCTION vigil._rollup_trigger('public.ev_hourly');",
        )
        .unwrap();
        let insert = "SELECT pg_temp.err($$INSERT INTO other VALUES ('x', 1, '2026-11-21 10:00Z', 'paid', 1, 1)$$)";
        let msg = one::<String>(insert).unwrap();
        assert!(
            msg.starts_with("39P01 ") && msg.contains("does not summarize the table"),
            "{msg}"
        );
        Spi::run(
            "DROP TRIGGER t ON other;
             CREATE TRIGGER t AFTER INSERT ON other FOR EACH ROW
                 EXECUTE FUNCTION vigil._rollup_trigger('public.ev_hourly');",
        )
        .unwrap();
        let msg = one::<String>(insert).unwrap();
        assert!(
            msg.starts_with("39P01 ") && msg.contains("FOR EACH STATEMENT"),
            "{msg}"
        );
        assert_eq!(verify(), 0);
    }

    #[pg_test]
    fn dropping_a_summary_needs_cascade_and_leaves_the_sources_writes_working() {
        make_rollup();
        let (code, msg) = sql_error("DROP TABLE ev_hourly");
        assert_eq!(code, "ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST", "{msg}");
        Spi::run("DROP TABLE ev_hourly CASCADE").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.rollup_defs WHERE summary::oid NOT IN (SELECT oid FROM pg_class)"),
            Some(0)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'vigil_rollup_ev_hourly%'"
            ),
            Some(0)
        );
        Spi::run("INSERT INTO events VALUES ('after', 1, '2026-11-21 10:00Z', 'paid', 2, 3); DELETE FROM events WHERE entity = 'after'")
            .unwrap();
    }

    #[pg_test]
    fn rollup_trigger_rechecks_its_kept_plans_after_a_rename_and_a_schema_grant() {
        make_rollup();
        // Plans are kept by this INSERT, then the summary is renamed under
        // them: the next INSERT prepares afresh under the new name.
        Spi::run("INSERT INTO events VALUES ('k', 1, '2026-11-21 10:00Z', 'paid', 2, 3)").unwrap();
        Spi::run("ALTER TABLE ev_hourly RENAME TO ev_kept").unwrap();
        Spi::run(
            "INSERT INTO events VALUES ('k', 1, '2026-11-21 10:02Z', 'free', 2, 3);
             DELETE FROM events WHERE entity = 'k' AND status = 'free';",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT vigil.verify_rollup('ev_kept')"), Some(0));
        // Someone else may now create objects in the summary's schema: the
        // kept plans are refused until that is undone.
        Spi::run(
            "CREATE ROLE vigil_test_squatter; GRANT CREATE ON SCHEMA public TO vigil_test_squatter",
        )
        .unwrap();
        let (code, msg) =
            sql_error("INSERT INTO events VALUES ('k', 1, '2026-11-21 10:03Z', 'paid', 2, 3)");
        assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE", "{msg}");
        assert!(msg.contains("vigil_test_squatter"), "{msg}");
    }

    #[pg_test]
    fn rollup_trigger_finds_a_renamed_summary_by_oid() {
        make_rollup();
        // No INSERT has run in this backend yet: the trigger looks the
        // rollup up afresh, after the rename.
        Spi::run("CREATE SCHEMA moved; ALTER TABLE ev_hourly RENAME TO ev_renamed; ALTER TABLE ev_renamed SET SCHEMA moved")
            .unwrap();
        Spi::run(
            "INSERT INTO events VALUES ('r', 1, '2026-11-21 10:00Z', 'paid', 2, 3), ('r', 1, '2026-11-21 10:01Z', 'free', 2, 3);
             UPDATE events SET amount = amount + 1 WHERE entity = 'r';
             DELETE FROM events WHERE entity = 'r' AND status = 'free';",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT vigil.verify_rollup('moved.ev_renamed')"),
            Some(0)
        );
    }

    #[pg_test]
    fn rebuild_and_drop_rollup() {
        make_rollup();
        // tamper with the summary, see verify notice, rebuild repairs it
        Spi::run("UPDATE ev_hourly SET n = n + 1 WHERE entity = 'e3'").unwrap();
        assert!(verify() > 0);
        let groups = one::<i64>("SELECT vigil.rebuild_rollup('ev_hourly')").unwrap();
        assert_eq!(
            groups,
            one::<i64>("SELECT count(*) FROM ev_hourly").unwrap()
        );
        assert_eq!(verify(), 0);
        Spi::run("SELECT vigil.drop_rollup('ev_hourly')").unwrap();
        assert_eq!(
            one::<bool>(
                "SELECT to_regclass('ev_hourly') IS NULL AND to_regclass('ev_hourly_24h') IS NULL"
            ),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM vigil.rollup_defs"),
            Some(0)
        );
        Spi::run("INSERT INTO events VALUES ('after', 1, now(), 'paid', 1, 1)").unwrap();
    }

    #[pg_test]
    fn rollup_with_hostile_names_is_quoted_everywhere() {
        Spi::run(
            r#"CREATE SCHEMA "odd ""schema";
               CREATE TABLE "odd ""schema"."src; DROP" ("Who ""is""" text, "t s" timestamp, "v-1" float8);
               INSERT INTO "odd ""schema"."src; DROP" VALUES ('a', '2026-01-01 10:00', 1), (NULL, '2026-01-01 10:30', 2), ('a', '2026-01-01 11:00', 3)"#,
        )
        .unwrap();
        Spi::run(
            r#"SELECT vigil.create_rollup('"sum""mary"', '"odd ""schema"."src; DROP"', 't s', '30 minutes',
                   ARRAY['Who "is"']::name[], '{"x; y": {"agg": "sum", "column": "v-1"}, "m": {"agg": "max", "column": "v-1"}}')"#,
        )
        .unwrap();
        assert_eq!(
            one::<i64>(r#"SELECT vigil.verify_rollup('"odd ""schema"."sum""mary"')"#),
            Some(0)
        );
        Spi::run(r#"DELETE FROM "odd ""schema"."src; DROP" WHERE "v-1" = 3"#).unwrap();
        assert_eq!(
            one::<i64>(r#"SELECT vigil.verify_rollup('"odd ""schema"."sum""mary"')"#),
            Some(0)
        );
        assert_eq!(
            one::<f64>(r#"SELECT sum("x; y") FROM "odd ""schema"."sum""mary""#),
            Some(3.0)
        );
    }

    #[pg_test]
    fn deep_json_arguments_are_refused_naming_the_argument_not_as_internal_errors() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        define_err();
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let monitor = one::<String>(&format!(
            "SELECT pg_temp.err($q$SELECT vigil.create_monitor('deep', 'count', 'events', '{{\"thresholds\": {deep}}}')$q$)"
        ))
        .unwrap();
        assert!(monitor.starts_with("22023 options is nested"), "{monitor}");
        let rollup = one::<String>(&format!(
            "SELECT pg_temp.err($q$SELECT vigil.create_rollup('deep_hourly', 'events', 'ts', '1 hour', '{{entity}}', '{{\"n\": {deep}}}')$q$)"
        ))
        .unwrap();
        assert!(rollup.starts_with("22023 measures is nested"), "{rollup}");
        assert_eq!(
            one::<bool>("SELECT to_regclass('deep_hourly') IS NULL"),
            Some(true)
        );
    }

    /// A count/sum rollup over `events` (groups with NULLs) whose single-row
    /// writes can go without SPI (direct.rs).
    fn make_sum_rollup() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(
            r#"SELECT vigil.create_rollup('ev_sums', 'events', 'ts', '1 hour', '{entity,grp}',
                 '{"n": {"agg": "count"}, "paid": {"agg": "count", "filter": "status = ''paid''"},
                   "revenue": {"agg": "sum", "column": "amount", "filter": "status = ''paid''"},
                   "total_latency": {"agg": "sum", "column": "latency"}}')"#,
        )
        .unwrap();
    }

    fn verify_sums() -> i64 {
        one::<i64>("SELECT vigil.verify_rollup('ev_sums')").unwrap()
    }

    /// Runs `sql` and returns how many single-row writes went without SPI.
    fn direct_writes(sql: &str) -> u64 {
        let before = crate::rollup::direct::applied();
        Spi::run(sql).unwrap();
        crate::rollup::direct::applied() - before
    }

    /// The direct write finds a slot row again without the index, from the
    /// root of the HOT chain it last wrote it in, when that chain still
    /// leads to the row's current version with the same key: versions the
    /// upsert, someone else or a rolled-back savepoint wrote in the chain
    /// are found there; a rebuild, an update that is not HOT or a row of
    /// another group send it to the index, and the summary stays exact
    /// throughout.
    #[pg_test]
    fn direct_writes_find_their_slot_rows_again_through_their_hot_chains() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(
            r#"SELECT vigil.create_rollup('ev_cs', 'events', 'ts', '1 hour', '{entity,grp}',
                 '{"n": {"agg": "count"}, "total": {"agg": "sum", "column": "amount"}}')"#,
        )
        .unwrap();
        let verify_cs = || one::<i64>("SELECT vigil.verify_rollup('ev_cs')").unwrap();
        let hits = |sql: &str| {
            let before = crate::rollup::direct::tid_hits();
            let direct = direct_writes(sql);
            (direct, crate::rollup::direct::tid_hits() - before)
        };
        let insert = |grp: &str| {
            format!("INSERT INTO events VALUES ('e1', {grp}, '2026-10-20 05:10Z', 'paid', 2, 1)")
        };
        // The slot row exists (backfill): the first write descends the
        // index, the next ones fetch it where the last one put it.
        assert_eq!(hits(&insert("1")), (1, 0));
        assert_eq!(hits(&insert("1")), (1, 1));
        assert_eq!(hits(&insert("1")), (1, 1));
        // NULL group values are part of the key as well; another group's
        // row is never taken for this one's.
        assert_eq!(hits(&insert("NULL")), (1, 0));
        assert_eq!(hits(&insert("NULL")), (1, 1));
        assert_eq!(hits(&insert("2")), (1, 0));
        // A write through the upsert makes another version, in the same
        // HOT chain: the remembered root leads to it, as the index would.
        Spi::run("SET LOCAL vigil.rollup_direct_write = off").unwrap();
        assert_eq!(hits(&insert("1")), (0, 0));
        Spi::run("SET LOCAL vigil.rollup_direct_write = on").unwrap();
        assert_eq!(hits(&insert("1")), (1, 1));
        // So does an UPDATE of the summary row by someone else (here its
        // owner).
        Spi::run(
            "UPDATE ev_cs SET _rows = _rows WHERE entity = 'e1' AND grp = 1 AND bucket = '2026-10-20 05:00Z'",
        )
        .unwrap();
        assert_eq!(hits(&insert("1")), (1, 1));
        // A version written in a rolled-back subtransaction: the chain
        // leads to the version before it again.
        // SAFETY: begun and rolled back around SPI calls of this backend.
        unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
        assert_eq!(hits(&insert("1")), (1, 1));
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        assert_eq!(hits(&insert("1")), (1, 1));
        assert_eq!(verify_cs(), 0);
        // With an index on a measure no update is HOT: each new version has
        // index entries of its own and the chain from the remembered root
        // ends before it, so every write takes the index, and stays exact.
        Spi::run("CREATE INDEX ev_cs_n ON ev_cs (n)").unwrap();
        for _ in 0..3 {
            assert_eq!(hits(&insert("1")), (1, 0));
        }
        assert_eq!(verify_cs(), 0);
        Spi::run("DROP INDEX ev_cs_n").unwrap();
        assert_eq!(hits(&insert("1")), (1, 0));
        assert_eq!(hits(&insert("1")), (1, 1));
        // An invalidation of the summary (a change of its pg_class row)
        // forgets its roots; the index descent then finds the row's chain
        // in the middle, and what is remembered is still the chain's root
        // (the index entry's tuple id, not the version's), so the next
        // write finds it.
        Spi::run("ALTER TABLE ev_cs SET (autovacuum_enabled = true)").unwrap();
        assert_eq!(hits(&insert("1")), (1, 0));
        assert_eq!(hits(&insert("1")), (1, 1));
        assert_eq!(hits(&insert("1")), (1, 1));
        // A rebuild writes every slot row anew.
        Spi::run("SELECT vigil.rebuild_rollup('ev_cs')").unwrap();
        assert_eq!(hits(&insert("1")), (1, 0));
        assert_eq!(hits(&insert("1")), (1, 1));
        // Differences (an UPDATE keeping its row's group and time) and
        // removals take it too.
        let one_row = "(SELECT min(ctid) FROM events WHERE entity = 'e1' AND grp = 1 AND ts = '2026-10-20 05:10Z')";
        assert_eq!(
            hits(&format!(
                "UPDATE events SET amount = amount + 1 WHERE ctid = {one_row}"
            )),
            (1, 1)
        );
        assert_eq!(
            hits(&format!("DELETE FROM events WHERE ctid = {one_row}")),
            (1, 1)
        );
        assert_eq!(verify_cs(), 0);
        assert_eq!(
            one::<String>(
                "SELECT sum(n) || '/' || sum(total) FROM ev_cs
                 WHERE entity = 'e1' AND grp = 1 AND bucket = '2026-10-20 05:00Z'"
            ),
            one::<String>(
                "SELECT count(*) || '/' || sum(amount) FROM events
                 WHERE entity = 'e1' AND grp = 1 AND ts >= '2026-10-20 05:00Z' AND ts < '2026-10-20 06:00Z'"
            )
        );
    }

    /// A single-row INSERT into a rollup with `min` and `max` measures
    /// keeps the least and greatest directly, as the upsert's LEAST and
    /// GREATEST do: NULLs ignored, text by the column's collation, NaN
    /// above every number; its removals keep the locking path.
    #[pg_test]
    fn single_row_inserts_keep_min_and_max_directly() {
        Spi::run(ROLLUP_SOURCE).unwrap();
        Spi::run(
            r#"ALTER TABLE events ADD COLUMN label text COLLATE "C";
               UPDATE events SET label = CASE WHEN amount > 30 THEN NULL ELSE 'L' || amount END;
               SELECT vigil.create_rollup('ev_ext', 'events', 'ts', '1 hour', '{entity}',
                 '{"n": {"agg": "count"}, "lo": {"agg": "min", "column": "amount"},
                   "hi": {"agg": "max", "column": "latency", "filter": "status = ''paid''"},
                   "first": {"agg": "min", "column": "label"}, "last": {"agg": "max", "column": "label"}}')"#,
        )
        .unwrap();
        let verify_ext = || one::<i64>("SELECT vigil.verify_rollup('ev_ext')").unwrap();
        assert_eq!(verify_ext(), 0);

        let rows = [
            "('e1', '2026-10-20 03:10Z', 'paid', -5, 1e9, 'a')",
            "('e1', '2026-10-20 03:20Z', 'free', NULL, 2e9, NULL)",
            "('e1', '2026-10-20 03:30Z', 'paid', 1000, 'NaN', 'Z')",
            "('e1', '2026-10-20 03:40Z', 'paid', NULL, 5, 'B')",
            "('e2', '2026-10-20 04:10Z', NULL, 0.5, NULL, 'b')",
        ];
        let direct: u64 = rows
            .iter()
            .map(|r| {
                direct_writes(&format!(
                    "INSERT INTO events (entity, ts, status, amount, latency, label) VALUES {r}"
                ))
            })
            .sum();
        assert_eq!(
            direct as usize,
            rows.len(),
            "every slot row existed already"
        );
        assert_eq!(verify_ext(), 0);
        assert_eq!(
            one::<String>(
                "SELECT min(lo) || '/' || max(hi) || '/' || min(first) || '/' || max(last) FROM ev_ext \
                 WHERE entity = 'e1' AND bucket = '2026-10-20 03:00Z'"
            )
            .as_deref(),
            Some("-5/NaN/B/a"),
            "C collation: 'B' < 'L…' < 'a'"
        );
        // Removals of a min/max rollup still lock, fold and repair.
        assert_eq!(
            direct_writes("DELETE FROM events WHERE entity = 'e1' AND amount = -5"),
            0
        );
        assert_eq!(verify_ext(), 0);
        // A NOT NULL the owner set on a min/max column is the upsert's to
        // apply (ON CONFLICT checks the proposed row too).
        Spi::run("ALTER TABLE ev_ext ALTER COLUMN lo SET NOT NULL").unwrap();
        let insert = "INSERT INTO events (entity, ts, status, amount) VALUES ('e1', '2026-10-20 03:45Z', 'paid', 2)";
        assert_eq!(direct_writes(insert), 0);
        Spi::run("ALTER TABLE ev_ext ALTER COLUMN lo DROP NOT NULL").unwrap();
        assert_eq!(direct_writes(insert), 1);
        // A summary column of another type than the rollup made it (the
        // DDL event trigger refuses the change, e2e rollup_ddl; here it is
        // disabled, as a superuser could): the row's value is not of that
        // type, so the upsert (which converts it) writes it, never the
        // direct write.
        Spi::run(
            "DROP FUNCTION ev_ext_since(interval) CASCADE;
             DROP FUNCTION ev_ext_since(interval, boolean) CASCADE;
             ALTER EVENT TRIGGER vigil_rollup_ddl DISABLE;
             ALTER TABLE ev_ext ALTER COLUMN lo TYPE float8;
             ALTER EVENT TRIGGER vigil_rollup_ddl ENABLE",
        )
        .unwrap();
        assert_eq!(
            direct_writes(
                "INSERT INTO events (entity, ts, status, amount) VALUES ('e1', '2026-10-20 03:50Z', 'paid', -7.5)"
            ),
            0
        );
        assert_eq!(
            one::<f64>(
                "SELECT min(lo) FROM ev_ext WHERE entity = 'e1' AND bucket = '2026-10-20 03:00Z'"
            ),
            Some(-7.5)
        );
        // The summary's copies of the column keep its collation, as a min
        // or max and as a group key.
        Spi::run(
            r#"SELECT vigil.create_rollup('ev_lab', 'events', 'ts', '1 hour', '{label}', '{"n": {"agg": "count"}}')"#,
        )
        .unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(c.relname || '.' || a.attname || ':' || co.collname, ',' ORDER BY 1)
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_collation co ON co.oid = a.attcollation
                 WHERE (c.relname, a.attname) IN (('ev_ext', 'first'), ('ev_ext', 'last'), ('ev_lab', 'label'))"
            )
            .as_deref(),
            Some("ev_ext.first:C,ev_ext.last:C,ev_lab.label:C")
        );
    }

    #[pg_test]
    fn single_row_writes_of_a_sum_rollup_update_their_slot_row_directly_and_stay_exact() {
        make_sum_rollup();
        assert_eq!(verify_sums(), 0);
        // The first write of a new bucket inserts its slot row (SPI's
        // ON CONFLICT); the next ones add to it directly.
        let ts = "'2026-11-01 10:15Z'";
        assert_eq!(
            direct_writes(&format!(
                "INSERT INTO events (entity, grp, ts, status, amount, latency) VALUES ('e1', 1, {ts}, 'paid', 2.5, 1)"
            )),
            0
        );
        assert_eq!(
            direct_writes(&format!(
                "INSERT INTO events (entity, grp, ts, status, amount, latency) VALUES ('e1', 1, {ts}, 'free', 4, 2)"
            )),
            1
        );
        // A NULL group column: the slot row is found as the NULLS NOT
        // DISTINCT key stores it, not inserted twice.
        let null_group: u64 = ["paid", "free", "paid"]
            .iter()
            .map(|status| {
                direct_writes(&format!(
                    "INSERT INTO events (entity, grp, ts, status, amount, latency) VALUES (NULL, NULL, {ts}, '{status}', 1.5, NULL)"
                ))
            })
            .sum();
        assert_eq!(null_group, 2);
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM ev_sums WHERE entity IS NULL AND grp IS NULL AND bucket = {ts}::timestamptz - interval '15 minutes'"
            )),
            Some(1)
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT sum(n) || '/' || sum(paid) || '/' || sum(revenue) FROM ev_sums \
                 WHERE entity IS NULL AND grp IS NULL AND bucket = {ts}::timestamptz - interval '15 minutes'"
            ))
            .as_deref(),
            Some("3/2/3.0")
        );
        // Single-row DELETEs and UPDATEs of old rows subtract directly
        // (into this transaction's slot row once it exists).
        let mut direct = 0;
        for _ in 0..5 {
            direct += direct_writes("DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events WHERE entity = 'e3')");
        }
        for _ in 0..5 {
            direct += direct_writes(
                "UPDATE events SET grp = coalesce(grp, 0) + 1, status = 'paid' \
                 WHERE ctid = (SELECT max(ctid) FROM events WHERE entity = 'e4')",
            );
        }
        assert!(direct > 0, "no direct write among the DELETEs and UPDATEs");
        assert_eq!(verify_sums(), 0);
        // An UPDATE that keeps its row's group and time adds the difference
        // of its measures directly: one summary row version, none at all
        // when no measure changed.
        let updates = || {
            one::<i64>(
                "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'ev_sums'::regclass",
            )
            .unwrap()
        };
        let row = "ctid = (SELECT max(ctid) FROM events WHERE entity = 'e5')";
        let before = updates();
        assert_eq!(
            direct_writes(&format!(
                "UPDATE events SET amount = amount + 10, status = 'paid' WHERE {row}"
            )),
            1
        );
        assert_eq!(updates(), before + 1);
        assert_eq!(
            direct_writes(&format!("UPDATE events SET amount = amount WHERE {row}")),
            0
        );
        assert_eq!(updates(), before + 1);
        assert_eq!(verify_sums(), 0);
        // A statement of more rows aggregates through SPI.
        assert_eq!(
            direct_writes(&format!(
                "INSERT INTO events (entity, grp, ts, status, amount, latency) \
                 SELECT 'e1', 1, {ts}, 'paid', g, g FROM generate_series(1, 3) g"
            )),
            0
        );
        // A row without a time adds nothing, directly.
        Spi::run("ALTER TABLE events ALTER COLUMN ts DROP NOT NULL").unwrap();
        assert_eq!(
            direct_writes(
                "INSERT INTO events (entity, grp, ts, status) VALUES ('e1', 1, NULL, 'paid')"
            ),
            0
        );
        assert_eq!(verify_sums(), 0);
        assert_eq!(
            one::<i64>("SELECT sum(n)::bigint FROM ev_sums"),
            one::<i64>("SELECT count(*) FROM events WHERE ts IS NOT NULL")
        );
    }

    #[pg_test]
    fn the_direct_write_keeps_the_summarys_constraints_columns_and_triggers() {
        make_sum_rollup();
        let ts = "'2026-11-02 08:00Z'";
        let insert = format!(
            "INSERT INTO events (entity, grp, ts, status, amount, latency) VALUES ('c1', 7, {ts}, 'paid', 1, 1)"
        );
        Spi::run(&insert).unwrap();
        assert_eq!(direct_writes(&insert), 1);
        // A column added to the source (its rows change shape): what the
        // direct write derived is made again after the DDL.
        Spi::run("ALTER TABLE events ADD COLUMN note text DEFAULT 'kept'").unwrap();
        assert_eq!(direct_writes(&insert), 1);
        // A CHECK the owner put on the summary is the upsert's to apply (ON
        // CONFLICT checks the proposed row as well as the updated one).
        Spi::run("ALTER TABLE ev_sums ADD CONSTRAINT at_most_three CHECK (n <= 3)").unwrap();
        assert_eq!(
            direct_writes(&format!(
                "INSERT INTO events (note, entity, grp, ts, status, amount, latency) VALUES ('x', 'c2', 7, {ts}, 'paid', 1, 1)"
            )),
            0
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT n FROM ev_sums WHERE entity = 'c1' AND bucket = {ts}"
            )),
            Some(3)
        );
        define_err();
        let refused = one::<String>(&format!("SELECT pg_temp.err($q${insert}$q$)")).unwrap();
        assert!(refused.starts_with("23514 "), "{refused}");
        assert!(refused.contains("at_most_three"), "{refused}");
        Spi::run("ALTER TABLE ev_sums DROP CONSTRAINT at_most_three").unwrap();

        // A row trigger on the summary: the write goes through SPI, so the
        // trigger fires as it would for any UPDATE of the summary.
        Spi::run(
            "CREATE TABLE summary_log (n bigint);
             CREATE FUNCTION log_summary() RETURNS trigger LANGUAGE plpgsql AS
               $$BEGIN INSERT INTO public.summary_log VALUES (NEW.n); RETURN NEW; END$$;
             CREATE TRIGGER log_summary AFTER UPDATE ON ev_sums FOR EACH ROW EXECUTE FUNCTION log_summary();",
        )
        .unwrap();
        assert_eq!(direct_writes(&insert), 0);
        assert_eq!(one::<i64>("SELECT max(n) FROM summary_log"), Some(4));
        Spi::run("DROP TRIGGER log_summary ON ev_sums").unwrap();
        assert_eq!(direct_writes(&insert), 1);
        assert_eq!(verify_sums(), 0);
    }

    /// With `vigil.rollup_write_at_commit` (off in this test cluster: a
    /// #[pg_test] never commits), a rollup with min/max/stats/avg/percentile
    /// measures keeps each statement for the commit; what needs the summary
    /// now (verify_rollup, TRUNCATE) applies it first; a subtransaction
    /// rolled back takes along the statements it kept, and what it applied
    /// is kept again. (The commit itself: the e2e
    /// `extreme_rollup_writers_written_at_commit_never_deadlock`.)
    #[pg_test]
    fn rollups_written_at_commit_keep_their_statements_until_needed() {
        make_rollup();
        Spi::run("SET LOCAL vigil.rollup_write_at_commit = on").unwrap();
        let rows = || one::<i64>("SELECT coalesce(sum(_rows), 0)::int8 FROM ev_hourly").unwrap();
        let verify = || one::<i64>("SELECT vigil.verify_rollup('ev_hourly')").unwrap();
        let before = rows();
        assert_eq!(before, 3000);
        Spi::run(
            "INSERT INTO events VALUES ('e1', 1, '2026-10-20 01:10Z', 'paid', 5, 1), ('e9', NULL, '2026-10-20 03:00Z', 'free', 7, 2);
             DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events WHERE entity = 'e2');
             UPDATE events SET latency = 0.25, entity = 'e3' WHERE ctid = (SELECT min(ctid) FROM events WHERE entity = 'e4');
             UPDATE events SET latency = latency / 2 WHERE entity = 'e1' AND grp = 1;
             UPDATE events SET latency = latency / 2, amount = amount + 1 WHERE entity = 'e1' AND grp = 1",
        )
        .unwrap();
        assert_eq!(rows(), before, "kept for the commit, not written yet");
        assert_eq!(verify(), 0, "verify_rollup applies what is kept first");
        assert_eq!(rows(), before + 1);
        // Kept inside a subtransaction rolled back: gone with it.
        // SAFETY: begun and rolled back around SPI calls of this backend.
        unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
        Spi::run("INSERT INTO events VALUES ('e1', 1, '2026-10-20 01:20Z', 'paid', -50, -50)")
            .unwrap();
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        assert_eq!(verify(), 0);
        assert_eq!(rows(), before + 1);
        // Kept at the top, applied inside a subtransaction rolled back:
        // kept again, and applied once.
        Spi::run("INSERT INTO events VALUES ('e5', 2, '2026-10-20 02:20Z', 'refund', 1000, 1000)")
            .unwrap();
        unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
        assert_eq!(verify(), 0);
        assert_eq!(rows(), before + 2);
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        assert_eq!(
            rows(),
            before + 1,
            "the subtransaction's write went with it"
        );
        assert_eq!(verify(), 0);
        assert_eq!(rows(), before + 2);
        assert_eq!(
            one::<f64>("SELECT max(hi) FROM ev_hourly WHERE entity = 'e5'"),
            Some(1000.0)
        );
        // TRUNCATE takes what was kept before it along.
        Spi::run("INSERT INTO events VALUES ('e6', 2, '2026-10-20 02:20Z', 'paid', 1, 1); TRUNCATE events").unwrap();
        assert_eq!(rows(), 0);
        Spi::run("INSERT INTO events VALUES ('e6', 2, '2026-10-20 02:20Z', 'paid', 1, 1)").unwrap();
        assert_eq!(verify(), 0);
        assert_eq!(rows(), 1);
    }

    /// `vigil._rollup_slot` takes slot locks only for the rollup trigger's
    /// statements, of the summary they write: a role calling it itself
    /// would hold locks the commits of rollups written at commit wait for.
    #[pg_test]
    fn rollup_slot_is_the_rollup_triggers_own() {
        let pg_class = one::<pg_sys::Oid>("SELECT 'pg_class'::regclass::oid").unwrap();
        {
            let _writing = super::super::sql::Writing::enter(pg_class);
            assert_eq!(
                one::<i32>("SELECT vigil._rollup_slot('pg_class'::regclass, 1)"),
                Some(0)
            );
        }
        assert_eq!(
            one::<bool>("SELECT vigil._rollup_slot_held('pg_class'::regclass, 1, 5)"),
            Some(true),
            "outside a replay, every slot row may be taken"
        );
        let _writing = super::super::sql::Writing::enter(pg_class);
        let (code, message) = sql_error("SELECT vigil._rollup_slot('pg_attribute'::regclass, 1)");
        assert_eq!(code, "ERRCODE_INSUFFICIENT_PRIVILEGE", "{message}");
    }
}
