//! The filesystem core (`llmfs::fs::Fs`) called directly, without FUSE:
//! the namespace rules (rename with and without flags, hard links, unlink
//! of open files) and extended attributes, each checked against the errno
//! POSIX asks for; on each backend (SQLite, and PostgreSQL when
//! LLMFS_TEST_PG names a server). Runs without root or /dev/fuse.

use llmfs::fs::{Ctx, Fs, FsConfig};
use llmfs::store::ROOT_INO;
use llmfs::Error;

use crate::common::create_file as file;
use crate::common::{fresh_stores, FreshStore};

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

struct Vol {
    store: FreshStore,
    fs: Fs,
}

fn open(store: &FreshStore) -> Fs {
    Fs::new(store.create(4096).unwrap(), FsConfig::default()).unwrap()
}

/// A fresh volume on each backend: every test runs on SQLite and on
/// PostgreSQL alike.
fn volumes() -> Vec<Vol> {
    fresh_stores()
        .into_iter()
        .map(|store| Vol {
            fs: open(&store),
            store,
        })
        .collect()
}

fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> i32 {
    r.expect_err("expected an error").errno()
}

fn dir(fs: &Fs, parent: u64, name: &str) -> u64 {
    fs.mkdir(&Ctx::root(), parent, name.as_bytes(), 0o755)
        .unwrap()
        .ino
}

fn names(fs: &Fs, dir: u64) -> Vec<String> {
    let mut v: Vec<String> = fs
        .readdir(dir, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .filter(|n| n != "." && n != "..")
        .collect();
    v.sort();
    v
}

fn content(fs: &Fs, ino: u64) -> Vec<u8> {
    fs.read(ino, 0, 1 << 20).unwrap()
}

#[test]
fn rename_replaces_moves_and_refuses_what_posix_refuses() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"alpha");
        let b = file(fs, ROOT_INO, "b", b"beta");
        let d = dir(fs, ROOT_INO, "d");
        let e = dir(fs, d, "e");

        // Replace: b's old inode is gone, a's inode has the name b.
        fs.rename(ROOT_INO, b"a", ROOT_INO, b"b", 0).unwrap();
        assert_eq!(fs.lookup(ROOT_INO, b"b").unwrap().ino, a);
        assert_eq!(errno(fs.lookup(ROOT_INO, b"a")), libc::ENOENT);
        assert_eq!(errno(fs.getattr(b)), libc::ENOENT, "replaced inode deleted");
        assert_eq!(content(fs, a), b"alpha");

        // Across directories; a directory moves with its parent's link count.
        fs.rename(ROOT_INO, b"b", e, b"moved", 0).unwrap();
        assert_eq!(names(fs, e), ["moved"]);
        let root_links = fs.getattr(ROOT_INO).unwrap().nlink;
        let f = dir(fs, ROOT_INO, "f");
        assert_eq!(fs.getattr(ROOT_INO).unwrap().nlink, root_links + 1);
        fs.rename(ROOT_INO, b"f", d, b"f", 0).unwrap();
        assert_eq!(fs.getattr(ROOT_INO).unwrap().nlink, root_links);
        assert_eq!(fs.lookup(d, b"f").unwrap().ino, f);

        // A directory into its own subtree; onto a non-empty directory; a
        // directory onto a file and a file onto a directory.
        assert_eq!(errno(fs.rename(ROOT_INO, b"d", e, b"x", 0)), libc::EINVAL);
        assert_eq!(
            errno(fs.rename(d, b"f", ROOT_INO, b"d", 0)),
            libc::ENOTEMPTY
        );
        file(fs, ROOT_INO, "plain", b"p");
        assert_eq!(
            errno(fs.rename(d, b"f", ROOT_INO, b"plain", 0)),
            libc::ENOTDIR
        );
        assert_eq!(
            errno(fs.rename(ROOT_INO, b"plain", d, b"f", 0)),
            libc::EISDIR
        );
        assert_eq!(
            errno(fs.rename(ROOT_INO, b"none", d, b"x", 0)),
            libc::ENOENT
        );

        // RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE swaps.
        file(fs, ROOT_INO, "q", b"queue");
        assert_eq!(
            errno(fs.rename(ROOT_INO, b"q", ROOT_INO, b"plain", RENAME_NOREPLACE)),
            libc::EEXIST
        );
        let q = fs.lookup(ROOT_INO, b"q").unwrap().ino;
        let p = fs.lookup(ROOT_INO, b"plain").unwrap().ino;
        fs.rename(ROOT_INO, b"q", ROOT_INO, b"plain", RENAME_EXCHANGE)
            .unwrap();
        assert_eq!(fs.lookup(ROOT_INO, b"q").unwrap().ino, p);
        assert_eq!(fs.lookup(ROOT_INO, b"plain").unwrap().ino, q);
        assert_eq!(
            errno(fs.rename(ROOT_INO, b"q", ROOT_INO, b"nothing", RENAME_EXCHANGE)),
            libc::ENOENT
        );
        assert_eq!(
            errno(fs.rename(
                ROOT_INO,
                b"q",
                ROOT_INO,
                b"x",
                RENAME_NOREPLACE | RENAME_EXCHANGE
            )),
            libc::EINVAL
        );

        // Everything survives a remount.
        fs.shutdown().unwrap();
        drop(v.fs);
        let fs = open(&v.store);
        assert_eq!(names(&fs, ROOT_INO), ["d", "plain", "q"]);
        assert_eq!(content(&fs, fs.lookup(e, b"moved").unwrap().ino), b"alpha");
    }
}

#[test]
fn hard_links_count_and_share_data() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"shared");
        let d = dir(fs, ROOT_INO, "d");
        let l = fs.link(a, d, b"l").unwrap();
        assert_eq!(l.ino, a);
        assert_eq!(l.nlink, 2);
        assert_eq!(fs.getattr(a).unwrap().nlink, 2);
        assert_eq!(content(fs, fs.lookup(d, b"l").unwrap().ino), b"shared");

        assert_eq!(errno(fs.link(a, d, b"l")), libc::EEXIST);
        assert_eq!(errno(fs.link(d, ROOT_INO, b"dirlink")), libc::EPERM);
        assert_eq!(errno(fs.link(a, a, b"x")), libc::ENOTDIR);
        assert_eq!(errno(fs.link(a, d, &[b'n'; 256])), libc::ENAMETOOLONG);

        // Removing one name keeps the inode and its data under the other.
        fs.unlink(ROOT_INO, b"a").unwrap();
        assert_eq!(fs.getattr(a).unwrap().nlink, 1);
        assert_eq!(content(fs, a), b"shared");
        fs.unlink(d, b"l").unwrap();
        assert_eq!(errno(fs.getattr(a)), libc::ENOENT);
        assert_eq!(errno(fs.unlink(d, b"l")), libc::ENOENT);
        assert_eq!(errno(fs.unlink(ROOT_INO, b"d")), libc::EISDIR);
    }
}

#[test]
fn unlinked_open_file_lives_until_its_last_handle_closes() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"old content");
        let fh = fs.open(a, libc::O_RDWR).unwrap();
        fs.unlink(ROOT_INO, b"a").unwrap();
        assert_eq!(errno(fs.lookup(ROOT_INO, b"a")), libc::ENOENT);
        // Still readable and writable through the handle, with nlink 0.
        assert_eq!(fs.getattr(a).unwrap().nlink, 0);
        assert_eq!(content(fs, a), b"old content");
        fs.write(a, fh, 4, b"NEW").unwrap();
        fs.flush(a).unwrap();
        assert_eq!(content(fs, a), b"old NEWtent");
        // The name can be taken by a new file meanwhile.
        let b = file(fs, ROOT_INO, "a", b"new file");
        assert_ne!(a, b);
        fs.release(a, fh).unwrap();
        assert_eq!(errno(fs.getattr(a)), libc::ENOENT, "gone at last close");
        assert_eq!(content(fs, b), b"new file");

        // An unlinked file still open when the volume stops is reclaimed at the
        // next open of the store, not served.
        let fh = fs.open(b, libc::O_RDONLY).unwrap();
        fs.unlink(ROOT_INO, b"a").unwrap();
        let _ = fh;
        fs.shutdown().unwrap();
        drop(v.fs);
        let fs = open(&v.store);
        assert_eq!(errno(fs.getattr(b)), libc::ENOENT);
        assert!(names(&fs, ROOT_INO).is_empty());
    }
}

#[test]
fn xattrs_create_replace_list_remove() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"x");
        assert_eq!(errno(fs.getxattr(a, b"user.k")), libc::ENODATA);
        assert_eq!(
            errno(fs.setxattr(a, b"user.k", b"v", XATTR_REPLACE)),
            libc::ENODATA
        );
        fs.setxattr(a, b"user.k", b"v1", XATTR_CREATE).unwrap();
        assert_eq!(
            errno(fs.setxattr(a, b"user.k", b"v2", XATTR_CREATE)),
            libc::EEXIST
        );
        fs.setxattr(a, b"user.k", b"v2", XATTR_REPLACE).unwrap();
        fs.setxattr(a, b"trusted.t", b"", 0).unwrap();
        fs.setxattr(a, b"security.s", &[0, 255, 1], 0).unwrap();
        assert_eq!(fs.getxattr(a, b"user.k").unwrap(), b"v2");
        assert_eq!(fs.getxattr(a, b"trusted.t").unwrap(), b"");
        assert_eq!(fs.getxattr(a, b"security.s").unwrap(), [0, 255, 1]);
        assert_eq!(
            fs.listxattr(a).unwrap(),
            b"security.s\0trusted.t\0user.k\0".to_vec()
        );

        // Namespaces llmfs does not keep, bad names and oversized values.
        assert_eq!(
            errno(fs.setxattr(a, b"system.posix_acl_access", b"", 0)),
            libc::EOPNOTSUPP
        );
        assert_eq!(errno(fs.setxattr(a, b"other.k", b"", 0)), libc::EOPNOTSUPP);
        assert_eq!(errno(fs.setxattr(a, b"user.", b"", 0)), libc::EOPNOTSUPP);
        assert_eq!(
            errno(fs.setxattr(a, b"user.big", &vec![0; 65537], 0)),
            libc::E2BIG
        );
        fs.setxattr(a, b"user.max", &vec![7; 65536], 0).unwrap();

        fs.removexattr(a, b"user.k").unwrap();
        assert_eq!(errno(fs.removexattr(a, b"user.k")), libc::ENODATA);
        assert_eq!(errno(fs.getxattr(a, b"user.k")), libc::ENODATA);

        // Attributes go with the inode: a hard link sees them, deleting the
        // last name drops them, and they survive a remount.
        let d = dir(fs, ROOT_INO, "d");
        fs.link(a, d, b"l").unwrap();
        assert_eq!(fs.getxattr(a, b"trusted.t").unwrap(), b"");
        fs.setxattr(d, b"user.dir", b"yes", 0).unwrap();
        fs.shutdown().unwrap();
        drop(v.fs);
        let fs = open(&v.store);
        assert_eq!(fs.getxattr(d, b"user.dir").unwrap(), b"yes");
        assert_eq!(fs.getxattr(a, b"security.s").unwrap(), [0, 255, 1]);
        fs.unlink(ROOT_INO, b"a").unwrap();
        fs.unlink(d, b"l").unwrap();
        assert_eq!(errno(fs.getxattr(a, b"security.s")), libc::ENOENT);
        assert!(fs.store().read(|m| m.xattr_owners()).unwrap() == vec![d]);
    }
}

/// A file's attributes go with it whatever the writer knew of attributes
/// before: the writer skips the statements on attributes while it knows
/// the store holds none, and learns of them from the store at open and
/// from its own writes.
#[test]
fn xattrs_go_with_their_inode_after_open_and_first_write() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let owners = |fs: &Fs| fs.store().read(|m| m.xattr_owners()).unwrap();
        // A store without attributes: an inode's deletion, then the first
        // attribute and the deletion of its inode.
        let a = file(fs, ROOT_INO, "a", b"x");
        fs.unlink(ROOT_INO, b"a").unwrap();
        assert_eq!(errno(fs.getxattr(a, b"user.k")), libc::ENOENT);
        let b = file(fs, ROOT_INO, "b", b"x");
        let c = file(fs, ROOT_INO, "c", b"x");
        assert_eq!(errno(fs.getxattr(b, b"user.k")), libc::ENODATA);
        fs.setxattr(b, b"user.k", b"v", 0).unwrap();
        fs.setxattr(c, b"user.k", b"w", 0).unwrap();
        assert_eq!(fs.getxattr(b, b"user.k").unwrap(), b"v");
        assert_eq!(fs.listxattr(c).unwrap(), b"user.k\0".to_vec());
        fs.unlink(ROOT_INO, b"b").unwrap();
        assert_eq!(owners(fs), vec![c]);
        // Reopened, the first thing the writer does is delete the inode
        // that holds the store's last attribute.
        fs.shutdown().unwrap();
        drop(v.fs);
        let fs = open(&v.store);
        fs.unlink(ROOT_INO, b"c").unwrap();
        assert!(owners(&fs).is_empty());
    }
}

/// `security.capability` of an open file the core knows has none (it
/// created it: the write path then skips removing one, xattr.rs): every
/// change of it is seen at once, on the file's next ask and after it is
/// reopened.
#[test]
fn an_open_files_capability_is_seen_through_every_change() {
    const CAP: &[u8] = b"security.capability";
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let (attr, fh) = fs
            .create_open(&Ctx::root(), ROOT_INO, b"f", 0o755, libc::O_WRONLY)
            .unwrap();
        let f = attr.ino;
        fs.write(f, fh, 0, b"#!/bin/true\n").unwrap();
        assert_eq!(errno(fs.getxattr(f, CAP)), libc::ENODATA);
        fs.setxattr(f, CAP, b"cap-v2", 0).unwrap();
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v2");
        fs.removexattr(f, CAP).unwrap();
        // Asked twice: an ask changes nothing.
        assert_eq!(errno(fs.getxattr(f, CAP)), libc::ENODATA);
        assert_eq!(errno(fs.getxattr(f, CAP)), libc::ENODATA);
        // Another attribute changes nothing of it; a new capability shows.
        fs.setxattr(f, b"user.k", b"v", 0).unwrap();
        assert_eq!(errno(fs.getxattr(f, CAP)), libc::ENODATA);
        fs.setxattr(f, CAP, b"cap-v3", 0).unwrap();
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v3");
        fs.release(f, fh).unwrap();

        // Opened (not created): what the store holds, through a removal.
        let fh = fs.open(f, libc::O_RDWR).unwrap();
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v3");
        fs.removexattr(f, CAP).unwrap();
        assert_eq!(errno(fs.getxattr(f, CAP)), libc::ENODATA);
        fs.setxattr(f, CAP, b"cap-v4", XATTR_CREATE).unwrap();
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v4");
        fs.release(f, fh).unwrap();
        // Closed, then after a remount: the store's answer.
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v4");
        fs.shutdown().unwrap();
        drop(v.fs);
        let fs = open(&v.store);
        let fh = fs.open(f, libc::O_RDONLY).unwrap();
        assert_eq!(fs.getxattr(f, CAP).unwrap(), b"cap-v4");
        fs.release(f, fh).unwrap();
    }
}

/// The kernel forgetting an unlinked, closed file deletes it: gone at once
/// for the core, its row removed by the next write transaction, and
/// reclaimed by the next open if no transaction came first.
#[test]
fn forgotten_unlinked_inode_is_gone_and_its_row_deleted() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"alpha");
        let b = file(fs, ROOT_INO, "b", b"beta");
        // The kernel holds a reference to each (as after a lookup).
        fs.remember(a);
        fs.remember(b);
        fs.unlink(ROOT_INO, b"a").unwrap();
        // Still referenced: the inode lives on with nlink 0.
        assert_eq!(fs.getattr(a).unwrap().nlink, 0);
        fs.forget(a, 1).unwrap();
        assert_eq!(errno(fs.getattr(a)), libc::ENOENT, "gone once forgotten");
        // A forgotten inode that still has a name stays.
        fs.forget(b, 1).unwrap();
        assert_eq!(content(fs, b), b"beta");
        let row = |ino| fs.store().read(|m| m.inode(ino)).unwrap();
        assert!(row(a).is_some(), "the row waits for the next transaction");
        file(fs, ROOT_INO, "c", b"gamma");
        assert!(row(a).is_none(), "deleted by the next transaction");

        // Forgotten with no transaction after it: the next open reclaims it.
        fs.remember(b);
        fs.unlink(ROOT_INO, b"b").unwrap();
        fs.forget(b, 1).unwrap();
        assert!(row(b).is_some());
        drop(v.fs);
        let fs = open(&v.store);
        assert!(fs.store().read(|m| m.inode(b)).unwrap().is_none());
        assert_eq!(names(&fs, ROOT_INO), vec!["c"]);
    }
}

/// A directory removed while the kernel still holds it (a process's
/// working directory), by rmdir or by a rename over it, keeps its row until
/// the kernel forgets it, and goes with the next write transaction then.
#[test]
fn forgotten_removed_directories_are_deleted() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let ctx = Ctx::root();
        let d = fs.mkdir(&ctx, ROOT_INO, b"d", 0o755).unwrap().ino;
        let e = fs.mkdir(&ctx, ROOT_INO, b"e", 0o755).unwrap().ino;
        let f = fs.mkdir(&ctx, ROOT_INO, b"f", 0o755).unwrap().ino;
        fs.remember(d);
        fs.remember(e);
        fs.rmdir(ROOT_INO, b"d").unwrap();
        // f replaces e, which the kernel holds.
        fs.rename(ROOT_INO, b"f", ROOT_INO, b"e", 0).unwrap();
        let row = |ino| fs.store().read(|m| m.inode(ino)).unwrap();
        assert_eq!(row(d).map(|r| r.nlink), Some(0));
        assert_eq!(row(e).map(|r| r.nlink), Some(0));
        fs.forget(d, 1).unwrap();
        fs.forget(e, 1).unwrap();
        file(fs, ROOT_INO, "g", b"gamma");
        assert!(row(d).is_none(), "the removed directory went");
        assert!(row(e).is_none(), "the replaced directory went");
        assert_eq!(row(f).map(|r| r.nlink), Some(2));
        assert_eq!(names(fs, ROOT_INO), vec!["e", "g"]);
    }
}

/// A setattr of a file with unwritten data commits both together: the
/// data and the explicit times and mode are in the store afterwards.
#[test]
fn setattr_of_a_dirty_file_commits_data_and_attributes_together() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let a = file(fs, ROOT_INO, "a", b"");
        let fh = fs.open(a, libc::O_WRONLY).unwrap();
        fs.write(a, fh, 0, b"pending").unwrap();
        let set = llmfs::fs::SetAttr {
            mode: Some(0o600),
            mtime: Some(llmfs::fs::SetTime::At(1_000_000_000_123)),
            ..Default::default()
        };
        let attr = fs.setattr(a, &set).unwrap();
        assert_eq!(attr.mtime_ns, 1_000_000_000_123);
        assert_eq!(attr.mode & 0o7777, 0o600);
        let row = fs.store().read(|m| m.inode(a)).unwrap().unwrap();
        assert_eq!(row.size, 7, "the data went with the attributes");
        assert_eq!(row.mtime_ns, 1_000_000_000_123);
        assert_eq!(row.mode & 0o7777, 0o600);
        fs.release(a, fh).unwrap();
        assert_eq!(content(fs, a), b"pending");
        let row = fs.store().read(|m| m.inode(a)).unwrap().unwrap();
        assert_eq!(
            row.mtime_ns, 1_000_000_000_123,
            "no pending time overwrote it"
        );
    }
}

/// Set-user-ID and executable set-group-ID go when the kernel asks (a
/// write or truncation by an unprivileged caller, a change of owner); a
/// set-group-ID without group execute and a directory's bits stay; an
/// open file remembers that it has none until its mode is set again.
#[test]
fn setid_bits_are_cleared_when_asked() {
    for v in volumes() {
        println!("backend: {:?}", v.store.kind);
        let fs = &v.fs;
        let mode = |ino| fs.getattr(ino).unwrap().mode & 0o7777;
        let chmod = |ino, m| {
            let set = llmfs::fs::SetAttr {
                mode: Some(m),
                ..Default::default()
            };
            fs.setattr(ino, &set).unwrap();
        };
        let a = file(fs, ROOT_INO, "a", b"data");
        chmod(a, 0o6755);
        let fh = fs.open(a, libc::O_WRONLY).unwrap();
        fs.write(a, fh, 0, b"pending").unwrap();
        let ctime = fs.getattr(a).unwrap().ctime_ns;
        assert!(fs.kill_suidgid(a).unwrap(), "cleared");
        assert_eq!(mode(a), 0o755);
        assert!(fs.getattr(a).unwrap().ctime_ns >= ctime);
        assert!(!fs.kill_suidgid(a).unwrap(), "nothing left to clear");
        // A chmod while open: the next write's check sees the new mode.
        chmod(a, 0o4700);
        assert!(fs.kill_suidgid(a).unwrap());
        assert_eq!(mode(a), 0o700);
        chmod(a, 0o2745);
        assert!(!fs.kill_suidgid(a).unwrap(), "mandatory-locking sgid stays");
        assert_eq!(mode(a), 0o2745);
        fs.release(a, fh).unwrap();
        assert_eq!(content(fs, a), b"pending");
        let row = fs.store().read(|m| m.inode(a)).unwrap().unwrap();
        assert_eq!(row.mode & 0o7777, 0o2745);

        // A change of owner, and a truncation, with the kernel's flag.
        chmod(a, 0o6755);
        let chown = llmfs::fs::SetAttr {
            uid: Some(1000),
            kill_suidgid: true,
            ..Default::default()
        };
        assert_eq!(fs.setattr(a, &chown).unwrap().mode & 0o7777, 0o755);
        chmod(a, 0o4755);
        let truncate = llmfs::fs::SetAttr {
            size: Some(2),
            kill_suidgid: true,
            ..Default::default()
        };
        let attr = fs.setattr(a, &truncate).unwrap();
        assert_eq!((attr.mode & 0o7777, attr.size), (0o755, 2));
        // Without the flag (a privileged caller) the bits stay.
        chmod(a, 0o4755);
        let truncate = llmfs::fs::SetAttr {
            size: Some(1),
            ..Default::default()
        };
        assert_eq!(fs.setattr(a, &truncate).unwrap().mode & 0o7777, 0o4755);

        let d = fs.mkdir(&Ctx::root(), ROOT_INO, b"d", 0o2775).unwrap().ino;
        let before = mode(d);
        assert_ne!(before & libc::S_ISGID, 0);
        assert!(
            !fs.kill_suidgid(d).unwrap(),
            "a directory keeps set-group-ID"
        );
        assert_eq!(mode(d), before);
    }
}
