//! Fresh stores of each backend, so that the store and filesystem suites
//! run the same test on SQLite and on PostgreSQL. PostgreSQL needs a
//! server: `LLMFS_TEST_PG` names a database the tests may create schemas
//! in (`.ci/postgres.sh` starts one and sets it, with the password in
//! `PGPASSFILE`); without it the PostgreSQL half of each test is skipped
//! with a line saying so, unless `LLMFS_REQUIRE_PG=1` makes that a failure.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use llmfs::store::{OpenOptions, Store, StoreError, StoreLocation, DB_FILE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store location no test has used: a directory in a temporary one, or
/// a schema of its own in the test database (dropped with it).
pub struct FreshStore {
    pub kind: Kind,
    pub location: StoreLocation,
    _tmp: tempfile::TempDir,
}

/// The test database's URL, or `None` (with a line on stderr) when the
/// PostgreSQL tests are to be skipped.
pub fn pg_url() -> Option<String> {
    match std::env::var("LLMFS_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let test = std::thread::current()
                .name()
                .unwrap_or("a test")
                .to_string();
            if std::env::var_os("LLMFS_REQUIRE_PG").is_some_and(|v| v == "1") {
                panic!("{test} needs PostgreSQL: LLMFS_TEST_PG is not set (LLMFS_REQUIRE_PG=1)");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped the PostgreSQL half of {test}: set LLMFS_TEST_PG=postgres://... \
                 (.ci/postgres.sh starts a server) to run it"
            );
            None
        }
    }
}

/// One fresh store of each backend this machine can run.
pub fn fresh_stores() -> Vec<FreshStore> {
    let mut out = vec![FreshStore::new(Kind::Sqlite)];
    if pg_url().is_some() {
        out.push(FreshStore::new(Kind::Postgres));
    }
    out
}

impl FreshStore {
    pub fn new(kind: Kind) -> FreshStore {
        FreshStore::with_params(kind, None)
    }

    /// A fresh PostgreSQL store on the test server whose URL has the
    /// parameters `params` (`sslmode=...&...`) instead of the test URL's.
    pub fn postgres_with(params: &str) -> FreshStore {
        FreshStore::with_params(Kind::Postgres, Some(params))
    }

    /// A fresh PostgreSQL store in the database `url` names (a server
    /// of the test's own).
    pub fn at_url(url: &str) -> FreshStore {
        FreshStore::in_database(Kind::Postgres, Some(url), None)
    }

    fn with_params(kind: Kind, params: Option<&str>) -> FreshStore {
        FreshStore::in_database(kind, None, params)
    }

    fn in_database(kind: Kind, url: Option<&str>, params: Option<&str>) -> FreshStore {
        static N: AtomicU32 = AtomicU32::new(0);
        let tmp = tempfile::tempdir().unwrap();
        let location = match kind {
            Kind::Sqlite => StoreLocation::Dir(tmp.path().join("store")),
            Kind::Postgres => {
                let url = match url {
                    Some(u) => u.to_string(),
                    None => std::env::var("LLMFS_TEST_PG").expect("LLMFS_TEST_PG"),
                };
                let schema = format!(
                    "t{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                let url = match params {
                    Some(p) => format!("{}?{p}", url.split('?').next().unwrap()),
                    None => url,
                };
                let sep = if url.contains('?') { '&' } else { '?' };
                StoreLocation::parse(format!("{url}{sep}schema={schema}").as_ref()).unwrap()
            }
        };
        FreshStore {
            kind,
            location,
            _tmp: tmp,
        }
    }

    pub fn open(&self, opts: &OpenOptions) -> Result<Store, StoreError> {
        Store::open_at(&self.location, opts)
    }

    pub fn create(&self, block_size: usize) -> Result<Store, StoreError> {
        self.open(&OpenOptions {
            create: true,
            block_size,
            read_only: false,
        })
    }

    pub fn open_read_only(&self) -> Result<Store, StoreError> {
        self.open(&OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        })
    }

    /// The store as the command line names it: its directory or URL.
    pub fn arg(&self) -> OsString {
        match &self.location {
            StoreLocation::Dir(d) => d.clone().into_os_string(),
            l => l.to_string().into(),
        }
    }

    /// A directory of this test's own (for mountpoints, files).
    pub fn scratch(&self) -> PathBuf {
        self._tmp.path().to_path_buf()
    }

    /// Runs SQL on the store's database behind llmfs's back (to make it
    /// look like an older or newer llmfs wrote it).
    pub fn sql(&self, sql: &str) {
        match &self.location {
            StoreLocation::Dir(d) => rusqlite::Connection::open(d.join(DB_FILE))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            StoreLocation::Postgres(t) => {
                let mut c = admin_client(t).unwrap();
                c.batch_execute(&format!("SET search_path TO {}; {sql}", t.schema()))
                    .unwrap();
            }
        }
    }

    /// The schema version the store records.
    pub fn schema_version(&self) -> u32 {
        match &self.location {
            StoreLocation::Dir(d) => rusqlite::Connection::open(d.join(DB_FILE))
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
            StoreLocation::Postgres(_) => {
                let v: i64 = self.pg_query_one("SELECT version FROM llmfs_schema");
                u32::try_from(v).unwrap()
            }
        }
    }

    /// A row of the `volume` table.
    pub fn volume_row(&self, key: &str) -> Option<String> {
        let sql = format!("SELECT value FROM volume WHERE key = '{key}'");
        match &self.location {
            StoreLocation::Dir(d) => {
                use rusqlite::OptionalExtension;
                rusqlite::Connection::open(d.join(DB_FILE))
                    .unwrap()
                    .query_row(&sql, [], |r| r.get(0))
                    .optional()
                    .unwrap()
            }
            StoreLocation::Postgres(_) => self.pg_query_one(&format!("SELECT ({sql})")),
        }
    }

    /// One value from the volume's PostgreSQL schema, behind llmfs's back.
    pub fn pg_query_one<T: for<'a> postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        let StoreLocation::Postgres(t) = &self.location else {
            unreachable!("a PostgreSQL store")
        };
        let mut c = admin_client(t).unwrap();
        c.batch_execute(&format!("SET search_path TO {}", t.schema()))
            .unwrap();
        c.query_one(sql, &[]).unwrap().get(0)
    }

    /// Takes the volume's session lock exclusively, as an llmfs from before
    /// several mounts of one volume did: the session holding it, or None
    /// while a read-write client (which holds it shared) has the volume.
    pub fn lock_as_older_llmfs(&self) -> Option<postgres::Client> {
        let StoreLocation::Postgres(t) = &self.location else {
            unreachable!("a PostgreSQL store")
        };
        let mut c = admin_client(t).unwrap();
        c.batch_execute(&format!("SET search_path TO {}", t.schema()))
            .unwrap();
        // `llmf`, the lock's first key; the second hashes the schema.
        let got: bool = c
            .query_one(
                "SELECT pg_try_advisory_lock(1819045222, hashtext(current_schema()))",
                &[],
            )
            .unwrap()
            .get(0);
        got.then_some(c)
    }

    /// Sets the schema version as an llmfs of that version would have.
    pub fn set_schema_version(&self, v: u32) {
        match self.kind {
            Kind::Sqlite => self.sql(&format!("PRAGMA user_version = {v}")),
            Kind::Postgres => self.sql(&format!("UPDATE llmfs_schema SET version = {v}")),
        }
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let StoreLocation::Postgres(t) = &self.location {
            if let Ok(mut c) = admin_client(t) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", t.schema()));
            }
        }
    }
}

/// A connection of the test's own to the store's database (without TLS:
/// the test server accepts both), to look behind llmfs's back.
pub fn admin_client(t: &llmfs::store::PgTarget) -> Result<postgres::Client, postgres::Error> {
    let mut config = t.connection_config().unwrap();
    config.ssl_mode(postgres::config::SslMode::Disable);
    config.application_name("llmfs-test-admin");
    config.connect(postgres::NoTls)
}
