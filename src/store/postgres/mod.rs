//! The PostgreSQL backend: a volume's tables in one schema of a database
//! on a server (docs/FORMAT.md, "PostgreSQL store"). One connection serves
//! the store's transactions in turn, as SQLite's one connection does. A
//! session-level advisory lock keeps a second read-write open of the same
//! volume out; archive workers open it beside that writer without the lock
//! and change only block encodings, under the swap rule and their claims
//! (docs/DESIGN.md, "Archive workers"). A lost connection is reopened (and
//! the lock taken again) at the next transaction, the one it broke having
//! failed.

mod meta;
mod migrate;
mod pgpass;
mod target;

use std::sync::{Mutex, MutexGuard};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::{Client, IsolationLevel};
use postgres_openssl::MakeTlsConnector;

use super::setup::{check_features, check_readable_version, initialise_volume, read_block_size};
use super::tx::{BackendTx, ReadTx, WriteTx};
use super::{Durability, OpenOptions, StoreError};
use meta::{PgTx, StatementCache};
pub use migrate::PG_TABLES_VERSION;
pub use target::{PgTarget, TlsMode};

/// The first key of the advisory lock (`llmf`); the second is a hash of
/// the volume's schema name.
const LOCK_CLASS: i32 = 0x6c6c_6d66;

#[derive(Debug)]
pub(super) struct PgStore {
    target: PgTarget,
    read_only: bool,
    /// Holds the volume's writer lock (a mount or an offline pass); an
    /// archive worker does not.
    exclusive: bool,
    conn: Mutex<Option<Conn>>,
}

/// A live connection and the statements prepared on it.
struct Conn {
    client: Client,
    stmts: StatementCache,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens the volume at `target`; returns it with its block size. Not
    /// `exclusive` (an archive worker): takes no writer lock, migrates
    /// nothing and raises no version on open.
    pub(super) fn open(
        target: &PgTarget,
        opts: &OpenOptions,
        exclusive: bool,
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
        if opts.read_only || !exclusive {
            check_readable_version(migrate::schema_version(&mut client)?)?;
        } else {
            lock_volume(&mut client, target)?;
            migrate::migrate(&mut client)?;
        }
        if !opts.read_only {
            migrate::ensure_claims_tables(&mut client)?;
        }
        let mut conn = Conn {
            client,
            stmts: StatementCache::new(),
        };
        let block_size = {
            let tx = PgTx::new(start(&mut conn.client, opts.read_only)?, &mut conn.stmts);
            check_features(&tx, opts.read_only || !exclusive)?;
            let bs = if opts.read_only || !exclusive {
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
            exclusive,
            conn: Mutex::new(Some(conn)),
        };
        Ok((store, block_size))
    }

    /// The connection, reopened first if the last one was lost (the
    /// server restarted, the network broke).
    fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>, StoreError> {
        // A panic while holding the lock leaves at worst a transaction
        // that rolls back: the lock is still usable.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = None;
            log::warn!("reconnecting to the store {}", self.target);
            let mut client = connect(&self.target)?;
            client.batch_execute(&format!("SET search_path TO {}", self.target.schema()))?;
            if !self.read_only && self.exclusive {
                lock_volume(&mut client, &self.target)?;
            }
            *guard = Some(Conn {
                client,
                stmts: StatementCache::new(),
            });
        }
        Ok(guard)
    }

    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.conn()?;
        let conn = guard.as_mut().expect("conn() connects");
        let tx = PgTx::new(start(&mut conn.client, true)?, &mut conn.stmts);
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.conn()?;
        let conn = guard.as_mut().expect("conn() connects");
        let tx = PgTx::new(start(&mut conn.client, false)?, &mut conn.stmts);
        let out = f(&tx)?;
        if durability == Durability::Durable {
            // The server flushes its log up to this commit before
            // answering, and with it every earlier commit; the bump makes
            // sure the transaction writes, so that it has a commit record
            // to wait for.
            tx.batch("SET LOCAL synchronous_commit = on")?;
            tx.bump_sync_generation()?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Bytes the volume's tables take on the server.
    pub(super) fn database_bytes(&self) -> Result<u64, StoreError> {
        let mut guard = self.conn()?;
        let conn = guard.as_mut().expect("conn() connects");
        let n: i64 = conn
            .client
            .query_one(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A read transaction is a read-only snapshot (REPEATABLE READ); a write
/// transaction runs at READ COMMITTED, the volume lock making it the only
/// writer.
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

/// Takes the volume's advisory lock for this session, or says who holds it.
fn lock_volume(client: &mut Client, target: &PgTarget) -> Result<(), StoreError> {
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
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
             WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid \
             AND l.objid::bigint = (hashtext(current_schema())::bigint & 4294967295) LIMIT 1",
            &[&i64::from(LOCK_CLASS)],
        )?
        .map(|r| r.get(0));
    Err(StoreError::Locked {
        store: target.to_string(),
        holder: holder.unwrap_or_else(|| "unknown client".into()),
    })
}
