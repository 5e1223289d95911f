//! A monitor's options: each kind declares its keys (type, default, whether
//! required); `validate` checks a user's JSON object against them and the
//! source table's columns and returns the options with defaults filled in.

use super::{ColType, Columns, Kind};
use crate::error::{json_type, ErrorKind, Result, VigilError};
use serde_json::{Map, Value};

/// What a key holds.
#[derive(Clone, Copy)]
pub(super) enum Opt {
    /// A column of the source with one of these types (empty: any type).
    Column(&'static [ColType]),
    /// A positive interval of seconds, minutes, hours, days or weeks.
    Interval,
    /// An interval that may be zero.
    IntervalOrZero,
    /// A finite number within [min, max].
    Number(f64, f64),
    /// An integer within [min, max].
    Int(i64, i64),
    Text,
    Choice(&'static [&'static str]),
    /// `{"medium": .., "high": .., "critical": ..}`, at least one level,
    /// strictly increasing with severity.
    Thresholds(Unit),
    /// `{"column": value | [values] | null}`: rows where the column equals
    /// one of the values (compared as the column's type) or IS NULL.
    Filter,
    TextList,
    /// `{"red": number, "yellow": number}` with red < yellow.
    Zones,
    /// Alert labels: an object of strings (`crate::alert::check_labels`).
    Labels,
    /// One label value (`crate::alert::check_label_value`).
    LabelValue,
    /// `{"numerator": q, "denominator": q}`, each q a numeric column (its
    /// sum; over a rollup, a sum or count measure) or a filter object (the
    /// rows it matches; `{}`: all rows).
    Ratio,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Number,
    Interval,
}

pub(super) struct Key {
    pub name: &'static str,
    pub opt: Opt,
    pub required: bool,
    /// JSON text of the default, if any.
    pub default: Option<&'static str>,
}

pub(super) const fn key(name: &'static str, opt: Opt) -> Key {
    Key {
        name,
        opt,
        required: false,
        default: None,
    }
}

pub(super) const fn req(name: &'static str, opt: Opt) -> Key {
    Key {
        name,
        opt,
        required: true,
        default: None,
    }
}

pub(super) const fn def(name: &'static str, opt: Opt, default: &'static str) -> Key {
    Key {
        name,
        opt,
        required: false,
        default: Some(default),
    }
}

pub(super) const ANY: &[ColType] = &[];
pub(super) const TIME: &[ColType] = &[ColType::Time];
pub(super) const NUMERIC: &[ColType] = &[ColType::Numeric];
pub(super) const LEVELS: [&str; 3] = ["medium", "high", "critical"];
pub(super) const OPS: &[&str] = &["<", "<=", ">", ">=", "=", "!="];

/// Keys every scanning kind accepts.
const COMMON: &[Key] = &[
    key("anomaly_type", Opt::Text),
    key("metric_name", Opt::Text),
    def("label", Opt::Text, "\"entities\""),
    def("dedup_window", Opt::Interval, "\"24 hours\""),
    def("expires_in", Opt::Interval, "\"48 hours\""),
    def("dedup_by", Opt::Choice(&["day", "hour"]), "\"day\""),
    key("filter", Opt::Filter),
    key("alertname", Opt::LabelValue),
    key("labels", Opt::Labels),
    // Actions when a finding opens a new alert: an action webhook on this
    // channel (idempotent per alert) and/or this procedure (schema
    // qualified, one jsonb argument) called as the monitor's creator.
    key("action_channel", Opt::Text),
    key("action_procedure", Opt::Text),
];

/// The kind's own keys and the common ones that apply to it.
pub(super) fn keys(kind: Kind) -> (&'static [Key], &'static [Key]) {
    let def = kind.def();
    (def.keys, if def.common_keys { COMMON } else { &[] })
}

fn bad(key: &str, what: impl std::fmt::Display) -> VigilError {
    VigilError::invalid(format!("options.{key} {what}"))
}

/// Checks `options` against the kind's keys and the columns; returns them
/// with defaults filled in and values normalised (filters as arrays).
pub(super) fn validate(
    kind: Kind,
    options: &Value,
    columns: &Columns,
) -> Result<Map<String, Value>> {
    let given = options.as_object().ok_or_else(|| {
        VigilError::invalid(format!(
            "options must be a JSON object, got {}",
            json_type(options)
        ))
    })?;
    let (own, common) = keys(kind);
    let find = |name: &str| own.iter().chain(common).find(|k| k.name == name);
    let mut out = Map::new();
    for (name, value) in given {
        let Some(k) = find(name) else {
            let mut allowed: Vec<&str> = own.iter().chain(common).map(|k| k.name).collect();
            allowed.sort_unstable();
            allowed.dedup();
            return Err(bad(
                name,
                format!(
                    "is not an option of kind {} (allowed: {})",
                    kind.name(),
                    allowed.join(", ")
                ),
            ));
        };
        if value.is_null() && !matches!(k.opt, Opt::Filter) {
            if k.required {
                return Err(VigilError::new(
                    ErrorKind::NullValue,
                    format!("options.{name} must not be null"),
                ));
            }
            continue;
        }
        out.insert(name.clone(), check(name, k.opt, value, columns)?);
    }
    // Own keys first: a kind may override a common default.
    for k in own.iter().chain(common) {
        if out.contains_key(k.name) {
            continue;
        }
        if k.required {
            return Err(VigilError::new(
                ErrorKind::NullValue,
                format!("options.{} is required for kind {}", k.name, kind.name()),
            ));
        }
        if let Some(d) = k.default {
            let v: Value = serde_json::from_str(d).expect("option defaults are valid JSON");
            out.insert(k.name.to_string(), v);
        }
    }
    Ok(out)
}

fn check(name: &str, opt: Opt, value: &Value, columns: &Columns) -> Result<Value> {
    match opt {
        Opt::Column(types) => {
            let col = value.as_str().ok_or_else(|| {
                bad(
                    name,
                    format!("must be a column name (string), got {}", json_type(value)),
                )
            })?;
            column(name, col, types, columns)?;
            Ok(value.clone())
        }
        Opt::Interval | Opt::IntervalOrZero => {
            let s = value.as_str().ok_or_else(|| {
                bad(
                    name,
                    format!(
                        "must be an interval string such as \"24 hours\", got {}",
                        json_type(value)
                    ),
                )
            })?;
            let secs = interval_seconds(s).map_err(|e| bad(name, e))?;
            if secs <= 0.0 && matches!(opt, Opt::Interval) {
                return Err(bad(
                    name,
                    format!("must be a positive interval, got \"{s}\""),
                ));
            }
            Ok(value.clone())
        }
        Opt::Number(min, max) => {
            let n = value
                .as_f64()
                .ok_or_else(|| bad(name, format!("must be a number, got {}", json_type(value))))?;
            if !(min..=max).contains(&n) {
                return Err(VigilError::out_of_range(format!(
                    "options.{name} must be between {min} and {max}, got {n}"
                )));
            }
            Ok(value.clone())
        }
        Opt::Int(min, max) => {
            let n = value
                .as_i64()
                .ok_or_else(|| bad(name, format!("must be an integer, got {value}")))?;
            if !(min..=max).contains(&n) {
                return Err(VigilError::out_of_range(format!(
                    "options.{name} must be between {min} and {max}, got {n}"
                )));
            }
            Ok(value.clone())
        }
        Opt::Text => {
            let s = value
                .as_str()
                .ok_or_else(|| bad(name, format!("must be a string, got {}", json_type(value))))?;
            if s.trim().is_empty() {
                return Err(bad(name, "must not be empty"));
            }
            Ok(value.clone())
        }
        Opt::Choice(allowed) => {
            let s = value.as_str().unwrap_or_default();
            if !allowed.contains(&s) {
                return Err(bad(
                    name,
                    format!("must be one of {}, got {value}", allowed.join(", ")),
                ));
            }
            Ok(value.clone())
        }
        Opt::Thresholds(unit) => thresholds(name, unit, value),
        Opt::Filter => filter(name, value, columns),
        Opt::TextList => {
            let items = value
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad(name, "must be a non-empty array of strings"))?;
            if items.iter().any(|v| !v.is_string()) {
                return Err(bad(name, "must be a non-empty array of strings"));
            }
            Ok(value.clone())
        }
        Opt::LabelValue => {
            let text = value
                .as_str()
                .ok_or_else(|| bad(name, format!("must be a string, got {}", json_type(value))))?;
            crate::alert::check_label_value(text, &format!("options.{name}"))?;
            Ok(value.clone())
        }
        Opt::Ratio => ratio(name, value, columns),
        Opt::Labels => Ok(Value::Object(crate::alert::check_labels(
            value,
            &format!("options.{name}"),
        )?)),
        Opt::Zones => {
            let obj = value.as_object().ok_or_else(|| {
                bad(
                    name,
                    "must be an object {\"red\": number, \"yellow\": number}",
                )
            })?;
            let get = |k: &str| obj.get(k).and_then(Value::as_f64).filter(|n| n.is_finite());
            let (Some(red), Some(yellow)) = (get("red"), get("yellow")) else {
                return Err(bad(
                    name,
                    "must be an object {\"red\": number, \"yellow\": number}",
                ));
            };
            if obj.len() != 2 {
                return Err(bad(name, "takes only the keys red and yellow"));
            }
            if red >= yellow {
                return Err(bad(
                    name,
                    format!("red must be below yellow, got red {red}, yellow {yellow}"),
                ));
            }
            Ok(value.clone())
        }
    }
}

fn column(name: &str, col: &str, types: &[ColType], columns: &Columns) -> Result<()> {
    let Some(t) = columns.get(col) else {
        return Err(VigilError::new(
            ErrorKind::UndefinedColumn,
            format!("options.{name}: column \"{col}\" does not exist in the source table"),
        ));
    };
    if !types.is_empty() && !types.contains(&t.category) {
        let want: Vec<&str> = types.iter().map(|t| t.describe()).collect();
        return Err(VigilError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "options.{name}: column \"{col}\" is {}, expected {}",
                t.sql_type,
                want.join(" or ")
            ),
        ));
    }
    Ok(())
}

fn thresholds(name: &str, unit: Unit, value: &Value) -> Result<Value> {
    let usage = match unit {
        Unit::Number => "must be an object of numbers keyed by medium, high, critical",
        Unit::Interval => "must be an object of intervals keyed by medium, high, critical",
    };
    let obj = value.as_object().ok_or_else(|| bad(name, usage))?;
    if obj.is_empty() {
        return Err(bad(name, format!("{usage} (at least one)")));
    }
    let mut previous: Option<(&str, f64)> = None;
    for level in LEVELS {
        let Some(v) = obj.get(level) else { continue };
        let n = match unit {
            Unit::Number => v.as_f64().filter(|n| n.is_finite()),
            Unit::Interval => v.as_str().and_then(|s| interval_seconds(s).ok()),
        }
        .ok_or_else(|| bad(&format!("{name}.{level}"), usage))?;
        if let Some((p, pn)) = previous {
            if n <= pn {
                return Err(bad(
                    name,
                    format!("must increase with severity: {level} ({v}) is not above {p}"),
                ));
            }
        }
        previous = Some((level, n));
    }
    if let Some(k) = obj.keys().find(|k| !LEVELS.contains(&k.as_str())) {
        return Err(bad(
            name,
            format!("has unknown level \"{k}\" (allowed: medium, high, critical)"),
        ));
    }
    Ok(value.clone())
}

fn ratio(name: &str, value: &Value, columns: &Columns) -> Result<Value> {
    let usage = "must be {\"numerator\": q, \"denominator\": q}, each q a numeric column or a filter object ({} counts every row)";
    let obj = value.as_object().ok_or_else(|| bad(name, usage))?;
    if obj.len() != 2 {
        return Err(bad(name, usage));
    }
    let mut out = Map::new();
    for side in ["numerator", "denominator"] {
        let key = format!("{name}.{side}");
        let q = match obj.get(side) {
            Some(Value::String(col)) => {
                column(&key, col, &[ColType::Numeric], columns)?;
                Value::String(col.clone())
            }
            Some(Value::Object(f)) if f.is_empty() => Value::Object(Map::new()),
            Some(f @ Value::Object(_)) => filter(&key, f, columns)?,
            _ => return Err(bad(name, usage)),
        };
        out.insert(side.to_string(), q);
    }
    Ok(Value::Object(out))
}

fn filter(name: &str, value: &Value, columns: &Columns) -> Result<Value> {
    let obj = value.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        bad(
            name,
            "must be a non-empty object {\"column\": value | [values] | null}",
        )
    })?;
    let mut out = Map::new();
    for (col, v) in obj {
        column(name, col, &[], columns)?;
        let values = match v {
            Value::Null => Value::Null,
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    scalar(name, col, item)?;
                }
                v.clone()
            }
            Value::Array(_) => {
                return Err(bad(name, format!("\"{col}\" needs at least one value")))
            }
            _ => {
                scalar(name, col, v)?;
                Value::Array(vec![v.clone()])
            }
        };
        out.insert(col.clone(), values);
    }
    Ok(Value::Object(out))
}

fn scalar(name: &str, col: &str, v: &Value) -> Result<()> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        _ => Err(bad(
            name,
            format!(
                "\"{col}\" values must be strings, numbers or booleans, got {}",
                json_type(v)
            ),
        )),
    }
}

/// Seconds in an interval written as number-unit pairs ("90 minutes",
/// "1 day 12 hours", "2 weeks"). Months and years are refused: their length
/// varies. Every accepted string means the same to PostgreSQL's interval
/// input, which the generated SQL uses.
pub fn interval_seconds(text: &str) -> std::result::Result<f64, String> {
    let err = || {
        format!(
            "must be an interval such as \"30 minutes\", \"24 hours\" or \"7 days\" \
             (units: seconds, minutes, hours, days, weeks), got \"{text}\""
        )
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(err());
    }
    let mut total = 0.0;
    for pair in words.chunks(2) {
        // Plain decimals only: PostgreSQL reads "1e3 minutes" differently.
        if !pair[0].chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(err());
        }
        let n: f64 = pair[0].parse().map_err(|_| err())?;
        let unit = match pair[1].to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return Err(err()),
        };
        total += n * unit;
    }
    if total > 10.0 * 366.0 * 86_400.0 {
        return Err(format!("must be at most 10 years, got \"{text}\""));
    }
    Ok(total)
}
