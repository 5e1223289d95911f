//! The bodies for PagerDuty (Events API v2), Microsoft Teams (a Workflows
//! webhook carrying an Adaptive Card), Alertmanager (API v2
//! `postableAlert`s) and email (subject, text and HTML), as serde-derived
//! types: the
//! field names and enumerations the providers document are spelled once,
//! here, and a body is what serde writes of them (tests round-trip them).
//! Pure functions of the `to_jsonb` form of a `vigil.alerts` row, like
//! `payload`.

use super::payload::{
    actions, cut, fingerprint, generator_url, http_url, int, is_resolved, key_metrics, scalar_text,
    severity, text, title, urgency_band, wire_labels, Limit, Links, MAX_URL_BYTES,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ---------------------------------------------------------------- PagerDuty

/// PagerDuty's documented bounds: `payload.summary` 1024 characters,
/// `dedup_key` 255.
const PD_SUMMARY: Limit = Limit {
    chars: 1024,
    bytes: 4096,
};
const PD_DEDUP_CHARS: usize = 255;
const PD_TEXT: Limit = Limit {
    chars: 255,
    bytes: 1024,
};
/// `custom_details` is bounded by construction so an event stays far below
/// PagerDuty's 512 KB and within the default `vigil.max_payload_bytes`
/// (64 KiB) even for hostile alerts: each label and metric key or value
/// and each recommended action is cut, and at most `PD_LABELS` labels and
/// `PD_ACTIONS` actions are carried (key metrics are at most 10 already).
const PD_DETAIL: Limit = Limit {
    chars: 500,
    bytes: 1024,
};
const PD_KEY: Limit = Limit {
    chars: 128,
    bytes: 512,
};
const PD_LABELS: usize = 20;
const PD_ACTIONS: usize = 10;

/// An Events API v2 alert event (`POST /v2/enqueue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagerDutyEvent {
    /// The integration's routing key: a secret, so the stored payload never
    /// holds it; the worker adds it from the channel's `options` as it
    /// sends (`with_routing_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    pub event_action: EventAction,
    /// The alert's fingerprint: PagerDuty's alert for it is triggered,
    /// acknowledged and resolved by it.
    pub dedup_key: String,
    /// Required for `trigger`, ignored otherwise (so left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PagerDutyPayload>,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PagerDutyLink>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    Critical,
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagerDutyPayload {
    pub summary: String,
    pub source: String,
    pub severity: PagerDutySeverity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default)]
    pub custom_details: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagerDutyLink {
    pub href: String,
    pub text: String,
}

/// vigil's severities on PagerDuty's four: critical → critical, high →
/// error, medium → warning, low and info → info.
pub fn pagerduty_severity(severity: &str) -> PagerDutySeverity {
    match severity {
        "critical" => PagerDutySeverity::Critical,
        "high" => PagerDutySeverity::Error,
        "medium" => PagerDutySeverity::Warning,
        _ => PagerDutySeverity::Info,
    }
}

/// The action an alert event is on PagerDuty: `acknowledged` acknowledges,
/// the closing events (resolved, dismissed, expired) resolve, everything
/// else (new, escalated, test) triggers — a trigger of an alert PagerDuty
/// already has updates it.
pub fn event_action(alert: &Map<String, Value>, event: &str) -> EventAction {
    if event == "acknowledged" {
        EventAction::Acknowledge
    } else if is_resolved(alert, event) {
        EventAction::Resolve
    } else {
        EventAction::Trigger
    }
}

/// The Events API v2 event for `alert` on `event`, without its routing key.
pub fn pagerduty_event(alert: &Value, event: &str, links: &Links) -> PagerDutyEvent {
    let empty = Map::new();
    let a = alert.as_object().unwrap_or(&empty);
    let action = event_action(a, event);
    let labels = wire_labels(a);
    let dedup_key: String = fingerprint(a).chars().take(PD_DEDUP_CHARS).collect();
    let payload = (action == EventAction::Trigger).then(|| {
        let prefix = if event == "test" { "TEST: " } else { "" };
        let summary = match text(a, "summary") {
            Some(s) => format!("{prefix}{}: {s}", title(a)),
            None => format!("{prefix}{}", title(a)),
        };
        let mut details = Map::new();
        details.insert("event".into(), event.into());
        for key in ["id", "status", "occurrences", "urgency"] {
            if let Some(v) = a.get(key).filter(|v| scalar_text(v).is_some()) {
                details.insert(key.into(), v.clone());
            }
        }
        if let Some(u) = int(a, "urgency") {
            details.insert("urgency_band".into(), urgency_band(u).into());
        }
        let shown: Map<String, Value> = labels
            .iter()
            .take(PD_LABELS)
            .map(|(k, v)| {
                let v = v.as_str().unwrap_or_default();
                (cut(k, PD_KEY), cut(v, PD_DETAIL).into())
            })
            .collect();
        details.insert("labels".into(), Value::Object(shown));
        for (label, value) in key_metrics(a) {
            details
                .entry(cut(&label, PD_KEY))
                .or_insert(cut(&value, PD_DETAIL).into());
        }
        let acts: Vec<Value> = actions(a)
            .iter()
            .take(PD_ACTIONS)
            .map(|x| cut(x, PD_DETAIL).into())
            .collect();
        if !acts.is_empty() {
            details.insert("recommended_actions".into(), acts.into());
        }
        PagerDutyPayload {
            summary: cut(&summary, PD_SUMMARY),
            // "The unique location of the affected system": the entity the
            // alert is about, else the monitor or rule that raised it.
            source: ["entity", "monitor", "rule"]
                .into_iter()
                .find_map(|k| text(a, k))
                .map_or_else(|| "pg_vigil".to_owned(), |s| cut(&s, PD_TEXT)),
            severity: pagerduty_severity(&severity(a)),
            timestamp: text(a, "last_seen_at")
                .or_else(|| text(a, "created_at"))
                .map(|t| super::payload::rfc3339(&t)),
            component: text(a, "monitor")
                .or_else(|| text(a, "rule"))
                .map(|s| cut(&s, PD_TEXT)),
            group: text(a, "anomaly_type").map(|s| cut(&s, PD_TEXT)),
            class: labels
                .get("alertname")
                .and_then(Value::as_str)
                .map(|s| cut(s, PD_TEXT)),
            custom_details: details,
        }
    });
    // A link too long to be useful is left out rather than cut (a cut URL
    // leads somewhere else).
    let generator = Some(generator_url(&links.generator_url, a, &labels))
        .filter(|u| u.len() <= MAX_URL_BYTES)
        .unwrap_or_default();
    PagerDutyEvent {
        routing_key: None,
        event_action: action,
        dedup_key,
        payload,
        client: "pg_vigil".into(),
        client_url: Some(http_url(&links.external_url))
            .filter(|u| !u.is_empty() && u.len() <= MAX_URL_BYTES),
        links: if generator.is_empty() {
            Vec::new()
        } else {
            vec![PagerDutyLink {
                href: generator,
                text: "Alert in pg_vigil".into(),
            }]
        },
    }
}

/// The stored body `payload` with the channel's routing key (from its
/// `options`) added, as sent; the body as it is when either is not what
/// the channels trigger stores (PagerDuty then refuses it: failed).
pub fn with_routing_key(payload: &str, options: &str) -> Vec<u8> {
    let key = serde_json::from_str::<Value>(options).ok().and_then(|o| {
        o.get("routing_key")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    match (key, serde_json::from_str::<PagerDutyEvent>(payload)) {
        (Some(key), Ok(mut event)) => {
            event.routing_key = Some(key);
            serde_json::to_vec(&event).unwrap_or_else(|_| payload.as_bytes().to_vec())
        }
        _ => payload.as_bytes().to_vec(),
    }
}

/// What `options` a channel of `kind` needs, as a message naming what is
/// wrong; None when they will do. PagerDuty: `routing_key`, the
/// integration key (32 characters, letters and digits). Other kinds take
/// no options.
pub fn check_options(kind: &str, options: &Value) -> Option<String> {
    let Some(map) = options.as_object() else {
        return Some("options must be a JSON object".into());
    };
    if kind == "email" {
        return super::mail::check_options(options);
    }
    let allowed: &[&str] = match kind {
        "pagerduty" => &["routing_key"],
        _ => &[],
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Some(if allowed.is_empty() {
            format!(
                "options: a {kind} channel takes no options, got \"{}\"",
                cut_name(k)
            )
        } else {
            format!(
                "options: unknown key \"{}\" for a {kind} channel (allowed: {})",
                cut_name(k),
                allowed.join(", ")
            )
        });
    }
    if kind == "pagerduty" {
        match map.get("routing_key") {
            Some(Value::String(k))
                if k.len() == 32 && k.bytes().all(|b| b.is_ascii_alphanumeric()) => {}
            Some(_) => {
                return Some(
                    "options.routing_key must be a PagerDuty integration key: 32 letters and digits"
                        .into(),
                )
            }
            None => {
                return Some(
                    "options.routing_key is required for a pagerduty channel (the Events API v2 integration key)"
                        .into(),
                )
            }
        }
    }
    None
}

fn cut_name(k: &str) -> String {
    k.chars().take(64).collect()
}

// ------------------------------------------------------------ Microsoft Teams

/// Teams refuses a webhook message over about 28 KB.
pub const TEAMS_MAX_BYTES: usize = 28_000;
const CARD_TITLE: Limit = Limit {
    chars: 250,
    bytes: 1_000,
};
const CARD_TEXT: Limit = Limit {
    chars: 1_000,
    bytes: 3_000,
};
const CARD_FACT: Limit = Limit {
    chars: 200,
    bytes: 600,
};
const CARD_FACT_TITLE: Limit = Limit {
    chars: 100,
    bytes: 300,
};
/// Recommended actions one card lists.
const CARD_ACTIONS: usize = 10;
/// Alerts one grouped card lists in full; the rest are counted.
const CARD_GROUP_ALERTS: usize = 20;

/// A Workflows webhook message ("Post to a channel when a webhook request
/// is received"): one attachment holding an Adaptive Card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamsMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub attachments: Vec<TeamsAttachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamsAttachment {
    #[serde(rename = "contentType")]
    pub content_type: String,
    /// Always null: the card is inline (`content`).
    #[serde(rename = "contentUrl")]
    pub content_url: Option<String>,
    pub content: AdaptiveCard,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveCard {
    #[serde(rename = "$schema")]
    pub schema: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    pub body: Vec<CardElement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<CardAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msteams: Option<TeamsCardOptions>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamsCardOptions {
    pub width: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CardElement {
    TextBlock {
        text: String,
        wrap: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
        #[serde(rename = "isSubtle", default, skip_serializing_if = "Option::is_none")]
        is_subtle: Option<bool>,
    },
    FactSet {
        facts: Vec<Fact>,
    },
    Container {
        items: Vec<CardElement>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        separator: Option<bool>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub title: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CardAction {
    #[serde(rename = "Action.OpenUrl")]
    OpenUrl { title: String, url: String },
}

/// Adaptive Card text is Markdown (emphasis, lists, `[text](url)` links):
/// user text gets the characters that open emphasis, code or a link
/// escaped, so an alert's title cannot make a disguised link.
fn plain(raw: &str, limit: Limit) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '\\' | '*' | '_' | '[' | ']' | '`' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    cut(&out, limit)
}

fn text_block(text: String) -> CardElement {
    CardElement::TextBlock {
        text,
        wrap: true,
        size: None,
        weight: None,
        color: None,
        is_subtle: None,
    }
}

/// Adaptive Card colours: critical and high "attention", medium
/// "warning", resolved "good", the rest "accent".
fn card_color(severity: &str, resolved: bool) -> &'static str {
    if resolved {
        return "good";
    }
    match severity {
        "critical" | "high" => "attention",
        "medium" => "warning",
        _ => "accent",
    }
}

fn heading(text: String, color: &str, size: &str) -> CardElement {
    CardElement::TextBlock {
        text,
        wrap: true,
        size: Some(size.into()),
        weight: Some("Bolder".into()),
        color: Some(color.into()),
        is_subtle: None,
    }
}

fn event_prefix(a: &Map<String, Value>, event: &str) -> &'static str {
    match event {
        "test" => "TEST: ",
        "dismissed" => "DISMISSED: ",
        "expired" => "EXPIRED: ",
        "escalated" => "ESCALATED: ",
        _ if is_resolved(a, event) => "RESOLVED: ",
        _ => "",
    }
}

/// One alert's part of a card: heading, summary, facts.
fn alert_elements(a: &Map<String, Value>, event: &str, size: &str) -> Vec<CardElement> {
    let sev = severity(a);
    let resolved = is_resolved(a, event);
    let mut out = vec![heading(
        format!(
            "{}[{}] {}",
            event_prefix(a, event),
            plain(&sev.to_uppercase(), CARD_FACT),
            plain(&title(a), CARD_TITLE)
        ),
        card_color(&sev, resolved),
        size,
    )];
    if let Some(s) = text(a, "summary") {
        out.push(text_block(plain(&s, CARD_TEXT)));
    }
    let mut facts = Vec::new();
    let mut fact = |t: &str, v: String| {
        facts.push(Fact {
            title: plain(t, CARD_FACT_TITLE),
            value: plain(&v, CARD_FACT),
        })
    };
    fact("Severity", sev.clone());
    if let Some(u) = int(a, "urgency") {
        fact("Urgency", format!("{u}/100 ({})", urgency_band(u)));
    }
    for (label, key) in [
        ("Entity", "entity"),
        ("Status", "status"),
        ("Occurrences", "occurrences"),
        ("Affected", "affected_count"),
    ] {
        if let Some(v) = text(a, key) {
            fact(label, v);
        }
    }
    for (label, value) in key_metrics(a) {
        fact(&label, value);
    }
    out.push(CardElement::FactSet { facts });
    let acts = actions(a);
    if !acts.is_empty() {
        out.push(text_block(
            acts.iter()
                .take(CARD_ACTIONS)
                .map(|x| format!("- {}", plain(x, CARD_FACT)))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    out
}

fn teams_message(body: Vec<CardElement>, actions: Vec<CardAction>) -> TeamsMessage {
    TeamsMessage {
        kind: "message".into(),
        attachments: vec![TeamsAttachment {
            content_type: "application/vnd.microsoft.card.adaptive".into(),
            content_url: None,
            content: AdaptiveCard {
                schema: "http://adaptivecards.io/schemas/adaptive-card.json".into(),
                kind: "AdaptiveCard".into(),
                version: "1.4".into(),
                body,
                actions,
                msteams: Some(TeamsCardOptions {
                    width: "Full".into(),
                }),
            },
        }],
    }
}

/// A button to `url`; none when there is no link, or one too long to be
/// useful (left out rather than cut: a cut URL leads somewhere else).
fn open_url(title: &str, url: String) -> Option<CardAction> {
    (!url.is_empty() && url.len() <= MAX_URL_BYTES).then(|| CardAction::OpenUrl {
        title: title.into(),
        url,
    })
}

/// The Teams message for `alert` on `event`: a card with the alert's
/// heading (severity colour), summary, facts and recommended actions, and
/// a button to the alert where `vigil.generator_url` is set.
pub fn teams_alert_message(alert: &Value, event: &str, links: &Links) -> TeamsMessage {
    let empty = Map::new();
    let a = alert.as_object().unwrap_or(&empty);
    let labels = wire_labels(a);
    let actions = open_url(
        "Open in pg_vigil",
        generator_url(&links.generator_url, a, &labels),
    )
    .into_iter()
    .collect();
    teams_message(alert_elements(a, event, "Large"), actions)
}

/// One Teams message for a group of alerts: `[FIRING:n] <group labels>`,
/// then each alert (at most 20, in the order given), then how many more;
/// within `cap` bytes (and Teams' 28 KB) whatever the alerts hold.
pub fn teams_group_message(
    alerts: &[Value],
    group_labels: &Map<String, Value>,
    links: &Links,
    cap: usize,
    omitted: usize,
) -> TeamsMessage {
    let empty = Map::new();
    let maps: Vec<&Map<String, Value>> = alerts
        .iter()
        .map(|a| a.as_object().unwrap_or(&empty))
        .collect();
    let firing = maps.iter().filter(|a| !is_resolved(a, "group")).count();
    let resolved = maps.len() - firing;
    let mut head = if firing > 0 {
        format!("[FIRING:{firing}]")
    } else {
        format!("[RESOLVED:{resolved}]")
    };
    let labels: Vec<String> = group_labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", scalar_text(v)?)))
        .collect();
    if !labels.is_empty() {
        head.push(' ');
        head.push_str(&plain(&labels.join(" "), CARD_TITLE));
    }
    let color = if firing > 0 { "attention" } else { "good" };
    let mut body = vec![heading(head, color, "Large")];
    let cap = cap.min(TEAMS_MAX_BYTES);
    // jsonb's text form spaces out what serde writes: keep an eighth spare.
    let budget = cap.saturating_sub(cap / 8 + 200);
    let mut size =
        serde_json::to_string(&teams_message(body.clone(), Vec::new())).map_or(0, |s| s.len());
    let mut shown = 0;
    for a in maps.iter().take(CARD_GROUP_ALERTS) {
        let part = CardElement::Container {
            items: alert_elements(a, "group", "Medium"),
            separator: Some(true),
        };
        let n = serde_json::to_string(&part).map_or(usize::MAX, |s| s.len() + 1);
        if size.saturating_add(n) > budget {
            break;
        }
        size += n;
        body.push(part);
        shown += 1;
    }
    let more = alerts.len() - shown + omitted;
    if more > 0 {
        body.push(CardElement::TextBlock {
            text: format!("… and {more} more"),
            wrap: true,
            size: None,
            weight: None,
            color: None,
            is_subtle: Some(true),
        });
    }
    let actions = open_url("Open pg_vigil", http_url(&links.external_url))
        .into_iter()
        .collect();
    teams_message(body, actions)
}

// --------------------------------------------------------------- Alertmanager

/// One alert as Alertmanager's API v2 takes it (`postableAlert`, POSTed in
/// an array to `/api/v2/alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostableAlert {
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub generator_url: String,
}

/// `alert` as Alertmanager takes it on `event`: the labels and annotations
/// of the webhook's alert entry, `startsAt` when it began; `endsAt` when it
/// closed for a closing event (Alertmanager then resolves it), else
/// `open_until` — a few resend intervals ahead, so the alert stays active
/// while vigil keeps re-posting it and ends by itself if vigil stops.
pub fn alertmanager_alert(
    alert: &Value,
    event: &str,
    open_until: &str,
    links: &Links,
) -> PostableAlert {
    let entry = super::payload::alert_entry(alert, event, links);
    let field = |k: &str| {
        entry
            .json
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    PostableAlert {
        starts_at: field("startsAt"),
        ends_at: if entry.status == "resolved" {
            field("endsAt")
        } else {
            open_until.to_owned()
        },
        generator_url: field("generatorURL"),
        labels: entry.labels,
        annotations: entry.annotations,
    }
}

/// The bodies that re-post `alerts` (open ones, `open_until` ahead), as few
/// as fit within `cap` bytes each.
pub fn alertmanager_batches(
    alerts: &[Value],
    open_until: &str,
    links: &Links,
    cap: usize,
) -> Vec<Value> {
    // jsonb's text form spaces out what serde writes: keep an eighth spare.
    let budget = cap.saturating_sub(cap / 8).max(1);
    let mut out = Vec::new();
    let (mut batch, mut size) = (Vec::new(), 2);
    for a in alerts {
        let v = serde_json::to_value(alertmanager_alert(a, "resend", open_until, links))
            .unwrap_or(Value::Null);
        let n = v.to_string().len() + 1;
        if !batch.is_empty() && size + n > budget {
            out.push(Value::Array(std::mem::take(&mut batch)));
            size = 2;
        }
        size += n;
        batch.push(v);
    }
    if !batch.is_empty() {
        out.push(Value::Array(batch));
    }
    out
}

// -------------------------------------------------------------------- Email

const MAIL_TITLE: Limit = Limit {
    chars: 200,
    bytes: 800,
};
const MAIL_TEXT: Limit = Limit {
    chars: 2_000,
    bytes: 8_000,
};
/// Alerts one grouped email lists in full; the rest are counted.
const MAIL_GROUP_ALERTS: usize = 50;

fn html_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The facts of an alert an email lists, (label, value).
fn mail_facts(a: &Map<String, Value>) -> Vec<(String, String)> {
    let mut facts = vec![("Severity".to_owned(), severity(a))];
    if let Some(u) = int(a, "urgency") {
        facts.push(("Urgency".into(), format!("{u}/100 ({})", urgency_band(u))));
    }
    for (label, key) in [
        ("Entity", "entity"),
        ("Status", "status"),
        ("Occurrences", "occurrences"),
        ("Affected", "affected_count"),
        ("Started", "created_at"),
        ("Last seen", "last_seen_at"),
    ] {
        if let Some(v) = text(a, key) {
            facts.push((label.into(), cut(&v, MAIL_TITLE)));
        }
    }
    facts.extend(
        key_metrics(a)
            .into_iter()
            .map(|(l, v)| (l, cut(&v, MAIL_TITLE))),
    );
    facts
}

/// One alert as text and as HTML (a heading, the summary, a table of
/// facts, the recommended actions).
fn mail_alert(a: &Map<String, Value>, event: &str, links: &Links) -> (String, String) {
    let head = format!(
        "{}[{}] {}",
        event_prefix(a, event),
        severity(a).to_uppercase(),
        cut(&title(a), MAIL_TITLE)
    );
    let summary = text(a, "summary").map(|s| cut(&s, MAIL_TEXT));
    let facts = mail_facts(a);
    let acts: Vec<String> = actions(a).iter().map(|x| cut(x, MAIL_TITLE)).collect();
    let link = generator_url(&links.generator_url, a, &wire_labels(a));
    let mut text_part = vec![head.clone()];
    if let Some(s) = &summary {
        text_part.push(s.clone());
    }
    text_part.push(String::new());
    text_part.extend(facts.iter().map(|(l, v)| format!("{l}: {v}")));
    if !acts.is_empty() {
        text_part.push(String::new());
        text_part.push("Recommended actions:".into());
        text_part.extend(acts.iter().map(|x| format!("- {x}")));
    }
    if !link.is_empty() {
        text_part.push(String::new());
        text_part.push(link.clone());
    }
    let color = match (is_resolved(a, event), severity(a).as_str()) {
        (true, _) => "#2EB67D",
        (_, "critical") => "#8B0000",
        (_, "high") => "#E01E5A",
        (_, "medium") => "#ECB22E",
        _ => "#36C5F0",
    };
    let mut html = format!("<h2 style=\"color:{color}\">{}</h2>", html_escape(&head));
    if let Some(s) = &summary {
        html.push_str(&format!("<p>{}</p>", html_escape(s)));
    }
    html.push_str("<table>");
    for (l, v) in &facts {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html_escape(l),
            html_escape(v)
        ));
    }
    html.push_str("</table>");
    if !acts.is_empty() {
        html.push_str("<p>Recommended actions:</p><ul>");
        for x in &acts {
            html.push_str(&format!("<li>{}</li>", html_escape(x)));
        }
        html.push_str("</ul>");
    }
    if !link.is_empty() {
        html.push_str(&format!(
            "<p><a href=\"{}\">Open in pg_vigil</a></p>",
            html_escape(&link)
        ));
    }
    (text_part.join("\n"), html)
}

fn mail_document(html_body: &str) -> String {
    format!("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">{html_body}<p style=\"color:#888\">Sent by pg_vigil</p></body></html>")
}

/// The email for `alert` on `event`: subject `[FIRING:1] <title> (<entity>)`
/// (`[RESOLVED]` once it closed, `[TEST]` for a test), a text and an HTML
/// part with the same content.
pub fn email_message(alert: &Value, event: &str, links: &Links) -> super::mail::EmailBody {
    let empty = Map::new();
    let a = alert.as_object().unwrap_or(&empty);
    let tag = if event == "test" {
        "[TEST]".to_owned()
    } else if is_resolved(a, event) {
        "[RESOLVED]".to_owned()
    } else {
        "[FIRING:1]".to_owned()
    };
    let mut subject = format!("{tag} {}", cut(&title(a), MAIL_TITLE));
    if let Some(e) = text(a, "entity") {
        subject.push_str(&format!(" ({})", cut(&e, MAIL_TITLE)));
    }
    let (text_part, html) = mail_alert(a, event, links);
    super::mail::EmailBody {
        subject,
        text: text_part,
        html: mail_document(&html),
    }
}

/// One email for a group of alerts: subject `[FIRING:n] <group labels>`
/// (`[RESOLVED] …` when none fires), each alert (at most 50, in the order
/// given) in both parts, then how many more; within `cap` bytes.
pub fn email_group_message(
    alerts: &[Value],
    group_labels: &Map<String, Value>,
    links: &Links,
    cap: usize,
    omitted: usize,
) -> super::mail::EmailBody {
    let empty = Map::new();
    let maps: Vec<&Map<String, Value>> = alerts
        .iter()
        .map(|a| a.as_object().unwrap_or(&empty))
        .collect();
    let firing = maps.iter().filter(|a| !is_resolved(a, "group")).count();
    let labels: Vec<String> = group_labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", scalar_text(v)?)))
        .collect();
    let tag = if firing > 0 {
        format!("[FIRING:{firing}]")
    } else {
        "[RESOLVED]".to_owned()
    };
    let subject = cut(&format!("{tag} {}", labels.join(" ")), MAIL_TITLE)
        .trim_end()
        .to_owned();
    // Both parts hold every alert, and jsonb's text form adds some: each
    // part gets under half the cap.
    let budget = cap.saturating_sub(cap / 8 + 1_000) / 2;
    let (mut texts, mut htmls) = (Vec::new(), String::new());
    let mut size = 0;
    let mut shown = 0;
    for a in maps.iter().take(MAIL_GROUP_ALERTS) {
        let (t, h) = mail_alert(a, "group", links);
        let n = t.len().max(h.len()) * 2;
        if size + n > budget {
            break;
        }
        size += n;
        texts.push(t);
        htmls.push_str(&format!("{h}<hr>"));
        shown += 1;
    }
    let more = alerts.len() - shown + omitted;
    if more > 0 {
        texts.push(format!("… and {more} more"));
        htmls.push_str(&format!("<p>… and {more} more</p>"));
    }
    super::mail::EmailBody {
        subject,
        text: texts.join("\n\n----\n\n"),
        html: mail_document(&htmls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> Value {
        json!({
            "id": 7, "anomaly_type": "health_drop", "severity": "high", "urgency": 72,
            "entity": "acme [x](http://evil)", "title": "Health *dropped*", "summary": "Acme health 62 vs 80",
            "details": {"drop_points": 18, "nested": {"a": 1}}, "recommended_actions": ["Call them"],
            "dedup_key": "health_drop:acme", "status": "firing", "fingerprint": "0123456789abcdef",
            "created_at": "2026-12-01T10:00:00+00:00", "last_seen_at": "2026-12-01T10:05:00.5+00:00",
            "occurrences": 3, "monitor": "health", "labels": {"team": "cs"}
        })
    }

    fn links() -> Links {
        Links {
            external_url: "https://vigil.example.com/".into(),
            generator_url: "https://vigil.example.com/alerts/{id}".into(),
        }
    }

    #[test]
    fn alertmanager_alerts_stay_open_until_told_and_end_when_closed() {
        let until = "2026-12-01T10:09:00Z";
        let a = alertmanager_alert(&alert(), "new", until, &links());
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["startsAt"], "2026-12-01T10:00:00Z");
        assert_eq!(v["endsAt"], until);
        assert_eq!(v["labels"]["alertname"], "health_drop");
        assert_eq!(v["labels"]["severity"], "high");
        assert_eq!(v["labels"]["team"], "cs");
        assert_eq!(v["annotations"]["summary"], "Acme health 62 vs 80");
        assert_eq!(v["generatorURL"], "https://vigil.example.com/alerts/7");
        let back: PostableAlert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
        let mut closed = alert();
        closed["status"] = json!("resolved");
        closed["resolved_at"] = json!("2026-12-01T10:07:30+00:00");
        let r = alertmanager_alert(&closed, "resolved", until, &Links::default());
        assert_eq!(r.ends_at, "2026-12-01T10:07:30Z");
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("generatorURL").is_none());
    }

    #[test]
    fn alertmanager_resends_split_to_fit_the_cap() {
        let many: Vec<Value> = (0..50)
            .map(|i| {
                let mut a = alert();
                a["id"] = json!(i);
                a["entity"] = json!(format!("e{i}"));
                a
            })
            .collect();
        let until = "2026-12-01T10:09:00Z";
        let one = alertmanager_batches(&many, until, &Links::default(), 1_000_000);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].as_array().unwrap().len(), 50);
        let split = alertmanager_batches(&many, until, &Links::default(), 4_000);
        assert!(split.len() > 1);
        assert_eq!(
            split
                .iter()
                .map(|b| b.as_array().unwrap().len())
                .sum::<usize>(),
            50
        );
        for b in &split {
            assert!(b.to_string().len() <= 4_000);
            assert!(b.as_array().unwrap().iter().all(|x| x["endsAt"] == until));
        }
        assert!(alertmanager_batches(&[], until, &Links::default(), 4_000).is_empty());
    }

    #[test]
    fn an_email_says_firing_or_resolved_and_escapes_html() {
        let mut a = alert();
        a["title"] = json!("Health <b>dropped</b>");
        let m = email_message(&a, "new", &links());
        assert_eq!(
            m.subject,
            "[FIRING:1] Health <b>dropped</b> (acme [x](http://evil))"
        );
        assert!(m.text.contains("Severity: high"), "{}", m.text);
        assert!(m.text.contains("Drop points: 18"), "{}", m.text);
        assert!(m.text.contains("- Call them"), "{}", m.text);
        assert!(
            m.html.contains("Health &lt;b&gt;dropped&lt;/b&gt;"),
            "{}",
            m.html
        );
        assert!(!m.html.contains("<b>dropped"), "{}", m.html);
        assert!(
            m.html
                .contains("href=\"https://vigil.example.com/alerts/7\""),
            "{}",
            m.html
        );
        let r = email_message(&a, "resolved", &Links::default());
        assert!(r.subject.starts_with("[RESOLVED] "), "{}", r.subject);
        assert!(email_message(&a, "test", &Links::default())
            .subject
            .starts_with("[TEST] "));
        let back: super::super::mail::EmailBody =
            serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_group_email_counts_what_does_not_fit() {
        let many: Vec<Value> = (0..80)
            .map(|i| {
                let mut a = alert();
                a["id"] = json!(i);
                a
            })
            .collect();
        let labels = json!({"alertname": "health_drop"});
        let labels = labels.as_object().unwrap();
        let m = email_group_message(&many, labels, &Links::default(), 1_000_000, 0);
        assert_eq!(m.subject, "[FIRING:80] alertname=health_drop");
        assert!(m.text.ends_with("… and 30 more"), "50 listed at most");
        for cap in [8_000, 64_000] {
            let m = email_group_message(&many, labels, &Links::default(), cap, 3);
            let size = serde_json::to_string(&m).unwrap().len();
            assert!(size <= cap, "{size} > {cap}");
            assert!(m.text.contains("more"));
        }
    }

    #[test]
    fn a_pagerduty_trigger_has_what_events_api_v2_requires() {
        let e = pagerduty_event(&alert(), "new", &links());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "0123456789abcdef");
        assert!(
            v.get("routing_key").is_none(),
            "the key is added at send time"
        );
        let p = &v["payload"];
        assert_eq!(p["summary"], "Health *dropped*: Acme health 62 vs 80");
        assert_eq!(p["source"], "acme [x](http://evil)");
        assert_eq!(p["severity"], "error");
        assert_eq!(p["timestamp"], "2026-12-01T10:05:00.5Z");
        assert_eq!(p["component"], "health");
        assert_eq!(p["group"], "health_drop");
        assert_eq!(p["class"], "health_drop");
        assert_eq!(p["custom_details"]["labels"]["team"], "cs");
        assert_eq!(p["custom_details"]["Drop points"], "18");
        assert_eq!(
            p["custom_details"]["recommended_actions"],
            json!(["Call them"])
        );
        assert_eq!(v["client"], "pg_vigil");
        assert_eq!(v["client_url"], "https://vigil.example.com/");
        assert_eq!(v["links"][0]["href"], "https://vigil.example.com/alerts/7");
        // round trip: what is read back is what was made
        let back: PagerDutyEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn pagerduty_actions_follow_the_lifecycle() {
        let a = alert();
        let m = a.as_object().unwrap();
        assert_eq!(event_action(m, "new"), EventAction::Trigger);
        assert_eq!(event_action(m, "escalated"), EventAction::Trigger);
        assert_eq!(event_action(m, "acknowledged"), EventAction::Acknowledge);
        for closing in ["resolved", "dismissed", "expired"] {
            assert_eq!(event_action(m, closing), EventAction::Resolve);
            let v = serde_json::to_value(pagerduty_event(&a, closing, &Links::default())).unwrap();
            assert!(v.get("payload").is_none(), "{v}");
            assert_eq!(v["event_action"], "resolve");
            assert!(v.get("client_url").is_none() && v.get("links").is_none());
        }
        for (sev, pd) in [
            ("critical", "critical"),
            ("high", "error"),
            ("medium", "warning"),
            ("low", "info"),
            ("info", "info"),
        ] {
            assert_eq!(serde_json::to_value(pagerduty_severity(sev)).unwrap(), pd);
        }
    }

    #[test]
    fn pagerduty_bounds_hold_for_long_text() {
        let mut a = alert();
        a["summary"] = json!("x".repeat(5000));
        a["fingerprint"] = json!("f".repeat(400));
        let e = pagerduty_event(&a, "new", &Links::default());
        assert!(e.payload.unwrap().summary.chars().count() <= 1024);
        assert_eq!(e.dedup_key.chars().count(), 255);
    }

    #[test]
    fn the_routing_key_is_added_as_sent_and_checked_when_stored() {
        let stored =
            serde_json::to_string(&pagerduty_event(&alert(), "new", &Links::default())).unwrap();
        let key = "R0123456789abcdef0123456789ABCDE";
        let sent: Value = serde_json::from_slice(&with_routing_key(
            &stored,
            &json!({"routing_key": key}).to_string(),
        ))
        .unwrap();
        assert_eq!(sent["routing_key"], key);
        assert_eq!(sent["dedup_key"], "0123456789abcdef");
        assert_eq!(with_routing_key(&stored, "{}"), stored.as_bytes());
        assert_eq!(
            check_options("pagerduty", &json!({"routing_key": key})),
            None
        );
        assert!(check_options("pagerduty", &json!({}))
            .unwrap()
            .contains("options.routing_key is required"));
        assert!(check_options("pagerduty", &json!({"routing_key": "short"}))
            .unwrap()
            .contains("32 letters"));
        assert!(
            check_options("pagerduty", &json!({"routing_key": key, "x": 1}))
                .unwrap()
                .contains("unknown key \"x\"")
        );
        assert_eq!(check_options("slack", &json!({})), None);
        assert!(check_options("slack", &json!({"a": 1}))
            .unwrap()
            .contains("takes no options"));
        assert!(check_options("webhook", &json!([]))
            .unwrap()
            .contains("JSON object"));
    }

    #[test]
    fn a_teams_message_is_a_workflows_adaptive_card() {
        let m = teams_alert_message(&alert(), "new", &links());
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "message");
        let att = &v["attachments"][0];
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert!(att["contentUrl"].is_null());
        let card = &att["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        let body = card["body"].as_array().unwrap();
        assert_eq!(body[0]["type"], "TextBlock");
        assert_eq!(body[0]["color"], "attention");
        // Markdown in user text is escaped: no link, no emphasis
        assert_eq!(body[0]["text"], "[HIGH] Health \\*dropped\\*");
        let facts = body.iter().find(|e| e["type"] == "FactSet").unwrap();
        let entity = facts["facts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == "Entity")
            .unwrap();
        assert_eq!(entity["value"], "acme \\[x\\](http://evil)");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://vigil.example.com/alerts/7"
        );
        let back: TeamsMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let resolved =
            serde_json::to_value(teams_alert_message(&alert(), "resolved", &Links::default()))
                .unwrap();
        let head = &resolved["attachments"][0]["content"]["body"][0];
        assert_eq!(head["color"], "good");
        assert!(head["text"].as_str().unwrap().starts_with("RESOLVED: "));
        assert!(resolved["attachments"][0]["content"]
            .get("actions")
            .is_none());
    }

    #[test]
    fn a_teams_group_card_stays_within_its_cap() {
        let many: Vec<Value> = (0..300)
            .map(|i| {
                let mut a = alert();
                a["id"] = json!(i);
                a["summary"] = json!("s".repeat(900));
                a
            })
            .collect();
        let labels = json!({"alertname": "health_drop"});
        let labels = labels.as_object().unwrap();
        for cap in [4_000, 20_000, 1_000_000] {
            let m = teams_group_message(&many, labels, &links(), cap, 5);
            let text = serde_json::to_string(&m).unwrap();
            assert!(
                text.len() <= cap.min(TEAMS_MAX_BYTES),
                "{} > {cap}",
                text.len()
            );
            let body = &m.attachments[0].content.body;
            let CardElement::TextBlock { text: head, .. } = &body[0] else {
                panic!()
            };
            assert_eq!(head, "[FIRING:300] alertname=health\\_drop");
            let shown = body
                .iter()
                .filter(|e| matches!(e, CardElement::Container { .. }))
                .count();
            assert!(shown <= 20);
            let CardElement::TextBlock { text: more, .. } = body.last().unwrap() else {
                panic!()
            };
            assert_eq!(more, &format!("… and {} more", 300 - shown + 5));
        }
    }

    #[test]
    fn a_hostile_alert_still_makes_a_small_pagerduty_event_and_teams_card() {
        for filler in ["a", "😀", "\u{1}", "\"", "😀<&", "é", "\u{1}\""] {
            let big = filler.repeat(100_000);
            let labels: Map<String, Value> =
                (0..500).map(|i| (format!("l{i:03}"), json!(big))).collect();
            let details: Map<String, Value> = (0..500)
                .map(|i| (format!("{big}{i}"), json!(big)))
                .collect();
            let a = json!({
                "id": 1, "title": big, "summary": big, "entity": big, "monitor": big,
                "anomaly_type": big, "severity": big, "labels": labels,
                "details": details, "recommended_actions": vec![big.clone(); 500],
            });
            let links = Links {
                external_url: "https://vigil.example/".into(),
                generator_url: "https://grafana.example/d?e={entity}".into(),
            };
            for event in ["new", "resolved", "test"] {
                let card = serde_json::to_string(&teams_alert_message(&a, event, &links)).unwrap();
                assert!(
                    card.len() <= TEAMS_MAX_BYTES,
                    "Teams {filler:?}: {} bytes",
                    card.len()
                );
            }
            let e = serde_json::to_string(&pagerduty_event(&a, "new", &links)).unwrap();
            // Within the default vigil.max_payload_bytes (64 KiB), so never
            // replaced by the outbox's truncation marker, and far below
            // PagerDuty's 512 KB.
            assert!(e.len() < 60 * 1024, "{filler:?}: {} bytes", e.len());
            let v: Value = serde_json::from_str(&e).unwrap();
            assert_eq!(
                v["payload"]["custom_details"]["labels"]
                    .as_object()
                    .unwrap()
                    .len(),
                20
            );
        }
    }
}
