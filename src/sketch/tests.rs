//! Property tests of the quantile sketch: every quantile within the relative
//! error of the exact order statistic, exact merges and removals, encodings.

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

    /// Uniform in (0, 1]: never 0, so logs and powers stay finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const QUANTILES: [f64; 10] = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0];

fn uniform(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 1000.0 * rng.unit()).collect()
}

fn lognormal(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| (2.0 * rng.normal()).exp()).collect()
}

/// Pareto with shape 1.1: a tail reaching many orders of magnitude.
fn pareto(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 3.0 / rng.unit().powf(1.0 / 1.1)).collect()
}

fn constant(_: &mut Rng, n: usize) -> Vec<f64> {
    vec![42.5; n]
}

/// A fifth zeros, the rest split between negative lognormal and positive
/// uniform values.
fn mixed(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| match rng.below(5) {
            0 => 0.0,
            1 | 2 => -(1.5 * rng.normal()).exp(),
            _ => 50.0 * rng.unit(),
        })
        .collect()
}

type Distribution = fn(&mut Rng, usize) -> Vec<f64>;

const DISTRIBUTIONS: [(&str, Distribution); 5] = [
    ("uniform", uniform),
    ("lognormal", lognormal),
    ("pareto", pareto),
    ("constant", constant),
    ("mixed", mixed),
];

fn sketch_of(alpha: f64, values: &[f64]) -> Sketch {
    let mut s = Sketch::new(alpha).unwrap();
    for &v in values {
        s.add(v).unwrap();
    }
    s
}

/// The order statistic under the sketch's rank definition.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_within_alpha(estimate: f64, exact: f64, alpha: f64, context: &str) {
    // The bound is exact in real arithmetic; allow float rounding on top.
    let allowed = alpha * exact.abs() * (1.0 + 1e-9);
    assert!(
        (estimate - exact).abs() <= allowed,
        "{context}: estimate {estimate}, exact {exact}, alpha {alpha}"
    );
}

fn assert_quantiles_within_alpha(alpha: f64, values: &[f64], context: &str) {
    let s = sketch_of(alpha, values);
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    for q in QUANTILES {
        let estimate = s.quantile(q).unwrap().unwrap();
        let exact = exact_quantile(&sorted, q);
        assert_within_alpha(estimate, exact, alpha, &format!("{context} q={q}"));
    }
}

#[test]
fn quantiles_are_within_alpha_of_the_exact_order_statistic() {
    for alpha in [0.01, 0.001, 0.05, 0.5] {
        for (name, distribution) in DISTRIBUTIONS {
            for seed in 1..=4 {
                let values = distribution(&mut Rng(seed), 10_000);
                assert_quantiles_within_alpha(alpha, &values, &format!("{name} seed {seed}"));
            }
        }
    }
}

#[test]
fn quantiles_hold_at_the_ends_of_the_float8_range() {
    let values = [
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        1e300,
        -1e-300,
        1.0,
    ];
    // The whole float8 range fits the bucket limit from 1% error up.
    for alpha in [0.01, 0.05, 0.5] {
        let s = sketch_of(alpha, &values);
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for (rank, &exact) in sorted.iter().enumerate() {
            let q = rank as f64 / (sorted.len() - 1) as f64;
            let estimate = s.quantile(q).unwrap().unwrap();
            assert_within_alpha(estimate, exact, alpha, &format!("rank {rank}"));
        }
    }
}

#[test]
fn zero_and_subnormal_values_count_as_zero() {
    let s = sketch_of(0.01, &[0.0, -0.0, 4e-320, -4e-320]);
    assert_eq!(s.count(), 4);
    assert_eq!(s.quantile(0.0), Ok(Some(0.0)));
    assert_eq!(s.quantile(1.0), Ok(Some(0.0)));
    assert_eq!(s.to_string(), "(alpha:0.01,n:4,zero:4,neg:[],pos:[])");
}

#[test]
fn quantile_uses_the_lower_order_statistic() {
    // Ranks floor(q * 3) of [1, 10, 100, 1000]: q=0.5 is rank 1, q=0.99 rank 2.
    let s = sketch_of(0.0001, &[1000.0, 1.0, 100.0, 10.0]);
    let rounded = |q| s.quantile(q).unwrap().unwrap().round();
    assert_eq!(rounded(0.0), 1.0);
    assert_eq!(rounded(0.5), 10.0);
    assert_eq!(rounded(0.66), 10.0);
    assert_eq!(rounded(0.67), 100.0);
    assert_eq!(rounded(0.99), 100.0);
    assert_eq!(rounded(1.0), 1000.0);
}

#[test]
fn empty_sketch_has_no_quantiles() {
    let s = Sketch::new(DEFAULT_RELATIVE_ERROR).unwrap();
    assert_eq!(s.count(), 0);
    assert_eq!(s.alpha(), 0.01);
    assert_eq!(s.quantile(0.5), Ok(None));
    assert!(s.quantile(2.0).is_err(), "q is checked even when empty");
}

#[test]
fn merge_of_split_sketches_equals_one_sketch_over_all_data() {
    for (name, distribution) in DISTRIBUTIONS {
        for seed in 1..=4 {
            let mut rng = Rng(seed);
            let values = distribution(&mut rng, 5_000);
            let whole = sketch_of(0.01, &values);
            let mut parts: Vec<Vec<f64>> = vec![Vec::new(); 1 + rng.below(6)];
            for &v in &values {
                let part = rng.below(parts.len());
                parts[part].push(v);
            }
            let mut merged = Sketch::new(0.01).unwrap();
            for part in &parts {
                merged.merge(&sketch_of(0.01, part)).unwrap();
            }
            assert_eq!(merged, whole, "{name} seed {seed}");
            assert_eq!(merged.to_bytes(), whole.to_bytes());
            assert_eq!(merged.to_string(), whole.to_string());
        }
    }
}

#[test]
fn insertion_order_does_not_change_the_sketch() {
    let mut values = mixed(&mut Rng(11), 3_000);
    let shuffled = sketch_of(0.01, &values);
    values.sort_by(f64::total_cmp);
    let ascending = sketch_of(0.01, &values);
    values.reverse();
    let descending = sketch_of(0.01, &values);
    assert_eq!(ascending, shuffled);
    assert_eq!(descending, shuffled);
    assert_eq!(descending.to_bytes(), shuffled.to_bytes());
}

#[test]
fn add_n_equals_repeated_add() {
    let mut s = Sketch::new(0.02).unwrap();
    s.add_n(-3.5, 4).unwrap();
    s.add_n(0.0, 2).unwrap();
    s.add_n(7.0, 0).unwrap();
    assert_eq!(s, sketch_of(0.02, &[-3.5, -3.5, -3.5, -3.5, 0.0, 0.0]));
}

#[test]
fn removing_added_values_restores_the_previous_sketch() {
    for (name, distribution) in DISTRIBUTIONS {
        let mut rng = Rng(5);
        let kept = distribution(&mut rng, 2_000);
        let mut extra = distribution(&mut rng, 2_000);
        let before = sketch_of(0.01, &kept);
        let mut s = before.clone();
        for &v in &extra {
            s.add(v).unwrap();
        }
        // Rows leave in a different order than they came.
        for i in (1..extra.len()).rev() {
            extra.swap(i, rng.below(i + 1));
        }
        for &v in &extra {
            s.remove(v).unwrap();
        }
        assert_eq!(s, before, "{name}");
        assert_eq!(s.to_bytes(), before.to_bytes(), "{name}");
    }
}

#[test]
fn removing_everything_leaves_an_empty_sketch() {
    let values = mixed(&mut Rng(8), 500);
    let mut s = sketch_of(0.01, &values);
    for &v in &values {
        s.remove(v).unwrap();
    }
    let empty = Sketch::new(0.01).unwrap();
    assert_eq!(s, empty);
    assert_eq!(s.to_bytes(), empty.to_bytes());
    assert_eq!(s.quantile(0.5), Ok(None));
}

#[test]
fn remove_rejects_values_whose_bucket_is_empty() {
    let mut s = sketch_of(0.01, &[1.0, 2.0]);
    let before = s.clone();
    for bad in [5.0, -1.0, 0.0] {
        let err = s.remove(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message
                .starts_with(&format!("value {bad} cannot be removed")),
            "{}",
            err.message
        );
    }
    s.remove(2.0).unwrap();
    assert!(s.remove(2.0).is_err(), "removed once, added once");
    assert!(Sketch::new(0.01).unwrap().remove(1.0).is_err());
    assert!(s
        .remove(f64::NAN)
        .unwrap_err()
        .message
        .starts_with("value must be a finite number"));
    s.add(2.0).unwrap();
    assert_eq!(s, before, "failed removals leave no trace");
}

#[test]
fn subtract_is_the_inverse_of_merge() {
    for (name, distribution) in DISTRIBUTIONS {
        let mut rng = Rng(9);
        let a = sketch_of(0.01, &distribution(&mut rng, 3_000));
        let b = sketch_of(0.01, &distribution(&mut rng, 1_000));
        let mut s = a.clone();
        s.merge(&b).unwrap();
        s.subtract(&b).unwrap();
        assert_eq!(s, a, "{name}");
        s.subtract(&a).unwrap();
        assert_eq!(s, Sketch::new(0.01).unwrap(), "{name}");
    }
}

#[test]
fn subtract_rejects_values_not_held_and_leaves_no_trace() {
    let mut s = sketch_of(0.01, &[1.0, 2.0, 0.0]);
    let before = s.clone();
    for other in [&[1.0, 1.0][..], &[-1.0], &[0.0, 0.0], &[1.0, 500.0]] {
        let err = s.subtract(&sketch_of(0.01, other)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert_eq!(s, before);
    }
}

#[test]
fn sketches_with_different_alpha_do_not_combine() {
    let mut s = sketch_of(0.01, &[1.0]);
    let other = sketch_of(0.02, &[1.0]);
    let err = s.merge(&other).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
    assert!(
        err.message.starts_with("relative_error must be the same"),
        "{}",
        err.message
    );
    assert!(s.subtract(&other).is_err());
    assert_eq!(s, sketch_of(0.01, &[1.0]));
}

#[test]
fn new_rejects_relative_error_outside_its_range() {
    for bad in [0.0, 0.00009, 0.5000001, 1.0, -0.01, f64::NAN, f64::INFINITY] {
        let err = Sketch::new(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message
                .starts_with("relative_error must be between 0.0001 and 0.5"),
            "{}",
            err.message
        );
    }
    assert!(Sketch::new(0.0001).is_ok() && Sketch::new(0.5).is_ok());
}

#[test]
fn add_rejects_non_finite_values_and_count_overflow() {
    let mut s = sketch_of(0.01, &[1.0]);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = s.add(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(err
            .message
            .starts_with("value must be a finite number, got"));
    }
    s.add_n(1.0, u64::MAX - 1).unwrap();
    assert_eq!(s.add(2.0).unwrap_err().kind, ErrorKind::OutOfRange);
    let copy = s.clone();
    assert_eq!(s.merge(&copy).unwrap_err().kind, ErrorKind::OutOfRange);
    assert_eq!(s.count(), u64::MAX);
    assert_eq!(s.quantile(1.0), Ok(Some(s.quantile(0.0).unwrap().unwrap())));
}

#[test]
fn quantile_rejects_q_outside_zero_to_one() {
    let s = sketch_of(0.01, &[1.0]);
    for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
        let err = s.quantile(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OutOfRange);
        assert!(
            err.message.starts_with("q must be between 0 and 1"),
            "{}",
            err.message
        );
    }
}

#[test]
fn bytes_and_text_round_trip_exactly() {
    for alpha in [0.01, 0.5] {
        for (name, distribution) in DISTRIBUTIONS {
            let mut rng = Rng(21);
            let mut values = distribution(&mut rng, 2_000);
            values.push(f64::MAX);
            values.push(-f64::MIN_POSITIVE);
            let s = sketch_of(alpha, &values);
            let from_bytes = Sketch::from_bytes(&s.to_bytes()).unwrap();
            assert_eq!(from_bytes, s, "{name}");
            assert_eq!(from_bytes.to_bytes(), s.to_bytes(), "{name}");
            let from_text = Sketch::parse(&s.to_string()).unwrap();
            assert_eq!(from_text, s, "{name}");
            assert_eq!(from_text.to_string(), s.to_string(), "{name}");
        }
    }
    let empty = Sketch::new(0.01).unwrap();
    assert_eq!(Sketch::from_bytes(&empty.to_bytes()), Ok(empty.clone()));
    assert_eq!(Sketch::parse(&empty.to_string()), Ok(empty));
}

#[test]
fn text_form_lists_runs_of_buckets() {
    // With alpha 0.5 (gamma 3) bucket k holds (3^(k-1), 3^k]: 2 and 2.5 → key
    // 1, 5 → key 2, 100 → key 5; magnitude 0.5 → key 0.
    let s = sketch_of(0.5, &[2.0, 2.5, 5.0, 100.0, -0.5, 0.0]);
    let text = "(alpha:0.5,n:6,zero:1,neg:[0:1],pos:[1:2,1;5:1])";
    assert_eq!(s.to_string(), text);
    let spaced = " ( alpha : 0.5 , n: 6, zero:1 , neg: [ 0 : 1 ] , pos:[1: 2 , 1 ; 5:1] ) ";
    assert_eq!(Sketch::parse(spaced), Ok(s));
}

#[test]
fn text_parse_rejects_malformed_or_inconsistent_input() {
    for bad in [
        "",
        "alpha:0.5,n:0,zero:0,neg:[],pos:[]",
        "(alpha:0.5,n:0,zero:0,neg:[])",
        "(n:0,alpha:0.5,zero:0,neg:[],pos:[])",
        "(alpha:0.7,n:0,zero:0,neg:[],pos:[])",
        "(alpha:x,n:0,zero:0,neg:[],pos:[])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[])",
        "(alpha:0.5,n:-1,zero:0,neg:[],pos:[])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[1:0,1])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:1:1)",
        "(alpha:0.5,n:2,zero:0,neg:[],pos:[5:1;1:1])",
        "(alpha:0.5,n:2,zero:0,neg:[],pos:[1:1;2:1])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[100000:1])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[9223372036854775807:1])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[1:])",
        "(alpha:0.5,n:1,zero:0,neg:[],pos:[x:1])",
        "(alpha:0.5,n:2,zero:0,neg:[],pos:[1:18446744073709551615,1])",
    ] {
        let err = Sketch::parse(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message.starts_with("sketch text is malformed"),
            "{bad}: {}",
            err.message
        );
    }
}

#[test]
fn truncated_bytes_are_rejected() {
    let bytes = sketch_of(0.01, &mixed(&mut Rng(3), 1_000)).to_bytes();
    for len in 0..bytes.len() {
        let err = Sketch::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            err.message.starts_with("sketch binary data is malformed"),
            "{}",
            err.message
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Sketch::from_bytes(&longer).is_err());
}

#[test]
fn hostile_bytes_are_rejected_without_panicking() {
    let header = |alpha: f64| {
        let mut out = vec![FORMAT_VERSION];
        out.extend_from_slice(&alpha.to_le_bytes());
        out
    };
    let with = |alpha: f64, tail: &[u8]| [header(alpha), tail.to_vec()].concat();
    let cases = [
        // Unknown version.
        [vec![2], with(0.01, &[0, 0, 0])[1..].to_vec()].concat(),
        with(f64::NAN, &[0, 0, 0]),
        with(0.9, &[0, 0, 0]),
        // A run claiming 2^62 counts.
        with(
            0.01,
            &[
                0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 1, 0,
            ],
        ),
        // A key far outside the range alpha allows.
        with(0.01, &[0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0]),
        // A zero count, an empty run.
        with(0.01, &[0, 1, 0, 1, 0, 0]),
        with(0.01, &[0, 1, 0, 0, 0]),
        // Counts summing past 2^64.
        with(
            0.01,
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0, 1, 2, 0,
            ],
        ),
        // An 11-byte varint.
        with(0.01, &[0xff; 11]),
    ];
    for bytes in cases {
        assert!(Sketch::from_bytes(&bytes).is_err(), "{bytes:?}");
    }
    // Random and bit-flipped input: any result is fine except a panic.
    let valid = sketch_of(0.01, &mixed(&mut Rng(4), 300)).to_bytes();
    let mut rng = Rng(77);
    for _ in 0..20_000 {
        let mut bytes = if rng.below(2) == 0 {
            let len = rng.below(64);
            let mut b = header(0.01);
            b.extend((0..len).map(|_| rng.next_u64() as u8));
            b
        } else {
            valid.clone()
        };
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        if let Ok(s) = Sketch::from_bytes(&bytes) {
            // Whatever decoded is a consistent sketch.
            let _ = s.quantile(0.5).unwrap();
            assert_eq!(Sketch::from_bytes(&s.to_bytes()), Ok(s));
        }
    }
}

#[test]
fn serialized_size_for_a_million_log_uniform_values_is_small() {
    let mut rng = Rng(2024);
    let mut s = Sketch::new(0.01).unwrap();
    let (lo, hi) = (1e-3f64.ln(), 1e9f64.ln());
    for _ in 0..1_000_000 {
        s.add((lo + (hi - lo) * rng.unit()).exp()).unwrap();
    }
    let size = s.to_bytes().len();
    println!("1M log-uniform values over 1e-3..1e9 at alpha 0.01: {size} bytes");
    assert!(size <= 8192, "{size} bytes");
}

#[test]
fn span_limit_bounds_memory_and_leaves_the_sketch_unchanged() {
    // 1e-300 and 1e300 at 0.01% error are ~6.9M buckets apart.
    let mut s = Sketch::new(0.0001).unwrap();
    s.add(1e-300).unwrap();
    let before = s.clone();
    let err = s.add(1e300).unwrap_err();
    assert_eq!(err.kind, crate::error::ErrorKind::OutOfRange);
    assert!(
        err.message.contains("larger relative_error"),
        "{}",
        err.message
    );
    assert_eq!(s, before);
    let mut wide = Sketch::new(0.0001).unwrap();
    wide.add(1e300).unwrap();
    assert!(s.merge(&wide).is_err());
    assert_eq!(s, before);
    // a short hostile text must not allocate millions of buckets
    let hostile = "(alpha:0.0001,n:2,zero:0,neg:[],pos:[-3500000:1;3500000:1])";
    assert!(Sketch::parse(hostile).is_err());
    // the default error covers the whole float8 range
    let mut full = Sketch::new(DEFAULT_RELATIVE_ERROR).unwrap();
    for x in [f64::MIN_POSITIVE, 1e-300, 1.0, 1e300, f64::MAX] {
        full.add(x).unwrap();
        full.add(-x).unwrap();
    }
    assert_eq!(full.count(), 10);
}

#[test]
fn hostile_binary_input_is_refused_before_it_is_built() {
    // Review 2026-12-02c: 32 MiB of empty runs used to decode into ~578 MB
    // before being refused. Now each run is checked as it is read.
    let mut header = vec![FORMAT_VERSION];
    header.extend_from_slice(&0.01f64.to_le_bytes());
    header.push(0); // zero count
    let mut empty_runs = header.clone();
    empty_runs.extend([0x80, 0x80, 0x04]); // 65536 runs
    empty_runs.extend(std::iter::repeat_n(0u8, 8 << 20));
    let err = Sketch::from_bytes(&empty_runs).unwrap_err().message;
    assert!(err.contains("a bucket run is empty"), "{err}");
    let mut too_many = header.clone();
    too_many.extend([0x80, 0x80, 0x80, 0x01]); // 2^21 runs
    let err = Sketch::from_bytes(&too_many).unwrap_err().message;
    assert!(err.contains("span more than"), "{err}");
    // One run of more buckets than a sketch may span, with the bytes for them.
    let mut wide = header;
    wide.push(1); // one run
    wide.push(0); // key 0
    wide.extend([0x81, 0x80, 0x08]); // 131073 buckets
    wide.extend(std::iter::repeat_n(1u8, 131_073));
    let err = Sketch::from_bytes(&wide).unwrap_err().message;
    assert!(err.contains("span more than"), "{err}");
}

#[test]
fn hostile_text_input_is_refused_before_it_is_built() {
    let many = format!("[0:{}1]", "1,".repeat(200_000));
    let text = format!("(alpha:0.01,n:200001,zero:0,neg:[],pos:{many})");
    let err = Sketch::parse(&text).unwrap_err().message;
    assert!(
        err.contains("span more than"),
        "{}",
        &err[..err.len().min(200)]
    );
}
