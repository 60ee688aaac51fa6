//! Shared harness for tests that mount a real llmfs volume: runs the built
//! `llmfs` binary in the foreground on a temporary store and mountpoint, and
//! unmounts (waiting for write-back) when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_llmfs");

/// Why this machine cannot run the tests that mount a volume (they need
/// root and /dev/fuse), or `None` when it can.
pub fn fuse_unavailable() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/fuse: {e}")),
    }
}

/// `require_fuse!();` first in a test that mounts: returns from the test
/// when [`skip_without_fuse`] says so.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if $crate::common::skip_without_fuse() {
            return;
        }
    };
}

/// At the start of a test that mounts: true (skip the test, with a line
/// saying why) on a machine without root or /dev/fuse, so that `cargo test`
/// works for a contributor without FUSE. With `LLMFS_REQUIRE_FUSE=1` (set by
/// .ci/test) such a machine fails the test instead.
pub fn skip_without_fuse() -> bool {
    let Some(why) = fuse_unavailable() else {
        return false;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("a mount test")
        .to_string();
    if std::env::var_os("LLMFS_REQUIRE_FUSE").is_some_and(|v| v == "1") {
        panic!("{test} needs root and /dev/fuse: {why} (LLMFS_REQUIRE_FUSE=1)");
    }
    // Written to the process's stderr, past the test harness's capture,
    // so that the skip shows in a plain `cargo test`.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: it mounts a volume, which needs root and /dev/fuse ({why}); \
         set LLMFS_REQUIRE_FUSE=1 to make this a failure"
    );
    true
}

/// `n` bytes of numbered lines of text (compressible, every line distinct),
/// starting at line `seed`.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut line = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!("line {line:08}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        line += 1;
    }
    out.truncate(n);
    out
}

/// `llmfs stats --json PATH` (a store or a mountpoint), parsed.
/// Opens (creating if needed) a read-write store in `dir` with `block_size`.
pub fn open_store(dir: &Path, block_size: usize) -> llmfs::store::Store {
    llmfs::store::Store::open(
        dir,
        &llmfs::store::OpenOptions {
            create: true,
            block_size,
            read_only: false,
        },
    )
    .unwrap()
}

/// Runs `llmfs ARGS` and returns (success, stdout then stderr).
pub fn run<I, S>(args: I) -> (bool, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn stats_json(path: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["stats", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stats --json {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stats --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Blocks stored with `codec` in a `stats --json` document (0 if none).
pub fn codec_blocks(stats: &serde_json::Value, codec: &str) -> u64 {
    stats["codecs"]
        .as_array()
        .expect("codecs array")
        .iter()
        .find(|c| c["codec"] == codec)
        .map_or(0, |c| c["blocks"].as_u64().expect("block count"))
}

/// A mounted volume on temporary directories.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
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
        let child = Command::new(BIN)
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

    /// Unmounts with `llmfs umount`, retrying for up to 10 s while the kernel
    /// reports the mount busy. Tests run as threads of one process, and a
    /// child that another thread is spawning holds copies of all of this
    /// process's descriptors (close-on-exec ones too) until it execs, so a
    /// file a test has just closed can keep its mount busy for a moment.
    /// On failure the daemon is left for `Drop` to clean up.
    pub fn unmount(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(BIN)
                .arg("umount")
                .arg(&self.mnt)
                .output()
                .expect("run llmfs umount");
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if !err.contains("busy") || Instant::now() >= deadline {
                self.child = Some(child);
                panic!("llmfs umount failed: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
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

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `llmfs fsck` on the store and returns (success, output).
    pub fn fsck(&self) -> (bool, String) {
        run([std::ffi::OsStr::new("fsck"), self.store.as_os_str()])
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
    }
}
