//! The store: where a volume's metadata, block records and models live,
//! behind one interface with two backends. SQLite (the default, a directory
//! on this machine: `sqlite`) and PostgreSQL (a database on a server,
//! `postgres`). Callers run typed transactions ([`ReadTx`], [`WriteTx`])
//! through [`Store::read`] and [`Store::write`] and never see which backend
//! holds the volume. All SQL lives in this module.

mod error;
mod features;
mod location;
mod lock;
mod postgres;
mod rows;
mod setup;
mod sqlite;
mod tx;

use std::path::Path;

pub use self::postgres::{host_name, PgTarget, TlsMode, PG_TABLES_VERSION};
pub use error::StoreError;
pub use features::{Feature, FeatureSet, FEATURES_KEY};
pub use location::StoreLocation;
pub use lock::StoreLock;
pub use rows::{
    ArchiveTier, ArchiveTotals, BlockCount, BlockInfo, ByteTotals, CodecTotals, DictionaryRow,
    DirEntryRow, InodeRow, Lease, NewInode, SegmentUsage, StoreTotals,
};
pub use sqlite::migrate::{SCHEMA_VERSION, TABLES_VERSION};
pub use sqlite::segments::{Extent, SEGMENTS_DIR};
pub use sqlite::DB_FILE;
pub use tx::{BlockWrite, ReadTx, Reads, StoredRecord, WriteTx, Writes};

pub const ROOT_INO: u64 = 1;
pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;

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

/// Records written by [`Store::append_records`]: until dropped, their
/// segment is kept from being deleted; dropped without
/// [`Appended::named`] (the transaction that was to name them failed),
/// their space goes back at once.
#[derive(Debug)]
pub struct Appended<'s> {
    store: &'s sqlite::SqliteStore,
    extents: Vec<Extent>,
    named: bool,
}

impl Appended<'_> {
    /// Where each record went, in the order given.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The transaction naming the records ran.
    pub fn named(mut self) {
        self.named = true;
    }
}

impl Drop for Appended<'_> {
    fn drop(&mut self) {
        self.store.settle_records(&self.extents, self.named);
    }
}

/// Whether a write transaction must be durable when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Atomic. SQLite: joins a batch of operations that commits within
    /// 10 ms (sqlite/batch.rs), so a crash of the process or the machine
    /// may lose the operations of the last 10 ms, never part of one.
    /// PostgreSQL: committed at once, survives a crash of this process but
    /// may be lost with a crash of the database server.
    Normal,
    /// Atomic and on stable storage (SQLite: fsync; PostgreSQL: committed
    /// with `synchronous_commit` on).
    Durable,
}

/// How a normal write is kept apart from the other operations of the
/// SQLite store's batch (a PostgreSQL write is a transaction of its own,
/// and a durable write one of its own on either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpGuard {
    /// A savepoint of its own: an error rolls back this operation alone.
    Savepoint,
    /// None: the operation makes every check that can fail before its
    /// first change, so an error leaves nothing of it to take back. A
    /// savepoint costs SQLite a copy of every page the operation changes
    /// that the batch had changed already (its sub-journal): without it a
    /// create takes 5.2-5.7 µs in the core against 9.2-10.0, an unlink
    /// 16.7-24.3 against 20.4-31.2 (docs/DESIGN.md). Should such an
    /// operation fail after a change all the same (an I/O error), the
    /// batch is rolled back, as a crash would lose it, and the next
    /// durable write reports that.
    ChecksFirst,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(Box<postgres::PgStore>),
}

#[derive(Debug)]
pub struct Store {
    backend: Backend,
    location: StoreLocation,
    block_size: usize,
    read_only: bool,
    /// A local lock a PostgreSQL mount holds in its state directory for
    /// as long as it runs (`llmfs umount` waits for it).
    _state_lock: Option<StoreLock>,
}

/// Calls `$body` with `$b` bound to whichever backend the store has.
macro_rules! on_backend {
    ($store:expr, $b:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($b) => $body,
            Backend::Postgres($b) => $body,
        }
    };
}

impl Store {
    /// Opens the SQLite store in directory `dir`.
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        Store::open_at(&StoreLocation::Dir(dir.to_path_buf()), opts)
    }

    /// Opens the store at `location`, on its backend.
    pub fn open_at(location: &StoreLocation, opts: &OpenOptions) -> Result<Store, StoreError> {
        let (backend, block_size) = match location {
            StoreLocation::Dir(dir) => {
                let (s, bs) = sqlite::SqliteStore::open(dir, opts)?;
                (Backend::Sqlite(s), bs)
            }
            StoreLocation::Postgres(target) => {
                let (s, bs) = postgres::PgStore::open(target, opts, false)?;
                (Backend::Postgres(Box::new(s)), bs)
            }
        };
        Ok(Store {
            backend,
            location: location.clone(),
            block_size,
            read_only: opts.read_only,
            _state_lock: None,
        })
    }

    /// Opens an existing store as an archive worker (docs/DESIGN.md,
    /// "Archive workers"): a PostgreSQL volume beside its writer (a mount
    /// anywhere) and other workers, without the writer lock; the worker
    /// changes only block encodings, under the swap rule, on blocks it
    /// claimed ([`Writes::claim_blocks`]). A SQLite store has one writer
    /// process: it is opened as [`Store::open_at`] does, and refused while
    /// mounted.
    pub fn open_worker(location: &StoreLocation) -> Result<Store, StoreError> {
        let opts = OpenOptions::default();
        let StoreLocation::Postgres(target) = location else {
            return Store::open_at(location, &opts);
        };
        let (s, block_size) = postgres::PgStore::open(target, &opts, true)?;
        Ok(Store {
            backend: Backend::Postgres(Box::new(s)),
            location: location.clone(),
            block_size,
            read_only: false,
            _state_lock: None,
        })
    }

    /// Keeps `lock` until the store is dropped.
    pub fn hold_lock(&mut self, lock: StoreLock) {
        self._state_lock = Some(lock);
    }

    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The store's directory on this machine, for a SQLite store.
    pub fn dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.dir()),
            Backend::Postgres(_) => None,
        }
    }

    /// Bytes free for this process on the filesystem holding a SQLite
    /// store; `None` for PostgreSQL, whose server's disks are not visible
    /// from here, or where statvfs fails.
    pub fn local_free_bytes(&self) -> Option<u64> {
        self.dir().and_then(sqlite::free_space)
    }

    /// Whether other processes may change the volume beside this one
    /// (PostgreSQL: other mounts and archive workers): archivers then
    /// claim the blocks they encode, and an open checks whether another
    /// mount changed the file since this one cached it.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
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
        on_backend!(self, b => b.read(f))
    }

    /// Runs `f` inside a write transaction: everything it does commits
    /// together or not at all.
    pub fn write<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_guarded(durability, OpGuard::Savepoint, f)
    }

    /// As [`Store::write`], for `f` that makes every check that can fail
    /// before its first change ([`OpGuard::ChecksFirst`]): cheaper on the
    /// SQLite store. An error after a change (an I/O error) costs the
    /// batch the write joined, as a crash would.
    pub fn write_checked<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_guarded(durability, OpGuard::ChecksFirst, f)
    }

    /// [`Store::write`] or [`Store::write_checked`], as `guard` says.
    pub fn write_guarded<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        guard: OpGuard,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(b) => b.write(durability, guard, f),
            Backend::Postgres(b) => b.write(durability, f),
        }
    }

    /// Writes block records into segment files beside the database (the
    /// SQLite store's `segments/`), on stable storage when this returns, so
    /// that a transaction may then name them ([`Writes::put_block_at`])
    /// instead of storing them inline. `None` where records stay inline:
    /// PostgreSQL, a read-only store, a filesystem that cannot punch holes.
    pub fn append_records(&self, records: &[&[u8]]) -> Result<Option<Appended<'_>>, StoreError> {
        let Backend::Sqlite(s) = &self.backend else {
            return Ok(None);
        };
        if self.read_only {
            return Ok(None);
        }
        Ok(s.append_records(records)?.map(|extents| Appended {
            store: s,
            extents,
            named: false,
        }))
    }

    /// Makes every write so far durable (on stable storage when this
    /// returns), the open batch of commits included: `fsync`, `fsyncdir`
    /// and unmount. A no-op on a read-only store.
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        // A durable commit makes every earlier commit durable with it (the
        // log is sequential on both backends); the sync generation it bumps
        // makes sure it writes something.
        self.write(Durability::Durable, |_| Ok::<_, StoreError>(()))
    }

    /// Moves SQLite's WAL into the main database file (on unmount); the
    /// PostgreSQL server checkpoints by itself.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) if !self.read_only => s.checkpoint(),
            _ => Ok(()),
        }
    }

    /// Runs the database's own consistency check: SQLite's integrity
    /// check of its file. A PostgreSQL server checks its own pages
    /// (checksums, amcheck) under its administrator's control: nothing.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.integrity_check(),
            Backend::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// Checks the extents of block records kept in segment files (a
    /// SQLite store's `segments/`) against the files: (errors, warnings).
    pub fn segment_check(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.segment_check(),
            Backend::Postgres(_) => Ok((Vec::new(), Vec::new())),
        }
    }

    /// What a store directory's segment files hold and take; `None` on
    /// PostgreSQL.
    pub fn segment_usage(&self) -> Result<Option<SegmentUsage>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.segment_usage().map(Some),
            Backend::Postgres(_) => Ok(None),
        }
    }

    /// Bytes the database holds on its server (PostgreSQL), for statfs.
    pub fn server_bytes(&self) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(p) => p.database_bytes().map(Some),
        }
    }
}
