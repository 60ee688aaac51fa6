//! Arbitrary bytes as a compressed file: `decompress` must fail cleanly.
//!
//!   cargo fuzz run decompress      (from the repository root)
#![no_main]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use llmfs::codec::{CodecSet, LlmCodec};
use llmfs::container;
use llmfs::model::EngineOptions;

/// Codec sets of the two committed test models: the float one (llm
/// payload versions 1 and 2) and the integer one (versions 3 to 5).
fn codecs() -> &'static [CodecSet] {
    static SET: OnceLock<Vec<CodecSet>> = OnceLock::new();
    SET.get_or_init(|| {
        ["test", "test-int"]
            .iter()
            .map(|name| {
                let path = format!("{}/../models/{name}/model.onnx", env!("CARGO_MANIFEST_DIR"));
                let model = std::fs::read(&path).expect("a committed test model");
                let llm = LlmCodec::load(&model, &EngineOptions::default()).expect("test model");
                CodecSet::with_llm(Some(Arc::new(llm)))
            })
            .collect()
    })
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
    let _ = container::decompress(codecs(), &header, &mut input, &mut out, |_| {});
    assert!(out.len() as u64 <= header.raw_len);
});
