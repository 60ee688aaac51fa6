//! The binary arithmetic coder of the cm payload: a 32-bit interval
//! `[x1, x2]` split in proportion to the probability of a 1, carry-free (as
//! in lpaq: the coder shifts out a byte whenever both ends share their top
//! byte). Integer only; specified in docs/FORMAT.md ("cm payload").

use super::CmError;

/// Codes bits into bytes.
pub struct Encoder {
    x1: u32,
    x2: u32,
    out: Vec<u8>,
}

/// The point that splits `[x1, x2]`: the bit 1 takes `[x1, mid]`, the bit 0
/// `(mid, x2]`. `p1` is the probability of a 1 in 1/65536, in `1..=65535`;
/// the coder keeps `x2 - x1 >= 2^24` (ends differing in their top byte), so
/// both parts are non-empty.
#[inline]
fn split(x1: u32, x2: u32, p1: u32) -> u32 {
    let range = x2 - x1;
    x1 + ((u64::from(range) * u64::from(p1)) >> 16) as u32
}

impl Encoder {
    /// An encoder appending to `out` (after whatever it already holds).
    pub fn new(out: Vec<u8>) -> Encoder {
        Encoder {
            x1: 0,
            x2: u32::MAX,
            out,
        }
    }

    /// Codes `bit` with probability `p1` (of a 1, 16-bit, `1..=65535`).
    #[inline]
    pub fn encode(&mut self, bit: u32, p1: u32) {
        let mid = split(self.x1, self.x2, p1);
        if bit != 0 {
            self.x2 = mid;
        } else {
            self.x1 = mid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.out.push((self.x2 >> 24) as u8);
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
        }
    }

    /// Ends the stream: one byte, the top byte of `x1`, which with the
    /// decoder's 0xFF padding names a value inside the final interval.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push((self.x1 >> 24) as u8);
        self.out
    }
}

/// Decodes bits from the bytes an [`Encoder`] wrote.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    x1: u32,
    x2: u32,
    x: u32,
}

/// A valid stream is read exactly 3 bytes past its end (the decoder holds
/// 4 bytes, the encoder's flush wrote 1); reading more means it is cut.
const PAD: usize = 3;

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        let mut d = Decoder {
            bytes,
            pos: 0,
            x1: 0,
            x2: u32::MAX,
            x: 0,
        };
        for _ in 0..4 {
            d.x = (d.x << 8) | u32::from(d.next_byte());
        }
        d
    }

    /// Input bytes past the end read as 0xFF (what the flush assumes).
    #[inline]
    fn next_byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0xFF);
        self.pos += 1;
        b
    }

    /// Decodes one bit coded with probability `p1`. Fails once the stream
    /// is read further past its end than a valid one ever is.
    #[inline]
    pub fn decode(&mut self, p1: u32) -> Result<u32, CmError> {
        let mid = split(self.x1, self.x2, p1);
        let bit = u32::from(self.x <= mid);
        if bit != 0 {
            self.x2 = mid;
        } else {
            self.x1 = mid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
            self.x = (self.x << 8) | u32::from(self.next_byte());
        }
        if self.pos > self.bytes.len() + PAD {
            return Err(CmError::Truncated);
        }
        Ok(bit)
    }

    /// Checks that the stream ended where the encoder ended it: neither cut
    /// short nor followed by other bytes.
    pub fn finish(self) -> Result<(), CmError> {
        match self.pos.cmp(&(self.bytes.len() + PAD)) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(CmError::Truncated),
            std::cmp::Ordering::Less => {
                Err(CmError::TrailingBytes(self.bytes.len() + PAD - self.pos))
            }
        }
    }
}
