//! The AFTER INSERT trigger every rollup shares, in Rust. Single-row
//! INSERTs are the hot path of a rollup, and a PL/pgSQL SECURITY DEFINER
//! trigger spent as much time on its own machinery (the call, `SET
//! search_path` through the GUC system) as on the upsert. This one keeps
//! the upsert as an SPI plan prepared once per backend and trigger, and
//! runs it as the rollup's owner with a search path of pg_catalog only.
//!
//! The trigger's one argument names the summary table. The definition comes
//! from `vigil.rollup_defs` and must name the trigger's table as its source,
//! so the trigger cannot be pointed at another rollup's summary; the only
//! SQL it runs is generated from that definition (`Rollup::add_statement`).
//! UPDATE, DELETE and TRUNCATE keep their generated PL/pgSQL functions.

use super::Rollup;
use crate::error::{ErrorKind, VigilError};
use crate::sqlglue::raise;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// The transition table name the generated upsert reads.
pub const NEW_TABLE: &str = "vigil_new";

/// The upsert plans kept for the backend's life, and who runs them: one
/// for a single-row INSERT, one (aggregating) for any other.
#[derive(Clone, Copy)]
struct Kept {
    owner: pg_sys::Oid,
    one_row: pg_sys::SPIPlanPtr,
    many_rows: pg_sys::SPIPlanPtr,
}

thread_local! {
    /// Kept plans by trigger oid. A dropped rollup drops its trigger, so a
    /// stale entry is never looked up again; the plan cache replans a kept
    /// plan when the summary table changes.
    static KEPT: RefCell<HashMap<u32, Kept>> = RefCell::new(HashMap::new());
    /// `pg_catalog` only, allocated once in TopMemoryContext.
    static CATALOG_PATH: Cell<*mut pg_sys::OverrideSearchPath> = const { Cell::new(std::ptr::null_mut()) };
}

fn protocol_error(message: String) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        message
    );
}

/// The caller's user and search path, restored when dropped. On an error
/// the (sub)transaction abort restores both, so unwinding leaves them.
struct Caller {
    user: pg_sys::Oid,
    sec: i32,
}

impl Caller {
    fn enter() -> Caller {
        let mut user = pg_sys::InvalidOid;
        let mut sec = 0;
        let path = CATALOG_PATH.with(|p| {
            if p.get().is_null() {
                // SAFETY: TopMemoryContext lives as long as the backend.
                let fresh = unsafe {
                    pg_sys::MemoryContextAllocZero(
                        pg_sys::TopMemoryContext,
                        std::mem::size_of::<pg_sys::OverrideSearchPath>(),
                    )
                } as *mut pg_sys::OverrideSearchPath;
                // SAFETY: just allocated and zeroed (schemas = NIL).
                unsafe { (*fresh).addCatalog = true };
                p.set(fresh);
            }
            p.get()
        });
        // SAFETY: plain reads and a push the Drop below (or abort) pops.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::PushOverrideSearchPath(path);
        }
        Caller { user, sec }
    }

    fn act_as(&self, role: pg_sys::Oid) {
        // SAFETY: the same switch fmgr makes for SECURITY DEFINER functions.
        unsafe {
            pg_sys::SetUserIdAndSecContext(
                role,
                self.sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            )
        };
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // SAFETY: undoes `enter` on the success path.
        unsafe {
            pg_sys::SetUserIdAndSecContext(self.user, self.sec);
            pg_sys::PopOverrideSearchPath();
        }
    }
}

/// Owner of the summary and the upsert for the rollup the trigger names,
/// read with the catalog-only search path. The definition is read as the
/// bootstrap superuser (the writer may not see `vigil.rollup_defs`); no
/// user SQL runs then: the plan is prepared later, as the owner.
fn definition(caller: &Caller, summary_name: &str, source: pg_sys::Oid) -> (pg_sys::Oid, Rollup) {
    caller.act_as(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID));
    let found = Spi::get_three::<pg_sys::Oid, pg_sys::Oid, pg_sys::Oid>(&format!(
        "SELECT d.summary::oid, d.source::oid, c.relowner FROM vigil.rollup_defs d \
         JOIN pg_catalog.pg_class c ON c.oid = d.summary \
         WHERE d.summary = pg_catalog.to_regclass({})",
        super::literal(summary_name)
    ));
    let (summary, def_source, owner) = match found {
        Ok((Some(s), Some(src), Some(o))) => (s, src, o),
        _ => raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!("rollup trigger: \"{summary_name}\" is not a pg_vigil rollup (the argument is a schema-qualified summary table)"),
        )),
    };
    if def_source != source {
        protocol_error(format!(
            "rollup trigger: rollup \"{summary_name}\" does not summarize the table this trigger is on"
        ));
    }
    (owner, super::sql::load(summary))
}

/// Prepares and keeps `sql` of `rollup` on the current SPI connection, whose
/// transition table is registered; the caller acts as the owner.
fn prepare(rollup: &Rollup, sql: String) -> pg_sys::SPIPlanPtr {
    let sql = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    // SAFETY: a connected SPI; the plan is moved to a long-lived context.
    unsafe {
        let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            protocol_error(format!(
                "rollup trigger: preparing the upsert of {} failed (SPI code {})",
                rollup.table(),
                std::ptr::addr_of!(pg_sys::SPI_result).read()
            ));
        }
        pg_sys::SPI_keepplan(plan);
        plan
    }
}

/// `AFTER INSERT ... REFERENCING NEW TABLE AS vigil_new FOR EACH STATEMENT
/// EXECUTE FUNCTION vigil._rollup_insert('<summary>')`.
#[pg_trigger(
    sql = "CREATE FUNCTION vigil._rollup_insert() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'rollup_insert_wrapper';"
)]
fn rollup_insert<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let data = trigger.trigger_data();
    let tg = trigger.trigger();
    let new_table = tg.tgnewtable;
    let is_new_table = !new_table.is_null()
        // SAFETY: a NUL-terminated name from the trigger's catalog row.
        && unsafe { std::ffi::CStr::from_ptr(new_table) }.to_bytes() == NEW_TABLE.as_bytes();
    let event = data.tg_event;
    let insert = event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_INSERT;
    let statement = event & pg_sys::TRIGGER_EVENT_ROW == 0;
    let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
    if !(insert && statement && after && is_new_table) || tg.tgnargs != 1 {
        protocol_error(
            "vigil._rollup_insert must fire AFTER INSERT FOR EACH STATEMENT with REFERENCING NEW TABLE AS vigil_new and one argument, the summary table".into(),
        );
    }
    // SAFETY: the transition table of a firing trigger, when there is one.
    let rows = match data.tg_newtable.is_null() {
        true => 0,
        false => unsafe { pg_sys::tuplestore_tuple_count(data.tg_newtable) },
    };
    if rows == 0 {
        return Ok(None);
    }
    // SAFETY: tgnargs == 1, so tgargs holds one C string. Read only on a
    // cache miss or an error: the hot path needs no copy of it.
    let summary_name = || {
        unsafe { std::ffi::CStr::from_ptr(*tg.tgargs) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: the relation of a firing trigger is open.
    let source = unsafe { (*data.tg_relation).rd_id };
    let tgoid = tg.tgoid.to_u32();

    let caller = Caller::enter();
    // SAFETY: paired with SPI_finish below; the transition table is then
    // visible to plans prepared or run on this connection.
    unsafe {
        pg_sys::SPI_connect();
        pg_sys::SPI_register_trigger_data(data as *const _ as *mut _);
    }
    let kept = KEPT.with(|k| k.borrow().get(&tgoid).copied());
    let kept = kept.unwrap_or_else(|| {
        let (owner, rollup) = definition(&caller, &summary_name(), source);
        caller.act_as(owner);
        let k = Kept {
            owner,
            one_row: prepare(&rollup, rollup.add_row_statement(NEW_TABLE)),
            many_rows: prepare(&rollup, rollup.add_statement(NEW_TABLE, false)),
        };
        KEPT.with(|m| m.borrow_mut().insert(tgoid, k));
        k
    });
    caller.act_as(kept.owner);
    let plan = if rows == 1 {
        kept.one_row
    } else {
        kept.many_rows
    };
    // SAFETY: a kept plan without parameters; SPI_finish releases the
    // connection's memory.
    let rc = unsafe {
        let rc = pg_sys::SPI_execute_plan(plan, std::ptr::null_mut(), std::ptr::null(), false, 0);
        pg_sys::SPI_finish();
        rc
    };
    if rc != pg_sys::SPI_OK_INSERT as i32 {
        protocol_error(format!(
            "rollup trigger: the upsert of {} returned SPI code {rc}",
            summary_name()
        ));
    }
    drop(caller);
    Ok(None)
}
