//! Encoding small files' blocks after their close (src/fs/late_encode.rs),
//! on the core called directly: a close commits a small file's blocks raw
//! and the encoding thread swaps their zstd records in; a block written
//! again or deleted before the thread gets to it keeps what it has; an
//! fsync, and a large file's close, encode their own blocks; an unmount
//! leaves nothing raw that compresses; every byte reads back before and
//! after a remount. On a PostgreSQL store (shared by design) closes encode
//! their own blocks, as before.

use std::time::{Duration, Instant};

use llmfs::codec::{CodecId, RecordHeader};
use llmfs::fs::{Ctx, Fs, FsConfig, WriteEncoding};
use llmfs::store::{OpenOptions, ROOT_INO};

use crate::common::{fresh_stores, noise, text, Kind};

const BLOCK: usize = 65536;

fn config() -> FsConfig {
    FsConfig {
        late_encoding: true,
        write_encoding: WriteEncoding::Interim,
        ..FsConfig::default()
    }
}

fn codec(fs: &Fs, ino: u64, idx: u64) -> CodecId {
    let rec = fs
        .store()
        .read(|m| m.block(ino, idx))
        .unwrap()
        .unwrap_or_else(|| panic!("inode {ino} has no block {idx}"));
    RecordHeader::parse(&rec, BLOCK).unwrap().codec
}

/// Creates `name` holding `data`, closed as `cp` closes it.
fn write_file(fs: &Fs, name: &str, data: &[u8]) -> u64 {
    let (attr, fh) = fs
        .create(&Ctx::root(), ROOT_INO, name.as_bytes(), 0o644)
        .unwrap();
    assert_eq!(fs.write(attr.ino, fh, 0, data).unwrap(), data.len());
    fs.flush(attr.ino).unwrap();
    fs.release(attr.ino, fh).unwrap();
    attr.ino
}

fn check(fs: &Fs, ino: u64, model: &[u8], what: &str) {
    let got = fs.read(ino, 0, model.len() as u32 + 1).unwrap();
    assert!(got == model, "{what}: content differs");
}

#[test]
fn small_files_are_committed_raw_at_their_close_and_encoded_soon_after() {
    for store in fresh_stores() {
        println!("backend: {:?}", store.kind);
        let late = store.kind == Kind::Sqlite;
        let mut files = Vec::new();
        {
            let fs = Fs::new(store.create(BLOCK).unwrap(), config()).unwrap();
            // Small files, as a copy writes them: seen raw right after
            // their close (the thread waits a moment before it encodes),
            // at least once in 200 closes.
            let mut seen_raw = 0;
            for i in 0..200u64 {
                let data = text(2000 + 97 * i as usize, i);
                let ino = write_file(&fs, &format!("small-{i}"), &data);
                if codec(&fs, ino, 0) == CodecId::Raw {
                    seen_raw += 1;
                }
                check(&fs, ino, &data, "small file after its close");
                files.push((ino, data));
            }
            if late {
                assert!(seen_raw > 0, "no small file's close stored it raw");
            } else {
                assert_eq!(seen_raw, 0, "a shared store's close stored a block raw");
            }
            // Every one gets its encoding without anything else happening.
            let deadline = Instant::now() + Duration::from_secs(30);
            for (ino, _) in &files {
                while codec(&fs, *ino, 0) == CodecId::Raw {
                    assert!(
                        Instant::now() < deadline,
                        "inode {ino} is still raw after 30 s"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert_eq!(codec(&fs, *ino, 0), CodecId::Zstd);
            }
            // Written again, truncated or deleted right after its close:
            // the thread's swap finds another record, or none, and leaves
            // the block as it is.
            for i in 0..50u64 {
                let first = text(5000, 1000 + i);
                let ino = write_file(&fs, &format!("again-{i}"), &first);
                let second = text(7000, 2000 + i);
                let fh = fs.open(ino, libc::O_WRONLY).unwrap();
                fs.write(ino, fh, 0, &second).unwrap();
                fs.flush(ino).unwrap();
                fs.release(ino, fh).unwrap();
                files.push((ino, second));
                let gone = write_file(&fs, &format!("gone-{i}"), &first);
                fs.unlink(ROOT_INO, format!("gone-{i}").as_bytes()).unwrap();
                assert!(fs.getattr(gone).is_err(), "an unlinked file came back");
            }
            // An fsync encodes the file's blocks itself, as does the close
            // of a file over the late encoder's size.
            let (synced, fh) = fs.create(&Ctx::root(), ROOT_INO, b"synced", 0o644).unwrap();
            let data = text(9000, 77);
            fs.write(synced.ino, fh, 0, &data).unwrap();
            fs.fsync(synced.ino).unwrap();
            assert_eq!(codec(&fs, synced.ino, 0), CodecId::Zstd, "fsync'd block");
            fs.release(synced.ino, fh).unwrap();
            files.push((synced.ino, data));
            let large = text(5 * BLOCK + 123, 78);
            let ino = write_file(&fs, "large", &large);
            for idx in 0..6 {
                assert_eq!(
                    codec(&fs, ino, idx),
                    CodecId::Zstd,
                    "large file's block {idx}"
                );
            }
            files.push((ino, large));
            // Data zstd does not shrink stays raw, as before.
            let random = noise(3000, 79);
            let ino = write_file(&fs, "random", &random);
            files.push((ino, random));
            for (ino, data) in &files {
                check(&fs, *ino, data, "before the unmount");
            }
            fs.shutdown().unwrap();
        }
        // The unmount encoded what was still queued.
        let fs = Fs::new(
            store.open(&OpenOptions::default()).unwrap(),
            FsConfig::default(),
        )
        .unwrap();
        for (ino, data) in &files {
            check(&fs, *ino, data, "after a remount");
            let want = if data.len() == 3000 {
                CodecId::Raw
            } else {
                CodecId::Zstd
            };
            for idx in 0..data.len().div_ceil(BLOCK) as u64 {
                assert_eq!(
                    codec(&fs, *ino, idx),
                    want,
                    "inode {ino} block {idx} after a remount"
                );
            }
        }
    }
}
