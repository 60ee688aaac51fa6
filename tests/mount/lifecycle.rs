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
    let log = std::fs::read_to_string(store.join("llmfs.log")).unwrap();
    assert!(log.contains("mounted"), "{log}");
    // An unmount is no warning (fuser used to unmount again after the
    // kernel had, and warn "Failed to umount filesystem").
    assert!(log.contains("unmounted"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
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

/// The kernel's read-ahead of the mount (src/cli/read_ahead.rs): 1 MiB by
/// default, as asked with `-o read_ahead_kib=N`, and the kernel's own with
/// 0. The tests run as root, who may set it.
#[test]
fn read_ahead_is_set_on_the_mount() {
    require_fuse!();
    fn read_ahead_kb(mnt: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(mnt).unwrap().dev();
        let knob = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            libc::major(dev),
            libc::minor(dev)
        );
        std::fs::read_to_string(&knob)
            .unwrap_or_else(|e| panic!("{knob}: {e}"))
            .trim()
            .parse()
            .unwrap()
    }
    for (extra, want) in [
        (&[][..], Some(1024)),
        (&["-o", "read_ahead_kib=4096"][..], Some(4096)),
        (&["--read-ahead-kib", "0"][..], None),
    ] {
        let m = crate::common::Mounted::new(extra);
        let got = read_ahead_kb(&m.mnt);
        match want {
            Some(kib) => assert_eq!(got, kib, "{extra:?}"),
            // The kernel's default, whatever this kernel's is.
            None => assert!(got < 1024, "{extra:?}: {got}"),
        }
    }
}
