//! The store's typed transactions, the same for every backend: a
//! [`ReadTx`] (`Store::read`) has only queries, a [`WriteTx`]
//! (`Store::write`) the queries and the changes, which commit together or
//! not at all, so that a change inside a read transaction does not compile.
//! Each backend (`sqlite`, `postgres`) implements [`Reads`] and [`Writes`]
//! over a transaction it holds open, and [`BackendTx`] for the
//! bookkeeping that only the store itself does.

use std::ops::Range;

use super::features::{Feature, FeatureSet, FEATURES_KEY};
use super::rows::{
    ArchiveTier, ArchiveTotals, BlockInfo, DictionaryRow, DirEntryRow, InodeRow, Lease, NewInode,
    StoreTotals,
};
use super::sqlite::segments::{Extent, Pin};
use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// A read transaction: queries over a consistent snapshot.
pub type ReadTx<'c> = dyn Reads + 'c;

/// A write transaction: everything a [`ReadTx`] reads, and the changes.
pub type WriteTx<'c> = dyn Writes + 'c;

/// The queries of a transaction; none of them changes the store.
pub trait Reads {
    fn inode(&self, ino: u64) -> Result<Option<InodeRow>>;

    /// Inodes that no directory entry names (left by a crash while a file
    /// was open after its last unlink).
    fn unlinked_inodes(&self) -> Result<Vec<u64>>;

    fn inode_count(&self) -> Result<u64>;

    /// Rows holding numbers outside what their fields can hold (a negative
    /// size, a mode beyond 32 bits, ...), named by their keys: fsck reports
    /// these one by one, then leaves the rows out of the typed reads that
    /// would otherwise stop at the first.
    fn out_of_range_rows(&self) -> Result<Vec<String>>;

    fn all_inodes(&self) -> Result<Vec<InodeRow>>;

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<u64>>;

    fn dir_is_empty(&self, dir: u64) -> Result<bool>;

    /// Entries of `dir` with a cookie greater than `after`, in cookie order.
    fn list_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntryRow>>;

    /// As [`ReadTx::list_dir`], each entry with its inode's row (for
    /// `readdirplus`).
    fn list_dir_rows(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>, InodeRow)>>;

    /// The directory holding `dir` (a directory has exactly one entry).
    fn parent_of(&self, dir: u64) -> Result<Option<u64>>;

    /// Every (parent, name, ino) triple, for fsck.
    fn all_dirents(&self) -> Result<Vec<(u64, Vec<u8>, u64)>>;

    fn block(&self, ino: u64, idx: u64) -> Result<Option<Vec<u8>>>;

    /// As [`Reads::block`], but a record in a segment file is only
    /// located (and pinned): [`StoredRecord::into_bytes`] reads it after
    /// the transaction, so that the disk read does not hold up the store.
    fn stored_record(&self, ino: u64, idx: u64) -> Result<Option<StoredRecord>> {
        Ok(self.block(ino, idx)?.map(StoredRecord::Inline))
    }

    /// Blocks written at or before `written_before` (ns) that `tier` has
    /// still to take, oldest first: for the archive tier those not yet
    /// considered, for the deep tier those not yet in it.
    fn blocks_to_archive(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>>;

    /// Bytes of blocks the archiver has and has not yet considered.
    /// Up to `limit` llm blocks coded with a float model (payload versions 1
    /// and 2, which decode only on the engine class that wrote them),
    /// skipping the first `offset` of them, in (ino, idx) order.
    fn llm_blocks_not_portable(&self, offset: usize, limit: usize) -> Result<Vec<(u64, u64)>>;

    fn archive_totals(&self) -> Result<ArchiveTotals>;

    /// The stored model with this sha256 (hex), if the volume holds it.
    fn model(&self, sha256: &str) -> Result<Option<Vec<u8>>>;

    /// Whether the volume has stored a dictionary (its table exists).
    fn has_dictionaries_table(&self) -> Result<bool>;

    /// Every dictionary the volume stores, oldest first.
    fn dictionaries(&self) -> Result<Vec<DictionaryRow>>;

    /// The sha256 (hex) of every model the volume stores.
    fn model_shas(&self) -> Result<Vec<String>>;

    /// How many llm blocks name `model_id` (the first 8 bytes of a model's
    /// sha256) in their payload header.
    fn llm_blocks_of_model(&self, model_id: &[u8; 8]) -> Result<u64>;

    /// Block summaries of one inode (or of all inodes if `ino` is None).
    fn block_infos(&self, ino: Option<u64>) -> Result<Vec<BlockInfo>>;

    /// The indices of inode `ino`'s blocks below `below`, highest first,
    /// at most `limit` of them: a large file's rows a chunk at a time, with
    /// no list of them all in memory and no step over a hole.
    fn block_indices_below(&self, ino: u64, below: u64, limit: usize) -> Result<Vec<u64>>;

    fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>>;

    fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>>;

    fn xattr_owners(&self) -> Result<Vec<u64>>;

    fn volume_setting(&self, key: &str) -> Result<Option<String>>;

    /// The volume's feature set (docs/FORMAT.md, "Schema and versions").
    fn features(&self) -> Result<FeatureSet> {
        match self.volume_setting(FEATURES_KEY)? {
            Some(text) => FeatureSet::parse(&text).map_err(StoreError::UnknownFeatures),
            None => Ok(FeatureSet::default()),
        }
    }

    fn totals(&self) -> Result<StoreTotals>;
}

/// A block's new record in a write-back ([`Writes::write_back`]).
#[derive(Debug, Clone, Copy)]
pub struct BlockWrite<'a> {
    pub codec: u8,
    pub raw_len: u64,
    pub record: &'a [u8],
    /// Where the record lies when `append_records` wrote it outside the
    /// database ([`Writes::put_block_at`]); `None`: stored inline
    /// ([`Writes::put_block`]).
    pub extent: Option<Extent>,
}

/// The changes a write transaction makes.
pub trait Writes: Reads {
    /// Inserts an inode (a symlink's size is its target's length) and
    /// returns its row as stored, without reading it back.
    fn insert_inode(&self, n: &NewInode) -> Result<InodeRow>;

    /// Writes back every attribute of an inode (not `stored_bytes`, which
    /// only block writes change).
    fn update_inode(&self, i: &InodeRow) -> Result<()>;

    /// Removes an inode with its blocks and xattrs.
    fn delete_inode(&self, ino: u64) -> Result<()>;

    /// Records that this client still has `ino` open or referenced after
    /// removing its last link, so that another client's reclaim of
    /// unlinked inodes leaves it alone while this one lives (PostgreSQL;
    /// a SQLite store has one client, which reclaims only at its start).
    /// Deleting the inode drops its holds.
    fn hold_unlinked(&self, ino: u64) -> Result<()>;

    /// Drops every hold of this client (it is leaving).
    fn release_holds(&self) -> Result<()>;

    /// The unlinked inodes (as [`Reads::unlinked_inodes`]) that no live
    /// client holds: those this client may delete. On PostgreSQL this
    /// first forgets the clients whose heartbeat stopped, and their holds.
    fn reclaimable_inodes(&self) -> Result<Vec<u64>>;

    fn insert_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()>;

    fn remove_dirent(&self, parent: u64, name: &[u8]) -> Result<()>;

    /// Points an existing entry at another inode, keeping its cookie.
    fn retarget_dirent(&self, parent: u64, name: &[u8], ino: u64) -> Result<()>;

    /// Stores (or replaces) a block record and keeps `stored_bytes` in step.
    fn put_block(&self, ino: u64, idx: u64, codec: u8, raw_len: u64, record: &[u8]) -> Result<()>;

    /// A write-back of inode `row.ino`: each block's new record stored
    /// (`None`: a hole, whose row goes), then `row` written as
    /// [`Writes::update_inode`] writes it, with `stored_bytes` following
    /// the records. A store may fold the records' change of `stored_bytes`
    /// into the inode's update, as SQLite does; this default makes the
    /// single-block calls.
    fn write_back(&self, row: &InodeRow, blocks: &[(u64, Option<BlockWrite<'_>>)]) -> Result<()> {
        for &(idx, block) in blocks {
            self.put_or_drop_block(row.ino, idx, block)?;
        }
        self.update_inode(row)
    }

    /// Stores one block's new record ([`Writes::put_block`], or
    /// [`Writes::put_block_at`] for one with an extent), or drops the
    /// block's row (`None`: a hole).
    fn put_or_drop_block(&self, ino: u64, idx: u64, block: Option<BlockWrite<'_>>) -> Result<()> {
        match block {
            Some(b) => match b.extent {
                Some(extent) => self.put_block_at(ino, idx, b.codec, b.raw_len, b.record, extent),
                None => self.put_block(ino, idx, b.codec, b.raw_len, b.record),
            },
            None => self.delete_block(ino, idx),
        }
    }

    /// As [`Writes::put_block`], for `record` already written (and on
    /// stable storage) at `extent` by [`crate::store::Store::append_records`];
    /// the row names the extent. Only a store whose `append_records`
    /// returns extents takes one.
    fn put_block_at(
        &self,
        ino: u64,
        idx: u64,
        codec: u8,
        raw_len: u64,
        record: &[u8],
        extent: Extent,
    ) -> Result<()> {
        let _ = (ino, idx, codec, raw_len, record, extent);
        Err(StoreError::Invalid(
            "this store keeps block records in its database".into(),
        ))
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
    ) -> Result<bool>;

    /// Claims up to `limit` blocks that `tier` has still to take (as
    /// [`Reads::blocks_to_archive`]) for `lease`'s worker: blocks no other
    /// worker holds an unexpired claim on, nor a transaction is writing.
    /// Two workers never hold the same block; the claims of a worker that
    /// died expire and go to the next one. A store with one writer process
    /// (SQLite) needs no claims: there this is `blocks_to_archive`.
    fn claim_blocks(
        &self,
        tier: ArchiveTier,
        written_before: i64,
        limit: usize,
        lease: &Lease,
    ) -> Result<Vec<(u64, u64)>>;

    /// Records a running worker and the engine it encodes llm blocks with
    /// (`engine`: its fingerprint's description, `engine_id` its id in
    /// hex; both empty without a model), for whoever looks at the volume.
    fn register_worker(&self, lease: &Lease, engine: &str, engine_id: &str) -> Result<()>;

    /// Extends every claim `lease`'s worker holds by its duration; returns
    /// how many it holds.
    fn renew_claims(&self, lease: &Lease) -> Result<u64>;

    /// Gives up `worker`'s claim on one block; false when it no longer
    /// held it (it expired and another worker took it).
    fn release_claim(&self, ino: u64, idx: u64, worker: &str) -> Result<bool>;

    /// How many unexpired claims workers other than `worker` hold.
    fn claims_of_others(&self, worker: &str) -> Result<u64>;

    /// Gives up every claim of `worker` (the end of a pass).
    fn release_claims(&self, worker: &str) -> Result<()>;

    /// Makes this transaction fail at once (an error for which
    /// [`StoreError::is_contention`] is true) rather than wait long on a
    /// row another client is changing: a background worker steps back
    /// and tries later, so that it never holds up (or deadlocks) a mount.
    fn yield_to_writers(&self) -> Result<()>;

    /// Serialises changes of volume-wide settings (feature set, model,
    /// dictionary, engine) with every other client's for the rest of the
    /// transaction: two clients that each add a setting lose neither.
    fn lock_volume_settings(&self) -> Result<()>;

    /// Drops a stored model that no block refers to any more.
    fn delete_model(&self, sha256: &str) -> Result<()>;

    /// Stores a model (idempotent).
    fn put_model(&self, sha256: &str, onnx: &[u8]) -> Result<()>;

    /// Stores a dictionary (idempotent), creating the dictionaries table
    /// with the volume's first one.
    fn put_dictionary(&self, d: &DictionaryRow) -> Result<()>;

    fn delete_block(&self, ino: u64, idx: u64) -> Result<()>;

    /// Drops every block at or past `first` (truncation).
    fn delete_blocks_from(&self, ino: u64, first: u64) -> Result<()>;

    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()>;

    /// Returns false if there was no such attribute.
    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<bool>;

    fn set_volume_setting(&self, key: &str, value: &str) -> Result<()>;
}

/// What only the store itself does inside a transaction: the schema
/// version, the volume's first rows, the sync generation.
pub(super) trait BackendTx: Writes {
    fn schema_version(&self) -> Result<u32>;
    fn set_schema_version(&self, version: u32) -> Result<()>;
    /// Inserts the root directory (inode 1) of a new volume.
    fn insert_root_inode(&self, mode: u32, uid: u32, gid: u32, now_ns: i64) -> Result<()>;
    /// Bumps the `sync_generation` setting, so that a durable commit has
    /// something to write (and with it makes every earlier commit durable).
    fn bump_sync_generation(&self) -> Result<()>;
}

/// Before `record` (of `codec`) is stored: records the features it needs,
/// in this transaction, and raises the schema version so that llmfs builds
/// without them refuse the store from then on.
pub(super) fn require_feature_of(tx: &impl BackendTx, codec: u8, record: &[u8]) -> Result<()> {
    require_features(tx, Feature::of_record(codec, record))
}

/// As [`require_feature_of`], for one feature of how records are kept.
pub(super) fn require_feature(tx: &impl BackendTx, feature: Feature) -> Result<()> {
    require_features(tx, vec![feature])
}

fn require_features(tx: &impl BackendTx, needed: Vec<Feature>) -> Result<()> {
    if needed.is_empty() {
        return Ok(());
    }
    // Features are only ever added: one the set already holds stays.
    let known = tx.features()?;
    if needed.iter().all(|f| known.contains(*f)) {
        return Ok(());
    }
    // Another client (an archive worker beside a mount) may be adding one
    // too: read and write the set under the settings lock.
    tx.lock_volume_settings()?;
    let mut set = tx.features()?;
    let new: Vec<Feature> = needed.into_iter().filter(|f| !set.contains(*f)).collect();
    if new.is_empty() {
        return Ok(());
    }
    for &feature in &new {
        set.insert(feature);
        log::info!("the volume now uses feature {}", feature.name());
    }
    tx.set_volume_setting(FEATURES_KEY, &set.to_text())?;
    let version = tx.schema_version()?;
    let want = set.schema_version(version);
    if want > version {
        tx.set_schema_version(want)?;
    }
    Ok(())
}

/// A block's record as a transaction found it ([`Reads::stored_record`]).
#[derive(Debug)]
pub enum StoredRecord {
    /// The bytes, read from the database.
    Inline(Vec<u8>),
    /// In a segment file, pinned until read, with the row's copy of the
    /// record's header and zstd frame table (empty when the record has no
    /// table, or its row was written before tables were copied).
    Segment(Pin, Vec<u8>),
}

impl StoredRecord {
    /// The record's bytes (a segment's read now, outside any lock).
    pub fn into_bytes(self) -> std::result::Result<Vec<u8>, StoreError> {
        match self {
            StoredRecord::Inline(record) => Ok(record),
            StoredRecord::Segment(pin, _) => pin.read(),
        }
    }

    /// The record's first bytes known without reading a segment: all of
    /// an inline record, a segment record's copied header and table.
    pub fn prefix(&self) -> &[u8] {
        match self {
            StoredRecord::Inline(record) => record,
            StoredRecord::Segment(_, prefix) => prefix,
        }
    }

    /// The record's length in bytes.
    pub fn record_len(&self) -> usize {
        match self {
            StoredRecord::Inline(record) => record.len(),
            StoredRecord::Segment(pin, _) => pin.record_len(),
        }
    }

    /// Bytes `range` of the record (a segment's read now: only those).
    pub fn read_range(&self, range: Range<usize>) -> std::result::Result<Vec<u8>, StoreError> {
        match self {
            StoredRecord::Inline(record) => record
                .get(range.clone())
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "bytes {range:?} of a {}-byte record",
                        record.len()
                    ))
                }),
            StoredRecord::Segment(pin, _) => pin.read_range(range),
        }
    }
}
