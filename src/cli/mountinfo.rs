//! Finding a mounted volume's store from /proc/self/mountinfo.

use std::path::{Path, PathBuf};

use crate::store::StoreLocation;

/// The filesystem type llmfs mounts show in mount tables. A direct mount(2)
/// by root shows plain "fuse"; the source column is the store directory.
pub const FS_TYPE: &str = "fuse.llmfs";

/// Undoes the octal escapes (`\040` for space, ...) of mountinfo fields.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// If `mountpoint` is an llmfs mount, the store it serves: the mount's
/// source is the store directory, or the URL of a PostgreSQL store.
pub fn store_of_mountpoint(mountpoint: &Path) -> Option<StoreLocation> {
    let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in text.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mp = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let fstype = r.next()?;
        let source = r.next()?;
        let source = unescape(source);
        let fuse = fstype == FS_TYPE || fstype == "fuse";
        let location = if !fuse {
            None
        } else if StoreLocation::is_postgres(source.as_ref()) {
            StoreLocation::parse(source.as_ref()).ok()
        } else {
            let dir = PathBuf::from(source);
            dir.join(crate::store::DB_FILE)
                .exists()
                .then_some(StoreLocation::Dir(dir))
        };
        if location.is_some() && Path::new(&unescape(mp)) == canon {
            // The last matching line is the mount on top.
            found = location;
        }
    }
    found
}

/// The device number (`major:minor`) of the filesystem mounted on
/// `mountpoint`, an absolute path with no symlinks in it, from the last
/// (topmost) mount there. Reads only /proc: nothing asks the mount itself,
/// which may not serve yet.
pub fn device_of_mountpoint(mountpoint: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    device_in(&text, mountpoint)
}

fn device_in(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    // `id parent major:minor root mountpoint ...`
    mountinfo.lines().rev().find_map(|line| {
        let mut f = line.split(' ');
        let device = f.nth(2)?;
        let mp = f.nth(1)?;
        (Path::new(&unescape(mp)) == mountpoint).then(|| device.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
    }

    #[test]
    fn finds_the_topmost_mounts_device() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    40 22 0:43 / /data\\040x rw - fuse.llmfs /s rw\n\
                    41 40 0:44 / /data\\040x rw - fuse.llmfs /t rw\n";
        assert_eq!(
            device_in(info, Path::new("/data x")).as_deref(),
            Some("0:44")
        );
        assert_eq!(device_in(info, Path::new("/")).as_deref(), Some("8:1"));
        assert_eq!(device_in(info, Path::new("/data")), None);
    }
}
