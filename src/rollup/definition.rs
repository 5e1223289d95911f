//! What a rollup's summary vouches for: a constraint `CHECK (true)` named
//! `vigil_rollup_<digest>` (SHA-256, first 128 bits), the digest of the rollup's definition (what its
//! triggers carry as their second argument), the source's identity (its
//! qualified name; for a Citus distributed source its first shard id) and
//! the base of vigil's trigger names. Only the summary's owner (or a
//! superuser) can add, rename or drop it, and it travels with the table:
//! `pg_dump` of the application's schema, and Citus, which gives it to every
//! summary shard (as `…_<shardid>`) wherever a shard moves. So where vigil
//! registers a rollup from a trigger — a restore without vigil's
//! configuration (ddl.rs `relink`), a Citus worker (citus.rs) — it links
//! only a trigger whose name, table and definition the summary vouches for:
//! one that another role with TRIGGER on the source made (another name,
//! another definition, another table) never is. The expression is `true`
//! and the name short (a digest, not the definition): the constraint check
//! every summary write runs stays trivial (BENCHMARKS.md, 2026-12-04: single-
//! row INSERT with it 0.98 of without, within this machine's noise).

use super::ident;
use crate::sqlglue::read_one;
use pgrx::prelude::*;

/// The constraint's prefix; Citus adds `_<shardid>` on each shard.
pub(super) const PREFIX: &str = "vigil_rollup_";

/// The constraint name vouching for `definition` (a trigger's second
/// argument) of the source `identity`, with triggers named `<base>_<op>`.
pub(super) fn name_for(definition: &str, identity: &str, base: &str) -> Option<String> {
    // The definition as a value (keys sorted), whatever spacing carried it.
    let def: serde_json::Value = serde_json::from_str(definition).ok()?;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{def}\n{identity}\n{base}").as_bytes());
    // 128 bits: the name (with Citus's shard suffix) stays within 63 bytes.
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{PREFIX}{hex}"))
}

/// The identity of a local source (its quoted, qualified name now) or of
/// a distributed one (`shard:<first shard id>`, as on every node).
fn identity(source: &str, source_shard: Option<i64>) -> String {
    match source_shard {
        Some(id) => format!("shard:{id}"),
        None => source.to_string(),
    }
}

/// The longest base `trigger_name_raw` keeps for every event (`_trunc`,
/// the longest suffix, leaves 57 bytes of 63).
const BASE_BYTES: usize = 63 - "_trunc".len();

/// `base` cut to `BASE_BYTES` on a character boundary: what the digest
/// covers, the same for every event's trigger name.
fn common_base(base: &str) -> &str {
    let mut end = base.len().min(BASE_BYTES);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    &base[..end]
}

/// The base of vigil's trigger names of `r` (`vigil_rollup_<name>`, what
/// `trigger_name_raw` puts before `_<op>`), as the digest covers it.
fn base_of(r: &super::Rollup) -> String {
    let trunc = r.trigger_name_raw("trunc");
    common_base(trunc.strip_suffix("_trunc").unwrap_or(&trunc)).to_string()
}

/// `ALTER TABLE` adding the constraint to `r`'s summary.
pub(super) fn add_statement(r: &super::Rollup, source_shard: Option<i64>) -> String {
    let name = name_for(
        &r.definition,
        &identity(&r.source, source_shard),
        &base_of(r),
    )
    .expect("definition_json is JSON");
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} CHECK (true)",
        r.table(),
        ident(&name)
    )
}

/// The names of the constraints of `summary` that look like vigil's.
fn constraints_of(summary: pg_sys::Oid) -> Vec<String> {
    read_one::<Vec<String>>(&format!(
        "SELECT pg_catalog.array_agg(c.conname::pg_catalog.text ORDER BY c.conname) FROM pg_catalog.pg_constraint c \
         WHERE c.conrelid OPERATOR(pg_catalog.=) {} AND c.contype OPERATOR(pg_catalog.=) 'c' \
           AND pg_catalog.starts_with(c.conname::pg_catalog.text, {})",
        summary.to_u32(),
        super::literal(PREFIX)
    ))
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Whether `summary` carries a constraint of vigil's at all (a rollup made
/// before they existed does not).
pub(super) fn carried(summary: pg_sys::Oid) -> bool {
    !constraints_of(summary).is_empty()
}

/// Whether `summary` vouches for trigger `tgname` (event `op`, with
/// Citus's `_<shard_id>` after it when given) carrying `definition`, on the
/// source `source` (quoted, qualified; or a distributed source's first
/// shard id). None: the summary carries no constraint of vigil's.
pub(super) fn vouches(
    summary: pg_sys::Oid,
    source: &str,
    source_shard: Option<i64>,
    tgname: &str,
    op: &str,
    shard_id: Option<i64>,
    definition: &str,
) -> Option<bool> {
    let names = constraints_of(summary);
    if names.is_empty() {
        return None;
    }
    let unsuffixed = match shard_id {
        Some(id) => tgname.strip_suffix(&format!("_{id}")),
        None => Some(tgname),
    };
    let Some(base) = unsuffixed.and_then(|n| n.strip_suffix(&format!("_{op}"))) else {
        return Some(false);
    };
    let Some(expected) = name_for(
        definition,
        &identity(source, source_shard),
        common_base(base),
    ) else {
        return Some(false);
    };
    // On a Citus shard the constraint's name ends in the summary shard's id.
    Some(names.iter().any(|n| {
        n == &expected
            || n.strip_prefix(&expected)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    }))
}

/// After DDL changed what the constraint vouches for (a renamed source or
/// column: ddl.rs `sync`, before the triggers are refreshed), replaces it
/// with what it must be now, as the owner. Does nothing for a summary
/// without one, or one that still vouches for the rollup.
pub(super) fn refresh(
    guard: &crate::security::Restricted,
    r: &super::Rollup,
    summary: pg_sys::Oid,
    source: pg_sys::Oid,
    owner: pg_sys::Oid,
    triggers: &[(String, &str)],
) {
    // A Citus worker's summary shard gets its constraint from the
    // coordinator, which keeps the distributed summary's.
    if super::citus::is_shard(summary) {
        return;
    }
    let names = constraints_of(summary);
    let [old] = names.as_slice() else {
        return;
    };
    let source_shard = super::citus::is_shell(source)
        .then(|| super::citus::first_shard(source))
        .flatten();
    // The base of the linked triggers' names (they keep the summary's name
    // at creation when the summary is renamed).
    let Some(base) = triggers
        .iter()
        .find_map(|(name, op)| name.strip_suffix(&format!("_{op}")))
    else {
        return;
    };
    let Some(expected) = name_for(
        &r.definition,
        &identity(&r.source, source_shard),
        common_base(base),
    ) else {
        return;
    };
    if *old == expected {
        return;
    }
    guard.act_as(owner);
    guard.citus_rollup_ddl();
    // Dropped and added (Citus renames no constraint of a distributed
    // table), in two statements (nor takes ADD CONSTRAINT with others).
    let table = r.table();
    // The summary's own DDL event must not refresh the triggers between
    // the two: on Citus the new definition would reach the shards before
    // the constraint that vouches for it (`replacing`).
    let _replacing = super::Raised::while_alive(&REPLACING);
    super::sql::spi_run(&format!(
        "ALTER TABLE {table} DROP CONSTRAINT {}",
        ident(old)
    ));
    super::sql::spi_run(&format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} CHECK (true)",
        ident(&expected)
    ));
}

thread_local! {
    /// Set while `refresh` replaces a summary's constraint.
    static REPLACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether `refresh` is replacing a summary's constraint (ddl.rs `sync`
/// leaves the summary's own DDL event alone meanwhile).
pub(super) fn replacing() -> bool {
    REPLACING.with(|f| f.get())
}
