//! `stall`: rows that have not moved on for longer than a threshold
//! (scenario 2: deals stuck in a stage, leads waiting for an answer).

use super::{no_cross_checks, Actions, Fields, KindDef, Meets, Query};
use crate::monitor::options::{def, key, req, Key, Opt, Unit, ANY, NUMERIC, TIME};
use crate::monitor::report::{num, TypeSummary};
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("time", Opt::Column(TIME)),
    req("thresholds", Opt::Thresholds(Unit::Interval)),
    key("entity", Opt::Column(ANY)),
    key("group_column", Opt::Column(ANY)),
    key("value", Opt::Column(NUMERIC)),
    def(
        "urgency_from",
        Opt::Choice(&["stall_days", "wait_hours"]),
        "\"stall_days\"",
    ),
];

const ACTIONS: &[Actions] = &[
    (
        "stall",
        Some("critical"),
        &[
            "Escalate the stalled item to its owner's manager",
            "Decide today whether to move it on or close it",
        ],
    ),
    (
        "stall",
        None,
        &["Follow up on the stalled item and record the next step"],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "stall",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "stall",
    metric_name: Some(|_| "age".to_string()),
    check: no_cross_checks,
    query: Some(query),
    report_metric_name,
    insight,
    rollup: None,
    trigger: None,
    actions: ACTIONS,
};

/// The report counts waits in hours when urgency comes from them.
fn report_metric_name(o: &Map<String, Value>) -> Option<String> {
    if o.get("urgency_from").and_then(Value::as_str) == Some("wait_hours") {
        return Some("wait_hours".into());
    }
    o.get("metric_name")
        .and_then(Value::as_str)
        .map(String::from)
}

fn insight(t: &TypeSummary) -> String {
    let wait = if t.metric_name.as_deref() == Some("wait_hours") {
        t.avg_metric.map(|a| format!("{} hours", num(Some(a), 1)))
    } else {
        t.avg_metric.map(|a| format!("{} days", num(Some(a), 0)))
    };
    let common = match (&t.group_name, &t.common) {
        (Some(g), Some(c)) => format!(" Most common {g}: {c}."),
        _ => String::new(),
    };
    format!(
        "{} {} stalled. Average wait: {}.{common}",
        t.n,
        t.label(),
        wait.unwrap_or_default()
    )
}

fn query(q: &Query) -> String {
    let time = q.req_col("time");
    let group = q.col("group_column").map_or_else(
        || "NULL::text".into(),
        |g| format!("(array_agg(({g})::text ORDER BY {time}))[1]"),
    );
    let value = q
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
        e = q.entity(),
        sev = q.severity("now() - x.since", "interval", Meets::AtLeast),
        src = q.source,
        cutoff = q.as_time(&format!("now() - {}", q.lowest("interval"))),
        filter = q.filter("filter"),
        entity_not_null = q.entity_not_null(),
    );
    let per_entity = q.o.contains_key("entity");
    let (urgency, age_text) = if q.o["urgency_from"] == "wait_hours" {
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
        let verb = if q.o["urgency_from"] == "wait_hours" {
            "Waiting"
        } else {
            "Stalled"
        };
        format!("format('{verb} %s', {age_text}) || coalesce(' in ' || f.grp, '')")
    } else {
        format!("format('%s %s waiting, oldest for %s', f.stalled, $1->>'label', {age_text})")
    };
    q.finish(
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
            metric: if q.o["urgency_from"] == "wait_hours" { "f.hours" } else { "f.days" }.into(),
            category: Some("f.grp".into()),
            key_suffix: None,
            prediction: Some(format!(
                "CASE WHEN f.severity = 'critical' THEN jsonb_build_object('type', 'likely_lost', 'entity', f.entity, \
                 'message', format('%s is likely lost: no progress for %s', f.entity, {age_text})) END"
            )),
        },
    )
}
