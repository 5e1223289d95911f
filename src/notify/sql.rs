//! SQL wrappers of the notification module: payload builders, the channel
//! check behind `vigil.channels`' trigger, and the commit-time worker wake-up.

use crate::error::VigilError;
use crate::sqlglue::raise;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Events a notification can carry.
const EVENTS: [&str; 5] = ["new", "escalated", "resolved", "test", "action"];

fn check_event(event: &str) {
    if !EVENTS.contains(&event) {
        raise(VigilError::invalid(format!(
            "event must be one of {}, got \"{event}\"",
            EVENTS.join(", ")
        )));
    }
}

/// The Slack incoming-webhook message for an alert (`to_jsonb` of a
/// `vigil.alerts` row, optionally with `affected_count`) and an event.
#[pg_extern(immutable, strict, parallel_safe)]
fn slack_payload(alert: JsonB, event: &str) -> JsonB {
    check_event(event);
    JsonB(super::payload::slack_message(&alert.0, event))
}

/// The generic webhook body (Alertmanager webhook v4 shape plus a `vigil`
/// object with the alert) for an alert and an event, sent to `receiver`.
#[pg_extern(immutable, strict, parallel_safe)]
fn webhook_payload(alert: JsonB, event: &str, receiver: &str) -> JsonB {
    check_event(event);
    JsonB(super::payload::webhook_message(&alert.0, event, receiver))
}

/// Raises 22004/22023 naming the argument when a channel's kind, url or
/// headers cannot be used. The message never repeats the URL (a secret).
#[pg_extern(immutable, parallel_safe, name = "_check_channel")]
fn check_channel(kind: Option<&str>, url: Option<&str>, headers: Option<JsonB>) {
    let (Some(kind), Some(url)) = (kind, url) else {
        let which = if kind.is_none() { "kind" } else { "url" };
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{which} must not be NULL")
        );
    };
    if let Err(e) = super::channel::validate_target(
        kind,
        url,
        &super::channel::Policy::parse(&crate::gucs::allowed_internal_hosts()),
    ) {
        raise(VigilError::invalid(e));
    }
    let headers = headers.map(|h| h.0).unwrap_or(serde_json::Value::Null);
    let map = match &headers {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => return,
        _ => raise(VigilError::invalid(
            "headers must be a JSON object of header names to string values",
        )),
    };
    if kind == "pg_notify" && !map.is_empty() {
        raise(VigilError::invalid(
            "headers are not used by kind pg_notify; leave them empty",
        ));
    }
    for (name, value) in map {
        let Some(value) = value.as_str() else {
            raise(VigilError::invalid(format!(
                "headers: the value of \"{name}\" must be a string"
            )));
        };
        if let Err(e) = super::channel::validate_header(name, value) {
            raise(VigilError::invalid(e));
        }
    }
}

/// Scheme and host of a URL, for messages and logs (the rest is secret).
#[pg_extern(immutable, strict, parallel_safe)]
fn redact_url(url: &str) -> String {
    super::channel::redact(url)
}

/// Wakes the delivery worker when the calling transaction commits.
#[pg_extern(volatile, parallel_unsafe, name = "_wake_worker")]
fn wake_worker() {
    crate::worker::wake_at_commit();
}
