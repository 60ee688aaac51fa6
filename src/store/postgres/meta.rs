//! The typed queries of [`Reads`] and [`Writes`] on PostgreSQL, the same
//! questions as the SQLite backend's (`sqlite/meta.rs`) in PostgreSQL's
//! dialect, run inside a transaction that `Store::read` or `Store::write`
//! holds. Statements are prepared once per connection and reused.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};

use crate::store::rows::{
    ArchiveTier, ArchiveTotals, BlockCount, BlockInfo, CodecTotals, DictionaryRow, DirEntryRow,
    InodeRow, Lease, NewInode, StoreTotals,
};
use crate::store::tx::{require_feature_of, BackendTx, Reads, Writes};
use crate::store::{StoreError, ROOT_INO};

type Result<T> = std::result::Result<T, StoreError>;
type Param<'p> = &'p (dyn ToSql + Sync);

/// SQL condition: an llm record of a float model (payload version 1 or 2,
/// the payload's first byte after the 20-byte record header).
const NOT_PORTABLE: &str =
    "codec = 2 AND substring(record from 21 for 1) IN ('\\x01'::bytea, '\\x02'::bytea)";

/// The first key of the transaction-level advisory lock over volume-wide
/// settings (`llms`); the second is a hash of the schema name.
const SETTINGS_LOCK_CLASS: i32 = 0x6c6c_6d73;

const INODE_COLUMNS: &str = "ino, mode, uid, gid, nlink, size, stored_bytes, rdev, atime_ns, \
                             mtime_ns, ctime_ns, crtime_ns, target";
const U32: &str = "BETWEEN 0 AND 4294967295";

/// The statements prepared on one connection, by their text.
pub(super) type StatementCache = HashMap<String, Statement>;

/// A transaction on the PostgreSQL connection: the queries of [`Reads`]
/// and, through `Store::write` only, the changes of [`Writes`].
pub(super) struct PgTx<'a> {
    tx: RefCell<Transaction<'a>>,
    stmts: RefCell<&'a mut StatementCache>,
    /// Set when a statement failed because the connection is gone (the
    /// server stopped, the network broke): the store then opens a new one
    /// for its next transaction.
    lost: &'a Cell<bool>,
    /// The name of the read-write client running the transaction (its row
    /// in `mounts`), for its holds on unlinked inodes; None for a worker
    /// or a reader.
    mount: Option<&'a str>,
}

/// A number for a BIGINT column; none of llmfs's numbers reaches 2^63, and
/// one that does (a cookie from a hostile caller) saturates.
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn get_u64(r: &Row, i: usize) -> Result<u64> {
    let v: i64 = r.try_get(i)?;
    u64::try_from(v).map_err(|_| out_of_range(r, i, v))
}

fn get_u32(r: &Row, i: usize) -> Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| out_of_range(r, i, v))
}

fn out_of_range(r: &Row, i: usize, v: i64) -> StoreError {
    StoreError::Invalid(format!(
        "column {} holds {v}, out of range",
        r.columns()[i].name()
    ))
}

fn inode_from_row(r: &Row) -> Result<InodeRow> {
    Ok(InodeRow {
        ino: get_u64(r, 0)?,
        mode: get_u32(r, 1)?,
        uid: get_u32(r, 2)?,
        gid: get_u32(r, 3)?,
        nlink: get_u32(r, 4)?,
        size: get_u64(r, 5)?,
        stored_bytes: get_u64(r, 6)?,
        rdev: get_u32(r, 7)?,
        atime_ns: r.try_get(8)?,
        mtime_ns: r.try_get(9)?,
        ctime_ns: r.try_get(10)?,
        crtime_ns: r.try_get(11)?,
        target: r.try_get(12)?,
    })
}

fn pairs(rows: Vec<Row>) -> Result<Vec<(u64, u64)>> {
    rows.iter()
        .map(|r| Ok((get_u64(r, 0)?, get_u64(r, 1)?)))
        .collect()
}

impl<'a> PgTx<'a> {
    pub(super) fn new(
        tx: Transaction<'a>,
        stmts: &'a mut StatementCache,
        lost: &'a Cell<bool>,
        mount: Option<&'a str>,
    ) -> PgTx<'a> {
        PgTx {
            tx: RefCell::new(tx),
            stmts: RefCell::new(stmts),
            lost,
            mount,
        }
    }

    /// Waits for, then holds until the end of this transaction, the
    /// writers' lock of the volume (docs/DESIGN.md, "Several mounts of one
    /// volume"): taken first by every write transaction of a read-write
    /// client.
    pub(super) fn lock_writers(&self) -> Result<()> {
        self.exec(super::WRITERS_LOCK_SQL, &[&super::WRITERS_LOCK_CLASS])?;
        Ok(())
    }

    /// The driver's answer, noting a lost connection.
    fn check<T>(&self, r: std::result::Result<T, postgres::Error>) -> Result<T> {
        r.map_err(|e| {
            if super::connection_lost(&e) {
                self.lost.set(true);
            }
            e.into()
        })
    }

    pub(super) fn commit(self) -> Result<()> {
        let lost = self.lost;
        self.tx.into_inner().commit().map_err(|e| {
            if super::connection_lost(&e) {
                lost.set(true);
            }
            e.into()
        })
    }

    fn prepared(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.check(self.tx.borrow_mut().prepare(sql))?;
        self.stmts.borrow_mut().insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let s = self.prepared(sql)?;
        self.check(self.tx.borrow_mut().query(&s, params))
    }

    fn opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        let s = self.prepared(sql)?;
        self.check(self.tx.borrow_mut().query_opt(&s, params))
    }

    fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        let s = self.prepared(sql)?;
        self.check(self.tx.borrow_mut().query_one(&s, params))
    }

    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let s = self.prepared(sql)?;
        self.check(self.tx.borrow_mut().execute(&s, params))
    }

    /// Runs a statement once, unprepared (settings, rare queries).
    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        self.check(self.tx.borrow_mut().batch_execute(sql))
    }

    /// Bytes the volume's tables take on the server.
    pub(super) fn database_bytes(&self) -> Result<u64> {
        let n: i64 = self
            .one(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Locks inode `ino`'s row for the rest of the transaction. Every
    /// transaction that changes blocks takes its inode's row first, then
    /// the block rows: archive workers change blocks beside the mount
    /// (docs/DESIGN.md, "Archive workers"), and one order of locks means
    /// no deadlock between them, and no change of a block between the
    /// mount's read of its `stored_len` and its delete.
    fn lock_inode(&self, ino: u64) -> Result<()> {
        self.opt(
            "SELECT 1 FROM inodes WHERE ino = $1 FOR NO KEY UPDATE",
            &[&big(ino)],
        )?;
        Ok(())
    }

    fn delete_blocks_where(&self, ino: u64, cond: &str, idx: u64) -> Result<()> {
        self.lock_inode(ino)?;
        let (ino, idx) = (big(ino), big(idx));
        let freed = get_u64(
            &self.one(
                &format!(
                    "SELECT COALESCE(SUM(stored_len), 0)::bigint FROM blocks \
                     WHERE ino = $1 AND {cond}"
                ),
                &[&ino, &idx],
            )?,
            0,
        )?;
        if freed == 0 {
            return Ok(());
        }
        self.exec(
            &format!("DELETE FROM blocks WHERE ino = $1 AND {cond}"),
            &[&ino, &idx],
        )?;
        self.exec(
            "UPDATE inodes SET stored_bytes = stored_bytes - $2 WHERE ino = $1",
            &[&ino, &big(freed)],
        )?;
        Ok(())
    }
}

impl Reads for PgTx<'_> {
    fn inode(&self, ino: u64) -> Result<Option<InodeRow>> {
        let sql = format!("SELECT {INODE_COLUMNS} FROM inodes WHERE ino = $1");
        self.opt(&sql, &[&big(ino)])?
            .map(|r| inode_from_row(&r))
            .transpose()
    }

    fn unlinked_inodes(&self) -> Result<Vec<u64>> {
        self.rows(
            "SELECT ino FROM inodes WHERE ino != 1 AND nlink = 0 \
             AND NOT EXISTS (SELECT 1 FROM dirents d WHERE d.ino = inodes.ino)",
            &[],
        )?
        .iter()
        .map(|r| get_u64(r, 0))
        .collect()
    }

    fn inode_count(&self) -> Result<u64> {
        get_u64(&self.one("SELECT COUNT(*) FROM inodes", &[])?, 0)
    }

    fn out_of_range_rows(&self) -> Result<Vec<String>> {
        let checks = [
            (
                "inodes",
                "'inode ' || ino".to_string(),
                format!(
                    "ino < 1 OR mode NOT {U32} OR uid NOT {U32} OR gid NOT {U32} \
                     OR nlink NOT {U32} OR rdev NOT {U32} OR size < 0 OR stored_bytes < 0"
                ),
            ),
            (
                "dirents",
                "'entry X''' || upper(encode(name, 'hex')) || ''' in directory ' || parent"
                    .to_string(),
                "parent < 1 OR ino < 1".to_string(),
            ),
            (
                "blocks",
                "'block ' || idx || ' of inode ' || ino".to_string(),
                "ino < 1 OR idx < 0 OR codec NOT BETWEEN 0 AND 255 OR raw_len < 0 \
                 OR stored_len < 0"
                    .to_string(),
            ),
        ];
        let mut out = Vec::new();
        for (table, name, bad) in checks {
            for row in self.rows(&format!("SELECT {name} FROM {table} WHERE {bad}"), &[])? {
                out.push(format!(
                    "{}: a number out of range",
                    row.try_get::<_, String>(0)?
                ));
            }
        }
        Ok(out)
    }

    fn all_inodes(&self) -> Result<Vec<InodeRow>> {
        let sql = format!(
            "SELECT {INODE_COLUMNS} FROM inodes WHERE ino >= 1 AND mode {U32} AND uid {U32} \
             AND gid {U32} AND nlink {U32} AND rdev {U32} AND size >= 0 AND stored_bytes >= 0 \
             ORDER BY ino"
        );
        self.rows(&sql, &[])?.iter().map(inode_from_row).collect()
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<u64>> {
        self.opt(
            "SELECT ino FROM dirents WHERE parent = $1 AND name = $2",
            &[&big(parent), &name],
        )?
        .map(|r| get_u64(&r, 0))
        .transpose()
    }

    fn dir_is_empty(&self, dir: u64) -> Result<bool> {
        let any: bool = self
            .one(
                "SELECT EXISTS (SELECT 1 FROM dirents WHERE parent = $1)",
                &[&big(dir)],
            )?
            .try_get(0)?;
        Ok(!any)
    }

    fn list_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntryRow>> {
        self.rows(
            "SELECT d.id, d.name, d.ino, i.mode FROM dirents d JOIN inodes i ON i.ino = d.ino \
             WHERE d.parent = $1 AND d.id > $2 ORDER BY d.id LIMIT $3",
            &[&big(dir), &big(after), &big(limit as u64)],
        )?
        .iter()
        .map(|r| {
            Ok(DirEntryRow {
                cookie: get_u64(r, 0)?,
                name: r.try_get(1)?,
                ino: get_u64(r, 2)?,
                mode: get_u32(r, 3)?,
            })
        })
        .collect()
    }

    fn list_dir_rows(
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
             WHERE d.parent = $1 AND d.id > $2 ORDER BY d.id LIMIT $3"
        );
        self.rows(&sql, &[&big(dir), &big(after), &big(limit as u64)])?
            .iter()
            .map(|r| Ok((get_u64(r, 13)?, r.try_get(14)?, inode_from_row(r)?)))
            .collect()
    }

    fn parent_of(&self, dir: u64) -> Result<Option<u64>> {
        self.opt(
            "SELECT parent FROM dirents WHERE ino = $1 LIMIT 1",
            &[&big(dir)],
        )?
        .map(|r| get_u64(&r, 0))
        .transpose()
    }

    fn all_dirents(&self) -> Result<Vec<(u64, Vec<u8>, u64)>> {
        self.rows(
            "SELECT parent, name, ino FROM dirents WHERE parent >= 1 AND ino >= 1 ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| Ok((get_u64(r, 0)?, r.try_get(1)?, get_u64(r, 2)?)))
        .collect()
    }

    fn block(&self, ino: u64, idx: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .opt(
                "SELECT record FROM blocks WHERE ino = $1 AND idx = $2",
                &[&big(ino), &big(idx)],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn blocks_to_archive(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        let sql = match tier {
            ArchiveTier::Pending => return Ok(Vec::new()),
            ArchiveTier::Archive => {
                "SELECT ino, idx FROM blocks WHERE archived = 0 AND written_ns <= $1 \
                 ORDER BY written_ns LIMIT $2"
            }
            ArchiveTier::Deep => {
                "SELECT ino, idx FROM blocks WHERE archived IN (0, 2) AND written_ns <= $1 \
                 ORDER BY written_ns LIMIT $2"
            }
        };
        pairs(self.rows(sql, &[&written_before, &big(limit as u64)])?)
    }

    fn llm_blocks_not_portable(&self, offset: usize, limit: usize) -> Result<Vec<(u64, u64)>> {
        pairs(self.rows(
            &format!(
                "SELECT ino, idx FROM blocks WHERE {NOT_PORTABLE} ORDER BY ino, idx \
                 LIMIT $1 OFFSET $2"
            ),
            &[&big(limit as u64), &big(offset as u64)],
        )?)
    }

    fn archive_totals(&self) -> Result<ArchiveTotals> {
        let mut out = ArchiveTotals::default();
        for r in self.rows(
            "SELECT archived, COALESCE(SUM(raw_len), 0)::bigint, \
             COALESCE(SUM(stored_len), 0)::bigint FROM blocks GROUP BY archived",
            &[],
        )? {
            let archived: i64 = r.try_get(0)?;
            // A value this build does not know counts as considered.
            let tier = match archived {
                0 => &mut out.pending,
                2 => &mut out.archive,
                _ => &mut out.deep,
            };
            tier.raw_bytes += get_u64(&r, 1)?;
            tier.stored_bytes += get_u64(&r, 2)?;
        }
        Ok(out)
    }

    fn model(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .opt("SELECT onnx FROM models WHERE sha256 = $1", &[&sha256])?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn has_dictionaries_table(&self) -> Result<bool> {
        Ok(self
            .one("SELECT to_regclass('dictionaries') IS NOT NULL", &[])?
            .try_get(0)?)
    }

    fn dictionaries(&self) -> Result<Vec<DictionaryRow>> {
        if !self.has_dictionaries_table()? {
            return Ok(Vec::new());
        }
        self.rows(
            "SELECT sha256, raw_len, payload FROM dictionaries ORDER BY added_ns, sha256",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(DictionaryRow {
                sha256: r.try_get(0)?,
                raw_len: get_u64(r, 1)?,
                payload: r.try_get(2)?,
            })
        })
        .collect()
    }

    fn model_shas(&self) -> Result<Vec<String>> {
        Ok(self
            .rows("SELECT sha256 FROM models ORDER BY added_ns, sha256", &[])?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn llm_blocks_of_model(&self, model_id: &[u8; 8]) -> Result<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM blocks WHERE codec = {} AND substring(record from {} for 8) = $1",
            crate::codec::CodecId::Llm as u8,
            crate::codec::RECORD_HEADER_LEN + 5
        );
        get_u64(&self.one(&sql, &[&&model_id[..]])?, 0)
    }

    fn block_indices_below(&self, ino: u64, below: u64, limit: usize) -> Result<Vec<u64>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(
            "SELECT idx FROM blocks WHERE ino = $1 AND idx < $2 ORDER BY idx DESC LIMIT $3",
            &[&big(ino), &big(below), &limit],
        )?
        .iter()
        .map(|r| get_u64(r, 0))
        .collect()
    }

    fn block_infos(&self, ino: Option<u64>) -> Result<Vec<BlockInfo>> {
        let base = "SELECT ino, idx, codec, raw_len, stored_len FROM blocks";
        let rows = match ino {
            Some(ino) => self.rows(&format!("{base} WHERE ino = $1 ORDER BY idx"), &[&big(ino)])?,
            None => self.rows(
                &format!(
                    "{base} WHERE ino >= 1 AND idx >= 0 AND codec BETWEEN 0 AND 255 \
                     AND raw_len >= 0 AND stored_len >= 0 ORDER BY ino, idx"
                ),
                &[],
            )?,
        };
        rows.iter()
            .map(|r| {
                let codec: i64 = r.try_get(2)?;
                Ok(BlockInfo {
                    ino: get_u64(r, 0)?,
                    idx: get_u64(r, 1)?,
                    codec: u8::try_from(codec).map_err(|_| out_of_range(r, 2, codec))?,
                    raw_len: get_u64(r, 3)?,
                    stored_len: get_u64(r, 4)?,
                })
            })
            .collect()
    }

    fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .opt(
                "SELECT value FROM xattrs WHERE ino = $1 AND name = $2",
                &[&big(ino), &name],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .rows(
                "SELECT name FROM xattrs WHERE ino = $1 ORDER BY name",
                &[&big(ino)],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn xattr_owners(&self) -> Result<Vec<u64>> {
        self.rows("SELECT DISTINCT ino FROM xattrs", &[])?
            .iter()
            .map(|r| get_u64(r, 0))
            .collect()
    }

    fn volume_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .opt("SELECT value FROM volume WHERE key = $1", &[&key])?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn totals(&self) -> Result<StoreTotals> {
        let mut t = StoreTotals::default();
        for r in self.rows(
            "SELECT mode & 61440, COUNT(*), COALESCE(SUM(size), 0)::bigint, \
             COALESCE(SUM(stored_bytes), 0)::bigint FROM inodes GROUP BY mode & 61440",
            &[],
        )? {
            let (fmt, count, size, stored) = (
                get_u32(&r, 0)?,
                get_u64(&r, 1)?,
                get_u64(&r, 2)?,
                get_u64(&r, 3)?,
            );
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
        for r in self.rows(
            "SELECT codec, COUNT(*), SUM(raw_len)::bigint, SUM(stored_len)::bigint FROM blocks \
             GROUP BY codec ORDER BY codec",
            &[],
        )? {
            let codec: i64 = r.try_get(0)?;
            t.per_codec.push(CodecTotals {
                codec: u8::try_from(codec).map_err(|_| out_of_range(&r, 0, codec))?,
                blocks: get_u64(&r, 1)?,
                raw_bytes: get_u64(&r, 2)?,
                stored_bytes: get_u64(&r, 3)?,
            });
        }
        let r = self.one(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(raw_len), 0)::bigint FROM blocks \
                 WHERE {NOT_PORTABLE}"
            ),
            &[],
        )?;
        t.llm_not_portable = BlockCount {
            blocks: get_u64(&r, 0)?,
            raw_bytes: get_u64(&r, 1)?,
        };
        Ok(t)
    }
}

impl Writes for PgTx<'_> {
    fn insert_inode(&self, n: &NewInode) -> Result<InodeRow> {
        let size = n.target.as_ref().map_or(0, |t| t.len() as u64);
        let r = self.one(
            "INSERT INTO inodes(mode, uid, gid, nlink, size, rdev, atime_ns, mtime_ns, ctime_ns, \
             crtime_ns, target) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $7, $8) RETURNING ino",
            &[
                &i64::from(n.mode),
                &i64::from(n.uid),
                &i64::from(n.gid),
                &i64::from(n.nlink),
                &big(size),
                &i64::from(n.rdev),
                &n.time_ns,
                &n.target,
            ],
        )?;
        Ok(n.row(get_u64(&r, 0)?))
    }

    fn update_inode(&self, i: &InodeRow) -> Result<()> {
        self.exec(
            "UPDATE inodes SET mode = $2, uid = $3, gid = $4, nlink = $5, size = $6, rdev = $7, \
             atime_ns = $8, mtime_ns = $9, ctime_ns = $10, crtime_ns = $11 WHERE ino = $1",
            &[
                &big(i.ino),
                &i64::from(i.mode),
                &i64::from(i.uid),
                &i64::from(i.gid),
                &i64::from(i.nlink),
                &big(i.size),
                &i64::from(i.rdev),
                &i.atime_ns,
                &i.mtime_ns,
                &i.ctime_ns,
                &i.crtime_ns,
            ],
        )?;
        Ok(())
    }

    fn delete_inode(&self, ino: u64) -> Result<()> {
        self.lock_inode(ino)?;
        let ino = big(ino);
        self.exec("DELETE FROM blocks WHERE ino = $1", &[&ino])?;
        self.exec("DELETE FROM xattrs WHERE ino = $1", &[&ino])?;
        // Only a read-write client holds inodes (and surely has the
        // table: its open creates it).
        if self.mount.is_some() {
            self.exec("DELETE FROM inode_holds WHERE ino = $1", &[&ino])?;
        }
        self.exec("DELETE FROM inodes WHERE ino = $1", &[&ino])?;
        Ok(())
    }

    fn hold_unlinked(&self, ino: u64) -> Result<()> {
        if let Some(mount) = self.mount {
            self.exec(
                "INSERT INTO inode_holds(mount, ino) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&mount, &big(ino)],
            )?;
        }
        Ok(())
    }

    fn release_holds(&self) -> Result<()> {
        if let Some(mount) = self.mount {
            self.exec("DELETE FROM inode_holds WHERE mount = $1", &[&mount])?;
        }
        Ok(())
    }

    fn reclaimable_inodes(&self) -> Result<Vec<u64>> {
        if self.mount.is_none() {
            return self.unlinked_inodes();
        }
        // Clients whose heartbeat stopped are dead: their holds go.
        self.exec(
            &format!(
                "DELETE FROM mounts WHERE seen < now() - {}",
                super::mounts::STALE_AFTER_SQL
            ),
            &[],
        )?;
        self.exec(
            "DELETE FROM inode_holds h WHERE NOT EXISTS \
             (SELECT 1 FROM mounts m WHERE m.name = h.mount)",
            &[],
        )?;
        self.rows(
            "SELECT ino FROM inodes WHERE ino != 1 AND nlink = 0 \
             AND NOT EXISTS (SELECT 1 FROM dirents d WHERE d.ino = inodes.ino) \
             AND NOT EXISTS (SELECT 1 FROM inode_holds h WHERE h.ino = inodes.ino)",
            &[],
        )?
        .iter()
        .map(|r| get_u64(r, 0))
        .collect()
    }

    fn insert_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.exec(
            "INSERT INTO dirents(parent, name, ino) VALUES ($1, $2, $3)",
            &[&big(parent), &name, &big(ino)],
        )?;
        Ok(())
    }

    fn remove_dirent(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.exec(
            "DELETE FROM dirents WHERE parent = $1 AND name = $2",
            &[&big(parent), &name],
        )?;
        Ok(())
    }

    fn retarget_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.exec(
            "UPDATE dirents SET ino = $3 WHERE parent = $1 AND name = $2",
            &[&big(parent), &name, &big(ino)],
        )?;
        Ok(())
    }

    fn put_block(&self, ino: u64, idx: u64, codec: u8, raw_len: u64, record: &[u8]) -> Result<()> {
        require_feature_of(self, codec, record)?;
        // (delete_block locks the inode's row before the block's.)
        self.delete_block(ino, idx)?;
        // A block the write path already coded with the model (the
        // synchronous mode) needs no archiving.
        let archived = i64::from(codec == crate::codec::CodecId::Llm as u8);
        self.exec(
            "INSERT INTO blocks(ino, idx, codec, raw_len, stored_len, record, written_ns, archived) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &big(ino),
                &big(idx),
                &i64::from(codec),
                &big(raw_len),
                &big(record.len() as u64),
                &record,
                &crate::time::now_ns(),
                &archived,
            ],
        )?;
        self.exec(
            "UPDATE inodes SET stored_bytes = stored_bytes + $2 WHERE ino = $1",
            &[&big(ino), &big(record.len() as u64)],
        )?;
        Ok(())
    }

    fn swap_archived_block(
        &self,
        ino: u64,
        idx: u64,
        old: &[u8],
        new: Option<(u8, &[u8])>,
        tier: ArchiveTier,
    ) -> Result<bool> {
        let tier = tier as i64;
        if let Some((codec, record)) = new {
            require_feature_of(self, codec, record)?;
        }
        self.lock_inode(ino)?;
        let changed = match new {
            Some((codec, record)) => self.exec(
                "UPDATE blocks SET codec = $3, stored_len = $4, record = $5, archived = $7 \
                 WHERE ino = $1 AND idx = $2 AND record = $6",
                &[
                    &big(ino),
                    &big(idx),
                    &i64::from(codec),
                    &big(record.len() as u64),
                    &record,
                    &old,
                    &tier,
                ],
            )?,
            None => self.exec(
                "UPDATE blocks SET archived = $4 WHERE ino = $1 AND idx = $2 AND record = $3",
                &[&big(ino), &big(idx), &old, &tier],
            )?,
        };
        if changed == 1 {
            if let Some((_, record)) = new {
                let delta = record.len() as i64 - old.len() as i64;
                self.exec(
                    "UPDATE inodes SET stored_bytes = stored_bytes + $2 WHERE ino = $1",
                    &[&big(ino), &delta],
                )?;
            }
        }
        Ok(changed == 1)
    }

    fn claim_blocks(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
        lease: &Lease,
    ) -> Result<Vec<(u64, u64)>> {
        let wanted = match tier {
            ArchiveTier::Pending => return Ok(Vec::new()),
            ArchiveTier::Archive => "b.archived = 0",
            ArchiveTier::Deep => "b.archived IN (0, 2)",
        };
        // Lapsed claims are free: their worker died or stalled. (Rows
        // another worker is deleting this instant are left to it: no
        // worker waits on another here.)
        self.exec(
            "DELETE FROM block_claims WHERE (ino, idx) IN (SELECT ino, idx FROM block_claims \
             WHERE expires <= now() FOR UPDATE SKIP LOCKED)",
            &[],
        )?;
        // Blocks without another worker's claim, skipping those a
        // transaction holds (another worker claiming them this instant, a
        // mount writing them); the unique key of block_claims decides
        // between two workers that both saw a block free.
        let rows = self.rows(
            &format!(
                "WITH free AS (                    SELECT b.ino, b.idx FROM blocks b                    WHERE {wanted} AND b.written_ns <= $1 AND NOT EXISTS (                      SELECT 1 FROM block_claims c WHERE c.ino = b.ino AND c.idx = b.idx                      AND c.worker <> $3)                    ORDER BY b.written_ns LIMIT $2                    FOR UPDATE OF b SKIP LOCKED)                  INSERT INTO block_claims(ino, idx, worker, expires)                  SELECT ino, idx, $3, now() + $4 * interval '1 second' FROM free                  ON CONFLICT (ino, idx) DO UPDATE SET worker = EXCLUDED.worker,                    expires = EXCLUDED.expires                  WHERE block_claims.worker = EXCLUDED.worker OR block_claims.expires <= now()                  RETURNING ino, idx"
            ),
            &[
                &written_before,
                &big(limit as u64),
                &lease.worker,
                &lease.duration.as_secs_f64(),
            ],
        )?;
        pairs(rows)
    }

    fn register_worker(&self, lease: &Lease, engine: &str, engine_id: &str) -> Result<()> {
        self.exec(
            "INSERT INTO archive_workers(worker, engine, engine_id, started, seen) \
             VALUES ($1, $2, $3, now(), now()) \
             ON CONFLICT (worker) DO UPDATE SET engine = EXCLUDED.engine, \
             engine_id = EXCLUDED.engine_id, seen = now()",
            &[&lease.worker, &engine, &engine_id],
        )?;
        Ok(())
    }

    fn renew_claims(&self, lease: &Lease) -> Result<u64> {
        let n = self.exec(
            "UPDATE block_claims SET expires = now() + $2 * interval '1 second' WHERE worker = $1",
            &[&lease.worker, &lease.duration.as_secs_f64()],
        )?;
        self.exec(
            "UPDATE archive_workers SET seen = now() WHERE worker = $1",
            &[&lease.worker],
        )?;
        Ok(n)
    }

    fn release_claim(&self, ino: u64, idx: u64, worker: &str) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM block_claims WHERE ino = $1 AND idx = $2 AND worker = $3",
            &[&big(ino), &big(idx), &worker],
        )?;
        Ok(n == 1)
    }

    fn claims_of_others(&self, worker: &str) -> Result<u64> {
        get_u64(
            &self.one(
                "SELECT COUNT(*) FROM block_claims WHERE worker <> $1 AND expires > now()",
                &[&worker],
            )?,
            0,
        )
    }

    fn release_claims(&self, worker: &str) -> Result<()> {
        self.exec("DELETE FROM block_claims WHERE worker = $1", &[&worker])?;
        self.exec("DELETE FROM archive_workers WHERE worker = $1", &[&worker])?;
        Ok(())
    }

    fn yield_to_writers(&self) -> Result<()> {
        // Well under the server's deadlock_timeout (1 s by default): in a
        // lock cycle with a mount's transaction, the worker's gives up
        // first and the mount's goes on.
        self.batch("SET LOCAL lock_timeout = '200ms'")
    }

    fn lock_volume_settings(&self) -> Result<()> {
        self.exec(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&SETTINGS_LOCK_CLASS],
        )?;
        Ok(())
    }

    fn delete_model(&self, sha256: &str) -> Result<()> {
        self.exec("DELETE FROM models WHERE sha256 = $1", &[&sha256])?;
        Ok(())
    }

    fn put_model(&self, sha256: &str, onnx: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO models(sha256, onnx, added_ns) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &onnx, &crate::time::now_ns()],
        )?;
        Ok(())
    }

    fn put_dictionary(&self, d: &DictionaryRow) -> Result<()> {
        if !self.has_dictionaries_table()? {
            self.batch(super::migrate::DICTIONARIES_TABLE)?;
        }
        self.exec(
            "INSERT INTO dictionaries(sha256, raw_len, payload, added_ns) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
            &[
                &d.sha256,
                &big(d.raw_len),
                &d.payload,
                &crate::time::now_ns(),
            ],
        )?;
        Ok(())
    }

    fn delete_block(&self, ino: u64, idx: u64) -> Result<()> {
        self.delete_blocks_where(ino, "idx = $2", idx)
    }

    fn delete_blocks_from(&self, ino: u64, first: u64) -> Result<()> {
        self.delete_blocks_where(ino, "idx >= $2", first)
    }

    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO xattrs(ino, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (ino, name) DO UPDATE SET value = EXCLUDED.value",
            &[&big(ino), &name, &value],
        )?;
        Ok(())
    }

    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM xattrs WHERE ino = $1 AND name = $2",
            &[&big(ino), &name],
        )?;
        Ok(n > 0)
    }

    fn set_volume_setting(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO volume(key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )?;
        Ok(())
    }
}

impl BackendTx for PgTx<'_> {
    fn schema_version(&self) -> Result<u32> {
        let v: i64 = self
            .one("SELECT version FROM llmfs_schema", &[])?
            .try_get(0)?;
        u32::try_from(v).map_err(|_| StoreError::Invalid(format!("schema version {v}")))
    }

    fn set_schema_version(&self, version: u32) -> Result<()> {
        self.exec(
            "UPDATE llmfs_schema SET version = $1",
            &[&i64::from(version)],
        )?;
        Ok(())
    }

    fn insert_root_inode(&self, mode: u32, uid: u32, gid: u32, now_ns: i64) -> Result<()> {
        self.exec(
            "INSERT INTO inodes(ino, mode, uid, gid, nlink, atime_ns, mtime_ns, ctime_ns, \
             crtime_ns) VALUES ($1, $2, $3, $4, 2, $5, $5, $5, $5)",
            &[
                &big(ROOT_INO),
                &i64::from(mode),
                &i64::from(uid),
                &i64::from(gid),
                &now_ns,
            ],
        )?;
        // The root took number 1 itself: new inodes start after it.
        self.one(
            "SELECT setval(pg_get_serial_sequence('inodes', 'ino'), $1)",
            &[&big(ROOT_INO)],
        )?;
        Ok(())
    }

    fn bump_sync_generation(&self) -> Result<()> {
        self.exec(
            "UPDATE volume SET value = (value::bigint + 1)::text WHERE key = 'sync_generation'",
            &[],
        )?;
        Ok(())
    }
}
