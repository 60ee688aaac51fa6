//! File data: open handles, reads, buffered writes, truncation, flush, fsync,
//! and `setattr`.

use std::sync::Arc;

use super::in_flight::Block;
use super::read_ahead::slow_to_decode;
use super::setid::setid_bits;
use super::write_back::{commit_blocks, partial_tail, put_or_drop, RowEdit};
use super::{is_dir, is_reg, Attr, Fs, Handle, OpenInode, SetAttr, State, MAX_FILE_SIZE};
use crate::cache::{join_frames, Cached};
use crate::codec::Span;
use crate::error::{Error, Result};
use crate::store::{Appended, Durability, InodeRow, StoredRecord, WriteTx};
use crate::time::now_ns;

/// What a stored block's lookup found.
enum Part {
    /// Its bytes (stored_part says which).
    Block(Block),
    /// A hole: zeros.
    Hole,
    /// A slow decode the caller said it would not wait for.
    Slow,
}

impl Fs {
    /// Opens a file and returns its handle. `O_TRUNC` truncates to zero.
    pub fn open(&self, ino: u64, flags: i32) -> Result<u64> {
        Ok(self.open_keeping_cache(ino, flags)?.0)
    }

    /// As [`Fs::open`], and whether the kernel may keep the pages it has
    /// cached for the file: false once the core changed the data other
    /// than through a write since the last open.
    pub fn open_keeping_cache(&self, ino: u64, flags: i32) -> Result<(u64, bool)> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        // Linux truncates on O_TRUNC even with O_RDONLY access.
        let truncate = flags & libc::O_TRUNC != 0;
        if writable || truncate {
            self.check_writable()?;
        }
        // The row is read under the state lock: a handle closing meanwhile
        // writes its size back and drops the size held in memory.
        let mut st = self.state();
        let mut row = self.row(ino)?;
        if is_dir(row.mode) {
            if writable {
                return Err(Error::IsDir);
            }
            return Ok((0, true));
        }
        if truncate && is_reg(row.mode) {
            drop(st);
            self.truncate(ino, 0)?;
            st = self.state();
            row = self.row(ino)?;
        }
        let mut keep_cache = !st.data_changed.remove(&ino);
        if self.store.is_shared() {
            keep_cache &= self.revalidate(&mut st, &row);
        }
        let size = row.size;
        // While the file is open, the kernel may hold pages of it that
        // this handle or one before it read, or wrote through the cache.
        st.open
            .entry(ino)
            .or_insert_with(|| OpenInode {
                size,
                ..OpenInode::default()
            })
            .pages_elsewhere = true;
        Ok((self.add_handle(&mut st, ino, flags, false), keep_cache))
    }

    /// Close-to-open on a volume other mounts share: whether the file is
    /// as this mount last saw it (same ctime: every change of data or size
    /// sets it, by whichever mount). If not, the decoded blocks cached for
    /// it are dropped, an open handle without unwritten data takes the
    /// stored size, and the caller has the kernel drop its pages and
    /// attributes. An archive worker's swap keeps the bytes and the ctime.
    fn revalidate(&self, st: &mut State, row: &InodeRow) -> bool {
        if st.seen_ctime.insert(row.ino, row.ctime_ns) == Some(row.ctime_ns) {
            return true;
        }
        self.cache.invalidate_from(row.ino, 0);
        if let Some(oi) = st.open.get_mut(&row.ino) {
            // Another mount may have set the mode or an attribute.
            oi.setid_clear = false;
            oi.no_capability = false;
            if !oi.has_unpersisted() {
                oi.size = row.size;
            }
        }
        false
    }

    /// Records the ctime of a row this mount itself wrote, so that its own
    /// changes do not drop its caches at the next open.
    pub(super) fn saw(&self, st: &mut State, row: &InodeRow) {
        if self.store.is_shared() {
            st.seen_ctime.insert(row.ino, row.ctime_ns);
        }
    }

    /// Opens an inode created a moment ago (empty, and not yet known to
    /// the kernel, so nothing else has it open).
    pub(super) fn open_new(&self, ino: u64, flags: i32) -> u64 {
        let mut st = self.state();
        // Nothing has set an attribute on it yet.
        st.open.entry(ino).or_default().no_capability = true;
        let write_only = self.creates_past_page_cache(flags);
        self.add_handle(&mut st, ino, flags, write_only)
    }

    /// A new handle on `ino`, whose open state exists; `write_only`: its
    /// writes skip the page cache (page_cache.rs).
    fn add_handle(&self, st: &mut State, ino: u64, flags: i32, write_only: bool) -> u64 {
        let fh = st.next_fh;
        st.next_fh += 1;
        st.handles.insert(fh, Handle { ino, write_only });
        let oi = st.open.get_mut(&ino).expect("the caller made it");
        oi.opens += 1;
        oi.write_only_opens += u32::from(write_only);
        oi.appends |= flags & libc::O_APPEND != 0;
        fh
    }

    /// Current logical size (the open state's if the inode is open).
    fn current_size(&self, st: &State, ino: u64) -> Result<u64> {
        match st.open.get(&ino) {
            Some(oi) => Ok(oi.size),
            None => Ok(self.row(ino)?.size),
        }
    }

    /// Decodes and verifies a block record; a failure names inode and block.
    pub(super) fn decode(&self, ino: u64, idx: u64, record: &[u8]) -> Result<Vec<u8>> {
        self.decoding().decode(ino, idx, record)
    }

    /// Reads one stored block (cache first), verified; `None` is a hole.
    fn stored_block(&self, ino: u64, idx: u64) -> Result<Option<Arc<Vec<u8>>>> {
        match self.stored_part(ino, idx, 0, usize::MAX, true)? {
            Part::Block(Block::Whole(data)) => Ok(Some(data)),
            // A read of the whole block always waits for the verified block.
            Part::Block(Block::Prefix(_) | Block::Span(..)) => Err(Error::Inconsistent(format!(
                "inode {ino} block {idx}: a partial block where the whole was asked for"
            ))),
            Part::Slow => Err(Error::Inconsistent(format!(
                "inode {ino} block {idx}: a lookup that may wait did not"
            ))),
            Part::Hole => Ok(None),
        }
    }

    /// Reads bytes `start..need` of a stored block (cache first); `None`
    /// is a hole. The answer may hold more: the whole block, or the frames
    /// of a framed record holding those bytes (read and decoded without
    /// the rest of the record). A cache miss on a slow (llm, cm) block is
    /// decoded on a
    /// decode thread shared with the block's other readers
    /// (in_flight.rs), and the answer may be the block's decoded prefix,
    /// of at least `need` bytes (or the whole block when it is shorter),
    /// before the rest is decoded: once those bytes matched the payload's
    /// wave checksums (llm version 5), or with `early_reads` at once.
    /// With `wait_slow` false, such a miss is `Part::Slow` instead.
    fn stored_part(
        &self,
        ino: u64,
        idx: u64,
        start: usize,
        need: usize,
        wait_slow: bool,
    ) -> Result<Part> {
        let epoch = match self.cache.get_span(ino, idx, start, need) {
            Cached::Whole(data) => return Ok(Part::Block(Block::Whole(data))),
            Cached::Span(at, data) => return Ok(Part::Block(Block::Span(at, data))),
            Cached::Miss(epoch) => epoch,
        };
        // A record in a segment file is read after the transaction, so
        // that other requests use the store during the disk read.
        let Some(record) = self.store.read(|m| {
            let record = m.stored_record(ino, idx)?;
            // A hole, or a file another mount deleted while it is open
            // here: its blocks went with it, and zeros would be bytes the
            // file never held.
            if record.is_none() && self.store.is_shared() && m.inode(ino)?.is_none() {
                log::warn!(
                    "inode {ino} was deleted by another mount while open here: \
                     its reads fail with ESTALE"
                );
                return Err(Error::Stale(ino));
            }
            Ok(record)
        })?
        else {
            return Ok(Part::Hole);
        };
        if let Some(span) = self.read_span(ino, idx, &record, start, need, epoch) {
            return Ok(Part::Block(span));
        }
        let record = record.into_bytes()?;
        if slow_to_decode(&record) {
            if !wait_slow {
                return Ok(Part::Slow);
            }
            return self
                .decode_shared(ino, idx, record, epoch, need)
                .map(Part::Block);
        }
        let data = Arc::new(self.decoding().decode_reading_ahead(ino, idx, &record)?);
        self.cache.insert(ino, idx, Arc::clone(&data), epoch);
        Ok(Part::Block(Block::Whole(data)))
    }

    /// Bytes `start..end` of a framed zstd block, when they are less than
    /// the whole block: only the frames holding them are read (from a
    /// segment, only their bytes) and decoded, each against its own
    /// checksum, and cached. `None`: the record has no frames, the frames
    /// are the whole block, or they failed, and the caller decodes the
    /// whole record (whose failure is then the read's: a damaged copy of
    /// the table in a segment row must not fail a read the record serves).
    fn read_span(
        &self,
        ino: u64,
        idx: u64,
        record: &StoredRecord,
        start: usize,
        end: usize,
        epoch: u64,
    ) -> Option<Block> {
        let spanned = (|| -> std::result::Result<_, Box<dyn std::error::Error>> {
            let prefix = record.prefix();
            let plan = Span::plan(prefix, record.record_len(), self.block_size(), start, end)?;
            let Some(span) = plan else {
                return Ok(None);
            };
            let frames = span.decode(&record.read_range(span.record_range())?)?;
            Ok(Some((span, frames)))
        })();
        let (span, frames) = match spanned {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                log::warn!(
                    "inode {ino} block {idx}: reading frames alone failed ({e}); \
                     decoding the whole record"
                );
                return None;
            }
        };
        let frames: Vec<Arc<Vec<u8>>> = frames.into_iter().map(Arc::new).collect();
        let data = join_frames(frames.iter());
        let at = span.first_frame() * span.frame_bytes();
        self.cache.insert_frames(
            ino,
            idx,
            span.frame_bytes(),
            span.first_frame(),
            frames,
            epoch,
        );
        Some(Block::Span(at, data))
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_waiting(ino, offset, size, true)?.ok_or_else(|| {
            Error::Inconsistent(format!("inode {ino}: a read that may wait did not"))
        })
    }

    /// As [`Fs::read`], unless a block of the range misses the cache and
    /// decodes slowly (the model, cm: up to seconds a block): then
    /// `Ok(None)`, and the caller reads it where waiting is harmless (the
    /// FUSE layer: on a thread that is not one of the kernel's workers),
    /// which looks the block's record up again: once per cold slow block,
    /// next to a decode of up to seconds.
    pub fn read_unless_slow(&self, ino: u64, offset: u64, size: u32) -> Result<Option<Vec<u8>>> {
        self.read_waiting(ino, offset, size, false)
    }

    fn read_waiting(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        wait_slow: bool,
    ) -> Result<Option<Vec<u8>>> {
        let bs = self.block_size() as u64;
        // Under the state lock, take the size and copies of dirty blocks;
        // decode stored blocks after releasing it so readers run in parallel.
        let (file_size, dirty) = {
            let st = self.state();
            let file_size = self.current_size(&st, ino)?;
            if offset >= file_size || size == 0 {
                return Ok(Some(Vec::new()));
            }
            let end = file_size.min(offset.saturating_add(size as u64));
            let (first, last) = (offset / bs, (end - 1) / bs);
            // Dirty blocks first, then those of a write-back in flight.
            let dirty: Vec<(u64, Vec<u8>)> = match st.open.get(&ino) {
                Some(oi) => oi
                    .dirty
                    .range(first..=last)
                    .chain(
                        oi.flushing
                            .range(first..=last)
                            .filter(|(i, _)| !oi.dirty.contains_key(i)),
                    )
                    .map(|(&i, b)| (i, b.clone()))
                    .collect(),
                None => Vec::new(),
            };
            (file_size, dirty)
        };
        let end = file_size.min(offset + size as u64);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let idx = pos / bs;
            let within = (pos % bs) as usize;
            let take = ((bs - within as u64).min(end - pos)) as usize;
            let from_dirty = dirty.iter().find(|(i, _)| *i == idx).map(|(_, b)| b);
            match from_dirty {
                Some(buf) => out.extend_from_slice(&buf[within..within + take]),
                None => match self.stored_part(ino, idx, within, within + take, wait_slow)? {
                    Part::Slow => return Ok(None),
                    Part::Block(block) => {
                        // A stored block may be shorter than the block size;
                        // the rest of it reads as zeros. A prefix holds at
                        // least `within + take` bytes, and a span bytes
                        // `within..within + take`, unless they reach the
                        // end of the block.
                        let from = within - block.start();
                        let data: &[u8] = &block;
                        let have = data.len().saturating_sub(from).min(take);
                        if have > 0 {
                            out.extend_from_slice(&data[from..from + have]);
                        }
                        out.resize(out.len() + (take - have), 0);
                    }
                    Part::Hole => out.resize(out.len() + take, 0),
                },
            }
            pos += take as u64;
        }
        Ok(Some(out))
    }

    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<usize> {
        self.check_writable()?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(Error::FileTooLarge)?;
        if data.is_empty() {
            return Ok(0);
        }
        let bs = self.block_size() as u64;
        let mut st = self.state_for_write(ino);
        // A write that skipped the page cache, to a file whose pages the
        // kernel may hold: a dirty page of a mapping reaches the file
        // before this write, and the pages go (page_cache.rs).
        let past_cache = |st: &State| st.handles.get(&fh).is_some_and(|h| h.write_only);
        if past_cache(&st) && st.open.get(&ino).is_some_and(|oi| oi.pages_elsewhere) {
            drop(st);
            self.drop_cached(ino, offset, end - offset);
            st = self.state_for_write(ino);
        }
        let write_only = match st.handles.get(&fh) {
            Some(h) if h.ino == ino => h.write_only,
            _ => return Err(Error::BadHandle),
        };
        if write_only {
            // The kernel drops a capability before a write through its
            // page cache itself, and leaves the others to us (xattr.rs).
            self.drop_capability(&mut st, ino)?;
        }
        let size = st.open.get(&ino).map(|oi| oi.size).unwrap_or(0);
        let mut added = 0usize;
        let mut pos = offset;
        while pos < end {
            let idx = pos / bs;
            let within = (pos % bs) as usize;
            let take = ((bs - within as u64).min(end - pos)) as usize;
            let has = st
                .open
                .get(&ino)
                .is_some_and(|oi| oi.dirty.contains_key(&idx));
            let src = (pos - offset) as usize;
            let whole = take == bs as usize;
            if !has {
                // A whole block's buffer is a copy of the written bytes, not
                // a zeroed buffer written over (memset was 3% of a
                // sequential write's profile).
                let mut buf = if whole {
                    data[src..src + take].to_vec()
                } else {
                    vec![0u8; bs as usize]
                };
                // Read-modify-write only for a partly overwritten block
                // that holds data: from a write-back in flight, else from
                // the store.
                if !whole && idx * bs < size {
                    let in_flight = st.open.get(&ino).and_then(|oi| oi.flushing.get(&idx));
                    if let Some(old) = in_flight {
                        buf.copy_from_slice(old);
                    } else if let Some(old) = self.stored_block(ino, idx)? {
                        buf[..old.len()].copy_from_slice(&old);
                    }
                }
                st.open
                    .get_mut(&ino)
                    .ok_or(Error::BadHandle)?
                    .dirty
                    .insert(idx, buf);
                added += bs as usize;
            }
            if has || !whole {
                let oi = st.open.get_mut(&ino).ok_or(Error::BadHandle)?;
                let buf = oi.dirty.get_mut(&idx).expect("inserted above");
                buf[within..within + take].copy_from_slice(&data[src..src + take]);
            }
            pos += take as u64;
        }
        let oi = st.open.get_mut(&ino).ok_or(Error::BadHandle)?;
        oi.size = oi.size.max(end);
        oi.pending_time = Some(now_ns());
        // A write-back may have put these bytes' old version into the page
        // cache while this write was on its way, or a reader's pages may
        // hold them (page_cache.rs).
        let recache = (oi.cached_end > offset || oi.pages_elsewhere) && write_only;
        st.dirty_bytes += added;
        self.keep_within_budget(&mut st, ino)?;
        drop(st);
        if recache {
            self.drop_cached(ino, offset, end - offset);
        }
        Ok(data.len())
    }

    /// Writes an inode's dirty blocks, size and times to the store in one
    /// transaction. On failure the dirty data stays in memory (nothing lost)
    /// and the error is returned.
    pub(super) fn persist(&self, st: &mut State, ino: u64, durability: Durability) -> Result<()> {
        self.persist_with(st, ino, durability, None).map(|_| ())
    }

    /// As [`Fs::persist`], with `edit` applied to the inode's row in the
    /// same transaction (a `setattr`: its changes and the file's pending
    /// data commit together, in one transaction). `edit` says whether it
    /// changed the row; the row as stored is returned when it was read.
    pub(super) fn persist_with(
        &self,
        st: &mut State,
        ino: u64,
        durability: Durability,
        edit: Option<&RowEdit<'_>>,
    ) -> Result<Option<InodeRow>> {
        // A write-back of this file in flight commits first; if it failed,
        // its blocks are dirty again and are written below.
        if let Err(e) = self.settle_write_back(st, Some(ino)) {
            log::debug!("background write-back of inode {ino} failed, retrying: {e}");
        }
        if !st.open.get(&ino).is_some_and(|oi| oi.has_unpersisted()) {
            let Some(edit) = edit else {
                if durability == Durability::Durable {
                    // Nothing new: make the earlier commits durable.
                    self.store.sync()?;
                }
                return Ok(None);
            };
            let mut row = self.row(ino)?;
            if !edit(&mut row) {
                return Ok(Some(row));
            }
            let row = self.transact_checked(durability, |m| {
                let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
                edit(&mut row);
                m.update_inode(&row)?;
                Ok(row)
            })?;
            self.saw(st, &row);
            return Ok(Some(row));
        }
        let oi = st.open.get_mut(&ino).expect("checked above");
        let bs = self.block_size() as u64;
        let size = oi.size;
        let time = oi.pending_time;
        let dirty = std::mem::take(&mut oi.dirty);
        // Encode outside the transaction; `None` means the block is a hole.
        let encoder = self.encoder();
        let stored = encoder.encode_and_append(&self.store, &dirty, size, bs);
        let shared = self.store.is_shared();
        let result = stored.and_then(|(records, appended)| {
            let row = self.transact_checked(durability, |m| {
                commit_blocks(m, shared, ino, &records, size, time, edit)
            })?;
            appended.into_iter().for_each(Appended::named);
            Ok(row)
        });
        let oi = st.open.get_mut(&ino).expect("still open");
        match result {
            Ok(row) => {
                oi.pending_time = None;
                st.dirty_bytes = st.dirty_bytes.saturating_sub(dirty.len() * bs as usize);
                let tail = partial_tail(oi, &dirty, size, bs);
                self.cache.replace_blocks(ino, dirty.keys().copied(), tail);
                self.cache_written(oi, ino, &dirty, size);
                self.saw(st, &row);
                Ok(Some(row))
            }
            Err(e) => {
                // Keep the data; blocks written again meanwhile are newer.
                for (idx, buf) in dirty {
                    oi.dirty.entry(idx).or_insert(buf);
                }
                Err(e)
            }
        }
    }

    /// `close(2)` on one descriptor: write buffered data back.
    pub fn flush(&self, ino: u64) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        let mut st = self.state_after_write_back(ino);
        self.persist(&mut st, ino, Durability::Normal)
    }

    /// Makes the file's data and metadata durable.
    pub fn fsync(&self, ino: u64) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        let mut st = self.state_after_write_back(ino);
        let pending = st.open.get(&ino).is_some_and(|oi| oi.has_unpersisted())
            || st.write_back.as_ref().is_some_and(|wb| wb.ino == ino);
        if !pending {
            // Everything of the file is committed: the commit that makes
            // it durable (a WAL fsync) runs without the state lock.
            drop(st);
            return Ok(self.store.sync()?);
        }
        self.persist(&mut st, ino, Durability::Durable)
    }

    /// Drops a handle; the last one writes back and, if the file was
    /// unlinked meanwhile, deletes it.
    pub fn release(&self, ino: u64, fh: u64) -> Result<()> {
        let mut st = self.state();
        let Some(Handle { write_only, .. }) = st.handles.remove(&fh) else {
            return Err(Error::BadHandle);
        };
        let result = if self.config.read_only {
            Ok(())
        } else {
            self.persist(&mut st, ino, Durability::Normal)
        };
        let Some(oi) = st.open.get_mut(&ino) else {
            return result;
        };
        oi.opens = oi.opens.saturating_sub(1);
        oi.write_only_opens = oi.write_only_opens.saturating_sub(u32::from(write_only));
        if oi.opens > 0 {
            return result;
        }
        if let Err(e) = result {
            // The data of a file nothing can reach any more goes with it;
            // otherwise it stays in memory for a later flush or unmount.
            if !st.in_use(ino) {
                match self.row(ino) {
                    Ok(r) if r.nlink == 0 => return self.delete_if_unlinked(&mut st, ino),
                    // Another mount deleted it while it was open here.
                    Err(Error::NotFound) => {
                        log::warn!(
                            "inode {ino} was deleted by another mount while open here: \
                             its unwritten data is dropped"
                        );
                        self.discard(&mut st, ino);
                        return Err(Error::Stale(ino));
                    }
                    _ => {}
                }
            }
            return Err(e);
        }
        st.open.remove(&ino);
        if st.in_use(ino) {
            return Ok(());
        }
        self.delete_if_unlinked(&mut st, ino)
    }

    /// Changes the size of a regular file, writing back dirty data first.
    fn truncate(&self, ino: u64, new_size: u64) -> Result<()> {
        self.check_writable()?;
        if new_size > MAX_FILE_SIZE {
            return Err(Error::FileTooLarge);
        }
        let bs = self.block_size() as u64;
        let mut st = self.state();
        self.persist(&mut st, ino, Durability::Normal)?;
        let now = now_ns();
        let row = self.transact(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if is_dir(row.mode) {
                return Err(Error::IsDir);
            }
            if !is_reg(row.mode) {
                return Err(Error::InvalidArgument("truncate on a non-regular file"));
            }
            if new_size < row.size {
                m.delete_blocks_from(ino, new_size.div_ceil(bs))?;
                let tail = new_size % bs;
                if tail != 0 {
                    self.trim_block(m, ino, new_size / bs, tail as usize)?;
                }
            }
            row.size = new_size;
            row.mtime_ns = now;
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(row)
        })?;
        self.saw(&mut st, &row);
        self.cache.invalidate_from(ino, new_size / bs);
        st.data_changed.insert(ino);
        if let Some(oi) = st.open.get_mut(&ino) {
            oi.size = new_size;
        }
        Ok(())
    }

    /// Cuts a stored block to `keep` bytes so that a later extension of the
    /// file reads zeros past the truncation point, not old data.
    fn trim_block(&self, m: &WriteTx<'_>, ino: u64, idx: u64, keep: usize) -> Result<()> {
        let Some(record) = m.block(ino, idx)? else {
            return Ok(());
        };
        let mut data = self.decode(ino, idx, &record)?;
        if data.len() <= keep {
            return Ok(());
        }
        data.truncate(keep);
        self.store_block(m, ino, idx, &data)
    }

    /// `fallocate(2)`. Space is not reserved (stored size depends on how
    /// well data compresses), so plain allocation only extends the size;
    /// punching a hole or zeroing a range drops or rewrites the blocks.
    pub fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: i32) -> Result<()> {
        self.check_writable()?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(Error::FileTooLarge)?;
        if len == 0 {
            return Err(Error::InvalidArgument("fallocate length 0"));
        }
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zero = match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 => false,
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => true,
            libc::FALLOC_FL_ZERO_RANGE => true,
            _ => return Err(Error::Unsupported("fallocate mode")),
        };
        let row = self.row(ino)?;
        if is_dir(row.mode) {
            return Err(Error::IsDir);
        }
        if !is_reg(row.mode) {
            return Err(Error::NotPermitted);
        }
        if zero {
            self.zero_range(ino, offset, end)?;
        }
        if !keep_size {
            let size = {
                let st = self.state();
                self.current_size(&st, ino)?
            };
            if end > size {
                self.truncate(ino, end)?;
            }
        }
        Ok(())
    }

    /// Makes `[start, end)` read as zeros (clipped to the file size): whole
    /// blocks are dropped, partial ones rewritten.
    fn zero_range(&self, ino: u64, start: u64, end: u64) -> Result<()> {
        let bs = self.block_size() as u64;
        let mut st = self.state();
        self.persist(&mut st, ino, Durability::Normal)?;
        let size = self.current_size(&st, ino)?;
        let end = end.min(size);
        if start >= end {
            return Ok(());
        }
        let now = now_ns();
        let (first, last) = (start / bs, (end - 1) / bs);
        self.transact(Durability::Normal, |m| {
            for idx in first..=last {
                let (bstart, bend) = (idx * bs, (idx + 1) * bs);
                let (zs, ze) = (start.max(bstart) - bstart, end.min(bend) - bstart);
                let Some(record) = m.block(ino, idx)? else {
                    continue;
                };
                let mut data = self.decode(ino, idx, &record)?;
                let zs = (zs as usize).min(data.len());
                let ze = (ze as usize).min(data.len());
                data[zs..ze].fill(0);
                self.store_block(m, ino, idx, &data)?;
            }
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            row.mtime_ns = now;
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok::<_, Error>(())
        })?;
        self.cache.invalidate_blocks(ino, first..=last);
        st.data_changed.insert(ino);
        Ok(())
    }

    /// Encodes and stores one block, or drops it if it is all zeros.
    fn store_block(&self, m: &WriteTx<'_>, ino: u64, idx: u64, data: &[u8]) -> Result<()> {
        put_or_drop(m, ino, idx, self.encoder().encode(data)?.as_ref())
    }

    pub fn setattr(&self, ino: u64, set: &SetAttr) -> Result<Attr> {
        self.check_writable()?;
        if let Some(size) = set.size {
            self.truncate(ino, size)?;
        }
        let now = now_ns();
        let mut st = self.state();
        // One transaction: the file's pending data and times first (an
        // explicit mtime must not be overwritten by a pending one later),
        // then the changes asked for.
        let edit = |row: &mut InodeRow| -> bool {
            let mut changed = set.size.is_some();
            if let Some(mode) = set.mode {
                row.mode = (row.mode & libc::S_IFMT) | (mode & 0o7777);
                changed = true;
            }
            if let Some(uid) = set.uid {
                row.uid = uid;
                changed = true;
            }
            if let Some(gid) = set.gid {
                row.gid = gid;
                changed = true;
            }
            if let Some(t) = set.atime {
                row.atime_ns = t.resolve(now);
                changed = true;
            }
            if let Some(t) = set.mtime {
                row.mtime_ns = t.resolve(now);
                changed = true;
            }
            if set.kill_suidgid {
                let bits = setid_bits(row.mode);
                row.mode &= !bits;
                changed |= bits != 0;
            }
            if changed {
                row.ctime_ns = now;
            }
            changed
        };
        let row = match self.persist_with(&mut st, ino, Durability::Normal, Some(&edit))? {
            Some(row) => row,
            None => self.row(ino)?,
        };
        if set.mode.is_some() {
            if let Some(oi) = st.open.get_mut(&ino) {
                oi.setid_clear = false;
            }
        }
        Ok(self.attr_of(&st, &row))
    }
}
