//! The store lock: an exclusive `flock` on `<store>/lock`, held for as long as
//! a process has the store open for writing, so two mounts never share a
//! SQLite store. A PostgreSQL mount holds one in its mountpoint's state
//! directory (for `llmfs umount` to wait on); the volume itself admits
//! several mounts (docs/DESIGN.md, "Several mounts of one volume").

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::StoreError;

pub const LOCK_FILE: &str = "lock";

/// Longest wait for a lock that this process itself holds (see `acquire`).
const OWN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn acquire(dir: &Path) -> Result<StoreLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let start = std::time::Instant::now();
        loop {
            // SAFETY: flock on a valid, owned descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(StoreError::io(format!("locking {}", path.display()), err));
            }
            let mut holder = String::new();
            let _ = file.seek(SeekFrom::Start(0));
            let _ = file.read_to_string(&mut holder);
            // A holder that is this very process has just closed the store
            // or is about to: a process another thread of it forked holds
            // a copy of the lock's descriptor until it execs. Worth a
            // moment's wait, unlike another process's lock.
            let ours = holder.trim() == std::process::id().to_string();
            if ours && start.elapsed() < OWN_LOCK_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let holder = match holder.trim() {
                "" => "unknown pid".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(StoreError::Locked {
                store: dir.display().to_string(),
                holder,
            });
        }
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        Ok(StoreLock { _file: file })
    }

    /// Waits up to `timeout` for whoever holds the lock to release it.
    /// Returns true once it is free. Used by `llmfs umount` to wait for the
    /// daemon to finish flushing.
    pub fn wait_free(dir: &Path, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
            return true;
        };
        loop {
            // SAFETY: flock on a valid, owned descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
            if rc == 0 {
                // SAFETY: as above.
                unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
