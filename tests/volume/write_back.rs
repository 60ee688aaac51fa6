//! Write-back off the request path (src/fs/write_back.rs), on the core
//! called directly: with a small dirty budget, writes keep starting
//! background write-backs, and reads, overwrites of blocks in flight,
//! truncation, fsync and a remount must see exactly what a plain byte
//! vector says; on a full disk the error reaches a write or fsync and
//! nothing written before is lost.

use std::path::Path;
use std::process::Command;

use llmfs::fs::{Ctx, Fs, FsConfig, SetAttr};
use llmfs::store::{OpenOptions, Store, ROOT_INO};

use crate::common::{fresh_stores, noise, text, Rng};

const BLOCK: usize = 4096;
/// A write-back starts past a quarter of this: every few writes.
const BUDGET: usize = 64 * 1024;

fn config() -> FsConfig {
    FsConfig {
        dirty_bytes: BUDGET,
        // Every write-back's records go to segment files (SQLite).
        segment_min_bytes: 1,
        ..FsConfig::default()
    }
}

fn check(fs: &Fs, ino: u64, model: &[u8], what: &str) {
    assert_eq!(
        fs.getattr(ino).unwrap().size,
        model.len() as u64,
        "{what}: size"
    );
    let got = fs.read(ino, 0, model.len() as u32 + 1).unwrap();
    assert!(got == model, "{what}: content differs");
}

#[test]
fn reads_overwrites_and_truncation_during_background_write_backs() {
    for store in fresh_stores() {
        println!("backend: {:?}", store.kind);
        let mut model: Vec<u8> = Vec::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let ino = {
            let fs = Fs::new(store.create(BLOCK).unwrap(), config()).unwrap();
            let (attr, fh) = fs.create(&Ctx::root(), ROOT_INO, b"f", 0o644).unwrap();
            let ino = attr.ino;
            let source = text(1 << 20, 3);
            for step in 0..400 {
                match rng.below(10) {
                    // Mostly appends and overwrites near the end, where the
                    // blocks of the write-back in flight are; some partial
                    // blocks, some whole ones.
                    0..=5 => {
                        let len = 1 + rng.below(3 * BLOCK as u64) as usize;
                        let back = rng.below(4 * BLOCK as u64 + 1) as usize;
                        let off = model.len().saturating_sub(back);
                        let at = rng.below((source.len() - len) as u64) as usize;
                        let data = &source[at..at + len];
                        assert_eq!(fs.write(ino, fh, off as u64, data).unwrap(), len);
                        if model.len() < off + len {
                            model.resize(off + len, 0);
                        }
                        model[off..off + len].copy_from_slice(data);
                    }
                    6 | 7 => {
                        let off = rng.below(model.len() as u64 + 1);
                        let len = rng.below(3 * BLOCK as u64) as u32;
                        let got = fs.read(ino, off, len).unwrap();
                        let end = model.len().min(off as usize + len as usize);
                        let want = &model[(off as usize).min(end)..end];
                        assert!(got == want, "step {step}: read at {off}+{len} differs");
                    }
                    8 => {
                        // Shrink or grow by up to two blocks.
                        let size = (model.len() as u64 + rng.below(4 * BLOCK as u64))
                            .saturating_sub(2 * BLOCK as u64);
                        let set = SetAttr {
                            size: Some(size),
                            ..SetAttr::default()
                        };
                        assert_eq!(fs.setattr(ino, &set).unwrap().size, size);
                        model.resize(size as usize, 0);
                    }
                    _ => {
                        if rng.below(4) == 0 {
                            fs.fsync(ino).unwrap();
                        } else {
                            check(&fs, ino, &model, &format!("step {step}"));
                        }
                    }
                }
            }
            check(&fs, ino, &model, "before close");
            fs.flush(ino).unwrap();
            fs.release(ino, fh).unwrap();
            fs.shutdown().unwrap();
            ino
        };
        let fs = Fs::new(store.open(&OpenOptions::default()).unwrap(), config()).unwrap();
        check(&fs, ino, &model, "after remount");
    }
}

/// An append (`O_APPEND`) after a `close` or an `fsync` finds the file's
/// partial last block in the cache (its bytes as just committed) instead
/// of reading the block back from the store and decoding it; a file
/// written once leaves no such block; the file reads as the lines
/// appended, before and after a remount.
#[test]
fn appends_after_a_close_or_fsync_find_the_last_block_cached() {
    for store in fresh_stores() {
        println!("backend: {:?}", store.kind);
        let mut model: Vec<u8> = Vec::new();
        let ino = {
            let fs = Fs::new(store.create(BLOCK).unwrap(), FsConfig::default()).unwrap();
            // A file written once, as a copy writes it, leaves nothing in
            // the cache at its close.
            let (copy, fh) = fs.create(&Ctx::root(), ROOT_INO, b"copy", 0o644).unwrap();
            fs.write(copy.ino, fh, 0, b"written once, then closed")
                .unwrap();
            fs.flush(copy.ino).unwrap();
            fs.release(copy.ino, fh).unwrap();
            assert_eq!(fs.cache_stats().entries, 0, "a copy's tail was cached");
            let (attr, fh) = fs.create(&Ctx::root(), ROOT_INO, b"log", 0o644).unwrap();
            let ino = attr.ino;
            fs.release(ino, fh).unwrap();
            // About 3.5 blocks of lines: appends into partial blocks, and
            // some that start a block.
            for i in 0..600u32 {
                let line = format!("{i:05} request served in 3 ms\n");
                let fh = fs.open(ino, libc::O_WRONLY | libc::O_APPEND).unwrap();
                let misses = fs.cache_stats().misses;
                let at = model.len() as u64;
                assert_eq!(fs.write(ino, fh, at, line.as_bytes()).unwrap(), line.len());
                assert_eq!(
                    fs.cache_stats().misses,
                    misses,
                    "append {i} at {at} read its block back from the store"
                );
                model.extend_from_slice(line.as_bytes());
                if i % 3 == 0 {
                    fs.fsync(ino).unwrap();
                }
                fs.flush(ino).unwrap();
                fs.release(ino, fh).unwrap();
            }
            check(&fs, ino, &model, "before remount");
            // A log created by the open that appends to it, fsync'd at
            // every line.
            let (held, fh) = fs
                .create_open(
                    &Ctx::root(),
                    ROOT_INO,
                    b"held",
                    0o644,
                    libc::O_WRONLY | libc::O_APPEND,
                )
                .unwrap();
            let mut held_model = Vec::new();
            for i in 0..300u32 {
                let line = format!("{i:05} fsync'd line\n");
                let misses = fs.cache_stats().misses;
                let at = held_model.len() as u64;
                fs.write(held.ino, fh, at, line.as_bytes()).unwrap();
                assert_eq!(
                    fs.cache_stats().misses,
                    misses,
                    "fsync'd append {i} at {at} missed"
                );
                held_model.extend_from_slice(line.as_bytes());
                fs.fsync(held.ino).unwrap();
            }
            fs.flush(held.ino).unwrap();
            fs.release(held.ino, fh).unwrap();
            check(&fs, held.ino, &held_model, "held log");
            fs.shutdown().unwrap();
            ino
        };
        let fs = Fs::new(store.open(&OpenOptions::default()).unwrap(), config()).unwrap();
        check(&fs, ino, &model, "after remount");
    }
}

/// Unmounts the tmpfs the store lives on, after the core that uses it.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Tmpfs(dir.to_path_buf()))
}

#[test]
fn full_disk_during_background_write_back_reaches_the_writer_and_loses_nothing() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var_os("LLMFS_REQUIRE_FUSE").is_some_and(|v| v == "1") {
            panic!("this test mounts a tmpfs: it needs root");
        }
        eprintln!("skipped: mounting a tmpfs for the store needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(&dir).unwrap();
    let _tmpfs = mount_tmpfs(&dir, "8m").expect("mounting an 8 MiB tmpfs");
    let open = |create: bool| {
        let store = Store::open(
            &dir,
            &OpenOptions {
                create,
                block_size: BLOCK,
                read_only: false,
            },
        )
        .unwrap();
        // A budget of 16 MiB: the first write-back (past 8 MiB) cannot
        // fit, and fails as a whole, like a kernel filesystem's first
        // failed writeback. (A disk filled by committed data is another
        // matter: the store then needs room to delete anything.)
        let config = FsConfig {
            dirty_bytes: 16 << 20,
            ..FsConfig::default()
        };
        Fs::new(store, config).unwrap()
    };
    let fs = open(true);
    let keep = text(100_000, 7);
    let kept = crate::common::create_file(&fs, ROOT_INO, "keep", &keep);

    // 16 MiB of noise cannot fit: the background write-back fails, and
    // the error must reach a write or the fsync.
    let (attr, fh) = fs.create(&Ctx::root(), ROOT_INO, b"big", 0o644).unwrap();
    let big = noise(16 << 20, 11);
    let mut failed = None;
    for (i, chunk) in big.chunks(64 * 1024).enumerate() {
        if let Err(e) = fs.write(attr.ino, fh, (i * 64 * 1024) as u64, chunk) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => fs
            .fsync(attr.ino)
            .expect_err("16 MiB must not fit an 8 MiB store"),
    };
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");

    // What was there before is intact; once the big file is gone, its
    // space is reusable and a new file survives a remount.
    assert_eq!(fs.read(kept, 0, 1 << 20).unwrap(), keep);
    // Closing fails as the write-back still does not fit; the data stays
    // in memory until the file is deleted.
    assert!(fs.release(attr.ino, fh).is_err());
    fs.unlink(ROOT_INO, b"big").unwrap();
    let small = text(200_000, 9);
    let ino = crate::common::create_file(&fs, ROOT_INO, "small", &small);
    fs.shutdown().unwrap();
    drop(fs);
    let fs = open(false);
    assert_eq!(fs.read(kept, 0, 1 << 20).unwrap(), keep);
    assert_eq!(fs.read(ino, 0, 1 << 20).unwrap(), small);
    assert!(fs.lookup(ROOT_INO, b"big").is_err());
}

/// A writer that waits for a write-back without the state lock while
/// another file's `flush` applies that write-back's result must still wake
/// up (it once waited for a result already taken, for ever).
#[test]
fn writers_and_other_files_closes_interleave_without_hanging() {
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    for store in fresh_stores() {
        println!("backend: {:?}", store.kind);
        let fs = Arc::new(Fs::new(store.create(BLOCK).unwrap(), config()).unwrap());
        let other = crate::common::create_file(&fs, ROOT_INO, "other", b"other file");
        let (attr, fh) = fs.create(&Ctx::root(), ROOT_INO, b"big", 0o644).unwrap();
        let data = text(4 << 20, 5);
        let (done_tx, done_rx) = mpsc::channel();
        let writer = {
            let (fs, data, done_tx) = (Arc::clone(&fs), data.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for (i, chunk) in data.chunks(24 * 1024).enumerate() {
                    fs.write(attr.ino, fh, (i * 24 * 1024) as u64, chunk)
                        .unwrap();
                }
                fs.fsync(attr.ino).unwrap();
                done_tx.send("writer").unwrap();
            })
        };
        let closer = {
            let fs = Arc::clone(&fs);
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let h = fs.open(other, libc::O_RDONLY).unwrap();
                    assert_eq!(fs.read(other, 0, 100).unwrap(), b"other file");
                    fs.flush(other).unwrap();
                    fs.release(other, h).unwrap();
                }
                done_tx.send("closer").unwrap();
            })
        };
        for _ in 0..2 {
            let who = done_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("a writer or a closer hung");
            println!("{who} done");
        }
        writer.join().unwrap();
        closer.join().unwrap();
        check(&fs, attr.ino, &data, "after the writes");
        fs.release(attr.ino, fh).unwrap();
    }
}
