//! `llmfs mount` and `llmfs umount`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fuser::{Config, MountOption, SessionACL};

use super::mountinfo::{store_of_mountpoint, FS_TYPE};
use super::paths::default_store_for;
use crate::fs::{Fs, FsConfig};
use crate::fuse::FuseFs;
use crate::store::{OpenOptions, Store, StoreLock, DEFAULT_BLOCK_SIZE};

#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// Directory to mount the volume on (must exist).
    pub mountpoint: PathBuf,
    /// Store directory [default: /var/lib/llmfs/<mountpoint> for root,
    /// ~/.local/share/llmfs/<mountpoint> otherwise].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Stay in the foreground instead of detaching.
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount options, comma-separated: ro, rw, allow_other, allow_root,
    /// auto_unmount, noatime, nodev, nosuid, noexec, dev, suid, exec, sync,
    /// dirsync, async.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Decoded-block cache size in MiB.
    #[arg(long, default_value_t = 64)]
    pub cache_mb: usize,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Block size of a new store in bytes (a power of two, 4 KiB..16 MiB);
    /// an existing store keeps its own.
    #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE)]
    pub block_size: usize,
}

/// Parsed `-o` options.
#[derive(Debug, Default)]
struct ParsedOptions {
    mount: Vec<MountOption>,
    acl: Option<SessionACL>,
    read_only: bool,
}

fn parse_options(raw: &[String]) -> Result<ParsedOptions, String> {
    let mut p = ParsedOptions::default();
    for opt in raw
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let m = match opt {
            "ro" => {
                p.read_only = true;
                MountOption::RO
            }
            "rw" => {
                p.read_only = false;
                MountOption::RW
            }
            "allow_other" => {
                p.acl = Some(SessionACL::All);
                continue;
            }
            "allow_root" => {
                p.acl = Some(SessionACL::RootAndOwner);
                continue;
            }
            "auto_unmount" => MountOption::AutoUnmount,
            "noatime" => MountOption::NoAtime,
            "atime" => MountOption::Atime,
            "nodev" => MountOption::NoDev,
            "dev" => MountOption::Dev,
            "nosuid" => MountOption::NoSuid,
            "suid" => MountOption::Suid,
            "noexec" => MountOption::NoExec,
            "exec" => MountOption::Exec,
            "sync" => MountOption::Sync,
            "async" => MountOption::Async,
            "dirsync" => MountOption::DirSync,
            "default_permissions" => continue,
            other => return Err(format!("unknown mount option '{other}'")),
        };
        p.mount.push(m);
    }
    Ok(p)
}

/// Checks the mountpoint and store paths; returns them canonical.
fn resolve_paths(args: &MountArgs) -> Result<(PathBuf, PathBuf), String> {
    let mp = &args.mountpoint;
    let meta = std::fs::metadata(mp).map_err(|e| format!("mountpoint {}: {e}", mp.display()))?;
    if !meta.is_dir() {
        return Err(format!("mountpoint {} is not a directory", mp.display()));
    }
    let mp = std::fs::canonicalize(mp).map_err(|e| format!("mountpoint {}: {e}", mp.display()))?;
    let store = match &args.store {
        Some(s) => s.clone(),
        None => default_store_for(&mp)?,
    };
    let store = absolute(&store)?;
    if store.starts_with(&mp) {
        return Err(format!(
            "store {} lies inside the mountpoint {}; choose a store outside it",
            store.display(),
            mp.display()
        ));
    }
    Ok((mp, store))
}

/// Makes a path absolute and resolves what exists of it, so that the
/// "store inside mountpoint" check cannot be fooled by symlinks.
fn absolute(p: &Path) -> Result<PathBuf, String> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c);
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("current directory: {e}"))?
            .join(p)
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) if parent != abs => Ok(absolute(parent)?.join(name)),
        _ => Ok(abs),
    }
}

pub fn run(args: MountArgs, verbose: u8) -> Result<ExitCode, String> {
    let opts = parse_options(&args.options)?;
    let (mountpoint, store_dir) = resolve_paths(&args)?;
    if args.foreground {
        super::init_logging(verbose.max(1));
        serve(&args, opts, &mountpoint, &store_dir, None)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Detach: the child mounts and reports success or the error through a
    // pipe, so that `llmfs mount` fails loudly and exits only once the mount
    // is live.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: no threads have been started yet, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: closing our copy of the read end; setsid detaches.
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
            }
            // SAFETY: fds[1] is an open descriptor this process owns.
            let status = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let code = match serve(
                &args,
                opts,
                &mountpoint,
                &store_dir,
                Some((status, verbose)),
            ) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        _child => {
            // SAFETY: closing our copy of the write end.
            unsafe { libc::close(fds[1]) };
            // SAFETY: fds[0] is an open descriptor this process owns.
            let mut status = unsafe { std::fs::File::from_raw_fd(fds[0]) };
            let mut msg = String::new();
            let _ = status.read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(_) => Ok(ExitCode::SUCCESS),
                None if msg.is_empty() => Err("the mount daemon exited before mounting".into()),
                None => Err(msg.trim().to_string()),
            }
        }
    }
}

/// Opens the store, mounts, and serves requests until unmounted.
fn serve(
    args: &MountArgs,
    opts: ParsedOptions,
    mountpoint: &Path,
    store_dir: &Path,
    mut daemon: Option<(std::fs::File, u8)>,
) -> Result<(), String> {
    let fail = |daemon: &mut Option<(std::fs::File, u8)>, msg: String| -> String {
        if let Some((pipe, _)) = daemon.as_mut() {
            let _ = pipe.write_all(msg.as_bytes());
        }
        msg
    };
    let store = Store::open(
        store_dir,
        &OpenOptions {
            create: true,
            block_size: args.block_size,
            read_only: false,
        },
    )
    .map_err(|e| fail(&mut daemon, e.to_string()))?;
    if let Some((_, verbose)) = &daemon {
        redirect_stdio(store_dir)?;
        super::init_logging((*verbose).max(1));
    }
    let fs = Fs::new(
        store,
        FsConfig {
            cache_bytes: args.cache_mb.saturating_mul(1 << 20),
            read_only: opts.read_only,
            ..FsConfig::default()
        },
    )
    .map_err(|e| fail(&mut daemon, e.to_string()))?;
    let fs = Arc::new(fs);
    let mut mount_options = vec![
        MountOption::FSName(store_dir.to_string_lossy().into_owned()),
        MountOption::Subtype("llmfs".into()),
        MountOption::DefaultPermissions,
    ];
    mount_options.extend(opts.mount);
    let config = {
        let mut c = Config::default();
        c.mount_options = mount_options;
        c.acl = opts.acl.unwrap_or(SessionACL::Owner);
        c.n_threads = Some(args.threads as usize);
        c.clone_fd = true;
        c
    };
    let mut session = fuser::Session::new(FuseFs::new(Arc::clone(&fs)), mountpoint, &config)
        .map_err(|e| {
            fail(
                &mut daemon,
                format!("mounting {}: {e}", mountpoint.display()),
            )
        })?;
    log::info!(
        "mounted {} on {} ({} threads)",
        store_dir.display(),
        mountpoint.display(),
        args.threads
    );
    if let Some((mut pipe, _)) = daemon.take() {
        let _ = pipe.write_all(b"ok");
    }
    // SIGINT/SIGTERM unmount; the session then ends and everything is
    // written back before the process exits.
    let mut unmounter = session.unmount_callable();
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: unmounting");
            if let Err(e) = unmounter.unmount() {
                log::error!("unmount on signal failed: {e}");
            }
        }
    });
    let result = session.run();
    handle.close();
    // `destroy` already wrote everything back; this is a no-op unless the
    // session ended without it.
    let shut = fs.shutdown();
    result.map_err(|e| format!("FUSE session ended with an error: {e}"))?;
    shut.map_err(|e| format!("writing back at unmount: {e}"))?;
    log::info!("unmounted {}", mountpoint.display());
    Ok(())
}

/// A detached daemon writes its log to `<store>/llmfs.log`.
fn redirect_stdio(store_dir: &Path) -> Result<(), String> {
    let log_path = store_dir.join("llmfs.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    use std::os::unix::io::AsRawFd;
    // SAFETY: duplicating valid descriptors onto the standard ones.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    let _ = std::env::set_current_dir("/");
    Ok(())
}

/// Unmounts and waits until the daemon serving the mount has let go of its
/// store, so that a following mount or fsck sees everything written.
pub fn umount(mountpoint: &Path, timeout: Duration) -> Result<ExitCode, String> {
    let store = store_of_mountpoint(mountpoint)
        .ok_or_else(|| format!("{} is not an llmfs mount ({FS_TYPE})", mountpoint.display()))?;
    let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(canon.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            return Err(format!(
                "unmounting {}: {}",
                canon.display(),
                std::io::Error::last_os_error()
            ));
        }
    } else {
        let status = ["fusermount3", "fusermount"]
            .iter()
            .find_map(|bin| {
                std::process::Command::new(bin)
                    .arg("-u")
                    .arg(&canon)
                    .status()
                    .ok()
            })
            .ok_or("neither fusermount3 nor fusermount is installed")?;
        if !status.success() {
            return Err(format!("fusermount -u {} failed", canon.display()));
        }
    }
    if !StoreLock::wait_free(&store, timeout) {
        return Err(format!(
            "unmounted, but the daemon for {} is still writing back after {}s",
            store.display(),
            timeout.as_secs()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let p = parse_options(&["ro,allow_other".into(), "noatime".into()]).unwrap();
        assert!(p.read_only);
        assert_eq!(p.acl, Some(SessionACL::All));
        assert_eq!(p.mount, vec![MountOption::RO, MountOption::NoAtime]);
        let e = parse_options(&["bogus".into()]).unwrap_err();
        assert!(e.contains("bogus"));
    }
}
