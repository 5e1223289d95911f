//! `vigil._saturation_days(now timestamptz, at timestamptz, rows float8,
//! converted float8)`: the saturation kind's per-entity aggregate. It sums
//! each entity's rows and conversions per day number (whole days from `at`
//! back from `now`: 0 is the last 24 hours) and returns [`SaturationDays`] as a float8
//! array, so the kind's query is one hashed aggregate over the rows read
//! (raw rows, or a rollup's summary rows) instead of a grouping per entity
//! and day followed by another per entity.
//!
//! Written against the raw fmgr ABI, like `vigil.stats_agg`'s transition
//! function: it runs once per row read (310 000 summary rows for 10 000
//! entities over a 30-day baseline). The state is `internal`: one small
//! header and a growable array of `[rows, conversions]` by day number, both
//! allocated in the aggregate's memory context (no Rust allocation, so
//! nothing outlives a reset of that context). Declared in
//! `sql/monitors.sql`.

use super::{SaturationDays, LAST_DAY};
use crate::error::VigilError;
use crate::sqlglue::{agg_context, pg_finfo_v1, raise};
use pgrx::prelude::*;

/// Marks a state this module made: an `internal` datum is only ever a
/// pointer, and a superuser's `CREATE AGGREGATE` could pair our final
/// function with another aggregate's transition function (PostgreSQL
/// refuses an `internal` state to anyone else: "aggregate transition data
/// type cannot be internal").
const MAGIC: u64 = 0x7669_6769_6c5f_6461; // "vigil_da"

/// Days allocated at first (a 30-day baseline reads 31).
const FIRST_CAPACITY: usize = 32;

#[repr(C)]
struct State {
    magic: u64,
    len: usize,
    cap: usize,
    days: *mut [f64; 2],
}

pg_finfo_v1!(
    pg_finfo_vigil_saturation_days_trans,
    pg_finfo_vigil_saturation_days_final
);

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
    let st = if state.isnull {
        first_state(fcinfo)
    } else {
        state.value.cast_mut_ptr::<State>()
    };
    if !state.isnull && unsafe { (*st).magic } != MAGIC {
        not_our_state(fcinfo);
    }
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
    // SAFETY: st is a State this module made (magic checked), its array
    // `cap` long with the first `len` entries written.
    unsafe {
        if d >= (*st).len {
            if d >= (*st).cap {
                grow(fcinfo, st, d + 1);
            }
            for i in (*st).len..=d {
                (*st).days.add(i).write([0.0, 0.0]);
            }
            (*st).len = d + 1;
        }
        let slot = &mut *(*st).days.add(d);
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
    final_guarded(fcinfo)
}

#[pg_guard]
extern "C-unwind" fn final_guarded(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a strict function's one argument is not NULL.
    let st = unsafe { (*fcinfo).args.as_slice(1)[0].value.cast_mut_ptr::<State>() };
    if unsafe { (*st).magic } != MAGIC {
        not_our_state(fcinfo);
    }
    // Only called by an aggregate (agg_context raises otherwise).
    agg_context(fcinfo);
    // SAFETY: as in the transition function.
    let days = unsafe { std::slice::from_raw_parts((*st).days, (*st).len) };
    let s = SaturationDays::of(days);
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

#[pg_guard]
extern "C-unwind" fn first_state(fcinfo: pg_sys::FunctionCallInfo) -> *mut State {
    let ctx = agg_context(fcinfo);
    // SAFETY: allocations in the aggregate's context, MAXALIGNed; every
    // field is written before use.
    unsafe {
        let st = pg_sys::MemoryContextAlloc(ctx, std::mem::size_of::<State>()).cast::<State>();
        let days =
            pg_sys::MemoryContextAlloc(ctx, FIRST_CAPACITY * std::mem::size_of::<[f64; 2]>())
                .cast::<[f64; 2]>();
        st.write(State {
            magic: MAGIC,
            len: 0,
            cap: FIRST_CAPACITY,
            days,
        });
        st
    }
}

/// Grows the array to hold `need` days (`repalloc` keeps it in the
/// aggregate's context; `need` is at most LAST_DAY + 1).
#[pg_guard]
extern "C-unwind" fn grow(_fcinfo: pg_sys::FunctionCallInfo, st: *mut State, need: usize) {
    let cap = need.next_power_of_two().min(LAST_DAY as usize + 1);
    // SAFETY: st is ours; days was allocated by MemoryContextAlloc.
    unsafe {
        (*st).days =
            pg_sys::repalloc((*st).days.cast(), cap * std::mem::size_of::<[f64; 2]>()).cast();
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

#[pg_guard]
extern "C-unwind" fn bad_day(_fcinfo: pg_sys::FunctionCallInfo, ago: i64) -> ! {
    raise(VigilError::invalid(format!(
        "at must be between now and {LAST_DAY} days before it, got {} days before",
        ago.div_euclid(USECS_PER_DAY)
    )));
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
}

#[pg_guard]
extern "C-unwind" fn not_our_state(_fcinfo: pg_sys::FunctionCallInfo) -> ! {
    raise(VigilError::invalid(
        "vigil._saturation_days: the state is not one its transition function made",
    ));
}
