//! Reads of slow blocks (llm, cm) without a mount: the decoders hand out
//! their decoded prefix as it grows (`codec::progress`), a read that lies in
//! its checked part (llm payload version 5: each wave's CRC-32C) returns
//! before the rest of the block is decoded, and with `early_reads` one in
//! any part; readers of one cold block share one decode, and a failed
//! decode reaches every waiting reader as an error. The llm blocks use the
//! committed integer test model (context 256: waves of 64 chunks, 16 KiB).

use crate::common::readme_prose;
use std::sync::{Arc, Barrier, Mutex};

use llmfs::codec::progress::{self, Checked};
use llmfs::codec::{CodecId, CodecSet, LlmCodec, RECORD_HEADER_LEN};
use llmfs::fs::{Fs, FsConfig};
use llmfs::model::EngineOptions;
use llmfs::store::{Durability, Store, ROOT_INO};

const BS: usize = 65536;

fn test_llm() -> CodecSet {
    let model = std::fs::read("models/test-int/model.onnx").unwrap();
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
/// reported and whether each was checked, after checking each report
/// against `data`.
fn reports(codecs: &CodecSet, record: &[u8], data: &[u8]) -> Vec<(usize, Checked)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let expect = data.to_vec();
    let back = progress::with_sink(
        Arc::new(move |p: &[u8], checked: Checked| {
            assert!(p == &expect[..p.len()], "a reported prefix differs");
            s.lock().unwrap().push((p.len(), checked));
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
    // Wave k codes bytes [k * 16384, (k + 1) * 16384): four reports, the
    // first three checked against their waves' checksums (the last wave
    // has none: the record's CRC-32C covers the block).
    use Checked::{No, Yes};
    assert_eq!(
        reports(&codecs, &record, &data),
        vec![(16384, Yes), (32768, Yes), (49152, Yes), (65536, No)]
    );
    // A block shorter than a wave reports once, at its end.
    let short = readme_prose(5000, 1);
    let record = codecs.encode_block_with(CodecId::Llm, &short).unwrap();
    assert_eq!(reports(&codecs, &record, &short), vec![(5000, No)]);
    // Without a sink nothing is reported (and nothing breaks).
    assert!(codecs.decode_block(&record, BS).unwrap() == short);
}

#[test]
fn cm_decoder_reports_its_prefix_every_4_kib() {
    let codecs = CodecSet::default();
    let data = readme_prose(BS - 100, 2);
    let record = codecs.encode_block_with(CodecId::Cm, &data).unwrap();
    // cm payloads carry no checksum short of the record's.
    let want: Vec<(usize, Checked)> = (1..=(BS - 100) / 4096)
        .map(|k| (k * 4096, Checked::No))
        .collect();
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

/// The end of an llm record lies in the stream of its last group, which
/// codes the block's last wave only: damage there leaves the first three
/// waves intact and their checksums matching.
fn damage_last_wave(rec: &mut [u8]) {
    let at = rec.len() - 40;
    rec[at] ^= 0x5a;
}

#[test]
fn checked_waves_of_a_block_read_without_early_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(BS, 6);
    let (fs, ino) = file_of(dir.path(), &data, CodecId::Llm, false, |r| {
        damage_last_wave(r)
    });
    // The first three waves matched their checksums: reads inside them are
    // answered from the checked prefix, although the block as a whole
    // fails (so they cannot have waited for it).
    for (off, len) in [(0usize, 4096usize), (16_000, 1000), (40_000, 9152)] {
        let got = fs.read(ino, off as u64, len as u32).unwrap();
        assert!(got == data[off..off + len], "{off}+{len}");
    }
    // The last wave's bytes come only with the verified block: EIO.
    let e = fs
        .read(ino, 50_000, 4096)
        .expect_err("a damaged wave read back");
    assert_eq!(e.errno(), libc::EIO, "{e}");
    assert!(fs.read(ino, 0, BS as u32).is_err());
    assert_eq!(fs.cache_stats().entries, 0, "a corrupt block was cached");
}

#[test]
fn a_wave_that_fails_its_checksum_is_never_handed_out() {
    for early in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = readme_prose(BS, 7);
        // The first wave's checksum (payload bytes 21..25) no longer
        // matches what the intact streams decode to.
        let damage = |rec: &mut Vec<u8>| rec[RECORD_HEADER_LEN + 21] ^= 1;
        let (fs, ino) = file_of(dir.path(), &data, CodecId::Llm, early, damage);
        let e = fs
            .read(ino, 0, 4096)
            .expect_err("a wave that fails its checksum");
        assert_eq!(e.errno(), libc::EIO, "{e}");
        assert!(e.to_string().contains("wave 0"), "{e}");
    }
}

#[test]
fn a_cancelled_decode_stops_with_an_error_that_is_not_corruption() {
    use llmfs::codec::CodecError;
    use std::sync::atomic::AtomicBool;
    for codec in [CodecId::Llm, CodecId::Cm] {
        let codecs = codecs_for(codec);
        let data = readme_prose(BS, 8);
        let record = codecs.encode_block_with(codec, &data).unwrap();
        let stop = Arc::new(AtomicBool::new(true));
        let got = progress::with_cancel(stop, || codecs.decode_block(&record, BS));
        assert_eq!(got, Err(CodecError::Cancelled), "{codec:?}");
        // Without the flag the same record decodes.
        assert!(codecs.decode_block(&record, BS).unwrap() == data);
    }
}

#[test]
fn dropping_the_filesystem_stops_its_decode_threads() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(2 * BS, 9);
    let (fs, ino) = file_of(dir.path(), &data, CodecId::Llm, false, |_| {});
    // Answered after wave 0 (checked); the decode thread goes on with the
    // rest of the block and reads block 1 ahead.
    assert!(fs.read(ino, 0, 4096).unwrap() == data[..4096]);
    drop(fs);
    // The decode threads have let go of the store: it opens again, and
    // the file reads back whole.
    let store = crate::common::open_store(dir.path(), BS);
    let fs = Fs::with_codecs(store, FsConfig::default(), codecs_for(CodecId::Llm)).unwrap();
    assert!(fs.read(ino, 0, data.len() as u32).unwrap() == data);
}

#[test]
fn decode_threads_see_the_stop_the_filesystem_gives() {
    // The flag `Fs::stop_decodes` sets (as dropping the filesystem does)
    // reaches the decode thread: a decode started after it stops at its
    // first step, and the read fails as stopped, not as corrupt.
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(BS, 10);
    let (fs, ino) = file_of(dir.path(), &data, CodecId::Llm, false, |_| {});
    fs.stop_decodes();
    let e = fs.read(ino, 0, 4096).expect_err("a stopped decode");
    assert_eq!(e.errno(), libc::EIO, "{e}");
    assert!(e.to_string().contains("decode stopped"), "{e}");
    assert!(!e.to_string().contains("corrupt"), "{e}");
}
