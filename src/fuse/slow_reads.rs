//! Reads that wait for a slow decode (a block coded with the model or cm:
//! up to seconds) run here, not on the kernel's FUSE workers: a worker
//! that waited would leave fewer for every other request of the mount, so
//! that two cold reads of archived files could hold up an `ls` for as
//! long. A worker hands such a read over with its reply and goes back to
//! the kernel's queue; fuser's replies may be sent from any thread.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Threads waiting on slow reads at once. Each mostly waits on a decode
/// thread (fs/in_flight.rs, which bounds the decodes themselves); more
/// reads queue here.
const THREADS: usize = 8;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads taking jobs in order.
pub struct SlowReads {
    jobs: Mutex<Option<Sender<Job>>>,
}

impl SlowReads {
    pub fn new() -> SlowReads {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("llmfs-slow-read-{i}"))
                .spawn(move || run(&rx));
            if let Err(e) = spawned {
                // Fewer threads, or none: `run_or_inline` still runs each job.
                log::warn!("starting a slow-read thread: {e}");
            }
        }
        SlowReads {
            jobs: Mutex::new(Some(tx)),
        }
    }

    /// Runs `job` on the pool, or here when the pool has stopped or has no
    /// thread (the read then waits on this thread, as before the pool).
    pub fn run_or_inline(&self, job: impl FnOnce() + Send + 'static) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let job: Job = Box::new(job);
        let unsent = match jobs.as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = unsent {
            job();
        }
    }

    /// Takes no more jobs; the threads end once the queued ones are done.
    pub fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Default for SlowReads {
    fn default() -> Self {
        SlowReads::new()
    }
}

fn run(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job, not while running it.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::SlowReads;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_jobs_on_its_threads_and_inline_once_stopped() {
        let pool = SlowReads::new();
        let (tx, rx) = mpsc::channel();
        for i in 0..20 {
            let tx = tx.clone();
            pool.run_or_inline(move || {
                let name = std::thread::current().name().map(String::from);
                tx.send((i, name)).unwrap();
            });
        }
        let mut got: Vec<_> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>()
        );
        assert!(got
            .iter()
            .all(|g| g.1.as_deref().unwrap().starts_with("llmfs-slow-read-")));
        pool.stop();
        let here = std::thread::current().id();
        let (tx2, rx2) = mpsc::channel();
        pool.run_or_inline(move || tx2.send(std::thread::current().id()).unwrap());
        assert_eq!(rx2.recv().unwrap(), here, "inline after stop");
    }
}
