//! Where stores live by default.

use std::path::{Path, PathBuf};

use super::error::CliError;

/// The default store of a mountpoint: `/var/lib/llmfs/<name>` for root,
/// `$XDG_DATA_HOME/llmfs/<name>` (or `~/.local/share/llmfs/<name>`) for
/// others, where `<name>` is the absolute mountpoint path with '/' turned
/// into '-' (as systemd names mount units).
pub fn default_store_for(mountpoint: &Path) -> Result<PathBuf, CliError> {
    let name = escape(mountpoint);
    // SAFETY: geteuid cannot fail.
    let base = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/lib/llmfs")
    } else if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("llmfs")
    } else if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(home).join(".local/share/llmfs")
    } else {
        return Err(CliError::usage(
            "cannot choose a default store: HOME is not set; pass --store DIR",
        ));
    };
    Ok(base.join(name))
}

fn escape(mountpoint: &Path) -> String {
    let s = mountpoint.to_string_lossy();
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return "root".into();
    }
    trimmed
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_mountpoints() {
        assert_eq!(escape(Path::new("/data")), "data");
        assert_eq!(escape(Path::new("/mnt/a/b/")), "mnt-a-b");
        assert_eq!(escape(Path::new("/")), "root");
    }
}
