-- llmfs store schema, version 5: block records may use codec 4, cm
-- (context mixing without a model: src/codec/cm, docs/FORMAT.md).
--
-- No table changes, and never applied on open: a store is raised to
-- version 5 in the transaction that writes its first cm record, which also
-- records the feature `cm` in the volume's feature set
-- (src/store/features.rs). An llmfs older than cm (it knows version 4 at
-- most) then refuses the store instead of failing reads of those blocks
-- with EIO; a store that never held one keeps its version.
UPDATE volume SET value = value WHERE 0;
