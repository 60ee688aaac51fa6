//! `llmfs compress` / `llmfs decompress` through the binary: the classical
//! archival choice (`--codec classic`: lzma, zstd -19 or raw per block) on
//! a file that mixes a spreadsheet-like table, text and noise; `auto` never
//! stores more than it; both decompress to the input.

use std::path::Path;
use std::process::Command;

fn llmfs() -> Command {
    Command::new(crate::common::BIN)
}

/// Four 64 KiB blocks: a table of little-endian records (LZMA2 wins), text
/// (zstd and LZMA2 close), noise (raw), a table again.
fn mixed() -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = 12345u32;
    let mut table = |out: &mut Vec<u8>| {
        let end = out.len() + 65536;
        while out.len() < end {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(&(x >> 20).to_le_bytes());
            out.extend_from_slice(&[0, 0, (x >> 8) as u8 & 3, 0x40, 0, 0, 0xf0, 0x3f]);
        }
        out.truncate(end);
    };
    table(&mut out);
    let words = [
        "the", "archive", "keeps", "every", "block", "it", "was", "given",
    ];
    let mut y = 7u64;
    while out.len() < 2 * 65536 {
        y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        out.extend_from_slice(words[(y >> 33) as usize % words.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(2 * 65536);
    let mut z = 0x2545_f491_4f6c_dd1du64;
    while out.len() < 3 * 65536 {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        out.push((z >> 32) as u8);
    }
    table(&mut out);
    out
}

fn compress(codec: &str, input: &Path, output: &Path, model: bool) -> serde_json::Value {
    let mut cmd = llmfs();
    cmd.args(["compress", "--json", "--codec", codec]);
    if model {
        cmd.arg("--model").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/test/model.onnx"
        ));
    }
    let out = cmd.arg(input).arg(output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("JSON line");
    serde_json::from_str(line).unwrap()
}

fn decompress(input: &Path, output: &Path, model: bool) {
    let mut cmd = llmfs();
    cmd.arg("decompress");
    if model {
        cmd.arg("--model").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/test/model.onnx"
        ));
    }
    let out = cmd.arg(input).arg(output).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn classic_keeps_the_smallest_classical_codec_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    let data = mixed();
    std::fs::write(&input, &data).unwrap();

    let classic = compress("classic", &input, &t.path().join("c"), false);
    let codecs = &classic["codecs"];
    // The tables and the words go to the archival codecs (cm beats LZMA2
    // on both), the noise stays raw.
    let archival =
        codecs["lzma"]["blocks"].as_u64().unwrap() + codecs["cm"]["blocks"].as_u64().unwrap();
    assert_eq!(archival, 3, "{classic}");
    assert_eq!(codecs["raw"]["blocks"], 1, "{classic}");
    assert_eq!(codecs["llm"]["blocks"], 0, "{classic}");
    decompress(&t.path().join("c"), &t.path().join("c.out"), false);
    assert_eq!(std::fs::read(t.path().join("c.out")).unwrap(), data);

    // zstd alone (the write path's choice) stores more.
    let zstd = compress("zstd", &input, &t.path().join("z"), false);
    assert!(
        zstd["stored_bytes"].as_u64() > classic["stored_bytes"].as_u64(),
        "{zstd} {classic}"
    );

    // auto tries the model as well: never larger than classic (the test
    // model's random weights never win, so equal here).
    let auto = compress("auto", &input, &t.path().join("a"), true);
    assert!(
        auto["stored_bytes"].as_u64() <= classic["stored_bytes"].as_u64(),
        "{auto} {classic}"
    );
    decompress(&t.path().join("a"), &t.path().join("a.out"), true);
    assert_eq!(std::fs::read(t.path().join("a.out")).unwrap(), data);
}

/// A container written with the built-in model as an earlier release
/// shipped it (file sha256 76cce55a…, before its CPU variant was rebuilt)
/// names that file; the same model's later file decodes it, bit for bit
/// (`model::same_model_as`).
#[test]
fn containers_of_an_earlier_built_in_model_file_still_decode() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/default_model_76cce55a");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("text.txt");
    decompress(&fixture.join("text.llmfs"), &out, false);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture.join("text.txt")).unwrap()
    );
}

/// Output to something other than a regular file is written in place: a
/// symlink keeps pointing at its target, which gets the data, and a
/// device node (here a private copy of /dev/null's, made with mknod as
/// root) stays a device. Renaming a temporary file over it, as output to
/// a regular file does, once turned /dev/null into a regular file.
#[test]
fn output_to_a_device_or_a_symlink_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    let data = b"written through a link\n".repeat(100);
    std::fs::write(&input, &data).unwrap();
    let packed = t.path().join("in.llmfs");
    compress("zstd", &input, &packed, false);

    let target = t.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    decompress(&packed, &link, false);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), data);

    let null = t.path().join("null");
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped the device half: mknod needs root");
        return;
    }
    decompress(&packed, &null, false);
    let kind = std::fs::symlink_metadata(&null).unwrap().file_type();
    assert!(kind.is_char_device(), "the device node was replaced");
}

/// A file of 16 blocks or more gets a dictionary built from its own blocks
/// (container version 2), which primes its cm blocks: smaller than with
/// `--no-dictionary` (container version 1), and both decompress to the
/// input; a damaged dictionary section is an error that says so, and
/// nothing of the file is written.
#[test]
fn a_file_of_many_blocks_carries_its_dictionary() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("app.log");
    let data = crate::common::log_lines(20 * 4096, 3);
    std::fs::write(&input, &data).unwrap();
    let run = |extra: &[&str], out: &Path| {
        let mut cmd = llmfs();
        cmd.args(["compress", "--block-size", "4096"]);
        cmd.args(extra).arg(&input).arg(out);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    };
    let with = run(&["--codec", "cm"], &t.path().join("with.lfz"));
    let without = run(
        &["--codec", "cm", "--no-dictionary"],
        &t.path().join("without.lfz"),
    );
    assert_eq!((with[8], without[8]), (2, 1), "container versions");
    assert!(
        with.len() < without.len(),
        "with a dictionary {} bytes, without {}",
        with.len(),
        without.len()
    );
    for name in ["with.lfz", "without.lfz"] {
        let out = t.path().join(format!("{name}.out"));
        decompress(&t.path().join(name), &out, false);
        assert!(std::fs::read(&out).unwrap() == data, "{name}");
    }
    // One byte of the dictionary's payload (after the 64-byte header and
    // the section's 40 fixed bytes) changed.
    let mut bad = with.clone();
    bad[64 + 40 + 10] ^= 0x01;
    let bad_path = t.path().join("bad.lfz");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = t.path().join("bad.out");
    let o = llmfs()
        .arg("decompress")
        .arg(&bad_path)
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("dictionary section: checksum mismatch"),
        "{stderr}"
    );
    assert!(!out.exists(), "no output from a damaged file");
    // The model's blocks (the integer test model: llm payload version 6)
    // are primed with it too.
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/test-int/model.onnx");
    let llm = run(
        &["--codec", "llm", "--model", model],
        &t.path().join("llm.lfz"),
    );
    assert_eq!(llm[8], 2);
    let out = t.path().join("llm.out");
    let o = llmfs()
        .args(["decompress", "--model", model])
        .arg(t.path().join("llm.lfz"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&out).unwrap() == data,
        "llm blocks round trip"
    );
}
