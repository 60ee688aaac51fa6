-- llmfs PostgreSQL store: the archive workers' claims on blocks
-- (docs/FORMAT.md, "PostgreSQL store"; docs/DESIGN.md, "Archive workers").
--
-- Not a schema version: no reader needs these tables to read the volume,
-- and an older llmfs ignores them (its archiver, which does not claim,
-- only risks encoding a block twice: the swap rule still keeps the newest
-- data). Applied idempotently by every read-write or worker open
-- (src/store/postgres/migrate.rs), under a transaction-level advisory lock
-- so that two clients opening at once do not both create them.

-- One row per block a worker is encoding: the worker's name and when the
-- claim lapses (the server's clock). A row past `expires` is free: the
-- worker died or stalled, and the next claim takes the block.
CREATE TABLE IF NOT EXISTS block_claims (
    ino     BIGINT NOT NULL,
    idx     BIGINT NOT NULL,
    worker  TEXT NOT NULL,
    expires TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ino, idx)
);
CREATE INDEX IF NOT EXISTS block_claims_by_worker ON block_claims(worker);

-- One row per running worker: which engine it encodes llm blocks with
-- (its fingerprint's description and id, empty without a model), when it
-- started and when it last renewed its claims. Removed at the end of its
-- pass; a row whose `seen` is old is a worker that died.
CREATE TABLE IF NOT EXISTS archive_workers (
    worker    TEXT PRIMARY KEY,
    engine    TEXT NOT NULL,
    engine_id TEXT NOT NULL,
    started   TIMESTAMPTZ NOT NULL,
    seen      TIMESTAMPTZ NOT NULL
);
