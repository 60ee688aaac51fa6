//! The volume dictionary, without mounting: the archiver builds one from
//! the volume's cold data, primes cm blocks with it, and every block still
//! reads back, after a reopen too; a damaged or missing dictionary fails
//! the blocks that need it with the reason, never with other bytes.

use std::sync::atomic::AtomicBool;

use llmfs::archive::{archive_pass, Pass};
use llmfs::codec::{CodecId, CodecSet, RECORD_HEADER_LEN};
use llmfs::dictionary::DICTIONARY_SETTING;
use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{ArchiveTier, Feature, OpenOptions, Store, ROOT_INO};

const BS: usize = 4096;

fn every(tier: ArchiveTier, build_dictionary: bool) -> Pass {
    Pass {
        tier,
        written_before: i64::MAX,
        max_blocks: u64::MAX,
        build_dictionary,
    }
}

/// A volume holding two log files of 24 blocks each, archived (archive
/// tier, no model) with or without a dictionary. Returns the files.
fn archived_volume(dir: &std::path::Path, build_dictionary: bool) -> Vec<(u64, Vec<u8>)> {
    let fs = Fs::new(crate::common::open_store(dir, BS), FsConfig::default()).unwrap();
    let files: Vec<(u64, Vec<u8>)> = (0..2)
        .map(|i| {
            let data = crate::common::log_lines(24 * BS - 100 * i, i as u64 + 1);
            let ino = crate::common::create_file(&fs, ROOT_INO, &format!("app{i}.log"), &data);
            (ino, data)
        })
        .collect();
    fs.shutdown().unwrap();
    let codecs =
        CodecSet::default().with_dictionaries(llmfs::dictionary::load(fs.store()).unwrap());
    let stop = AtomicBool::new(false);
    let pass = every(ArchiveTier::Archive, build_dictionary);
    let stats = archive_pass(fs.store(), &codecs, pass, &stop, |_| {}).unwrap();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.blocks, 48);
    files
}

fn reopen(dir: &std::path::Path) -> Fs {
    Fs::new(crate::common::open_store(dir, BS), FsConfig::default()).unwrap()
}

fn read_all(fs: &Fs, ino: u64, len: usize) -> llmfs::error::Result<Vec<u8>> {
    fs.read(ino, 0, len as u32)
}

/// (primed cm blocks, all cm blocks, stored bytes of every block).
fn cm_blocks(store: &Store) -> (u64, u64, u64) {
    let infos = store.read(|m| m.block_infos(None)).unwrap();
    let mut primed = 0;
    let mut cm = 0;
    for b in &infos {
        if b.codec == CodecId::Cm as u8 {
            cm += 1;
            let rec = store.read(|m| m.block(b.ino, b.idx)).unwrap().unwrap();
            primed += u64::from(llmfs::codec::cm::payload_primed(&rec[RECORD_HEADER_LEN..]));
        }
    }
    (primed, cm, infos.iter().map(|b| b.stored_len).sum())
}

fn user_version(dir: &std::path::Path) -> u32 {
    let conn = rusqlite::Connection::open(dir.join(llmfs::store::DB_FILE)).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_archiver_builds_a_dictionary_that_primes_cm_blocks_and_they_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let files = archived_volume(dir.path(), true);
    let fs = reopen(dir.path());
    let sha = fs
        .store()
        .read(|m| m.volume_setting(DICTIONARY_SETTING))
        .unwrap()
        .expect("a dictionary was built");
    let dicts = fs.store().read(|m| m.dictionaries()).unwrap();
    assert_eq!(dicts.len(), 1);
    assert_eq!(dicts[0].sha256, sha);
    assert!(dicts[0].payload.len() < dicts[0].raw_len as usize / 2);
    let (primed, cm, _) = cm_blocks(fs.store());
    assert!(
        primed > 0 && primed == cm,
        "{primed} of {cm} cm blocks primed"
    );
    let features = fs.store().read(|m| m.features()).unwrap();
    assert!(features.contains(Feature::CmDictionary) && features.contains(Feature::Cm));
    // cm-v3 (10) is the highest feature: this build writes cm payload version 3.
    assert_eq!(user_version(dir.path()), 10);
    for (ino, data) in &files {
        assert_eq!(&read_all(&fs, *ino, data.len()).unwrap(), data);
    }
    let report = llmfs::fsck::check(
        fs.store(),
        &CodecSet::default().with_dictionaries(llmfs::dictionary::load(fs.store()).unwrap()),
        |_, _| {},
    )
    .unwrap();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn the_dictionary_pays_for_itself_on_logs() {
    let with = tempfile::tempdir().unwrap();
    let without = tempfile::tempdir().unwrap();
    archived_volume(with.path(), true);
    archived_volume(without.path(), false);
    let (s_with, s_without) = (reopen(with.path()), reopen(without.path()));
    let dict: u64 = s_with
        .store()
        .read(|m| m.dictionaries())
        .unwrap()
        .iter()
        .map(|d| d.payload.len() as u64)
        .sum();
    let (_, _, bytes_with) = cm_blocks(s_with.store());
    let (primed, _, bytes_without) = cm_blocks(s_without.store());
    assert_eq!(primed, 0);
    assert!(
        bytes_with + dict < bytes_without,
        "with a dictionary {bytes_with} + {dict} bytes, without {bytes_without}"
    );
    // A volume that never built one has no dictionaries table and no
    // feature `cm-dictionary` (its version is cm-v3's, for its cm blocks).
    assert!(!s_without
        .store()
        .read(|m| m.features())
        .unwrap()
        .contains(Feature::CmDictionary));
    assert!(!s_without
        .store()
        .read(|m| m.has_dictionaries_table())
        .unwrap());
}

fn primed_block(store: &Store) -> (u64, u64) {
    let infos = store.read(|m| m.block_infos(None)).unwrap();
    infos
        .iter()
        .find(|b| {
            b.codec == CodecId::Cm as u8 && {
                let rec = store.read(|m| m.block(b.ino, b.idx)).unwrap().unwrap();
                llmfs::codec::cm::payload_primed(&rec[RECORD_HEADER_LEN..])
            }
        })
        .map(|b| (b.ino, b.idx))
        .expect("a primed cm block")
}

fn damage_dictionary(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join(llmfs::store::DB_FILE)).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn a_damaged_or_missing_dictionary_fails_its_blocks_with_the_reason() {
    for (sql, reason) in [
        // One byte of the stored payload changed: decodes to other bytes
        // (or not at all); the digest check catches both.
        (
            "UPDATE dictionaries SET payload = CAST(substr(payload, 1, 40) || x'5A' || substr(payload, 42) AS BLOB)",
            "damaged",
        ),
        ("DELETE FROM dictionaries", "does not hold"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = archived_volume(dir.path(), true);
        damage_dictionary(dir.path(), sql);
        let fs = reopen(dir.path());
        let (ino, idx) = primed_block(fs.store());
        let err = fs
            .read(ino, idx * BS as u64, BS as u32)
            .expect_err("a primed block read without its dictionary");
        assert!(err.to_string().contains(reason), "{sql}: {err}");
        // Blocks of other codecs still read.
        let infos = fs.store().read(|m| m.block_infos(None)).unwrap();
        for b in infos.iter().filter(|b| b.codec != CodecId::Cm as u8) {
            let data = &files.iter().find(|f| f.0 == b.ino).unwrap().1;
            let at = b.idx as usize * BS;
            let end = (at + BS).min(data.len());
            assert_eq!(
                fs.read(b.ino, at as u64, BS as u32).unwrap(),
                &data[at..end]
            );
        }
        let codecs =
            CodecSet::default().with_dictionaries(llmfs::dictionary::load(fs.store()).unwrap());
        let report = llmfs::fsck::check(fs.store(), &codecs, |_, _| {}).unwrap();
        assert!(!report.is_clean(), "fsck passed a volume whose dictionary is {reason}");
    }
}

#[test]
fn an_older_store_opens_and_gets_a_dictionary_only_when_one_is_built() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(
            dir.path(),
            &OpenOptions {
                create: true,
                block_size: BS,
                read_only: false,
            },
        )
        .unwrap();
        assert!(!store.read(|m| m.has_dictionaries_table()).unwrap());
        assert!(store.read(|m| m.dictionaries()).unwrap().is_empty());
    }
    assert!(user_version(dir.path()) < 6);
}
