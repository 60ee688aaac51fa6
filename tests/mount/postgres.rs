//! A real mount of a volume stored in PostgreSQL (`--store postgres://`):
//! the file operations, persistence across a remount, fsck and stats on
//! the URL, a second mount beside the first, and the refusal of a
//! password on the command line. Needs a server: LLMFS_TEST_PG (set by
//! .ci/run through .ci/postgres.sh); skipped with a line without one.

use std::os::unix::fs::PermissionsExt;

use crate::common::{noise, pg_url, run, stats_json, text, FreshStore, Kind, Mounted};

#[test]
fn files_on_a_postgres_volume_survive_a_remount() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut m = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    let prose = text(300_000, 1);
    let random = noise(200_000, 2);
    std::fs::write(m.path("prose.txt"), &prose).unwrap();
    std::fs::write(m.path("random.bin"), &random).unwrap();
    std::fs::create_dir(m.path("dir")).unwrap();
    std::fs::write(m.path("dir/gone"), b"unlinked soon").unwrap();
    std::fs::rename(m.path("prose.txt"), m.path("dir/prose.txt")).unwrap();
    std::fs::remove_file(m.path("dir/gone")).unwrap();
    std::os::unix::fs::symlink("dir/prose.txt", m.path("link")).unwrap();
    std::fs::set_permissions(m.path("random.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let listing = |m: &Mounted, rel: &str| {
        let mut names: Vec<String> = std::fs::read_dir(m.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(&m, ""), ["dir", "link", "random.bin"]);
    assert_eq!(listing(&m, "dir"), ["prose.txt"]);
    let df = nix_statvfs(&m.path(""));
    assert!(df > 0, "statfs reports a capacity");

    m.remount();
    assert_eq!(std::fs::read(m.path("dir/prose.txt")).unwrap(), prose);
    assert_eq!(std::fs::read(m.path("link")).unwrap(), prose);
    assert_eq!(std::fs::read(m.path("random.bin")).unwrap(), random);
    let mode = std::fs::metadata(m.path("random.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(listing(&m, ""), ["dir", "link", "random.bin"]);
    assert_eq!(listing(&m, "dir"), ["prose.txt"]);
    // Partial overwrite and truncate, then read back after another remount.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("random.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(70_000)).unwrap();
        f.write_all(b"patched").unwrap();
        f.set_len(100_000).unwrap();
        f.sync_all().unwrap();
    }
    let mut expect = random[..100_000].to_vec();
    expect[70_000..70_007].copy_from_slice(b"patched");
    m.remount();
    assert_eq!(std::fs::read(m.path("random.bin")).unwrap(), expect);

    // While mounted, stats reads the volume through the mountpoint.
    let stats = stats_json(&m.mnt);
    assert_eq!(stats["files"], 2, "{stats}");
    assert_eq!(
        stats["store"],
        m.store.to_string_lossy().as_ref(),
        "{stats}"
    );
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
    let stats = stats_json(&m.store);
    assert_eq!(
        stats["logical_bytes"],
        (prose.len() + expect.len()) as u64,
        "{stats}"
    );
}

fn nix_statvfs(p: &std::path::Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }, 0);
    sv.f_blocks as u64
}

/// A PostgreSQL volume takes a second mount (elsewhere; tests/mount/
/// multi_mount.rs has what the two see of each other), and a read-only
/// check beside both.
#[test]
fn a_second_mount_of_a_postgres_volume_is_admitted() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut m = Mounted::on_store(FreshStore::new(Kind::Postgres), &[]);
    std::fs::write(m.path("f"), b"first mount").unwrap();
    let mut other = Mounted::beside(&m, &[]);
    assert_eq!(std::fs::read(other.path("f")).unwrap(), b"first mount");
    let (ok, out) = run(["fsck".as_ref(), m.store.as_os_str()]);
    assert!(ok, "a read-only check runs beside the mounts: {out}");
    other.unmount();
    m.unmount();
    let (ok, out) = run([
        "archive".as_ref(),
        m.store.as_os_str(),
        "--tier".as_ref(),
        "archive".as_ref(),
    ]);
    assert!(ok, "offline archive once unmounted: {out}");
}

/// A password on the command line is refused before anything connects,
/// and the message says where a password goes instead.
#[test]
fn a_password_in_the_store_url_is_refused() {
    let mnt = tempfile::tempdir().unwrap();
    let mnt = mnt.path().to_str().unwrap();
    for args in [
        vec!["stats", "postgres://u:hunter2@127.0.0.1:1/db"],
        vec!["fsck", "postgres://u@127.0.0.1:1/db?password=hunter2"],
        vec!["mount", mnt, "--store", "postgres://u:hunter2@h/db"],
    ] {
        let (ok, out) = run(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains("--store-password-file"), "{args:?}: {out}");
        assert!(
            !out.contains("hunter2"),
            "{args:?} repeats the password: {out}"
        );
    }
}

/// A password file others can read is refused; the right one is used.
#[test]
fn the_store_password_file_must_be_private() {
    if pg_url().is_none() {
        return;
    }
    let fresh = FreshStore::new(Kind::Postgres);
    drop(fresh.create(65536).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "wrong-password\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stats = |pw: &std::path::Path| {
        run([
            "stats".as_ref(),
            fresh.arg().as_os_str(),
            "--store-password-file".as_ref(),
            pw.as_os_str(),
        ])
    };
    let (ok, out) = stats(&pw);
    assert!(!ok && out.contains("chmod 0600"), "{out}");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = stats(&pw);
    // Read now, and sent: a server that asks for a password (the CI one
    // does) refuses this one; one that trusts the client lets it in.
    assert!(!out.contains("chmod 0600"), "{out}");
    assert!(ok || out.contains("password"), "{out}");
}

/// An fstab line cannot pass flags, so the password file also comes as
/// `-o store_password_file=FILE`: a mount with no other way to the
/// password (no PGPASSWORD, no PGPASSFILE, no ~/.pgpass) comes up with it
/// and serves files.
#[test]
fn the_store_password_file_as_a_mount_option() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let Some(password) = std::env::var_os("PGPASSFILE")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|l| l.lines().next()?.rsplit(':').next().map(str::to_string))
    else {
        println!("skipped: the test server's password is not in $PGPASSFILE");
        return;
    };
    let fresh = FreshStore::new(Kind::Postgres);
    drop(fresh.create(65536).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .arg("mount")
        .arg(&mnt)
        .arg("--store")
        .arg(fresh.arg())
        .arg("-o")
        .arg(format!("noatime,store_password_file={}", pw.display()))
        .env_remove("PGPASSFILE")
        .env_remove("PGPASSWORD")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::output_text(&out));
    std::fs::write(mnt.join("f"), b"through the option").unwrap();
    let back = std::fs::read(mnt.join("f"));
    crate::common::llmfs_umount(&mnt).unwrap();
    assert_eq!(back.unwrap(), b"through the option");
}
