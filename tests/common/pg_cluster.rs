//! A PostgreSQL cluster of one test's own, for tests that stop and start
//! the server (the shared one of .ci/postgres.sh must never stop): initdb
//! in a temporary directory as the postgres user (initdb refuses root),
//! on a port of its own on 127.0.0.1 and a socket in that directory,
//! trust authentication (it listens on loopback only and lives for one
//! test). Stopped (immediately) and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

use super::FreshStore;

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The newest installed server's binaries, if any.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn as_postgres(cmd: &mut Command) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(cmd.get_program());
    c.args(cmd.get_args());
    c
}

impl PgCluster {
    /// Starts a new cluster, or says why it cannot (no server installed,
    /// not root, no postgres user).
    pub fn start() -> Result<PgCluster, String> {
        let bin = server_bin().ok_or("no PostgreSQL server in /usr/lib/postgresql")?;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("starting a private cluster as the postgres user needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .arg("postgres:")
            .arg(dir.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("no postgres user to run the cluster as".into());
        }
        let port = 40_000 + (std::process::id() % 20_000) as u16;
        let c = PgCluster { dir, bin, port };
        let out = as_postgres(
            Command::new(c.bin.join("initdb"))
                .arg("-D")
                .arg(c.data())
                .args(["-U", "postgres", "-A", "trust"]),
        )
        .output()
        .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        c.start_server()?;
        let out = as_postgres(
            Command::new(c.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p"])
                .arg(c.port.to_string())
                .args(["-U", "postgres", "llmfs"]),
        )
        .output()
        .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let out = as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on",
                    self.port,
                    self.dir.path().display()
                ))
                .arg("start"),
        )
        .output()
        .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                self.log()
            ))
        }
    }

    /// Stops the server: `fast` (sessions are ended, a clean shutdown) or
    /// `immediate` (every server process quits at once: a crash, recovered
    /// from the log at the next start).
    pub fn stop_server(&self, mode: &str) {
        let out = as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-t", "60", "-m", mode, "stop"]),
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A fresh volume (its own schema) in this cluster's database.
    pub fn fresh_store(&self) -> FreshStore {
        FreshStore::at_url(&format!(
            "postgres://postgres@127.0.0.1:{}/llmfs?sslmode=disable",
            self.port
        ))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"]),
        )
        .output();
    }
}
