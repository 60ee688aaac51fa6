-- llmfs store schema, version 14: block records may live in segment files
-- beside the database (docs/FORMAT.md, "Segment files") instead of the
-- `record` column.
--
-- The tables below are added when a store is opened read-write by an
-- llmfs that knows them (an older llmfs ignores the two columns, the table
-- and the trigger: on a store that never held a segment record, `segment`
-- is NULL everywhere and the trigger never fires). The version itself is
-- raised to 14 in the transaction that stores the first record in a
-- segment, which also records the feature `segments`: an older llmfs then
-- refuses the store instead of reading an empty `record`.

-- Where a record lives when it is not inline: segment file number and
-- byte offset (its length is `stored_len`). `record` is then empty.
ALTER TABLE blocks ADD COLUMN segment INTEGER;
ALTER TABLE blocks ADD COLUMN seg_offset INTEGER;
CREATE INDEX blocks_by_extent ON blocks(segment, seg_offset) WHERE segment IS NOT NULL;

-- Extents no row names any more, whose space is given back (a hole
-- punched in the segment file) once the change that dropped them is on
-- stable storage. Filled by the trigger, so that every way a row goes
-- (overwrite, truncation, unlink, archiving) frees its extent.
CREATE TABLE dead_extents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    segment    INTEGER NOT NULL,
    seg_offset INTEGER NOT NULL,
    len        INTEGER NOT NULL
) STRICT;

CREATE TRIGGER blocks_extent_deleted AFTER DELETE ON blocks
WHEN old.segment IS NOT NULL
BEGIN
    INSERT INTO dead_extents(segment, seg_offset, len)
    VALUES (old.segment, old.seg_offset, old.stored_len);
END;

CREATE TRIGGER blocks_extent_moved AFTER UPDATE OF segment, seg_offset ON blocks
WHEN old.segment IS NOT NULL
 AND (new.segment IS NULL OR new.segment != old.segment OR new.seg_offset != old.seg_offset)
BEGIN
    INSERT INTO dead_extents(segment, seg_offset, len)
    VALUES (old.segment, old.seg_offset, old.stored_len);
END;
