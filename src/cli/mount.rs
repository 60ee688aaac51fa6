//! `llmfs mount` and `llmfs umount`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::ops::RangeInclusive;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fuser::{Config, MountOption, SessionACL};

use super::error::{CliError, Context};
use super::mountinfo::{store_of_mountpoint, FS_TYPE};
use super::notify;
use super::paths::default_store_for;
use super::store_arg::StorePassword;
use super::volume::{self, Volume, VolumeSettings};
use crate::archive::CompressMode;
use crate::fuse::FuseFs;
use crate::model::Device;
use crate::store::{StoreLocation, StoreLock, DEFAULT_BLOCK_SIZE};

#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// Directory to mount the volume on (must exist).
    pub mountpoint: PathBuf,
    /// Store directory, or a PostgreSQL database as
    /// postgres://[USER@]HOST[:PORT]/DATABASE[?schema=S&sslmode=M&...]
    /// [default: /var/lib/llmfs/<mountpoint> for root,
    /// ~/.local/share/llmfs/<mountpoint> otherwise; a PostgreSQL mount
    /// keeps its log and daemon lock there].
    #[arg(long)]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub password: StorePassword,
    /// Stay in the foreground instead of detaching (also under systemd:
    /// readiness goes to $NOTIFY_SOCKET once the mount is live).
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount options, comma-separated: ro, rw, allow_other, allow_root,
    /// auto_unmount, noatime, nodev, nosuid, noexec, dev, suid, exec, sync,
    /// dirsync, async, early_reads; cache_mb=N, threads=N,
    /// ring_threads=N, ring_priority=idle|normal, dev_poll_us=N,
    /// read_ahead_kib=N,
    /// block_size=N,
    /// compress=MODE, segment_min_kib=N,
    /// archive_after=AGE, deep_archive_after=AGE|never, attr_timeout=SECS,
    /// store_password_file=FILE (as the flags).
    /// fstab-only options (defaults, auto, noauto, user, nouser, users,
    /// owner, group, _netdev, nofail, x-*, comment=*) are ignored; empty
    /// ones too.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Decoded-block cache size in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<usize>,
    /// FUSE worker threads, 1..=256 [default: one per core, 2..=8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Threads per CPU serving FUSE over io_uring where the kernel offers it
    /// (Linux 6.14+ with /sys/module/fuse/parameters/enable_uring set);
    /// 0..=64, 0 keeps to /dev/fuse [default: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=64))]
    pub ring_threads: Option<u16>,
    /// Scheduling of the io_uring threads: idle (SCHED_IDLE, so a caller
    /// stays on its core; a thread that waits for a CPU is lifted to normal
    /// priority for a while) or normal [default: idle where the process may
    /// lift a thread back, else normal; docs/MEASUREMENTS.md, "FUSE over io_uring"].
    #[arg(long, value_name = "PRIORITY", value_parser = RingPriority::parse)]
    pub ring_priority: Option<RingPriority>,
    /// Microseconds a /dev/fuse worker that is about to sleep polls for the
    /// next request first, while requests come back to back; 0..=20000, 0
    /// sleeps at once [default: 100 on two cores or more, else 0; unused
    /// over io_uring].
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u32).range(0..=20000))]
    pub dev_poll_us: Option<u32>,
    /// KiB the kernel reads ahead of a sequential reader, 0..=65536; 0
    /// leaves the kernel's (128). Needs root [default: 1024].
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub read_ahead_kib: Option<u32>,
    /// The same as --ring-priority idle (the option's earlier form).
    #[arg(long, hide = true, conflicts_with = "ring_priority")]
    pub ring_idle: bool,
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
    /// How long a block stays unwritten before the archiver re-encodes it
    /// with the model (the deep tier: smallest, slowest to read back), or
    /// never; at least --archive-after [default: 7d].
    #[arg(long, value_name = "AGE", value_parser = parse_age_or_never)]
    pub deep_archive_after: Option<AgeOrNever>,
    /// Model for a new volume (.onnx) [default: the built-in model]; a
    /// volume keeps the model it was created with.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Engine for the model: cpu, cuda or cuda:N (ONNX Runtime), or
    /// reference (the pure-Rust engine, integer models only).
    #[arg(long, default_value = "cpu", value_parser = Device::parse)]
    pub device: Device,
    /// A read that lies in the first part of an archived (llm, cm) block
    /// returns once that part is decoded, before the rest of the block is
    /// and so before the block's checksum is checked (also -o early_reads).
    #[arg(long)]
    pub early_reads: bool,
    /// Seconds the kernel caches attributes and names (0 to 3600,
    /// fractions allowed), and on a store directory that a name does not
    /// exist: a change another mount of a PostgreSQL volume
    /// made shows this late at most (a file's data and size show at its
    /// next open) [default: 1 for a PostgreSQL volume, 60 for a store
    /// directory].
    #[arg(long, value_name = "SECS", value_parser = parse_attr_timeout)]
    pub attr_timeout: Option<f64>,
    /// A write-back whose records come to at least this many KiB writes
    /// them to segment files beside a store directory's database instead
    /// of into it (each such write-back costs an fdatasync of its own)
    /// [default: 1024].
    #[arg(long, value_name = "KIB")]
    pub segment_min_kib: Option<usize>,
}

/// Parses an attribute timeout: seconds, 0 to an hour, fractions allowed.
pub fn parse_attr_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: not a number of seconds from 0 to 3600")),
    }
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
const DEFAULT_SEGMENT_MIN_KIB: usize = crate::fs::DEFAULT_SEGMENT_MIN_BYTES / 1024;
/// FUSE worker threads by default: one per core, at least 2 and at most
/// 8. A worker that has a request wakes another to read the next, and
/// workers beyond the cores only take turns at that: on 2 cores, 4
/// workers ran `tar x` 1.1-1.5x and `cp -r` 1.15x slower than 2, with
/// 10-28% more daemon CPU (bench/results/2026-12-04-threads.tsv).
/// Workers never wait for a slow decode (fuse/slow_reads.rs), so a few
/// suffice.
fn default_threads() -> u16 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.clamp(2, 8) as u16
}

/// FUSE-over-io_uring threads per CPU by default. Each holds one ring
/// entry: a request that waits (an fsync, a decode the slow-read pool is
/// not given) holds one, and the other serves its CPU meanwhile.
const DEFAULT_RING_THREADS: u16 = 2;

const DEFAULT_ARCHIVE_AFTER: u64 = 600;
/// A week: data unwritten that long is taken to be cold for good.
const DEFAULT_DEEP_ARCHIVE_AFTER: AgeOrNever = AgeOrNever(Some(7 * 86400));

/// An age in seconds, or never (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeOrNever(pub Option<u64>);

impl std::fmt::Display for AgeOrNever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s}"),
            None => f.write_str("never"),
        }
    }
}

/// An age as [`parse_age`] takes it, or `never`.
pub fn parse_age_or_never(s: &str) -> Result<AgeOrNever, String> {
    if s == "never" {
        return Ok(AgeOrNever(None));
    }
    parse_age(s)
        .map(|a| AgeOrNever(Some(a)))
        .map_err(|e| format!("{e}, or never"))
}

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
            ring_threads: None,
            dev_poll_us: None,
            read_ahead_kib: None,
            block_size: None,
            compress: None,
            archive_after: None,
            deep_archive_after: None,
            model: None,
            device: Device::Cpu,
            password: StorePassword::default(),
            early_reads: false,
            ring_priority: None,
            ring_idle: false,
            attr_timeout: None,
            segment_min_kib: None,
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
    deep_archive_after: Option<AgeOrNever>,
    threads: Option<u16>,
    ring_threads: Option<u16>,
    ring_priority: Option<RingPriority>,
    dev_poll_us: Option<u32>,
    read_ahead_kib: Option<u32>,
    block_size: Option<usize>,
    store_password_file: Option<PathBuf>,
    early_reads: bool,
    attr_timeout: Option<f64>,
    segment_min_kib: Option<usize>,
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

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, CliError> {
    value
        .parse()
        .map_err(|_| CliError::usage(format!("mount option {key}={value}: not a valid number")))
}

/// A number in `range`, as the flag of the same name takes it.
fn parse_within<T>(key: &str, value: &str, range: RangeInclusive<T>) -> Result<T, CliError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = parse_number(key, value)?;
    if !range.contains(&n) {
        return Err(CliError::usage(format!(
            "mount option {key}={n}: must be {}..={}",
            range.start(),
            range.end()
        )));
    }
    Ok(n)
}

fn parse_options(raw: &[String]) -> Result<ParsedOptions, CliError> {
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
                "threads" => p.threads = Some(parse_within(key, value, 1..=256)?),
                "ring_threads" => p.ring_threads = Some(parse_within(key, value, 0..=64)?),
                "read_ahead_kib" => p.read_ahead_kib = Some(parse_within(key, value, 0..=65536)?),
                "dev_poll_us" => p.dev_poll_us = Some(parse_within(key, value, 0..=20000)?),
                "ring_priority" => {
                    p.ring_priority = Some(
                        RingPriority::parse(value)
                            .map_err(|e| CliError::usage(format!("mount option {opt}: {e}")))?,
                    )
                }
                "block_size" => p.block_size = Some(parse_number(key, value)?),
                "segment_min_kib" => p.segment_min_kib = Some(parse_number(key, value)?),
                // An fstab line cannot give flags: the password file of a
                // PostgreSQL store comes as an option there.
                "store_password_file" if !value.is_empty() => {
                    p.store_password_file = Some(PathBuf::from(value))
                }
                "compress" => {
                    p.compress = Some(
                        CompressMode::parse(value)
                            .map_err(|e| CliError::usage(format!("mount option {opt}: {e}")))?,
                    )
                }
                "archive_after" => {
                    p.archive_after = Some(
                        parse_age(value)
                            .map_err(|e| CliError::usage(format!("mount option {opt}: {e}")))?,
                    )
                }
                "deep_archive_after" => {
                    p.deep_archive_after = Some(
                        parse_age_or_never(value)
                            .map_err(|e| CliError::usage(format!("mount option {opt}: {e}")))?,
                    )
                }
                "attr_timeout" => {
                    p.attr_timeout = Some(
                        parse_attr_timeout(value)
                            .map_err(|e| CliError::usage(format!("mount option {opt}: {e}")))?,
                    )
                }
                _ => return Err(CliError::usage(format!("unknown mount option '{opt}'"))),
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
            "early_reads" => {
                p.early_reads = true;
                continue;
            }
            // The earlier form of ring_priority=idle.
            "ring_idle" => {
                p.ring_priority = Some(RingPriority::Idle);
                continue;
            }
            other => return Err(CliError::usage(format!("unknown mount option '{other}'"))),
        };
        p.mount.push(m);
    }
    Ok(p)
}

/// How the io_uring threads are scheduled (`ring_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingPriority {
    /// `SCHED_IDLE`, lifted to normal priority while a thread starves
    /// (fuser's `ring_priority` module); normal where the process may not
    /// lift a thread back.
    Idle,
    Normal,
}

impl RingPriority {
    pub fn parse(s: &str) -> std::result::Result<RingPriority, String> {
        match s {
            "idle" => Ok(RingPriority::Idle),
            "normal" => Ok(RingPriority::Normal),
            _ => Err(format!("unknown ring priority {s:?} (idle, normal)")),
        }
    }
}

impl std::fmt::Display for RingPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingPriority::Idle => "idle",
            RingPriority::Normal => "normal",
        })
    }
}

/// The effective value of a setting that can come from a flag or from `-o`.
fn merge<T: PartialEq + std::fmt::Display + Copy>(
    name: &str,
    flag: Option<T>,
    option: Option<T>,
    default: T,
) -> Result<T, CliError> {
    match (flag, option) {
        (Some(f), Some(o)) if f != o => Err(CliError::usage(format!(
            "--{} {f} and -o {name}={o} disagree; give one",
            name.replace('_', "-")
        ))),
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
    ring_threads: u16,
    ring_priority: RingPriority,
    dev_poll_us: u32,
    read_ahead_kib: u32,
    block_size: usize,
    compress: CompressMode,
    archive_after: u64,
    deep_archive_after: AgeOrNever,
    early_reads: bool,
    /// Seconds the kernel caches attributes and entries; None: the
    /// store's default (`Settings::ttl`).
    attr_timeout: Option<f64>,
    segment_min_kib: usize,
}

impl Settings {
    /// How long the kernel caches attributes and entries: as asked, else
    /// NFS-like for a volume other mounts may change.
    fn ttl(&self, store: &StoreLocation) -> Duration {
        match (self.attr_timeout, store) {
            (Some(secs), _) => Duration::from_secs_f64(secs),
            (None, StoreLocation::Postgres(_)) => crate::fuse::SHARED_TTL,
            (None, StoreLocation::Dir(_)) => crate::fuse::TTL,
        }
    }

    /// How long the kernel caches that a name does not exist: as long as
    /// names that do on a store directory, whose names change only through
    /// this mount; never on a PostgreSQL volume, so that a file another
    /// mount creates opens at once (close-to-open).
    fn negative_ttl(&self, store: &StoreLocation) -> Duration {
        match store {
            StoreLocation::Postgres(_) => Duration::ZERO,
            StoreLocation::Dir(_) => self.ttl(store),
        }
    }

    fn volume(&self, read_only: bool) -> VolumeSettings {
        VolumeSettings {
            model: self.model.clone(),
            device: self.device,
            cache_mb: self.cache_mb,
            block_size: self.block_size,
            compress: self.compress,
            archive_after: self.archive_after,
            deep_archive_after: self.deep_archive_after.0,
            read_only,
            early_reads: self.early_reads,
            segment_min_kib: self.segment_min_kib,
        }
    }
}

fn settings(args: &MountArgs, opts: &ParsedOptions) -> Result<Settings, CliError> {
    Ok(Settings {
        model: args.model.clone(),
        device: args.device,
        cache_mb: merge("cache_mb", args.cache_mb, opts.cache_mb, DEFAULT_CACHE_MB)?,
        threads: merge("threads", args.threads, opts.threads, default_threads())?,
        ring_threads: merge(
            "ring_threads",
            args.ring_threads,
            opts.ring_threads,
            DEFAULT_RING_THREADS,
        )?,
        dev_poll_us: merge(
            "dev_poll_us",
            args.dev_poll_us,
            opts.dev_poll_us,
            crate::fuse::default_dev_poll_us(),
        )?,
        read_ahead_kib: merge(
            "read_ahead_kib",
            args.read_ahead_kib,
            opts.read_ahead_kib,
            super::read_ahead::DEFAULT_KIB,
        )?,
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
        deep_archive_after: merge(
            "deep_archive_after",
            args.deep_archive_after,
            opts.deep_archive_after,
            DEFAULT_DEEP_ARCHIVE_AFTER,
        )?,
        early_reads: args.early_reads || opts.early_reads,
        ring_priority: merge(
            "ring_priority",
            args.ring_priority
                .or(args.ring_idle.then_some(RingPriority::Idle)),
            opts.ring_priority,
            RingPriority::Idle,
        )?,
        segment_min_kib: merge(
            "segment_min_kib",
            args.segment_min_kib,
            opts.segment_min_kib,
            DEFAULT_SEGMENT_MIN_KIB,
        )?,
        attr_timeout: match (args.attr_timeout, opts.attr_timeout) {
            (None, None) => None,
            (flag, option) => Some(merge("attr_timeout", flag, option, 0.0)?),
        },
    })
}

/// Where a mount's volume is, and the directory on this machine for its
/// log and the lock `llmfs umount` waits on: the store directory itself
/// for SQLite, the mountpoint's default store directory for PostgreSQL.
#[derive(Debug, Clone)]
struct MountStore {
    location: StoreLocation,
    local_dir: PathBuf,
}

/// Checks the mountpoint and store paths; returns them canonical.
fn resolve_paths(
    args: &MountArgs,
    opts: &ParsedOptions,
) -> Result<(PathBuf, MountStore), CliError> {
    let password = StorePassword {
        store_password_file: match (
            &args.password.store_password_file,
            &opts.store_password_file,
        ) {
            (Some(f), Some(o)) if f != o => {
                return Err(CliError::usage(format!(
                    "--store-password-file {} and -o store_password_file={} disagree; give one",
                    f.display(),
                    o.display()
                )))
            }
            (f, o) => f.clone().or_else(|| o.clone()),
        },
    };
    let mp = &args.mountpoint;
    let meta = match std::fs::metadata(mp) {
        Err(e) if is_dead_mount(&e) && detach_dead_mount(mp) => std::fs::metadata(mp),
        other => other,
    }
    .with_context(|| format!("mountpoint {}", mp.display()))?;
    if !meta.is_dir() {
        return Err(CliError::usage(format!(
            "mountpoint {} is not a directory",
            mp.display()
        )));
    }
    let mp = std::fs::canonicalize(mp).with_context(|| format!("mountpoint {}", mp.display()))?;
    if let Some(url) = args
        .store
        .as_ref()
        .filter(|s| StoreLocation::is_postgres(s.as_os_str()))
    {
        let location = password.attach(StoreLocation::parse(url.as_os_str())?)?;
        let local_dir = default_store_for(&mp)?;
        return Ok((
            mp,
            MountStore {
                location,
                local_dir,
            },
        ));
    }
    let store = match &args.store {
        Some(s) => s.clone(),
        None => default_store_for(&mp)?,
    };
    let store = absolute(&store)?;
    if store.starts_with(&mp) {
        return Err(CliError::usage(format!(
            "store {} lies inside the mountpoint {}; choose a store outside it",
            store.display(),
            mp.display()
        )));
    }
    let location = password.attach(StoreLocation::Dir(store.clone()))?;
    Ok((
        mp,
        MountStore {
            location,
            local_dir: store,
        },
    ))
}

/// Makes a path absolute and resolves what exists of it, so that the
/// "store inside mountpoint" check cannot be fooled by symlinks.
fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c);
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("current directory")?
            .join(p)
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) if parent != abs => Ok(absolute(parent)?.join(name)),
        _ => Ok(abs),
    }
}

/// Whether an error from a mountpoint says its FUSE daemon is gone:
/// ENOTCONN, or, where the mount served through io_uring, ECONNABORTED (the
/// kernel ends requests queued on a torn-down ring so) or ECANCELED (a
/// request handed to a ring entry whose daemon task has died, before the
/// ring is torn down: `fuse_uring_send_in_task` in fs/fuse/dev_uring.c).
fn is_dead_mount(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
    )
}

/// A mountpoint whose daemon died (SIGKILL, crash) answers ENOTCONN (or
/// one of the io_uring errors of `is_dead_mount`) until it is unmounted. If
/// that dead mount is an llmfs one, detach it so that a restart (systemd's
/// Restart=on-failure, or by hand) can mount again.
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
pub fn check(args: &MountArgs) -> Result<(), CliError> {
    let opts = parse_options(&args.options)?;
    settings(args, &opts)?;
    resolve_paths(args, &opts)?;
    Ok(())
}

pub fn run(args: MountArgs, verbose: u8) -> Result<ExitCode, CliError> {
    let result = run_inner(args, verbose);
    if let Err(e) = &result {
        notify::status(&format!("mount failed: {e}"));
    }
    result
}

fn run_inner(args: MountArgs, verbose: u8) -> Result<ExitCode, CliError> {
    if args.foreground {
        super::init_logging(verbose.max(1));
    }
    let opts = parse_options(&args.options)?;
    let settings = settings(&args, &opts)?;
    let (mountpoint, store) = resolve_paths(&args, &opts)?;
    if args.foreground {
        serve(settings, opts, &mountpoint, &store, None)?;
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
        return Err(CliError::last_os_error("pipe"));
    }
    // SAFETY: no threads have been started yet, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(CliError::last_os_error("fork")),
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
                &store,
                Some(Daemon { status, verbose }),
            ) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            // SAFETY: closing our copy of the write end.
            unsafe { libc::close(fds[1]) };
            // SAFETY: fds[0] is an open descriptor this process owns.
            let status = unsafe { std::fs::File::from_raw_fd(fds[0]) };
            read_status(status, child, &store.local_dir, MOUNT_REPORT_TIMEOUT)
        }
    }
}

/// How long `llmfs mount` waits for its daemon to report the mount live or
/// failed: opening the store and loading three model engines (each
/// self-tested) takes seconds; far longer means the daemon is stuck.
const MOUNT_REPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// The parent's side of the status pipe: "ok" once the mount is live, an
/// error message otherwise; a daemon that neither answers nor exits within
/// `timeout` is reported as stuck, not waited for forever.
fn read_status(
    mut status: std::fs::File,
    child: libc::pid_t,
    store_dir: &Path,
    timeout: Duration,
) -> Result<ExitCode, CliError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut msg = String::new();
        let _ = status.read_to_string(&mut msg);
        let _ = tx.send(msg);
    });
    let msg = match rx.recv_timeout(timeout) {
        Ok(msg) => msg,
        Err(_) => {
            return Err(CliError::Message(format!(
                "the mount daemon (pid {child}) did not report within {} s whether the mount \
                 is live; see {} (it keeps running: `kill {child}` to give up)",
                timeout.as_secs(),
                store_dir.join("llmfs.log").display()
            )))
        }
    };
    match msg.strip_prefix("ok") {
        Some(_) => Ok(ExitCode::SUCCESS),
        None if msg.is_empty() => Err(CliError::Message(
            "the mount daemon exited before mounting".into(),
        )),
        None => Err(CliError::Message(msg.trim().to_string())),
    }
}

/// The write end of the status pipe of a detached daemon, and the log
/// level it switches to once its output goes to the store's log.
struct Daemon {
    status: std::fs::File,
    verbose: u8,
}

impl Daemon {
    /// Reports a failure to the waiting parent.
    fn fail(&mut self, msg: &str) {
        let _ = self.status.write_all(msg.as_bytes());
    }

    /// Tells the waiting parent that the mount is live; it exits on this.
    fn ready(mut self) {
        let _ = self.status.write_all(b"ok");
    }
}

/// Builds the volume, mounts it and serves requests until unmounted; a
/// detached daemon reports the outcome of the mount through its pipe.
fn serve(
    settings: Settings,
    opts: ParsedOptions,
    mountpoint: &Path,
    store: &MountStore,
    mut daemon: Option<Daemon>,
) -> Result<(), CliError> {
    let session = match mount(settings, opts, mountpoint, store, daemon.as_ref()) {
        Ok(session) => session,
        Err(e) => {
            if let Some(d) = daemon.as_mut() {
                d.fail(&e.to_string());
            }
            return Err(e);
        }
    };
    // Readiness goes to systemd before the pipe's "ok": in detached mode the
    // parent exits on "ok", and MAINPID must already name this process.
    notify::ready(mountpoint, &store.location, daemon.is_some());
    if let Some(d) = daemon {
        d.ready();
    }
    session.run()
}

/// A live mount: the FUSE session over a built volume, and the signals that
/// end it.
struct MountSession {
    session: fuser::Session<FuseFs>,
    volume: Volume,
    signals: signal_hook::iterator::Signals,
    mountpoint: PathBuf,
    store: StoreLocation,
}

/// Opens the store, builds the volume and mounts it; returns once the mount
/// is live (after the FUSE handshake).
fn mount(
    settings: Settings,
    opts: ParsedOptions,
    mountpoint: &Path,
    at: &MountStore,
    daemon: Option<&Daemon>,
) -> Result<MountSession, CliError> {
    let volume_settings = settings.volume(opts.read_only);
    let store = volume::open_store(&at.location, &at.local_dir, &volume_settings)?;
    if let Some(d) = daemon {
        redirect_stdio(&at.local_dir)?;
        super::init_logging(d.verbose.max(1));
    }
    let volume = Volume::build(store, &volume_settings)?;
    let mut mount_options = vec![
        MountOption::FSName(at.location.to_string()),
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
        c.io_uring_threads = usize::from(settings.ring_threads);
        c.io_uring_idle_priority = settings.ring_priority == RingPriority::Idle;
        c.dev_poll = Duration::from_micros(u64::from(settings.dev_poll_us));
        c
    };
    // Catch SIGINT/SIGTERM from here on: one that arrives while mounting is
    // acted on once the mount is live, instead of killing the process and
    // leaving a dead mount behind.
    let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .context("installing signal handlers")?;
    let fuse = FuseFs::new(
        Arc::clone(&volume.fs),
        settings.ttl(&at.location),
        settings.negative_ttl(&at.location),
    );
    let notifier = fuse.notifier_slot();
    let unmounter = fuse.unmounter_slot();
    // `Session::new` returns after the FUSE handshake: the mount is live.
    let mut session = fuser::Session::new(fuse, mountpoint, &config)
        .with_context(|| format!("mounting {}", mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    super::read_ahead::set(mountpoint, settings.read_ahead_kib);
    *unmounter.lock().unwrap_or_else(|p| p.into_inner()) = Some(session.unmount_callable());
    let transport = if session.io_uring() {
        format!(
            "FUSE over io_uring, {} threads per CPU{}",
            settings.ring_threads,
            if session.io_uring_idle() {
                " at SCHED_IDLE"
            } else {
                ""
            }
        )
    } else {
        "/dev/fuse".to_string()
    };
    log::info!(
        "mounted {} on {} ({} threads; {transport})",
        at.location,
        mountpoint.display(),
        settings.threads
    );
    Ok(MountSession {
        session,
        volume,
        signals,
        mountpoint: mountpoint.to_path_buf(),
        store: at.location.clone(),
    })
}

impl MountSession {
    /// Serves requests until the volume is unmounted (by umount, or by
    /// SIGINT/SIGTERM), then stops the archiver and writes everything back.
    fn run(self) -> Result<(), CliError> {
        let MountSession {
            mut session,
            volume,
            mut signals,
            mountpoint,
            store,
        } = self;
        // SIGINT/SIGTERM unmount; the session then ends and everything is
        // written back before the process exits. With files still open the
        // unmount is lazy (MNT_DETACH): the mount disappears from the
        // namespace at once, and the session ends when the last file is
        // closed.
        let mut unmounter = session.unmount_callable();
        let handle = signals.handle();
        let stopping = Arc::new(AtomicBool::new(false));
        let stopping_signal = Arc::clone(&stopping);
        let mp_text = mountpoint.display().to_string();
        let (mp_path, store_at) = (mountpoint.clone(), store.clone());
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: unmounting");
                if !stopping_signal.swap(true, Ordering::SeqCst) {
                    notify::stopping(&format!("signal {sig}: unmounting {mp_text}"));
                }
                match unmounter.unmount() {
                    Ok(()) => {}
                    // Files are still open (or a process sits in the mount):
                    // fuser's unmount is not lazy. Detach instead; the
                    // session ends once the last file is closed.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        log::info!(
                            "{mp_text} is busy: lazy unmount, open files served until closed"
                        );
                        if let Err(e) = detach(&mp_path, &store_at) {
                            log::error!("lazy unmount on signal failed: {e}");
                        }
                    }
                    Err(e) => log::error!("unmount on signal failed: {e}"),
                }
            }
        });
        let result = session.run();
        handle.close();
        let signalled = stopping.swap(true, Ordering::SeqCst);
        if !signalled {
            notify::stopping(&format!(
                "{} was unmounted; writing back",
                mountpoint.display()
            ));
        }
        // `destroy` already wrote everything back; this is a no-op unless
        // the session ended without it.
        let shut = volume.shut_down();
        let result = match result {
            // The unmount we started on a signal can race the session's
            // next read, which then sees the connection aborted instead of
            // ENODEV: the end we asked for, not a failure. Write-back is
            // checked below.
            Err(e) if signalled && e.raw_os_error() == Some(libc::ECONNABORTED) => {
                log::info!("FUSE connection closed by the unmount");
                Ok(())
            }
            r => r,
        };
        result.context("FUSE session ended with an error")?;
        shut?;
        log::info!("unmounted {}", mountpoint.display());
        Ok(())
    }
}

/// A path for a system call; one with a NUL byte cannot name a mount.
fn c_path(p: &Path) -> Result<CString, CliError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| CliError::usage("bad path"))
}

/// Lazily unmounts (MNT_DETACH) `mountpoint` if the mount on top of it is
/// still the one serving `store`: it disappears from the namespace at once,
/// and the kernel ends the FUSE session when its last open file is closed.
fn detach(mountpoint: &Path, store: &StoreLocation) -> Result<(), CliError> {
    let same = store_of_mountpoint(mountpoint).is_some_and(|s| s.to_string() == store.to_string());
    if !same {
        return Err(CliError::Message(format!(
            "{} is no longer the mount of {store}",
            mountpoint.display()
        )));
    }
    let c = c_path(mountpoint)?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(std::io::Error::last_os_error().into());
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
        Err(CliError::Message("fusermount3 -uz failed".into()))
    }
}

/// A detached daemon writes its log to `<store>/llmfs.log` (for a
/// PostgreSQL store, the mountpoint's default store directory).
fn redirect_stdio(store_dir: &Path) -> Result<(), CliError> {
    let log_path = store_dir.join("llmfs.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let null = std::fs::File::open("/dev/null").context("/dev/null")?;
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
pub fn umount(mountpoint: &Path, timeout: Duration) -> Result<ExitCode, CliError> {
    let store = store_of_mountpoint(mountpoint).ok_or_else(|| {
        CliError::usage(format!(
            "{} is not an llmfs mount ({FS_TYPE})",
            mountpoint.display()
        ))
    })?;
    let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    // The directory holding the lock the daemon keeps until it has let go.
    let lock_dir = match &store {
        StoreLocation::Dir(d) => d.clone(),
        StoreLocation::Postgres(_) => default_store_for(&canon)?,
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = c_path(&canon)?;
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(CliError::Io(e).context(format_args!("unmounting {}", canon.display())));
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
            .ok_or_else(|| {
                CliError::Message("neither fusermount3 nor fusermount is installed".into())
            })?;
        if !status.success() {
            return Err(CliError::Message(format!(
                "fusermount -u {} failed",
                canon.display()
            )));
        }
    }
    if !StoreLock::wait_free(&lock_dir, timeout) {
        return Err(CliError::Message(format!(
            "unmounted, but the daemon for {store} is still writing back after {}s",
            timeout.as_secs()
        )));
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
            "noauto,_netdev,x-systemd.automount,comment=hi,users,,threads=8,ring_idle".into(),
            "block_size=16384,store_password_file=/etc/llmfs/pg.pass".into(),
        ])
        .unwrap();
        assert_eq!(
            p.store_password_file.as_deref(),
            Some(std::path::Path::new("/etc/llmfs/pg.pass"))
        );
        assert!(!p.read_only);
        assert_eq!(p.ring_priority, Some(RingPriority::Idle));
        let normal = parse_options(&["ring_priority=normal".into()]).unwrap();
        assert_eq!(normal.ring_priority, Some(RingPriority::Normal));
        assert_eq!(p.mount, vec![MountOption::RW, MountOption::NoAtime]);
        assert_eq!(
            (p.cache_mb, p.threads, p.block_size),
            (Some(16), Some(8), Some(16384))
        );
        for bad in [
            "cache_mb=lots",
            "threads=0",
            "threads=999",
            "ring_threads=65",
            "ring_priority=high",
            "bogus=1",
            "relatime",
        ] {
            let e = parse_options(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_and_options_merge() {
        assert_eq!(merge("cache_mb", None, None, 64).unwrap(), 64);
        assert_eq!(merge("cache_mb", Some(8), None, 64).unwrap(), 8);
        assert_eq!(merge("cache_mb", None, Some(9), 64).unwrap(), 9);
        assert_eq!(merge("cache_mb", Some(9), Some(9), 64).unwrap(), 9);
        let e = merge("cache_mb", Some(8), Some(9), 64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--cache-mb 8") && e.contains("cache_mb=9"),
            "{e}"
        );
    }

    #[test]
    fn attribute_timeout_defaults_by_store_and_follows_the_option() {
        let args = MountArgs::for_helper("/s".into(), "/m".into(), Vec::new());
        let dir = StoreLocation::Dir("/s".into());
        let pg = StoreLocation::parse("postgres://u@h/db".as_ref()).unwrap();
        let s = settings(&args, &ParsedOptions::default()).unwrap();
        assert_eq!(s.ttl(&dir), crate::fuse::TTL);
        assert_eq!(s.ttl(&pg), crate::fuse::SHARED_TTL);
        assert_eq!(s.negative_ttl(&dir), crate::fuse::TTL);
        assert_eq!(s.negative_ttl(&pg), Duration::ZERO);
        let opts = parse_options(&["attr_timeout=2.5".into()]).unwrap();
        let s = settings(&args, &opts).unwrap();
        assert_eq!(s.ttl(&pg), Duration::from_millis(2500));
        let args = MountArgs {
            attr_timeout: Some(3.0),
            ..args
        };
        let e = settings(&args, &opts).unwrap_err().to_string();
        assert!(
            e.contains("--attr-timeout 3") && e.contains("attr_timeout=2.5"),
            "{e}"
        );
    }

    #[test]
    fn parses_options() {
        let p =
            parse_options(&["ro,allow_other".into(), "noatime,attr_timeout=0.5".into()]).unwrap();
        assert_eq!(p.attr_timeout, Some(0.5));
        assert!(parse_options(&["attr_timeout=-1".into()]).is_err());
        assert!(p.read_only);
        assert_eq!(p.acl, Some(SessionACL::All));
        assert_eq!(p.mount, vec![MountOption::RO, MountOption::NoAtime]);
        let e = parse_options(&["bogus".into()]).unwrap_err().to_string();
        assert!(e.contains("bogus"));
        let p = parse_options(&["read_ahead_kib=0".into()]).unwrap();
        assert_eq!(p.read_ahead_kib, Some(0));
        let e = parse_options(&["read_ahead_kib=70000".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0..=65536"), "{e}");
        let p = parse_options(&["dev_poll_us=0".into()]).unwrap();
        assert_eq!(p.dev_poll_us, Some(0));
        let e = parse_options(&["dev_poll_us=20001".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0..=20000"), "{e}");
    }

    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are open and owned by nobody else.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn status_pipe_reports_ok_errors_and_a_stuck_daemon() {
        let store = Path::new("/var/lib/llmfs/x");
        let (r, mut w) = pipe();
        w.write_all(b"ok").unwrap();
        drop(w);
        assert!(read_status(r, 1, store, Duration::from_secs(5)).is_ok());

        let (r, mut w) = pipe();
        w.write_all(b"store is in use\n").unwrap();
        drop(w);
        let e = read_status(r, 1, store, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "store is in use");

        let (r, w) = pipe();
        drop(w);
        let e = read_status(r, 1, store, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exited before mounting"), "{e}");

        // A daemon that holds the pipe open and says nothing.
        let (r, w) = pipe();
        let e = read_status(r, 4242, store, Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pid 4242")
                && e.contains("did not report within")
                && e.contains("llmfs.log"),
            "{e}"
        );
        drop(w);
    }
}
