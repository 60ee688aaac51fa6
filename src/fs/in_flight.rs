//! Decodes of slow blocks (llm, cm) shared by their readers, with the
//! decoded prefix handed out early.
//!
//! A cache miss on a slow block starts its decode on a decode thread and
//! registers it here under (inode, block); a reader that misses on the same
//! block meanwhile (with the same record) waits on that decode instead of
//! starting a second one. The decoders report the block's prefix as it
//! grows (`codec::progress`: cm every 4 KiB, llm every wave of 16 KiB). A
//! read whose bytes lie in the part of the prefix that the payload's own
//! checksums vouch for (llm payload version 5: each wave's CRC-32C) returns
//! at once; with `FsConfig::early_reads`, so does one in the unchecked
//! part. The decode still runs to the end, is verified against the
//! record's CRC-32C and fills the cache as before; a read that needs the
//! whole block, or the block's last byte, waits for the verified block.
//!
//! Every waiter gets the decode's error (EIO, with the reason) if it fails,
//! and a decode thread that panics or stops without a result still wakes
//! its waiters with an error (`Finish`'s drop). At most [`MAX_IN_FLIGHT`]
//! decodes run on decode threads; past that a miss decodes on the reader's
//! own thread, unshared, as it always did.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::read_ahead::ReadAhead;
use super::Fs;
use crate::cache::BlockCache;
use crate::codec::progress::{self, Checked};
use crate::codec::{CodecSet, RecordHeader};
use crate::error::{Error, Result};
use crate::store::Store;

/// Most decodes on decode threads at once: each holds its record, its
/// prefix and the decoder's state (a cm predictor's tables, the model's
/// key/value cache), and they share the cores anyway.
pub(super) const MAX_IN_FLIGHT: usize = 4;

/// Part of a stored block, as a read gets it.
pub(super) enum Block {
    /// The whole block, verified (from the cache or a finished decode).
    Whole(Arc<Vec<u8>>),
    /// The block's first bytes, decoded but not yet verified (the rest of
    /// the block is still being decoded).
    Prefix(Vec<u8>),
    /// Verified raw bytes of the block from the given offset on: the
    /// frames of a framed record that a read touches.
    Span(usize, Arc<Vec<u8>>),
}

impl Block {
    /// The offset in the block of the first byte held.
    pub(super) fn start(&self) -> usize {
        match self {
            Block::Span(at, _) => *at,
            _ => 0,
        }
    }
}

impl Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Block::Whole(d) => d,
            Block::Prefix(p) => p,
            Block::Span(_, d) => d,
        }
    }
}

/// What a decode thread needs of the filesystem: the store (dictionaries,
/// the block to read ahead), the codecs, the cache and the read-ahead.
#[derive(Clone)]
pub(super) struct Decoding {
    pub(super) store: Arc<Store>,
    pub(super) codecs: Arc<CodecSet>,
    pub(super) cache: Arc<BlockCache>,
    pub(super) read_ahead: Option<Arc<ReadAhead>>,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) block_size: usize,
}

impl Decoding {
    /// Decodes and verifies a block record; a failure names inode and block.
    pub(super) fn decode(&self, ino: u64, idx: u64, record: &[u8]) -> Result<Vec<u8>> {
        let decoded = match self.codecs.decode_block(record, self.block_size) {
            Err(_) if self.learn_dictionary_of(record) => {
                self.codecs.decode_block(record, self.block_size)
            }
            other => other,
        };
        decoded.map_err(|source| match source {
            crate::codec::CodecError::Cancelled => Error::DecodeFailed(source.to_string()),
            source => Error::Corrupt {
                ino,
                block: idx,
                source,
            },
        })
    }

    /// For a cm or llm record primed with a dictionary this mount does not
    /// know (an archive worker on another machine built it after the mount
    /// loaded the volume's): loads the volume's dictionaries again and says
    /// whether it now knows that one, so the record is worth decoding again.
    fn learn_dictionary_of(&self, record: &[u8]) -> bool {
        let Some(dicts) = self.codecs.dictionaries() else {
            return false;
        };
        let Some(digest) = crate::codec::record_dictionary(record) else {
            return false;
        };
        if dicts.contains(&digest) {
            return false;
        }
        // A failure to reload leaves the block's own error to report.
        if let Err(e) = crate::dictionary::refresh(&self.store, dicts) {
            log::warn!("reloading the volume's dictionaries: {e}");
            return false;
        }
        dicts.contains(&digest)
    }
}

/// The decodes under way, and counters for tests and logs.
#[derive(Default)]
pub(super) struct InFlight {
    decodes: Mutex<HashMap<(u64, u64), Arc<Decode>>>,
    started: AtomicU64,
    joined: AtomicU64,
    /// Set when the filesystem is dropped: the decode threads stop at
    /// their next step (`progress::with_cancel`).
    pub(super) cancel: Arc<AtomicBool>,
}

/// How many decodes of slow blocks ran on decode threads, and how many
/// reads were served by a decode another read had started: they waited on
/// it, or found it ended between their cache miss and their look at the
/// decodes under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedDecodeStats {
    pub started: u64,
    pub joined: u64,
}

type Decodes = HashMap<(u64, u64), Arc<Decode>>;

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Decodes> {
        self.decodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new decode of `record` as block `key`'s (replacing one
    /// of another record), to be ended by the returned [`Finish`].
    fn start(self: &Arc<Self>, decodes: &mut Decodes, key: (u64, u64), record: Vec<u8>) -> Finish {
        let decode = Arc::new(Decode {
            record,
            progress: Mutex::default(),
            changed: Condvar::new(),
        });
        decodes.insert(key, Arc::clone(&decode));
        self.started.fetch_add(1, Ordering::Relaxed);
        Finish {
            in_flight: Arc::clone(self),
            key,
            decode,
        }
    }

    /// Registers the read-ahead of block `key`, unless a decode of it runs
    /// already or [`MAX_IN_FLIGHT`] do (then nothing is read ahead).
    pub(super) fn register_ahead(
        self: &Arc<Self>,
        key: (u64, u64),
        record: Vec<u8>,
    ) -> Option<Finish> {
        let mut decodes = self.lock();
        if decodes.contains_key(&key) || decodes.len() >= MAX_IN_FLIGHT {
            return None;
        }
        Some(self.start(&mut decodes, key, record))
    }
}

/// One block's decode: what readers wait on.
pub(super) struct Decode {
    /// The record being decoded: a reader of another record of the block
    /// (rewritten meanwhile) does not wait on this one.
    record: Vec<u8>,
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Default)]
struct Progress {
    /// The block's decoded prefix, while the decode runs.
    prefix: Vec<u8>,
    /// How much of `prefix` matched the payload's checksums.
    checked: usize,
    /// The verified block, or the decode's failure.
    done: Option<std::result::Result<Arc<Vec<u8>>, Failure>>,
}

/// A failed decode, handed to each of its waiters.
#[derive(Clone)]
enum Failure {
    Corrupt {
        ino: u64,
        block: u64,
        source: crate::codec::CodecError,
    },
    Other(String),
}

impl Failure {
    fn of(e: Error) -> Failure {
        match e {
            Error::Corrupt { ino, block, source } => Failure::Corrupt { ino, block, source },
            e => Failure::Other(e.to_string()),
        }
    }

    fn error(self) -> Error {
        match self {
            Failure::Corrupt { ino, block, source } => Error::Corrupt { ino, block, source },
            Failure::Other(msg) => Error::DecodeFailed(msg),
        }
    }
}

impl Decode {
    /// The record being decoded.
    pub(super) fn record(&self) -> &[u8] {
        &self.record
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a longer decoded prefix (the progress sink).
    fn advance(&self, prefix: &[u8], checked: Checked) {
        let mut p = self.lock();
        if p.done.is_some() || prefix.len() <= p.prefix.len() {
            return;
        }
        let from = p.prefix.len();
        p.prefix.extend_from_slice(&prefix[from..]);
        if checked == Checked::Yes {
            p.checked = prefix.len();
        }
        drop(p);
        self.changed.notify_all();
    }

    /// Waits until the block's first `need` bytes are decoded and checked
    /// (with `unchecked`, decoded; `None`: the whole block, verified) or the
    /// decode ended.
    fn wait(&self, need: Option<usize>, unchecked: bool) -> Result<Block> {
        let mut p = self.lock();
        loop {
            if let Some(done) = &p.done {
                return done.clone().map(Block::Whole).map_err(Failure::error);
            }
            if let Some(n) = need {
                let ready = if unchecked { p.prefix.len() } else { p.checked };
                if ready >= n {
                    return Ok(Block::Prefix(p.prefix[..n].to_vec()));
                }
            }
            p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Ends a decode: records its result, takes it out of the map and wakes its
/// waiters. Dropped without [`Finish::finish`] (a panic), it records a
/// failure, so no reader waits forever.
pub(super) struct Finish {
    in_flight: Arc<InFlight>,
    key: (u64, u64),
    decode: Arc<Decode>,
}

impl Finish {
    /// The decode this ends.
    pub(super) fn decode(&self) -> Arc<Decode> {
        Arc::clone(&self.decode)
    }

    /// A progress sink that hands the decoded prefix to the waiters.
    pub(super) fn sink(&self) -> progress::Sink {
        let decode = Arc::clone(&self.decode);
        Arc::new(move |prefix: &[u8], checked: Checked| decode.advance(prefix, checked))
    }

    /// Hands the verified block, or the error, to every waiter.
    pub(super) fn finish(self, result: Result<Arc<Vec<u8>>>) {
        self.decode.lock().done = Some(result.map_err(Failure::of));
        // Drop wakes the waiters and unregisters the decode.
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        {
            let mut p = self.decode.lock();
            if p.done.is_none() {
                p.done = Some(Err(Failure::Other(format!(
                    "decoding inode {} block {} stopped without a result",
                    self.key.0, self.key.1
                ))));
            }
            p.prefix = Vec::new();
        }
        let mut decodes = self.in_flight.lock();
        if decodes
            .get(&self.key)
            .is_some_and(|d| Arc::ptr_eq(d, &self.decode))
        {
            decodes.remove(&self.key);
        }
        drop(decodes);
        self.decode.changed.notify_all();
    }
}

impl Fs {
    /// What a decode thread needs of this filesystem.
    pub(super) fn decoding(&self) -> Decoding {
        Decoding {
            store: Arc::clone(&self.store),
            codecs: Arc::clone(&self.codecs),
            cache: Arc::clone(&self.cache),
            read_ahead: self.read_ahead.clone(),
            in_flight: Arc::clone(&self.in_flight),
            block_size: self.block_size(),
        }
    }

    /// Stops the decode threads of slow blocks at their next step: called
    /// at unmount (when the filesystem is dropped), after which a read
    /// that needs such a decode fails with EIO ("decode stopped").
    pub fn stop_decodes(&self) {
        self.in_flight.cancel.store(true, Ordering::Relaxed);
    }

    /// Counters of the decodes shared between readers.
    pub fn shared_decode_stats(&self) -> SharedDecodeStats {
        SharedDecodeStats {
            started: self.in_flight.started.load(Ordering::Relaxed),
            joined: self.in_flight.joined.load(Ordering::Relaxed),
        }
    }

    /// The first `need` bytes of slow block `idx` of `ino`, whose `record`
    /// missed the cache at `epoch`: from the decode of that record under
    /// way, or a new one. See the module's documentation.
    pub(super) fn decode_shared(
        &self,
        ino: u64,
        idx: u64,
        record: Vec<u8>,
        epoch: u64,
        need: usize,
    ) -> Result<Block> {
        let key = (ino, idx);
        // A prefix is worth handing out only short of the block's end (the
        // last byte comes with the verified block a moment later).
        let raw_len =
            RecordHeader::parse(&record, self.block_size()).map_or(0, |h| h.raw_len as usize);
        let need = (need < raw_len).then_some(need);
        let (decode, started) = {
            let mut decodes = self.in_flight.lock();
            let running = decodes.get(&key).filter(|d| d.record == record).cloned();
            if let Some(d) = running {
                (d, None)
            } else if let Some(data) = self.cache.peek(ino, idx) {
                // A decode that ended since this read missed the cache
                // cached the block before it left the map: this read was
                // served by it as much as one that waited on it.
                self.in_flight.joined.fetch_add(1, Ordering::Relaxed);
                return Ok(Block::Whole(data));
            } else if decodes.len() >= MAX_IN_FLIGHT {
                drop(decodes);
                let data = Arc::new(self.decoding().decode_reading_ahead(ino, idx, &record)?);
                self.cache.insert(ino, idx, Arc::clone(&data), epoch);
                return Ok(Block::Whole(data));
            } else {
                let finish = self.in_flight.start(&mut decodes, key, record);
                (finish.decode(), Some(finish))
            }
        };
        match started {
            Some(finish) => {
                let decoding = self.decoding();
                let spawned = std::thread::Builder::new()
                    .name("llmfs-decode".into())
                    .spawn(move || {
                        super::priority::leave_ring_scheduling();
                        decode_block(decoding, finish, epoch)
                    });
                if let Err(e) = spawned {
                    // The closure, and with it `finish`, is dropped: the
                    // decode ends failed, and this read decodes on its own
                    // thread.
                    log::warn!("starting a decode thread: {e}");
                    let data = Arc::new(self.decoding().decode_reading_ahead(
                        ino,
                        idx,
                        &decode.record,
                    )?);
                    self.cache.insert(ino, idx, Arc::clone(&data), epoch);
                    return Ok(Block::Whole(data));
                }
            }
            None => {
                self.in_flight.joined.fetch_add(1, Ordering::Relaxed);
            }
        }
        let block = decode.wait(need, self.config.early_reads)?;
        if let Block::Prefix(p) = &block {
            log::debug!(
                "inode {ino} block {idx}: read of bytes ..{} answered from the decoded prefix",
                p.len()
            );
        }
        Ok(block)
    }
}

/// A decode thread: decodes the block (and reads the next one ahead, as the
/// read-ahead policy says), reports its prefix as it grows, caches the
/// verified block and hands the result to every waiter.
fn decode_block(decoding: Decoding, finish: Finish, epoch: u64) {
    let (ino, idx) = finish.key;
    let decode = finish.decode();
    let sink = finish.sink();
    let mut finish = Some(finish);
    let mut done = |result: Result<Vec<u8>>| {
        let result = result.map(Arc::new);
        if let Ok(data) = &result {
            decoding.cache.insert(ino, idx, Arc::clone(data), epoch);
        }
        if let Some(f) = finish.take() {
            f.finish(result);
        }
    };
    let record = decode.record();
    let cancel = Arc::clone(&decoding.in_flight.cancel);
    progress::with_cancel(cancel, || {
        progress::with_sink(sink, || {
            decoding.decode_reading_ahead_then(ino, idx, record, &mut done)
        })
    })
}

/// Longest a dropped filesystem waits for its decode threads.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Drop for Fs {
    /// Stops the decode threads still running (a read that returned early,
    /// a block read ahead) at their next step and waits for them: they
    /// hold the store, and with it its lock, which a reopen would
    /// otherwise find taken for up to a block's decode.
    fn drop(&mut self) {
        // Nobody waits for their results any more.
        self.stop_decodes();
        // The reaper holds the store too; what it has not deleted is
        // reclaimed by the next mount.
        self.stop_reaper();
        let start = std::time::Instant::now();
        while Arc::strong_count(&self.store) > 1 {
            if start.elapsed() > DROP_WAIT {
                log::warn!("decode threads still running after {DROP_WAIT:?}; not waiting");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
