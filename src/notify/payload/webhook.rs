//! The generic webhook body in Alertmanager's v4 shape (one alert, or a
//! group) and the LISTEN payload.

use super::*;

/// Alertmanager's zero time: receivers read it as "has not ended".
pub(super) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

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
pub(in crate::notify) struct AlertEntry {
    pub(in crate::notify) status: &'static str,
    pub(in crate::notify) labels: Map<String, Value>,
    pub(in crate::notify) annotations: Map<String, Value>,
    pub(in crate::notify) json: Value,
}

pub(in crate::notify) fn alert_entry(alert: &Value, event: &str, links: &Links) -> AlertEntry {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::payload::fixtures::*;
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
}
