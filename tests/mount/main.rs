//! Every test that mounts a real llmfs volume, in one test binary (one
//! link of ONNX Runtime, SQLite and liblzma instead of one per file), one
//! module per topic. The tests run as threads of this one process: each
//! mounts its own volume on its own temporary store and mountpoint, and
//! nothing here changes process-wide state a neighbour depends on (the one
//! exception, the umask, is set to the value every test expects).
//!
//! Without root or /dev/fuse each test skips itself (`require_fuse!`);
//! `LLMFS_REQUIRE_FUSE=1` (set by .ci/test) makes that a failure.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod archive_workers;
mod concurrency;
mod crash_loop;
mod crash_window;
mod db_corruption;
mod differential;
mod errors;
mod hostile_store;
mod lifecycle;
mod llm;
mod multi_mount;
mod page_cache;
mod permissions;
mod pg_restart;
mod postgres;
mod semantics;
mod service;
mod smoke;
mod transport;
