//! Payload version 2: the transformer's predictions mixed with adaptive
//! in-block models ([`crate::mix`]), coded bit by bit.
//!
//! The predictor's state spans the whole block and follows the block's
//! coding order: waves of `wave` consecutive chunks, and inside a wave
//! (position, chunk) order. A decoder must therefore advance a wave in one
//! lockstep batch and finish it before the block's next wave; waves of
//! different blocks share batches freely.
//!
//! Version 5 codes the same way and adds a CRC-32C of each wave but the
//! last: the decoder checks a wave's bytes as soon as the wave is done, so
//! they can be handed to a reader before the rest of the block (a damaged
//! payload fails there, before any of its bytes reach a reader).

use super::plain::encode_error;
use super::{batches, corrupt, lockstep, GroupJob, LlmHeader};
use crate::codec::progress::Checked;
use crate::codec::CodecError;
use crate::coder::range::{Decoder, Encoder};
use crate::coder::FreqTable;
use crate::mix::{ByteEncoder, Predictor};
use crate::model::{Engine, VOCAB};

/// How a block is cut: its length, its chunks' length, chunks per group
/// stream and per wave.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub raw_len: usize,
    pub chunk_len: usize,
    pub group: usize,
    pub wave: usize,
}

/// The in-block models' state for a block of `raw_len` bytes: a copy of
/// `primed` (version 6) or a fresh one.
fn predictor(raw_len: usize, chunk_len: usize, primed: Option<&Predictor>) -> Predictor {
    match primed {
        Some(p) => p.for_block(raw_len),
        None => Predictor::new(raw_len, chunk_len),
    }
}

/// The group streams of a block cut into `chunks` as `shape` says.
pub(super) fn encode_streams(
    chunks: &[&[u8]],
    logits: &[Vec<f32>],
    shape: Shape,
    primed: Option<&Predictor>,
) -> Result<Vec<Vec<u8>>, CodecError> {
    let Shape {
        raw_len,
        chunk_len,
        group,
        wave,
    } = shape;
    let mut predictor = predictor(raw_len, chunk_len, primed);
    let mut encoders: Vec<Encoder> = (0..chunks.len().div_ceil(group))
        .map(|_| Encoder::new())
        .collect();
    for w0 in (0..chunks.len()).step_by(wave) {
        let w1 = (w0 + wave).min(chunks.len());
        let longest = chunks[w0..w1].iter().map(|c| c.len()).max().unwrap_or(0);
        for t in 0..longest {
            for c in w0..w1 {
                let Some(&byte) = chunks[c].get(t) else {
                    continue;
                };
                let table = FreqTable::from_logits(&logits[c][t * VOCAB..(t + 1) * VOCAB])
                    .map_err(encode_error)?;
                let mut bits = ByteEncoder {
                    encoder: &mut encoders[c / group],
                    byte,
                    next: 0,
                };
                predictor
                    .code_byte(c, &table, &mut bits)
                    .map_err(encode_error)?;
            }
        }
    }
    Ok(encoders.into_iter().map(Encoder::finish).collect())
}

/// A mixed (version 2, 4 or 5) block being decoded.
pub(super) struct MixedBlock<'a> {
    header: LlmHeader,
    /// CRC-32C of each wave but the last (version 5; empty otherwise).
    wave_checks: Vec<u32>,
    raw_len: usize,
    /// One range decoder per group stream.
    decoders: Vec<Decoder<'a>>,
    predictor: Predictor,
    error: Option<CodecError>,
}

impl<'a> MixedBlock<'a> {
    /// A block to decode; `primed`: the in-block models primed with the
    /// dictionary the payload names (version 6).
    pub(super) fn new(
        header: LlmHeader,
        wave_checks: Vec<u32>,
        groups: Vec<GroupJob<'a>>,
        raw_len: usize,
        primed: Option<&Predictor>,
    ) -> Self {
        MixedBlock {
            header,
            wave_checks,
            raw_len,
            decoders: groups.iter().map(|g| Decoder::new(g.stream)).collect(),
            predictor: predictor(raw_len, header.chunk_len, primed),
            error: None,
        }
    }

    fn chunks(&self) -> usize {
        self.raw_len.div_ceil(self.header.chunk_len)
    }

    /// Bytes `start..end` of wave `k`.
    fn wave_bytes(&self, k: usize) -> std::ops::Range<usize> {
        let span = self.header.wave * self.header.chunk_len;
        (k * span).min(self.raw_len)..((k + 1) * span).min(self.raw_len)
    }

    /// Checks wave `k`, just decoded, against its checksum, if the payload
    /// has one for it; says whether it had.
    fn check_wave(&mut self, k: usize) -> bool {
        let Some(&want) = self.wave_checks.get(k) else {
            return false;
        };
        let got = crc32c::crc32c(&self.predictor.block()[self.wave_bytes(k)]);
        if got != want {
            self.error = Some(corrupt(format!(
                "wave {k} decodes to bytes of CRC-32C {got:08x}, the payload says {want:08x}"
            )));
        }
        true
    }

    fn chunk_len(&self, c: usize) -> usize {
        self.header
            .chunk_len
            .min(self.raw_len - c * self.header.chunk_len)
    }

    /// The block's bytes, once every wave is decoded, after checking that
    /// each stream ended where the encoder ended it.
    fn finish(self) -> Result<Vec<u8>, CodecError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for d in self.decoders {
            d.finish().map_err(|e| corrupt(e.to_string()))?;
        }
        Ok(self.predictor.into_block())
    }
}

/// One wave of one block: chunks `first..end`.
struct Unit {
    block: usize,
    first: usize,
    end: usize,
}

/// Decodes `blocks`, batching waves of different blocks together. With
/// `report` (one block), the block's prefix goes to the thread's progress
/// sink after each wave: wave `k` codes chunks `k * wave..(k + 1) * wave`,
/// that is bytes `k * wave * chunk_len..(k + 1) * wave * chunk_len`, and
/// nothing after it writes there, so once it is done the block's first
/// `(k + 1) * wave * chunk_len` bytes are final; with the wave's checksum
/// (version 5) they are reported as checked, once they matched it.
pub(super) fn decode_blocks(
    engine: &mut Engine,
    mut blocks: Vec<MixedBlock<'_>>,
    report: bool,
) -> Vec<Result<Vec<u8>, CodecError>> {
    for round in 0.. {
        // This round: wave `round` of every block that has one.
        let units: Vec<Unit> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.error.is_none())
            .filter_map(|(i, b)| {
                let first = round * b.header.wave;
                (first < b.chunks()).then(|| Unit {
                    block: i,
                    first,
                    end: (first + b.header.wave).min(b.chunks()),
                })
            })
            .collect();
        if units.is_empty() {
            break;
        }
        let sizes: Vec<usize> = units.iter().map(|u| u.end - u.first).collect();
        for range in batches(&sizes) {
            let batch = &units[range];
            if let Err(e) = decode_wave_batch(engine, &mut blocks, batch) {
                for u in batch {
                    blocks[u.block].error.get_or_insert_with(|| e.clone());
                }
            }
        }
        let mut checked = false;
        for u in &units {
            let b = &mut blocks[u.block];
            if b.error.is_none() {
                checked = b.check_wave(round);
            }
        }
        if let [b] = &blocks[..] {
            if report && b.error.is_none() {
                let end = b.wave_bytes(round).end;
                let checked = if checked { Checked::Yes } else { Checked::No };
                crate::codec::progress::report(&b.predictor.block()[..end], checked);
            }
        }
    }
    blocks.into_iter().map(MixedBlock::finish).collect()
}

/// Advances the chunks of `batch` in lockstep, position by position; a
/// coding error stops only its own block.
fn decode_wave_batch(
    engine: &mut Engine,
    blocks: &mut [MixedBlock<'_>],
    batch: &[Unit],
) -> Result<(), CodecError> {
    let seqs: usize = batch.iter().map(|u| u.end - u.first).sum();
    let longest = batch
        .iter()
        .map(|u| blocks[u.block].chunk_len(u.first))
        .max()
        .unwrap_or(0);
    lockstep(engine, seqs, longest, |t, logits, prev| {
        let mut row = 0;
        for u in batch {
            let b = &mut blocks[u.block];
            for c in u.first..u.end {
                let r = row + c - u.first;
                if t >= b.chunk_len(c) || b.error.is_some() {
                    continue;
                }
                let coded =
                    FreqTable::from_logits(&logits[r * VOCAB..(r + 1) * VOCAB]).and_then(|table| {
                        let g = c / b.header.group;
                        b.predictor.code_byte(c, &table, &mut b.decoders[g])
                    });
                match coded {
                    Ok(byte) => prev[r] = byte,
                    Err(e) => b.error = Some(corrupt(e.to_string())),
                }
            }
            row += u.end - u.first;
        }
        Ok(())
    })
}
