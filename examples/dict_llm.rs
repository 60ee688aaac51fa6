//! The volume dictionary and the llm codec (the deep tier) on logs,
//! without a mount: builds the dictionary as the archiver does
//! (`llmfs::dictionary::sample_of` over the files' 64 KiB blocks in order)
//! and codes each block with the built-in model, unprimed (payload version
//! 5) and primed with the dictionary (version 6), from the same scoring
//! run. Prints the stored bytes of each (block records, header included;
//! the primed total adds the dictionary's stored payload, as
//! bench/dictionary.sh counts it) and the cm tier's primed figure for the
//! same blocks. `--decode N` also decodes the first N primed blocks;
//! `--prime-only` times the priming pass over the dictionary and stops.
//!
//! ```text
//! cargo run --release --example dict_llm -- [--prime-only] [--decode N] FILE...
//! ```

use std::time::Instant;

use llmfs::codec::cm::{encode_payload_primed, Dictionaries, Dictionary, StoredDictionary};
use llmfs::codec::{Codec, LlmCodec, RECORD_HEADER_LEN};
use llmfs::model::{EngineOptions, DEFAULT_MODEL};

const BLOCK: usize = 65536;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut decode = 0;
    let prime_only = args.first().map(String::as_str) == Some("--prime-only");
    if prime_only {
        args.remove(0);
    }
    if args.first().map(String::as_str) == Some("--decode") {
        decode = args[1].parse().expect("--decode N");
        args.drain(..2);
    }
    let data: Vec<Vec<u8>> = args
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let blocks: Vec<&[u8]> = data.iter().flat_map(|d| d.chunks(BLOCK)).collect();
    let sample = llmfs::dictionary::sample_of(&blocks);
    let stored = StoredDictionary::of(&sample);
    let digest = stored.digest;
    let dicts = Dictionaries::new();
    dicts.insert(stored.clone());
    let cm_dict = Dictionary::new(&sample);
    let options = EngineOptions {
        threads: 2,
        ..EngineOptions::default()
    };
    let llm = LlmCodec::load(DEFAULT_MODEL, &options).expect("the built-in model loads");
    // The priming pass alone (the model's primed state, made once and kept
    // with the dictionaries): what the first primed block waits for.
    dicts.bytes(digest).expect("the dictionary decodes");
    let t = Instant::now();
    dicts
        .primed_llm(digest, llm.chunk_len())
        .expect("the dictionary primes");
    let prime_s = t.elapsed().as_secs_f64();
    if prime_only {
        println!(
            "dictionary {} bytes: llm priming pass {prime_s:.3} s",
            sample.len()
        );
        return;
    }
    let (mut raw, mut plain, mut primed, mut cm) = (0usize, 0usize, 0usize, 0usize);
    let (mut plain_s, mut primed_s) = (0f64, 0f64);
    for (i, block) in blocks.iter().enumerate() {
        let t = Instant::now();
        let mut p5 = Vec::new();
        llm.encode(block, &mut p5).expect("encodes");
        plain_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut p6 = Vec::new();
        let state = dicts.primed_llm(digest, llm.chunk_len()).expect("primes");
        llm.encode_primed(block, Some((digest, &state)), &mut p6)
            .expect("encodes primed");
        primed_s += t.elapsed().as_secs_f64();
        let c = encode_payload_primed(&cm_dict, block, Vec::new());
        if i < decode {
            let got = llm.decode_many_with(&[(&p6, block.len())], Some(&dicts));
            assert!(
                got[0].as_deref() == Ok(*block),
                "block {i} round-trips primed"
            );
        }
        raw += block.len();
        plain += p5.len() + RECORD_HEADER_LEN;
        primed += p6.len() + RECORD_HEADER_LEN;
        cm += c.len() + RECORD_HEADER_LEN;
        eprintln!(
            "block {i}: llm {} primed {} cm-primed {}",
            p5.len(),
            p6.len(),
            c.len()
        );
    }
    let d = stored.payload.len();
    println!(
        "blocks {} raw {raw} dictionary {d} ({} raw, llm primed in {prime_s:.2} s) llm-v5 {plain} llm-v6 {primed} (+dict {}) cm-v3-primed {cm} (+dict {}) encode_s v5 {plain_s:.1} v6 {primed_s:.1}",
        blocks.len(),
        sample.len(),
        primed + d,
        cm + d
    );
}
