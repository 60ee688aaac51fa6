//! The same binary under other x86-64 CPU classes (qemu-user's AVX2 Haswell
//! and SSE4.2 Nehalem): integer logits and blocks are bit-exact across
//! them. Needs qemu-user; `LLMFS_REQUIRE_QEMU=1`, set by .ci/test, makes
//! its absence a failure. A binary of its own: the emulated runs take
//! minutes of both cores, which the other codec tests should not share.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod cross_isa;
