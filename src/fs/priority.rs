//! Threads that a request starts run at normal priority, on every CPU.
//!
//! A thread inherits its creator's scheduling policy and CPU affinity. The
//! FUSE ring threads run at `SCHED_IDLE` by default
//! (vendor/fuser/src/ring_priority.rs), each pinned to its queue's CPU
//! (vendor/fuser/src/ring.rs), and a watchdog lifts one while it starves;
//! but a thread one of them starts (a write-back, an encoding helper, a
//! decode, a read-ahead) would be idle too and unwatched, while the request
//! that started it (sleeping, so never "starving") waits for it: with busy
//! loops sharing the daemon's session, a 256 MiB write with fsync took
//! 41.1 s and 6.1 s in 2 of 10 rounds against 2.2-3.1 s in the others
//! (bench/results/2026-12-05-ring-load-write-back-priority.tsv). And it
//! would be pinned to the CPU of the process that made the request, which
//! is the CPU that process wants: work handed to other threads to run
//! beside it (the encoding helpers of a write-back) ran on that one CPU,
//! in turn with each other and with the process. So such a thread leaves
//! `SCHED_IDLE` first and takes the process's CPUs back, as the daemon's
//! own threads never change either.

/// Moves the calling thread from `SCHED_IDLE` to `SCHED_OTHER` (a thread at
/// any other policy is left as it is), and lets it run on every CPU the
/// process's main thread may use. Where the policy change is refused (no
/// `CAP_SYS_NICE`), the ring threads are not idle either
/// (`idle_can_be_lifted` in fuser), so this is only logged; so is an
/// affinity that cannot be read or set (the thread keeps its own).
pub(crate) fn leave_ring_scheduling() {
    leave_idle();
    run_on_process_cpus();
}

fn leave_idle() {
    // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_IDLE {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid sched_param for the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } != 0 {
        log::debug!("leaving SCHED_IDLE: {}", std::io::Error::last_os_error());
    }
}

fn run_on_process_cpus() {
    // SAFETY: a zeroed cpu_set_t is a valid (empty) set, which
    // sched_getaffinity fills for the process's main thread (pid = tgid)
    // and sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(libc::getpid(), size, &mut set) != 0
            || libc::sched_setaffinity(0, size, &set) != 0
        {
            log::debug!(
                "taking the process's CPUs: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{leave_idle, leave_ring_scheduling};

    fn policy() -> libc::c_int {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    fn set(policy: libc::c_int) -> bool {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a valid sched_param for the calling thread.
        unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
    }

    #[test]
    fn a_thread_started_by_an_idle_one_leaves_idle() {
        std::thread::spawn(|| {
            if !set(libc::SCHED_IDLE) {
                return;
            }
            let child = std::thread::spawn(|| {
                let inherited = policy();
                leave_idle();
                (inherited, policy())
            })
            .join()
            .unwrap();
            // Going back needs CAP_SYS_NICE (root here, as in CI).
            let can_lift = set(libc::SCHED_OTHER);
            assert_eq!(child.0, libc::SCHED_IDLE, "a thread inherits SCHED_IDLE");
            if can_lift {
                assert_eq!(child.1, libc::SCHED_OTHER);
            }
        })
        .join()
        .unwrap();
    }

    fn cpus() -> Vec<usize> {
        // SAFETY: fills a zeroed set with the calling thread's affinity.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    fn pin(cpu: usize) {
        // SAFETY: a set holding one CPU the thread may use, for the caller.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
    }

    #[test]
    fn a_thread_started_by_a_pinned_one_takes_the_process_cpus_back() {
        let all = cpus();
        if all.len() < 2 {
            return;
        }
        std::thread::spawn(move || {
            pin(all[0]);
            let child = std::thread::spawn(|| {
                let inherited = cpus();
                leave_ring_scheduling();
                (inherited, cpus())
            })
            .join()
            .unwrap();
            assert_eq!(
                child.0,
                vec![all[0]],
                "a thread inherits its creator's pinning"
            );
            assert_eq!(child.1, all);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn other_policies_are_left_alone() {
        std::thread::spawn(|| {
            let before = policy();
            leave_idle();
            assert_eq!(policy(), before);
            if set(libc::SCHED_BATCH) {
                leave_idle();
                assert_eq!(policy(), libc::SCHED_BATCH);
            }
        })
        .join()
        .unwrap();
    }
}
