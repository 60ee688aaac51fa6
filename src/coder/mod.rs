//! Entropy coding: a range coder over integer frequency tables, and the
//! small trait through which a probability model drives it.
//!
//! Pure Rust, no I/O. A model ([`SymbolModel`]) says, one symbol at a time,
//! how likely each symbol is as a [`FreqTable`]; [`encode_symbols`] and
//! [`decode_symbols`] run the [`range`] coder with those tables. Decoding
//! works only if the model produces bit-identical tables on both sides;
//! [`FreqTable::from_logits`] is exact on every platform, so that burden
//! rests on whatever produces the logits (see the model contract in
//! docs/DESIGN.md).
//!
//! Decoding arbitrary bytes never panics and never loops: it runs exactly
//! `count` steps and reads at most [`range::OVERRUN_SLACK`] bytes past the
//! end. Like any arithmetic coder it cannot notice most corruption (every
//! byte string decodes to *some* symbols); the block checksum above this
//! layer does.

mod div;
mod error;
mod exp;
mod freq;
pub mod range;

#[cfg(test)]
mod tests;

pub use error::CoderError;
pub use freq::{FreqTable, MAX_SYMBOLS, TOTAL, TOTAL_BITS};

/// A sequential probability model: before each symbol it gives the table to
/// code it with, then is told which symbol it was. The encoder and the
/// decoder each drive their own instance through the same calls, so equal
/// models in equal states give equal tables.
pub trait SymbolModel {
    /// The model's own error (inference failed, ...); coder errors convert
    /// into it so that one `?` serves both.
    type Error: From<CoderError>;

    /// The distribution of the next symbol.
    fn table(&mut self) -> Result<&FreqTable, Self::Error>;

    /// Records that the next symbol was `symbol`, which is within the last
    /// table returned.
    fn update(&mut self, symbol: usize);
}

/// Encodes `symbols` with the tables `model` gives.
pub fn encode_symbols<M: SymbolModel>(
    model: &mut M,
    symbols: &[usize],
) -> Result<Vec<u8>, M::Error> {
    let mut enc = range::Encoder::new();
    for &symbol in symbols {
        let table = model.table()?;
        if symbol >= table.symbols() {
            return Err(CoderError::SymbolOutOfRange {
                symbol,
                symbols: table.symbols(),
            }
            .into());
        }
        enc.encode(table.cum(symbol), table.freq(symbol))?;
        model.update(symbol);
    }
    Ok(enc.finish())
}

/// Decodes `count` symbols from `bytes`, which must be exactly what
/// [`encode_symbols`] returned for `count` symbols: input left unread at the
/// end is an error, and so is reading more than [`range::OVERRUN_SLACK`]
/// bytes past it.
pub fn decode_symbols<M: SymbolModel>(
    model: &mut M,
    bytes: &[u8],
    count: usize,
) -> Result<Vec<usize>, M::Error> {
    let mut dec = range::Decoder::new(bytes);
    // `count` comes from the caller (a block's declared size), but do not
    // trust it for a large allocation up front.
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let table = model.table()?;
        let symbol = table.symbol_for(dec.target())?;
        dec.consume(table.cum(symbol), table.freq(symbol))?;
        model.update(symbol);
        out.push(symbol);
    }
    dec.finish()?;
    Ok(out)
}
