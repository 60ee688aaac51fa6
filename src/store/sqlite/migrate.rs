//! Schema migrations: numbered SQL files in migrations/, applied in order in
//! one transaction, with `PRAGMA user_version` recording the last one applied
//! (or, past [`TABLES_VERSION`], the version the volume's features need).

use rusqlite::Connection;

use crate::store::StoreError;

/// The migrations, in order; entry i brings the schema to version i + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_initial.sql"),
    include_str!("../../../migrations/0002_models_archive.sql"),
    include_str!("../../../migrations/0003_lzma_records.sql"),
    include_str!("../../../migrations/0004_portable_llm_records.sql"),
    include_str!("../../../migrations/0005_cm_records.sql"),
    include_str!("../../../migrations/0006_cm_dictionaries.sql"),
    include_str!("../../../migrations/0007_media_records.sql"),
    include_str!("../../../migrations/0008_cm_v2_records.sql"),
    include_str!("../../../migrations/0009_media_v2_records.sql"),
    include_str!("../../../migrations/0010_cm_v3_records.sql"),
    include_str!("../../../migrations/0011_media_v3_records.sql"),
    include_str!("../../../migrations/0012_llm_v5_records.sql"),
    include_str!("../../../migrations/0013_llm_dictionary_records.sql"),
    include_str!("../../../migrations/0014_segment_records.sql"),
];

/// The file that creates the dictionaries table, run by the transaction
/// that stores a volume's first dictionary (not on open: an older llmfs
/// ignores the extra table, and only a primed record locks it out).
pub(super) const DICTIONARIES_TABLE: &str = MIGRATIONS[5];

/// The file that adds the segment columns, table and triggers: run when a
/// store without them is opened read-write (an older llmfs ignores them);
/// the version is raised to 14 only with the first record in a segment.
const SEGMENT_TABLES: &str = MIGRATIONS[13];

/// The newest schema version this build reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The version of this build's tables: what opening a store read-write
/// brings an older one to. The files past it (0003-0014) change no table an
/// older llmfs reads (0006 adds one it ignores, when a volume first stores
/// a dictionary; 0014 adds columns, a table and triggers it ignores); a
/// store is raised to their numbers only when its feature
/// set needs them
/// (`super::features`), so opening a store never locks out an older llmfs
/// that could still read it.
pub const TABLES_VERSION: u32 = 2;

pub fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))?)
}

/// Brings the tables up to [`TABLES_VERSION`] and returns the version found.
/// Refuses a store written by a newer llmfs rather than guessing at its
/// format.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= TABLES_VERSION {
        return Ok(found);
    }
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[found as usize..TABLES_VERSION as usize] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", TABLES_VERSION)?;
    tx.commit()?;
    Ok(found)
}

/// Index of each directory's entries in cookie order: added by every
/// read-write open that lacks it, at no version (older builds keep it up
/// to date like any index).
const LISTING_INDEX: &str = include_str!("../../../migrations/dirents_by_parent.sql");

/// Adds [`LISTING_INDEX`] if the store lacks it. Failing that (a full
/// disk: building it takes space), the volume still opens and lists as
/// before; a volume that cannot be mounted could not be emptied either.
pub(super) fn add_listing_index(conn: &Connection) {
    if let Err(e) = conn.execute_batch(LISTING_INDEX) {
        log::warn!("cannot add the directory listing index ({e}): large directories list slowly");
    }
}

/// Whether the store's tables have the segment columns (0014).
pub(super) fn has_segment_tables(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare("SELECT 1 FROM pragma_table_info('blocks') WHERE name = 'segment'")?
        .exists([])?)
}

/// Adds the segment columns, table and triggers if the store lacks them,
/// without raising its version.
pub(super) fn add_segment_tables(conn: &mut Connection) -> Result<(), StoreError> {
    if has_segment_tables(conn)? {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute_batch(SEGMENT_TABLES)?;
    tx.commit()?;
    Ok(())
}
