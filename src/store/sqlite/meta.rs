//! The typed queries of [`Reads`] and [`Writes`] on SQLite, run inside a
//! transaction that `Store::read` or `Store::write` holds.

use std::cell::Cell;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::inode_cache::InodeCache;
use super::segments::{Extent, Segments};
use super::statements::{Statements, Stmt};
use crate::store::features::Feature;
use crate::store::rows::{
    ArchiveTier, ArchiveTotals, BlockCount, BlockInfo, ByteTotals, CodecTotals, DictionaryRow,
    DirEntryRow, InodeRow, Lease, NewInode, StoreTotals,
};
use crate::store::tx::StoredRecord;
use crate::store::tx::{require_feature, require_feature_of, BackendTx, BlockWrite, Reads, Writes};
use crate::store::StoreError;

/// `UPDATE inodes SET` every attribute but `stored_bytes` (`?2` to `?11`),
/// without the row's condition.
macro_rules! update_inode {
    () => {
        "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, nlink = ?5, size = ?6, rdev = ?7, \
         atime_ns = ?8, mtime_ns = ?9, ctime_ns = ?10, crtime_ns = ?11"
    };
}
/// Every attribute of inode `?1` but `stored_bytes`.
const UPDATE_INODE: &str = concat!(update_inode!(), " WHERE ino = ?1");
/// As [`UPDATE_INODE`], `stored_bytes` moved by `?12`.
const UPDATE_INODE_ADDING: &str = concat!(
    update_inode!(),
    ", stored_bytes = stored_bytes + ?12 WHERE ino = ?1"
);

type Result<T> = std::result::Result<T, StoreError>;

/// SQL condition: an llm record of a float model (payload version 1 or 2,
/// the payload's first byte after the 20-byte record header).
const NOT_PORTABLE: &str = "codec = 2 AND substr(record, 21, 1) IN (x'01', x'02')";

/// The inode columns, in `inode_from_row`'s order: a macro, so that the
/// hottest query below is one string built at compile time rather than
/// formatted on every `getattr` and `lookup` (which showed in profiles of
/// a run of stats).
macro_rules! inode_columns {
    () => {
        "ino, mode, uid, gid, nlink, size, stored_bytes, rdev, atime_ns, \
         mtime_ns, ctime_ns, crtime_ns, target"
    };
}
const INODE_COLUMNS: &str = inode_columns!();
const INODE_BY_INO: &str = concat!("SELECT ", inode_columns!(), " FROM inodes WHERE ino = ?1");

/// The rows [`Meta::out_of_range_rows`] does not name.
const IN_RANGE_INODE: &str = "ino >= 1 AND mode BETWEEN 0 AND 4294967295 \
     AND uid BETWEEN 0 AND 4294967295 AND gid BETWEEN 0 AND 4294967295 \
     AND nlink BETWEEN 0 AND 4294967295 AND rdev BETWEEN 0 AND 4294967295 \
     AND size >= 0 AND stored_bytes >= 0";
const IN_RANGE_BLOCK: &str = "ino >= 1 AND idx >= 0 AND codec BETWEEN 0 AND 255 \
     AND raw_len >= 0 AND stored_len >= 0";

fn inode_from_row(r: &Row<'_>) -> rusqlite::Result<InodeRow> {
    Ok(InodeRow {
        ino: r.get(0)?,
        mode: r.get(1)?,
        uid: r.get(2)?,
        gid: r.get(3)?,
        nlink: r.get(4)?,
        size: r.get(5)?,
        stored_bytes: r.get(6)?,
        rdev: r.get(7)?,
        atime_ns: r.get(8)?,
        mtime_ns: r.get(9)?,
        ctime_ns: r.get(10)?,
        crtime_ns: r.get(11)?,
        target: r.get(12)?,
    })
}

/// A block row's record as the row holds it.
enum RowRecord {
    Inline(Vec<u8>),
    /// In a segment, with the row's copy of the record's first bytes.
    At(Extent, Vec<u8>),
}

/// A transaction on the SQLite connection: the queries of [`Reads`] and,
/// through `Store::write` only, the changes of [`Writes`].
pub(in crate::store) struct SqliteTx<'c, 'k> {
    conn: &'k Connection,
    /// Where records outside the database live.
    segments: &'c Arc<Segments>,
    /// Bytes of records, models and dictionaries this transaction stored
    /// (what bounds a batch of commits, batch.rs).
    written: Cell<u64>,
    /// The writer's inode rows (inode_cache.rs), which every change of
    /// `inodes` here keeps exact; `None` on other connections.
    cache: Option<&'c InodeCache>,
    /// The writer's prepared statements (statements.rs); `None` on other
    /// connections, which use rusqlite's cache.
    kept: Option<&'c Statements<'k>>,
}

impl<'c> SqliteTx<'c, 'c> {
    pub(in crate::store) fn new(
        conn: &'c Connection,
        segments: &'c Arc<Segments>,
    ) -> SqliteTx<'c, 'c> {
        SqliteTx {
            conn,
            segments,
            written: Cell::new(0),
            cache: None,
            kept: None,
        }
    }
}

impl<'c, 'k> SqliteTx<'c, 'k> {
    /// As `new`, on the writer's connection (`kept`'s) with its prepared
    /// statements and inode rows.
    pub(in crate::store) fn writer(
        kept: &'c Statements<'k>,
        segments: &'c Arc<Segments>,
        cache: Option<&'c InodeCache>,
    ) -> SqliteTx<'c, 'k> {
        SqliteTx {
            conn: kept.conn(),
            segments,
            written: Cell::new(0),
            cache,
            kept: Some(kept),
        }
    }

    /// The prepared statement of `sql`, one of this crate's constants.
    fn stmt(&self, sql: &'static str) -> Result<Stmt<'c, 'k>> {
        Ok(Stmt::prepare(self.conn, self.kept, sql)?)
    }

    pub(in crate::store) fn written(&self) -> u64 {
        self.written.get()
    }

    fn wrote(&self, bytes: usize) {
        self.written.set(self.written.get() + bytes as u64);
    }

    /// Where the record of block (`ino`, `idx`) lives, as its row says:
    /// inline bytes, or an extent of a segment (not read yet).
    fn row_at(&self, ino: u64, idx: u64) -> Result<Option<RowRecord>> {
        if !self.segments.enabled() {
            let mut stmt = self.stmt("SELECT record FROM blocks WHERE ino = ?1 AND idx = ?2")?;
            let record = stmt.query_row([ino, idx], |r| r.get(0)).optional()?;
            return Ok(record.map(RowRecord::Inline));
        }
        let mut stmt = self.stmt(
            "SELECT record, segment, seg_offset, stored_len FROM blocks WHERE ino = ?1 AND idx = ?2",
        )?;
        Ok(stmt
            .query_row([ino, idx], |r| {
                Ok(match r.get::<_, Option<u64>>(1)? {
                    Some(segment) => RowRecord::At(
                        Extent {
                            segment,
                            offset: r.get(2)?,
                            len: r.get(3)?,
                        },
                        r.get(0)?,
                    ),
                    None => RowRecord::Inline(r.get(0)?),
                })
            })
            .optional()?)
    }

    /// The record of block (`ino`, `idx`) with where it lives: inline
    /// (`None`) or in a segment.
    fn block_at(&self, ino: u64, idx: u64) -> Result<Option<(Vec<u8>, Option<Extent>)>> {
        Ok(match self.row_at(ino, idx)? {
            None => None,
            Some(RowRecord::Inline(record)) => Some((record, None)),
            Some(RowRecord::At(extent, _)) => Some((self.segments.read(extent)?, Some(extent))),
        })
    }

    /// `swap_archived_block` of a block whose record is at `extent`
    /// (`current` its bytes).
    #[allow(clippy::too_many_arguments)]
    fn swap_segment_block(
        &self,
        ino: u64,
        idx: u64,
        old: &[u8],
        current: &[u8],
        extent: Extent,
        new: Option<(u8, &[u8])>,
        tier: u8,
    ) -> Result<bool> {
        if current != old {
            return Ok(false);
        }
        let changed = match new {
            Some((codec, record)) => {
                let changed = self.stmt(
                        "UPDATE blocks SET codec = ?3, stored_len = ?4, record = ?5, archived = ?6, \
                         segment = NULL, seg_offset = NULL \
                         WHERE ino = ?1 AND idx = ?2 AND segment = ?7 AND seg_offset = ?8",
                    )?
                    .execute(params![
                        ino,
                        idx,
                        codec,
                        record.len() as u64,
                        record,
                        tier,
                        extent.segment,
                        extent.offset
                    ])?;
                if changed == 1 {
                    self.free_extent(extent)?;
                }
                changed
            }
            None => self
                .stmt(
                    "UPDATE blocks SET archived = ?3 \
                     WHERE ino = ?1 AND idx = ?2 AND segment = ?4 AND seg_offset = ?5",
                )?
                .execute(params![ino, idx, tier, extent.segment, extent.offset])?,
        };
        self.swapped(ino, changed == 1, old, new)
    }

    /// After a swap's UPDATE: keeps `stored_bytes` in step if it changed
    /// the record; returns whether it changed the row.
    fn swapped(
        &self,
        ino: u64,
        changed: bool,
        old: &[u8],
        new: Option<(u8, &[u8])>,
    ) -> Result<bool> {
        if let (true, Some((_, record))) = (changed, new) {
            self.add_stored_bytes(ino, record.len() as i64 - old.len() as i64)?;
        }
        Ok(changed)
    }

    /// Writes the pending inode updates the writer holds (inode_cache.rs):
    /// before its batch commits, before an operation that may roll back
    /// to a savepoint, and before a statement that reads `inodes` other
    /// than through the writer's rows.
    pub(super) fn write_pending(&self) -> Result<()> {
        let Some(c) = self.cache.filter(|c| c.any_pending()) else {
            return Ok(());
        };
        for row in c.pending() {
            self.run_update_inode(&row, 0)?;
        }
        c.written();
        Ok(())
    }

    /// `UPDATE_INODE` of `i`, or with `stored_bytes` moving by
    /// `stored_delta` (`UPDATE_INODE_ADDING`); nothing else.
    fn run_update_inode(&self, i: &InodeRow, stored_delta: i64) -> Result<()> {
        let all = params![
            i.ino,
            i.mode,
            i.uid,
            i.gid,
            i.nlink,
            i.size,
            i.rdev,
            i.atime_ns,
            i.mtime_ns,
            i.ctime_ns,
            i.crtime_ns,
            stored_delta
        ];
        // Without a move, the statement that leaves `stored_bytes` alone
        // (all but the last parameter): a parameter fewer on every
        // directory's update.
        if stored_delta == 0 {
            self.stmt(UPDATE_INODE)?.execute(&all[..all.len() - 1])?;
        } else {
            self.stmt(UPDATE_INODE_ADDING)?.execute(all)?;
        }
        Ok(())
    }

    /// Writes back every attribute of an inode but `stored_bytes`, which
    /// moves by `stored_delta` in the same UPDATE ([`Writes::write_back`]).
    fn update_inode_adding(&self, i: &InodeRow, stored_delta: i64) -> Result<()> {
        self.run_update_inode(i, stored_delta)?;
        if let Some(c) = self.cache {
            c.updated(i, stored_delta);
        }
        Ok(())
    }

    /// Moves `inodes.stored_bytes` of `ino` by `delta` bytes.
    fn add_stored_bytes(&self, ino: u64, delta: i64) -> Result<()> {
        if delta != 0 {
            self.stmt("UPDATE inodes SET stored_bytes = stored_bytes + ?2 WHERE ino = ?1")?
                .execute(params![ino, delta])?;
            if let Some(row) = self.cache.and_then(|c| c.added(ino, delta)) {
                self.run_update_inode(&row, 0)?;
            }
        }
        Ok(())
    }

    /// Stores block (`ino`, `idx`)'s row: its record inline (`extent`
    /// `None`), or the extent it was written at with `record` the copy of
    /// its header and frame table; returns how much `inodes.stored_bytes`
    /// must move (the caller moves it: [`SqliteTx::add_stored_bytes`], or
    /// with the inode's update in a write-back). A row
    /// already there is updated in place rather than deleted and inserted
    /// again: its key keeps its place in the primary key's index, so a
    /// block rewritten (an append after `fsync` or `close`) changes one
    /// page fewer, and takes two statements fewer. Every column but the
    /// key is set, as an insert would; the extent the row named before,
    /// if any, is freed as a delete's would be.
    #[allow(clippy::too_many_arguments)]
    fn set_block_row(
        &self,
        ino: u64,
        idx: u64,
        codec: u8,
        raw_len: u64,
        stored_len: u64,
        record: &[u8],
        extent: Option<Extent>,
    ) -> Result<i64> {
        let old: Option<(u64, Option<Extent>)> = self
            .stmt("SELECT stored_len, segment, seg_offset FROM blocks WHERE ino = ?1 AND idx = ?2")?
            .query_row(params![ino, idx], len_and_extent)
            .optional()?;
        // A block the write path already coded with the model (the
        // synchronous mode) needs no archiving.
        let archived = i64::from(codec == crate::codec::CodecId::Llm as u8);
        // Every writable open adds the segment columns (`add_segment_tables`),
        // so a row written here names them, NULL for an inline record.
        let (segment, offset) = extent.map_or((None, None), |e| (Some(e.segment), Some(e.offset)));
        let sql = if old.is_some() {
            "UPDATE blocks SET codec = ?3, raw_len = ?4, stored_len = ?5, record = ?6, \
             written_ns = ?7, archived = ?8, segment = ?9, seg_offset = ?10 \
             WHERE ino = ?1 AND idx = ?2"
        } else {
            "INSERT INTO blocks(ino, idx, codec, raw_len, stored_len, record, written_ns, \
             archived, segment, seg_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        };
        self.stmt(sql)?.execute(params![
            ino,
            idx,
            codec,
            raw_len,
            stored_len,
            record,
            crate::time::now_ns(),
            archived,
            segment,
            offset,
        ])?;
        // The extent the row named before goes, unless the row still names
        // it (what the trigger `blocks_extent_moved` does).
        if let Some((_, Some(was))) = old {
            if extent.is_none_or(|e| (e.segment, e.offset) != (was.segment, was.offset)) {
                self.free_extent(was)?;
            }
        }
        Ok(stored_len as i64 - old.map_or(0, |(len, _)| len) as i64)
    }

    /// Stores block (`ino`, `idx`)'s row for `b` (after the checks
    /// `put_block` and `put_block_at` make); returns how much the inode's
    /// `stored_bytes` must move, which the caller records.
    fn store_block(&self, ino: u64, idx: u64, b: &BlockWrite<'_>) -> Result<i64> {
        let Some(extent) = b.extent else {
            require_feature_of(self, b.codec, b.record)?;
            self.wrote(b.record.len());
            let len = b.record.len() as u64;
            return self.set_block_row(ino, idx, b.codec, b.raw_len, len, b.record, None);
        };
        // Checked before a feature is recorded: a refused extent changes
        // nothing.
        if !self.segments.enabled() || extent.len != b.record.len() as u64 {
            return Err(StoreError::Invalid(
                "a segment extent for a store or record it does not fit".into(),
            ));
        }
        require_feature_of(self, b.codec, b.record)?;
        require_feature(self, Feature::Segments)?;
        self.set_block_row(
            ino,
            idx,
            b.codec,
            b.raw_len,
            extent.len,
            &b.record[..crate::codec::span_prefix_len(b.record)],
            Some(extent),
        )
    }

    fn delete_blocks_where(&self, ino: u64, rows: &BlockRows, idx: u64) -> Result<()> {
        let freed = self.delete_block_rows(rows, ino, idx)?;
        self.add_stored_bytes(ino, -(freed as i64))
    }

    /// Deletes the block rows of `ino` that `rows` picks (over `?2` =
    /// `idx`), recording the extents of those in segments (what the
    /// trigger `blocks_extent_deleted` does; see
    /// [`free_extent`](Self::free_extent)); returns the bytes their
    /// records held. The extents are looked for only where the tally
    /// found some: recording none still cost an `INSERT ... SELECT`,
    /// a sixth of a small file's unlink (docs/MEASUREMENTS.md).
    fn delete_block_rows(&self, rows: &BlockRows, ino: u64, idx: u64) -> Result<u64> {
        let (found, freed, in_segments): (u64, u64, u64) = self
            .stmt(rows.tally)?
            .query_row(params![ino, idx], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        if found == 0 {
            return Ok(0);
        }
        if in_segments > 0 {
            self.stmt(rows.free_extents)?.execute(params![ino, idx])?;
        }
        self.stmt(rows.delete)?.execute(params![ino, idx])?;
        Ok(freed)
    }

    /// Records in `dead_extents` an extent that no row names any more, in
    /// the transaction that dropped it, for [`Segments::reclaim`] to give
    /// back once that is on stable storage.
    ///
    /// The schema's triggers `blocks_extent_deleted` and
    /// `blocks_extent_moved` (migrations/0014) did this, and stay for the
    /// builds that rely on them; the writer connection runs with triggers
    /// off (`SqliteStore::open`), because SQLite codes a trigger into
    /// every delete and every rewrite of a block row, inline or not, with
    /// the old row copied out for it: on a small file's unlink that was
    /// about 5 of the 47 µs of the daemon's CPU (docs/MEASUREMENTS.md). Every
    /// statement of this module that deletes a block row or changes its
    /// `segment` or `seg_offset` records the extent it drops here.
    /// Whether `xattrs` may hold rows: asked of SQLite once per writer
    /// (inode_cache.rs says why), and always "yes" on a connection
    /// without the writer's cache.
    fn may_hold_xattrs(&self) -> Result<bool> {
        let Some(c) = self.cache else {
            return Ok(true);
        };
        if let Some(known) = c.xattrs() {
            return Ok(known);
        }
        let any = self
            .stmt("SELECT EXISTS (SELECT 1 FROM xattrs)")?
            .query_row([], |r| r.get(0))?;
        c.set_xattrs(any);
        Ok(any)
    }

    fn free_extent(&self, e: Extent) -> Result<()> {
        self.stmt("INSERT INTO dead_extents(segment, seg_offset, len) VALUES (?1, ?2, ?3)")?
            .execute(params![e.segment, e.offset, e.len])?;
        Ok(())
    }
}

/// The statements over the block rows of inode `?1` that a condition on
/// `?2` picks ([`SqliteTx::delete_block_rows`]): their records' bytes and
/// how many are in segments, the recording of those extents, and the
/// rows' deletion.
struct BlockRows {
    tally: &'static str,
    free_extents: &'static str,
    delete: &'static str,
}

macro_rules! block_rows {
    ($cond:literal) => {
        BlockRows {
            tally: concat!(
                "SELECT COUNT(*), COALESCE(SUM(stored_len), 0), COUNT(segment) \
                 FROM blocks WHERE ino = ?1 AND ",
                $cond
            ),
            free_extents: concat!(
                "INSERT INTO dead_extents(segment, seg_offset, len) \
                 SELECT segment, seg_offset, stored_len FROM blocks \
                 WHERE segment IS NOT NULL AND ino = ?1 AND ",
                $cond
            ),
            delete: concat!("DELETE FROM blocks WHERE ino = ?1 AND ", $cond),
        }
    };
}

/// Block `?2` of inode `?1`.
const BLOCK_AT: BlockRows = block_rows!("idx = ?2");
/// The blocks of inode `?1` from `?2` on.
const BLOCKS_FROM: BlockRows = block_rows!("idx >= ?2");

/// A block row's `stored_len` and, where its record is in a segment, its
/// extent, from columns `stored_len, segment, seg_offset` (a row with a
/// segment but no offset is an error).
fn len_and_extent(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, Option<Extent>)> {
    let len = r.get(0)?;
    let extent = match r.get::<_, Option<u64>>(1)? {
        Some(segment) => Some(Extent {
            segment,
            offset: r.get(2)?,
            len,
        }),
        None => None,
    };
    Ok((len, extent))
}

/// A directory's entries after a cookie, in cookie order ([`first_rows`]).
const LIST_DIR: &str = "SELECT d.id, d.name, d.ino, i.mode FROM dirents d \
     JOIN inodes i ON i.ino = d.ino WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id";
/// A file's block indices below one, highest first ([`first_rows`]).
const BLOCKS_BELOW: &str = "SELECT idx FROM blocks WHERE ino = ?1 AND idx < ?2 ORDER BY idx DESC";

/// As [`LIST_DIR`], each entry with its inode's row; built once, since a
/// listing asks for it once per step of a reply.
fn list_dir_rows_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let cols = INODE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {cols}, d.id, d.name FROM dirents d JOIN inodes i ON i.ino = d.ino \
             WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id"
        )
    })
}

/// The first `limit` rows of a query. The queries of every `readdir`,
/// and the reaper's walk over a removed file's blocks, carry no `LIMIT ?`:
/// SQLite (3.50) lets a bound LIMIT steer its plan, and so prepares such a
/// statement again whenever that parameter is bound, cached or not (a
/// profile of `rm -rf` put 17% of the daemon's time in re-preparing the
/// two listings). These queries walk an index in the order they ask for, so
/// stopping after `limit` rows costs what the LIMIT did. (A read-only open
/// of a volume that no writable open of this version has touched may lack
/// the listing index; SQLite then sorts the directory's later entries at
/// each step, where the LIMIT let it keep only the first `limit` of them.
/// The archiver's and fsck's queries run seldom and keep their LIMIT.)
fn first_rows<T>(rows: impl Iterator<Item = rusqlite::Result<T>>, limit: usize) -> Result<Vec<T>> {
    Ok(rows.take(limit).collect::<rusqlite::Result<_>>()?)
}

impl Reads for SqliteTx<'_, '_> {
    fn inode(&self, ino: u64) -> Result<Option<InodeRow>> {
        if let Some(row) = self.cache.and_then(|c| c.get(ino)) {
            return Ok(Some(row));
        }
        let mut stmt = self.stmt(INODE_BY_INO)?;
        let row = stmt.query_row([ino], inode_from_row).optional()?;
        if let (Some(c), Some(row)) = (self.cache, &row) {
            c.put(row);
        }
        Ok(row)
    }

    /// Inodes that no directory entry names (left by a crash while a file
    /// was open after its last unlink).
    fn unlinked_inodes(&self) -> Result<Vec<u64>> {
        self.write_pending()?;
        let mut stmt = self.conn.prepare(
            "SELECT ino FROM inodes WHERE ino != 1 AND nlink = 0 \
             AND NOT EXISTS (SELECT 1 FROM dirents d WHERE d.ino = inodes.ino)",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn inode_count(&self) -> Result<u64> {
        let mut stmt = self.stmt("SELECT COUNT(*) FROM inodes")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }

    /// Rows holding numbers outside what their fields can hold (a negative
    /// size, a mode beyond 32 bits, ...), named by their keys: fsck reports
    /// these one by one, then leaves the rows out of the typed reads that
    /// would otherwise stop at the first.
    fn out_of_range_rows(&self) -> Result<Vec<String>> {
        self.write_pending()?;
        const U32: &str = "BETWEEN 0 AND 4294967295";
        let checks = [
            (
                "inodes",
                "'inode ' || ino",
                format!(
                    "ino < 1 OR mode NOT {U32} OR uid NOT {U32} OR gid NOT {U32} \
                     OR nlink NOT {U32} OR rdev NOT {U32} OR size < 0 OR stored_bytes < 0"
                ),
            ),
            (
                "dirents",
                "'entry ' || quote(name) || ' in directory ' || parent",
                "parent < 1 OR ino < 1".to_string(),
            ),
            (
                "blocks",
                "'block ' || idx || ' of inode ' || ino",
                "ino < 1 OR idx < 0 OR codec NOT BETWEEN 0 AND 255 OR raw_len < 0 \
                 OR stored_len < 0"
                    .to_string(),
            ),
        ];
        let mut out = Vec::new();
        for (table, name, bad) in checks {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT {name} FROM {table} WHERE {bad}"))?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for row in rows {
                out.push(format!("{}: a number out of range", row?));
            }
        }
        Ok(out)
    }

    fn all_inodes(&self) -> Result<Vec<InodeRow>> {
        self.write_pending()?;
        let sql = format!("SELECT {INODE_COLUMNS} FROM inodes WHERE {IN_RANGE_INODE} ORDER BY ino");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], inode_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<u64>> {
        let mut stmt = self.stmt("SELECT ino FROM dirents WHERE parent = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![parent, name], |r| r.get(0))
            .optional()?)
    }

    fn dir_is_empty(&self, dir: u64) -> Result<bool> {
        let mut stmt = self.stmt("SELECT EXISTS (SELECT 1 FROM dirents WHERE parent = ?1)")?;
        let any: bool = stmt.query_row([dir], |r| r.get(0))?;
        Ok(!any)
    }

    /// Entries of `dir` with a cookie greater than `after`, in cookie order.
    fn list_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntryRow>> {
        self.write_pending()?;
        let mut stmt = self.stmt(LIST_DIR)?;
        let rows = stmt.query_map(params![dir, after], |r| {
            Ok(DirEntryRow {
                cookie: r.get(0)?,
                name: r.get(1)?,
                ino: r.get(2)?,
                mode: r.get(3)?,
            })
        })?;
        first_rows(rows, limit)
    }

    /// As [`ReadTx::list_dir`], each entry with its inode's row (for
    /// `readdirplus`).
    fn list_dir_rows(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>, InodeRow)>> {
        self.write_pending()?;
        let mut stmt = self.stmt(list_dir_rows_sql())?;
        let rows = stmt.query_map(params![dir, after], |r| {
            Ok((r.get(13)?, r.get(14)?, inode_from_row(r)?))
        })?;
        first_rows(rows, limit)
    }

    /// The directory holding `dir` (a directory has exactly one entry).
    fn parent_of(&self, dir: u64) -> Result<Option<u64>> {
        let mut stmt = self.stmt("SELECT parent FROM dirents WHERE ino = ?1 LIMIT 1")?;
        Ok(stmt.query_row([dir], |r| r.get(0)).optional()?)
    }

    /// Every (parent, name, ino) triple, for fsck.
    fn all_dirents(&self) -> Result<Vec<(u64, Vec<u8>, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT parent, name, ino FROM dirents WHERE parent >= 1 AND ino >= 1 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn block(&self, ino: u64, idx: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.block_at(ino, idx)?.map(|(record, _)| record))
    }

    fn stored_record(&self, ino: u64, idx: u64) -> Result<Option<StoredRecord>> {
        Ok(self.row_at(ino, idx)?.map(|r| match r {
            RowRecord::Inline(record) => StoredRecord::Inline(record),
            RowRecord::At(extent, prefix) => {
                StoredRecord::Segment(self.segments.pin(extent), prefix)
            }
        }))
    }

    /// Blocks written at or before `written_before` (ns) that `tier` has
    /// still to take, oldest first: for the archive tier those not yet
    /// considered, for the deep tier those not yet in it.
    fn blocks_to_archive(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        let sql = match tier {
            ArchiveTier::Pending => return Ok(Vec::new()),
            ArchiveTier::Archive => {
                "SELECT ino, idx FROM blocks WHERE archived = 0 AND written_ns <= ?1 \
                 ORDER BY written_ns LIMIT ?2"
            }
            ArchiveTier::Deep => {
                "SELECT ino, idx FROM blocks WHERE archived IN (0, 2) AND written_ns <= ?1 \
                 ORDER BY written_ns LIMIT ?2"
            }
        };
        let mut stmt = self.stmt(sql)?;
        let rows = stmt.query_map(params![written_before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Bytes of blocks the archiver has and has not yet considered.
    /// Up to `limit` llm blocks coded with a float model (payload versions 1
    /// and 2, which decode only on the engine class that wrote them),
    /// skipping the first `offset` of them, in (ino, idx) order.
    fn llm_blocks_not_portable(&self, offset: usize, limit: usize) -> Result<Vec<(u64, u64)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT ino, idx FROM blocks WHERE {NOT_PORTABLE} ORDER BY ino, idx LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn archive_totals(&self) -> Result<ArchiveTotals> {
        let mut stmt = self.stmt(
            "SELECT archived, COALESCE(SUM(raw_len), 0), COALESCE(SUM(stored_len), 0) \
             FROM blocks GROUP BY archived",
        )?;
        let mut out = ArchiveTotals::default();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ByteTotals {
                    raw_bytes: r.get(1)?,
                    stored_bytes: r.get(2)?,
                },
            ))
        })?;
        for row in rows {
            let (archived, bytes) = row?;
            // A value this build does not know counts as considered.
            let tier = match archived {
                0 => &mut out.pending,
                2 => &mut out.archive,
                _ => &mut out.deep,
            };
            tier.raw_bytes += bytes.raw_bytes;
            tier.stored_bytes += bytes.stored_bytes;
        }
        Ok(out)
    }

    /// The stored model with this sha256 (hex), if the volume holds it.
    fn model(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let mut stmt = self.stmt("SELECT onnx FROM models WHERE sha256 = ?1")?;
        Ok(stmt.query_row([sha256], |r| r.get(0)).optional()?)
    }

    /// Whether the volume has stored a dictionary (its table exists).
    fn has_dictionaries_table(&self) -> Result<bool> {
        Ok(self
            .stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dictionaries'")?
            .exists([])?)
    }

    /// Every dictionary the volume stores, oldest first.
    fn dictionaries(&self) -> Result<Vec<DictionaryRow>> {
        if !self.has_dictionaries_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .stmt("SELECT sha256, raw_len, payload FROM dictionaries ORDER BY added_ns, sha256")?;
        let rows = stmt.query_map([], |r| {
            Ok(DictionaryRow {
                sha256: r.get(0)?,
                raw_len: r.get(1)?,
                payload: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The sha256 (hex) of every model the volume stores.
    fn model_shas(&self) -> Result<Vec<String>> {
        let mut stmt = self.stmt("SELECT sha256 FROM models ORDER BY added_ns, sha256")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many llm blocks name `model_id` (the first 8 bytes of a model's
    /// sha256) in their payload header.
    fn llm_blocks_of_model(&self, model_id: &[u8; 8]) -> Result<u64> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM blocks WHERE codec = {} AND substr(record, {}, 8) = ?1",
                crate::codec::CodecId::Llm as u8,
                crate::codec::RECORD_HEADER_LEN + 5
            ),
            [&model_id[..]],
            |r| r.get(0),
        )?)
    }

    fn block_indices_below(&self, ino: u64, below: u64, limit: usize) -> Result<Vec<u64>> {
        let mut stmt = self.stmt(BLOCKS_BELOW)?;
        let rows = stmt.query_map(params![ino, below], |r| r.get(0))?;
        first_rows(rows, limit)
    }

    /// Block summaries of one inode (or of all inodes if `ino` is None).
    fn block_infos(&self, ino: Option<u64>) -> Result<Vec<BlockInfo>> {
        let map = |r: &Row<'_>| {
            Ok(BlockInfo {
                ino: r.get(0)?,
                idx: r.get(1)?,
                codec: r.get(2)?,
                raw_len: r.get(3)?,
                stored_len: r.get(4)?,
            })
        };
        let base = "SELECT ino, idx, codec, raw_len, stored_len FROM blocks";
        match ino {
            Some(ino) => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("{base} WHERE ino = ?1 ORDER BY idx"))?;
                let rows = stmt.query_map([ino], map)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("{base} WHERE {IN_RANGE_BLOCK} ORDER BY ino, idx"))?;
                let rows = stmt.query_map([], map)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
        }
    }

    fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>> {
        if !self.may_hold_xattrs()? {
            return Ok(None);
        }
        let mut stmt = self.stmt("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![ino, name], |r| r.get(0))
            .optional()?)
    }

    fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        if !self.may_hold_xattrs()? {
            return Ok(Vec::new());
        }
        let mut stmt = self.stmt("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
        let rows = stmt.query_map([ino], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn xattr_owners(&self) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT ino FROM xattrs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn volume_setting(&self, key: &str) -> Result<Option<String>> {
        let mut stmt = self.stmt("SELECT value FROM volume WHERE key = ?1")?;
        Ok(stmt.query_row([key], |r| r.get(0)).optional()?)
    }

    fn totals(&self) -> Result<StoreTotals> {
        self.write_pending()?;
        let mut t = StoreTotals::default();
        let mut stmt = self.conn.prepare(
            "SELECT mode & 61440, COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_bytes), 0) \
             FROM inodes GROUP BY mode & 61440",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
            ))
        })?;
        for row in rows {
            let (fmt, count, size, stored) = row?;
            match fmt {
                libc::S_IFREG => {
                    t.files += count;
                    t.logical_bytes += size;
                }
                libc::S_IFDIR => t.directories += count,
                _ => t.other_inodes += count,
            }
            t.stored_bytes += stored;
        }
        let mut stmt = self.conn.prepare(
            "SELECT codec, COUNT(*), SUM(raw_len), SUM(stored_len) FROM blocks GROUP BY codec \
             ORDER BY codec",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CodecTotals {
                codec: r.get(0)?,
                blocks: r.get(1)?,
                raw_bytes: r.get(2)?,
                stored_bytes: r.get(3)?,
            })
        })?;
        t.per_codec = rows.collect::<rusqlite::Result<_>>()?;
        t.llm_not_portable = self.conn.query_row(
            &format!("SELECT COUNT(*), COALESCE(SUM(raw_len), 0) FROM blocks WHERE {NOT_PORTABLE}"),
            [],
            |r| {
                Ok(BlockCount {
                    blocks: r.get(0)?,
                    raw_bytes: r.get(1)?,
                })
            },
        )?;
        Ok(t)
    }
}

impl Writes for SqliteTx<'_, '_> {
    /// Inserts an inode (a symlink's size is its target's length) and
    /// returns its row as stored, without reading it back.
    fn insert_inode(&self, n: &NewInode) -> Result<InodeRow> {
        let size = n.target.as_ref().map_or(0, |t| t.len() as u64);
        let mut stmt = self.stmt(
            "INSERT INTO inodes(mode, uid, gid, nlink, size, rdev, atime_ns, mtime_ns, ctime_ns, \
             crtime_ns, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?7, ?8)",
        )?;
        stmt.execute(params![
            n.mode, n.uid, n.gid, n.nlink, size, n.rdev, n.time_ns, n.target
        ])?;
        let row = n.row(self.conn.last_insert_rowid() as u64);
        if let Some(c) = self.cache {
            c.put(&row);
        }
        Ok(row)
    }

    /// Writes back every attribute of an inode (not `stored_bytes`, which
    /// only block writes change): with the batch, where the writer holds
    /// the row (inode_cache.rs), else at once.
    fn update_inode(&self, i: &InodeRow) -> Result<()> {
        if self.cache.is_some_and(|c| c.defer(i)) {
            return Ok(());
        }
        self.update_inode_adding(i, 0)
    }

    /// Removes an inode with its blocks and xattrs.
    fn delete_inode(&self, ino: u64) -> Result<()> {
        self.delete_block_rows(&BLOCKS_FROM, ino, 0)?;
        if self.may_hold_xattrs()? {
            self.stmt("DELETE FROM xattrs WHERE ino = ?1")?
                .execute([ino])?;
        }
        self.stmt("DELETE FROM inodes WHERE ino = ?1")?
            .execute([ino])?;
        if let Some(c) = self.cache {
            c.forget(ino);
        }
        Ok(())
    }

    // One client (the store's flock): nothing else reclaims while it lives.
    fn hold_unlinked(&self, _ino: u64) -> Result<()> {
        Ok(())
    }

    fn release_holds(&self) -> Result<()> {
        Ok(())
    }

    fn reclaimable_inodes(&self) -> Result<Vec<u64>> {
        self.unlinked_inodes()
    }

    fn insert_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.stmt("INSERT INTO dirents(parent, name, ino) VALUES (?1, ?2, ?3)")?
            .execute(params![parent, name, ino])?;
        Ok(())
    }

    fn remove_dirent(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.stmt("DELETE FROM dirents WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent, name])?;
        Ok(())
    }

    /// Points an existing entry at another inode, keeping its cookie.
    fn retarget_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.stmt("UPDATE dirents SET ino = ?3 WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent, name, ino])?;
        Ok(())
    }

    /// Stores (or replaces) a block record and keeps `stored_bytes` in step.
    fn put_block(&self, ino: u64, idx: u64, codec: u8, raw_len: u64, record: &[u8]) -> Result<()> {
        let b = BlockWrite {
            codec,
            raw_len,
            record,
            extent: None,
        };
        self.add_stored_bytes(ino, self.store_block(ino, idx, &b)?)
    }

    /// One UPDATE of the inode's row for the write-back, `stored_bytes`
    /// moved in it, where the single-block calls made one per block
    /// besides: about a sixth of a small file's write-back
    /// (docs/MEASUREMENTS.md).
    fn write_back(&self, row: &InodeRow, blocks: &[(u64, Option<BlockWrite<'_>>)]) -> Result<()> {
        let mut delta = 0;
        for (idx, block) in blocks {
            delta += match block {
                Some(b) => self.store_block(row.ino, *idx, b)?,
                None => -(self.delete_block_rows(&BLOCK_AT, row.ino, *idx)? as i64),
            };
        }
        self.update_inode_adding(row, delta)
    }

    /// As `put_block`, for a record already written (and synced) at
    /// `extent` of a segment: the row names the extent, its `record` holds
    /// a copy of the record's header and zstd frame table (empty when the
    /// record has no table), for reads of one frame.
    fn put_block_at(
        &self,
        ino: u64,
        idx: u64,
        codec: u8,
        raw_len: u64,
        record: &[u8],
        extent: Extent,
    ) -> Result<()> {
        let b = BlockWrite {
            codec,
            raw_len,
            record,
            extent: Some(extent),
        };
        self.add_stored_bytes(ino, self.store_block(ino, idx, &b)?)
    }

    /// Replaces a block's record with `new` (same data, another codec; or
    /// keeps it, `None`) and records the block in `tier`, only if the block
    /// still holds exactly `old`: a block written meanwhile keeps its new
    /// data. Returns whether it did.
    fn swap_archived_block(
        &self,
        ino: u64,
        idx: u64,
        old: &[u8],
        new: Option<(u8, &[u8])>,
        tier: ArchiveTier,
    ) -> Result<bool> {
        let tier = tier as u8;
        if let Some((codec, record)) = new {
            require_feature_of(self, codec, record)?;
            self.wrote(record.len());
        }
        if self.segments.enabled() {
            if let Some((current, Some(extent))) = self.block_at(ino, idx)? {
                // A record in a segment: compared here, then the row
                // changed only if it still names the same extent (extents
                // are never reused, so that names the same bytes).
                return self.swap_segment_block(ino, idx, old, &current, extent, new, tier);
            }
        }
        let changed = match new {
            Some((codec, record)) => self
                .stmt(
                    "UPDATE blocks SET codec = ?3, stored_len = ?4, record = ?5, archived = ?7 \
                     WHERE ino = ?1 AND idx = ?2 AND record = ?6",
                )?
                .execute(params![
                    ino,
                    idx,
                    codec,
                    record.len() as u64,
                    record,
                    old,
                    tier
                ])?,
            None => self
                .stmt(
                    "UPDATE blocks SET archived = ?4 WHERE ino = ?1 AND idx = ?2 AND record = ?3",
                )?
                .execute(params![ino, idx, old, tier])?,
        };
        self.swapped(ino, changed == 1, old, new)
    }

    /// Drops a stored model that no block refers to any more.
    fn delete_model(&self, sha256: &str) -> Result<()> {
        self.stmt("DELETE FROM models WHERE sha256 = ?1")?
            .execute([sha256])?;
        Ok(())
    }

    /// Stores a model (idempotent).
    fn put_model(&self, sha256: &str, onnx: &[u8]) -> Result<()> {
        self.wrote(onnx.len());
        self.stmt("INSERT OR IGNORE INTO models(sha256, onnx, added_ns) VALUES (?1, ?2, ?3)")?
            .execute(params![sha256, onnx, crate::time::now_ns()])?;
        Ok(())
    }

    fn delete_block(&self, ino: u64, idx: u64) -> Result<()> {
        self.delete_blocks_where(ino, &BLOCK_AT, idx)
    }

    /// Drops every block at or past `first` (truncation).
    fn delete_blocks_from(&self, ino: u64, first: u64) -> Result<()> {
        self.delete_blocks_where(ino, &BLOCKS_FROM, first)
    }

    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        if let Some(c) = self.cache {
            c.set_xattrs(true);
        }
        self.stmt("INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3)")?
            .execute(params![ino, name, value])?;
        Ok(())
    }

    /// Returns false if there was no such attribute.
    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<bool> {
        let n = self
            .stmt("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
            .execute(params![ino, name])?;
        Ok(n > 0)
    }

    fn set_volume_setting(&self, key: &str, value: &str) -> Result<()> {
        self.stmt("INSERT OR REPLACE INTO volume(key, value) VALUES (?1, ?2)")?
            .execute([key, value])?;
        Ok(())
    }

    // One process writes a SQLite store (its flock) and runs one archiver:
    // claims have no one to keep out, and a write transaction already
    // holds the whole database.
    fn claim_blocks(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
        _lease: &Lease,
    ) -> Result<Vec<(u64, u64)>> {
        self.blocks_to_archive(tier, written_before, limit)
    }

    fn register_worker(&self, _lease: &Lease, _engine: &str, _engine_id: &str) -> Result<()> {
        Ok(())
    }

    fn renew_claims(&self, _lease: &Lease) -> Result<u64> {
        Ok(0)
    }

    fn release_claim(&self, _ino: u64, _idx: u64, _worker: &str) -> Result<bool> {
        Ok(true)
    }

    fn claims_of_others(&self, _worker: &str) -> Result<u64> {
        Ok(0)
    }

    fn release_claims(&self, _worker: &str) -> Result<()> {
        Ok(())
    }

    fn yield_to_writers(&self) -> Result<()> {
        Ok(())
    }

    fn lock_volume_settings(&self) -> Result<()> {
        Ok(())
    }

    /// Stores a dictionary (idempotent), creating the dictionaries table
    /// with the volume's first one.
    fn put_dictionary(&self, d: &DictionaryRow) -> Result<()> {
        self.wrote(d.payload.len());
        if !self.has_dictionaries_table()? {
            self.conn
                .execute_batch(super::migrate::DICTIONARIES_TABLE)?;
        }
        self.stmt(
            "INSERT OR IGNORE INTO dictionaries(sha256, raw_len, payload, added_ns) \
                 VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            d.sha256,
            d.raw_len,
            d.payload,
            crate::time::now_ns()
        ])?;
        Ok(())
    }
}

impl BackendTx for SqliteTx<'_, '_> {
    fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn set_schema_version(&self, version: u32) -> Result<()> {
        Ok(self.conn.pragma_update(None, "user_version", version)?)
    }

    fn insert_root_inode(&self, mode: u32, uid: u32, gid: u32, now_ns: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO inodes(ino, mode, uid, gid, nlink, atime_ns, mtime_ns, ctime_ns, \
             crtime_ns) VALUES (?1, ?2, ?3, ?4, 2, ?5, ?5, ?5, ?5)",
            params![crate::store::ROOT_INO, mode, uid, gid, now_ns],
        )?;
        if let Some(c) = self.cache {
            c.forget(crate::store::ROOT_INO);
        }
        Ok(())
    }

    fn bump_sync_generation(&self) -> Result<()> {
        self.stmt(
            "UPDATE volume SET value = CAST(value AS INTEGER) + 1 WHERE key = 'sync_generation'",
        )?
        .execute([])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::NewInode;
    use crate::store::sqlite::migrate;
    use rusqlite::StatementStatus;

    /// The listings and the reaper's walk stop at their limit, and their
    /// statements stay prepared from one call to the next: with a bound
    /// `LIMIT` SQLite prepared them again at every call ([`first_rows`]).
    #[test]
    fn limited_queries_are_not_prepared_again_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db")).unwrap();
        migrate::migrate(&mut conn).unwrap();
        migrate::add_listing_index(&conn);
        let segments = Arc::new(Segments::open(dir.path(), false, false).unwrap());
        let tx = SqliteTx::new(&conn, &segments);
        let mut inos = Vec::new();
        for i in 0..5u8 {
            let row = tx
                .insert_inode(&NewInode {
                    mode: libc::S_IFREG | 0o644,
                    uid: 0,
                    gid: 0,
                    nlink: 1,
                    rdev: 0,
                    time_ns: 0,
                    target: None,
                })
                .unwrap();
            tx.insert_dirent(1, &[b'f', i], row.ino).unwrap();
            inos.push(row.ino);
        }
        for (after, limit) in [(0, 2), (0, 5), (0, 0), (0, usize::MAX)] {
            let names = tx.list_dir(1, after, limit).unwrap();
            assert_eq!(names.len(), limit.min(5));
            let rows = tx.list_dir_rows(1, after, limit).unwrap();
            assert_eq!(
                rows.iter().map(|(_, _, r)| r.ino).collect::<Vec<_>>(),
                inos[..limit.min(5)]
            );
            assert!(tx
                .block_indices_below(inos[0], 10, limit)
                .unwrap()
                .is_empty());
        }
        let third = tx.list_dir(1, 0, 5).unwrap()[2].cookie;
        let rest = tx.list_dir(1, third, 1).unwrap();
        assert_eq!(rest.iter().map(|e| e.ino).collect::<Vec<_>>(), [inos[3]]);
        for sql in [LIST_DIR, list_dir_rows_sql(), BLOCKS_BELOW] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }
}
