//! The codecs and the models without a mount, in one test binary, one
//! module per topic: the model contract on the real runtime, the llm codec
//! and its container, the cm codec, portable blocks and the reference
//! engine, and the `compress`/`decompress`/`bench` commands. The binary
//! under other CPU classes is its own test binary (tests/cross_isa): its
//! emulated runs take minutes of both cores, and run beside these they
//! slowed the whole binary down by half.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod bench_cli;
mod cm;
mod compress_cli;
mod llm_codec;
mod media;
mod model;
mod portable;
mod reference;
