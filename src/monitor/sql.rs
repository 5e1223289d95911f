//! SQL wrapper of the monitor planner: `vigil._monitor_plan` validates a
//! monitor and returns its normalised options and scan query.

use super::{ColType, Column, Columns};
use crate::error::VigilError;
use crate::rollup::ident;
use crate::sqlglue::OrRaise;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

fn columns(value: &Value) -> Columns {
    let parse = |v: &Value| {
        Some(Column {
            category: ColType::from_label(v.get("category")?.as_str()?),
            sql_type: v.get("type")?.as_str()?.to_string(),
        })
    };
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.clone(), parse(v)?)))
        .collect()
}

/// `{"options": .., "query": ..}` for a monitor of `kind` with `options` over
/// `source` (quoted, qualified) whose columns are `{"name": {"category",
/// "type"}}` (see `vigil._source_columns`). Raises 22023/22004/42703/42804
/// naming the option at fault. (0.1.0's declaration; a source that is a
/// rollup's summary is planned by the five-argument form.)
#[pg_extern(immutable, strict, parallel_safe, name = "_monitor_plan")]
fn monitor_plan(
    kind: &str,
    options: crate::notify::sql::JsonArg,
    source: &str,
    columns_json: crate::notify::sql::JsonArg,
) -> JsonB {
    plan_json(kind, options, source, columns_json, None)
}

/// `vigil._monitor_plan(kind, options, source, columns, rollup)`: as above,
/// over a source that is a rollup's summary when `rollup` is its
/// definition (`vigil._source_rollup`; JSON null for any other source).
#[pg_extern(immutable, strict, parallel_safe, name = "_monitor_plan")]
fn monitor_plan_on(
    kind: &str,
    options: crate::notify::sql::JsonArg,
    source: &str,
    columns_json: crate::notify::sql::JsonArg,
    rollup: crate::notify::sql::JsonArg,
) -> JsonB {
    let rollup: Option<super::Rollup> =
        Some(rollup.get("rollup"))
            .filter(|r| !r.is_null())
            .map(|r| {
                serde_json::from_value(r).unwrap_or_else(|e| {
                    crate::sqlglue::raise(VigilError::invalid(format!("rollup: {e}")))
                })
            });
    plan_json(kind, options, source, columns_json, rollup.as_ref())
}

fn plan_json(
    kind: &str,
    options: crate::notify::sql::JsonArg,
    source: &str,
    columns_json: crate::notify::sql::JsonArg,
    rollup: Option<&super::Rollup>,
) -> JsonB {
    let options = JsonB(options.get("options"));
    let cols = columns(&columns_json.get("columns"));
    if cols.is_empty() {
        crate::sqlglue::raise(VigilError::invalid("source has no columns"));
    }
    let plan = super::plan_on(kind, &options.0, source, &cols, rollup).or_raise();
    JsonB(json!({"options": plan.options, "query": plan.query}))
}

/// `vigil.monitor_kinds()`: the kinds a monitor can be, from the one list
/// (src/monitor/kinds).
#[pg_extern(immutable, parallel_safe, name = "monitor_kinds")]
fn monitor_kinds() -> Vec<&'static str> {
    super::kinds::ALL.iter().map(|k| k.name()).collect()
}

/// `vigil._kind_default_actions()`: the recommended actions each kind
/// ships for its anomaly types (`KindDef::actions`), from which
/// `vigil.default_recommended_actions` is filled.
#[pg_extern(immutable, parallel_safe, name = "_kind_default_actions")]
fn kind_default_actions() -> TableIterator<
    'static,
    (
        name!(anomaly_type, &'static str),
        name!(severity, Option<&'static str>),
        name!(actions, Vec<&'static str>),
    ),
> {
    TableIterator::new(
        super::kinds::ALL
            .iter()
            .flat_map(|k| k.def().actions.iter())
            .map(|&(anomaly_type, severity, actions)| (anomaly_type, severity, actions.to_vec())),
    )
}

/// `vigil._monitor_kind_trigger(kind)`: the statement trigger function a
/// kind that decides on write adds to its source (`KindDef::trigger`),
/// NULL for a kind that scans or is none.
#[pg_extern(immutable, strict, parallel_safe, name = "_monitor_kind_trigger")]
fn monitor_kind_trigger(kind: &str) -> Option<&'static str> {
    super::kinds::Kind::parse(kind)
        .ok()?
        .def()
        .trigger
        .map(|t| t.function)
}

/// `format_type` of the base type of `typ` (itself unless a domain), with
/// its typmod: monitors compare and cast with base types, so no domain
/// CHECK (code its owner controls) runs on vigil's side.
#[pg_extern(stable, strict, parallel_safe, name = "_base_type")]
fn base_type(typ: pg_sys::Oid, typmod: i32) -> Option<String> {
    let mut typmod = typmod;
    // SAFETY: a syscache probe; NULL for an oid that is no type.
    let exists = unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            pg_sys::Datum::from(typ),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
    if !exists {
        return None;
    }
    // SAFETY: catalog lookups; the result is a palloc'd C string.
    Some(unsafe {
        let base = pg_sys::getBaseTypeAndTypmod(typ, &mut typmod);
        let text = pg_sys::format_type_with_typemod(base, typmod);
        std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned()
    })
}

// utils/timeout.h, which pgrx does not bind.
const USER_TIMEOUT: std::ffi::c_int = 12;
extern "C-unwind" {
    fn RegisterTimeout(
        id: std::ffi::c_int,
        handler: Option<unsafe extern "C" fn()>,
    ) -> std::ffi::c_int;
    fn enable_timeout_every(
        id: std::ffi::c_int,
        fin_time: pg_sys::TimestampTz,
        delay_ms: std::ffi::c_int,
    );
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
}

/// Our own timeout (a user slot, registered once per backend), so the
/// enclosing statement's statement_timeout stays armed as it was.
static TIMEOUT_ID: AtomicI32 = AtomicI32::new(-1);
/// Set by the handler: the cancel that follows is the monitor's timeout.
static FIRED: AtomicBool = AtomicBool::new(false);

/// Runs in the SIGALRM handler (which also sets the latch): request a query
/// cancel, as statement_timeout does. Signal-safe: an atomic and two flags.
unsafe extern "C" fn on_monitor_timeout() {
    FIRED.store(true, Ordering::SeqCst);
    // SAFETY: sig_atomic_t flags meant to be set from signal handlers.
    unsafe {
        pg_sys::InterruptPending = 1;
        pg_sys::QueryCancelPending = 1;
    }
}

/// Cancels the monitor's query once `ms` have passed, and again every half
/// second after (code that swallows one cancel gets the next); disarmed
/// when dropped, also while unwinding.
pub(super) struct MonitorTimer {
    id: std::ffi::c_int,
}

impl MonitorTimer {
    pub(super) fn start(ms: i32) -> MonitorTimer {
        // SAFETY: the backend's timeout machinery, as postgres.c uses it.
        unsafe {
            let mut id = TIMEOUT_ID.load(Ordering::SeqCst);
            if id < 0 {
                id = RegisterTimeout(USER_TIMEOUT, Some(on_monitor_timeout));
                TIMEOUT_ID.store(id, Ordering::SeqCst);
            }
            FIRED.store(false, Ordering::SeqCst);
            let at = pg_sys::GetCurrentTimestamp() + i64::from(ms) * 1000;
            enable_timeout_every(id, at, 500);
            MonitorTimer { id }
        }
    }

    pub(super) fn fired(&self) -> bool {
        FIRED.load(Ordering::SeqCst)
    }
}

impl Drop for MonitorTimer {
    fn drop(&mut self) {
        // SAFETY: as in `start`.
        unsafe { disable_timeout(self.id, false) };
        if FIRED.swap(false, Ordering::SeqCst) && !std::thread::panicking() {
            // Fired after the query finished: the cancel it requested is
            // ours and moot (a user's cancel in that same instant is lost).
            // SAFETY: the flag the handler set.
            unsafe { pg_sys::QueryCancelPending = 0 };
        }
    }
}

fn monitor_error(code: PgSqlErrorCode, message: String) -> ! {
    ereport!(ERROR, code, message);
}

/// Runs a monitor's scan query (from `vigil._monitor_plan`) and returns its
/// rows as a jsonb array. The identity rule (SPEC §3.6, README "Security
/// model"):
/// - the source is the relation pinned by oid when the monitor was written;
///   one that is gone, renamed or replaced is an error (a broken monitor),
///   never followed by name;
/// - the monitor's creator (`created_by`) must still hold SELECT on it, and
///   row-level security that applies to the creator, or a security_invoker
///   view, is refused unless the creator has the owner's rights: the query
///   runs as the owner and would report rows the creator cannot SELECT;
/// - the query runs as the source's owner, inside a security-restricted
///   operation, with a `pg_catalog`-only search path and GUC changes rolled
///   back, so views, functions, casts, policies and rules of the source act
///   with at most their owner's rights;
/// - under a statement timeout (`timeout_ms` of the monitor, else
///   `vigil.monitor_timeout_ms`) that also bounds waiting for locks; a
///   timeout is raised as 54000 naming the monitor, which the scan reports
///   as that monitor's failure (a user's cancel stays a cancel).
///
/// The query is the planner's for the stored definition (never a caller's
/// text); a caller other than a superuser must have the creator's rights.
/// The monitor row is read once: the definition planned below is the one
/// whose creator and source were checked.
#[pg_extern(volatile, strict, parallel_unsafe, name = "_monitor_run")]
fn monitor_run(monitor: i64) -> JsonB {
    let rows = run(monitor).rows.into_iter().map(|mut row| {
        if let Some(r) = row.as_object_mut() {
            let details = r.remove("details_text");
            let details = details
                .as_ref()
                .and_then(Value::as_str)
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            r.insert("details".into(), details);
        }
        row
    });
    JsonB(Value::Array(rows.collect()))
}

/// What one run of a monitor's query gave: its rows (`super::Finding`s as
/// JSON) and the options it was planned with (defaults filled in).
pub(super) struct Ran {
    pub rows: Vec<Value>,
    pub options: serde_json::Map<String, Value>,
}

/// `vigil._monitor_run`'s work, for the scan loop too.
pub(super) fn run(monitor: i64) -> Ran {
    // Every lookup below runs with the catalog-only search path: the
    // caller's path (its operators, functions) never reaches vigil's SQL.
    let _path = crate::security::Restricted::enter();
    crate::version::require();
    let row = Spi::connect(|c| {
        let r = c
            .select(
                "SELECT m.name, m.source_oid, m.source_schema::text, m.source_table::text, \
                        m.created_by::text, m.timeout_ms, r.oid, m.kind, m.options \
                 FROM vigil.monitors m LEFT JOIN pg_catalog.pg_roles r ON r.rolname = m.created_by \
                 WHERE m.id = $1",
                None,
                &[monitor.into()],
            )
            .ok()?;
        if r.is_empty() {
            return None;
        }
        let r = r.first();
        Some((
            r.get::<String>(1).ok()??,
            r.get::<pg_sys::Oid>(2).ok().flatten(),
            r.get::<String>(3).ok()??,
            r.get::<String>(4).ok()??,
            r.get::<String>(5).ok()??,
            r.get::<i32>(6).ok().flatten(),
            r.get::<pg_sys::Oid>(7).ok().flatten(),
            r.get::<String>(8).ok()??,
            r.get::<JsonB>(9).ok()??,
        ))
    });
    let Some((name, source, schema, table, created_by, timeout_ms, creator, kind, stored)) = row
    else {
        monitor_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("monitor: no monitor with id {monitor}"),
        );
    };
    let was = format!("{}.{}", ident(&schema), ident(&table));
    let Some(creator) = creator else {
        monitor_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("monitor \"{name}\": its creator role \"{created_by}\" no longer exists"),
        );
    };
    let source = source.unwrap_or(pg_sys::InvalidOid);
    // SAFETY: reads the current identity.
    let (caller, caller_super) = unsafe {
        let u = pg_sys::GetUserId();
        (u, pg_sys::superuser_arg(u))
    };
    if !caller_super && !crate::security::has_privs_of_role(caller, creator) {
        monitor_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("monitor \"{name}\": only its creator {created_by} or a superuser may run it outside a scan"),
        );
    }
    let armed_timer =
        MonitorTimer::start(timeout_ms.unwrap_or_else(crate::gucs::monitor_timeout_ms));
    let timer = &armed_timer;

    // (schema, name, owner, security_invoker view, schema oid) of the pinned oid.
    let describe = || {
        Spi::connect(|c| {
            let rows = c
                .select(
                    "SELECT n.nspname::text, c.relname::text, c.relowner, \
                            c.relkind = 'v' AND EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(c.reloptions) o \
                                WHERE o.option_name = 'security_invoker' AND o.option_value::pg_catalog.bool), \
                            c.relnamespace \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.oid = $1",
                    None,
                    &[source.into()],
                )
                .ok()?;
            if rows.is_empty() {
                return None;
            }
            let r = rows.first();
            Some((
                r.get::<String>(1).ok()??,
                r.get::<String>(2).ok()??,
                r.get::<pg_sys::Oid>(3).ok()??,
                r.get::<bool>(4).ok()?.unwrap_or(false),
                r.get::<pg_sys::Oid>(5).ok()??,
            ))
        })
    };
    if describe().is_none() {
        monitor_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("monitor \"{name}\": its source {was} (oid {}) no longer exists; recreate the monitor", source.to_u32()),
        );
    }
    let ms = timeout_ms.unwrap_or_else(crate::gucs::monitor_timeout_ms);
    // Our timer cancelling is this monitor's failure (54000, caught by the
    // scan); any other cancel stays a cancel.
    fn timed_out<T>(timer: &MonitorTimer, name: &str, ms: i32, e: pg_sys::panic::CaughtError) -> T {
        if timer.fired() {
            monitor_error(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("monitor \"{name}\" exceeded its timeout of {ms} ms (vigil.monitor_timeout_ms or vigil.set_monitor_timeout)"),
            );
        }
        e.rethrow()
    }
    // SAFETY: a lock held to the end of the transaction: the relation can
    // be neither renamed nor replaced under the query. Waiting for it
    // counts against the monitor's timeout.
    PgTryBuilder::new(|| unsafe {
        pg_sys::LockRelationOid(source, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
    })
    .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |e| {
        timed_out(timer, &name, ms, e)
    })
    .execute();
    let Some((now_schema, now_table, owner, invoker_view, namespace)) = describe() else {
        monitor_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("monitor \"{name}\": its source {was} was dropped; recreate the monitor"),
        );
    };
    if (now_schema.as_str(), now_table.as_str()) != (schema.as_str(), table.as_str()) {
        monitor_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "monitor \"{name}\": its source {was} was renamed or replaced (oid {} is now {}.{}); recreate the monitor",
                source.to_u32(),
                ident(&now_schema),
                ident(&now_table)
            ),
        );
    }
    // The query names the source: only its owner (or a superuser) may be
    // able to rename or fill its schema, or the name could be swapped.
    crate::rollup::require_trusted_schema(namespace, owner, &format!("monitor \"{name}\""));
    let readable = crate::sqlglue::read_one::<bool>(&format!(
        "SELECT pg_catalog.has_table_privilege({}::oid, {}::oid, 'SELECT')",
        creator.to_u32(),
        source.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(false);
    if !readable {
        monitor_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("monitor \"{name}\": its creator {created_by} may no longer SELECT from {was}"),
        );
    }
    let owner_rights = crate::security::has_privs_of_role(creator, owner);
    // SAFETY: a catalog check; 2 is RLS_ENABLED (RLS applies to that role).
    let rls = unsafe { pg_sys::check_enable_rls(source, creator, true) } == 2;
    if (rls || invoker_view) && !owner_rights {
        monitor_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "monitor \"{name}\": {was} has {} for {created_by}; the scan runs as the owner and would report rows {created_by} cannot SELECT",
                if rls { "row-level security" } else { "security_invoker set (a view read with the reader's rights)" }
            ),
        );
    }
    let plan = crate::sqlglue::read_one_with_args::<JsonB>(
        "SELECT vigil._monitor_plan($1, $2, pg_catalog.format('%I.%I', $3, $4), \
                vigil._source_columns($5::pg_catalog.regclass), vigil._source_rollup($5::pg_catalog.regclass))",
        &[
            kind.as_str().into(),
            stored.into(),
            schema.as_str().into(),
            table.as_str().into(),
            source.into(),
        ],
    )
    .ok()
    .flatten()
    .map(|j| j.0)
    .unwrap_or_default();
    let (Some(query), Some(options)) = (
        plan.get("query").and_then(|q| q.as_str()),
        plan.get("options"),
    ) else {
        monitor_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("monitor \"{name}\": kind {} has no scan query", plan),
        );
    };
    let planned = options.as_object().cloned().unwrap_or_default();
    let options = JsonB(options.clone());
    // details travel as jsonb's own text: through serde_json (f64) its
    // numbers would lose digits (numeric 20.00 would become 20.0).
    let wrapped = format!(
        "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(q) OPERATOR(pg_catalog.-) 'details' \
                OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('details_text', q.details::pg_catalog.text)), \
                '[]'::pg_catalog.jsonb) FROM ({query}) q"
    );
    // A pg_vigil relation (vigil.health, the health kind's source) is
    // owned by vigil's owner: its query runs as the creator instead, who
    // must be able to read it and the views it reads.
    // SAFETY: a catalog lookup.
    let vigil_schema = unsafe { pg_sys::get_namespace_oid(c"vigil".as_ptr(), true) };
    let runner = if namespace == vigil_schema {
        creator
    } else {
        owner
    };
    let guard = crate::security::Restricted::as_role(runner);
    let rows = PgTryBuilder::new(|| {
        crate::sqlglue::read_one_with_args::<JsonB>(
            &wrapped,
            &[options.into(), name.as_str().into()],
        )
    })
    .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |e| {
        timed_out(timer, &name, ms, e)
    })
    .execute();
    drop(guard);
    drop(armed_timer);
    let rows = match rows {
        Ok(Some(JsonB(Value::Array(rows)))) => rows,
        Ok(_) => Vec::new(),
        Err(e) => monitor_error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("monitor \"{name}\": {e}"),
        ),
    };
    Ran {
        rows,
        options: planned,
    }
}
