//! Unit tests of the scoring rules: every threshold just below, at and just
//! above, NULL handling, clamping and the errors that name their argument.

use super::*;
use crate::error::ErrorKind;

fn below(x: f64) -> f64 {
    x - 1e-9
}
fn above(x: f64) -> f64 {
    x + 1e-9
}

#[test]
fn severity_labels_round_trip_and_order() {
    for s in Severity::ALL {
        assert_eq!(Severity::from_label(s.label()), Some(s));
    }
    assert!(Severity::Info < Severity::Low && Severity::Low < Severity::Medium);
    assert!(Severity::Medium < Severity::High && Severity::High < Severity::Critical);
    assert_eq!(Severity::from_label("CRITICAL"), None);
}

#[test]
fn severity_above_pins_each_threshold_boundary() {
    let sev = |v| severity_above(v, 10.0, 15.0, 25.0).unwrap();
    assert_eq!(sev(below(10.0)), None);
    assert_eq!(sev(10.0), Some(Severity::Medium));
    assert_eq!(sev(above(10.0)), Some(Severity::Medium));
    assert_eq!(sev(below(15.0)), Some(Severity::Medium));
    assert_eq!(sev(15.0), Some(Severity::High));
    assert_eq!(sev(above(15.0)), Some(Severity::High));
    assert_eq!(sev(below(25.0)), Some(Severity::High));
    assert_eq!(sev(25.0), Some(Severity::Critical));
    assert_eq!(sev(1e12), Some(Severity::Critical));
    assert_eq!(sev(-1e12), None);
}

#[test]
fn severity_below_pins_each_threshold_boundary() {
    let sev = |v| severity_below(v, 50.0, 30.0, 10.0).unwrap();
    assert_eq!(sev(above(50.0)), None);
    assert_eq!(sev(50.0), Some(Severity::Medium));
    assert_eq!(sev(below(50.0)), Some(Severity::Medium));
    assert_eq!(sev(above(30.0)), Some(Severity::Medium));
    assert_eq!(sev(30.0), Some(Severity::High));
    assert_eq!(sev(above(10.0)), Some(Severity::High));
    assert_eq!(sev(10.0), Some(Severity::Critical));
    assert_eq!(sev(below(10.0)), Some(Severity::Critical));
}

#[test]
fn severity_thresholds_out_of_order_are_rejected() {
    for (m, h, c) in [
        (15.0, 10.0, 25.0),
        (10.0, 25.0, 15.0),
        (10.0, 10.0, 25.0),
        (10.0, 15.0, 15.0),
    ] {
        let err = severity_above(1.0, m, h, c).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message.contains("medium < high < critical"),
            "{}",
            err.message
        );
    }
    let err = severity_below(1.0, 10.0, 30.0, 50.0).unwrap_err();
    assert!(
        err.message.contains("medium > high > critical"),
        "{}",
        err.message
    );
}

#[test]
fn severity_rejects_non_finite_value_and_thresholds() {
    assert!(severity_above(f64::NAN, 1.0, 2.0, 3.0)
        .unwrap_err()
        .message
        .starts_with("value"));
    assert!(severity_above(f64::INFINITY, 1.0, 2.0, 3.0).is_err());
    assert!(severity_above(1.0, f64::NEG_INFINITY, 2.0, 3.0)
        .unwrap_err()
        .message
        .starts_with("medium"));
    assert!(severity_below(1.0, 3.0, f64::NAN, 1.0)
        .unwrap_err()
        .message
        .starts_with("high"));
    assert!(severity_below(1.0, 3.0, 2.0, f64::NAN)
        .unwrap_err()
        .message
        .starts_with("critical"));
}

fn sat(conv: f64, base_conv: f64, msgs: f64, base_msgs: f64) -> SaturationInputs {
    SaturationInputs {
        conversion_24h: Some(conv),
        baseline_conversion: Some(base_conv),
        messages_24h: Some(msgs),
        baseline_daily_messages: Some(base_msgs),
    }
}

#[test]
fn saturation_red_needs_both_conditions_strictly() {
    // baseline conversion 0.2, baseline messages 100
    assert_eq!(
        saturation_status(sat(0.09, 0.2, 151.0, 100.0)).unwrap(),
        Saturation::Red
    );
    // conversion exactly at 0.5 × baseline is not RED (but still YELLOW)
    assert_eq!(
        saturation_status(sat(0.5 * 0.2, 0.2, 151.0, 100.0)).unwrap(),
        Saturation::Yellow
    );
    // messages exactly at 1.5 × baseline is not RED
    assert_eq!(
        saturation_status(sat(0.09, 0.2, 150.0, 100.0)).unwrap(),
        Saturation::Yellow
    );
    assert_eq!(
        saturation_status(sat(0.09, 0.2, 150.000001, 100.0)).unwrap(),
        Saturation::Red
    );
}

#[test]
fn saturation_yellow_boundaries() {
    let c70 = 0.7 * 0.2;
    assert_eq!(
        saturation_status(sat(below(c70), 0.2, 121.0, 100.0)).unwrap(),
        Saturation::Yellow
    );
    assert_eq!(
        saturation_status(sat(c70, 0.2, 121.0, 100.0)).unwrap(),
        Saturation::Unknown
    );
    assert_eq!(
        saturation_status(sat(below(c70), 0.2, 120.0, 100.0)).unwrap(),
        Saturation::Unknown
    );
    assert_eq!(
        saturation_status(sat(below(c70), 0.2, 120.001, 100.0)).unwrap(),
        Saturation::Yellow
    );
}

#[test]
fn saturation_decimal_boundaries_behave_as_written() {
    // 0.9 × 0.2 is 0.18000000000000002 in binary; 0.18 must still be GREEN.
    assert_eq!(
        saturation_status(sat(0.18, 0.2, 100.0, 100.0)).unwrap(),
        Saturation::Green
    );
    // 0.5 × 0.3 = 0.15 exactly as written is not "< 0.5 × baseline".
    assert_eq!(
        saturation_status(sat(0.15, 0.3, 200.0, 100.0)).unwrap(),
        Saturation::Yellow
    );
    // 1.2 × 110 = 132 as written is not "> 1.2 × baseline".
    assert_eq!(
        saturation_status(sat(0.1, 0.3, 132.0, 110.0)).unwrap(),
        Saturation::Unknown
    );
}

#[test]
fn saturation_green_boundary_and_gap_is_unknown() {
    let c90 = 0.9 * 0.2;
    assert_eq!(
        saturation_status(sat(c90, 0.2, 500.0, 100.0)).unwrap(),
        Saturation::Green
    );
    assert_eq!(
        saturation_status(sat(above(c90), 0.2, 10.0, 100.0)).unwrap(),
        Saturation::Green
    );
    assert_eq!(
        saturation_status(sat(below(c90), 0.2, 10.0, 100.0)).unwrap(),
        Saturation::Unknown
    );
}

#[test]
fn saturation_unknown_on_null_or_non_positive_baseline() {
    let mut i = sat(0.1, 0.2, 200.0, 100.0);
    i.messages_24h = None;
    assert_eq!(saturation_status(i).unwrap(), Saturation::Unknown);
    assert_eq!(
        saturation_status(sat(0.1, 0.0, 200.0, 100.0)).unwrap(),
        Saturation::Unknown
    );
    assert_eq!(
        saturation_status(sat(0.1, 0.2, 200.0, -5.0)).unwrap(),
        Saturation::Unknown
    );
    assert_eq!(
        saturation_status(SaturationInputs::default()).unwrap(),
        Saturation::Unknown
    );
}

#[test]
fn saturation_rejects_nan_and_negative_observations() {
    let err = saturation_status(sat(f64::NAN, 0.2, 1.0, 1.0)).unwrap_err();
    assert!(err.message.starts_with("conversion_24h"), "{}", err.message);
    let err = saturation_status(sat(0.1, 0.2, -1.0, 1.0)).unwrap_err();
    assert!(
        err.message.starts_with("messages_24h must be >= 0"),
        "{}",
        err.message
    );
    assert!(saturation_status(sat(0.1, f64::INFINITY, 1.0, 1.0)).is_err());
}

#[test]
fn saturation_predicted_boundaries_and_three_valued_logic() {
    let p = |c, v, d| saturation_predicted(c, v, d).unwrap();
    assert_eq!(p(Some(-2.01), Some(2.01), Some(0)), Some(true));
    assert_eq!(p(Some(-2.0), Some(2.01), Some(0)), Some(false));
    assert_eq!(p(Some(-2.01), Some(2.0), Some(0)), Some(false));
    assert_eq!(p(Some(0.0), Some(0.0), Some(2)), Some(false));
    assert_eq!(p(Some(0.0), Some(0.0), Some(3)), Some(true));
    assert_eq!(p(None, None, Some(3)), Some(true));
    assert_eq!(p(None, Some(5.0), Some(1)), None);
    assert_eq!(p(Some(1.0), None, Some(1)), Some(false));
    assert_eq!(p(Some(-3.0), Some(3.0), None), Some(true));
    assert!(saturation_predicted(Some(0.0), Some(0.0), Some(-1)).is_err());
    assert!(saturation_predicted(Some(f64::NAN), Some(0.0), Some(1)).is_err());
}

#[test]
fn exhaustion_score_formula_and_clamping() {
    // (1 - 0.1/0.2)*50 + (150/100 - 1)*30 + 2*10 = 25 + 15 + 20 = 60
    let s = exhaustion_score(sat(0.1, 0.2, 150.0, 100.0), Some(2))
        .unwrap()
        .unwrap();
    assert!((s - 60.0).abs() < 1e-9, "{s}");
    // healthy audience goes negative before the clamp
    assert_eq!(
        exhaustion_score(sat(0.4, 0.2, 50.0, 100.0), Some(0)).unwrap(),
        Some(0.0)
    );
    // many decline days saturate at 100
    assert_eq!(
        exhaustion_score(sat(0.0, 0.2, 400.0, 100.0), Some(10)).unwrap(),
        Some(100.0)
    );
    assert_eq!(
        exhaustion_score(sat(0.1, 0.2, 150.0, 100.0), None).unwrap(),
        None
    );
    assert_eq!(
        exhaustion_score(sat(0.1, 0.0, 150.0, 100.0), Some(1)).unwrap(),
        None
    );
    assert!(exhaustion_score(sat(0.1, 0.2, 150.0, 100.0), Some(-1)).is_err());
}

#[test]
fn urgency_base_by_severity() {
    let base = |s| urgency_score(s, UrgencyFactors::default()).unwrap();
    assert_eq!(base(Severity::Critical), 90);
    assert_eq!(base(Severity::High), 70);
    assert_eq!(base(Severity::Medium), 50);
    assert_eq!(base(Severity::Low), 30);
    assert_eq!(base(Severity::Info), 10);
}

#[test]
fn urgency_bonuses_are_capped() {
    let u = |f| urgency_score(Severity::Low, f).unwrap();
    let f = UrgencyFactors::default;
    assert_eq!(
        u(UrgencyFactors {
            drop_points: Some(18.0),
            ..f()
        }),
        39
    );
    assert_eq!(
        u(UrgencyFactors {
            drop_points: Some(20.0),
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            drop_points: Some(80.0),
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            health_zone: Some(Saturation::Red),
            ..f()
        }),
        45
    );
    assert_eq!(
        u(UrgencyFactors {
            health_zone: Some(Saturation::Yellow),
            ..f()
        }),
        35
    );
    assert_eq!(
        u(UrgencyFactors {
            health_zone: Some(Saturation::Green),
            ..f()
        }),
        30
    );
    // 2 per *full* 10 days
    assert_eq!(
        u(UrgencyFactors {
            stall_days: Some(9.99),
            ..f()
        }),
        30
    );
    assert_eq!(
        u(UrgencyFactors {
            stall_days: Some(10.0),
            ..f()
        }),
        32
    );
    assert_eq!(
        u(UrgencyFactors {
            stall_days: Some(49.9),
            ..f()
        }),
        38
    );
    assert_eq!(
        u(UrgencyFactors {
            stall_days: Some(50.0),
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            stall_days: Some(500.0),
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            large_deal: true,
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            failure_count: Some(4),
            ..f()
        }),
        42
    );
    assert_eq!(
        u(UrgencyFactors {
            failure_count: Some(5),
            ..f()
        }),
        45
    );
    assert_eq!(
        u(UrgencyFactors {
            failure_count: Some(6),
            ..f()
        }),
        45
    );
    assert_eq!(
        u(UrgencyFactors {
            wait_hours: Some(19.0),
            ..f()
        }),
        40
    );
    assert_eq!(
        u(UrgencyFactors {
            wait_hours: Some(21.0),
            ..f()
        }),
        40
    );
}

#[test]
fn urgency_rounds_half_up_then_clamps() {
    // 30 + 0.5 × 1 = 30.5 → 31
    let f = UrgencyFactors {
        drop_points: Some(1.0),
        ..Default::default()
    };
    assert_eq!(urgency_score(Severity::Low, f).unwrap(), 31);
    // 30 + 0.5 × 0.9 = 30.45 → 30
    let f = UrgencyFactors {
        wait_hours: Some(0.9),
        ..Default::default()
    };
    assert_eq!(urgency_score(Severity::Low, f).unwrap(), 30);
    // critical with everything maxed: 90 + 10 + 15 + 10 + 10 + 15 + 10 = 160 → 100
    let all = UrgencyFactors {
        drop_points: Some(100.0),
        health_zone: Some(Saturation::Red),
        stall_days: Some(100.0),
        large_deal: true,
        failure_count: Some(100),
        wait_hours: Some(100.0),
    };
    assert_eq!(urgency_score(Severity::Critical, all).unwrap(), 100);
}

#[test]
fn urgency_rejects_negative_and_non_finite_factors() {
    let cases = [
        (
            UrgencyFactors {
                drop_points: Some(-1.0),
                ..Default::default()
            },
            "drop_points",
        ),
        (
            UrgencyFactors {
                stall_days: Some(-0.5),
                ..Default::default()
            },
            "stall_days",
        ),
        (
            UrgencyFactors {
                failure_count: Some(-1),
                ..Default::default()
            },
            "failure_count",
        ),
        (
            UrgencyFactors {
                wait_hours: Some(f64::NAN),
                ..Default::default()
            },
            "wait_hours",
        ),
    ];
    for (f, name) in cases {
        let err = urgency_score(Severity::High, f).unwrap_err();
        assert!(err.message.starts_with(name), "{}", err.message);
    }
}

#[test]
fn urgency_bands() {
    assert_eq!(urgency_band(100), "immediate");
    assert_eq!(urgency_band(90), "immediate");
    assert_eq!(urgency_band(89), "hours");
    assert_eq!(urgency_band(70), "hours");
    assert_eq!(urgency_band(69), "within 24h");
    assert_eq!(urgency_band(50), "within 24h");
    assert_eq!(urgency_band(49), "this week");
    assert_eq!(urgency_band(30), "this week");
    assert_eq!(urgency_band(29), "backlog");
}

#[test]
fn health_zone_parses_any_case_and_rejects_unknown_text() {
    assert_eq!(parse_health_zone("red").unwrap(), Saturation::Red);
    assert_eq!(parse_health_zone(" Yellow ").unwrap(), Saturation::Yellow);
    let err = parse_health_zone("purple").unwrap_err();
    assert!(
        err.message.starts_with("health_zone must be one of"),
        "{}",
        err.message
    );
}

const USECS_PER_SEC: i64 = 1_000_000;

#[test]
fn utc_date_handles_epochs_leap_days_and_negatives() {
    assert_eq!(utc_date(0), Some((2000, 1, 1)));
    assert_eq!(utc_date(-1), Some((1999, 12, 31)));
    // 2024-02-29 12:00 UTC = 8825 days + 12 h after 2000-01-01
    assert_eq!(
        utc_date(8825 * USECS_PER_DAY + 12 * 3600 * USECS_PER_SEC),
        Some((2024, 2, 29))
    );
    assert_eq!(utc_date(8826 * USECS_PER_DAY - 1), Some((2024, 2, 29)));
    assert_eq!(utc_date(8826 * USECS_PER_DAY), Some((2024, 3, 1)));
    assert_eq!(
        utc_date(-PG_EPOCH_OFFSET_SECS * USECS_PER_SEC),
        Some((1970, 1, 1))
    );
    // Beyond chrono's calendar: no date (dedup_key refuses it, 22023).
    assert_eq!(utc_date(i64::MAX), None);
}

#[test]
fn dedup_key_uses_the_utc_date() {
    let at = 8825 * USECS_PER_DAY + 23 * 3600 * USECS_PER_SEC;
    assert_eq!(
        dedup_key("health_drop", "acme", at).unwrap(),
        "health_drop_acme_2024-02-29"
    );
    assert!(dedup_key("", "acme", at)
        .unwrap_err()
        .message
        .starts_with("anomaly_type"));
    assert!(dedup_key("x", "", at)
        .unwrap_err()
        .message
        .starts_with("entity"));
}

fn ek(interactions: i64, views: i64, elapsed_min: i128) -> EarlyKillInputs {
    EarlyKillInputs {
        expected_rate: 0.1,
        interactions,
        views,
        elapsed_micros: elapsed_min * 60 * 1_000_000,
        kill_threshold: 0.5,
        min_interactions: 10,
        timeout_micros: 10 * 60 * 1_000_000,
    }
}

#[test]
fn early_kill_kills_only_with_enough_interactions_and_a_low_rate() {
    // rate 10/300 = 0.033 < 0.05
    assert_eq!(
        early_kill_decision(ek(10, 300, 1)).unwrap(),
        KillDecision::Kill
    );
    // 9 interactions: not enough evidence yet
    assert_eq!(
        early_kill_decision(ek(9, 300, 1)).unwrap(),
        KillDecision::Continue
    );
    // rate exactly 0.05 is not below the bar
    assert_eq!(
        early_kill_decision(ek(10, 200, 1)).unwrap(),
        KillDecision::Continue
    );
    assert_eq!(
        early_kill_decision(ek(10, 201, 1)).unwrap(),
        KillDecision::Kill
    );
}

#[test]
fn early_kill_never_kills_without_views() {
    assert_eq!(
        early_kill_decision(ek(50, 0, 1)).unwrap(),
        KillDecision::Continue
    );
    assert_eq!(
        early_kill_decision(ek(50, 0, 10)).unwrap(),
        KillDecision::Expired
    );
}

#[test]
fn early_kill_expires_at_the_timeout() {
    let mut i = ek(1, 100, 0);
    i.elapsed_micros = i.timeout_micros - 1;
    assert_eq!(early_kill_decision(i).unwrap(), KillDecision::Continue);
    i.elapsed_micros = i.timeout_micros;
    assert_eq!(early_kill_decision(i).unwrap(), KillDecision::Expired);
    // a kill wins over expiry
    assert_eq!(
        early_kill_decision(ek(10, 300, 60)).unwrap(),
        KillDecision::Kill
    );
}

#[test]
fn early_kill_rejects_negative_counts_and_rates() {
    let names = [
        "interactions",
        "views",
        "expected_rate",
        "kill_threshold",
        "min_interactions",
    ];
    for name in names {
        let mut i = ek(10, 100, 1);
        match name {
            "interactions" => i.interactions = -1,
            "views" => i.views = -1,
            "expected_rate" => i.expected_rate = -0.1,
            "kill_threshold" => i.kill_threshold = f64::NAN,
            _ => i.min_interactions = -1,
        }
        let err = early_kill_decision(i).unwrap_err();
        assert!(err.message.starts_with(name), "{name}: {}", err.message);
    }
    let mut i = ek(10, 100, 1);
    i.timeout_micros = -1;
    assert!(early_kill_decision(i)
        .unwrap_err()
        .message
        .starts_with("timeout"));
}

#[test]
fn interval_span_counts_months_as_30_days() {
    assert_eq!(interval_span_micros(0, 0, 600_000_000), 600_000_000);
    assert_eq!(
        interval_span_micros(1, 1, 0),
        31 * i128::from(USECS_PER_DAY)
    );
    assert_eq!(interval_span_micros(0, -1, 0), -i128::from(USECS_PER_DAY));
}

#[test]
fn saturation_days_count_the_unbroken_run_of_declines_from_today() {
    // days by number: [rows, conversions]; rate = conversions / rows
    let run = |rates: &[Option<f64>]| {
        let days: Vec<[f64; 2]> = rates
            .iter()
            .map(|r| r.map_or([0.0, 0.0], |r| [100.0, 100.0 * r]))
            .collect();
        SaturationDays::of(&days).decline_days
    };
    // today 0.1 < yesterday 0.2 < 0.3 < 0.4, then flat: three days
    assert_eq!(
        run(&[Some(0.1), Some(0.2), Some(0.3), Some(0.4), Some(0.4)]),
        3
    );
    // no day 0, a gap, an equal rate, a rise: the run stops there
    assert_eq!(run(&[None, Some(0.1), Some(0.2)]), 0);
    assert_eq!(run(&[Some(0.1), None, Some(0.2)]), 0);
    assert_eq!(run(&[Some(0.1), Some(0.2), None, Some(0.3)]), 1);
    assert_eq!(run(&[Some(0.2), Some(0.2)]), 0);
    assert_eq!(run(&[Some(0.3), Some(0.2)]), 0);
    // the oldest day has nothing before it, so it never declines
    assert_eq!(run(&[Some(0.1)]), 0);
    assert_eq!(run(&[]), 0);
    // a NaN rate declines nowhere
    assert_eq!(
        SaturationDays::of(&[[1.0, 0.1], [1.0, f64::NAN], [1.0, 0.3]]).decline_days,
        0
    );
}

#[test]
fn saturation_days_sum_the_baseline_and_skip_empty_days() {
    // day 0: 10 rows, 1 conversion; day 1: 20/4; day 2 emptied (0 rows,
    // as a rollup's deleted groups leave it); day 3: 40/4
    let s = SaturationDays::of(&[[10.0, 1.0], [20.0, 4.0], [0.0, 0.0], [40.0, 4.0]]);
    assert_eq!((s.rows_24h, s.converted_24h), (10.0, 1.0));
    assert_eq!(s.rows_baseline, 60.0);
    assert_eq!(s.converted_baseline, 8.0);
    assert_eq!(s.rows_baseline_sq, 400.0 + 1600.0);
    // baseline rates 0.2 and 0.1: mean 0.15, sample sd sqrt(0.005)
    assert!((s.rate_mean.unwrap() - 0.15).abs() < 1e-15);
    assert!((s.rate_sd.unwrap() - 0.005f64.sqrt()).abs() < 1e-15);
    // today 0.1 < yesterday 0.2, and day 2 is no day: one
    assert_eq!(s.decline_days, 1);
    // one baseline day: a mean, no deviation; none: neither
    let s = SaturationDays::of(&[[0.0, 0.0], [4.0, 1.0]]);
    assert_eq!(
        (s.rows_24h, s.rate_mean, s.rate_sd),
        (0.0, Some(0.25), None)
    );
    let s = SaturationDays::of(&[[5.0, 1.0]]);
    assert_eq!((s.rows_baseline, s.rate_mean, s.rate_sd), (0.0, None, None));
    assert_eq!(SaturationDays::of(&[]).rows_24h, 0.0);
}

#[test]
fn drop_samples_merge_each_bucket_and_take_the_latest() {
    let row = |at, rows, a: Option<f64>, b: Option<f64>| BucketRow { at, rows, a, b };
    // Averages: bucket 1 holds two slot rows (mean 10 of 2 values, mean 20
    // of 2: 15), bucket 3 one (mean 6 of 3), bucket 2 was emptied by
    // deletions (rows add up to 0), given out of order.
    let mut rows = vec![
        row(3, 3.0, Some(18.0), Some(3.0)),
        row(1, 2.0, Some(20.0), Some(2.0)),
        row(2, 1.0, Some(5.0), Some(1.0)),
        row(1, 2.0, Some(40.0), Some(2.0)),
        row(2, -1.0, Some(-5.0), Some(-1.0)),
    ];
    assert_eq!(
        drop_samples(&mut rows, BucketMerge::Ratio),
        Some((6.0, 21.0, 2))
    );
    // A sum with no values in its latest bucket: that bucket is no sample.
    let mut rows = vec![
        row(1, 1.0, Some(7.0), Some(1.0)),
        row(2, 1.0, None, Some(0.0)),
    ];
    assert_eq!(
        drop_samples(&mut rows, BucketMerge::Sum),
        Some((7.0, 7.0, 1))
    );
    // Counts add up; min and max take PostgreSQL's order (NaN is greatest).
    let mut rows = vec![row(1, 1.0, Some(2.0), None), row(1, 1.0, Some(3.0), None)];
    assert_eq!(
        drop_samples(&mut rows, BucketMerge::Count),
        Some((5.0, 5.0, 1))
    );
    let mut rows = vec![
        row(1, 1.0, Some(f64::NAN), None),
        row(1, 1.0, Some(3.0), None),
        row(2, 1.0, Some(4.0), None),
    ];
    assert_eq!(
        drop_samples(&mut rows, BucketMerge::Min),
        Some((4.0, 7.0, 2))
    );
    let (latest, total, n) = drop_samples(&mut rows, BucketMerge::Max).unwrap();
    assert_eq!((latest, n), (4.0, 2));
    assert!(total.is_nan());
    // Nothing at all, or only emptied buckets: no samples.
    assert_eq!(drop_samples(&mut [], BucketMerge::Ratio), None);
    let mut rows = vec![row(1, 0.0, Some(1.0), Some(1.0))];
    assert_eq!(drop_samples(&mut rows, BucketMerge::Ratio), None);
    // The merge numbers are the SQL arguments.
    for m in [
        BucketMerge::Ratio,
        BucketMerge::Sum,
        BucketMerge::Count,
        BucketMerge::Min,
        BucketMerge::Max,
    ] {
        assert_eq!(BucketMerge::from_code(m as i32), Some(m));
    }
    assert_eq!(BucketMerge::from_code(5), None);
}

#[test]
fn latest_sum_takes_the_latest_row_and_the_greatest_of_a_tie() {
    let mut s = LatestSum::default();
    assert_eq!(s.samples(), None);
    s.add(5, 1.0);
    s.add(9, 2.0);
    s.add(7, 10.0);
    assert_eq!(s.samples(), Some((2.0, 13.0, 3)));
    // Same latest time: the greater value, NaN above every number.
    s.add(9, 4.0);
    s.add(9, 3.0);
    assert_eq!(s.samples(), Some((4.0, 20.0, 5)));
    s.add(9, f64::NAN);
    let (latest, total, n) = s.samples().unwrap();
    assert!(latest.is_nan() && total.is_nan() && n == 6);
    s.add(9, 100.0);
    assert!(s.samples().unwrap().0.is_nan(), "NaN stays above 100");
    // Merging partial states equals adding their rows in one.
    let rows = [(3, 1.5), (8, -2.0), (8, 7.0), (1, 4.0), (6, 0.5)];
    let mut whole = LatestSum::default();
    rows.iter().for_each(|&(at, v)| whole.add(at, v));
    for cut in 0..=rows.len() {
        let (mut a, mut b) = (LatestSum::default(), LatestSum::default());
        rows[..cut].iter().for_each(|&(at, v)| a.add(at, v));
        rows[cut..].iter().for_each(|&(at, v)| b.add(at, v));
        let mut ba = b;
        a.merge(&b);
        ba.merge(&{
            let mut x = LatestSum::default();
            rows[..cut].iter().for_each(|&(at, v)| x.add(at, v));
            x
        });
        assert_eq!(a.samples().map(|s| (s.0, s.2)), Some((7.0, 5)), "cut {cut}");
        assert_eq!(
            ba.samples().map(|s| (s.0, s.2)),
            Some((7.0, 5)),
            "cut {cut}"
        );
        assert!((a.total - whole.total).abs() < 1e-12);
    }
}
