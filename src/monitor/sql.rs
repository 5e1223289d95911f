//! SQL wrapper of the monitor planner: `vigil._monitor_plan` validates a
//! monitor and returns its normalised options and scan query.

use super::{ColType, Column, Columns};
use crate::error::VigilError;
use crate::sqlglue::OrRaise;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

fn columns(value: &Value) -> Columns {
    let parse = |v: &Value| {
        Some(Column {
            category: ColType::from_label(v.get("category")?.as_str()?),
            sql_type: v.get("type")?.as_str()?.to_string(),
        })
    };
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.clone(), parse(v)?)))
        .collect()
}

/// `{"options": .., "query": ..}` for a monitor of `kind` with `options` over
/// `source` (quoted, qualified) whose columns are `{"name": {"category",
/// "type"}}` (see `vigil._source_columns`). Raises 22023/22004/42703/42804
/// naming the option at fault.
#[pg_extern(immutable, strict, parallel_safe, name = "_monitor_plan")]
fn monitor_plan(kind: &str, options: JsonB, source: &str, columns_json: JsonB) -> JsonB {
    let cols = columns(&columns_json.0);
    if cols.is_empty() {
        crate::sqlglue::raise(VigilError::invalid("source has no columns"));
    }
    let plan = super::plan(kind, &options.0, source, &cols).or_raise();
    JsonB(json!({"options": plan.options, "query": plan.query}))
}
