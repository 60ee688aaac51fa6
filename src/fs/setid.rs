//! Clearing set-user-ID and set-group-ID when a file changes: Linux clears
//! them on a write, a truncation or an open with `O_TRUNC` by a caller
//! without CAP_FSETID, and on any change of owner, so that whoever could
//! change a privileged program does not keep its privilege. With
//! FUSE_HANDLE_KILLPRIV_V2 (fuse/mod.rs) the kernel leaves this to the
//! filesystem, which spares a round trip per write (the kernel's own check
//! asked for the file's `security.capability` before each one) and one per
//! `chown` (it read the mode back first).

use super::{is_dir, Fs};
use crate::error::Result;
use crate::store::{Durability, InodeRow};
use crate::time::now_ns;

/// The bits of `mode` such a change clears: set-user-ID, and set-group-ID
/// where group execute is set (without it, set-group-ID marks mandatory
/// locking and stays). Directories keep theirs (set-group-ID there says
/// who owns new entries).
pub(super) fn setid_bits(mode: u32) -> u32 {
    if is_dir(mode) {
        return 0;
    }
    let mut bits = mode & libc::S_ISUID;
    if mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID | libc::S_IXGRP {
        bits |= libc::S_ISGID;
    }
    bits
}

impl Fs {
    /// Clears [`setid_bits`] of `ino`, as the kernel asks before a write
    /// or after an open with `O_TRUNC` by a caller without CAP_FSETID.
    /// Returns whether the mode changed: the kernel's cached attributes
    /// are then stale. An open file remembers that it has no such bits
    /// until its mode is next set, so that an unprivileged writer's
    /// writes do not each read the inode's row.
    pub fn kill_suidgid(&self, ino: u64) -> Result<bool> {
        let mut st = self.state();
        if st.open.get(&ino).is_some_and(|oi| oi.setid_clear) {
            return Ok(false);
        }
        let killed = setid_bits(self.row(ino)?.mode) != 0;
        if killed {
            self.check_writable()?;
            let now = now_ns();
            let edit = |row: &mut InodeRow| -> bool {
                let bits = setid_bits(row.mode);
                row.mode &= !bits;
                if bits != 0 {
                    row.ctime_ns = now;
                }
                bits != 0
            };
            self.persist_with(&mut st, ino, Durability::Normal, Some(&edit))?;
        }
        if let Some(oi) = st.open.get_mut(&ino) {
            oi.setid_clear = true;
        }
        Ok(killed)
    }
}

#[cfg(test)]
mod tests {
    use super::setid_bits;

    #[test]
    fn clears_setuid_and_executable_setgid_of_files_only() {
        let reg = libc::S_IFREG;
        assert_eq!(setid_bits(reg | 0o4755), libc::S_ISUID);
        assert_eq!(setid_bits(reg | 0o2755), libc::S_ISGID);
        assert_eq!(setid_bits(reg | 0o6755), libc::S_ISUID | libc::S_ISGID);
        // Set-group-ID without group execute: mandatory locking, kept.
        assert_eq!(setid_bits(reg | 0o6745), libc::S_ISUID);
        assert_eq!(setid_bits(reg | 0o2644), 0);
        assert_eq!(setid_bits(reg | 0o1777), 0);
        assert_eq!(setid_bits(libc::S_IFDIR | 0o6755), 0);
    }
}
