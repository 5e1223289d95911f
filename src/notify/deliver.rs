//! One delivery round of the worker: lease due rows and commit, send them
//! over HTTP outside any transaction, then record the outcomes in a second
//! transaction. A crash between the two leaves the rows `sending`; they are
//! sent again (same Idempotency-Key) when the worker comes back.

use super::http::{Request, Sender};
use super::outbox::{self, Claimed, Outcome};
use super::ratelimit::RateLimits;
use super::retry::{self, Attempt, Budget, Decision, Jitter};
use crate::gucs;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// pg_notify's payload limit (8000 bytes including the terminating NUL).
const NOTIFY_MAX_BYTES: usize = 7999;
/// Shortest sleep when rows are due but could not be claimed (rate limit,
/// locked by someone else): avoids spinning.
const MIN_RECHECK: Duration = Duration::from_millis(10);
const LOCKED_RECHECK: Duration = Duration::from_millis(250);

/// What the worker lends the delivery loop, so this module needs nothing
/// of the worker's own: whether it has been asked to stop (checked between
/// batches and while a batch's requests are in flight) and its heartbeat
/// (beaten between the slices of a long backlog).
#[derive(Clone, Copy)]
pub struct WorkerHooks {
    pub stopping: fn() -> bool,
    pub heartbeat: fn(),
}

pub struct Delivery {
    hooks: WorkerHooks,
    sender: Option<Sender>,
    /// What `sender` was built from: the timeout, `vigil.allowed_internal_hosts`,
    /// and `vigil.ssl_ca_file` with the file's modification time (a replaced
    /// bundle is read again).
    sender_made_from: Option<(Duration, String, String, Option<SystemTime>)>,
    limits: RateLimits,
    jitter: Jitter,
    requeued: bool,
    /// When held notifications were last re-checked (`vigil._release_held`).
    released_at: Option<Instant>,
}

/// How often notifications held by silences and inhibitions are re-checked.
const RELEASE_EVERY: Duration = Duration::from_secs(5);

/// The certificates of `vigil.ssl_ca_file` (read again whenever the setting or
/// the file changes). A file that cannot be read or holds no certificate is
/// a WARNING naming it, once per change: HTTPS to public receivers goes on
/// with the public and system roots, and notifications to receivers behind
/// the private CA fail (certificate refused) until the file is fixed and
/// they are replayed.
fn extra_roots_of(ca_file: &str) -> Vec<reqwest::Certificate> {
    if ca_file.is_empty() {
        return Vec::new();
    }
    match std::fs::read(ca_file)
        .map_err(|e| e.to_string())
        .and_then(|pem| super::http::extra_roots(&pem))
    {
        Ok(roots) => {
            log!(
                "pg_vigil worker: trusting {} certificate(s) of vigil.ssl_ca_file \"{ca_file}\" for HTTPS and SMTP",
                roots.len()
            );
            roots
        }
        Err(e) => {
            ereport!(
                PgLogLevel::WARNING,
                PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_vigil worker: vigil.ssl_ca_file \"{ca_file}\" is not used: {e}")
            );
            Vec::new()
        }
    }
}

impl Delivery {
    pub fn new(hooks: WorkerHooks) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        Delivery {
            hooks,
            sender: None,
            sender_made_from: None,
            limits: RateLimits::default(),
            jitter: Jitter::new(seed),
            requeued: false,
            released_at: None,
        }
    }

    /// Drains every due row, then says how long the worker may sleep: until
    /// the next row is due, a rate-limited channel has a token, or `poll`.
    pub fn run(&mut self, poll: Duration) -> Duration {
        if !self.requeued {
            let n = BackgroundWorker::transaction(outbox::requeue_interrupted)
                .unwrap_or_else(|e| error!("pg_vigil worker: requeue: {e}"));
            if n > 0 {
                log!(
                    "pg_vigil worker: {n} notification(s) interrupted mid-send will be sent again"
                );
            }
            self.requeued = true;
        }
        let timeout = Duration::from_millis(gucs::http_timeout_ms() as u64);
        let allow_list = gucs::allowed_internal_hosts();
        let ca_file = gucs::ca_file();
        let ca_changed = (!ca_file.is_empty())
            .then(|| std::fs::metadata(&ca_file).and_then(|m| m.modified()).ok())
            .flatten();
        let wanted = (timeout, allow_list, ca_file, ca_changed);
        if self.sender.is_none() || self.sender_made_from.as_ref() != Some(&wanted) {
            let roots = extra_roots_of(&wanted.2);
            match Sender::with_policy(timeout, gucs::max_concurrency() as usize, &wanted.1, roots) {
                Ok(mut s) => {
                    if !wanted.2.is_empty() {
                        if let Ok(pem) = std::fs::read(&wanted.2) {
                            s.set_mail_roots(&pem);
                        }
                    }
                    self.sender = Some(s);
                    self.sender_made_from = Some(wanted);
                }
                Err(e) => {
                    warning!("pg_vigil worker: {e}");
                    return poll;
                }
            }
        }
        // Held notifications released (every few seconds), escalation steps
        // and groups that are due become outbox rows first, then go out
        // below. Each runs in a subtransaction: a failure is logged and
        // never stops the delivery of what is already queued.
        if self
            .released_at
            .is_none_or(|t| t.elapsed() >= RELEASE_EVERY)
        {
            self.released_at = Some(Instant::now());
            alerting_step("release held notifications", outbox::release_held);
        }
        alerting_step("escalations", outbox::run_escalations);
        alerting_step("flush groups", outbox::flush_groups);
        alerting_step("alertmanager resend", outbox::resend_alertmanager);
        // A long backlog is drained in slices of about one poll interval, so
        // the worker still reloads settings and heartbeats in between.
        let started = Instant::now();
        while !(self.hooks.stopping)() {
            if self.round() == 0 {
                break;
            }
            (self.hooks.heartbeat)();
            if started.elapsed() >= poll {
                return Duration::ZERO;
            }
        }
        let next = BackgroundWorker::transaction(outbox::next_due_ms)
            .unwrap_or_else(|e| error!("pg_vigil worker: next due: {e}"));
        match next {
            None => poll,
            Some(ms) if ms > 0.0 => poll.min(Duration::from_secs_f64(ms / 1000.0)),
            Some(_) => self
                .limits
                .next_token_in(Instant::now())
                .unwrap_or(LOCKED_RECHECK)
                .clamp(MIN_RECHECK, poll.max(MIN_RECHECK)),
        }
    }

    /// One claim–send–record cycle; returns how many rows it handled.
    fn round(&mut self) -> usize {
        let batch = gucs::batch_size();
        let concurrency = gucs::max_concurrency();
        let timeout_ms = i64::from(gucs::http_timeout_ms());
        // Long enough for the whole batch to go out at this concurrency.
        let lease_ms = timeout_ms
            * ((i64::from(batch) + i64::from(concurrency) - 1) / i64::from(concurrency) + 1)
            + 10_000;
        let now = Instant::now();
        let mut limits = std::panic::AssertUnwindSafe(&mut self.limits);
        let claimed = BackgroundWorker::transaction(move || {
            let allowances = limits.allowances(&outbox::rate_limits()?, now);
            outbox::claim(batch, lease_ms, &allowances)
        })
        .unwrap_or_else(|e| error!("pg_vigil worker: claim: {e}"));
        if claimed.is_empty() {
            return 0;
        }
        let mut per_channel: HashMap<i64, usize> = HashMap::new();
        for c in &claimed {
            *per_channel.entry(c.channel_id).or_default() += 1;
        }
        for (channel, n) in per_channel {
            self.limits.spend(channel, n);
        }
        let n = claimed.len();
        let kinds: HashMap<i64, String> = claimed.iter().map(|c| (c.id, c.kind.clone())).collect();
        let (notify, http): (Vec<Claimed>, Vec<Claimed>) =
            claimed.into_iter().partition(|c| c.kind == "pg_notify");
        let mut outcomes = std::panic::AssertUnwindSafe(self.send_http(http, concurrency as usize));
        BackgroundWorker::transaction(move || {
            for c in &notify {
                outcomes.push(notify_one(c)?);
            }
            // What was recorded counts in vigil.metrics once this commits.
            for r in outbox::record(&outcomes)? {
                if let Some(kind) = kinds.get(&r.id) {
                    crate::metrics::sql::delivered(kind, &r.status, r.latency_s);
                }
            }
            Ok::<(), pgrx::spi::SpiError>(())
        })
        .unwrap_or_else(|e| error!("pg_vigil worker: record: {e}"));
        n
    }

    fn send_http(&mut self, rows: Vec<Claimed>, concurrency: usize) -> Vec<Outcome> {
        let Some(sender) = self.sender.as_ref() else {
            return Vec::new();
        };
        let rows_by_id: HashMap<i64, (i32, i64, f64)> = rows
            .iter()
            .map(|c| (c.id, (c.attempts, c.channel_id, c.deadline_unix_ms)))
            .collect();
        let requests = rows
            .into_iter()
            .map(|c| Request {
                id: c.id,
                url: c.url,
                headers: c.headers,
                // PagerDuty's routing key is a secret the outbox never
                // holds: it joins the body only here, on its way out.
                body: if c.kind == "pagerduty" {
                    super::providers::with_routing_key(&c.payload, &c.options)
                } else {
                    c.payload.into_bytes()
                },
                idempotency_key: c.idempotency_key,
                mail_options: (c.kind == "email").then_some(c.options),
            })
            .collect();
        let max_attempts = gucs::max_attempts();
        sender
            .send_all(requests, concurrency, self.hooks.stopping)
            .into_iter()
            .map(|(id, attempt)| {
                let (attempts, channel, deadline) =
                    rows_by_id.get(&id).copied().unwrap_or((1, 0, 0.0));
                match attempt {
                    None => Outcome {
                        id,
                        status: "pending",
                        retry_in_ms: 0.0,
                        http_status: None,
                        error: Some("interrupted by worker shutdown; sent again".into()),
                    },
                    Some(a) => {
                        let budget = Budget {
                            attempts,
                            max_attempts,
                            left: until(deadline),
                        };
                        let decision = retry::decide(&a, budget, self.jitter.sample());
                        outcome(id, channel, attempts, &a, decision)
                    }
                }
            })
            .collect()
    }
}

/// Time from now until `unix_ms`, zero once it has passed. The worker's
/// clock is the server's, the one `created_at` was read from.
fn until(unix_ms: f64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    Duration::from_secs_f64(((unix_ms - now) / 1000.0).max(0.0))
}

/// Turns a decision into the row's new values, and logs it: every retry at
/// LOG with its attempt and when the next one is due, a row that ends
/// `dead` or `failed` at WARNING. The SQLSTATE says why: 08006 the receiver
/// could not take it in time, 08000 it refused it or the request could not
/// be made.
fn outcome(id: i64, channel: i64, attempts: i32, attempt: &Attempt, decision: Decision) -> Outcome {
    let http_status = match attempt {
        Attempt::Http { status, .. } => Some(i32::from(*status)),
        _ => None,
    };
    let status = decision.status();
    let (retry_in_ms, error) = match decision {
        Decision::Sent => (0.0, None),
        Decision::Retry { delay, error } => {
            ereport!(
                PgLogLevel::LOG,
                PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                format!(
                    "pg_vigil worker: notification {id} (channel {channel}) not delivered on attempt {attempts}, \
                     retrying in {:.1} s (next attempt at {}) until its delivery deadline: {error}",
                    delay.as_secs_f64(),
                    utc_after(delay)
                )
            );
            (delay.as_secs_f64() * 1000.0, Some(error))
        }
        Decision::Dead { error } => {
            ereport!(
                PgLogLevel::WARNING,
                PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                format!("pg_vigil worker: notification {id} (channel {channel}) is dead: {error}")
            );
            (0.0, Some(error))
        }
        Decision::Failed { error } => {
            ereport!(
                PgLogLevel::WARNING,
                PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION,
                format!("pg_vigil worker: notification {id} (channel {channel}) failed: {error}")
            );
            (0.0, Some(error))
        }
    };
    Outcome {
        id,
        status,
        retry_in_ms,
        http_status,
        error,
    }
}

/// The time `delay` from now, in UTC to the millisecond, for log lines.
fn utc_after(delay: Duration) -> String {
    let at = SystemTime::now() + delay;
    let micros = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}

fn notify_one(c: &Claimed) -> pgrx::spi::SpiResult<Outcome> {
    if c.payload.len() > NOTIFY_MAX_BYTES {
        let error = format!(
            "payload is {} bytes; pg_notify allows at most {NOTIFY_MAX_BYTES}",
            c.payload.len()
        );
        return Ok(outcome(
            c.id,
            c.channel_id,
            c.attempts,
            &Attempt::Invalid(error.clone()),
            Decision::Failed { error },
        ));
    }
    outbox::pg_notify(&c.url, &c.payload)?;
    Ok(Outcome {
        id: c.id,
        status: "sent",
        retry_in_ms: 0.0,
        http_status: None,
        error: None,
    })
}

/// One of the worker's alerting steps, in its own transaction and
/// subtransaction; a failure is a WARNING naming the step.
fn alerting_step(what: &str, step: fn() -> pgrx::spi::SpiResult<Option<i32>>) {
    let failure = match BackgroundWorker::transaction(|| crate::security::catching(step)) {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(e),
    };
    if let Some(e) = failure {
        warning!("pg_vigil worker: {what}: {e}");
    }
}
