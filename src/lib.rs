//! llmfs: a FUSE filesystem that stores file data compressed block by block
//! in a SQLite-backed store.
//!
//! Layers, dependencies pointing down: `cli` -> `fuse` (thin adapter) ->
//! `fs` (the core) -> `store` + `cache` -> `codec` -> `model` + `mix` +
//! `coder`. docs/DESIGN.md describes the layers and the data flows;
//! docs/FORMAT.md the on-disk format.

pub mod archive;
pub mod cache;
pub mod claims;
pub mod cli;
pub mod codec;
pub mod coder;
pub mod container;
pub mod dictionary;
pub mod error;
pub mod fs;
pub mod fsck;
pub mod fuse;
pub mod mix;
pub mod model;
pub mod number_hash;
pub mod store;
pub mod time;

pub use error::{Error, Result};
