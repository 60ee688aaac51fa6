//! Mount lifecycle through the real binary: detached daemon, `llmfs umount`,
//! plain umount(8), SIGTERM/SIGINT, default store location.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{is_mounted, llmfs, llmfs_umount, BIN};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn detached_mount_then_llmfs_umount_flushes() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let (mnt, store) = (t.path().join("mnt"), t.path().join("store"));
    std::fs::create_dir(&mnt).unwrap();
    let out = llmfs([
        "mount".as_ref(),
        mnt.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt), "mount is live when `llmfs mount` returns");
    let data = b"persist me\n".repeat(10_000);
    std::fs::write(mnt.join("f"), &data).unwrap();

    llmfs_umount(&mnt).unwrap_or_else(|e| panic!("llmfs umount: {e}"));
    assert!(!is_mounted(&mnt));
    // `llmfs umount` waited for the daemon: the store is free and complete.
    let out = llmfs(["fsck".as_ref(), store.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = llmfs(["stats".as_ref(), store.as_os_str()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("logical bytes  {}", data.len())),
        "{text}"
    );
    assert!(std::fs::read_to_string(store.join("llmfs.log"))
        .unwrap()
        .contains("mounted"));
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    require_fuse!();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let t = tempfile::tempdir().unwrap();
        let (mnt, store) = (t.path().join("mnt"), t.path().join("store"));
        std::fs::create_dir(&mnt).unwrap();
        let mut child = Command::new(BIN)
            .args([
                "mount".as_ref(),
                mnt.as_os_str(),
                "--store".as_ref(),
                store.as_os_str(),
                "-f".as_ref(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("mount", || is_mounted(&mnt));
        std::fs::write(mnt.join("f"), b"before signal").unwrap();
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert!(status.success(), "daemon exit after signal {sig}: {status}");
        assert!(!is_mounted(&mnt));
        let out = llmfs(["fsck".as_ref(), store.as_os_str()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        let mut child = Command::new(BIN)
            .args([
                "mount".as_ref(),
                mnt.as_os_str(),
                "--store".as_ref(),
                store.as_os_str(),
                "-f".as_ref(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("remount", || is_mounted(&mnt));
        assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"before signal");
        let st = Command::new("umount").arg(&mnt).status().unwrap();
        assert!(st.success(), "umount(8) works on an llmfs mount");
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn default_store_lives_under_var_lib_for_root() {
    require_fuse!();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let canon = std::fs::canonicalize(&mnt).unwrap();
    let name = canon.to_string_lossy().trim_matches('/').replace('/', "-");
    let store = std::path::Path::new("/var/lib/llmfs").join(&name);
    let out = llmfs(["mount".as_ref(), mnt.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        store.join("llmfs.db").exists(),
        "store created at {}",
        store.display()
    );
    let out = llmfs(["stats".as_ref(), mnt.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&*store.to_string_lossy()));
    llmfs_umount(&mnt).unwrap_or_else(|e| panic!("llmfs umount: {e}"));
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn umount_of_a_non_llmfs_path_is_refused() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let out = llmfs(["umount".as_ref(), t.path().as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an llmfs mount"));
}

/// The kernel's read-ahead window of a mount, from its backing device.
fn read_ahead_kb(mnt: &std::path::Path) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let device = text
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(&*mnt.to_string_lossy()))?
        .split(' ')
        .nth(2)?
        .to_string();
    std::fs::read_to_string(format!("/sys/class/bdi/{device}/read_ahead_kb"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn read_ahead_window_is_widened_and_configurable() {
    require_fuse!();
    // Set just after the mount appears: wait for it.
    let m = crate::common::Mounted::new(&[]);
    wait_until("read-ahead 1024 KiB", || {
        read_ahead_kb(&m.mnt) == Some(1024)
    });
    let m2 = crate::common::Mounted::new(&["-o", "read_ahead_kb=256"]);
    wait_until("read-ahead 256 KiB", || read_ahead_kb(&m2.mnt) == Some(256));
    // 0 leaves the kernel's window.
    let m3 = crate::common::Mounted::new(&["--read-ahead-kb", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_ne!(read_ahead_kb(&m3.mnt), Some(1024));
    // The flag and the option must agree.
    let t = tempfile::tempdir().unwrap();
    let out = llmfs([
        "mount".as_ref(),
        t.path().as_os_str(),
        "--store".as_ref(),
        t.path().join("s").as_os_str(),
        "--read-ahead-kb".as_ref(),
        "64".as_ref(),
        "-o".as_ref(),
        "read_ahead_kb=128".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disagree"));
}
