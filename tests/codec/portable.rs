//! Portable blocks: an integer model's llm blocks decode on every engine
//! of the model (ONNX Runtime with any thread count, the reference engine),
//! every engine writes the same bytes, and float models' blocks are marked
//! as not portable.

use llmfs::codec::{payload_portable, Codec, CodecError, LlmCodec};
use llmfs::model::{logits_digest, Device, Engine, EngineOptions};

const INT_MODELS: [&str; 2] = ["models/test-int/model.onnx", "models/default/model.onnx"];

/// sha256 of the integer logits of `logits_digest`'s fixed input, per
/// model: the same on every machine and engine (also checked under emulated
/// CPUs in tests/codec/cross_isa.rs). Reproduce with
/// `llmfs model-check --model MODEL --json` (its `logits_sha256`).
const PINNED_DIGESTS: [(&str, &str); 2] = [
    (
        "models/test-int/model.onnx",
        "99abd72131ae28b5e7145d1a6b5ccc9cb192da4cdb7962ae731577f5a4d98539",
    ),
    (
        "models/default/model.onnx",
        "4fa3909dd34782d181bc22ce65555e8d82e480f4eb04035f5aecdbd72ed8494d",
    ),
];

fn engines() -> [(Device, usize); 3] {
    [(Device::Cpu, 1), (Device::Cpu, 2), (Device::Reference, 1)]
}

fn codec(model: &[u8], device: Device, threads: usize, mixing: bool) -> LlmCodec {
    let c = LlmCodec::load(model, &EngineOptions { device, threads }).unwrap();
    assert!(c.can_encode(), "{device:?}: self-test failed");
    assert!(c.portable());
    if mixing {
        c
    } else {
        c.without_mixing()
    }
}

/// Text, then every byte value: a block that is partly not text.
fn sample(len: usize) -> Vec<u8> {
    let mut data = crate::common::text(len, 11);
    data.truncate(len.saturating_sub(256));
    data.extend(0..=255u8);
    data
}

#[test]
fn integer_blocks_decode_on_every_engine_and_every_engine_writes_the_same() {
    for path in INT_MODELS {
        let model = std::fs::read(path).unwrap();
        let data = sample(if path.contains("test-int") {
            3000
        } else {
            1200
        });
        for mixing in [true, false] {
            let codecs: Vec<LlmCodec> = engines()
                .iter()
                .map(|&(d, t)| codec(&model, d, t, mixing))
                .collect();
            let ids: Vec<[u8; 8]> = codecs.iter().map(LlmCodec::engine_id).collect();
            assert!(
                ids.windows(2).all(|w| w[0] == w[1]),
                "{path}: engine ids {ids:?}"
            );
            let mut first: Option<Vec<u8>> = None;
            for (e, enc) in codecs.iter().enumerate() {
                let mut payload = Vec::new();
                enc.encode(&data, &mut payload).unwrap();
                assert_eq!(payload[0], if mixing { 5 } else { 3 });
                assert_eq!(payload_portable(&payload), Some(true));
                match &first {
                    None => first = Some(payload.clone()),
                    Some(f) => assert!(
                        f == &payload,
                        "{path}: engine {:?} wrote other bytes",
                        engines()[e]
                    ),
                }
                for (d, dec) in codecs.iter().enumerate() {
                    let mut out = Vec::new();
                    dec.decode(&payload, data.len(), &mut out)
                        .unwrap_or_else(|err| {
                            panic!("{path}: {:?} -> {:?}: {err}", engines()[e], engines()[d])
                        });
                    assert!(
                        out == data,
                        "{path}: {:?} -> {:?}",
                        engines()[e],
                        engines()[d]
                    );
                }
            }
        }
    }
}

#[test]
fn float_blocks_are_not_portable() {
    let model = std::fs::read("models/test/model.onnx").unwrap();
    let c = LlmCodec::load(&model, &EngineOptions::default()).unwrap();
    assert!(!c.portable());
    let data = sample(700);
    let mut payload = Vec::new();
    c.encode(&data, &mut payload).unwrap();
    assert_eq!(payload[0], 2);
    assert_eq!(payload_portable(&payload), Some(false));
    // The reference engine runs integer models only.
    let err = Engine::load(
        &model,
        &EngineOptions {
            device: Device::Reference,
            threads: 1,
        },
    )
    .err()
    .expect("a float model on the reference engine");
    assert!(err.to_string().contains("llmfs-int8-v1"), "{err}");
}

#[test]
fn logits_digest_is_the_pinned_one_on_every_engine() {
    for (path, want) in PINNED_DIGESTS {
        let model = std::fs::read(path).unwrap();
        for (device, threads) in engines() {
            let mut e = Engine::load(&model, &EngineOptions { device, threads }).unwrap();
            assert_eq!(logits_digest(&mut e).unwrap(), want, "{path} on {device:?}");
        }
    }
}

/// The integer test model, and the mixed payload it writes for `data`.
fn test_int_payload(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
    let mut payload = Vec::new();
    codec(&model, Device::Cpu, 1, true)
        .encode(data, &mut payload)
        .unwrap();
    (model, payload)
}

/// Decodes `payload` of `len` bytes with `c`.
fn decode_with(c: &LlmCodec, payload: &[u8], len: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    c.decode(payload, len, &mut out).map(|_| out)
}

#[test]
fn damaged_portable_payloads_are_errors_on_every_engine() {
    let data = sample(1500);
    let (model, payload) = test_int_payload(&data);
    for (device, threads) in [(Device::Cpu, 1), (Device::Reference, 1)] {
        let c = codec(&model, device, threads, true);
        let decode = |p: &[u8]| decode_with(&c, p, data.len());
        assert!(
            decode(&payload[..payload.len() / 2]).is_err(),
            "{device:?}: truncated"
        );
        assert!(decode(&payload[..10]).is_err(), "{device:?}: header cut");
        assert!(decode(&[]).is_err(), "{device:?}: empty");
        let mut longer = payload.clone();
        longer.extend_from_slice(&[0x55; 40]);
        assert!(decode(&longer).is_err(), "{device:?}: trailing bytes");
        // A flipped byte mid-stream: an error, or (the coder's slack) bytes
        // of the declared length that the record's checksum then judges.
        let mut flipped = payload.clone();
        let at = flipped.len() * 2 / 3;
        flipped[at] ^= 0x5a;
        if let Ok(out) = decode(&flipped) {
            assert_eq!(out.len(), data.len());
        }
    }
}

/// Version 5 is version 4 with a CRC-32C of each wave but the last after
/// the header: without them (and with version byte 4) the same payload
/// decodes to the same bytes, so version-4 blocks keep reading; a
/// checksum that does not match its wave is an error that names the wave.
#[test]
fn version_5_is_version_4_with_wave_checksums() {
    // Context 256, waves of 64 chunks: 16 KiB a wave, so three waves and
    // two checksums.
    let data = sample(40_000);
    let (model, v5) = test_int_payload(&data);
    assert_eq!(v5[0], 5);
    let mut v4 = v5.clone();
    v4.drain(21..29);
    v4[0] = 4;
    for (device, threads) in [(Device::Cpu, 1), (Device::Reference, 1)] {
        let c = codec(&model, device, threads, true);
        let decode = |p: &[u8]| decode_with(&c, p, data.len());
        assert!(decode(&v5).unwrap() == data, "{device:?}: version 5");
        assert!(decode(&v4).unwrap() == data, "{device:?}: version 4");
        for wave in 0..2 {
            let mut bad = v5.clone();
            bad[21 + 4 * wave] ^= 0x10;
            let e = decode(&bad).expect_err("a wrong wave checksum");
            assert!(e.to_string().contains(&format!("wave {wave}")), "{e}");
        }
        // A payload too short for its checksums is an error, not a panic.
        assert!(decode(&v5[..25]).is_err());
        // A wave of no chunks is an error, not a decode that never ends
        // (nor a division by zero), in version 5 and in version 4.
        for mut p in [v5.clone(), v4.clone()] {
            p[20] = 0;
            let e = decode(&p).expect_err("a wave of 0 chunks");
            assert!(e.to_string().contains("wave 0"), "{e}");
        }
    }
}

mod convert {
    //! A volume of float-model blocks, converted by `llmfs archive
    //! --portable`: stats and fsck count what is not portable before, and
    //! nothing after; the data reads back; the old model is dropped.

    use llmfs::archive::{adopt_model, ensure_model_recorded, volume_codec};
    use llmfs::codec::{CodecId, CodecSet, LlmCodec};
    use llmfs::fs::{Fs, FsConfig, WriteEncoding};
    use llmfs::model::{hex, sha256, EngineOptions, DEFAULT_MODEL};
    use llmfs::store::{Store, ROOT_INO};

    const BS: usize = 4096;

    fn open_store(dir: &std::path::Path) -> Store {
        crate::common::open_store(dir, BS)
    }

    /// A volume whose blocks of `data` (one file) are coded with the float
    /// model where it wins; returns the file's inode.
    fn float_volume(dir: &std::path::Path, data: &[u8]) -> u64 {
        let float = std::fs::read("models/float-d192l3/model.onnx").unwrap();
        let store = open_store(dir);
        let llm = volume_codec(&store, Some(&float), &EngineOptions::default()).unwrap();
        assert!(!llm.portable());
        ensure_model_recorded(&store, &llm).unwrap();
        let config = FsConfig {
            write_encoding: WriteEncoding::Best,
            ..FsConfig::default()
        };
        let fs = Fs::with_codecs(store, config, CodecSet::with_llm(Some(llm))).unwrap();
        let ino = crate::common::create_file(&fs, ROOT_INO, "prose.txt", data);
        fs.shutdown().unwrap();
        ino
    }

    /// Real English (the README): the model wins its blocks from cm and
    /// LZMA2, which the archival choice also tries; synthetic text repeats
    /// too much for that.
    fn prose() -> Vec<u8> {
        let readme = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        readme.into_iter().cycle().take(7 * BS + 100).collect()
    }

    #[test]
    fn archive_portable_converts_float_blocks_and_drops_the_float_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let data = prose();
        let ino = float_volume(dir.path(), &data);
        let before = crate::common::stats_json(dir.path());
        let not_portable = before["llm_not_portable"]["blocks"].as_u64().unwrap();
        assert!(not_portable > 0, "the float model won no block: {before}");
        let (ok, out) = crate::common::run(["fsck", path]);
        assert!(ok && out.contains("not portable"), "{out}");

        let (ok, out) = crate::common::run(["archive", "--portable", "--workers", "1", path]);
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!("converted {not_portable} blocks")),
            "{out}"
        );

        let after = crate::common::stats_json(dir.path());
        assert_eq!(after["llm_not_portable"]["blocks"], 0, "{after}");
        assert_eq!(after["model"], hex(&sha256(DEFAULT_MODEL)), "{after}");
        let (ok, out) = crate::common::run(["fsck", path]);
        assert!(ok && !out.contains("not portable"), "{out}");
        // A second run finds nothing to do.
        let (ok, out) = crate::common::run(["archive", "--portable", path]);
        assert!(ok && out.contains("already portable"), "{out}");

        let store = open_store(dir.path());
        let features = store.read(|m| m.features()).unwrap();
        assert!(
            features.contains(llmfs::store::Feature::PortableLlm),
            "{features:?}"
        );
        let shas = store.read(|m| m.model_shas()).unwrap();
        assert_eq!(
            shas,
            vec![hex(&sha256(DEFAULT_MODEL))],
            "the float model is dropped"
        );
        let llm = volume_codec(&store, None, &EngineOptions::default()).unwrap();
        let fs =
            Fs::with_codecs(store, FsConfig::default(), CodecSet::with_llm(Some(llm))).unwrap();
        assert_eq!(fs.read(ino, 0, data.len() as u32 + 10).unwrap(), data);
        let t = fs.store().read(|m| m.totals()).unwrap();
        let llm_blocks: u64 = t
            .per_codec
            .iter()
            .filter(|c| c.codec == CodecId::Llm as u8)
            .map(|c| c.blocks)
            .sum();
        assert!(llm_blocks > 0, "the integer model won no block: {t:?}");
    }

    /// A conversion that stopped after the volume adopted the integer model
    /// (a crash, say): the volume reads both models' blocks, and the next
    /// run converts the rest.
    #[test]
    fn an_interrupted_conversion_reads_both_models_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let data = prose();
        let ino = float_volume(dir.path(), &data);
        {
            let store = open_store(dir.path());
            let int = LlmCodec::load(DEFAULT_MODEL, &EngineOptions::default()).unwrap();
            adopt_model(&store, &int).unwrap();
            // Coding with the integer model now, decoding the float blocks.
            let llm = volume_codec(&store, None, &EngineOptions::default()).unwrap();
            assert!(llm.portable());
            let fs =
                Fs::with_codecs(store, FsConfig::default(), CodecSet::with_llm(Some(llm))).unwrap();
            assert_eq!(fs.read(ino, 0, data.len() as u32 + 10).unwrap(), data);
        }
        let before = crate::common::stats_json(dir.path());
        assert!(before["llm_not_portable"]["blocks"].as_u64().unwrap() > 0);
        let (ok, out) = crate::common::run(["archive", "--portable", "--workers", "1", path]);
        assert!(ok, "{out}");
        let after = crate::common::stats_json(dir.path());
        assert_eq!(after["llm_not_portable"]["blocks"], 0, "{after}");
        let store = open_store(dir.path());
        assert_eq!(
            store.read(|m| m.model_shas()).unwrap(),
            vec![hex(&sha256(DEFAULT_MODEL))]
        );
        let (ok, out) = crate::common::run(["fsck", path]);
        assert!(ok, "{out}");
    }
}

/// The fuzz seeds of llm payload version 5 (a block record, and a
/// container of a 20,000-byte block with one wave checksum) decode with the
/// integer test model: the fuzzer starts from valid inputs.
#[test]
fn version_5_fuzz_seeds_decode() {
    use llmfs::codec::CodecSet;
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
    let set = CodecSet::with_llm(Some(std::sync::Arc::new(codec(
        &model,
        Device::Cpu,
        1,
        true,
    ))));
    let record = std::fs::read("fuzz/seeds/decode_block/seed-llm-v5").unwrap();
    assert_eq!(record[llmfs::codec::RECORD_HEADER_LEN], 5);
    assert_eq!(set.decode_block(&record, 4096).unwrap().len(), 4000);
    let file = std::fs::read("fuzz/seeds/decompress/seed-llm-v5").unwrap();
    let mut input = std::io::Cursor::new(&file[..]);
    let header = llmfs::container::read_header(&mut input).unwrap();
    let mut out = Vec::new();
    llmfs::container::decompress(&[set], &header, &mut input, &mut out, |_| {}).unwrap();
    assert_eq!(out.len(), 20_000);
}

/// Version 6: the in-block models primed with a volume dictionary. A codec
/// with the volume's dictionaries writes it once the volume has a current
/// dictionary; every engine writes the same bytes and decodes them; the
/// primed block is smaller when the dictionary holds its phrases; a reader
/// without the dictionary, or with a damaged copy of it, gets an error
/// that says so, never other bytes.
#[test]
fn version_6_is_primed_with_the_volume_dictionary() {
    use llmfs::codec::cm::{Dictionaries, StoredDictionary};
    use llmfs::codec::llm::DictionaryLlmCodec;
    use std::sync::Arc;

    let data = sample(20_000);
    // Lines of the same template as the block's, other numbers.
    let dictionary = crate::common::text(30_000, 7_000);
    let stored = StoredDictionary::of(&dictionary);
    let digest = stored.digest;
    let dicts = Arc::new(Dictionaries::new());
    dicts.insert(stored.clone());
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
    let mut payloads = Vec::new();
    for (device, threads) in [(Device::Cpu, 1), (Device::Reference, 1)] {
        let llm = Arc::new(codec(&model, device, threads, true));
        let primed = DictionaryLlmCodec::new(Arc::clone(&llm), Arc::clone(&dicts));
        // No current dictionary yet: version 5.
        dicts.set_current(None);
        let mut v5 = Vec::new();
        primed.encode(&data, &mut v5).unwrap();
        assert_eq!(v5[0], 5);
        dicts.set_current(Some(digest));
        let mut v6 = Vec::new();
        primed.encode(&data, &mut v6).unwrap();
        assert_eq!(v6[0], 6);
        assert_eq!(&v6[21..53], &digest);
        assert!(
            v6.len() * 10 < v5.len() * 9,
            "{device:?}: primed {} bytes, unprimed {}",
            v6.len(),
            v5.len()
        );
        let mut out = Vec::new();
        primed.decode(&v6, data.len(), &mut out).unwrap();
        assert!(out == data, "{device:?}: version 6 round trip");
        // The plain codec knows no dictionary.
        let e = decode_with(&llm, &v6, data.len()).expect_err("needs the dictionary");
        assert!(e.to_string().contains("needs dictionary"), "{e}");
        // A wrong wave checksum is still found (after the digest).
        let mut bad = v6.clone();
        bad[53] ^= 0x10;
        let e = primed
            .decode(&bad, data.len(), &mut Vec::new())
            .expect_err("a wrong wave checksum");
        assert!(e.to_string().contains("wave 0"), "{e}");
        // A payload cut inside the digest is an error, not a panic.
        assert!(primed
            .decode(&v6[..40], data.len(), &mut Vec::new())
            .is_err());
        payloads.push(v6);
    }
    assert_eq!(
        payloads[0], payloads[1],
        "every engine writes the same bytes"
    );

    let llm = Arc::new(codec(&model, Device::Cpu, 1, true));
    // A volume that does not hold the dictionary.
    let without = DictionaryLlmCodec::new(Arc::clone(&llm), Arc::new(Dictionaries::new()));
    let e = without
        .decode(&payloads[0], data.len(), &mut Vec::new())
        .expect_err("a missing dictionary");
    assert!(e.to_string().contains("does not hold"), "{e}");
    // A volume whose stored dictionary is damaged.
    let mut damaged = stored.clone();
    let at = damaged.payload.len() / 2;
    damaged.payload[at] ^= 0x40;
    let dicts = Arc::new(Dictionaries::new());
    dicts.insert(damaged);
    let with_damaged = DictionaryLlmCodec::new(Arc::clone(&llm), Arc::clone(&dicts));
    let e = with_damaged
        .decode(&payloads[0], data.len(), &mut Vec::new())
        .expect_err("a damaged dictionary");
    assert!(e.to_string().contains("damaged"), "{e}");
    // Encoding with a damaged current dictionary codes without one.
    dicts.set_current(Some(digest));
    let mut p = Vec::new();
    with_damaged.encode(&data, &mut p).unwrap();
    assert_eq!(p[0], 5);
}

/// The fuzz seed of llm payload version 6 (a block record primed with the
/// dictionary the `decode_block` target holds: `text(8192, 500)` of
/// tests/common/data.rs, which the target rebuilds) decodes with the
/// integer test model and that dictionary.
#[test]
fn version_6_fuzz_seed_decodes() {
    use llmfs::codec::cm::{Dictionaries, StoredDictionary};
    use llmfs::codec::CodecSet;
    use std::sync::Arc;
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
    let dicts = Arc::new(Dictionaries::new());
    let stored = StoredDictionary::of(&crate::common::text(8192, 500));
    dicts.insert(stored.clone());
    dicts.set_current(Some(stored.digest));
    let set = CodecSet::with_llm(Some(Arc::new(codec(&model, Device::Cpu, 1, true))))
        .with_dictionaries(dicts);
    // Written by `set.encode_block_with(CodecId::Llm, &text(4000, 510))`.
    let record = std::fs::read("fuzz/seeds/decode_block/seed-llm-v6").unwrap();
    assert_eq!(record[llmfs::codec::RECORD_HEADER_LEN], 6);
    let want = crate::common::text(4000, 510);
    assert_eq!(set.decode_block(&record, 4096).unwrap(), want);
    // Every byte of it flipped in turn: an error or the verified bytes,
    // never a panic (the digest, the wave byte, the checksums, the
    // streams).
    for at in 0..record.len() {
        let mut bad = record.clone();
        bad[at] ^= 0x24;
        if let Ok(out) = set.decode_block(&bad, 4096) {
            assert_eq!(out, want, "byte {at} flipped");
        }
    }
}

/// The CUDA engine pads each run's length and batch to a multiple of 4
/// (cuBLAS refuses some int8 shapes, bench/results/2026-12-04-cuda-h200/).
/// Run on the CPU and the reference engine, the padding must not change a
/// logit: chunk lengths and decoder batches that are not multiples of 4.
#[test]
fn padding_runs_to_the_cuda_engines_shapes_changes_no_logit() {
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
    let text = crate::common::text(4000, 5);
    let chunks: Vec<&[u8]> = [1usize, 2, 5, 27, 255]
        .iter()
        .enumerate()
        .map(|(i, &n)| &text[i * 300..i * 300 + n])
        .collect();
    for device in [Device::Cpu, Device::Reference] {
        let options = EngineOptions { device, threads: 1 };
        let mut plain = Engine::load(&model, &options).unwrap();
        let mut padded = Engine::load(&model, &options).unwrap();
        padded.set_shape_multiple(4);
        for c in &chunks {
            assert_eq!(
                plain.score(&[c]).unwrap(),
                padded.score(&[c]).unwrap(),
                "{device:?}: a full pass of {} bytes",
                c.len()
            );
        }
        assert_eq!(
            plain.score(&chunks).unwrap(),
            padded.score(&chunks).unwrap()
        );
        for batch in [1, 3, 19] {
            let mut a = plain.decoder(batch).unwrap();
            let mut b = padded.decoder(batch).unwrap();
            let mut prev = Vec::new();
            for step in 0..6 {
                let want = plain.step(&mut a, &prev).unwrap().to_vec();
                let got = padded.step(&mut b, &prev).unwrap();
                assert_eq!(want.len(), batch * 256);
                assert_eq!(want, got, "{device:?}: batch {batch}, step {step}");
                prev = (0..batch).map(|i| text[i * 100 + step]).collect();
            }
        }
    }
}
