//! Classification and scoring (SPEC §3.2): severities from thresholds, the
//! saturation model of scenario 1, urgency for triage, dedup keys and the
//! early-kill decision of scenario 3. Pure Rust; `sql.rs` exposes it.

mod agg;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;

use crate::error::{finite, non_negative, non_negative_count, Result, VigilError};

/// `vigil.severity`, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_label(label: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.label() == label)
    }

    /// Base urgency points by severity.
    fn urgency_base(self) -> f64 {
        match self {
            Severity::Critical => 90.0,
            Severity::High => 70.0,
            Severity::Medium => 50.0,
            Severity::Low => 30.0,
            Severity::Info => 10.0,
        }
    }
}

/// `vigil.saturation`: the traffic-light status of an audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saturation {
    Green,
    Yellow,
    Red,
    Unknown,
}

impl Saturation {
    pub const ALL: [Saturation; 4] = [
        Saturation::Green,
        Saturation::Yellow,
        Saturation::Red,
        Saturation::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Saturation::Green => "GREEN",
            Saturation::Yellow => "YELLOW",
            Saturation::Red => "RED",
            Saturation::Unknown => "UNKNOWN",
        }
    }

    pub fn from_label(label: &str) -> Option<Saturation> {
        Saturation::ALL.into_iter().find(|s| s.label() == label)
    }
}

/// Checks that three thresholds are strictly ordered in the given direction.
fn ordered_thresholds(medium: f64, high: f64, critical: f64, ascending: bool) -> Result<()> {
    finite("medium", medium)?;
    finite("high", high)?;
    finite("critical", critical)?;
    let ok = if ascending {
        medium < high && high < critical
    } else {
        medium > high && high > critical
    };
    if ok {
        Ok(())
    } else {
        let rel = if ascending { "<" } else { ">" };
        Err(VigilError::invalid(format!(
            "thresholds must satisfy medium {rel} high {rel} critical, got medium={medium}, high={high}, critical={critical}"
        )))
    }
}

/// Worse when larger: value >= critical → critical, >= high → high,
/// >= medium → medium, else none.
pub fn severity_above(
    value: f64,
    medium: f64,
    high: f64,
    critical: f64,
) -> Result<Option<Severity>> {
    finite("value", value)?;
    ordered_thresholds(medium, high, critical, true)?;
    Ok(if value >= critical {
        Some(Severity::Critical)
    } else if value >= high {
        Some(Severity::High)
    } else if value >= medium {
        Some(Severity::Medium)
    } else {
        None
    })
}

/// Worse when smaller: value <= critical → critical, <= high → high,
/// <= medium → medium, else none.
pub fn severity_below(
    value: f64,
    medium: f64,
    high: f64,
    critical: f64,
) -> Result<Option<Severity>> {
    finite("value", value)?;
    ordered_thresholds(medium, high, critical, false)?;
    Ok(if value <= critical {
        Some(Severity::Critical)
    } else if value <= high {
        Some(Severity::High)
    } else if value <= medium {
        Some(Severity::Medium)
    } else {
        None
    })
}

/// Inputs of the saturation model; `None` is SQL NULL.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaturationInputs {
    pub conversion_24h: Option<f64>,
    pub baseline_conversion: Option<f64>,
    pub messages_24h: Option<f64>,
    pub baseline_daily_messages: Option<f64>,
}

/// Validated inputs `(conv, base_conv, msgs, base_msgs)`, or `None` when the
/// model cannot judge (a NULL input or a baseline <= 0).
fn saturation_values(i: &SaturationInputs) -> Result<Option<(f64, f64, f64, f64)>> {
    let conv = i
        .conversion_24h
        .map(|v| non_negative("conversion_24h", v))
        .transpose()?;
    let msgs = i
        .messages_24h
        .map(|v| non_negative("messages_24h", v))
        .transpose()?;
    let base_conv = i
        .baseline_conversion
        .map(|v| finite("baseline_conversion", v))
        .transpose()?;
    let base_msgs = i
        .baseline_daily_messages
        .map(|v| finite("baseline_daily_messages", v))
        .transpose()?;
    match (conv, base_conv, msgs, base_msgs) {
        (Some(c), Some(bc), Some(m), Some(bm)) if bc > 0.0 && bm > 0.0 => Ok(Some((c, bc, m, bm))),
        _ => Ok(None),
    }
}

/// RED when conversion < 0.5×baseline and messages > 1.5×baseline; else YELLOW
/// when conversion < 0.7×baseline and messages > 1.2×baseline; else GREEN when
/// conversion >= 0.9×baseline; else UNKNOWN (also for NULLs and baselines <= 0).
pub fn saturation_status(i: SaturationInputs) -> Result<Saturation> {
    let Some((c, bc, m, bm)) = saturation_values(&i)? else {
        return Ok(Saturation::Unknown);
    };
    // Thresholds are products like 0.9 × 0.2, which binary floating point
    // rounds (0.18000000000000002); comparisons treat values within a relative
    // 1e-12 as equal so that decimal boundaries behave as written.
    Ok(if lt(c, 0.5 * bc) && gt(m, 1.5 * bm) {
        Saturation::Red
    } else if lt(c, 0.7 * bc) && gt(m, 1.2 * bm) {
        Saturation::Yellow
    } else if !lt(c, 0.9 * bc) {
        Saturation::Green
    } else {
        Saturation::Unknown
    })
}

fn nearly_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// `a < b`, with nearly equal values counted as equal.
fn lt(a: f64, b: f64) -> bool {
    a < b && !nearly_equal(a, b)
}

/// `a > b`, with nearly equal values counted as equal.
fn gt(a: f64, b: f64) -> bool {
    a > b && !nearly_equal(a, b)
}

/// True when (conversion_z < −2 and volume_z > 2) or decline days >= 3, with
/// SQL's three-valued logic for NULL inputs.
pub fn saturation_predicted(
    conversion_z: Option<f64>,
    volume_z: Option<f64>,
    consecutive_decline_days: Option<i32>,
) -> Result<Option<bool>> {
    let cz = conversion_z
        .map(|v| finite("conversion_z", v))
        .transpose()?;
    let vz = volume_z.map(|v| finite("volume_z", v)).transpose()?;
    let days = consecutive_decline_days
        .map(|d| non_negative_count("consecutive_decline_days", d.into()))
        .transpose()?;
    let z_part = and3(cz.map(|z| z < -2.0), vz.map(|z| z > 2.0));
    Ok(or3(z_part, days.map(|d| d >= 3)))
}

/// The last day number `vigil._saturation_days` takes: day 0 is the last
/// 24 hours, days 1..=baseline_days (at most 366) the baseline.
pub const LAST_DAY: i32 = 366;

/// One entity's figures for the saturation kind, from its rows' totals per
/// day number (`days[d] = [rows, conversions]`, day 0 the last 24 hours):
/// what the kind's query used to compute in two grouped passes (per entity
/// and day, then per entity), now from one aggregate over the rows
/// (`vigil._saturation_days`). A day with no rows (`rows <= 0`: never
/// read, or a rollup's groups emptied by deletions) is no day.
#[derive(Debug, Clone, PartialEq)]
pub struct SaturationDays {
    /// Rows and conversions of day 0 (0 without a day 0).
    pub rows_24h: f64,
    pub converted_24h: f64,
    /// Sums over the baseline days (d > 0), and the sum of their rows
    /// squared (for the volume's spread).
    pub rows_baseline: f64,
    pub converted_baseline: f64,
    pub rows_baseline_sq: f64,
    /// Mean and sample standard deviation of the baseline days' rates
    /// (conversions / rows): NULL (None) over no day, and the deviation
    /// over fewer than two.
    pub rate_mean: Option<f64>,
    pub rate_sd: Option<f64>,
    /// Consecutive days of decline ending today: the unbroken run from
    /// day 0 of days whose rate is below the rate of the day before it
    /// (which must be there; 0 without a day 0).
    pub decline_days: i32,
}

impl SaturationDays {
    pub fn of(days: &[[f64; 2]]) -> SaturationDays {
        let present = |d: usize| days.get(d).filter(|[n, _]| *n > 0.0);
        let rate = |d: usize| present(d).map(|[n, c]| c / n);
        let (mut mb, mut cb, mut mb2) = (0.0, 0.0, 0.0);
        let mut rates = Vec::with_capacity(days.len());
        for [n, c] in days.iter().skip(1).filter(|[n, _]| *n > 0.0) {
            mb += n;
            cb += c;
            mb2 += n * n;
            rates.push(c / n);
        }
        let count = rates.len() as f64;
        let rate_mean = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / count);
        // Two passes (PostgreSQL's stddev_samp uses the Youngs–Cramer
        // update; both are exact to rounding).
        let rate_sd = rate_mean
            .filter(|_| rates.len() > 1)
            .map(|m| (rates.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / (count - 1.0)).sqrt());
        let mut run = 0;
        while let (Some(now), Some(before)) = (rate(run), rate(run + 1)) {
            if now < before {
                run += 1;
            } else {
                break;
            }
        }
        let [m24, c24] = present(0).copied().unwrap_or([0.0, 0.0]);
        SaturationDays {
            rows_24h: m24,
            converted_24h: c24,
            rows_baseline: mb,
            converted_baseline: cb,
            rows_baseline_sq: mb2,
            rate_mean,
            rate_sd,
            decline_days: i32::try_from(run).unwrap_or(i32::MAX),
        }
    }
}

/// How the drop kind merges a bucket's slot rows of a rollup measure into
/// the bucket's value (`vigil._drop_buckets`' `merge` argument; the query
/// passes the number, so the list is written once, here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketMerge {
    /// An `avg` or `stats` measure: Σ a / Σ b, a = mean × values, b =
    /// values (NULL over no values).
    Ratio = 0,
    /// A `sum` measure: Σ a when Σ b (its `_n_` count of values) > 0.
    Sum = 1,
    /// A `count` measure: Σ a.
    Count = 2,
    /// `min` and `max` measures: the least or greatest a (PostgreSQL's
    /// order: NaN above every number).
    Min = 3,
    Max = 4,
}

impl BucketMerge {
    pub fn from_code(code: i32) -> Option<BucketMerge> {
        [Self::Ratio, Self::Sum, Self::Count, Self::Min, Self::Max]
            .into_iter()
            .find(|m| *m as i32 == code)
    }
}

/// One slot row of a bucket: its start (microseconds, any epoch), its
/// `_rows`, and the measure's parts (`a`, `b`; NULL as None).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRow {
    pub at: i64,
    pub rows: f64,
    pub a: Option<f64>,
    pub b: Option<f64>,
}

/// The drop kind's samples over a rollup, from one entity's slot rows in
/// any order: each bucket's rows merged (`merge`), a bucket whose rows add
/// up to none (`_rows` ≤ 0: emptied by deletions) or that holds no value is
/// no sample. Returns (the latest sample's value, the sum of all samples,
/// their count); None without samples. Sorts `rows` by time.
pub fn drop_samples(rows: &mut [BucketRow], merge: BucketMerge) -> Option<(f64, f64, u64)> {
    rows.sort_unstable_by_key(|r| r.at);
    let (mut latest, mut total, mut n) = (None, 0.0, 0u64);
    for bucket in rows.chunk_by(|x, y| x.at == y.at) {
        let held: f64 = bucket.iter().map(|r| r.rows).sum();
        if held.is_nan() || held <= 0.0 {
            continue;
        }
        let a = bucket.iter().filter_map(|r| r.a);
        let b: f64 = bucket.iter().filter_map(|r| r.b).sum();
        let value = match merge {
            BucketMerge::Ratio => (b != 0.0).then(|| a.sum::<f64>() / b),
            BucketMerge::Sum => (b > 0.0).then(|| a.sum::<f64>()),
            BucketMerge::Count => {
                let mut a = a.peekable();
                a.peek().is_some().then(|| a.sum::<f64>())
            }
            BucketMerge::Min => a.reduce(|x, y| if pg_lt(y, x) { y } else { x }),
            BucketMerge::Max => a.reduce(|x, y| if pg_lt(x, y) { y } else { x }),
        };
        if let Some(v) = value {
            latest = Some(v);
            total += v;
            n += 1;
        }
    }
    latest.map(|v| (v, total, n))
}

/// The drop kind's samples over raw rows of one entity, in a fixed size
/// (`vigil._drop_latest`): the latest row's value, the sum of the values
/// and their count. Of rows at the same latest time the greatest value (in
/// PostgreSQL's order) is the latest, as `max(ARRAY[epoch, v])` picked it;
/// times are compared exactly (microseconds), not as float8 epochs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatestSum {
    pub at: i64,
    pub latest: f64,
    pub total: f64,
    pub n: u64,
}

impl LatestSum {
    /// Adds the value `v` of a row at `at`.
    pub fn add(&mut self, at: i64, v: f64) {
        self.merge(&LatestSum {
            at,
            latest: v,
            total: v,
            n: 1,
        });
    }

    /// Adds another entity state's rows (parallel aggregation).
    pub fn merge(&mut self, other: &LatestSum) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        if other.at > self.at || (other.at == self.at && pg_lt(self.latest, other.latest)) {
            self.at = other.at;
            self.latest = other.latest;
        }
        self.total += other.total;
        self.n += other.n;
    }

    /// `(latest, total, samples)`, None without rows.
    pub fn samples(&self) -> Option<(f64, f64, u64)> {
        (self.n > 0).then_some((self.latest, self.total, self.n))
    }
}

/// float8 `<` as PostgreSQL orders it: NaN equals NaN and is above every
/// other value.
fn pg_lt(x: f64, y: f64) -> bool {
    match (x.is_nan(), y.is_nan()) {
        (false, false) => x < y,
        (false, true) => true,
        _ => false,
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// `(1 − conv/base_conv)×50 + (msgs/base_msgs − 1)×30 + decline_days×10`,
/// clamped to [0, 100]; NULL when an input is NULL or a baseline is <= 0.
pub fn exhaustion_score(
    i: SaturationInputs,
    consecutive_decline_days: Option<i32>,
) -> Result<Option<f64>> {
    let days = consecutive_decline_days
        .map(|d| non_negative_count("consecutive_decline_days", d.into()))
        .transpose()?;
    Ok(match (saturation_values(&i)?, days) {
        (Some((c, bc, m, bm)), Some(d)) => {
            let raw = (1.0 - c / bc) * 50.0 + (m / bm - 1.0) * 30.0 + d as f64 * 10.0;
            Some(raw.clamp(0.0, 100.0))
        }
        _ => None,
    })
}

/// The factors that raise an alert's urgency above its severity's base.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrgencyFactors {
    pub drop_points: Option<f64>,
    pub health_zone: Option<Saturation>,
    pub stall_days: Option<f64>,
    /// Whether the deal value exceeds 10 000 (the SQL layer compares the
    /// numeric exactly).
    pub large_deal: bool,
    pub failure_count: Option<i32>,
    pub wait_hours: Option<f64>,
}

/// Parses a health zone (`RED`, `YELLOW`, `GREEN`, `UNKNOWN`, any case).
pub fn parse_health_zone(zone: &str) -> Result<Saturation> {
    Saturation::from_label(&zone.trim().to_ascii_uppercase()).ok_or_else(|| {
        VigilError::invalid(format!(
            "health_zone must be one of RED, YELLOW, GREEN, UNKNOWN, got \"{zone}\""
        ))
    })
}

/// Urgency in [0, 100]: the severity's base plus capped bonuses, rounded half
/// up, then clamped. Bands: 90–100 immediate, 70–89 hours, 50–69 within 24 h,
/// 30–49 this week.
pub fn urgency_score(severity: Severity, f: UrgencyFactors) -> Result<i32> {
    let mut score = severity.urgency_base();
    if let Some(drop) = f.drop_points {
        score += (non_negative("drop_points", drop)? * 0.5).min(10.0);
    }
    score += match f.health_zone {
        Some(Saturation::Red) => 15.0,
        Some(Saturation::Yellow) => 5.0,
        _ => 0.0,
    };
    if let Some(days) = f.stall_days {
        score += ((non_negative("stall_days", days)? / 10.0).floor() * 2.0).min(10.0);
    }
    if f.large_deal {
        score += 10.0;
    }
    if let Some(failures) = f.failure_count {
        score += (non_negative_count("failure_count", failures.into())? as f64 * 3.0).min(15.0);
    }
    if let Some(hours) = f.wait_hours {
        score += (non_negative("wait_hours", hours)? * 0.5).min(10.0);
    }
    Ok((score + 0.5).floor().clamp(0.0, 100.0) as i32)
}

/// The band an urgency score falls in.
pub fn urgency_band(score: i32) -> &'static str {
    match score {
        90.. => "immediate",
        70..=89 => "hours",
        50..=69 => "within 24h",
        30..=49 => "this week",
        _ => "backlog",
    }
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_SECS: i64 = 946_684_800;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// The UTC calendar date of a PostgreSQL timestamp (µs since 2000-01-01),
/// by chrono; None beyond chrono's range (±262 000 years).
pub fn utc_date(pg_micros: i64) -> Option<(i64, u32, u32)> {
    use chrono::Datelike;
    let unix_days = pg_micros.div_euclid(USECS_PER_DAY) + PG_EPOCH_OFFSET_SECS / 86_400;
    let date = chrono::DateTime::from_timestamp(unix_days.checked_mul(86_400)?, 0)?.date_naive();
    Some((i64::from(date.year()), date.month(), date.day()))
}

/// `{type}_{entity}_{YYYY-MM-DD}` with the UTC date of `at_pg_micros`.
pub fn dedup_key(anomaly_type: &str, entity: &str, at_pg_micros: i64) -> Result<String> {
    if anomaly_type.trim().is_empty() {
        return Err(VigilError::invalid("anomaly_type must not be empty"));
    }
    if entity.is_empty() {
        return Err(VigilError::invalid("entity must not be empty"));
    }
    let (y, m, d) = utc_date(at_pg_micros).unwrap_or((i64::MIN, 1, 1));
    if !(1..=9999).contains(&y) {
        return Err(VigilError::invalid(format!(
            "at must fall in the years 1 to 9999, got year {y}"
        )));
    }
    Ok(format!("{anomaly_type}_{entity}_{y:04}-{m:02}-{d:02}"))
}

/// What to do with a variant under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillDecision {
    Kill,
    Expired,
    Continue,
}

impl KillDecision {
    pub fn label(self) -> &'static str {
        match self {
            KillDecision::Kill => "kill",
            KillDecision::Expired => "expired",
            KillDecision::Continue => "continue",
        }
    }
}

/// Inputs of the early-kill rule; times are microseconds.
#[derive(Debug, Clone, Copy)]
pub struct EarlyKillInputs {
    pub expected_rate: f64,
    pub interactions: i64,
    pub views: i64,
    pub elapsed_micros: i128,
    pub kill_threshold: f64,
    pub min_interactions: i32,
    pub timeout_micros: i128,
}

/// `kill` when interactions >= min_interactions and interactions/views <
/// kill_threshold × expected_rate (never without views); else `expired` when
/// the elapsed time reached the timeout; else `continue`.
pub fn early_kill_decision(i: EarlyKillInputs) -> Result<KillDecision> {
    let expected = non_negative("expected_rate", i.expected_rate)?;
    let interactions = non_negative_count("interactions", i.interactions)?;
    let views = non_negative_count("views", i.views)?;
    let threshold = non_negative("kill_threshold", i.kill_threshold)?;
    let min_interactions = non_negative_count("min_interactions", i.min_interactions.into())?;
    if i.timeout_micros < 0 {
        return Err(VigilError::invalid("timeout must not be negative"));
    }
    if views > 0 && interactions >= min_interactions {
        let rate = interactions as f64 / views as f64;
        if rate < threshold * expected {
            return Ok(KillDecision::Kill);
        }
    }
    if i.elapsed_micros >= i.timeout_micros {
        Ok(KillDecision::Expired)
    } else {
        Ok(KillDecision::Continue)
    }
}

/// The length of an interval the way PostgreSQL compares intervals: a month
/// is 30 days and a day 24 hours. Keeps the decision independent of TimeZone.
pub fn interval_span_micros(months: i32, days: i32, micros: i64) -> i128 {
    i128::from(months) * 30 * i128::from(USECS_PER_DAY)
        + i128::from(days) * i128::from(USECS_PER_DAY)
        + i128::from(micros)
}

#[cfg(test)]
mod tests;
