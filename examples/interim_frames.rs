//! What the interim encoding's frame size costs and saves, without FUSE:
//! every whole 64 KiB block of FILE coded as zstd level -1 records with
//! frames of 16, 8 and 4 KiB (src/codec/zstd_codec.rs), then, per block,
//! the time to encode it, to read one 4 KiB span back (plan and decode
//! the one frame holding it, checked against its CRC, as a cold small
//! read does) and to decode it whole (as a sequential read does). Each
//! figure is the fastest of five passes, per block.
//!
//!   interim_frames FILE
//!
//! Prints a TSV line per frame size: file, frame bytes, stored bytes,
//! encode µs, 4 KiB span µs, whole decode µs.
use std::time::Instant;

use llmfs::codec::{encode_record, Codec, Span, ZstdCodec, RECORD_HEADER_LEN};

const USAGE: &str = "usage: interim_frames FILE";
const BLOCK: usize = 65536;
const PASSES: usize = 5;

/// The fastest of `PASSES` runs of `f`, in seconds.
fn fastest(mut f: impl FnMut()) -> f64 {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let path = std::env::args().nth(1).expect(USAGE);
    let data = std::fs::read(&path).expect("reading FILE");
    let blocks: Vec<&[u8]> = data.chunks_exact(BLOCK).collect();
    assert!(!blocks.is_empty(), "FILE holds no whole 64 KiB block");
    let per_block = |secs: f64| secs / blocks.len() as f64 * 1e6;
    println!("file\tframe_bytes\tstored_bytes\tencode_us\tspan_4k_us\twhole_decode_us");
    for frame in [16 << 10, 8 << 10, 4 << 10] {
        let codec = ZstdCodec::framed(ZstdCodec::INTERIM_LEVEL, frame);
        let mut records = Vec::new();
        let encode = fastest(|| {
            records = blocks
                .iter()
                .map(|b| encode_record(&codec, b).expect("encoding"))
                .collect();
        });
        let stored: usize = records.iter().map(Vec::len).sum();
        let span = fastest(|| {
            for (i, r) in records.iter().enumerate() {
                // A different 4 KiB of each block, spread over all of them.
                let start = (i * 7 % (BLOCK / 4096)) * 4096;
                let plan = Span::plan(r, r.len(), BLOCK, start, start + 4096)
                    .expect("planning")
                    .expect("a framed record");
                std::hint::black_box(plan.decode(&r[plan.record_range()]).expect("decoding"));
            }
        });
        let whole = fastest(|| {
            for r in &records {
                let mut out = Vec::new();
                codec
                    .decode(&r[RECORD_HEADER_LEN..], BLOCK, &mut out)
                    .expect("decoding");
                std::hint::black_box(out);
            }
        });
        println!(
            "{path}\t{frame}\t{stored}\t{:.1}\t{:.2}\t{:.1}",
            per_block(encode),
            per_block(span),
            per_block(whole)
        );
    }
}
