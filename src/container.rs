//! The standalone compressed-file container of `llmfs compress` and
//! `llmfs decompress`: the volume's block records in a file.
//!
//! Layout (little-endian; docs/FORMAT.md):
//!
//! ```text
//! 0   [8]   magic 89 4C 46 5A 0D 0A 1A 0A ("\x89LFZ\r\n\x1a\n")
//! 8   u8    container version (1; 2: a dictionary section follows the header)
//! 9   [3]   reserved, zero
//! 12  u32   block size
//! 16  u64   length of the original file
//! 24  [32]  sha256 of the model the compressor had loaded (zero: none)
//! 56  u32   number of blocks N
//! 60  u32   CRC-32C of bytes 0..60
//! 64        version 2 only, the dictionary section:
//!           u32 raw length R, u32 payload length P, [32] SHA-256 of the
//!           dictionary's bytes, P bytes of cm payload (flags 0) decoding
//!           to them, u32 CRC-32C of the section's bytes before it
//! ..  N x { u32 record length, record }   (records as in a volume)
//! ```
//!
//! Each record carries its own checksum; the header checksum guards the
//! lengths that decide how much is read and allocated. The dictionary is
//! the one the file's cm and llm records are primed with (a volume's
//! dictionary, `crate::dictionary`), built from the file itself.

use std::fmt;
use std::io::{self, Read, Write};

use crate::codec::cm::StoredDictionary;
use crate::codec::{record_codec, CodecError, CodecId, CodecSet, RECORD_HEADER_LEN};
use crate::model::hex;

pub const MAGIC: [u8; 8] = *b"\x89LFZ\r\n\x1a\n";
/// A container without a dictionary.
pub const VERSION: u8 = 1;
/// A container whose header is followed by a dictionary section.
pub const VERSION_DICTIONARY: u8 = 2;
/// Largest dictionary a container may declare: far above what llmfs
/// builds (256 KiB), far below what would strain a reader.
pub const MAX_DICTIONARY_LEN: u32 = 16 << 20;
pub const HEADER_LEN: usize = 64;
/// Largest block size a container may declare (the volume's limit too).
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;

#[derive(Debug)]
pub enum ContainerError {
    Io(io::Error),
    NotContainer,
    UnknownVersion(u8),
    HeaderChecksum,
    BadHeader(String),
    /// The dictionary section is damaged (its checksum or lengths).
    BadDictionary(String),
    /// The file needs a model other than the one loaded.
    ModelMismatch {
        needed: String,
        loaded: Option<String>,
    },
    Block {
        index: u64,
        error: CodecError,
    },
    Truncated {
        index: u64,
    },
    TrailingData,
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::Io(e) => write!(f, "{e}"),
            ContainerError::NotContainer => write!(f, "not an llmfs compressed file (bad magic)"),
            ContainerError::UnknownVersion(v) => write!(f, "unknown container version {v}"),
            ContainerError::HeaderChecksum => write!(f, "container header checksum mismatch"),
            ContainerError::BadHeader(d) => write!(f, "bad container header: {d}"),
            ContainerError::BadDictionary(d) => write!(f, "bad dictionary section: {d}"),
            ContainerError::ModelMismatch { needed, loaded } => write!(
                f,
                "the file was compressed with model {needed}, but {}; pass --model with that model",
                match loaded {
                    Some(m) => format!("the loaded model is {m}"),
                    None => "no model is loaded".into(),
                }
            ),
            ContainerError::Block { index, error } => write!(f, "block {index}: {error}"),
            ContainerError::Truncated { index } => write!(f, "file truncated in block {index}"),
            ContainerError::TrailingData => write!(f, "unexpected data after the last block"),
        }
    }
}

impl std::error::Error for ContainerError {}

impl From<io::Error> for ContainerError {
    fn from(e: io::Error) -> Self {
        ContainerError::Io(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub block_size: u32,
    pub raw_len: u64,
    pub model_sha256: [u8; 32],
    pub blocks: u32,
    /// The dictionary the records are primed with (version 2), as read
    /// from the section after the header: its payload is decoded and
    /// checked against its SHA-256 when a block first needs it.
    pub dictionary: Option<StoredDictionary>,
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8] = if self.dictionary.is_some() {
            VERSION_DICTIONARY
        } else {
            VERSION
        };
        b[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.raw_len.to_le_bytes());
        b[24..56].copy_from_slice(&self.model_sha256);
        b[56..60].copy_from_slice(&self.blocks.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, ContainerError> {
        if b[..8] != MAGIC {
            return Err(ContainerError::NotContainer);
        }
        if b[8] != VERSION && b[8] != VERSION_DICTIONARY {
            return Err(ContainerError::UnknownVersion(b[8]));
        }
        if crc32c::crc32c(&b[..60]).to_le_bytes() != b[60..64] {
            return Err(ContainerError::HeaderChecksum);
        }
        let h = Header {
            block_size: u32::from_le_bytes(b[12..16].try_into().unwrap()),
            raw_len: u64::from_le_bytes(b[16..24].try_into().unwrap()),
            model_sha256: b[24..56].try_into().unwrap(),
            blocks: u32::from_le_bytes(b[56..60].try_into().unwrap()),
            dictionary: None,
        };
        if h.block_size == 0 || h.block_size > MAX_BLOCK_SIZE {
            return Err(ContainerError::BadHeader(format!(
                "block size {}",
                h.block_size
            )));
        }
        if u64::from(h.blocks) != h.raw_len.div_ceil(u64::from(h.block_size)) {
            return Err(ContainerError::BadHeader(format!(
                "{} blocks for {} bytes in blocks of {}",
                h.blocks, h.raw_len, h.block_size
            )));
        }
        Ok(h)
    }
}

/// The dictionary section's fixed bytes (lengths, digest) and its
/// checksum: what it adds to the payload.
const DICTIONARY_SECTION_OVERHEAD: usize = 44;

/// The dictionary section's bytes.
fn dictionary_section(d: &StoredDictionary) -> Vec<u8> {
    let mut b = Vec::with_capacity(DICTIONARY_SECTION_OVERHEAD + d.payload.len());
    b.extend_from_slice(&(d.raw_len as u32).to_le_bytes());
    b.extend_from_slice(&(d.payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&d.digest);
    b.extend_from_slice(&d.payload);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Reads the dictionary section, checking its lengths before allocating
/// and its checksum after.
fn read_dictionary(input: &mut impl Read) -> Result<StoredDictionary, ContainerError> {
    let truncated = |_| ContainerError::BadDictionary("truncated".into());
    let mut fixed = [0u8; 40];
    input.read_exact(&mut fixed).map_err(truncated)?;
    let raw_len = u32::from_le_bytes(fixed[..4].try_into().unwrap());
    let payload_len = u32::from_le_bytes(fixed[4..8].try_into().unwrap());
    // A cm payload costs at most about 2 bits per bit plus its header.
    if raw_len > MAX_DICTIONARY_LEN || u64::from(payload_len) > 2 * u64::from(raw_len) + 4096 {
        return Err(ContainerError::BadDictionary(format!(
            "{raw_len} bytes in a payload of {payload_len}"
        )));
    }
    let mut rest = vec![0u8; payload_len as usize + 4];
    input.read_exact(&mut rest).map_err(truncated)?;
    let (payload, crc) = rest.split_at(payload_len as usize);
    let mut crc32 = crc32c::crc32c(&fixed);
    crc32 = crc32c::crc32c_append(crc32, payload);
    if crc32.to_le_bytes() != crc {
        return Err(ContainerError::BadDictionary("checksum mismatch".into()));
    }
    Ok(StoredDictionary {
        digest: fixed[8..40].try_into().unwrap(),
        raw_len: raw_len as usize,
        payload: payload.to_vec(),
    })
}

/// How `compress` picks a codec per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The smallest of llm, lzma, zstd and raw.
    Best,
    /// zstd or raw.
    Fast,
    /// Always this codec (tests and benchmarks).
    Only(CodecId),
}

/// Totals of one compression or decompression run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// Per codec, indexed by [`CodecId`].
    pub per_codec: [CodecCounts; CodecId::ALL.len()],
}

/// The blocks of one codec in a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CodecCounts {
    pub blocks: u64,
    pub raw_bytes: u64,
    /// Bytes of the records (header and payload).
    pub stored_bytes: u64,
}

impl Summary {
    fn add(&mut self, codec: CodecId, raw: usize, record: usize) {
        let e = &mut self.per_codec[codec as usize];
        e.blocks += 1;
        e.raw_bytes += raw as u64;
        e.stored_bytes += record as u64;
    }
}

/// Reads `len` bytes of `input`, or fewer at its end.
fn read_block(input: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    buf.clear();
    input.take(len as u64).read_to_end(buf)?;
    Ok(())
}

/// Compresses `input` (of known length `raw_len`) into `output`.
/// `policy` picks the codec per block; `progress` is called with the bytes
/// done so far.
pub fn compress(
    workers: &[CodecSet],
    input: &mut impl Read,
    raw_len: u64,
    output: &mut impl Write,
    block_size: u32,
    policy: Policy,
    mut progress: impl FnMut(u64),
) -> Result<Summary, ContainerError> {
    let codecs = workers.first().expect("at least one worker");
    let model_sha256 = codecs.llm().map_or([0u8; 32], |llm| llm.model_sha256());
    let blocks = raw_len.div_ceil(u64::from(block_size));
    // The dictionary the workers prime with, if any, goes with the file.
    let dictionary = codecs
        .dictionaries()
        .and_then(|d| d.current().and_then(|c| d.stored(&c)));
    let header = Header {
        block_size,
        raw_len,
        model_sha256,
        blocks: u32::try_from(blocks)
            .map_err(|_| ContainerError::BadHeader("file too large for the block size".into()))?,
        dictionary,
    };
    output.write_all(&header.to_bytes())?;
    let mut summary = Summary::default();
    if let Some(d) = &header.dictionary {
        let section = dictionary_section(d);
        output.write_all(&section)?;
        summary.stored_bytes += section.len() as u64;
    }
    let mut index = 0u64;
    while index < blocks {
        // One block per worker, encoded in parallel, written in order.
        let n = (workers.len() as u64).min(blocks - index) as usize;
        let mut bufs = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let at = (index + i) * u64::from(block_size);
            let want = (raw_len - at).min(u64::from(block_size)) as usize;
            let mut buf = Vec::with_capacity(want);
            read_block(input, &mut buf, want)?;
            if buf.len() != want {
                return Err(ContainerError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "input shrank while being compressed",
                )));
            }
            bufs.push(buf);
        }
        let records: Vec<Result<Vec<u8>, CodecError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bufs
                .iter()
                .zip(workers)
                .map(|(buf, codecs)| {
                    scope.spawn(move || match policy {
                        Policy::Best => codecs.encode_block_best(buf),
                        Policy::Fast => codecs.encode_block(buf),
                        Policy::Only(id) => codecs.encode_block_with(id, buf),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CodecError::Engine("encoder thread panicked".into()))
                    })
                })
                .collect()
        });
        for (i, (buf, record)) in bufs.iter().zip(records).enumerate() {
            let record = record.map_err(|error| ContainerError::Block {
                index: index + i as u64,
                error,
            })?;
            output.write_all(&(record.len() as u32).to_le_bytes())?;
            output.write_all(&record)?;
            summary.raw_bytes += buf.len() as u64;
            summary.stored_bytes += 4 + record.len() as u64;
            summary.add(
                record_codec(&record).unwrap_or(CodecId::Raw),
                buf.len(),
                record.len(),
            );
        }
        index += n as u64;
        progress(summary.raw_bytes);
    }
    summary.stored_bytes += HEADER_LEN as u64;
    output.flush()?;
    Ok(summary)
}

/// Reads a container's header, and its dictionary section if it has one.
pub fn read_header(input: &mut impl Read) -> Result<Header, ContainerError> {
    let mut b = [0u8; HEADER_LEN];
    input.read_exact(&mut b).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ContainerError::NotContainer,
        _ => ContainerError::Io(e),
    })?;
    let mut header = Header::parse(&b)?;
    if b[8] == VERSION_DICTIONARY {
        header.dictionary = Some(read_dictionary(input)?);
    }
    Ok(header)
}

/// Decompresses a container whose header was read with [`read_header`].
/// Nothing unverified is written: each block is checked against its
/// checksum before it reaches `output`. The header's dictionary, if any,
/// is added to the workers' dictionaries (which they must have).
pub fn decompress(
    workers: &[CodecSet],
    header: &Header,
    input: &mut impl Read,
    output: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<Summary, ContainerError> {
    let mut summary = Summary::default();
    if let Some(d) = &header.dictionary {
        for codecs in workers {
            let dicts = codecs.dictionaries().ok_or_else(|| {
                ContainerError::BadDictionary(
                    "the file carries a dictionary, and these codecs take none".into(),
                )
            })?;
            dicts.insert(d.clone());
        }
        summary.stored_bytes += (DICTIONARY_SECTION_OVERHEAD + d.payload.len()) as u64;
    }
    let bs = header.block_size as usize;
    let mut index = 0u64;
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut model_checked = false;
    while index < u64::from(header.blocks) || !pending.is_empty() {
        if index < u64::from(header.blocks) && pending.len() < workers.len() {
            let mut len = [0u8; 4];
            input
                .read_exact(&mut len)
                .map_err(|_| ContainerError::Truncated { index })?;
            let len = u32::from_le_bytes(len) as usize;
            // A record is its header plus a payload of at most 16 bits per
            // byte (the coder's floor frequency) plus slack: anything longer
            // is corrupt, and is not allocated.
            if !(RECORD_HEADER_LEN..=RECORD_HEADER_LEN + 2 * bs + 4096).contains(&len) {
                return Err(ContainerError::Block {
                    index,
                    error: CodecError::PayloadLength {
                        declared: len as u64,
                        actual: RECORD_HEADER_LEN + 2 * bs + 4096,
                    },
                });
            }
            let mut record = vec![0u8; len];
            input
                .read_exact(&mut record)
                .map_err(|_| ContainerError::Truncated { index })?;
            if !model_checked && record_codec(&record) == Some(CodecId::Llm) {
                check_model(&workers[0], header)?;
                model_checked = true;
            }
            pending.push((index, record));
            index += 1;
            continue;
        }
        // One record per worker, decoded in parallel, written in order.
        let decoded: Vec<Result<Vec<u8>, CodecError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .iter()
                .zip(workers)
                .map(|((_, rec), codecs)| scope.spawn(move || codecs.decode_block(rec, bs)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CodecError::Engine("decoder thread panicked".into()))
                    })
                })
                .collect()
        });
        for ((index, record), data) in pending.iter().zip(decoded) {
            let data = data.map_err(|error| ContainerError::Block {
                index: *index,
                error,
            })?;
            output.write_all(&data)?;
            summary.raw_bytes += data.len() as u64;
            summary.stored_bytes += 4 + record.len() as u64;
            summary.add(
                record_codec(record).unwrap_or(CodecId::Raw),
                data.len(),
                record.len(),
            );
        }
        pending.clear();
        progress(summary.raw_bytes);
    }
    let mut extra = [0u8; 1];
    if input.read(&mut extra)? != 0 {
        return Err(ContainerError::TrailingData);
    }
    summary.stored_bytes += HEADER_LEN as u64;
    if summary.raw_bytes != header.raw_len {
        return Err(ContainerError::BadHeader(format!(
            "blocks hold {} bytes, header says {}",
            summary.raw_bytes, header.raw_len
        )));
    }
    output.flush()?;
    Ok(summary)
}

/// A file with llm blocks decodes only with the model it names (or, for
/// the built-in model, an earlier file of it: `model::same_model_as`).
fn check_model(codecs: &CodecSet, header: &Header) -> Result<(), ContainerError> {
    let needed = hex(&header.model_sha256);
    match codecs.llm() {
        None => Err(ContainerError::ModelMismatch {
            needed,
            loaded: None,
        }),
        Some(llm)
            if llm.model_sha256() != header.model_sha256
                && !crate::model::same_model_as(&llm.model_sha256())
                    .contains(&header.model_sha256) =>
        {
            Err(ContainerError::ModelMismatch {
                needed,
                loaded: Some(hex(&llm.model_sha256())),
            })
        }
        Some(_) => Ok(()),
    }
}
