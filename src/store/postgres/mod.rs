//! The PostgreSQL backend: a volume's tables in one schema of a database
//! on a server (docs/FORMAT.md, "PostgreSQL store"). One connection serves
//! the store's transactions in turn, as SQLite's one connection does.
//! Several read-write clients (mounts on several machines) share a volume:
//! each holds the volume's advisory lock shared for its session (which
//! keeps out an older llmfs, which takes it exclusively), registers in the
//! `mounts` table (mounts.rs), and runs every write transaction under a
//! transaction-level lock that serialises the writers of all clients
//! (docs/DESIGN.md, "Several mounts of one volume"). Archive workers open
//! the volume without either lock and change only block encodings, under
//! the swap rule and their claims (docs/DESIGN.md, "Archive workers"). A
//! lost connection is reopened (and the session lock taken again) at the
//! next transaction, the one it broke having failed.

mod meta;
mod migrate;
mod mounts;
mod pgpass;
mod target;

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::{Client, IsolationLevel};
use postgres_openssl::MakeTlsConnector;

use super::setup::{check_features, check_readable_version, initialise_volume, read_block_size};
use super::tx::{BackendTx, ReadTx, WriteTx};
use super::{Durability, OpenOptions, StoreError};
use meta::{PgTx, StatementCache};
pub use migrate::PG_TABLES_VERSION;
pub use mounts::host_name;
pub use target::{PgTarget, TlsMode};

/// The first key of the session-level advisory lock (`llmf`); the second
/// is a hash of the volume's schema name. Read-write clients hold it
/// shared; llmfs builds from before several mounts of one volume took it
/// exclusively, so neither mounts beside the other.
const LOCK_CLASS: i32 = 0x6c6c_6d66;

/// The first key of the transaction-level advisory lock every write
/// transaction of a read-write client takes first (`llmw`): the writers
/// of all mounts of the volume run one at a time, each seeing every
/// commit before it, so that the core's read-then-write of a row inside a
/// transaction loses no other mount's change.
pub(super) const WRITERS_LOCK_CLASS: i32 = 0x6c6c_6d77;

/// Takes the writers' lock for the rest of the transaction.
pub(super) const WRITERS_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))";

#[derive(Debug)]
pub(super) struct PgStore {
    target: PgTarget,
    read_only: bool,
    /// An archive worker: takes neither lock and registers nowhere. Any
    /// other read-write client (a mount, an offline pass) holds the
    /// volume's session lock shared and serialises its write transactions
    /// with the other clients'.
    worker: bool,
    conn: Mutex<Option<Conn>>,
    /// This client's row in `mounts` and its heartbeat (read-write
    /// clients only).
    registration: Option<mounts::Registration>,
}

/// A live connection and the statements prepared on it.
struct Conn {
    client: Client,
    stmts: StatementCache,
    /// A statement on it failed because the connection is gone.
    lost: Cell<bool>,
    /// When its last transaction ended.
    idle_since: std::time::Instant,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            stmts: StatementCache::new(),
            lost: Cell::new(false),
            idle_since: std::time::Instant::now(),
        }
    }

    /// Whether the next transaction needs a new connection.
    fn is_gone(&self) -> bool {
        self.lost.get() || self.client.is_closed()
    }
}

/// A connection idle this long is checked before its next transaction.
const IDLE_PROBE: Duration = Duration::from_secs(1);

/// How long a reconnecting client waits for the volume's session lock,
/// which only an older llmfs holds exclusively (it may have mounted the
/// volume while this client was cut off and every other had gone).
const RELOCK_WAIT: Duration = Duration::from_secs(10);

/// Whether `e` means the connection is gone rather than that a statement
/// failed: the driver saw the socket close or fail, or the server ended
/// the session (class 57P: shutdown, crash, not accepting connections;
/// class 08: connection exceptions).
pub(super) fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("57P") || code.starts_with("08");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens the volume at `target`; returns it with its block size. A
    /// `worker` takes no lock, registers nowhere, migrates nothing and
    /// raises no version on open.
    pub(super) fn open(
        target: &PgTarget,
        opts: &OpenOptions,
        worker: bool,
    ) -> Result<(PgStore, usize), StoreError> {
        let mut client = connect(target)?;
        let schema = target.schema();
        let exists: bool = client
            .query_one(
                "SELECT to_regclass(quote_ident($1) || '.llmfs_schema') IS NOT NULL",
                &[&schema],
            )?
            .get(0);
        if !exists && (!opts.create || opts.read_only) {
            return Err(StoreError::Missing(target.to_string()));
        }
        if !exists {
            super::setup::validate_block_size(opts.block_size)?;
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
        }
        client.batch_execute(&format!("SET search_path TO {schema}"))?;
        if opts.read_only || worker {
            check_readable_version(migrate::schema_version(&mut client)?)?;
        } else {
            lock_volume(&mut client, target)?;
            migrate::migrate(&mut client)?;
        }
        if !opts.read_only {
            migrate::ensure_claims_tables(&mut client)?;
            migrate::ensure_listing_index(&mut client);
        }
        let writer = !worker && !opts.read_only;
        let registration = if writer {
            migrate::ensure_mounts_tables(&mut client)?;
            Some(mounts::Registration::new(&mut client, target)?)
        } else {
            None
        };
        let mut conn = Conn::new(client);
        let block_size = {
            let tx = PgTx::new(
                start(&mut conn.client, opts.read_only)?,
                &mut conn.stmts,
                &conn.lost,
                registration.as_ref().map(mounts::Registration::name),
            );
            if writer {
                tx.lock_writers()?;
            }
            check_features(&tx, opts.read_only || worker)?;
            let bs = if opts.read_only || worker {
                read_block_size(&tx)?
            } else {
                initialise_volume(&tx, opts.block_size)?
            };
            tx.commit()?;
            bs
        };
        let store = PgStore {
            target: target.clone(),
            read_only: opts.read_only,
            worker,
            conn: Mutex::new(Some(conn)),
            registration,
        };
        Ok((store, block_size))
    }

    /// The connection, reopened first if the last one was lost (the
    /// server restarted, the network broke). While the server cannot be
    /// reached this fails at once (the caller's request gets EIO); the
    /// next request tries again.
    fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>, StoreError> {
        // A panic while holding the lock leaves at worst a transaction
        // that rolls back: the lock is still usable.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(Conn::is_gone) {
            *guard = None;
            log::warn!("reconnecting to the store {}", self.target);
            let mut client = connect(&self.target)?;
            client.batch_execute(&format!("SET search_path TO {}", self.target.schema()))?;
            if !self.read_only && !self.worker {
                relock_volume(&mut client, &self.target)?;
            }
            log::warn!("reconnected to the store {}", self.target);
            *guard = Some(Conn::new(client));
        }
        Ok(guard)
    }

    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(true, |tx| {
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(false, |tx| {
            let out = f(&tx)?;
            if durability == Durability::Durable {
                // The server flushes its log up to this commit before
                // answering, and with it every earlier commit; the bump
                // makes sure the transaction writes, so that it has a
                // commit record to wait for.
                tx.batch("SET LOCAL synchronous_commit = on")?;
                tx.bump_sync_generation()?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `body` in a transaction. A connection found gone when the
    /// transaction begins (the server restarted while it was idle) is
    /// replaced and the transaction begun again on the new one: nothing
    /// had run, so the caller never sees that. A connection lost later
    /// fails the transaction (rolled back, or its commit's fate unknown
    /// to the caller, which keeps its data to write again) and is
    /// replaced at the next one.
    fn transaction<T, E: From<StoreError>>(
        &self,
        read_only: bool,
        body: impl FnOnce(PgTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.conn()?;
        if begin_fails(&mut guard) {
            drop(guard);
            guard = self.conn()?;
        }
        let conn = guard.as_mut().expect("conn() connects");
        let mount = self.registration.as_ref().map(mounts::Registration::name);
        let serialise = !read_only && !self.worker;
        let out = match start(&mut conn.client, read_only) {
            Ok(tx) => {
                let tx = PgTx::new(tx, &mut conn.stmts, &conn.lost, mount);
                match serialise.then(|| tx.lock_writers()).transpose() {
                    Ok(_) => body(tx),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => {
                note_lost(&conn.lost, &e);
                Err(e.into())
            }
        };
        conn.idle_since = std::time::Instant::now();
        forget_if_gone(&mut guard, out.is_err());
        out
    }

    /// Bytes the volume's tables take on the server.
    pub(super) fn database_bytes(&self) -> Result<u64, StoreError> {
        self.transaction(true, |tx| tx.database_bytes())
    }
}

/// Whether a connection idle for [`IDLE_PROBE`] or more turns out gone
/// (then dropped, for the caller to open a new one): an empty query
/// before the caller's transaction, so that a server restarted while the
/// mount was idle costs the next request nothing but a reconnect.
fn begin_fails(guard: &mut MutexGuard<'_, Option<Conn>>) -> bool {
    let Some(conn) = guard.as_mut() else {
        return false;
    };
    if conn.idle_since.elapsed() < IDLE_PROBE {
        return false;
    }
    let probe = conn.client.simple_query("");
    conn.idle_since = std::time::Instant::now();
    match probe {
        Ok(_) => false,
        Err(e) => {
            if connection_lost(&e) {
                log::warn!("the connection to the store was closed while idle");
                **guard = None;
                return true;
            }
            false
        }
    }
}

/// After a failed transaction: drops the connection if it is gone, so
/// that the next transaction opens a new one.
fn forget_if_gone(guard: &mut MutexGuard<'_, Option<Conn>>, failed: bool) {
    if failed && guard.as_ref().is_some_and(Conn::is_gone) {
        log::warn!("the connection to the store was lost");
        **guard = None;
    }
}

fn note_lost(lost: &Cell<bool>, e: &StoreError) {
    if let StoreError::Pg(e) = e {
        if connection_lost(e) {
            lost.set(true);
        }
    }
}

/// A read transaction is a read-only snapshot (REPEATABLE READ); a write
/// transaction runs at READ COMMITTED, the writers' lock (taken first)
/// making it the only writer of the volume while it runs.
fn start(client: &mut Client, read_only: bool) -> Result<postgres::Transaction<'_>, StoreError> {
    let b = client.build_transaction();
    let b = if read_only {
        b.isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
    } else {
        b
    };
    Ok(b.start()?)
}

/// Connects with TLS as the target's `sslmode` asks, and commits
/// without waiting for the server's disk unless a transaction asks
/// (`Durability::Durable`).
fn connect(target: &PgTarget) -> Result<Client, StoreError> {
    let tls = tls_connector(target)?;
    let mut client = target.connection_config()?.connect(tls)?;
    client.batch_execute("SET synchronous_commit = off")?;
    Ok(client)
}

fn tls_connector(target: &PgTarget) -> Result<MakeTlsConnector, StoreError> {
    let bad = |e: openssl::error::ErrorStack| StoreError::BadLocation(format!("TLS setup: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(bad)?;
    if let Some(ca) = target.root_cert() {
        b.set_ca_file(ca)
            .map_err(|e| StoreError::BadLocation(format!("sslrootcert {}: {e}", ca.display())))?;
    }
    // libpq's meanings: prefer and require encrypt without checking whom
    // they talk to, unless a root certificate is given (then as verify-ca).
    let verify = matches!(target.tls(), TlsMode::VerifyCa | TlsMode::VerifyFull)
        || target.root_cert().is_some();
    b.set_verify(if verify {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    let mut c = MakeTlsConnector::new(b.build());
    if target.tls() != TlsMode::VerifyFull {
        c.set_callback(|cfg, _| {
            cfg.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(c)
}

/// Takes the volume's session lock again on a new connection, waiting up
/// to [`RELOCK_WAIT`] for an exclusive holder (an older llmfs that got in
/// while this client was cut off) to go.
fn relock_volume(client: &mut Client, target: &PgTarget) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + RELOCK_WAIT;
    loop {
        match lock_volume(client, target) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Takes the volume's advisory lock, shared, for this session, or says who
/// holds it exclusively (an llmfs from before several mounts of one
/// volume).
fn lock_volume(client: &mut Client, target: &PgTarget) -> Result<(), StoreError> {
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema()))",
            &[&LOCK_CLASS],
        )?
        .get(0);
    if got {
        return Ok(());
    }
    let holder: Option<String> = client
        .query_opt(
            "SELECT a.application_name || ' on ' || COALESCE(host(a.client_addr), 'local socket') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock' \
             AND l.classid = $1::bigint::oid \
             AND l.objid::bigint = (hashtext(current_schema())::bigint & 4294967295) LIMIT 1",
            &[&i64::from(LOCK_CLASS)],
        )?
        .map(|r| r.get(0));
    Err(StoreError::Locked {
        store: target.to_string(),
        holder: holder.unwrap_or_else(|| "unknown client".into()),
    })
}
