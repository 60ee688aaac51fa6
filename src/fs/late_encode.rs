//! Encoding a small file's blocks after its close.
//!
//! A small file's close waits for its data to be committed, and encoding
//! it was the largest part of that wait: zstd took a third of the
//! daemon's CPU time in `cp -r` of /usr/include, about 40 µs of a mean
//! file's 14 KB on this machine. So a close (a `Durability::Normal`
//! commit: `flush`, `release`, `setattr`, never `fsync`) of a file whose
//! dirty data is at most `LATE_MAX_FILE_BYTES` commits its blocks as raw
//! records, and this module's thread encodes them soon after, off the
//! request path, and swaps each encoded record in, in transactions of
//! several blocks, only if the block still holds the raw record it was
//! given (a block written again, truncated or deleted meanwhile keeps what
//! it has).
//!
//! - What a close waits for is unchanged in kind: its data committed in
//!   the store. What a crash may lose is unchanged too; a raw record left
//!   by a crash before its swap is a valid record, which the archiver
//!   re-encodes once the block is cold (`--archive-after`), as any other.
//! - The raw bytes waiting for their encoding are bounded
//!   (`LATE_BUDGET_BYTES`): past it, a close encodes its own blocks as
//!   before, so a writer faster than this thread costs at most that much
//!   extra space, for as long as the thread needs to catch up.
//! - The thread sleeps while nothing waits; a close wakes it only when the
//!   queue was empty, and it lets a few more closes queue up
//!   (`GATHER_WAIT`) before each transaction.
//! - Unmount encodes what is still queued before its final commit.
//!
//! Only on a store of one mount (SQLite), with the background compression
//! of `--compress background`; never for llm encodings (the model's
//! encoding is slow enough that a close waits for it as ever).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::write_back::{Encoded, Encoder};
use crate::codec::RECORD_HEADER_LEN;
use crate::error::{Error, Result};
use crate::store::{ArchiveTier, Durability, Store};

/// Largest file (its dirty bytes at the close) whose encoding waits for
/// this thread: a copy or an unpacked tree's files. A larger file's close
/// pays its encoding, which its write time already dwarfs.
pub(super) const LATE_MAX_FILE_BYTES: u64 = 256 << 10;
/// Most raw bytes queued for encoding at once.
const LATE_BUDGET_BYTES: usize = 16 << 20;
/// Most raw bytes encoded per transaction.
const BATCH_BYTES: usize = 1 << 20;
/// How long the thread, woken by a close, lets more closes queue up
/// before its transaction.
const GATHER_WAIT: Duration = Duration::from_millis(1);

/// A block committed raw, waiting for its encoding.
struct Item {
    ino: u64,
    idx: u64,
    /// The raw record as committed (header and the block's bytes).
    record: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Raw bytes queued or being encoded.
    bytes: usize,
    /// Set by `finish`: encode what is queued, then end.
    finishing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The thread that encodes small files' blocks after their close.
pub(super) struct LateEncoder {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LateEncoder {
    /// Starts the thread. Failing that, closes encode their own blocks.
    pub(super) fn start(store: Arc<Store>, encoder: Encoder) -> std::io::Result<LateEncoder> {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("llmfs-encode".into())
            .spawn(move || run(&store, &encoder, &theirs))?;
        Ok(LateEncoder {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether `bytes` more raw bytes fit in the budget (and the thread
    /// still takes work).
    pub(super) fn has_room(&self, bytes: u64) -> bool {
        let q = self.shared.queue();
        !q.finishing && (q.bytes as u64).saturating_add(bytes) <= LATE_BUDGET_BYTES as u64
    }

    /// Queues inode `ino`'s blocks just committed raw; others (holes,
    /// records the encoder kept elsewhere) are skipped.
    pub(super) fn queue(&self, ino: u64, records: Vec<(u64, Option<Encoded>)>) {
        let mut q = self.shared.queue();
        let was_empty = q.items.is_empty();
        for (idx, enc) in records {
            let Some(record) = enc.and_then(Encoded::into_raw_record) else {
                continue;
            };
            q.bytes += record.len();
            q.items.push_back(Item { ino, idx, record });
        }
        if was_empty && !q.items.is_empty() {
            self.shared.wake.notify_one();
        }
    }

    /// Encodes what is queued and stops the thread: at unmount, before
    /// its final commit. Later closes encode their own blocks.
    pub(super) fn finish(&self) {
        self.shared.queue().finishing = true;
        self.shared.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                log::error!("the encoding thread panicked; its blocks stay raw until archived");
            }
        }
    }
}

impl Drop for LateEncoder {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(store: &Store, encoder: &Encoder, shared: &Shared) {
    loop {
        let batch = {
            let mut q = shared.queue();
            if q.items.is_empty() && !q.finishing {
                q = shared
                    .wake
                    .wait_while(q, |q| q.items.is_empty() && !q.finishing)
                    .unwrap_or_else(|p| p.into_inner());
                if !q.finishing {
                    drop(q);
                    std::thread::sleep(GATHER_WAIT);
                    q = shared.queue();
                }
            }
            if q.items.is_empty() {
                return;
            }
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(item) = q.items.pop_front() {
                bytes += item.record.len();
                batch.push(item);
                if bytes >= BATCH_BYTES {
                    break;
                }
            }
            batch
        };
        let bytes: usize = batch.iter().map(|i| i.record.len()).sum();
        if let Err(e) = encode_batch(store, encoder, &batch) {
            // The blocks keep their raw records, which the archiver
            // re-encodes in time.
            log::warn!(
                "encoding {} blocks after their close failed ({e}); they stay raw until archived",
                batch.len()
            );
        }
        let mut q = shared.queue();
        q.bytes = q.bytes.saturating_sub(bytes);
    }
}

/// Encodes each block of `batch` and, in one transaction, replaces each
/// block's raw record by its encoding where the block still holds it.
fn encode_batch(store: &Store, encoder: &Encoder, batch: &[Item]) -> Result<()> {
    let mut swaps = Vec::with_capacity(batch.len());
    for item in batch {
        let data = item.record.get(RECORD_HEADER_LEN..).ok_or_else(|| {
            Error::Inconsistent(format!(
                "inode {} block {}: a raw record without its header",
                item.ino, item.idx
            ))
        })?;
        // Data the encoder stores raw anyway stays as it is.
        if let Some((codec, record)) = encoder.encode(data)?.and_then(Encoded::into_encoded) {
            swaps.push((item, codec, record));
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    store.write(Durability::Normal, |m| {
        for (item, codec, record) in &swaps {
            m.swap_archived_block(
                item.ino,
                item.idx,
                &item.record,
                Some((*codec, record.as_slice())),
                ArchiveTier::Pending,
            )?;
        }
        Ok::<_, Error>(())
    })
}
