//! SQL wrappers of the scoring functions: type conversion and errors only.

use super::{EarlyKillInputs, Saturation, SaturationInputs, Severity, UrgencyFactors};
use crate::error::VigilError;
use crate::sqlglue::{raise, sql_enum, OrRaise};
use pgrx::prelude::*;

sql_enum!(Severity, "vigil.severity");
sql_enum!(Saturation, "vigil.saturation");

/// Severity for a metric that is worse when larger; NULL below `medium`.
#[pg_extern(immutable, strict, parallel_safe)]
fn severity_above(value: f64, medium: f64, high: f64, critical: f64) -> Option<Severity> {
    super::severity_above(value, medium, high, critical).or_raise()
}

/// Severity for a metric that is worse when smaller; NULL above `medium`.
#[pg_extern(immutable, strict, parallel_safe)]
fn severity_below(value: f64, medium: f64, high: f64, critical: f64) -> Option<Severity> {
    super::severity_below(value, medium, high, critical).or_raise()
}

fn saturation_inputs(
    conversion_24h: Option<f64>,
    baseline_conversion: Option<f64>,
    messages_24h: Option<f64>,
    baseline_daily_messages: Option<f64>,
) -> SaturationInputs {
    SaturationInputs {
        conversion_24h,
        baseline_conversion,
        messages_24h,
        baseline_daily_messages,
    }
}

/// RED / YELLOW / GREEN / UNKNOWN audience saturation (SPEC §3.2).
#[pg_extern(immutable, parallel_safe)]
fn saturation_status(
    conversion_24h: Option<f64>,
    baseline_conversion: Option<f64>,
    messages_24h: Option<f64>,
    baseline_daily_messages: Option<f64>,
) -> Saturation {
    super::saturation_status(saturation_inputs(
        conversion_24h,
        baseline_conversion,
        messages_24h,
        baseline_daily_messages,
    ))
    .or_raise()
}

#[pg_extern(immutable, parallel_safe)]
fn saturation_predicted(
    conversion_z: Option<f64>,
    volume_z: Option<f64>,
    consecutive_decline_days: Option<i32>,
) -> Option<bool> {
    super::saturation_predicted(conversion_z, volume_z, consecutive_decline_days).or_raise()
}

#[pg_extern(immutable, parallel_safe)]
fn exhaustion_score(
    conversion_24h: Option<f64>,
    baseline_conversion: Option<f64>,
    messages_24h: Option<f64>,
    baseline_daily_messages: Option<f64>,
    consecutive_decline_days: Option<i32>,
) -> Option<f64> {
    super::exhaustion_score(
        saturation_inputs(
            conversion_24h,
            baseline_conversion,
            messages_24h,
            baseline_daily_messages,
        ),
        consecutive_decline_days,
    )
    .or_raise()
}

/// Urgency 0–100 from severity and the optional aggravating factors.
#[pg_extern(immutable, parallel_safe)]
fn urgency_score(
    severity: Option<Severity>,
    drop_points: default!(Option<f64>, "NULL"),
    health_zone: default!(Option<&str>, "NULL"),
    stall_days: default!(Option<f64>, "NULL"),
    deal_value: default!(Option<AnyNumeric>, "NULL"),
    failure_count: default!(Option<i32>, "NULL"),
    wait_hours: default!(Option<f64>, "NULL"),
) -> Option<i32> {
    let severity = severity?;
    let large_deal = match deal_value {
        None => false,
        Some(v) => {
            // Judge the numeric itself: a huge but finite value is a valid
            // (large) deal even where float8 would overflow.
            let text = v.to_string();
            if matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
                raise(VigilError::invalid(format!(
                    "deal_value must be a finite number, got {text}"
                )));
            }
            if v < AnyNumeric::from(0) {
                raise(VigilError::invalid(format!(
                    "deal_value must be >= 0, got {text}"
                )));
            }
            v > AnyNumeric::from(10_000)
        }
    };
    let factors = UrgencyFactors {
        drop_points,
        health_zone: health_zone.map(|z| super::parse_health_zone(z).or_raise()),
        stall_days,
        large_deal,
        failure_count,
        wait_hours,
    };
    Some(super::urgency_score(severity, factors).or_raise())
}

/// The response band of an urgency score: immediate, hours, within 24h,
/// this week, backlog.
#[pg_extern(immutable, strict, parallel_safe)]
fn urgency_band(score: i32) -> &'static str {
    if !(0..=100).contains(&score) {
        raise(VigilError::out_of_range(format!(
            "score must be between 0 and 100, got {score}"
        )));
    }
    super::urgency_band(score)
}

/// `{type}_{entity}_{YYYY-MM-DD}` (UTC date). IMMUTABLE: the default `now()`
/// is evaluated by the caller, and the UTC date does not depend on TimeZone.
#[pg_extern(immutable, strict, parallel_safe)]
fn dedup_key(
    anomaly_type: &str,
    entity: &str,
    at: default!(TimestampWithTimeZone, "now()"),
) -> String {
    let micros = finite_timestamp("at", at);
    super::dedup_key(anomaly_type, entity, micros).or_raise()
}

fn finite_timestamp(name: &str, ts: TimestampWithTimeZone) -> i64 {
    if ts.is_infinity() || ts.is_neg_infinity() {
        raise(VigilError::invalid(format!(
            "{name} must be a finite timestamp"
        )));
    }
    pg_sys::TimestampTz::from(ts)
}

/// `kill`, `expired` or `continue` for a variant under test (scenario 3).
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, strict, parallel_safe)]
fn early_kill_decision(
    expected_rate: f64,
    interactions: i64,
    views: i64,
    started_at: TimestampWithTimeZone,
    at: default!(TimestampWithTimeZone, "now()"),
    kill_threshold: default!(f64, 0.5),
    min_interactions: default!(i32, 10),
    timeout: default!(Interval, "'10 minutes'"),
) -> &'static str {
    let started = finite_timestamp("started_at", started_at);
    let now = finite_timestamp("at", at);
    let inputs = EarlyKillInputs {
        expected_rate,
        interactions,
        views,
        elapsed_micros: i128::from(now) - i128::from(started),
        kill_threshold,
        min_interactions,
        timeout_micros: super::interval_span_micros(
            timeout.months(),
            timeout.days(),
            timeout.micros(),
        ),
    };
    super::early_kill_decision(inputs).or_raise().label()
}
