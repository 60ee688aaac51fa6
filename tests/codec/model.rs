//! The real ONNX model through the real runtime: the model contract holds
//! (encoder and decoder paths bitwise equal, independent of batch and
//! threads) for every model the repository ships.

use llmfs::model::{self_test, Engine, EngineOptions, VOCAB};

fn models() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("test", "models/test/model.onnx"),
        ("test-int", "models/test-int/model.onnx"),
        ("float-d192l3", "models/float-d192l3/model.onnx"),
        ("default", "models/default/model.onnx"),
    ]
    .into_iter()
    .map(|(name, path)| (name, std::fs::read(path).unwrap()))
    .collect()
}

fn engine(bytes: &[u8], threads: usize) -> Engine {
    Engine::load(
        bytes,
        &EngineOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn self_test_passes_on_shipped_models() {
    for (name, bytes) in models() {
        let mut e = engine(&bytes, 1);
        self_test(&mut e).unwrap_or_else(|err| panic!("{name}: {err}"));
    }
}

fn sample_chunks(context: usize) -> Vec<Vec<u8>> {
    let text = std::fs::read("src/coder/range.rs").unwrap();
    let mut chunks: Vec<Vec<u8>> = text.chunks(context).take(5).map(<[u8]>::to_vec).collect();
    chunks.push(text[..context / 3].to_vec());
    chunks.push((0..context).map(|i| (i * 7919 % 251) as u8).collect());
    chunks
}

#[test]
fn full_pass_and_steps_agree_across_batches_and_threads() {
    for (name, bytes) in models() {
        let mut e1 = engine(&bytes, 1);
        let mut e2 = engine(&bytes, 2);
        let ctx = e1.config.context;
        let chunks = sample_chunks(ctx);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let full = e1.score(&refs).unwrap();
        // Each chunk alone, with another thread count.
        for (i, c) in refs.iter().enumerate() {
            let alone = e2.score(&[c]).unwrap();
            assert!(
                bits_eq(&alone[0], &full[i]),
                "{name}: chunk {i} alone differs"
            );
        }
        // Decoder path, all chunks in one lockstep batch, with 2 threads.
        let mut state = e2.decoder(chunks.len()).unwrap();
        let mut prev = vec![0u8; chunks.len()];
        for t in 0..ctx {
            let logits = e2
                .step(&mut state, if t == 0 { &[] } else { &prev })
                .unwrap()
                .to_vec();
            for (i, c) in chunks.iter().enumerate() {
                if t < c.len() {
                    let want = &full[i][t * VOCAB..(t + 1) * VOCAB];
                    assert!(
                        bits_eq(&logits[i * VOCAB..(i + 1) * VOCAB], want),
                        "{name}: chunk {i} position {t}: decoder differs from full pass"
                    );
                }
                prev[i] = c.get(t).copied().unwrap_or(0);
            }
        }
    }
}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
