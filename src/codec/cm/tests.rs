use super::*;
use crate::codec::test_data::noise;

fn text(n: usize) -> Vec<u8> {
    let words = [
        "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog", ". ", "and ",
        "then\n", "again, ",
    ];
    let mut x = 7u32;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    v.truncate(n);
    v
}

/// Lines like a web server's access log: a few clients, templates and
/// fields that change from line to line.
fn log_lines(n: usize) -> Vec<u8> {
    let ips = ["10.0.0.1", "192.168.4.27", "83.149.9.216", "66.249.73.135"];
    let paths = [
        "/index.html",
        "/images/logo.png",
        "/blog/2015/05/",
        "/feed.xml",
    ];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/7.35.0",
        "Googlebot/2.1",
    ];
    let mut x = 11u32;
    let mut v = Vec::with_capacity(n + 200);
    let mut t = 3600u32;
    while v.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let r = (x >> 8) as usize;
        t += (x >> 28) % 7;
        let line = format!(
            "{} - - [17/May/2015:{:02}:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" {} {} \"{}\"\n",
            ips[r % ips.len()],
            t / 3600 % 24,
            t / 60 % 60,
            t % 60,
            paths[(r >> 4) % paths.len()],
            [200, 200, 304, 404][(r >> 8) % 4],
            (x >> 12) % 90000,
            agents[r % agents.len()]
        );
        v.extend_from_slice(line.as_bytes());
    }
    v.truncate(n);
    v
}

fn roundtrip(raw: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    CmCodec.encode(raw, &mut p).unwrap();
    let mut out = Vec::new();
    CmCodec.decode(&p, raw.len(), &mut out).unwrap();
    assert!(out == raw, "round trip of {} bytes", raw.len());
    p
}

#[test]
fn round_trips_adversarial_inputs() {
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        vec![0xFF],
        vec![0; 65536],
        vec![0xFF; 65536],
        (0..65536)
            .map(|i| if i % 2 == 0 { 0x55 } else { 0xAA })
            .collect(),
        (0..65536).map(|i| i as u8).collect(),
        b"abcdefgh".repeat(8192),
        noise(65536, 0x9e37_79b9_7f4a_7c15),
        text(65536),
        text(1000),
    ];
    // A long repeat of noise: the match model's best case.
    let n = noise(20000, 5);
    cases.push([n.clone(), n.clone(), n].concat());
    for raw in &cases {
        let p = roundtrip(raw);
        assert_eq!(p[0], PAYLOAD_VERSION);
        assert_eq!(p[1], 0);
    }
}

#[test]
fn compresses_what_it_should() {
    let zeros = roundtrip(&vec![0; 65536]);
    assert!(zeros.len() < 64, "{}", zeros.len());
    let t = text(65536);
    let p = roundtrip(&t);
    assert!(p.len() < t.len() / 5, "{}", p.len());
    // Noise costs at most a little over its size.
    let n = noise(65536, 3);
    let p = roundtrip(&n);
    assert!(p.len() < n.len() + n.len() / 50, "{}", p.len());
}

/// The exact bytes of a fixed input's payload: the predictor and the coder
/// are the format, and a change to any constant must be deliberate (a new
/// payload version), not an accident.
#[test]
fn golden_stream() {
    let raw = text(4000);
    let p = roundtrip(&raw);
    assert_eq!(p[0], 3);
    let digest = crc32c::crc32c(&p);
    assert_eq!(
        (p.len(), digest),
        GOLDEN_V3,
        "the cm payload format changed"
    );
}

/// Version 2, which this build no longer writes but must keep reading.
#[test]
fn golden_stream_version_2() {
    let raw = text(4000);
    let p = encode_payload_version(&raw, 2, Vec::new());
    let digest = crc32c::crc32c(&p);
    assert_eq!((p.len(), digest), GOLDEN_V2, "cm payload version 2 changed");
    let mut out = Vec::new();
    CmCodec.decode(&p, raw.len(), &mut out).unwrap();
    assert!(out == raw);
}

/// Version 3 on log-like lines (its line and field models at work): a
/// second pin, on the input its new models see most of.
#[test]
fn golden_stream_version_3_on_logs() {
    let raw = log_lines(6000);
    let p = roundtrip(&raw);
    let digest = crc32c::crc32c(&p);
    assert_eq!(
        (p.len(), digest),
        GOLDEN_V3_LOGS,
        "cm payload version 3 changed"
    );
}

/// Version 1, which this build no longer writes but must keep reading:
/// its predictor is still the one that wrote the pinned stream.
#[test]
fn golden_stream_version_1() {
    let raw = text(4000);
    let p = encode_payload_version(&raw, 1, Vec::new());
    let digest = crc32c::crc32c(&p);
    assert_eq!((p.len(), digest), GOLDEN_V1, "cm payload version 1 changed");
    let mut out = Vec::new();
    CmCodec.decode(&p, raw.len(), &mut out).unwrap();
    assert!(out == raw);
}

const GOLDEN_V1: (usize, u32) = (494, 2_758_703_196);
const GOLDEN_V2: (usize, u32) = (495, 4_252_484_586);
const GOLDEN_V3: (usize, u32) = (508, 518_770_809);
const GOLDEN_V3_LOGS: (usize, u32) = (466, 172_814_097);

/// A damaged payload is refused: by the codec (the stream ends at the
/// wrong place, a header byte is unknown) or, when the damage still decodes
/// to `raw_len` bytes, by the record's checksum. Never more than `raw_len`
/// bytes, never a panic.
#[test]
fn damaged_payloads_are_errors_never_panics() {
    let raw = text(30_000);
    let p = roundtrip(&raw);
    let decodes_to_raw = |payload: &[u8], raw_len: usize| {
        let mut out = Vec::new();
        let r = CmCodec.decode(payload, raw_len, &mut out);
        assert!(out.len() <= raw_len);
        r.is_ok() && out == raw
    };
    let set = crate::codec::CodecSet::default();
    let rec = set.encode_block_with(CodecId::Cm, &raw).unwrap();
    let header = crate::codec::RECORD_HEADER_LEN;
    let record_of = |payload: &[u8]| {
        let mut r = rec[..header].to_vec();
        r[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        r.extend_from_slice(payload);
        r
    };
    let mut damaged: Vec<Vec<u8>> = vec![
        p[..p.len() - 1].to_vec(),
        p[..p.len() / 2].to_vec(),
        p[..2].to_vec(),
        p[..1].to_vec(),
        Vec::new(),
        [&p[..], &[0]].concat(),
        [&p[..], &[0xFF, 0xFF]].concat(),
    ];
    for i in (2..p.len()).step_by(97) {
        let mut bad = p.clone();
        bad[i] ^= 0x21;
        damaged.push(bad);
    }
    for bad in &damaged {
        assert!(!decodes_to_raw(bad, raw.len()));
        assert!(set.decode_block(&record_of(bad), 65536).is_err());
    }
    // Cut far short, the stream runs out: the codec itself refuses it.
    assert_eq!(
        decode_payload(&p[..p.len() / 2], raw.len(), &mut Vec::new()),
        Err(CmError::Truncated)
    );
    assert_eq!(
        decode_payload(&[], 0, &mut Vec::new()),
        Err(CmError::Truncated)
    );
    // A length the stream does not hold: other bytes than the block's,
    // which the record's checksum refuses.
    assert!(!decodes_to_raw(&p, raw.len() + 1));
    for len in [raw.len() - 1, raw.len() + 1, 0] {
        let mut bad = rec.clone();
        bad[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        assert!(set.decode_block(&bad, 65536).is_err());
    }
    for v in [0, 4, 255] {
        let mut bad = p.clone();
        bad[0] = v;
        assert_eq!(
            decode_payload(&bad, raw.len(), &mut Vec::new()),
            Err(CmError::UnknownVersion(v))
        );
    }
    // A version-3 stream read with an older version's predictor: other
    // bytes (or an error), never a panic; the record's checksum judges.
    for v in [1, 2] {
        let mut bad = p.clone();
        bad[0] = v;
        let mut out = Vec::new();
        if decode_payload(&bad, raw.len(), &mut out).is_ok() {
            assert!(out.len() == raw.len() && out != raw);
        }
    }
    let mut bad = p.clone();
    bad[1] = 2;
    assert_eq!(
        decode_payload(&bad, raw.len(), &mut Vec::new()),
        Err(CmError::UnknownFlags(2))
    );
    // The primed flag on a plain payload: it names a dictionary (its first
    // 32 stream bytes) that the volume codec does not have.
    bad[1] = FLAG_PRIMED;
    assert!(matches!(
        decode_payload(&bad, raw.len(), &mut Vec::new()),
        Err(CmError::Dictionary { given: None, .. })
    ));
    assert_eq!(
        decode_payload(&bad[..20], raw.len(), &mut Vec::new()),
        Err(CmError::Truncated)
    );
}

#[test]
fn random_payloads_are_errors_or_exact() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200 {
        let len = (next() % 400) as usize;
        let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 2 {
            payload[0] = PAYLOAD_VERSION;
            payload[1] = 0;
        }
        let raw_len = (next() % 5000) as usize;
        let mut out = Vec::new();
        if decode_payload(&payload, raw_len, &mut out).is_ok() {
            assert_eq!(out.len(), raw_len);
        }
        assert!(out.len() <= raw_len);
    }
}

#[test]
fn records_round_trip_through_the_codec_set() {
    let set = crate::codec::CodecSet::default();
    let raw = text(65536);
    let rec = set.encode_block_with(CodecId::Cm, &raw).unwrap();
    assert_eq!(crate::codec::record_codec(&rec), Some(CodecId::Cm));
    assert_eq!(set.decode_block(&rec, 65536).unwrap(), raw);
}

/// The fuzz seed record (3000 bytes of C source coded by this version) still
/// decodes and passes its CRC: a second pin of the format, on real text.
#[test]
fn fuzz_seed_record_decodes() {
    let rec = include_bytes!("../../../fuzz/seeds/decode_block/seed-cm");
    assert_eq!(crate::codec::record_codec(rec), Some(CodecId::Cm));
    let out = crate::codec::CodecSet::default()
        .decode_block(rec, 4096)
        .unwrap();
    assert_eq!(out.len(), 3000);
    let seed = include_bytes!("../../../fuzz/seeds/decode_cm/seed-cm");
    assert_eq!(&seed[2..], &rec[crate::codec::RECORD_HEADER_LEN..]);
}

/// A dictionary primes every block from the same learnt state: blocks like
/// it code smaller, decode only with it, and a payload names it.
#[test]
fn primed_payloads_round_trip_with_their_dictionary_only() {
    let sample = text(20_000);
    let dict = Dictionary::new(&sample);
    let block = text(3000);
    let primed = encode_payload_primed(&dict, &block, Vec::new());
    assert_eq!(primed[1], FLAG_PRIMED);
    assert_eq!(&primed[2..34], &dict.digest());
    let plain = encode_payload(&block, Vec::new());
    assert!(
        primed.len() < plain.len() / 2,
        "{} vs {}",
        primed.len(),
        plain.len()
    );
    // The same dictionary decodes it, any number of times (each block
    // starts from the primed state, not from the last block's).
    for _ in 0..2 {
        let mut out = Vec::new();
        decode_payload_primed(&dict, &primed, block.len(), &mut out).unwrap();
        assert_eq!(out, block);
    }
    // Without it, with another one, or a plain payload with one: refused.
    let mut out = Vec::new();
    assert!(matches!(
        decode_payload(&primed, block.len(), &mut out),
        Err(CmError::Dictionary { given: None, .. })
    ));
    let other = Dictionary::new(b"another sample");
    assert!(matches!(
        decode_payload_primed(&other, &primed, block.len(), &mut Vec::new()),
        Err(CmError::Dictionary { .. })
    ));
    assert!(decode_payload_primed(&dict, &plain, block.len(), &mut Vec::new()).is_err());
    assert!(decode_payload_primed(&dict, &primed[..20], block.len(), &mut Vec::new()).is_err());
    // The volume codec never writes a primed payload and refuses one.
    let e = CmCodec
        .decode(&primed, block.len(), &mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("needs dictionary"), "{e}");
}

/// Version-1 and version-2 payloads primed with a dictionary (as volumes
/// hold from before version 3) still decode with that dictionary, which
/// primes their version's predictor for them on demand.
#[test]
fn primed_version_1_payloads_still_decode() {
    let sample = text(20_000);
    let raw = text(6_000);
    let dict = Dictionary::new(&sample);
    let mut v1 = vec![1, FLAG_PRIMED];
    v1.extend_from_slice(&dict.digest());
    let v1 = encode_with(primed_predictor(&sample, 1), &raw, v1);
    let mut v2 = vec![2, FLAG_PRIMED];
    v2.extend_from_slice(&dict.digest());
    let v2 = encode_with(primed_predictor(&sample, 2), &raw, v2);
    let v3 = encode_payload_primed(&dict, &raw, Vec::new());
    assert_eq!(v3[0], 3);
    assert_ne!(v1[34..], v2[34..]);
    assert_ne!(v2[34..], v3[34..]);
    for p in [&v1, &v2, &v3] {
        let mut out = Vec::new();
        decode_payload_primed(&dict, p, raw.len(), &mut out).unwrap();
        assert!(out == raw);
    }
}

/// Version 3's line and field models on what could trip them: no line
/// breaks, lines longer than a block, more fields on a line than it
/// records, empty lines, separators only, keys that repeat at every
/// distance; each with and without a dictionary (itself such data, or
/// logs), every block from the same primed state.
#[test]
fn version_3_round_trips_line_structure_edge_cases() {
    let logs = log_lines(65536);
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![b'\n'],
        vec![0; 65536],
        vec![b'\n'; 65536],
        vec![b' '; 65536],
        b", ".repeat(30000),
        b"k=v;".repeat(16384),
        noise(65536, 17),
        text(65536).into_iter().filter(|&b| b != b'\n').collect(),
        logs.clone(),
        logs[..20000].to_vec(),
    ];
    // One line of 60000 bytes of fields (past MAX_FIELDS), then short ones.
    let mut long: Vec<u8> = (0..12000u32)
        .flat_map(|i| format!("{:04} ", i % 9973).into_bytes())
        .collect();
    long.push(b'\n');
    long.extend_from_slice(&logs[..5000]);
    cases.push(long);
    // Lines whose first field (the key) repeats, with fields of random
    // bytes (separators included).
    let n = noise(60000, 23);
    let mut keyed = Vec::new();
    for (i, chunk) in n.chunks(37).enumerate() {
        keyed.extend_from_slice(format!("key{} ", i % 5).as_bytes());
        keyed.extend_from_slice(chunk);
        keyed.push(b'\n');
    }
    cases.push(keyed);
    let dicts = [
        Dictionary::new(&log_lines(100_000)),
        Dictionary::new(&noise(30000, 29)),
        Dictionary::new(&[b'\n'; 5000]),
        Dictionary::new(b""),
    ];
    for raw in &cases {
        let p = roundtrip(raw);
        assert_eq!(p[0], 3);
        for dict in &dicts {
            let primed = encode_payload_primed(dict, raw, Vec::new());
            assert_eq!(primed[0], 3);
            let mut out = Vec::new();
            decode_payload_primed(dict, &primed, raw.len(), &mut out).unwrap();
            assert!(out == *raw, "primed round trip of {} bytes", raw.len());
        }
    }
}

/// A damaged version-3 payload primed with a dictionary is an error or
/// other bytes, never a panic and never more than asked for.
#[test]
fn damaged_primed_version_3_payloads_are_errors() {
    let dict = Dictionary::new(&log_lines(50_000));
    let raw = log_lines(20_000);
    let p = encode_payload_primed(&dict, &raw, Vec::new());
    let mut out = Vec::new();
    decode_payload_primed(&dict, &p, raw.len(), &mut out).unwrap();
    assert!(out == raw);
    assert_eq!(
        decode_payload_primed(&dict, &p[..p.len() / 2], raw.len(), &mut Vec::new()),
        Err(CmError::Truncated)
    );
    for i in (34..p.len()).step_by(13) {
        let mut bad = p.clone();
        bad[i] ^= 0x44;
        let mut out = Vec::new();
        let r = decode_payload_primed(&dict, &bad, raw.len(), &mut out);
        assert!(out.len() <= raw.len());
        assert!(r.is_err() || out != raw, "damage at {i} went unnoticed");
    }
}
