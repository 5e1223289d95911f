//! `vigil.stats_state`: the transition state of `vigil.stats_agg` and
//! `vigil.rollup(statsagg)` as a concrete SQL type instead of `internal`.
//!
//! Citus pushes an extension aggregate down to its workers (partial
//! aggregation per shard, `worker_partial_agg` / `coord_combine_agg`) only
//! when its state type is not a pseudo-type: it ships the partial states
//! between nodes through the type's text output and input. So the state is
//! a fixed-size varlena (56 bytes, double-aligned) that the transition and
//! combine functions update in place when PostgreSQL (or Citus, which
//! passes its own aggregate context on) calls them as an aggregate — as
//! fast as the `internal` state it replaces, without serialization for
//! parallel workers (the bytes are the state).
//!
//! Text form: `stats_state:` and the hex of the version byte and
//! [`Accumulator::to_bytes`] — lossless, so a state that crossed nodes is
//! the state that was sent.

use super::accum::Accumulator;
use super::datum::StatsAgg;
use crate::error::VigilError;
use crate::sqlglue::{agg_context, pg_finfo_v1, raise, OrRaise};
use pgrx::prelude::*;
use std::ffi::CStr;

const VERSION: u8 = 1;
const PREFIX: &str = "stats_state:";

/// The datum's layout. `Accumulator` is `repr(C)` (five f64 and a bool).
#[repr(C)]
struct StateDatum {
    /// varlena 4-byte header, `SET_VARSIZE` of the whole datum.
    header: u32,
    version: u8,
    _pad: [u8; 3],
    acc: Accumulator,
}

const SIZE: usize = std::mem::size_of::<StateDatum>();
const _: () = assert!(SIZE == 56);

/// The header `SET_VARSIZE` writes for `SIZE` bytes (4-byte form, see
/// PostgreSQL's `SET_VARSIZE_4B`): a constant, because the transition
/// function compares it on every row (a unit test checks it against
/// pgrx's `set_varsize_4b`).
#[cfg(target_endian = "little")]
const HEADER: u32 = (SIZE as u32) << 2;
#[cfg(target_endian = "big")]
const HEADER: u32 = SIZE as u32 & 0x3FFF_FFFF;

/// A state allocated in `ctx`, holding `acc`.
fn new_in(ctx: pg_sys::MemoryContext, acc: Accumulator) -> *mut StateDatum {
    // SAFETY: MemoryContextAllocZero returns SIZE bytes MAXALIGNed (8), the
    // alignment of StateDatum; every field is written before use.
    unsafe {
        let ptr = pg_sys::MemoryContextAllocZero(ctx, SIZE).cast::<StateDatum>();
        (*ptr).header = HEADER;
        (*ptr).version = VERSION;
        std::ptr::addr_of_mut!((*ptr).acc).write(acc);
        ptr
    }
}

/// The state a datum holds, read from its bytes (any varlena form: a state
/// stored in a table, or sent by a user, may be packed or toasted).
fn read(datum: pg_sys::Datum) -> Accumulator {
    // SAFETY: a non-NULL datum of type vigil.stats_state.
    let bytes = unsafe {
        let ptr = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(ptr)
    };
    from_body(bytes).or_raise()
}

/// The body after the varlena header: version, padding, accumulator.
fn from_body(body: &[u8]) -> crate::error::Result<Accumulator> {
    if body.len() != SIZE - 4 || body[0] != VERSION {
        return Err(VigilError::invalid(format!(
            "stats_state must be {} bytes of version {VERSION}, got {} bytes{}",
            SIZE - 4,
            body.len(),
            body.first()
                .map_or(String::new(), |v| format!(" of version {v}"))
        )));
    }
    // The accumulator's serial form is its five fields and the flag, in
    // the order of the struct.
    Accumulator::from_bytes(&body[4..4 + 41])
}

/// Whether the function was called by an aggregate (or window aggregate):
/// only then may it change its state argument in place. Read from the
/// node tag, as `AggCheckCallContext` does, without a call per row.
fn in_aggregate(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: fcinfo is PostgreSQL's; context is NULL or a Node.
    unsafe {
        let context = (*fcinfo).context;
        !context.is_null()
            && (pgrx::is_a(context, pg_sys::NodeTag::T_AggState)
                || pgrx::is_a(context, pg_sys::NodeTag::T_WindowAggState))
    }
}

/// The state argument as one this call may update in place: the datum
/// itself when it is an aggregate's own, unpacked state (every call but a
/// first), else a copy in the aggregate's memory context.
fn own_state(fcinfo: pg_sys::FunctionCallInfo, state: pg_sys::NullableDatum) -> *mut StateDatum {
    if state.isnull {
        let ptr = new_in(agg_context(fcinfo), Accumulator::default());
        remember(fcinfo, ptr.cast());
        return ptr;
    }
    let ptr = state.value.cast_mut_ptr::<StateDatum>();
    // SAFETY: a non-NULL varlena datum; its first 4 bytes are its header
    // (a 1-byte header is odd, so never equal to `HEADER`).
    if in_aggregate(fcinfo)
        && unsafe { std::ptr::read_unaligned(ptr.cast::<u32>()) } == HEADER
        && unsafe { (*ptr).version } == VERSION
    {
        return ptr;
    }
    cold_copy(fcinfo, state.value)
}

/// Keeps `state`, just made in the aggregate's context, in the call
/// site's `fn_extra`: the transition function's fast path. nodeAgg (and
/// Citus's worker_partial_agg) hand a call site only the transition values
/// of its own aggregate, so the next call that passes this pointer passes
/// this state — no header or caller check needed for it. With many groups
/// only the newest has the fast path; the others take the checked one.
fn remember(fcinfo: pg_sys::FunctionCallInfo, state: *mut std::ffi::c_void) {
    // SAFETY: fcinfo and its flinfo are PostgreSQL's for this call; an
    // aggregate's support functions get an flinfo of their own.
    unsafe { (*(*fcinfo).flinfo).fn_extra = state };
}

/// The fast path's test: `state` is the one `remember` kept.
#[inline]
pub(crate) fn remembered(fcinfo: pg_sys::FunctionCallInfo, state: pg_sys::NullableDatum) -> bool {
    // SAFETY: as in `remember`.
    !state.isnull && unsafe { (*(*fcinfo).flinfo).fn_extra } == state.value.cast_mut_ptr()
}

#[pg_guard]
extern "C-unwind" fn cold_copy(
    fcinfo: pg_sys::FunctionCallInfo,
    datum: pg_sys::Datum,
) -> *mut StateDatum {
    let ctx = agg_context(fcinfo);
    let ptr = new_in(ctx, read(datum));
    remember(fcinfo, ptr.cast());
    ptr
}

/// `vigil.stats_agg`'s transition function, written against the raw fmgr
/// ABI: it runs once per input row, and the generic pgrx wrapper cost about
/// four times the arithmetic. Declared in `sql/stats.sql`.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state, float8) RETURNS
/// vigil.stats_state`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_stats_state_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(2) };
    let (state, value) = (args[0], args[1]);
    if value.isnull {
        // NULL inputs are skipped, like avg() and stddev_samp().
        fc.isnull = state.isnull;
        return state.value;
    }
    let x = f64::from_bits(value.value.value() as u64);
    let ptr = if remembered(fcinfo, state) {
        state.value.cast_mut_ptr::<StateDatum>()
    } else if state.isnull
        || !in_aggregate(fcinfo)
        || unsafe { std::ptr::read_unaligned(state.value.cast_mut_ptr::<u32>()) } != HEADER
    {
        own_state_guarded(fcinfo, state)
    } else {
        state.value.cast_mut_ptr::<StateDatum>()
    };
    if unsafe { (*ptr).acc.accum(x) }.is_err() {
        reject_value(x);
    }
    fc.isnull = false;
    pg_sys::Datum::from(ptr)
}

/// `own_state` behind a guard: its first-call allocation and its copy may
/// raise (not called by an aggregate, a malformed state).
#[pg_guard]
extern "C-unwind" fn own_state_guarded(
    fcinfo: pg_sys::FunctionCallInfo,
    state: pg_sys::NullableDatum,
) -> *mut StateDatum {
    own_state(fcinfo, state)
}

/// The cold path: raises the ERROR (the guard turns it into a PostgreSQL
/// error before it can cross the raw frame above).
#[pg_guard]
extern "C-unwind" fn reject_value(x: f64) {
    Accumulator::default().accum(x).or_raise();
}

/// `vigil.rollup(statsagg)`'s transition: merges a stored summary (NULLs
/// skipped) into the state, in place.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state, vigil.statsagg) RETURNS
/// vigil.stats_state`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_rollup_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        crate::sqlglue::rollup_transition(fcinfo, |state, summary: StatsAgg| {
            let ptr = own_state(fcinfo, state);
            (*ptr).acc.combine(&Accumulator::from_stats(&summary));
            pg_sys::Datum::from(ptr)
        })
    }
}

/// The combine function (parallel workers, Citus's coordinator): merges the
/// second state into the first, in place. STRICT: PostgreSQL copies the
/// first non-NULL state itself.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state, vigil.stats_state) RETURNS
/// vigil.stats_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(2) };
    let other = read(args[1].value);
    let ptr = own_state(fcinfo, args[0]);
    unsafe { (*ptr).acc.combine(&other) };
    pg_sys::Datum::from(ptr)
}

/// The final function: the summary of the state.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state) RETURNS vigil.statsagg`,
/// STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(1) };
    let summary = read(args[0].value).to_stats().or_raise();
    match pgrx::datum::IntoDatum::into_datum(summary) {
        Some(d) => d,
        None => {
            fc.isnull = true;
            pg_sys::Datum::from(0)
        }
    }
}

/// The text form of a state's bytes.
fn to_text(acc: &Accumulator) -> String {
    let mut text = String::with_capacity(PREFIX.len() + 2 * 42);
    text.push_str(PREFIX);
    for b in std::iter::once(VERSION).chain(acc.to_bytes()) {
        text.push_str(&format!("{b:02x}"));
    }
    text
}

fn from_text(text: &str) -> crate::error::Result<Accumulator> {
    let bad = || {
        VigilError::invalid(format!(
            "stats_state text must be \"{PREFIX}\" and 84 hex digits, got \"{}\"",
            text.chars().take(120).collect::<String>()
        ))
    };
    let hex = text.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
    if hex.len() != 84 || !hex.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..42)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    if bytes[0] != VERSION {
        return Err(VigilError::invalid(format!(
            "stats_state version {} is not known (this pg_vigil writes {VERSION})",
            bytes[0]
        )));
    }
    Accumulator::from_bytes(&bytes[1..])
}

/// Type input (`vigil.stats_state`): the text form, checked.
///
/// # Safety
/// Called by PostgreSQL as `(cstring) RETURNS vigil.stats_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_in(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let text = unsafe { CStr::from_ptr(args[0].value.cast_mut_ptr()) }
        .to_str()
        .unwrap_or_else(|_| raise(VigilError::invalid("stats_state text must be UTF-8")));
    let acc = from_text(text).or_raise();
    // SAFETY: CurrentMemoryContext is the caller's.
    pg_sys::Datum::from(new_in(unsafe { pg_sys::CurrentMemoryContext }, acc))
}

/// Type output: the text form.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state) RETURNS cstring`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_out(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let text = to_text(&read(args[0].value));
    pg_sys::Datum::from(crate::sqlglue::palloc_cstr(&text).as_ptr())
}

/// Binary output: the version byte and the accumulator's bytes.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.stats_state) RETURNS bytea`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_send(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let mut bytes = vec![VERSION];
    bytes.extend(read(args[0].value).to_bytes());
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&bytes).into_pg())
}

/// Binary input: what `send` wrote, checked.
///
/// # Safety
/// Called by PostgreSQL as `(internal) RETURNS vigil.stats_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_stats_state_recv(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let buf = unsafe { pgrx::datum::Internal::from_datum(args[0].value, false) }.expect("not NULL");
    let bytes = crate::sqlglue::recv_rest(buf);
    let acc = match bytes.split_first() {
        Some((&VERSION, rest)) => Accumulator::from_bytes(rest).or_raise(),
        _ => raise(VigilError::invalid(format!(
            "stats_state binary data must start with version {VERSION}"
        ))),
    };
    pg_sys::Datum::from(new_in(unsafe { pg_sys::CurrentMemoryContext }, acc))
}

pg_finfo_v1!(
    pg_finfo_vigil_stats_state_trans,
    pg_finfo_vigil_stats_state_rollup_trans,
    pg_finfo_vigil_stats_state_combine,
    pg_finfo_vigil_stats_state_final,
    pg_finfo_vigil_stats_state_in,
    pg_finfo_vigil_stats_state_out,
    pg_finfo_vigil_stats_state_send,
    pg_finfo_vigil_stats_state_recv,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_no_values_could_produce_are_refused() {
        let body = |n: f64, sx: f64, sxx: f64, min: f64, max: f64| {
            let mut b = vec![VERSION, 0, 0, 0];
            for v in [n, sx, sxx, min, max] {
                b.extend(v.to_le_bytes());
            }
            b.push(1);
            b.extend([0u8; 7]);
            b
        };
        assert!(from_body(&body(2.0, 3.0, 0.5, 1.0, 2.0)).is_ok());
        for bad in [
            body(-1.0, 3.0, 0.5, 1.0, 2.0),
            body(0.5, 3.0, 0.5, 1.0, 2.0),
            body(f64::NAN, 3.0, 0.5, 1.0, 2.0),
            body(2.0, 3.0, -0.5, 1.0, 2.0),
            body(2.0, f64::NAN, 0.5, 1.0, 2.0),
            body(2.0, 3.0, 0.5, f64::NEG_INFINITY, 2.0),
            body(2.0, 3.0, 0.5, 2.0, 1.0),
        ] {
            assert!(from_body(&bad).is_err(), "{bad:?}");
        }
        // An empty state is the empty state, whatever else it says.
        assert_eq!(
            from_body(&body(0.0, 7.0, 9.0, 1.0, 0.0)).unwrap(),
            Accumulator::default()
        );
    }

    #[test]
    fn header_is_what_set_varsize_writes() {
        let mut word = [0u32; 2];
        // SAFETY: 8 writable, aligned bytes; set_varsize_4b writes the first 4.
        unsafe { pgrx::varlena::set_varsize_4b(word.as_mut_ptr().cast(), SIZE as i32) };
        assert_eq!(word[0], HEADER);
    }

    #[test]
    fn text_form_round_trips_and_refuses_garbage() {
        let mut acc = Accumulator::default();
        for x in [1.5, -2.25, 1e300, 3.0] {
            acc.accum(x).unwrap();
        }
        let text = to_text(&acc);
        assert!(text.starts_with("stats_state:01"), "{text}");
        assert_eq!(from_text(&text).unwrap(), acc);
        for bad in [
            "",
            "stats_state:",
            "stats_state:zz",
            &text[..text.len() - 2],
            &text.replacen("stats_state:01", "stats_state:02", 1),
            &format!("{text}00"),
        ] {
            assert!(from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn body_layout_is_the_serial_form() {
        let mut acc = Accumulator::default();
        acc.accum(4.0).unwrap();
        let mut body = vec![VERSION, 0, 0, 0];
        body.extend(acc.to_bytes());
        body.extend([0u8; 7]);
        assert_eq!(from_body(&body).unwrap(), acc);
        body[0] = 9;
        assert!(from_body(&body).is_err());
    }
}
