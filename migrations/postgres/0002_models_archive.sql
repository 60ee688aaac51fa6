-- llmfs PostgreSQL store schema, version 2: the neural codec's models and
-- the archiver's bookkeeping, as SQLite's migrations/0002_models_archive.sql.
--
-- Versions 3 to 5 change no table on either backend: a store is raised to
-- them by the feature its records need (src/store/features.rs), in the
-- transaction that writes the first such record.

CREATE TABLE models (
    sha256   TEXT PRIMARY KEY,
    onnx     BYTEA NOT NULL,
    added_ns BIGINT NOT NULL
);
ALTER TABLE models ALTER COLUMN onnx SET STORAGE EXTERNAL;

ALTER TABLE blocks ADD COLUMN written_ns BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blocks ADD COLUMN archived BIGINT NOT NULL DEFAULT 0;
CREATE INDEX blocks_to_archive ON blocks(archived, written_ns);
