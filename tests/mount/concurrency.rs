//! Concurrency on a real mount: threads and processes reading and writing
//! the same and different files, renaming across directories, and listing
//! a 5,000-entry directory at once. A watchdog fails the test (and the
//! mount guard detaches the mount) instead of letting a deadlock hang CI.
//! The final state is compared with a reference: each worker owns its
//! files, whose final contents are known; the shared file takes
//! block-aligned records that each carry their own checksum, so a lost or
//! torn update shows.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::Mounted;

const REC: usize = 4096;
const SHARED_RECS: u64 = 64;
const WORKERS: u64 = 6;
const ROUNDS: u64 = 120;

fn record(slot: u64, writer: u64, round: u64) -> Vec<u8> {
    let mut r = vec![0u8; REC];
    let mut x = slot * 1_000_003 + writer * 7919 + round + 1;
    for b in r[16..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    r[0..8].copy_from_slice(&(slot << 32 | writer << 16 | round).to_le_bytes());
    let sum = crc(&r[16..]);
    r[8..16].copy_from_slice(&sum.to_le_bytes());
    r
}

fn crc(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn content(w: u64, i: u64, round: u64) -> Vec<u8> {
    format!("worker {w} file {i} round {round}\n")
        .repeat(200 + (i * 37 % 300) as usize)
        .into_bytes()
}

#[test]
fn threads_and_processes_agree_with_the_reference() {
    require_fuse!();
    let mut m = Mounted::new(&["--threads", "8"]);
    for d in ["a", "b", "big"] {
        fs::create_dir(m.path(d)).unwrap();
    }
    // A large directory to list while everything else runs.
    for i in 0..5000 {
        File::create(m.path(&format!("big/entry-{i:05}"))).unwrap();
    }
    let shared = m.path("shared");
    File::create(&shared)
        .unwrap()
        .set_len(SHARED_RECS * REC as u64)
        .unwrap();

    let done = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        // Watchdog: no progress for 60 s means a deadlock.
        s.spawn(|| {
            let mut last = (0, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(60) {
                    let _ = Command::new("umount").arg("-l").arg(&m.mnt).status();
                    eprintln!("no progress for 60 s: deadlock; mount detached");
                    std::process::abort();
                }
            }
        });
        let mut hs = Vec::new();
        for w in 0..WORKERS {
            let (m, progress, shared) = (&m, &progress, &shared);
            hs.push(s.spawn(move || {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(shared)
                    .unwrap();
                for round in 0..ROUNDS {
                    // Own files: write, move between a/ and b/, overwrite.
                    for i in 0..3 {
                        let name = format!("w{w}-{i}");
                        let (from, to) = if round % 2 == 0 {
                            ("a", "b")
                        } else {
                            ("b", "a")
                        };
                        let p = m.path(&format!("{from}/{name}"));
                        fs::write(&p, content(w, i, round)).unwrap();
                        fs::rename(&p, m.path(&format!("{to}/{name}"))).unwrap();
                        assert!(
                            fs::read(m.path(&format!("{to}/{name}"))).unwrap()
                                == content(w, i, round)
                        );
                    }
                    // Shared file: whole records at aligned offsets.
                    let slot = (w * 11 + round * 5) % SHARED_RECS;
                    f.write_all_at(&record(slot, w, round), slot * REC as u64)
                        .unwrap();
                    // A read racing another thread's write of the same
                    // slot may see part of it (Linux, like most systems,
                    // does not make a buffered read atomic against a
                    // concurrent write, on any filesystem); once no write
                    // is in flight the record must be whole, so a torn
                    // record that persists is a bug.
                    let mut buf = vec![0u8; REC];
                    let other = (slot + 17) % SHARED_RECS;
                    let mut tries = 0;
                    loop {
                        f.read_exact_at(&mut buf, other * REC as u64).unwrap();
                        match record_problem(&buf, other) {
                            None => break,
                            Some(why) if tries >= 100 => panic!("{why} (100 reads)"),
                            Some(_) => {
                                tries += 1;
                                std::thread::sleep(std::time::Duration::from_millis(2));
                            }
                        }
                    }
                    if round % 10 == 0 {
                        f.sync_all().unwrap();
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Readers of the big directory, in threads and processes.
        for r in 0..2 {
            let (m, progress) = (&m, &progress);
            hs.push(s.spawn(move || {
                for _ in 0..3 {
                    let n = fs::read_dir(m.path("big")).unwrap().count();
                    assert_eq!(n, 5000, "reader {r}");
                    let out = Command::new("ls")
                        .arg("-f")
                        .arg(m.path("big"))
                        .output()
                        .unwrap();
                    assert!(out.status.success());
                    // ls -f lists . and .. too.
                    assert_eq!(
                        out.stdout
                            .split(|&b| b == b'\n')
                            .filter(|l| !l.is_empty())
                            .count(),
                        5002
                    );
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // A process copying and comparing a tree while it changes.
        {
            let (m, progress) = (&m, &progress);
            hs.push(s.spawn(move || {
                for i in 0..3 {
                    let st = Command::new("sh")
                        .arg("-c")
                        .arg(format!(
                            "mkdir -p {d}/copy{i} && head -c 3000000 /dev/urandom > {d}/copy{i}/x && cp {d}/copy{i}/x {d}/copy{i}/y && cmp {d}/copy{i}/x {d}/copy{i}/y",
                            d = m.mnt.display()
                        ))
                        .status()
                        .unwrap();
                    assert!(st.success(), "cp/cmp process {i}");
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for h in hs {
            if let Err(p) = h.join() {
                done.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(p);
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    eprintln!("concurrent phase: {:.1} s", start.elapsed().as_secs_f64());

    m.remount();
    let last = ROUNDS - 1;
    let final_dir = if last % 2 == 0 { "b" } else { "a" };
    for w in 0..WORKERS {
        for i in 0..3 {
            let name = format!("w{w}-{i}");
            assert!(
                fs::read(m.path(&format!("{final_dir}/{name}"))).unwrap() == content(w, i, last),
                "{name}"
            );
            assert!(!m
                .path(&format!(
                    "{}/{name}",
                    if final_dir == "a" { "b" } else { "a" }
                ))
                .exists());
        }
    }
    // Every slot holds the last record written to it (each slot's writes
    // are ordered: the reference replays them).
    let data = fs::read(&shared).unwrap();
    let mut want: Vec<Option<(u64, u64)>> = vec![None; SHARED_RECS as usize];
    for w in 0..WORKERS {
        for round in 0..ROUNDS {
            let slot = (w * 11 + round * 5) % SHARED_RECS;
            want[slot as usize].get_or_insert((w, round));
        }
    }
    for slot in 0..SHARED_RECS {
        let rec = &data[slot as usize * REC..(slot as usize + 1) * REC];
        check_record(rec, slot);
        if want[slot as usize].is_some() {
            assert!(rec.iter().any(|&b| b != 0), "slot {slot} lost its writes");
        }
    }
    assert_eq!(fs::read_dir(m.path("big")).unwrap().count(), 5000);
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}

/// A record is all zeros (never written) or whole and self-consistent.
fn check_record(buf: &[u8], slot: u64) {
    if let Some(why) = record_problem(buf, slot) {
        panic!("{why}");
    }
}

/// What is wrong with the record read from `slot`, if anything.
fn record_problem(buf: &[u8], slot: u64) -> Option<String> {
    if buf.iter().all(|&b| b == 0) {
        return None;
    }
    let id = u64::from_le_bytes(buf[0..8].try_into().unwrap());
    let sum = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    if id >> 32 != slot {
        return Some(format!(
            "record in slot {slot} belongs to slot {}",
            id >> 32
        ));
    }
    if crc(&buf[16..]) != sum {
        return Some(format!("torn record in slot {slot}"));
    }
    if buf != record(slot, id >> 16 & 0xffff, id & 0xffff) {
        return Some(format!("record in slot {slot} has other contents"));
    }
    None
}
