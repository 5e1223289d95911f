//! The HTTP bodies the notification worker posts for an alert: a Slack
//! incoming-webhook message and a generic webhook in Alertmanager's v4 shape.
//! Pure functions of the `to_jsonb` form of a `vigil.alerts` row.

use serde_json::{json, Map, Number, Value};

const RESOLVED_COLOR: &str = "#2EB67D";

/// Alertmanager's zero time: receivers read it as "has not ended".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const MAX_METRIC_FIELDS: usize = 10;

/// A cap on one string: Slack's limits count characters, `bytes` counts the
/// string as it is spelled inside JSON.
#[derive(Clone, Copy)]
pub(super) struct Limit {
    pub(super) chars: usize,
    pub(super) bytes: usize,
}

// Character caps alone would let 4-byte emoji or 6-byte `\u0001` escapes blow
// the message size, so each string also gets a byte cap; the assertion below
// proves the worst case fits. The character caps are Block Kit's (a header's
// text 150, a section's text 3 000, a field's 2 000) or below them.
const TEXT: Limit = Limit {
    chars: 3_000,
    bytes: 4_000,
};
/// The attachment's `fallback`: shown where blocks cannot be.
const FALLBACK: Limit = Limit {
    chars: 300,
    bytes: 1_200,
};
const HEADER: Limit = Limit {
    chars: 150,
    bytes: 600,
};
const TITLE: Limit = Limit {
    chars: 250,
    bytes: 1_000,
};
const BODY: Limit = Limit {
    chars: 3_000,
    bytes: 6_000,
};
const FOOTER: Limit = Limit {
    chars: 300,
    bytes: 1_200,
};
const FIELD_TITLE: Limit = Limit {
    chars: 100,
    bytes: 300,
};
const FIELD_VALUE: Limit = Limit {
    chars: 1_000,
    bytes: 800,
};
const ACTIONS_VALUE: Limit = Limit {
    chars: 1_000,
    bytes: 4_000,
};
/// A button's `url` may be 3 000 characters; longer links are left out
/// rather than cut (a cut URL leads somewhere else).
pub(super) const MAX_URL_BYTES: usize = 1_500;
/// " · last seen <!date^…^{date_short_pretty} {time}|YYYY-MM-DD HH:MM UTC>".
const DATE_BYTES: usize = 100;

const MAX_MESSAGE_BYTES: usize = 40_000;
/// Block Kit's limit of fields per section.
const SECTION_FIELDS: usize = 10;
/// Severity, Urgency, Entity, Affected, Occurrences.
const CORE_FIELDS: usize = 5;
/// Keys, punctuation, numbers, and the whitespace PostgreSQL's jsonb output
/// adds, since the outbox stores the payload as jsonb and sends its text.
const STRUCTURE_BYTES: usize = 2_500;

const _: () = assert!(
    TEXT.bytes
        + FALLBACK.bytes
        + HEADER.bytes
        + BODY.bytes
        + (CORE_FIELDS + MAX_METRIC_FIELDS) * (FIELD_TITLE.bytes + FIELD_VALUE.bytes)
        + ACTIONS_VALUE.bytes
        + FOOTER.bytes
        + DATE_BYTES
        + 2 * MAX_URL_BYTES
        + STRUCTURE_BYTES
        < MAX_MESSAGE_BYTES
);

/// Slack attachment colour for a severity (case-insensitive): critical dark
/// red, high red, medium orange, low blue, info and anything unknown grey.
pub fn severity_color(severity: &str) -> &'static str {
    match severity.trim().to_ascii_lowercase().as_str() {
        "critical" => "#8B0000",
        "high" => "#E01E5A",
        "medium" => "#ECB22E",
        "low" => "#36C5F0",
        _ => "#9E9E9E",
    }
}

/// The urgency band name shared with `vigil.urgency_band` (SQL).
pub(super) fn urgency_band(urgency: i64) -> &'static str {
    crate::scoring::urgency_band(urgency.clamp(0, 100) as i32)
}

/// A Slack incoming-webhook message for `alert` on `event` ("new",
/// "escalated", "resolved" or "test"; anything else reads as "new"): the
/// fallback `text`, and one attachment in the severity's colour holding a
/// Block Kit body — a header (event and title), the summary, the fields
/// (severity, urgency, entity, affected, occurrences, key metrics), the
/// recommended actions, buttons to `links` where they are set, and a
/// context line (anomaly type, alert id, last seen as a Slack date). User
/// text is escaped so it cannot mention or link, every string is cut to
/// Block Kit's limits, and the serialized message stays under 40 000 bytes.
pub fn slack_message(alert: &Value, event: &str, links: &Links) -> Value {
    let empty = Map::new();
    let a = alert.as_object().unwrap_or(&empty);
    let resolved = is_resolved(a, event);
    let severity = severity(a);
    let title = title(a);
    let entity = text(a, "entity");

    let prefix = if event.eq_ignore_ascii_case("test") {
        "TEST: "
    } else if event.eq_ignore_ascii_case("dismissed") {
        "DISMISSED: "
    } else if event.eq_ignore_ascii_case("expired") {
        "EXPIRED: "
    } else if resolved {
        "RESOLVED: "
    } else if event.eq_ignore_ascii_case("escalated") {
        "ESCALATED: "
    } else {
        ""
    };
    let mut fallback = format!(
        "{prefix}[{}] {}",
        escape(&severity.to_uppercase()),
        slack_text(&title, TITLE)
    );
    if let Some(entity) = &entity {
        fallback.push_str(" — ");
        fallback.push_str(&escape(entity));
    }

    let mut fields = vec![field("Severity", &humanise(&severity))];
    if let Some(urgency) = int(a, "urgency") {
        let value = format!("{urgency}/100 ({})", urgency_band(urgency));
        fields.push(field("Urgency", &value));
    }
    if let Some(entity) = &entity {
        fields.push(field("Entity", entity));
    }
    if let Some(affected) = int(a, "affected_count") {
        fields.push(field("Affected", &affected.to_string()));
    }
    if let Some(occurrences) = int(a, "occurrences").filter(|&n| n > 1) {
        fields.push(field("Occurrences", &occurrences.to_string()));
    }
    for (label, value) in key_metrics(a) {
        fields.push(field(&label, &value));
    }

    let body = match text(a, "summary") {
        Some(summary) => slack_text(&summary, BODY),
        None => slack_text(&title, BODY),
    };
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": slack_text(&format!("{prefix}{title}"), HEADER)},
        }),
        mrkdwn_section(body),
    ];
    for chunk in fields.chunks(SECTION_FIELDS) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    let actions = actions(a);
    if !actions.is_empty() {
        let list: Vec<String> = actions.iter().map(|action| format!("• {action}")).collect();
        blocks.push(mrkdwn_section(format!(
            "*Recommended actions*\n{}",
            slack_text(&list.join("\n"), ACTIONS_VALUE)
        )));
    }
    let labels = wire_labels(a);
    let buttons: Vec<Value> = [
        (
            "View alert",
            "vigil_view_alert",
            generator_url(&links.generator_url, a, &labels),
        ),
        ("Open pg_vigil", "vigil_open", http_url(&links.external_url)),
    ]
    .into_iter()
    .filter(|(_, _, url)| !url.is_empty() && url.len() <= MAX_URL_BYTES)
    .map(|(label, id, url)| {
        json!({
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": id,
            "url": url,
        })
    })
    .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }

    let mut footer = vec!["pg_vigil".to_owned()];
    footer.extend(text(a, "anomaly_type"));
    footer.extend(int(a, "id").map(|id| format!("alert #{id}")));
    let mut context = slack_text(&footer.join(" · "), FOOTER);
    let seen = ["last_seen_at", "created_at"]
        .into_iter()
        .find_map(|key| parse_timestamp(&text(a, key)?));
    if let Some(seen) = seen {
        // Slack shows the reader's local time; the fallback is UTC.
        let utc = chrono::DateTime::from_timestamp(seen.unix, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        context.push_str(&format!(
            " · last seen <!date^{}^{{date_short_pretty}} {{time}}|{utc}>",
            seen.unix
        ));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [mrkdwn(context)],
    }));

    json!({
        "text": cut(&fallback, TEXT),
        "attachments": [{
            "color": if resolved { RESOLVED_COLOR } else { severity_color(&severity) },
            "fallback": cut(&fallback, FALLBACK),
            "blocks": blocks,
        }],
    })
}

/// What LISTENers of `vigil_alerts` and `pg_notify` channels get for an
/// alert event: `{"id", "event"}` only, since any role can LISTEN on any
/// channel (a listener that may read `vigil.alerts` looks the row up; one
/// that may not learns nothing).
pub fn pg_notify_message(alert: &Value, event: &str) -> Value {
    json!({"id": alert.get("id").cloned().unwrap_or(Value::Null), "event": event})
}

/// A generic webhook body for `alert` on `event`, shaped like Alertmanager's
/// webhook v4 payload so existing receivers accept it, with one alert per
/// message and pg_vigil's own view under `vigil`:
///
/// ```json
/// {
///   "version": "4",
///   "groupKey": "{}:{alertname=\"signups\", anomaly_type=\"signup_drop\", entity=\"checkout\", monitor=\"signups\"}",
///   "truncatedAlerts": 0,
///   "status": "firing",
///   "receiver": "<receiver argument>",
///   "groupLabels": {"...": "alerts[0].labels but severity"},
///   "commonLabels": {"...": "same as alerts[0].labels"},
///   "commonAnnotations": {"...": "same as alerts[0].annotations"},
///   "externalURL": "",
///   "alerts": [{
///     "status": "firing",
///     "labels": {
///       "alertname": "signups",
///       "anomaly_type": "signup_drop",
///       "severity": "high",
///       "entity": "checkout",
///       "monitor": "signups",
///       "team": "growth"
///     },
///     "annotations": {
///       "title": "Signup rate dropped",
///       "summary": "Signups fell 18 points below the 7-day average",
///       "description": "Signups fell 18 points below the 7-day average\nUrgency: 80/100 (hours)\nAverage 7d: 80\nCurrent: 62\nDrop points: 18",
///       "recommended_actions": "Check the signup form\nCompare with last week",
///       "dedup_key": "signup_drop_checkout_2026-11-23"
///     },
///     "startsAt": "2026-11-23T10:00:00.123Z",
///     "endsAt": "0001-01-01T00:00:00Z",
///     "generatorURL": "",
///     "fingerprint": "1971af89d4bf7fff"
///   }],
///   "vigil": {"event": "new", "alert": {"...": "the input alert, unchanged"}}
/// }
/// ```
///
/// - `status` is "resolved" when `event` closes the alert (resolved,
///   dismissed, expired) or the alert is closed, otherwise "firing".
/// - Labels are strings: the alert's stored `labels` (`vigil.raise_alert`),
///   with `alertname` (else the anomaly type, else "pg_vigil"), `severity`
///   (default "info") and `entity`, `monitor`, `rule`, `anomaly_type` where
///   present. The dated `dedup_key` is an annotation, not a label, so the
///   label set of an ongoing alert never changes with the date.
/// - The group is the single alert, so `groupLabels` are its identity (every
///   label but severity) and `groupKey` and the fingerprint are per alert: a
///   receiver that keys incidents on `groupKey` (as Alertmanager's own
///   PagerDuty and Opsgenie integrations do) resolves exactly this alert.
///   `groupKey` is `{}:{label="value", ...}` over `groupLabels`, values
///   JSON-quoted.
/// - `externalURL` is `vigil.external_url` and `generatorURL` the
///   `vigil.generator_url` template filled in for the alert (URL-encoded),
///   each only when it is an http(s) URL, else "" (`webhook_message_with`).
/// - `fingerprint` is the alert's (Alertmanager's label-set fingerprint of
///   its labels but severity, 16 hex digits); documents without one use the
///   FNV-1a hash of `dedup_key` (else `alert-<id>`).
/// - `summary` is the alert's summary, else its title. `description` is the
///   summary, the urgency and up to 10 scalar key metrics from `details`
///   (sorted by key, "Label: value" lines). `recommended_actions` is one
///   action per line, present only when there are any.
/// - `startsAt` is `created_at` and `endsAt` is `resolved_at` (else
///   `dismissed_at`, else `last_seen_at`) for closed alerts, both converted to UTC RFC 3339 with
///   the fraction as stored; a timestamp that does not parse is passed through
///   as is, and a missing one, like `endsAt` of a firing alert, is
///   "0001-01-01T00:00:00Z".
pub fn webhook_message(alert: &Value, event: &str, receiver: &str) -> Value {
    webhook_message_with(alert, event, receiver, &Links::default())
}

/// Where a webhook's links point (`vigil.external_url`, `vigil.generator_url`).
#[derive(Default, Clone)]
pub struct Links {
    /// Sent as `externalURL` when it is an http(s) URL.
    pub external_url: String,
    /// Template of `generatorURL`: `{id}`, `{fingerprint}`, `{alertname}`,
    /// `{monitor}`, `{rule}`, `{entity}` replaced, URL-encoded.
    pub generator_url: String,
}

/// `url` if it parses as an http(s) URL (the `url` crate), else empty: a
/// bad setting never breaks a notification.
pub(super) fn http_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.to_string(),
        _ => String::new(),
    }
}

pub(super) fn generator_url(
    template: &str,
    alert: &Map<String, Value>,
    labels: &Map<String, Value>,
) -> String {
    if template.trim().is_empty() {
        return String::new();
    }
    let encode = |v: Option<String>| {
        url::form_urlencoded::byte_serialize(v.unwrap_or_default().as_bytes()).collect::<String>()
    };
    let label = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut out = template.to_owned();
    for (name, value) in [
        ("{id}", int(alert, "id").map(|i| i.to_string())),
        ("{fingerprint}", Some(fingerprint(alert))),
        ("{alertname}", label("alertname")),
        ("{monitor}", text(alert, "monitor")),
        ("{rule}", text(alert, "rule")),
        ("{entity}", text(alert, "entity")),
    ] {
        out = out.replace(name, &encode(value));
    }
    http_url(&out)
}

/// `webhook_message` with the links of `links`.
pub fn webhook_message_with(alert: &Value, event: &str, receiver: &str, links: &Links) -> Value {
    let entry = alert_entry(alert, event, links);
    let group_labels: Map<String, Value> = entry
        .labels
        .iter()
        .filter(|(name, _)| *name != crate::alert::NOT_IDENTITY)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    json!({
        "version": "4",
        "groupKey": group_key(&group_labels),
        "truncatedAlerts": 0,
        "status": entry.status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": entry.labels.clone(),
        "commonAnnotations": entry.annotations.clone(),
        "externalURL": http_url(&links.external_url),
        "alerts": [entry.json],
        "vigil": { "event": event, "alert": alert.clone() },
    })
}

/// One alert as Alertmanager's `template.Alert`, with its labels and
/// annotations apart for the message around it.
pub(super) struct AlertEntry {
    pub(super) status: &'static str,
    pub(super) labels: Map<String, Value>,
    pub(super) annotations: Map<String, Value>,
    pub(super) json: Value,
}

pub(super) fn alert_entry(alert: &Value, event: &str, links: &Links) -> AlertEntry {
    let empty = Map::new();
    let a = alert.as_object().unwrap_or(&empty);
    let status = if is_resolved(a, event) {
        "resolved"
    } else {
        "firing"
    };
    let labels = wire_labels(a);
    let title = title(a);
    let summary = text(a, "summary").unwrap_or_else(|| title.clone());
    let mut description = vec![summary.clone()];
    if let Some(urgency) = int(a, "urgency") {
        description.push(format!(
            "Urgency: {urgency}/100 ({})",
            urgency_band(urgency)
        ));
    }
    description.extend(
        key_metrics(a)
            .into_iter()
            .map(|(label, value)| format!("{label}: {value}")),
    );
    let mut annotations = Map::new();
    annotations.insert("title".into(), title.into());
    annotations.insert("summary".into(), summary.into());
    annotations.insert("description".into(), description.join("\n").into());
    let actions = actions(a);
    if !actions.is_empty() {
        annotations.insert("recommended_actions".into(), actions.join("\n").into());
    }
    if let Some(key) = text(a, "dedup_key") {
        annotations.insert("dedup_key".into(), key.into());
    }
    let starts_at = text(a, "created_at").map_or_else(|| ZERO_TIME.to_owned(), |t| rfc3339(&t));
    let ends_at = match status {
        "resolved" => ["resolved_at", "dismissed_at", "last_seen_at"]
            .into_iter()
            .find_map(|name| text(a, name))
            .map_or_else(|| ZERO_TIME.to_owned(), |t| rfc3339(&t)),
        _ => ZERO_TIME.to_owned(),
    };
    let json = json!({
        "status": status,
        "labels": labels.clone(),
        "annotations": annotations.clone(),
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": generator_url(&links.generator_url, a, &labels),
        "fingerprint": fingerprint(a),
    });
    AlertEntry {
        status,
        labels,
        annotations,
        json,
    }
}

/// Alertmanager's `{}:{label="value", ...}` over the group labels, values
/// JSON-quoted.
fn group_key(group_labels: &Map<String, Value>) -> String {
    let parts: Vec<String> = group_labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!("{{}}:{{{}}}", parts.join(", "))
}

/// The pairs every map has alike.
fn common(maps: &[&Map<String, Value>]) -> Map<String, Value> {
    let Some((first, rest)) = maps.split_first() else {
        return Map::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One webhook for a group of alerts (Alertmanager's grouped message):
/// `alerts` in the order given (the caller puts firing first); `status`
/// firing while any is; `groupLabels` the group's, `commonLabels` /
/// `commonAnnotations` what all alerts share. The body stays within `cap`
/// bytes: alerts that would pass it are left out from the end and counted,
/// with the `omitted` ones the caller did not even pass, in
/// `truncatedAlerts`.
pub fn webhook_group_message(
    alerts: &[Value],
    group_labels: &Map<String, Value>,
    receiver: &str,
    links: &Links,
    cap: usize,
    omitted: usize,
) -> Value {
    let entries: Vec<AlertEntry> = alerts
        .iter()
        .map(|a| alert_entry(a, "group", links))
        .collect();
    let status = if entries.iter().any(|e| e.status == "firing") {
        "firing"
    } else {
        "resolved"
    };
    let labels: Vec<&Map<String, Value>> = entries.iter().map(|e| &e.labels).collect();
    let annotations: Vec<&Map<String, Value>> = entries.iter().map(|e| &e.annotations).collect();
    let mut message = json!({
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common(&labels),
        "commonAnnotations": common(&annotations),
        "externalURL": http_url(&links.external_url),
        "alerts": [],
        "vigil": { "event": "group", "alert_ids": [] },
    });
    // Room for the counts and ids added below, and for PostgreSQL's jsonb
    // text form, which spaces out what serde writes compactly.
    let cap = cap - cap / 8;
    let mut size = message.to_string().len() + 32;
    let mut kept = Vec::new();
    let mut ids = Vec::new();
    for (e, a) in entries.into_iter().zip(alerts) {
        let id = a.get("id").cloned().unwrap_or(Value::Null);
        let n = e.json.to_string().len() + id.to_string().len() + 2;
        if size + n > cap {
            break;
        }
        size += n;
        kept.push(e.json);
        ids.push(id);
    }
    message["truncatedAlerts"] = json!(alerts.len() - kept.len() + omitted);
    message["alerts"] = Value::Array(kept);
    message["vigil"]["alert_ids"] = Value::Array(ids);
    message
}

/// One Slack message for a group of alerts: `[FIRING:n] alertname` with the
/// group's labels, an attachment per alert (at most 20, then a line saying
/// how many more), resolved ones marked. Within `cap` and Slack's limits.
pub fn slack_group_message(
    alerts: &[Value],
    group_labels: &Map<String, Value>,
    links: &Links,
    cap: usize,
    omitted: usize,
) -> Value {
    const MAX_ATTACHMENTS: usize = 20;
    let firing = alerts
        .iter()
        .filter(|a| {
            let empty = Map::new();
            !is_resolved(a.as_object().unwrap_or(&empty), "group")
        })
        .count();
    let resolved = alerts.len() - firing;
    // The omitted alerts are firing ones: the caller leaves out the least
    // urgent firing alerts first.
    let firing = firing + omitted;
    let name = group_labels
        .get("alertname")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            alerts
                .first()
                .and_then(|a| a.get("anomaly_type")?.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| "pg_vigil".to_owned());
    // An escalation step's message (vigil._run_escalations) says so first.
    let escalation = match (
        group_labels
            .get("escalation_policy")
            .and_then(Value::as_str),
        group_labels.get("escalation_step").and_then(Value::as_str),
    ) {
        (Some(policy), Some(step)) => {
            format!("[ESCALATION {} step {}] ", escape(policy), escape(step))
        }
        _ => String::new(),
    };
    let others: Vec<String> = group_labels
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "alertname" | "escalation_policy" | "escalation_step"
            )
        })
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    let mut head = if firing > 0 {
        format!("{escalation}[FIRING:{firing}] {}", escape(&name))
    } else {
        format!("{escalation}[RESOLVED:{resolved}] {}", escape(&name))
    };
    if firing > 0 && resolved > 0 {
        head.push_str(&format!(" (resolved: {resolved})"));
    }
    if !others.is_empty() {
        head.push_str(&format!(" — {}", escape(&others.join(", "))));
    }
    let budget = cap.min(MAX_MESSAGE_BYTES);
    let mut attachments: Vec<Value> = Vec::new();
    let mut size = head.len() + 64;
    for a in alerts.iter().take(MAX_ATTACHMENTS) {
        let one = slack_message(a, "group", links);
        let att = one["attachments"][0].clone();
        let n = att.to_string().len() + 1;
        if size + n > budget {
            break;
        }
        size += n;
        attachments.push(att);
    }
    let more = alerts.len() - attachments.len() + omitted;
    if more > 0 {
        let line = format!("… and {more} more");
        attachments.push(json!({
            "color": "#9E9E9E",
            "fallback": line,
            "blocks": [{"type": "context", "elements": [mrkdwn(line)]}],
        }));
    }
    json!({ "text": cut(&head, TEXT), "attachments": attachments })
}

/// A scalar as display text; blank strings count as absent.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(compact_number(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn text(alert: &Map<String, Value>, key: &str) -> Option<String> {
    alert.get(key).and_then(scalar_text)
}

pub(super) fn int(alert: &Map<String, Value>, key: &str) -> Option<i64> {
    match alert.get(key)? {
        // serde_json numbers are finite, and `as` saturates out-of-range ones.
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Integers without ".0" (jsonb turns `62::numeric` into 62.0 on the way),
/// other numbers rounded to at most two decimals.
fn compact_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            let rounded = format!("{f:.2}");
            match rounded.trim_end_matches('0').trim_end_matches('.') {
                "-0" => "0".to_owned(),
                s => s.to_owned(),
            }
        }
        _ => n.to_string(),
    }
}

pub(super) fn severity(alert: &Map<String, Value>) -> String {
    text(alert, "severity").map_or_else(|| "info".to_owned(), |s| s.trim().to_lowercase())
}

pub(super) fn title(alert: &Map<String, Value>) -> String {
    text(alert, "title")
        .or_else(|| text(alert, "anomaly_type"))
        .unwrap_or_else(|| "pg_vigil alert".to_owned())
}

/// The events and statuses that close an alert.
const CLOSING: [&str; 3] = ["resolved", "dismissed", "expired"];

fn is_closing(word: &str) -> bool {
    CLOSING.iter().any(|c| word.trim().eq_ignore_ascii_case(c))
}

/// Whether the message says the alert is over: a closing event, or an alert
/// that is closed.
pub(super) fn is_resolved(alert: &Map<String, Value>, event: &str) -> bool {
    is_closing(event) || text(alert, "status").is_some_and(|s| is_closing(&s))
}

/// What receivers dedup on: the alert's fingerprint (its labels but
/// severity, `crate::alert::fingerprint`), else, for documents without one,
/// the FNV-1a hash of `dedup_key` or `alert-<id>`.
pub(super) fn fingerprint(alert: &Map<String, Value>) -> String {
    if let Some(fp) = text(alert, "fingerprint") {
        return fp;
    }
    let key = text(alert, "dedup_key")
        .or_else(|| int(alert, "id").map(|id| format!("alert-{id}")))
        .unwrap_or_default();
    format!("{:016x}", fnv1a64(key.as_bytes()))
}

/// The alert's labels as Alertmanager carries them: its stored `labels`
/// (string values), then `alertname` (stored, else the anomaly type, else
/// "pg_vigil"), `severity` (the alert's current one, default "info") and
/// `anomaly_type`, `entity`, `monitor` and `rule` where present.
pub(super) fn wire_labels(alert: &Map<String, Value>) -> Map<String, Value> {
    let mut labels: Map<String, Value> = match alert.get("labels") {
        Some(Value::Object(stored)) => stored
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), Value::String(scalar_text(v)?))))
            .collect(),
        _ => Map::new(),
    };
    if !labels.contains_key("alertname") {
        let alertname = text(alert, "anomaly_type").unwrap_or_else(|| "pg_vigil".to_owned());
        labels.insert("alertname".into(), alertname.into());
    }
    labels.insert("severity".into(), severity(alert).into());
    for name in ["anomaly_type", "entity", "monitor", "rule"] {
        if let Some(value) = text(alert, name) {
            labels.insert(name.into(), value.into());
        }
    }
    labels
}

/// "drop_points" → "Drop points".
fn humanise(key: &str) -> String {
    let words: Vec<&str> = key.split('_').filter(|w| !w.is_empty()).collect();
    let words = words.join(" ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => key.to_owned(),
    }
}

/// The scalar entries of `details` as (label, value), in key order so the
/// same alert always renders the same way; nested values do not fit a field.
pub(super) fn key_metrics(alert: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Object(details)) = alert.get("details") else {
        return Vec::new();
    };
    let mut entries: Vec<(&String, &Value)> = details.iter().collect();
    // serde_json's map iterates in key order only while its `preserve_order`
    // feature is off, and any crate in the build can turn that on.
    entries.sort_by(|x, y| x.0.cmp(y.0));
    entries
        .into_iter()
        .filter_map(|(key, value)| Some((humanise(key), scalar_text(value)?)))
        .take(MAX_METRIC_FIELDS)
        .collect()
}

pub(super) fn actions(alert: &Map<String, Value>) -> Vec<String> {
    match alert.get("recommended_actions") {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(single) => scalar_text(single).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A mrkdwn text object of (already escaped) text, `verbatim`: Slack then
/// neither turns bare URLs and channel names in alert text into links nor
/// parses mentions in it; only the markup pg_vigil writes (bold, its date)
/// is formatted.
fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// A section field: its title in bold over its value.
fn field(title: &str, value: &str) -> Value {
    mrkdwn(format!(
        "*{}*\n{}",
        slack_text(title, FIELD_TITLE),
        slack_text(value, FIELD_VALUE)
    ))
}

/// A section block of (already escaped) mrkdwn text.
fn mrkdwn_section(text: String) -> Value {
    json!({"type": "section", "text": mrkdwn(text)})
}

fn slack_text(raw: &str, limit: Limit) -> String {
    cut(&escape(raw), limit)
}

/// Slack's documented escaping; without it an entity named `<!channel>`
/// would notify the whole channel.
fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes `c` takes inside a JSON string (serde_json and PostgreSQL agree).
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Shortens already escaped text to `limit`, ending in "…" when cut.
pub(super) fn cut(text: &str, limit: Limit) -> String {
    const ELLIPSIS: &str = "…";
    let (mut chars, mut bytes, mut keep) = (0, 0, 0);
    for (i, c) in text.char_indices() {
        chars += 1;
        bytes += json_len(c);
        if chars < limit.chars && bytes + ELLIPSIS.len() <= limit.bytes {
            keep = i + c.len_utf8();
        }
        if chars > limit.chars || bytes > limit.bytes {
            let kept = &text[..keep];
            // Half an entity ("&am") would show as literal text.
            let kept = match kept.rfind('&') {
                Some(amp) if !kept[amp..].contains(';') => &kept[..amp],
                _ => kept,
            };
            return format!("{kept}{ELLIPSIS}");
        }
    }
    text.to_owned()
}

/// 64-bit FNV-1a of `bytes` (`crate::alert::Fnv1a`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = crate::alert::Fnv1a::new();
    h.add(bytes);
    h.finish()
}

/// A point in time as whole Unix seconds plus the fraction digits as written,
/// so normalising neither invents nor drops precision.
struct Instant {
    unix: i64,
    fraction: String,
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction]` followed by `Z` or an offset
/// `±HH[:MM[:SS]]`: RFC 3339 and PostgreSQL's timestamptz text alike. Without
/// an offset the instant is unknown, so that is rejected too.
fn parse_timestamp(raw: &str) -> Option<Instant> {
    let s = raw.trim();
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    let separators = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !separators {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    // chrono checks the date (month lengths, leap years) and the time.
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?;
    let time = chrono::NaiveTime::from_hms_opt(hour as u32, minute as u32, second as u32)?;
    let mut rest = &s[19..];
    let mut fraction = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        (fraction, rest) = after_dot.split_at(len);
    }
    let offset = parse_offset(rest)?;
    let unix = date.and_time(time).and_utc().timestamp() - offset;
    // RFC 3339 readers such as Go's stop at nanoseconds.
    let fraction = fraction.chars().take(9).collect();
    Some(Instant { unix, fraction })
}

/// Seconds east of UTC; PostgreSQL prints the shortest exact form.
fn parse_offset(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let parts: Vec<&str> = s[1..].split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut seconds = 0;
    for (part, (unit, max)) in parts.into_iter().zip([(3_600, 23), (60, 59), (1, 59)]) {
        if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = part.parse().ok()?;
        if n > max {
            return None;
        }
        seconds += n * unit;
    }
    Some(sign * seconds)
}

/// UTC RFC 3339, which every Alertmanager receiver parses; text that is not
/// a timestamp passes through so nothing is silently lost.
pub(super) fn rfc3339(raw: &str) -> String {
    let Some(instant) = parse_timestamp(raw) else {
        return raw.to_owned();
    };
    let Some(at) = chrono::DateTime::from_timestamp(instant.unix, 0) else {
        return raw.to_owned();
    };
    let fraction = if instant.fraction.is_empty() {
        String::new()
    } else {
        format!(".{}", instant.fraction)
    };
    // The fraction as written (chrono would pad it to 3, 6 or 9 digits).
    format!("{}{fraction}Z", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// Deepest JSON nesting pg_vigil reads (alert documents, payload builder
/// arguments, channel headers, alert details). serde_json's own parser stops
/// at 128 levels, and PostgreSQL's jsonb allows far more; a document past
/// this limit is refused with an error naming the argument.
pub const MAX_JSON_DEPTH: usize = 64;

/// Deepest nesting of JSON pg_vigil stores from a caller (alert details,
/// `send_webhook` payloads): well under `MAX_JSON_DEPTH`, so an alert
/// document that wraps its details stays readable.
pub const MAX_STORED_DEPTH: usize = 32;

/// Why a JSON argument cannot be read; `message` names the argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonReadError {
    /// Nested `depth` levels, deeper than `limit` (SQLSTATE 54000).
    TooDeep { depth: usize, limit: usize },
    /// Not readable as JSON numbers/strings serde_json can hold, e.g. a
    /// number beyond ±1.8e308 (SQLSTATE 22023).
    Unreadable(String),
}

impl JsonReadError {
    pub fn message(&self, argument: &str) -> String {
        match self {
            JsonReadError::TooDeep { depth, limit } => {
                format!("{argument} is nested {depth} levels deep; at most {limit} are allowed")
            }
            JsonReadError::Unreadable(why) => format!("{argument} cannot be read as JSON: {why}"),
        }
    }
}

/// The nesting depth of JSON text (objects and arrays), without recursion:
/// a scan that skips strings. Scalars are depth 0.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON text (as PostgreSQL prints a jsonb) into a value, refusing
/// documents deeper than `MAX_JSON_DEPTH` before serde_json sees them, so no
/// input reaches serde_json's recursion limit or a deep recursive drop.
pub fn read_json(text: &str) -> Result<Value, JsonReadError> {
    let depth = json_depth(text);
    if depth > MAX_JSON_DEPTH {
        return Err(JsonReadError::TooDeep {
            depth,
            limit: MAX_JSON_DEPTH,
        });
    }
    serde_json::from_str(text).map_err(|e| {
        let why = e.to_string();
        // serde_json appends " at line L column C": positions mean nothing here.
        let why = match why.find(" at line ") {
            Some(at) => why[..at].to_owned(),
            None => why,
        };
        JsonReadError::Unreadable(why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "id": 42,
            "monitor": "m1",
            "rule": "r1",
            "anomaly_type": "signup_drop",
            "severity": "high",
            "urgency": 80,
            "entity": "checkout",
            "title": "Signup rate dropped",
            "summary": "Signups fell 18 points below the 7-day average",
            "details": {"drop_points": 18, "current": 62, "average_7d": 80.0},
            "recommended_actions": ["Check the signup form", "Compare with last week"],
            "dedup_key": "m1:checkout",
            "group_id": null,
            "status": "firing",
            "created_at": "2026-11-23T10:00:00.123+00:00",
            "last_seen_at": "2026-11-23T15:30:00+05:30",
            "expires_at": "2026-11-25T10:00:00+00:00",
            "resolved_at": null,
            "occurrences": 1,
            "acknowledged_by": null
        })
    }

    fn with(mut alert: Value, key: &str, value: Value) -> Value {
        alert[key] = value;
        alert
    }

    fn attachment(message: &Value) -> &Value {
        &message["attachments"][0]
    }

    fn slack(alert: &Value, event: &str) -> Value {
        slack_message(alert, event, &Links::default())
    }

    fn blocks(message: &Value) -> &Vec<Value> {
        attachment(message)["blocks"].as_array().unwrap()
    }

    fn header(message: &Value) -> String {
        blocks(message)[0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The summary: the text of the section after the header.
    fn body(message: &Value) -> String {
        blocks(message)[1]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Texts of the sections that are text, not fields (summary, actions).
    fn section_texts(message: &Value) -> Vec<String> {
        blocks(message)
            .iter()
            .filter(|b| b["type"] == "section")
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn context(message: &Value) -> String {
        let last = blocks(message).last().unwrap();
        assert_eq!(last["type"], "context");
        last["elements"][0]["text"].as_str().unwrap().to_owned()
    }

    /// The Unix time of the context's Slack date, if it has one.
    fn seen(message: &Value) -> Option<i64> {
        let c = context(message);
        let (_, rest) = c.split_once("<!date^")?;
        rest.split('^').next()?.parse().ok()
    }

    /// (title, value) of every section field, in order.
    fn fields(message: &Value) -> Vec<(String, String)> {
        blocks(message)
            .iter()
            .filter_map(|b| b["fields"].as_array())
            .flatten()
            .map(|f| {
                assert_eq!(f["type"], "mrkdwn");
                let text = f["text"].as_str().unwrap();
                let (title, value) = text
                    .strip_prefix('*')
                    .and_then(|t| t.split_once("*\n"))
                    .unwrap();
                (title.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn field_value(message: &Value, title: &str) -> Option<String> {
        fields(message)
            .into_iter()
            .find(|(t, _)| t == title)
            .map(|(_, v)| v)
    }

    fn number(text: &str) -> String {
        compact_number(&serde_json::from_str(text).unwrap())
    }

    fn unix(text: &str) -> Option<i64> {
        parse_timestamp(text).map(|t| t.unix)
    }

    #[test]
    fn severity_colours_follow_the_documented_palette() {
        assert_eq!(severity_color("critical"), "#8B0000");
        assert_eq!(severity_color("high"), "#E01E5A");
        assert_eq!(severity_color("medium"), "#ECB22E");
        assert_eq!(severity_color("low"), "#36C5F0");
        assert_eq!(severity_color("info"), "#9E9E9E");
        assert_eq!(severity_color(" HIGH "), "#E01E5A");
        assert_eq!(severity_color("weird"), "#9E9E9E");
    }

    #[test]
    fn slack_colour_is_the_severity_colour_while_firing() {
        let critical = with(sample(), "severity", json!("critical"));
        assert_eq!(attachment(&slack(&critical, "new"))["color"], "#8B0000");
        assert_eq!(
            attachment(&slack(&sample(), "escalated"))["color"],
            "#E01E5A"
        );
    }

    #[test]
    fn resolved_messages_are_green_whatever_the_severity() {
        let critical = with(sample(), "severity", json!("critical"));
        assert_eq!(
            attachment(&slack(&critical, "resolved"))["color"],
            "#2EB67D"
        );
        let closed = with(sample(), "status", json!("resolved"));
        assert_eq!(attachment(&slack(&closed, "new"))["color"], "#2EB67D");
    }

    #[test]
    fn fallback_text_names_severity_title_and_entity_with_an_event_prefix() {
        let text = |event: &str| slack(&sample(), event)["text"].clone();
        assert_eq!(text("new"), "[HIGH] Signup rate dropped — checkout");
        assert_eq!(
            text("escalated"),
            "ESCALATED: [HIGH] Signup rate dropped — checkout"
        );
        assert_eq!(
            text("resolved"),
            "RESOLVED: [HIGH] Signup rate dropped — checkout"
        );
        assert_eq!(text("test"), "TEST: [HIGH] Signup rate dropped — checkout");
        assert_eq!(text("other"), "[HIGH] Signup rate dropped — checkout");
    }

    #[test]
    fn core_fields_show_severity_urgency_and_entity() {
        let message = slack(&sample(), "new");
        let got = fields(&message);
        assert_eq!(got[0], ("Severity".into(), "High".into()));
        assert_eq!(got[1], ("Urgency".into(), "80/100 (hours)".into()));
        assert_eq!(got[2], ("Entity".into(), "checkout".into()));
        assert_eq!(header(&message), "Signup rate dropped");
        assert_eq!(
            body(&message),
            "Signups fell 18 points below the 7-day average"
        );
        // A block attachment carries only these (slack-sdk's BlockAttachment).
        let keys: Vec<&String> = attachment(&message).as_object().unwrap().keys().collect();
        assert_eq!(keys, ["blocks", "color", "fallback"]);
        assert_eq!(
            attachment(&message)["fallback"],
            "[HIGH] Signup rate dropped — checkout"
        );
        let kinds: Vec<&str> = blocks(&message)
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["header", "section", "section", "section", "context"]
        );
        assert_eq!(
            header(&slack(&sample(), "resolved")),
            "RESOLVED: Signup rate dropped"
        );
    }

    #[test]
    fn numbers_are_formatted_compactly() {
        assert_eq!(number("18"), "18");
        assert_eq!(number("18.0"), "18");
        assert_eq!(number("18.456"), "18.46");
        assert_eq!(number("0.5"), "0.5");
        assert_eq!(number("-2.50"), "-2.5");
        assert_eq!(number("-0.001"), "0");
        assert_eq!(number("1e20"), "100000000000000000000");
        assert_eq!(number("18446744073709551615"), "18446744073709551615");
    }

    #[test]
    fn metric_keys_are_humanised() {
        assert_eq!(humanise("drop_points"), "Drop points");
        assert_eq!(humanise("average_7d"), "Average 7d");
        assert_eq!(humanise("__odd__key_"), "Odd key");
        assert_eq!(humanise("élan"), "Élan");
        assert_eq!(humanise("___"), "___");
    }

    #[test]
    fn metric_fields_follow_core_fields_in_key_order() {
        let got = fields(&slack(&sample(), "new"));
        let metrics: Vec<_> = got[3..6]
            .iter()
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            metrics,
            [
                ("Average 7d", "80"),
                ("Current", "62"),
                ("Drop points", "18")
            ]
        );
    }

    #[test]
    fn metric_fields_are_scalar_only_and_capped_at_ten() {
        let mut details = Map::new();
        for i in (0..30).rev() {
            details.insert(format!("k{i:02}"), json!(i));
        }
        details.insert("a_nested".into(), json!({"x": 1}));
        details.insert("a_list".into(), json!([1, 2]));
        details.insert("a_null".into(), Value::Null);
        details.insert("a_blank".into(), json!("  "));
        details.insert("b_flag".into(), json!(true));
        details.insert("b_name".into(), json!("eu-west"));
        let alert = with(sample(), "details", Value::Object(details));
        let titles: Vec<String> = fields(&slack(&alert, "new"))[3..]
            .iter()
            .map(|(t, v)| format!("{t}={v}"))
            .collect();
        let expected = [
            "B flag=true",
            "B name=eu-west",
            "K00=0",
            "K01=1",
            "K02=2",
            "K03=3",
            "K04=4",
            "K05=5",
            "K06=6",
            "K07=7",
        ];
        assert_eq!(titles, expected);
    }

    #[test]
    fn affected_and_occurrences_appear_only_when_they_add_information() {
        let message = slack(&sample(), "new");
        assert_eq!(field_value(&message, "Affected"), None);
        assert_eq!(field_value(&message, "Occurrences"), None);
        let grouped = with(
            with(sample(), "affected_count", json!(7)),
            "occurrences",
            json!(3),
        );
        let message = slack(&grouped, "new");
        assert_eq!(field_value(&message, "Affected").as_deref(), Some("7"));
        assert_eq!(field_value(&message, "Occurrences").as_deref(), Some("3"));
    }

    #[test]
    fn recommended_actions_become_a_bullet_list_in_their_own_section() {
        let message = slack(&sample(), "new");
        assert_eq!(
            section_texts(&message).last().unwrap(),
            "*Recommended actions*\n• Check the signup form\n• Compare with last week"
        );
        let none = with(sample(), "recommended_actions", json!([]));
        let message = slack(&none, "new");
        assert_eq!(section_texts(&message).len(), 1, "the summary only");
    }

    #[test]
    fn footer_names_the_anomaly_type_and_alert_id() {
        let message = slack(&sample(), "new");
        assert_eq!(
            context(&message),
            "pg_vigil · signup_drop · alert #42 · last seen \
             <!date^1795428000^{date_short_pretty} {time}|2026-11-23 10:00 UTC>"
        );
        assert_eq!(context(&slack(&json!({}), "new")), "pg_vigil");
    }

    #[test]
    fn timestamps_parse_to_exact_unix_seconds() {
        let ten_utc = Some(1_795_428_000);
        assert_eq!(unix("2026-11-23T10:00:00.123+00:00"), ten_utc);
        assert_eq!(unix("2026-11-23 10:00:00+00"), ten_utc);
        assert_eq!(unix("2026-11-23T15:30:00+05:30"), ten_utc);
        assert_eq!(unix("2026-11-23 06:00:00.999999-04"), ten_utc);
        assert_eq!(unix("2026-11-23T10:00:00Z"), ten_utc);
        assert_eq!(unix("2026-11-23t10:00:00z"), ten_utc);
        assert_eq!(unix("2026-11-23 10:53:28+00:53:28"), ten_utc);
        assert_eq!(unix(" 2000-01-01T00:00:00Z "), Some(946_684_800));
        assert_eq!(unix("2024-02-29 23:59:59+00"), Some(1_709_251_199));
        assert_eq!(unix("1970-01-01T05:29:59+05:30"), Some(-1));
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        let bad = [
            "",
            "infinity",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00.+00",
            "2026-11-23T10:00:00+5:30",
            "2026-11-23T10:00:00+0530",
            "2026-11-23T10:00:00+05:30:00:00",
            "2026-11-23T10:00:00+24",
            "2026-11-23T10:00:00+05:60",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:00:60Z",
            "2026-11-23X10:00:00Z",
            "2026-11-23T1a:00:00Z",
            "2026-11-23T10:00:00Z junk",
            "2026-11-23T10:00:00+é",
            "２026-11-23T10:00:00Z",
            "2026-11-23T10:00:00é",
        ];
        for text in bad {
            assert_eq!(unix(text), None, "{text:?}");
        }
    }

    #[test]
    fn slack_date_prefers_last_seen_and_is_omitted_when_unparseable() {
        let message = slack(&sample(), "new");
        assert_eq!(seen(&message), Some(1_795_428_000));
        let later = with(sample(), "last_seen_at", json!("2026-11-23 12:00:00+01"));
        assert_eq!(seen(&slack(&later, "new")), Some(1_795_431_600));
        let garbled = with(sample(), "last_seen_at", json!("soon"));
        let created = with(garbled.clone(), "created_at", json!("2000-01-01T00:00:00Z"));
        assert_eq!(seen(&slack(&created, "new")), Some(946_684_800));
        let neither = with(garbled, "created_at", Value::Null);
        assert_eq!(seen(&slack(&neither, "new")), None);
    }

    #[test]
    fn user_text_is_escaped_so_it_cannot_mention_or_link() {
        let alert = json!({
            "title": "<!here> & <https://evil.example|click>",
            "entity": "<!channel>",
            "summary": "a > b",
            "details": {"<@U123>": "<!everyone>"},
            "recommended_actions": ["<!subteam^S1>"],
            "anomaly_type": "<x>"
        });
        let message = slack(&alert, "new");
        let serialized = message.to_string();
        assert!(
            !serialized.contains('<') && !serialized.contains('>'),
            "{serialized}"
        );
        // Every mrkdwn object is verbatim: no auto-linking or mention parsing.
        let mrkdwn = serialized.matches(r#""type":"mrkdwn""#).count();
        assert!(mrkdwn >= 3);
        assert_eq!(serialized.matches(r#""verbatim":true"#).count(), mrkdwn);
        assert_eq!(
            message["text"],
            "[INFO] &lt;!here&gt; &amp; &lt;https://evil.example|click&gt; — &lt;!channel&gt;"
        );
        assert_eq!(
            field_value(&message, "Entity").as_deref(),
            Some("&lt;!channel&gt;")
        );
        assert_eq!(body(&message), "a &gt; b");
        assert_eq!(
            header(&message),
            "&lt;!here&gt; &amp; &lt;https://evil.example|click&gt;"
        );
    }

    #[test]
    fn cut_never_splits_a_character() {
        let limit = Limit {
            chars: 10,
            bytes: 1_000,
        };
        for filler in ["é", "😀", "a"] {
            let out = cut(&filler.repeat(50), limit);
            assert_eq!(out.chars().count(), 10);
            assert_eq!(out, format!("{}…", filler.repeat(9)));
        }
        let bytes_bound = Limit {
            chars: 1_000,
            bytes: 10,
        };
        assert_eq!(cut(&"😀".repeat(50), bytes_bound), "😀…");
        assert_eq!(cut(&"é".repeat(50), bytes_bound), "ééé…");
        assert_eq!(cut("ééééé", bytes_bound), "ééééé");
    }

    #[test]
    fn cut_never_splits_an_escape_entity() {
        let limit = Limit {
            chars: 8,
            bytes: 1_000,
        };
        assert_eq!(cut(&escape("a&&&&&&"), limit), "a&amp;…");
        assert_eq!(cut(&escape("ab<<<<"), limit), "ab&lt;…");
        assert_eq!(cut(&escape("a&"), limit), "a&amp;");
    }

    #[test]
    fn huge_inputs_stay_within_slack_limits() {
        for filler in ["a", "é", "😀", "<", "&", "\"", "\u{1}", "a\n", "x😀é<\u{1}"] {
            let details: Map<String, Value> = (0..10_000)
                .map(|i| {
                    (
                        format!("{}{i}", filler.repeat(200)),
                        json!(filler.repeat(2_000)),
                    )
                })
                .collect();
            let alert = json!({
                "id": i64::MAX,
                "anomaly_type": filler.repeat(100_000),
                "severity": filler.repeat(100_000),
                "urgency": i64::MIN,
                "entity": filler.repeat(100_000),
                "title": filler.repeat(100_000),
                "summary": filler.repeat(100_000),
                "details": details,
                "recommended_actions": vec![filler.repeat(100); 5_000],
                "occurrences": i64::MAX,
                "affected_count": i64::MIN,
                "last_seen_at": "2026-11-23T10:00:00Z"
            });
            let links = Links {
                external_url: format!("https://vigil.example/{}", "e".repeat(1_400)),
                generator_url: "https://grafana.example/d/vigil?entity={entity}".into(),
            };
            let message = slack_message(&alert, "escalated", &links);
            let compact = serde_json::to_string(&message).unwrap();
            let pretty = serde_json::to_string_pretty(&message).unwrap();
            assert!(
                compact.len() < 40_000,
                "{filler:?}: {} bytes",
                compact.len()
            );
            assert!(
                pretty.len() < 40_000,
                "{filler:?}: {} bytes pretty",
                pretty.len()
            );

            let chars = |v: &Value| v.as_str().unwrap().chars().count();
            assert!(chars(&message["text"]) <= 3_000);
            assert!(message["text"].as_str().unwrap().ends_with('…'));
            assert!(chars(&attachment(&message)["fallback"]) <= 300);
            assert!(header(&message).chars().count() <= 150);
            assert!(body(&message).chars().count() <= 3_000);
            assert!(body(&message).ends_with('…'));
            for text in section_texts(&message) {
                assert!(text.chars().count() <= 3_000);
            }
            assert!(context(&message).chars().count() <= 3_000);
            let blocks = blocks(&message);
            let sections: Vec<&Vec<Value>> = blocks
                .iter()
                .filter_map(|b| b["fields"].as_array())
                .collect();
            assert_eq!(sections.len(), 2, "{filler:?}");
            assert!(sections.iter().all(|f| f.len() <= 10));
            assert_eq!(fields(&message).len(), 15, "{filler:?}");
            for f in sections.into_iter().flatten() {
                assert!(chars(&f["text"]) <= 2_000);
            }
            // The generator link of a 100 000-character entity is too long
            // for a button and left out; the external one fits.
            let buttons = blocks.iter().find(|b| b["type"] == "actions").unwrap();
            let buttons = buttons["elements"].as_array().unwrap();
            assert_eq!(buttons.len(), 1);
            assert_eq!(buttons[0]["url"], links.external_url);
        }
    }

    #[test]
    fn buttons_link_to_the_alert_and_to_pg_vigil_when_the_links_are_set() {
        let links = Links {
            external_url: "https://vigil.example/".into(),
            generator_url: "https://grafana.example/d/vigil?var-alert={id}&var-entity={entity}"
                .into(),
        };
        let message = slack_message(&sample(), "new", &links);
        let actions = blocks(&message)
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        assert_eq!(
            actions["elements"],
            json!([
                {"type": "button", "text": {"type": "plain_text", "text": "View alert"},
                 "action_id": "vigil_view_alert",
                 "url": "https://grafana.example/d/vigil?var-alert=42&var-entity=checkout"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open pg_vigil"},
                 "action_id": "vigil_open", "url": "https://vigil.example/"}
            ])
        );
        // No links set, no buttons; a link that is not http(s) is no link.
        assert!(!blocks(&slack(&sample(), "new"))
            .iter()
            .any(|b| b["type"] == "actions"));
        let bad = Links {
            external_url: "javascript:alert(1)".into(),
            generator_url: String::new(),
        };
        assert!(!blocks(&slack_message(&sample(), "new", &bad))
            .iter()
            .any(|b| b["type"] == "actions"));
    }

    #[test]
    fn missing_null_or_mistyped_keys_still_produce_messages() {
        let all_null: Map<String, Value> = sample()
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), Value::Null))
            .collect();
        let mistyped = json!({
            "id": "7", "severity": 3, "urgency": "95", "title": ["x"], "details": [1],
            "recommended_actions": "Restart it", "occurrences": 2.0, "status": {}
        });
        for alert in [
            json!(null),
            json!([1]),
            json!("x"),
            json!({}),
            Value::Object(all_null),
        ] {
            let message = slack(&alert, "new");
            assert_eq!(message["text"], "[INFO] pg_vigil alert");
            assert_eq!(body(&message), "pg_vigil alert");
            assert_eq!(fields(&message), [("Severity".into(), "Info".into())]);
            let hook = webhook_message(&alert, "new", "ops");
            assert_eq!(hook["status"], "firing");
            assert_eq!(hook["groupKey"], "{}:{alertname=\"pg_vigil\"}");
            assert_eq!(hook["alerts"][0]["startsAt"], ZERO_TIME);
            assert_eq!(
                hook["alerts"][0]["labels"],
                json!({"alertname": "pg_vigil", "severity": "info"})
            );
            assert_eq!(hook["vigil"]["alert"], alert);
        }
        let message = slack(&mistyped, "new");
        assert_eq!(message["text"], "[3] pg_vigil alert");
        assert_eq!(
            field_value(&message, "Urgency").as_deref(),
            Some("95/100 (immediate)")
        );
        assert_eq!(field_value(&message, "Occurrences").as_deref(), Some("2"));
        assert_eq!(
            section_texts(&message).last().unwrap(),
            "*Recommended actions*\n• Restart it"
        );
        assert_eq!(context(&message), "pg_vigil · alert #7");
    }

    #[test]
    fn summary_falls_back_to_the_title() {
        let alert = with(sample(), "summary", Value::Null);
        assert_eq!(body(&slack(&alert, "new")), "Signup rate dropped");
        let hook = webhook_message(&alert, "new", "ops");
        assert_eq!(
            hook["alerts"][0]["annotations"]["summary"],
            "Signup rate dropped"
        );
    }

    #[test]
    fn webhook_has_the_alertmanager_v4_shape() {
        let hook = webhook_message(&sample(), "new", "ops-team");
        let labels = json!({
            "alertname": "signup_drop",
            "anomaly_type": "signup_drop",
            "severity": "high",
            "entity": "checkout",
            "monitor": "m1",
            "rule": "r1"
        });
        let annotations = json!({
            "title": "Signup rate dropped",
            "summary": "Signups fell 18 points below the 7-day average",
            "description": "Signups fell 18 points below the 7-day average\n\
                Urgency: 80/100 (hours)\nAverage 7d: 80\nCurrent: 62\nDrop points: 18",
            "recommended_actions": "Check the signup form\nCompare with last week",
            "dedup_key": "m1:checkout"
        });
        let expected = json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"signup_drop\", anomaly_type=\"signup_drop\", entity=\"checkout\", \
                         monitor=\"m1\", rule=\"r1\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops-team",
            "groupLabels": {"alertname": "signup_drop", "anomaly_type": "signup_drop", "entity": "checkout",
                            "monitor": "m1", "rule": "r1"},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-11-23T10:00:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "1971af89d4bf7fff",
            }],
            "vigil": {"event": "new", "alert": sample()}
        });
        assert_eq!(hook, expected);
    }

    #[test]
    fn webhook_fingerprint_is_a_stable_fnv1a_of_the_dedup_key() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let print =
            |alert: &Value| webhook_message(alert, "new", "r")["alerts"][0]["fingerprint"].clone();
        let first = print(&with(sample(), "dedup_key", json!("a")));
        assert_eq!(first, "af63dc4c8601ec8c");
        let again = with(
            with(sample(), "dedup_key", json!("a")),
            "title",
            json!("other"),
        );
        assert_eq!(print(&again), first);
        assert_ne!(print(&with(sample(), "dedup_key", json!("b"))), first);
        let fallback = print(&with(sample(), "dedup_key", Value::Null));
        assert_eq!(fallback, format!("{:016x}", fnv1a64(b"alert-42")));
        for value in [first, fallback] {
            let hex = value.as_str().unwrap();
            assert_eq!(hex.len(), 16);
            assert!(hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
    }

    #[test]
    fn resolved_webhooks_end_at_resolution_and_firing_ones_at_zero_time() {
        let alert = with(sample(), "resolved_at", json!("2026-11-23 13:00:00.5+02"));
        let hook = webhook_message(&alert, "resolved", "ops");
        assert_eq!(hook["status"], "resolved");
        assert_eq!(hook["alerts"][0]["status"], "resolved");
        assert_eq!(hook["alerts"][0]["endsAt"], "2026-11-23T11:00:00.5Z");
        let unset = webhook_message(&sample(), "resolved", "ops");
        assert_eq!(unset["alerts"][0]["endsAt"], "2026-11-23T10:00:00Z");
        let firing = webhook_message(&alert, "escalated", "ops");
        assert_eq!(firing["status"], "firing");
        assert_eq!(firing["alerts"][0]["endsAt"], ZERO_TIME);
        let closed = with(alert, "status", json!("resolved"));
        assert_eq!(
            webhook_message(&closed, "test", "ops")["status"],
            "resolved"
        );
    }

    #[test]
    fn webhook_times_are_utc_rfc3339_or_passed_through() {
        assert_eq!(
            rfc3339("2026-11-23 15:30:00.5+05:30"),
            "2026-11-23T10:00:00.5Z"
        );
        assert_eq!(rfc3339("2024-03-01 01:00:00+02"), "2024-02-29T23:00:00Z");
        assert_eq!(rfc3339("2024-03-01 01:00:00-02"), "2024-03-01T03:00:00Z");
        assert_eq!(
            rfc3339("2026-01-01T00:00:00.1234567891234Z"),
            "2026-01-01T00:00:00.123456789Z"
        );
        assert_eq!(rfc3339("yesterday"), "yesterday");
        let odd = with(sample(), "created_at", json!("yesterday"));
        assert_eq!(
            webhook_message(&odd, "new", "r")["alerts"][0]["startsAt"],
            "yesterday"
        );
    }

    #[test]
    fn stored_labels_and_fingerprint_are_what_the_webhook_carries() {
        let alert = with(
            with(
                sample(),
                "labels",
                json!({"alertname": "SIGNUPS", "team": "growth", "severity": "low", "n": 3}),
            ),
            "fingerprint",
            json!("00000000000000aa"),
        );
        let hook = webhook_message(&alert, "new", "r");
        let labels = &hook["alerts"][0]["labels"];
        assert_eq!(labels["alertname"], "SIGNUPS");
        assert_eq!(labels["team"], "growth");
        assert_eq!(labels["n"], "3", "labels are strings");
        assert_eq!(
            labels["severity"], "high",
            "the alert's current severity wins"
        );
        assert_eq!(hook["alerts"][0]["fingerprint"], "00000000000000aa");
        assert!(hook["groupLabels"].get("severity").is_none());
        assert_eq!(hook["groupLabels"]["team"], "growth");
        // The dated key never reaches the labels, so they stay the same
        // from one day to the next.
        let tomorrow = with(alert, "dedup_key", json!("signup_drop_checkout_2026-11-24"));
        let again = webhook_message(&tomorrow, "new", "r");
        assert_eq!(again["groupKey"], hook["groupKey"]);
        assert_eq!(again["alerts"][0]["labels"], hook["alerts"][0]["labels"]);
    }

    #[test]
    fn links_come_from_the_settings_and_are_url_encoded_or_empty() {
        let links = Links {
            external_url: "https://grafana.example/d/vigil".into(),
            generator_url: "https://grafana.example/d/vigil?var-alert={id}&var-entity={entity}"
                .into(),
        };
        let alert = with(sample(), "entity", json!("a b&c"));
        let hook = webhook_message_with(&alert, "new", "r", &links);
        assert_eq!(hook["externalURL"], "https://grafana.example/d/vigil");
        assert_eq!(
            hook["alerts"][0]["generatorURL"],
            "https://grafana.example/d/vigil?var-alert=42&var-entity=a+b%26c"
        );
        for bad in ["javascript:alert(1)", "not a url", "ftp://x/"] {
            let links = Links {
                external_url: bad.into(),
                generator_url: bad.into(),
            };
            let hook = webhook_message_with(&alert, "new", "r", &links);
            assert_eq!(hook["externalURL"], "", "{bad}");
            assert_eq!(hook["alerts"][0]["generatorURL"], "", "{bad}");
        }
        assert_eq!(webhook_message(&alert, "new", "r")["externalURL"], "");
    }

    #[test]
    fn a_group_is_one_message_with_common_labels_and_bounded_size() {
        let alert = |id: i64, entity: &str, status: &str| {
            with(
                with(with(sample(), "id", json!(id)), "entity", json!(entity)),
                "status",
                json!(status),
            )
        };
        let alerts = vec![alert(1, "a", "firing"), alert(2, "b", "resolved")];
        let group = json!({"alertname": "signup_drop"})
            .as_object()
            .unwrap()
            .clone();
        let hook = webhook_group_message(&alerts, &group, "ops", &Links::default(), 1 << 20, 0);
        assert_eq!(hook["status"], "firing");
        assert_eq!(hook["groupKey"], "{}:{alertname=\"signup_drop\"}");
        assert_eq!(hook["groupLabels"], json!({"alertname": "signup_drop"}));
        assert_eq!(hook["commonLabels"]["monitor"], "m1");
        assert!(hook["commonLabels"].get("entity").is_none());
        assert_eq!(hook["alerts"][1]["status"], "resolved");
        assert_eq!(hook["truncatedAlerts"], 0);
        assert_eq!(hook["vigil"]["alert_ids"], json!([1, 2]));
        // Past the cap, alerts are left out from the end and counted.
        let many: Vec<Value> = (0..200)
            .map(|i| alert(i, &format!("e{i}"), "firing"))
            .collect();
        let capped = webhook_group_message(&many, &group, "ops", &Links::default(), 20_000, 7);
        let kept = capped["alerts"].as_array().unwrap().len();
        assert!(kept > 0 && kept < 200);
        assert_eq!(capped["truncatedAlerts"], 200 - kept + 7);
        assert_eq!(capped["vigil"]["alert_ids"].as_array().unwrap().len(), kept);
        assert!(
            capped.to_string().len() <= 20_000,
            "{}",
            capped.to_string().len()
        );
        let slack = slack_group_message(&many, &group, &Links::default(), 1 << 20, 0);
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:200] signup_drop"));
        let attachments = slack["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 21, "20 alerts and a line for the rest");
        assert!(slack.to_string().len() < MAX_MESSAGE_BYTES);
        let closed = vec![alert(3, "c", "resolved")];
        let done = slack_group_message(&closed, &group, &Links::default(), 1 << 20, 0);
        assert!(done["text"].as_str().unwrap().starts_with("[RESOLVED:1]"));
        // An escalation step's message says so first.
        let step = json!({"escalation_policy": "pager<1>", "escalation_step": "2"})
            .as_object()
            .unwrap()
            .clone();
        let paged = slack_group_message(&alerts[..1], &step, &Links::default(), 1 << 20, 0);
        assert_eq!(
            paged["text"].as_str().unwrap(),
            "[ESCALATION pager&lt;1&gt; step 2] [FIRING:1] signup_drop"
        );
    }

    #[test]
    fn dismissed_and_expired_are_closing_messages() {
        for event in ["dismissed", "expired"] {
            let hook = webhook_message(&sample(), event, "r");
            assert_eq!(hook["status"], "resolved", "{event}");
            let slack = slack(&sample(), event);
            let text = slack["text"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("{}: ", event.to_uppercase())),
                "{text}"
            );
            assert_eq!(attachment(&slack)["color"], RESOLVED_COLOR);
        }
        let closed = with(sample(), "status", json!("dismissed"));
        assert_eq!(webhook_message(&closed, "test", "r")["status"], "resolved");
    }

    #[test]
    fn listeners_get_the_alert_id_and_event_only() {
        assert_eq!(
            pg_notify_message(&sample(), "new"),
            json!({"id": 42, "event": "new"})
        );
        assert_eq!(
            pg_notify_message(&json!({}), "resolved"),
            json!({"id": null, "event": "resolved"})
        );
    }

    #[test]
    fn webhook_group_key_quotes_label_values() {
        let alert = with(sample(), "anomaly_type", json!("a\"b\\c"));
        let hook = webhook_message(&alert, "new", "r");
        assert_eq!(
            hook["groupKey"],
            "{}:{alertname=\"a\\\"b\\\\c\", anomaly_type=\"a\\\"b\\\\c\", entity=\"checkout\", \
             monitor=\"m1\", rule=\"r1\"}"
        );
    }

    #[test]
    fn webhook_leaves_text_unescaped_and_carries_the_event() {
        let alert = with(sample(), "entity", json!("<!channel> & co"));
        let hook = webhook_message(&alert, "test", "r");
        assert_eq!(hook["commonLabels"]["entity"], "<!channel> & co");
        assert_eq!(hook["vigil"]["event"], "test");
        assert_eq!(hook["vigil"]["alert"], alert);
    }

    #[test]
    fn json_depth_counts_nesting_and_ignores_brackets_in_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth("{}"), 1);
        assert_eq!(json_depth(r#"{"a": [1, {"b": []}]}"#), 4);
        assert_eq!(json_depth(r#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(json_depth(r#"{"a": "\\\"[[["}"#), 1);
        assert_eq!(json_depth(r#"["\\", [[]]]"#), 3);
    }

    #[test]
    fn deep_json_is_refused_with_the_argument_named_not_a_panic() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = read_json(&deep).unwrap_err();
        assert_eq!(
            err,
            JsonReadError::TooDeep {
                depth: 10_000,
                limit: 64
            }
        );
        assert_eq!(
            err.message("alert"),
            "alert is nested 10000 levels deep; at most 64 are allowed"
        );
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(read_json(&ok).is_ok());
        // 65 levels: under serde_json's limit, still refused by ours.
        let over = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert!(matches!(
            read_json(&over),
            Err(JsonReadError::TooDeep { depth: 65, .. })
        ));
    }

    #[test]
    fn numbers_serde_json_cannot_hold_are_named_errors() {
        // How PostgreSQL prints the jsonb number 1e400.
        let huge = format!("{{\"urgency\": 1{}}}", "0".repeat(400));
        let err = read_json(&huge).unwrap_err();
        let msg = err.message("alert");
        assert!(
            msg.starts_with("alert cannot be read as JSON: number out of range"),
            "{msg}"
        );
        assert!(!msg.contains("line"), "{msg}");
        // Huge but shallow documents are fine.
        let wide = format!("[{}1]", "1,".repeat(200_000));
        assert!(read_json(&wide).is_ok());
    }
}
