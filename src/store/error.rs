use std::fmt;
use std::io;

/// Why a store could not be opened or used.
#[derive(Debug)]
pub enum StoreError {
    /// No store exists at the path and creation was not asked for.
    Missing(String),
    /// Another process holds the store's lock (it is mounted elsewhere).
    Locked { store: String, holder: String },
    /// The store's address or credentials are unusable (a bad URL, a
    /// password on the command line, an unreadable password file).
    BadLocation(String),
    /// The store was written by a newer llmfs.
    TooNew { found: u32, supported: u32 },
    /// The store needs features (kinds of record) this llmfs does not know.
    UnknownFeatures(Vec<String>),
    /// The store's metadata is not what llmfs wrote (bad settings, bad schema).
    Invalid(String),
    /// SQLite reported an error.
    Sql(rusqlite::Error),
    /// PostgreSQL (the server or the connection to it) reported an error.
    Pg(postgres::Error),
    /// A file operation on the store directory failed.
    Io { what: String, source: io::Error },
    /// A batch of operations that had returned but were not yet committed
    /// failed to commit (SQLite's group commit): they are gone, as after a
    /// crash. `disk_full`: the commit failed for want of space.
    BatchLost {
        ops: u32,
        cause: String,
        disk_full: bool,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Missing(p) => write!(f, "no llmfs store at {p}"),
            StoreError::Locked { store, holder } => write!(
                f,
                "store {store} is in use by another llmfs process ({holder}); unmount it first"
            ),
            StoreError::BadLocation(msg) => write!(f, "store address: {msg}"),
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
            StoreError::Pg(e) => match e.as_db_error() {
                // The server's message, detail and hint, not just its code.
                Some(db) => write!(f, "PostgreSQL error: {db}"),
                // The driver's message alone ("error performing TLS
                // handshake") hides the reason, which is in its sources.
                None => {
                    write!(f, "PostgreSQL error: {e}")?;
                    let mut source = std::error::Error::source(e);
                    while let Some(s) = source {
                        write!(f, ": {s}")?;
                        source = s.source();
                    }
                    Ok(())
                }
            },
            StoreError::Io { what, source } => write!(f, "{what}: {source}"),
            StoreError::BatchLost { ops, cause, .. } => write!(
                f,
                "{ops} operation(s) that had returned but were not yet committed are lost: {cause}"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sql(e) => Some(e),
            StoreError::Pg(e) => Some(e),
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

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Pg(e)
    }
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: io::Error) -> StoreError {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// True when a transaction that yields to writers
    /// (`Writes::yield_to_writers`) gave up waiting for a row lock, or the
    /// server broke a deadlock by failing it: nothing was changed, and the
    /// same work can be tried again later.
    pub fn is_contention(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            StoreError::Pg(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
            ),
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DatabaseBusy
            }
            _ => false,
        }
    }

    /// True when the database ran out of space (SQLite on the store's
    /// filesystem, PostgreSQL on the server's).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Pg(e) => e.code() == Some(&postgres::error::SqlState::DISK_FULL),
            StoreError::BatchLost { disk_full, .. } => *disk_full,
            StoreError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            _ => false,
        }
    }
}
