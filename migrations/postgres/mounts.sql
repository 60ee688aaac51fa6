-- llmfs PostgreSQL store: the read-write clients of a volume (mounts, and
-- offline commands that change it) and the unlinked inodes each still
-- holds open (docs/FORMAT.md, "PostgreSQL store"; docs/DESIGN.md,
-- "Several mounts of one volume").
--
-- Not a schema version: no reader needs these tables to read the volume.
-- An older llmfs ignores them, and cannot mount the volume beside a newer
-- one anyway (it takes the volume's advisory lock exclusively, which the
-- newer mounts hold shared). Applied idempotently by every read-write
-- open (src/store/postgres/migrate.rs), under a transaction-level
-- advisory lock so that two clients opening at once do not both create
-- them.

-- One row per live read-write client: its name (host, pid, start time),
-- and when it last said it was alive (`seen`, the server's clock, renewed
-- every few seconds by a heartbeat). A row whose `seen` is old is a client
-- that died; its holds no longer count.
CREATE TABLE IF NOT EXISTS mounts (
    name    TEXT PRIMARY KEY,
    host    TEXT NOT NULL,
    pid     BIGINT NOT NULL,
    started TIMESTAMPTZ NOT NULL,
    seen    TIMESTAMPTZ NOT NULL
);

-- An inode whose last link a client removed while the file was still open
-- or referenced there: the reclaim of unlinked inodes at another client's
-- start (or end) leaves it alone while the holder's heartbeat is fresh.
-- Deleted with the inode, or when its client leaves.
CREATE TABLE IF NOT EXISTS inode_holds (
    mount TEXT NOT NULL,
    ino   BIGINT NOT NULL,
    PRIMARY KEY (mount, ino)
);
CREATE INDEX IF NOT EXISTS inode_holds_by_ino ON inode_holds(ino);
