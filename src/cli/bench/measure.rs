//! Timing: blocks spread over worker threads, each block timed on its own.
//!
//! Throughput of a per-block pass is reported as the steady state of the
//! workers kept busy: bytes x workers / (sum of per-block seconds). That is
//! the wall time when the queue is long, it does not flatter or punish a
//! file whose last round leaves a worker idle, and it lets a block's
//! decoding be timed once when two codecs stored the same record for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The outputs of a pass in input order, with each item's seconds.
pub struct Timed<R> {
    pub out: Vec<R>,
    pub secs: Vec<f64>,
}

/// Runs `f` over `items` on one thread per entry of `states` (each thread
/// owns its state: a model engine, say), taking items from a shared queue.
pub fn parallel<T, R, S, F>(items: &[T], states: &mut [S], f: F) -> Timed<R>
where
    T: Sync,
    R: Send,
    S: Send,
    F: Fn(&mut S, &T) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, R, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = states
            .iter_mut()
            .take(items.len().max(1))
            .map(|state| {
                let (next, f) = (&next, &f);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let start = Instant::now();
                        let r = f(state, item);
                        mine.push((i, r, start.elapsed().as_secs_f64()));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark worker panicked"))
            .collect()
    });
    let mut slots: Vec<Option<(R, f64)>> = (0..items.len()).map(|_| None).collect();
    for (i, r, s) in done.into_iter().flatten() {
        slots[i] = Some((r, s));
    }
    let (out, secs) = slots
        .into_iter()
        .map(|s| s.expect("every item was run"))
        .unzip();
    Timed { out, secs }
}

/// Seconds of `workers` busy workers for per-block times `secs`.
pub fn busy_secs(secs: &[f64], workers: usize) -> f64 {
    let w = workers.min(secs.len()).max(1);
    secs.iter().sum::<f64>() / w as f64
}

/// Fast codecs finish a small file in microseconds: passes are repeated
/// until this much time has been measured, and averaged.
const MIN_MEASURED: Duration = Duration::from_millis(100);
/// ... but at most this many times.
const MAX_REPEATS: u32 = 200;

/// Runs `pass` (which returns the seconds it measured) until
/// [`MIN_MEASURED`] has been spent, and returns the mean seconds per pass.
pub fn repeated(mut pass: impl FnMut() -> f64) -> f64 {
    let start = Instant::now();
    let mut total = 0.0;
    let mut n = 0u32;
    while n == 0 || (start.elapsed() < MIN_MEASURED && n < MAX_REPEATS) {
        total += pass();
        n += 1;
    }
    total / f64::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_order_and_uses_every_state() {
        let items: Vec<u32> = (0..50).collect();
        let mut states = vec![0u32; 3];
        let t = parallel(&items, &mut states, |s, &x| {
            *s += 1;
            x * 2
        });
        assert_eq!(t.out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(t.secs.len(), 50);
        assert_eq!(states.iter().sum::<u32>(), 50);
    }

    #[test]
    fn busy_secs_divides_by_the_workers_that_had_work() {
        assert_eq!(busy_secs(&[1.0, 1.0, 1.0, 1.0], 2), 2.0);
        assert_eq!(busy_secs(&[3.0], 4), 3.0);
        assert_eq!(busy_secs(&[], 2), 0.0);
    }
}
