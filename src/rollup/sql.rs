//! SQL surface of rollups: `create_rollup`, `verify_rollup`,
//! `rebuild_rollup`, `drop_rollup`. Reads the catalogs, validates, and runs
//! the statements `mod.rs` writes, all inside the caller's transaction, so an
//! error leaves nothing behind.

use super::{ident, literal, parse_measures, ColumnType, Rollup};
use crate::error::{ErrorKind, VigilError};
use crate::security::{extension_owner, has_privs_of_role, role_name, Restricted};
use crate::sqlglue::{raise, OrRaise};
use pgrx::prelude::*;
use pgrx::JsonB;
use std::collections::HashMap;

const TIMESTAMPTZOID: u32 = 1184;
const TIMESTAMPOID: u32 = 1114;
const FLOAT4OID: u32 = 700;
const FLOAT8OID: u32 = 701;

pub(super) fn spi_run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| raise(VigilError::invalid(format!("{e}: {sql}"))));
}

/// (schema, name) of a relation, or an error naming `what`.
pub(super) fn relation_name(oid: pg_sys::Oid, what: &str) -> (String, String) {
    let oid = oid.to_u32();
    crate::sqlglue::read_two::<String, String>(&format!(
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

/// Column name → (type, type oid) of a table's live columns. A domain
/// column is described by its base type: the summary stores base types, so
/// no domain CHECK (code its owner controls) runs when the summary is
/// written.
fn columns(oid: pg_sys::Oid) -> HashMap<String, (ColumnType, u32)> {
    let sql = format!(
        "SELECT a.attname::text, a.atttypid::oid::bigint, a.atttypmod, a.attnotnull, a.attcollation::oid::bigint, \
                (SELECT pg_catalog.format('%I.%I', n.nspname, c.collname) FROM pg_catalog.pg_collation c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace WHERE c.oid = a.attcollation) \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped",
        oid.to_u32()
    );
    type Raw = (String, u32, i32, bool, (u32, Option<String>));
    let raw: Vec<Raw> = Spi::connect(|client| {
        let rows = client.select(&sql, None, &[]).unwrap();
        rows.map(|row| {
            (
                row.get::<String>(1).unwrap().unwrap(),
                row.get::<i64>(2).unwrap().unwrap() as u32,
                row.get::<i32>(3).unwrap().unwrap(),
                row.get::<bool>(4).unwrap().unwrap(),
                (
                    row.get::<i64>(5).unwrap().unwrap() as u32,
                    row.get::<String>(6).unwrap(),
                ),
            )
        })
        .collect()
    });
    raw.into_iter()
        .map(
            |(name, type_oid, typmod, not_null, (collation, collation_name))| {
                let mut typmod = typmod;
                // SAFETY: catalog lookups; format_type_with_typemod returns a
                // palloc'd C string that qualifies names not on the search path.
                let (base, sql_type, category, hashable, orderable, collate) = unsafe {
                    let base =
                        pg_sys::getBaseTypeAndTypmod(pg_sys::Oid::from(type_oid), &mut typmod);
                    let text = pg_sys::format_type_with_typemod(base, typmod);
                    let sql_type = std::ffi::CStr::from_ptr(text)
                        .to_string_lossy()
                        .into_owned();
                    let mut category: std::ffi::c_char = 0;
                    let mut preferred = false;
                    pg_sys::get_type_category_preferred(base, &mut category, &mut preferred);
                    let cache = pg_sys::lookup_type_cache(
                        base,
                        (pg_sys::TYPECACHE_HASH_PROC | pg_sys::TYPECACHE_CMP_PROC) as i32,
                    );
                    let hashable = (*cache).hash_proc != pg_sys::InvalidOid;
                    let orderable = (*cache).cmp_proc != pg_sys::InvalidOid;
                    // The base type's default collation: a domain's or the
                    // column's own COLLATE is kept by name.
                    let default_collation = pg_sys::get_typcollation(base).to_u32();
                    let collate = (collation != 0 && collation != default_collation)
                        .then_some(collation_name)
                        .flatten();
                    (
                        base.to_u32(),
                        sql_type,
                        category as u8,
                        hashable,
                        orderable,
                        collate,
                    )
                };
                let float = base == FLOAT4OID || base == FLOAT8OID;
                let col = ColumnType {
                    sql: sql_type,
                    integer_or_numeric: category == b'N' && !float,
                    float,
                    not_null,
                    hashable,
                    orderable,
                    collate,
                };
                (name, (col, base))
            },
        )
        .collect()
}

pub(super) fn interval_text(bucket: &Interval) -> String {
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

/// Builds and validates the definition (filters: `check_filter`); nothing is created yet.
// Every argument is one field of the stored definition.
#[allow(clippy::too_many_arguments)]
pub(super) fn define(
    schema: String,
    name: String,
    source: pg_sys::Oid,
    time_column: &str,
    bucket: String,
    group_by: &[String],
    group_source: &[String],
    measures: &serde_json::Value,
    names: super::Names,
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
    for (g, src) in group_by.iter().zip(group_source) {
        let (t, _) = cols.get(src).unwrap_or_else(|| {
            raise(VigilError::new(
                ErrorKind::UndefinedColumn,
                format!("group_by column \"{src}\" is not a column of {src_schema}.{src_name}"),
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
    let parsed = parse_measures(
        measures,
        |c| cols.get(c).map(|(t, _)| t.clone()),
        group_by,
        names,
    )
    .or_raise();
    if group_source.len() != group_by.len() {
        raise(VigilError::invalid(format!(
            "rollup {schema}.{name}: group_source and group_by differ in length"
        )));
    }
    let mut r = Rollup {
        schema,
        name,
        source: format!("{}.{}", ident(&src_schema), ident(&src_name)),
        time_column: time_column.to_string(),
        time_has_zone: cols[time_column].1 == TIMESTAMPTZOID,
        bucket,
        group_by: group,
        group_source: group_source.to_vec(),
        measures: parsed,
        definition: String::new(),
    };
    r.definition = r.definition_json(measures);
    r
}

pub(super) fn list_cells(list: *mut pg_sys::List) -> Vec<*mut std::ffi::c_void> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid List (PostgreSQL 13+ lists are arrays of cells).
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value)
            .collect()
    }
}

/// Why the raw parse tree of `SELECT (<filter>)` is not exactly one
/// expression in one target, if it is not.
fn not_one_expression(filter: &str) -> Option<String> {
    let sql = std::ffi::CString::new(format!("SELECT ({filter})")).ok()?;
    // SAFETY: raw_parser only reads the string; it raises on a syntax error.
    let stmts = list_cells(unsafe {
        pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT)
    });
    if stmts.len() != 1 {
        return Some(format!("is {} statements, not one expression", stmts.len()));
    }
    // SAFETY: raw_parser returns a list of RawStmt nodes.
    unsafe {
        let raw = stmts[0] as *mut pg_sys::RawStmt;
        let node = (*raw).stmt;
        if (*node).type_ != pg_sys::NodeTag::T_SelectStmt {
            return Some("is not an expression".into());
        }
        let sel = node as *mut pg_sys::SelectStmt;
        let s = &*sel;
        let extra = !s.fromClause.is_null()
            || !s.whereClause.is_null()
            || !s.groupClause.is_null()
            || !s.havingClause.is_null()
            || !s.windowClause.is_null()
            || !s.valuesLists.is_null()
            || !s.sortClause.is_null()
            || !s.limitOffset.is_null()
            || !s.limitCount.is_null()
            || !s.lockingClause.is_null()
            || !s.withClause.is_null()
            || !s.distinctClause.is_null()
            || !s.intoClause.is_null()
            || s.op != pg_sys::SetOperation::SETOP_NONE;
        let targets = list_cells(s.targetList);
        if extra || targets.len() != 1 || !(*(targets[0] as *mut pg_sys::ResTarget)).name.is_null()
        {
            return Some("must be one boolean expression, not a query".into());
        }
    }
    None
}

/// Checks a measure's filter with PostgreSQL's own parser and analyzer:
/// exactly one expression (no statements, no sub-selects, no aggregate,
/// window or set-returning function) that is boolean over the source's
/// columns. The caller runs this as the rollup's owner.
pub(super) fn check_filter(source: &str, measure: &str, filter: &str) {
    let name = measure.to_string();
    let invalid = move |why: String| -> ! {
        raise(VigilError::invalid(format!("measures.{name}.filter {why}")))
    };
    let text = filter.to_string();
    let shape = crate::security::catching(|| not_one_expression(&text)).unwrap_or_else(|e| {
        Some(format!(
            "is not a boolean expression over the source table: {e}"
        ))
    });
    if let Some(why) = shape {
        invalid(why);
    }
    if super::ddl::unicode_escaped_column(filter) {
        invalid(
            "spells a column as a Unicode-escape identifier (U&\"...\"): write its name plainly or double-quoted, so that renames can follow it".into(),
        );
    }
    if let Some(r) = super::ddl::qualified_reference(filter) {
        invalid(format!(
            "names a column with its table ({r}): name columns alone, so the filter survives renaming or moving the table"
        ));
    }
    let sql = format!("SELECT ({filter})::boolean FROM {source} WHERE false");
    let analyzed = crate::security::catching(|| {
        let c = std::ffi::CString::new(sql.as_str()).expect("no NUL");
        // SAFETY: prepare only (nothing runs); the plan is freed below.
        unsafe {
            pg_sys::SPI_connect();
            let plan = pg_sys::SPI_prepare(c.as_ptr(), 0, std::ptr::null_mut());
            let mut why = None;
            if plan.is_null() {
                why = Some("is not a boolean expression over the source table".to_string());
            } else {
                for src in list_cells(pg_sys::SPI_plan_get_plan_sources(plan)) {
                    let src = src as *mut pg_sys::CachedPlanSource;
                    for q in list_cells((*src).query_list) {
                        let q = &*(q as *mut pg_sys::Query);
                        if q.hasSubLinks {
                            why = Some("must not contain a sub-select".into());
                        } else if q.hasAggs || q.hasWindowFuncs || q.hasTargetSRFs {
                            why = Some(
                                "must not call an aggregate, window or set-returning function"
                                    .into(),
                            );
                        }
                    }
                }
                pg_sys::SPI_freeplan(plan);
            }
            pg_sys::SPI_finish();
            why
        }
    })
    .unwrap_or_else(|e| {
        Some(format!(
            "is not a boolean expression over the source table: {e}"
        ))
    });
    if let Some(why) = analyzed {
        invalid(why);
    }
}

/// Whether every filter of `r` calls only immutable functions and
/// operators (PostgreSQL's `contain_mutable_functions`, as for an index
/// expression): none can then depend on a setting such as
/// `default_text_search_config`. Prepares (never runs) one SELECT of them,
/// as the caller; false when there is any doubt.
pub(crate) fn filters_immutable(r: &Rollup) -> bool {
    let filters: Vec<String> = r
        .measures
        .iter()
        .filter_map(|(m, _)| m.filter.as_ref().map(|f| format!("({f})::boolean")))
        .collect();
    if filters.is_empty() {
        return true;
    }
    let sql = format!(
        "SELECT {} FROM {} r WHERE false",
        filters.join(", "),
        r.source
    );
    let c = std::ffi::CString::new(sql).expect("no NUL");
    // SAFETY: prepare only (nothing runs) on a connection of its own; the
    // plan is freed below.
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(c.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            pg_sys::SPI_finish();
            return false;
        }
        let mut immutable = true;
        for src in list_cells(pg_sys::SPI_plan_get_plan_sources(plan)) {
            let src = src as *mut pg_sys::CachedPlanSource;
            for q in list_cells((*src).query_list) {
                let q = q as *mut pg_sys::Query;
                immutable &= !pg_sys::contain_mutable_functions((*q).targetList.cast());
            }
        }
        pg_sys::SPI_freeplan(plan);
        pg_sys::SPI_finish();
        immutable
    }
}

/// Why work run as `owner` cannot trust the names in `schema`
/// (`vigil._untrusted_schema`), or None when it can.
fn untrusted_schema(schema: pg_sys::Oid, owner: pg_sys::Oid) -> Option<String> {
    crate::sqlglue::read_one::<String>(&format!(
        "SELECT vigil._untrusted_schema({}::oid, {}::oid)",
        schema.to_u32(),
        owner.to_u32()
    ))
    .ok()
    .flatten()
}

/// Refuses (42501) a schema whose names work run as `owner` cannot trust
/// (`vigil._untrusted_schema`): another role could rename or plant objects
/// there that the rollup's statements would then reach as the owner.
pub fn require_trusted_schema(schema: pg_sys::Oid, owner: pg_sys::Oid, what: &str) {
    if let Some(why) = untrusted_schema(schema, owner) {
        denied(format!(
            "{what}: {why}; pg_vigil only works as {} in schemas nobody else controls",
            role_name(owner)
        ));
    }
}

/// The schema of relation `oid` (0 when there is none).
pub(super) fn rel_schema(oid: pg_sys::Oid) -> pg_sys::Oid {
    crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = {}",
        oid.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid)
}

/// The owner of relation `oid` (0 when there is none).
pub(super) fn rel_owner(oid: pg_sys::Oid) -> pg_sys::Oid {
    crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = {}",
        oid.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid)
}

pub(super) fn denied(message: String) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message
    );
}

/// The caller must have the privileges of the role that owns `source`.
fn require_owner_rights(guard: &Restricted, source: pg_sys::Oid, what: &str) -> pg_sys::Oid {
    let owner = rel_owner(source);
    if !has_privs_of_role(guard.caller(), owner) {
        let (schema, name) = relation_name(source, "source");
        denied(format!(
            "{what}: must be the owner of table {}.{} (role {}) or a member of that role",
            ident(&schema),
            ident(&name),
            role_name(owner)
        ));
    }
    owner
}

/// The oid of schema `schema` (3F000 naming the `name` argument when
/// there is none).
pub(super) fn schema_named(schema: &str) -> pg_sys::Oid {
    crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = {}",
        literal(schema)
    ))
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            format!("name: schema \"{schema}\" does not exist")
        );
    })
}

/// Creates the summary table `name`, the triggers that keep it exact, the
/// window function and views, backfills it, and registers it. Every object
/// is created by, owned by and later maintained as the source's owner
/// (SPEC §3.6): the caller must have that role's privileges, and the
/// summary's schema must belong to it.
#[pg_extern(volatile, parallel_unsafe, name = "_create_rollup")]
fn create_rollup(
    name: &str,
    source: pg_sys::Oid,
    time_column: &str,
    bucket: Interval,
    group_by: Vec<Option<String>>,
    measures: crate::notify::sql::JsonArg,
) -> pg_sys::Oid {
    crate::version::require();
    let measures = JsonB(measures.get("measures"));
    let group_by: Vec<String> = group_by
        .into_iter()
        .map(|g| {
            g.unwrap_or_else(|| {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    "group_by must not contain NULL"
                );
            })
        })
        .collect();
    let guard = Restricted::enter_pinned();
    let (src_schema, src_table) = relation_name(source, "source");
    let owner = require_owner_rights(&guard, source, "source");
    let distributed =
        super::citus::source_distribution(source, &format!("{src_schema}.{src_table}"), &group_by);
    let parts = crate::sqlglue::read_one::<Vec<String>>(&format!(
        "SELECT pg_catalog.parse_ident({})",
        literal(name)
    ))
    .ok()
    .flatten()
    .unwrap_or_default();
    let (schema, table) = match parts.as_slice() {
        [t] => (src_schema, t.clone()),
        [s, t] => (s.clone(), t.clone()),
        _ => raise(VigilError::invalid(format!(
            "name must be a table name, optionally schema-qualified, got \"{name}\""
        ))),
    };
    if table.len() > 63 || schema.len() > 63 {
        raise(VigilError::invalid(format!(
            "name: \"{name}\" is longer than 63 bytes, PostgreSQL's limit for a name"
        )));
    }
    require_trusted_schema(schema_named(&schema), owner, "name");
    require_trusted_schema(rel_schema(source), owner, "source");
    let exists = crate::sqlglue::read_one::<bool>(&format!(
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
        &group_by,
        &measures.0,
        super::Names::New,
    );

    // From here on as the owner, in a security-restricted operation.
    guard.act_as(owner);
    for (m, _) in r.measures.iter().filter(|(m, _)| m.counts_for.is_none()) {
        if let Some(f) = &m.filter {
            check_filter(&r.source, &m.name, f);
        }
    }
    spi_run(&r.create_table());
    if !r.group_by.is_empty() {
        spi_run(&r.bucket_index());
    }
    if let Some(column) = &distributed {
        // Co-located with the source, on its distribution column; the
        // triggers below then reach every shard (src/rollup/citus.rs).
        guard.citus_rollup_ddl();
        // One connection per worker for the whole operation: the trigger
        // Citus makes on each source shard must see the summary shard
        // made before it, in the same worker transaction.
        guard.set_if_defined(c"citus.multi_shard_modify_mode", c"sequential");
        super::citus::check_trigger_names(&r, source);
        super::citus::distribute_summary(&r.table(), column, &r.source);
    }
    // The definition the summary carries, which restores and Citus
    // workers trust (and a trigger's own text never): definition.rs.
    let first = distributed
        .as_ref()
        .and_then(|_| super::citus::first_shard(source));
    spi_run(&super::definition::add_statement(&r, first));
    let summary = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT {}::regclass::oid",
        literal(&r.table())
    ))
    .ok()
    .flatten()
    .expect("just created");
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
    // vigil's catalog is written as the extension's owner (a fixed
    // statement over vigil's own table), before the triggers exist: the
    // event trigger that sees them created then finds the definition.
    guard.act_as(extension_owner());
    spi_run(&format!(
        "INSERT INTO vigil.rollup_defs (summary, source, time_column, bucket, group_by, measures) \
         VALUES ({}, {}, {}, {}::interval, {group_array}, {}::jsonb)",
        summary.to_u32(),
        source.to_u32(),
        literal(time_column),
        literal(&r.bucket),
        literal(&measures.0.to_string()),
    ));
    super::ddl::refuse_inheritance(source);
    guard.act_as(owner);
    // Creating the triggers takes a lock that blocks writers to the source
    // until we commit, so the backfill below sees every row exactly once.
    for t in r.triggers() {
        spi_run(&t);
    }
    let created = super::ddl::created_triggers(&r, source);
    super::ddl::record_dependencies(&r, source, summary, &created);
    super::ddl::ensure_partition_triggers(&guard, &r, source, summary, false);
    spi_run(&r.backfill_statement());
    if distributed.is_some() {
        // The window function and views are the coordinator's, where
        // dashboards read: kept local (Citus would copy them to every
        // worker, which a transaction that already wrote to shards in
        // parallel cannot do).
        guard.set_if_defined(c"citus.enable_ddl_propagation", c"off");
        spi_run(&r.since_function_distributed_sql(summary.to_u32()));
        spi_run(&r.since_exact_function_distributed_sql(
            None,
            summary.to_u32(),
            source.to_u32(),
            !filters_immutable(&r),
        ));
        super::ddl::record_since_dependency(&r, summary, source);
    } else {
        spi_run(&r.since_function_sql());
        spi_run(&r.since_exact_function_sql(!filters_immutable(&r)));
    }
    for v in r.window_views() {
        spi_run(&v);
    }
    drop(guard);
    summary
}

/// The definition of a registered rollup. Reading it runs no user SQL: the
/// filters were checked by `create_rollup` and are only spliced here.
pub(crate) fn load(summary: pg_sys::Oid) -> Rollup {
    let row = crate::sqlglue::read_three::<pg_sys::Oid, String, Interval>(&format!(
        "SELECT source::oid, time_column::text, bucket FROM vigil.rollup_defs WHERE summary = {}",
        summary.to_u32()
    ))
    .ok();
    // The bucket in the one text form create_rollup writes (interval_text),
    // so the definition the triggers carry compares equal to this one.
    let (source, time_column, bucket) = match row {
        Some((Some(s), Some(t), Some(b))) => (s, t, interval_text(&b)),
        _ => raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!(
                "name: relation with oid {} is not a pg_vigil rollup",
                summary.to_u32()
            ),
        )),
    };
    let (group_by, group_source) = crate::sqlglue::read_two::<Vec<String>, Vec<String>>(&format!(
        "SELECT group_by::text[], coalesce(group_source, group_by)::text[] FROM vigil.rollup_defs WHERE summary = {}",
        summary.to_u32()
    ))
    .ok()
    .map(|(g, s)| (g.unwrap_or_default(), s.unwrap_or_default()))
    .unwrap_or_default();
    let measures = crate::sqlglue::read_one::<JsonB>(&format!(
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
        &group_source,
        &measures.0,
        super::Names::Kept,
    )
}

/// What a caller needs to act on a rollup.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rights {
    Owner,
    Read,
}

/// `load_for` with the owner's rights required (rolling.rs).
pub(super) fn load_owned(
    guard: &Restricted,
    summary: pg_sys::Oid,
    what: &str,
) -> (Rollup, pg_sys::Oid) {
    load_for(guard, summary, what, Rights::Owner)
}

/// The rollup's definition and its owner (the source's owner), after
/// checking that the caller may act on it: `Rights::Owner` (the caller
/// needs the owner's privileges) or `Rights::Read` (SELECT on the summary
/// and the source is enough).
fn load_for(
    guard: &Restricted,
    summary: pg_sys::Oid,
    what: &str,
    rights: Rights,
) -> (Rollup, pg_sys::Oid) {
    crate::version::require();
    // vigil's catalog is read as the extension's owner (a table's owner
    // need not be able to read vigil.rollup_defs); the rights are the
    // caller's.
    guard.act_as(extension_owner());
    let r = load(summary);
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::oid FROM vigil.rollup_defs d WHERE d.summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .expect("load found it");
    let owner = rel_owner(source);
    if rights == Rights::Owner {
        require_owner_rights(guard, source, what);
    } else {
        let caller = guard.caller().to_u32();
        let readable = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT pg_catalog.has_table_privilege({caller}::oid, {}::oid, 'SELECT') \
                AND pg_catalog.has_table_privilege({caller}::oid, {}::oid, 'SELECT')",
            summary.to_u32(),
            source.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false);
        if !readable {
            denied(format!(
                "{what}: permission denied: {} needs SELECT on the rollup {} and its source {}",
                role_name(guard.caller()),
                r.table(),
                r.source
            ));
        }
    }
    (r, owner)
}

/// `{"rows", "latest_bucket"}` of a summary for the `vigil.rollups` view,
/// read as the rollup's owner in a security-restricted operation: whoever
/// reads the view (a reader, an admin) never runs the summary's policies or
/// rules, which its owner controls.
#[pg_extern(stable, strict, parallel_restricted, name = "_rollup_stats")]
fn rollup_stats(summary: pg_sys::Oid) -> Option<JsonB> {
    // Every lookup below runs with the catalog-only search path: the
    // caller's path (its operators, functions) never reaches vigil's SQL.
    let _path = crate::security::Restricted::enter();
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::oid FROM vigil.rollup_defs d WHERE d.summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()?;
    let owner = rel_owner(source);
    let table = crate::sqlglue::read_one::<String>(&format!(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()?;
    if owner == pg_sys::InvalidOid {
        return None;
    }
    // Never wait for a summary its owner keeps locked: its sizes are then
    // unknown (NULL) rather than the view hanging for every reader.
    // SAFETY: a lock attempt that returns at once; held to transaction end.
    let free = unsafe {
        pg_sys::ConditionalLockRelationOid(summary, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
    };
    if !free {
        return None;
    }
    let guard = Restricted::as_role(owner);
    let stats = crate::sqlglue::read_one::<JsonB>(&format!(
        "SELECT pg_catalog.jsonb_build_object('rows', pg_catalog.count(*), 'latest_bucket', pg_catalog.max(s.bucket)) FROM {table} s"
    ))
    .ok()
    .flatten();
    drop(guard);
    stats
}

/// Number of groups that differ from a full recompute (0 when exact); run
/// as the rollup's owner in a security-restricted operation.
#[pg_extern(volatile, parallel_unsafe, name = "_verify_rollup")]
fn verify_rollup(name: pg_sys::Oid) -> i64 {
    let guard = Restricted::enter_pinned();
    let (r, owner) = load_for(&guard, name, "name", Rights::Read);
    // This transaction's own writes kept for its commit first (pending.rs).
    super::pending::flush(Some(name));
    guard.act_as(owner);
    let partitioned = crate::sqlglue::read_one::<bool>(&format!(
        "SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = {}::pg_catalog.regclass",
        literal(&r.source)
    ))
    .ok()
    .flatten()
    .unwrap_or(false);
    let statement = if partitioned {
        r.verify_statement_from(Some(r.source_bucket_range()))
    } else {
        r.verify_statement()
    };
    let n = crate::sqlglue::read_one::<i64>(&statement)
        .unwrap_or_else(|e| raise(VigilError::invalid(e.to_string())))
        .unwrap_or(0);
    drop(guard);
    n
}

/// Recomputes the summary from the source; blocks writers meanwhile.
/// Returns the number of groups.
#[pg_extern(volatile, parallel_unsafe, name = "_rebuild_rollup")]
fn rebuild_rollup(name: pg_sys::Oid) -> i64 {
    let guard = Restricted::enter_pinned();
    let (r, owner) = load_for(&guard, name, "name", Rights::Owner);
    // This transaction's own writes kept for its commit first (pending.rs).
    super::pending::flush(Some(name));
    guard.act_as(owner);
    spi_run(&format!("LOCK TABLE {} IN SHARE MODE", r.source));
    spi_run(&format!("DELETE FROM {}", r.table()));
    spi_run(&r.backfill_statement());
    super::rolling::recompute_all(name);
    guard.act_as(owner);
    let n = crate::sqlglue::read_one::<i64>(&format!("SELECT count(*) FROM {}", r.table()))
        .ok()
        .flatten()
        .unwrap_or(0);
    drop(guard);
    n
}

/// Sets `vigil.rollup_defs.on_detach` (`keep` or `subtract`) as someone
/// with the source owner's rights.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_set_rollup_on_detach")]
fn set_rollup_on_detach(name: pg_sys::Oid, mode: &str) {
    if !matches!(mode, "keep" | "subtract") {
        raise(VigilError::invalid(format!(
            "mode must be keep or subtract, got {}",
            literal(mode)
        )));
    }
    let guard = Restricted::enter_pinned();
    let _ = load_for(&guard, name, "name", Rights::Owner);
    guard.act_as(extension_owner());
    spi_run(&format!(
        "UPDATE vigil.rollup_defs SET on_detach = {} WHERE summary = {}",
        literal(mode),
        name.to_u32()
    ));
    drop(guard);
}

/// Drops the rollup: its summary table with everything that depends on it
/// (triggers, `_since` function, views), by oid, so it works whatever
/// became of the names; and forgets the definition.
#[pg_extern(volatile, parallel_unsafe, name = "_drop_rollup")]
fn drop_rollup(name: pg_sys::Oid) {
    let guard = Restricted::enter_pinned();
    guard.act_as(extension_owner());
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::oid FROM vigil.rollup_defs d WHERE d.summary = {}",
        name.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!(
                "name: relation with oid {} is not a pg_vigil rollup",
                name.to_u32()
            ),
        ))
    });
    let owner = require_owner_rights(&guard, source, "name");
    guard.act_as(owner);
    let triggers: Vec<pg_sys::Oid> = super::ddl::triggers_of(name, source)
        .iter()
        .map(|t| t.oid)
        .collect();
    let delete = |class: pg_sys::Oid, oid: pg_sys::Oid| {
        let gone = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT pg_catalog.pg_describe_object({}, {}, 0) IS NULL",
            class.to_u32(),
            oid.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(true);
        if !gone {
            let object = pg_sys::ObjectAddress {
                classId: class,
                objectId: oid,
                objectSubId: 0,
            };
            // SAFETY: the object exists; its owner's rights were checked.
            unsafe {
                pg_sys::performDeletion(&object, pg_sys::DropBehavior::DROP_CASCADE, 0);
                pg_sys::CommandCounterIncrement();
            }
        }
    };
    if super::citus::is_shell(name) {
        // A distributed rollup goes by DDL that Citus carries to every
        // shard and worker: its triggers first, then the summary.
        guard.citus_rollup_ddl();
        for t in &triggers {
            super::ddl::drop_own_distributed_trigger(*t);
        }
        let table = crate::sqlglue::read_one::<String>(&format!(
            "SELECT {}::pg_catalog.regclass::pg_catalog.text",
            name.to_u32()
        ))
        .ok()
        .flatten()
        .expect("the summary exists");
        spi_run(&format!("DROP TABLE {table} CASCADE"));
    }
    delete(pg_sys::RelationRelationId, name);
    for t in triggers {
        let gone = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.oid = {})",
            t.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(true);
        if !gone {
            super::ddl::drop_own_trigger(t);
        }
    }
    guard.act_as(extension_owner());
    spi_run(&format!(
        "DELETE FROM vigil.rollup_defs WHERE summary = {}",
        name.to_u32()
    ));
    // Its rolling totals went with the summary (they depend on it).
    spi_run(&format!(
        "DELETE FROM vigil.rolling_defs WHERE summary::pg_catalog.oid = {}",
        name.to_u32()
    ));
    drop(guard);
}

/// Part of ALTER EXTENSION pg_vigil UPDATE (migrations/): turns a rollup
/// that an older version made into one of this version's, the way
/// create_rollup would have made it. Its summary, window function and
/// views go to the source's owner; the older triggers and generated
/// functions are replaced by the shared trigger with its dependencies; the
/// summary is recomputed from the source (an older library may have let
/// writes through unmaintained). Returns NULL, or why the rollup was left
/// unlinked (its status in `vigil.rollups` then says so too); the update
/// goes on either way. Superuser only.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_upgrade_rollup")]
fn upgrade_rollup(summary: pg_sys::Oid) -> Option<String> {
    let guard = Restricted::enter_pinned();
    // SAFETY: a plain catalog check of the calling role.
    if !unsafe { pg_sys::superuser_arg(guard.caller()) } {
        denied(
            "vigil._upgrade_rollup is run by ALTER EXTENSION pg_vigil UPDATE (a superuser)".into(),
        );
    }
    guard.act_as(extension_owner());
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::pg_catalog.oid FROM vigil.rollup_defs d \
         WHERE d.summary = {s} AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {s})",
        s = summary.to_u32()
    ))
    .ok()
    .flatten()?;
    if rel_owner(source) == pg_sys::InvalidOid {
        return Some("its source table no longer exists".into());
    }
    let r = load(summary);
    let owner = rel_owner(source);
    // The older version's objects go first, whatever happens next (they
    // are 0.1.0's SECURITY DEFINER code): triggers by their fixed names, the
    // generated functions they ran, the window function and its views.
    for op in super::ddl::OPS {
        spi_run(&format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            r.trigger_name(op),
            r.source
        ));
    }
    // CASCADE: a trigger anyone attached to one of them goes too.
    for op in ["del", "upd", "trunc"] {
        spi_run(&format!(
            "DROP FUNCTION IF EXISTS {}() CASCADE",
            r.derived(&format!("_vigil_{op}"))
        ));
    }
    // The readers' objects: a view someone built on them keeps them, and
    // this rollup then stays as it is (reported), the update goes on.
    let dropped = crate::security::catching(|| {
        for label in ["1h", "24h", "7d"] {
            spi_run(&format!("DROP VIEW IF EXISTS {}", r.window_view(label)));
        }
        for args in ["interval", "interval, boolean"] {
            spi_run(&format!(
                "DROP FUNCTION IF EXISTS {}({args})",
                r.since_function()
            ));
        }
    });
    if let Err(why) = dropped {
        return Some(why);
    }
    for (schema, what) in [
        (rel_schema(summary), "summary"),
        (rel_schema(source), "source"),
    ] {
        if let Some(why) = untrusted_schema(schema, owner) {
            return Some(format!("{what}: {why}"));
        }
    }
    // 0.1.0's summaries lack the non-NULL counts of their sums (filled in
    // by the recompute below): added first, by the summary's owner, so the
    // summary has its rollup's shape again before anything else alters it.
    if let Some(add) = r.add_missing_columns() {
        guard.act_as(rel_owner(summary));
        let added = crate::security::catching(|| spi_run(&add));
        guard.act_as(extension_owner());
        if let Err(why) = added {
            return Some(why);
        }
    }
    if rel_owner(summary) != owner {
        spi_run(&format!(
            "ALTER TABLE {} OWNER TO {}",
            r.table(),
            ident(&role_name(owner))
        ));
    }
    // What is made now is the rollup's, not the extension's (outside the
    // update script's membership, as create_rollup makes them), and made
    // in a subtransaction: whatever stops one rollup (a source its owner
    // gave a child table, a summary schema the owner may not use) leaves
    // it unmaintained with the reason returned, the 0.1.0 objects already
    // gone, and the update goes on for everyone else's.
    let built = crate::security::catching(|| {
        let _outside = OutsideExtension::enter();
        super::ddl::refuse_inheritance(source);
        guard.act_as(owner);
        if !super::definition::carried(summary) {
            spi_run(&super::definition::add_statement(&r, None));
        }
        for t in r.triggers() {
            spi_run(&t);
        }
        let created = super::ddl::created_triggers(&r, source);
        super::ddl::record_dependencies(&r, source, summary, &created);
        super::ddl::ensure_partition_triggers(&guard, &r, source, summary, false);
        spi_run(&format!("DELETE FROM {}", r.table()));
        spi_run(&r.backfill_statement());
        spi_run(&r.since_function_sql());
        spi_run(&r.since_exact_function_sql(!filters_immutable(&r)));
        for v in r.window_views() {
            spi_run(&v);
        }
    });
    drop(guard);
    built.err()
}

/// While alive, objects created are not members of the extension being
/// created or updated; the previous state comes back when it is dropped,
/// also while an error unwinds through it.
struct OutsideExtension(bool, pg_sys::Oid);

impl OutsideExtension {
    fn enter() -> Self {
        // SAFETY: backend globals, restored by Drop.
        unsafe {
            let saved =
                OutsideExtension(pg_sys::creating_extension, pg_sys::CurrentExtensionObject);
            pg_sys::creating_extension = false;
            pg_sys::CurrentExtensionObject = pg_sys::InvalidOid;
            saved
        }
    }
}

impl Drop for OutsideExtension {
    fn drop(&mut self) {
        // SAFETY: restores the values saved by `enter`.
        unsafe {
            pg_sys::creating_extension = self.0;
            pg_sys::CurrentExtensionObject = self.1;
        }
    }
}

/// Group slot locks one transaction may take; past it, a transaction's
/// further groups of a summary go to one slot it holds for the whole
/// summary (`summary_slot`), so a bulk statement cannot fill the shared
/// lock table and still never waits.
const SLOT_LOCKS_PER_XACT: u32 = 64;
/// Slots tried per group (and per summary) before giving up on free ones.
const SLOT_TRIES: u32 = 256;
/// `locktag_field4` of vigil's group slot locks; user advisory locks use 1
/// and 2.
const SLOT_LOCK_SPACE: u16 = 0x5647;
/// `locktag_field4` of the per-summary slot locks: a transaction writing
/// slot `k` of any group holds one on (summary, `k`) — shared when it chose
/// `k` for one group, exclusive when it writes all its further groups
/// there — so the two ways of choosing never hand one slot row to two
/// transactions.
const SUMMARY_SLOT_SPACE: u16 = 0x5648;

thread_local! {
    /// (local transaction id, group slot locks it took)
    static SLOT_LOCKS: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

fn local_xact_id() -> u32 {
    // SAFETY: MyProc is set for every backend that can run SQL. (PostgreSQL
    // 17 moved it to MyProc->vxid.lxid; only 15 is built.)
    unsafe { (*pg_sys::MyProc).lxid }
}

/// The tag of one of vigil's slot locks (transaction-scoped advisory locks).
pub(super) fn slot_lock_tag(summary: pg_sys::Oid, field3: u32, space: u16) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: set once the backend is connected to a database.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: summary.to_u32(),
        locktag_field3: field3,
        locktag_field4: space,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Tries to take a transaction-scoped advisory lock of vigil's (never
/// waits): whether it is ours now, and whether this call took it.
fn try_slot_lock(
    summary: pg_sys::Oid,
    field3: u32,
    space: u16,
    mode: u32,
) -> (bool, bool, pg_sys::LOCKTAG) {
    let tag = slot_lock_tag(summary, field3, space);
    // SAFETY: a valid tag; dontWait makes this return at once.
    let got = unsafe { pg_sys::LockAcquire(&tag, mode as pg_sys::LOCKMODE, false, true) };
    match got {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => (false, false, tag),
        pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_HELD
        | pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_CLEAR => (true, false, tag),
        _ => (true, true, tag),
    }
}

/// The slot row of group `key_hash` of rollup `summary` this transaction
/// writes: the first slot whose transaction-scoped advisory lock is free or
/// already ours. Taking it never waits, and while this transaction holds it
/// no other inserter picks that slot row, so hot groups spread over slot
/// rows instead of queueing on one row lock until commit. Hash collisions
/// between groups only spread a group further; correctness never depends on
/// the choice, as a group is the sum of its slot rows. Past
/// `SLOT_LOCKS_PER_XACT` group locks, `summary_slot`.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_rollup_slot")]
fn rollup_slot(summary: pg_sys::Oid, key_hash: i32) -> i32 {
    // Only the rollup trigger's own statements take slot locks, and only
    // of the summary they write: anyone else holding them would make that
    // summary's commits wait (`hold_slots`).
    if WRITING.with(|w| w.borrow().last() != Some(&summary)) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "vigil._rollup_slot: only the rollup trigger's statements take slot locks, for the summary they write"
        );
    }
    let lxid = local_xact_id();
    let (xact, mut used) = SLOT_LOCKS.with(|c| c.get());
    if xact != lxid {
        used = 0;
    }
    let mut chosen = None;
    for slot in 0..SLOT_TRIES {
        if used >= SLOT_LOCKS_PER_XACT {
            break;
        }
        let field3 = (key_hash as u32).wrapping_add(slot);
        let (ours, took, tag) =
            try_slot_lock(summary, field3, SLOT_LOCK_SPACE, pg_sys::ExclusiveLock);
        if !ours {
            continue;
        }
        // No transaction writes every further group of the summary to
        // this slot (a shared lock, so single-group choosers never
        // exclude each other).
        if !try_slot_lock(summary, slot, SUMMARY_SLOT_SPACE, pg_sys::ShareLock).0 {
            if took {
                // SAFETY: the lock this call just took, released at once.
                unsafe {
                    pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false)
                };
            }
            continue;
        }
        if took {
            used += 1;
        }
        chosen = Some(slot as i32);
        break;
    }
    SLOT_LOCKS.with(|c| c.set((lxid, used)));
    chosen.unwrap_or_else(|| summary_slot(summary))
}

thread_local! {
    /// The summaries the rollup trigger is writing, innermost last.
    static WRITING: std::cell::RefCell<Vec<pg_sys::Oid>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Set while a summary's kept rows are applied at commit (pending.rs):
    /// its statements then touch only the slot rows held.
    static REPLAYING: std::cell::RefCell<Vec<pg_sys::Oid>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// While alive, the rollup trigger's statements write `summary`
/// (`rollup_slot` checks it); popped on drop, also while an error unwinds.
pub(super) struct Writing;

impl Writing {
    pub(super) fn enter(summary: pg_sys::Oid) -> Writing {
        WRITING.with(|w| w.borrow_mut().push(summary));
        Writing
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with(|w| w.borrow_mut().pop());
    }
}

/// While alive, rows of `summary` kept for the commit are being applied
/// (`slot_held`).
pub(super) struct Replaying;

impl Replaying {
    pub(super) fn enter(summary: pg_sys::Oid) -> Replaying {
        REPLAYING.with(|r| r.borrow_mut().push(summary));
        Replaying
    }
}

impl Drop for Replaying {
    fn drop(&mut self) {
        REPLAYING.with(|r| r.borrow_mut().pop());
    }
}

/// Whether a removal's lock and fold may take slot row `slot` of the group
/// hashed `key_hash`: always, except while rows kept for the commit are
/// applied, when only the slot rows this transaction holds (`hold_slots`,
/// or its own additions) are taken. A slot row another transaction made
/// since the hold read the group holds nothing this transaction removes
/// (what it removes was committed before it ran), and locking it could
/// wait on a writer that waits on us.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_rollup_slot_held")]
fn slot_held(summary: pg_sys::Oid, key_hash: i32, slot: i32) -> bool {
    if REPLAYING.with(|r| r.borrow().last() != Some(&summary)) {
        return true;
    }
    let group = slot_lock_tag(
        summary,
        (key_hash as u32).wrapping_add(slot as u32),
        SLOT_LOCK_SPACE,
    );
    let whole = slot_lock_tag(summary, slot as u32, SUMMARY_SLOT_SPACE);
    let held = |tag: &pg_sys::LOCKTAG, mode: u32| {
        // SAFETY: a valid tag; a look at this backend's own lock table.
        unsafe { pg_sys::LockHeldByMe(tag, mode as pg_sys::LOCKMODE) }
    };
    // The slot's per-summary lock exclusively, or the group's slot lock
    // with the per-summary one (a group lock alone may be another group's
    // whose hash plus slot collides, while a bulk writer has this slot).
    held(&whole, pg_sys::ExclusiveLock)
        || (held(&group, pg_sys::ExclusiveLock) && held(&whole, pg_sys::ShareLock))
}

/// Takes, waiting, the slot locks a removal applied at commit needs
/// (pending.rs): `locks` holds (group hash, slot) pairs. First the
/// per-summary locks of those slots in slot order — shared, or exclusive
/// when the groups are more than `cap` — then (when shared) the group slot
/// locks in lock-id order: every holder takes them in that one order, and
/// adding (`rollup_slot`, `summary_slot`) only ever tries, so waiting here
/// cannot close a cycle. Held to the end of the transaction; while held,
/// no other transaction writes those slot rows.
pub(super) fn hold_slots(summary: pg_sys::Oid, locks: &[(u32, u32)], cap: usize) {
    let mut slots: Vec<u32> = locks.iter().map(|&(_, s)| s).collect();
    slots.sort_unstable();
    slots.dedup();
    let mut groups: Vec<u32> = locks.iter().map(|&(h, s)| h.wrapping_add(s)).collect();
    groups.sort_unstable();
    groups.dedup();
    let whole = groups.len() > cap;
    let wait = |field3: u32, space: u16, mode: u32| {
        let tag = slot_lock_tag(summary, field3, space);
        // SAFETY: a valid tag; waits (with deadlock detection) until granted.
        unsafe { pg_sys::LockAcquire(&tag, mode as pg_sys::LOCKMODE, false, false) };
    };
    for s in slots {
        let mode = if whole {
            pg_sys::ExclusiveLock
        } else {
            pg_sys::ShareLock
        };
        wait(s, SUMMARY_SLOT_SPACE, mode);
    }
    if !whole {
        for g in groups {
            wait(g, SLOT_LOCK_SPACE, pg_sys::ExclusiveLock);
        }
    }
}

thread_local! {
    /// (local transaction id, the slot `summary_slot` chose per summary)
    static SUMMARY_SLOTS: std::cell::RefCell<(u32, Vec<(pg_sys::Oid, i32)>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// The slot this transaction writes every further group of `summary` to:
/// the first whose per-summary lock it can hold exclusively, i.e. that no
/// other transaction writes to any group; chosen once per transaction and
/// summary. One lock per summary however many groups, and never a wait;
/// slot 0 (an upsert that waits its turn) only when every one of the
/// `SLOT_TRIES` slots of the summary is held by other transactions.
fn summary_slot(summary: pg_sys::Oid) -> i32 {
    let lxid = local_xact_id();
    let known = SUMMARY_SLOTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != lxid {
            *c = (lxid, Vec::new());
        }
        c.1.iter().find(|(s, _)| *s == summary).map(|(_, k)| *k)
    });
    // Still ours (a local lookup), unless a rolled-back savepoint let it go.
    if let Some(slot) = known
        .filter(|&k| try_slot_lock(summary, k as u32, SUMMARY_SLOT_SPACE, pg_sys::ExclusiveLock).0)
    {
        return slot;
    }
    let Some(slot) = (0..SLOT_TRIES)
        .find(|&slot| try_slot_lock(summary, slot, SUMMARY_SLOT_SPACE, pg_sys::ExclusiveLock).0)
    else {
        return 0;
    };
    SUMMARY_SLOTS.with(|c| {
        let mut c = c.borrow_mut();
        c.1.retain(|(s, _)| *s != summary);
        c.1.push((summary, slot as i32));
    });
    slot as i32
}
