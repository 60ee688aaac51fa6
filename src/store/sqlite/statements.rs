//! The writer connection's prepared statements, kept by the address of
//! their SQL text.
//!
//! rusqlite's `prepare_cached` finds a statement by its text: it hashes the
//! text when the statement is taken and again when it is put back, clears
//! its bindings, and moves it within an LRU list of 16. A small file's
//! unlink runs about 15 statements, and that bookkeeping was 12% of the
//! core's instructions for it, more than any one of its statements but the
//! deletion of the block rows (docs/MEASUREMENTS.md, "Prepared statements
//! by address"). The writer's statements are the crate's own constants
//! (`&'static str`), so the text's address and length name one
//! statement: a lookup hashes two words (crate::number_hash). There is no
//! bound: the constants are a fixed set, a few dozen, and each keeps one
//! prepared statement.
//!
//! A statement is taken out while it runs and put back when its [`Kept`]
//! is dropped, so a statement that runs while another use of the same text
//! is still open (rows being read) gets a fresh one; the one put back last
//! stays. rusqlite resets a statement when its run ends (`execute`, or the
//! rows dropped); its bindings are replaced at the next run, whose
//! parameters bind every placeholder.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use rusqlite::{Connection, PrepFlags, Statement};

use crate::number_hash::NumberMap;

/// A statement's text, by address and length.
type Key = (usize, usize);

fn key(sql: &'static str) -> Key {
    (sql.as_ptr() as usize, sql.len())
}

/// Prepared statements of one connection that are not running.
pub(super) struct Statements<'c> {
    conn: &'c Connection,
    idle: RefCell<NumberMap<Key, Statement<'c>>>,
}

impl<'c> Statements<'c> {
    pub(super) fn new(conn: &'c Connection) -> Statements<'c> {
        Statements {
            conn,
            idle: RefCell::new(NumberMap::default()),
        }
    }

    /// The connection the statements are of.
    pub(super) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The statement of `sql`, prepared once.
    pub(super) fn get(&self, sql: &'static str) -> rusqlite::Result<Kept<'_, 'c>> {
        let taken = self.idle.borrow_mut().remove(&key(sql));
        let stmt = match taken {
            Some(stmt) => stmt,
            // Long-lived, as rusqlite's cache marks its own: SQLite then
            // keeps the statement out of the connection's lookaside
            // memory, which its transient allocations need.
            None => self
                .conn
                .prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
        };
        Ok(Kept {
            stmt: Some(stmt),
            sql,
            home: self,
        })
    }
}

/// A statement taken from [`Statements`], put back when dropped.
pub(super) struct Kept<'s, 'c> {
    stmt: Option<Statement<'c>>,
    sql: &'static str,
    home: &'s Statements<'c>,
}

impl<'c> Deref for Kept<'_, 'c> {
    type Target = Statement<'c>;

    fn deref(&self) -> &Statement<'c> {
        self.stmt
            .as_ref()
            .expect("a kept statement is present until dropped")
    }
}

impl<'c> DerefMut for Kept<'_, 'c> {
    fn deref_mut(&mut self) -> &mut Statement<'c> {
        self.stmt
            .as_mut()
            .expect("a kept statement is present until dropped")
    }
}

impl Drop for Kept<'_, '_> {
    fn drop(&mut self) {
        if let Some(stmt) = self.stmt.take() {
            // A borrow here could only fail inside `get` or `clear`, which
            // drop no `Kept`: keep the statement only when it can be.
            if let Ok(mut idle) = self.home.idle.try_borrow_mut() {
                idle.insert(key(self.sql), stmt);
            }
        }
    }
}

/// A statement of the writer's (kept by address), or, on another
/// connection, of rusqlite's cache.
pub(super) enum Stmt<'s, 'c> {
    Kept(Kept<'s, 'c>),
    Cached(rusqlite::CachedStatement<'c>),
}

impl<'s, 'c> Stmt<'s, 'c> {
    pub(super) fn prepare(
        conn: &'c Connection,
        kept: Option<&'s Statements<'c>>,
        sql: &'static str,
    ) -> rusqlite::Result<Stmt<'s, 'c>> {
        match kept {
            Some(k) => k.get(sql).map(Stmt::Kept),
            None => conn.prepare_cached(sql).map(Stmt::Cached),
        }
    }
}

impl<'c> Deref for Stmt<'_, 'c> {
    type Target = Statement<'c>;

    fn deref(&self) -> &Statement<'c> {
        match self {
            Stmt::Kept(k) => k,
            Stmt::Cached(c) => c,
        }
    }
}

impl<'c> DerefMut for Stmt<'_, 'c> {
    fn deref_mut(&mut self) -> &mut Statement<'c> {
        match self {
            Stmt::Kept(k) => k,
            Stmt::Cached(c) => c,
        }
    }
}

impl std::fmt::Debug for Statements<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.try_borrow().map(|i| i.len()).ok();
        f.debug_struct("Statements").field("idle", &idle).finish()
    }
}
