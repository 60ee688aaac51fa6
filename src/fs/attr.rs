//! Inode attributes as the core reports them, and requested changes.

use crate::store::InodeRow;

/// The attributes of an inode: a `stat` without FUSE types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    /// Logical size in bytes.
    pub size: u64,
    /// Space used, in 512-byte units: the stored (compressed) size, so `du`
    /// shows what the volume really spends.
    pub blocks: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub crtime_ns: i64,
    /// Full `st_mode`: file type and permission bits.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

impl Attr {
    pub fn from_row(row: &InodeRow, blksize: u32) -> Attr {
        Attr {
            ino: row.ino,
            size: row.size,
            blocks: row.stored_bytes.div_ceil(512),
            atime_ns: row.atime_ns,
            mtime_ns: row.mtime_ns,
            ctime_ns: row.ctime_ns,
            crtime_ns: row.crtime_ns,
            mode: row.mode,
            nlink: row.nlink,
            uid: row.uid,
            gid: row.gid,
            rdev: row.rdev,
            blksize,
        }
    }

    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
}

/// A time to set: now, or a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(i64),
}

impl SetTime {
    pub fn resolve(self, now: i64) -> i64 {
        match self {
            SetTime::Now => now,
            SetTime::At(ns) => ns,
        }
    }
}

/// The attribute changes of one `setattr` request; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    /// Also clear set-user-ID, and set-group-ID with group execute, of a
    /// non-directory (the kernel's FATTR_KILL_SUIDGID: a change of owner,
    /// or a truncation by a caller without CAP_FSETID; setid.rs).
    pub kill_suidgid: bool,
}

/// Who is asking: the caller's credentials and umask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

impl Ctx {
    pub fn root() -> Ctx {
        Ctx {
            uid: 0,
            gid: 0,
            umask: 0o022,
        }
    }
}

/// One entry returned by `readdir`; `offset` is the cookie to resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub offset: u64,
    pub mode: u32,
    pub name: Vec<u8>,
}

/// Filesystem-wide numbers for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}
