//! Damage to the SQLite files themselves (block payloads are covered by
//! tests/mount/errors.rs): a torn or corrupt write-ahead log, and bytes
//! flipped in the main database file. The rule is never "mounted wrong":
//! a volume either is refused with a clear message, or serves every file
//! with its right content or EIO, and fsck fails wherever a read did.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{is_mounted, llmfs_umount, run, text, Mounted, BIN};

const PAGE: usize = 4096;

/// One way to damage the write-ahead log's bytes.
type WalDamage = Box<dyn Fn(&mut Vec<u8>)>;

fn copy_store(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Mounts `store` detached; `Err(stderr)` if the mount is refused.
fn try_mount(store: &Path, mnt: &Path) -> Result<(), String> {
    let out = Command::new(BIN)
        .arg("mount")
        .arg(mnt)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    if out.status.success() {
        assert!(is_mounted(mnt));
        Ok(())
    } else {
        assert!(!is_mounted(mnt), "a failed mount left a mount behind");
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn umount(mnt: &Path) {
    if let Err(err) = llmfs_umount(mnt) {
        let _ = Command::new("umount").arg("-l").arg(mnt).status();
        panic!("umount: {err}");
    }
}

fn fsck(store: &Path) -> (bool, String) {
    run([std::ffi::OsStr::new("fsck"), store.as_os_str()])
}

/// Detaches the mount if a check fails half-way.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if is_mounted(self.0) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
}

/// Reads every expected file: each must be its content or EIO. Returns how
/// many were EIO.
fn check_files(mnt: &Path, files: &[(String, Vec<u8>)], what: &str) -> usize {
    let mut eio = 0;
    for (name, want) in files {
        match fs::read(mnt.join(name)) {
            Ok(got) => assert!(
                &got == want,
                "{what}: {name} served wrong content ({} bytes, want {})",
                got.len(),
                want.len()
            ),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => eio += 1,
            Err(e) => panic!("{what}: {name}: {e} (only its content or EIO is right)"),
        }
    }
    eio
}

#[test]
fn torn_or_corrupt_wal_keeps_every_checkpointed_commit() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let old: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("old{i}"), text(50_000 + i * 9_000, i as u64)))
        .collect();
    for (n, d) in &old {
        fs::write(m.path(n), d).unwrap();
    }
    // A clean unmount checkpoints: the old files are in the main file.
    m.unmount();
    assert_eq!(
        fs::metadata(m.store.join("llmfs.db-wal")).map_or(0, |md| md.len()),
        0,
        "unmount checkpoints and truncates the WAL"
    );
    m.mount(&[]);
    let new: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("new{i}"), text(40_000 + i * 5_000, 100 + i as u64)))
        .collect();
    for (n, d) in &new {
        fs::write(m.path(n), d).unwrap();
    }
    // Overwrite an old file too: its new version lives only in the WAL.
    fs::write(m.path("old0"), text(30_000, 999)).unwrap();
    // The last operations may still be in the open batch of commits: an
    // fsync puts everything above in the WAL before the crash.
    fs::File::open(m.path("old0")).unwrap().sync_all().unwrap();
    m.crash();
    let wal_len = fs::metadata(m.store.join("llmfs.db-wal")).unwrap().len() as usize;
    assert!(
        wal_len > 32 + 24 + PAGE,
        "the crash left a WAL ({wal_len} bytes)"
    );
    let base = m.dir.path().join("base");
    copy_store(&m.store, &base);

    let frame = 24 + PAGE;
    let cuts: Vec<(String, WalDamage)> = vec![
        ("WAL header only".into(), Box::new(|w| w.truncate(32))),
        (
            "WAL cut mid-frame".into(),
            Box::new(move |w| w.truncate(w.len() - frame / 2)),
        ),
        (
            "WAL cut in half".into(),
            Box::new(|w| w.truncate(w.len() / 2)),
        ),
        (
            "last frame's page flipped".into(),
            Box::new(move |w| {
                let at = w.len() - PAGE / 2;
                w[at] ^= 0xff;
            }),
        ),
        (
            "first frame's page flipped".into(),
            Box::new(|w| w[32 + 24 + 100] ^= 0x55),
        ),
        ("WAL header salt flipped".into(), Box::new(|w| w[16] ^= 1)),
        ("WAL deleted".into(), Box::new(|w| w.clear())),
    ];
    let old_rest = &old[1..];
    for (what, cut) in &cuts {
        copy_store(&base, &m.store);
        let wal = m.store.join("llmfs.db-wal");
        let mut w = fs::read(&wal).unwrap();
        cut(&mut w);
        if w.is_empty() {
            fs::remove_file(&wal).unwrap();
        } else {
            fs::write(&wal, &w).unwrap();
        }
        let _ = fs::remove_file(m.store.join("llmfs.db-shm"));
        try_mount(&m.store, &m.mnt).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let guard = Unmount(&m.mnt);
        // Checkpointed data is intact; the WAL's files are all there or
        // absent (a valid WAL prefix), never torn.
        assert_eq!(check_files(&m.mnt, old_rest, what), 0, "{what}");
        let old0 = fs::read(m.path("old0")).unwrap();
        // (Empty: the O_TRUNC committed, the data that followed did not.)
        assert!(
            old0 == old[0].1 || old0 == text(30_000, 999) || old0.is_empty(),
            "{what}: old0 is neither its old, its truncated nor its new content"
        );
        let mut present = 0;
        for (n, d) in &new {
            match fs::read(m.path(n)) {
                // Empty: created, its data not yet written back.
                Ok(got) => {
                    assert!(&got == d || got.is_empty(), "{what}: {n} is torn");
                    present += usize::from(!got.is_empty());
                }
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{what}: {n}: {e}"),
            }
        }
        umount(&m.mnt);
        drop(guard);
        let (ok, report) = fsck(&m.store);
        assert!(ok, "{what}: fsck:\n{report}");
        eprintln!("{what}: mounted, fsck clean, {present}/6 WAL-only files present");
    }
}

#[test]
fn flipped_bytes_in_the_database_file_are_refused_or_eio() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..12 {
        let name = format!("f{i}");
        let d = text(20_000 + i * 15_000, i as u64 * 7);
        fs::write(m.path(&name), &d).unwrap();
        files.push((name, d));
    }
    m.unmount();
    let base = m.dir.path().join("base");
    copy_store(&m.store, &base);
    let db = fs::read(base.join("llmfs.db")).unwrap();
    let pages = db.len() / PAGE;
    assert!(pages > 20, "{pages} pages");

    // Structural damage SQLite can see: the header, and the b-tree page
    // type byte of pages spread over the file. Page contents of block
    // records are covered by the block checksum (tests/mount/errors.rs).
    // Flipped bytes inside a metadata row's values (a size, a mode) are not
    // detectable without page checksums, which SQLite does not keep.
    let mut damages: Vec<(String, usize, u8)> = vec![
        ("magic".into(), 0, 0xff),
        ("page size".into(), 16, 0x03),
        ("page 1 b-tree type".into(), 100, 0x0f),
    ];
    for k in 1..=12 {
        let page = 1 + k * (pages - 2) / 12;
        damages.push((format!("page {} type byte", page + 1), page * PAGE, 0xff));
    }
    let (mut refused, mut eio_mounts, mut clean) = (0, 0, 0);
    for (what, at, x) in &damages {
        copy_store(&base, &m.store);
        let mut bad = db.clone();
        bad[*at] ^= x;
        fs::write(m.store.join("llmfs.db"), &bad).unwrap();
        match try_mount(&m.store, &m.mnt) {
            Err(msg) => {
                assert!(
                    msg.contains("not a database")
                        || msg.contains("malformed")
                        || msg.contains("damaged"),
                    "{what}: unclear refusal: {msg}"
                );
                refused += 1;
                eprintln!("{what}: refused: {}", msg.trim());
            }
            Ok(()) => {
                let guard = Unmount(&m.mnt);
                let listed = fs::read_dir(&m.mnt).map(|d| d.count());
                let eio = check_files(&m.mnt, &files, what);
                umount(&m.mnt);
                drop(guard);
                let (ok, report) = fsck(&m.store);
                if eio > 0 || listed.is_err() {
                    assert!(!ok, "{what}: reads failed but fsck is clean:\n{report}");
                    eio_mounts += 1;
                } else {
                    clean += 1;
                }
                eprintln!(
                    "{what}: mounted, {eio} of {} files EIO, listing {:?}, fsck {}",
                    files.len(),
                    listed.map_err(|e| e.to_string()),
                    if ok { "clean" } else { "failed" }
                );
            }
        }
    }
    eprintln!(
        "{} damages: {refused} refused, {eio_mounts} mounted with EIO and fsck failing, {clean} harmless",
        damages.len()
    );
    assert!(refused >= 2, "a damaged header is refused");
}
