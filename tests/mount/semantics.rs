//! POSIX semantics of a real llmfs mount, exercised through std::fs,
//! std::os::unix and raw libc calls on the mounted path. Each test mounts its
//! own volume.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{noise, text, Mounted};

const BS: u64 = 64 * 1024;

// ---------------------------------------------------------------- helpers

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("string without NUL")
}

/// Turns a libc return value (-1 on failure) into an io::Result.
fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cvt_size(rc: libc::ssize_t) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    let want_err = io::Error::from_raw_os_error(want);
    match r {
        Ok(v) => panic!("{what}: expected {want_err}, got Ok({v:?})"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(want),
            "{what}: expected {want_err}, got {e}"
        ),
    }
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: two valid C strings; renameat2 reads them only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// utimensat(2) with [atime, mtime]; does not follow a final symlink.
fn utimens(p: &Path, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let c = cpath(p);
    let times = [atime, mtime];
    // SAFETY: valid C string and a two-element timespec array.
    cvt(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn setxattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let (c, n) = (cpath(p), cstr(name));
    // SAFETY: valid C strings and a value buffer of the given length.
    cvt(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// lgetxattr(2) with a buffer of `size` bytes: returns the reported length
/// and the bytes written.
fn getxattr(p: &Path, name: &str, size: usize) -> io::Result<(usize, Vec<u8>)> {
    let (c, n) = (cpath(p), cstr(name));
    let mut buf = vec![0u8; size];
    // SAFETY: valid C strings; buf holds `size` bytes (null when size is 0).
    let rc = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            n.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    };
    let len = cvt_size(rc)?;
    buf.truncate(len.min(size));
    Ok((len, buf))
}

/// The whole value of an attribute (size query, then fetch).
fn xattr_value(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (len, _) = getxattr(p, name, 0)?;
    let (got, v) = getxattr(p, name, len.max(1))?;
    assert_eq!(got, len, "attribute {name} changed size between calls");
    Ok(v)
}

fn listxattr_raw(p: &Path, size: usize) -> io::Result<(usize, Vec<u8>)> {
    let c = cpath(p);
    let mut buf = vec![0u8; size];
    // SAFETY: valid C string; buf holds `size` bytes (null when size is 0).
    let rc = unsafe {
        libc::llistxattr(
            c.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    };
    let len = cvt_size(rc)?;
    buf.truncate(len.min(size));
    Ok((len, buf))
}

/// Attribute names of a path.
fn xattr_names(p: &Path) -> Vec<Vec<u8>> {
    let (len, _) = listxattr_raw(p, 0).expect("listxattr size");
    if len == 0 {
        return Vec::new();
    }
    let (_, buf) = listxattr_raw(p, len).expect("listxattr");
    let mut names: Vec<Vec<u8>> = buf
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_vec())
        .collect();
    names.sort();
    names
}

fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (c, n) = (cpath(p), cstr(name));
    // SAFETY: valid C strings.
    cvt(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) })
}

/// statx that forces the kernel to ask the filesystem (no cached attributes).
fn fresh_stat(p: &Path) -> libc::statx {
    let c = cpath(p);
    // SAFETY: zeroed statx is a valid out-buffer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_FORCE_SYNC,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    assert_eq!(
        rc,
        0,
        "statx {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
    stx
}

fn nlink(p: &Path) -> u32 {
    fresh_stat(p).stx_nlink
}

fn access(p: &Path, mode: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid C string.
    cvt(unsafe { libc::access(c.as_ptr(), mode) })
}

#[track_caller]
fn assert_fsck_clean(m: &Mounted) {
    let (ok, report) = m.fsck();
    assert!(ok, "fsck found problems:\n{report}");
}

/// Names in a directory (without . and ..), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Small extension of the harness for this file: remount, run checks, then
/// unmount and fsck.
pub(crate) trait RemountCheck {
    fn remount_check_and_fsck(self, f: impl FnOnce(&Mounted));
}

impl RemountCheck for Mounted {
    fn remount_check_and_fsck(mut self, f: impl FnOnce(&Mounted)) {
        self.remount();
        f(&self);
        self.unmount();
        assert_fsck_clean(&self);
    }
}

// ---------------------------------------------------------- lookup/getattr

/// The kernel keeps a failed lookup on a store directory (a negative
/// dentry, for the entry timeout): a name looked for three times is asked
/// of the daemon once. Every way of making the name exist through the
/// mount shows at the very next lookup, and removing it again shows too.
#[test]
fn failed_lookups_are_kept_and_every_change_through_the_mount_shows() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let name = "absent-4f1c";
    let p = m.path(name);
    for _ in 0..3 {
        assert_errno(
            fs::symlink_metadata(&p),
            libc::ENOENT,
            "stat of a missing name",
        );
    }
    let asked = m
        .log_text()
        .lines()
        .filter(|l| l.contains(&format!("lookup: no {name:?} in directory")))
        .count();
    assert_eq!(asked, 1, "{}", m.log_text());

    fs::write(m.path("target"), b"t").unwrap();
    type Maker<'a> = (&'a str, &'a dyn Fn(&Path));
    let makers: [Maker; 6] = [
        ("create", &|p| fs::write(p, b"x").unwrap()),
        ("mkdir", &|p| fs::create_dir(p).unwrap()),
        ("symlink", &|p| {
            std::os::unix::fs::symlink("target", p).unwrap()
        }),
        ("link", &|p| {
            fs::hard_link(p.with_file_name("target"), p).unwrap()
        }),
        ("rename", &|p| {
            fs::write(p.with_file_name("moved"), b"m").unwrap();
            fs::rename(p.with_file_name("moved"), p).unwrap()
        }),
        ("mknod", &|p| {
            let c = cpath(p);
            // SAFETY: a valid C string.
            cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }).unwrap()
        }),
    ];
    for (what, make) in makers {
        assert_errno(fs::symlink_metadata(&p), libc::ENOENT, what);
        make(&p);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
        if md.is_dir() {
            fs::remove_dir(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
        assert_errno(fs::symlink_metadata(&p), libc::ENOENT, what);
    }
    // Renaming the name away leaves it missing, and exclusive creation
    // over a kept miss works.
    fs::write(&p, b"y").unwrap();
    fs::rename(&p, m.path("elsewhere")).unwrap();
    assert_errno(fs::symlink_metadata(&p), libc::ENOENT, "renamed away");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"");
    m.remount();
    assert!(p.exists() && m.path("elsewhere").exists());
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn lookup_and_getattr() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("f"), b"0123456789").unwrap();
    fs::create_dir(m.path("d")).unwrap();

    let f = fs::metadata(m.path("f")).unwrap();
    assert!(f.is_file(), "f is a regular file");
    assert_eq!(f.len(), 10, "size of f");
    assert_eq!(f.mode() & libc::S_IFMT, libc::S_IFREG);
    assert_eq!(f.nlink(), 1, "nlink of a new file");
    assert_eq!(f.uid(), 0, "owner is the creating user (root)");
    assert_eq!(f.mode() & 0o777, 0o644, "0666 less umask 022");

    let d = fs::metadata(m.path("d")).unwrap();
    assert!(d.is_dir(), "d is a directory");
    assert_eq!(d.mode() & libc::S_IFMT, libc::S_IFDIR);
    assert_eq!(d.nlink(), 2, "nlink of an empty directory");
    assert_ne!(d.ino(), f.ino(), "distinct inode numbers");

    let root = fs::metadata(&m.mnt).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.ino(), 1, "root inode number");
    assert_eq!(root.nlink(), 3, "root holds one subdirectory");

    assert_errno(
        fs::metadata(m.path("missing")),
        libc::ENOENT,
        "stat missing",
    );
    assert_errno(
        fs::metadata(m.path("d/missing")),
        libc::ENOENT,
        "stat missing in subdir",
    );
    assert_errno(
        fs::metadata(m.path("f/x")),
        libc::ENOTDIR,
        "stat below a regular file",
    );
    assert_errno(File::open(m.path("missing")), libc::ENOENT, "open missing");

    // Names are bytes: non-UTF-8 names work.
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff\x01");
    fs::write(m.mnt.join(raw), b"latin1").unwrap();
    let listed: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(listed.iter().any(|n| n == raw), "non-UTF-8 name listed");
    assert_eq!(fs::read(m.mnt.join(raw)).unwrap(), b"latin1");
}

// ---------------------------------------------------------------- setattr

#[test]
fn chmod_and_chown() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    fs::create_dir(m.path("d")).unwrap();

    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fresh_stat(&f).stx_mode as u32 & 0o7777, 0o640, "chmod 0640");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o2751)).unwrap();
    assert_eq!(
        fresh_stat(&f).stx_mode as u32 & 0o7777,
        0o2751,
        "chmod 2751"
    );
    fs::set_permissions(m.path("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    let d = fresh_stat(&m.path("d"));
    assert_eq!(d.stx_mode as u32 & 0o7777, 0o1777, "sticky dir");
    assert_eq!(d.stx_mode as u32 & libc::S_IFMT, libc::S_IFDIR, "type kept");

    std::os::unix::fs::chown(&f, Some(1), Some(1)).unwrap();
    let st = fresh_stat(&f);
    assert_eq!((st.stx_uid, st.stx_gid), (1, 1), "chown to 1:1");
    std::os::unix::fs::chown(&f, None, Some(2)).unwrap();
    let st = fresh_stat(&f);
    assert_eq!((st.stx_uid, st.stx_gid), (1, 2), "chgrp only");

    // Linux clears set-group-ID (with group execute) on chown, even for root.
    assert_eq!(
        fresh_stat(&f).stx_mode as u32 & 0o7777,
        0o751,
        "chown drops S_ISGID"
    );

    m.remount_check_and_fsck(|m| {
        let st = fresh_stat(&m.path("f"));
        assert_eq!((st.stx_uid, st.stx_gid), (1, 2), "owner after remount");
        assert_eq!(st.stx_mode as u32 & 0o7777, 0o751, "mode after remount");
        assert_eq!(
            fresh_stat(&m.path("d")).stx_mode as u32 & 0o7777,
            0o1777,
            "dir mode after remount"
        );
    });
}

#[test]
fn truncate_up_and_down() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let p = m.path("t");
    fs::write(&p, vec![b'a'; 100]).unwrap();

    // Up: the extension reads as zeros.
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(200_000)
        .unwrap();
    let data = fs::read(&p).unwrap();
    assert_eq!(data.len(), 200_000, "size after truncate up");
    assert!(data[..100].iter().all(|&b| b == b'a'), "old data kept");
    assert!(data[100..].iter().all(|&b| b == 0), "extension reads zeros");

    // Down inside the first block, then extend again: the cut region is zeros.
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(50)
        .unwrap();
    assert_eq!(fs::read(&p).unwrap(), vec![b'a'; 50], "after truncate down");
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100)
        .unwrap();
    let data = fs::read(&p).unwrap();
    assert_eq!(&data[..50], &[b'a'; 50][..]);
    assert!(
        data[50..].iter().all(|&b| b == 0),
        "cut region must read zeros after extending, got {:?}",
        &data[50..]
    );

    // Extending by a write past the end after a cut: same rule.
    fs::write(&p, vec![b'b'; 3 * BS as usize]).unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(BS + 10).unwrap();
    f.write_all_at(b"Z", 3 * BS - 1).unwrap();
    drop(f);
    let data = fs::read(&p).unwrap();
    assert_eq!(data.len() as u64, 3 * BS);
    assert!(data[..(BS + 10) as usize].iter().all(|&b| b == b'b'));
    assert!(
        data[(BS + 10) as usize..(3 * BS - 1) as usize]
            .iter()
            .all(|&b| b == 0),
        "cut region (after write past end) must read zeros"
    );
    assert_eq!(data[(3 * BS - 1) as usize], b'Z');

    // The same through one descriptor holding unwritten (dirty) data.
    let g = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("g"))
        .unwrap();
    g.write_all_at(&vec![b'c'; 70_000], 0).unwrap();
    g.set_len(10).unwrap();
    g.set_len(70_000).unwrap();
    let mut back = vec![0u8; 70_000];
    g.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back[..10], b"cccccccccc");
    assert!(
        back[10..].iter().all(|&b| b == 0),
        "dirty data cut by ftruncate must not come back"
    );
    drop(g);

    m.remount();
    let data = fs::read(m.path("g")).unwrap();
    assert_eq!(data.len(), 70_000);
    assert!(data[10..].iter().all(|&b| b == 0), "after remount");
    let data = fs::read(m.path("t")).unwrap();
    assert!(data[(BS + 10) as usize..(3 * BS - 1) as usize]
        .iter()
        .all(|&b| b == 0));
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn utimensat_explicit_now_and_omit() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"x").unwrap();

    utimens(
        &p,
        ts(1_000_000_001, 123_456_789),
        ts(1_234_567_890, 987_654_321),
    )
    .unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!(
        (st.atime(), st.atime_nsec()),
        (1_000_000_001, 123_456_789),
        "explicit atime with nanoseconds"
    );
    assert_eq!(
        (st.mtime(), st.mtime_nsec()),
        (1_234_567_890, 987_654_321),
        "explicit mtime with nanoseconds"
    );

    // Whole seconds before the epoch work too.
    utimens(&p, ts(-10, 0), ts(-1_000, 0)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.atime(), st.atime_nsec()), (-10, 0), "negative atime");
    assert_eq!((st.mtime(), st.mtime_nsec()), (-1_000, 0), "negative mtime");

    utimens(&p, ts(1_000_000_001, 1), ts(1_234_567_890, 2)).unwrap();
    // UTIME_OMIT on atime, UTIME_NOW on mtime.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    utimens(&p, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_NOW)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!(
        (st.atime(), st.atime_nsec()),
        (1_000_000_001, 1),
        "UTIME_OMIT keeps atime"
    );
    assert!(
        st.mtime() >= before - 1 && st.mtime() <= before + 5,
        "UTIME_NOW sets mtime to now: {} vs {before}",
        st.mtime()
    );
    let mtime_now = (st.mtime(), st.mtime_nsec());

    // Both omitted: nothing changes.
    utimens(&p, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_OMIT)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.atime(), st.atime_nsec()), (1_000_000_001, 1));
    assert_eq!((st.mtime(), st.mtime_nsec()), mtime_now);

    // UTIME_NOW on atime, explicit mtime.
    utimens(&p, ts(0, libc::UTIME_NOW), ts(42, 42)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert!(st.atime() >= before - 1, "UTIME_NOW atime");
    assert_eq!((st.mtime(), st.mtime_nsec()), (42, 42));

    m.remount_check_and_fsck(|m| {
        let st = fs::metadata(m.path("f")).unwrap();
        assert_eq!((st.mtime(), st.mtime_nsec()), (42, 42), "after remount");
    });
}

#[test]
fn utimensat_before_epoch_with_nanoseconds() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"x").unwrap();
    utimens(&p, ts(-10, 5), ts(-1_000, 999_999_999)).unwrap();
    let st = fresh_stat(&p);
    assert_eq!(
        (st.stx_atime.tv_sec, st.stx_atime.tv_nsec),
        (-10, 5),
        "atime 5 ns after -10 s"
    );
    assert_eq!(
        (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        (-1_000, 999_999_999),
        "mtime 999999999 ns after -1000 s"
    );
}

#[test]
fn explicit_mtime_after_write_wins() {
    require_fuse!();
    // A write followed by futimens on the same open file (what tar and cp -p
    // do): the explicit mtime must not be overwritten by the write's.
    let m = Mounted::new(&[]);
    let p = m.path("f");
    let mut f = File::create(&p).unwrap();
    f.write_all(b"some data").unwrap();
    f.set_times(
        fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 77)),
    )
    .unwrap();
    drop(f);
    let st = fresh_stat(&p);
    assert_eq!(
        (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        (1_500_000_000, 77),
        "mtime set after a write survives close"
    );
    m.remount_check_and_fsck(|m| {
        let st = fs::metadata(m.path("f")).unwrap();
        assert_eq!((st.mtime(), st.mtime_nsec()), (1_500_000_000, 77));
        assert_eq!(fs::read(m.path("f")).unwrap(), b"some data");
    });
}

// ------------------------------------------------ create/mknod/mkdir/remove

#[test]
fn create_mknod_mkdir_unlink_rmdir() {
    require_fuse!();
    let m = Mounted::new(&[]);

    File::create(m.path("created")).unwrap();
    assert!(fs::metadata(m.path("created")).unwrap().is_file());
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.path("created")),
        libc::EEXIST,
        "O_CREAT|O_EXCL on existing",
    );

    let reg = cpath(&m.path("reg"));
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(reg.as_ptr(), libc::S_IFREG | 0o600, 0) }).unwrap();
    let st = fs::metadata(m.path("reg")).unwrap();
    assert!(st.is_file(), "mknod S_IFREG makes a regular file");
    assert_eq!(st.mode() & 0o777, 0o600);
    assert_eq!(st.len(), 0);

    let fifo = cpath(&m.path("fifo"));
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }).unwrap();
    let st = fs::symlink_metadata(m.path("fifo")).unwrap();
    assert!(st.file_type().is_fifo(), "mkfifo makes a FIFO");
    assert_eq!(
        st.mode() & libc::S_IFMT,
        libc::S_IFIFO,
        "S_IFIFO in st_mode"
    );

    let root_links = nlink(&m.mnt);
    fs::create_dir(m.path("d")).unwrap();
    assert_eq!(nlink(&m.mnt), root_links + 1, "mkdir raises parent nlink");
    assert_eq!(nlink(&m.path("d")), 2);
    assert_errno(fs::create_dir(m.path("d")), libc::EEXIST, "mkdir existing");
    fs::create_dir(m.path("d/sub")).unwrap();
    assert_eq!(nlink(&m.path("d")), 3, "subdirectory raises nlink");
    fs::write(m.path("d/file"), b"x").unwrap();

    assert_errno(
        fs::remove_dir(m.path("d")),
        libc::ENOTEMPTY,
        "rmdir non-empty",
    );
    assert_errno(
        fs::remove_dir(m.path("created")),
        libc::ENOTDIR,
        "rmdir a file",
    );
    assert_errno(fs::remove_file(m.path("d")), libc::EISDIR, "unlink a dir");
    assert_errno(
        fs::remove_file(m.path("nothing")),
        libc::ENOENT,
        "unlink missing",
    );

    fs::remove_file(m.path("d/file")).unwrap();
    assert_errno(
        fs::metadata(m.path("d/file")),
        libc::ENOENT,
        "unlinked file is gone",
    );
    fs::remove_dir(m.path("d/sub")).unwrap();
    assert_eq!(nlink(&m.path("d")), 2, "rmdir lowers parent nlink");
    fs::remove_dir(m.path("d")).unwrap();
    assert_eq!(nlink(&m.mnt), root_links, "back to the original nlink");
    fs::remove_file(m.path("fifo")).unwrap();
    fs::remove_file(m.path("reg")).unwrap();
    assert_eq!(names(&m.mnt), vec!["created".to_string()]);

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// ----------------------------------------------------------------- rename

#[test]
fn rename_files() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("a"), b"AAA").unwrap();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    assert_errno(fs::metadata(m.path("a")), libc::ENOENT, "old name gone");
    assert_eq!(fs::read(m.path("b")).unwrap(), b"AAA", "plain rename");

    // Replace an existing file: its old content is gone, its inode freed.
    fs::write(m.path("c"), b"CCCCCC").unwrap();
    let b_ino = fs::metadata(m.path("b")).unwrap().ino();
    fs::rename(m.path("b"), m.path("c")).unwrap();
    assert_eq!(fs::read(m.path("c")).unwrap(), b"AAA", "replaced content");
    assert_eq!(fs::metadata(m.path("c")).unwrap().ino(), b_ino);
    assert_eq!(nlink(&m.path("c")), 1);
    assert_eq!(names(&m.mnt), vec!["c".to_string()]);

    // Across directories.
    fs::create_dir(m.path("d1")).unwrap();
    fs::create_dir(m.path("d2")).unwrap();
    fs::rename(m.path("c"), m.path("d1/c")).unwrap();
    fs::rename(m.path("d1/c"), m.path("d2/moved")).unwrap();
    assert_eq!(fs::read(m.path("d2/moved")).unwrap(), b"AAA");
    assert!(names(&m.path("d1")).is_empty());
    assert_eq!(names(&m.path("d2")), vec!["moved".to_string()]);

    // Renaming onto another link of the same inode does nothing.
    fs::hard_link(m.path("d2/moved"), m.path("d2/other")).unwrap();
    fs::rename(m.path("d2/moved"), m.path("d2/other")).unwrap();
    assert_eq!(
        names(&m.path("d2")),
        vec!["moved".to_string(), "other".to_string()],
        "rename between hard links of one inode is a no-op"
    );
    assert_eq!(nlink(&m.path("d2/other")), 2);

    // A file over a directory, and a directory over a file.
    fs::create_dir(m.path("dir")).unwrap();
    assert_errno(
        fs::rename(m.path("d2/moved"), m.path("dir")),
        libc::EISDIR,
        "rename file over directory",
    );
    assert_errno(
        fs::rename(m.path("dir"), m.path("d2/moved")),
        libc::ENOTDIR,
        "rename directory over file",
    );
    assert_errno(
        fs::rename(m.path("nope"), m.path("x")),
        libc::ENOENT,
        "rename missing",
    );

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn rename_directories() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::create_dir_all(m.path("p1/sub/deep")).unwrap();
    fs::write(m.path("p1/sub/deep/f"), b"data").unwrap();
    fs::create_dir(m.path("p2")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 3);
    assert_eq!(nlink(&m.path("p2")), 2);

    fs::rename(m.path("p1/sub"), m.path("p2/sub")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 2, "old parent loses a link");
    assert_eq!(nlink(&m.path("p2")), 3, "new parent gains a link");
    assert_eq!(fs::read(m.path("p2/sub/deep/f")).unwrap(), b"data");
    assert_eq!(
        fs::metadata(m.path("p2/sub/..")).unwrap().ino(),
        fs::metadata(m.path("p2")).unwrap().ino(),
        ".. of the moved directory"
    );

    // Same parent.
    fs::rename(m.path("p2/sub"), m.path("p2/renamed")).unwrap();
    assert_eq!(nlink(&m.path("p2")), 3);

    // Into its own subdirectory, or onto itself below.
    assert_errno(
        fs::rename(m.path("p2"), m.path("p2/renamed/deep/p2")),
        libc::EINVAL,
        "directory into its own subdirectory",
    );
    assert_errno(
        fs::rename(m.path("p2"), m.path("p2/x")),
        libc::EINVAL,
        "directory into itself",
    );

    // Over an empty directory (different parent): allowed, links adjust.
    fs::create_dir(m.path("p1/empty")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 3);
    fs::rename(m.path("p2/renamed"), m.path("p1/empty")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 3, "replaced subdir: same count");
    assert_eq!(nlink(&m.path("p2")), 2, "source parent lost a subdir");
    assert_eq!(fs::read(m.path("p1/empty/deep/f")).unwrap(), b"data");

    // Over an empty directory in the same parent.
    fs::create_dir(m.path("p1/e2")).unwrap();
    fs::create_dir(m.path("p1/e3")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 5);
    fs::rename(m.path("p1/e2"), m.path("p1/e3")).unwrap();
    assert_eq!(nlink(&m.path("p1")), 4, "one subdir fewer");

    // Over a non-empty directory.
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/x"), b"x").unwrap();
    assert_errno(
        fs::rename(m.path("p1/e3"), m.path("full")),
        libc::ENOTEMPTY,
        "directory over non-empty directory",
    );
    assert_eq!(fs::read(m.path("full/x")).unwrap(), b"x");

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn renameat2_noreplace_and_exchange() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("a"), b"A").unwrap();
    fs::write(m.path("b"), b"B").unwrap();

    assert_errno(
        renameat2(&m.path("a"), &m.path("b"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto existing",
    );
    assert_eq!(fs::read(m.path("a")).unwrap(), b"A");
    assert_eq!(fs::read(m.path("b")).unwrap(), b"B");
    renameat2(&m.path("a"), &m.path("c"), libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(fs::read(m.path("c")).unwrap(), b"A", "NOREPLACE onto new");

    // Exchange a file and a directory in one parent.
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/inner"), b"I").unwrap();
    let root_links = nlink(&m.mnt);
    renameat2(&m.path("c"), &m.path("dir"), libc::RENAME_EXCHANGE).unwrap();
    assert!(fs::metadata(m.path("c")).unwrap().is_dir(), "c is the dir");
    assert_eq!(fs::read(m.path("c/inner")).unwrap(), b"I");
    assert_eq!(fs::read(m.path("dir")).unwrap(), b"A", "dir is the file");
    assert_eq!(nlink(&m.mnt), root_links, "same parent: nlink unchanged");

    // Exchange a file and a directory across parents.
    fs::create_dir(m.path("p")).unwrap();
    fs::write(m.path("p/file"), b"F").unwrap();
    let (root_links, p_links) = (nlink(&m.mnt), nlink(&m.path("p")));
    assert_eq!(p_links, 2);
    renameat2(&m.path("p/file"), &m.path("c"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(m.path("c")).unwrap(), b"F");
    assert_eq!(fs::read(m.path("p/file/inner")).unwrap(), b"I");
    assert_eq!(nlink(&m.mnt), root_links - 1, "root lost a subdirectory");
    assert_eq!(nlink(&m.path("p")), p_links + 1, "p gained a subdirectory");
    assert_eq!(
        fs::metadata(m.path("p/file/..")).unwrap().ino(),
        fs::metadata(m.path("p")).unwrap().ino()
    );

    assert_errno(
        renameat2(&m.path("c"), &m.path("missing"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a missing target",
    );
    assert_errno(
        renameat2(&m.path("p"), &m.path("p/file/inner"), libc::RENAME_EXCHANGE),
        libc::EINVAL,
        "RENAME_EXCHANGE of a directory with something below it",
    );

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// --------------------------------------------------------- symlinks, links

#[test]
fn symlink_and_readlink() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("target"), b"T").unwrap();
    std::os::unix::fs::symlink("target", m.path("l")).unwrap();
    let st = fs::symlink_metadata(m.path("l")).unwrap();
    assert!(st.file_type().is_symlink(), "lstat shows a symlink");
    assert_eq!(st.len(), 6, "symlink size is the target length");
    assert_eq!(fs::read_link(m.path("l")).unwrap(), Path::new("target"));
    assert_eq!(fs::read(m.path("l")).unwrap(), b"T", "follows the link");

    std::os::unix::fs::symlink("/nowhere/at/all", m.path("dangling")).unwrap();
    assert_eq!(
        fs::read_link(m.path("dangling")).unwrap(),
        Path::new("/nowhere/at/all")
    );
    assert_errno(
        fs::metadata(m.path("dangling")),
        libc::ENOENT,
        "dangling link",
    );

    let long = "abcdefgh/".repeat(455);
    assert_eq!(long.len(), 4095);
    std::os::unix::fs::symlink(&long, m.path("long")).unwrap();
    assert_eq!(
        fs::read_link(m.path("long")).unwrap(),
        PathBuf::from(&long),
        "4095-byte target round-trips"
    );
    assert_eq!(fs::symlink_metadata(m.path("long")).unwrap().len(), 4095);

    let too_long = "y".repeat(4096);
    assert_errno(
        std::os::unix::fs::symlink(&too_long, m.path("toolong")),
        libc::ENAMETOOLONG,
        "4096-byte target",
    );
    assert_errno(
        std::os::unix::fs::symlink("x", m.path("l")),
        libc::EEXIST,
        "symlink over existing name",
    );

    m.remount_check_and_fsck(|m| {
        assert_eq!(
            fs::read_link(m.path("long")).unwrap(),
            PathBuf::from(&long),
            "long target after remount"
        );
        assert_eq!(fs::read_link(m.path("l")).unwrap(), Path::new("target"));
    });
}

/// The kernel keeps symlink targets (`FUSE_CACHE_SYMLINKS`): a name
/// replaced by another symlink (rename over it, unlink and symlink again)
/// resolves to the new target at once, a path through a symlink resolves
/// after each change, and after a remount.
#[test]
fn kept_symlink_targets_follow_replaced_names() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::write(m.path("a"), b"file a").unwrap();
    fs::write(m.path("b"), b"file b").unwrap();
    std::os::unix::fs::symlink("a", m.path("link")).unwrap();
    for _ in 0..3 {
        assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("a"));
        assert_eq!(fs::read(m.path("link")).unwrap(), b"file a");
    }
    // The daemon logs each readlink it answers: one for six reads.
    let ino = fs::symlink_metadata(m.path("link")).unwrap().ino();
    let asked = m.log_lines_ending(&format!("readlink: inode {ino}"));
    assert_eq!(asked, 1, "{}", m.log_text());
    std::os::unix::fs::symlink("b", m.path("other")).unwrap();
    fs::rename(m.path("other"), m.path("link")).unwrap();
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("b"));
    assert_eq!(fs::read(m.path("link")).unwrap(), b"file b");
    fs::remove_file(m.path("link")).unwrap();
    std::os::unix::fs::symlink("a", m.path("link")).unwrap();
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("a"));
    assert_eq!(fs::read(m.path("link")).unwrap(), b"file a");
    // A hard link to a symlink is the same inode, the same target.
    fs::hard_link(m.path("link"), m.path("link2")).unwrap();
    assert_eq!(fs::read_link(m.path("link2")).unwrap(), Path::new("a"));
    m.remount();
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("a"));
    assert_eq!(fs::read(m.path("link2")).unwrap(), b"file a");
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn hard_links() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("a"), b"first").unwrap();
    fs::create_dir(m.path("d")).unwrap();
    fs::hard_link(m.path("a"), m.path("d/b")).unwrap();
    assert_eq!(nlink(&m.path("a")), 2, "nlink via first name");
    assert_eq!(nlink(&m.path("d/b")), 2, "nlink via second name");
    assert_eq!(
        fs::metadata(m.path("a")).unwrap().ino(),
        fs::metadata(m.path("d/b")).unwrap().ino(),
        "one inode"
    );

    fs::write(m.path("d/b"), b"second version").unwrap();
    assert_eq!(
        fs::read(m.path("a")).unwrap(),
        b"second version",
        "data shared"
    );
    let f = OpenOptions::new().write(true).open(m.path("a")).unwrap();
    f.write_all_at(b"S", 0).unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("d/b")).unwrap(), b"Second version");

    assert_errno(
        fs::hard_link(m.path("d"), m.path("dlink")),
        libc::EPERM,
        "link to a directory",
    );
    assert_errno(
        fs::hard_link(m.path("a"), m.path("d/b")),
        libc::EEXIST,
        "link onto existing name",
    );

    fs::remove_file(m.path("a")).unwrap();
    assert_eq!(nlink(&m.path("d/b")), 1, "nlink after unlinking one name");
    assert_eq!(fs::read(m.path("d/b")).unwrap(), b"Second version");
    fs::hard_link(m.path("d/b"), m.path("again")).unwrap();

    m.remount_check_and_fsck(|m| {
        assert_eq!(nlink(&m.path("again")), 2);
        assert_eq!(fs::read(m.path("again")).unwrap(), b"Second version");
    });
}

// ------------------------------------------------------ open, read, write

/// A descriptor opened read-only sends no flush at its close
/// (`FOPEN_NOFLUSH`): it has nothing to write back or report. A writer's
/// close still flushes, also while a reader comes and goes, and what it
/// wrote is there after a remount.
#[test]
fn read_only_closes_send_no_flush_and_writers_still_do() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"first").unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    let flushes = |m: &Mounted| m.log_lines_ending(&format!("flush: inode {ino}"));
    let after_write = flushes(&m);
    assert!(after_write >= 1, "the writer's close flushed");
    for _ in 0..3 {
        assert_eq!(fs::read(&p).unwrap(), b"first");
    }
    assert_eq!(flushes(&m), after_write, "read-only closes flushed");

    let mut w = OpenOptions::new().write(true).open(&p).unwrap();
    w.write_all(b"second").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"second");
    assert_eq!(flushes(&m), after_write, "a reader's close beside a writer");
    drop(w);
    assert_eq!(flushes(&m), after_write + 1, "the writer's close");
    m.remount();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"second");
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn offset_writes_append_and_o_trunc() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"hello world").unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"WORLD", 6).unwrap();
    f.write_all_at(b"!", 20).unwrap();
    drop(f);
    let mut want = b"hello WORLD".to_vec();
    want.resize(20, 0);
    want.push(b'!');
    assert_eq!(fs::read(&p).unwrap(), want, "pwrite in place and past end");

    // O_APPEND: every write lands at the end, even after a seek.
    fs::write(m.path("log"), b"start").unwrap();
    let mut a = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    a.write_all(b"-1").unwrap();
    a.seek(SeekFrom::Start(0)).unwrap();
    a.write_all(b"-2").unwrap();
    // Another descriptor extends the file meanwhile.
    let other = OpenOptions::new().write(true).open(m.path("log")).unwrap();
    other.write_all_at(b"XY", 9).unwrap();
    drop(other);
    a.write_all(b"-3").unwrap();
    drop(a);
    assert_eq!(fs::read(m.path("log")).unwrap(), b"start-1-2XY-3");

    // O_TRUNC.
    fs::write(m.path("t"), vec![b'q'; 200_000]).unwrap();
    let mut t = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("t"))
        .unwrap();
    assert_eq!(t.metadata().unwrap().len(), 0, "O_TRUNC empties the file");
    t.write_all(b"new").unwrap();
    drop(t);
    assert_eq!(fs::read(m.path("t")).unwrap(), b"new");
    // Extending after O_TRUNC shows no old data.
    let t = OpenOptions::new().write(true).open(m.path("t")).unwrap();
    t.set_len(200_000).unwrap();
    drop(t);
    let data = fs::read(m.path("t")).unwrap();
    assert_eq!(&data[..3], b"new");
    assert!(
        data[3..].iter().all(|&b| b == 0),
        "no old data after O_TRUNC"
    );

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn sparse_file() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("sparse");
    let off = 10 << 20;
    let f = File::create(&p).unwrap();
    f.write_all_at(b"end", off).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), off + 3, "size");
    let mut f = File::open(&p).unwrap();
    let mut buf = vec![0xffu8; 1 << 20];
    f.read_exact_at(&mut buf, 5 << 20).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "hole reads zeros");
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all.len() as u64, off + 3);
    assert!(all[..off as usize].iter().all(|&b| b == 0));
    assert_eq!(&all[off as usize..], b"end");
    drop(f);
    let st = fresh_stat(&p);
    assert!(
        st.stx_blocks * 512 <= 64 * 1024,
        "a sparse 10 MiB file uses little space, st_blocks = {}",
        st.stx_blocks
    );
    m.remount_check_and_fsck(|m| {
        let st = fresh_stat(&m.path("sparse"));
        assert_eq!(st.stx_size, off + 3);
        assert!(st.stx_blocks * 512 <= 64 * 1024);
        let mut tail = [0u8; 5];
        File::open(m.path("sparse"))
            .unwrap()
            .read_exact_at(&mut tail, off - 2)
            .unwrap();
        assert_eq!(&tail, b"\0\0end");
    });
}

#[test]
fn writes_straddling_block_boundary() {
    require_fuse!();
    let m = Mounted::new(&[]);
    // Into a new file.
    let p = m.path("new");
    let f = File::create(&p).unwrap();
    f.write_all_at(b"abc", BS - 1).unwrap();
    drop(f);
    let data = fs::read(&p).unwrap();
    assert_eq!(data.len() as u64, BS + 2);
    assert!(data[..(BS - 1) as usize].iter().all(|&b| b == 0));
    assert_eq!(&data[(BS - 1) as usize..], b"abc");

    // Into existing data (read-modify-write of two stored blocks).
    let q = m.path("existing");
    let mut model = noise(3 * BS as usize, 7);
    fs::write(&q, &model).unwrap();
    let f = OpenOptions::new().write(true).open(&q).unwrap();
    for (off, bytes) in [
        (BS - 1, &b"XYZ"[..]),
        (2 * BS - 2, &b"1234"[..]),
        (0, &b"<"[..]),
        (3 * BS - 1, &b">>"[..]),
    ] {
        f.write_all_at(bytes, off).unwrap();
        let end = off as usize + bytes.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(bytes);
    }
    drop(f);
    assert_eq!(
        fs::read(&q).unwrap(),
        model,
        "content after straddling writes"
    );
    let mut mid = [0u8; 5];
    File::open(&q)
        .unwrap()
        .read_exact_at(&mut mid, BS - 2)
        .unwrap();
    assert_eq!(&mid, &model[(BS - 2) as usize..(BS + 3) as usize]);

    m.remount_check_and_fsck(|m| {
        assert_eq!(fs::read(m.path("existing")).unwrap(), model);
    });
}

#[test]
fn large_random_file_round_trips() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let data = noise(5 << 20, 42);
    fs::write(m.path("big"), &data).unwrap();
    assert_eq!(fs::read(m.path("big")).unwrap(), data, "before remount");
    let mut off = 0usize;
    let f = File::open(m.path("big")).unwrap();
    // Unaligned reads across block boundaries.
    while off < data.len() {
        let n = 100_003.min(data.len() - off);
        let mut buf = vec![0u8; n];
        f.read_exact_at(&mut buf, off as u64).unwrap();
        assert!(buf == data[off..off + n], "chunk at {off}");
        off += n;
    }
    drop(f);
    m.remount_check_and_fsck(|m| {
        assert!(
            fs::read(m.path("big")).unwrap() == data,
            "5 MiB of random bytes after remount"
        );
    });
}

#[test]
fn many_one_byte_writes() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let want = text(3000, 3);
    let mut f = File::create(m.path("f")).unwrap();
    for b in &want {
        assert_eq!(f.write(std::slice::from_ref(b)).unwrap(), 1);
    }
    drop(f);
    assert_eq!(fs::read(m.path("f")).unwrap(), want);
    // Overwrite every other byte in place, one at a time.
    let mut model = want.clone();
    let f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
    for i in (0..model.len()).step_by(2) {
        f.write_all_at(b"#", i as u64).unwrap();
        model[i] = b'#';
    }
    drop(f);
    m.remount_check_and_fsck(|m| {
        assert_eq!(fs::read(m.path("f")).unwrap(), model);
    });
}

#[test]
fn fsync_and_fsyncdir() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(&text(100_000, 1)).unwrap();
    f.sync_all().expect("fsync on a file");
    f.sync_data().expect("fdatasync on a file");
    drop(f);
    fs::create_dir(m.path("d")).unwrap();
    File::open(m.path("d"))
        .unwrap()
        .sync_all()
        .expect("fsync on a directory");
    File::open(&m.mnt)
        .unwrap()
        .sync_all()
        .expect("fsync on the root");
    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// ---------------------------------------------------------------- readdir

/// The kernel keeps a directory's listing across opens on a store
/// directory (the daemon answers opendir with ENOSYS, and the kernel then
/// opens directories with `FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR`): a listing
/// repeated unchanged is not asked of the daemon again, and every change
/// of the directory through
/// the mount (create, mkdir, symlink, link, mknod, rename in, out and
/// within, unlink, rmdir) shows in the very next listing, for a
/// directory of 2000 entries too (several replies' worth).
#[test]
fn cached_listings_show_every_change_through_the_mount() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let dir = m.path("d");
    let other = m.path("other");
    fs::create_dir(&dir).unwrap();
    fs::create_dir(&other).unwrap();
    let mut want: std::collections::BTreeSet<String> = (0..2000)
        .map(|i| format!("entry-with-a-long-name-{i:05}"))
        .collect();
    for n in &want {
        File::create(dir.join(n)).unwrap();
    }
    let listed = || {
        names(&dir)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(listed(), want);
    // The daemon logs each listing request it answers.
    let ino = fs::metadata(&dir).unwrap().ino();
    let asked =
        |m: &Mounted| m.log_lines_ending(&format!("readdir: directory {ino} from cookie 0"));
    let before = asked(&m);
    assert!(before > 0, "{}", m.log_text());
    assert_eq!(listed(), want, "a repeated listing");
    assert_eq!(asked(&m), before, "a repeated listing asked the daemon");

    // (what, the change, names it adds, names it removes)
    type Step<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<&'a str>, Vec<&'a str>);
    let steps: Vec<Step> = vec![
        (
            "create",
            Box::new(|| fs::write(dir.join("new-file"), b"x").unwrap()),
            vec!["new-file"],
            vec![],
        ),
        (
            "mkdir",
            Box::new(|| fs::create_dir(dir.join("new-dir")).unwrap()),
            vec!["new-dir"],
            vec![],
        ),
        (
            "symlink",
            Box::new(|| std::os::unix::fs::symlink("new-file", dir.join("new-link")).unwrap()),
            vec!["new-link"],
            vec![],
        ),
        (
            "link",
            Box::new(|| fs::hard_link(dir.join("new-file"), dir.join("hard")).unwrap()),
            vec!["hard"],
            vec![],
        ),
        (
            "mknod",
            Box::new(|| {
                let c = cpath(&dir.join("fifo"));
                // SAFETY: a valid C string.
                cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }).unwrap()
            }),
            vec!["fifo"],
            vec![],
        ),
        (
            "rename within",
            Box::new(|| fs::rename(dir.join("hard"), dir.join("renamed")).unwrap()),
            vec!["renamed"],
            vec!["hard"],
        ),
        (
            "rename in",
            Box::new(|| {
                fs::write(other.join("incoming"), b"i").unwrap();
                fs::rename(other.join("incoming"), dir.join("incoming")).unwrap()
            }),
            vec!["incoming"],
            vec![],
        ),
        (
            "rename out",
            Box::new(|| fs::rename(dir.join("incoming"), other.join("outgoing")).unwrap()),
            vec![],
            vec!["incoming"],
        ),
        (
            "unlink",
            Box::new(|| fs::remove_file(dir.join("entry-with-a-long-name-01000")).unwrap()),
            vec![],
            vec!["entry-with-a-long-name-01000"],
        ),
        (
            "rmdir",
            Box::new(|| fs::remove_dir(dir.join("new-dir")).unwrap()),
            vec![],
            vec!["new-dir"],
        ),
    ];
    for (what, change, added, removed) in steps {
        change();
        want.extend(added.iter().map(|s| s.to_string()));
        for r in removed {
            want.remove(r);
        }
        assert_eq!(listed(), want, "after {what}");
    }
    m.remount();
    assert_eq!(listed(), want, "after a remount");
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn readdir_lists_3000_entries_exactly_once() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let dir = m.path("many");
    fs::create_dir(&dir).unwrap();
    for i in 0..3000 {
        File::create(dir.join(format!("entry-{i:05}"))).unwrap();
    }
    let mut seen = HashSet::new();
    let mut count = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(seen.insert(name.clone()), "{name} listed twice");
        count += 1;
    }
    assert_eq!(count, 3000, "every entry listed");
    for i in 0..3000 {
        assert!(seen.contains(&format!("entry-{i:05}")), "entry {i} missing");
    }
    // File types come with the listing.
    fs::create_dir(dir.join("zz-subdir")).unwrap();
    let kinds: BTreeMap<String, bool> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.file_type().unwrap().is_dir(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 3001);
    assert_eq!(kinds.get("zz-subdir"), Some(&true));
    assert_eq!(kinds.get("entry-00000"), Some(&false));

    // Removing entries while iterating neither repeats nor skips entries
    // that were present until they were reached.
    let mut seen = HashSet::new();
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(seen.insert(name.clone()), "{name} repeated during removal");
        if e.file_type().unwrap().is_dir() {
            fs::remove_dir(e.path()).unwrap();
        } else {
            fs::remove_file(e.path()).unwrap();
        }
    }
    assert_eq!(seen.len(), 3001, "all entries reached while removing");
    assert!(names(&dir).is_empty(), "directory is empty afterwards");
    fs::remove_dir(&dir).unwrap();

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn readdir_lists_dot_and_dotdot() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::create_dir(m.path("d")).unwrap();
    let d = fs::metadata(m.path("d")).unwrap().ino();
    // Raw getdents through libc's readdir to see "." and "..".
    let c = cpath(&m.path("d"));
    // SAFETY: valid C string; the stream is closed below.
    let dirp = unsafe { libc::opendir(c.as_ptr()) };
    assert!(!dirp.is_null(), "opendir: {}", io::Error::last_os_error());
    let mut entries = Vec::new();
    loop {
        // SAFETY: dirp is an open stream.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (name, ino) = unsafe {
            (
                std::ffi::CStr::from_ptr((*ent).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
                (*ent).d_ino,
            )
        };
        entries.push((name, ino));
    }
    // SAFETY: dirp is an open stream.
    unsafe { libc::closedir(dirp) };
    entries.sort();
    assert_eq!(
        entries,
        vec![(".".to_string(), d), ("..".to_string(), 1)],
        "an empty directory lists . and .."
    );
}

// ----------------------------------------------------------------- statfs

#[test]
fn statfs_reports_sane_numbers() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let c = cpath(&m.mnt);
    // SAFETY: zeroed statvfs is a valid out-buffer.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }).unwrap();
    assert!(sv.f_blocks > 0, "f_blocks = {}", sv.f_blocks);
    assert!(sv.f_bsize > 0, "f_bsize = {}", sv.f_bsize);
    assert!(sv.f_frsize > 0, "f_frsize = {}", sv.f_frsize);
    assert_eq!(sv.f_namemax, 255, "f_namemax");
    assert!(sv.f_bfree <= sv.f_blocks && sv.f_bavail <= sv.f_blocks);
    assert!(sv.f_files > 0 && sv.f_ffree <= sv.f_files);
}

// ----------------------------------------------------------------- xattrs

#[test]
fn xattr_set_get_list_remove() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"x").unwrap();

    assert_errno(
        getxattr(&p, "user.test", 100),
        libc::ENODATA,
        "get missing attribute",
    );
    assert_eq!(xattr_names(&p), Vec::<Vec<u8>>::new(), "no attributes yet");

    setxattr(&p, "user.test", b"hello", 0).unwrap();
    assert_eq!(
        getxattr(&p, "user.test", 0).unwrap().0,
        5,
        "size-0 get returns the length"
    );
    assert_eq!(
        getxattr(&p, "user.test", 100).unwrap(),
        (5, b"hello".to_vec())
    );
    assert_errno(
        getxattr(&p, "user.test", 2),
        libc::ERANGE,
        "too-small buffer",
    );
    assert_eq!(xattr_names(&p), vec![b"user.test".to_vec()], "listed");
    let (len, _) = listxattr_raw(&p, 0).unwrap();
    assert_eq!(len, "user.test\0".len(), "size-0 list returns the length");
    assert_errno(listxattr_raw(&p, 3), libc::ERANGE, "too-small list buffer");

    assert_errno(
        setxattr(&p, "user.test", b"other", libc::XATTR_CREATE),
        libc::EEXIST,
        "XATTR_CREATE on existing",
    );
    assert_eq!(xattr_value(&p, "user.test").unwrap(), b"hello");
    assert_errno(
        setxattr(&p, "user.missing", b"v", libc::XATTR_REPLACE),
        libc::ENODATA,
        "XATTR_REPLACE on missing",
    );
    setxattr(&p, "user.test", b"replaced value", libc::XATTR_REPLACE).unwrap();
    assert_eq!(xattr_value(&p, "user.test").unwrap(), b"replaced value");
    setxattr(&p, "user.new", b"", libc::XATTR_CREATE).unwrap();
    assert_eq!(getxattr(&p, "user.new", 0).unwrap().0, 0, "empty value");
    let binary: Vec<u8> = (0..=255u8).collect();
    setxattr(&p, "user.bin", &binary, 0).unwrap();
    assert_eq!(xattr_value(&p, "user.bin").unwrap(), binary);
    assert_eq!(
        xattr_names(&p),
        vec![
            b"user.bin".to_vec(),
            b"user.new".to_vec(),
            b"user.test".to_vec()
        ]
    );

    removexattr(&p, "user.test").unwrap();
    assert_errno(
        getxattr(&p, "user.test", 100),
        libc::ENODATA,
        "get after remove",
    );
    assert_errno(
        removexattr(&p, "user.test"),
        libc::ENODATA,
        "remove missing",
    );

    // On a directory too.
    fs::create_dir(m.path("d")).unwrap();
    setxattr(&m.path("d"), "user.dir", b"on a dir", 0).unwrap();
    assert_eq!(xattr_value(&m.path("d"), "user.dir").unwrap(), b"on a dir");

    m.remount_check_and_fsck(|m| {
        let p = m.path("f");
        assert_eq!(
            xattr_names(&p),
            vec![b"user.bin".to_vec(), b"user.new".to_vec()]
        );
        assert_eq!(xattr_value(&p, "user.bin").unwrap(), binary);
        assert_eq!(xattr_value(&m.path("d"), "user.dir").unwrap(), b"on a dir");
    });
}

/// A write or a change of owner removes a file's capability
/// (`security.capability`), as on the kernel's own filesystems, whichever
/// way the file was opened: a create's write-only handle writes past the
/// page cache, where the kernel leaves the removal to the filesystem.
/// Each file has its capability set while open, after the core has seen
/// that it had none.
#[test]
fn writes_and_chown_remove_a_files_capability() {
    use std::io::Write;
    use std::os::unix::fs::{fchown, OpenOptionsExt};
    require_fuse!();
    let m = Mounted::new(&[]);
    const CAP: &str = "security.capability";
    // VFS_CAP_REVISION_2 with CAP_NET_RAW permitted: what setcap writes.
    let mut cap = 0x0200_0000u32.to_le_bytes().to_vec();
    cap.extend((1u32 << 13).to_le_bytes());
    cap.extend([0u8; 12]);
    let has_cap = |p: &Path| xattr_value(p, CAP).is_ok();
    for how in [
        "created",
        "opened write-only",
        "opened read-write",
        "opened to append",
    ] {
        for change in ["write", "chown"] {
            let p = m.path(&format!("{how} {change}").replace(' ', "-"));
            let mut f = match how {
                "created" => fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o755)
                    .open(&p)
                    .unwrap(),
                _ => {
                    fs::write(&p, b"old").unwrap();
                    let mut o = fs::OpenOptions::new();
                    match how {
                        "opened write-only" => o.write(true),
                        "opened read-write" => o.read(true).write(true),
                        _ => o.append(true),
                    };
                    o.open(&p).unwrap()
                }
            };
            f.write_all(b"first").unwrap();
            fchown(&f, Some(0), Some(0)).unwrap();
            assert_errno(getxattr(&p, CAP, 0), libc::ENODATA, "no capability yet");
            setxattr(&p, CAP, &cap, 0).unwrap();
            assert_eq!(xattr_value(&p, CAP).unwrap(), cap, "{how}: set");
            match change {
                "write" => f.write_all(b"second").unwrap(),
                _ => fchown(&f, Some(1), Some(1)).unwrap(),
            }
            drop(f);
            assert!(!has_cap(&p), "{how}: a {change} keeps the capability");
        }
    }
}

// ----------------------------------------------------------------- access

#[test]
fn access_as_root() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    access(&p, libc::F_OK).unwrap();
    access(&p, libc::R_OK).unwrap();
    access(&p, libc::W_OK).unwrap();
    access(&p, libc::R_OK | libc::W_OK).unwrap();
    assert_errno(
        access(&p, libc::X_OK),
        libc::EACCES,
        "root cannot execute a file without any x bit",
    );

    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    access(&p, libc::R_OK | libc::W_OK).expect("root reads and writes mode 000");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o010)).unwrap();
    access(&p, libc::X_OK).expect("one x bit is enough for root");

    fs::create_dir(m.path("d")).unwrap();
    fs::set_permissions(m.path("d"), fs::Permissions::from_mode(0o000)).unwrap();
    access(&m.path("d"), libc::R_OK | libc::W_OK | libc::X_OK).expect("root searches any dir");
    // And really can: create inside a mode-000 directory.
    fs::write(m.path("d/inside"), b"y").unwrap();

    assert_errno(access(&m.path("gone"), libc::F_OK), libc::ENOENT, "F_OK");
}

// ------------------------------------------------------ open but unlinked

#[test]
fn open_but_unlinked_file() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let p = m.path("victim");
    fs::write(&p, text(100_000, 9)).unwrap();
    fs::write(m.path("bystander"), b"b").unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    fs::remove_file(&p).unwrap();

    assert_eq!(
        names(&m.mnt),
        vec!["bystander".to_string()],
        "unlinked name is not listed"
    );
    assert_errno(fs::metadata(&p), libc::ENOENT, "stat of the unlinked name");
    let mut buf = vec![0u8; 100_000];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, text(100_000, 9), "data still readable through the fd");
    f.write_all_at(b"still writable", 150_000).unwrap();
    let mut back = [0u8; 14];
    f.read_exact_at(&mut back, 150_000).unwrap();
    assert_eq!(&back, b"still writable");
    f.sync_all().unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.nlink(), 0, "fstat shows nlink 0");
    assert_eq!(st.len(), 150_014, "fstat shows the new size");
    // A new file can take the old name meanwhile.
    fs::write(&p, b"new").unwrap();
    drop(f);

    assert_eq!(fs::read(&p).unwrap(), b"new");
    m.unmount();
    assert_fsck_clean(&m);
    m.mount(&[]);
    assert_eq!(fs::read(&p).unwrap(), b"new");
    m.unmount();
    assert_fsck_clean(&m);
    let json = crate::common::stats_json(&m.store);
    assert!(
        json["files"] == 2 && json["logical_bytes"] == 4,
        "the unlinked file's inode and data are gone: {json}"
    );
}

// ---------------------------------------------------------- name lengths

#[test]
fn names_longer_than_255_bytes() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let n255 = "n".repeat(255);
    let n256 = "n".repeat(256);
    fs::write(m.path("src"), b"s").unwrap();

    assert_errno(
        File::create(m.path(&n256)),
        libc::ENAMETOOLONG,
        "create 256",
    );
    assert_errno(
        fs::create_dir(m.path(&n256)),
        libc::ENAMETOOLONG,
        "mkdir 256",
    );
    assert_errno(
        fs::rename(m.path("src"), m.path(&n256)),
        libc::ENAMETOOLONG,
        "rename to 256",
    );
    assert_errno(
        std::os::unix::fs::symlink("src", m.path(&n256)),
        libc::ENAMETOOLONG,
        "symlink named 256",
    );
    assert_errno(
        fs::hard_link(m.path("src"), m.path(&n256)),
        libc::ENAMETOOLONG,
        "link named 256",
    );
    let c = cpath(&m.path(&n256));
    // SAFETY: valid C string.
    assert_errno(
        cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }),
        libc::ENAMETOOLONG,
        "mkfifo 256",
    );
    assert_errno(
        fs::metadata(m.path(&n256)),
        libc::ENAMETOOLONG,
        "lookup 256",
    );

    // Exactly 255 bytes works everywhere (multi-byte UTF-8 counts bytes).
    fs::write(m.path(&n255), b"f").unwrap();
    fs::remove_file(m.path(&n255)).unwrap();
    fs::create_dir(m.path(&n255)).unwrap();
    let utf = "é".repeat(127) + "x"; // 255 bytes
    assert_eq!(utf.len(), 255);
    fs::rename(m.path("src"), m.path(&n255).join(&utf)).unwrap();
    std::os::unix::fs::symlink("target", m.path(&n255).join(&n255)).unwrap();
    assert_eq!(
        names(&m.path(&n255)),
        {
            let mut v = vec![n255.clone(), utf.clone()];
            v.sort();
            v
        },
        "255-byte names are listed"
    );
    assert_eq!(fs::read(m.path(&n255).join(&utf)).unwrap(), b"s");

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// ------------------------------------------------------------ persistence

#[derive(Debug, Clone, PartialEq)]
struct Node {
    kind: u32,
    ino: u64,
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// File content or symlink target.
    content: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let st = fs::symlink_metadata(&path).unwrap();
            let kind = st.mode() & libc::S_IFMT;
            let content = match kind {
                libc::S_IFREG => fs::read(&path).unwrap(),
                libc::S_IFLNK => fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
                _ => Vec::new(),
            };
            if kind == libc::S_IFDIR {
                stack.push(path.clone());
            }
            let xattrs = xattr_names(&path)
                .into_iter()
                .map(|n| {
                    let name = String::from_utf8(n.clone()).unwrap();
                    (n, xattr_value(&path, &name).unwrap())
                })
                .collect();
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                Node {
                    kind,
                    ino: st.ino(),
                    mode: st.mode(),
                    nlink: st.nlink(),
                    uid: st.uid(),
                    gid: st.gid(),
                    size: st.len(),
                    mtime: (st.mtime(), st.mtime_nsec()),
                    ctime: (st.ctime(), st.ctime_nsec()),
                    content,
                    xattrs,
                },
            );
        }
    }
    out
}

#[test]
fn tree_persists_across_remount() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::create_dir(m.path("e")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", b"1".to_vec()),
        ("a/blk-1", text(BS as usize - 1, 1)),
        ("a/blk", noise(BS as usize, 2)),
        ("a/blk+1", text(BS as usize + 1, 3)),
        ("a/b/big", noise(300_000, 4)),
        ("e/text", text(1_000_000, 5)),
        ("a/b/c/two-blocks", text(2 * BS as usize, 6)),
    ];
    for (name, data) in &files {
        fs::write(m.path(name), data).unwrap();
    }
    std::os::unix::fs::symlink("../one", m.path("a/link")).unwrap();
    std::os::unix::fs::symlink("/absolute/dangling", m.path("e/dangling")).unwrap();
    fs::hard_link(m.path("one"), m.path("e/hard")).unwrap();
    let fifo = cpath(&m.path("e/fifo"));
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }).unwrap();

    setxattr(&m.path("one"), "user.k1", b"v1", 0).unwrap();
    setxattr(&m.path("a"), "user.dirattr", b"\0bin\xffary\0", 0).unwrap();
    setxattr(&m.path("a/blk"), "user.empty", b"", 0).unwrap();
    fs::set_permissions(m.path("a/blk"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(m.path("a/b"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(m.path("one"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(m.path("e"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(m.path("a/blk+1"), Some(1000), Some(100)).unwrap();
    for (i, name) in [
        "empty", "one", "a/blk-1", "a/blk", "a/b/big", "a/link", "a/b/c", "a",
    ]
    .iter()
    .enumerate()
    {
        let t = ts(1_600_000_000 + i as i64 * 1000, 100_000_000 + i as i64);
        utimens(&m.path(name), t, t).unwrap();
    }

    let before = snapshot(&m.mnt);
    assert_eq!(before.len(), 16, "entries in the tree: {:?}", before.keys());
    assert_eq!(
        before[Path::new("a/blk")].mtime,
        (1_600_003_000, 100_000_003)
    );
    assert_eq!(before[Path::new("one")].nlink, 2);
    for (name, data) in &files {
        assert!(
            before[Path::new(name)].content == *data,
            "{name} content before remount"
        );
    }

    m.remount();
    let after = snapshot(&m.mnt);
    for (path, node) in &before {
        let other = after
            .get(path)
            .unwrap_or_else(|| panic!("{} missing after remount", path.display()));
        assert!(
            node == other,
            "{} differs after remount:\nbefore {:?}\nafter  {:?}",
            path.display(),
            brief(node),
            brief(other)
        );
    }
    assert_eq!(before.len(), after.len(), "no extra entries after remount");
    m.unmount();
    assert_fsck_clean(&m);
}

/// A node with its content cut short, for messages.
fn brief(n: &Node) -> Node {
    Node {
        content: n.content.iter().take(40).copied().collect(),
        ..n.clone()
    }
}

// --------------------------------------------------------- space (st_blocks)

#[test]
fn compressible_file_uses_fewer_blocks() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("text");
    let data = text(1 << 20, 11);
    fs::write(&p, &data).unwrap();
    let st = fresh_stat(&p);
    assert_eq!(st.stx_size, 1 << 20, "st_size is the logical size");
    assert!(
        st.stx_blocks > 0 && st.stx_blocks * 512 < 256 * 1024,
        "1 MiB of text should take well under 1 MiB, st_blocks = {} ({} bytes)",
        st.stx_blocks,
        st.stx_blocks * 512
    );
    let out = Command::new("du")
        .args(["-k", "--apparent-size"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1024\t"));

    // Random data does not compress: st_blocks covers it.
    fs::write(m.path("noise"), noise(1 << 20, 12)).unwrap();
    let st = fresh_stat(&m.path("noise"));
    assert!(
        st.stx_blocks * 512 >= 1 << 20,
        "incompressible data is stored raw, st_blocks = {}",
        st.stx_blocks
    );
    m.remount_check_and_fsck(|m| {
        let st = fresh_stat(&m.path("text"));
        assert_eq!(st.stx_size, 1 << 20);
        assert!(st.stx_blocks * 512 < 256 * 1024, "after remount too");
    });
}

// ------------------------------------------------------------ concurrency

#[test]
fn concurrent_writers_and_readers() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let shared = noise(2 << 20, 100);
    fs::write(m.path("shared"), &shared).unwrap();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..8u64 {
            let path = m.path(&format!("w{t}"));
            handles.push(s.spawn(move || {
                let data = if t % 2 == 0 {
                    noise(1 << 20, t)
                } else {
                    text(1 << 20, t * 1000)
                };
                let mut f = File::create(&path).unwrap();
                for chunk in data.chunks(100_000) {
                    f.write_all(chunk).unwrap();
                }
                drop(f);
                for _ in 0..2 {
                    assert!(fs::read(&path).unwrap() == data, "writer {t} read back");
                }
            }));
        }
        for r in 0..4u64 {
            let path = m.path("shared");
            let shared = &shared;
            handles.push(s.spawn(move || {
                for round in 0..4 {
                    let f = File::open(&path).unwrap();
                    let mut buf = vec![0u8; 300_001];
                    let mut off = (r * 77_777 + round * 13) as usize % shared.len();
                    for _ in 0..8 {
                        let n = buf.len().min(shared.len() - off);
                        f.read_exact_at(&mut buf[..n], off as u64).unwrap();
                        assert!(buf[..n] == shared[off..off + n], "reader {r} at {off}");
                        off = (off + 500_009) % shared.len();
                    }
                    assert!(fs::read(&path).unwrap() == *shared, "reader {r} whole");
                }
            }));
        }
        for h in handles {
            h.join().expect("thread panicked");
        }
    });
    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// ------------------------------------------------------------------ tools

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cp_diff_and_tar_round_trip() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let src = m.dir.path().join("src-tree");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir(src.join("empty-dir")).unwrap();
    fs::write(src.join("small.txt"), b"hello\n").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("sub/text"), text(200_000, 1)).unwrap();
    fs::write(src.join("sub/deeper/noise"), noise(150_000, 2)).unwrap();
    fs::write(src.join("sub/deeper/block"), text(BS as usize, 3)).unwrap();
    std::os::unix::fs::symlink("sub/text", src.join("link")).unwrap();

    let copy = m.path("copy");
    run(Command::new("cp").arg("-r").arg(&src).arg(&copy));
    run(Command::new("diff").arg("-r").arg(&src).arg(&copy));
    assert!(fs::symlink_metadata(copy.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());

    let tar = m.path("t.tar");
    run(Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&m.mnt)
        .arg("copy"));
    assert!(fs::metadata(&tar).unwrap().len() > 350_000);
    let x = m.path("x");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("xf").arg(&tar).arg("-C").arg(&x));
    run(Command::new("diff")
        .arg("-r")
        .arg(&copy)
        .arg(x.join("copy")));
    run(Command::new("diff").arg("-r").arg(&src).arg(x.join("copy")));
    // tar restores mtimes exactly (to the second at least).
    let a = fs::metadata(copy.join("sub/text")).unwrap();
    let b = fs::metadata(x.join("copy/sub/text")).unwrap();
    assert_eq!(a.mtime(), b.mtime(), "tar restored the mtime");
    assert_eq!(a.mode(), b.mode(), "tar restored the mode");

    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

// ------------------------------------------------- further edge cases

#[test]
fn o_trunc_with_read_only_access_truncates() {
    require_fuse!();
    // Linux truncates on open(O_RDONLY | O_TRUNC) when the caller may write
    // (ext4, tmpfs, ...); the kernel leaves that to the filesystem's open
    // when FUSE_ATOMIC_O_TRUNC is negotiated.
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, vec![b'x'; 100_000]).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_TRUNC)
        .open(&p)
        .unwrap();
    drop(f);
    assert_eq!(fresh_stat(&p).stx_size, 0, "size after O_RDONLY|O_TRUNC");
    assert_eq!(fs::read(&p).unwrap(), b"", "content after O_RDONLY|O_TRUNC");
}

#[test]
fn o_trunc_while_another_descriptor_has_unwritten_data() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    let a = File::create(&p).unwrap();
    a.write_all_at(&vec![b'a'; 100_000], 0).unwrap();
    let b = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(fresh_stat(&p).stx_size, 0, "O_TRUNC wins over dirty data");
    b.write_all_at(b"bb", 0).unwrap();
    drop(b);
    drop(a);
    assert_eq!(fs::read(&p).unwrap(), b"bb", "old data must not reappear");
    m.remount_check_and_fsck(|m| {
        assert_eq!(fs::read(m.path("f")).unwrap(), b"bb");
    });
}

#[test]
fn two_descriptors_see_each_others_writes() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    let w = File::create(&p).unwrap();
    w.write_all_at(&text(200_000, 1), 0).unwrap();
    // Not yet closed: a second descriptor reads the written data.
    let r = File::open(&p).unwrap();
    let mut buf = vec![0u8; 200_000];
    r.read_exact_at(&mut buf, 0).unwrap();
    assert!(
        buf == text(200_000, 1),
        "unwritten data visible to a reader"
    );
    assert_eq!(r.metadata().unwrap().len(), 200_000);
    drop(w);
    drop(r);
}

#[test]
fn rename_over_open_file_keeps_it_until_close() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::write(m.path("old"), b"old content").unwrap();
    fs::write(m.path("new"), b"new content").unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("old"))
        .unwrap();
    fs::rename(m.path("new"), m.path("old")).unwrap();
    assert_eq!(fs::read(m.path("old")).unwrap(), b"new content");
    let mut buf = [0u8; 11];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"old content", "replaced file still readable");
    f.write_all_at(&text(200_000, 2), 11).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    drop(f);
    assert_eq!(names(&m.mnt), vec!["old".to_string()]);
    m.unmount();
    assert_fsck_clean(&m);
    let json = crate::common::stats_json(&m.store);
    assert!(
        json["files"] == 1 && json["logical_bytes"] == 11,
        "the replaced file is freed at close: {json}"
    );
}

#[test]
fn setgid_directory_inheritance() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let d = m.path("shared");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, None, Some(1234)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2775)).unwrap();
    fs::write(d.join("file"), b"x").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    let file = fs::metadata(d.join("file")).unwrap();
    assert_eq!(file.gid(), 1234, "file inherits the directory's group");
    let sub = fs::metadata(d.join("sub")).unwrap();
    assert_eq!(sub.gid(), 1234, "subdirectory inherits the group");
    assert_ne!(
        sub.mode() & libc::S_ISGID,
        0,
        "subdirectory inherits S_ISGID"
    );
}

#[test]
fn device_nodes_and_sockets() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let c = cpath(&m.path("null"));
    let dev = libc::makedev(1, 3);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, dev) }).unwrap();
    let st = fs::symlink_metadata(m.path("null")).unwrap();
    assert!(st.file_type().is_char_device(), "character device");
    assert_eq!(st.rdev(), dev, "device number");
    let c = cpath(&m.path("blk"));
    let dev = libc::makedev(7, 1);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev) }).unwrap();
    let st = fs::symlink_metadata(m.path("blk")).unwrap();
    assert!(st.file_type().is_block_device(), "block device");
    assert_eq!(st.rdev(), dev);

    let sock = std::os::unix::net::UnixListener::bind(m.path("sock")).unwrap();
    assert!(fs::symlink_metadata(m.path("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    drop(sock);

    m.remount_check_and_fsck(|m| {
        let st = fs::symlink_metadata(m.path("null")).unwrap();
        assert_eq!(st.rdev(), libc::makedev(1, 3), "rdev after remount");
        assert!(fs::symlink_metadata(m.path("sock"))
            .unwrap()
            .file_type()
            .is_socket());
    });
}

#[test]
fn file_size_limits_and_far_offsets() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("far");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let tib = 1u64 << 40;
    f.write_all_at(b"far away", tib).unwrap();
    assert_eq!(f.metadata().unwrap().len(), tib + 8);
    let mut buf = [0xffu8; 16];
    f.read_exact_at(&mut buf, tib - 8).unwrap();
    assert_eq!(&buf, b"\0\0\0\0\0\0\0\0far away", "1 TiB offset");
    assert_errno(
        f.write_all_at(b"x", 1 << 61),
        libc::EFBIG,
        "write past the 2^60 size limit",
    );
    assert_errno(f.set_len(1 << 61), libc::EFBIG, "truncate past the limit");
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), tib + 8);
    m.remount_check_and_fsck(|m| {
        let mut buf = [0u8; 8];
        File::open(m.path("far"))
            .unwrap()
            .read_exact_at(&mut buf, tib)
            .unwrap();
        assert_eq!(&buf, b"far away");
    });
}

#[test]
fn overwriting_with_zeros_frees_space() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, noise(4 * BS as usize, 5)).unwrap();
    let full = fresh_stat(&p).stx_blocks;
    assert!(full * 512 >= 4 * BS, "noise is stored raw: {full}");
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&vec![0u8; 2 * BS as usize], BS).unwrap();
    drop(f);
    let after = fresh_stat(&p).stx_blocks;
    assert!(
        after * 512 <= 2 * BS + 1024,
        "two zeroed blocks are not stored: {full} -> {after}"
    );
    let data = fs::read(&p).unwrap();
    assert!(data[BS as usize..3 * BS as usize].iter().all(|&b| b == 0));
    assert_eq!(
        &data[..BS as usize],
        &noise(4 * BS as usize, 5)[..BS as usize]
    );
    m.remount_check_and_fsck(|_| {});
}

#[test]
fn write_larger_than_dirty_limit() {
    require_fuse!();
    // 40 MiB through one descriptor exceeds the 32 MiB dirty budget, so
    // data is written back while the file is still being written.
    let m = Mounted::new(&[]);
    let p = m.path("big");
    let chunk = text(1 << 20, 0);
    let mut f = File::create(&p).unwrap();
    for i in 0..40u8 {
        let mut c = chunk.clone();
        c[0] = i;
        f.write_all(&c).unwrap();
    }
    // Rewrite part of the first (already written back) megabyte.
    f.write_all_at(b"REWRITTEN", 1000).unwrap();
    drop(f);
    let check = |p: &Path| {
        let data = fs::read(p).unwrap();
        assert_eq!(data.len(), 40 << 20);
        for i in 0..40usize {
            let c = &data[i << 20..(i + 1) << 20];
            assert_eq!(c[0], i as u8, "chunk {i} marker");
            if i == 0 {
                assert_eq!(&c[1000..1009], b"REWRITTEN");
                assert!(c[1009..] == chunk[1009..]);
            } else {
                assert!(c[1..] == chunk[1..], "chunk {i}");
            }
        }
    };
    check(&p);
    m.remount_check_and_fsck(|m| check(&m.path("big")));
}

#[test]
fn shared_mmap_writes_persist() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("mapped");
    fs::write(&p, vec![b'.'; 3 * BS as usize]).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let len = 3 * BS as usize;
    use std::os::fd::AsRawFd;
    // SAFETY: mapping an open descriptor of a file at least `len` long.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        ptr,
        libc::MAP_FAILED,
        "mmap: {}",
        io::Error::last_os_error()
    );
    // SAFETY: ptr maps len bytes, readable and writable.
    let map = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) };
    assert!(map.iter().all(|&b| b == b'.'), "mapped content");
    map[10..15].copy_from_slice(b"hello");
    map[BS as usize - 2..BS as usize + 2].copy_from_slice(b"SPAN");
    // SAFETY: ptr/len as mapped above.
    assert_eq!(unsafe { libc::msync(ptr, len, libc::MS_SYNC) }, 0);
    map[len - 1] = b'!';
    // SAFETY: as above; the slice is not used afterwards.
    assert_eq!(unsafe { libc::munmap(ptr, len) }, 0);
    drop(f);
    let mut want = vec![b'.'; len];
    want[10..15].copy_from_slice(b"hello");
    want[BS as usize - 2..BS as usize + 2].copy_from_slice(b"SPAN");
    want[len - 1] = b'!';
    assert!(fs::read(&p).unwrap() == want, "mmap writes visible");
    m.remount_check_and_fsck(|m| {
        assert!(
            fs::read(m.path("mapped")).unwrap() == want,
            "mmap writes persisted"
        );
    });
}

/// A write-only descriptor's writes show at once to a descriptor that has
/// the pages cached and to a shared mapping of them, the size they extend
/// the file to as well; bytes the mapping dirtied before reach the file
/// first and the write lands over them. (Written while trying
/// `FOPEN_DIRECT_IO` for write-only opens, which passed it too; see
/// docs/DESIGN.md, "What the kernel caches", for why it was left out.)
#[test]
fn write_only_descriptors_and_cached_readers_agree() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    let page = 4096usize;
    fs::write(&p, vec![b'a'; 3 * page]).unwrap();
    let reader = File::open(&p).unwrap();
    let mut seen = vec![0u8; 3 * page];
    reader.read_exact_at(&mut seen, 0).unwrap();
    assert!(seen.iter().all(|&b| b == b'a'));
    let rw = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    use std::os::fd::AsRawFd;
    let len = 3 * page;
    // SAFETY: mapping an open descriptor of a file `len` long.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            rw.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "{}", io::Error::last_os_error());
    // SAFETY: ptr maps len bytes, readable and writable.
    let map = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) };
    assert_eq!(map[page], b'a');
    // A dirty page the mapping has not written back yet.
    map[2 * page..2 * page + 6].copy_from_slice(b"mapped");

    let writer = OpenOptions::new().write(true).open(&p).unwrap();
    writer.write_all_at(&[b'b'; 4096], page as u64).unwrap();
    writer.write_all_at(b"tail", len as u64).unwrap();
    // Over part of the page the mapping dirtied: the mapping's bytes
    // reach the file first, the write's land over them.
    writer.write_all_at(b"DIRECT", 2 * page as u64 + 3).unwrap();
    assert_eq!(&map[2 * page..2 * page + 9], b"mapDIRECT");
    let mut mid = vec![0u8; page];
    reader.read_exact_at(&mut mid, page as u64).unwrap();
    assert!(mid.iter().all(|&b| b == b'b'), "the reader's cached page");
    assert!(
        map[page..2 * page].iter().all(|&b| b == b'b'),
        "the mapping"
    );
    assert_eq!(reader.metadata().unwrap().len(), len as u64 + 4);
    let mut tail = [0u8; 4];
    reader.read_exact_at(&mut tail, len as u64).unwrap();
    assert_eq!(&tail, b"tail");

    // SAFETY: ptr/len as mapped above; the slice is not used afterwards.
    assert_eq!(unsafe { libc::msync(ptr, len, libc::MS_SYNC) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::munmap(ptr, len) }, 0);
    drop((reader, rw, writer));
    let mut want = vec![b'a'; len];
    want[page..2 * page].fill(b'b');
    want[2 * page..2 * page + 9].copy_from_slice(b"mapDIRECT");
    want.extend_from_slice(b"tail");
    assert!(fs::read(&p).unwrap() == want, "after close");
    m.remount_check_and_fsck(|m| assert!(fs::read(m.path("f")).unwrap() == want, "remounted"));
}

#[test]
fn more_xattr_cases() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"x").unwrap();
    let big = noise(65536, 1);
    setxattr(&p, "user.big", &big, 0).expect("64 KiB value");
    assert_eq!(xattr_value(&p, "user.big").unwrap(), big);
    setxattr(&p, "trusted.t", b"root only", 0).expect("trusted. as root");
    assert_eq!(xattr_value(&p, "trusted.t").unwrap(), b"root only");
    setxattr(&p, "security.s", b"sec", 0).expect("security. namespace");
    assert_eq!(xattr_value(&p, "security.s").unwrap(), b"sec");
    assert_errno(
        setxattr(&p, "system.posix_acl_access", b"\x02\0\0\0", 0),
        libc::EOPNOTSUPP,
        "POSIX ACLs are not supported",
    );
    for i in 0..50 {
        setxattr(&p, &format!("user.n{i:02}"), format!("{i}").as_bytes(), 0).unwrap();
    }
    let names = xattr_names(&p);
    assert_eq!(names.len(), 53, "all attributes listed");
    // Attributes follow the inode, not the name, and go with it.
    fs::hard_link(&p, m.path("g")).unwrap();
    assert_eq!(xattr_value(&m.path("g"), "user.n07").unwrap(), b"7");
    fs::remove_file(&p).unwrap();
    fs::remove_file(m.path("g")).unwrap();
    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn times_change_on_modification() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("f"), b"x").unwrap();
    let old = ts(1_000_000_000, 0);
    utimens(&d, old, old).unwrap();
    utimens(&d.join("f"), old, old).unwrap();

    let mtime = |p: &Path| fresh_stat(p).stx_mtime.tv_sec;
    let ctime = |p: &Path| fresh_stat(p).stx_ctime.tv_sec;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 2;

    fs::write(d.join("g"), b"y").unwrap();
    assert!(mtime(&d) >= now, "create updates the directory mtime");
    utimens(&d, old, old).unwrap();
    fs::rename(d.join("g"), d.join("h")).unwrap();
    assert!(mtime(&d) >= now, "rename updates the directory mtime");
    utimens(&d, old, old).unwrap();
    fs::remove_file(d.join("h")).unwrap();
    assert!(mtime(&d) >= now, "unlink updates the directory mtime");

    let f = d.join("f");
    assert!(ctime(&f) >= now, "utimensat updated ctime");
    let w = OpenOptions::new().write(true).open(&f).unwrap();
    w.write_all_at(b"z", 0).unwrap();
    drop(w);
    assert!(mtime(&f) >= now, "write updates the file mtime");
    utimens(&f, old, old).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(mtime(&f), 1_000_000_000, "chmod keeps mtime");
    assert!(ctime(&f) >= now, "chmod updates ctime");
    OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(mtime(&f) >= now, "truncate updates mtime");
}

#[test]
fn concurrent_creates_in_one_directory() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::create_dir(m.path("d")).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let dir = m.path("d");
            s.spawn(move || {
                for i in 0..150 {
                    let p = dir.join(format!("t{t}-{i}"));
                    if i % 10 == 0 {
                        fs::create_dir(&p).unwrap();
                    } else {
                        fs::write(&p, format!("{t}/{i}")).unwrap();
                    }
                    if i % 7 == 0 {
                        let q = dir.join(format!("t{t}-{i}-renamed"));
                        fs::rename(&p, &q).unwrap();
                    }
                }
            });
        }
    });
    let listed = names(&m.path("d"));
    assert_eq!(listed.len(), 600, "all entries created");
    assert_eq!(nlink(&m.path("d")), 2 + 4 * 15, "one link per subdirectory");
    let mut m = m;
    m.unmount();
    assert_fsck_clean(&m);
}

#[test]
fn fsynced_changes_survive_a_daemon_crash() {
    // A close alone is not a sync point any more (group commit: a crash
    // may lose the last 10 ms of operations nobody fsynced); an fsync
    // commits durably every change made before it, in any file.
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let data = text(300_000, 8);
    fs::write(m.path("closed"), &data).unwrap();
    fs::create_dir(m.path("dir")).unwrap();
    std::os::unix::fs::symlink("closed", m.path("link")).unwrap();
    setxattr(&m.path("closed"), "user.a", b"1", 0).unwrap();
    // An open, unlinked file at the moment of the crash.
    let orphan = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("orphan"))
        .unwrap();
    orphan.write_all_at(&text(100_000, 9), 0).unwrap();
    fs::remove_file(m.path("orphan")).unwrap();
    // Commits the unlink and everything above with it.
    orphan.sync_all().unwrap();

    m.crash();
    drop(orphan);
    let (ok, report) = m.fsck();
    assert!(
        ok,
        "after a crash the store is consistent (an orphan is a warning):\n{report}"
    );
    assert!(
        report.contains("warning: inode") && report.contains("unlinked"),
        "fsck reports the orphan left by the crash:\n{report}"
    );
    m.mount(&[]);
    assert!(
        fs::read(m.path("closed")).unwrap() == data,
        "closed file kept"
    );
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("closed"));
    assert_eq!(xattr_value(&m.path("closed"), "user.a").unwrap(), b"1");
    assert_eq!(
        names(&m.mnt),
        vec!["closed".to_string(), "dir".to_string(), "link".to_string()]
    );
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
    assert!(
        !report.contains("warning:"),
        "the orphan was reclaimed at mount:\n{report}"
    );
}
