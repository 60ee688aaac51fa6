//! `llmfs compress` and `llmfs decompress`: the volume's block codecs on
//! standalone files.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::error::{CliError, Context};
use super::json;

use crate::codec::cm::{Dictionaries, StoredDictionary};
use crate::codec::{CodecId, CodecSet, LlmCodec};
use crate::container::{self, Summary};
use crate::model::{Device, EngineOptions, DEFAULT_MODEL};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model file (.onnx from models/tools/graph.py) [default: the built-in model].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Engine: cpu, cuda or cuda:N (ONNX Runtime; cuda needs a build with
    /// --features cuda), or reference (the pure-Rust engine, integer models only).
    #[arg(long, default_value = "cpu", value_parser = Device::parse)]
    pub device: Device,
    /// Blocks coded in parallel, one model engine each [default: all cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Threads inside each model engine (the output does not depend on it).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub model_threads: usize,
}

impl ModelArgs {
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            device: self.device,
            threads: self.model_threads.max(1),
        }
    }

    pub fn model_bytes(&self) -> Result<Vec<u8>, CliError> {
        match &self.model {
            Some(p) => std::fs::read(p).context(p.display()),
            None => Ok(DEFAULT_MODEL.to_vec()),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// One codec set per worker, each with its own engine.
    pub fn worker_sets(&self, with_llm: bool) -> Result<Vec<CodecSet>, CliError> {
        self.worker_sets_mixing(with_llm, true)
    }

    /// [`ModelArgs::worker_sets`], choosing whether the llm codec mixes in
    /// the in-block models.
    pub fn worker_sets_mixing(
        &self,
        with_llm: bool,
        mixing: bool,
    ) -> Result<Vec<CodecSet>, CliError> {
        (0..self.workers())
            .map(|_| {
                Ok(if with_llm {
                    CodecSet::with_llm(Some(self.load_mixing(mixing)?))
                } else {
                    CodecSet::default()
                })
            })
            .collect()
    }

    /// The llm codec, self-tested.
    pub fn load(&self) -> Result<Arc<LlmCodec>, CliError> {
        self.load_mixing(true)
    }

    fn load_mixing(&self, mixing: bool) -> Result<Arc<LlmCodec>, CliError> {
        let bytes = self.model_bytes()?;
        let mut codec = LlmCodec::load(&bytes, &self.options())?;
        if !mixing {
            codec = codec.without_mixing();
        }
        if !codec.can_encode() {
            log::error!("the model failed its self-test; it will only be used to decode");
        }
        Ok(Arc::new(codec))
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// The smallest of llm, cm, media, lzma, zstd and raw per block (the deep
    /// tier's choice).
    Auto,
    /// zstd or raw only (no model).
    Zstd,
    /// The smallest of cm, media, lzma, zstd -19 and raw per block: the archive
    /// tier's choice, without the model (`auto` never stores more).
    Classic,
    /// The model on every block, even where it loses (tests, benchmarks).
    Llm,
    /// The transformer alone on every block, without the in-block models
    /// it is normally mixed with (to measure its own contribution).
    LlmAlone,
    /// Context mixing without a model (the cm codec) on every block: no
    /// model to load, portable, decodes at hundreds of KB/s.
    Cm,
    /// The media codec (raw images and PCM audio by modality models) on
    /// every block, even where it loses (tests, benchmarks).
    Media,
}

#[derive(Args, Debug, Clone)]
pub struct CompressArgs {
    /// Input file ('-' for standard input).
    pub input: PathBuf,
    /// Output file ('-' for standard output).
    pub output: PathBuf,
    /// Block size in bytes (a power of two, 4 KiB..16 MiB).
    #[arg(long, default_value_t = 65536)]
    pub block_size: u32,
    #[arg(long, value_enum, default_value_t = CodecChoice::Auto)]
    pub codec: CodecChoice,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Do not build a dictionary (a sample of the file's own blocks that
    /// primes every cm and llm block, stored in the file; built, as a
    /// volume's, for 16 blocks or more with the codecs that use it).
    #[arg(long)]
    pub no_dictionary: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DecompressArgs {
    /// Input file ('-' for standard input).
    pub input: PathBuf,
    /// Output file ('-' for standard output).
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An input file, or standard input read into memory.
trait Input: Read + Seek {}
impl<T: Read + Seek> Input for T {}

fn open_input(path: &Path) -> Result<(Box<dyn Input>, Option<u64>), CliError> {
    if path == Path::new("-") {
        let mut data = Vec::new();
        io::stdin().read_to_end(&mut data).context("stdin")?;
        let len = data.len() as u64;
        return Ok((Box::new(io::Cursor::new(data)), Some(len)));
    }
    let f = File::open(path).context(path.display())?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), len))
}

/// Output to a regular file (or a new one) goes to a temporary file renamed
/// into place at the end, so a failed run leaves no partial output under
/// the final name. Anything else that exists there (a device such as
/// /dev/null, a FIFO, a symlink) is written in place: a rename would
/// replace it, and as root turn /dev/null into a regular file.
struct Output {
    path: PathBuf,
    tmp: Option<PathBuf>,
    writer: Box<dyn Write>,
}

impl Output {
    fn create(path: &Path) -> Result<Output, CliError> {
        if path == Path::new("-") {
            return Ok(Output {
                path: path.into(),
                tmp: None,
                writer: Box::new(BufWriter::new(io::stdout())),
            });
        }
        let in_place = std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file());
        if in_place {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .context(path.display())?;
            return Ok(Output {
                path: path.into(),
                tmp: None,
                writer: Box::new(BufWriter::with_capacity(1 << 20, f)),
            });
        }
        let name = path
            .file_name()
            .ok_or_else(|| CliError::usage(format!("{}: not a file name", path.display())))?;
        let tmp = path.with_file_name(format!(".{}.llmfs-tmp", name.to_string_lossy()));
        let f = File::create(&tmp).context(tmp.display())?;
        Ok(Output {
            path: path.into(),
            tmp: Some(tmp),
            writer: Box::new(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    fn commit(mut self) -> Result<(), CliError> {
        self.writer.flush().context(self.path.display())?;
        if let Some(tmp) = self.tmp.take() {
            drop(std::mem::replace(&mut self.writer, Box::new(io::sink())));
            std::fs::rename(&tmp, &self.path).context(self.path.display())?;
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `llmfs compress|decompress --json` (on stderr: stdout may carry the data).
#[derive(Serialize)]
struct SummaryJson<'a> {
    op: &'a str,
    raw_bytes: u64,
    stored_bytes: u64,
    bits_per_byte: f64,
    seconds: f64,
    kb_per_s: f64,
    codecs: PerCodecJson<'a>,
}

/// `{"raw": {...}, "zstd": {...}, ...}`, every codec in [`CodecId::ALL`] order.
struct PerCodecJson<'a>(&'a Summary);

impl Serialize for PerCodecJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Counts {
            blocks: u64,
            raw_bytes: u64,
            stored_bytes: u64,
        }
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(CodecId::ALL.len()))?;
        for c in CodecId::ALL {
            let n = self.0.per_codec[c as usize];
            map.serialize_entry(
                c.name(),
                &Counts {
                    blocks: n.blocks,
                    raw_bytes: n.raw_bytes,
                    stored_bytes: n.stored_bytes,
                },
            )?;
        }
        map.end()
    }
}

fn report(verb: &str, s: &Summary, secs: f64, json: bool) {
    let kbs = s.raw_bytes as f64 / 1000.0 / secs.max(1e-9);
    let bpb = 8.0 * s.stored_bytes as f64 / (s.raw_bytes.max(1)) as f64;
    if json {
        let doc = SummaryJson {
            op: verb,
            raw_bytes: s.raw_bytes,
            stored_bytes: s.stored_bytes,
            bits_per_byte: json::round(bpb, 4),
            seconds: json::round(secs, 3),
            kb_per_s: json::round(kbs, 2),
            codecs: PerCodecJson(s),
        };
        eprintln!("{}", json::to_line(&doc));
    } else {
        let per: Vec<String> = CodecId::ALL
            .iter()
            .filter(|&&c| s.per_codec[c as usize].blocks > 0)
            .map(|&c| format!("{} {} blocks", c.name(), s.per_codec[c as usize].blocks))
            .collect();
        eprintln!(
            "llmfs {verb}: {} -> {} bytes stored ({bpb:.3} bits/byte), {:.1} s, {kbs:.1} KB/s; {}",
            s.raw_bytes,
            s.stored_bytes,
            secs,
            per.join(", ")
        );
    }
}

pub fn compress(args: CompressArgs) -> Result<ExitCode, CliError> {
    if !args.block_size.is_power_of_two()
        || !(4096..=container::MAX_BLOCK_SIZE).contains(&args.block_size)
    {
        return Err(CliError::usage(format!(
            "--block-size {}: not a power of two in 4096..=16777216",
            args.block_size
        )));
    }
    let codecs = args.model.worker_sets_mixing(
        !matches!(
            args.codec,
            CodecChoice::Zstd | CodecChoice::Classic | CodecChoice::Cm | CodecChoice::Media
        ),
        args.codec != CodecChoice::LlmAlone,
    )?;
    let policy = match args.codec {
        CodecChoice::Auto | CodecChoice::Classic => container::Policy::Best,
        CodecChoice::Zstd => container::Policy::Fast,
        CodecChoice::Llm | CodecChoice::LlmAlone => container::Policy::Only(CodecId::Llm),
        CodecChoice::Cm => container::Policy::Only(CodecId::Cm),
        CodecChoice::Media => container::Policy::Only(CodecId::Media),
    };
    let (mut input, len) = open_input(&args.input)?;
    let len = len.ok_or_else(|| CliError::usage("input length unknown"))?;
    let uses_dictionary = matches!(
        args.codec,
        CodecChoice::Auto | CodecChoice::Classic | CodecChoice::Llm | CodecChoice::Cm
    );
    let codecs = if uses_dictionary && !args.no_dictionary {
        match file_dictionary(&mut input, len, args.block_size).context(args.input.display())? {
            Some(dicts) => codecs
                .into_iter()
                .map(|c| c.with_dictionaries(Arc::clone(&dicts)))
                .collect(),
            None => codecs,
        }
    } else {
        codecs
    };
    let mut out = Output::create(&args.output)?;
    let start = Instant::now();
    let summary = container::compress(
        &codecs,
        &mut input,
        len,
        &mut out.writer,
        args.block_size,
        policy,
        |_| {},
    )
    .context(args.input.display())?;
    out.commit()?;
    report(
        "compress",
        &summary,
        start.elapsed().as_secs_f64(),
        args.json,
    );
    Ok(ExitCode::SUCCESS)
}

/// The dictionary of the file `input` (`len` bytes in blocks of
/// `block_size`), as a volume's is built, named current in a new set; the
/// input is left at its start. `None` for a file too small for one.
fn file_dictionary(
    input: &mut dyn Input,
    len: u64,
    block_size: u32,
) -> io::Result<Option<Arc<Dictionaries>>> {
    let bs = u64::from(block_size);
    let sample = crate::dictionary::sample_file(len.div_ceil(bs) as usize, |i| {
        let at = i as u64 * bs;
        input.seek(SeekFrom::Start(at))?;
        let mut block = Vec::new();
        input.take(bs.min(len - at)).read_to_end(&mut block)?;
        Ok::<_, io::Error>(block)
    })?;
    input.seek(SeekFrom::Start(0))?;
    Ok(sample.map(|s| {
        let stored = StoredDictionary::of(&s);
        let dicts = Dictionaries::new();
        dicts.set_current(Some(stored.digest));
        dicts.insert(stored);
        Arc::new(dicts)
    }))
}

pub fn decompress(args: DecompressArgs) -> Result<ExitCode, CliError> {
    let (mut input, _) = open_input(&args.input)?;
    let header = container::read_header(&mut input).context(args.input.display())?;
    // Load the model only when the file needs one; the file's dictionary,
    // if it has one, goes into the set `container::decompress` fills.
    let dicts = Arc::new(Dictionaries::new());
    let codecs: Vec<CodecSet> = args
        .model
        .worker_sets(header.model_sha256 != [0u8; 32])?
        .into_iter()
        .map(|c| c.with_dictionaries(Arc::clone(&dicts)))
        .collect();
    let mut out = Output::create(&args.output)?;
    let start = Instant::now();
    let summary = container::decompress(&codecs, &header, &mut input, &mut out.writer, |_| {})
        .context(args.input.display())?;
    out.commit()?;
    report(
        "decompress",
        &summary,
        start.elapsed().as_secs_f64(),
        args.json,
    );
    Ok(ExitCode::SUCCESS)
}
