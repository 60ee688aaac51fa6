//! Archive workers on one PostgreSQL volume (`llmfs archive postgres://`,
//! real processes, real server): two at once encode each block exactly
//! once between them; one killed mid-pass leaves its claimed blocks, which
//! the other takes once the claims lapse. Needs LLMFS_TEST_PG; skipped
//! with a line without it.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{ArchiveTier, ROOT_INO};

use crate::common::{archive_worker, pg_url, run, worker_encoded, FreshStore, Kind};

/// Small blocks: many of them, each quick to encode in a debug build.
const BS: usize = 4096;
const FILES: usize = 6;
const FILE_LEN: usize = 12 * BS + 123;

/// File `i`'s bytes: compressible text that differs from file to file.
fn content(i: usize) -> Vec<u8> {
    crate::common::log_lines(FILE_LEN, 100 + i as u64)
}

/// A fresh PostgreSQL volume holding [`FILES`] files; returns it with its
/// number of blocks.
fn volume_with_files() -> (FreshStore, u64) {
    let fresh = FreshStore::new(Kind::Postgres);
    let store = fresh.create(BS).unwrap();
    let fs = Fs::new(store, FsConfig::default()).unwrap();
    for i in 0..FILES {
        crate::common::create_file(&fs, ROOT_INO, &format!("f{i}"), &content(i));
    }
    fs.shutdown().unwrap();
    let blocks = (FILES * FILE_LEN.div_ceil(BS)) as u64;
    (fresh, blocks)
}

/// `llmfs archive URL --tier archive --lease SECS`, started.
fn start_worker(fresh: &FreshStore, lease_s: u64) -> Child {
    archive_worker(&fresh.arg(), lease_s)
}

/// One number from the volume's database, behind llmfs's back.
fn pg_count(fresh: &FreshStore, sql: &str) -> i64 {
    fresh.pg_query_one(sql)
}

/// Every block taken by the archive tier, fsck clean, every file intact.
fn assert_archived_and_intact(fresh: &FreshStore, blocks: u64) {
    let pending = pg_count(fresh, "SELECT COUNT(*) FROM blocks WHERE archived = 0");
    assert_eq!(pending, 0, "every block was taken by the archive tier");
    let archived = pg_count(
        fresh,
        &format!(
            "SELECT COUNT(*) FROM blocks WHERE archived = {}",
            ArchiveTier::Archive as i64
        ),
    );
    assert_eq!(archived as u64, blocks);
    assert_eq!(pg_count(fresh, "SELECT COUNT(*) FROM block_claims"), 0);
    let (ok, report) = run([std::ffi::OsString::from("fsck"), fresh.arg()]);
    assert!(ok, "{report}");
    let fs = Fs::new(fresh.open_read_only().unwrap(), FsConfig::default()).unwrap();
    for i in 0..FILES {
        let ino = fs.lookup(ROOT_INO, format!("f{i}").as_bytes()).unwrap().ino;
        let got = fs.read(ino, 0, FILE_LEN as u32 + 10).unwrap();
        assert!(got == content(i), "file f{i} reads back as written");
    }
}

#[test]
fn two_workers_encode_each_block_exactly_once() {
    if pg_url().is_none() {
        return;
    }
    let (fresh, blocks) = volume_with_files();
    let a = start_worker(&fresh, 60);
    let b = start_worker(&fresh, 60);
    let (a, b) = (worker_encoded(a), worker_encoded(b));
    assert_eq!(
        a + b,
        blocks,
        "the two workers encoded {a} and {b} of {blocks} blocks: each exactly once"
    );
    assert_archived_and_intact(&fresh, blocks);
}

#[test]
fn a_killed_workers_claims_lapse_and_go_to_another_worker() {
    if pg_url().is_none() {
        return;
    }
    let (fresh, blocks) = volume_with_files();
    // A worker whose claims outlive it by 2 s; killed once it holds some.
    let mut dead = start_worker(&fresh, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg_count(&fresh, "SELECT COUNT(*) FROM block_claims") == 0 {
        if let Some(status) = dead.try_wait().unwrap() {
            let mut err = String::new();
            dead.stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the worker ended ({status}) before it claimed anything: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the worker never claimed a block"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server may still be committing what the worker sent before it
    // died (CI saw two blocks archived after the count below): count only
    // once the worker's sessions have ended, each after its last command.
    let sessions = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'llmfs (pid {})'",
        dead.id()
    );
    assert!(
        pg_count(&fresh, &sessions) > 0,
        "the worker's sessions are seen"
    );
    dead.kill().unwrap();
    dead.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg_count(&fresh, &sessions) > 0 {
        assert!(
            Instant::now() < deadline,
            "the killed worker's sessions never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = pg_count(
        &fresh,
        "SELECT COUNT(*) FROM block_claims c JOIN blocks b USING (ino, idx) \
         WHERE b.archived = 0",
    );
    assert!(left > 0, "the killed worker left claimed blocks unarchived");
    let archived_by_dead = pg_count(&fresh, "SELECT COUNT(*) FROM blocks WHERE archived <> 0");
    // The other worker takes every remaining block, those of the dead
    // worker once its claims have lapsed.
    let encoded = worker_encoded(start_worker(&fresh, 60));
    assert_eq!(
        encoded,
        blocks - archived_by_dead as u64,
        "the second worker encoded every block the first left, its claimed ones included"
    );
    assert_archived_and_intact(&fresh, blocks);
}

#[test]
fn a_float_engine_other_than_the_volumes_is_refused() {
    if pg_url().is_none() {
        return;
    }
    let (fresh, _) = volume_with_files();
    let float = "models/float-d192l3/model.onnx";
    // No float blocks yet: the first float worker records its engine.
    // (--older-than: nothing is due, the pass only checks and records.)
    let deep = |fresh: &FreshStore| {
        run([
            std::ffi::OsString::from("archive"),
            fresh.arg(),
            "--tier".into(),
            "deep".into(),
            "--older-than".into(),
            "1d".into(),
            "--model".into(),
            float.into(),
        ])
    };
    let (ok, out) = deep(&fresh);
    assert!(ok, "{out}");
    let recorded = fresh
        .volume_row("float_llm_engine")
        .expect("engine recorded");
    assert_eq!(recorded.split(' ').next().unwrap().len(), 16, "{recorded}");
    // The same engine again is welcome.
    let (ok, out) = deep(&fresh);
    assert!(ok, "{out}");
    // Blocks of another engine: this one's would not decode where those
    // do, so it refuses and names the volume's engine.
    fresh.sql("UPDATE volume SET value = '00000000000000ff another engine' WHERE key = 'float_llm_engine'");
    let (ok, out) = deep(&fresh);
    assert!(!ok, "a different float engine was refused: {out}");
    assert!(out.contains("00000000000000ff"), "{out}");
    assert_eq!(
        fresh.volume_row("float_llm_engine").as_deref(),
        Some("00000000000000ff another engine"),
        "the volume keeps its engine"
    );
}

/// The claims themselves, through the store: two workers' claims never
/// overlap; a claim outlives its worker only for its lease, then another
/// worker takes the block, and the first can no longer give it up (nor
/// swap it).
#[test]
fn claims_are_exclusive_and_lapse_to_another_worker() {
    use llmfs::store::{Durability, Lease, Store};
    if pg_url().is_none() {
        return;
    }
    let (fresh, blocks) = volume_with_files();
    let a = Store::open_worker(&fresh.location).unwrap();
    let b = Store::open_worker(&fresh.location).unwrap();
    let lease = |worker: &str, ms| Lease {
        worker: worker.into(),
        duration: Duration::from_millis(ms),
    };
    let (la, lb) = (lease("a", 60_000), lease("b", 60_000));
    let claim = |s: &Store, l: &Lease, n| {
        s.write(Durability::Normal, |m| {
            m.claim_blocks(ArchiveTier::Archive, i64::MAX, n, l)
        })
        .unwrap()
    };
    let got_a = claim(&a, &la, 5);
    let got_b = claim(&b, &lb, blocks as usize);
    assert_eq!(got_a.len(), 5);
    assert_eq!(
        got_b.len() as u64,
        blocks - 5,
        "b gets every block a does not hold"
    );
    assert!(
        got_a.iter().all(|x| !got_b.contains(x)),
        "no block claimed twice"
    );
    assert!(claim(&b, &lb, 5).iter().all(|x| !got_a.contains(x)));
    // a gives up its claims; a short-lived claim of a dead worker lapses.
    a.write(Durability::Normal, |m| m.release_claims("a"))
        .unwrap();
    let dead = lease("dead", 300);
    let got_dead = claim(&a, &dead, 2);
    assert_eq!(got_dead.len(), 2);
    assert!(claim(&b, &lb, 2).iter().all(|x| !got_dead.contains(x)));
    std::thread::sleep(Duration::from_millis(600));
    let taken = claim(&b, &lb, blocks as usize);
    assert!(
        got_dead.iter().all(|x| taken.contains(x)),
        "the lapsed claims went to b"
    );
    let (ino, idx) = got_dead[0];
    assert!(
        !a.write(Durability::Normal, |m| m.release_claim(ino, idx, "dead"))
            .unwrap(),
        "the dead worker no longer holds its block"
    );
    assert!(b
        .write(Durability::Normal, |m| m.release_claim(ino, idx, "b"))
        .unwrap());
}
