//! Rollups of Citus distributed tables (issue 18). The summary is itself a
//! distributed table, co-located with the source and distributed on the
//! same column (a `group_by` column), so every group lives in the shard
//! next to the source rows it summarizes. The shared trigger is created on
//! the distributed source (Citus copies it to every shard and to every
//! placement a move or rebalance makes, from `pg_get_triggerdef`), and each
//! shard pair is an ordinary rollup on its worker:
//!
//! - the constraint by which the summary vouches for its triggers
//!   (definition.rs: a digest of the definition, the source's first shard
//!   id and vigil's trigger names), which only the summary's owner can
//!   write, is on every summary shard: Citus copies it wherever a shard
//!   moves;
//! - when Citus creates a rollup trigger on a source shard (inside the
//!   coordinator's transaction, or a shard move or rebalance), vigil's
//!   `ddl_command_end` event trigger on that worker links it to the
//!   co-located summary *shard* (`colocated_shard`, never the shell) and
//!   registers the pair in the worker's `vigil.rollup_defs` from the
//!   definition it carries, only when the summary shard vouches for that
//!   trigger (its name with Citus's shard suffix, its table, its
//!   definition: `vouched`) and a role with the source owner's rights
//!   created it (`ddl::relink`): a trigger another role made (with TRIGGER
//!   on the table) is never linked, not even when a shard move recreates
//!   it as the owner;
//! - the trigger on a shard then maintains that summary shard locally, as
//!   the shard's owner in a security-restricted operation, in the same
//!   (distributed, two-phase) transaction as the write: exact at commit,
//!   and a worker failing mid-write fails the whole transaction;
//! - the trigger on the distributed table itself (the coordinator's shell,
//!   and the shells on workers) holds no rows and maintains nothing.
//!
//! Citus keeps its catalog in `pg_catalog`, and every lookup here runs with
//! the catalog-only search path: no name another role controls is resolved.

use crate::sqlglue::read_one;
use pgrx::prelude::*;

/// Whether Citus is installed in this database.
pub(super) fn present() -> bool {
    read_one::<bool>("SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// How Citus manages a table, when it does.
pub(super) enum Managed {
    /// Hash-distributed on this column.
    Distributed(String),
    /// Reference, Citus-local, or distributed by append or range: the
    /// kind, for an error message.
    Other(String),
}

/// How Citus manages `rel` (None: a plain table, or no Citus).
pub(super) fn managed(rel: pg_sys::Oid) -> Option<Managed> {
    if !present() {
        return None;
    }
    let (method, kind) = crate::sqlglue::read_two::<String, String>(&format!(
        "SELECT p.partmethod::text, CASE p.partmethod::text WHEN 'n' THEN \
                CASE p.repmodel::text WHEN 't' THEN 'reference' ELSE 'local' END \
                WHEN 'h' THEN 'distributed' ELSE 'append- or range-distributed' END \
         FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {}",
        rel.to_u32()
    ))
    .ok()
    .and_then(|(m, k)| Some((m?, k?)))?;
    if method != "h" {
        return Some(Managed::Other(format!("a Citus {kind} table")));
    }
    let column = read_one::<String>(&format!(
        "SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)::text \
         FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {}",
        rel.to_u32()
    ))
    .ok()
    .flatten()?;
    Some(Managed::Distributed(column))
}

/// Whether `rel` is a table Citus distributes (a shell: its rows, if any,
/// live in shards).
pub(super) fn is_shell(rel: pg_sys::Oid) -> bool {
    present()
        && read_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p \
             WHERE p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {})",
            rel.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn feature_not_supported(message: String, hint: &str) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        message,
        "pg_vigil::rollup",
    )
    .set_hint(hint)
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// The distribution column of `source` when it is a hash-distributed
/// Citus table a rollup can summarize (grouped by that column, not
/// partitioned); None for a table Citus does not manage. Other Citus
/// tables are refused (0A000) with what to do instead.
pub(super) fn source_distribution(
    source: pg_sys::Oid,
    name: &str,
    group_by: &[String],
) -> Option<String> {
    match managed(source)? {
        Managed::Other(kind) => feature_not_supported(
            format!("source: {name} is {kind}; rollups of Citus tables need a hash-distributed source"),
            "Distribute the source with create_distributed_table, or aggregate it directly: vigil.stats_agg runs partially on each worker.",
        ),
        Managed::Distributed(column) => {
            if !group_by.contains(&column) {
                feature_not_supported(
                    format!(
                        "group_by: {name} is distributed by \"{column}\", which group_by does not list; \
                         a rollup of a distributed table groups by its distribution column"
                    ),
                    "Add the distribution column to group_by: the summary is distributed by it, co-located with the source.",
                );
            }
            let partitioned = read_one::<bool>(&format!(
                "SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = {}",
                source.to_u32()
            ))
            .ok()
            .flatten()
            .unwrap_or(false);
            if partitioned {
                feature_not_supported(
                    format!("source: {name} is a partitioned distributed table; rollups of those are not supported yet"),
                    "Roll up a distributed table that is not partitioned.",
                );
            }
            Some(column)
        }
    }
}

/// Makes the new (empty) summary a distributed table on `column`,
/// co-located with `source`. Run as the owner: Citus distributes a table
/// for its owner only.
pub(super) fn distribute_summary(summary: &str, column: &str, source: &str) {
    let sql = format!(
        "SELECT pg_catalog.create_distributed_table({}::pg_catalog.regclass, {}, colocate_with => {})",
        super::literal(summary),
        super::literal(column),
        super::literal(source)
    );
    // Citus refuses one connection per worker (multi_shard_modify_mode
    // sequential, which the shard triggers need: see create_rollup) once
    // the transaction ran a parallel multi-shard command; it says so
    // before it does anything, so the attempt is rolled back and the
    // caller told what to do.
    if let Err(why) = crate::security::catching(|| super::sql::spi_run(&sql)) {
        pgrx::pg_sys::panic::ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            format!("source: {source} is distributed, and its rollup could not be distributed with it: {why}"),
            "pg_vigil::rollup",
        )
        .set_hint("Create the rollup of a distributed table in a transaction of its own, or before any command in it that writes to several shards.")
        .report(PgLogLevel::ERROR);
    }
}

/// The shard of `summary` (a distributed table, by its oid on this node)
/// co-located with `shard`, a local shard of a distributed source, when
/// `shard` is one and that summary shard is on this node too.
pub(super) fn colocated_shard(shard: pg_sys::Oid, summary: pg_sys::Oid) -> Option<pg_sys::Oid> {
    if !present() {
        return None;
    }
    let (id, _) = shard_identity(shard)?;
    read_one::<pg_sys::Oid>(&format!(
        "SELECT pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid, false))::pg_catalog.oid \
         FROM pg_catalog.pg_dist_shard src \
         JOIN pg_catalog.pg_dist_partition sp ON sp.logicalrelid = src.logicalrelid \
         JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {summary} \
              AND p.colocationid OPERATOR(pg_catalog.=) sp.colocationid \
         JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid AND s.shardminvalue OPERATOR(pg_catalog.=) src.shardminvalue \
         WHERE src.shardid OPERATOR(pg_catalog.=) {id}",
        summary = summary.to_u32(),
    ))
    .ok()
    .flatten()
    .filter(|o| *o != pg_sys::InvalidOid)
}

/// Whether `rel` is a shard of a Citus table on this node.
pub(super) fn is_shard(rel: pg_sys::Oid) -> bool {
    present()
        && read_one::<bool>(&format!(
            "SELECT pg_catalog.relation_is_a_known_shard({}::pg_catalog.oid::pg_catalog.regclass)",
            rel.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The first (smallest) shard id of distributed table `rel`: its identity
/// on every node (shard ids are global; moves keep them).
pub(super) fn first_shard(rel: pg_sys::Oid) -> Option<i64> {
    read_one::<i64>(&format!(
        "SELECT min(s.shardid) FROM pg_catalog.pg_dist_shard s \
         WHERE s.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {}",
        rel.to_u32()
    ))
    .ok()
    .flatten()
}

/// Whether the summary shard `summary_shard` vouches for trigger `tgname`
/// (event `op`) on shard `shard` of a distributed source, carrying
/// `definition` (definition.rs): the trigger vigil made for that event, on
/// a shard of the rollup's source. A trigger named like vigil's that the
/// summary does not vouch for (its source's shards are not the ones the
/// rollup was made on: a split replaced the first) is refused aloud, so
/// that no shard goes unmaintained in silence.
pub(super) fn vouched(
    summary_shard: pg_sys::Oid,
    shard: pg_sys::Oid,
    tgname: &str,
    op: &str,
    definition: &str,
) -> bool {
    let Some((id, logical)) = shard_identity(shard) else {
        return false;
    };
    let Some(first) = first_shard(logical) else {
        return false;
    };
    match super::definition::vouches(
        summary_shard,
        "",
        Some(first),
        tgname,
        op,
        Some(id),
        definition,
    ) {
        Some(true) => true,
        Some(false) if tgname.starts_with("vigil_rollup_") => {
            pgrx::pg_sys::panic::ErrorReport::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "trigger \"{tgname}\" on shard {id} is named like a trigger of a distributed rollup whose summary does not vouch for it"
                ),
                "pg_vigil::rollup",
            )
            .set_hint("Shard splits of a distributed rollup's source are not supported: drop the rollup, split, and create it again.")
            .report(PgLogLevel::ERROR);
            false
        }
        _ => false,
    }
}

/// The shard id and logical table (its oid on this node) of `shard`, a
/// local shard of a Citus table.
fn shard_identity(shard: pg_sys::Oid) -> Option<(i64, pg_sys::Oid)> {
    // Citus names a shard `<table>_<shardid>` (shortened with a hash when
    // that would be too long, still ending in `_<shardid>`); the shard id
    // found there counts only if Citus's own name for it is this relation.
    // SAFETY: a catalog lookup; NULL when the relation is gone.
    let name = unsafe {
        let n = pg_sys::get_rel_name(shard);
        if n.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(n).to_string_lossy().into_owned()
    };
    let id: i64 = name.rsplit_once('_')?.1.parse().ok()?;
    let logical = read_one::<pg_sys::Oid>(&format!(
        "SELECT s.logicalrelid::pg_catalog.oid FROM pg_catalog.pg_dist_shard s WHERE s.shardid OPERATOR(pg_catalog.=) {id} \
           AND pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid, false))::pg_catalog.oid \
               OPERATOR(pg_catalog.=) {}",
        shard.to_u32()
    ))
    .ok()
    .flatten()?;
    Some((id, logical))
}

/// Refuses (22023) a rollup whose trigger names would not survive Citus's
/// shard suffix whole (`shard_definition` compares them exactly).
pub(super) fn check_trigger_names(r: &super::Rollup, source: pg_sys::Oid) {
    let widest = read_one::<i64>(&format!(
        "SELECT max(s.shardid) FROM pg_catalog.pg_dist_shard s \
         WHERE s.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) {}",
        source.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(0)
    .to_string()
    .len();
    for op in ["ins", "del", "upd", "trunc"] {
        let name = r.trigger_name_raw(op);
        if name.len() + 1 + widest > 63 || !name.starts_with(&format!("vigil_rollup_{}", r.name)) {
            crate::sqlglue::raise(crate::error::VigilError::invalid(format!(
                "name: \"{}\" is too long for a rollup of a distributed table: its trigger names with Citus's shard suffix \
                 must fit in 63 bytes (at most {} bytes here)",
                r.name,
                63 - 1 - widest - "vigil_rollup_".len() - "_trunc".len()
            )));
        }
    }
}
