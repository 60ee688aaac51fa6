//! `llmfs stats`, `llmfs archive` and `llmfs fsck`. Codec names come from
//! `CodecId::name` (raw, zstd, llm, lzma); a codec id this build does not
//! know shows as `unknown`.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use super::error::{CliError, Context};
use super::json;
use super::mountinfo::store_of_mountpoint;
use super::store_arg::StorePassword;
use crate::codec::CodecId;
use crate::store::{OpenOptions, Store};

/// The store as `stats` names it: its directory or URL.
fn store_name(store: &Store) -> String {
    match store.dir() {
        Some(dir) => json::path_string(dir),
        None => store.location().to_string(),
    }
}

fn open_read_only(path: &Path, pw: &StorePassword) -> Result<Store, CliError> {
    Store::open_at(
        &pw.locate(path)?,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .map_err(CliError::from)
}

/// Opens an existing store read-write for an offline pass; a mounted one
/// is refused with `why` (a PostgreSQL store mounted anywhere is refused
/// by its lock).
fn open_offline(path: &Path, pw: &StorePassword, why: &str) -> Result<Store, CliError> {
    if store_of_mountpoint(path).is_some() {
        return Err(CliError::usage(format!(
            "{} is mounted: {why}",
            path.display()
        )));
    }
    Store::open_at(
        &pw.locate(path)?,
        &OpenOptions {
            create: false,
            ..OpenOptions::default()
        },
    )
    .map_err(CliError::from)
}

/// An offline pass fails when a block did not decode (it is left as it is).
fn pass_exit_code(stats: &crate::archive::ArchiveStats) -> ExitCode {
    if stats.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn ratio(logical: u64, stored: u64) -> f64 {
    if stored == 0 {
        0.0
    } else {
        logical as f64 / stored as f64
    }
}

/// `llmfs stats --json`.
#[derive(Serialize)]
struct StatsJson<'a> {
    store: String,
    block_size: usize,
    files: u64,
    directories: u64,
    other_inodes: u64,
    logical_bytes: u64,
    stored_bytes: u64,
    ratio: f64,
    /// sha256 of the volume's model; null until its first llm block.
    model: Option<&'a str>,
    /// Every block the archiver has considered (both tiers).
    archived: Bytes,
    /// Blocks not yet considered by the archiver.
    pending: Bytes,
    /// The archive tier (model-free archival codecs) and the deep tier
    /// (the model where it wins).
    archive_tier: TierBytes,
    deep_tier: TierBytes,
    /// llm blocks of a float model: readable only on the CPU class that
    /// wrote them (`llmfs archive --portable` converts them).
    llm_not_portable: NotPortable,
    /// The dictionaries priming cm blocks (the current one last); their
    /// stored bytes are not in `stored_bytes`.
    dictionaries: Vec<DictionaryJson>,
    /// A store directory's segment files (null on PostgreSQL).
    segments: Option<SegmentsJson>,
    codecs: Vec<CodecJson>,
}

#[derive(Serialize)]
struct SegmentsJson {
    files: u64,
    /// Bytes the filesystem has allocated to them.
    disk_bytes: u64,
    /// Block records they hold, and the records' bytes.
    records: u64,
    record_bytes: u64,
}

#[derive(Serialize)]
struct DictionaryJson {
    sha256: String,
    raw_bytes: u64,
    stored_bytes: u64,
    current: bool,
}

#[derive(Serialize)]
struct NotPortable {
    blocks: u64,
    raw_bytes: u64,
}

#[derive(Serialize)]
struct Bytes {
    raw_bytes: u64,
    stored_bytes: u64,
}

#[derive(Serialize)]
struct TierBytes {
    raw_bytes: u64,
    stored_bytes: u64,
    ratio: f64,
}

impl TierBytes {
    fn of(b: crate::store::ByteTotals) -> TierBytes {
        TierBytes {
            raw_bytes: b.raw_bytes,
            stored_bytes: b.stored_bytes,
            ratio: json::round(ratio(b.raw_bytes, b.stored_bytes), 4),
        }
    }
}

#[derive(Serialize)]
struct CodecJson {
    codec: &'static str,
    blocks: u64,
    raw_bytes: u64,
    stored_bytes: u64,
}

pub fn stats(path: &Path, pw: &StorePassword, json: bool) -> Result<ExitCode, CliError> {
    if store_of_mountpoint(path).is_some() {
        // The mount commits operations in batches (within 10 ms); an
        // fsync of its root commits the open one, so that the figures
        // include every operation that returned before this command.
        if let Err(e) = std::fs::File::open(path).and_then(|d| d.sync_all()) {
            log::warn!("syncing {} first: {e}", path.display());
        }
    }
    let store = open_read_only(path, pw)?;
    let t = store.read(|m| m.totals())?;
    let archive = store.read(|m| m.archive_totals())?;
    let archived = archive.archived();
    let (arch_raw, arch_stored) = (archived.raw_bytes, archived.stored_bytes);
    let (pend_raw, pend_stored) = (archive.pending.raw_bytes, archive.pending.stored_bytes);
    let model = store.read(|m| m.volume_setting(crate::archive::MODEL_SETTING))?;
    let (dicts, current_dict) = store.read(|m| {
        Ok::<_, crate::store::StoreError>((
            m.dictionaries()?,
            m.volume_setting(crate::dictionary::DICTIONARY_SETTING)?,
        ))
    })?;
    let dictionaries: Vec<DictionaryJson> = dicts
        .into_iter()
        .map(|d| DictionaryJson {
            current: current_dict.as_deref() == Some(d.sha256.as_str()),
            sha256: d.sha256,
            raw_bytes: d.raw_len,
            stored_bytes: d.payload.len() as u64,
        })
        .collect();
    let segments = store.segment_usage()?;
    let name = |c: u8| CodecId::from_u8(c).map_or("unknown", |c| c.name());
    if json {
        let doc = StatsJson {
            store: store_name(&store),
            block_size: store.block_size(),
            files: t.files,
            directories: t.directories,
            other_inodes: t.other_inodes,
            logical_bytes: t.logical_bytes,
            stored_bytes: t.stored_bytes,
            ratio: json::round(ratio(t.logical_bytes, t.stored_bytes), 4),
            model: model.as_deref(),
            archived: Bytes {
                raw_bytes: arch_raw,
                stored_bytes: arch_stored,
            },
            pending: Bytes {
                raw_bytes: pend_raw,
                stored_bytes: pend_stored,
            },
            archive_tier: TierBytes::of(archive.archive),
            deep_tier: TierBytes::of(archive.deep),
            llm_not_portable: NotPortable {
                blocks: t.llm_not_portable.blocks,
                raw_bytes: t.llm_not_portable.raw_bytes,
            },
            dictionaries,
            segments: segments.map(|u| SegmentsJson {
                files: u.files,
                disk_bytes: u.disk_bytes,
                records: u.records,
                record_bytes: u.record_bytes,
            }),
            codecs: t
                .per_codec
                .iter()
                .map(|c| CodecJson {
                    codec: name(c.codec),
                    blocks: c.blocks,
                    raw_bytes: c.raw_bytes,
                    stored_bytes: c.stored_bytes,
                })
                .collect(),
        };
        println!("{}", json::to_line(&doc));
        return Ok(ExitCode::SUCCESS);
    }
    println!("store          {}", store.location());
    println!("block size     {}", store.block_size());
    println!("files          {}", t.files);
    println!("directories    {}", t.directories);
    println!("other inodes   {}", t.other_inodes);
    println!("logical bytes  {}", t.logical_bytes);
    println!("stored bytes   {}", t.stored_bytes);
    println!(
        "ratio          {:.3}",
        ratio(t.logical_bytes, t.stored_bytes)
    );
    println!("model          {}", model.as_deref().unwrap_or("none yet"));
    if dictionaries.is_empty() {
        println!("dictionary     none yet");
    }
    for d in &dictionaries {
        println!(
            "dictionary     {} ({} bytes stored as {}{})",
            d.sha256,
            d.raw_bytes,
            d.stored_bytes,
            if d.current {
                "; primes new cm blocks"
            } else {
                ""
            }
        );
    }
    println!(
        "archived       {arch_raw} bytes stored as {arch_stored} (ratio {:.3})",
        ratio(arch_raw, arch_stored)
    );
    for (name, tier, what) in [
        (
            "archive tier",
            archive.archive,
            "cm, LZMA2, zstd -19 or raw",
        ),
        ("deep tier", archive.deep, "the model where it wins"),
    ] {
        println!(
            "  {name:<12} {} bytes stored as {} (ratio {:.3}; {what})",
            tier.raw_bytes,
            tier.stored_bytes,
            ratio(tier.raw_bytes, tier.stored_bytes)
        );
    }
    println!(
        "pending        {pend_raw} bytes stored as {pend_stored} (not yet considered by the archiver)"
    );
    if let Some(u) = segments {
        println!(
            "segments       {} records ({} bytes) in {} files taking {} bytes on disk",
            u.records, u.record_bytes, u.files, u.disk_bytes
        );
    }
    let (np_blocks, np_raw) = (t.llm_not_portable.blocks, t.llm_not_portable.raw_bytes);
    if np_blocks > 0 {
        println!(
            "not portable   {np_blocks} llm blocks ({np_raw} bytes) of a float model decode only on \
             the CPU class that wrote them; `llmfs archive --portable` re-encodes them"
        );
    } else {
        println!("not portable   0 blocks");
    }
    println!();
    println!(
        "{:<8} {:>10} {:>16} {:>16} {:>7}",
        "codec", "blocks", "raw bytes", "stored bytes", "ratio"
    );
    for c in &t.per_codec {
        println!(
            "{:<8} {:>10} {:>16} {:>16} {:>7.3}",
            name(c.codec),
            c.blocks,
            c.raw_bytes,
            c.stored_bytes,
            ratio(c.raw_bytes, c.stored_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `llmfs archive`'s settings besides the store and the model.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveRun {
    /// Only blocks unwritten this many seconds.
    pub older_than: u64,
    pub tier: crate::store::ArchiveTier,
    pub no_dictionary: bool,
    /// How long this worker's claims outlive it (PostgreSQL).
    pub lease: std::time::Duration,
}

/// `llmfs archive`: takes the store's cold blocks to a tier, with
/// progress. A SQLite store is opened offline (refused while mounted); a
/// PostgreSQL volume is opened as an archive worker, beside its mount and
/// other workers anywhere (docs/DESIGN.md, "Archive workers").
pub fn archive(
    path: &Path,
    pw: &StorePassword,
    run: &ArchiveRun,
    model: &super::compress::ModelArgs,
) -> Result<ExitCode, CliError> {
    use std::sync::atomic::AtomicBool;
    let location = pw.locate(path)?;
    let store = match &location {
        crate::store::StoreLocation::Postgres(_) => Store::open_worker(&location)?,
        crate::store::StoreLocation::Dir(_) => open_offline(
            path,
            pw,
            "a mounted volume archives in the background (--compress=background); \
             unmount it to archive offline",
        )?,
    };
    let tier = run.tier;
    let requested = match &model.model {
        Some(p) => Some(std::fs::read(p).context(p.display())?),
        None => None,
    };
    // One engine with all the cores: the pass goes block by block.
    let options = crate::model::EngineOptions {
        threads: model.workers(),
        ..model.options()
    };
    // The archive tier needs no model.
    let codecs = if tier == crate::store::ArchiveTier::Deep {
        let llm = crate::archive::volume_codec(&store, requested.as_deref(), &options)?;
        if !llm.can_encode() {
            return Err(CliError::usage(
                "the model failed its self-test; nothing archived",
            ));
        }
        // A float model's blocks decode only on its engine: refuse before
        // encoding anything if the volume's come from another.
        crate::claims::check_float_engine(&store, &llm)?;
        crate::codec::CodecSet::with_llm(Some(llm))
    } else {
        crate::codec::CodecSet::default()
    }
    .with_dictionaries(crate::dictionary::load(&store)?);
    let totals = store.read(|m| m.archive_totals())?;
    let todo = match tier {
        crate::store::ArchiveTier::Deep => totals.pending.raw_bytes + totals.archive.raw_bytes,
        _ => totals.pending.raw_bytes,
    };
    let pass = crate::archive::Pass {
        tier,
        written_before: crate::time::now_ns()
            - (run.older_than as i64).saturating_mul(1_000_000_000),
        max_blocks: u64::MAX,
        build_dictionary: !run.no_dictionary,
    };
    let lease = crate::claims::new_lease(run.lease);
    let mut bar = super::progress::Progress::new("archive", todo);
    let stop = AtomicBool::new(false);
    let stats = worker_passes(&store, &codecs, pass, &lease, &stop, &mut bar)?;
    bar.finish();
    store.checkpoint()?;
    println!(
        "archived {} blocks ({} bytes) to the {} tier: {} encoded, {} now llm, {} failed to \
         decode, {} left for later; stored {} -> {} bytes",
        stats.blocks - stats.deferred - stats.failed,
        stats.raw_bytes,
        crate::archive::tier_name(tier),
        stats.blocks - stats.failed,
        stats.to_llm,
        stats.failed,
        stats.deferred,
        stats.stored_before,
        stats.stored_after
    );
    Ok(pass_exit_code(&stats))
}

/// Passes of this worker until the tier has taken every block: blocks that
/// other workers hold claims on when a pass ends are either finished by
/// them or, if they died, free once their claims lapse; this worker waits
/// and passes again until no claims of others remain.
fn worker_passes(
    store: &Store,
    codecs: &crate::codec::CodecSet,
    pass: crate::archive::Pass,
    lease: &crate::store::Lease,
    stop: &std::sync::atomic::AtomicBool,
    bar: &mut super::progress::Progress,
) -> Result<crate::archive::ArchiveStats, CliError> {
    let mut total = crate::archive::ArchiveStats::default();
    let mut pass = pass;
    loop {
        let before = total;
        let s = crate::archive::archive_pass_as(store, codecs, pass, lease, stop, |s| {
            bar.set(before.raw_bytes + s.raw_bytes)
        })?;
        total.add(&s);
        // Only the first pass builds a dictionary.
        pass.build_dictionary = false;
        let others = store.write(crate::store::Durability::Normal, |m| {
            m.claims_of_others(&lease.worker)
        })?;
        if others == 0 {
            return Ok(total);
        }
        log::info!("{others} blocks are claimed by other workers: waiting for them");
        std::thread::sleep((lease.duration / 3).min(std::time::Duration::from_secs(2)));
    }
}

/// `llmfs archive --portable`: re-encodes the float model's llm blocks with
/// a portable integer model, offline, with progress.
pub fn convert_to_portable(
    path: &Path,
    pw: &StorePassword,
    model: &super::compress::ModelArgs,
) -> Result<ExitCode, CliError> {
    use std::sync::atomic::AtomicBool;
    let store = open_offline(path, pw, "unmount it to convert its blocks")?;
    let options = crate::model::EngineOptions {
        threads: model.workers(),
        ..model.options()
    };
    let target = crate::codec::LlmCodec::load(&model.model_bytes()?, &options)?;
    if !target.portable() {
        return Err(CliError::usage(format!(
            "{} is a float model; --portable needs an integer model (the built-in one is)",
            target.description()
        )));
    }
    if !target.can_encode() {
        return Err(CliError::usage(
            "the model failed its self-test; nothing converted",
        ));
    }
    let t = store.read(|m| m.totals())?;
    let (blocks, raw) = (t.llm_not_portable.blocks, t.llm_not_portable.raw_bytes);
    if blocks == 0 {
        println!("every llm block is already portable; nothing to convert");
        return Ok(ExitCode::SUCCESS);
    }
    // The models the old blocks need: every other model the volume stores
    // (also after an interrupted conversion, when the volume already codes
    // with the target).
    let target_sha = crate::model::hex(&target.model_sha256());
    let decoders = crate::archive::other_model_codecs(&store, &target_sha, &options)?;
    crate::archive::adopt_model(&store, &target)?;
    let llm = std::sync::Arc::new(target.with_decoders(decoders));
    let codecs = crate::codec::CodecSet::with_llm(Some(llm))
        .with_dictionaries(crate::dictionary::load(&store)?);
    let mut bar = super::progress::Progress::new("portable", raw);
    let stop = AtomicBool::new(false);
    let stats =
        crate::archive::convert_to_portable(&store, &codecs, &stop, |s| bar.set(s.raw_bytes))?;
    bar.finish();
    store.checkpoint()?;
    println!(
        "converted {} blocks ({} bytes): {} now portable llm, {} changed meanwhile, {} failed to \
         decode here; stored {} -> {} bytes",
        stats.blocks,
        stats.raw_bytes,
        stats.to_llm,
        stats.changed,
        stats.failed,
        stats.stored_before,
        stats.stored_after
    );
    Ok(pass_exit_code(&stats))
}

pub fn fsck(path: &Path, pw: &StorePassword) -> Result<ExitCode, CliError> {
    let store = open_read_only(path, pw)?;
    let totals = store.read(|m| m.totals())?;
    let llm_blocks = totals
        .per_codec
        .iter()
        .any(|c| c.codec == CodecId::Llm as u8 && c.blocks > 0);
    // The model is loaded only when there are llm blocks to verify.
    let llm = if llm_blocks {
        let options = crate::model::EngineOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..Default::default()
        };
        match crate::archive::volume_codec(&store, None, &options) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("llmfs fsck: the volume's model cannot be loaded ({e}); its llm blocks will fail");
                None
            }
        }
    } else {
        None
    };
    let codecs =
        crate::codec::CodecSet::with_llm(llm).with_dictionaries(crate::dictionary::load(&store)?);
    let total_raw: u64 = totals.per_codec.iter().map(|c| c.raw_bytes).sum();
    let mut bar = super::progress::Progress::new("fsck", total_raw);
    let mut done_blocks = 0u64;
    let bs = store.block_size() as u64;
    let report = crate::fsck::check(&store, &codecs, |n, _| {
        done_blocks = n;
        bar.set((done_blocks * bs).min(total_raw));
    })?;
    bar.finish();
    println!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
