//! Store tests on a real SQLite file: creation, reopening, migrations,
//! version refusal, locking, permissions.

use std::os::unix::fs::PermissionsExt;

use llmfs::codec::{encode_record, CodecId, CodecSet, LzmaCodec, RawCodec, ZstdCodec};
use llmfs::store::{Durability, OpenOptions, Store, StoreError, DB_FILE, SCHEMA_VERSION};

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

#[test]
fn create_reopen_keeps_block_size_and_root() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let s = create(&dir, 16384).unwrap();
    assert_eq!(s.block_size(), 16384);
    drop(s);
    // A different block size on reopen is ignored: the volume keeps its own.
    let s = create(&dir, 65536).unwrap();
    assert_eq!(s.block_size(), 16384);
    let root = s.read(|m| m.inode(1)).unwrap().expect("root inode");
    assert_eq!(root.mode & libc::S_IFMT, libc::S_IFDIR);
    assert_eq!(root.nlink, 2);
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

#[test]
fn missing_store_is_an_error_without_create() {
    let t = tempfile::tempdir().unwrap();
    let err = Store::open(&t.path().join("nope"), &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
    assert!(!t.path().join("nope").exists(), "nothing created");
}

#[test]
fn bad_block_size_refused() {
    let t = tempfile::tempdir().unwrap();
    let err = create(&t.path().join("s"), 1000).unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
}

#[test]
fn newer_schema_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    drop(create(&dir, 65536).unwrap());
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(c);
    let err = create(&dir, 65536).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
    let ro = Store::open(
        &dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(ro, StoreError::TooNew { .. }), "{ro}");
}

/// A store written before LZMA2 records existed (schema version 2; version 3
/// changes no table) opens, is upgraded in place, keeps its blocks, and takes
/// LZMA2 records afterwards. Older builds then refuse it as too new.
#[test]
fn version_2_store_upgrades_and_keeps_its_blocks() {
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
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    c.pragma_update(None, "user_version", 2).unwrap();
    drop(c);

    let s = create(&dir, 65536).unwrap();
    let version: u32 = rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 3);
    let set = CodecSet::default();
    let got = s.read(|m| m.block(1, 0)).unwrap().unwrap();
    assert_eq!(got, zstd);
    assert_eq!(set.decode_block(&got, 65536).unwrap(), text);
    let got = s.read(|m| m.block(1, 1)).unwrap().unwrap();
    assert_eq!(set.decode_block(&got, 65536).unwrap(), b"raw bytes");

    let lzma = encode_record(&LzmaCodec, &text).unwrap();
    s.write(Durability::Durable, |m| {
        m.put_block(1, 0, CodecId::Lzma as u8, text.len() as u64, &lzma)
    })
    .unwrap();
    drop(s);
    let s = create(&dir, 65536).unwrap();
    let got = s.read(|m| m.block(1, 0)).unwrap().unwrap();
    assert_eq!(set.decode_block(&got, 65536).unwrap(), text);
}

#[test]
fn second_writer_refused_but_reader_allowed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let first = create(&dir, 65536).unwrap();
    let err = create(&dir, 65536).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    let reader = Store::open(
        &dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert!(reader.read(|m| m.inode(1)).unwrap().is_some());
    drop(first);
    create(&dir, 65536).expect("lock released on drop");
}

#[test]
fn failed_transaction_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = create(&t.path().join("s"), 65536).unwrap();
    let r: Result<(), StoreError> = s.write(Durability::Durable, |m| {
        m.put_block(1, 0, 0, 3, b"abc")?;
        Err(StoreError::Invalid("abort".into()))
    });
    assert!(r.is_err());
    let blocks = s.read(|m| m.block_infos(None)).unwrap();
    assert!(blocks.is_empty(), "rolled back");
    let root = s.read(|m| m.inode(1)).unwrap().unwrap();
    assert_eq!(root.stored_bytes, 0);
}

#[test]
fn stored_bytes_track_block_writes() {
    let t = tempfile::tempdir().unwrap();
    let s = create(&t.path().join("s"), 65536).unwrap();
    s.write(Durability::Normal, |m| {
        m.put_block(1, 0, 0, 3, b"abc")?;
        m.put_block(1, 1, 0, 5, b"abcde")?;
        m.put_block(1, 0, 0, 2, b"ab")?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap().stored_bytes, 7);
    s.write(Durability::Normal, |m| m.delete_blocks_from(1, 1))
        .unwrap();
    assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap().stored_bytes, 2);
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmfs"))
        .args(["stats", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
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
