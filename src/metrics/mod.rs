//! pg_vigil's own counters for Prometheus: what they are, where each lives in
//! one flat array of slots (the shared-memory side is `sql`), and how a
//! snapshot of the slots reads as `vigil.metrics` rows. Counts made inside a
//! transaction wait in `Pending` until it commits.

pub mod sql;

use crate::alert::SEVERITIES;
use crate::notify::channel::KINDS;

/// Delivery outcomes, as the `vigil.notification_status` a recorded attempt
/// leaves (`pending` again: a retry), and the counter each one feeds.
const OUTCOMES: [(&str, &str); 4] = [
    ("sent", "notifications_sent_total"),
    ("pending", "notifications_retried_total"),
    ("failed", "notifications_failed_total"),
    ("dead", "notifications_dead_total"),
];

/// Upper bounds (seconds, inclusive) of the delivery-latency histogram's
/// buckets, a last `+Inf` bucket besides: from a `pg_notify` round trip to
/// a notification retried for a day.
pub const LATENCY_BOUNDS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    21600.0, 86400.0,
];
const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// Alert lifecycle events counted, and their counters.
const ALERT_EVENTS: [(&str, &str); 4] = [
    ("new", "alerts_raised_total"),
    ("resolved", "alerts_resolved_total"),
    ("dismissed", "alerts_dismissed_total"),
    ("expired", "alerts_expired_total"),
];

/// Slots of one channel kind: the outcomes, the histogram's buckets (not
/// cumulative: each value once, in the first bucket that holds it) and the
/// sum of the latencies in microseconds.
const PER_KIND: usize = OUTCOMES.len() + BUCKETS + 1;
const SCANS: usize = KINDS.len() * PER_KIND;
const SCAN_FAILURES: usize = SCANS + 1;
const MONITOR_FAILURES: usize = SCANS + 2;
const ALERTS: usize = SCANS + 3;
const ROLLUP_TRIGGER_ERRORS: usize = ALERTS + ALERT_EVENTS.len() * SEVERITIES.len();
/// How many counters there are.
pub const SLOTS: usize = ROLLUP_TRIGGER_ERRORS + 1;

/// One increment: add `n` to slot `.0`.
pub type Increment = (usize, u64);

fn kind_base(kind: &str) -> Option<usize> {
    KINDS.iter().position(|k| *k == kind).map(|i| i * PER_KIND)
}

/// What one recorded delivery attempt of a `kind` channel adds: its outcome
/// (`status` as the row now has it) and, once sent, its latency in seconds
/// (creation, or last replay, to `sent_at`; a clock step back counts 0).
/// Nothing for a kind or status that is not counted.
pub fn delivered(kind: &str, status: &str, latency_s: Option<f64>) -> Vec<Increment> {
    let Some(base) = kind_base(kind) else {
        return Vec::new();
    };
    let Some(outcome) = OUTCOMES.iter().position(|(s, _)| *s == status) else {
        return Vec::new();
    };
    let mut out = vec![(base + outcome, 1)];
    if let (0, Some(s)) = (outcome, latency_s) {
        let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS - 1);
        let buckets = base + OUTCOMES.len();
        out.push((buckets + bucket, 1));
        out.push((buckets + BUCKETS, (s * 1e6).round() as u64));
    }
    out
}

/// One `vigil.scan()` run and how many of its monitors failed.
pub fn scanned(failed_monitors: u64) -> Vec<Increment> {
    let mut out = vec![(SCANS, 1)];
    if failed_monitors > 0 {
        out.push((SCAN_FAILURES, 1));
        out.push((MONITOR_FAILURES, failed_monitors));
    }
    out
}

/// An alert lifecycle event (`vigil._notify_alert`'s `event`) of an alert
/// of `severity`; None for events that are not counted.
pub fn alert_event(event: &str, severity: &str) -> Option<Increment> {
    let e = ALERT_EVENTS.iter().position(|(name, _)| *name == event)?;
    let s = SEVERITIES.iter().position(|name| *name == severity)?;
    Some((ALERTS + e * SEVERITIES.len() + s, 1))
}

/// An error that left the rollup trigger.
pub fn rollup_trigger_error() -> Increment {
    (ROLLUP_TRIGGER_ERRORS, 1)
}

/// A row of `vigil.metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: &'static str,
    pub channel_kind: Option<&'static str>,
    pub severity: Option<&'static str>,
    /// The bucket's upper bound of a `_bucket` row (`+Inf` for the last).
    pub le: Option<f64>,
    pub value: f64,
}

fn row(name: &'static str, value: f64) -> Row {
    Row {
        name,
        channel_kind: None,
        severity: None,
        le: None,
        value,
    }
}

/// Every counter, read from `slot`, in a fixed order: per channel kind the
/// outcomes, then the latency histogram as Prometheus writes one
/// (cumulative `_bucket` rows, `_sum` in seconds, `_count` equal to the
/// `+Inf` bucket); the scan counters; per event and severity the alert
/// counters; the rollup trigger's errors.
pub fn rows(slot: impl Fn(usize) -> u64) -> Vec<Row> {
    let mut out = Vec::with_capacity(SLOTS + 2 * KINDS.len());
    for kind in KINDS {
        let base = kind_base(kind).expect("a kind");
        let of_kind = |r: Row| Row {
            channel_kind: Some(kind),
            ..r
        };
        for (i, (_, name)) in OUTCOMES.iter().enumerate() {
            out.push(of_kind(row(name, slot(base + i) as f64)));
        }
        let buckets = base + OUTCOMES.len();
        let mut cumulative = 0u64;
        for b in 0..BUCKETS {
            cumulative += slot(buckets + b);
            out.push(Row {
                le: Some(LATENCY_BOUNDS.get(b).copied().unwrap_or(f64::INFINITY)),
                ..of_kind(row(
                    "notification_delivery_seconds_bucket",
                    cumulative as f64,
                ))
            });
        }
        let sum = slot(buckets + BUCKETS) as f64 / 1e6;
        out.push(of_kind(row("notification_delivery_seconds_sum", sum)));
        out.push(of_kind(row(
            "notification_delivery_seconds_count",
            cumulative as f64,
        )));
    }
    out.push(row("scans_total", slot(SCANS) as f64));
    out.push(row("scan_failures_total", slot(SCAN_FAILURES) as f64));
    out.push(row("monitor_failures_total", slot(MONITOR_FAILURES) as f64));
    for (e, (_, name)) in ALERT_EVENTS.iter().enumerate() {
        for (s, severity) in SEVERITIES.iter().enumerate() {
            out.push(Row {
                severity: Some(severity),
                ..row(name, slot(ALERTS + e * SEVERITIES.len() + s) as f64)
            });
        }
    }
    out.push(row(
        "rollup_trigger_errors_total",
        slot(ROLLUP_TRIGGER_ERRORS) as f64,
    ));
    out
}

/// Counts of the current transaction, by the subtransaction that made them,
/// until the transaction ends: a subtransaction's commit hands its counts
/// to its parent, its abort drops them, the top-level commit publishes
/// what is left, an abort nothing.
#[derive(Debug, Default)]
pub struct Pending {
    /// (subtransaction id, slot, n), at most one entry per pair.
    entries: Vec<(u32, usize, u64)>,
}

impl Pending {
    pub fn add(&mut self, subxact: u32, (slot, n): Increment) {
        match self
            .entries
            .iter_mut()
            .find(|(s, k, _)| *s == subxact && *k == slot)
        {
            Some(e) => e.2 += n,
            None => self.entries.push((subxact, slot, n)),
        }
    }

    pub fn commit_sub(&mut self, subxact: u32, parent: u32) {
        let moved: Vec<(usize, u64)> = self
            .entries
            .iter()
            .filter(|(s, ..)| *s == subxact)
            .map(|(_, k, n)| (*k, *n))
            .collect();
        self.abort_sub(subxact);
        for inc in moved {
            self.add(parent, inc);
        }
    }

    pub fn abort_sub(&mut self, subxact: u32) {
        self.entries.retain(|(s, ..)| *s != subxact);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Everything still counted, emptying the list.
    pub fn take(&mut self) -> Vec<Increment> {
        self.entries.drain(..).map(|(_, k, n)| (k, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(slots: &mut [u64], incs: &[Increment]) {
        for (k, n) in incs {
            slots[*k] += n;
        }
    }

    fn value(rows: &[Row], name: &str, kind: Option<&str>, le: Option<f64>) -> f64 {
        rows.iter()
            .find(|r| r.name == name && r.channel_kind == kind && r.le == le)
            .unwrap_or_else(|| panic!("no row {name} {kind:?} {le:?}"))
            .value
    }

    #[test]
    fn every_slot_is_distinct_and_in_range() {
        let mut seen = [false; SLOTS];
        let mut mark = |k: usize| {
            assert!(k < SLOTS);
            assert!(!seen[k], "slot {k} used twice");
            seen[k] = true;
        };
        for kind in KINDS {
            for (status, _) in OUTCOMES {
                mark(delivered(kind, status, None)[0].0);
            }
            let base = kind_base(kind).unwrap() + OUTCOMES.len();
            for b in 0..=BUCKETS {
                mark(base + b);
            }
        }
        for k in [
            SCANS,
            SCAN_FAILURES,
            MONITOR_FAILURES,
            ROLLUP_TRIGGER_ERRORS,
        ] {
            mark(k);
        }
        for (event, _) in ALERT_EVENTS {
            for s in SEVERITIES {
                mark(alert_event(event, s).unwrap().0);
            }
        }
        assert!(seen.iter().all(|s| *s), "every slot belongs to a counter");
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it_and_buckets_read_cumulative() {
        let mut slots = vec![0u64; SLOTS];
        for s in [0.004, 0.01, 0.3, 7200.0, 1e9] {
            apply(&mut slots, &delivered("webhook", "sent", Some(s)));
        }
        let rows = rows(|k| slots[k]);
        let b = |le: f64| {
            value(
                &rows,
                "notification_delivery_seconds_bucket",
                Some("webhook"),
                Some(le),
            )
        };
        // le is inclusive: 0.01 is in the 0.01 bucket.
        assert_eq!(b(0.01), 2.0);
        assert_eq!(b(0.25), 2.0);
        assert_eq!(b(0.5), 3.0);
        assert_eq!(b(3600.0), 3.0);
        assert_eq!(b(21600.0), 4.0);
        assert_eq!(b(86400.0), 4.0);
        assert_eq!(b(f64::INFINITY), 5.0);
        let count = value(
            &rows,
            "notification_delivery_seconds_count",
            Some("webhook"),
            None,
        );
        assert_eq!(count, 5.0);
        let sum = value(
            &rows,
            "notification_delivery_seconds_sum",
            Some("webhook"),
            None,
        );
        assert!(
            (sum - (0.004 + 0.01 + 0.3 + 7200.0 + 1e9)).abs() < 1e-3,
            "{sum}"
        );
        assert_eq!(
            value(&rows, "notifications_sent_total", Some("webhook"), None),
            5.0
        );
        // Other kinds are untouched.
        assert_eq!(
            value(&rows, "notifications_sent_total", Some("slack"), None),
            0.0
        );
    }

    #[test]
    fn only_sent_attempts_have_a_latency_and_odd_values_count_zero() {
        assert_eq!(delivered("email", "pending", Some(3.0)).len(), 1);
        assert_eq!(delivered("email", "dead", Some(3.0)).len(), 1);
        assert_eq!(delivered("email", "sent", None).len(), 1);
        for odd in [-5.0, f64::NAN] {
            let incs = delivered("email", "sent", Some(odd));
            assert_eq!(incs[1].0, kind_base("email").unwrap() + OUTCOMES.len());
            assert_eq!(incs[2].1, 0);
        }
        assert!(delivered("sms", "sent", Some(1.0)).is_empty());
        assert!(delivered("email", "sending", None).is_empty());
    }

    #[test]
    fn a_retry_counts_as_retried_not_as_sent() {
        let mut slots = vec![0u64; SLOTS];
        apply(&mut slots, &delivered("slack", "pending", None));
        apply(&mut slots, &delivered("slack", "pending", None));
        apply(&mut slots, &delivered("slack", "dead", None));
        let rows = rows(|k| slots[k]);
        assert_eq!(
            value(&rows, "notifications_retried_total", Some("slack"), None),
            2.0
        );
        assert_eq!(
            value(&rows, "notifications_dead_total", Some("slack"), None),
            1.0
        );
        assert_eq!(
            value(&rows, "notifications_sent_total", Some("slack"), None),
            0.0
        );
        assert_eq!(
            value(
                &rows,
                "notification_delivery_seconds_count",
                Some("slack"),
                None
            ),
            0.0
        );
    }

    #[test]
    fn scans_alerts_and_trigger_errors_have_their_own_rows() {
        let mut slots = vec![0u64; SLOTS];
        apply(&mut slots, &scanned(0));
        apply(&mut slots, &scanned(3));
        apply(&mut slots, &[alert_event("new", "critical").unwrap()]);
        apply(&mut slots, &[alert_event("resolved", "critical").unwrap()]);
        apply(&mut slots, &[rollup_trigger_error()]);
        assert_eq!(alert_event("escalated", "critical"), None);
        assert_eq!(alert_event("new", "urgent"), None);
        let rows = rows(|k| slots[k]);
        assert_eq!(value(&rows, "scans_total", None, None), 2.0);
        assert_eq!(value(&rows, "scan_failures_total", None, None), 1.0);
        assert_eq!(value(&rows, "monitor_failures_total", None, None), 3.0);
        assert_eq!(value(&rows, "rollup_trigger_errors_total", None, None), 1.0);
        let alert = |name: &str, sev: &str| {
            rows.iter()
                .find(|r| r.name == name && r.severity == Some(sev))
                .unwrap()
                .value
        };
        assert_eq!(alert("alerts_raised_total", "critical"), 1.0);
        assert_eq!(alert("alerts_raised_total", "info"), 0.0);
        assert_eq!(alert("alerts_resolved_total", "critical"), 1.0);
        assert_eq!(alert("alerts_expired_total", "critical"), 0.0);
    }

    #[test]
    fn every_series_is_listed_even_at_zero_and_only_buckets_have_le() {
        let rows = rows(|_| 0);
        assert_eq!(
            rows.len(),
            KINDS.len() * (OUTCOMES.len() + BUCKETS + 2)
                + 3
                + ALERT_EVENTS.len() * SEVERITIES.len()
                + 1
        );
        for r in &rows {
            assert_eq!(r.le.is_some(), r.name.ends_with("_bucket"), "{r:?}");
            assert_eq!(
                r.channel_kind.is_some(),
                r.name.starts_with("notification"),
                "{r:?}"
            );
            assert_eq!(r.severity.is_some(), r.name.starts_with("alerts_"), "{r:?}");
        }
    }

    #[test]
    fn pending_counts_follow_subtransactions() {
        let mut p = Pending::default();
        p.add(1, (5, 1));
        p.add(2, (5, 2));
        p.add(3, (6, 4));
        // Savepoint 3 rolled back, 2 released into 1.
        p.abort_sub(3);
        p.commit_sub(2, 1);
        p.add(1, (5, 1));
        let mut left = p.take();
        left.sort();
        assert_eq!(left, vec![(5, 4)]);
        assert!(p.is_empty());
    }

    #[test]
    fn a_released_subtransaction_dropped_with_its_parent_counts_nothing() {
        let mut p = Pending::default();
        p.add(3, (7, 1));
        p.commit_sub(3, 2);
        p.abort_sub(2);
        assert!(p.take().is_empty());
    }
}
