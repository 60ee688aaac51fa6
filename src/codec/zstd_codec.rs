use std::cell::RefCell;
use std::ops::Range;

use super::record::{RecordHeader, RECORD_HEADER_LEN};
use super::zstd_frames::{self, FrameTable};
use super::{Codec, CodecError, CodecId};

thread_local! {
    /// One compression context per level and thread, reused: creating a
    /// zstd context allocates and clears its tables, which cost more than
    /// compressing a small block (a profile of creating 1 KiB files showed
    /// it). The output is the same as a fresh context's.
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Appends the zstd frame of `raw` to `out`, written in place (a block
/// is several frames; a buffer per frame cost more than the framing).
fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<usize> {
    COMPRESSORS.with(|cell| {
        let mut all = cell.borrow_mut();
        let i = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, zstd::bulk::Compressor::new(level)?));
                all.len() - 1
            }
        };
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        let at = out.len() as u64;
        let mut cursor = std::io::Cursor::new(out);
        cursor.set_position(at);
        all[i].1.compress_to_buffer(raw, &mut cursor)
    })
}

fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut d = cell.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just set").decompress(payload, capacity)
    })
}

/// zstd at a fixed level: level 3 is the fast codec that new writes use,
/// level -1 the interim one of writes the archiver re-encodes, level 19
/// the archival path's. Every level writes the same record format.
///
/// The interim level cuts a block into 16 KiB frames coded independently,
/// behind a frame table (zstd_frames.rs), so that a small read reads and
/// decodes one frame: about a third of the software cost of a cold 4 KiB
/// read (bench/results/2026-12-04-cold-read-frames.tsv). zstd then finds
/// no match across a frame boundary, which costs text some 11% and data
/// that hardly compresses nothing (bench/results/2026-12-04-zstd-frames.tsv):
/// a price paid only until the archiver re-encodes the block. Level 3's
/// records are kept for good (text pays 6% for 32 KiB frames), and the
/// archival level's are read rarely: both keep one frame.
pub struct ZstdCodec {
    level: i32,
    /// Raw bytes per frame (a power of two); `None`: one frame per block.
    frame_bytes: Option<usize>,
}

impl ZstdCodec {
    pub const DEFAULT_LEVEL: i32 = 3;
    /// The level of an encoding that lives only until the archiver
    /// re-encodes the block (`zstd --fast=1`): about 60% of level 3's CPU
    /// for a sequential write, for records some 25% larger on text and the
    /// same on data zstd hardly shrinks
    /// (bench/results/2026-12-04-write-encoding.tsv).
    pub const INTERIM_LEVEL: i32 = -1;
    /// The archival path's level (`zstd -19`).
    pub const ARCHIVE_LEVEL: i32 = 19;
    /// The interim level's frames (see the type's comment). 8 and 4 KiB
    /// frames halve and quarter a small read's decode but cost every
    /// write up to a fifth more CPU (zstd builds its tables per frame)
    /// and text up to a fifth more bytes (docs/MEASUREMENTS.md, "Smaller
    /// interim frames").
    pub const INTERIM_FRAME_BYTES: usize = 16 << 10;

    /// One frame per block.
    pub fn new(level: i32) -> ZstdCodec {
        ZstdCodec {
            level,
            frame_bytes: None,
        }
    }

    /// Blocks longer than `frame_bytes` (a power of two, 4 KiB to 16 MiB)
    /// in frames of that many raw bytes.
    pub fn framed(level: i32, frame_bytes: usize) -> ZstdCodec {
        assert!(
            frame_bytes.is_power_of_two() && (4096..=16 << 20).contains(&frame_bytes),
            "frame size {frame_bytes}"
        );
        ZstdCodec {
            level,
            frame_bytes: Some(frame_bytes),
        }
    }

    /// Appends `raw` as frames of `frame_bytes` behind their table;
    /// returns the CRC-32C of `raw`, combined from the frames' own.
    fn encode_frames(
        &self,
        raw: &[u8],
        frame_bytes: usize,
        out: &mut Vec<u8>,
    ) -> std::io::Result<u32> {
        let n = raw.len().div_ceil(frame_bytes);
        // Room for every frame at its worst at once: growing the buffer
        // frame by frame copied the frames before (5% of the daemon's time
        // in a sequential write).
        out.reserve(zstd_frames::table_len(n) + n * zstd::zstd_safe::compress_bound(frame_bytes));
        let table_at = out.len();
        out.resize(table_at + zstd_frames::table_len(n), 0);
        let mut entries = Vec::with_capacity(n);
        let mut crc = 0;
        for chunk in raw.chunks(frame_bytes) {
            let len = compress_into(chunk, self.level, out)?;
            let frame_crc = crc32c::crc32c(chunk);
            crc = super::crc_combine::combine(crc, frame_crc, chunk.len());
            entries.push((len as u32, frame_crc));
        }
        let mut table = Vec::with_capacity(zstd_frames::table_len(n));
        zstd_frames::write_table(frame_bytes, &entries, &mut table);
        out[table_at..table_at + table.len()].copy_from_slice(&table);
        Ok(crc)
    }
}

impl Default for ZstdCodec {
    fn default() -> Self {
        ZstdCodec::new(Self::DEFAULT_LEVEL)
    }
}

impl Codec for ZstdCodec {
    fn id(&self) -> CodecId {
        CodecId::Zstd
    }

    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_summed(raw, out).map(|_| ())
    }

    fn encode_summed(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<u32, CodecError> {
        let encoded = match self.frame_bytes {
            Some(f) if raw.len() > f => self.encode_frames(raw, f, out),
            _ => compress_into(raw, self.level, out).map(|_| crc32c::crc32c(raw)),
        };
        encoded.map_err(|e| CodecError::Encode {
            codec: CodecId::Zstd,
            detail: e.to_string(),
        })
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.decode_summed(payload, raw_len, out).map(|_| ())
    }

    fn decode_summed(
        &self,
        payload: &[u8],
        raw_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<u32, CodecError> {
        // A frame table is a skippable frame: the frames after it decode
        // as one concatenated payload (the record's checksum covers them
        // all). `bulk::decompress` refuses output larger than its capacity argument,
        // so a hostile frame cannot make us allocate beyond the block size.
        let decoded = decompress(payload, raw_len).map_err(|e| CodecError::Corrupt {
            codec: CodecId::Zstd,
            detail: e.to_string(),
        })?;
        if decoded.len() != raw_len {
            return Err(CodecError::LengthMismatch {
                expected: raw_len,
                actual: decoded.len(),
            });
        }
        let crc = match check_table(payload, &decoded)? {
            Some(crc) => crc,
            None => crc32c::crc32c(&decoded),
        };
        // The caller's buffer is empty on the read path: take the decoded
        // block rather than copy it.
        if out.is_empty() {
            *out = decoded;
        } else {
            out.extend_from_slice(&decoded);
        }
        Ok(crc)
    }
}

/// Checks a payload's frame table, if it has one, against the payload and
/// what it decoded to: each listed frame is exactly one zstd frame, and
/// its raw bytes match its checksum. A small read trusts the table, so a
/// whole decode (and so fsck) must not pass a record whose table lies.
/// Returns the CRC-32C of `decoded`, combined from the frames' (None: no
/// table).
fn check_table(payload: &[u8], decoded: &[u8]) -> Result<Option<u32>, CodecError> {
    let Some(table) = FrameTable::parse(payload, payload.len(), decoded.len())? else {
        return Ok(None);
    };
    let mut crc = 0;
    for i in 0..table.frame_count() {
        let at = table.payload_range(i..i + 1);
        let frame = zstd::zstd_safe::find_frame_compressed_size(&payload[at.start..]);
        if frame != Ok(at.len()) {
            return Err(CodecError::Corrupt {
                codec: CodecId::Zstd,
                detail: format!("the frame table's frame {i} is not one zstd frame"),
            });
        }
        let raw = &decoded[table.raw_range(i)];
        table.check_frame(i, raw)?;
        crc = super::crc_combine::combine(crc, table.frame_crc(i), raw.len());
    }
    Ok(Some(crc))
}

/// The payload of `record` when it is a zstd record with a frame table.
fn framed_payload(record: &[u8]) -> Option<&[u8]> {
    let payload = record.get(RECORD_HEADER_LEN..)?;
    (super::record_codec(record) == Some(CodecId::Zstd) && zstd_frames::is_framed(payload))
        .then_some(payload)
}

/// A part of a framed zstd block that can be read and verified without
/// the rest of its record: the frames holding a range of raw bytes.
#[derive(Debug, Clone)]
pub struct Span {
    table: FrameTable,
    frames: Range<usize>,
}

impl Span {
    /// The span of the record whose first bytes are `prefix` (at least its
    /// header and frame table; the record is `record_len` bytes) that holds
    /// raw bytes `start..end`. `Ok(None)`: the record is not a framed zstd
    /// record, or those frames are the whole block.
    pub fn plan(
        prefix: &[u8],
        record_len: usize,
        max_raw_len: usize,
        start: usize,
        end: usize,
    ) -> Result<Option<Span>, CodecError> {
        let Some(payload) = framed_payload(prefix) else {
            return Ok(None);
        };
        let header = RecordHeader::parse_prefix(prefix, record_len, max_raw_len)?;
        let raw_len = header.raw_len as usize;
        let Some(table) = FrameTable::parse(payload, header.payload_len as usize, raw_len)? else {
            return Ok(None);
        };
        if start >= raw_len {
            return Ok(None);
        }
        let frames = table.covering(start, end);
        if frames.len() == table.frame_count() {
            return Ok(None);
        }
        Ok(Some(Span { table, frames }))
    }

    /// The record bytes to read: the span's frames.
    pub fn record_range(&self) -> Range<usize> {
        let r = self.table.payload_range(self.frames.clone());
        r.start + RECORD_HEADER_LEN..r.end + RECORD_HEADER_LEN
    }

    pub fn frame_bytes(&self) -> usize {
        self.table.frame_bytes()
    }

    /// The index of the span's first frame.
    pub fn first_frame(&self) -> usize {
        self.frames.start
    }

    /// Decodes the span's frames from `bytes` (the record's
    /// [`Span::record_range`]), each verified against its checksum.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CodecError> {
        let range = self.table.payload_range(self.frames.clone());
        if bytes.len() != range.len() {
            return Err(CodecError::Truncated {
                needed: range.len(),
                have: bytes.len(),
            });
        }
        self.frames
            .clone()
            .map(|i| {
                let want = self.table.raw_range(i).len();
                let frame = self.table.frame_in(i, bytes, range.start);
                let raw = decompress(frame, want).map_err(|e| CodecError::Corrupt {
                    codec: CodecId::Zstd,
                    detail: format!("frame {i}: {e}"),
                })?;
                self.table.check_frame(i, &raw)?;
                Ok(raw)
            })
            .collect()
    }
}

/// How many of a record's first bytes a reader needs to plan a [`Span`]:
/// its header and frame table when it is a framed zstd record, else 0.
pub fn span_prefix_len(record: &[u8]) -> usize {
    framed_payload(record)
        .and_then(zstd_frames::declared_table_len)
        .map_or(0, |n| (RECORD_HEADER_LEN + n).min(record.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_data::noise;
    use crate::codec::{encode_record, CodecSet};

    fn text(n: usize) -> Vec<u8> {
        let mut x = 7u32;
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let words = [
                "the ", "block ", "frame ", "of ", "a ", "volume ", "reads\n",
            ];
            out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        }
        out.truncate(n);
        out
    }

    /// Every span of a framed record decodes to the bytes it stands for,
    /// and the whole record still decodes with a plain zstd decoder (what
    /// an llmfs before frames runs).
    #[test]
    fn spans_read_their_frames_and_the_whole_decodes_as_before() {
        for (frame, len) in [
            (16384, 65536),
            (16384, 40000),
            (32768, 65536),
            (4096, 12289),
        ] {
            let raw = text(len);
            let rec = encode_record(&ZstdCodec::framed(3, frame), &raw).unwrap();
            let payload = &rec[RECORD_HEADER_LEN..];
            assert!(zstd_frames::is_framed(payload));
            assert_eq!(decompress(payload, len).unwrap(), raw);
            assert_eq!(CodecSet::default().decode_block(&rec, 65536).unwrap(), raw);
            let prefix = &rec[..span_prefix_len(&rec)];
            assert_eq!(
                prefix.len(),
                RECORD_HEADER_LEN + zstd_frames::table_len(len.div_ceil(frame))
            );
            for start in (0..len).step_by(4093) {
                let end = start + 4096;
                let Some(span) = Span::plan(prefix, rec.len(), 65536, start, end).unwrap() else {
                    assert!(len <= 2 * frame && end > frame, "{frame} {len} {start}");
                    continue;
                };
                let frames = span.decode(&rec[span.record_range()]).unwrap();
                let at = span.first_frame() * span.frame_bytes();
                let got: Vec<u8> = frames.concat();
                assert!(at <= start && at + got.len() >= end.min(len));
                assert_eq!(got, &raw[at..at + got.len()]);
            }
            assert!(Span::plan(prefix, rec.len(), 65536, 0, usize::MAX)
                .unwrap()
                .is_none());
        }
    }

    /// The checksums combined from the frames' are the block's own, on
    /// encode and on decode, framed or not, into an empty buffer or after
    /// other bytes; the header written with them is the one a plain
    /// checksum gives.
    #[test]
    fn combined_checksums_are_the_blocks() {
        for (codec, len) in [
            (ZstdCodec::framed(-1, 16384), 65536),
            (ZstdCodec::framed(-1, 16384), 49153),
            (ZstdCodec::framed(3, 4096), 12289),
            (ZstdCodec::framed(3, 16384), 16384),
            (ZstdCodec::new(3), 65536),
            (ZstdCodec::new(3), 0),
        ] {
            let raw = text(len);
            let mut payload = Vec::new();
            let crc = codec.encode_summed(&raw, &mut payload).unwrap();
            assert_eq!(crc, crc32c::crc32c(&raw), "{len}");
            let rec = encode_record(&codec, &raw).unwrap();
            assert_eq!(&rec[12..16], &crc.to_le_bytes());
            let mut out = Vec::new();
            assert_eq!(codec.decode_summed(&payload, len, &mut out).unwrap(), crc);
            assert_eq!(out, raw);
            let mut after = b"before".to_vec();
            assert_eq!(codec.decode_summed(&payload, len, &mut after).unwrap(), crc);
            assert_eq!(&after[6..], &raw[..]);
        }
    }

    #[test]
    fn short_blocks_noise_and_other_levels_have_no_table() {
        let set = CodecSet::default();
        let small = encode_record(&ZstdCodec::default(), &text(32768)).unwrap();
        let rec_noise = set.encode_block(&noise(65536, 3)).unwrap();
        let best = encode_record(&ZstdCodec::new(19), &text(65536)).unwrap();
        for rec in [small, rec_noise, best] {
            assert_eq!(span_prefix_len(&rec), 0);
            assert!(Span::plan(&rec, rec.len(), 65536, 0, 10).unwrap().is_none());
        }
        let interim = set.encode_block_interim(&text(65536)).unwrap();
        let span = Span::plan(&interim, interim.len(), 65536, 0, 10)
            .unwrap()
            .unwrap();
        assert_eq!(span.frame_bytes(), ZstdCodec::INTERIM_FRAME_BYTES);
    }

    #[test]
    fn a_damaged_frame_fails_only_its_spans() {
        let raw = text(65536);
        let rec = encode_record(&ZstdCodec::framed(3, 16384), &raw).unwrap();
        let plan =
            |r: &[u8], at: usize| Span::plan(r, r.len(), 65536, at, at + 10).unwrap().unwrap();
        // A byte in the middle of frame 2.
        let f2 = plan(&rec, 2 * 16384).record_range();
        let mut bad = rec.clone();
        bad[(f2.start + f2.end) / 2] ^= 0x21;
        let e = plan(&bad, 2 * 16384).decode(&bad[f2.clone()]).unwrap_err();
        assert!(
            matches!(e, CodecError::Corrupt { .. } | CodecError::Checksum { .. }),
            "{e}"
        );
        for other in [0, 1, 3] {
            let s = plan(&bad, other * 16384);
            assert!(s.decode(&bad[s.record_range()]).is_ok(), "frame {other}");
        }
        assert!(CodecSet::default().decode_block(&bad, 65536).is_err());
        // A frame's recorded checksum.
        let mut bad = rec.clone();
        bad[RECORD_HEADER_LEN + 12 + 8 + 4] ^= 1;
        let s = plan(&bad, 16384);
        let e = s.decode(&bad[s.record_range()]).unwrap_err();
        assert!(matches!(e, CodecError::Checksum { .. }), "{e}");
        let e = CodecSet::default().decode_block(&bad, 65536).unwrap_err();
        assert!(matches!(e, CodecError::Checksum { .. }), "whole: {e}");
        // Frame lengths that still add up but split the frames elsewhere:
        // the whole payload decodes, and the record is still corrupt.
        let mut bad = rec.clone();
        let len0 = RECORD_HEADER_LEN + 12;
        let first = u32::from_le_bytes(bad[len0..len0 + 4].try_into().unwrap());
        let second = u32::from_le_bytes(bad[len0 + 8..len0 + 12].try_into().unwrap());
        bad[len0..len0 + 4].copy_from_slice(&(first + 1).to_le_bytes());
        bad[len0 + 8..len0 + 12].copy_from_slice(&(second - 1).to_le_bytes());
        let e = CodecSet::default().decode_block(&bad, 65536).unwrap_err();
        assert!(e.to_string().contains("not one zstd frame"), "{e}");
        // A frame length pointing past the payload, and bytes of the
        // wrong length.
        let mut bad = rec.clone();
        bad[RECORD_HEADER_LEN + 12] ^= 0x40;
        assert!(Span::plan(&bad, bad.len(), 65536, 0, 10).is_err());
        let s = plan(&rec, 0);
        assert!(s
            .decode(&rec[s.record_range().start..s.record_range().end - 1])
            .is_err());
        // A header that does not fit the record's length.
        assert!(Span::plan(&rec, rec.len() + 1, 65536, 0, 10).is_err());
    }

    /// The committed fuzz seed (fuzz/fuzz_targets/read_span.rs): a range
    /// pick and a framed record of `text(65536)` at the interim level.
    #[test]
    fn fuzz_seed_reads_its_span() {
        let seed = include_bytes!("../../fuzz/seeds/read_span/seed-zstd-frames");
        let (pick, rec) = seed.split_at(2);
        let start = u16::from_le_bytes([pick[0], pick[1]]) as usize;
        let span = Span::plan(rec, rec.len(), 65536, start, start + 4096)
            .unwrap()
            .unwrap();
        assert_eq!(span.first_frame(), 1);
        let frames = span.decode(&rec[span.record_range()]).unwrap();
        assert_eq!(frames.concat(), &text(65536)[16384..32768]);
        let interim = CodecSet::default()
            .encode_block_interim(&text(65536))
            .unwrap();
        assert_eq!(
            rec,
            &interim[..],
            "the interim encoding still writes the seed"
        );
    }

    /// Single-bit flips all over a framed record, read in part at every
    /// frame: an error, or the original bytes (a flip zstd ignores), never
    /// a panic or other bytes.
    #[test]
    fn flipped_bits_never_read_as_other_bytes() {
        let raw = text(65536);
        let rec = encode_record(&ZstdCodec::framed(-1, 16384), &raw).unwrap();
        let mut bad = rec.clone();
        let mut survived = 0;
        // Every seventh byte keeps the debug build's run short.
        for i in (0..rec.len()).step_by(7) {
            let bit = 1u8 << (i % 8);
            bad[i] ^= bit;
            for frame in 0..4 {
                let at = frame * 16384 + 100;
                let Ok(Some(span)) = Span::plan(&bad, bad.len(), 65536, at, at + 4096) else {
                    continue;
                };
                let range = span.record_range();
                if let Ok(frames) = span.decode(&bad[range]) {
                    let from = span.first_frame() * 16384;
                    let got = frames.concat();
                    assert_eq!(
                        got,
                        &raw[from..from + got.len()],
                        "bit {bit:#x} of byte {i}"
                    );
                    survived += 1;
                }
            }
            bad[i] ^= bit;
        }
        // Most reads of a frame whose bytes a flip missed still succeed.
        let reads = rec.len().div_ceil(7) * 4;
        assert!(survived > reads / 2, "{survived} of {reads}");
    }
}
