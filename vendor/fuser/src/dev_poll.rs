//! /dev/fuse readers that poll for the next request before they sleep.
//!
//! Over /dev/fuse each request wakes a reader blocked in `read`, most often
//! on another core; on a virtual machine that core was halted, and waking it
//! is most of what a metadata request costs (a `stat` answered from memory,
//! an unlink). While a process makes requests back to back (`tar x`, `rm
//! -rf`, a build's `stat`s), the next one comes a few tens of microseconds
//! after the last reply. So a reader about to read polls the device instead
//! for up to the configured window, and only then blocks.
//!
//! The polling is bounded two ways:
//! - one reader polls at a time; the others block as before;
//! - a poll that sees nothing for the whole window makes the next waits
//!   block without polling: 1, then 3, 7, ... up to [`MOST_SKIPPED`] after
//!   each further miss in a row, and none again after a poll that sees a
//!   request. A mount with sparse requests so polls for at most one window
//!   in every [`MOST_SKIPPED`] + 1 waits; a stream of back-to-back
//!   requests polls at every wait, as one late request costs it only the
//!   next wait's poll.
//!
//! A window of zero (the default) leaves the readers blocking as upstream.
//! Tested through a mount: llmfs's tests/mount/transport.rs,
//! `dev_fuse_readers_poll_after_a_request_and_back_off`.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Most waits that block without polling after polls that saw nothing.
const MOST_SKIPPED: u32 = 63;

/// The shared state of a session's /dev/fuse readers.
#[derive(Debug)]
pub(crate) struct DevPoll {
    window: Duration,
    /// A reader is polling now.
    polling: AtomicBool,
    /// Waits left to block without polling.
    skip: AtomicU32,
    /// What `skip` was last set to after a miss (0 after a hit).
    backoff: AtomicU32,
}

impl DevPoll {
    /// `None` for a window of zero: no polling.
    pub(crate) fn new(window: Duration) -> Option<DevPoll> {
        (!window.is_zero()).then(|| DevPoll {
            window,
            polling: AtomicBool::new(false),
            skip: AtomicU32::new(0),
            backoff: AtomicU32::new(0),
        })
    }

    /// Before a reader's `read` of `fd`: polls it for up to the window,
    /// unless another reader polls or this wait is one to skip.
    pub(crate) fn before_read(&self, fd: RawFd) {
        let skipped = self
            .skip
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if skipped || self.polling.swap(true, Ordering::Acquire) {
            return;
        }
        let seen = poll_until(fd, Instant::now() + self.window);
        self.polling.store(false, Ordering::Release);
        let backoff = if seen {
            0
        } else {
            (self.backoff.load(Ordering::Relaxed) * 2 + 1).min(MOST_SKIPPED)
        };
        self.backoff.store(backoff, Ordering::Relaxed);
        self.skip.store(backoff, Ordering::Relaxed);
    }
}

/// Polls `fd` without blocking until it is readable (or in error, which the
/// `read` that follows reports) or `until` passes; whether it became so.
fn poll_until(fd: RawFd, until: Instant) -> bool {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a timeout of zero.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n > 0 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // Let the read meet the error.
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        // Not `sched_yield`: a build that yielded here made unlinks no
        // faster than blocking (paired rounds, llmfs's
        // docs/MEASUREMENTS.md, "Polling /dev/fuse"). The scheduler still
        // preempts the poller for work that needs the CPU.
        std::hint::spin_loop();
    }
}
