//! SQL surface of the quantile sketch: type `vigil.sketch`, the
//! `percentile_agg`/`rollup` aggregates (parallel safe), accessors, and value
//! removal for rollups.

use super::{Sketch, DEFAULT_RELATIVE_ERROR};
use crate::error::VigilError;
use crate::sqlglue::{agg_context, raise, sql_varlena, OrRaise};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::ffi::CStr;

sql_varlena!(Sketch, "vigil.sketch");

#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_in(input: &CStr) -> Sketch {
    let text = input
        .to_str()
        .unwrap_or_else(|_| raise(VigilError::invalid("sketch text must be UTF-8")));
    Sketch::parse(text).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_out(value: Sketch) -> &'static CStr {
    crate::sqlglue::palloc_cstr(&value.to_string())
}

/// Binary output (COPY BINARY, the binary protocol): the stored bytes.
#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_send(value: Sketch) -> Vec<u8> {
    value.to_bytes()
}

/// Binary input: the bytes `sketch_send` wrote, checked like stored ones.
#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_recv(buf: Internal) -> Sketch {
    Sketch::from_bytes(crate::sqlglue::recv_rest(buf)).or_raise()
}

/// Moves `sketch` and its bucket counts into `ctx` (so hash aggregation
/// counts them against work_mem); freed when the context is.
fn sketch_in_context(ctx: pg_sys::MemoryContext, mut sketch: Sketch) -> *mut Sketch {
    unsafe fn alloc(context: usize, bytes: usize) -> *mut u8 {
        // SAFETY: `context` is the live context the sketch is moved into.
        unsafe { pg_sys::MemoryContextAlloc(context as pg_sys::MemoryContext, bytes) as *mut u8 }
    }
    unsafe fn free(chunk: *mut u8) {
        // SAFETY: a chunk `alloc` returned.
        unsafe { pg_sys::pfree(chunk as *mut std::ffi::c_void) }
    }
    sketch.adopt(super::Arena {
        context: ctx as usize,
        alloc,
        free,
    });
    PgMemoryContexts::For(ctx).leak_and_drop_on_delete(sketch)
}

/// `vigil.percentile_agg`'s transition function, for both the one- and the
/// two-argument form, written against the raw fmgr ABI because it runs once
/// per row (see `vigil_stats_agg_trans`). Declared in `sql/sketch.sql`.
///
/// # Safety
/// Called by PostgreSQL as `(internal, float8 [, float8]) RETURNS internal`,
/// only from an aggregate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vigil_percentile_agg_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let nargs = fc.nargs as usize;
    let args = unsafe { fc.args.as_slice(nargs) };
    let (state, value) = (args[0], args[1]);
    if value.isnull {
        fc.isnull = state.isnull;
        return state.value;
    }
    let alpha = match args.get(2) {
        None => DEFAULT_RELATIVE_ERROR,
        Some(arg) if arg.isnull => reject_null_relative_error(),
        Some(arg) => f64::from_bits(arg.value.value() as u64),
    };
    let x = f64::from_bits(value.value.value() as u64);
    let sketch: *mut Sketch = if state.isnull {
        new_sketch(fcinfo, alpha)
    } else {
        state.value.cast_mut_ptr()
    };
    let sketch = unsafe { &mut *sketch };
    if sketch.alpha() != alpha {
        reject_changed_relative_error(alpha);
    }
    if let Err(e) = sketch.add(x) {
        // Every value is counted or the query fails: never dropped.
        reject_value(Box::into_raw(Box::new(e)));
    }
    fc.isnull = false;
    pg_sys::Datum::from(sketch as *mut Sketch)
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_vigil_percentile_agg_trans() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[pg_guard]
extern "C-unwind" fn new_sketch(fcinfo: pg_sys::FunctionCallInfo, alpha: f64) -> *mut Sketch {
    sketch_in_context(agg_context(fcinfo), Sketch::new(alpha).or_raise())
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

fn with_sketch(
    state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    first: impl FnOnce() -> Sketch,
    f: impl FnOnce(&mut Sketch),
) -> Internal {
    if state.initialized() {
        let mut state = state;
        f(unsafe { state.get_mut::<Sketch>() }.expect("initialized"));
        state
    } else {
        let ptr = sketch_in_context(agg_context(fcinfo), first());
        Internal::from(Some(pg_sys::Datum::from(ptr)))
    }
}

#[pg_extern(immutable, parallel_safe)]
fn sketch_rollup_trans(
    state: Internal,
    value: Option<Sketch>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    match value {
        None => state,
        Some(v) => with_sketch(state, fcinfo, || v.clone(), |s| s.merge(&v).or_raise()),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn sketch_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    match unsafe { b.get::<Sketch>() } {
        None => a,
        // Copy `b`: it may live in a shorter-lived context than `a` must.
        Some(other) => with_sketch(a, fcinfo, || other.clone(), |s| s.merge(other).or_raise()),
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_serial(state: Internal) -> Vec<u8> {
    unsafe { state.get::<Sketch>() }.expect("strict").to_bytes()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sketch_deserial(bytes: &[u8], _unused: Internal) -> Internal {
    let sketch = Sketch::from_bytes(bytes).or_raise();
    let ptr = sketch_in_context(unsafe { pg_sys::CurrentMemoryContext }, sketch);
    Internal::from(Some(pg_sys::Datum::from(ptr)))
}

#[pg_extern(immutable, parallel_safe)]
fn sketch_final(state: Internal) -> Option<Sketch> {
    unsafe { state.get::<Sketch>() }.cloned()
}

/// The value at quantile `q` (0–1): within the sketch's relative error of
/// the sorted value at 0-based rank floor(q·(n−1)). NULL for an empty sketch.
#[pg_extern(immutable, strict, parallel_safe)]
fn approx_percentile(sketch: Sketch, q: f64) -> Option<f64> {
    sketch.quantile(q).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn approx_median(sketch: Sketch) -> Option<f64> {
    sketch.quantile(0.5).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe, name = "num_vals")]
fn sketch_num_vals(sketch: Sketch) -> i64 {
    i64::try_from(sketch.count())
        .unwrap_or_else(|_| raise(VigilError::out_of_range("num_vals does not fit in bigint")))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn relative_error(sketch: Sketch) -> f64 {
    sketch.alpha()
}

#[pg_extern(immutable, strict, parallel_safe, name = "add_value")]
fn sketch_add_value(sketch: Sketch, value: f64) -> Sketch {
    let mut s = sketch;
    s.add(value).or_raise();
    s
}

/// A sketch of one value: what a rollup adds for a single-row INSERT.
#[pg_extern(immutable, strict, parallel_safe, name = "_sketch_of")]
fn sketch_of(value: f64, relative_error: f64) -> Sketch {
    let mut s = Sketch::new(relative_error).or_raise();
    s.add(value).or_raise();
    s
}

/// The sketch without one value that was added before.
#[pg_extern(immutable, strict, parallel_safe, name = "remove_value")]
fn sketch_remove_value(sketch: Sketch, value: f64) -> Sketch {
    let mut s = sketch;
    s.remove(value).or_raise();
    s
}

#[pg_extern(immutable, strict, parallel_safe, name = "merge")]
fn sketch_merge(a: Sketch, b: Sketch) -> Sketch {
    let mut s = a;
    s.merge(&b).or_raise();
    s
}

/// `a` without the values counted in `b` (the inverse of `merge`).
#[pg_extern(immutable, strict, parallel_safe, name = "subtract")]
fn sketch_subtract(a: Sketch, b: Sketch) -> Sketch {
    let mut s = a;
    s.subtract(&b).or_raise();
    s
}
