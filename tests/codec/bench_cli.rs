//! `llmfs bench` on a small generated file: the command runs, its JSON has
//! the fields the committed results rely on, and every codec round-trips
//! (the command fails if a decode differs). Kept small: the model is slow.

use std::process::Command;

fn llmfs() -> Command {
    Command::new(crate::common::BIN)
}

/// Two 4 KiB blocks of English-like text.
fn text() -> Vec<u8> {
    let words = [
        "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then",
        "sleeps", "under", "old", "tree", "while", "rain", "falls",
    ];
    let mut out = Vec::new();
    let mut x = 12345u32;
    while out.len() < 8192 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        out.push(if (x >> 8) % 11 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(8192);
    out
}

#[test]
fn bench_json_on_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.txt");
    std::fs::write(&file, text()).unwrap();
    let prefix = dir.path().join("res");
    let out = llmfs()
        .args([
            "bench",
            "--block-size",
            "4096",
            "--workers",
            "2",
            "--json",
            "--out",
        ])
        .arg(&prefix)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same JSON went to PREFIX.json, and markdown to PREFIX.md.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.with_extension("json")).unwrap()).unwrap();
    assert_eq!(saved, v);
    let md = std::fs::read_to_string(prefix.with_extension("md")).unwrap();
    assert!(md.contains("| small.txt | 8192 |"), "{md}");

    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(v["settings"]["block_size"], 4096);
    assert_eq!(v["settings"]["workers"], 2);
    assert_eq!(v["settings"]["model_sha256"].as_str().unwrap().len(), 64);
    let names: Vec<&str> = v["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "llmfs",
            "llm",
            "cm",
            "zstd-3",
            "zstd-19",
            "xz-9e",
            "gzip-9",
            "brotli-11"
        ]
    );
    assert_eq!(v["tool"], "llmfs bench");
    // Only the classical compressors name a command-line setting.
    assert!(
        v["codecs"][0].get("setting").is_none(),
        "{}",
        v["codecs"][0]
    );
    assert_eq!(v["codecs"][3]["setting"], "zstd -3");
    // One file, not one of the corpus's text files: one group of totals.
    let groups: Vec<&String> = v["totals"].as_object().unwrap().keys().collect();
    assert_eq!(groups, ["all_files"]);
    let f = &v["files"][0];
    assert_eq!(f["name"], "small.txt");
    assert_eq!(f["text"], false);
    assert_eq!(f["on_model_blocks"]["raw_bytes"], 8192);
    assert_eq!(f["blocks"], 2);
    assert_eq!(f["model_blocks"], serde_json::json!([0, 1]));
    let choice = &f["llmfs_choice"];
    // Every block is counted under the codec the archival choice kept.
    for codec in ["llm", "cm", "lzma", "zstd", "raw"] {
        assert!(choice[codec].is_u64(), "{codec} missing: {choice}");
    }
    let chosen: u64 = choice
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(chosen, 2, "{choice}");
    let results = &v["totals"]["all_files"]["results"];
    for name in [
        "llmfs",
        "llm",
        "cm",
        "zstd-3/block",
        "xz-9e/block",
        "xz-9e/file",
        "gzip-9/file",
        "brotli-11/block",
    ] {
        let r = &results[name];
        assert_eq!(r["verified"], true, "{name}");
        assert_eq!(r["raw_bytes"], 8192, "{name}");
        let bpb = r["bits_per_byte"].as_f64().unwrap();
        assert!(bpb > 0.5 && bpb < 8.0, "{name}: {bpb}");
        assert!(r["encode_kb_s"].as_f64().unwrap() > 0.0, "{name}");
        assert!(r["decode_kb_s"].as_f64().unwrap() > 0.0, "{name}");
    }
    // llmfs keeps the smallest per block: never worse than zstd -19 per
    // block beyond the record headers.
    let stored = |n: &str| results[n]["stored_bytes"].as_u64().unwrap();
    assert!(stored("llmfs") <= stored("zstd-19/block") + 2 * 20);
    let ratio = v["totals"]["all_files"]["llm_decode_over_full_pass"]
        .as_f64()
        .unwrap();
    // A timing ratio: only its presence and sign are checked, never its
    // size (timings move several-fold on a loaded machine).
    assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
}

#[test]
fn bench_flags_are_checked() {
    let out = llmfs()
        .args(["bench", "--codecs", "xz", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown codec \"xz\""), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.bin");
    std::fs::write(&file, b"data").unwrap();
    let out = llmfs()
        .args(["bench", "--only-text", "--codecs", "zstd-3"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("text files"));

    // Classical codecs alone need no model.
    let out = llmfs()
        .args(["bench", "--codecs", "zstd-3,gzip-9", "--markdown"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| notes.bin | 4 |"));
}
