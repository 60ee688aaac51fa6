//! The language model: engines over an llmfs model graph (ONNX Runtime
//! sessions, or the pure-Rust reference engine for integer models), the
//! engine fingerprint, and the start-up self-test of the model contract.

mod default;
mod digest;
mod engine;
mod error;
mod onnx_proto;
pub mod reference;
pub mod runtime;
mod selftest;

pub use default::{same_model_as, DEFAULT_MODEL};
pub use digest::{digest_from_hex, hex, model_id_from_hex, sha256};
pub use engine::{
    cpu_class, DecodeState, Device, Engine, EngineOptions, Fingerprint, ModelConfig, BOS,
    INT_SEMANTICS, VOCAB,
};
pub use error::ModelError;
pub use reference::{RefCache, Reference};
pub use selftest::{logits_digest, self_test};
