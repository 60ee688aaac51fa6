-- llmfs PostgreSQL store: an index of each directory's entries in cookie
-- order (docs/FORMAT.md, "Indexes added on open"; the SQLite file of the
-- same name says why). PostgreSQL's indexes do not hold the primary key
-- implicitly, so `id` is named.
--
-- Not a schema version: an older llmfs ignores it, and PostgreSQL keeps
-- it up to date whichever client writes. Created by a read-write open
-- that finds it missing (src/store/postgres/migrate.rs), under the same
-- transaction-level advisory lock as the other tables added on open.
CREATE INDEX IF NOT EXISTS dirents_by_parent ON dirents(parent, id);
