//! Differential random-operation test: one seeded sequence of filesystem
//! operations is applied to a real llmfs mount and to a plain directory on the
//! host filesystem, and the two must agree: every operation must give the same
//! result (success, or the same errno), and after every step the two trees
//! must hold the same paths, file types, sizes, contents, permission bits,
//! link counts, symlink targets and extended attributes. Timestamps, inode
//! numbers, `st_blocks` and directory sizes are not compared.
//!
//! Operations: create, write (random offsets, across block boundaries, far
//! past EOF), truncate, fallocate (allocate, keep size, punch hole, zero
//! range), rename (with RENAME_NOREPLACE / RENAME_EXCHANGE), link, unlink,
//! mkdir, rmdir, symlink, mkfifo, setxattr/removexattr (user.*), chmod.
//!
//! Some descriptors are kept open across later operations (writes, reads,
//! truncation and fsync through a descriptor whose file has since been
//! renamed, replaced or unlinked). Every 100 steps the llmfs side is
//! remounted and compared again; at the end it is unmounted and `llmfs fsck`
//! must report a clean store.
//!
//! Bounded for CI: 400 steps for each of 3 seeds. For a long run:
//!
//! ```text
//! LLMFS_DIFF_STEPS=5000 LLMFS_DIFF_SEEDS=50 cargo test --release --test mount differential
//! ```
//!
//! `LLMFS_DIFF_SEEDS=N` runs seeds 0..N; `LLMFS_DIFF_SEED=S` runs only seed
//! `S` (to replay a failure: the panic message names the seed and the step).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::common::Mounted;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_STEPS: usize = 400;
const DEFAULT_SEEDS: u64 = 3;
/// Remount the llmfs side (and compare again) every this many steps.
const REMOUNT_EVERY: usize = 100;
/// The llmfs block size: writes and truncations aim at its boundaries.
const BLOCK: u64 = 64 * 1024;
/// Offsets are kept below this so that files stay small enough to compare
/// in full after every step.
const MAX_OFFSET: u64 = 1 << 20;
/// Names used at every level: few, so that operations collide often.
const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const XATTR_NAMES: [&str; 4] = ["user.a", "user.b", "user.long.attribute.name", "user.d"];
/// Most descriptors held open at once.
const MAX_HELD: usize = 4;
/// Operations kept for the failure message.
const HISTORY: usize = 25;

fn env_num(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

#[test]
fn differential_random_ops() {
    require_fuse!();
    // SAFETY: umask cannot fail; both sides see the same one. The umask is
    // the process's, shared by every test of this binary: 022 is the value
    // the others expect too (tests/mount/semantics.rs checks 0666 & !022).
    unsafe { libc::umask(0o022) };
    let steps = env_num("LLMFS_DIFF_STEPS").unwrap_or(DEFAULT_STEPS as u64) as usize;
    let seeds: Vec<u64> = match env_num("LLMFS_DIFF_SEED") {
        Some(s) => vec![s],
        None => (0..env_num("LLMFS_DIFF_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    for seed in seeds {
        let start = std::time::Instant::now();
        run_seed(seed, steps);
        eprintln!(
            "differential: seed {seed}, {steps} steps: ok in {:.1?}",
            start.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------
// Operations

/// What the bytes of a write look like.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Incompressible (stored raw).
    Random(u64),
    /// One repeated byte (compresses well).
    Byte(u8),
    /// All zeros (llmfs may store such blocks as holes).
    Zeros,
    /// Text-like, compressible but not trivially.
    Text(u64),
}

impl Pattern {
    fn bytes(self, len: usize) -> Vec<u8> {
        match self {
            Pattern::Random(seed) => {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut v = vec![0u8; len];
                rng.fill(&mut v[..]);
                v
            }
            Pattern::Byte(b) => vec![b; len],
            Pattern::Zeros => vec![0; len],
            Pattern::Text(seed) => {
                let words: [&[u8]; 6] = [b"block ", b"llmfs ", b"zstd ", b"hole ", b"\n", b"data "];
                let mut rng = StdRng::seed_from_u64(seed);
                let mut v = Vec::with_capacity(len + 8);
                while v.len() < len {
                    v.extend_from_slice(words[rng.random_range(0..words.len())]);
                }
                v.truncate(len);
                v
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `open(O_CREAT|O_WRONLY [|O_EXCL] [|O_TRUNC], mode)` and close.
    Create {
        path: String,
        mode: u32,
        excl: bool,
        trunc: bool,
    },
    /// Open for writing, `pwrite` (or `write` with `O_APPEND`), close.
    Write {
        path: String,
        offset: u64,
        len: usize,
        pat: Pattern,
        append: bool,
    },
    Truncate {
        path: String,
        size: u64,
    },
    /// Open for writing, `fallocate(mode, offset, len)`, close.
    Fallocate {
        path: String,
        mode: i32,
        offset: u64,
        len: u64,
    },
    /// `renameat2` with flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
    Rename {
        from: String,
        to: String,
        flags: u32,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Mkfifo {
        path: String,
        mode: u32,
    },
    Rmdir {
        path: String,
    },
    /// Targets are relative and never contain "..", so that no symlink can
    /// lead out of the tree, wherever it is moved.
    Symlink {
        target: String,
        path: String,
    },
    SetXattr {
        path: String,
        name: &'static str,
        len: usize,
        pat: Pattern,
        flags: i32,
    },
    RemoveXattr {
        path: String,
        name: &'static str,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    /// Opens `O_RDWR` and keeps the descriptor pair.
    OpenKeep {
        path: String,
        append: bool,
        trunc: bool,
    },
    FdWrite {
        slot: usize,
        offset: u64,
        len: usize,
        pat: Pattern,
    },
    FdRead {
        slot: usize,
        offset: u64,
        len: usize,
    },
    FdTruncate {
        slot: usize,
        size: u64,
    },
    FdFsync {
        slot: usize,
    },
    FdFallocate {
        slot: usize,
        mode: i32,
        offset: u64,
        len: u64,
    },
    FdStat {
        slot: usize,
    },
    FdClose {
        slot: usize,
    },
}

/// Result of one operation on one side: a value, or an errno.
type R = Result<i64, i32>;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

fn check(rc: i64) -> R {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// `pwrite`/`write` the whole buffer (looping on short writes).
fn write_all_at(fd: i32, data: &[u8], offset: Option<u64>) -> R {
    let mut done = 0usize;
    while done < data.len() {
        let rest = &data[done..];
        // SAFETY: `rest` is a valid buffer of the given length.
        let n = unsafe {
            match offset {
                Some(off) => libc::pwrite(
                    fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    (off + done as u64) as libc::off_t,
                ),
                None => libc::write(fd, rest.as_ptr().cast(), rest.len()),
            }
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            return Err(-1);
        }
        done += n as usize;
    }
    Ok(done as i64)
}

fn pread_all(fd: i32, offset: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut out = vec![0u8; len];
    let mut done = 0usize;
    while done < len {
        // SAFETY: the buffer holds `len - done` bytes from `done`.
        let n = unsafe {
            libc::pread(
                fd,
                out[done..].as_mut_ptr().cast(),
                len - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    out.truncate(done);
    Ok(out)
}

fn fallocate(fd: i32, mode: i32, offset: u64, len: u64) -> R {
    // SAFETY: a descriptor this test owns.
    check(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) } as i64)
}

fn close_fd(fd: i32) -> R {
    // SAFETY: closing a descriptor this test opened and owns.
    check(unsafe { libc::close(fd) } as i64)
}

/// Facts compared by `FdStat`.
#[derive(Debug, PartialEq, Eq)]
struct FdFacts {
    size: u64,
    nlink: u64,
    mode: u32,
}

fn fstat_fd(fd: i32) -> Result<FdFacts, i32> {
    // SAFETY: fstat writes into the zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(errno());
    }
    Ok(FdFacts {
        size: st.st_size as u64,
        nlink: st.st_nlink as u64,
        mode: st.st_mode,
    })
}

/// One of the two trees: the llmfs mount or the host directory.
struct Side {
    root: PathBuf,
}

impl Side {
    fn p(&self, rel: &str) -> CString {
        cpath(&self.root.join(rel))
    }

    /// Applies a path operation (not the descriptor ones).
    fn apply(&self, op: &Op) -> R {
        // SAFETY (all calls below): arguments are valid C strings and buffers.
        unsafe {
            match op {
                Op::Create {
                    path,
                    mode,
                    excl,
                    trunc,
                } => {
                    let mut flags =
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
                    if *excl {
                        flags |= libc::O_EXCL;
                    }
                    if *trunc {
                        flags |= libc::O_TRUNC;
                    }
                    let fd = check(libc::open(self.p(path).as_ptr(), flags, *mode) as i64)?;
                    close_fd(fd as i32)
                }
                Op::Write {
                    path,
                    offset,
                    len,
                    pat,
                    append,
                } => {
                    let mut flags = libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
                    if *append {
                        flags |= libc::O_APPEND;
                    }
                    let fd = check(libc::open(self.p(path).as_ptr(), flags) as i64)? as i32;
                    let data = pat.bytes(*len);
                    let r = write_all_at(fd, &data, (!*append).then_some(*offset));
                    let c = close_fd(fd);
                    let n = r?;
                    c?;
                    Ok(n)
                }
                Op::Truncate { path, size } => {
                    check(libc::truncate(self.p(path).as_ptr(), *size as libc::off_t) as i64)
                }
                Op::Fallocate {
                    path,
                    mode,
                    offset,
                    len,
                } => {
                    let flags = libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
                    let fd = check(libc::open(self.p(path).as_ptr(), flags) as i64)? as i32;
                    let r = fallocate(fd, *mode, *offset, *len);
                    let c = close_fd(fd);
                    r?;
                    c
                }
                Op::Rename { from, to, flags } => check(libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    self.p(from).as_ptr(),
                    libc::AT_FDCWD,
                    self.p(to).as_ptr(),
                    *flags,
                )),
                Op::Link { from, to } => {
                    check(libc::link(self.p(from).as_ptr(), self.p(to).as_ptr()) as i64)
                }
                Op::Unlink { path } => check(libc::unlink(self.p(path).as_ptr()) as i64),
                Op::Mkdir { path, mode } => check(libc::mkdir(self.p(path).as_ptr(), *mode) as i64),
                Op::Mkfifo { path, mode } => {
                    check(libc::mkfifo(self.p(path).as_ptr(), *mode) as i64)
                }
                Op::Rmdir { path } => check(libc::rmdir(self.p(path).as_ptr()) as i64),
                Op::Symlink { target, path } => {
                    let t = CString::new(target.as_bytes()).unwrap();
                    check(libc::symlink(t.as_ptr(), self.p(path).as_ptr()) as i64)
                }
                Op::SetXattr {
                    path,
                    name,
                    len,
                    pat,
                    flags,
                } => {
                    let n = CString::new(*name).unwrap();
                    let v = pat.bytes(*len);
                    check(libc::setxattr(
                        self.p(path).as_ptr(),
                        n.as_ptr(),
                        v.as_ptr().cast(),
                        v.len(),
                        *flags,
                    ) as i64)
                }
                Op::RemoveXattr { path, name } => {
                    let n = CString::new(*name).unwrap();
                    check(libc::removexattr(self.p(path).as_ptr(), n.as_ptr()) as i64)
                }
                Op::Chmod { path, mode } => check(libc::chmod(self.p(path).as_ptr(), *mode) as i64),
                _ => unreachable!("descriptor operations are applied by the runner"),
            }
        }
    }

    fn open_keep(&self, path: &str, append: bool, trunc: bool) -> R {
        let mut flags = libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK;
        if append {
            flags |= libc::O_APPEND;
        }
        if trunc {
            flags |= libc::O_TRUNC;
        }
        // SAFETY: valid C string.
        check(unsafe { libc::open(self.p(path).as_ptr(), flags) } as i64)
    }
}

// ---------------------------------------------------------------------------
// Tree snapshots

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other(u32),
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    perm: u32,
    nlink: u64,
    /// Not for directories.
    size: Option<u64>,
    content: Option<Vec<u8>>,
    target: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

type Tree = BTreeMap<String, Node>;

fn lxattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let c = cpath(path);
    let mut out = BTreeMap::new();
    // SAFETY: a null buffer of size 0 asks for the length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(format!("llistxattr {}: errno {}", path.display(), errno()));
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: the buffer holds n bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(format!("llistxattr {}: errno {}", path.display(), errno()));
    }
    names.truncate(n as usize);
    for name in names.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut buf = vec![0u8; 70_000];
        // SAFETY: the buffer holds buf.len() bytes.
        let v =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if v < 0 {
            return Err(format!(
                "lgetxattr {} {}: errno {}",
                path.display(),
                String::from_utf8_lossy(name),
                errno()
            ));
        }
        buf.truncate(v as usize);
        out.insert(name.to_vec(), buf);
    }
    Ok(out)
}

fn node_of(path: &Path) -> Result<Node, String> {
    use std::os::unix::fs::MetadataExt;
    let md =
        std::fs::symlink_metadata(path).map_err(|e| format!("lstat {}: {e}", path.display()))?;
    let fmt = md.mode() & libc::S_IFMT;
    let kind = match fmt {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        other => Kind::Other(other),
    };
    let content = match kind {
        Kind::File => {
            Some(std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?)
        }
        _ => None,
    };
    let target = match kind {
        Kind::Symlink => Some(
            std::fs::read_link(path)
                .map_err(|e| format!("readlink {}: {e}", path.display()))?
                .into_os_string()
                .into_vec(),
        ),
        _ => None,
    };
    Ok(Node {
        kind,
        perm: md.mode() & 0o7777,
        nlink: md.nlink(),
        size: (kind != Kind::Dir).then_some(md.size()),
        content,
        target,
        xattrs: lxattrs(path)?,
    })
}

use std::os::unix::ffi::OsStringExt;

fn snapshot(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let abs = root.join(&rel);
        let node = node_of(&abs)?;
        if node.kind == Kind::Dir {
            let rd =
                std::fs::read_dir(&abs).map_err(|e| format!("readdir {}: {e}", abs.display()))?;
            for entry in rd {
                let entry = entry.map_err(|e| format!("readdir {}: {e}", abs.display()))?;
                let name = entry.file_name().into_string().expect("utf-8 names");
                todo.push(if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                });
            }
        }
        if tree.insert(rel.clone(), node).is_some() {
            return Err(format!("{rel:?} listed twice"));
        }
    }
    Ok(tree)
}

fn first_diff(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    match at {
        Some(i) => format!(
            "lengths {} / {}; first difference at byte {i} (block {} + {}): llmfs {:#04x}, native {:#04x}",
            a.len(),
            b.len(),
            i as u64 / BLOCK,
            i as u64 % BLOCK,
            a[i],
            b[i]
        ),
        None => format!(
            "lengths {} / {}, equal up to the shorter",
            a.len(),
            b.len()
        ),
    }
}

/// Describes every difference between the llmfs tree `a` and the native `b`.
fn diff_trees(a: &Tree, b: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, na) in a {
        let Some(nb) = b.get(path) else {
            out.push(format!("{path:?}: only on llmfs ({:?})", na.kind));
            continue;
        };
        if na == nb {
            continue;
        }
        let mut d = Vec::new();
        if na.kind != nb.kind {
            d.push(format!("kind {:?} / {:?}", na.kind, nb.kind));
        }
        if na.perm != nb.perm {
            d.push(format!("perm {:o} / {:o}", na.perm, nb.perm));
        }
        if na.nlink != nb.nlink {
            d.push(format!("nlink {} / {}", na.nlink, nb.nlink));
        }
        if na.size != nb.size {
            d.push(format!("size {:?} / {:?}", na.size, nb.size));
        }
        if na.content != nb.content {
            let (ca, cb) = (na.content.as_deref(), nb.content.as_deref());
            d.push(format!(
                "content: {}",
                first_diff(ca.unwrap_or_default(), cb.unwrap_or_default())
            ));
        }
        if na.target != nb.target {
            d.push(format!("symlink target {:?} / {:?}", na.target, nb.target));
        }
        if na.xattrs != nb.xattrs {
            let show = |x: &BTreeMap<Vec<u8>, Vec<u8>>| {
                x.iter()
                    .map(|(k, v)| format!("{}={}B", String::from_utf8_lossy(k), v.len()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            d.push(format!(
                "xattrs [{}] / [{}]",
                show(&na.xattrs),
                show(&nb.xattrs)
            ));
        }
        out.push(format!("{path:?}: {} (llmfs / native)", d.join("; ")));
    }
    for (path, nb) in b {
        if !a.contains_key(path) {
            out.push(format!("{path:?}: only on native ({:?})", nb.kind));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The runner

/// A descriptor pair kept open across operations.
struct Held {
    llmfs: i32,
    native: i32,
    /// The path it was opened by (it may have moved since).
    opened_as: String,
}

struct Runner {
    seed: u64,
    step: usize,
    m: Mounted,
    _native_dir: tempfile::TempDir,
    llmfs: Side,
    native: Side,
    rng: StdRng,
    held: Vec<Held>,
    history: VecDeque<String>,
    /// Per operation kind: (succeeded, failed) on both sides alike.
    stats: BTreeMap<&'static str, (u32, u32)>,
    /// The native tree after the last step: the pool that ops pick from.
    tree: Tree,
}

impl Runner {
    fn fail(&self, op: &dyn std::fmt::Debug, detail: &str) -> ! {
        let history: Vec<String> = self.history.iter().cloned().collect();
        let held: Vec<String> = self
            .held
            .iter()
            .enumerate()
            .map(|(i, h)| format!("slot {i}: opened as {:?}", h.opened_as))
            .collect();
        panic!(
            "differential mismatch: seed {} step {}\nop: {:?}\n{}\nheld descriptors: {:?}\n\
             last operations (oldest first):\n  {}\ndaemon log tail:\n{}",
            self.seed,
            self.step,
            op,
            detail,
            held,
            history.join("\n  "),
            tail(&self.m.log_text(), 3000),
        );
    }

    fn compare(&mut self, op: &dyn std::fmt::Debug) {
        let a =
            snapshot(&self.llmfs.root).unwrap_or_else(|e| self.fail(op, &format!("llmfs: {e}")));
        let b =
            snapshot(&self.native.root).unwrap_or_else(|e| self.fail(op, &format!("native: {e}")));
        let diffs = diff_trees(&a, &b);
        if !diffs.is_empty() {
            self.fail(op, &format!("trees differ:\n  {}", diffs.join("\n  ")));
        }
        self.tree = b;
    }

    fn record(&mut self, op: &Op, ok: bool) {
        let e = self.stats.entry(op_name(op)).or_default();
        if ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }

    fn check_results(&mut self, op: &Op, a: &R, b: &R) {
        self.record(op, b.is_ok());
        if a != b {
            self.fail(
                op,
                &format!("results differ: llmfs {} / native {}", show_r(a), show_r(b)),
            );
        }
    }

    // --- picking ---

    fn paths_where(&self, f: impl Fn(&str, &Node) -> bool) -> Vec<String> {
        self.tree
            .iter()
            .filter(|(p, n)| f(p, n))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn pick_from(&mut self, v: &[String]) -> Option<String> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.random_range(0..v.len())].clone())
        }
    }

    /// A name in an existing directory (it may happen to exist).
    fn new_path(&mut self) -> String {
        let dirs = self.paths_where(|p, n| n.kind == Kind::Dir && p.matches('/').count() < 3);
        let dir = self.pick_from(&dirs).unwrap_or_default();
        let name = NAMES[self.rng.random_range(0..NAMES.len())];
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    }

    /// Mostly an existing entry other than the root; sometimes a new name.
    fn any_path(&mut self, existing_pct: u32) -> String {
        if self.rng.random_ratio(existing_pct, 100) {
            let all = self.paths_where(|p, _| !p.is_empty());
            if let Some(p) = self.pick_from(&all) {
                return p;
            }
        }
        self.new_path()
    }

    /// Mostly an existing regular file.
    fn file_path(&mut self) -> String {
        if self.rng.random_ratio(85, 100) {
            let files = self.paths_where(|_, n| n.kind == Kind::File);
            if let Some(p) = self.pick_from(&files) {
                return p;
            }
        }
        self.any_path(70)
    }

    /// With `pct` percent chance, the path some held descriptor was opened
    /// by (the file may have moved or gone since).
    fn held_path(&mut self, pct: u32) -> Option<String> {
        if self.held.is_empty() || !self.rng.random_ratio(pct, 100) {
            return None;
        }
        let i = self.rng.random_range(0..self.held.len());
        Some(self.held[i].opened_as.clone())
    }

    fn is_empty_dir(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        !self.tree.keys().any(|k| k.starts_with(&prefix))
    }

    fn size_of(&self, path: &str) -> u64 {
        self.tree.get(path).and_then(|n| n.size).unwrap_or(0)
    }

    fn gen_len(&mut self) -> usize {
        match self.rng.random_range(0..10) {
            0..=3 => self.rng.random_range(1..=4096),
            4..=6 => self.rng.random_range(4096..=70_000),
            7..=8 => self.rng.random_range(70_000..=200 * 1024),
            _ => [1, 4095, 4096, 4097, 65535, 65536, 65537, 131072][self.rng.random_range(0..8)],
        }
    }

    fn gen_offset(&mut self, size: u64, len: usize) -> u64 {
        let off = match self.rng.random_range(0..20) {
            0..=4 => self.rng.random_range(0..=size),
            5..=8 => size,
            // Straddle a block boundary.
            9..=12 => {
                let k = self.rng.random_range(1..=4u64);
                (k * BLOCK).saturating_sub(self.rng.random_range(0..=len as u64))
            }
            // Far past EOF: a hole.
            13..=15 => size + self.rng.random_range(BLOCK..=300 * 1024),
            16 => size + self.rng.random_range(1..=4096),
            _ => 0,
        };
        off % MAX_OFFSET
    }

    fn gen_size(&mut self, size: u64) -> u64 {
        let s = match self.rng.random_range(0..10) {
            0 => 0,
            1..=3 => self.rng.random_range(0..=size),
            4 => size.saturating_sub(self.rng.random_range(1..=100)),
            5..=6 => size + self.rng.random_range(1..=300 * 1024),
            _ => {
                let k = self.rng.random_range(0..=8u64);
                (k * BLOCK + self.rng.random_range(0..3)).saturating_sub(1)
            }
        };
        s % MAX_OFFSET
    }

    fn gen_pattern(&mut self) -> Pattern {
        match self.rng.random_range(0..10) {
            0..=3 => Pattern::Random(self.rng.random()),
            4..=5 => Pattern::Byte(self.rng.random_range(1..=255)),
            6..=7 => Pattern::Text(self.rng.random()),
            _ => Pattern::Zeros,
        }
    }

    /// fallocate modes: allocate (extends the size), keep size, punch a
    /// hole, zero a range.
    fn gen_falloc(&mut self, size: u64) -> (i32, u64, u64) {
        let mode = match self.rng.random_range(0..6) {
            0 => 0,
            1 => libc::FALLOC_FL_KEEP_SIZE,
            2..=3 => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4 => libc::FALLOC_FL_ZERO_RANGE,
            _ => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        };
        let len = if self.rng.random_ratio(1, 30) {
            0
        } else {
            self.gen_len() as u64
        };
        (mode, self.gen_offset(size, len as usize), len)
    }

    fn gen_mode(&mut self) -> u32 {
        if self.rng.random_ratio(1, 8) {
            self.rng.random_range(0..=0o7777)
        } else {
            self.rng.random_range(0..=0o777)
        }
    }

    fn gen_op(&mut self) -> Op {
        let held = self.held.len();
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=17 => {
                let path = self.file_path();
                let size = self.size_of(&path);
                let len = self.gen_len();
                Op::Write {
                    offset: self.gen_offset(size, len),
                    len,
                    pat: self.gen_pattern(),
                    append: self.rng.random_ratio(1, 10),
                    path,
                }
            }
            18..=25 => Op::Create {
                path: self.any_path(30),
                mode: self.gen_mode(),
                excl: self.rng.random_ratio(1, 4),
                trunc: self.rng.random_ratio(1, 4),
            },
            26..=30 => {
                let path = self.file_path();
                let size = self.size_of(&path);
                Op::Truncate {
                    size: self.gen_size(size),
                    path,
                }
            }
            31..=32 => {
                let path = self.file_path();
                let size = self.size_of(&path);
                let (mode, offset, len) = self.gen_falloc(size);
                Op::Fallocate {
                    path,
                    mode,
                    offset,
                    len,
                }
            }
            33..=42 => {
                let (from, to) = match self.held_path(25) {
                    // Move an open file away, or replace it.
                    Some(h) if self.rng.random() => (h, self.any_path(50)),
                    Some(h) => (self.file_path(), h),
                    None => (self.any_path(90), self.any_path(50)),
                };
                let flags = match self.rng.random_range(0..20) {
                    0..=1 => libc::RENAME_NOREPLACE,
                    2 => libc::RENAME_EXCHANGE,
                    _ => 0,
                };
                Op::Rename { from, to, flags }
            }
            43..=47 => {
                let from = match self.held_path(25) {
                    Some(h) => h,
                    None if self.rng.random_ratio(3, 4) => self.file_path(),
                    None => self.any_path(90),
                };
                Op::Link {
                    from,
                    to: self.any_path(20),
                }
            }
            48..=53 => Op::Unlink {
                path: match self.held_path(40) {
                    Some(p) => p,
                    None => self.any_path(90),
                },
            },
            54..=58 => Op::Mkdir {
                path: self.any_path(20),
                mode: self.gen_mode(),
            },
            // FIFOs: every open uses O_NONBLOCK, so none blocks.
            59 => Op::Mkfifo {
                path: self.any_path(20),
                mode: self.gen_mode(),
            },
            60..=63 => {
                let empty = self.paths_where(|p, n| {
                    n.kind == Kind::Dir && !p.is_empty() && n.nlink == 2 && self.is_empty_dir(p)
                });
                let path = match self.rng.random_ratio(2, 3) {
                    true => self.pick_from(&empty),
                    false => None,
                };
                Op::Rmdir {
                    path: path.unwrap_or_else(|| self.any_path(90)),
                }
            }
            64..=65 => {
                let a = NAMES[self.rng.random_range(0..NAMES.len())];
                let target = if self.rng.random_ratio(1, 3) {
                    let b = NAMES[self.rng.random_range(0..NAMES.len())];
                    format!("{a}/{b}")
                } else {
                    a.to_string()
                };
                Op::Symlink {
                    target,
                    path: self.any_path(20),
                }
            }
            66..=71 => {
                let name = XATTR_NAMES[self.rng.random_range(0..XATTR_NAMES.len())];
                let flags = match self.rng.random_range(0..6) {
                    0 => libc::XATTR_CREATE,
                    1 => libc::XATTR_REPLACE,
                    _ => 0,
                };
                Op::SetXattr {
                    path: self.any_path(95),
                    name,
                    len: self.rng.random_range(0..=200),
                    pat: self.gen_pattern(),
                    flags,
                }
            }
            72..=74 => {
                let with = self.paths_where(|_, n| !n.xattrs.is_empty());
                let path = match self.rng.random_ratio(3, 4) {
                    true => self.pick_from(&with),
                    false => None,
                };
                let path = path.unwrap_or_else(|| self.any_path(95));
                let names: Vec<&'static str> = XATTR_NAMES
                    .iter()
                    .copied()
                    .filter(|x| {
                        self.tree
                            .get(&path)
                            .is_some_and(|n| n.xattrs.contains_key(x.as_bytes()))
                    })
                    .collect();
                let name = if !names.is_empty() && self.rng.random_ratio(3, 4) {
                    names[self.rng.random_range(0..names.len())]
                } else {
                    XATTR_NAMES[self.rng.random_range(0..XATTR_NAMES.len())]
                };
                Op::RemoveXattr { path, name }
            }
            75..=78 => Op::Chmod {
                path: if self.rng.random_ratio(1, 20) {
                    String::new()
                } else {
                    self.any_path(95)
                },
                mode: self.gen_mode(),
            },
            _ if held == 0 || (roll < 84 && held < MAX_HELD) => Op::OpenKeep {
                path: self.file_path(),
                append: self.rng.random_ratio(1, 8),
                trunc: self.rng.random_ratio(1, 10),
            },
            _ => {
                let slot = self.rng.random_range(0..held);
                match self.rng.random_range(0..18) {
                    0..=6 => {
                        let len = self.gen_len();
                        let size = 128 * 1024;
                        Op::FdWrite {
                            slot,
                            offset: self.gen_offset(size, len),
                            len,
                            pat: self.gen_pattern(),
                        }
                    }
                    7..=8 => Op::FdRead {
                        slot,
                        offset: self.rng.random_range(0..400 * 1024),
                        len: self.gen_len(),
                    },
                    9..=10 => Op::FdTruncate {
                        slot,
                        size: self.gen_size(128 * 1024),
                    },
                    11 => Op::FdFsync { slot },
                    16..=17 => {
                        let (mode, offset, len) = self.gen_falloc(128 * 1024);
                        Op::FdFallocate {
                            slot,
                            mode,
                            offset,
                            len,
                        }
                    }
                    12..=13 => Op::FdStat { slot },
                    _ => Op::FdClose { slot },
                }
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::OpenKeep {
                path,
                append,
                trunc,
            } => {
                let a = self.llmfs.open_keep(path, *append, *trunc);
                let b = self.native.open_keep(path, *append, *trunc);
                match (a, b) {
                    (Ok(fa), Ok(fb)) => {
                        self.record(op, true);
                        self.held.push(Held {
                            llmfs: fa as i32,
                            native: fb as i32,
                            opened_as: path.clone(),
                        })
                    }
                    (a, b) => {
                        for fd in [&a, &b].into_iter().flatten() {
                            let _ = close_fd(*fd as i32);
                        }
                        self.check_results(op, &a, &b);
                    }
                }
            }
            Op::FdWrite {
                slot,
                offset,
                len,
                pat,
            } => {
                let h = &self.held[*slot];
                let data = pat.bytes(*len);
                // With O_APPEND, pwrite appends on Linux: both sides alike.
                let a = write_all_at(h.llmfs, &data, Some(*offset));
                let b = write_all_at(h.native, &data, Some(*offset));
                self.check_results(op, &a, &b);
            }
            Op::FdRead { slot, offset, len } => {
                let h = &self.held[*slot];
                let a = pread_all(h.llmfs, *offset, *len);
                let b = pread_all(h.native, *offset, *len);
                self.record(op, b.is_ok());
                if a != b {
                    let detail = match (&a, &b) {
                        (Ok(x), Ok(y)) => format!("pread data differs: {}", first_diff(x, y)),
                        _ => format!(
                            "pread results differ: llmfs {:?} / native {:?}",
                            a.as_ref().map(Vec::len),
                            b.as_ref().map(Vec::len)
                        ),
                    };
                    self.fail(op, &detail);
                }
            }
            Op::FdTruncate { slot, size } => {
                let h = &self.held[*slot];
                // SAFETY: descriptors we own.
                let a = check(unsafe { libc::ftruncate(h.llmfs, *size as libc::off_t) } as i64);
                // SAFETY: as above.
                let b = check(unsafe { libc::ftruncate(h.native, *size as libc::off_t) } as i64);
                self.check_results(op, &a, &b);
            }
            Op::FdFsync { slot } => {
                let h = &self.held[*slot];
                // SAFETY: descriptors we own.
                let a = check(unsafe { libc::fsync(h.llmfs) } as i64);
                // SAFETY: as above.
                let b = check(unsafe { libc::fsync(h.native) } as i64);
                self.check_results(op, &a, &b);
            }
            Op::FdFallocate {
                slot,
                mode,
                offset,
                len,
            } => {
                let h = &self.held[*slot];
                let a = fallocate(h.llmfs, *mode, *offset, *len);
                let b = fallocate(h.native, *mode, *offset, *len);
                self.check_results(op, &a, &b);
            }
            Op::FdStat { slot } => {
                let h = &self.held[*slot];
                let a = fstat_fd(h.llmfs);
                let b = fstat_fd(h.native);
                self.record(op, b.is_ok());
                if a != b {
                    self.fail(op, &format!("fstat differs: llmfs {a:?} / native {b:?}"));
                }
            }
            Op::FdClose { slot } => {
                let h = self.held.remove(*slot);
                let a = close_fd(h.llmfs);
                let b = close_fd(h.native);
                self.check_results(op, &a, &b);
            }
            _ => {
                let a = self.llmfs.apply(op);
                let b = self.native.apply(op);
                self.check_results(op, &a, &b);
            }
        }
    }

    fn close_all(&mut self) {
        while !self.held.is_empty() {
            let op = Op::FdClose { slot: 0 };
            self.history
                .push_back(format!("{op:?} (before remount/unmount)"));
            self.apply(&op);
        }
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Create { .. } => "create",
        Op::Write { .. } => "write",
        Op::Truncate { .. } => "truncate",
        Op::Fallocate { .. } => "fallocate",
        Op::FdFallocate { .. } => "fd_fallocate",
        Op::Rename { .. } => "rename",
        Op::Link { .. } => "link",
        Op::Unlink { .. } => "unlink",
        Op::Mkdir { .. } => "mkdir",
        Op::Mkfifo { .. } => "mkfifo",
        Op::Rmdir { .. } => "rmdir",
        Op::Symlink { .. } => "symlink",
        Op::SetXattr { .. } => "setxattr",
        Op::RemoveXattr { .. } => "removexattr",
        Op::Chmod { .. } => "chmod",
        Op::OpenKeep { .. } => "open_keep",
        Op::FdWrite { .. } => "fd_write",
        Op::FdRead { .. } => "fd_read",
        Op::FdTruncate { .. } => "fd_truncate",
        Op::FdFsync { .. } => "fd_fsync",
        Op::FdStat { .. } => "fd_stat",
        Op::FdClose { .. } => "fd_close",
    }
}

fn show_r(r: &R) -> String {
    match r {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({e} {})", std::io::Error::from_raw_os_error(*e)),
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn run_seed(seed: u64, steps: usize) {
    let m = Mounted::new(&[]);
    let native_dir = tempfile::tempdir().expect("tempdir");
    let native_root = native_dir.path().join("native");
    std::fs::create_dir(&native_root).unwrap();
    // The llmfs root is 0755; tempfile's directories are 0700.
    std::fs::set_permissions(
        &native_root,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut r = Runner {
        seed,
        step: 0,
        llmfs: Side {
            root: m.mnt.clone(),
        },
        native: Side { root: native_root },
        m,
        _native_dir: native_dir,
        rng: StdRng::seed_from_u64(seed ^ 0x6c6c_6d66_7364_6966),
        held: Vec::new(),
        history: VecDeque::new(),
        stats: BTreeMap::new(),
        tree: Tree::new(),
    };
    r.compare(&"initial state");
    for step in 1..=steps {
        r.step = step;
        let op = r.gen_op();
        r.history.push_back(format!("step {step}: {op:?}"));
        if r.history.len() > HISTORY {
            r.history.pop_front();
        }
        r.apply(&op);
        r.compare(&op);
        if step % REMOUNT_EVERY == 0 {
            r.close_all();
            r.m.remount();
            r.history.push_back(format!("step {step}: remount"));
            r.compare(&"remount");
        }
    }
    r.close_all();
    r.compare(&"after closing every descriptor");
    let files = r.tree.values().filter(|n| n.kind == Kind::File).count();
    let bytes: u64 = r.tree.values().filter_map(|n| n.size).sum();
    eprintln!(
        "seed {seed}: {} entries ({files} files, {bytes} bytes) at the end; \
         op results (ok, error): {:?}",
        r.tree.len(),
        r.stats
    );
    r.m.unmount();
    let (ok, report) = r.m.fsck();
    assert!(
        ok,
        "seed {seed}: fsck after {steps} steps failed:\n{report}"
    );
}

// ---------------------------------------------------------------------------
// Minimized reproducers of bugs the random test found

/// Bug: an inode whose last name is removed is deleted at once unless the
/// core has a FUSE open handle for it, though the kernel still references it.
/// The kernel sends no OPEN for FIFOs (nor devices, sockets, `O_PATH`), so an
/// open FIFO is deleted under its descriptor and `fstat` fails with ENOENT;
/// POSIX (and every local filesystem) keeps it, with `st_nlink` 0.
#[test]
fn fstat_of_unlinked_open_fifo() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("fifo");
    let c = cpath(&p);
    // SAFETY: valid C string; the descriptor is ours.
    unsafe {
        assert_eq!(libc::mkfifo(c.as_ptr(), 0o644), 0, "mkfifo");
        let fd = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK);
        assert!(fd >= 0, "open: errno {}", errno());
        assert_eq!(libc::unlink(c.as_ptr()), 0, "unlink");
        let st = fstat_fd(fd);
        libc::close(fd);
        let st = st.unwrap_or_else(|e| panic!("fstat of an open, unlinked FIFO: errno {e}"));
        assert_eq!(st.mode & libc::S_IFMT, libc::S_IFIFO);
        assert_eq!(st.nlink, 0);
    }
}

/// Same bug for directories: `rmdir` deletes the inode at once, so a
/// descriptor (or a process's cwd) on the removed directory gets ENOENT from
/// `fstat`/`fchmod`/`stat(".")` instead of a directory with `st_nlink` 0.
#[test]
fn fstat_of_removed_open_directory() {
    require_fuse!();
    let m = Mounted::new(&[]);
    let p = m.path("dir");
    let c = cpath(&p);
    // SAFETY: valid C string; the descriptor is ours.
    unsafe {
        assert_eq!(libc::mkdir(c.as_ptr(), 0o755), 0, "mkdir");
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0, "open: errno {}", errno());
        assert_eq!(libc::rmdir(c.as_ptr()), 0, "rmdir");
        let st = fstat_fd(fd);
        libc::close(fd);
        let st = st.unwrap_or_else(|e| panic!("fstat of an open, removed directory: errno {e}"));
        assert_eq!(st.mode & libc::S_IFMT, libc::S_IFDIR);
        assert_eq!(st.nlink, 0);
    }
}
