use super::{Codec, CodecError, CodecId};

/// Stores bytes as they are: the fallback for incompressible data.
pub struct RawCodec;

impl Codec for RawCodec {
    fn id(&self) -> CodecId {
        CodecId::Raw
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(raw);
        Ok(())
    }

    // The payload is the input: reserving half of it made every raw record
    // grow once, a second allocation and a copy (about 8% of a 30-60 KB
    // file's close write-back: docs/MEASUREMENTS.md, "Raw records
    // allocated once").
    fn payload_capacity(&self, raw_len: usize) -> usize {
        raw_len
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if payload.len() != raw_len {
            return Err(CodecError::LengthMismatch {
                expected: raw_len,
                actual: payload.len(),
            });
        }
        out.extend_from_slice(payload);
        Ok(())
    }
}
