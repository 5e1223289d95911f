//! One library, one SQL version (README "Upgrades").
//!
//! `pg_vigil.so` is a single file that every database of a cluster loads
//! (it is preloaded for the worker), while each database has its own
//! `pg_extension.extversion`. Like Citus's `CheckCitusVersion`, the library
//! serves only the SQL of its own version: after a new package is
//! installed and the server restarted, a database still at an older version
//! gets a clear error naming the fix (`ALTER EXTENSION pg_vigil UPDATE`)
//! from every entry point that reads or writes vigil's tables, the worker
//! waits in state `waiting_for_update`, and rollup triggers let the
//! application's writes through without maintaining the summary (a
//! WARNING once per session says so; the update script rebuilds every
//! rollup). Every C symbol an older version's SQL names either still has
//! that exact SQL signature or is one of the retired entry points below
//! (the upgrade test checks both), so no older declaration can call into
//! code that reads its arguments as other types.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::Cell;

/// The version of this library, which is the version of the SQL it serves.
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    /// Set once this database is seen at `LIBRARY`: only ALTER EXTENSION
    /// UPDATE changes the installed version, and updating past `LIBRARY`
    /// needs a newer library, which takes a restart (a new backend).
    static MATCHED: Cell<bool> = const { Cell::new(false) };
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

/// The version of pg_vigil installed in this database, if it is.
pub fn installed() -> Option<String> {
    // Called before any other guard (the rollup trigger, every entry
    // point): the caller's search path must not pick the `=` it runs.
    let _path = crate::security::Restricted::enter();
    crate::sqlglue::read_one::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_vigil'",
    )
    .ok()
    .flatten()
}

/// True unless this database has pg_vigil at a version other than the
/// library's. Costs one catalog read per session.
pub fn matches() -> bool {
    if MATCHED.with(Cell::get) {
        return true;
    }
    match installed() {
        Some(v) if v == LIBRARY => {
            MATCHED.with(|c| c.set(true));
            true
        }
        Some(_) => false,
        None => true,
    }
}

fn mismatch(installed: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "pg_vigil: this database has version {installed} of the extension, but the installed library is version {LIBRARY}"
        ),
        "pg_vigil::version",
    )
    .set_hint("Run ALTER EXTENSION pg_vigil UPDATE in this database.")
}

/// Raises 55000 with the fix as a hint unless the versions match.
pub fn require() {
    if !matches() {
        mismatch(&installed().unwrap_or_default()).report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return");
    }
}

/// For rollup triggers: true when they may maintain their summary. When
/// they may not, the first call of the session warns (the application's
/// write goes on; the update rebuilds the summary).
pub fn rollups_maintained() -> bool {
    if matches() {
        return true;
    }
    if !WARNED.with(|w| w.replace(true)) {
        mismatch(&installed().unwrap_or_default())
            .set_detail("Rollups are not maintained until then; the update rebuilds them.")
            .report(PgLogLevel::WARNING);
    }
    false
}

/// Retired entry points: C symbols that an older version's SQL declares
/// and this library no longer implements. Each lets the older declaration
/// fail (or, for triggers, pass) cleanly instead of PostgreSQL's "could not
/// find function" or a call into an unrelated function.
mod retired {
    use super::*;

    /// 0.1.0's INSERT trigger of rollups, `vigil._rollup_insert()`: the
    /// application's INSERT goes on without maintaining the summary (see
    /// `rollups_maintained`). Written by hand because pgrx would also put it
    /// in this version's SQL.
    #[unsafe(no_mangle)]
    pub extern "C" fn pg_finfo_rollup_insert_wrapper() -> &'static pg_sys::Pg_finfo_record {
        const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
        &V1
    }

    #[pg_guard]
    #[unsafe(no_mangle)]
    pub extern "C-unwind" fn rollup_insert_wrapper(
        _fcinfo: pg_sys::FunctionCallInfo,
    ) -> pg_sys::Datum {
        if rollups_maintained() {
            // Only 0.1.0's SQL declares this function; a database at this
            // library's version has no trigger that calls it.
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "vigil._rollup_insert() was retired in pg_vigil 0.2.0",
                "pg_vigil::version",
            )
            .report(PgLogLevel::ERROR);
        }
        // A trigger's NULL result: nothing to change (AFTER STATEMENT).
        pg_sys::Datum::from(0)
    }

    /// Retired support functions of aggregates: a database still at the
    /// old version gets the mismatch error with its fix (the update points
    /// the aggregate at this version's functions); a later version never
    /// declares them.
    macro_rules! retired_with_error {
        ($($symbol:ident, $finfo:ident, $what:literal;)*) => {$(
            crate::sqlglue::pg_finfo_v1!($finfo);

            #[pg_guard]
            #[unsafe(no_mangle)]
            pub extern "C-unwind" fn $symbol(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
                require();
                ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    concat!($what, " was retired in pg_vigil 0.2.0"),
                    "pg_vigil::version",
                )
                .report(PgLogLevel::ERROR);
                unreachable!("ERROR does not return")
            }
        )*};
    }

    // 0.1.0's internal-state functions of stats_agg and rollup(statsagg)
    // (0.2.0's state is vigil.stats_state).
    retired_with_error! {
        vigil_stats_agg_trans, pg_finfo_vigil_stats_agg_trans, "vigil.stats_agg_trans(internal, float8)";
        stats_rollup_trans_wrapper, pg_finfo_stats_rollup_trans_wrapper, "vigil.stats_rollup_trans(internal, statsagg)";
        stats_agg_combine_wrapper, pg_finfo_stats_agg_combine_wrapper, "vigil.stats_agg_combine(internal, internal)";
        stats_agg_serial_wrapper, pg_finfo_stats_agg_serial_wrapper, "vigil.stats_agg_serial(internal)";
        stats_agg_deserial_wrapper, pg_finfo_stats_agg_deserial_wrapper, "vigil.stats_agg_deserial(bytea, internal)";
        stats_agg_final_wrapper, pg_finfo_stats_agg_final_wrapper, "vigil.stats_agg_final(internal)";
    }

    // The same for percentile_agg and rollup(sketch) (0.2.0's state is
    // vigil.sketch_state).
    retired_with_error! {
        vigil_percentile_agg_trans, pg_finfo_vigil_percentile_agg_trans, "vigil.percentile_agg_trans(internal, float8)";
        sketch_rollup_trans_wrapper, pg_finfo_sketch_rollup_trans_wrapper, "vigil.sketch_rollup_trans(internal, sketch)";
        sketch_combine_wrapper, pg_finfo_sketch_combine_wrapper, "vigil.sketch_combine(internal, internal)";
        sketch_serial_wrapper, pg_finfo_sketch_serial_wrapper, "vigil.sketch_serial(internal)";
        sketch_deserial_wrapper, pg_finfo_sketch_deserial_wrapper, "vigil.sketch_deserial(bytea, internal)";
        sketch_final_wrapper, pg_finfo_sketch_final_wrapper, "vigil.sketch_final(internal)";
    }
}

#[cfg(test)]
mod tests {
    /// PGXN's META.json names this version and has the keys the PGXN
    /// meta spec 1.0.0 requires.
    #[test]
    fn pgxn_meta_matches_the_library() {
        let meta: serde_json::Value = serde_json::from_str(include_str!("../META.json")).unwrap();
        for key in [
            "name",
            "abstract",
            "version",
            "maintainer",
            "license",
            "provides",
            "meta-spec",
        ] {
            assert!(meta.get(key).is_some(), "META.json lacks {key}");
        }
        assert_eq!(meta["name"], "pg_vigil");
        assert_eq!(meta["version"], super::LIBRARY);
        assert_eq!(meta["provides"]["pg_vigil"]["version"], super::LIBRARY);
        assert_eq!(meta["meta-spec"]["version"], "1.0.0");
    }
}
