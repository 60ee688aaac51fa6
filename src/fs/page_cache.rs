//! Files created for writing only write past the kernel's page cache,
//! and what they wrote is put into it as it is written back.
//!
//! Through the page cache, the kernel copies every write into pages,
//! asks the daemon for a new file's `security.capability` before its
//! first write (FUSE clears the inode's `S_NOSEC` mark whenever
//! attributes arrive, as the create's do), and splits a write that
//! starts inside a page that is not up to date into two requests (`tar`
//! writes 10 KiB records). A file created write-only (`cp`, `tar x`, a
//! download, the first `>>` to a new log) reads nothing through those
//! pages, so its create is answered with `FOPEN_DIRECT_IO`: each write
//! goes to the daemon whole, as a FUSE passthrough's do. Opens of
//! existing files keep the page cache: the kernel may hold pages of
//! such a file, and each direct write would need them dropped before
//! and after it (kernels since 6.19 do so themselves; the daemon would
//! for older ones), which cost a log writer that reopens its file for
//! each line a fifth of its speed when tried.
//!
//! What such a handle wrote is then missing from the page cache when the
//! file is read next. For a small file (at most [`SMALL_FILE_BYTES`])
//! that costs one read request, of a record stored raw (or a small zstd
//! one), and filling the page cache for every file of a copied tree
//! would cost the copy most of what skipping the page cache saves. A
//! larger file would read back at the speed of decoding its blocks (an
//! 88 MiB file at an eighth of the page cache's speed, when direct
//! writes were first tried), so each write-back of a larger file whose
//! every handle is write-only hands the bytes it wrote to the kernel
//! (`FUSE_NOTIFY_STORE`), as the page cache would have held them.
//!
//! Why a stored page is never older than the file:
//! - A store happens under the core's state lock, with the bytes of that
//!   write-back, while every handle open on the inode is write-only. No
//!   reader's handle exists, so no read request of the inode is in
//!   flight, and none has a page locked that the store would wait for
//!   (a mapping holds its handle open). An open or a truncation waits for
//!   the state lock, so none begins meanwhile.
//! - Kernels since 6.19 (and 6.18's stable updates) drop a direct
//!   write's pages before they send the write and again after it; older
//!   ones may not. A write that was already on its way while a store put
//!   the older bytes back is applied after it (it waits for the state
//!   lock) and then drops its range itself ([`PageCache::invalidate`])
//!   before it answers: every write through a write-only handle below
//!   the end of what was stored does.
//! - Blocks written again since the write-back began are newer than its
//!   bytes, and are not stored.
//! - Once another handle has opened the file (it may read pages, map
//!   them, or write through them), a write-only handle's write drops its
//!   range before it is applied (a mapping's dirty page reaches the file
//!   first) and after, where a kernel older than 6.19 would not.

use std::io;

use super::RAW_INTERIM_MAX_BYTES;

/// Files up to this size are not put into the page cache after direct
/// writes: a write-back this small is stored raw (write_back.rs), and
/// reads back in one request without decoding.
pub(super) const SMALL_FILE_BYTES: u64 = RAW_INTERIM_MAX_BYTES as u64;

/// The kernel's page cache of the mounted files, as the FUSE layer
/// reaches it (fuse/mod.rs: the session's notifier). Errors are the
/// kernel's: `ENOENT` for an inode it no longer holds.
pub trait PageCache: Send + Sync {
    /// Puts `data` into the file's cached pages from `offset` on (within
    /// the file's size).
    fn store(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Drops the file's cached pages over `offset..offset + len`.
    fn invalidate(&self, ino: u64, offset: u64, len: u64) -> io::Result<()>;
}

/// Whether a created file's handle opened with `flags` writes past the
/// page cache: it is write-only. (The kernel answers `O_RDWR` reads from
/// the same pages the writes fill, so those keep going through them.)
pub(super) fn write_only(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_WRONLY
}

/// Stores the written-back `blocks` (full block-size buffers by block
/// index, of a file `size` long) into the page cache, leaving out those
/// in `newer`; returns the end of what was stored (0 if nothing).
pub(super) fn store_blocks<'a>(
    cache: &dyn PageCache,
    ino: u64,
    blocks: impl Iterator<Item = (u64, &'a [u8])>,
    size: u64,
    block_size: u64,
    newer: impl Fn(u64) -> bool,
) -> u64 {
    let mut end = 0;
    for (idx, buf) in blocks {
        let offset = idx * block_size;
        if offset >= size || newer(idx) {
            continue;
        }
        let len = (size - offset).min(block_size) as usize;
        match cache.store(ino, offset, &buf[..len]) {
            Ok(()) => end = end.max(offset + len as u64),
            // The kernel forgot the inode: nothing of it is cached.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return end,
            Err(e) => {
                log::debug!("storing inode {ino} block {idx} in the page cache: {e}");
                return end;
            }
        }
    }
    end
}
