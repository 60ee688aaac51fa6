//! Framed zstd records (src/codec/zstd_frames.rs) through the filesystem
//! core: a small read of a stored block reads and decodes only the frames
//! it touches, from a segment file (through the row's copy of the
//! record's header and frame table) or from an inline record; a damaged
//! frame fails only the reads that touch it; a damaged copy of the table
//! falls back to the whole record, and fsck reports it; segment rows
//! without a copy (as earlier builds wrote them) read as before.

use std::path::Path;

use llmfs::codec::ZstdCodec;
use llmfs::fs::{Fs, FsConfig, WriteEncoding};
use llmfs::store::{OpenOptions, DB_FILE, ROOT_INO};

use crate::common::{create_file, fresh_stores, noise, open_store, text};

const BS: usize = 64 * 1024;
/// The frames of `WriteEncoding::Interim` (zstd level -1).
const FRAME: usize = ZstdCodec::INTERIM_FRAME_BYTES;

fn mount(dir: &Path, segments: bool) -> Fs {
    let config = FsConfig {
        segment_min_bytes: if segments { 1 } else { usize::MAX },
        write_encoding: WriteEncoding::Interim,
        ..FsConfig::default()
    };
    Fs::new(open_store(dir, BS), config).unwrap()
}

fn unmount(fs: Fs) {
    fs.shutdown().unwrap();
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE)).unwrap()
}

fn count(dir: &Path, sql: &str) -> u64 {
    db(dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Half-compressible data, as fio writes it: 4 KiB of text, 4 KiB of
/// noise, and so on.
fn mixed(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        out.extend(if i % 2 == 0 {
            text(4096, i)
        } else {
            noise(4096, i)
        });
        i += 1;
    }
    out.truncate(n);
    out
}

/// A fresh volume in a temporary directory (its store at `s`) holding
/// one file of `mixed(len)` bytes, unmounted: the directory, the data and
/// the file's inode.
fn stored_file(len: usize, segments: bool) -> (tempfile::TempDir, Vec<u8>, u64) {
    let t = tempfile::tempdir().unwrap();
    let data = mixed(len);
    let fs = mount(&t.path().join("s"), segments);
    let ino = create_file(&fs, ROOT_INO, "f", &data);
    unmount(fs);
    (t, data, ino)
}

/// Bytes the cache holds after reading `len` bytes at `off`.
fn cached_after(fs: &Fs, ino: u64, data: &[u8], off: usize, len: usize) -> usize {
    let got = fs.read(ino, off as u64, len as u32).unwrap();
    assert_eq!(
        got,
        &data[off..(off + len).min(data.len())],
        "bytes {off}+{len}"
    );
    fs.cache_stats().bytes
}

fn small_reads_decode_only_their_frames(segments: bool) {
    let (t, data, ino) = stored_file(16 * BS + 5000, segments);
    let dir = t.path().join("s");
    let blocks = (data.len() / BS + 1) as u64;
    let placed = count(
        &dir,
        &format!(
            "SELECT COUNT(*) FROM blocks WHERE ino = {ino} AND segment IS {}",
            if segments { "NOT NULL" } else { "NULL" }
        ),
    );
    assert_eq!(placed, blocks);
    if segments {
        // A full block's row holds its record's header and a table of
        // four frames; the last, short block is one frame without a table.
        let copies = count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ino} AND length(record) = 64"),
        );
        assert_eq!(copies, blocks - 1);
    }

    let fs = mount(&dir, segments);
    assert_eq!(fs.cache_stats().bytes, 0);
    // A 4 KiB read decodes (and caches) one frame of its block.
    assert_eq!(cached_after(&fs, ino, &data, 3 * BS + 4096, 4096), FRAME);
    // Another read of that frame is a hit; the block's other frame is
    // decoded when read.
    assert_eq!(cached_after(&fs, ino, &data, 3 * BS + 8192, 100), FRAME);
    let hits = fs.cache_stats().hits;
    assert_eq!(
        cached_after(&fs, ino, &data, 3 * BS + FRAME, 4096),
        2 * FRAME
    );
    assert_eq!(fs.cache_stats().hits, hits, "the second frame was a miss");
    // A read across a frame boundary of a fresh block takes both frames.
    assert_eq!(
        cached_after(&fs, ino, &data, 5 * BS + FRAME - 100, 200),
        4 * FRAME
    );
    // The same read again is a hit.
    let hits = fs.cache_stats().hits;
    assert_eq!(
        cached_after(&fs, ino, &data, 5 * BS + FRAME - 100, 200),
        4 * FRAME
    );
    assert_eq!(fs.cache_stats().hits, hits + 1);
    // A read of all of block 3, of which two frames are cached, decodes
    // the block whole, which replaces them.
    assert_eq!(cached_after(&fs, ino, &data, 3 * BS, BS), 6 * FRAME);
    // A read of one frame of a block that is cached whole is a hit.
    let hits = fs.cache_stats().hits;
    assert_eq!(
        cached_after(&fs, ino, &data, 3 * BS + 3 * FRAME, 10),
        6 * FRAME
    );
    assert_eq!(fs.cache_stats().hits, hits + 1);
    // The short last block, and every 4 KiB piece of the file.
    assert_eq!(
        fs.read(ino, 16 * BS as u64 + 4000, 4096).unwrap(),
        &data[16 * BS + 4000..]
    );
    for off in (0..data.len()).step_by(4096 + 512) {
        let got = fs.read(ino, off as u64, 4096).unwrap();
        assert_eq!(
            got,
            &data[off..(off + 4096).min(data.len())],
            "offset {off}"
        );
    }
    assert_eq!(fs.read(ino, 0, data.len() as u32 + 1).unwrap(), data);
    unmount(fs);
}

#[test]
fn small_reads_of_segment_records_read_only_their_frames() {
    small_reads_decode_only_their_frames(true);
}

#[test]
fn small_reads_of_inline_records_decode_only_their_frames() {
    small_reads_decode_only_their_frames(false);
}

/// The same on each backend (PostgreSQL keeps every record inline), after
/// the records went through the store and back.
#[test]
fn small_reads_decode_one_frame_on_every_backend() {
    let data = mixed(4 * BS);
    for backend in fresh_stores() {
        let config = || FsConfig {
            write_encoding: WriteEncoding::Interim,
            ..FsConfig::default()
        };
        let fs = Fs::new(backend.create(BS).unwrap(), config()).unwrap();
        let ino = create_file(&fs, ROOT_INO, "f", &data);
        unmount(fs);
        let fs = Fs::new(backend.open(&OpenOptions::default()).unwrap(), config()).unwrap();
        let off = 2 * BS + FRAME + 300;
        assert_eq!(
            cached_after(&fs, ino, &data, off, 4096),
            FRAME,
            "{:?}",
            backend.kind
        );
        assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);
        unmount(fs);
    }
}

/// The segment offset and length of block `idx` of `ino`.
fn extent(dir: &Path, ino: u64, idx: u64) -> (u64, u64, u64) {
    db(dir)
        .query_row(
            "SELECT segment, seg_offset, stored_len FROM blocks WHERE ino = ?1 AND idx = ?2",
            [ino, idx],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

#[test]
fn a_damaged_frame_fails_only_its_reads() {
    let (t, data, ino) = stored_file(4 * BS, true);
    let dir = t.path().join("s");
    // Flip a byte near the end of block 1's record: its last frame.
    let (segment, offset, len) = extent(&dir, ino, 1);
    let path = dir
        .join(llmfs::store::SEGMENTS_DIR)
        .join(format!("{segment:08}.seg"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(offset + len - 40) as usize] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    let fs = mount(&dir, true);
    let last = (BS + 3 * FRAME) as u64;
    let e = fs.read(ino, last, 4096).unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "{e}");
    // The block's other frames, and the other blocks, still read.
    for f in 0..3 {
        let off = BS + f * FRAME + 1000;
        assert_eq!(
            fs.read(ino, off as u64, 4096).unwrap(),
            &data[off..off + 4096]
        );
    }
    assert_eq!(fs.read(ino, 0, BS as u32).unwrap(), &data[..BS]);
    assert_eq!(
        fs.read(ino, 2 * BS as u64, 2 * BS as u32).unwrap(),
        &data[2 * BS..]
    );
    let e = fs.read(ino, BS as u64, BS as u32).unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "the whole block fails too: {e}");
    unmount(fs);
}

#[test]
fn a_damaged_table_copy_falls_back_to_the_record_and_fsck_reports_it() {
    let (t, data, ino) = stored_file(3 * BS, true);
    let dir = t.path().join("s");
    // Block 0's copy gets a wrong frame checksum; block 1's copy points
    // its first frame at the wrong bytes; block 2's row loses its copy
    // (as a row written before frames had none).
    let conn = db(&dir);
    let copy = |idx: u64| -> Vec<u8> {
        conn.query_row(
            "SELECT record FROM blocks WHERE ino = ?1 AND idx = ?2",
            [ino, idx],
            |r| r.get(0),
        )
        .unwrap()
    };
    let set = |idx: u64, v: &[u8]| {
        conn.execute(
            "UPDATE blocks SET record = ?3 WHERE ino = ?1 AND idx = ?2",
            rusqlite::params![ino, idx, v],
        )
        .unwrap();
    };
    let mut c0 = copy(0);
    c0[20 + 12 + 4] ^= 1;
    set(0, &c0);
    let mut c1 = copy(1);
    let first = u32::from_le_bytes(c1[32..36].try_into().unwrap());
    let second = u32::from_le_bytes(c1[40..44].try_into().unwrap());
    c1[32..36].copy_from_slice(&(first - 3).to_le_bytes());
    c1[40..44].copy_from_slice(&(second + 3).to_le_bytes());
    set(1, &c1);
    set(2, b"");
    drop(conn);

    let fs = mount(&dir, true);
    for idx in 0..3 {
        for off in [idx * BS, idx * BS + FRAME + 8192] {
            assert_eq!(
                fs.read(ino, off as u64, 4096).unwrap(),
                &data[off..off + 4096],
                "block {idx}, offset {off}"
            );
        }
    }
    unmount(fs);
    let out = crate::common::llmfs([std::ffi::OsStr::new("fsck"), dir.as_os_str()]);
    let report = crate::common::output_text(&out);
    assert!(!out.status.success(), "{report}");
    for idx in [0, 1] {
        assert!(
            report.contains(&format!("block {idx} of inode {ino}: its row's copy")),
            "{report}"
        );
    }
    assert!(!report.contains("block 2 of inode"), "{report}");
}
