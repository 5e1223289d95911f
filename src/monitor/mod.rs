//! Monitors (SPEC §3.4): a kind, a source table and options become a scan
//! query. This module validates the options against the kind and the
//! table's columns and writes the query; `sql/monitors.sql` runs it and
//! turns the rows into alerts. Identifiers are quoted; option values reach
//! the query as the parameter `$1` (the options), never spliced.

mod options;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;
#[cfg(test)]
mod tests;

use crate::error::{Result, VigilError};
use crate::rollup::{ident, literal};
use options::{LEVELS, OPS};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Drop,
    Stall,
    Count,
    Zscore,
    Saturation,
    Threshold,
    EarlyKill,
}

const KINDS: [(&str, Kind); 7] = [
    ("drop", Kind::Drop),
    ("stall", Kind::Stall),
    ("count", Kind::Count),
    ("zscore", Kind::Zscore),
    ("saturation", Kind::Saturation),
    ("threshold", Kind::Threshold),
    ("early_kill", Kind::EarlyKill),
];

impl Kind {
    pub fn parse(name: &str) -> Result<Kind> {
        KINDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                VigilError::invalid(format!(
                    "kind must be one of {}, got \"{name}\"",
                    names.join(", ")
                ))
            })
    }

    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .expect("every kind is named")
            .0
    }

    /// The anomaly type of its alerts unless options.anomaly_type says otherwise.
    fn default_anomaly_type(self) -> &'static str {
        match self {
            Kind::Zscore => "zscore_anomaly",
            k => k.name(),
        }
    }
}

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
    pub options: Map<String, Value>,
    pub query: Option<String>,
}

/// Validates `options` for `kind` over `source` (already quoted, schema
/// qualified) with `columns`, and writes the scan query.
pub fn plan(kind: &str, options: &Value, source: &str, columns: &Columns) -> Result<Plan> {
    let kind = Kind::parse(kind)?;
    let mut opts = options::validate(kind, options, columns)?;
    opts.entry("anomaly_type")
        .or_insert_with(|| Value::from(kind.default_anomaly_type()));
    let metric = match (kind, opts.get("value").and_then(Value::as_str)) {
        (Kind::Stall, _) => "age".to_string(),
        (_, Some(col)) => col.to_string(),
        (Kind::Saturation, None) => "conversion".to_string(),
        (_, None) => "events".to_string(),
    };
    if kind != Kind::EarlyKill {
        opts.entry("metric_name")
            .or_insert_with(|| Value::from(metric));
    }
    cross_checks(kind, &opts)?;
    let q = Query {
        o: &opts,
        source,
        columns,
    };
    let query = match kind {
        Kind::Drop => Some(q.drop()),
        Kind::Stall => Some(q.stall()),
        Kind::Count => Some(q.count()),
        Kind::Zscore => Some(q.zscore()),
        Kind::Saturation => Some(q.saturation()),
        Kind::Threshold => Some(q.threshold()),
        Kind::EarlyKill => None,
    };
    Ok(Plan {
        options: opts,
        query,
    })
}

/// Rules that involve more than one key.
fn cross_checks(kind: Kind, o: &Map<String, Value>) -> Result<()> {
    let has = |k: &str| o.contains_key(k);
    match kind {
        Kind::Count if has("window") && !has("time") => Err(VigilError::invalid(
            "options.window needs options.time (the column the window applies to)",
        )),
        Kind::Threshold if !has("value") && o["agg"] != "count" => Err(VigilError::invalid(
            "options.value is required unless options.agg is count",
        )),
        Kind::Zscore if o["min_weeks"].as_i64() > o["baseline_days"].as_i64().map(|d| d / 7) => {
            Err(VigilError::invalid(format!(
                "options.min_weeks ({}) exceeds the weeks in options.baseline_days ({})",
                o["min_weeks"], o["baseline_days"]
            )))
        }
        _ => Ok(()),
    }
}

/// Every scan query returns these columns (vigil.scan reads them by name).
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

struct Query<'a> {
    o: &'a Map<String, Value>,
    source: &'a str,
    columns: &'a Columns,
}

/// `($1->>'key')::type`: an option value as a query parameter.
fn opt(key: &str, ty: &str) -> String {
    format!("($1->>{})::{ty}", literal(key))
}

impl Query<'_> {
    fn col(&self, key: &str) -> Option<String> {
        self.o
            .get(key)
            .and_then(Value::as_str)
            .map(|c| format!("t.{}", ident(c)))
    }

    fn req_col(&self, key: &str) -> String {
        self.col(key).expect("required column option is present")
    }

    /// `expr` cast to the type of the time column, so that an index on it
    /// stays usable.
    fn as_time(&self, expr: &str) -> String {
        let ty = self
            .o
            .get("time")
            .and_then(Value::as_str)
            .and_then(|c| self.columns.get(c))
            .map_or("timestamptz", |c| c.sql_type.as_str());
        format!("({expr})::{ty}")
    }

    fn entity(&self) -> String {
        self.col("entity")
            .map_or_else(|| "$2::text".to_string(), |c| format!("({c})::text"))
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
        let sql_type = self
            .o
            .get(key)
            .and_then(Value::as_str)
            .and_then(|name| self.columns.get(name))
            .map_or("", |col| col.sql_type.as_str());
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

    /// The type `drop` computes in: numeric for numeric and integer columns,
    /// so that an average of `numeric(4,1)` values 10.0 above the latest
    /// one is a drop of exactly 10.0 (float8 makes it 9.999999999999993);
    /// float8 for float columns, which have no exact decimal value anyway.
    fn exact_type(&self, key: &str) -> &'static str {
        let sql_type = self
            .o
            .get(key)
            .and_then(Value::as_str)
            .and_then(|c| self.columns.get(c))
            .map_or("", |c| c.sql_type.as_str());
        let exact = sql_type == "numeric"
            || sql_type.starts_with("numeric(")
            || matches!(sql_type, "smallint" | "integer" | "bigint");
        if exact {
            "numeric"
        } else {
            "float8"
        }
    }

    /// The common tail: finding columns from a subquery `f` that has entity,
    /// severity and the kind's fields.
    fn finish(&self, inner: &str, fields: &Fields) -> String {
        format!(
            "SELECT f.entity AS entity, {anomaly_type} AS anomaly_type, f.severity AS severity, \
             ({urgency})::int AS urgency, ({title})::text AS title, ({summary})::text AS summary, \
             ({details})::jsonb AS details, ({metric})::float8 AS metric, ({category})::text AS category, \
             ({suffix})::text AS key_suffix, ({prediction})::jsonb AS prediction\nFROM ({inner}) f",
            anomaly_type = fields.anomaly_type.as_deref().unwrap_or("$1->>'anomaly_type'"),
            urgency = fields.urgency,
            title = fields.title,
            summary = fields.summary,
            details = fields.details,
            metric = fields.metric,
            category = fields.category.as_deref().unwrap_or("NULL::text"),
            suffix = fields.key_suffix.as_deref().unwrap_or("NULL::text"),
            prediction = fields.prediction.as_deref().unwrap_or("NULL::jsonb"),
        )
    }

    /// The latest value is taken as `max(ARRAY[epoch, value])[2]`, which a
    /// hash aggregate computes in one pass; `array_agg(... ORDER BY)` would
    /// sort the whole window.
    fn drop(&self) -> String {
        let (e, time, v) = (self.entity(), self.req_col("time"), self.req_col("value"));
        let ty = self.exact_type("value");
        let zone = if self.o.contains_key("zones") {
            format!(
                "CASE WHEN x.current < ($1->'zones'->>'red')::{ty} THEN 'RED' \
                 WHEN x.current < ($1->'zones'->>'yellow')::{ty} THEN 'YELLOW' ELSE 'GREEN' END"
            )
        } else {
            "NULL::text".into()
        };
        let inner = format!(
            "SELECT x.*, a.average, a.average - x.current AS drop_points, {zone} AS zone, {sev} AS severity\n\
             FROM (SELECT {e} AS entity,\n\
                   (max(ARRAY[extract(epoch FROM ({time})::timestamptz)::{ty}, ({v})::{ty}]))[2] AS current,\n\
                   sum(({v})::{ty}) AS total, count(*) AS samples\n\
                   FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now} AND {v} IS NOT NULL AND {e} IS NOT NULL{filter}\n\
                   GROUP BY 1 HAVING count(*) >= 2) x\n\
             CROSS JOIN LATERAL (SELECT (x.total - x.current) / (x.samples - 1) AS average) a",
            sev = self.severity("a.average - x.current", ty, Meets::AtLeast),
            src = self.source,
            since = self.as_time(&format!("now() - {}", opt("baseline", "interval"))),
            now = self.as_time("now()"),
            filter = self.filter("filter"),
        );
        self.finish(
            &inner,
            &Fields {
                anomaly_type: None,
                urgency: "vigil.urgency_score(f.severity, drop_points => f.drop_points, health_zone => f.zone)".into(),
                title: "format('%s dropped %s points', upper(left($1->>'metric_name', 1)) || substr($1->>'metric_name', 2), \
                        trim_scale(round(f.drop_points::numeric, 1)))"
                    .into(),
                summary: "format('%s: %s %s, average over %s %s', f.entity, $1->>'metric_name', \
                          trim_scale(round(f.current::numeric, 1)), $1->>'baseline', trim_scale(round(f.average::numeric, 1)))"
                    .into(),
                details: "jsonb_build_object('current', round(f.current::numeric, 2), 'average', round(f.average::numeric, 2), \
                          'drop_points', round(f.drop_points::numeric, 2), 'baseline', $1->>'baseline', \
                          'samples', f.samples, 'zone', f.zone)"
                    .into(),
                metric: "f.drop_points".into(),
                category: Some("f.zone".into()),
                key_suffix: None,
                prediction: Some(
                    "CASE WHEN f.severity >= 'high' THEN jsonb_build_object('type', 'churn_risk', 'entity', f.entity, \
                     'message', format('%s is at risk: %s fell %s points below its average over %s', f.entity, \
                     $1->>'metric_name', round(f.drop_points::numeric), $1->>'baseline')) END"
                        .into(),
                ),
            },
        )
    }

    fn stall(&self) -> String {
        let time = self.req_col("time");
        let group = self.col("group_column").map_or_else(
            || "NULL::text".into(),
            |g| format!("(array_agg(({g})::text ORDER BY {time}))[1]"),
        );
        let value = self
            .col("value")
            .map_or_else(|| "NULL::float8".into(), |v| format!("max(({v})::float8)"));
        let inner = format!(
            "SELECT x.*, now() - x.since AS age, {sev} AS severity,\n\
                    extract(epoch FROM now() - x.since) / 86400 AS days,\n\
                    extract(epoch FROM now() - x.since) / 3600 AS hours\n\
             FROM (SELECT {e} AS entity, count(*) AS stalled, min(({time})::timestamptz) AS since,\n\
                   {group} AS grp, {value} AS value\n\
                   FROM {src} t\n\
                   WHERE {time} <= {cutoff}{filter}{entity_not_null}\n\
                   GROUP BY 1) x",
            e = self.entity(),
            sev = self.severity("now() - x.since", "interval", Meets::AtLeast),
            src = self.source,
            cutoff = self.as_time(&format!("now() - {}", self.lowest("interval"))),
            filter = self.filter("filter"),
            entity_not_null = self
                .col("entity")
                .map(|c| format!(" AND {c} IS NOT NULL"))
                .unwrap_or_default(),
        );
        let per_entity = self.o.contains_key("entity");
        let (urgency, age_text) = if self.o["urgency_from"] == "wait_hours" {
            (
                "vigil.urgency_score(f.severity, wait_hours => f.hours, deal_value => f.value::numeric)",
                "format('%s hours', floor(f.hours))",
            )
        } else {
            (
                "vigil.urgency_score(f.severity, stall_days => f.days, deal_value => f.value::numeric)",
                "format('%s days', floor(f.days))",
            )
        };
        let title = if per_entity {
            let verb = if self.o["urgency_from"] == "wait_hours" {
                "Waiting"
            } else {
                "Stalled"
            };
            format!("format('{verb} %s', {age_text}) || coalesce(' in ' || f.grp, '')")
        } else {
            format!("format('%s %s waiting, oldest for %s', f.stalled, $1->>'label', {age_text})")
        };
        self.finish(
            &inner,
            &Fields {
                anomaly_type: None,
                urgency: urgency.into(),
                title,
                summary: format!(
                    "format('%s: no change for %s (since %s)%s', f.entity, {age_text}, \
                     to_char(f.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'), \
                     coalesce(format(', value %s', f.value), ''))"
                ),
                details: "jsonb_build_object('since', f.since, 'stall_days', round(f.days::numeric, 2), \
                          'wait_hours', round(f.hours::numeric, 2), 'stalled', f.stalled, 'group', f.grp, 'value', f.value)"
                    .into(),
                metric: if self.o["urgency_from"] == "wait_hours" { "f.hours" } else { "f.days" }.into(),
                category: Some("f.grp".into()),
                key_suffix: None,
                prediction: Some(format!(
                    "CASE WHEN f.severity = 'critical' THEN jsonb_build_object('type', 'likely_lost', 'entity', f.entity, \
                     'message', format('%s is likely lost: no progress for %s', f.entity, {age_text})) END"
                )),
            },
        )
    }

    fn count(&self) -> String {
        let window = match self.col("time") {
            Some(time) => {
                let w = if self.o.contains_key("window") {
                    opt("window", "interval")
                } else {
                    "interval '24 hours'".into()
                };
                format!(
                    " AND {time} >= {} AND {time} <= {}",
                    self.as_time(&format!("now() - {w}")),
                    self.as_time("now()")
                )
            }
            None => String::new(),
        };
        let (window_text, window_suffix) = if self.o.contains_key("time") {
            (
                "coalesce($1->>'window', '24 hours')",
                "' in ' || coalesce($1->>'window', '24 hours')",
            )
        } else {
            ("'all rows'", "''")
        };
        let inner = format!(
            "SELECT x.*, {sev} AS severity\n\
             FROM (SELECT {e} AS entity, count(*) AS n FROM {src} t\n\
                   WHERE true{window}{filter}{entity_not_null}\n\
                   GROUP BY 1) x\n\
             WHERE x.n >= {lowest}",
            e = self.entity(),
            sev = self.severity("x.n", "float8", Meets::AtLeast),
            src = self.source,
            filter = self.filter("filter"),
            entity_not_null = self
                .col("entity")
                .map(|c| format!(" AND {c} IS NOT NULL"))
                .unwrap_or_default(),
            lowest = self.lowest("float8"),
        );
        self.finish(
            &inner,
            &Fields {
                anomaly_type: None,
                urgency: "vigil.urgency_score(f.severity, failure_count => f.n::int)".into(),
                title: format!("format('%s %s', f.n, $1->>'metric_name') || {window_suffix}"),
                summary: format!("format('%s: %s %s', f.entity, f.n, $1->>'metric_name') || {window_suffix}"),
                details: format!("jsonb_build_object('count', f.n, 'window', {window_text})"),
                metric: "f.n".into(),
                category: None,
                key_suffix: None,
                prediction: Some(
                    "CASE WHEN f.severity = 'critical' THEN jsonb_build_object('type', 'outage', 'entity', f.entity, \
                     'message', format('%s looks down: %s %s', f.entity, f.n, $1->>'metric_name')) END"
                        .into(),
                ),
            },
        )
    }

    fn zscore(&self) -> String {
        let (e, time) = (self.entity(), self.req_col("time"));
        let v = self.col("value").map_or_else(
            || "count(*)::float8".into(),
            |v| format!("coalesce(sum(({v})::float8), 0)"),
        );
        let scored = match self.o["direction"].as_str() {
            Some("up") => "f.z",
            Some("down") => "-f.z",
            _ => "abs(f.z)",
        };
        // One LATERAL range scan per slot, so an index on the time column
        // reads 13 hours of rows instead of the whole table.
        // Hour slots: w = 0 is the last complete hour, w = 1.. the same hour
        // of the previous weeks. Weeks before an entity's first slot with data
        // are left out; later empty weeks count as zero. The spread is summed
        // as squared deviations from the mean (two passes), not as
        // sum(v²) − sum(v)²/n: over equal non-integer values that difference
        // leaves rounding error of ~1e-8 × the mean, which would read as
        // spread. vigil.zscore is NULL when the spread is only float noise.
        let inner = format!(
            "WITH slots AS (\n\
               SELECT w, date_trunc('hour', now()) - interval '1 hour' - w * interval '1 week' AS s\n\
               FROM generate_series(0, {days} / 7) w),\n\
             counts AS (\n\
               SELECT c.entity, sl.w, c.v\n\
               FROM slots sl CROSS JOIN LATERAL (\n\
                 SELECT {e} AS entity, {v} AS v FROM {src} t\n\
                 WHERE {time} >= {lo} AND {time} < {hi} AND {e} IS NOT NULL{filter}\n\
                 GROUP BY 1) c),\n\
             per AS (\n\
               SELECT entity, coalesce(max(v) FILTER (WHERE w = 0), 0) AS current,\n\
                      max(w) FILTER (WHERE w > 0) AS weeks,\n\
                      count(*) FILTER (WHERE w > 0) AS filled,\n\
                      coalesce(sum(v) FILTER (WHERE w > 0), 0) AS s1\n\
               FROM counts GROUP BY entity),\n\
             stats AS (\n\
               SELECT p.entity, p.current, p.weeks, p.s1 / p.weeks AS mean,\n\
                      sqrt((coalesce(sum((c.v - p.s1 / p.weeks) * (c.v - p.s1 / p.weeks)), 0)\n\
                            + (p.weeks - p.filled) * (p.s1 / p.weeks) * (p.s1 / p.weeks)) / (p.weeks - 1)) AS sd\n\
               FROM per p LEFT JOIN counts c ON c.entity = p.entity AND c.w > 0\n\
               WHERE p.weeks >= {min_weeks}\n\
               GROUP BY p.entity, p.current, p.weeks, p.filled, p.s1),\n\
             scored AS (\n\
               SELECT s.*, vigil.zscore(s.current, s.mean, s.sd) AS z FROM stats s)\n\
             SELECT f.*, {sev} AS severity, date_trunc('hour', now()) - interval '1 hour' AS hour\n\
             FROM scored f WHERE f.z IS NOT NULL",
            days = opt("baseline_days", "int"),
            src = self.source,
            lo = self.as_time("sl.s"),
            hi = self.as_time("sl.s + interval '1 hour'"),
            filter = self.filter("filter"),
            min_weeks = opt("min_weeks", "int"),
            sev = self.severity(scored, "float8", Meets::Beyond),
        );
        self.finish(
            &inner,
            &Fields {
                anomaly_type: None,
                urgency: "vigil.urgency_score(f.severity)".into(),
                title: "format('%s %s: %s vs usual %s (z = %s)', upper(left($1->>'metric_name', 1)) || substr($1->>'metric_name', 2), \
                        CASE WHEN f.z > 0 THEN 'spike' ELSE 'drop' END, trim_scale(round(f.current::numeric, 1)), \
                        trim_scale(round(f.mean::numeric, 1)), round(f.z::numeric, 1))"
                    .into(),
                summary: "format('%s: %s in the hour from %s UTC was %s; the same hour of the previous %s weeks averaged %s (sd %s)', \
                          f.entity, $1->>'metric_name', to_char(f.hour AT TIME ZONE 'UTC', 'Dy HH24:00'), \
                          round(f.current::numeric, 1), f.weeks, round(f.mean::numeric, 1), round(f.sd::numeric, 1))"
                    .into(),
                details: "jsonb_build_object('current', f.current, 'mean', round(f.mean::numeric, 3), 'stddev', \
                          round(f.sd::numeric, 3), 'z', round(f.z::numeric, 3), 'weeks', f.weeks, 'hour', f.hour)"
                    .into(),
                metric: "f.z".into(),
                category: Some("CASE WHEN f.z > 0 THEN 'spike' ELSE 'drop' END".into()),
                key_suffix: None,
                prediction: None,
            },
        )
    }

    fn saturation(&self) -> String {
        let (e, time) = (self.entity(), self.req_col("time"));
        let converted = self.filter("converted");
        let converted = converted.trim_start_matches(" AND ");
        // Day 0 is the last 24 hours, days 1..B the baseline before it.
        let inner = format!(
            "WITH daily AS (\n\
               SELECT {e} AS entity,\n\
                      floor(extract(epoch FROM now() - ({time})::timestamptz) / 86400)::int AS d,\n\
                      count(*)::float8 AS n, count(*) FILTER (WHERE {converted})::float8 AS c\n\
               FROM {src} t\n\
               WHERE {time} > {since} AND {time} <= {now} AND {e} IS NOT NULL{filter}\n\
               GROUP BY 1, 2),\n\
             chain AS (\n\
               SELECT entity, d, n, c, c / n AS rate,\n\
                      c / n < lead(c / n) OVER w AND lead(d) OVER w = d + 1 AS declining\n\
               FROM daily WINDOW w AS (PARTITION BY entity ORDER BY d)),\n\
             per AS (\n\
               SELECT entity,\n\
                      coalesce(sum(n) FILTER (WHERE d = 0), 0) AS m24,\n\
                      coalesce(sum(c) FILTER (WHERE d = 0), 0) AS c24,\n\
                      coalesce(sum(n) FILTER (WHERE d > 0), 0) AS mb,\n\
                      coalesce(sum(c) FILTER (WHERE d > 0), 0) AS cb,\n\
                      coalesce(sum(n * n) FILTER (WHERE d > 0), 0) AS mb2,\n\
                      avg(rate) FILTER (WHERE d > 0) AS rate_mean,\n\
                      stddev_samp(rate) FILTER (WHERE d > 0) AS rate_sd,\n\
                      CASE WHEN min(d) = 0 THEN coalesce(min(d) FILTER (WHERE NOT coalesce(declining, false)), count(*)) ELSE 0 END AS decline_days\n\
               FROM chain GROUP BY entity),\n\
             m AS (\n\
               SELECT p.*, p.c24 / nullif(p.m24, 0) AS conv, p.cb / nullif(p.mb, 0) AS base_conv,\n\
                      p.mb / {days} AS base_daily,\n\
                      sqrt(greatest((p.mb2 - p.mb * p.mb / {days}) / ({days} - 1), 0)) AS vol_sd\n\
               FROM per p),\n\
             s AS (\n\
               SELECT m.*, vigil.saturation_status(m.conv, m.base_conv, m.m24, m.base_daily) AS status,\n\
                      vigil.exhaustion_score(m.conv, m.base_conv, m.m24, m.base_daily, m.decline_days::int) AS exhaustion,\n\
                      vigil.zscore(m.conv, m.rate_mean, m.rate_sd) AS conversion_z,\n\
                      vigil.zscore(m.m24, m.base_daily, m.vol_sd) AS volume_z\n\
               FROM m)\n\
             SELECT s.*, o.*, vigil.saturation_predicted(s.conversion_z, s.volume_z, s.decline_days::int) AS predicted\n\
             FROM s CROSS JOIN LATERAL (VALUES\n\
               ('saturation', s.status::text, CASE s.status WHEN 'RED' THEN 'high' WHEN 'YELLOW' THEN 'medium' END::vigil.severity),\n\
               ('exhaustion', NULL, CASE WHEN s.exhaustion > ($1->>'exhaustion_threshold')::float8\n\
                                         THEN CASE WHEN s.exhaustion >= 90 AND 90 >= ($1->>'exhaustion_threshold')::float8\n\
                                                   THEN 'critical' ELSE 'high' END END::vigil.severity)\n\
             ) AS o(finding, status_text, severity)",
            src = self.source,
            since = self.as_time(&format!("now() - ({} + 1) * interval '1 day'", opt("baseline_days", "int"))),
            now = self.as_time("now()"),
            filter = self.filter("filter"),
            days = opt("baseline_days", "float8"),
        );
        self.finish(
            &inner,
            &Fields {
                anomaly_type: Some(
                    "CASE f.finding WHEN 'saturation' THEN $1->>'anomaly_type' ELSE 'exhaustion' END".into(),
                ),
                urgency: "vigil.urgency_score(f.severity, health_zone => f.status::text)".into(),
                title: "CASE f.finding WHEN 'saturation' THEN format('Saturation %s: conversion %s%% vs %s%% baseline', \
                        f.status, round(100 * f.conv::numeric, 1), round(100 * f.base_conv::numeric, 1)) \
                        ELSE format('Audience exhaustion score %s', round(f.exhaustion::numeric)) END"
                    .into(),
                summary: "format('%s: %s messages in 24 h vs %s/day baseline, conversion %s%% vs %s%%, %s day(s) of decline', \
                          f.entity, f.m24, round(f.base_daily::numeric, 1), round(100 * f.conv::numeric, 1), \
                          round(100 * f.base_conv::numeric, 1), f.decline_days)"
                    .into(),
                details: "jsonb_build_object('status', f.status, 'messages_24h', f.m24, 'conversions_24h', f.c24, \
                          'conversion_24h', round(f.conv::numeric, 4), 'baseline_conversion', round(f.base_conv::numeric, 4), \
                          'baseline_daily_messages', round(f.base_daily::numeric, 2), 'conversion_z', round(f.conversion_z::numeric, 2), \
                          'volume_z', round(f.volume_z::numeric, 2), 'decline_days', f.decline_days, \
                          'exhaustion_score', round(f.exhaustion::numeric, 1), 'predicted_saturation', f.predicted)"
                    .into(),
                metric: "CASE f.finding WHEN 'saturation' THEN f.conv ELSE f.exhaustion END".into(),
                category: Some("f.status_text".into()),
                key_suffix: Some("f.status_text".into()),
                prediction: Some(
                    "CASE WHEN f.finding = 'saturation' AND f.predicted THEN jsonb_build_object('type', 'saturation', \
                     'entity', f.entity, 'message', format('%s is heading for saturation (conversion z %s, volume z %s, %s day(s) of decline)', \
                     f.entity, round(f.conversion_z::numeric, 1), round(f.volume_z::numeric, 1), f.decline_days)) END"
                        .into(),
                ),
            },
        )
    }

    fn threshold(&self) -> String {
        let time = self.req_col("time");
        let v = self.col("value").map(|v| format!("({v})::float8"));
        let agg = match (self.o["agg"].as_str().unwrap_or("avg"), &v) {
            ("count", _) => "count(*)::float8".to_string(),
            ("last", Some(v)) => {
                format!("(array_agg({v} ORDER BY {time} DESC) FILTER (WHERE {v} IS NOT NULL))[1]")
            }
            (a, Some(v)) => format!("{a}({v})"),
            (_, None) => unreachable!("cross_checks requires value unless agg is count"),
        };
        let op = self.o["op"]
            .as_str()
            .filter(|op| OPS.contains(op))
            .expect("op is validated");
        let group = if self.o.contains_key("entity") {
            "\n GROUP BY 1"
        } else {
            ""
        };
        let inner = format!(
            "SELECT x.*, ($1->>'severity')::vigil.severity AS severity\n\
             FROM (SELECT {e} AS entity, {agg} AS v FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now}{filter}{group}) x\n\
             WHERE x.v {op} ($1->>'threshold')::float8\n\
               AND NOT EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.monitor = $2 AND a.entity = x.entity\n\
                   AND a.status NOT IN ('firing', 'acknowledged')\n\
                   AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at) > now() - ($1->>'cooldown')::interval)",
            e = self.entity(),
            src = self.source,
            since = self.as_time(&format!("now() - {}", opt("lookback", "interval"))),
            now = self.as_time("now()"),
            filter = self.filter("filter"),
        );
        self.finish(
            &inner,
            &Fields {
                anomaly_type: None,
                urgency: "vigil.urgency_score(f.severity)".into(),
                title: "format('%s %s %s %s', $1->>'metric_name', round(f.v::numeric, 2), $1->>'op', $1->>'threshold')".into(),
                summary: "format('%s: %s of %s over the last %s is %s (threshold %s %s)', f.entity, $1->>'agg', \
                          $1->>'metric_name', $1->>'lookback', round(f.v::numeric, 2), $1->>'op', $1->>'threshold')"
                    .into(),
                details: "jsonb_build_object('value', f.v, 'agg', $1->>'agg', 'op', $1->>'op', \
                          'threshold', ($1->>'threshold')::float8, 'lookback', $1->>'lookback')"
                    .into(),
                metric: "f.v".into(),
                category: None,
                key_suffix: None,
                prediction: None,
            },
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
