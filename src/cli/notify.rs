//! systemd readiness notification (the sd_notify protocol, `Type=notify`).
//!
//! Every function here does nothing unless `NOTIFY_SOCKET` is set, i.e.
//! unless a service manager started this process and waits for it. The
//! variable is left in the environment: STOPPING=1 is sent later through the
//! same socket.

use std::path::Path;

use sd_notify::NotifyState;

/// Whether a service manager waits for notifications from this process.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
}

fn send(states: &[NotifyState]) {
    if !under_systemd() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("notifying the service manager: {e}");
    }
}

/// READY=1 once the mount is live (after the FUSE handshake). A detached
/// daemon also names itself as the main process: the process systemd started
/// exits as soon as the mount is up.
pub fn ready(mountpoint: &Path, store: &crate::store::StoreLocation, detached: bool) {
    let status = format!("Mounted {store} on {}", mountpoint.display());
    let mut states = vec![NotifyState::Ready, NotifyState::Status(&status)];
    if detached {
        states.push(NotifyState::MainPid(std::process::id()));
    }
    send(&states);
}

/// STOPPING=1 when the unmount starts (a signal, or an unmount from outside).
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A status line only (shown by `systemctl status`).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}
