//! Unit tests of monitor options and the scan queries they produce.

use super::options::interval_seconds;
use super::*;
use crate::error::ErrorKind;
use serde_json::json;

fn cols() -> Columns {
    let c = |cat, ty: &str| Column {
        category: cat,
        sql_type: ty.into(),
    };
    [
        ("client", c(ColType::Text, "text")),
        ("score", c(ColType::Numeric, "integer")),
        ("recorded_at", c(ColType::Time, "timestamp with time zone")),
        ("day", c(ColType::Time, "date")),
        ("stage", c(ColType::Text, "text")),
        ("amount", c(ColType::Numeric, "numeric(12,2)")),
        ("ratio", c(ColType::Numeric, "double precision")),
        ("active", c(ColType::Bool, "boolean")),
        ("we\"ird; DROP TABLE x", c(ColType::Text, "text")),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect()
}

fn err(kind: &str, options: serde_json::Value) -> crate::error::VigilError {
    plan(kind, &options, "public.t", &cols()).expect_err("should be refused")
}

fn ok(kind: &str, options: serde_json::Value) -> Plan {
    plan(kind, &options, "public.t", &cols()).expect("valid options")
}

#[test]
fn unknown_kind_lists_the_kinds() {
    let e = err("spike", json!({}));
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert!(e.message.contains(
        "drop, stall, count, zscore, saturation, threshold, freshness, health, early_kill"
    ));
}

#[test]
fn options_must_be_an_object() {
    let e = err("count", json!([1]));
    assert!(
        e.message
            .contains("options must be a JSON object, got array"),
        "{}",
        e.message
    );
}

#[test]
fn unknown_option_key_is_named_with_the_allowed_keys() {
    let e = err("count", json!({"thresholds": {"high": 3}, "treshold": 1}));
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert!(
        e.message
            .starts_with("options.treshold is not an option of kind count"),
        "{}",
        e.message
    );
    assert!(e.message.contains("thresholds"));
}

#[test]
fn missing_required_option_is_22004() {
    let e = err("drop", json!({"entity": "client", "time": "recorded_at"}));
    assert_eq!(e.kind, ErrorKind::NullValue);
    assert_eq!(e.message, "options.value is required for kind drop");
}

#[test]
fn missing_column_is_42703_and_wrong_type_42804() {
    let e = err(
        "drop",
        json!({"entity": "client", "time": "recorded_at", "value": "nope"}),
    );
    assert_eq!(e.kind, ErrorKind::UndefinedColumn);
    assert!(e
        .message
        .contains("options.value: column \"nope\" does not exist"));
    let e = err(
        "drop",
        json!({"entity": "client", "time": "stage", "value": "score"}),
    );
    assert_eq!(e.kind, ErrorKind::DatatypeMismatch);
    assert!(
        e.message
            .contains("column \"stage\" is text, expected a date, timestamp"),
        "{}",
        e.message
    );
}

#[test]
fn wrong_json_types_are_refused() {
    let e = err(
        "drop",
        json!({"entity": 3, "time": "recorded_at", "value": "score"}),
    );
    assert!(e.message.contains("options.entity must be a column name"));
    let e = err(
        "zscore",
        json!({"entity": "client", "time": "recorded_at", "baseline_days": "90"}),
    );
    assert!(e
        .message
        .contains("options.baseline_days must be an integer"));
    let e = err(
        "zscore",
        json!({"entity": "client", "time": "recorded_at", "baseline_days": 7}),
    );
    assert_eq!(e.kind, ErrorKind::OutOfRange);
}

#[test]
fn thresholds_out_of_order_are_refused() {
    let e = err("count", json!({"thresholds": {"medium": 5, "high": 3}}));
    assert!(
        e.message
            .contains("must increase with severity: high (3) is not above medium"),
        "{}",
        e.message
    );
    let e = err(
        "stall",
        json!({"time": "recorded_at", "thresholds": {"medium": "30 days", "critical": "14 days"}}),
    );
    assert!(e.message.contains("critical"), "{}", e.message);
    let e = err("count", json!({"thresholds": {"urgent": 5}}));
    assert!(
        e.message.contains("unknown level \"urgent\""),
        "{}",
        e.message
    );
    let e = err("count", json!({"thresholds": {}}));
    assert!(e.message.contains("at least one"));
    let e = err("count", json!({"thresholds": {"high": "3"}}));
    assert!(
        e.message.contains("options.thresholds.high"),
        "{}",
        e.message
    );
}

#[test]
fn intervals_accept_plain_units_only() {
    assert_eq!(interval_seconds("90 minutes"), Ok(5400.0));
    assert_eq!(interval_seconds("1 day 12 hours"), Ok(129_600.0));
    assert_eq!(interval_seconds("2 weeks"), Ok(1_209_600.0));
    for bad in [
        "",
        "1",
        "1 month",
        "1e3 minutes",
        "-1 day",
        "NaN days",
        "1 day; DROP",
        "inf hours",
    ] {
        assert!(interval_seconds(bad).is_err(), "{bad}");
    }
    let e = err(
        "count",
        json!({"thresholds": {"high": 3}, "time": "recorded_at", "window": "0 hours"}),
    );
    assert!(e.message.contains("must be a positive interval"));
}

#[test]
fn defaults_are_filled_in() {
    let p = ok(
        "drop",
        json!({"entity": "client", "time": "recorded_at", "value": "score"}),
    );
    assert_eq!(p.options["baseline"], "7 days");
    assert_eq!(
        p.options["thresholds"],
        json!({"medium": 10, "high": 15, "critical": 25})
    );
    assert_eq!(p.options["anomaly_type"], "drop");
    assert_eq!(p.options["metric_name"], "score");
    assert_eq!(p.options["dedup_window"], "24 hours");
    let p = ok("zscore", json!({"entity": "client", "time": "recorded_at"}));
    assert_eq!(p.options["anomaly_type"], "zscore_anomaly");
    assert_eq!(p.options["metric_name"], "events");
}

#[test]
fn filter_values_become_arrays_and_null_means_is_null() {
    let p = ok(
        "stall",
        json!({"time": "recorded_at", "thresholds": {"medium": "14 days"},
               "filter": {"stage": "Proposal", "active": null}}),
    );
    assert_eq!(
        p.options["filter"],
        json!({"stage": ["Proposal"], "active": null})
    );
    let q = p.query.unwrap();
    assert!(q.contains("t.\"active\" IS NULL"), "{q}");
    assert!(q.contains("t.\"stage\" = ANY (ARRAY(SELECT jsonb_array_elements_text($1->'filter'->'stage'))::text[])"), "{q}");
    let e = err(
        "count",
        json!({"thresholds": {"high": 3}, "filter": {"stage": [{"a": 1}]}}),
    );
    assert!(e
        .message
        .contains("values must be strings, numbers or booleans"));
    let e = err(
        "count",
        json!({"thresholds": {"high": 3}, "filter": {"stage": []}}),
    );
    assert!(e.message.contains("needs at least one value"));
}

#[test]
fn hostile_column_names_are_quoted_and_values_are_parameters() {
    let p = ok(
        "count",
        json!({"thresholds": {"high": 3}, "entity": "we\"ird; DROP TABLE x",
               "filter": {"we\"ird; DROP TABLE x": "x'); DROP TABLE y; --"}}),
    );
    let q = p.query.unwrap();
    assert!(q.contains("t.\"we\"\"ird; DROP TABLE x\""), "{q}");
    assert!(q.contains("$1->'filter'->'we\"ird; DROP TABLE x'"), "{q}");
    assert!(
        !q.contains("DROP TABLE y"),
        "a filter value was spliced: {q}"
    );
}

#[test]
fn time_bounds_are_cast_to_the_column_type() {
    let p = ok(
        "count",
        json!({"thresholds": {"high": 3}, "time": "day", "window": "7 days"}),
    );
    let q = p.query.unwrap();
    assert!(
        q.contains("t.\"day\" >= (now() - ($1->>'window')::interval)::date"),
        "{q}"
    );
}

#[test]
fn severity_case_uses_only_given_levels_worst_first() {
    let p = ok("count", json!({"thresholds": {"medium": 2, "critical": 5}}));
    let q = p.query.unwrap();
    let crit = q.find("THEN 'critical'").unwrap();
    let med = q.find("THEN 'medium'").unwrap();
    assert!(crit < med);
    assert!(!q.contains("THEN 'high'"));
    assert!(
        q.contains("WHERE x.n >= ($1->'thresholds'->>'medium')::float8"),
        "{q}"
    );
}

#[test]
fn zscore_thresholds_are_strict_and_drop_count_stall_thresholds_inclusive() {
    let q = ok("zscore", json!({"entity": "client", "time": "recorded_at"}))
        .query
        .unwrap();
    for level in ["medium", "high", "critical"] {
        assert!(
            q.contains(&format!(
                "WHEN abs(f.z) > ($1->'thresholds'->>'{level}')::float8 THEN '{level}'"
            )),
            "{q}"
        );
    }
    assert!(!q.contains(">= ($1->'thresholds'"), "{q}");
    let q = ok(
        "zscore",
        json!({"entity": "client", "time": "recorded_at", "direction": "down"}),
    )
    .query
    .unwrap();
    assert!(
        q.contains("WHEN -f.z > ($1->'thresholds'->>'medium')::float8"),
        "{q}"
    );
    let q = ok("count", json!({"thresholds": {"medium": 2}}))
        .query
        .unwrap();
    assert!(
        q.contains("WHEN x.n >= ($1->'thresholds'->>'medium')::float8"),
        "{q}"
    );
    let q = ok(
        "stall",
        json!({"time": "recorded_at", "thresholds": {"medium": "14 days"}}),
    )
    .query
    .unwrap();
    assert!(
        q.contains("WHEN now() - x.since >= ($1->'thresholds'->>'medium')::interval"),
        "{q}"
    );
}

#[test]
fn zscores_in_scans_come_from_vigil_zscore() {
    let q = ok(
        "zscore",
        json!({"entity": "client", "time": "recorded_at", "value": "amount"}),
    )
    .query
    .unwrap();
    assert!(
        q.contains("vigil.zscore(s.current, s.mean, s.sd) AS z"),
        "{q}"
    );
    assert!(q.contains("WHERE f.z IS NOT NULL"), "{q}");
    let q = ok(
        "saturation",
        json!({"entity": "client", "time": "recorded_at", "converted": {"stage": "paid"}}),
    )
    .query
    .unwrap();
    assert!(
        q.contains("vigil.zscore(m.conv, m.rate_mean, m.rate_sd) AS conversion_z"),
        "{q}"
    );
    assert!(
        q.contains("vigil.zscore(m.m24, m.base_daily, m.vol_sd) AS volume_z"),
        "{q}"
    );
    assert!(!q.contains("nullif(m.rate_sd"), "{q}");
}

#[test]
fn exhaustion_alerts_only_strictly_above_its_threshold() {
    let q = ok(
        "saturation",
        json!({"entity": "client", "time": "recorded_at", "converted": {"stage": "paid"}}),
    )
    .query
    .unwrap();
    assert!(
        q.contains("WHEN s.exhaustion > ($1->>'exhaustion_threshold')::float8"),
        "{q}"
    );
    assert!(
        !q.contains("s.exhaustion >= ($1->>'exhaustion_threshold')"),
        "{q}"
    );
}

#[test]
fn drop_computes_in_numeric_for_numeric_and_integer_columns_only() {
    for (column, ty) in [
        ("amount", "numeric"),
        ("score", "numeric"),
        ("ratio", "float8"),
    ] {
        let q = ok(
            "drop",
            json!({"entity": "client", "time": "recorded_at", "value": column,
                   "zones": {"red": 50, "yellow": 70}}),
        )
        .query
        .unwrap();
        if ty == "numeric" {
            assert!(
                q.contains(&format!("(t.\"{column}\")::{ty} AS v FROM")),
                "{q}"
            );
            assert!(
                q.contains(&format!(
                    "(max(ARRAY[extract(epoch FROM (s.at)::timestamptz)::{ty}, s.v]))[2] AS current"
                )),
                "{q}"
            );
        } else {
            // float8 rows: one fixed-size aggregate per entity.
            assert!(
                q.contains(&format!(
                    "vigil._drop_latest((t.\"recorded_at\")::timestamptz, (t.\"{column}\")::float8) AS s"
                )),
                "{q}"
            );
            assert!(!q.contains("max(ARRAY["), "{q}");
        }
        assert!(
            q.contains(&format!(
                "WHEN a.average - x.current >= ($1->'thresholds'->>'medium')::{ty}"
            )),
            "{q}"
        );
        assert!(
            q.contains(&format!("x.current < ($1->'zones'->>'red')::{ty}")),
            "{q}"
        );
    }
}

#[test]
fn cross_option_rules() {
    let e = err(
        "count",
        json!({"thresholds": {"high": 3}, "window": "1 hour"}),
    );
    assert!(e.message.contains("options.window needs options.time"));
    let e = err(
        "threshold",
        json!({"time": "recorded_at", "op": ">", "threshold": 5}),
    );
    assert!(e
        .message
        .contains("options.value is required unless options.agg is count"));
    let p = ok(
        "threshold",
        json!({"time": "recorded_at", "op": ">", "threshold": 5, "agg": "count"}),
    );
    assert!(p.query.unwrap().contains("(count(*))::float8"));
    let e = err(
        "zscore",
        json!({"entity": "client", "time": "recorded_at", "baseline_days": 21, "min_weeks": 4}),
    );
    assert!(e.message.contains("min_weeks (4) exceeds"), "{}", e.message);
}

#[test]
fn threshold_ops_and_severities_are_closed_lists() {
    let e = err(
        "threshold",
        json!({"time": "recorded_at", "op": "<>; DROP", "threshold": 1, "agg": "count"}),
    );
    assert!(
        e.message
            .contains("options.op must be one of <, <=, >, >=, =, !="),
        "{}",
        e.message
    );
    let e = err(
        "threshold",
        json!({"time": "recorded_at", "op": ">", "threshold": 1, "agg": "count", "severity": "urgent"}),
    );
    assert!(e.message.contains("options.severity must be one of"));
}

#[test]
fn early_kill_has_no_scan_query_and_its_own_keys() {
    let p = ok("early_kill", json!({"variant": "client", "event": "stage"}));
    assert!(p.query.is_none());
    assert_eq!(p.options["view_events"], json!(["view"]));
    assert_eq!(p.options["kill_threshold"], 0.5);
    assert!(!p.options.contains_key("metric_name"));
    let e = err(
        "early_kill",
        json!({"variant": "client", "event": "stage", "filter": {"stage": "x"}}),
    );
    assert!(e
        .message
        .contains("options.filter is not an option of kind early_kill"));
    let e = err(
        "early_kill",
        json!({"variant": "client", "event": "stage", "kill_threshold": 0}),
    );
    assert_eq!(e.kind, ErrorKind::OutOfRange);
}

#[test]
fn every_kind_ships_recommended_actions_for_its_own_anomaly_type() {
    let mut seen = std::collections::HashSet::new();
    for k in super::kinds::ALL {
        let def = k.def();
        assert!(
            def.actions
                .iter()
                .any(|&(t, severity, _)| t == def.anomaly_type && severity.is_none()),
            "kind {}: no fallback actions for {}",
            def.name,
            def.anomaly_type
        );
        for &(t, severity, actions) in def.actions {
            assert!(!actions.is_empty() && actions.iter().all(|a| !a.trim().is_empty()));
            if let Some(s) = severity {
                assert!(
                    crate::scoring::Severity::from_label(s).is_some(),
                    "kind {}: severity {s}",
                    def.name
                );
            }
            assert!(seen.insert((t, severity)), "{t}/{severity:?} twice");
        }
    }
}

#[test]
fn early_kill_reasons_print_numbers_as_its_sql_did() {
    use super::kinds::early_kill::kill_reason;
    // round(100 * observed::numeric, 2), kill_threshold as float8 text.
    assert_eq!(
        kill_reason(12.0 / 288.0, 0.5, 0.1, 12, 288),
        "engagement 4.17% is below 0.5 x the expected 10.00% after 12 interactions and 288 views"
    );
    assert_eq!(
        kill_reason(0.00125, 1e-5, 0.02675, 1, 800),
        "engagement 0.13% is below 1e-05 x the expected 2.68% after 1 interactions and 800 views"
    );
}

#[test]
fn every_scanning_kind_returns_the_finding_columns() {
    let cases = [
        (
            "drop",
            json!({"entity": "client", "time": "recorded_at", "value": "score", "zones": {"red": 50, "yellow": 70}}),
        ),
        (
            "stall",
            json!({"time": "recorded_at", "thresholds": {"medium": "14 days"}, "entity": "client", "group_column": "stage", "value": "amount"}),
        ),
        (
            "count",
            json!({"thresholds": {"medium": 2}, "time": "recorded_at", "entity": "client"}),
        ),
        (
            "zscore",
            json!({"entity": "client", "time": "recorded_at", "value": "amount", "direction": "down"}),
        ),
        (
            "saturation",
            json!({"entity": "client", "time": "recorded_at", "converted": {"stage": "paid"}}),
        ),
        (
            "threshold",
            json!({"time": "recorded_at", "op": "<", "threshold": 2, "value": "score", "agg": "last"}),
        ),
        (
            "freshness",
            json!({"time": "day", "entity": "client", "thresholds": {"high": "1 day"}}),
        ),
    ];
    for (kind, options) in cases {
        let q = ok(kind, options).query.unwrap();
        for col in FINDING_COLUMNS {
            assert!(
                q.contains(&format!(" AS {col},")) || q.contains(&format!(" AS {col}\nFROM")),
                "{kind} lacks {col}: {q}"
            );
        }
        assert_eq!(q.matches("public.t t").count(), 1, "{kind}: {q}");
    }
}

#[test]
fn zones_need_red_below_yellow() {
    let e = err(
        "drop",
        json!({"entity": "client", "time": "recorded_at", "value": "score", "zones": {"red": 70, "yellow": 50}}),
    );
    assert!(e.message.contains("red must be below yellow"));
}

#[test]
fn freshness_needs_interval_thresholds_and_reads_the_newest_row() {
    let e = err(
        "freshness",
        json!({"time": "recorded_at", "thresholds": {"medium": 3}}),
    );
    assert!(
        e.message.contains("options.thresholds.medium"),
        "{}",
        e.message
    );
    let e = err(
        "freshness",
        json!({"time": "score", "thresholds": {"medium": "1 hour"}}),
    );
    assert_eq!(e.kind, ErrorKind::DatatypeMismatch);
    // Without an entity the source is one group, so an empty source still
    // yields its row (newest NULL), at the worst level given.
    let p = ok(
        "freshness",
        json!({"time": "recorded_at", "thresholds": {"medium": "1 hour", "high": "2 hours"}}),
    );
    let q = p.query.unwrap();
    assert!(!q.contains("GROUP BY"), "{q}");
    assert!(q.contains("max((t.\"recorded_at\")::timestamptz)"), "{q}");
    assert!(q.contains("WHEN x.newest IS NULL THEN 'high'"), "{q}");
    assert_eq!(p.options["metric_name"], "lag");
    assert_eq!(p.options["anomaly_type"], "freshness");
    let p = ok(
        "freshness",
        json!({"time": "recorded_at", "entity": "client", "thresholds": {"critical": "1 day"}}),
    );
    assert!(p.query.unwrap().contains("GROUP BY 1"));
}

/// A daily rollup of `cols()`'s table by client: an average, a sum (and
/// its count of values), a count and a sketch.
fn daily() -> (Rollup, Columns) {
    let c = |cat, ty: &str| Column {
        category: cat,
        sql_type: ty.into(),
    };
    let columns: Columns = [
        ("client", c(ColType::Text, "text")),
        ("bucket", c(ColType::Time, "timestamp with time zone")),
        ("_slot", c(ColType::Numeric, "integer")),
        ("_rows", c(ColType::Numeric, "bigint")),
        ("mean", c(ColType::Other, "vigil.statsagg")),
        ("total", c(ColType::Numeric, "numeric")),
        ("_n_total", c(ColType::Numeric, "bigint")),
        ("n", c(ColType::Numeric, "bigint")),
        ("p", c(ColType::Other, "vigil.sketch")),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect();
    let r = Rollup {
        bucket_seconds: 86_400.0,
        group_by: vec!["client".into()],
        measures: [
            ("mean", "avg"),
            ("total", "sum"),
            ("n", "count"),
            ("p", "percentile"),
        ]
        .into_iter()
        .map(|(m, a)| (m.to_string(), a.to_string()))
        .collect(),
    };
    (r, columns)
}

#[test]
fn drop_over_a_rollup_compares_buckets_read_per_measure() {
    let (r, columns) = daily();
    let on = |value: &str| {
        plan_on(
            "drop",
            &json!({"entity": "client", "time": "bucket", "value": value}),
            "public.t_daily",
            &columns,
            Some(&r),
        )
    };
    let q = on("mean").unwrap().query.unwrap();
    // a float8 measure: one aggregate per entity merges each bucket's slot
    // rows (the mean's parts, merge 0 = sum(a) / sum(b)); emptied buckets
    // are none (its rows argument)
    assert!(
        q.contains(
            "vigil._drop_buckets((t.\"bucket\")::timestamptz, (t.\"_rows\")::float8, \
             vigil.mean(t.\"mean\") * vigil.num_vals(t.\"mean\"), (vigil.num_vals(t.\"mean\"))::float8, 0) AS s"
        ),
        "{q}"
    );
    assert!(q.contains("GROUP BY 1) y\nWHERE y.s[3] >= 2"), "{q}");
    assert!(!q.contains("GROUP BY 1, 2"), "{q}");
    assert!(
        q.contains("WHERE t.\"bucket\" >= (now() - ($1->>'baseline')::interval)"),
        "{q}"
    );
    // an exact type keeps SQL's numeric: one sample per bucket, its slot
    // rows merged, emptied buckets none; a sum reads NULL over no values
    let q = on("total").unwrap().query.unwrap();
    assert!(
        q.contains("GROUP BY 1, 2 HAVING sum(t.\"_rows\") > 0"),
        "{q}"
    );
    assert!(
        q.contains("(CASE WHEN sum(t.\"_n_total\") > 0 THEN sum(t.\"total\") END)::numeric AS v"),
        "{q}"
    );
    let q = on("n").unwrap().query.unwrap();
    assert!(q.contains("(sum(t.\"n\"))::numeric AS v"), "{q}");
    // a sketch has no value to compare
    let e = on("p").unwrap_err();
    assert_eq!(e.kind, ErrorKind::DatatypeMismatch, "{}", e.message);
}
