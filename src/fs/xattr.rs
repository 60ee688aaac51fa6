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
//! The file remembers that it has no capability
//! (`OpenInode::no_capability`) from its create, or from that removal,
//! until an attribute of it is set or removed, so that a file the core
//! created never asks the store. Close-to-open bounds what another
//! mount's change can leave unseen, as for the file's data: the next open
//! starts without the knowledge, and an open that sees the ctime another
//! mount set drops it (data.rs, `revalidate`). The kernel's own ask before
//! each `chown` goes to the store: answering it from that knowledge
//! changed no `tar x` time (docs/MEASUREMENTS.md, "The capability ask
//! before `fchown`").

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
        self.store.read(|m| {
            m.inode(ino)?.ok_or(Error::NotFound)?;
            m.xattr(ino, name)?.ok_or(Error::NoAttribute)
        })
    }

    /// Removes the capability of open `ino`, if it has one, before a write
    /// the kernel left that to us. It then knows the file has none, so
    /// that its other writes cost nothing more (and a file it created
    /// never asks the store).
    pub(super) fn drop_capability(&self, st: &mut State, ino: u64) -> Result<()> {
        if st.open.get(&ino).is_none_or(|oi| oi.no_capability) {
            return Ok(());
        }
        self.remove_attribute(ino, CAPABILITY)?;
        if let Some(oi) = st.open.get_mut(&ino) {
            oi.no_capability = true;
        }
        Ok(())
    }

    /// Removes attribute `name` of `ino` with the ctime that changes, in
    /// one transaction; whether it had one. A removal that finds nothing
    /// changes nothing.
    fn remove_attribute(&self, ino: u64, name: &[u8]) -> Result<bool> {
        let now = now_ns();
        self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !m.remove_xattr(ino, name)? {
                return Ok(false);
            }
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(true)
        })
    }

    /// After an attribute of `ino` was set or removed (or failed to be):
    /// whether it has a capability is no longer known. Runs after the
    /// store's change, so that a `drop_capability` before it cannot leave
    /// the knowledge standing after it.
    fn xattrs_changed(&self, ino: u64) {
        if let Some(oi) = self.state().open.get_mut(&ino) {
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
        let removed = self.remove_attribute(ino, name);
        self.xattrs_changed(ino);
        if removed? {
            Ok(())
        } else {
            Err(Error::NoAttribute)
        }
    }
}
