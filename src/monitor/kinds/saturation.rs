//! `saturation`: an entity's last 24 hours against a daily baseline —
//! conversion and volume (RED/YELLOW status), the audience exhaustion
//! score, and a predicted saturation (seed 000).

use super::{measure_of, metric_name_option, opt, value_or, Actions, Fields, KindDef, Query};
use crate::alert::SEVERITIES;
use crate::error::{Result, VigilError};
use crate::monitor::options::{def, key, req, Key, Opt, ANY, NUMERIC, TIME};
use crate::monitor::report::{num, TypeSummary};
use crate::monitor::Rollup;
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("entity", Opt::Column(ANY)),
    req("time", Opt::Column(TIME)),
    // Conversions: a filter on the rows, or a column (a rollup's count or
    // sum measure, or a 0/1 column of the rows) whose sum counts them.
    key("converted", Opt::Filter),
    key("converted_count", Opt::Column(NUMERIC)),
    def("baseline_days", Opt::Int(7, 366), "30"),
    def("exhaustion_threshold", Opt::Number(0.0, 100.0), "70"),
    // A predicted saturation raises an alert of its own (anomaly type
    // saturation_predicted) at this severity; without it, it is only a
    // line in the report's predictions.
    key("predicted_severity", Opt::Choice(&SEVERITIES)),
];

/// The anomaly type of the exhaustion findings (the saturation findings'
/// is options.anomaly_type).
const EXHAUSTION: &str = "exhaustion";
/// The anomaly type of predicted saturations (options.predicted_severity).
const PREDICTED: &str = "saturation_predicted";

/// Scenario 1 (creator messages): saturation and audience exhaustion.
const ACTIONS: &[Actions] = &[
    (
        "saturation",
        Some("critical"),
        &[
            "Pause paid messages for 48 hours",
            "Send free engagement content only until conversion recovers",
            "Review the price points used in the last 7 days",
        ],
    ),
    (
        "saturation",
        Some("high"),
        &[
            "Pause paid messages for 48 hours",
            "Send free engagement content only until conversion recovers",
        ],
    ),
    (
        "saturation",
        Some("medium"),
        &[
            "Halve the frequency of paid messages",
            "Test lower price points",
            "Watch conversion over the next 24 hours",
        ],
    ),
    (
        "saturation",
        None,
        &["Watch conversion and message volume over the next 24 hours"],
    ),
    (
        EXHAUSTION,
        Some("high"),
        &[
            "Rest the audience: pause paid messages for 24 to 48 hours",
            "Refresh content types and triggers before resuming",
        ],
    ),
    (
        EXHAUSTION,
        None,
        &[
            "Reduce message volume",
            "Refresh content types and triggers",
        ],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "saturation",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "saturation",
    metric_name: Some(|o| value_or(o, "conversion")),
    check,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(rollup),
    trigger: None,
    actions: ACTIONS,
};

fn check(o: &Map<String, Value>) -> Result<()> {
    match (
        o.contains_key("converted"),
        o.contains_key("converted_count"),
    ) {
        (true, false) | (false, true) => Ok(()),
        _ => Err(VigilError::invalid(
            "options.converted (a filter marking conversions) or options.converted_count \
             (a column whose sum counts them) is required, not both",
        )),
    }
}

/// Days need buckets that tile a day; conversions are a measure.
fn rollup(o: &Map<String, Value>, r: &Rollup) -> Result<()> {
    if !r.tiles(86_400.0) {
        return Err(VigilError::invalid(format!(
            "source: the saturation kind compares days; the rollup's bucket ({} s) does not divide a day",
            r.bucket_seconds
        )));
    }
    if o.contains_key("converted") {
        return Err(VigilError::invalid(
            "options.converted filters raw rows; over a rollup name its count of conversions \
             as options.converted_count",
        ));
    }
    measure_of(
        o,
        r,
        "converted_count",
        &["count", "sum"],
        "options.converted_count",
    )
}

fn insight(t: &TypeSummary) -> String {
    if t.anomaly_type == PREDICTED {
        return format!("{} {} heading for saturation.", t.n, t.label());
    }
    if t.anomaly_type == EXHAUSTION {
        format!(
            "{} {} at risk of audience exhaustion. Average score: {}.",
            t.n,
            t.label(),
            num(t.avg_metric, 0)
        )
    } else {
        format!(
            "{} {} saturated ({}).",
            t.n,
            t.label(),
            t.categories.as_deref().unwrap_or_default()
        )
    }
}

fn query(q: &Query) -> String {
    let (e, time) = (q.entity(), q.req_col("time"));
    // Per row: the rows it stands for (a rollup's `_rows`, or 1) and its
    // conversions. The aggregate sums them per day and leaves out a day
    // that holds no rows (a rollup's groups emptied by deletions: no day,
    // and no division by zero).
    let rows = q.row_rows();
    let converted = if q.o.contains_key("converted_count") {
        format!("({})::float8", q.req_col("converted_count"))
    } else {
        let filter = q.filter("converted");
        format!(
            "CASE WHEN {} THEN 1 ELSE 0 END",
            filter.trim_start_matches(" AND ")
        )
    };
    // Day 0 is the last 24 hours, days 1..B the baseline before it. One
    // hashed aggregate per entity (`vigil._saturation_days`,
    // src/scoring/agg.rs, which also numbers the days) does what a grouping
    // per entity and day, then per entity, did (BENCHMARKS.md, 2026-12-07
    // second section). `p` is MATERIALIZED so that each entity is scored
    // once, not once per finding row of the VALUES below (inlined, the
    // scoring functions ran three times and more per entity).
    let inner = format!(
        "WITH agg AS (\n\
           SELECT {e} AS entity,\n\
                  vigil._saturation_days(now(), ({time})::timestamptz, {rows}, {converted}) AS a\n\
           FROM {src} t\n\
           WHERE {time} > {since} AND {time} <= {now} AND {e} IS NOT NULL{filter}\n\
           GROUP BY 1),\n\
         per AS (\n\
           SELECT entity, a[1] AS m24, a[2] AS c24, a[3] AS mb, a[4] AS cb, a[5] AS mb2,\n\
                  a[6] AS rate_mean, a[7] AS rate_sd, a[8]::int AS decline_days\n\
           FROM agg),\n\
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
           FROM m),\n\
         p AS MATERIALIZED (\n\
           SELECT s.*, vigil.saturation_predicted(s.conversion_z, s.volume_z, s.decline_days::int) AS predicted\n\
           FROM s)\n\
         SELECT s.*, o.*\n\
         FROM p s CROSS JOIN LATERAL (VALUES\n\
           ('saturation', s.status::text, CASE s.status WHEN 'RED' THEN 'high' WHEN 'YELLOW' THEN 'medium' END::vigil.severity),\n\
           ('exhaustion', NULL, CASE WHEN s.exhaustion > ($1->>'exhaustion_threshold')::float8\n\
                                     THEN CASE WHEN s.exhaustion >= 90 AND 90 >= ($1->>'exhaustion_threshold')::float8\n\
                                               THEN 'critical' ELSE 'high' END END::vigil.severity),\n\
           ('predicted', NULL, CASE WHEN s.predicted THEN ($1->>'predicted_severity')::vigil.severity END)\n\
         ) AS o(finding, status_text, severity)",
        src = q.source,
        since = q.as_time(&format!("now() - ({} + 1) * interval '1 day'", opt("baseline_days", "int"))),
        now = q.as_time("now()"),
        filter = q.filter("filter"),
        days = opt("baseline_days", "float8"),
    );
    q.finish(
        &inner,
        &Fields {
            anomaly_type: Some(
                format!("CASE f.finding WHEN 'saturation' THEN $1->>'anomaly_type' \
                         WHEN 'predicted' THEN '{PREDICTED}' ELSE '{EXHAUSTION}' END"),
            ),
            urgency: "vigil.urgency_score(f.severity, health_zone => f.status::text)".into(),
            title: "CASE f.finding WHEN 'saturation' THEN format('Saturation %s: conversion %s%% vs %s%% baseline', \
                    f.status, round(100 * f.conv::numeric, 1), round(100 * f.base_conv::numeric, 1)) \
                    WHEN 'predicted' THEN format('Heading for saturation: conversion z %s, volume z %s, %s day(s) of decline', \
                    coalesce(round(f.conversion_z::numeric, 1)::text, 'n/a'), \
                    coalesce(round(f.volume_z::numeric, 1)::text, 'n/a'), f.decline_days) \
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
            metric: "CASE f.finding WHEN 'saturation' THEN f.conv WHEN 'predicted' THEN f.conversion_z ELSE f.exhaustion END".into(),
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
