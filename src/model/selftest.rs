//! The start-up self-test (model contract, rule 4): run a fixed input
//! through the encoder path and the decoder path and compare the logits
//! bitwise. An engine that fails must not encode.

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

/// Compares the two coding paths on a fixed input; `Err(SelfTest)` names
/// the first position that differs.
pub fn self_test(engine: &mut Engine) -> Result<(), ModelError> {
    let chunks = sample(engine.config.context);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let full = engine.score(&refs)?;
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
