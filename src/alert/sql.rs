//! SQL wrappers of the alert identity functions.

use crate::notify::sql::JsonArg;
use crate::sqlglue::OrRaise;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

/// `labels` checked (see `check_labels`), unchanged; 22023 naming
/// `argument` and the label otherwise.
#[pg_extern(immutable, strict, parallel_safe, name = "_check_labels")]
fn check_labels(labels: JsonArg, argument: &str) -> JsonB {
    let value = labels.get(argument);
    JsonB(Value::Object(
        super::check_labels(&value, argument).or_raise(),
    ))
}

/// `labels` made total for one raise (see `labels_at_raise`).
#[pg_extern(immutable, strict, parallel_safe, name = "_labels_at_raise")]
fn labels_at_raise(labels: JsonArg) -> JsonB {
    let value = labels.get("labels");
    JsonB(Value::Object(super::labels_at_raise(&value).or_raise()))
}

/// The fingerprint of an alert with these labels: Alertmanager's label-set
/// fingerprint over every label but `severity`, 16 hex digits.
#[pg_extern(immutable, strict, parallel_safe, name = "alert_fingerprint")]
fn alert_fingerprint(labels: JsonArg) -> String {
    match labels.get("labels") {
        serde_json::Value::Object(map) => super::fingerprint(&map),
        other => crate::sqlglue::raise(crate::error::VigilError::invalid(format!(
            "labels must be a JSON object, got {}",
            crate::error::json_type(&other)
        ))),
    }
}
