//! Running llmfs as a service: the systemd unit (`systemd-analyze verify`,
//! its ExecStart line with the example config), sd_notify readiness and
//! STOPPING through a real NOTIFY_SOCKET, the mount(8) helper
//! (`mount.fuse.llmfs`, `mount -t fuse.llmfs`, an fstab line, fuse3's
//! `mount.fuse3` fallback), generated man pages and completions, SIGTERM in
//! the middle of a large write, and restarting on a dead mount.
//!
//! Needs root and /dev/fuse, like the other mount tests.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{llmfs_umount, noise, output_text, BIN};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/llmfs@.service");
const EXAMPLE_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/archive.conf.example");

// --- helpers ---------------------------------------------------------------

/// The source (store) of the mount on `mnt`, if something is mounted there.
fn mount_source(mnt: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = mnt.to_string_lossy();
    // The last matching line is the mount on top.
    text.lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(&*want))
        .filter_map(|l| {
            let mut right = l.split(" - ").nth(1)?.split(' ');
            let fstype = right.next()?;
            let source = right.next()?;
            fstype.starts_with("fuse").then(|| source.to_string())
        })
        .next()
}

fn is_llmfs_mount_of(mnt: &Path, store: &Path) -> bool {
    mount_source(mnt).as_deref() == Some(&*store.to_string_lossy())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fsck(store: &Path) {
    let out = Command::new(BIN).arg("fsck").arg(store).output().unwrap();
    assert!(out.status.success(), "fsck: {}", output_text(&out));
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A temporary store and mountpoint. Dropping it lazily detaches whatever is
/// still mounted there (after a failed assertion) and kills a foreground
/// daemon it was given.
struct Volume {
    dir: tempfile::TempDir,
    store: PathBuf,
    mnt: PathBuf,
    daemon: Option<Child>,
}

impl Volume {
    fn new() -> Volume {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Volume {
            dir,
            store,
            mnt,
            daemon: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// `llmfs mount -f` in the background; returns once mounted.
    fn mount_foreground(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(BIN)
            .arg("mount")
            .arg("-f")
            .arg("--store")
            .arg(&self.store)
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let (mnt, store) = (self.mnt.clone(), self.store.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        // A dead mount (its daemon killed) is listed too but answers
        // ENOTCONN: wait for a live one.
        while !(is_llmfs_mount_of(&mnt, &store) && std::fs::metadata(&mnt).is_ok()) {
            if let Some(st) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                self.daemon = None;
                panic!("llmfs mount -f exited with {st}: {}", self.log_text());
            }
            assert!(Instant::now() < deadline, "no mount: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        crate::common::stop_daemon(&self.mnt, self.daemon.take(), Duration::from_secs(10));
    }
}

/// A NOTIFY_SOCKET the test binds, as systemd does for Type=notify.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    messages: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            messages: Vec::new(),
        }
    }

    /// Waits for a message with the line `line` (e.g. "READY=1"), failing if
    /// `child` exits first (when given). Returns that message.
    fn wait_for(&mut self, line: &str, mut child: Option<&mut Child>, log: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.messages.push(msg.clone());
                    if msg.lines().any(|l| l == line) {
                        return msg;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("recv on the notify socket: {e}"),
            }
            if let Some(c) = child.as_deref_mut() {
                if let Some(st) = c.try_wait().unwrap() {
                    panic!(
                        "daemon exited with {st} before sending {line}; got {:?}; log: {log}",
                        self.messages
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {line} within 30 s; got {:?}; log: {log}",
                self.messages
            );
        }
    }

    /// Collects whatever arrives within `d`.
    fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

/// Parses a systemd EnvironmentFile of the simple form the example uses:
/// KEY=VALUE lines, comments, blank lines, optional double quotes.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The unit's ExecStart= command line, expanded the way systemd does
/// (systemd.service(5), "Command lines"): "${VAR}" inside a word is replaced
/// by the value, always one argument; a word "$VAR" is split at whitespace
/// into zero or more arguments. The binary is replaced by the built one.
fn expand_exec_start(unit: &str, env: &[(String, String)]) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in the unit");
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut words = line.split_whitespace();
    let bin = words.next().unwrap();
    assert_eq!(bin, "/usr/local/bin/llmfs", "install.sh installs there");
    let mut argv = vec![BIN.to_string()];
    for w in words {
        if let Some(name) = w.strip_prefix('$').filter(|n| !n.starts_with('{')) {
            argv.extend(get(name).split_whitespace().map(str::to_string));
            continue;
        }
        let mut out = String::new();
        let mut rest = w;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').expect("closing brace") + i;
            out.push_str(&get(&rest[i + 2..end]));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        argv.push(out);
    }
    argv
}

// --- the systemd unit -------------------------------------------------------

#[test]
fn systemd_unit_verifies() {
    require_fuse!();
    let unit = std::fs::read_to_string(UNIT).unwrap();
    // Any of these would give the service a private mount namespace, and
    // the FUSE mount would be invisible to the rest of the host; the device
    // settings would hide /dev/fuse.
    for key in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "ProcSubset",
        "ProtectClock",
        "ReadOnlyPaths",
        "ReadWritePaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
        "RootDirectory",
        "MountAPIVFS",
        "LogNamespace",
        "DevicePolicy",
        "DeviceAllow",
        "DynamicUser",
    ] {
        assert!(
            !unit
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key}="))),
            "{key}= in the unit would break the host-visible FUSE mount"
        );
    }
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=120",
        "Restart=on-failure",
        "EnvironmentFile=/etc/llmfs/%i.conf",
    ] {
        assert!(unit.lines().any(|l| l == want), "{want} missing");
    }

    if std::env::var("LLMFS_SKIP_SYSTEMD_VERIFY").as_deref() == Ok("1") {
        eprintln!("skipped systemd-analyze verify: LLMFS_SKIP_SYSTEMD_VERIFY=1");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("llmfs@test.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/llmfs", BIN)).unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "systemd-analyze is needed to verify {UNIT} ({e}); install the Debian \
             package `systemd` (.ci/run does) or set LLMFS_SKIP_SYSTEMD_VERIFY=1"
        ),
    };
    let all = output_text(&out);
    assert!(out.status.success(), "systemd-analyze verify: {all}");
    // Unknown keys and bad values are only warnings: none may concern us.
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("llmfs@")).collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warnings: {ours:#?}"
    );
}

// --- sd_notify readiness ----------------------------------------------------

/// The unit's own ExecStart line, with the example config's keys (empty
/// LLMFS_OPTIONS and LLMFS_ARGS, the awkward case), under a NOTIFY_SOCKET:
/// READY=1 arrives only once the mount is live, STOPPING=1 on SIGTERM, exit 0.
#[test]
fn notify_ready_after_mount_and_stopping_on_sigterm() {
    require_fuse!();
    let v = Volume::new();
    let example = parse_env_file(&std::fs::read_to_string(EXAMPLE_CONF).unwrap());
    let keys: Vec<&str> = example.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "LLMFS_STORE",
            "LLMFS_MOUNTPOINT",
            "LLMFS_OPTIONS",
            "LLMFS_ARGS"
        ]
    );
    let conf = format!(
        "# test volume\nLLMFS_STORE={}\nLLMFS_MOUNTPOINT={}\nLLMFS_OPTIONS=\nLLMFS_ARGS=\n",
        v.store.display(),
        v.mnt.display()
    );
    let argv = expand_exec_start(
        &std::fs::read_to_string(UNIT).unwrap(),
        &parse_env_file(&conf),
    );
    assert!(
        argv.windows(2).any(|w| w[0] == "-o" && w[1].is_empty()),
        "{argv:?}"
    );

    let mut notify = NotifySocket::bind(v.dir.path());
    let log = File::create(v.log()).unwrap();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = notify.wait_for("READY=1", Some(&mut child), &v.log_text());
    // At the moment READY=1 arrives the mount is live and answers.
    assert!(
        is_llmfs_mount_of(&v.mnt, &v.store),
        "READY=1 before the mount: {:?}",
        mount_source(&v.mnt)
    );
    assert!(std::fs::metadata(&v.mnt).unwrap().is_dir());
    assert_eq!(std::fs::read_dir(&v.mnt).unwrap().count(), 0);
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=Mounted") && l.contains(&*v.mnt.to_string_lossy())),
        "{ready:?}"
    );
    assert!(!ready.contains("MAINPID="), "foreground: {ready:?}");

    std::fs::write(v.mnt.join("f"), b"served").unwrap();
    signal(&child, libc::SIGTERM);
    let stopping = notify.wait_for("STOPPING=1", None, "");
    assert!(stopping.contains("STATUS=signal 15"), "{stopping:?}");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}: {}",
        v.log_text()
    );
    assert!(!crate::common::is_mounted(&v.mnt));
    assert_eq!(
        notify
            .messages
            .iter()
            .filter(|m| m.contains("READY=1"))
            .count(),
        1
    );
    fsck(&v.store);
}

/// A mount that fails never reports READY=1 (systemd then fails the unit
/// when the process exits); the reason goes out as STATUS=.
#[test]
fn notify_no_ready_when_the_mount_fails() {
    require_fuse!();
    let v = Volume::new();
    let mut notify = NotifySocket::bind(v.dir.path());
    let out = Command::new(BIN)
        .args(["mount", "-f", "-o", "bogus_option", "--store"])
        .arg(&v.store)
        .arg(&v.mnt)
        .env("NOTIFY_SOCKET", &notify.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(output_text(&out).contains("unknown mount option 'bogus_option'"));
    notify.drain(Duration::from_millis(200));
    assert!(
        notify.messages.iter().all(|m| !m.contains("READY=1")),
        "{:?}",
        notify.messages
    );
    assert!(
        notify
            .messages
            .iter()
            .any(|m| m.contains("STATUS=mount failed: unknown mount option")),
        "{:?}",
        notify.messages
    );
}

/// Without -f the detached daemon reports READY=1 with MAINPID= naming
/// itself (for units with NotifyAccess=all), and STOPPING=1 on unmount.
#[test]
fn notify_detached_daemon_names_itself_main_pid() {
    require_fuse!();
    let v = Volume::new();
    let mut notify = NotifySocket::bind(v.dir.path());
    let out = Command::new(BIN)
        .args(["mount", "--store"])
        .arg(&v.store)
        .arg(&v.mnt)
        .env("NOTIFY_SOCKET", &notify.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotifyAccess=all"));
    let ready = notify.wait_for("READY=1", None, "");
    let pid: u32 = ready
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .unwrap_or_else(|| panic!("no MAINPID in {ready:?}"))
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "llmfs", "MAINPID {pid} is the daemon");
    llmfs_umount(&v.mnt).unwrap_or_else(|e| panic!("llmfs umount {}: {e}", v.mnt.display()));
    notify.wait_for("STOPPING=1", None, "");
}

// --- mount(8) helper --------------------------------------------------------

/// Installs a symlink (e.g. /sbin/mount.fuse.llmfs -> the built binary) for
/// the duration of a test, setting aside and restoring whatever was there.
struct TempSymlink {
    path: PathBuf,
    saved: Option<PathBuf>,
}

impl TempSymlink {
    fn install(path: &Path, target: &Path) -> TempSymlink {
        let saved = if path.symlink_metadata().is_ok() {
            let aside = path.with_extension("llmfs-test-saved");
            std::fs::rename(path, &aside).unwrap();
            Some(aside)
        } else {
            None
        };
        symlink(target, path).unwrap();
        TempSymlink {
            path: path.to_path_buf(),
            saved,
        }
    }
}

impl Drop for TempSymlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, &self.path);
        }
    }
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn assert_read_write(mnt: &Path, name: &str) {
    let data = format!("through {name}\n").repeat(1000);
    std::fs::write(mnt.join(name), &data).unwrap();
    assert_eq!(std::fs::read_to_string(mnt.join(name)).unwrap(), data);
}

#[test]
fn mount_helper_symlink_mount8_fstab_and_fuse3() {
    require_fuse!();
    let v = Volume::new();
    let bin_dir = v.dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let helper = bin_dir.join("mount.fuse.llmfs");
    symlink(BIN, &helper).unwrap();

    // 1. The helper by hand, with the generic options mount(8) passes.
    let out = Command::new(&helper)
        .arg(&v.store)
        .arg(&v.mnt)
        .args(["-o", "rw,noatime,cache_mb=16,defaults,nofail", "-n", "-s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "helper: {}", output_text(&out));
    assert!(is_llmfs_mount_of(&v.mnt, &v.store), "mounted on return");
    assert_read_write(&v.mnt, "helper");
    llmfs_umount(&v.mnt).unwrap_or_else(|e| panic!("llmfs umount {}: {e}", v.mnt.display()));
    assert!(!crate::common::is_mounted(&v.mnt));

    // -f is mount(8)'s "fake": everything checked, nothing mounted.
    let out = Command::new(&helper)
        .arg(&v.store)
        .arg(&v.mnt)
        .args(["-f", "-o", "ro"])
        .output()
        .unwrap();
    assert!(out.status.success(), "fake: {}", output_text(&out));
    assert!(!crate::common::is_mounted(&v.mnt));
    // Unknown options are refused with mount(8)'s "mount failure" status.
    let out = Command::new(&helper)
        .arg(&v.store)
        .arg(&v.mnt)
        .args(["-o", "rw,frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(32), "{}", output_text(&out));
    assert!(output_text(&out).contains("unknown mount option 'frobnicate'"));
    assert!(!crate::common::is_mounted(&v.mnt));

    // 2. fuse3's mount.fuse3 (mount(8)'s fallback without our symlink)
    // runs `llmfs STORE MOUNTPOINT -o OPTS,dev,suid` through the shell.
    if Path::new("/sbin/mount.fuse3").exists() {
        symlink(BIN, bin_dir.join("llmfs")).unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
        let out = Command::new("/sbin/mount.fuse3")
            .arg(&v.store)
            .arg(&v.mnt)
            .args(["-t", "fuse.llmfs", "-o", "rw,nofail,cache_mb=8"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount.fuse3: {}", output_text(&out));
        assert!(is_llmfs_mount_of(&v.mnt, &v.store));
        assert_read_write(&v.mnt, "fuse3");
        llmfs_umount(&v.mnt).unwrap_or_else(|e| panic!("llmfs umount {}: {e}", v.mnt.display()));
    } else {
        eprintln!("mount.fuse3 not installed: its fallback is not tested");
    }

    // 3. mount(8) itself finds /sbin/mount.fuse.llmfs (it looks only in
    // /sbin and its fs.d directories).
    if !have("mount") {
        eprintln!("mount(8) not installed: `mount -t fuse.llmfs` is not tested");
        return;
    }
    let _installed = TempSymlink::install(Path::new("/sbin/mount.fuse.llmfs"), Path::new(BIN));
    let out = Command::new("mount")
        .args(["-t", "fuse.llmfs"])
        .arg(&v.store)
        .arg(&v.mnt)
        .args(["-o", "rw,noatime,cache_mb=16,threads=2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -t fuse.llmfs: {}",
        output_text(&out)
    );
    assert!(is_llmfs_mount_of(&v.mnt, &v.store));
    assert_read_write(&v.mnt, "mount8");
    assert_eq!(
        std::fs::read_to_string(v.mnt.join("helper")).unwrap(),
        "through helper\n".repeat(1000)
    );
    llmfs_umount(&v.mnt).unwrap_or_else(|e| panic!("llmfs umount {}: {e}", v.mnt.display()));

    // 4. An fstab line, mounted by mountpoint (`mount -T FSTAB MOUNTPOINT`),
    // with fstab-only options that mount(8) may hand to the helper.
    let fstab = v.dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# test fstab\n{} {} fuse.llmfs rw,noauto,nofail,_netdev,x-systemd.automount,comment=t,cache_mb=8 0 0\n",
            v.store.display(),
            v.mnt.display()
        ),
    )
    .unwrap();
    let out = Command::new("mount")
        .arg("-T")
        .arg(&fstab)
        .arg(&v.mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -T fstab: {}",
        output_text(&out)
    );
    assert!(is_llmfs_mount_of(&v.mnt, &v.store));
    assert_read_write(&v.mnt, "fstab");
    llmfs_umount(&v.mnt).unwrap_or_else(|e| panic!("llmfs umount {}: {e}", v.mnt.display()));
    fsck(&v.store);
}

// --- generated documentation ------------------------------------------------

#[test]
fn generates_man_pages_and_completions() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let man = t.path().join("man");
    let out = Command::new(BIN)
        .args(["generate", "man"])
        .arg(&man)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let page = std::fs::read_to_string(man.join("llmfs.1")).unwrap();
    assert!(page.contains(".TH"), "{page}");
    let mount_page = std::fs::read_to_string(man.join("llmfs-mount.1")).unwrap();
    assert!(mount_page.contains("NOTIFY_SOCKET") && mount_page.contains("fuse.llmfs"));
    assert!(!man.join("llmfs-generate.1").exists(), "generate is hidden");

    let comp = t.path().join("completions");
    let out = Command::new(BIN)
        .args(["generate", "completions", "bash"])
        .arg(&comp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let script = std::fs::read_to_string(comp.join("llmfs.bash")).unwrap();
    assert!(script.contains("llmfs") && script.contains("umount"));

    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate"));
}

// --- SIGTERM during a large write -------------------------------------------

/// Deterministic pseudo-random content of chunk `i`.
fn chunk(i: u64, len: usize) -> Vec<u8> {
    noise(len, i + 1)
}

const MIB: usize = 1 << 20;

/// SIGTERM while a writer is in the middle of a large file: the unmount is
/// lazy, the daemon serves the open file until it is closed, then writes back
/// and exits 0. The store passes fsck, and everything fsync'd before the
/// signal is intact after a remount. (What the writer did after the signal
/// may or may not have succeeded; it is not asserted.)
#[test]
fn sigterm_during_large_write_keeps_fsynced_data() {
    require_fuse!();
    const TOTAL_MIB: u64 = 48;
    const SYNC_AT_MIB: u64 = 8;
    let mut v = Volume::new();
    v.mount_foreground();

    let small = chunk(1000, 3 * MIB + 12345);
    {
        let mut f = File::create(v.mnt.join("synced")).unwrap();
        f.write_all(&small).unwrap();
        f.sync_all().unwrap();
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let big = v.mnt.join("big");
    let writer = std::thread::spawn(move || {
        let mut f = File::create(&big).unwrap();
        let mut written = 0u64;
        for i in 0..TOTAL_MIB {
            if let Err(e) = f.write_all(&chunk(i, MIB)) {
                return (written, Some(e));
            }
            written += MIB as u64;
            if i + 1 == SYNC_AT_MIB {
                f.sync_all().expect("fsync before the signal");
                tx.send(written).unwrap();
                // Go on once the signal has detached the mount.
                let _ = go_rx.recv();
            }
        }
        match f.sync_all() {
            Ok(()) => (written, None),
            Err(e) => (written, Some(e)),
        }
    });
    let synced_len = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("writer reached its fsync");
    signal(v.daemon.as_ref().unwrap(), libc::SIGTERM);
    // The file is open, so the unmount is lazy: the mount leaves the
    // namespace at once while the daemon keeps serving the open file.
    wait_until("lazy unmount", Duration::from_secs(10), || {
        !crate::common::is_mounted(&v.mnt)
    });
    assert!(
        v.daemon.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon serves the open file"
    );
    go_tx.send(()).unwrap();
    let (written, err) = writer.join().unwrap();
    eprintln!(
        "writer: {} MiB written, after the signal: {err:?}",
        written / MIB as u64
    );
    if let Some(e) = &err {
        assert!(
            matches!(
                e.raw_os_error(),
                Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED | libc::EIO)
            ),
            "unexpected writer error {e}"
        );
    }
    let mut child = v.daemon.take().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "daemon: {status}: {}", v.log_text());
    assert!(v.log_text().contains("lazy unmount"), "{}", v.log_text());
    fsck(&v.store);

    v.mount_foreground();
    assert_eq!(std::fs::read(v.mnt.join("synced")).unwrap(), small);
    let mut f = File::open(v.mnt.join("big")).unwrap();
    let len = f.metadata().unwrap().len();
    assert!(
        len >= synced_len,
        "big is {len} bytes, {synced_len} were fsync'd"
    );
    let mut buf = vec![0u8; MIB];
    for i in 0..synced_len / MIB as u64 {
        f.read_exact(&mut buf).unwrap();
        assert!(buf == chunk(i, MIB), "MiB {i} of the fsync'd data differs");
    }
    drop(f);
    signal(v.daemon.as_ref().unwrap(), libc::SIGTERM);
    let mut child = v.daemon.take().unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}

// --- restart after a crash --------------------------------------------------

/// A daemon killed with SIGKILL leaves a dead mount (ENOTCONN). Restarting
/// (systemd's Restart=on-failure runs the same command) detaches it and
/// mounts again; fsynced files are all there (a close alone may be lost
/// with the last batch of commits).
#[test]
fn restart_detaches_a_dead_mount() {
    require_fuse!();
    let mut v = Volume::new();
    v.mount_foreground();
    {
        let mut f = File::create(v.mnt.join("kept")).unwrap();
        f.write_all(b"closed before the crash").unwrap();
        f.sync_all().unwrap();
    }
    let mut child = v.daemon.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let e = std::fs::metadata(&v.mnt).unwrap_err();
    // Where the mount served through io_uring: ECONNABORTED once the kernel
    // has torn the dead daemon's rings down, ECANCELED for a request handed
    // to one of them before that (fuse_uring_send_in_task; CI saw it once).
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
        ),
        "{e}"
    );

    v.mount_foreground();
    assert_eq!(
        std::fs::read(v.mnt.join("kept")).unwrap(),
        b"closed before the crash"
    );
    assert!(v.log_text().contains("detaching the dead mount"));
    // Only one mount is left on the mountpoint.
    let want = v.mnt.to_string_lossy().into_owned();
    let count = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(&*want))
        .count();
    assert_eq!(count, 1);
    signal(v.daemon.as_ref().unwrap(), libc::SIGTERM);
    let mut child = v.daemon.take().unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    fsck(&v.store);
}

// --- install.sh ---------------------------------------------------------------

/// A staged install (DESTDIR) of the built binary puts everything in place:
/// binary, helper symlinks, unit, example config, man pages, completion.
#[test]
fn install_script_stages_everything() {
    require_fuse!();
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("stage");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/install.sh"))
        .env("DESTDIR", &dest)
        .env("LLMFS_BIN", BIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", output_text(&out));
    for f in [
        "usr/local/bin/llmfs",
        "usr/local/lib/llmfs/libonnxruntime.so.1.31.1",
        "etc/systemd/system/llmfs@.service",
        "etc/llmfs/archive.conf.example",
        "usr/local/share/man/man1/llmfs.1",
        "usr/local/share/man/man1/llmfs-mount.1",
        "usr/local/share/bash-completion/completions/llmfs",
    ] {
        assert!(dest.join(f).is_file(), "{f} not installed");
    }
    for helper in ["mount.fuse.llmfs", "mount.llmfs"] {
        let link = std::fs::read_link(dest.join("sbin").join(helper)).unwrap();
        assert_eq!(link, Path::new("/usr/local/bin/llmfs"));
    }
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/systemd/system/llmfs@.service")).unwrap(),
        std::fs::read_to_string(UNIT).unwrap()
    );
}

/// With stderr connected to the journal (JOURNAL_STREAM names it), log
/// lines carry a syslog priority prefix and no timestamp of their own.
#[test]
fn logs_to_the_journal_with_priorities() {
    require_fuse!();
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let err_path = t.path().join("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    let input = t.path().join("in");
    std::fs::write(&input, b"journal test").unwrap();
    let status = Command::new(BIN)
        .args(["-vv", "compress", "--codec", "llm", "--model"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/test/model.onnx"
        ))
        .arg(&input)
        .arg(t.path().join("out"))
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stderr(err)
        .status()
        .unwrap();
    assert!(status.success());
    let log = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("<7>llmfs::model::runtime: ")),
        "{log}"
    );
}
