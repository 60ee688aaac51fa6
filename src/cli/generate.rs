//! `llmfs generate man DIR` and `llmfs generate completions SHELL DIR`:
//! documentation generated from the clap definitions (hidden; for packaging
//! and `systemd/install.sh`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;

use super::error::{CliError, Context};
use super::Cli;

#[derive(Subcommand, Debug)]
pub enum Generate {
    /// Write man pages into DIR: llmfs.1 and one per subcommand
    /// (llmfs-mount.1, ...).
    Man {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
    /// Write a completion script for SHELL into DIR (bash: llmfs.bash).
    Completions {
        /// The shell.
        shell: Shell,
        /// Output directory (created if missing).
        dir: PathBuf,
    },
}

fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

pub fn run(what: Generate) -> Result<ExitCode, CliError> {
    match what {
        Generate::Man { dir } => {
            create_dir(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
            println!("{}", dir.join("llmfs.1").display());
        }
        Generate::Completions { shell, dir } => {
            create_dir(&dir)?;
            let mut cmd = Cli::command();
            let path = clap_complete::generate_to(shell, &mut cmd, "llmfs", &dir)
                .with_context(|| format!("writing {shell} completions to {}", dir.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
