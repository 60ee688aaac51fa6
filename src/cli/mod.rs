//! Command-line interface: `llmfs mount|umount|stats|fsck|compress|decompress|bench`, the mount(8)
//! helper mode (`mount.fuse.llmfs`), and the hidden `llmfs generate`.

mod bench;
mod compress;
mod error;
mod generate;
mod helper;
mod json;
mod model_check;
mod mount;
mod mountinfo;
mod notify;
mod paths;
mod progress;
mod read_ahead;
mod stats;
mod store_arg;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
pub use mount::MountArgs;
pub use mountinfo::store_of_mountpoint;
pub use paths::default_store_for;
pub use store_arg::StorePassword;

#[derive(Parser, Debug)]
#[command(
    name = "llmfs",
    version,
    about = "A compressing FUSE filesystem with a SQLite or PostgreSQL block store"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount a volume (creating its store on first use).
    #[command(after_long_help = MOUNT_HELP)]
    Mount(MountArgs),
    /// Unmount a volume and wait until its daemon has written everything back.
    Umount {
        /// The mountpoint.
        mountpoint: PathBuf,
        /// Seconds to wait for the daemon to finish.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Show space and block statistics of a store or a mounted volume.
    Stats {
        /// A store directory, a postgres:// URL, or the mountpoint of a
        /// mounted volume.
        path: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        password: StorePassword,
    },
    /// Check a store's metadata and verify every block against its checksum.
    Fsck {
        /// A store directory, a postgres:// URL, or the mountpoint of a
        /// mounted volume.
        path: PathBuf,
        #[command(flatten)]
        password: StorePassword,
    },
    /// Take a store's cold blocks to an archive tier now: by default the
    /// deep tier (the model). A store directory must not be mounted; a
    /// postgres:// volume may be, and several `llmfs archive` workers (on
    /// any machines) may run on it at once: each claims the blocks it
    /// encodes.
    Archive {
        /// The store directory or postgres:// URL.
        store: PathBuf,
        #[command(flatten)]
        password: StorePassword,
        /// How long this worker's claims on blocks outlive it if it dies
        /// (PostgreSQL; seconds, or 30s, 10m, 2h): then another worker takes
        /// them. A live worker renews its claims.
        #[arg(long, default_value = "60", value_parser = mount::parse_age)]
        lease: u64,
        /// Only blocks written at least this long ago (seconds, or 30s, 10m, 2h, 1d).
        #[arg(long, default_value = "0", value_parser = mount::parse_age)]
        older_than: u64,
        /// archive: the smallest of cm, LZMA2, zstd -19 and raw (fast to read
        /// back); deep: the smallest of those and the model.
        #[arg(long, default_value = "deep", value_parser = parse_tier)]
        tier: crate::store::ArchiveTier,
        /// Instead, re-encode every llm block of a float model (readable only
        /// on the CPU class that wrote it) with the portable integer model
        /// (--model, default the built-in one), which the volume adopts for
        /// new blocks; run it on a machine that can read those blocks.
        #[arg(long)]
        portable: bool,
        /// Do not build a volume dictionary (a sample of the volume's cold
        /// data that primes cm blocks) if the volume has none yet.
        #[arg(long)]
        no_dictionary: bool,
        #[command(flatten)]
        model: compress::ModelArgs,
    },
    /// Compress a file into llmfs's block container (the volume's codecs).
    Compress(compress::CompressArgs),
    /// Decompress a file made by `llmfs compress`.
    Decompress(compress::DecompressArgs),
    /// Load a model on an engine, run its self-test, and print the engine
    /// fingerprint and the digest of its logits on a fixed input (the same
    /// on every machine for an integer model).
    ModelCheck(model_check::ModelCheckArgs),
    /// Measure space and speed of llmfs's codecs against zstd, xz, gzip and
    /// brotli on the same files.
    #[command(after_long_help = bench::BENCH_HELP)]
    Bench(bench::BenchArgs),
    /// Generate man pages or shell completions.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: generate::Generate,
    },
}

const MOUNT_HELP: &str = "\
Under systemd (Type=notify), run in the foreground (-f): readiness (READY=1) \
is sent to $NOTIFY_SOCKET once the mount is live, and STOPPING=1 when SIGTERM \
or SIGINT starts the unmount. One unit per volume: systemd/llmfs@.service reads \
/etc/llmfs/NAME.conf (systemctl enable --now llmfs@NAME).

fstab and mount(8): with the symlink /sbin/mount.fuse.llmfs -> llmfs installed, \
`mount -t fuse.llmfs STORE DIR -o OPTS` and fstab lines such as

    /var/lib/llmfs/archive  /mnt/archive  fuse.llmfs  rw,noatime,cache_mb=128  0 0

mount like `llmfs mount --store STORE DIR -o OPTS`; fstab-only options \
(defaults, noauto, nofail, _netdev, x-*, comment=*, ...) are ignored.";

pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let env = env_logger::Env::default().default_filter_or(format!("llmfs={level},warn"));
    let mut builder = env_logger::Builder::from_env(env);
    if under_journald() {
        // stderr goes to the journal: a syslog priority prefix gives each
        // line its level there, and the journal keeps its own timestamps.
        builder.format(|buf, record| {
            use std::io::Write;
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}: {}", record.target(), record.args())
        });
    } else {
        builder.format_timestamp_millis();
    }
    let _ = builder.try_init();
}

/// True when stderr is connected to the systemd journal (systemd sets
/// JOURNAL_STREAM to the device and inode of that stream).
fn under_journald() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = helper::dispatch(&argv) {
        return code;
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Mount(args) => mount::run(args, cli.log.verbose),
        Command::Umount {
            mountpoint,
            timeout,
        } => {
            init_logging(cli.log.verbose);
            mount::umount(&mountpoint, std::time::Duration::from_secs(timeout))
        }
        Command::Stats {
            path,
            json,
            password,
        } => {
            init_logging(cli.log.verbose);
            stats::stats(&path, &password, json)
        }
        Command::Fsck { path, password } => {
            init_logging(cli.log.verbose);
            stats::fsck(&path, &password)
        }
        Command::Archive {
            store,
            password,
            older_than,
            tier,
            portable,
            no_dictionary,
            model,
            lease,
        } => {
            init_logging(cli.log.verbose);
            if portable {
                stats::convert_to_portable(&store, &password, &model)
            } else {
                let pass = stats::ArchiveRun {
                    older_than,
                    tier,
                    no_dictionary,
                    lease: std::time::Duration::from_secs(lease),
                };
                stats::archive(&store, &password, &pass, &model)
            }
        }
        Command::Compress(args) => {
            init_logging(cli.log.verbose);
            compress::compress(args)
        }
        Command::Decompress(args) => {
            init_logging(cli.log.verbose);
            compress::decompress(args)
        }
        Command::Bench(args) => {
            init_logging(cli.log.verbose);
            bench::run(args)
        }
        Command::ModelCheck(args) => {
            init_logging(cli.log.verbose);
            model_check::run(&args)
        }
        Command::Generate { what } => generate::run(what),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("llmfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--tier`: an archive tier by name.
fn parse_tier(s: &str) -> Result<crate::store::ArchiveTier, String> {
    match s {
        "archive" => Ok(crate::store::ArchiveTier::Archive),
        "deep" => Ok(crate::store::ArchiveTier::Deep),
        _ => Err(format!("unknown tier {s:?} (archive, deep)")),
    }
}
