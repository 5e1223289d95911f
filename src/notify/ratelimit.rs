//! Per-channel send budgets (token buckets) kept by the worker, so a Slack
//! webhook gets about one message a second however deep the queue is. The
//! worker claims no more rows for a channel than its bucket holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A burst of at most one second's worth (and at least one message).
    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity());
        self.at = now;
    }
}

#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: HashMap<i64, Bucket>,
}

impl RateLimits {
    /// Brings the buckets in line with the channels' current limits
    /// (`(channel id, max_per_second)`), dropping channels no longer limited,
    /// and returns how many rows each limited channel may claim now.
    pub fn allowances(&mut self, limits: &[(i64, f64)], now: Instant) -> Vec<(i64, i32)> {
        self.buckets
            .retain(|id, _| limits.iter().any(|(l, _)| l == id));
        limits
            .iter()
            .filter(|(_, rate)| rate.is_finite() && *rate > 0.0)
            .map(|&(id, rate)| {
                let bucket = self.buckets.entry(id).or_insert(Bucket {
                    rate,
                    tokens: rate.max(1.0),
                    at: now,
                });
                bucket.rate = rate;
                bucket.refill(now);
                (id, bucket.tokens.floor().min(i32::MAX as f64) as i32)
            })
            .collect()
    }

    /// Spends one token per row claimed for `channel`.
    pub fn spend(&mut self, channel: i64, rows: usize) {
        if let Some(b) = self.buckets.get_mut(&channel) {
            b.tokens = (b.tokens - rows as f64).max(0.0);
        }
    }

    /// How long until some limited channel can send again (None when every
    /// limited channel already has a token, or there are none).
    pub fn next_token_in(&self, now: Instant) -> Option<Duration> {
        self.buckets
            .values()
            .filter_map(|b| {
                let mut b = b.clone();
                b.refill(now);
                (b.tokens < 1.0).then(|| {
                    Duration::try_from_secs_f64((1.0 - b.tokens) / b.rate).unwrap_or(Duration::MAX)
                })
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_second_channel_sends_one_then_waits_a_second() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        assert_eq!(rl.allowances(&[(1, 1.0)], t0), vec![(1, 1)]);
        rl.spend(1, 1);
        assert_eq!(rl.allowances(&[(1, 1.0)], t0), vec![(1, 0)]);
        let wait = rl.next_token_in(t0).unwrap();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(
            rl.allowances(&[(1, 1.0)], t0 + Duration::from_millis(500)),
            vec![(1, 0)]
        );
        assert_eq!(
            rl.allowances(&[(1, 1.0)], t0 + Duration::from_millis(1000)),
            vec![(1, 1)]
        );
    }

    #[test]
    fn burst_is_capped_at_one_second_of_rate() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        assert_eq!(rl.allowances(&[(1, 20.0)], t0), vec![(1, 20)]);
        rl.spend(1, 20);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(rl.allowances(&[(1, 20.0)], later), vec![(1, 20)]);
        rl.spend(1, 5);
        assert_eq!(
            rl.allowances(&[(1, 20.0)], later + Duration::from_millis(100)),
            vec![(1, 17)]
        );
    }

    #[test]
    fn slow_rates_still_allow_one_message() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        assert_eq!(rl.allowances(&[(9, 0.1)], t0), vec![(9, 1)]);
        rl.spend(9, 1);
        let wait = rl.next_token_in(t0).unwrap();
        assert!((wait.as_secs_f64() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn absurdly_slow_rates_do_not_overflow_the_wait() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        rl.allowances(&[(1, 1e-300)], t0);
        rl.spend(1, 1);
        assert_eq!(rl.next_token_in(t0), Some(Duration::MAX));
    }

    #[test]
    fn channels_no_longer_limited_are_forgotten_and_bad_rates_ignored() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        rl.allowances(&[(1, 1.0), (2, 1.0)], t0);
        rl.spend(1, 1);
        rl.spend(2, 1);
        assert_eq!(rl.allowances(&[(2, 1.0)], t0), vec![(2, 0)]);
        assert_eq!(rl.buckets.len(), 1);
        assert!(rl.allowances(&[(3, f64::NAN), (4, 0.0)], t0).is_empty());
        assert_eq!(rl.next_token_in(t0), None);
    }
}
