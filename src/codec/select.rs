//! Per-block codec choice.

use std::sync::Arc;

use super::record::{decode_record, encode_record, RECORD_HEADER_LEN};
use super::{Codec, CodecError, CodecId, LlmCodec, RawCodec, ZstdCodec};

/// The codecs a volume can read, and the policy that picks one per block.
///
/// Policy (as ZFS does): keep the smallest encoding, and store raw unless
/// the winner saves at least 1/8 of the raw size. The fast path
/// ([`CodecSet::encode_block`]) tries zstd only; the archival path
/// ([`CodecSet::encode_block_best`]) uses zstd's strongest level and also
/// tries the model, unless a cheap
/// pre-pass (zstd saving less than 1/32) says the data is incompressible.
pub struct CodecSet {
    raw: RawCodec,
    zstd: ZstdCodec,
    /// zstd at its strongest level, for the archival path: the same record
    /// format (any level decodes), a few milliseconds per block, nothing
    /// next to the model.
    zstd_best: ZstdCodec,
    llm: Option<Arc<LlmCodec>>,
}

impl Default for CodecSet {
    fn default() -> Self {
        CodecSet {
            raw: RawCodec,
            zstd: ZstdCodec::default(),
            zstd_best: ZstdCodec::new(ZstdCodec::ARCHIVE_LEVEL),
            llm: None,
        }
    }
}

impl CodecSet {
    pub fn with_llm(llm: Option<Arc<LlmCodec>>) -> Self {
        CodecSet {
            llm,
            ..CodecSet::default()
        }
    }

    pub fn llm(&self) -> Option<&Arc<LlmCodec>> {
        self.llm.as_ref()
    }

    pub fn get(&self, id: CodecId) -> Option<&dyn Codec> {
        match id {
            CodecId::Raw => Some(&self.raw),
            CodecId::Zstd => Some(&self.zstd),
            CodecId::Llm => self.llm.as_deref().map(|c| c as &dyn Codec),
        }
    }

    fn keep_or_raw(&self, best: Vec<u8>, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let payload = best.len() - RECORD_HEADER_LEN;
        if payload <= raw.len() - raw.len() / 8 {
            Ok(best)
        } else {
            encode_record(&self.raw, raw)
        }
    }

    /// Encodes one block with the fast codecs. Returns the complete record.
    pub fn encode_block(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let candidate = encode_record(&self.zstd, raw)?;
        self.keep_or_raw(candidate, raw)
    }

    /// Encodes one block with every codec worth trying and keeps the
    /// smallest. Without a model that may encode, this is the fast path.
    pub fn encode_block_best(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let zstd = encode_record(&self.zstd_best, raw)?;
        let zstd_payload = zstd.len() - RECORD_HEADER_LEN;
        let incompressible = zstd_payload >= raw.len() - raw.len() / 32;
        let llm = match &self.llm {
            Some(llm) if llm.can_encode() && !incompressible && !raw.is_empty() => {
                match encode_record(llm.as_ref(), raw) {
                    Ok(rec) => Some(rec),
                    Err(e) => {
                        log::warn!("llm encoding failed, keeping zstd: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        let best = match llm {
            Some(rec) if rec.len() < zstd.len() => rec,
            _ => zstd,
        };
        self.keep_or_raw(best, raw)
    }

    /// Encodes one block with exactly the codec `id` (tests, benchmarks).
    pub fn encode_block_with(&self, id: CodecId, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let codec = self.get(id).ok_or(CodecError::UnknownCodec(id as u8))?;
        encode_record(codec, raw)
    }

    /// Decodes and verifies one record.
    pub fn decode_block(&self, record: &[u8], block_size: usize) -> Result<Vec<u8>, CodecError> {
        decode_record(record, block_size, |id| self.get(id))
    }
}

/// The codec a record was written with, from its header byte.
pub fn record_codec(record: &[u8]) -> Option<CodecId> {
    record.get(1).and_then(|&b| CodecId::from_u8(b))
}
