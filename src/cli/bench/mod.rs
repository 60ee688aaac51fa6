//! `llmfs bench`: space and speed of llmfs's codecs next to the compressors
//! a user would otherwise pick, on the same files in the same run.
//!
//! The llmfs figures come from the volume's own code path (`CodecSet`:
//! `encode_block_best` is the per-block choice the archiver stores,
//! `decode_block` what a read runs), so a codec change shows up here
//! without touching this module. The model is slow, so it runs on a
//! deterministic sample of blocks of large files (`--llm-max-bytes`); the
//! classical compressors always run on every byte, and their per-block
//! figures are also summed over the sampled blocks so the model is compared
//! on the same bytes.

mod json;
mod machine;
mod measure;
mod peers;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::cli::compress::ModelArgs;
use crate::cli::error::{CliError, Context};
use crate::codec::{record_codec, CodecId, CodecSet};
use crate::model::{hex, Engine};
use machine::Machine;
use measure::{busy_secs, parallel, repeated};
pub use peers::Peer;

/// The text files of the evaluation corpora (Canterbury and the Canterbury
/// large set): the "text files" subtotal and `--only-text`.
pub const TEXT_FILES: &[&str] = &[
    "alice29.txt",
    "asyoulik.txt",
    "lcet10.txt",
    "plrabn12.txt",
    "cp.html",
    "fields.c",
    "grammar.lsp",
    "xargs.1",
    "bible.txt",
    "world192.txt",
];

const DEFAULT_CORPORA: &str = "../shared/corpora";

pub const BENCH_HELP: &str = "\
What runs: every classical compressor (zstd -3, zstd -19, xz -9e, gzip -9, \
brotli -q 11) on every byte, once per block of --block-size and once on the \
whole file, single-threaded per stream. The model (`llm`: the llm codec on \
every block; `llmfs`: the smallest of llm/lzma/zstd-19/raw per block, which is \
what the archiver stores) on every block of files up to --llm-max-bytes, and \
on an evenly spaced sample of that many bytes of blocks of larger files \
(the output names the sample); `--llm-max-bytes all` runs it on everything. \
At about 20 KB/s encode and 6 KB/s decode per two cores, the default run \
over ../shared/corpora (Canterbury, large, Silesia: 211 MB) takes about an \
hour and a half; `--only-text` (the ten text files) about half an hour.

Figures: stored bytes and bits per byte (llmfs: the records a volume \
stores, 20-byte record header included); encode and decode KB/s \
(1 KB = 1000 bytes) of the raw size, per-block codecs with --workers \
threads kept busy (bytes x workers / the sum of per-block seconds), \
whole-file codecs on one thread; every decode is checked against the input. \
The model's decode speed is also divided by its full pass (Engine::score, the \
encoder's scoring run) on the same blocks with the same threads.

Output: a table on stdout; --json or --markdown instead; --out PREFIX also \
writes PREFIX.json and PREFIX.md. Progress goes to stderr.";

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Files or directories (searched recursively) [default: $LLMFS_CORPORA,
    /// else ../shared/corpora].
    pub paths: Vec<PathBuf>,
    /// Codecs to run, comma-separated: llmfs, llm, cm, zstd-3, zstd-19,
    /// xz-9e, gzip-9, brotli-11 [default: all].
    #[arg(long, value_delimiter = ',', value_parser = Subject::parse)]
    pub codecs: Vec<Subject>,
    /// The model runs on every block of files up to this many bytes and on
    /// a sample of this many bytes of larger ones; `all` for no limit.
    #[arg(long, default_value = "1048576", value_parser = parse_limit)]
    pub llm_max_bytes: Limit,
    /// Only the text files (alice29.txt, asyoulik.txt, lcet10.txt,
    /// plrabn12.txt, cp.html, fields.c, grammar.lsp, xargs.1, bible.txt,
    /// world192.txt).
    #[arg(long)]
    pub only_text: bool,
    /// Block size in bytes: the volume's (a power of two, 4 KiB..16 MiB).
    #[arg(long, default_value_t = 65536)]
    pub block_size: u32,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print markdown tables instead of the table.
    #[arg(long)]
    pub markdown: bool,
    /// Also write PREFIX.json and PREFIX.md.
    #[arg(long, value_name = "PREFIX")]
    pub out: Option<PathBuf>,
}

/// A byte limit or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes(u64),
    All,
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    match s {
        "all" => Ok(Limit::All),
        _ => match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Limit::Bytes(n)),
            _ => Err(format!("{s:?}: a positive number of bytes, or `all`")),
        },
    }
}

/// What `--codecs` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Llmfs,
    Llm,
    /// The cm codec (context mixing without a model) on every block.
    Cm,
    Peer(Peer),
}

impl Subject {
    pub const ALL: [Subject; 8] = [
        Subject::Llmfs,
        Subject::Llm,
        Subject::Cm,
        Subject::Peer(Peer::Zstd3),
        Subject::Peer(Peer::Zstd19),
        Subject::Peer(Peer::Xz9e),
        Subject::Peer(Peer::Gzip9),
        Subject::Peer(Peer::Brotli11),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Subject::Llmfs => "llmfs",
            Subject::Llm => "llm",
            Subject::Cm => "cm",
            Subject::Peer(p) => p.name(),
        }
    }

    fn parse(s: &str) -> Result<Subject, String> {
        Subject::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Subject::ALL.iter().map(|c| c.name()).collect();
                format!("unknown codec {s:?} (one of {})", names.join(", "))
            })
    }
}

/// One column of results: the llmfs codecs, and each classical compressor
/// per block and on the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    Llmfs,
    Llm,
    Cm,
    Block(Peer),
    File(Peer),
}

impl Column {
    pub fn name(self) -> String {
        match self {
            Column::Llmfs => "llmfs".into(),
            Column::Llm => "llm".into(),
            Column::Cm => "cm".into(),
            Column::Block(p) => format!("{}/block", p.name()),
            Column::File(p) => format!("{}/file", p.name()),
        }
    }

    /// Per-block columns are summed over the model's sample for comparison.
    pub fn per_block(self) -> bool {
        !matches!(self, Column::File(_))
    }
}

/// One codec on some bytes. Seconds are busy-worker seconds (see
/// [`measure`]), so totals add up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub encode_secs: f64,
    pub decode_secs: f64,
}

impl Measure {
    pub fn add(&mut self, o: &Measure) {
        self.raw_bytes += o.raw_bytes;
        self.stored_bytes += o.stored_bytes;
        self.encode_secs += o.encode_secs;
        self.decode_secs += o.decode_secs;
    }

    pub fn bits_per_byte(&self) -> f64 {
        8.0 * self.stored_bytes as f64 / self.raw_bytes.max(1) as f64
    }

    pub fn kb_per_s(bytes: u64, secs: f64) -> f64 {
        bytes as f64 / 1000.0 / secs.max(1e-9)
    }
}

/// Everything measured on one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub name: String,
    pub bytes: u64,
    pub blocks: usize,
    pub text: bool,
    /// Blocks the model ran on (all of them unless the file was sampled).
    pub sample: Vec<usize>,
    pub columns: BTreeMap<Column, Measure>,
    /// Per-block columns' stored bytes over the sampled blocks only.
    pub on_sample: BTreeMap<Column, u64>,
    /// The llmfs choice: blocks per codec id.
    pub choice: [u64; CodecId::ALL.len()],
    /// The model's full pass over the sampled blocks (seconds in `encode_secs`).
    pub full_pass: Option<Measure>,
}

impl FileResult {
    pub fn sampled(&self) -> bool {
        self.sample.len() < self.blocks
    }

    pub fn sample_bytes(&self, block_size: usize) -> u64 {
        self.sample
            .iter()
            .map(|&i| block_size.min(self.bytes as usize - i * block_size) as u64)
            .sum()
    }
}

/// The run's settings, for the report.
#[derive(Debug, Clone)]
pub struct Settings {
    pub block_size: usize,
    pub workers: usize,
    pub model_threads: usize,
    pub llm_max_bytes: Limit,
    pub subjects: Vec<Subject>,
    /// (sha256, engine description) when the model ran.
    pub model: Option<(String, String)>,
    pub command: String,
}

pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub settings: Settings,
    pub files: Vec<FileResult>,
    pub seconds: f64,
}

/// The files to measure, with the names they are shown under (the path
/// below the directory given, or the file name).
fn gather(paths: &[PathBuf], only_text: bool) -> Result<Vec<(String, PathBuf)>, CliError> {
    let defaults;
    let paths = if paths.is_empty() {
        let dir = std::env::var_os("LLMFS_CORPORA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CORPORA));
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "no files given, and the default corpus directory {} is absent \
                 (name files or directories, or set LLMFS_CORPORA)",
                dir.display()
            )));
        }
        defaults = vec![dir];
        &defaults[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).context(p.display())?;
        if meta.is_dir() {
            walk(p, p, &mut files)?;
        } else if meta.is_file() {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            files.push((name, p.clone()));
        } else {
            return Err(CliError::usage(format!(
                "{}: not a file or directory",
                p.display()
            )));
        }
    }
    if only_text {
        files.retain(|(_, p)| is_text(p));
    }
    if files.is_empty() {
        return Err(CliError::usage(if only_text {
            "none of the files is one of the text files (see --help)"
        } else {
            "no files to measure"
        }));
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), CliError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .context(dir.display())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .context(dir.display())?;
    entries.sort();
    for p in entries {
        let meta = std::fs::metadata(&p).context(p.display())?;
        if meta.is_dir() {
            walk(root, &p, out)?;
        } else if meta.is_file() {
            let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            out.push((name, p));
        }
    }
    Ok(())
}

fn is_text(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| TEXT_FILES.contains(&n))
}

/// The blocks the model runs on: all of a file up to `limit` bytes, else
/// `limit / block_size` blocks (at least one) evenly spaced from the first.
pub fn sample(bytes: u64, block_size: usize, limit: Limit) -> Vec<usize> {
    let blocks = bytes.div_ceil(block_size as u64) as usize;
    match limit {
        Limit::Bytes(l) if bytes > l => {
            let k = ((l / block_size as u64) as usize).clamp(1, blocks);
            (0..k).map(|i| i * blocks / k).collect()
        }
        _ => (0..blocks).collect(),
    }
}

/// The model's state per worker: the volume's codec set and a bare engine
/// for the full pass.
struct Workers {
    sets: Vec<CodecSet>,
    engines: Vec<Engine>,
}

pub fn run(args: BenchArgs) -> Result<ExitCode, CliError> {
    if !args.block_size.is_power_of_two()
        || !(4096..=crate::container::MAX_BLOCK_SIZE).contains(&args.block_size)
    {
        return Err(CliError::usage(format!(
            "--block-size {}: not a power of two in 4096..=16777216",
            args.block_size
        )));
    }
    let started = std::time::Instant::now();
    let subjects: Vec<Subject> = if args.codecs.is_empty() {
        Subject::ALL.to_vec()
    } else {
        Subject::ALL
            .into_iter()
            .filter(|s| args.codecs.contains(s))
            .collect()
    };
    let files = gather(&args.paths, args.only_text)?;
    let bs = args.block_size as usize;
    let workers = args.model.workers();
    let uses_model = subjects.contains(&Subject::Llm) || subjects.contains(&Subject::Llmfs);
    let mut model = None;
    let mut state = if uses_model {
        let sets = args.model.worker_sets(true)?;
        let llm = sets[0].llm().expect("codec sets with the model");
        if !llm.can_encode() {
            return Err(CliError::usage(
                "the model failed its self-test; nothing to measure",
            ));
        }
        model = Some((hex(&llm.model_sha256()), llm.description().to_string()));
        let bytes = args.model.model_bytes()?;
        let engines = (0..workers)
            .map(|_| Engine::load(&bytes, &args.model.options()))
            .collect::<Result<Vec<_>, _>>()?;
        Some(Workers { sets, engines })
    } else {
        None
    };
    let total: u64 = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    eprintln!(
        "llmfs bench: {} files, {total} bytes; {workers} workers; codecs {}",
        files.len(),
        subjects
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut results = Vec::with_capacity(files.len());
    for (i, (name, path)) in files.iter().enumerate() {
        let data = std::fs::read(path).context(path.display())?;
        let file_start = std::time::Instant::now();
        let r = bench_file(
            name,
            &data,
            is_text(path),
            bs,
            workers,
            args.llm_max_bytes,
            &subjects,
            state.as_mut(),
        )
        .context(name)?;
        eprintln!(
            "[{}/{}] {name}: {} bytes, model on {}/{} blocks, {:.1} s",
            i + 1,
            files.len(),
            data.len(),
            if uses_model { r.sample.len() } else { 0 },
            r.blocks,
            file_start.elapsed().as_secs_f64()
        );
        results.push(r);
    }
    let report = Report {
        date: machine::utc_now(),
        machine: Machine::probe(),
        settings: Settings {
            block_size: bs,
            workers,
            model_threads: args.model.model_threads.max(1),
            llm_max_bytes: args.llm_max_bytes,
            subjects,
            model,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
        files: results,
        seconds: started.elapsed().as_secs_f64(),
    };
    // Serialising the report cannot fail: it holds only strings, numbers,
    // sequences and maps with string keys.
    let json = serde_json::to_string_pretty(&json::report(&report)).expect("JSON of the report");
    let markdown = report::markdown(&report);
    if let Some(prefix) = &args.out {
        let with = |ext: &str| {
            let mut p = prefix.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        for (path, text) in [(with(".json"), &json), (with(".md"), &markdown)] {
            std::fs::write(&path, format!("{text}\n")).context(path.display())?;
            eprintln!("wrote {}", path.display());
        }
    }
    if args.json {
        println!("{json}");
    } else if args.markdown {
        println!("{markdown}");
    } else {
        println!("{}", report::text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn bench_file(
    name: &str,
    data: &[u8],
    text: bool,
    bs: usize,
    workers: usize,
    limit: Limit,
    subjects: &[Subject],
    state: Option<&mut Workers>,
) -> Result<FileResult, CliError> {
    let blocks: Vec<&[u8]> = data.chunks(bs).collect();
    let sample = if state.is_some() {
        sample(data.len() as u64, bs, limit)
    } else {
        Vec::new()
    };
    let mut r = FileResult {
        name: name.to_string(),
        bytes: data.len() as u64,
        blocks: blocks.len(),
        text,
        sample,
        columns: BTreeMap::new(),
        on_sample: BTreeMap::new(),
        choice: [0; CodecId::ALL.len()],
        full_pass: None,
    };
    for &s in subjects {
        if let Subject::Peer(peer) = s {
            let sizes = per_block(peer, &blocks, workers, &mut r)?;
            let on_sample = r.sample.iter().map(|&i| sizes[i]).sum();
            r.on_sample.insert(Column::Block(peer), on_sample);
            whole_file(peer, data, &mut r)?;
        }
    }
    if subjects.contains(&Subject::Cm) {
        let sizes = cm_column(&blocks, bs, workers, &mut r)?;
        let on_sample = r.sample.iter().map(|&i| sizes[i]).sum();
        r.on_sample.insert(Column::Cm, on_sample);
    }
    if let Some(state) = state {
        model_columns(&blocks, bs, subjects, state, &mut r)?;
    }
    Ok(r)
}

/// A classical compressor on each block. Returns the per-block sizes.
fn per_block(
    peer: Peer,
    blocks: &[&[u8]],
    workers: usize,
    r: &mut FileResult,
) -> Result<Vec<u64>, CliError> {
    let mut units = vec![(); workers];
    let enc = parallel(blocks, &mut units, |_, b| peer.compress(b));
    let packed = enc
        .out
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context(peer.name())?;
    let pairs: Vec<(&[u8], &[u8])> = packed
        .iter()
        .map(Vec::as_slice)
        .zip(blocks.iter().copied())
        .collect();
    let decode =
        |_: &mut (), &(p, b): &(&[u8], &[u8])| peer.decompress(p, b.len()).is_ok_and(|d| d == b);
    let dec = parallel(&pairs, &mut units, decode);
    if dec.out.iter().any(|ok| !ok) {
        return Err(CliError::Message(format!(
            "{}: a block did not round-trip",
            peer.name()
        )));
    }
    let mut encode_secs = busy_secs(&enc.secs, workers);
    let mut decode_secs = busy_secs(&dec.secs, workers);
    if encode_secs < 0.1 {
        encode_secs = repeated(|| {
            busy_secs(
                &parallel(blocks, &mut units, |_, b| peer.compress(b)).secs,
                workers,
            )
        });
    }
    if decode_secs < 0.1 {
        decode_secs = repeated(|| busy_secs(&parallel(&pairs, &mut units, decode).secs, workers));
    }
    let sizes: Vec<u64> = packed.iter().map(|p| p.len() as u64).collect();
    r.columns.insert(
        Column::Block(peer),
        Measure {
            raw_bytes: r.bytes,
            stored_bytes: sizes.iter().sum(),
            encode_secs,
            decode_secs,
        },
    );
    Ok(sizes)
}

/// The cm codec on every block: the records a volume would store (header
/// included), decoded and checked. Returns the per-block record sizes.
fn cm_column(
    blocks: &[&[u8]],
    bs: usize,
    workers: usize,
    r: &mut FileResult,
) -> Result<Vec<u64>, String> {
    let mut sets: Vec<CodecSet> = (0..workers).map(|_| CodecSet::default()).collect();
    let enc = parallel(blocks, &mut sets, |set, b| {
        set.encode_block_with(CodecId::Cm, b)
    });
    let records = enc
        .out
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cm: {e}"))?;
    let pairs: Vec<(&[u8], &[u8])> = records
        .iter()
        .map(Vec::as_slice)
        .zip(blocks.iter().copied())
        .collect();
    let dec = parallel(&pairs, &mut sets, |set, &(rec, b)| {
        set.decode_block(rec, bs).is_ok_and(|d| d == b)
    });
    if dec.out.iter().any(|ok| !ok) {
        return Err("cm: a block did not round-trip".into());
    }
    let sizes: Vec<u64> = records.iter().map(|x| x.len() as u64).collect();
    r.columns.insert(
        Column::Cm,
        Measure {
            raw_bytes: r.bytes,
            stored_bytes: sizes.iter().sum(),
            encode_secs: busy_secs(&enc.secs, workers),
            decode_secs: busy_secs(&dec.secs, workers),
        },
    );
    Ok(sizes)
}

/// A classical compressor on the whole file, one thread.
fn whole_file(peer: Peer, data: &[u8], r: &mut FileResult) -> Result<(), CliError> {
    let start = std::time::Instant::now();
    let packed = peer.compress(data).context(peer.name())?;
    let mut encode_secs = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let back = peer.decompress(&packed, data.len()).context(peer.name())?;
    let mut decode_secs = start.elapsed().as_secs_f64();
    if back != data {
        return Err(CliError::Message(format!(
            "{}: the file did not round-trip",
            peer.name()
        )));
    }
    let time = |f: &dyn Fn()| {
        repeated(|| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
    };
    if encode_secs < 0.1 {
        encode_secs = time(&|| drop(peer.compress(data)));
    }
    if decode_secs < 0.1 {
        decode_secs = time(&|| drop(peer.decompress(&packed, data.len())));
    }
    r.columns.insert(
        Column::File(peer),
        Measure {
            raw_bytes: data.len() as u64,
            stored_bytes: packed.len() as u64,
            encode_secs,
            decode_secs,
        },
    );
    Ok(())
}

/// Records a model column: the block records it stored, and its timings
/// (decode already the workers' busy time).
fn record_column(
    r: &mut FileResult,
    column: Column,
    raw_bytes: u64,
    records: &[Vec<u8>],
    encode_secs: f64,
    decode_secs: f64,
) {
    let stored_bytes = records.iter().map(|x| x.len() as u64).sum();
    r.columns.insert(
        column,
        Measure {
            raw_bytes,
            stored_bytes,
            encode_secs,
            decode_secs,
        },
    );
    r.on_sample.insert(column, stored_bytes);
}

/// The llm codec on every sampled block, the per-block choice, and the
/// model's full pass; one engine per worker, blocks shared out.
fn model_columns(
    blocks: &[&[u8]],
    bs: usize,
    subjects: &[Subject],
    state: &mut Workers,
    r: &mut FileResult,
) -> Result<(), CliError> {
    let workers = state.sets.len();
    let indices = r.sample.clone();
    let sampled: Vec<&[u8]> = indices.iter().map(|&i| blocks[i]).collect();
    let raw_bytes: u64 = sampled.iter().map(|b| b.len() as u64).sum();
    let encode = |which: Option<CodecId>, sets: &mut [CodecSet]| {
        let t = parallel(&sampled, sets, |set, b| match which {
            Some(id) => set.encode_block_with(id, b),
            None => set.encode_block_best(b),
        });
        let records = t.out.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok::<_, CliError>((records, busy_secs(&t.secs, workers)))
    };
    // Decodes `records` (all, or those not in `known`) and checks them;
    // returns per-block seconds.
    let decode = |records: &[Vec<u8>], known: &[Option<f64>], sets: &mut [CodecSet]| {
        let todo: Vec<usize> = (0..records.len()).filter(|&i| known[i].is_none()).collect();
        let t = parallel(&todo, sets, |set, &i| {
            set.decode_block(&records[i], bs)
                .map_err(CliError::from)
                .and_then(|d| {
                    (d == sampled[i]).then_some(()).ok_or_else(|| {
                        CliError::Message("decoded bytes differ from the input".into())
                    })
                })
        });
        let mut secs: Vec<f64> = known.iter().map(|k| k.unwrap_or(0.0)).collect();
        for ((&i, res), s) in todo.iter().zip(t.out).zip(t.secs) {
            res.with_context(|| format!("block {}", indices[i]))?;
            secs[i] = s;
        }
        Ok::<_, CliError>(secs)
    };
    let mut llm: Option<(Vec<Vec<u8>>, Vec<f64>)> = None;
    if subjects.contains(&Subject::Llm) {
        let (records, encode_secs) = encode(Some(CodecId::Llm), &mut state.sets)?;
        let secs = decode(&records, &vec![None; records.len()], &mut state.sets)?;
        record_column(
            r,
            Column::Llm,
            raw_bytes,
            &records,
            encode_secs,
            busy_secs(&secs, workers),
        );
        // The full pass the encoder ran, alone: the model's arithmetic.
        let t = parallel(&sampled, &mut state.engines, |engine, b| {
            let chunks: Vec<&[u8]> = b.chunks(engine.config.context).collect();
            engine.score(&chunks).map(drop)
        });
        t.out.into_iter().collect::<Result<Vec<()>, _>>()?;
        r.full_pass = Some(Measure {
            raw_bytes,
            stored_bytes: 0,
            encode_secs: busy_secs(&t.secs, workers),
            decode_secs: 0.0,
        });
        llm = Some((records, secs));
    }
    if subjects.contains(&Subject::Llmfs) {
        let (records, encode_secs) = encode(None, &mut state.sets)?;
        // A block stored with the same llm record as above costs the same
        // to decode: its time is taken from there, not measured twice.
        let known: Vec<Option<f64>> = match &llm {
            Some((llm_records, secs)) => records
                .iter()
                .zip(llm_records.iter().zip(secs))
                .map(|(rec, (l, &s))| (rec == l).then_some(s))
                .collect(),
            None => vec![None; records.len()],
        };
        let secs = decode(&records, &known, &mut state.sets)?;
        for rec in &records {
            r.choice[record_codec(rec).unwrap_or(CodecId::Raw) as usize] += 1;
        }
        record_column(
            r,
            Column::Llmfs,
            raw_bytes,
            &records,
            encode_secs,
            busy_secs(&secs, workers),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_even_and_bounded() {
        assert_eq!(sample(100, 64, Limit::Bytes(1000)), vec![0, 1]);
        assert_eq!(sample(0, 64, Limit::All), Vec::<usize>::new());
        assert_eq!(
            sample(64 * 10, 64, Limit::Bytes(64 * 5)),
            vec![0, 2, 4, 6, 8]
        );
        assert_eq!(sample(64 * 10, 64, Limit::Bytes(10)), vec![0]);
        assert_eq!(sample(64 * 10 + 1, 64, Limit::All).len(), 11);
    }

    #[test]
    fn flags_are_checked() {
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("lots").is_err());
        assert_eq!(parse_limit("all"), Ok(Limit::All));
        assert_eq!(Subject::parse("xz-9e"), Ok(Subject::Peer(Peer::Xz9e)));
        let e = Subject::parse("xz").unwrap_err();
        assert!(e.contains("llmfs, llm, cm, zstd-3"), "{e}");
    }
}
