-- llmfs PostgreSQL store schema, version 6: cm block records may be primed
-- with a volume dictionary, as SQLite's migrations/0006_cm_dictionaries.sql.
--
-- Never applied on open: the transaction that stores the volume's first
-- dictionary creates the table; the version is raised to 6 (feature
-- `cm-dictionary`) by the transaction that stores the first primed cm
-- record.
CREATE TABLE IF NOT EXISTS dictionaries (
    sha256   TEXT PRIMARY KEY,
    raw_len  BIGINT NOT NULL,
    payload  BYTEA NOT NULL,
    added_ns BIGINT NOT NULL
);
ALTER TABLE dictionaries ALTER COLUMN payload SET STORAGE EXTERNAL;
