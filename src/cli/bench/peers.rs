//! The compressors llmfs is measured against, through their libraries (no
//! binaries on the PATH needed, and the versions are the ones built in).

use std::io::{self, Read, Write};

/// A classical compressor at the setting its command-line tool would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// `zstd -3`: the level new writes to a volume use.
    Zstd3,
    /// `zstd -19`: the level the archival path tries next to the model.
    Zstd19,
    /// `xz -9e`: preset 9 with the extreme flag, CRC-64 check as xz(1).
    Xz9e,
    /// `gzip -9`.
    Gzip9,
    /// `brotli -q 11 -w 24`: best quality, the largest standard window.
    Brotli11,
}

impl Peer {
    pub const ALL: [Peer; 5] = [
        Peer::Zstd3,
        Peer::Zstd19,
        Peer::Xz9e,
        Peer::Gzip9,
        Peer::Brotli11,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Zstd3 => "zstd-3",
            Peer::Zstd19 => "zstd-19",
            Peer::Xz9e => "xz-9e",
            Peer::Gzip9 => "gzip-9",
            Peer::Brotli11 => "brotli-11",
        }
    }

    /// The equivalent command line, for the tables.
    pub fn setting(self) -> &'static str {
        match self {
            Peer::Zstd3 => "zstd -3",
            Peer::Zstd19 => "zstd -19",
            Peer::Xz9e => "xz -9e (preset 9 + extreme, crc64)",
            Peer::Gzip9 => "gzip -9",
            Peer::Brotli11 => "brotli -q 11 -w 24",
        }
    }

    /// The library that does the work and its version: the C library's own
    /// version where it reports one, and the Rust crate from Cargo.lock.
    pub fn library(self) -> String {
        match self {
            Peer::Zstd3 | Peer::Zstd19 => format!(
                "libzstd {} (crate zstd {})",
                zstd::zstd_safe::version_string(),
                crate_version("zstd")
            ),
            Peer::Xz9e => format!(
                "liblzma {} (crate liblzma {}, static)",
                lzma_version(),
                crate_version("liblzma")
            ),
            Peer::Gzip9 => format!(
                "miniz_oxide {} (crate flate2 {})",
                crate_version("miniz_oxide"),
                crate_version("flate2")
            ),
            Peer::Brotli11 => format!("crate brotli {} (pure Rust)", crate_version("brotli")),
        }
    }

    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Peer::Zstd3 => zstd::bulk::compress(data, 3),
            Peer::Zstd19 => zstd::bulk::compress(data, 19),
            Peer::Xz9e => {
                let preset = 9 | liblzma::stream::PRESET_EXTREME;
                let mut enc = liblzma::write::XzEncoder::new(Vec::new(), preset);
                enc.write_all(data)?;
                enc.finish()
            }
            Peer::Gzip9 => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
                enc.write_all(data)?;
                enc.finish()
            }
            Peer::Brotli11 => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 11,
                    lgwin: 24,
                    size_hint: data.len(),
                    ..Default::default()
                };
                let mut out = Vec::new();
                brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
                Ok(out)
            }
        }
    }

    /// Decompresses `packed`, which holds `len` bytes.
    pub fn decompress(self, packed: &[u8], len: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        match self {
            Peer::Zstd3 | Peer::Zstd19 => return zstd::bulk::decompress(packed, len),
            Peer::Xz9e => {
                liblzma::read::XzDecoder::new(packed).read_to_end(&mut out)?;
            }
            Peer::Gzip9 => {
                flate2::read::GzDecoder::new(packed).read_to_end(&mut out)?;
            }
            Peer::Brotli11 => brotli::BrotliDecompress(&mut &packed[..], &mut out)?,
        }
        Ok(out)
    }
}

/// liblzma's own version string.
fn lzma_version() -> String {
    // SAFETY: lzma_version_string returns a pointer to a static,
    // NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(liblzma_sys::lzma_version_string()) };
    s.to_string_lossy().into_owned()
}

/// The locked version of a dependency (build.rs reads Cargo.lock), or
/// "unknown" for a build without one.
pub fn crate_version(name: &str) -> String {
    let found: Vec<&str> = env!("LLMFS_CRATE_VERSIONS")
        .split(',')
        .filter_map(|e| e.split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect();
    if found.is_empty() {
        "unknown".into()
    } else {
        found.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_round_trips() {
        let data: Vec<u8> = (0..20000u32)
            .map(|i| b"the quick brown fox "[(i % 20) as usize] ^ (i % 7 == 0) as u8)
            .collect();
        for peer in Peer::ALL {
            let packed = peer.compress(&data).unwrap();
            assert!(packed.len() < data.len() / 4, "{}", peer.name());
            assert_eq!(peer.decompress(&packed, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn versions_come_from_the_lock_file() {
        let lock = include_str!("../../../Cargo.lock");
        for name in ["zstd", "liblzma", "flate2", "brotli", "miniz_oxide"] {
            let v = crate_version(name);
            assert!(
                lock.contains(&format!("name = \"{name}\"\nversion = \"{v}\"")),
                "{name} {v}"
            );
        }
        assert!(Peer::Xz9e.library().starts_with("liblzma 5."));
        assert!(Peer::Zstd3.library().starts_with("libzstd 1."));
    }
}
