-- llmfs store schema, version 1.
-- Applied by src/store/migrate.rs inside one transaction; PRAGMA user_version
-- records the number of the last file applied.

-- Volume-wide settings fixed at creation (block_size, volume uuid, ...).
CREATE TABLE volume (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- One row per inode. Times are nanoseconds since the Unix epoch.
-- `size` is the logical size; `stored_bytes` the sum of the lengths of the
-- inode's block records, kept in step with `blocks` in the same transaction.
CREATE TABLE inodes (
    ino          INTEGER PRIMARY KEY AUTOINCREMENT,
    mode         INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    gid          INTEGER NOT NULL,
    nlink        INTEGER NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    rdev         INTEGER NOT NULL DEFAULT 0,
    atime_ns     INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    ctime_ns     INTEGER NOT NULL,
    crtime_ns    INTEGER NOT NULL,
    target       BLOB
) STRICT;

-- Directory entries. `id` is the stable readdir cookie: entries are listed in
-- id order, so a listing resumed from a cookie neither repeats nor skips
-- entries that were present throughout.
CREATE TABLE dirents (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name   BLOB NOT NULL,
    ino    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX dirents_by_name ON dirents(parent, name);
CREATE INDEX dirents_by_ino ON dirents(ino);

-- File data: one row per stored logical block. `record` is the self-describing
-- block record (docs/FORMAT.md); codec, raw_len and stored_len repeat header
-- fields so that stats need not parse records.
CREATE TABLE blocks (
    ino        INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    codec      INTEGER NOT NULL,
    raw_len    INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    record     BLOB NOT NULL,
    PRIMARY KEY (ino, idx)
) STRICT;

CREATE TABLE xattrs (
    ino   INTEGER NOT NULL,
    name  BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (ino, name)
) STRICT, WITHOUT ROWID;
