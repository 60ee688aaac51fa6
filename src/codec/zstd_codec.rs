use super::{Codec, CodecError, CodecId};

/// zstd at a fixed level: level 3 is the fast codec that new writes use,
/// level 19 the archival path's.
pub struct ZstdCodec {
    level: i32,
}

impl ZstdCodec {
    pub const DEFAULT_LEVEL: i32 = 3;
    /// The archival path's level (`zstd -19`).
    pub const ARCHIVE_LEVEL: i32 = 19;

    pub fn new(level: i32) -> ZstdCodec {
        ZstdCodec { level }
    }
}

impl Default for ZstdCodec {
    fn default() -> Self {
        ZstdCodec::new(Self::DEFAULT_LEVEL)
    }
}

impl Codec for ZstdCodec {
    fn id(&self) -> CodecId {
        CodecId::Zstd
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let compressed = zstd::bulk::compress(raw, self.level).map_err(|e| CodecError::Encode {
            codec: CodecId::Zstd,
            detail: e.to_string(),
        })?;
        out.extend_from_slice(&compressed);
        Ok(())
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        // `bulk::decompress` refuses output larger than its capacity argument,
        // so a hostile frame cannot make us allocate beyond the block size.
        let decoded =
            zstd::bulk::decompress(payload, raw_len).map_err(|e| CodecError::Corrupt {
                codec: CodecId::Zstd,
                detail: e.to_string(),
            })?;
        if decoded.len() != raw_len {
            return Err(CodecError::LengthMismatch {
                expected: raw_len,
                actual: decoded.len(),
            });
        }
        out.extend_from_slice(&decoded);
        Ok(())
    }
}
