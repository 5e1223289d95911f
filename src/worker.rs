//! The pg_vigil background worker. Registered only when the library is in
//! `shared_preload_libraries`; it connects to `vigil.database`, drains the
//! notification outbox (see `notify::deliver`), sleeps on its latch until a
//! commit that enqueued something wakes it, and publishes a heartbeat in
//! shared memory that `vigil.worker_status()` and `vigil.health` read without
//! writing any WAL.

use crate::gucs;
use crate::notify::deliver::{Delivery, WorkerHooks};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::{
    pg_shmem_init, register_xact_callback, PGRXSharedMemory, PgLwLock, PgXactCallbackEvent,
};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `pg_stat_activity.backend_type` of the worker.
pub const WORKER_TYPE: &str = "pg_vigil worker";

/// How long the postmaster waits before starting the worker again after it
/// exits with an error (e.g. `vigil.database` does not exist yet).
const RESTART_SECS: u64 = 5;

#[derive(Clone, Copy, Default)]
struct WorkerShared {
    pid: i32,
    state: WorkerState,
    started_at: i64,
    heartbeat_at: i64,
    heartbeats: i64,
    poll_interval_ms: i32,
    /// The database the worker connects to (NUL-padded, NAMEDATALEN bytes):
    /// what it actually uses, not what a caller's vigil.database says.
    database: DbName,
}

#[derive(Clone, Copy)]
struct DbName([u8; 64]);

impl Default for DbName {
    fn default() -> Self {
        DbName([0; 64])
    }
}

impl DbName {
    fn new(name: &str) -> Self {
        let mut bytes = [0; 64];
        let n = name.len().min(63);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        DbName(bytes)
    }

    fn as_string(&self) -> String {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(64);
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }
}

unsafe impl PGRXSharedMemory for WorkerShared {}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum WorkerState {
    #[default]
    NotStarted,
    Connecting,
    WaitingForExtension,
    /// The database has another version of the extension's SQL than this
    /// library (src/version.rs): nothing is sent until ALTER EXTENSION
    /// pg_vigil UPDATE.
    WaitingForUpdate,
    Idle,
    Disabled,
    Stopped,
}

impl WorkerState {
    fn label(self) -> &'static str {
        match self {
            WorkerState::NotStarted => "not_started",
            WorkerState::Connecting => "connecting",
            WorkerState::WaitingForExtension => "waiting_for_extension",
            WorkerState::WaitingForUpdate => "waiting_for_update",
            WorkerState::Idle => "idle",
            WorkerState::Disabled => "disabled",
            WorkerState::Stopped => "stopped",
        }
    }
}

static SHARED: PgLwLock<WorkerShared> = unsafe { PgLwLock::new(c"pg_vigil_worker_state") };

/// True in every process of a cluster that preloaded pg_vigil (set in the
/// postmaster, inherited by fork), so shared memory exists.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init` while the postmaster loads preload libraries.
pub fn register() {
    pg_shmem_init!(SHARED);
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_function("vigil_worker_main")
        .set_library("pg_vigil")
        .enable_shmem_access(None)
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(RESTART_SECS)))
        .load();
}

fn update(f: impl FnOnce(&mut WorkerShared)) {
    f(&mut SHARED.exclusive());
}

/// SIGTERM seen. pgrx's flag resets when read, and the delivery loop reads it
/// often, so the answer is kept here.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// True once the worker has been asked to stop; checked between batches and
/// while a batch's HTTP requests are in flight.
fn stopping() -> bool {
    if BackgroundWorker::sigterm_received() {
        STOPPING.store(true, Ordering::Relaxed);
    }
    STOPPING.load(Ordering::Relaxed)
}

thread_local! {
    /// Whether this transaction already arranged to wake the worker.
    static WAKE_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Wakes the worker when the current transaction commits (its rows are
/// visible only then), once per transaction however many rows it enqueued.
/// Nothing happens when pg_vigil is not preloaded or the transaction aborts.
pub fn wake_at_commit() {
    if !PRELOADED.load(Ordering::Relaxed) || WAKE_PENDING.get() {
        return;
    }
    WAKE_PENDING.set(true);
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        WAKE_PENDING.set(false);
        set_worker_latch();
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || WAKE_PENDING.set(false));
}

fn set_worker_latch() {
    let pid = SHARED.share().pid;
    if pid == 0 {
        return;
    }
    // SAFETY: BackendPidGetProc takes ProcArrayLock itself; a PGPROC's latch
    // lives in shared memory for the life of the cluster, and SetLatch on
    // another process's latch is how PostgreSQL itself wakes backends.
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&mut (*proc_).procLatch);
        }
    }
}

fn beat_idle() {
    beat(WorkerState::Idle);
}

fn beat(state: WorkerState) {
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    update(|s| {
        s.state = state;
        s.heartbeat_at = now;
        s.heartbeats += 1;
        s.poll_interval_ms = gucs::poll_interval_ms();
    });
}

/// Whether the extension is installed, and at this library's version.
fn extension_state() -> WorkerState {
    BackgroundWorker::transaction(|| match crate::version::installed() {
        None => WorkerState::WaitingForExtension,
        Some(v) if v == crate::version::LIBRARY => WorkerState::Idle,
        Some(_) => WorkerState::WaitingForUpdate,
    })
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vigil_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = gucs::database();
    let started = unsafe { pg_sys::GetCurrentTimestamp() };
    update(|s| {
        *s = WorkerShared {
            pid: unsafe { pg_sys::MyProcPid },
            state: WorkerState::Connecting,
            started_at: started,
            database: DbName::new(&database),
            ..WorkerShared::default()
        }
    });
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // The worker is a superuser: it must never resolve a name, operator or
    // cast through a schema another role can create in (SPEC §3.6). Pinned
    // at the highest source, so neither the config file, ALTER ROLE/DATABASE
    // nor a reload can change it.
    // SAFETY: called once on the main thread, outside any transaction.
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
        // A role that may lock one of vigil's tables (vigil_admin has
        // DELETE on the outbox) delays deliveries, never wedges them: a
        // lock wait past this fails the round, the worker restarts (rows
        // it was sending go back to pending) and tries again.
        pg_sys::SetConfigOption(
            c"lock_timeout".as_ptr(),
            c"10s".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    log!("{WORKER_TYPE} started in database \"{database}\"");

    let mut delivery = Delivery::new(WorkerHooks {
        stopping,
        heartbeat: beat_idle,
    });
    let mut warned_update = false;
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            let wanted = gucs::database();
            if wanted != database {
                log!("{WORKER_TYPE}: vigil.database changed from \"{database}\" to \"{wanted}\", restarting");
                update(|s| s.state = WorkerState::Stopped);
                // Exit code 1 makes the postmaster start us again after the
                // restart interval, connected to the new database.
                unsafe { pg_sys::proc_exit(1) };
            }
        }
        let state = if !gucs::worker_enabled() {
            WorkerState::Disabled
        } else {
            extension_state()
        };
        if state == WorkerState::WaitingForUpdate && !warned_update {
            warning!(
                "{WORKER_TYPE}: database \"{database}\" has another version of pg_vigil than the library ({}); nothing is delivered until ALTER EXTENSION pg_vigil UPDATE",
                crate::version::LIBRARY
            );
        }
        warned_update = state == WorkerState::WaitingForUpdate;
        let poll = Duration::from_millis(gucs::poll_interval_ms() as u64);
        let sleep = if state == WorkerState::Idle {
            age_rolling_totals();
            delivery.run(poll)
        } else {
            poll
        };
        beat(state);
        if stopping() || !BackgroundWorker::wait_latch(Some(sleep)) {
            break;
        }
    }
    update(|s| {
        s.state = WorkerState::Stopped;
        s.pid = 0;
    });
    log!("{WORKER_TYPE} stopped");
    // Exit code 1, like PostgreSQL's own logical replication launcher: the
    // postmaster then starts us again after RESTART_SECS when the SIGTERM came
    // from pg_terminate_backend() or DROP DATABASE ... WITH (FORCE), and does
    // not when the whole server is shutting down.
    unsafe { pg_sys::proc_exit(1) };
}

/// Moves the windows of the rolling totals whose first bucket has moved
/// (src/rollup/rolling.rs), each poll; a failure is a WARNING (readers
/// stay exact meanwhile: the views correct for a late ager).
fn age_rolling_totals() {
    let failure = BackgroundWorker::transaction(|| {
        crate::security::catching(|| crate::rollup::rolling::age_all(None, true))
    });
    if let Err(e) = failure {
        warning!("pg_vigil worker: ageing rolling totals: {e}");
    }
}

fn timestamptz(ts: i64) -> Option<TimestampWithTimeZone> {
    (ts != 0)
        .then(|| TimestampWithTimeZone::try_from(ts).ok())
        .flatten()
}

/// The worker as it last reported itself. `running` is false when pg_vigil
/// is not preloaded, or the worker has stopped or could not connect (state
/// `connecting` with `running` false: see the server log, e.g. a missing
/// `vigil.database`; it is retried every few seconds).
#[pg_extern(volatile, parallel_restricted)]
#[allow(clippy::type_complexity)]
fn worker_status() -> TableIterator<
    'static,
    (
        name!(running, bool),
        name!(pid, Option<i32>),
        name!(state, String),
        name!(database, String),
        name!(started_at, Option<TimestampWithTimeZone>),
        name!(heartbeat_at, Option<TimestampWithTimeZone>),
        name!(heartbeats, i64),
        name!(poll_interval_ms, Option<i32>),
    ),
> {
    let row = if PRELOADED.load(Ordering::Relaxed) {
        let s = *SHARED.share();
        // A worker that failed to connect (say its database is missing) left
        // its pid behind; it is alive only if it is in the proc array.
        let alive = s.pid != 0 && unsafe { !pg_sys::BackendPidGetProc(s.pid).is_null() };
        let running = alive && s.state != WorkerState::Stopped;
        (
            running,
            (s.pid != 0).then_some(s.pid),
            s.state.label().to_string(),
            Some(s.database.as_string())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(gucs::database),
            timestamptz(s.started_at),
            timestamptz(s.heartbeat_at),
            s.heartbeats,
            (s.poll_interval_ms != 0).then_some(s.poll_interval_ms),
        )
    } else {
        (
            false,
            None,
            "not_preloaded".to_string(),
            gucs::database(),
            None,
            None,
            0,
            None,
        )
    };
    TableIterator::once(row)
}
