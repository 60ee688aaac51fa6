-- llmfs store schema, version 2: the neural codec.

-- Models the volume's llm blocks were coded with, stored whole, so that the
-- volume stays readable when llmfs's built-in default model changes. The
-- volume setting `model_sha256` names the one new blocks are coded with.
CREATE TABLE models (
    sha256   TEXT PRIMARY KEY NOT NULL,
    onnx     BLOB NOT NULL,
    added_ns INTEGER NOT NULL
) STRICT;

-- Archiver bookkeeping: `written_ns` is when the block's data was last
-- written; `archived` is 1 once the archiver has chosen the block's final
-- codec (llm where it wins). A write resets both.
ALTER TABLE blocks ADD COLUMN written_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blocks ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
CREATE INDEX blocks_to_archive ON blocks(archived, written_ns);
