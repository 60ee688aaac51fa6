//! The neural codec end to end, through the standalone container
//! (`llmfs compress`/`decompress` use the same functions): bit-exact round
//! trips on the evaluation corpora and on adversarial inputs, corrupt
//! payloads returning errors, and a file refusing the wrong model.
//!
//! The committed test model (random weights, fixed seed) runs the real
//! graph, runtime and coder at a fraction of the default model's cost, so
//! every block is forced through the llm codec here. The corpora are read
//! from $LLMFS_CORPORA or ../shared/corpora; without them those tests say so
//! and pass.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use llmfs::codec::{CodecError, CodecId, CodecSet, LlmCodec, RecordHeader, RECORD_HEADER_LEN};
use llmfs::container::{self, ContainerError, Policy};
use llmfs::model::EngineOptions;

use crate::common::noise;

const BS: u32 = 65536;

fn test_model() -> Vec<u8> {
    std::fs::read("models/test/model.onnx").unwrap()
}

fn codecs(model: &[u8], threads: usize) -> CodecSet {
    let llm = LlmCodec::load(
        model,
        &EngineOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(llm.can_encode(), "self-test failed");
    CodecSet::with_llm(Some(Arc::new(llm)))
}

fn pack(set: &CodecSet, data: &[u8], policy: Policy) -> Vec<u8> {
    let mut out = Vec::new();
    container::compress(
        std::slice::from_ref(set),
        &mut Cursor::new(data),
        data.len() as u64,
        &mut out,
        BS,
        policy,
        |_| {},
    )
    .unwrap();
    out
}

fn unpack(set: &CodecSet, packed: &[u8]) -> Result<Vec<u8>, ContainerError> {
    let mut input = Cursor::new(packed);
    let header = container::read_header(&mut input)?;
    let mut out = Vec::new();
    container::decompress(
        std::slice::from_ref(set),
        &header,
        &mut input,
        &mut out,
        |_| {},
    )?;
    Ok(out)
}

fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("LLMFS_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "corpora not found at {}: corpus round trips skipped",
            dir.display()
        );
        None
    }
}

fn corpus_files(dir: &std::path::Path, limit: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let mut data = std::fs::read(&p).unwrap();
            data.truncate(limit);
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect()
}

fn round_trip_all(files: Vec<(String, Vec<u8>)>) {
    let set = codecs(&test_model(), 1);
    for (name, data) in files {
        let packed = pack(&set, &data, Policy::Only(CodecId::Llm));
        let back = unpack(&set, &packed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(back == data, "{name}: round trip differs");
    }
}

#[test]
fn canterbury_round_trips_bit_exact_through_the_model() {
    if let Some(dir) = corpora() {
        round_trip_all(corpus_files(&dir.join("cantrbry"), usize::MAX));
    }
}

#[test]
fn silesia_heads_round_trip_bit_exact_through_the_model() {
    if let Some(dir) = corpora() {
        round_trip_all(corpus_files(&dir.join("silesia"), 256 << 10));
    }
}

#[test]
fn adversarial_inputs_round_trip() {
    let set = codecs(&test_model(), 2);
    let text = std::fs::read("src/coder/range.rs").unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("one byte".into(), vec![b'x']),
        ("zeros".into(), vec![0; 70_000]),
        ("one repeated byte".into(), vec![0xAB; 65_536]),
        ("noise".into(), noise(150_000, 1)),
        (
            "all byte values".into(),
            (0..=255u8).cycle().take(5000).collect(),
        ),
    ];
    for n in [
        255, 256, 257, 4095, 4096, 4097, 65_535, 65_536, 65_537, 131_071, 131_073,
    ] {
        cases.push((
            format!("{n} bytes of text"),
            text.iter().copied().cycle().take(n).collect(),
        ));
    }
    for (name, data) in cases {
        for policy in [Policy::Only(CodecId::Llm), Policy::Best] {
            let packed = pack(&set, &data, policy);
            let back = unpack(&set, &packed).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(back == data, "{name} ({policy:?}): round trip differs");
        }
    }
}

#[test]
fn output_does_not_depend_on_threads() {
    let model = test_model();
    let data: Vec<u8> = std::fs::read("src/codec/llm/mod.rs").unwrap();
    let a = pack(&codecs(&model, 1), &data, Policy::Only(CodecId::Llm));
    let b = pack(&codecs(&model, 2), &data, Policy::Only(CodecId::Llm));
    assert!(a == b, "compressed bytes differ between 1 and 2 threads");
    // Two workers coding blocks in parallel, on more than one block.
    let big: Vec<u8> = data
        .iter()
        .copied()
        .cycle()
        .take(3 * BS as usize + 7)
        .collect();
    let workers = [codecs(&model, 1), codecs(&model, 1)];
    let mut par = Vec::new();
    container::compress(
        &workers,
        &mut Cursor::new(&big),
        big.len() as u64,
        &mut par,
        BS,
        Policy::Only(CodecId::Llm),
        |_| {},
    )
    .unwrap();
    assert!(
        par == pack(&workers[0], &big, Policy::Only(CodecId::Llm)),
        "parallel workers change the output"
    );
    let mut input = Cursor::new(&par);
    let header = container::read_header(&mut input).unwrap();
    let mut back = Vec::new();
    container::decompress(&workers, &header, &mut input, &mut back, |_| {}).unwrap();
    assert!(back == big);
}

/// The llm record of one block of text.
fn llm_record(set: &CodecSet) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = std::fs::read("src/fs/data.rs")
        .unwrap()
        .into_iter()
        .take(20_000)
        .collect();
    let rec = set.encode_block_with(CodecId::Llm, &data).unwrap();
    (data, rec)
}

#[test]
fn corrupt_llm_payloads_are_errors() {
    let set = codecs(&test_model(), 1);
    let (data, rec) = llm_record(&set);
    assert_eq!(set.decode_block(&rec, BS as usize).unwrap(), data);
    let payload_len = rec.len() - RECORD_HEADER_LEN;
    let mut rng = 12345u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let fix_len = |r: &mut Vec<u8>| {
        let len = (r.len() - RECORD_HEADER_LEN) as u32;
        r[16..20].copy_from_slice(&len.to_le_bytes());
    };
    for round in 0..60 {
        let mut bad = rec.clone();
        match round % 4 {
            // Bit flips in the payload (headers and streams).
            0 => {
                let at = RECORD_HEADER_LEN + next(payload_len);
                bad[at] ^= 1 << next(8);
            }
            // Truncation, with the record length made consistent.
            1 => {
                bad.truncate(RECORD_HEADER_LEN + next(payload_len));
                fix_len(&mut bad);
            }
            // Random payload of random length.
            2 => {
                let n = next(payload_len * 2);
                bad.truncate(RECORD_HEADER_LEN);
                bad.extend(noise(n, round));
                fix_len(&mut bad);
            }
            // Valid llm header (21 bytes in version 2), random streams.
            _ => {
                let keep = RECORD_HEADER_LEN + 21;
                let n = payload_len - 21;
                bad.truncate(keep);
                bad.extend(noise(n, round + 1000));
            }
        }
        // Usually an error; never other bytes than the original.
        if let Ok(out) = set.decode_block(&bad, BS as usize) {
            assert_eq!(
                out, data,
                "round {round}: corrupt payload decoded to other bytes"
            );
        }
    }
    // A declared raw length beyond the block size is refused before any
    // decoding.
    let mut bad = rec.clone();
    bad[8..12].copy_from_slice(&(BS * 4).to_le_bytes());
    assert!(matches!(
        set.decode_block(&bad, BS as usize),
        Err(CodecError::RawTooLarge { .. })
    ));
    assert!(RecordHeader::parse(&rec, BS as usize).is_ok());
}

/// The llm payload of `data` from `codec`, and its version byte.
fn llm_payload(codec: &LlmCodec, data: &[u8]) -> Vec<u8> {
    use llmfs::codec::Codec;
    let mut out = Vec::new();
    codec.encode(data, &mut out).unwrap();
    out
}

fn llm_codec(model: &[u8]) -> LlmCodec {
    LlmCodec::load(model, &EngineOptions::default()).unwrap()
}

#[test]
fn transformer_alone_payloads_still_decode() {
    // Version 1 payloads (the transformer alone, what volumes held before
    // the mixer) decode with a codec that writes version 2.
    let model = test_model();
    let mixing = llm_codec(&model);
    let alone = llm_codec(&model).without_mixing();
    let text = std::fs::read("src/container.rs").unwrap();
    for n in [0, 1, 255, 256, 257, 5000, 65_536] {
        let data: Vec<u8> = text.iter().copied().cycle().take(n).collect();
        let v1 = llm_payload(&alone, &data);
        let v2 = llm_payload(&mixing, &data);
        assert_eq!((v1[0], v2[0]), (1, 2));
        for payload in [&v1, &v2] {
            for codec in [&mixing, &alone] {
                let back = codec.decode_many(&[(payload, n)]).pop().unwrap().unwrap();
                assert!(back == data, "{n} bytes, version {}", payload[0]);
            }
        }
    }
}

#[test]
fn blocks_of_both_versions_decode_together() {
    // Read-ahead decodes several blocks in shared model runs: waves of
    // different blocks share a batch, a block's waves run in order, and
    // version 1 groups batch on their own.
    let model = test_model();
    let mixing = llm_codec(&model);
    let alone = llm_codec(&model).without_mixing();
    let text = std::fs::read("src/fs/data.rs").unwrap();
    let sizes = [1usize, 4096, 20_000, 65_536, 300, 17_000];
    let blocks: Vec<(Vec<u8>, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data: Vec<u8> = text.iter().copied().skip(i * 999).cycle().take(n).collect();
            let codec = if i % 3 == 2 { &alone } else { &mixing };
            (llm_payload(codec, &data), data)
        })
        .collect();
    let mut inputs: Vec<(&[u8], usize)> = blocks
        .iter()
        .map(|(p, d)| (p.as_slice(), d.len()))
        .collect();
    // One damaged block fails alone: the others still decode right. (Damage
    // near the end of a range-coder stream can decode to the original bytes,
    // since the final bytes carry slack; what the payload decodes to is the
    // record CRC's to judge, as `corrupt_llm_payloads_are_errors` checks.)
    let mut bad = blocks[1].0.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    inputs.push((&bad, sizes[1]));
    let results = mixing.decode_many(&inputs);
    for (i, (_, data)) in blocks.iter().enumerate() {
        assert!(
            results[i].as_ref().unwrap() == data,
            "block {i} of {} bytes",
            data.len()
        );
    }
    if let Ok(out) = &results[blocks.len()] {
        assert_eq!(
            out.len(),
            sizes[1],
            "a damaged block keeps its declared length"
        );
    }
}

#[test]
fn a_file_needs_the_model_it_was_made_with() {
    let test = codecs(&test_model(), 1);
    let data = std::fs::read("src/codec/select.rs").unwrap();
    let packed = pack(&test, &data, Policy::Only(CodecId::Llm));
    // The same file read with no model, and with another model.
    assert!(matches!(
        unpack(&CodecSet::default(), &packed),
        Err(ContainerError::ModelMismatch { loaded: None, .. })
    ));
    let mut other = test_model();
    // Another model: same graph, one weight byte changed near the end.
    let n = other.len();
    other[n - 100] ^= 1;
    if let Ok(llm) = LlmCodec::load(&other, &EngineOptions::default()) {
        let set = CodecSet::with_llm(Some(Arc::new(llm)));
        let err = unpack(&set, &packed).unwrap_err();
        assert!(
            matches!(
                err,
                ContainerError::ModelMismatch {
                    loaded: Some(_),
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn corrupt_containers_are_errors() {
    let set = codecs(&test_model(), 1);
    let data = std::fs::read("src/container.rs").unwrap();
    let packed = pack(&set, &data, Policy::Only(CodecId::Llm));
    assert!(matches!(
        unpack(&set, b"hello"),
        Err(ContainerError::NotContainer)
    ));
    let mut bad = packed.clone();
    bad[20] ^= 1;
    assert!(matches!(
        unpack(&set, &bad),
        Err(ContainerError::HeaderChecksum)
    ));
    assert!(unpack(&set, &packed[..packed.len() - 3]).is_err());
    let mut long = packed.clone();
    long.push(0);
    assert!(matches!(
        unpack(&set, &long),
        Err(ContainerError::TrailingData)
    ));
    // A block record claiming a huge length is refused, not allocated.
    let mut bad = packed.clone();
    bad[64..68].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(unpack(&set, &bad).is_err());
}
