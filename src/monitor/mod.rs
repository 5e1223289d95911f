//! Monitors (SPEC §3.4): a kind, a source table and options become a scan
//! query; a scan runs the queries and turns their rows into alerts.
//! - `kinds/`: one file per kind, everything that kind knows;
//! - `options`: the option types and their checks, for every kind;
//! - `scan`: the scan loop (run each monitor as its source's owner, raise,
//!   auto-resolve, group, report), which knows no kinds;
//! - `report`: the scan report, built from the findings (pure).
//!
//! Identifiers are quoted; option values reach the query as the parameter
//! `$1` (the options), never spliced.

mod kinds;
mod options;
pub mod report;
pub mod scan;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;
#[cfg(test)]
mod tests;

use crate::error::Result;
pub use kinds::Kind;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Column type classes that options can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Numeric,
    Text,
    Time,
    Bool,
    Other,
}

impl ColType {
    pub fn from_label(label: &str) -> ColType {
        match label {
            "numeric" => ColType::Numeric,
            "text" => ColType::Text,
            "time" => ColType::Time,
            "bool" => ColType::Bool,
            _ => ColType::Other,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ColType::Numeric => "a numeric column",
            ColType::Text => "a text column",
            ColType::Time => "a date, timestamp or timestamptz column",
            ColType::Bool => "a boolean column",
            ColType::Other => "a column",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub category: ColType,
    /// The type as `format_type` prints it, for casts.
    pub sql_type: String,
}

pub type Columns = BTreeMap<String, Column>;

/// A validated monitor: options with defaults, and the scan query (none for
/// early_kill, which decides in a trigger).
#[derive(Debug)]
pub struct Plan {
    pub kind: Kind,
    pub options: Map<String, Value>,
    pub query: Option<String>,
}

/// Validates `options` for `kind` over `source` (already quoted, schema
/// qualified) with `columns`, and writes the scan query.
pub fn plan(kind: &str, options: &Value, source: &str, columns: &Columns) -> Result<Plan> {
    let kind = Kind::parse(kind)?;
    let def = kind.def();
    let mut opts = options::validate(kind, options, columns)?;
    opts.entry("anomaly_type")
        .or_insert_with(|| Value::from(def.anomaly_type));
    if let Some(metric) = def.metric_name {
        if !opts.contains_key("metric_name") {
            let m = metric(&opts);
            opts.insert("metric_name".into(), Value::from(m));
        }
    }
    (def.check)(&opts)?;
    let query = def.query.map(|q| {
        q(&kinds::Query {
            o: &opts,
            source,
            columns,
        })
    });
    Ok(Plan {
        kind,
        options: opts,
        query,
    })
}

/// One row of a scan query: what the kind found about one entity. Every
/// kind's query returns exactly these columns (`kinds::Query::finish`);
/// the scan reads them as this type.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Finding {
    pub entity: Option<String>,
    pub anomaly_type: Option<String>,
    /// NULL: no alert (the row only carries a prediction).
    pub severity: Option<String>,
    pub urgency: Option<i32>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub details: Option<Value>,
    pub metric: Option<f64>,
    pub category: Option<String>,
    /// Appended to the dedup key and given as the `subkey` label (e.g. a
    /// saturation status), so each value is an alert of its own.
    pub key_suffix: Option<String>,
    pub prediction: Option<Value>,
}

/// The columns of `Finding`, in the order the queries return them.
#[cfg(test)]
const FINDING_COLUMNS: [&str; 11] = [
    "entity",
    "anomaly_type",
    "severity",
    "urgency",
    "title",
    "summary",
    "details",
    "metric",
    "category",
    "key_suffix",
    "prediction",
];
