//! The neural codec in a volume: which model a volume uses, and the
//! archiver that re-encodes cold blocks in two tiers.
//!
//! New writes are stored with the fast codec (zstd or raw) so nothing slow
//! runs on the write path. Blocks unwritten for `archive_after` go to the
//! archive tier: the smallest of the model-free archival codecs (LZMA2,
//! zstd -19) or raw, which still decode at hundreds of MB/s. Blocks
//! unwritten for `deep_after` go to the deep tier: the smallest of those
//! and the model, for data that is truly cold (the model decodes at a few
//! KB/s per core). Each pass decodes a block, encodes it for its tier and
//! swaps the new record in only if the block still holds the record it
//! started from: a block rewritten meanwhile keeps its new data
//! (`WriteTx::swap_archived_block`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{record_codec, CodecId, CodecSet, LlmCodec};
use crate::error::{Error, Result};
use crate::model::{EngineOptions, ModelError, DEFAULT_MODEL};
use crate::store::{ArchiveTier, Durability, Lease, Store};

/// Volume setting naming the model (sha256, hex) new blocks are coded with.
pub const MODEL_SETTING: &str = "model_sha256";
/// Blocks read per archiver round.
const BATCH: usize = 8;
/// Blocks a worker claims at a time on a store shared with other workers:
/// few, so that the blocks of a pass spread over the workers to its end
/// (a claim costs a round trip; an encode, tens of milliseconds to
/// seconds).
const CLAIM_BATCH: usize = 2;

/// When blocks get the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressMode {
    /// Writes use the fast codec; the archiver re-encodes cold blocks.
    #[default]
    Background,
    /// Writes use the best codec at once (slow; batch archival).
    Sync,
    /// Never encode with the model (blocks it wrote still decode).
    Off,
}

impl CompressMode {
    pub fn parse(s: &str) -> std::result::Result<CompressMode, String> {
        match s {
            "background" => Ok(CompressMode::Background),
            "sync" => Ok(CompressMode::Sync),
            "off" => Ok(CompressMode::Off),
            _ => Err(format!(
                "unknown compress mode {s:?} (background, sync, off)"
            )),
        }
    }
}

impl std::fmt::Display for CompressMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CompressMode::Background => "background",
            CompressMode::Sync => "sync",
            CompressMode::Off => "off",
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::model::hex(&crate::model::sha256(bytes))
}

/// The model a volume uses: the one it recorded, or, for a volume that has
/// none yet, `requested` (default: the built-in model). A volume records
/// (and stores) its model only when its first llm block is written
/// ([`ensure_model_recorded`]), so volumes that never use it do not carry it.
pub fn volume_model(
    store: &Store,
    requested: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    let recorded = store
        .read(|m| Ok::<_, Error>(m.volume_setting(MODEL_SETTING)?))
        .map_err(|e| e.to_string())?;
    match recorded {
        Some(sha) => {
            let bytes = store
                .read(|m| Ok::<_, Error>(m.model(&sha)?))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    ModelError::ModelMissing {
                        sha256: sha.clone(),
                    }
                    .to_string()
                })?;
            if sha256_hex(&bytes) != sha {
                return Err(format!(
                    "the volume's stored model {sha} is damaged (checksum mismatch)"
                ));
            }
            if let Some(req) = requested {
                let want = sha256_hex(req);
                if want != sha {
                    return Err(format!(
                        "this volume codes with model {sha}; --model {want} differs \
                         (a volume keeps the model it was created with)"
                    ));
                }
            }
            Ok(bytes)
        }
        None => Ok(requested.unwrap_or(DEFAULT_MODEL).to_vec()),
    }
}

/// Stores `llm`'s model in the volume and records it as the volume's model,
/// unless already done; durable before any llm block can refer to it.
pub fn ensure_model_recorded(store: &Store, llm: &LlmCodec) -> Result<()> {
    let sha = sha256_hex(llm.model_bytes());
    store.write(Durability::Durable, |m| {
        // Archive workers beside a mount may record it at the same time.
        m.lock_volume_settings()?;
        match m.volume_setting(MODEL_SETTING)? {
            Some(recorded) if recorded == sha => {}
            Some(recorded) => {
                return Err(Error::Inconsistent(format!(
                    "volume records model {recorded}, the codec runs {sha}"
                )))
            }
            None => {
                m.put_model(&sha, llm.model_bytes())?;
                m.set_volume_setting(MODEL_SETTING, &sha)?;
                log::info!("volume now stores and uses model {sha}");
            }
        }
        Ok::<_, Error>(())
    })
}

/// Loads the volume's model on an engine; errors are for the caller to
/// report (a volume without a working model still serves its other data).
/// Other models the volume stores (a float model whose blocks are being
/// converted to a portable one) are loaded to decode their blocks.
pub fn volume_codec(
    store: &Store,
    requested: Option<&[u8]>,
    options: &EngineOptions,
) -> std::result::Result<Arc<LlmCodec>, String> {
    let bytes = volume_model(store, requested)?;
    let decoders = other_model_codecs(store, &sha256_hex(&bytes), options)?;
    let codec = LlmCodec::load(&bytes, options)
        .map_err(|e| e.to_string())?
        .with_decoders(decoders);
    Ok(Arc::new(codec))
}

/// Codecs for the models the volume stores besides `current`. One that
/// cannot be loaded is logged and left out: its blocks then fail to decode
/// with an engine mismatch, and the rest of the volume still reads.
pub fn other_model_codecs(
    store: &Store,
    current: &str,
    options: &EngineOptions,
) -> std::result::Result<Vec<Arc<LlmCodec>>, String> {
    let shas = store
        .read(|m| Ok::<_, Error>(m.model_shas()?))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for sha in shas.into_iter().filter(|s| s != current) {
        let bytes = store
            .read(|m| Ok::<_, Error>(m.model(&sha)?))
            .map_err(|e| e.to_string())?;
        match bytes.filter(|b| sha256_hex(b) == sha) {
            Some(b) => match LlmCodec::load(&b, options) {
                Ok(c) => out.push(Arc::new(c)),
                Err(e) => log::error!("the volume's model {sha} cannot be loaded: {e}"),
            },
            None => log::error!("the volume's stored model {sha} is damaged"),
        }
    }
    Ok(out)
}

/// Makes `llm`'s (portable) model the one the volume codes new blocks with,
/// keeping the models its older blocks need; durable before any block
/// refers to it.
pub fn adopt_model(store: &Store, llm: &LlmCodec) -> Result<()> {
    let sha = sha256_hex(llm.model_bytes());
    store.write(Durability::Durable, |m| {
        m.put_model(&sha, llm.model_bytes())?;
        if m.volume_setting(MODEL_SETTING)?.as_deref() != Some(sha.as_str()) {
            m.set_volume_setting(MODEL_SETTING, &sha)?;
            log::info!("volume now codes with model {sha}");
        }
        Ok::<_, Error>(())
    })
}

/// Re-encodes every llm block of a float model (decodable only on the
/// engine class that wrote it) with `codecs`, whose llm codec must run a
/// portable model the volume has adopted ([`adopt_model`]): each block gets
/// the smallest of the portable model, LZMA2, zstd -19 and raw, swapped in
/// only if the block still holds what was read (a block rewritten meanwhile
/// keeps its new data). Once no block names another model, those models are
/// dropped from the volume.
pub fn convert_to_portable(
    store: &Store,
    codecs: &CodecSet,
    stop: &AtomicBool,
    mut progress: impl FnMut(&ArchiveStats),
) -> Result<ArchiveStats> {
    let llm =
        match codecs.llm() {
            Some(llm) if llm.portable() && llm.can_encode() => llm,
            _ => return Err(Error::Inconsistent(
                "converting to portable blocks needs an integer model that passed its self-test"
                    .into(),
            )),
        };
    let mut stats = ArchiveStats::default();
    // Blocks that failed to decode stay where they are: skip past them.
    let mut failed = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let batch = store.read(|m| Ok::<_, Error>(m.llm_blocks_not_portable(failed, BATCH)?))?;
        if batch.is_empty() {
            break;
        }
        for (ino, idx) in batch {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Always swapped in: the point is that no float block remains.
            let outcome = reencode_block(
                store,
                codecs,
                ArchiveTier::Deep,
                (ino, idx),
                None,
                &mut stats,
                |_, _, _| Ok(true),
            )?;
            if outcome == Reencoded::Failed {
                failed += 1;
            }
            progress(&stats);
        }
    }
    if !stop.load(Ordering::Relaxed) && stats.failed == 0 {
        let current = sha256_hex(llm.model_bytes());
        store.write(Durability::Durable, |m| {
            for sha in m.model_shas()? {
                let Some(id) = crate::model::model_id_from_hex(&sha) else {
                    continue;
                };
                if sha != current && m.llm_blocks_of_model(&id)? == 0 {
                    m.delete_model(&sha)?;
                    log::info!("model {sha} no longer used by any block: dropped");
                }
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(stats)
}

/// What became of one block [`reencode_block`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reencoded {
    /// Deleted meanwhile.
    Gone,
    /// Its record did not decode: left as it is (fsck reports it).
    Failed,
    /// A writer held its inode or block longer than a worker waits, or
    /// its claim lapsed and another worker took it: left for later.
    Deferred,
    /// Considered: swapped, kept, or rewritten meanwhile.
    Done,
}

/// Reads block `at`, decodes it and encodes it with `tier`'s choice;
/// `swap_if(old, new, new_codec)` says whether the new record replaces the
/// old one. Either way the block is recorded in `tier`, and only if it
/// still holds `old`: a block rewritten meanwhile keeps its new data.
/// With `claim` (the worker's name, on a store shared with other
/// writers) the swap also gives up the worker's claim on the block, and
/// happens only if the worker still held it. Counts into `stats`.
fn reencode_block(
    store: &Store,
    codecs: &CodecSet,
    tier: ArchiveTier,
    (ino, idx): (u64, u64),
    claim: Option<&str>,
    stats: &mut ArchiveStats,
    mut swap_if: impl FnMut(&[u8], &[u8], CodecId) -> Result<bool>,
) -> Result<Reencoded> {
    let Some(old) = store.read(|m| Ok::<_, Error>(m.block(ino, idx)?))? else {
        return Ok(Reencoded::Gone);
    };
    stats.blocks += 1;
    let raw = match codecs.decode_block(&old, store.block_size()) {
        Ok(raw) => raw,
        Err(e) => {
            log::error!("archiver: inode {ino} block {idx}: {e}; left as it is");
            stats.failed += 1;
            return Ok(Reencoded::Failed);
        }
    };
    let new = match tier {
        ArchiveTier::Deep => codecs.encode_block_best(&raw),
        _ => codecs.encode_block_archive(&raw),
    }
    .map_err(|e| Error::Inconsistent(format!("encoding failed: {e}")))?;
    let new_codec = record_codec(&new).unwrap_or(CodecId::Raw);
    let swap = swap_if(&old, &new, new_codec)?;
    let swapped = store.write(Durability::Normal, |m| {
        if let Some(worker) = claim {
            m.yield_to_writers()?;
            if !m.release_claim(ino, idx, worker)? {
                return Ok(None);
            }
        }
        Ok::<_, Error>(Some(m.swap_archived_block(
            ino,
            idx,
            &old,
            swap.then_some((new_codec as u8, new.as_slice())),
            tier,
        )?))
    });
    let swapped = match swapped {
        Ok(Some(swapped)) => swapped,
        Ok(None) => {
            log::warn!("archiver: its claim on inode {ino} block {idx} lapsed; left to its taker");
            stats.deferred += 1;
            return Ok(Reencoded::Deferred);
        }
        Err(Error::Store(e)) if e.is_contention() => {
            log::debug!("archiver: inode {ino} block {idx} is busy; left for later");
            stats.deferred += 1;
            return Ok(Reencoded::Deferred);
        }
        Err(e) => return Err(e),
    };
    stats.raw_bytes += raw.len() as u64;
    stats.stored_before += old.len() as u64;
    if !swapped {
        stats.changed += 1;
        stats.stored_after += old.len() as u64;
    } else if swap {
        stats.to_llm += u64::from(new_codec == CodecId::Llm);
        stats.stored_after += new.len() as u64;
    } else {
        stats.stored_after += old.len() as u64;
    }
    Ok(Reencoded::Done)
}

/// Counts of one archiver pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStats {
    pub blocks: u64,
    /// Blocks now stored with the model.
    pub to_llm: u64,
    /// Blocks rewritten while being re-encoded (left as written).
    pub changed: u64,
    /// Blocks that failed to decode (left alone; fsck reports them).
    pub failed: u64,
    /// Blocks encoded but left for a later pass: a writer held them, or
    /// the worker's claim lapsed (counted in `blocks`, not in the bytes).
    pub deferred: u64,
    pub raw_bytes: u64,
    pub stored_before: u64,
    pub stored_after: u64,
}

impl ArchiveStats {
    /// Adds the counts of another pass.
    pub fn add(&mut self, o: &ArchiveStats) {
        self.blocks += o.blocks;
        self.to_llm += o.to_llm;
        self.changed += o.changed;
        self.failed += o.failed;
        self.deferred += o.deferred;
        self.raw_bytes += o.raw_bytes;
        self.stored_before += o.stored_before;
        self.stored_after += o.stored_after;
    }
}

/// One archiver pass: which tier, over which blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// [`ArchiveTier::Archive`] or [`ArchiveTier::Deep`].
    pub tier: ArchiveTier,
    /// Blocks written at or before this time (ns) that the tier has still
    /// to take.
    pub written_before: i64,
    /// Stop after this many blocks (the background archiver goes back to
    /// the fast tier between short deep passes).
    pub max_blocks: u64,
    /// Build the volume's dictionary first if it has none and enough blocks
    /// wait (`crate::dictionary::build_if_due`).
    pub build_dictionary: bool,
}

/// Takes every block of `pass` to its tier, until none is left, the pass's
/// block budget is spent or `stop` is set, as a worker of its own
/// ([`archive_pass_as`] with a fresh lease of [`crate::claims::DEFAULT_LEASE`]).
/// `progress` is called after each block.
pub fn archive_pass(
    store: &Store,
    codecs: &CodecSet,
    pass: Pass,
    stop: &AtomicBool,
    progress: impl FnMut(&ArchiveStats),
) -> Result<ArchiveStats> {
    let lease = crate::claims::new_lease(crate::claims::DEFAULT_LEASE);
    archive_pass_as(store, codecs, pass, &lease, stop, progress)
}

/// [`archive_pass`] as the worker of `lease`: on a store shared with other
/// writers (PostgreSQL) it claims each batch of blocks before encoding
/// them, renews its claims while it works and gives up the rest at the
/// end, so that workers beside it never encode the blocks it does
/// (docs/DESIGN.md, "Archive workers").
pub fn archive_pass_as(
    store: &Store,
    codecs: &CodecSet,
    pass: Pass,
    lease: &Lease,
    stop: &AtomicBool,
    mut progress: impl FnMut(&ArchiveStats),
) -> Result<ArchiveStats> {
    if pass.build_dictionary {
        crate::dictionary::build_if_due(store, codecs, pass.tier, pass.written_before)?;
    }
    let shared = store.is_shared();
    if shared {
        let llm = codecs
            .llm()
            .filter(|l| pass.tier == ArchiveTier::Deep && l.can_encode());
        crate::claims::register(store, lease, llm.map(|l| &**l))?;
    }
    let claim = shared.then_some(lease.worker.as_str());
    let batch_len = if shared { CLAIM_BATCH } else { BATCH };
    crate::claims::with_heartbeat(store, lease, || {
        let mut stats = ArchiveStats::default();
        let mut model_recorded = false;
        // Blocks that failed to decode or were busy: not again this pass.
        let mut skip: std::collections::HashSet<(u64, u64)> = Default::default();
        while !stop.load(Ordering::Relaxed) && stats.blocks < pass.max_blocks {
            let claimed = store.write(Durability::Normal, |m| {
                Ok::<_, Error>(m.claim_blocks(
                    pass.tier,
                    pass.written_before,
                    batch_len + skip.len(),
                    lease,
                )?)
            });
            let batch = match claimed {
                Ok(batch) => batch,
                // Another client held what the claim needed (the server
                // broke a lock cycle by failing this one): claim again.
                Err(Error::Store(e)) if e.is_contention() => {
                    log::debug!("archiver: claiming blocks met a lock; again");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let batch: Vec<_> = batch
                .into_iter()
                .filter(|b| !skip.contains(b))
                .take(batch_len)
                .collect();
            if batch.is_empty() {
                break;
            }
            for (ino, idx) in batch {
                if stop.load(Ordering::Relaxed) || stats.blocks >= pass.max_blocks {
                    break;
                }
                // Smaller wins: the model (deep tier), LZMA2, or zstd at its
                // archival level (or raw), whichever the tier's encoder kept.
                let outcome = reencode_block(
                    store,
                    codecs,
                    pass.tier,
                    (ino, idx),
                    claim,
                    &mut stats,
                    |old, new, codec| {
                        let better = new.len() < old.len();
                        if better && codec == CodecId::Llm && !model_recorded {
                            if let Some(llm) = codecs.llm() {
                                crate::claims::check_float_engine(store, llm)?;
                                ensure_model_recorded(store, llm)?;
                            }
                            model_recorded = true;
                        }
                        Ok(better)
                    },
                )?;
                if matches!(outcome, Reencoded::Failed | Reencoded::Deferred) {
                    skip.insert((ino, idx));
                }
                progress(&stats);
            }
        }
        Ok(stats)
    })
}

/// When the background archiver takes blocks to each tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveAges {
    /// Unwritten this long: the archive tier.
    pub archive_after: Duration,
    /// Unwritten this long (and at least `archive_after`): the deep tier;
    /// `None`: never.
    pub deep_after: Option<Duration>,
}

impl ArchiveAges {
    /// When the deep tier takes a block, if ever: never before the
    /// archive tier would.
    pub fn deep(&self) -> Option<Duration> {
        self.deep_after.map(|d| d.max(self.archive_after))
    }

    /// Whether the archive tier runs: not when the deep tier takes blocks
    /// as soon as they are cold, which would only encode them twice.
    pub fn archive_tier_runs(&self) -> bool {
        self.deep_after.is_none_or(|d| d > self.archive_after)
    }
}

/// Deep-tier blocks per round of the background archiver, between which it
/// returns to the archive tier's newly cold blocks.
const DEEP_BLOCKS_PER_ROUND: u64 = 4;

/// The background archiver of a mounted volume: one low-priority thread.
pub struct Archiver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Archiver {
    /// Starts taking blocks of `fs` to the archive and deep tiers at
    /// `ages`; `codecs` has its own engine (none: no deep tier) so reads
    /// never wait for an archiver encode.
    pub fn spawn(fs: Arc<crate::fs::Fs>, codecs: CodecSet, ages: ArchiveAges) -> Archiver {
        // The archiver primes with the dictionaries the mount reads with,
        // so a dictionary it builds is known to readers at once.
        let codecs = match fs.dictionaries() {
            Some(d) => codecs.with_dictionaries(Arc::clone(d)),
            None => codecs,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let deep = match codecs.llm() {
            Some(llm) if llm.can_encode() => ages.deep(),
            _ => None,
        };
        // One worker name for the mount's archiver, beside the workers
        // of other machines (PostgreSQL).
        let lease = crate::claims::new_lease(crate::claims::DEFAULT_LEASE);
        let thread = std::thread::Builder::new()
            .name("llmfs-archiver".into())
            .spawn(move || {
                // Lowest CPU priority for this thread only: interactive I/O
                // comes first.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                }
                let shortest = deep.map_or(ages.archive_after, |d| d.min(ages.archive_after));
                let poll = shortest.clamp(Duration::from_millis(200), Duration::from_secs(30));
                let cutoff = |age: Duration| {
                    crate::time::now_ns() - age.as_nanos().min(i64::MAX as u128) as i64
                };
                while !stop2.load(Ordering::Relaxed) {
                    let mut rounds = Vec::with_capacity(2);
                    if ages.archive_tier_runs() {
                        rounds.push(Pass {
                            tier: ArchiveTier::Archive,
                            written_before: cutoff(ages.archive_after),
                            max_blocks: u64::MAX,
                            build_dictionary: true,
                        });
                    }
                    if let Some(deep) = deep {
                        rounds.push(Pass {
                            tier: ArchiveTier::Deep,
                            written_before: cutoff(deep),
                            max_blocks: DEEP_BLOCKS_PER_ROUND,
                            build_dictionary: true,
                        });
                    }
                    let mut busy = false;
                    for pass in rounds {
                        match archive_pass_as(fs.store(), &codecs, pass, &lease, &stop2, |_| {}) {
                            Ok(s) if s.blocks > 0 => {
                                busy |=
                                    pass.tier == ArchiveTier::Deep && s.blocks >= pass.max_blocks;
                                log::info!(
                                    "archiver, {} tier: {} blocks, {} now llm, {} changed \
                                     meanwhile, {} -> {} bytes",
                                    tier_name(pass.tier),
                                    s.blocks,
                                    s.to_llm,
                                    s.changed,
                                    s.stored_before,
                                    s.stored_after
                                )
                            }
                            Ok(_) => {}
                            Err(e) => log::error!("archiver: {e}"),
                        }
                    }
                    // A deep pass that spent its budget has more to do: go
                    // on after a look at the archive tier, without sleeping.
                    let mut slept = Duration::ZERO;
                    while !busy && slept < poll && !stop2.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        slept += Duration::from_millis(100);
                    }
                }
            })
            .expect("spawning the archiver thread");
        Archiver {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops after the block in hand (an encode takes seconds at most).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tier's name in logs, `stats` and `llmfs archive --tier`.
pub fn tier_name(tier: ArchiveTier) -> &'static str {
    match tier {
        ArchiveTier::Pending => "pending",
        ArchiveTier::Archive => "archive",
        ArchiveTier::Deep => "deep",
    }
}

/// Default engine options for a mounted volume: one model thread each for
/// reads and the archiver, leaving cores to FUSE.
pub fn mount_engine_options(device: crate::model::Device) -> EngineOptions {
    EngineOptions { device, threads: 1 }
}
