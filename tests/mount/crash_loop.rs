//! Crash loop: a writer does writes, truncates, renames, fsyncs and closes
//! on a real mount while the daemon is killed with SIGKILL at random
//! moments. After every kill the store is checked with `llmfs fsck`, the
//! volume is remounted, and every file is compared with what the writer
//! knows must be there:
//!
//! - a file whose last fsync returned, and that nothing touched
//!   afterwards, reads exactly as it was then, at the name it had then
//!   (fsync commits durably everything before it). A close is not a sync
//!   point: it writes back into the SQLite store's batch of commits, which
//!   a crash within its 10 ms loses (docs/DESIGN.md, "Durability");
//! - a file touched after that may hold any mix the operations since allow,
//!   block by block old or new (its size one an operation left, or inside
//!   a write that extended it: the kernel may split one write into several
//!   requests), but never bytes nobody wrote: a zero only
//!   where the file was shorter at some point (a hole or an extension), and
//!   every other byte from its last synced content or from a write since.
//!
//! The written bytes are never zero, so a block lost to zeros is caught.
//! `crash_loop_with_archiver` runs the same with the background archiver
//! re-encoding blocks with the model the moment they are written.
//!
//! Kills: `LLMFS_CRASH_KILLS` (default 60) and `LLMFS_CRASH_ARCHIVER_KILLS`
//! (default 10); seed `LLMFS_CRASH_SEED`. Longer run (README "Reliability"):
//! `LLMFS_CRASH_KILLS=1000 LLMFS_CRASH_ARCHIVER_KILLS=100 cargo test --release --test mount crash_loop`.

use std::fs::{self, File, OpenOptions};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::Mounted;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Text the writer draws its bytes from: prose (so that the archiver finds
/// blocks the model wins) and free of zero bytes.
const TEXT: &[u8] = include_bytes!("../../README.md");

/// The byte a write of version `ver` puts at file offset `p`.
fn pat(p: u64, ver: u64) -> u8 {
    TEXT[((p + ver * 7919) % TEXT.len() as u64) as usize]
}

#[derive(Debug, Clone)]
enum Op {
    Create,
    Write { off: u64, len: u64, ver: u64 },
    Truncate(u64),
    Rename,
}

/// What the writer knows about one file.
#[derive(Debug, Default)]
struct Slot {
    /// Directory (0 or 1) it is in now, per the operations that returned.
    dir: usize,
    exists: bool,
    /// Content per the operations issued so far.
    data: Vec<u8>,
    fd: Option<File>,
    /// Directory and content at the last sync point (an fsync that
    /// returned), or at the start of this round; `None`: no such point.
    synced: Option<(usize, Vec<u8>)>,
    /// Operations issued since, each with the size it left the file at;
    /// the last may not have completed.
    since: Vec<(Op, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    files: usize,
    /// How many of the files one round writes to; the others stay cold
    /// (and so are what the archiver re-encodes when the kill comes).
    active: usize,
    max_size: u64,
    max_write: u64,
    /// Pause between operations (lets the archiver at nice 19 run).
    pause: Duration,
}

#[derive(Debug, Default)]
struct Counts {
    ops: u64,
    fsyncs: u64,
    closes: u64,
    renames: u64,
    truncates: u64,
    writes: u64,
}

fn path_of(mnt: &Path, dir: usize, i: usize) -> PathBuf {
    mnt.join(format!("d{dir}")).join(format!("f{i}"))
}

/// `close(2)` with its result: the kernel reports a failed write-back there.
fn close(f: File) -> std::io::Result<()> {
    // SAFETY: the descriptor is owned and closed exactly once.
    if unsafe { libc::close(f.into_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn sync_point(s: &mut Slot) {
    s.synced = Some((s.dir, s.data.clone()));
    s.since.clear();
}

/// Runs operations until one fails (the daemon died) or `stop` is set.
fn writer(
    mnt: &Path,
    slots: &mut [Slot],
    rng: &mut StdRng,
    stop: &AtomicBool,
    lim: Limits,
    ver: &mut u64,
    n: &mut Counts,
) {
    let first = rng.random_range(0..lim.files);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(lim.pause);
        let i = (first + rng.random_range(0..lim.active)) % lim.files;
        let s = &mut slots[i];
        let path = path_of(mnt, s.dir, i);
        let choice = rng.random_range(0..100);
        n.ops += 1;
        let r: std::io::Result<()> = (|| {
            match choice {
                0..=59 => {
                    // write (opening, and creating, the file if needed)
                    if s.fd.is_none() {
                        if !s.exists {
                            s.since.push((Op::Create, 0));
                        }
                        let f = OpenOptions::new()
                            .read(true)
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .open(&path)?;
                        s.exists = true;
                        s.fd = Some(f);
                    }
                    let off = rng.random_range(0..lim.max_size);
                    let len = rng.random_range(1..=lim.max_write.min(lim.max_size - off));
                    *ver += 1;
                    let buf: Vec<u8> = (off..off + len).map(|p| pat(p, *ver)).collect();
                    let end = (off + len) as usize;
                    if s.data.len() < end {
                        s.data.resize(end, 0);
                    }
                    s.data[off as usize..end].copy_from_slice(&buf);
                    s.since.push((
                        Op::Write {
                            off,
                            len,
                            ver: *ver,
                        },
                        s.data.len() as u64,
                    ));
                    n.writes += 1;
                    s.fd.as_ref().unwrap().write_all_at(&buf, off)
                }
                60..=69 => {
                    let Some(f) = &s.fd else { return Ok(()) };
                    let size = rng.random_range(0..=lim.max_size);
                    s.data.resize(size as usize, 0);
                    s.since.push((Op::Truncate(size), size));
                    n.truncates += 1;
                    f.set_len(size)
                }
                70..=79 => {
                    let Some(f) = &s.fd else { return Ok(()) };
                    f.sync_all()?;
                    n.fsyncs += 1;
                    sync_point(s);
                    Ok(())
                }
                80..=89 => {
                    let Some(f) = s.fd.take() else {
                        return Ok(());
                    };
                    // Not a sync point: the write-back joins the batch
                    // of commits that a crash may lose.
                    close(f)?;
                    n.closes += 1;
                    Ok(())
                }
                _ => {
                    if !s.exists {
                        return Ok(());
                    }
                    let to = path_of(mnt, 1 - s.dir, i);
                    s.since.push((Op::Rename, s.data.len() as u64));
                    n.renames += 1;
                    fs::rename(&path, &to)?;
                    s.dir = 1 - s.dir;
                    Ok(())
                }
            }
        })();
        if r.is_err() {
            return;
        }
    }
}

/// Checks one file against what the writer knows; `found[d]` is its
/// content in directory `d`, if it is there.
fn check(i: usize, s: &Slot, found: &[Option<Vec<u8>>; 2]) -> Result<(), String> {
    if s.since.is_empty() {
        return match &s.synced {
            Some((d, data)) => {
                if found[1 - d].is_some() {
                    return Err(format!("f{i}: also present in d{}", 1 - d));
                }
                match &found[*d] {
                    Some(got) if got == data => Ok(()),
                    Some(got) => Err(format!(
                        "f{i}: synced and untouched, but reads differently ({} bytes, want {}; first difference at {:?})",
                        got.len(),
                        data.len(),
                        got.iter().zip(data).position(|(a, b)| a != b)
                    )),
                    None => Err(format!("f{i}: synced in d{d} and untouched, but missing")),
                }
            }
            None if found.iter().all(Option::is_none) => Ok(()),
            None => Err(format!("f{i}: never created, but present")),
        };
    }
    let renamed = s.since.iter().any(|(op, _)| matches!(op, Op::Rename));
    let (base_dir, base) = match &s.synced {
        Some((d, data)) => (Some(*d), data.as_slice()),
        None => (None, &[][..]),
    };
    let (dir, got) = match found {
        [Some(_), Some(_)] => return Err(format!("f{i}: present in both directories")),
        [None, None] if s.synced.is_none() => return Ok(()),
        [None, None] => return Err(format!("f{i}: was synced, now missing")),
        [Some(g), None] => (0, g),
        [None, Some(g)] => (1, g),
    };
    if !renamed && base_dir.is_some_and(|d| d != dir) {
        return Err(format!(
            "f{i}: in d{dir} though never renamed from d{base_dir:?}"
        ));
    }
    let len = got.len() as u64;
    // A size some operation left, or one inside a write that extended the
    // file: the kernel may send one write(2) as several WRITE requests
    // (it stops filling a request where copying from the caller's buffer
    // faults), and a crash between them keeps the first part, as a kernel
    // filesystem may keep part of an unsynced write. The bytes are checked
    // below either way.
    let mut before = base.len() as u64;
    let inside_extending_write = s.since.iter().any(|(op, size)| {
        let inside = matches!(op, Op::Write { .. }) && before < len && len < *size;
        before = *size;
        inside
    });
    let sizes_ok = len == base.len() as u64
        || s.since.iter().any(|(_, size)| *size == len)
        || inside_extending_write;
    if !sizes_ok {
        return Err(format!(
            "f{i}: size {len} is none the operations left (synced {}, then {:?})",
            base.len(),
            s.since.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        ));
    }
    // Below this offset the file was never shorter since the sync point,
    // so a zero there must have been in the synced content.
    let low = s
        .since
        .iter()
        .filter_map(|(op, _)| match op {
            Op::Truncate(size) => Some(*size),
            _ => None,
        })
        .fold(base.len() as u64, u64::min);
    for (p, &b) in got.iter().enumerate() {
        let p64 = p as u64;
        let from_base = p < base.len() && base[p] == b;
        let zero_ok = b == 0 && p64 >= low;
        let from_write = || {
            s.since.iter().any(|(op, _)| match op {
                Op::Write { off, len, ver } => {
                    (*off..off + len).contains(&p64) && pat(p64, *ver) == b
                }
                _ => false,
            })
        };
        if !(from_base || zero_ok || from_write()) {
            return Err(format!(
                "f{i}: byte {p} = {b:#04x} was never written there (synced {} bytes, {} ops since)",
                base.len(),
                s.since.len()
            ));
        }
    }
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn llm_blocks(store: &Path) -> u64 {
    let db = rusqlite::Connection::open_with_flags(
        store.join("llmfs.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT COUNT(*) FROM blocks WHERE codec = 2", [], |r| {
        r.get(0)
    })
    .unwrap()
}

struct Plan {
    kills: u64,
    mount_args: &'static [&'static str],
    lim: Limits,
    /// Range of milliseconds between the mount going live and the kill.
    kill_after_ms: std::ops::Range<u64>,
    expect_llm: bool,
}

fn crash_loop(name: &str, plan: Plan) {
    let seed = env_u64("LLMFS_CRASH_SEED", 0x11f5_c4a5);
    let mut rng = StdRng::seed_from_u64(seed ^ plan.kills);
    let start = Instant::now();
    let mut m = Mounted::new(plan.mount_args);
    fs::create_dir(m.path("d0")).unwrap();
    fs::create_dir(m.path("d1")).unwrap();
    let mut slots: Vec<Slot> = (0..plan.lim.files).map(|_| Slot::default()).collect();
    let mut ver = 0u64;
    let mut n = Counts::default();
    let mut synced_files_checked = 0u64;
    let mut llm_seen = 0u64;
    let (mut t_fsck, mut t_mount, mut t_verify) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for kill in 0..plan.kills {
        let stop = Arc::new(AtomicBool::new(false));
        let mnt = m.mnt.clone();
        let mut wrng = StdRng::seed_from_u64(rng.random());
        let delay = Duration::from_millis(rng.random_range(plan.kill_after_ms.clone()));
        let lim = plan.lim;
        let (back_slots, back_ver, back_n) = std::thread::scope(|sc| {
            let stop2 = Arc::clone(&stop);
            let h = sc.spawn(move || {
                writer(&mnt, &mut slots, &mut wrng, &stop2, lim, &mut ver, &mut n);
                (slots, ver, n)
            });
            if plan.expect_llm && kill + 1 == plan.kills && llm_seen == 0 {
                // No timed kill caught an archived block (the archiver
                // runs at nice 19 and a loaded machine starves it): the
                // last kill waits for one, so that every run crashes the
                // daemon with llm blocks in the store at least once.
                let deadline = Instant::now() + Duration::from_secs(180);
                while llm_blocks(&m.store) == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                }
            } else {
                std::thread::sleep(delay);
            }
            // SIGKILL: no write-back, no checkpoint, no unmount.
            m.crash();
            stop.store(true, Ordering::Relaxed);
            h.join().expect("writer thread panicked")
        });
        slots = back_slots;
        ver = back_ver;
        n = back_n;
        for s in &mut slots {
            // Descriptors on the dead mount only fail now.
            s.fd = None;
        }

        let t = Instant::now();
        let (ok, report) = m.fsck();
        t_fsck += t.elapsed();
        assert!(
            ok,
            "{name}: fsck after kill {kill} (seed {seed}):\n{report}"
        );
        llm_seen += llm_blocks(&m.store);
        let t = Instant::now();
        m.mount(plan.mount_args);
        t_mount += t.elapsed();
        let t = Instant::now();
        for (i, s) in slots.iter_mut().enumerate() {
            let found = [0, 1].map(|d| match fs::read(path_of(&m.mnt, d, i)) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => panic!("{name}: reading f{i} after kill {kill}: {e}"),
            });
            if let Err(why) = check(i, s, &found) {
                panic!(
                    "{name}: after kill {kill} (seed {seed}): {why}\n{}",
                    m.log_text()
                );
            }
            if s.since.is_empty() && s.synced.is_some() {
                synced_files_checked += 1;
            }
            // What survived is the starting point of the next round.
            let (dir, data) = match found {
                [Some(g), _] => (0, Some(g)),
                [None, Some(g)] => (1, Some(g)),
                [None, None] => (s.dir, None),
            };
            s.dir = dir;
            s.exists = data.is_some();
            s.data = data.clone().unwrap_or_default();
            s.synced = data.map(|d| (dir, d));
            s.since.clear();
        }
        t_verify += t.elapsed();
    }
    eprintln!("{name}: fsck {t_fsck:?}, mount {t_mount:?}, verify {t_verify:?}");
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{name}: final fsck:\n{report}");
    eprintln!(
        "{name}: {} kills in {:.1} s, seed {seed}: {} ops ({} writes, {} truncates, {} renames, \
         {} fsyncs, {} closes); {synced_files_checked} synced-and-untouched files verified, 0 lost; \
         llm blocks present across the kills: {llm_seen}",
        plan.kills,
        start.elapsed().as_secs_f64(),
        n.ops,
        n.writes,
        n.truncates,
        n.renames,
        n.fsyncs,
        n.closes
    );
    assert!(n.fsyncs > 0 && n.closes > 0 && n.renames > 0 && n.truncates > 0);
    assert!(
        !plan.expect_llm || llm_seen > 0,
        "{name}: the archiver stored no llm block in 180 s"
    );
}

#[test]
fn crash_loop_plain() {
    require_fuse!();
    crash_loop(
        "crash_loop_plain",
        Plan {
            kills: env_u64("LLMFS_CRASH_KILLS", 60),
            // Every write-back's records go to segment files (a store
            // directory's large-file path), so that kills land between
            // appends, their syncs and the commits naming them.
            mount_args: &["--compress", "off", "--segment-min-kib", "0"],
            lim: Limits {
                files: 8,
                active: 8,
                max_size: 300_000,
                max_write: 40_000,
                pause: Duration::ZERO,
            },
            kill_after_ms: 20..400,
            expect_llm: false,
        },
    );
}

#[test]
fn crash_loop_with_archiver() {
    require_fuse!();
    crash_loop(
        "crash_loop_with_archiver",
        Plan {
            kills: env_u64("LLMFS_CRASH_ARCHIVER_KILLS", 10),
            mount_args: &[
                "--archive-after",
                "0",
                "--deep-archive-after",
                "0",
                "--block-size",
                "4096",
            ],
            lim: Limits {
                files: 6,
                active: 2,
                max_size: 5_000,
                max_write: 2_500,
                pause: Duration::from_millis(5),
            },
            kill_after_ms: 500..3000,
            expect_llm: true,
        },
    );
}

/// The check itself: it must catch a synced block read back as zeros, old
/// data at a name it was renamed from, and bytes nobody wrote.
#[test]
fn crash_check_catches_loss() {
    require_fuse!();
    let data: Vec<u8> = (0..10_000).map(|p| pat(p, 1)).collect();
    let synced = Slot {
        dir: 0,
        exists: true,
        data: data.clone(),
        synced: Some((0, data.clone())),
        ..Slot::default()
    };
    assert!(check(0, &synced, &[Some(data.clone()), None]).is_ok());
    let mut zeroed = data.clone();
    zeroed[4096..8192].fill(0);
    assert!(check(0, &synced, &[Some(zeroed.clone()), None]).is_err());
    assert!(check(0, &synced, &[None, Some(data.clone())]).is_err());
    assert!(check(0, &synced, &[None, None]).is_err());

    // Touched since: a later write may or may not have landed, but zeros
    // inside the synced length are still loss.
    let mut touched = synced;
    touched.since.push((
        Op::Write {
            off: 100,
            len: 50,
            ver: 2,
        },
        10_000,
    ));
    let mut newer = data.clone();
    for (p, b) in newer.iter_mut().enumerate().take(150).skip(100) {
        *b = pat(p as u64, 2);
    }
    assert!(check(0, &touched, &[Some(data.clone()), None]).is_ok());
    assert!(check(0, &touched, &[Some(newer), None]).is_ok());
    assert!(check(0, &touched, &[Some(zeroed), None]).is_err());
    let mut foreign = data.clone();
    foreign[5000] = 0xff;
    assert!(check(0, &touched, &[Some(foreign), None]).is_err());
    // After a truncate to 4096 the tail may read as zeros (extended again).
    touched.since.push((Op::Truncate(4096), 4096));
    touched.since.push((Op::Truncate(10_000), 10_000));
    let mut extended = data.clone();
    extended[4096..].fill(0);
    assert!(check(0, &touched, &[Some(extended), None]).is_ok());
}
