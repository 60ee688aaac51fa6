//! Write-only descriptors write past the kernel's page cache
//! (src/fs/page_cache.rs), through a real mount: what they wrote reads
//! back right, a large file's pages are in the cache once it is closed,
//! and closes of a duplicate racing the writes (each a write-back that
//! stores pages) never leave a stale page behind.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::{text, Mounted};
use crate::semantics::RemountCheck;

/// How many of the file's pages the kernel has cached (mincore of a
/// read-only mapping, which faults nothing in).
fn cached_pages(p: &Path) -> (usize, usize) {
    let f = File::open(p).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    // SAFETY: mapping `len` bytes of an open descriptor, read-only.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    let mut vec = vec![0u8; pages];
    // SAFETY: ptr maps len bytes; vec has a byte per page.
    assert_eq!(unsafe { libc::mincore(ptr, len, vec.as_mut_ptr()) }, 0);
    // SAFETY: as mapped above.
    assert_eq!(unsafe { libc::munmap(ptr, len) }, 0);
    (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
}

#[test]
fn write_only_files_read_back_and_large_ones_are_cached_after_the_close() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let large = text(1 << 20, 11);
    let small = text(10_000, 12);
    // File::create: O_WRONLY | O_CREAT | O_TRUNC, written in pieces as a
    // copy writes.
    let mut f = File::create(m.path("large")).unwrap();
    for piece in large.chunks(128 << 10) {
        std::io::Write::write_all(&mut f, piece).unwrap();
    }
    drop(f);
    fs::write(m.path("small"), &small).unwrap();
    let (cached, pages) = cached_pages(&m.path("large"));
    assert_eq!(cached, pages, "the large file's pages after its close");
    assert!(fs::read(m.path("large")).unwrap() == large);
    assert!(fs::read(m.path("small")).unwrap() == small);
    // An existing file opened write-only, partly overwritten.
    let f = OpenOptions::new()
        .write(true)
        .open(m.path("large"))
        .unwrap();
    f.write_all_at(b"overwritten", 5000).unwrap();
    drop(f);
    let mut want = large.clone();
    want[5000..5011].copy_from_slice(b"overwritten");
    assert!(fs::read(m.path("large")).unwrap() == want);
    m.remount_check_and_fsck(|m| {
        assert!(fs::read(m.path("large")).unwrap() == want, "remounted");
        assert!(fs::read(m.path("small")).unwrap() == small, "remounted");
    });
}

#[test]
fn closes_of_a_duplicate_racing_the_writes_leave_no_stale_page() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    let size = 512 << 10;
    let mut model = text(size, 13);
    let f = Arc::new(File::create(&p).unwrap());
    f.write_all_at(&model, 0).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Each close of a duplicate is a FLUSH: a write-back, whose bytes go
    // into the page cache while only write-only handles are open.
    let closer = {
        let (f, done) = (Arc::clone(&f), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut closes = 0u32;
            while !done.load(Ordering::Relaxed) {
                drop(f.try_clone().unwrap());
                closes += 1;
            }
            closes
        })
    };
    let source = text(1 << 20, 14);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 1 + (seed % 20_000) as usize;
        let off = ((seed >> 20) as usize) % (size - len);
        let at = ((seed >> 40) as usize) % (source.len() - len);
        f.write_all_at(&source[at..at + len], off as u64).unwrap();
        model[off..off + len].copy_from_slice(&source[at..at + len]);
    }
    done.store(true, Ordering::Relaxed);
    let closes = closer.join().unwrap();
    assert!(closes > 0);
    drop(f);
    // Read through the page cache (the open keeps it): every page the
    // write-backs stored must hold the last bytes written there.
    let got = fs::read(&p).unwrap();
    let first_bad = got.iter().zip(&model).position(|(a, b)| a != b);
    assert!(
        first_bad.is_none(),
        "stale byte at {first_bad:?} after {closes} closes"
    );
    m.remount_check_and_fsck(|m| assert!(fs::read(m.path("f")).unwrap() == model, "remounted"));
}
