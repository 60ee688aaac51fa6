//! The start-up self-test (model contract, rule 4): run a fixed input
//! through the encoder path and the decoder path and compare the logits
//! bitwise; for an integer model on ONNX Runtime, also compare a prefix of
//! it with the reference engine, so a kernel that computes the integer
//! semantics differently (another CPU's or a GPU's) is caught before it
//! writes a block. An engine that fails must not encode.

use super::engine::LOGIT_FRAC;
use super::{Engine, ModelError, VOCAB};

/// Fixed input: some prose, some structure, some bytes no text has. Two
/// chunks of different lengths, so that padding in the full pass and a
/// batch of two in the decoder are both exercised.
fn sample(context: usize) -> Vec<Vec<u8>> {
    let text: &[u8] = b"The quick brown fox jumps over the lazy dog.\n\
        {\"key\": [1, 2, 3], \"ok\": true}\n\tfn main() { println!(\"{}\", 42); }\n";
    let mut a: Vec<u8> = text
        .iter()
        .copied()
        .cycle()
        .take(context.min(200))
        .collect();
    a.extend((0..=255u8).take(context.saturating_sub(a.len()).min(56)));
    let b: Vec<u8> = text.iter().rev().copied().take(context.min(61)).collect();
    vec![a, b]
}

/// Bytes of each sample chunk the reference engine recomputes: enough to
/// cover every op, short enough to cost milliseconds.
const ORACLE_PREFIX: usize = 24;

/// Compares the two coding paths on a fixed input; `Err(SelfTest)` names
/// the first position that differs.
pub fn self_test(engine: &mut Engine) -> Result<(), ModelError> {
    let chunks = sample(engine.config.context);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let full = engine.score(&refs)?;
    let prefixes: Vec<&[u8]> = refs
        .iter()
        .map(|c| &c[..c.len().min(ORACLE_PREFIX)])
        .collect();
    if let Some(reference) = engine.reference_logits(&prefixes) {
        for (i, want) in reference?.iter().enumerate() {
            let got = &full[i][..want.len()];
            if let Some(j) = (0..want.len()).find(|&j| got[j].to_bits() != want[j].to_bits()) {
                return Err(ModelError::SelfTest(format!(
                    "sequence {i}, position {}, logit {}: onnxruntime {} vs reference engine {}",
                    j / VOCAB,
                    j % VOCAB,
                    got[j],
                    want[j]
                )));
            }
        }
    }
    let longest = chunks.iter().map(Vec::len).max().unwrap_or(0);
    let mut state = engine.decoder(chunks.len())?;
    let mut prev = vec![0u8; chunks.len()];
    for t in 0..longest {
        let logits = engine.step(&mut state, if t == 0 { &[] } else { &prev })?;
        for (i, chunk) in chunks.iter().enumerate() {
            if t < chunk.len() {
                let got = &logits[i * VOCAB..(i + 1) * VOCAB];
                let want = &full[i][t * VOCAB..(t + 1) * VOCAB];
                if let Some(j) = (0..VOCAB).find(|&j| got[j].to_bits() != want[j].to_bits()) {
                    return Err(ModelError::SelfTest(format!(
                        "sequence {i}, position {t}, logit {j}: full pass {} vs cached step {}",
                        want[j], got[j]
                    )));
                }
            }
            prev[i] = chunk.get(t).copied().unwrap_or(0);
        }
    }
    Ok(())
}

/// The fixed input of [`logits_digest`]: prose, every byte value, and a
/// short chunk, so padding and every embedding row are exercised.
fn digest_input(context: usize) -> Vec<Vec<u8>> {
    let prose: &[u8] = b"It was the best of times, it was the worst of times; \
        {\"id\": 42, \"tags\": [\"a\", \"b\"]}\n#include <stdio.h>\nint main(void) { return 0; }\n";
    let a: Vec<u8> = prose.iter().copied().cycle().take(context).collect();
    let b: Vec<u8> = (0..context).map(|i| (i * 131 % 256) as u8).collect();
    let c: Vec<u8> = prose.iter().copied().take(context.min(37)).collect();
    vec![a, b, c]
}

/// sha256 (hex) of the logits the full pass gives on a fixed input: for
/// an integer model the integer logits as little-endian i32, which every
/// engine of the model must reproduce on every machine (the committed
/// value in the tests, checked natively and under emulated CPUs); for a
/// float model the float32 bits, which only the same engine class does.
pub fn logits_digest(engine: &mut Engine) -> Result<String, ModelError> {
    let chunks = digest_input(engine.config.context);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let logits = engine.score(&refs)?;
    let mut bytes = Vec::new();
    for l in logits.iter().flatten() {
        if engine.config.integer {
            // Exact: the engine made the float from an integer below 2^24.
            let i = (l * (LOGIT_FRAC as f32).exp2()) as i32;
            bytes.extend_from_slice(&i.to_le_bytes());
        } else {
            bytes.extend_from_slice(&l.to_bits().to_le_bytes());
        }
    }
    Ok(super::hex(&super::sha256(&bytes)))
}
