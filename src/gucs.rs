//! Every `vigil.*` setting lives here: the statics, one `init()` that
//! registers them, and typed getters. All are reloadable with SIGHUP.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub fn init() {
    GucRegistry::define_string_guc(
        c"vigil.database",
        c"Database the pg_vigil background worker connects to.",
        c"The worker restarts itself to follow a change on reload.",
        &DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"vigil.worker_enabled",
        c"Whether the pg_vigil background worker does any work.",
        c"When off the worker stays connected and heartbeats but processes nothing.",
        &WORKER_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vigil.poll_interval_ms",
        c"Longest time the pg_vigil worker sleeps between checks.",
        c"The worker also wakes at once when signalled; this bounds heartbeat age.",
        &POLL_INTERVAL_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
}

/// The worker's database; `postgres` if the setting is empty.
pub fn database() -> String {
    DATABASE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".to_string())
}

pub fn worker_enabled() -> bool {
    WORKER_ENABLED.get()
}

pub fn poll_interval_ms() -> i32 {
    POLL_INTERVAL_MS.get()
}
