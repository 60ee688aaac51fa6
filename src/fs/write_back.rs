//! Encoding written blocks, and write-back off the request path.
//!
//! A writer that fills the dirty budget used to encode and commit the
//! file's dirty blocks itself, under the state lock, so that the writer
//! (and every other request) stood still for the whole encode and commit.
//! Now, once the dirty data not yet on its way to the store passes a
//! quarter of the budget ([`START_SHARE`]), the file's dirty blocks move to
//! a write-back that a thread of its own encodes and commits while
//! requests go on:
//!
//! - At most one write-back is in flight. Its blocks stay readable (a read
//!   takes a block from the file's dirty blocks, then from those in
//!   flight, then from the store), and a partial write of one of them
//!   starts a new dirty block from the in-flight copy.
//! - A writer waits for the write-back in flight only when dirty and
//!   in-flight data together pass the whole budget (memory stays bounded).
//! - `flush`, `fsync`, `release`, truncation, `setattr` and unmount first
//!   wait for a write-back of their file (`Fs::settle_write_back`), so a
//!   later commit of the same file never overtakes an earlier one, and
//!   fsync covers the blocks in flight.
//! - The write-back's thread touches neither the state lock nor anything
//!   behind it: whoever holds the state lock may wait for it without a
//!   deadlock. Its result is applied (blocks dropped from memory, cached
//!   decodes invalidated) under the state lock by the next request that
//!   settles it.
//! - A failed write-back loses nothing: its blocks become dirty again
//!   (unless written anew meanwhile), and the writer that next passes the
//!   budget writes back on its own thread, as before, so that the error
//!   (a full disk) reaches a `write`, or the next `close`/`fsync` retries.
//!
//! - A large write-back is encoded in pieces on the encoding threads while
//!   its own thread appends the pieces already encoded to a segment, in
//!   block order (`Encoder::encode_pipelined`), so that appending does not
//!   wait for the whole encoding, nor the encoding threads for the append.
//!
//! The commit is an ordinary `Durability::Normal` write (the store batches
//! it as any other); what a crash may lose is unchanged.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock};

use super::free_space::FreeSpace;
use super::{Fs, OpenInode, State, WriteEncoding, RAW_INTERIM_MAX_BYTES};
use crate::codec::CodecId;
use crate::codec::{CodecError, CodecSet, RecordHeader};
use crate::error::{Error, Result};
use crate::store::{Appended, BlockWrite, Durability, Extent, InodeRow, Store, WriteTx};

/// Dirty blocks of one file by index, each a full block-size buffer.
pub(super) type Blocks = BTreeMap<u64, Vec<u8>>;

/// Encoded blocks by index, in index order; `None` for a hole.
pub(super) type Records = Vec<(u64, Option<Encoded>)>;

/// A change to an inode's row made in a write-back's transaction; says
/// whether it changed anything. It cannot fail: its transaction makes
/// every check before its first change (`Fs::transact_checked`).
pub(super) type RowEdit<'a> = dyn Fn(&mut InodeRow) -> bool + 'a;

/// Most threads one write-back encodes on.
const ENCODE_THREADS: usize = 8;
/// Fewest blocks per encoding thread worth starting one for.
const PARALLEL_MIN_BLOCKS: usize = 4;
/// Bytes of blocks per piece of a pipelined write-back
/// (`encode_pipelined`): 16 of the default 64 KiB blocks, so that the
/// first append starts after a few ms of encoding, and an append (with its
/// `sync_file_range`) carries enough records to be worth a call.
const PIECE_BYTES: usize = 1 << 20;
/// Fewest pieces a write-back is pipelined for.
const PIPELINE_MIN_PIECES: usize = 4;

/// Threads a large write-back encodes on: the machine's cores, up to
/// `ENCODE_THREADS`. Asked once: `available_parallelism` reads the
/// process's cgroup files on every call, which cost a small file's close
/// about as much as compressing it (a profile of 14 KB files: 23% of
/// the core's time).
fn encode_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(ENCODE_THREADS)
    })
}

/// One encoded block, ready to store.
pub(super) struct Encoded {
    codec: u8,
    raw_len: u64,
    record: Vec<u8>,
    /// Where the record was written outside the database, if it was.
    extent: Option<Extent>,
}

/// How written blocks are encoded: the volume's codecs, and which of its
/// encodings (`FsConfig::write_encoding`).
#[derive(Clone)]
pub(super) struct Encoder {
    pub(super) codecs: Arc<CodecSet>,
    pub(super) encoding: WriteEncoding,
    /// `FsConfig::segment_min_bytes`: appending costs an `fdatasync` of
    /// its own, which a small file's close should not pay (its records
    /// ride in the batch).
    pub(super) segment_min_bytes: usize,
    /// `FsConfig::raw_interim_min_free`.
    pub(super) raw_interim_min_free: Option<u64>,
    /// The store's free space, as `raw_interim_min_free` is checked
    /// against it.
    pub(super) free_space: Arc<FreeSpace>,
}

impl Encoder {
    /// Encodes one block's valid bytes; `None` for an all-zero block,
    /// which is stored as a hole.
    pub(super) fn encode(&self, data: &[u8]) -> Result<Option<Encoded>> {
        self.encode_with(data, |data| match self.encoding {
            WriteEncoding::Fast => self.codecs.encode_block(data),
            WriteEncoding::Interim => self.codecs.encode_block_interim(data),
            WriteEncoding::Best => self.codecs.encode_block_best(data),
        })
    }

    /// One block as a raw record; `None` for an all-zero block.
    fn encode_raw(&self, data: &[u8]) -> Result<Option<Encoded>> {
        self.encode_with(data, |data| self.codecs.encode_block_raw(data))
    }

    fn encode_with(
        &self,
        data: &[u8],
        encode: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, CodecError>,
    ) -> Result<Option<Encoded>> {
        if data.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let record =
            encode(data).map_err(|e| Error::Inconsistent(format!("encoding failed: {e}")))?;
        let header = RecordHeader::parse(&record, data.len())
            .map_err(|e| Error::Inconsistent(format!("encoder wrote a bad record: {e}")))?;
        Ok(Some(Encoded {
            codec: header.codec as u8,
            raw_len: data.len() as u64,
            record,
            extent: None,
        }))
    }

    /// Encodes blocks (index, valid bytes) on up to `ENCODE_THREADS`
    /// threads at once, one share of them each: a large write-back takes a
    /// fraction of the time on a machine with more than one core. Few
    /// blocks are encoded on the calling thread.
    fn encode_all(&self, jobs: &[(u64, &[u8])]) -> Result<Records> {
        let threads = encode_threads();
        if jobs.len() < 2 * PARALLEL_MIN_BLOCKS || threads < 2 {
            return jobs
                .iter()
                .map(|&(idx, data)| Ok((idx, self.encode(data)?)))
                .collect();
        }
        let mut out = Vec::with_capacity(jobs.len());
        self.encode_pieces(jobs, jobs.len().div_ceil(threads), |part| {
            out.extend(part);
            Ok(())
        })?;
        Ok(out)
    }

    /// Encodes `jobs` in pieces of `piece_blocks` on up to
    /// `ENCODE_THREADS` threads, which take the pieces in turn, and hands
    /// each piece's records to `take` on the calling thread, in order, as
    /// soon as it and the pieces before it are encoded. An error (an
    /// encode's or `take`'s) stops the threads after their current piece
    /// and is returned; a thread's panic is an error too.
    fn encode_pieces(
        &self,
        jobs: &[(u64, &[u8])],
        piece_blocks: usize,
        mut take: impl FnMut(Records) -> Result<()>,
    ) -> Result<()> {
        let pieces: Vec<&[(u64, &[u8])]> = jobs.chunks(piece_blocks.max(1)).collect();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<(usize, Result<Records>)>();
            let workers: Vec<_> = (0..encode_threads().min(pieces.len()))
                .map(|_| {
                    let tx = tx.clone();
                    let (pieces, next, stop) = (&pieces, &next, &stop);
                    s.spawn(move || {
                        super::priority::leave_ring_scheduling();
                        while !stop.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(piece) = pieces.get(i) else {
                                break;
                            };
                            let part = piece
                                .iter()
                                .map(|&(idx, data)| Ok((idx, self.encode(data)?)))
                                .collect::<Result<Records>>();
                            let failed = part.is_err();
                            if tx.send((i, part)).is_err() || failed {
                                break;
                            }
                        }
                    })
                })
                .collect();
            // The receiving loop ends once every worker is gone.
            drop(tx);
            let result = take_in_order(&rx, pieces.len(), &mut take);
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            drop(rx);
            // Joined here, not by the scope, so that a panic is an error
            // rather than a panic of this thread.
            let mut panicked = false;
            for w in workers {
                panicked |= w.join().is_err();
            }
            if panicked {
                return Err(Error::Inconsistent("an encoding thread panicked".into()));
            }
            result
        })
    }

    /// Encodes a file's dirty blocks (each block's bytes below `size`;
    /// blocks at or past it are holes left by a shrink) and writes the
    /// records of a large write-back into the store's segments
    /// ([`append_records`]). The appends must live until the transaction
    /// that names the records has run, and each be marked
    /// [`Appended::named`] if it succeeded. A small write-back of the
    /// interim encoding is stored raw while `store`'s disk has room
    /// (`FsConfig::raw_interim_min_free`); a large one on a machine with
    /// more than one core is encoded and appended piece by piece
    /// (`encode_pipelined`).
    pub(super) fn encode_and_append<'s>(
        &self,
        store: &'s Store,
        blocks: &Blocks,
        size: u64,
        block_size: u64,
    ) -> Result<(Records, Vec<Appended<'s>>)> {
        let jobs: Vec<(u64, &[u8])> = blocks
            .iter()
            .map(|(&idx, buf)| {
                let start = idx * block_size;
                let valid = if start >= size {
                    0
                } else {
                    (size - start).min(block_size) as usize
                };
                (idx, &buf[..valid])
            })
            .collect();
        let piece_blocks = (PIECE_BYTES / block_size.max(1) as usize).max(1);
        let mut records = if self.stores_raw(store, &jobs) {
            jobs.iter()
                .map(|&(idx, data)| Ok((idx, self.encode_raw(data)?)))
                .collect::<Result<Records>>()?
        } else if jobs.len() >= PIPELINE_MIN_PIECES * piece_blocks && encode_threads() >= 2 {
            return self.encode_pipelined(store, &jobs, piece_blocks);
        } else {
            self.encode_all(&jobs)?
        };
        let appended = append_records(store, self.segment_min_bytes, &mut records)?;
        Ok((records, appended.into_iter().collect()))
    }

    /// Encodes a large write-back in pieces of `piece_blocks` blocks
    /// ([`PIECE_BYTES`]) on the encoding threads (`encode_pieces`), while
    /// this thread appends the pieces already encoded to a segment, in
    /// order. Done one after the other, the append (5-8 ms for the 9 MB of
    /// records of a 17 MiB write-back) left the encoding threads idle and
    /// the writer waiting at the dirty budget. The rule for what goes to a segment is `append_records`'s
    /// for the write-back as a whole: nothing is appended until the
    /// records encoded reach `segment_min_bytes`; past that, every piece is.
    fn encode_pipelined<'s>(
        &self,
        store: &'s Store,
        jobs: &[(u64, &[u8])],
        piece_blocks: usize,
    ) -> Result<(Records, Vec<Appended<'s>>)> {
        let mut records: Records = Vec::with_capacity(jobs.len());
        let mut appended = Vec::new();
        // Records from here on are not in a segment yet.
        let mut unplaced = 0;
        // Whether the store takes records outside the database.
        let mut segments = true;
        self.encode_pieces(jobs, piece_blocks, |part| {
            records.extend(part);
            let rest = &mut records[unplaced..];
            let bytes = placed_bytes(rest);
            // Below the minimum so far, the write-back may yet stay inline
            // whole.
            if !segments || appended.is_empty() && bytes < self.segment_min_bytes.max(1) {
                return Ok(());
            }
            match append_records(store, 1, rest)? {
                Some(a) => appended.push(a),
                None => segments = bytes == 0,
            }
            unplaced = records.len();
            Ok(())
        })?;
        Ok((records, appended))
    }

    /// Whether `jobs` are stored raw: the interim encoding (the archiver
    /// encodes every block within minutes), a small file's worth of bytes,
    /// and room on the store's disk for them unencoded. The free space is
    /// read at most every 10 ms and lowered by each raw write-back
    /// (free_space.rs), so a disk filling up goes back to encoding at once.
    fn stores_raw(&self, store: &Store, jobs: &[(u64, &[u8])]) -> bool {
        let Some(min_free) = self.raw_interim_min_free else {
            return false;
        };
        let bytes: usize = jobs.iter().map(|(_, data)| data.len()).sum();
        self.encoding == WriteEncoding::Interim
            && bytes <= RAW_INTERIM_MAX_BYTES
            && self.free_space.take(store, bytes as u64, min_free)
    }
}

/// Writes a large write-back's records into the store's segment files
/// (docs/DESIGN.md, "Block payloads outside SQLite"), on stable storage
/// before the transaction that names them runs; each record placed gets
/// its extent. Records stay inline when they are fewer than `min_bytes`
/// in all (`FsConfig::segment_min_bytes`), on a store without segments,
/// and for llm records (whose payload headers the store's queries read).
/// The result must live until that transaction has run, and be marked
/// [`Appended::named`] if it succeeded.
fn append_records<'s>(
    store: &'s Store,
    min_bytes: usize,
    records: &mut [(u64, Option<Encoded>)],
) -> Result<Option<Appended<'s>>> {
    let bytes = placed_bytes(records);
    if bytes == 0 || bytes < min_bytes {
        return Ok(None);
    }
    let mut placed: Vec<&mut Encoded> = records
        .iter_mut()
        .filter_map(|(_, e)| e.as_mut())
        .filter(|e| e.codec != CodecId::Llm as u8)
        .collect();
    let slices: Vec<&[u8]> = placed.iter().map(|e| e.record.as_slice()).collect();
    let Some(appended) = store.append_records(&slices)? else {
        return Ok(None);
    };
    for (e, extent) in placed.iter_mut().zip(appended.extents()) {
        e.extent = Some(*extent);
    }
    Ok(Some(appended))
}

/// The bytes of `records` that a segment would take (all but llm
/// records and holes).
fn placed_bytes(records: &[(u64, Option<Encoded>)]) -> usize {
    records
        .iter()
        .filter_map(|(_, e)| e.as_ref())
        .filter(|e| e.codec != CodecId::Llm as u8)
        .map(|e| e.record.len())
        .sum()
}

/// Hands the pieces that come through `rx` (index, records) to `take` in
/// index order, keeping those that come early; an error if fewer than
/// `pieces` came (a worker stopped early).
fn take_in_order(
    rx: &mpsc::Receiver<(usize, Result<Records>)>,
    pieces: usize,
    take: &mut impl FnMut(Records) -> Result<()>,
) -> Result<()> {
    let mut early: BTreeMap<usize, Records> = BTreeMap::new();
    let mut taken = 0;
    for (i, part) in rx {
        early.insert(i, part?);
        while let Some(part) = early.remove(&taken) {
            taken += 1;
            take(part)?;
        }
    }
    if taken != pieces {
        return Err(Error::Inconsistent(
            "an encoding thread stopped before its pieces were done".into(),
        ));
    }
    Ok(())
}

/// The bytes of the file's last block among `blocks`, if that block is
/// partial (`size` ends inside it): what the cache keeps of a committed
/// write-back of a file opened with `O_APPEND`. A log writer writes that
/// block next, and without it each append after a `close` or `fsync` read
/// the block back and decoded it (read-modify-write) before its bytes
/// went in. Other files' blocks are not kept: a copy or an unpacked tree
/// writes each file once, and its tails would push what readers use out
/// of the cache for a copy per file.
pub(super) fn partial_tail(
    oi: &OpenInode,
    blocks: &Blocks,
    size: u64,
    block_size: u64,
) -> Option<(u64, Arc<Vec<u8>>)> {
    let valid = (size % block_size) as usize;
    if !oi.appends || valid == 0 {
        return None;
    }
    let idx = size / block_size;
    let buf = blocks.get(&idx)?;
    Some((idx, Arc::new(buf[..valid].to_vec())))
}

impl Encoded {
    /// The block's row as a write-back stores it.
    fn to_write(&self) -> BlockWrite<'_> {
        BlockWrite {
            codec: self.codec,
            raw_len: self.raw_len,
            record: &self.record,
            extent: self.extent,
        }
    }
}

/// Stores an encoded block, or drops the row for a hole.
pub(super) fn put_or_drop(
    m: &WriteTx<'_>,
    ino: u64,
    idx: u64,
    enc: Option<&Encoded>,
) -> Result<()> {
    Ok(m.put_or_drop_block(ino, idx, enc.map(Encoded::to_write))?)
}

/// The transaction of a write-back: the encoded blocks, the size, the
/// time of the writes, and `edit` (a `setattr`'s changes), on the row.
pub(super) fn commit_blocks(
    m: &WriteTx<'_>,
    shared: bool,
    ino: u64,
    records: &[(u64, Option<Encoded>)],
    size: u64,
    time: Option<i64>,
    edit: Option<&RowEdit<'_>>,
) -> Result<InodeRow> {
    // Gone only if another mount deleted it while open here: nothing is
    // stored for it.
    let mut row = m.inode(ino)?.ok_or(if shared {
        Error::Stale(ino)
    } else {
        Error::NotFound
    })?;
    let blocks: Vec<(u64, Option<BlockWrite<'_>>)> = records
        .iter()
        .map(|(idx, enc)| (*idx, enc.as_ref().map(Encoded::to_write)))
        .collect();
    row.size = size;
    if let Some(t) = time {
        row.mtime_ns = t;
        row.ctime_ns = t;
    }
    if let Some(edit) = edit {
        edit(&mut row);
    }
    m.write_back(&row, &blocks)?;
    Ok(row)
}

/// A write-back in flight: what it writes, and (once done) its result.
#[derive(Debug)]
pub(super) struct WriteBack {
    pub(super) ino: u64,
    pub(super) blocks: Arc<Blocks>,
    /// The file's size and pending write time when it started.
    pub(super) size: u64,
    pub(super) time: Option<i64>,
    outcome: Mutex<Outcome>,
    finished: Condvar,
}

/// Where a write-back stands.
#[derive(Debug)]
enum Outcome {
    Running,
    /// Done, the result not yet applied.
    Done(Result<InodeRow>),
    /// Done and applied (by `Fs::settle_write_back`).
    Taken,
}

impl WriteBack {
    pub(super) fn new(ino: u64, blocks: Arc<Blocks>, size: u64, time: Option<i64>) -> WriteBack {
        WriteBack {
            ino,
            blocks,
            size,
            time,
            outcome: Mutex::new(Outcome::Running),
            finished: Condvar::new(),
        }
    }

    /// Starts the write-back on a thread of its own.
    pub(super) fn start(
        self: &Arc<Self>,
        store: Arc<Store>,
        encoder: Encoder,
        block_size: u64,
    ) -> std::io::Result<()> {
        let wb = Arc::clone(self);
        std::thread::Builder::new()
            .name("llmfs-writeback".into())
            .spawn(move || {
                super::priority::leave_ring_scheduling();
                let result =
                    catch_unwind(AssertUnwindSafe(|| wb.run(&store, &encoder, block_size)))
                        .unwrap_or_else(|_| {
                            Err(Error::Inconsistent("the write-back thread panicked".into()))
                        });
                // The store goes before the result is out: whoever waits
                // for it may drop the filesystem and reopen the store,
                // whose lock goes with its last reference.
                drop(store);
                drop(encoder);
                wb.finish(result);
            })
            .map(|_| ())
    }

    fn run(&self, store: &Store, encoder: &Encoder, block_size: u64) -> Result<InodeRow> {
        let (records, appended) =
            encoder.encode_and_append(store, &self.blocks, self.size, block_size)?;
        // Every check comes before the first change.
        let row = store.write_checked(Durability::Normal, |m| {
            commit_blocks(
                m,
                store.is_shared(),
                self.ino,
                &records,
                self.size,
                self.time,
                None,
            )
        })?;
        appended.into_iter().for_each(Appended::named);
        Ok(row)
    }

    fn finish(&self, result: Result<InodeRow>) {
        *self.outcome() = Outcome::Done(result);
        self.finished.notify_all();
    }

    fn outcome(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the result and takes it. Only `Fs::settle_write_back`
    /// calls this, under the state lock, and it takes the write-back out
    /// of the state with the result: nobody else can have taken it.
    pub(super) fn wait(&self) -> Result<InodeRow> {
        let mut outcome = self.finished_outcome();
        match std::mem::replace(&mut *outcome, Outcome::Taken) {
            Outcome::Done(result) => result,
            _ => Err(Error::Inconsistent(
                "a write-back's result was applied twice".into(),
            )),
        }
    }

    /// The result if the write-back is done and it was not taken yet,
    /// without waiting (takes it).
    pub(super) fn try_take(&self) -> Option<Result<InodeRow>> {
        let mut outcome = self.outcome();
        match std::mem::replace(&mut *outcome, Outcome::Taken) {
            Outcome::Done(result) => Some(result),
            other => {
                *outcome = other;
                None
            }
        }
    }

    /// Waits until the write-back is done, leaving the result to
    /// `Fs::settle_write_back` (which may already have applied it: a
    /// caller waits here without the state lock).
    pub(super) fn wait_done(&self) {
        drop(self.finished_outcome());
    }

    /// The outcome, once the write-back is no longer running.
    fn finished_outcome(&self) -> MutexGuard<'_, Outcome> {
        let mut outcome = self.outcome();
        while matches!(*outcome, Outcome::Running) {
            outcome = self
                .finished
                .wait(outcome)
                .unwrap_or_else(|p| p.into_inner());
        }
        outcome
    }

    /// Whether the write-back is done.
    pub(super) fn is_done(&self) -> bool {
        !matches!(*self.outcome(), Outcome::Running)
    }
}

/// The share of the dirty budget (`FsConfig::dirty_bytes`) that, dirty
/// beyond what is already in flight, starts a background write-back: a
/// quarter (8 of the default 32 MiB). At half, the fsync'd sequential
/// write left the two cores 41% idle: each 17 MiB write-back (7-15 ms of
/// encoding on both cores, then 5-8 ms appending and 1 ms committing on
/// one) started every 17-30 ms, and the writer spent about 30% of its
/// time waiting at the budget. Smaller write-backs that follow each
/// other more closely made the write a few percent faster: median ratios
/// of 1.07, 1.04, 1.03 and 0.98 in four alternated runs
/// (docs/MEASUREMENTS.md, "Write-backs from a quarter of the budget").
const START_SHARE: usize = 4;

/// Fewest dirty blocks of a file that `flush` and `fsync` write back on
/// the write-back thread (waiting without the state lock) rather than on
/// the request's: below it, starting a thread costs more than the
/// encoding and commit hold the other requests up.
const BACKGROUND_MIN_BLOCKS: usize = 16;

impl Fs {
    pub(super) fn encoder(&self) -> Encoder {
        Encoder {
            codecs: Arc::clone(&self.codecs),
            encoding: self.config.write_encoding,
            segment_min_bytes: self.config.segment_min_bytes,
            raw_interim_min_free: self.config.raw_interim_min_free,
            free_space: Arc::clone(&self.free_space),
        }
    }

    /// The state lock, taken once no write-back that a writer of `ino`
    /// would wait for is in flight: while the dirty data is over the
    /// budget, the writer waits for the write-back in flight without the
    /// lock, so that other requests go on meanwhile.
    pub(super) fn state_for_write(&self, ino: u64) -> MutexGuard<'_, State> {
        let st = self.state();
        let waits = st.dirty_bytes > self.config.dirty_bytes
            && st.write_back.as_ref().is_some_and(|wb| !wb.is_done());
        if !waits {
            return st;
        }
        let wb = st.write_back.clone().expect("checked above");
        drop(st);
        log::trace!(
            "write to inode {ino} waits for the write-back of inode {}",
            wb.ino
        );
        wb.wait_done();
        self.state()
    }

    /// The state lock for a `flush` or `fsync` of `ino`, with `ino`'s
    /// dirty blocks written back when there are many of them: on the
    /// write-back thread, while this request waits without the lock (as it
    /// does for a write-back already in flight), so that the other
    /// requests go on. The caller's `persist` then applies the result, and
    /// writes back on its own thread what is left (or what failed, so that
    /// the error reaches it).
    pub(super) fn state_after_write_back(&self, ino: u64) -> MutexGuard<'_, State> {
        let mut st = self.state();
        // Two rounds at most: one for a write-back already in flight, one
        // for this file's.
        for _ in 0..2 {
            let many = st
                .open
                .get(&ino)
                .is_some_and(|oi| oi.dirty.len() >= BACKGROUND_MIN_BLOCKS);
            if let Some(wb) = st.write_back.clone() {
                // Another file's write-back holds up only a request that
                // needs the write-back thread itself.
                if wb.ino != ino && !many {
                    return st;
                }
                if !wb.is_done() {
                    drop(st);
                    wb.wait_done();
                    st = self.state();
                }
                // Unless another request applied it meanwhile (and maybe
                // started the next one), apply it: it is done.
                if st.write_back.as_ref().is_some_and(|w| Arc::ptr_eq(w, &wb)) {
                    if let Err(e) = self.settle_write_back(&mut st, None) {
                        log::debug!("background write-back failed, retrying in the request: {e}");
                        return st;
                    }
                }
                if st.write_back.is_some() {
                    return st;
                }
            }
            if !many || !self.start_write_back(&mut st, ino) {
                return st;
            }
        }
        st
    }

    /// After a write: keeps the dirty data within the budget. Past
    /// [`START_SHARE`] of it (not counting what is in flight), `ino`'s
    /// dirty blocks go to a background write-back once the one in flight
    /// is done; past all of it, the next write first waits for the
    /// write-back in flight, without the state lock (`state_for_write`), so
    /// the dirty data passes the budget by one write request at most. A
    /// write-back that failed, or one that cannot start, makes the writer
    /// write back on its own thread, so that the error reaches it.
    pub(super) fn keep_within_budget(&self, st: &mut State, ino: u64) -> Result<()> {
        let budget = self.config.dirty_bytes;
        if st.dirty_bytes.saturating_sub(st.flushing_bytes) <= budget / START_SHARE {
            return Ok(());
        }
        if let Some(wb) = &st.write_back {
            if !wb.is_done() {
                return Ok(());
            }
            if let Err(e) = self.settle_write_back(st, None) {
                log::debug!("background write-back failed, writing back in the request: {e}");
                return self.persist(st, ino, Durability::Normal);
            }
        }
        if !self.start_write_back(st, ino) && st.dirty_bytes > budget {
            return self.persist(st, ino, Durability::Normal);
        }
        Ok(())
    }

    /// Moves `ino`'s dirty blocks to a write-back on its own thread; false
    /// if there is nothing to write or the thread could not start (the
    /// blocks stay dirty). The caller has settled any earlier write-back.
    fn start_write_back(&self, st: &mut State, ino: u64) -> bool {
        debug_assert!(st.write_back.is_none());
        let bs = self.block_size() as u64;
        let Some(oi) = st.open.get_mut(&ino) else {
            return false;
        };
        if oi.dirty.is_empty() {
            return false;
        }
        let blocks = Arc::new(std::mem::take(&mut oi.dirty));
        let wb = Arc::new(WriteBack::new(
            ino,
            Arc::clone(&blocks),
            oi.size,
            oi.pending_time,
        ));
        if let Err(e) = wb.start(Arc::clone(&self.store), self.encoder(), bs) {
            log::warn!("cannot start a write-back thread, writing back in the request: {e}");
            oi.dirty = (*blocks).clone();
            return false;
        }
        st.flushing_bytes += blocks.len() * bs as usize;
        oi.flushing = blocks;
        st.write_back = Some(wb);
        true
    }

    /// Applies the result of the write-back in flight, if any: waiting for
    /// it if it writes `wait_for`'s blocks (`None`: whichever file), else
    /// only if it is done. On success its blocks leave memory and their
    /// cached decodes go; on failure they are dirty again (where not
    /// written anew meanwhile) and the error is returned.
    pub(super) fn settle_write_back(&self, st: &mut State, wait_for: Option<u64>) -> Result<()> {
        let Some(wb) = st.write_back.clone() else {
            return Ok(());
        };
        let result = if wait_for.is_none_or(|ino| ino == wb.ino) {
            wb.wait()
        } else {
            match wb.try_take() {
                Some(result) => result,
                None => return Ok(()),
            }
        };
        st.write_back = None;
        let bs = self.block_size();
        let in_flight = wb.blocks.len() * bs;
        st.flushing_bytes = st.flushing_bytes.saturating_sub(in_flight);
        let Some(oi) = st.open.get_mut(&wb.ino) else {
            // Discarded meanwhile (deleted by another mount).
            st.dirty_bytes = st.dirty_bytes.saturating_sub(in_flight);
            return result.map(|_| ());
        };
        oi.flushing = Arc::default();
        match result {
            Ok(row) => {
                if oi.pending_time == wb.time {
                    oi.pending_time = None;
                }
                st.dirty_bytes = st.dirty_bytes.saturating_sub(in_flight);
                let tail = partial_tail(oi, &wb.blocks, wb.size, bs as u64);
                self.cache
                    .replace_blocks(wb.ino, wb.blocks.keys().copied(), tail);
                self.cache_written(oi, wb.ino, &wb.blocks, wb.size);
                self.saw(st, &row);
                Ok(())
            }
            Err(e) => {
                // Blocks written again meanwhile are newer (and began as a
                // copy of these).
                for (&idx, buf) in wb.blocks.iter() {
                    match oi.dirty.entry(idx) {
                        Entry::Occupied(_) => {
                            st.dirty_bytes = st.dirty_bytes.saturating_sub(bs);
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(buf.clone());
                        }
                    }
                }
                Err(e)
            }
        }
    }
}
