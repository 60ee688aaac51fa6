use super::*;

fn round_trip(raw: &[u8]) -> Vec<u8> {
    let payload = encode_payload(raw, Vec::new());
    let mut out = Vec::new();
    decode_payload(&payload, raw.len(), &mut out).unwrap();
    assert_eq!(out, raw);
    payload
}

#[test]
fn empty_and_tiny_blocks_round_trip() {
    for n in 0..40 {
        round_trip(&crate::codec::test_data::noise(n, 7 + n as u64));
    }
}
