//! Running code that other roles can influence the way PostgreSQL's own
//! maintenance commands do (REFRESH MATERIALIZED VIEW, VACUUM, ANALYZE: see
//! `matview.c`): as the object's owner, inside a security-restricted
//! operation, with a search path of `pg_catalog` only and every GUC change
//! made meanwhile rolled back. SPEC §3.6.
//!
//! Written against the C API rather than `SET ROLE` because SET ROLE is
//! refused inside a security-restricted operation (so user code cannot undo
//! the switch) and a GUC round trip per INSERT would cost the rollup write
//! path more than the upsert itself.

use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// `pg_catalog` only (no pg_temp, no user schema), allocated once in
    /// TopMemoryContext.
    static CATALOG_PATH: Cell<*mut pg_sys::OverrideSearchPath> = const { Cell::new(std::ptr::null_mut()) };
}

fn catalog_path() -> *mut pg_sys::OverrideSearchPath {
    CATALOG_PATH.with(|p| {
        if p.get().is_null() {
            // SAFETY: TopMemoryContext lives as long as the backend.
            let fresh = unsafe {
                pg_sys::MemoryContextAllocZero(
                    pg_sys::TopMemoryContext,
                    std::mem::size_of::<pg_sys::OverrideSearchPath>(),
                )
            } as *mut pg_sys::OverrideSearchPath;
            // SAFETY: just allocated and zeroed (schemas = NIL, addTemp = false).
            unsafe { (*fresh).addCatalog = true };
            p.set(fresh);
        }
        p.get()
    })
}

/// The caller's user, security context and GUC nest level, restored when
/// dropped. On an error the (sub)transaction abort restores all three (as
/// it does for SECURITY DEFINER functions), so unwinding leaves them alone.
pub struct Restricted {
    user: pg_sys::Oid,
    sec: i32,
    nest: i32,
}

/// A setting the caller's session could use to change what SQL run on
/// someone else's behalf means, and the value it is pinned to. `differs`
/// reads the C variable so that a session already at the pinned value (the
/// usual case) costs no GUC change at all.
struct Pin {
    name: &'static std::ffi::CStr,
    value: &'static std::ffi::CStr,
    differs: fn() -> bool,
}

/// How statements are parsed: an escape in a string literal, `x = NULL`,
/// `'{NULL}'` arrays; and how catalog text is printed.
const PARSE_PINS: [Pin; 4] = [
    Pin {
        name: c"standard_conforming_strings",
        value: c"on",
        // SAFETY: reads of GUC variables (main thread).
        differs: || unsafe { !pg_sys::standard_conforming_strings },
    },
    Pin {
        name: c"transform_null_equals",
        value: c"off",
        differs: || unsafe { pg_sys::Transform_null_equals },
    },
    Pin {
        name: c"array_nulls",
        value: c"on",
        differs: || unsafe { !pg_sys::Array_nulls },
    },
    // How catalog text vigil reads back is printed (pg_get_constraintdef
    // of a distributed rollup's definition, src/rollup/citus.rs).
    Pin {
        name: c"quote_all_identifiers",
        value: c"off",
        differs: || unsafe { pg_sys::quote_all_identifiers },
    },
];

/// What values mean: a rollup's filters, buckets and sums must come out
/// the same whoever writes the source (a writer's TimeZone must not move
/// an hour-of-day filter, nor its DateStyle a date comparison).
fn setting_is(name: &std::ffi::CStr, value: &str) -> bool {
    // SAFETY: a GUC read by name; NULL when the setting does not exist.
    let current = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    !current.is_null()
        && unsafe { std::ffi::CStr::from_ptr(current) }.to_bytes() == value.as_bytes()
}

// `bytea_output` (utils/bytea.h, which pgrx does not bind): read as the
// variable, as the other pins are, because `GetConfigOption` looks the
// setting up by name on every write of a rollup (0.3 % of a single-row
// INSERT's backend time in a CPU profile).
unsafe extern "C" {
    static bytea_output: std::ffi::c_int;
}
/// `ByteaOutputType`'s `BYTEA_OUTPUT_HEX`.
const BYTEA_OUTPUT_HEX: std::ffi::c_int = 1;

/// What the value pins hold, by name (the text search configuration
/// last): a pure list, also written as SET clauses
/// (`value_pins_set_clause`).
const PINNED_VALUES: [(&std::ffi::CStr, &std::ffi::CStr); 6] = [
    (c"TimeZone", c"UTC"),
    (c"DateStyle", c"ISO, MDY"),
    (c"IntervalStyle", c"postgres"),
    (c"extra_float_digits", c"1"),
    (c"bytea_output", c"hex"),
    (c"default_text_search_config", c"pg_catalog.simple"),
];

const VALUE_PINS: [Pin; 5] = [
    Pin {
        name: PINNED_VALUES[0].0,
        value: PINNED_VALUES[0].1,
        differs: || unsafe {
            let mut offset: std::ffi::c_long = 1;
            !(pg_sys::pg_get_timezone_offset(pg_sys::session_timezone, &mut offset) && offset == 0)
        },
    },
    Pin {
        name: PINNED_VALUES[1].0,
        value: PINNED_VALUES[1].1,
        differs: || unsafe {
            pg_sys::DateStyle != pg_sys::USE_ISO_DATES as i32
                || pg_sys::DateOrder != pg_sys::DATEORDER_MDY as i32
        },
    },
    Pin {
        name: PINNED_VALUES[2].0,
        value: PINNED_VALUES[2].1,
        differs: || unsafe { pg_sys::IntervalStyle != pg_sys::INTSTYLE_POSTGRES as i32 },
    },
    Pin {
        name: PINNED_VALUES[3].0,
        value: PINNED_VALUES[3].1,
        differs: || unsafe { pg_sys::extra_float_digits != 1 },
    },
    Pin {
        name: PINNED_VALUES[4].0,
        value: PINNED_VALUES[4].1,
        // SAFETY: a read of a GUC variable (main thread).
        differs: || unsafe { bytea_output != BYTEA_OUTPUT_HEX },
    },
];

/// The value pin only user expressions need (`enter_pinned_for`).
const TEXT_SEARCH_PIN: Pin = Pin {
    name: PINNED_VALUES[5].0,
    value: PINNED_VALUES[5].1,
    differs: || !setting_is(c"default_text_search_config", "pg_catalog.simple"),
};

fn pin(pins: &[Pin]) {
    for p in pins {
        if (p.differs)() {
            save_setting(p.name, p.value);
        }
    }
}

/// The SET clauses of a function that must evaluate a rollup's filters as
/// its triggers do (`enter_pinned`: the value pins and the text search
/// configuration), from the same list.
pub fn value_pins_set_clause() -> String {
    PINNED_VALUES
        .iter()
        .map(|(name, value)| {
            format!(
                "SET {} = {}",
                name.to_str().expect("ASCII"),
                crate::rollup::literal(value.to_str().expect("ASCII"))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets `name` to `value`, saved at the current GUC nest level: undone by
/// AtEOXact_GUC in `Restricted`'s Drop (or by the abort), as a function's
/// SET clause is.
fn save_setting(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: a GUC change at the current nest level (main thread).
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

impl Restricted {
    /// Pushes the catalog-only search path and a GUC nest level, and pins
    /// the settings that decide how SQL is parsed, still as the caller;
    /// `act_as` then switches identity.
    pub fn enter() -> Restricted {
        let mut user = pg_sys::InvalidOid;
        let mut sec = 0;
        // SAFETY: plain reads, and a push that Drop (or abort) pops.
        let nest = unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::PushOverrideSearchPath(catalog_path());
            pg_sys::NewGUCNestLevel()
        };
        pin(&PARSE_PINS);
        Restricted { user, sec, nest }
    }

    /// `enter`, and the settings that decide what values mean pinned too
    /// (TimeZone UTC, DateStyle ISO, IntervalStyle postgres,
    /// extra_float_digits 1, bytea_output hex, default_text_search_config
    /// pg_catalog.simple): for rollup maintenance, whose results must not
    /// depend on who writes.
    pub fn enter_pinned() -> Restricted {
        Restricted::enter_pinned_for(true)
    }

    /// `enter_pinned`, leaving `default_text_search_config` as it is unless
    /// `text_search`: only user expressions (a rollup's filters) can call a
    /// text search function without a configuration, and a cluster whose
    /// default is not `simple` (Debian's is `english`) would otherwise pay
    /// a GUC change on every maintained statement.
    pub fn enter_pinned_for(text_search: bool) -> Restricted {
        let r = Restricted::enter();
        pin(&VALUE_PINS);
        if text_search {
            r.pin_text_search();
        }
        r
    }

    /// Pins `default_text_search_config` too (at this operation's nest
    /// level: undone with the rest), for one entered without it that
    /// finds it needs it.
    pub fn pin_text_search(&self) {
        pin(&[TEXT_SEARCH_PIN]);
    }

    /// Sets `name` (another extension's setting, say Citus's) to `value`
    /// for the rest of this operation, when that setting exists; undone
    /// with the pins.
    pub fn set_if_defined(&self, name: &std::ffi::CStr, value: &std::ffi::CStr) {
        // SAFETY: a GUC read by name; NULL when the setting does not exist.
        let current = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
        if !current.is_null() && unsafe { std::ffi::CStr::from_ptr(current) } != value {
            save_setting(name, value);
        }
    }

    /// Lets vigil's own trigger DDL through on tables Citus distributes
    /// (`citus.enable_unsafe_triggers`, for this operation only), and shows
    /// it shards in the catalogs (`citus.override_table_visibility`): the
    /// statements vigil runs are its own, for a rollup of a distributed
    /// table (src/rollup/citus.rs). Does nothing without Citus.
    pub fn citus_rollup_ddl(&self) {
        self.set_if_defined(c"citus.enable_unsafe_triggers", c"on");
        self.show_citus_shards();
    }

    /// Shows Citus shards to this operation's catalog lookups (a client
    /// backend on a worker would not see them), for the rollup trigger.
    pub fn show_citus_shards(&self) {
        self.set_if_defined(c"citus.override_table_visibility", c"off");
    }

    /// Enters and acts as `role` at once.
    pub fn as_role(role: pg_sys::Oid) -> Restricted {
        let r = Restricted::enter();
        r.act_as(role);
        r
    }

    /// Runs as `role` inside a security-restricted operation: SET ROLE,
    /// SET SESSION AUTHORIZATION, temporary objects, cursors WITH HOLD,
    /// PREPARE, LISTEN and the like are refused to any code it reaches.
    pub fn act_as(&self, role: pg_sys::Oid) {
        // SAFETY: the switch matview.c makes for REFRESH.
        unsafe {
            pg_sys::SetUserIdAndSecContext(
                role,
                self.sec
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            )
        };
    }

    /// The role that entered.
    pub fn caller(&self) -> pg_sys::Oid {
        self.user
    }
}

impl Drop for Restricted {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // SAFETY: undoes `enter` on the success path, in reverse order.
        unsafe {
            pg_sys::AtEOXact_GUC(false, self.nest);
            pg_sys::SetUserIdAndSecContext(self.user, self.sec);
            pg_sys::PopOverrideSearchPath();
        }
    }
}

/// Whether `member` has the privileges of `role` (is it, is a superuser,
/// or inherits it), PostgreSQL's own test for ownership rights.
pub fn has_privs_of_role(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup with no side effect.
    unsafe { pg_sys::has_privs_of_role(member, role) }
}

/// The owner of the extension (who ran CREATE EXTENSION): vigil's own
/// tables are written as this role.
pub fn extension_owner() -> pg_sys::Oid {
    crate::sqlglue::read_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_vigil'",
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID))
}

/// Role name for messages.
pub fn role_name(role: pg_sys::Oid) -> String {
    crate::sqlglue::read_one::<String>(&format!(
        "SELECT pg_catalog.quote_ident(r.rolname::text) FROM pg_catalog.pg_roles r WHERE r.oid = {}",
        role.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("role {}", role.to_u32()))
}

/// The message of an ERROR caught from PostgreSQL (or of a Rust panic).
pub fn error_message(e: pg_sys::panic::CaughtError) -> String {
    Failure::from(e).message
}

/// An ERROR caught by `catching_failure`: its SQLSTATE and message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub sqlstate: String,
    pub message: String,
}

impl From<pg_sys::panic::CaughtError> for Failure {
    fn from(e: pg_sys::panic::CaughtError) -> Failure {
        let r = match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => r,
            pg_sys::panic::CaughtError::RustPanic { ereport, .. } => ereport,
        };
        Failure {
            sqlstate: sqlstate(r.sql_error_code() as i32),
            message: r.message().to_string(),
        }
    }
}

/// The five characters of a packed SQLSTATE (elog.h's MAKE_SQLSTATE packs
/// each as 6 bits, '0'-based).
pub fn sqlstate(code: i32) -> String {
    (0..5)
        .map(|i| char::from(((code >> (6 * i)) & 0x3F) as u8 + b'0'))
        .collect()
}

/// Runs `f` in an internal subtransaction, as PL/pgSQL's EXCEPTION blocks
/// do: an ERROR inside it is rolled back with everything the failed
/// statement held (locks, snapshots, catalog references, SPI connections,
/// the user id it ran as) and returned as its message. PostgreSQL supports
/// going on after an error only this way; catching one without the
/// subtransaction leaks what it held.
pub fn catching<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catching_failure(f).map_err(|e| e.message)
}

/// `catching`, keeping the error's SQLSTATE.
pub fn catching_failure<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    // SAFETY: the pattern of PostgreSQL's procedural languages
    // (pl_exec.c exec_stmt_block): begin, and on error roll back, an
    // internal subtransaction, then restore the caller's memory context
    // and resource owner.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        // The closure's state is discarded on error (the subtransaction
        // rolls back what it did), so unwinding through it is sound.
        let f = std::panic::AssertUnwindSafe(f);
        let result = PgTryBuilder::new(move || {
            let f = f;
            Ok((f.0)())
        })
        .catch_others(|e| Err(Failure::from(e)))
        .execute();
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}
