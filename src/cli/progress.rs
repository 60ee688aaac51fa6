//! Progress of long offline passes (`llmfs archive`, `llmfs fsck`): a bar
//! with rate and ETA on a terminal; plain log-friendly lines otherwise
//! (under systemd, in CI), at most one every 10 seconds.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        what: &'static str,
        total: u64,
        start: Instant,
        last: Instant,
        done: u64,
    },
}

impl Progress {
    /// Progress over `total` bytes.
    pub fn new(what: &'static str, total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            bar.set_message(what);
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines {
                what,
                total,
                start: now,
                last: now,
                done: 0,
            }
        }
    }

    pub fn set(&mut self, done_bytes: u64) {
        match self {
            Progress::Bar(b) => b.set_position(done_bytes),
            Progress::Lines {
                what,
                total,
                start,
                last,
                done,
            } => {
                *done = done_bytes;
                if last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    let secs = start.elapsed().as_secs_f64();
                    let rate = done_bytes as f64 / secs.max(1e-9);
                    let eta = total.saturating_sub(done_bytes) as f64 / rate.max(1e-9);
                    eprintln!(
                        "{what}: {done_bytes}/{total} bytes, {:.1} KB/s, ETA {:.0} s",
                        rate / 1000.0,
                        eta
                    );
                }
            }
        }
    }

    pub fn finish(self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            // A summary line only after progress lines were printed.
            Progress::Lines {
                what, start, done, ..
            } if start.elapsed() >= Duration::from_secs(10) => eprintln!(
                "{what}: {done} bytes in {:.1} s",
                start.elapsed().as_secs_f64()
            ),
            Progress::Lines { .. } => {}
        }
    }
}
