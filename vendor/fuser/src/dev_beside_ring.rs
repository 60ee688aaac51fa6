//! The /dev/fuse readers of a session whose requests go through io_uring.
//!
//! Once the rings serve, the kernel still sends forgets and interrupts
//! through /dev/fuse, and each forget it queues wakes a reader blocked in
//! `read`: on a virtual machine, a halted core woken for every unlinked or
//! evicted inode, which cost an unlink about a third of its time. A forget
//! needs no answer and no haste, so once the rings serve, one reader polls
//! /dev/fuse instead (every [`POLL_MIN`] while forgets come, backing off to
//! [`POLL_MAX`] while none do) and the others park (one takes over should
//! the poller return): with nobody waiting in
//! `read`, queueing a forget wakes nobody, and the poller takes what has
//! gathered as one batch. An interrupt waits for the next poll, at most
//! [`POLL_MAX`].
//!
//! The readers block as usual until the rings are seen serving and
//! /dev/fuse has had nothing but forgets and interrupts for [`QUIET`] (the
//! kernel sends requests through /dev/fuse until every queue has an
//! entry); a request of any other kind while polling brings the blocking
//! readers back.

use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use log::debug;

/// How long /dev/fuse must carry only forgets and interrupts before the
/// readers stop blocking.
const QUIET: Duration = Duration::from_secs(1);
/// The poller's pause between looks: the shortest, after a look that found
/// something, doubling up to the longest.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Every reader blocks in `read`.
    Blocking,
    /// One reader polls; the others wait for another mode or for the
    /// poller to return.
    Polling,
    /// The connection is gone: every reader returns.
    Ended,
}

struct Shared {
    mode: Mode,
    /// When /dev/fuse last brought a request other than a forget or an
    /// interrupt.
    last_regular: Instant,
    /// The reader polling, in `Polling`.
    poller: Option<usize>,
}

/// What the /dev/fuse readers and the ring threads of one session share.
pub(crate) struct BesideRing {
    /// Set by the first ring thread that gets a request: the kernel has
    /// every queue, and sends only forgets and interrupts to /dev/fuse.
    ring_serving: AtomicBool,
    shared: Mutex<Shared>,
    wake: Condvar,
}

/// What a reader does next.
pub(crate) enum Next {
    /// Read (blocking: a request is pending, or this reader blocks).
    Read,
    /// Nothing pending: look again later.
    Idle,
    /// Return: the connection is gone.
    Return,
}

impl BesideRing {
    pub(crate) fn new() -> Arc<BesideRing> {
        Arc::new(BesideRing {
            ring_serving: AtomicBool::new(false),
            shared: Mutex::new(Shared {
                mode: Mode::Blocking,
                last_regular: Instant::now(),
                poller: None,
            }),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ring thread got a request.
    pub(crate) fn ring_served(&self) {
        if !self.ring_serving.load(Ordering::Relaxed) {
            self.ring_serving.store(true, Ordering::Relaxed);
        }
    }

    /// A ring thread ended: the connection may be going, so the poller
    /// looks at once instead of at its next poll.
    pub(crate) fn ring_ended(&self) {
        self.wake.notify_all();
    }

    /// Before reader `index` reads: waits while it is parked; for the
    /// poller, whether anything is pending on `fd` (else it pauses for
    /// `pause`, which it doubles).
    pub(crate) fn before_read(&self, index: usize, fd: libc::c_int, pause: &mut Duration) -> Next {
        let mut shared = self.lock();
        loop {
            match shared.mode {
                Mode::Ended => return Next::Return,
                Mode::Blocking => return Next::Read,
                Mode::Polling if shared.poller.is_some_and(|p| p != index) => {
                    shared = self.wake.wait(shared).unwrap_or_else(|p| p.into_inner());
                }
                Mode::Polling => {
                    shared.poller = Some(index);
                    if pending(fd) {
                        *pause = POLL_MIN;
                        return Next::Read;
                    }
                    // Woken early by a ring thread that ended, or by a
                    // reader that ended: look again.
                    let (guard, _) = self
                        .wake
                        .wait_timeout(shared, *pause)
                        .unwrap_or_else(|p| p.into_inner());
                    drop(guard);
                    *pause = (*pause * 2).min(POLL_MAX);
                    return Next::Idle;
                }
            }
        }
    }

    /// After a read brought a request: `light` for a forget or an
    /// interrupt.
    pub(crate) fn after_read(&self, light: bool) {
        let mut shared = self.lock();
        let now = Instant::now();
        if !light {
            shared.last_regular = now;
            if shared.mode == Mode::Polling {
                debug!("/dev/fuse: a request beside the rings; readers blocking again");
                shared.mode = Mode::Blocking;
                shared.poller = None;
                self.wake.notify_all();
            }
        } else if shared.mode == Mode::Blocking
            && self.ring_serving.load(Ordering::Relaxed)
            && now.duration_since(shared.last_regular) >= QUIET
        {
            debug!("/dev/fuse: only forgets and interrupts beside the rings; one reader polls");
            shared.mode = Mode::Polling;
        }
    }

    /// Reader `index` returns: with `connection_ended` (the device said so,
    /// or the session was destroyed) the others return too; after an error
    /// of its own, a parked reader takes over its polling.
    pub(crate) fn reader_returns(&self, index: usize, connection_ended: bool) {
        let mut shared = self.lock();
        if connection_ended {
            shared.mode = Mode::Ended;
        } else if shared.poller == Some(index) {
            shared.poller = None;
        }
        self.wake.notify_all();
    }

    /// The first pause of a poller.
    pub(crate) fn first_pause() -> Duration {
        POLL_MIN
    }
}

/// Whether a read of `fd` would return at once (a request, or the
/// connection's end). A zero timeout puts nothing on the device's wait
/// queue, so a forget queued meanwhile wakes nobody.
fn pending(fd: libc::c_int) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    // An error of poll itself: let the read report it.
    n != 0
}
