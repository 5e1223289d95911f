//! `vigil.sketch_state`: the transition state of `vigil.percentile_agg` and
//! `vigil.rollup(sketch)` as a concrete SQL type instead of `internal`, so
//! that Citus aggregates them partially on each worker (it ships partial
//! states through the state type's text output and input; an `internal`
//! state makes it pull every row to the coordinator instead).
//!
//! A sketch grows with the spread of its values, so unlike
//! `vigil.stats_state` it cannot be a fixed-size datum updated in place.
//! Inside an aggregate the state is a PostgreSQL *expanded object* (the
//! mechanism arrays use, `src/include/utils/expandeddatum.h`): a read-write
//! pointer to the live [`Sketch`] in its own memory context, a child of the
//! aggregate's, which nodeAgg keeps without copying. Whenever PostgreSQL
//! needs the value as bytes (a parallel worker's partial state crossing to
//! the leader, a tuple, Citus's output function) it flattens it through
//! [`flat_size`] and [`flatten_into`]; the flat form is exactly a
//! `vigil.sketch`'s bytes. The per-row cost is the same as the `internal`
//! state's: two byte compares and two loads before the sketch is reached.

use super::sql::arena;
use super::{Sketch, DEFAULT_RELATIVE_ERROR};
use crate::error::VigilError;
use crate::sqlglue::{agg_context, pg_finfo_v1, raise, OrRaise};
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::ffi::CStr;

/// The live state: the sketch, and its bytes between PostgreSQL asking for
/// the flat size and flattening. PostgreSQL calls the two back to back
/// (forming a tuple, copying a datum), so the bytes cannot go stale: the
/// size call always encodes afresh, the flatten call takes them.
struct Live {
    sketch: Sketch,
    flat: Option<Vec<u8>>,
}

/// The expanded object: PostgreSQL's header first, then the live state
/// (dropped by a callback when the object's context is deleted).
#[repr(C)]
struct Expanded {
    header: pg_sys::ExpandedObjectHeader,
    live: *mut Live,
}

static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
    get_flat_size: Some(flat_size),
    flatten_into: Some(flatten_into),
};

/// `EOM_get_flat_size_method`: the varlena size of the flat form.
#[pg_guard]
unsafe extern "C-unwind" fn flat_size(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    // SAFETY: PostgreSQL calls this only for objects made by `expand`.
    let live = unsafe { &mut *(*eoh.cast::<Expanded>()).live };
    let bytes = live.flat.insert(live.sketch.to_bytes());
    pg_sys::VARHDRSZ + bytes.len()
}

/// `EOM_flatten_into_method`: writes the flat form (a varlena with the
/// sketch's bytes) into `allocated_size` bytes at `result`.
#[pg_guard]
unsafe extern "C-unwind" fn flatten_into(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated_size: pg_sys::Size,
) {
    // SAFETY: as in `flat_size`; `result` has the `allocated_size` bytes
    // that `flat_size` asked for.
    let live = unsafe { &mut *(*eoh.cast::<Expanded>()).live };
    let bytes = live.flat.take().unwrap_or_else(|| live.sketch.to_bytes());
    if bytes.len() + pg_sys::VARHDRSZ != allocated_size {
        raise(VigilError::invalid(
            "sketch_state changed between sizing and flattening",
        ));
    }
    unsafe {
        pgrx::varlena::set_varsize_4b(result.cast(), allocated_size as i32);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            result.cast::<u8>().add(pg_sys::VARHDRSZ),
            bytes.len(),
        );
    }
}

/// Makes `sketch` an expanded object in `ctx` and returns its read-write
/// datum.
fn expand(ctx: pg_sys::MemoryContext, sketch: Sketch) -> pg_sys::Datum {
    // SAFETY: `ctx` is live (see `states_context`); the object and the
    // state live in it and go with it (the state's drop runs first, as a
    // reset callback, and frees the bucket chunks it holds there).
    unsafe {
        let mut sketch = sketch;
        sketch.adopt(arena(ctx));
        let live = Live { sketch, flat: None };
        let live = PgMemoryContexts::For(ctx).leak_and_drop_on_delete(live);
        let eoh =
            pg_sys::MemoryContextAlloc(ctx, std::mem::size_of::<Expanded>()).cast::<Expanded>();
        pg_sys::EOH_init_header(std::ptr::addr_of_mut!((*eoh).header), &METHODS, ctx);
        std::ptr::addr_of_mut!((*eoh).live).write(live);
        pg_sys::Datum::from((*eoh).header.eoh_rw_ptr.as_mut_ptr())
    }
}

/// The name of the context sketch states live in; found by this pointer.
static STATES: &std::ffi::CStr = c"vigil sketch_state";

/// The context the sketch states of an aggregate context live in: one
/// child of it for all groups (and all sketch aggregates of the node, and
/// Citus's per-group boxes), found among its children, made on first use
/// and again after the aggregate's context was reset (rescans, hash
/// batches and window frame restarts delete its children). One context per
/// object made hash aggregation quadratic: PostgreSQL totals the memory of
/// every child of the aggregate's context at each new group (20 000 groups:
/// 1.8 s against 0.23 s). nodeAgg, WindowAgg and Citus never delete one of
/// our objects on its own (they would only for a transition value replaced
/// by another read-write object, and these functions return the object
/// they were given), so sharing the context is safe.
fn states_context(aggctx: pg_sys::MemoryContext) -> pg_sys::MemoryContext {
    // SAFETY: `aggctx` is the live aggregate context; its child list holds
    // live contexts only.
    unsafe {
        let mut child = (*aggctx).firstchild;
        while !child.is_null() {
            if std::ptr::eq((*child).name, STATES.as_ptr()) {
                return child;
            }
            child = (*child).nextchild;
        }
        pg_sys::AllocSetContextCreateInternal(
            aggctx,
            STATES.as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    }
}

/// The live state behind `datum` when it is one of our expanded objects
/// (`rw`: only through a read-write pointer, which its holder lets the
/// callee change in place).
#[inline]
fn live_of(datum: pg_sys::Datum, rw: bool) -> Option<*mut Live> {
    let p = datum.cast_mut_ptr::<u8>();
    // SAFETY: a non-NULL varlena datum has at least its first header byte;
    // an external (1-byte 0x01 header, little-endian; 0x80 big-endian) one
    // has its tag next and, when expanded, the object pointer after it.
    unsafe {
        let external = if cfg!(target_endian = "little") {
            *p == 0x01
        } else {
            *p == 0x80
        };
        if !external {
            return None;
        }
        let tag = u32::from(*p.add(1));
        let ok = if rw {
            tag == pg_sys::vartag_external::VARTAG_EXPANDED_RW
        } else {
            pgrx::varlena::vartag_is_expanded(tag)
        };
        if !ok {
            return None;
        }
        let eoh = std::ptr::read_unaligned(p.add(2).cast::<*mut pg_sys::ExpandedObjectHeader>());
        if !std::ptr::eq((*eoh).eoh_methods, &METHODS) {
            return None;
        }
        Some((*eoh.cast::<Expanded>()).live)
    }
}

/// The sketch a non-NULL datum holds (expanded or flat, any varlena form),
/// passed to `f` without copying an expanded one.
fn with_sketch<T>(datum: pg_sys::Datum, f: impl FnOnce(&Sketch) -> T) -> T {
    if let Some(live) = live_of(datum, false) {
        // SAFETY: our object, alive while its datum is.
        return f(unsafe { &(*live).sketch });
    }
    // SAFETY: a flat vigil.sketch_state (the bytes of a vigil.sketch).
    let bytes = unsafe {
        let ptr = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(ptr)
    };
    f(&Sketch::from_bytes(bytes).or_raise())
}

/// The state argument as a sketch this call may change: the object itself
/// when the caller passed its own read-write pointer, else a new object
/// (from `first` for NULL, else a copy) in the aggregate's context.
fn own(
    fcinfo: pg_sys::FunctionCallInfo,
    state: pg_sys::NullableDatum,
    first: impl FnOnce() -> Sketch,
) -> (pg_sys::Datum, *mut Live) {
    if !state.isnull {
        if let Some(live) = live_of(state.value, true) {
            return (state.value, live);
        }
    }
    let sketch = if state.isnull {
        first()
    } else {
        with_sketch(state.value, Sketch::clone)
    };
    let aggctx = agg_context(fcinfo);
    // SAFETY: fcinfo's flinfo is PostgreSQL's for this call site; `Kept`
    // lives in its fn_mcxt, as long as the FmgrInfo.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let mut kept = (*flinfo).fn_extra.cast::<Kept>();
        if kept.is_null() {
            kept = pg_sys::MemoryContextAllocZero((*flinfo).fn_mcxt, std::mem::size_of::<Kept>())
                .cast();
            (*flinfo).fn_extra = kept.cast();
        }
        let datum = expand(states_context(aggctx), sketch);
        let live = live_of(datum, true).expect("just expanded");
        // The transition function's fast path (as `stats::state::remember`):
        // the call site keeps the object it made last, and its live state.
        (*kept).datum = datum.value();
        (*kept).live = live;
        (datum, live)
    }
}

/// What a call site keeps in `fn_extra`: the object it made last.
#[repr(C)]
struct Kept {
    datum: usize,
    live: *mut Live,
}

/// The kept object's state when `state` is it: the same address, and still
/// a read-write expanded pointer there (a flat varlena never starts with
/// the external marker), so memory reused since cannot pass. Only `own`
/// makes expanded objects, and it updates what is kept.
#[inline]
fn kept_live(fcinfo: pg_sys::FunctionCallInfo, state: pg_sys::NullableDatum) -> Option<*mut Live> {
    // SAFETY: fn_extra is NULL or a `Kept` that `own` wrote; a non-NULL
    // varlena datum has its first two bytes.
    unsafe {
        let kept = (*(*fcinfo).flinfo).fn_extra.cast::<Kept>();
        if state.isnull || kept.is_null() || (*kept).datum != state.value.value() {
            return None;
        }
        let p = state.value.cast_mut_ptr::<u8>();
        let marker = if cfg!(target_endian = "little") {
            0x01
        } else {
            0x80
        };
        (*p == marker && u32::from(*p.add(1)) == pg_sys::vartag_external::VARTAG_EXPANDED_RW)
            .then(|| (*kept).live)
    }
}

/// `vigil.percentile_agg`'s transition function (one- and two-argument
/// forms), against the raw fmgr ABI because it runs once per row; the
/// cold paths are guarded functions.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state, float8 [, float8])
/// RETURNS vigil.sketch_state`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_sketch_state_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let nargs = fc.nargs as usize;
    let args = unsafe { fc.args.as_slice(nargs) };
    let (state, value) = (args[0], args[1]);
    if value.isnull {
        // NULLs are skipped, like the built-in aggregates.
        fc.isnull = state.isnull;
        return state.value;
    }
    let alpha = match args.get(2) {
        None => DEFAULT_RELATIVE_ERROR,
        Some(arg) if arg.isnull => reject_null_relative_error(),
        Some(arg) => f64::from_bits(arg.value.value() as u64),
    };
    let x = f64::from_bits(value.value.value() as u64);
    let hot = kept_live(fcinfo, state)
        .or_else(|| {
            if state.isnull {
                None
            } else {
                live_of(state.value, true)
            }
        })
        .map(|live| (state.value, live));
    let (datum, live) = hot.unwrap_or_else(|| {
        let datum = own_guarded(fcinfo, state, alpha);
        (datum, live_of(datum, true).expect("own returns our object"))
    });
    let live = unsafe { &mut *live };
    if live.sketch.alpha() != alpha {
        reject_changed_relative_error(alpha);
    }
    if let Err(e) = live.sketch.add(x) {
        // Every value is counted or the query fails: never dropped.
        reject_value(Box::into_raw(Box::new(e)));
    }
    fc.isnull = false;
    datum
}

#[pg_guard]
extern "C-unwind" fn own_guarded(
    fcinfo: pg_sys::FunctionCallInfo,
    state: pg_sys::NullableDatum,
    alpha: f64,
) -> pg_sys::Datum {
    own(fcinfo, state, || Sketch::new(alpha).or_raise()).0
}

/// Raises the error `add` returned (a NaN or infinite value, or one that
/// would widen the sketch past its bucket limit at this relative_error).
#[pg_guard]
extern "C-unwind" fn reject_value(err: *mut VigilError) -> ! {
    // SAFETY: a Box leaked by the caller just above, taken back once.
    raise(*unsafe { Box::from_raw(err) })
}

#[pg_guard]
extern "C-unwind" fn reject_null_relative_error() -> ! {
    raise(VigilError::invalid("relative_error must not be NULL"))
}

#[pg_guard]
extern "C-unwind" fn reject_changed_relative_error(alpha: f64) -> ! {
    raise(VigilError::invalid(format!(
        "relative_error must be the same for every row of a group, got {alpha} after another value"
    )))
}

/// Merges `other` into the state argument.
fn merge_into(
    fcinfo: pg_sys::FunctionCallInfo,
    state: pg_sys::NullableDatum,
    other: &Sketch,
) -> pg_sys::Datum {
    let (datum, live) = own(fcinfo, state, || other.clone());
    // SAFETY: the object `own` returned, ours to change.
    let live = unsafe { &mut *live };
    if !state.isnull {
        live.sketch.merge(other).or_raise();
    }
    datum
}

/// `vigil.rollup(sketch)`'s transition: merges a stored sketch (NULLs
/// skipped) into the state.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state, vigil.sketch) RETURNS
/// vigil.sketch_state`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_rollup_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        crate::sqlglue::rollup_transition(fcinfo, |state, sketch: Sketch| {
            merge_into(fcinfo, state, &sketch)
        })
    }
}

/// The combine function (parallel workers, Citus's coordinator), STRICT:
/// merges the second state into the first.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state, vigil.sketch_state)
/// RETURNS vigil.sketch_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(2) };
    let (state, other) = (args[0], args[1].value);
    with_sketch(other, |o| merge_into(fcinfo, state, o))
}

/// The final function: the state as a `vigil.sketch`.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state) RETURNS vigil.sketch`,
/// STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let bytes = with_sketch(args[0].value, Sketch::to_bytes);
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&bytes).into_pg())
}

/// Type input: the text form of a `vigil.sketch` (lossless), checked.
///
/// # Safety
/// Called by PostgreSQL as `(cstring) RETURNS vigil.sketch_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_in(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let text = unsafe { CStr::from_ptr(args[0].value.cast_mut_ptr()) }
        .to_str()
        .unwrap_or_else(|_| raise(VigilError::invalid("sketch_state text must be UTF-8")));
    let bytes = Sketch::parse(text).or_raise().to_bytes();
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&bytes).into_pg())
}

/// Type output: the text form `vigil.sketch` prints.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state) RETURNS cstring`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_out(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let text = with_sketch(args[0].value, Sketch::to_string);
    pg_sys::Datum::from(crate::sqlglue::palloc_cstr(&text).as_ptr())
}

/// Binary output: a `vigil.sketch`'s bytes.
///
/// # Safety
/// Called by PostgreSQL as `(vigil.sketch_state) RETURNS bytea`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_send(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // The flat form is already the bytes `vigil_sketch_state_final` returns.
    unsafe { vigil_sketch_state_final(fcinfo) }
}

/// Binary input: what `send` wrote, checked like a stored sketch.
///
/// # Safety
/// Called by PostgreSQL as `(internal) RETURNS vigil.sketch_state`, STRICT.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_sketch_state_recv(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let buf = unsafe { pgrx::datum::Internal::from_datum(args[0].value, false) }.expect("not NULL");
    let bytes = Sketch::from_bytes(crate::sqlglue::recv_rest(buf))
        .or_raise()
        .to_bytes();
    pg_sys::Datum::from(pgrx::varlena::rust_byte_slice_to_bytea(&bytes).into_pg())
}

pg_finfo_v1!(
    pg_finfo_vigil_sketch_state_trans,
    pg_finfo_vigil_sketch_state_rollup_trans,
    pg_finfo_vigil_sketch_state_combine,
    pg_finfo_vigil_sketch_state_final,
    pg_finfo_vigil_sketch_state_in,
    pg_finfo_vigil_sketch_state_out,
    pg_finfo_vigil_sketch_state_send,
    pg_finfo_vigil_sketch_state_recv,
);
