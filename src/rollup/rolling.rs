//! Rolling totals (`vigil.create_rolling`): one row per group holding a
//! rollup's count and sum measures over its last `since` (bucket-aligned,
//! as `<rollup>_since(since)` counts), so an all-groups board reads about one
//! row per group instead of one per group and bucket.
//!
//! The totals table (`<name>_totals`, owned by the source's owner) holds
//! slot rows per group, like a summary, plus one marker row (`_slot = -1`)
//! whose `_cutoff` is the first bucket the totals count. Three parties keep
//! it exact:
//!
//! - *Writers.* The rollup trigger keeps a copy of each statement's rows
//!   (here, per subtransaction, like pending.rs). At commit (after the
//!   summaries are written) the transaction takes the rolling total's lock
//!   shared — waiting, but only ever behind the ager — reads the cutoff
//!   with a fresh snapshot, and adds the rows whose bucket is at or after
//!   it (removals negated) to a free slot row of each group
//!   (`vigil._rollup_slot` on the totals table: never waits).
//! - *The ager* (`age`, run by the worker every poll and by
//!   `vigil.age_rolling`): when the window's first bucket has moved, it
//!   takes the lock exclusively, which waits only for transactions that
//!   are committing, subtracts the summary's buckets that left the window
//!   (read with a fresh snapshot, so every writer that read the old cutoff
//!   is in them), folds each group into slot 0 and moves the cutoff. A
//!   writer that reads the new cutoff leaves those buckets out itself.
//! - *Readers* (the view `<name>`): the totals, corrected by the summary's
//!   buckets between the stored cutoff and the one `now()` gives (none
//!   while the ager keeps up; a few if it lags, or the reader's clock is
//!   behind), so the view is exact whatever the ager's delay.
//!
//! A summary's own reads of its rolling view inside a writing transaction,
//! before it commits, do not see that transaction's writes in the totals.
//! Recomputing (`recompute`: creation, `rebuild_rollup`, TRUNCATE of the
//! source) takes the lock exclusively and fills the totals from the summary.

use super::{ident, literal, Agg, Rollup};
use crate::error::{ErrorKind, VigilError};
use crate::security::Restricted;
use crate::sqlglue::raise;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// `locktag_field4` of a rolling total's lock (see the module comment).
const ROLLING_LOCK_SPACE: u16 = 0x5649;

/// One rolling total of a summary: its totals table and window.
#[derive(Debug, Clone)]
pub(super) struct Rolling {
    pub totals: pg_sys::Oid,
    /// The window, as interval text in the pinned IntervalStyle.
    pub since: String,
}

thread_local! {
    /// Rolling totals by summary (an empty list: none), dropped at the
    /// summary's relcache invalidation (`forget`), which creating or
    /// dropping one sends.
    static DEFS: RefCell<HashMap<pg_sys::Oid, Rc<Vec<Rolling>>>> = RefCell::new(HashMap::new());
    /// The rows kept for the commit (pending.rs's chunks, without triggers).
    static KEPT: RefCell<Vec<super::pending::Chunk>> = const { RefCell::new(Vec::new()) };
}

/// Forgets what is known of `relid`'s rolling totals (all on InvalidOid).
pub(super) fn forget(relid: pg_sys::Oid) {
    READERS.with(|r| mark_stale(r, relid));
    COMMITS.with(|c| mark_stale(c, relid));
    DEFS.with(|d| {
        let mut d = d.borrow_mut();
        if relid == pg_sys::InvalidOid {
            d.clear();
        } else {
            d.remove(&relid);
        }
    });
}

fn lock_tag(totals: pg_sys::Oid) -> pg_sys::LOCKTAG {
    super::sql::slot_lock_tag(totals, 0, ROLLING_LOCK_SPACE)
}

thread_local! {
    /// This transaction took a rolling total's lock (PREPARE is refused).
    static HOLDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Board reads running in this backend (`vigil_rolling_read` may be
    /// reached again from inside one, through a policy or trigger of the
    /// owner's): plans made stale meanwhile are freed only when none is.
    static READING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static UNFREED: RefCell<Vec<pg_sys::SPIPlanPtr>> = const { RefCell::new(Vec::new()) };
}

fn lock(totals: pg_sys::Oid, exclusive: bool) {
    let mode = if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    };
    let tag = lock_tag(totals);
    HOLDS.set(true);
    // SAFETY: a valid tag; waits (with deadlock detection) until granted,
    // held to the end of the transaction.
    unsafe { pg_sys::LockAcquire(&tag, mode as pg_sys::LOCKMODE, false, false) };
}

/// The lock exclusively for the ager, without queueing for it: a queued
/// exclusive request would make every committing writer wait behind it
/// while some transaction holds the lock shared for long (a
/// `verify_rolling` left open). Tries for up to 200 ms, then leaves this
/// poll's ageing to the next one (the view stays exact meanwhile).
fn try_lock_exclusive(totals: pg_sys::Oid) -> bool {
    let tag = lock_tag(totals);
    for _ in 0..200 {
        // SAFETY: a valid tag; dontWait returns at once.
        let got = unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false, true)
        };
        if got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            HOLDS.set(true);
            return true;
        }
        // SAFETY: a plain sleep; interrupts are looked at after it.
        unsafe {
            pg_sys::pg_usleep(1000);
        }
        pgrx::check_for_interrupts!();
    }
    false
}

/// Whether this transaction has taken a rolling total's lock.
pub(super) fn holds_lock() -> bool {
    HOLDS.get()
}

/// Runs `sql` with parameters `args` (type, value) under a snapshot taken
/// now, whatever the isolation level: the cutoff the ager last committed
/// and the totals as it left them are what a writer must see, not what its
/// transaction's snapshot saw. Returns the first column of the first row.
fn run_fresh(sql: &str, args: &[(pg_sys::Oid, pg_sys::Datum)]) -> Option<pg_sys::Datum> {
    let c = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
    let mut values: Vec<pg_sys::Datum> = args.iter().map(|a| a.1).collect();
    // SAFETY: a connection of our own, finished below (a timestamptz, all
    // this returns, is by value: nothing is read from SPI's memory after).
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(c.as_ptr(), types.len() as i32, types.as_mut_ptr());
        if plan.is_null() {
            error!("rolling total: preparing a statement failed: {sql}");
        }
        let out = execute_fresh(plan, &mut values);
        pg_sys::SPI_freeplan(plan);
        pg_sys::SPI_finish();
        out
    }
}

/// The JSON text `sql` returns, read under a snapshot taken now.
fn fresh_json(sql: &str) -> serde_json::Value {
    let c = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    // SAFETY: a connection of our own; the text is copied out before it
    // ends.
    let text = unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(c.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            error!("rolling total: preparing a statement failed: {sql}");
        }
        let d = execute_fresh(plan, &mut []);
        let text = d.and_then(|d| String::from_datum(d, false));
        pg_sys::SPI_freeplan(plan);
        pg_sys::SPI_finish();
        text
    };
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The rolling totals of `summary`, read as the extension's owner (the
/// caller's guard acts as whom it likes afterwards).
pub(super) fn of(summary: pg_sys::Oid) -> Rc<Vec<Rolling>> {
    if let Some(d) = DEFS.with(|d| d.borrow().get(&summary).cloned()) {
        return d;
    }
    // Read fresh: a REPEATABLE READ writer whose snapshot is older than a
    // create_rolling must still find it (and must not keep "none" for the
    // backend's life).
    let guard = Restricted::as_role(crate::security::extension_owner());
    let rows = fresh_json(&format!(
        "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(r.totals::pg_catalog.oid::pg_catalog.int8, r.since::pg_catalog.text) \
                ORDER BY r.totals::pg_catalog.oid), '[]')::pg_catalog.text \
         FROM vigil.rolling_defs r WHERE r.summary::pg_catalog.oid = {}",
        summary.to_u32()
    ));
    drop(guard);
    let defs: Vec<Rolling> = rows
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some(Rolling {
                        totals: pg_sys::Oid::from(r.get(0)?.as_u64()? as u32),
                        since: r.get(1)?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let defs = Rc::new(defs);
    DEFS.with(|d| d.borrow_mut().insert(summary, defs.clone()));
    defs
}

/// (totals, view) of every rolling total of `summary`, read as the
/// extension's owner.
pub(super) fn objects_of(summary: pg_sys::Oid) -> Vec<(pg_sys::Oid, pg_sys::Oid)> {
    let guard = Restricted::as_role(crate::security::extension_owner());
    let rows = crate::sqlglue::read_one::<pgrx::JsonB>(&format!(
        "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(r.totals::pg_catalog.oid::pg_catalog.int8, \
                r.view::pg_catalog.oid::pg_catalog.int8)), '[]') FROM vigil.rolling_defs r WHERE r.summary::pg_catalog.oid = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
    .map(|j| j.0)
    .unwrap_or_default();
    drop(guard);
    rows.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some((
                        pg_sys::Oid::from(r.get(0)?.as_u64()? as u32),
                        pg_sys::Oid::from(r.get(1)?.as_u64()? as u32),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the rows of the statement `data` fired for (a rollup trigger of
/// `summary`, which has rolling totals) for the commit.
pub(super) unsafe fn keep(data: &pg_sys::TriggerData, summary: pg_sys::Oid) {
    super::pending::register();
    let none = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    KEPT.with(|k| super::pending::keep_into(&mut k.borrow_mut(), data, summary, none));
    if super::pending::flushed() {
        // After the commit's own pass (another extension's commit
        // callback wrote the source): written at once.
        apply(None);
    }
}

/// Whether rows are kept for the commit.
pub(super) fn has_kept() -> bool {
    KEPT.with(|k| k.borrow().iter().any(|c| c.applied.is_none()))
}

/// What writing a summary's rolling totals at commit needs, kept for the
/// backend's life: the rollup (count and sum measures), its owner, and per
/// totals table its name and the prepared statements (the cutoff's read,
/// and the additions and removals of each table's kept rows). Made stale by
/// an invalidation of the summary, its source or a totals table (names,
/// definition, owner may have changed), and made afresh at the next commit;
/// the plans are freed then, never inside the callback.
struct Commit {
    rollup: Rollup,
    owner: pg_sys::Oid,
    tables: HashMap<pg_sys::Oid, String>,
    /// Each totals table's owner (an OWNER TO invalidates it).
    table_owners: HashMap<pg_sys::Oid, pg_sys::Oid>,
    cutoffs: HashMap<pg_sys::Oid, pg_sys::SPIPlanPtr>,
    /// (totals, table the rows came from, removals) → plan, with the row
    /// layout it was prepared for.
    writes: HashMap<(pg_sys::Oid, pg_sys::Oid, bool), (pg_sys::SPIPlanPtr, pg_sys::TupleDesc)>,
    relations: Vec<pg_sys::Oid>,
    stale: bool,
}

impl Commit {
    fn free(self) {
        // SAFETY: kept plans and descriptors of ours, not running now.
        unsafe {
            for p in self.cutoffs.into_values() {
                pg_sys::SPI_freeplan(p);
            }
            for (p, d) in self.writes.into_values() {
                pg_sys::SPI_freeplan(p);
                pg_sys::FreeTupleDesc(d);
            }
        }
    }
}

thread_local! {
    static COMMITS: RefCell<HashMap<pg_sys::Oid, Commit>> = RefCell::new(HashMap::new());
}

/// What a relation's invalidation makes stale (`Commit`, `Reader`).
trait Kept {
    fn relations(&self) -> &[pg_sys::Oid];
    fn set_stale(&mut self);
}

impl Kept for Commit {
    fn relations(&self) -> &[pg_sys::Oid] {
        &self.relations
    }
    fn set_stale(&mut self) {
        self.stale = true;
    }
}

/// Marks what `kept` holds of `relid` (everything on InvalidOid) stale.
fn mark_stale<K: Kept>(kept: &RefCell<HashMap<pg_sys::Oid, K>>, relid: pg_sys::Oid) {
    for k in kept.borrow_mut().values_mut() {
        if relid == pg_sys::InvalidOid || k.relations().contains(&relid) {
            k.set_stale();
        }
    }
}

/// The commit context of `summary` (see `Commit`), made if missing or
/// stale; None when the rollup is gone. The caller's guard acts as whom it
/// likes afterwards.
fn commit_context(guard: &Restricted, summary: pg_sys::Oid, defs: &[Rolling]) -> bool {
    let fresh = COMMITS.with(|c| c.borrow().get(&summary).is_some_and(|k| !k.stale));
    if fresh {
        return true;
    }
    if let Some(old) = COMMITS.with(|c| c.borrow_mut().remove(&summary)) {
        old.free();
    }
    guard.act_as(crate::security::extension_owner());
    let Some(source) = source_of(summary) else {
        return false;
    };
    let rollup = counted(&super::sql::load(summary));
    let owner = super::sql::rel_owner(source);
    let mut relations = vec![summary, source];
    let mut tables = HashMap::new();
    let mut table_owners = HashMap::new();
    for def in defs {
        relations.push(def.totals);
        tables.insert(def.totals, relation_text(def.totals));
        table_owners.insert(def.totals, super::sql::rel_owner(def.totals));
    }
    COMMITS.with(|c| {
        c.borrow_mut().insert(
            summary,
            Commit {
                rollup,
                owner,
                tables,
                table_owners,
                cutoffs: HashMap::new(),
                writes: HashMap::new(),
                relations,
                stale: false,
            },
        )
    });
    true
}

/// Prepares `sql` (parameter types `types`) and keeps it.
unsafe fn keep_plan(sql: &str, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    let c = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    let plan = pg_sys::SPI_prepare(c.as_ptr(), types.len() as i32, types.as_mut_ptr());
    if plan.is_null() {
        error!("rolling total: preparing a statement failed: {sql}");
    }
    pg_sys::SPI_keepplan(plan);
    plan
}

/// Runs `plan` with `args` under a snapshot taken now (see `run_fresh`);
/// the first column of the first row.
unsafe fn execute_fresh(
    plan: pg_sys::SPIPlanPtr,
    args: &mut [pg_sys::Datum],
) -> Option<pg_sys::Datum> {
    let nulls: Vec<std::ffi::c_char> = vec![b' ' as std::ffi::c_char; args.len()];
    let rc = pg_sys::SPI_execute_snapshot(
        plan,
        args.as_mut_ptr(),
        nulls.as_ptr(),
        pg_sys::GetLatestSnapshot(),
        std::ptr::null_mut(),
        false,
        true,
        0,
    );
    if rc < 0 {
        error!("rolling total: a statement failed at commit (SPI code {rc})");
    }
    if pg_sys::SPI_processed > 0 && !pg_sys::SPI_tuptable.is_null() {
        let table = pg_sys::SPI_tuptable;
        let mut null = false;
        let d = pg_sys::SPI_getbinval(*(*table).vals, (*table).tupdesc, 1, &mut null);
        if !null {
            return Some(d);
        }
    }
    None
}

/// One rolling total a commit writes: (summary, its rolling totals, this
/// one, the kept chunks of the summary).
type Work = (pg_sys::Oid, Rc<Vec<Rolling>>, Rolling, Rc<Vec<usize>>);

/// Writes the kept rows (of `only`, or all) into the rolling totals,
/// summary by summary in oid order, each total in oid order; marks them
/// applied in the current subtransaction. The statements are kept per
/// backend (`Commit`): a commit runs them, it does not plan them.
pub(super) fn apply(only: Option<pg_sys::Oid>) {
    // At commit no statement is running, so no snapshot is active: the
    // catalog reads need one (the writes take their own, fresh).
    let _snapshot = super::pending::ActiveSnapshot::ensure();
    // SAFETY: inside a transaction.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let mut summaries: Vec<pg_sys::Oid> = KEPT.with(|k| {
        k.borrow()
            .iter()
            .filter(|c| c.applied.is_none() && only.is_none_or(|s| s == c.summary))
            .map(|c| c.summary)
            .collect()
    });
    summaries.sort_by_key(|s| s.to_u32());
    summaries.dedup();
    // Every rolling total this transaction writes, in one global order (the
    // totals' oids, as the ager takes them), whatever summaries they are
    // of: two orders could close a cycle with an ager.
    let mut work: Vec<Work> = Vec::new();
    for summary in summaries {
        let idx: Vec<usize> = KEPT.with(|k| {
            let mut k = k.borrow_mut();
            let idx: Vec<usize> = (0..k.len())
                .filter(|&i| k[i].applied.is_none() && k[i].summary == summary)
                .collect();
            for &i in &idx {
                k[i].applied = Some(subxact);
            }
            idx
        });
        let defs = of(summary);
        let idx = Rc::new(idx);
        for def in defs.iter() {
            work.push((summary, defs.clone(), def.clone(), idx.clone()));
        }
    }
    work.sort_by_key(|w| w.2.totals.to_u32());
    for (summary, defs, def, idx) in work {
        let idx: &[usize] = &idx;
        let guard = Restricted::enter_pinned();
        {
            // Locked as any writer locks a table it writes (which takes in
            // the invalidations a DROP or a rename sent), then looked for:
            // one dropped meanwhile is skipped, not an error at commit.
            // SAFETY: a relation lock held to the end of the transaction,
            // and a catalog cache lookup.
            let there = unsafe {
                pg_sys::LockRelationOid(def.totals, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
                pg_sys::SearchSysCacheExists(
                    pg_sys::SysCacheIdentifier::RELOID as i32,
                    pg_sys::Datum::from(def.totals),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            };
            if !there || !commit_context(&guard, summary, &defs) {
                continue;
            }
            let (owner, table_owner) = COMMITS.with(|c| {
                let c = c.borrow();
                let k = &c[&summary];
                (k.owner, k.table_owners.get(&def.totals).copied())
            });
            if table_owner != Some(owner) {
                guard.act_as(crate::security::extension_owner());
                // Handed to another role on its own (the source's OWNER TO
                // refuses that): the application's commit goes on, the
                // total falls behind, and verify_rolling says so.
                pgrx::warning!(
                    "rolling total {}: its table does not belong to the source's owner, so this commit's rows are not in it; \
                     hand it back (ALTER TABLE … OWNER TO) and run vigil.rebuild_rollup",
                    relation_text(def.totals)
                );
                continue;
            }
            lock(def.totals, false);
            guard.act_as(owner);
            let _writing = super::sql::Writing::enter(def.totals);
            // SAFETY: a connection of our own, finished below; the kept
            // stores and descriptors live until the transaction ends.
            unsafe {
                pg_sys::SPI_connect();
                let cutoff_plan =
                    COMMITS.with(|c| c.borrow()[&summary].cutoffs.get(&def.totals).copied());
                let cutoff_plan = cutoff_plan.unwrap_or_else(|| {
                    let table = COMMITS.with(|c| c.borrow()[&summary].tables[&def.totals].clone());
                    let plan = keep_plan(&cutoff_query(&table), &mut []);
                    COMMITS.with(|c| {
                        c.borrow_mut()
                            .get_mut(&summary)
                            .expect("made above")
                            .cutoffs
                            .insert(def.totals, plan)
                    });
                    plan
                });
                let cutoff =
                    execute_fresh(cutoff_plan, &mut []).unwrap_or(pg_sys::Datum::from(i64::MIN));
                for &i in idx {
                    let (relid, desc, adds, removes) = KEPT.with(|k| {
                        let c = &k.borrow()[i];
                        (c.relid, c.desc, c.adds, c.removes)
                    });
                    for (store, removal) in [(adds, false), (removes, true)] {
                        if store.is_null() {
                            continue;
                        }
                        let desc = super::pending::named_now(desc, relid);
                        super::pending::register_rows("vigil_rolling_rows", store, desc);
                        let key = (def.totals, relid, removal);
                        let kept = COMMITS.with(|c| {
                            c.borrow()[&summary]
                                .writes
                                .get(&key)
                                .filter(|(_, d)| super::pending::same_layout(*d, desc))
                                .map(|(p, _)| *p)
                        });
                        let plan = kept.unwrap_or_else(|| {
                            let sql = COMMITS.with(|c| {
                                let c = c.borrow();
                                let k = &c[&summary];
                                add_statement(
                                    &k.rollup,
                                    &k.tables[&def.totals],
                                    "vigil_rolling_rows",
                                    if removal { "-" } else { "" },
                                )
                            });
                            let plan = keep_plan(&sql, &mut [pg_sys::TIMESTAMPTZOID]);
                            let copy = super::pending::in_transaction(|| {
                                let cx = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
                                let d = pg_sys::CreateTupleDescCopy(desc);
                                pg_sys::MemoryContextSwitchTo(cx);
                                d
                            });
                            COMMITS.with(|c| {
                                let mut c = c.borrow_mut();
                                let k = c.get_mut(&summary).expect("made above");
                                if let Some((p, d)) = k.writes.insert(key, (plan, copy)) {
                                    // A layout this table no longer has.
                                    pg_sys::SPI_freeplan(p);
                                    pg_sys::FreeTupleDesc(d);
                                }
                            });
                            plan
                        });
                        execute_fresh(plan, &mut [cutoff]);
                        pg_sys::SPI_unregister_relation(c"vigil_rolling_rows".as_ptr());
                    }
                }
                pg_sys::SPI_finish();
            }
            guard.act_as(crate::security::extension_owner());
        }
        drop(guard);
    }
}

/// The rollup with its count and sum measures only: what a rolling total
/// holds.
fn counted(r: &Rollup) -> Rollup {
    let mut r = r.clone();
    r.measures
        .retain(|(m, _)| matches!(m.agg, Agg::Count | Agg::Sum));
    r
}

fn exists(rel: pg_sys::Oid) -> bool {
    crate::sqlglue::read_one::<bool>(&format!(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {})",
        rel.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn relation_text(rel: pg_sys::Oid) -> String {
    crate::sqlglue::read_one::<String>(&format!(
        "SELECT {}::pg_catalog.regclass::pg_catalog.text",
        rel.to_u32()
    ))
    .ok()
    .flatten()
    .expect("the relation exists")
}

/// The source of rollup `summary` (read as whoever may read vigil's
/// catalog: the caller acts as the extension's owner).
fn source_of(summary: pg_sys::Oid) -> Option<pg_sys::Oid> {
    crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::pg_catalog.oid FROM vigil.rollup_defs d WHERE d.summary::pg_catalog.oid = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten()
}

/// The marker row's cutoff of totals table `table`.
fn cutoff_query(table: &str) -> String {
    format!(
        "SELECT t.{} FROM {table} t WHERE t.{} OPERATOR(pg_catalog.=) -1",
        ident("_cutoff"),
        ident("_slot")
    )
}

/// The marker row's cutoff, read fresh; `-infinity` without one (the
/// totals then count everything, and `verify_rolling` reports it).
fn cutoff_of(table: &str) -> pg_sys::Datum {
    run_fresh(&cutoff_query(table), &[]).unwrap_or(pg_sys::Datum::from(i64::MIN))
}

/// Group columns of the totals (as the summary names them), `k` of them.
fn group_list(r: &Rollup, alias: &str) -> Vec<String> {
    r.group_by
        .iter()
        .map(|(g, _)| format!("{alias}{}", ident(g)))
        .collect()
}

fn positions(n: usize) -> String {
    (1..=n)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn measure_names(r: &Rollup) -> Vec<String> {
    r.measures.iter().map(|(m, _)| ident(&m.name)).collect()
}

/// The conflict key of the totals' rows.
fn row_key(r: &Rollup) -> String {
    let mut k = group_list(r, "");
    k.push(ident("_slot"));
    k.join(", ")
}

/// `INSERT … ON CONFLICT` adding the rows of `from` (aliased `r`) whose
/// bucket is at or after `$1` to the totals `table`, negated with `sign`.
pub(super) fn add_statement(r: &Rollup, table: &str, from: &str, sign: &str) -> String {
    let k = r.group_by.len();
    let mut cols = r.group_columns("r");
    cols.push(format!("{sign}pg_catalog.count(*) AS {}", ident("_rows")));
    for (m, t) in &r.measures {
        cols.push(format!(
            "{sign}({}) AS {}",
            Rollup::measure_expr(m, t),
            ident(&m.name)
        ));
    }
    let group = if k == 0 {
        String::new()
    } else {
        format!(" GROUP BY {}", positions(k))
    };
    let order = if k == 0 {
        String::new()
    } else {
        format!(" ORDER BY {}", positions(k))
    };
    let mut names = group_list(r, "");
    names.push(ident("_rows"));
    names.extend(measure_names(r));
    let mut sets = vec![format!("{c} = s.{c} + excluded.{c}", c = ident("_rows"))];
    sets.extend(
        measure_names(r)
            .into_iter()
            .map(|c| format!("{c} = s.{c} + excluded.{c}")),
    );
    format!(
        "INSERT INTO {table} AS s ({}, {slot}) \
         SELECT d.*, vigil._rollup_slot({}::pg_catalog.regclass, {}) FROM (\
           SELECT {} FROM {from} r WHERE {} AND {} >= $1{group} HAVING pg_catalog.count(*) > 0\
         ) d{order} ON CONFLICT ({}) DO UPDATE SET {}",
        names.join(", "),
        literal(table),
        r.key_hash(group_list(r, "d.")),
        cols.join(", "),
        r.has_time(),
        r.bucket_expr("r"),
        row_key(r),
        sets.join(", "),
        slot = ident("_slot"),
    )
}

/// `<alias>.group…, 0, sum(<alias>._rows), sum(<alias>.measure)…`: a group's
/// rows added up into its slot 0 row (`slot_names` order).
fn slot0_sums(r: &Rollup, alias: &str) -> Vec<String> {
    let mut sums = group_list(r, &format!("{alias}."));
    sums.push("0".into());
    sums.extend(
        std::iter::once(ident("_rows"))
            .chain(measure_names(r))
            .map(|c| format!("pg_catalog.sum({alias}.{c})")),
    );
    sums
}

/// The group columns, `_slot`, `_rows`, the measures.
fn slot_names(r: &Rollup) -> Vec<String> {
    let mut names = group_list(r, "");
    names.push(ident("_slot"));
    names.push(ident("_rows"));
    names.extend(measure_names(r));
    names
}

/// ` GROUP BY 1, …, k` (nothing without group columns).
fn group_by_positions(k: usize) -> String {
    if k == 0 {
        String::new()
    } else {
        format!(" GROUP BY {}", positions(k))
    }
}

/// The statements that fill `table` afresh from the summary's buckets at or
/// after `$1`, with the marker row.
pub(super) fn recompute_statements(r: &Rollup, table: &str) -> Vec<String> {
    let names = slot_names(r);
    let sums = slot0_sums(r, "x");
    let group = group_by_positions(r.group_by.len());
    vec![
        format!("DELETE FROM {table}"),
        format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {} x WHERE x.{} >= $1{group} HAVING pg_catalog.sum(x.{}) <> 0",
            names.join(", "),
            sums.join(", "),
            r.table(),
            ident("bucket"),
            ident("_rows"),
        ),
        format!(
            "INSERT INTO {table} ({}, {}, {}) VALUES (-1, 0, $1)",
            ident("_slot"),
            ident("_rows"),
            ident("_cutoff")
        ),
    ]
}

/// The statements that age `table` from cutoff `$1` to `$2`: each group's
/// slot rows folded into slot 0 less the summary's buckets in [$1, $2),
/// emptied groups deleted, the marker moved.
pub(super) fn age_statements(r: &Rollup, table: &str) -> Vec<String> {
    let k = r.group_by.len();
    let names = slot_names(r);
    let mut both = group_list(r, "");
    both.push(ident("_rows"));
    both.extend(measure_names(r));
    let negated: Vec<String> = group_list(r, "x.")
        .into_iter()
        .chain(
            std::iter::once(ident("_rows"))
                .chain(measure_names(r))
                .map(|c| format!("-x.{c}")),
        )
        .collect();
    let sums = slot0_sums(r, "u");
    let group = group_by_positions(k);
    let mut sets = vec![format!("{c} = excluded.{c}", c = ident("_rows"))];
    sets.extend(
        measure_names(r)
            .into_iter()
            .map(|c| format!("{c} = excluded.{c}")),
    );
    let slot = ident("_slot");
    vec![
        format!(
            "INSERT INTO {table} AS s ({}) SELECT {} FROM (\
               SELECT {} FROM {table} t WHERE t.{slot} >= 0 \
               UNION ALL SELECT {} FROM {} x WHERE x.{b} >= $1 AND x.{b} < $2\
             ) u{group} HAVING pg_catalog.count(*) > 0 ON CONFLICT ({}) DO UPDATE SET {}",
            names.join(", "),
            sums.join(", "),
            both.iter()
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            negated.join(", "),
            r.table(),
            row_key(r),
            sets.join(", "),
            b = ident("bucket"),
        ),
        format!(
            "DELETE FROM {table} t WHERE t.{slot} > 0 OR (t.{slot} = 0 AND t.{} = 0)",
            ident("_rows")
        ),
        format!(
            "UPDATE {table} SET {} = $2 WHERE {slot} = -1",
            ident("_cutoff")
        ),
    ]
}

/// `CREATE TABLE` of the totals: the summary's group columns, `_slot`,
/// `_rows`, the count and sum measures, `_cutoff` (the marker row's).
pub(super) fn create_table(r: &Rollup, table: &str) -> String {
    let mut cols: Vec<String> = r
        .summary_columns()
        .into_iter()
        .filter(|(name, _, _, _)| name != "bucket")
        .map(|(name, ty, collate, tail)| {
            let collate = collate.map(|c| format!(" COLLATE {c}")).unwrap_or_default();
            format!("{} {ty}{collate}{tail}", ident(&name))
        })
        .collect();
    cols.push(format!("{} timestamptz", ident("_cutoff")));
    format!(
        "CREATE TABLE {table} (\n    {},\n    UNIQUE NULLS NOT DISTINCT ({})\n)",
        cols.join(",\n    "),
        row_key(r)
    )
}

/// The first bucket of the window `since` at `now()`.
fn window_start(r: &Rollup, since: &str) -> String {
    format!(
        "pg_catalog.date_bin({}::pg_catalog.interval, pg_catalog.now() OPERATOR(pg_catalog.-) {}::pg_catalog.interval, {})",
        literal(&r.bucket),
        literal(since),
        super::BUCKET_ORIGIN
    )
}

/// The view: one row per group, as `<rollup>_since(since)` gives it for the
/// count and sum measures, from the totals corrected by the summary's
/// buckets between the stored cutoff and the window's start now.
///
/// Adding up a group's slot rows for every group is most of a board's
/// read (per-group aggregate states), and the ager keeps each group in one
/// row (slot 0) except for slot rows written since its last poll. So
/// `extra` holds the rows that need adding up — slot rows past 0, and the
/// corrections, both read through partial or bucket indexes and empty
/// while the ager keeps up — and only the groups in it (`dirty`) are
/// aggregated; every other group's slot 0 row is the answer as it stands.
/// (`EXISTS (SELECT FROM dirty)` is a one-time filter: with nothing to add
/// up, the second branch reads nothing.)
pub(super) fn board_query(r: &Rollup, table: &str, since: &str) -> String {
    let (_, select, group) = r.since_parts();
    let cols: Vec<String> = group_list(r, "")
        .into_iter()
        .chain(std::iter::once(ident("_rows")))
        .chain(measure_names(r))
        .collect();
    let plain = |a: &str| {
        cols.iter()
            .map(|c| format!("{a}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let negated = group_list(r, "x.")
        .into_iter()
        .chain(
            std::iter::once(ident("_rows"))
                .chain(measure_names(r))
                .map(|c| format!("OPERATOR(pg_catalog.-) x.{c}")),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let start = window_start(r, since);
    let b = ident("bucket");
    let slot = ident("_slot");
    let cut = ident("_cutoff");
    // The cutoff as a scalar subquery (an init plan): the summary's bucket
    // index then serves both corrections as ranges.
    let cutoff =
        format!("(SELECT c.{cut} FROM {table} c WHERE c.{slot} OPERATOR(pg_catalog.=) -1)");
    let corrections = format!(
        "SELECT {negated} FROM {summary} x \
           WHERE x.{b} OPERATOR(pg_catalog.>=) {cutoff} AND x.{b} OPERATOR(pg_catalog.<) {start} \
         UNION ALL SELECT {} FROM {summary} x \
           WHERE x.{b} OPERATOR(pg_catalog.>=) {start} AND x.{b} OPERATOR(pg_catalog.<) {cutoff}",
        plain("x"),
        summary = r.table(),
    );
    if r.group_by.is_empty() {
        // One group: nothing to spare.
        return format!(
            "SELECT {} FROM (\
               SELECT {} FROM {table} t WHERE t.{slot} OPERATOR(pg_catalog.>=) 0 UNION ALL {corrections}\
             ) s{group}",
            select.join(", "),
            plain("t"),
        );
    }
    // How the slot 0 row `t` is matched with a dirty group `d`: by `=` when
    // every group type hashes (a hash join, whatever the number of dirty
    // groups), groups with a NULL column then always taking the added-up
    // branch (`nulls`, few; a partial index finds them); else NULL-safe,
    // row by row.
    let hashed = r.group_by.iter().all(|(_, t)| t.hashable);
    let same = |a: &str, d: &str| {
        // (The type's own `=`, as the rollup's statements compare keys.)
        let op = if hashed { "=" } else { "IS NOT DISTINCT FROM" };
        group_list(r, "")
            .iter()
            .map(|g| format!("{d}.{g} {op} {a}.{g}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let any_null = group_list(r, "t.")
        .iter()
        .map(|g| format!("{g} IS NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let (not_null, nulls) = if hashed {
        (
            format!(" AND NOT ({any_null})"),
            format!(
                "SELECT {} FROM {table} t WHERE t.{slot} OPERATOR(pg_catalog.=) 0 AND ({any_null}) UNION ALL ",
                plain("t")
            ),
        )
    } else {
        (String::new(), String::new())
    };
    // A group's row as `since_parts` gives the sum of its rows.
    let mut as_is: Vec<String> = group_list(r, "t.");
    as_is.push(format!("t.{}", ident("_rows")));
    for (m, _) in r.measures.iter().filter(|(m, _)| m.counts_for.is_none()) {
        let c = ident(&m.name);
        as_is.push(match m.agg {
            Agg::Sum => format!(
                "CASE WHEN t.{} OPERATOR(pg_catalog.>) 0 THEN t.{c} END",
                ident(r.nonnull_of(&m.name))
            ),
            _ => format!("t.{c}"),
        });
    }
    format!(
        "WITH extra AS MATERIALIZED (\
           SELECT {} FROM {table} t WHERE t.{slot} OPERATOR(pg_catalog.>) 0 UNION ALL {corrections}), \
         dirty AS MATERIALIZED (SELECT DISTINCT {} FROM extra) \
         SELECT {} FROM {table} t \
           WHERE t.{slot} OPERATOR(pg_catalog.=) 0 AND t.{rows} OPERATOR(pg_catalog.>) 0{not_null} \
             AND NOT EXISTS (SELECT FROM dirty d WHERE {}) \
         UNION ALL SELECT {} FROM (\
           {nulls}SELECT {} FROM {table} t WHERE EXISTS (SELECT FROM dirty) \
             AND t.{slot} OPERATOR(pg_catalog.=) 0{not_null} AND EXISTS (SELECT FROM dirty d WHERE {}) \
           UNION ALL SELECT * FROM extra\
         ) s{group}",
        plain("t"),
        group_list(r, "").join(", "),
        as_is.join(", "),
        same("t", "d"),
        select.join(", "),
        plain("t"),
        same("t", "d"),
        rows = ident("_rows"),
    )
}

/// The view: `vigil._rolling_read(<totals>)` (the board query over a plan
/// kept per session) with the columns `<rollup>_since(since)` gives for the
/// count and sum measures.
pub(super) fn view_sql(r: &Rollup, view: &str, table: &str) -> String {
    let (out_cols, _, _) = r.since_parts();
    let collations: HashMap<String, String> = r
        .group_by
        .iter()
        .filter_map(|(g, t)| t.collate.clone().map(|c| (ident(g), c)))
        .collect();
    let names = out_cols
        .iter()
        .map(|(c, _)| c.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let typed = out_cols
        .iter()
        .map(|(c, t)| match collations.get(c) {
            Some(coll) => format!("{c} {t} COLLATE {coll}"),
            None => format!("{c} {t}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE VIEW {view} ({names}) AS SELECT * FROM vigil._rolling_read({}::pg_catalog.regclass) AS r({typed})",
        literal(table)
    )
}

/// A board query kept for the session (`vigil_rolling_read`).
struct Reader {
    plan: pg_sys::SPIPlanPtr,
    view: pg_sys::Oid,
    owner: pg_sys::Oid,
    /// Set by an invalidation of the totals, the summary or the view: made
    /// afresh (names looked up again) at the next read, and this one freed
    /// then (never inside the callback, which may come while it runs).
    stale: bool,
    relations: [pg_sys::Oid; 4],
}

thread_local! {
    static READERS: RefCell<HashMap<pg_sys::Oid, Reader>> = RefCell::new(HashMap::new());
}

impl Kept for Reader {
    fn relations(&self) -> &[pg_sys::Oid] {
        &self.relations
    }
    fn set_stale(&mut self) {
        self.stale = true;
    }
}

/// `vigil._rolling_read(totals regclass) RETURNS SETOF record`: the rows of
/// rolling total `totals`'s view, for a caller with SELECT on that view
/// (the view is how readers are granted it; called any other way, the same
/// right is asked). Runs the board query as the source's owner, restricted,
/// over a plan kept for the session, so a read plans nothing but a
/// function scan. STABLE: it reads with the calling statement's snapshot.
///
/// # Safety
/// Called by PostgreSQL as a set-returning function in materialize mode.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn vigil_rolling_read(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = unsafe { (*fcinfo).args.as_slice(1) };
    let totals = pg_sys::Oid::from(args[0].value.value() as u32);
    let rsinfo = unsafe { (*fcinfo).resultinfo } as *mut pg_sys::ReturnSetInfo;
    let materialize = !rsinfo.is_null()
        && unsafe { (*rsinfo).type_ } == pg_sys::NodeTag::T_ReturnSetInfo
        && unsafe { (*rsinfo).allowedModes }
            & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32
            != 0
        && !unsafe { (*rsinfo).expectedDesc }.is_null();
    if !materialize {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "vigil._rolling_read is read through its rolling total's view (SELECT * FROM <view>)"
        );
    }
    crate::version::require();
    let (plan, view, owner) = reader(totals);
    // SAFETY: a catalog lookup of the calling role's rights.
    let allowed = unsafe {
        pg_sys::pg_class_aclcheck(
            view,
            pg_sys::GetUserId(),
            pg_sys::ACL_SELECT as pg_sys::AclMode,
        )
    } == pg_sys::AclResult::ACLCHECK_OK;
    if !allowed {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for view {}", relation_text(view))
        );
    }
    // The catalog-only search path (a replan after an invalidation looks
    // the names up under it), the session's value settings: the window's
    // start is reckoned as `<rollup>_since` reckons it, in the reader's
    // TimeZone.
    let guard = Restricted::as_role(owner);
    // SAFETY: a connection of our own, finished below; the result store and
    // its descriptor live in the calling query's memory.
    unsafe {
        pg_sys::SPI_connect();
        struct Reading;
        impl Drop for Reading {
            fn drop(&mut self) {
                let depth = READING.get().saturating_sub(1);
                READING.set(depth);
                if depth == 0 {
                    for plan in UNFREED.with(|u| std::mem::take(&mut *u.borrow_mut())) {
                        // SAFETY: kept plans no read is running any more.
                        unsafe { pg_sys::SPI_freeplan(plan) };
                    }
                }
            }
        }
        READING.set(READING.get() + 1);
        let reading = Reading;
        let rc = pg_sys::SPI_execute_plan(plan, std::ptr::null_mut(), std::ptr::null(), true, 0);
        drop(reading);
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            error!("rolling total: reading the totals failed (SPI code {rc})");
        }
        let table = pg_sys::SPI_tuptable;
        let got = (*table).tupdesc;
        let want = (*rsinfo).expectedDesc;
        let same = (*got).natts == (*want).natts
            && (0..(*got).natts as usize).all(|i| {
                (*got).attrs.as_slice((*got).natts as usize)[i].atttypid
                    == (*want).attrs.as_slice((*want).natts as usize)[i].atttypid
            });
        if !same {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "rolling total: the view's columns do not match its totals any more; drop and re-create it (vigil.drop_rolling, vigil.create_rolling)"
            );
        }
        let cx = pg_sys::MemoryContextSwitchTo((*(*rsinfo).econtext).ecxt_per_query_memory);
        let store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
        let desc = pg_sys::CreateTupleDescCopy(want);
        for row in 0..pg_sys::SPI_processed as usize {
            pg_sys::tuplestore_puttuple(store, *(*table).vals.add(row));
        }
        pg_sys::MemoryContextSwitchTo(cx);
        (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
        (*rsinfo).setResult = store;
        (*rsinfo).setDesc = desc;
        pg_sys::SPI_finish();
    }
    drop(guard);
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0)
}

crate::sqlglue::pg_finfo_v1!(pg_finfo_vigil_rolling_read);

/// The kept board plan of `totals`, its view and owner (made afresh when
/// stale: the names looked up again, the schemas checked).
fn reader(totals: pg_sys::Oid) -> (pg_sys::SPIPlanPtr, pg_sys::Oid, pg_sys::Oid) {
    let kept = READERS.with(|r| {
        r.borrow()
            .get(&totals)
            .filter(|k| !k.stale)
            .map(|k| (k.plan, k.view, k.owner))
    });
    if let Some(k) = kept {
        return k;
    }
    let guard = Restricted::enter_pinned();
    guard.act_as(crate::security::extension_owner());
    let found = crate::sqlglue::read_three::<pg_sys::Oid, pg_sys::Oid, String>(&format!(
        "SELECT r.summary::pg_catalog.oid, r.view::pg_catalog.oid, r.since::pg_catalog.text \
         FROM vigil.rolling_defs r WHERE r.totals::pg_catalog.oid = {}",
        totals.to_u32()
    ));
    let Ok((Some(summary), Some(view), Some(since))) = found else {
        raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!(
                "totals: relation with oid {} is not a pg_vigil rolling total",
                totals.to_u32()
            ),
        ))
    };
    let Some((r, owner)) = rolling_owner(&guard, summary) else {
        raise(VigilError::new(
            ErrorKind::UndefinedTable,
            "totals: its rollup is gone".to_string(),
        ))
    };
    for (rel, what) in [
        (totals, "rolling total"),
        (summary, "rolling total: summary"),
    ] {
        super::sql::require_trusted_schema(super::sql::rel_schema(rel), owner, what);
    }
    if !all_owned_by(owner, &[totals, summary]) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "rolling total {}: its table or summary does not belong to the source's owner; hand it back (ALTER TABLE … OWNER TO)",
                relation_text(totals)
            )
        );
    }
    let source = source_of(summary).unwrap_or(pg_sys::InvalidOid);
    let table = relation_text(totals);
    guard.act_as(owner);
    let sql = std::ffi::CString::new(board_query(&r, &table, &since)).expect("no NUL");
    // SAFETY: prepared on a connection of our own and moved to a
    // long-lived context (SPI_keepplan) before it ends.
    let plan = unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            error!("rolling total {table}: preparing the board query failed");
        }
        pg_sys::SPI_keepplan(plan);
        pg_sys::SPI_finish();
        plan
    };
    drop(guard);
    READERS.with(|m| {
        let mut m = m.borrow_mut();
        let old = m.insert(
            totals,
            Reader {
                plan,
                view,
                owner,
                stale: false,
                relations: [totals, summary, view, source],
            },
        );
        if let Some(old) = old {
            if READING.get() == 0 {
                // SAFETY: no read is running it.
                unsafe { pg_sys::SPI_freeplan(old.plan) };
            } else {
                // A read further up this backend's stack may be inside it.
                UNFREED.with(|u| u.borrow_mut().push(old.plan));
            }
        }
    });
    (plan, view, owner)
}

/// Recomputes every rolling total of `summary` from it, now, in this
/// transaction (which then holds each one's lock exclusively): after a
/// rebuild or TRUNCATE. The transaction's kept rows of the summary are in
/// the summary already, so they are dropped.
pub(super) fn recompute_all(summary: pg_sys::Oid) {
    let defs = of(summary);
    if defs.is_empty() {
        return;
    }
    super::pending::flush(Some(summary));
    // SAFETY: inside a transaction.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    KEPT.with(|k| {
        for c in k.borrow_mut().iter_mut() {
            if c.summary == summary && c.applied.is_none() {
                c.applied = Some(subxact);
            }
        }
    });
    for def in defs.iter() {
        recompute(summary, def);
    }
}

fn rolling_owner(guard: &Restricted, summary: pg_sys::Oid) -> Option<(Rollup, pg_sys::Oid)> {
    guard.act_as(crate::security::extension_owner());
    let source = source_of(summary)?;
    Some((
        counted(&super::sql::load(summary)),
        super::sql::rel_owner(source),
    ))
}

/// Whether every relation of `rels` belongs to `owner`: work done as the
/// source's owner must never run what another role attached to a table
/// (policies, triggers, rules) — a totals table or summary handed over on
/// its own is left alone until it is handed back.
fn all_owned_by(owner: pg_sys::Oid, rels: &[pg_sys::Oid]) -> bool {
    rels.iter().all(|r| super::sql::rel_owner(*r) == owner)
}

fn run_each(statements: &[String], args: &[(pg_sys::Oid, pg_sys::Datum)]) {
    for s in statements {
        run_fresh(s, args);
    }
}

fn now_start(r: &Rollup, since: &str) -> pg_sys::Datum {
    run_fresh(&format!("SELECT {}", window_start(r, since)), &[]).expect("a bucket")
}

fn recompute(summary: pg_sys::Oid, def: &Rolling) {
    let guard = Restricted::enter_pinned();
    let Some((r, owner)) = rolling_owner(&guard, summary) else {
        return;
    };
    if !exists(def.totals) {
        return;
    }
    if !all_owned_by(owner, &[def.totals, summary]) {
        pgrx::warning!(
            "rolling total {}: not recomputed, its table or summary does not belong to the source's owner; hand it back and run vigil.rebuild_rollup",
            relation_text(def.totals)
        );
        return;
    }
    lock(def.totals, true);
    guard.act_as(owner);
    let table = relation_text(def.totals);
    let start = now_start(&r, &def.since);
    run_each(
        &recompute_statements(&r, &table),
        &[(pg_sys::TIMESTAMPTZOID, start)],
    );
    drop(guard);
}

/// Ages the rolling totals of `only` (or all, as the worker does) whose
/// window has moved since; the number aged.
pub(crate) fn age_all(only: Option<pg_sys::Oid>, catch: bool) -> i64 {
    let guard = Restricted::enter_pinned();
    guard.act_as(crate::security::extension_owner());
    let rows = crate::sqlglue::read_one::<pgrx::JsonB>(&format!(
        "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(r.summary::pg_catalog.oid::pg_catalog.int8, r.totals::pg_catalog.oid::pg_catalog.int8, r.since::pg_catalog.text) \
                ORDER BY r.totals::pg_catalog.oid), '[]') FROM vigil.rolling_defs r{}",
        only.map(|o| format!(" WHERE r.totals::pg_catalog.oid = {}", o.to_u32()))
            .unwrap_or_default()
    ))
    .ok()
    .flatten()
    .map(|j| j.0)
    .unwrap_or_default();
    drop(guard);
    let mut aged = 0;
    for row in rows.as_array().cloned().unwrap_or_default() {
        let (Some(summary), Some(totals), Some(since)) = (
            row.get(0).and_then(|v| v.as_u64()),
            row.get(1).and_then(|v| v.as_u64()),
            row.get(2).and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let def = Rolling {
            totals: pg_sys::Oid::from(totals as u32),
            since: since.to_string(),
        };
        let summary = pg_sys::Oid::from(summary as u32);
        if !catch {
            aged += i64::from(age(summary, &def));
            continue;
        }
        // One rolling total's failure (a trigger its owner put on the
        // table) must not stop the others from ageing.
        match crate::security::catching(|| age(summary, &def)) {
            Ok(moved) => aged += i64::from(moved),
            Err(e) => pgrx::warning!(
                "pg_vigil: ageing rolling total {}: {e}",
                def.totals.to_u32()
            ),
        }
    }
    aged
}

/// Ages one rolling total when its window has moved (true), and folds the
/// slot rows written since the last time into each group's slot 0, so the
/// view reads most groups as they stand (`view_sql`).
fn age(summary: pg_sys::Oid, def: &Rolling) -> bool {
    let guard = Restricted::enter_pinned();
    let Some((r, owner)) = rolling_owner(&guard, summary) else {
        return false;
    };
    if !exists(def.totals) || !all_owned_by(owner, &[def.totals, summary]) {
        return false;
    }
    // Never wait on a table lock someone holds (LOCK TABLE): the worker's
    // poll goes on to the others, this one is aged at a later poll.
    // SAFETY: lock attempts that return at once; held to transaction end.
    let free = unsafe {
        pg_sys::ConditionalLockRelationOid(def.totals, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE)
            && pg_sys::ConditionalLockRelationOid(
                summary,
                pg_sys::AccessShareLock as pg_sys::LOCKMODE,
            )
    };
    if !free {
        return false;
    }
    guard.act_as(owner);
    let table = relation_text(def.totals);
    let moved = |cutoff: pg_sys::Datum, start: pg_sys::Datum| {
        // Both are timestamptz datums (by value, i64). Without a marker row
        // (its owner deleted it) there is no cutoff to move from: nothing
        // is subtracted, poll after poll (verify_rolling reports it,
        // rebuild_rollup writes it again).
        (cutoff.value() as i64) != i64::MIN && (start.value() as i64) > (cutoff.value() as i64)
    };
    let unfolded = || {
        crate::sqlglue::read_one::<bool>(&format!(
            "SELECT EXISTS (SELECT FROM {table} t WHERE t.{s} OPERATOR(pg_catalog.>) 0)",
            s = ident("_slot")
        ))
        .ok()
        .flatten()
        .unwrap_or(false)
    };
    // Looked at without the lock first: nothing to do, nothing waits.
    if !moved(cutoff_of(&table), now_start(&r, &def.since)) && !unfolded() {
        return false;
    }
    drop(guard);
    // This transaction's own kept rows go in first, under the old cutoff
    // (and its summary's, which the subtraction reads).
    super::pending::flush(Some(summary));
    if KEPT.with(|k| {
        k.borrow()
            .iter()
            .any(|c| c.summary == summary && c.applied.is_none())
    }) {
        apply(Some(summary));
    }
    let guard = Restricted::enter_pinned();
    if !try_lock_exclusive(def.totals) {
        return false;
    }
    guard.act_as(owner);
    let (cutoff, start) = (cutoff_of(&table), now_start(&r, &def.since));
    let moving = moved(cutoff, start);
    if !moving && !unfolded() {
        return false;
    }
    // Folding only: an empty range of buckets to subtract.
    let to = if moving { start } else { cutoff };
    run_each(
        &age_statements(&r, &table),
        &[
            (pg_sys::TIMESTAMPTZOID, cutoff),
            (pg_sys::TIMESTAMPTZOID, to),
        ],
    );
    drop(guard);
    moving
}

/// Drops the transaction's kept rows: it is ending.
pub(super) fn clear() {
    KEPT.with(|k| k.borrow_mut().clear());
    HOLDS.set(false);
}

/// Savepoints (pending.rs's callback calls this): a rolled-back
/// subtransaction takes its rows along, a released one's join its parent's.
pub(super) unsafe fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
) {
    KEPT.with(|k| super::pending::follow_subxact(&mut k.borrow_mut(), event, sub, parent));
}

// ---------------------------------------------------------------------
// SQL entry points

fn invalid(message: String) -> ! {
    raise(VigilError::invalid(message))
}

/// Creates the rolling total `name` (a view; its table is
/// `<name>_totals`) of rollup `rollup` over its last `since`.
#[pg_extern(volatile, parallel_unsafe, name = "_create_rolling")]
fn create_rolling(name: &str, rollup: pg_sys::Oid, since: Interval) -> pg_sys::Oid {
    crate::version::require();
    let guard = Restricted::enter_pinned();
    let (r, owner) = super::sql::load_owned(&guard, rollup, "rollup");
    if super::citus::present()
        && (super::citus::managed(rollup).is_some() || super::citus::is_shell(rollup))
    {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "rollup: rolling totals are not kept for a rollup Citus distributes"
        );
    }
    let micros = i128::from(since.months()) * 30 * 86_400_000_000
        + i128::from(since.days()) * 86_400_000_000
        + i128::from(since.micros());
    if micros <= 0 || since.months() < 0 || since.days() < 0 || since.micros() < 0 {
        invalid("since must be a positive interval".into());
    }
    let since_text = crate::sqlglue::read_one::<String>(&format!(
        "SELECT {}::pg_catalog.interval::pg_catalog.text",
        literal(&format!(
            "{} months {} days {} microseconds",
            since.months(),
            since.days(),
            since.micros()
        ))
    ))
    .ok()
    .flatten()
    .expect("an interval");
    let parts = crate::sqlglue::read_one::<Vec<String>>(&format!(
        "SELECT pg_catalog.parse_ident({})",
        literal(name)
    ))
    .ok()
    .flatten()
    .unwrap_or_default();
    let (schema, view) = match parts.as_slice() {
        [v] => (r.schema.clone(), v.clone()),
        [s, v] => (s.clone(), v.clone()),
        _ => invalid(format!(
            "name must be a view name, optionally schema-qualified, got \"{name}\""
        )),
    };
    if view.len() > 56 || schema.len() > 63 {
        invalid(format!(
            "name: \"{name}\" is longer than 56 bytes (its table adds \"_totals\" within PostgreSQL's 63)"
        ));
    }
    super::sql::require_trusted_schema(super::sql::schema_named(&schema), owner, "name");
    let view_q = format!("{}.{}", ident(&schema), ident(&view));
    let table_q = format!("{}.{}", ident(&schema), ident(&format!("{view}_totals")));
    for q in [&view_q, &table_q] {
        let taken = crate::sqlglue::read_one::<bool>(&format!(
            "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
            literal(q)
        ))
        .ok()
        .flatten()
        .unwrap_or(false);
        if taken {
            raise(VigilError::new(
                ErrorKind::DuplicateTable,
                format!("name: relation {q} already exists"),
            ));
        }
    }
    let counted = counted(&r);
    // This transaction's writes kept for its commit reach the summary
    // first: the totals are filled from it below.
    super::pending::flush(Some(rollup));
    guard.act_as(owner);
    // Writers wait until this commits, and every writer before it has
    // committed: the totals computed below see each row once, and every
    // later writer finds the definition (`of`, after the invalidation).
    super::sql::spi_run(&format!("LOCK TABLE {} IN SHARE MODE", r.source));
    super::sql::spi_run(&create_table(&counted, &table_q));
    let totals = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT {}::pg_catalog.regclass::pg_catalog.oid",
        literal(&table_q)
    ))
    .ok()
    .flatten()
    .expect("just created");
    // The marker row, found without reading the groups' rows.
    super::sql::spi_run(&format!(
        "CREATE INDEX ON {table_q} ({}) WHERE {} < 0",
        ident("_slot"),
        ident("_slot")
    ));
    // Groups with a NULL column (the view always adds them up).
    if !counted.group_by.is_empty() {
        let nulls = counted
            .group_by
            .iter()
            .map(|(g, _)| format!("{} IS NULL", ident(g)))
            .collect::<Vec<_>>()
            .join(" OR ");
        super::sql::spi_run(&format!(
            "CREATE INDEX ON {table_q} ({}) WHERE {nulls}",
            ident("_slot")
        ));
    }
    // The slot rows the ager has not folded yet (the view adds them up).
    super::sql::spi_run(&format!(
        "CREATE INDEX ON {table_q} ({}) WHERE {} > 0",
        ident("_slot"),
        ident("_slot")
    ));
    super::sql::spi_run(&view_sql(&counted, &view_q, &table_q));
    let view_oid = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT {}::pg_catalog.regclass::pg_catalog.oid",
        literal(&view_q)
    ))
    .ok()
    .flatten()
    .expect("just created");
    // The totals go with the summary (DROP TABLE … CASCADE, drop_rollup).
    super::ddl::record_on(totals, rollup);
    guard.act_as(crate::security::extension_owner());
    super::sql::spi_run(&format!(
        "INSERT INTO vigil.rolling_defs (totals, summary, view, since) VALUES ({}, {}, {}, {}::interval)",
        totals.to_u32(),
        rollup.to_u32(),
        view_oid.to_u32(),
        literal(&since_text)
    ));
    // SAFETY: an invalidation of an existing relation, sent at commit.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rollup) };
    forget(rollup);
    drop(guard);
    recompute(
        rollup,
        &Rolling {
            totals,
            since: since_text,
        },
    );
    view_oid
}

/// The rolling total whose view or totals table is `name`: (summary,
/// definition), after checking the caller has the source owner's rights.
fn rolling_for(guard: &Restricted, name: pg_sys::Oid) -> (pg_sys::Oid, Rolling) {
    guard.act_as(crate::security::extension_owner());
    let found = crate::sqlglue::read_three::<pg_sys::Oid, pg_sys::Oid, String>(&format!(
        "SELECT r.summary::pg_catalog.oid, r.totals::pg_catalog.oid, r.since::pg_catalog.text FROM vigil.rolling_defs r \
         WHERE {n} IN (r.view::pg_catalog.oid, r.totals::pg_catalog.oid)",
        n = name.to_u32()
    ));
    let Ok((Some(summary), Some(totals), Some(since))) = found else {
        raise(VigilError::new(
            ErrorKind::UndefinedTable,
            format!(
                "name: relation with oid {} is not a pg_vigil rolling total",
                name.to_u32()
            ),
        ))
    };
    let _ = super::sql::load_owned(guard, summary, "name");
    (summary, Rolling { totals, since })
}

/// Ages the rolling total `name` (or, NULL, every one) whose window moved.
#[pg_extern(volatile, parallel_unsafe, name = "_age_rolling")]
fn age_rolling(name: Option<pg_sys::Oid>) -> i64 {
    crate::version::require();
    match name {
        Some(n) => {
            let guard = Restricted::enter_pinned();
            let (_, def) = rolling_for(&guard, n);
            drop(guard);
            age_all(Some(def.totals), false)
        }
        None => {
            // SAFETY: a catalog lookup of the calling role.
            if !unsafe { pg_sys::superuser() } {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    "name: only a superuser ages every rolling total at once; name one"
                );
            }
            age_all(None, true)
        }
    }
}

/// `{"cutoff", "groups", "unfolded"}` of a rolling total for the
/// `vigil.rolling` view, read as its owner in a security-restricted
/// operation (as `_rollup_stats` reads a summary); NULL while another
/// transaction holds a lock on the table that a read would wait for.
#[pg_extern(stable, strict, parallel_restricted, name = "_rolling_stats")]
fn rolling_stats(totals: pg_sys::Oid) -> Option<pgrx::JsonB> {
    let guard = Restricted::enter();
    guard.act_as(crate::security::extension_owner());
    let summary = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT r.summary::pg_catalog.oid FROM vigil.rolling_defs r WHERE r.totals::pg_catalog.oid = {}",
        totals.to_u32()
    ))
    .ok()
    .flatten()?;
    let (_, owner) = rolling_owner(&guard, summary)?;
    if !exists(totals) || !all_owned_by(owner, &[totals]) {
        return None;
    }
    // SAFETY: a lock attempt that returns at once; held to transaction end.
    let free = unsafe {
        pg_sys::ConditionalLockRelationOid(totals, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
    };
    if !free {
        return None;
    }
    let table = relation_text(totals);
    guard.act_as(owner);
    let slot = ident("_slot");
    crate::sqlglue::read_one::<pgrx::JsonB>(&format!(
        "SELECT pg_catalog.jsonb_build_object(\
           'cutoff', pg_catalog.max(t.{cut}) FILTER (WHERE t.{slot} = -1), \
           'groups', pg_catalog.count(*) FILTER (WHERE t.{slot} = 0), \
           'unfolded', pg_catalog.count(*) FILTER (WHERE t.{slot} > 0)) FROM {table} t",
        cut = ident("_cutoff")
    ))
    .ok()
    .flatten()
}

/// Groups where the rolling view differs from the same figures over the
/// summary's buckets in the window (0 when exact).
#[pg_extern(volatile, parallel_unsafe, name = "_verify_rolling")]
fn verify_rolling(name: pg_sys::Oid) -> i64 {
    crate::version::require();
    let guard = Restricted::enter_pinned();
    let (summary, def) = rolling_for(&guard, name);
    drop(guard);
    // This transaction's own writes kept for its commit first.
    super::pending::flush(Some(summary));
    apply(Some(summary));
    let guard = Restricted::enter_pinned();
    let Some((r, owner)) = rolling_owner(&guard, summary) else {
        return 0;
    };
    guard.act_as(crate::security::extension_owner());
    let view = crate::sqlglue::read_one::<String>(&format!(
        "SELECT r.view::pg_catalog.regclass::pg_catalog.text FROM vigil.rolling_defs r WHERE r.totals::pg_catalog.oid = {}",
        def.totals.to_u32()
    ))
    .ok()
    .flatten()
    .expect("a view");
    guard.act_as(owner);
    let (out_cols, select, group) = r.since_parts();
    let direct = format!(
        "SELECT {} FROM {} s WHERE s.{} >= {}{group}",
        select.join(", "),
        r.table(),
        ident("bucket"),
        window_start(&r, &def.since)
    );
    // Group columns match NULL-safe; float sums within 1e-9 relative (the
    // summation order differs), as verify_rollup compares.
    let k = r.group_by.len();
    // (Text forms: a FULL JOIN needs a hashable or mergeable condition,
    // which IS NOT DISTINCT FROM is not.)
    let on = if k == 0 {
        "true".to_string()
    } else {
        let row = |a: &str| {
            out_cols[..k]
                .iter()
                .map(|(c, _)| format!("{a}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "ROW({}, 0)::pg_catalog.text OPERATOR(pg_catalog.=) ROW({}, 0)::pg_catalog.text",
            row("v"),
            row("d")
        )
    };
    let differ = out_cols[k..]
        .iter()
        .map(|(c, t)| {
            if t == "float8" {
                format!(
                    "NOT ((v.{c} IS NULL AND d.{c} IS NULL) OR pg_catalog.abs(v.{c} - d.{c}) \
                     <= 1e-9 * GREATEST(pg_catalog.abs(v.{c}), pg_catalog.abs(d.{c}), 1))"
                )
            } else {
                format!("v.{c} IS DISTINCT FROM d.{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let n = crate::sqlglue::read_one::<i64>(&format!(
        "SELECT count(*) FROM {view} v FULL JOIN ({direct}) d ({}) ON {on} WHERE {differ}",
        out_cols
            .iter()
            .map(|(c, _)| c.clone())
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .ok()
    .flatten()
    .unwrap_or(0);
    drop(guard);
    n
}

/// Drops the rolling total `name` (its view and totals table).
#[pg_extern(volatile, parallel_unsafe, name = "_drop_rolling")]
fn drop_rolling(name: pg_sys::Oid) {
    crate::version::require();
    let guard = Restricted::enter_pinned();
    let (summary, def) = rolling_for(&guard, name);
    let owner = rolling_owner(&guard, summary).map(|(_, o)| o);
    if let Some(owner) = owner {
        guard.act_as(owner);
    }
    let object = pg_sys::ObjectAddress {
        classId: pg_sys::RelationRelationId,
        objectId: def.totals,
        objectSubId: 0,
    };
    // SAFETY: the totals table exists (its definition does); the view
    // depends on it and goes along.
    unsafe {
        pg_sys::performDeletion(&object, pg_sys::DropBehavior::DROP_CASCADE, 0);
        pg_sys::CommandCounterIncrement();
    }
    guard.act_as(crate::security::extension_owner());
    super::sql::spi_run(&format!(
        "DELETE FROM vigil.rolling_defs WHERE totals::pg_catalog.oid = {}",
        def.totals.to_u32()
    ));
    // SAFETY: as in create_rolling.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(summary) };
    forget(summary);
    drop(guard);
}

// (`sql_tests`: `make unit` skips the tests that need a cluster by name;
// pgrx runs them from the schema `tests`.)
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests {
    use pgrx::prelude::*;

    #[pg_schema]
    mod tests {
        use crate::sql_tests::tests::one;

        /// (SQLSTATE, message) of `sql`'s error, run in a subtransaction.
        fn sql_error(sql: &str) -> (String, String) {
            let out = one::<String>(&format!(
                "SELECT pg_temp.rolling_err('{}')",
                sql.replace('\'', "''")
            ))
            .unwrap();
            let (code, message) = out.split_once(' ').unwrap_or((&out, ""));
            (code.to_string(), message.to_string())
        }
        use pgrx::prelude::*;

        const SOURCE: &str = "
        CREATE TABLE rv (entity text, ts timestamptz, status text, amount numeric, latency float8);
        INSERT INTO rv
        SELECT 'e' || (g % 9), now() - (g * 37 % 3300) * interval '1 minute' + interval '90 minutes',
               (ARRAY['paid', 'free', 'refund'])[1 + g % 3],
               CASE WHEN g % 4 = 0 THEN NULL ELSE (g % 50) * 1.25 END, (g * 7919 % 1000) / 10.0
        FROM generate_series(1, 3000) g;
        SELECT vigil.create_rollup('rv_h', 'rv', 'ts', '1 hour', '{entity}',
            '{\"n\": {\"agg\": \"count\"}, \"paid\": {\"agg\": \"count\", \"filter\": \"status = ''paid''\"},
              \"revenue\": {\"agg\": \"sum\", \"column\": \"amount\", \"filter\": \"status = ''paid''\"},
              \"lat\": {\"agg\": \"sum\", \"column\": \"latency\"}, \"hi\": {\"agg\": \"max\", \"column\": \"latency\"}}');
        SELECT vigil.create_rolling('rv_24h', 'rv_h', '24 hours');";

        /// Rows where the view and the rollup's own window differ, both ways.
        fn differences() -> i64 {
            one::<i64>(
            "WITH a AS (SELECT entity, rows, n, paid, revenue, round(lat::numeric, 6) FROM rv_h_since('24 hours')),
                  b AS (SELECT entity, rows, n, paid, revenue, round(lat::numeric, 6) FROM rv_24h)
             SELECT count(*) FROM ((TABLE a EXCEPT ALL TABLE b) UNION ALL (TABLE b EXCEPT ALL TABLE a)) d",
        )
        .unwrap()
        }

        /// Rows where the view differs from the raw rows of its window.
        fn raw_differences() -> i64 {
            one::<i64>(
            "WITH a AS (SELECT entity, count(*) AS rows, count(*) FILTER (WHERE status = 'paid') AS paid,
                               sum(amount) FILTER (WHERE status = 'paid') AS revenue
                        FROM rv WHERE ts >= date_bin('1 hour', now() - interval '24 hours', '2000-01-03 00:00+00')
                        GROUP BY entity),
                  b AS (SELECT entity, rows, paid, revenue FROM rv_24h)
             SELECT count(*) FROM ((TABLE a EXCEPT ALL TABLE b) UNION ALL (TABLE b EXCEPT ALL TABLE a)) d",
        )
        .unwrap()
        }

        fn verify() -> i64 {
            one::<i64>("SELECT vigil.verify_rolling('rv_24h')").unwrap()
        }

        fn kept_rows() -> i64 {
            one::<i64>("SELECT coalesce(sum(_rows), 0)::int8 FROM rv_24h_totals WHERE _slot >= 0")
                .unwrap()
        }

        /// Puts the totals in the state an ager `by` late (or, negative, early)
        /// leaves them in: the cutoff moved and the totals counting from it.
        fn shift_cutoff(by: &str) {
            Spi::run(&format!(
            "UPDATE rv_24h_totals SET _cutoff = _cutoff - interval '{by}' WHERE _slot = -1;
             DELETE FROM rv_24h_totals WHERE _slot >= 0;
             INSERT INTO rv_24h_totals (entity, _slot, _rows, n, paid, revenue, _n_revenue, lat, _n_lat)
             SELECT entity, 0, sum(_rows), sum(n), sum(paid), sum(revenue), sum(_n_revenue), sum(lat), sum(_n_lat)
             FROM rv_h WHERE bucket >= (SELECT _cutoff FROM rv_24h_totals WHERE _slot = -1) GROUP BY entity"
        ))
        .unwrap();
        }

        #[pg_test]
        fn rolling_totals_equal_the_rollups_window_through_writes_and_ageing() {
            Spi::run(SOURCE).unwrap();
            assert_eq!(differences(), 0);
            assert_eq!(raw_differences(), 0);
            assert_eq!(verify(), 0);
            assert!(one::<i64>("SELECT count(*) FROM rv_24h").unwrap() == 9);
            assert!(
                one::<bool>("SELECT count(*) = 9 FROM rv_24h_totals WHERE _slot >= 0").unwrap(),
                "one row per group"
            );
            let before = kept_rows();
            // Rows inside the window, before it (late), in the future; updates
            // that move rows across the window's start; deletes on both sides.
            Spi::run(
            "INSERT INTO rv VALUES ('e1', now(), 'paid', 5, 1), ('e1', now() - interval '30 hours', 'paid', 7, 2),
                                   ('new', now() + interval '2 hours', 'free', NULL, 3), ('e2', NULL, 'paid', 1, 1),
                                   (NULL, now(), 'paid', 4, 1), (NULL, now() - interval '2 hours', 'free', 6, 2);
             UPDATE rv SET ts = ts - interval '20 hours' WHERE entity = 'e3' AND ts > now() - interval '10 hours';
             UPDATE rv SET ts = ts + interval '20 hours', amount = 1 WHERE entity = 'e4' AND ts < now() - interval '26 hours';
             UPDATE rv SET status = 'paid' WHERE entity = 'e5';
             DELETE FROM rv WHERE entity = 'e6' AND ts > now() - interval '3 hours';
             DELETE FROM rv WHERE entity = 'e7' AND ts < now() - interval '40 hours';",
        )
        .unwrap();
            assert_eq!(kept_rows(), before, "kept for the commit, not written yet");
            assert_eq!(verify(), 0, "verify_rolling writes what is kept first");
            assert_ne!(kept_rows(), before);
            assert_eq!(differences(), 0);
            assert_eq!(raw_differences(), 0);
            // A rolled-back savepoint takes its rows along.
            // SAFETY: begun and rolled back around SPI calls of this backend.
            unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
            Spi::run("INSERT INTO rv VALUES ('e8', now(), 'paid', 1000, 1)").unwrap();
            unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
            // A released one's rows stay.
            unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
            Spi::run("INSERT INTO rv VALUES ('e8', now() - interval '1 hour', 'paid', 10, 1)")
                .unwrap();
            unsafe { pg_sys::ReleaseCurrentSubTransaction() };
            assert_eq!(verify(), 0);
            assert_eq!(raw_differences(), 0);

            // An ager five hours late: the view corrects for it, ageing moves
            // the window, folds the slot rows and leaves the figures alone.
            shift_cutoff("5 hours");
            Spi::run("INSERT INTO rv VALUES ('e1', now() - interval '27 hours', 'paid', 3, 1), ('e2', now(), 'free', 2, 1), (NULL, now(), 'paid', 1, 1)").unwrap();
            assert_eq!(verify(), 0);
            assert_eq!(differences(), 0);
            assert_eq!(
                one::<String>("SELECT lag::text || ' ' || unfolded FROM vigil.rolling WHERE name = 'rv_24h'::regclass"),
                Some("05:00:00 0".into()),
                "vigil.rolling shows how far the ager is behind"
            );
            assert_eq!(one::<i64>("SELECT vigil.age_rolling('rv_24h')"), Some(1));
            assert_eq!(
                one::<i64>("SELECT vigil.age_rolling('rv_24h')"),
                Some(0),
                "not due again"
            );
            assert_eq!(
                one::<String>(
                    "SELECT lag::text || ' ' || groups || ' ' || unfolded FROM vigil.rolling WHERE name = 'rv_24h'::regclass"
                ),
                Some(format!(
                    "00:00:00 {} 0",
                    one::<i64>("SELECT count(*) FROM rv_24h_totals WHERE _slot = 0").unwrap()
                ))
            );
            assert_eq!(
            one::<bool>(
                "SELECT _cutoff = date_bin('1 hour', now() - interval '24 hours', '2000-01-03 00:00+00')
                 FROM rv_24h_totals WHERE _slot = -1"
            ),
            Some(true)
        );
            assert_eq!(
                one::<i64>("SELECT count(*) FROM rv_24h_totals WHERE _slot > 0"),
                Some(0),
                "folded into slot 0"
            );
            assert_eq!(differences(), 0);
            assert_eq!(raw_differences(), 0);
            // Slot rows the ager has not folded yet are added up with their
            // group's slot 0 row; a group in such a row alone is there too;
            // ageing folds them (without moving the window).
            Spi::run(
            "INSERT INTO rv_24h_totals (entity, _slot, _rows, n, paid, revenue, _n_revenue, lat, _n_lat)
             VALUES ('e1', 3, 2, 2, 1, 4, 1, 1, 2), ('solo', 1, 1, 1, 0, 0, 0, 0.5, 1);
             UPDATE rv_24h_totals SET _rows = _rows - 2, n = n - 2, paid = paid - 1, revenue = revenue - 4,
                    _n_revenue = _n_revenue - 1, lat = lat - 1, _n_lat = _n_lat - 2
             WHERE entity = 'e1' AND _slot = 0",
        )
        .unwrap();
            assert_eq!(
            one::<String>("SELECT rows || ' ' || coalesce(revenue::text, 'null') FROM rv_24h WHERE entity = 'solo'"),
            Some("1 null".into())
        );
            Spi::run("DELETE FROM rv_24h_totals WHERE entity = 'solo'").unwrap();
            assert_eq!(differences(), 0);
            assert_eq!(
                one::<i64>("SELECT vigil.age_rolling('rv_24h')"),
                Some(0),
                "folded, not moved"
            );
            assert_eq!(
                one::<i64>("SELECT count(*) FROM rv_24h_totals WHERE _slot > 0"),
                Some(0)
            );
            assert_eq!(differences(), 0);
            // A reader whose clock is behind the ager's cutoff adds back.
            shift_cutoff("-2 hours");
            assert_eq!(differences(), 0);
            assert_eq!(one::<i64>("SELECT vigil.age_rolling('rv_24h')"), Some(0));
            shift_cutoff("2 hours");

            // rebuild_rollup and TRUNCATE recompute the totals.
            Spi::run("UPDATE rv_24h_totals SET n = n + 100 WHERE entity = 'e1'").unwrap();
            assert!(verify() > 0, "a damaged total is reported");
            assert!(one::<i64>("SELECT vigil.rebuild_rollup('rv_h')").unwrap() > 0);
            assert_eq!(verify(), 0);
            Spi::run("INSERT INTO rv VALUES ('e1', now(), 'paid', 5, 1); TRUNCATE rv").unwrap();
            assert_eq!(one::<i64>("SELECT count(*) FROM rv_24h"), Some(0));
            Spi::run("INSERT INTO rv VALUES ('e1', now(), 'paid', 5, 1)").unwrap();
            assert_eq!(verify(), 0);
            assert_eq!(raw_differences(), 0);

            // drop_rolling takes the view and table; drop_rollup its totals too.
            Spi::run("SELECT vigil.drop_rolling('rv_24h')").unwrap();
            assert_eq!(
                one::<bool>(
                    "SELECT to_regclass('rv_24h_totals') IS NULL AND to_regclass('rv_24h') IS NULL"
                ),
                Some(true)
            );
            assert_eq!(
                one::<i64>("SELECT count(*) FROM vigil.rolling_defs"),
                Some(0)
            );
            Spi::run("INSERT INTO rv VALUES ('e1', now(), 'paid', 5, 1)").unwrap();
            Spi::run("SELECT vigil.create_rolling('rv_1h', 'rv_h', '1 hour'); SELECT vigil.drop_rollup('rv_h')").unwrap();
            assert_eq!(
                one::<bool>("SELECT to_regclass('rv_1h_totals') IS NULL"),
                Some(true)
            );
            assert_eq!(
                one::<i64>("SELECT count(*) FROM vigil.rolling_defs"),
                Some(0)
            );
            Spi::run("INSERT INTO rv VALUES ('e1', now(), 'paid', 5, 1)").unwrap();
        }

        /// A totals table handed to another role on its own: nothing the
        /// source's owner (or the superuser worker) runs touches it any
        /// more, so that role's trigger never runs as them.
        #[pg_test]
        fn a_totals_table_handed_over_alone_runs_nothing_of_its_new_owner() {
            Spi::run(
                "CREATE FUNCTION pg_temp.rolling_err(sql text) RETURNS text LANGUAGE plpgsql AS $$
                 BEGIN EXECUTE sql; RETURN ' no error';
                 EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;",
            )
            .unwrap();
            Spi::run(
                "CREATE ROLE rolling_a; CREATE ROLE rolling_b;
                 CREATE SCHEMA ra AUTHORIZATION rolling_a; CREATE SCHEMA rb AUTHORIZATION rolling_b;
                 SET LOCAL ROLE rolling_a;
                 CREATE TABLE ra.ev (entity text, ts timestamptz, v numeric);
                 INSERT INTO ra.ev SELECT 'e' || (g % 5), now() - g * interval '9 minutes', g FROM generate_series(1, 300) g;
                 SELECT vigil.create_rollup('ra.ev_h', 'ra.ev', 'ts', '1 hour', '{entity}', '{\"n\": {\"agg\": \"count\"}}');
                 SELECT vigil.create_rolling('ra.ev_24h', 'ra.ev_h', '24 hours');
                 RESET ROLE;
                 ALTER TABLE ra.ev_24h_totals OWNER TO rolling_b;
                 GRANT USAGE ON SCHEMA ra TO rolling_b;
                 SET LOCAL ROLE rolling_b;
                 CREATE TABLE rb.ran (who text);
                 GRANT INSERT ON rb.ran TO PUBLIC;
                 CREATE FUNCTION rb.spy() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN INSERT INTO rb.ran VALUES (current_user); RETURN NULL; END $$;
                 CREATE TRIGGER spy AFTER INSERT OR UPDATE OR DELETE ON ra.ev_24h_totals
                   FOR EACH STATEMENT EXECUTE FUNCTION rb.spy();
                 RESET ROLE;
                 UPDATE ra.ev_24h_totals SET _cutoff = _cutoff - interval '3 hours' WHERE _slot = -1;
                 DELETE FROM rb.ran;",
            )
            .unwrap();
            Spi::run(
                "SET LOCAL ROLE rolling_a;
                 INSERT INTO ra.ev VALUES ('e1', now(), 1);",
            )
            .unwrap();
            let (c, m) = sql_error("SELECT * FROM ra.ev_24h");
            assert_eq!(c, "42501", "{m}");
            let (c, m) = sql_error("SELECT vigil.verify_rolling('ra.ev_24h')");
            assert_eq!(c, "42501", "verify reads the view: {m}");
            assert_eq!(
                one::<i64>("SELECT vigil.age_rolling('ra.ev_24h')"),
                Some(0),
                "not aged"
            );
            assert_eq!(
                one::<i64>("SELECT vigil.rebuild_rollup('ra.ev_h') * 0"),
                Some(0)
            );
            Spi::run("RESET ROLE").unwrap();
            assert_eq!(one::<i64>("SELECT vigil.age_rolling()"), Some(0));
            assert_eq!(
                one::<i64>("SELECT count(*) FROM rb.ran"),
                Some(0),
                "the new owner's trigger never ran"
            );
        }

        #[pg_test]
        fn rolling_totals_without_groups_and_bad_arguments() {
            Spi::run(
            "CREATE TABLE rg (ts timestamptz, v numeric);
             INSERT INTO rg SELECT now() - g * interval '7 minutes', g FROM generate_series(1, 500) g;
             SELECT vigil.create_rollup('rg_h', 'rg', 'ts', '1 hour', '{}', '{\"v\": {\"agg\": \"sum\", \"column\": \"v\"}}');
             SELECT vigil.create_rolling('rg_6h', 'rg_h', '6 hours');
             INSERT INTO rg VALUES (now(), 1), (now() - interval '1 day', 2);
             DELETE FROM rg WHERE v = 3;",
        )
        .unwrap();
            assert_eq!(one::<i64>("SELECT vigil.verify_rolling('rg_6h')"), Some(0));
            assert_eq!(
            one::<bool>(
                "SELECT (SELECT v FROM rg_6h) = (SELECT sum(v) FROM rg WHERE ts >= date_bin('1 hour', now() - interval '6 hours', '2000-01-03 00:00+00'))"
            ),
            Some(true)
        );
            Spi::run(
                "CREATE FUNCTION pg_temp.rolling_err(sql text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE sql; RETURN ' no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;",
            )
            .unwrap();
            let cases = [
                (
                    "SELECT vigil.create_rolling(NULL, 'rg_h', '1 hour')",
                    "22004",
                    "name",
                ),
                (
                    "SELECT vigil.create_rolling('x', 'rg_h', '0 hours')",
                    "22023",
                    "since",
                ),
                (
                    "SELECT vigil.create_rolling('x', 'rg_h', '-1 hours')",
                    "22023",
                    "since",
                ),
                (
                    "SELECT vigil.create_rolling('rg_6h', 'rg_h', '1 hour')",
                    "42P07",
                    "name",
                ),
                (
                    "SELECT vigil.create_rolling('x', 'rg', '1 hour')",
                    "42P01",
                    "rollup",
                ),
                ("SELECT vigil.verify_rolling('rg')", "42P01", "name"),
            ];
            for (sql, code, word) in cases {
                let (c, m) = sql_error(sql);
                assert_eq!(c, code, "{sql}: {m}");
                assert!(m.contains(word), "{sql}: {m}");
            }
            Spi::run("CREATE ROLE rolling_stranger; SET LOCAL ROLE rolling_stranger").unwrap();
            for sql in [
                "SELECT vigil.create_rolling('y', 'rg_h', '1 hour')",
                "SELECT vigil.age_rolling('rg_6h')",
                "SELECT vigil.age_rolling()",
                "SELECT vigil.drop_rolling('rg_6h')",
                "SELECT * FROM rg_6h",
                "SELECT * FROM vigil._rolling_read('rg_6h_totals') AS r(rows bigint, v numeric)",
            ] {
                let (c, m) = sql_error(sql);
                assert_eq!(c, "42501", "{sql}: {m}");
            }
            Spi::run("RESET ROLE").unwrap();
            // A reader granted the view reads it (and not the totals).
            Spi::run(
                "CREATE ROLE rolling_reader; GRANT SELECT ON rg_6h TO rolling_reader;
                 SET LOCAL ROLE rolling_reader",
            )
            .unwrap();
            assert_eq!(one::<i64>("SELECT count(*) FROM rg_6h"), Some(1));
            let (c, m) = sql_error("SELECT count(*) FROM rg_6h_totals");
            assert_eq!(c, "42501", "{m}");
            Spi::run("RESET ROLE").unwrap();
        }
    }
}
