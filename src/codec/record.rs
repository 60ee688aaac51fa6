//! The block record: a fixed 20-byte little-endian header followed by the
//! codec payload. The layout is specified in docs/FORMAT.md; keep both in step.
//!
//! ```text
//! offset size field
//!      0    1 version      (1)
//!      1    1 codec id     (0 raw, 1 zstd, 2 llm, 3 lzma: `CodecId`)
//!      2    2 reserved     (0)
//!      4    4 codec arg    (codec-specific, 0 for every codec today)
//!      8    4 raw length   (bytes after decoding, <= block size)
//!     12    4 crc32c       (Castagnoli CRC of the raw bytes)
//!     16    4 payload len  (bytes that follow the header)
//!     20    n payload
//! ```

use super::{Codec, CodecError, CodecId};

pub const RECORD_VERSION: u8 = 1;
pub const RECORD_HEADER_LEN: usize = 20;

/// The parsed header of a block record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub codec: CodecId,
    pub codec_arg: u32,
    pub raw_len: u32,
    pub crc32c: u32,
    pub payload_len: u32,
}

impl RecordHeader {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(RECORD_VERSION);
        out.push(self.codec as u8);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.codec_arg.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.crc32c.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
    }

    /// Parses and validates a header against the record it starts, without
    /// looking at the payload. `max_raw_len` is the volume's block size.
    pub fn parse(record: &[u8], max_raw_len: usize) -> Result<RecordHeader, CodecError> {
        RecordHeader::parse_prefix(record, record.len(), max_raw_len)
    }

    /// As [`RecordHeader::parse`], from the first bytes of a record of
    /// `record_len` bytes (a segment row's copy of its header).
    pub fn parse_prefix(
        record: &[u8],
        record_len: usize,
        max_raw_len: usize,
    ) -> Result<RecordHeader, CodecError> {
        if record.len() < RECORD_HEADER_LEN {
            return Err(CodecError::Truncated {
                needed: RECORD_HEADER_LEN,
                have: record.len(),
            });
        }
        let u32_at = |o: usize| u32::from_le_bytes(record[o..o + 4].try_into().unwrap());
        if record[0] != RECORD_VERSION {
            return Err(CodecError::UnknownVersion(record[0]));
        }
        let codec = CodecId::from_u8(record[1]).ok_or(CodecError::UnknownCodec(record[1]))?;
        let header = RecordHeader {
            codec,
            codec_arg: u32_at(4),
            raw_len: u32_at(8),
            crc32c: u32_at(12),
            payload_len: u32_at(16),
        };
        if header.raw_len as usize > max_raw_len {
            return Err(CodecError::RawTooLarge {
                declared: header.raw_len.into(),
                limit: max_raw_len,
            });
        }
        let actual = record_len.saturating_sub(RECORD_HEADER_LEN);
        if header.payload_len as usize != actual {
            return Err(CodecError::PayloadLength {
                declared: header.payload_len.into(),
                actual,
            });
        }
        Ok(header)
    }
}

/// Encodes `raw` with `codec` into a complete record.
pub fn encode_record(codec: &dyn Codec, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + codec.payload_capacity(raw.len()));
    out.resize(RECORD_HEADER_LEN, 0);
    let crc = codec.encode_summed(raw, &mut out)?;
    let payload_len = out.len() - RECORD_HEADER_LEN;
    let header = RecordHeader {
        codec: codec.id(),
        codec_arg: 0,
        raw_len: u32::try_from(raw.len()).expect("block larger than 4 GiB"),
        crc32c: crc,
        payload_len: u32::try_from(payload_len).expect("payload larger than 4 GiB"),
    };
    let mut head = Vec::with_capacity(RECORD_HEADER_LEN);
    header.write(&mut head);
    out[..RECORD_HEADER_LEN].copy_from_slice(&head);
    Ok(out)
}

/// Decodes a record with the codec its header names (looked up by `codec_for`)
/// and verifies length and checksum. Never returns unverified bytes.
pub fn decode_record<'a>(
    record: &[u8],
    max_raw_len: usize,
    codec_for: impl Fn(CodecId) -> Option<&'a dyn Codec>,
) -> Result<Vec<u8>, CodecError> {
    let header = RecordHeader::parse(record, max_raw_len)?;
    let codec = codec_for(header.codec).ok_or(CodecError::UnknownCodec(header.codec as u8))?;
    let raw_len = header.raw_len as usize;
    let mut out = Vec::with_capacity(raw_len);
    let actual = codec.decode_summed(&record[RECORD_HEADER_LEN..], raw_len, &mut out)?;
    if out.len() != raw_len {
        return Err(CodecError::LengthMismatch {
            expected: raw_len,
            actual: out.len(),
        });
    }
    if actual != header.crc32c {
        return Err(CodecError::Checksum {
            expected: header.crc32c,
            actual,
            context: codec.describe_payload(&record[RECORD_HEADER_LEN..]),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecSet, RawCodec, ZstdCodec};

    fn text(n: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog. "
            .iter()
            .cycle()
            .take(n)
            .copied()
            .collect()
    }

    #[test]
    fn a_raw_record_is_allocated_at_its_size() {
        // `Vec::with_capacity` gives exactly the capacity asked for, so a
        // record that had to grow would show a larger one.
        let raw = text(30_000);
        let rec = encode_record(&RawCodec, &raw).unwrap();
        assert_eq!(rec.len(), RECORD_HEADER_LEN + raw.len());
        assert_eq!(rec.capacity(), rec.len());
    }

    #[test]
    fn header_layout_is_little_endian() {
        let rec = encode_record(&RawCodec, b"abc").unwrap();
        assert_eq!(rec[0], RECORD_VERSION);
        assert_eq!(rec[1], CodecId::Raw as u8);
        assert_eq!(&rec[2..4], &[0, 0]);
        assert_eq!(&rec[4..8], &0u32.to_le_bytes());
        assert_eq!(&rec[8..12], &3u32.to_le_bytes());
        assert_eq!(&rec[12..16], &crc32c::crc32c(b"abc").to_le_bytes());
        assert_eq!(&rec[16..20], &3u32.to_le_bytes());
        assert_eq!(&rec[20..], b"abc");
    }

    #[test]
    fn set_picks_zstd_for_text_raw_for_noise() {
        let set = CodecSet::default();
        let rec = set.encode_block(&text(65536)).unwrap();
        assert_eq!(rec[1], CodecId::Zstd as u8);
        let noise = crate::codec::test_data::noise(65536, 0x9e37_79b9_7f4a_7c15u64);
        let rec = set.encode_block(&noise).unwrap();
        assert_eq!(rec[1], CodecId::Raw as u8);
        assert_eq!(set.decode_block(&rec, 65536).unwrap(), noise);
    }

    #[test]
    fn corrupt_records_are_errors() {
        let set = CodecSet::default();
        let data = text(10_000);
        let rec = encode_record(&ZstdCodec::default(), &data).unwrap();
        assert_eq!(set.decode_block(&rec, 65536).unwrap(), data);

        let e = set.decode_block(&rec[..10], 65536).unwrap_err();
        assert!(matches!(e, CodecError::Truncated { .. }));
        let e = set.decode_block(&rec[..rec.len() - 1], 65536).unwrap_err();
        assert!(matches!(e, CodecError::PayloadLength { .. }));
        let e = set.decode_block(&rec, 1000).unwrap_err();
        assert!(matches!(e, CodecError::RawTooLarge { .. }));

        let mut bad = rec.clone();
        bad[0] = 9;
        assert!(matches!(
            set.decode_block(&bad, 65536),
            Err(CodecError::UnknownVersion(9))
        ));
        let mut bad = rec.clone();
        bad[1] = 77;
        assert!(matches!(
            set.decode_block(&bad, 65536),
            Err(CodecError::UnknownCodec(77))
        ));
        let mut bad = rec.clone();
        bad[12] ^= 1;
        assert!(matches!(
            set.decode_block(&bad, 65536),
            Err(CodecError::Checksum { .. })
        ));
        let mut bad = rec.clone();
        let last = bad.len() - 5;
        bad[last] ^= 0x40;
        assert!(set.decode_block(&bad, 65536).is_err());
        // Raw length larger than what the zstd frame holds.
        let mut bad = rec;
        bad[8..12].copy_from_slice(&20_000u32.to_le_bytes());
        assert!(set.decode_block(&bad, 65536).is_err());
    }

    /// The LZMA2 record layout of docs/FORMAT.md, written by an independent
    /// implementation: fuzz/seeds/decode_block/seed-lzma was made with
    /// Python's lzma module (FORMAT_RAW, FILTER_LZMA2, preset 9 | EXTREME,
    /// dict_size 4096) and a CRC-32C of its own, from the 2820 bytes of
    /// `(b"\x01\x00\x02\x00rec" + bytes(range(40))) * 60`.
    #[test]
    fn lzma_record_from_another_implementation_decodes() {
        let rec = include_bytes!("../../fuzz/seeds/decode_block/seed-lzma");
        assert_eq!(rec[1], CodecId::Lzma as u8);
        let out = CodecSet::default().decode_block(rec, 4096).unwrap();
        let unit: Vec<u8> = b"\x01\x00\x02\x00rec"
            .iter()
            .copied()
            .chain(0..40)
            .collect();
        assert_eq!(out, unit.repeat(60));
    }
}
