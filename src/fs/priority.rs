//! Threads that a request starts run at normal priority.
//!
//! A thread inherits its creator's scheduling policy. The FUSE ring threads
//! run at `SCHED_IDLE` by default (vendor/fuser/src/ring_priority.rs), and a
//! watchdog lifts one while it starves; but a thread one of them starts (a
//! write-back, an encoding helper, a decode) would be idle too and unwatched,
//! while the request that started it (sleeping, so never "starving") waits
//! for it: with busy loops sharing the daemon's session, a 256 MiB write
//! with fsync took 41.1 s and 6.1 s in 2 of 10 rounds against 2.2-3.1 s in
//! the others (bench/results/2026-12-05-ring-load-write-back-priority.tsv).
//! So such a thread leaves `SCHED_IDLE` first, as the daemon's own threads
//! never enter it.

/// Moves the calling thread from `SCHED_IDLE` to `SCHED_OTHER`; a thread at
/// any other policy is left as it is. Where that is refused (no
/// `CAP_SYS_NICE`), the ring threads are not idle either
/// (`idle_can_be_lifted` in fuser), so this is only logged.
pub(crate) fn leave_idle() {
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

#[cfg(test)]
mod tests {
    use super::leave_idle;

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
