use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a store could not be opened or used.
#[derive(Debug)]
pub enum StoreError {
    /// No store exists at the path and creation was not asked for.
    Missing(PathBuf),
    /// Another process holds the store's lock (it is mounted elsewhere).
    Locked { dir: PathBuf, holder: String },
    /// The store was written by a newer llmfs.
    TooNew { found: u32, supported: u32 },
    /// The store needs features (kinds of record) this llmfs does not know.
    UnknownFeatures(Vec<String>),
    /// The store's metadata is not what llmfs wrote (bad settings, bad schema).
    Invalid(String),
    /// SQLite reported an error.
    Sql(rusqlite::Error),
    /// A file operation on the store directory failed.
    Io { what: String, source: io::Error },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Missing(p) => write!(f, "no llmfs store at {}", p.display()),
            StoreError::Locked { dir, holder } => write!(
                f,
                "store {} is in use by another llmfs process ({holder}); unmount it first",
                dir.display()
            ),
            StoreError::TooNew { found, supported } => write!(
                f,
                "store schema version {found} is newer than this llmfs supports ({supported}); \
                 upgrade llmfs to open it"
            ),
            StoreError::UnknownFeatures(names) => write!(
                f,
                "store uses features this llmfs does not support ({}); upgrade llmfs to open it",
                names.join(", ")
            ),
            StoreError::Invalid(msg) => write!(f, "store is damaged or not an llmfs store: {msg}"),
            StoreError::Sql(e) => write!(f, "store database error: {e}"),
            StoreError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sql(e) => Some(e),
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e)
    }
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: io::Error) -> StoreError {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// True when SQLite ran out of space on the store's filesystem.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Sql(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}
