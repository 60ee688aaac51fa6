//! Store tests on a real SQLite file: creation, reopening, migrations,
//! version refusal, locking, permissions.

use std::os::unix::fs::PermissionsExt;

use llmfs::codec::{
    encode_record, CodecId, CodecSet, LzmaCodec, RawCodec, ZstdCodec, RECORD_HEADER_LEN,
};
use llmfs::store::{
    Durability, Feature, OpenOptions, Store, StoreError, DB_FILE, SCHEMA_VERSION, TABLES_VERSION,
};

fn create(dir: &std::path::Path, block_size: usize) -> Result<Store, StoreError> {
    Store::open(
        dir,
        &OpenOptions {
            create: true,
            block_size,
            read_only: false,
        },
    )
}

fn open_read_only(dir: &std::path::Path) -> Result<Store, StoreError> {
    Store::open(
        dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
}

fn set_user_version(dir: &std::path::Path, v: u32) {
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .pragma_update(None, "user_version", v)
        .unwrap();
}

#[test]
fn store_is_private() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    drop(create(&dir, 65536).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
}

fn user_version(dir: &std::path::Path) -> u32 {
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn features_row(dir: &std::path::Path) -> Option<String> {
    use rusqlite::OptionalExtension;
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("SELECT value FROM volume WHERE key = 'features'", [], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
}

/// What an llmfs that predates LZMA2 records (schema version 2, no feature
/// set) does on open: refuse a newer schema version.
fn older_build_opens(dir: &std::path::Path) -> bool {
    user_version(dir) <= 2
}

/// A store written before LZMA2 records existed (schema version 2) opens
/// read-write, keeps its blocks, and stays at version 2, so the older llmfs
/// still opens it, until its first LZMA2 record: that transaction records
/// the feature `lzma` and raises the version to 3, which the older llmfs
/// refuses.
#[test]
fn version_2_store_stays_open_to_older_builds_until_it_stores_lzma() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let text = b"a block written by an older llmfs; ".repeat(500);
    let zstd = encode_record(&ZstdCodec::new(19), &text).unwrap();
    let raw = encode_record(&RawCodec, b"raw bytes").unwrap();
    {
        let s = create(&dir, 65536).unwrap();
        s.write(Durability::Durable, |m| {
            m.put_block(1, 0, CodecId::Zstd as u8, text.len() as u64, &zstd)?;
            m.put_block(1, 1, CodecId::Raw as u8, 9, &raw)
        })
        .unwrap();
    }
    // A new store is created at the tables' version, with no features.
    assert_eq!(user_version(&dir), TABLES_VERSION);
    assert_eq!(TABLES_VERSION, 2);
    assert_eq!(SCHEMA_VERSION, 14);
    assert_eq!(features_row(&dir), None);

    let s = create(&dir, 65536).unwrap();
    assert!(
        older_build_opens(&dir),
        "opening read-write upgraded nothing"
    );
    let set = CodecSet::default();
    let got = s.read(|m| m.block(1, 0)).unwrap().unwrap();
    assert_eq!(got, zstd);
    assert_eq!(set.decode_block(&got, 65536).unwrap(), text);
    let got = s.read(|m| m.block(1, 1)).unwrap().unwrap();
    assert_eq!(set.decode_block(&got, 65536).unwrap(), b"raw bytes");
    // More zstd and raw records: still open to the older build.
    s.write(Durability::Normal, |m| {
        m.put_block(1, 2, CodecId::Zstd as u8, text.len() as u64, &zstd)
    })
    .unwrap();
    assert!(older_build_opens(&dir));

    // A transaction that would store an LZMA2 record but fails raises
    // nothing.
    let lzma = encode_record(&LzmaCodec, &text).unwrap();
    let failed: Result<(), StoreError> = s.write(Durability::Normal, |m| {
        m.put_block(1, 0, CodecId::Lzma as u8, text.len() as u64, &lzma)?;
        Err(StoreError::Invalid("give up".into()))
    });
    assert!(failed.is_err());
    assert!(older_build_opens(&dir));
    assert_eq!(features_row(&dir), None);
    assert!(s.read(|m| m.features()).unwrap().is_empty());

    s.write(Durability::Durable, |m| {
        m.put_block(1, 0, CodecId::Lzma as u8, text.len() as u64, &lzma)
    })
    .unwrap();
    assert_eq!(user_version(&dir), 3);
    assert!(!older_build_opens(&dir));
    assert_eq!(features_row(&dir).as_deref(), Some("lzma"));
    assert!(s.read(|m| m.features()).unwrap().contains(Feature::Lzma));
    drop(s);
    let s = create(&dir, 65536).unwrap();
    let got = s.read(|m| m.block(1, 0)).unwrap().unwrap();
    assert_eq!(set.decode_block(&got, 65536).unwrap(), text);

    // An llm record of an integer model (payload version 4) needs the
    // feature llm-int8-v1 and schema version 4; a float model's (version
    // 2) needs nothing. Only the header bytes matter to the gate.
    let mut llm = lzma.clone();
    llm[1] = CodecId::Llm as u8;
    llm[RECORD_HEADER_LEN] = 2;
    s.write(Durability::Durable, |m| {
        m.put_block(2, 0, CodecId::Llm as u8, text.len() as u64, &llm)
    })
    .unwrap();
    assert_eq!(user_version(&dir), 3);
    llm[RECORD_HEADER_LEN] = 4;
    s.write(Durability::Durable, |m| {
        m.put_block(2, 1, CodecId::Llm as u8, text.len() as u64, &llm)
    })
    .unwrap();
    assert_eq!(user_version(&dir), 4);
    assert_eq!(features_row(&dir).as_deref(), Some("lzma,llm-int8-v1"));
    // Version 5 (wave checksums) also needs llm-v5 and schema version 12.
    llm[RECORD_HEADER_LEN] = 5;
    s.write(Durability::Durable, |m| {
        m.put_block(2, 2, CodecId::Llm as u8, text.len() as u64, &llm)
    })
    .unwrap();
    assert_eq!(user_version(&dir), 12);
    assert_eq!(
        features_row(&dir).as_deref(),
        Some("lzma,llm-int8-v1,llm-v5")
    );
    assert!(!older_build_opens(&dir));
    // Version 6 (primed with a volume dictionary) needs llm-dictionary and
    // schema version 13.
    llm[RECORD_HEADER_LEN] = 6;
    s.write(Durability::Durable, |m| {
        m.put_block(2, 3, CodecId::Llm as u8, text.len() as u64, &llm)
    })
    .unwrap();
    assert_eq!(user_version(&dir), 13);
    assert_eq!(
        features_row(&dir).as_deref(),
        Some("lzma,llm-int8-v1,llm-v5,llm-dictionary")
    );
}

/// A store an llmfs before the feature set raised to version 3 (on its
/// first read-write open) may hold LZMA2 records without saying so: it is
/// taken to use `lzma`, recorded as such, and stays at version 3.
#[test]
fn version_3_store_without_a_feature_set_is_taken_to_use_lzma() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    drop(create(&dir, 65536).unwrap());
    set_user_version(&dir, 3);
    let ro = open_read_only(&dir).unwrap();
    assert!(
        ro.read(|m| m.features()).unwrap().is_empty(),
        "read-only writes nothing"
    );
    drop(ro);
    drop(create(&dir, 65536).unwrap());
    assert_eq!(user_version(&dir), 3);
    assert_eq!(features_row(&dir).as_deref(), Some("lzma"));
}

/// A version-1 store is brought to the tables' version, not past it.
#[test]
fn version_1_store_migrates_to_the_tables_version() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    std::fs::create_dir_all(&dir).unwrap();
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    c.execute_batch(include_str!("../../migrations/0001_initial.sql"))
        .unwrap();
    c.execute(
        "INSERT INTO volume(key, value) VALUES ('block_size', '65536'), ('created_ns', '0'), \
         ('sync_generation', '0')",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO inodes(ino, mode, uid, gid, nlink, atime_ns, mtime_ns, ctime_ns, crtime_ns) \
         VALUES (1, 16877, 0, 0, 2, 0, 0, 0, 0)",
        [],
    )
    .unwrap();
    c.pragma_update(None, "user_version", 1).unwrap();
    drop(c);
    let ro = open_read_only(&dir).unwrap_err();
    assert!(ro.to_string().contains("needs migrating"), "{ro}");
    let s = create(&dir, 65536).unwrap();
    assert_eq!(user_version(&dir), 2);
    assert!(s
        .read(|m| m.blocks_to_archive(llmfs::store::ArchiveTier::Archive, i64::MAX, 10))
        .unwrap()
        .is_empty());
}

/// `stats --json` is JSON whatever the store's path holds: a control
/// character and bytes that are not UTF-8 (the path is shown lossily, as
/// JSON strings are Unicode).
#[test]
fn stats_json_parses_for_a_path_with_control_and_non_utf8_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t
        .path()
        .join(OsStr::from_bytes(b"st\x01ore \"q\" \\ \xff\xfe\n"));
    let s = create(&dir, 4096).unwrap();
    drop(s);
    let v = crate::common::stats_json(&dir);
    assert_eq!(v["store"], dir.to_string_lossy().as_ref());
    assert!(v["store"]
        .as_str()
        .unwrap()
        .contains("st\u{1}ore \"q\" \\ "));
    assert_eq!(v["block_size"], 4096);
    assert_eq!(v["files"], 0);
    assert_eq!(v["directories"], 1);
    assert_eq!(v["model"], serde_json::Value::Null);
    assert_eq!(v["codecs"], serde_json::json!([]));
}

/// Commits reach the main database file without any request paying for a
/// checkpoint: the background thread moves them out of the WAL. A copy of
/// the main file alone, taken while the store is still open, holds them.
#[test]
fn background_checkpoint_moves_commits_into_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path(), 4096).unwrap();
    for i in 0..20 {
        store
            .write(Durability::Normal, |m| {
                m.set_volume_setting(&format!("test_key_{i}"), "v")
            })
            .unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // The main file alone: no WAL beside it.
        std::fs::copy(dir.path().join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
        let conn = rusqlite::Connection::open(copy.path().join(DB_FILE)).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM volume WHERE key LIKE 'test_key_%'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        drop(conn);
        let _ = std::fs::remove_file(copy.path().join(format!("{DB_FILE}-wal")));
        if n == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the main file holds {n} of 20 commits after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(store);
}

/// A checked write (`Store::write_checked`: no savepoint of its own) that
/// fails before changing anything leaves its batch as it was; one that
/// fails after a change takes the batch with it, as a crash would, and
/// the next sync says so, once.
#[test]
fn checked_writes_keep_their_batch_unless_they_fail_after_a_change() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let store = create(&dir, 4096).unwrap();
    let set = |k: &str| {
        store
            .write_checked(Durability::Normal, |m| m.set_volume_setting(k, "v"))
            .unwrap()
    };
    let seen = |k: &str| store.read(|m| m.volume_setting(k)).unwrap();

    set("k1");
    let refused = store.write_checked(Durability::Normal, |m| {
        if m.volume_setting("k1")?.is_some() {
            return Err(StoreError::Invalid("k1 exists".into()));
        }
        m.set_volume_setting("k2", "v")
    });
    assert!(refused.is_err());
    set("k3");
    store.sync().expect("nothing was lost");
    assert_eq!(volume_row(&dir, "k1").as_deref(), Some("v"));
    assert_eq!(volume_row(&dir, "k2"), None);
    assert_eq!(volume_row(&dir, "k3").as_deref(), Some("v"));

    set("k4");
    let failed = store.write_checked(Durability::Normal, |m| {
        m.set_volume_setting("k5", "v")?;
        Err::<(), _>(StoreError::Invalid("on purpose, after a change".into()))
    });
    assert!(failed.is_err());
    assert_eq!(seen("k4"), None, "the batch went with the failed write");
    assert_eq!(seen("k5"), None);
    assert!(
        store.sync().is_err(),
        "the next sync reports the lost batch"
    );
    store.sync().expect("reported once");
    set("k6");
    store.sync().unwrap();
    assert_eq!(volume_row(&dir, "k3").as_deref(), Some("v"));
    assert_eq!(volume_row(&dir, "k4"), None);
    assert_eq!(volume_row(&dir, "k6").as_deref(), Some("v"));
}

fn volume_row(dir: &std::path::Path, key: &str) -> Option<String> {
    use rusqlite::OptionalExtension;
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("SELECT value FROM volume WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
}

/// Group commit (src/store/sqlite/batch.rs): a normal write is seen at
/// once through the store, by another connection once its batch commits
/// (on `sync`, on the committer's deadline, or when the store closes), and
/// a failed operation in a batch rolls back alone.
#[test]
fn normal_writes_commit_in_batches_and_fail_alone() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let store = create(&dir, 4096).unwrap();
    let set = |k: &str| {
        store
            .write(Durability::Normal, |m| m.set_volume_setting(k, "v"))
            .unwrap()
    };
    let seen = |k: &str| store.read(|m| m.volume_setting(k)).unwrap();

    set("k1");
    assert_eq!(seen("k1").as_deref(), Some("v"), "the store sees its batch");
    store.sync().unwrap();
    assert_eq!(volume_row(&dir, "k1").as_deref(), Some("v"), "sync commits");

    // A failing operation inside a batch: its change goes, the batch's
    // other operations stay.
    set("k2");
    let failed = store.write(Durability::Normal, |m| {
        m.set_volume_setting("k3", "v")?;
        Err::<(), _>(StoreError::Invalid("on purpose".into()))
    });
    assert!(failed.is_err());
    set("k4");
    assert_eq!(seen("k3"), None);
    assert_eq!(seen("k2").as_deref(), Some("v"));

    // The committer commits without a sync (waiting, not timing it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while volume_row(&dir, "k4").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch was not committed in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(volume_row(&dir, "k2").as_deref(), Some("v"));
    assert_eq!(volume_row(&dir, "k3"), None);

    // Closing the store commits what is open.
    set("k5");
    drop(store);
    let store = open_read_only(&dir).unwrap();
    assert_eq!(
        store.read(|m| m.volume_setting("k5")).unwrap().as_deref(),
        Some("v")
    );
}
