//! Block records in segment files (src/store/sqlite/segments.rs): large
//! write-backs go there, read back exactly, give their space back when
//! their rows go (while mounted, and at the next open), move inline when
//! archived or cut off by a truncation, fail cleanly when a segment is damaged, and leave older
//! stores open to older builds until the first record lands in one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use llmfs::codec::{CodecId, CodecSet};
use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{
    ArchiveTier, Durability, OpenOptions, Store, DB_FILE, SEGMENTS_DIR, TABLES_VERSION,
};

use crate::common::{create_file, noise, open_store, text};

const BS: usize = 64 * 1024;

fn mount(dir: &Path) -> Fs {
    Fs::new(open_store(dir, BS), FsConfig::default()).unwrap()
}

fn unmount(fs: Fs) {
    fs.shutdown().unwrap();
    drop(fs);
}

/// (file, length, bytes allocated on disk) of every segment file.
fn segment_files(dir: &Path) -> Vec<(PathBuf, u64, u64)> {
    let Ok(entries) = std::fs::read_dir(dir.join(SEGMENTS_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            (p, m.len(), m.blocks() * 512)
        })
        .collect();
    out.sort();
    out
}

fn allocated(dir: &Path) -> u64 {
    segment_files(dir).iter().map(|f| f.2).sum()
}

fn read_all(fs: &Fs, ino: u64, len: usize) -> Vec<u8> {
    fs.read(ino, 0, len as u32 + 1).unwrap()
}

fn unlink(fs: &Fs, name: &str, ino: u64) {
    fs.unlink(llmfs::store::ROOT_INO, name.as_bytes()).unwrap();
    fs.forget(ino, 1).unwrap();
}

fn user_version(dir: &Path) -> u32 {
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn count(dir: &Path, sql: &str) -> u64 {
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn large_files_live_in_segments_and_read_back_after_a_remount() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let a = noise(3 << 20, 1);
    let b = text(5 << 20, 2);
    let small = text(20_000, 3);
    let fs = mount(&dir);
    let root = llmfs::store::ROOT_INO;
    let ia = create_file(&fs, root, "a", &a);
    let ib = create_file(&fs, root, "b", &b);
    let is = create_file(&fs, root, "small", &small);
    assert_eq!(read_all(&fs, ia, a.len()), a);
    assert_eq!(read_all(&fs, ib, b.len()), b);
    unmount(fs);

    let files = segment_files(&dir);
    assert_eq!(files.len(), 1, "one segment takes both files: {files:?}");
    let seg_bytes = files[0].1;
    assert!(seg_bytes > 3 << 20, "the records are in the segment");
    let db = std::fs::metadata(dir.join(DB_FILE)).unwrap().len();
    assert!(
        db < 1 << 20,
        "the database holds no large record ({db} bytes)"
    );
    // The small file's record stayed inline; the large ones' rows name
    // extents (the text compresses to less than a segment's minimum per
    // write-back, so some of its write-backs may have stayed inline).
    let inline = |ino: u64| {
        count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ino} AND segment IS NULL"),
        )
    };
    assert_eq!(inline(is), 1);
    assert_eq!(inline(ia), 0);
    assert_eq!(
        count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ia} AND segment IS NOT NULL")
        ),
        (a.len() / BS) as u64
    );
    assert_eq!(user_version(&dir), 14);
    let usage = open_store(&dir, BS).segment_usage().unwrap().unwrap();
    assert_eq!(usage.files, 1);
    assert_eq!(
        usage.records,
        count(
            &dir,
            "SELECT COUNT(*) FROM blocks WHERE segment IS NOT NULL"
        )
    );
    assert!(usage.record_bytes > 3 << 20 && usage.disk_bytes >= usage.record_bytes);

    let fs = mount(&dir);
    assert_eq!(read_all(&fs, ia, a.len()), a);
    assert_eq!(read_all(&fs, ib, b.len()), b);
    assert_eq!(read_all(&fs, is, small.len()), small);
    // Overwriting part of a file replaces some extents; a small write
    // puts those blocks inline.
    let fh = fs.open(ib, libc::O_RDWR).unwrap();
    let patch = noise(3 * BS, 9);
    fs.write(ib, fh, BS as u64 * 10 + 100, &patch).unwrap();
    fs.release(ib, fh).unwrap();
    let mut want = b.clone();
    want[BS * 10 + 100..BS * 13 + 100].copy_from_slice(&patch);
    assert_eq!(read_all(&fs, ib, want.len()), want);
    unmount(fs);
    let fs = mount(&dir);
    assert_eq!(read_all(&fs, ib, want.len()), want);
    unmount(fs);
}

/// (segment, offset) of each of `ino`'s blocks, by index; `None` inline.
fn extents(dir: &Path, ino: u64) -> Vec<Option<(u64, u64)>> {
    let db = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let mut stmt = db
        .prepare("SELECT segment, seg_offset FROM blocks WHERE ino = ?1 ORDER BY idx")
        .unwrap();
    let rows = stmt
        .query_map([ino], |r| {
            let seg: Option<u64> = r.get(0)?;
            let off: Option<u64> = r.get(1)?;
            Ok(seg.zip(off))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_large_write_back_goes_to_a_segment_whole_and_in_order_or_stays_inline_whole() {
    // A write-back of many blocks is encoded and appended piece by piece
    // (src/fs/write_back.rs, `encode_pipelined`); the rule for what goes
    // to a segment is still the write-back's as a whole.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let len = 6 << 20;
    let blocks = len / BS;
    let pattern: Vec<u8> = b"abcdefgh".iter().copied().cycle().take(len).collect();
    let noisy = noise(len, 4);
    // Compressible pieces first: they wait until the noise behind them
    // passes the minimum, then go to the segment with it.
    let mut mixed = pattern[..len / 2].to_vec();
    mixed.extend_from_slice(&noisy[len / 2..]);
    let fs = mount(&dir);
    let root = llmfs::store::ROOT_INO;
    let i_noise = create_file(&fs, root, "noise", &noisy);
    let i_pattern = create_file(&fs, root, "pattern", &pattern);
    let i_mixed = create_file(&fs, root, "mixed", &mixed);
    unmount(fs);

    let placed = extents(&dir, i_noise);
    assert_eq!(placed.len(), blocks);
    assert!(placed.iter().all(Option::is_some), "{placed:?}");
    // One after another in block order, as a sequential read wants them.
    let placed: Vec<(u64, u64)> = placed.into_iter().flatten().collect();
    assert!(placed.windows(2).all(|w| w[0] < w[1]), "{placed:?}");
    // Its records come to far less than a segment's minimum (1 MiB).
    let inline = extents(&dir, i_pattern);
    assert_eq!(inline.len(), blocks);
    assert!(inline.iter().all(Option::is_none), "{inline:?}");
    let mixed_placed = extents(&dir, i_mixed);
    assert!(mixed_placed.iter().all(Option::is_some), "{mixed_placed:?}");

    let fs = mount(&dir);
    assert_eq!(read_all(&fs, i_noise, len), noisy);
    assert_eq!(read_all(&fs, i_pattern, len), pattern);
    assert_eq!(read_all(&fs, i_mixed, len), mixed);
    unmount(fs);
}

#[test]
fn space_of_deleted_records_comes_back_while_mounted_and_at_open() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let root = llmfs::store::ROOT_INO;
    let a = noise(4 << 20, 4);
    let b = noise(4 << 20, 5);
    let fs = mount(&dir);
    let ia = create_file(&fs, root, "a", &a);
    let ib = create_file(&fs, root, "b", &b);
    let before = allocated(&dir);
    assert!(before >= 8 << 20, "{before}");

    // The checkpoint thread reclaims what the unlink freed once the
    // unlink is on stable storage; wait for it (a few passes).
    unlink(&fs, "a", ia);
    let deadline = Instant::now() + Duration::from_secs(30);
    while allocated(&dir) > before - (3 << 20) {
        assert!(
            Instant::now() < deadline,
            "the space of a's records did not come back: {} of {before} bytes",
            allocated(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The neighbour's records (sharing a page at the boundary) are intact.
    assert_eq!(read_all(&fs, ib, b.len()), b);
    unmount(fs);
    let fs = mount(&dir);
    assert_eq!(read_all(&fs, ib, b.len()), b);
    unlink(&fs, "b", ib);
    drop(fs);

    // Whatever the last mount left (its segment had been taking appends)
    // goes at the next open: no row names it.
    let fs = mount(&dir);
    assert!(segment_files(&dir).is_empty(), "{:?}", segment_files(&dir));
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM dead_extents"), 0);
    unmount(fs);
}

/// Overwriting the middle of a file kills a run of records that one
/// append wrote side by side: reclaim frees them as one range (one punch)
/// and the live records on either side, sharing a page with the run's
/// ends, stay intact, mounted and after a remount.
#[test]
fn an_overwritten_run_of_records_goes_back_whole_and_spares_its_neighbours() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let root = llmfs::store::ROOT_INO;
    let mut a = noise(64 * BS, 8);
    let fs = mount(&dir);
    let ia = create_file(&fs, root, "a", &a);
    let first = allocated(&dir);
    assert!(first >= 64 * BS as u64, "{first}");

    let fresh = noise(20 * BS, 9);
    a[10 * BS..30 * BS].copy_from_slice(&fresh);
    let fh = fs.open(ia, libc::O_RDWR).unwrap();
    fs.write(ia, fh, 10 * BS as u64, &fresh).unwrap();
    fs.fsync(ia).unwrap();
    fs.release(ia, fh).unwrap();

    // The 20 old records (raw, so not page-aligned) go back; the new
    // ones took about as much again in a new append. Two pages of slack:
    // the run's partial end pages are shared with live records.
    wait_for_reclaim(&dir, first + 8192);
    reads_back_across_a_remount(&dir, fs, ia, &a);
}

/// Waits (up to 30 s) until no dead extent is left and the segment files
/// hold at most `limit` bytes on disk.
fn wait_for_reclaim(dir: &Path, limit: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(dir, "SELECT COUNT(*) FROM dead_extents") > 0 || allocated(dir) > limit {
        assert!(
            Instant::now() < deadline,
            "{} dead extents left, {} bytes allocated against at most {limit}",
            count(dir, "SELECT COUNT(*) FROM dead_extents"),
            allocated(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ino` reads as `data`, then again after a remount, where fsck finds
/// nothing wrong.
fn reads_back_across_a_remount(dir: &Path, fs: Fs, ino: u64, data: &[u8]) {
    assert_eq!(read_all(&fs, ino, data.len()), data);
    unmount(fs);
    let fs = mount(dir);
    assert_eq!(read_all(&fs, ino, data.len()), data);
    let report = llmfs::fsck::check(fs.store(), &CodecSet::default(), |_, _| {}).unwrap();
    assert!(report.is_clean(), "{report}");
    unmount(fs);
}

/// A block whose record is in a segment, rewritten by a small write-back
/// (whose record stays inline), has its row updated in place: the row no
/// longer names the extent, whose space goes back; the inode's
/// `stored_bytes` is the sum of its rows' `stored_len`; the file reads as
/// written, before and after a remount, and fsck finds nothing wrong.
#[test]
fn a_segment_record_rewritten_inline_gives_its_extent_back() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let root = llmfs::store::ROOT_INO;
    let mut a = noise(32 * BS, 10);
    let fs = mount(&dir);
    let ia = create_file(&fs, root, "a", &a);
    let in_segment = |idx: usize| {
        count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ia} AND idx = {idx} AND segment IS NOT NULL"),
        )
    };
    assert_eq!(in_segment(5), 1, "the large write-back went to a segment");
    let first = allocated(&dir);

    let line = b"one short line over block 5\n";
    a[5 * BS..5 * BS + line.len()].copy_from_slice(line);
    let fh = fs.open(ia, libc::O_RDWR).unwrap();
    fs.write(ia, fh, 5 * BS as u64, line).unwrap();
    fs.fsync(ia).unwrap();
    fs.release(ia, fh).unwrap();
    assert_eq!(in_segment(5), 0, "block 5's row still names its extent");
    assert_eq!(
        count(
            &dir,
            &format!("SELECT stored_bytes FROM inodes WHERE ino = {ia}")
        ),
        count(
            &dir,
            &format!("SELECT SUM(stored_len) FROM blocks WHERE ino = {ia}")
        ),
    );
    // Block 5's old record (raw noise, one block) goes back; two pages of
    // slack for the partial pages it shares with its neighbours.
    wait_for_reclaim(&dir, first + 8192 - BS as u64);
    reads_back_across_a_remount(&dir, fs, ia, &a);
}

/// A reclaim pass takes at most 4096 dead extents; an unlink that frees
/// more is reclaimed over several passes while the volume stays mounted
/// and otherwise idle (each pass commits, which brings the next).
#[test]
fn more_dead_extents_than_one_pass_takes_all_come_back() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let root = llmfs::store::ROOT_INO;
    // 4 KiB blocks: 4500 records of incompressible bytes in 18 MiB.
    let small_blocks = 4096;
    let a = noise(4500 * small_blocks, 6);
    let b = noise(300 * small_blocks, 7);
    let fs = Fs::new(open_store(&dir, small_blocks), FsConfig::default()).unwrap();
    let ia = create_file(&fs, root, "a", &a);
    let ib = create_file(&fs, root, "b", &b);
    let records = count(
        &dir,
        &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ia} AND segment IS NOT NULL"),
    );
    assert!(records > 4096, "{records} of a's records in segments");
    let before = allocated(&dir);

    unlink(&fs, "a", ia);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&dir, "SELECT COUNT(*) FROM dead_extents") > 0
        || allocated(&dir) > before - (17 << 20)
    {
        assert!(
            Instant::now() < deadline,
            "after {records} records went: {} dead extents left, {} of {before} bytes allocated",
            count(&dir, "SELECT COUNT(*) FROM dead_extents"),
            allocated(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_all(&fs, ib, b.len()), b);
    unmount(fs);
    let fs = Fs::new(open_store(&dir, small_blocks), FsConfig::default()).unwrap();
    assert_eq!(read_all(&fs, ib, b.len()), b);
    unmount(fs);
}

#[test]
fn archiving_moves_a_segment_record_inline_only_if_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    // Incompressible, so that every write-back's records go to a segment
    // (text compresses below a segment's minimum per write-back).
    let data = noise(2 << 20, 6);
    let fs = mount(&dir);
    let ino = create_file(&fs, llmfs::store::ROOT_INO, "f", &data);
    unmount(fs);

    let before = allocated(&dir);
    let moved = count(
        &dir,
        &format!(
            "SELECT stored_len FROM blocks WHERE ino = {ino} AND idx = 3 AND segment IS NOT NULL"
        ),
    );
    assert!(moved > 3 * 4096, "block 3's extent is {moved} bytes");
    let store = open_store(&dir, BS);
    let old = store
        .read(|m| m.block(ino, 3))
        .unwrap()
        .expect("block 3 is stored");
    let codecs = CodecSet::default();
    let raw = &data[3 * BS..4 * BS];
    let new = codecs.encode_block_with(CodecId::Lzma, raw).unwrap();
    let codec = llmfs::codec::RecordHeader::parse(&new, BS).unwrap().codec as u8;
    // A stale `old` (not what the block holds) changes nothing.
    let stale = store
        .write(Durability::Normal, |m| {
            m.swap_archived_block(ino, 3, &new, Some((codec, &new)), ArchiveTier::Archive)
        })
        .unwrap();
    assert!(!stale);
    let swapped = store
        .write(Durability::Normal, |m| {
            m.swap_archived_block(ino, 3, &old, Some((codec, &new)), ArchiveTier::Archive)
        })
        .unwrap();
    assert!(swapped);
    assert_eq!(store.read(|m| m.block(ino, 3)).unwrap().unwrap(), new);
    let decoded = codecs.decode_block(&new, BS).unwrap();
    assert_eq!(decoded, raw);
    drop(store);
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(*) FROM blocks WHERE idx = 3 AND segment IS NULL"
        ),
        1
    );
    // The rest of the file still reads from its segment, and the extent
    // block 3 left goes back (at most its two partial end pages stay).
    let fs = mount(&dir);
    wait_for_reclaim(&dir, before - moved + 8192);
    assert_eq!(read_all(&fs, ino, data.len()), data);
    unmount(fs);
}

/// Truncation drops the rows past the new end: their extents go back,
/// the file reads as its first part, and fsck finds nothing wrong.
#[test]
fn truncation_gives_back_the_extents_past_the_new_end() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let mut data = noise(32 * BS, 10);
    let fs = mount(&dir);
    let ino = create_file(&fs, llmfs::store::ROOT_INO, "f", &data);
    let before = allocated(&dir);
    assert!(before >= 32 * BS as u64, "{before}");
    assert_eq!(
        count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {ino} AND segment IS NOT NULL")
        ),
        32
    );
    let size = 12 * BS as u64 + 100;
    let attr = fs
        .setattr(
            ino,
            &llmfs::fs::SetAttr {
                size: Some(size),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(attr.size, size);
    fs.fsync(ino).unwrap();
    data.truncate(size as usize);
    // Blocks 13 to 31 went whole; block 12, cut short, was rewritten.
    wait_for_reclaim(&dir, before - 19 * BS as u64 + 8192);
    reads_back_across_a_remount(&dir, fs, ino, &data);
}

#[test]
fn a_damaged_segment_fails_reads_and_fsck_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let data = noise(2 << 20, 7);
    let fs = mount(&dir);
    let ino = create_file(&fs, llmfs::store::ROOT_INO, "f", &data);
    unmount(fs);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 1);
    let seg = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0].0)
        .unwrap();
    seg.set_len(files[0].1 / 2).unwrap();
    drop(seg);

    let fs = mount(&dir);
    let e = fs.read(ino, 0, data.len() as u32).unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "{e}");
    // The first blocks, before the cut, still read.
    assert_eq!(fs.read(ino, 0, BS as u32).unwrap(), &data[..BS]);
    unmount(fs);
    // A row naming an absurd length fails that block's reads too, without
    // allocating it.
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .execute(
            "UPDATE blocks SET stored_len = 1099511627776 WHERE ino = ?1 AND idx = 1",
            [ino],
        )
        .unwrap();
    let fs = mount(&dir);
    let e = fs.read(ino, BS as u64, BS as u32).unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "{e}");
    unmount(fs);
    let out = crate::common::llmfs([std::ffi::OsStr::new("fsck"), dir.as_os_str()]);
    let text = crate::common::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("shorter than the record"), "{text}");
    assert!(text.contains("ends at byte"), "{text}");
    assert!(text.contains("no record is that long"), "{text}");
}

/// A store made before segment tables existed (version 2, as an older
/// llmfs left it) reads with this build read-only, gains the tables
/// read-write without a version an older llmfs refuses, and moves to
/// version 14 (feature `segments`) only with its first segment record.
#[test]
fn older_stores_stay_open_to_older_builds_until_a_record_lands_in_a_segment() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    std::fs::create_dir_all(&dir).unwrap();
    let record = CodecSet::default().encode_block(b"old data ").unwrap();
    {
        let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
        c.execute_batch(include_str!("../../migrations/0001_initial.sql"))
            .unwrap();
        c.execute_batch(include_str!("../../migrations/0002_models_archive.sql"))
            .unwrap();
        c.execute(
            "INSERT INTO volume(key, value) VALUES ('block_size', '65536'), ('created_ns', '0'), \
             ('sync_generation', '0')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO inodes(ino, mode, uid, gid, nlink, atime_ns, mtime_ns, ctime_ns, crtime_ns) \
             VALUES (1, 16877, 0, 0, 2, 0, 0, 0, 0), (2, 33188, 0, 0, 1, 0, 0, 0, 0)",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE inodes SET size = 9, stored_bytes = ?1 WHERE ino = 2",
            [record.len() as i64],
        )
        .unwrap();
        c.execute(
            "INSERT INTO dirents(parent, name, ino) VALUES (1, CAST('old' AS BLOB), 2)",
            [],
        )
        .unwrap();
        let codec = llmfs::codec::RecordHeader::parse(&record, 9).unwrap().codec as u8;
        c.execute(
            "INSERT INTO blocks(ino, idx, codec, raw_len, stored_len, record) \
             VALUES (2, 0, ?1, 9, ?2, ?3)",
            rusqlite::params![codec, record.len() as i64, record],
        )
        .unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
    }
    let ro = Store::open(
        &dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let got = ro.read(|m| m.block(2, 0)).unwrap().unwrap();
    assert_eq!(got, record);
    drop(ro);

    // Read-write: the tables appear, the version stays.
    let fs = mount(&dir);
    assert_eq!(fs.read(2, 0, 100).unwrap(), b"old data ");
    create_file(&fs, llmfs::store::ROOT_INO, "small", &text(10_000, 1));
    unmount(fs);
    assert_eq!(user_version(&dir), TABLES_VERSION);
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(*) FROM pragma_table_info('blocks') WHERE name = 'segment'"
        ),
        1
    );

    // The first large file: version 14 and the feature, together.
    let fs = mount(&dir);
    create_file(&fs, llmfs::store::ROOT_INO, "large", &noise(2 << 20, 2));
    unmount(fs);
    assert_eq!(user_version(&dir), 14);
    let features: String = rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("SELECT value FROM volume WHERE key = 'features'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(features.split(',').any(|f| f == "segments"), "{features}");
}

/// Readers of a file whose records live in a segment, while a writer
/// rewrites it again and again and the space of the records it replaces
/// is reclaimed (holes punched) behind them: a read finds the extent under
/// the store's lock and reads it after letting go, pinned, so every read
/// returns one of the two versions, never a punched hole. (The window the
/// pin closes is a reader stalled between lookup and read for as long as a
/// commit and a reclaim pass take: this test did not hit it with the pin
/// taken out, so it checks the behaviour, not that window.)
#[test]
fn reads_racing_rewrites_and_reclaim_see_old_or_new_bytes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let len = 2 << 20;
    let versions = [noise(len, 11), noise(len, 12)];
    // No room in the block cache: every read goes to the store.
    let config = FsConfig {
        cache_bytes: 0,
        ..FsConfig::default()
    };
    let fs = Arc::new(Fs::new(open_store(&dir, BS), config).unwrap());
    let ino = create_file(&fs, llmfs::store::ROOT_INO, "f", &versions[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|seed| {
            let (fs, stop, versions) = (Arc::clone(&fs), Arc::clone(&stop), versions.clone());
            std::thread::spawn(move || {
                let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let off = (x % (len as u64 / 4096)) as usize * 4096;
                    let got = fs.read(ino, off as u64, 4096).unwrap();
                    assert!(
                        versions.iter().any(|v| got == v[off..off + 4096]),
                        "bytes at {off} are neither version"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 1..=12 {
        let v = &versions[round % 2];
        let fh = fs.open(ino, libc::O_RDWR).unwrap();
        fs.write(ino, fh, 0, v).unwrap();
        fs.fsync(ino).unwrap();
        fs.release(ino, fh).unwrap();
        // Room for a checkpoint pass (every 250 ms) to punch the holes.
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(read_all(&fs, ino, len), versions[0]);
    let fs = Arc::try_unwrap(fs).ok().unwrap();
    unmount(fs);
    // What the rewrites left behind went back: little more than one
    // version's records is allocated.
    let fs = mount(&dir);
    assert!(
        allocated(&dir) < (len as u64) * 3 / 2,
        "{} bytes allocated",
        allocated(&dir)
    );
    assert_eq!(read_all(&fs, ino, len), versions[0]);
    unmount(fs);
}

/// Segment numbers are never reused: a dead extent left over from a
/// segment deleted long ago (more than one reclaim pass's worth) must not
/// punch a hole in a new segment of the same number.
#[test]
fn segment_numbers_are_never_reused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let root = llmfs::store::ROOT_INO;
    let fs = mount(&dir);
    let old = create_file(&fs, root, "old", &noise(2 << 20, 21));
    unlink(&fs, "old", old);
    unmount(fs);
    drop(mount(&dir));
    assert!(segment_files(&dir).is_empty());
    // A dead extent of segment 1 still waiting, as a reclaim pass that
    // stopped at its batch limit leaves it.
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .execute(
            "INSERT INTO dead_extents(segment, seg_offset, len) VALUES (1, 0, 2097152)",
            [],
        )
        .unwrap();
    let data = noise(2 << 20, 22);
    let fs = mount(&dir);
    let ino = create_file(&fs, root, "new", &data);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 1);
    assert!(
        !files[0].0.ends_with("00000001.seg"),
        "segment 1 made again: {files:?}"
    );
    unmount(fs);
    let fs = mount(&dir);
    assert_eq!(read_all(&fs, ino, data.len()), data);
    unmount(fs);
}
