//! Extended attributes: stored per inode in the store, any namespace but
//! `system.` (POSIX ACLs are not supported, and say so with EOPNOTSUPP).
//!
//! A write removes the file's [`CAPABILITY`], as Linux's own filesystems
//! do: whoever may change a privileged program does not keep its
//! privilege. The kernel does it before a write through its page cache;
//! with FUSE_HANDLE_KILLPRIV_V2 (fuse/mod.rs) it leaves writes past the
//! page cache (a write-only create's handle, page_cache.rs) to the
//! filesystem, which removes it before the first such write
//! (`Fs::drop_capability`).
//!
//! Before each `chown` the kernel asks for the file's
//! [`CAPABILITY`] attribute, which the change must remove (Linux's
//! `notify_change` with ATTR_KILL_PRIV; FUSE filesystems never get the
//! `SB_NOSEC` shortcut): `tar x` as root and `cp -a` ask once per file,
//! while it is open. An open file remembers that it has none
//! (`OpenInode::no_capability`: since its create, or since the store said
//! so), until an attribute of it is set or removed, so that those asks do
//! not each wait for the store's writer. Close-to-open bounds what
//! another mount's change can leave unseen, as for the file's data: the
//! next open starts without the knowledge, and an open that sees the
//! ctime another mount set drops it (data.rs, `revalidate`).

use super::{Fs, State, NAME_MAX};
use crate::error::{Error, Result};
use crate::store::Durability;
use crate::time::now_ns;

/// Largest attribute value, as Linux's XATTR_SIZE_MAX.
pub const XATTR_SIZE_MAX: usize = 65536;

/// The file capability attribute (capabilities(7)).
const CAPABILITY: &[u8] = b"security.capability";

const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("empty attribute name"));
    }
    if name.len() > NAME_MAX {
        return Err(Error::BufferTooSmall);
    }
    let known = [&b"user."[..], b"trusted.", b"security."];
    if !known
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len())
    {
        return Err(Error::Unsupported("attribute namespace"));
    }
    Ok(())
}

impl Fs {
    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> Result<()> {
        self.check_writable()?;
        check_xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Error::AttributeTooLarge);
        }
        let now = now_ns();
        // Every check comes before the first change.
        let result = self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            let exists = m.xattr(ino, name)?.is_some();
            if flags & XATTR_CREATE != 0 && exists {
                return Err(Error::Exists);
            }
            if flags & XATTR_REPLACE != 0 && !exists {
                return Err(Error::NoAttribute);
            }
            m.set_xattr(ino, name, value)?;
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(())
        });
        self.xattrs_changed(ino);
        result
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        check_xattr_name(name)?;
        // For the capability of an open file: what it is known to have,
        // else how many changes there were before the store was read.
        let changes_before = if name == CAPABILITY {
            let st = self.state();
            match st.open.get(&ino) {
                Some(oi) if oi.no_capability => return Err(Error::NoAttribute),
                Some(_) => Some(st.xattr_changes),
                None => None,
            }
        } else {
            None
        };
        let result = self.store.read(|m| {
            m.inode(ino)?.ok_or(Error::NotFound)?;
            m.xattr(ino, name)?.ok_or(Error::NoAttribute)
        });
        if let (Some(before), Err(Error::NoAttribute)) = (changes_before, &result) {
            // Recorded only if no attribute changed meanwhile: the store
            // may have been read before such a change reached it.
            let mut st = self.state();
            if st.xattr_changes == before {
                if let Some(oi) = st.open.get_mut(&ino) {
                    oi.no_capability = true;
                }
            }
        }
        result
    }

    /// Removes the capability of open `ino`, if it has one, before a write
    /// the kernel left that to us. It then knows the file has none, so
    /// that its other writes cost nothing more (and a file it created
    /// never asks the store).
    pub(super) fn drop_capability(&self, st: &mut State, ino: u64) -> Result<()> {
        if st.open.get(&ino).is_none_or(|oi| oi.no_capability) {
            return Ok(());
        }
        let now = now_ns();
        let removed = self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !m.remove_xattr(ino, CAPABILITY)? {
                return Ok(false);
            }
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(true)
        })?;
        if removed {
            st.xattr_changes += 1;
        }
        if let Some(oi) = st.open.get_mut(&ino) {
            oi.no_capability = true;
        }
        Ok(())
    }

    /// After an attribute of `ino` was set or removed (or failed to be):
    /// what a `getxattr` recorded of it may be stale, and one under way
    /// must not record what it read. Runs after the store's change, so
    /// that no read of the store before it records anything after it.
    fn xattrs_changed(&self, ino: u64) {
        let mut st = self.state();
        st.xattr_changes += 1;
        if let Some(oi) = st.open.get_mut(&ino) {
            oi.no_capability = false;
        }
    }

    /// Attribute names, each followed by a NUL, as `listxattr(2)` returns them.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        self.store.read(|m| {
            m.inode(ino)?.ok_or(Error::NotFound)?;
            let mut out = Vec::new();
            for name in m.xattr_names(ino)? {
                out.extend_from_slice(&name);
                out.push(0);
            }
            Ok(out)
        })
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        check_xattr_name(name)?;
        let now = now_ns();
        // A removal that finds nothing changes nothing: the error leaves
        // nothing to take back.
        let result = self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !m.remove_xattr(ino, name)? {
                return Err(Error::NoAttribute);
            }
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(())
        });
        self.xattrs_changed(ino);
        result
    }
}
