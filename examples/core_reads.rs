//! Times the filesystem core's share of a cold 4 KiB random read, without
//! FUSE (bench/cold_read_core.sh): random 4 KiB reads of one file of a
//! store, nearly all of blocks the block cache does not hold, against
//! `pread`s of the same offsets of a plain copy of the file in the page
//! cache (what a passthrough does besides its FUSE round trip).
//!
//!   core_reads STORE NAME PLAIN_FILE [READS]
//!
//! Prints microseconds per read for both: `core` and `pread` (PLAIN_FILE
//! `-`: the core alone, as for a profile).
use std::os::unix::fs::FileExt;
use std::time::Instant;

use llmfs::fs::{Fs, FsConfig};
use llmfs::store::{OpenOptions, Store, ROOT_INO};

const USAGE: &str = "usage: core_reads STORE NAME PLAIN_FILE [READS]";

fn main() {
    let arg = |i: usize| std::env::args().nth(i).expect(USAGE);
    let (dir, name, plain) = (arg(1), arg(2), arg(3));
    let n: usize = std::env::args()
        .nth(4)
        .map_or(4096, |s| s.parse().expect(USAGE));
    let store = Store::open(
        std::path::Path::new(&dir),
        &OpenOptions {
            create: false,
            block_size: 65536,
            read_only: false,
        },
    )
    .unwrap();
    let fs = Fs::new(store, FsConfig::default()).unwrap();
    let attr = fs.lookup(ROOT_INO, name.as_bytes()).unwrap();
    let offsets = random_pages(attr.size / 4096, n);

    let fh = fs.open(attr.ino, libc::O_RDONLY).unwrap();
    let start = Instant::now();
    for &at in &offsets {
        assert_eq!(fs.read(attr.ino, at, 4096).unwrap().len(), 4096);
    }
    let core = start.elapsed();
    fs.release(attr.ino, fh).unwrap();
    fs.shutdown().unwrap();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("core\t{:.2}", per(core));
    if plain == "-" {
        return;
    }
    let file = std::fs::File::open(&plain).unwrap();
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    for &at in &offsets {
        file.read_exact_at(&mut buf, at).unwrap();
    }
    let pread = start.elapsed();
    println!("pread\t{:.2}", per(pread));
}

/// `n` page-aligned offsets below `pages` pages, from a fixed xorshift
/// sequence (the same reads every run).
fn random_pages(pages: u64, n: usize) -> Vec<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % pages) * 4096
        })
        .collect()
}
