//! The llm codec of a volume with dictionaries: encodes primed with the
//! volume's current dictionary (payload version 6; version 5 while there
//! is none) and decodes payloads primed with any dictionary of the set, as
//! [`crate::codec::cm::DictionaryCmCodec`] does for cm.
//!
//! Priming is a pass of the context and match models over the dictionary
//! (no model runs; 0.3-0.4 s for 256 KiB, `examples/dict_llm.rs
//! --prime-only`), so the primed state is kept with the volume's
//! dictionaries and each block starts from a copy of it.

use std::sync::Arc;

use super::LlmCodec;
use crate::codec::cm::Dictionaries;
use crate::codec::{Codec, CodecError, CodecId};

pub struct DictionaryLlmCodec {
    llm: Arc<LlmCodec>,
    dicts: Arc<Dictionaries>,
}

impl DictionaryLlmCodec {
    pub fn new(llm: Arc<LlmCodec>, dicts: Arc<Dictionaries>) -> DictionaryLlmCodec {
        DictionaryLlmCodec { llm, dicts }
    }
}

impl Codec for DictionaryLlmCodec {
    fn id(&self) -> CodecId {
        CodecId::Llm
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let Some(digest) = self.dicts.current() else {
            return self.llm.encode(raw, out);
        };
        match self.dicts.primed_llm(digest, self.llm.chunk_len()) {
            Ok(primed) => self.llm.encode_primed(raw, Some((digest, &primed)), out),
            // The current dictionary cannot be used (damaged): code
            // without one rather than fail the block.
            Err(e) => {
                log::warn!("llm: {e}; coding without a dictionary");
                self.llm.encode(raw, out)
            }
        }
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let result = self
            .llm
            .decode_many_with(&[(payload, raw_len)], Some(&self.dicts))
            .pop()
            .expect("one result per block");
        out.extend_from_slice(&result?);
        Ok(())
    }

    fn describe_payload(&self, payload: &[u8]) -> Option<String> {
        self.llm.describe_payload(payload)
    }
}
