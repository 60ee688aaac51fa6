//! Large reads served off their queue's CPU.
//!
//! A ring thread is pinned to its queue's CPU, where the processes whose
//! requests the queue carries run (ring.rs), and by default runs there at
//! `SCHED_IDLE` (ring_priority.rs): right for a small request, whose caller
//! sleeps while it is served. But the kernel's read-ahead of a file read
//! sequentially comes as READs of up to `max_pages` that queue on the
//! reader's CPU two at a time, and pinned there they were served one after
//! the other while the other CPUs idled. Measured by llmfs
//! (`TRACE=1 WARM_BACKING=1 bash bench/seq_read.sh 3`,
//! bench/results/2026-12-05-seq-read-traced.tsv), a 256 KiB READ took
//! 372-406 µs on average against 234-250 µs over /dev/fuse, whose threads
//! run anywhere, and a sequential read ran at 1057-1142 MB/s against
//! 1443-1517; served off the CPU, 271-355 µs and 1078-1363 MB/s.
//! So a thread that takes a READ of at least [`LARGE_READ`] bytes may run on
//! every CPU of the process, at normal priority, until it takes a request
//! that is not such a read; then it goes back to its CPU and policy.

use log::debug;

/// Fewest bytes a READ asks for to be served off the queue's CPU: the
/// kernel's read-ahead asks for more, a program's small read for less.
pub(crate) const LARGE_READ: u32 = 128 * 1024;

/// Where a ring thread stands: on its CPU, or spread over the process's.
pub(crate) struct Spread {
    cpu: usize,
    /// Spread out: and whether the thread was at `SCHED_IDLE` before.
    spread: Option<bool>,
}

impl Spread {
    /// A thread pinned to `cpu`.
    pub(crate) fn pinned_to(cpu: usize) -> Spread {
        Spread { cpu, spread: None }
    }

    /// Called before each request: spreads the thread for a large read,
    /// brings it back for anything else.
    pub(crate) fn before(&mut self, large_read: bool) {
        match (large_read, self.spread) {
            (true, None) => {
                // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
                let was_idle = unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE;
                if was_idle {
                    set_policy(libc::SCHED_OTHER);
                }
                set_cpus(&process_cpus());
                self.spread = Some(was_idle);
            }
            (false, Some(was_idle)) => {
                crate::ring::pin_to_cpu(self.cpu);
                if was_idle {
                    set_policy(libc::SCHED_IDLE);
                }
                self.spread = None;
            }
            _ => {}
        }
    }
}

/// The calling thread to `policy`; a refusal (no `CAP_SYS_NICE`) leaves it.
fn set_policy(policy: libc::c_int) {
    if let Err(e) = crate::ring_priority::set_policy(0, policy) {
        debug!("ring thread: policy {policy}: {e}");
    }
}

/// The CPUs the process's main thread may run on.
fn process_cpus() -> libc::cpu_set_t {
    // SAFETY: a zeroed cpu_set_t is a valid (empty) set, which
    // sched_getaffinity fills for the main thread (pid = tgid).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(
            libc::getpid(),
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        ) != 0
        {
            debug!(
                "ring thread: the process's CPUs: {}",
                std::io::Error::last_os_error()
            );
        }
        set
    }
}

fn set_cpus(set: &libc::cpu_set_t) {
    // SAFETY: a valid set for the calling thread; an empty one (the lookup
    // failed) is refused with EINVAL and changes nothing.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        debug!(
            "ring thread: spreading: {}",
            std::io::Error::last_os_error()
        );
    }
}
