//! Measures the cm codec on files cut into 64 KiB blocks, next to xz -9e
//! (LZMA2) on the same blocks: bytes, the ratio, and cm's encode and decode
//! speed on one thread. Decoding is checked against the input.
//!
//! ```text
//! cargo run --release --example cm_tune -- FILE...
//! ```

use std::time::Instant;

use llmfs::codec::cm::{decode_payload, encode_payload};
use llmfs::codec::{Codec, LzmaCodec};

const BLOCK: usize = 65536;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let (mut total_raw, mut total_cm, mut total_xz) = (0usize, 0usize, 0usize);
    let (mut enc_s, mut dec_s) = (0f64, 0f64);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let (mut cm, mut xz) = (0, 0);
        for block in data.chunks(BLOCK) {
            let t = Instant::now();
            let p = encode_payload(block, Vec::new());
            enc_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut out = Vec::new();
            decode_payload(&p, block.len(), &mut out).expect("decodes");
            dec_s += t.elapsed().as_secs_f64();
            assert!(out == block, "{f}: round trip");
            cm += p.len();
            let mut x = Vec::new();
            LzmaCodec.encode(block, &mut x).unwrap();
            xz += x.len();
        }
        println!(
            "{:>10} {:>9} cm {:>9} ({:.3} bpb) xz {:>9} ({:.3} bpb) cm/xz {:.4}  {}",
            data.len(),
            "",
            cm,
            cm as f64 * 8.0 / data.len() as f64,
            xz,
            xz as f64 * 8.0 / data.len() as f64,
            cm as f64 / xz as f64,
            f.rsplit('/').next().unwrap()
        );
        total_raw += data.len();
        total_cm += cm;
        total_xz += xz;
    }
    println!(
        "total {total_raw} cm {total_cm} xz {total_xz} cm/xz {:.4}  encode {:.0} KB/s decode {:.0} KB/s",
        total_cm as f64 / total_xz as f64,
        total_raw as f64 / enc_s / 1000.0,
        total_raw as f64 / dec_s / 1000.0
    );
}
