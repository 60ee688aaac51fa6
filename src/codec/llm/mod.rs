//! The neural codec: a language model's next-byte predictions drive the
//! range coder.
//!
//! A block is cut into chunks of the model's context length; each chunk is
//! coded independently of the others, starting from BOS, so the encoder
//! scores whole chunks in one full pass and the decoder advances many chunks
//! in lockstep (one batched model run per byte position). Chunks are coded
//! in groups, one range-coder stream per group, symbols in (position,
//! chunk) order inside a group: a decoder can batch any set of groups, from
//! one block or several.
//!
//! Five payload versions, two codings times two kinds of engine, and the
//! mixed portable coding with a checksum per wave:
//!
//! | version | coding | engine |
//! |---|---|---|
//! | 1 | the transformer's table alone ([`plain`]) | float model: decodes only on the engine class that wrote it |
//! | 2 | transformer mixed with adaptive in-block models, bit by bit ([`mixed`], [`crate::mix`]) | float model |
//! | 3 | as 1 | integer model: portable, any engine of the model decodes it |
//! | 4 | as 2 | integer model |
//! | 5 | as 4, with a CRC-32C of each wave but the last (the default) | integer model |
//! | 6 | as 5, the in-block models primed with a volume dictionary | integer model |
//!
//! Version 5 codes exactly what version 4 codes; its wave checksums let a
//! reader trust a wave's bytes as soon as the wave is decoded, before the
//! rest of the block (the record's CRC-32C, covering the whole block, is
//! checked only at the end): a read of the start of a cold block returns
//! after one wave, not four.
//!
//! Version 6 codes as version 5 with the in-block models primed with a
//! volume dictionary ([`crate::mix::Predictor::primed`]) that the payload
//! names by SHA-256: what repeats across blocks (log line templates,
//! headers) is found by the match model and known to the context counters
//! from the block's first byte. Only a reader holding that dictionary
//! decodes it.
//!
//! Payload layout (little-endian; docs/FORMAT.md):
//!
//! ```text
//! 0   u8      payload version (1 to 6)
//! 1   u8      chunks per group G (>= 1)
//! 2   u16     chunk length C (>= 1, <= the model context)
//! 4   [u8;8]  model id (first 8 bytes of the model file's sha256)
//! 12  [u8;8]  engine fingerprint id (versions 1, 2: model, runtime, provider,
//!             CPU class; versions 3 to 6: model and integer semantics only)
//! 20  u8      versions 2, 4 to 6 only: chunks per wave W (a non-zero multiple of G, <= 64)
//! 21  [u8;32] version 6 only: SHA-256 of the dictionary the block was primed with
//! ..  [u32]   versions 5 and 6 only: CRC-32C of each wave's bytes but the last
//!             (ceil(ceil(raw_len / C) / W) - 1 of them)
//! ..  LEB128  byte length of each group stream but the last
//! ..          the group streams, in order
//! ```

mod mixed;
mod plain;
mod primed;

pub use primed::DictionaryLlmCodec;

use std::sync::Mutex;

use super::cm::Dictionaries;
use super::{Codec, CodecError, CodecId};
use crate::mix::Predictor;
use crate::model::{hex, Engine, ModelError};

/// The transformer alone, float model.
pub const PAYLOAD_PLAIN: u8 = 1;
/// The transformer mixed with the in-block models, float model.
pub const PAYLOAD_MIXED: u8 = 2;
/// The transformer alone, integer model (portable).
pub const PAYLOAD_PLAIN_PORTABLE: u8 = 3;
/// The transformer mixed with the in-block models, integer model
/// (portable).
pub const PAYLOAD_MIXED_PORTABLE: u8 = 4;
/// As [`PAYLOAD_MIXED_PORTABLE`], with a CRC-32C of each wave but the last.
pub const PAYLOAD_MIXED_CHECKED: u8 = 5;
/// As [`PAYLOAD_MIXED_CHECKED`], the in-block models primed with a volume
/// dictionary.
pub const PAYLOAD_MIXED_PRIMED: u8 = 6;

/// Whether a payload of `version` mixes the in-block models.
fn is_mixed(version: u8) -> bool {
    matches!(
        version,
        PAYLOAD_MIXED | PAYLOAD_MIXED_PORTABLE | PAYLOAD_MIXED_CHECKED | PAYLOAD_MIXED_PRIMED
    )
}

/// Whether a payload of `version` carries a checksum per wave.
fn has_wave_checks(version: u8) -> bool {
    matches!(version, PAYLOAD_MIXED_CHECKED | PAYLOAD_MIXED_PRIMED)
}

/// The dictionary an llm payload was primed with (version 6), if it was
/// and its header is sound.
pub fn payload_dictionary(payload: &[u8]) -> Option<[u8; 32]> {
    LlmHeader::parse(payload).ok()?.dictionary
}

/// The version byte of an llm payload, if it is a known version.
pub fn payload_version(payload: &[u8]) -> Option<u8> {
    payload
        .first()
        .copied()
        .filter(|&v| header_len(v).is_some())
}

/// Whether an llm payload decodes on every engine of its model (an integer
/// model's), rather than only on the engine class that wrote it. `None`
/// for a payload too short or of an unknown version.
pub fn payload_portable(payload: &[u8]) -> Option<bool> {
    match *payload.first()? {
        PAYLOAD_PLAIN | PAYLOAD_MIXED => Some(false),
        PAYLOAD_PLAIN_PORTABLE
        | PAYLOAD_MIXED_PORTABLE
        | PAYLOAD_MIXED_CHECKED
        | PAYLOAD_MIXED_PRIMED => Some(true),
        _ => None,
    }
}
/// Chunks per range-coder stream: fewer streams cost fewer flush bytes,
/// smaller groups give the decoder finer batches.
pub const GROUP: usize = 16;
/// Most sequences the decoder advances in one model run: bounds the
/// key/value cache (batch x context x d_model x layers x 2 floats).
pub const DECODE_BATCH: usize = 64;
/// Chunks per wave in version 2: the adaptive state is shared across a
/// wave's chunks, which a decoder advances in one batch.
pub const WAVE: usize = DECODE_BATCH;

/// The parsed fixed part of an llm payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmHeader {
    pub version: u8,
    pub group: usize,
    pub chunk_len: usize,
    pub model: [u8; 8],
    pub engine: [u8; 8],
    /// Chunks per wave (version 2; version 1 has no shared state, and its
    /// "waves" are its groups).
    pub wave: usize,
    /// SHA-256 of the dictionary the in-block models were primed with
    /// (version 6).
    pub dictionary: Option<[u8; 32]>,
}

/// The fixed header's length in a payload of `version`, if known.
fn header_len(version: u8) -> Option<usize> {
    match version {
        PAYLOAD_PLAIN | PAYLOAD_PLAIN_PORTABLE => Some(20),
        PAYLOAD_MIXED | PAYLOAD_MIXED_PORTABLE | PAYLOAD_MIXED_CHECKED => Some(21),
        PAYLOAD_MIXED_PRIMED => Some(53),
        _ => None,
    }
}

impl LlmHeader {
    pub fn parse(payload: &[u8]) -> Result<LlmHeader, CodecError> {
        let Some(&version) = payload.first() else {
            return Err(corrupt("empty payload".into()));
        };
        let len = header_len(version)
            .ok_or_else(|| corrupt(format!("unknown llm payload version {version}")))?;
        if payload.len() < len {
            return Err(corrupt(format!("payload of {} bytes", payload.len())));
        }
        let group = payload[1] as usize;
        let h = LlmHeader {
            version,
            group,
            chunk_len: u16::from_le_bytes([payload[2], payload[3]]) as usize,
            model: payload[4..12].try_into().unwrap(),
            engine: payload[12..20].try_into().unwrap(),
            wave: if is_mixed(version) {
                payload[20] as usize
            } else {
                group
            },
            dictionary: (version == PAYLOAD_MIXED_PRIMED)
                .then(|| payload[21..53].try_into().expect("32 bytes")),
        };
        // A group, and a wave, is decoded as one batch: bound it (and with
        // it the decoder's cache memory) whatever the payload says. A wave
        // of no chunks would never advance the decode.
        if h.group == 0
            || h.group > DECODE_BATCH
            || h.chunk_len == 0
            || h.wave == 0
            || h.wave > DECODE_BATCH
            || h.wave % h.group != 0
        {
            return Err(corrupt(format!(
                "group {} wave {} chunk length {}",
                h.group, h.wave, h.chunk_len
            )));
        }
        Ok(h)
    }
}

fn corrupt(detail: String) -> CodecError {
    CodecError::Corrupt {
        codec: CodecId::Llm,
        detail,
    }
}

fn engine_error(e: ModelError) -> CodecError {
    CodecError::Engine(e.to_string())
}

/// One group of a block to decode: its stream and its chunks' lengths.
struct GroupJob<'a> {
    stream: &'a [u8],
    lens: Vec<usize>,
}

/// A parsed payload: its header, the checksums of its waves (version 5;
/// empty otherwise) and its groups.
struct Split<'a> {
    header: LlmHeader,
    wave_checks: Vec<u32>,
    groups: Vec<GroupJob<'a>>,
}

/// How many waves but the last a block of `raw_len` bytes has under
/// header `h`: the number of wave checksums of a version-5 payload.
fn checked_waves(h: &LlmHeader, raw_len: usize) -> usize {
    raw_len
        .div_ceil(h.chunk_len)
        .div_ceil(h.wave)
        .saturating_sub(1)
}

/// The CRC-32C of each wave of `raw` but the last (version 5).
fn wave_checks(raw: &[u8], chunk_len: usize, wave: usize) -> Vec<u32> {
    let mut checks: Vec<u32> = raw.chunks(chunk_len * wave).map(crc32c::crc32c).collect();
    checks.pop();
    checks
}

/// Splits a payload into its groups. Every length is checked against the
/// payload, so nothing here allocates beyond what `raw_len` declares.
fn split_groups(payload: &[u8], raw_len: usize) -> Result<Split<'_>, CodecError> {
    let h = LlmHeader::parse(payload)?;
    let chunks = raw_len.div_ceil(h.chunk_len);
    let groups = chunks.div_ceil(h.group);
    let mut pos = header_len(h.version).unwrap_or(payload.len());
    let mut wave_checks = Vec::new();
    if has_wave_checks(h.version) {
        let n = checked_waves(&h, raw_len);
        let table = payload
            .get(pos..pos + 4 * n)
            .ok_or_else(|| corrupt(format!("{n} wave checksums past the payload's end")))?;
        wave_checks = table
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        pos += 4 * n;
    }
    let mut sizes = Vec::with_capacity(groups);
    for _ in 1..groups {
        let (v, n) =
            read_leb128(&payload[pos..]).ok_or_else(|| corrupt("bad group length".into()))?;
        pos += n;
        sizes.push(v);
    }
    let declared: u64 = sizes.iter().sum();
    let rest = (payload.len() - pos) as u64;
    if declared > rest {
        return Err(corrupt(format!(
            "group lengths {declared} exceed the payload {rest}"
        )));
    }
    sizes.push(rest - declared);
    let mut jobs = Vec::with_capacity(groups);
    for (g, size) in sizes.into_iter().enumerate() {
        let stream = &payload[pos..pos + size as usize];
        pos += size as usize;
        let first = g * h.group;
        let last = (first + h.group).min(chunks);
        let lens = (first..last)
            .map(|c| h.chunk_len.min(raw_len - c * h.chunk_len))
            .collect();
        jobs.push(GroupJob { stream, lens });
    }
    Ok(Split {
        header: h,
        wave_checks,
        groups: jobs,
    })
}

/// Splits units of `sizes` sequences, in order, into runs that one model
/// batch can take: whole units, at most DECODE_BATCH sequences (a larger
/// unit runs alone).
fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let mut end = start + 1;
        let mut seqs = sizes[start];
        while end < sizes.len() && seqs + sizes[end] <= DECODE_BATCH {
            seqs += sizes[end];
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Advances `seqs` sequences in lockstep for `longest` positions: one
/// batched model step per position, then `code(t, logits, prev)` codes
/// position `t` of every sequence and writes each byte it decoded into
/// `prev`, the next step's input.
fn lockstep(
    engine: &mut Engine,
    seqs: usize,
    longest: usize,
    mut code: impl FnMut(usize, &[f32], &mut [u8]) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    if longest > engine.config.context {
        return Err(corrupt(format!(
            "chunk length {longest} exceeds the model context {}",
            engine.config.context
        )));
    }
    let mut state = engine.decoder(seqs).map_err(engine_error)?;
    let mut prev = vec![0u8; seqs];
    for t in 0..longest {
        if super::progress::cancelled() {
            return Err(CodecError::Cancelled);
        }
        let logits = engine
            .step(&mut state, if t == 0 { &[] } else { &prev })
            .map_err(engine_error)?;
        code(t, logits, &mut prev)?;
    }
    Ok(())
}

fn read_leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn write_leb128(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The llm codec over one engine. Encoding is refused when the engine
/// failed its self-test; decoding is always attempted, since the block
/// checksum catches any difference.
pub struct LlmCodec {
    engine: Mutex<Engine>,
    /// The model file, for storing it in a volume that starts using it.
    model: Vec<u8>,
    model_sha256: [u8; 32],
    model_id: [u8; 8],
    /// Ids of earlier files of the same model (the built-in model before
    /// its CPU variant was rebuilt): payloads naming them are this
    /// model's (`model::same_model_as`).
    earlier_ids: Vec<[u8; 8]>,
    engine_id: [u8; 8],
    description: String,
    chunk_len: usize,
    can_encode: bool,
    /// Write mixed payloads (version 2 or 4); the transformer alone
    /// (version 1 or 3) when off.
    mixing: bool,
    /// The engine runs an integer model: payload versions 3 and 4.
    portable: bool,
    /// Codecs of the volume's other models, for its blocks coded with them
    /// (a volume being converted to a portable model): decode only.
    others: Vec<std::sync::Arc<LlmCodec>>,
}

impl LlmCodec {
    /// Wraps `engine`, running the self-test; a failure is logged loudly
    /// and leaves a codec that only decodes.
    pub fn new(mut engine: Engine, model: Vec<u8>) -> LlmCodec {
        let can_encode = match crate::model::self_test(&mut engine) {
            Ok(()) => true,
            Err(e) => {
                log::error!("{e}: {}", engine.fingerprint.describe());
                false
            }
        };
        LlmCodec {
            engine_id: engine.fingerprint.id(),
            model_id: engine.fingerprint.model_id(),
            earlier_ids: crate::model::same_model_as(&engine.fingerprint.model_sha256)
                .iter()
                .map(|d| d[..8].try_into().expect("8 of 32 bytes"))
                .collect(),
            model_sha256: engine.fingerprint.model_sha256,
            description: engine.fingerprint.describe(),
            chunk_len: engine.config.context.min(u16::MAX as usize),
            can_encode,
            mixing: true,
            portable: engine.fingerprint.portable(),
            others: Vec::new(),
            model,
            engine: Mutex::new(engine),
        }
    }

    /// A codec that writes the transformer's predictions alone, without
    /// the in-block models (to measure the transformer's own contribution).
    pub fn without_mixing(mut self) -> LlmCodec {
        self.mixing = false;
        self
    }

    /// Also decodes blocks of the models of `others` (by the model id each
    /// payload names); this codec still encodes with its own.
    pub fn with_decoders(mut self, others: Vec<std::sync::Arc<LlmCodec>>) -> LlmCodec {
        self.others = others;
        self
    }

    /// Loads `model` on a new engine and self-tests it.
    pub fn load(
        model: &[u8],
        options: &crate::model::EngineOptions,
    ) -> Result<LlmCodec, ModelError> {
        Ok(LlmCodec::new(Engine::load(model, options)?, model.to_vec()))
    }

    /// The model file this codec runs.
    pub fn model_bytes(&self) -> &[u8] {
        &self.model
    }

    pub fn can_encode(&self) -> bool {
        self.can_encode
    }

    pub fn engine_id(&self) -> [u8; 8] {
        self.engine_id
    }

    /// Whether this codec's blocks decode on every engine of its model.
    pub fn portable(&self) -> bool {
        self.portable
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// sha256 of the model file.
    pub fn model_sha256(&self) -> [u8; 32] {
        self.model_sha256
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Engine> {
        // A panic while holding the lock leaves an engine whose state is
        // rebuilt on every call anyway; keep going.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a decode of `count` blocks reports the prefix of a payload
    /// with header `h` to the thread's progress sink (see `report` in
    /// [`LlmCodec::decode_many`]).
    fn reports_progress(&self, count: usize, payload: &[u8], h: &LlmHeader) -> bool {
        count == 1
            && super::progress::active()
            && (payload_portable(payload) == Some(true) || h.engine == self.engine_id)
    }

    /// Decodes several blocks in shared model runs (read-ahead). Each entry
    /// is `(payload, raw_len)`; the results come back in the same order.
    /// A block primed with a dictionary (version 6) fails: see
    /// [`LlmCodec::decode_many_with`].
    pub fn decode_many(&self, blocks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, CodecError>> {
        self.decode_many_with(blocks, None)
    }

    /// [`LlmCodec::decode_many`], with `dicts` (a volume's dictionaries)
    /// for blocks primed with one.
    pub fn decode_many_with(
        &self,
        blocks: &[(&[u8], usize)],
        dicts: Option<&Dictionaries>,
    ) -> Vec<Result<Vec<u8>, CodecError>> {
        let mut results: Vec<Option<Result<Vec<u8>, CodecError>>> = Vec::new();
        // Version 1: (block, first chunk of the group, job).
        let mut plain_jobs: Vec<(usize, usize, GroupJob<'_>)> = Vec::new();
        let mut plain_lens = Vec::new();
        // Versions 2 and 4: (block, state).
        let mut mixed_blocks = Vec::new();
        // Blocks of another of the volume's models: (codec in `others`, block).
        let mut elsewhere: Vec<(usize, usize)> = Vec::new();
        // A lone block's decoded prefix goes to the thread's progress sink
        // wave by wave, if its bytes are exact here: a portable payload, or
        // one of this very engine (a float payload of another engine class
        // decodes to bytes the checksum refuses only at the end).
        let mut report = false;
        for (b, &(payload, raw_len)) in blocks.iter().enumerate() {
            plain_lens.push(0);
            results.push(None);
            match split_groups(payload, raw_len).map(|s| (s.header, s.wave_checks, s.groups)) {
                // Another model cannot decode it. Another engine of the same
                // model (another CPU class, say) may: try, and let the
                // checksum judge.
                Ok((h, _, _))
                    if h.model != self.model_id && !self.earlier_ids.contains(&h.model) =>
                {
                    match self.others.iter().position(|o| o.model_id == h.model) {
                        Some(o) => elsewhere.push((o, b)),
                        None => {
                            results[b] = Some(Err(CodecError::EngineMismatch {
                                block: format!(
                                    "model {}, engine {}",
                                    hex(&h.model),
                                    hex(&h.engine)
                                ),
                                engine: format!("{} ({})", hex(&self.engine_id), self.description),
                            }));
                        }
                    }
                }
                Ok((h, checks, groups)) if is_mixed(h.version) => {
                    report = self.reports_progress(blocks.len(), payload, &h);
                    let primed = match h.dictionary {
                        None => Ok(None),
                        Some(digest) => primed_models(dicts, digest, h.chunk_len).map(Some),
                    };
                    match primed {
                        Ok(p) => mixed_blocks.push((
                            b,
                            mixed::MixedBlock::new(h, checks, groups, raw_len, p.as_deref()),
                        )),
                        Err(e) => results[b] = Some(Err(e)),
                    }
                }
                Ok((h, _, groups)) => {
                    report = self.reports_progress(blocks.len(), payload, &h);
                    results[b] = Some(Ok(vec![0u8; raw_len]));
                    plain_lens[b] = h.chunk_len;
                    for (g, job) in groups.into_iter().enumerate() {
                        plain_jobs.push((b, g * h.group, job));
                    }
                }
                Err(e) => results[b] = Some(Err(e)),
            }
        }
        for (o, other) in self.others.iter().enumerate() {
            let mine: Vec<usize> = elsewhere
                .iter()
                .filter(|(x, _)| *x == o)
                .map(|(_, b)| *b)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let subset: Vec<(&[u8], usize)> = mine.iter().map(|&b| blocks[b]).collect();
            for (b, r) in mine.into_iter().zip(other.decode_many_with(&subset, dicts)) {
                results[b] = Some(r);
            }
        }
        let mut engine = self.lock();
        if !mixed_blocks.is_empty() {
            let (index, states): (Vec<usize>, Vec<_>) = mixed_blocks.into_iter().unzip();
            for (b, r) in index
                .into_iter()
                .zip(mixed::decode_blocks(&mut engine, states, report))
            {
                results[b] = Some(r);
            }
        }
        let sizes: Vec<usize> = plain_jobs.iter().map(|j| j.2.lens.len()).collect();
        for range in batches(&sizes) {
            let batch = &plain_jobs[range];
            match plain::decode_batch(&mut engine, batch) {
                Ok(outputs) => {
                    for ((b, first_chunk, _), chunks) in batch.iter().zip(outputs) {
                        let (b, first_chunk) = (*b, *first_chunk);
                        match (chunks, &mut results[b]) {
                            (Ok(chunks), Some(Ok(out))) => {
                                let cl = plain_lens[b];
                                let mut end = 0;
                                for (i, data) in chunks.into_iter().enumerate() {
                                    let at = (first_chunk + i) * cl;
                                    out[at..at + data.len()].copy_from_slice(&data);
                                    end = at + data.len();
                                }
                                // Groups decode in order, batch after batch:
                                // everything before this one's end is done.
                                if report {
                                    super::progress::report(
                                        &out[..end],
                                        super::progress::Checked::No,
                                    );
                                }
                            }
                            (Err(e), r @ Some(Ok(_))) => *r = Some(Err(e)),
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    for (b, _, _) in batch {
                        if let Some(r @ Ok(_)) = &mut results[*b] {
                            *r = Err(e.clone());
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(corrupt("block not decoded".into()))))
            .collect()
    }
}

/// The in-block models primed with dictionary `digest` of `dicts` for
/// chunks of `chunk_len`, or why a block primed with it cannot be decoded
/// (the volume does not hold it, or its stored bytes are damaged).
fn primed_models(
    dicts: Option<&Dictionaries>,
    digest: [u8; 32],
    chunk_len: usize,
) -> Result<std::sync::Arc<Predictor>, CodecError> {
    let missing = super::cm::CmError::MissingDictionary(digest);
    dicts
        .ok_or(missing)
        .and_then(|d| d.primed_llm(digest, chunk_len))
        .map_err(|e| corrupt(e.to_string()))
}

impl LlmCodec {
    /// The chunk length this codec cuts blocks into (the model's context).
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Encodes `raw` into a payload appended to `out`: version 6 when
    /// `primed` (a dictionary's SHA-256 and the in-block models primed with
    /// it for this codec's chunk length) is given and the codec writes
    /// portable mixed payloads; otherwise the codec's version (5 by
    /// default).
    pub fn encode_primed(
        &self,
        raw: &[u8],
        primed: Option<([u8; 32], &Predictor)>,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if !self.can_encode {
            return Err(CodecError::Encode {
                codec: CodecId::Llm,
                detail: "the engine failed its self-test".into(),
            });
        }
        let chunks: Vec<&[u8]> = raw.chunks(self.chunk_len).collect();
        let logits = self.lock().score(&chunks).map_err(engine_error)?;
        // Only the portable mixed coding has a primed version.
        let primed = primed.filter(|_| self.mixing && self.portable);
        if let Some((_, p)) = primed {
            if p.chunk_len() != self.chunk_len {
                return Err(CodecError::Encode {
                    codec: CodecId::Llm,
                    detail: format!(
                        "models primed for chunks of {} bytes, the codec's are {}",
                        p.chunk_len(),
                        self.chunk_len
                    ),
                });
            }
        }
        out.push(match (self.mixing, self.portable, primed.is_some()) {
            (true, false, _) => PAYLOAD_MIXED,
            (false, false, _) => PAYLOAD_PLAIN,
            (true, true, false) => PAYLOAD_MIXED_CHECKED,
            (true, true, true) => PAYLOAD_MIXED_PRIMED,
            (false, true, _) => PAYLOAD_PLAIN_PORTABLE,
        });
        out.push(GROUP as u8);
        out.extend_from_slice(&(self.chunk_len as u16).to_le_bytes());
        out.extend_from_slice(&self.model_id);
        out.extend_from_slice(&self.engine_id);
        let streams = if self.mixing {
            out.push(WAVE as u8);
            if let Some((digest, _)) = primed {
                out.extend_from_slice(&digest);
            }
            if self.portable {
                for check in wave_checks(raw, self.chunk_len, WAVE) {
                    out.extend_from_slice(&check.to_le_bytes());
                }
            }
            let shape = mixed::Shape {
                raw_len: raw.len(),
                chunk_len: self.chunk_len,
                group: GROUP,
                wave: WAVE,
            };
            mixed::encode_streams(&chunks, &logits, shape, primed.map(|(_, p)| p))?
        } else {
            plain::encode_streams(&chunks, &logits, GROUP)?
        };
        for s in &streams[..streams.len().saturating_sub(1)] {
            write_leb128(s.len() as u64, out);
        }
        for s in streams {
            out.extend_from_slice(&s);
        }
        Ok(())
    }
}

impl Codec for LlmCodec {
    fn id(&self) -> CodecId {
        CodecId::Llm
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_primed(raw, None, out)
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let result = self.decode_many(&[(payload, raw_len)]).pop().unwrap();
        out.extend_from_slice(&result?);
        Ok(())
    }

    fn describe_payload(&self, payload: &[u8]) -> Option<String> {
        let h = LlmHeader::parse(payload).ok()?;
        Some(format!(
            "block engine {}, this engine {} ({})",
            hex(&h.engine),
            hex(&self.engine_id),
            self.description
        ))
    }
}
