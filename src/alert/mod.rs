//! Alert identity: labels and the fingerprint computed from them.
//!
//! An alert's labels are string pairs, as in Prometheus and Alertmanager.
//! Its identity is every label but `severity` (an alert that escalates stays
//! the same alert), hashed the way Alertmanager fingerprints a label set
//! (`model.LabelSet.Fingerprint`: FNV-1a 64 over the sorted names and
//! values, each followed by the separator byte 0xff) and printed as 16
//! hex digits. The dated `dedup_key` of a finding is not a label, so an
//! ongoing condition keeps its identity across days.

use crate::error::{json_type, Result, VigilError};
use serde_json::{Map, Value};

pub mod matchers;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;

/// Most labels one alert carries (user labels and vigil's own).
pub const MAX_LABELS: usize = 32;
/// Longest label name and value, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_VALUE_BYTES: usize = 8192;
/// The label that is not part of an alert's identity.
pub const NOT_IDENTITY: &str = "severity";
/// The values of `vigil.severity`, lowest first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// Checks a labels object: at most `MAX_LABELS` pairs, names as Prometheus
/// allows them (`[A-Za-z_][A-Za-z0-9_]*`, not starting with `__`, which
/// Prometheus reserves), values non-empty strings. Errors name `argument`
/// and the label.
pub fn check_labels(value: &Value, argument: &str) -> Result<Map<String, Value>> {
    let obj = value.as_object().ok_or_else(|| {
        VigilError::invalid(format!(
            "{argument} must be a JSON object of string labels, got {}",
            json_type(value)
        ))
    })?;
    if obj.len() > MAX_LABELS {
        return Err(VigilError::invalid(format!(
            "{argument} has {} labels; at most {MAX_LABELS} are accepted",
            obj.len()
        )));
    }
    for (name, v) in obj {
        if !valid_name(name) {
            return Err(VigilError::invalid(format!(
                "{argument}: label name {} must match [A-Za-z_][A-Za-z0-9_]*, not start with __, \
                 and be at most {MAX_NAME_BYTES} bytes",
                Value::String(name.clone())
            )));
        }
        let s = v.as_str().ok_or_else(|| {
            VigilError::invalid(format!(
                "{argument}.{name} must be a string, got {}",
                json_type(v)
            ))
        })?;
        check_label_value(s, &format!("{argument}.{name}"))?;
    }
    Ok(obj.clone())
}

/// The given labels of one `raise_alert` call, made total: they were
/// checked where they were configured (monitor options, rules), and what a
/// scan's data puts next to them must never fail a raise. Names must still
/// be label names (22023); string values are kept as they are, numbers and
/// booleans become their text, nulls are dropped; nested values are refused.
pub fn labels_at_raise(value: &Value) -> Result<Map<String, Value>> {
    let obj = value.as_object().ok_or_else(|| {
        VigilError::invalid(format!(
            "labels must be a JSON object of string labels, got {}",
            json_type(value)
        ))
    })?;
    let mut out = Map::new();
    for (name, v) in obj {
        if !valid_name(name) {
            return Err(VigilError::invalid(format!(
                "labels: label name {} must match [A-Za-z_][A-Za-z0-9_]*, not start with __, \
                 and be at most {MAX_NAME_BYTES} bytes",
                Value::String(name.clone())
            )));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            Value::Null => continue,
            _ => {
                return Err(VigilError::invalid(format!(
                    "labels.{name} must be a string, got {}",
                    json_type(v)
                )))
            }
        };
        out.insert(name.clone(), Value::String(text));
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES
        && !name.starts_with("__")
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label value as configuration may set one (`alertname`): non-empty,
/// at most `MAX_VALUE_BYTES`.
pub fn check_label_value(value: &str, argument: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(VigilError::invalid(format!("{argument} must not be empty")));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(VigilError::invalid(format!(
            "{argument} is {} bytes; at most {MAX_VALUE_BYTES} are accepted",
            value.len()
        )));
    }
    Ok(())
}

/// The fingerprint of an alert with `labels`: Alertmanager's label-set
/// fingerprint over every label but `severity`. Non-string values (which
/// `check_labels` never lets in) count as their JSON text. Any object has
/// one: the fingerprint of stored labels never fails.
pub fn fingerprint(labels: &Map<String, Value>) -> String {
    const SEPARATOR: u8 = 0xff;
    let mut names: Vec<&String> = labels.keys().filter(|k| *k != NOT_IDENTITY).collect();
    names.sort();
    let mut hash = Fnv1a::new();
    for name in names {
        hash.add(name.as_bytes());
        hash.add(&[SEPARATOR]);
        match &labels[name] {
            Value::String(s) => hash.add(s.as_bytes()),
            other => hash.add(other.to_string().as_bytes()),
        }
        hash.add(&[SEPARATOR]);
    }
    format!("{:016x}", hash.finish())
}

/// 64-bit FNV-1a, streaming: tiny, dependency-free and fixed by its spec,
/// so fingerprints never change between releases.
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fingerprint_matches_alertmanagers_label_set_fingerprint() {
        // As prometheus/common's labelSetToFingerprint: the empty set is
        // FNV-1a's offset basis.
        assert_eq!(fingerprint(&Map::new()), "cbf29ce484222325");
        let a = fingerprint(&obj(json!({"alertname": "ROAS_DROP", "entity": "c1"})));
        let b = fingerprint(&obj(json!({"entity": "c1", "alertname": "ROAS_DROP"})));
        assert_eq!(a, b, "order of the keys does not matter");
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn severity_is_not_part_of_the_identity() {
        let low = obj(json!({"alertname": "x", "entity": "e", "severity": "low"}));
        let high = obj(json!({"alertname": "x", "entity": "e", "severity": "critical"}));
        assert_eq!(fingerprint(&low), fingerprint(&high));
        let other = obj(json!({"alertname": "x", "entity": "f", "severity": "low"}));
        assert_ne!(fingerprint(&low), fingerprint(&other));
    }

    #[test]
    fn names_and_values_cannot_run_into_each_other() {
        let a = obj(json!({"ab": "c"}));
        let b = obj(json!({"a": "bc"}));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn labels_at_raise_never_fail_on_values() {
        let big = "x".repeat(MAX_VALUE_BYTES * 2);
        let l = labels_at_raise(
            &json!({"subkey": "\t", "entity_hint": big, "n": 3, "b": true, "z": null}),
        )
        .unwrap();
        assert_eq!(l["subkey"], "\t");
        assert_eq!(l["n"], "3");
        assert_eq!(l["b"], "true");
        assert!(!l.contains_key("z"));
        assert!(labels_at_raise(&json!({"bad-name": "x"})).is_err());
        assert!(labels_at_raise(&json!({"nested": {"a": 1}})).is_err());
        assert!(labels_at_raise(&json!([])).is_err());
    }

    #[test]
    fn check_labels_refuses_what_prometheus_would() {
        assert!(check_labels(&json!({"team": "ads", "_x1": "y"}), "labels").is_ok());
        for (bad, needle) in [
            (json!([]), "must be a JSON object"),
            (json!({"1team": "x"}), "label name"),
            (json!({"__name__": "x"}), "label name"),
            (json!({"te-am": "x"}), "label name"),
            (
                json!({"team": 1}),
                "labels.team must be a string, got number",
            ),
            (json!({"team": " "}), "labels.team must not be empty"),
            (
                json!({"team": "x".repeat(MAX_VALUE_BYTES + 1)}),
                "at most 8192",
            ),
        ] {
            let err = check_labels(&bad, "labels").unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
        let many: Map<String, Value> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), json!("v")))
            .collect();
        let err = check_labels(&Value::Object(many), "options.labels").unwrap_err();
        assert!(
            err.message.starts_with("options.labels has 33 labels"),
            "{}",
            err.message
        );
    }
}
