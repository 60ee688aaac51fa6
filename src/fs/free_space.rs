//! The store's free space as the raw storing of small files needs it
//! (`FsConfig::raw_interim_min_free`): asked of the filesystem at most
//! once per [`FRESH_FOR`], and lowered by what was stored raw since.
//!
//! Each small file's close asked with a `statvfs` of the store's path,
//! and a profile of the daemon during `cp -r` of /usr/include put that
//! (the syscall and its path walk) at 2.1% of the daemon's samples, an
//! eighth of all the closes' work. The margin it guards is gigabytes
//! (`RAW_INTERIM_MIN_FREE`), which no disk fills in 10 ms, and this
//! process's own raw records are taken off the reading as they go.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store::Store;

/// How long a reading of the free space stands.
const FRESH_FOR: Duration = Duration::from_millis(10);

/// The last reading of the store's free space, less what was taken since.
#[derive(Debug, Default)]
pub(super) struct FreeSpace {
    last: Mutex<Option<Reading>>,
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    free: u64,
}

impl FreeSpace {
    /// Takes `bytes` off the store's free space if at least `keep` bytes
    /// stay free besides them; false (nothing taken) if they would not,
    /// or if the free space cannot be told (PostgreSQL, a failed statvfs).
    pub(super) fn take(&self, store: &Store, bytes: u64, keep: u64) -> bool {
        self.take_at(store, bytes, keep, Instant::now())
    }

    /// [`FreeSpace::take`] at the time `now`.
    fn take_at(&self, store: &Store, bytes: u64, keep: u64, now: Instant) -> bool {
        let mut last = self.last();
        let fresh = last
            .as_ref()
            .is_some_and(|r| now.saturating_duration_since(r.at) < FRESH_FOR);
        if !fresh {
            *last = store
                .local_free_bytes()
                .map(|free| Reading { at: now, free });
        }
        match last.as_mut() {
            Some(r) if r.free >= keep.saturating_add(bytes) => {
                r.free -= bytes;
                true
            }
            _ => false,
        }
    }

    fn last(&self) -> MutexGuard<'_, Option<Reading>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenOptions, Store};

    /// A store in a fresh directory, and a gauge that has read its free
    /// space at the time returned.
    fn read_once() -> (tempfile::TempDir, Store, FreeSpace, Instant) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(
            t.path(),
            &OpenOptions {
                create: true,
                block_size: 4096,
                read_only: false,
            },
        )
        .unwrap();
        let gauge = FreeSpace::default();
        let t0 = Instant::now();
        assert!(
            gauge.take_at(&s, 0, 0, t0),
            "a local store tells its free space"
        );
        (t, s, gauge, t0)
    }

    /// The free space of the gauge's current reading.
    fn reading(gauge: &FreeSpace) -> u64 {
        gauge.last().as_ref().expect("a reading").free
    }

    #[test]
    fn takes_from_one_reading_until_the_margin_then_refuses() {
        let (_t, s, gauge, t0) = read_once();
        // A margin a megabyte below what the reading says.
        let keep = reading(&gauge).saturating_sub(1 << 20);
        assert!(gauge.take_at(&s, 256 << 10, keep, t0));
        assert!(gauge.take_at(&s, 256 << 10, keep, t0));
        assert!(gauge.take_at(&s, 256 << 10, keep, t0));
        // The fourth would eat into the margin, as the reading stands.
        assert!(!gauge.take_at(&s, 512 << 10, keep, t0));
        assert_eq!(reading(&gauge) - keep, 256 << 10);
        // A margin larger than the disk refuses at once.
        assert!(!FreeSpace::default().take(&s, 1, u64::MAX));
    }

    #[test]
    fn a_reading_goes_stale() {
        let (_t, s, gauge, t0) = read_once();
        let keep = reading(&gauge).saturating_sub(64 << 20);
        assert!(gauge.take_at(&s, 64 << 20, keep, t0));
        // Nothing left as this reading stands...
        assert!(!gauge.take_at(&s, 4096, keep, t0 + FRESH_FOR / 2));
        // ...until it is asked again: the bytes taken were never written.
        assert!(gauge.take_at(&s, 4096, keep, t0 + FRESH_FOR));
    }
}
