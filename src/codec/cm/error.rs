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
    /// The payload was primed with a dictionary (`payload`: its SHA-256)
    /// other than the one given (`None`: decoded without one), or was not
    /// primed (`payload` None) but a dictionary was given.
    Dictionary {
        payload: Option<[u8; 32]>,
        given: Option<[u8; 32]>,
    },
    /// The payload was primed with a dictionary the volume does not hold.
    MissingDictionary([u8; 32]),
    /// The payload was primed with a dictionary whose stored bytes do not
    /// match its SHA-256.
    DamagedDictionary([u8; 32]),
    /// The decode was stopped (`progress::with_cancel`); the payload may
    /// be fine.
    Cancelled,
}

impl CmError {
    /// The block-level error: a cancelled decode stays a cancellation,
    /// everything else means the payload is corrupt.
    pub fn into_codec_error(self) -> crate::codec::CodecError {
        match self {
            CmError::Cancelled => crate::codec::CodecError::Cancelled,
            e => crate::codec::CodecError::Corrupt {
                codec: crate::codec::CodecId::Cm,
                detail: e.to_string(),
            },
        }
    }
}

pub(super) fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
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
            CmError::Dictionary { payload, given } => match (payload, given) {
                (Some(p), None) => write!(f, "the payload needs dictionary {}", hex(p)),
                (Some(p), Some(g)) => {
                    write!(f, "the payload needs dictionary {}, not {}", hex(p), hex(g))
                }
                (None, _) => write!(f, "the payload was coded without a dictionary"),
            },
            CmError::MissingDictionary(d) => write!(
                f,
                "the payload needs dictionary {}, which the volume does not hold",
                hex(d)
            ),
            CmError::DamagedDictionary(d) => write!(
                f,
                "the payload needs dictionary {}, whose stored bytes are damaged \
                 (checksum mismatch)",
                hex(d)
            ),
            CmError::Cancelled => write!(f, "decode stopped: the volume is being unmounted"),
        }
    }
}

impl std::error::Error for CmError {}
