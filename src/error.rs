//! The filesystem core's error type and its one mapping to errno.

use std::fmt;

use crate::codec::CodecError;
use crate::store::StoreError;

/// Every way a filesystem operation can fail. [`Error::errno`] is the only
/// place that turns these into errno values.
#[derive(Debug)]
pub enum Error {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    NameTooLong,
    InvalidArgument(&'static str),
    PermissionDenied,
    NotPermitted,
    ReadOnly,
    NoSpace,
    NoAttribute,
    AttributeTooLarge,
    BufferTooSmall,
    Unsupported(&'static str),
    FileTooLarge,
    TooManyLinks,
    BadHandle,
    /// The file was deleted (by another mount of the volume) while open
    /// here: what it held is gone, and no other bytes are returned.
    Stale(u64),
    /// A stored block failed to decode or verify. Reported for that block
    /// only; the rest of the volume stays readable.
    Corrupt {
        ino: u64,
        block: u64,
        source: CodecError,
    },
    /// The store's metadata contradicts itself (found while serving a request).
    Inconsistent(String),
    /// A shared decode of a block failed for a reason other than a corrupt
    /// payload (its thread panicked or could not start, or the store failed
    /// under it); every reader waiting on it gets this.
    DecodeFailed(String),
    Store(StoreError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::PermissionDenied => libc::EACCES,
            Error::NotPermitted => libc::EPERM,
            Error::ReadOnly => libc::EROFS,
            Error::NoSpace => libc::ENOSPC,
            Error::NoAttribute => libc::ENODATA,
            Error::AttributeTooLarge => libc::E2BIG,
            Error::BufferTooSmall => libc::ERANGE,
            Error::Unsupported(_) => libc::EOPNOTSUPP,
            Error::FileTooLarge => libc::EFBIG,
            Error::TooManyLinks => libc::EMLINK,
            Error::BadHandle => libc::EBADF,
            Error::Stale(_) => libc::ESTALE,
            Error::Corrupt { .. } | Error::Inconsistent(_) | Error::DecodeFailed(_) => libc::EIO,
            Error::Store(e) if e.is_disk_full() => libc::ENOSPC,
            Error::Store(_) => libc::EIO,
        }
    }

    /// Errors that mean something is wrong with the volume rather than with
    /// the request; the FUSE layer logs these at error level.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. }
                | Error::Inconsistent(_)
                | Error::DecodeFailed(_)
                | Error::Store(_)
        ) && self.errno() != libc::ENOSPC
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such file or directory"),
            Error::Exists => f.write_str("file exists"),
            Error::NotDir => f.write_str("not a directory"),
            Error::IsDir => f.write_str("is a directory"),
            Error::NotEmpty => f.write_str("directory not empty"),
            Error::NameTooLong => f.write_str("name too long"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::PermissionDenied => f.write_str("permission denied"),
            Error::NotPermitted => f.write_str("operation not permitted"),
            Error::ReadOnly => f.write_str("read-only filesystem"),
            Error::NoSpace => f.write_str("no space left on device"),
            Error::NoAttribute => f.write_str("no such attribute"),
            Error::AttributeTooLarge => f.write_str("attribute value too large"),
            Error::BufferTooSmall => f.write_str("buffer too small"),
            Error::Unsupported(what) => write!(f, "operation not supported: {what}"),
            Error::FileTooLarge => f.write_str("file too large"),
            Error::TooManyLinks => f.write_str("too many links"),
            Error::BadHandle => f.write_str("bad file handle"),
            Error::Stale(ino) => write!(
                f,
                "inode {ino} was deleted by another mount of the volume while open here"
            ),
            Error::Corrupt { ino, block, source } => {
                write!(f, "inode {ino} block {block} is corrupt: {source}")
            }
            Error::Inconsistent(msg) => write!(f, "store metadata is inconsistent: {msg}"),
            Error::DecodeFailed(msg) => write!(f, "decoding the block failed: {msg}"),
            Error::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}
