//! The one error type of the coder layer.

use std::fmt;

/// Everything that can go wrong while building a frequency table, encoding or
/// decoding. Decoding arbitrary bytes ends in one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoderError {
    /// A table must have between 2 and [`MAX_SYMBOLS`](super::MAX_SYMBOLS) symbols.
    TableSize { symbols: usize },
    /// A frequency given to [`FreqTable::from_freqs`](super::FreqTable::from_freqs) was zero;
    /// a zero-frequency symbol could never be coded.
    ZeroFrequency { symbol: usize },
    /// Frequencies given to [`FreqTable::from_freqs`](super::FreqTable::from_freqs) did not
    /// add up to [`TOTAL`](super::TOTAL).
    TableSum { sum: u64 },
    /// `(cum_freq, freq)` does not describe a non-empty interval inside
    /// `[0, TOTAL)`.
    InvalidInterval { cum_freq: u32, freq: u32 },
    /// A symbol to encode is not in the model's table.
    SymbolOutOfRange { symbol: usize, symbols: usize },
    /// The coded value lies outside the interval being consumed: the bytes
    /// are not an encoding made with this model.
    Corrupt,
    /// The decoder read more zero bytes past the end of its input than any
    /// valid encoding needs: the input is truncated or not an encoding.
    Overrun { past_end: u32 },
    /// All symbols were decoded but input bytes were left over, which no
    /// valid encoding produces.
    TrailingBytes { unread: usize },
}

impl fmt::Display for CoderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoderError::TableSize { symbols } => write!(
                f,
                "frequency table with {symbols} symbols (must be 2..={})",
                super::MAX_SYMBOLS
            ),
            CoderError::ZeroFrequency { symbol } => {
                write!(f, "symbol {symbol} has frequency zero")
            }
            CoderError::TableSum { sum } => {
                write!(f, "frequencies sum to {sum}, not {}", super::TOTAL)
            }
            CoderError::InvalidInterval { cum_freq, freq } => write!(
                f,
                "invalid coding interval: cumulative frequency {cum_freq}, frequency {freq}"
            ),
            CoderError::SymbolOutOfRange { symbol, symbols } => {
                write!(f, "symbol {symbol} outside a table of {symbols} symbols")
            }
            CoderError::Corrupt => write!(f, "corrupt entropy-coded data"),
            CoderError::Overrun { past_end } => write!(
                f,
                "entropy-coded data ended early ({past_end} bytes read past the end)"
            ),
            CoderError::TrailingBytes { unread } => {
                write!(f, "entropy-coded data has {unread} unread trailing bytes")
            }
        }
    }
}

impl std::error::Error for CoderError {}
