//! A mergeable one-dimensional statistics summary (count, mean, M2, min, max)
//! behind `vigil.statsagg`: built row by row, merged across parallel workers
//! and rollups, and shrunk again when rows leave a trigger-maintained rollup.

pub mod accum;
pub mod baseline;
pub mod datum;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;
pub mod state;

use std::fmt;

use crate::error::{finite, non_negative, Result, VigilError};

/// Count, mean, sum of squared deviations (M2), min and max of some values.
///
/// `n == 0` means empty; the other fields are then zero and meaningless. Mean
/// and M2 are kept in Welford's form rather than as sums so that data far from
/// zero (1e9 + noise) keeps its variance digits.
///
/// After [`remove`](Self::remove) or [`subtract`](Self::subtract) report that
/// min/max may be stale, `min` and `max` are still bounds (true min >= `min`,
/// true max <= `max`) until the caller recomputes and assigns them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatsSummary {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

/// Length of [`StatsSummary::to_bytes`].
pub const STATS_BYTES: usize = 40;

impl StatsSummary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value (Welford's update).
    pub fn accum(&mut self, x: f64) -> Result<()> {
        let x = finite("value", x)?;
        if self.n == 0 {
            *self = StatsSummary {
                n: 1,
                mean: x,
                m2: 0.0,
                min: x,
                max: x,
            };
            return Ok(());
        }
        let n = self.n.checked_add(1).ok_or_else(too_many_values)?;
        let delta = x - self.mean;
        let mean = self.mean + delta / n as f64;
        let m2 = self.m2 + delta * (x - mean);
        *self = StatsSummary {
            n,
            mean,
            m2,
            min: self.min.min(x),
            max: self.max.max(x),
        }
        .checked()?;
        Ok(())
    }

    /// Merges two summaries exactly as if all values had been accumulated
    /// into one (Chan, Golub and LeVeque's pairwise update).
    pub fn combine(&self, other: &Self) -> Result<Self> {
        if other.n == 0 {
            return Ok(*self);
        }
        if self.n == 0 {
            return Ok(*other);
        }
        let n = self.n.checked_add(other.n).ok_or_else(too_many_values)?;
        let (na, nb, nn) = (self.n as f64, other.n as f64, n as f64);
        let delta = other.mean - self.mean;
        StatsSummary {
            n,
            mean: self.mean + delta * (nb / nn),
            m2: self.m2 + other.m2 + delta * delta * (na * nb / nn),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
        .checked()
    }

    /// Removes one value that was previously added (Welford's update run
    /// backwards). Returns true when min/max may now be stale because `x` was
    /// the minimum or maximum; the caller recomputes them from the remaining
    /// rows. When the last value goes the summary becomes empty (not stale).
    pub fn remove(&mut self, x: f64) -> Result<bool> {
        let x = finite("value", x)?;
        if self.n == 0 {
            return Err(VigilError::invalid(
                "cannot remove a value from an empty summary",
            ));
        }
        if x < self.min || x > self.max {
            return Err(VigilError::invalid(format!(
                "value {x} is outside the summary's range [{}, {}], so it was never added",
                self.min, self.max
            )));
        }
        if self.n == 1 {
            *self = Self::default();
            return Ok(false);
        }
        let n = self.n - 1;
        let mean = self.mean - (x - self.mean) / n as f64;
        let removed = (x - mean) * (x - self.mean);
        let m2 = cancelled(self.m2, removed, self.m2 - removed);
        let stale = self.min != self.max && (x == self.min || x == self.max);
        *self = StatsSummary {
            n,
            mean,
            m2,
            ..*self
        }
        .checked()?;
        Ok(stale)
    }

    /// The inverse of [`combine`](Self::combine): removes a sub-summary whose
    /// values were all added to `self`. The bool is true when min/max may be
    /// stale because `other` reached one of them.
    pub fn subtract(&self, other: &Self) -> Result<(Self, bool)> {
        if other.n == 0 {
            return Ok((*self, false));
        }
        if other.n > self.n {
            return Err(VigilError::invalid(format!(
                "cannot subtract a summary of {} values from one of {}",
                other.n, self.n
            )));
        }
        if other.min < self.min || other.max > self.max {
            return Err(VigilError::invalid(format!(
                "cannot subtract a summary with range [{}, {}] from one with range [{}, {}]: its values were never added",
                other.min, other.max, self.min, self.max
            )));
        }
        if other.n == self.n {
            return Ok((Self::default(), false));
        }
        let n = self.n - other.n;
        let (na, nb, nc) = (n as f64, other.n as f64, self.n as f64);
        let mean = self.mean + (self.mean - other.mean) * (nb / na);
        let delta = other.mean - mean;
        let removed = other.m2 + delta * delta * (na * nb / nc);
        let m2 = cancelled(self.m2, removed, self.m2 - removed);
        let stale = self.min != self.max && (other.min == self.min || other.max == self.max);
        let rest = StatsSummary {
            n,
            mean,
            m2,
            ..*self
        }
        .checked()?;
        Ok((rest, stale))
    }

    pub fn num_vals(&self) -> u64 {
        self.n
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// Sample variance (divides by n - 1), like `var_samp`.
    pub fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| self.m2 / (self.n - 1) as f64)
    }

    /// Population variance (divides by n), like `var_pop`.
    pub fn variance_pop(&self) -> Option<f64> {
        (self.n > 0).then(|| self.m2 / self.n as f64)
    }

    pub fn stddev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    pub fn stddev_pop(&self) -> Option<f64> {
        self.variance_pop().map(f64::sqrt)
    }

    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }

    /// `x`'s z-score against this summary's mean and sample stddev; `None`
    /// when there are fewer than two values or they are all equal (to float
    /// noise).
    pub fn zscore(&self, x: f64) -> Result<Option<f64>> {
        match self.stddev() {
            Some(stddev) => zscore(x, self.mean, stddev),
            None => Ok(None),
        }
    }

    /// Little-endian n, mean, m2, min, max: the aggregate's serial form.
    pub fn to_bytes(&self) -> [u8; STATS_BYTES] {
        let mut out = [0u8; STATS_BYTES];
        out[0..8].copy_from_slice(&self.n.to_le_bytes());
        for (i, v) in [self.mean, self.m2, self.min, self.max].iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: &[u8; STATS_BYTES] = bytes.try_into().map_err(|_| {
            VigilError::invalid(format!(
                "statsagg binary data must be {STATS_BYTES} bytes, got {}",
                bytes.len()
            ))
        })?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            w
        };
        let f = |i| f64::from_le_bytes(word(i));
        let summary = StatsSummary {
            n: u64::from_le_bytes(word(0)),
            mean: f(1),
            m2: f(2),
            min: f(3),
            max: f(4),
        };
        summary.validated().map_err(|detail| {
            VigilError::invalid(format!("statsagg binary data is inconsistent: {detail}"))
        })
    }

    /// Parses the text form written by `Display`, e.g.
    /// `(n:3,mean:2.0,m2:2.0,min:1.0,max:3.0)` or `(n:0)`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |detail: &str| {
            VigilError::invalid(format!(
                "statsagg text must look like (n:3,mean:2.0,m2:2.0,min:1.0,max:3.0) or (n:0), got \"{s}\": {detail}"
            ))
        };
        let inner = s
            .trim()
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| bad("missing parentheses"))?;
        let fields = inner
            .split(',')
            .map(|field| field.split_once(':').map(|(k, v)| (k.trim(), v.trim())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("each field must be name:value"))?;
        let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        let n: u64 = match names.as_slice() {
            ["n"] | ["n", "mean", "m2", "min", "max"] => fields[0]
                .1
                .parse()
                .map_err(|_| bad("n must be a non-negative integer"))?,
            _ => return Err(bad("fields must be n, mean, m2, min, max in that order")),
        };
        if n == 0 {
            return match names.len() {
                1 => Ok(Self::default()),
                _ => Err(bad("an empty summary has no other fields")),
            };
        }
        if names.len() == 1 {
            return Err(bad("a non-empty summary needs mean, m2, min and max"));
        }
        let mut values = [0.0; 4];
        for (slot, (name, text)) in values.iter_mut().zip(&fields[1..]) {
            *slot = text
                .parse()
                .map_err(|_| bad(&format!("{name} is not a number")))?;
        }
        let [mean, m2, min, max] = values;
        StatsSummary {
            n,
            mean,
            m2,
            min,
            max,
        }
        .validated()
        .map_err(|detail| bad(&detail))
    }

    /// Checks the invariants a summary built by this module always has, so
    /// that decoded input cannot smuggle in NaN or a negative M2.
    fn validated(self) -> std::result::Result<Self, String> {
        if self.n == 0 {
            return Ok(Self::default());
        }
        for (name, v) in [("mean", self.mean), ("min", self.min), ("max", self.max)] {
            finite(name, v).map_err(|e| e.message)?;
        }
        non_negative("m2", self.m2).map_err(|e| e.message)?;
        if self.min > self.max {
            return Err(format!("min {} is greater than max {}", self.min, self.max));
        }
        // What n values between min and max can be (min/max may be stale
        // bounds, which only widens this): the mean lies between them, and
        // M2 = n * population variance <= n * (max - min)^2 / 4. Tolerances
        // cover float rounding of summaries this module built.
        let scale = self.min.abs().max(self.max.abs()).max(self.mean.abs());
        let tol = 1e-9 * scale + f64::MIN_POSITIVE;
        if self.mean < self.min - tol || self.mean > self.max + tol {
            return Err(format!(
                "mean {} lies outside [min {}, max {}]",
                self.mean, self.min, self.max
            ));
        }
        let span = self.max - self.min;
        let n = self.n as f64;
        let m2_max = n * span * span / 4.0;
        if self.m2 > m2_max * (1.0 + 1e-6) + 1e-9 * n * scale * scale + f64::MIN_POSITIVE {
            return Err(format!(
                "m2 {} is more than {} values within [min {}, max {}] can have",
                self.m2, self.n, self.min, self.max
            ));
        }
        Ok(self)
    }

    /// Rejects a result that overflowed the float8 range, as PostgreSQL's own
    /// float aggregates do.
    fn checked(self) -> Result<Self> {
        if self.mean.is_finite() && self.m2.is_finite() {
            Ok(self)
        } else {
            Err(VigilError::out_of_range(
                "value out of range: the statsagg mean or variance overflows float8",
            ))
        }
    }
}

fn too_many_values() -> VigilError {
    VigilError::out_of_range("statsagg cannot count more than 2^64 - 1 values")
}

impl fmt::Display for StatsSummary {
    /// `{:?}` prints the shortest digits that parse back to the same bits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n == 0 {
            return f.write_str("(n:0)");
        }
        write!(
            f,
            "(n:{},mean:{:?},m2:{:?},min:{:?},max:{:?})",
            self.n, self.mean, self.m2, self.min, self.max
        )
    }
}

/// A standard deviation at most this fraction of the mean's magnitude (of 1
/// for means below 1) is float rounding, not spread.
pub const NOISE_RELATIVE: f64 = 1e-9;

/// Whether `stddev` is no real spread around `mean`: zero, or below float
/// noise. Equal values summed in float8 leave a stddev of ~1e-17 (PostgreSQL's
/// `stddev_samp` over thirty days of the same 0.3 conversion gives 6e-17);
/// dividing by it turns any difference into a z-score of 1e15.
pub fn spread_is_noise(stddev: f64, mean: f64) -> bool {
    stddev <= NOISE_RELATIVE * mean.abs().max(1.0)
}

/// `(value - mean) / stddev`, or `None` when the stddev is no real spread
/// ([`spread_is_noise`]; 0 included, like `NULLIF(stddev, 0)`).
pub fn zscore(value: f64, mean: f64, stddev: f64) -> Result<Option<f64>> {
    let value = finite("value", value)?;
    let mean = finite("mean", mean)?;
    let stddev = non_negative("stddev", stddev)?;
    if spread_is_noise(stddev, mean) {
        return Ok(None);
    }
    let z = (value - mean) / stddev;
    if !z.is_finite() {
        return Err(VigilError::out_of_range(format!(
            "value out of range: the z-score of {value} against mean {mean} and stddev {stddev} overflows float8"
        )));
    }
    Ok(Some(z))
}

/// `|z| > threshold`: a z-score exactly at the threshold is not an anomaly.
pub fn is_anomaly(z: f64, threshold: f64) -> Result<bool> {
    let z = finite("z", z)?;
    let threshold = non_negative("threshold", threshold)?;
    Ok(z.abs() > threshold)
}

#[cfg(test)]
mod tests;

/// `left - right` (computed as `diff`) for a sum of squares: a result within
/// the rounding error of the operands is no spread at all. Removing values
/// cancels most of M2 when what is left is (nearly) equal values; the few
/// ulps of the operands that survive the subtraction would otherwise show
/// as a standard deviation of ~1e-6 over values that are all the same.
fn cancelled(left: f64, right: f64, diff: f64) -> f64 {
    let noise = 16.0 * f64::EPSILON * (left.abs() + right.abs());
    if diff <= noise {
        0.0
    } else {
        diff
    }
}
