//! Permissions through a real mount, as an unprivileged user (uid/gid
//! 65534 in a child process started with `setpriv`): with `allow_other`
//! the kernel enforces mode bits (default_permissions is always on), so a
//! 0600 file of root is unreadable and a 0644 one readable; without
//! `allow_other` (the default) the user cannot reach the mount at all.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::Mounted;

/// Runs `cat PATH` as uid/gid 65534; returns (success, stderr).
fn cat_as_nobody(path: &Path) -> (bool, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(path)
        .output()
        .expect("run setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn open_parents(m: &Mounted) {
    // The temporary directories above the mountpoint must be searchable.
    for p in m.mnt.ancestors().skip(1) {
        if p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn another_user_cannot_read_a_private_file_or_a_mount_without_allow_other() {
    require_fuse!();
    let mut m = Mounted::new(&["-o", "allow_other"]);
    open_parents(&m);
    fs::write(m.path("secret"), b"root only").unwrap();
    fs::set_permissions(m.path("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(m.path("public"), b"everyone").unwrap();
    fs::set_permissions(m.path("public"), fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = cat_as_nobody(&m.path("public"));
    assert!(ok, "a 0644 file is readable by others: {err}");
    let (ok, err) = cat_as_nobody(&m.path("secret"));
    assert!(!ok && err.contains("Permission denied"), "0600: {err}");
    // Directories: the kernel opens them itself (the daemon answers
    // opendir with ENOSYS) and keeps their listings, yet checks each
    // caller's read permission; a listing root made and the kernel kept
    // is no way around it.
    for (dir, mode) in [("private", 0o700), ("shared", 0o755)] {
        fs::create_dir(m.path(dir)).unwrap();
        fs::write(m.path(&format!("{dir}/inside")), b"x").unwrap();
        fs::set_permissions(m.path(dir), fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(fs::read_dir(m.path(dir)).unwrap().count(), 1);
    }
    let ls = |dir: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
            .arg(m.path(dir))
            .output()
            .unwrap()
    };
    let private = ls("private");
    assert!(
        !private.status.success()
            && String::from_utf8_lossy(&private.stderr).contains("Permission denied"),
        "listing a 0700 directory of root as another user"
    );
    let shared = ls("shared");
    assert!(shared.status.success(), "listing a 0755 directory");
    assert_eq!(String::from_utf8_lossy(&shared.stdout).trim(), "inside");
    m.unmount();

    // Without allow_other the mount refuses every other user.
    m.mount(&[]);
    let (ok, err) = cat_as_nobody(&m.path("public"));
    assert!(
        !ok && err.contains("Permission denied"),
        "no allow_other: {err}"
    );
    let st = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
        .arg(&m.mnt)
        .output()
        .unwrap();
    assert!(!st.status.success(), "listing the mount as another user");
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}

/// Runs `sh -c SCRIPT` as uid/gid 65534; panics if it fails.
fn sh_as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(script)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Linux's rule, which the daemon applies since the kernel leaves it to
/// the filesystem (FUSE_HANDLE_KILLPRIV_V2): a write, `O_TRUNC` or
/// truncation by an unprivileged user clears set-user-ID and executable
/// set-group-ID, root's writes keep them, a chown clears them; each
/// change shows in the very next `stat` (the kernel's cached mode is
/// dropped), and after a remount.
#[test]
fn changing_a_file_clears_its_setid_bits_as_linux_does() {
    require_fuse!();
    let mut m = Mounted::new(&["-o", "allow_other"]);
    open_parents(&m);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let f = m.path("prog");
    fs::write(&f, b"#!/bin/sh\n").unwrap();
    let setid = |p: &Path, bits: u32| {
        fs::set_permissions(p, fs::Permissions::from_mode(bits)).unwrap();
        assert_eq!(mode(p), bits);
    };

    // Root writes: the bits stay (CAP_FSETID).
    setid(&f, 0o6777);
    fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .and_then(|mut h| std::io::Write::write_all(&mut h, b"echo\n"))
        .unwrap();
    assert_eq!(mode(&f), 0o6777, "root's write");

    // Another user's append, truncation and O_TRUNC clear them.
    let path = f.display().to_string();
    sh_as_nobody(&format!("echo more >> '{path}'"));
    assert_eq!(mode(&f), 0o777, "another user's write");
    setid(&f, 0o4777);
    sh_as_nobody(&format!("truncate -s 3 '{path}'"));
    assert_eq!(mode(&f), 0o777, "another user's truncate");
    setid(&f, 0o6777);
    sh_as_nobody(&format!(": > '{path}'"));
    assert_eq!(mode(&f), 0o777, "another user's O_TRUNC");
    // Set-group-ID without group execute (mandatory locking) stays.
    setid(&f, 0o2767);
    sh_as_nobody(&format!("echo x >> '{path}'"));
    assert_eq!(mode(&f), 0o2767);

    // A chown clears them, root's too.
    setid(&f, 0o6755);
    std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
    assert_eq!(mode(&f), 0o755, "chown");
    m.unmount();
    m.mount(&["-o", "allow_other"]);
    assert_eq!(mode(&f), 0o755, "after a remount");
    assert_eq!(fs::read(&f).unwrap(), b"x\n");
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}
