//! Group commit on the SQLite store. A commit costs far more than the few
//! statements of a metadata operation (SQLite writes every page the
//! transaction touched into the WAL again, and updates the WAL index), so
//! the writer connection does not commit each operation that need not be
//! durable (`Durability::Normal`): it keeps one transaction open, the
//! batch, and runs each operation in it inside a savepoint, so that a
//! failed operation rolls back alone; or, for an operation that makes
//! every check before its first change (`OpGuard::ChecksFirst`: create,
//! unlink, a close's write-back, ...), without one, as its errors leave
//! nothing to roll back. Should one fail after a change after all (an I/O
//! error) or panic, the whole batch is rolled back, as a crash would lose
//! it.
//!
//! The batch commits at whichever comes first:
//!
//! - a durable write (`fsync`, `fsyncdir`, unmount: `Store::sync`), which
//!   commits the batch and then its own transaction with an fsync, so that
//!   everything before it is on stable storage when it returns;
//! - [`MAX_AGE`] after the batch opened, on the committer thread;
//! - [`MAX_OPS`] operations or [`MAX_BYTES`] of stored records;
//! - a checkpoint or the store closing.
//!
//! Near a full disk (less than [`ROOM`] free on the store's filesystem
//! when a batch would open) every operation commits on its own, as
//! without batching, so that a full disk fails the operation that needed
//! the space, which keeps its data, rather than a batch of operations that
//! have already returned.
//!
//! Reads share a transaction the same way: a read with no transaction
//! open begins one (a read transaction) that the reads of the next
//! [`MAX_AGE`] reuse, sparing each `stat` SQLite's locking of the WAL
//! index; a write ends it and opens a batch.
//!
//! Reads through this connection see the batch (they run inside it); other
//! connections (the checkpointer, `llmfs stats` on a mounted store) see it
//! once it commits. A crash of the process loses the operations of the
//! open batch, as a crash of the machine loses a kernel filesystem's
//! writeback window; the store stays consistent (each commit is atomic and
//! the batches commit in order, so what survives is every operation up to
//! some point). If a batch fails to commit (a full disk, an I/O error) its
//! operations are lost the same way: the error goes to the operation whose
//! commit failed, and the next durable write reports it once (as Linux
//! reports a failed writeback at the next `fsync`).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::checkpoint::CommitCounter;
use super::inode_cache::InodeCache;
use super::meta::SqliteTx;
use super::segments::Segments;
use super::statements::Statements;
use crate::store::tx::{BackendTx, ReadTx, WriteTx};
use crate::store::{OpGuard, StoreError};

/// Longest time an operation that returned waits for its commit: what a
/// crash of the process may lose. 10 ms keeps a `tar x`'s commits about
/// one per hundred operations while losing less than an ext4 crash does.
pub(super) const MAX_AGE: Duration = Duration::from_millis(10);
/// Most operations one batch holds.
const MAX_OPS: u32 = 1024;
/// Most bytes of stored records one batch holds (its pages stay in
/// SQLite's page cache until it commits).
const MAX_BYTES: u64 = 8 << 20;
/// Longest a log restart waits for another connection's lock
/// (`Writer::restart_log`).
const RESTART_WAIT: Duration = Duration::from_millis(20);
/// Free space on the store's filesystem below which operations are not
/// batched: more than a batch's commit writes to the WAL (its records,
/// [`MAX_BYTES`], one write-back of up to the 32 MiB dirty budget, and the
/// metadata pages of [`MAX_OPS`] operations).
const ROOM: u64 = 128 << 20;
/// How far each AUTOINCREMENT counter moves on after a lost batch. The
/// counters went back with the batch, while the kernel may still hold the
/// inode numbers the batch handed out; no operation inserts more than two
/// rows into one table, so a batch took fewer numbers than this.
const RESEED_MARGIN: i64 = 4 * MAX_OPS as i64;

/// The open transaction.
#[derive(Debug)]
struct Batch {
    opened: Instant,
    ops: u32,
    bytes: u64,
    /// Commit after each operation (the disk is nearly full).
    alone: bool,
    /// A write transaction (false: only reads ran in it).
    writing: bool,
    /// It moved the AUTOINCREMENT counters on (after a lost batch).
    reseeded: bool,
}

self_cell::self_cell!(
    /// The writer's connection with its prepared statements, which borrow
    /// it (statements.rs).
    struct WriterConn {
        owner: Connection,
        #[not_covariant]
        dependent: Statements,
    }
    impl {Debug}
);

// SAFETY: the connection and the statements prepared on it move between
// threads together, as one value, and only inside the writer's mutex, so
// no two threads ever use them at once: what rusqlite's own `Connection`
// does with the statements of its cache (it is `Send`, and they are raw
// SQLite statement handles). Nothing outside `WriterConn` holds a borrow
// of the connection or a statement across that move: `Kept` statements
// live within one call on the writer.
unsafe impl Send for WriterConn {}

/// The writer connection with its batch.
#[derive(Debug)]
pub(super) struct Writer {
    conn: WriterConn,
    /// The store's directory, whose free space decides batching.
    dir: PathBuf,
    batch: Option<Batch>,
    /// Why the last batch was lost, until a durable write reports it.
    lost: Option<StoreError>,
    /// A batch was lost: move the AUTOINCREMENT counters on first.
    reseed: bool,
    /// Whether transactions stay open across operations (a committer
    /// thread ends them); a read-only store's do not.
    batching: bool,
    commits: Arc<CommitCounter>,
    segments: Arc<Segments>,
    /// Recently used inode rows (inode_cache.rs), on a store that batches
    /// (a read-write one): emptied at every rollback.
    inodes: InodeCache,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        dir: &Path,
        commits: Arc<CommitCounter>,
        batching: bool,
        segments: Arc<Segments>,
    ) -> Writer {
        Writer {
            segments,
            batching,
            conn: WriterConn::new(conn, |c| Statements::new(c)),
            dir: dir.to_path_buf(),
            batch: None,
            lost: None,
            reseed: false,
            commits,
            inodes: InodeCache::default(),
        }
    }

    /// A transaction's view of the connection (inside whichever
    /// transaction it has open), with its prepared statements and, where
    /// the store batches, the inode rows.
    fn with_tx<R>(&self, f: impl FnOnce(&SqliteTx<'_, '_>) -> R) -> R {
        let cache = self.batching.then_some(&self.inodes);
        self.conn
            .with_dependent(|_, kept| f(&SqliteTx::writer(kept, &self.segments, cache)))
    }

    /// Writes the inode updates held for the batch (inode_cache.rs).
    fn write_pending(&self) -> Result<(), StoreError> {
        self.with_tx(|m| m.write_pending())
    }

    /// Runs `sql`, one of the writer's prepared statements.
    fn run_kept(&self, sql: &'static str) -> Result<(), StoreError> {
        self.conn
            .with_dependent(|_, kept| kept.get(sql).and_then(|mut s| s.execute([])))?;
        Ok(())
    }

    /// The connection, for statements that run outside the batch's
    /// accounting (integrity check). Inside an open batch they see it.
    pub(super) fn conn(&self) -> &Connection {
        self.conn.borrow_owner()
    }

    /// Runs `f` over a consistent snapshot: inside the open transaction
    /// (which it must see if it is a batch), opening a read transaction
    /// if none is open; returns whether it opened one (the committer then
    /// has a deadline to keep) with `f`'s result.
    pub(super) fn read<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> (bool, Result<T, E>) {
        if self.batch.is_some() {
            let out = self.with_tx(|m| f(m));
            // A read may write the batch's pending inode updates first
            // (inode_cache.rs), and SQLite rolls back the whole
            // transaction on some errors of a write (a full disk).
            self.lose_batch_if_gone();
            return (false, out);
        }
        if self.batching {
            if let Err(e) = self.conn().execute_batch("BEGIN DEFERRED") {
                return (false, Err(StoreError::from(e).into()));
            }
            self.batch = Some(Batch {
                opened: Instant::now(),
                ops: 0,
                bytes: 0,
                alone: false,
                writing: false,
                reseeded: false,
            });
            return (true, self.with_tx(|m| f(m)));
        }
        (false, self.read_alone(f))
    }

    fn read_alone<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = Transaction::new_unchecked(self.conn(), TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&SqliteTx::new(&tx, &self.segments))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` as one operation of the batch, opening one if none is
    /// open; returns whether it opened one (the committer then has a
    /// deadline to keep) with `f`'s result.
    pub(super) fn write_batched<T, E: From<StoreError>>(
        &mut self,
        guard: OpGuard,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> (bool, Result<T, E>) {
        if self.batch.as_ref().is_some_and(|b| !b.writing) {
            // A read transaction: ended, and a write one begun.
            self.end_read();
        }
        let opened = self.batch.is_none();
        if opened {
            if let Err(e) = self.begin() {
                return (false, Err(e.into()));
            }
        }
        (opened, self.run_op(guard, f))
    }

    fn run_op<T, E: From<StoreError>>(
        &mut self,
        guard: OpGuard,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let savepoint = guard == OpGuard::Savepoint;
        // Two statements per operation: prepared once, not parsed each
        // time as `execute_batch` would (a profile of `cp -r` showed the
        // parsing).
        if savepoint {
            // A rollback to the savepoint empties the inode rows: the
            // earlier operations' pending updates go to SQLite first.
            if let Err(e) = self.write_pending() {
                self.lose_batch_if_gone();
                return Err(e.into());
            }
            self.run_kept("SAVEPOINT op")?;
        }
        // What the operation changes: rows in SQLite, and inode updates
        // held for the batch (inode_cache.rs).
        let changes = (self.conn().total_changes(), self.inodes.deferred());
        // A panic part-way through must not leave part of the operation
        // for the batch's commit.
        let (out, bytes) = self.with_tx(|meta| {
            let out = catch_unwind(AssertUnwindSafe(|| f(meta)));
            (out, meta.written())
        });
        let out = match out {
            Ok(out) => out,
            Err(panic) => {
                self.lose_batch("an operation panicked");
                resume_unwind(panic);
            }
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                if savepoint {
                    self.undo_op();
                } else if (self.conn().total_changes(), self.inodes.deferred()) != changes
                    || self.conn().is_autocommit()
                {
                    // It changed rows before it failed, and nothing can
                    // take back only those: the batch goes, as in a crash.
                    self.lose_batch("an operation failed after changing the store");
                }
                return Err(e);
            }
        };
        if savepoint {
            if let Err(e) = self.run_kept("RELEASE op") {
                self.undo_op();
                return Err(e.into());
            }
        }
        let batch = self.batch.as_mut().expect("a batch is open");
        batch.ops += 1;
        batch.bytes += bytes;
        if batch.alone || batch.ops >= MAX_OPS || batch.bytes >= MAX_BYTES {
            // This operation gets the error of the commit: only the ones
            // before it had returned.
            self.commit_batch(1)?;
        }
        Ok(out)
    }

    /// Rolls back the operation that failed, and only it when SQLite
    /// allows: after an I/O error, a full disk or a failed allocation
    /// SQLite may have rolled back the whole transaction itself.
    fn undo_op(&mut self) {
        self.inodes.clear();
        if !self.conn().is_autocommit() {
            match self.conn().execute_batch("ROLLBACK TO op; RELEASE op") {
                Ok(()) => return,
                Err(e) => log::error!("rolling back a failed operation: {e}"),
            }
        }
        self.lose_batch("an operation's error rolled back the batch");
    }

    /// After an error: if SQLite rolled the batch's transaction back
    /// itself, the batch is lost.
    fn lose_batch_if_gone(&mut self) {
        if self.batch.is_some() && self.conn().is_autocommit() {
            self.lose_batch("an error rolled back the batch");
        }
    }

    /// Rolls back the whole batch (if SQLite has not already), recording
    /// its operations as lost for the next durable write to report.
    fn lose_batch(&mut self, why: &str) {
        self.inodes.clear();
        if !self.conn().is_autocommit() {
            let _ = self.conn().execute_batch("ROLLBACK");
        }
        if let Some(batch) = self.batch.take() {
            // The counters' move went with the transaction too.
            self.reseed |= batch.reseeded;
            if batch.ops > 0 {
                self.record_loss(batch.ops, why.to_string(), false);
            }
        }
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn().execute_batch("BEGIN IMMEDIATE")?;
        let reseeded = self.reseed;
        if let Err(e) = self.reseed_counters() {
            self.inodes.clear();
            let _ = self.conn().execute_batch("ROLLBACK");
            return Err(e);
        }
        self.batch = Some(Batch {
            opened: Instant::now(),
            ops: 0,
            bytes: 0,
            alone: !self.batching || free_space(&self.dir).is_some_and(|free| free < ROOM),
            writing: true,
            reseeded,
        });
        Ok(())
    }

    /// After a lost batch: moves every AUTOINCREMENT counter past the
    /// numbers the batch took (inside the transaction just begun).
    fn reseed_counters(&mut self) -> Result<(), StoreError> {
        if self.reseed {
            self.conn()
                .execute("UPDATE sqlite_sequence SET seq = seq + ?1", [RESEED_MARGIN])?;
            self.reseed = false;
        }
        Ok(())
    }

    /// Commits the open batch, if any.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        self.commit_batch(0)
    }

    /// Commits the open batch; if that fails, its operations but the last
    /// `reporting` (which get the error) are recorded as lost.
    fn commit_batch(&mut self, reporting: u32) -> Result<(), StoreError> {
        if self.batch.as_ref().is_some_and(|b| !b.writing) {
            self.end_read();
            return Ok(());
        }
        let Some(batch) = self.batch.take() else {
            return Ok(());
        };
        // The inode updates held for the batch, then records in segment
        // files: no commit naming them may reach the WAL before they are
        // on stable storage (segments.rs).
        let committed = self
            .write_pending()
            .and_then(|()| self.segments.sync())
            .and_then(|()| Ok(self.conn().execute_batch("COMMIT")?));
        match committed {
            Ok(()) => {
                self.commits.committed();
                Ok(())
            }
            Err(e) => {
                self.inodes.clear();
                if !self.conn().is_autocommit() {
                    let _ = self.conn().execute_batch("ROLLBACK");
                }
                self.reseed |= batch.reseeded;
                let acknowledged = batch.ops.saturating_sub(reporting);
                if acknowledged == 0 {
                    return Err(e);
                }
                Err(self.record_loss(acknowledged, e.to_string(), e.is_disk_full()))
            }
        }
    }

    /// Ends the open read transaction (nothing to lose: it wrote nothing).
    fn end_read(&mut self) {
        self.batch = None;
        if let Err(e) = self.conn().execute_batch("COMMIT") {
            log::warn!("ending a read transaction: {e}");
            if !self.conn().is_autocommit() {
                let _ = self.conn().execute_batch("ROLLBACK");
            }
        }
    }

    /// Notes that `ops` acknowledged operations are gone, for the next
    /// durable write to report; returns the error.
    fn record_loss(&mut self, ops: u32, cause: String, disk_full: bool) -> StoreError {
        log::error!("{ops} operation(s) not yet committed were lost: {cause}");
        self.reseed = true;
        self.lost = Some(StoreError::BatchLost {
            ops,
            cause: cause.clone(),
            disk_full,
        });
        StoreError::BatchLost {
            ops,
            cause,
            disk_full,
        }
    }

    /// Commits the open batch, then runs a checkpoint in `mode` on this
    /// connection, waiting at most `wait` for another connection's lock.
    /// A checkpoint cannot run inside a transaction, and between two
    /// batches nothing of this connection's holds it back.
    pub(super) fn checkpoint_between_batches(
        &mut self,
        mode: &str,
        wait: Duration,
    ) -> Result<(), StoreError> {
        self.commit()?;
        self.conn().busy_timeout(wait)?;
        let done = self
            .conn()
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
        self.conn().busy_timeout(super::BUSY_TIMEOUT)?;
        done?;
        Ok(())
    }

    /// Moves what is left of the WAL into the database file and has the
    /// next batch start the log from its beginning (a RESTART checkpoint
    /// between two batches). Requests wait meanwhile: the checkpoint
    /// thread calls it right after a passive pass, so only what was
    /// committed during that pass is left to copy (checkpoint.rs). A
    /// reader of an older snapshot (`llmfs stats` on a mounted store)
    /// holds a RESTART back, and every request with it: it is waited for
    /// only briefly, and the restart left to the next pass.
    pub(super) fn restart_log(&mut self) -> Result<(), StoreError> {
        self.checkpoint_between_batches("RESTART", RESTART_WAIT)
    }

    /// Gives back the space of records no row names any more
    /// (`Segments::reclaim`), once every commit so far is on stable
    /// storage: it commits the batch and syncs first. A lost batch not yet
    /// reported is left for the next durable write to report (nothing is
    /// reclaimed meanwhile).
    pub(super) fn reclaim(&mut self, at_open: bool) -> Result<u64, StoreError> {
        if self.lost.is_some() {
            return Ok(0);
        }
        self.commit()?;
        self.conn().pragma_update(None, "synchronous", "FULL")?;
        let synced = self.durable_tx(|_| Ok::<_, StoreError>(()));
        let _ = self.conn().pragma_update(None, "synchronous", "NORMAL");
        synced?;
        self.segments.reclaim(self.conn(), at_open)
    }

    /// Runs `f` in a transaction of its own that is on stable storage when
    /// this returns, after committing the batch (so that it is too).
    pub(super) fn write_durable<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if let Err(e) = self.commit() {
            // Reported here: not again.
            self.lost = None;
            return Err(e.into());
        }
        if let Some(e) = self.lost.take() {
            return Err(e.into());
        }
        // `synchronous` cannot change inside a transaction: only now.
        self.conn()
            .pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::from)?;
        let result = self.durable_tx(f);
        let _ = self.conn().pragma_update(None, "synchronous", "NORMAL");
        result
    }

    /// `durable_tx_inner`, emptying the inode rows if it failed or `f`
    /// panicked: its transaction rolled back (dropped uncommitted), and
    /// the writer's lock is used again after a panic (`Shared::lock`).
    fn durable_tx<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match catch_unwind(AssertUnwindSafe(|| self.durable_tx_inner(f))) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => {
                self.inodes.clear();
                Err(e)
            }
            Err(panic) => {
                self.inodes.clear();
                resume_unwind(panic)
            }
        }
    }

    fn durable_tx_inner<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let reseed = self.reseed;
        let tx = Transaction::new_unchecked(self.conn(), TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        if reseed {
            tx.execute("UPDATE sqlite_sequence SET seq = seq + ?1", [RESEED_MARGIN])
                .map_err(StoreError::from)?;
        }
        let changes = tx.total_changes();
        // The writer's statements run on the connection, inside `tx`.
        let out = self.with_tx(|meta| {
            let out = f(meta)?;
            meta.write_pending()?;
            // A commit syncs the WAL only if it wrote a frame: one that
            // changed no row (a sync alone) bumps a counter, so that this
            // commit, and every earlier one, is on stable storage when it
            // returns. One that changed rows writes their pages anyway (an
            // `fsync` of a file with data waiting: the counter's page was
            // one of five).
            if tx.total_changes() == changes {
                meta.bump_sync_generation()?;
            }
            Ok::<_, E>(out)
        })?;
        self.segments.sync()?;
        tx.commit().map_err(StoreError::from)?;
        self.reseed = false;
        self.commits.committed();
        Ok(out)
    }

    fn deadline(&self) -> Option<Instant> {
        self.batch.as_ref().map(|b| b.opened + MAX_AGE)
    }
}

/// The writer, shared with the committer thread.
#[derive(Debug)]
pub(super) struct Shared {
    writer: Mutex<Writer>,
    /// Signalled when a batch opens, and to stop the committer.
    wake: Condvar,
    stop: AtomicBool,
}

impl Shared {
    pub(super) fn new(writer: Writer) -> Arc<Shared> {
        Arc::new(Shared {
            writer: Mutex::new(writer),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (an operation that panics takes its batch with it: `run_op`),
        // so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the committer a batch opened.
    pub(super) fn opened(&self) {
        self.wake.notify_one();
    }
}

/// The thread that commits a batch [`MAX_AGE`] after it opened; dropping
/// it stops the thread and commits what is open.
#[derive(Debug)]
pub(super) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(shared: Arc<Shared>) -> Result<Committer, StoreError> {
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("llmfs-commit".into())
                .spawn(move || run(&shared))
                .map_err(|e| StoreError::io("starting the commit thread", e))?
        };
        Ok(Committer {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        {
            let _writer = self.shared.lock();
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.shared.lock().commit() {
            log::error!("committing the last batch as the store closes: {e}");
        }
    }
}

fn run(shared: &Shared) {
    let mut writer = shared.lock();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        writer = match writer.deadline() {
            None => shared.wake.wait(writer).unwrap_or_else(|p| p.into_inner()),
            Some(due) => {
                let now = Instant::now();
                if now >= due {
                    // A failure is logged and kept for the next fsync.
                    let _ = writer.commit();
                    continue;
                }
                shared
                    .wake
                    .wait_timeout(writer, due - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

/// Bytes free for this process on the filesystem holding `dir`; `None`
/// if that cannot be told (then operations are batched).
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `sv` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut sv) } != 0 {
        return None;
    }
    Some((sv.f_bavail as u64).saturating_mul(sv.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::migrate;

    fn wal_frames(conn: &Connection) -> (i64, i64) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .unwrap()
    }

    /// `restart_log` commits the open batch, moves the whole log into the
    /// database file (a copy of that file alone holds every commit) and
    /// makes the next commit start the log over.
    #[test]
    fn restart_log_moves_the_log_into_the_database_and_starts_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let mut conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        migrate::migrate(&mut conn).unwrap();
        let segments = Arc::new(Segments::open(dir.path(), false, false).unwrap());
        let mut writer = Writer::new(conn, dir.path(), Arc::default(), true, segments);
        let value = "v".repeat(4000);
        for i in 0..200 {
            let (_, r) = writer.write_batched(OpGuard::Savepoint, |m| {
                m.set_volume_setting(&format!("k{i}"), &value)
            });
            r.unwrap();
        }
        // A reader of the snapshot before them holds the restart back: it
        // is left for later, and the connection keeps its own wait.
        let reader = Connection::open(&db).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM volume", [], |r| r.get(0))
            .unwrap();
        writer.restart_log().unwrap();
        let wait: i64 = writer
            .conn()
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(wait, super::super::BUSY_TIMEOUT.as_millis() as i64);
        reader.execute_batch("COMMIT").unwrap();
        writer.restart_log().unwrap();

        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&db, copy.path().join("db")).unwrap();
        let alone = Connection::open(copy.path().join("db")).unwrap();
        let n: i64 = alone
            .query_row("SELECT COUNT(*) FROM volume WHERE key LIKE 'k%'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 200, "the database file alone holds every commit");

        let (_, r) =
            writer.write_batched(OpGuard::Savepoint, |m| m.set_volume_setting("after", "v"));
        r.unwrap();
        writer.commit().unwrap();
        let other = Connection::open(&db).unwrap();
        let (log, _) = wal_frames(&other);
        assert!(
            (1..=8).contains(&log),
            "the commit after the restart starts the log over: {log} frames"
        );
    }
}
