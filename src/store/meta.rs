//! Typed queries over the store's tables, run inside a transaction that the
//! caller holds: [`ReadTx`] for `Store::read`, [`WriteTx`] for
//! `Store::write`, so that a change inside a read transaction does not
//! compile.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::features::{Feature, FeatureSet, FEATURES_KEY};
use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// One row of `inodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRow {
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub stored_bytes: u64,
    pub rdev: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub crtime_ns: i64,
    pub target: Option<Vec<u8>>,
}

/// The fields of a new inode; the store assigns the number.
#[derive(Debug, Clone)]
pub struct NewInode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    pub time_ns: i64,
    pub target: Option<Vec<u8>>,
}

/// One directory entry with the type of the inode it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryRow {
    pub cookie: u64,
    pub name: Vec<u8>,
    pub ino: u64,
    pub mode: u32,
}

/// Summary of one stored block, without its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub ino: u64,
    pub idx: u64,
    pub codec: u8,
    pub raw_len: u64,
    pub stored_len: u64,
}

/// Volume-wide totals for `llmfs stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    pub files: u64,
    pub directories: u64,
    pub other_inodes: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    /// One entry per codec id that has blocks, in id order.
    pub per_codec: Vec<CodecTotals>,
    /// llm blocks coded with a float model (payload versions 1 and 2),
    /// which decode only on the engine class that wrote them.
    /// `llmfs archive --portable` re-encodes them.
    pub llm_not_portable: BlockCount,
}

/// A number of blocks and their raw bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCount {
    pub blocks: u64,
    pub raw_bytes: u64,
}

/// The blocks stored with one codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodecTotals {
    /// The codec id of the records (docs/FORMAT.md); not necessarily one
    /// this build knows.
    pub codec: u8,
    pub blocks: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Raw and stored bytes of a set of blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteTotals {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// How far the archiver has taken a block: the `blocks.archived` column
/// (docs/FORMAT.md). The numbers are on disk: 1 is what every earlier
/// llmfs wrote once it had chosen a block's final codec, the model
/// included, so it stays the deep tier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ArchiveTier {
    /// Not yet considered: as written (zstd or raw).
    Pending = 0,
    /// The deep tier: the smallest of the model and the archive tier's
    /// codecs. Final until the block is written again.
    Deep = 1,
    /// The archive tier: the smallest of the model-free codecs; the deep
    /// tier may still take the block once it has been cold long enough.
    Archive = 2,
}

/// A stored volume dictionary (`dictionaries` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictionaryRow {
    /// SHA-256 (hex) of the dictionary's bytes.
    pub sha256: String,
    pub raw_len: u64,
    /// The bytes, cm-coded.
    pub payload: Vec<u8>,
}

/// Raw and stored bytes of the blocks in each archive tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveTotals {
    /// Not yet considered by the archiver.
    pub pending: ByteTotals,
    pub archive: ByteTotals,
    pub deep: ByteTotals,
}

impl ArchiveTotals {
    /// Every block the archiver has considered, in either tier.
    pub fn archived(&self) -> ByteTotals {
        ByteTotals {
            raw_bytes: self.archive.raw_bytes + self.deep.raw_bytes,
            stored_bytes: self.archive.stored_bytes + self.deep.stored_bytes,
        }
    }
}

/// SQL condition: an llm record of a float model (payload version 1 or 2,
/// the payload's first byte after the 20-byte record header).
const NOT_PORTABLE: &str = "codec = 2 AND substr(record, 21, 1) IN (x'01', x'02')";

const INODE_COLUMNS: &str = "ino, mode, uid, gid, nlink, size, stored_bytes, rdev, atime_ns, \
                             mtime_ns, ctime_ns, crtime_ns, target";

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

/// A read transaction: queries over a consistent snapshot
/// (`Store::read`). It has no method that changes the store.
pub struct ReadTx<'c> {
    conn: &'c Connection,
}

/// A write transaction (`Store::write`): everything a [`ReadTx`] reads, and
/// the changes, which commit together or not at all.
pub struct WriteTx<'c> {
    read: ReadTx<'c>,
}

impl<'c> std::ops::Deref for WriteTx<'c> {
    type Target = ReadTx<'c>;

    fn deref(&self) -> &ReadTx<'c> {
        &self.read
    }
}

impl<'c> ReadTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> ReadTx<'c> {
        ReadTx { conn }
    }

    pub fn inode(&self, ino: u64) -> Result<Option<InodeRow>> {
        let sql = format!("SELECT {INODE_COLUMNS} FROM inodes WHERE ino = ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_row([ino], inode_from_row).optional()?)
    }

    /// Inodes that no directory entry names (left by a crash while a file
    /// was open after its last unlink).
    pub fn unlinked_inodes(&self) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare(
            "SELECT ino FROM inodes WHERE ino != 1 AND nlink = 0 \
             AND NOT EXISTS (SELECT 1 FROM dirents d WHERE d.ino = inodes.ino)",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn inode_count(&self) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached("SELECT COUNT(*) FROM inodes")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }

    /// Rows holding numbers outside what their fields can hold (a negative
    /// size, a mode beyond 32 bits, ...), named by their keys: fsck reports
    /// these one by one, then leaves the rows out of the typed reads that
    /// would otherwise stop at the first.
    pub fn out_of_range_rows(&self) -> Result<Vec<String>> {
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

    pub fn all_inodes(&self) -> Result<Vec<InodeRow>> {
        let sql = format!("SELECT {INODE_COLUMNS} FROM inodes WHERE {IN_RANGE_INODE} ORDER BY ino");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], inode_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ino FROM dirents WHERE parent = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![parent, name], |r| r.get(0))
            .optional()?)
    }

    pub fn dir_is_empty(&self, dir: u64) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM dirents WHERE parent = ?1)")?;
        let any: bool = stmt.query_row([dir], |r| r.get(0))?;
        Ok(!any)
    }

    /// Entries of `dir` with a cookie greater than `after`, in cookie order.
    pub fn list_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntryRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.name, d.ino, i.mode FROM dirents d JOIN inodes i ON i.ino = d.ino \
             WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![dir, after, limit as i64], |r| {
            Ok(DirEntryRow {
                cookie: r.get(0)?,
                name: r.get(1)?,
                ino: r.get(2)?,
                mode: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// As [`ReadTx::list_dir`], each entry with its inode's row (for
    /// `readdirplus`).
    pub fn list_dir_rows(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>, InodeRow)>> {
        let cols = INODE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, d.id, d.name FROM dirents d JOIN inodes i ON i.ino = d.ino \
             WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![dir, after, limit as i64], |r| {
            Ok((r.get(13)?, r.get(14)?, inode_from_row(r)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The directory holding `dir` (a directory has exactly one entry).
    pub fn parent_of(&self, dir: u64) -> Result<Option<u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT parent FROM dirents WHERE ino = ?1 LIMIT 1")?;
        Ok(stmt.query_row([dir], |r| r.get(0)).optional()?)
    }

    /// Every (parent, name, ino) triple, for fsck.
    pub fn all_dirents(&self) -> Result<Vec<(u64, Vec<u8>, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT parent, name, ino FROM dirents WHERE parent >= 1 AND ino >= 1 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn block(&self, ino: u64, idx: u64) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM blocks WHERE ino = ?1 AND idx = ?2")?;
        Ok(stmt.query_row([ino, idx], |r| r.get(0)).optional()?)
    }

    /// Blocks written at or before `written_before` (ns) that `tier` has
    /// still to take, oldest first: for the archive tier those not yet
    /// considered, for the deep tier those not yet in it.
    pub fn blocks_to_archive(
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
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![written_before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Bytes of blocks the archiver has and has not yet considered.
    /// Up to `limit` llm blocks coded with a float model (payload versions 1
    /// and 2, which decode only on the engine class that wrote them),
    /// skipping the first `offset` of them, in (ino, idx) order.
    pub fn llm_blocks_not_portable(&self, offset: usize, limit: usize) -> Result<Vec<(u64, u64)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT ino, idx FROM blocks WHERE {NOT_PORTABLE} ORDER BY ino, idx LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn archive_totals(&self) -> Result<ArchiveTotals> {
        let mut stmt = self.conn.prepare_cached(
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
    pub fn model(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT onnx FROM models WHERE sha256 = ?1")?;
        Ok(stmt.query_row([sha256], |r| r.get(0)).optional()?)
    }

    /// Whether the volume has stored a dictionary (its table exists).
    pub fn has_dictionaries_table(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dictionaries'",
            )?
            .exists([])?)
    }

    /// Every dictionary the volume stores, oldest first.
    pub fn dictionaries(&self) -> Result<Vec<DictionaryRow>> {
        if !self.has_dictionaries_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT sha256, raw_len, payload FROM dictionaries ORDER BY added_ns, sha256",
        )?;
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
    pub fn model_shas(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sha256 FROM models ORDER BY added_ns, sha256")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many llm blocks name `model_id` (the first 8 bytes of a model's
    /// sha256) in their payload header.
    pub fn llm_blocks_of_model(&self, model_id: &[u8; 8]) -> Result<u64> {
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

    /// Block summaries of one inode (or of all inodes if `ino` is None).
    pub fn block_infos(&self, ino: Option<u64>) -> Result<Vec<BlockInfo>> {
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

    pub fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?;
        Ok(stmt
            .query_row(params![ino, name], |r| r.get(0))
            .optional()?)
    }

    pub fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
        let rows = stmt.query_map([ino], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn xattr_owners(&self) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT ino FROM xattrs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn volume_setting(&self, key: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM volume WHERE key = ?1")?;
        Ok(stmt.query_row([key], |r| r.get(0)).optional()?)
    }

    /// The volume's feature set (docs/FORMAT.md, "Schema and versions").
    pub fn features(&self) -> Result<FeatureSet> {
        match self.volume_setting(FEATURES_KEY)? {
            Some(text) => FeatureSet::parse(&text).map_err(StoreError::UnknownFeatures),
            None => Ok(FeatureSet::default()),
        }
    }

    pub fn totals(&self) -> Result<StoreTotals> {
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

impl<'c> WriteTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> WriteTx<'c> {
        WriteTx {
            read: ReadTx { conn },
        }
    }

    /// Inserts an inode (a symlink's size is its target's length) and
    /// returns its row as stored, without reading it back.
    pub fn insert_inode(&self, n: &NewInode) -> Result<InodeRow> {
        let size = n.target.as_ref().map_or(0, |t| t.len() as u64);
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO inodes(mode, uid, gid, nlink, size, rdev, atime_ns, mtime_ns, ctime_ns, \
             crtime_ns, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?7, ?8)",
        )?;
        stmt.execute(params![
            n.mode, n.uid, n.gid, n.nlink, size, n.rdev, n.time_ns, n.target
        ])?;
        Ok(InodeRow {
            ino: self.conn.last_insert_rowid() as u64,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            nlink: n.nlink,
            size,
            stored_bytes: 0,
            rdev: n.rdev,
            atime_ns: n.time_ns,
            mtime_ns: n.time_ns,
            ctime_ns: n.time_ns,
            crtime_ns: n.time_ns,
            target: n.target.clone(),
        })
    }

    /// Writes back every attribute of an inode (not `stored_bytes`, which
    /// only block writes change).
    pub fn update_inode(&self, i: &InodeRow) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, nlink = ?5, size = ?6, rdev = ?7, \
             atime_ns = ?8, mtime_ns = ?9, ctime_ns = ?10, crtime_ns = ?11 WHERE ino = ?1",
        )?;
        stmt.execute(params![
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
            i.crtime_ns
        ])?;
        Ok(())
    }

    /// Removes an inode with its blocks and xattrs.
    pub fn delete_inode(&self, ino: u64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM blocks WHERE ino = ?1")?
            .execute([ino])?;
        self.conn
            .prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
            .execute([ino])?;
        self.conn
            .prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
            .execute([ino])?;
        Ok(())
    }

    pub fn insert_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO dirents(parent, name, ino) VALUES (?1, ?2, ?3)")?
            .execute(params![parent, name, ino])?;
        Ok(())
    }

    pub fn remove_dirent(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM dirents WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent, name])?;
        Ok(())
    }

    /// Points an existing entry at another inode, keeping its cookie.
    pub fn retarget_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE dirents SET ino = ?3 WHERE parent = ?1 AND name = ?2")?
            .execute(params![parent, name, ino])?;
        Ok(())
    }

    /// Stores (or replaces) a block record and keeps `stored_bytes` in step.
    pub fn put_block(
        &self,
        ino: u64,
        idx: u64,
        codec: u8,
        raw_len: u64,
        record: &[u8],
    ) -> Result<()> {
        self.require_feature_of(codec, record)?;
        self.delete_block(ino, idx)?;
        self.conn
            .prepare_cached(
                "INSERT INTO blocks(ino, idx, codec, raw_len, stored_len, record, written_ns, archived) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                ino,
                idx,
                codec,
                raw_len,
                record.len() as u64,
                record,
                crate::time::now_ns(),
                // A block the write path already coded with the model (the
                // synchronous mode) needs no archiving.
                i64::from(codec == crate::codec::CodecId::Llm as u8)
            ])?;
        self.conn
            .prepare_cached("UPDATE inodes SET stored_bytes = stored_bytes + ?2 WHERE ino = ?1")?
            .execute(params![ino, record.len() as u64])?;
        Ok(())
    }

    /// Replaces a block's record with `new` (same data, another codec; or
    /// keeps it, `None`) and records the block in `tier`, only if the block
    /// still holds exactly `old`: a block written meanwhile keeps its new
    /// data. Returns whether it did.
    pub fn swap_archived_block(
        &self,
        ino: u64,
        idx: u64,
        old: &[u8],
        new: Option<(u8, &[u8])>,
        tier: ArchiveTier,
    ) -> Result<bool> {
        let tier = tier as u8;
        if let Some((codec, record)) = new {
            self.require_feature_of(codec, record)?;
        }
        let changed = match new {
            Some((codec, record)) => self
                .conn
                .prepare_cached(
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
                .conn
                .prepare_cached(
                    "UPDATE blocks SET archived = ?4 WHERE ino = ?1 AND idx = ?2 AND record = ?3",
                )?
                .execute(params![ino, idx, old, tier])?,
        };
        if changed == 1 {
            if let Some((_, record)) = new {
                let delta = record.len() as i64 - old.len() as i64;
                self.conn
                    .prepare_cached(
                        "UPDATE inodes SET stored_bytes = stored_bytes + ?2 WHERE ino = ?1",
                    )?
                    .execute(params![ino, delta])?;
            }
        }
        Ok(changed == 1)
    }

    /// Drops a stored model that no block refers to any more.
    pub fn delete_model(&self, sha256: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM models WHERE sha256 = ?1")?
            .execute([sha256])?;
        Ok(())
    }

    /// Stores a model (idempotent).
    pub fn put_model(&self, sha256: &str, onnx: &[u8]) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO models(sha256, onnx, added_ns) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![sha256, onnx, crate::time::now_ns()])?;
        Ok(())
    }

    pub fn delete_block(&self, ino: u64, idx: u64) -> Result<()> {
        self.delete_blocks_where(ino, "idx = ?2", idx)
    }

    /// Drops every block at or past `first` (truncation).
    pub fn delete_blocks_from(&self, ino: u64, first: u64) -> Result<()> {
        self.delete_blocks_where(ino, "idx >= ?2", first)
    }

    fn delete_blocks_where(&self, ino: u64, cond: &str, idx: u64) -> Result<()> {
        let freed: u64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT COALESCE(SUM(stored_len), 0) FROM blocks WHERE ino = ?1 AND {cond}"
            ))?
            .query_row(params![ino, idx], |r| r.get(0))?;
        if freed == 0 {
            return Ok(());
        }
        self.conn
            .prepare_cached(&format!("DELETE FROM blocks WHERE ino = ?1 AND {cond}"))?
            .execute(params![ino, idx])?;
        self.conn
            .prepare_cached("UPDATE inodes SET stored_bytes = stored_bytes - ?2 WHERE ino = ?1")?
            .execute(params![ino, freed])?;
        Ok(())
    }

    pub fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3)")?
            .execute(params![ino, name, value])?;
        Ok(())
    }

    /// Returns false if there was no such attribute.
    pub fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
            .execute(params![ino, name])?;
        Ok(n > 0)
    }

    pub fn set_volume_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO volume(key, value) VALUES (?1, ?2)")?
            .execute([key, value])?;
        Ok(())
    }

    /// Before `record` (of `codec`) is stored: records the feature it
    /// needs, in this transaction, and raises the schema version so that
    /// llmfs builds without the feature refuse the store from then on.
    fn require_feature_of(&self, codec: u8, record: &[u8]) -> Result<()> {
        let needed = Feature::of_record(codec, record);
        if needed.is_empty() {
            return Ok(());
        }
        let mut set = self.features()?;
        let new: Vec<Feature> = needed.into_iter().filter(|f| !set.contains(*f)).collect();
        if new.is_empty() {
            return Ok(());
        }
        for &feature in &new {
            set.insert(feature);
            log::info!("the volume now uses feature {}", feature.name());
        }
        self.set_volume_setting(FEATURES_KEY, &set.to_text())?;
        let version: u32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let want = set.schema_version(version);
        if want > version {
            self.conn.pragma_update(None, "user_version", want)?;
        }
        Ok(())
    }

    /// Stores a dictionary (idempotent), creating the dictionaries table
    /// with the volume's first one.
    pub fn put_dictionary(&self, d: &DictionaryRow) -> Result<()> {
        if !self.has_dictionaries_table()? {
            self.conn
                .execute_batch(super::migrate::DICTIONARIES_TABLE)?;
        }
        self.conn
            .prepare_cached(
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

    pub(super) fn bump_sync_generation(&self) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE volume SET value = CAST(value AS INTEGER) + 1 WHERE key = 'sync_generation'",
            )?
            .execute([])?;
        Ok(())
    }
}
