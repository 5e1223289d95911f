//! Rollups that write their summary when the transaction commits
//! (`vigil.rollup_write_at_commit`), so that their writers never deadlock.
//!
//! A rollup with an `avg`, `min`, `max`, `stats` or `percentile` measure
//! removes from a group by first locking all of the group's slot rows
//! (`Rollup::lock_statement`). Written during the transaction, as a count/sum
//! rollup is, those locks are taken in whatever order the application's
//! statements come in, while the transaction already holds the slot rows
//! its earlier statements wrote: two multi-statement transactions that each
//! wrote a group and then remove from it wait for each other (40P01).
//!
//! With the setting on, the rollup's trigger keeps a copy of each
//! statement's transition tables here instead, tagged with the
//! subtransaction that made them (a rolled-back savepoint takes its copies
//! along). When the transaction commits (`XACT_EVENT_PRE_COMMIT`, after
//! deferred triggers, still inside the transaction), every summary it
//! wrote is brought up to date in summary-oid order:
//!
//! 1. *hold*: the slot locks (`sql.rs`, transaction-scoped advisory locks)
//!    of every slot row of the groups its removals touch, and of slot 0
//!    of each, are taken — waiting — in one global order: the per-summary
//!    slot locks in slot order, then the group slot locks in lock-id
//!    order (or, past `HOLD_GROUP_LOCKS`, the per-summary slot locks
//!    exclusively, again in slot order);
//! 2. *replay*: the rollup's INSERT trigger runs on all the kept additions,
//!    then its DELETE trigger on all the kept removals (`Chunk`), with the
//!    same kept plans.
//!
//! Nothing else waits: adding rows never waits (`vigil._rollup_slot`
//! tries locks and takes a free slot, and skips every slot held in step 1,
//! so it never needs a row lock a holder has), and no writer of such a
//! rollup holds any of its slot rows before it commits. Every wait is
//! therefore for a transaction that is itself committing, in one order, so
//! no cycle can form. The transaction's own reads of such a summary, before
//! it commits, do not see its own writes.
//!
//! An operation that needs the summary up to date in the middle of the
//! transaction (`verify_rollup`, `rebuild_rollup`, TRUNCATE, DETACH of a
//! partition) applies this summary's kept statements first
//! (`flush(Some(summary))`); they are marked applied in the current
//! subtransaction, so rolling it back keeps them pending again. Dropping a
//! rollup needs nothing: its kept rows are skipped, their triggers gone.

use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

/// The rows a transaction added to (`adds`: INSERT's and UPDATE's new rows)
/// and removed from (`removes`: DELETE's and UPDATE's old rows) one
/// rollup through one table (the source, or a partition written directly),
/// in one subtransaction, copied into the transaction's memory. At commit
/// all of a summary's additions are applied before its removals: the net
/// change is the same as in statement order, and every row removed is then
/// already in the summary (a row inserted, or updated twice, in the
/// transaction is added before it is removed), which the subtractions of
/// stats and sketches need.
/// (rolling.rs keeps its rows in chunks too, without triggers.)
pub(super) struct Chunk {
    pub(super) summary: pg_sys::Oid,
    pub(super) relid: pg_sys::Oid,
    /// The rollup's INSERT and DELETE triggers on `relid`, whose plans
    /// apply the additions and the removals.
    ins: pg_sys::Oid,
    del: pg_sys::Oid,
    subxact: pg_sys::SubTransactionId,
    /// Set once applied in the middle of the transaction, in this
    /// subtransaction.
    pub(super) applied: Option<pg_sys::SubTransactionId>,
    pub(super) desc: pg_sys::TupleDesc,
    pub(super) adds: *mut pg_sys::Tuplestorestate,
    pub(super) removes: *mut pg_sys::Tuplestorestate,
}

thread_local! {
    static PENDING: RefCell<Vec<Chunk>> = const { RefCell::new(Vec::new()) };
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
    /// The commit's own flush has run: a write after it (another
    /// extension's commit callback) is written at once instead of kept.
    static FLUSHED: Cell<bool> = const { Cell::new(false) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Group slot locks a hold takes before it takes the per-summary slot
/// locks exclusively instead (a bulk removal must not fill the shared lock
/// table); as `SLOT_LOCKS_PER_XACT` for adding.
const HOLD_GROUP_LOCKS: usize = 64;

/// Runs `f` with the transaction's memory context and resource owner, so
/// what it makes (a tuplestore, its temporary file) lives until the
/// transaction ends.
pub(super) unsafe fn in_transaction<T>(f: impl FnOnce() -> T) -> T {
    let cx = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
    let owner = pg_sys::CurrentResourceOwner;
    pg_sys::CurrentResourceOwner = pg_sys::TopTransactionResourceOwner;
    let out = f();
    pg_sys::CurrentResourceOwner = owner;
    pg_sys::MemoryContextSwitchTo(cx);
    out
}

/// Frees a chunk's stores and descriptor (dropped with its
/// subtransaction, or merged into its parent's chunk): a PL/pgSQL block per
/// row must not keep a pair of stores per row until the commit.
pub(super) unsafe fn free(c: Chunk) {
    for store in [c.adds, c.removes] {
        if !store.is_null() {
            pg_sys::tuplestore_end(store);
        }
    }
    pg_sys::FreeTupleDesc(c.desc);
}

/// Appends the tuples of `from` (rows of `desc`) to `to` (made if null).
pub(super) unsafe fn copy_rows(
    from: *mut pg_sys::Tuplestorestate,
    to: &mut *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
) {
    if from.is_null() {
        return;
    }
    in_transaction(|| {
        if to.is_null() {
            *to = pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem);
        }
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        pg_sys::tuplestore_select_read_pointer(from, 0);
        pg_sys::tuplestore_rescan(from);
        while pg_sys::tuplestore_gettupleslot(from, true, false, slot) {
            pg_sys::tuplestore_puttupleslot(*to, slot);
        }
        pg_sys::tuplestore_rescan(from);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
    });
}

/// Keeps the rows of the statement that fired `data` (a rollup trigger of
/// summary `summary`) for the commit, to be written through `ins` and
/// `del`, the rollup's own (linked) INSERT and DELETE triggers on that
/// table; false when they must be written now instead (after the commit's
/// flush).
pub(super) unsafe fn keep(
    data: &pg_sys::TriggerData,
    summary: pg_sys::Oid,
    (ins, del): (pg_sys::Oid, pg_sys::Oid),
) -> bool {
    if FLUSHED.get() {
        return false;
    }
    register();
    PENDING.with(|p| keep_into(&mut p.borrow_mut(), data, summary, (ins, del)));
    true
}

/// Copies the rows of the statement `data` fired for into `chunks`: into
/// the chunk of the same rollup, table, triggers and subtransaction not yet
/// applied, or a new one.
pub(super) unsafe fn keep_into(
    chunks: &mut Vec<Chunk>,
    data: &pg_sys::TriggerData,
    summary: pg_sys::Oid,
    (ins, del): (pg_sys::Oid, pg_sys::Oid),
) {
    let subxact = pg_sys::GetCurrentSubTransactionId();
    let rel = data.tg_relation;
    let at = chunks.iter().rposition(|c| {
        c.summary == summary
            && c.relid == (*rel).rd_id
            && c.ins == ins
            && c.del == del
            && c.subxact == subxact
            && c.applied.is_none()
            && same_layout(c.desc, (*rel).rd_att)
    });
    let at = at.unwrap_or_else(|| {
        let desc = in_transaction(|| pg_sys::CreateTupleDescCopy((*rel).rd_att));
        chunks.push(Chunk {
            summary,
            relid: (*rel).rd_id,
            ins,
            del,
            subxact,
            applied: None,
            desc,
            adds: std::ptr::null_mut(),
            removes: std::ptr::null_mut(),
        });
        chunks.len() - 1
    });
    let c = &mut chunks[at];
    copy_rows(data.tg_newtable, &mut c.adds, c.desc);
    copy_rows(data.tg_oldtable, &mut c.removes, c.desc);
}

/// Whether the commit's own flush has run (rolling.rs then writes at once).
pub(super) fn flushed() -> bool {
    FLUSHED.get()
}

/// Whether this transaction keeps rows of `summary` not yet applied.
pub(crate) fn has_pending(summary: pg_sys::Oid) -> bool {
    PENDING.with(|p| {
        p.borrow()
            .iter()
            .any(|c| c.summary == summary && c.applied.is_none())
    })
}

/// A copy of `kept` (the layout rows were kept in) with the column names
/// `relid` has now: a column renamed since keeps its rows readable by the
/// statements made from the current definition.
pub(super) unsafe fn named_now(kept: pg_sys::TupleDesc, relid: pg_sys::Oid) -> pg_sys::TupleDesc {
    let desc = pg_sys::CreateTupleDescCopy(kept);
    let rel = pg_sys::try_relation_open(relid, pg_sys::NoLock as pg_sys::LOCKMODE);
    if rel.is_null() {
        return desc;
    }
    let now = (*rel).rd_att;
    let n = (*desc).natts.min((*now).natts) as usize;
    let (to, from) = ((*desc).attrs.as_mut_slice(n), (*now).attrs.as_slice(n));
    for (t, f) in to.iter_mut().zip(from) {
        if !t.attisdropped && !f.attisdropped {
            t.attname = f.attname;
        }
    }
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    desc
}

/// Whether tuples of `a` read the same under `b`: the same attributes,
/// types and dropped ones (only names may differ).
pub(super) unsafe fn same_layout(a: pg_sys::TupleDesc, b: pg_sys::TupleDesc) -> bool {
    if (*a).natts != (*b).natts {
        return false;
    }
    let n = (*a).natts as usize;
    let (x, y) = ((*a).attrs.as_slice(n), (*b).attrs.as_slice(n));
    x.iter().zip(y).all(|(p, q)| {
        p.atttypid == q.atttypid
            && p.atttypmod == q.atttypmod
            && p.attlen == q.attlen
            && p.attbyval == q.attbyval
            && p.attalign == q.attalign
            && p.attisdropped == q.attisdropped
    })
}

/// Registers an ephemeral named relation `name` over `store` (rows of
/// `desc`) on the current SPI connection.
pub(super) unsafe fn register_rows(
    name: &str,
    store: *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
) {
    let enr = pg_sys::palloc0(std::mem::size_of::<pg_sys::EphemeralNamedRelationData>())
        as *mut pg_sys::EphemeralNamedRelationData;
    let cname = std::ffi::CString::new(name).expect("no NUL");
    (*enr).md.name = pg_sys::pstrdup(cname.as_ptr());
    (*enr).md.reliddesc = pg_sys::InvalidOid;
    (*enr).md.tupdesc = desc;
    (*enr).md.enrtype = pg_sys::EphemeralNameRelationType::ENR_NAMED_TUPLESTORE;
    (*enr).md.enrtuples = pg_sys::tuplestore_tuple_count(store) as f64;
    (*enr).reldata = store as *mut std::ffi::c_void;
    let rc = pg_sys::SPI_register_relation(enr);
    if rc < 0 {
        error!("rollup at commit: registering {name} failed (SPI code {rc})");
    }
}

/// An active snapshot for the catalog reads of work done at commit, when
/// no statement is running (popped on drop, if pushed).
pub(super) struct ActiveSnapshot(bool);

impl ActiveSnapshot {
    pub(super) fn ensure() -> ActiveSnapshot {
        // SAFETY: a transaction is in progress (commit has not happened yet).
        unsafe {
            let push = !pg_sys::ActiveSnapshotSet();
            if push {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            ActiveSnapshot(push)
        }
    }
}

impl Drop for ActiveSnapshot {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: pushed by `ensure`; an error unwinding through here
            // aborts the transaction, which clears the stack anyway.
            unsafe { pg_sys::PopActiveSnapshot() };
        }
    }
}

/// Applies the kept statements (of `only`, or all), summary by summary in
/// oid order: hold, then replay. Called at commit with `None`, and by
/// operations that need one summary current now. Statements kept while
/// applying (a rollup of a summary) are applied in a further round.
pub(crate) fn flush(only: Option<pg_sys::Oid>) {
    if FLUSHING.get() {
        return;
    }
    FLUSHING.set(true);
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            FLUSHING.set(false);
        }
    }
    let _done = Done;
    // At commit no statement is running, so no snapshot is active: SPI
    // needs one to start from (each statement still takes its own).
    let _snapshot = ActiveSnapshot::ensure();
    // SAFETY: as above.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    loop {
        // (index, summary) of the chunks to apply this round.
        let mut todo: Vec<(usize, pg_sys::Oid)> = PENDING.with(|p| {
            p.borrow()
                .iter()
                .enumerate()
                .filter(|(_, c)| c.applied.is_none() && only.is_none_or(|s| s == c.summary))
                .map(|(i, c)| (i, c.summary))
                .collect()
        });
        if todo.is_empty() {
            break;
        }
        // Stable: a summary's statements stay in the order they ran.
        todo.sort_by_key(|&(_, s)| s.to_u32());
        let mut at = 0;
        while at < todo.len() {
            let summary = todo[at].1;
            let end = todo[at..]
                .iter()
                .position(|&(_, s)| s != summary)
                .map_or(todo.len(), |n| at + n);
            let idx: Vec<usize> = todo[at..end].iter().map(|&(i, _)| i).collect();
            // Marked first: a statement kept while replaying (a nested
            // rollup) is a new chunk, not one of these.
            PENDING.with(|p| {
                for &i in &idx {
                    p.borrow_mut()[i].applied = Some(subxact);
                }
            });
            hold(summary, &idx);
            // All additions first, then all removals (`Chunk`).
            for removes in [false, true] {
                for &i in &idx {
                    // SAFETY: the chunk's stores live until the
                    // transaction ends.
                    unsafe { replay(i, removes) };
                }
            }
            at = end;
        }
    }
    if only.is_none() {
        PENDING.with(|p| p.borrow_mut().clear());
        FLUSHED.set(true);
    }
}

/// Step 1 of `flush` for the chunks `idx` of `summary`.
fn hold(summary: pg_sys::Oid, idx: &[usize]) {
    // (name, store, desc) of the removals.
    let tables: Vec<(String, *mut pg_sys::Tuplestorestate, pg_sys::TupleDesc)> =
        PENDING.with(|p| {
            let p = p.borrow();
            idx.iter()
                .enumerate()
                .filter(|(_, &i)| !p[i].removes.is_null())
                // SAFETY: the chunk's descriptor lives until the
                // transaction ends; the copy is for this flush.
                .map(|(n, &i)| {
                    (format!("vigil_hold_{n}"), p[i].removes, unsafe {
                        named_now(p[i].desc, p[i].relid)
                    })
                })
                .collect()
        });
    if tables.is_empty() {
        return;
    }
    let guard = crate::security::Restricted::enter_pinned();
    guard.act_as(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID));
    // Dropped since (DROP TABLE … CASCADE): nothing left to hold or write.
    let Some(source) = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
        "SELECT d.source::pg_catalog.oid FROM vigil.rollup_defs d WHERE d.summary::pg_catalog.oid = {}",
        summary.to_u32()
    ))
    .ok()
    .flatten() else {
        return;
    };
    let rollup = super::sql::load(summary);
    guard.act_as(super::sql::rel_owner(source));
    let names: Vec<&str> = tables.iter().map(|(n, _, _)| n.as_str()).collect();
    let sql = std::ffi::CString::new(rollup.hold_statement(&names)).expect("no NUL");
    let mut locks: Vec<(u32, u32)> = Vec::new();
    // SAFETY: a connection of our own, finished below; the stores live
    // until the transaction ends.
    unsafe {
        pg_sys::SPI_connect();
        for (name, store, desc) in &tables {
            register_rows(name, *store, *desc);
        }
        let rc = pg_sys::SPI_execute(sql.as_ptr(), false, 0);
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            error!("rollup at commit: reading the groups to hold failed (SPI code {rc})");
        }
        let table = pg_sys::SPI_tuptable;
        for row in 0..pg_sys::SPI_processed as usize {
            let tuple = *(*table).vals.add(row);
            let mut null = false;
            let h = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, 1, &mut null);
            let s = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, 2, &mut null);
            locks.push((h.value() as i32 as u32, s.value() as i32 as u32));
        }
        pg_sys::SPI_finish();
    }
    drop(guard);
    super::sql::hold_slots(summary, &locks, HOLD_GROUP_LOCKS);
}

/// Step 2 of `flush`: the rollup's INSERT trigger run on the chunk's
/// additions, or (`removes`) its DELETE trigger on its removals.
unsafe fn replay(i: usize, removes: bool) {
    let (trigger, relid, desc, rows, summary) = PENDING.with(|p| {
        let c = &p.borrow()[i];
        if removes {
            (c.del, c.relid, c.desc, c.removes, c.summary)
        } else {
            (c.ins, c.relid, c.desc, c.adds, c.summary)
        }
    });
    if rows.is_null() {
        return;
    }
    let rel = pg_sys::try_relation_open(relid, pg_sys::NoLock as pg_sys::LOCKMODE);
    if rel.is_null() {
        // Dropped since, with its rollups.
        return;
    }
    let trigdesc = (*rel).trigdesc;
    let found = if trigdesc.is_null() {
        None
    } else {
        (0..(*trigdesc).numtriggers as usize)
            .map(|k| (*trigdesc).triggers.add(k))
            .find(|t| (**t).tgoid == trigger)
    };
    if let Some(tg) = found {
        let mut data: pg_sys::TriggerData = std::mem::zeroed();
        data.type_ = pg_sys::NodeTag::T_TriggerData;
        data.tg_relation = rel;
        data.tg_trigger = tg;
        if removes {
            data.tg_event = pg_sys::TRIGGER_EVENT_DELETE | pg_sys::TRIGGER_EVENT_AFTER;
            data.tg_oldtable = rows;
        } else {
            data.tg_event = pg_sys::TRIGGER_EVENT_INSERT | pg_sys::TRIGGER_EVENT_AFTER;
            data.tg_newtable = rows;
        }
        super::trigger::replay(&data, named_now(desc, relid), summary);
    }
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            if event == pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
                && (super::rolling::has_kept() || super::rolling::holds_lock())
            {
                // A prepared transaction would hold a rolling total's lock
                // until someone commits it, and the ager (and every writer
                // queued behind it) would wait that long.
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "PREPARE TRANSACTION: this transaction wrote a rollup that has rolling totals (vigil.create_rolling), \
                     whose commit cannot be deferred; commit it instead"
                );
            }
            let summaries = PENDING.with(|p| p.borrow().iter().any(|c| c.applied.is_none()));
            if summaries {
                flush(None);
            }
            // Rolling totals after every summary: their writers then wait
            // for nothing while they hold a rolling total's lock.
            let rolling = super::rolling::has_kept();
            if rolling {
                super::rolling::apply(None);
            }
            if summaries || rolling {
                // Deferred constraints and triggers on the summaries just
                // written (PostgreSQL fired the others before calling us).
                pg_sys::AfterTriggerFireDeferred();
            }
            PENDING.with(|p| p.borrow_mut().clear());
            super::rolling::clear();
            FLUSHED.set(true);
        }
        // The stores went with the transaction's memory.
        _ => {
            PENDING.with(|p| p.borrow_mut().clear());
            super::rolling::clear();
            FLUSHED.set(false);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    super::rolling::on_subxact(event, sub, parent);
    PENDING.with(|p| follow_subxact(&mut p.borrow_mut(), event, sub, parent));
}

/// What a subtransaction's end does to `p`: a rollback drops its chunks
/// (and makes what it applied pending again); a release hands them to the
/// parent, joining the parent's chunk of the same rollup and table.
pub(super) unsafe fn follow_subxact(
    p: &mut Vec<Chunk>,
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            let mut k = 0;
            while k < p.len() {
                if p[k].subxact == sub {
                    free(p.remove(k));
                } else {
                    k += 1;
                }
            }
            for c in p.iter_mut() {
                if c.applied == Some(sub) {
                    c.applied = None;
                }
            }
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            for c in p.iter_mut() {
                if c.applied == Some(sub) {
                    c.applied = Some(parent);
                }
            }
            // The subtransaction's rows join its parent's chunk of the
            // same rollup and table (one PL/pgSQL exception block per
            // row must not keep one pair of stores per row).
            let mut k = 0;
            while k < p.len() {
                if p[k].subxact != sub {
                    k += 1;
                    continue;
                }
                p[k].subxact = parent;
                let into = (0..p.len()).find(|&j| {
                    j != k
                        && p[j].subxact == parent
                        && p[j].summary == p[k].summary
                        && p[j].relid == p[k].relid
                        && (p[j].ins, p[j].del) == (p[k].ins, p[k].del)
                        && p[j].applied.is_none()
                        && p[k].applied.is_none()
                        && same_layout(p[j].desc, p[k].desc)
                });
                match into {
                    Some(j) => {
                        let child = p.remove(k);
                        let j = if j > k { j - 1 } else { j };
                        let c = &mut p[j];
                        copy_rows(child.adds, &mut c.adds, c.desc);
                        copy_rows(child.removes, &mut c.removes, c.desc);
                        free(child);
                    }
                    None => k += 1,
                }
            }
        }
        _ => {}
    }
}

pub(super) fn register() {
    if !REGISTERED.replace(true) {
        // SAFETY: registered once per backend, for its life.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
    }
}
