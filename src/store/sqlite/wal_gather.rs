//! The WAL's frame writes, gathered into writes of 64 KiB per commit.
//!
//! SQLite writes each frame of a commit to the `-wal` file as two
//! `pwrite`s, the 24-byte frame header and then the page. Under a stream
//! of small files that was most of the daemon's system calls (about
//! 94,000 of the 127,000 `pwrite`s of a `tar x` of /usr/include, 7,917
//! files), each finding and filling the same page-cache pages again (a
//! 4,120-byte frame straddles two or three of them), on the writer's
//! lock. The writer's connection therefore opens the database
//! through a VFS of its own ([`VFS_NAME`], wrapping SQLite's unix VFS)
//! whose WAL file gathers a run of contiguous frame writes in memory and
//! writes the run at once. Only the WAL is wrapped: the database file,
//! the locks and the shared WAL index go to the unix VFS unchanged.
//!
//! The file holds exactly what SQLite wrote, in the order it wrote it; a
//! write is only delayed, and never past the moment another connection or
//! process could need it:
//!
//! - **Commits.** SQLite makes a commit visible (the WAL index header that
//!   names its frames) only after writing its last frame, the commit
//!   frame, whose header carries the database size (nonzero) where other
//!   frames carry 0. The run is written as soon as the commit frame's page
//!   has joined it, inside that `xWrite`: a commit never names a frame the
//!   file lacks, and a failed write (a full disk, an I/O error) fails the
//!   commit, as it did before.
//! - **Syncs, truncation, size, reads of the run, file controls and
//!   close** write the run first, so each means what it meant.
//! - **A write that does not continue the run** writes the run first.
//!   Only frame headers at or past the furthest byte written since the
//!   log last started (SQLite's appends) open a run; anything else (the
//!   WAL header's rewrite, a frame rewritten in place, the checksum
//!   rewrites after a commit) goes through at once, in order.
//!
//! What is gathered at any moment is therefore frames of a transaction
//! not yet committed, which no reader can see and a crash loses in any
//! case. One writable connection per store writes its WAL (the store's
//! lock file keeps other processes to reading), so nothing else writes
//! the file while a run waits.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::store::StoreError;

/// The VFS the store's writer connection opens the database with.
pub(super) const VFS_NAME: &str = "llmfs-wal-gather";
const VFS_CNAME: &CStr = c"llmfs-wal-gather";
/// A WAL frame's header (wal.c, `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER: usize = 24;
/// Where a frame header holds the database size in pages: nonzero only
/// in a commit frame (wal.c, `walEncodeFrame`).
const COMMIT_SIZE: std::ops::Range<usize> = 4..8;
/// Largest write handed to the unix VFS: it writes at most 128 KiB - 1
/// bytes a `pwrite` and takes a longer write for a full disk (os_unix.c,
/// `seekAndWriteFd`), since SQLite's own are a page at most.
const MAX_WRITE: usize = 64 << 10;
/// Largest run held; a longer transaction writes as it goes. Bounds the
/// memory, and keeps a run's length within a C `int`.
const MAX_RUN: usize = 8 << 20;

/// Registers the VFS with SQLite, once per process; it does not become
/// the default.
pub(super) fn register() -> Result<(), StoreError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| unsafe { register_vfs() })
        .clone()
        .map_err(StoreError::Invalid)
}

unsafe fn register_vfs() -> Result<(), String> {
    let real = ffi::sqlite3_vfs_find(std::ptr::null());
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    let mut vfs = *real;
    vfs.szOsFile = (*real).szOsFile + HEADER as c_int;
    vfs.pNext = std::ptr::null_mut();
    vfs.pAppData = real.cast();
    vfs.zName = VFS_CNAME.as_ptr();
    vfs.xOpen = Some(open);
    // SQLite keeps the pointer for the life of the process.
    let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    match ffi::sqlite3_vfs_register(vfs, 0) {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(format!("registering SQLite's VFS {VFS_NAME}: error {rc}")),
    }
}

/// A WAL file of this VFS: this header, then the unix VFS's own file
/// (`real`) in the same allocation. SQLite calls a file's methods from
/// one thread at a time (its connection's), so the run needs no lock.
#[repr(C)]
struct Gathered {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// From `Box::into_raw`; freed by `close`.
    run: *mut Run,
}

const HEADER: usize = (std::mem::size_of::<Gathered>() + 15) & !15;

/// The writes held back, and what decides whether the next one may be.
#[derive(Debug, Default)]
struct Run {
    /// File offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
    /// The furthest byte written (or gathered) since the log last started
    /// at offset 0: a frame header at or past it is an append.
    furthest: i64,
    /// The run's last write is a commit frame's header: the page that
    /// follows completes the commit.
    commit_pending: bool,
}

impl Run {
    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }

    fn overlaps(&self, at: i64, len: i64) -> bool {
        !self.bytes.is_empty() && at < self.end() && self.start < at + len
    }
}

#[cfg(test)]
thread_local! {
    /// Writes this thread handed to the unix VFS's WAL files (tests).
    static REAL_WRITES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// While set, this thread's writes to WAL files fail as on a full
    /// disk, unwritten (tests).
    static DISK_FULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The unix VFS's `xWrite` on `real`.
unsafe fn write_real(real: *mut ffi::sqlite3_file, data: &[u8], at: i64) -> c_int {
    #[cfg(test)]
    {
        REAL_WRITES.with(|n| n.set(n.get() + 1));
        if DISK_FULL.with(|f| f.get()) {
            return ffi::SQLITE_FULL;
        }
    }
    (methods(real).xWrite.expect("xWrite"))(real, data.as_ptr().cast(), data.len() as c_int, at)
}

unsafe fn methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*f).pMethods
}

unsafe fn parts<'a>(f: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'a mut Run) {
    let g = f.cast::<Gathered>();
    ((*g).real, &mut *(*g).run)
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    let real_vfs: *mut ffi::sqlite3_vfs = (*vfs).pAppData.cast();
    let real_open = (*real_vfs).xOpen.expect("the unix VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // The database and every other file: the unix VFS's own, in the
        // space SQLite allocated (larger than it needs).
        return real_open(real_vfs, name, file, flags, out);
    }
    let g = file.cast::<Gathered>();
    // SQLite calls `xClose` only on a file whose `pMethods` is set.
    (*g).base.pMethods = std::ptr::null();
    let real = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
    (*g).real = real;
    let rc = real_open(real_vfs, name, real, flags, out);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    (*g).run = Box::into_raw(Box::default());
    (*g).base.pMethods = &METHODS;
    ffi::SQLITE_OK
}

/// Writes the run, if any, and empties it. A run that fails is dropped:
/// it holds only frames of the transaction whose call now fails, which
/// SQLite rolls back.
unsafe fn flush(real: *mut ffi::sqlite3_file, run: &mut Run) -> c_int {
    run.commit_pending = false;
    if run.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let mut at = run.start;
    let mut rc = ffi::SQLITE_OK;
    for chunk in run.bytes.chunks(MAX_WRITE) {
        rc = write_real(real, chunk, at);
        if rc != ffi::SQLITE_OK {
            break;
        }
        at += chunk.len() as i64;
    }
    run.bytes.clear();
    rc
}

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    b: *const c_void,
    n: c_int,
    at: i64,
) -> c_int {
    let (real, run) = parts(f);
    if n <= 0 || b.is_null() {
        return (methods(real).xWrite.expect("xWrite"))(real, b, n, at);
    }
    let data = std::slice::from_raw_parts(b.cast::<u8>(), n as usize);
    if at == 0 {
        // The WAL header: the log starts over.
        run.furthest = 0;
    }
    let joins = !run.bytes.is_empty() && at == run.end() && run.bytes.len() + data.len() <= MAX_RUN;
    if !joins {
        let rc = flush(real, run);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    let appends_frame = data.len() == FRAME_HEADER && at >= run.furthest;
    run.furthest = run.furthest.max(at + i64::from(n));
    if joins || appends_frame {
        let completes_commit = joins && run.commit_pending;
        if !joins {
            run.start = at;
        }
        run.bytes.extend_from_slice(data);
        run.commit_pending = data.len() == FRAME_HEADER && data[COMMIT_SIZE] != [0; 4];
        return if completes_commit {
            flush(real, run)
        } else {
            ffi::SQLITE_OK
        };
    }
    write_real(real, data, at)
}

unsafe extern "C" fn read(f: *mut ffi::sqlite3_file, b: *mut c_void, n: c_int, at: i64) -> c_int {
    let (real, run) = parts(f);
    if run.overlaps(at, i64::from(n)) {
        let rc = flush(real, run);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    (methods(real).xRead.expect("xRead"))(real, b, n, at)
}

/// Writes the run, then calls `op` on the unix VFS's file; or returns the
/// write's error.
unsafe fn after_flush(
    f: *mut ffi::sqlite3_file,
    op: impl FnOnce(*mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    let (real, run) = parts(f);
    match flush(real, run) {
        ffi::SQLITE_OK => op(real),
        rc => rc,
    }
}

unsafe extern "C" fn truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    after_flush(f, |real| {
        (methods(real).xTruncate.expect("xTruncate"))(real, size)
    })
}

unsafe extern "C" fn sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    after_flush(f, |real| (methods(real).xSync.expect("xSync"))(real, flags))
}

unsafe extern "C" fn file_size(f: *mut ffi::sqlite3_file, out: *mut i64) -> c_int {
    after_flush(f, |real| {
        (methods(real).xFileSize.expect("xFileSize"))(real, out)
    })
}

unsafe extern "C" fn file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    after_flush(f, |real| {
        (methods(real).xFileControl.expect("xFileControl"))(real, op, arg)
    })
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    let g = f.cast::<Gathered>();
    let real = (*g).real;
    let mut run = Box::from_raw((*g).run);
    (*g).run = std::ptr::null_mut();
    let flushed = flush(real, &mut run);
    let closed = (methods(real).xClose.expect("xClose"))(real);
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn lock(f: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    let real = (*f.cast::<Gathered>()).real;
    (methods(real).xLock.expect("xLock"))(real, l)
}

unsafe extern "C" fn unlock(f: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    let real = (*f.cast::<Gathered>()).real;
    (methods(real).xUnlock.expect("xUnlock"))(real, l)
}

unsafe extern "C" fn check_reserved(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let real = (*f.cast::<Gathered>()).real;
    (methods(real)
        .xCheckReservedLock
        .expect("xCheckReservedLock"))(real, out)
}

unsafe extern "C" fn sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    let real = (*f.cast::<Gathered>()).real;
    (methods(real).xSectorSize.expect("xSectorSize"))(real)
}

unsafe extern "C" fn device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    let real = (*f.cast::<Gathered>()).real;
    (methods(real)
        .xDeviceCharacteristics
        .expect("xDeviceCharacteristics"))(real)
}

/// Version 1: SQLite maps and locks shared memory, and maps pages, only
/// through the database file, never the WAL.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::Path;

    fn open(db: &Path, gathered: bool) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if gathered {
            register().unwrap();
            Connection::open_with_flags_and_vfs(db, flags, VFS_NAME).unwrap()
        } else {
            Connection::open_with_flags(db, flags).unwrap()
        };
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn
    }

    /// A database in `dir` with table `t`, and its writer through the
    /// gathering VFS (with a page cache of `cache_pages`, if given).
    fn gathered_table(dir: &Path, cache_pages: Option<i64>) -> (std::path::PathBuf, Connection) {
        let db = dir.join("g.db");
        let writer = open(&db, true);
        if let Some(pages) = cache_pages {
            writer.pragma_update(None, "cache_size", pages).unwrap();
        }
        writer
            .execute_batch("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        (db, writer)
    }

    /// After a transaction that left nothing, a reader sees `committed`,
    /// and `n` more rows commit whole: seen by the reader and in a copy of
    /// the files.
    fn goes_on_from(db: &Path, writer: &Connection, committed: (i64, i64), n: i64) {
        let reader = open(db, false);
        assert_eq!(rows(&reader), committed);
        assert_eq!(rows(writer), committed);
        insert(writer, committed.0, n);
        assert_eq!(rows(&reader).0, committed.0 + n);
        let copies = tempfile::tempdir().unwrap();
        let copy = crash_copy(db, copies.path());
        assert_eq!(rows(&copy).0, committed.0 + n);
        assert_whole(&copy);
    }

    fn assert_whole(conn: &Connection) {
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    fn rows(conn: &Connection) -> (i64, i64) {
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(v)), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    fn insert(conn: &Connection, from: i64, n: i64) {
        let tx = conn.unchecked_transaction().unwrap();
        for k in from..from + n {
            tx.execute(
                "INSERT INTO t(k, v) VALUES (?1, zeroblob(3000 + ?1 % 5000))",
                [k],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    /// Copies the database and its WAL as a crash would leave them (the
    /// files alone, no connection) and opens the copy.
    fn crash_copy(db: &Path, into: &Path) -> Connection {
        let copy = into.join("copy.db");
        std::fs::copy(db, &copy).unwrap();
        let wal = db.with_extension("db-wal");
        if wal.exists() {
            std::fs::copy(&wal, into.join("copy.db-wal")).unwrap();
        }
        Connection::open(&copy).unwrap()
    }

    /// Every commit is in the WAL file when the commit returns: another
    /// connection (SQLite's own VFS) sees it, and so does a copy of the
    /// files, which is what a crash right then would leave.
    #[test]
    fn each_commit_is_in_the_file_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = gathered_table(dir.path(), None);
        let reader = open(&db, false);
        let mut expect = (0, 0);
        for round in 0..20 {
            insert(&writer, round * 50, 50);
            expect = rows(&writer);
            assert_eq!(rows(&reader), expect);
            let copies = tempfile::tempdir().unwrap();
            assert_eq!(rows(&crash_copy(&db, copies.path())), expect);
        }
        assert_eq!(expect.0, 1000);
        // A checkpoint (SQLite's own file, another connection) copies
        // every frame, and starting the log over keeps working.
        reader
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
            .unwrap();
        insert(&writer, 1000, 10);
        assert_eq!(rows(&reader).0, 1010);
        assert_whole(&writer);
    }

    /// A transaction larger than the page cache spills frames before its
    /// commit; rolled back, they are never seen, and the commits after it
    /// (written over the abandoned frames) are whole.
    #[test]
    fn spilled_frames_of_a_rolled_back_transaction_are_never_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = gathered_table(dir.path(), Some(20));
        insert(&writer, 0, 100);
        let committed = rows(&writer);
        {
            let tx = writer.unchecked_transaction().unwrap();
            for k in 100..600 {
                tx.execute("INSERT INTO t(k, v) VALUES (?1, zeroblob(4000))", [k])
                    .unwrap();
            }
            // Read back through the spilled frames inside the transaction.
            let n: i64 = tx
                .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 600);
            let copies = tempfile::tempdir().unwrap();
            assert_eq!(rows(&crash_copy(&db, copies.path())), committed);
            tx.rollback().unwrap();
        }
        goes_on_from(&db, &writer, committed, 300);
    }

    /// A commit's frames reach the file in a few writes of up to
    /// `MAX_WRITE` bytes, not two a frame; the commit is whole in the file
    /// when it returns.
    #[test]
    fn a_commit_is_a_few_large_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = gathered_table(dir.path(), None);
        let wal = db.with_extension("db-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        let writes = REAL_WRITES.with(|n| n.get());
        insert(&writer, 0, 200);
        let writes = REAL_WRITES.with(|n| n.get()) - writes;
        let grown = std::fs::metadata(&wal).unwrap().len() - before;
        let frames = grown / (4096 + FRAME_HEADER as u64);
        assert!(frames > 200, "{frames} frames");
        assert!(
            writes as u64 <= grown / MAX_WRITE as u64 + 2,
            "{writes} writes for {frames} frames"
        );
        let copies = tempfile::tempdir().unwrap();
        assert_eq!(rows(&crash_copy(&db, copies.path())).0, 200);
    }

    /// A commit whose gathered frames cannot be written fails with the
    /// full disk's error, and nothing of it is seen; the commits before it
    /// stay, and the next one works.
    #[test]
    fn a_failed_write_fails_its_commit_and_loses_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = gathered_table(dir.path(), None);
        insert(&writer, 0, 100);
        let committed = rows(&writer);
        DISK_FULL.with(|f| f.set(true));
        let failed = (|| {
            let tx = writer.unchecked_transaction()?;
            for k in 100..150 {
                tx.execute("INSERT INTO t(k, v) VALUES (?1, zeroblob(3000))", [k])?;
            }
            tx.commit()
        })();
        DISK_FULL.with(|f| f.set(false));
        let err = failed.expect_err("a commit on a full disk");
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull),
            "{err}"
        );
        goes_on_from(&db, &writer, committed, 50);
    }

    /// A transaction longer than `MAX_RUN` writes as it goes and still
    /// commits whole.
    #[test]
    fn a_transaction_longer_than_a_run_commits_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = gathered_table(dir.path(), None);
        let rows_over_a_run = (MAX_RUN / 4000 + 500) as i64;
        insert(&writer, 0, rows_over_a_run);
        let copies = tempfile::tempdir().unwrap();
        let copy = crash_copy(&db, copies.path());
        assert_eq!(rows(&copy).0, rows_over_a_run);
        assert_whole(&copy);
    }
}
