//! Checkpoints off the request path: a thread with its own connection
//! moves the WAL into the main database file, so that no request pays for
//! SQLite's automatic checkpoint (copying up to 4 MiB and an fsync of the
//! database file inside whichever commit crossed the threshold).
//!
//! The request connection has `wal_autocheckpoint` off. The thread wakes
//! every `PERIOD` and, if a transaction committed since its last pass, runs
//! a PASSIVE checkpoint, which never blocks writers. Under a steady stream
//! of commits a passive checkpoint never catches up with the log's end, so
//! the log would only grow: once the WAL file is past `RESTART_BYTES` the
//! passive pass is followed by a RESTART checkpoint, which makes the next
//! writer start the log from its beginning (the file shrinks to
//! `journal_size_limit` then). A RESTART holds the writer while it copies
//! what is left of the log and syncs the database file, so the writer
//! runs it itself (`Writer::restart_log`), between two batches and right
//! after the passive pass: what is left is what was committed during that
//! pass. Run from this thread's own connection it first had to win the
//! writer's lock between two batches, sleeping in SQLite's busy handler
//! (up to 100 ms a try), and then copied everything committed meanwhile:
//! under a stream of `tar x`s it took 50 ms to 1.9 s, and held every
//! request for up to 334-643 ms, against 56-66 ms now on the same disk
//! (bench/sustained_tar.sh). A failed checkpoint loses nothing: the WAL
//! keeps every committed transaction, and the next pass (or the next open)
//! tries again.
//!
//! After a pass, if rows gave up extents of segment files (the
//! `dead_extents` table is not empty), the thread has the writer reclaim
//! their space (`Writer::reclaim`, segments.rs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::batch::Shared;
use crate::store::StoreError;

/// How often the thread looks for new commits.
const PERIOD: Duration = Duration::from_millis(250);
/// WAL size past which a pass restarts the log.
const RESTART_BYTES: u64 = 64 << 20;

/// Counts commits, for the checkpointer to notice.
#[derive(Debug, Default)]
pub(super) struct CommitCounter(AtomicU64);

impl CommitCounter {
    pub(super) fn committed(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The checkpoint thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens the thread's connection to `db` and starts it. `writer`
    /// restarts the log; `reclaim`: it also gives back the space of dead
    /// extents (a store with segment tables).
    pub(super) fn start(
        db: &Path,
        commits: Arc<CommitCounter>,
        writer: Arc<Shared>,
        reclaim: bool,
    ) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let wal = wal_path(db);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("llmfs-checkpoint".into())
                .spawn(move || run(conn, &wal, &commits, &writer, reclaim, &stop))
                .map_err(|e| StoreError::io("starting the checkpoint thread", e))?
        };
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn run(
    conn: Connection,
    wal: &Path,
    commits: &CommitCounter,
    writer: &Shared,
    reclaim: bool,
    stop: &(Mutex<bool>, Condvar),
) {
    let (flag, cv) = stop;
    // The counter starts at zero with the store: commits made before this
    // thread first runs count too.
    let mut seen = 0;
    let mut stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        stopped = cv
            .wait_timeout(stopped, PERIOD)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stopped {
            return;
        }
        let now = commits.get();
        if now == seen {
            continue;
        }
        seen = now;
        let big = std::fs::metadata(wal).is_ok_and(|m| m.len() > RESTART_BYTES);
        // The lock is released while checkpointing so that Drop is not
        // held up longer than one pass.
        drop(stopped);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            log::warn!("background checkpoint failed, the WAL keeps the data: {e}");
        } else if big {
            if let Err(e) = writer.lock().restart_log() {
                log::warn!("restarting the WAL failed (retried at the next pass): {e}");
            }
        }
        if reclaim && has_dead_extents(&conn) {
            if let Err(e) = writer.lock().reclaim(false) {
                log::warn!("giving back the space of deleted records failed (retried later): {e}");
            }
        }
        stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// Whether committed changes left extents to reclaim.
fn has_dead_extents(conn: &Connection) -> bool {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM dead_extents)", [], |r| {
        r.get(0)
    })
    .unwrap_or(false)
}
