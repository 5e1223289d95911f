//! Notifications: channels (Slack, webhooks, pg_notify, PagerDuty, Teams,
//! Alertmanager, email), the durable outbox
//! `vigil.notifications`, payload formatting, and the worker's delivery with
//! retries. Pure parts (`channel`, `payload`, `retry`, `ratelimit`, `http`)
//! have no pgrx imports; `outbox`, `deliver` and `sql` are the database side.

pub mod channel;
pub(crate) mod deliver;
pub mod http;
pub mod mail;
mod outbox;
pub mod payload;
pub mod providers;
pub mod ratelimit;
pub mod retry;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;

#[cfg(any(test, feature = "pg_test"))]
mod security_tests;

/// The events of an alert a message tells of (the payload builders').
pub const ALERT_EVENTS: [&str; 8] = [
    "new",
    "escalated",
    "acknowledged",
    "resolved",
    "dismissed",
    "expired",
    "test",
    "action",
];

/// The other events a queued notification carries: a group's message, an
/// escalation step, an Alertmanager resend.
pub const QUEUE_EVENTS: [&str; 3] = ["group", "escalation", "resend"];

/// Whether `event` is one a row of `vigil.notifications` may carry (its
/// CHECK, through `vigil._is_notification_event`): the one list.
pub fn is_notification_event(event: &str) -> bool {
    ALERT_EVENTS.contains(&event) || QUEUE_EVENTS.contains(&event)
}
