//! The reference engine (pure Rust, `llmfs-int8-v1`) against ONNX Runtime
//! running the same integer graph: bitwise-equal logits and caches at every
//! graph optimisation level and thread count, cached steps equal to the full
//! pass, rows independent of the batch around them, hostile model files
//! refused without a panic, and a pinned digest of the default model's
//! logits.

use llmfs::model::runtime::runtime;
use llmfs::model::{hex, sha256, RefCache, Reference, BOS, VOCAB};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The integer models: the two shipped ones and two random ones at the
/// bounds (`intmodel.py random models/test/config.json OUT --seed 1`, and
/// `--extreme --seed 2`).
const MODELS: [&str; 4] = [
    "models/test-int/model.onnx",
    "models/default/model.onnx",
    "models/test-int/random.onnx",
    "models/test-int/random-extreme.onnx",
];

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(path: &str) -> Reference {
    Reference::load(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn session(model: &[u8], level: GraphOptimizationLevel, threads: usize) -> Session {
    let rt = runtime().expect("ONNX Runtime");
    Session::builder(&rt.environment)
        .unwrap()
        .with_optimization_level(level)
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .with_inter_threads(1)
        .unwrap()
        .commit_from_memory(model)
        .unwrap()
}

/// Every optimisation level ONNX Runtime has, at 1 and 2 intra-op threads.
fn sessions(model: &[u8]) -> Vec<(String, Session)> {
    let mut out = Vec::new();
    for level in [
        GraphOptimizationLevel::Disable,
        GraphOptimizationLevel::Level1,
        GraphOptimizationLevel::Level2,
        GraphOptimizationLevel::Level3,
        GraphOptimizationLevel::All,
    ] {
        for threads in [1, 2] {
            out.push((
                format!("{level:?} threads {threads}"),
                session(model, level, threads),
            ));
        }
    }
    out
}

/// Each layer's present keys and values.
type Present = Vec<(Vec<i8>, Vec<i8>)>;

/// A full pass through ONNX Runtime from empty caches: the int32 logits and
/// the present caches.
fn ort_run(
    s: &mut Session,
    r: &Reference,
    tokens: &[i64],
    batch: usize,
    t: usize,
) -> (Vec<i32>, Present) {
    let (h, dh) = (r.n_heads(), r.d_model() / r.n_heads());
    let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![(
        "tokens".into(),
        Tensor::<i64>::from_array(([batch, t], tokens.to_vec()))
            .unwrap()
            .into_dyn()
            .into(),
    )];
    for l in 0..r.n_layers() {
        let k = Tensor::<i8>::from_array(([batch, h, dh, 0], Vec::<i8>::new())).unwrap();
        let v = Tensor::<i8>::from_array(([batch, h, 0, dh], Vec::<i8>::new())).unwrap();
        inputs.push((format!("past_k_{l}"), k.into_dyn().into()));
        inputs.push((format!("past_v_{l}"), v.into_dyn().into()));
    }
    let out = s.run(inputs).unwrap();
    let (shape, logits) = out["logits"].try_extract_tensor::<i32>().unwrap();
    assert_eq!(shape.iter().product::<i64>() as usize, batch * t * VOCAB);
    let present = (0..r.n_layers())
        .map(|l| {
            let get = |n: String| out[n].try_extract_tensor::<i8>().unwrap().1.to_vec();
            (get(format!("present_k_{l}")), get(format!("present_v_{l}")))
        })
        .collect();
    (logits.to_vec(), present)
}

/// Chunks of the given lengths as the encoder batches them: BOS, the
/// chunk's bytes but the last, and zero padding up to the longest.
fn batch_tokens(rng: &mut StdRng, lens: &[usize]) -> (Vec<i64>, usize) {
    let t = lens.iter().copied().max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(lens.len() * t);
    for &len in lens {
        tokens.push(BOS);
        tokens.extend((1..len).map(|_| rng.random_range(0..256)));
        tokens.resize(tokens.len() + t - len, 0);
    }
    (tokens, t)
}

fn full_pass(r: &Reference, tokens: &[i64], batch: usize, t: usize) -> (Vec<i32>, RefCache) {
    let mut cache = RefCache::new(r, batch);
    let logits = r.run(tokens, batch, t, &mut cache).unwrap();
    (logits, cache)
}

#[test]
fn loads_the_integer_models() {
    let r = load("models/test-int/model.onnx");
    let shape = (r.context(), r.d_model(), r.n_layers(), r.n_heads());
    assert_eq!(shape, (256, 32, 2, 2));
    let r = load("models/default/model.onnx");
    let shape = (r.context(), r.d_model(), r.n_layers(), r.n_heads());
    assert_eq!(shape, (256, 192, 3, 6));
    for path in &MODELS[2..] {
        assert_eq!(load(path).d_model(), 32);
    }
}

#[test]
fn full_pass_equals_onnx_runtime_at_every_level_and_thread_count() {
    let mut rng = StdRng::seed_from_u64(1);
    for path in MODELS {
        let bytes = read(path);
        let r = load(path);
        let ctx = r.context();
        let mut batches: Vec<Vec<usize>> = vec![vec![ctx], vec![1], vec![3, ctx / 2, 1, 77]];
        if r.d_model() <= 32 {
            // The small models afford more: random batches of random lengths.
            for _ in 0..3 {
                let n = rng.random_range(1..=6);
                batches.push((0..n).map(|_| rng.random_range(1..=ctx)).collect());
            }
        }
        let mut sessions = sessions(&bytes);
        for lens in &batches {
            let (tokens, t) = batch_tokens(&mut rng, lens);
            let (want, cache) = full_pass(&r, &tokens, lens.len(), t);
            assert_eq!(cache.len(), t);
            for (name, s) in &mut sessions {
                let (got, present) = ort_run(s, &r, &tokens, lens.len(), t);
                assert!(got == want, "{path} {lens:?} {name}: logits differ");
                for (l, (k, v)) in present.iter().enumerate() {
                    assert!(cache.keys(l).as_ref() == Some(k), "{path} {name}: keys {l}");
                    assert!(
                        cache.values(l).as_ref() == Some(v),
                        "{path} {name}: values {l}"
                    );
                }
            }
        }
    }
}

#[test]
fn cached_runs_equal_the_full_pass() {
    let mut rng = StdRng::seed_from_u64(2);
    for path in MODELS {
        let r = load(path);
        let (batch, ctx) = (2, r.context());
        let (tokens, t) = batch_tokens(&mut rng, &[ctx, ctx]);
        let (want, _) = full_pass(&r, &tokens, batch, t);
        let row = |logits: &[i32], b: usize, i: usize, n: usize| {
            logits[(b * n + i) * VOCAB..][..VOCAB].to_vec()
        };
        // One-token steps, then runs of assorted lengths.
        let mut splits = vec![vec![1; ctx]];
        let mut s = Vec::new();
        let mut left = ctx;
        while left > 0 {
            let n = rng.random_range(1..=left.min(70));
            s.push(n);
            left -= n;
        }
        splits.push(s);
        for split in splits {
            let mut cache = RefCache::new(&r, batch);
            let mut at = 0;
            for n in split {
                let step: Vec<i64> = (0..batch)
                    .flat_map(|b| tokens[b * t + at..][..n].to_vec())
                    .collect();
                let got = r.run(&step, batch, n, &mut cache).unwrap();
                for b in 0..batch {
                    for i in 0..n {
                        assert!(
                            row(&got, b, i, n) == row(&want, b, at + i, t),
                            "{path}: sequence {b} position {}: cached run of {n} differs",
                            at + i
                        );
                    }
                }
                at += n;
                assert_eq!(cache.len(), at);
            }
        }
    }
}

#[test]
fn rows_do_not_depend_on_the_batch_around_them() {
    let mut rng = StdRng::seed_from_u64(3);
    for path in MODELS {
        let r = load(path);
        let ctx = r.context();
        let (chunk, len) = batch_tokens(&mut rng, &[ctx / 2 + 9]);
        let (alone, _) = full_pass(&r, &chunk, 1, len);
        // The chunk third in a batch of five, padded to the longest.
        let (mut tokens, t) = batch_tokens(&mut rng, &[5, ctx, len, 1, ctx - 3]);
        tokens[2 * t..2 * t + len].copy_from_slice(&chunk);
        let (batched, _) = full_pass(&r, &tokens, 5, t);
        assert!(
            batched[2 * t * VOCAB..][..len * VOCAB] == alone[..],
            "{path}: the chunk's rows differ inside a batch"
        );
        // And one-token steps with the chunk second in a batch of three.
        let others = batch_tokens(&mut rng, &[len, len]).0;
        let mut cache = RefCache::new(&r, 3);
        for i in 0..len {
            let step = [others[i], chunk[i], others[len + i]];
            let got = r.run(&step, 3, 1, &mut cache).unwrap();
            assert!(
                got[VOCAB..2 * VOCAB] == alone[i * VOCAB..][..VOCAB],
                "{path}: position {i} differs as a step in a batch"
            );
        }
    }
}

#[test]
fn bad_runs_are_errors() {
    let r = load("models/test-int/model.onnx");
    let ctx = r.context();
    let mut cache = RefCache::new(&r, 2);
    assert!(r.run(&[BOS, 257], 2, 1, &mut cache).is_err(), "token 257");
    assert!(r.run(&[BOS, -1], 2, 1, &mut cache).is_err(), "token -1");
    assert!(
        r.run(&[BOS; 3], 2, 1, &mut cache).is_err(),
        "3 tokens for [2, 1]"
    );
    assert!(
        r.run(&[BOS], 1, 1, &mut cache).is_err(),
        "batch 1, cache of 2"
    );
    let other = load("models/default/model.onnx");
    let mut foreign = RefCache::new(&other, 2);
    assert!(
        r.run(&[BOS; 2], 2, 1, &mut foreign).is_err(),
        "another model's cache"
    );
    let tokens = vec![0; 2 * (ctx + 1)];
    assert!(
        r.run(&tokens, 2, ctx + 1, &mut cache).is_err(),
        "past the context"
    );
    assert_eq!(cache.len(), 0, "a refused run leaves the cache alone");
    r.run(&vec![0; 2 * (ctx - 1)], 2, ctx - 1, &mut cache)
        .unwrap();
    assert!(
        r.run(&[0; 4], 2, 2, &mut cache).is_err(),
        "past the context"
    );
    r.run(&[0; 2], 2, 1, &mut cache).unwrap();
    assert!(
        r.run(&[0; 2], 2, 1, &mut cache).is_err(),
        "past the context"
    );
    assert_eq!(r.run(&[], 2, 0, &mut cache).unwrap(), Vec::<i32>::new());
}

/// Pinned digest of the integer logits (little-endian int32) of
/// models/default/model.onnx and models/test-int/model.onnx for 4
/// sequences of 256 tokens: BOS, then (131·s + 7·i² + 3) mod 256 at position
/// i of sequence s. From the numpy reference:
///
/// ```text
/// import numpy as np, intmodel as im      # in models/tools
/// cfg, p = im.load_int(PATH)
/// tok = np.array([[256 if i == 0 else (131 * s + 7 * i * i + 3) % 256
///                  for i in range(256)] for s in range(4)])
/// print(im.logits_digest(im.forward(p, cfg, tok)[0]))
/// ```
#[test]
fn logits_digest_is_pinned() {
    for (path, digest) in [
        (
            "models/default/model.onnx",
            "6fd77b849d699ab019110750915fdef257cfb5d93939a7a42d02b47b354a19ab",
        ),
        (
            "models/test-int/model.onnx",
            "852a0192186e697c18d223cad7aedaf59f0ff6c09dcfb608d05c9f304158b0e2",
        ),
    ] {
        let r = load(path);
        let tokens: Vec<i64> = (0..4i64)
            .flat_map(|s| {
                (0..256i64).map(move |i| {
                    if i == 0 {
                        BOS
                    } else {
                        (131 * s + 7 * i * i + 3) % 256
                    }
                })
            })
            .collect();
        let (logits, _) = full_pass(&r, &tokens, 4, 256);
        let bytes: Vec<u8> = logits.iter().flat_map(|l| l.to_le_bytes()).collect();
        assert_eq!(hex(&sha256(&bytes)), digest, "{path}");
    }
}

// --------------------------------------------------------------------------
// Hostile model files
// --------------------------------------------------------------------------

/// Where an initializer's fields sit in the file, for patching in place.
struct Located {
    name_at: usize,
    data_type_at: usize,
    raw_at: usize,
    raw_len: usize,
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0;
    for i in 0.. {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// The fields of the message at `b[start..end]`: (number, wire type,
/// offset of the payload, payload length for wire type 2).
fn fields(b: &[u8], start: usize, end: usize) -> Vec<(u64, u64, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let key = varint(b, &mut pos);
        let at = pos;
        let len = match key & 7 {
            0 => {
                varint(b, &mut pos);
                0
            }
            2 => {
                let n = varint(b, &mut pos) as usize;
                let data = pos;
                pos += n;
                out.push((key >> 3, 2, data, n));
                continue;
            }
            1 => {
                pos += 8;
                0
            }
            _ => {
                pos += 4;
                0
            }
        };
        out.push((key >> 3, key & 7, at, len));
    }
    out
}

fn locate(model: &[u8], name: &str) -> Located {
    for (f, _, at, len) in fields(model, 0, model.len()) {
        if f != 7 {
            continue;
        }
        for (g, _, t_at, t_len) in fields(model, at, at + len) {
            if g != 5 {
                continue;
            }
            let tf = fields(model, t_at, t_at + t_len);
            let field = |n| tf.iter().find(|x| x.0 == n).copied();
            let (_, _, n_at, n_len) = field(8).unwrap();
            if &model[n_at..n_at + n_len] == name.as_bytes() {
                let (_, _, raw_at, raw_len) = field(9).unwrap();
                return Located {
                    name_at: n_at,
                    data_type_at: field(2).unwrap().2,
                    raw_at,
                    raw_len,
                };
            }
        }
    }
    panic!("no initializer {name}")
}

/// `model` with `bytes` written over element `index` (of `bytes.len()`
/// bytes) of initializer `name`'s raw data.
fn patched(model: &[u8], name: &str, index: usize, bytes: &[u8]) -> Vec<u8> {
    let at = locate(model, name);
    assert!((index + 1) * bytes.len() <= at.raw_len);
    let mut m = model.to_vec();
    let off = at.raw_at + index * bytes.len();
    m[off..off + bytes.len()].copy_from_slice(bytes);
    m
}

/// `model` with initializer `name` renamed to `to` (of the same length).
fn renamed(model: &[u8], name: &str, to: &str) -> Vec<u8> {
    assert_eq!(name.len(), to.len());
    let at = locate(model, name).name_at;
    let mut m = model.to_vec();
    m[at..at + to.len()].copy_from_slice(to.as_bytes());
    m
}

/// `model` with the first `from` replaced by `to` (of the same length).
/// `model` with the first occurrence of `from` in the outer model's
/// metadata replaced (the metadata entry is the last `llmfs.config`: the
/// graph before it embeds the CPU variant, with metadata of its own).
fn replaced(model: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let key = b"llmfs.config";
    let start = model.windows(key.len()).rposition(|w| w == key).unwrap();
    let pos = start
        + model[start..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
    let mut m = model.to_vec();
    m[pos..pos + to.len()].copy_from_slice(to.as_bytes());
    m
}

#[test]
fn parameter_bounds_are_enforced() {
    let model = read("models/test-int/model.onnx");
    assert!(Reference::load(&model).is_ok());
    let exp_len = locate(&model, "h1.attn.exp").raw_len / 4;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "div 3",
            patched(&model, "h0.ln1.div", 5, &3i32.to_le_bytes()),
        ),
        ("div 0", patched(&model, "lnf.div", 0, &0i32.to_le_bytes())),
        (
            "div 2^30",
            patched(&model, "h1.ln2.div", 31, &(1i32 << 30).to_le_bytes()),
        ),
        ("weight -128", patched(&model, "h0.attn.wqkv", 77, &[0x80])),
        ("head weight -128", patched(&model, "head.w", 0, &[0x80])),
        (
            "w2 weight -128",
            patched(&model, "h1.mlp.w2", 4000, &[0x80]),
        ),
        (
            "multiplier -1",
            patched(&model, "h0.attn.mqkv", 3, &(-1i64).to_le_bytes()),
        ),
        (
            "multiplier 2^31",
            patched(&model, "head.m", 9, &(1i64 << 31).to_le_bytes()),
        ),
        (
            "exp[0] 126",
            patched(&model, "h0.attn.exp", 0, &126i32.to_le_bytes()),
        ),
        (
            "exp[-1] 1",
            patched(&model, "h1.attn.exp", exp_len - 1, &1i32.to_le_bytes()),
        ),
        (
            "exp 128",
            patched(&model, "h1.attn.exp", 3, &128i32.to_le_bytes()),
        ),
        (
            "gelu 128",
            patched(&model, "h0.mlp.gelu", 100, &128i32.to_le_bytes()),
        ),
        (
            "gelu -128",
            patched(&model, "h1.mlp.gelu", 0, &(-128i32).to_le_bytes()),
        ),
        (
            "embedding 2^30",
            patched(&model, "tok_emb", 12, &(1i32 << 30).to_le_bytes()),
        ),
        (
            "embedding i32::MIN",
            patched(&model, "pos_emb", 12, &i32::MIN.to_le_bytes()),
        ),
        (
            "semantics",
            replaced(&model, "llmfs-int8-v1", "llmfs-int8-v2"),
        ),
        (
            "context",
            replaced(&model, "\"context\": 256", "\"context\": 255"),
        ),
        (
            "context over 1024",
            replaced(&model, "\"context\": 256", "\"context\":2048"),
        ),
        (
            "exp_shift",
            replaced(&model, "\"exp_shift\": ", "\"exp_shift\":-"),
        ),
        ("ln1_k", replaced(&model, "\"ln1_k\": ", "\"ln1_k\":9")),
        (
            "no config",
            replaced(&model, "llmfs.config", "llmfs.confiG"),
        ),
        ("missing tensor", renamed(&model, "h1.mlp.w1", "h1.mlp.w3")),
        (
            "duplicate tensor",
            renamed(&model, "h1.mlp.m1", "h0.mlp.m1"),
        ),
    ];
    for (what, m) in cases {
        assert!(Reference::load(&m).is_err(), "{what}: accepted");
    }
    // Wrong data types: the same field value, another type.
    for (name, dtype) in [
        ("h0.attn.wqkv", 6u8),
        ("tok_emb", 7),
        ("head.c", 6),
        ("lnf.div", 3),
        ("h0.mlp.gelu", 1),
    ] {
        let mut m = model.clone();
        m[locate(&model, name).data_type_at] = dtype;
        assert!(
            Reference::load(&m).is_err(),
            "{name} as type {dtype}: accepted"
        );
    }
    // Layer 0's softmax table has 477 entries, and its scores are at most
    // 16·127² = 258064: masked scores reach the end for exp_shift up to 12.
    let m = replaced(&model, "\"exp_shift\": 4", "\"exp_shift\":12");
    assert!(Reference::load(&m).is_ok(), "exp_shift 12 refused");
    let m = replaced(&model, "\"exp_shift\": 4", "\"exp_shift\":13");
    assert!(Reference::load(&m).is_err(), "exp_shift 13 accepted");
}

#[test]
fn truncated_and_corrupted_files_never_panic() {
    let model = read("models/test-int/model.onnx");
    for n in (0..model.len())
        .step_by(model.len() / 300)
        .chain(model.len() - 40..model.len())
    {
        assert!(
            Reference::load(&model[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let mut rng = StdRng::seed_from_u64(4);
    let mut accepted = 0;
    for _ in 0..300 {
        let mut m = model.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..m.len());
            m[at] ^= rng.random_range(1..=255u8);
        }
        // A flip inside a weight is a valid model; it must then run.
        if let Ok(r) = Reference::load(&m) {
            accepted += 1;
            let mut cache = RefCache::new(&r, 1);
            let tokens: Vec<i64> = (0..8).map(|i| if i == 0 { BOS } else { i * 31 }).collect();
            r.run(&tokens, 1, 8, &mut cache).unwrap();
        }
    }
    assert!(
        accepted > 0,
        "no flip kept the model valid: the run path went untested"
    );
}

/// Speed on the default model, for the record (release build):
/// `cargo test --release --test codec -- --ignored --nocapture reference::speed`.
#[test]
#[ignore]
fn speed() {
    let r = load("models/default-int/model.onnx");
    let ctx = r.context();
    let mut rng = StdRng::seed_from_u64(5);
    let (tokens, t) = batch_tokens(&mut rng, &[ctx; 32]);
    let start = std::time::Instant::now();
    full_pass(&r, &tokens, 32, t);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "full pass, 32 chunks of {ctx}: {secs:.3} s, {:.0} bytes/s",
        (32 * ctx) as f64 / secs
    );
    let batch = 64;
    let mut cache = RefCache::new(&r, batch);
    let start = std::time::Instant::now();
    for i in 0..ctx {
        let step: Vec<i64> = (0..batch)
            .map(|_| {
                if i == 0 {
                    BOS
                } else {
                    rng.random_range(0..256)
                }
            })
            .collect();
        r.run(&step, batch, 1, &mut cache).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "one-token steps, batch {batch} over {ctx} positions: {secs:.3} s, {:.0} bytes/s",
        (batch * ctx) as f64 / secs
    );
}
