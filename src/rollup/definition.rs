//! The definition a rollup's summary carries: a CHECK constraint
//! `vigil_rollup_definition` (always true) holding, as JSON, what
//! `vigil.rollup_defs` holds (time column, bucket, group and measures),
//! vigil's trigger name for each event, the source's name and, for a
//! distributed source, its first shard id. Only the summary's owner (or a
//! superuser) can add, change or drop it, and it travels with the table:
//! `pg_dump` of the application's schema, and Citus, which gives it to every
//! summary shard wherever a shard moves. So where vigil registers a rollup
//! from its triggers — a restore without vigil's configuration (ddl.rs
//! `relink`), a Citus worker (citus.rs) — it trusts this constraint, never a
//! trigger's own arguments, which any role with TRIGGER on the source could
//! have written; and it links only the trigger the constraint names.

use crate::sqlglue::read_one;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The constraint's name (Citus adds `_<shardid>` on each shard).
pub(super) const CONSTRAINT: &str = "vigil_rollup_definition";

/// `ALTER TABLE` adding the constraint to `r`'s summary.
pub(super) fn add_statement(r: &super::Rollup, source_shard: Option<i64>) -> String {
    let triggers = json!({
        "ins": r.trigger_name_raw("ins"), "del": r.trigger_name_raw("del"),
        "upd": r.trigger_name_raw("upd"), "trunc": r.trigger_name_raw("trunc"),
    });
    format!(
        "ALTER TABLE {} {}",
        r.table(),
        add_clause(r, triggers, json!(source_shard))
    )
}

/// The ADD CONSTRAINT clause: `r`'s definition with these trigger names
/// and first shard id.
fn add_clause(r: &super::Rollup, triggers: Value, source_shard: Value) -> String {
    let mut def: Value = serde_json::from_str(&r.definition).expect("definition_json is JSON");
    def["source"] = json!(r.source);
    def["triggers"] = triggers;
    def["source_shard"] = source_shard;
    format!(
        "ADD CONSTRAINT {CONSTRAINT} CHECK ({}::pg_catalog.text IS NOT NULL)",
        super::literal(&def.to_string())
    )
}

/// The JSON inside the constraint, from `pg_get_constraintdef`'s text
/// (`CHECK (('…'::text IS NOT NULL))`, quotes doubled; vigil pins
/// `quote_all_identifiers` off and `standard_conforming_strings` on).
pub(super) fn parse(def: &str) -> Option<Value> {
    let inner = def
        .strip_prefix("CHECK (('")?
        .strip_suffix("'::text IS NOT NULL))")?;
    serde_json::from_str(&inner.replace("''", "'")).ok()
}

/// The definition `summary` (a table, or a Citus shard of one) carries.
pub(super) fn stored(summary: pg_sys::Oid) -> Option<Value> {
    let text = read_one::<String>(&format!(
        "SELECT pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c \
         WHERE c.conrelid OPERATOR(pg_catalog.=) {} AND c.contype OPERATOR(pg_catalog.=) 'c' \
           AND pg_catalog.starts_with(c.conname::pg_catalog.text, {}) ORDER BY c.conname LIMIT 1",
        summary.to_u32(),
        super::literal(CONSTRAINT)
    ))
    .ok()
    .flatten()?;
    parse(&text)
}

/// For a restore into a database without vigil's configuration: the
/// definition to register for trigger `tgname` (event `op`) on `source`
/// when `summary` carries one — Some only if that trigger is the one vigil
/// made for the event and `source` the table the definition names. Outer
/// None: the summary carries none (made before the constraint existed).
pub(super) fn for_restore(
    summary: pg_sys::Oid,
    source: pg_sys::Oid,
    tgname: &str,
    op: &str,
) -> Option<Option<String>> {
    let def = stored(summary)?;
    let named = def
        .get("source")
        .and_then(Value::as_str)
        .and_then(super::ddl::regclass_of);
    let ours = def
        .get("triggers")
        .and_then(|t| t.get(op))
        .and_then(Value::as_str)
        == Some(tgname);
    Some((ours && named == Some(source)).then(|| def.to_string()))
}

/// Whether trigger `tgname` is the one vigil made for event `op` of the
/// rollup whose summary is `summary` (None: the summary carries no
/// definition).
pub(super) fn names_trigger(summary: pg_sys::Oid, tgname: &str, op: &str) -> Option<bool> {
    let def = stored(summary)?;
    Some(
        def.get("triggers")
            .and_then(|t| t.get(op))
            .and_then(Value::as_str)
            == Some(tgname),
    )
}

/// After DDL changed what the constraint holds (a renamed source or
/// column: ddl.rs `sync`), writes it again, as the owner, keeping its
/// trigger names and shard id. Does nothing for a summary without one.
pub(super) fn refresh(
    guard: &crate::security::Restricted,
    r: &super::Rollup,
    summary: pg_sys::Oid,
    owner: pg_sys::Oid,
) {
    let Some(stored) = read_one::<String>(&format!(
        "SELECT pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c \
         WHERE c.conrelid OPERATOR(pg_catalog.=) {} AND c.conname OPERATOR(pg_catalog.=) {}",
        summary.to_u32(),
        super::literal(CONSTRAINT)
    ))
    .ok()
    .flatten()
    .and_then(|t| parse(&t)) else {
        return;
    };
    let mut current: Value = serde_json::from_str(&r.definition).expect("definition_json is JSON");
    current["source"] = json!(r.source);
    let same = current
        .as_object()
        .is_some_and(|o| o.iter().all(|(k, v)| stored.get(k) == Some(v)));
    if same {
        return;
    }
    guard.act_as(owner);
    guard.citus_rollup_ddl();
    // Two statements: Citus runs no ADD CONSTRAINT with other subcommands.
    super::sql::spi_run(&format!(
        "ALTER TABLE {} DROP CONSTRAINT {CONSTRAINT}",
        r.table()
    ));
    super::sql::spi_run(&format!(
        "ALTER TABLE {} {}",
        r.table(),
        add_clause(
            r,
            stored["triggers"].clone(),
            stored["source_shard"].clone()
        )
    ));
}
