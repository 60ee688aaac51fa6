//! Reads of slow blocks (llm, cm) without a mount: the decoders hand out
//! their decoded prefix as it grows (`codec::progress`), a read that lies in
//! it returns before the rest of the block is decoded (`early_reads`),
//! readers of one cold block share one decode, and a failed decode reaches
//! every waiting reader as an error. The llm blocks use the committed test
//! model (context 256: waves of 64 chunks, 16 KiB).

use crate::common::readme_prose;
use std::sync::{Arc, Barrier, Mutex};

use llmfs::codec::{progress, CodecId, CodecSet, LlmCodec, RECORD_HEADER_LEN};
use llmfs::fs::{Fs, FsConfig};
use llmfs::model::EngineOptions;
use llmfs::store::{Durability, Store, ROOT_INO};

const BS: usize = 65536;

fn test_llm() -> CodecSet {
    let model = std::fs::read("models/test/model.onnx").unwrap();
    let llm = LlmCodec::load(&model, &EngineOptions::default()).unwrap();
    CodecSet::with_llm(Some(Arc::new(llm)))
}

fn codecs_for(codec: CodecId) -> CodecSet {
    match codec {
        CodecId::Llm => test_llm(),
        _ => CodecSet::default(),
    }
}

/// Decodes `record` with a progress sink; returns the prefix lengths
/// reported, after checking each report against `data`.
fn reports(codecs: &CodecSet, record: &[u8], data: &[u8]) -> Vec<usize> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let expect = data.to_vec();
    let back = progress::with_sink(
        Arc::new(move |p: &[u8]| {
            assert!(p == &expect[..p.len()], "a reported prefix differs");
            s.lock().unwrap().push(p.len());
        }),
        || codecs.decode_block(record, BS).unwrap(),
    );
    assert!(back == data);
    let v = seen.lock().unwrap().clone();
    v
}

#[test]
fn llm_decoder_reports_each_wave_as_a_final_prefix() {
    let codecs = test_llm();
    let data = readme_prose(BS, 0);
    let record = codecs.encode_block_with(CodecId::Llm, &data).unwrap();
    // Wave k codes bytes [k * 16384, (k + 1) * 16384): four reports.
    assert_eq!(
        reports(&codecs, &record, &data),
        vec![16384, 32768, 49152, 65536]
    );
    // A block shorter than a wave reports once, at its end.
    let short = readme_prose(5000, 1);
    let record = codecs.encode_block_with(CodecId::Llm, &short).unwrap();
    assert_eq!(reports(&codecs, &record, &short), vec![5000]);
    // Without a sink nothing is reported (and nothing breaks).
    assert!(codecs.decode_block(&record, BS).unwrap() == short);
}

#[test]
fn cm_decoder_reports_its_prefix_every_4_kib() {
    let codecs = CodecSet::default();
    let data = readme_prose(BS - 100, 2);
    let record = codecs.encode_block_with(CodecId::Cm, &data).unwrap();
    let want: Vec<usize> = (1..=(BS - 100) / 4096).map(|k| k * 4096).collect();
    assert_eq!(reports(&codecs, &record, &data), want);
}

/// A store of 64 KiB blocks holding one file whose every block is stored
/// with `codec`; returns the core (early reads on or off) and the inode.
fn file_of(
    dir: &std::path::Path,
    data: &[u8],
    codec: CodecId,
    early_reads: bool,
    damage: impl Fn(&mut Vec<u8>),
) -> (Fs, u64) {
    let codecs = codecs_for(codec);
    let ino = {
        let fs = Fs::new(crate::common::open_store(dir, BS), FsConfig::default()).unwrap();
        let ino = crate::common::create_file(&fs, ROOT_INO, "f", data);
        fs.shutdown().unwrap();
        for (idx, raw) in data.chunks(BS).enumerate() {
            let mut rec = codecs.encode_block_with(codec, raw).unwrap();
            damage(&mut rec);
            fs.store()
                .write(Durability::Normal, |m| {
                    m.put_block(ino, idx as u64, codec as u8, raw.len() as u64, &rec)
                })
                .unwrap();
        }
        ino
    };
    let store: Store = crate::common::open_store(dir, BS);
    let config = FsConfig {
        early_reads,
        ..FsConfig::default()
    };
    (Fs::with_codecs(store, config, codecs).unwrap(), ino)
}

fn prefix_reads_return_the_right_bytes(codec: CodecId) {
    for early in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let data = readme_prose(BS + 20_000, 3);
        let (fs, ino) = file_of(dir.path(), &data, codec, early, |_| {});
        // `head -c 4096`, cold.
        assert!(fs.read(ino, 0, 4096).unwrap() == data[..4096]);
        // Other offsets: inside the first wave, across waves, the block's
        // end, across blocks, the file's end.
        for (off, len) in [
            (1000, 3000),
            (16000, 1000),
            (30000, 20000),
            (BS - 10, 10),
            (BS - 5, 4096),
            (BS + 19_000, 4096),
        ] {
            let got = fs.read(ino, off as u64, len as u32).unwrap();
            let end = (off + len).min(data.len());
            assert!(
                got == data[off..end],
                "{codec:?} early {early}: {off}+{len}"
            );
        }
        assert!(fs.read(ino, 0, data.len() as u32).unwrap() == data);
        // Every block was decoded once, on a decode thread.
        let stats = fs.shared_decode_stats();
        assert!(stats.started <= 2, "{stats:?}");
    }
}

#[test]
fn prefix_reads_of_a_cold_cm_block_return_the_right_bytes() {
    prefix_reads_return_the_right_bytes(CodecId::Cm);
}

#[test]
fn prefix_reads_of_a_cold_llm_block_return_the_right_bytes() {
    prefix_reads_return_the_right_bytes(CodecId::Llm);
}

/// `readers` threads read `ranges` of the cold block 0 at the same moment.
fn read_together(fs: &Fs, ino: u64, ranges: &[(u64, u32)]) -> Vec<llmfs::Result<Vec<u8>>> {
    let barrier = Barrier::new(ranges.len());
    std::thread::scope(|s| {
        let hs: Vec<_> = ranges
            .iter()
            .map(|&(off, len)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    fs.read(ino, off, len)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const RANGES: [(u64, u32); 6] = [
    (0, 4096),
    (0, 65536),
    (100, 200),
    (20_000, 4096),
    (60_000, 5536),
    (0, 4096),
];

#[test]
fn concurrent_readers_of_a_cold_block_share_one_decode() {
    for codec in [CodecId::Cm, CodecId::Llm] {
        for early in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let data = readme_prose(BS, 4);
            let (fs, ino) = file_of(dir.path(), &data, codec, early, |_| {});
            for (r, (off, len)) in read_together(&fs, ino, &RANGES).into_iter().zip(RANGES) {
                let (off, len) = (off as usize, len as usize);
                assert!(r.unwrap() == data[off..off + len], "{codec:?} {off}+{len}");
            }
            let stats = fs.shared_decode_stats();
            // One decode; a reader that came after it ended read the cache.
            assert_eq!(stats.started, 1, "{codec:?} early {early}: {stats:?}");
            assert_eq!(fs.cache_stats().entries, 1);
        }
    }
}

#[test]
fn a_corrupt_payload_fails_every_waiting_reader() {
    for codec in [CodecId::Cm, CodecId::Llm] {
        let dir = tempfile::tempdir().unwrap();
        let data = readme_prose(BS, 5);
        // A byte early in the coded stream: the bytes decoded from it on
        // are wrong, and the block fails its checksum (or its decoder).
        let damage = |rec: &mut Vec<u8>| {
            let at = RECORD_HEADER_LEN + 120;
            rec[at] ^= 0x5a;
        };
        let (fs, ino) = file_of(dir.path(), &data, codec, true, damage);
        let whole = [(0u64, 65536u32); 4];
        for r in read_together(&fs, ino, &whole) {
            let e = r.expect_err("a corrupt block read back");
            assert_eq!(e.errno(), libc::EIO, "{e}");
            assert!(e.to_string().contains("block 0"), "{e}");
        }
        assert_eq!(fs.shared_decode_stats().started, 1);
        assert_eq!(fs.cache_stats().entries, 0, "a corrupt block was cached");
        // The next read decodes again, and fails again: nothing hangs.
        assert!(fs.read(ino, 0, 65536).is_err());
        assert_eq!(fs.shared_decode_stats().started, 2);
    }
}
