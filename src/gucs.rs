//! Every `vigil.*` setting lives here: the statics, one `init()` that
//! registers them, and typed getters. All are reloadable with SIGHUP.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(200);
/// A safety bound only: at the 5-minute backoff cap, even a 30-day delivery
/// deadline (the most a channel allows) stays under 20 000 attempts, so the
/// deadline is what ends retries unless an operator lowers this.
static MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(20_000);
static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5000);
static MONITOR_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
static MAX_CONCURRENCY: GucSetting<i32> = GucSetting::<i32>::new(32);
static EXTERNAL_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static GENERATOR_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static UPGRADE_KEEP_MONITORS: GucSetting<bool> = GucSetting::<bool>::new(false);
static ROLLUP_DIRECT_WRITE: GucSetting<bool> = GucSetting::<bool>::new(true);
static ROLLUP_WRITE_AT_COMMIT: GucSetting<bool> = GucSetting::<bool>::new(true);

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
    GucRegistry::define_int_guc(
        c"vigil.batch_size",
        c"Most notifications the pg_vigil worker claims per channel in one round.",
        c"Claimed rows are leased, sent concurrently, then recorded in a second transaction.",
        &BATCH_SIZE,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vigil.max_attempts",
        c"Most delivery attempts of one notification; a retryable failure on the last one makes it dead.",
        c"A safety bound: normally the channel's delivery_deadline ends retries first. Dead notifications keep their last HTTP status and error; vigil.replay_notifications() requeues them.",
        &MAX_ATTEMPTS,
        1,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vigil.http_timeout_ms",
        c"Hard time limit of one notification HTTP request, connect included.",
        c"A request that takes longer is abandoned and retried with backoff.",
        &HTTP_TIMEOUT_MS,
        100,
        300_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"vigil.monitor_timeout_ms",
        c"Longest time one monitor's query may run (lock waits included) in vigil.scan().",
        c"A monitor that takes longer is reported as failed and the scan goes on; vigil.set_monitor_timeout() overrides it per monitor.",
        &MONITOR_TIMEOUT_MS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"vigil.max_concurrency",
        c"Most notification HTTP requests the pg_vigil worker has in flight at once.",
        c"Requests run on one thread (an async runtime); this bounds open connections.",
        &MAX_CONCURRENCY,
        1,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    init_notify_limits();
    // Every vigil.* name is one of the above: `SET vigil.databse = 'x'` (a
    // typo) is an error instead of a silently ignored placeholder.
    // SAFETY: called from _PG_init after the definitions, as PostgreSQL's
    // own modules do.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"vigil".as_ptr()) };
}

/// The worker's database; `postgres` if the setting is empty.
pub fn database() -> String {
    DATABASE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".to_string())
}

pub fn rollup_write_at_commit() -> bool {
    ROLLUP_WRITE_AT_COMMIT.get()
}

pub fn rollup_direct_write() -> bool {
    ROLLUP_DIRECT_WRITE.get()
}

pub fn worker_enabled() -> bool {
    WORKER_ENABLED.get()
}

pub fn poll_interval_ms() -> i32 {
    POLL_INTERVAL_MS.get()
}

pub fn batch_size() -> i32 {
    BATCH_SIZE.get()
}

pub fn max_attempts() -> i32 {
    MAX_ATTEMPTS.get()
}

pub fn http_timeout_ms() -> i32 {
    HTTP_TIMEOUT_MS.get()
}

pub fn monitor_timeout_ms() -> i32 {
    MONITOR_TIMEOUT_MS.get()
}

pub fn max_concurrency() -> i32 {
    MAX_CONCURRENCY.get()
}

static ALLOWED_INTERNAL_HOSTS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(65_536);
static ALERTMANAGER_RESEND_S: GucSetting<i32> = GucSetting::<i32>::new(60);
static CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Settings of the notification security limits (destination policy and
/// payload caps); called at the end of `init()`.
fn init_notify_limits() {
    GucRegistry::define_string_guc(
        c"vigil.allowed_internal_hosts",
        c"Webhook hosts allowed despite the destination policy (link-local, cloud metadata, unspecified addresses).",
        c"Comma-separated host names, IP addresses and CIDRs (e.g. 169.254.10.0/24). Checked when a channel is stored and again by the worker before each send, for every address a host name resolves to.",
        &ALLOWED_INTERNAL_HOSTS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // Set in postgresql.conf (or ALTER SYSTEM) only: it names a file the
    // worker reads.
    GucRegistry::define_string_guc(
        c"vigil.ssl_ca_file",
        c"PEM file of CA certificates the pg_vigil worker trusts for HTTPS receivers, besides the public and the system's roots.",
        c"For receivers behind a private CA. Relative paths are from the data directory. Read again on reload when the setting or the file changes; a file that cannot be used is a WARNING and only the public and system roots are trusted.",
        &CA_FILE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // Superuser only: they go into every notification, and a role that
    // raises alerts must not point receivers' links elsewhere.
    GucRegistry::define_string_guc(
        c"vigil.external_url",
        c"URL of the place people look at pg_vigil's alerts (a dashboard), sent as a webhook's externalURL.",
        c"Empty: externalURL is empty. Not an http(s) URL: ignored (empty).",
        &EXTERNAL_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"vigil.generator_url",
        c"Template of each alert's generatorURL in webhooks, e.g. https://grafana.example/d/vigil?var-alert={id}.",
        c"Placeholders {id}, {fingerprint}, {alertname}, {monitor}, {rule} and {entity} are replaced, URL-encoded. Empty or not an http(s) URL: empty.",
        &GENERATOR_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"vigil.rollup_direct_write",
        c"Whether single-row writes of count/sum rollups update their slot row without an executor.",
        c"Off: every write takes the INSERT ... ON CONFLICT statement. Both give the same summary; off is for comparing the two (benches/anchors.py) or ruling the direct write out.",
        &ROLLUP_DIRECT_WRITE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"vigil.rollup_write_at_commit",
        c"Whether rollups with avg, min, max, stats or percentile measures write their summary when the transaction commits.",
        c"On: their writers never deadlock, and a transaction's own reads of such a summary do not see its writes before it commits (README \"Removals\"). Count/sum rollups never wait either way.",
        &ROLLUP_WRITE_AT_COMMIT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"vigil.upgrade_keep_monitors",
        c"Whether ALTER EXTENSION pg_vigil UPDATE from 0.1.0 keeps the 0.1.0 monitors enabled.",
        c"Off (default): they start disabled for review, since 0.1.0 did not record who created them (README \"Upgrades\").",
        &UPGRADE_KEEP_MONITORS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vigil.alertmanager_resend_interval",
        c"How often the pg_vigil worker re-posts open alerts to alertmanager channels, in seconds.",
        c"Each alert is posted with endsAt four intervals ahead, so Alertmanager keeps it active while pg_vigil runs and resolves it by itself if re-posts stop (as Prometheus does).",
        &ALERTMANAGER_RESEND_S,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"vigil.max_payload_bytes",
        c"Largest notification payload and alert details pg_vigil stores, in bytes.",
        c"Larger alert details are replaced by {\"truncated\": true, \"original_bytes\": N}; vigil.send_webhook refuses a larger payload (54000).",
        &MAX_PAYLOAD_BYTES,
        1024,
        100_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// `vigil.ssl_ca_file`, empty when unset.
pub fn ca_file() -> String {
    CA_FILE
        .get()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_default()
}

/// `vigil.allowed_internal_hosts`, empty when unset.
pub fn allowed_internal_hosts() -> String {
    ALLOWED_INTERNAL_HOSTS
        .get()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_default()
}

/// `vigil.external_url` and `vigil.generator_url`, empty when unset.
pub fn alert_links() -> crate::notify::payload::Links {
    let text = |g: &GucSetting<Option<CString>>| {
        g.get()
            .and_then(|s| s.into_string().ok())
            .unwrap_or_default()
    };
    crate::notify::payload::Links {
        external_url: text(&EXTERNAL_URL),
        generator_url: text(&GENERATOR_URL),
    }
}

/// `vigil.alertmanager_resend_interval`, in seconds.
pub fn alertmanager_resend_seconds() -> i32 {
    ALERTMANAGER_RESEND_S.get()
}

pub fn max_payload_bytes() -> i32 {
    MAX_PAYLOAD_BYTES.get()
}
