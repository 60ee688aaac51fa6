//! The neural codec through a real mount: synchronous mode, the background
//! archiver, and data surviving unmount and remount.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Mounted, BIN};

fn prose(n: usize) -> Vec<u8> {
    let base = fs::read("README.md").unwrap();
    base.iter().copied().cycle().take(n).collect()
}

fn stats_json(m: &Mounted) -> serde_json::Value {
    crate::common::stats_json(&m.path(""))
}

/// Blocks stored with `codec`, from `llmfs stats --json`.
fn blocks_of(json: &serde_json::Value, codec: &str) -> u64 {
    crate::common::codec_blocks(json, codec)
}

fn pending_raw(json: &serde_json::Value) -> u64 {
    json["pending"]["raw_bytes"]
        .as_u64()
        .expect("pending in stats")
}

/// Mount flags that archive every block at once, to the deep tier, in
/// small blocks (so a few KiB give several blocks).
const ARCHIVE_AT_ONCE: [&str; 6] = [
    "--archive-after",
    "0",
    "--deep-archive-after",
    "0",
    "--block-size",
    "4096",
];

/// Writes `data` to `name` and fsyncs it through a handle, so that its
/// blocks reach the store for the archiver.
fn write_synced(m: &Mounted, name: &str, data: &[u8]) {
    fs::write(m.path(name), data).unwrap();
    fs::File::open(m.path(name)).unwrap().sync_all().unwrap();
}

/// Waits until the archiver has coded every pending block, some with the model.
fn wait_for_llm_archive(m: &Mounted) {
    wait_for(m, "archiver did not finish", |json| {
        pending_raw(json) == 0 && blocks_of(json, "llm") > 0
    });
}

#[test]
fn sync_mode_stores_prose_with_the_model_across_remounts() {
    require_fuse!();
    let mut m = Mounted::new(&["--compress", "sync", "--block-size", "4096"]);
    let data = prose(40_000);
    fs::write(m.path("prose.txt"), &data).unwrap();
    m.unmount();
    m.mount(&["--compress", "sync"]);
    assert!(fs::read(m.path("prose.txt")).unwrap() == data);
    let json = stats_json(&m);
    assert!(blocks_of(&json, "llm") > 0, "no llm blocks: {json}");
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

#[test]
fn background_archiver_reencodes_cold_blocks() {
    require_fuse!();
    let mut m = Mounted::new(&ARCHIVE_AT_ONCE);
    let data = prose(30_000);
    write_synced(&m, "later.txt", &data);
    wait_for_llm_archive(&m);
    m.unmount();
    m.mount(&[]);
    assert!(fs::read(m.path("later.txt")).unwrap() == data);
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

/// Waits until `done` holds for the volume's stats.
fn wait_for(m: &Mounted, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let json = stats_json(m);
        if done(&json) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {json}\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn tier_raw(json: &serde_json::Value, tier: &str) -> u64 {
    json[tier]["raw_bytes"].as_u64().expect("tier in stats")
}

#[test]
fn archive_tier_then_deep_tier_through_a_mount() {
    require_fuse!();
    // Deep tier never: cold blocks get the model-free archival codecs only.
    let mut m = Mounted::new(&[
        "--archive-after",
        "0",
        "--deep-archive-after",
        "never",
        "--block-size",
        "4096",
    ]);
    let data = prose(30_000);
    write_synced(&m, "tiers.txt", &data);
    wait_for(&m, "archive tier did not finish", |json| {
        pending_raw(json) == 0 && tier_raw(json, "archive_tier") > 0
    });
    let json = stats_json(&m);
    assert_eq!(blocks_of(&json, "llm"), 0, "{json}");
    assert_eq!(tier_raw(&json, "deep_tier"), 0, "{json}");
    assert!(fs::read(m.path("tiers.txt")).unwrap() == data);
    m.unmount();
    // The same ages as mount options: the deep tier takes what the archive
    // tier holds.
    m.mount(&["-o", "archive_after=0,deep_archive_after=0"]);
    wait_for(&m, "deep tier did not finish", |json| {
        tier_raw(json, "archive_tier") == 0 && blocks_of(json, "llm") > 0
    });
    let json = stats_json(&m);
    assert_eq!(tier_raw(&json, "deep_tier"), data.len() as u64, "{json}");
    assert!(fs::read(m.path("tiers.txt")).unwrap() == data);
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

#[test]
fn offline_archive_command_reencodes_an_unmounted_store() {
    require_fuse!();
    let mut m = Mounted::new(&["--compress", "off", "--block-size", "4096"]);
    let data = prose(24_000);
    fs::write(m.path("doc.txt"), &data).unwrap();
    let mounted = Command::new(BIN)
        .arg("archive")
        .arg(&m.store)
        .output()
        .unwrap();
    assert!(
        !mounted.status.success(),
        "archive must refuse a mounted store"
    );
    m.unmount();
    // The archive tier first: no model, the data still reads back.
    let out = Command::new(BIN)
        .args(["archive", "--tier", "archive"])
        .arg(&m.store)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("archived 6 blocks") && text.contains("to the archive tier"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["archive", "--tier", "coldest"])
        .arg(&m.store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tier"));
    let out = Command::new(BIN)
        .arg("archive")
        .arg(&m.store)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("archived 6 blocks"), "{text}");
    m.mount(&[]);
    let json = stats_json(&m);
    assert_eq!(pending_raw(&json), 0, "{json}");
    assert!(blocks_of(&json, "llm") > 0, "{json}");
    assert!(fs::read(m.path("doc.txt")).unwrap() == data);
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

/// Flips one byte of the stored model (or deletes it) behind llmfs's back.
fn tamper_model(store: &std::path::Path, delete: bool) {
    let db = rusqlite::Connection::open(store.join(llmfs::store::DB_FILE)).unwrap();
    if delete {
        db.execute("DELETE FROM models", []).unwrap();
        return;
    }
    let mut onnx: Vec<u8> = db
        .query_row("SELECT onnx FROM models", [], |r| r.get(0))
        .unwrap();
    let at = onnx.len() / 2;
    onnx[at] ^= 0x01;
    db.execute("UPDATE models SET onnx = ?1", [onnx]).unwrap();
}

#[test]
fn an_altered_or_missing_model_is_detected_before_any_llm_block_is_decoded() {
    require_fuse!();
    for delete in [false, true] {
        let mut m = Mounted::new(&["--compress", "sync", "--block-size", "4096"]);
        let data = prose(12_000);
        fs::write(m.path("p.txt"), &data).unwrap();
        fs::write(m.path("small"), b"tiny").unwrap();
        m.unmount();
        tamper_model(&m.store, delete);
        // The volume still mounts and serves what is not llm-coded...
        m.mount(&[]);
        assert_eq!(fs::read(m.path("small")).unwrap(), b"tiny");
        // ...and the llm blocks are EIO, with the reason in the log.
        let err = fs::read(m.path("p.txt")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        let log = m.log_text();
        let reason = if delete {
            "is needed to decode this data but is not available"
        } else {
            "is damaged (checksum mismatch)"
        };
        assert!(log.contains(reason), "{log}");
        m.unmount();
        let (ok, out) = m.fsck();
        assert!(!ok && out.contains(reason), "{out}");
    }
}

/// A new volume's --model is the model every engine codes with (reads,
/// read-ahead and the archiver), and the one the volume records.
#[test]
fn a_new_volume_codes_with_the_model_it_was_given() {
    require_fuse!();
    let dir = tempfile::tempdir().unwrap();
    let mut model = fs::read("models/float-d192l3/model.onnx").unwrap();
    let at = model.len() / 2;
    model[at] ^= 0x01; // another model: one float weight differs
    let path = dir.path().join("other.onnx");
    fs::write(&path, &model).unwrap();
    let sha = llmfs::model::hex(&llmfs::model::sha256(&model));
    let mut args = vec!["--model", path.to_str().unwrap()];
    args.extend(ARCHIVE_AT_ONCE);
    let mut m = Mounted::new(&args);
    let data = prose(16_000);
    write_synced(&m, "given.txt", &data);
    wait_for_llm_archive(&m);
    let json = stats_json(&m);
    assert!(
        json["model"] == sha.as_str(),
        "volume must record the given model: {json}"
    );
    // Read back through the same mount (its reader engine runs that model).
    assert!(fs::read(m.path("given.txt")).unwrap() == data);
    m.unmount();
}

#[test]
fn the_archiver_primes_cm_blocks_with_a_volume_dictionary_across_remounts() {
    require_fuse!();
    // Written with the archiver off, so its first pass sees every block.
    let mut m = Mounted::new(&["--compress", "off", "--block-size", "4096"]);
    let logs: Vec<Vec<u8>> = (0..2)
        .map(|i| crate::common::log_lines(20 * 4096 + 777 * i, i as u64 + 7))
        .collect();
    for (i, data) in logs.iter().enumerate() {
        fs::write(m.path(&format!("app{i}.log")), data).unwrap();
    }
    m.unmount();
    m.mount(&["--archive-after", "0", "--deep-archive-after", "never"]);
    wait_for(&m, "archive tier did not finish", |json| {
        pending_raw(json) == 0
            && json["dictionaries"]
                .as_array()
                .is_some_and(|d| d.len() == 1)
    });
    let json = stats_json(&m);
    let dict = &json["dictionaries"][0];
    assert_eq!(dict["current"], true, "{json}");
    assert!(dict["stored_bytes"].as_u64().unwrap() < dict["raw_bytes"].as_u64().unwrap() / 2);
    assert!(blocks_of(&json, "cm") > 0, "{json}");
    // Read back by the daemon that built the dictionary, then by a fresh
    // one that loads it from the volume.
    for (i, data) in logs.iter().enumerate() {
        assert!(fs::read(m.path(&format!("app{i}.log"))).unwrap() == *data);
    }
    m.unmount();
    m.mount(&[]);
    for (i, data) in logs.iter().enumerate() {
        assert!(fs::read(m.path(&format!("app{i}.log"))).unwrap() == *data);
    }
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}

/// `head -c 4096` of a cold deep-tier block through a mount with
/// `--early-reads`: the right bytes, answered from the block's decoded
/// prefix (the kernel's first request, 16 KiB, is the first wave); reads at
/// other offsets (the rest of the block, the next block, across both) and
/// the whole file read back exactly, and fsck is clean after.
#[test]
fn early_reads_of_a_cold_llm_block_return_the_right_bytes() {
    use std::io::{Read, Seek, SeekFrom};
    require_fuse!();
    // Two waves (of 16 KiB) per 32 KiB block.
    let mut m = Mounted::new(&["--compress", "off", "--block-size", "32768"]);
    let data = prose(40_000);
    fs::write(m.path("cold.txt"), &data).unwrap();
    m.unmount();
    let out = Command::new(BIN)
        .args(["archive", "--tier", "deep"])
        .arg(&m.store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    m.mount(&["--early-reads"]);
    let json = stats_json(&m);
    assert_eq!(blocks_of(&json, "llm"), 2, "{json}");
    let mut f = fs::File::open(m.path("cold.txt")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert!(head == data[..4096]);
    drop(f);
    assert!(
        m.log_text().contains("answered from the decoded prefix"),
        "the first read waited for the whole block: {}",
        m.log_text()
    );
    for (off, len) in [(20_000usize, 4096usize), (33_000, 3000), (30_000, 6000)] {
        let mut g = fs::File::open(m.path("cold.txt")).unwrap();
        g.seek(SeekFrom::Start(off as u64)).unwrap();
        let mut got = vec![0u8; len];
        g.read_exact(&mut got).unwrap();
        assert!(got == data[off..off + len], "{off}+{len}");
    }
    assert!(fs::read(m.path("cold.txt")).unwrap() == data);
    m.unmount();
    let (ok, out) = m.fsck();
    assert!(ok, "{out}");
}
