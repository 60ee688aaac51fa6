//! Names: lookup, creation, removal, rename, links, symlinks, listing.

use super::{check_name, is_dir, Attr, Ctx, DirEntry, Fs, LINK_MAX, SYMLINK_MAX};
use crate::error::{Error, Result};
use crate::store::{Durability, InodeRow, NewInode, Reads, WriteTx, ROOT_INO};
use crate::time::now_ns;

/// `renameat2` flags, as Linux numbers them.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// Loads a directory inode, failing with ENOTDIR / ENOENT as POSIX wants.
fn dir_row(m: &(impl Reads + ?Sized), ino: u64) -> Result<InodeRow> {
    let row = m.inode(ino)?.ok_or(Error::NotFound)?;
    if !is_dir(row.mode) {
        return Err(Error::NotDir);
    }
    if row.nlink == 0 {
        // A removed directory that a process still has as its cwd.
        return Err(Error::NotFound);
    }
    Ok(row)
}

fn touch_dir(m: &WriteTx<'_>, mut dir: InodeRow, nlink_delta: i32, now: i64) -> Result<()> {
    dir.nlink = dir.nlink.saturating_add_signed(nlink_delta);
    dir.mtime_ns = now;
    dir.ctime_ns = now;
    m.update_inode(&dir)?;
    Ok(())
}

/// An inode whose last link went: deleted in that transaction, or left
/// unlinked (link count 0) for the reaper to delete.
enum Dropped {
    Deleted(u64),
    ToReap(u64),
}

impl Fs {
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        if name.len() > super::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let st = self.state();
        let row = self.store.read(|m| {
            dir_row(m, parent)?;
            let ino = m.lookup(parent, name)?.ok_or(Error::NotFound)?;
            m.inode(ino)?
                .ok_or_else(|| Error::Inconsistent(format!("entry names missing inode {ino}")))
        })?;
        Ok(self.attr_of(&st, &row))
    }

    /// Creates an inode of any type under `parent`. `mode` holds the type
    /// bits; the caller's umask is applied to the permission bits.
    fn create_node(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        target: Option<Vec<u8>>,
    ) -> Result<InodeRow> {
        self.check_writable()?;
        check_name(name)?;
        let now = now_ns();
        // Every check comes before the first change.
        self.transact_checked(Durability::Normal, |m| {
            let dir = dir_row(m, parent)?;
            if m.lookup(parent, name)?.is_some() {
                return Err(Error::Exists);
            }
            let kind = mode & libc::S_IFMT;
            let mut perm = mode & 0o7777;
            if kind != libc::S_IFLNK {
                perm &= !ctx.umask;
            }
            // BSD group semantics under a set-group-ID directory.
            let mut gid = ctx.gid;
            if dir.mode & libc::S_ISGID != 0 {
                gid = dir.gid;
                if kind == libc::S_IFDIR {
                    perm |= libc::S_ISGID;
                }
            }
            let is_new_dir = kind == libc::S_IFDIR;
            let row = m.insert_inode(&NewInode {
                mode: kind | perm,
                uid: ctx.uid,
                gid,
                nlink: if is_new_dir { 2 } else { 1 },
                rdev,
                time_ns: now,
                target: target.clone(),
            })?;
            m.insert_dirent(parent, name, row.ino)?;
            touch_dir(m, dir, if is_new_dir { 1 } else { 0 }, now)?;
            Ok(row)
        })
    }

    pub fn mkdir(&self, ctx: &Ctx, parent: u64, name: &[u8], mode: u32) -> Result<Attr> {
        let row = self.create_node(ctx, parent, name, libc::S_IFDIR | (mode & 0o7777), 0, None)?;
        Ok(Attr::from_row(&row, self.block_size() as u32))
    }

    /// Creates a regular file, FIFO, socket or device node.
    pub fn mknod(&self, ctx: &Ctx, parent: u64, name: &[u8], mode: u32, rdev: u32) -> Result<Attr> {
        let kind = mode & libc::S_IFMT;
        let kind = if kind == 0 { libc::S_IFREG } else { kind };
        match kind {
            libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {}
            libc::S_IFDIR => return Err(Error::InvalidArgument("mknod cannot make directories")),
            _ => return Err(Error::InvalidArgument("unknown file type")),
        }
        let rdev = if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
            rdev
        } else {
            0
        };
        let row = self.create_node(ctx, parent, name, kind | (mode & 0o7777), rdev, None)?;
        Ok(Attr::from_row(&row, self.block_size() as u32))
    }

    /// Creates a regular file and opens it (FUSE `create`): the new inode
    /// is opened from the row just written, without reading it back.
    pub fn create(&self, ctx: &Ctx, parent: u64, name: &[u8], mode: u32) -> Result<(Attr, u64)> {
        self.create_open(ctx, parent, name, mode, libc::O_RDWR)
    }

    /// As [`Fs::create`], with the flags of the `open(2)` that creates the
    /// file (`O_APPEND` marks a log writer, as in [`Fs::open`]).
    pub fn create_open(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &[u8],
        mode: u32,
        flags: i32,
    ) -> Result<(Attr, u64)> {
        let row = self.create_node(ctx, parent, name, libc::S_IFREG | (mode & 0o7777), 0, None)?;
        let fh = self.open_new(row.ino, flags);
        Ok((Attr::from_row(&row, self.block_size() as u32), fh))
    }

    pub fn symlink(&self, ctx: &Ctx, parent: u64, name: &[u8], target: &[u8]) -> Result<Attr> {
        if target.len() > SYMLINK_MAX {
            return Err(Error::NameTooLong);
        }
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        let row = self.create_node(
            ctx,
            parent,
            name,
            libc::S_IFLNK | 0o777,
            0,
            Some(target.to_vec()),
        )?;
        Ok(Attr::from_row(&row, self.block_size() as u32))
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let row = self.row(ino)?;
        if row.mode & libc::S_IFMT != libc::S_IFLNK {
            return Err(Error::InvalidArgument("not a symbolic link"));
        }
        row.target
            .ok_or_else(|| Error::Inconsistent(format!("symlink {ino} has no target")))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Attr> {
        self.check_writable()?;
        check_name(newname)?;
        let now = now_ns();
        let st = self.state();
        // Every check comes before the first change.
        let row = self.transact_checked(Durability::Normal, |m| {
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if is_dir(row.mode) {
                return Err(Error::NotPermitted);
            }
            if row.nlink == 0 {
                return Err(Error::NotFound);
            }
            if row.nlink >= LINK_MAX {
                return Err(Error::TooManyLinks);
            }
            let dir = dir_row(m, newparent)?;
            if m.lookup(newparent, newname)?.is_some() {
                return Err(Error::Exists);
            }
            m.insert_dirent(newparent, newname, ino)?;
            row.nlink += 1;
            row.ctime_ns = now;
            m.update_inode(&row)?;
            touch_dir(m, dir, 0, now)?;
            Ok(row)
        })?;
        Ok(self.attr_of(&st, &row))
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        if name.len() > super::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let now = now_ns();
        let mut st = self.state();
        // Every check comes before the first change.
        let dropped = self.transact_checked(Durability::Normal, |m| {
            let dir = dir_row(m, parent)?;
            let ino = m.lookup(parent, name)?.ok_or(Error::NotFound)?;
            let row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if is_dir(row.mode) {
                return Err(Error::IsDir);
            }
            m.remove_dirent(parent, name)?;
            touch_dir(m, dir, 0, now)?;
            self.drop_link(m, &st, row, now)
        })?;
        if let Some(d) = dropped {
            self.let_go(&mut st, d);
        }
        Ok(())
    }

    /// After the transaction that dropped an inode's last link: forgets
    /// what this mount held of it, and hands a large one to the reaper.
    fn let_go(&self, st: &mut super::State, dropped: Dropped) {
        match dropped {
            Dropped::Deleted(ino) => self.discard(st, ino),
            Dropped::ToReap(ino) => {
                self.discard(st, ino);
                self.reap(ino);
            }
        }
    }

    /// Removes one link to a non-directory inode; when that was the last
    /// link and no handle has it open, deletes it, or leaves a large one
    /// unlinked for the reaper (reaper.rs). Says which.
    fn drop_link(
        &self,
        m: &WriteTx<'_>,
        st: &super::State,
        mut row: InodeRow,
        now: i64,
    ) -> Result<Option<Dropped>> {
        row.nlink = row.nlink.saturating_sub(1);
        row.ctime_ns = now;
        if row.nlink == 0 && !st.in_use(row.ino) {
            if self.reaps(&row) {
                m.update_inode(&row)?;
                m.hold_unlinked(row.ino)?;
                return Ok(Some(Dropped::ToReap(row.ino)));
            }
            m.delete_inode(row.ino)?;
            return Ok(Some(Dropped::Deleted(row.ino)));
        }
        m.update_inode(&row)?;
        if row.nlink == 0 {
            m.hold_unlinked(row.ino)?;
        }
        Ok(None)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        if name.len() > super::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        if name == b"." {
            return Err(Error::InvalidArgument("cannot remove '.'"));
        }
        if name == b".." {
            return Err(Error::NotEmpty);
        }
        let now = now_ns();
        let st = self.state();
        // Every check comes before the first change.
        self.transact_checked(Durability::Normal, |m| {
            let dir = dir_row(m, parent)?;
            let ino = m.lookup(parent, name)?.ok_or(Error::NotFound)?;
            let mut row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !is_dir(row.mode) {
                return Err(Error::NotDir);
            }
            if !m.dir_is_empty(ino)? {
                return Err(Error::NotEmpty);
            }
            m.remove_dirent(parent, name)?;
            self.drop_dir(m, &st, &mut row, now)?;
            touch_dir(m, dir, -1, now)
        })
    }

    /// Unlinks an empty directory's inode: deleted now, or kept with nlink 0
    /// until the kernel forgets it (a process may have it as its cwd).
    fn drop_dir(
        &self,
        m: &WriteTx<'_>,
        st: &super::State,
        row: &mut InodeRow,
        now: i64,
    ) -> Result<()> {
        if st.in_use(row.ino) {
            row.nlink = 0;
            row.ctime_ns = now;
            m.update_inode(row)?;
            m.hold_unlinked(row.ino)?;
        } else {
            m.delete_inode(row.ino)?;
        }
        Ok(())
    }

    /// Fails with EINVAL if `dir` is `ancestor` or lies below it.
    fn check_not_below(m: &(impl Reads + ?Sized), dir: u64, ancestor: u64) -> Result<()> {
        let mut cur = dir;
        // Bounded walk: a loop in a damaged tree must not hang the daemon.
        for _ in 0..1_000_000 {
            if cur == ancestor {
                return Err(Error::InvalidArgument(
                    "cannot move a directory below itself",
                ));
            }
            if cur == ROOT_INO {
                return Ok(());
            }
            cur = m
                .parent_of(cur)?
                .ok_or_else(|| Error::Inconsistent(format!("directory {cur} has no parent")))?;
        }
        Err(Error::Inconsistent("directory tree has a loop".into()))
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        if name.len() > super::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        check_name(newname)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
            return Err(Error::InvalidArgument("unsupported rename flags"));
        }
        if flags & RENAME_NOREPLACE != 0 && flags & RENAME_EXCHANGE != 0 {
            return Err(Error::InvalidArgument(
                "RENAME_NOREPLACE and RENAME_EXCHANGE together",
            ));
        }
        let now = now_ns();
        let mut st = self.state();
        // Every check comes before the first change (the directories read
        // again after it were checked before it, in this transaction).
        let dropped = self.transact_checked(Durability::Normal, |m| {
            dir_row(m, parent)?;
            dir_row(m, newparent)?;
            let src_ino = m.lookup(parent, name)?.ok_or(Error::NotFound)?;
            let mut src = m.inode(src_ino)?.ok_or(Error::NotFound)?;
            let dst_ino = m.lookup(newparent, newname)?;
            let src_is_dir = is_dir(src.mode);

            if flags & RENAME_EXCHANGE != 0 {
                let dst_ino = dst_ino.ok_or(Error::NotFound)?;
                if dst_ino == src_ino {
                    return Ok(None);
                }
                let mut dst = m.inode(dst_ino)?.ok_or(Error::NotFound)?;
                let dst_is_dir = is_dir(dst.mode);
                if src_is_dir {
                    Self::check_not_below(m, newparent, src_ino)?;
                }
                if dst_is_dir {
                    Self::check_not_below(m, parent, dst_ino)?;
                }
                m.retarget_dirent(parent, name, dst_ino)?;
                m.retarget_dirent(newparent, newname, src_ino)?;
                src.ctime_ns = now;
                dst.ctime_ns = now;
                m.update_inode(&src)?;
                m.update_inode(&dst)?;
                let delta = i32::from(dst_is_dir) - i32::from(src_is_dir);
                if parent == newparent {
                    touch_dir(m, dir_row(m, parent)?, 0, now)?;
                } else {
                    touch_dir(m, dir_row(m, parent)?, delta, now)?;
                    touch_dir(m, dir_row(m, newparent)?, -delta, now)?;
                }
                return Ok(None);
            }

            let mut dropped = None;
            if let Some(dst_ino) = dst_ino {
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(Error::Exists);
                }
                if dst_ino == src_ino {
                    // Two links to one file: POSIX says do nothing.
                    return Ok(None);
                }
                let dst = m.inode(dst_ino)?.ok_or(Error::NotFound)?;
                match (src_is_dir, is_dir(dst.mode)) {
                    (true, false) => return Err(Error::NotDir),
                    (false, true) => return Err(Error::IsDir),
                    _ => {}
                }
                if src_is_dir {
                    Self::check_not_below(m, newparent, src_ino)?;
                    if !m.dir_is_empty(dst_ino)? {
                        return Err(Error::NotEmpty);
                    }
                }
                m.remove_dirent(newparent, newname)?;
                if src_is_dir {
                    let mut dst = dst;
                    self.drop_dir(m, &st, &mut dst, now)?;
                    touch_dir(m, dir_row(m, newparent)?, -1, now)?;
                } else {
                    dropped = self.drop_link(m, &st, dst, now)?;
                }
            } else if src_is_dir {
                Self::check_not_below(m, newparent, src_ino)?;
            }
            m.remove_dirent(parent, name)?;
            m.insert_dirent(newparent, newname, src_ino)?;
            src.ctime_ns = now;
            m.update_inode(&src)?;
            if parent == newparent {
                touch_dir(m, dir_row(m, parent)?, 0, now)?;
            } else {
                let d = i32::from(src_is_dir);
                touch_dir(m, dir_row(m, parent)?, -d, now)?;
                touch_dir(m, dir_row(m, newparent)?, d, now)?;
            }
            Ok(dropped)
        })?;
        if let Some(d) = dropped {
            self.let_go(&mut st, d);
        }
        Ok(())
    }

    /// Checks that `ino` is a directory that can be listed.
    pub fn opendir(&self, ino: u64) -> Result<()> {
        let row = self.row(ino)?;
        if !is_dir(row.mode) {
            return Err(Error::NotDir);
        }
        Ok(())
    }

    /// Lists entries after cookie `offset` ("." is cookie 1, ".." cookie 2,
    /// stored entries their row id + 2): "." and ".." where the offset is
    /// before them, then at most `limit` stored entries. An empty list:
    /// the end of the directory.
    pub fn readdir(&self, ino: u64, offset: u64, limit: usize) -> Result<Vec<DirEntry>> {
        self.store.read(|m| {
            let row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !is_dir(row.mode) {
                return Err(Error::NotDir);
            }
            let mut out = Vec::new();
            if offset < 1 {
                out.push(DirEntry {
                    ino,
                    offset: 1,
                    mode: libc::S_IFDIR,
                    name: b".".to_vec(),
                });
            }
            if offset < 2 {
                let parent = if ino == ROOT_INO {
                    ROOT_INO
                } else {
                    m.parent_of(ino)?.unwrap_or(ino)
                };
                out.push(DirEntry {
                    ino: parent,
                    offset: 2,
                    mode: libc::S_IFDIR,
                    name: b"..".to_vec(),
                });
            }
            for e in m.list_dir(ino, offset.saturating_sub(2), limit)? {
                out.push(DirEntry {
                    ino: e.ino,
                    offset: e.cookie + 2,
                    mode: e.mode,
                    name: e.name,
                });
            }
            Ok(out)
        })
    }

    /// As [`Fs::readdir`], each entry with its attributes (`readdirplus`:
    /// the kernel takes a reference to every entry but "." and "..", and
    /// needs no lookup for them).
    pub fn readdir_plus(
        &self,
        ino: u64,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>> {
        let st = self.state();
        let rows = self.store.read(|m| {
            let row = m.inode(ino)?.ok_or(Error::NotFound)?;
            if !is_dir(row.mode) {
                return Err(Error::NotDir);
            }
            let mut out = Vec::new();
            if offset < 1 {
                out.push((1, b".".to_vec(), row.clone()));
            }
            if offset < 2 {
                let parent = if ino == ROOT_INO {
                    ROOT_INO
                } else {
                    m.parent_of(ino)?.unwrap_or(ino)
                };
                let prow = m.inode(parent)?.unwrap_or_else(|| row.clone());
                out.push((2, b"..".to_vec(), prow));
            }
            for (cookie, name, r) in m.list_dir_rows(ino, offset.saturating_sub(2), limit)? {
                out.push((cookie + 2, name, r));
            }
            Ok(out)
        })?;
        Ok(rows
            .into_iter()
            .map(|(offset, name, row)| {
                let attr = self.attr_of(&st, &row);
                let e = DirEntry {
                    ino: row.ino,
                    offset,
                    mode: row.mode,
                    name,
                };
                (e, attr)
            })
            .collect())
    }

    /// Makes directory changes durable. Every change is already atomic in
    /// the store; this forces the store's log to disk.
    pub fn fsyncdir(&self, ino: u64) -> Result<()> {
        self.opendir(ino)?;
        if self.config.read_only {
            return Ok(());
        }
        Ok(self.store.sync()?)
    }

    /// Permission check for `access(2)`; with `default_permissions` the
    /// kernel does this itself, but the core answers correctly on its own.
    pub fn access(&self, ctx: &Ctx, ino: u64, mask: i32) -> Result<()> {
        let row = self.row(ino)?;
        if mask == libc::F_OK {
            return Ok(());
        }
        if mask & libc::W_OK != 0 && self.config.read_only {
            return Err(Error::ReadOnly);
        }
        let perm = row.mode & 0o777;
        if ctx.uid == 0 {
            // root may do anything except execute a file no one may execute.
            if mask & libc::X_OK != 0 && !is_dir(row.mode) && perm & 0o111 == 0 {
                return Err(Error::PermissionDenied);
            }
            return Ok(());
        }
        let bits = if ctx.uid == row.uid {
            perm >> 6
        } else if ctx.gid == row.gid {
            perm >> 3
        } else {
            perm
        } & 0o7;
        let want = (if mask & libc::R_OK != 0 { 4 } else { 0 })
            | (if mask & libc::W_OK != 0 { 2 } else { 0 })
            | (if mask & libc::X_OK != 0 { 1 } else { 0 });
        if bits & want == want {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }
}
