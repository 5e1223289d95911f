//! The single-row write of a count/sum rollup without an executor.
//!
//! A single-row INSERT (and the subtraction of a single-row DELETE or
//! UPDATE) adds one row's values to one slot row of the summary. Through
//! SPI that is an `INSERT … SELECT … ON CONFLICT DO UPDATE`: executor
//! start-up and shut-down for a `ModifyTable` over a scan of the transition
//! table, a projection, the speculative-insertion probe and the conflict
//! projection, about two thirds of the trigger's time (BENCHMARKS.md,
//! issue 19). Here the row's values come from the planned target list of
//! the same `Rollup::row_select` the SPI statement reads (kept as an SPI
//! plan, so PostgreSQL parses, resolves and plans it as the owner, and
//! every expression is evaluated by PostgreSQL's expression engine), the
//! slot row is found through the summary's unique key index with a dirty
//! snapshot and locked, as logical replication's apply does
//! (`RelationFindReplTupleByIndex`), and the sum is written with
//! `ExecSimpleRelationUpdate`, which keeps the summary's indexes,
//! constraints and replica identity rules. Written by hand because pgrx
//! has no executor API: this is the hot path the issue measures.
//!
//! Anything but the common case takes the SPI statement instead, which
//! stays the definition of what the write does: a slot row not there yet
//! (it is inserted, with the conflict handling only `ON CONFLICT` has), a
//! summary with triggers, rules, row-level security or partitions, Citus,
//! a summary the owner may not write, a tuple that is not simply lockable.
//! Runs inside the trigger's SPI connection, as the rollup's owner, in the
//! security-restricted operation `security::Restricted` sets up: no code
//! runs here that the SPI statement would not run.

use super::Rollup;
use pgrx::pg_sys;

/// The direct form of one single-row plan of a rollup trigger.
pub(super) struct Direct {
    /// The kept plan of `Rollup::row_select`, whose planned target list
    /// and qual are evaluated here.
    select: pg_sys::SPIPlanPtr,
    summary: pg_sys::Oid,
    /// Whether the row comes from the old (else the new) transition table.
    pub(super) old: bool,
    /// The summary column each output column of `select` writes, and
    /// whether it is part of the row key (else it is added).
    columns: Vec<(String, bool)>,
    built: Option<Built>,
}

/// What `Direct` derives from the catalogs and the plan, remade whenever
/// this backend has seen an invalidation since (`trigger::EPOCH`).
struct Built {
    epoch: u64,
    cxt: pg_sys::MemoryContext,
    exprs: Vec<*mut pg_sys::ExprState>,
    qual: *mut pg_sys::ExprState,
    econtext: *mut pg_sys::ExprContext,
    /// A slot for the transition table's row (its own copy of the
    /// descriptor).
    input: *mut pg_sys::TupleTableSlot,
    /// The unique index on the row key, and per index column: the output
    /// column holding its value, the equality function and the collation.
    index: pg_sys::Oid,
    keys: Vec<(usize, pg_sys::RegProcedure, pg_sys::Oid)>,
    /// Per added column: the output column, the summary attribute and the
    /// `+` of its type (strict, as `s.c + excluded.c` is).
    adds: Vec<(usize, usize, *mut pg_sys::FmgrInfo)>,
    /// The summary's CHECK constraints, prepared once: what
    /// `ExecConstraints` would otherwise read from their stored text and
    /// plan again for every write (`ri_ConstraintExprs`).
    checks: *mut *mut pg_sys::ExprState,
}

impl Drop for Built {
    fn drop(&mut self) {
        // SAFETY: the context holds everything `Built` points to; nothing
        // else refers to it (`Direct` is only used borrowed, and a `Built`
        // is dropped only when replaced or with its `Direct`).
        unsafe { pg_sys::MemoryContextDelete(self.cxt) };
    }
}

thread_local! {
    /// Single-row writes this backend made directly (the tests read it).
    static APPLIED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many single-row writes this backend has made without SPI.
#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn applied() -> u64 {
    APPLIED.get()
}

const ROW_EXCLUSIVE: pg_sys::LOCKMODE = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;

impl Direct {
    /// The direct form of the row upsert of `rollup` reading transition
    /// table `from` (`old`: the old one) with `sign`, or `None` where only
    /// the SPI statement can do it. The caller is connected to SPI with
    /// the transition tables registered, acting as the rollup's owner.
    pub(super) fn new(
        rollup: &Rollup,
        summary: pg_sys::Oid,
        from: &str,
        old: bool,
        sign: &str,
        prepare: impl Fn(String) -> pg_sys::SPIPlanPtr,
    ) -> Option<Direct> {
        if !rollup.removals_subtract() || super::citus::present() {
            return None;
        }
        Some(Direct {
            select: prepare(rollup.row_select(from, sign)),
            summary,
            old,
            columns: rollup.row_columns(),
            built: None,
        })
    }

    /// Adds the one row of `store` (rows of `desc`) to its slot row.
    /// False when the SPI statement must do it instead (nothing written).
    ///
    /// # Safety
    /// Called from the rollup trigger, connected to SPI, as the owner;
    /// `store` is the transition table `self.old` names, of one row.
    pub(super) unsafe fn apply(
        &mut self,
        store: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
        epoch: &std::sync::atomic::AtomicU64,
    ) -> bool {
        let rel = pg_sys::table_open(self.summary, ROW_EXCLUSIVE);
        let done = self.apply_to(rel, store, desc, epoch);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        done
    }

    unsafe fn apply_to(
        &mut self,
        rel: pg_sys::Relation,
        store: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
        epoch: &std::sync::atomic::AtomicU64,
    ) -> bool {
        let form = &*(*rel).rd_rel;
        // What ExecSimpleRelationUpdate leaves out: statement triggers and
        // transition tables (a rollup of this summary), rules, policies.
        let plain = form.relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char
            && (*rel).trigdesc.is_null()
            && !form.relhasrules
            && !form.relrowsecurity
            && !form.relispartition;
        if !plain {
            return false;
        }
        let now = epoch.load(std::sync::atomic::Ordering::Relaxed);
        if self.built.as_ref().is_none_or(|b| b.epoch != now) {
            self.built = None;
            self.built = self.build(rel, desc, now);
        }
        let Some(b) = self.built.as_ref() else {
            return false;
        };
        let rights =
            (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_SELECT) as pg_sys::AclMode;
        if pg_sys::pg_class_aclcheck(self.summary, pg_sys::GetUserId(), rights)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            return false;
        }
        // The row, through read pointer 0 rewound before and after (the
        // SPI statements' scans of the table use read pointers of their own).
        pg_sys::MemoryContextReset((*b.econtext).ecxt_per_tuple_memory);
        pg_sys::tuplestore_select_read_pointer(store, 0);
        pg_sys::tuplestore_rescan(store);
        let got = pg_sys::tuplestore_gettupleslot(store, true, false, b.input);
        pg_sys::tuplestore_rescan(store);
        if !got {
            return false;
        }
        (*b.econtext).ecxt_scantuple = b.input;
        if !b.qual.is_null() && !pg_sys::ExecQual(b.qual, b.econtext) {
            // No time: the statement's WHERE leaves nothing to add.
            pg_sys::ExecClearTuple(b.input);
            return true;
        }
        let values: Vec<(pg_sys::Datum, bool)> = b
            .exprs
            .iter()
            .map(|&e| {
                let mut null = false;
                let d = pg_sys::ExecEvalExprSwitchContext(e, b.econtext, &mut null);
                (d, null)
            })
            .collect();
        // As SPI does before each statement: the source row's write and any
        // earlier one of this statement's maintenance are then visible.
        pg_sys::CommandCounterIncrement();
        let done = update(rel, b, &values);
        pg_sys::ExecClearTuple(b.input);
        if done {
            APPLIED.set(APPLIED.get() + 1);
        }
        done
    }

    unsafe fn build(
        &self,
        rel: pg_sys::Relation,
        desc: pg_sys::TupleDesc,
        epoch: u64,
    ) -> Option<Built> {
        let summary_desc = (*rel).rd_att;
        let attnum = |name: &str| -> Option<usize> {
            let atts = (*summary_desc)
                .attrs
                .as_slice((*summary_desc).natts as usize);
            atts.iter().position(|a| {
                !a.attisdropped
                    && std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_bytes()
                        == name.as_bytes()
            })
        };
        let mut positions = Vec::with_capacity(self.columns.len());
        for (name, key) in &self.columns {
            positions.push((attnum(name)?, *key));
        }
        let cxt = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"vigil rollup direct write".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let mut built = Built {
            epoch,
            cxt,
            exprs: Vec::new(),
            qual: std::ptr::null_mut(),
            econtext: std::ptr::null_mut(),
            input: std::ptr::null_mut(),
            index: pg_sys::InvalidOid,
            keys: Vec::new(),
            adds: Vec::new(),
            checks: std::ptr::null_mut(),
        };
        // The planned expressions, copied out of the cached plan.
        let cplan = pg_sys::SPI_plan_get_cached_plan(self.select);
        if cplan.is_null() {
            return None;
        }
        let planned = planned_scan(cplan);
        let old = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = cxt;
        let made = planned.and_then(|(tlist, qual)| {
            let tlist = pg_sys::copyObjectImpl(tlist.cast()).cast::<pg_sys::List>();
            let qual = pg_sys::copyObjectImpl(qual.cast()).cast::<pg_sys::List>();
            let mut exprs = Vec::new();
            for i in 0..list_len(tlist) {
                let te = list_ptr(tlist, i).cast::<pg_sys::TargetEntry>();
                if !(*te).resjunk {
                    exprs.push(pg_sys::ExecInitExpr((*te).expr, std::ptr::null_mut()));
                }
            }
            (exprs.len() == positions.len()).then(|| {
                built.exprs = exprs;
                built.qual = pg_sys::ExecInitQual(qual, std::ptr::null_mut());
                built.econtext = pg_sys::CreateStandaloneExprContext();
                built.input = pg_sys::MakeSingleTupleTableSlot(
                    pg_sys::CreateTupleDescCopy(desc),
                    &pg_sys::TTSOpsMinimalTuple,
                );
            })
        });
        let constr = (*summary_desc).constr;
        if made.is_some() && !constr.is_null() && (*constr).num_check > 0 {
            let n = (*constr).num_check as usize;
            let checks = pg_sys::palloc0(n * std::mem::size_of::<*mut pg_sys::ExprState>())
                .cast::<*mut pg_sys::ExprState>();
            for i in 0..n {
                let expr =
                    pg_sys::stringToNode((*(*constr).check.add(i)).ccbin).cast::<pg_sys::Expr>();
                *checks.add(i) =
                    pg_sys::ExecInitExpr(pg_sys::expression_planner(expr), std::ptr::null_mut());
            }
            built.checks = checks;
        }
        pg_sys::CurrentMemoryContext = old;
        pg_sys::ReleaseCachedPlan(cplan, pg_sys::CurrentResourceOwner);
        made?;
        // The index ON CONFLICT arbitrates on: unique on exactly the row key.
        let mut key_atts: Vec<i16> = positions
            .iter()
            .filter(|(_, k)| *k)
            .map(|(a, _)| *a as i16 + 1)
            .collect();
        key_atts.sort_unstable();
        let list = pg_sys::RelationGetIndexList(rel);
        for i in 0..list_len(list) {
            let oid = list_oid(list, i);
            let idx = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let index = &*(*idx).rd_index;
            let nkeys = index.indnkeyatts as usize;
            let indkey = index.indkey.values.as_slice(nkeys);
            let mut sorted = indkey.to_vec();
            sorted.sort_unstable();
            let arbiter = index.indisunique
                && index.indisvalid
                && index.indimmediate
                && index.indnullsnotdistinct
                && (*idx).rd_indexprs.is_null()
                && pg_sys::heap_attisnull(
                    (*idx).rd_indextuple,
                    pg_sys::Anum_pg_index_indexprs as i32,
                    std::ptr::null_mut(),
                )
                && pg_sys::heap_attisnull(
                    (*idx).rd_indextuple,
                    pg_sys::Anum_pg_index_indpred as i32,
                    std::ptr::null_mut(),
                )
                && sorted == key_atts
                && (*(*idx).rd_rel).relam == pg_sys::BTREE_AM_OID;
            if arbiter {
                let mut keys = Vec::with_capacity(nkeys);
                for (off, &heap_att) in indkey.iter().enumerate() {
                    let family = *(*idx).rd_opfamily.add(off);
                    let input = *(*idx).rd_opcintype.add(off);
                    let op = pg_sys::get_opfamily_member(
                        family,
                        input,
                        input,
                        pg_sys::BTEqualStrategyNumber as i16,
                    );
                    let col = positions
                        .iter()
                        .position(|(a, _)| *a as i16 + 1 == heap_att);
                    match (op != pg_sys::InvalidOid, col) {
                        (true, Some(col)) => keys.push((
                            col,
                            pg_sys::get_opcode(op),
                            *(*idx).rd_indcollation.add(off),
                        )),
                        _ => break,
                    }
                }
                if keys.len() == nkeys {
                    built.index = oid;
                    built.keys = keys;
                }
            }
            pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
            if built.index != pg_sys::InvalidOid {
                break;
            }
        }
        if built.index == pg_sys::InvalidOid {
            return None;
        }
        // `+` of each added column's type, as `s.c + excluded.c` resolves
        // it under the pinned pg_catalog search path.
        for (col, &(att, key)) in positions.iter().enumerate() {
            if key {
                continue;
            }
            let ty = (*summary_desc)
                .attrs
                .as_slice((*summary_desc).natts as usize)[att]
                .atttypid;
            let plus = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
                "SELECT o.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode \
                 WHERE o.oprname = '+' AND o.oprleft = {t} AND o.oprright = {t} AND o.oprresult = {t} AND p.proisstrict \
                   AND o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace",
                t = ty.to_u32()
            ))
            .ok()
            .flatten()?;
            let finfo =
                pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::FmgrInfo>())
                    .cast::<pg_sys::FmgrInfo>();
            pg_sys::fmgr_info_cxt(plus, finfo, cxt);
            built.adds.push((col, att, finfo));
        }
        Some(built)
    }
}

/// The target list and qual of a plan that is one scan of the transition
/// table and nothing else (no sub-plans, no init plans).
unsafe fn planned_scan(
    cplan: *mut pg_sys::CachedPlan,
) -> Option<(*mut pg_sys::List, *mut pg_sys::List)> {
    let stmts = (*cplan).stmt_list;
    if list_len(stmts) != 1 {
        return None;
    }
    let stmt = list_ptr(stmts, 0).cast::<pg_sys::PlannedStmt>();
    if (*stmt).type_ != pg_sys::NodeTag::T_PlannedStmt
        || (*stmt).commandType != pg_sys::CmdType::CMD_SELECT
        || !(*stmt).subplans.is_null()
        || (*stmt).planTree.is_null()
    {
        return None;
    }
    let plan = (*stmt).planTree;
    let scan = (*plan).type_ == pg_sys::NodeTag::T_NamedTuplestoreScan
        && (*plan).lefttree.is_null()
        && (*plan).righttree.is_null()
        && (*plan).initPlan.is_null();
    scan.then(|| ((*plan).targetlist, (*plan).qual))
}

/// Finds the slot row of `values` and adds them to it; false when it is
/// not there (or not simply lockable): the SPI statement then runs.
unsafe fn update(rel: pg_sys::Relation, b: &Built, values: &[(pg_sys::Datum, bool)]) -> bool {
    let estate = pg_sys::CreateExecutorState();
    let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
        .cast::<pg_sys::RangeTblEntry>();
    (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).relid = (*rel).rd_id;
    (*rte).relkind = pg_sys::RELKIND_RELATION as std::ffi::c_char;
    (*rte).rellockmode = ROW_EXCLUSIVE;
    pg_sys::ExecInitRangeTable(estate, pg_sys::lappend(std::ptr::null_mut(), rte.cast()));
    let rri = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
        .cast::<pg_sys::ResultRelInfo>();
    (*rri).type_ = pg_sys::NodeTag::T_ResultRelInfo;
    pg_sys::InitResultRelInfo(rri, rel, 1, std::ptr::null_mut(), 0);
    (*rri).ri_ConstraintExprs = b.checks;
    (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
    if pg_sys::ActiveSnapshotSet() {
        (*estate).es_snapshot = pg_sys::GetActiveSnapshot();
    }
    pg_sys::ExecOpenIndices(rri, false);
    let found = pg_sys::table_slot_create(rel, &mut (*estate).es_tupleTable);
    let located = locate(rel, b, values, found);
    if located {
        let desc = (*rel).rd_att;
        let natts = (*desc).natts as usize;
        let new = pg_sys::ExecInitExtraTupleSlot(estate, desc, &pg_sys::TTSOpsVirtual);
        pg_sys::slot_getallattrs(found);
        pg_sys::ExecClearTuple(new);
        let (old_v, old_n) = (
            std::slice::from_raw_parts((*found).tts_values, natts),
            std::slice::from_raw_parts((*found).tts_isnull, natts),
        );
        let (new_v, new_n) = (
            std::slice::from_raw_parts_mut((*new).tts_values, natts),
            std::slice::from_raw_parts_mut((*new).tts_isnull, natts),
        );
        new_v.copy_from_slice(old_v);
        new_n.copy_from_slice(old_n);
        for &(col, att, plus) in &b.adds {
            let (delta, delta_null) = values[col];
            if old_n[att] || delta_null {
                new_n[att] = true;
            } else {
                new_v[att] = pg_sys::FunctionCall2Coll(plus, pg_sys::InvalidOid, old_v[att], delta);
            }
        }
        pg_sys::ExecStoreVirtualTuple(new);
        let mut epq: pg_sys::EPQState = std::mem::zeroed();
        pg_sys::EvalPlanQualInit(
            &mut epq,
            estate,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            -1,
        );
        pg_sys::ExecSimpleRelationUpdate(rri, estate, &mut epq, found, new);
        pg_sys::EvalPlanQualEnd(&mut epq);
    }
    pg_sys::ExecCloseIndices(rri);
    pg_sys::ExecResetTupleTable((*estate).es_tupleTable, false);
    pg_sys::FreeExecutorState(estate);
    located
}

/// The slot row with the key of `values`, locked, in `found`: the index
/// probe of logical replication's `RelationFindReplTupleByIndex`, with
/// NULL keys searched as the NULLS NOT DISTINCT key stores them.
unsafe fn locate(
    rel: pg_sys::Relation,
    b: &Built,
    values: &[(pg_sys::Datum, bool)],
    found: *mut pg_sys::TupleTableSlot,
) -> bool {
    let n = b.keys.len();
    let mut keys: Vec<pg_sys::ScanKeyData> = (0..n).map(|_| std::mem::zeroed()).collect();
    for (off, &(col, proc_, collation)) in b.keys.iter().enumerate() {
        let (value, null) = values[col];
        let att = (off + 1) as pg_sys::AttrNumber;
        if null {
            pg_sys::ScanKeyEntryInitialize(
                &mut keys[off],
                (pg_sys::SK_ISNULL | pg_sys::SK_SEARCHNULL) as i32,
                att,
                0,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::Datum::from(0),
            );
        } else {
            pg_sys::ScanKeyInit(
                &mut keys[off],
                att,
                pg_sys::BTEqualStrategyNumber as u16,
                proc_,
                value,
            );
            keys[off].sk_collation = collation;
        }
    }
    let idx = pg_sys::index_open(b.index, ROW_EXCLUSIVE);
    let mut snap: pg_sys::SnapshotData = std::mem::zeroed();
    snap.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
    let scan = pg_sys::index_beginscan(rel, idx, &mut snap, n as i32, 0);
    let located = loop {
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), n as i32, std::ptr::null_mut(), 0);
        if !pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, found) {
            break false;
        }
        pg_sys::ExecMaterializeSlot(found);
        let xwait = if snap.xmin != pg_sys::TransactionId::INVALID {
            snap.xmin
        } else {
            snap.xmax
        };
        if xwait != pg_sys::TransactionId::INVALID {
            // Being written by another transaction: wait for it, look again.
            pg_sys::XactLockTableWait(
                xwait,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                pg_sys::XLTW_Oper::XLTW_None,
            );
            continue;
        }
        let latest = pg_sys::GetLatestSnapshot();
        pg_sys::PushActiveSnapshot(latest);
        let mut tmfd: pg_sys::TM_FailureData = std::mem::zeroed();
        let res = pg_sys::table_tuple_lock(
            rel,
            &mut (*found).tts_tid,
            pg_sys::GetLatestSnapshot(),
            found,
            pg_sys::GetCurrentCommandId(false),
            pg_sys::LockTupleMode::LockTupleExclusive,
            pg_sys::LockWaitPolicy::LockWaitBlock,
            0,
            &mut tmfd,
        );
        pg_sys::PopActiveSnapshot();
        match res {
            pg_sys::TM_Result::TM_Ok => break true,
            pg_sys::TM_Result::TM_Updated | pg_sys::TM_Result::TM_Deleted => continue,
            _ => break false,
        }
    };
    pg_sys::index_endscan(scan);
    pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
    located
}

unsafe fn list_len(list: *mut pg_sys::List) -> usize {
    if list.is_null() {
        0
    } else {
        (*list).length as usize
    }
}

unsafe fn list_ptr(list: *mut pg_sys::List, i: usize) -> *mut std::ffi::c_void {
    (*(*list).elements.add(i)).ptr_value
}

unsafe fn list_oid(list: *mut pg_sys::List, i: usize) -> pg_sys::Oid {
    (*(*list).elements.add(i)).oid_value
}
