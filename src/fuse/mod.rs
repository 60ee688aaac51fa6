//! The FUSE adapter: decodes a request, calls the filesystem core, replies.
//! No filesystem logic lives here; faults are logged once, here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, SessionUnmounter, TimeOrNow,
    WriteFlags,
};

mod slow_reads;

use crate::error::Error;
use crate::fs::{Attr, Ctx, Fs, PageCache, SetAttr, SetTime};
use crate::time::{from_ns, to_ns};

/// How long the kernel may cache attributes and entries of a volume only
/// this process changes (SQLite): its replies and the kernel's own
/// invalidation (after writes, links, renames, setattr) keep the cache
/// right; what else changes (the archiver's re-encoding changes
/// `st_blocks`) may show this late.
pub const TTL: Duration = Duration::from_secs(60);
/// The same for a volume other mounts may change (PostgreSQL), as NFS
/// revalidates: a name or attribute another mount changed shows within
/// this long, and at once at the next open of a file (close-to-open).
pub const SHARED_TTL: Duration = Duration::from_secs(1);
/// Requests the kernel may have in flight in the background (read-ahead,
/// asynchronous direct I/O): one per worker thread and then some.
const MAX_BACKGROUND: u16 = 64;
/// Entries a readdir reply asks of the core first, and at most per step.
/// A reply holds what the kernel's buffer takes (64 KiB on Linux 6.18:
/// some 350 entries with attributes, 1000 without), so the core is asked
/// for a few first and for twice as many each further step while the
/// reply still takes them, rather than for a fixed 1024 (three times the
/// rows a `readdirplus` reply could use).
const READDIR_FIRST: usize = 128;
const READDIR_MOST: usize = 1024;
/// Fills a readdir reply from cookie `offset`: asks `fetch(offset,
/// limit)` for `READDIR_FIRST` entries, then for twice as many per step
/// up to `READDIR_MOST`, and gives each to `add`, which says the entry's
/// cookie, or `None` once the reply is full. Ends there or at an empty
/// step (the end of the directory).
fn fill_listing<E>(
    mut offset: u64,
    fetch: impl Fn(u64, usize) -> crate::error::Result<Vec<E>>,
    mut add: impl FnMut(&E) -> Option<u64>,
) -> crate::error::Result<()> {
    let mut limit = READDIR_FIRST;
    loop {
        let entries = fetch(offset, limit)?;
        if entries.is_empty() {
            return Ok(());
        }
        for e in &entries {
            match add(e) {
                Some(cookie) => offset = cookie,
                None => return Ok(()),
            }
        }
        limit = (limit * 2).min(READDIR_MOST);
    }
}

/// Largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;

/// How long a /dev/fuse worker polls for the next request before it
/// sleeps (vendor/fuser/src/dev_poll.rs), on a machine of two cores or
/// more (one core has none to spare: there it does not poll). A process
/// making requests back to back (a `stat` loop, `rm -rf`, `tar x`) sends
/// the next one some tens of microseconds after a reply; caught by a
/// poll, it costs no wake-up of a sleeping core. Over /dev/fuse, against
/// no polling (docs/MEASUREMENTS.md, "Polling /dev/fuse"): creates 1.19x
/// to 1.52x as many a second, stats 1.37x to 1.87x, unlinks 1.24x to
/// 1.39x, `tar x` in 0.70-0.74 of the time.
pub fn default_dev_poll_us() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        100
    } else {
        0
    }
}

pub struct FuseFs {
    fs: Arc<Fs>,
    /// How long the kernel may cache attributes and entries.
    ttl: Duration,
    /// How long the kernel may cache that a name does not exist (zero:
    /// it asks again at every lookup).
    negative_ttl: Duration,
    /// The session's channel for invalidations, once the session exists.
    notifier: Arc<OnceLock<Notifier>>,
    /// The session's mount, once the session exists: `destroy` lets go of
    /// it (see there).
    unmounter: Arc<Mutex<Option<SessionUnmounter>>>,
    /// Where reads that wait for a slow decode run (slow_reads.rs).
    slow_reads: slow_reads::SlowReads,
}

impl FuseFs {
    pub fn new(fs: Arc<Fs>, ttl: Duration, negative_ttl: Duration) -> FuseFs {
        let notifier: Arc<OnceLock<Notifier>> = Arc::default();
        fs.use_page_cache(Arc::new(KernelPageCache {
            notifier: Arc::clone(&notifier),
        }));
        FuseFs {
            fs,
            ttl,
            negative_ttl,
            notifier,
            unmounter: Arc::default(),
            slow_reads: slow_reads::SlowReads::new(),
        }
    }

    /// Where the session's unmounter goes once the session is built
    /// (`fuser::Session::unmount_callable`).
    pub fn unmounter_slot(&self) -> Arc<Mutex<Option<SessionUnmounter>>> {
        Arc::clone(&self.unmounter)
    }

    /// Where the session's notifier goes once the session is built
    /// (`fuser::Session::notifier`): the session owns this value by then.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        Arc::clone(&self.notifier)
    }

    /// Has the kernel drop its cached attributes of `ino` (its size
    /// above all): another mount changed the file.
    fn forget_attributes(&self, ino: u64) {
        let Some(n) = self.notifier.get() else {
            return;
        };
        // A negative offset invalidates the attributes only; the open
        // without FOPEN_KEEP_CACHE drops the pages. An inode the kernel
        // no longer has (ENOENT) has nothing to drop.
        if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
            log::debug!("invalidating the attributes of inode {ino}: {e}");
        }
    }
}

/// The kernel's page cache of this session's files, reached through its
/// notifier (fs/page_cache.rs).
struct KernelPageCache {
    notifier: Arc<OnceLock<Notifier>>,
}

impl KernelPageCache {
    fn notifier(&self) -> std::io::Result<&Notifier> {
        self.notifier
            .get()
            .ok_or_else(|| std::io::Error::other("the session is not built yet"))
    }
}

impl PageCache for KernelPageCache {
    fn store(&self, ino: u64, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.notifier()?.store(INodeNo(ino), offset, data)
    }

    fn invalidate(&self, ino: u64, offset: u64, len: u64) -> std::io::Result<()> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        self.notifier()?.inval_inode(INodeNo(ino), offset, len)
    }
}

impl FuseFs {
    /// `FOPEN_DIRECT_IO` for a created file's handle whose writes skip
    /// the page cache (fs/page_cache.rs).
    fn direct_io(&self, flags: i32) -> FopenFlags {
        if self.fs.creates_past_page_cache(flags) {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }

    /// Clears set-user-ID and set-group-ID of a file an unprivileged
    /// caller changes (fs/setid.rs), and has the kernel drop the mode it
    /// cached: it would otherwise honour the bits for up to the attribute
    /// TTL.
    fn kill_suidgid(&self, ino: u64) -> Result<(), Errno> {
        match self.fs.kill_suidgid(ino) {
            Ok(true) => {
                self.forget_attributes(ino);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(errno("kill_suidgid", e)),
        }
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn to_file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: from_ns(a.atime_ns),
        mtime: from_ns(a.mtime_ns),
        ctime: from_ns(a.ctime_ns),
        crtime: from_ns(a.crtime_ns),
        kind: file_type(a.mode),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// `FOPEN_NOFLUSH` for a file opened read-only (and not truncated by the
/// open), else nothing: such a descriptor wrote nothing for its close to
/// write back or report, and the kernel keeps POSIX locks itself (no
/// FUSE_POSIX_LOCKS), so the flush at each of its closes would be a round
/// trip for nothing. A writer's close still flushes (fs/data.rs `flush`).
fn read_only_no_flush(flags: i32) -> FopenFlags {
    if flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_TRUNC == 0 {
        FopenFlags::FOPEN_NOFLUSH
    } else {
        FopenFlags::empty()
    }
}

/// The entry of a name that does not exist: only its node id, 0, counts;
/// the kernel keeps it as a negative dentry for the entry's timeout.
pub fn negative_entry() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

/// What the daemon asks of the kernel at INIT: the capabilities it uses,
/// the largest write, the background queue, nanosecond times. Public so
/// that examples/floor_fs (the benches' floor) mounts exactly as llmfs
/// does.
pub fn configure_kernel(config: &mut KernelConfig) {
    let wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
        | InitFlags::FUSE_PARALLEL_DIROPS
        | InitFlags::FUSE_MAX_PAGES
        | InitFlags::FUSE_BIG_WRITES
        | InitFlags::FUSE_DO_READDIRPLUS
        | InitFlags::FUSE_READDIRPLUS_AUTO
        // The core clears set-user-ID and set-group-ID when a file
        // changes (fs/setid.rs), so the kernel does not ask for the
        // file's `security.capability` before each write (SB_NOSEC:
        // once per inode) nor read the mode back before each chown:
        // small appends ran at half the speed with those round trips.
        | InitFlags::FUSE_HANDLE_KILLPRIV_V2
        // A symlink's target never changes (a new target is a new
        // inode, and inode numbers are not reused), so the kernel may
        // keep it: a path through a symlink needs no readlink each time.
        | InitFlags::FUSE_CACHE_SYMLINKS;
    // Not FUSE_WRITEBACK_CACHE: with it the kernel accepts a write past
    // the volume's size limit into its page cache (its limit for FUSE
    // is the VFS's) and the EFBIG comes only at write-back, and it
    // keeps ctime itself, unlike the store's after a remount
    // (tests/mount_semantics.rs `file_size_limits_and_far_offsets`,
    // `tree_persists_across_remount`).
    let available = config.capabilities() & wanted;
    let _ = config.add_capabilities(available);
    let _ = config.set_max_write(MAX_WRITE);
    let _ = config.set_max_background(MAX_BACKGROUND);
    let _ = config.set_time_granularity(Duration::from_nanos(1));
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(kernel_time_ns(t)),
    }
}

/// fuser 0.18 turns the kernel's (sec < 0, nsec) into
/// `UNIX_EPOCH - Duration::new(-sec, nsec)`, which is 2 * nsec too early;
/// this undoes that. Remove when fuser converts pre-1970 times correctly
/// (tests/mount/semantics.rs `utimensat_before_epoch_with_nanoseconds`).
fn kernel_time_ns(t: std::time::SystemTime) -> i64 {
    match std::time::UNIX_EPOCH.duration_since(t) {
        Ok(d) if !d.is_zero() => (-(d.as_secs() as i64))
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(d.subsec_nanos())),
        _ => to_ns(t),
    }
}

fn ctx(req: &Request, umask: u32) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
        umask,
    }
}

/// Turns a core error into an errno, logging faults (corruption, store
/// failures) once with the operation that met them.
fn errno(op: &str, e: Error) -> Errno {
    if e.is_fault() {
        log::error!("{op}: {e}");
    } else {
        log::debug!("{op}: {e}");
    }
    Errno::from_i32(e.errno())
}

/// Replies to a request whose answer is success or an errno.
fn reply_empty(reply: ReplyEmpty, op: &str, result: Result<(), Error>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(op, e)),
    }
}

impl FuseFs {
    /// Replies with an entry; the kernel now holds a reference to it.
    fn entry(&self, reply: ReplyEntry, a: &Attr) {
        self.fs.remember(a.ino);
        reply.entry(&self.ttl, &to_file_attr(a), Generation(0));
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        configure_kernel(config);
        Ok(())
    }

    fn destroy(&mut self) {
        self.slow_reads.stop();
        if let Err(e) = self.fs.shutdown() {
            log::error!("writing back at unmount failed: {e}");
        }
        // The session ends once the kernel has unmounted (umount, or the
        // last file closed after a lazy one); fuser would then unmount
        // again and warn "Failed to umount filesystem: Invalid argument"
        // at every unmount. Letting go of the mount here ends that; a
        // mount still attached (a session that ended on an error) is
        // unmounted, as fuser would have.
        let unmounter = self
            .unmounter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut u) = unmounter {
            match u.unmount() {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::debug!("the kernel had unmounted already: {e}")
                }
                Err(e) => log::warn!("unmounting at the end of the session: {e}"),
            }
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent.0, name.as_bytes()) {
            Ok(a) => self.entry(reply, &a),
            Err(Error::NotFound) if !self.negative_ttl.is_zero() => {
                // Node id 0 with a timeout: the kernel keeps a negative
                // dentry, so a build's search of include paths or a
                // shell's of $PATH asks once per name, not at every try.
                // Every later change of the name goes through this mount,
                // whose kernel replaces the dentry (create, mkdir, link,
                // rename, symlink, mknod); no reference to forget.
                log::debug!(
                    "lookup: no {:?} in directory {}; the kernel keeps that for {:?}",
                    name,
                    parent.0,
                    self.negative_ttl
                );
                reply.entry(&self.negative_ttl, &negative_entry(), Generation(0))
            }
            Err(e) => reply.error(errno("lookup", e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if let Err(e) = self.fs.forget(ino.0, nlookup) {
            errno("forget", e);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl, &to_file_attr(&a)),
            Err(e) => reply.error(errno("getattr", e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
            // The kernel's FATTR_KILL_SUIDGID, which fuser does not pass
            // on: sent with every change of owner, and with a truncation
            // by a caller without CAP_FSETID, which uid 0 stands for here.
            kill_suidgid: uid.is_some() || gid.is_some() || (size.is_some() && req.uid() != 0),
        };
        match self.fs.setattr(ino.0, &set) {
            Ok(a) => reply.attr(&self.ttl, &to_file_attr(&a)),
            Err(e) => reply.error(errno("setattr", e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        log::debug!("readlink: inode {}", ino.0);
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno("readlink", e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        match self
            .fs
            .mknod(&ctx(req, umask), parent.0, name.as_bytes(), mode, rdev)
        {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(errno("mknod", e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self
            .fs
            .mkdir(&ctx(req, umask), parent.0, name.as_bytes(), mode)
        {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(errno("mkdir", e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, "unlink", self.fs.unlink(parent.0, name.as_bytes()))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, "rmdir", self.fs.rmdir(parent.0, name.as_bytes()))
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let c = ctx(req, 0);
        match self.fs.symlink(
            &c,
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
        ) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(errno("symlink", e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            "rename",
            self.fs.rename(
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                flags.bits(),
            ),
        )
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.fs.link(ino.0, newparent.0, newname.as_bytes()) {
            Ok(a) => self.entry(reply, &a),
            Err(e) => reply.error(errno("link", e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // O_TRUNC by a caller without CAP_FSETID (the kernel's
        // FUSE_OPEN_KILL_SUIDGID, which fuser does not pass on; uid 0
        // stands for the capability).
        if flags.0 & libc::O_TRUNC != 0 && req.uid() != 0 {
            if let Err(e) = self.kill_suidgid(ino.0) {
                return reply.error(e);
            }
        }
        match self.fs.open_keeping_cache(ino.0, flags.0) {
            Ok((fh, keep)) => {
                let keep = if keep {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    if self.fs.store().is_shared() {
                        self.forget_attributes(ino.0);
                    }
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), keep | read_only_no_flush(flags.0))
            }
            Err(e) => reply.error(errno("open", e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read_unless_slow(ino.0, offset, size) {
            Ok(Some(data)) => reply.data(&data),
            Ok(None) => {
                let fs = Arc::clone(&self.fs);
                self.slow_reads
                    .run_or_inline(move || match fs.read(ino.0, offset, size) {
                        Ok(data) => reply.data(&data),
                        Err(e) => reply.error(errno("read", e)),
                    });
            }
            Err(e) => reply.error(errno("read", e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            if let Err(e) = self.kill_suidgid(ino.0) {
                return reply.error(e);
            }
        }
        match self.fs.write(ino.0, fh.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno("write", e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        log::debug!("flush: inode {}", ino.0);
        reply_empty(reply, "flush", self.fs.flush(ino.0))
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "release", self.fs.release(ino.0, fh.0))
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "fsync", self.fs.fsync(ino.0))
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // On a store directory the kernel may keep a directory's listing
        // in its page cache across opens: every change of the directory
        // goes through this kernel, which then drops the listing (the
        // directory's i_version moves). ENOSYS says so for good: the
        // kernel stops sending opendir and releasedir (two round trips per
        // directory a `find` or `git status` walks) and opens every
        // directory with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, checking the
        // caller's read permission itself (default_permissions). A
        // PostgreSQL volume's listings always come from the store, where
        // another mount may change them.
        if !self.fs.store().is_shared() {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.fs.opendir(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno("opendir", e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        log::debug!("readdir: directory {} from cookie {offset}", ino.0);
        let filled = fill_listing(
            offset,
            |offset, limit| self.fs.readdir(ino.0, offset, limit),
            |e| {
                let name = OsStr::from_bytes(&e.name);
                (!reply.add(INodeNo(e.ino), e.offset, file_type(e.mode), name)).then_some(e.offset)
            },
        );
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdir", e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        log::debug!("readdir: directory {} from cookie {offset}", ino.0);
        let filled = fill_listing(
            offset,
            |offset, limit| self.fs.readdir_plus(ino.0, offset, limit),
            |(e, a)| {
                let name = OsStr::from_bytes(&e.name);
                let full = reply.add(
                    INodeNo(e.ino),
                    e.offset,
                    name,
                    &self.ttl,
                    &to_file_attr(a),
                    Generation(0),
                );
                if full {
                    return None;
                }
                // The kernel takes a reference to each entry it was
                // given, except "." and "..".
                if e.name != b"." && e.name != b".." {
                    self.fs.remember(e.ino);
                }
                Some(e.offset)
            },
        );
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdirplus", e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "fsyncdir", self.fs.fsyncdir(ino.0))
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno("statfs", e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            "setxattr",
            self.fs.setxattr(ino.0, name.as_bytes(), value, flags),
        )
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.fs.getxattr(ino.0, name.as_bytes()) {
            Ok(v) => reply_xattr(reply, &v, size),
            Err(e) => reply.error(errno("getxattr", e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino.0) {
            Ok(v) => reply_xattr(reply, &v, size),
            Err(e) => reply.error(errno("listxattr", e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            "removexattr",
            self.fs.removexattr(ino.0, name.as_bytes()),
        )
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        reply_empty(
            reply,
            "access",
            self.fs.access(&ctx(req, 0), ino.0, mask.bits()),
        )
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            "fallocate",
            self.fs.fallocate(ino.0, offset, length, mode),
        )
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        // The file is new and empty: O_TRUNC has nothing to do, and the
        // access mode needs no check the kernel has not made.
        let created = self
            .fs
            .create_open(&ctx(req, umask), parent.0, name.as_bytes(), mode, flags);
        match created {
            Ok((a, fh)) => {
                self.fs.remember(a.ino);
                reply.created(
                    &self.ttl,
                    &to_file_attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    self.direct_io(flags),
                )
            }
            Err(e) => reply.error(errno("create", e)),
        }
    }
}

/// getxattr/listxattr protocol: size 0 asks for the length; a too-small
/// buffer is ERANGE.
fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(value);
    }
}
