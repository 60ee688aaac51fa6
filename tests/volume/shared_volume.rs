//! Several read-write clients of one PostgreSQL volume, through the
//! filesystem core without FUSE (docs/DESIGN.md, "Several mounts of one
//! volume"): close-to-open (an open sees what another client wrote and
//! drops what this one cached), holds on unlinked inodes against another
//! client's reclaim, a file deleted by another client reading as ESTALE,
//! never as other bytes, and the session lock that keeps an older llmfs
//! out. Needs LLMFS_TEST_PG; skipped with a line without it.

use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{Durability, StoreError, ROOT_INO};

use crate::common::{create_file, pg_url, FreshStore, Kind};

const BS: usize = 4096;

/// A second client of the volume `fresh` holds (as a second mount would
/// open it).
fn client(fresh: &FreshStore) -> Fs {
    Fs::new(fresh.create(BS).unwrap(), FsConfig::default()).unwrap()
}

fn read_all(fs: &Fs, ino: u64) -> Vec<u8> {
    let fh = fs.open(ino, libc::O_RDONLY).unwrap();
    let data = fs.read(ino, 0, 1 << 20).unwrap();
    fs.release(ino, fh).unwrap();
    data
}

fn rewrite(fs: &Fs, ino: u64, data: &[u8]) {
    let fh = fs.open(ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    fs.write(ino, fh, 0, data).unwrap();
    fs.release(ino, fh).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// What one client writes and closes, the other reads at its next open,
/// even when it had the file's blocks cached: same size, new bytes; then a
/// shorter file.
#[test]
fn an_open_sees_what_another_client_closed() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let a = client(&fresh);
    let b = client(&fresh);
    let one = pattern(5 * BS, 1);
    let ino = create_file(&a, ROOT_INO, "f", &one);
    assert_eq!(read_all(&b, ino), one);
    // B now has every block cached; A rewrites all of them.
    let two = pattern(5 * BS, 2);
    rewrite(&a, ino, &two);
    assert_eq!(read_all(&b, ino), two, "B's cache was dropped at open");
    let three = pattern(2 * BS + 17, 3);
    rewrite(&a, ino, &three);
    assert_eq!(read_all(&b, ino), three);
    // B's own writes read back on B and on A.
    let four = pattern(3 * BS, 4);
    rewrite(&b, ino, &four);
    assert_eq!(read_all(&b, ino), four);
    assert_eq!(read_all(&a, ino), four);
    assert_eq!(b.getattr(ino).unwrap().size, four.len() as u64);
}

/// A file open on B while A extends it: B's stat (the kernel asks once
/// its attribute cache expires) shows the new size, and B then reads
/// A's bytes past the old end, also in the old last block, which B had
/// cached shorter.
#[test]
fn a_stat_of_a_file_open_here_shows_the_size_another_client_wrote() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let a = client(&fresh);
    let b = client(&fresh);
    let one = pattern(3 * BS + 100, 7);
    let ino = create_file(&a, ROOT_INO, "grows", &one);
    let fh = b.open(ino, libc::O_RDONLY).unwrap();
    assert_eq!(b.read(ino, 0, 1 << 20).unwrap(), one);
    let more = pattern(2 * BS, 8);
    let afh = a.open(ino, libc::O_WRONLY).unwrap();
    a.write(ino, afh, one.len() as u64, &more).unwrap();
    a.release(ino, afh).unwrap();
    assert_eq!(
        b.getattr(ino).unwrap().size,
        (one.len() + more.len()) as u64
    );
    let tail = b.read(ino, one.len() as u64, 1 << 20).unwrap();
    assert!(tail == more, "B reads A's appended bytes, not zeros");
    b.release(ino, fh).unwrap();
}

/// Writers on both clients in one directory: every file is there, and
/// the directory's link count counts every subdirectory (its row is
/// changed by both, one transaction at a time).
#[test]
fn two_clients_writing_in_one_directory_lose_nothing() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let a = client(&fresh);
    let b = client(&fresh);
    let ctx = llmfs::fs::Ctx::root();
    let d = a.mkdir(&ctx, ROOT_INO, b"d", 0o755).unwrap().ino;
    std::thread::scope(|s| {
        for (name, fs) in [("a", &a), ("b", &b)] {
            s.spawn(move || {
                for i in 0..20 {
                    let f = format!("{name}{i}");
                    create_file(fs, d, &f, f.as_bytes());
                    fs.mkdir(&ctx, d, format!("{f}.dir").as_bytes(), 0o755)
                        .unwrap();
                }
            });
        }
    });
    for fs in [&a, &b] {
        let names = fs.readdir(d, 0, usize::MAX).unwrap();
        assert_eq!(names.len(), 2 + 80, "every entry, on both clients");
        for e in names.iter().filter(|e| !e.name.ends_with(b".dir")) {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            assert_eq!(read_all(fs, e.ino), e.name);
        }
        assert_eq!(fs.getattr(d).unwrap().nlink, 2 + 40);
    }
}

/// A file unlinked on client B while B still has it open is held by B: a
/// client that starts meanwhile (and reclaims unlinked inodes) leaves it,
/// and B reads all of it; once B lets go, it is deleted. A client that
/// leaves (its store dropped) drops its holds, so the next start
/// reclaims what it held.
#[test]
fn an_unlinked_open_file_is_held_against_another_clients_reclaim() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let b = client(&fresh);
    let data = pattern(6 * BS, 5);
    let ino = create_file(&b, ROOT_INO, "held", &data);
    let fh = b.open(ino, libc::O_RDONLY).unwrap();
    b.unlink(ROOT_INO, b"held").unwrap();
    let holds: i64 = fresh.pg_query_one("SELECT COUNT(*) FROM inode_holds");
    assert_eq!(holds, 1);
    let c = client(&fresh);
    assert_eq!(b.read(ino, 0, 1 << 20).unwrap(), data, "not reclaimed");
    b.release(ino, fh).unwrap();
    // Released and forgotten: B's next write transaction deletes it.
    c.mkdir(&llmfs::fs::Ctx::root(), ROOT_INO, b"x", 0o755)
        .unwrap();
    b.mkdir(&llmfs::fs::Ctx::root(), ROOT_INO, b"y", 0o755)
        .unwrap();
    let left: i64 = fresh.pg_query_one(&format!("SELECT COUNT(*) FROM inodes WHERE ino = {ino}"));
    assert_eq!(left, 0);

    // Held by a client that goes away without closing: its holds go
    // with it, and the next client's start reclaims the inode.
    let ino = create_file(&b, ROOT_INO, "held2", &data);
    let _fh = b.open(ino, libc::O_RDONLY).unwrap();
    b.unlink(ROOT_INO, b"held2").unwrap();
    drop(b);
    let mounts: i64 = fresh.pg_query_one("SELECT COUNT(*) FROM mounts");
    assert_eq!(mounts, 1, "only C is registered");
    drop(client(&fresh));
    let left: i64 = fresh.pg_query_one(&format!("SELECT COUNT(*) FROM inodes WHERE ino = {ino}"));
    assert_eq!(left, 0, "reclaimed at the next start");
    drop(c);
}

/// A file client A deletes while client B has it open: B's reads of what
/// it had not cached fail with ESTALE, never return zeros or other bytes;
/// B's close drops its unwritten data, and the volume stays consistent.
#[test]
fn a_file_deleted_by_another_client_reads_as_stale() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let a = client(&fresh);
    let b = client(&fresh);
    let data = pattern(8 * BS, 6);
    let ino = create_file(&a, ROOT_INO, "gone", &data);
    let fh = b.open(ino, libc::O_RDWR).unwrap();
    assert_eq!(b.read(ino, 0, BS as u32).unwrap(), &data[..BS]);
    b.write(ino, fh, 0, b"unwritten").unwrap();
    // A unlinks it; nothing on A has it open, so its row goes at once.
    a.unlink(ROOT_INO, b"gone").unwrap();
    let e = b.read(ino, 5 * BS as u64, BS as u32).unwrap_err();
    assert_eq!(e.errno(), libc::ESTALE, "{e}");
    let e = b.flush(ino).unwrap_err();
    assert_eq!(e.errno(), libc::ESTALE, "close: {e}");
    let e = b.release(ino, fh).unwrap_err();
    assert_eq!(e.errno(), libc::ESTALE, "{e}");
    let orphan_blocks: i64 =
        fresh.pg_query_one(&format!("SELECT COUNT(*) FROM blocks WHERE ino = {ino}"));
    assert_eq!(orphan_blocks, 0, "B wrote nothing for a deleted inode");
    assert_eq!(
        b.open(ino, libc::O_RDONLY).unwrap_err().errno(),
        libc::ENOENT
    );
}

/// Read-write clients hold the volume's session lock shared: an llmfs
/// from before several mounts (which takes it exclusively) cannot open the
/// volume while one runs, and while it runs none opens it.
#[test]
fn an_older_llmfs_and_a_newer_one_exclude_each_other() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    let a = fresh.create(BS).unwrap();
    let b = fresh.create(BS).unwrap();
    b.write(Durability::Normal, |m| m.set_volume_setting("k", "v"))
        .unwrap();
    assert!(fresh.lock_as_older_llmfs().is_none());
    drop((a, b));
    let older = fresh
        .lock_as_older_llmfs()
        .expect("free once both are gone");
    let err = fresh.create(BS).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(older);
    fresh.create(BS).expect("free again");
}
