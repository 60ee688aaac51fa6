//! Payload version 1: the transformer alone drives the range coder, one
//! 256-symbol table per byte. Still written on request (to measure the
//! transformer's own contribution) and always decoded.

use super::{corrupt, lockstep, GroupJob};
use crate::codec::{CodecError, CodecId};
use crate::coder::range::{Decoder, Encoder};
use crate::coder::FreqTable;
use crate::model::{Engine, VOCAB};

/// The group streams of a block: chunks in groups of `group`, symbols in
/// (position, chunk) order inside a group.
pub(super) fn encode_streams(
    chunks: &[&[u8]],
    logits: &[Vec<f32>],
    group: usize,
) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut streams = Vec::new();
    for (g, members) in chunks.chunks(group).enumerate() {
        let mut enc = Encoder::new();
        let longest = members.iter().map(|c| c.len()).max().unwrap_or(0);
        for t in 0..longest {
            for (c, chunk) in members.iter().enumerate() {
                if let Some(&byte) = chunk.get(t) {
                    let l = &logits[g * group + c][t * VOCAB..(t + 1) * VOCAB];
                    let table = FreqTable::from_logits(l).map_err(encode_error)?;
                    let s = byte as usize;
                    enc.encode(table.cum(s), table.freq(s))
                        .map_err(encode_error)?;
                }
            }
        }
        streams.push(enc.finish());
    }
    Ok(streams)
}

pub(super) fn encode_error(e: impl std::fmt::Display) -> CodecError {
    CodecError::Encode {
        codec: CodecId::Llm,
        detail: e.to_string(),
    }
}

/// Advances all chunks of `jobs` in lockstep. Returns, per group, its
/// chunks' bytes, or the group's own coding error.
#[allow(clippy::type_complexity)]
pub(super) fn decode_batch(
    engine: &mut Engine,
    jobs: &[(usize, usize, GroupJob<'_>)],
) -> Result<Vec<Result<Vec<Vec<u8>>, CodecError>>, CodecError> {
    let seqs: usize = jobs.iter().map(|j| j.2.lens.len()).sum();
    let longest = jobs
        .iter()
        .flat_map(|j| j.2.lens.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let mut decoders: Vec<Option<Decoder<'_>>> = jobs
        .iter()
        .map(|j| Some(Decoder::new(j.2.stream)))
        .collect();
    let mut errors: Vec<Option<CodecError>> = vec![None; jobs.len()];
    let mut out: Vec<Vec<Vec<u8>>> = jobs
        .iter()
        .map(|j| j.2.lens.iter().map(|&l| Vec::with_capacity(l)).collect())
        .collect();
    lockstep(engine, seqs, longest, |t, logits, prev| {
        let mut row = 0;
        for (g, job) in jobs.iter().enumerate() {
            for (c, &len) in job.2.lens.iter().enumerate() {
                let r = row + c;
                if t >= len {
                    continue;
                }
                let Some(dec) = decoders[g].as_mut() else {
                    continue;
                };
                let table = FreqTable::from_logits(&logits[r * VOCAB..(r + 1) * VOCAB])
                    .map_err(|e| corrupt(e.to_string()))?;
                let symbol = match table.symbol_for(dec.target()) {
                    Ok(s) => s,
                    Err(e) => {
                        errors[g] = Some(corrupt(e.to_string()));
                        decoders[g] = None;
                        continue;
                    }
                };
                if let Err(e) = dec.consume(table.cum(symbol), table.freq(symbol)) {
                    errors[g] = Some(corrupt(e.to_string()));
                    decoders[g] = None;
                    continue;
                }
                out[g][c].push(symbol as u8);
                prev[r] = symbol as u8;
            }
            row += job.2.lens.len();
        }
        Ok(())
    })?;
    Ok(out
        .into_iter()
        .zip(decoders)
        .zip(errors)
        .map(|((chunks, dec), err)| match (err, dec) {
            (Some(e), _) => Err(e),
            (None, Some(dec)) => dec
                .finish()
                .map(|()| chunks)
                .map_err(|e| corrupt(e.to_string())),
            (None, None) => Err(corrupt("decoder stopped".into())),
        })
        .collect())
}
