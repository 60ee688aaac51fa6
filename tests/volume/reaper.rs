//! Large unlinked files are deleted off the request path
//! (src/fs/reaper.rs): the unlink returns at once, the rows go in the
//! background, a new file of the same name and the files beside it are
//! untouched, and an unmount part way leaves nothing behind.

use std::path::Path;
use std::time::{Duration, Instant};

use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{DB_FILE, ROOT_INO};

use crate::common::{create_file, noise, open_store};

/// Small blocks: a file of a few MiB has thousands of rows.
const BS: usize = 4096;

fn mount(dir: &Path) -> Fs {
    Fs::new(open_store(dir, BS), FsConfig::default()).unwrap()
}

fn count(dir: &Path, sql: &str) -> u64 {
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Rows (the inode's and its blocks') that `ino` still has.
fn rows_of(dir: &Path, ino: u64) -> u64 {
    count(
        dir,
        &format!(
            "SELECT (SELECT COUNT(*) FROM inodes WHERE ino = {ino}) \
             + (SELECT COUNT(*) FROM blocks WHERE ino = {ino})"
        ),
    )
}

fn wait_gone(dir: &Path, ino: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows_of(dir, ino) > 0 {
        assert!(
            Instant::now() < deadline,
            "inode {ino} still has {} rows",
            rows_of(dir, ino)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(fs: &Fs, ino: u64, len: usize) -> Vec<u8> {
    fs.read(ino, 0, len as u32 + 1).unwrap()
}

#[test]
fn large_unlinked_files_go_in_the_background_and_touch_nothing_else() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let fs = mount(&dir);
    // 3000 blocks: past the reaper's threshold, and several of its chunks.
    let big = noise(3000 * BS, 1);
    let kept = noise(3000 * BS, 2);
    let small = noise(10 * BS, 3);
    let a = create_file(&fs, ROOT_INO, "a", &big);
    let b = create_file(&fs, ROOT_INO, "b", &kept);
    let s = create_file(&fs, ROOT_INO, "s", &small);

    fs.unlink(ROOT_INO, b"a").unwrap();
    fs.forget(a, 1).unwrap();
    // A new file takes the name at once.
    let a2 = create_file(&fs, ROOT_INO, "a", &small);
    assert_ne!(a2, a);
    // A small file goes in the unlink's own transaction.
    fs.unlink(ROOT_INO, b"s").unwrap();
    fs.forget(s, 1).unwrap();
    wait_gone(&dir, a);
    wait_gone(&dir, s);
    assert_eq!(read_all(&fs, b, kept.len()), kept);
    assert_eq!(read_all(&fs, a2, small.len()), small);

    // Renamed over, and unlinked while open then closed: the same.
    let c = create_file(&fs, ROOT_INO, "c", &big);
    fs.rename(ROOT_INO, b"b", ROOT_INO, b"c", 0).unwrap();
    fs.forget(c, 1).unwrap();
    wait_gone(&dir, c);
    let fh = fs.open(b, libc::O_RDONLY).unwrap();
    fs.unlink(ROOT_INO, b"c").unwrap();
    assert_eq!(read_all(&fs, b, kept.len()), kept, "open after unlink");
    fs.release(b, fh).unwrap();
    fs.forget(b, 1).unwrap();
    wait_gone(&dir, b);

    assert_eq!(read_all(&fs, a2, small.len()), small);
    fs.shutdown().unwrap();
    drop(fs);
    let fs = mount(&dir);
    assert_eq!(read_all(&fs, a2, small.len()), small);
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM inodes WHERE nlink = 0"),
        0
    );
    let report =
        llmfs::fsck::check(fs.store(), &llmfs::codec::CodecSet::default(), |_, _| {}).unwrap();
    assert!(report.is_clean(), "{report}");
}

/// A daemon that dies with the reaper part way (the filesystem dropped
/// without its shutdown): the next open reclaims what is left.
#[test]
fn a_death_part_way_through_leaves_nothing_after_the_next_open() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let big = noise(6000 * BS, 7);
    let keep = noise(5 * BS, 8);
    let fs = mount(&dir);
    let a = create_file(&fs, ROOT_INO, "a", &big);
    let k = create_file(&fs, ROOT_INO, "k", &keep);
    fs.unlink(ROOT_INO, b"a").unwrap();
    fs.forget(a, 1).unwrap();
    drop(fs);
    // The open's reclaim commits with its batch, within milliseconds.
    let fs = mount(&dir);
    wait_gone(&dir, a);
    assert_eq!(read_all(&fs, k, keep.len()), keep);
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM inodes WHERE nlink = 0"),
        0
    );
}

#[test]
fn an_unmount_part_way_through_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let big = noise(6000 * BS, 4);
    let keep = noise(5 * BS, 5);
    let fs = mount(&dir);
    let a = create_file(&fs, ROOT_INO, "a", &big);
    let k = create_file(&fs, ROOT_INO, "k", &keep);
    fs.unlink(ROOT_INO, b"a").unwrap();
    fs.forget(a, 1).unwrap();
    // At once, before the reaper is through: the shutdown reclaims the rest.
    fs.shutdown().unwrap();
    drop(fs);
    assert_eq!(rows_of(&dir, a), 0);
    let fs = mount(&dir);
    assert_eq!(read_all(&fs, k, keep.len()), keep);
    let root = fs.getattr(ROOT_INO).unwrap();
    assert_eq!(root.nlink, 2);
    let names: Vec<Vec<u8>> = fs
        .readdir(ROOT_INO, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(!names.contains(&b"a".to_vec()), "{names:?}");
}

/// A sparse file whose size spans 2^28 blocks but that holds three: the
/// reaper steps from block to block, not over every index of the holes.
#[test]
fn a_vast_sparse_file_goes_as_fast_as_its_few_blocks() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let fs = mount(&dir);
    let data = noise(BS, 6);
    let a = create_file(&fs, ROOT_INO, "a", &data);
    let fh = fs.open(a, libc::O_RDWR).unwrap();
    for offset in [1u64 << 30, 1 << 40] {
        fs.write(a, fh, offset, &data).unwrap();
    }
    fs.fsync(a).unwrap();
    fs.release(a, fh).unwrap();
    assert_eq!(
        count(
            &dir,
            &format!("SELECT COUNT(*) FROM blocks WHERE ino = {a}")
        ),
        3
    );
    fs.unlink(ROOT_INO, b"a").unwrap();
    fs.forget(a, 1).unwrap();
    wait_gone(&dir, a);
    fs.shutdown().unwrap();
}
