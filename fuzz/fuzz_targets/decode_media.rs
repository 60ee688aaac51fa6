//! Arbitrary bytes as a media payload: the first two bytes give the
//! declared raw length (little-endian, at most 4096), the rest is the
//! payload. The decoder must return an error or exactly that many bytes,
//! never panic, hang or write more.
//!
//!   cargo fuzz run decode_media      (from the repository root)
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmfs::codec::media::decode_payload;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let raw_len = usize::from(u16::from_le_bytes([data[0], data[1]])) % 4097;
    let mut out = Vec::new();
    let ok = decode_payload(&data[2..], raw_len, &mut out).is_ok();
    assert!(out.len() <= raw_len);
    if ok {
        assert_eq!(out.len(), raw_len);
    }
});
