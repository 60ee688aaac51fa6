//! Schema migrations of a PostgreSQL store: numbered SQL files in
//! migrations/postgres/, applied in order in one transaction, with the
//! table `llmfs_schema` recording the version (SQLite's `user_version`).
//! Versions mean the same on both backends: the tables of version 2, and
//! past it the versions that a volume's features need.

use postgres::GenericClient;

use crate::store::{StoreError, SCHEMA_VERSION, TABLES_VERSION};

/// The migrations, in order; entry i brings the schema to version i + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_initial.sql"),
    include_str!("../../../migrations/postgres/0002_models_archive.sql"),
];

/// The table of volume dictionaries, created (as on SQLite, from the file
/// of version 6) by the transaction that stores a volume's first
/// dictionary, not on open.
pub(super) const DICTIONARIES_TABLE: &str =
    include_str!("../../../migrations/postgres/0006_cm_dictionaries.sql");

/// The archive workers' claim tables: not a version (no reader needs
/// them), created if missing by every read-write or worker open.
const CLAIMS_TABLES: &str = include_str!("../../../migrations/postgres/claims.sql");

/// The tables of a volume's read-write clients and the unlinked inodes
/// they hold open (several mounts of one volume): not a version either,
/// created if missing by every read-write open.
const MOUNTS_TABLES: &str = include_str!("../../../migrations/postgres/mounts.sql");
const LISTING_INDEX: &str = include_str!("../../../migrations/postgres/dirents_by_parent.sql");

/// The first key of the advisory lock that serialises the creation of
/// the tables above (`llmc`); the second is a hash of the schema name.
const CLAIMS_LOCK_CLASS: i32 = 0x6c6c_6d63;

/// Creates the claim tables if the volume has none yet.
pub(super) fn ensure_claims_tables(client: &mut postgres::Client) -> Result<(), StoreError> {
    ensure_tables(client, "archive_workers", CLAIMS_TABLES)
}

/// Creates the tables of mounts and their holds if the volume has none yet.
pub(super) fn ensure_mounts_tables(client: &mut postgres::Client) -> Result<(), StoreError> {
    ensure_tables(client, "inode_holds", MOUNTS_TABLES)
}

/// Creates the index of each directory's entries in cookie order if the
/// volume has none yet (not a schema version: an older llmfs ignores it).
/// Failing that (a server out of space), the volume still opens and lists
/// as before.
pub(super) fn ensure_listing_index(client: &mut postgres::Client) {
    if let Err(e) = ensure_tables(client, "dirents_by_parent", LISTING_INDEX) {
        log::warn!("cannot add the directory listing index ({e}): large directories list slowly");
    }
}

/// Runs `sql` (idempotent) unless table (or index) `probe`, the last it
/// creates, exists already.
fn ensure_tables(client: &mut postgres::Client, probe: &str, sql: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&probe])?
        .get(0);
    if exists {
        return Ok(());
    }
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&CLAIMS_LOCK_CLASS],
    )?;
    tx.batch_execute(sql)?;
    tx.commit()?;
    Ok(())
}

/// The version of this build's PostgreSQL tables.
pub const PG_TABLES_VERSION: u32 = MIGRATIONS.len() as u32;

// One version numbering for both backends: a feature's version must mean
// the same tables everywhere.
const _: () = assert!(PG_TABLES_VERSION == TABLES_VERSION);

/// The schema version of the volume in the current schema; 0 when it has
/// no llmfs tables yet.
pub(super) fn schema_version(c: &mut impl GenericClient) -> Result<u32, StoreError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('llmfs_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: i64 = c.query_one("SELECT version FROM llmfs_schema", &[])?.get(0);
    u32::try_from(v).map_err(|_| StoreError::Invalid(format!("schema version {v}")))
}

/// Brings the tables up to [`PG_TABLES_VERSION`] and returns the version
/// found; refuses a store written by a newer llmfs.
pub(super) fn migrate(client: &mut postgres::Client) -> Result<u32, StoreError> {
    let mut tx = client.transaction()?;
    // Several mounts may open the volume at once: one migrates, the others
    // then find it done.
    tx.execute(super::WRITERS_LOCK_SQL, &[&super::WRITERS_LOCK_CLASS])?;
    let found = schema_version(&mut tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= PG_TABLES_VERSION {
        return Ok(found);
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "UPDATE llmfs_schema SET version = $1",
        &[&i64::from(PG_TABLES_VERSION)],
    )?;
    tx.commit()?;
    Ok(found)
}
