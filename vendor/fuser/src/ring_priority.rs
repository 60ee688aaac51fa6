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
//! the requests it serves (and the locks it holds meanwhile) wait. A
//! starving thread cannot notice its own starvation until it runs, so one
//! watchdog thread at normal priority samples every idle ring thread (its
//! state and `schedstat` in /proc) every [`PERIOD`]: one that was runnable
//! at two samples without running in between, or that waited to run for
//! more than 1/[`STARVED_SHARE`] of the period, is lifted to normal
//! priority for a while ([`LIFT_MIN`]: short, since a burst of other work
//! on the core, the daemon's own included, looks the same for a period,
//! and a lift that outlasts it costs what idle saves). When that is up it
//! returns to idle only if it hardly waited meanwhile (1/[`BUSY_SHARE`]:
//! while it waited, other work wanted its core, and idle would starve it
//! again); starving again soon after returning, its next lift is twice as
//! long (up to [`LIFT_MAX`]), so a lasting load costs a few short stalls
//! per thread.
//! While every ring thread sleeps the watchdog samples every [`QUIET_PERIOD`]
//! only, so an unused mount does not wake a core a hundred times a second.
//!
//! Going back from `SCHED_IDLE` needs root, `CAP_SYS_NICE` or an
//! `RLIMIT_NICE` of 20; without it idle would be a one-way door, so
//! [`idle_can_be_lifted`] is asked first and the threads stay at normal
//! priority.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;
use std::time::Duration;
use std::time::Instant;

use log::debug;
use log::warn;

/// How often the watchdog samples the idle ring threads while any is
/// awake, and while all sleep.
const PERIOD: Duration = Duration::from_millis(10);
const QUIET_PERIOD: Duration = Duration::from_millis(200);
/// Starving: waited to run for more than 1/`STARVED_SHARE` of a period.
const STARVED_SHARE: u32 = 4;
/// How long a lifted thread stays at normal priority before it is looked at
/// again: back to idle if it waited for less than 1/`BUSY_SHARE` of that
/// time, else another while.
const LIFT_MIN: Duration = Duration::from_millis(100);
const LIFT_MAX: Duration = Duration::from_secs(64);
const BUSY_SHARE: u32 = 16;

pub(crate) fn set_policy(tid: libc::pid_t, policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid sched_param; tid 0 is the calling thread, any other a
    // thread of this process.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a thread of this process may go to `SCHED_IDLE` and back: tried
/// on a short-lived thread of its own.
pub(crate) fn idle_can_be_lifted() -> bool {
    std::thread::spawn(|| {
        set_policy(0, libc::SCHED_IDLE).and_then(|()| set_policy(0, libc::SCHED_OTHER))
    })
    .join()
    .map(|r| {
        if let Err(e) = &r {
            debug!("SCHED_IDLE and back: {e}");
        }
        r.is_ok()
    })
    .unwrap_or(false)
}

/// One sample of a thread.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Runnable (running or waiting for a CPU), not sleeping.
    runnable: bool,
    /// Time run, and time waited to run, in total.
    ran: Duration,
    waited: Duration,
}

/// An idle ring thread under watch.
struct Watched {
    qid: u16,
    tid: libc::pid_t,
    stat: File,
    schedstat: File,
    last: Sample,
    /// Lifted: until when, and the sample and moment the lift began.
    lift: Option<(Instant, Sample, Instant)>,
    lift_for: Duration,
    /// When the thread last went back to idle after a lift.
    returned: Option<Instant>,
}

impl Watched {
    fn sample(&self) -> io::Result<Sample> {
        let mut buf = [0u8; 512];
        let n = self.stat.read_at(&mut buf, 0)?;
        // `pid (comm) S ...`: the state follows the last ')'.
        let stat = &buf[..n];
        let state = stat
            .iter()
            .rposition(|&b| b == b')')
            .and_then(|at| stat.get(at + 2).copied())
            .ok_or_else(gone)?;
        let n = self.schedstat.read_at(&mut buf, 0)?;
        let mut fields = std::str::from_utf8(&buf[..n])
            .unwrap_or("")
            .split_ascii_whitespace()
            .map(|f| f.parse::<u64>().ok().map(Duration::from_nanos));
        let (Some(Some(ran)), Some(Some(waited))) = (fields.next(), fields.next()) else {
            return Err(gone());
        };
        Ok(Sample {
            runnable: state == b'R',
            ran,
            waited,
        })
    }

    /// Takes a new sample, `elapsed` after the last, and acts on it.
    /// Whether the thread ran or wanted to meanwhile; Err once it is gone.
    fn check(&mut self, now: Instant, elapsed: Duration) -> io::Result<bool> {
        let s = self.sample()?;
        let last = std::mem::replace(&mut self.last, s);
        let active = s.runnable || s.ran != last.ran;
        match self.lift {
            None => {
                let stuck = last.runnable && s.runnable && s.ran == last.ran;
                let waited = s.waited.saturating_sub(last.waited);
                if stuck || waited.saturating_mul(STARVED_SHARE) > elapsed {
                    let soon = self
                        .returned
                        .is_some_and(|at| now.duration_since(at) < self.lift_for);
                    self.lift_for = if soon {
                        (self.lift_for * 2).min(LIFT_MAX)
                    } else {
                        LIFT_MIN
                    };
                    set_policy(self.tid, libc::SCHED_OTHER)?;
                    self.lift = Some((now + self.lift_for, s, now));
                    debug!(
                        "ring queue {}: starving at SCHED_IDLE (waited {waited:?}); \
                         normal priority for {:?}",
                        self.qid, self.lift_for
                    );
                }
            }
            Some((until, _, _)) if now < until => {}
            Some((_, at_lift, since)) => {
                let waited = s.waited.saturating_sub(at_lift.waited);
                if waited.saturating_mul(BUSY_SHARE) > now.duration_since(since) {
                    // Other work wanted this core even at normal priority.
                    // Set again: the thread may have put itself back to
                    // idle meanwhile, after a large read
                    // (ring_large_reads.rs).
                    set_policy(self.tid, libc::SCHED_OTHER)?;
                    self.lift = Some((now + self.lift_for, s, now));
                } else {
                    set_policy(self.tid, libc::SCHED_IDLE)?;
                    self.lift = None;
                    self.returned = Some(now);
                }
            }
        }
        Ok(active)
    }
}

/// The idle ring threads of one session and their watchdog. Each ring
/// thread holds a clone; the watchdog ends once the last is gone.
#[derive(Clone)]
pub(crate) struct IdleWatch(Arc<Mutex<Vec<Watched>>>);

impl IdleWatch {
    /// Starts the watchdog (at the calling thread's priority, normal).
    pub(crate) fn start() -> io::Result<IdleWatch> {
        let watched = Arc::new(Mutex::new(Vec::new()));
        let weak = Arc::downgrade(&watched);
        std::thread::Builder::new()
            .name("fuser-ringwatch".into())
            .spawn(move || watchdog(&weak))?;
        Ok(IdleWatch(watched))
    }

    /// Puts the calling ring thread at `SCHED_IDLE`, under watch.
    pub(crate) fn enter_idle(&self, qid: u16) -> io::Result<()> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut w = Watched {
            qid,
            tid,
            stat: File::open("/proc/thread-self/stat")?,
            schedstat: File::open("/proc/thread-self/schedstat")?,
            last: Sample::default(),
            lift: None,
            lift_for: LIFT_MIN,
            returned: None,
        };
        w.last = w.sample()?;
        set_policy(0, libc::SCHED_IDLE)?;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        Ok(())
    }
}

/// What a sample of a thread that has ended gives.
fn gone() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn watchdog(watched: &Weak<Mutex<Vec<Watched>>>) {
    let mut period = PERIOD;
    let mut last = Instant::now();
    loop {
        std::thread::sleep(period);
        let Some(watched) = watched.upgrade() else {
            return;
        };
        let mut watched = watched.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(last);
        last = now;
        let mut awake = false;
        watched.retain_mut(|w| match w.check(now, elapsed) {
            Ok(active) => {
                awake |= active || w.lift.is_some();
                true
            }
            Err(e) => {
                // The thread ended (its session did), or its policy could
                // not be changed: stop watching it.
                if e.kind() != io::ErrorKind::NotFound && e.raw_os_error() != Some(libc::ESRCH) {
                    warn!("ring queue {}: watching its priority: {e}", w.qid);
                }
                false
            }
        });
        period = if awake { PERIOD } else { QUIET_PERIOD };
    }
}
