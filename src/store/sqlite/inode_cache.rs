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
//! - It holds at most [`CAPACITY`] rows, and empties itself of the
//!   others when full.
//!
//! Some rows are newer than the database, by design: an attribute update
//! of a row held here ([`InodeCache::defer`]) is kept as the row's
//! *pending* change instead of an `UPDATE`, and written with the batch
//! (`SqliteTx::write_pending`). A directory's times move with every
//! create and unlink in it, and a file unlinked while the kernel holds it
//! takes its link count of 0 just before its row is deleted: one `UPDATE`
//! per directory per batch, and none for the file, instead of one per
//! operation (docs/MEASUREMENTS.md, "Inode updates written with the
//! batch"). The pending rows are written before anything could miss them:
//! before the batch commits, before an operation that may roll back to a
//! savepoint (a rollback empties this cache), and before a statement that
//! reads `inodes` other than through here (a listing's join, the search
//! for unlinked inodes, fsck's and stats' scans). A pending row is always
//! held ([`InodeCache::put`] keeps them when it empties itself); a
//! rollback of the whole batch drops them with it.
//!
//! It also knows, once asked, whether the store holds any extended
//! attribute: most volumes hold none, and then the kernel's `getxattr`
//! of `security.capability` (twice per file in `tar x`) and each inode's
//! deletion need no statement on `xattrs`. That knowledge is kept
//! conservatively: it becomes "some" before any attribute is written and
//! stays so, whatever rolls back (an attribute row a rollback removed
//! only makes a statement run that finds nothing).

use std::cell::{Cell, RefCell};

use crate::number_hash::{NumberMap, NumberSet};
use crate::store::rows::InodeRow;

/// Most rows kept (about 150 bytes each).
const CAPACITY: usize = 1 << 16;

#[derive(Debug, Default)]
pub(super) struct InodeCache {
    rows: RefCell<NumberMap<u64, InodeRow>>,
    /// Rows whose attributes the database does not hold yet (all in
    /// `rows`).
    pending: RefCell<NumberSet<u64>>,
    /// Changes ever taken as pending: an operation that fails compares
    /// it, as it compares SQLite's count of changes, to know whether it
    /// changed anything.
    deferred: Cell<u64>,
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
            let pending = self.pending.borrow();
            rows.retain(|ino, _| pending.contains(ino));
        }
        rows.insert(row.ino, row.clone());
    }

    /// Takes every attribute of `row` but `stored_bytes` as the held row's
    /// pending change, as `UPDATE_INODE` would write it; false (nothing
    /// done) when the row is not held, whose update then runs at once.
    pub(super) fn defer(&self, row: &InodeRow) -> bool {
        let mut rows = self.rows.borrow_mut();
        let Some(cached) = rows.get_mut(&row.ino) else {
            return false;
        };
        *cached = InodeRow {
            stored_bytes: cached.stored_bytes,
            target: cached.target.take(),
            ..row.clone()
        };
        self.pending.borrow_mut().insert(row.ino);
        self.deferred.set(self.deferred.get() + 1);
        true
    }

    /// How many changes were ever taken as pending ([`InodeCache::defer`]).
    pub(super) fn deferred(&self) -> u64 {
        self.deferred.get()
    }

    /// The rows with a pending change, in inode order, for writing.
    pub(super) fn pending(&self) -> Vec<InodeRow> {
        let rows = self.rows.borrow();
        let mut out: Vec<InodeRow> = self
            .pending
            .borrow()
            .iter()
            .filter_map(|ino| rows.get(ino).cloned())
            .collect();
        out.sort_unstable_by_key(|r| r.ino);
        out
    }

    /// After the pending rows were written.
    pub(super) fn written(&self) {
        self.pending.borrow_mut().clear();
    }

    /// Whether any row has a pending change.
    pub(super) fn any_pending(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// After `UPDATE inodes SET <every column but stored_bytes and target>`
    /// with `stored_bytes = stored_bytes + stored_delta`
    /// (`Writes::update_inode`, a write-back's update): the cached row
    /// takes those columns and moves its `stored_bytes` as the database's
    /// moved. A small file's write-back moves it, and dropping the row
    /// there sent the next read of it (the unlink's, a setattr's) back to
    /// SQLite.
    pub(super) fn updated(&self, row: &InodeRow, stored_delta: i64) {
        // Every attribute the row holds is in the database now.
        self.pending.borrow_mut().remove(&row.ino);
        if let Some(cached) = self.rows.borrow_mut().get_mut(&row.ino) {
            *cached = InodeRow {
                stored_bytes: cached.stored_bytes,
                target: cached.target.take(),
                ..row.clone()
            };
        }
        // No longer pending (above), so nothing comes back to write.
        let _ = self.added(row.ino, stored_delta);
    }

    /// After `UPDATE inodes SET stored_bytes = stored_bytes + delta`.
    /// Returns the row if it had a pending change and had to go, for the
    /// caller to write.
    #[must_use]
    pub(super) fn added(&self, ino: u64, delta: i64) -> Option<InodeRow> {
        let mut rows = self.rows.borrow_mut();
        let cached = rows.get_mut(&ino)?;
        match cached.stored_bytes.checked_add_signed(delta) {
            Some(stored_bytes) => {
                cached.stored_bytes = stored_bytes;
                None
            }
            // The database's count left the row's range (a damaged count,
            // which fsck names): the row is read again.
            None => {
                let row = rows.remove(&ino);
                row.filter(|_| self.pending.borrow_mut().remove(&ino))
            }
        }
    }

    /// After the row's deletion: its pending change goes with it.
    pub(super) fn forget(&self, ino: u64) {
        self.rows.borrow_mut().remove(&ino);
        self.pending.borrow_mut().remove(&ino);
    }

    /// After a rollback: no row here can be trusted, and pending changes
    /// went with the transaction that would have written them. (What is
    /// known of attributes stays: a rollback only removes attribute rows.)
    pub(super) fn clear(&self) {
        self.rows.borrow_mut().clear();
        self.pending.borrow_mut().clear();
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
