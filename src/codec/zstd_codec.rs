use std::cell::RefCell;

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

fn compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSORS.with(|cell| {
        let mut all = cell.borrow_mut();
        let i = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, zstd::bulk::Compressor::new(level)?));
                all.len() - 1
            }
        };
        all[i].1.compress(raw)
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
pub struct ZstdCodec {
    level: i32,
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

    pub fn new(level: i32) -> ZstdCodec {
        ZstdCodec { level }
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
        let compressed = compress(raw, self.level).map_err(|e| CodecError::Encode {
            codec: CodecId::Zstd,
            detail: e.to_string(),
        })?;
        out.extend_from_slice(&compressed);
        Ok(())
    }

    fn decode(&self, payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        // `bulk::decompress` refuses output larger than its capacity argument,
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
        out.extend_from_slice(&decoded);
        Ok(())
    }
}
