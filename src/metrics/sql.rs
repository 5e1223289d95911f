//! The database side of pg_vigil's counters: one array of atomics in shared
//! memory (there only when the library is preloaded; a restart starts it at
//! zero), the counts a transaction made, published when it commits, and
//! `vigil._metrics()`, which `vigil.metrics` reads. The counters are those
//! of the database `vigil.database` names, the one the worker serves: only
//! there is anything counted or shown, so a reader in another database of
//! the cluster learns nothing of it, nor it of them.

use super::{Increment, Pending, SLOTS};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Slots([AtomicU64; SLOTS]);

impl Default for Slots {
    fn default() -> Self {
        Slots(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

// SAFETY: plain atomics, no pointers: the same in every process that maps
// the segment.
unsafe impl PGRXSharedMemory for Slots {}

static SHARED: PgAtomic<Slots> = unsafe { PgAtomic::new(c"pg_vigil_metrics") };

/// Set in the postmaster while it preloads pg_vigil, inherited by every
/// process it starts: the shared slots exist.
static ALLOCATED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init` while the postmaster loads preload libraries.
pub fn init() {
    pg_shmem_init!(SHARED);
    ALLOCATED.store(true, Ordering::Relaxed);
}

thread_local! {
    /// This backend's database (it never changes).
    static DATABASE: std::cell::OnceCell<String> = const { std::cell::OnceCell::new() };
}

/// Looks this backend's database name up once. It reads the catalog, so it
/// must first run where that is safe (a transaction in a normal state):
/// `count_at_commit` does, and the rollup trigger calls `prepare` before
/// an error could need `count`.
fn with_database<T>(f: impl FnOnce(&str) -> T) -> T {
    DATABASE.with(|db| {
        f(db.get_or_init(|| {
            // SAFETY: MyDatabaseId is set once a backend is connected;
            // get_database_name returns a palloc'd copy or NULL.
            unsafe {
                let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
                if name.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned()
                }
            }
        }))
    })
}

/// See `with_database`: called where reading the catalog is safe.
pub fn prepare() {
    with_database(|_| ());
}

/// Whether the counters exist and this backend is in `vigil.database`.
fn counted_here() -> bool {
    ALLOCATED.load(Ordering::Relaxed)
        && with_database(|here| !here.is_empty() && here == crate::gucs::database())
}

/// Adds to the slots; callers decided the counts are this database's.
fn publish(increments: impl IntoIterator<Item = Increment>) {
    let slots = &SHARED.get().0;
    for (slot, n) in increments {
        slots[slot].fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts at once, whatever becomes of the transaction (an error on its
/// way out).
pub fn count(increment: Increment) {
    if counted_here() {
        publish([increment]);
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Counts when the current transaction commits (and the subtransaction
/// making the count, if any, was not rolled back); a transaction that
/// aborts or is prepared (two-phase commit) counts nothing.
pub fn count_at_commit(increments: impl IntoIterator<Item = Increment>) {
    if !counted_here() {
        return;
    }
    if !HOOKED.get() {
        // SAFETY: registered once per process, for its life; both callbacks
        // only move backend-local counts and add to atomics, never error.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
        HOOKED.set(true);
    }
    // SAFETY: inside a transaction (a function or the worker's transaction).
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    PENDING.with_borrow_mut(|p| {
        for inc in increments {
            p.add(subxact, inc);
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => {
            publish(PENDING.with_borrow_mut(Pending::take));
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE => {
            PENDING.with_borrow_mut(Pending::take);
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    subxact: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_COMMIT_SUB => PENDING.with_borrow_mut(|p| p.commit_sub(subxact, parent)),
        SUBXACT_EVENT_ABORT_SUB => PENDING.with_borrow_mut(|p| p.abort_sub(subxact)),
        _ => {}
    }
}

/// The worker recorded an attempt of a `kind` channel's notification (its
/// new `status`; once sent, seconds from creation or replay to `sent_at`).
pub fn delivered(kind: &str, status: &str, latency_s: Option<f64>) {
    count_at_commit(super::delivered(kind, status, latency_s));
}

/// `vigil._count_alert(event, severity)`: called by `vigil._notify_alert`.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_count_alert")]
fn count_alert(event: &str, severity: &str) {
    count_at_commit(super::alert_event(event, severity));
}

/// `vigil._count_scan(failed_monitors)`: called at the end of `vigil.scan()`.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_count_scan")]
pub(crate) fn count_scan(failed_monitors: i32) {
    count_at_commit(super::scanned(u64::try_from(failed_monitors).unwrap_or(0)));
}

/// The counters as rows; none when pg_vigil is not preloaded (there are no
/// counters then) or outside `vigil.database` (they are not this
/// database's). Reads shared memory only.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_safe, name = "_metrics")]
fn metrics() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(channel_kind, Option<String>),
        name!(severity, Option<String>),
        name!(le, Option<f64>),
        name!(value, f64),
    ),
> {
    let rows = if counted_here() {
        let slots = &SHARED.get().0;
        super::rows(|k| slots[k].load(Ordering::Relaxed))
    } else {
        Vec::new()
    };
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.name.to_owned(),
            r.channel_kind.map(str::to_owned),
            r.severity.map(str::to_owned),
            r.le,
            r.value,
        )
    }))
}
