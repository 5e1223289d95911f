//! The single-row write of a rollup without an executor.
//!
//! A single-row INSERT into a rollup of count, sum, min and max measures
//! (and, when every measure is a count or sum, the subtraction of a
//! single-row DELETE or UPDATE) adds one row's values to one slot row of
//! the summary, keeping the least and greatest for min and max. Through
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
//! a summary the owner may not write, a CHECK or NOT NULL of the owner's
//! (`ON CONFLICT` checks the proposed row too), a column whose type no
//! longer is the value's, a transaction at REPEATABLE READ or above (the
//! upsert's serialization failure), a tuple that is not simply lockable.
//! Runs inside the trigger's SPI connection, as the rollup's owner, in the
//! security-restricted operation `security::Restricted` sets up: no code
//! runs here that the SPI statement would not run.

use super::{OnConflict, Rollup};
use pgrx::pg_sys;

/// The direct form of one single-row plan of a rollup trigger.
pub(super) struct Direct {
    /// The kept plans of `Rollup::row_select`, whose planned target lists
    /// and quals are evaluated here, each with whether it reads the old
    /// (else the new) transition table: one that adds its row, or (an
    /// UPDATE that keeps its row's group and time, `Difference`) the new
    /// row and the old one, whose difference is added.
    selects: Vec<(pg_sys::SPIPlanPtr, bool)>,
    summary: pg_sys::Oid,
    /// The summary column each output column of a select writes, and what
    /// the write does with it.
    columns: Vec<(String, OnConflict)>,
    built: Option<Built>,
}

/// One select's expressions.
struct Source {
    exprs: Vec<*mut pg_sys::ExprState>,
    qual: *mut pg_sys::ExprState,
    econtext: *mut pg_sys::ExprContext,
    /// A slot for the transition table's row (its own copy of the
    /// descriptor).
    input: *mut pg_sys::TupleTableSlot,
    old: bool,
}

/// What `Direct` derives from the catalogs and the plan, remade whenever
/// this backend has seen an invalidation since (`trigger::EPOCH`).
struct Built {
    epoch: u64,
    cxt: pg_sys::MemoryContext,
    sources: Vec<Source>,
    /// The summary attribute (0-based) each output column writes.
    atts: Vec<usize>,
    /// The unique index on the row key, and per index column: the output
    /// column holding its value, the equality function and the collation.
    index: pg_sys::Oid,
    keys: Vec<Key>,
    /// Per added column: the output column, the summary attribute, the
    /// `+` of its type (strict, as `s.c + excluded.c` is) and, for a
    /// difference, its `-` (strict, as `n.m - o.m` is).
    adds: Vec<Add>,
    /// Per `min`/`max` column: the output column, the summary attribute,
    /// the btree comparison of its type, its collation, and whether the
    /// greater value is kept (`GREATEST`, else `LEAST`).
    extremes: Vec<Extreme>,
    /// The summary's CHECK constraints, prepared once: what
    /// `ExecConstraints` would otherwise read from their stored text and
    /// plan again for every write (`ri_ConstraintExprs`).
    checks: *mut *mut pg_sys::ExprState,
}

/// How many slot rows of one summary `TIDS` remembers before it starts
/// afresh for that summary.
const TIDS_KEPT: usize = 8192;

/// A slot row by summary and the image of its key (`tid_key`).
type RowKey = (pg_sys::Oid, Vec<u8>);

type Roots = std::collections::HashMap<
    pg_sys::Oid,
    std::collections::HashMap<Vec<u8>, pg_sys::ItemPointerData>,
>;

thread_local! {
    /// The root of the HOT chain this backend last wrote each slot row in
    /// (the tuple id its index entries hold), by summary and the image of
    /// the row's key: the next direct write of that row (an INSERT's, an
    /// UPDATE's or a DELETE's) follows the chain from there and skips the
    /// index descent, when the chain still leads to that row's current
    /// version (`cached`), also one another backend wrote since: with
    /// several writers the last version of a hot row is mostly someone
    /// else's. A summary's roots are forgotten at an invalidation of its
    /// relcache entry (`forget`: a rewrite gives it new tuple ids, and
    /// VACUUM sends one), not at other relations' (autovacuum of the source
    /// sends those every few seconds under write load, and a CPU profile
    /// of 4 writers showed most writes descending the index again). Nothing
    /// depends on the forgetting for being right: `cached` checks the
    /// block, the line pointer, the key and the version.
    static TIDS: std::cell::RefCell<Roots> = std::cell::RefCell::new(Roots::new());
}

/// The remembered place of the slot row with `key`.
fn remembered_tid(key: &RowKey) -> Option<pg_sys::ItemPointerData> {
    TIDS.with(|t| t.borrow().get(&key.0).and_then(|m| m.get(&key.1)).copied())
}

fn remember_tid(key: RowKey, tid: pg_sys::ItemPointerData) {
    TIDS.with(|t| {
        let mut t = t.borrow_mut();
        let m = t.entry(key.0).or_default();
        if m.len() >= TIDS_KEPT && !m.contains_key(&key.1) {
            m.clear();
        }
        m.insert(key.1, tid);
    })
}

/// Forgets the remembered slot rows of `relid` (of every summary for
/// InvalidOid, a reset of the whole relcache): the relcache callback's
/// part (trigger.rs). Skipped while the map is in use (it never is across
/// a call into PostgreSQL, where invalidations are read).
pub(super) fn forget(relid: pg_sys::Oid) {
    TIDS.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                t.clear();
            } else {
                t.remove(&relid);
            }
        }
    })
}

/// An index column of the row key: the output column holding its value,
/// the equality function and the collation.
type Key = (usize, pg_sys::RegProcedure, pg_sys::Oid);

struct Add {
    col: usize,
    att: usize,
    plus: *mut pg_sys::FmgrInfo,
    minus: *mut pg_sys::FmgrInfo,
}

struct Extreme {
    col: usize,
    att: usize,
    cmp: *mut pg_sys::FmgrInfo,
    collation: pg_sys::Oid,
    greatest: bool,
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

thread_local! {
    /// Slot rows found where this backend last wrote them (`cached`).
    static TID_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many direct writes found their slot row without the index.
#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn tid_hits() -> u64 {
    TID_HITS.get()
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
        rows: &[(&str, bool, &str)],
        prepare: impl Fn(String) -> pg_sys::SPIPlanPtr,
    ) -> Option<Direct> {
        // Removals need every measure to subtract (`removals_subtract`);
        // an added row also keeps min/max (LEAST/GREATEST), not the
        // measures vigil's functions merge.
        let adds_only = rows.iter().all(|(_, old, sign)| !old && sign.is_empty());
        let columns: Option<Vec<(String, OnConflict)>> = rollup
            .row_columns()
            .into_iter()
            .map(|(name, on)| on.map(|on| (name, on)))
            .collect();
        let simple = columns.as_ref().is_some_and(|c| {
            c.iter()
                .all(|(_, on)| matches!(on, OnConflict::Key | OnConflict::Add))
        });
        if !(simple && rollup.removals_subtract() || adds_only && columns.is_some())
            || super::citus::present()
        {
            return None;
        }
        Some(Direct {
            selects: rows
                .iter()
                .map(|(from, old, sign)| (prepare(rollup.row_select(from, sign)), *old))
                .collect(),
            summary,
            columns: columns?,
            built: None,
        })
    }

    /// Adds the one row of its transition table (or the difference of the
    /// new and the old row) to its slot row. False when the SPI statement
    /// must do it instead (nothing written).
    ///
    /// # Safety
    /// Called from the rollup trigger, connected to SPI, as the owner, for
    /// a statement of one row: `data`'s transition tables hold one row each.
    pub(super) unsafe fn apply(
        &mut self,
        data: &pg_sys::TriggerData,
        epoch: &std::sync::atomic::AtomicU64,
    ) -> bool {
        let rel = pg_sys::table_open(self.summary, ROW_EXCLUSIVE);
        let done = self.apply_to(rel, data, epoch);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        done
    }

    unsafe fn apply_to(
        &mut self,
        rel: pg_sys::Relation,
        data: &pg_sys::TriggerData,
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
        // Under REPEATABLE READ and SERIALIZABLE the upsert refuses a slot
        // row changed since the transaction's snapshot (a serialization
        // failure, as for any UPDATE there): only the upsert decides that.
        if !plain || pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 {
            return false;
        }
        let now = epoch.load(std::sync::atomic::Ordering::Relaxed);
        if self.built.as_ref().is_none_or(|b| b.epoch != now) {
            self.built = None;
            self.built = self.build(rel, (*data.tg_relation).rd_att, now);
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
        let mut rows = Vec::with_capacity(b.sources.len());
        let mut timed = true;
        for src in &b.sources {
            match src.row(if src.old {
                data.tg_oldtable
            } else {
                data.tg_newtable
            }) {
                Some(Some(values)) => rows.push(values),
                // No time: the statement's WHERE leaves nothing to add.
                Some(None) => timed = false,
                None => {
                    b.clear();
                    return false;
                }
            }
        }
        // A difference of two rows of one group and time: the same key.
        let same_key = rows.iter().all(|r| {
            b.keys
                .iter()
                .all(|&(col, _, _)| same_datum(rel, b, col, r[col], rows[0][col]))
        });
        let done = if !timed {
            true
        } else if !same_key {
            false
        } else if rows.len() == 2
            && b.adds
                .iter()
                .all(|a| same_datum(rel, b, a.col, rows[0][a.col], rows[1][a.col]))
        {
            // No measure changed: nothing to write (the statement's WHERE
            // of non-zero differences).
            true
        } else {
            // As SPI does before each statement: the source row's write and
            // any earlier one of this statement's maintenance are visible.
            pg_sys::CommandCounterIncrement();
            let done = update(rel, b, &rows);
            if done {
                APPLIED.set(APPLIED.get() + 1);
            }
            done
        };
        b.clear();
        done
    }

    unsafe fn build(
        &self,
        rel: pg_sys::Relation,
        desc: pg_sys::TupleDesc,
        epoch: u64,
    ) -> Option<Built> {
        let summary_desc = (*rel).rd_att;
        let atts = (*summary_desc)
            .attrs
            .as_slice((*summary_desc).natts as usize);
        let attnum = |name: &str| -> Option<usize> {
            atts.iter().position(|a| {
                !a.attisdropped
                    && std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_bytes()
                        == name.as_bytes()
            })
        };
        let mut positions = Vec::with_capacity(self.columns.len());
        for (name, on) in &self.columns {
            positions.push((attnum(name)?, *on));
        }
        // `ON CONFLICT` checks the proposed row too, before the conflict
        // makes it an update: a NOT NULL the owner set on a column a row may
        // leave NULL (a min or max, a column of the owner's own) or a CHECK
        // of the owner's is left to it. vigil's own constraint is `CHECK
        // (true)` (definition.rs).
        let owners_not_null = atts.iter().enumerate().any(|(i, a)| {
            a.attnotnull
                && !a.attisdropped
                && positions.iter().all(|&(p, on)| {
                    p != i || matches!(on, OnConflict::Least | OnConflict::Greatest)
                })
        });
        let constr = (*summary_desc).constr;
        let owners_check = !constr.is_null()
            && (0..(*constr).num_check as usize).any(|i| {
                let name = std::ffi::CStr::from_ptr((*(*constr).check.add(i)).ccname);
                !name
                    .to_bytes()
                    .starts_with(super::definition::PREFIX.as_bytes())
            });
        if owners_not_null || owners_check {
            return None;
        }
        // Each value must already be of its column's type (the upsert
        // would convert it): an owner may have changed a summary column's
        // type since.
        let expected: Vec<(pg_sys::Oid, i32)> = positions
            .iter()
            .map(|&(a, _)| (atts[a].atttypid, atts[a].atttypmod))
            .collect();
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
            sources: Vec::new(),
            atts: positions.iter().map(|(a, _)| *a).collect(),
            index: pg_sys::InvalidOid,
            keys: Vec::new(),
            adds: Vec::new(),
            extremes: Vec::new(),
            checks: std::ptr::null_mut(),
        };
        for &(select, old) in &self.selects {
            built
                .sources
                .push(Source::new(select, old, desc, cxt, &expected)?);
        }
        if !constr.is_null() && (*constr).num_check > 0 {
            let n = (*constr).num_check as usize;
            let previous = pg_sys::CurrentMemoryContext;
            pg_sys::CurrentMemoryContext = cxt;
            let checks = pg_sys::palloc0(n * std::mem::size_of::<*mut pg_sys::ExprState>())
                .cast::<*mut pg_sys::ExprState>();
            for i in 0..n {
                let expr =
                    pg_sys::stringToNode((*(*constr).check.add(i)).ccbin).cast::<pg_sys::Expr>();
                *checks.add(i) =
                    pg_sys::ExecInitExpr(pg_sys::expression_planner(expr), std::ptr::null_mut());
            }
            pg_sys::CurrentMemoryContext = previous;
            built.checks = checks;
        }
        let (index, keys) = arbiter(rel, &positions)?;
        built.index = index;
        built.keys = keys;
        // The `+` (and `-`) of each added column's type, as `s.c +
        // excluded.c` and `n.m - o.m` resolve them under the pinned
        // pg_catalog search path.
        let operator = |name: &str, ty: pg_sys::Oid| -> Option<*mut pg_sys::FmgrInfo> {
            let f = crate::sqlglue::read_one::<pg_sys::Oid>(&format!(
                "SELECT o.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode \
                 WHERE o.oprname = '{name}' AND o.oprleft = {t} AND o.oprright = {t} AND o.oprresult = {t} AND p.proisstrict \
                   AND o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace",
                t = ty.to_u32()
            ))
            .ok()
            .flatten()?;
            let finfo =
                pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::FmgrInfo>())
                    .cast::<pg_sys::FmgrInfo>();
            pg_sys::fmgr_info_cxt(f, finfo, cxt);
            Some(finfo)
        };
        for (col, &(att, on)) in positions.iter().enumerate() {
            let ty = atts[att].atttypid;
            let greatest = match on {
                OnConflict::Key => continue,
                OnConflict::Add => None,
                OnConflict::Least => Some(false),
                OnConflict::Greatest => Some(true),
            };
            if let Some(greatest) = greatest {
                // LEAST/GREATEST order by the type's default btree
                // operator class, under the column's collation.
                let cache = pg_sys::lookup_type_cache(ty, pg_sys::TYPECACHE_CMP_PROC as i32);
                let proc_ = (*cache).cmp_proc;
                if proc_ == pg_sys::InvalidOid {
                    return None;
                }
                let cmp =
                    pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::FmgrInfo>())
                        .cast::<pg_sys::FmgrInfo>();
                pg_sys::fmgr_info_cxt(proc_, cmp, cxt);
                built.extremes.push(Extreme {
                    col,
                    att,
                    cmp,
                    collation: atts[att].attcollation,
                    greatest,
                });
                continue;
            }
            let minus = if self.selects.len() == 2 {
                operator("-", ty)?
            } else {
                std::ptr::null_mut()
            };
            built.adds.push(Add {
                col,
                att,
                plus: operator("+", ty)?,
                minus,
            });
        }
        Some(built)
    }
}

impl Built {
    unsafe fn clear(&self) {
        for src in &self.sources {
            pg_sys::ExecClearTuple(src.input);
        }
    }
}

impl Source {
    /// The expressions of the planned `select`, copied into `cxt`.
    unsafe fn new(
        select: pg_sys::SPIPlanPtr,
        old: bool,
        desc: pg_sys::TupleDesc,
        cxt: pg_sys::MemoryContext,
        expected: &[(pg_sys::Oid, i32)],
    ) -> Option<Source> {
        let cplan = pg_sys::SPI_plan_get_cached_plan(select);
        if cplan.is_null() {
            return None;
        }
        let planned = planned_scan(cplan);
        let previous = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = cxt;
        let made = planned.and_then(|(tlist, qual)| {
            let tlist = pg_sys::copyObjectImpl(tlist.cast()).cast::<pg_sys::List>();
            let qual = pg_sys::copyObjectImpl(qual.cast()).cast::<pg_sys::List>();
            let mut exprs = Vec::new();
            for i in 0..list_len(tlist) {
                let te = list_ptr(tlist, i).cast::<pg_sys::TargetEntry>();
                if (*te).resjunk {
                    continue;
                }
                let node = (*te).expr.cast::<pg_sys::Node>();
                let fits = expected.get(exprs.len()).is_some_and(|&(ty, typmod)| {
                    pg_sys::getBaseType(pg_sys::exprType(node)) == ty
                        && (typmod == -1 || pg_sys::exprTypmod(node) == typmod)
                });
                if !fits {
                    return None;
                }
                exprs.push(pg_sys::ExecInitExpr((*te).expr, std::ptr::null_mut()));
            }
            (exprs.len() == expected.len()).then(|| Source {
                exprs,
                qual: pg_sys::ExecInitQual(qual, std::ptr::null_mut()),
                econtext: pg_sys::CreateStandaloneExprContext(),
                input: pg_sys::MakeSingleTupleTableSlot(
                    pg_sys::CreateTupleDescCopy(desc),
                    &pg_sys::TTSOpsMinimalTuple,
                ),
                old,
            })
        });
        pg_sys::CurrentMemoryContext = previous;
        pg_sys::ReleaseCachedPlan(cplan, pg_sys::CurrentResourceOwner);
        made
    }

    /// The values of the one row of `store`: None when there is no row,
    /// Some(None) when the select's WHERE leaves it out. Read through read
    /// pointer 0, rewound before and after (the SPI statements' scans of
    /// the table use read pointers of their own).
    unsafe fn row(
        &self,
        store: *mut pg_sys::Tuplestorestate,
    ) -> Option<Option<Vec<(pg_sys::Datum, bool)>>> {
        if store.is_null() {
            return None;
        }
        pg_sys::MemoryContextReset((*self.econtext).ecxt_per_tuple_memory);
        pg_sys::tuplestore_select_read_pointer(store, 0);
        pg_sys::tuplestore_rescan(store);
        let got = pg_sys::tuplestore_gettupleslot(store, true, false, self.input);
        pg_sys::tuplestore_rescan(store);
        if !got {
            return None;
        }
        (*self.econtext).ecxt_scantuple = self.input;
        if !self.qual.is_null() && !pg_sys::ExecQual(self.qual, self.econtext) {
            return Some(None);
        }
        Some(Some(
            self.exprs
                .iter()
                .map(|&e| {
                    let mut null = false;
                    let d = pg_sys::ExecEvalExprSwitchContext(e, self.econtext, &mut null);
                    (d, null)
                })
                .collect(),
        ))
    }
}

/// Whether two values of output column `col` are the same (both NULL, or
/// the same bytes: equal values stored differently only cost a write).
unsafe fn same_datum(
    rel: pg_sys::Relation,
    b: &Built,
    col: usize,
    x: (pg_sys::Datum, bool),
    y: (pg_sys::Datum, bool),
) -> bool {
    let desc = (*rel).rd_att;
    let att = &(*desc).attrs.as_slice((*desc).natts as usize)[b.atts[col]];
    match (x.1, y.1) {
        (true, true) => true,
        (false, false) => image_eq(x.0, y.0, att.attbyval, att.attlen),
        _ => false,
    }
}

/// Whether two non-NULL values of a type of `byval` and `len` have the
/// same image (PostgreSQL's `datum_image_eq`, which pgrx does not bind).
///
/// # Safety
/// Both are valid values of that type.
pub(super) unsafe fn image_eq(x: pg_sys::Datum, y: pg_sys::Datum, byval: bool, len: i16) -> bool {
    if byval {
        return x == y;
    }
    image(x, len) == image(y, len)
}

/// The bytes of a non-NULL value of a type passed by reference, of `len`
/// (-1 varlena, header included; -2 C string, without its NUL).
///
/// # Safety
/// `d` is a valid value of that type, alive as long as the slice is used.
unsafe fn image<'a>(d: pg_sys::Datum, len: i16) -> &'a [u8] {
    let size = match len {
        -1 => pgrx::varlena::varsize_any(d.cast_mut_ptr()),
        -2 => std::ffi::CStr::from_ptr(d.cast_mut_ptr()).to_bytes().len(),
        n => n as usize,
    };
    std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), size)
}

/// The unique index `ON CONFLICT` arbitrates on — btree, unique on exactly
/// the row key, NULLS NOT DISTINCT, no expressions or predicate — and per
/// index column the output column of its value, its equality function and
/// collation.
unsafe fn arbiter(
    rel: pg_sys::Relation,
    positions: &[(usize, OnConflict)],
) -> Option<(pg_sys::Oid, Vec<Key>)> {
    let mut key_atts: Vec<i16> = positions
        .iter()
        .filter(|(_, on)| *on == OnConflict::Key)
        .map(|(a, _)| *a as i16 + 1)
        .collect();
    key_atts.sort_unstable();
    let list = pg_sys::RelationGetIndexList(rel);
    let mut found = None;
    for i in 0..list_len(list) {
        let oid = list_oid(list, i);
        let idx = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let index = &*(*idx).rd_index;
        let nkeys = index.indnkeyatts as usize;
        let indkey = index.indkey.values.as_slice(nkeys);
        let mut sorted = indkey.to_vec();
        sorted.sort_unstable();
        let no_exprs = |anum: u32| {
            pg_sys::heap_attisnull((*idx).rd_indextuple, anum as i32, std::ptr::null_mut())
        };
        let usable = index.indisunique
            && index.indisvalid
            && index.indimmediate
            && index.indnullsnotdistinct
            && no_exprs(pg_sys::Anum_pg_index_indexprs)
            && no_exprs(pg_sys::Anum_pg_index_indpred)
            && sorted == key_atts
            && (*(*idx).rd_rel).relam == pg_sys::BTREE_AM_OID;
        if usable {
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
                found = Some((oid, keys));
            }
        }
        pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        if found.is_some() {
            break;
        }
    }
    found
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

/// Finds the slot row of `rows` (their key is the first's) and adds the
/// first row's values to it, less the second's when there are two; false
/// when it is not there (or not simply lockable): the SPI statement then
/// runs.
unsafe fn update(rel: pg_sys::Relation, b: &Built, rows: &[Vec<(pg_sys::Datum, bool)>]) -> bool {
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
    let remembered = tid_key(rel, b, &rows[0]).map(|k| ((*rel).rd_id, k));
    let root = remembered
        .as_ref()
        .and_then(remembered_tid)
        .filter(|&root| cached(rel, b, &rows[0], root, found))
        .or_else(|| locate(rel, b, &rows[0], found));
    let located = root.is_some();
    if let Some(root) = root {
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
        for a in &b.adds {
            let (mut delta, mut null) = rows[0][a.col];
            if let Some(&(old, old_null)) = rows.get(1).map(|r| &r[a.col]) {
                null |= old_null;
                if !null {
                    delta = pg_sys::FunctionCall2Coll(a.minus, pg_sys::InvalidOid, delta, old);
                }
            }
            if old_n[a.att] || null {
                new_n[a.att] = true;
            } else {
                new_v[a.att] =
                    pg_sys::FunctionCall2Coll(a.plus, pg_sys::InvalidOid, old_v[a.att], delta);
            }
        }
        // LEAST/GREATEST: NULLs are ignored; the kept value is the slot
        // row's unless the new one orders before (after) it.
        for e in &b.extremes {
            let (value, null) = rows[0][e.col];
            if null {
                continue;
            }
            let replace = old_n[e.att] || {
                let c = pg_sys::FunctionCall2Coll(e.cmp, e.collation, value, old_v[e.att]).value()
                    as i32;
                if e.greatest {
                    c > 0
                } else {
                    c < 0
                }
            };
            if replace {
                new_v[e.att] = value;
                new_n[e.att] = false;
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
        if let Some(key) = remembered {
            // A HOT update keeps the version in its chain, on the root's
            // page, where the index entries still lead; one to another page
            // got index entries of its own, so it is the next chain's root.
            // (An update on the same page that is not HOT, for an index the
            // owner put on a measure, leaves a root whose chain ends before
            // the new version: the next write misses and takes the index.)
            let written = (*new).tts_tid;
            remember_tid(
                key,
                if block_of(&written) == block_of(&root) {
                    root
                } else {
                    written
                },
            );
        }
    }
    pg_sys::ExecCloseIndices(rri);
    pg_sys::ExecResetTupleTable((*estate).es_tupleTable, false);
    pg_sys::FreeExecutorState(estate);
    located
}

/// The image of the row key of `values` (each column: a NULL flag, then
/// its bytes), or None when a value is not stored inline (compressed or
/// TOASTed): such rows take the index every time.
unsafe fn tid_key(
    rel: pg_sys::Relation,
    b: &Built,
    values: &[(pg_sys::Datum, bool)],
) -> Option<Vec<u8>> {
    let desc = (*rel).rd_att;
    let atts = (*desc).attrs.as_slice((*desc).natts as usize);
    let mut key = Vec::with_capacity(32);
    for &(col, _, _) in &b.keys {
        let (value, null) = values[col];
        key.push(u8::from(null));
        if null {
            continue;
        }
        let att = &atts[b.atts[col]];
        if att.attbyval {
            key.extend_from_slice(&value.value().to_ne_bytes());
            continue;
        }
        if att.attlen == -1 {
            let p = value.cast_mut_ptr::<pg_sys::varlena>();
            if pgrx::varlena::varatt_is_1b_e(p) || pgrx::varlena::varatt_is_4b_c(p) {
                return None;
            }
        }
        let bytes = image(value, att.attlen);
        key.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
        key.extend_from_slice(bytes);
    }
    Some(key)
}

/// The slot row whose HOT chain starts at `root`, locked, in `found`,
/// when the chain still leads to the current version of the row with the
/// key of `values`, committed and not being written by anyone else; false
/// sends the caller to the index (`locate`), which also waits where this
/// does not. This is the heap half of an index scan (`index_fetch_heap`
/// with the dirty snapshot `locate` uses) started from the tuple id the
/// index entry held, so a version another backend wrote into the chain
/// since is found as the index would find it. The fetch checks the line
/// pointer (a pruned or vacuumed one, or one reused for another row, is
/// safe to ask for: the key is compared) and keeps the page pinned until
/// the lock, so the tuple cannot be pruned in between, as with an index
/// scan's tuple.
unsafe fn cached(
    rel: pg_sys::Relation,
    b: &Built,
    values: &[(pg_sys::Datum, bool)],
    root: pg_sys::ItemPointerData,
    found: *mut pg_sys::TupleTableSlot,
) -> bool {
    if !block_exists(rel, block_of(&root)) {
        return false;
    }
    let mut snap = dirty_snapshot();
    let mut tid = root;
    let (mut call_again, mut all_dead) = (false, false);
    let fetch = pg_sys::table_index_fetch_begin(rel);
    let fetched = pg_sys::table_index_fetch_tuple(
        fetch,
        &mut tid,
        &mut snap,
        found,
        &mut call_again,
        &mut all_dead,
    );
    // The slot holds a pin of its own on the tuple's page.
    pg_sys::table_index_fetch_end(fetch);
    if !fetched {
        return false;
    }
    if snap.xmin != pg_sys::TransactionId::INVALID || snap.xmax != pg_sys::TransactionId::INVALID {
        return false;
    }
    let desc = (*rel).rd_att;
    let atts = (*desc).attrs.as_slice((*desc).natts as usize);
    let same = b.keys.iter().all(|&(col, _, _)| {
        let att = &atts[b.atts[col]];
        let mut null = false;
        let stored = pg_sys::slot_getattr(found, att.attnum.into(), &mut null);
        match (null, values[col].1) {
            (true, true) => true,
            (false, false) => image_eq(stored, values[col].0, att.attbyval, att.attlen),
            _ => false,
        }
    });
    if !same {
        return false;
    }
    let ok = lock_found(rel, found) == pg_sys::TM_Result::TM_Ok;
    if ok {
        TID_HITS.set(TID_HITS.get() + 1);
    }
    ok
}

fn block_of(tid: &pg_sys::ItemPointerData) -> pg_sys::BlockNumber {
    // SAFETY: reads the fields of a tuple id held by value.
    unsafe { pgrx::itemptr::item_pointer_get_block_number_no_check(*tid) }
}

/// The dirty snapshot of logical replication's row lookup: committed and
/// in-progress versions are seen, and an in-progress writer's xid is left
/// in `xmin`/`xmax`.
fn dirty_snapshot() -> pg_sys::SnapshotData {
    // SAFETY: all-zero is a valid SnapshotData (plain fields and pointers).
    let mut snap: pg_sys::SnapshotData = unsafe { std::mem::zeroed() };
    snap.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
    snap
}

/// Whether `block` is inside the summary's main fork, so that reading it
/// cannot fail. VACUUM may have truncated it away since the tuple id was
/// remembered, and a truncation that leaves the summary's and its
/// indexes' pg_class rows as they were sends no relcache invalidation,
/// so `TIDS` may still hold such a tid (a review reproduced it). It
/// cannot be truncated now: truncation needs an AccessExclusiveLock, and
/// the caller holds RowExclusiveLock on the summary.
///
/// The size this backend's storage manager last saw is enough when the
/// block is below it: a truncation sends a shared invalidation of the
/// storage (`smgrtruncate`), which this backend processed when it took
/// its lock on the summary and which closed the storage manager's
/// relation, so a size still cached was read after any truncation; sizes
/// only grow otherwise. Anything else asks the kernel (one `lseek`, which
/// a CPU profile of single-row writes showed on every one).
unsafe fn block_exists(rel: pg_sys::Relation, block: pg_sys::BlockNumber) -> bool {
    let smgr = (*rel).rd_smgr;
    let main = pg_sys::ForkNumber::MAIN_FORKNUM as usize;
    if !smgr.is_null() {
        let known = (*smgr).smgr_cached_nblocks[main];
        if known != pg_sys::InvalidBlockNumber && block < known {
            return true;
        }
    }
    block < pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM)
}

/// The slot row with the key of `values`, locked, in `found`, and the
/// tuple id its index entry holds (the root of its HOT chain): the index
/// probe of logical replication's `RelationFindReplTupleByIndex`, with
/// NULL keys searched as the NULLS NOT DISTINCT key stores them.
unsafe fn locate(
    rel: pg_sys::Relation,
    b: &Built,
    values: &[(pg_sys::Datum, bool)],
    found: *mut pg_sys::TupleTableSlot,
) -> Option<pg_sys::ItemPointerData> {
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
    let mut snap = dirty_snapshot();
    let scan = pg_sys::index_beginscan(rel, idx, &mut snap, n as i32, 0);
    let located = loop {
        pg_sys::index_rescan(scan, keys.as_mut_ptr(), n as i32, std::ptr::null_mut(), 0);
        // `index_getnext_slot`, keeping the tuple id of the index entry
        // (it passes `xs_heaptid` on to the heap fetch, which moves it
        // along the HOT chain to the version found).
        let root = loop {
            let tid = pg_sys::index_getnext_tid(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tid.is_null() {
                break None;
            }
            let root = *tid;
            if pg_sys::index_fetch_heap(scan, found) {
                break Some(root);
            }
        };
        let Some(root) = root else {
            break None;
        };
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
        match lock_found(rel, found) {
            pg_sys::TM_Result::TM_Ok => break Some(root),
            pg_sys::TM_Result::TM_Updated | pg_sys::TM_Result::TM_Deleted => continue,
            _ => break None,
        }
    };
    pg_sys::index_endscan(scan);
    pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
    located
}

/// Locks the tuple `found` holds (exclusively, waiting for its writer),
/// as logical replication's apply does.
unsafe fn lock_found(
    rel: pg_sys::Relation,
    found: *mut pg_sys::TupleTableSlot,
) -> pg_sys::TM_Result::Type {
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
    res
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
