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
    super::fingerprint(&labels_object(labels))
}

/// The `labels` argument as a JSON object, or 22023 naming its JSON type.
fn labels_object(labels: JsonArg) -> serde_json::Map<String, Value> {
    match labels.get("labels") {
        Value::Object(map) => map,
        other => crate::sqlglue::raise(crate::error::VigilError::invalid(format!(
            "labels must be a JSON object, got {}",
            crate::error::json_type(&other)
        ))),
    }
}

/// Matchers parsed and written canonically (`name op "value"`); 22023
/// naming `argument[i]` and the matcher when one is malformed (or its
/// pattern does not compile), 22004 when `matchers` is NULL.
#[pg_extern(immutable, parallel_safe, name = "_matchers")]
fn matchers(matchers: Option<Vec<Option<String>>>, argument: &str) -> Vec<String> {
    let Some(texts) = matchers else {
        crate::sqlglue::raise(crate::error::VigilError::new(
            crate::error::ErrorKind::NullValue,
            format!("{argument} must not be NULL (pass an empty array for none)"),
        ));
    };
    super::matchers::parse_all(&texts, argument)
        .or_raise()
        .iter()
        .map(super::matchers::Matcher::canonical)
        .collect()
}

/// Whether an alert with these labels satisfies every matcher (Alertmanager
/// semantics: a missing label is "", regexes anchored); an empty list
/// always holds. 22023 naming the matcher when one is malformed.
#[pg_extern(immutable, strict, parallel_safe)]
fn labels_match(labels: JsonArg, matchers: Vec<Option<String>>) -> bool {
    let labels = labels_object(labels);
    let parsed = super::matchers::parse_all(&matchers, "matchers").or_raise();
    super::matchers::all_match(&parsed, &labels)
}

/// The `=` matchers with a non-empty value as one labels object: what an
/// alert those matchers select must contain (the inhibition probe uses it
/// with the open alerts' labels index).
#[pg_extern(immutable, strict, parallel_safe, name = "_matchers_equalities")]
fn matchers_equalities(matchers: Vec<Option<String>>) -> JsonB {
    let parsed = super::matchers::parse_all(&matchers, "matchers").or_raise();
    JsonB(Value::Object(
        parsed
            .into_iter()
            .filter(|m| m.op == super::matchers::Op::Equal && !m.value.is_empty())
            .map(|m| (m.name, Value::String(m.value)))
            .collect(),
    ))
}
