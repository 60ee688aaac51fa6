//! The bench report: a table for people and markdown for the README (the
//! JSON for regression tracking is `json.rs`).

use std::collections::BTreeMap;

use crate::codec::CodecId;

use super::{Column, FileResult, Limit, Measure, Report, Subject};

/// Sums over a group of files.
#[derive(Default)]
pub(super) struct Totals {
    pub files: usize,
    pub bytes: u64,
    pub columns: BTreeMap<Column, Measure>,
    /// Raw bytes of the model's blocks, and per-block columns over them.
    pub sample_bytes: u64,
    pub on_sample: BTreeMap<Column, u64>,
    pub full_pass: Option<Measure>,
    pub choice: [u64; CodecId::ALL.len()],
}

impl Totals {
    fn of<'a>(files: impl Iterator<Item = &'a FileResult>, block_size: usize) -> Totals {
        let mut t = Totals::default();
        for f in files {
            t.files += 1;
            t.bytes += f.bytes;
            for (c, m) in &f.columns {
                t.columns.entry(*c).or_default().add(m);
            }
            t.sample_bytes += f.sample_bytes(block_size);
            for (c, n) in &f.on_sample {
                *t.on_sample.entry(*c).or_default() += n;
            }
            if let Some(fp) = &f.full_pass {
                t.full_pass.get_or_insert_with(Measure::default).add(fp);
            }
            for (a, b) in t.choice.iter_mut().zip(f.choice) {
                *a += b;
            }
        }
        t
    }

    /// The model's decode speed over its full pass's, on the same blocks.
    pub fn decode_over_full_pass(&self) -> Option<(f64, f64)> {
        let llm = self.columns.get(&Column::Llm)?;
        let fp = self.full_pass?;
        let dec = Measure::kb_per_s(llm.raw_bytes, llm.decode_secs);
        let full = Measure::kb_per_s(fp.raw_bytes, fp.encode_secs);
        Some((dec, full))
    }
}

/// The columns of this run, in table order.
pub(super) fn columns(r: &Report) -> Vec<Column> {
    let mut cols = Vec::new();
    for s in &r.settings.subjects {
        match s {
            Subject::Llmfs => cols.push(Column::Llmfs),
            Subject::Llm => cols.push(Column::Llm),
            Subject::Cm => cols.push(Column::Cm),
            Subject::Peer(p) => cols.push(Column::Block(*p)),
        }
    }
    for s in &r.settings.subjects {
        if let Subject::Peer(p) = s {
            cols.push(Column::File(*p));
        }
    }
    cols
}

pub(super) fn threads(r: &Report, c: Column) -> usize {
    match c {
        Column::Llmfs | Column::Llm => r.settings.workers * r.settings.model_threads,
        Column::Block(_) | Column::Cm => r.settings.workers,
        Column::File(_) => 1,
    }
}

pub(super) fn groups(r: &Report) -> Vec<(&'static str, Totals)> {
    let bs = r.settings.block_size;
    let mut g = Vec::new();
    let text = Totals::of(r.files.iter().filter(|f| f.text), bs);
    if text.files > 0 && text.files < r.files.len() {
        g.push(("text files", text));
    }
    g.push(("all files", Totals::of(r.files.iter(), bs)));
    g
}

fn any_sampled(r: &Report) -> bool {
    r.files.iter().any(FileResult::sampled)
}

fn model_ran(r: &Report) -> bool {
    r.settings.model.is_some()
}

/// A table as rows of cells; rendered aligned or as markdown.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Leading columns aligned left (names); the rest are numbers.
    left: usize,
}

impl Table {
    fn text(&self) -> String {
        let n = self.head.len();
        let width: Vec<usize> = (0..n)
            .map(|i| {
                std::iter::once(&self.head)
                    .chain(&self.rows)
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i < self.left {
                        format!("{c:<w$}", w = width[i])
                    } else {
                        format!("{c:>w$}", w = width[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(&self.head)];
        out.extend(self.rows.iter().map(line));
        out.join("\n")
    }

    fn markdown(&self) -> String {
        let mut out = vec![format!("| {} |", self.head.join(" | "))];
        let align: Vec<&str> = (0..self.head.len())
            .map(|i| if i < self.left { "---" } else { "---:" })
            .collect();
        out.push(format!("|{}|", align.join("|")));
        for r in &self.rows {
            out.push(format!("| {} |", r.join(" | ")));
        }
        out.join("\n")
    }
}

fn bpb(stored: u64, raw: u64) -> String {
    format!("{:.3}", 8.0 * stored as f64 / raw.max(1) as f64)
}

fn kbs(bytes: u64, secs: f64) -> String {
    let v = Measure::kb_per_s(bytes, secs);
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Blocks per codec, strongest first (as [`choice_head`] names them).
fn choice(c: [u64; CodecId::ALL.len()]) -> String {
    CodecId::BY_STRENGTH
        .iter()
        .map(|&id| c[id as usize].to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The column head of [`choice`]: `llmfs llm/lzma/zstd/raw`.
fn choice_head() -> String {
    let names: Vec<&str> = CodecId::BY_STRENGTH.iter().map(|c| c.name()).collect();
    format!("llmfs {}", names.join("/"))
}

/// Bits per byte: a row per file, then the groups.
fn size_table(r: &Report) -> Table {
    let cols = columns(r);
    let model = model_ran(r);
    let mut head = vec!["file".to_string(), "bytes".to_string()];
    if model {
        head.push("model blocks".into());
        if r.settings.subjects.contains(&Subject::Llmfs) {
            head.push(choice_head());
        }
    }
    head.extend(cols.iter().map(|c| c.name()));
    let mut rows = Vec::new();
    let has_llmfs = r.settings.subjects.contains(&Subject::Llmfs);
    for f in &r.files {
        let mut row = vec![f.name.clone(), f.bytes.to_string()];
        if model {
            row.push(format!(
                "{}/{}{}",
                f.sample.len(),
                f.blocks,
                if f.sampled() { " *" } else { "" }
            ));
            if has_llmfs {
                row.push(choice(f.choice));
            }
        }
        for c in &cols {
            row.push(f.columns.get(c).map_or("-".into(), |m| {
                let mark = if f.sampled() && matches!(c, Column::Llmfs | Column::Llm) {
                    " *"
                } else {
                    ""
                };
                format!("{}{mark}", bpb(m.stored_bytes, m.raw_bytes))
            }));
        }
        rows.push(row);
    }
    let sampled = any_sampled(r);
    for (name, t) in groups(r) {
        let mut row = vec![format!("**{name}**"), t.bytes.to_string()];
        if model {
            row.push(format!(
                "{}/{}",
                r.files
                    .iter()
                    .filter(|f| name == "all files" || f.text)
                    .map(|f| f.sample.len())
                    .sum::<usize>(),
                r.files
                    .iter()
                    .filter(|f| name == "all files" || f.text)
                    .map(|f| f.blocks)
                    .sum::<usize>()
            ));
            if has_llmfs {
                row.push(choice(t.choice));
            }
        }
        for c in &cols {
            row.push(t.columns.get(c).map_or("-".into(), |m| {
                let mark = if sampled && matches!(c, Column::Llmfs | Column::Llm) {
                    " *"
                } else {
                    ""
                };
                format!("{}{mark}", bpb(m.stored_bytes, m.raw_bytes))
            }));
        }
        rows.push(row);
        if sampled && model {
            let mut row = vec![
                format!("{name}, model blocks only"),
                t.sample_bytes.to_string(),
            ];
            row.push(String::new());
            if has_llmfs {
                row.push(String::new());
            }
            for c in &cols {
                row.push(if c.per_block() {
                    t.on_sample
                        .get(c)
                        .map_or("-".into(), |&n| bpb(n, t.sample_bytes))
                } else {
                    "-".into()
                });
            }
            rows.push(row);
        }
    }
    for row in &mut rows {
        row[0] = row[0].replace("**", "");
    }
    Table {
        head,
        rows,
        left: 1,
    }
}

/// Speed per codec over each group.
fn speed_table(r: &Report) -> Table {
    let groups = groups(r);
    let mut head = vec!["codec".to_string(), "threads".to_string()];
    for (name, _) in &groups {
        head.push(format!("encode KB/s ({name})"));
        head.push(format!("decode KB/s ({name})"));
    }
    let mut rows = Vec::new();
    for c in columns(r) {
        let mut row = vec![c.name(), threads(r, c).to_string()];
        for (_, t) in &groups {
            match t.columns.get(&c) {
                Some(m) => {
                    row.push(kbs(m.raw_bytes, m.encode_secs));
                    row.push(kbs(m.raw_bytes, m.decode_secs));
                }
                None => row.extend(["-".to_string(), "-".to_string()]),
            }
        }
        rows.push(row);
        if c == Column::Llm {
            let mut row = vec![
                "llm full pass (Engine::score)".to_string(),
                threads(r, c).to_string(),
            ];
            for (_, t) in &groups {
                match t.full_pass {
                    Some(m) => row.push(kbs(m.raw_bytes, m.encode_secs)),
                    None => row.push("-".into()),
                }
                row.push("-".into());
            }
            rows.push(row);
        }
    }
    Table {
        head,
        rows,
        left: 1,
    }
}

/// What implements the cm column.
pub(super) fn cm_line() -> String {
    format!(
        "llmfs cm payload version {} (pure Rust, integer only)",
        crate::codec::cm::PAYLOAD_VERSION
    )
}

fn codec_table(r: &Report) -> Table {
    let mut rows = Vec::new();
    for s in &r.settings.subjects {
        let (setting, library) = match s {
            Subject::Llmfs => (
                "per block the smallest of llm, lzma (xz -9e), zstd -19, raw (CodecSet::encode_block_best)".into(),
                engine_line(r),
            ),
            Subject::Llm => (
                "the llm codec on every block (CodecSet::encode_block_with)".into(),
                engine_line(r),
            ),
            Subject::Cm => (
                "the cm codec on every block (context mixing without a model; CodecSet::encode_block_with)".into(),
                cm_line(),
            ),
            Subject::Peer(p) => (p.setting().to_string(), p.library()),
        };
        rows.push(vec![s.name().to_string(), setting, library]);
    }
    Table {
        head: vec!["codec".into(), "setting".into(), "implementation".into()],
        rows,
        left: 3,
    }
}

pub(super) fn engine_line(r: &Report) -> String {
    match &r.settings.model {
        Some((_, engine)) => format!("llmfs {}, {engine}", version()),
        None => format!("llmfs {}", version()),
    }
}

pub(super) fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn limit(r: &Report) -> String {
    match r.settings.llm_max_bytes {
        Limit::All => "every block".into(),
        Limit::Bytes(n) => format!(
            "every block of files up to {n} bytes; larger files (marked *): {} evenly spaced blocks",
            (n / r.settings.block_size as u64).max(1)
        ),
    }
}

fn preamble(r: &Report) -> Vec<String> {
    let mut lines = vec![
        format!(
            "llmfs bench, {}, {:.0} s: {}",
            r.date, r.seconds, r.settings.command
        ),
        format!("machine: {}", r.machine.describe()),
        format!(
            "block size {}; per-block codecs on {} worker threads, the model {} x {} thread(s); whole-file codecs on 1 thread",
            r.settings.block_size, r.settings.workers, r.settings.workers, r.settings.model_threads
        ),
    ];
    if let Some((sha, _)) = &r.settings.model {
        lines.push(format!("model sha256 {sha}, on {}", limit(r)));
    }
    lines.push(
        "bits/byte: stored bits per input byte (llmfs, llm: the volume's block records, header included); KB/s: 1000 bytes of input per second; every decode verified".into(),
    );
    lines
}

fn ratio_lines(r: &Report) -> Vec<String> {
    groups(r)
        .iter()
        .filter_map(|(name, t)| {
            let (dec, full) = t.decode_over_full_pass()?;
            Some(format!(
                "decode / full pass ({name}): llm decode {dec:.2} KB/s / full pass {full:.2} KB/s = {:.1}% ({} workers x {} model thread(s), same blocks)",
                100.0 * dec / full,
                r.settings.workers,
                r.settings.model_threads
            ))
        })
        .collect()
}

pub fn text(r: &Report) -> String {
    let mut out = preamble(r);
    out.push(String::new());
    out.push("bits per byte (lower is better)".into());
    out.push(size_table(r).text());
    out.push(String::new());
    out.push("speed".into());
    out.push(speed_table(r).text());
    out.extend(ratio_lines(r));
    out.push(String::new());
    out.push(codec_table(r).text());
    out.join("\n")
}

pub fn markdown(r: &Report) -> String {
    let mut out: Vec<String> = preamble(r).into_iter().map(|l| format!("{l}  ")).collect();
    out.push(String::new());
    out.push("Bits per byte (lower is better):".into());
    out.push(String::new());
    out.push(size_table(r).markdown());
    out.push(String::new());
    out.push("Speed:".into());
    out.push(String::new());
    out.push(speed_table(r).markdown());
    out.push(String::new());
    for l in ratio_lines(r) {
        out.push(format!("{l}  "));
    }
    out.push(String::new());
    out.push(codec_table(r).markdown());
    out.join("\n")
}
