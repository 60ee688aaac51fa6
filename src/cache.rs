//! LRU cache of decoded blocks with a byte budget.
//!
//! Readers fill the cache after decoding a block outside any lock; a writer
//! could replace that block meanwhile. To never cache stale data, writers
//! bump `epoch` when they invalidate, and a fill is dropped if the epoch moved
//! since the reader fetched the record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

type Key = (u64, u64);

pub struct BlockCache {
    inner: Mutex<Inner>,
    budget: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    lru: LruCache<Key, Arc<Vec<u8>>>,
    bytes: usize,
    epoch: u64,
}

/// Counters for logs and `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
    pub budget: usize,
}

impl BlockCache {
    pub fn new(budget_bytes: usize) -> BlockCache {
        BlockCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                epoch: 0,
            }),
            budget: budget_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks a block up. On a miss, returns the epoch to pass to [`insert`].
    pub fn get(&self, ino: u64, idx: u64) -> Result<Arc<Vec<u8>>, u64> {
        let mut inner = self.lock();
        match inner.lru.get(&(ino, idx)) {
            Some(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Arc::clone(v))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(inner.epoch)
            }
        }
    }

    /// A cached block, without counting a hit or a miss or making it the
    /// most recently used (a second look by a reader that already missed).
    pub fn peek(&self, ino: u64, idx: u64) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.peek(&(ino, idx)).cloned()
    }

    /// Caches a decoded block unless a writer invalidated anything since
    /// `epoch` was read, or the block alone exceeds the budget.
    pub fn insert(&self, ino: u64, idx: u64, data: Arc<Vec<u8>>, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch || data.len() > self.budget {
            return;
        }
        inner.bytes += data.len();
        if let Some(old) = inner.lru.put((ino, idx), data) {
            inner.bytes -= old.len();
        }
        while inner.bytes > self.budget {
            match inner.lru.pop_lru() {
                Some((_, v)) => inner.bytes -= v.len(),
                None => break,
            }
        }
    }

    /// Drops every cached block of `ino` at index `from` or above.
    pub fn invalidate_from(&self, ino: u64, from: u64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        let keys: Vec<Key> = inner
            .lru
            .iter()
            .map(|(k, _)| *k)
            .filter(|&(i, idx)| i == ino && idx >= from)
            .collect();
        for k in keys {
            if let Some(v) = inner.lru.pop(&k) {
                inner.bytes -= v.len();
            }
        }
    }

    /// Drops specific blocks of `ino`.
    pub fn invalidate_blocks(&self, ino: u64, idxs: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for idx in idxs {
            if let Some(v) = inner.lru.pop(&(ino, idx)) {
                inner.bytes -= v.len();
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: inner.lru.len(),
            bytes: inner.bytes,
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_to_budget_and_counts() {
        let c = BlockCache::new(100);
        let e = c.get(1, 0).unwrap_err();
        c.insert(1, 0, Arc::new(vec![0; 60]), e);
        c.insert(1, 1, Arc::new(vec![0; 60]), e);
        assert!(c.get(1, 0).is_err(), "oldest entry evicted");
        assert!(c.get(1, 1).is_ok());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (1, 2, 1, 60));
    }

    #[test]
    fn stale_fill_is_dropped() {
        let c = BlockCache::new(1000);
        let e = c.get(1, 0).unwrap_err();
        c.invalidate_blocks(1, [0]);
        c.insert(1, 0, Arc::new(vec![1; 10]), e);
        assert!(c.get(1, 0).is_err());
    }

    #[test]
    fn invalidate_from_drops_tail_only() {
        let c = BlockCache::new(1000);
        let e = c.get(9, 0).unwrap_err();
        for i in 0..4 {
            c.insert(2, i, Arc::new(vec![0; 10]), e);
        }
        c.invalidate_from(2, 2);
        assert!(c.get(2, 1).is_ok());
        assert!(c.get(2, 2).is_err());
        assert_eq!(c.stats().bytes, 20);
    }
}
