//! Write-only handles and the kernel's page cache (src/fs/page_cache.rs),
//! on the core called directly, with the page cache played by a model
//! that behaves as the kernel's does towards a FUSE file: a direct write
//! drops its range before it reaches the daemon, a write through a
//! cached handle lands in the pages it covers, a truncation drops what
//! lies past the end, and the daemon's stores and invalidations apply as
//! they come. After every step, each byte the model holds must be the
//! file's byte; and a write-only handle's write-backs must fill it with
//! what a reader would otherwise have to decode.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use llmfs::fs::{Ctx, Fs, FsConfig, PageCache, SetAttr};
use llmfs::store::ROOT_INO;

use crate::common::{fresh_stores, text, FreshStore, Rng};

const BLOCK: usize = 4096;

/// The kernel's cached bytes of each inode, by offset (a byte the map
/// does not hold is not cached).
#[derive(Default)]
struct Kernel {
    pages: Mutex<BTreeMap<u64, BTreeMap<u64, u8>>>,
    stores: Mutex<Vec<(u64, u64, usize)>>,
    invalidations: Mutex<Vec<(u64, u64, u64)>>,
}

impl Kernel {
    fn put(&self, ino: u64, offset: u64, data: &[u8]) {
        let mut pages = self.pages.lock().unwrap();
        let file = pages.entry(ino).or_default();
        for (i, &b) in data.iter().enumerate() {
            file.insert(offset + i as u64, b);
        }
    }

    fn drop_range(&self, ino: u64, offset: u64, len: u64) {
        let mut pages = self.pages.lock().unwrap();
        if let Some(file) = pages.get_mut(&ino) {
            let gone: Vec<u64> = file
                .range(offset..offset.saturating_add(len))
                .map(|(&o, _)| o)
                .collect();
            for o in gone {
                file.remove(&o);
            }
        }
    }

    fn cached(&self, ino: u64) -> BTreeMap<u64, u8> {
        self.pages
            .lock()
            .unwrap()
            .get(&ino)
            .cloned()
            .unwrap_or_default()
    }

    fn stored_bytes(&self, ino: u64) -> usize {
        let stores = self.stores.lock().unwrap();
        stores.iter().filter(|s| s.0 == ino).map(|s| s.2).sum()
    }
}

impl PageCache for Kernel {
    fn store(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        self.stores.lock().unwrap().push((ino, offset, data.len()));
        self.put(ino, offset, data);
        Ok(())
    }

    fn invalidate(&self, ino: u64, offset: u64, len: u64) -> io::Result<()> {
        self.invalidations.lock().unwrap().push((ino, offset, len));
        self.drop_range(ino, offset, len);
        Ok(())
    }
}

/// The core on `store`, with a fresh model of the kernel's cache as its
/// page cache.
fn core(store: &FreshStore, dirty_bytes: usize) -> (Arc<Kernel>, Fs) {
    println!("backend: {:?}", store.kind);
    let config = FsConfig {
        dirty_bytes,
        ..FsConfig::default()
    };
    let fs = Fs::new(store.create(BLOCK).unwrap(), config).unwrap();
    let kernel = Arc::new(Kernel::default());
    fs.use_page_cache(Arc::clone(&kernel) as Arc<dyn PageCache>);
    (kernel, fs)
}

/// A new file in the root, open with `flags`: (inode, handle).
fn create(fs: &Fs, name: &[u8], flags: i32) -> (u64, u64) {
    let (a, fh) = fs
        .create_open(&Ctx::root(), ROOT_INO, name, 0o644, flags)
        .unwrap();
    (a.ino, fh)
}

/// Every byte the kernel holds of `ino` is the file's.
fn agrees(fs: &Fs, kernel: &Kernel, ino: u64, what: &str) {
    let size = fs.getattr(ino).unwrap().size;
    let content = fs.read(ino, 0, size as u32 + 1).unwrap();
    for (&o, &b) in &kernel.cached(ino) {
        assert!(o < size, "{what}: byte {o} cached past the end ({size})");
        assert_eq!(b, content[o as usize], "{what}: cached byte {o} is stale");
    }
}

#[test]
fn write_only_handles_write_past_the_cache_and_fill_it_for_large_files() {
    for store in fresh_stores() {
        let (kernel, fs) = core(&store, 32 << 20);
        assert!(fs.creates_past_page_cache(libc::O_WRONLY | libc::O_CREAT));
        assert!(!fs.creates_past_page_cache(libc::O_RDWR));
        assert!(!fs.creates_past_page_cache(libc::O_RDONLY));

        // A large file: what the close wrote back is cached whole.
        let (a, fh) = create(&fs, b"large", libc::O_WRONLY);
        let data = text(300 << 10, 1);
        assert_eq!(fs.write(a, fh, 0, &data).unwrap(), data.len());
        fs.flush(a).unwrap();
        fs.release(a, fh).unwrap();
        let cached = kernel.cached(a);
        assert_eq!(
            cached.len(),
            data.len(),
            "every byte of the large file cached"
        );
        agrees(&fs, &kernel, a, "large file");

        // A small file reads back in one request: not cached.
        let (s, fh) = create(&fs, b"small", libc::O_WRONLY);
        fs.write(s, fh, 0, &data[..10_000]).unwrap();
        fs.flush(s).unwrap();
        fs.release(s, fh).unwrap();
        assert_eq!(kernel.stored_bytes(s), 0, "small file stored");

        // A read-write handle writes through the cache itself.
        let (r, fh) = create(&fs, b"rw", libc::O_RDWR);
        fs.write(r, fh, 0, &data).unwrap();
        fs.flush(r).unwrap();
        fs.release(r, fh).unwrap();
        assert_eq!(kernel.stored_bytes(r), 0, "read-write handle's file stored");
    }
}

#[test]
fn nothing_is_stored_while_a_handle_that_reads_is_open() {
    for store in fresh_stores() {
        let (kernel, fs) = core(&store, 32 << 20);
        let (a, w) = create(&fs, b"f", libc::O_WRONLY);
        let reader = fs.open(a, libc::O_RDONLY).unwrap();
        fs.write(a, w, 0, &text(512 << 10, 2)).unwrap();
        fs.flush(a).unwrap();
        assert_eq!(kernel.stored_bytes(a), 0, "stored beside a reader");
        fs.release(a, reader).unwrap();
        // The writer alone: its next write-back is stored.
        fs.write(a, w, 0, b"again").unwrap();
        fs.flush(a).unwrap();
        fs.release(a, w).unwrap();
        assert!(kernel.stored_bytes(a) > 0);
        agrees(&fs, &kernel, a, "after the reader left");
    }
}

#[test]
fn a_write_below_what_was_stored_drops_its_range_again() {
    for store in fresh_stores() {
        let (kernel, fs) = core(&store, 32 << 20);
        let (a, w) = create(&fs, b"f", libc::O_WRONLY);
        fs.write(a, w, 0, &text(400 << 10, 3)).unwrap();
        // A second descriptor's close (a dup) writes back and stores.
        fs.flush(a).unwrap();
        assert!(kernel.stored_bytes(a) > 0);
        // A write that was on its way meanwhile: the kernel dropped its
        // range before it sent it, and the store may have put the old
        // bytes back; the core drops them once the write is applied.
        kernel.put(a, 1000, &[0xee; 10]);
        fs.write(a, w, 1000, b"0123456789").unwrap();
        let dropped = kernel.invalidations.lock().unwrap().clone();
        assert!(dropped.contains(&(a, 1000, 10)), "{dropped:?}");
        agrees(&fs, &kernel, a, "after the write");
        // Past everything stored: nothing to drop.
        fs.write(a, w, 400 << 10, b"tail").unwrap();
        assert_eq!(kernel.invalidations.lock().unwrap().len(), dropped.len());
        fs.release(a, w).unwrap();
        agrees(&fs, &kernel, a, "after the close");
    }
}

#[test]
fn once_another_handle_opens_the_file_its_pages_are_dropped_around_each_write() {
    for store in fresh_stores() {
        let (kernel, fs) = core(&store, 32 << 20);
        let (a, w) = create(&fs, b"f", libc::O_WRONLY);
        fs.write(a, w, 0, &text(64 << 10, 5)).unwrap();
        assert!(kernel.invalidations.lock().unwrap().is_empty());
        // A reader caches pages; a write-only handle's write has them
        // dropped before it is applied (a mapping's dirty page goes
        // first) and after.
        let r = fs.open(a, libc::O_RDONLY).unwrap();
        kernel.put(a, 0, &fs.read(a, 0, 64 << 10).unwrap());
        fs.write(a, w, 100, b"new bytes").unwrap();
        let dropped = kernel.invalidations.lock().unwrap().clone();
        assert_eq!(dropped, vec![(a, 100, 9), (a, 100, 9)]);
        agrees(&fs, &kernel, a, "after the write");
        fs.release(a, r).unwrap();
        fs.release(a, w).unwrap();
        // An existing file opened write-only writes through the cache.
        let w = fs.open(a, libc::O_WRONLY).unwrap();
        fs.write(a, w, 0, b"through the cache").unwrap();
        kernel.put(a, 0, b"through the cache");
        assert_eq!(kernel.invalidations.lock().unwrap().len(), 2);
        fs.release(a, w).unwrap();
        agrees(&fs, &kernel, a, "after the close");
    }
}

/// Random writes through the create's write-only handle and handles
/// opened since, closes of duplicates, truncations, and handles opened
/// and closed, with a dirty
/// budget small enough that write-backs run in the background between
/// writes: the kernel's cached bytes never disagree with the file.
#[test]
fn the_cache_never_holds_a_stale_byte() {
    for store in fresh_stores() {
        let (kernel, fs) = core(&store, 64 << 10);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let source = text(1 << 20, 4);
        let (ino, w) = create(&fs, b"f", libc::O_WRONLY);
        // Past the size below which nothing is stored; truncations go
        // back and forth across it.
        fs.write(ino, w, 0, &source[..300 << 10]).unwrap();
        let mut handles = vec![(w, true)];
        for step in 0..600 {
            let size = fs.getattr(ino).unwrap().size;
            match rng.below(12) {
                0..=5 if !handles.is_empty() => {
                    let (fh, write_only) = handles[rng.below(handles.len() as u64) as usize];
                    let len = 1 + rng.below(3 * BLOCK as u64) as usize;
                    let off = rng.below(size + 2 * BLOCK as u64);
                    let at = rng.below((source.len() - len) as u64) as usize;
                    let data = &source[at..at + len];
                    if write_only {
                        // Direct: the range is dropped before it is sent.
                        kernel.drop_range(ino, off, len as u64);
                        fs.write(ino, fh, off, data).unwrap();
                    } else {
                        fs.write(ino, fh, off, data).unwrap();
                        // Through the cache: the written bytes are cached.
                        kernel.put(ino, off, data);
                    }
                }
                6 => {
                    // A close of a duplicate: a write-back.
                    fs.flush(ino).unwrap();
                }
                7 => {
                    let new =
                        (240 << 10) + rng.below((size + BLOCK as u64).saturating_sub(240 << 10));
                    let set = SetAttr {
                        size: Some(new),
                        ..SetAttr::default()
                    };
                    fs.setattr(ino, &set).unwrap();
                    kernel.drop_range(ino, new, u64::MAX);
                }
                8 => {
                    let flags = match rng.below(3) {
                        0 => libc::O_RDONLY,
                        1 => libc::O_RDWR,
                        _ => libc::O_WRONLY,
                    };
                    // Opens of an existing file write through the cache.
                    handles.push((fs.open(ino, flags).unwrap(), false));
                }
                _ if handles.len() > 1 || rng.below(4) == 0 => {
                    if let Some(i) = (!handles.is_empty()).then(|| rng.below(handles.len() as u64))
                    {
                        let (fh, _) = handles.swap_remove(i as usize);
                        fs.flush(ino).unwrap();
                        fs.release(ino, fh).unwrap();
                    }
                }
                _ => {}
            }
            agrees(&fs, &kernel, ino, &format!("step {step}"));
        }
        assert!(kernel.stored_bytes(ino) > 0, "nothing was ever stored");
        for (fh, _) in handles {
            fs.release(ino, fh).unwrap();
        }
        agrees(&fs, &kernel, ino, "at the end");
    }
}
