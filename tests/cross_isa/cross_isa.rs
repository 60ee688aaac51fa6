//! Cross-CPU exactness: the same llmfs binary under `qemu-x86_64 -cpu
//! Haswell` (AVX2) and `-cpu Nehalem` (SSE4.2) runs ONNX Runtime's kernels
//! for those CPU classes. An integer model must give the same logits digest
//! there as natively, and blocks written on one class must decode on the
//! others, both ways.
//!
//! Needs qemu-user (Debian package `qemu-user`); without it the tests say so
//! and pass, unless LLMFS_REQUIRE_QEMU=1 (set by .ci/test), when they fail.

use std::path::Path;
use std::process::Command;

use crate::common::{output_text, BIN};

const QEMU: &str = "qemu-x86_64";
const CPUS: [&str; 2] = ["Haswell", "Nehalem"];

fn have_qemu() -> bool {
    let found = Command::new(QEMU).arg("-version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("LLMFS_REQUIRE_QEMU").is_none(),
            "{QEMU} is missing and LLMFS_REQUIRE_QEMU is set (install qemu-user)"
        );
        eprintln!("skipped: {QEMU} not found (install Debian's qemu-user to run cross-CPU tests)");
    }
    found
}

/// `llmfs ARGS`, natively or under qemu with `cpu`.
fn llmfs(cpu: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new(QEMU);
            c.args(["-cpu", cpu, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "llmfs {args:?} under {cpu:?}: {}",
        output_text(&out)
    );
    out
}

fn model_path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// `llmfs compress ARGS... INPUT OUT` under `cpu`; OUT's bytes.
fn compress(cpu: Option<&str>, args: &[&str], input: &Path, out: &Path) -> Vec<u8> {
    let mut all = vec!["compress"];
    all.extend_from_slice(args);
    all.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
    llmfs(cpu, &all);
    std::fs::read(out).unwrap()
}

/// `llmfs decompress ARGS... PACKED OUT` under `cpu`; OUT's bytes.
fn decompress(cpu: Option<&str>, args: &[&str], packed: &Path, out: &Path) -> Vec<u8> {
    let mut all = vec!["decompress"];
    all.extend_from_slice(args);
    all.extend([packed.to_str().unwrap(), out.to_str().unwrap()]);
    llmfs(cpu, &all);
    std::fs::read(out).unwrap()
}

fn digest(cpu: Option<&str>, model: &str, device: &str) -> (String, String) {
    let out = llmfs(
        cpu,
        &[
            "model-check",
            "--json",
            "--device",
            device,
            "--model",
            &model_path(model),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["self_test"], "passed", "{v}");
    (
        v["logits_sha256"].as_str().unwrap().to_string(),
        v["cpu_class"].as_str().unwrap().to_string(),
    )
}

#[test]
fn integer_logits_are_the_same_on_every_cpu_class() {
    if !have_qemu() {
        return;
    }
    for model in ["models/test-int/model.onnx", "models/default/model.onnx"] {
        let (native, class) = digest(None, model, "cpu");
        for cpu in CPUS {
            let (emulated, emulated_class) = digest(Some(cpu), model, "cpu");
            // On a host of the emulated class itself the classes agree and
            // the check is weaker, not wrong.
            assert_eq!(native, emulated, "{model}: {class} vs {emulated_class}");
        }
        let (reference, _) = digest(Some("Nehalem"), model, "reference");
        assert_eq!(native, reference, "{model}: reference engine under Nehalem");
    }
}

fn roundtrip(dir: &Path, model: &str, data: &[u8], enc: Option<&str>, dec: Option<&str>) {
    let input = dir.join("in");
    let packed = dir.join("packed");
    let output = dir.join("out");
    std::fs::write(&input, data).unwrap();
    let m = model_path(model);
    let args = ["--workers", "1", "--model", &m];
    compress(
        enc,
        &[&["--codec", "llm"], &args[..]].concat(),
        &input,
        &packed,
    );
    let back = decompress(dec, &args, &packed, &output);
    assert!(
        back == data,
        "{model}: written under {enc:?}, read under {dec:?}"
    );
}

#[test]
fn integer_blocks_written_on_one_cpu_class_decode_on_the_others() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (model, len) in [
        ("models/test-int/model.onnx", 4096),
        ("models/default/model.onnx", 1024),
    ] {
        let data = &text[..len];
        for cpu in CPUS {
            roundtrip(dir.path(), model, data, None, Some(cpu));
            roundtrip(dir.path(), model, data, Some(cpu), None);
        }
    }
}

/// The cm and media codecs are integer arithmetic (and, in media payload
/// version 3's audio model, IEEE 754 binary64 additions, multiplications
/// and divisions in a fixed order, which every CPU rounds the same): every
/// CPU class writes the same bytes for the same input and decodes the
/// others' exactly.
#[test]
fn cm_and_media_payloads_are_the_same_on_every_cpu_class() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read(model_path("README.md")).unwrap();
    let inputs = [
        ("cm", "text", readme[..readme.len().min(24_000)].to_vec()),
        ("media", "wav", crate::common::wav_tone(12_000)),
        ("media", "stereo.wav", stereo_wav(40_000)),
        ("media", "ppm", ppm(96, 64)),
    ];
    for (codec, name, data) in inputs {
        let input = dir.path().join(name);
        std::fs::write(&input, &data).unwrap();
        let pack = |cpu: Option<&str>| {
            let out = dir
                .path()
                .join(format!("{name}.{}", cpu.unwrap_or("native")));
            (compress(cpu, &["--codec", codec], &input, &out), out)
        };
        let (native, native_path) = pack(None);
        for cpu in CPUS {
            assert!(
                pack(Some(cpu)).0 == native,
                "{codec} bytes of {name} differ under {cpu}"
            );
            let back = dir.path().join(format!("{name}.{cpu}.out"));
            assert!(
                decompress(Some(cpu), &[], &native_path, &back) == data,
                "{codec}: {name} decoded under {cpu} differs"
            );
        }
    }
}

/// A 16-bit stereo WAV that works payload version 3's least-squares
/// predictors hard: tones with noise, a stretch where both channels are
/// equal (a singular covariance), silence, and full-scale clipping. Integer
/// synthesis, so the same bytes on every machine.
fn stereo_wav(frames: usize) -> Vec<u8> {
    let mut v = crate::common::wav_header(2, 44100, frames);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |amp: i64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as i64 % (2 * amp + 1)) - amp
    };
    for i in 0..frames as i64 {
        let tri = |period: i64| {
            let p = i % period;
            (if p < period / 2 { p } else { period - p }) * 4 - period
        };
        let part = i * 5 / frames as i64;
        let (l, r) = match part {
            0 => {
                let l = tri(97) * 200 + noise(300);
                (l, l / 2 + tri(53) * 100 + noise(50))
            }
            1 => {
                let l = tri(211) * 60 + noise(20);
                (l, l)
            }
            2 => (0, 0),
            3 => {
                let l = (tri(37) * 2000).clamp(-32768, 32767);
                (l, -l.max(-32767))
            }
            _ => (noise(32767), noise(3)),
        };
        v.extend((l.clamp(-32768, 32767) as i16).to_le_bytes());
        v.extend((r.clamp(-32768, 32767) as i16).to_le_bytes());
    }
    v
}

/// A binary PPM of a smooth gradient with a texture from integer hashing:
/// the same bytes on every machine.
fn ppm(w: usize, h: usize) -> Vec<u8> {
    let mut v = format!("P6\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let t = (x * 31 + y * 17 + c * 7).wrapping_mul(2_654_435_761) >> 28;
                v.push(((x * 2 + y + c * 40) % 200 + t % 8) as u8);
            }
        }
    }
    v
}

/// Blocks primed with a dictionary (llm payload version 6, in a container
/// that carries the dictionary: a file of 18 blocks of 4 KiB) are the same
/// bytes written natively and under Nehalem, and decode under Haswell and
/// Nehalem: the priming pass is integer arithmetic too.
#[test]
fn primed_blocks_are_the_same_on_every_cpu_class() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(model_path("README.md")).unwrap();
    let data: Vec<u8> = text.iter().copied().cycle().take(18 * 4096).collect();
    let input = dir.path().join("in");
    std::fs::write(&input, &data).unwrap();
    let m = model_path("models/test-int/model.onnx");
    let args = ["--workers", "1", "--model", &m];
    let pack_args = [&["--codec", "llm", "--block-size", "4096"], &args[..]].concat();
    let packed = dir.path().join("native");
    let native = compress(None, &pack_args, &input, &packed);
    assert_eq!(native[8], 2, "a container with a dictionary");
    assert!(
        native
            == compress(
                Some("Nehalem"),
                &pack_args,
                &input,
                &dir.path().join("nehalem")
            ),
        "the same bytes written under Nehalem"
    );
    for cpu in CPUS {
        let output = dir.path().join(format!("out-{cpu}"));
        assert!(
            decompress(Some(cpu), &args, &packed, &output) == data,
            "read under {cpu}"
        );
    }
}
