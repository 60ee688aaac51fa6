//! Command-line interface: `llmfs mount|umount|stats|fsck`.

mod mount;
mod mountinfo;
mod paths;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use mount::MountArgs;
pub use mountinfo::store_of_mountpoint;
pub use paths::default_store_for;

#[derive(Parser, Debug)]
#[command(
    name = "llmfs",
    version,
    about = "A compressing FUSE filesystem with a SQLite block store"
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
        /// A store directory or the mountpoint of a mounted volume.
        path: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a store's metadata and verify every block against its checksum.
    Fsck {
        /// A store directory or the mountpoint of a mounted volume.
        path: PathBuf,
    },
}

pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let env = env_logger::Env::default().default_filter_or(format!("llmfs={level},warn"));
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
        Command::Stats { path, json } => {
            init_logging(cli.log.verbose);
            stats::stats(&path, json)
        }
        Command::Fsck { path } => {
            init_logging(cli.log.verbose);
            stats::fsck(&path)
        }
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("llmfs: {msg}");
            ExitCode::FAILURE
        }
    }
}
