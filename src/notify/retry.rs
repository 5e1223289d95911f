//! What happens to a notification after one delivery attempt: sent, retried
//! later (capped exponential backoff with jitter, never before the
//! receiver's `Retry-After`), failed for good, or dead once its channel's
//! delivery deadline has passed (or the `vigil.max_attempts` safety bound).

use std::time::Duration;

/// First retry delay; doubles with every attempt.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// Longest backoff between two attempts: during a long outage the receiver
/// is still tried every 2.5 to 5 minutes, so it gets the backlog soon after
/// it recovers.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A receiver cannot push a retry further out than this with `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered with this status (and maybe a `Retry-After`).
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// An SMTP server's final reply to a message (email channels): 2xx
    /// accepted, 4xx "later", 5xx refused.
    Smtp { code: u16, message: String },
    /// No answer within the hard time limit.
    Timeout,
    /// Could not connect, or the connection broke before an answer.
    Connection(String),
    /// The request could not even be built or sent (bad header value, payload
    /// too large for pg_notify ...): retrying cannot help.
    Invalid(String),
}

/// The row's next state.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Sent,
    Retry { delay: Duration, error: String },
    Failed { error: String },
    Dead { error: String },
}

impl Decision {
    /// The `vigil.notification_status` label the row takes.
    pub fn status(&self) -> &'static str {
        match self {
            Decision::Sent => "sent",
            Decision::Retry { .. } => "pending",
            Decision::Failed { .. } => "failed",
            Decision::Dead { .. } => "dead",
        }
    }
}

/// 429, 408 and every 5xx are the receiver saying "later".
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// Backoff before attempt `attempts + 1`: `BASE_DELAY * 2^(attempts-1)`
/// capped at `MAX_DELAY`, with "equal jitter" — half fixed, half random — so
/// many rows failing together spread out but never retry sooner than half
/// the nominal delay. `jitter` is uniform in [0, 1).
pub fn backoff(attempts: i32, jitter: f64) -> Duration {
    let exp = attempts.clamp(1, 31) - 1;
    let nominal = BASE_DELAY
        .checked_mul(1u32 << exp.min(20))
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    let half = nominal / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Where a row stands when its attempt's outcome is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Attempts made, this one included.
    pub attempts: i32,
    /// `vigil.max_attempts`: a safety bound, normally far beyond the deadline.
    pub max_attempts: i32,
    /// Time left until the row's delivery deadline (zero once it has passed).
    pub left: Duration,
}

/// Decides the row's fate. A retryable failure is retried until the
/// deadline: the last retry is scheduled at the deadline itself, so a row
/// is dead only after an attempt at or past its deadline failed (or when
/// the receiver's `Retry-After` asks for a retry only after it).
pub fn decide(attempt: &Attempt, budget: Budget, jitter: f64) -> Decision {
    let (error, retry_after) = match attempt {
        Attempt::Http { status, .. } if (200..300).contains(status) => return Decision::Sent,
        Attempt::Http {
            status,
            retry_after,
            body,
        } => {
            let error = http_error(*status, body);
            if !is_retryable_status(*status) {
                return Decision::Failed { error };
            }
            (error, *retry_after)
        }
        Attempt::Smtp { code, .. } if (200..300).contains(code) => return Decision::Sent,
        Attempt::Smtp { code, message } => {
            let message: String = message.chars().take(200).collect();
            let error = format!("SMTP {code}: {}", message.trim());
            if !(400..500).contains(code) {
                return Decision::Failed { error };
            }
            (error, None)
        }
        Attempt::Timeout => ("timed out".to_string(), None),
        Attempt::Connection(e) => (format!("connection error: {e}"), None),
        Attempt::Invalid(e) => return Decision::Failed { error: e.clone() },
    };
    let attempts = budget.attempts;
    if budget.left.is_zero() {
        return Decision::Dead {
            error: format!(
                "{error} (gave up after {attempts} attempts: the delivery deadline passed)"
            ),
        };
    }
    if attempts >= budget.max_attempts {
        return Decision::Dead {
            error: format!("{error} (gave up after {attempts} attempts: vigil.max_attempts)"),
        };
    }
    let not_before = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
    if not_before > budget.left {
        return Decision::Dead {
            error: format!(
                "{error} (gave up after {attempts} attempts: Retry-After {} s is past the delivery deadline)",
                not_before.as_secs()
            ),
        };
    }
    let delay = backoff(attempts, jitter).max(not_before).min(budget.left);
    Decision::Retry { delay, error }
}

fn http_error(status: u16, body: &str) -> String {
    let body: String = body.chars().take(200).collect();
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date in any of
/// RFC 9110's forms (`Sun, 06 Nov 1994 08:49:37 GMT`, the RFC 850 and
/// asctime forms) read against `now_unix` seconds. A date
/// in the past means "now". Anything else is ignored (None).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs((at - now_unix).max(0) as u64))
}

/// An HTTP-date in any of RFC 9110's three forms (IMF-fixdate, RFC 850,
/// asctime), by the `httpdate` crate, as Unix seconds.
fn parse_http_date(s: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(s).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// A small, fast PRNG for jitter (xorshift64*): the worker needs spread, not
/// cryptographic quality, and one less dependency.
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn sample(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with a day left before its deadline.
    fn day(attempts: i32, max_attempts: i32) -> Budget {
        Budget {
            attempts,
            max_attempts,
            left: Duration::from_secs(86_400),
        }
    }

    fn http(status: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Http {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
        }
    }

    #[test]
    fn two_hundreds_are_sent() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(decide(&http(s, None), day(1, 5), 0.5), Decision::Sent);
        }
    }

    #[test]
    fn client_errors_fail_without_retry() {
        for s in [400, 401, 403, 404, 410, 413, 422] {
            let d = decide(&http(s, None), day(1, 5), 0.5);
            assert_eq!(d.status(), "failed", "status {s}");
        }
        let d = decide(
            &Attempt::Http {
                status: 400,
                retry_after: None,
                body: "invalid_payload".into(),
            },
            day(1, 5),
            0.0,
        );
        assert_eq!(
            d,
            Decision::Failed {
                error: "HTTP 400: invalid_payload".into()
            }
        );
    }

    #[test]
    fn server_errors_throttling_timeouts_and_refusals_retry() {
        for a in [
            http(500, None),
            http(502, None),
            http(503, None),
            http(429, None),
            http(408, None),
            Attempt::Timeout,
            Attempt::Connection("refused".into()),
        ] {
            assert_eq!(decide(&a, day(1, 5), 0.5).status(), "pending", "{a:?}");
        }
    }

    #[test]
    fn retryable_error_past_the_deadline_is_dead_and_keeps_the_error() {
        let past = Budget {
            attempts: 40,
            max_attempts: 10_000,
            left: Duration::ZERO,
        };
        assert_eq!(
            decide(&http(503, None), past, 0.5),
            Decision::Dead {
                error: "HTTP 503 (gave up after 40 attempts: the delivery deadline passed)".into()
            }
        );
        let d = decide(&Attempt::Connection("refused".into()), past, 0.5);
        assert_eq!(d.status(), "dead");
        // Past the deadline, success and rejections are what they always are.
        assert_eq!(decide(&http(200, None), past, 0.5), Decision::Sent);
        assert_eq!(decide(&http(404, None), past, 0.5).status(), "failed");
    }

    #[test]
    fn max_attempts_still_bounds_retries_before_the_deadline() {
        assert_eq!(
            decide(&http(503, None), day(5, 5), 0.5),
            Decision::Dead {
                error: "HTTP 503 (gave up after 5 attempts: vigil.max_attempts)".into()
            }
        );
        assert_eq!(decide(&http(503, None), day(4, 5), 0.5).status(), "pending");
    }

    #[test]
    fn the_last_retry_is_scheduled_at_the_deadline() {
        let near = Budget {
            attempts: 12,
            max_attempts: 10_000,
            left: Duration::from_secs(7),
        };
        assert_eq!(
            decide(&http(502, None), near, 0.9),
            Decision::Retry {
                delay: Duration::from_secs(7),
                error: "HTTP 502".into()
            }
        );
        // A Retry-After that still fits is honoured exactly ...
        let d = decide(&http(429, Some(7)), near, 0.0);
        assert!(matches!(d, Decision::Retry { delay, .. } if delay == Duration::from_secs(7)));
        // ... one past the deadline means no retry can be both allowed and in time.
        assert_eq!(
            decide(&http(429, Some(8)), near, 0.0),
            Decision::Dead {
                error: "HTTP 429 (gave up after 12 attempts: Retry-After 8 s is past the delivery deadline)"
                    .into()
            }
        );
    }

    /// Replays a receiver that fails every attempt, on a simulated clock,
    /// with `decide` scheduling each retry; returns the attempt times.
    fn outage(deadline: Duration, jitter: f64) -> (Vec<Duration>, Decision) {
        let mut now = Duration::ZERO;
        let mut times = Vec::new();
        for attempts in 1.. {
            times.push(now);
            let budget = Budget {
                attempts,
                max_attempts: 1_000_000,
                left: deadline.saturating_sub(now),
            };
            match decide(&http(503, None), budget, jitter) {
                Decision::Retry { delay, .. } => now += delay,
                end => return (times, end),
            }
        }
        unreachable!()
    }

    #[test]
    fn a_long_outage_is_retried_under_the_cap_until_the_deadline() {
        let deadline = Duration::from_secs(24 * 3600);
        for jitter in [0.0, 0.37, 0.999] {
            let (times, end) = outage(deadline, jitter);
            assert_eq!(end.status(), "dead");
            assert_eq!(
                times.last(),
                Some(&deadline),
                "the last attempt is at the deadline"
            );
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(gap <= MAX_DELAY && !gap.is_zero(), "gap {gap:?}");
            }
            // The default deadline means hundreds of attempts, every 2.5-5
            // minutes once the backoff reached the cap.
            assert!(
                (280..=600).contains(&times.len()),
                "{} attempts",
                times.len()
            );
        }
        // The seconds-long deadline the e2e test uses: a handful of attempts.
        let (times, end) = outage(Duration::from_secs(2), 0.5);
        assert_eq!(end.status(), "dead");
        assert_eq!(times.last(), Some(&Duration::from_secs(2)));
        assert!(times.len() <= 4, "{times:?}");
    }

    #[test]
    fn a_short_outage_is_delivered_not_dead() {
        // 8 minutes of 503s (what used to exhaust the 10 attempts), then 200.
        let outage_ends = Duration::from_secs(8 * 60);
        let mut now = Duration::ZERO;
        for attempts in 1.. {
            let attempt = if now < outage_ends {
                http(503, None)
            } else {
                http(200, None)
            };
            let budget = Budget {
                attempts,
                max_attempts: 10_000,
                left: Duration::from_secs(86_400).saturating_sub(now),
            };
            match decide(&attempt, budget, 0.5) {
                Decision::Retry { delay, .. } => now += delay,
                Decision::Sent => {
                    assert!(now < outage_ends + MAX_DELAY, "sent {now:?} in");
                    return;
                }
                other => panic!("{other:?} after {attempts} attempts"),
            }
        }
    }

    #[test]
    fn invalid_requests_fail_at_once() {
        let d = decide(
            &Attempt::Invalid("payload too large".into()),
            day(1, 5),
            0.5,
        );
        assert_eq!(
            d,
            Decision::Failed {
                error: "payload too large".into()
            }
        );
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        let top = backoff(1, 0.999_999);
        assert!(
            top > Duration::from_millis(999) && top < Duration::from_secs(1),
            "{top:?}"
        );
        assert_eq!(backoff(2, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(4, 0.5), Duration::from_secs(6));
        assert_eq!(backoff(30, 1.0), MAX_DELAY);
        assert_eq!(backoff(i32::MAX, 0.0), MAX_DELAY / 2);
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn retry_never_comes_before_retry_after() {
        let d = decide(&http(429, Some(2)), day(1, 5), 0.0);
        assert_eq!(
            d,
            Decision::Retry {
                delay: Duration::from_secs(2),
                error: "HTTP 429".into()
            }
        );
        // A longer backoff wins over a short Retry-After.
        let d = decide(&http(503, Some(1)), day(6, 10), 0.0);
        assert!(matches!(d, Decision::Retry { delay, .. } if delay == Duration::from_secs(16)));
        // A hostile Retry-After is capped.
        let d = decide(&http(429, Some(10_000_000)), day(1, 5), 0.0);
        assert!(matches!(d, Decision::Retry { delay, .. } if delay == MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2", 0), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", 0),
            Some(Duration::from_secs(120))
        );
        // 1994-11-06T08:49:37Z is 784111777.
        let now = 784_111_777 - 30;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 100),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            Some(Duration::ZERO)
        );
        // RFC 9110's two obsolete forms, which recipients must accept.
        for obsolete in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(
                parse_retry_after(obsolete, now),
                Some(Duration::from_secs(30)),
                "{obsolete}"
            );
        }
        for bad in [
            "",
            "-1",
            "soon",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn jitter_is_uniform_enough_and_in_range() {
        let mut j = Jitter::new(42);
        let xs: Vec<f64> = (0..10_000).map(|_| j.sample()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!(xs.iter().filter(|x| **x < 0.1).count() > 800);
    }
}
