//! The SQLite backend: a directory holding the database (metadata and
//! block records, WAL mode) and the lock file. The embedded default; its
//! files are docs/FORMAT.md's "SQLite store".

mod batch;
pub(crate) use batch::free_space;
mod checkpoint;
mod inode_cache;
mod meta;
pub mod migrate;
mod page_cache;
pub mod segments;
mod statements;
mod wal_gather;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::rows::SegmentUsage;
use super::setup::{
    check_features, check_readable_version, initialise_volume, read_block_size, validate_block_size,
};
use super::tx::{ReadTx, WriteTx};
use super::{Durability, OpGuard, OpenOptions, StoreError, StoreLock};
use meta::SqliteTx;
use segments::{Extent, Segments};

pub const DB_FILE: &str = "llmfs.db";
/// How long the writer's connection waits for a lock another connection
/// holds (a checkpoint, a reader of the store) before SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct SqliteStore {
    dir: PathBuf,
    /// Declared first: dropping it commits the open batch while the
    /// writer connection is still open.
    _committer: Option<batch::Committer>,
    /// Declared before `writer` so that it stops before the request
    /// connection closes (the last connection to close checkpoints).
    _checkpointer: Option<checkpoint::Checkpointer>,
    writer: Arc<batch::Shared>,
    segments: Arc<Segments>,
    _lock: Option<StoreLock>,
}

impl SqliteStore {
    /// Opens the store in `dir`; returns it with its block size.
    pub(super) fn open(dir: &Path, opts: &OpenOptions) -> Result<(SqliteStore, usize), StoreError> {
        // Before SQLite's first use in the process (page_cache.rs).
        page_cache::install();
        let db_path = dir.join(DB_FILE);
        let exists = db_path.exists();
        if !exists && (!opts.create || opts.read_only) {
            return Err(StoreError::Missing(dir.display().to_string()));
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
        let mut conn = if opts.read_only {
            Connection::open_with_flags(&db_path, flags)?
        } else {
            // The writer gathers each commit's WAL frames into writes of
            // 64 KiB (wal_gather.rs).
            wal_gather::register()?;
            Connection::open_with_flags_and_vfs(&db_path, flags, wal_gather::VFS_NAME)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if !opts.read_only {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Invalid(format!(
                    "cannot switch the database to WAL mode (got {mode})"
                )));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // After a checkpoint the WAL keeps up to 64 MiB (the size at
            // which the checkpointer restarts it) rather than shrinking to
            // nothing: frames written over pages the file still has in the
            // page cache are plain copies, while frames that grow the file
            // make the kernel zero each new page first (about a tenth of
            // the daemon's CPU time in a sequential write). Past 64 MiB
            // the space goes back, as before, which matters on a full disk.
            conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
            // Checkpoints run on their own thread (checkpoint.rs).
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // This connection is the only writer, so its page cache stays
            // valid between transactions: 64 MiB (rather than SQLite's
            // 2 MB) holds the inode and directory trees of a large volume
            // beside the pages of recently written small files' records.
            // At 16 MiB, copying 5000 files of 14 KB already spilled it:
            // unlinks then read B-tree pages back through the kernel
            // (`examples/core_ops`, unlink 19-34 against 15 µs per file).
            // SQLite takes the memory only as pages are used.
            conn.pragma_update(None, "cache_size", -65536)?;
            // Each batched operation runs in a savepoint, whose statement
            // journal (the pages' contents before the operation) would
            // spill to a temporary file once a batch passes 64 KiB and
            // cost a write syscall per page. In memory it is a copy; it
            // never outlives its transaction.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            migrate::migrate(&mut conn)?;
            migrate::add_segment_tables(&mut conn)?;
            migrate::add_listing_index(&conn);
            // Triggers off: this connection records the extents it drops
            // itself (meta.rs, `free_extent`, which says why); the schema's
            // triggers stay for the builds that rely on them.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
        } else {
            check_readable_version(migrate::schema_version(&conn)?)?;
        }
        let segments = Arc::new(Segments::open(
            dir,
            migrate::has_segment_tables(&conn)?,
            opts.read_only,
        )?);
        if segments.enabled() {
            segments.numbers_used_up_to(conn.query_row(segments::NUMBERS_USED, [], |r| r.get(0))?);
        }
        {
            let tx = conn.transaction()?;
            check_features(&SqliteTx::new(&tx, &segments), opts.read_only)?;
            if !opts.read_only {
                tx.commit()?;
            }
        }
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let block_size = {
            let tx = conn.transaction()?;
            let bs = if opts.read_only {
                read_block_size(&SqliteTx::new(&tx, &segments))?
            } else {
                initialise_volume(&SqliteTx::new(&tx, &segments), opts.block_size)?
            };
            tx.commit()?;
            bs
        };
        let commits = Arc::new(checkpoint::CommitCounter::default());
        let writer = batch::Shared::new(batch::Writer::new(
            conn,
            dir,
            Arc::clone(&commits),
            !opts.read_only,
            Arc::clone(&segments),
        ));
        if !opts.read_only && segments.enabled() && segments.any() {
            // Space a crash kept from going back: dead extents, and
            // segments nothing names.
            if let Err(e) = writer.lock().reclaim(true) {
                log::warn!("giving back the space of deleted records failed (retried later): {e}");
            }
        }
        let checkpointer = if opts.read_only {
            None
        } else {
            Some(checkpoint::Checkpointer::start(
                &db_path,
                commits,
                Arc::clone(&writer),
                segments.enabled(),
            )?)
        };
        let committer = if opts.read_only {
            None
        } else {
            Some(batch::Committer::start(Arc::clone(&writer))?)
        };
        let store = SqliteStore {
            dir: dir.to_path_buf(),
            _committer: committer,
            _checkpointer: checkpointer,
            writer,
            segments,
            _lock: lock,
        };
        Ok((store, block_size))
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let (opened, result) = self.writer.lock().read(f);
        if opened {
            self.writer.opened();
        }
        result
    }

    /// A durable write commits at once with an fsync; a normal one joins
    /// the batch (batch.rs), kept apart from its other operations as
    /// `guard` says.
    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        guard: OpGuard,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut writer = self.writer.lock();
        match durability {
            Durability::Durable => writer.write_durable(f),
            Durability::Normal => {
                let (opened, result) = writer.write_batched(guard, f);
                drop(writer);
                if opened {
                    self.writer.opened();
                }
                result
            }
        }
    }

    /// Writes `records` into a segment file, on stable storage when this
    /// returns; `None` where records stay inline (a read-only store, tables
    /// that predate segments, a filesystem that cannot punch holes).
    pub(super) fn append_records(
        &self,
        records: &[&[u8]],
    ) -> Result<Option<Vec<Extent>>, StoreError> {
        if !self.segments.writable() {
            return Ok(None);
        }
        self.segments.append(records).map(Some)
    }

    /// The transaction meant to name `extents` has run (`named`: and
    /// named them).
    pub(super) fn settle_records(&self, extents: &[Extent], named: bool) {
        self.segments.settle(extents, named);
    }

    /// Moves the WAL's contents into the main database file (on unmount).
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer
            .lock()
            .checkpoint_between_batches("TRUNCATE", BUSY_TIMEOUT)
    }

    /// How much the segment files hold and take.
    pub(super) fn segment_usage(&self) -> Result<SegmentUsage, StoreError> {
        let (files, disk_bytes) = self.segments.disk_usage()?;
        let (records, record_bytes) = if self.segments.enabled() {
            self.writer.lock().conn().query_row(
                "SELECT COUNT(*), COALESCE(SUM(stored_len), 0) FROM blocks WHERE segment IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        } else {
            (0, 0)
        };
        Ok(SegmentUsage {
            files,
            disk_bytes,
            records,
            record_bytes,
        })
    }

    /// Checks the rows' extents against the segment files: (errors,
    /// warnings). Errors: extents that overlap, or lie past their file's
    /// end or in a missing file, and copies of a record's header and
    /// frame table (a row's `record`) that differ from the record's first
    /// bytes. Warnings: files no row names (space the next read-write open
    /// gives back).
    pub(super) fn segment_check(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        if !self.segments.enabled() {
            return Ok((Vec::new(), Vec::new()));
        }
        let writer = self.writer.lock();
        let mut stmt = writer.conn().prepare(
            "SELECT segment, seg_offset, stored_len, ino, idx, record FROM blocks \
             WHERE segment IS NOT NULL ORDER BY segment, seg_offset",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
                r.get::<_, u64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let lengths = self.segments.file_lengths()?;
        let mut errors = Vec::new();
        let mut named = std::collections::HashSet::new();
        let mut prev: Option<(u64, u64, u64, u64)> = None;
        for row in rows {
            let (segment, offset, len, ino, idx, prefix) = row?;
            named.insert(segment);
            let end = offset.saturating_add(len);
            match lengths.get(&segment) {
                None => errors.push(format!(
                    "block {idx} of inode {ino} is in segment {segment}, which is missing"
                )),
                Some(&file_len) if end > file_len => errors.push(format!(
                    "block {idx} of inode {ino} ends at byte {end} of segment {segment}, \
                     which has {file_len}"
                )),
                Some(_) if !prefix.is_empty() => {
                    let head = Extent {
                        segment,
                        offset,
                        len: (prefix.len() as u64).min(len),
                    };
                    match self.segments.read(head) {
                        Ok(bytes) if bytes == prefix => {}
                        Err(e) => errors.push(format!("block {idx} of inode {ino}: {e}")),
                        Ok(_) => errors.push(format!(
                            "block {idx} of inode {ino}: its row's copy of the record's \
                             header and frame table differs from the record in segment \
                             {segment} (reads of part of the block fall back to the whole \
                             record)"
                        )),
                    }
                }
                Some(_) => {}
            }
            if let Some((ps, pend, pino, pidx)) = prev {
                if ps == segment && offset < pend {
                    errors.push(format!(
                        "block {idx} of inode {ino} overlaps block {pidx} of inode {pino} \
                         in segment {segment}"
                    ));
                }
            }
            prev = Some((segment, end, ino, idx));
        }
        let mut warnings: Vec<String> = lengths
            .keys()
            .filter(|s| !named.contains(*s))
            .map(|s| {
                format!("segment {s} holds no live record (the next read-write open deletes it)")
            })
            .collect();
        warnings.sort();
        Ok((errors, warnings))
    }

    /// Runs SQLite's own consistency check of the database file.
    pub(super) fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let writer = self.writer.lock();
        let mut stmt = writer.conn().prepare("PRAGMA integrity_check")?;
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

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir)
        .map_err(|e| StoreError::io(format!("creating store directory {}", dir.display()), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| StoreError::io(format!("setting permissions on {}", dir.display()), e))
}
