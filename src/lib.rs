//! pg_vigil: watch business metrics where they live. This crate root wires
//! the modules together; each concept has its own module (see README).

use pgrx::prelude::*;

pub mod alert;
pub mod error;
pub mod gucs;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod rollup;
pub mod scoring;
pub mod security;
pub mod sketch;
mod sqlglue;
pub mod stats;
pub mod time;
pub mod version;
mod worker;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/types.sql", name = "types", bootstrap);
extension_sql_file!(
    "../sql/stats.sql",
    name = "stats",
    requires = [
        stats::sql::statsagg_in,
        stats::sql::statsagg_out,
        stats::sql::statsagg_send,
        stats::sql::statsagg_recv,
    ]
);
extension_sql_file!(
    "../sql/sketch.sql",
    name = "sketch",
    requires = [
        sketch::sql::sketch_in,
        sketch::sql::sketch_out,
        sketch::sql::sketch_send,
        sketch::sql::sketch_recv,
    ]
);
extension_sql_file!(
    "../sql/rollup.sql",
    name = "rollup",
    requires = [
        "stats",
        "sketch",
        rollup::sql::create_rollup,
        rollup::sql::verify_rollup,
        rollup::sql::rebuild_rollup,
        rollup::sql::drop_rollup,
        rollup::sql::set_rollup_on_detach,
        rollup::sql::rollup_stats,
        rollup::ddl::rollup_status,
        rollup::ddl::rollup_ddl,
        rollup::ddl::rollup_dropped,
        rollup::sql::upgrade_rollup,
        rollup::trigger::rollup_trigger,
        rollup::rolling::create_rolling,
        rollup::rolling::age_rolling,
        rollup::rolling::verify_rolling,
        rollup::rolling::drop_rolling,
        rollup::rolling::rolling_stats,
    ]
);
extension_sql_file!(
    "../sql/alerts.sql",
    name = "alerts",
    requires = [
        monitor::sql::kind_default_actions,
        scoring::sql::urgency_score,
        scoring::sql::urgency_band,
        scoring::sql::dedup_key,
        alert::sql::check_labels,
        alert::sql::labels_at_raise,
        alert::sql::alert_fingerprint,
        notify::sql::pg_notify_payload,
    ]
);
extension_sql_file!("../sql/rules.sql", name = "rules", requires = ["alerts"]);
extension_sql_file!(
    "../sql/notify.sql",
    name = "notify",
    requires = [
        "alerts",
        notify::sql::slack_payload,
        notify::sql::webhook_payload,
        notify::sql::group_message,
        notify::sql::check_channel,
        notify::sql::is_notification_event,
        notify::sql::check_channel_options,
        notify::sql::pagerduty_payload,
        notify::sql::msteams_payload,
        notify::sql::alertmanager_payload,
        notify::sql::email_payload,
        notify::sql::pg_notify_payload,
        notify::sql::alertmanager_batches,
        notify::sql::alertmanager_resend_seconds,
        notify::sql::wake_worker,
        metrics::sql::count_alert,
    ]
);
extension_sql_file!(
    "../sql/monitors.sql",
    name = "monitors",
    requires = [
        "alerts",
        "rollup",
        "notify",
        monitor::sql::monitor_plan,
        monitor::sql::monitor_plan_on,
        monitor::sql::monitor_run,
        monitor::sql::base_type,
        monitor::sql::monitor_kinds,
        monitor::scan::scan,
        monitor::scan::monitor_labels,
        scoring::sql::early_kill_decision,
        monitor::kinds::early_kill::early_kill_trigger,
        scoring::sql::saturation_status,
        scoring::sql::saturation_predicted,
        scoring::sql::exhaustion_score,
        metrics::sql::count_scan,
    ]
);
extension_sql_file!(
    "../sql/routing.sql",
    name = "routing",
    requires = [
        "alerts",
        "notify",
        alert::sql::matchers,
        alert::sql::labels_match,
        alert::sql::matchers_equalities,
    ]
);
extension_sql_file!(
    "../sql/health.sql",
    name = "health",
    requires = [
        "notify",
        "monitors",
        "rollup",
        worker::worker_status,
        rollup::ddl::rollup_status,
    ]
);
extension_sql_file!(
    "../sql/retention.sql",
    name = "retention",
    requires = ["alerts", "rules", "notify", "monitors"]
);
extension_sql_file!(
    "../sql/roles.sql",
    name = "roles",
    requires = [
        "alerts",
        "rules",
        "rollup",
        "notify",
        "monitors",
        "retention",
        "routing",
        "health"
    ]
);
extension_sql_file!(
    "../sql/metrics.sql",
    name = "metrics",
    requires = ["roles", metrics::sql::metrics]
);
extension_sql_file!("../sql/comments.sql", name = "comments", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx's panic hook captures a Rust backtrace into the DETAIL of every
    // error that passes through Rust when the environment asks for one
    // (RUST_BACKTRACE): a user must never see one. RUST_LIB_BACKTRACE wins
    // over RUST_BACKTRACE for `Backtrace::capture` and is read once, so
    // setting it here, before any capture and while the backend has one
    // thread, keeps backtraces out of errors for the backend's life.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::init();
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        metrics::sql::init();
        worker::register();
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod alerting_tests;
#[cfg(any(test, feature = "pg_test"))]
mod ops_tests;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'pg_vigil'",
            "vigil.poll_interval_ms = 100",
            // A #[pg_test] never commits, so rollups written at commit
            // (pending.rs) would never be written: its tests that need it
            // turn it on and apply what is kept themselves.
            "vigil.rollup_write_at_commit = off",
        ]
    }
}
