//! The `cm` codec: a model-free context-mixing compressor for archived
//! data that is still read now and then.
//!
//! Each block is coded as one sequential stream of bits, most significant
//! bit of each byte first, with a binary arithmetic coder ([`arith`]) driven
//! by a [`predictor::Predictor`]: context models of orders 0-6 and 8, word,
//! word-pair and sparse contexts over bit-history states ([`state`],
//! [`slots`]), a match model ([`matcher`]), three mixers and a final mixer
//! ([`mixer`]), and three APM stages. Everything is integer arithmetic, so
//! a payload decodes the same on every machine.
//!
//! This module is the payload container: a version byte, a flags byte, and
//! the arithmetic-coded stream (docs/FORMAT.md, "cm payload").

mod arith;
mod error;
mod matcher;
mod mixer;
mod predictor;
mod slots;
mod state;
#[cfg(test)]
mod tests;

pub use error::CmError;
pub use predictor::Predictor;

use super::{Codec, CodecError, CodecId};

/// The payload format version this build writes and reads.
pub const PAYLOAD_VERSION: u8 = 1;
/// Bytes before the coded stream: version and flags.
pub const PAYLOAD_HEADER_LEN: usize = 2;

/// The cm codec. Holds no tables: each block gets a fresh predictor, so the
/// codec is free to construct and shares nothing between threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CmCodec;

/// Encodes `raw` into a complete cm payload appended to `out`.
pub fn encode_payload(raw: &[u8], out: Vec<u8>) -> Vec<u8> {
    let mut out = out;
    out.push(PAYLOAD_VERSION);
    out.push(0);
    let mut p = Predictor::new(raw.len());
    let mut enc = arith::Encoder::new(out);
    for &byte in raw {
        for i in (0..8).rev() {
            let bit = u32::from(byte >> i) & 1;
            enc.encode(bit, p.p());
            p.update(bit);
        }
    }
    enc.finish()
}

/// Decodes a cm payload of `raw_len` bytes into `out` (cleared by the
/// caller). Never writes more than `raw_len` bytes, and runs exactly
/// `8 * raw_len` coding steps whatever the payload holds.
pub fn decode_payload(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CmError> {
    if payload.len() < PAYLOAD_HEADER_LEN {
        return Err(CmError::Truncated);
    }
    if payload[0] != PAYLOAD_VERSION {
        return Err(CmError::UnknownVersion(payload[0]));
    }
    if payload[1] != 0 {
        return Err(CmError::UnknownFlags(payload[1]));
    }
    let mut dec = arith::Decoder::new(&payload[PAYLOAD_HEADER_LEN..]);
    let mut p = Predictor::new(raw_len);
    out.reserve_exact(raw_len);
    for _ in 0..raw_len {
        let mut byte = 0u32;
        for _ in 0..8 {
            let bit = dec.decode(p.p())?;
            p.update(bit);
            byte = (byte << 1) | bit;
        }
        out.push(byte as u8);
    }
    dec.finish()
}

impl Codec for CmCodec {
    fn id(&self) -> CodecId {
        CodecId::Cm
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        *out = encode_payload(raw, std::mem::take(out));
        Ok(())
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        decode_payload(payload, raw_len, out).map_err(|e| CodecError::Corrupt {
            codec: CodecId::Cm,
            detail: e.to_string(),
        })
    }
}
