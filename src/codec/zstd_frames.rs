//! The frame table of a framed zstd payload: where each independently
//! decodable frame of a block lies, and the checksum of its raw bytes, so
//! that a read of 4 KiB decodes (and, from a segment file, reads) one
//! frame instead of the whole block. docs/FORMAT.md, "zstd payload", is
//! the specification.
//!
//! ```text
//! offset size field
//!      0    4 magic        0x184D2A5C (a zstd skippable frame)
//!      4    4 content len  4 + 8 n
//!      8    1 version      (1)
//!      9    1 frame shift  (frame bytes = 1 << shift, 12..=24)
//!     10    2 frame count  n = ceil(raw length / frame bytes), >= 2
//!     12   8n per frame:   compressed length u32, crc32c of its raw bytes u32
//! 12 + 8n    the n zstd frames, in order
//! ```
//!
//! The table is a skippable frame, so a zstd decoder that knows nothing of
//! it (any llmfs before frames) decodes the whole payload as before: the
//! frames are plain concatenated zstd frames.

use std::ops::Range;

use super::{CodecError, CodecId};

/// The skippable-frame magic that marks a frame table (one of the sixteen
/// zstd reserves for skippable frames).
pub const TABLE_MAGIC: u32 = 0x184D_2A5C;
const TABLE_VERSION: u8 = 1;
/// Bytes of the table before its entries.
const TABLE_FIXED: usize = 12;
/// Bytes of one entry.
const ENTRY: usize = 8;
/// Smallest and largest frame (4 KiB .. 16 MiB, the largest block).
const SHIFTS: Range<u8> = 12..25;

/// A parsed frame table, checked against the payload and raw lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTable {
    frame_bytes: usize,
    raw_len: usize,
    /// Per frame: where its bytes lie in the payload, and its checksum.
    frames: Vec<(Range<usize>, u32)>,
}

fn corrupt(detail: impl Into<String>) -> CodecError {
    CodecError::Corrupt {
        codec: CodecId::Zstd,
        detail: detail.into(),
    }
}

/// Bytes of a table of `n` frames.
pub fn table_len(n: usize) -> usize {
    TABLE_FIXED + ENTRY * n
}

/// Whether `payload` starts with a frame table (else it is one zstd frame,
/// or frames without a table).
pub fn is_framed(payload: &[u8]) -> bool {
    payload.get(..4) == Some(&TABLE_MAGIC.to_le_bytes()[..])
}

/// Bytes of the table at the start of `payload`, as its frame count
/// says (unchecked: [`FrameTable::parse`] checks); `None` when the payload
/// has no table.
pub fn declared_table_len(payload: &[u8]) -> Option<usize> {
    if !is_framed(payload) {
        return None;
    }
    let n = payload.get(10..12)?;
    Some(table_len(u16::from_le_bytes([n[0], n[1]]) as usize))
}

/// Appends the table for frames of `frame_bytes` (a power of two) with
/// these (compressed length, crc32c) entries.
pub fn write_table(frame_bytes: usize, entries: &[(u32, u32)], out: &mut Vec<u8>) {
    debug_assert!(frame_bytes.is_power_of_two());
    let content = 4 + ENTRY * entries.len();
    out.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(content as u32).to_le_bytes());
    out.push(TABLE_VERSION);
    out.push(frame_bytes.trailing_zeros() as u8);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for &(len, crc) in entries {
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

impl FrameTable {
    /// Parses the table at the start of a payload of `payload_len` bytes
    /// (of which `prefix` holds at least the table) that decodes to
    /// `raw_len` bytes. `Ok(None)`: the payload has no table.
    pub fn parse(
        prefix: &[u8],
        payload_len: usize,
        raw_len: usize,
    ) -> Result<Option<FrameTable>, CodecError> {
        if !is_framed(prefix) {
            return Ok(None);
        }
        let fixed = prefix
            .get(..TABLE_FIXED)
            .ok_or_else(|| corrupt("frame table truncated"))?;
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        if fixed[8] != TABLE_VERSION {
            return Err(corrupt(format!("unknown frame table version {}", fixed[8])));
        }
        let shift = fixed[9];
        if !SHIFTS.contains(&shift) {
            return Err(corrupt(format!("frame shift {shift} out of range")));
        }
        let frame_bytes = 1usize << shift;
        let n = u16::from_le_bytes([fixed[10], fixed[11]]) as usize;
        if n < 2 || n != raw_len.div_ceil(frame_bytes) {
            return Err(corrupt(format!(
                "{n} frames of {frame_bytes} bytes for a {raw_len}-byte block"
            )));
        }
        if u32_at(fixed, 4) as usize != 4 + ENTRY * n {
            return Err(corrupt("frame table length disagrees with its frame count"));
        }
        let entries = prefix
            .get(TABLE_FIXED..table_len(n))
            .ok_or_else(|| corrupt("frame table truncated"))?;
        let mut at = table_len(n);
        let mut frames = Vec::with_capacity(n);
        for e in entries.chunks_exact(ENTRY) {
            let len = u32_at(e, 0) as usize;
            let end = at + len;
            frames.push((at..end, u32_at(e, 4)));
            at = end;
        }
        if at != payload_len {
            return Err(corrupt(format!(
                "frames take {at} bytes of a {payload_len}-byte payload"
            )));
        }
        Ok(Some(FrameTable {
            frame_bytes,
            raw_len,
            frames,
        }))
    }

    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// The frames holding raw bytes `start..end` (clipped to the block).
    pub fn covering(&self, start: usize, end: usize) -> Range<usize> {
        let end = end.min(self.raw_len).max(start + 1);
        let first = (start / self.frame_bytes).min(self.frames.len() - 1);
        let last = ((end - 1) / self.frame_bytes).min(self.frames.len() - 1);
        first..last + 1
    }

    /// Where frames `frames` lie in the payload.
    pub fn payload_range(&self, frames: Range<usize>) -> Range<usize> {
        self.frames[frames.start].0.start..self.frames[frames.end - 1].0.end
    }

    /// The raw bytes frame `i` decodes to.
    pub fn raw_range(&self, i: usize) -> Range<usize> {
        let start = i * self.frame_bytes;
        start..(start + self.frame_bytes).min(self.raw_len)
    }

    /// Frame `i`'s recorded CRC-32C of its raw bytes.
    pub fn frame_crc(&self, i: usize) -> u32 {
        self.frames[i].1
    }

    /// Checks `raw`, what frame `i` decoded to, against its length and
    /// its recorded checksum.
    pub fn check_frame(&self, i: usize, raw: &[u8]) -> Result<(), CodecError> {
        let want = self.raw_range(i).len();
        if raw.len() != want {
            return Err(CodecError::LengthMismatch {
                expected: want,
                actual: raw.len(),
            });
        }
        let actual = crc32c::crc32c(raw);
        if actual != self.frames[i].1 {
            return Err(CodecError::Checksum {
                expected: self.frames[i].1,
                actual,
                context: Some(format!("zstd frame {i}")),
            });
        }
        Ok(())
    }

    /// Frame `i`'s compressed bytes within `bytes`, which hold the payload
    /// from `base` on.
    pub fn frame_in<'a>(&self, i: usize, bytes: &'a [u8], base: usize) -> &'a [u8] {
        let r = &self.frames[i].0;
        &bytes[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(frame: usize, lens: &[u32]) -> Vec<u8> {
        let entries: Vec<(u32, u32)> = lens.iter().map(|&l| (l, l * 7)).collect();
        let mut out = Vec::new();
        write_table(frame, &entries, &mut out);
        out
    }

    #[test]
    fn layout_is_the_documented_one() {
        let t = table(16384, &[10, 20, 5]);
        assert_eq!(&t[..4], &[0x5c, 0x2a, 0x4d, 0x18]);
        assert_eq!(&t[4..8], &28u32.to_le_bytes());
        assert_eq!(&t[8..12], &[1, 14, 3, 0]);
        assert_eq!(&t[12..16], &10u32.to_le_bytes());
        assert_eq!(&t[16..20], &70u32.to_le_bytes());
        assert_eq!(t.len(), table_len(3));
    }

    #[test]
    fn parses_ranges_and_coverage() {
        let t = table(16384, &[10, 20, 5]);
        let p = FrameTable::parse(&t, t.len() + 35, 40000).unwrap().unwrap();
        assert_eq!(p.frame_count(), 3);
        assert_eq!(p.payload_range(0..1), 36..46);
        assert_eq!(p.payload_range(1..3), 46..71);
        assert_eq!(p.raw_range(2), 32768..40000);
        assert_eq!(p.covering(0, 4096), 0..1);
        assert_eq!(p.covering(16000, 17000), 0..2);
        assert_eq!(p.covering(39000, 65536), 2..3);
        assert_eq!(
            p.covering(40000, 65536),
            2..3,
            "past the end: the last frame"
        );
        assert!(p.check_frame(1, &[0; 16384]).is_err());
        assert_eq!(FrameTable::parse(b"\x28\xb5\x2f\xfd", 4, 10).unwrap(), None);
    }

    #[test]
    fn inconsistent_tables_are_errors() {
        let t = table(16384, &[10, 20, 5]);
        let bad =
            |t: &[u8], payload: usize, raw: usize| FrameTable::parse(t, payload, raw).is_err();
        assert!(bad(&t, t.len() + 34, 40000), "frames overrun the payload");
        assert!(
            bad(&t, t.len() + 35, 50000),
            "four frames' worth of raw bytes"
        );
        assert!(bad(&t[..20], t.len() + 35, 40000), "table cut short");
        for (at, v) in [(8, 2), (9, 11), (9, 25), (10, 1), (4, 27)] {
            let mut b = t.clone();
            b[at] = v;
            assert!(bad(&b, b.len() + 35, 40000), "byte {at} = {v}");
        }
        let one = table(16384, &[10]);
        assert!(bad(&one, one.len() + 10, 100), "a table of one frame");
    }
}
