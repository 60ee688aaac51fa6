//! Round trips of generated images and recordings in every layout the
//! codec detects (and of data that only looks like one), blocks cut at any
//! offset, and corrupt payloads.

use super::layout::{Arrangement, KIND_AUDIO, KIND_IMAGE};
use super::*;
use crate::codec::test_data::noise;

fn round_trip(raw: &[u8]) -> Vec<u8> {
    let payload = encode_payload(raw, Vec::new());
    let mut out = Vec::new();
    decode_payload(&payload, raw.len(), &mut out).unwrap();
    assert!(out == raw, "round trip of {} bytes", raw.len());
    payload
}

/// A smooth photo-like picture with noise: `channels` 8-bit samples a
/// pixel, `w` x `h`.
pub fn picture(w: usize, h: usize, channels: usize, seed: u64) -> Vec<u8> {
    let n = noise(w * h * channels, seed);
    let mut v = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                let base = (x * 3 + y * 2 + c * 40) as i32 % 200 + ((x * y) % 17) as i32;
                let jitter = i32::from(n[v.len()] % 7) - 3;
                v.push((base + jitter).clamp(0, 255) as u8);
            }
        }
    }
    v
}

pub fn pnm(w: usize, h: usize, channels: usize, seed: u64) -> Vec<u8> {
    let magic = if channels == 1 { "P5" } else { "P6" };
    let mut v = format!("{magic}\n# made by a test\n{w} {h}\n255\n").into_bytes();
    v.extend(picture(w, h, channels, seed));
    v
}

fn bmp(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let stride = (w * 3).div_ceil(4) * 4;
    let pixels = picture(w, h, 3, seed);
    let mut v = b"BM".to_vec();
    v.extend(((54 + stride * h) as u32).to_le_bytes());
    v.extend([0; 4]);
    v.extend(54u32.to_le_bytes());
    v.extend(40u32.to_le_bytes());
    v.extend((w as u32).to_le_bytes());
    v.extend((h as u32).to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(24u16.to_le_bytes());
    v.extend([0; 24]);
    for row in pixels.chunks(w * 3) {
        v.extend(row);
        v.extend(std::iter::repeat_n(0, stride - w * 3));
    }
    v
}

/// A decaying chord with noise, `frames` frames of `channels` samples of
/// `bits` bits.
pub fn tone(frames: usize, channels: usize, bits: u32, seed: u64) -> Vec<i32> {
    let n = noise(frames * channels, seed);
    let amp = f64::from(1u32 << (bits - 2));
    (0..frames * channels)
        .map(|i| {
            let t = (i / channels) as f64 / 8000.0;
            let c = (i % channels) as f64;
            let s = (t * 440.0 * std::f64::consts::TAU).sin() * 0.6
                + (t * 660.0 * std::f64::consts::TAU + c).sin() * 0.3;
            (s * amp * (-t).exp()) as i32 + i32::from(n[i] % 5) - 2
        })
        .collect()
}

pub fn wav(frames: usize, channels: usize, bits: u32, seed: u64) -> Vec<u8> {
    let bytes = bits as usize / 8;
    let data = frames * channels * bytes;
    let mut v = b"RIFF".to_vec();
    v.extend(((36 + data) as u32).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend((channels as u16).to_le_bytes());
    v.extend(8000u32.to_le_bytes());
    v.extend(((8000 * channels * bytes) as u32).to_le_bytes());
    v.extend(((channels * bytes) as u16).to_le_bytes());
    v.extend((bits as u16).to_le_bytes());
    v.extend(b"data");
    v.extend((data as u32).to_le_bytes());
    for s in tone(frames, channels, bits, seed) {
        let s = if bits == 8 { s + 128 } else { s };
        v.extend(&s.to_le_bytes()[..bytes]);
    }
    v
}

fn aiff(frames: usize, channels: usize) -> Vec<u8> {
    let data = frames * channels * 2;
    let mut v = b"FORM".to_vec();
    v.extend(((46 + data) as u32).to_be_bytes());
    v.extend(b"AIFFCOMM");
    v.extend(18u32.to_be_bytes());
    v.extend((channels as u16).to_be_bytes());
    v.extend((frames as u32).to_be_bytes());
    v.extend(16u16.to_be_bytes());
    v.extend([0x40, 0x0B, 0xFA, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(b"SSND");
    v.extend(((8 + data) as u32).to_be_bytes());
    v.extend([0; 8]);
    for s in tone(frames, channels, 16, 5) {
        v.extend((s as i16).to_be_bytes());
    }
    v
}

fn kind(payload: &[u8]) -> u8 {
    payload[1]
}

#[test]
fn empty_and_tiny_blocks_round_trip() {
    for n in 0..40 {
        round_trip(&noise(n, 7 + n as u64));
    }
}

#[test]
fn images_are_detected_and_smaller_than_their_pixels() {
    for (name, raw, channels) in [
        ("pgm", pnm(160, 120, 1, 1), 1),
        ("ppm", pnm(101, 67, 3, 2), 3),
        ("bmp with row padding", bmp(77, 60, 3), 3),
    ] {
        let payload = round_trip(&raw);
        assert_eq!(kind(&payload), KIND_IMAGE, "{name}");
        let lay = payload_layout(&payload, raw.len()).unwrap().unwrap();
        match lay.arrangement {
            Arrangement::Image(img) => assert_eq!(usize::from(img.channels), channels, "{name}"),
            a => panic!("{name}: {a:?}"),
        }
        assert!(
            payload.len() * 4 < raw.len() * 3,
            "{name}: {}",
            payload.len()
        );
    }
}

#[test]
fn audio_of_every_width_and_channel_count_round_trips() {
    for bits in [8, 16, 24] {
        for channels in [1, 2] {
            let raw = wav(3000, channels, bits, u64::from(bits) + channels as u64);
            let payload = round_trip(&raw);
            assert_eq!(kind(&payload), KIND_AUDIO, "{bits} bits x {channels}");
            assert!(
                payload.len() < raw.len() * 3 / 4,
                "{bits}x{channels}: {}",
                payload.len()
            );
        }
    }
    let raw = aiff(4000, 2);
    let payload = round_trip(&raw);
    let lay = payload_layout(&payload, raw.len()).unwrap().unwrap();
    assert!(lay.format.big_endian, "{lay:?}");
}

/// Blocks after the first hold no header: cut anywhere, each still
/// decodes on its own (with a searched layout or stored).
#[test]
fn headerless_blocks_cut_at_any_offset_round_trip() {
    let image = pnm(300, 200, 3, 9);
    let audio = wav(30000, 2, 16, 4);
    for data in [&image, &audio] {
        for start in [1usize, 2, 3, 45, 1001, 4097] {
            let block = &data[start..(start + 40000).min(data.len())];
            let payload = round_trip(block);
            assert!(
                payload.len() < block.len() * 3 / 4,
                "from {start}: {}",
                payload.len()
            );
        }
    }
}

/// Truncated headers, and headers whose numbers lie, cost bytes, never
/// correctness.
#[test]
fn truncated_and_lying_headers_round_trip() {
    let image = pnm(64, 64, 1, 3);
    let audio = wav(2000, 2, 16, 3);
    for cut in [1usize, 2, 5, 10, 14, 20, 30, 43, 44, 45, 46] {
        round_trip(&image[..cut.min(image.len())]);
        round_trip(&audio[..cut]);
    }
    let mut lies = vec![
        b"P5\n99999 1\n255\n".to_vec(),
        b"P6\n0 0\n255\n".to_vec(),
        b"P5 3 3 70000\n".to_vec(),
        b"BM\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\x7f".to_vec(),
        b"II*\0\x08\0\0\0\xff\xff".to_vec(),
        b"MM\0*\0\0\0\x08\0\x01\x01\x00\0\x03\0\0\0\x01\xff\xff".to_vec(),
        b"FORM\0\0\0\0AIFFCOMM\0\0\0\x12\0\x09".to_vec(),
    ];
    let mut riff = audio.clone();
    riff[22] = 9; // 9 channels
    lies.push(riff);
    let mut riff = audio.clone();
    riff[34] = 12; // 12-bit samples
    lies.push(riff);
    for mut l in lies {
        l.extend(noise(3000, 1));
        round_trip(&l);
    }
}

#[test]
fn text_and_noise_round_trip() {
    let text = b"The quick brown fox jumps over the lazy dog. ".repeat(700);
    round_trip(&text);
    round_trip(&noise(65536, 99));
}

/// A cut or flipped payload decodes to an error or to `raw_len` bytes,
/// never more, never a panic; in a record (with its checksum) every such
/// payload is an error.
#[test]
fn corrupt_payloads_are_errors_never_panics() {
    use crate::codec::{decode_record, encode_record, RECORD_HEADER_LEN};
    let get = |id| (id == CodecId::Media).then_some(&MediaCodec as &dyn Codec);
    for raw in [pnm(90, 70, 3, 4), wav(5000, 2, 16, 8), noise(5000, 3)] {
        let payload = encode_payload(&raw, Vec::new());
        for cut in (0..payload.len()).step_by(97).chain([payload.len() - 1]) {
            let mut out = Vec::new();
            match decode_payload(&payload[..cut], raw.len(), &mut out) {
                Ok(()) => assert!(out.len() == raw.len() && out != raw, "cut at {cut}"),
                Err(_) => assert!(out.len() <= raw.len()),
            }
        }
        let record = encode_record(&MediaCodec, &raw).unwrap();
        assert_eq!(decode_record(&record, 65536, get).unwrap(), raw);
        let mut x = 0x9E37_79B9u32;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut bad = record.clone();
            let at = RECORD_HEADER_LEN + x as usize % (bad.len() - RECORD_HEADER_LEN);
            bad[at] ^= 1 << (x >> 29);
            assert!(decode_record(&bad, 65536, get).is_err(), "flip at {at}");
            let mut out = Vec::new();
            if decode_payload(&bad[RECORD_HEADER_LEN..], raw.len(), &mut out).is_ok() {
                assert_eq!(out.len(), raw.len());
            }
            assert!(out.len() <= raw.len());
        }
    }
    let mut out = Vec::new();
    assert_eq!(
        decode_payload(&[9, 0], 0, &mut out),
        Err(MediaError::UnknownVersion(9))
    );
    assert_eq!(
        decode_payload(&[1, 7, 1], 0, &mut out),
        Err(MediaError::UnknownKind(7))
    );
}

/// The same bytes in, the same payload out (the golden check lives in
/// tests/cross_isa for other CPUs).
#[test]
fn encoding_is_deterministic() {
    let raw = wav(6000, 2, 16, 1);
    assert_eq!(
        encode_payload(&raw, Vec::new()),
        encode_payload(&raw, Vec::new())
    );
}

/// The digest of a payload's first 8 bytes of SHA-256.
fn digest_of(payload: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(payload)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The exact payloads of each version for a fixed image and recording: a
/// change to any constant of the models or the coder shows here (and must
/// come with a new payload version). Version 1's are those of the first
/// media release (cd7a723), whose payloads volumes hold. The inputs use
/// f64 `sin` and the encoder fits LPC in f64, so the digests are those of
/// x86-64 with glibc; decoding itself uses integers and, for version 3's
/// audio, binary64 additions, multiplications and divisions only, which
/// every IEEE 754 machine rounds the same (the cross-ISA test runs it
/// under other CPU models).
#[test]
fn golden_payloads() {
    let digest = |raw: &[u8], version: Version| -> String {
        let payload = encode_version(raw, choose_layout(raw).as_ref(), version, Vec::new());
        let mut out = Vec::new();
        decode_payload(&payload, raw.len(), &mut out).unwrap();
        assert!(out == raw, "{version:?} round trip");
        digest_of(&payload)
    };
    let image = pnm(64, 48, 3, 2);
    let audio = wav(3000, 2, 16, 1);
    assert_eq!(
        (
            digest(&image, Version::V1).as_str(),
            digest(&audio, Version::V1).as_str()
        ),
        ("4f03c5e896a21001", "40920516eece1c7e"),
        "version 1"
    );
    assert_eq!(
        (
            digest(&image, Version::V2).as_str(),
            digest(&audio, Version::V2).as_str()
        ),
        ("55b81916765aad95", "a9f84d6357cdc2ac"),
        "version 2"
    );
    assert_eq!(
        (
            digest(&image, Version::V3).as_str(),
            digest(&audio, Version::V3).as_str()
        ),
        ("f884b0f93e30d246", "b58e9f857723e26d"),
        "version 3"
    );
    // This build writes version 2 for images (version 3 changed only the
    // audio model) and version 3 for audio.
    assert_eq!(
        digest_of(&encode_payload(&image, Vec::new())),
        digest(&image, Version::V2)
    );
    assert_eq!(
        digest_of(&encode_payload(&audio, Vec::new())),
        digest(&audio, Version::V3)
    );
}

/// Payloads written by the first media release's encoder (cd7a723, payload
/// version 1; tests/fixtures/media_v1/README.md says how they were made)
/// decode to their inputs, which the fixtures' generator rebuilds here.
#[test]
fn version_1_payloads_of_the_first_release_decode() {
    let pcm: Vec<u8> = tone(4000, 2, 16, 9)
        .into_iter()
        .flat_map(|s| (s as i16).to_le_bytes())
        .collect();
    // (name, input, whether its layout comes from a header: then this
    // build's version-1 encoder must write the same bytes; a headerless
    // block's layout search has changed since).
    let cases: [(&str, Vec<u8>, bool); 6] = [
        ("pnm_rgb_64x48", pnm(64, 48, 3, 2), true),
        ("pnm_gray_80x40", pnm(80, 40, 1, 5), true),
        ("wav_stereo_16", wav(3000, 2, 16, 1), true),
        ("wav_mono_8", wav(2500, 1, 8, 3), true),
        ("headerless_rgb_96x64", picture(96, 64, 3, 7), false),
        ("headerless_pcm_stereo_16", pcm, false),
    ];
    for (name, raw, headed) in cases {
        let path = format!(
            "{}/tests/fixtures/media_v1/{name}.media",
            env!("CARGO_MANIFEST_DIR")
        );
        let payload = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(payload[0], 1, "{name}: a version-1 payload");
        let mut out = Vec::new();
        decode_payload(&payload, raw.len(), &mut out).unwrap();
        assert!(out == raw, "{name}: decodes to its input");
        assert!(
            payload[1] != layout::KIND_STORED,
            "{name}: coded by a model"
        );
        if headed {
            let again = encode_version(&raw, choose_layout(&raw).as_ref(), Version::V1, Vec::new());
            assert!(again == payload, "{name}: version-1 encoder unchanged");
        }
    }
}

/// Versions past this build's are refused by name.
#[test]
fn unknown_versions_are_refused() {
    let raw = wav(2000, 1, 16, 1);
    let raw_len = raw.len();
    let mut payload = encode_payload(&raw, Vec::new());
    assert_eq!(payload[0], PAYLOAD_VERSION);
    for v in [0, 4, 255] {
        payload[0] = v;
        let mut out = Vec::new();
        let e = decode_payload(&payload, raw_len, &mut out).unwrap_err();
        assert_eq!(e, MediaError::UnknownVersion(v));
        assert!(e.to_string().contains("versions 1..=3"), "{e}");
    }
}
