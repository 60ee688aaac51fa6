//! Arbitrary bytes as a compressed file: `decompress` must fail cleanly.
//!
//!   cargo fuzz run decompress      (from the repository root)
#![no_main]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use llmfs::codec::cm::Dictionaries;
use llmfs::codec::{CodecSet, LlmCodec};
use llmfs::container;
use llmfs::model::EngineOptions;

/// The two committed test models: the float one (llm payload versions 1
/// and 2) and the integer one (versions 3 to 6).
fn models() -> &'static [Arc<LlmCodec>] {
    static SET: OnceLock<Vec<Arc<LlmCodec>>> = OnceLock::new();
    SET.get_or_init(|| {
        ["test", "test-int"]
            .iter()
            .map(|name| {
                let path = format!("{}/../models/{name}/model.onnx", env!("CARGO_MANIFEST_DIR"));
                let model = std::fs::read(&path).expect("a committed test model");
                Arc::new(LlmCodec::load(&model, &EngineOptions::default()).expect("test model"))
            })
            .collect()
    })
}

/// A codec set per model, with dictionaries of their own (a file's
/// dictionary goes there), as `llmfs decompress` makes them.
fn codecs() -> Vec<CodecSet> {
    let dicts = Arc::new(Dictionaries::new());
    models()
        .iter()
        .map(|llm| CodecSet::with_llm(Some(Arc::clone(llm))).with_dictionaries(Arc::clone(&dicts)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let Ok(header) = container::read_header(&mut input) else {
        return;
    };
    // Bound the work a fuzz input can ask for.
    if header.block_size > 1 << 16 || header.raw_len > 1 << 20 {
        return;
    }
    let mut out = Vec::new();
    let _ = container::decompress(&codecs(), &header, &mut input, &mut out, |_| {});
    assert!(out.len() as u64 <= header.raw_len);
});
