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

use super::ALERT_EVENTS as EVENTS;

/// Whether a row of `vigil.notifications` may carry `event` (its CHECK).
#[pg_extern(immutable, strict, parallel_safe, name = "_is_notification_event")]
fn is_notification_event(event: &str) -> bool {
    super::is_notification_event(event)
}

fn check_event(event: &str) {
    if !EVENTS.contains(&event) {
        raise(VigilError::invalid(format!(
            "event must be one of {}, got \"{event}\"",
            EVENTS.join(", ")
        )));
    }
}

/// The Slack incoming-webhook message for an alert (`to_jsonb` of a
/// `vigil.alerts` row, optionally with `affected_count`) and an event: a
/// Block Kit body in the severity's colour. STABLE: its buttons link to
/// `vigil.generator_url` and `vigil.external_url`.
#[pg_extern(stable, strict, parallel_safe)]
fn slack_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    JsonB(super::payload::slack_message(
        &alert.get("alert"),
        event,
        &crate::gucs::alert_links(),
    ))
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

/// The PagerDuty Events API v2 event for an alert and an event (trigger,
/// acknowledge or resolve; `dedup_key` the alert's fingerprint), without
/// the routing key, which the worker adds from the channel as it sends.
/// STABLE: the links come from `vigil.external_url` and
/// `vigil.generator_url`.
#[pg_extern(stable, strict, parallel_safe)]
fn pagerduty_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    let e =
        super::providers::pagerduty_event(&alert.get("alert"), event, &crate::gucs::alert_links());
    JsonB(serde_json::to_value(e).unwrap_or(Value::Null))
}

/// The `{"id", "event"}` of an alert event that LISTENers get (channel
/// `vigil_alerts`, `pg_notify` channels): nothing else of the alert.
#[pg_extern(immutable, strict, parallel_safe, name = "_pg_notify_payload")]
fn pg_notify_payload(alert: JsonArg, event: &str) -> JsonB {
    JsonB(super::payload::pg_notify_message(
        &alert.get("alert"),
        event,
    ))
}

/// The email (subject, text and HTML parts) for an alert and an event.
/// STABLE: its link comes from `vigil.generator_url`.
#[pg_extern(stable, strict, parallel_safe)]
fn email_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    let m =
        super::providers::email_message(&alert.get("alert"), event, &crate::gucs::alert_links());
    JsonB(serde_json::to_value(m).unwrap_or(Value::Null))
}

/// The Microsoft Teams (Workflows webhook) message for an alert and an
/// event: an Adaptive Card. STABLE: its button links come from settings.
#[pg_extern(stable, strict, parallel_safe)]
fn msteams_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    let m = super::providers::teams_alert_message(
        &alert.get("alert"),
        event,
        &crate::gucs::alert_links(),
    );
    JsonB(serde_json::to_value(m).unwrap_or(Value::Null))
}

/// `endsAt` of an open alert posted to Alertmanager in this transaction:
/// four `vigil.alertmanager_resend_interval`s after it began, RFC 3339 UTC.
fn alertmanager_open_until() -> String {
    // SAFETY: a read of the transaction's start time (main thread).
    let start_us = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    // PostgreSQL's epoch is 2000-01-01, 946 684 800 s after Unix's.
    let unix_us = start_us
        .saturating_add(946_684_800_000_000)
        .saturating_add(4 * i64::from(crate::gucs::alertmanager_resend_seconds()) * 1_000_000);
    chrono::DateTime::from_timestamp_micros(unix_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// The Alertmanager API v2 body (an array of one `postableAlert`) for an
/// alert and an event: open alerts with `endsAt` four
/// `vigil.alertmanager_resend_interval`s after the transaction began,
/// closed ones with their closing time. STABLE: reads the transaction's
/// start, that setting and the link settings.
#[pg_extern(stable, strict, parallel_safe)]
fn alertmanager_payload(alert: JsonArg, event: &str) -> JsonB {
    check_event(event);
    let a = super::providers::alertmanager_alert(
        &alert.get("alert"),
        event,
        &alertmanager_open_until(),
        &crate::gucs::alert_links(),
    );
    JsonB(Value::Array(vec![
        serde_json::to_value(a).unwrap_or(Value::Null)
    ]))
}

/// The bodies re-posting open alerts `ids` (at most 200 read, as for a
/// group message) to an Alertmanager, each within `cap` bytes
/// (`vigil._resend_alertmanager`). STABLE: reads `vigil.alerts`.
#[pg_extern(stable, strict, parallel_safe, name = "_alertmanager_batches")]
#[search_path(pg_catalog, pg_temp)]
fn alertmanager_batches(ids: Vec<Option<i64>>, cap: i32) -> SetOfIterator<'static, JsonB> {
    let ids: Vec<i64> = ids.into_iter().flatten().collect();
    let alerts = message_alerts(&ids);
    let cap = usize::try_from(cap).unwrap_or(0).max(1024);
    SetOfIterator::new(
        super::providers::alertmanager_batches(
            &alerts,
            &alertmanager_open_until(),
            &crate::gucs::alert_links(),
            cap,
        )
        .into_iter()
        .map(JsonB),
    )
}

/// `vigil.alertmanager_resend_interval`, in seconds.
#[pg_extern(stable, parallel_safe, name = "_alertmanager_resend_seconds")]
fn alertmanager_resend_seconds() -> i32 {
    crate::gucs::alertmanager_resend_seconds()
}

/// Raises 22023 naming what is wrong when `options` do not suit a channel
/// of `kind` (`providers::check_options`); never repeats their values
/// (the routing key is a secret). IMMUTABLE like `_check_channel`.
#[pg_extern(immutable, parallel_safe, name = "_check_channel_options")]
fn check_channel_options(kind: Option<&str>, options: Option<JsonArg>) {
    let options = options.map(|o| o.get("options")).unwrap_or(Value::Null);
    if options.is_null() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "options must not be NULL (use '{}')"
        );
    }
    if let Some(e) = super::providers::check_options(kind.unwrap_or(""), &options) {
        raise(VigilError::invalid(e));
    }
}

/// The alerts of a grouped message, best first: open before closed, worst
/// severity, newest, highest id; at most `MESSAGE_ALERTS`, long texts cut
/// and details over 2 kB dropped, so one message stays bounded whatever
/// the alerts hold. Read as the caller (`_flush_groups`, `_run_escalations`,
/// which run pinned to pg_catalog); every name here is qualified.
const MESSAGE_ALERTS_SQL: &str = "SELECT a.status OPERATOR(pg_catalog.<>) ALL ('{firing,acknowledged}'::vigil.alert_status[]), \
        a.severity, a.last_seen_at, a.id, a.urgency, a.occurrences, \
        a.created_at, a.last_seen_at, a.resolved_at, a.dismissed_at, \
        a.monitor, a.rule, a.anomaly_type, a.severity::pg_catalog.text, \
        pg_catalog.left(a.entity, 250), pg_catalog.left(a.title, 250), pg_catalog.left(a.summary, 1000), \
        CASE WHEN pg_catalog.octet_length(a.details::pg_catalog.text) OPERATOR(pg_catalog.<=) 2048 \
             THEN a.details::pg_catalog.text END, \
        a.recommended_actions, a.dedup_key, a.status::pg_catalog.text, a.labels::pg_catalog.text, a.fingerprint \
    FROM vigil.alerts a WHERE a.id OPERATOR(pg_catalog.=) ANY ($1) \
    ORDER BY 1, 2 DESC, 3 DESC, 4 DESC \
    LIMIT 200";

thread_local! {
    /// `MESSAGE_ALERTS_SQL`, planned once per backend (the flush runs it
    /// once per group).
    static MESSAGE_ALERTS_PLAN: std::cell::OnceCell<pgrx::spi::OwnedPreparedStatement> =
        const { std::cell::OnceCell::new() };
}

/// A timestamptz as `to_jsonb` writes it in UTC (`2026-12-02T19:56:27.5+00:00`,
/// `infinity`, `-infinity`). Written out by hand: chrono's formatter parses
/// its pattern on every call, a tenth of the flush.
fn utc_text(at: pgrx::datum::TimestampWithTimeZone) -> Value {
    use chrono::{Datelike, Timelike};
    // PostgreSQL counts microseconds from 2000-01-01 UTC; the extremes of
    // the range are its infinities (DT_NOBEGIN, DT_NOEND).
    let micros = match at.into_inner() {
        i64::MAX => return Value::String("infinity".into()),
        i64::MIN => return Value::String("-infinity".into()),
        since_2000 => since_2000 + 946_684_800_000_000,
    };
    // Every finite timestamptz (4713 BC to 294276 AD) is within chrono's range.
    let Some(at) = chrono::DateTime::from_timestamp_micros(micros) else {
        return Value::Null;
    };
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let fraction = micros.rem_euclid(1_000_000);
    if fraction != 0 {
        text.push_str(format!(".{fraction:06}").trim_end_matches('0'));
    }
    text.push_str("+00:00");
    Value::String(text)
}

/// The alert documents `MESSAGE_ALERTS_SQL` reads, keyed like `to_jsonb`
/// of a `vigil.alerts` row (the keys the payload builders use).
fn message_alerts(ids: &[i64]) -> Vec<Value> {
    let read = Spi::connect(|c| {
        let run = |plan: &pgrx::spi::OwnedPreparedStatement| {
            c.select(plan, None, &[ids.to_vec().into()])?
                .map(|row| {
                    let text = |n: usize| -> pgrx::spi::SpiResult<Value> {
                        Ok(row.get::<String>(n)?.map_or(Value::Null, Value::String))
                    };
                    // Absent (or details over 2 kB) is `{}`; a document the
                    // builders cannot hold (a number beyond f64, written by
                    // hand into vigil.alerts) says so rather than stopping
                    // the group's messages.
                    let json = |n: usize| -> pgrx::spi::SpiResult<Value> {
                        Ok(match row.get::<String>(n)? {
                            None => Value::Object(Default::default()),
                            Some(t) => read_json(&t).unwrap_or_else(
                                |e| serde_json::json!({ "unreadable": e.message("the document") }),
                            ),
                        })
                    };
                    let at = |n: usize| -> pgrx::spi::SpiResult<Value> {
                        Ok(row
                            .get::<pgrx::datum::TimestampWithTimeZone>(n)?
                            .map_or(Value::Null, utc_text))
                    };
                    let mut doc = serde_json::Map::new();
                    doc.insert("id".into(), row.get::<i64>(4)?.into());
                    doc.insert("urgency".into(), row.get::<i32>(5)?.into());
                    doc.insert("occurrences".into(), row.get::<i32>(6)?.into());
                    doc.insert("created_at".into(), at(7)?);
                    doc.insert("last_seen_at".into(), at(8)?);
                    doc.insert("resolved_at".into(), at(9)?);
                    doc.insert("dismissed_at".into(), at(10)?);
                    doc.insert("monitor".into(), text(11)?);
                    doc.insert("rule".into(), text(12)?);
                    doc.insert("anomaly_type".into(), text(13)?);
                    doc.insert("severity".into(), text(14)?);
                    doc.insert("entity".into(), text(15)?);
                    doc.insert("title".into(), text(16)?);
                    doc.insert("summary".into(), text(17)?);
                    doc.insert("details".into(), json(18)?);
                    doc.insert(
                        "recommended_actions".into(),
                        row.get::<Vec<Option<String>>>(19)?
                            .unwrap_or_default()
                            .into_iter()
                            .map(|a| a.map_or(Value::Null, Value::String))
                            .collect(),
                    );
                    doc.insert("dedup_key".into(), text(20)?);
                    doc.insert("status".into(), text(21)?);
                    doc.insert("labels".into(), json(22)?);
                    doc.insert("fingerprint".into(), text(23)?);
                    Ok(Value::Object(doc))
                })
                .collect::<pgrx::spi::SpiResult<Vec<Value>>>()
        };
        let kept = MESSAGE_ALERTS_PLAN.with(|p| p.get().map(&run));
        match kept {
            Some(done) => done,
            None => {
                let plan = c
                    .prepare(
                        MESSAGE_ALERTS_SQL,
                        &[pgrx::PgOid::BuiltIn(pgrx::PgBuiltInOids::INT8ARRAYOID)],
                    )?
                    .keep();
                let done = run(&plan);
                MESSAGE_ALERTS_PLAN.with(|p| {
                    let _ = p.set(plan);
                });
                done
            }
        }
    });
    read.unwrap_or_else(|e| {
        raise(VigilError::invalid(format!(
            "reading the alerts of a group: {e}"
        )))
    })
}

/// The message for a group of alerts (`vigil._flush_groups`,
/// `vigil._run_escalations`): a Slack message or a webhook (Alertmanager's
/// grouped shape) listing alerts `ids` (at most 200, best first, see
/// `MESSAGE_ALERTS_SQL`), within `cap` bytes; the ones left out are counted
/// in `truncatedAlerts`. The documents are read and rendered here in one
/// pass: building them as jsonb in SQL and reading them back cost four
/// times as much (the flush's hot path, issue 15's benchmark).
/// STABLE: reads `vigil.alerts`, and the webhook's links come from settings.
#[pg_extern(stable, strict, parallel_safe, name = "_group_message")]
#[search_path(pg_catalog, pg_temp)]
fn group_message(
    kind: &str,
    channel_name: &str,
    ids: Vec<Option<i64>>,
    group_labels: JsonArg,
    cap: i32,
) -> JsonB {
    let group_labels = match group_labels.get("group_labels") {
        Value::Object(map) => map,
        _ => raise(VigilError::invalid("group_labels must be a JSON object")),
    };
    let ids: Vec<i64> = ids.into_iter().flatten().collect();
    let alerts = message_alerts(&ids);
    let cap = usize::try_from(cap).unwrap_or(0).max(1024);
    let omitted = ids.len().saturating_sub(alerts.len());
    JsonB(match kind {
        "slack" => super::payload::slack_group_message(
            &alerts,
            &group_labels,
            &crate::gucs::alert_links(),
            cap,
            omitted,
        ),
        "email" => serde_json::to_value(super::providers::email_group_message(
            &alerts,
            &group_labels,
            &crate::gucs::alert_links(),
            cap,
            omitted,
        ))
        .unwrap_or(Value::Null),
        "msteams" => serde_json::to_value(super::providers::teams_group_message(
            &alerts,
            &group_labels,
            &crate::gucs::alert_links(),
            cap,
            omitted,
        ))
        .unwrap_or(Value::Null),
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

/// What channel kind `kind` decides for its rows (`channel::kind_traits`):
/// `{groups, always_resolved, default_max_per_second}`, NULL for a kind
/// that is none (`_check_channel` refuses it first).
#[pg_extern(immutable, strict, parallel_safe, name = "_channel_kind_traits")]
fn channel_kind_traits(kind: &str) -> Option<pgrx::JsonB> {
    super::channel::kind_traits(kind).map(|t| {
        pgrx::JsonB(serde_json::json!({
            "groups": t.groups,
            "always_resolved": t.always_resolved,
            "default_max_per_second": t.default_max_per_second,
        }))
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
    if (kind == "pg_notify" || kind == "email") && !map.is_empty() {
        raise(VigilError::invalid(format!(
            "headers are not used by kind {kind}; leave them empty"
        )));
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
