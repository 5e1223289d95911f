//! A DDSketch-style quantile sketch behind `vigil.sketch`: every quantile it
//! returns is within a relative error `alpha` of the true order statistic, two
//! sketches merge exactly, and values can be removed again (rollups do that
//! when rows are deleted).
//!
//! Design:
//! - A nonzero value `x` falls in bucket `ceil(ln|x| / ln gamma)` with
//!   `gamma = (1 + alpha) / (1 - alpha)`; bucket `i` holds `(gamma^(i-1),
//!   gamma^i]` and answers with `2 gamma^i / (gamma + 1)`, which is within
//!   `alpha` of every value in it (up to float rounding, ~1e-13 relative).
//!   Positive and negative values have separate buckets keyed by magnitude.
//! - Zero has its own count. So do subnormal values (|x| < 2.2e-308): their
//!   logarithms carry too few bits for the bound, and their absolute error is
//!   below 2.2e-308.
//! - Each store is a dense `Vec<u64>` over a range of keys: adding is one
//!   `ln`, one multiply and an increment (~7 ns, 130M values/s on one core).
//!   Memory grows with the span of magnitudes, not the number of values: 8
//!   bytes per bucket, ~1,400 buckets for 1e-3 … 1e9 at alpha 0.01, at most
//!   ~71,000 per sign for the whole float8 range.
//! - `alpha` is limited to [0.0001, 0.5]: below that the bucket count over
//!   realistic ranges stops being small enough to keep per group (at 0.0001 the
//!   whole float8 range is 7.1M buckets per sign).
//! - Quantile `q` is the lower order statistic: the value at 0-based rank
//!   `floor(q * (n - 1))` of the sorted values (q = 0 is the minimum, q = 1 the
//!   maximum), answered by its bucket's representative. Exact min/max are not
//!   tracked because removal would make them stale.
//! - Removal decrements the value's bucket; a value that was never added but
//!   shares a bucket with one that was is indistinguishable from it.
//!
//! Text form: `(alpha:0.01,n:6,zero:1,neg:[2:1],pos:[-3:1,2;1:1])`. `neg` and
//! `pos` list runs of consecutive nonzero buckets as `first_key:count,count,…`
//! separated by `;`, keys ascending (for `neg`, keys of the magnitudes).
//!
//! Binary form: a version byte (1), alpha as little-endian f64, then LEB128
//! varints: the zero count, and for the positive then the negative store the
//! number of runs followed by, per run, its first key (zigzag for the first
//! run, else the gap of empty buckets minus one), its length and its counts.
//! Equal sketches encode to equal bytes. 1M values log-uniform over 1e-3 …
//! 1e9 at alpha 0.01 take 2,781 bytes (see the size test). Decoding checks
//! every length, key and count, so hostile bytes yield an error, never a
//! panic or an allocation beyond the key range alpha allows.

mod counts;
pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;
pub mod state;

pub use counts::Arena;
use counts::Counts;

use std::fmt;
use std::iter;

use crate::error::{finite, Result, VigilError};

pub const DEFAULT_RELATIVE_ERROR: f64 = 0.01;
const MIN_RELATIVE_ERROR: f64 = 1e-4;
const MAX_RELATIVE_ERROR: f64 = 0.5;
const FORMAT_VERSION: u8 = 1;

/// The bucket a value falls in; keys are bucket indexes of magnitudes.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    Zero,
    Positive(i32),
    Negative(i32),
}

/// Counts of consecutive bucket keys starting at `offset`. May carry zero
/// counts at either end (growth slack, removals); only nonzero buckets are
/// observable.
#[derive(Debug, Clone, Default)]
struct Store {
    offset: i32,
    counts: Counts,
}

/// The most buckets one store may span: 1 MiB of counts. At the default 1%
/// error the whole float8 range needs ~71,000, so only tiny relative errors
/// over huge ranges (or hostile input) hit it; it bounds the memory one
/// sketch can take. Aggregate states keep their counts in the aggregate's
/// memory context (`Sketch::adopt`), so PostgreSQL accounts for them.
const MAX_SPAN: i64 = 1 << 17;

impl Store {
    /// Adds `n` to bucket `key`; false (and no change) if the store would
    /// span more than `MAX_SPAN` buckets.
    #[inline]
    fn add(&mut self, key: i32, n: u64) -> bool {
        // A key below `offset` wraps to a huge index and takes the slow path.
        let index = (i64::from(key) - i64::from(self.offset)) as usize;
        match self.counts.get_mut(index) {
            Some(count) => *count += n,
            None => {
                if self.span_with(key, key) > MAX_SPAN {
                    return false;
                }
                let index = self.grow_to(key);
                self.counts[index] += n;
            }
        }
        true
    }

    /// The number of buckets the store would span if it also held `lo..=hi`.
    fn span_with(&self, lo: i32, hi: i32) -> i64 {
        if self.counts.is_empty() {
            return i64::from(hi) - i64::from(lo) + 1;
        }
        let end = i64::from(self.offset) + self.counts.len() as i64 - 1;
        end.max(i64::from(hi)) - i64::from(self.offset).min(i64::from(lo)) + 1
    }

    /// Extends the dense range to cover `key` and returns its index.
    fn grow_to(&mut self, key: i32) -> usize {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(0);
            return 0;
        }
        if key < self.offset {
            // Over-extend downwards so that values arriving in descending
            // order do not shift the whole vector for every new bucket (but
            // never past the span limit).
            let end = i64::from(self.offset) + self.counts.len() as i64 - 1;
            let floor = (end - MAX_SPAN + 1).max(i64::from(i32::MIN)) as i32;
            let slack = self
                .offset
                .saturating_sub(self.counts.len() as i32)
                .max(floor);
            let new_offset = key.min(slack);
            let shift = (self.offset - new_offset) as usize;
            self.counts.prepend_zeroed(shift);
            self.offset = new_offset;
            (key - new_offset) as usize
        } else {
            let index = (key - self.offset) as usize;
            self.counts.resize_zeroed(index + 1);
            index
        }
    }

    fn get(&self, key: i32) -> u64 {
        let index = (i64::from(key) - i64::from(self.offset)) as usize;
        self.counts.get(index).copied().unwrap_or(0)
    }

    /// Takes `n` from the bucket; false (and no change) if it holds fewer.
    fn remove(&mut self, key: i32, n: u64) -> bool {
        let index = (i64::from(key) - i64::from(self.offset)) as usize;
        match self.counts.get_mut(index) {
            Some(count) if *count >= n => {
                *count -= n;
                true
            }
            _ => false,
        }
    }

    /// Nonzero buckets as `(key, count)`, keys ascending.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(index, &count)| (self.offset + index as i32, count))
    }

    /// Maximal runs of consecutive nonzero buckets as `(first key, counts)`.
    fn runs(&self) -> impl Iterator<Item = (i32, &[u64])> + '_ {
        let counts = &self.counts;
        let mut index = 0;
        iter::from_fn(move || {
            while index < counts.len() && counts[index] == 0 {
                index += 1;
            }
            let start = index;
            while index < counts.len() && counts[index] != 0 {
                index += 1;
            }
            (start < index).then(|| (self.offset + start as i32, &counts[start..index]))
        })
    }

    /// Callers check `fits` first so that a failed merge changes nothing.
    fn merge(&mut self, other: &Store) {
        for (key, count) in other.iter() {
            self.add(key, count);
        }
    }

    /// Whether merging `other` keeps the span within `MAX_SPAN`.
    fn fits(&self, other: &Store) -> bool {
        let mut keys = other.iter().map(|(k, _)| k);
        match (keys.next(), other.iter().next_back()) {
            (Some(lo), Some((hi, _))) => self.span_with(lo, hi) <= MAX_SPAN,
            _ => true,
        }
    }

    fn contains(&self, other: &Store) -> bool {
        other.iter().all(|(key, count)| self.get(key) >= count)
    }

    /// Callers check `contains` first so that a failed subtraction leaves
    /// nothing half done.
    fn subtract(&mut self, other: &Store) {
        for (key, count) in other.iter() {
            self.remove(key, count);
        }
    }

    /// Builds a store from decoded runs `(first key, counts)`, checking that
    /// runs ascend without touching, keys stay in `keys` and counts are
    /// positive. Returns the store and its total count.
    fn from_runs(
        runs: &[(i64, Vec<u64>)],
        keys: (i32, i32),
    ) -> std::result::Result<(Store, u64), String> {
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            return Ok((Store::default(), 0));
        };
        let mut previous_end: Option<i64> = None;
        let mut total = 0u64;
        for (start, counts) in runs {
            if counts.is_empty() {
                return Err("a bucket run is empty".into());
            }
            let out_of_range = || {
                format!(
                    "bucket keys from {start} are outside {}..{} for this alpha",
                    keys.0, keys.1
                )
            };
            if !(i64::from(keys.0)..=i64::from(keys.1)).contains(start) {
                return Err(out_of_range());
            }
            let end = start + counts.len() as i64 - 1;
            if end > i64::from(keys.1) {
                return Err(out_of_range());
            }
            if previous_end.is_some_and(|previous| *start <= previous + 1) {
                return Err("bucket runs must ascend with gaps between them".into());
            }
            previous_end = Some(end);
            for &count in counts {
                if count == 0 {
                    return Err("bucket counts must be positive".into());
                }
                total = total.checked_add(count).ok_or("counts overflow 2^64")?;
            }
        }
        let offset = first.0;
        if last.0 + last.1.len() as i64 - offset > MAX_SPAN {
            return Err(format!("buckets span more than {MAX_SPAN} keys"));
        }
        let span = (last.0 + last.1.len() as i64 - offset) as usize;
        let mut dense = Counts::zeroed(span);
        for (start, counts) in runs {
            let from = (start - offset) as usize;
            dense[from..from + counts.len()].copy_from_slice(counts);
        }
        let store = Store {
            offset: offset as i32,
            counts: dense,
        };
        Ok((store, total))
    }
}

fn too_wide() -> VigilError {
    VigilError::out_of_range(format!(
        "value out of range: the sketch would need more than {MAX_SPAN} buckets; \
         use a larger relative_error for values spanning this many orders of magnitude"
    ))
}

/// A mergeable quantile sketch with relative error bound `alpha`.
#[derive(Debug, Clone)]
pub struct Sketch {
    alpha: f64,
    /// ln(gamma).
    ln_gamma: f64,
    /// 1 / ln(gamma): the mapping multiplies rather than divides.
    inv_ln_gamma: f64,
    /// ln(1 - alpha) = ln(2 / (gamma + 1)), the representative's factor.
    ln_one_minus_alpha: f64,
    zero: u64,
    positive: Store,
    negative: Store,
    count: u64,
}

impl Sketch {
    /// An empty sketch; `relative_error` (alpha) must be in [0.0001, 0.5].
    pub fn new(relative_error: f64) -> Result<Sketch> {
        if !(MIN_RELATIVE_ERROR..=MAX_RELATIVE_ERROR).contains(&relative_error) {
            return Err(VigilError::invalid(format!(
                "relative_error must be between {MIN_RELATIVE_ERROR} and {MAX_RELATIVE_ERROR}, got {relative_error}"
            )));
        }
        // ln_1p keeps ln(gamma) accurate when alpha is small.
        let ln_gamma = relative_error.ln_1p() - (-relative_error).ln_1p();
        Ok(Sketch {
            alpha: relative_error,
            ln_gamma,
            inv_ln_gamma: 1.0 / ln_gamma,
            ln_one_minus_alpha: (-relative_error).ln_1p(),
            zero: 0,
            positive: Store::default(),
            negative: Store::default(),
            count: 0,
        })
    }

    /// Moves the bucket counts into a memory context, where they also grow
    /// from now on (aggregate states: see `counts.rs`). The context must
    /// outlive the sketch.
    pub fn adopt(&mut self, arena: Arena) {
        self.positive.counts.adopt(arena);
        self.negative.counts.adopt(arena);
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    #[inline]
    pub fn add(&mut self, x: f64) -> Result<()> {
        self.add_n(x, 1)
    }

    /// Adds `x` `n` times.
    #[inline]
    pub fn add_n(&mut self, x: f64, n: u64) -> Result<()> {
        let x = finite("value", x)?;
        // Every bucket count is at most the total, so checking the total is
        // enough to rule out overflow anywhere.
        let count = self.count.checked_add(n).ok_or_else(too_many_values)?;
        let added = match self.bucket(x) {
            Bucket::Zero => {
                self.zero += n;
                true
            }
            Bucket::Positive(key) => self.positive.add(key, n),
            Bucket::Negative(key) => self.negative.add(key, n),
        };
        if !added {
            return Err(too_wide());
        }
        self.count = count;
        Ok(())
    }

    /// Removes one occurrence of a value previously added.
    pub fn remove(&mut self, x: f64) -> Result<()> {
        let x = finite("value", x)?;
        let removed = match self.bucket(x) {
            Bucket::Zero if self.zero > 0 => {
                self.zero -= 1;
                true
            }
            Bucket::Zero => false,
            Bucket::Positive(key) => self.positive.remove(key, 1),
            Bucket::Negative(key) => self.negative.remove(key, 1),
        };
        if !removed {
            return Err(VigilError::invalid(format!(
                "value {x} cannot be removed: the sketch holds no value in its bucket"
            )));
        }
        self.count -= 1;
        Ok(())
    }

    /// Adds all of `other`'s values; the result equals one sketch built over
    /// both inputs.
    pub fn merge(&mut self, other: &Sketch) -> Result<()> {
        self.same_alpha(other)?;
        if !self.positive.fits(&other.positive) || !self.negative.fits(&other.negative) {
            return Err(too_wide());
        }
        self.count = self
            .count
            .checked_add(other.count)
            .ok_or_else(too_many_values)?;
        self.zero += other.zero;
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        Ok(())
    }

    /// The inverse of [`merge`](Self::merge): removes all of `other`'s values.
    pub fn subtract(&mut self, other: &Sketch) -> Result<()> {
        self.same_alpha(other)?;
        if other.zero > self.zero
            || !self.positive.contains(&other.positive)
            || !self.negative.contains(&other.negative)
        {
            return Err(VigilError::invalid(
                "cannot subtract a sketch holding values this sketch does not hold",
            ));
        }
        self.count -= other.count;
        self.zero -= other.zero;
        self.positive.subtract(&other.positive);
        self.negative.subtract(&other.negative);
        Ok(())
    }

    /// The value at 0-based rank `floor(q * (n - 1))`, within relative error
    /// alpha; `None` when the sketch is empty.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(VigilError::out_of_range(format!(
                "q must be between 0 and 1, got {q}"
            )));
        }
        let Some(last) = self.count.checked_sub(1) else {
            return Ok(None);
        };
        // Above 2^53 values the float product can round past the last rank.
        let rank = ((q * last as f64).floor() as u64).min(last);
        let mut seen = 0u64;
        let found = self
            .negative
            .iter()
            .rev()
            .map(|(key, count)| (Bucket::Negative(key), count))
            .chain(iter::once((Bucket::Zero, self.zero)))
            .chain(
                self.positive
                    .iter()
                    .map(|(key, count)| (Bucket::Positive(key), count)),
            )
            .find(|&(_, count)| {
                seen += count;
                seen > rank
            })
            .map(|(bucket, _)| self.value(bucket));
        Ok(found)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        out.extend_from_slice(&self.alpha.to_le_bytes());
        put_varint(&mut out, self.zero);
        for store in [&self.positive, &self.negative] {
            let runs: Vec<(i32, &[u64])> = store.runs().collect();
            put_varint(&mut out, runs.len() as u64);
            let mut previous_end: Option<i32> = None;
            for (start, counts) in runs {
                match previous_end {
                    None => put_varint(&mut out, zigzag(start)),
                    Some(end) => put_varint(&mut out, (start - end - 2) as u64),
                }
                put_varint(&mut out, counts.len() as u64);
                for &count in counts {
                    put_varint(&mut out, count);
                }
                previous_end = Some(start + counts.len() as i32 - 1);
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch> {
        decode(bytes).map_err(|detail| {
            VigilError::invalid(format!("sketch binary data is malformed: {detail}"))
        })
    }

    /// Parses the text form written by `Display`.
    pub fn parse(s: &str) -> Result<Sketch> {
        parse_text(s).map_err(|detail| {
            VigilError::invalid(format!(
                "sketch text is malformed: {detail}; expected the form (alpha:0.01,n:3,zero:1,neg:[],pos:[-3:1,1])"
            ))
        })
    }

    #[inline]
    fn bucket(&self, x: f64) -> Bucket {
        let magnitude = x.abs();
        if magnitude < f64::MIN_POSITIVE {
            return Bucket::Zero;
        }
        let key = self.key(magnitude);
        if x > 0.0 {
            Bucket::Positive(key)
        } else {
            Bucket::Negative(key)
        }
    }

    /// `ceil(ln(magnitude) / ln(gamma))` for a normal positive magnitude.
    #[inline]
    fn key(&self, magnitude: f64) -> i32 {
        let y = magnitude.ln() * self.inv_ln_gamma;
        // Truncation plus a fix-up: `f64::ceil` is a libm call on baseline
        // x86-64. |y| < 2^23 here, so the cast is exact.
        let truncated = y as i32;
        if f64::from(truncated) < y {
            truncated + 1
        } else {
            truncated
        }
    }

    /// The smallest and largest keys a normal float8 magnitude can have.
    fn key_range(&self) -> (i32, i32) {
        (self.key(f64::MIN_POSITIVE), self.key(f64::MAX))
    }

    /// The bucket's representative `gamma^key * (1 - alpha)`, computed in
    /// log space because `gamma^key` overflows for the top bucket.
    fn value(&self, bucket: Bucket) -> f64 {
        let representative = |key: i32| {
            (f64::from(key) * self.ln_gamma + self.ln_one_minus_alpha)
                .exp()
                .min(f64::MAX)
        };
        match bucket {
            Bucket::Zero => 0.0,
            Bucket::Positive(key) => representative(key),
            Bucket::Negative(key) => -representative(key),
        }
    }

    fn same_alpha(&self, other: &Sketch) -> Result<()> {
        if self.alpha.to_bits() == other.alpha.to_bits() {
            Ok(())
        } else {
            Err(VigilError::invalid(format!(
                "relative_error must be the same to combine sketches, got {} and {}",
                self.alpha, other.alpha
            )))
        }
    }

    /// Assembles a sketch from decoded parts after checking them.
    fn from_parts(
        alpha: f64,
        zero: u64,
        positive: &[(i64, Vec<u64>)],
        negative: &[(i64, Vec<u64>)],
    ) -> std::result::Result<Sketch, String> {
        let mut sketch = Sketch::new(alpha).map_err(|e| e.message)?;
        let keys = sketch.key_range();
        let (positive, positive_total) = Store::from_runs(positive, keys)?;
        let (negative, negative_total) = Store::from_runs(negative, keys)?;
        sketch.count = zero
            .checked_add(positive_total)
            .and_then(|total| total.checked_add(negative_total))
            .ok_or("counts overflow 2^64")?;
        sketch.zero = zero;
        sketch.positive = positive;
        sketch.negative = negative;
        Ok(sketch)
    }
}

/// Sketches are equal when they have the same alpha and the same nonzero
/// buckets, whatever their internal slack.
impl PartialEq for Sketch {
    fn eq(&self, other: &Self) -> bool {
        self.alpha.to_bits() == other.alpha.to_bits()
            && self.count == other.count
            && self.zero == other.zero
            && self.positive.iter().eq(other.positive.iter())
            && self.negative.iter().eq(other.negative.iter())
    }
}

impl fmt::Display for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(alpha:{:?},n:{},zero:{},neg:",
            self.alpha, self.count, self.zero
        )?;
        write_runs(f, &self.negative)?;
        f.write_str(",pos:")?;
        write_runs(f, &self.positive)?;
        f.write_str(")")
    }
}

fn write_runs(f: &mut fmt::Formatter<'_>, store: &Store) -> fmt::Result {
    f.write_str("[")?;
    for (i, (start, counts)) in store.runs().enumerate() {
        let separator = if i == 0 { "" } else { ";" };
        write!(f, "{separator}{start}:")?;
        for (j, count) in counts.iter().enumerate() {
            let separator = if j == 0 { "" } else { "," };
            write!(f, "{separator}{count}")?;
        }
    }
    f.write_str("]")
}

fn too_many_values() -> VigilError {
    VigilError::out_of_range("sketch cannot count more than 2^64 - 1 values")
}

fn parse_text(s: &str) -> std::result::Result<Sketch, String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or("missing parentheses")?;
    let mut fields = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&inner[start..]);
    let names = ["alpha", "n", "zero", "neg", "pos"];
    if fields.len() != names.len() {
        return Err(format!("expected the fields {}", names.join(", ")));
    }
    let mut values = [""; 5];
    for ((slot, field), name) in values.iter_mut().zip(&fields).zip(names) {
        match field.split_once(':') {
            Some((key, value)) if key.trim() == name => *slot = value.trim(),
            _ => {
                return Err(format!(
                    "expected field {name} in position, got \"{}\"",
                    field.trim()
                ))
            }
        }
    }
    let [alpha, n, zero, negative, positive] = values;
    let alpha: f64 = alpha
        .parse()
        .map_err(|_| format!("alpha \"{alpha}\" is not a number"))?;
    let n: u64 = n.parse().map_err(|_| format!("n \"{n}\" is not a count"))?;
    let zero: u64 = zero
        .parse()
        .map_err(|_| format!("zero \"{zero}\" is not a count"))?;
    let sketch = Sketch::from_parts(alpha, zero, &parse_runs(positive)?, &parse_runs(negative)?)?;
    if sketch.count != n {
        return Err(format!("n is {n} but the buckets hold {}", sketch.count));
    }
    Ok(sketch)
}

/// Parses `[key:count,count;key:count]`, refusing (before building them)
/// more buckets than a valid sketch can hold.
fn parse_runs(text: &str) -> std::result::Result<Vec<(i64, Vec<u64>)>, String> {
    // Counts are separated by commas: a list with more than MAX_SPAN of
    // them cannot be valid, whatever else it says.
    if text.bytes().filter(|&b| b == b',' || b == b';').count() as i64 >= MAX_SPAN {
        return Err(format!("buckets span more than {MAX_SPAN} keys"));
    }
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| format!("bucket list \"{text}\" must be in brackets"))?
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(';')
        .map(|run| {
            let (key, counts) = run
                .split_once(':')
                .ok_or_else(|| format!("bucket run \"{}\" must be key:count,…", run.trim()))?;
            let key = key
                .trim()
                .parse()
                .map_err(|_| format!("bucket key \"{}\" is not an integer", key.trim()))?;
            let counts = counts
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse()
                        .map_err(|_| format!("bucket count \"{}\" is not a count", c.trim()))
                })
                .collect::<std::result::Result<_, _>>()?;
            Ok((key, counts))
        })
        .collect()
}

fn decode(bytes: &[u8]) -> std::result::Result<Sketch, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let version = reader.byte()?;
    if version != FORMAT_VERSION {
        return Err(format!("unknown format version {version}"));
    }
    let mut alpha = [0u8; 8];
    for b in &mut alpha {
        *b = reader.byte()?;
    }
    let alpha = f64::from_le_bytes(alpha);
    let zero = reader.varint()?;
    let positive = reader.runs()?;
    let negative = reader.runs()?;
    if reader.pos != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - reader.pos));
    }
    Sketch::from_parts(alpha, zero, &positive, &negative)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self.bytes.get(self.pos).ok_or("truncated")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint overflows 64 bits".into())
    }

    /// One store's runs; keys are range-checked later by `Store::from_runs`.
    /// What a valid sketch can hold bounds the decoding itself (input from a
    /// client, COPY BINARY): no more than `MAX_SPAN` buckets in all, none
    /// empty, spanning at most `MAX_SPAN` keys, checked as each run is read,
    /// so memory stays proportional to a valid sketch whatever the input.
    fn runs(&mut self) -> std::result::Result<Vec<(i64, Vec<u64>)>, String> {
        let n_runs = self.varint()?;
        if n_runs > MAX_SPAN as u64 {
            return Err(format!("buckets span more than {MAX_SPAN} keys"));
        }
        let mut runs = Vec::new();
        let mut previous_end: Option<i64> = None;
        let mut first: Option<i64> = None;
        for _ in 0..n_runs {
            let key = self.varint()?;
            let start = match previous_end {
                None => unzigzag(key),
                Some(end) => i64::try_from(key)
                    .ok()
                    .and_then(|gap| end.checked_add(2)?.checked_add(gap))
                    .ok_or("bucket key out of range")?,
            };
            let len = self.varint()?;
            if len == 0 {
                return Err("a bucket run is empty".into());
            }
            if len > (self.bytes.len() - self.pos) as u64 {
                return Err("truncated".into());
            }
            let end = start
                .checked_add(len as i64 - 1)
                .ok_or("bucket key out of range")?;
            let lo = *first.get_or_insert(start);
            if end.checked_sub(lo).is_none_or(|span| span >= MAX_SPAN) {
                return Err(format!("buckets span more than {MAX_SPAN} keys"));
            }
            let counts = (0..len)
                .map(|_| self.varint())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            previous_end = Some(end);
            runs.push((start, counts));
        }
        Ok(runs)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(key: i32) -> u64 {
    ((key << 1) ^ (key >> 31)) as u32 as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests;
