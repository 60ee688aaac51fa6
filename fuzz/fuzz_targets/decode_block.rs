//! Arbitrary bytes as a block record, decoded with every codec including
//! the llm codec (the committed test models: the float one, payload
//! versions 1 and 2, and the integer one, versions 3 to 6) and a volume
//! dictionary (cm and llm records primed with it): must return an error or
//! the verified bytes, never panic, hang or allocate beyond the block size.
//!
//!   cargo fuzz run decode_block      (from the repository root)
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use llmfs::codec::cm::{Dictionaries, StoredDictionary};
use llmfs::codec::{CodecSet, LlmCodec};
use llmfs::model::EngineOptions;

fn codecs() -> &'static CodecSet {
    static SET: OnceLock<CodecSet> = OnceLock::new();
    SET.get_or_init(|| {
        let load = |name: &str| {
            let path = format!("{}/../models/{name}/model.onnx", env!("CARGO_MANIFEST_DIR"));
            let model = std::fs::read(&path).expect("a committed test model");
            LlmCodec::load(&model, &EngineOptions::default()).expect("test model")
        };
        let llm = load("test").with_decoders(vec![Arc::new(load("test-int"))]);
        let dicts = Arc::new(Dictionaries::new());
        dicts.insert(StoredDictionary::of(&dictionary()));
        CodecSet::with_llm(Some(Arc::new(llm))).with_dictionaries(dicts)
    })
}

/// The dictionary seed-llm-v6 was primed with: `text(8192, 500)` of
/// tests/common/data.rs (tests/codec/portable.rs checks the seed).
fn dictionary() -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = 500u64;
    while out.len() < 8192 {
        out.extend_from_slice(
            format!("line {line:08}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        line += 1;
    }
    out.truncate(8192);
    out
}

fuzz_target!(|data: &[u8]| {
    // Small blocks keep each model run short; the format is the same.
    if let Ok(out) = codecs().decode_block(data, 4096) {
        assert!(out.len() <= 4096);
    }
});
