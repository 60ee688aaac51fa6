//! A volume mounted by the built `llmfs` binary, in the foreground, on a
//! temporary store and mountpoint, unmounted (waiting for write-back) when
//! dropped; and the unmount and cleanup helpers the tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{output_text, run, BIN};

/// A mounted volume on temporary directories.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// A PostgreSQL store (its schema is dropped after the unmount).
    fresh: Option<super::FreshStore>,
    /// A command the daemon runs under (`setpriv ...`), empty for none.
    launcher: Vec<String>,
}

pub fn is_mounted(mnt: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.to_string_lossy();
    text.lines().any(|l| {
        l.split(' ').nth(4) == Some(&*want)
            && l.split(" - ").nth(1).is_some_and(|r| r.starts_with("fuse"))
    })
}

impl Mounted {
    /// Mounts a new volume. `extra` are additional `llmfs mount` arguments.
    pub fn new(extra: &[&str]) -> Mounted {
        Mounted::new_with(|_| {}, extra)
    }

    /// Like `new`, but calls `prepare` with the (not yet created) store path
    /// before mounting, e.g. to put a small filesystem there.
    pub fn new_with(prepare: impl FnOnce(&Path), extra: &[&str]) -> Mounted {
        Mounted::on_new_store(prepare, Vec::new(), extra)
    }

    /// Mounts a new volume with the daemon run under `launcher` (a command
    /// and its arguments, the daemon's command line appended), e.g.
    /// `setpriv` with fewer capabilities.
    pub fn launched(launcher: &[&str], extra: &[&str]) -> Mounted {
        let launcher = launcher.iter().map(|a| a.to_string()).collect();
        Mounted::on_new_store(|_| {}, launcher, extra)
    }

    /// Mounts a new store in a new temporary directory, `prepare` called
    /// with its path first, the daemon run under `launcher`.
    fn on_new_store(prepare: impl FnOnce(&Path), launcher: Vec<String>, extra: &[&str]) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        prepare(&store);
        let mut m = Mounted {
            log: dir.path().join("daemon.log"),
            dir,
            store,
            mnt,
            child: None,
            fresh: None,
            launcher,
        };
        m.mount(extra);
        m
    }

    /// Mounts a new volume on `fresh` (a PostgreSQL store: `store` then
    /// holds its URL, which `--store`, `fsck` and `stats` take as they
    /// take a directory).
    pub fn on_store(fresh: super::FreshStore, extra: &[&str]) -> Mounted {
        let store = PathBuf::from(fresh.arg());
        Mounted::on_new_mountpoint(store, Some(fresh), extra)
    }

    /// Mounts the volume `other` has mounted a second time, on a
    /// mountpoint of its own (a PostgreSQL volume takes several mounts).
    /// Declared after `other`, it is dropped (unmounted) first.
    pub fn beside(other: &Mounted, extra: &[&str]) -> Mounted {
        Mounted::on_new_mountpoint(other.store.clone(), None, extra)
    }

    /// Mounts `store` on a new temporary mountpoint; `fresh`, if given,
    /// is dropped (its schema with it) after the unmount.
    fn on_new_mountpoint(
        store: PathBuf,
        fresh: Option<super::FreshStore>,
        extra: &[&str],
    ) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut m = Mounted {
            log: dir.path().join("daemon.log"),
            dir,
            store,
            mnt,
            child: None,
            fresh,
            launcher: Vec::new(),
        };
        m.mount(extra);
        m
    }

    /// Mounts (again) on the same store and mountpoint.
    pub fn mount(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "already mounted");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .arg("mount")
            .arg(&self.mnt)
            .arg("--store")
            .arg(&self.store)
            .arg("--foreground")
            .args(extra)
            .env("RUST_LOG", "llmfs=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn llmfs mount");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(&self.mnt) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("llmfs mount exited with {status}: {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "mount did not appear: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts with [`llmfs_umount`] and waits for the daemon to exit
    /// successfully. On failure the daemon is left for `Drop` to clean up.
    pub fn unmount(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Err(err) = llmfs_umount(&self.mnt) {
            self.child = Some(child);
            panic!("llmfs umount failed: {err}");
        }
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "daemon exited with {status}: {}",
            self.log_text()
        );
    }

    /// Simulates a crash: kills the daemon with SIGKILL (no write-back, no
    /// checkpoint), then lazily detaches the dead mount. `mount` works again
    /// afterwards.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.mount(&[]);
    }

    /// The PostgreSQL store the volume was mounted on, if it was.
    pub fn fresh(&self) -> Option<&super::FreshStore> {
        self.fresh.as_ref()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's process id, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's log once it has its "mounted ..." line, which comes
    /// just after the mount goes live (10 s at most).
    pub fn log_once_mounted(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log_text();
            if log.lines().any(|l| l.contains("] mounted ")) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines of the daemon's log that end with `tail`: how many times it
    /// logged a request of the kind (`RUST_LOG=llmfs=debug` here).
    pub fn log_lines_ending(&self, tail: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.ends_with(tail))
            .count()
    }

    /// Runs `llmfs fsck` on the store and returns (success, output).
    pub fn fsck(&self) -> (bool, String) {
        run([std::ffi::OsStr::new("fsck"), self.store.as_os_str()])
    }
}

/// `llmfs umount MNT`, retrying for up to 10 s while the kernel reports the
/// mount busy; `Err` with its output otherwise. Tests run as threads of one
/// process, and a child that another thread is spawning holds copies of all
/// of this process's descriptors (close-on-exec ones too) until it execs, so
/// a file a test has just closed can keep its mount busy for a moment.
pub fn llmfs_umount(mnt: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(BIN)
            .arg("umount")
            .arg(mnt)
            .output()
            .expect("run llmfs umount");
        if out.status.success() {
            return Ok(());
        }
        let err = output_text(&out);
        if !err.contains("busy") || Instant::now() >= deadline {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cleanup after a test: lazily detaches `mnt` if still mounted, gives the
/// daemon `grace` to exit on its own, then kills it.
pub fn stop_daemon(mnt: &Path, child: Option<Child>, grace: Duration) {
    if is_mounted(mnt) {
        let _ = Command::new("umount").arg("-l").arg(mnt).status();
    }
    let Some(mut child) = child else {
        return;
    };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_daemon(&self.mnt, Some(child), Duration::from_secs(20));
        }
        if llmfs::store::StoreLocation::is_postgres(self.store.as_os_str()) {
            // A PostgreSQL mount's log and lock live in its mountpoint's
            // default store directory.
            if let Ok(dir) = llmfs::cli::default_store_for(&self.mnt) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
