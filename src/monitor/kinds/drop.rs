//! `drop`: an entity's latest value fell below its average over a baseline
//! (scenario 1: client health scores).

use super::{
    measure_of, metric_name_option, no_cross_checks, opt, value_or, Actions, Fields, KindDef,
    Meets, Query,
};
use crate::error::Result;
use crate::monitor::options::{def, key, req, Key, Opt, Unit, ANY, NUMERIC, TIME};
use crate::monitor::report::{num, TypeSummary};
use crate::monitor::Rollup;
use crate::rollup::ident;
use crate::scoring::BucketMerge;
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("entity", Opt::Column(ANY)),
    req("time", Opt::Column(TIME)),
    req("value", Opt::Column(NUMERIC)),
    def("baseline", Opt::Interval, "\"7 days\""),
    def(
        "thresholds",
        Opt::Thresholds(Unit::Number),
        r#"{"medium": 10, "high": 15, "critical": 25}"#,
    ),
    key("zones", Opt::Zones),
];

const ACTIONS: &[Actions] = &[
    (
        "drop",
        Some("critical"),
        &[
            "Contact the owner of the entity today",
            "Compare the latest value with its baseline and look for the cause in the last 7 days",
        ],
    ),
    (
        "drop",
        None,
        &["Review the entity's recent values against its baseline"],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "drop",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "drop",
    metric_name: Some(|o| value_or(o, "events")),
    check: no_cross_checks,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(rollup),
    trigger: None,
    actions: ACTIONS,
};

/// Over a rollup the samples are its buckets: `value` names a measure,
/// read per bucket (an average's mean, a sum, a count, a min or max).
fn rollup(o: &Map<String, Value>, r: &Rollup) -> Result<()> {
    measure_of(
        o,
        r,
        "value",
        &["avg", "stats", "sum", "count", "min", "max"],
        "the drop kind",
    )
}

/// The `value` measure of one bucket over its slot rows `t` (NULL where
/// it holds no value: a sum over no values, an empty average).
fn bucket_value(q: &Query) -> String {
    let m = q.o["value"].as_str().unwrap_or_default();
    let c = q.req_col("value");
    match q.rollup.and_then(|r| r.agg(m)).unwrap_or_default() {
        "avg" | "stats" => format!("vigil.mean(vigil.rollup({c}))"),
        "sum" => format!(
            "CASE WHEN sum(t.{}) > 0 THEN sum({c}) END",
            ident(&format!("_n_{m}"))
        ),
        "count" => format!("sum({c})"),
        agg => format!("{agg}({c})"),
    }
}

/// A float8 `value` measure's parts for `vigil._drop_buckets`, which
/// merges each bucket's slot rows in Rust: `(a, b, merge)`.
fn bucket_parts(q: &Query) -> (String, String, BucketMerge) {
    let m = q.o["value"].as_str().unwrap_or_default();
    let c = q.req_col("value");
    let part = format!("({c})::float8");
    match q.rollup.and_then(|r| r.agg(m)).unwrap_or_default() {
        "avg" | "stats" => (
            format!("vigil.mean({c}) * vigil.num_vals({c})"),
            format!("(vigil.num_vals({c}))::float8"),
            BucketMerge::Ratio,
        ),
        "sum" => (
            part,
            format!("(t.{})::float8", ident(&format!("_n_{m}"))),
            BucketMerge::Sum,
        ),
        "min" => (part, "NULL".into(), BucketMerge::Min),
        "max" => (part, "NULL".into(), BucketMerge::Max),
        _ => (part, "NULL".into(), BucketMerge::Count),
    }
}

fn insight(t: &TypeSummary) -> String {
    format!(
        "{} {} experiencing {} drops. Average drop: {} points.",
        t.n,
        t.label(),
        t.metric_name(),
        num(t.avg_metric, 0)
    )
}

/// The type `drop` computes in: numeric for numeric and integer columns,
/// so that an average of `numeric(4,1)` values 10.0 above the latest
/// one is a drop of exactly 10.0 (float8 makes it 9.999999999999993);
/// float8 for float columns, which have no exact decimal value anyway.
fn exact_type(q: &Query) -> &'static str {
    let sql_type = q.sql_type("value");
    let exact = sql_type == "numeric"
        || sql_type.starts_with("numeric(")
        || matches!(sql_type, "smallint" | "integer" | "bigint");
    if exact {
        "numeric"
    } else {
        "float8"
    }
}

/// The latest value is taken as `max(ARRAY[epoch, value])[2]`, which a
/// hash aggregate computes in one pass; `array_agg(... ORDER BY)` would
/// sort the whole window.
fn query(q: &Query) -> String {
    let (e, time, v) = (q.entity(), q.req_col("time"), q.req_col("value"));
    let ty = exact_type(q);
    let zone = if q.o.contains_key("zones") {
        format!(
            "CASE WHEN x.current < ($1->'zones'->>'red')::{ty} THEN 'RED' \
             WHEN x.current < ($1->'zones'->>'yellow')::{ty} THEN 'YELLOW' ELSE 'GREEN' END"
        )
    } else {
        "NULL::text".into()
    };
    let since = q.as_time(&format!("now() - {}", opt("baseline", "interval")));
    let (now, filter) = (q.as_time("now()"), q.filter("filter"));
    // Per entity: the latest sample, the samples' sum and count. A
    // float8 measure of a rollup takes one hashed aggregate over the slot
    // rows, which merges each bucket in Rust (`vigil._drop_buckets`): the
    // grouping per entity and bucket it replaces spilled to disk at the
    // default work_mem over 70 000 buckets. Exact types keep SQL's numeric.
    let per_entity = if q.rollup.is_some() && ty == "float8" {
        let (a, b, merge) = bucket_parts(q);
        format!(
            "SELECT y.entity, y.s[1] AS current, y.s[2] AS total, (y.s[3])::bigint AS samples\n\
             FROM (SELECT {e} AS entity,\n\
                   vigil._drop_buckets(({time})::timestamptz, (t.{rows})::float8, {a}, {b}, {merge}) AS s\n\
                   FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now} AND {e} IS NOT NULL{filter}\n\
                   GROUP BY 1) y\n\
             WHERE y.s[3] >= 2",
            merge = merge as i32,
            src = q.source,
            rows = ident("_rows"),
        )
    } else if q.rollup.is_none() && ty == "float8" {
        // Raw float8 rows: one fixed-size aggregate per entity
        // (`vigil._drop_latest`), not an array built per row.
        format!(
            "SELECT y.entity, y.s[1] AS current, y.s[2] AS total, (y.s[3])::bigint AS samples\n\
             FROM (SELECT {e} AS entity, vigil._drop_latest(({time})::timestamptz, ({v})::float8) AS s\n\
                   FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now} AND {e} IS NOT NULL{filter}\n\
                   GROUP BY 1) y\n\
             WHERE y.s[3] >= 2",
            src = q.source,
        )
    } else {
        // The samples: the rows, or over a rollup each bucket's value (its
        // slot rows merged; a group emptied by deletions is none).
        let samples = if q.rollup.is_some() {
            format!(
                "SELECT {e} AS entity, {time} AS at, ({value})::{ty} AS v FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now} AND {e} IS NOT NULL{filter}\n\
                   GROUP BY 1, 2 HAVING sum(t.{rows}) > 0",
                value = bucket_value(q),
                src = q.source,
                rows = ident("_rows"),
            )
        } else {
            format!(
                "SELECT {e} AS entity, {time} AS at, ({v})::{ty} AS v FROM {src} t\n\
                   WHERE {time} >= {since} AND {time} <= {now} AND {v} IS NOT NULL AND {e} IS NOT NULL{filter}",
                src = q.source,
            )
        };
        format!(
            "SELECT s.entity,\n\
               (max(ARRAY[extract(epoch FROM (s.at)::timestamptz)::{ty}, s.v]))[2] AS current,\n\
               sum(s.v) AS total, count(*) AS samples\n\
               FROM ({samples}) s WHERE s.v IS NOT NULL\n\
               GROUP BY 1 HAVING count(*) >= 2"
        )
    };
    let inner = format!(
        "SELECT x.*, a.average, a.average - x.current AS drop_points, {zone} AS zone, {sev} AS severity\n\
         FROM ({per_entity}) x\n\
         CROSS JOIN LATERAL (SELECT (x.total - x.current) / (x.samples - 1) AS average) a",
        sev = q.severity("a.average - x.current", ty, Meets::AtLeast),
    );
    q.finish(
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
