//! SQLite's own page cache (pcache1), wrapped so that a commit does not
//! walk the whole cache when it has nothing to drop.
//!
//! At the end of every transaction SQLite asks the page cache to drop
//! the pages past the end of the database (`pager_end_transaction` calls
//! `xTruncate(size + 1)`). pcache1 skips that when no page was ever keyed
//! past the end (its `iMaxKey`), and otherwise walks every hash slot and
//! every cached page when the highest key is more than a hash table's
//! length past the limit. But SQLite's B-tree, when it puts the pages of
//! a rebalanced node in order (`balance_nonroot`), swaps two pages
//! through a page number no page ever has: the lock-byte page's, 1 GiB
//! over the page size plus one (262,145 for 4 KiB pages). That leaves
//! pcache1's highest key there, so the next commit walks the writer's
//! whole 64 MiB cache (16,384 slots, about 16,000 pages) with the store's
//! writer held: 29 of the commits of a `tar x` of /usr/include onto a
//! store that had just deleted a tree, 346 in four such `tar x` in a row,
//! about 0.5 ms each (docs/MEASUREMENTS.md, "A commit that walked the
//! whole page cache").
//!
//! The wrapper passes every call to pcache1 and keeps, per cache, a bound
//! on the keys its pages can have, leaving out pages parked at the
//! lock-byte page's number (counted apart: `balance_nonroot` moves them
//! on within the same call). A truncation whose limit is past that
//! bound, with no page parked at or past the limit, has nothing to drop
//! and is not passed on; any other goes to pcache1 as before. The bound
//! only ever overstates: keys enter a cache only through `xFetch` and
//! `xRekey`, and leave through truncation (which lowers the bound),
//! unpinning or recycling (which leave it high).
//!
//! SQLite takes a page cache only before it initialises, so [`install`]
//! must run before the process's first SQLite call: the store calls it
//! before it opens a database, which in llmfs's binary is the first
//! SQLite call. Where SQLite was already initialised (a program that used
//! it first), SQLite's own cache stays, with the cost above, and nothing
//! else changes.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

use rusqlite::ffi;

/// SQLite's `PENDING_BYTE`: the lock-byte page is the page holding it.
const PENDING_BYTE: u32 = 0x4000_0000;

type PagePtr = *mut ffi::sqlite3_pcache_page;
type CachePtr = *mut ffi::sqlite3_pcache;

/// pcache1's methods, as SQLite handed them out before [`install`]: every
/// one a cache needs is there (`Pcache1::of` checks), so calls need no
/// `Option`.
struct Pcache1 {
    arg: *mut c_void,
    init: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    shutdown: Option<unsafe extern "C" fn(*mut c_void)>,
    create: unsafe extern "C" fn(c_int, c_int, c_int) -> CachePtr,
    cache_size: unsafe extern "C" fn(CachePtr, c_int),
    page_count: unsafe extern "C" fn(CachePtr) -> c_int,
    fetch: unsafe extern "C" fn(CachePtr, c_uint, c_int) -> PagePtr,
    unpin: unsafe extern "C" fn(CachePtr, PagePtr, c_int),
    rekey: unsafe extern "C" fn(CachePtr, PagePtr, c_uint, c_uint),
    truncate: unsafe extern "C" fn(CachePtr, c_uint),
    destroy: unsafe extern "C" fn(CachePtr),
    shrink: unsafe extern "C" fn(CachePtr),
}
// SAFETY: function pointers and pcache1's `pArg` (null), never written
// after `install`.
unsafe impl Send for Pcache1 {}
unsafe impl Sync for Pcache1 {}

impl Pcache1 {
    /// `None` if a method a cache needs is missing (pcache1 has them all).
    fn of(m: &ffi::sqlite3_pcache_methods2) -> Option<Pcache1> {
        Some(Pcache1 {
            arg: m.pArg,
            init: m.xInit,
            shutdown: m.xShutdown,
            create: m.xCreate?,
            cache_size: m.xCachesize?,
            page_count: m.xPagecount?,
            fetch: m.xFetch?,
            unpin: m.xUnpin?,
            rekey: m.xRekey?,
            truncate: m.xTruncate?,
            destroy: m.xDestroy?,
            shrink: m.xShrink?,
        })
    }
}

static PCACHE1: OnceLock<Pcache1> = OnceLock::new();
/// Set when SQLite initialised this page cache: it is the one in use.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// Truncations passed to pcache1, and those that were not (tests read
/// these).
static PASSED: AtomicU32 = AtomicU32::new(0);
static SKIPPED: AtomicU32 = AtomicU32::new(0);
/// Pages parked at the lock-byte page's number, over the process's life.
static PARKED: AtomicU32 = AtomicU32::new(0);

/// One cache: pcache1's, and the bound on its keys.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    /// The lock-byte page's number for this cache's page size.
    lock_page: c_uint,
    /// Pages keyed at `lock_page` by `xRekey` now.
    parked: AtomicU32,
    /// At least the highest key of any page here other than parked ones.
    max_key: AtomicU32,
}

/// Puts the wrapper in place of SQLite's page cache, once per process.
/// Returns whether it is the page cache SQLite will use: false where
/// SQLite was initialised before the first call.
pub(super) fn install() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| unsafe { install_once() })
}

unsafe fn install_once() -> bool {
    let mut inner: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
    if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, &mut inner as *mut _) != ffi::SQLITE_OK {
        // SQLite is already initialised: it keeps its own cache.
        log::debug!("SQLite was initialised before llmfs set its page cache; keeping SQLite's");
        return false;
    }
    let Some(pcache1) = Pcache1::of(&inner) else {
        return false;
    };
    if PCACHE1.set(pcache1).is_err() {
        return false;
    }
    let methods = ffi::sqlite3_pcache_methods2 {
        iVersion: 2,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cache_size),
        xPagecount: Some(page_count),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    };
    // SQLite copies the methods.
    ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &methods as *const _) == ffi::SQLITE_OK
}

/// Whether SQLite uses the wrapper in this process (it has initialised it).
#[cfg(test)]
fn in_use() -> bool {
    IN_USE.load(Relaxed)
}

/// Truncations passed to pcache1 and skipped, and pages parked, so far in
/// this process.
#[cfg(test)]
fn counts() -> (u32, u32, u32) {
    (
        PASSED.load(Relaxed),
        SKIPPED.load(Relaxed),
        PARKED.load(Relaxed),
    )
}

fn pcache1() -> &'static Pcache1 {
    // Set before SQLite can call any method below.
    PCACHE1.get().expect("page cache wrapper installed")
}

/// SAFETY: `p` came from `create` and is not destroyed.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a Cache {
    &*p.cast::<Cache>()
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let m = pcache1();
    let rc = m.init.map_or(ffi::SQLITE_OK, |f| f(m.arg));
    if rc == ffi::SQLITE_OK {
        IN_USE.store(true, Relaxed);
    }
    rc
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let m = pcache1();
    if let Some(f) = m.shutdown {
        f(m.arg);
    }
}

unsafe extern "C" fn create(
    page: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let inner = (pcache1().create)(page, extra, purgeable);
    if inner.is_null() {
        return inner;
    }
    let c = Box::new(Cache {
        inner,
        lock_page: PENDING_BYTE / page.max(1) as u32 + 1,
        parked: AtomicU32::new(0),
        max_key: AtomicU32::new(0),
    });
    Box::into_raw(c).cast()
}

unsafe extern "C" fn cache_size(p: *mut ffi::sqlite3_pcache, n: c_int) {
    (pcache1().cache_size)(cache(p).inner, n)
}

unsafe extern "C" fn page_count(p: *mut ffi::sqlite3_pcache) -> c_int {
    (pcache1().page_count)(cache(p).inner)
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = cache(p);
    let page = (pcache1().fetch)(c.inner, key, create);
    // A page fetched at the lock-byte page's number (never, in a valid
    // database) counts as any other: the bound then covers it.
    if !page.is_null() && key > c.max_key.load(Relaxed) {
        c.max_key.store(key, Relaxed);
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    (pcache1().unpin)(cache(p).inner, page, discard)
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = cache(p);
    (pcache1().rekey)(c.inner, page, old, new);
    if new == c.lock_page {
        c.parked.fetch_add(1, Relaxed);
        PARKED.fetch_add(1, Relaxed);
    } else if new > c.max_key.load(Relaxed) {
        c.max_key.store(new, Relaxed);
    }
    if old == c.lock_page {
        // A page fetched there is already under `max_key`, which then
        // reaches `lock_page` and makes `parked` irrelevant.
        let _ = c
            .parked
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let c = cache(p);
    let parked_past = c.parked.load(Relaxed) > 0 && c.lock_page >= limit;
    if limit > c.max_key.load(Relaxed) && !parked_past {
        // No page has a key at or past `limit`: nothing to drop.
        SKIPPED.fetch_add(1, Relaxed);
        return;
    }
    PASSED.fetch_add(1, Relaxed);
    (pcache1().truncate)(c.inner, limit);
    if limit <= c.max_key.load(Relaxed) {
        c.max_key.store(limit.saturating_sub(1), Relaxed);
    }
    if parked_past {
        c.parked.store(0, Relaxed);
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    let c = Box::from_raw(p.cast::<Cache>());
    (pcache1().destroy)(c.inner);
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    (pcache1().shrink)(cache(p).inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const CHILD: &str = "store::sqlite::page_cache::tests::replaced_rows_in_a_fresh_process";
    /// Set for the process that runs `CHILD`: elsewhere (`--include-ignored`)
    /// it does nothing.
    const CHILD_ENV: &str = "LLMFS_PAGE_CACHE_TEST_CHILD";

    /// The wrapper takes effect only before SQLite's first use, which
    /// another test of this binary may already have made: the workload
    /// runs in a process of its own (this binary, running that test only).
    #[test]
    fn commits_skip_the_scan_and_the_database_stays_whole() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([CHILD, "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        assert!(said.contains("1 passed"), "{said}");
    }

    fn insert(conn: &Connection, keys: impl Iterator<Item = u64>) {
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO t(k, v) VALUES (?1, zeroblob(?2))")
                .unwrap();
            for k in keys {
                put.execute((k as i64, 100 + (k % 700) as i64)).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    /// Rows, bytes and a sum of keys.
    fn contents(conn: &Connection) -> (i64, i64, i64) {
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(v)), 0), COALESCE(SUM(k % 1000003), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    fn whole(conn: &Connection) {
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    #[ignore = "run by commits_skip_the_scan_and_the_database_stays_whole, alone"]
    fn replaced_rows_in_a_fresh_process() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        assert!(install(), "SQLite was initialised before the wrapper");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = Connection::open(&db).unwrap();
        assert!(in_use());
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "cache_size", -65536).unwrap();
        conn.execute_batch("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        // Keys in a scrambled order, in small transactions (a store's
        // batches); then half of them deleted and others written, so that
        // the B-tree rebalances with pages from its free list, out of
        // order: what makes SQLite park pages.
        let scrambled =
            |from: u64, n: u64| (from..from + n).map(|i| i.wrapping_mul(0x9E37_79B9) % 10_000_019);
        let (_, skipped0, parked0) = counts();
        for chunk in 0..40 {
            insert(&conn, scrambled(chunk * 500, 500));
        }
        for round in 0..20 {
            conn.execute("DELETE FROM t WHERE k % 20 = ?1", [round as i64])
                .unwrap();
            insert(&conn, scrambled(20_000 + round * 1000, 1000));
        }
        let (passed, skipped, parked) = counts();
        assert!(parked > parked0, "no page parked");
        assert!(skipped > skipped0, "no truncation skipped");
        whole(&conn);
        let kept = contents(&conn);

        // A transaction that grows the file and rolls back: its pages past
        // the end must leave the cache (the truncation goes to pcache1),
        // or the next growth would find them there.
        conn.execute_batch("BEGIN").unwrap();
        {
            let mut put = conn
                .prepare("INSERT INTO t(k, v) VALUES (?1, zeroblob(3000))")
                .unwrap();
            for k in 0..5000i64 {
                put.execute([20_000_000 + k]).unwrap();
            }
        }
        conn.execute_batch("ROLLBACK").unwrap();
        assert!(
            counts().0 > passed,
            "the rollback's truncation was not passed on"
        );
        assert_eq!(contents(&conn), kept);
        insert(&conn, 30_000_000..30_004_000);
        whole(&conn);
        let now = contents(&conn);
        assert_eq!(now.0, kept.0 + 4000);
        let other = Connection::open(&db).unwrap();
        assert_eq!(contents(&other), now);
        whole(&other);

        keys_past_a_truncation_leave_and_the_rest_stay();
    }

    /// One cache driven as the pager drives it, through the wrapper,
    /// with pcache1 beneath: which pages each truncation leaves.
    fn keys_past_a_truncation_leave_and_the_rest_stay() {
        unsafe {
            let p = create(4096, 64, 1);
            assert!(!p.is_null());
            cache_size(p, 1000);
            let lock_page = PENDING_BYTE / 4096 + 1;
            let put = |key: c_uint| {
                let page = fetch(p, key, 2);
                assert!(!page.is_null());
                unpin(p, page, 0);
            };
            let present = |key: c_uint| {
                let page = fetch(p, key, 0);
                if !page.is_null() {
                    unpin(p, page, 0);
                }
                !page.is_null()
            };
            let swap_through_lock_page = |a: c_uint, b: c_uint| {
                let pa = fetch(p, a, 0);
                let pb = fetch(p, b, 0);
                rekey(p, pa, a, lock_page);
                rekey(p, pb, b, a);
                rekey(p, pa, lock_page, b);
                unpin(p, pa, 0);
                unpin(p, pb, 0);
            };
            for key in 1..=100 {
                put(key);
            }
            swap_through_lock_page(40, 60);
            let (passed, skipped, _) = counts();
            // Nothing past 100: skipped, and every page stays.
            truncate(p, 101);
            assert_eq!(counts().1, skipped + 1);
            assert!((1..=100).all(present));
            // Pages from 51 go, the rest stay.
            truncate(p, 51);
            assert_eq!(counts().0, passed + 1);
            assert!((1..=50).all(present));
            assert!(!(51..=100).any(present));
            // A page past the end (a transaction's growth) goes.
            put(200);
            truncate(p, 150);
            assert!(!present(200));
            // A page parked at the lock page when a truncation comes, past
            // every other key.
            let parked = fetch(p, 10, 0);
            rekey(p, parked, 10, lock_page);
            unpin(p, parked, 0);
            truncate(p, 150);
            assert!(!present(lock_page));
            assert!(!present(10));
            assert!((1..=9).chain(11..=50).all(present));
            destroy(p);
        }
    }
}
