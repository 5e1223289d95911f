//! The value of SQL type `vigil.statsagg`: a [`StatsSummary`] plus whether its
//! min/max are still exact. Removing the current extreme (a row deleted from a
//! rollup) leaves min/max unknown until they are recomputed; SQL then reads
//! them as NULL rather than a stale number.

use super::StatsSummary;
use crate::error::{Result, VigilError};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatsAgg {
    pub summary: StatsSummary,
    pub minmax_exact: bool,
}

const FLAG_MINMAX_STALE: u8 = 1;
const STALE_SUFFIX: &str = ",minmax:stale)";

impl StatsAgg {
    pub fn new() -> Self {
        StatsAgg {
            summary: StatsSummary::new(),
            minmax_exact: true,
        }
    }

    pub fn combine(&self, other: &StatsAgg) -> Result<StatsAgg> {
        Ok(StatsAgg {
            summary: self.summary.combine(&other.summary)?,
            minmax_exact: self.minmax_exact && other.minmax_exact,
        })
    }

    pub fn remove(&mut self, x: f64) -> Result<()> {
        let stale = self.summary.remove(x)?;
        self.minmax_exact = self.summary.n == 0 || (self.minmax_exact && !stale);
        Ok(())
    }

    pub fn subtract(&self, other: &StatsAgg) -> Result<StatsAgg> {
        let (summary, stale) = self.summary.subtract(&other.summary)?;
        Ok(StatsAgg {
            summary,
            minmax_exact: summary.n == 0 || (self.minmax_exact && !stale),
        })
    }

    /// The same summary with its min/max set to the given (recomputed)
    /// extremes, exact again.
    pub fn with_extremes(&self, min: f64, max: f64) -> Result<StatsAgg> {
        if self.summary.n == 0 || !min.is_finite() || !max.is_finite() || min > max {
            return Err(VigilError::invalid(format!(
                "extremes must be finite with min <= max for a non-empty summary, got min {min}, max {max}"
            )));
        }
        let mut out = *self;
        out.summary.min = min;
        out.summary.max = max;
        out.minmax_exact = true;
        if min == max {
            // Every value left is this one: the spread is exactly zero and
            // the mean exactly the value, whatever rounding the removals
            // that led here left behind.
            out.summary.mean = min;
            out.summary.m2 = 0.0;
        } else {
            out.summary.mean = out.summary.mean.clamp(min, max);
        }
        Ok(out)
    }

    pub fn min(&self) -> Option<f64> {
        self.summary.min().filter(|_| self.minmax_exact)
    }

    pub fn max(&self) -> Option<f64> {
        self.summary.max().filter(|_| self.minmax_exact)
    }

    /// One flag byte, then [`StatsSummary::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + super::STATS_BYTES);
        out.push(if self.minmax_exact {
            0
        } else {
            FLAG_MINMAX_STALE
        });
        out.extend_from_slice(&self.summary.to_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<StatsAgg> {
        let (&flags, rest) = bytes
            .split_first()
            .ok_or_else(|| VigilError::invalid("statsagg binary data is empty"))?;
        if flags & !FLAG_MINMAX_STALE != 0 {
            return Err(VigilError::invalid(format!(
                "statsagg binary data has unknown flags {flags:#04x}"
            )));
        }
        Ok(StatsAgg {
            summary: StatsSummary::from_bytes(rest)?,
            minmax_exact: flags & FLAG_MINMAX_STALE == 0,
        })
    }

    /// Parses the `Display` form: the summary's text, with `,minmax:stale`
    /// before the closing parenthesis when min/max are unknown.
    pub fn parse(s: &str) -> Result<StatsAgg> {
        let trimmed = s.trim();
        match trimmed.strip_suffix(STALE_SUFFIX) {
            Some(head) => Ok(StatsAgg {
                summary: StatsSummary::parse(&format!("{head})"))?,
                minmax_exact: false,
            }),
            None => Ok(StatsAgg {
                summary: StatsSummary::parse(trimmed)?,
                minmax_exact: true,
            }),
        }
    }
}

impl fmt::Display for StatsAgg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.summary.to_string();
        if self.minmax_exact {
            f.write_str(&text)
        } else {
            write!(f, "{}{STALE_SUFFIX}", &text[..text.len() - 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(values: &[f64]) -> StatsAgg {
        let mut a = StatsAgg::new();
        for &v in values {
            a.summary.accum(v).unwrap();
        }
        a
    }

    #[test]
    fn removing_an_extreme_makes_min_max_unknown() {
        let mut a = agg(&[1.0, 2.0, 3.0]);
        a.remove(2.0).unwrap();
        assert_eq!((a.min(), a.max()), (Some(1.0), Some(3.0)));
        a.remove(3.0).unwrap();
        assert_eq!((a.min(), a.max()), (None, None));
        assert_eq!(a.summary.num_vals(), 1);
        // once empty, nothing is stale any more
        a.remove(1.0).unwrap();
        assert!(a.minmax_exact);
    }

    #[test]
    fn stale_flag_survives_bytes_and_text() {
        let mut a = agg(&[1.5, 2.25, -7.0]);
        a.remove(-7.0).unwrap();
        assert!(!a.minmax_exact);
        assert_eq!(StatsAgg::from_bytes(&a.to_bytes()).unwrap(), a);
        let text = a.to_string();
        assert!(text.ends_with(",minmax:stale)"), "{text}");
        assert_eq!(StatsAgg::parse(&text).unwrap(), a);
        let exact = agg(&[4.0]);
        assert_eq!(StatsAgg::parse(&exact.to_string()).unwrap(), exact);
    }

    #[test]
    fn combine_of_a_stale_summary_stays_stale() {
        let mut a = agg(&[1.0, 9.0]);
        a.remove(9.0).unwrap();
        let b = agg(&[5.0]);
        assert!(!a.combine(&b).unwrap().minmax_exact);
        assert!(b.combine(&agg(&[6.0])).unwrap().minmax_exact);
    }

    #[test]
    fn bad_bytes_are_rejected() {
        assert!(StatsAgg::from_bytes(&[]).is_err());
        let mut bytes = agg(&[1.0]).to_bytes();
        bytes[0] = 0x80;
        assert!(StatsAgg::from_bytes(&bytes)
            .unwrap_err()
            .message
            .contains("unknown flags"));
        assert!(StatsAgg::from_bytes(&bytes[..10]).is_err());
    }
}
