//! The volume dictionary on logs, without a mount: builds the dictionary
//! the way the archiver does (`llmfs::dictionary::sample_of` over the
//! files' 64 KiB blocks in order), cm-codes each block primed with it, and
//! prints the stored bytes (block records, header included, plus the
//! dictionary's stored payload) as bench/dictionary.sh counts them.
//!
//! ```text
//! cargo run --release --example dict_logs -- [--decode] FILE...
//! ```

use std::time::Instant;

use llmfs::codec::cm::{
    decode_payload_primed, encode_payload_primed, Dictionary, StoredDictionary,
};
use llmfs::codec::RECORD_HEADER_LEN;

const BLOCK: usize = 65536;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let decode = args.first().map(String::as_str) == Some("--decode");
    if decode {
        args.remove(0);
    }
    let data: Vec<Vec<u8>> = args
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let blocks: Vec<&[u8]> = data.iter().flat_map(|d| d.chunks(BLOCK)).collect();
    let sample = llmfs::dictionary::sample_of(&blocks);
    let stored = StoredDictionary::of(&sample);
    let t = Instant::now();
    let dict = Dictionary::new(&sample);
    let prime_s = t.elapsed().as_secs_f64();
    let (mut total, mut raw) = (0usize, 0usize);
    let mut per_file = vec![0usize; data.len()];
    let (mut enc_s, mut dec_s) = (0f64, 0f64);
    let mut i = 0;
    for (fi, d) in data.iter().enumerate() {
        for block in d.chunks(BLOCK) {
            let t = Instant::now();
            let p = encode_payload_primed(&dict, block, Vec::new());
            enc_s += t.elapsed().as_secs_f64();
            if decode {
                let t = Instant::now();
                let mut out = Vec::new();
                decode_payload_primed(&dict, &p, block.len(), &mut out).expect("decodes");
                dec_s += t.elapsed().as_secs_f64();
                assert!(out == block, "round trip");
            }
            per_file[fi] += p.len() + RECORD_HEADER_LEN;
            total += p.len() + RECORD_HEADER_LEN;
            raw += block.len();
            i += 1;
        }
    }
    for (f, n) in args.iter().zip(&per_file) {
        println!("{n:>9}  {}", f.rsplit('/').next().unwrap());
    }
    println!(
        "blocks {i} raw {raw} block_bytes {total} dictionary {} ({} raw, primed in {prime_s:.2} s) total {}  encode {:.0} KB/s{}",
        stored.payload.len(),
        sample.len(),
        total + stored.payload.len(),
        raw as f64 / enc_s / 1000.0,
        if decode {
            format!(" decode {:.0} KB/s", raw as f64 / dec_s / 1000.0)
        } else {
            String::new()
        }
    );
}
