//! Segment files: block records outside the database.
//!
//! A write-back of a large file used to put every record into `llmfs.db`,
//! where SQLite writes it twice (into the WAL, then into the database at
//! the checkpoint) and a cold read walks its overflow chain page by page.
//! Records of large write-backs go instead into append-only files in the
//! store's `segments/` directory; the block's row names the extent
//! (`segment`, `seg_offset`, `stored_len`) and its `record` is empty
//! (docs/FORMAT.md, "Segment files").
//!
//! Order of writes, so that after a crash every block is old or new:
//!
//! 1. [`Segments::append`] writes a write-back's records contiguously at
//!    the end of the active segment (from a 4 KiB boundary, so that no
//!    page is shared with an earlier write-back's records) and starts
//!    their writeback (`sync_file_range`), without waiting for it. A new
//!    segment file's directory entry is synced when the file is made.
//! 2. The transaction that names the extents then runs (in the batch of
//!    commits); until it has run (and failed or joined a batch) the
//!    extents are *pending*.
//! 3. Every commit of the writer connection first `fdatasync`s the
//!    segments appended to since the last one ([`Segments::sync`]), so no
//!    commit that names an extent reaches the WAL before the extent's
//!    bytes are on stable storage. (The kernel may write WAL pages out at
//!    any time, and SQLite's recovery keeps every whole commit it finds.)
//!    The write-back thread does not wait for the disk: the data's
//!    writeback overlaps the encoding of the next write-back.
//! 4. A row that goes (overwrite, truncation, unlink, archiving) leaves
//!    its extent in `dead_extents`, in the same transaction (meta.rs,
//!    `free_extent`).
//!    [`Segments::reclaim`] gives that space back, but only once the
//!    change is on stable storage (it commits the batch and syncs first):
//!    it punches a hole over the extent (its partial pages only where no
//!    live extent shares them; a run of adjacent dead extents as one
//!    hole), and deletes a segment file that no row names and no pending
//!    write-back will.
//!
//! A write-back whose transaction fails punches its own extents at once
//! (nothing names them). Bytes appended by a write-back whose batch was
//! lost in a crash stay unnamed in their segment until the segment is
//! deleted: space, never data.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreError;

/// The directory of segment files inside the store's directory.
pub const SEGMENTS_DIR: &str = "segments";
/// A segment takes appends until it is this long; the next append starts
/// a new one (so that a dead segment's space goes back with its file).
const SEGMENT_BYTES: u64 = 256 << 20;
/// Appends start on this boundary: the page size of every Linux
/// filesystem that punches holes, so that write-backs share no page.
const ALIGN: u64 = 4096;
/// Segment files kept open for reading.
const OPEN_FILES: usize = 64;
/// Longest record a row may name: a block is at most 16 MiB, and a record
/// is never much longer than its block (raw is kept when a codec does not
/// save).
const MAX_RECORD_BYTES: u64 = 32 << 20;
/// Dead extents one reclaim pass handles (the rest wait for the next).
const RECLAIM_BATCH: i64 = 4096;
/// The highest segment number that a row or a dead extent names (0 for
/// none), for [`Segments::numbers_used_up_to`] at each open. `segment IS
/// NOT NULL` lets SQLite answer from the partial index `blocks_by_extent`:
/// without it, `MAX` read the `segment` column of every row of `blocks`,
/// which is every page of the database (a 2,241 MiB volume: 1,991 MiB
/// read in 2.45-2.81 s at each mount; bench/mount_time.sh,
/// docs/MEASUREMENTS.md, "A mount that read the whole volume").
pub(super) const NUMBERS_USED: &str = "SELECT MAX(\
    COALESCE((SELECT MAX(segment) FROM blocks WHERE segment IS NOT NULL), 0), \
    COALESCE((SELECT MAX(segment) FROM dead_extents), 0))";

/// Where one record lives: segment number, byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

/// The store's segment files.
#[derive(Debug)]
pub(in crate::store) struct Segments {
    dir: PathBuf,
    /// Whether the store's tables have the segment columns: a read-write
    /// open adds them; a store opened read-only may predate them.
    enabled: bool,
    read_only: bool,
    /// Whether the store's filesystem punches holes: records are appended
    /// only where dead ones' space can go back.
    punchable: bool,
    appender: Mutex<Appender>,
    /// Files open for reading, by segment number and [`Access`].
    files: Mutex<HashMap<(u64, Access), Arc<File>>>,
    /// Segments appended to since the last [`Segments::sync`].
    unsynced: Mutex<HashMap<u64, Arc<File>>>,
    /// Reads of extents in progress outside the writer lock ([`Pin`]),
    /// which reclaiming waits for.
    pins: Mutex<usize>,
    unpinned: Condvar,
}

/// An extent a reader has looked up under the writer lock and reads after
/// letting go of it, so that other requests go on during the disk read.
/// Until it is dropped, no hole is punched and no segment deleted: taken
/// under the writer lock, which [`Segments::reclaim`] holds too, it keeps
/// the extent as the lookup found it.
#[derive(Debug)]
pub struct Pin {
    segments: Arc<Segments>,
    extent: Extent,
}

impl Pin {
    /// Reads the record.
    pub fn read(&self) -> Result<Vec<u8>, StoreError> {
        self.segments.read(self.extent)
    }

    /// The record's length.
    pub fn record_len(&self) -> usize {
        self.extent.len as usize
    }

    /// Reads bytes `range` of the record only.
    pub fn read_range(&self, range: std::ops::Range<usize>) -> Result<Vec<u8>, StoreError> {
        if range.start > range.end || range.end as u64 > self.extent.len {
            return Err(StoreError::Invalid(format!(
                "bytes {range:?} of a {}-byte record",
                self.extent.len
            )));
        }
        let part = Extent {
            segment: self.extent.segment,
            offset: self.extent.offset + range.start as u64,
            len: range.len() as u64,
        };
        self.segments.read_as(part, Access::Parts)
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut n = lock(&self.segments.pins);
        *n -= 1;
        if *n == 0 {
            self.segments.unpinned.notify_all();
        }
    }
}

/// How a segment file is read: whole records, with the kernel's
/// read-ahead (a sequential reader's next records come with the disk read
/// of this one), or parts of records (one zstd frame for a small read) at
/// random places, without it: read-ahead would fetch up to 128 KiB around
/// a frame of a few KiB, which a random reader then never reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Access {
    Records,
    Parts,
}

#[derive(Debug, Default)]
struct Appender {
    /// The segment taking appends, with its file and end.
    active: Option<(u64, Arc<File>, u64)>,
    /// The number of the next segment to make.
    next: u64,
    /// Write-backs appended whose transaction has not run yet, by segment.
    pending: HashMap<u64, u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Segments {
    /// The segments of the store in `store_dir`. `enabled`: its tables
    /// have the segment columns.
    pub(super) fn open(
        store_dir: &Path,
        enabled: bool,
        read_only: bool,
    ) -> Result<Segments, StoreError> {
        let dir = store_dir.join(SEGMENTS_DIR);
        let next = existing(&dir)?.into_iter().max().map_or(1, |n| n + 1);
        Ok(Segments {
            dir,
            enabled,
            read_only,
            punchable: enabled && !read_only && can_punch(store_dir),
            appender: Mutex::new(Appender {
                next,
                ..Appender::default()
            }),
            files: Mutex::new(HashMap::new()),
            unsynced: Mutex::new(HashMap::new()),
            pins: Mutex::new(0),
            unpinned: Condvar::new(),
        })
    }

    /// Makes sure no segment number up to `used` is made again: a
    /// number that rows or dead extents still name must never name a new
    /// file (a dead extent left over would punch a hole in it).
    pub(super) fn numbers_used_up_to(&self, used: u64) {
        let mut a = lock(&self.appender);
        a.next = a.next.max(used + 1);
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether records may be appended (tables present, read-write, a
    /// filesystem that punches holes).
    pub(super) fn writable(&self) -> bool {
        self.enabled && !self.read_only && self.punchable
    }

    /// Whether a segment file exists (else there is nothing to reclaim).
    pub(super) fn any(&self) -> bool {
        self.dir.exists()
    }

    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:08}.seg"))
    }

    /// Writes `records` one after the other into the active segment and
    /// starts writing them out; returns their extents, pending until
    /// [`Segments::settle`]. The next [`Segments::sync`] makes them
    /// durable.
    pub(super) fn append(&self, records: &[&[u8]]) -> Result<Vec<Extent>, StoreError> {
        let total: u64 = records.iter().map(|r| r.len() as u64).sum();
        let (segment, file, start) = {
            let mut a = lock(&self.appender);
            if a.active
                .as_ref()
                .is_none_or(|(_, _, end)| *end >= SEGMENT_BYTES)
            {
                // The number is used up even if making the file fails
                // half-way (a file left without its directory entry
                // synced): the next try takes the next one.
                let id = a.next;
                a.next = id + 1;
                let file = self.create(id)?;
                a.active = Some((id, Arc::new(file), 0));
            }
            let (id, file, end) = a.active.as_mut().expect("made above");
            let start = end.div_ceil(ALIGN) * ALIGN;
            let segment = *id;
            let file = Arc::clone(file);
            // The space is taken before the write: a failed write leaves
            // a hole the next append skips.
            *end = start + total;
            *a.pending.entry(segment).or_default() += 1;
            (segment, file, start)
        };
        let mut extents = Vec::with_capacity(records.len());
        let mut at = start;
        for r in records {
            extents.push(Extent {
                segment,
                offset: at,
                len: r.len() as u64,
            });
            at += r.len() as u64;
        }
        let written = records
            .iter()
            .zip(&extents)
            .try_for_each(|(r, e)| file.write_all_at(r, e.offset));
        if written.is_ok() {
            lock(&self.unsynced).insert(segment, Arc::clone(&file));
            start_writeback(&file, start, total);
        }
        if let Err(e) = written {
            self.settle(&extents, false);
            return Err(StoreError::io(
                format!(
                    "writing records to segment {}",
                    self.path(segment).display()
                ),
                e,
            ));
        }
        Ok(extents)
    }

    /// Puts every record appended so far on stable storage: run before
    /// each commit of the writer connection. On failure the segments stay
    /// to be synced, and the commit must not happen.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        let files: Vec<(u64, Arc<File>)> = lock(&self.unsynced).drain().collect();
        for (i, (segment, file)) in files.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                let mut unsynced = lock(&self.unsynced);
                for (s, f) in &files[i..] {
                    unsynced.insert(*s, Arc::clone(f));
                }
                return Err(StoreError::io(
                    format!("syncing segment {}", self.path(*segment).display()),
                    e,
                ));
            }
        }
        Ok(())
    }

    /// Makes segment file `id` (and syncs the directory entry).
    fn create(&self, id: u64) -> Result<File, StoreError> {
        let fresh = !self.dir.exists();
        if fresh {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .or_else(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| StoreError::io(format!("creating {}", self.dir.display()), e))?;
        }
        let path = self.path(id);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
        sync_dir(&self.dir)?;
        if fresh {
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(file)
    }

    /// The transaction that was to name `extents` (one append's) has run:
    /// they are no longer pending. If it failed (`named` false) nothing
    /// names them, and their space goes back at once.
    pub(super) fn settle(&self, extents: &[Extent], named: bool) {
        let Some(first) = extents.first() else {
            return;
        };
        let mut a = lock(&self.appender);
        if let Some(n) = a.pending.get_mut(&first.segment) {
            *n -= 1;
            if *n == 0 {
                a.pending.remove(&first.segment);
            }
        }
        drop(a);
        if !named {
            let end = extents.iter().map(|e| e.offset + e.len).max().unwrap_or(0);
            // The run starts on a page boundary and no later run shares
            // its last page until the next append, which starts past it.
            if let Ok(file) = self.file(first.segment) {
                let len = end.div_ceil(ALIGN) * ALIGN - first.offset;
                if let Err(e) = punch(&file, first.offset, len) {
                    log::warn!("giving back the space of unwritten records: {e}");
                }
            }
        }
    }

    fn file(&self, segment: u64) -> Result<Arc<File>, StoreError> {
        self.file_for(segment, Access::Records)
    }

    fn file_for(&self, segment: u64, access: Access) -> Result<Arc<File>, StoreError> {
        let mut files = lock(&self.files);
        if let Some(f) = files.get(&(segment, access)) {
            return Ok(Arc::clone(f));
        }
        let path = self.path(segment);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening segment {}", path.display()), e))?;
        if access == Access::Parts {
            // Only a hint: a filesystem that ignores it reads ahead.
            // SAFETY: a valid open descriptor; the call reads no memory.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        }
        if files.len() >= OPEN_FILES {
            files.clear();
        }
        let file = Arc::new(file);
        files.insert((segment, access), Arc::clone(&file));
        Ok(file)
    }

    /// Pins `extent` for a read after the writer lock is let go; the
    /// caller holds the writer lock.
    pub(super) fn pin(self: &Arc<Self>, extent: Extent) -> Pin {
        *lock(&self.pins) += 1;
        Pin {
            segments: Arc::clone(self),
            extent,
        }
    }

    /// Reads the record at `extent`.
    pub(super) fn read(&self, extent: Extent) -> Result<Vec<u8>, StoreError> {
        self.read_as(extent, Access::Records)
    }

    /// Reads the bytes at `extent` (a record, or part of one).
    fn read_as(&self, extent: Extent, access: Access) -> Result<Vec<u8>, StoreError> {
        // A damaged row must fail the read, not allocate its length.
        if extent.len > MAX_RECORD_BYTES || extent.offset.checked_add(extent.len).is_none() {
            return Err(StoreError::io(
                format!(
                    "reading a record from segment {}",
                    self.path(extent.segment).display()
                ),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "its row names {} bytes at {}: no record is that long",
                        extent.len, extent.offset
                    ),
                ),
            ));
        }
        let file = self.file_for(extent.segment, access)?;
        let mut buf = vec![0; extent.len as usize];
        file.read_exact_at(&mut buf, extent.offset).map_err(|e| {
            let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                "segment is shorter than the record it holds"
            } else {
                "reading a record from a segment"
            };
            StoreError::io(
                format!(
                    "{what} ({}, bytes {}..{})",
                    self.path(extent.segment).display(),
                    extent.offset,
                    extent.offset + extent.len
                ),
                e,
            )
        })?;
        Ok(buf)
    }

    /// (files, bytes the filesystem has allocated to them).
    pub(super) fn disk_usage(&self) -> Result<(u64, u64), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let mut files = 0;
        let mut bytes = 0;
        for id in existing(&self.dir)? {
            let path = self.path(id);
            match fs::metadata(&path) {
                Ok(m) => {
                    files += 1;
                    bytes += m.blocks() * 512;
                }
                // Deleted by the mount since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
            }
        }
        Ok((files, bytes))
    }

    /// Lengths of the segment files present, by number.
    pub(super) fn file_lengths(&self) -> Result<HashMap<u64, u64>, StoreError> {
        let mut out = HashMap::new();
        for id in existing(&self.dir)? {
            let path = self.path(id);
            let len = fs::metadata(&path)
                .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?
                .len();
            out.insert(id, len);
        }
        Ok(out)
    }

    /// Gives back the space of dead extents and deletes dead segments.
    /// `conn` is the writer connection with no transaction open, and every
    /// change it committed is on stable storage (the caller synced): a
    /// dead extent's row is gone for good. Returns how many dead extents
    /// it handled.
    pub(super) fn reclaim(&self, conn: &Connection, at_open: bool) -> Result<u64, StoreError> {
        if !self.enabled || self.read_only || !self.any() {
            return Ok(0);
        }
        let dead: Vec<(i64, u64, u64, u64)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id, segment, seg_offset, len FROM dead_extents ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map([RECLAIM_BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // Reads pinned before this pass took the writer lock finish first;
        // no new one can start while it holds the lock.
        {
            let mut n = lock(&self.pins);
            while *n > 0 {
                n = self.unpinned.wait(n).unwrap_or_else(|p| p.into_inner());
            }
        }
        let lengths = self.file_lengths()?;
        let mut touched: Vec<u64> = Vec::new();
        let extents: Vec<Extent> = dead
            .iter()
            .map(|&(_, segment, offset, len)| Extent {
                segment,
                offset,
                len,
            })
            .collect();
        let ranges = coalesce(extents, |segment, lo, hi| {
            live_within(conn, segment, lo, hi)
        })?;
        for (segment, start, end) in ranges {
            if !touched.contains(&segment) {
                touched.push(segment);
            }
            let Some(&file_len) = lengths.get(&segment) else {
                continue;
            };
            let (lo, hi) = free_range(conn, segment, start, end, file_len)?;
            if lo < hi && self.punchable {
                let file = self.file(segment)?;
                punch(&file, lo, hi - lo).map_err(|e| {
                    StoreError::io(format!("punching a hole in segment {segment}"), e)
                })?;
            }
        }
        if at_open {
            // Segments no row names: dead ones whose deletion a crash
            // interrupted, or written by a write-back whose batch was lost.
            let unseen: Vec<u64> = lengths
                .keys()
                .copied()
                .filter(|s| !touched.contains(s))
                .collect();
            touched.extend(unseen);
        }
        for segment in touched {
            self.delete_if_dead(conn, segment)?;
        }
        if let Some(&(last, ..)) = dead.last() {
            conn.prepare_cached("DELETE FROM dead_extents WHERE id <= ?1")?
                .execute([last])?;
        }
        Ok(dead.len() as u64)
    }

    /// Deletes segment `segment`'s file if no row names it and none will:
    /// it is not taking appends and no write-back is pending on it.
    fn delete_if_dead(&self, conn: &Connection, segment: u64) -> Result<(), StoreError> {
        let named: bool = conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM blocks WHERE segment = ?1)")?
            .query_row([segment], |r| r.get(0))?;
        if named {
            return Ok(());
        }
        {
            let a = lock(&self.appender);
            let active = a.active.as_ref().is_some_and(|(id, _, _)| *id == segment);
            if active || a.pending.contains_key(&segment) {
                return Ok(());
            }
        }
        let mut files = lock(&self.files);
        files.remove(&(segment, Access::Records));
        files.remove(&(segment, Access::Parts));
        drop(files);
        let path = self.path(segment);
        match fs::remove_file(&path) {
            Ok(()) => {
                log::debug!("deleted dead segment {}", path.display());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(format!("deleting {}", path.display()), e)),
        }
    }
}

/// Dead extents merged into the fewest byte ranges `(segment, start,
/// end)` that hold nothing else, so that reclaim punches one hole per
/// range rather than one per record: an overwritten 256 MiB file is
/// 4096 records, and each punch takes the segment file's lock (on a
/// filesystem mounted with `discard`, a synchronous discard too).
///
/// Two dead extents merge when the second starts where the first ends
/// (records of one append are contiguous), or at the next page boundary
/// when `live_within(segment, end, next_start)` says no live extent lies
/// in between: appends start on page boundaries, so the gap is the
/// padding after the first's append, unless a live record of that
/// append follows the first.
fn coalesce(
    mut extents: Vec<Extent>,
    mut live_within: impl FnMut(u64, u64, u64) -> Result<bool, StoreError>,
) -> Result<Vec<(u64, u64, u64)>, StoreError> {
    extents.sort_unstable_by_key(|e| (e.segment, e.offset));
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for e in extents {
        let end = e.offset + e.len;
        if let Some(last) = out.last_mut() {
            if last.0 == e.segment && e.offset <= last.2 {
                last.2 = last.2.max(end);
                continue;
            }
            if last.0 == e.segment
                && e.offset <= last.2.div_ceil(ALIGN) * ALIGN
                && !live_within(e.segment, last.2, e.offset)?
            {
                last.2 = end;
                continue;
            }
        }
        out.push((e.segment, e.offset, end));
    }
    Ok(out)
}

/// The bytes of dead extent `[start, end)` of `segment` that can go back:
/// the extent widened to whole pages where no live extent shares the
/// partial page, narrowed to whole pages where one does, and cut at the
/// file's end.
fn free_range(
    conn: &Connection,
    segment: u64,
    start: u64,
    end: u64,
    file_len: u64,
) -> Result<(u64, u64), StoreError> {
    let mut lo = start / ALIGN * ALIGN;
    if lo < start && live_within(conn, segment, lo, start)? {
        lo = start.div_ceil(ALIGN) * ALIGN;
    }
    let mut hi = end.div_ceil(ALIGN) * ALIGN;
    if hi > end && live_within(conn, segment, end, hi)? {
        hi = end / ALIGN * ALIGN;
    }
    Ok((lo, hi.min(file_len.div_ceil(ALIGN) * ALIGN)))
}

/// Whether a live extent of `segment` overlaps `[lo, hi)`. Extents do not
/// overlap one another, so the one starting last before `hi` is the only
/// one that can.
fn live_within(conn: &Connection, segment: u64, lo: u64, hi: u64) -> Result<bool, StoreError> {
    let end: Option<u64> = conn
        .prepare_cached(
            "SELECT seg_offset + stored_len FROM blocks \
             WHERE segment = ?1 AND seg_offset < ?2 ORDER BY seg_offset DESC LIMIT 1",
        )?
        .query_row(params![segment, hi], |r| r.get(0))
        .optional()?;
    Ok(end.is_some_and(|e| e > lo))
}

/// Starts writing `len` bytes at `offset` of `file` to the disk without
/// waiting, so that the `fdatasync` before the commit finds them mostly
/// written. Only a hint: a failure changes nothing.
fn start_writeback(file: &File, offset: u64, len: u64) {
    // SAFETY: sync_file_range on a descriptor we own, with plain integers.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Frees `len` bytes at `offset` of `file`, keeping its length.
fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a descriptor we own, with plain integers.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the filesystem holding `dir` can punch holes: segments are
/// used only where dead records' space can go back.
fn can_punch(dir: &Path) -> bool {
    let probe = dir.join(".punch-probe");
    let ok = (|| -> io::Result<()> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)?;
        f.write_all_at(&[1; ALIGN as usize * 2], 0)?;
        punch(&f, 0, ALIGN)
    })();
    let _ = fs::remove_file(&probe);
    if let Err(e) = &ok {
        log::info!(
            "{} cannot punch holes ({e}): block records stay in the database",
            dir.display()
        );
    }
    ok.is_ok()
}

/// The numbers of the segment files in `dir` (none if it does not exist).
fn existing(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(n) = stem.parse::<u64>() {
            out.push(n);
        }
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(segment: u64, offset: u64, len: u64) -> Extent {
        Extent {
            segment,
            offset,
            len,
        }
    }

    #[test]
    fn contiguous_dead_records_become_one_range_in_any_order() {
        let dead = vec![ext(1, 200, 50), ext(1, 0, 100), ext(1, 100, 100)];
        let ranges = coalesce(dead, |_, _, _| panic!("no gap to ask about")).unwrap();
        assert_eq!(ranges, vec![(1, 0, 250)]);
    }

    #[test]
    fn a_page_gap_merges_only_when_nothing_lives_in_it() {
        // Two appends: one ending at 5000, the next starting at 8192.
        let dead = || vec![ext(3, 0, 5000), ext(3, 8192, 100)];
        let mut asked = Vec::new();
        let free = coalesce(dead(), |s, lo, hi| {
            asked.push((s, lo, hi));
            Ok(false)
        })
        .unwrap();
        assert_eq!(free, vec![(3, 0, 8292)]);
        assert_eq!(asked, vec![(3, 5000, 8192)]);
        // A live record of the first append right after it: kept apart.
        let kept = coalesce(dead(), |_, _, _| Ok(true)).unwrap();
        assert_eq!(kept, vec![(3, 0, 5000), (3, 8192, 8292)]);
    }

    #[test]
    fn farther_gaps_and_other_segments_stay_apart() {
        let dead = vec![
            ext(1, 0, 100),
            ext(1, 8192, 10),
            ext(2, 10, 10),
            ext(2, 20, 5),
        ];
        let ranges = coalesce(dead, |_, _, _| Ok(false)).unwrap();
        assert_eq!(ranges, vec![(1, 0, 100), (1, 8192, 8202), (2, 10, 25)]);
    }

    #[test]
    fn the_numbers_used_come_from_the_extent_index_not_every_block_row() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::migrate(&mut conn).unwrap();
        super::super::migrate::add_segment_tables(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {NUMBERS_USED}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("INDEX blocks_by_extent")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p == "SCAN blocks"), "{plan:?}");
        // Rows and dead extents both count; a table without either, 0.
        let used = |c: &Connection| c.query_row(NUMBERS_USED, [], |r| r.get::<_, u64>(0));
        assert_eq!(used(&conn).unwrap(), 0);
        conn.execute_batch(
            "INSERT INTO blocks(ino, idx, codec, raw_len, stored_len, record, segment, seg_offset) \
             VALUES (2, 0, 0, 1, 1, x'', 3, 0), (2, 1, 0, 1, 1, x'00', NULL, NULL); \
             INSERT INTO dead_extents(segment, seg_offset, len) VALUES (2, 0, 1);",
        )
        .unwrap();
        assert_eq!(used(&conn).unwrap(), 3);
        conn.execute_batch("INSERT INTO dead_extents(segment, seg_offset, len) VALUES (7, 0, 1);")
            .unwrap();
        assert_eq!(used(&conn).unwrap(), 7);
    }

    #[test]
    fn errors_of_the_live_check_come_back() {
        let dead = vec![ext(1, 0, 10), ext(1, 4096, 10)];
        let err = coalesce(dead, |_, _, _| Err(StoreError::Invalid("gone".into())));
        assert!(err.is_err());
    }
}
