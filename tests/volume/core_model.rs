//! Reference-model property tests of the filesystem core (`llmfs::fs::Fs`),
//! called directly, without FUSE: random sequences of open / write / read /
//! truncate / flush / fsync / release, unlink-while-open (the name gets a new
//! empty file; the old inode lives on through its handles and must be gone
//! after the last release or a remount) and "remount" (shutdown, drop, reopen
//! the store and the core) on a few files must always read back what a plain
//! `HashMap<name, Vec<u8>>` model says: after every operation, getattr size,
//! lookup, and a full read of every live inode are checked. The store uses
//! 4 KiB blocks and the core a 64 KiB dirty budget, so writes span many
//! blocks and write-back under memory pressure happens in the middle of
//! sequences. Each sequence ends with an fsck of the store.
//!
//! Also property tests of the block record codec: encode/decode round trips,
//! and decoding of damaged records never panics and never returns anything
//! but an error or the exact original bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llmfs::codec::{CodecSet, RECORD_HEADER_LEN};
use llmfs::fs::{Attr, Ctx, Fs, FsConfig, SetAttr};
use llmfs::store::{OpenOptions, Store, ROOT_INO};
use llmfs::Error;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

const BLOCK_SIZE: usize = 4096;
const DIRTY_BYTES: usize = 64 * 1024;
const FILES: usize = 3;
/// Codec tests: the largest raw block a record may declare.
const MAX_RAW: usize = 65536;

/// `cases` random cases per property, unless `PROPTEST_CASES` says otherwise
/// (for a long run: `PROPTEST_CASES=5000 cargo test --test volume core_model`).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        // Only tests/volume/core_model.rs is ours: do not write regression files
        // next to it. A failure prints its minimal case.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Core against a model

/// Which inode an operation addresses.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The file named `f<i>`.
    Name(usize),
    /// The inode of the `i`-th open handle (modulo their number; the named
    /// file 0 if none is open). It may have been unlinked since.
    Handle(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// `open(O_RDWR [| O_TRUNC])` of a named file, keeping the handle.
    Open {
        file: usize,
        trunc: bool,
    },
    /// Write through the `handle`-th open handle (modulo their number).
    Write {
        handle: usize,
        offset: u64,
        len: usize,
        seed: u8,
        compressible: bool,
    },
    Read {
        target: Target,
        offset: u64,
        len: u32,
    },
    /// `setattr(size)`.
    Truncate {
        target: Target,
        size: u64,
    },
    Flush {
        handle: usize,
    },
    Fsync {
        handle: usize,
    },
    Release {
        handle: usize,
    },
    /// Unlink the name (the inode lives on while handles hold it) and create
    /// a new empty file under it.
    Unlink {
        file: usize,
    },
    /// shutdown, drop, `Store::open`, `Fs::new`: a remount.
    Remount,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    // Offsets up to ~12 blocks, writes up to ~5 blocks: many partial and
    // boundary-crossing blocks, and holes past EOF.
    let offset = prop_oneof![
        0u64..50_000,
        (0u64..12).prop_map(|b| b * BLOCK_SIZE as u64),
        (1u64..12, 1u64..8).prop_map(|(b, d)| b * BLOCK_SIZE as u64 - d),
    ];
    let len = prop_oneof![1usize..64, 1usize..20_000, Just(BLOCK_SIZE)];
    let target = prop_oneof![
        7 => file.clone().prop_map(Target::Name),
        3 => any::<usize>().prop_map(Target::Handle),
    ];
    prop_oneof![
        3 => (file.clone(), prop::bool::weighted(0.15))
            .prop_map(|(file, trunc)| Op::Open { file, trunc }),
        8 => (any::<usize>(), offset.clone(), len, any::<u8>(), any::<bool>()).prop_map(
            |(handle, offset, len, seed, compressible)| Op::Write {
                handle,
                offset,
                len,
                seed,
                compressible,
            }
        ),
        2 => (target.clone(), 0u64..60_000, 1u32..30_000)
            .prop_map(|(target, offset, len)| Op::Read { target, offset, len }),
        2 => (target, prop_oneof![0u64..60_000, offset])
            .prop_map(|(target, size)| Op::Truncate { target, size }),
        1 => any::<usize>().prop_map(|handle| Op::Flush { handle }),
        1 => any::<usize>().prop_map(|handle| Op::Fsync { handle }),
        2 => any::<usize>().prop_map(|handle| Op::Release { handle }),
        1 => file.prop_map(|file| Op::Unlink { file }),
        1 => Just(Op::Remount),
    ]
}

fn pattern(len: usize, seed: u8, compressible: bool) -> Vec<u8> {
    if compressible {
        // Runs of one byte, some of them zero (may be stored as holes).
        (0..len)
            .map(|i| {
                let run = (i / 700) as u8;
                if run % 3 == 0 {
                    0
                } else {
                    seed.wrapping_add(run)
                }
            })
            .collect()
    } else {
        crate::common::noise(len, u64::from(seed) ^ ((len as u64) << 32))
    }
}

fn name(file: usize) -> String {
    format!("f{file}")
}

fn open_fs(dir: &Path) -> Fs {
    let store = Store::open(
        dir,
        &OpenOptions {
            create: true,
            block_size: BLOCK_SIZE,
            read_only: false,
        },
    )
    .expect("open store");
    Fs::new(
        store,
        FsConfig {
            dirty_bytes: DIRTY_BYTES,
            // Write-backs of more than two blocks' records go to segment
            // files, smaller ones stay inline: both paths, and blocks
            // moving between them.
            segment_min_bytes: 2 * BLOCK_SIZE,
            ..FsConfig::default()
        },
    )
    .expect("Fs::new")
}

struct Harness {
    _dir: tempfile::TempDir,
    store_dir: PathBuf,
    fs: Option<Fs>,
    /// The inode each name `f<i>` currently names.
    inos: Vec<u64>,
    /// Unlinked inodes still held open: (model key, ino).
    orphans: Vec<(String, u64)>,
    /// Inodes that must be gone (unlinked and closed, or reclaimed).
    gone: Vec<u64>,
    /// Open handles: (model key, ino, fh).
    handles: Vec<(String, u64, u64)>,
    /// The model: contents by name (`f<i>`, or `f<i>@<ino>` once unlinked).
    model: HashMap<String, Vec<u8>>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let mut h = Harness {
            fs: Some(open_fs(&store_dir)),
            _dir: dir,
            store_dir,
            inos: Vec::new(),
            orphans: Vec::new(),
            gone: Vec::new(),
            handles: Vec::new(),
            model: HashMap::new(),
        };
        for f in 0..FILES {
            let ino = h.create(f).unwrap();
            h.inos.push(ino);
        }
        h
    }

    fn fs(&self) -> &Fs {
        self.fs.as_ref().unwrap()
    }

    fn create(&mut self, f: usize) -> Result<u64, String> {
        let a = self
            .fs()
            .mknod(
                &Ctx::root(),
                ROOT_INO,
                name(f).as_bytes(),
                libc::S_IFREG | 0o644,
                0,
            )
            .map_err(|e| format!("mknod: {e}"))?;
        self.model.insert(name(f), Vec::new());
        Ok(a.ino)
    }

    /// (model key, ino) of a target.
    fn target(&self, t: Target) -> (String, u64) {
        match t {
            Target::Handle(i) if !self.handles.is_empty() => {
                let (key, ino, _) = &self.handles[i % self.handles.len()];
                (key.clone(), *ino)
            }
            Target::Handle(_) => (name(0), self.inos[0]),
            Target::Name(f) => (name(f), self.inos[f]),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Open { file, trunc } => {
                let flags = libc::O_RDWR | if trunc { libc::O_TRUNC } else { 0 };
                let ino = self.inos[file];
                let fh = self
                    .fs()
                    .open(ino, flags)
                    .map_err(|e| format!("open: {e}"))?;
                self.handles.push((name(file), ino, fh));
                if trunc {
                    self.model.get_mut(&name(file)).unwrap().clear();
                }
            }
            Op::Write {
                handle,
                offset,
                len,
                seed,
                compressible,
            } => {
                if self.handles.is_empty() {
                    return Ok(());
                }
                let (key, ino, fh) = self.handles[handle % self.handles.len()].clone();
                let data = pattern(len, seed, compressible);
                let n = self
                    .fs()
                    .write(ino, fh, offset, &data)
                    .map_err(|e| format!("write: {e}"))?;
                if n != len {
                    return Err(format!("write returned {n}, wanted {len}"));
                }
                let m = self.model.get_mut(&key).unwrap();
                let end = offset as usize + len;
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[offset as usize..end].copy_from_slice(&data);
            }
            Op::Read {
                target,
                offset,
                len,
            } => {
                let (key, ino) = self.target(target);
                let got = self
                    .fs()
                    .read(ino, offset, len)
                    .map_err(|e| format!("read: {e}"))?;
                let m = &self.model[&key];
                let start = (offset as usize).min(m.len());
                let end = (offset as usize + len as usize).min(m.len());
                if got != m[start..end] {
                    return Err(format!(
                        "read({offset}, {len}) of {key}: {}",
                        describe_diff(&got, &m[start..end])
                    ));
                }
            }
            Op::Truncate { target, size } => {
                let (key, ino) = self.target(target);
                let attr = self
                    .fs()
                    .setattr(
                        ino,
                        &SetAttr {
                            size: Some(size),
                            ..SetAttr::default()
                        },
                    )
                    .map_err(|e| format!("setattr(size) of {key}: {e}"))?;
                if attr.size != size {
                    return Err(format!(
                        "setattr returned size {}, wanted {size}",
                        attr.size
                    ));
                }
                self.model.get_mut(&key).unwrap().resize(size as usize, 0);
            }
            Op::Flush { handle } => {
                if let Some((_, ino, _)) = self.handle(handle) {
                    self.fs().flush(ino).map_err(|e| format!("flush: {e}"))?;
                }
            }
            Op::Fsync { handle } => {
                if let Some((_, ino, _)) = self.handle(handle) {
                    self.fs().fsync(ino).map_err(|e| format!("fsync: {e}"))?;
                }
            }
            Op::Release { handle } => {
                if self.handles.is_empty() {
                    return Ok(());
                }
                let (key, ino, fh) = self.handles.remove(handle % self.handles.len());
                self.fs()
                    .release(ino, fh)
                    .map_err(|e| format!("release: {e}"))?;
                let last = !self.handles.iter().any(|h| h.1 == ino);
                if last && self.orphans.iter().any(|o| o.1 == ino) {
                    self.orphans.retain(|o| o.1 != ino);
                    self.model.remove(&key);
                    self.gone.push(ino);
                }
            }
            Op::Unlink { file } => {
                let ino = self.inos[file];
                self.fs()
                    .unlink(ROOT_INO, name(file).as_bytes())
                    .map_err(|e| format!("unlink: {e}"))?;
                let content = self.model.remove(&name(file)).unwrap();
                if self.handles.iter().any(|h| h.1 == ino) {
                    let key = format!("{}@{ino}", name(file));
                    for h in self.handles.iter_mut().filter(|h| h.1 == ino) {
                        h.0 = key.clone();
                    }
                    self.model.insert(key.clone(), content);
                    self.orphans.push((key, ino));
                } else {
                    self.gone.push(ino);
                }
                self.inos[file] = self.create(file)?;
            }
            Op::Remount => self.remount()?,
        }
        Ok(())
    }

    fn handle(&self, handle: usize) -> Option<(String, u64, u64)> {
        if self.handles.is_empty() {
            None
        } else {
            Some(self.handles[handle % self.handles.len()].clone())
        }
    }

    fn remount(&mut self) -> Result<(), String> {
        let fs = self.fs.take().unwrap();
        fs.shutdown().map_err(|e| format!("shutdown: {e}"))?;
        drop(fs);
        // Handles do not survive an unmount; unlinked inodes are reclaimed
        // when the store is opened again.
        self.handles.clear();
        for (key, ino) in std::mem::take(&mut self.orphans) {
            self.model.remove(&key);
            self.gone.push(ino);
        }
        self.fs = Some(open_fs(&self.store_dir));
        Ok(())
    }

    /// getattr size and the full contents of `ino` equal the model's `key`.
    fn check_one(&self, key: &str, ino: u64) -> Result<Attr, String> {
        let want = &self.model[key];
        let attr = self
            .fs()
            .getattr(ino)
            .map_err(|e| format!("getattr {key}: {e}"))?;
        if attr.size != want.len() as u64 {
            return Err(format!(
                "{key}: getattr size {}, model {}",
                attr.size,
                want.len()
            ));
        }
        let got = self
            .fs()
            .read(ino, 0, want.len() as u32 + 10_000)
            .map_err(|e| format!("read {key}: {e}"))?;
        if got != *want {
            return Err(format!("{key}: full read: {}", describe_diff(&got, want)));
        }
        Ok(attr)
    }

    fn check(&self) -> Result<(), String> {
        for (f, &ino) in self.inos.iter().enumerate() {
            let attr = self.check_one(&name(f), ino)?;
            if attr.nlink != 1 {
                return Err(format!("{}: nlink {}", name(f), attr.nlink));
            }
            let looked = self
                .fs()
                .lookup(ROOT_INO, name(f).as_bytes())
                .map_err(|e| format!("lookup: {e}"))?;
            if (looked.ino, looked.size) != (ino, attr.size) {
                return Err(format!(
                    "{}: lookup gives ino {} size {}, getattr ino {ino} size {}",
                    name(f),
                    looked.ino,
                    looked.size,
                    attr.size
                ));
            }
        }
        for (key, ino) in &self.orphans {
            let attr = self.check_one(key, *ino)?;
            if attr.nlink != 0 {
                return Err(format!("{key}: unlinked but nlink {}", attr.nlink));
            }
        }
        for &ino in &self.gone {
            match self.fs().getattr(ino) {
                Err(Error::NotFound) => {}
                other => return Err(format!("inode {ino} should be gone: getattr {other:?}")),
            }
        }
        let names: Vec<Vec<u8>> = self
            .fs()
            .readdir(ROOT_INO, 0, usize::MAX)
            .map_err(|e| format!("readdir: {e}"))?
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n != b"." && n != b"..")
            .collect();
        if names.len() != FILES {
            return Err(format!(
                "readdir lists {:?}",
                names
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    /// Closes everything, remounts, checks, and runs fsck on the store.
    fn finish(mut self) -> Result<(), String> {
        while let Some(h) = self.handles.pop() {
            self.handles.push(h);
            self.apply(&Op::Release { handle: 0 })
                .map_err(|e| format!("final release: {e}"))?;
        }
        self.check()?;
        self.remount()?;
        self.check()?;
        let report = llmfs::fsck::check(
            self.fs().store(),
            &llmfs::codec::CodecSet::default(),
            |_, _| {},
        )
        .map_err(|e| format!("fsck: {e}"))?;
        if !report.is_clean() {
            return Err(format!("fsck: {report}"));
        }
        self.fs
            .take()
            .unwrap()
            .shutdown()
            .map_err(|e| format!("shutdown: {e}"))?;
        Ok(())
    }
}

fn describe_diff(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "got {} bytes, model {}; first difference at byte {i} (block {} + {}): got {:#04x}, model {:#04x}",
            got.len(),
            want.len(),
            i / BLOCK_SIZE,
            i % BLOCK_SIZE,
            got[i],
            want[i]
        ),
        None => format!(
            "got {} bytes, model {} (equal up to the shorter)",
            got.len(),
            want.len()
        ),
    }
}

fn run_ops(ops: &[Op]) -> Result<(), String> {
    let mut h = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        h.apply(op)
            .and_then(|()| h.check())
            .map_err(|e| format!("after op {i} {op:?}: {e}"))?;
    }
    h.finish()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn core_matches_model(ops in prop::collection::vec(op_strategy(), 1..80)) {
        if let Err(e) = run_ops(&ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

/// A fixed sequence through every operation, so that a plain run covers
/// them even if the random cases happen not to.
#[test]
fn core_model_fixed_sequence() {
    use Op::*;
    let ops = [
        Open {
            file: 0,
            trunc: false,
        },
        Write {
            handle: 0,
            offset: 4090,
            len: 20_000,
            seed: 7,
            compressible: false,
        },
        Write {
            handle: 0,
            offset: 100_000,
            len: 10,
            seed: 1,
            compressible: true,
        },
        Read {
            target: Target::Name(0),
            offset: 4000,
            len: 9000,
        },
        Truncate {
            target: Target::Name(0),
            size: 10_001,
        },
        Truncate {
            target: Target::Handle(0),
            size: 30_000,
        },
        Flush { handle: 0 },
        Open {
            file: 1,
            trunc: false,
        },
        Write {
            handle: 1,
            offset: 0,
            len: 70_000,
            seed: 3,
            compressible: true,
        },
        Fsync { handle: 1 },
        Unlink { file: 1 },
        Write {
            handle: 1,
            offset: 5000,
            len: 9000,
            seed: 4,
            compressible: false,
        },
        Read {
            target: Target::Handle(1),
            offset: 0,
            len: 20_000,
        },
        Truncate {
            target: Target::Handle(1),
            size: 6000,
        },
        Release { handle: 1 },
        Open {
            file: 1,
            trunc: false,
        },
        Unlink { file: 1 },
        Remount,
        Open {
            file: 1,
            trunc: true,
        },
        Write {
            handle: 0,
            offset: 8191,
            len: 2,
            seed: 9,
            compressible: false,
        },
        Release { handle: 0 },
    ];
    run_ops(&ops).unwrap();
}

// ---------------------------------------------------------------------------
// Block record codec

/// Raw block contents: random bytes, runs (compressible), or a mix.
fn raw_block() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..70_000),
        prop::collection::vec((any::<u8>(), 1usize..3000), 0..60).prop_map(|runs| {
            let mut v = Vec::new();
            for (b, n) in runs {
                v.resize(v.len() + n, b);
            }
            v.truncate(70_000);
            v
        }),
        (0usize..70_000).prop_map(|n| vec![0u8; n]),
        Just(vec![0u8; MAX_RAW]),
        Just(vec![0u8; MAX_RAW + 1]),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, value: u8 },
    Truncate { keep: usize },
    Append { bytes: Vec<u8> },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        // Header bytes specifically (version, codec, lengths, CRC).
        2 => (0usize..RECORD_HEADER_LEN, any::<u8>())
            .prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn mutate(rec: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit { at, bit } if !rec.is_empty() => {
            let i = at % rec.len();
            rec[i] ^= 1 << bit;
        }
        Mutation::SetByte { at, value } if !rec.is_empty() => {
            let i = at % rec.len();
            rec[i] = *value;
        }
        Mutation::Truncate { keep } => {
            let keep = keep % (rec.len() + 1);
            rec.truncate(keep);
        }
        Mutation::Append { bytes } => rec.extend_from_slice(bytes),
        Mutation::Remove { at } if !rec.is_empty() => {
            let i = at % rec.len();
            rec.remove(i);
        }
        _ => {}
    }
}

/// A header that passes the length checks (version 1, payload length
/// matching), with a chosen codec and raw length and arbitrary payload: gets
/// past the header into the codecs' own decoders.
/// CRC-32C (Castagnoli), bitwise: the record checksum.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn plausible_record() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..3,
        0u32..=(MAX_RAW as u32 + 2),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..2000),
        any::<bool>(),
    )
        .prop_map(|(codec, raw_len, crc, payload, zstd_magic)| {
            let mut payload = payload;
            if zstd_magic && payload.len() >= 4 {
                // A zstd frame magic number, so that zstd parses further.
                payload[..4].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
            }
            let mut rec = vec![1u8, codec, 0, 0, 0, 0, 0, 0];
            rec.extend_from_slice(&raw_len.to_le_bytes());
            rec.extend_from_slice(&crc.to_le_bytes());
            rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            rec.extend_from_slice(&payload);
            rec
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn codec_round_trip(raw in raw_block()) {
        let codecs = CodecSet::default();
        let rec = codecs.encode_block(&raw).expect("encode");
        prop_assert!(rec.len() >= RECORD_HEADER_LEN);
        // Never stored larger than raw plus the header.
        prop_assert!(rec.len() <= raw.len() + RECORD_HEADER_LEN);
        let decoded = codecs.decode_block(&rec, MAX_RAW);
        if raw.len() <= MAX_RAW {
            prop_assert_eq!(decoded.expect("decode"), raw);
        } else {
            prop_assert!(decoded.is_err(), "a {}-byte block decoded with limit {}", raw.len(), MAX_RAW);
        }
    }

    #[test]
    fn codec_mutated_records_fail_cleanly(
        raw in raw_block(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let codecs = CodecSet::default();
        let raw = &raw[..raw.len().min(MAX_RAW)];
        let mut rec = codecs.encode_block(raw).expect("encode");
        for m in &muts {
            mutate(&mut rec, m);
        }
        // An error, or the original bytes (a damaged reserved field, say).
        if let Ok(out) = codecs.decode_block(&rec, MAX_RAW) {
            prop_assert!(out == raw, "damaged record decoded to different bytes");
        }
    }

    #[test]
    fn codec_random_records_fail_cleanly(
        rec in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..100),
            plausible_record(),
        ],
    ) {
        let codecs = CodecSet::default();
        if let Ok(out) = codecs.decode_block(&rec, MAX_RAW) {
            // Possible only for a record that is in fact valid: the declared
            // length and checksum match what came out.
            let declared = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(rec[12..16].try_into().unwrap());
            prop_assert!(out.len() <= MAX_RAW);
            prop_assert_eq!(out.len(), declared);
            prop_assert_eq!(crc32c_of(&out), crc);
        }
    }
}
