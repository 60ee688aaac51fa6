//! The helpers every test binary shares (tests/mount, tests/codec,
//! tests/volume include this module): running the built `llmfs` binary,
//! skipping mount tests on a machine without FUSE, opening a store,
//! reading `stats --json`; a mounted volume ([`Mounted`]); generated data.
#![allow(dead_code)]

mod backend;
mod data;
mod mount;
mod pg_cluster;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use backend::{admin_client, fresh_stores, pg_url, FreshStore, Kind};
#[allow(unused_imports)]
pub use data::{log_lines, noise, readme_prose, text, wav_header, wav_tone, Rng};
#[allow(unused_imports)]
pub use mount::{is_mounted, llmfs_umount, stop_daemon, Mounted};
#[allow(unused_imports)]
pub use pg_cluster::PgCluster;

use std::path::Path;
use std::process::{Command, Output};

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

/// A regular file `name` in directory `parent` of a filesystem core,
/// written with `data`, fsync'd and closed; returns its inode.
pub fn create_file(fs: &llmfs::fs::Fs, parent: u64, name: &str, data: &[u8]) -> u64 {
    let attr = fs
        .mknod(
            &llmfs::fs::Ctx::root(),
            parent,
            name.as_bytes(),
            libc::S_IFREG | 0o644,
            0,
        )
        .unwrap();
    let fh = fs.open(attr.ino, libc::O_RDWR).unwrap();
    fs.write(attr.ino, fh, 0, data).unwrap();
    fs.fsync(attr.ino).unwrap();
    fs.release(attr.ino, fh).unwrap();
    attr.ino
}

/// Runs `llmfs ARGS` and returns its output.
pub fn llmfs<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(BIN).args(args).output().expect("run llmfs")
}

/// `llmfs archive STORE --tier archive --no-dictionary --lease SECS`, started
/// with its output piped: an archive worker (on a PostgreSQL volume, beside
/// its mount and other workers).
pub fn archive_worker(store: &std::ffi::OsStr, lease_s: u64) -> std::process::Child {
    Command::new(BIN)
        .arg("archive")
        .arg(store)
        .args(["--tier", "archive", "--no-dictionary", "--lease"])
        .arg(lease_s.to_string())
        .env("RUST_LOG", "llmfs=info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn llmfs archive")
}

/// Waits for a worker and returns how many blocks it encoded (its summary
/// line: "archived N blocks (...): M encoded, ...").
pub fn worker_encoded(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "worker failed: {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("archived "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let n = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of encoded blocks in {line:?}"));
    n
}

/// A finished command's stdout then stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `llmfs ARGS` and returns (success, stdout then stderr).
pub fn run<I, S>(args: I) -> (bool, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = llmfs(args);
    (out.status.success(), output_text(&out))
}

/// `llmfs stats --json PATH` (a store or a mountpoint), parsed.
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
