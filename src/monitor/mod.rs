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

pub(crate) mod kinds;
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

/// A rollup's summary table as a monitor reads it (`vigil._source_rollup`):
/// its group columns and each measure's `agg`. Its rows are groups per
/// bucket (and slot rows of a group, which add up): a monitor over it reads
/// buckets instead of raw rows, so its cost does not grow with raw history.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rollup {
    /// The bucket's length.
    pub bucket_seconds: f64,
    pub group_by: Vec<String>,
    pub measures: BTreeMap<String, String>,
}

impl Rollup {
    /// The summary's columns as options may name them: group columns,
    /// `bucket` and the measures (`avg`/`stats` summaries read as their
    /// mean, so they count as numeric); not the bookkeeping columns.
    fn columns(&self, columns: &Columns) -> Columns {
        columns
            .iter()
            .filter(|(name, _)| !name.starts_with('_') || self.measures.contains_key(*name))
            .map(|(name, c)| {
                let mut c = c.clone();
                if matches!(self.agg(name), Some("avg" | "stats")) {
                    c.category = ColType::Numeric;
                }
                (name.clone(), c)
            })
            .collect()
    }

    pub fn agg(&self, measure: &str) -> Option<&str> {
        self.measures.get(measure).map(String::as_str)
    }

    /// Whether its buckets tile periods of `seconds` (an hour, a day).
    pub fn tiles(&self, seconds: f64) -> bool {
        self.bucket_seconds > 0.0 && (seconds / self.bucket_seconds).fract() == 0.0
    }

    fn is_group(&self, column: &str) -> bool {
        self.group_by.iter().any(|g| g == column)
    }

    /// Checks what every kind reading a rollup needs: the time is the
    /// bucket, entities and filters are group columns (a group's rows share
    /// them; other columns are not in the summary).
    fn check(&self, o: &Map<String, Value>) -> Result<()> {
        let bad = |m: String| Err(crate::error::VigilError::invalid(m));
        if let Some(time) = o.get("time").and_then(Value::as_str) {
            if time != "bucket" {
                return bad(format!(
                    "options.time: a rollup is read by its buckets: use \"bucket\", got \"{time}\""
                ));
            }
        }
        for key in ["entity", "group_column"] {
            if let Some(c) = o.get(key).and_then(Value::as_str) {
                if !self.is_group(c) {
                    return bad(format!(
                        "options.{key}: \"{c}\" is not a group column of the rollup (group columns: {})",
                        self.group_by.join(", ")
                    ));
                }
            }
        }
        if let Some(Value::Object(f)) = o.get("filter") {
            if let Some(c) = f.keys().find(|c| !self.is_group(c)) {
                return bad(format!(
                    "options.filter: \"{c}\" is not a group column of the rollup; a filter on a rollup \
                     can only pick groups (give the rollup's measure a filter instead)"
                ));
            }
        }
        Ok(())
    }
}

/// Validates `options` for `kind` over `source` (already quoted, schema
/// qualified) with `columns`, and writes the scan query.
pub fn plan(kind: &str, options: &Value, source: &str, columns: &Columns) -> Result<Plan> {
    plan_on(kind, options, source, columns, None)
}

/// `plan` over a source that may be a rollup's summary table.
pub fn plan_on(
    kind: &str,
    options: &Value,
    source: &str,
    columns: &Columns,
    rollup: Option<&Rollup>,
) -> Result<Plan> {
    let kind = Kind::parse(kind)?;
    let def = kind.def();
    // vigil.health is the health kind's source and no other kind's (the
    // others run as their source's owner, which would be vigil's).
    if (kind == Kind::Health) != (source == kinds::health::SOURCE) {
        return Err(crate::error::VigilError::invalid(format!(
            "source: kind health watches {} and only it; other kinds watch your tables, got {source} for kind {}",
            kinds::health::SOURCE,
            kind.name()
        )));
    }
    let summary_columns;
    let columns = match rollup {
        Some(r) => {
            summary_columns = r.columns(columns);
            &summary_columns
        }
        None => columns,
    };
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
    if let Some(r) = rollup {
        let Some(check) = def.rollup else {
            return Err(crate::error::VigilError::invalid(format!(
                "source: kind {} reads raw rows, and {source} is a rollup's summary table; \
                 point the monitor at the rollup's source",
                kind.name()
            )));
        };
        r.check(&opts)?;
        check(&opts, r)?;
    }
    let query = def.query.map(|q| {
        q(&kinds::Query {
            o: &opts,
            source,
            columns,
            rollup,
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
    /// jsonb text, passed on as it is (serde_json would round numerics).
    pub details_text: Option<String>,
    /// to_jsonb writes a non-finite float8 as a string ("NaN"): read as
    /// no metric.
    #[serde(default, deserialize_with = "finite_or_none")]
    pub metric: Option<f64>,
    pub category: Option<String>,
    /// Appended to the dedup key and given as the `subkey` label (e.g. a
    /// saturation status), so each value is an alert of its own.
    pub key_suffix: Option<String>,
    pub prediction: Option<Value>,
}

fn finite_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .and_then(|v| v.as_f64())
        .filter(|m| m.is_finite()))
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
