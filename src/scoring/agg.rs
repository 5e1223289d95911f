//! Per-entity aggregates of two monitor kinds, each one hashed aggregate
//! over the rows a scan reads instead of a grouping per entity and day (or
//! bucket) followed by another per entity:
//!
//! - `vigil._saturation_days(now timestamptz, at timestamptz, rows float8,
//!   converted float8)`: each entity's rows and conversions summed per day
//!   number (whole days from `at` back from `now`: 0 is the last 24 hours),
//!   returned as [`SaturationDays`] in a float8 array.
//! - `vigil._drop_buckets(at timestamptz, rows float8, a float8, b float8,
//!   merge int)`: the drop kind's samples over a rollup, each bucket's slot
//!   rows merged ([`drop_samples`]), returned as `{latest, total, samples}`.
//! - `vigil._drop_latest(at timestamptz, v float8)`: the same figures over
//!   raw rows, in a fixed-size state ([`LatestSum`]) instead of
//!   `max(ARRAY[extract(epoch FROM at), v])`, which built and compared an
//!   array per row (780 000 rows per scan at 10M events).
//!
//! Written against the raw fmgr ABI, like `vigil.stats_agg`'s transition
//! function: they run once per row read (310 000 summary rows for 10 000
//! entities over a 30-day baseline). The state is `internal`: a header and
//! a growable array, both allocated in the aggregate's memory context (no
//! Rust allocation, so nothing outlives a reset of that context). Declared
//! in `sql/monitors.sql`.

use super::{drop_samples, BucketMerge, BucketRow, LatestSum, SaturationDays, LAST_DAY};
use crate::error::VigilError;
use crate::sqlglue::{agg_context, pg_finfo_v1, raise};
use pgrx::prelude::*;

/// A state: an array of `T` in the aggregate's memory context. `magic`
/// marks states of one aggregate: an `internal` datum is only ever a
/// pointer, and a superuser's `CREATE AGGREGATE` could pair our final
/// function with another aggregate's transition function (PostgreSQL
/// refuses an `internal` state to anyone else: "aggregate transition data
/// type cannot be internal").
#[repr(C)]
struct State<T> {
    magic: u64,
    len: usize,
    cap: usize,
    items: *mut T,
    /// The drop aggregate's merge (constant per call site; checked).
    tag: i32,
}

const SATURATION: u64 = 0x7669_6769_6c5f_6461; // "vigil_da"
const DROP: u64 = 0x7669_6769_6c5f_6462; // "vigil_db"
const LATEST: u64 = 0x7669_6769_6c5f_6463; // "vigil_dc"

/// Items allocated at first (a 30-day baseline reads 31 days).
const FIRST_CAPACITY: usize = 32;

impl<T: Copy> State<T> {
    /// The state argument: this aggregate's own, or a new one for NULL.
    /// Raises on a state another function made.
    #[inline]
    fn of(fcinfo: pg_sys::FunctionCallInfo, arg: pg_sys::NullableDatum, magic: u64) -> *mut Self {
        if arg.isnull {
            return first_state(fcinfo, magic, std::mem::size_of::<T>()).cast();
        }
        let st = arg.value.cast_mut_ptr::<Self>();
        // SAFETY: a non-NULL internal datum is a pointer to a palloc'd
        // block of at least 8 bytes.
        if unsafe { (*st).magic } != magic {
            not_our_state(fcinfo);
        }
        st
    }

    /// Makes room for `need` items (growing in the aggregate's context).
    #[inline]
    fn reserve(st: *mut Self, fcinfo: pg_sys::FunctionCallInfo, need: usize) {
        // SAFETY: st is a state of this aggregate.
        if need > unsafe { (*st).cap } {
            grow(fcinfo, st.cast(), need, std::mem::size_of::<T>());
        }
    }

    /// The items so far.
    fn items<'a>(st: *mut Self) -> &'a mut [T] {
        // SAFETY: the first `len` items are written; the array lives as
        // long as the aggregate's context, past this call.
        unsafe { std::slice::from_raw_parts_mut((*st).items, (*st).len) }
    }
}

/// The header shared by every `State<T>` (the array's type erased).
type Header = State<u8>;

pg_finfo_v1!(
    pg_finfo_vigil_saturation_days_trans,
    pg_finfo_vigil_saturation_days_final,
    pg_finfo_vigil_saturation_days_combine,
    pg_finfo_vigil_saturation_days_serial,
    pg_finfo_vigil_saturation_days_deserial,
    pg_finfo_vigil_drop_buckets_trans,
    pg_finfo_vigil_drop_buckets_final,
    pg_finfo_vigil_drop_buckets_combine,
    pg_finfo_vigil_drop_buckets_serial,
    pg_finfo_vigil_drop_buckets_deserial,
    pg_finfo_vigil_drop_latest_trans,
    pg_finfo_vigil_drop_latest_final,
    pg_finfo_vigil_drop_latest_combine,
    pg_finfo_vigil_drop_latest_serial,
    pg_finfo_vigil_drop_latest_deserial
);

/// An array item's bytes in a serialized state (parallel workers hand
/// their partial states to the leader as bytea): fields one by one, little
/// endian, so that no padding or enum layout is ever copied.
trait Item: Copy {
    const BYTES: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Item for [f64; 2] {
    const BYTES: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self[0].to_le_bytes());
        out.extend_from_slice(&self[1].to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        [f64_at(b, 0), f64_at(b, 8)]
    }
}

impl Item for BucketRow {
    const BYTES: usize = 33;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.at.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.a.unwrap_or(0.0).to_le_bytes());
        out.extend_from_slice(&self.b.unwrap_or(0.0).to_le_bytes());
        out.push(u8::from(self.a.is_some()) | u8::from(self.b.is_some()) << 1);
    }
    fn get(b: &[u8]) -> Self {
        let flags = b[32];
        BucketRow {
            at: i64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            rows: f64_at(b, 8),
            a: (flags & 1 != 0).then(|| f64_at(b, 16)),
            b: (flags & 2 != 0).then(|| f64_at(b, 24)),
        }
    }
}

/// Serialized state: magic (8), tag (4), item count (8), the items.
const SERIAL_HEADER: usize = 20;

fn serial<T: Item>(fcinfo: pg_sys::FunctionCallInfo, magic: u64) -> pg_sys::Datum {
    let st = final_state::<T>(fcinfo, magic);
    let items = State::items(st);
    let mut out = Vec::with_capacity(SERIAL_HEADER + items.len() * T::BYTES);
    out.extend_from_slice(&magic.to_le_bytes());
    // SAFETY: st is this aggregate's.
    out.extend_from_slice(&unsafe { (*st).tag }.to_le_bytes());
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for item in items.iter() {
        item.put(&mut out);
    }
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&out).into_pg())
}

fn deserial<T: Item>(fcinfo: pg_sys::FunctionCallInfo, magic: u64) -> pg_sys::Datum {
    // SAFETY: a strict function's first argument, a bytea, is not NULL.
    let bytes = unsafe {
        let arg = (*fcinfo).args.as_slice(2)[0].value;
        let ptr = pg_sys::pg_detoast_datum_packed(arg.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(ptr)
    };
    let len = bytes
        .get(12..20)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let ok = bytes.len() >= SERIAL_HEADER
        && u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")) == magic
        && len.and_then(|n| n.checked_mul(T::BYTES)) == Some(bytes.len() - SERIAL_HEADER);
    if !ok {
        not_our_state(fcinfo);
    }
    let len = len.unwrap_or_default();
    let st = first_state(fcinfo, magic, std::mem::size_of::<T>()).cast::<State<T>>();
    State::reserve(st, fcinfo, len);
    // SAFETY: st is new, with room for len items.
    unsafe {
        (*st).tag = i32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        for (i, chunk) in bytes[SERIAL_HEADER..].chunks_exact(T::BYTES).enumerate() {
            (*st).items.add(i).write(T::get(chunk));
        }
        (*st).len = len;
    }
    pg_sys::Datum::from(st)
}

/// A combine function's states to merge: `(into, from)`.
type Pair<T> = Option<(*mut State<T>, *mut State<T>)>;

/// A combine function's two states: `(into, from)`; `into` is made in the
/// aggregate's context when NULL (PostgreSQL passes NULL for a group's
/// first partial state); None when `from` is NULL (return `into` as is).
fn combine_args<T: Copy>(
    fcinfo: pg_sys::FunctionCallInfo,
    magic: u64,
) -> (pg_sys::NullableDatum, Pair<T>) {
    agg_context(fcinfo);
    // SAFETY: PostgreSQL's arguments for this call.
    let args = unsafe { (*fcinfo).args.as_slice(2) };
    if args[1].isnull {
        return (args[0], None);
    }
    let from = State::<T>::of(fcinfo, args[1], magic);
    let into = State::<T>::of(fcinfo, args[0], magic);
    (args[0], Some((into, from)))
}

/// Returns `d` (the state, or NULL) from a function.
fn ret(fcinfo: pg_sys::FunctionCallInfo, d: pg_sys::NullableDatum) -> pg_sys::Datum {
    // SAFETY: PostgreSQL's fcinfo for this call.
    unsafe { (*fcinfo).isnull = d.isnull };
    d.value
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_saturation_days_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let (into_arg, pair) = combine_args::<[f64; 2]>(fcinfo, SATURATION);
    let Some((into, from)) = pair else {
        return ret(fcinfo, into_arg);
    };
    let from_days = State::items(from);
    State::reserve(into, fcinfo, from_days.len());
    // SAFETY: into is this aggregate's, with room for from's days.
    unsafe {
        for i in (*into).len..from_days.len() {
            (*into).items.add(i).write([0.0, 0.0]);
        }
        (*into).len = (*into).len.max(from_days.len());
    }
    for (mine, theirs) in State::items(into).iter_mut().zip(from_days) {
        mine[0] += theirs[0];
        mine[1] += theirs[1];
    }
    pg_sys::Datum::from(into)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_saturation_days_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    serial::<[f64; 2]>(fcinfo, SATURATION)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_saturation_days_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    deserial::<[f64; 2]>(fcinfo, SATURATION)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_buckets_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let (into_arg, pair) = combine_args::<BucketRow>(fcinfo, DROP);
    let Some((into, from)) = pair else {
        return ret(fcinfo, into_arg);
    };
    // SAFETY: both are this aggregate's states.
    unsafe {
        match ((*into).tag, (*from).tag) {
            (_, -1) => {}
            (-1, t) => (*into).tag = t,
            (a, b) if a != b => bad_merge(fcinfo, b),
            _ => {}
        }
    }
    // Two states of one group, never the same allocation.
    let rows = State::items(from);
    // SAFETY: into is this aggregate's, with room reserved first.
    unsafe {
        State::reserve(into, fcinfo, (*into).len + rows.len());
        for (i, r) in rows.iter().enumerate() {
            (*into).items.add((*into).len + i).write(*r);
        }
        (*into).len += rows.len();
    }
    pg_sys::Datum::from(into)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_buckets_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    serial::<BucketRow>(fcinfo, DROP)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_buckets_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    deserial::<BucketRow>(fcinfo, DROP)
}

/// The transition function: `(internal, timestamptz, timestamptz, float8,
/// float8) RETURNS internal`, not strict. A row with a NULL time or NULL
/// rows adds nothing; NULL conversions count as none (as
/// `coalesce(sum(c), 0)` did). The day number is computed here, not in
/// SQL: `floor(date_part('epoch', now - at) / 86400)` per row was a third
/// of the aggregate's time.
///
/// # Safety
/// Called by PostgreSQL with the declared arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_saturation_days_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(5) };
    let (state, now, at, rows, converted) = (args[0], args[1], args[2], args[3], args[4]);
    let st = State::<[f64; 2]>::of(fcinfo, state, SATURATION);
    fc.isnull = false;
    if now.isnull || at.isnull || rows.isnull {
        return pg_sys::Datum::from(st);
    }
    // timestamptz: microseconds since 2000-01-01 UTC (infinities are the
    // extremes of i64, far outside the days taken).
    let ago = (now.value.value() as i64).saturating_sub(at.value.value() as i64);
    let Some(d) = day_of(ago) else {
        bad_day(fcinfo, ago);
    };
    let n = f64::from_bits(rows.value.value() as u64);
    let c = if converted.isnull {
        0.0
    } else {
        f64::from_bits(converted.value.value() as u64)
    };
    State::reserve(st, fcinfo, d + 1);
    // SAFETY: st is this aggregate's, its array at least d + 1 long with
    // the first `len` entries written.
    unsafe {
        for i in (*st).len..=d {
            (*st).items.add(i).write([0.0, 0.0]);
        }
        (*st).len = (*st).len.max(d + 1);
        let slot = &mut *(*st).items.add(d);
        slot[0] += n;
        slot[1] += c;
    }
    pg_sys::Datum::from(st)
}

/// The final function: `(internal) RETURNS float8[]`, strict: `[rows_24h,
/// converted_24h, rows_baseline, converted_baseline, rows_baseline_sq,
/// rate_mean, rate_sd, decline_days]`, NULL where [`SaturationDays`] has
/// none.
///
/// # Safety
/// Called by PostgreSQL with the declared argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_saturation_days_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    saturation_final(fcinfo)
}

#[pg_guard]
extern "C-unwind" fn saturation_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let st = final_state::<[f64; 2]>(fcinfo, SATURATION);
    let s = SaturationDays::of(State::items(st));
    let out: Vec<Option<f64>> = vec![
        Some(s.rows_24h),
        Some(s.converted_24h),
        Some(s.rows_baseline),
        Some(s.converted_baseline),
        Some(s.rows_baseline_sq),
        s.rate_mean,
        s.rate_sd,
        Some(f64::from(s.decline_days)),
    ];
    out.into_datum().expect("an array is not NULL")
}

/// `vigil._drop_buckets`' transition function: `(internal, timestamptz,
/// float8, float8, float8, int) RETURNS internal`, not strict. A row with
/// a NULL time, NULL rows or NULL merge adds nothing. Rows are kept as they
/// come; the final function sorts and merges them.
///
/// # Safety
/// Called by PostgreSQL with the declared arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_drop_buckets_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(6) };
    let (state, at, rows, a, b, merge) = (args[0], args[1], args[2], args[3], args[4], args[5]);
    let st = State::<BucketRow>::of(fcinfo, state, DROP);
    fc.isnull = false;
    if at.isnull || rows.isnull || merge.isnull {
        return pg_sys::Datum::from(st);
    }
    let merge = merge.value.value() as i32;
    // SAFETY: st is this aggregate's; `tag` is -1 until the first row.
    unsafe {
        if (*st).tag != merge {
            if (*st).tag != -1 || BucketMerge::from_code(merge).is_none() {
                bad_merge(fcinfo, merge);
            }
            (*st).tag = merge;
        }
    }
    let float =
        |d: pg_sys::NullableDatum| (!d.isnull).then(|| f64::from_bits(d.value.value() as u64));
    let row = BucketRow {
        at: at.value.value() as i64,
        rows: f64::from_bits(rows.value.value() as u64),
        a: float(a),
        b: float(b),
    };
    // SAFETY: as in the saturation aggregate.
    unsafe {
        State::reserve(st, fcinfo, (*st).len + 1);
        (*st).items.add((*st).len).write(row);
        (*st).len += 1;
    }
    pg_sys::Datum::from(st)
}

/// `vigil._drop_buckets`' final function: `(internal) RETURNS float8[]`,
/// strict: `{latest, total, samples}`, NULL without samples.
///
/// # Safety
/// Called by PostgreSQL with the declared argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_drop_buckets_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    drop_final(fcinfo)
}

#[pg_guard]
extern "C-unwind" fn drop_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let st = final_state::<BucketRow>(fcinfo, DROP);
    // SAFETY: st is this aggregate's.
    let merge = BucketMerge::from_code(unsafe { (*st).tag });
    // Sorting in place is safe to repeat: a window aggregate may call the
    // final function again on the same state, and the order of the rows
    // is no part of it.
    samples_datum(
        fcinfo,
        merge.and_then(|m| drop_samples(State::items(st), m)),
    )
}

/// The drop aggregates' result: `{latest, total, samples}`, NULL for none.
fn samples_datum(
    fcinfo: pg_sys::FunctionCallInfo,
    samples: Option<(f64, f64, u64)>,
) -> pg_sys::Datum {
    match samples {
        None => {
            // SAFETY: PostgreSQL's fcinfo for this call.
            unsafe { (*fcinfo).isnull = true };
            pg_sys::Datum::from(0)
        }
        Some((latest, total, n)) => vec![latest, total, n as f64]
            .into_datum()
            .expect("an array is not NULL"),
    }
}

/// `vigil._drop_latest`'s state: one [`LatestSum`], fixed size, in the
/// aggregate's memory context.
#[repr(C)]
struct Latest {
    magic: u64,
    sum: LatestSum,
}

/// Serialized: magic (8), at (8), latest (8), total (8), n (8).
const LATEST_BYTES: usize = 40;

impl Latest {
    /// The state argument, or a new one for NULL; raises on a state
    /// another function made.
    #[inline]
    fn of(fcinfo: pg_sys::FunctionCallInfo, arg: pg_sys::NullableDatum) -> *mut Latest {
        if arg.isnull {
            return first_latest(fcinfo);
        }
        let st = arg.value.cast_mut_ptr::<Latest>();
        // SAFETY: a non-NULL internal datum is a pointer to a palloc'd
        // block of at least 8 bytes.
        if unsafe { (*st).magic } != LATEST {
            not_our_state(fcinfo);
        }
        st
    }
}

#[pg_guard]
extern "C-unwind" fn first_latest(fcinfo: pg_sys::FunctionCallInfo) -> *mut Latest {
    let ctx = agg_context(fcinfo);
    // SAFETY: a MAXALIGNed allocation in the aggregate's context, written
    // whole before use.
    unsafe {
        let st = pg_sys::MemoryContextAlloc(ctx, std::mem::size_of::<Latest>()).cast::<Latest>();
        st.write(Latest {
            magic: LATEST,
            sum: LatestSum::default(),
        });
        st
    }
}

/// `vigil._drop_latest`'s transition function: `(internal, timestamptz,
/// float8) RETURNS internal`, not strict: a row with a NULL time or value
/// adds nothing (the SQL it replaces read `v IS NOT NULL` rows).
///
/// # Safety
/// Called by PostgreSQL with the declared arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_drop_latest_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(3) };
    let st = Latest::of(fcinfo, args[0]);
    fc.isnull = false;
    let (at, v) = (args[1], args[2]);
    if !at.isnull && !v.isnull {
        // SAFETY: st is this aggregate's.
        unsafe {
            (*st).sum.add(
                at.value.value() as i64,
                f64::from_bits(v.value.value() as u64),
            )
        };
    }
    pg_sys::Datum::from(st)
}

/// `vigil._drop_latest`'s final function: `(internal) RETURNS float8[]`,
/// strict: `{latest, total, samples}`, NULL without rows.
///
/// # Safety
/// Called by PostgreSQL with the declared argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_drop_latest_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    latest_final(fcinfo)
}

#[pg_guard]
extern "C-unwind" fn latest_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a strict function's one argument is not NULL.
    let arg = unsafe { (*fcinfo).args.as_slice(1)[0] };
    let st = Latest::of(fcinfo, arg);
    agg_context(fcinfo);
    // SAFETY: st is this aggregate's.
    samples_datum(fcinfo, unsafe { (*st).sum }.samples())
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_latest_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    agg_context(fcinfo);
    // SAFETY: PostgreSQL's arguments for this call.
    let args = unsafe { (*fcinfo).args.as_slice(2) };
    if args[1].isnull {
        return ret(fcinfo, args[0]);
    }
    let from = Latest::of(fcinfo, args[1]);
    let into = Latest::of(fcinfo, args[0]);
    // SAFETY: both are this aggregate's states (a new `into` for NULL).
    unsafe {
        let other = (*from).sum;
        (*into).sum.merge(&other);
    }
    pg_sys::Datum::from(into)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_latest_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: a strict function's one argument is not NULL.
    let arg = unsafe { (*fcinfo).args.as_slice(1)[0] };
    let st = Latest::of(fcinfo, arg);
    // SAFETY: st is this aggregate's.
    let s = unsafe { (*st).sum };
    let mut out = Vec::with_capacity(LATEST_BYTES);
    out.extend_from_slice(&LATEST.to_le_bytes());
    out.extend_from_slice(&s.at.to_le_bytes());
    out.extend_from_slice(&s.latest.to_le_bytes());
    out.extend_from_slice(&s.total.to_le_bytes());
    out.extend_from_slice(&s.n.to_le_bytes());
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&out).into_pg())
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_drop_latest_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: a strict function's first argument, a bytea, is not NULL.
    let b = unsafe {
        let arg = (*fcinfo).args.as_slice(2)[0].value;
        let ptr = pg_sys::pg_detoast_datum_packed(arg.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(ptr)
    };
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b.len() != LATEST_BYTES || u64_at(0) != LATEST {
        not_our_state(fcinfo);
    }
    let st = first_latest(fcinfo);
    // SAFETY: st is new.
    unsafe {
        (*st).sum = LatestSum {
            at: u64_at(8) as i64,
            latest: f64_at(b, 16),
            total: f64_at(b, 24),
            n: u64_at(32),
        };
    }
    pg_sys::Datum::from(st)
}

/// A strict final function's state, checked.
fn final_state<T: Copy>(fcinfo: pg_sys::FunctionCallInfo, magic: u64) -> *mut State<T> {
    // SAFETY: a strict function's one argument is not NULL.
    let arg = unsafe { (*fcinfo).args.as_slice(1)[0] };
    let st = State::<T>::of(fcinfo, arg, magic);
    // Only called by an aggregate (agg_context raises otherwise).
    agg_context(fcinfo);
    st
}

#[pg_guard]
extern "C-unwind" fn first_state(
    fcinfo: pg_sys::FunctionCallInfo,
    magic: u64,
    item: usize,
) -> *mut Header {
    let ctx = agg_context(fcinfo);
    // SAFETY: allocations in the aggregate's context, MAXALIGNed (items
    // are f64-aligned); every field is written before use.
    unsafe {
        let st = pg_sys::MemoryContextAlloc(ctx, std::mem::size_of::<Header>()).cast::<Header>();
        let items = pg_sys::MemoryContextAlloc(ctx, FIRST_CAPACITY * item).cast::<u8>();
        st.write(State {
            magic,
            len: 0,
            cap: FIRST_CAPACITY,
            items,
            tag: -1,
        });
        st
    }
}

/// Grows the array to hold at least `need` items of `item` bytes, doubling
/// (`repalloc` keeps it in the aggregate's context).
#[pg_guard]
extern "C-unwind" fn grow(
    _fcinfo: pg_sys::FunctionCallInfo,
    st: *mut Header,
    need: usize,
    item: usize,
) {
    let cap = need.next_power_of_two();
    let Some(bytes) = cap.checked_mul(item).filter(|b| *b <= MAX_ALLOC) else {
        raise(VigilError::invalid(
            "too many rows for one group of a pg_vigil monitor aggregate",
        ));
    };
    // SAFETY: st is ours; items was allocated by MemoryContextAlloc.
    unsafe {
        (*st).items = pg_sys::repalloc((*st).items.cast(), bytes).cast();
        (*st).cap = cap;
    }
}

/// The day number of a row `ago` microseconds before now (`floor`, as
/// the query computed it), when it is one the aggregate takes.
fn day_of(ago: i64) -> Option<usize> {
    let d = ago.div_euclid(USECS_PER_DAY);
    (0..=i64::from(LAST_DAY)).contains(&d).then_some(d as usize)
}

const USECS_PER_DAY: i64 = 86_400_000_000;

/// PostgreSQL's MaxAllocSize (1 GB - 1), which palloc refuses above.
const MAX_ALLOC: usize = 0x3fff_ffff;

#[pg_guard]
extern "C-unwind" fn bad_day(_fcinfo: pg_sys::FunctionCallInfo, ago: i64) -> ! {
    raise(VigilError::invalid(format!(
        "at must be between now and {LAST_DAY} days before it, got {} days before",
        ago.div_euclid(USECS_PER_DAY)
    )));
}

#[pg_guard]
extern "C-unwind" fn bad_merge(_fcinfo: pg_sys::FunctionCallInfo, merge: i32) -> ! {
    raise(VigilError::invalid(format!(
        "merge must be one of 0 to 4 and the same on every row, got {merge}"
    )));
}

#[pg_guard]
extern "C-unwind" fn not_our_state(_fcinfo: pg_sys::FunctionCallInfo) -> ! {
    raise(VigilError::invalid(
        "a pg_vigil monitor aggregate was passed a state its transition function did not make",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fall_in_whole_days_back_from_now() {
        assert_eq!(day_of(0), Some(0));
        assert_eq!(day_of(USECS_PER_DAY - 1), Some(0));
        assert_eq!(day_of(USECS_PER_DAY), Some(1));
        assert_eq!(day_of(30 * USECS_PER_DAY + 5), Some(30));
        assert_eq!(day_of(367 * USECS_PER_DAY - 1), Some(366));
        assert_eq!(day_of(367 * USECS_PER_DAY), None);
        // after now, and the infinities
        assert_eq!(day_of(-1), None);
        assert_eq!(day_of(i64::MAX), None);
        assert_eq!(day_of(i64::MIN), None);
    }

    #[test]
    fn items_round_trip_through_their_serialized_bytes() {
        let rows = [
            BucketRow {
                at: -5,
                rows: 2.0,
                a: Some(1.5),
                b: None,
            },
            BucketRow {
                at: i64::MAX,
                rows: -1.0,
                a: None,
                b: Some(f64::NAN),
            },
        ];
        for r in rows {
            let mut out = Vec::new();
            r.put(&mut out);
            assert_eq!(out.len(), BucketRow::BYTES);
            let back = BucketRow::get(&out);
            assert_eq!((back.at, back.rows, back.a), (r.at, r.rows, r.a));
            assert_eq!(back.b.map(f64::is_nan), r.b.map(f64::is_nan));
        }
        let mut out = Vec::new();
        [1.0, -2.5].put(&mut out);
        assert_eq!(out.len(), <[f64; 2]>::BYTES);
        assert_eq!(<[f64; 2]>::get(&out), [1.0, -2.5]);
    }

    #[test]
    fn states_share_one_header_layout() {
        // `first_state` makes a `State<u8>`; the aggregates read it as
        // their own `State<T>`: the header must not depend on T.
        assert_eq!(
            std::mem::size_of::<State<u8>>(),
            std::mem::size_of::<State<BucketRow>>()
        );
        assert_eq!(std::mem::align_of::<BucketRow>(), 8);
        assert_eq!(std::mem::size_of::<BucketRow>() % 8, 0);
    }
}
