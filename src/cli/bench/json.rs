//! `llmfs bench --json` (and PREFIX.json): the report as typed documents
//! serialised by serde. The committed results under bench/results/ are
//! regression records compared by diff, so every struct lists its fields
//! in alphabetical order: the order the earlier `serde_json::Value`
//! documents printed them in (serde_json sorts a map's keys).

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::{cm_line, columns, engine_line, groups, threads, version};
use super::{Column, Limit, Measure, Report, Subject};
use crate::cli::json::round;
use crate::codec::CodecId;

#[derive(Serialize)]
pub struct ReportJson<'a> {
    codecs: Vec<CodecJson<'a>>,
    command: &'a str,
    date: &'a str,
    files: Vec<FileJson<'a>>,
    llmfs_version: &'static str,
    machine: MachineJson<'a>,
    seconds: f64,
    settings: SettingsJson<'a>,
    tool: &'static str,
    /// "all_files", and "text_files" when only some files are text.
    totals: BTreeMap<String, TotalsJson>,
}

/// One codec of the run and what implements it.
#[derive(Serialize)]
struct CodecJson<'a> {
    library: String,
    name: &'a str,
    /// The classical compressors' command-line equivalent (`xz -9e`).
    #[serde(skip_serializing_if = "Option::is_none")]
    setting: Option<&'a str>,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    cores: usize,
    cpu_class: &'a str,
    cpu_flags: &'a [String],
    cpu_model: &'a str,
    host: &'a str,
    kernel: &'a str,
    memory_bytes: u64,
}

#[derive(Serialize)]
struct SettingsJson<'a> {
    block_size: usize,
    engine: Option<&'a str>,
    /// Null: the model ran on every block.
    llm_max_bytes: Option<u64>,
    model_sha256: Option<&'a str>,
    model_threads: usize,
    workers: usize,
}

#[derive(Serialize)]
struct FileJson<'a> {
    blocks: usize,
    bytes: u64,
    llm_full_pass_kb_s: Option<f64>,
    llmfs_choice: BTreeMap<&'static str, u64>,
    model_blocks: &'a [usize],
    model_sampled: bool,
    name: &'a str,
    on_model_blocks: OnModelBlocksJson,
    results: BTreeMap<String, MeasureJson>,
    text: bool,
}

/// Sums over a group of files.
#[derive(Serialize)]
struct TotalsJson {
    bytes: u64,
    files: usize,
    llm_decode_over_full_pass: Option<f64>,
    llm_full_pass_kb_s: Option<f64>,
    llmfs_choice: BTreeMap<&'static str, u64>,
    on_model_blocks: OnModelBlocksJson,
    results: BTreeMap<String, MeasureJson>,
}

/// One column's figures.
#[derive(Serialize)]
struct MeasureJson {
    bits_per_byte: f64,
    decode_kb_s: f64,
    encode_kb_s: f64,
    raw_bytes: u64,
    stored_bytes: u64,
    threads: usize,
    /// Every block decoded back to its input (the run fails otherwise).
    verified: bool,
}

/// The per-block columns over the blocks the model ran on only.
#[derive(Serialize)]
struct OnModelBlocksJson {
    codecs: BTreeMap<String, SampleJson>,
    raw_bytes: u64,
}

#[derive(Serialize)]
struct SampleJson {
    bits_per_byte: f64,
    stored_bytes: u64,
}

fn measure(m: &Measure, threads: usize) -> MeasureJson {
    MeasureJson {
        bits_per_byte: round(m.bits_per_byte(), 4),
        decode_kb_s: round(Measure::kb_per_s(m.raw_bytes, m.decode_secs), 3),
        encode_kb_s: round(Measure::kb_per_s(m.raw_bytes, m.encode_secs), 3),
        raw_bytes: m.raw_bytes,
        stored_bytes: m.stored_bytes,
        threads,
        verified: true,
    }
}

fn results(r: &Report, cols: &BTreeMap<Column, Measure>) -> BTreeMap<String, MeasureJson> {
    columns(r)
        .into_iter()
        .filter_map(|c| Some((c.name(), measure(cols.get(&c)?, threads(r, c)))))
        .collect()
}

fn choice(c: [u64; CodecId::ALL.len()]) -> BTreeMap<&'static str, u64> {
    CodecId::ALL
        .iter()
        .map(|&id| (id.name(), c[id as usize]))
        .collect()
}

fn on_model_blocks(raw_bytes: u64, on_sample: &BTreeMap<Column, u64>) -> OnModelBlocksJson {
    let codecs = on_sample
        .iter()
        .map(|(c, &n)| {
            let bpb = 8.0 * n as f64 / raw_bytes.max(1) as f64;
            (
                c.name(),
                SampleJson {
                    bits_per_byte: round(bpb, 4),
                    stored_bytes: n,
                },
            )
        })
        .collect();
    OnModelBlocksJson { codecs, raw_bytes }
}

pub fn report(r: &Report) -> ReportJson<'_> {
    let files = r
        .files
        .iter()
        .map(|f| {
            let full_pass = f
                .full_pass
                .map(|m| Measure::kb_per_s(m.raw_bytes, m.encode_secs));
            FileJson {
                blocks: f.blocks,
                bytes: f.bytes,
                llm_full_pass_kb_s: full_pass.map(|v| round(v, 3)),
                llmfs_choice: choice(f.choice),
                model_blocks: &f.sample,
                model_sampled: f.sampled(),
                name: &f.name,
                on_model_blocks: on_model_blocks(
                    f.sample_bytes(r.settings.block_size),
                    &f.on_sample,
                ),
                results: results(r, &f.columns),
                text: f.text,
            }
        })
        .collect();
    let totals = groups(r)
        .into_iter()
        .map(|(name, t)| {
            let ratio = t.decode_over_full_pass();
            let doc = TotalsJson {
                bytes: t.bytes,
                files: t.files,
                llm_decode_over_full_pass: ratio.map(|(d, f)| round(d / f, 4)),
                llm_full_pass_kb_s: ratio.map(|(_, f)| round(f, 3)),
                llmfs_choice: choice(t.choice),
                on_model_blocks: on_model_blocks(t.sample_bytes, &t.on_sample),
                results: results(r, &t.columns),
            };
            (name.replace(' ', "_"), doc)
        })
        .collect();
    let codecs = r
        .settings
        .subjects
        .iter()
        .map(|s| match s {
            Subject::Peer(p) => CodecJson {
                library: p.library(),
                name: p.name(),
                setting: Some(p.setting()),
            },
            Subject::Cm => CodecJson {
                library: cm_line(),
                name: s.name(),
                setting: None,
            },
            _ => CodecJson {
                library: engine_line(r),
                name: s.name(),
                setting: None,
            },
        })
        .collect();
    let m = &r.machine;
    let model = r.settings.model.as_ref();
    ReportJson {
        codecs,
        command: &r.settings.command,
        date: &r.date,
        files,
        llmfs_version: version(),
        machine: MachineJson {
            cores: m.cores,
            cpu_class: &m.cpu_class,
            cpu_flags: &m.flags,
            cpu_model: &m.cpu_model,
            host: &m.host,
            kernel: &m.kernel,
            memory_bytes: m.memory_bytes,
        },
        seconds: round(r.seconds, 1),
        settings: SettingsJson {
            block_size: r.settings.block_size,
            engine: model.map(|(_, engine)| engine.as_str()),
            llm_max_bytes: match r.settings.llm_max_bytes {
                Limit::All => None,
                Limit::Bytes(n) => Some(n),
            },
            model_sha256: model.map(|(sha, _)| sha.as_str()),
            model_threads: r.settings.model_threads,
            workers: r.settings.workers,
        },
        tool: "llmfs bench",
        totals,
    }
}
