//! The scan report (SPEC §3.4): counts, a breakdown and an insight line per
//! anomaly type, predictions, groups and per-monitor results. Pure: built
//! from what the scan loop gathered, unit-tested without a database.
//!
//! Orders and ties follow the 0.1.0 SQL it replaces, with text compared
//! byte by byte (the C collation): types in order, categories by count
//! then name, the most common category the first of the most frequent.
//! Numbers are printed as PostgreSQL prints `round(x::numeric, d)` and
//! float8 (`num`, `float_text`), so report texts are what they were.

use super::Kind;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One raised finding as the report counts it.
#[derive(Debug, Clone)]
pub struct Reported {
    pub kind: Kind,
    pub anomaly_type: String,
    pub severity: String,
    pub urgency: Option<i32>,
    pub metric: Option<f64>,
    pub category: Option<String>,
    pub is_new: bool,
    /// options.label of its monitor.
    pub label: Option<String>,
    /// Its kind's `report_metric_name` of the monitor's options.
    pub metric_name: Option<String>,
    /// options.group_column of its monitor.
    pub group_name: Option<String>,
}

/// The findings of one anomaly type in a scan, for its breakdown entry and
/// its insight sentence (`kinds::KindDef::insight`).
#[derive(Debug, Clone)]
pub struct TypeSummary {
    pub anomaly_type: String,
    /// The kind (of the first by name, when monitors of several kinds
    /// raise one type).
    pub kind: Kind,
    pub label: Option<String>,
    pub metric_name: Option<String>,
    pub group_name: Option<String>,
    pub n: usize,
    pub new: usize,
    /// Mean, largest absolute value and sum of the non-NULL metrics.
    pub avg_metric: Option<f64>,
    pub max_metric: Option<f64>,
    pub total: Option<f64>,
    /// The most frequent category.
    pub common: Option<String>,
    /// "2 spike, 1 drop": categories by count.
    pub categories: Option<String>,
    pub max_urgency: Option<i32>,
    pub by_severity: BTreeMap<String, usize>,
}

impl TypeSummary {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or_default()
    }

    pub fn metric_name(&self) -> &str {
        self.metric_name.as_deref().unwrap_or_default()
    }

    pub fn insight(&self) -> String {
        (self.kind.def().insight)(self)
    }
}

/// The least of the values (byte order), as SQL's min() over text.
fn least<'a>(values: impl Iterator<Item = &'a Option<String>>) -> Option<String> {
    values.flatten().min().cloned()
}

/// One summary per anomaly type, in type order.
pub fn summarize(findings: &[Reported]) -> Vec<TypeSummary> {
    let mut by_type: BTreeMap<&str, Vec<&Reported>> = BTreeMap::new();
    for f in findings {
        by_type.entry(&f.anomaly_type).or_default().push(f);
    }
    by_type
        .into_iter()
        .map(|(anomaly_type, fs)| {
            let metrics: Vec<f64> = fs.iter().filter_map(|f| f.metric).collect();
            let total = (!metrics.is_empty()).then(|| metrics.iter().sum::<f64>());
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for c in fs.iter().filter_map(|f| f.category.as_deref()) {
                *counts.entry(c).or_default() += 1;
            }
            // The first in name order among the most frequent (SQL's mode()).
            let common = counts
                .iter()
                .fold(None, |best: Option<(&str, usize)>, (&c, &n)| match best {
                    Some((_, m)) if m >= n => best,
                    _ => Some((c, n)),
                })
                .map(|(c, _)| c.to_string());
            let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let categories = (!ranked.is_empty()).then(|| {
                ranked
                    .iter()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let mut by_severity = BTreeMap::new();
            for f in &fs {
                *by_severity.entry(f.severity.clone()).or_default() += 1;
            }
            TypeSummary {
                anomaly_type: anomaly_type.to_string(),
                kind: fs
                    .iter()
                    .map(|f| f.kind)
                    .min_by_key(|k| k.name())
                    .expect("a type has findings"),
                label: least(fs.iter().map(|f| &f.label)),
                metric_name: least(fs.iter().map(|f| &f.metric_name)),
                group_name: least(fs.iter().map(|f| &f.group_name)),
                n: fs.len(),
                new: fs.iter().filter(|f| f.is_new).count(),
                avg_metric: total.map(|t| t / metrics.len() as f64),
                max_metric: metrics.iter().map(|m| m.abs()).reduce(f64::max),
                total,
                common,
                categories,
                max_urgency: fs.iter().filter_map(|f| f.urgency).max(),
                by_severity,
            }
        })
        .collect()
}

/// What the scan loop gathered, besides the findings.
#[derive(Debug, Default)]
pub struct Totals {
    pub scan_id: i64,
    pub duration_ms: f64,
    pub resolved: i64,
    pub expired: i64,
    pub variants_expired: i64,
    /// Predictions of the kinds, each with its monitor.
    pub predictions: Vec<Value>,
    /// vigil.group_alerts's groups of the new alerts.
    pub groups: Vec<Value>,
    /// {monitor, kind, anomalies, duration_ms} of each monitor that ran.
    pub monitors: Vec<Value>,
    /// Monitors another scan was running.
    pub skipped: Vec<String>,
    /// {monitor, sqlstate, error} of each monitor that failed.
    pub errors: Vec<Value>,
}

/// Milliseconds rounded to microseconds, as the report prints durations.
pub fn millis(ms: f64) -> Value {
    json!((ms * 1000.0).round() / 1000.0)
}

/// The report of one scan.
pub fn build(findings: &[Reported], t: Totals) -> Value {
    let summaries = summarize(findings);
    let new = findings.iter().filter(|f| f.is_new).count();
    let breakdown: Map<String, Value> = summaries
        .iter()
        .map(|s| {
            (
                s.anomaly_type.clone(),
                json!({
                    "count": s.n,
                    "new": s.new,
                    "duplicates": s.n - s.new,
                    "max_urgency": s.max_urgency,
                    "by_severity": s.by_severity,
                }),
            )
        })
        .collect();
    let insights: Vec<String> = summaries.iter().map(TypeSummary::insight).collect();
    json!({
        "success": t.errors.is_empty(),
        "scan_id": t.scan_id,
        "duration_ms": millis(t.duration_ms),
        "monitors_scanned": t.monitors.len() + t.errors.len(),
        "anomalies_detected": findings.len(),
        "alert_groups_created": t.groups.len(),
        "alerts_saved": new,
        "duplicates_skipped": findings.len() - new,
        "alerts_resolved": t.resolved,
        "alerts_expired": t.expired,
        "variants_expired": t.variants_expired,
        "breakdown": breakdown,
        "insights": insights,
        "predictions": t.predictions,
        "alert_groups": t.groups,
        "monitors": t.monitors,
        "skipped": t.skipped,
        "errors": t.errors,
    })
}

/// `x` as PostgreSQL prints `round(x::numeric, digits)` ("" for NULL):
/// float8 becomes numeric with 15 significant digits (float8_numeric's
/// DBL_DIG), rounded half away from zero, printed with exactly `digits`
/// decimals. Written by hand: no crate reproduces that conversion.
pub fn num(x: Option<f64>, digits: u32) -> String {
    scaled_num(x, 0, digits)
}

/// `round(100 * x::numeric, digits)` as PostgreSQL prints it: `num` of x
/// times 100, multiplied after the conversion to numeric, as SQL does.
pub fn percent(x: Option<f64>, digits: u32) -> String {
    scaled_num(x, 2, digits)
}

/// `round(x::numeric * 10^pow10, digits)`.
fn scaled_num(x: Option<f64>, pow10: i32, digits: u32) -> String {
    let Some(x) = x else {
        return String::new();
    };
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // d.dddddddddddddd e X: x = D * 10^(X - 14), D of 15 digits.
    let sci = format!("{:.14e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let d: u64 = mantissa.replace('.', "").parse().expect("15 digits");
    let shift = exp - 14 + pow10 + digits as i32;
    let scaled = if shift >= 0 {
        // |x| >= 10^(14 - digits): every digit is kept, zeros follow.
        format!("{d}{}", "0".repeat(shift as usize))
    } else if -shift >= 19 {
        "0".to_string()
    } else {
        let p = 10u64.pow((-shift) as u32);
        let (q, r) = (d / p, d % p);
        (q + u64::from(r >= p - r)).to_string()
    };
    let negative = x < 0.0 && scaled.bytes().any(|b| b != b'0');
    let digits = digits as usize;
    let padded = format!("{scaled:0>width$}", width = digits + 1);
    let (int, frac) = padded.split_at(padded.len() - digits);
    let sign = if negative { "-" } else { "" };
    if digits == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `x` as PostgreSQL prints a float8 ("" for NULL): the shortest text that
/// reads back as the same value, in exponent form below 1e-4 and from 1e15
/// on (float8out with extra_float_digits 1, PostgreSQL's default).
pub fn float_text(x: Option<f64>) -> String {
    let Some(x) = x else {
        return String::new();
    };
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if (-4..15).contains(&exp) {
        format!("{x}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: Kind, anomaly_type: &str, metric: f64, category: Option<&str>) -> Reported {
        Reported {
            kind,
            anomaly_type: anomaly_type.into(),
            severity: "high".into(),
            urgency: Some(metric as i32),
            metric: Some(metric),
            category: category.map(String::from),
            is_new: metric > 20.0,
            label: Some("deals".into()),
            metric_name: Some("age".into()),
            group_name: Some("stage".into()),
        }
    }

    #[test]
    fn numbers_print_as_postgresql_rounds_numeric() {
        let cases = [
            (16.666666666666668, 1, "16.7"),
            (25.0, 0, "25"),
            (2.5, 0, "3"),
            (-2.5, 0, "-3"),
            (0.125, 2, "0.13"),
            (-0.001, 2, "0.00"),
            (0.05, 1, "0.1"),
            (46.9123, 1, "46.9"),
            (3.0, 2, "3.00"),
            // 2.675 is 2.67499999999999982236431605997495353221893310546875
            // in binary; 15 significant digits make it 2.675, which rounds up.
            (2.675, 2, "2.68"),
            (1.0e20, 1, "100000000000000000000.0"),
            (123456789012345.67, 0, "123456789012346"),
            (9.5e-7, 0, "0"),
            (0.999999, 0, "1"),
        ];
        for (x, d, want) in cases {
            assert_eq!(num(Some(x), d), want, "round({x}::numeric, {d})");
        }
        assert_eq!(num(None, 1), "");
        assert_eq!(num(Some(f64::NAN), 1), "NaN");
    }

    #[test]
    fn floats_print_as_float8out() {
        let cases = [
            (10.0, "10"),
            (12.5, "12.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1.5e300, "1.5e+300"),
        ];
        for (x, want) in cases {
            assert_eq!(float_text(Some(x)), want, "{x}");
        }
        assert_eq!(float_text(None), "");
    }

    #[test]
    fn types_are_summarized_in_order_with_modes_and_category_counts() {
        let fs = [
            found(Kind::Zscore, "z", 3.5, Some("spike")),
            found(Kind::Stall, "deal_stalled", 25.0, Some("Proposal")),
            found(Kind::Stall, "deal_stalled", 23.0, Some("Negotiation")),
            found(Kind::Zscore, "z", -21.1, Some("drop")),
            found(Kind::Stall, "deal_stalled", 16.0, Some("Trial")),
            found(Kind::Zscore, "z", 46.9, Some("spike")),
        ];
        let s = summarize(&fs);
        assert_eq!(
            s.iter()
                .map(|t| t.anomaly_type.as_str())
                .collect::<Vec<_>>(),
            ["deal_stalled", "z"]
        );
        let deals = &s[0];
        assert_eq!((deals.n, deals.new), (3, 2));
        assert_eq!(deals.avg_metric, Some(64.0 / 3.0));
        // Three categories once each: the first by name.
        assert_eq!(deals.common.as_deref(), Some("Negotiation"));
        assert_eq!(deals.max_urgency, Some(25));
        let z = &s[1];
        assert_eq!(z.categories.as_deref(), Some("2 spike, 1 drop"));
        assert_eq!(z.max_metric, Some(46.9));
        assert_eq!(z.common.as_deref(), Some("spike"));
        assert_eq!(z.by_severity["high"], 3);
    }

    #[test]
    fn insights_are_the_kinds_sentences() {
        let mut fs = vec![
            found(Kind::Stall, "deal_stalled", 25.0, Some("Negotiation")),
            found(Kind::Stall, "deal_stalled", 23.0, Some("Negotiation")),
            found(Kind::Stall, "deal_stalled", 27.0, Some("Proposal")),
        ];
        let r = build(&fs, Totals::default());
        assert_eq!(
            r["insights"],
            json!(["3 deals stalled. Average wait: 25 days. Most common stage: Negotiation."])
        );
        for f in &mut fs {
            f.metric_name = Some("wait_hours".into());
            f.group_name = None;
        }
        let r = build(&fs, Totals::default());
        assert_eq!(
            r["insights"],
            json!(["3 deals stalled. Average wait: 25.0 hours."])
        );
        let count = [Reported {
            metric_name: Some("sync failures".into()),
            label: Some("sources".into()),
            ..found(Kind::Count, "sync_failure", 10.0, None)
        }];
        assert_eq!(
            build(&count, Totals::default())["insights"],
            json!(["1 sources affected by sync failures: 10 in total."])
        );
        let sat = [
            found(Kind::Saturation, "exhaustion", 98.0, None),
            found(Kind::Saturation, "saturation", 0.06, Some("RED")),
        ];
        assert_eq!(
            build(&sat, Totals::default())["insights"],
            json!([
                "1 deals at risk of audience exhaustion. Average score: 98.",
                "1 deals saturated (1 RED)."
            ])
        );
    }

    #[test]
    fn the_report_counts_what_the_loop_gathered() {
        let fs = [
            found(Kind::Drop, "health_drop", 27.0, None),
            found(Kind::Drop, "health_drop", 14.0, None),
        ];
        let r = build(
            &fs,
            Totals {
                scan_id: 7,
                duration_ms: 1.23456,
                resolved: 2,
                monitors: vec![json!({"monitor": "a"})],
                errors: vec![json!({"monitor": "b"})],
                skipped: vec!["c".into()],
                ..Totals::default()
            },
        );
        assert_eq!(r["success"], false);
        assert_eq!(r["monitors_scanned"], 2);
        assert_eq!(r["anomalies_detected"], 2);
        assert_eq!(r["alerts_saved"], 1);
        assert_eq!(r["duplicates_skipped"], 1);
        assert_eq!(r["duration_ms"], 1.235);
        assert_eq!(r["alerts_resolved"], 2);
        assert_eq!(
            r["breakdown"]["health_drop"],
            json!({"count": 2, "new": 1, "duplicates": 1, "max_urgency": 27, "by_severity": {"high": 2}})
        );
        assert_eq!(r["skipped"], json!(["c"]));
        let empty = build(&[], Totals::default());
        assert_eq!(empty["insights"], json!([]));
        assert_eq!(empty["breakdown"], json!({}));
        assert_eq!(empty["success"], true);
    }
}
