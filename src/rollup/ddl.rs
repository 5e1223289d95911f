//! Rollups under a DBA's DDL (SPEC §3.3, issue #14). A rollup is bound to
//! its source the way a view is, through `pg_depend`, so PostgreSQL itself
//! refuses or cascades what would break it:
//!
//! - each rollup trigger depends on the summary and on every source column
//!   the rollup reads (time, group and measure columns, and through
//!   `recordDependencyOnSingleRelExpr` the columns, functions, operators
//!   and types of each `filter`): DROP COLUMN needs CASCADE, ALTER COLUMN
//!   TYPE is refused ("column used in a trigger definition", naming the
//!   rollup's trigger), DROP FUNCTION of a filter's function needs CASCADE;
//! - the summary depends on the source: DROP TABLE of the source needs
//!   CASCADE, which drops the whole rollup (summary, triggers, `_since`
//!   function, views); when CASCADE drops a rollup's triggers (DROP COLUMN
//!   … CASCADE), the sql_drop event trigger drops the rest of the rollup,
//!   and it refuses a DROP TRIGGER of one of them (vigil.drop_rollup drops
//!   a rollup). A summary that depended on its triggers would make a
//!   dependency loop that pg_dump cannot order.
//!
//! Renames are followed by the ddl_command_end event trigger, which calls
//! `vigil._rollup_ddl`: a renamed source column is renamed in the
//! definition (filters are rewritten at the positions PostgreSQL's parser
//! reports), the triggers get the new definition, and the kept plans of
//! every backend are re-prepared. A new owner of the source becomes the
//! owner of its rollups; a schema move into a schema others control is
//! refused (42501); changes to a summary's columns are refused (0A000).
//!
//! The triggers carry the definition as their second argument, so a dump
//! of the application's schema alone (`pg_dump -n app`) restores working
//! rollups: when a restored trigger is created, the definition is
//! registered again (for a role with the source owner's rights) and the
//! dependencies are recorded anew; pg_dump does not keep them.

use super::sql::{check_filter, define, denied, rel_owner, relation_name, spi_run};
use super::{ident, literal, Rollup};
use crate::error::VigilError;
use crate::security::{has_privs_of_role, role_name, Restricted};
use crate::sqlglue::raise;
use pgrx::prelude::*;
use serde_json::Value;

/// A trigger on a source that calls `vigil._rollup_trigger`.
pub(super) struct RollupTrigger {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub op: &'static str,
    pub args: Vec<String>,
    /// Fires in normal operation (tgenabled O or A).
    pub enabled: bool,
    /// tgenabled itself: O, D, R or A.
    pub state: String,
}

/// The events of a rollup's triggers, in the order `Rollup::triggers_for`
/// writes them.
pub(super) const OPS: [&str; 4] = ["ins", "del", "upd", "trunc"];

fn op_of(tgtype: i32) -> &'static str {
    let t = tgtype as u32;
    if t & pg_sys::TRIGGER_TYPE_INSERT != 0 {
        "ins"
    } else if t & pg_sys::TRIGGER_TYPE_DELETE != 0 {
        "del"
    } else if t & pg_sys::TRIGGER_TYPE_UPDATE != 0 {
        "upd"
    } else {
        "trunc"
    }
}

/// Every trigger on `source` that calls `vigil._rollup_trigger`, or the one
/// trigger `only` when given.
fn rollup_triggers(source: Option<pg_sys::Oid>, only: Option<pg_sys::Oid>) -> Vec<RollupTrigger> {
    let cond = match (source, only) {
        (_, Some(t)) => format!("t.oid = {}", t.to_u32()),
        (Some(s), None) => format!("t.tgrelid = {}", s.to_u32()),
        (None, None) => return Vec::new(),
    };
    let sql = format!(
        "SELECT t.oid, t.tgname::text, t.tgtype::int4, t.tgargs, t.tgenabled IN ('O', 'A'), t.tgenabled::text FROM pg_catalog.pg_trigger t \
         WHERE {cond} AND t.tgfoid = 'vigil._rollup_trigger'::pg_catalog.regproc ORDER BY t.oid"
    );
    Spi::connect(|client| {
        let rows = client.select(&sql, None, &[]).unwrap();
        rows.map(|row| {
            let args: Vec<u8> = row.get::<Vec<u8>>(4).unwrap().unwrap_or_default();
            let mut args: Vec<String> = args
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // tgargs ends each argument with a NUL: drop the empty tail.
            args.pop();
            RollupTrigger {
                oid: row.get::<pg_sys::Oid>(1).unwrap().unwrap(),
                name: row.get::<String>(2).unwrap().unwrap(),
                op: op_of(row.get::<i32>(3).unwrap().unwrap()),
                args,
                enabled: row.get::<bool>(5).unwrap().unwrap_or(false),
                state: row.get::<String>(6).unwrap().unwrap_or_default(),
            }
        })
        .collect()
    })
}

/// The rows of a two-column catalog query (neither column NULL).
fn pairs<A, B>(sql: &str) -> Vec<(A, B)>
where
    A: pgrx::datum::FromDatum + pgrx::datum::IntoDatum,
    B: pgrx::datum::FromDatum + pgrx::datum::IntoDatum,
{
    Spi::connect(|client| {
        client
            .select(sql, None, &[])
            .unwrap()
            .filter_map(|row| Some((row.get::<A>(1).ok()??, row.get::<B>(2).ok()??)))
            .collect()
    })
}

/// The relation a (qualified) name means now, or None, also for text that
/// is no name at all (to_regclass raises on bad syntax: a trigger argument
/// is anybody's text).
pub(super) fn regclass_of(name: &str) -> Option<pg_sys::Oid> {
    let sql = format!(
        "SELECT pg_catalog.to_regclass({})::pg_catalog.oid",
        literal(name)
    );
    crate::security::catching(|| crate::sqlglue::read_one::<pg_sys::Oid>(&sql).ok().flatten())
        .ok()
        .flatten()
}

fn depends(depender: (pg_sys::Oid, pg_sys::Oid), on: (pg_sys::Oid, pg_sys::Oid, i32)) -> bool {
    crate::sqlglue::read_one::<bool>(&format!(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = {} AND d.objid = {} \
         AND d.refclassid = {} AND d.refobjid = {} AND d.refobjsubid = {})",
        depender.0.to_u32(),
        depender.1.to_u32(),
        on.0.to_u32(),
        on.1.to_u32(),
        on.2
    ))
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The rollup triggers of `summary` on `source`: those with a `pg_depend`
/// entry on it, or whose first argument names it (after a restore).
pub(super) fn triggers_of(summary: pg_sys::Oid, source: pg_sys::Oid) -> Vec<RollupTrigger> {
    rollup_triggers(Some(source), None)
        .into_iter()
        .filter(|t| {
            linked(t.oid, summary) || t.args.first().and_then(|a| regclass_of(a)) == Some(summary)
        })
        .collect()
}

/// Whether trigger `trigger` is linked to `summary` in `pg_depend` (which
/// only vigil does, for the triggers a rollup's owner made).
fn linked(trigger: pg_sys::Oid, summary: pg_sys::Oid) -> bool {
    depends(
        (pg_sys::TriggerRelationId, trigger),
        (pg_sys::RelationRelationId, summary, 0),
    )
}

/// The triggers linked to `summary`.
/// The rollup's own (linked, enabled) INSERT and DELETE triggers on
/// `rel`, which write rows kept for the commit (pending.rs).
pub(super) fn insert_and_delete_triggers(
    summary: pg_sys::Oid,
    rel: pg_sys::Oid,
) -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    let linked = linked_triggers(summary, rel);
    let find = |op: &str| {
        linked
            .iter()
            .find(|t| t.op == op && t.enabled)
            .map(|t| t.oid)
    };
    Some((find("ins")?, find("del")?))
}

fn linked_triggers(summary: pg_sys::Oid, source: pg_sys::Oid) -> Vec<RollupTrigger> {
    rollup_triggers(Some(source), None)
        .into_iter()
        .filter(|t| linked(t.oid, summary))
        .collect()
}

/// The triggers `create_rollup` just made for `r`, by their names.
pub(super) fn created_triggers(r: &Rollup, source: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let names: Vec<String> = OPS.iter().map(|op| r.trigger_name_raw(op)).collect();
    rollup_triggers(Some(source), None)
        .into_iter()
        .filter(|t| names.contains(&t.name))
        .map(|t| t.oid)
        .collect()
}

fn record(depender: (pg_sys::Oid, pg_sys::Oid), on: (pg_sys::Oid, pg_sys::Oid, i32)) {
    if depends(depender, on) {
        return;
    }
    let d = pg_sys::ObjectAddress {
        classId: depender.0,
        objectId: depender.1,
        objectSubId: 0,
    };
    let r = pg_sys::ObjectAddress {
        classId: on.0,
        objectId: on.1,
        objectSubId: on.2,
    };
    // SAFETY: both objects exist (looked up in this transaction).
    unsafe { pg_sys::recordDependencyOn(&d, &r, pg_sys::DependencyType::DEPENDENCY_NORMAL) };
}

/// Records that relation `depender` depends on relation `on` (rolling.rs:
/// a rolling total's table goes with its summary).
pub(super) fn record_on(depender: pg_sys::Oid, on: pg_sys::Oid) {
    let class = pg_sys::RelationRelationId;
    record((class, depender), (class, on, 0));
}

/// Records that the window functions of a distributed rollup (PL/pgSQL,
/// which names its summary and source by oid at each call) depend on the
/// summary (and the exact one on the source), as the BEGIN ATOMIC ones of
/// a local rollup do: DROP takes them along.
pub(super) fn record_since_dependency(r: &Rollup, summary: pg_sys::Oid, source: pg_sys::Oid) {
    let f = r.since_function();
    record_window_dependency(&format!("{f}(pg_catalog.interval)"), &[summary]);
    record_window_dependency(
        &format!("{f}(pg_catalog.interval, pg_catalog.bool)"),
        &[summary, source],
    );
}

/// Records that function `signature` (regprocedure text) depends on the
/// relations `on`.
fn record_window_dependency(signature: &str, on: &[pg_sys::Oid]) {
    let function = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT {}::pg_catalog.regprocedure::pg_catalog.oid",
        literal(signature)
    ))
    .ok()
    .flatten()
    .expect("just created");
    for rel in on {
        record(
            (pg_sys::ProcedureRelationId, function),
            (pg_sys::RelationRelationId, *rel, 0),
        );
    }
}

/// Records that trigger `trigger` depends on the columns, functions,
/// operators and types `filter` uses (as PostgreSQL does for a CHECK
/// constraint). Parses the filter: the caller acts as the rollup's owner.
fn record_filter_dependencies(trigger: pg_sys::Oid, source: pg_sys::Oid, r: &Rollup, filter: &str) {
    let sql = std::ffi::CString::new(format!(
        "SELECT ({filter})::boolean FROM {} WHERE false",
        r.source
    ))
    .expect("no NUL");
    let depender = pg_sys::ObjectAddress {
        classId: pg_sys::TriggerRelationId,
        objectId: trigger,
        objectSubId: 0,
    };
    // SAFETY: prepare only (nothing runs); the analyzed query's first
    // target is the filter over range table entry 1, the source.
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
        if !plan.is_null() {
            for src in super::sql::list_cells(pg_sys::SPI_plan_get_plan_sources(plan)) {
                let src = src as *mut pg_sys::CachedPlanSource;
                for q in super::sql::list_cells((*src).query_list) {
                    let q = q as *mut pg_sys::Query;
                    if let Some(tle) = super::sql::list_cells((*q).targetList).first() {
                        let tle = *tle as *mut pg_sys::TargetEntry;
                        pg_sys::recordDependencyOnSingleRelExpr(
                            &depender,
                            (*tle).expr as *mut pg_sys::Node,
                            source,
                            pg_sys::DependencyType::DEPENDENCY_NORMAL,
                            pg_sys::DependencyType::DEPENDENCY_NORMAL,
                            false,
                        );
                    }
                }
            }
            pg_sys::SPI_freeplan(plan);
        }
        pg_sys::SPI_finish();
    }
}

/// The source columns a rollup reads by name, filters' columns excluded.
fn used_columns(r: &Rollup) -> Vec<String> {
    let mut cols = vec![r.time_column.clone()];
    cols.extend(r.group_source.iter().cloned());
    cols.extend(r.measures.iter().filter_map(|(m, _)| m.column.clone()));
    cols.sort();
    cols.dedup();
    cols
}

pub(super) fn attnum(rel: pg_sys::Oid, column: &str) -> i16 {
    let c = std::ffi::CString::new(column).expect("a column name has no NUL");
    // SAFETY: a catalog lookup.
    unsafe { pg_sys::get_attnum(rel, c.as_ptr()) }
}

/// Binds the rollup to its objects in `pg_depend` (see the module
/// comment); idempotent, so a relink after a restore or a trigger refresh
/// records only what is missing. The caller acts as the rollup's owner.
pub(super) fn record_dependencies(
    r: &Rollup,
    source: pg_sys::Oid,
    summary: pg_sys::Oid,
    triggers: &[pg_sys::Oid],
) {
    link_triggers(r, source, summary, triggers, true);
    let class = pg_sys::RelationRelationId;
    record((class, summary), (class, source, 0));
}

/// Notes in `vigil.rollup_triggers` which summary a linked trigger
/// maintains, so the sql_drop event trigger can tell, from the oids of the
/// triggers a command dropped, which rollups lost one (written as the
/// extension's owner; rebuilt as triggers are linked, never dumped).
fn remember_trigger(trigger: pg_sys::Oid, summary: pg_sys::Oid, on_source: bool) {
    let guard = Restricted::as_role(crate::security::extension_owner());
    spi_run(&format!(
        "INSERT INTO vigil.rollup_triggers (trigger, summary, on_source) VALUES ({}, {}, {on_source}) \
         ON CONFLICT (trigger) DO UPDATE SET summary = excluded.summary, on_source = excluded.on_source",
        trigger.to_u32(),
        summary.to_u32()
    ));
    drop(guard);
}

thread_local! {
    /// Triggers vigil itself is dropping (DETACH cleanup, drop_rollup):
    /// the sql_drop event trigger lets those go.
    static OWN_DROPS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Drops trigger `oid` of a table Citus distributes as vigil's own doing
/// (see `OWN_DROPS`), by a DROP TRIGGER that Citus carries to the shards.
pub(super) fn drop_own_distributed_trigger(oid: pg_sys::Oid) {
    let Some(statement) = crate::sqlglue::read_one::<String>(&format!(
        "SELECT pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::pg_catalog.regclass) \
         FROM pg_catalog.pg_trigger t WHERE t.oid = {}",
        oid.to_u32()
    ))
    .ok()
    .flatten() else {
        return;
    };
    OWN_DROPS.with(|o| o.borrow_mut().push(oid.to_u32()));
    spi_run(&statement);
}

/// Drops trigger `oid` as vigil's own doing (see `OWN_DROPS`).
pub(super) fn drop_own_trigger(oid: pg_sys::Oid) {
    OWN_DROPS.with(|o| o.borrow_mut().push(oid.to_u32()));
    let object = pg_sys::ObjectAddress {
        classId: pg_sys::TriggerRelationId,
        objectId: oid,
        objectSubId: 0,
    };
    // SAFETY: an existing trigger; the caller checked the rights.
    unsafe {
        pg_sys::performDeletion(&object, pg_sys::DropBehavior::DROP_RESTRICT, 0);
        pg_sys::CommandCounterIncrement();
    }
}

/// Links triggers on `table` (the source, `on_source`, or one of its
/// partitions) to the summary and to the columns of `table` the rollup
/// reads; the filters' objects too on the source (a partition's columns
/// are the parent's: they cannot be dropped or retyped on their own).
fn link_triggers(
    r: &Rollup,
    table: pg_sys::Oid,
    summary: pg_sys::Oid,
    triggers: &[pg_sys::Oid],
    on_source: bool,
) {
    let class = pg_sys::RelationRelationId;
    let trig = pg_sys::TriggerRelationId;
    let columns: Vec<i16> = used_columns(r)
        .iter()
        .map(|c| attnum(table, c))
        .filter(|a| *a > 0)
        .collect();
    for t in triggers {
        let t = *t;
        remember_trigger(t, summary, on_source);
        if depends((trig, t), (class, summary, 0)) {
            continue;
        }
        record((trig, t), (class, summary, 0));
        for a in &columns {
            record((trig, t), (class, table, i32::from(*a)));
        }
        if on_source {
            for (m, _) in r.measures.iter().filter(|(m, _)| m.counts_for.is_none()) {
                if let Some(f) = &m.filter {
                    record_filter_dependencies(t, table, r, f);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// Filters under renames

struct ColumnRefs {
    /// (location, fields) of every column reference.
    refs: Vec<(i32, Vec<String>)>,
}

unsafe extern "C-unwind" fn collect_refs(
    node: *mut pg_sys::Node,
    ctx: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    if (*node).type_ == pg_sys::NodeTag::T_ColumnRef {
        let c = node as *mut pg_sys::ColumnRef;
        let mut fields = Vec::new();
        for f in super::sql::list_cells((*c).fields) {
            let f = f as *mut pg_sys::Node;
            if (*f).type_ == pg_sys::NodeTag::T_String {
                let s = (*(f as *mut pg_sys::String)).sval;
                fields.push(std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned());
            } else {
                fields.push("*".into());
            }
        }
        (*(ctx as *mut ColumnRefs))
            .refs
            .push(((*c).location, fields));
        return false;
    }
    pg_sys::raw_expression_tree_walker(node, Some(collect_refs), ctx)
}

/// The column references of `filter`, by PostgreSQL's raw parser: byte
/// offset in `filter` and the dotted names.
fn column_refs(filter: &str) -> Vec<(usize, Vec<String>)> {
    const PREFIX: &str = "SELECT (";
    let Ok(sql) = std::ffi::CString::new(format!("{PREFIX}{filter})")) else {
        return Vec::new();
    };
    let mut refs = ColumnRefs { refs: Vec::new() };
    // SAFETY: the filter was accepted by create_rollup, so it parses; the
    // walker only reads the tree.
    unsafe {
        let stmts = pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        for raw in super::sql::list_cells(stmts) {
            let stmt = (*(raw as *mut pg_sys::RawStmt)).stmt;
            let sel = stmt as *mut pg_sys::SelectStmt;
            for t in super::sql::list_cells((*sel).targetList) {
                let t = t as *mut pg_sys::ResTarget;
                collect_refs(
                    (*t).val,
                    &mut refs as *mut ColumnRefs as *mut std::ffi::c_void,
                );
            }
        }
    }
    refs.refs
        .into_iter()
        .filter(|(loc, _)| *loc >= PREFIX.len() as i32)
        .map(|(loc, f)| (loc as usize - PREFIX.len(), f))
        .collect()
}

/// Whether `filter` spells a column as a Unicode-escape identifier
/// (`U&"..."`), which renames cannot follow in its text.
pub(super) fn unicode_escaped_column(filter: &str) -> bool {
    column_refs(filter).iter().any(|(at, _)| {
        filter
            .as_bytes()
            .get(*at..*at + 2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"u&"))
    })
}

/// The end of the identifier (plain or double-quoted) starting at `at`.
fn identifier_end(text: &[u8], at: usize) -> usize {
    let mut i = at;
    if text.get(i) == Some(&b'"') {
        i += 1;
        while i < text.len() {
            if text[i] == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        return i;
    }
    while i < text.len()
        && (text[i].is_ascii_alphanumeric()
            || text[i] == b'_'
            || text[i] == b'$'
            || text[i] >= 0x80)
    {
        i += 1;
    }
    i
}

/// `filter` with every reference to column `old` of the source (plain, or
/// qualified by the source's name) spelled `new`. The positions come from
/// PostgreSQL's parser; only the identifier tokens there are rewritten.
pub(super) fn rename_in_filter(filter: &str, source_name: &str, old: &str, new: &str) -> String {
    let bytes = filter.as_bytes();
    let mut edits: Vec<(usize, usize)> = Vec::new();
    for (loc, fields) in column_refs(filter) {
        let hit = match fields.as_slice() {
            [c] => c == old,
            [t, c] => t == source_name && c == old,
            [_, t, c] => t == source_name && c == old,
            _ => false,
        };
        if !hit {
            continue;
        }
        // Walk to the last identifier of the dotted reference.
        let mut start = loc;
        let mut end = identifier_end(bytes, start);
        for _ in 1..fields.len() {
            let mut i = end;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if bytes.get(i) != Some(&b'.') {
                break;
            }
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            start = i;
            end = identifier_end(bytes, start);
        }
        edits.push((start, end));
    }
    let mut out = filter.to_string();
    for (start, end) in edits.into_iter().rev() {
        out.replace_range(start..end, &ident(new));
    }
    out
}

/// A column reference of `filter` written with a table name (`ev.v`), if
/// any: filters name columns alone, so renaming or moving the source keeps
/// them valid.
pub(super) fn qualified_reference(filter: &str) -> Option<String> {
    column_refs(filter)
        .into_iter()
        .find(|(_, f)| f.len() > 1)
        .map(|(_, f)| f.join("."))
}

/// The columns `filter` reads (the last name of each reference).
pub(super) fn filter_columns(filter: &str) -> Vec<String> {
    column_refs(filter)
        .into_iter()
        .filter_map(|(_, f)| f.last().cloned())
        .collect()
}

// ---------------------------------------------------------------------
// Partitioned sources

/// Every table below `source` in its partition tree (intermediate and leaf
/// partitions), with its quoted qualified name.
fn partitions(source: pg_sys::Oid) -> Vec<(pg_sys::Oid, String)> {
    let sql = format!(
        "SELECT t.relid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
         FROM pg_catalog.pg_partition_tree({}::pg_catalog.oid) t \
         JOIN pg_catalog.pg_class c ON c.oid = t.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE t.level > 0 ORDER BY t.level, t.relid",
        source.to_u32()
    );
    pairs::<pg_sys::Oid, String>(&sql)
}

/// Whether `ancestor` is a partitioned table above `rel`.
pub(super) fn is_ancestor(ancestor: pg_sys::Oid, rel: pg_sys::Oid) -> bool {
    ancestor != rel
        && crate::sqlglue::read_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors({}::pg_catalog.oid) a WHERE a.relid = {})",
            rel.to_u32(),
            ancestor.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The triggers linked to `summary`, on any table.
fn all_linked(summary: pg_sys::Oid) -> Vec<(pg_sys::Oid, pg_sys::Oid)> {
    let sql = format!(
        "SELECT t.oid, t.tgrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_trigger t ON t.oid = d.objid \
         WHERE d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.refobjid = {} AND d.refobjsubid = 0 AND t.tgfoid = 'vigil._rollup_trigger'::pg_catalog.regproc",
        summary.to_u32()
    );
    pairs::<pg_sys::Oid, pg_sys::Oid>(&sql)
}

/// Gives every partition of a partitioned source the rollup's four
/// triggers (DML that names a partition fires only that partition's
/// statement triggers; DML through the parent fires only the parent's, so
/// each row is counted once) and drops them from tables no longer in the
/// tree (a detached partition is an ordinary table again). Only once the
/// source's own triggers are linked: a restore creates the partitions'
/// triggers itself, after the parent's. The caller acts as the owner.
pub(super) fn ensure_partition_triggers(
    guard: &Restricted,
    r: &Rollup,
    source: pg_sys::Oid,
    summary: pg_sys::Oid,
    backfill: bool,
) {
    let all = all_linked(summary);
    if all.iter().filter(|(_, rel)| *rel == source).count() < 4 {
        return;
    }
    let owner = rel_owner(source);
    let members = partitions(source);
    let mut left: Vec<pg_sys::Oid> = Vec::new();
    for (oid, rel) in &all {
        if *rel != source && !members.iter().any(|(m, _)| m == rel) {
            // Rows this transaction wrote into the table that left, kept
            // for the commit (pending.rs), are written while its triggers
            // are still there.
            super::pending::flush(Some(summary));
            drop_own_trigger(*oid);
            if !left.contains(rel) {
                left.push(*rel);
            }
        }
    }
    // Tables that left the tree (DETACH) keep their rows in the summary as
    // history (remembered, so that attaching one again adds nothing), or,
    // with on_detach = subtract, the buckets they held are recomputed from
    // what the source still has (then attaching one again adds its rows).
    if !left.is_empty() {
        guard.act_as(crate::security::extension_owner());
        let subtract = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT d.on_detach = 'subtract' FROM vigil.rollup_defs d WHERE d.summary = {}",
            summary.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false);
        for rel in left
            .into_iter()
            .filter(|rel| rel_owner(*rel) != pg_sys::InvalidOid)
        {
            if subtract {
                subtract_detached(guard, r, rel, owner);
                guard.act_as(crate::security::extension_owner());
                continue;
            }
            spi_run(&format!(
                "INSERT INTO vigil.rollup_detached (summary, rel) VALUES ({}, {}) ON CONFLICT DO NOTHING",
                summary.to_u32(),
                rel.to_u32()
            ));
        }
        guard.act_as(owner);
    }
    for (member, name) in members {
        super::require_trusted_schema(
            super::sql::rel_schema(member),
            owner,
            &format!("rollup {}: partition {name}", summary_label(summary)),
        );
        let have: Vec<&'static str> = rollup_triggers(Some(member), None)
            .into_iter()
            .filter(|t| linked(t.oid, summary))
            .map(|t| t.op)
            .collect();
        if have.len() == 4 {
            continue;
        }
        let leaf = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT c.relkind = 'r' FROM pg_catalog.pg_class c WHERE c.oid = {}",
            member.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false);
        if backfill && have.is_empty() && leaf && attached_now(member, source) {
            guard.act_as(crate::security::extension_owner());
            let history = Spi::get_one::<bool>(&format!(
                "WITH gone AS (DELETE FROM vigil.rollup_detached WHERE summary = {} AND rel = {} RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM gone)",
                summary.to_u32(),
                member.to_u32()
            ))
            .ok()
            .flatten()
            .unwrap_or(false);
            if !history {
                // A table attached with rows in it: they join the summary,
                // read through the partitioned table as its owner (the
                // partition's own policies, which its owner controls,
                // never run).
                guard.act_as(owner);
                let _writing = super::sql::Writing::enter(summary);
                spi_run(&r.add_statement(&through_parent(r, member), false));
                drop(_writing);
                // The summary changed without the trigger: its rolling
                // totals are filled afresh from it.
                super::rolling::recompute_all(summary);
                guard.act_as(owner);
            }
        }
        // CREATE TRIGGER needs TRIGGER on the partition: as its owner (a
        // superuser, or pg_partman, may have made it).
        guard.act_as(rel_owner(member));
        let names: Vec<String> = OPS.iter().map(|op| r.trigger_name_raw(op)).collect();
        for (op, sql) in OPS.iter().zip(r.triggers_on(&name)) {
            if !have.contains(op) {
                spi_run(&sql);
            }
        }
        // Link only the triggers just made (by their names), never one
        // someone else put there naming the summary.
        let fresh: Vec<pg_sys::Oid> = rollup_triggers(Some(member), None)
            .into_iter()
            .filter(|t| !linked(t.oid, summary) && names.contains(&t.name) && !have.contains(&t.op))
            .map(|t| t.oid)
            .collect();
        link_triggers(r, member, summary, &fresh, false);
    }
    guard.act_as(owner);
}

/// Whether `member` joined `source`'s partition tree in this transaction
/// (its own pg_inherits row, or one of an ancestor below `source`, was
/// written by it): the only time a leaf without triggers has rows the
/// summary lacks. A leaf whose triggers someone else took away (renamed,
/// replaced) is never counted twice.
fn attached_now(member: pg_sys::Oid, source: pg_sys::Oid) -> bool {
    let xmins: Vec<String> = Spi::connect(|client| {
        client
            .select(
                &format!(
                    "SELECT i.xmin::pg_catalog.text FROM pg_catalog.pg_inherits i \
                     WHERE i.inhrelid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors({m}) a \
                                          WHERE a.relid <> {s} \
                                            AND a.relid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree({s}) t))",
                    m = member.to_u32(),
                    s = source.to_u32()
                ),
                None,
                &[],
            )
            .unwrap()
            .filter_map(|row| row.get::<String>(1).ok().flatten())
            .collect()
    });
    xmins
        .iter()
        .filter_map(|x| x.parse::<u32>().ok())
        .any(|xid| {
            // SAFETY: a plain check of this backend's transaction state.
            unsafe { pg_sys::TransactionIdIsCurrentTransactionId(pg_sys::TransactionId::from(xid)) }
        })
}

/// The rows of partition `member` read through the rollup's source: a
/// FROM item for the generated statements.
/// on_detach = subtract: the bucket range the detached table `rel` holds
/// is read as that table's owner (its policies are its owner's code and run
/// as no one else; at worst it hides rows of its own, which then stay as
/// history), then those buckets are recomputed from the source, read
/// through the partitioned table, as the rollup's owner.
fn subtract_detached(guard: &Restricted, r: &Rollup, rel: pg_sys::Oid, owner: pg_sys::Oid) {
    // Rows this transaction wrote and kept for its commit (pending.rs) are
    // counted before the range is recomputed.
    if let Some(summary) = regclass_of(&r.table()) {
        super::pending::flush(Some(summary));
    }
    let (schema, name) = super::sql::relation_name(rel, "a detached partition");
    guard.act_as(rel_owner(rel));
    let range = crate::sqlglue::read_two::<String, String>(&r.bucket_range_of(&format!(
        "{}.{}",
        ident(&schema),
        ident(&name)
    )))
    .ok();
    guard.act_as(owner);
    if let Some((Some(lo), Some(hi))) = range {
        let at = |t: &str| format!("{}::pg_catalog.timestamptz", literal(t));
        for sql in r.recompute_range_statements(&at(&lo), &at(&hi)) {
            spi_run(&sql);
        }
        // As for an attach: the rolling totals from the summary.
        if let Some(summary) = regclass_of(&r.table()) {
            super::rolling::recompute_all(summary);
        }
    }
}

pub(super) fn through_parent(r: &Rollup, member: pg_sys::Oid) -> String {
    format!(
        "(SELECT * FROM {} h WHERE h.tableoid OPERATOR(pg_catalog.=) {}::pg_catalog.oid)",
        r.source,
        member.to_u32()
    )
}

// ---------------------------------------------------------------------
// The event trigger's work

/// Definitions that involve relation `rel` (as summary or source).
fn defs_involving(rel: pg_sys::Oid) -> Vec<(pg_sys::Oid, pg_sys::Oid)> {
    let sql = format!(
        "SELECT d.summary::pg_catalog.oid, d.source::pg_catalog.oid FROM vigil.rollup_defs d \
         WHERE d.summary::pg_catalog.oid = {r} OR d.source::pg_catalog.oid = {r} \
            OR d.source::pg_catalog.oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors({r}::pg_catalog.oid) a)",
        r = rel.to_u32()
    );
    pairs::<pg_sys::Oid, pg_sys::Oid>(&sql)
}

fn live_columns(rel: pg_sys::Oid) -> Vec<(i16, String)> {
    let sql = format!(
        "SELECT a.attnum::int2, a.attname::text FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        rel.to_u32()
    );
    pairs::<i16, String>(&sql)
}

fn not_supported(message: String) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        message
    );
}

/// The stored definition of `summary`: (time_column, group_by,
/// group_source, measures).
fn stored(summary: pg_sys::Oid) -> (String, Vec<String>, Vec<String>, Value) {
    let row = Spi::connect(|client| {
        let mut rows = client
            .select(
                &format!(
                    "SELECT time_column::text, group_by::text[], coalesce(group_source, group_by)::text[], measures \
                     FROM vigil.rollup_defs WHERE summary = {}",
                    summary.to_u32()
                ),
                None,
                &[],
            )
            .unwrap();
        rows.next().map(|row| {
            (
                row.get::<String>(1).unwrap().unwrap(),
                row.get::<Vec<String>>(2).unwrap().unwrap_or_default(),
                row.get::<Vec<String>>(3).unwrap().unwrap_or_default(),
                row.get::<pgrx::JsonB>(4)
                    .unwrap()
                    .map(|j| j.0)
                    .unwrap_or(Value::Null),
            )
        })
    });
    row.unwrap_or_else(|| raise(VigilError::invalid("rollup definition vanished")))
}

/// Follows a rename of a source column the rollup reads: the name that the
/// definition uses but the source no longer has is the old one; the new
/// one is the column the rollup's triggers depend on that the definition
/// does not name. One rename per statement, so the pair is unique.
fn follow_column_rename(guard: &Restricted, summary: pg_sys::Oid, source: pg_sys::Oid) {
    let (time_column, group_by, group_source, mut measures) = stored(summary);
    let live = live_columns(source);
    let has = |c: &str| live.iter().any(|(_, n)| n == c);
    let mut used: Vec<String> = vec![time_column.clone()];
    used.extend(group_source.iter().cloned());
    if let Some(obj) = measures.as_object() {
        for spec in obj.values() {
            if let Some(c) = spec.get("column").and_then(Value::as_str) {
                used.push(c.to_string());
            }
            if let Some(f) = spec.get("filter").and_then(Value::as_str) {
                used.extend(filter_columns(f));
            }
        }
    }
    used.sort();
    used.dedup();
    let (_, source_rel) = relation_name(source, "source");
    let missing: Vec<&String> = used.iter().filter(|c| !has(c)).collect();
    if missing.is_empty() {
        return;
    }
    let depended: Vec<i16> = triggers_of(summary, source)
        .iter()
        .flat_map(|t| {
            Spi::connect(|client| {
                client
                    .select(
                        &format!(
                            "SELECT d.refobjsubid::int2 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass \
                             AND d.objid = {} AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {} AND d.refobjsubid > 0",
                            t.oid.to_u32(),
                            source.to_u32()
                        ),
                        None,
                        &[],
                    )
                    .unwrap()
                    .map(|row| row.get::<i16>(1).unwrap().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let fresh: Vec<&String> = live
        .iter()
        .filter(|(a, n)| depended.contains(a) && !used.contains(n))
        .map(|(_, n)| n)
        .collect();
    if missing.len() != 1 || fresh.len() != 1 {
        not_supported(format!(
            "rollup {}: cannot follow this change of {}: the rollup reads column(s) {} that the table no longer has",
            summary_label(summary),
            source_rel,
            missing.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    let (old, new) = (missing[0].clone(), fresh[0].clone());
    let rename = |c: &str| if c == old { new.clone() } else { c.to_string() };
    let time_column = rename(&time_column);
    let group_source: Vec<String> = group_source.iter().map(|c| rename(c)).collect();
    if let Some(obj) = measures.as_object_mut() {
        for spec in obj.values_mut() {
            if let Some(o) = spec.as_object_mut() {
                if o.get("column").and_then(Value::as_str) == Some(old.as_str()) {
                    o.insert("column".into(), Value::String(new.clone()));
                }
                if let Some(f) = o.get("filter").and_then(Value::as_str).map(str::to_string) {
                    o.insert(
                        "filter".into(),
                        Value::String(rename_in_filter(&f, &source_rel, &old, &new)),
                    );
                }
            }
        }
    }
    let array = |v: &[String]| {
        format!(
            "ARRAY[{}]::name[]",
            v.iter().map(|s| literal(s)).collect::<Vec<_>>().join(", ")
        )
    };
    guard.act_as(crate::security::extension_owner());
    spi_run(&format!(
        "UPDATE vigil.rollup_defs SET time_column = {}, group_source = {}, measures = {}::jsonb WHERE summary = {}",
        literal(&time_column),
        if group_source == group_by {
            "NULL".to_string()
        } else if group_source.is_empty() {
            "'{}'::name[]".to_string()
        } else {
            array(&group_source)
        },
        literal(&measures.to_string()),
        summary.to_u32()
    ));
}

fn summary_label(summary: pg_sys::Oid) -> String {
    crate::sqlglue::read_one::<String>(&format!(
        "SELECT {}::pg_catalog.regclass::text",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("(oid {})", summary.to_u32()))
}

thread_local! {
    /// Set while `refresh_triggers` replaces the rollup's own triggers: any
    /// other CREATE OR REPLACE of a linked trigger is refused (`relink`).
    static REFRESHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The summary whose linked trigger `trigger` is (or was) in
/// `vigil.rollup_triggers`.
fn remembered(trigger: pg_sys::Oid) -> Option<pg_sys::Oid> {
    crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT rt.summary FROM vigil.rollup_triggers rt WHERE rt.trigger = {}",
        trigger.to_u32()
    ))
    .ok()
    .flatten()
}

/// Re-creates the rollup's triggers (same names, same oids: CREATE OR
/// REPLACE) with the current summary name and definition as arguments,
/// then records their dependencies again. As the owner.
fn refresh_triggers(
    guard: &Restricted,
    summary: pg_sys::Oid,
    source: pg_sys::Oid,
    owner: pg_sys::Oid,
) {
    guard.act_as(crate::security::extension_owner());
    let r = super::sql::load(summary);
    // The source's own linked triggers, and its partitions'.
    let mut tables = vec![(source, r.source.clone())];
    tables.extend(partitions(source));
    for (table, name) in tables {
        // CREATE OR REPLACE TRIGGER needs TRIGGER on the table: a partition
        // is re-created as its own owner, as ensure_partition_triggers
        // creates it (the trigger still runs as the source's owner).
        guard.act_as(if table == source {
            owner
        } else {
            rel_owner(table)
        });
        let triggers: Vec<RollupTrigger> = rollup_triggers(Some(table), None)
            .into_iter()
            .filter(|t| linked(t.oid, summary))
            .collect();
        // Only the linked triggers are refreshed: a missing one is never
        // created here (a restore is still creating them, or the rollup
        // is broken and vigil.rollups.status says so).
        let up_to_date = triggers.iter().all(|t| {
            t.args.len() == 2
                && t.args[1] == r.definition
                && regclass_of(&t.args[0]) == Some(summary)
                && t.args[0] == r.table()
        });
        if up_to_date {
            continue;
        }
        let names: std::collections::HashMap<&str, String> =
            triggers.iter().map(|t| (t.op, ident(&t.name))).collect();
        for (op, sql) in OPS.iter().zip(r.triggers_for(
            &name,
            |op| names.get(op).cloned().unwrap_or_default(),
            true,
        )) {
            if names.contains_key(op) {
                let _refreshing = super::Raised::while_alive(&REFRESHING);
                spi_run(&sql);
            }
        }
        // CREATE OR REPLACE enables a trigger: a paused (DISABLE) or
        // replica/always one keeps its state.
        for t in &triggers {
            let how = match t.state.as_str() {
                "D" => "DISABLE",
                "R" => "ENABLE REPLICA",
                "A" => "ENABLE ALWAYS",
                _ => continue,
            };
            spi_run(&format!(
                "ALTER TABLE {name} {how} TRIGGER {}",
                ident(&t.name)
            ));
        }
        // CREATE OR REPLACE keeps each trigger's oid and drops its
        // dependency records: link the same triggers again.
        let oids: Vec<pg_sys::Oid> = triggers.iter().map(|t| t.oid).collect();
        if table == source {
            record_dependencies(&r, source, summary, &oids);
        } else {
            link_triggers(&r, table, summary, &oids, false);
        }
    }
}

/// Whether the summary still has exactly the columns the rollup made, of
/// the types it made them (typmod included; not the collation, which
/// summaries made before 0.2.0 did not copy from the source).
fn summary_shape_holds(summary: pg_sys::Oid, r: &Rollup) -> bool {
    // Each type as PostgreSQL resolves the name the rollup creates the
    // column with (the caller's search path is pinned): (oid, typmod).
    let mut expected: Vec<(String, (u32, i32))> = r
        .summary_columns()
        .into_iter()
        .map(|(name, ty, _, _)| (name, parse_type(&ty)))
        .collect();
    let sql = format!(
        "SELECT a.attname::text, a.atttypid::pg_catalog.int8, a.atttypmod FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped",
        summary.to_u32()
    );
    let mut live: Vec<(String, (u32, i32))> = Spi::connect(|client| {
        client
            .select(&sql, None, &[])
            .unwrap()
            .filter_map(|row| {
                let name = row.get::<String>(1).ok()??;
                Some((
                    name,
                    (row.get::<i64>(2).ok()?? as u32, row.get::<i32>(3).ok()??),
                ))
            })
            .collect()
    });
    live.sort();
    expected.sort();
    live == expected
}

/// The type a type name the rollup wrote means: (oid, typmod).
fn parse_type(name: &str) -> (u32, i32) {
    let c = std::ffi::CString::new(name).expect("type names have no NUL");
    let (mut oid, mut typmod) = (pg_sys::InvalidOid, -1i32);
    // SAFETY: a NUL-terminated string and two out-parameters; a name that
    // resolves to no type raises (the rollup's own names always resolve:
    // the summary depends on each type).
    unsafe { pg_sys::parseTypeString(c.as_ptr(), &mut oid, &mut typmod, false) };
    (oid.to_u32(), typmod)
}

/// After ALTER TABLE (or RENAME, SET SCHEMA, OWNER TO) of relation `rel`:
/// keeps every rollup that involves it working, or refuses the change.
fn sync(guard: &Restricted, rel: pg_sys::Oid) {
    for (summary, source) in defs_involving(rel) {
        if rel == summary && super::definition::replacing() {
            continue;
        }
        let src_owner = rel_owner(source);
        let sum_owner = rel_owner(summary);
        if src_owner == pg_sys::InvalidOid || sum_owner == pg_sys::InvalidOid {
            continue;
        }
        if src_owner != sum_owner {
            // Nothing is handed over automatically: a summary may carry
            // objects (indexes on expressions, policies, functions over it)
            // its owner made, which must never start running as someone
            // else. The summary (and its `_since` function and views) is
            // handed over first, by whoever may, then the source.
            if rel == summary {
                continue;
            }
            denied(format!(
                "rollup {}: its summary table belongs to {}, not to the source's new owner {}; hand the rollup over first \
                 (ALTER TABLE {} OWNER TO {}, and its _since functions and views), then the source, in one transaction",
                summary_label(summary),
                role_name(sum_owner),
                role_name(src_owner),
                summary_label(summary),
                role_name(src_owner)
            ));
        }
        // Its rolling totals (rolling.rs) are written as the source's
        // owner: handed over with the summary, before the source.
        if rel != summary {
            for (totals, view) in super::rolling::objects_of(summary) {
                for o in [totals, view] {
                    if rel_owner(o) != src_owner {
                        denied(format!(
                            "rollup {}: its rolling total {} belongs to {}, not to the source's new owner {}; hand it over \
                             first (ALTER TABLE and ALTER VIEW … OWNER TO {}), with the summary, then the source",
                            summary_label(summary),
                            summary_label(o),
                            role_name(rel_owner(o)),
                            role_name(src_owner),
                            role_name(src_owner)
                        ));
                    }
                }
            }
        }
        for (r, what) in [(summary, "summary"), (source, "source")] {
            let schema = super::sql::rel_schema(r);
            super::require_trusted_schema(
                schema,
                src_owner,
                &format!("rollup {}: {what}", summary_label(summary)),
            );
        }
        if rel == source {
            follow_column_rename(guard, summary, source);
        }
        guard.act_as(crate::security::extension_owner());
        let r = super::sql::load(summary);
        if rel == summary && !summary_shape_holds(summary, &r) {
            not_supported(format!(
                "rollup {}: the columns of a summary table belong to its rollup; drop and re-create the rollup to change them",
                summary_label(summary)
            ));
        }
        // What the summary vouches for first (on Citus, workers check it
        // when the refreshed triggers reach the shards), then the triggers.
        let linked: Vec<(String, &str)> = triggers_of(summary, source)
            .into_iter()
            .filter(|t| linked(t.oid, summary))
            .map(|t| (t.name, t.op))
            .collect();
        super::definition::refresh(guard, &r, summary, source, src_owner, &linked);
        guard.act_as(crate::security::extension_owner());
        refresh_triggers(guard, summary, source, src_owner);
        guard.act_as(src_owner);
        ensure_partition_triggers(guard, &r, source, summary, true);
        if rel == source {
            refresh_distributed_exact_window(guard, &r, summary, source);
        }
        guard.act_as(crate::security::extension_owner());
    }
}

/// A distributed rollup's exact window function (PL/pgSQL: Citus plans
/// no parameterized SQL-function query) holds the source's column names as
/// text, not a parsed query that follows renames: written again, under
/// the name it has, after DDL on the source. A local rollup's is `BEGIN
/// ATOMIC` and follows by itself. Runs as the source's owner (`sync`).
fn refresh_distributed_exact_window(
    guard: &Restricted,
    r: &Rollup,
    summary: pg_sys::Oid,
    source: pg_sys::Oid,
) {
    if !matches!(
        super::citus::managed(summary),
        Some(super::citus::Managed::Distributed(_))
    ) {
        return;
    }
    let Some(name) = crate::sqlglue::read_one::<String>(&format!(
        "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname) \
         FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid OPERATOR(pg_catalog.=) {} \
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND p.proargtypes OPERATOR(pg_catalog.=) '1186 16'::pg_catalog.oidvector LIMIT 1",
        summary.to_u32()
    ))
    .ok()
    .flatten() else {
        return;
    };
    let sql = r.since_exact_function_distributed_sql(
        Some(&name),
        summary.to_u32(),
        source.to_u32(),
        !super::sql::filters_immutable(r),
    );
    guard.set_if_defined(c"citus.enable_ddl_propagation", c"off");
    spi_run(&sql);
    // CREATE OR REPLACE dropped the dependencies create_rollup recorded.
    record_window_dependency(
        &format!("{name}(pg_catalog.interval, pg_catalog.bool)"),
        &[summary, source],
    );
}

/// After CREATE TRIGGER of a rollup trigger (a restore, or a trigger
/// refresh): records its dependencies; when its rollup has no definition
/// (a dump of the application's schema alone), registers the one the
/// trigger carries, for a caller with the source owner's rights.
fn relink(guard: &Restricted, trigger: pg_sys::Oid) {
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid = {}",
        trigger.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid);
    let owner = rel_owner(source);
    // None when the trigger (no longer) calls vigil._rollup_trigger.
    let found = rollup_triggers(None, Some(trigger)).pop();
    // A CREATE OR REPLACE TRIGGER of one of a rollup's linked triggers
    // (same oid) would turn it into something else behind the rollup:
    // refused like DROP TRIGGER, unless it is vigil's own refresh.
    if let Some(summary) = remembered(trigger) {
        let refreshing = REFRESHING.with(|f| f.get());
        // On a Citus worker, the coordinator's refresh of a distributed
        // rollup's triggers (a rename) arrives as CREATE OR REPLACE TRIGGER
        // on each shard, run by the owner: linked again (replacing dropped
        // its dependency records; its argument may name a shell this worker
        // has not renamed yet) if it is still vigil's trigger for its event.
        let shard_refresh = found.is_some()
            && super::citus::is_shard(summary)
            && has_privs_of_role(guard.caller(), owner);
        if shard_refresh && !refreshing {
            let t = found.as_ref().expect("checked");
            let def = t.args.get(1).map(String::as_str).unwrap_or_default();
            if super::citus::vouched(summary, source, &t.name, t.op, def) {
                let r = super::sql::load(summary);
                guard.act_as(owner);
                record_dependencies(&r, source, summary, &[trigger]);
            }
            return;
        }
        if !refreshing {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot replace a trigger of rollup {}",
                    summary_label(summary)
                ),
                "SELECT vigil.drop_rollup(...) drops the rollup; ALTER TABLE ... DISABLE TRIGGER pauses it."
            );
        }
        // vigil's own refresh links the triggers it replaced itself.
        return;
    }
    let Some(t) = found else {
        return;
    };
    let Some(summary) = t.args.first().and_then(|a| regclass_of(a)) else {
        return;
    };
    // On a Citus worker, the trigger Citus made on a shard of a distributed
    // source maintains the co-located shard of the summary, with the
    // definition that summary shard carries, and only if it is the trigger
    // vigil made for its event (citus.rs); nothing else on a shard is linked.
    let (summary, trusted) = if super::citus::is_shard(source) {
        let Some(shard) = super::citus::colocated_shard(source, summary) else {
            return;
        };
        let Some(def) = t.args.get(1).cloned() else {
            return;
        };
        if !super::citus::vouched(shard, source, &t.name, t.op, &def) {
            return;
        }
        (shard, Some(def))
    } else {
        (summary, None)
    };
    let known = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::pg_catalog.oid FROM vigil.rollup_defs d WHERE d.summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten();
    if !has_privs_of_role(guard.caller(), owner) || linked(trigger, summary) {
        // Only the owner's own triggers are linked: a role with TRIGGER on
        // the source cannot make one that the rollup trigger accepts.
        return;
    }
    if linked_triggers(summary, source)
        .iter()
        .any(|o| o.op == t.op)
    {
        return;
    }
    // What the summary vouches for (definition.rs): for a known rollup on
    // its source's name, for a restore registering one on this trigger's
    // table. A restore registers nothing a summary does not vouch for.
    let mut vouched = trusted.is_some().then_some(true);
    if trusted.is_none() {
        let named = known.map_or(source, |s| s);
        let Some(qualified) = table_name(named) else {
            return;
        };
        vouched = super::definition::vouches(
            summary,
            &qualified,
            None,
            &t.name,
            t.op,
            None,
            t.args.get(1).map(String::as_str).unwrap_or_default(),
        );
        if vouched == Some(false) {
            return;
        }
    }
    match known {
        Some(s) if s == source => {
            let r = super::sql::load(summary);
            guard.act_as(owner);
            record_dependencies(&r, source, summary, &[trigger]);
        }
        Some(s) if is_ancestor(s, source) => {
            // A partition's trigger (restored after its parent's).
            let r = super::sql::load(summary);
            guard.act_as(owner);
            link_triggers(&r, source, summary, &[trigger], false);
        }
        Some(_) => {}
        None => {
            // A distributed table's own trigger (a shell's, on a Citus
            // worker) sees no rows: its shards' triggers do the work.
            if rel_owner(summary) != owner
                || super::citus::is_shell(source)
                || super::citus::is_shell(summary)
            {
                return;
            }
            // The definition the trigger carries, which the summary vouched
            // for; a summary that vouches for nothing registers nothing.
            let def = match trusted {
                Some(def) => def,
                None if vouched == Some(true) && t.args.len() == 2 => t.args[1].clone(),
                None => return,
            };
            register_from_trigger(guard, summary, source, owner, trigger, &def);
        }
    }
}

/// The quoted, qualified name of table `rel` (ordinary or partitioned),
/// None for anything else.
fn table_name(rel: pg_sys::Oid) -> Option<String> {
    // Quoted as `Rollup::source` is (every name quoted): the digest covers it.
    crate::sqlglue::read_two::<String, String>(&format!(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = {} AND c.relkind IN ('r', 'p')",
        rel.to_u32()
    ))
    .ok()
    .and_then(|(n, c)| Some(format!("{}.{}", ident(&n?), ident(&c?))))
}

/// Registers the definition a restored trigger carries (what create_rollup
/// wrote), checked as create_rollup checks it.
fn register_from_trigger(
    guard: &Restricted,
    summary: pg_sys::Oid,
    source: pg_sys::Oid,
    owner: pg_sys::Oid,
    trigger: pg_sys::Oid,
    json: &str,
) {
    let Ok(def) = serde_json::from_str::<Value>(json) else {
        return;
    };
    let text = |k: &str| def.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| -> Vec<String> {
        def.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (Some(time_column), Some(bucket), Some(measures)) = (
        text("time_column"),
        text("bucket"),
        def.get("measures").cloned(),
    ) else {
        return;
    };
    let group_by = list("group_by");
    let mut group_source = list("group_source");
    if group_source.len() != group_by.len() {
        group_source = group_by.clone();
    }
    // The bucket as create_rollup accepts it (a fixed, positive length);
    // anything else is no definition vigil wrote.
    let bucket_sql = format!("SELECT {}::pg_catalog.interval", literal(&bucket));
    let Some(interval) = crate::security::catching(|| {
        crate::sqlglue::read_one::<Interval>(&bucket_sql)
            .ok()
            .flatten()
    })
    .ok()
    .flatten() else {
        return;
    };
    let Ok(bucket) = crate::security::catching(|| super::sql::interval_text(&interval)) else {
        return;
    };
    for (r, what) in [(summary, "summary"), (source, "source")] {
        let schema = super::sql::rel_schema(r);
        super::require_trusted_schema(schema, owner, &format!("restored rollup {what}"));
    }
    let (schema, name) = relation_name(summary, "summary");
    guard.act_as(owner);
    let r = define(
        schema,
        name,
        source,
        &time_column,
        bucket.clone(),
        &group_by,
        &group_source,
        &measures,
        super::Names::Kept,
    );
    for (m, _) in r.measures.iter().filter(|(m, _)| m.counts_for.is_none()) {
        if let Some(f) = &m.filter {
            check_filter(&r.source, &m.name, f);
        }
    }
    if !summary_shape_holds(summary, &r) {
        return;
    }
    guard.act_as(crate::security::extension_owner());
    let array = |v: &[String]| {
        if v.is_empty() {
            "'{}'::name[]".to_string()
        } else {
            format!(
                "ARRAY[{}]::name[]",
                v.iter().map(|s| literal(s)).collect::<Vec<_>>().join(", ")
            )
        }
    };
    spi_run(&format!(
        "INSERT INTO vigil.rollup_defs (summary, source, time_column, bucket, group_by, group_source, measures) \
         VALUES ({}, {}, {}, {}::interval, {}, {}, {}::jsonb) ON CONFLICT (summary) DO NOTHING",
        summary.to_u32(),
        source.to_u32(),
        literal(&time_column),
        literal(&bucket),
        array(&group_by),
        if group_source == group_by {
            "NULL".to_string()
        } else {
            array(&group_source)
        },
        literal(&measures.to_string())
    ));
    guard.act_as(owner);
    record_dependencies(&r, source, summary, &[trigger]);
}

/// Called by the `vigil_rollup_ddl` event trigger (ddl_command_end) for
/// each command's object: keeps the rollups that involve it working, or
/// refuses the command. Safe to call directly: it only brings rollups in
/// line with the catalogs, and registers a definition only for a caller
/// with the source owner's rights.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_rollup_ddl")]
fn rollup_ddl(classid: pg_sys::Oid, objid: pg_sys::Oid) {
    // Every lookup below runs with the catalog-only search path: the
    // caller's path (its operators, functions) never reaches vigil's SQL.
    let _path = crate::security::Restricted::enter();
    // Only for an object of the DDL command being completed: outside a
    // ddl_command_end event trigger, pg_event_trigger_ddl_commands() raises
    // (39P03, "can only be called in an event trigger function"), so nobody
    // can have a rollup re-examined at will.
    let in_command = crate::sqlglue::read_one::<bool>(&format!(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() c \
         WHERE c.classid = {} AND c.objid = {})",
        classid.to_u32(),
        objid.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(false);
    if !in_command {
        return;
    }
    let guard = Restricted::enter_pinned();
    guard.citus_rollup_ddl();
    guard.act_as(crate::security::extension_owner());
    if classid == pg_sys::TriggerRelationId {
        relink(&guard, objid);
    } else if classid == pg_sys::RelationRelationId {
        refuse_inheritance(objid);
        sync(&guard, objid);
        // ALTER TYPE … RENAME ATTRIBUTE … CASCADE names the composite
        // type's relation; the typed tables made from it changed too.
        let typed: Vec<(pg_sys::Oid, pg_sys::Oid)> = pairs(&format!(
            "SELECT t.oid, t.reltype FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class t ON t.reloftype = c.reltype \
             WHERE c.oid = {} AND c.relkind = 'c'",
            objid.to_u32()
        ));
        for (rel, _) in typed {
            sync(&guard, rel);
        }
    } else if classid == pg_sys::TypeRelationId {
        // ALTER TYPE … RENAME ATTRIBUTE … CASCADE renames the columns of
        // the typed tables made from it.
        let typed: Vec<(pg_sys::Oid, pg_sys::Oid)> = pairs(&format!(
            "SELECT c.oid, c.reltype FROM pg_catalog.pg_class c WHERE c.reloftype = {}",
            objid.to_u32()
        ));
        for (rel, _) in typed {
            sync(&guard, rel);
        }
    } else if classid == pg_sys::NamespaceRelationId {
        // A renamed schema: the triggers' arguments name the summary.
        let defs: Vec<(pg_sys::Oid, pg_sys::Oid)> = pairs(&format!(
            "SELECT d.summary::pg_catalog.oid, d.source::pg_catalog.oid FROM vigil.rollup_defs d \
             JOIN pg_catalog.pg_class s ON s.oid = d.summary::pg_catalog.oid \
             JOIN pg_catalog.pg_class c ON c.oid = d.source::pg_catalog.oid \
             WHERE s.relnamespace = {o} OR c.relnamespace = {o}",
            o = objid.to_u32()
        ));
        for (summary, _) in defs {
            sync(&guard, summary);
        }
    }
    drop(guard);
}

/// Inheritance (not partitioning) around a rollup's source is refused
/// (0A000): DML through an inheritance parent fires only the parent's
/// statement triggers, so a child's rows would change behind the rollup.
pub(super) fn refuse_inheritance(rel: pg_sys::Oid) {
    let hit = crate::sqlglue::read_one::<String>(&format!(
        "SELECT d.summary::pg_catalog.text FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid \
         JOIN vigil.rollup_defs d ON d.source::pg_catalog.oid IN (i.inhparent, i.inhrelid) \
         WHERE (i.inhrelid = {r} OR i.inhparent = {r}) AND p.relkind = 'r' AND NOT ch.relispartition LIMIT 1",
        r = rel.to_u32()
    ))
    .ok()
    .flatten();
    if let Some(summary) = hit {
        not_supported(format!(
            "rollup {summary}: a rollup's source cannot take part in table inheritance (its rows would change behind the rollup); use declarative partitioning"
        ));
    }
}

/// `ok`, or why the rollup of `summary` is not being kept exact (for
/// `vigil.rollups.status` and `vigil.health`).
#[pg_extern(stable, strict, parallel_restricted, name = "_rollup_status")]
fn rollup_status(summary: pg_sys::Oid) -> Option<String> {
    // Every lookup below runs with the catalog-only search path: the
    // caller's path (its operators, functions) never reaches vigil's SQL.
    let _path = crate::security::Restricted::enter();
    let source = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::pg_catalog.oid FROM vigil.rollup_defs d WHERE d.summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()?;
    if rel_owner(source) == pg_sys::InvalidOid {
        return Some("broken: the source table is gone".into());
    }
    if rel_owner(source) != rel_owner(summary) {
        return Some(format!(
            "broken: the summary belongs to {}, the source to {} (hand the source over too)",
            role_name(rel_owner(summary)),
            role_name(rel_owner(source))
        ));
    }
    let labels = [
        ("ins", "INSERT"),
        ("del", "DELETE"),
        ("upd", "UPDATE"),
        ("trunc", "TRUNCATE"),
    ];
    let mut tables = vec![(source, String::new())];
    tables.extend(
        partitions(source)
            .into_iter()
            .map(|(o, n)| (o, format!(" of partition {n}"))),
    );
    let mut disabled: Vec<String> = Vec::new();
    for (table, label) in tables {
        // Only linked triggers maintain the summary (an unlinked one
        // someone else made or replaced maintains nothing).
        let triggers: Vec<RollupTrigger> = rollup_triggers(Some(table), None)
            .into_iter()
            .filter(|t| linked(t.oid, summary))
            .collect();
        let missing: Vec<&str> = labels
            .iter()
            .filter(|(op, _)| !triggers.iter().any(|t| t.op == *op))
            .map(|(_, l)| *l)
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "broken: no trigger maintains it on {}{label}",
                missing.join(", ")
            ));
        }
        disabled.extend(
            triggers
                .iter()
                .filter(|t| !t.enabled)
                .map(|t| format!("{}{label}", t.name)),
        );
    }
    if !disabled.is_empty() {
        return Some(format!(
            "stale: trigger(s) {} disabled",
            disabled.join(", ")
        ));
    }
    Some("ok".into())
}

/// Called by the sql_drop event trigger: for each rollup that lost a
/// trigger in this command (found through `vigil.rollup_triggers`, never
/// by looking at every rollup), refuses (2BP01) a DROP TRIGGER of one
/// (`vigil.drop_rollup` drops a rollup; DISABLE TRIGGER pauses it), and
/// drops the whole rollup when a CASCADE took the source's triggers (DROP
/// COLUMN … CASCADE, DROP FUNCTION … CASCADE of a filter's function).
/// Partition triggers going with their partition (DROP TABLE) and
/// vigil's own drops (DETACH, drop_rollup) are let go. Outside a sql_drop
/// event trigger it does nothing but fail.
#[pg_extern(volatile, parallel_unsafe, name = "_rollup_dropped")]
fn rollup_dropped() {
    let guard = Restricted::enter_pinned();
    guard.show_citus_shards();
    guard.act_as(crate::security::extension_owner());
    let sql = "SELECT rt.trigger, rt.summary, rt.on_source, o.original \
               FROM pg_catalog.pg_event_trigger_dropped_objects() o \
               JOIN vigil.rollup_triggers rt ON rt.trigger = o.objid \
               WHERE o.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass";
    let lost: Vec<(pg_sys::Oid, pg_sys::Oid, bool, bool)> = Spi::connect(|client| {
        client
            .select(sql, None, &[])
            .unwrap()
            .filter_map(|row| {
                Some((
                    row.get::<pg_sys::Oid>(1).ok()??,
                    row.get::<pg_sys::Oid>(2).ok()??,
                    row.get::<bool>(3).ok()??,
                    row.get::<bool>(4).ok()??,
                ))
            })
            .collect()
    });
    let own: Vec<u32> = OWN_DROPS.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let mut summaries: Vec<pg_sys::Oid> = lost.iter().map(|l| l.1).collect();
    summaries.sort_by_key(|o| o.to_u32());
    summaries.dedup();
    for summary in summaries {
        let alive = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM vigil.rollup_defs d JOIN pg_catalog.pg_class c ON c.oid = d.summary::pg_catalog.oid \
             WHERE d.summary::pg_catalog.oid = {})",
            summary.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false);
        if !alive {
            continue;
        }
        let mine = lost.iter().filter(|l| l.1 == summary);
        // A shard's trigger goes when its distributed table's does (the
        // coordinator refuses a DROP TRIGGER that is not vigil's own).
        if mine.clone().any(|l| l.3 && !own.contains(&l.0.to_u32()))
            && !super::citus::is_shard(summary)
        {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop a trigger of rollup {} on its own", summary_label(summary)),
                format!(
                    "SELECT vigil.drop_rollup('{}') drops the rollup; ALTER TABLE ... DISABLE TRIGGER pauses it.",
                    summary_label(summary).replace('\'', "''")
                )
            );
        }
        if mine.clone().any(|l| l.2 && !l.3) {
            if super::citus::is_shell(summary) {
                // A distributed summary goes by a DROP that Citus sees (its
                // shards and metadata with it).
                let table = crate::sqlglue::read_one::<String>(&format!(
                    "SELECT {}::pg_catalog.oid::pg_catalog.regclass::pg_catalog.text",
                    summary.to_u32()
                ))
                .ok()
                .flatten()
                .expect("the summary exists");
                guard.citus_rollup_ddl();
                spi_run(&format!("DROP TABLE {table} CASCADE"));
            } else {
                let object = pg_sys::ObjectAddress {
                    classId: pg_sys::RelationRelationId,
                    objectId: summary,
                    objectSubId: 0,
                };
                // SAFETY: the summary exists; the command that dropped its
                // triggers was allowed to (the source's owner's CASCADE).
                unsafe {
                    pg_sys::performDeletion(&object, pg_sys::DropBehavior::DROP_CASCADE, 0);
                    pg_sys::CommandCounterIncrement();
                }
            }
            spi_run(&format!(
                "DELETE FROM vigil.rollup_defs WHERE summary = {}",
                summary.to_u32()
            ));
        }
    }
    let gone: Vec<String> = lost.iter().map(|l| l.0.to_u32().to_string()).collect();
    if !gone.is_empty() {
        spi_run(&format!(
            "DELETE FROM vigil.rollup_triggers WHERE trigger IN ({})",
            gone.join(", ")
        ));
    }
    drop(guard);
}
