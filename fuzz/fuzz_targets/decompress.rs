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

fn codecs() -> &'static [CodecSet] {
    static SET: OnceLock<Vec<CodecSet>> = OnceLock::new();
    SET.get_or_init(|| {
        let model = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/test/model.onnx"))
            .expect("models/test/model.onnx");
        let llm = LlmCodec::load(&model, &EngineOptions::default()).expect("test model");
        vec![CodecSet::with_llm(Some(Arc::new(llm)))]
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
