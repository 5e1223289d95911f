//! The trigger every rollup shares, in Rust, for INSERT, UPDATE, DELETE and
//! TRUNCATE of its source. It keeps the generated statements
//! (`Rollup::add_statement`, `maintenance_statements`) as SPI plans prepared
//! once per backend and trigger, and runs them as the owner of the source
//! table inside a security-restricted operation with a `pg_catalog`-only
//! search path (`security::Restricted`, what REFRESH MATERIALIZED VIEW
//! does): whoever writes the source, the summary is kept with the owner's
//! rights and no code the writer controls (search_path, operators, temp
//! objects) is reached. Single-row INSERTs, the hot path, use an upsert of
//! the row's own values.
//!
//! The trigger's one argument names the summary table. The definition comes
//! from `vigil.rollup_defs` and must name the trigger's table as its source,
//! so the trigger cannot be pointed at another rollup's summary; it refuses
//! (39P01) to run unless fired AFTER … FOR EACH STATEMENT with exactly the
//! transition tables its event needs. The only SQL it runs is generated
//! from that definition.

use super::direct::Direct;
use super::Rollup;
use crate::security::Restricted;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The transition table names the generated statements read.
pub const NEW_TABLE: &str = "vigil_new";
pub const OLD_TABLE: &str = "vigil_old";

/// A kept plan, and the executor-free form of it when it has one.
type Step = (pg_sys::SPIPlanPtr, Option<Rc<RefCell<Direct>>>);

/// The plans kept for the backend's life: the statements for a single-row
/// statement (the row's own values, no aggregate; none when the event has
/// no such path) and the statements for any other, in order.
struct Kept {
    one_row: Vec<Step>,
    /// For a single-row UPDATE that leaves its row's group and time as they
    /// were (these attribute numbers of the trigger's table): one plan.
    same_group: Option<(Step, Vec<i16>)>,
    plans: Vec<pg_sys::SPIPlanPtr>,
    /// `EPOCH` when the names in the plans were last checked.
    epoch: u64,
    summary: pg_sys::Oid,
    /// The summary and source as the plans name them (quoted, qualified).
    table: String,
    source: String,
    /// The rollup's source (a partitioned parent when the trigger is on a
    /// partition) and its owner, as whom the plans run.
    def_source: pg_sys::Oid,
    owner: pg_sys::Oid,
    /// Whether a measure's filter calls a function or operator that is not
    /// immutable (user SQL is all that could depend on
    /// `default_text_search_config`: `Restricted::enter_pinned_for`).
    /// Looked at again when a function changes (`EPOCH`).
    filters: bool,
    /// Whether any measure has a filter at all.
    any_filter: bool,
    /// When the rollup removes through locks on the whole group (not
    /// `removals_subtract`) and Citus keeps none of it (`citus_kept`): its
    /// own INSERT and DELETE triggers on this trigger's table, which write
    /// the rows kept for the commit (pending.rs) with
    /// `vigil.rollup_write_at_commit`.
    at_commit: Option<(pg_sys::Oid, pg_sys::Oid)>,
    /// `FINGERPRINT` of the definition the plans were made from: a rename
    /// of a source column changes the definition (ddl.rs), so the plans
    /// are made afresh.
    fingerprint: String,
}

impl Kept {
    /// The plans for a statement of `rows` rows.
    fn pick(&self, rows: i64, data: &pg_sys::TriggerData) -> Vec<Step> {
        let plain = |plans: &[pg_sys::SPIPlanPtr]| plans.iter().map(|p| (*p, None)).collect();
        if rows != 1 || self.one_row.is_empty() {
            return plain(&self.plans);
        }
        match &self.same_group {
            // SAFETY: an UPDATE's firing trigger: both transition tables
            // hold its one row, in the trigger table's row type.
            Some((step, attnums)) if unsafe { same_values(data, attnums) } => vec![step.clone()],
            _ => self.one_row.clone(),
        }
    }
}

/// Whether the one old and the one new row of an UPDATE hold the same
/// `attnums` (both NULL, or the same bytes: a value stored differently,
/// say compressed on one side, only takes the general path). Reads the
/// transition tables through their first read pointer, rewound before and
/// after: the statements' scans of them use read pointers of their own.
/// Done in Rust because it decides which plan runs: the cheap one must not
/// first start an executor to find out.
unsafe fn same_values(data: &pg_sys::TriggerData, attnums: &[i16]) -> bool {
    let desc = (*data.tg_relation).rd_att;
    let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
    let old = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
    let new = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
    let mut same = true;
    for (store, slot) in [(data.tg_oldtable, old), (data.tg_newtable, new)] {
        pg_sys::tuplestore_select_read_pointer(store, 0);
        pg_sys::tuplestore_rescan(store);
        same &= pg_sys::tuplestore_gettupleslot(store, true, false, slot);
    }
    for &a in attnums {
        if !same {
            break;
        }
        let (mut null_a, mut null_b) = (false, false);
        let x = pg_sys::slot_getattr(old, a.into(), &mut null_a);
        let y = pg_sys::slot_getattr(new, a.into(), &mut null_b);
        let att = &attrs[(a - 1) as usize];
        same = match (null_a, null_b) {
            (true, true) => true,
            (false, false) => super::direct::image_eq(x, y, att.attbyval, att.attlen),
            _ => false,
        };
    }
    pg_sys::ExecDropSingleTupleTableSlot(old);
    pg_sys::ExecDropSingleTupleTableSlot(new);
    for store in [data.tg_oldtable, data.tg_newtable] {
        pg_sys::tuplestore_rescan(store);
    }
    same
}

/// A digest of the parts of a rollup definition its statements depend on.
const FINGERPRINT: &str =
    "pg_catalog.md5(ROW(d.time_column, d.bucket, d.group_by, d.group_source, d.measures)::text)";

fn fingerprint(summary: pg_sys::Oid) -> String {
    crate::sqlglue::read_one::<String>(&format!(
        "SELECT {FINGERPRINT} FROM vigil.rollup_defs d WHERE d.summary = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Bumped by every relation or schema invalidation this backend receives:
/// the plan cache may then look the plans' names up again, so before the
/// next run the trigger checks that they still mean the rollup's own
/// relations, in schemas nobody but the owner controls.
static EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    super::direct::forget(relid);
    super::rolling::forget(relid);
}

unsafe extern "C-unwind" fn on_syscache(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn register_callbacks() {
    thread_local! {
        static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registered once per backend; the callbacks only bump a counter.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
            // Schemas (names, and who may create in them) and functions (a
            // filter's function may stop being immutable: `Kept::filters`).
            // Types too: the direct writes (direct.rs) keep expressions
            // planned over the transition table's row type.
            for cache in [
                pg_sys::SysCacheIdentifier::NAMESPACEOID,
                pg_sys::SysCacheIdentifier::PROCOID,
                pg_sys::SysCacheIdentifier::TYPEOID,
            ] {
                pg_sys::CacheRegisterSyscacheCallback(
                    cache as std::ffi::c_int,
                    Some(on_syscache),
                    pg_sys::Datum::from(0),
                );
            }
        }
    }
}

/// Whether Citus keeps this rollup's summary or source (or the trigger is
/// on a shard): their writes stay in the statement, as Citus commits its
/// nodes' transactions itself (pending.rs is for one node's commit).
fn citus_kept(summary: pg_sys::Oid, source: pg_sys::Oid, def_source: pg_sys::Oid) -> bool {
    use super::citus;
    citus::present()
        && (citus::is_shard(source)
            || citus::is_shard(summary)
            || citus::managed(def_source).is_some()
            || citus::managed(summary).is_some())
}

/// Whether the plans' names still resolve to the rollup's summary and
/// source; raises (42501) if either schema is no longer one that only the
/// owner (or a superuser) controls. Run as the extension owner, restricted.
fn names_still_hold(guard: &Restricted, k: &Kept, trigger: u32) -> bool {
    let (source, owner) = (k.def_source, k.owner);
    guard.act_as(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID));
    let same = crate::sqlglue::read_one::<bool>(&format!(
        "SELECT pg_catalog.to_regclass({})::pg_catalog.oid = {} AND pg_catalog.to_regclass({})::pg_catalog.oid = {} \
            AND (SELECT {FINGERPRINT} FROM vigil.rollup_defs d WHERE d.summary = {}) = {} \
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep WHERE dep.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass \
                        AND dep.objid = {trigger} AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                        AND dep.refobjid = {} AND dep.refobjsubid = 0)",
        super::literal(&k.table),
        k.summary.to_u32(),
        super::literal(&k.source),
        source.to_u32(),
        k.summary.to_u32(),
        super::literal(&k.fingerprint),
        k.summary.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(false);
    if same {
        trusted_schemas(k.summary, source, owner);
    }
    same
}

fn trusted_schemas(summary: pg_sys::Oid, source: pg_sys::Oid, owner: pg_sys::Oid) {
    for (rel, what) in [
        (summary, "rollup trigger: summary"),
        (source, "rollup trigger: source"),
    ] {
        let schema = super::sql::rel_schema(rel);
        super::require_trusted_schema(schema, owner, what);
    }
}

thread_local! {
    /// Kept plans by trigger oid. A dropped rollup drops its triggers, so a
    /// stale entry is never looked up again; the plan cache replans a kept
    /// plan when the summary table changes.
    static KEPT: RefCell<HashMap<u32, Kept>> = RefCell::new(HashMap::new());
}

thread_local! {
    /// How deep this backend is in rollup triggers: a rollup of another
    /// rollup's summary fires inside that one's maintenance.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The trigger refused how it was attached or called (39P01): not a
    /// rollup's failure, so not counted.
    static REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn protocol_error(message: String) -> ! {
    REFUSED.set(true);
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        message
    );
}

/// The rollup the trigger names, read as the extension's owner (the
/// writer may not see `vigil.rollup_defs`) with the catalog-only search
/// path; no user SQL runs then: the plans are prepared later, as the owner.
/// The summary is found by oid through the trigger's `pg_depend` entry on
/// it (so renaming the summary or its schema does not break writes). Only
/// linked triggers maintain: one without the entry (made or replaced by a
/// role with TRIGGER on the source, not the owner) warns and does nothing,
/// so no trigger can make a summary count a row twice.
fn definition(
    guard: &Restricted,
    summary_name: &str,
    source: pg_sys::Oid,
    trigger: u32,
    op: &str,
) -> Option<(Rollup, pg_sys::Oid, pg_sys::Oid)> {
    guard.act_as(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID));
    let shell = super::citus::is_shell(source);
    if shell && op != "trunc" {
        // A table Citus distributes holds no rows itself: the triggers on
        // its shards keep the summary's shards (citus.rs). Its TRUNCATE
        // fires here, on the coordinator (Citus gives shards no TRUNCATE
        // triggers), and truncates the distributed summary.
        return None;
    }
    // A TRUNCATE of a distributed table on a worker (Citus lets one run
    // there) would empty the source's shards behind the summary: refused.
    let unlinked_shell = || {
        if shell {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "TRUNCATE of the source of rollup \"{summary_name}\" runs on the Citus coordinator, which keeps the summary"
                )
            );
        }
    };
    let named = super::ddl::regclass_of(summary_name).map_or(0, |o| o.to_u32());
    let found = crate::sqlglue::read_three::<pg_sys::Oid, pg_sys::Oid, bool>(&format!(
        "WITH dep AS (SELECT dep.refobjid FROM pg_catalog.pg_depend dep \
              WHERE dep.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND dep.objid = {trigger} \
                AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refobjsubid = 0 \
                AND dep.deptype = 'n' AND EXISTS (SELECT 1 FROM vigil.rollup_defs d WHERE d.summary::oid = dep.refobjid) LIMIT 1) \
         SELECT d.summary::oid, d.source::oid, EXISTS (SELECT 1 FROM dep) FROM vigil.rollup_defs d \
         WHERE d.summary::oid = COALESCE((SELECT refobjid FROM dep), {named}::pg_catalog.oid)"
    ));
    let (summary, def_source, by_oid) = match found {
        Ok((Some(s), Some(src), Some(b))) => (s, src, b),
        _ => {
            unlinked_shell();
            // No definition (the application's schema was restored without
            // vigil's configuration, and nobody with the owner's rights has
            // re-created the trigger yet): the application's write goes on,
            // the rollup falls behind, and vigil.health says so.
            warn_once(trigger, format!(
                "rollup trigger: \"{summary_name}\" has no pg_vigil definition, so it is not being maintained; \
                 re-create it with vigil.create_rollup, or restore vigil's configuration"
            ));
            return None;
        }
    };
    if def_source != source && !super::ddl::is_ancestor(def_source, source) {
        protocol_error(format!(
            "rollup trigger: rollup \"{summary_name}\" does not summarize the table this trigger is on"
        ));
    }
    if !by_oid {
        unlinked_shell();
        // Not linked in pg_depend: vigil links the triggers the rollup's
        // owner (or a restoring superuser) made, as they are created, so an
        // unlinked one was made or replaced by someone else (a role with
        // TRIGGER on the source). It maintains nothing — the summary falls
        // behind and vigil.rollups.status says so — and never double counts.
        warn_once(trigger, format!(
            "rollup trigger: \"{summary_name}\" is not maintained by this trigger ({op}): it is not one the rollup's owner made; \
             re-create the rollup, or recreate the trigger as its owner"
        ));
        return None;
    }
    // vigil links one trigger per event and table; two would count twice.
    let others = crate::sqlglue::read_one::<i64>(&format!(
        "SELECT count(*) FROM pg_catalog.pg_trigger t, pg_catalog.pg_trigger me \
         WHERE me.oid = {trigger} AND t.tgrelid = me.tgrelid AND t.tgfoid = me.tgfoid \
           AND t.tgtype = me.tgtype AND t.tgenabled <> 'D' AND t.oid <> me.oid AND t.tgqual IS NULL \
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep \
                       WHERE dep.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND dep.objid = t.oid \
                         AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refobjid = {})",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(0);
    if others > 0 {
        protocol_error(format!(
            "rollup trigger: another enabled trigger also maintains \"{summary_name}\" for this event ({op})"
        ));
    }
    Some((super::sql::load(summary), summary, def_source))
}

fn warn_once(trigger: u32, message: String) {
    thread_local! {
        static WARNED: RefCell<std::collections::HashSet<u32>> = RefCell::new(std::collections::HashSet::new());
    }
    if WARNED.with(|w| w.borrow_mut().insert(trigger)) {
        pgrx::warning!("{message}");
    }
}

/// Prepares and keeps `sql` of `rollup` on the current SPI connection, whose
/// transition tables are registered; the caller acts as the owner.
fn prepare(rollup: &Rollup, sql: String) -> pg_sys::SPIPlanPtr {
    let sql = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    // SAFETY: a connected SPI; the plan is moved to a long-lived context.
    unsafe {
        let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            protocol_error(format!(
                "rollup trigger: preparing the maintenance of {} failed (SPI code {})",
                rollup.table(),
                std::ptr::addr_of!(pg_sys::SPI_result).read()
            ));
        }
        pg_sys::SPI_keepplan(plan);
        plan
    }
}

/// The executor-free form of a row upsert of `rollup`, where it has one
/// (direct.rs): of the rows of the old or new transition table with a
/// sign (`old`, `sign`) — two of them for an UPDATE's difference.
fn direct(
    rollup: &Rollup,
    summary: pg_sys::Oid,
    rows: &[(bool, &str)],
) -> Option<Rc<RefCell<Direct>>> {
    let rows: Vec<(&str, bool, &str)> = rows
        .iter()
        .map(|&(old, sign)| (if old { OLD_TABLE } else { NEW_TABLE }, old, sign))
        .collect();
    Direct::new(rollup, summary, &rows, |sql| prepare(rollup, sql))
        .map(|d| Rc::new(RefCell::new(d)))
}

fn named(name: *const std::ffi::c_char, expected: Option<&str>) -> bool {
    match (name.is_null(), expected) {
        (true, None) => true,
        // SAFETY: a NUL-terminated name from the trigger's catalog row.
        (false, Some(e)) => unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes() == e.as_bytes(),
        _ => false,
    }
}

/// `AFTER INSERT|UPDATE|DELETE|TRUNCATE ... FOR EACH STATEMENT EXECUTE
/// FUNCTION vigil._rollup_trigger('<summary>')`, with REFERENCING NEW TABLE
/// AS vigil_new (INSERT, UPDATE) and OLD TABLE AS vigil_old (UPDATE, DELETE).
#[pg_trigger(
    sql = "CREATE FUNCTION vigil._rollup_trigger() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'rollup_trigger_wrapper';"
)]
fn rollup_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    // An error leaving the trigger fails the writer's statement: it is
    // counted (vigil.metrics rollup_trigger_errors_total) on its way out and
    // goes on unchanged. Catching an unwind costs nothing until one happens.
    // Counted once per failed write, by the outermost rollup trigger, and
    // only when a rollup's maintenance failed: the trigger refusing to be
    // attached to some other table is anyone's to provoke, not a rollup's
    // error.
    crate::metrics::sql::prepare();
    let depth = DEPTH.get();
    if depth == 0 {
        REFUSED.set(false);
    }
    DEPTH.set(depth + 1);
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            DEPTH.set(DEPTH.get().saturating_sub(1));
        }
    }
    let _leave = Leave;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| maintain(trigger))).unwrap_or_else(
        |error| {
            if depth == 0 && !REFUSED.replace(false) {
                crate::metrics::sql::count(crate::metrics::rollup_trigger_error());
            }
            std::panic::resume_unwind(error)
        },
    )
}

fn maintain<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    maintain_data(trigger.trigger_data(), None);
    Ok(None)
}

/// The trigger run on a statement kept for the commit (pending.rs): its
/// copied transition tables, of rows of `desc`, in `data`.
pub(super) fn replay(data: &pg_sys::TriggerData, desc: pg_sys::TupleDesc, summary: pg_sys::Oid) {
    let _replaying = super::sql::Replaying::enter(summary);
    maintain_data(data, Some(desc));
}

/// What the trigger does for the statement `data` describes; `replay`:
/// the statement was kept for the commit, and its rows (of this tuple
/// descriptor) are applied now.
fn maintain_data(data: &pg_sys::TriggerData, replay: Option<pg_sys::TupleDesc>) {
    // SAFETY: the trigger of a firing (or replayed) statement.
    let tg = unsafe { &*data.tg_trigger };
    let event = data.tg_event;
    let statement = event & pg_sys::TRIGGER_EVENT_ROW == 0;
    let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
    let before = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_BEFORE;
    let (op, old, new) = match event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => ("ins", None, Some(NEW_TABLE)),
        pg_sys::TRIGGER_EVENT_DELETE => ("del", Some(OLD_TABLE), None),
        pg_sys::TRIGGER_EVENT_UPDATE => ("upd", Some(OLD_TABLE), Some(NEW_TABLE)),
        _ => ("trunc", None, None),
    };
    let tables = named(tg.tgoldtable, old) && named(tg.tgnewtable, new);
    // No WHEN clause and no column list: nothing but vigil's own
    // dependency records may tie the trigger to a summary, and it sees
    // every row of its event.
    let plain = tg.tgqual.is_null() && tg.tgnattr == 0;
    // BEFORE only for TRUNCATE of a partition (checked below): its rows
    // must still be there to be subtracted.
    let timing = after || (before && op == "trunc");
    if !(statement && timing && tables && plain && (1..=2).contains(&tg.tgnargs)) {
        protocol_error(
            "vigil._rollup_trigger must fire AFTER INSERT, UPDATE, DELETE or TRUNCATE FOR EACH STATEMENT, without WHEN or a column list, with REFERENCING NEW TABLE AS vigil_new (INSERT, UPDATE) and OLD TABLE AS vigil_old (UPDATE, DELETE), and the summary table (and the definition) as arguments".into(),
        );
    }
    // SAFETY: the transition tables of a firing trigger, when there are.
    let rows = match op {
        "ins" if !data.tg_newtable.is_null() => unsafe {
            pg_sys::tuplestore_tuple_count(data.tg_newtable)
        },
        "del" if !data.tg_oldtable.is_null() => unsafe {
            pg_sys::tuplestore_tuple_count(data.tg_oldtable)
        },
        // The one-row plans read one old and one new row: a statement whose
        // tables differ in size (not one PostgreSQL makes today) takes the
        // general plans, which read whatever both hold.
        "upd" if !data.tg_oldtable.is_null() && !data.tg_newtable.is_null() => unsafe {
            let old = pg_sys::tuplestore_tuple_count(data.tg_oldtable);
            let new = pg_sys::tuplestore_tuple_count(data.tg_newtable);
            if old == new {
                old
            } else {
                old.max(new).max(2)
            }
        },
        "trunc" => 1,
        _ => 0,
    };
    if rows == 0 || !crate::version::rollups_maintained() {
        return;
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

    // Unknown rollup (plans not made yet): everything pinned.
    let filters = KEPT.with(|k| k.borrow().get(&tgoid).is_none_or(|k| k.filters));
    let guard = Restricted::enter_pinned_for(filters);
    // SAFETY: paired with SPI_finish below; the transition tables are then
    // visible to plans prepared or run on this connection.
    unsafe {
        pg_sys::SPI_connect();
        match replay {
            None => {
                pg_sys::SPI_register_trigger_data(data as *const _ as *mut _);
            }
            Some(desc) => {
                for (name, store) in [(OLD_TABLE, data.tg_oldtable), (NEW_TABLE, data.tg_newtable)]
                {
                    if !store.is_null() {
                        super::pending::register_rows(name, store, desc);
                    }
                }
            }
        }
    }
    register_callbacks();
    let epoch = EPOCH.load(std::sync::atomic::Ordering::Relaxed);
    let stale = KEPT.with(|k| k.borrow().get(&tgoid).map(|k| k.epoch != epoch));
    if stale == Some(true) {
        guard.show_citus_shards();
        let holds = KEPT.with(|m| {
            let m = m.borrow();
            let k = m.get(&tgoid).expect("present");
            names_still_hold(&guard, k, tgoid)
        });
        KEPT.with(|m| {
            let mut m = m.borrow_mut();
            if holds {
                let k = m.get_mut(&tgoid).expect("present");
                k.epoch = epoch;
                if k.any_filter && !k.filters {
                    // A function a filter calls may have been made stable
                    // or volatile since (CREATE OR REPLACE, ALTER FUNCTION).
                    // The definition is vigil's (read as in `definition`);
                    // the filters are parsed as the owner.
                    let rollup = super::sql::load(k.summary);
                    guard.act_as(k.owner);
                    k.filters = !super::sql::filters_immutable(&rollup);
                }
            } else {
                // Renamed: prepare afresh under the current names. The old
                // plans are left (not freed): one could be running further
                // up this backend's stack.
                m.remove(&tgoid);
            }
        });
    }
    let cached = KEPT.with(|k| {
        k.borrow().get(&tgoid).map(|k| {
            (
                k.pick(rows, data),
                k.owner,
                k.filters,
                k.summary,
                k.at_commit,
            )
        })
    });
    // TRUNCATE of a partition names the partition in its statements: they
    // are made for this statement only (rare) and freed after it.
    let mut ephemeral = false;
    let (plans, owner, text_search, summary, at_commit) = if let Some(cached) = cached {
        cached
    } else {
        // On a Citus worker a client backend's catalog reads would not see
        // shards (citus.rs): shown to this statement's lookups.
        guard.show_citus_shards();
        let Some((rollup, summary, def_source)) =
            definition(&guard, &summary_name(), source, tgoid, op)
        else {
            // SAFETY: paired with SPI_connect above.
            unsafe { pg_sys::SPI_finish() };
            return;
        };
        // A partition's trigger works for the partitioned source: as its
        // owner, on its summary.
        let owner = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
            "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = {}",
            def_source.to_u32()
        ))
        .ok()
        .flatten()
        .unwrap_or(pg_sys::InvalidOid);
        trusted_schemas(summary, def_source, owner);
        if source != def_source {
            trusted_schemas(summary, source, owner);
        }
        let fingerprint = fingerprint(summary);
        guard.act_as(owner);
        let (one_row, plans) = match op {
            // TRUNCATE of a partition subtracts its rows, before they go;
            // only leaves hold rows (a partitioned partition's TRUNCATE
            // fires its leaves' triggers too).
            "trunc" if def_source != source && before => {
                let leaf = crate::sqlglue::read_one::<bool>(&format!(
                    "SELECT c.relkind = 'r' FROM pg_catalog.pg_class c WHERE c.oid = {}",
                    source.to_u32()
                ))
                .ok()
                .flatten()
                .unwrap_or(false);
                // Read through the partitioned table, as its owner: the
                // partition's own policies never run.
                let rows = super::ddl::through_parent(&rollup, source);
                let statements = if leaf {
                    rollup.truncate_partition_statements(&rows, source.to_u32())
                } else {
                    Vec::new()
                };
                (
                    Vec::new(),
                    statements
                        .into_iter()
                        .map(|s| prepare(&rollup, s))
                        .collect(),
                )
            }
            "trunc" if def_source != source => (Vec::new(), Vec::new()),
            _ if before => protocol_error(
                "vigil._rollup_trigger fires BEFORE only for TRUNCATE of a partition".into(),
            ),
            "ins" => (
                vec![(
                    prepare(&rollup, rollup.add_row_statement(NEW_TABLE)),
                    direct(&rollup, summary, &[(false, "")]),
                )],
                vec![prepare(&rollup, rollup.add_statement(NEW_TABLE, false))],
            ),
            _ => (
                rollup
                    .one_row_statements(op)
                    .into_iter()
                    .zip(match op {
                        "del" => vec![(true, "-")],
                        _ => vec![(true, "-"), (false, "")],
                    })
                    .map(|(s, row)| (prepare(&rollup, s), direct(&rollup, summary, &[row])))
                    .collect(),
                rollup
                    .maintenance_statements(op)
                    .into_iter()
                    .map(|s| prepare(&rollup, s))
                    .collect(),
            ),
        };
        let same_group = (op == "upd" && rollup.removals_subtract())
            .then(|| {
                let attnums: Vec<i16> = rollup
                    .placing_columns()
                    .iter()
                    .map(|c| super::ddl::attnum(source, c))
                    .collect();
                attnums.iter().all(|a| *a > 0).then(|| {
                    (
                        (
                            prepare(&rollup, rollup.same_group_update_statement()),
                            direct(&rollup, summary, &[(false, ""), (true, "")]),
                        ),
                        attnums,
                    )
                })
            })
            .flatten();
        let k = Kept {
            one_row,
            same_group,
            plans,
            epoch,
            summary,
            table: rollup.table(),
            source: rollup.source.clone(),
            def_source,
            owner,
            filters: !super::sql::filters_immutable(&rollup),
            any_filter: rollup.measures.iter().any(|(m, _)| m.filter.is_some()),
            at_commit: (!rollup.removals_subtract() && !citus_kept(summary, source, def_source))
                .then(|| super::ddl::insert_and_delete_triggers(summary, source))
                .flatten(),
            fingerprint,
        };
        let plans = k.pick(rows, data);
        let text_search = k.filters;
        let at_commit = k.at_commit;
        if op == "trunc" && def_source != source {
            ephemeral = true;
        } else {
            KEPT.with(|m| m.borrow_mut().insert(tgoid, k));
        }
        (plans, owner, text_search, summary, at_commit)
    };
    // Rolling totals (rolling.rs) take the statement's rows at commit,
    // whether the summary is written now or then.
    if replay.is_none() && op != "trunc" && !super::rolling::of(summary).is_empty() {
        // SAFETY: the firing statement's trigger data.
        unsafe { super::rolling::keep(data, summary) };
    }
    let kept = match at_commit {
        Some(via) if op != "trunc" && replay.is_none() && crate::gucs::rollup_write_at_commit() => {
            // SAFETY: the firing statement's trigger data.
            unsafe { super::pending::keep(data, summary, via) }
        }
        _ => false,
    };
    if kept {
        // SAFETY: the connection made above.
        unsafe { pg_sys::SPI_finish() };
        return;
    }
    if replay.is_none() && super::pending::has_pending(summary) {
        // Written now (a TRUNCATE, or the setting turned off since): what
        // this transaction kept for the commit goes first, in order.
        super::pending::flush(Some(summary));
    }
    if text_search && !filters {
        guard.pin_text_search();
    }
    guard.act_as(owner);
    let _writing = super::sql::Writing::enter(summary);
    for (plan, direct) in plans {
        // A direct form busy further up this backend's stack (a filter's
        // function writing the same source) leaves it to the plan.
        // Kept rows in another layout than the table's now (ALTER TABLE
        // since) are read by the plans, through their own descriptor.
        // SAFETY: both descriptors live for this call.
        let direct = direct.filter(|_| {
            crate::gucs::rollup_direct_write()
                && replay.is_none_or(|d| unsafe {
                    super::pending::same_layout(d, (*data.tg_relation).rd_att)
                })
        });
        if let Some(mut d) = direct.as_ref().and_then(|d| d.try_borrow_mut().ok()) {
            // SAFETY: a one-row statement's trigger; connected, acting as
            // the owner.
            if unsafe { d.apply(data, &EPOCH) } {
                continue;
            }
        }
        // SAFETY: kept plans without parameters.
        let rc = unsafe {
            pg_sys::SPI_execute_plan(plan, std::ptr::null_mut(), std::ptr::null(), false, 0)
        };
        if rc < 0 {
            protocol_error(format!(
                "rollup trigger: maintaining {} returned SPI code {rc}",
                summary_name()
            ));
        }
        if ephemeral {
            // SAFETY: prepared above for this statement only.
            unsafe { pg_sys::SPI_freeplan(plan) };
        }
    }
    // SAFETY: releases the connection's memory.
    unsafe { pg_sys::SPI_finish() };
    drop(guard);
    if op == "trunc" && replay.is_none() {
        // The summary lost rows all at once: its rolling totals are
        // recomputed from it.
        super::rolling::recompute_all(summary);
    }
}
