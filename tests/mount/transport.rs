//! How requests reach the daemon: FUSE over io_uring where the kernel offers
//! it (one queue per CPU, served by threads pinned there), /dev/fuse
//! otherwise or with `ring_threads=0`. The whole mount suite runs over
//! whichever the machine's `enable_uring` gives (.ci/test runs it both
//! ways); these tests check which one a mount took, and that requests from
//! every CPU are answered through it.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::common::Mounted;

/// Whether the running kernel offers FUSE over io_uring to new mounts.
fn kernel_offers_ring() -> bool {
    fs::read_to_string("/sys/module/fuse/parameters/enable_uring")
        .is_ok_and(|v| v.trim() == "Y" || v.trim() == "1")
}

/// The thread ids of the daemon's ring threads (named `fuser-ring-*`).
fn ring_thread_ids(pid: u32) -> Vec<libc::pid_t> {
    let mut tids = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let name = fs::read_to_string(t.join("comm")).unwrap_or_default();
        if name.starts_with("fuser-ring-") {
            tids.push(t.file_name().unwrap().to_str().unwrap().parse().unwrap());
        }
    }
    tids
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

/// From a thread pinned to each CPU in turn: create, write, fsync, read
/// back, rename, list, unlink; every answer checked.
fn work_from_every_cpu(mnt: &Path) {
    for cpu in allowed_cpus() {
        let dir = mnt.join(format!("cpu{cpu}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a zeroed set with one CPU, for this thread only.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    assert_eq!(
                        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
                        0
                    );
                }
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
    let log = m.log_text();
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ring_threads(pid) < 2 * (last + 1) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
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
    assert!(m.log_text().contains("; /dev/fuse)"), "{}", m.log_text());
    serve_and_check(m);
}

#[test]
fn ring_idle_runs_the_ring_threads_at_sched_idle() {
    require_fuse!();
    let offered = kernel_offers_ring();
    let m = Mounted::new(&["-o", "ring_idle"]);
    let pid = m.daemon_pid().unwrap();
    if offered {
        let log = m.log_text();
        assert!(log.contains("2 threads per CPU at SCHED_IDLE"), "{log}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let policies = loop {
            // The ring threads' scheduling policies, once they have set them.
            let policies: Vec<_> = ring_thread_ids(pid)
                .into_iter()
                // SAFETY: a plain query of another thread's policy.
                .map(|tid| unsafe { libc::sched_getscheduler(tid) })
                .collect();
            let all_idle = !policies.is_empty() && policies.iter().all(|&p| p == libc::SCHED_IDLE);
            if all_idle || std::time::Instant::now() > deadline {
                break policies;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(
            !policies.is_empty() && policies.iter().all(|&p| p == libc::SCHED_IDLE),
            "{policies:?}"
        );
    } else {
        assert_eq!(ring_threads(pid), 0);
    }
    serve_and_check(m);
}
