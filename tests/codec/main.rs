//! The codecs and the models without a mount, in one test binary, one
//! module per topic: the model contract on the real runtime, the llm codec
//! and its container, portable blocks and the reference engine, the
//! `compress`/`decompress`/`bench` commands, and the binary under other CPU
//! classes (`cross_isa`, which needs qemu-user; `LLMFS_REQUIRE_QEMU=1`,
//! set by .ci/test, makes its absence a failure).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod bench_cli;
mod compress_cli;
mod cross_isa;
mod llm_codec;
mod model;
mod portable;
mod reference;
