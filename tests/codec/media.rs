//! The media codec end to end: generated images and recordings (and, when
//! bench/media/fetch.sh has filled its cache, every evaluation file)
//! through `llmfs compress --codec media` / `decompress`; a volume whose
//! blocks of a WAV and a PPM are swapped to media records records the
//! features `media`, `media-v2` (the PPM's payload version 2) and
//! `media-v3` (the WAV's version 3) and schema version 11, reads back
//! exactly through a real mount,
//! lists its media blocks in `stats`, and fscks clean.

use std::path::{Path, PathBuf};

use llmfs::codec::{CodecId, CodecSet};
use llmfs::store::{Durability, Feature};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A PPM (or PGM) of a smooth picture with noise.
fn pnm(w: usize, h: usize, channels: usize) -> Vec<u8> {
    let magic = if channels == 1 { "P5" } else { "P6" };
    let mut v = format!("{magic}\n{w} {h}\n255\n").into_bytes();
    let n = noise(w * h * channels, 5);
    for (i, j) in n.iter().enumerate() {
        let (p, c) = (i / channels, i % channels);
        let (x, y) = (p % w, p / w);
        let s = 120.0
            + 60.0 * (x as f64 / 17.0 + c as f64).sin()
            + 50.0 * (y as f64 / 23.0 + (x * y) as f64 / 3000.0).cos();
        v.push(s as u8 + j % 7);
    }
    v
}

/// A WAV of a chord with noise: `bits` 8, 16 or 24, `channels` 1 or 2.
fn wav(frames: usize, channels: usize, bits: usize) -> Vec<u8> {
    let bytes = bits / 8;
    let data = frames * channels * bytes;
    let mut v = b"RIFF".to_vec();
    v.extend(((36 + data) as u32).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend((channels as u16).to_le_bytes());
    v.extend(44100u32.to_le_bytes());
    v.extend(((44100 * channels * bytes) as u32).to_le_bytes());
    v.extend(((channels * bytes) as u16).to_le_bytes());
    v.extend((bits as u16).to_le_bytes());
    v.extend(b"data");
    v.extend((data as u32).to_le_bytes());
    let n = noise(frames * channels, 9);
    let amp = (1i64 << (bits - 2)) as f64;
    for (i, &j) in n.iter().enumerate() {
        let t = (i / channels) as f64 / 44100.0;
        let s = ((t * 440.0 * std::f64::consts::TAU).sin() * 0.5
            + (t * 1234.0 * std::f64::consts::TAU + (i % channels) as f64).sin() * 0.2)
            * amp;
        let s = s as i32 + i32::from(j % 3) - 1 + if bits == 8 { 128 } else { 0 };
        v.extend(&s.to_le_bytes()[..bytes]);
    }
    v
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![
        ("gray.pgm".to_string(), pnm(333, 257, 1)),
        ("rgb.ppm".to_string(), pnm(301, 199, 3)),
        ("odd.ppm".to_string(), pnm(7, 3, 3)),
        (
            "text.txt".to_string(),
            b"not an image at all. ".repeat(5000),
        ),
        ("noise.bin".to_string(), noise(70_000, 3)),
    ];
    for bits in [8, 16, 24] {
        for ch in [1, 2] {
            v.push((format!("tone{bits}x{ch}.wav"), wav(50_000, ch, bits)));
        }
    }
    // A truncated header, and a WAV cut mid-sample.
    v.push(("cut.wav".to_string(), wav(1000, 2, 16)[..30].to_vec()));
    v.push((
        "cut2.wav".to_string(),
        wav(40_000, 2, 16)[..100_001].to_vec(),
    ));
    v
}

/// The evaluation files, if bench/media/fetch.sh has fetched them.
fn evaluation_files() -> Vec<PathBuf> {
    let dir = std::env::var_os("MEDIA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/llmfs-media")))
        .map(|d| d.join("raw"));
    let mut v: Vec<PathBuf> = dir
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn compress_round_trip(dir: &Path, name: &str, data: &[u8]) -> serde_json::Value {
    let input = dir.join(name);
    std::fs::write(&input, data).unwrap();
    let packed = dir.join(format!("{name}.llmfs"));
    let back = dir.join(format!("{name}.back"));
    let (ok, out) = crate::common::run([
        "compress".as_ref(),
        "--json".as_ref(),
        "--codec".as_ref(),
        "media".as_ref(),
        input.as_os_str(),
        packed.as_os_str(),
    ]);
    assert!(ok, "{name}: {out}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let (ok, out) =
        crate::common::run(["decompress".as_ref(), packed.as_os_str(), back.as_os_str()]);
    assert!(ok, "{name}: {out}");
    assert!(std::fs::read(&back).unwrap() == data, "{name}: round trip");
    summary
}

/// `llmfs compress --codec media` stores every block as media and
/// `decompress` gives the input back, for every generated fixture (8/16/24
/// bits, mono and stereo, odd sizes, cut headers, text and noise) and every
/// evaluation file present.
#[test]
fn compress_cli_round_trips_fixtures_and_evaluation_files() {
    let t = tempfile::tempdir().unwrap();
    let mut inputs = fixtures();
    for f in evaluation_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        inputs.push((name, std::fs::read(&f).unwrap()));
    }
    for (name, data) in inputs {
        let summary = compress_round_trip(t.path(), &name, &data);
        let blocks = data.len().div_ceil(65536) as u64;
        assert_eq!(summary["codecs"]["media"]["blocks"], blocks, "{name}");
        if name.starts_with("tone16") || name == "rgb.ppm" {
            let bpb = summary["bits_per_byte"].as_f64().unwrap();
            assert!(bpb < 6.0, "{name}: {bpb}");
        }
    }
}

/// A volume's blocks swapped to media records (through the store API, as
/// the archiver swaps), then read through a real mount.
#[test]
fn volume_with_media_records_mounts_reads_and_fscks() {
    if crate::common::skip_without_fuse() {
        return;
    }
    let sound = wav(70_000, 2, 16);
    let picture = pnm(400, 300, 3);
    let mut m = crate::common::Mounted::new(&[]);
    std::fs::write(m.path("sound.wav"), &sound).unwrap();
    std::fs::write(m.path("picture.ppm"), &picture).unwrap();
    m.unmount();

    let set = CodecSet::default();
    let mut swapped = 0;
    {
        let store = crate::common::open_store(&m.store, 65536);
        for info in store.read(|x| x.block_infos(None)).unwrap() {
            let old = store
                .read(|x| x.block(info.ino, info.idx))
                .unwrap()
                .unwrap();
            let raw = set.decode_block(&old, 65536).unwrap();
            let rec = set.encode_block_with(CodecId::Media, &raw).unwrap();
            assert!(rec.len() < raw.len(), "block {} of {}", info.idx, info.ino);
            let done = store
                .write(Durability::Durable, |x| {
                    x.swap_archived_block(
                        info.ino,
                        info.idx,
                        &old,
                        Some((CodecId::Media as u8, &rec)),
                        llmfs::store::ArchiveTier::Archive,
                    )
                })
                .unwrap();
            assert!(done);
            swapped += 1;
        }
        // The picture's records are in payload version 2, the sound's in
        // version 3.
        let features = store.read(|x| x.features()).unwrap();
        for f in [Feature::Media, Feature::MediaV2, Feature::MediaV3] {
            assert!(features.contains(f), "{f:?}");
        }
    }
    assert_eq!(
        swapped,
        sound.len().div_ceil(65536) + picture.len().div_ceil(65536)
    );
    let version: u32 = rusqlite::Connection::open(m.store.join(llmfs::store::DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    // media-v3 (11): this build writes media payload version 3 for audio.
    assert_eq!(version, 11);
    let stats = crate::common::stats_json(&m.store);
    assert_eq!(crate::common::codec_blocks(&stats, "media"), swapped as u64);

    m.mount(&[]);
    assert!(std::fs::read(m.path("sound.wav")).unwrap() == sound);
    assert!(std::fs::read(m.path("picture.ppm")).unwrap() == picture);
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}

/// The archive tier's choice keeps media for raw audio and images: it is
/// smaller there than cm, LZMA2 and zstd.
#[test]
fn archive_tier_picks_media_on_raw_samples() {
    let set = CodecSet::default();
    for (name, data) in [("wav", wav(40_000, 2, 16)), ("ppm", pnm(256, 200, 3))] {
        let block = &data[..65536];
        let rec = set.encode_block_archive(block).unwrap();
        assert_eq!(
            llmfs::codec::record_codec(&rec),
            Some(CodecId::Media),
            "{name}"
        );
        assert_eq!(set.decode_block(&rec, 65536).unwrap(), block);
    }
}
