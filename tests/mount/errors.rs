//! Bad input through the real binary: a damaged store, a store from a newer
//! version, bad paths and options, a store in use, a read-only mount, and
//! `llmfs stats`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{is_mounted, llmfs, noise, text, Mounted};

const BS: usize = 64 * 1024;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// If a `llmfs mount` that should have failed mounted anyway, unmount it so
/// the test does not leave a daemon behind, and fail.
#[track_caller]
fn assert_not_mounted(mnt: &Path) {
    if is_mounted(mnt) {
        let _ = llmfs([std::ffi::OsStr::new("umount"), mnt.as_os_str()]);
        panic!(
            "{} was mounted although the mount should fail",
            mnt.display()
        );
    }
}

fn open_db(store: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(store.join("llmfs.db")).expect("open llmfs.db with rusqlite")
}

#[track_caller]
fn assert_eio<T: std::fmt::Debug>(r: io::Result<T>, what: &str) {
    match r {
        Ok(v) => panic!("{what}: expected EIO, got Ok({v:?})"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{what}: expected EIO, got {e}"
        ),
    }
}

#[test]
fn corrupt_block_is_eio_for_that_block_only() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let first = text(BS, 0);
    let second = text(BS, 100_000);
    // Five blocks: more than a small file's close stores raw
    // (`RAW_INTERIM_MAX_BYTES`), so block 1 is an interim zstd record.
    let two = [first.clone(), second.clone(), text(3 * BS, 200_000)].concat();
    assert!(two.len() > llmfs::fs::RAW_INTERIM_MAX_BYTES);
    fs::write(m.path("two"), &two).unwrap();
    let other = text(3 * BS + 17, 500_000);
    fs::write(m.path("other"), &other).unwrap();
    let ino = fs::metadata(m.path("two")).unwrap().ino();
    m.unmount();

    {
        let db = open_db(&m.store);
        let (codec, record): (i64, Vec<u8>) = db
            .query_row(
                "SELECT codec, record FROM blocks WHERE ino = ?1 AND idx = 1",
                [ino],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("block 1 of the file is stored");
        assert_eq!(codec, 1, "compressible text is stored with zstd");
        assert!(record.len() > 40, "record of {} bytes", record.len());
        let mut bad = record.clone();
        // The mount's interim encoding codes the block as 16 KiB frames
        // behind a table (docs/FORMAT.md, "zstd frame table"), and a small
        // read decodes only its frame: damage the first frame, which the
        // small read below touches.
        let (first_at, first_len) = if bad[20..24] == 0x184D_2A5Cu32.to_le_bytes() {
            let n = u16::from_le_bytes([bad[30], bad[31]]) as usize;
            let len = u32::from_le_bytes(bad[32..36].try_into().unwrap()) as usize;
            (20 + 12 + 8 * n, len)
        } else {
            (20, bad.len() - 20)
        };
        let at = first_at + first_len / 2;
        bad[at] ^= 0x5a;
        bad[at + 1] ^= 0xff;
        let n = db
            .execute(
                "UPDATE blocks SET record = ?1 WHERE ino = ?2 AND idx = 1",
                rusqlite::params![bad, ino],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    m.mount(&[]);
    // Block 0 reads fine on its own, with an exact-range read.
    let f = File::open(m.path("two")).unwrap();
    let mut buf = vec![0u8; BS];
    f.read_exact_at(&mut buf, 0)
        .expect("block 0 of the damaged file reads");
    assert!(buf == first, "block 0 content");
    let mut small = [0u8; 100];
    assert_eio(
        f.read_exact_at(&mut small, BS as u64 + 10),
        "read in block 1",
    );
    // The block's last frame is whole, and a read of it alone still works.
    let last = 3 * 16384 + 10;
    f.read_exact_at(&mut small, (BS + last) as u64)
        .expect("a read of an undamaged frame of block 1");
    assert!(
        small[..] == second[last..last + 100],
        "block 1's last frame"
    );
    drop(f);
    // A whole-file read fails with EIO.
    let mut whole = Vec::new();
    assert_eio(
        File::open(m.path("two")).unwrap().read_to_end(&mut whole),
        "read of the whole damaged file",
    );
    // Other data is unaffected.
    assert!(
        fs::read(m.path("other")).unwrap() == other,
        "other file reads"
    );
    let f = File::open(m.path("two")).unwrap();
    let mut buf = vec![0u8; 1000];
    f.read_exact_at(&mut buf, 5000).unwrap();
    assert!(buf == first[5000..6000], "block 0 again after the failure");
    drop(f);
    // Metadata stays readable.
    assert_eq!(fs::metadata(m.path("two")).unwrap().len(), 5 * BS as u64);

    let log = m.log_text();
    let needle = format!("inode {ino} block 1");
    assert!(
        log.lines()
            .any(|l| l.contains(&needle) && l.contains("ERROR")),
        "daemon log names the damaged block ({needle}) at error level:\n{log}"
    );

    m.unmount();
    let (ok, report) = m.fsck();
    assert!(!ok, "fsck must fail on a damaged block:\n{report}");
    assert!(
        report.contains(&needle),
        "fsck names the damaged block ({needle}):\n{report}"
    );

    // A partial write into the damaged block needs its old content: it must
    // fail rather than silently zero the rest of the block.
    m.mount(&[]);
    let f = OpenOptions::new().write(true).open(m.path("two")).unwrap();
    assert_eio(
        f.write_all_at(b"patch", BS as u64 + 100),
        "partial write into a damaged block",
    );
    drop(f);
    // Overwriting the whole damaged block repairs the file.
    let f = OpenOptions::new().write(true).open(m.path("two")).unwrap();
    f.write_all_at(&second, BS as u64)
        .expect("overwriting a damaged block needs no read");
    drop(f);
    assert!(fs::read(m.path("two")).unwrap() == two, "repaired");
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "fsck after rewriting the block:\n{report}");
}

#[test]
fn store_from_newer_version_is_refused() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::write(m.path("f"), b"data").unwrap();
    m.unmount();
    open_db(&m.store)
        .pragma_update(None, "user_version", 99)
        .unwrap();

    let out = llmfs([
        "mount".as_ref(),
        m.mnt.as_os_str(),
        "--store".as_ref(),
        m.store.as_os_str(),
    ]);
    assert_not_mounted(&m.mnt);
    assert!(!out.status.success(), "mount of a newer store must fail");
    assert!(
        stderr(&out).contains("newer"),
        "message mentions a newer version: {}",
        stderr(&out)
    );
    // Read-only tools refuse it too, and the store is left as it was.
    let out = llmfs(["fsck".as_ref(), m.store.as_os_str()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
    let v: u32 = open_db(&m.store)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99, "the store was not touched");
}

#[test]
fn missing_mountpoint_is_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("does-not-exist");
    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        t.path().join("store").as_os_str(),
    ]);
    assert!(!out.status.success(), "missing mountpoint must fail");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&*mnt.to_string_lossy()),
        "message names the mountpoint: {}",
        stderr(&out)
    );
    assert!(!t.path().join("store").exists(), "no store was created");

    // A regular file as the mountpoint.
    let file = t.path().join("file");
    fs::write(&file, b"").unwrap();
    let out = llmfs([
        "mount".as_ref(),
        file.as_os_str(),
        "--store".as_ref(),
        t.path().join("store").as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn second_mount_of_a_store_is_refused() {
    require_fuse!();
    let m = Mounted::new(&[]);
    fs::write(m.path("f"), b"first").unwrap();
    let other = m.dir.path().join("mnt2");
    fs::create_dir(&other).unwrap();
    let out = llmfs([
        "mount".as_ref(),
        other.as_os_str(),
        "--store".as_ref(),
        m.store.as_os_str(),
    ]);
    assert_not_mounted(&other);
    assert!(!out.status.success(), "second mount must fail");
    assert!(
        stderr(&out).contains("in use"),
        "message says the store is in use: {}",
        stderr(&out)
    );
    // The same in the foreground.
    let out = llmfs([
        "mount".as_ref(),
        other.as_os_str(),
        "--store".as_ref(),
        m.store.as_os_str(),
        "--foreground".as_ref(),
    ]);
    assert_not_mounted(&other);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    // The first mount is unharmed.
    assert_eq!(fs::read(m.path("f")).unwrap(), b"first");
}

#[test]
fn unknown_options_and_flags_are_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let store = t.path().join("store");

    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "-o".as_ref(),
        "ro,bogus_option".as_ref(),
    ]);
    assert_not_mounted(&mnt);
    assert!(!out.status.success(), "unknown -o option must fail");
    assert!(
        stderr(&out).contains("bogus_option"),
        "message names the option: {}",
        stderr(&out)
    );

    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "--no-such-flag".as_ref(),
    ]);
    assert_not_mounted(&mnt);
    assert_eq!(out.status.code(), Some(2), "usage error: {}", stderr(&out));
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));

    let out = llmfs(["--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = llmfs(["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "unknown subcommand");
    let out = llmfs(["mount"]);
    assert_eq!(out.status.code(), Some(2), "missing mountpoint argument");
    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--threads".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2), "--threads 0");
    assert!(!store.exists(), "no store was created by refused mounts");
}

#[test]
fn store_inside_mountpoint_is_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    for store in [
        mnt.join("store"),
        mnt.join("a/b/store"),
        mnt.clone(),
        t.path().join("mnt/../mnt/./s"),
    ] {
        let out = llmfs([
            "mount".as_ref(),
            mnt.as_os_str(),
            "--store".as_ref(),
            store.as_os_str(),
        ]);
        assert_not_mounted(&mnt);
        assert!(
            !out.status.success(),
            "store {} inside the mountpoint must be refused",
            store.display()
        );
        assert!(
            stderr(&out).contains("inside the mountpoint"),
            "{}",
            stderr(&out)
        );
    }
    // Through a symlink to the mountpoint.
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&mnt, &link).unwrap();
    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        link.join("store").as_os_str(),
    ]);
    assert_not_mounted(&mnt);
    assert!(
        !out.status.success(),
        "store via a symlink into the mountpoint"
    );
    assert!(
        fs::read_dir(&mnt).unwrap().next().is_none(),
        "nothing was created in the mountpoint"
    );
}

#[test]
fn read_only_mount() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), text(100_000, 1)).unwrap();
    std::os::unix::fs::symlink("d/f", m.path("l")).unwrap();
    m.unmount();
    m.mount(&["-o", "ro"]);

    assert!(
        fs::read(m.path("d/f")).unwrap() == text(100_000, 1),
        "reads work"
    );
    assert_eq!(fs::read_link(m.path("l")).unwrap(), Path::new("d/f"));
    assert_eq!(fs::read_dir(m.path("d")).unwrap().count(), 1);

    let erofs = |r: io::Result<()>, what: &str| match r {
        Ok(()) => panic!("{what} succeeded on a read-only mount"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}"),
    };
    erofs(
        OpenOptions::new().write(true).open(m.path("d/f")).map(drop),
        "open for writing",
    );
    erofs(fs::write(m.path("new"), b"x"), "create");
    erofs(fs::create_dir(m.path("nd")), "mkdir");
    erofs(fs::remove_file(m.path("d/f")), "unlink");
    erofs(fs::remove_file(m.path("l")), "unlink symlink");
    erofs(fs::rename(m.path("d/f"), m.path("g")), "rename");
    erofs(fs::hard_link(m.path("d/f"), m.path("h")), "link");
    erofs(std::os::unix::fs::symlink("x", m.path("s")), "symlink");
    erofs(
        fs::set_permissions(m.path("d/f"), fs::Permissions::from_mode(0o600)),
        "chmod",
    );
    let c = std::ffi::CString::new(m.path("d/f").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
    erofs(
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        },
        "truncate",
    );
    // SAFETY: valid C strings and value buffer.
    let rc = unsafe { libc::setxattr(c.as_ptr(), c"user.x".as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    erofs(
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        },
        "setxattr",
    );

    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
    m.mount(&[]);
    assert!(
        fs::read(m.path("d/f")).unwrap() == text(100_000, 1),
        "unchanged"
    );
    fs::write(m.path("new"), b"x").expect("writable again after a rw remount");
}

/// Bytes free on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct passed.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `sv` a valid out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }, 0);
    sv.f_bavail as u64 * sv.f_frsize as u64
}

#[test]
fn stats_on_mountpoint_and_store() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("a"), text(300_000, 1)).unwrap();
    fs::write(m.path("d/b"), text(BS, 2)).unwrap();
    fs::write(m.path("d/c"), b"tiny").unwrap();
    let logical = 300_000 + BS + 4;

    let check = |out: Output, what: &str| {
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.lines()
                .any(|l| l.starts_with("files") && l.split_whitespace().last() == Some("3")),
            "{what} shows 3 files:\n{text}"
        );
        assert!(
            text.contains("zstd"),
            "{what} shows the zstd codec:\n{text}"
        );
        assert!(
            text.contains(&format!("logical bytes  {logical}")),
            "{what} shows the logical size:\n{text}"
        );
    };
    check(
        llmfs(["stats".as_ref(), m.mnt.as_os_str()]),
        "stats <mountpoint>",
    );
    check(
        llmfs(["stats".as_ref(), m.store.as_os_str()]),
        "stats <store>",
    );

    let roomy = free_bytes(&m.store) > llmfs::fs::RAW_INTERIM_MIN_FREE + (1 << 30);
    let json_check = |out: Output, what: &str| {
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {}", stdout(&out)));
        assert_eq!(j["logical_bytes"], logical, "{what}: {j}");
        assert_eq!(j["files"], 3, "{what}: {j}");
        assert!(crate::common::codec_blocks(&j, "zstd") > 0, "{what}: {j}");
        // The small files' closes stored them raw, for the archiver to
        // encode (where the disk has the room a mount asks for that).
        if roomy {
            assert_eq!(crate::common::codec_blocks(&j, "raw"), 2, "{what}: {j}");
        }
        assert!(j["store"].is_string(), "{what}: {j}");
    };
    json_check(
        llmfs(["stats".as_ref(), "--json".as_ref(), m.mnt.as_os_str()]),
        "stats --json <mountpoint>",
    );
    m.unmount();
    json_check(
        llmfs(["stats".as_ref(), m.store.as_os_str(), "--json".as_ref()]),
        "stats --json <store>",
    );
    check(
        llmfs(["stats".as_ref(), m.store.as_os_str()]),
        "stats <store> unmounted",
    );

    // A path that is neither.
    let out = llmfs(["stats".as_ref(), m.dir.path().join("nothing").as_os_str()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no llmfs store"), "{}", stderr(&out));
}

#[test]
fn garbage_database_is_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    let store = t.path().join("store");
    fs::create_dir(&mnt).unwrap();
    fs::create_dir(&store).unwrap();
    fs::write(
        store.join("llmfs.db"),
        b"this is not a database at all ".repeat(200),
    )
    .unwrap();
    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    assert_not_mounted(&mnt);
    assert!(!out.status.success(), "a garbage database must be refused");
    assert!(stderr(&out).contains("not a database"), "{}", stderr(&out));
    let out = llmfs(["fsck".as_ref(), store.as_os_str()]);
    assert!(!out.status.success(), "fsck of garbage fails");
}

#[test]
fn bad_block_size_is_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    for bs in ["1000", "2048", "33554432"] {
        let store = t.path().join(format!("store-{bs}"));
        let out = llmfs([
            "mount".as_ref(),
            mnt.as_os_str(),
            "--store".as_ref(),
            store.as_os_str(),
            "--block-size".as_ref(),
            bs.as_ref(),
        ]);
        assert_not_mounted(&mnt);
        assert!(!out.status.success(), "block size {bs} must be refused");
        assert!(
            stderr(&out).contains("power of two"),
            "{bs}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn damaged_record_headers_are_eio() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let data: Vec<u8> = (0..4).flat_map(|i| text(BS, i * 10_000)).collect();
    fs::write(m.path("f"), &data).unwrap();
    let ino = fs::metadata(m.path("f")).unwrap().ino();
    m.unmount();
    {
        let db = open_db(&m.store);
        let get = |idx: i64| -> Vec<u8> {
            db.query_row(
                "SELECT record FROM blocks WHERE ino = ?1 AND idx = ?2",
                rusqlite::params![ino, idx],
                |r| r.get(0),
            )
            .unwrap()
        };
        let put = |idx: i64, rec: Vec<u8>| {
            db.execute(
                "UPDATE blocks SET record = ?1 WHERE ino = ?2 AND idx = ?3",
                rusqlite::params![rec, ino, idx],
            )
            .unwrap();
        };
        // Block 0: truncated record; block 1: unknown codec; block 3: a raw
        // length beyond the block size. Block 2 stays intact.
        put(0, get(0)[..10].to_vec());
        let mut r = get(1);
        r[1] = 200;
        put(1, r);
        let mut r = get(3);
        r[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        put(3, r);
    }
    m.mount(&[]);
    let f = File::open(m.path("f")).unwrap();
    let mut buf = vec![0u8; 100];
    for idx in [0u64, 1, 3] {
        assert_eio(
            f.read_exact_at(&mut buf, idx * BS as u64 + 7),
            &format!("read in damaged block {idx}"),
        );
    }
    let mut good = vec![0u8; BS];
    f.read_exact_at(&mut good, 2 * BS as u64)
        .expect("intact block 2");
    assert!(good == data[2 * BS..3 * BS]);
    drop(f);
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(!ok, "{report}");
    for idx in [0, 1, 3] {
        assert!(
            report.contains(&format!("inode {ino} block {idx}")),
            "fsck names block {idx}:\n{report}"
        );
    }
    assert!(
        !report.contains(&format!("inode {ino} block 2")),
        "{report}"
    );
}

/// Unmounts a filesystem the test mounted, after everything above it.
struct TmpfsGuard(std::path::PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_enospc_and_loses_nothing() {
    require_fuse!();
    let mut guard = None;
    let mut m = Mounted::new_with(
        |store| {
            fs::create_dir_all(store).unwrap();
            let st = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
                .arg(store)
                .status()
                .expect("run mount");
            assert!(st.success(), "mounting a 4 MiB tmpfs for the store");
            guard = Some(TmpfsGuard(store.to_path_buf()));
        },
        &[],
    );
    let _guard = guard;
    let keep = text(100_000, 7);
    fs::write(m.path("keep"), &keep).unwrap();

    // 16 MiB of incompressible data cannot fit: some write, flush or close
    // must fail with ENOSPC (the kernel reports a failed write-back on close).
    let noise = noise(16 << 20, 0x2545_f491_4f6c_dd1d);
    let err = (|| -> io::Result<()> {
        use std::io::Write;
        let mut f = File::create(m.path("big"))?;
        f.write_all(&noise)?;
        f.sync_all()
    })()
    .expect_err("16 MiB must not fit a 4 MiB store");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    // The volume stays usable: earlier data intact, space freed by
    // deleting the file is reusable.
    assert_eq!(fs::read(m.path("keep")).unwrap(), keep);
    fs::remove_file(m.path("big")).unwrap();
    let small = text(500_000, 9);
    fs::write(m.path("small"), &small).unwrap();
    assert_eq!(fs::read(m.path("small")).unwrap(), small);

    m.remount();
    assert_eq!(fs::read(m.path("keep")).unwrap(), keep);
    assert_eq!(fs::read(m.path("small")).unwrap(), small);
    assert!(!m.path("big").exists());
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}
