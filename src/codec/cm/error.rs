use std::fmt;

/// Why a cm payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmError {
    /// The payload ends before its stream does.
    Truncated,
    /// The payload names a version this build does not read.
    UnknownVersion(u8),
    /// The payload sets flags this build does not know.
    UnknownFlags(u8),
    /// The stream ended this many bytes before the payload did.
    TrailingBytes(usize),
}

impl fmt::Display for CmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmError::Truncated => write!(f, "the coded stream is truncated"),
            CmError::UnknownVersion(v) => write!(f, "unknown cm payload version {v}"),
            CmError::UnknownFlags(b) => write!(f, "unknown cm payload flags {b:#04x}"),
            CmError::TrailingBytes(n) => {
                write!(f, "{n} bytes after the end of the coded stream")
            }
        }
    }
}

impl std::error::Error for CmError {}
