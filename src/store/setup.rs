//! Opening a volume, the same on every backend: its settings and root
//! directory on first open, the feature check on every open.

use super::features::{Feature, FeatureSet, FEATURES_KEY};
use super::tx::{BackendTx, Reads};
use super::{StoreError, ROOT_INO, SCHEMA_VERSION, TABLES_VERSION};

const MIN_BLOCK_SIZE: usize = 4096;
const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;

pub(super) fn validate_block_size(bs: usize) -> Result<(), StoreError> {
    if !bs.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
        return Err(StoreError::Invalid(format!(
            "block size {bs} must be a power of two between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
        )));
    }
    Ok(())
}

/// Writes the volume settings and the root directory into a new store, or
/// reads the block size of an existing one.
pub(super) fn initialise_volume(
    tx: &impl BackendTx,
    block_size: usize,
) -> Result<usize, StoreError> {
    if let Some(v) = tx.volume_setting("block_size")? {
        return parse_block_size(&v);
    }
    validate_block_size(block_size)?;
    let now = crate::time::now_ns();
    tx.set_volume_setting("block_size", &block_size.to_string())?;
    tx.set_volume_setting("created_ns", &now.to_string())?;
    tx.set_volume_setting("sync_generation", "0")?;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    tx.insert_root_inode(libc::S_IFDIR | 0o755, uid, gid, now)?;
    debug_assert_eq!(tx.inode(ROOT_INO)?.map(|r| r.nlink), Some(2));
    Ok(block_size)
}

pub(super) fn read_block_size(tx: &impl Reads) -> Result<usize, StoreError> {
    let v = tx
        .volume_setting("block_size")?
        .ok_or_else(|| StoreError::Invalid("volume settings are missing".into()))?;
    parse_block_size(&v)
}

fn parse_block_size(v: &str) -> Result<usize, StoreError> {
    let bs: usize = v
        .parse()
        .map_err(|_| StoreError::Invalid(format!("block_size {v:?} is not a number")))?;
    validate_block_size(bs)?;
    Ok(bs)
}

/// Reads the volume's feature set and refuses a store that needs a feature
/// this build does not know. A store raised to version 3 by an llmfs that
/// predates the feature set may hold LZMA2 records without saying so: it is
/// taken to (and, read-write, recorded as) using `lzma`. Read-write, the
/// schema version is brought up to what the features need; read-only, the
/// caller does not commit.
pub(super) fn check_features(
    tx: &impl BackendTx,
    read_only: bool,
) -> Result<FeatureSet, StoreError> {
    let version = tx.schema_version()?;
    let text = tx.volume_setting(FEATURES_KEY)?;
    let mut set = match &text {
        Some(t) => FeatureSet::parse(t).map_err(StoreError::UnknownFeatures)?,
        None => FeatureSet::default(),
    };
    if text.is_none() && version >= Feature::Lzma.schema_version() {
        set.insert(Feature::Lzma);
    }
    if !read_only {
        if !set.is_empty() && text.as_deref() != Some(&*set.to_text()) {
            tx.set_volume_setting(FEATURES_KEY, &set.to_text())?;
        }
        let want = set.schema_version(version);
        if want > version {
            tx.set_schema_version(want)?;
        }
    }
    Ok(set)
}

/// A read-only open reads a store of schema version `found` only if this
/// build knows the version and the store needs no migration (which only a
/// read-write open applies).
pub(super) fn check_readable_version(found: u32) -> Result<(), StoreError> {
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
    Ok(())
}
