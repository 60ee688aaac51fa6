//! A PostgreSQL store's address: the connection URL, the schema holding
//! the volume, the TLS settings, and where its password comes from. The
//! URL never holds the password: a command line is visible to every user
//! (`ps`) and the URL also appears in the mount table.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use postgres::config::{Host, SslMode};

use super::pgpass;
use crate::store::StoreError;

/// Parameters of the URL that llmfs reads itself (the driver does not know
/// them).
const SCHEMA_PARAM: &str = "schema";
const SSL_MODE_PARAM: &str = "sslmode";
const SSL_ROOT_CERT_PARAM: &str = "sslrootcert";

/// How TLS is used, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS if the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS or no connection; unverified unless `sslrootcert` is given.
    Require,
    /// TLS with the server's certificate verified against `sslrootcert`
    /// (or the system's roots), not its name.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(s: &str) -> Result<TlsMode, StoreError> {
        Ok(match s {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(StoreError::BadLocation(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

#[derive(Clone)]
pub struct PgTarget {
    /// The URL as given (it holds no password).
    url: String,
    config: postgres::Config,
    schema: String,
    tls: TlsMode,
    root_cert: Option<PathBuf>,
    password_file: Option<PathBuf>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

const NO_PASSWORD_IN_URL: &str = "the URL holds a password, which every user of this machine \
     can read (ps, the mount table); remove it and give it with --store-password-file FILE, \
     the PGPASSWORD environment variable or a password file (~/.pgpass, $PGPASSFILE)";

impl PgTarget {
    pub fn is_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    /// Parses `postgres://[user@]host[:port]/database[?param=value&...]`.
    /// Besides the driver's parameters: `schema` (the PostgreSQL schema
    /// holding the volume, default `public`: several volumes can share a
    /// database), `sslmode` (libpq's five modes) and `sslrootcert` (a PEM
    /// file of the certificates a server's must chain to). The user
    /// defaults to `$PGUSER`, then the login name; the host to `$PGHOST`,
    /// then the Unix socket in /var/run/postgresql.
    pub fn parse(url: &str) -> Result<PgTarget, StoreError> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut schema = "public".to_string();
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                SCHEMA_PARAM => schema = v.to_string(),
                SSL_MODE_PARAM => tls = TlsMode::parse(v)?,
                SSL_ROOT_CERT_PARAM => root_cert = Some(PathBuf::from(v)),
                "password" => return Err(StoreError::BadLocation(NO_PASSWORD_IN_URL.into())),
                _ => passed.push(pair),
            }
        }
        if !valid_schema_name(&schema) {
            return Err(StoreError::BadLocation(format!(
                "schema={schema}: a schema name is 1 to 63 lowercase letters, digits and \
                 underscores, not starting with a digit"
            )));
        }
        let driver_url = if passed.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = postgres::Config::from_str(&driver_url)
            .map_err(|e| StoreError::BadLocation(format!("{url}: {e}")))?;
        if config.get_password().is_some() {
            return Err(StoreError::BadLocation(NO_PASSWORD_IN_URL.into()));
        }
        if config.get_user().is_none() {
            config.user(&default_user()?);
        }
        if config.get_hosts().is_empty() {
            match std::env::var("PGHOST") {
                Ok(h) if !h.is_empty() => config.host(&h),
                _ => config.host_path("/var/run/postgresql"),
            };
        }
        if config.get_ports().is_empty() {
            if let Some(p) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok()) {
                config.port(p);
            }
        }
        if config.get_dbname().is_none() {
            return Err(StoreError::BadLocation(format!(
                "{url}: name the database (postgres://HOST/DATABASE)"
            )));
        }
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        // A server that stops answering (its host gone, the network cut
        // without a reset) must not hold a request forever: bounded
        // connects, and TCP keepalives and a send timeout that end a dead
        // connection within about half a minute, unless the URL says
        // otherwise.
        let given = |key: &str| passed.iter().any(|p| p.starts_with(&format!("{key}=")));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if !given("keepalives_idle") {
            config.keepalives_idle(std::time::Duration::from_secs(10));
        }
        if !given("keepalives_interval") {
            config.keepalives_interval(std::time::Duration::from_secs(5));
        }
        if !given("keepalives_retries") {
            config.keepalives_retries(3);
        }
        if !given("tcp_user_timeout") {
            config.tcp_user_timeout(std::time::Duration::from_secs(30));
        }
        if config.get_application_name().is_none() {
            config.application_name(&format!("llmfs (pid {})", std::process::id()));
        }
        Ok(PgTarget {
            url: url.to_string(),
            config,
            schema,
            tls,
            root_cert,
            password_file: None,
        })
    }

    /// Reads the password from `file` (its first line) instead of the
    /// environment or ~/.pgpass.
    pub fn with_password_file(mut self, file: &Path) -> PgTarget {
        self.password_file = Some(file.to_path_buf());
        self
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub(super) fn tls(&self) -> TlsMode {
        self.tls
    }

    pub(super) fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// The driver's configuration with the password filled in:
    /// `--store-password-file`, else `$PGPASSWORD`, else the password file.
    /// None found is no error: the server may not ask for one. (Public for
    /// tools and tests that talk to the volume's database themselves.)
    pub fn connection_config(&self) -> Result<postgres::Config, StoreError> {
        let mut config = self.config.clone();
        if let Some(file) = &self.password_file {
            config.password(read_password_file(file)?);
        } else if let Some(p) = std::env::var_os("PGPASSWORD") {
            config.password(p.as_encoded_bytes());
        } else if let Some(file) = pgpass::default_file() {
            let host = match self.config.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                // libpq matches a Unix socket as "localhost".
                _ => "localhost".to_string(),
            };
            let want = pgpass::Wanted {
                host: &host,
                port: self.config.get_ports().first().copied().unwrap_or(5432),
                database: self.config.get_dbname().unwrap_or_default(),
                user: self.config.get_user().unwrap_or_default(),
            };
            if let Some(p) = pgpass::lookup(&file, &want) {
                config.password(p);
            }
        }
        Ok(config)
    }
}

/// PostgreSQL's unquoted identifiers, so that the name needs no quoting.
fn valid_schema_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn default_user() -> Result<String, StoreError> {
    if let Ok(u) = std::env::var("PGUSER") {
        if !u.is_empty() {
            return Ok(u);
        }
    }
    // SAFETY: getpwuid returns a pointer to static storage or null; the
    // name is copied out at once.
    let name = unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.ok_or_else(|| {
        StoreError::BadLocation("no user in the URL, PGUSER unset and no login name".into())
    })
}

/// The first line of a password file that only its owner may read.
fn read_password_file(file: &Path) -> Result<Vec<u8>, StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file)
        .map_err(|e| StoreError::BadLocation(format!("password file {}: {e}", file.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::BadLocation(format!(
            "password file {} can be read by group or others; chmod 0600 it",
            file.display()
        )));
    }
    let text = std::fs::read(file)
        .map_err(|e| StoreError::BadLocation(format!("password file {}: {e}", file.display())))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused() {
        for url in [
            "postgres://u:secret@h/db",
            "postgres://u@h/db?password=secret",
        ] {
            let e = PgTarget::parse(url).unwrap_err().to_string();
            assert!(e.contains("--store-password-file"), "{url}: {e}");
            assert!(!e.contains("secret"), "the error repeats no password: {e}");
        }
    }

    #[test]
    fn llmfs_parameters_are_taken_out_of_the_url() {
        let t = PgTarget::parse(
            "postgresql://u@db.example:6543/vols?schema=photos&sslmode=verify-full\
             &sslrootcert=/etc/ca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(t.schema(), "photos");
        assert_eq!(t.tls(), TlsMode::VerifyFull);
        assert_eq!(t.root_cert(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(t.config.get_dbname(), Some("vols"));
        assert_eq!(t.config.get_ports(), [6543]);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
    }

    #[test]
    fn bad_parameters_are_refused_clearly() {
        for (url, says) in [
            ("postgres://u@h/db?schema=Bad-Name", "schema name"),
            ("postgres://u@h/db?sslmode=sometimes", "verify-full"),
            ("postgres://u@h", "name the database"),
            ("postgres://u@h/db?bogus=1", "bogus"),
        ] {
            let e = PgTarget::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
