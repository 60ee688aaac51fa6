//! The block record: a fixed 20-byte little-endian header followed by the
//! codec payload. The layout is specified in docs/FORMAT.md; keep both in step.
//!
//! ```text
//! offset size field
//!      0    1 version      (1)
//!      1    1 codec id     (0 raw, 1 zstd)
//!      2    2 reserved     (0)
//!      4    4 codec arg    (codec-specific, 0 for raw and zstd)
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
        let actual = record.len() - RECORD_HEADER_LEN;
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
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + raw.len() / 2);
    out.resize(RECORD_HEADER_LEN, 0);
    codec.encode(raw, &mut out)?;
    let payload_len = out.len() - RECORD_HEADER_LEN;
    let header = RecordHeader {
        codec: codec.id(),
        codec_arg: 0,
        raw_len: u32::try_from(raw.len()).expect("block larger than 4 GiB"),
        crc32c: crc32c::crc32c(raw),
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
    codec.decode(&record[RECORD_HEADER_LEN..], raw_len, &mut out)?;
    if out.len() != raw_len {
        return Err(CodecError::LengthMismatch {
            expected: raw_len,
            actual: out.len(),
        });
    }
    let actual = crc32c::crc32c(&out);
    if actual != header.crc32c {
        return Err(CodecError::Checksum {
            expected: header.crc32c,
            actual,
        });
    }
    Ok(out)
}
