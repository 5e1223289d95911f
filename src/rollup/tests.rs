//! Unit tests of rollup definitions and the SQL they generate.

use super::*;
use serde_json::json;

fn types(col: &str) -> Option<ColumnType> {
    let t = |sql: &str, num: bool, float: bool| ColumnType {
        sql: sql.into(),
        integer_or_numeric: num,
        float,
        not_null: false,
        hashable: true,
        orderable: col != "shape",
        collate: None,
    };
    match col {
        "creator_name" | "payment_status" | "we\"ird" => Some(t("text", false, false)),
        "price" => Some(t("numeric", true, false)),
        "response_time_seconds" | "latency_ms" => Some(t("double precision", false, true)),
        "ts" => Some(t("timestamp with time zone", false, false)),
        "shape" => Some(t("point[]", false, false)),
        _ => None,
    }
}

fn parse(m: serde_json::Value) -> Result<Vec<(Measure, Option<ColumnType>)>> {
    parse_measures(&m, types, &["creator_name".to_string()], Names::New)
}

fn err(m: serde_json::Value) -> String {
    parse(m).unwrap_err().message
}

#[test]
fn spec_example_measures_parse() {
    let m = parse(json!({
        "messages": {"agg": "count"},
        "paid": {"agg": "count", "filter": "payment_status = 'paid'"},
        "revenue": {"agg": "sum", "column": "price", "filter": "payment_status = 'paid'"},
        "response": {"agg": "stats", "column": "response_time_seconds"},
        "latency": {"agg": "percentile", "column": "latency_ms", "relative_error": 0.02}
    }))
    .unwrap();
    assert_eq!(m.len(), 6, "five measures and the sum's non-NULL count");
    let n = m.iter().find(|(m, _)| m.name == "_n_revenue").unwrap();
    assert_eq!(n.0.agg, Agg::Count);
    assert_eq!(n.0.counts_for.as_deref(), Some("revenue"));
    assert_eq!(n.0.column.as_deref(), Some("price"));
    assert_eq!(n.0.filter.as_deref(), Some("payment_status = 'paid'"));
    let latency = m.iter().find(|(m, _)| m.name == "latency").unwrap();
    assert_eq!(latency.0.agg, Agg::Percentile);
    assert_eq!(latency.0.relative_error, Some(0.02));
}

#[test]
fn min_and_max_need_an_ordered_type() {
    assert_eq!(
        err(json!({"x": {"agg": "max", "column": "shape"}})),
        "measures.x: agg \"max\" needs a column whose type has an order, \"shape\" is point[]"
    );
    assert!(parse(json!({"x": {"agg": "min", "column": "ts"}})).is_ok());
}

#[test]
fn bad_measures_are_rejected_with_the_measure_named() {
    assert!(err(json!([])).contains("must be a JSON object"));
    assert!(err(json!({})).contains("at least one measure"));
    assert!(err(json!({"x": {"agg": "median"}})).contains("measures.x.agg must be one of"));
    assert!(err(json!({"x": {"agg": "sum"}})).contains("measures.x.column is required"));
    assert!(err(json!({"x": {"agg": "sum", "column": "nope"}})).contains("is not a column"));
    assert!(
        err(json!({"x": {"agg": "sum", "column": "payment_status"}}))
            .contains("needs a numeric column")
    );
    assert!(err(json!({"x": {"agg": "count", "colour": "red"}})).contains("unknown key \"colour\""));
    assert!(err(json!({"x": {"agg": "count", "filter": 3}}))
        .contains("measures.x.filter must be a non-empty string"));
    assert!(err(json!({"bucket": {"agg": "count"}})).contains("clashes"));
    assert!(err(json!({"creator_name": {"agg": "count"}})).contains("clashes"));
    assert!(err(json!({"x": {"agg": "count", "relative_error": 0.1}}))
        .contains("only to agg \"percentile\""));
    assert!(err(
        json!({"x": {"agg": "percentile", "column": "latency_ms", "relative_error": 0.9}})
    )
    .contains("between 0.0001 and 0.5"));
}

fn rollup() -> Rollup {
    Rollup {
        schema: "public".into(),
        name: "hourly \"stats\"".into(),
        source: "\"public\".\"raw_messages\"".into(),
        time_column: "ts".into(),
        time_has_zone: true,
        bucket: "1 hour".into(),
        group_by: vec![("we\"ird".into(), types("we\"ird").unwrap())],
        group_source: vec!["we\"ird".into()],
        measures: parse(json!({
            "n": {"agg": "count"},
            "revenue": {"agg": "sum", "column": "price", "filter": "payment_status = 'paid'"},
            "worst": {"agg": "max", "column": "response_time_seconds"},
            "resp": {"agg": "stats", "column": "response_time_seconds"}
        }))
        .unwrap(),
        definition: "{}".into(),
    }
}

#[test]
fn generated_sql_quotes_every_identifier() {
    let r = rollup();
    let ddl = r.create_table();
    assert!(
        ddl.starts_with("CREATE TABLE \"public\".\"hourly \"\"stats\"\"\" ("),
        "{ddl}"
    );
    assert!(ddl.contains("\"we\"\"ird\" text"), "{ddl}");
    assert!(
        ddl.contains("UNIQUE NULLS NOT DISTINCT (\"we\"\"ird\", \"bucket\", \"_slot\")"),
        "{ddl}"
    );
    let add = r.add_statement("vigil_new", false);
    assert!(
        add.contains("ORDER BY 1, 2 ON CONFLICT (\"we\"\"ird\", \"bucket\", \"_slot\") DO UPDATE"),
        "{add}"
    );
    assert!(
        add.contains("FILTER (WHERE (payment_status = 'paid'))"),
        "{add}"
    );
    assert!(
        add.contains("\"worst\" = GREATEST(s.\"worst\", excluded.\"worst\")"),
        "{add}"
    );
}

#[test]
fn inserts_take_a_free_slot_and_never_wait_for_one() {
    let r = rollup();
    let add = r.add_statement("vigil_new", false);
    assert!(
        add.contains("vigil._rollup_slot('\"public\".\"hourly \"\"stats\"\"\"'::regclass, pg_catalog.hash_record(ROW(d.\"we\"\"ird\")))"),
        "{add}"
    );
    // A group type without a hash function: its text form is hashed.
    let mut unhashable = rollup();
    unhashable.group_by[0].1.hashable = false;
    assert!(
        unhashable
            .add_statement("vigil_new", false)
            .contains("pg_catalog.hashtext(ROW(d.\"we\"\"ird\")::text))"),
        "{add}"
    );
    // one sort, by the group key, outside the aggregate
    assert_eq!(add.matches("ORDER BY").count(), 1, "{add}");
    assert!(add.contains(") d ORDER BY 1, 2 ON CONFLICT"), "{add}");
    // after a removal pass everything goes to slot 0, which the lock holds
    let after = r.add_statement("vigil_new", true);
    assert!(!after.contains("_rollup_slot"), "{after}");
}

#[test]
fn a_single_row_insert_adds_its_own_values_without_aggregating() {
    let r = rollup();
    let one = r.add_row_statement("vigil_new");
    assert!(
        !one.contains("GROUP BY") && !one.contains("ORDER BY"),
        "{one}"
    );
    // a row without a time is in no bucket: no statement counts it
    assert!(
        one.contains(" FROM vigil_new r WHERE r.\"ts\" IS NOT NULL ON CONFLICT"),
        "{one}"
    );
    // count: 1; filtered sum: the value when the filter holds, else 0
    assert!(one.contains(", 1::bigint, 1::bigint, "), "{one}");
    assert!(
        one.contains("coalesce(CASE WHEN (payment_status = 'paid') THEN r.\"price\"::numeric ELSE NULL END, 0)"),
        "{one}"
    );
    // max: the value itself; stats: a summary of the value when not NULL
    assert!(one.contains(", r.\"response_time_seconds\", "), "{one}");
    assert!(
        one.contains("CASE WHEN r.\"response_time_seconds\" IS NOT NULL THEN vigil._stats_of(r.\"response_time_seconds\"::float8) ELSE NULL END"),
        "{one}"
    );
    assert!(
        one.contains("pg_catalog.hash_record(ROW(r.\"we\"\"ird\")))"),
        "{one}"
    );
    // the same columns, in the same order, as the aggregating upsert
    let many = r.add_statement("vigil_new", false);
    let head = |s: &str| s[..s.find(')').unwrap()].to_string();
    assert_eq!(head(&one), head(&many));
    assert_eq!(
        one[one.find(" ON CONFLICT").unwrap()..],
        many[many.find(" ON CONFLICT").unwrap()..]
    );
}

#[test]
fn removals_lock_all_slots_in_order_and_fold_them_into_slot_zero() {
    let r = rollup();
    let lock = r.lock_statement(&["vigil_old", "vigil_new"]);
    assert!(
        lock.ends_with("ORDER BY s.\"we\"\"ird\", s.\"bucket\", s.\"_slot\" FOR UPDATE OF s"),
        "{lock}"
    );
    assert!(lock.contains(" UNION "), "{lock}");
    let collapse = r.collapse_statement(&["vigil_old"]);
    assert!(
        collapse.starts_with("WITH moved AS (DELETE FROM \"public\".\"hourly \"\"stats\"\"\" s"),
        "{collapse}"
    );
    // At commit only the slot rows the transaction holds (pending.rs).
    let held = "vigil._rollup_slot_held('\"public\".\"hourly \"\"stats\"\"\"'::regclass, \
                pg_catalog.hash_record(ROW(s.\"we\"\"ird\")), s.\"_slot\")";
    assert!(
        collapse.contains(&format!("AND s.\"_slot\" > 0 AND {held} RETURNING s.*")),
        "{collapse}"
    );
    assert!(lock.contains(&format!("AND {held} ORDER BY")), "{lock}");
    assert!(collapse.contains("vigil.rollup(r.\"resp\")"), "{collapse}");
    assert!(collapse.contains("max(r.\"worst\")"), "{collapse}");
    let del = r.maintenance_statements("del").join(";\n");
    let lock_at = del.find("FOR UPDATE OF s").unwrap();
    let collapse_at = del.find("WITH moved AS").unwrap();
    assert!(lock_at < collapse_at, "{del}");
}

#[test]
fn removal_marks_extremes_for_repair_and_repairs_only_touched_groups() {
    let r = rollup();
    let rm = r.remove_statement("vigil_old");
    assert!(
        rm.contains("\"worst\" = CASE WHEN excluded.\"worst\" >= s.\"worst\" THEN NULL"),
        "{rm}"
    );
    let repair = r.repair_statements(&["vigil_old"]);
    assert_eq!(repair.len(), 3, "delete empties, repair max, repair stats");
    assert!(repair[0].starts_with("DELETE FROM"));
    assert!(repair
        .iter()
        .any(|r| r.contains("SELECT max(r.\"response_time_seconds\")")));
    assert!(repair
        .iter()
        .any(|r| r.contains("vigil.min_val(s.\"resp\") IS NULL")
            && r.contains("vigil._stats_with_extremes(s.\"resp\"")));
    // every repair works on slot 0 only: another slot's row may be a
    // writer's delta that adds up to no rows
    assert!(repair.iter().all(|r| r.contains("s.\"_slot\" = 0")));
    // nullable group column: index-friendly NULL-safe match
    assert!(repair[0].contains("(s.\"we\"\"ird\" = k.\"we\"\"ird\" OR (s.\"we\"\"ird\" IS NULL AND k.\"we\"\"ird\" IS NULL))"), "{}", repair[0]);
}

#[test]
fn helper_object_names_stay_within_63_bytes() {
    let mut r = rollup();
    r.name = "x".repeat(63);
    let f = r.window_view("24h");
    let unquoted = f.rsplit('.').next().unwrap().trim_matches('"');
    assert!(
        unquoted.len() <= 63 && unquoted.ends_with("_24h"),
        "{unquoted}"
    );
}

#[test]
fn literals_mean_the_same_whatever_standard_conforming_strings_is() {
    assert_eq!(literal("it's"), "'it''s'");
    // A backslash switches to the escape form, doubled: with
    // standard_conforming_strings off, 'g\' would have ended nothing.
    assert_eq!(literal("g\\"), "E'g\\\\'");
    assert_eq!(literal("a\\'; DROP"), "E'a\\\\''; DROP'");
}

#[test]
fn count_and_sum_rollups_remove_by_signed_deltas_into_a_free_slot() {
    let mut r = rollup();
    assert!(
        !r.removals_subtract(),
        "max and stats need the locking path"
    );
    assert!(r.one_row_statements("del").is_empty());
    r.measures
        .retain(|(m, _)| matches!(m.agg, Agg::Count | Agg::Sum));
    assert!(r.removals_subtract());
    let del = r.maintenance_statements("del");
    assert_eq!(del.len(), 1, "{del:?}");
    assert!(!del[0].contains("FOR UPDATE"), "{}", del[0]);
    assert!(del[0].contains("-count(*) AS \"_rows\""), "{}", del[0]);
    assert!(
        del[0].contains("-coalesce(sum(r.\"price\"::numeric) FILTER (WHERE (payment_status = 'paid')), 0) AS \"revenue\""),
        "{}",
        del[0]
    );
    assert!(del[0].contains("vigil._rollup_slot("), "{}", del[0]);
    assert!(del[0].contains("\"revenue\" = s.\"revenue\" + excluded.\"revenue\""));
    // a partition's TRUNCATE comes off the same way, without locks
    let trunc = r.truncate_partition_statements("(SELECT * FROM p)", 1);
    assert_eq!(trunc.len(), 1, "{trunc:?}");
    assert!(!trunc[0].contains("FOR UPDATE"), "{}", trunc[0]);
    assert!(trunc[0].contains("-count(*) AS \"_rows\""), "{}", trunc[0]);
    // an UPDATE is one upsert of each group's net change
    let upd = r.maintenance_statements("upd");
    assert_eq!(upd.len(), 1, "{upd:?}");
    assert!(
        upd[0].contains(
            "FROM vigil_new r WHERE r.\"ts\" IS NOT NULL UNION ALL SELECT r.\"we\"\"ird\", date_bin("
        ),
        "{}",
        upd[0]
    );
    assert!(upd[0].contains("-1::bigint AS \"_rows\""), "{}", upd[0]);
    assert!(
        upd[0].contains(
            "FROM vigil_old r WHERE r.\"ts\" IS NOT NULL) u GROUP BY 1, 2 HAVING sum(u.\"_rows\") <> 0 OR sum(u.\"n\") <> 0"
        ),
        "{}",
        upd[0]
    );
    assert!(!upd[0].contains("FOR UPDATE"), "{}", upd[0]);
    assert_eq!(
        r.one_row_statements("upd").len(),
        2,
        "a row that changes group"
    );
    assert_eq!(r.placing_columns(), ["we\"ird", "ts"]);
    let same = r.same_group_update_statement();
    assert!(
        same.contains("0::bigint, n.m0 - o.m0, n.m1 - o.m1, n.m2 - o.m2, vigil._rollup_slot("),
        "{same}"
    );
    assert!(
        same.contains("FROM vigil_old r WHERE r.\"ts\" IS NOT NULL) o WHERE n.m0 - o.m0 <> 0 OR"),
        "{same}"
    );
    let one = r.one_row_statements("del");
    assert_eq!(one.len(), 1);
    assert!(
        one[0].contains("SELECT r.\"we\"\"ird\", date_bin("),
        "{}",
        one[0]
    );
    assert!(one[0].contains("-1::bigint, -"), "{}", one[0]);
    assert!(!one[0].contains("GROUP BY"), "{}", one[0]);
    // readers: a group whose slot rows add up to no rows is absent
    assert!(r
        .since_function_sql()
        .contains("HAVING pg_catalog.sum(s.\"_rows\") OPERATOR(pg_catalog.>) 0"));
    assert!(r
        .verify_statement()
        .contains("CASE WHEN f.\"_rows\" IS NULL THEN NOT (s.\"_rows\" = 0 AND s.\"n\" = 0 AND s.\"revenue\" = 0 AND s.\"_n_revenue\" = 0)"));
}

#[test]
fn a_sum_reads_null_where_no_value_was_added() {
    let mut r = rollup();
    r.measures.retain(|(m, _)| m.name.ends_with("revenue"));
    let names: Vec<_> = r.measures.iter().map(|(m, _)| m.name.as_str()).collect();
    assert_eq!(names, ["revenue", "_n_revenue"]);
    let table = r.create_table();
    assert!(
        table.contains("\"_n_revenue\" bigint NOT NULL DEFAULT 0"),
        "{table}"
    );
    // adds, removes and folds the count with its sum, like any count
    let one = r.add_row_statement(NEW);
    assert!(
        one.contains("CASE WHEN (payment_status = 'paid') AND r.\"price\" IS NOT NULL THEN 1 ELSE 0 END::bigint"),
        "{one}"
    );
    assert!(one.contains("\"_n_revenue\" = s.\"_n_revenue\" + excluded.\"_n_revenue\""));
    // readers: NULL unless some value was added; not a column of their own
    let since = r.since_function_sql();
    assert!(
        since.contains("CASE WHEN pg_catalog.sum(s.\"_n_revenue\") OPERATOR(pg_catalog.>) 0 THEN pg_catalog.sum(s.\"revenue\") END"),
        "{since}"
    );
    assert!(!since.contains("\"_n_revenue\" bigint"), "{since}");
    // verify compares the counts too (a stored 5 over no values is a difference)
    assert!(r
        .verify_statement()
        .contains("s.\"_n_revenue\" IS DISTINCT FROM f.\"_n_revenue\""));
    assert_eq!(
        r.add_missing_columns().unwrap(),
        "ALTER TABLE \"public\".\"hourly \"\"stats\"\"\" ADD COLUMN \"_n_revenue\" bigint NOT NULL DEFAULT 0"
    );
    // names: a sum's count column must fit and must not be taken
    assert!(err(json!({"_n_x": {"agg": "count"}, "x": {"agg": "sum", "column": "price"}}))
        .contains("measures._n_x: the name clashes with the column that counts the values of sum measure \"x\""));
    let long = "s".repeat(61);
    assert!(
        err(json!({ long.clone(): {"agg": "sum", "column": "price"}})).contains("at most 60 bytes")
    );
    assert!(parse(json!({ long: {"agg": "count"}})).is_ok());
}

#[test]
fn a_distributed_window_function_reads_the_summary_by_oid_with_literals() {
    let r = rollup();
    let f = r.since_function_distributed_sql(4242);
    // PL/pgSQL (Citus plans no parameterized SQL-function query), pinned
    // path, the summary by oid at each call and the values as literals.
    assert!(
        f.contains(
            "LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp"
        ),
        "{f}"
    );
    assert!(
        f.contains("RETURN QUERY EXECUTE pg_catalog.format(''SELECT "),
        "{f}"
    );
    assert!(
        f.contains(", 4242::pg_catalog.oid::pg_catalog.regclass, ''1 hour'', since);"),
        "{f}"
    );
    assert!(f.contains(" FROM %s s WHERE "), "{f}");
    assert!(!f.contains(&r.table()), "the summary is not named: {f}");
    // the same columns, each cast to the declared type (RETURN QUERY
    // needs them exact), and the same empty-group rule as the SQL one
    let plain = r.since_function_sql();
    let columns =
        |s: &str| s[s.find("RETURNS TABLE").unwrap()..s.find(") LANGUAGE").unwrap()].to_string();
    assert_eq!(columns(&f), columns(&plain));
    assert!(
        f.contains("(pg_catalog.sum(s.\"_rows\")::bigint)::bigint"),
        "{f}"
    );
    assert!(
        f.contains("HAVING pg_catalog.sum(s.\"_rows\") OPERATOR(pg_catalog.>) 0"),
        "{f}"
    );
}

#[test]
fn an_exact_window_reads_whole_buckets_from_the_summary_and_the_edge_from_the_source() {
    let r = rollup();
    let f = r.since_exact_function_sql(false);
    assert!(
        f.starts_with("CREATE FUNCTION \"public\".\"hourly \"\"stats\"\"_since\"(since interval, exact boolean) RETURNS TABLE ("),
        "{f}"
    );
    // the same columns as the one-argument form, inlinable (no SET)
    let plain = r.since_function_sql();
    let columns =
        |s: &str| s[s.find("RETURNS TABLE").unwrap()..s.find(") LANGUAGE").unwrap()].to_string();
    assert_eq!(columns(&f), columns(&plain));
    assert!(
        f.contains("LANGUAGE sql STABLE PARALLEL SAFE BEGIN ATOMIC"),
        "{f}"
    );
    let cutoff = "(pg_catalog.now() OPERATOR(pg_catalog.-) since)";
    // whole buckets: those that start after the cutoff
    assert!(
        f.contains(&format!(
            "WHERE exact AND h.\"bucket\" OPERATOR(pg_catalog.>) {cutoff}"
        )),
        "{f}"
    );
    // the edge: the source's rows after the cutoff, before the next bucket,
    // on the bare time column (an index on it serves), aggregated with the
    // measures' own expressions (filters included)
    assert!(
        f.contains(&format!(
            "FROM \"public\".\"raw_messages\" r WHERE exact AND r.\"ts\" OPERATOR(pg_catalog.>) {cutoff} AND r.\"ts\" OPERATOR(pg_catalog.<) (pg_catalog.date_bin('1 hour'::pg_catalog.interval, {cutoff}, "
        )),
        "{f}"
    );
    assert!(
        f.contains("FILTER (WHERE (payment_status = 'paid'))"),
        "{f}"
    );
    assert!(f.contains("vigil.stats_agg("), "{f}");
    // not exact: what the one-argument form reads
    assert!(
        f.contains(&format!("WHERE NOT exact AND h.\"bucket\" OPERATOR(pg_catalog.>=) pg_catalog.date_bin('1 hour'::pg_catalog.interval, {cutoff}, ")),
        "{f}"
    );
    // merged like slot rows, empty groups left out
    assert!(
        f.contains("HAVING pg_catalog.sum(s.\"_rows\") OPERATOR(pg_catalog.>) 0"),
        "{f}"
    );
    // filters that are not immutable: evaluated with the triggers' pins
    let pinned = r.since_exact_function_sql(true);
    assert!(
        pinned.contains("PARALLEL SAFE SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' "),
        "{pinned}"
    );
    assert!(
        pinned.contains("SET default_text_search_config = 'pg_catalog.simple' BEGIN ATOMIC"),
        "{pinned}"
    );
    // a timestamp column holds UTC: the bounds are converted, not the column
    let mut naive = rollup();
    naive.time_has_zone = false;
    let f = naive.since_exact_function_sql(false);
    assert!(
        f.contains(&format!(
            "r.\"ts\" OPERATOR(pg_catalog.>) ({cutoff} AT TIME ZONE 'UTC')"
        )),
        "{f}"
    );
}

#[test]
fn a_distributed_exact_window_names_summary_and_source_by_oid() {
    let r = rollup();
    let f = r.since_exact_function_distributed_sql(None, 4242, 4343, false);
    assert!(
        f.contains(
            "LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS"
        ),
        "{f}"
    );
    assert!(
        f.contains(", 4242::pg_catalog.oid::pg_catalog.regclass, 4343::pg_catalog.oid::pg_catalog.regclass, since, exact);"),
        "{f}"
    );
    assert!(
        f.contains("FROM %2$s r WHERE %4$L::pg_catalog.bool AND"),
        "{f}"
    );
    assert!(
        f.contains("FROM %1$s h WHERE NOT %4$L::pg_catalog.bool"),
        "{f}"
    );
    assert!(
        f.contains("(pg_catalog.now() OPERATOR(pg_catalog.-) %3$L::pg_catalog.interval)"),
        "{f}"
    );
    assert!(!f.contains(&r.table()) && !f.contains(&r.source), "{f}");
    assert!(!f.contains('\u{1}'), "{f}");
    // a filter's own % is doubled, so format() leaves it alone
    let mut like = rollup();
    like.measures =
        parse(json!({"n": {"agg": "count", "filter": "payment_status LIKE 'p%'"}})).unwrap();
    let f = like.since_exact_function_distributed_sql(Some("\"s\".\"old_since\""), 1, 2, true);
    assert!(f.contains("LIKE ''''p%%''''"), "{f}");
    // after DDL on the source it replaces the function it has, by name
    assert!(
        f.starts_with(
            "CREATE OR REPLACE FUNCTION \"s\".\"old_since\"(since interval, exact boolean)"
        ),
        "{f}"
    );
    assert!(
        f.contains("SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'"),
        "{f}"
    );
}

#[test]
fn a_summary_vouches_for_its_definition_source_and_trigger_names_by_digest() {
    let mut r = rollup();
    r.definition = r#"{"bucket":"1 hour","measures":{"n":{"agg":"count"}}}"#.into();
    let sql = super::definition::add_statement(&r, None);
    let name = super::definition::name_for(
        r#"{"measures": {"n": {"agg": "count"}}, "bucket": "1 hour"}"#,
        &r.source,
        "vigil_rollup_hourly \"stats\"",
    )
    .unwrap();
    assert_eq!(name.len(), "vigil_rollup_".len() + 32);
    // the same definition however it is spaced or ordered
    assert_eq!(
        sql,
        format!(
            "ALTER TABLE \"public\".\"hourly \"\"stats\"\"\" ADD CONSTRAINT \"{name}\" CHECK (true)"
        )
    );
    // another definition, source or trigger name: another digest
    let other = |d: &str, s: &str, b: &str| super::definition::name_for(d, s, b).unwrap();
    assert_ne!(
        other(
            r#"{"bucket":"1 minute","measures":{"n":{"agg":"count"}}}"#,
            &r.source,
            "vigil_rollup_hourly \"stats\""
        ),
        name
    );
    assert_ne!(
        other(
            &r.definition,
            "\"public\".\"other\"",
            "vigil_rollup_hourly \"stats\""
        ),
        name
    );
    assert_ne!(other(&r.definition, &r.source, "aaa_forged"), name);
    assert!(super::definition::name_for("not json", &r.source, "b").is_none());
    assert_ne!(
        super::definition::add_statement(&r, Some(102008)),
        sql,
        "a distributed source is its first shard"
    );
}
