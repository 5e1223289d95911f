//! `freshness`: a source (or each of its entities) whose newest row is
//! older than a threshold — data that stopped arriving, a pipeline or a
//! rollup that lags (seed 004's freshness SLA). Point it at a rollup's
//! summary table with `"time": "bucket"` to watch the rollup's newest
//! bucket. A source with no rows at all is as stale as it gets: the worst
//! level given.

use super::{metric_name_option, no_cross_checks, Actions, Fields, KindDef, Meets, Query};
use crate::monitor::options::{key, req, Key, Opt, Unit, ANY, TIME};
use crate::monitor::report::{num, TypeSummary};

const KEYS: &[Key] = &[
    req("time", Opt::Column(TIME)),
    req("thresholds", Opt::Thresholds(Unit::Interval)),
    key("entity", Opt::Column(ANY)),
];

const ACTIONS: &[Actions] = &[
    (
        "freshness",
        Some("critical"),
        &[
            "Check that ingestion into the source is running",
            "Tell the consumers of this data that it may be stale",
        ],
    ),
    (
        "freshness",
        None,
        &["Check when the source last received rows and why it stopped"],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "freshness",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "freshness",
    metric_name: Some(|_| "lag".to_string()),
    check: no_cross_checks,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(super::any_rollup),
    trigger: None,
    actions: ACTIONS,
};

fn insight(t: &TypeSummary) -> String {
    let longest = match t.max_metric {
        Some(h) => format!(" Longest lag: {} hours.", num(Some(h), 1)),
        None => String::new(),
    };
    format!("{} {} stale.{longest}", t.n, t.label())
}

fn query(q: &Query) -> String {
    let time = q.req_col("time");
    let worst = q
        .thresholds()
        .last()
        .copied()
        .expect("thresholds has a level");
    let group = if q.o.contains_key("entity") {
        "\n GROUP BY 1"
    } else {
        ""
    };
    // An aggregate without GROUP BY returns its row over no rows too: an
    // empty source is a finding (newest NULL).
    let inner = format!(
        "SELECT x.*, CASE WHEN x.newest IS NULL THEN '{worst}'::vigil.severity ELSE {sev} END AS severity,\n\
                extract(epoch FROM now() - x.newest) / 3600 AS hours\n\
         FROM (SELECT {e} AS entity, max(({time})::timestamptz) AS newest, {rows} AS n\n\
               FROM {src} t\n\
               WHERE true{filter}{entity_not_null}{group}) x\n\
         WHERE x.newest IS NULL OR x.newest <= now() - {lowest}",
        e = q.entity(),
        rows = q.rows(),
        sev = q.severity("now() - x.newest", "interval", Meets::AtLeast),
        src = q.source,
        filter = q.filter("filter"),
        entity_not_null = q.entity_not_null(),
        lowest = q.lowest("interval"),
    );
    let lag = "CASE WHEN f.hours >= 48 THEN format('%s days', floor(f.hours / 24)) \
               WHEN f.hours >= 2 THEN format('%s hours', floor(f.hours)) \
               ELSE format('%s minutes', floor(f.hours * 60)) END";
    q.finish(
        &inner,
        &Fields {
            anomaly_type: None,
            urgency: "vigil.urgency_score(f.severity)".into(),
            title: format!(
                "CASE WHEN f.newest IS NULL THEN 'No rows at all' ELSE 'No new rows for ' || {lag} END"
            ),
            summary: format!(
                "CASE WHEN f.newest IS NULL THEN format('%s: no rows', f.entity) \
                 ELSE format('%s: newest row at %s, %s ago (threshold %s)', f.entity, \
                 to_char(f.newest AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'), {lag}, \
                 $1->'thresholds'->>'{lowest}') END",
                lowest = q.thresholds()[0],
            ),
            details: "jsonb_build_object('newest', f.newest, 'lag_hours', round(f.hours::numeric, 2), 'rows', f.n)"
                .into(),
            metric: "f.hours".into(),
            category: None,
            key_suffix: None,
            prediction: None,
        },
    )
}
