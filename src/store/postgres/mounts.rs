//! This client's row in the volume's `mounts` table (migrations/postgres/
//! mounts.sql): every read-write open of a PostgreSQL volume registers
//! under a name no other process has, and a heartbeat thread, on a
//! connection of its own, renews the row every few seconds until the store
//! is dropped, then removes it with the client's holds. Another client's
//! reclaim of unlinked inodes leaves alone the inodes held by clients
//! whose row was renewed within [`STALE_AFTER`] (docs/DESIGN.md, "Several
//! mounts of one volume").

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;

use super::target::PgTarget;
use super::StoreError;

/// How often a live client renews its row.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A client whose row was not renewed for this long is taken for dead:
/// six missed heartbeats, so that a server restart or a slow network does
/// not cost a live mount its holds.
pub(super) const STALE_AFTER_SQL: &str = "interval '30 seconds'";

/// This host's name, for the names of mounts and archive workers.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A registered client: its name, and the heartbeat that keeps its row
/// fresh. Dropping it stops the heartbeat, which removes the row and the
/// client's holds.
#[derive(Debug)]
pub(super) struct Registration {
    name: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Registration {
    /// Registers this process on `client` (whose search path is the
    /// volume's schema) and starts its heartbeat.
    pub(super) fn new(client: &mut Client, target: &PgTarget) -> Result<Registration, StoreError> {
        let name = format!(
            "{}:{}:{}",
            host_name(),
            std::process::id(),
            crate::time::now_ns()
        );
        renew(client, &name)?;
        let (stop, stopped) = mpsc::channel();
        let target = target.clone();
        let beat_name = name.clone();
        let thread = std::thread::Builder::new()
            .name("llmfs-heartbeat".into())
            .spawn(move || heartbeat(&target, &beat_name, &stopped))
            .map_err(|e| StoreError::io("starting the mount's heartbeat thread", e))?;
        Ok(Registration {
            name,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Inserts or renews the row of client `name`. A row another client
/// removed (it took this one for dead while the server was unreachable)
/// comes back; the holds removed with it do not (docs/DESIGN.md).
fn renew(client: &mut Client, name: &str) -> Result<(), StoreError> {
    client.execute(
        "INSERT INTO mounts(name, host, pid, started, seen) VALUES ($1, $2, $3, now(), now()) \
         ON CONFLICT (name) DO UPDATE SET seen = now()",
        &[&name, &host_name(), &i64::from(std::process::id())],
    )?;
    Ok(())
}

/// The heartbeat thread: renews the row every [`HEARTBEAT`] until the
/// registration is dropped, then removes it and its holds. A failed
/// renewal is logged and the connection opened again at the next beat.
fn heartbeat(target: &PgTarget, name: &str, stopped: &mpsc::Receiver<()>) {
    let mut client: Option<Client> = None;
    loop {
        let leaving = match stopped.recv_timeout(HEARTBEAT) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let result = beat(&mut client, target, name, leaving);
        if let Err(e) = result {
            log::warn!("the mount's heartbeat to {target} failed: {e}");
            client = None;
        }
        if leaving {
            return;
        }
    }
}

fn beat(
    client: &mut Option<Client>,
    target: &PgTarget,
    name: &str,
    leaving: bool,
) -> Result<(), StoreError> {
    if client.as_ref().is_none_or(Client::is_closed) {
        let mut c = super::connect(target)?;
        c.batch_execute(&format!("SET search_path TO {}", target.schema()))?;
        *client = Some(c);
    }
    let c = client.as_mut().expect("connected above");
    if !leaving {
        return renew(c, name);
    }
    let mut tx = c.transaction()?;
    tx.execute("DELETE FROM inode_holds WHERE mount = $1", &[&name])?;
    tx.execute("DELETE FROM mounts WHERE name = $1", &[&name])?;
    tx.commit()?;
    Ok(())
}
