//! Extended attributes: stored per inode in the store, any namespace but
//! `system.` (POSIX ACLs are not supported, and say so with EOPNOTSUPP).

use super::{Fs, NAME_MAX};
use crate::error::{Error, Result};
use crate::store::Durability;
use crate::time::now_ns;

/// Largest attribute value, as Linux's XATTR_SIZE_MAX.
pub const XATTR_SIZE_MAX: usize = 65536;

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
        self.transact_checked(Durability::Normal, |m| {
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
        })
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        check_xattr_name(name)?;
        self.store.read(|m| {
            m.inode(ino)?.ok_or(Error::NotFound)?;
            m.xattr(ino, name)?.ok_or(Error::NoAttribute)
        })
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
        self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !m.remove_xattr(ino, name)? {
                return Err(Error::NoAttribute);
            }
            row.ctime_ns = now;
            m.update_inode(&row)?;
            Ok(())
        })
    }
}
