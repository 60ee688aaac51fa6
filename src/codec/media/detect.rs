//! Finds a block's layout (encoder only): from a WAV, AIFF, BMP, PGM/PPM or
//! uncompressed TIFF header at the block's start, else by a cheap search
//! over sample widths, channel counts, phases and image strides, scored by
//! the bits a simple predictor would leave. A wrong answer costs bytes,
//! never correctness: the payload records whatever layout was used.

use super::layout::{
    Arrangement, AudioLayout, ImageLayout, Layout, Lpc, SampleFormat, MAX_AUDIO_CHANNELS,
};

/// What a header says, before audio predictors are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Image {
        data: usize,
        format: SampleFormat,
        channels: u8,
        row_pixels: u32,
        row_pad: u16,
    },
    Audio {
        data: usize,
        format: SampleFormat,
        channels: u8,
    },
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn pcm(bits: u32, big_endian: bool, signed8: bool) -> Option<SampleFormat> {
    let bytes = match bits {
        8 => 1,
        16 => 2,
        24 => 3,
        _ => return None,
    };
    Some(SampleFormat {
        bytes,
        big_endian,
        signed: bytes > 1 || signed8,
    })
}

fn wav(b: &[u8]) -> Option<Found> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = le32(b, at + 4)? as usize;
        if id == b"fmt " {
            let tag = le16(b, at + 8)?;
            let channels = le16(b, at + 10)?;
            let bits = le16(b, at + 22)?;
            if !(tag == 1 || tag == 0xFFFE)
                || channels == 0
                || channels > u32::from(MAX_AUDIO_CHANNELS)
            {
                return None;
            }
            fmt = Some((pcm(bits, false, false)?, channels as u8));
        } else if id == b"data" {
            let (format, channels) = fmt?;
            return Some(Found::Audio {
                data: at + 8,
                format,
                channels,
            });
        }
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

fn aiff(b: &[u8]) -> Option<Found> {
    if b.get(0..4)? != b"FORM" || !matches!(b.get(8..12)?, b"AIFF" | b"AIFC") {
        return None;
    }
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = be32(b, at + 4)? as usize;
        if id == b"COMM" {
            let channels = be16(b, at + 8)?;
            let bits = be16(b, at + 14)?;
            if channels == 0 || channels > u32::from(MAX_AUDIO_CHANNELS) {
                return None;
            }
            fmt = Some((pcm(bits, true, true)?, channels as u8));
        } else if id == b"SSND" {
            let (format, channels) = fmt?;
            let offset = be32(b, at + 8)? as usize;
            return Some(Found::Audio {
                data: at + 16 + offset,
                format,
                channels,
            });
        }
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

fn bmp(b: &[u8]) -> Option<Found> {
    if b.get(0..2)? != b"BM" {
        return None;
    }
    let data = le32(b, 10)? as usize;
    let width = le32(b, 18)? as i32;
    let bpp = le16(b, 28)?;
    let compression = le32(b, 30)?;
    let channels = match (bpp, compression) {
        (8, 0) => 1,
        (24, 0) => 3,
        (32, 0 | 3) => 4,
        _ => return None,
    };
    if width <= 0 {
        return None;
    }
    let row = width as u64 * u64::from(channels);
    let stride = row.div_ceil(4) * 4;
    Some(Found::Image {
        data,
        format: SampleFormat::U8,
        channels,
        row_pixels: width as u32,
        row_pad: (stride - row) as u16,
    })
}

/// PGM (P5) and PPM (P6): magic, width, height, maxval, one whitespace.
fn pnm(b: &[u8]) -> Option<Found> {
    let channels = match b.get(0..2)? {
        b"P5" => 1,
        b"P6" => 3,
        _ => return None,
    };
    let mut at = 2;
    let mut fields = [0u32; 3];
    for f in &mut fields {
        loop {
            match *b.get(at)? {
                b'#' => {
                    while *b.get(at)? != b'\n' {
                        at += 1;
                    }
                }
                c if c.is_ascii_whitespace() => at += 1,
                _ => break,
            }
        }
        let start = at;
        while b.get(at)?.is_ascii_digit() {
            at += 1;
        }
        *f = std::str::from_utf8(&b[start..at]).ok()?.parse().ok()?;
    }
    if !b.get(at)?.is_ascii_whitespace() || fields[0] == 0 || fields[2] == 0 {
        return None;
    }
    let format = if fields[2] < 256 {
        SampleFormat::U8
    } else if fields[2] < 65536 {
        SampleFormat {
            bytes: 2,
            big_endian: true,
            signed: false,
        }
    } else {
        return None;
    };
    Some(Found::Image {
        data: at + 1,
        format,
        channels,
        row_pixels: fields[0],
        row_pad: 0,
    })
}

/// Baseline uncompressed, chunky TIFF: the first strip's offset.
fn tiff(b: &[u8]) -> Option<Found> {
    let big = match b.get(0..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let r16 = |at| if big { be16(b, at) } else { le16(b, at) };
    let r32 = |at| if big { be32(b, at) } else { le32(b, at) };
    let ifd = r32(4)? as usize;
    let n = r16(ifd)? as usize;
    let (mut width, mut bits, mut comp, mut spp, mut strip, mut planar) = (0, 8, 1, 1, None, 1);
    for i in 0..n.min(64) {
        let e = ifd + 2 + 12 * i;
        let tag = r16(e)?;
        let typ = r16(e + 2)?;
        let count = r32(e + 4)?;
        let value = if typ == 3 && count == 1 {
            r16(e + 8)?
        } else {
            r32(e + 8)?
        };
        match tag {
            256 => width = value,
            258 => {
                bits = if count == 1 {
                    value
                } else {
                    r16(value as usize)?
                }
            }
            259 => comp = value,
            273 => {
                strip = Some(if count == 1 {
                    value
                } else if typ == 3 {
                    r16(value as usize)?
                } else {
                    r32(value as usize)?
                })
            }
            277 => spp = value,
            284 => planar = value,
            _ => {}
        }
    }
    if comp != 1 || planar != 1 || width == 0 || !(1..=4).contains(&spp) {
        return None;
    }
    let format = match bits {
        8 => SampleFormat::U8,
        16 => SampleFormat {
            bytes: 2,
            big_endian: big,
            signed: false,
        },
        _ => return None,
    };
    Some(Found::Image {
        data: strip? as usize,
        format,
        channels: spp as u8,
        row_pixels: width,
        row_pad: 0,
    })
}

/// The layout a header at the start of `block` describes, if any.
pub fn header(block: &[u8]) -> Option<Found> {
    let found = wav(block)
        .or_else(|| aiff(block))
        .or_else(|| bmp(block))
        .or_else(|| pnm(block))
        .or_else(|| tiff(block))?;
    let data = match found {
        Found::Image { data, .. } | Found::Audio { data, .. } => data,
    };
    (data < block.len()).then_some(found)
}

/// Bits a residual of `e` costs, roughly.
#[inline]
fn est(e: i32) -> u64 {
    u64::from(33 - e.unsigned_abs().leading_zeros()) + 1
}

const PROBE: usize = 16384;

/// Estimated bits per byte of `block` read as audio of `format` x
/// `channels` from byte `phase`, with a fixed second-order predictor.
fn audio_cost(block: &[u8], format: SampleFormat, channels: usize, phase: usize) -> (u64, usize) {
    let sb = usize::from(format.bytes);
    let frame = sb * channels;
    let body = &block[phase..];
    let frames = (body.len() / frame).min(PROBE / frame.max(1) * 2);
    let mut hist = [[0i32; 2]; MAX_AUDIO_CHANNELS as usize];
    let mut bits = 0;
    for f in 0..frames {
        let (mut first, prev_first) = (0, hist[0][0]);
        for c in 0..channels {
            let v = format.read(&body[f * frame + c * sb..]);
            let h = hist[c];
            let mut e = est(v - (2 * h[0] - h[1]));
            if c > 0 {
                // Later channels may follow the first (as the models use).
                e = e.min(est(v - (first + h[0] - prev_first)));
            } else {
                first = v;
            }
            bits += e;
            hist[c] = [v, h[0]];
        }
    }
    (bits, frames * frame)
}

/// Estimated bits of `block` as an image with `stride` bytes per row of
/// `channels` 8-bit samples per pixel (then pad bytes), the first row
/// starting at byte `phase`, on a probe of rows. The first channel of a
/// pixel is predicted by MED; the others by MED moved by the previous
/// channel's MED error, as the image model does.
fn image_cost(block: &[u8], stride: usize, channels: usize, phase: usize) -> (u64, usize) {
    let start = phase + stride;
    let end = block.len().min(start + PROBE);
    let row_bytes = stride - stride % channels;
    let med_at = |i: usize, x: usize| -> i32 {
        let w = if x >= channels {
            block[i - channels]
        } else {
            block[i - stride]
        };
        let n = block[i - stride];
        let nw = if x >= channels {
            block[i - stride - channels]
        } else {
            n
        };
        i32::from(super::image::med_u8(w, n, nw))
    };
    let mut bits = 0;
    for i in start..end {
        let x = (i - phase) % stride;
        let v = i32::from(block[i]);
        let p = if x >= row_bytes {
            // Pad: the byte above.
            i32::from(block[i - stride])
        } else if x % channels > 0 {
            let prev = i32::from(block[i - 1]);
            (med_at(i, x) + prev - med_at(i - 1, x - 1)).clamp(0, 255)
        } else {
            med_at(i, x)
        };
        bits += est(v - p);
    }
    (bits, end.saturating_sub(start))
}

/// The row strides (bytes) along which `block` repeats best: the eight
/// best scores of the gradient predictor's residual at that stride, on 64
/// runs of 64 bytes spread over the block (runs, not single bytes, so that
/// a stride can not alias with the sampling step).
fn find_strides(block: &[u8]) -> Vec<usize> {
    let max = (block.len() / 3).min(16384);
    if max < 16 || block.len() < max + 4096 {
        return Vec::new();
    }
    let span = block.len() - max - 65;
    let starts: Vec<usize> = (0..64).map(|k| max + 1 + k * span / 64).collect();
    let scores: Vec<u64> = (8..=max)
        .map(|s| {
            let mut d = 0u64;
            for &at in &starts {
                for i in at..at + 64 {
                    // The residual of W + N - NW for that stride: the
                    // bytes' horizontal correlation cancels, so textured
                    // rows do not make every short stride look alike.
                    let g = i32::from(block[i]) - i32::from(block[i - 1]) - i32::from(block[i - s])
                        + i32::from(block[i - s - 1]);
                    d += u64::from(g.unsigned_abs());
                }
            }
            d
        })
        .collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by_key(|&i| (scores[i], i));
    // The gradient score ranks a stride one pixel off (a sheared image)
    // about as well as the true one on noisy photos; among the strides
    // next to each pick, the plain vertical difference is smallest at the
    // true one (the pixel above is nearer than the diagonal ones).
    let vertical = |s: usize| -> u64 {
        let mut d = 0u64;
        for &at in &starts {
            for i in at..at + 64 {
                d += u64::from(block[i].abs_diff(block[i - s]));
            }
        }
        d
    };
    let mut out = Vec::new();
    for s in order.into_iter().take(8).map(|i| i + 8) {
        let near = s.saturating_sub(4).max(8)..=(s + 4).min(max);
        let best = near.min_by_key(|&t| (vertical(t), t)).unwrap_or(s);
        if !out.contains(&best) {
            out.push(best);
        }
    }
    out
}

/// A guessed layout (without audio predictors) for a block with no
/// header, or None when nothing scores better than 7 bits a byte.
pub fn search(block: &[u8]) -> Option<Found> {
    candidates(block, 1).into_iter().next()
}

/// The `keep` best guessed layouts for a block with no header, best
/// first, by the estimate of a fixed predictor (only those under 7 bits a
/// byte). The estimate can rank a wrong stride or channel count first on
/// textured photos, so the encoder tries the top few with its real model.
pub fn candidates(block: &[u8], keep: usize) -> Vec<Found> {
    let mut all: Vec<(u64, usize, Found)> = Vec::new();
    let mut consider = |bits: u64, bytes: usize, found: Found| {
        if bytes < 256 {
            return;
        }
        // Bits per 1024 bytes, comparable across candidates.
        let rate = bits * 1024 / bytes as u64;
        if rate < 7 * 1024 {
            all.push((rate, all.len(), found));
        }
    };
    for bytes in [2u8, 1] {
        for channels in [1usize, 2] {
            let format = SampleFormat {
                bytes,
                big_endian: false,
                signed: bytes > 1,
            };
            for phase in 0..usize::from(bytes) * channels {
                if phase >= block.len() {
                    continue;
                }
                let (bits, n) = audio_cost(block, format, channels, phase);
                consider(
                    bits,
                    n,
                    Found::Audio {
                        data: phase,
                        format,
                        channels: channels as u8,
                    },
                );
            }
        }
    }
    for stride in find_strides(block) {
        for channels in [1usize, 3, 4] {
            if stride < channels {
                continue;
            }
            // The block may start inside a pixel: try each phase.
            for phase in 0..channels {
                let (bits, n) = image_cost(block, stride, channels, phase);
                let pad = stride % channels;
                consider(
                    bits,
                    n,
                    Found::Image {
                        data: phase,
                        format: SampleFormat::U8,
                        channels: channels as u8,
                        row_pixels: (stride / channels).max(1) as u32,
                        row_pad: pad as u16,
                    },
                );
            }
        }
    }
    // The rank keeps the first of equal rates, as one pass keeping the
    // best would.
    all.sort_by_key(|&(rate, order, _)| (rate, order));
    // One guess a stride and channel count (its best phase) or audio
    // format: the phases of one stride rank close and would crowd out the
    // other strides.
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (_, _, f) in all {
        let key = match f {
            Found::Image {
                channels,
                row_pixels,
                row_pad,
                ..
            } => (
                channels,
                row_pixels * u32::from(channels) + u32::from(row_pad),
            ),
            Found::Audio {
                format, channels, ..
            } => (0, u32::from(format.bytes) << 8 | u32::from(channels)),
        };
        if !seen.contains(&key) {
            seen.push(key);
            out.push(f);
            if out.len() == keep {
                break;
            }
        }
    }
    out
}

/// For a guessed image layout, the column of the block's first pixel:
/// the image's left edge is the column where the step from the pixel to
/// its west neighbour (the previous row's last pixel there) is largest,
/// summed over the rows. Leaves a header's layout and audio alone.
pub fn place_rows(block: &[u8], lay: &mut Layout) {
    let Arrangement::Image(img) = &mut lay.arrangement else {
        return;
    };
    if lay.format.bytes != 1 || img.row_pad != 0 || img.row_pixels < 8 {
        return;
    }
    let ch = usize::from(img.channels);
    let width = img.row_pixels as usize;
    let stride = width * ch;
    let body = &block[lay.lead as usize..];
    let rows = body.len() / stride;
    if rows < 4 {
        return;
    }
    // Step at each pixel column (from the second row on).
    let mut step = vec![0u64; width];
    for r in 1..rows {
        for (x, s) in step.iter_mut().enumerate() {
            let i = r * stride + x * ch;
            for c in 0..ch {
                *s += u64::from(body[i + c].abs_diff(body[i + c - ch]));
            }
        }
    }
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by_key(|&x| (std::cmp::Reverse(step[x]), x));
    let edge = order[0];
    // Only a clear edge: twice the median step.
    if step[edge] < 2 * step[order[width / 2]] {
        return;
    }
    img.x0 = ((width - edge) % width) as u32;
}

/// The full layout for `found` in `block`: audio gets its predictors
/// fitted to the block's samples.
pub fn layout(block: &[u8], found: Found) -> Layout {
    match found {
        Found::Image {
            data,
            format,
            channels,
            row_pixels,
            row_pad,
        } => Layout {
            lead: data as u32,
            format,
            arrangement: Arrangement::Image(ImageLayout {
                channels,
                row_pixels,
                row_pad,
                x0: 0,
            }),
        },
        Found::Audio {
            data,
            format,
            channels,
        } => {
            let sb = usize::from(format.bytes);
            let nch = usize::from(channels);
            let body = &block[data..];
            let frames = body.len() / (sb * nch);
            let channel = |c: usize| -> Vec<i32> {
                (0..frames)
                    .map(|f| format.read(&body[(f * nch + c) * sb..]))
                    .collect()
            };
            let first = channel(0);
            let lpc: Vec<Lpc> = (0..nch)
                .map(|c| {
                    let own = channel(c);
                    let (lpc, cost) = super::audio::lpc_for(&own);
                    if c == 0 {
                        return lpc;
                    }
                    // Or the difference from the first channel, when that
                    // predicts better (near-mono recordings).
                    let diff: Vec<i32> = own.iter().zip(&first).map(|(a, b)| a - b).collect();
                    let (side, side_cost) = super::audio::lpc_for(&diff);
                    if side_cost < cost {
                        Lpc { side: true, ..side }
                    } else {
                        lpc
                    }
                })
                .collect();
            Layout {
                lead: data as u32,
                format,
                arrangement: Arrangement::Audio(AudioLayout { channels, lpc }),
            }
        }
    }
}
