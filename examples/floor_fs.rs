//! The floor under llmfs's small-file figures: a FUSE filesystem that
//! keeps everything in one map in memory and does nothing else, mounted
//! exactly as `llmfs mount` mounts (vendor/fuser, the same transports,
//! ring threads and their priority, the same INIT flags, `default_permissions`,
//! attribute and entry TTLs, negative entries, `FOPEN_DIRECT_IO` on a
//! write-only create). What a workload costs on it is what the kernel's
//! requests and their round trips cost on this machine whatever a daemon
//! does. bench/fs.sh runs it as a column beside llmfs and the
//! passthroughs; bench/contender.sh takes it as `floor` or `floor+uring`.
//!
//!   floor_fs MOUNTPOINT        (root; runs until unmounted)
//!
//! Not a filesystem to keep data in: no persistence, no hard links, no
//! rename, no extended attributes (each `getxattr` is ENODATA, as on a
//! volume that holds none).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr,
    Request, SessionACL, TimeOrNow, WriteFlags,
};
use llmfs::fuse::{configure_kernel, negative_entry, TTL};

struct Node {
    attr: FileAttr,
    data: Vec<u8>,
    /// A directory's names, in the order listings give them.
    entries: BTreeMap<OsString, u64>,
    target: Vec<u8>,
}

struct Tree {
    nodes: HashMap<u64, Node>,
    next: u64,
}

struct FloorFs {
    tree: Mutex<Tree>,
}

fn attr(ino: u64, kind: FileType, perm: u16, req: &Request) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: req.uid(),
        gid: req.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl Tree {
    /// Adds `name` in `parent` as a new node; its attributes.
    fn add(&mut self, parent: u64, name: &OsStr, mut node: Node) -> Result<FileAttr, Errno> {
        let ino = self.next;
        let dir = self.nodes.get_mut(&parent).ok_or(errno(libc::ENOENT))?;
        if dir.entries.contains_key(name) {
            return Err(errno(libc::EEXIST));
        }
        dir.entries.insert(name.to_owned(), ino);
        dir.attr.mtime = SystemTime::now();
        dir.attr.ctime = dir.attr.mtime;
        if node.attr.kind == FileType::Directory {
            dir.attr.nlink += 1;
        }
        self.next += 1;
        node.attr.ino = INodeNo(ino);
        let a = node.attr;
        self.nodes.insert(ino, node);
        Ok(a)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let p = self.nodes.get(&parent).ok_or(errno(libc::ENOENT))?;
        let ino = *p.entries.get(name).ok_or(errno(libc::ENOENT))?;
        let node = &self.nodes[&ino];
        match (dir, node.attr.kind == FileType::Directory) {
            (true, false) => return Err(errno(libc::ENOTDIR)),
            (false, true) => return Err(errno(libc::EISDIR)),
            (true, true) if !node.entries.is_empty() => return Err(errno(libc::ENOTEMPTY)),
            _ => {}
        }
        self.nodes.remove(&ino);
        let p = self.nodes.get_mut(&parent).expect("looked up above");
        p.entries.remove(name);
        p.attr.mtime = SystemTime::now();
        p.attr.ctime = p.attr.mtime;
        if dir {
            p.attr.nlink -= 1;
        }
        Ok(())
    }
}

/// A directory's entries from cookie `offset` on: (cookie, name, inode).
/// A name's place in the listing is its cookie, which holds while nothing
/// changes: enough for the benches' `rm -rf`, which lists, then removes.
fn listing(dir: &Node, offset: u64) -> impl Iterator<Item = (u64, &OsString, u64)> {
    dir.entries
        .iter()
        .enumerate()
        .skip(offset as usize)
        .map(|(i, (name, ino))| (i as u64 + 1, name, *ino))
}

impl FloorFs {
    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_node(&self, req: &Request, kind: FileType, mode: u32, umask: u32) -> Node {
        Node {
            attr: attr(0, kind, (mode & !umask & 0o7777) as u16, req),
            data: Vec::new(),
            entries: BTreeMap::new(),
            target: Vec::new(),
        }
    }
}

fn to_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::Now => SystemTime::now(),
        TimeOrNow::SpecificTime(t) => t,
    }
}

impl Filesystem for FloorFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        configure_kernel(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.tree();
        let Some(dir) = t.nodes.get(&parent.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        match dir.entries.get(name) {
            Some(ino) => reply.entry(&TTL, &t.nodes[ino].attr, Generation(0)),
            None => reply.entry(&TTL, &negative_entry(), Generation(0)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().nodes.get(&ino.0) {
            Some(n) => reply.attr(&TTL, &n.attr),
            None => reply.error(errno(libc::ENOENT)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut t = self.tree();
        let Some(n) = t.nodes.get_mut(&ino.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        if let Some(m) = mode {
            n.attr.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = uid {
            n.attr.uid = u;
        }
        if let Some(g) = gid {
            n.attr.gid = g;
        }
        if let Some(s) = size {
            n.data.resize(s as usize, 0);
            n.attr.size = s;
        }
        if let Some(a) = atime {
            n.attr.atime = to_time(a);
        }
        if let Some(m) = mtime {
            n.attr.mtime = to_time(m);
        }
        n.attr.ctime = SystemTime::now();
        reply.attr(&TTL, &n.attr)
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.tree().nodes.get(&ino.0) {
            Some(n) => reply.data(&n.target),
            None => reply.error(errno(libc::ENOENT)),
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
        let node = self.new_node(req, FileType::Directory, mode, umask);
        match self.tree().add(parent.0, name, node) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut node = self.new_node(req, FileType::Symlink, 0o777, 0);
        node.target = target.as_os_str().as_bytes().to_vec();
        node.attr.size = node.target.len() as u64;
        match self.tree().add(parent.0, link_name, node) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Every change comes through this kernel: its cached pages stay
        // right across opens (llmfs keeps them while a file is unchanged).
        match self.tree().nodes.contains_key(&ino.0) {
            true => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            false => reply.error(errno(libc::ENOENT)),
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
        let t = self.tree();
        let Some(n) = t.nodes.get(&ino.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        let start = (offset as usize).min(n.data.len());
        let end = (start + size as usize).min(n.data.len());
        reply.data(&n.data[start..end])
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut t = self.tree();
        let Some(n) = t.nodes.get_mut(&ino.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        let end = offset as usize + data.len();
        if n.data.len() < end {
            n.data.resize(end, 0);
        }
        n.data[offset as usize..end].copy_from_slice(data);
        n.attr.size = n.data.len() as u64;
        n.attr.mtime = SystemTime::now();
        n.attr.ctime = n.attr.mtime;
        reply.written(data.len() as u32)
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // As llmfs on a SQLite volume: the kernel opens directories itself.
        reply.error(errno(libc::ENOSYS))
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let t = self.tree();
        let Some(dir) = t.nodes.get(&ino.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        for (cookie, name, ino) in listing(dir, offset) {
            if reply.add(INodeNo(ino), cookie, t.nodes[&ino].attr.kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let t = self.tree();
        let Some(dir) = t.nodes.get(&ino.0) else {
            return reply.error(errno(libc::ENOENT));
        };
        for (cookie, name, ino) in listing(dir, offset) {
            let a = &t.nodes[&ino].attr;
            if reply.add(INodeNo(ino), cookie, name, &TTL, a, Generation(0)) {
                break;
            }
        }
        reply.ok()
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(errno(libc::ENODATA))
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
        let node = self.new_node(req, FileType::RegularFile, mode, umask);
        // As llmfs: a write-only create's writes skip the page cache.
        let direct = if flags & libc::O_ACCMODE == libc::O_WRONLY {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        };
        match self.tree().add(parent.0, name, node) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), direct),
            Err(e) => reply.error(e),
        }
    }
}

fn main() {
    let Some(mountpoint) = std::env::args_os().nth(1) else {
        eprintln!("usage: floor_fs MOUNTPOINT");
        std::process::exit(2);
    };
    let root = Node {
        attr: FileAttr {
            ino: INodeNo(1),
            size: 0,
            blocks: 0,
            atime: SystemTime::now(),
            mtime: SystemTime::now(),
            ctime: SystemTime::now(),
            crtime: SystemTime::now(),
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        },
        data: Vec::new(),
        entries: BTreeMap::new(),
        target: Vec::new(),
    };
    let fs = FloorFs {
        tree: Mutex::new(Tree {
            nodes: HashMap::from([(1, root)]),
            next: 2,
        }),
    };
    // llmfs's session (src/cli/mount.rs `mount`) with its defaults on two
    // cores: two /dev/fuse threads, two ring threads per CPU at SCHED_IDLE.
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("floor".into()),
        MountOption::Subtype("floor".into()),
        MountOption::DefaultPermissions,
    ];
    config.acl = SessionACL::Owner;
    config.n_threads = Some(2);
    config.clone_fd = true;
    config.io_uring_threads = 2;
    config.dev_poll = Duration::from_micros(u64::from(llmfs::fuse::default_dev_poll_us()));
    config.io_uring_idle_priority = true;
    let session = match fuser::Session::new(fs, Path::new(&mountpoint), &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floor_fs: mounting: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = session.run() {
        eprintln!("floor_fs: {e}");
        std::process::exit(1);
    }
}
