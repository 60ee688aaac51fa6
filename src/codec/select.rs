//! Per-block codec choice.

use super::record::{decode_record, encode_record, RECORD_HEADER_LEN};
use super::{Codec, CodecError, CodecId, RawCodec, ZstdCodec};

/// The codecs a volume can read, and the policy that picks one per block.
///
/// Policy (as ZFS does): try each compressing codec, keep the smallest, and
/// store raw unless the winner saves at least 1/8 of the raw size.
pub struct CodecSet {
    raw: RawCodec,
    zstd: ZstdCodec,
}

impl Default for CodecSet {
    fn default() -> Self {
        CodecSet {
            raw: RawCodec,
            zstd: ZstdCodec::default(),
        }
    }
}

impl CodecSet {
    pub fn get(&self, id: CodecId) -> Option<&dyn Codec> {
        match id {
            CodecId::Raw => Some(&self.raw),
            CodecId::Zstd => Some(&self.zstd),
        }
    }

    /// Encodes one block, choosing the codec. Returns the complete record.
    pub fn encode_block(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let candidate = encode_record(&self.zstd, raw)?;
        let payload = candidate.len() - RECORD_HEADER_LEN;
        if payload <= raw.len() - raw.len() / 8 {
            Ok(candidate)
        } else {
            encode_record(&self.raw, raw)
        }
    }

    /// Decodes and verifies one record.
    pub fn decode_block(&self, record: &[u8], block_size: usize) -> Result<Vec<u8>, CodecError> {
        decode_record(record, block_size, |id| self.get(id))
    }
}
