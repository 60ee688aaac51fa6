//! Deleting the rows of large unlinked files off the request path.
//!
//! A file's rows go one per block: 16384 for a 1 GiB file. They were
//! deleted inside the first write request's transaction after the kernel
//! let go of the file, which then waited 33-49 ms here for a 1 GiB file
//! (`bench/unlink_large.sh`), longer for a larger one, while it held the
//! store's writer and so every other writer waited too. An unlinked
//! inode that nothing references any more and that spans more than
//! `REAP_MIN_BLOCKS` blocks keeps its row (link count 0, no name) and
//! goes to the reaper's thread, which deletes its blocks from the end in
//! transactions of `REAP_CHUNK`, then the inode; other requests run
//! between them.
//!
//! Nothing is lost on a crash or an unmount part way: the inode still has
//! link count 0, and the mount's shutdown, or the next mount's open,
//! reclaims every such inode, as for a file unlinked while open.
//!
//! Only on a store of one mount: on a shared store an unlinked inode's row
//! is another mount's to reclaim once this one lets go, so it is deleted at
//! once as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::store::{Durability, Store};

/// Files of at most this many blocks are deleted in one transaction, as
/// before (256 rows: under a millisecond, at the 1 GiB file's rate).
pub(super) const REAP_MIN_BLOCKS: u64 = 256;
/// Blocks deleted per transaction of the reaper.
const REAP_CHUNK: usize = 1024;

/// The reaper's thread and the queue of inodes it has still to delete.
pub(super) struct Reaper {
    queue: Mutex<Option<Sender<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Reaper {
    /// Starts the thread. Failing that, the caller deletes large files in
    /// the unlink's transaction as for small ones.
    pub(super) fn start(store: Arc<Store>) -> std::io::Result<Reaper> {
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("llmfs-reaper".into())
            .spawn(move || run(&store, &rx, &stopped))?;
        Ok(Reaper {
            queue: Mutex::new(Some(tx)),
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues unlinked inode `ino` (its link count already 0 in a
    /// committed or batched transaction) for deletion.
    pub(super) fn reap(&self, ino: u64) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let sent = queue.as_ref().is_some_and(|q| q.send(ino).is_ok());
        if !sent {
            log::debug!("inode {ino} is left to the next mount's reclaim");
        }
    }

    /// Stops the thread after the transaction it is in; what it has not
    /// deleted yet stays for the shutdown's or the next mount's reclaim.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                log::error!("the reaper thread panicked");
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(store: &Store, queue: &Receiver<u64>, stop: &AtomicBool) {
    while let Ok(ino) = queue.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = reap(store, ino, stop) {
            log::warn!("deleting unlinked inode {ino}: {e} (the next mount reclaims it)");
        }
    }
}

/// Deletes unlinked inode `ino`'s blocks, last first, up to `REAP_CHUNK`
/// per transaction, then the inode. Each transaction first checks that the
/// inode is still unlinked (nothing can link an inode without a name, but
/// a damaged store is not trusted blindly), then finds the highest
/// `REAP_CHUNK` blocks left (so holes cost nothing, and no list of a
/// large file's blocks is held) and deletes them.
fn reap(store: &Store, ino: u64, stop: &AtomicBool) -> Result<()> {
    let unlinked = |m: &crate::store::WriteTx<'_>| -> Result<bool> {
        Ok(m.inode(ino)?.is_some_and(|row| row.nlink == 0))
    };
    // Block indices are below 2^63 (SQLite's integers are signed).
    let mut below = i64::MAX as u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let next = store.write(Durability::Normal, |m| {
            if !unlinked(m)? {
                return Ok::<_, Error>(None);
            }
            let chunk = m.block_indices_below(ino, below, REAP_CHUNK)?;
            let Some(&lowest) = chunk.last() else {
                m.delete_inode(ino)?;
                return Ok(None);
            };
            m.delete_blocks_from(ino, lowest)?;
            Ok(Some(lowest))
        })?;
        match next {
            Some(lowest) => below = lowest,
            None => return Ok(()),
        }
    }
}
