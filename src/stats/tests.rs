//! Unit tests of the statistics summary: accuracy against two-pass results,
//! exact merges, removal, text and binary forms.

use super::*;
use crate::error::ErrorKind;

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn summarize(values: &[f64]) -> StatsSummary {
    let mut s = StatsSummary::new();
    for &v in values {
        s.accum(v).unwrap();
    }
    s
}

/// Mean and sample variance by the textbook two-pass method.
fn two_pass(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (n - 1.0))
}

fn rel_err(got: f64, want: f64) -> f64 {
    if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    }
}

fn assert_close(got: &StatsSummary, want: &StatsSummary, tol: f64) {
    assert_eq!(got.n, want.n, "{got} vs {want}");
    assert!(rel_err(got.mean, want.mean) <= tol, "mean: {got} vs {want}");
    assert!(rel_err(got.m2, want.m2) <= tol, "m2: {got} vs {want}");
}

/// Values around 1e9 whose spread is ~1e-6 of the mean: the textbook
/// one-pass sum of squares loses every digit here.
fn near_1e9(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 1e9 + rng.range(-1e3, 1e3)).collect()
}

fn mixed_magnitudes(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let magnitude = 10f64.powf(rng.range(-6.0, 6.0));
            if rng.below(4) == 0 {
                -magnitude
            } else {
                magnitude
            }
        })
        .collect()
}

#[test]
fn accum_matches_two_pass_on_values_near_1e9() {
    for seed in 1..=5 {
        let values = near_1e9(&mut Rng(seed), 20_000);
        let s = summarize(&values);
        let (mean, var) = two_pass(&values);
        assert!(rel_err(s.mean().unwrap(), mean) <= 1e-9);
        assert!(
            rel_err(s.variance().unwrap(), var) <= 1e-9,
            "seed {seed}: {} vs {var}",
            s.variance().unwrap()
        );
    }
}

#[test]
fn accum_matches_two_pass_on_mixed_magnitudes() {
    for seed in 1..=5 {
        let values = mixed_magnitudes(&mut Rng(seed), 20_000);
        let s = summarize(&values);
        let (mean, var) = two_pass(&values);
        assert!(rel_err(s.mean().unwrap(), mean) <= 1e-9);
        assert!(rel_err(s.variance().unwrap(), var) <= 1e-9);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((s.min(), s.max()), (Some(min), Some(max)));
    }
}

/// With a spread of ~1 around 1e9, float8's resolution there (1.2e-7) is a
/// fraction of the spread, so each stored running mean is rounded by a
/// noticeable part of it; this bounds any float8 summary, PostgreSQL's own
/// `var_samp` included (its error on this data is similar).
#[test]
fn accum_near_1e9_with_unit_spread_is_limited_only_by_float8_resolution() {
    let mut rng = Rng(3);
    let values: Vec<f64> = (0..20_000).map(|_| 1e9 + rng.range(-1.0, 1.0)).collect();
    let (_, var) = two_pass(&values);
    assert!(rel_err(summarize(&values).variance().unwrap(), var) <= 1e-7);
}

#[test]
fn combine_of_random_splits_equals_single_pass() {
    for seed in 1..=20 {
        let mut rng = Rng(seed);
        let values: Vec<f64> = (0..5_000).map(|_| rng.range(-1e3, 1e4)).collect();
        let whole = summarize(&values);
        let mut cuts: Vec<usize> = (0..rng.below(8)).map(|_| rng.below(values.len())).collect();
        cuts.extend([0, values.len()]);
        cuts.sort_unstable();
        let merged = cuts
            .windows(2)
            .map(|w| summarize(&values[w[0]..w[1]]))
            .try_fold(StatsSummary::new(), |acc, part| acc.combine(&part))
            .unwrap();
        assert_close(&merged, &whole, 1e-12);
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
    }
}

#[test]
fn combine_with_an_empty_side_returns_the_other_side() {
    let s = summarize(&[1.0, 2.0, 4.0]);
    let empty = StatsSummary::new();
    assert_eq!(s.combine(&empty).unwrap(), s);
    assert_eq!(empty.combine(&s).unwrap(), s);
    assert_eq!(empty.combine(&empty).unwrap(), empty);
}

#[test]
fn remove_after_accum_restores_the_previous_summary() {
    let mut rng = Rng(7);
    for values in [near_1e9(&mut rng, 1_000), mixed_magnitudes(&mut rng, 1_000)] {
        let before = summarize(&values[..900]);
        let mut s = before;
        for &v in &values[900..] {
            s.accum(v).unwrap();
        }
        for &v in values[900..].iter().rev() {
            s.remove(v).unwrap();
        }
        assert_close(&s, &before, 1e-9);
    }
}

#[test]
fn remove_flags_min_max_as_stale_only_when_an_extreme_leaves() {
    let mut s = summarize(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(s.remove(2.0), Ok(false));
    assert_eq!(s.remove(4.0), Ok(true));
    // Stale bounds still contain the remaining values.
    assert_eq!((s.min(), s.max()), (Some(1.0), Some(4.0)));
    assert_close(&s, &summarize(&[1.0, 3.0]), 1e-15);

    let mut same = summarize(&[5.0, 5.0, 5.0]);
    assert_eq!(same.remove(5.0), Ok(false), "all equal: bounds stay exact");
}

#[test]
fn remove_of_the_last_value_leaves_an_empty_summary() {
    let mut s = summarize(&[3.5]);
    assert_eq!(s.remove(3.5), Ok(false));
    assert_eq!(s, StatsSummary::new());
    assert_eq!(s.mean(), None);
}

#[test]
fn remove_rejects_empty_summaries_foreign_values_and_nan() {
    let err = StatsSummary::new().remove(1.0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
    assert_eq!(err.message, "cannot remove a value from an empty summary");

    let mut s = summarize(&[1.0, 2.0]);
    let err = s.remove(2.5).unwrap_err();
    assert!(
        err.message.starts_with("value 2.5 is outside"),
        "{}",
        err.message
    );
    assert!(s.remove(0.5).is_err());
    assert!(s
        .remove(f64::NAN)
        .unwrap_err()
        .message
        .starts_with("value must be a finite number"));
    assert_eq!(s, summarize(&[1.0, 2.0]), "failed removals leave no trace");
}

#[test]
fn subtract_is_the_inverse_of_combine() {
    for seed in 1..=10 {
        let mut rng = Rng(seed);
        let a: Vec<f64> = (0..2_000).map(|_| rng.range(-50.0, 500.0)).collect();
        let b: Vec<f64> = (0..rng.below(2_000) + 1)
            .map(|_| rng.range(0.0, 100.0))
            .collect();
        let (sa, sb) = (summarize(&a), summarize(&b));
        let (rest, _) = sa.combine(&sb).unwrap().subtract(&sb).unwrap();
        assert_close(&rest, &sa, 1e-9);
    }
}

#[test]
fn subtract_flags_staleness_and_handles_empty_and_whole() {
    let all = summarize(&[1.0, 2.0, 3.0, 10.0]);
    let (rest, stale) = all.subtract(&summarize(&[2.0, 3.0])).unwrap();
    assert!(!stale);
    assert_eq!(
        (rest.num_vals(), rest.mean(), rest.variance()),
        (2, Some(5.5), Some(40.5))
    );
    let (rest, stale) = all.subtract(&summarize(&[10.0])).unwrap();
    assert!(stale);
    assert_eq!((rest.num_vals(), rest.mean()), (3, Some(2.0)));
    assert_eq!(all.subtract(&StatsSummary::new()), Ok((all, false)));
    assert_eq!(all.subtract(&all), Ok((StatsSummary::new(), false)));
}

#[test]
fn subtract_rejects_summaries_that_were_never_combined_in() {
    let all = summarize(&[1.0, 2.0, 3.0]);
    let err = all.subtract(&summarize(&[1.0, 2.0, 2.0, 3.0])).unwrap_err();
    assert!(
        err.message.contains("4 values from one of 3"),
        "{}",
        err.message
    );
    assert!(all.subtract(&summarize(&[0.0])).is_err());
    assert!(all.subtract(&summarize(&[4.0])).is_err());
    assert!(StatsSummary::new().subtract(&summarize(&[1.0])).is_err());
}

#[test]
fn empty_summary_has_no_statistics() {
    let s = StatsSummary::new();
    assert_eq!(s.num_vals(), 0);
    assert_eq!((s.mean(), s.min(), s.max()), (None, None, None));
    assert_eq!((s.variance(), s.variance_pop()), (None, None));
    assert_eq!((s.stddev(), s.stddev_pop()), (None, None));
    assert_eq!(s.zscore(1.0), Ok(None));
}

#[test]
fn one_value_has_a_population_variance_but_no_sample_variance() {
    let s = summarize(&[-4.25]);
    assert_eq!(s.num_vals(), 1);
    assert_eq!(
        (s.mean(), s.min(), s.max()),
        (Some(-4.25), Some(-4.25), Some(-4.25))
    );
    assert_eq!((s.variance(), s.stddev()), (None, None));
    assert_eq!((s.variance_pop(), s.stddev_pop()), (Some(0.0), Some(0.0)));
    assert_eq!(s.zscore(0.0), Ok(None));
}

#[test]
fn accessors_match_known_values() {
    let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
    assert_eq!(s.mean(), Some(5.0));
    assert_eq!(s.variance_pop(), Some(4.0));
    assert_eq!(s.stddev_pop(), Some(2.0));
    assert_eq!(s.variance(), Some(32.0 / 7.0));
    assert_eq!(s.zscore(5.0 + 2.0 * (32.0f64 / 7.0).sqrt()), Ok(Some(2.0)));
}

#[test]
fn accum_rejects_non_finite_values_without_changing_state() {
    let mut s = summarize(&[1.0]);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = s.accum(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(err
            .message
            .starts_with("value must be a finite number, got"));
    }
    assert_eq!(s, summarize(&[1.0]));
}

#[test]
fn accum_and_combine_report_float8_overflow_as_out_of_range() {
    let mut s = summarize(&[-1e308]);
    let err = s.accum(1e308).unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfRange);
    assert_eq!(s, summarize(&[-1e308]));
    let err = s.combine(&summarize(&[1e308])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfRange);
}

#[test]
fn zscore_is_none_for_zero_stddev_and_names_bad_arguments() {
    assert_eq!(zscore(13.0, 10.0, 1.5), Ok(Some(2.0)));
    assert_eq!(zscore(7.0, 10.0, 1.5), Ok(Some(-2.0)));
    assert_eq!(zscore(13.0, 10.0, 0.0), Ok(None));
    for (args, name) in [
        ((f64::NAN, 0.0, 1.0), "value"),
        ((0.0, f64::INFINITY, 1.0), "mean"),
        ((0.0, 0.0, f64::NAN), "stddev"),
        ((0.0, 0.0, -1.0), "stddev"),
    ] {
        let err = zscore(args.0, args.1, args.2).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(err.message.starts_with(name), "{}", err.message);
    }
    let err = zscore(1e308, -1e308, 1e300).unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfRange);
}

#[test]
fn spread_below_float_noise_is_no_spread_relative_to_the_mean() {
    // Means below 1 are judged against 1: an absolute 1e-9.
    assert!(spread_is_noise(0.0, 0.3));
    assert!(spread_is_noise(1e-9, 0.3));
    assert!(!spread_is_noise(2e-9, 0.3));
    assert!(spread_is_noise(1e-9, -0.5));
    // Larger means scale it.
    assert!(spread_is_noise(1e-3, 1e6));
    assert!(!spread_is_noise(2e-3, 1e6));
    assert!(spread_is_noise(1e-3, -1e6));
    assert!(!spread_is_noise(1.5, 10.0));
}

#[test]
fn zscore_of_a_zero_spread_baseline_is_none_not_huge() {
    // Thirty days of the same conversion rate, as PostgreSQL's stddev_samp
    // (Youngs-Cramer) leaves it: not 0, but 6e-17.
    let rates = summarize(&[0.3; 30]);
    assert_eq!(rates.zscore(0.2), Ok(None));
    assert_eq!(zscore(0.2, 0.3, 5.996_679_365_880_867e-17), Ok(None));
    assert_eq!(zscore(0.2, 0.3, 1e-9), Ok(None));
    let z = zscore(0.2, 0.3, 2e-9).unwrap().unwrap();
    assert!((z + 5e7).abs() < 1.0, "{z}");
    assert_eq!(zscore(1e6 + 1.0, 1e6, 1e-3), Ok(None));
    assert_eq!(zscore(1e6 + 1.0, 1e6, 0.5), Ok(Some(2.0)));
}

#[test]
fn is_anomaly_is_strictly_beyond_the_threshold() {
    assert_eq!(is_anomaly(3.0, 3.0), Ok(false));
    assert_eq!(is_anomaly(-3.0, 3.0), Ok(false));
    assert_eq!(is_anomaly(3.000_000_001, 3.0), Ok(true));
    assert_eq!(is_anomaly(-3.000_000_001, 3.0), Ok(true));
    assert_eq!(is_anomaly(0.0, 0.0), Ok(false));
    assert_eq!(is_anomaly(1e-300, 0.0), Ok(true));
    assert!(is_anomaly(f64::NAN, 3.0)
        .unwrap_err()
        .message
        .starts_with("z must be"));
    assert!(is_anomaly(1.0, -1.0)
        .unwrap_err()
        .message
        .starts_with("threshold must be >= 0"));
    assert!(is_anomaly(1.0, f64::INFINITY)
        .unwrap_err()
        .message
        .starts_with("threshold must be a finite number"));
}

#[test]
fn text_form_round_trips_bit_for_bit() {
    let mut rng = Rng(99);
    let finite_bits = |rng: &mut Rng| loop {
        let v = f64::from_bits(rng.next_u64());
        if v.is_finite() {
            return v;
        }
    };
    for _ in 0..2_000 {
        let (a, b) = (finite_bits(&mut rng), finite_bits(&mut rng));
        let (min, max) = (a.min(b), a.max(b));
        let n = rng.next_u64() | 1;
        // Any consistent summary: mean between min and max, M2 within what
        // n values in that range can have.
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let half_span = max / 2.0 - min / 2.0;
        let m2 = n as f64 * half_span * half_span * u;
        let s = StatsSummary {
            n,
            mean: min / 2.0 + max / 2.0,
            m2: if m2.is_finite() { m2 } else { 0.0 },
            min,
            max,
        };
        let back = StatsSummary::parse(&s.to_string()).unwrap();
        assert_eq!(back.to_bytes(), s.to_bytes(), "{s}");
    }
    let real = summarize(&mixed_magnitudes(&mut rng, 100));
    assert_eq!(StatsSummary::parse(&real.to_string()), Ok(real));
}

#[test]
fn text_form_of_small_and_empty_summaries() {
    let s = summarize(&[1.0, 2.0, 3.0]);
    assert_eq!(s.to_string(), "(n:3,mean:2.0,m2:2.0,min:1.0,max:3.0)");
    assert_eq!(StatsSummary::new().to_string(), "(n:0)");
    assert_eq!(StatsSummary::parse("(n:0)"), Ok(StatsSummary::new()));
    assert_eq!(StatsSummary::parse("  ( n : 0 ) "), Ok(StatsSummary::new()));
    assert_eq!(
        StatsSummary::parse(" ( n: 3 , mean :2 ,m2: 2.0, min:1,max : 3e0 ) "),
        Ok(s)
    );
}

#[test]
fn text_parse_rejects_malformed_input() {
    for bad in [
        "",
        "n:3",
        "(n:3,mean:2.0,m2:2.0,min:1.0)",
        "(n:3,m2:2.0,mean:2.0,min:1.0,max:3.0)",
        "(n:-1)",
        "(n:x)",
        "(n:0,mean:1.0,m2:0.0,min:1.0,max:1.0)",
        "(n:2)",
        "(n:3,mean:NaN,m2:2.0,min:1.0,max:3.0)",
        "(n:3,mean:2.0,m2:-2.0,min:1.0,max:3.0)",
        "(n:3,mean:2.0,m2:2.0,min:3.0,max:1.0)",
        "(n:3,mean:2.0,m2:2.0,min:1.0,max:inf)",
        "(n:3,mean:two,m2:2.0,min:1.0,max:3.0)",
        "(n:3,mean:2.0,m2:2.0,min:1.0,max:3.0,extra:1)",
    ] {
        let err = StatsSummary::parse(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message.starts_with("statsagg text"),
            "{bad}: {}",
            err.message
        );
    }
}

#[test]
fn bytes_round_trip_and_are_little_endian() {
    let s = summarize(&mixed_magnitudes(&mut Rng(5), 1_000));
    let bytes = s.to_bytes();
    assert_eq!(bytes[0..8], 1_000u64.to_le_bytes());
    assert_eq!(StatsSummary::from_bytes(&bytes), Ok(s));
    let empty = StatsSummary::new();
    assert_eq!(StatsSummary::from_bytes(&empty.to_bytes()), Ok(empty));
}

#[test]
fn bytes_decode_rejects_wrong_length_and_inconsistent_fields() {
    let bytes = summarize(&[1.0, 2.0]).to_bytes();
    for len in [0, 8, 39, 41] {
        let mut v = bytes.to_vec();
        v.resize(len, 0);
        let err = StatsSummary::from_bytes(&v).unwrap_err();
        assert_eq!(
            err.message,
            format!("statsagg binary data must be 40 bytes, got {len}")
        );
    }
    let mut nan_mean = bytes;
    nan_mean[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
    let mut negative_m2 = bytes;
    negative_m2[16..24].copy_from_slice(&(-1.0f64).to_le_bytes());
    let mut min_above_max = bytes;
    min_above_max[24..32].copy_from_slice(&5.0f64.to_le_bytes());
    for bad in [nan_mean, negative_m2, min_above_max] {
        let err = StatsSummary::from_bytes(&bad).unwrap_err();
        assert!(err
            .message
            .starts_with("statsagg binary data is inconsistent"));
    }
}

#[test]
fn with_extremes_makes_stale_min_max_exact_again_and_checks_its_input() {
    let mut agg = datum::StatsAgg::new();
    for x in [1.0, 5.0, 9.0] {
        agg.summary.accum(x).unwrap();
    }
    agg.remove(9.0).unwrap();
    assert_eq!(agg.max(), None, "removing the max leaves it unknown");
    let fixed = agg.with_extremes(1.0, 5.0).unwrap();
    assert_eq!((fixed.min(), fixed.max()), (Some(1.0), Some(5.0)));
    assert_eq!(fixed.summary.n, 2);
    assert_eq!(fixed.summary.mean, agg.summary.mean);
    assert!(agg.with_extremes(5.0, 1.0).is_err());
    assert!(agg.with_extremes(f64::NAN, 5.0).is_err());
    assert!(datum::StatsAgg::new().with_extremes(1.0, 1.0).is_err());
}

#[test]
fn text_that_no_set_of_values_could_produce_is_refused() {
    for bad in [
        "(n:2,mean:5.0,m2:0.0,min:1.0,max:3.0)",
        "(n:2,mean:-1.0,m2:0.0,min:1.0,max:3.0)",
        "(n:2,mean:2.0,m2:100.0,min:1.0,max:3.0)",
        "(n:1,mean:2.0,m2:5.0,min:2.0,max:2.0)",
    ] {
        let err = StatsSummary::parse(bad).unwrap_err();
        assert!(
            err.message.contains("statsagg text"),
            "{bad}: {}",
            err.message
        );
    }
    for good in [
        "(n:2,mean:2.0,m2:2.0,min:1.0,max:3.0)",
        "(n:1,mean:2.0,m2:0.0,min:2.0,max:2.0)",
        "(n:3,mean:0.1,m2:0.0,min:0.1,max:0.1)",
    ] {
        assert!(StatsSummary::parse(good).is_ok(), "{good}");
    }
}

#[test]
fn removing_values_leaves_no_spread_residue() {
    // The review's case: 900, 1100, 900, then the 1100 leaves.
    let mut all = StatsSummary::default();
    for x in [900.0, 1100.0, 900.0] {
        all.accum(x).unwrap();
    }
    let mut one = StatsSummary::default();
    one.accum(1100.0).unwrap();
    let (rest, _) = all.subtract(&one).unwrap();
    assert_eq!(rest.n, 2);
    assert_eq!(rest.m2, 0.0, "residue {}", rest.m2);
    let mut removed = all;
    removed.remove(1100.0).unwrap();
    assert_eq!(removed.m2, 0.0, "residue {}", removed.m2);
    // A real spread survives (10 and 20: M2 = 50). One far below the
    // rounding error of the sums it was cancelled from cannot be told from
    // none, and reads as none.
    let mut spread = StatsSummary::default();
    for x in [10.0, 20.0, 1000.0] {
        spread.accum(x).unwrap();
    }
    spread.remove(1000.0).unwrap();
    assert!((spread.m2 - 50.0).abs() < 1e-9, "{}", spread.m2);
    // Equal extremes after a repair: exactly no spread, the mean exact.
    let mut agg = datum::StatsAgg::new();
    for x in [900.0, 1100.0, 900.0] {
        agg.summary.accum(x).unwrap();
    }
    agg.remove(1100.0).unwrap();
    let fixed = agg.with_extremes(900.0, 900.0).unwrap();
    assert_eq!((fixed.summary.mean, fixed.summary.m2), (900.0, 0.0));
}
