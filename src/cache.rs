//! LRU cache of decoded blocks with a byte budget.
//!
//! An entry is a whole block, or some frames of a block whose record is
//! cut into frames (a framed zstd record): a small read decodes and caches
//! only the frames it touches, and the next read of those bytes is a hit.
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
    lru: LruCache<Key, Entry>,
    bytes: usize,
    epoch: u64,
}

/// What the cache holds of one block.
enum Entry {
    Whole(Arc<Vec<u8>>),
    /// Decoded frames of `frame_bytes` raw bytes each, by frame index.
    Frames {
        frame_bytes: usize,
        frames: Vec<(usize, Arc<Vec<u8>>)>,
    },
}

impl Entry {
    fn bytes(&self) -> usize {
        match self {
            Entry::Whole(d) => d.len(),
            Entry::Frames { frames, .. } => frames.iter().map(|(_, f)| f.len()).sum(),
        }
    }

    /// Raw bytes `start..end` of the block when the cached frames hold
    /// them all (or as many as the block has: the last frame may end
    /// before `end`): (offset of the first byte, the bytes).
    fn span(&self, start: usize, end: usize) -> Option<(usize, Arc<Vec<u8>>)> {
        let Entry::Frames {
            frame_bytes,
            frames,
        } = self
        else {
            return None;
        };
        let first = start / frame_bytes;
        let mut held: Vec<&Arc<Vec<u8>>> = Vec::new();
        let mut i = first;
        loop {
            let (_, f) = frames.iter().find(|(j, _)| *j == i)?;
            held.push(f);
            // A frame shorter than the frame size is the block's last.
            if (i + 1) * frame_bytes >= end || f.len() < *frame_bytes {
                break;
            }
            i += 1;
        }
        let bytes = join_frames(held.into_iter());
        Some((first * frame_bytes, bytes))
    }
}

/// Consecutive frames as one buffer: a lone frame is shared, not copied.
pub fn join_frames<'a>(frames: impl Iterator<Item = &'a Arc<Vec<u8>>>) -> Arc<Vec<u8>> {
    let frames: Vec<&Arc<Vec<u8>>> = frames.collect();
    match frames[..] {
        [one] => Arc::clone(one),
        _ => {
            let mut out = Vec::with_capacity(frames.iter().map(|f| f.len()).sum());
            for f in frames {
                out.extend_from_slice(f);
            }
            Arc::new(out)
        }
    }
}

/// A lookup's answer ([`BlockCache::get_span`]).
pub enum Cached {
    Whole(Arc<Vec<u8>>),
    /// Raw bytes from the given offset of the block.
    Span(usize, Arc<Vec<u8>>),
    /// Not cached: the epoch to pass to an insert.
    Miss(u64),
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

    /// Looks a whole block up. On a miss (cached frames of the block are
    /// one), returns the epoch to pass to [`insert`].
    pub fn get(&self, ino: u64, idx: u64) -> Result<Arc<Vec<u8>>, u64> {
        match self.get_span(ino, idx, 0, usize::MAX) {
            Cached::Whole(d) => Ok(d),
            Cached::Span(..) => Err(self.lock().epoch),
            Cached::Miss(epoch) => Err(epoch),
        }
    }

    /// Looks up raw bytes `start..end` of a block: the whole block, or
    /// cached frames holding them.
    pub fn get_span(&self, ino: u64, idx: u64, start: usize, end: usize) -> Cached {
        let mut inner = self.lock();
        let found = match inner.lru.get(&(ino, idx)) {
            Some(Entry::Whole(d)) => Cached::Whole(Arc::clone(d)),
            Some(e) if end != usize::MAX => match e.span(start, end) {
                Some((at, bytes)) => Cached::Span(at, bytes),
                None => Cached::Miss(inner.epoch),
            },
            _ => Cached::Miss(inner.epoch),
        };
        let counter = match found {
            Cached::Miss(_) => &self.misses,
            _ => &self.hits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A cached block, without counting a hit or a miss or making it the
    /// most recently used (a second look by a reader that already missed).
    pub fn peek(&self, ino: u64, idx: u64) -> Option<Arc<Vec<u8>>> {
        match self.lock().lru.peek(&(ino, idx)) {
            Some(Entry::Whole(d)) => Some(Arc::clone(d)),
            _ => None,
        }
    }

    /// Caches a decoded block unless a writer invalidated anything since
    /// `epoch` was read, or the block alone exceeds the budget.
    pub fn insert(&self, ino: u64, idx: u64, data: Arc<Vec<u8>>, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch || data.len() > self.budget {
            return;
        }
        inner.bytes += data.len();
        if let Some(old) = inner.lru.put((ino, idx), Entry::Whole(data)) {
            inner.bytes -= old.bytes();
        }
        self.evict(&mut inner);
    }

    /// Caches decoded frames (`first` the index of the first, each of
    /// `frame_bytes` raw bytes but the block's last) of a block, beside
    /// any of its frames cached already, unless a writer invalidated
    /// anything since `epoch` was read or the whole block is cached.
    pub fn insert_frames(
        &self,
        ino: u64,
        idx: u64,
        frame_bytes: usize,
        first: usize,
        decoded: Vec<Arc<Vec<u8>>>,
        epoch: u64,
    ) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        let added: usize = decoded.iter().map(|f| f.len()).sum();
        let mut entry = match inner.lru.pop(&(ino, idx)) {
            Some(whole @ Entry::Whole(_)) => {
                inner.lru.put((ino, idx), whole);
                return;
            }
            Some(Entry::Frames {
                frame_bytes: f,
                frames,
            }) if f == frame_bytes => Entry::Frames {
                frame_bytes,
                frames,
            },
            Some(other) => {
                inner.bytes -= other.bytes();
                Entry::Frames {
                    frame_bytes,
                    frames: Vec::new(),
                }
            }
            None => Entry::Frames {
                frame_bytes,
                frames: Vec::new(),
            },
        };
        if let Entry::Frames { frames, .. } = &mut entry {
            for (i, f) in (first..).zip(decoded) {
                if let Some(j) = frames.iter().position(|(k, _)| *k == i) {
                    inner.bytes -= frames.swap_remove(j).1.len();
                }
                frames.push((i, f));
            }
        }
        inner.bytes += added;
        inner.lru.put((ino, idx), entry);
        self.evict(&mut inner);
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.budget {
            match inner.lru.pop_lru() {
                Some((_, v)) => inner.bytes -= v.bytes(),
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
                inner.bytes -= v.bytes();
            }
        }
    }

    /// Drops specific blocks of `ino`.
    pub fn invalidate_blocks(&self, ino: u64, idxs: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for idx in idxs {
            if let Some(v) = inner.lru.pop(&(ino, idx)) {
                inner.bytes -= v.bytes();
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
    fn frames_serve_spans_they_hold() {
        let c = BlockCache::new(1000);
        let Cached::Miss(e) = c.get_span(1, 0, 0, 10) else {
            panic!("empty cache")
        };
        let f = |b: u8, n: usize| Arc::new(vec![b; n]);
        c.insert_frames(1, 0, 100, 1, vec![f(1, 100), f(2, 100)], e);
        c.insert_frames(1, 0, 100, 4, vec![f(4, 30)], e);
        assert_eq!(c.stats().bytes, 230);
        let span = |s, e| match c.get_span(1, 0, s, e) {
            Cached::Span(at, b) => Some((at, b.len(), b[0], *b.last().unwrap())),
            Cached::Whole(_) => panic!("no whole block"),
            Cached::Miss(_) => None,
        };
        assert_eq!(span(150, 160), Some((100, 100, 1, 1)));
        assert_eq!(span(150, 260), Some((100, 200, 1, 2)));
        assert_eq!(span(50, 60), None, "frame 0 was not decoded");
        assert_eq!(span(250, 310), None, "frame 3 was not decoded");
        assert_eq!(
            span(410, 500),
            Some((400, 30, 4, 4)),
            "the short last frame"
        );
        assert!(c.get(1, 0).is_err(), "frames are not the whole block");
        // The same frame again replaces it; the whole block replaces all.
        c.insert_frames(1, 0, 100, 1, vec![f(9, 100)], e);
        assert_eq!(
            (c.stats().bytes, span(100, 101)),
            (230, Some((100, 100, 9, 9)))
        );
        c.insert(1, 0, f(5, 430), e);
        assert_eq!(c.stats().bytes, 430);
        c.insert_frames(1, 0, 100, 0, vec![f(7, 100)], e);
        assert_eq!(c.stats().bytes, 430, "frames never replace the whole block");
        c.invalidate_blocks(1, [0]);
        assert_eq!(c.stats().bytes, 0);
        c.insert_frames(1, 0, 100, 0, vec![f(7, 100)], e);
        assert_eq!(c.stats().bytes, 0, "a stale fill is dropped");
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
