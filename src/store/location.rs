//! Where a store is: a directory (SQLite) or a PostgreSQL database, as
//! the `--store` argument and the store arguments of the subcommands give
//! it.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;

use super::postgres::PgTarget;
use super::StoreError;

#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A SQLite store: the directory holding `llmfs.db`.
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://...` or `postgresql://...`).
    Postgres(Box<PgTarget>),
}

impl StoreLocation {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL store;
    /// anything else is a directory.
    pub fn parse(arg: &OsStr) -> Result<StoreLocation, StoreError> {
        match arg.to_str() {
            Some(s) if PgTarget::is_url(s) => {
                Ok(StoreLocation::Postgres(Box::new(PgTarget::parse(s)?)))
            }
            _ => Ok(StoreLocation::Dir(PathBuf::from(arg))),
        }
    }

    /// True when `arg` names a PostgreSQL store.
    pub fn is_postgres(arg: &OsStr) -> bool {
        arg.to_str().is_some_and(PgTarget::is_url)
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Dir(d) => write!(f, "{}", d.display()),
            StoreLocation::Postgres(t) => write!(f, "{t}"),
        }
    }
}
