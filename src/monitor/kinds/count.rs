//! `count`: entities with at least a threshold of matching rows in a
//! window (scenario 4: sync failures per source).

use super::{metric_name_option, opt, value_or, Actions, Fields, KindDef, Meets, Query};
use crate::error::{Result, VigilError};
use crate::monitor::options::{key, req, Key, Opt, Unit, ANY, TIME};
use crate::monitor::report::{float_text, TypeSummary};
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("thresholds", Opt::Thresholds(Unit::Number)),
    key("time", Opt::Column(TIME)),
    key("window", Opt::Interval),
    key("entity", Opt::Column(ANY)),
];

const ACTIONS: &[Actions] = &[
    (
        "count",
        Some("critical"),
        &[
            "Find what drove the events of the window for this entity",
            "Confirm whether they are expected (a campaign, a batch job) or a fault",
            "Page the owner of the affected flow",
        ],
    ),
    (
        "count",
        None,
        &[
            "Look at the entity's events of the window by type",
            "Compare the count with the same window yesterday",
        ],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "count",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "count",
    metric_name: Some(|o| value_or(o, "events")),
    check,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(super::any_rollup),
    trigger: None,
    actions: ACTIONS,
};

fn check(o: &Map<String, Value>) -> Result<()> {
    if o.contains_key("window") && !o.contains_key("time") {
        return Err(VigilError::invalid(
            "options.window needs options.time (the column the window applies to)",
        ));
    }
    Ok(())
}

fn insight(t: &TypeSummary) -> String {
    format!(
        "{} {} affected by {}: {} in total.",
        t.n,
        t.label(),
        t.metric_name(),
        float_text(t.total)
    )
}

fn query(q: &Query) -> String {
    let window = match q.col("time") {
        Some(time) => {
            let w = if q.o.contains_key("window") {
                opt("window", "interval")
            } else {
                "interval '24 hours'".into()
            };
            format!(
                " AND {time} >= {} AND {time} <= {}",
                q.as_time(&format!("now() - {w}")),
                q.as_time("now()")
            )
        }
        None => String::new(),
    };
    let (window_text, window_suffix) = if q.o.contains_key("time") {
        (
            "coalesce($1->>'window', '24 hours')",
            "' in ' || coalesce($1->>'window', '24 hours')",
        )
    } else {
        ("'all rows'", "''")
    };
    let inner = format!(
        "SELECT x.*, {sev} AS severity\n\
         FROM (SELECT {e} AS entity, {rows} AS n FROM {src} t\n\
               WHERE true{window}{filter}{entity_not_null}\n\
               GROUP BY 1) x\n\
         WHERE x.n >= {lowest}",
        e = q.entity(),
        rows = q.rows(),
        sev = q.severity("x.n", "float8", Meets::AtLeast),
        src = q.source,
        filter = q.filter("filter"),
        entity_not_null = q.entity_not_null(),
        lowest = q.lowest("float8"),
    );
    q.finish(
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
