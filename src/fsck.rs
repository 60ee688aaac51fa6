//! Offline consistency check of a store: metadata invariants, and every
//! block decoded and verified against its checksum.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use crate::codec::{payload_portable, CodecId, CodecSet};
use crate::error::Error;
use crate::fs::{is_dir, is_reg, NAME_MAX};
use crate::store::{Store, ROOT_INO};

/// What fsck found.
#[derive(Debug, Default)]
pub struct Report {
    pub inodes: u64,
    pub entries: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    /// Problems that mean data or metadata is wrong.
    pub errors: Vec<String>,
    /// Harmless leftovers (e.g. unlinked inodes awaiting reclaim).
    pub warnings: Vec<String>,
    /// llm blocks of a float model (payload versions 1 and 2): readable
    /// only on the engine class that wrote them.
    pub llm_not_portable: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        write!(
            f,
            "fsck: {} inodes, {} entries, {} blocks ({} stored bytes) checked: {} errors, {} warnings",
            self.inodes,
            self.entries,
            self.blocks,
            self.block_bytes,
            self.errors.len(),
            self.warnings.len()
        )
    }
}

/// Checks `store`. `progress` is called after each block is verified.
/// Checks `store`; `codecs` decode its blocks (with the volume's model
/// where it has llm blocks). `progress` gets (blocks done, blocks).
pub fn check(
    store: &Store,
    codecs: &CodecSet,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, Error> {
    let mut r = Report::default();
    for problem in store.integrity_check()? {
        r.errors.push(format!("sqlite integrity: {problem}"));
    }
    let (segment_errors, segment_warnings) = store.segment_check()?;
    r.errors.extend(segment_errors);
    r.warnings.extend(segment_warnings);
    let (bad_rows, inodes, dirents, blocks, xattr_owners) = store.read(|m| {
        Ok::<_, Error>((
            m.out_of_range_rows()?,
            m.all_inodes()?,
            m.all_dirents()?,
            m.block_infos(None)?,
            m.xattr_owners()?,
        ))
    })?;
    r.errors.extend(bad_rows);
    r.inodes = inodes.len() as u64;
    r.entries = dirents.len() as u64;
    let by_ino: HashMap<u64, &crate::store::InodeRow> = inodes.iter().map(|i| (i.ino, i)).collect();

    match by_ino.get(&ROOT_INO) {
        Some(root) if is_dir(root.mode) => {}
        Some(_) => r.errors.push("root inode 1 is not a directory".into()),
        None => r.errors.push("root inode 1 is missing".into()),
    }

    // Entries: both ends exist, names are valid; count links.
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut subdirs: HashMap<u64, u32> = HashMap::new();
    let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
    for (parent, name, ino) in &dirents {
        let shown = String::from_utf8_lossy(name);
        match by_ino.get(parent) {
            Some(p) if is_dir(p.mode) => {}
            Some(_) => r.errors.push(format!(
                "entry '{shown}' in inode {parent}, which is not a directory"
            )),
            None => r
                .errors
                .push(format!("entry '{shown}' in missing directory {parent}")),
        }
        if name.is_empty()
            || name.len() > NAME_MAX
            || name.contains(&b'/')
            || name.contains(&0)
            || name == b"."
            || name == b".."
        {
            r.errors
                .push(format!("invalid name '{shown}' in directory {parent}"));
        }
        match by_ino.get(ino) {
            Some(child) => {
                *links.entry(*ino).or_default() += 1;
                if is_dir(child.mode) {
                    *subdirs.entry(*parent).or_default() += 1;
                    children.entry(*parent).or_default().push(*ino);
                }
            }
            None => r.errors.push(format!(
                "entry '{shown}' in {parent} names missing inode {ino}"
            )),
        }
    }

    // Link counts and orphans.
    for i in &inodes {
        let n = links.get(&i.ino).copied().unwrap_or(0);
        if i.ino == ROOT_INO {
            if n != 0 {
                r.errors
                    .push("the root directory has an entry pointing at it".into());
            }
        } else if n == 0 {
            if i.nlink == 0 {
                r.warnings.push(format!(
                    "inode {} is unlinked (open when the volume stopped); it is reclaimed at the next mount",
                    i.ino
                ));
            } else {
                r.errors.push(format!(
                    "inode {} (nlink {}) has no directory entry",
                    i.ino, i.nlink
                ));
            }
            continue;
        }
        if is_dir(i.mode) {
            if i.ino != ROOT_INO && n != 1 {
                r.errors.push(format!(
                    "directory {} has {n} entries pointing at it",
                    i.ino
                ));
            }
            let want = 2 + subdirs.get(&i.ino).copied().unwrap_or(0);
            if i.nlink != want {
                r.errors.push(format!(
                    "directory {} has nlink {}, expected {want}",
                    i.ino, i.nlink
                ));
            }
        } else if i.nlink != n {
            r.errors.push(format!(
                "inode {} has nlink {}, but {n} entries",
                i.ino, i.nlink
            ));
        }
        if i.mode & libc::S_IFMT == libc::S_IFLNK && i.target.is_none() {
            r.errors.push(format!("symlink {} has no target", i.ino));
        }
    }

    // Every directory reachable from the root (no loops, no islands).
    let mut seen = HashSet::from([ROOT_INO]);
    let mut queue = VecDeque::from([ROOT_INO]);
    while let Some(d) = queue.pop_front() {
        for &c in children.get(&d).map(|v| v.as_slice()).unwrap_or(&[]) {
            if seen.insert(c) {
                queue.push_back(c);
            }
        }
    }
    for i in &inodes {
        if is_dir(i.mode) && !seen.contains(&i.ino) && links.contains_key(&i.ino) {
            r.errors.push(format!(
                "directory {} is not reachable from the root",
                i.ino
            ));
        }
    }

    for owner in xattr_owners {
        if !by_ino.contains_key(&owner) {
            r.errors
                .push(format!("extended attributes of missing inode {owner}"));
        }
    }

    // Blocks: owners, bounds, accounting, and content.
    let bs = store.block_size() as u64;
    let mut stored: HashMap<u64, u64> = HashMap::new();
    let total = blocks.len() as u64;
    for (n, b) in blocks.iter().enumerate() {
        r.blocks += 1;
        r.block_bytes += b.stored_len;
        *stored.entry(b.ino).or_default() += b.stored_len;
        let Some(owner) = by_ino.get(&b.ino) else {
            r.errors
                .push(format!("block {} of missing inode {}", b.idx, b.ino));
            continue;
        };
        if !is_reg(owner.mode) {
            r.errors.push(format!(
                "block {} belongs to non-file inode {}",
                b.idx, b.ino
            ));
        }
        let start = b.idx.saturating_mul(bs);
        if start >= owner.size || b.raw_len > (owner.size - start).min(bs) {
            r.errors.push(format!(
                "inode {} block {} ({} bytes) lies past the file size {}",
                b.ino, b.idx, b.raw_len, owner.size
            ));
        }
        if CodecId::from_u8(b.codec).is_none() {
            r.errors.push(format!(
                "inode {} block {} has unknown codec {}",
                b.ino, b.idx, b.codec
            ));
        }
        let record = match store.read(|m| m.block(b.ino, b.idx)) {
            Ok(record) => record,
            // A record that cannot be read (a damaged segment file) is
            // this block's error; the rest is still checked. A database
            // that fails is not.
            Err(e @ crate::store::StoreError::Io { .. }) => {
                r.errors
                    .push(format!("inode {} block {}: {e}", b.ino, b.idx));
                progress(n as u64 + 1, total);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(rec) = &record {
            let payload = rec.get(crate::codec::RECORD_HEADER_LEN..).unwrap_or(&[]);
            if b.codec == CodecId::Llm as u8 && payload_portable(payload) == Some(false) {
                r.llm_not_portable += 1;
            }
        }
        match record {
            Some(rec) => match codecs.decode_block(&rec, bs as usize) {
                Ok(data) if data.len() as u64 != b.raw_len => r.errors.push(format!(
                    "inode {} block {} decodes to {} bytes, metadata says {}",
                    b.ino,
                    b.idx,
                    data.len(),
                    b.raw_len
                )),
                Ok(_) => {}
                Err(e) => r
                    .errors
                    .push(format!("inode {} block {}: {e}", b.ino, b.idx)),
            },
            None => r
                .errors
                .push(format!("inode {} block {} vanished", b.ino, b.idx)),
        }
        progress(n as u64 + 1, total);
    }
    if r.llm_not_portable > 0 {
        r.warnings.push(format!(
            "{} llm blocks are not portable: coded with a float model, they decode only on the \
             CPU class (and runtime) that wrote them; `llmfs archive --portable` re-encodes them",
            r.llm_not_portable
        ));
    }
    for i in &inodes {
        let s = stored.get(&i.ino).copied().unwrap_or(0);
        if s != i.stored_bytes {
            r.errors.push(format!(
                "inode {} records {} stored bytes, its blocks hold {s}",
                i.ino, i.stored_bytes
            ));
        }
    }
    Ok(r)
}
