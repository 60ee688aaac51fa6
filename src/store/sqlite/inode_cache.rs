//! The writer connection's copy of recently used inode rows.
//!
//! Every operation reads inode rows: an unlink its directory's and its
//! file's, the getattr of the directory the kernel sends after it, the
//! forget that follows; a create its directory's. Each read is a prepared
//! statement through SQLite's B-tree and rusqlite's column conversions,
//! and in a profile of the unlink case these reads were a fifth of the
//! daemon's time (docs/MEASUREMENTS.md). The same rows come back again and
//! again (a directory's on every operation in it), so the writer keeps the
//! rows it read or wrote here.
//!
//! Kept exact, or not at all:
//!
//! - Only the writer connection of a read-write store has one. Nothing
//!   else writes a SQLite store while it is open (the store's flock), and
//!   every statement of this crate that changes `inodes` runs in
//!   `SqliteTx` (meta.rs), which changes the cached row the same way or
//!   drops it.
//! - A transaction or savepoint that rolls back may have changed rows
//!   here: the writer empties the cache whenever it rolls back anything,
//!   an operation that panicked included (batch.rs), so a row here is
//!   never newer than the database.
//! - It holds at most [`CAPACITY`] rows, and empties itself when full.
//!
//! It also knows, once asked, whether the store holds any extended
//! attribute: most volumes hold none, and then the kernel's `getxattr`
//! of `security.capability` (twice per file in `tar x`) and each inode's
//! deletion need no statement on `xattrs`. That knowledge is kept
//! conservatively: it becomes "some" before any attribute is written and
//! stays so, whatever rolls back (an attribute row a rollback removed
//! only makes a statement run that finds nothing).

use std::cell::{Cell, RefCell};

use crate::number_hash::NumberMap;
use crate::store::rows::InodeRow;

/// Most rows kept (about 150 bytes each).
const CAPACITY: usize = 1 << 16;

#[derive(Debug, Default)]
pub(super) struct InodeCache {
    rows: RefCell<NumberMap<u64, InodeRow>>,
    /// Whether the store may hold attribute rows; `None` until asked.
    xattrs: Cell<Option<bool>>,
}

impl InodeCache {
    pub(super) fn get(&self, ino: u64) -> Option<InodeRow> {
        self.rows.borrow().get(&ino).cloned()
    }

    /// Keeps `row` as the database now holds it.
    pub(super) fn put(&self, row: &InodeRow) {
        let mut rows = self.rows.borrow_mut();
        if rows.len() >= CAPACITY && !rows.contains_key(&row.ino) {
            rows.clear();
        }
        rows.insert(row.ino, row.clone());
    }

    /// After `UPDATE inodes SET <every column but stored_bytes and target>`
    /// with `stored_bytes = stored_bytes + stored_delta`
    /// (`Writes::update_inode`, a write-back's update): the cached row
    /// takes those columns and moves its `stored_bytes` as the database's
    /// moved. A small file's write-back moves it, and dropping the row
    /// there sent the next read of it (the unlink's, a setattr's) back to
    /// SQLite.
    pub(super) fn updated(&self, row: &InodeRow, stored_delta: i64) {
        if let Some(cached) = self.rows.borrow_mut().get_mut(&row.ino) {
            *cached = InodeRow {
                stored_bytes: cached.stored_bytes,
                target: cached.target.take(),
                ..row.clone()
            };
        }
        self.added(row.ino, stored_delta);
    }

    /// After `UPDATE inodes SET stored_bytes = stored_bytes + delta`.
    pub(super) fn added(&self, ino: u64, delta: i64) {
        let mut rows = self.rows.borrow_mut();
        let Some(cached) = rows.get_mut(&ino) else {
            return;
        };
        match cached.stored_bytes.checked_add_signed(delta) {
            Some(stored_bytes) => cached.stored_bytes = stored_bytes,
            // The database's count left the row's range (a damaged count,
            // which fsck names): the row is read again.
            None => {
                rows.remove(&ino);
            }
        }
    }

    pub(super) fn forget(&self, ino: u64) {
        self.rows.borrow_mut().remove(&ino);
    }

    /// After a rollback: no row here can be trusted. (What is known of
    /// attributes stays: a rollback only removes attribute rows.)
    pub(super) fn clear(&self) {
        self.rows.borrow_mut().clear();
    }

    /// Whether the store may hold attribute rows, if known.
    pub(super) fn xattrs(&self) -> Option<bool> {
        self.xattrs.get()
    }

    /// Records what a query of `xattrs` found, or (`true`) that an
    /// attribute is about to be written.
    pub(super) fn set_xattrs(&self, any: bool) {
        if self.xattrs.get() != Some(true) {
            self.xattrs.set(Some(any));
        }
    }
}
