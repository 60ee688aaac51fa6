//! A volume's dictionaries, and the cm codec that uses them.
//!
//! A volume stores dictionaries (samples of its own data) by SHA-256 and
//! names one as current. The [`DictionaryCmCodec`] primes every block it
//! encodes with the current one, so what repeats across blocks and files
//! (log line templates, headers, boilerplate) costs little while each block
//! still decodes on its own; it decodes a primed payload with whichever
//! dictionary the payload names. Priming costs a pass over the dictionary,
//! so each is primed once, when first needed, and cloned per block; the
//! llm codec's in-block models ([`crate::mix::Predictor::primed`]) are
//! primed and kept here the same way, for
//! [`crate::codec::llm::DictionaryLlmCodec`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use sha2::{Digest, Sha256};

use super::{
    decode_payload, decode_payload_primed, encode_payload, encode_payload_primed, parse, CmError,
    Dictionary,
};
use crate::codec::{Codec, CodecError, CodecId};

/// One stored dictionary: its bytes as the volume stores them (a plain cm
/// payload, [`StoredDictionary`]) and, once needed, its bytes decoded and
/// the primed cm predictor, or why there are none.
struct Entry {
    stored: StoredDictionary,
    bytes: OnceLock<Result<Arc<Vec<u8>>, CmError>>,
    primed: OnceLock<Result<Dictionary, CmError>>,
    /// The llm codec's in-block models primed with the bytes, per chunk
    /// length.
    primed_llm: Mutex<Vec<(usize, Arc<crate::mix::Predictor>)>>,
}

impl Entry {
    /// The dictionary's bytes, decoded (and checked) on first use.
    fn bytes(&self) -> Result<Arc<Vec<u8>>, CmError> {
        self.bytes
            .get_or_init(|| {
                let bytes = self.stored.bytes();
                if let Err(e) = &bytes {
                    log::error!("dictionary: {e}");
                }
                bytes.map(Arc::new)
            })
            .clone()
    }
}

/// A dictionary as a volume stores it: cm-coded (a dictionary is a sample
/// of the volume's own data, so it compresses like that data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDictionary {
    /// SHA-256 of the dictionary's bytes: the name primed payloads give.
    pub digest: [u8; 32],
    /// Length of the dictionary's bytes.
    pub raw_len: usize,
    /// A cm payload (without a dictionary) of the bytes.
    pub payload: Vec<u8>,
}

impl StoredDictionary {
    /// Codes `bytes` for storage.
    pub fn of(bytes: &[u8]) -> StoredDictionary {
        StoredDictionary {
            digest: Sha256::digest(bytes).into(),
            raw_len: bytes.len(),
            payload: encode_payload(bytes, Vec::new()),
        }
    }

    /// The dictionary's bytes, checked against the digest.
    pub fn bytes(&self) -> Result<Vec<u8>, CmError> {
        let mut out = Vec::new();
        decode_payload(&self.payload, self.raw_len, &mut out)
            .map_err(|_| CmError::DamagedDictionary(self.digest))?;
        if <[u8; 32]>::from(Sha256::digest(&out)) != self.digest {
            return Err(CmError::DamagedDictionary(self.digest));
        }
        Ok(out)
    }
}

/// The dictionaries a volume holds, shared by every codec set of a mount.
/// Nothing is decoded or primed until a block needs it.
#[derive(Default)]
pub struct Dictionaries {
    entries: RwLock<HashMap<[u8; 32], Arc<Entry>>>,
    current: RwLock<Option<[u8; 32]>>,
}

impl Dictionaries {
    pub fn new() -> Dictionaries {
        Dictionaries::default()
    }

    /// Adds a stored dictionary. One whose bytes do not decode to its
    /// digest is found out when a block needs it: that block then fails
    /// with [`CmError::DamagedDictionary`] instead of decoding to other
    /// bytes.
    pub fn insert(&self, stored: StoredDictionary) {
        let digest = stored.digest;
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(digest)
            .or_insert_with(|| {
                Arc::new(Entry {
                    stored,
                    bytes: OnceLock::new(),
                    primed: OnceLock::new(),
                    primed_llm: Mutex::new(Vec::new()),
                })
            });
    }

    /// Names the dictionary new blocks are primed with (`None`: none).
    pub fn set_current(&self, digest: Option<[u8; 32]>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = digest;
    }

    /// The digest of the dictionary new blocks are primed with.
    pub fn current(&self) -> Option<[u8; 32]> {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The dictionary `digest` as stored (to write it elsewhere: the
    /// container of `llmfs compress`).
    pub fn stored(&self, digest: &[u8; 32]) -> Option<StoredDictionary> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .map(|e| e.stored.clone())
    }

    /// Whether the set holds the dictionary `digest`.
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest)
    }

    /// Whether the set holds no dictionary.
    pub fn is_empty(&self) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn entry(&self, digest: [u8; 32]) -> Result<Arc<Entry>, CmError> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .cloned()
            .ok_or(CmError::MissingDictionary(digest))
    }

    /// The bytes of dictionary `digest`, decoded and checked against the
    /// digest on first use.
    pub fn bytes(&self, digest: [u8; 32]) -> Result<Arc<Vec<u8>>, CmError> {
        self.entry(digest)?.bytes()
    }

    /// The llm codec's in-block models primed with dictionary `digest` for
    /// chunks of `chunk_len` (llm payload version 6), primed on first use;
    /// each block codes with a copy ([`crate::mix::Predictor::for_block`]).
    pub fn primed_llm(
        &self,
        digest: [u8; 32],
        chunk_len: usize,
    ) -> Result<Arc<crate::mix::Predictor>, CmError> {
        let entry = self.entry(digest)?;
        let mut primed = entry.primed_llm.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = primed.iter().find(|(c, _)| *c == chunk_len) {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(crate::mix::Predictor::primed(&entry.bytes()?, chunk_len));
        primed.push((chunk_len, Arc::clone(&p)));
        Ok(p)
    }

    /// Decodes dictionary `digest` and primes cm's predictor with it now,
    /// if not done yet, so that the first block that needs it does not
    /// wait for that (a mount warms the volume's current dictionary on a
    /// thread of its own). A failure is logged, and is the blocks' error
    /// when they are read.
    pub fn warm(&self, digest: [u8; 32]) {
        let _ = self.with_primed(digest, |_| ());
    }

    /// Runs `f` with the primed dictionary `digest`, decoding and priming
    /// it first if this is its first use.
    fn with_primed<T>(
        &self,
        digest: [u8; 32],
        f: impl FnOnce(&Dictionary) -> T,
    ) -> Result<T, CmError> {
        let entry = self.entry(digest)?;
        let primed = entry
            .primed
            .get_or_init(|| entry.bytes().map(|b| Dictionary::new(&b)));
        match primed {
            Ok(d) => Ok(f(d)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// The cm codec of a volume with dictionaries: encodes primed with the
/// current dictionary (plain cm while there is none) and decodes plain
/// payloads and payloads primed with any dictionary of the set.
#[derive(Clone)]
pub struct DictionaryCmCodec {
    dicts: Arc<Dictionaries>,
}

impl DictionaryCmCodec {
    pub fn new(dicts: Arc<Dictionaries>) -> DictionaryCmCodec {
        DictionaryCmCodec { dicts }
    }

    pub fn dictionaries(&self) -> &Arc<Dictionaries> {
        &self.dicts
    }

    fn decode_cm(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CmError> {
        match parse(payload)?.dictionary {
            None => decode_payload(payload, raw_len, out),
            Some(digest) => self
                .dicts
                .with_primed(digest, |d| decode_payload_primed(d, payload, raw_len, out))?,
        }
    }
}

impl Codec for DictionaryCmCodec {
    fn id(&self) -> CodecId {
        CodecId::Cm
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let taken = std::mem::take(out);
        *out = match self.dicts.current() {
            Some(digest) => {
                let mut taken = Some(taken);
                match self.dicts.with_primed(digest, |d| {
                    encode_payload_primed(d, raw, taken.take().unwrap_or_default())
                }) {
                    Ok(payload) => payload,
                    // The current dictionary cannot be used (damaged):
                    // code without one rather than fail the block.
                    Err(e) => {
                        log::warn!("cm: {e}; coding without a dictionary");
                        encode_payload(raw, taken.take().unwrap_or_default())
                    }
                }
            }
            None => encode_payload(raw, taken),
        };
        Ok(())
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.decode_cm(payload, raw_len, out)
            .map_err(CmError::into_codec_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Warming decodes and primes ahead of the first block; a damaged or
    /// unknown dictionary is no panic there, and a block that needs it
    /// still fails with the reason.
    #[test]
    fn warming_ahead_changes_no_outcome() {
        let sample = b"GET /index.html HTTP/1.1 200 ".repeat(400);
        let block = b"GET /index.html HTTP/1.1 404 ".repeat(100);
        let good = StoredDictionary::of(&sample);
        let mut damaged = StoredDictionary::of(&b"other sample bytes ".repeat(300));
        let at = damaged.payload.len() / 2;
        damaged.payload[at] ^= 0x20;
        let dicts = Arc::new(Dictionaries::new());
        dicts.insert(good.clone());
        dicts.insert(damaged.clone());
        dicts.warm(good.digest);
        dicts.warm(damaged.digest);
        dicts.warm([7; 32]);
        let codec = DictionaryCmCodec::new(Arc::clone(&dicts));
        dicts.set_current(Some(good.digest));
        let mut payload = Vec::new();
        codec.encode(&block, &mut payload).unwrap();
        let mut out = Vec::new();
        codec.decode(&payload, block.len(), &mut out).unwrap();
        assert_eq!(out, block);
        // A payload naming the damaged dictionary: the error says so.
        let mut named = payload.clone();
        named[2..34].copy_from_slice(&damaged.digest);
        let e = codec
            .decode(&named, block.len(), &mut Vec::new())
            .expect_err("a damaged dictionary");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
