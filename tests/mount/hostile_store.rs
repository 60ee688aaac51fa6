//! A hostile store: SQLite rows crafted with rusqlite into a real store
//! (huge and negative numbers, loops in the directory tree, entries naming
//! missing inodes, bogus codec ids, blocks far past the end of a file).
//! The daemon must not panic, loop or allocate without bound: damaged
//! objects answer EIO (and the log says why), everything else keeps
//! working, `find`/`du`/`ls -R` over the tree finish, and fsck names the
//! damage. A store whose root directory is gone is refused at mount.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{is_mounted, text, Mounted, BIN};

fn db(store: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(store.join("llmfs.db")).unwrap()
}

fn ino_of(c: &rusqlite::Connection, parent: i64, name: &str) -> i64 {
    c.query_row(
        "SELECT ino FROM dirents WHERE parent = ?1 AND name = ?2",
        rusqlite::params![parent, name.as_bytes()],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn sql(c: &rusqlite::Connection, q: &str, p: impl rusqlite::Params) {
    let n = c.execute(q, p).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert!(n > 0, "{q} changed nothing");
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!("{what}: expected errno {want}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(want), "{what}: {e}"),
    }
}

/// Runs a tree walker with a deadline; it must finish (whatever it prints).
fn walk(args: &[&str], mnt: &Path) -> Output {
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .args(args)
        .arg(mnt)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(124),
        "{args:?} over the damaged tree did not finish in 60 s"
    );
    eprintln!(
        "{args:?}: {} in {:.1} s",
        out.status,
        start.elapsed().as_secs_f64()
    );
    out
}

/// Peak resident memory of the daemon that holds the store (its pid is in
/// the store's lock file), in KiB.
fn daemon_peak_kib(store: &Path) -> u64 {
    let pid = fs::read_to_string(store.join("lock")).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn crafted_rows_are_eio_not_panics_loops_or_huge_allocations() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let ok = text(200_000, 1);
    fs::write(m.path("ok"), &ok).unwrap();
    for name in [
        "big", "codec", "rawlen", "farblock", "neg", "nlink", "mode", "uid",
    ] {
        fs::write(m.path(name), text(70_000, 2)).unwrap();
    }
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/b/c/deep"), b"deep").unwrap();
    std::os::unix::fs::symlink("ok", m.path("sl")).unwrap();
    m.unmount();

    {
        let c = db(&m.store);
        let i = |n: &str| ino_of(&c, 1, n);
        let (a, big, codec) = (i("a"), i("big"), i("codec"));
        let b = ino_of(&c, a, "b");
        // A file of 4 EiB (past the largest size llmfs creates).
        sql(
            &c,
            "UPDATE inodes SET size = ?1 WHERE ino = ?2",
            (1i64 << 62, big),
        );
        // A bogus codec id, in the column and in the record.
        let mut rec: Vec<u8> = c
            .query_row(
                "SELECT record FROM blocks WHERE ino = ?1 AND idx = 0",
                [codec],
                |r| r.get(0),
            )
            .unwrap();
        rec[1] = 99;
        sql(
            &c,
            "UPDATE blocks SET codec = 99, record = ?1 WHERE ino = ?2 AND idx = 0",
            rusqlite::params![rec, codec],
        );
        // Metadata claiming a block of 4 EiB.
        sql(
            &c,
            "UPDATE blocks SET raw_len = ?1 WHERE ino = ?2 AND idx = 0",
            (1i64 << 62, i("rawlen")),
        );
        // A block far past the end of its file.
        sql(
            &c,
            "UPDATE blocks SET idx = ?1 WHERE ino = ?2 AND idx = 1",
            (1i64 << 61, i("farblock")),
        );
        // Loops: b holds an entry naming its parent a, a one naming itself.
        sql(
            &c,
            "INSERT INTO dirents(parent, name, ino) VALUES (?1, x'7570', ?2)",
            (b, a),
        );
        sql(
            &c,
            "INSERT INTO dirents(parent, name, ino) VALUES (?1, x'73656c66', ?1)",
            [a],
        );
        // An entry naming an inode that does not exist.
        sql(
            &c,
            "INSERT INTO dirents(parent, name, ino) VALUES (1, x'67686f7374', 999999)",
            [],
        );
        // Negative and out-of-range numbers where unsigned ones belong.
        sql(&c, "UPDATE inodes SET size = -1 WHERE ino = ?1", [i("neg")]);
        sql(
            &c,
            "UPDATE inodes SET nlink = ?1 WHERE ino = ?2",
            (1i64 << 40, i("nlink")),
        );
        sql(
            &c,
            "UPDATE inodes SET mode = -5 WHERE ino = ?1",
            [i("mode")],
        );
        sql(&c, "UPDATE inodes SET uid = -1 WHERE ino = ?1", [i("uid")]);
        // A symlink without a target.
        sql(
            &c,
            "UPDATE inodes SET target = NULL WHERE ino = ?1",
            [i("sl")],
        );
    }

    m.mount(&[]);
    for args in [
        &["find"][..],
        &["du", "-s"],
        &["ls", "-laR"],
        &["du", "-s", "--apparent-size"],
    ] {
        walk(args, &m.mnt);
    }

    // Undamaged data reads.
    assert!(fs::read(m.path("ok")).unwrap() == ok, "undamaged file");
    assert_eq!(fs::read(m.path("a/b/c/deep")).unwrap(), b"deep");

    // The huge file: stat and reads at both ends work; past the stored
    // blocks it is a hole.
    assert_eq!(fs::metadata(m.path("big")).unwrap().len(), 1u64 << 62);
    let f = File::open(m.path("big")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf == text(4096, 2));
    f.read_exact_at(&mut buf, (1u64 << 62) - 4096).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    // Writing there is refused as too large, not attempted.
    let w = fs::OpenOptions::new()
        .write(true)
        .open(m.path("big"))
        .unwrap();
    assert_errno(
        w.write_at(b"x", (1u64 << 62) - 1),
        libc::EFBIG,
        "write at 4 EiB",
    );
    drop((f, w));

    let mut small = [0u8; 10];
    let f = File::open(m.path("codec")).unwrap();
    assert_errno(f.read_exact_at(&mut small, 0), libc::EIO, "bogus codec");
    // Block 1 of that file is intact.
    f.read_exact_at(&mut small, 65_536).unwrap();
    drop(f);
    // raw_len in the metadata is not trusted: the record says what it holds.
    assert!(fs::read(m.path("rawlen")).unwrap() == text(70_000, 2));
    // The moved block is beyond the size: the file reads with a hole.
    let far = fs::read(m.path("farblock")).unwrap();
    assert_eq!(far.len(), 70_000);
    assert!(far[65_536..].iter().all(|&b| b == 0));

    assert_errno(
        fs::metadata(m.path("ghost")),
        libc::EIO,
        "entry without inode",
    );
    assert_errno(fs::metadata(m.path("neg")), libc::EIO, "negative size");
    assert_errno(
        fs::metadata(m.path("nlink")),
        libc::EIO,
        "nlink out of range",
    );
    assert_errno(fs::metadata(m.path("mode")), libc::EIO, "negative mode");
    assert_errno(fs::metadata(m.path("uid")), libc::EIO, "negative uid");
    assert_errno(
        fs::read_link(m.path("sl")),
        libc::EIO,
        "symlink without target",
    );
    // The kernel refuses a second name for a directory, whichever way.
    assert!(fs::metadata(m.path("a/b/up/b/up")).is_err());
    assert!(fs::metadata(m.path("a/self/self")).is_err());

    // Writes elsewhere still work, and the daemon stayed small.
    fs::write(m.path("new"), b"still writable").unwrap();
    let peak = daemon_peak_kib(&m.store);
    eprintln!("daemon peak RSS {peak} KiB");
    assert!(peak < 512 * 1024, "daemon peak RSS {peak} KiB");
    let log = m.log_text();
    assert!(
        log.contains("ERROR") && log.contains("inode"),
        "faults are logged:\n{log}"
    );
    m.unmount();

    // fsck names every row with an out-of-range number, and still checks
    // the rest.
    let bad: Vec<i64> = {
        let c = db(&m.store);
        ["neg", "nlink", "mode", "uid"]
            .iter()
            .map(|name| ino_of(&c, 1, name))
            .collect()
    };
    let (clean, report) = m.fsck();
    assert!(!clean, "fsck must fail:\n{report}");
    eprintln!("{report}");
    for ino in &bad {
        assert!(
            report.contains(&format!("inode {ino}: a number out of range")),
            "fsck names inode {ino}:\n{report}"
        );
    }
    assert!(report.contains("names missing inode 999999"), "{report}");
    assert!(report.contains("has unknown codec 99"), "{report}");

    // With the out-of-range rows removed, fsck names each remaining damage.
    {
        let c = db(&m.store);
        for name in ["neg", "nlink", "mode", "uid"] {
            let ino = ino_of(&c, 1, name);
            sql(&c, "DELETE FROM inodes WHERE ino = ?1", [ino]);
            sql(&c, "DELETE FROM dirents WHERE ino = ?1", [ino]);
            c.execute("DELETE FROM blocks WHERE ino = ?1", [ino])
                .unwrap();
        }
    }
    let (clean, report) = m.fsck();
    assert!(!clean, "{report}");
    for want in [
        "names missing inode 999999",
        "has unknown codec 99",
        "lies past the file size",
        "entries pointing at it",
        "has no target",
    ] {
        assert!(report.contains(want), "fsck reports {want:?}:\n{report}");
    }
}

#[test]
fn store_without_a_root_directory_is_refused() {
    require_fuse!();
    for damage in [
        "DELETE FROM inodes WHERE ino = 1",
        "UPDATE inodes SET mode = 33188 WHERE ino = 1",
    ] {
        let mut m = Mounted::new(&[]);
        fs::write(m.path("f"), b"x").unwrap();
        m.unmount();
        db(&m.store).execute(damage, []).unwrap();
        let out = Command::new(BIN)
            .arg("mount")
            .arg(&m.mnt)
            .arg("--store")
            .arg(&m.store)
            .output()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !is_mounted(&m.mnt) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_mounted(&m.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&m.mnt).status();
            panic!("{damage}: mounted anyway");
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{damage}: mount must fail");
        assert!(err.contains("root directory"), "{damage}: {err}");
        let (clean, report) = m.fsck();
        assert!(!clean && report.contains("root"), "{damage}: {report}");
    }
}
