//! A volume's layers called directly, without a mount (no root or
//! /dev/fuse needed), in one test binary, one module per topic: the store
//! on real SQLite files, the filesystem core's namespace rules and its
//! reference-model property tests, and the archiver on a real store with
//! the default model.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod archive;
mod archive_workers;
mod core_model;
mod dictionary;
mod early_reads;
mod frames;
mod fs_core;
mod page_cache;
mod pg_connection;
mod reaper;
mod segments;
mod shared_volume;
mod store;
mod store_backends;
mod write_back;
