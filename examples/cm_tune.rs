//! Measures the cm codec on files cut into 64 KiB blocks, next to xz -9e
//! (LZMA2) on the same blocks: bytes, the ratio, and cm's encode and decode
//! speed on one thread. Decoding is checked against the input.
//!
//! ```text
//! cargo run --release --example cm_tune -- FILE...
//! cargo run --release --example cm_tune -- --dict N FILE...   # prime with each file's first N bytes
//! cargo run --release --example cm_tune -- --versions 2,3 FILE...   # payload versions side by side
//! ```
//!
//! With `--versions`, every block is coded and decoded with each payload
//! version in turn (alternating, so load on the machine falls on each
//! alike), and each version's bytes and speeds are printed.
//!
//! With `--dict N`, each file's first N bytes are the dictionary (not
//! measured) and the rest is coded primed, next to unprimed cm per block and
//! xz -9e on the whole rest (one stream).

use std::time::Instant;

use llmfs::codec::cm::{
    decode_payload, decode_payload_primed, encode_payload, encode_payload_primed,
    encode_payload_version, Dictionary,
};
use llmfs::codec::{Codec, LzmaCodec};

const BLOCK: usize = 65536;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.first().map(String::as_str) == Some("--dict") {
        let n: usize = files[1].parse().expect("--dict N");
        primed(n, &files[2..]);
        return;
    }
    if files.first().map(String::as_str) == Some("--versions") {
        let v: Vec<u8> = files[1]
            .split(',')
            .map(|v| v.parse().expect("--versions A,B"))
            .collect();
        versions(&v, &files[2..]);
        return;
    }
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

/// Each file's first `n` bytes as the dictionary, the rest coded in blocks.
fn primed(n: usize, files: &[String]) {
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let (sample, rest) = data.split_at(n.min(data.len()));
        let t = Instant::now();
        let dict = Dictionary::new(sample);
        let prime_s = t.elapsed().as_secs_f64();
        let (mut with, mut without) = (0, 0);
        let mut dec_s = 0f64;
        for block in rest.chunks(BLOCK) {
            let p = encode_payload_primed(&dict, block, Vec::new());
            let t = Instant::now();
            let mut out = Vec::new();
            decode_payload_primed(&dict, &p, block.len(), &mut out).expect("decodes");
            dec_s += t.elapsed().as_secs_f64();
            assert!(out == block, "{f}: round trip");
            with += p.len();
            without += encode_payload(block, Vec::new()).len();
        }
        let mut xz = Vec::new();
        {
            use std::io::Write;
            let mut enc =
                liblzma::write::XzEncoder::new(&mut xz, 9 | liblzma::stream::PRESET_EXTREME);
            enc.write_all(rest).unwrap();
            enc.finish().unwrap();
        }
        let bpb = |n: usize| n as f64 * 8.0 / rest.len().max(1) as f64;
        println!(
            "{}: dictionary {} bytes (primed in {prime_s:.2} s), coded {} bytes: cm primed {with} ({:.3} bpb), cm {without} ({:.3} bpb), xz -9e whole {} ({:.3} bpb); primed/xz {:.4}; primed decode {:.0} KB/s",
            f.rsplit('/').next().unwrap(),
            sample.len(),
            rest.len(),
            bpb(with),
            bpb(without),
            xz.len(),
            bpb(xz.len()),
            with as f64 / xz.len() as f64,
            rest.len() as f64 / dec_s / 1000.0
        );
    }
}

/// Each block coded and decoded with each of `versions`, alternating.
fn versions(versions: &[u8], files: &[String]) {
    let k = versions.len();
    let (mut bytes, mut enc_s, mut dec_s) = (vec![0usize; k], vec![0f64; k], vec![0f64; k]);
    let (mut total_raw, mut total_xz) = (0usize, 0usize);
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let mut file_bytes = vec![0usize; k];
        let mut xz = 0;
        for block in data.chunks(BLOCK) {
            for (i, &v) in versions.iter().enumerate() {
                let t = Instant::now();
                let p = encode_payload_version(block, v, Vec::new());
                enc_s[i] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let mut out = Vec::new();
                decode_payload(&p, block.len(), &mut out).expect("decodes");
                dec_s[i] += t.elapsed().as_secs_f64();
                assert!(out == block, "{f}: round trip");
                file_bytes[i] += p.len();
            }
            let mut x = Vec::new();
            LzmaCodec.encode(block, &mut x).unwrap();
            xz += x.len();
        }
        let cols: Vec<String> = versions
            .iter()
            .zip(&file_bytes)
            .map(|(v, n)| format!("v{v} {n:>9} ({:.4})", *n as f64 / xz as f64))
            .collect();
        println!(
            "{:>10} xz {xz:>9}  {}  {}",
            data.len(),
            cols.join("  "),
            f.rsplit('/').next().unwrap()
        );
        for i in 0..k {
            bytes[i] += file_bytes[i];
        }
        total_raw += data.len();
        total_xz += xz;
    }
    for (i, v) in versions.iter().enumerate() {
        println!(
            "v{v}: total {total_raw} cm {} xz {total_xz} cm/xz {:.4}  encode {:.0} KB/s decode {:.0} KB/s",
            bytes[i],
            bytes[i] as f64 / total_xz as f64,
            total_raw as f64 / enc_s[i] / 1000.0,
            total_raw as f64 / dec_s[i] / 1000.0
        );
    }
}
