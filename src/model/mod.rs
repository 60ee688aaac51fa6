//! The language model: ONNX Runtime sessions over an llmfs model graph, the
//! engine fingerprint, and the start-up self-test of the model contract.

mod default;
mod digest;
mod engine;
mod error;
mod onnx_proto;
pub mod reference;
pub mod runtime;
mod selftest;

pub use default::DEFAULT_MODEL;
pub use digest::{hex, sha256};
pub use engine::{
    cpu_class, DecodeState, Device, Engine, EngineOptions, Fingerprint, ModelConfig, BOS, VOCAB,
};
pub use error::ModelError;
pub use reference::{RefCache, Reference};
pub use selftest::self_test;
