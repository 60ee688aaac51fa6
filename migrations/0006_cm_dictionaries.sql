-- llmfs store schema, version 6: cm block records may be primed with a
-- volume dictionary (src/codec/cm/dictionaries.rs, docs/FORMAT.md).
--
-- Never applied on open. The table is created by the transaction that
-- stores the volume's first dictionary (an extra table older builds ignore);
-- the store is raised to version 6 in the transaction that writes its first
-- primed cm record, which also records the feature `cm-dictionary` in the
-- volume's feature set (src/store/features.rs). An llmfs older than
-- dictionaries then refuses the store instead of failing reads of those
-- blocks with EIO; a store that never held one keeps its version.
CREATE TABLE IF NOT EXISTS dictionaries (
    -- SHA-256 of the dictionary's bytes, lowercase hex: the digest primed
    -- payloads name.
    sha256   TEXT PRIMARY KEY,
    -- Length of the dictionary's bytes (a sample of the volume's own data
    -- the cm predictor learns before each primed block).
    raw_len  INTEGER NOT NULL,
    -- The bytes as a cm payload without a dictionary (docs/FORMAT.md).
    payload  BLOB NOT NULL,
    added_ns INTEGER NOT NULL
);
