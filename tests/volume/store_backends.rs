//! Store tests that hold for every backend, each run on a fresh SQLite
//! store and (when LLMFS_TEST_PG names a server) a fresh PostgreSQL one:
//! creation and reopening, version and feature refusal, the writer lock,
//! transactions' atomicity and space accounting, durable commits.

use llmfs::codec::{encode_record, CodecId, LzmaCodec, ZstdCodec};
use llmfs::store::{Durability, OpenOptions, StoreError, SCHEMA_VERSION};

use crate::common::{fresh_stores, FreshStore, Kind};

/// Runs `test` on a fresh store of each backend, saying which on failure.
/// A new regular file's inode (0644, owned by root, one link) made at
/// `time_ns`.
fn regular_file(time_ns: i64) -> llmfs::store::NewInode {
    llmfs::store::NewInode {
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        nlink: 1,
        rdev: 0,
        time_ns,
        target: None,
    }
}

fn on_each_backend(test: impl Fn(&FreshStore)) {
    for s in fresh_stores() {
        println!("backend: {:?} ({})", s.kind, s.location);
        test(&s);
    }
}

#[test]
fn create_reopen_keeps_block_size_and_root() {
    on_each_backend(|fresh| {
        let s = fresh.create(16384).unwrap();
        assert_eq!(s.block_size(), 16384);
        drop(s);
        // A different block size on reopen is ignored: the volume keeps its own.
        let s = fresh.create(65536).unwrap();
        assert_eq!(s.block_size(), 16384);
        let root = s.read(|m| m.inode(1)).unwrap().expect("root inode");
        assert_eq!(root.mode & libc::S_IFMT, libc::S_IFDIR);
        assert_eq!(root.nlink, 2);
        // New inodes are numbered after the root.
        let ino = s
            .write(Durability::Normal, |m| m.insert_inode(&regular_file(1)))
            .unwrap()
            .ino;
        assert_eq!(ino, 2);
        assert_eq!(fresh.schema_version(), llmfs::store::TABLES_VERSION);
    });
}

#[test]
fn missing_store_is_an_error_without_create() {
    on_each_backend(|fresh| {
        let err = fresh.open(&OpenOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
        let err = fresh.open_read_only().unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
        // Nothing was created: creating now makes a new volume.
        let s = fresh.create(4096).unwrap();
        assert_eq!(s.block_size(), 4096);
    });
}

#[test]
fn bad_block_size_refused() {
    on_each_backend(|fresh| {
        let err = fresh.create(1000).unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
    });
}

#[test]
fn newer_schema_refused() {
    on_each_backend(|fresh| {
        drop(fresh.create(65536).unwrap());
        fresh.set_schema_version(SCHEMA_VERSION + 1);
        let err = fresh.create(65536).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer"), "{err}");
        let ro = fresh.open_read_only().unwrap_err();
        assert!(matches!(ro, StoreError::TooNew { .. }), "{ro}");
    });
}

#[test]
fn unknown_feature_refused() {
    on_each_backend(|fresh| {
        drop(fresh.create(65536).unwrap());
        fresh.sql("INSERT INTO volume(key, value) VALUES ('features', 'lzma,zpaq')");
        fresh.set_schema_version(3);
        for read_only in [false, true] {
            let err = fresh
                .open(&OpenOptions {
                    read_only,
                    ..OpenOptions::default()
                })
                .unwrap_err();
            assert!(matches!(err, StoreError::UnknownFeatures(_)), "{err}");
            assert!(
                err.to_string().contains("(zpaq)") && err.to_string().contains("upgrade llmfs"),
                "{err}"
            );
        }
    });
}

/// The first LZMA2 record, written by the archiver's swap, records the
/// feature and raises the version in its own transaction.
#[test]
fn archived_lzma_swap_records_the_feature() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let text = b"0123456789abcdef".repeat(1000);
        let zstd = encode_record(&ZstdCodec::new(3), &text).unwrap();
        let lzma = encode_record(&LzmaCodec, &text).unwrap();
        s.write(Durability::Normal, |m| {
            m.put_block(1, 0, CodecId::Zstd as u8, text.len() as u64, &zstd)
        })
        .unwrap();
        assert_eq!(fresh.schema_version(), 2);
        let swap = |old: &[u8]| {
            s.write(Durability::Normal, |m| {
                m.swap_archived_block(
                    1,
                    0,
                    old,
                    Some((CodecId::Lzma as u8, &lzma)),
                    llmfs::store::ArchiveTier::Archive,
                )
            })
            .unwrap()
        };
        assert!(
            !swap(b"not the block's record"),
            "a rewritten block keeps its data"
        );
        assert!(swap(&zstd));
        // Another connection sees the swap once its batch commits (SQLite
        // group commit); the feature and the record commit together.
        s.sync().unwrap();
        assert_eq!(fresh.schema_version(), 3);
        assert_eq!(fresh.volume_row("features").as_deref(), Some("lzma"));
        assert_eq!(s.read(|m| m.block(1, 0)).unwrap().unwrap(), lzma);
        let root = s.read(|m| m.inode(1)).unwrap().unwrap();
        assert_eq!(root.stored_bytes, lzma.len() as u64);
    });
}

/// A SQLite store has one writer process (its flock); a PostgreSQL volume
/// takes several (mounts on several machines), each seeing the others'
/// commits. Readers open beside them on both.
#[test]
fn second_writer_refused_on_sqlite_admitted_on_postgres() {
    on_each_backend(|fresh| {
        let first = fresh.create(65536).unwrap();
        match fresh.kind {
            Kind::Sqlite => {
                let err = fresh.create(65536).unwrap_err();
                assert!(matches!(err, StoreError::Locked { .. }), "{err}");
                assert!(err.to_string().contains("in use"), "{err}");
            }
            Kind::Postgres => {
                let second = fresh.create(65536).unwrap();
                second
                    .write(Durability::Normal, |m| m.set_volume_setting("k", "2"))
                    .unwrap();
                let seen = first.read(|m| m.volume_setting("k")).unwrap();
                assert_eq!(seen.as_deref(), Some("2"));
            }
        }
        let reader = fresh.open_read_only().unwrap();
        assert!(reader.read(|m| m.inode(1)).unwrap().is_some());
        drop(first);
        fresh.create(65536).expect("lock released on drop");
    });
}

#[test]
fn failed_transaction_leaves_nothing() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let r: Result<(), StoreError> = s.write(Durability::Durable, |m| {
            m.put_block(1, 0, 0, 3, b"abc")?;
            Err(StoreError::Invalid("abort".into()))
        });
        assert!(r.is_err());
        let blocks = s.read(|m| m.block_infos(None)).unwrap();
        assert!(blocks.is_empty(), "rolled back");
        let root = s.read(|m| m.inode(1)).unwrap().unwrap();
        assert_eq!(root.stored_bytes, 0);
        // The connection is still usable after the rollback.
        s.write(Durability::Normal, |m| m.put_block(1, 0, 0, 3, b"abc"))
            .unwrap();
        assert_eq!(s.read(|m| m.block_infos(None)).unwrap().len(), 1);
    });
}

/// An inode row changed by a transaction that then rolls back reads back
/// as stored, whichever way it rolled back (a durable transaction's
/// error, a batched operation's savepoint, a checks-first operation that
/// failed after a change, which loses its batch, a durable write's closure
/// that panicked), and a row read, changed
/// and committed reads back changed: the SQLite writer's copy of inode
/// rows (inode_cache.rs) follows the database, never a change it lost.
#[test]
fn inode_rows_read_back_as_stored_after_every_kind_of_rollback() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let root = s.read(|m| m.inode(1)).unwrap().unwrap();
        let change = |m: &llmfs::store::WriteTx<'_>| -> Result<(), StoreError> {
            let mut row = m.inode(1)?.unwrap();
            row.mode ^= 0o022;
            row.mtime_ns += 1;
            m.update_inode(&row)?;
            assert_eq!(m.inode(1)?.unwrap(), row, "the transaction sees its change");
            Err(StoreError::Invalid("abort".into()))
        };
        assert!(s.write(Durability::Durable, change).is_err());
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), root);
        assert!(s.write(Durability::Normal, change).is_err());
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), root);
        assert!(s.write_checked(Durability::Normal, change).is_err());
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), root);
        // The loss of that batch is reported once, by the next durable
        // write (on SQLite, which batches).
        let _ = s.write(Durability::Durable, |_| Ok::<_, StoreError>(()));
        if fresh.kind == Kind::Sqlite {
            // A durable write whose closure panics after its change: the
            // store is used again afterwards (its lock is not poisoned
            // for good), and the change is not read back.
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.write(Durability::Durable, |m| {
                    let mut row = m.inode(1)?.unwrap();
                    row.mode ^= 0o022;
                    m.update_inode(&row)?;
                    panic!("a durable write's closure panics");
                    #[allow(unreachable_code)]
                    Ok::<_, StoreError>(())
                })
            }));
            assert!(panicked.is_err());
            assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), root);
        }

        let mut changed = root.clone();
        changed.mode ^= 0o022;
        s.write(Durability::Normal, |m| m.update_inode(&changed))
            .unwrap();
        s.write(Durability::Normal, |m| m.put_block(1, 0, 0, 3, b"abc"))
            .unwrap();
        let want = llmfs::store::InodeRow {
            stored_bytes: 3,
            ..changed.clone()
        };
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), want);
        drop(s);
        let s = fresh.create(65536).unwrap();
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), want);
    });
}

/// Inode updates the SQLite writer holds for its batch (inode_cache.rs)
/// are what every read sees: the row itself, a listing's join of the
/// directory's entries with their rows, the search for unlinked inodes.
/// An operation that rolls back to its savepoint after them does not take
/// them with it, a later update of a row overtakes an earlier one, and
/// the batch's commit puts them in the database, where another connection
/// and the next open read them.
#[test]
fn inode_updates_held_for_the_batch_are_read_kept_and_committed() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let new_file = |m: &llmfs::store::WriteTx<'_>, name: &[u8]| {
            let row = m.insert_inode(&regular_file(1))?;
            m.insert_dirent(1, name, row.ino)?;
            Ok::<_, StoreError>(row)
        };
        let a = s
            .write_checked(Durability::Normal, |m| new_file(m, b"a"))
            .unwrap();
        let b = s
            .write_checked(Durability::Normal, |m| new_file(m, b"b"))
            .unwrap();
        let update = |row: &llmfs::store::InodeRow| {
            s.write_checked(Durability::Normal, |m| m.update_inode(row))
                .unwrap()
        };
        let mut a2 = a.clone();
        a2.mode = libc::S_IFREG | 0o600;
        a2.mtime_ns = 5;
        update(&a2);
        a2.uid = 7;
        a2.ctime_ns = 6;
        update(&a2);
        let row = |ino| s.read(|m| m.inode(ino)).unwrap().unwrap();
        assert_eq!(row(a.ino), a2);
        let listed = s.read(|m| m.list_dir_rows(1, 0, 10)).unwrap();
        let listed_a = listed.iter().find(|(_, name, _)| name == b"a").unwrap();
        assert_eq!(listed_a.2, a2, "the listing's join");
        let entries = s.read(|m| m.list_dir(1, 0, 10)).unwrap();
        let entry_a = entries.iter().find(|e| e.name == b"a").unwrap();
        assert_eq!(entry_a.mode, a2.mode);

        // Held again after the listing wrote them, then an operation that
        // fails inside its savepoint.
        a2.gid = 9;
        update(&a2);
        let failed: Result<(), StoreError> = s.write(Durability::Normal, |m| {
            let mut b2 = m.inode(b.ino)?.unwrap();
            b2.mode = libc::S_IFREG | 0o400;
            m.update_inode(&b2)?;
            Err(StoreError::Invalid("abort".into()))
        });
        assert!(failed.is_err());
        assert_eq!(row(a.ino), a2, "an earlier operation's update stays");
        assert_eq!(row(b.ino), b, "the failed operation's goes");

        // A file unlinked while open: its link count of 0 is held too, and
        // the search for unlinked inodes finds it.
        let mut b0 = b.clone();
        b0.nlink = 0;
        s.write_checked(Durability::Normal, |m| {
            m.remove_dirent(1, b"b")?;
            m.update_inode(&b0)
        })
        .unwrap();
        let unlinked = s.read(|m| m.unlinked_inodes()).unwrap();
        assert_eq!(unlinked, vec![b.ino]);

        a2.size = 123;
        update(&a2);
        s.sync().unwrap();
        let reader = fresh.open_read_only().unwrap();
        assert_eq!(reader.read(|m| m.inode(a.ino)).unwrap().unwrap(), a2);
        assert_eq!(reader.read(|m| m.inode(b.ino)).unwrap().unwrap(), b0);
        drop(reader);
        drop(s);
        let s = fresh.create(65536).unwrap();
        assert_eq!(s.read(|m| m.inode(a.ino)).unwrap().unwrap(), a2);
    });
}

#[test]
fn stored_bytes_track_block_writes() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
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

        // A write-back's blocks and row, in one call (on SQLite the row's
        // UPDATE moves stored_bytes): the row reads back moved, in the
        // store that wrote it (the writer's copy of rows, inode_cache.rs)
        // as after a reopen.
        let mut row = s.read(|m| m.inode(1)).unwrap().unwrap();
        row.mtime_ns += 1;
        let record = |bytes| llmfs::store::BlockWrite {
            codec: 0,
            raw_len: 4,
            record: bytes,
            extent: None,
        };
        s.write(Durability::Normal, |m| {
            m.write_back(
                &row,
                &[(0, Some(record(b"abcd"))), (2, Some(record(b"wxyz")))],
            )
        })
        .unwrap();
        let want = llmfs::store::InodeRow {
            stored_bytes: 8,
            ..row.clone()
        };
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), want);
        s.write(Durability::Normal, |m| m.write_back(&row, &[(2, None)]))
            .unwrap();
        let want = llmfs::store::InodeRow {
            stored_bytes: 4,
            ..row
        };
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), want);
        drop(s);
        let s = fresh.create(65536).unwrap();
        assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap(), want);
    });
}

/// The reaper's chunks: the highest block indices below a bound, highest
/// first, at most a limit, stepping over holes.
#[test]
fn block_indices_below_walk_down_over_holes() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        s.write(Durability::Normal, |m| {
            for idx in [0, 1, 7, 1 << 40] {
                m.put_block(1, idx, 0, 1, b"x")?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let below = |b: u64, limit: usize| s.read(|m| m.block_indices_below(1, b, limit)).unwrap();
        assert_eq!(below(i64::MAX as u64, 2), vec![1 << 40, 7]);
        assert_eq!(below(7, 10), vec![1, 0]);
        assert_eq!(below(0, 10), Vec::<u64>::new());
        assert_eq!(
            s.read(|m| m.block_indices_below(2, u64::MAX >> 1, 10))
                .unwrap(),
            Vec::<u64>::new()
        );
    });
}

/// A durable sync commits something (the sync generation), so that the
/// commit waits for the log, and keeps counting across reopens.
#[test]
fn sync_bumps_the_sync_generation() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let gen = || fresh.volume_row("sync_generation").unwrap();
        assert_eq!(gen(), "0");
        s.sync().unwrap();
        s.sync().unwrap();
        assert_eq!(gen(), "2");
        drop(s);
        fresh.create(65536).unwrap().sync().unwrap();
        assert_eq!(gen(), "3");
    });
}

/// Names, targets and xattr values are bytes, not text: every byte value
/// survives the round trip, and a listing resumes from its cookie.
#[test]
fn byte_names_and_listing_cookies() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let names: Vec<Vec<u8>> = vec![b"\xff\xfe".to_vec(), b"a\x01b".to_vec(), b"z".to_vec()];
        s.write(Durability::Normal, |m| {
            for n in &names {
                let row = m.insert_inode(&llmfs::store::NewInode {
                    mode: libc::S_IFLNK | 0o777,
                    uid: 4_000_000_000,
                    gid: 7,
                    nlink: 1,
                    rdev: 0,
                    time_ns: -5,
                    target: Some(n.clone()),
                })?;
                m.insert_dirent(1, n, row.ino)?;
                m.set_xattr(row.ino, b"user.\x00x", &[0, 255, 10])?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let all = s.read(|m| m.list_dir(1, 0, 10)).unwrap();
        assert_eq!(
            all.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            names
        );
        let rest = s.read(|m| m.list_dir(1, all[0].cookie, 10)).unwrap();
        assert_eq!(rest, all[1..]);
        let last = all.last().unwrap().cookie;
        assert!(s.read(|m| m.list_dir(1, last, 10)).unwrap().is_empty());
        let ino = s.read(|m| m.lookup(1, b"\xff\xfe")).unwrap().unwrap();
        let row = s.read(|m| m.inode(ino)).unwrap().unwrap();
        assert_eq!(
            (row.uid, row.atime_ns, row.target.as_deref()),
            (4_000_000_000, -5, Some(&b"\xff\xfe"[..]))
        );
        assert_eq!(
            s.read(|m| m.xattr(ino, b"user.\x00x")).unwrap().unwrap(),
            [0, 255, 10]
        );
        let t = s.read(|m| m.totals()).unwrap();
        assert_eq!((t.directories, t.other_inodes), (1, 3));
        if fresh.kind == Kind::Postgres {
            assert_eq!(
                s.read(|m| m.out_of_range_rows()).unwrap(),
                Vec::<String>::new()
            );
        }
    });
}

/// The dictionaries table appears with the volume's first dictionary;
/// storing one twice keeps one row.
#[test]
fn dictionaries_table_comes_with_the_first_dictionary() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        assert!(!s.read(|m| m.has_dictionaries_table()).unwrap());
        assert!(s.read(|m| m.dictionaries()).unwrap().is_empty());
        let d = llmfs::store::DictionaryRow {
            sha256: "ab".repeat(32),
            raw_len: 3,
            payload: vec![0, 1, 255],
        };
        for _ in 0..2 {
            s.write(Durability::Durable, |m| m.put_dictionary(&d))
                .unwrap();
        }
        assert!(s.read(|m| m.has_dictionaries_table()).unwrap());
        assert_eq!(s.read(|m| m.dictionaries()).unwrap(), vec![d.clone()]);
        assert_eq!(fresh.schema_version(), 2, "the table alone raises nothing");
    });
}

/// A media record (a WAV block), written by the archiver's swap, records
/// the features `media` and `media-v3` (payload version 3) and schema
/// version 11 on every backend, and reads back as the same samples.
#[test]
fn archived_media_swap_records_the_feature() {
    on_each_backend(|fresh| {
        let s = fresh.create(65536).unwrap();
        let wav = crate::common::wav_tone(8000);
        let zstd = encode_record(&ZstdCodec::new(3), &wav).unwrap();
        let media = encode_record(&llmfs::codec::MediaCodec, &wav).unwrap();
        assert!(
            media.len() < zstd.len(),
            "{} vs {}",
            media.len(),
            zstd.len()
        );
        s.write(Durability::Normal, |m| {
            m.put_block(1, 0, CodecId::Zstd as u8, wav.len() as u64, &zstd)
        })
        .unwrap();
        let swapped = s
            .write(Durability::Normal, |m| {
                m.swap_archived_block(
                    1,
                    0,
                    &zstd,
                    Some((CodecId::Media as u8, &media)),
                    llmfs::store::ArchiveTier::Archive,
                )
            })
            .unwrap();
        assert!(swapped);
        // Read through a second connection: the batch must be committed.
        s.sync().unwrap();
        assert_eq!(fresh.schema_version(), 11);
        assert_eq!(
            fresh.volume_row("features").as_deref(),
            Some("media,media-v3")
        );
        let stored = s.read(|m| m.block(1, 0)).unwrap().unwrap();
        let set = llmfs::codec::CodecSet::default();
        assert!(set.decode_block(&stored, 65536).unwrap() == wav);
    });
}

/// A read-write open adds the index that lists a directory in cookie
/// order, without raising the version; a store without it (as an older
/// llmfs left it) still lists, read-only too, and gets it at its next
/// read-write open. On SQLite the listing's query then reads a reply's
/// worth of entries instead of sorting the whole directory each time.
#[test]
fn the_listing_index_comes_with_a_read_write_open() {
    on_each_backend(|fresh| {
        let sqlite = || {
            rusqlite::Connection::open(fresh.scratch().join("store").join(llmfs::store::DB_FILE))
                .unwrap()
        };
        let has_index = || match fresh.kind {
            Kind::Sqlite => {
                sqlite()
                    .query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'dirents_by_parent'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap()
                    == 1
            }
            Kind::Postgres => {
                fresh.pg_query_one::<bool>("SELECT to_regclass('dirents_by_parent') IS NOT NULL")
            }
        };
        let s = fresh.create(65536).unwrap();
        let root = llmfs::store::ROOT_INO;
        s.write(Durability::Durable, |m| {
            for i in 0..50u64 {
                let row = m.insert_inode(&regular_file(0))?;
                m.insert_dirent(root, format!("f{i}").as_bytes(), row.ino)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        drop(s);
        assert!(has_index());
        assert_eq!(fresh.schema_version(), 2, "the index raises nothing");
        if fresh.kind == Kind::Sqlite {
            let plan: Vec<String> = sqlite()
                .prepare(
                    "EXPLAIN QUERY PLAN SELECT d.id, d.name FROM dirents d \
                     WHERE d.parent = 1 AND d.id > 7 ORDER BY d.id LIMIT 10",
                )
                .unwrap()
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().all(|step| !step.contains("TEMP B-TREE")),
                "{plan:?}"
            );
        }

        let listed =
            |s: &llmfs::store::Store| s.read(|m| m.list_dir(root, 0, usize::MAX)).unwrap().len();
        fresh.sql("DROP INDEX dirents_by_parent");
        assert!(!has_index());
        assert_eq!(listed(&fresh.open_read_only().unwrap()), 50);
        assert!(!has_index(), "a read-only open adds nothing");
        let s = fresh
            .open(&OpenOptions {
                block_size: 65536,
                ..OpenOptions::default()
            })
            .unwrap();
        assert_eq!(listed(&s), 50);
        assert!(has_index());
    });
}
