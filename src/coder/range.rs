//! A range coder over frequency tables whose total is `2^TOTAL_BITS`.
//!
//! One fixed configuration: a 32-bit range, a 64-bit `low` whose bit 32 is
//! the carry, and byte-wise output with the LZMA "cache + pending 0xFF" scheme
//! so that a carry can ripple into bytes already produced without the encoder
//! ever rewriting its output.
//!
//! The interval of a symbol is split exactly rather than with the usual
//! `r = range >> TOTAL_BITS` shortcut: the symbol `[cum, cum + freq)` gets
//! `[range * cum >> 16, range * (cum + freq) >> 16)`. The shortcut throws away
//! up to `2^16 / range` of the range on every symbol (up to 0.4% of it),
//! which costs a noticeable fraction of the output when symbols are very
//! predictable, as they are for a good model; the exact split costs two
//! multiplies per symbol and one division per decoded symbol instead.
//!
//! Encoder and decoder renormalise in lockstep, so the decoder reads exactly
//! as many bytes as the encoder wrote before trimming. The encoder drops the
//! leading byte (always zero) and trailing zero bytes of its final flush; the
//! decoder reads missing bytes as zeros, at most [`OVERRUN_SLACK`] of them.

use super::{CoderError, TOTAL, TOTAL_BITS};

/// Renormalise when the range falls below this, keeping at least 24 bits of
/// range, so every symbol with `freq >= 1` gets a non-empty sub-range (at
/// least `(2^24 >> 16) - 1 = 255` wide, the `- 1` from rounding both ends).
const RANGE_MIN: u32 = 1 << 24;

/// How many bytes past the end of its input a decoder may read. A valid
/// stream needs at most 4: the encoder trims at most the 4 bytes of its final
/// flush.
pub const OVERRUN_SLACK: u32 = 4;

/// Checks that `(cum_freq, freq)` is a non-empty interval inside `[0, TOTAL)`.
fn check_interval(cum_freq: u32, freq: u32) -> Result<(), CoderError> {
    if freq == 0 || cum_freq >= TOTAL || freq > TOTAL - cum_freq {
        return Err(CoderError::InvalidInterval { cum_freq, freq });
    }
    Ok(())
}

/// The sub-range `[lo, hi)` of `[0, range)` that the interval
/// `[cum_freq, cum_freq + freq)` maps to. Both coder halves use this one
/// function, so they cannot disagree about the split.
#[inline]
fn split(range: u32, cum_freq: u32, freq: u32) -> (u32, u32) {
    let r = u64::from(range);
    let lo = (r * u64::from(cum_freq)) >> TOTAL_BITS;
    let hi = (r * u64::from(cum_freq + freq)) >> TOTAL_BITS;
    // Both fit: hi <= range because cum_freq + freq <= TOTAL.
    (lo as u32, hi as u32)
}

/// Turns a sequence of intervals into bytes.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Bits 0..32: the low end of the current interval; bit 32: a carry not
    /// yet added to the bytes held back in `cache` and `pending_ff`.
    low: u64,
    range: u32,
    /// The last byte produced but held back because a carry may still
    /// change it. `None` before the first byte, which is always zero (the
    /// coded value is below 1.0) and is never written.
    cache: Option<u8>,
    /// How many 0xFF bytes follow `cache`, held back for the same reason:
    /// a carry turns them into 0x00 and increments `cache`.
    pending_ff: u64,
    out: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder with nothing coded yet.
    pub fn new() -> Self {
        Encoder {
            low: 0,
            range: u32::MAX,
            cache: None,
            pending_ff: 0,
            out: Vec::new(),
        }
    }

    /// Narrows the interval to the symbol `[cum_freq, cum_freq + freq)` of a
    /// table totalling [`TOTAL`]. Fails, changing nothing, if the interval is
    /// empty or leaves the table.
    #[inline]
    pub fn encode(&mut self, cum_freq: u32, freq: u32) -> Result<(), CoderError> {
        check_interval(cum_freq, freq)?;
        let (lo, hi) = split(self.range, cum_freq, freq);
        self.low += u64::from(lo);
        self.range = hi - lo;
        while self.range < RANGE_MIN {
            self.range <<= 8;
            self.shift_low();
        }
        Ok(())
    }

    /// Moves the top byte of `low` out, resolving any carry into the bytes
    /// held back.
    #[inline]
    fn shift_low(&mut self) {
        // A top byte of 0xFF without a carry may still receive one: hold it.
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            if let Some(cache) = self.cache {
                self.out.push(cache.wrapping_add(carry));
            }
            for _ in 0..self.pending_ff {
                self.out.push(0xFFu8.wrapping_add(carry));
            }
            self.pending_ff = 0;
            self.cache = Some((self.low >> 24) as u8);
        } else {
            self.pending_ff += 1;
        }
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    /// Ends the stream and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // Any value in [low, low + range) identifies the stream; take the
        // one with the most trailing zero bits so the trimmed tail is long.
        let end = self.low + u64::from(self.range);
        for bits in (0..=32).rev() {
            let mask = (1u64 << bits) - 1;
            let v = (self.low + mask) & !mask;
            if v < end {
                self.low = v;
                break;
            }
        }
        // The first shift releases the held-back bytes and moves the top byte
        // of `low` into `cache`; the next four release `low`'s four bytes.
        for _ in 0..5 {
            self.shift_low();
        }
        // The decoder reads absent bytes as zero, so trailing zeros of the
        // flush need not be stored. Only the flush's own 4 bytes are trimmed,
        // which bounds how far past the end a valid decode reads.
        let keep = self.out.len().saturating_sub(4);
        while self.out.len() > keep && self.out.last() == Some(&0) {
            self.out.pop();
        }
        self.out
    }
}

/// Turns bytes back into a sequence of intervals. Driven by the caller:
/// [`target`](Decoder::target) says where in the table the coded value lies,
/// the caller finds the symbol there and [`consume`](Decoder::consume)s it.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    range: u32,
    /// The coded value minus the low end of the current interval; below
    /// `range` in every valid state.
    code: u32,
    past_end: u32,
}

impl<'a> Decoder<'a> {
    /// A decoder over exactly the bytes an [`Encoder`] returned.
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut d = Decoder {
            bytes,
            pos: 0,
            range: u32::MAX,
            code: 0,
            past_end: 0,
        };
        for _ in 0..4 {
            d.code = (d.code << 8) | u32::from(d.next_byte());
        }
        d
    }

    #[inline]
    fn next_byte(&mut self) -> u8 {
        let b = match self.bytes.get(self.pos) {
            Some(&b) => b,
            None => {
                self.past_end += 1;
                0
            }
        };
        self.pos += 1;
        b
    }

    /// Where the coded value lies in the table: the symbol to decode is the
    /// one whose interval `[cum, cum + freq)` contains this value, which is
    /// always in `[0, TOTAL)`.
    #[inline]
    pub fn target(&self) -> u32 {
        if self.code >= self.range {
            // Only reachable from bytes no encoder wrote (the initial code
            // 0xFFFF_FFFF). Point at the last symbol; `consume` then fails.
            return TOTAL - 1;
        }
        // The largest t with floor(range * t / TOTAL) <= code, i.e. the
        // inverse of `split`, so that symbol_for(target) finds exactly the
        // symbol whose sub-range contains `code`.
        let t = (((u64::from(self.code) + 1) << TOTAL_BITS) - 1) / u64::from(self.range);
        t as u32
    }

    /// Removes the symbol `[cum_freq, cum_freq + freq)` found from
    /// [`target`](Decoder::target) and reads the bytes that follow.
    #[inline]
    pub fn consume(&mut self, cum_freq: u32, freq: u32) -> Result<(), CoderError> {
        check_interval(cum_freq, freq)?;
        let (lo, hi) = split(self.range, cum_freq, freq);
        if self.code < lo || self.code >= hi {
            return Err(CoderError::Corrupt);
        }
        self.code -= lo;
        self.range = hi - lo;
        while self.range < RANGE_MIN {
            // code < range < 2^24, so the shift loses nothing.
            self.code = (self.code << 8) | u32::from(self.next_byte());
            self.range <<= 8;
        }
        if self.past_end > OVERRUN_SLACK {
            return Err(CoderError::Overrun {
                past_end: self.past_end,
            });
        }
        Ok(())
    }

    /// Ends decoding: fails if input bytes were never read, which a valid
    /// stream decoded with the right symbol count never leaves.
    pub fn finish(self) -> Result<(), CoderError> {
        match self.bytes.len().checked_sub(self.pos) {
            Some(unread) if unread > 0 => Err(CoderError::TrailingBytes { unread }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Decodes `n` symbols of a table given as its cumulative array.
    fn decode_with(bytes: &[u8], cums: &[u32], n: usize) -> Result<Vec<usize>, CoderError> {
        let mut d = Decoder::new(bytes);
        let mut out = Vec::new();
        for _ in 0..n {
            let t = d.target();
            assert!(t < TOTAL);
            let s = cums.partition_point(|&c| c <= t) - 1;
            d.consume(cums[s], cums[s + 1] - cums[s])?;
            out.push(s);
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn empty_stream_is_empty() {
        assert!(Encoder::new().finish().is_empty());
        assert_eq!(Decoder::new(&[]).finish(), Ok(()));
    }

    #[test]
    fn rejects_bad_intervals() {
        let mut e = Encoder::new();
        for (c, f) in [
            (0, 0),
            (TOTAL, 1),
            (TOTAL - 1, 2),
            (1, TOTAL),
            (u32::MAX, 2),
        ] {
            assert_eq!(
                e.encode(c, f),
                Err(CoderError::InvalidInterval {
                    cum_freq: c,
                    freq: f
                })
            );
        }
        let mut d = Decoder::new(&[1, 2, 3]);
        assert!(d.consume(0, 0).is_err());
        assert!(d.consume(TOTAL - 1, 2).is_err());
    }

    #[test]
    fn round_trip_two_symbol_extremes() {
        // Symbol 0 has frequency 1, symbol 1 the rest: alternating between
        // the tiniest and the largest interval exercises carries and the
        // longest runs of held-back 0xFF bytes.
        let cums = [0, 1, TOTAL];
        let syms: Vec<usize> = (0..5000).map(|i| usize::from(i % 7 == 0)).collect();
        let mut e = Encoder::new();
        for &s in &syms {
            e.encode(cums[s], cums[s + 1] - cums[s]).unwrap();
        }
        let bytes = e.finish();
        assert_eq!(decode_with(&bytes, &cums, syms.len()).unwrap(), syms);
    }

    #[test]
    fn carries_propagate_through_ff_runs() {
        // A carry into held-back 0xFF bytes is rare (the top byte of `low`
        // must come out 0xFF several times in a row and then overflow), so
        // search a seeded random stream for one with at least two, then
        // check that the whole stream decodes.
        // 251 symbols of about 8 bits each; not a power of two, which would
        // leave the output a plain copy of the symbols, never carrying.
        let mut cums: Vec<u32> = (0..251).map(|i| i * 261).collect();
        cums.push(TOTAL);
        let mut rng = StdRng::seed_from_u64(11);
        let mut e = Encoder::new();
        let mut syms = Vec::new();
        let mut found = false;
        while !found && syms.len() < 4_000_000 {
            let s = rng.random_range(0..251usize);
            let (pending, before) = (e.pending_ff as usize, e.out.len());
            e.encode(cums[s], cums[s + 1] - cums[s]).unwrap();
            syms.push(s);
            // Released: the cached byte, then the held-back 0xFFs, which a
            // carry turned into 0x00s.
            if pending >= 2 && e.out.len() > before + pending {
                found = e.out[before + 1..=before + pending].iter().all(|&b| b == 0);
            }
        }
        assert!(found, "no carry over 0xFF bytes in {} symbols", syms.len());
        syms.extend((0..1000).map(|_| rng.random_range(0..251usize)));
        for &s in &syms[syms.len() - 1000..] {
            e.encode(cums[s], cums[s + 1] - cums[s]).unwrap();
        }
        let bytes = e.finish();
        assert_eq!(decode_with(&bytes, &cums, syms.len()).unwrap(), syms);
    }

    #[test]
    fn initial_all_ones_is_corrupt_not_panic() {
        let cums = [0, TOTAL / 2, TOTAL];
        let err = decode_with(&[0xFF; 8], &cums, 3).unwrap_err();
        assert_eq!(err, CoderError::Corrupt);
    }

    #[test]
    fn reading_far_past_the_end_is_an_overrun() {
        // Uniform over 256 symbols: each symbol reads one byte.
        let cums: Vec<u32> = (0..=256).map(|i| i * 256).collect();
        let err = decode_with(&[7, 7], &cums, 100).unwrap_err();
        assert_eq!(
            err,
            CoderError::Overrun {
                past_end: OVERRUN_SLACK + 1
            }
        );
    }

    #[test]
    fn leftover_bytes_are_reported() {
        let cums = [0, TOTAL / 2, TOTAL];
        let mut e = Encoder::new();
        for _ in 0..64 {
            e.encode(TOTAL / 2, TOTAL / 2).unwrap();
        }
        let mut bytes = e.finish();
        assert_eq!(decode_with(&bytes, &cums, 64).unwrap(), vec![1; 64]);
        bytes.extend_from_slice(&[1; 10]);
        assert!(matches!(
            decode_with(&bytes, &cums, 64),
            Err(CoderError::TrailingBytes { .. })
        ));
    }
}
