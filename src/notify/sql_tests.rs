//! `#[pg_test]`s of notification payloads: links, grouped messages, through SQL as a user calls it.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::sql_tests::tests::one;
    use pgrx::prelude::*;

    #[pg_test]
    fn webhook_links_come_from_superuser_settings() {
        Spi::run(
            "SET vigil.external_url = 'https://grafana.example/d/vigil';
             SET vigil.generator_url = 'https://grafana.example/d/vigil?var-alert={id}&var-fp={fingerprint}'",
        )
        .unwrap();
        let hook = one::<pgrx::JsonB>(
            r#"SELECT vigil.webhook_payload('{"id": 7, "fingerprint": "00000000000000ab", "severity": "high"}', 'new', 'r')"#,
        )
        .unwrap()
        .0;
        assert_eq!(hook["externalURL"], "https://grafana.example/d/vigil");
        assert_eq!(
            hook["alerts"][0]["generatorURL"],
            "https://grafana.example/d/vigil?var-alert=7&var-fp=00000000000000ab"
        );
        // Only a superuser may set them (they reach every receiver).
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'vigil.external_url'")
                .as_deref(),
            Some("superuser")
        );
    }

    #[pg_test]
    fn a_flooded_group_is_one_message_within_the_payload_cap() {
        Spi::run(
            "SELECT vigil.create_channel('g', 'webhook', 'http://127.0.0.1:9/g', group_wait => '0 seconds');
             SELECT vigil.raise_alert('flood', repeat('e', 20000) || i, 'high', repeat('t', 5000))
             FROM generate_series(1, 300) i;",
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(1));
        let (size, listed, truncated) = Spi::get_three::<i32, i32, i32>(
            "SELECT octet_length(payload::text), jsonb_array_length(payload -> 'alerts'),
                    (payload ->> 'truncatedAlerts')::int
             FROM vigil.notifications WHERE event = 'group'",
        )
        .unwrap();
        let (size, listed, truncated) = (size.unwrap(), listed.unwrap(), truncated.unwrap());
        assert!(size <= 65536, "{size} bytes");
        assert!(listed > 0);
        assert_eq!(listed + truncated, 300);
        // Nothing is left due: the next round sends nothing.
        assert_eq!(one::<i32>("SELECT vigil._flush_groups()"), Some(0));
    }

    /// A group message lists an alert as the one-alert webhook does, even
    /// at the edges of what a row can hold: infinite timestamps read as
    /// `to_jsonb` writes them, and details the builders cannot hold (a
    /// number beyond f64, written into vigil.alerts by hand) say so rather
    /// than stopping the group's messages.
    #[pg_test]
    fn a_group_message_lists_an_alert_as_its_own_webhook_does() {
        let text = |sql: &str| one::<String>(sql).unwrap_or_default();
        let id =
            one::<i64>("SELECT (vigil.raise_alert('edge', 'e1', 'high', 'edge case')).alert_id")
                .unwrap();
        Spi::run(&format!(
            "UPDATE vigil.alerts SET status = 'resolved', created_at = '-infinity', resolved_at = 'infinity'
             WHERE id = {id}"
        ))
        .unwrap();
        let differs = text(&format!(
            "SELECT coalesce((SELECT (g.m -> 'alerts' -> 0)::text || ' vs ' || (u.m -> 'alerts' -> 0)::text
             FROM (SELECT vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) m) g,
                  (SELECT vigil.webhook_payload(vigil._alert_document(a), 'resolved', 'g') m
                   FROM vigil.alerts a WHERE a.id = {id}) u
             WHERE g.m -> 'alerts' -> 0 IS DISTINCT FROM u.m -> 'alerts' -> 0), '')"
        ));
        assert_eq!(differs, "", "grouped vs one-alert webhook");
        assert_eq!(
            text(&format!(
                "SELECT (vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) -> 'alerts' -> 0)
                        ->> 'startsAt'"
            )),
            "-infinity"
        );
        Spi::run(&format!(
            "UPDATE vigil.alerts SET details = '{{\"rows\": 1e400}}' WHERE id = {id}"
        ))
        .unwrap();
        let description = text(&format!(
            "SELECT vigil._group_message('webhook', 'g', ARRAY[{id}], '{{}}', 65536) #>> '{{alerts,0,annotations,description}}'"
        ));
        assert!(
            description.contains("cannot be read as JSON"),
            "{description}"
        );
    }
}
