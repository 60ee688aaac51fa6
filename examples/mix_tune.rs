//! Measures the in-block mixer ([`llmfs::mix`]) on cached transformer
//! predictions, so that a change to the predictor can be judged in seconds
//! instead of re-running the model.
//!
//! ```text
//! cargo run --release --example mix_tune -- dump FILE TABLES [MODEL]   # run the model once
//! cargo run --release --example mix_tune -- cost FILE TABLES            # bits/byte, mixed and alone
//! cargo run --release --example mix_tune -- cost FILE uniform           # the mixer with no transformer
//! ```
//!
//! MODEL defaults to the built-in model.
//!
//! FILE is coded as llmfs codes it: 64 KiB blocks, 256-byte chunks, waves
//! of 64 chunks. TABLES holds the transformer's frequency table for every
//! byte (256 little-endian u16 each).

use std::process::exit;

use llmfs::codec::llm::WAVE;
use llmfs::coder::range::Encoder;
use llmfs::coder::FreqTable;
use llmfs::mix::{ByteEncoder, Predictor};
use llmfs::model::{Engine, EngineOptions, DEFAULT_MODEL, VOCAB};

const BLOCK: usize = 65536;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, file, tables, model) = match &args[..] {
        [c, f, t] => (c, f, t, None),
        [c, f, t, m] if c == "dump" => (c, f, t, Some(m)),
        _ => {
            eprintln!("usage: mix_tune dump FILE TABLES [MODEL] | cost FILE TABLES|uniform");
            exit(2);
        }
    };
    let data = std::fs::read(file).unwrap_or_else(|e| fail(file, e));
    match cmd.as_str() {
        "dump" => {
            let model = match model {
                Some(m) => std::fs::read(m).unwrap_or_else(|e| fail(m, e)),
                None => DEFAULT_MODEL.to_vec(),
            };
            dump(&data, tables, &model)
        }
        "cost" => cost(&data, tables),
        _ => {
            eprintln!("unknown command {cmd}");
            exit(2);
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    exit(1)
}

fn dump(data: &[u8], path: &str, model: &[u8]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut engine = Engine::load(
        model,
        &EngineOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| fail("model", e));
    let context = engine.config.context;
    let mut out = Vec::with_capacity(data.len() * VOCAB * 2);
    for block in data.chunks(BLOCK) {
        let chunks: Vec<&[u8]> = block.chunks(context).collect();
        let logits = engine.score(&chunks).unwrap_or_else(|e| fail("score", e));
        for (chunk, l) in chunks.iter().zip(&logits) {
            for t in 0..chunk.len() {
                let table = FreqTable::from_logits(&l[t * VOCAB..(t + 1) * VOCAB]).unwrap();
                for &f in table.freqs() {
                    out.extend_from_slice(&(f as u16).to_le_bytes());
                }
            }
        }
    }
    std::fs::write(path, out).unwrap_or_else(|e| fail(path, e));
}

fn cost(data: &[u8], path: &str) {
    let raw = if path == "uniform" {
        // 256 of 65536 for every byte value.
        [0u8, 1].repeat(data.len() * VOCAB)
    } else {
        std::fs::read(path).unwrap_or_else(|e| fail(path, e))
    };
    if raw.len() != data.len() * VOCAB * 2 {
        fail(path, "not the tables of this file");
    }
    let table_at = |i: usize| {
        let freqs = raw[i * VOCAB * 2..(i + 1) * VOCAB * 2]
            .chunks(2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        FreqTable::from_freqs(freqs).unwrap()
    };
    let chunk_len = 256;
    let (mut mixed, mut alone) = (0usize, 0usize);
    for (b, block) in data.chunks(BLOCK).enumerate() {
        let mut predictor = Predictor::new(block.len(), chunk_len);
        let mut enc = Encoder::new();
        let mut plain = Encoder::new();
        let chunks = block.len().div_ceil(chunk_len);
        for w0 in (0..chunks).step_by(WAVE) {
            let w1 = (w0 + WAVE).min(chunks);
            for t in 0..chunk_len {
                for c in w0..w1 {
                    let i = c * chunk_len + t;
                    if i >= block.len() {
                        continue;
                    }
                    let table = table_at(b * BLOCK + i);
                    let byte = block[i];
                    plain
                        .encode(table.cum(byte as usize), table.freq(byte as usize))
                        .unwrap();
                    let mut bits = ByteEncoder {
                        encoder: &mut enc,
                        byte,
                        next: 0,
                    };
                    predictor.code_byte(c, &table, &mut bits).unwrap();
                }
            }
        }
        mixed += enc.finish().len();
        alone += plain.finish().len();
    }
    let bpb = |n: usize| n as f64 * 8.0 / data.len() as f64;
    println!(
        "mixed {mixed} ({:.4} bpb)  alone {alone} ({:.4} bpb)  ratio {:.4}",
        bpb(mixed),
        bpb(alone),
        mixed as f64 / alone as f64
    );
}
