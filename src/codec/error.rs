use std::fmt;

use super::CodecId;

/// Why a block record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The record is shorter than its header or than the payload it declares.
    Truncated { needed: usize, have: usize },
    /// The header names a format version this build does not read.
    UnknownVersion(u8),
    /// The header names a codec this build does not have.
    UnknownCodec(u8),
    /// The declared raw length is larger than the volume's block size.
    RawTooLarge { declared: u64, limit: usize },
    /// The payload length in the header disagrees with the record length.
    PayloadLength { declared: u64, actual: usize },
    /// The codec rejected the payload.
    Corrupt { codec: CodecId, detail: String },
    /// Decoding produced a different number of bytes than declared.
    LengthMismatch { expected: usize, actual: usize },
    /// The decoded bytes do not match the recorded checksum. `context`
    /// names what decoded them (the llm codec's engine fingerprints).
    Checksum {
        expected: u32,
        actual: u32,
        context: Option<String>,
    },
    /// The block was coded by a different model engine than the one loaded.
    EngineMismatch { block: String, engine: String },
    /// The model engine failed (or is not loaded).
    Engine(String),
    /// Encoding failed (a codec library error).
    Encode { codec: CodecId, detail: String },
    /// The decode was stopped before its end (`progress::with_cancel`: the
    /// filesystem is being unmounted); says nothing about the block.
    Cancelled,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated { needed, have } => {
                write!(f, "record truncated: need {needed} bytes, have {have}")
            }
            CodecError::UnknownVersion(v) => write!(f, "unknown block record version {v}"),
            CodecError::UnknownCodec(c) => write!(f, "unknown codec id {c}"),
            CodecError::RawTooLarge { declared, limit } => {
                write!(
                    f,
                    "declared raw length {declared} exceeds the block size {limit}"
                )
            }
            CodecError::PayloadLength { declared, actual } => write!(
                f,
                "header declares a {declared}-byte payload but the record holds {actual}"
            ),
            CodecError::Corrupt { codec, detail } => {
                write!(f, "{} payload is corrupt: {detail}", codec.name())
            }
            CodecError::LengthMismatch { expected, actual } => {
                write!(f, "decoded {actual} bytes, expected {expected}")
            }
            CodecError::Checksum {
                expected,
                actual,
                context,
            } => {
                write!(
                    f,
                    "checksum mismatch: record says {expected:#010x}, data gives {actual:#010x}"
                )?;
                if let Some(c) = context {
                    write!(f, " ({c})")?;
                }
                Ok(())
            }
            CodecError::EngineMismatch { block, engine } => write!(
                f,
                "block was coded by model engine {block}, but the loaded engine is {engine}"
            ),
            CodecError::Engine(d) => write!(f, "model engine: {d}"),
            CodecError::Cancelled => write!(f, "decode stopped: the volume is being unmounted"),
            CodecError::Encode { codec, detail } => {
                write!(f, "{} encoding failed: {detail}", codec.name())
            }
        }
    }
}

impl std::error::Error for CodecError {}
