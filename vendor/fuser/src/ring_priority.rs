//! Ring threads at `SCHED_IDLE`, lifted to normal priority while they starve.
//!
//! Why idle: when a reply wakes its caller, the ring thread is still running
//! on the caller's core. At normal priority the scheduler then moves the
//! caller to an idle core, and waking that halted core is what the ring was
//! to save; a core running only `SCHED_IDLE` threads counts as idle, so the
//! caller stays.
//!
//! The price: any other work on that core runs first. When other processes
//! keep the cores busy, a `SCHED_IDLE` thread gets a sliver of the CPU, and
//! the requests it serves (and the locks it holds meanwhile) wait. So each
//! ring thread watches how long it waited to run (`run_delay` in its
//! `/proc/thread-self/schedstat`, read at most every [`WINDOW`]): once that
//! is a large part of the time passed, it goes to normal priority for a
//! while ([`LIFT_MIN`]). It returns to idle only after a while at normal
//! priority in which it hardly waited (while it waited, other work wanted
//! its core, and idle would starve it again); starving again soon after,
//! it stays lifted twice as long (up to [`LIFT_MAX`]), so a lasting load
//! costs a few slow requests per thread, not one every second.
//!
//! Going back from `SCHED_IDLE` needs root, `CAP_SYS_NICE` or an
//! `RLIMIT_NICE` of 20; without it idle would be a one-way door, so
//! [`idle_can_be_lifted`] is asked first and the threads stay at normal
//! priority.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;
use std::time::Instant;

use log::debug;

/// How often, at most, a ring thread reads its `run_delay`.
const WINDOW: Duration = Duration::from_millis(20);
/// Starving: waited to run for more than 1/`STARVED_SHARE` of a window's
/// time, and for at least [`STARVED_MIN`]. A thread that is merely woken
/// while its caller finishes waits microseconds per request.
const STARVED_SHARE: u32 = 4;
const STARVED_MIN: Duration = Duration::from_millis(2);
/// How long a starving thread stays at normal priority before it looks
/// again: back to idle if it waited for less than 1/`BUSY_SHARE` of that
/// time, else another while. The first lift is [`LIFT_MIN`]; one that
/// starts within its predecessor's length after a return to idle is
/// twice as long, up to [`LIFT_MAX`].
const LIFT_MIN: Duration = Duration::from_secs(1);
const LIFT_MAX: Duration = Duration::from_secs(64);
const BUSY_SHARE: u32 = 16;

fn set_policy(policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid sched_param for the calling thread (pid 0).
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a thread of this process may go to `SCHED_IDLE` and back: tried
/// on a short-lived thread of its own.
pub(crate) fn idle_can_be_lifted() -> bool {
    std::thread::spawn(|| set_policy(libc::SCHED_IDLE).and_then(|()| set_policy(libc::SCHED_OTHER)))
        .join()
        .map(|r| {
            if let Err(e) = &r {
                debug!("SCHED_IDLE and back: {e}");
            }
            r.is_ok()
        })
        .unwrap_or(false)
}

/// One ring thread's priority: idle, or lifted until a moment.
pub(crate) struct IdleGuard {
    qid: u16,
    schedstat: File,
    window_start: Instant,
    delay_at_start: Duration,
    lifted_until: Option<Instant>,
    /// The current (or last) lift's length.
    lift_for: Duration,
    /// When the thread last went back to idle after a lift.
    returned: Option<Instant>,
}

impl IdleGuard {
    /// Puts the calling thread at `SCHED_IDLE` and starts watching it.
    pub(crate) fn start(qid: u16) -> io::Result<IdleGuard> {
        let schedstat = File::open("/proc/thread-self/schedstat")?;
        set_policy(libc::SCHED_IDLE)?;
        let mut guard = IdleGuard {
            qid,
            schedstat,
            window_start: Instant::now(),
            delay_at_start: Duration::ZERO,
            lifted_until: None,
            lift_for: LIFT_MIN,
            returned: None,
        };
        guard.delay_at_start = guard.run_delay()?;
        Ok(guard)
    }

    /// Called as each request arrives: lifts a starving thread; when a
    /// lift's time is up, returns the thread to idle if it ran freely
    /// meanwhile, else keeps it lifted for another while.
    pub(crate) fn on_request(&mut self) {
        let now = Instant::now();
        let wall = now.duration_since(self.window_start);
        match self.lifted_until {
            Some(until) if now < until => return,
            None if wall < WINDOW => return,
            _ => {}
        }
        let Ok(delay) = self.run_delay() else {
            return;
        };
        let waited = delay.saturating_sub(self.delay_at_start);
        if self.lifted_until.is_some() {
            if waited.saturating_mul(BUSY_SHARE) > wall {
                // Other work wanted this core even at normal priority:
                // idle would starve again.
                self.window_start = now;
                self.delay_at_start = delay;
                self.lifted_until = Some(now + self.lift_for);
            } else if self.set(libc::SCHED_IDLE, now) {
                self.lifted_until = None;
                self.returned = Some(now);
            }
            return;
        }
        self.window_start = now;
        self.delay_at_start = delay;
        if waited >= STARVED_MIN && waited.saturating_mul(STARVED_SHARE) > wall {
            // Starving again soon after a lift: the load outlasted it, so
            // the next lift is longer. Idle for long enough: start over.
            let soon = self
                .returned
                .is_some_and(|at| now.duration_since(at) < self.lift_for);
            self.lift_for = if soon {
                (self.lift_for * 2).min(LIFT_MAX)
            } else {
                LIFT_MIN
            };
            if self.set(libc::SCHED_OTHER, now) {
                self.lifted_until = Some(now + self.lift_for);
                debug!(
                    "ring queue {}: waited {waited:?} to run in {wall:?} at SCHED_IDLE; \
                     normal priority for {:?} at least",
                    self.qid, self.lift_for
                );
            }
        }
    }

    /// Switches policy; on success a new window starts at `now`.
    fn set(&mut self, policy: libc::c_int, now: Instant) -> bool {
        match set_policy(policy).and_then(|()| self.run_delay()) {
            Ok(delay) => {
                self.window_start = now;
                self.delay_at_start = delay;
                true
            }
            Err(e) => {
                debug!("ring queue {}: scheduling policy {policy}: {e}", self.qid);
                false
            }
        }
    }

    /// This thread's total time runnable but waiting for a CPU: the second
    /// field of its schedstat (nanoseconds).
    fn run_delay(&self) -> io::Result<Duration> {
        let mut buf = [0u8; 96];
        let n = self.schedstat.read_at(&mut buf, 0)?;
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.split_ascii_whitespace().nth(1))
            .and_then(|f| f.parse().ok())
            .map(Duration::from_nanos)
            .ok_or_else(|| io::Error::other("unreadable schedstat"))
    }
}
