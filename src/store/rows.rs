//! The rows and totals the store's transactions return, the same for
//! every backend.

/// One row of `inodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRow {
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub stored_bytes: u64,
    pub rdev: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub crtime_ns: i64,
    pub target: Option<Vec<u8>>,
}

/// The fields of a new inode; the store assigns the number.
#[derive(Debug, Clone)]
pub struct NewInode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    pub time_ns: i64,
    pub target: Option<Vec<u8>>,
}

impl NewInode {
    /// The row this inode is stored as once it has number `ino` (a
    /// symlink's size is its target's length).
    pub fn row(&self, ino: u64) -> InodeRow {
        InodeRow {
            ino,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            nlink: self.nlink,
            size: self.target.as_ref().map_or(0, |t| t.len() as u64),
            stored_bytes: 0,
            rdev: self.rdev,
            atime_ns: self.time_ns,
            mtime_ns: self.time_ns,
            ctime_ns: self.time_ns,
            crtime_ns: self.time_ns,
            target: self.target.clone(),
        }
    }
}

/// One directory entry with the type of the inode it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryRow {
    pub cookie: u64,
    pub name: Vec<u8>,
    pub ino: u64,
    pub mode: u32,
}

/// Summary of one stored block, without its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub ino: u64,
    pub idx: u64,
    pub codec: u8,
    pub raw_len: u64,
    pub stored_len: u64,
}

/// Volume-wide totals for `llmfs stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    pub files: u64,
    pub directories: u64,
    pub other_inodes: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    /// One entry per codec id that has blocks, in id order.
    pub per_codec: Vec<CodecTotals>,
    /// llm blocks coded with a float model (payload versions 1 and 2),
    /// which decode only on the engine class that wrote them.
    /// `llmfs archive --portable` re-encodes them.
    pub llm_not_portable: BlockCount,
}

/// A number of blocks and their raw bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCount {
    pub blocks: u64,
    pub raw_bytes: u64,
}

/// The blocks stored with one codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodecTotals {
    /// The codec id of the records (docs/FORMAT.md); not necessarily one
    /// this build knows.
    pub codec: u8,
    pub blocks: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Raw and stored bytes of a set of blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteTotals {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// How far the archiver has taken a block: the `blocks.archived` column
/// (docs/FORMAT.md). The numbers are on disk: 1 is what every earlier
/// llmfs wrote once it had chosen a block's final codec, the model
/// included, so it stays the deep tier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ArchiveTier {
    /// Not yet considered: as written (zstd or raw).
    Pending = 0,
    /// The deep tier: the smallest of the model and the archive tier's
    /// codecs. Final until the block is written again.
    Deep = 1,
    /// The archive tier: the smallest of the model-free codecs; the deep
    /// tier may still take the block once it has been cold long enough.
    Archive = 2,
}

/// A stored volume dictionary (`dictionaries` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictionaryRow {
    /// SHA-256 (hex) of the dictionary's bytes.
    pub sha256: String,
    pub raw_len: u64,
    /// The bytes, cm-coded.
    pub payload: Vec<u8>,
}

/// Raw and stored bytes of the blocks in each archive tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveTotals {
    /// Not yet considered by the archiver.
    pub pending: ByteTotals,
    pub archive: ByteTotals,
    pub deep: ByteTotals,
}

impl ArchiveTotals {
    /// Every block the archiver has considered, in either tier.
    pub fn archived(&self) -> ByteTotals {
        ByteTotals {
            raw_bytes: self.archive.raw_bytes + self.deep.raw_bytes,
            stored_bytes: self.archive.stored_bytes + self.deep.stored_bytes,
        }
    }
}

/// An archive worker's claim on the blocks it encodes (docs/DESIGN.md,
/// "Archive workers"): whose it is, and how long a claim lives unless
/// the worker renews it. A worker that dies leaves its claims to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Names the worker: unique per process (host, pid, start time).
    pub worker: String,
    /// How long a claim lasts past its last renewal, by the server's clock.
    pub duration: std::time::Duration,
}

/// The segment files of a store directory (docs/FORMAT.md, "Version 14").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentUsage {
    pub files: u64,
    /// Bytes the filesystem has allocated to them (holes punched over
    /// dead records are not).
    pub disk_bytes: u64,
    /// Block records kept in them, and their bytes.
    pub records: u64,
    pub record_bytes: u64,
}
