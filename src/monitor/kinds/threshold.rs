//! `threshold`: an aggregate of a column over a lookback crosses a fixed
//! value (the rule-like monitor: avg latency > 500 ms, last balance < 0).

use super::{
    measure_of, metric_name_option, opt, ratio_of, value_or, Actions, Fields, KindDef, Query,
};
use crate::alert::SEVERITIES;
use crate::error::{Result, VigilError};
use crate::monitor::options::{def, key, req, Key, Opt, ANY, NUMERIC, OPS, TIME};
use crate::monitor::report::{num, TypeSummary};
use crate::monitor::Rollup;
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("time", Opt::Column(TIME)),
    req("op", Opt::Choice(OPS)),
    req("threshold", Opt::Number(f64::MIN, f64::MAX)),
    key("value", Opt::Column(NUMERIC)),
    def(
        "agg",
        Opt::Choice(&["avg", "sum", "min", "max", "count", "last"]),
        "\"avg\"",
    ),
    def("severity", Opt::Choice(&SEVERITIES), "\"medium\""),
    def("lookback", Opt::Interval, "\"1 hour\""),
    def("cooldown", Opt::IntervalOrZero, "\"0 seconds\""),
    key("entity", Opt::Column(ANY)),
    // Instead of value and agg: Σ numerator / Σ denominator over the
    // lookback (e.g. conversion = paid / messages).
    key("ratio", Opt::Ratio),
];

const ACTIONS: &[Actions] = &[
    (
        "threshold",
        Some("critical"),
        &[
            "Act on the breached metric now",
            "Check the entity's recent changes (releases, pricing, campaigns)",
        ],
    ),
    (
        "threshold",
        None,
        &["Compare the metric with the threshold and its recent trend"],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "threshold",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "threshold",
    metric_name: Some(|o| value_or(o, "events")),
    check,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(rollup),
    trigger: None,
    actions: ACTIONS,
};

/// The measures each agg reads over a rollup (`last` needs raw rows).
fn rollup(o: &Map<String, Value>, r: &Rollup) -> Result<()> {
    if o.contains_key("ratio") {
        return ratio_of(o, r);
    }
    let aggs: &[&str] =
        match o["agg"].as_str().unwrap_or("avg") {
            "avg" => &["sum", "avg", "stats"],
            "sum" => &["sum", "count"],
            "min" => &["min", "stats"],
            "max" => &["max", "stats"],
            "count" => return Ok(()),
            _ => return Err(VigilError::invalid(
                "options.agg: last reads raw rows; over a rollup use avg, sum, min, max or count",
            )),
        };
    measure_of(o, r, "value", aggs, "options.agg")
}

/// options.agg of the `value` measure over a rollup's slot rows.
fn rollup_agg(q: &Query, agg: &str) -> String {
    let m = q.o["value"].as_str().unwrap_or_default();
    let c = q.req_col("value");
    let measure = q.rollup.and_then(|r| r.agg(m)).unwrap_or_default();
    match (agg, measure) {
        ("avg", "sum") => format!(
            "sum({c})::float8 / nullif(sum(t.{}), 0)",
            crate::rollup::ident(&format!("_n_{m}"))
        ),
        ("avg", _) => format!("vigil.mean(vigil.rollup({c}))"),
        ("min", "stats") => format!("vigil.min_val(vigil.rollup({c}))"),
        ("max", "stats") => format!("vigil.max_val(vigil.rollup({c}))"),
        (a, _) => format!("{a}({c})::float8"),
    }
}

fn check(o: &Map<String, Value>) -> Result<()> {
    super::ratio_or_value(o)?;
    if o.contains_key("ratio") {
        return Ok(());
    }
    if !o.contains_key("value") && o["agg"] != "count" {
        return Err(VigilError::invalid(
            "options.value is required unless options.agg is count or options.ratio is given",
        ));
    }
    Ok(())
}

fn insight(t: &TypeSummary) -> String {
    format!(
        "{} {} breached the {} threshold. Average value: {}.",
        t.n,
        t.label(),
        t.metric_name(),
        num(t.avg_metric, 2)
    )
}

fn query(q: &Query) -> String {
    let time = q.req_col("time");
    let v = q.col("value").map(|v| format!("({v})::float8"));
    let agg = match (q.o["agg"].as_str().unwrap_or("avg"), &v) {
        _ if q.o.contains_key("ratio") => q.ratio().expect("ratio is given"),
        ("count", _) => format!("({})::float8", q.rows()),
        (a, Some(_)) if q.rollup.is_some() => rollup_agg(q, a),
        ("last", Some(v)) => {
            format!("(array_agg({v} ORDER BY {time} DESC) FILTER (WHERE {v} IS NOT NULL))[1]")
        }
        (a, Some(v)) => format!("{a}({v})"),
        (_, None) => unreachable!("check requires value unless agg is count"),
    };
    let op = q.o["op"]
        .as_str()
        .filter(|op| OPS.contains(op))
        .expect("op is validated");
    let group = if q.o.contains_key("entity") {
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
        e = q.entity(),
        src = q.source,
        since = q.as_time(&format!("now() - {}", opt("lookback", "interval"))),
        now = q.as_time("now()"),
        filter = q.filter("filter"),
    );
    // A ratio is read as one (0.0525), other values to two decimals.
    let (digits, agg_text) = if q.o.contains_key("ratio") {
        (4, "'ratio'")
    } else {
        (2, "$1->>'agg'")
    };
    q.finish(
        &inner,
        &Fields {
            anomaly_type: None,
            urgency: "vigil.urgency_score(f.severity)".into(),
            title: format!("format('%s %s %s %s', $1->>'metric_name', round(f.v::numeric, {digits}), $1->>'op', $1->>'threshold')"),
            summary: format!("format('%s: %s of %s over the last %s is %s (threshold %s %s)', f.entity, {agg_text}, \
                      $1->>'metric_name', $1->>'lookback', round(f.v::numeric, {digits}), $1->>'op', $1->>'threshold')"),
            details: format!("jsonb_build_object('value', f.v, 'agg', {agg_text}, 'op', $1->>'op', \
                      'threshold', ($1->>'threshold')::float8, 'lookback', $1->>'lookback')"),
            metric: "f.v".into(),
            category: None,
            key_suffix: None,
            prediction: None,
        },
    )
}
