//! The filesystem core: inodes, directories, open files, write buffers and
//! POSIX rules, on top of the store, the cache and the codecs. Every method
//! returns `Result<_, Error>`; nothing here knows about FUSE, so tests call
//! it directly.

mod attr;
mod data;
mod free_space;
mod in_flight;
mod namespace;
mod page_cache;
mod priority;
mod read_ahead;
mod reaper;
mod setid;
mod write_back;
mod xattr;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use attr::{Attr, Ctx, DirEntry, SetAttr, SetTime, StatFs};
pub use in_flight::SharedDecodeStats;
pub use page_cache::PageCache;

use crate::cache::{BlockCache, CacheStats};
use crate::codec::CodecSet;
use crate::error::{Error, Result};
use crate::number_hash::{NumberMap, NumberSet};
use crate::store::{Durability, InodeRow, OpGuard, Store, ROOT_INO};

/// Longest name of one directory entry, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes (PATH_MAX less the terminating NUL).
pub const SYMLINK_MAX: usize = 4095;
/// Largest file size the volume accepts.
pub const MAX_FILE_SIZE: u64 = 1 << 60;
/// Most hard links one inode may have.
pub const LINK_MAX: u32 = 65_000;

/// `FsConfig::segment_min_bytes` unless asked otherwise.
pub const DEFAULT_SEGMENT_MIN_BYTES: usize = 1 << 20;

/// How a write-back encodes a file's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEncoding {
    /// zstd at its default level: the encoding the block keeps (no
    /// archiver follows).
    Fast,
    /// zstd at its interim level: the archiver re-encodes every block soon
    /// after it goes cold (`compress=background`), so the write path's
    /// encoding lives minutes, and half the CPU of `Fast` makes writes
    /// faster where compression bounds them.
    Interim,
    /// The best codec at once, the model where it wins (`compress=sync`).
    Best,
}

/// Tunables of a mounted volume.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Byte budget of the decoded-block cache.
    pub cache_bytes: usize,
    /// Dirty data held in memory before it is written to the store.
    pub dirty_bytes: usize,
    /// Refuse every change.
    pub read_only: bool,
    /// How written blocks are encoded.
    pub write_encoding: WriteEncoding,
    /// A read that lies in the decoded prefix of a slow (llm, cm) block
    /// returns as soon as those bytes are decoded, before the rest of the
    /// block is and so before the block's CRC-32C is checked
    /// (`src/fs/in_flight.rs`). Off: a read waits for bytes the payload's
    /// own checksums vouch for (each wave of an llm payload of version 5)
    /// or else for the verified block.
    pub early_reads: bool,
    /// Fewest bytes of records a write-back puts into the store's segment
    /// files instead of its database (docs/DESIGN.md, "Block payloads
    /// outside SQLite"): below it the `fdatasync` an append costs is not
    /// worth paying.
    pub segment_min_bytes: usize,
    /// With the interim encoding, a write-back of at most
    /// [`RAW_INTERIM_MAX_BYTES`] (a small file's close) is stored raw while
    /// the store's filesystem has at least this many bytes free, and the
    /// archiver encodes it when it takes the block, as it would have
    /// re-encoded the interim record. zstd was a third of the daemon's CPU
    /// in `cp -r` of small files (docs/DESIGN.md, "Small files stored raw
    /// until archived"). `None`: always encoded (and on PostgreSQL, whose
    /// server's free space is not visible).
    pub raw_interim_min_free: Option<u64>,
}

/// Largest write-back `FsConfig::raw_interim_min_free` stores raw.
pub const RAW_INTERIM_MAX_BYTES: usize = 256 << 10;
/// `FsConfig::raw_interim_min_free` of a mount: what raw small files may
/// not eat into, on top of what the archiver will later give back.
pub const RAW_INTERIM_MIN_FREE: u64 = 4 << 30;

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            cache_bytes: 64 << 20,
            dirty_bytes: 32 << 20,
            read_only: false,
            write_encoding: WriteEncoding::Fast,
            early_reads: false,
            segment_min_bytes: DEFAULT_SEGMENT_MIN_BYTES,
            raw_interim_min_free: None,
        }
    }
}

/// Per-inode state while at least one handle is open (or data is dirty).
#[derive(Debug, Default)]
struct OpenInode {
    opens: u32,
    /// Modified blocks, each a full block-size buffer, by block index.
    dirty: write_back::Blocks,
    /// Blocks of the write-back in flight (write_back.rs), readable until
    /// it is settled; empty otherwise.
    flushing: Arc<write_back::Blocks>,
    /// The logical size, authoritative while the inode is open.
    size: u64,
    /// mtime/ctime of writes not yet persisted.
    pending_time: Option<i64>,
    /// The mode is known to hold no bits a write clears (setid.rs), since
    /// it was last set.
    setid_clear: bool,
    /// Known to have no `security.capability` attribute (xattr.rs): since
    /// its create, or since a write removed it, with no attribute set or
    /// removed on it after.
    no_capability: bool,
    /// Opened with `O_APPEND` since it was opened: a log writer, whose
    /// commits keep the file's partial last block cached for its next
    /// append (`write_back::partial_tail`).
    appends: bool,
    /// How many of `opens` are write-only handles, whose writes skip the
    /// kernel's page cache (page_cache.rs).
    write_only_opens: u32,
    /// The end of what write-backs put into the kernel's page cache: a
    /// write-only handle's write below it drops its range there again.
    cached_end: u64,
    /// The kernel may hold pages of the file that did not come from
    /// `cached_end`'s stores: a handle other than its create's opened it
    /// (one that reads, maps or writes through the cache). A write-only
    /// handle's write then has them dropped before and after it is
    /// applied, as kernels since 6.19 do themselves (page_cache.rs).
    pages_elsewhere: bool,
}

/// An open file handle.
#[derive(Debug, Clone, Copy)]
struct Handle {
    ino: u64,
    /// Its writes skip the kernel's page cache (page_cache.rs).
    write_only: bool,
}

impl State {
    /// True while something may still reach `ino` without a name.
    /// An inode whose write-back failed stays in `open` with no handle (its
    /// data kept for a retry); that alone does not keep it alive.
    fn in_use(&self, ino: u64) -> bool {
        self.open.get(&ino).is_some_and(|oi| oi.opens > 0) || self.lookups.contains_key(&ino)
    }
}

impl OpenInode {
    fn has_unpersisted(&self) -> bool {
        !self.dirty.is_empty() || !self.flushing.is_empty() || self.pending_time.is_some()
    }
}

#[derive(Debug, Default)]
struct State {
    open: NumberMap<u64, OpenInode>,
    /// Open file handles by fh.
    handles: NumberMap<u64, Handle>,
    /// Kernel references (FUSE lookup counts) per inode, recorded by the
    /// FUSE layer with `remember` and dropped with `forget`. An unlinked
    /// inode stays readable while the kernel still references it (a held
    /// FIFO, an `O_PATH` descriptor, a removed working directory).
    lookups: NumberMap<u64, u64>,
    next_fh: u64,
    /// Bytes of dirty blocks, those of the write-back in flight included.
    dirty_bytes: usize,
    /// Bytes of the write-back in flight.
    flushing_bytes: usize,
    /// The write-back in flight (at most one; write_back.rs).
    write_back: Option<Arc<write_back::WriteBack>>,
    /// Inodes whose data the core changed other than by a write request
    /// (truncation, hole punching) since they were last opened: their next
    /// open has the kernel drop its cached pages; every other open keeps
    /// them (`FOPEN_KEEP_CACHE`), as every change passes through this
    /// process and the kernel's cache saw the writes.
    data_changed: NumberSet<u64>,
    /// On a volume other mounts share: the ctime of each inode as this
    /// mount last saw it (at open, or in its own write-back), while the
    /// kernel references it. An open that finds another ctime drops what
    /// this mount cached of the file (close-to-open, data.rs).
    seen_ctime: NumberMap<u64, i64>,
}

pub struct Fs {
    // Store, codecs, cache and read-ahead are shared with the threads that
    // decode slow blocks for readers (in_flight.rs).
    store: Arc<Store>,
    codecs: Arc<CodecSet>,
    /// Read-ahead of llm blocks on a second model engine (read_ahead.rs).
    read_ahead: Option<Arc<read_ahead::ReadAhead>>,
    cache: Arc<BlockCache>,
    /// Decodes of slow blocks under way, shared by their readers.
    in_flight: Arc<in_flight::InFlight>,
    state: Mutex<State>,
    /// Unlinked inodes nothing references any more, whose rows the next
    /// write transaction deletes: an `unlink` then costs one transaction,
    /// not two. If the daemon dies first, the next mount reclaims them
    /// (they have no name and `nlink = 0`).
    orphans: Mutex<Vec<u64>>,
    /// Deletes large unlinked files' rows off the request path (reaper.rs);
    /// `None` on a read-only or shared store.
    reaper: Option<reaper::Reaper>,
    /// The store's free space for raw small files (free_space.rs).
    free_space: Arc<free_space::FreeSpace>,
    /// The kernel's page cache, where a FUSE session serves this core
    /// (page_cache.rs); unset, every handle writes through it.
    page_cache: OnceLock<Arc<dyn PageCache>>,
    config: FsConfig,
}

impl Fs {
    /// Wraps an open store. Inodes left unlinked-but-open by a crash are
    /// reclaimed here, before any request is served.
    pub fn new(store: Store, config: FsConfig) -> Result<Fs> {
        Fs::with_codecs(store, config, CodecSet::default())
    }

    /// As [`Fs::new`], with the codecs (and so the model) to use.
    /// The volume's dictionaries are attached to `codecs` unless it has its
    /// own.
    pub fn with_codecs(store: Store, config: FsConfig, codecs: CodecSet) -> Result<Fs> {
        let read_only = config.read_only || store.is_read_only();
        let codecs = match codecs.dictionaries() {
            Some(_) => codecs,
            None => codecs.with_dictionaries(crate::dictionary::load(&store)?),
        };
        let store = Arc::new(store);
        let reaper = if read_only || store.is_shared() {
            None
        } else {
            reaper::Reaper::start(Arc::clone(&store))
                .map_err(|e| {
                    log::warn!("no reaper thread ({e}): large files are deleted in their unlink")
                })
                .ok()
        };
        let fs = Fs {
            cache: Arc::new(BlockCache::new(config.cache_bytes)),
            codecs: Arc::new(codecs),
            read_ahead: None,
            in_flight: Arc::default(),
            state: Mutex::new(State {
                next_fh: 1,
                ..State::default()
            }),
            orphans: Mutex::new(Vec::new()),
            reaper,
            free_space: Arc::default(),
            page_cache: OnceLock::new(),
            config: FsConfig {
                read_only,
                ..config
            },
            store,
        };
        // A store whose root is gone or is not a directory cannot be served
        // right: refuse it here, with the reason, instead of mounting a
        // volume whose every request fails.
        match fs.store.read(|m| Ok::<_, Error>(m.inode(ROOT_INO)?))? {
            Some(root) if is_dir(root.mode) && root.nlink >= 2 => {}
            Some(root) => {
                return Err(Error::Inconsistent(format!(
                    "the root directory (inode 1) has mode {:o} and nlink {}",
                    root.mode, root.nlink
                )))
            }
            None => {
                return Err(Error::Inconsistent(
                    "the root directory (inode 1) is missing".into(),
                ))
            }
        }
        if !read_only {
            // On a volume other mounts share, the inodes they still hold
            // open are not this mount's to reclaim.
            let reclaimed = fs.store.write(Durability::Normal, |m| {
                let orphans = m.reclaimable_inodes()?;
                for &ino in &orphans {
                    m.delete_inode(ino)?;
                }
                Ok::<_, Error>(orphans.len())
            })?;
            if reclaimed > 0 {
                log::info!("reclaimed {reclaimed} unlinked inode(s) left by an earlier session");
            }
        }
        Ok(fs)
    }

    /// Decodes the next llm block ahead of sequential readers with a
    /// second engine (`ahead` should hold its own llm codec).
    pub fn with_read_ahead(mut self, ahead: CodecSet) -> Fs {
        let ahead = match self.dictionaries() {
            Some(d) => ahead.with_dictionaries(Arc::clone(d)),
            None => ahead,
        };
        self.read_ahead = Some(Arc::new(read_ahead::ReadAhead::new(ahead)));
        self
    }

    /// The volume's dictionaries (shared by every codec set of the mount).
    pub fn dictionaries(&self) -> Option<&Arc<crate::codec::cm::Dictionaries>> {
        self.codecs.dictionaries()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn block_size(&self) -> usize {
        self.store.block_size()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Has write-only handles of files created from now on write past
    /// the kernel's page cache, with what they write put into `cache` as
    /// it is written back (page_cache.rs). Set once, before requests are
    /// served.
    pub fn use_page_cache(&self, cache: Arc<dyn PageCache>) {
        let _ = self.page_cache.set(cache);
    }

    /// Whether the handle of a file created with `flags` writes past the
    /// kernel's page cache (the FUSE layer answers the create with
    /// `FOPEN_DIRECT_IO`). Opens of existing files never do.
    pub fn creates_past_page_cache(&self, flags: i32) -> bool {
        self.page_cache.get().is_some() && page_cache::write_only(flags)
    }

    /// Puts the bytes of a write-back (`blocks`, of a file `size` long)
    /// into the kernel's page cache if every handle open on the inode is
    /// write-only (page_cache.rs says why that is safe) and the file is
    /// not small (page_cache.rs says why), leaving out the blocks written
    /// again since (dirty once more). Called under the state lock, after
    /// the write-back committed.
    fn cache_written(&self, oi: &mut OpenInode, ino: u64, blocks: &write_back::Blocks, size: u64) {
        let Some(cache) = self.page_cache.get() else {
            return;
        };
        if oi.opens == 0 || oi.write_only_opens != oi.opens || size <= page_cache::SMALL_FILE_BYTES
        {
            return;
        }
        let written = blocks.iter().map(|(&idx, buf)| (idx, buf.as_slice()));
        let bs = self.block_size() as u64;
        let newer = |idx| oi.dirty.contains_key(&idx);
        let end = page_cache::store_blocks(cache.as_ref(), ino, written, size, bs, newer);
        oi.cached_end = oi.cached_end.max(end);
    }

    /// Has the kernel drop its cached pages of `ino` over
    /// `offset..offset + len` (page_cache.rs).
    fn drop_cached(&self, ino: u64, offset: u64, len: u64) {
        if let Some(cache) = self.page_cache.get() {
            if let Err(e) = cache.invalidate(ino, offset, len) {
                log::debug!("dropping inode {ino}'s cached pages: {e}");
            }
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.config.read_only
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_writable(&self) -> Result<()> {
        if self.config.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn row(&self, ino: u64) -> Result<InodeRow> {
        // An orphan waiting for its row's deletion is already gone.
        if self.orphans().contains(&ino) {
            return Err(Error::NotFound);
        }
        self.store.read(|m| m.inode(ino)?.ok_or(Error::NotFound))
    }

    fn attr_of(&self, st: &State, row: &InodeRow) -> Attr {
        let mut attr = Attr::from_row(row, self.block_size() as u32);
        if let Some(oi) = st.open.get(&row.ino) {
            attr.size = oi.size;
            if let Some(t) = oi.pending_time {
                attr.mtime_ns = t;
                attr.ctime_ns = t;
            }
            let dirty = ((oi.dirty.len() + oi.flushing.len()) * self.block_size()) as u64;
            attr.blocks += dirty.min(oi.size).div_ceil(512);
        }
        attr
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let mut st = self.state();
        let row = self.row(ino)?;
        // On a volume other mounts share, a file open here without
        // unwritten data takes the stored size, which another mount may
        // have changed (what a stat shows is bounded by the kernel's
        // attribute cache, as on NFS); its decoded blocks go too, lest the
        // old last block, cached shorter, read as zeros where the other
        // mount appended. Without other mounts the two sizes are the same.
        if self.store.is_shared() {
            if let Some(oi) = st.open.get_mut(&ino) {
                if !oi.has_unpersisted() && oi.size != row.size {
                    oi.size = row.size;
                    self.cache.invalidate_from(ino, 0);
                }
            }
        }
        Ok(self.attr_of(&st, &row))
    }

    /// Records that the kernel was handed a reference to `ino` (every reply
    /// that carries an entry: lookup, create, mknod, mkdir, symlink, link).
    pub fn remember(&self, ino: u64) {
        if ino != ROOT_INO {
            *self.state().lookups.entry(ino).or_default() += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`. The last one deletes an
    /// inode that has no name and no open handle. (fuser 0.18 hands a
    /// batch forget to this one inode at a time: its `ForgetOne` cannot be
    /// named outside the crate, so `batch_forget` cannot be overridden.)
    pub fn forget(&self, ino: u64, n: u64) -> Result<()> {
        let mut st = self.state();
        let Some(count) = st.lookups.get_mut(&ino) else {
            return Ok(());
        };
        *count = count.saturating_sub(n);
        if *count > 0 {
            return Ok(());
        }
        st.lookups.remove(&ino);
        if st.in_use(ino) {
            return Ok(());
        }
        // The kernel dropped the inode with its pages; the next open
        // compares against nothing and drops the decoded blocks too.
        st.seen_ctime.remove(&ino);
        self.delete_if_unlinked(&mut st, ino)
    }

    /// Forgets everything held in memory for a deleted inode: unwritten
    /// data of a file that no longer exists is dropped, not written.
    fn discard(&self, st: &mut State, ino: u64) {
        // Its write-back, if one is in flight, fails or writes a row that
        // is deleted with the rest: either way it is over first.
        if st.write_back.as_ref().is_some_and(|wb| wb.ino == ino) {
            let _ = self.settle_write_back(st, Some(ino));
        }
        if let Some(oi) = st.open.remove(&ino) {
            st.dirty_bytes = st
                .dirty_bytes
                .saturating_sub(oi.dirty.len() * self.block_size());
        }
        self.cache.invalidate_from(ino, 0);
    }

    /// Deletes `ino` if its link count is zero (the caller checked that
    /// nothing references it any more). Most inodes the kernel forgets
    /// still have a name: a read finds that out. An unlinked one is
    /// forgotten in memory now and its row deleted by the next write
    /// transaction (`Fs::transact`).
    fn delete_if_unlinked(&self, st: &mut State, ino: u64) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        let row = self.store.read(|m| Ok::<_, Error>(m.inode(ino)?))?;
        if let Some(row) = row.filter(|row| row.nlink == 0) {
            self.discard(st, ino);
            if self.reaps(&row) {
                self.reap(ino);
            } else {
                self.orphans().push(ino);
            }
        }
        Ok(())
    }

    /// Whether unlinked inode `row` is left to the reaper rather than
    /// deleted in one transaction: a large file, on a store it runs on.
    fn reaps(&self, row: &InodeRow) -> bool {
        self.reaper.is_some() && self.blocks_of(row) > reaper::REAP_MIN_BLOCKS
    }

    /// Blocks inode `row`'s size spans (some may be holes).
    fn blocks_of(&self, row: &InodeRow) -> u64 {
        row.size.div_ceil(self.block_size() as u64)
    }

    /// Stops the reaper's thread (after the transaction it is in).
    fn stop_reaper(&self) {
        if let Some(r) = &self.reaper {
            r.stop();
        }
    }

    /// Hands unlinked inode `ino` to the reaper.
    fn reap(&self, ino: u64) {
        if let Some(r) = &self.reaper {
            r.reap(ino);
        }
    }

    fn orphans(&self) -> MutexGuard<'_, Vec<u64>> {
        self.orphans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a write transaction that also deletes the orphans
    /// waiting for one (every write of the core goes through here or
    /// `transact_checked`). If the transaction fails they wait for the next.
    fn transact<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&crate::store::WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.transact_guarded(durability, OpGuard::Savepoint, f)
    }

    /// As `transact`, for `f` that makes every check that can fail before
    /// its first change (`Store::write_checked`, cheaper on SQLite).
    fn transact_checked<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&crate::store::WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.transact_guarded(durability, OpGuard::ChecksFirst, f)
    }

    fn transact_guarded<T>(
        &self,
        durability: Durability,
        guard: OpGuard,
        f: impl FnOnce(&crate::store::WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let orphans = std::mem::take(&mut *self.orphans());
        let result = self.store.write_guarded(durability, guard, |m| {
            // After `f`: an error of `f` then finds nothing changed.
            let out = f(m)?;
            delete_orphans(m, &orphans)?;
            Ok(out)
        });
        if result.is_err() && !orphans.is_empty() {
            self.orphans().extend(orphans);
        }
        result
    }

    pub fn statfs(&self) -> Result<StatFs> {
        let files = self.store.read(|m| Ok::<_, Error>(m.inode_count()?))?;
        let (blocks, bfree, bavail) = match self.store.dir() {
            Some(dir) => local_space(dir)?,
            None => server_space(self.store.server_bytes()?.unwrap_or(0)),
        };
        let ffree = (u32::MAX as u64).saturating_sub(files);
        Ok(StatFs {
            blocks,
            bfree,
            bavail,
            files: files + ffree,
            ffree,
            bsize: STATFS_BLOCK as u32,
            namelen: NAME_MAX as u32,
            frsize: STATFS_BLOCK as u32,
        })
    }

    /// Writes out every dirty buffer durably and checkpoints the database:
    /// called at unmount, after the kernel has stopped sending requests.
    pub fn shutdown(&self) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        // What the reaper has not deleted yet goes with the reclaim below.
        self.stop_reaper();
        let mut st = self.state();
        let mut first_err = None;
        // The write-back in flight first: its blocks are dirty again if it
        // failed, and are written below.
        if let Err(e) = self.settle_write_back(&mut st, None) {
            log::warn!("a background write-back failed at unmount, retrying: {e}");
        }
        let inos: Vec<u64> = st.open.keys().copied().collect();
        for ino in inos {
            // An unlinked inode is reclaimed at the next mount: its data
            // need not (and, on a full disk, could not) be written.
            let unlinked = self.row(ino).map_or(true, |r| r.nlink == 0);
            if unlinked {
                continue;
            }
            if let Err(e) = self.persist(&mut st, ino, Durability::Normal) {
                log::error!("writing back inode {ino} at unmount failed: {e}");
                first_err.get_or_insert(e);
            }
        }
        // Inodes still open at unmount are closed now; those already
        // unlinked are reclaimed at the next mount.
        st.open.clear();
        st.handles.clear();
        st.lookups.clear();
        drop(st);
        // This mount's holds go with it; the inodes they kept (and any
        // that dead mounts left) are deleted now unless another live mount
        // holds them.
        let reclaim = self.transact(Durability::Normal, |m| {
            m.release_holds()?;
            for ino in m.reclaimable_inodes()? {
                m.delete_inode(ino)?;
            }
            Ok(())
        });
        if let Err(e) = reclaim {
            log::warn!("deleting unlinked inodes at unmount failed (the next mount will): {e}");
        }
        self.store.sync()?;
        // Everything is durable in the WAL now; moving it into the main file
        // needs space, and failing to is no loss (the next open replays it).
        if let Err(e) = self.store.checkpoint() {
            log::warn!("checkpoint at unmount failed, the WAL keeps the data: {e}");
        }
        let s = self.cache.stats();
        log::info!(
            "cache: {} hits, {} misses, {} blocks ({} bytes) cached at unmount",
            s.hits,
            s.misses,
            s.entries,
            s.bytes
        );
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Checks a name for a new or looked-up directory entry.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::InvalidArgument("reserved or empty name"));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(Error::InvalidArgument("name contains '/' or NUL"));
    }
    Ok(())
}

pub(crate) fn is_dir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

pub(crate) fn is_reg(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFREG
}

/// The unit statfs counts space in.
const STATFS_BLOCK: u64 = 4096;

/// Total, free and available space of the filesystem holding a SQLite
/// store, in [`STATFS_BLOCK`] units.
fn local_space(dir: &std::path::Path) -> Result<(u64, u64, u64)> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument("store path contains NUL"))?;
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `sv` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut sv) };
    if rc != 0 {
        return Err(Error::Store(crate::store::StoreError::io(
            "statvfs on the store directory",
            std::io::Error::last_os_error(),
        )));
    }
    let scale = |n: u64| n.saturating_mul(sv.f_frsize as u64) / STATFS_BLOCK;
    Ok((
        scale(sv.f_blocks as u64),
        scale(sv.f_bfree as u64),
        scale(sv.f_bavail as u64),
    ))
}

/// A PostgreSQL store cannot see its server's disks: as JuiceFS does
/// without a quota, it shows a nominal 1 PiB, of which the volume's tables
/// use `used` bytes.
fn server_space(used: u64) -> (u64, u64, u64) {
    const NOMINAL: u64 = 1 << 50;
    let total = NOMINAL.max(used) / STATFS_BLOCK;
    let free = total.saturating_sub(used.div_ceil(STATFS_BLOCK));
    (total, free, free)
}

/// Deletes the unlinked inodes the kernel has forgotten (`Fs::orphans`).
fn delete_orphans(m: &crate::store::WriteTx<'_>, orphans: &[u64]) -> Result<()> {
    for &ino in orphans {
        // Still unlinked (nothing can link an inode without a name, but a
        // damaged store is not trusted blindly).
        if m.inode(ino)?.is_some_and(|row| row.nlink == 0) {
            m.delete_inode(ino)?;
        }
    }
    Ok(())
}
