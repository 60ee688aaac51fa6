-- llmfs store schema, version 3: block records may use codec 3 (LZMA2,
-- docs/FORMAT.md), which the archival path writes where it is smallest.
--
-- No table changes. The version number is the point: an llmfs older than
-- this one cannot decode such blocks, so it refuses the store ("schema
-- version 3 is newer than this llmfs supports") instead of mounting it and
-- failing reads of those blocks with EIO.
UPDATE volume SET value = value WHERE 0;
