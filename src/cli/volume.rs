//! Building a volume for a mount: the store, the model engines, the
//! filesystem core and the archiver. Nothing here knows about FUSE or the
//! daemon; `mount.rs` mounts what this builds and runs the session.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::{CliError, Context};
use crate::archive::{mount_engine_options, volume_model, ArchiveAges, Archiver, CompressMode};
use crate::codec::{CodecSet, LlmCodec};
use crate::fs::{Fs, FsConfig, WriteEncoding};
use crate::model::Device;
use crate::store::{OpenOptions, Store, StoreLocation, StoreLock};

/// What a volume is built with (the mount's settings less the FUSE ones).
#[derive(Debug, Clone)]
pub struct VolumeSettings {
    /// `--model`: the model of a new volume.
    pub model: Option<PathBuf>,
    pub device: Device,
    pub cache_mb: usize,
    /// Block size of a new store.
    pub block_size: usize,
    pub compress: CompressMode,
    /// Seconds a block stays unwritten before the archive tier takes it.
    pub archive_after: u64,
    /// Seconds before the deep tier (the model) takes it; `None`: never.
    pub deep_archive_after: Option<u64>,
    pub read_only: bool,
    /// `--early-reads` (`FsConfig::early_reads`).
    pub early_reads: bool,
    /// `--segment-min-kib` (`FsConfig::segment_min_bytes`, in KiB).
    pub segment_min_kib: usize,
}

/// Writes the archiver re-encodes within this long use the interim
/// encoding; a volume that keeps blocks longer in their written encoding
/// (a larger `archive_after`) pays level 3's CPU for smaller records.
const INTERIM_MAX_AGE: u64 = 60 * 60;

/// How the volume's writes are encoded: the model at once in sync mode,
/// the interim encoding where the archiver soon replaces it, else zstd's
/// default level (the encoding the block keeps).
fn write_encoding(settings: &VolumeSettings, model_on_write: bool) -> WriteEncoding {
    if model_on_write {
        WriteEncoding::Best
    } else if settings.compress == CompressMode::Background
        && !settings.read_only
        && settings.archive_after <= INTERIM_MAX_AGE
    {
        WriteEncoding::Interim
    } else {
        WriteEncoding::Fast
    }
}

/// A volume ready to be served: the filesystem core and, in background
/// mode, the archiver running on it.
pub struct Volume {
    pub fs: Arc<Fs>,
    archiver: Option<Archiver>,
}

/// The three engines of a mounted volume, each with its own session: reads,
/// read-ahead, and the archiver (or the write path in sync mode).
struct Engines {
    read: Option<Arc<LlmCodec>>,
    ahead: Option<Arc<LlmCodec>>,
    archive: Option<Arc<LlmCodec>>,
}

/// Opens (or creates) the store: the first step of a mount, taken before
/// the daemon detaches its output so that a store in use or a bad block
/// size is reported on the terminal. A PostgreSQL mount also takes the
/// lock in `local_dir` (where its log goes), which `llmfs umount` waits
/// on, and keeps it with the store.
pub fn open_store(
    location: &StoreLocation,
    local_dir: &Path,
    settings: &VolumeSettings,
) -> Result<Store, CliError> {
    let mut created = false;
    let local_lock = match location {
        StoreLocation::Dir(_) => None,
        StoreLocation::Postgres(_) => {
            created = !local_dir.exists();
            std::fs::create_dir_all(local_dir).with_context(|| local_dir.display())?;
            std::fs::set_permissions(local_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| local_dir.display())?;
            Some(StoreLock::acquire(local_dir)?)
        }
    };
    let opened = Store::open_at(
        location,
        &OpenOptions {
            create: true,
            block_size: settings.block_size,
            read_only: false,
        },
    );
    let mut store = match opened {
        Ok(store) => store,
        Err(e) => {
            if created {
                // Leave no trace of a mount that never was.
                drop(local_lock);
                let _ = std::fs::remove_dir_all(local_dir);
            }
            return Err(e.into());
        }
    };
    if let Some(lock) = local_lock {
        store.hold_lock(lock);
    }
    Ok(store)
}

impl Volume {
    /// Loads the volume's model on its engines, builds the core and starts
    /// the archiver. A volume without a working model still serves
    /// everything but its llm blocks (EIO, with a log line saying why),
    /// unless `--model` asked for one.
    pub fn build(store: Store, settings: &VolumeSettings) -> Result<Volume, CliError> {
        let engines = load_engines(&store, settings)?;
        if settings.compress == CompressMode::Off {
            log::info!("compress=off: the model only decodes");
        }
        let write_llm = match settings.compress {
            CompressMode::Sync if !settings.read_only => engines.read.clone(),
            _ => None,
        };
        if let Some(llm) = &write_llm {
            crate::archive::ensure_model_recorded(&store, llm)?;
        }
        let fs = Fs::with_codecs(
            store,
            FsConfig {
                cache_bytes: settings.cache_mb.saturating_mul(1 << 20),
                read_only: settings.read_only,
                write_encoding: write_encoding(settings, write_llm.is_some()),
                early_reads: settings.early_reads,
                segment_min_bytes: settings.segment_min_kib.saturating_mul(1024),
                raw_interim_min_free: Some(crate::fs::RAW_INTERIM_MIN_FREE),
                ..FsConfig::default()
            },
            CodecSet::with_llm(engines.read),
        )?;
        let fs = match engines.ahead {
            Some(ahead) => fs.with_read_ahead(CodecSet::with_llm(Some(ahead))),
            None => fs,
        };
        let fs = Arc::new(fs);
        warm_dictionary(&fs);
        // The archive tier runs without a model; the deep tier only with
        // the archiver's own engine.
        let archiver =
            (settings.compress == CompressMode::Background && !settings.read_only).then(|| {
                Archiver::spawn(
                    Arc::clone(&fs),
                    CodecSet::with_llm(engines.archive),
                    ArchiveAges {
                        archive_after: Duration::from_secs(settings.archive_after),
                        deep_after: settings.deep_archive_after.map(Duration::from_secs),
                    },
                )
            });
        Ok(Volume { fs, archiver })
    }

    /// After the session: stops the archiver and writes everything back
    /// (a no-op when the session's `destroy` already did).
    pub fn shut_down(self) -> Result<(), CliError> {
        if let Some(a) = self.archiver {
            a.stop();
        }
        self.fs.shutdown().context("writing back at unmount")
    }
}

/// Decodes and primes the volume's current dictionary on a thread of its
/// own, so the first read of a primed cm block does not wait for it (about
/// a second for 256 KiB: decoding the stored dictionary and a priming pass).
fn warm_dictionary(fs: &Fs) {
    let Some(dicts) = fs.dictionaries() else {
        return;
    };
    let Some(digest) = dicts.current() else {
        return;
    };
    let dicts = Arc::clone(dicts);
    let spawned = std::thread::Builder::new()
        .name("llmfs-dictionary".into())
        .spawn(move || dicts.warm(digest));
    if let Err(e) = spawned {
        log::warn!("warming the volume dictionary: {e}");
    }
}

fn load_engines(store: &Store, settings: &VolumeSettings) -> Result<Engines, CliError> {
    let requested = match &settings.model {
        Some(p) => Some(std::fs::read(p).context(p.display())?),
        None => None,
    };
    let engine = mount_engine_options(settings.device);
    // One read of the model; every engine (reads, read-ahead, archiver) runs
    // the same bytes, so a new volume's --model is what all of them code with.
    let loaded = volume_model(store, requested.as_deref())
        .map_err(CliError::Message)
        .and_then(|bytes| {
            let reader = LlmCodec::load(&bytes, &engine)?;
            Ok((bytes, Arc::new(reader)))
        });
    match loaded {
        Ok((bytes, reader)) => {
            let load = || LlmCodec::load(&bytes, &engine).map(Arc::new);
            let ahead = load()
                .map_err(|e| log::warn!("read-ahead disabled: {e}"))
                .ok();
            let archive = if settings.compress == CompressMode::Background
                && !settings.read_only
                && settings.deep_archive_after.is_some()
            {
                load()
                    .map_err(|e| log::error!("archiver disabled: {e}"))
                    .ok()
            } else {
                None
            };
            Ok(Engines {
                read: Some(reader),
                ahead,
                archive,
            })
        }
        Err(e) if requested.is_some() => Err(e),
        Err(e) => {
            log::error!("neural codec unavailable, storing with zstd only: {e}");
            Ok(Engines {
                read: None,
                ahead: None,
                archive: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(compress: CompressMode, archive_after: u64, read_only: bool) -> VolumeSettings {
        VolumeSettings {
            model: None,
            device: Device::Cpu,
            cache_mb: 64,
            block_size: 65536,
            compress,
            archive_after,
            deep_archive_after: None,
            read_only,
            early_reads: false,
            segment_min_kib: 1024,
        }
    }

    #[test]
    fn writes_use_the_interim_encoding_only_where_the_archiver_soon_replaces_it() {
        use CompressMode::{Background, Off, Sync};
        use WriteEncoding::{Best, Fast, Interim};
        let cases = [
            // The default: archived after 10 minutes.
            (settings(Background, 600, false), false, Interim),
            (settings(Background, INTERIM_MAX_AGE, false), false, Interim),
            // Blocks kept for days in their written encoding stay level 3.
            (settings(Background, 7 * 86_400, false), false, Fast),
            // No archiver: the written encoding is the final one.
            (settings(Off, 600, false), false, Fast),
            (settings(Background, 600, true), false, Fast),
            (settings(Sync, 600, false), true, Best),
        ];
        for (s, model_on_write, want) in cases {
            assert_eq!(write_encoding(&s, model_on_write), want, "{s:?}");
        }
    }
}
