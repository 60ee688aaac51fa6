//! The `media` codec (codec 5): raw images and PCM audio, coded by
//! modality models on cm's machinery (its arithmetic coder, mixers, APM and
//! adaptive probabilities), integer only.
//!
//! Per block the encoder finds a layout ([`detect`]: a WAV, AIFF, BMP,
//! PGM/PPM or TIFF header at the block's start, else a cheap search over
//! sample widths, channels, phases and image strides) and records it in the
//! payload ([`layout`]), so the decoder never guesses and every block
//! decodes on its own. Images go through [`image`] (blended neighbour
//! predictors), audio through [`audio`] (the block's LPC, then LMS), and
//! both residual streams through [`residual`]. A block with no layout that
//! scores is stored as it is (kind 0), which the codec choice then drops.
//! docs/FORMAT.md ("media payload") is the byte-by-byte specification.

pub mod audio;
pub mod detect;
mod error;
pub mod image;
pub mod layout;
mod ols;
pub mod residual;
#[cfg(test)]
pub(crate) mod tests;

pub use error::MediaError;

use super::cm::arith;
use super::{Codec, CodecError, CodecId};
use layout::{Arrangement, Layout, KIND_STORED};

/// The newest payload format version this build writes: for audio
/// ([`version_for`]).
pub const PAYLOAD_VERSION: u8 = 3;
/// The oldest payload version this build reads: version 1 (the models of
/// the first media release) decodes with those models, kept behind
/// [`Version`].
pub const OLDEST_PAYLOAD_VERSION: u8 = 1;

/// The models a payload version uses. Version 1: the image model blends
/// eleven predictors (ten fixed, moved by the previous channel's errors,
/// and the NLMS one) and audio's second stage is a 16+2-tap sign-sign LMS.
/// Version 2: docs/FORMAT.md ("media payload", "Version 2"). Version 3
/// changes the audio model only (least-squares predictors, a long NLMS, a
/// final stage and more contexts: "Version 3").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    V3,
}

impl Version {
    /// The models of payload version `v`, if this build reads it.
    pub fn of(v: u8) -> Result<Version, MediaError> {
        match v {
            1 => Ok(Version::V1),
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            _ => Err(MediaError::UnknownVersion(v)),
        }
    }

    /// The version byte.
    pub fn byte(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// The payload version of a media payload (its first byte), if any.
pub fn payload_version(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

/// The media codec. Holds no tables: each block gets fresh models.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaCodec;

fn code_body<IO: residual::BitIo>(
    io: &mut IO,
    version: Version,
    lay: &Layout,
    body: Option<&[u8]>,
    body_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    match &lay.arrangement {
        Arrangement::Image(img) => {
            image::code_body(io, version, lay.format, img, body, body_len, out)
        }
        Arrangement::Audio(a) => audio::code_body(io, version, lay.format, a, body, body_len, out),
    }
}

/// Guessed layouts the encoder tries with its model on a block with no
/// header.
const TRIALS: usize = 8;
/// Bytes of the block those trials code.
const TRIAL_BYTES: usize = 8192;

/// The layout the encoder uses for `raw`, if any: the header's, else of
/// the best guesses of [`detect::candidates`] the one whose model codes the
/// block's first [`TRIAL_BYTES`] smallest (a fixed predictor's estimate
/// alone picks a sheared stride or a gray reading of RGB too often).
pub fn choose_layout(raw: &[u8]) -> Option<Layout> {
    let usable = |lay: Layout| (lay.body_len(raw.len()) > 0).then_some(lay);
    if let Some(found) = detect::header(raw) {
        return usable(detect::layout(raw, found));
    }
    let found = detect::candidates(raw, TRIALS);
    // Audio ranked first keeps the estimate's pick: the audio model needs
    // more than a probe to show its best (a probe's LPC fit is poorer).
    let audio_first = matches!(found.first(), Some(detect::Found::Audio { .. }));
    let best = if found.len() > 1 && raw.len() > TRIAL_BYTES && !audio_first {
        let probe = &raw[..TRIAL_BYTES];
        found
            .into_iter()
            .map(|f| {
                let lay = detect::layout(probe, f);
                (encode_with_layout(probe, Some(&lay), Vec::new()).len(), f)
            })
            .min_by_key(|&(len, _)| len)?
            .1
    } else {
        *found.first()?
    };
    let mut lay = detect::layout(raw, best);
    detect::place_rows(raw, &mut lay);
    usable(lay)
}

/// The payload version this build writes for a block of layout `lay`:
/// version 3 for audio, whose model it changed; version 2 for images and
/// stored blocks, which version 3 codes as version 2 does, so that a
/// volume of images stays open to builds that read version 2 only.
pub fn version_for(lay: Option<&Layout>) -> Version {
    match lay.map(|l| &l.arrangement) {
        Some(Arrangement::Audio(_)) => Version::V3,
        Some(Arrangement::Image(_)) | None => Version::V2,
    }
}

/// Encodes `raw` with layout `lay` (or stored, for None) into a payload
/// appended to `out`.
pub fn encode_with_layout(raw: &[u8], lay: Option<&Layout>, out: Vec<u8>) -> Vec<u8> {
    encode_version(raw, lay, version_for(lay), out)
}

/// [`encode_with_layout`] in payload version `version` (an older version
/// only for tests of the decoder's compatibility).
pub fn encode_version(
    raw: &[u8],
    lay: Option<&Layout>,
    version: Version,
    mut out: Vec<u8>,
) -> Vec<u8> {
    out.push(version.byte());
    let Some(lay) = lay else {
        out.push(KIND_STORED);
        out.extend_from_slice(raw);
        return out;
    };
    lay.write(&mut out);
    let lead = lay.lead as usize;
    let body_len = lay.body_len(raw.len());
    out.extend_from_slice(&raw[..lead]);
    out.extend_from_slice(&raw[lead + body_len..]);
    let mut enc = arith::Encoder::new(out);
    let mut check = Vec::with_capacity(body_len);
    code_body(
        &mut enc,
        version,
        lay,
        Some(&raw[lead..lead + body_len]),
        body_len,
        &mut check,
    )
    .expect("encoding never fails: samples come from the block");
    debug_assert_eq!(check, raw[lead..lead + body_len]);
    enc.finish()
}

/// Encodes `raw` into a complete media payload appended to `out`.
pub fn encode_payload(raw: &[u8], out: Vec<u8>) -> Vec<u8> {
    encode_with_layout(raw, choose_layout(raw).as_ref(), out)
}

/// The layout a payload records (None for a stored block), for reports.
pub fn payload_layout(payload: &[u8], raw_len: usize) -> Result<Option<Layout>, MediaError> {
    match payload {
        [] | [_] => Err(MediaError::Truncated),
        [v, kind, rest @ ..] => {
            Version::of(*v)?;
            if *kind == KIND_STORED {
                Ok(None)
            } else {
                Ok(Some(Layout::read(*kind, rest, raw_len)?.0))
            }
        }
    }
}

/// Decodes a media payload of `raw_len` bytes into `out` (cleared by the
/// caller). Never writes more than `raw_len` bytes, and codes at most one
/// residual per sample, each of a bounded number of decisions.
pub fn decode_payload(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), MediaError> {
    let (&version, rest) = payload.split_first().ok_or(MediaError::Truncated)?;
    let version = Version::of(version)?;
    let (&kind, rest) = rest.split_first().ok_or(MediaError::Truncated)?;
    if kind == KIND_STORED {
        if rest.len() != raw_len {
            return Err(MediaError::LayoutTooLong {
                needs: rest.len() as u64,
                raw_len,
            });
        }
        out.extend_from_slice(rest);
        return Ok(());
    }
    let (lay, used) = Layout::read(kind, rest, raw_len)?;
    let rest = &rest[used..];
    let lead = lay.lead as usize;
    let body_len = lay.body_len(raw_len);
    let tail = raw_len - lead - body_len;
    let verbatim = rest.get(..lead + tail).ok_or(MediaError::Truncated)?;
    let stream = &rest[lead + tail..];
    out.reserve_exact(raw_len);
    out.extend_from_slice(&verbatim[..lead]);
    let mut dec = arith::Decoder::new(stream);
    code_body(&mut dec, version, &lay, None, body_len, out)?;
    dec.finish()?;
    out.extend_from_slice(&verbatim[lead..]);
    Ok(())
}

impl Codec for MediaCodec {
    fn id(&self) -> CodecId {
        CodecId::Media
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        *out = encode_payload(raw, std::mem::take(out));
        Ok(())
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        decode_payload(payload, raw_len, out).map_err(|e| CodecError::Corrupt {
            codec: CodecId::Media,
            detail: e.to_string(),
        })
    }
}
