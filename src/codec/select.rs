//! Per-block codec choice.

use std::sync::Arc;

use super::cm::{Dictionaries, DictionaryCmCodec};
use super::llm::DictionaryLlmCodec;
use super::record::{decode_record, encode_record, RECORD_HEADER_LEN};
use super::{
    CmCodec, Codec, CodecError, CodecId, LlmCodec, LzmaCodec, MediaCodec, RawCodec, ZstdCodec,
};

/// The codecs a volume can read, and the policy that picks one per block.
///
/// Policy (as ZFS does): keep the smallest encoding, and store raw unless
/// the winner saves at least 1/8 of the raw size. The fast path
/// ([`CodecSet::encode_block`]) tries zstd only; the archive tier
/// ([`CodecSet::encode_block_archive`]) zstd's strongest level, LZMA2
/// (xz -9e), cm and media; the deep tier ([`CodecSet::encode_block_best`]) those
/// and the model. Both skip all but zstd when a cheap pre-pass (zstd saving
/// less than 1/32) says the data is incompressible, except media where a
/// raw image or audio layout is found.
pub struct CodecSet {
    raw: RawCodec,
    zstd: ZstdCodec,
    /// zstd at its interim level, for writes the archiver re-encodes.
    zstd_interim: ZstdCodec,
    /// zstd at its strongest level, for the archival path: the same record
    /// format (any level decodes), a few milliseconds per block, nothing
    /// next to the model.
    zstd_best: ZstdCodec,
    /// The archival path's other classical codec: smaller than zstd -19 on
    /// most binary blocks, still fast to decode.
    lzma: LzmaCodec,
    /// Context mixing without a model: the archive tier's strongest codec
    /// on text, decoding at hundreds of KB/s.
    cm: CmCodec,
    /// The cm codec with the volume's dictionaries, when it has any: it
    /// then codes and decodes every cm record in place of `cm`.
    cm_dicts: Option<DictionaryCmCodec>,
    /// Raw images and PCM audio by modality models: the archive tier's
    /// strongest codec on such blocks, stored (and so never chosen) on
    /// others.
    media: MediaCodec,
    llm: Option<Arc<LlmCodec>>,
    /// The llm codec with the volume's dictionaries, when it has both: it
    /// then codes and decodes every llm record in place of `llm`.
    llm_dicts: Option<DictionaryLlmCodec>,
}

impl Default for CodecSet {
    fn default() -> Self {
        CodecSet {
            raw: RawCodec,
            zstd: ZstdCodec::default(),
            zstd_interim: ZstdCodec::framed(
                ZstdCodec::INTERIM_LEVEL,
                ZstdCodec::INTERIM_FRAME_BYTES,
            ),
            zstd_best: ZstdCodec::new(ZstdCodec::ARCHIVE_LEVEL),
            lzma: LzmaCodec,
            cm: CmCodec,
            cm_dicts: None,
            media: MediaCodec,
            llm: None,
            llm_dicts: None,
        }
    }
}

impl CodecSet {
    pub fn with_llm(llm: Option<Arc<LlmCodec>>) -> Self {
        CodecSet {
            llm,
            ..CodecSet::default()
        }
    }

    /// Codes cm and llm records with `dicts` (a volume's dictionaries,
    /// shared by its codec sets): new ones primed with the current
    /// dictionary.
    pub fn with_dictionaries(mut self, dicts: Arc<Dictionaries>) -> Self {
        self.llm_dicts = self
            .llm
            .as_ref()
            .map(|llm| DictionaryLlmCodec::new(Arc::clone(llm), Arc::clone(&dicts)));
        self.cm_dicts = Some(DictionaryCmCodec::new(dicts));
        self
    }

    /// The volume's dictionaries, if this set was given them.
    pub fn dictionaries(&self) -> Option<&Arc<Dictionaries>> {
        self.cm_dicts.as_ref().map(DictionaryCmCodec::dictionaries)
    }

    pub fn llm(&self) -> Option<&Arc<LlmCodec>> {
        self.llm.as_ref()
    }

    pub fn get(&self, id: CodecId) -> Option<&dyn Codec> {
        match id {
            CodecId::Raw => Some(&self.raw),
            CodecId::Zstd => Some(&self.zstd),
            CodecId::Llm => match &self.llm_dicts {
                Some(c) => Some(c as &dyn Codec),
                None => self.llm.as_deref().map(|c| c as &dyn Codec),
            },
            CodecId::Lzma => Some(&self.lzma),
            CodecId::Cm => Some(match &self.cm_dicts {
                Some(c) => c as &dyn Codec,
                None => &self.cm,
            }),
            CodecId::Media => Some(&self.media),
        }
    }

    fn keep_or_raw(&self, best: Vec<u8>, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let payload = best.len() - RECORD_HEADER_LEN;
        if payload <= raw.len() - raw.len() / 8 {
            Ok(best)
        } else {
            encode_record(&self.raw, raw)
        }
    }

    /// Encodes one block with the fast codecs. Returns the complete record.
    pub fn encode_block(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.zstd_or_raw(&self.zstd, raw)
    }

    fn zstd_or_raw(&self, zstd: &ZstdCodec, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let candidate = encode_record(zstd, raw)?;
        self.keep_or_raw(candidate, raw)
    }

    /// Encodes one block for the few minutes until the archiver re-encodes
    /// it: zstd at its interim level, or raw. Any zstd record decodes the
    /// same way, so nothing on disk says which level wrote it.
    pub fn encode_block_interim(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.zstd_or_raw(&self.zstd_interim, raw)
    }

    /// A block stored as it is (a raw record): a small file's interim
    /// encoding while its disk has room (`Encoder::encode_blocks`).
    pub fn encode_block_raw(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        encode_record(&self.raw, raw)
    }

    /// The archive tier's encoding: the smallest of the model-free archival
    /// codecs (cm, LZMA2, zstd at its strongest level) or raw.
    pub fn encode_block_archive(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let (best, _) = self.smallest_model_free(raw)?;
        self.keep_or_raw(best, raw)
    }

    /// Encodes one block with every codec worth trying, the model included
    /// (the deep tier), and keeps the smallest. Without a model that may
    /// encode, this is the archive tier's choice.
    pub fn encode_block_best(&self, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let (mut best, incompressible) = self.smallest_model_free(raw)?;
        match &self.llm {
            Some(llm) if llm.can_encode() && !incompressible && !raw.is_empty() => {
                let codec = self.get(CodecId::Llm).unwrap_or(llm.as_ref());
                match encode_record(codec, raw) {
                    // Ties keep the faster-decoding codec.
                    Ok(rec) if rec.len() < best.len() => best = rec,
                    Ok(_) => {}
                    Err(e) => log::warn!("llm encoding failed, keeping the archive tier's: {e}"),
                }
            }
            _ => {}
        }
        self.keep_or_raw(best, raw)
    }

    /// The smallest record of the model-free archival codecs, and whether a
    /// cheap pre-pass (zstd saving less than 1/32) found the block
    /// incompressible, when only zstd is tried.
    fn smallest_model_free(&self, raw: &[u8]) -> Result<(Vec<u8>, bool), CodecError> {
        let zstd = encode_record(&self.zstd_best, raw)?;
        let zstd_payload = zstd.len() - RECORD_HEADER_LEN;
        let incompressible = zstd_payload >= raw.len() - raw.len() / 32;
        let mut best = zstd;
        // Ties keep the earlier, faster-decoding codec.
        let cm = self.get(CodecId::Cm).unwrap_or(&self.cm);
        let mut tried: Vec<&dyn Codec> = Vec::new();
        if !incompressible {
            tried.extend([&self.lzma as &dyn Codec, cm, &self.media]);
        } else if super::media::choose_layout(raw).is_some() {
            // PCM audio and noisy photos defeat zstd's pre-pass (their
            // low bits look random) yet predict well: media still tries.
            tried.push(&self.media);
        }
        for codec in tried {
            let rec = encode_record(codec, raw)?;
            if rec.len() < best.len() {
                best = rec;
            }
        }
        Ok((best, incompressible))
    }

    /// Encodes one block with exactly the codec `id` (tests, benchmarks).
    pub fn encode_block_with(&self, id: CodecId, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let codec = self.get(id).ok_or(CodecError::UnknownCodec(id as u8))?;
        encode_record(codec, raw)
    }

    /// Decodes and verifies one record.
    pub fn decode_block(&self, record: &[u8], block_size: usize) -> Result<Vec<u8>, CodecError> {
        decode_record(record, block_size, |id| self.get(id))
    }
}

/// The codec a record was written with, from its header byte.
pub fn record_codec(record: &[u8]) -> Option<CodecId> {
    record.get(1).and_then(|&b| CodecId::from_u8(b))
}

/// The dictionary a record was primed with (a cm or llm record), if it was.
pub fn record_dictionary(record: &[u8]) -> Option<[u8; 32]> {
    let payload = record.get(RECORD_HEADER_LEN..)?;
    match record_codec(record)? {
        CodecId::Cm => super::cm::payload_dictionary(payload),
        CodecId::Llm => super::llm::payload_dictionary(payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spreadsheet-like block: fixed-width little-endian records whose
    /// fields repeat at long, irregular distances (LZMA2's strength).
    fn table(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x = 12345u32;
        while v.len() < n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(&(x >> 20).to_le_bytes());
            v.extend_from_slice(&[0, 0, (x >> 8) as u8 & 3, 0x40]);
            v.extend_from_slice(b"\x00\x00\xf0\x3f");
        }
        v.truncate(n);
        v
    }

    #[test]
    fn archival_path_keeps_the_smallest_model_free_record() {
        let set = CodecSet::default();
        let raw = table(65536);
        let zstd = set.encode_block_with(CodecId::Zstd, &raw).unwrap();
        let zstd19 = encode_record(&ZstdCodec::new(ZstdCodec::ARCHIVE_LEVEL), &raw).unwrap();
        let lzma = set.encode_block_with(CodecId::Lzma, &raw).unwrap();
        let cm = set.encode_block_with(CodecId::Cm, &raw).unwrap();
        assert!(
            lzma.len() < zstd19.len(),
            "{} vs {}",
            lzma.len(),
            zstd19.len()
        );
        let smallest = [&zstd19, &lzma, &cm]
            .into_iter()
            .min_by_key(|r| r.len())
            .unwrap();
        // Without a model, the deep tier's choice is the archive tier's.
        for best in [
            set.encode_block_archive(&raw).unwrap(),
            set.encode_block_best(&raw).unwrap(),
        ] {
            assert_eq!(&best, smallest);
        }
        for rec in [&zstd, &zstd19, &lzma, &cm] {
            assert_eq!(set.decode_block(rec, 65536).unwrap(), raw);
        }
        // The fast path never spends the archival codecs' time.
        assert_eq!(
            record_codec(&set.encode_block(&raw).unwrap()),
            Some(CodecId::Zstd)
        );
    }

    #[test]
    fn interim_encoding_is_a_zstd_record_any_set_decodes() {
        let writer = CodecSet::default();
        let text: Vec<u8> = include_bytes!("../../README.md")
            .iter()
            .copied()
            .cycle()
            .take(65536)
            .collect();
        let interim = writer.encode_block_interim(&text).unwrap();
        let fast = writer.encode_block(&text).unwrap();
        assert_eq!(record_codec(&interim), Some(CodecId::Zstd));
        // A different level, not a relabelled copy of the fast record.
        assert_ne!(interim, fast);
        // Nothing records the level: a fresh set (another mount) decodes it.
        let reader = CodecSet::default();
        assert_eq!(reader.decode_block(&interim, text.len()).unwrap(), text);
        // Incompressible blocks are stored raw, as on the fast path.
        let noise = crate::codec::test_data::noise(65536, 7);
        let rec = writer.encode_block_interim(&noise).unwrap();
        assert_eq!(record_codec(&rec), Some(CodecId::Raw));
        assert_eq!(reader.decode_block(&rec, 65536).unwrap(), noise);
    }

    #[test]
    fn archive_tier_picks_cm_on_text() {
        let set = CodecSet::default();
        let raw: Vec<u8> = include_bytes!("../../README.md")
            .iter()
            .copied()
            .cycle()
            .skip(4096)
            .take(65536)
            .collect();
        let rec = set.encode_block_archive(&raw).unwrap();
        let lzma = set.encode_block_with(CodecId::Lzma, &raw).unwrap();
        assert_eq!(
            record_codec(&rec),
            Some(CodecId::Cm),
            "{} vs lzma {}",
            rec.len(),
            lzma.len()
        );
        assert!(rec.len() < lzma.len());
        assert_eq!(set.decode_block(&rec, 65536).unwrap(), raw);
    }

    #[test]
    fn archival_path_skips_lzma_on_incompressible_blocks() {
        let set = CodecSet::default();
        let noise = crate::codec::test_data::noise(65536, 0x2545_f491_4f6c_dd1du64);
        let rec = set.encode_block_best(&noise).unwrap();
        assert_eq!(record_codec(&rec), Some(CodecId::Raw));
        assert_eq!(set.decode_block(&rec, 65536).unwrap(), noise);
    }
}
