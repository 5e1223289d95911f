//! The Slack incoming-webhook message (Block Kit attachments) for one alert
//! and for a group, with every string cut to Block Kit's limits.

use super::*;

const RESOLVED_COLOR: &str = "#2EB67D";

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

/// " · last seen <!date^…^{date_short_pretty} {time}|YYYY-MM-DD HH:MM UTC>".
const DATE_BYTES: usize = 100;

pub(super) const MAX_MESSAGE_BYTES: usize = 40_000;

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
pub(super) fn escape(raw: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::payload::fixtures::*;
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
}
