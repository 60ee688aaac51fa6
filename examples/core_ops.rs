//! Times the filesystem core's share of a small-file copy, without FUSE:
//! per file the requests `cp` sends (getattr of the directory, a lookup
//! that misses, create, getxattr, write, flush, release), then stat and
//! unlink, each phase in microseconds per file. Each file holds BYTES
//! (default 14,000, /usr/include's mean) of the README, repeated where
//! BYTES is longer. With
//! NO_STAT=1 the stat pass is left out, so that each unlink finds the
//! store as the file's close left it, as in an `rm -rf` (whose listing
//! gave the kernel every attribute it asks for).
use std::time::Instant;

use llmfs::codec::CodecSet;
use llmfs::fs::{Ctx, Fs, FsConfig, WriteEncoding};
use llmfs::store::{OpenOptions, Store, ROOT_INO};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: core_ops DIR [FILES [BYTES]]");
    let n: usize = std::env::args()
        .nth(2)
        .map_or(10_000, |s| s.parse().unwrap());
    let store = Store::open(
        std::path::Path::new(&dir),
        &OpenOptions {
            create: true,
            block_size: 65536,
            read_only: false,
        },
    )
    .unwrap();
    // As `llmfs mount` configures the core (cli/volume.rs): small files
    // are stored raw while the disk has room.
    let config = FsConfig {
        write_encoding: WriteEncoding::Interim,
        raw_interim_min_free: Some(llmfs::fs::RAW_INTERIM_MIN_FREE),
        ..FsConfig::default()
    };
    let fs = Fs::with_codecs(store, config, CodecSet::default()).unwrap();
    let bytes: usize = std::env::args()
        .nth(3)
        .map_or(14_000, |s| s.parse().unwrap());
    // The README, repeated as far as BYTES reaches.
    let readme = include_bytes!("../README.md");
    let data: Vec<u8> = readme.iter().copied().cycle().take(bytes).collect();
    let ctx = Ctx::root();
    let d = fs.mkdir(&ctx, ROOT_INO, b"d", 0o755).unwrap().ino;
    let mut t = [0f64; 7];
    let mut inos = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("f{i:05}");
        let mut lap = Instant::now();
        let mut tick = |k: usize, lap: &mut Instant| {
            t[k] += lap.elapsed().as_secs_f64();
            *lap = Instant::now();
        };
        fs.getattr(d).unwrap();
        tick(0, &mut lap);
        assert!(fs.lookup(d, name.as_bytes()).is_err());
        tick(1, &mut lap);
        let (a, fh) = fs.create(&ctx, d, name.as_bytes(), 0o644).unwrap();
        // The kernel's reference to the entry, as the FUSE layer records
        // it with its reply (the unlink's forget drops it).
        fs.remember(a.ino);
        tick(2, &mut lap);
        let _ = fs.getxattr(a.ino, b"security.capability");
        tick(3, &mut lap);
        fs.write(a.ino, fh, 0, &data).unwrap();
        tick(4, &mut lap);
        fs.flush(a.ino).unwrap();
        tick(5, &mut lap);
        fs.release(a.ino, fh).unwrap();
        tick(6, &mut lap);
        inos.push((name, a.ino));
    }
    let names = [
        "getattr", "lookup", "create", "getxattr", "write", "flush", "release",
    ];
    for (k, name) in names.iter().enumerate() {
        println!("{name:>9}: {:7.1} us/file", t[k] * 1e6 / n as f64);
    }
    if std::env::var_os("NO_STAT").is_none() {
        let s = Instant::now();
        for (_, ino) in &inos {
            fs.getattr(*ino).unwrap();
        }
        println!(
            "{:>9}: {:7.1} us/file",
            "stat",
            s.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    let s = Instant::now();
    for (name, ino) in &inos {
        fs.unlink(d, name.as_bytes()).unwrap();
        fs.forget(*ino, 1).unwrap();
    }
    println!(
        "{:>9}: {:7.1} us/file",
        "unlink",
        s.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    fs.shutdown().unwrap();
}
