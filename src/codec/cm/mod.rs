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
//! This module is the payload container: a version byte, a flags byte, for a
//! primed payload the digest of its dictionary, and the arithmetic-coded
//! stream (docs/FORMAT.md, "cm payload").
//!
//! **Dictionaries.** A [`Dictionary`] is a predictor that has learnt some
//! sample bytes (update only, nothing coded); each block coded with it
//! starts from a clone of that state, so its contexts and matches reach into
//! the sample. A payload coded so names the dictionary's SHA-256, and only
//! that dictionary decodes it. The volume codec ([`CmCodec`]) codes without
//! one; [`DictionaryCmCodec`] codes with a volume's [`Dictionaries`].

pub(crate) mod arith;
mod dictionaries;
mod error;
mod matcher;
pub(crate) mod mixer;
mod predictor;
mod slots;
pub(crate) mod state;
#[cfg(test)]
mod tests;

pub use crate::model::digest_from_hex;
pub use dictionaries::{Dictionaries, DictionaryCmCodec, StoredDictionary};
pub use error::CmError;
pub use predictor::Predictor;

use sha2::{Digest, Sha256};

use super::{Codec, CodecError, CodecId};

/// The payload format version this build writes. It reads this one and
/// versions 1 and 2 (the predictors without version 2's structure models
/// and without version 3's line and column models: see docs/CM.md).
pub const PAYLOAD_VERSION: u8 = 3;
/// The oldest payload version this build reads.
pub const OLDEST_PAYLOAD_VERSION: u8 = 1;
/// Bytes before the coded stream: version and flags (a primed payload has
/// the dictionary digest after them).
pub const PAYLOAD_HEADER_LEN: usize = 2;
/// Flags bit: the stream was coded by a predictor primed with a dictionary,
/// whose SHA-256 follows the flags byte.
pub const FLAG_PRIMED: u8 = 1;
/// A primed predictor is sized for its dictionary and a block of this many
/// bytes (the tables stop growing at this size anyway).
pub const PRIMED_BLOCK_LEN: usize = 65536;

/// A predictor primed with sample bytes, cloned for each block: the
/// current version's, and an older version's only once a payload of that
/// version asks for it (priming costs about as much as coding the bytes).
pub struct Dictionary {
    digest: [u8; 32],
    bytes: Vec<u8>,
    primed: Predictor,
    /// Versions 1 .. `PAYLOAD_VERSION - 1`, by version - 1.
    primed_older: [std::sync::OnceLock<Predictor>; PAYLOAD_VERSION as usize - 1],
}

fn primed_predictor(bytes: &[u8], version: u8) -> Predictor {
    let mut p = Predictor::new(bytes.len() + PRIMED_BLOCK_LEN, version);
    p.prime(bytes);
    p
}

impl Dictionary {
    /// Primes a predictor (sized for `bytes` and a block of
    /// [`PRIMED_BLOCK_LEN`]) with `bytes`.
    pub fn new(bytes: &[u8]) -> Dictionary {
        Dictionary {
            digest: Sha256::digest(bytes).into(),
            bytes: bytes.to_vec(),
            primed: primed_predictor(bytes, PAYLOAD_VERSION),
            primed_older: Default::default(),
        }
    }

    /// The SHA-256 of the dictionary's bytes, as payloads name it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The primed predictor of payload `version`.
    fn primed(&self, version: u8) -> Predictor {
        if version == PAYLOAD_VERSION {
            self.primed.clone()
        } else {
            self.primed_older[usize::from(version) - 1]
                .get_or_init(|| primed_predictor(&self.bytes, version))
                .clone()
        }
    }
}

fn encode_with(mut p: Predictor, raw: &[u8], out: Vec<u8>) -> Vec<u8> {
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

fn decode_with(
    mut p: Predictor,
    stream: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), CmError> {
    let mut dec = arith::Decoder::new(stream);
    out.reserve_exact(raw_len);
    // One sequential stream: every byte is final once decoded, so the
    // prefix is handed on every few KiB to a reader waiting for it.
    let reporting = super::progress::active();
    for i in 0..raw_len {
        let mut byte = 0u32;
        for _ in 0..8 {
            let bit = dec.decode(p.p())?;
            p.update(bit);
            byte = (byte << 1) | bit;
        }
        out.push(byte as u8);
        if (i + 1) % super::progress::STEP == 0 {
            if reporting {
                super::progress::report(out, super::progress::Checked::No);
            }
            if super::progress::cancelled() {
                return Err(CmError::Cancelled);
            }
        }
    }
    dec.finish()
}

/// Whether `payload` (a cm payload) was primed with a dictionary.
pub fn payload_primed(payload: &[u8]) -> bool {
    payload.len() >= PAYLOAD_HEADER_LEN && payload[1] == FLAG_PRIMED
}

/// The payload version of a cm payload (its first byte), if it has one.
pub fn payload_version(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

/// A parsed payload header: the version, the dictionary digest it names
/// (if primed), and the coded stream.
struct Header<'a> {
    version: u8,
    dictionary: Option<[u8; 32]>,
    stream: &'a [u8],
}

/// The dictionary a cm payload was primed with, if it was (and its header
/// is sound).
pub fn payload_dictionary(payload: &[u8]) -> Option<[u8; 32]> {
    parse(payload).ok().and_then(|h| h.dictionary)
}

/// Checks the header of `payload`.
fn parse(payload: &[u8]) -> Result<Header<'_>, CmError> {
    if payload.len() < PAYLOAD_HEADER_LEN {
        return Err(CmError::Truncated);
    }
    let version = payload[0];
    if !(OLDEST_PAYLOAD_VERSION..=PAYLOAD_VERSION).contains(&version) {
        return Err(CmError::UnknownVersion(version));
    }
    let (dictionary, stream) = match payload[1] {
        0 => (None, &payload[PAYLOAD_HEADER_LEN..]),
        FLAG_PRIMED => {
            let end = PAYLOAD_HEADER_LEN + 32;
            let digest = payload
                .get(PAYLOAD_HEADER_LEN..end)
                .ok_or(CmError::Truncated)?;
            (Some(digest.try_into().unwrap()), &payload[end..])
        }
        f => return Err(CmError::UnknownFlags(f)),
    };
    Ok(Header {
        version,
        dictionary,
        stream,
    })
}

/// Encodes `raw` with `dict` into a primed payload appended to `out`.
pub fn encode_payload_primed(dict: &Dictionary, raw: &[u8], mut out: Vec<u8>) -> Vec<u8> {
    out.push(PAYLOAD_VERSION);
    out.push(FLAG_PRIMED);
    out.extend_from_slice(&dict.digest);
    encode_with(dict.primed(PAYLOAD_VERSION), raw, out)
}

/// Decodes a payload primed with `dict` (see [`decode_payload`]); a payload
/// without a dictionary, or naming another, is refused.
pub fn decode_payload_primed(
    dict: &Dictionary,
    payload: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), CmError> {
    let h = parse(payload)?;
    match h.dictionary {
        Some(d) if d == dict.digest => decode_with(dict.primed(h.version), h.stream, raw_len, out),
        named => Err(CmError::Dictionary {
            payload: named,
            given: Some(dict.digest),
        }),
    }
}

/// The cm codec. Holds no tables: each block gets a fresh predictor, so the
/// codec is free to construct and shares nothing between threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CmCodec;

/// Encodes `raw` into a complete cm payload appended to `out`.
pub fn encode_payload(raw: &[u8], out: Vec<u8>) -> Vec<u8> {
    encode_payload_version(raw, PAYLOAD_VERSION, out)
}

/// Encodes `raw` as a payload of `version` (any this build reads: for the
/// tests that pin each version's stream, and for measuring one version
/// against another).
pub fn encode_payload_version(raw: &[u8], version: u8, mut out: Vec<u8>) -> Vec<u8> {
    out.push(version);
    out.push(0);
    encode_with(Predictor::new(raw.len(), version), raw, out)
}

/// Decodes a cm payload of `raw_len` bytes into `out` (cleared by the
/// caller). Never writes more than `raw_len` bytes, and runs exactly
/// `8 * raw_len` coding steps whatever the payload holds. A primed payload
/// is refused (it needs its dictionary: [`decode_payload_primed`]).
pub fn decode_payload(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CmError> {
    let h = parse(payload)?;
    match h.dictionary {
        None => decode_with(Predictor::new(raw_len, h.version), h.stream, raw_len, out),
        named => Err(CmError::Dictionary {
            payload: named,
            given: None,
        }),
    }
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
        decode_payload(payload, raw_len, out).map_err(CmError::into_codec_error)
    }
}
