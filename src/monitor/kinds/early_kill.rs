//! `early_kill`: decides in a statement trigger on the interactions table,
//! inside the writing transaction (scenario 3, `sql/monitors.sql`); scans
//! only expire its variants. It has no scan query and no findings.

use super::{no_cross_checks, KindDef};
use crate::monitor::options::{def, key, req, Key, Opt, ANY};
use crate::monitor::report::TypeSummary;

const KEYS: &[Key] = &[
    req("variant", Opt::Column(ANY)),
    req("event", Opt::Column(ANY)),
    def("view_events", Opt::TextList, r#"["view"]"#),
    def("kill_threshold", Opt::Number(f64::MIN_POSITIVE, 1.0), "0.5"),
    def("min_interactions", Opt::Int(1, 1_000_000_000), "10"),
    def("timeout", Opt::Interval, "\"10 minutes\""),
    key("action_channel", Opt::Text),
    def("anomaly_type", Opt::Text, "\"early_kill\""),
    def("expires_in", Opt::Interval, "\"48 hours\""),
    key("alertname", Opt::LabelValue),
    key("labels", Opt::Labels),
];

pub(super) const DEF: KindDef = KindDef {
    name: "early_kill",
    keys: KEYS,
    common_keys: false,
    anomaly_type: "early_kill",
    metric_name: None,
    check: no_cross_checks,
    query: None,
    report_metric_name: |_| None,
    insight,
    rollup: None,
    trigger: Some("vigil._early_kill_trigger"),
};

/// Kills are alerts raised by the trigger, never scan findings; a report
/// line for completeness.
fn insight(t: &TypeSummary) -> String {
    format!("{} {} killed early.", t.n, t.label())
}
