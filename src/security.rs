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

impl Restricted {
    /// Pushes the catalog-only search path and a GUC nest level, still as
    /// the caller; `act_as` then switches identity.
    pub fn enter() -> Restricted {
        let mut user = pg_sys::InvalidOid;
        let mut sec = 0;
        // SAFETY: plain reads, and a push that Drop (or abort) pops.
        let nest = unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            pg_sys::PushOverrideSearchPath(catalog_path());
            pg_sys::NewGUCNestLevel()
        };
        Restricted { user, sec, nest }
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
    Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_vigil'",
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID))
}

/// Role name for messages.
pub fn role_name(role: pg_sys::Oid) -> String {
    Spi::get_one::<String>(&format!(
        "SELECT pg_catalog.quote_ident(r.rolname::text) FROM pg_catalog.pg_roles r WHERE r.oid = {}",
        role.to_u32()
    ))
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("role {}", role.to_u32()))
}
