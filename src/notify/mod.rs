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
mod security_tests;
