//! The running state of `vigil.stats_agg`: Youngs–Cramer sums (n, Σx, Sxx),
//! the same scheme PostgreSQL's `float8_accum` uses. Unlike Welford's update
//! its per-row division is off the loop-carried dependency chain, so a scan
//! costs about what `avg` + `stddev_samp` cost; it converts to the stored
//! [`StatsAgg`] form once, at the end.

use super::datum::StatsAgg;
use super::StatsSummary;
use crate::error::{finite, Result, VigilError};

/// `repr(C)`: `vigil.stats_state` datums hold it as is (see `state.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Accumulator {
    n: f64,
    sx: f64,
    sxx: f64,
    min: f64,
    max: f64,
    minmax_exact: bool,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            n: 0.0,
            sx: 0.0,
            sxx: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            minmax_exact: true,
        }
    }
}

impl Accumulator {
    #[inline]
    pub fn accum(&mut self, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(finite("value", x).unwrap_err());
        }
        let old_n = self.n;
        self.n += 1.0;
        self.sx += x;
        if old_n > 0.0 {
            let tmp = x * self.n - self.sx;
            self.sxx += tmp * tmp / (self.n * old_n);
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        Ok(())
    }

    /// Merges another accumulator (`float8_combine`'s formula).
    pub fn combine(&mut self, other: &Accumulator) {
        if other.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let tmp = self.sx / self.n - other.sx / other.n;
        self.sxx += other.sxx + self.n * other.n * tmp * tmp / n;
        self.sx += other.sx;
        self.n = n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.minmax_exact &= other.minmax_exact;
    }

    pub fn from_stats(s: &StatsAgg) -> Accumulator {
        let sum = &s.summary;
        if sum.n == 0 {
            return Accumulator::default();
        }
        Accumulator {
            n: sum.n as f64,
            sx: sum.mean * sum.n as f64,
            sxx: sum.m2,
            min: sum.min,
            max: sum.max,
            minmax_exact: s.minmax_exact,
        }
    }

    /// The summary, or an error when the sums overflowed float8.
    pub fn to_stats(&self) -> Result<StatsAgg> {
        if self.n == 0.0 {
            return Ok(StatsAgg::new());
        }
        let mean = self.sx / self.n;
        if !mean.is_finite() || !self.sxx.is_finite() {
            return Err(VigilError::out_of_range(
                "value out of range: the statsagg mean or variance overflows float8",
            ));
        }
        Ok(StatsAgg {
            summary: StatsSummary {
                n: self.n as u64,
                mean,
                m2: self.sxx,
                min: self.min,
                max: self.max,
            },
            minmax_exact: self.minmax_exact,
        })
    }

    /// Little-endian fields plus the flag: the parallel-aggregate serial form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        for v in [self.n, self.sx, self.sxx, self.min, self.max] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(self.minmax_exact));
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Accumulator> {
        if bytes.len() != 41 || bytes[40] > 1 {
            return Err(VigilError::invalid(format!(
                "stats_agg state must be 41 bytes with a 0/1 flag, got {} bytes",
                bytes.len()
            )));
        }
        let f = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            f64::from_le_bytes(w)
        };
        let acc = Accumulator {
            n: f(0),
            sx: f(1),
            sxx: f(2),
            min: f(3),
            max: f(4),
            minmax_exact: bytes[40] == 1,
        };
        // Decoded states come from clients too (stats_state's input and
        // receive functions, Citus): refuse what no values could produce,
        // as statsagg's input does.
        let whole = acc.n.is_finite()
            && acc.n >= 0.0
            && acc.n.fract() == 0.0
            && acc.n <= 9.007_199_254_740_992e15;
        if !whole {
            return Err(VigilError::invalid(format!(
                "stats_agg state count must be a whole number of values, got {}",
                acc.n
            )));
        }
        if acc.n == 0.0 {
            return Ok(Accumulator::default());
        }
        // Sums may have overflowed to ±Infinity accumulating huge values
        // (the final function reports that, 22003); NaN they never are.
        let sane =
            !acc.sx.is_nan() && !acc.sxx.is_nan() && acc.min.is_finite() && acc.max.is_finite();
        if !sane || acc.sxx < 0.0 || acc.min > acc.max {
            return Err(VigilError::invalid(
                "stats_agg state must have sums that are numbers, a non-negative sum of squares and finite min <= max",
            ));
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(values: &[f64]) -> Accumulator {
        let mut a = Accumulator::default();
        for &v in values {
            a.accum(v).unwrap();
        }
        a
    }

    fn two_pass(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let m2 = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
        (mean, m2)
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }

    /// 1e9 + noise in [0, 1000): float8 sums keep about 1e-11 relative
    /// variance accuracy there (with noise below 1, no float8 method keeps
    /// 1e-9; see stats/tests.rs).
    #[test]
    fn matches_two_pass_on_large_offsets() {
        let values: Vec<f64> = (0..10_000)
            .map(|i| 1e9 + ((i * 7919) % 1000) as f64)
            .collect();
        let s = acc(&values).to_stats().unwrap();
        let (mean, m2) = two_pass(&values);
        assert!(rel(s.summary.mean, mean) < 1e-12);
        assert!(rel(s.summary.m2, m2) < 1e-9, "{} vs {m2}", s.summary.m2);
        assert_eq!(s.summary.n, 10_000);
        assert_eq!(s.min(), Some(1e9));
    }

    #[test]
    fn combine_equals_single_pass_and_agrees_with_welford() {
        let values: Vec<f64> = (0..5000)
            .map(|i| ((i * 31) % 977) as f64 * 1.5 - 300.0)
            .collect();
        let mut left = acc(&values[..1234]);
        left.combine(&acc(&values[1234..]));
        let whole = acc(&values).to_stats().unwrap();
        let merged = left.to_stats().unwrap();
        assert!(rel(merged.summary.m2, whole.summary.m2) < 1e-12);
        let mut welford = StatsSummary::new();
        for &v in &values {
            welford.accum(v).unwrap();
        }
        assert!(rel(whole.summary.m2, welford.m2) < 1e-9);
        assert!(rel(whole.summary.mean, welford.mean) < 1e-12);
    }

    #[test]
    fn rejects_non_finite_values_and_reports_overflow() {
        let mut a = Accumulator::default();
        assert!(a.accum(f64::NAN).unwrap_err().message.starts_with("value"));
        a.accum(1e308).unwrap();
        a.accum(1e308).unwrap();
        assert_eq!(
            a.to_stats().unwrap_err().kind,
            crate::error::ErrorKind::OutOfRange
        );
    }

    #[test]
    fn bytes_round_trip_and_empty_state() {
        let a = acc(&[1.0, 2.5, -3.0]);
        assert_eq!(Accumulator::from_bytes(&a.to_bytes()).unwrap(), a);
        assert!(Accumulator::from_bytes(&[0u8; 7]).is_err());
        assert_eq!(Accumulator::default().to_stats().unwrap(), StatsAgg::new());
        let s = a.to_stats().unwrap();
        let back = Accumulator::from_stats(&s).to_stats().unwrap();
        assert!(rel(back.summary.m2, s.summary.m2) < 1e-15);
    }
}
