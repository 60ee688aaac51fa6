//! The store argument of the subcommands: a directory (SQLite), a
//! `postgres://` URL, or the mountpoint of a mounted volume; and the
//! password file of a PostgreSQL store.

use std::path::{Path, PathBuf};

use clap::Args;

use super::error::CliError;
use super::mountinfo::store_of_mountpoint;
use crate::store::StoreLocation;

#[derive(Args, Debug, Clone, Default)]
pub struct StorePassword {
    /// Password of a PostgreSQL store: the first line of FILE (mode 0600).
    /// Without it: $PGPASSWORD, then the password file ($PGPASSFILE or
    /// ~/.pgpass). A password inside the URL is refused.
    #[arg(long, value_name = "FILE")]
    pub store_password_file: Option<PathBuf>,
}

impl StorePassword {
    /// The store `arg` names: a `postgres://` URL, the store of the volume
    /// mounted there, or a store directory.
    pub fn locate(&self, arg: &Path) -> Result<StoreLocation, CliError> {
        let location = if StoreLocation::is_postgres(arg.as_os_str()) {
            StoreLocation::parse(arg.as_os_str())?
        } else {
            store_of_mountpoint(arg).unwrap_or_else(|| StoreLocation::Dir(arg.to_path_buf()))
        };
        self.attach(location)
    }

    /// Gives a PostgreSQL store its password file; refuses one for a
    /// directory (it would be silently unused).
    pub fn attach(&self, location: StoreLocation) -> Result<StoreLocation, CliError> {
        match (location, &self.store_password_file) {
            (StoreLocation::Postgres(t), Some(f)) => {
                Ok(StoreLocation::Postgres(Box::new(t.with_password_file(f))))
            }
            (StoreLocation::Dir(d), Some(_)) => Err(CliError::usage(format!(
                "--store-password-file is for a PostgreSQL store; {} is a directory",
                d.display()
            ))),
            (location, None) => Ok(location),
        }
    }
}
