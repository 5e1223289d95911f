//! SQL surface of the statistics summary: type `vigil.statsagg`, the
//! `stats_agg`/`rollup` aggregates (combine, serial, deserial: parallel safe),
//! accessors, and the scalar z-score helpers.

use super::accum::Accumulator;
use super::datum::StatsAgg;
use crate::error::VigilError;
use crate::sqlglue::{raise, sql_varlena, OrRaise};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use std::ffi::CStr;

sql_varlena!(StatsAgg, "vigil.statsagg");

#[pg_extern(immutable, strict, parallel_safe)]
fn statsagg_in(input: &CStr) -> StatsAgg {
    let text = input
        .to_str()
        .unwrap_or_else(|_| raise(VigilError::invalid("statsagg text must be UTF-8")));
    StatsAgg::parse(text).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn statsagg_out(value: StatsAgg) -> &'static CStr {
    crate::sqlglue::palloc_cstr(&value.to_string())
}

/// Binary output (COPY BINARY, the binary protocol): the stored bytes.
#[pg_extern(immutable, strict, parallel_safe)]
fn statsagg_send(value: StatsAgg) -> Vec<u8> {
    value.to_bytes()
}

/// Binary input: the bytes `statsagg_send` wrote, checked like stored ones.
#[pg_extern(immutable, strict, parallel_safe)]
fn statsagg_recv(buf: Internal) -> StatsAgg {
    StatsAgg::from_bytes(crate::sqlglue::recv_rest(buf)).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn num_vals(summary: StatsAgg) -> i64 {
    i64::try_from(summary.summary.num_vals())
        .unwrap_or_else(|_| raise(VigilError::out_of_range("num_vals does not fit in bigint")))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mean(summary: StatsAgg) -> Option<f64> {
    summary.summary.mean()
}

/// Sample standard deviation, like `stddev_samp`.
#[pg_extern(immutable, strict, parallel_safe)]
fn stddev(summary: StatsAgg) -> Option<f64> {
    summary.summary.stddev()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn stddev_pop(summary: StatsAgg) -> Option<f64> {
    summary.summary.stddev_pop()
}

/// Sample variance, like `var_samp`.
#[pg_extern(immutable, strict, parallel_safe)]
fn variance(summary: StatsAgg) -> Option<f64> {
    summary.summary.variance()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn variance_pop(summary: StatsAgg) -> Option<f64> {
    summary.summary.variance_pop()
}

/// NULL when empty, or after a removal took away the minimum.
/// Rollup repair: gives a summary whose min/max went stale the group's
/// recomputed extremes; without them (NULL) the summary is returned as is.
#[pg_extern(immutable, parallel_safe, name = "_stats_with_extremes")]
fn stats_with_extremes(
    summary: Option<StatsAgg>,
    min: Option<f64>,
    max: Option<f64>,
) -> Option<StatsAgg> {
    match (summary, min, max) {
        (Some(s), Some(lo), Some(hi)) => Some(s.with_extremes(lo, hi).or_raise()),
        (s, _, _) => s,
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn min_val(summary: StatsAgg) -> Option<f64> {
    summary.min()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn max_val(summary: StatsAgg) -> Option<f64> {
    summary.max()
}

/// `value`'s z-score against the summary's mean and sample stddev.
#[pg_extern(immutable, strict, parallel_safe, name = "zscore")]
fn statsagg_zscore(summary: StatsAgg, value: f64) -> Option<f64> {
    summary.summary.zscore(value).or_raise()
}

/// `(value − mean) / stddev`; NULL when stddev ≤ 1e-9 × max(1, |mean|), i.e. 0
/// or float noise (`stats::spread_is_noise`).
#[pg_extern(immutable, strict, parallel_safe)]
fn zscore(value: f64, mean: f64, stddev: f64) -> Option<f64> {
    super::zscore(value, mean, stddev).or_raise()
}

/// `|z| > threshold`.
#[pg_extern(immutable, strict, parallel_safe)]
fn is_anomaly(z: f64, threshold: default!(f64, 3)) -> bool {
    super::is_anomaly(z, threshold).or_raise()
}

/// The summary with one more value.
#[pg_extern(immutable, strict, parallel_safe, name = "add_value")]
fn statsagg_add_value(summary: StatsAgg, value: f64) -> StatsAgg {
    let mut s = summary;
    s.summary.accum(value).or_raise();
    s
}

/// The summary of one value: what a rollup adds for a single-row INSERT.
#[pg_extern(immutable, strict, parallel_safe, name = "_stats_of")]
fn stats_of(value: f64) -> StatsAgg {
    let mut acc = Accumulator::default();
    acc.accum(value).or_raise();
    acc.to_stats().or_raise()
}

/// The summary without one value that was added before. Removing the
/// current minimum or maximum makes `min_val`/`max_val` NULL.
#[pg_extern(immutable, strict, parallel_safe, name = "remove_value")]
fn statsagg_remove_value(summary: StatsAgg, value: f64) -> StatsAgg {
    let mut s = summary;
    s.remove(value).or_raise();
    s
}

/// Both summaries as one (what `rollup` does for two rows).
#[pg_extern(immutable, strict, parallel_safe, name = "merge")]
fn statsagg_merge(a: StatsAgg, b: StatsAgg) -> StatsAgg {
    a.combine(&b).or_raise()
}

/// `a` without the values summarised in `b` (the inverse of `merge`).
#[pg_extern(immutable, strict, parallel_safe, name = "subtract")]
fn statsagg_subtract(a: StatsAgg, b: StatsAgg) -> StatsAgg {
    a.subtract(&b).or_raise()
}

/// Hour of the week, 0–167, of `ts` on the wall clock of time zone `tz`:
/// Monday 00:00–00:59 is 0, Sunday 23:00–23:59 is 167. IMMUTABLE like
/// PostgreSQL's own `timezone(text, timestamptz)`.
#[pg_extern(immutable, strict, parallel_safe)]
fn hour_of_week(ts: TimestampWithTimeZone, tz: default!(&str, "'UTC'")) -> i32 {
    if ts.is_infinity() || ts.is_neg_infinity() {
        raise(VigilError::invalid("ts must be a finite timestamp"));
    }
    let tz_name = tz.to_string();
    // timezone() reports an unknown zone as 22023 with its own message;
    // rethrow that one as ours so the error names the argument. Any other
    // error (say a timestamp out of range) passes through unchanged.
    let local = PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call::<Timestamp>(
            pg_sys::timestamptz_zone,
            &[tz.into_datum(), ts.into_datum()],
        )
    })
    .catch_when(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, move |_| {
        raise(VigilError::invalid(format!(
            "tz must be a time zone name or abbreviation PostgreSQL knows, got \"{tz_name}\""
        )))
    })
    .execute()
    .expect("timezone() of a non-null timestamp is not null");
    super::baseline::hour_of_week(pg_sys::Timestamp::from(local))
}
