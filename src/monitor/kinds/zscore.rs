//! `zscore`: an entity's last complete hour against the same hour of the
//! previous weeks (seed 000: messages per creator per hour of week).

use super::{
    measure_of, metric_name_option, opt, ratio_of, value_or, Actions, Fields, KindDef, Meets, Query,
};
use crate::error::{Result, VigilError};
use crate::monitor::options::{def, key, req, Key, Opt, Unit, ANY, NUMERIC, TIME};
use crate::monitor::report::{num, TypeSummary};
use crate::monitor::Rollup;
use serde_json::{Map, Value};

const KEYS: &[Key] = &[
    req("entity", Opt::Column(ANY)),
    req("time", Opt::Column(TIME)),
    key("value", Opt::Column(NUMERIC)),
    def("baseline_days", Opt::Int(14, 371), "90"),
    def("min_weeks", Opt::Int(2, 53), "4"),
    def(
        "thresholds",
        Opt::Thresholds(Unit::Number),
        r#"{"medium": 3, "high": 4, "critical": 5}"#,
    ),
    def(
        "direction",
        Opt::Choice(&["both", "up", "down"]),
        "\"both\"",
    ),
    // Instead of value: Σ numerator / Σ denominator per hour (e.g. hourly
    // conversion against its hour-of-week baseline). Hours without a
    // denominator have no ratio and are left out (not counted as zero).
    key("ratio", Opt::Ratio),
];

const ACTIONS: &[Actions] = &[
    (
        "zscore_anomaly",
        Some("critical"),
        &[
            "Confirm that tracking and ingestion are healthy",
            "Compare the current hour with the same hour last week",
            "Look for pricing, content or campaign changes in the last hour",
        ],
    ),
    (
        "zscore_anomaly",
        None,
        &[
            "Compare the current hour with the same hour last week",
            "Look for pricing, content or campaign changes in the last hour",
        ],
    ),
];

pub(super) const DEF: KindDef = KindDef {
    name: "zscore",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "zscore_anomaly",
    metric_name: Some(|o| value_or(o, "events")),
    check,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: Some(rollup),
    trigger: None,
    actions: ACTIONS,
};

fn check(o: &Map<String, Value>) -> Result<()> {
    super::ratio_or_value(o)?;
    if o["min_weeks"].as_i64() > o["baseline_days"].as_i64().map(|d| d / 7) {
        return Err(VigilError::invalid(format!(
            "options.min_weeks ({}) exceeds the weeks in options.baseline_days ({})",
            o["min_weeks"], o["baseline_days"]
        )));
    }
    Ok(())
}

/// Hour slots need buckets that tile an hour; a value is summed per hour.
fn rollup(o: &Map<String, Value>, r: &Rollup) -> Result<()> {
    if !r.tiles(3600.0) {
        return Err(VigilError::invalid(format!(
            "source: the zscore kind compares hours; the rollup's bucket ({} s) does not divide an hour",
            r.bucket_seconds
        )));
    }
    ratio_of(o, r)?;
    measure_of(
        o,
        r,
        "value",
        &["sum", "count"],
        "the zscore kind (a sum per hour)",
    )
}

fn insight(t: &TypeSummary) -> String {
    format!(
        "{} {} with unusual {} ({}). Largest |z|: {}.",
        t.n,
        t.label(),
        t.metric_name(),
        t.categories.as_deref().unwrap_or_default(),
        num(t.max_metric, 1)
    )
}

fn query(q: &Query) -> String {
    let (e, time) = (q.entity(), q.req_col("time"));
    let ratio = q.ratio();
    // Counts and sums: weeks without rows count as zero. Ratios: hours
    // without a denominator have none, and only the weeks with one count.
    let (current, n, missing) = if ratio.is_some() {
        ("max(v) FILTER (WHERE w = 0)", "p.filled", "0")
    } else {
        (
            "coalesce(max(v) FILTER (WHERE w = 0), 0)",
            "p.weeks",
            "(p.weeks - p.filled) * (p.s1 / p.weeks) * (p.s1 / p.weeks)",
        )
    };
    let v = if let Some(r) = &ratio {
        r.clone()
    } else if q.o.contains_key("value") {
        format!("coalesce({}, 0)", q.sum_of("value"))
    } else {
        format!("({})::float8", q.rows())
    };
    let scored = match q.o["direction"].as_str() {
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
           SELECT entity, {current} AS current,\n\
                  max(w) FILTER (WHERE w > 0) AS weeks,\n\
                  count(v) FILTER (WHERE w > 0) AS filled,\n\
                  coalesce(sum(v) FILTER (WHERE w > 0), 0) AS s1\n\
           FROM counts GROUP BY entity),\n\
         stats AS (\n\
           SELECT p.entity, p.current, {n} AS weeks, p.s1 / {n} AS mean,\n\
                  sqrt((coalesce(sum((c.v - p.s1 / {n}) * (c.v - p.s1 / {n})), 0)\n\
                        + {missing}) / ({n} - 1)) AS sd\n\
           FROM per p LEFT JOIN counts c ON c.entity = p.entity AND c.w > 0\n\
           WHERE {n} >= {min_weeks}\n\
           GROUP BY p.entity, p.current, p.weeks, p.filled, p.s1),\n\
         scored AS (\n\
           SELECT s.*, vigil.zscore(s.current, s.mean, s.sd) AS z FROM stats s)\n\
         SELECT f.*, {sev} AS severity, date_trunc('hour', now()) - interval '1 hour' AS hour\n\
         FROM scored f WHERE f.z IS NOT NULL",
        days = opt("baseline_days", "int"),
        src = q.source,
        lo = q.as_time("sl.s"),
        hi = q.as_time("sl.s + interval '1 hour'"),
        filter = q.filter("filter"),
        min_weeks = opt("min_weeks", "int"),
        sev = q.severity(scored, "float8", Meets::Beyond),
    );
    // A ratio is read to three decimals (0.052), counts to one.
    let d = if ratio.is_some() { 3 } else { 1 };
    q.finish(
        &inner,
        &Fields {
            anomaly_type: None,
            urgency: "vigil.urgency_score(f.severity)".into(),
            title: format!("format('%s %s: %s vs usual %s (z = %s)', upper(left($1->>'metric_name', 1)) || substr($1->>'metric_name', 2), \
                    CASE WHEN f.z > 0 THEN 'spike' ELSE 'drop' END, trim_scale(round(f.current::numeric, {d})), \
                    trim_scale(round(f.mean::numeric, {d})), round(f.z::numeric, 1))"),
            summary: format!("format('%s: %s in the hour from %s UTC was %s; the same hour of the previous %s weeks averaged %s (sd %s)', \
                      f.entity, $1->>'metric_name', to_char(f.hour AT TIME ZONE 'UTC', 'Dy HH24:00'), \
                      round(f.current::numeric, {d}), f.weeks, round(f.mean::numeric, {d}), round(f.sd::numeric, {d}))"),
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
