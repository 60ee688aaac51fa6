use std::fmt;

use crate::codec::cm::CmError;

/// Why a media payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The payload ends before its header, verbatim bytes or stream do.
    Truncated,
    /// The payload names a version this build does not read.
    UnknownVersion(u8),
    /// The payload names a layout kind this build does not know.
    UnknownKind(u8),
    /// A layout field is out of its range (the field's name and value).
    BadField(&'static str, u64),
    /// The layout does not fit the block's length.
    LayoutTooLong { needs: u64, raw_len: usize },
    /// A decoded sample falls outside its format's range.
    SampleRange(i64),
    /// The arithmetic-coded stream is cut short or followed by other bytes.
    Stream(CmError),
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaError::Truncated => write!(f, "the media payload is truncated"),
            MediaError::UnknownVersion(v) => write!(
                f,
                "unknown media payload version {v} (this build reads versions {}..={})",
                super::OLDEST_PAYLOAD_VERSION,
                super::PAYLOAD_VERSION
            ),
            MediaError::UnknownKind(k) => write!(f, "unknown media layout kind {k}"),
            MediaError::BadField(name, v) => {
                write!(f, "media layout field {name} = {v} is out of range")
            }
            MediaError::LayoutTooLong { needs, raw_len } => write!(
                f,
                "the media layout needs {needs} bytes but the block holds {raw_len}"
            ),
            MediaError::SampleRange(v) => write!(f, "decoded sample {v} is outside its format"),
            MediaError::Stream(e) => write!(f, "media stream: {e}"),
        }
    }
}

impl std::error::Error for MediaError {}

impl From<CmError> for MediaError {
    fn from(e: CmError) -> MediaError {
        MediaError::Stream(e)
    }
}
