//! SQL surface of rollups: `create_rollup`, `verify_rollup`,
//! `rebuild_rollup`, `drop_rollup`. Reads the catalogs, validates, and runs
//! the statements `mod.rs` writes, all inside the caller's transaction, so an
//! error leaves nothing behind.

use super::{ident, literal, parse_measures, ColumnType, Rollup};
use crate::error::{ErrorKind, VigilError};
use crate::sqlglue::{raise, OrRaise};
use pgrx::prelude::*;
use pgrx::JsonB;
use std::collections::HashMap;

const TIMESTAMPTZOID: u32 = 1184;
const TIMESTAMPOID: u32 = 1114;
const FLOAT4OID: u32 = 700;
const FLOAT8OID: u32 = 701;

fn spi_run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| raise(VigilError::invalid(format!("{e}: {sql}"))));
}

/// (schema, name) of a relation, or an error naming `what`.
fn relation_name(oid: pg_sys::Oid, what: &str) -> (String, String) {
    let oid = oid.to_u32();
    Spi::get_two::<String, String>(&format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = {oid} AND c.relkind IN ('r', 'p')"
    ))
    .ok()
    .and_then(|(s, n)| Some((s?, n?)))
    .unwrap_or_else(|| {
        raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!("{what} must be an ordinary or partitioned table (oid {oid})"),
        ))
    })
}

/// Column name → (type, type oid) of a table's live columns.
fn columns(oid: pg_sys::Oid) -> HashMap<String, (ColumnType, u32)> {
    let sql = format!(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                t.typcategory::text, a.atttypid::oid::bigint, a.attnotnull \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped",
        oid.to_u32()
    );
    Spi::connect(|client| {
        let rows = client.select(&sql, None, &[]).unwrap();
        rows.map(|row| {
            let name: String = row.get(1).unwrap().unwrap();
            let sql_type: String = row.get(2).unwrap().unwrap();
            let category: String = row.get(3).unwrap().unwrap();
            let type_oid = row.get::<i64>(4).unwrap().unwrap() as u32;
            let not_null: bool = row.get(5).unwrap().unwrap();
            let float = type_oid == FLOAT4OID || type_oid == FLOAT8OID;
            let col = ColumnType {
                sql: sql_type,
                integer_or_numeric: category == "N" && !float,
                float,
                not_null,
            };
            (name, (col, type_oid))
        })
        .collect()
    })
}

fn interval_text(bucket: &Interval) -> String {
    if bucket.months() != 0 {
        raise(VigilError::invalid(
            "bucket must be a fixed length (days, hours, minutes, seconds), not months or years",
        ));
    }
    let micros = i128::from(bucket.days()) * 86_400_000_000 + i128::from(bucket.micros());
    if micros <= 0 {
        raise(VigilError::invalid(format!(
            "bucket must be longer than zero, got {micros} microseconds"
        )));
    }
    format!("{} days {} microseconds", bucket.days(), bucket.micros())
}

/// Builds and validates the definition (filters: `check_filter_compiles`); nothing is created yet.
fn define(
    schema: String,
    name: String,
    source: pg_sys::Oid,
    time_column: &str,
    bucket: String,
    group_by: &[String],
    measures: &serde_json::Value,
) -> Rollup {
    let (src_schema, src_name) = relation_name(source, "source");
    let cols = columns(source);
    match cols.get(time_column) {
        None => raise(VigilError::new(
            ErrorKind::UndefinedColumn,
            format!("time_column \"{time_column}\" is not a column of {src_schema}.{src_name}"),
        )),
        Some((_, oid)) if *oid != TIMESTAMPTZOID && *oid != TIMESTAMPOID => {
            raise(VigilError::invalid(format!(
                "time_column \"{time_column}\" must be timestamptz or timestamp, it is {}",
                cols[time_column].0.sql
            )))
        }
        Some(_) => {}
    }
    let mut group = Vec::new();
    for g in group_by {
        let (t, _) = cols.get(g).unwrap_or_else(|| {
            raise(VigilError::new(
                ErrorKind::UndefinedColumn,
                format!("group_by column \"{g}\" is not a column of {src_schema}.{src_name}"),
            ))
        });
        if group.iter().any(|(n, _): &(String, ColumnType)| n == g) {
            raise(VigilError::invalid(format!("group_by lists \"{g}\" twice")));
        }
        if super::RESERVED.contains(&g.as_str()) {
            raise(VigilError::invalid(format!(
                "group_by column \"{g}\" clashes with a reserved summary column (bucket, _rows, _slot)"
            )));
        }
        group.push((g.clone(), t.clone()));
    }
    let parsed =
        parse_measures(measures, |c| cols.get(c).map(|(t, _)| t.clone()), group_by).or_raise();
    Rollup {
        schema,
        name,
        source: format!("{}.{}", ident(&src_schema), ident(&src_name)),
        time_column: time_column.to_string(),
        time_has_zone: cols[time_column].1 == TIMESTAMPTZOID,
        bucket,
        group_by: group,
        measures: parsed,
    }
}

/// Has PostgreSQL parse the filter as a boolean over the source's columns.
fn check_filter_compiles(source: &str, measure: &str, filter: &str) {
    let sql = format!("SELECT ({filter})::boolean FROM {source} WHERE false");
    let name = measure.to_string();
    PgTryBuilder::new(|| Spi::run(&sql).map_err(|e| e.to_string()))
        .catch_others(move |e| {
            let detail = match e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
                pg_sys::panic::CaughtError::RustPanic { ereport, .. } => {
                    ereport.message().to_string()
                }
            };
            raise(VigilError::invalid(format!(
                "measures.{name}.filter is not a boolean expression over the source table: {detail}"
            )))
        })
        .execute()
        .unwrap_or_else(|e| {
            raise(VigilError::invalid(format!(
                "measures.{measure}.filter is not a boolean expression over the source table: {e}"
            )))
        });
}

/// Creates the summary table `name`, the triggers that keep it exact, the
/// window function and views, backfills it, and registers it.
#[pg_extern(volatile, parallel_unsafe, name = "_create_rollup")]
fn create_rollup(
    name: &str,
    source: pg_sys::Oid,
    time_column: &str,
    bucket: Interval,
    group_by: Vec<String>,
    measures: JsonB,
) -> pg_sys::Oid {
    let parts =
        Spi::get_one::<Vec<String>>(&format!("SELECT pg_catalog.parse_ident({})", literal(name)))
            .ok()
            .flatten()
            .unwrap_or_default();
    let (src_schema, _) = relation_name(source, "source");
    let (schema, table) = match parts.as_slice() {
        [t] => (src_schema, t.clone()),
        [s, t] => (s.clone(), t.clone()),
        _ => raise(VigilError::invalid(format!(
            "name must be a table name, optionally schema-qualified, got \"{name}\""
        ))),
    };
    let exists = Spi::get_one::<bool>(&format!(
        "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
        literal(&format!("{}.{}", ident(&schema), ident(&table)))
    ))
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        raise(VigilError::new(
            ErrorKind::DuplicateTable,
            format!("name: relation {schema}.{table} already exists"),
        ));
    }
    let bucket_text = interval_text(&bucket);
    let r = define(
        schema,
        table,
        source,
        time_column,
        bucket_text,
        &group_by,
        &measures.0,
    );
    for (m, _) in &r.measures {
        if let Some(f) = &m.filter {
            check_filter_compiles(&r.source, &m.name, f);
        }
    }

    spi_run(&r.create_table());
    if !r.group_by.is_empty() {
        spi_run(&r.bucket_index());
    }
    for (_, f) in r.trigger_functions() {
        spi_run(&f);
    }
    // Creating the triggers takes a lock that blocks writers to the source
    // until we commit, so the backfill below sees every row exactly once.
    for t in r.triggers() {
        spi_run(&t);
    }
    spi_run(&r.backfill_statement());
    spi_run(&r.since_function_sql());
    for v in r.window_views() {
        spi_run(&v);
    }
    let group_array = if group_by.is_empty() {
        "'{}'::name[]".to_string()
    } else {
        format!(
            "ARRAY[{}]::name[]",
            group_by
                .iter()
                .map(|g| literal(g))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    spi_run(&format!(
        "INSERT INTO vigil.rollup_defs (summary, source, time_column, bucket, group_by, measures) \
         VALUES ({}::regclass, {}, {}, {}::interval, {group_array}, {}::jsonb)",
        literal(&r.table()),
        source.to_u32(),
        literal(time_column),
        literal(&r.bucket),
        literal(&measures.0.to_string()),
    ));
    Spi::get_one::<pg_sys::Oid>(&format!("SELECT {}::regclass::oid", literal(&r.table())))
        .ok()
        .flatten()
        .expect("just created")
}

/// The definition of a registered rollup. Reading it runs no user SQL: the
/// filters were checked by `create_rollup` and are only spliced here.
pub(super) fn load(summary: pg_sys::Oid) -> Rollup {
    let row = Spi::get_three::<pg_sys::Oid, String, String>(&format!(
        "SELECT source::oid, time_column::text, bucket::text FROM vigil.rollup_defs WHERE summary = {}",
        summary.to_u32()
    ))
    .ok();
    let (source, time_column, bucket) = match row {
        Some((Some(s), Some(t), Some(b))) => (s, t, b),
        _ => raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!(
                "name: relation with oid {} is not a pg_vigil rollup",
                summary.to_u32()
            ),
        )),
    };
    let group_by = Spi::get_one::<Vec<String>>(&format!(
        "SELECT group_by::text[] FROM vigil.rollup_defs WHERE summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_default();
    let measures = Spi::get_one::<JsonB>(&format!(
        "SELECT measures FROM vigil.rollup_defs WHERE summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .expect("measures are NOT NULL");
    let (schema, name) = relation_name(summary, "name");
    define(
        schema,
        name,
        source,
        &time_column,
        bucket,
        &group_by,
        &measures.0,
    )
}

/// Number of groups that differ from a full recompute (0 when exact).
#[pg_extern(volatile, parallel_unsafe, name = "_verify_rollup")]
fn verify_rollup(name: pg_sys::Oid) -> i64 {
    let r = load(name);
    Spi::get_one::<i64>(&r.verify_statement())
        .unwrap_or_else(|e| raise(VigilError::invalid(e.to_string())))
        .unwrap_or(0)
}

/// Recomputes the summary from the source; blocks writers meanwhile.
/// Returns the number of groups.
#[pg_extern(volatile, parallel_unsafe, name = "_rebuild_rollup")]
fn rebuild_rollup(name: pg_sys::Oid) -> i64 {
    let r = load(name);
    spi_run(&format!("LOCK TABLE {} IN SHARE MODE", r.source));
    spi_run(&format!("DELETE FROM {}", r.table()));
    spi_run(&r.backfill_statement());
    Spi::get_one::<i64>(&format!("SELECT count(*) FROM {}", r.table()))
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Drops the summary, its triggers, functions and views.
#[pg_extern(volatile, parallel_unsafe, name = "_drop_rollup")]
fn drop_rollup(name: pg_sys::Oid) {
    let r = load(name);
    for label in ["1h", "24h", "7d"] {
        spi_run(&format!("DROP VIEW IF EXISTS {}", r.window_view(label)));
    }
    spi_run(&format!(
        "DROP FUNCTION IF EXISTS {}(interval)",
        r.since_function()
    ));
    spi_run(&format!(
        "DROP TRIGGER IF EXISTS {} ON {}",
        r.trigger_name("ins"),
        r.source
    ));
    // Dropping the trigger functions drops the triggers that use them.
    for (op, _) in r.trigger_functions() {
        spi_run(&format!(
            "DROP FUNCTION IF EXISTS {}() CASCADE",
            r.trigger_function(op)
        ));
    }
    spi_run(&format!(
        "DELETE FROM vigil.rollup_defs WHERE summary = {}",
        name.to_u32()
    ));
    spi_run(&format!("DROP TABLE {}", r.table()));
}

/// Slot locks one transaction may take; past it, groups go to slot 0 (an
/// ordinary upsert that waits its turn), so a bulk statement cannot fill
/// the shared lock table.
const SLOT_LOCKS_PER_XACT: u32 = 64;
/// Tries per group before falling back to slot 0.
const SLOT_TRIES: u32 = 256;
/// `locktag_field4` of vigil's slot locks; user advisory locks use 1 and 2.
const SLOT_LOCK_SPACE: u16 = 0x5647;

thread_local! {
    /// (local transaction id, slot locks it took)
    static SLOT_LOCKS: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

fn local_xact_id() -> u32 {
    // SAFETY: MyProc is set for every backend that can run SQL.
    unsafe {
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        {
            (*pg_sys::MyProc).lxid
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16")))]
        {
            (*pg_sys::MyProc).vxid.lxid
        }
    }
}

/// The slot row of group `key_hash` of rollup `summary` this transaction
/// writes: the first slot whose transaction-scoped advisory lock is free or
/// already ours. Taking it never waits, and while this transaction holds it
/// no other inserter picks that slot row, so hot groups spread over slot
/// rows instead of queueing on one row lock until commit. Hash collisions
/// between groups only spread a group further; correctness never depends on
/// the choice, as a group is the sum of its slot rows.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_rollup_slot")]
fn rollup_slot(summary: pg_sys::Oid, key_hash: i32) -> i32 {
    let lxid = local_xact_id();
    let (xact, mut used) = SLOT_LOCKS.with(|c| c.get());
    if xact != lxid {
        used = 0;
    }
    let mut chosen = 0;
    for slot in 0..SLOT_TRIES {
        if used >= SLOT_LOCKS_PER_XACT {
            break;
        }
        let tag = pg_sys::LOCKTAG {
            // SAFETY: set once the backend is connected to a database.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            locktag_field2: summary.to_u32(),
            locktag_field3: (key_hash as u32).wrapping_add(slot),
            locktag_field4: SLOT_LOCK_SPACE,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        // SAFETY: a valid tag; dontWait makes this return at once.
        let got = unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false, true)
        };
        match got {
            pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => continue,
            pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_HELD
            | pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_CLEAR => {}
            _ => used += 1,
        }
        chosen = slot as i32;
        break;
    }
    SLOT_LOCKS.with(|c| c.set((lxid, used)));
    chosen
}
