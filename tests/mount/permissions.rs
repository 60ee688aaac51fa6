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
