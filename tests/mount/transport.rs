//! How requests reach the daemon: FUSE over io_uring where the kernel offers
//! it (one queue per CPU, served by threads pinned there), /dev/fuse
//! otherwise or with `ring_threads=0`. The whole mount suite runs over
//! whichever the machine's `enable_uring` gives (.ci/test runs it both
//! ways); these tests check which one a mount took, and that requests from
//! every CPU are answered through it.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::Mounted;

/// Whether the running kernel offers FUSE over io_uring to new mounts.
fn kernel_offers_ring() -> bool {
    fs::read_to_string("/sys/module/fuse/parameters/enable_uring")
        .is_ok_and(|v| v.trim() == "Y" || v.trim() == "1")
}

/// The /proc directories of the daemon's threads whose name `keep` takes.
fn daemon_threads(pid: u32, keep: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().path())
        .filter(|t| {
            keep(
                fs::read_to_string(t.join("comm"))
                    .unwrap_or_default()
                    .trim(),
            )
        })
        .collect()
}

/// The thread ids of the daemon's threads whose name `keep` takes.
fn thread_ids(pid: u32, keep: impl Fn(&str) -> bool) -> Vec<libc::pid_t> {
    daemon_threads(pid, keep)
        .iter()
        .map(|t| t.file_name().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

/// The thread ids of the daemon's ring threads (named `fuser-ring-*`).
fn ring_thread_ids(pid: u32) -> Vec<libc::pid_t> {
    thread_ids(pid, |name| name.starts_with("fuser-ring-"))
}

/// A thread's scheduling policy.
fn policy_of(tid: libc::pid_t) -> libc::c_int {
    // SAFETY: a plain query of another thread's policy.
    unsafe { libc::sched_getscheduler(tid) }
}

/// How many CPUs a thread may run on (sched_getaffinity); 0 once it is
/// gone.
fn cpus_of(tid: libc::pid_t) -> usize {
    // SAFETY: fills a zeroed set with another thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

/// Runs `work` on a thread of its own, calling `sample` over and over
/// until it ends; its result.
fn sampling_during<T: Send>(work: impl FnOnce() -> T + Send, mut sample: impl FnMut()) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let out = work();
            done.store(true, Ordering::Relaxed);
            out
        });
        while !done.load(Ordering::Relaxed) {
            sample();
        }
        worker.join().unwrap()
    })
}

fn ring_threads(pid: u32) -> usize {
    ring_thread_ids(pid).len()
}

/// Requests from every CPU answered, then a clean unmount and fsck.
fn serve_and_check(mut m: Mounted) {
    work_from_every_cpu(&m.mnt);
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid out-buffer for sched_getaffinity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size matches the buffer.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0);
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: in bounds of the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`.
fn pin_this_thread(cpu: usize) {
    // SAFETY: a zeroed set with one CPU, for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// From a thread pinned to each CPU in turn: create, write, fsync, read
/// back, rename, list, unlink; every answer checked.
fn work_from_every_cpu(mnt: &Path) {
    for cpu in allowed_cpus() {
        let dir = mnt.join(format!("cpu{cpu}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                pin_this_thread(cpu);
                fs::create_dir(&dir).unwrap();
                let data: Vec<u8> = (0..300_000u32)
                    .map(|i| (i * 7 + cpu as u32) as u8)
                    .collect();
                let mut f = fs::File::create(dir.join("a")).unwrap();
                f.write_all(&data).unwrap();
                f.sync_all().unwrap();
                drop(f);
                fs::rename(dir.join("a"), dir.join("b")).unwrap();
                let mut back = Vec::new();
                fs::File::open(dir.join("b"))
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap();
                assert!(back == data, "cpu {cpu}: data differs");
                let names: Vec<_> = fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(names, vec![std::ffi::OsString::from("b")]);
                fs::remove_file(dir.join("b")).unwrap();
                fs::remove_dir(&dir).unwrap();
            });
        });
    }
}

#[test]
fn requests_come_through_io_uring_where_the_kernel_offers_it() {
    require_fuse!();
    // Read before mounting: the kernel decides at the mount's handshake.
    let offered = kernel_offers_ring();
    let m = Mounted::new(&[]);
    let pid = m.daemon_pid().unwrap();
    let log = m.log_once_mounted();
    if offered {
        assert!(
            log.contains("FUSE over io_uring, 2 threads per CPU"),
            "{log}"
        );
        // Two threads for each possible CPU (the kernel's queues), started
        // once the mount is live.
        let cpus = fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
        let last: usize = cpus
            .trim()
            .rsplit(['-', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ring_threads(pid) < 2 * (last + 1) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ring_threads(pid), 2 * (last + 1), "{log}");
    } else {
        let rings = ring_threads(pid);
        assert!(log.contains("; /dev/fuse)"), "{log}");
        assert_eq!(rings, 0);
    }
    serve_and_check(m);
}

#[test]
fn ring_threads_0_keeps_to_dev_fuse() {
    require_fuse!();
    let m = Mounted::new(&["-o", "ring_threads=0"]);
    let pid = m.daemon_pid().unwrap();
    assert_eq!(ring_threads(pid), 0);
    let log = m.log_once_mounted();
    assert!(log.contains("; /dev/fuse)"), "{log}");
    serve_and_check(m);
}

/// The ring threads' scheduling policies.
fn ring_policies(pid: u32) -> Vec<libc::c_int> {
    ring_thread_ids(pid).into_iter().map(policy_of).collect()
}

/// Waits (10 s at most) until `ok` holds for the ring threads' policies;
/// returns the last ones seen.
fn wait_for_policies(pid: u32, ok: impl Fn(&[libc::c_int]) -> bool) -> Vec<libc::c_int> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let policies = ring_policies(pid);
        if (!policies.is_empty() && ok(&policies)) || Instant::now() > deadline {
            return policies;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn all(policy: libc::c_int) -> impl Fn(&[libc::c_int]) -> bool {
    move |ps| !ps.is_empty() && ps.iter().all(|&p| p == policy)
}

fn any(policy: libc::c_int) -> impl Fn(&[libc::c_int]) -> bool {
    move |ps| ps.contains(&policy)
}

/// Idle by default (this suite runs as root, which may lift a thread back);
/// `ring_priority=normal` and the older `ring_idle` as asked. (An idle
/// thread that starves while other tests load the CPUs is lifted for a
/// while, so idle is checked on some thread, normal on all.)
#[test]
fn ring_threads_run_at_sched_idle_unless_told_otherwise() {
    require_fuse!();
    let offered = kernel_offers_ring();
    for (options, idle) in [
        (&[][..], true),
        (&["-o", "ring_priority=normal"][..], false),
        (&["-o", "ring_idle"][..], true),
        (&["--ring-priority", "normal"][..], false),
    ] {
        let m = Mounted::new(options);
        let pid = m.daemon_pid().unwrap();
        if offered {
            let log = m.log_once_mounted();
            assert_eq!(
                log.contains("2 threads per CPU at SCHED_IDLE"),
                idle,
                "{options:?}: {log}"
            );
            let check = |ps: &[libc::c_int]| {
                if idle {
                    any(libc::SCHED_IDLE)(ps)
                } else {
                    all(libc::SCHED_OTHER)(ps)
                }
            };
            let policies = wait_for_policies(pid, check);
            assert!(check(&policies), "{options:?}: {policies:?}");
        } else {
            assert_eq!(ring_threads(pid), 0);
        }
        serve_and_check(m);
    }
}

/// A daemon that could not lift a starving thread back from `SCHED_IDLE`
/// (no `CAP_SYS_NICE`, the default `RLIMIT_NICE` of 0) keeps its ring
/// threads at normal priority, and still serves.
#[test]
fn without_cap_sys_nice_ring_threads_stay_at_normal_priority() {
    require_fuse!();
    if !kernel_offers_ring() {
        return;
    }
    let m = Mounted::launched(
        &[
            "setpriv",
            "--bounding-set=-sys_nice",
            "--inh-caps=-sys_nice",
            "--",
        ],
        &[],
    );
    let pid = m.daemon_pid().unwrap();
    // (fuser's warning of why goes to the log at the default filter; the
    // tests log llmfs's messages only.)
    let log = m.log_once_mounted();
    assert!(
        log.contains("FUSE over io_uring, 2 threads per CPU"),
        "{log}"
    );
    assert!(!log.contains("SCHED_IDLE"), "{log}");
    let policies = wait_for_policies(pid, all(libc::SCHED_OTHER));
    assert!(all(libc::SCHED_OTHER)(&policies), "{policies:?}");
    serve_and_check(m);
}

/// A thread that a ring thread starts (a write-back of a large write)
/// would inherit `SCHED_IDLE`, unwatched, while the request waits for it,
/// and the ring thread's one CPU: it runs at normal priority on every CPU
/// of the daemon instead (src/fs/priority.rs).
#[test]
fn threads_a_request_starts_leave_sched_idle_and_its_cpu() {
    require_fuse!();
    if !kernel_offers_ring() {
        return;
    }
    let m = Mounted::new(&[]);
    let pid = m.daemon_pid().unwrap();
    // 96 MiB passes half the 32 MiB dirty budget several times over: each
    // time the file's dirty blocks go to a write-back thread.
    let data = crate::common::noise(96 << 20, 0x5eed_0f1d);
    let path = m.path("big");
    // Each write-back thread's policies and CPU counts in the order seen.
    // A thread seen in its first moments still has its creator's: it
    // leaves them as the first thing it does, so only what it has after
    // that counts.
    let mut seen: std::collections::HashMap<libc::pid_t, Vec<(libc::c_int, usize)>> =
        Default::default();
    // The daemon's CPUs (its main thread's), which a pinned ring thread
    // passes on as one.
    let all = cpus_of(pid as libc::pid_t);
    sampling_during(
        || {
            let mut f = fs::File::create(&path).unwrap();
            f.write_all(&data).unwrap();
            f.sync_all().unwrap();
        },
        || {
            for tid in thread_ids(pid, |name| name == "llmfs-writeback") {
                let (p, cpus) = (policy_of(tid), cpus_of(tid));
                // -1, 0: gone meanwhile.
                if p >= 0 && cpus > 0 {
                    seen.entry(tid).or_default().push((p, cpus));
                }
            }
        },
    );
    let settled: Vec<_> = seen.values().filter(|ps| ps.len() >= 3).collect();
    assert!(
        !settled.is_empty(),
        "no write-back thread was seen for long: {seen:?}"
    );
    for ps in settled {
        let idle = ps.iter().filter(|&&(p, _)| p == libc::SCHED_IDLE).count();
        let (policy, cpus) = *ps.last().unwrap();
        assert_ne!(
            policy,
            libc::SCHED_IDLE,
            "a write-back thread stayed at SCHED_IDLE ({idle} of {} looks)",
            ps.len()
        );
        assert_eq!(
            cpus, all,
            "a write-back thread stayed on fewer CPUs than the daemon's: {ps:?}"
        );
    }
    assert_eq!(fs::read(m.path("big")).unwrap(), data);
    serve_and_check(m);
}

/// The kernel's read-ahead of a file read sequentially queues large READs
/// on the reader's CPU: the ring thread that takes one may run on every
/// CPU of the daemon, at normal priority, until a request of another kind
/// comes (vendor/fuser/src/ring_large_reads.rs).
#[test]
fn large_reads_are_served_off_the_queues_cpu() {
    require_fuse!();
    if !kernel_offers_ring() {
        return;
    }
    let m = Mounted::new(&[]);
    let pid = m.daemon_pid().unwrap();
    let all = cpus_of(pid as libc::pid_t);
    if all < 2 {
        return;
    }
    let data = crate::common::noise(64 << 20, 0x1a29e);
    let path = m.path("big");
    fs::write(&path, &data).unwrap();
    // Out of the page cache, so that reading it sends READs.
    let f = fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: advice on a valid descriptor.
    let dropped = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    assert_eq!(dropped, 0);
    drop(f);
    let mut spread = Vec::new();
    let got = sampling_during(
        || fs::read(&path).unwrap(),
        || {
            for tid in ring_thread_ids(pid) {
                let (p, cpus) = (policy_of(tid), cpus_of(tid));
                if cpus == all && p != libc::SCHED_IDLE {
                    spread.push(tid);
                }
            }
        },
    );
    assert!(got == data, "the file read back differs");
    assert!(
        !spread.is_empty(),
        "no ring thread was seen off its CPU during a sequential read"
    );
    serve_and_check(m);
}

/// Busy loops at normal priority on every CPU starve a `SCHED_IDLE` ring
/// thread: the watchdog lifts it to normal priority, the requests it
/// serves are answered, and once the load is gone it goes back to idle.
#[test]
fn a_starving_ring_thread_is_lifted_and_returns_to_idle() {
    require_fuse!();
    if !kernel_offers_ring() {
        return;
    }
    let m = Mounted::new(&[]);
    let pid = m.daemon_pid().unwrap();
    let policies = wait_for_policies(pid, any(libc::SCHED_IDLE));
    assert!(any(libc::SCHED_IDLE)(&policies), "{policies:?}");
    let stop = AtomicBool::new(false);
    // Creates and unlinks (never answered from the kernel's caches) from
    // every CPU until `until` holds; each one checked.
    let work_until = |until: &dyn Fn() -> bool| {
        let mut n = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !until() {
            assert!(Instant::now() < deadline, "{:?}", ring_policies(pid));
            for cpu in allowed_cpus() {
                pin_this_thread(cpu);
                let f = m.mnt.join(format!("f{n}"));
                fs::write(&f, n.to_le_bytes()).unwrap();
                assert_eq!(fs::read(&f).unwrap(), n.to_le_bytes());
                fs::remove_file(&f).unwrap();
                n += 1;
            }
        }
    };
    // The threads lifted while the busy loops ran.
    let lifted = |tids: &[libc::pid_t], policy| {
        tids.iter()
            .copied()
            .filter(|&tid| policy_of(tid) == policy)
            .collect::<Vec<_>>()
    };
    let tids = ring_thread_ids(pid);
    let were_lifted = std::cell::RefCell::new(Vec::new());
    std::thread::scope(|s| {
        for cpu in allowed_cpus() {
            let stop = &stop;
            s.spawn(move || {
                pin_this_thread(cpu);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        work_until(&|| {
            *were_lifted.borrow_mut() = lifted(&tids, libc::SCHED_OTHER);
            !were_lifted.borrow().is_empty()
        });
        stop.store(true, Ordering::Relaxed);
    });
    // Load gone: when its lift is up (a second or more), a thread that
    // hardly waited meanwhile goes back to idle.
    let were_lifted = were_lifted.into_inner();
    work_until(&|| !lifted(&were_lifted, libc::SCHED_IDLE).is_empty());
    serve_and_check(m);
}

/// Inodes in use on the volume (its statfs: files less free ones).
fn inodes_used(mnt: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mnt.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-buffer; the path is a C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut s) }, 0);
    s.f_files - s.f_ffree
}

/// The /proc directories of the daemon's /dev/fuse readers (`fuser-N`).
fn dev_reader_threads(pid: u32) -> Vec<std::path::PathBuf> {
    daemon_threads(pid, |name| {
        name.strip_prefix("fuser-")
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })
}

/// How many /dev/fuse readers the daemon has (all started once a few
/// requests have been answered).
fn dev_readers(pid: u32) -> usize {
    dev_reader_threads(pid).len()
}

/// The daemon's /dev/fuse readers (`fuser-N`) waiting in the device's
/// read, from their wchan; None where the kernel does not show it.
fn readers_waiting_on_the_device(pid: u32) -> Option<usize> {
    let mut waiting = 0;
    let mut shown = false;
    let readers = dev_reader_threads(pid);
    for t in readers {
        let wchan = fs::read_to_string(t.join("wchan")).unwrap_or_default();
        shown |= wchan != "0" && !wchan.is_empty();
        waiting += usize::from(wchan == "fuse_dev_do_read");
    }
    shown.then_some(waiting)
}

/// Beside the rings the kernel sends only forgets and interrupts through
/// /dev/fuse. Once the rings serve, no reader waits on the device (so
/// queueing a forget wakes nobody), and the forgets still reach the
/// daemon: the inodes of unlinked files are deleted.
#[test]
fn forgets_beside_the_rings_are_polled_and_reach_the_daemon() {
    require_fuse!();
    if !kernel_offers_ring() {
        return;
    }
    let m = Mounted::new(&[]);
    let pid = m.daemon_pid().unwrap();
    let d = m.mnt.join("d");
    fs::create_dir(&d).unwrap();
    let base = inodes_used(&m.mnt);
    // Rounds of creates and unlinks (each unlink a forget) until the
    // readers have stopped waiting on the device.
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 0.. {
        for i in 0..50 {
            fs::write(d.join(format!("r{round}-{i}")), b"x").unwrap();
        }
        for i in 0..50 {
            fs::remove_file(d.join(format!("r{round}-{i}"))).unwrap();
        }
        match readers_waiting_on_the_device(pid) {
            Some(0) | None => break,
            Some(n) => assert!(
                Instant::now() < deadline,
                "{n} readers still wait on /dev/fuse"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every forget arrives: the forgotten inodes go with the next write
    // transaction, so only the file written then is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        fs::write(d.join("y"), b"y").unwrap();
        let used = inodes_used(&m.mnt);
        fs::remove_file(d.join("y")).unwrap();
        if used == base + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} inodes in use, {base} before the files and one file now",
            used
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve_and_check(m);
}

/// Over `lookups` lookups of absent names 30 ms apart, after how many a
/// /dev/fuse reader of the daemon stayed off the device (not waiting in
/// its `read`) for 14 ms or more once the lookup had returned: a reader
/// polling for the next request, since answering a lookup takes far less
/// (a reader kept from a CPU that long by other work may be counted too,
/// rarely).
/// None where the kernel does not show a thread's wait channel.
fn long_polls_after_sparse_lookups(m: &Mounted, lookups: usize) -> Option<usize> {
    let pid = m.daemon_pid().unwrap();
    // Let the mount's own requests settle first.
    std::thread::sleep(Duration::from_millis(100));
    let mut long = 0;
    for i in 0..lookups {
        let start = Instant::now();
        assert!(fs::metadata(m.mnt.join(format!("absent-{i}"))).is_err());
        let returned = Instant::now();
        // How long some reader stays off the device, sampled each ms.
        let mut off = Duration::ZERO;
        while returned.elapsed() < Duration::from_millis(24) {
            std::thread::sleep(Duration::from_millis(1));
            if readers_waiting_on_the_device(pid)? == dev_readers(pid) {
                break;
            }
            off = returned.elapsed();
        }
        long += usize::from(off >= Duration::from_millis(14));
        let gap = Duration::from_millis(30);
        std::thread::sleep(gap.saturating_sub(start.elapsed()));
    }
    Some(long)
}

/// Over /dev/fuse a reader about to sleep polls the device for the next
/// request first, for up to `dev_poll_us` (vendor/fuser/src/dev_poll.rs),
/// and polls that see nothing make the next waits skip polling (1, 3, 7,
/// ... waits): requests 30 ms apart with a 20 ms window are polled after
/// a few, not after each. With `dev_poll_us=0` no reader polls.
#[test]
fn dev_fuse_readers_poll_after_a_request_and_back_off() {
    require_fuse!();
    let lookups = 40;
    let m = Mounted::new(&["-o", "ring_threads=0,dev_poll_us=20000"]);
    let Some(polled) = long_polls_after_sparse_lookups(&m, lookups) else {
        return;
    };
    serve_and_check(m);
    // Polls at about the 1st, 3rd, 7th, 15th and 31st waits of the 40.
    assert!(
        (2..=15).contains(&polled),
        "a reader polled after {polled} of {lookups} sparse lookups"
    );
    let m = Mounted::new(&["-o", "ring_threads=0,dev_poll_us=0"]);
    let blocked = long_polls_after_sparse_lookups(&m, lookups).unwrap();
    serve_and_check(m);
    assert!(blocked <= 1, "{blocked} long polls with dev_poll_us=0");
}
