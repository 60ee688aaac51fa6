//! The neural codec inside a volume, without mounting: the synchronous
//! write path, the archiver, and its atomic swap (a block rewritten while
//! it is being re-encoded keeps the new data). Real SQLite store, real
//! default model. Small blocks keep the model's work per block small.

use crate::common::{fresh_stores, readme_prose, Kind};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use llmfs::archive::{archive_pass, ensure_model_recorded, volume_codec, Pass};
use llmfs::codec::{CodecId, CodecSet};
use llmfs::fs::{Fs, FsConfig, WriteEncoding, RAW_INTERIM_MAX_BYTES};
use llmfs::model::EngineOptions;
use llmfs::store::{ArchiveTier, ByteTotals, Durability, OpenOptions, Store, ROOT_INO};

const BS: usize = 4096;

/// A pass of `tier` over every block it has still to take.
fn every(tier: ArchiveTier) -> Pass {
    Pass {
        tier,
        written_before: i64::MAX,
        max_blocks: u64::MAX,
        build_dictionary: true,
    }
}

fn open_store(dir: &std::path::Path) -> Store {
    crate::common::open_store(dir, BS)
}

fn llm_codecs(store: &Store) -> CodecSet {
    let llm = volume_codec(store, None, &EngineOptions::default()).unwrap();
    assert!(llm.can_encode(), "default model failed its self-test");
    CodecSet::with_llm(Some(llm))
}

fn create(fs: &Fs, name: &str, data: &[u8]) -> u64 {
    crate::common::create_file(fs, ROOT_INO, name, data)
}

fn codec_blocks(store: &Store, codec: CodecId) -> u64 {
    let t = store.read(|m| m.totals()).unwrap();
    t.per_codec
        .iter()
        .filter(|c| c.codec == codec as u8)
        .map(|c| c.blocks)
        .sum()
}

#[test]
fn sync_mode_writes_llm_blocks_that_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(6 * BS + 123, 0);
    let ino = {
        let store = open_store(dir.path());
        let codecs = llm_codecs(&store);
        ensure_model_recorded(&store, codecs.llm().unwrap()).unwrap();
        let fs = Fs::with_codecs(
            store,
            FsConfig {
                write_encoding: WriteEncoding::Best,
                ..FsConfig::default()
            },
            codecs,
        )
        .unwrap();
        let ino = create(&fs, "prose.txt", &data);
        fs.shutdown().unwrap();
        assert!(
            codec_blocks(fs.store(), CodecId::Llm) > 0,
            "the model won no block of prose"
        );
        ino
    };
    // Reopened: the volume's recorded model decodes its blocks.
    let store = open_store(dir.path());
    let codecs = llm_codecs(&store);
    let fs = Fs::with_codecs(store, FsConfig::default(), codecs).unwrap();
    assert_eq!(fs.read(ino, 0, data.len() as u32 + 10).unwrap(), data);
    let report = llmfs::fsck::check(fs.store(), &llm_codecs(fs.store()), |_, _| {}).unwrap();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn archiver_moves_cold_blocks_to_the_model_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fs = Fs::with_codecs(store, FsConfig::default(), CodecSet::default()).unwrap();
    let data = readme_prose(5 * BS, 1);
    let ino = create(&fs, "a.txt", &data);
    let noise: Vec<u8> = (0..2 * BS as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let ino2 = create(&fs, "noise.bin", &noise);
    assert_eq!(
        codec_blocks(fs.store(), CodecId::Llm),
        0,
        "writes use the fast codec"
    );
    let before = fs.store().read(|m| m.archive_totals()).unwrap();
    assert!(before.pending.raw_bytes > 0, "blocks pending");

    let codecs = llm_codecs(fs.store());
    let stop = AtomicBool::new(false);
    let stats = archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {}).unwrap();
    assert_eq!(stats.blocks, 7);
    assert!(
        stats.to_llm > 0 && stats.stored_after < stats.stored_before,
        "{stats:?}"
    );
    let after = fs.store().read(|m| m.archive_totals()).unwrap();
    assert_eq!(after.pending, ByteTotals::default(), "nothing left pending");
    // A second pass finds nothing to do.
    assert_eq!(
        archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {})
            .unwrap()
            .blocks,
        0
    );

    // The filesystem's own codecs must include the model to read llm blocks.
    drop(fs);
    let store = open_store(dir.path());
    let fs = Fs::with_codecs(
        store,
        FsConfig::default(),
        llm_codecs(&open_store_ro(dir.path())),
    )
    .unwrap();
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);
    assert_eq!(fs.read(ino2, 0, noise.len() as u32).unwrap(), noise);
}

#[test]
fn archive_tier_then_deep_tier() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fs = Fs::with_codecs(store, FsConfig::default(), CodecSet::default()).unwrap();
    let data = readme_prose(4 * BS, 7);
    let ino = create(&fs, "a.txt", &data);
    let stop = AtomicBool::new(false);

    // The archive tier needs no model and writes none.
    let model_free = CodecSet::default();
    let first = archive_pass(
        fs.store(),
        &model_free,
        every(ArchiveTier::Archive),
        &stop,
        |_| {},
    )
    .unwrap();
    assert_eq!(first.blocks, 4);
    assert_eq!(first.to_llm, 0);
    assert!(first.stored_after < first.stored_before, "{first:?}");
    assert_eq!(codec_blocks(fs.store(), CodecId::Llm), 0);
    let totals = fs.store().read(|m| m.archive_totals()).unwrap();
    assert_eq!(totals.pending, ByteTotals::default());
    assert_eq!(totals.archive.raw_bytes, data.len() as u64);
    assert_eq!(totals.archive.stored_bytes, first.stored_after);
    assert_eq!(totals.deep, ByteTotals::default());
    // Taken once: a second archive-tier pass finds nothing.
    let again = archive_pass(
        fs.store(),
        &model_free,
        every(ArchiveTier::Archive),
        &stop,
        |_| {},
    );
    assert_eq!(again.unwrap().blocks, 0);
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);

    // A deep pass with a budget stops at it, then takes the rest.
    let codecs = llm_codecs(fs.store());
    let budget = Pass {
        max_blocks: 1,
        ..every(ArchiveTier::Deep)
    };
    let one = archive_pass(fs.store(), &codecs, budget, &stop, |_| {}).unwrap();
    assert_eq!(one.blocks, 1);
    let rest = archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {}).unwrap();
    assert_eq!(rest.blocks, 3);
    assert!(one.to_llm + rest.to_llm > 0, "{one:?} {rest:?}");
    let totals = fs.store().read(|m| m.archive_totals()).unwrap();
    assert_eq!(totals.archive, ByteTotals::default());
    assert_eq!(totals.deep.raw_bytes, data.len() as u64);
    assert!(totals.deep.stored_bytes < first.stored_after, "{totals:?}");
    assert_eq!(
        archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {})
            .unwrap()
            .blocks,
        0
    );

    // A write takes the block back to pending; the data reads back.
    drop(fs);
    let fs = Fs::with_codecs(open_store(dir.path()), FsConfig::default(), codecs).unwrap();
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);
    let fh = fs.open(ino, libc::O_RDWR).unwrap();
    fs.write(ino, fh, 0, &readme_prose(BS, 8)).unwrap();
    fs.fsync(ino).unwrap();
    fs.release(ino, fh).unwrap();
    let totals = fs.store().read(|m| m.archive_totals()).unwrap();
    assert_eq!(totals.pending.raw_bytes, BS as u64, "{totals:?}");
}

/// `compress=background`'s writes: interim zstd records, larger than the
/// fast path's on prose, that the archive tier replaces with its smallest
/// encoding; any mount reads both.
#[test]
fn interim_writes_are_replaced_by_the_archive_tier() {
    let data = readme_prose(6 * BS, 11);
    let stored = |encoding| {
        let dir = tempfile::tempdir().unwrap();
        let config = FsConfig {
            write_encoding: encoding,
            ..FsConfig::default()
        };
        let fs = Fs::with_codecs(open_store(dir.path()), config, CodecSet::default()).unwrap();
        let ino = create(&fs, "a.txt", &data);
        fs.shutdown().unwrap();
        let totals = fs.store().read(|m| m.archive_totals()).unwrap();
        assert_eq!(totals.pending.raw_bytes, data.len() as u64);
        assert_eq!(codec_blocks(fs.store(), CodecId::Zstd), 6);
        (dir, fs, ino, totals.pending.stored_bytes)
    };
    let (_fast_dir, _fast, _, fast_bytes) = stored(WriteEncoding::Fast);
    let (dir, fs, ino, interim_bytes) = stored(WriteEncoding::Interim);
    assert!(
        interim_bytes > fast_bytes,
        "interim {interim_bytes} vs fast {fast_bytes}"
    );
    // Another mount (a set that never wrote them) reads the interim records.
    drop(fs);
    let fs = Fs::with_codecs(
        open_store(dir.path()),
        FsConfig::default(),
        CodecSet::default(),
    )
    .unwrap();
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);

    let stop = AtomicBool::new(false);
    let pass = archive_pass(
        fs.store(),
        &CodecSet::default(),
        every(ArchiveTier::Archive),
        &stop,
        |_| {},
    )
    .unwrap();
    assert_eq!(pass.blocks, 6);
    assert_eq!(pass.stored_before, interim_bytes);
    assert!(
        pass.stored_after < fast_bytes,
        "{pass:?} vs fast {fast_bytes}"
    );
    assert_eq!(codec_blocks(fs.store(), CodecId::Zstd), 0);
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);
}

/// A small file's close with the interim encoding stores its blocks raw
/// while the disk has room (`FsConfig::raw_interim_min_free`), and the
/// archive tier encodes them as it would have re-encoded interim records;
/// a larger write-back, a disk short of room and a store whose free space
/// cannot be seen (PostgreSQL) encode at once.
#[test]
fn small_files_are_stored_raw_until_the_archiver_takes_them() {
    let small = readme_prose(10 * BS, 3);
    let large = readme_prose(RAW_INTERIM_MAX_BYTES + BS, 4);
    let config = |min_free| FsConfig {
        write_encoding: WriteEncoding::Interim,
        raw_interim_min_free: min_free,
        ..FsConfig::default()
    };
    for backend in fresh_stores() {
        let raw_here = backend.kind == Kind::Sqlite;
        let fs = Fs::new(backend.create(BS).unwrap(), config(Some(0))).unwrap();
        let ino = create(&fs, "small.txt", &small);
        let raw_blocks = codec_blocks(fs.store(), CodecId::Raw);
        assert_eq!(
            raw_blocks,
            if raw_here { 10 } else { 0 },
            "{:?}",
            backend.kind
        );
        assert_eq!(fs.read(ino, 0, small.len() as u32).unwrap(), small);

        let stop = AtomicBool::new(false);
        let codecs = CodecSet::default();
        let pass = archive_pass(
            fs.store(),
            &codecs,
            every(ArchiveTier::Archive),
            &stop,
            |_| {},
        )
        .unwrap();
        assert_eq!(pass.blocks, 10);
        assert!(
            pass.stored_after * 2 < small.len() as u64,
            "{:?}: {pass:?}",
            backend.kind
        );
        assert_eq!(codec_blocks(fs.store(), CodecId::Raw), 0);
        assert_eq!(fs.read(ino, 0, small.len() as u32).unwrap(), small);

        // More than a small file's bytes in one write-back: encoded.
        let ino = create(&fs, "large.txt", &large);
        assert_eq!(
            codec_blocks(fs.store(), CodecId::Raw),
            0,
            "{:?}",
            backend.kind
        );
        assert_eq!(fs.read(ino, 0, large.len() as u32).unwrap(), large);
    }

    // A disk without the room asked for: encoded.
    let dir = tempfile::tempdir().unwrap();
    let fs = Fs::new(open_store(dir.path()), config(Some(u64::MAX))).unwrap();
    create(&fs, "small.txt", &small);
    assert_eq!(codec_blocks(fs.store(), CodecId::Raw), 0);
    assert_eq!(codec_blocks(fs.store(), CodecId::Zstd), 10);
}

fn open_store_ro(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn swap_is_refused_for_a_block_rewritten_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let set = CodecSet::default();
    let a = set.encode_block(&readme_prose(BS, 2)).unwrap();
    let b = set.encode_block(&readme_prose(BS, 3)).unwrap();
    store
        .write(Durability::Normal, |m| {
            m.put_block(7, 0, CodecId::Zstd as u8, BS as u64, &a)
        })
        .unwrap();
    // The archiver read `a`; a writer replaced it with `b`; the swap of a
    // re-encoding of `a` must not go in.
    store
        .write(Durability::Normal, |m| {
            m.put_block(7, 0, CodecId::Zstd as u8, BS as u64, &b)
        })
        .unwrap();
    let swapped = store
        .write(Durability::Normal, |m| {
            m.swap_archived_block(
                7,
                0,
                &a,
                Some((CodecId::Raw as u8, b"whatever")),
                ArchiveTier::Deep,
            )
        })
        .unwrap();
    assert!(!swapped);
    assert_eq!(store.read(|m| m.block(7, 0)).unwrap().unwrap(), b);
    // With the current record, it does.
    let swapped = store
        .write(Durability::Normal, |m| {
            m.swap_archived_block(7, 0, &b, None, ArchiveTier::Archive)
        })
        .unwrap();
    assert!(swapped);
}

#[test]
fn archiver_racing_writers_keeps_every_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fs = Arc::new(Fs::with_codecs(store, FsConfig::default(), CodecSet::default()).unwrap());
    let ino = create(&fs, "hot.txt", &readme_prose(8 * BS, 4));
    let codecs = llm_codecs(fs.store());
    let stop = Arc::new(AtomicBool::new(false));
    let archiver = {
        let (fs, stop) = (Arc::clone(&fs), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut total = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                total += archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {})
                    .unwrap()
                    .changed;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            (total, codecs)
        })
    };
    // Rewrite blocks while the archiver works on them.
    let mut expect = readme_prose(8 * BS, 4);
    for round in 0..12usize {
        let fh = fs.open(ino, libc::O_RDWR).unwrap();
        let block = round * 5 % 8;
        let new = readme_prose(BS, 10 + round);
        fs.write(ino, fh, (block * BS) as u64, &new).unwrap();
        expect[block * BS..(block + 1) * BS].copy_from_slice(&new);
        fs.fsync(ino).unwrap();
        fs.release(ino, fh).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (_changed, codecs) = archiver.join().unwrap();
    // A final pass, then read through a filesystem that can decode llm.
    let stop = AtomicBool::new(false);
    archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {}).unwrap();
    drop(fs);
    let store = open_store(dir.path());
    let fs = Fs::with_codecs(store, FsConfig::default(), codecs).unwrap();
    assert!(
        fs.read(ino, 0, expect.len() as u32).unwrap() == expect,
        "a write was lost"
    );
    let report = llmfs::fsck::check(fs.store(), &llm_codecs(fs.store()), |_, _| {}).unwrap();
    assert!(report.is_clean(), "{report}");
}

/// Writes `data` as one file whose every block is stored with `codec`
/// (whether or not it wins); returns its inode.
fn file_of_blocks(dir: &std::path::Path, data: &[u8], codecs: &CodecSet, codec: CodecId) -> u64 {
    let fs = Fs::with_codecs(open_store(dir), FsConfig::default(), CodecSet::default()).unwrap();
    let ino = create(&fs, "seq.txt", data);
    fs.shutdown().unwrap();
    for (idx, raw) in data.chunks(BS).enumerate() {
        let rec = codecs.encode_block_with(codec, raw).unwrap();
        fs.store()
            .write(Durability::Normal, |m| {
                m.put_block(ino, idx as u64, codec as u8, raw.len() as u64, &rec)
            })
            .unwrap();
    }
    assert_eq!(
        codec_blocks(fs.store(), codec),
        data.len().div_ceil(BS) as u64
    );
    ino
}

/// Reads `ino` block by block, as a sequential reader does; returns the
/// data and how many blocks it found decoded ahead: block cache hits, and
/// reads that waited on the read-ahead's decode still running (a read
/// returns once its own block is decoded, not after the one read ahead).
/// Each block is decoded once.
fn read_sequentially(fs: &Fs, ino: u64, blocks: u64) -> (Vec<u8>, u64) {
    let mut back = Vec::new();
    for i in 0..blocks {
        back.extend(fs.read(ino, i * BS as u64, BS as u32).unwrap());
    }
    let shared = fs.shared_decode_stats();
    assert_eq!(
        shared.started, blocks,
        "a block was decoded twice: {shared:?}"
    );
    (back, fs.cache_stats().hits + shared.joined)
}

#[test]
fn sequential_reads_find_the_next_llm_block_decoded_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(4 * BS, 5);
    let ino = {
        let store = open_store(dir.path());
        let codecs = llm_codecs(&store);
        ensure_model_recorded(&store, codecs.llm().unwrap()).unwrap();
        drop(store);
        file_of_blocks(dir.path(), &data, &codecs, CodecId::Llm)
    };
    let store = open_store(dir.path());
    let (reader, ahead) = (llm_codecs(&store), llm_codecs(&store));
    let fs = Fs::with_codecs(store, FsConfig::default(), reader)
        .unwrap()
        .with_read_ahead(ahead);
    let (back, hits) = read_sequentially(&fs, ino, 4);
    assert!(back == data);
    // Blocks 0 and 2 were decoded on demand, 1 and 3 ahead of the reader.
    assert!(hits >= 2, "{hits} hits");
}

#[test]
fn sequential_reads_find_the_next_cm_block_decoded_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(4 * BS, 6);
    let ino = file_of_blocks(dir.path(), &data, &CodecSet::default(), CodecId::Cm);
    let fs = Fs::with_codecs(
        open_store(dir.path()),
        FsConfig::default(),
        CodecSet::default(),
    )
    .unwrap()
    .with_read_ahead(CodecSet::default());
    let (back, hits) = read_sequentially(&fs, ino, 4);
    assert!(back == data);
    // Blocks 0 and 2 were decoded on demand, 1 and 3 on the other core.
    assert!(hits >= 2, "{hits} hits");
}

/// The deep tier with a volume dictionary: the archiver builds one from
/// the blocks waiting, and the model codes blocks primed with it (llm
/// payload version 6, feature llm-dictionary, schema version 13). Which
/// codec the archiver keeps is the smallest record, and on a block that the
/// dictionary holds whole that is cm's, so the test stores the model's
/// record of one block itself; it reads back after a reopen and passes
/// fsck; without the dictionary its reads fail with the reason, never with
/// other bytes.
#[test]
fn deep_tier_primes_llm_blocks_with_the_volume_dictionary() {
    use llmfs::codec::RECORD_HEADER_LEN;
    use llmfs::store::Feature;
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(18 * BS, 2);
    let ino = {
        let fs = Fs::with_codecs(
            open_store(dir.path()),
            FsConfig::default(),
            CodecSet::default(),
        )
        .unwrap();
        let ino = create(&fs, "notes.txt", &data);
        fs.shutdown().unwrap();
        let codecs =
            llm_codecs(fs.store()).with_dictionaries(llmfs::dictionary::load(fs.store()).unwrap());
        let stop = AtomicBool::new(false);
        let stats =
            archive_pass(fs.store(), &codecs, every(ArchiveTier::Deep), &stop, |_| {}).unwrap();
        assert_eq!((stats.blocks, stats.failed), (18, 0), "{stats:?}");
        let dicts = codecs.dictionaries().unwrap();
        let digest = dicts.current().expect("the archiver built a dictionary");
        // Block 5 as the model codes it with the volume's codecs.
        let raw = &data[5 * BS..6 * BS];
        let rec = codecs.encode_block_with(CodecId::Llm, raw).unwrap();
        assert_eq!(rec[RECORD_HEADER_LEN], 6, "llm payload version 6");
        assert_eq!(
            llmfs::codec::llm::payload_dictionary(&rec[RECORD_HEADER_LEN..]),
            Some(digest)
        );
        fs.store()
            .write(Durability::Durable, |m| {
                m.put_block(ino, 5, CodecId::Llm as u8, BS as u64, &rec)
            })
            .unwrap();
        ino
    };
    let store = open_store(dir.path());
    let features = store.read(|m| m.features()).unwrap();
    assert!(features.contains(Feature::LlmDictionary), "{features:?}");
    let codecs = llm_codecs(&store);
    let fs = Fs::with_codecs(store, FsConfig::default(), codecs).unwrap();
    assert_eq!(fs.read(ino, 0, data.len() as u32).unwrap(), data);
    let checked =
        llm_codecs(fs.store()).with_dictionaries(llmfs::dictionary::load(fs.store()).unwrap());
    let report = llmfs::fsck::check(fs.store(), &checked, |_, _| {}).unwrap();
    assert!(report.is_clean(), "{report}");
    drop(fs);

    let conn = rusqlite::Connection::open(dir.path().join(llmfs::store::DB_FILE)).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 13);
    conn.execute_batch("DELETE FROM dictionaries").unwrap();
    drop(conn);
    let store = open_store(dir.path());
    let codecs = llm_codecs(&store);
    let fs = Fs::with_codecs(store, FsConfig::default(), codecs).unwrap();
    let e = fs
        .read(ino, 5 * BS as u64, BS as u32)
        .expect_err("a primed llm block read without its dictionary");
    assert!(e.to_string().contains("does not hold"), "{e}");
}

/// `read_unless_slow`, the FUSE workers' read: a cm block that misses the
/// cache is left to a thread that may wait (`None`), a cached one, a hole,
/// bytes past the end and a zstd block are read at once; the waiting
/// read returns the same bytes and caches them.
#[test]
fn reads_that_would_wait_for_a_slow_decode_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = readme_prose(2 * BS, 7);
    let ino = file_of_blocks(dir.path(), &data, &CodecSet::default(), CodecId::Cm);
    let fs = Fs::with_codecs(
        open_store(dir.path()),
        FsConfig::default(),
        CodecSet::default(),
    )
    .unwrap();
    assert_eq!(fs.read_unless_slow(ino, 10, 100).unwrap(), None);
    assert_eq!(fs.read_unless_slow(ino, BS as u64, 10).unwrap(), None);
    assert_eq!(fs.read(ino, 10, 100).unwrap(), &data[10..110]);
    assert_eq!(
        fs.read_unless_slow(ino, 0, BS as u32).unwrap().as_deref(),
        Some(&data[..BS]),
        "cached"
    );
    assert_eq!(
        fs.read_unless_slow(ino, 3 * BS as u64, 10)
            .unwrap()
            .as_deref(),
        Some(&[][..]),
        "past the end"
    );
    let z = create(&fs, "z.txt", &data);
    assert_eq!(
        fs.read_unless_slow(z, 5, 50).unwrap().as_deref(),
        Some(&data[5..55]),
        "zstd"
    );
}
