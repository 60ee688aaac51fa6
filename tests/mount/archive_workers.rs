//! Archive workers beside a mounted PostgreSQL volume: `llmfs archive
//! postgres://...` processes run (two at a time, again and again) while
//! the mount rewrites its files and its own archiver runs too. Every swap
//! keeps the newest data: each file reads back with its latest contents,
//! through the mount and after a remount, and fsck is clean. Needs
//! LLMFS_TEST_PG; skipped with a line without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{archive_worker, log_lines, pg_url, worker_encoded, FreshStore, Kind, Mounted};

const FILES: usize = 5;
const ROUNDS: usize = 12;

/// File `i` as written in round `round`: a different text each time, of a
/// length that changes too (growth and truncation both happen).
fn content(i: usize, round: usize) -> Vec<u8> {
    let len = 20_000 + 3_000 * ((i + round) % 5);
    log_lines(len, (1000 * round + i) as u64)
}

#[test]
fn workers_beside_a_mount_being_written_keep_the_newest_data() {
    require_fuse!();
    if pg_url().is_none() {
        return;
    }
    let mut m = Mounted::on_store(
        FreshStore::new(Kind::Postgres),
        &[
            "--block-size",
            "4096",
            "--archive-after",
            "1",
            "--deep-archive-after",
            "never",
        ],
    );
    let url = m.store.clone().into_os_string();
    let writing = AtomicBool::new(true);
    let worker_runs = std::thread::scope(|s| {
        let workers = s.spawn(|| {
            let mut runs = 0;
            while writing.load(Ordering::Relaxed) {
                let a = archive_worker(&url, 5);
                let b = archive_worker(&url, 5);
                worker_encoded(a);
                worker_encoded(b);
                runs += 1;
            }
            runs
        });
        for round in 0..ROUNDS {
            for i in 0..FILES {
                std::fs::write(m.path(&format!("f{i}")), content(i, round)).unwrap();
            }
            // Some rounds are durable, some only written: both must end
            // up readable.
            if round % 3 == 0 {
                std::fs::File::open(m.path("f0"))
                    .unwrap()
                    .sync_all()
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        writing.store(false, Ordering::Relaxed);
        workers.join().unwrap()
    });
    assert!(
        worker_runs > 0,
        "the workers ran while the files were written"
    );
    // A last pass once writing has stopped takes what is left.
    worker_encoded(archive_worker(&url, 5));
    let fresh = m.fresh().unwrap();
    let archived: i64 = fresh.pg_query_one("SELECT COUNT(*) FROM blocks WHERE archived <> 0");
    assert!(archived > 0, "the workers archived blocks");
    let latest = |i| content(i, ROUNDS - 1);
    for i in 0..FILES {
        assert!(
            std::fs::read(m.path(&format!("f{i}"))).unwrap() == latest(i),
            "f{i} reads back with its latest data through the mount"
        );
    }
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
    m.mount(&[]);
    for i in 0..FILES {
        assert!(
            std::fs::read(m.path(&format!("f{i}"))).unwrap() == latest(i),
            "f{i} reads back with its latest data after a remount"
        );
    }
    let pending: i64 = m
        .fresh()
        .unwrap()
        .pg_query_one("SELECT COUNT(*) FROM blocks WHERE archived = 0");
    assert_eq!(pending, 0, "every block was archived in the end");
    m.unmount();
}
