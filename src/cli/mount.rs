//! `llmfs mount` and `llmfs umount`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fuser::{Config, MountOption, SessionACL};

use super::mountinfo::{store_of_mountpoint, FS_TYPE};
use super::notify;
use super::paths::default_store_for;
use crate::archive::{mount_engine_options, volume_model, Archiver, CompressMode};
use crate::codec::{CodecSet, LlmCodec};
use crate::fs::{Fs, FsConfig};
use crate::fuse::FuseFs;
use crate::model::Device;
use crate::store::{OpenOptions, Store, StoreLock, DEFAULT_BLOCK_SIZE};

#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// Directory to mount the volume on (must exist).
    pub mountpoint: PathBuf,
    /// Store directory [default: /var/lib/llmfs/<mountpoint> for root,
    /// ~/.local/share/llmfs/<mountpoint> otherwise].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Stay in the foreground instead of detaching (also under systemd:
    /// readiness goes to $NOTIFY_SOCKET once the mount is live).
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount options, comma-separated: ro, rw, allow_other, allow_root,
    /// auto_unmount, noatime, nodev, nosuid, noexec, dev, suid, exec, sync,
    /// dirsync, async; cache_mb=N, threads=N, block_size=N, compress=MODE,
    /// archive_after=AGE (as the flags).
    /// fstab-only options (defaults, auto, noauto, user, nouser, users,
    /// owner, group, _netdev, nofail, x-*, comment=*) are ignored; empty
    /// ones too.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Decoded-block cache size in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<usize>,
    /// FUSE worker threads, 1..=256 [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Block size of a new store in bytes (a power of two, 4 KiB..16 MiB);
    /// an existing store keeps its own [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub block_size: Option<usize>,
    /// When blocks get the model: background (new writes use zstd; cold
    /// blocks are re-encoded later), sync (at write, slow), off [default:
    /// background].
    #[arg(long, value_name = "MODE", value_parser = CompressMode::parse)]
    pub compress: Option<CompressMode>,
    /// Seconds a block stays unwritten before the archiver re-encodes it
    /// (also 30s, 10m, 2h, 1d) [default: 10m].
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub archive_after: Option<u64>,
    /// Model for a new volume (.onnx) [default: the built-in model]; a
    /// volume keeps the model it was created with.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Engine for the model: cpu, cuda or cuda:N (ONNX Runtime), or
    /// reference (the pure-Rust engine, integer models only).
    #[arg(long, default_value = "cpu", value_parser = Device::parse)]
    pub device: Device,
}

/// Parses an age: seconds, or a number with s, m, h or d.
pub fn parse_age(s: &str) -> Result<u64, String> {
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: not an age (600, 30s, 10m, 2h, 1d)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(format!("{s:?}: unknown unit (s, m, h, d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

const DEFAULT_CACHE_MB: usize = 64;
const DEFAULT_THREADS: u16 = 4;
const DEFAULT_ARCHIVE_AFTER: u64 = 600;

impl MountArgs {
    /// Mount arguments for a store and mountpoint with `-o` options and
    /// everything else at its default (the mount(8) helper's view).
    pub fn for_helper(store: PathBuf, mountpoint: PathBuf, options: Vec<String>) -> MountArgs {
        MountArgs {
            mountpoint,
            store: Some(store),
            foreground: false,
            options,
            cache_mb: None,
            threads: None,
            block_size: None,
            compress: None,
            archive_after: None,
            model: None,
            device: Device::Cpu,
        }
    }
}

/// Parsed `-o` options.
#[derive(Debug, Default)]
struct ParsedOptions {
    mount: Vec<MountOption>,
    acl: Option<SessionACL>,
    read_only: bool,
    cache_mb: Option<usize>,
    compress: Option<CompressMode>,
    archive_after: Option<u64>,
    threads: Option<u16>,
    block_size: Option<usize>,
}

/// Options mount(8) and fstab use that mean nothing to the kernel or to
/// llmfs: the helper and `-o` accept and ignore them.
fn is_ignored_generic(opt: &str) -> bool {
    matches!(
        opt,
        "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "_netdev"
            | "nofail"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
        || opt.starts_with("user=")
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("mount option {key}={value}: not a valid number"))
}

fn parse_options(raw: &[String]) -> Result<ParsedOptions, String> {
    let mut p = ParsedOptions::default();
    for opt in raw
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if is_ignored_generic(opt) {
            continue;
        }
        if let Some((key, value)) = opt.split_once('=') {
            match key {
                "cache_mb" => p.cache_mb = Some(parse_number(key, value)?),
                "threads" => {
                    let n: u16 = parse_number(key, value)?;
                    if !(1..=256).contains(&n) {
                        return Err(format!("mount option threads={n}: must be 1..=256"));
                    }
                    p.threads = Some(n);
                }
                "block_size" => p.block_size = Some(parse_number(key, value)?),
                "compress" => {
                    p.compress = Some(
                        CompressMode::parse(value)
                            .map_err(|e| format!("mount option {opt}: {e}"))?,
                    )
                }
                "archive_after" => {
                    p.archive_after =
                        Some(parse_age(value).map_err(|e| format!("mount option {opt}: {e}"))?)
                }
                _ => return Err(format!("unknown mount option '{opt}'")),
            }
            continue;
        }
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

/// The effective value of a setting that can come from a flag or from `-o`.
fn merge<T: PartialEq + std::fmt::Display + Copy>(
    name: &str,
    flag: Option<T>,
    option: Option<T>,
    default: T,
) -> Result<T, String> {
    match (flag, option) {
        (Some(f), Some(o)) if f != o => Err(format!(
            "--{} {f} and -o {name}={o} disagree; give one",
            name.replace('_', "-")
        )),
        (Some(v), _) | (None, Some(v)) => Ok(v),
        (None, None) => Ok(default),
    }
}

/// Mount settings after merging flags, `-o` options and defaults.
#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    device: Device,
    cache_mb: usize,
    threads: u16,
    block_size: usize,
    compress: CompressMode,
    archive_after: u64,
}

fn settings(args: &MountArgs, opts: &ParsedOptions) -> Result<Settings, String> {
    Ok(Settings {
        model: args.model.clone(),
        device: args.device,
        cache_mb: merge("cache_mb", args.cache_mb, opts.cache_mb, DEFAULT_CACHE_MB)?,
        threads: merge("threads", args.threads, opts.threads, DEFAULT_THREADS)?,
        block_size: merge(
            "block_size",
            args.block_size,
            opts.block_size,
            DEFAULT_BLOCK_SIZE,
        )?,
        compress: merge(
            "compress",
            args.compress,
            opts.compress,
            CompressMode::Background,
        )?,
        archive_after: merge(
            "archive_after",
            args.archive_after,
            opts.archive_after,
            DEFAULT_ARCHIVE_AFTER,
        )?,
    })
}

/// Checks the mountpoint and store paths; returns them canonical.
fn resolve_paths(args: &MountArgs) -> Result<(PathBuf, PathBuf), String> {
    let mp = &args.mountpoint;
    let meta = match std::fs::metadata(mp) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) && detach_dead_mount(mp) => {
            std::fs::metadata(mp)
        }
        other => other,
    }
    .map_err(|e| format!("mountpoint {}: {e}", mp.display()))?;
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

/// A mountpoint whose daemon died (SIGKILL, crash) answers ENOTCONN until
/// it is unmounted. If that dead mount is an llmfs one, detach it so that a
/// restart (systemd's Restart=on-failure, or by hand) can mount again.
/// Returns whether it detached something.
fn detach_dead_mount(mp: &Path) -> bool {
    // The mountpoint itself cannot be resolved (stat answers ENOTCONN), so
    // resolve its parent.
    let abs = match (absolute_parent(mp), mp.file_name()) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => return false,
    };
    if store_of_mountpoint(&abs).is_none() {
        return false;
    }
    let msg = format!(
        "{}: the daemon of this llmfs mount is gone; detaching the dead mount",
        abs.display()
    );
    // Before a detached daemon forks, no logger is set up: tell the user.
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{msg}");
    } else {
        eprintln!("llmfs: warning: {msg}");
    }
    let Ok(c) = CString::new(abs.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) == 0 }
    } else {
        ["fusermount3", "fusermount"].iter().any(|bin| {
            std::process::Command::new(bin)
                .arg("-uz")
                .arg(&abs)
                .status()
                .is_ok_and(|s| s.success())
        })
    }
}

fn absolute_parent(p: &Path) -> Option<PathBuf> {
    let parent = match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::canonicalize(parent).ok()
}

/// Validates the arguments, options and paths of a mount without mounting
/// (`mount -f`, the helper's "fake" mode).
pub fn check(args: &MountArgs) -> Result<(), String> {
    let opts = parse_options(&args.options)?;
    settings(args, &opts)?;
    resolve_paths(args)?;
    Ok(())
}

pub fn run(args: MountArgs, verbose: u8) -> Result<ExitCode, String> {
    let result = run_inner(args, verbose);
    if let Err(e) = &result {
        notify::status(&format!("mount failed: {e}"));
    }
    result
}

fn run_inner(args: MountArgs, verbose: u8) -> Result<ExitCode, String> {
    if args.foreground {
        super::init_logging(verbose.max(1));
    }
    let opts = parse_options(&args.options)?;
    let settings = settings(&args, &opts)?;
    let (mountpoint, store_dir) = resolve_paths(&args)?;
    if args.foreground {
        serve(settings, opts, &mountpoint, &store_dir, None)?;
        return Ok(ExitCode::SUCCESS);
    }
    if notify::under_systemd() {
        eprintln!(
            "llmfs: warning: NOTIFY_SOCKET is set but --foreground is not: the \
             daemon reports its own MAINPID, which systemd accepts only with \
             NotifyAccess=all; run `llmfs mount -f` under systemd"
        );
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
                settings,
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
    settings: Settings,
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
            block_size: settings.block_size,
            read_only: false,
        },
    )
    .map_err(|e| fail(&mut daemon, e.to_string()))?;
    if let Some((_, verbose)) = &daemon {
        redirect_stdio(store_dir)?;
        super::init_logging((*verbose).max(1));
    }
    // The model: a volume without a working one still serves everything
    // but its llm blocks, which read as EIO with a log line saying why.
    let requested = match &settings.model {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| fail(&mut daemon, format!("{}: {e}", p.display())))?)
        }
        None => None,
    };
    let engine = mount_engine_options(settings.device);
    // One read of the model; every engine (reads, read-ahead, archiver) runs
    // the same bytes, so a new volume's --model is what all of them code with.
    let loaded = volume_model(&store, requested.as_deref()).and_then(|bytes| {
        let reader = LlmCodec::load(&bytes, &engine).map_err(|e| e.to_string())?;
        Ok((bytes, Arc::new(reader)))
    });
    let (read_llm, archive_llm, ahead_llm) = match loaded {
        Ok((bytes, reader)) => {
            let load = || LlmCodec::load(&bytes, &engine).map(Arc::new);
            let ahead = load()
                .map_err(|e| log::warn!("read-ahead disabled: {e}"))
                .ok();
            let archiver = if settings.compress == CompressMode::Background && !opts.read_only {
                load()
                    .map_err(|e| log::error!("archiver disabled: {e}"))
                    .ok()
            } else {
                None
            };
            (Some(reader), archiver, ahead)
        }
        Err(e) if requested.is_some() => return Err(fail(&mut daemon, e)),
        Err(e) => {
            log::error!("neural codec unavailable, storing with zstd only: {e}");
            (None, None, None)
        }
    };
    if settings.compress == CompressMode::Off {
        log::info!("compress=off: the model only decodes");
    }
    let write_llm = match settings.compress {
        CompressMode::Sync if !opts.read_only => read_llm.clone(),
        _ => None,
    };
    if let Some(llm) = &write_llm {
        crate::archive::ensure_model_recorded(&store, llm)
            .map_err(|e| fail(&mut daemon, e.to_string()))?;
    }
    let fs = Fs::with_codecs(
        store,
        FsConfig {
            cache_bytes: settings.cache_mb.saturating_mul(1 << 20),
            read_only: opts.read_only,
            best_codec_on_write: write_llm.is_some(),
            ..FsConfig::default()
        },
        CodecSet::with_llm(read_llm),
    )
    .map_err(|e| fail(&mut daemon, e.to_string()))?;
    let fs = match ahead_llm {
        Some(ahead) => fs.with_read_ahead(CodecSet::with_llm(Some(ahead))),
        None => fs,
    };
    let fs = Arc::new(fs);
    let archiver = archive_llm.map(|llm| {
        Archiver::spawn(
            Arc::clone(&fs),
            CodecSet::with_llm(Some(llm)),
            Duration::from_secs(settings.archive_after),
        )
    });
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
        c.n_threads = Some(settings.threads as usize);
        c.clone_fd = true;
        c
    };
    // Catch SIGINT/SIGTERM from here on: one that arrives while mounting is
    // acted on once the mount is live, instead of killing the process and
    // leaving a dead mount behind.
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| fail(&mut daemon, format!("installing signal handlers: {e}")))?;
    // `Session::new` returns after the FUSE handshake: the mount is live.
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
        settings.threads
    );
    // Readiness goes to systemd before the pipe's "ok": in detached mode the
    // parent exits on "ok", and MAINPID must already name this process.
    notify::ready(mountpoint, store_dir, daemon.is_some());
    if let Some((mut pipe, _)) = daemon.take() {
        let _ = pipe.write_all(b"ok");
    }
    // SIGINT/SIGTERM unmount; the session then ends and everything is
    // written back before the process exits. With files still open the
    // unmount is lazy (MNT_DETACH): the mount disappears from the namespace
    // at once, and the session ends when the last file is closed.
    let mut unmounter = session.unmount_callable();
    let handle = signals.handle();
    let stopping = Arc::new(AtomicBool::new(false));
    let stopping_signal = Arc::clone(&stopping);
    let mp_text = mountpoint.display().to_string();
    let (mp_path, store_path) = (mountpoint.to_path_buf(), store_dir.to_path_buf());
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: unmounting");
            if !stopping_signal.swap(true, Ordering::SeqCst) {
                notify::stopping(&format!("signal {sig}: unmounting {mp_text}"));
            }
            match unmounter.unmount() {
                Ok(()) => {}
                // Files are still open (or a process sits in the mount):
                // fuser's unmount is not lazy. Detach instead; the session
                // ends once the last file is closed.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    log::info!("{mp_text} is busy: lazy unmount, open files served until closed");
                    if let Err(e) = detach(&mp_path, &store_path) {
                        log::error!("lazy unmount on signal failed: {e}");
                    }
                }
                Err(e) => log::error!("unmount on signal failed: {e}"),
            }
        }
    });
    let result = session.run();
    handle.close();
    if let Some(a) = archiver {
        a.stop();
    }
    let signalled = stopping.swap(true, Ordering::SeqCst);
    if !signalled {
        notify::stopping(&format!(
            "{} was unmounted; writing back",
            mountpoint.display()
        ));
    }
    // `destroy` already wrote everything back; this is a no-op unless the
    // session ended without it.
    let shut = fs.shutdown();
    let result = match result {
        // The unmount we started on a signal can race the session's next
        // read, which then sees the connection aborted instead of ENODEV:
        // the end we asked for, not a failure. Write-back is checked below.
        Err(e) if signalled && e.raw_os_error() == Some(libc::ECONNABORTED) => {
            log::info!("FUSE connection closed by the unmount");
            Ok(())
        }
        r => r,
    };
    result.map_err(|e| format!("FUSE session ended with an error: {e}"))?;
    shut.map_err(|e| format!("writing back at unmount: {e}"))?;
    log::info!("unmounted {}", mountpoint.display());
    Ok(())
}

/// Lazily unmounts (MNT_DETACH) `mountpoint` if the mount on top of it is
/// still the one serving `store`: it disappears from the namespace at once,
/// and the kernel ends the FUSE session when its last open file is closed.
fn detach(mountpoint: &Path, store: &Path) -> Result<(), String> {
    if store_of_mountpoint(mountpoint).as_deref() != Some(store) {
        return Err(format!(
            "{} is no longer the mount of {}",
            mountpoint.display(),
            store.display()
        ));
    }
    let c = CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        return Ok(());
    }
    let ok = ["fusermount3", "fusermount"].iter().any(|bin| {
        std::process::Command::new(bin)
            .arg("-uz")
            .arg(mountpoint)
            .status()
            .is_ok_and(|s| s.success())
    });
    if ok {
        Ok(())
    } else {
        Err("fusermount3 -uz failed".into())
    }
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
    fn ignores_fstab_options_and_reads_llmfs_settings() {
        let p = parse_options(&[
            "rw,noatime,cache_mb=16,defaults,nofail".into(),
            "".into(),
            "noauto,_netdev,x-systemd.automount,comment=hi,users,,threads=8".into(),
            "block_size=16384".into(),
        ])
        .unwrap();
        assert!(!p.read_only);
        assert_eq!(p.mount, vec![MountOption::RW, MountOption::NoAtime]);
        assert_eq!(
            (p.cache_mb, p.threads, p.block_size),
            (Some(16), Some(8), Some(16384))
        );
        for bad in [
            "cache_mb=lots",
            "threads=0",
            "threads=999",
            "bogus=1",
            "relatime",
        ] {
            let e = parse_options(&[bad.into()]).unwrap_err();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_and_options_merge() {
        assert_eq!(merge("cache_mb", None, None, 64).unwrap(), 64);
        assert_eq!(merge("cache_mb", Some(8), None, 64).unwrap(), 8);
        assert_eq!(merge("cache_mb", None, Some(9), 64).unwrap(), 9);
        assert_eq!(merge("cache_mb", Some(9), Some(9), 64).unwrap(), 9);
        let e = merge("cache_mb", Some(8), Some(9), 64).unwrap_err();
        assert!(
            e.contains("--cache-mb 8") && e.contains("cache_mb=9"),
            "{e}"
        );
    }

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
