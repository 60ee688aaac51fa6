//! Block codecs and the block record container.
//!
//! A codec turns the raw bytes of one logical block into a payload and back;
//! it knows nothing of files, SQL or FUSE. [`record`] wraps a payload in a
//! self-describing header (codec id, raw length, checksum) so that a stored
//! block can be verified on its own. [`CodecSet`] picks, per block, the
//! smallest encoding among the codecs it holds.

pub mod cm;
mod crc_combine;
mod error;
pub mod llm;
mod lzma_codec;
pub mod media;
pub mod progress;
mod raw;
pub mod record;
mod select;
mod zstd_codec;
mod zstd_frames;

pub use cm::CmCodec;
pub use error::CodecError;
pub use llm::{payload_portable, LlmCodec};
pub use lzma_codec::LzmaCodec;
pub use media::MediaCodec;
pub use raw::RawCodec;
pub use record::{decode_record, encode_record, RecordHeader, RECORD_HEADER_LEN};
pub use select::{record_codec, record_dictionary, CodecSet};
pub use zstd_codec::{span_prefix_len, Span, ZstdCodec};

/// Declares [`CodecId`] and everything derived from the list of codecs: the
/// one place a codec's number, name and order are written. Adding a codec
/// is a line here; the compiler then points at every `match` that must
/// handle it (`CodecSet::get`, `store::Feature::of_codec`).
macro_rules! codec_ids {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $name:literal;)*) => {
        /// Identifies a codec in a block record. The numbers are part of the
        /// on-disk format (docs/FORMAT.md) and never change meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum CodecId {
            $($(#[$doc])* $variant = $id,)*
        }

        impl CodecId {
            /// Every codec, in id order.
            pub const ALL: [CodecId; [$($id),*].len()] = [$(CodecId::$variant),*];

            pub fn from_u8(v: u8) -> Option<CodecId> {
                match v {
                    $($id => Some(CodecId::$variant),)*
                    _ => None,
                }
            }

            /// The codec's name in `llmfs stats`, `--json` output and
            /// `--codecs` lists.
            pub fn name(self) -> &'static str {
                match self {
                    $(CodecId::$variant => $name,)*
                }
            }
        }
    };
}

codec_ids! {
    Raw = 0, "raw";
    Zstd = 1, "zstd";
    Llm = 2, "llm";
    /// LZMA2 (xz -9e) without the .xz container; archival path only.
    Lzma = 3, "lzma";
    /// Context mixing without a model (src/codec/cm); archival path.
    Cm = 4, "cm";
    /// Raw images and PCM audio by modality models (src/codec/media);
    /// archival path.
    Media = 5, "media";
}

impl CodecId {
    /// The codec a name stands for.
    pub fn from_name(name: &str) -> Option<CodecId> {
        CodecId::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Codecs from the strongest (and slowest to decode) to the weakest:
    /// the order in which reports list the archival choice.
    pub const BY_STRENGTH: [CodecId; CodecId::ALL.len()] = [
        CodecId::Llm,
        CodecId::Cm,
        CodecId::Media,
        CodecId::Lzma,
        CodecId::Zstd,
        CodecId::Raw,
    ];
}

/// One block codec. Implementations are deterministic: the same input gives
/// the same payload, and `decode` never writes more than `raw_len` bytes.
pub trait Codec: Send + Sync {
    fn id(&self) -> CodecId;

    /// Appends the encoding of `raw` to `out`.
    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Bytes to reserve for the payload of `raw_len` raw bytes before
    /// encoding, so that the record is allocated once: half the input by
    /// default (what compression usually leaves).
    fn payload_capacity(&self, raw_len: usize) -> usize {
        raw_len / 2
    }

    /// Decodes `payload` into `out`, which the caller has cleared. The result
    /// must be exactly `raw_len` bytes; anything else is an error, and the
    /// codec must not allocate more than `raw_len` bytes of output.
    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// [`Codec::encode`], returning the CRC-32C of `raw` that the record
    /// header carries. A codec that checksums parts of `raw` anyway (the
    /// zstd frame table) combines theirs instead of reading the block a
    /// second time.
    fn encode_summed(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<u32, CodecError> {
        self.encode(raw, out)?;
        Ok(crc32c::crc32c(raw))
    }

    /// [`Codec::decode`], returning the CRC-32C of the bytes it appended,
    /// which the caller compares with the record header's. As with
    /// [`Codec::encode_summed`], a codec that has checked each part of its
    /// output against a checksum of its own combines those.
    fn decode_summed(
        &self,
        payload: &[u8],
        raw_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<u32, CodecError> {
        let at = out.len();
        self.decode(payload, raw_len, out)?;
        Ok(crc32c::crc32c(&out[at..]))
    }

    /// What produced `payload`, for error messages (the llm codec names the
    /// engine fingerprints).
    fn describe_payload(&self, _payload: &[u8]) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod id_tests {
    use super::CodecId;

    #[test]
    fn ids_names_and_orders_agree() {
        for (i, c) in CodecId::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i, "ALL is in id order without gaps");
            assert_eq!(CodecId::from_u8(c as u8), Some(c));
            assert_eq!(CodecId::from_name(c.name()), Some(c));
        }
        assert_eq!(CodecId::from_u8(CodecId::ALL.len() as u8), None);
        let mut by_strength = CodecId::BY_STRENGTH;
        by_strength.sort();
        assert_eq!(
            by_strength,
            CodecId::ALL,
            "BY_STRENGTH lists every codec once"
        );
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
