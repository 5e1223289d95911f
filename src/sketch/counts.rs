//! The bucket counts of a sketch store: a growable `[u64]` that lives either
//! on the Rust heap (values inside one function call, and unit tests) or in
//! a PostgreSQL memory context (aggregate states, once `adopt`ed). Written
//! by hand because `Vec` cannot take a custom allocator on stable Rust, and
//! aggregate states must live in the aggregate's memory context: that is
//! what PostgreSQL counts against `work_mem` when a hash aggregate decides
//! to spill (issue 13: a 1 000-group query otherwise grew to ~290 MB at
//! work_mem 4 MB).

use std::ops::{Deref, DerefMut};

/// A PostgreSQL memory context and how to allocate in it. The functions
/// come from `sql.rs` (palloc/pfree): this module names no PostgreSQL
/// symbol, so the pure unit tests link without a server.
#[derive(Debug, Clone, Copy)]
pub struct Arena {
    pub context: usize,
    /// Allocates `bytes` in `context`; raises (never returns null) on OOM.
    pub alloc: unsafe fn(context: usize, bytes: usize) -> *mut u8,
    pub free: unsafe fn(*mut u8),
}

/// Where the buffer lives: the Rust heap, or an arena.
#[derive(Debug, Clone, Copy)]
enum Home {
    Heap,
    Arena(Arena),
}

impl Home {
    fn same(&self, other: &Home) -> bool {
        match (self, other) {
            (Home::Heap, Home::Heap) => true,
            (Home::Arena(a), Home::Arena(b)) => a.context == b.context,
            _ => false,
        }
    }
}

pub struct Counts {
    home: Home,
    ptr: *mut u64,
    len: usize,
    cap: usize,
}

// SAFETY: a backend is single-threaded; the raw pointer is owned uniquely.
unsafe impl Send for Counts {}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            home: Home::Heap,
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            cap: 0,
        }
    }
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Clone for Counts {
    /// A clone is a new Rust value: it lives on the Rust heap.
    fn clone(&self) -> Self {
        let mut c = Counts::default();
        c.extend_zeroed(self.len);
        c.copy_from_slice(self);
        c
    }
}

impl Counts {
    pub fn zeroed(len: usize) -> Counts {
        let mut c = Counts::default();
        c.extend_zeroed(len);
        c
    }

    /// Moves the buffer into `arena` (a context that outlives this value),
    /// where every later growth also happens.
    pub fn adopt(&mut self, arena: Arena) {
        let home = Home::Arena(arena);
        if self.home.same(&home) {
            return;
        }
        let mut moved = Counts {
            home,
            ..Counts::default()
        };
        moved.extend_zeroed(self.len);
        moved.copy_from_slice(self);
        *self = moved;
    }

    fn reserve(&mut self, wanted: usize) {
        if wanted <= self.cap {
            return;
        }
        let cap = wanted.max(self.cap * 2).max(8);
        let bytes = cap
            .checked_mul(std::mem::size_of::<u64>())
            .expect("bounded by MAX_SPAN");
        let fresh = match self.home {
            Home::Heap => {
                let layout = std::alloc::Layout::array::<u64>(cap).expect("bounded");
                // SAFETY: a non-zero layout.
                let p = unsafe { std::alloc::alloc(layout) } as *mut u64;
                if p.is_null() {
                    std::alloc::handle_alloc_error(layout);
                }
                p
            }
            // SAFETY: an allocation in a live context; raises on OOM.
            Home::Arena(a) => unsafe { (a.alloc)(a.context, bytes) as *mut u64 },
        };
        // SAFETY: both buffers hold at least `len` u64s and do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, fresh, self.len) };
        self.release();
        self.ptr = fresh;
        self.cap = cap;
    }

    fn release(&mut self) {
        if self.cap == 0 {
            return;
        }
        match self.home {
            Home::Heap => {
                let layout = std::alloc::Layout::array::<u64>(self.cap).expect("bounded");
                // SAFETY: allocated above with this layout.
                unsafe { std::alloc::dealloc(self.ptr as *mut u8, layout) };
            }
            // SAFETY: a chunk palloc'd above, its context still alive (a
            // context's reset callbacks run before its memory is released).
            Home::Arena(a) => unsafe { (a.free)(self.ptr as *mut u8) },
        }
        self.cap = 0;
    }

    /// Appends `n` zero counts.
    pub fn extend_zeroed(&mut self, n: usize) {
        self.reserve(self.len + n);
        // SAFETY: reserved; zeroes the new tail.
        unsafe { std::ptr::write_bytes(self.ptr.add(self.len), 0, n) };
        self.len += n;
    }

    pub fn push(&mut self, v: u64) {
        self.extend_zeroed(1);
        let last = self.len - 1;
        self[last] = v;
    }

    /// Grows to `len` with zeroes (never shrinks).
    pub fn resize_zeroed(&mut self, len: usize) {
        if len > self.len {
            self.extend_zeroed(len - self.len);
        }
    }

    /// Inserts `n` zero counts at the front.
    pub fn prepend_zeroed(&mut self, n: usize) {
        let old = self.len;
        self.extend_zeroed(n);
        // SAFETY: within the buffer; `copy` handles the overlap.
        unsafe {
            std::ptr::copy(self.ptr, self.ptr.add(n), old);
            std::ptr::write_bytes(self.ptr, 0, n);
        }
    }
}

impl Drop for Counts {
    fn drop(&mut self) {
        self.release();
    }
}

impl Deref for Counts {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        // SAFETY: `len` initialised u64s (or a dangling pointer and 0).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for Counts {
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn grows_at_both_ends_like_a_vec() {
        let mut c = Counts::default();
        let mut v: Vec<u64> = Vec::new();
        for i in 0..100u64 {
            c.push(i);
            v.push(i);
        }
        c.prepend_zeroed(17);
        v.splice(0..0, std::iter::repeat_n(0, 17));
        c.resize_zeroed(300);
        v.resize(300, 0);
        c[5] = 9;
        v[5] = 9;
        assert_eq!(&c[..], &v[..]);
        let d = c.clone();
        drop(c);
        assert_eq!(&d[..], &v[..]);
        assert_eq!(&Counts::zeroed(3)[..], &[0, 0, 0]);
    }
}
