//! What a crash may lose now that the SQLite store batches the commits of
//! operations that were not fsynced (docs/DESIGN.md, "Durability"): the
//! daemon is killed with SIGKILL right after a burst of operations, some
//! fsynced and some not. After the remount every fsynced file is there
//! with its content, fsck finds nothing wrong, and of the rest what
//! survives is every operation up to some point: a file that survived
//! means every file created before it survived whole.

use std::fs::{self, File};
use std::io::Write;

use crate::common::{text, Mounted};

/// Creates `name` with `data`, fsyncing it (and its directory) if `sync`.
fn put(m: &Mounted, name: &str, data: &[u8], sync: bool) {
    let mut f = File::create(m.path(name)).unwrap();
    f.write_all(data).unwrap();
    if sync {
        f.sync_all().unwrap();
        let dir = m.path(name).parent().unwrap().to_path_buf();
        File::open(dir).unwrap().sync_all().unwrap();
    }
}

#[test]
fn sigkill_keeps_every_fsynced_change_and_a_prefix_of_the_rest() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    fs::create_dir(m.path("synced")).unwrap();
    fs::create_dir(m.path("loose")).unwrap();
    let content = |i: usize| text(100 + i * 37, i as u64);

    // Fsynced files, each after unsynced work that its fsync commits too
    // (the batch before it), and one renamed before its fsync.
    for i in 0..40 {
        put(&m, &format!("loose/pre{i}"), &content(i), false);
        put(&m, &format!("synced/f{i}"), &content(i), true);
    }
    fs::rename(m.path("synced/f0"), m.path("synced/renamed")).unwrap();
    File::open(m.path("synced/renamed"))
        .unwrap()
        .sync_all()
        .unwrap();
    // Then operations nothing syncs; the kill comes at once, inside the
    // window they may still be in.
    let loose = 200;
    for i in 0..loose {
        put(&m, &format!("loose/f{i}"), &content(i), false);
    }
    m.crash();

    let (ok, report) = m.fsck();
    assert!(ok, "fsck after SIGKILL:\n{report}");
    m.mount(&[]);
    assert_eq!(fs::read(m.path("synced/renamed")).unwrap(), content(0));
    assert!(!m.path("synced/f0").exists());
    for i in 1..40 {
        let name = format!("synced/f{i}");
        assert_eq!(fs::read(m.path(&name)).unwrap(), content(i), "{name}");
    }
    // Everything before the last fsync was committed with it.
    for i in 0..40 {
        let name = format!("loose/pre{i}");
        assert_eq!(fs::read(m.path(&name)).unwrap(), content(i), "{name}");
    }
    // The unsynced files: a prefix survived. The last one present may
    // have lost its data (its create committed, its close not); every one
    // before it is whole.
    let present: Vec<bool> = (0..loose)
        .map(|i| m.path(&format!("loose/f{i}")).exists())
        .collect();
    let survived = present.iter().take_while(|&&p| p).count();
    assert!(
        present[survived..].iter().all(|&p| !p),
        "files survived after a lost one: {present:?}"
    );
    for i in 0..survived {
        let got = fs::read(m.path(&format!("loose/f{i}"))).unwrap();
        if i + 1 < survived {
            assert_eq!(got, content(i), "loose/f{i}");
        } else {
            assert!(
                got.is_empty() || got == content(i),
                "loose/f{i}: {} bytes, neither empty nor its content",
                got.len()
            );
        }
    }
    eprintln!("after SIGKILL: {survived} of {loose} unsynced files survived");
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "final fsck:\n{report}");
}
