//! Per-file sizes and decode speed of the media codec on raw files, per
//! 64 KiB block as the volume stores them (bench/media.sh runs it).
//!
//!   cargo run --release --example media_eval -- [--quick] [--version N] FILE...
//!
//! `--quick` (model development) prints only name, raw bytes and media
//! payload bytes: no decode, no archive tier. `--version N` writes payload
//! version N (an older model, for comparison) instead of this build's
//! choice.
//!
//! Prints one line per file: name, raw bytes, media payload bytes (all
//! blocks), decode seconds (one thread), the archive tier's record bytes
//! (the smallest of media, cm, LZMA2, zstd -19 and raw per block, what a
//! volume stores), and the layout of the first block.
use std::time::Instant;

use llmfs::codec::media::{choose_layout, decode_payload, encode_payload, encode_version, Version};
use llmfs::codec::CodecSet;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.first().is_some_and(|a| a == "--quick");
    if quick {
        args.remove(0);
    }
    let mut version = None;
    if args.first().is_some_and(|a| a == "--version") {
        let v: u8 = args[1].parse().expect("--version N");
        version = Some(Version::of(v).expect("a payload version this build reads"));
        args.drain(..2);
    }
    for path in args {
        let data = std::fs::read(&path).expect("read input");
        let mut payloads = Vec::new();
        for block in data.chunks(65536) {
            payloads.push(match version {
                Some(v) => encode_version(block, choose_layout(block).as_ref(), v, Vec::new()),
                None => encode_payload(block, Vec::new()),
            });
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        if quick {
            let size: usize = payloads.iter().map(Vec::len).sum();
            println!("{name} {} {size}", data.len());
            continue;
        }
        let start = Instant::now();
        for (block, payload) in data.chunks(65536).zip(&payloads) {
            let mut out = Vec::new();
            decode_payload(payload, block.len(), &mut out).expect("decode");
            assert_eq!(out, block, "{path}: round trip");
        }
        let secs = start.elapsed().as_secs_f64();
        let size: usize = payloads.iter().map(Vec::len).sum();
        let set = CodecSet::default();
        let archive: usize = data
            .chunks(65536)
            .map(|b| set.encode_block_archive(b).expect("archive encode").len())
            .sum();
        let kind = match choose_layout(&data[..data.len().min(65536)]) {
            Some(l) => format!("{:?}", l.arrangement).chars().take(60).collect(),
            None => "stored".to_string(),
        };
        println!("{name} {} {size} {secs:.3} {archive} {kind}", data.len());
    }
}
