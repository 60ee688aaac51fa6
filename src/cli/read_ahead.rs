//! The kernel's read-ahead for a mount.
//!
//! The kernel reads ahead of a sequential reader by its mount's
//! `read_ahead_kb` (/sys/class/bdi/MAJOR:MINOR/), 128 KiB for a FUSE
//! mount: two of llmfs's blocks. A reader of 1 MiB at a time then waits
//! for each request's blocks to be read and decoded while the mount's
//! threads idle as it copies. With 1 MiB the kernel asks for 1 MiB a
//! request and reads the next megabyte while the reader copies the last:
//! `WARM_BACKING=1 bash bench/seq_read.sh 5` with this setting and with 0
//! (bench/results/2026-12-05-seq-read-warm-backing.tsv), 1743-1917
//! against 1384-1534 MB/s over /dev/fuse and 1459-1627 against 1065-1363
//! over io_uring (mergerfs 1561-1699). The price is in what a reader
//! leaves unread: a page fault of a memory-mapped file reads the whole
//! window around it (the kernel's read-around), and on archived blocks
//! that is up to a window's decodes; and a reader's first window doubles,
//! so the first bytes of an archived file come later (8-18% for the
//! first 128 KiB of a deep-archived file: bench/first_byte.sh with
//! READ_BLOCK, bench/results/2026-12-05-first-byte-read-ahead.tsv).

use std::io::Write;
use std::path::Path;

/// `--read-ahead-kib` unless asked otherwise.
pub const DEFAULT_KIB: u32 = 1024;

/// Sets the read-ahead of the filesystem mounted on `mountpoint` (absolute,
/// no symlinks) to `kib` KiB; 0 leaves the kernel's. Called once the FUSE
/// handshake is done, before the session serves: it reads only /proc and
/// writes only /sys, never the mount. Needs root:
/// otherwise, or if the mount's device is not found, the kernel's stays and
/// the log says why.
pub fn set(mountpoint: &Path, kib: u32) {
    if kib == 0 {
        return;
    }
    let Some(device) = super::mountinfo::device_of_mountpoint(mountpoint) else {
        return log::info!(
            "read-ahead left at the kernel's: {} is not in /proc/self/mountinfo",
            mountpoint.display()
        );
    };
    let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&knob)
        .and_then(|mut f| f.write_all(kib.to_string().as_bytes()));
    match written {
        Ok(()) => log::debug!("read-ahead of {}: {kib} KiB ({knob})", mountpoint.display()),
        Err(e) => log::info!("read-ahead left at the kernel's: writing {knob}: {e}"),
    }
}
