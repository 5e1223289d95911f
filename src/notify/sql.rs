//! SQL wrappers of the notification module: payload builders, the channel
//! check behind `vigil.channels`' trigger, and the commit-time worker wake-up.

use super::payload::{read_json, JsonReadError};
use crate::error::VigilError;
use crate::sqlglue::raise;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

/// A `jsonb` argument read without panicking. pgrx's `JsonB` argument
/// `expect`s serde_json to parse whatever PostgreSQL prints, so a deep
/// document (serde_json's recursion limit) or a number beyond f64 becomes an
/// internal error (XX000); this keeps the failure for `get`, which raises it
/// naming the argument (54000 too deep, 22023 unreadable).
pub struct JsonArg(Result<Value, JsonReadError>);

impl JsonArg {
    /// The value, or raises the error naming `argument`.
    pub fn get(self, argument: &str) -> Value {
        match self.0 {
            Ok(v) => v,
            Err(e @ JsonReadError::TooDeep { .. }) => {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    e.message(argument)
                );
            }
            Err(e) => raise(VigilError::invalid(e.message(argument))),
        }
    }
}

impl pgrx::datum::FromDatum for JsonArg {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a jsonb datum of this call; jsonb_out detoasts it and
        // returns a palloc'd C string, freed below once copied out.
        let text = unsafe {
            pgrx::direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(datum)])
        }?;
        let parsed = match text.to_str() {
            Ok(t) => read_json(t),
            Err(_) => Err(JsonReadError::Unreadable("not valid UTF-8".into())),
        };
        unsafe { pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void) };
        Some(JsonArg(parsed))
    }
}

impl pgrx::datum::IntoDatum for JsonArg {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        self.0.ok().and_then(|v| JsonB(v).into_datum())
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

crate::sqlglue::sql_datum_abi!(JsonArg, "jsonb");

/// Events a notification can carry.
const EVENTS: [&str; 7] = [
    "new",
    "escalated",
    "resolved",
    "dismissed",
    "expired",
    "test",
    "action",
];

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
fn slack_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    JsonB(super::payload::slack_message(&alert.get("alert"), event))
}

/// The generic webhook body (Alertmanager webhook v4 shape plus a `vigil`
/// object with the alert) for an alert and an event, sent to `receiver`.
/// STABLE: the links come from `vigil.external_url` and
/// `vigil.generator_url`.
#[pg_extern(stable, strict, parallel_safe)]
fn webhook_payload(alert: JsonArg, event: &str, receiver: &str) -> JsonB {
    check_event(event);
    JsonB(super::payload::webhook_message_with(
        &alert.get("alert"),
        event,
        receiver,
        &crate::gucs::alert_links(),
    ))
}

/// The message for a group of alerts (`vigil._flush_groups`): a Slack
/// message or a webhook (Alertmanager's grouped shape), within `cap` bytes.
/// STABLE: the webhook's links come from settings.
#[pg_extern(stable, strict, parallel_safe, name = "_render_group_payload")]
fn render_group_payload(
    kind: &str,
    channel_name: &str,
    alerts: JsonArg,
    group_labels: JsonArg,
    cap: i32,
    omitted: i32,
) -> JsonB {
    let alerts = match alerts.get("alerts") {
        Value::Array(items) => items,
        _ => raise(VigilError::invalid("alerts must be a JSON array")),
    };
    let group_labels = match group_labels.get("group_labels") {
        Value::Object(map) => map,
        _ => raise(VigilError::invalid("group_labels must be a JSON object")),
    };
    let cap = usize::try_from(cap).unwrap_or(0).max(1024);
    let omitted = usize::try_from(omitted).unwrap_or(0);
    JsonB(match kind {
        "slack" => super::payload::slack_group_message(&alerts, &group_labels, cap, omitted),
        _ => super::payload::webhook_group_message(
            &alerts,
            &group_labels,
            channel_name,
            &crate::gucs::alert_links(),
            cap,
            omitted,
        ),
    })
}

/// Raises 22004/22023 naming the argument when a channel's kind, url or
/// headers cannot be used. The message never repeats the URL (a secret).
/// The destination policy reads `vigil.allowed_internal_hosts`, so strictly
/// this is STABLE; it stays labelled IMMUTABLE (as sql_tests expects of the
/// Rust functions) because its only caller is the channels trigger, whose
/// arguments are never constants a planner could fold.
#[pg_extern(immutable, parallel_safe, name = "_check_channel")]
fn check_channel(kind: Option<&str>, url: Option<&str>, headers: Option<JsonArg>) {
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
    let headers = headers.map(|h| h.get("headers")).unwrap_or(Value::Null);
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

/// Raises 54000 naming `argument` when `doc` (a jsonb's text) is nested
/// deeper than pg_vigil stores (32 levels; alert documents wrapping it must
/// stay under the 64 the payload builders read), and 22023 when a document
/// of at most `cap` bytes holds what the payload builders cannot read (a
/// number beyond ±1.8e308); else returns its size in bytes. Documents over
/// `cap` are not parsed: the caller drops or refuses them.
#[pg_extern(immutable, strict, parallel_safe, name = "_json_size")]
fn json_size(doc: &str, argument: &str, cap: i32) -> i64 {
    let depth = super::payload::json_depth(doc);
    let limit = super::payload::MAX_STORED_DEPTH;
    if depth > limit {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            JsonReadError::TooDeep { depth, limit }.message(argument)
        );
    }
    if doc.len() <= usize::try_from(cap).unwrap_or(0) {
        if let Err(e) = read_json(doc) {
            raise(VigilError::invalid(e.message(argument)));
        }
    }
    doc.len() as i64
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
