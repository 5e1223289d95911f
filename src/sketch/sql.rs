//! SQL surface of the quantile sketch: type `vigil.sketch`, the
//! `percentile_agg`/`rollup` aggregates (parallel safe), accessors, and value
//! removal for rollups.

use super::Sketch;
use crate::error::VigilError;
use crate::sqlglue::{raise, sql_varlena, OrRaise};
use pgrx::datum::Internal;
use pgrx::prelude::*;
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

/// An arena in `ctx` for a sketch's bucket counts (aggregate states:
/// `state.rs`), so hash aggregation counts them against work_mem; freed
/// with the context.
pub(super) fn arena(ctx: pg_sys::MemoryContext) -> super::Arena {
    unsafe fn alloc(context: usize, bytes: usize) -> *mut u8 {
        // SAFETY: `context` is the live context the sketch is moved into.
        unsafe { pg_sys::MemoryContextAlloc(context as pg_sys::MemoryContext, bytes) as *mut u8 }
    }
    unsafe fn free(chunk: *mut u8) {
        // SAFETY: a chunk `alloc` returned.
        unsafe { pg_sys::pfree(chunk as *mut std::ffi::c_void) }
    }
    super::Arena {
        context: ctx as usize,
        alloc,
        free,
    }
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
