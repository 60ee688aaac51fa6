//! Block codecs and the block record container.
//!
//! A codec turns the raw bytes of one logical block into a payload and back;
//! it knows nothing of files, SQL or FUSE. [`record`] wraps a payload in a
//! self-describing header (codec id, raw length, checksum) so that a stored
//! block can be verified on its own. [`CodecSet`] picks, per block, the
//! smallest encoding among the codecs it holds.

mod error;
pub mod llm;
mod lzma_codec;
mod raw;
pub mod record;
mod select;
mod zstd_codec;

pub use error::CodecError;
pub use llm::{payload_portable, LlmCodec};
pub use lzma_codec::LzmaCodec;
pub use raw::RawCodec;
pub use record::{decode_record, encode_record, RecordHeader, RECORD_HEADER_LEN};
pub use select::{record_codec, CodecSet};
pub use zstd_codec::ZstdCodec;

/// Identifies a codec in a block record. The numbers are part of the on-disk
/// format (docs/FORMAT.md) and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CodecId {
    Raw = 0,
    Zstd = 1,
    Llm = 2,
    /// LZMA2 (xz -9e) without the .xz container; archival path only.
    Lzma = 3,
}

impl CodecId {
    pub fn from_u8(v: u8) -> Option<CodecId> {
        match v {
            0 => Some(CodecId::Raw),
            1 => Some(CodecId::Zstd),
            2 => Some(CodecId::Llm),
            3 => Some(CodecId::Lzma),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CodecId::Raw => "raw",
            CodecId::Zstd => "zstd",
            CodecId::Llm => "llm",
            CodecId::Lzma => "lzma",
        }
    }

    pub const ALL: [CodecId; 4] = [CodecId::Raw, CodecId::Zstd, CodecId::Llm, CodecId::Lzma];
}

/// One block codec. Implementations are deterministic: the same input gives
/// the same payload, and `decode` never writes more than `raw_len` bytes.
pub trait Codec: Send + Sync {
    fn id(&self) -> CodecId;

    /// Appends the encoding of `raw` to `out`.
    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes `payload` into `out`, which the caller has cleared. The result
    /// must be exactly `raw_len` bytes; anything else is an error, and the
    /// codec must not allocate more than `raw_len` bytes of output.
    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// What produced `payload`, for error messages (the llm codec names the
    /// engine fingerprints).
    fn describe_payload(&self, _payload: &[u8]) -> Option<String> {
        None
    }
}

/// Test data shared by the codec modules' tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// `n` bytes of xorshift64 noise from `seed`: incompressible, reproducible.
    pub fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}
