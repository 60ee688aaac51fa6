//! Two mounts of one PostgreSQL volume (two `llmfs mount` daemons on two
//! mountpoints, one `--store postgres://...`), as two machines would
//! mount it (docs/DESIGN.md, "Several mounts of one volume"):
//! close-to-open, a tree made on one listed on the other, concurrent
//! writers losing nothing, a file unlinked on one while open on the
//! other, and a SIGKILL of one while the other writes. Needs root,
//! /dev/fuse and LLMFS_TEST_PG; skipped with a line without them.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::common::{noise, pg_url, text, FreshStore, Kind, Mounted};

/// Two mounts of a fresh PostgreSQL volume, or None without a server.
fn two_mounts() -> Option<(Mounted, Mounted)> {
    pg_url()?;
    let a = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    let b = Mounted::beside(&a, &[]);
    Some((a, b))
}

fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                out.push(format!("{rel}/"));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// A file's bytes read as `cat` reads them: open and read to the end,
/// without a stat (std's `fs::read` asks for the size, with a mask that
/// always goes to the daemon), so that the kernel's cached size decides
/// where the file ends.
fn cat(path: &Path) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        match f.read(&mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Asserts that `got` is `want`, naming the length and the first
/// difference rather than printing both.
fn same(got: &[u8], want: &[u8], what: &str) {
    let first = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        got == want,
        "{what}: {} bytes read, {} expected, first difference at {first:?}",
        got.len(),
        want.len()
    );
}

/// Unmounts both mounts (B first) and checks the volume: fsck finds no
/// error and no warning.
fn unmount_both_and_check(a: &mut Mounted, b: &mut Mounted) {
    b.unmount();
    a.unmount();
    let (ok, report) = a.fsck();
    assert!(ok, "{report}");
    assert!(report.contains("0 errors, 0 warnings"), "{report}");
}

/// What one mount writes and closes, the other reads at its next open:
/// also when it had read the file before (its page cache and decoded
/// blocks hold the old bytes), with the same size, a shorter and a longer
/// one. B caches attributes for an hour, so that only the open's own
/// revalidation (not an expired cache) can show it the new size.
#[test]
fn writes_on_one_mount_read_back_on_the_other_after_close() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut a = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    let mut b = Mounted::beside(&a, &["--attr-timeout", "3600"]);
    let one = text(300_000, 1);
    fs::write(a.path("f"), &one).unwrap();
    same(&cat(&b.path("f")), &one, "B");
    // B has every page and block of the file cached now.
    let two = text(300_000, 2);
    assert_ne!(one, two);
    fs::write(a.path("f"), &two).unwrap();
    same(&cat(&b.path("f")), &two, "same size, new bytes");
    let three = noise(70_000, 3);
    fs::write(a.path("f"), &three).unwrap();
    same(&cat(&b.path("f")), &three, "shorter");
    let four = text(500_000, 4);
    fs::write(a.path("f"), &four).unwrap();
    same(&cat(&b.path("f")), &four, "longer");
    // And the other way, into the middle of the file.
    {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(b.path("f"))
            .unwrap();
        f.write_all_at(b"written on B", 200_000).unwrap();
    }
    let mut expect = four.clone();
    expect[200_000..200_012].copy_from_slice(b"written on B");
    same(&fs::read(a.path("f")).unwrap(), &expect, "A");
    same(&cat(&b.path("f")), &expect, "B");
    b.unmount();
    a.unmount();
}

/// A name one mount looked for and did not find opens there as soon as
/// the other mount creates it: a PostgreSQL volume's mounts do not keep
/// failed lookups (close-to-open), although B keeps found names and
/// attributes for an hour.
#[test]
fn a_name_missing_on_one_mount_opens_once_the_other_creates_it() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut a = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    let mut b = Mounted::beside(&a, &["--attr-timeout", "3600"]);
    fs::create_dir(a.path("d")).unwrap();
    for round in 0..3 {
        let name = format!("d/late-{round}");
        assert!(fs::symlink_metadata(b.path(&name)).is_err(), "{name} on B");
        fs::write(a.path(&name), format!("made on A {round}")).unwrap();
        assert_eq!(cat(&b.path(&name)), format!("made on A {round}").as_bytes());
    }
    unmount_both_and_check(&mut a, &mut b);
}

/// A reader on B following a file A appends to (as `tail -f` does): once
/// B's attribute cache lapses (never kept here: `--attr-timeout 0`), a
/// stat of B's open descriptor shows the new size and B reads A's bytes,
/// also those in the block that was the last one before.
#[test]
fn a_reader_on_one_mount_follows_a_file_the_other_appends_to() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut a = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    let mut b = Mounted::beside(&a, &["--attr-timeout", "0"]);
    let first = text(100_000, 1);
    fs::write(a.path("log"), &first).unwrap();
    let mut follower = fs::File::open(b.path("log")).unwrap();
    let mut seen = Vec::new();
    follower.read_to_end(&mut seen).unwrap();
    same(&seen, &first, "B before the append");
    let more = text(50_000, 2);
    {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(a.path("log"))
            .unwrap();
        std::io::Write::write_all(&mut f, &more).unwrap();
    }
    let size = follower.metadata().unwrap().len();
    assert_eq!(size, (first.len() + more.len()) as u64);
    let mut tail = Vec::new();
    follower.read_to_end(&mut tail).unwrap();
    same(&tail, &more, "B's read past its old end");
    drop(follower);
    b.unmount();
    a.unmount();
}

/// A tree made on one mount (names the other has never looked up) is
/// listed, and its files read, on the other at once.
#[test]
fn a_tree_made_on_one_mount_is_listed_on_the_other() {
    require_fuse!();
    let Some((mut a, mut b)) = two_mounts() else {
        return;
    };
    fs::create_dir_all(a.path("x/y/z")).unwrap();
    fs::create_dir_all(a.path("x/w")).unwrap();
    for (i, rel) in ["x/1", "x/y/2", "x/y/z/3", "x/w/4"].iter().enumerate() {
        fs::write(a.path(rel), text(10_000 * (i + 1), i as u64)).unwrap();
    }
    std::os::unix::fs::symlink("y/2", a.path("x/link")).unwrap();
    assert_eq!(listing(&b.mnt), listing(&a.mnt));
    assert_eq!(
        listing(&b.mnt),
        ["x/", "x/1", "x/link", "x/w/", "x/w/4", "x/y/", "x/y/2", "x/y/z/", "x/y/z/3"]
    );
    assert_eq!(fs::read(b.path("x/link")).unwrap(), text(20_000, 1));
    assert_eq!(fs::read(b.path("x/y/z/3")).unwrap(), text(30_000, 2));
    b.unmount();
    a.unmount();
}

/// Writers on both mounts at once, in one shared directory and in one
/// each: every file is there with its bytes, seen from both, and the
/// volume is fsck-clean once both unmount.
#[test]
fn concurrent_writers_on_two_mounts_lose_nothing() {
    require_fuse!();
    let Some((mut a, mut b)) = two_mounts() else {
        return;
    };
    fs::create_dir(a.path("shared")).unwrap();
    let content = |side: &str, i: usize| {
        let seed = (i as u64) * 2 + u64::from(side == "b");
        text(5_000 + 9_000 * (i % 7), seed)
    };
    std::thread::scope(|s| {
        for (side, m) in [("a", &a), ("b", &b)] {
            let content = &content;
            s.spawn(move || {
                fs::create_dir(m.path(side)).unwrap();
                for i in 0..25 {
                    fs::write(m.path(&format!("shared/{side}{i}")), content(side, i)).unwrap();
                    fs::write(m.path(&format!("{side}/{i}")), content(side, i)).unwrap();
                    fs::create_dir(m.path(&format!("shared/{side}{i}.d"))).unwrap();
                }
            });
        }
    });
    for m in [&a, &b] {
        for side in ["a", "b"] {
            for i in 0..25 {
                let want = content(side, i);
                assert_eq!(
                    fs::read(m.path(&format!("shared/{side}{i}"))).unwrap(),
                    want
                );
                assert_eq!(fs::read(m.path(&format!("{side}/{i}"))).unwrap(), want);
            }
        }
        assert_eq!(fs::read_dir(m.path("shared")).unwrap().count(), 100);
    }
    unmount_both_and_check(&mut a, &mut b);
}

/// Renames onto one name and unlinks of it from both mounts at once:
/// the server's transactions put them in some order, so the volume is
/// fsck-clean (no lost or doubled link, no orphan) once both unmount, and
/// the name, if left, holds one whole file of one writer.
#[test]
fn renames_and_unlinks_racing_on_two_mounts_stay_consistent() {
    require_fuse!();
    let Some((mut a, mut b)) = two_mounts() else {
        return;
    };
    fs::create_dir(a.path("race")).unwrap();
    let content =
        |side: &str, i: usize| text(3_000 + 1_000 * i, i as u64 + 10 * u64::from(side == "b"));
    std::thread::scope(|s| {
        for (side, m) in [("a", &a), ("b", &b)] {
            let content = &content;
            s.spawn(move || {
                for i in 0..30 {
                    let tmp = m.path(&format!("race/{side}.tmp{i}"));
                    fs::write(&tmp, content(side, i)).unwrap();
                    fs::rename(&tmp, m.path("race/target")).unwrap();
                    if i % 3 == 2 {
                        // The other mount may have removed or replaced it
                        // first; either is a right answer.
                        match fs::remove_file(m.path("race/target")) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => panic!("unlink on {side}: {e}"),
                        }
                    }
                }
            });
        }
    });
    unmount_both_and_check(&mut a, &mut b);
    a.mount(&[]);
    let names: Vec<String> = fs::read_dir(a.path("race"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n == "target"), "{names:?}");
    if !names.is_empty() {
        let got = fs::read(a.path("race/target")).unwrap();
        let whole = ["a", "b"]
            .iter()
            .any(|side| (0..30).any(|i| got == content(side, i)));
        assert!(whole, "target holds one writer's whole file");
    }
    a.unmount();
}

/// A file unlinked on mount A while mount B has it open: once A has
/// deleted it (at A's unmount at the latest), B's reads of what it had
/// not cached fail with ESTALE and never return other bytes. A file B
/// unlinks while it has it open is B's: a mount starting meanwhile does
/// not reclaim it, and B reads all of it.
#[test]
fn a_file_unlinked_on_one_mount_while_open_on_the_other() {
    require_fuse!();
    let Some((mut a, mut b)) = two_mounts() else {
        return;
    };
    let data = noise(4 << 20, 7);
    fs::write(a.path("victim"), &data).unwrap();
    let mut victim = fs::File::open(b.path("victim")).unwrap();
    let mut head = vec![0u8; 4096];
    victim.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..4096]);
    fs::remove_file(a.path("victim")).unwrap();
    a.unmount();
    let mut tail = vec![0u8; 4096];
    let at = 3_584 << 10;
    victim.seek(SeekFrom::Start(at)).unwrap();
    let err = victim.read(&mut tail).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop(victim);
    assert!(
        b.log_text().contains("deleted by another mount"),
        "{}",
        b.log_text()
    );

    // B unlinks a file it has open; A mounts again (and reclaims the
    // unlinked inodes no live mount holds) while B still reads it.
    fs::write(b.path("kept"), &data).unwrap();
    let kept = fs::File::open(b.path("kept")).unwrap();
    fs::remove_file(b.path("kept")).unwrap();
    a.mount(&[]);
    let mut back = vec![0u8; data.len()];
    kept.read_exact_at(&mut back, 0).unwrap();
    assert!(back == data, "the held file reads back whole");
    drop(kept);
    unmount_both_and_check(&mut a, &mut b);
}

/// SIGKILL of mount A (with a file open, one unlinked while open, and
/// unwritten data) while mount B writes: B's writes all succeed and read
/// back, and the volume is fsck-clean once B unmounts.
#[test]
fn sigkill_of_one_mount_while_the_other_writes_leaves_the_volume_clean() {
    require_fuse!();
    let Some((mut a, mut b)) = two_mounts() else {
        return;
    };
    fs::write(a.path("a_closed"), text(100_000, 1)).unwrap();
    let mut open = fs::File::create(a.path("a_open")).unwrap();
    std::io::Write::write_all(&mut open, &text(100_000, 2)).unwrap();
    fs::write(a.path("a_unlinked"), text(100_000, 3)).unwrap();
    let unlinked = fs::File::open(a.path("a_unlinked")).unwrap();
    fs::remove_file(a.path("a_unlinked")).unwrap();
    let (started, halfway) = std::sync::mpsc::channel();
    let writer = {
        let mnt = b.mnt.clone();
        std::thread::spawn(move || {
            for i in 0..40u64 {
                let f = mnt.join(format!("b{i}"));
                fs::write(&f, text(50_000, 100 + i)).unwrap();
                fs::File::open(&f).unwrap().sync_all().unwrap();
                if i == 10 {
                    started.send(()).unwrap();
                }
            }
        })
    };
    halfway.recv().unwrap();
    a.crash();
    drop((open, unlinked));
    writer.join().unwrap();
    for i in 0..40u64 {
        assert_eq!(
            fs::read(b.path(&format!("b{i}"))).unwrap(),
            text(50_000, 100 + i)
        );
    }
    assert_eq!(fs::read(b.path("a_closed")).unwrap(), text(100_000, 1));
    b.unmount();
    let (ok, report) = b.fsck();
    assert!(ok, "{report}");
    b.mount(&[]);
    assert_eq!(fs::read(b.path("b39")).unwrap(), text(50_000, 139));
    b.unmount();
}
