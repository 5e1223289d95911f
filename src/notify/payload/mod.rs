//! The HTTP bodies the notification worker posts for an alert: a Slack
//! incoming-webhook message and a generic webhook in Alertmanager's v4 shape.
//! Pure functions of the `to_jsonb` form of a `vigil.alerts` row.

use serde_json::{json, Map, Number, Value};

mod json;
mod slack;
mod webhook;

use crate::time::parse_timestamp;
pub(super) use crate::time::rfc3339;
pub use json::{json_depth, read_json, JsonReadError, MAX_JSON_DEPTH, MAX_STORED_DEPTH};
#[cfg(test)]
use slack::{escape, MAX_MESSAGE_BYTES};
pub use slack::{severity_color, slack_group_message, slack_message};
pub(super) use webhook::alert_entry;
#[cfg(test)]
use webhook::ZERO_TIME;
pub use webhook::{
    pg_notify_message, webhook_group_message, webhook_message, webhook_message_with,
};

const MAX_METRIC_FIELDS: usize = 10;

/// A cap on one string: Slack's limits count characters, `bytes` counts the
/// string as it is spelled inside JSON.
#[derive(Clone, Copy)]
pub(super) struct Limit {
    pub(super) chars: usize,
    pub(super) bytes: usize,
}

/// A button's `url` may be 3 000 characters; longer links are left out
/// rather than cut (a cut URL leads somewhere else).
pub(super) const MAX_URL_BYTES: usize = 1_500;

/// The urgency band name shared with `vigil.urgency_band` (SQL).
pub(super) fn urgency_band(urgency: i64) -> &'static str {
    crate::scoring::urgency_band(urgency.clamp(0, 100) as i32)
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

/// Alerts and readers the payload tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn sample() -> Value {
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

    pub(crate) fn with(mut alert: Value, key: &str, value: Value) -> Value {
        alert[key] = value;
        alert
    }

    pub(crate) fn attachment(message: &Value) -> &Value {
        &message["attachments"][0]
    }

    pub(crate) fn slack(alert: &Value, event: &str) -> Value {
        slack_message(alert, event, &Links::default())
    }

    pub(crate) fn blocks(message: &Value) -> &Vec<Value> {
        attachment(message)["blocks"].as_array().unwrap()
    }

    pub(crate) fn header(message: &Value) -> String {
        blocks(message)[0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The summary: the text of the section after the header.
    pub(crate) fn body(message: &Value) -> String {
        blocks(message)[1]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Texts of the sections that are text, not fields (summary, actions).
    pub(crate) fn section_texts(message: &Value) -> Vec<String> {
        blocks(message)
            .iter()
            .filter(|b| b["type"] == "section")
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    pub(crate) fn context(message: &Value) -> String {
        let last = blocks(message).last().unwrap();
        assert_eq!(last["type"], "context");
        last["elements"][0]["text"].as_str().unwrap().to_owned()
    }

    /// The Unix time of the context's Slack date, if it has one.
    pub(crate) fn seen(message: &Value) -> Option<i64> {
        let c = context(message);
        let (_, rest) = c.split_once("<!date^")?;
        rest.split('^').next()?.parse().ok()
    }

    /// (title, value) of every section field, in order.
    pub(crate) fn fields(message: &Value) -> Vec<(String, String)> {
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

    pub(crate) fn field_value(message: &Value, title: &str) -> Option<String> {
        fields(message)
            .into_iter()
            .find(|(t, _)| t == title)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn number(text: &str) -> String {
        compact_number(&serde_json::from_str(text).unwrap())
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
}
