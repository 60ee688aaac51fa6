//! What a media payload says about its block: where the samples start, how
//! they are stored, and how they are arranged (docs/FORMAT.md, "media
//! payload"). The decoder reads the layout from the payload and never
//! guesses; every field is range-checked before it sizes anything.

use super::MediaError;

/// Most channels an image pixel may have (gray, RGB, RGBA).
pub const MAX_IMAGE_CHANNELS: u8 = 4;
/// Most channels an audio frame may have.
pub const MAX_AUDIO_CHANNELS: u8 = 8;
/// Widest image row a payload may describe.
pub const MAX_ROW_PIXELS: u32 = 1 << 24;
/// Highest LPC order a payload may carry.
pub const MAX_LPC_ORDER: usize = 32;

/// How one sample is stored: 1-3 bytes, byte order, signedness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleFormat {
    pub bytes: u8,
    pub big_endian: bool,
    pub signed: bool,
}

impl SampleFormat {
    pub const U8: SampleFormat = SampleFormat {
        bytes: 1,
        big_endian: false,
        signed: false,
    };

    pub fn bits(self) -> u32 {
        8 * u32::from(self.bytes)
    }

    /// The smallest and largest value a sample can hold.
    pub fn range(self) -> (i32, i32) {
        let bits = self.bits();
        if self.signed {
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        } else {
            (0, (1 << bits) - 1)
        }
    }

    /// Reads the sample at the start of `b` (at least `bytes` long).
    #[inline]
    pub fn read(self, b: &[u8]) -> i32 {
        let n = usize::from(self.bytes);
        let mut u = 0u32;
        for i in 0..n {
            let byte = if self.big_endian { b[i] } else { b[n - 1 - i] };
            u = (u << 8) | u32::from(byte);
        }
        if self.signed {
            let shift = 32 - self.bits();
            ((u << shift) as i32) >> shift
        } else {
            u as i32
        }
    }

    /// Appends sample `v` (inside [`SampleFormat::range`]).
    #[inline]
    pub fn write(self, v: i32, out: &mut Vec<u8>) {
        let n = u32::from(self.bytes);
        let u = v as u32;
        for i in 0..n {
            let shift = if self.big_endian {
                8 * (n - 1 - i)
            } else {
                8 * i
            };
            out.push((u >> shift) as u8);
        }
    }

    fn to_byte(self) -> u8 {
        self.bytes | u8::from(self.big_endian) << 2 | u8::from(self.signed) << 3
    }

    fn from_byte(b: u8) -> Result<SampleFormat, MediaError> {
        let bytes = b & 3;
        if bytes == 0 || b >> 4 != 0 {
            return Err(MediaError::BadField("sample format", u64::from(b)));
        }
        Ok(SampleFormat {
            bytes,
            big_endian: b & 4 != 0,
            signed: b & 8 != 0,
        })
    }
}

/// An image's rows: `row_pixels` pixels of `channels` samples, then
/// `row_pad` padding bytes; the block's first pixel is column `x0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    pub channels: u8,
    pub row_pixels: u32,
    pub row_pad: u16,
    pub x0: u32,
}

/// One channel's linear predictor: `pred = sum(coefs[i] * s[t-1-i]) >> shift`,
/// over the channel's samples or (`side`, channels after the first) over
/// its differences from the first channel, then added to the first
/// channel's sample of the frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lpc {
    pub shift: u8,
    pub side: bool,
    pub coefs: Vec<i16>,
}

/// The shift byte's flag for a side predictor.
const SIDE: u8 = 0x80;

/// Interleaved audio frames of `channels` samples, each channel with its
/// block's linear predictor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioLayout {
    pub channels: u8,
    pub lpc: Vec<Lpc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrangement {
    Image(ImageLayout),
    Audio(AudioLayout),
}

/// A block's layout: `lead` bytes stored verbatim (a header, or a partial
/// sample), then samples as arranged, then a tail shorter than one pixel or
/// frame, stored verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub lead: u32,
    pub format: SampleFormat,
    pub arrangement: Arrangement,
}

pub const KIND_STORED: u8 = 0;
pub const KIND_IMAGE: u8 = 1;
pub const KIND_AUDIO: u8 = 2;

impl Layout {
    /// Bytes of one pixel or frame.
    pub fn unit(&self) -> usize {
        let channels = match &self.arrangement {
            Arrangement::Image(i) => i.channels,
            Arrangement::Audio(a) => a.channels,
        };
        usize::from(channels) * usize::from(self.format.bytes)
    }

    /// Bytes of the sample region (after the lead, before the tail) in a
    /// block of `raw_len` bytes.
    pub fn body_len(&self, raw_len: usize) -> usize {
        let avail = raw_len.saturating_sub(self.lead as usize);
        let unit = self.unit();
        match &self.arrangement {
            Arrangement::Audio(_) => avail - avail % unit,
            Arrangement::Image(img) => {
                // The first row from x0, then whole rows (pixels and pad);
                // a final partial row keeps its whole pixels, and its pad
                // bytes only when all its pixels are there.
                let width = img.row_pixels as usize;
                let pad = usize::from(img.row_pad);
                let mut used = 0;
                let mut x = img.x0 as usize;
                loop {
                    let pixels = (width - x).min((avail - used) / unit);
                    used += pixels * unit;
                    if pixels < width - x {
                        return used;
                    }
                    let p = pad.min(avail - used);
                    used += p;
                    if p < pad || used == avail {
                        return used;
                    }
                    x = 0;
                }
            }
        }
    }

    /// Appends the layout fields (after the version and kind bytes).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(match self.arrangement {
            Arrangement::Image(_) => KIND_IMAGE,
            Arrangement::Audio(_) => KIND_AUDIO,
        });
        out.push(self.format.to_byte());
        out.extend_from_slice(&self.lead.to_le_bytes());
        match &self.arrangement {
            Arrangement::Image(i) => {
                out.push(i.channels);
                out.extend_from_slice(&i.row_pixels.to_le_bytes());
                out.extend_from_slice(&i.row_pad.to_le_bytes());
                out.extend_from_slice(&i.x0.to_le_bytes());
            }
            Arrangement::Audio(a) => {
                out.push(a.channels);
                for l in &a.lpc {
                    out.push(l.coefs.len() as u8);
                    out.push(l.shift | if l.side { SIDE } else { 0 });
                    for c in &l.coefs {
                        out.extend_from_slice(&c.to_le_bytes());
                    }
                }
            }
        }
    }

    /// Parses the layout of kind `kind` from `b`; returns it and the bytes
    /// it used. Checks every field, and that the lead fits `raw_len`.
    pub fn read(kind: u8, b: &[u8], raw_len: usize) -> Result<(Layout, usize), MediaError> {
        if kind != KIND_IMAGE && kind != KIND_AUDIO {
            return Err(MediaError::UnknownKind(kind));
        }
        let mut r = Reader { b, pos: 0 };
        let format = SampleFormat::from_byte(r.u8()?)?;
        let lead = r.u32()?;
        if lead as usize > raw_len {
            return Err(MediaError::LayoutTooLong {
                needs: u64::from(lead),
                raw_len,
            });
        }
        let arrangement = match kind {
            KIND_IMAGE => {
                let channels = r.u8()?;
                if !(1..=MAX_IMAGE_CHANNELS).contains(&channels) {
                    return Err(MediaError::BadField("channels", u64::from(channels)));
                }
                let row_pixels = r.u32()?;
                if row_pixels == 0 || row_pixels > MAX_ROW_PIXELS {
                    return Err(MediaError::BadField("row pixels", u64::from(row_pixels)));
                }
                let row_pad = u16::from_le_bytes([r.u8()?, r.u8()?]);
                let x0 = r.u32()?;
                if x0 >= row_pixels {
                    return Err(MediaError::BadField("first column", u64::from(x0)));
                }
                Arrangement::Image(ImageLayout {
                    channels,
                    row_pixels,
                    row_pad,
                    x0,
                })
            }
            KIND_AUDIO => {
                let channels = r.u8()?;
                if !(1..=MAX_AUDIO_CHANNELS).contains(&channels) {
                    return Err(MediaError::BadField("channels", u64::from(channels)));
                }
                let mut lpc = Vec::with_capacity(usize::from(channels));
                for c in 0..channels {
                    let order = usize::from(r.u8()?);
                    if order > MAX_LPC_ORDER {
                        return Err(MediaError::BadField("lpc order", order as u64));
                    }
                    let byte = r.u8()?;
                    let (shift, side) = (byte & !SIDE, byte & SIDE != 0);
                    if shift > 15 || (side && c == 0) {
                        return Err(MediaError::BadField("lpc shift", u64::from(byte)));
                    }
                    let mut coefs = Vec::with_capacity(order);
                    for _ in 0..order {
                        coefs.push(i16::from_le_bytes([r.u8()?, r.u8()?]));
                    }
                    lpc.push(Lpc { shift, side, coefs });
                }
                Arrangement::Audio(AudioLayout { channels, lpc })
            }
            k => return Err(MediaError::UnknownKind(k)),
        };
        Ok((
            Layout {
                lead,
                format,
                arrangement,
            },
            r.pos,
        ))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, MediaError> {
        let v = *self.b.get(self.pos).ok_or(MediaError::Truncated)?;
        self.pos += 1;
        Ok(v)
    }

    fn u32(&mut self) -> Result<u32, MediaError> {
        let mut v = [0u8; 4];
        for x in &mut v {
            *x = self.u8()?;
        }
        Ok(u32::from_le_bytes(v))
    }
}
