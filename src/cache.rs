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

use std::collections::{BTreeSet, HashMap};
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
    /// The cached block indices of each inode, so that dropping an
    /// inode's blocks (every unlink, truncation and changed open) looks
    /// at its own entries, not at every entry: a cache full of another
    /// file's blocks made unlink 40% slower.
    by_ino: HashMap<u64, BTreeSet<u64>>,
    bytes: usize,
    epoch: u64,
}

impl Inner {
    /// Caches `entry` under `key`, keeping the byte count and the index.
    fn put(&mut self, key: Key, entry: Entry) {
        self.bytes += entry.bytes();
        match self.lru.put(key, entry) {
            Some(old) => self.bytes -= old.bytes(),
            None => {
                self.by_ino.entry(key.0).or_default().insert(key.1);
            }
        }
    }

    fn pop(&mut self, key: Key) -> Option<Entry> {
        let entry = self.lru.pop(&key)?;
        self.forget(key, &entry);
        Some(entry)
    }

    fn pop_lru(&mut self) -> Option<Entry> {
        let (key, entry) = self.lru.pop_lru()?;
        self.forget(key, &entry);
        Some(entry)
    }

    fn forget(&mut self, (ino, idx): Key, entry: &Entry) {
        self.bytes -= entry.bytes();
        if let Some(set) = self.by_ino.get_mut(&ino) {
            set.remove(&idx);
            if set.is_empty() {
                self.by_ino.remove(&ino);
            }
        }
    }
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
                by_ino: HashMap::new(),
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
        let mut inner = self.lock();
        let found = match inner.lru.get(&(ino, idx)) {
            Some(Entry::Whole(d)) => Some(Arc::clone(d)),
            _ => None,
        };
        self.count(found.is_some());
        found.ok_or(inner.epoch)
    }

    /// Looks up raw bytes `start..end` of a block: the whole block, or
    /// cached frames holding them. `end == usize::MAX` (a read through the
    /// block's end, which wants the verified whole) takes only the whole
    /// block.
    pub fn get_span(&self, ino: u64, idx: u64, start: usize, end: usize) -> Cached {
        let mut inner = self.lock();
        let found = match inner.lru.get(&(ino, idx)) {
            Some(Entry::Whole(d)) => Some(Cached::Whole(Arc::clone(d))),
            Some(e) if end != usize::MAX => e
                .span(start, end)
                .map(|(at, bytes)| Cached::Span(at, bytes)),
            _ => None,
        };
        self.count(found.is_some());
        found.unwrap_or(Cached::Miss(inner.epoch))
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
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
        inner.put((ino, idx), Entry::Whole(data));
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
        let mut frames = match inner.pop((ino, idx)) {
            Some(whole @ Entry::Whole(_)) => {
                inner.put((ino, idx), whole);
                return;
            }
            Some(Entry::Frames {
                frame_bytes: f,
                frames,
            }) if f == frame_bytes => frames,
            _ => Vec::new(),
        };
        for (i, f) in (first..).zip(decoded) {
            frames.retain(|(k, _)| *k != i);
            frames.push((i, f));
        }
        inner.put(
            (ino, idx),
            Entry::Frames {
                frame_bytes,
                frames,
            },
        );
        self.evict(&mut inner);
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.budget && inner.pop_lru().is_some() {}
    }

    /// Drops every cached block of `ino` at index `from` or above.
    pub fn invalidate_from(&self, ino: u64, from: u64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        let idxs: Vec<u64> = match inner.by_ino.get(&ino) {
            Some(set) => set.range(from..).copied().collect(),
            None => return,
        };
        for idx in idxs {
            inner.pop((ino, idx));
        }
    }

    /// Drops specific blocks of `ino`.
    pub fn invalidate_blocks(&self, ino: u64, idxs: impl IntoIterator<Item = u64>) {
        self.replace_blocks(ino, idxs, None);
    }

    /// Drops specific blocks of `ino`, as [`BlockCache::invalidate_blocks`],
    /// then caches `kept`: a block's bytes as just committed, which a
    /// decode of its new record would give.
    pub fn replace_blocks(
        &self,
        ino: u64,
        idxs: impl IntoIterator<Item = u64>,
        kept: Option<(u64, Arc<Vec<u8>>)>,
    ) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for idx in idxs {
            inner.pop((ino, idx));
        }
        if let Some((idx, data)) = kept {
            if data.len() <= self.budget {
                inner.put((ino, idx), Entry::Whole(data));
                self.evict(&mut inner);
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
        // Even all of them: a read through the block's end takes only the
        // whole block (a write into the block needs it verified whole).
        let all = BlockCache::new(1000);
        all.insert_frames(
            1,
            0,
            100,
            0,
            (0..5).map(|i| f(i, 100 - 70 * (i / 4) as usize)).collect(),
            0,
        );
        assert!(matches!(all.get_span(1, 0, 0, 430), Cached::Span(0, _)));
        assert!(matches!(all.get_span(1, 0, 0, usize::MAX), Cached::Miss(_)));
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

    /// The per-inode index follows every way an entry goes: eviction,
    /// replacement, frames merged or replaced, invalidation.
    #[test]
    fn the_inode_index_follows_every_entry() {
        let c = BlockCache::new(1000);
        let e = c.get(9, 0).unwrap_err();
        for i in 0..30 {
            c.insert(i % 3, i, Arc::new(vec![0; 100]), e);
        }
        c.insert_frames(1, 100, 50, 0, vec![Arc::new(vec![1; 50])], e);
        c.insert_frames(1, 100, 50, 1, vec![Arc::new(vec![1; 50])], e);
        c.insert(2, 29, Arc::new(vec![0; 10]), e);
        let check = |c: &BlockCache| {
            let inner = c.lock();
            let listed: usize = inner.by_ino.values().map(|s| s.len()).sum();
            assert_eq!(listed, inner.lru.len());
            for (&(ino, idx), _) in inner.lru.iter() {
                assert!(inner.by_ino[&ino].contains(&idx));
            }
            let bytes: usize = inner.lru.iter().map(|(_, v)| v.bytes()).sum();
            assert_eq!(bytes, inner.bytes);
        };
        check(&c);
        c.invalidate_from(1, 20);
        check(&c);
        assert!(c.get_span(1, 100, 0, 10).is_miss());
        c.invalidate_from(0, 0);
        c.invalidate_from(2, 0);
        check(&c);
        let left = c.lock().by_ino.get(&1).map_or(0, |s| s.len());
        assert_eq!(c.stats().entries, left);
        c.invalidate_from(1, 0);
        assert_eq!((c.stats().entries, c.stats().bytes), (0, 0));
        assert!(c.lock().by_ino.is_empty());
    }

    impl Cached {
        fn is_miss(&self) -> bool {
            matches!(self, Cached::Miss(_))
        }
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
