//! The worker's side of the `vigil.notifications` outbox: lease due rows
//! (`FOR UPDATE SKIP LOCKED`, committed before any HTTP), then record what
//! happened in a second transaction. Every function here runs inside a
//! transaction the worker opened; HTTP never does.

use pgrx::prelude::*;
use pgrx::spi::SpiResult;

/// A leased row, as plain values for the HTTP side.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub channel_id: i64,
    pub kind: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The channel's `options` (JSON text; pagerduty: its routing key).
    pub options: String,
    pub payload: String,
    pub idempotency_key: String,
    pub attempts: i32,
    /// The row's delivery deadline (its creation or last replay plus the
    /// channel's `delivery_deadline`), in milliseconds since the Unix epoch.
    pub deadline_unix_ms: f64,
}

/// The result of one row's attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: i64,
    /// `sent`, `pending` (retry), `failed` or `dead`.
    pub status: &'static str,
    pub retry_in_ms: f64,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

/// Rows a previous worker left in `sending` (it crashed, or the server
/// restarted mid-send) are due at once: only one worker exists per cluster,
/// so nobody else can be sending them. Returns how many.
pub fn requeue_interrupted() -> SpiResult<i64> {
    Spi::connect_mut(|c| {
        let t = c.update(
            "UPDATE vigil.notifications
             SET status = 'pending', next_attempt_at = now(), lease_expires_at = NULL,
                 last_error = 'interrupted: the worker stopped while sending; sent again',
                 updated_at = now()
             WHERE status = 'sending'",
            None,
            &[],
        )?;
        Ok(t.len() as i64)
    })
}

/// `(channel id, max_per_second)` of enabled channels with a rate limit.
pub fn rate_limits() -> SpiResult<Vec<(i64, f64)>> {
    Spi::connect(|c| {
        c.select(
            "SELECT id, max_per_second FROM vigil.channels
             WHERE enabled AND max_per_second IS NOT NULL",
            None,
            &[],
        )?
        .map(|row| {
            Ok((
                row.get::<i64>(1)?.unwrap_or(0),
                row.get::<f64>(2)?.unwrap_or(0.0),
            ))
        })
        .collect()
    })
}

/// Leases up to `batch` due rows per enabled channel (fewer for channels in
/// `allowances`), oldest due first but test messages after every other due
/// row, skipping rows another transaction holds.
pub fn claim(batch: i32, lease_ms: i64, allowances: &[(i64, i32)]) -> SpiResult<Vec<Claimed>> {
    let (ids, allowed): (Vec<i64>, Vec<i32>) = allowances.iter().copied().unzip();
    Spi::connect_mut(|c| {
        let rows = c.update(
            "WITH lim AS (
                 SELECT * FROM unnest($1::bigint[], $2::int[]) AS l(channel_id, allowance)
             ), due AS (
                 SELECT d.id
                 FROM vigil.channels ch
                 LEFT JOIN lim ON lim.channel_id = ch.id
                 CROSS JOIN LATERAL (
                     SELECT n.id FROM vigil.notifications n
                     WHERE n.channel_id = ch.id
                       AND n.status IN ('pending', 'sending')
                       AND n.next_attempt_at <= now()
                     -- Test messages (vigil.test_channel) never go ahead of alerts.
                     ORDER BY n.event = 'test', n.next_attempt_at
                     LIMIT least($3, coalesce(lim.allowance, $3))
                     FOR UPDATE OF n SKIP LOCKED
                 ) d
                 WHERE ch.enabled
             )
             UPDATE vigil.notifications n
             SET status = 'sending',
                 attempts = n.attempts + 1,
                 lease_expires_at = now() + $4 * interval '1 millisecond',
                 next_attempt_at = now() + $4 * interval '1 millisecond',
                 updated_at = now()
             FROM due, vigil.channels ch
             WHERE n.id = due.id AND ch.id = n.channel_id
             RETURNING n.id, n.channel_id, ch.kind, ch.url, ch.headers::text, n.payload::text,
                       n.idempotency_key, n.attempts,
                       extract(epoch FROM coalesce(n.replayed_at, n.created_at) + ch.delivery_deadline)::float8
                           * 1000,
                       ch.options::text",
            None,
            &[ids.into(), allowed.into(), batch.into(), lease_ms.into()],
        )?;
        rows.map(|row| {
            let headers: String = row.get(5)?.unwrap_or_default();
            Ok(Claimed {
                id: row.get(1)?.unwrap_or_default(),
                channel_id: row.get(2)?.unwrap_or_default(),
                kind: row.get(3)?.unwrap_or_default(),
                url: row.get(4)?.unwrap_or_default(),
                headers: header_pairs(&headers),
                payload: row.get(6)?.unwrap_or_default(),
                idempotency_key: row.get(7)?.unwrap_or_default(),
                attempts: row.get(8)?.unwrap_or_default(),
                deadline_unix_ms: row.get(9)?.unwrap_or_default(),
                options: row.get(10)?.unwrap_or_default(),
            })
        })
        .collect()
    })
}

/// Channel headers are a JSON object of strings (checked when stored).
fn header_pairs(json: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Delivers a `pg_notify` channel's row; NOTIFY is sent when this
/// transaction commits, together with the row becoming `sent`.
pub fn pg_notify(channel: &str, payload: &str) -> SpiResult<()> {
    Spi::connect_mut(|c| {
        c.update(
            "SELECT pg_catalog.pg_notify($1, $2)",
            None,
            &[channel.into(), payload.into()],
        )?;
        Ok(())
    })
}

/// An outcome as recorded: the row's new status and, once sent, seconds
/// from its creation (or last replay) to `sent_at`.
pub struct Recorded {
    pub id: i64,
    pub status: String,
    pub latency_s: Option<f64>,
}

/// Writes every outcome; rows no longer in `sending` (replayed or deleted
/// meanwhile) are left alone and not returned.
pub fn record(outcomes: &[Outcome]) -> SpiResult<Vec<Recorded>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = outcomes.iter().map(|o| o.id).collect();
    let statuses: Vec<String> = outcomes.iter().map(|o| o.status.to_string()).collect();
    let delays: Vec<f64> = outcomes.iter().map(|o| o.retry_in_ms).collect();
    let http: Vec<Option<i32>> = outcomes.iter().map(|o| o.http_status).collect();
    let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.error.clone()).collect();
    Spi::connect_mut(|c| {
        c.update(
            "UPDATE vigil.notifications n
             SET status = r.status::vigil.notification_status,
                 next_attempt_at = CASE WHEN r.status = 'pending'
                     THEN clock_timestamp() + r.delay_ms * interval '1 millisecond'
                     ELSE n.next_attempt_at END,
                 lease_expires_at = NULL,
                 last_http_status = r.http_status,
                 last_error = r.error,
                 sent_at = CASE WHEN r.status = 'sent' THEN clock_timestamp() END,
                 updated_at = clock_timestamp()
             FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::int[], $5::text[])
                  AS r(id, status, delay_ms, http_status, error)
             WHERE n.id = r.id AND n.status = 'sending'
             RETURNING n.id, r.status,
                       extract(epoch FROM n.sent_at - coalesce(n.replayed_at, n.created_at))::float8",
            None,
            &[
                ids.into(),
                statuses.into(),
                delays.into(),
                http.into(),
                errors.into(),
            ],
        )?
        .map(|row| {
            Ok(Recorded {
                id: row.get(1)?.unwrap_or_default(),
                status: row.get(2)?.unwrap_or_default(),
                latency_s: row.get(3)?,
            })
        })
        .collect()
    })
}

/// Milliseconds until the earliest pending row of an enabled channel is due
/// (negative when one is overdue), or None when nothing is queued.
pub fn next_due_ms() -> SpiResult<Option<f64>> {
    // Rows due, and groups of grouped channels due for a flush.
    Spi::get_one(
        "SELECT extract(epoch FROM least(
             (SELECT min(n.next_attempt_at) FROM vigil.notifications n
              JOIN vigil.channels ch ON ch.id = n.channel_id AND ch.enabled
              WHERE n.status IN ('pending', 'sending')),
             (SELECT min(g.flush_at) FROM vigil.notification_groups g
              JOIN vigil.channels ch ON ch.id = g.channel_id AND ch.enabled
              WHERE g.flush_at IS NOT NULL),
             -- Events not folded into their groups yet: now.
             (SELECT min(e.at) FROM vigil.notification_group_events e),
             (SELECT min(e.next_at) FROM vigil.escalations e),
             -- Held notifications are re-checked every few seconds.
             (SELECT clock_timestamp() + interval '5 seconds'
              WHERE EXISTS (SELECT 1 FROM vigil.held_notifications)
                 OR EXISTS (SELECT 1 FROM vigil.notification_groups g WHERE g.held <> '{}'))
             ) - clock_timestamp())::float8 * 1000",
    )
}

/// Sends what silences and inhibitions no longer hold back
/// (`vigil._release_held`).
pub fn release_held() -> SpiResult<Option<i32>> {
    Spi::get_one("SELECT vigil._release_held()")
}

/// Runs the escalation steps that are due (`vigil._run_escalations`).
pub fn run_escalations() -> SpiResult<Option<i32>> {
    Spi::get_one("SELECT vigil._run_escalations()")
}

/// Re-posts open alerts to alertmanager channels that are due
/// (`vigil._resend_alertmanager`).
pub fn resend_alertmanager() -> SpiResult<Option<i32>> {
    Spi::get_one("SELECT vigil._resend_alertmanager()")
}

/// Turns the groups that are due into messages (`vigil._flush_groups`).
pub fn flush_groups() -> SpiResult<Option<i32>> {
    Spi::get_one("SELECT vigil._flush_groups()")
}
