//! The monitor kinds. Each kind is one file here holding everything that
//! kind knows: its option keys (defaults and checks), the scan query it
//! writes (option values as the parameter `$1`, never spliced), the
//! sentences of its findings and the insight line of the scan report.
//! The scan loop (`super::scan`) and the report (`super::report`) know no
//! kinds. Adding a kind is one file and one line of the `kinds!` list.

mod count;
mod drop;
pub(crate) mod early_kill;
mod freshness;
pub(in crate::monitor) mod health;
mod saturation;
mod stall;
mod threshold;
mod zscore;

use super::options::{Key, LEVELS};
use super::report::TypeSummary;
use super::{Columns, Rollup};
use crate::error::{Result, VigilError};
use crate::rollup::{ident, literal};
use serde_json::{Map, Value};

/// A monitor's validated options.
pub(in crate::monitor) type Options = Map<String, Value>;

/// What a kind is: the planner and the report read these and nothing else.
pub(in crate::monitor) struct KindDef {
    pub name: &'static str,
    /// The kind's own option keys (before the common ones: a kind may
    /// override a common default).
    pub keys: &'static [Key],
    /// Whether the keys of every scanning kind (`super::options::COMMON`)
    /// apply; false for early_kill, which decides in a trigger.
    pub common_keys: bool,
    /// The anomaly type of its alerts unless options.anomaly_type says
    /// otherwise.
    pub anomaly_type: &'static str,
    /// options.metric_name unless given (None: the kind has no metric).
    pub metric_name: Option<fn(&Options) -> String>,
    /// Rules that involve more than one key.
    pub check: fn(&Map<String, Value>) -> Result<()>,
    /// The scan query (None: the kind does not scan).
    pub query: Option<fn(&Query) -> String>,
    /// The metric name the report's insight uses for a finding.
    pub report_metric_name: fn(&Map<String, Value>) -> Option<String>,
    /// The insight sentence of one anomaly type's findings in a scan.
    pub insight: fn(&TypeSummary) -> String,
    /// Whether the kind can read a rollup's summary table instead of raw
    /// rows, and what it needs of it (its measures); None: it reads raw
    /// rows only.
    pub rollup: Option<fn(&Options, &Rollup) -> Result<()>>,
    /// How a kind that decides on write does (None: it scans).
    pub trigger: Option<&'static OnWrite>,
    /// The recommended actions pg_vigil ships for the anomaly types this
    /// kind raises by default (`vigil.default_recommended_actions`, which
    /// CREATE EXTENSION copies into `vigil.recommended_actions`).
    pub actions: &'static [Actions],
}

/// Default recommended actions of one anomaly type at one severity (None:
/// the type's fallback for every other severity).
pub(in crate::monitor) type Actions = (&'static str, Option<&'static str>, &'static [&'static str]);

/// A kind that decides on write, in a statement trigger on its source.
pub(in crate::monitor) struct OnWrite {
    /// The trigger function (AFTER INSERT, the new rows as `vigil_new`,
    /// the monitor id its argument): `create_monitor` adds it,
    /// `drop_monitor` drops it, and the source must be a local table.
    pub function: &'static str,
    /// What a scan runs for such a monitor instead of a query (the
    /// monitor's name as `$1`): a statement closing the decisions that are
    /// due, whose row count is reported as `variants_expired`. SQL, not a
    /// function, so that kinds stay plain data the unit tests can read.
    pub expire: &'static str,
}

macro_rules! kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        /// A monitor kind; its definition is `$module::DEF`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind { $($variant),+ }

        /// Every kind, in the order error messages list them.
        pub const ALL: &[Kind] = &[$(Kind::$variant),+];

        impl Kind {
            pub(in crate::monitor) fn def(self) -> &'static KindDef {
                match self { $(Kind::$variant => &$module::DEF),+ }
            }
        }
    };
}

kinds! {
    Drop => drop,
    Stall => stall,
    Count => count,
    Zscore => zscore,
    Saturation => saturation,
    Threshold => threshold,
    Freshness => freshness,
    Health => health,
    EarlyKill => early_kill,
}

impl Kind {
    pub fn parse(name: &str) -> Result<Kind> {
        ALL.iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
                VigilError::invalid(format!(
                    "kind must be one of {}, got \"{name}\"",
                    names.join(", ")
                ))
            })
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }
}

/// The metric name most kinds default to: the value column, else `default`.
fn value_or(o: &Map<String, Value>, default: &str) -> String {
    o.get("value")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// The report's metric name: options.metric_name.
fn metric_name_option(o: &Map<String, Value>) -> Option<String> {
    o.get("metric_name")
        .and_then(Value::as_str)
        .map(String::from)
}

fn no_cross_checks(_: &Map<String, Value>) -> Result<()> {
    Ok(())
}

/// `($1->>'key')::type`: an option value as a query parameter.
pub(super) fn opt(key: &str, ty: &str) -> String {
    format!("($1->>{})::{ty}", literal(key))
}

/// What a kind's query builder reads: the validated options, the quoted,
/// qualified source and its columns.
pub struct Query<'a> {
    pub o: &'a Map<String, Value>,
    pub source: &'a str,
    pub columns: &'a Columns,
    /// The source is this rollup's summary table.
    pub rollup: Option<&'a Rollup>,
}

/// A rollup needs nothing more of the kind's options.
fn any_rollup(_: &Map<String, Value>, _: &Rollup) -> Result<()> {
    Ok(())
}

/// options.ratio stands instead of options.value: not both.
fn ratio_or_value(o: &Map<String, Value>) -> Result<()> {
    if o.contains_key("ratio") && o.contains_key("value") {
        return Err(VigilError::invalid(
            "options.ratio and options.value exclude each other",
        ));
    }
    Ok(())
}

/// options.ratio over a rollup: each side a sum or count measure, or `{}`
/// (the groups' rows); a filter cannot pick rows out of a group.
fn ratio_of(o: &Map<String, Value>, r: &Rollup) -> Result<()> {
    let Some(ratio) = o.get("ratio") else {
        return Ok(());
    };
    for side in ["numerator", "denominator"] {
        match &ratio[side] {
            Value::String(m) => {
                let one = Map::from_iter([(side.to_string(), Value::String(m.clone()))]);
                measure_of(&one, r, side, &["sum", "count"], &format!("options.ratio.{side}"))
                    .map_err(|e| VigilError::invalid(e.message.replacen("options.", "options.ratio.", 1)))?;
            }
            Value::Object(f) if f.is_empty() => {}
            _ => {
                return Err(VigilError::invalid(format!(
                    "options.ratio.{side}: a filter counts raw rows; over a rollup name a count measure \
                     (give the rollup's measure the filter) or {{}} for all rows"
                )))
            }
        }
    }
    Ok(())
}

/// options.`key` names a measure of the rollup whose agg is one of `aggs`.
fn measure_of(
    o: &Map<String, Value>,
    r: &Rollup,
    key: &str,
    aggs: &[&str],
    why: &str,
) -> Result<()> {
    let Some(m) = o.get(key).and_then(Value::as_str) else {
        return Ok(());
    };
    match r.agg(m) {
        Some(a) if aggs.contains(&a) => Ok(()),
        Some(a) => Err(VigilError::invalid(format!(
            "options.{key}: measure \"{m}\" is a {a} measure; {why} needs a {} measure",
            aggs.join(" or ")
        ))),
        None => Err(VigilError::invalid(format!(
            "options.{key}: \"{m}\" is not a measure of the rollup (measures: {})",
            r.measures.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

impl Query<'_> {
    /// `count(*)` of the rows read; over a rollup, the rows its groups hold
    /// (summed as float8: bigint's sum is numeric, several times slower,
    /// and exact for counts below 2^53 either way).
    fn rows(&self) -> String {
        match self.rollup {
            Some(_) => format!("sum((t.{})::float8)", ident("_rows")),
            None => "count(*)".into(),
        }
    }

    /// The rows one row read stands for, as float8: 1, or a rollup summary
    /// row's `_rows` (what `rows()` sums).
    fn row_rows(&self) -> String {
        match self.rollup {
            Some(_) => format!("(t.{})::float8", ident("_rows")),
            None => "1".into(),
        }
    }

    /// The sum of options.`key` as float8 (NULL over no values): a column
    /// of the raw rows, or a sum or count measure of a rollup.
    fn sum_of(&self, key: &str) -> String {
        let c = self.req_col(key);
        format!("sum(({c})::float8)")
    }

    /// One side of options.ratio as a float8 over the rows read: a
    /// column's (or measure's) sum, or the count of the rows a filter
    /// matches (a rollup: its groups' rows).
    fn quantity(&self, side: &str) -> String {
        match &self.o["ratio"][side] {
            Value::String(c) => {
                let c = format!("t.{}", ident(c));
                match self.rollup {
                    Some(_) => format!("coalesce(sum({c})::float8, 0)"),
                    None => format!("coalesce(sum(({c})::float8), 0)"),
                }
            }
            Value::Object(f) if f.is_empty() => format!("({})::float8", self.rows()),
            Value::Object(f) => {
                let conds: Vec<String> = f
                    .iter()
                    .map(|(col, values)| {
                        let c = format!("t.{}", ident(col));
                        if values.is_null() {
                            return format!("{c} IS NULL");
                        }
                        format!(
                            "{c} = ANY (ARRAY(SELECT jsonb_array_elements_text($1->'ratio'->{}->{}))::{}[])",
                            literal(side),
                            literal(col),
                            self.columns[col].sql_type
                        )
                    })
                    .collect();
                format!("(count(*) FILTER (WHERE {}))::float8", conds.join(" AND "))
            }
            _ => unreachable!("options.ratio is validated"),
        }
    }

    /// options.ratio, numerator / denominator (NULL where the denominator
    /// is 0), when the monitor has one.
    fn ratio(&self) -> Option<String> {
        self.o.contains_key("ratio").then(|| {
            format!(
                "({}) / nullif({}, 0)",
                self.quantity("numerator"),
                self.quantity("denominator")
            )
        })
    }

    fn col(&self, key: &str) -> Option<String> {
        self.o
            .get(key)
            .and_then(Value::as_str)
            .map(|c| format!("t.{}", ident(c)))
    }

    fn req_col(&self, key: &str) -> String {
        self.col(key).expect("required column option is present")
    }

    /// The SQL type of the column named by option `key` ("" if none).
    fn sql_type(&self, key: &str) -> &str {
        self.o
            .get(key)
            .and_then(Value::as_str)
            .and_then(|c| self.columns.get(c))
            .map_or("", |c| c.sql_type.as_str())
    }

    /// `expr` cast to the type of the time column, so that an index on it
    /// stays usable.
    fn as_time(&self, expr: &str) -> String {
        let ty = match self.sql_type("time") {
            "" => "timestamptz",
            ty => ty,
        };
        format!("({expr})::{ty}")
    }

    fn entity(&self) -> String {
        self.col("entity")
            .map_or_else(|| "$2::text".to_string(), |c| format!("({c})::text"))
    }

    /// ` AND entity IS NOT NULL` when the monitor has an entity column.
    fn entity_not_null(&self) -> String {
        self.col("entity")
            .map(|c| format!(" AND {c} IS NOT NULL"))
            .unwrap_or_default()
    }

    /// ` AND ...` for options.filter (and any other filter-shaped key).
    /// options.filter also leaves out rows whose `value` is NaN or
    /// ±Infinity: one writer's non-finite value must not turn a monitor's
    /// arithmetic (averages, z-scores) into errors or NaN for everyone.
    fn filter(&self, key: &str) -> String {
        let mut out = String::new();
        if key == "filter" {
            out.push_str(&self.finite("value"));
        }
        let Some(Value::Object(f)) = self.o.get(key) else {
            return out;
        };
        out.extend(
            f.iter()
                .map(|(col, values)| self.condition(key, col, values))
                .map(|c| format!(" AND {c}")),
        );
        out
    }

    /// ` AND col NOT IN ('NaN', 'Infinity', '-Infinity')` for a float or
    /// numeric column option (integers cannot hold them).
    fn finite(&self, key: &str) -> String {
        let Some(c) = self.col(key) else {
            return String::new();
        };
        let sql_type = self.sql_type(key);
        let may_be_non_finite = sql_type == "numeric"
            || sql_type.starts_with("numeric(")
            || matches!(sql_type, "double precision" | "real");
        if may_be_non_finite {
            format!(" AND {c} NOT IN ('NaN', 'Infinity', '-Infinity')")
        } else {
            String::new()
        }
    }

    fn condition(&self, key: &str, col: &str, values: &Value) -> String {
        let c = format!("t.{}", ident(col));
        if values.is_null() {
            return format!("{c} IS NULL");
        }
        let ty = &self.columns[col].sql_type;
        format!(
            "{c} = ANY (ARRAY(SELECT jsonb_array_elements_text($1->{}->{}))::{ty}[])",
            literal(key),
            literal(col)
        )
    }

    fn thresholds(&self) -> Vec<&'static str> {
        let t = &self.o["thresholds"];
        LEVELS
            .iter()
            .copied()
            .filter(|l| t.get(l).is_some())
            .collect()
    }

    /// A threshold as a value of `ty` (float8, numeric or interval).
    fn level(level: &str, ty: &str) -> String {
        format!("($1->'thresholds'->>{})::{ty}", literal(level))
    }

    /// The severity of `expr` (of type `ty`) against options.thresholds:
    /// the worst level `expr` meets, NULL below the lowest.
    fn severity(&self, expr: &str, ty: &str, meets: Meets) -> String {
        let op = meets.op();
        let arms: String = self
            .thresholds()
            .iter()
            .rev()
            .map(|l| format!(" WHEN {expr} {op} {} THEN '{l}'", Self::level(l, ty)))
            .collect();
        format!("(CASE{arms} END)::vigil.severity")
    }

    fn lowest(&self, ty: &str) -> String {
        Self::level(self.thresholds()[0], ty)
    }

    /// The common tail: finding columns (`super::Finding`) from a subquery
    /// `f` that has entity, severity and the kind's fields. Only rows that
    /// raise an alert or predict something are returned, so the texts are
    /// formatted for those alone (a saturation scan of 10 000 healthy
    /// entities formats none).
    fn finish(&self, inner: &str, fields: &Fields) -> String {
        let prediction = fields.prediction.as_deref().unwrap_or("NULL::jsonb");
        let keep = if fields.prediction.is_some() {
            format!("\nWHERE f.severity IS NOT NULL OR ({prediction}) IS NOT NULL")
        } else {
            "\nWHERE f.severity IS NOT NULL".to_string()
        };
        format!(
            "SELECT f.entity AS entity, {anomaly_type} AS anomaly_type, f.severity AS severity, \
             ({urgency})::int AS urgency, ({title})::text AS title, ({summary})::text AS summary, \
             ({details})::jsonb AS details, ({metric})::float8 AS metric, ({category})::text AS category, \
             ({suffix})::text AS key_suffix, ({prediction})::jsonb AS prediction\nFROM ({inner}) f{keep}",
            anomaly_type = fields.anomaly_type.as_deref().unwrap_or("$1->>'anomaly_type'"),
            urgency = fields.urgency,
            title = fields.title,
            summary = fields.summary,
            details = fields.details,
            metric = fields.metric,
            category = fields.category.as_deref().unwrap_or("NULL::text"),
            suffix = fields.key_suffix.as_deref().unwrap_or("NULL::text"),
        )
    }
}

/// How a value meets a threshold. Where the seed says "above" (z-scores:
/// `|z| > 3`; exhaustion: `> 70`) a value exactly at it does not.
#[derive(Debug, Clone, Copy)]
enum Meets {
    /// `>=`: drops, ages and counts that reach the threshold.
    AtLeast,
    /// `>`: strictly beyond it.
    Beyond,
}

impl Meets {
    fn op(self) -> &'static str {
        match self {
            Meets::AtLeast => ">=",
            Meets::Beyond => ">",
        }
    }
}

/// The SQL expressions of a kind's finding columns, over the subquery `f`.
struct Fields {
    /// Overrides options.anomaly_type (saturation's exhaustion findings).
    anomaly_type: Option<String>,
    urgency: String,
    title: String,
    summary: String,
    details: String,
    metric: String,
    category: Option<String>,
    key_suffix: Option<String>,
    prediction: Option<String>,
}
