//! The store: a directory holding the SQLite database (metadata and block
//! records, WAL mode) and the lock file. All SQL lives in this module.

mod checkpoint;
mod error;
mod features;
mod lock;
mod meta;
pub mod migrate;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use error::StoreError;
pub use features::{Feature, FeatureSet, FEATURES_KEY};
pub use lock::StoreLock;
pub use meta::{
    ArchiveTier, ArchiveTotals, BlockInfo, ByteTotals, CodecTotals, DictionaryRow, DirEntryRow,
    InodeRow, NewInode, ReadTx, StoreTotals, WriteTx,
};
pub use migrate::{SCHEMA_VERSION, TABLES_VERSION};

pub const DB_FILE: &str = "llmfs.db";
pub const ROOT_INO: u64 = 1;
pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;
const MIN_BLOCK_SIZE: usize = 4096;
const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the store if it does not exist.
    pub create: bool,
    /// Block size for a new store (ignored when the store exists).
    pub block_size: usize,
    /// Open for reading only: no lock, no migration, no writes.
    pub read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: false,
            block_size: DEFAULT_BLOCK_SIZE,
            read_only: false,
        }
    }
}

/// Whether a write transaction must be durable when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Atomic, and survives a process crash; may be lost on power failure.
    Normal,
    /// Atomic and on stable storage (fsync).
    Durable,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Declared before `conn` so that it stops before the request
    /// connection closes (the last connection to close checkpoints).
    _checkpointer: Option<checkpoint::Checkpointer>,
    conn: Mutex<Connection>,
    commits: Arc<checkpoint::CommitCounter>,
    block_size: usize,
    read_only: bool,
    _lock: Option<StoreLock>,
}

impl Store {
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        let db_path = dir.join(DB_FILE);
        let exists = db_path.exists();
        if !exists && (!opts.create || opts.read_only) {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        if !exists {
            validate_block_size(opts.block_size)?;
            create_private_dir(dir)?;
            // Create the database file 0600 ourselves: SQLite gives its WAL and
            // shared-memory files the permissions of the main file.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&db_path)
                .map_err(|e| StoreError::io(format!("creating {}", db_path.display()), e))?;
        }
        let lock = if opts.read_only {
            None
        } else {
            Some(StoreLock::acquire(dir)?)
        };
        let flags = if opts.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = Connection::open_with_flags(&db_path, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        if !opts.read_only {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Invalid(format!(
                    "cannot switch the database to WAL mode (got {mode})"
                )));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Give the WAL's space back after each checkpoint instead of
            // keeping the file at its high-water mark (matters on a full disk).
            conn.pragma_update(None, "journal_size_limit", 8 << 20)?;
            // Checkpoints run on their own thread (checkpoint.rs).
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // This connection is the only writer, so its page cache stays
            // valid between transactions: 16 MiB (rather than SQLite's
            // 2 MB) holds the inode and directory trees of a large volume.
            conn.pragma_update(None, "cache_size", -16384)?;
            migrate::migrate(&mut conn)?;
        } else {
            let found = migrate::schema_version(&conn)?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            if found < TABLES_VERSION {
                return Err(StoreError::Invalid(format!(
                    "schema version {found} needs migrating; open the store read-write once"
                )));
            }
        }
        check_features(&mut conn, opts.read_only)?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let block_size = if !opts.read_only {
            initialise_volume(&mut conn, opts.block_size)?
        } else {
            read_block_size(&conn)?
        };
        let commits = Arc::new(checkpoint::CommitCounter::default());
        let checkpointer = if opts.read_only {
            None
        } else {
            Some(checkpoint::Checkpointer::start(
                &db_path,
                Arc::clone(&commits),
            )?)
        };
        Ok(Store {
            dir: dir.to_path_buf(),
            _checkpointer: checkpointer,
            conn: Mutex::new(conn),
            commits,
            block_size,
            read_only: opts.read_only,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the
        // transaction rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside a read transaction (a consistent snapshot). A
    /// [`ReadTx`] has no method that writes, so a change inside a read does
    /// not compile:
    ///
    /// ```compile_fail
    /// # fn f(store: &llmfs::store::Store) {
    /// store.read(|m| m.set_volume_setting("k", "v"));
    /// # }
    /// ```
    ///
    /// while the same closure in [`Store::write`] does:
    ///
    /// ```
    /// # fn f(store: &llmfs::store::Store) {
    /// # use llmfs::store::{Durability, StoreError};
    /// store.write(Durability::Normal, |m| m.set_volume_setting("k", "v"));
    /// # }
    /// ```
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&ReadTx::new(&tx))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` inside a write transaction: everything it does commits
    /// together or not at all.
    pub fn write<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        if durability == Durability::Durable {
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(StoreError::from)?;
        }
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let meta = WriteTx::new(&tx);
            let out = f(&meta)?;
            if durability == Durability::Durable {
                // A commit syncs the WAL only if it wrote a frame; bump a
                // counter so that this commit, and every earlier one, is
                // on stable storage when it returns.
                meta.bump_sync_generation()?;
            }
            tx.commit().map_err(StoreError::from)?;
            self.commits.committed();
            Ok(out)
        })();
        if durability == Durability::Durable {
            let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        }
        result
    }

    /// Makes every transaction committed so far durable (on stable storage
    /// when this returns): `fsync`, `fsyncdir` and unmount. A no-op on a
    /// read-only store.
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        // A durable commit syncs the WAL, and with it every earlier commit;
        // the sync generation it bumps makes sure it writes a frame.
        self.write(Durability::Durable, |_| Ok::<_, StoreError>(()))
    }

    /// Moves the WAL's contents into the main database file (on unmount).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs SQLite's own consistency check of the database file.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if row != "ok" {
                out.push(row);
            }
        }
        Ok(out)
    }
}

fn validate_block_size(bs: usize) -> Result<(), StoreError> {
    if !bs.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
        return Err(StoreError::Invalid(format!(
            "block size {bs} must be a power of two between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
        )));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir)
        .map_err(|e| StoreError::io(format!("creating store directory {}", dir.display()), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| StoreError::io(format!("setting permissions on {}", dir.display()), e))
}

/// Writes the volume settings and the root directory into a new store, or
/// reads the block size of an existing one.
fn initialise_volume(conn: &mut Connection, block_size: usize) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let existing: Option<String> = {
        let mut stmt = tx.prepare("SELECT value FROM volume WHERE key = 'block_size'")?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        }
    };
    let bs = match existing {
        Some(v) => {
            let bs: usize = v
                .parse()
                .map_err(|_| StoreError::Invalid(format!("block_size {v:?} is not a number")))?;
            validate_block_size(bs)?;
            bs
        }
        None => {
            validate_block_size(block_size)?;
            let now = crate::time::now_ns();
            tx.execute(
                "INSERT INTO volume(key, value) VALUES ('block_size', ?1), ('created_ns', ?2), \
                 ('sync_generation', '0')",
                rusqlite::params![block_size.to_string(), now.to_string()],
            )?;
            // SAFETY: getuid/getgid cannot fail.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            tx.execute(
                "INSERT INTO inodes(ino, mode, uid, gid, nlink, atime_ns, mtime_ns, ctime_ns, \
                 crtime_ns) VALUES (?1, ?2, ?3, ?4, 2, ?5, ?5, ?5, ?5)",
                rusqlite::params![ROOT_INO, libc::S_IFDIR | 0o755, uid, gid, now],
            )?;
            block_size
        }
    };
    tx.commit()?;
    Ok(bs)
}

/// Reads the volume's feature set and refuses a store that needs a feature
/// this build does not know. A store raised to version 3 by an llmfs that
/// predates the feature set may hold LZMA2 records without saying so: it is
/// taken to (and, read-write, recorded as) using `lzma`. Read-write, the
/// schema version is brought up to what the features need.
fn check_features(conn: &mut Connection, read_only: bool) -> Result<FeatureSet, StoreError> {
    let tx = conn.transaction()?;
    let version = migrate::schema_version(&tx)?;
    let text: Option<String> = tx
        .query_row(
            "SELECT value FROM volume WHERE key = ?1",
            [FEATURES_KEY],
            |r| r.get(0),
        )
        .optional()?;
    let mut set = match &text {
        Some(t) => FeatureSet::parse(t).map_err(StoreError::UnknownFeatures)?,
        None => FeatureSet::default(),
    };
    if text.is_none() && version >= Feature::Lzma.schema_version() {
        set.insert(Feature::Lzma);
    }
    if !read_only {
        if !set.is_empty() && text.as_deref() != Some(&*set.to_text()) {
            tx.execute(
                "INSERT OR REPLACE INTO volume(key, value) VALUES (?1, ?2)",
                [FEATURES_KEY, &set.to_text()],
            )?;
        }
        let want = set.schema_version(version);
        if want > version {
            tx.pragma_update(None, "user_version", want)?;
        }
        tx.commit()?;
    }
    Ok(set)
}

fn read_block_size(conn: &Connection) -> Result<usize, StoreError> {
    let v: String = conn
        .query_row(
            "SELECT value FROM volume WHERE key = 'block_size'",
            [],
            |r| r.get(0),
        )
        .map_err(|_| StoreError::Invalid("volume settings are missing".into()))?;
    let bs: usize = v
        .parse()
        .map_err(|_| StoreError::Invalid(format!("block_size {v:?} is not a number")))?;
    validate_block_size(bs)?;
    Ok(bs)
}
