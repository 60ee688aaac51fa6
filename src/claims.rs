//! An archiver's claims on the blocks it encodes, so that archivers on
//! several machines (`llmfs archive postgres://...`, the archiver of the
//! mount) share a volume's blocks without encoding one twice
//! (docs/DESIGN.md, "Archive workers"): the worker's name, how long a
//! claim lives, the heartbeat that renews a live worker's claims, and the
//! check that a worker running a float model encodes only in a volume
//! whose float blocks its engine can read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::codec::LlmCodec;
use crate::error::{Error, Result};
use crate::store::{Durability, Lease, Store};

/// How long a claim lives past its last renewal unless the worker says
/// otherwise (`llmfs archive --lease`): a dead worker's blocks wait this
/// long before another worker takes them.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The shortest lease: renewals come three times per lease, and a
/// renewal is a round trip to the server.
pub const MIN_LEASE: Duration = Duration::from_millis(300);

/// Volume setting naming the engine (fingerprint id, hex, then its
/// description) that wrote the volume's float-model llm blocks, which
/// decode only on an engine of the same fingerprint.
pub const FLOAT_ENGINE_SETTING: &str = "float_llm_engine";

/// A worker's lease with a name no other process has: host, pid and the
/// time it started.
pub fn new_lease(duration: Duration) -> Lease {
    Lease {
        worker: format!(
            "{}:{}:{}",
            crate::store::host_name(),
            std::process::id(),
            crate::time::now_ns()
        ),
        duration: duration.max(MIN_LEASE),
    }
}

/// Runs `work` while a thread renews `lease`'s claims three times per
/// lease (on a store shared with other writers; a SQLite store has no
/// claims), then gives up every claim the worker still holds, whatever
/// `work` returned. A renewal that fails is logged: the claims then lapse,
/// and at worst another worker encodes the same block too, which the swap
/// rule makes harmless.
pub fn with_heartbeat<T>(store: &Store, lease: &Lease, work: impl FnOnce() -> T) -> T {
    if !store.is_shared() {
        return work();
    }
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let every = lease.duration / 3;
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let step = Duration::from_millis(20);
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                if let Err(e) = store.write(Durability::Normal, |m| m.renew_claims(lease)) {
                    log::warn!("archiver: renewing its claims failed: {e}");
                }
            }
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        out
    });
    if let Err(e) = store.write(Durability::Normal, |m| m.release_claims(&lease.worker)) {
        log::warn!("archiver: releasing its claims failed (they lapse by themselves): {e}");
    }
    out
}

/// Records the worker and the engine it encodes with (`llm`, if it
/// encodes llm blocks) in the volume.
pub fn register(store: &Store, lease: &Lease, llm: Option<&LlmCodec>) -> Result<()> {
    let (engine, id) = match llm {
        Some(l) => (
            l.description().to_string(),
            crate::model::hex(&l.engine_id()),
        ),
        None => (String::new(), String::new()),
    };
    store.write(Durability::Normal, |m| {
        Ok::<_, Error>(m.register_worker(lease, &engine, &id)?)
    })
}

/// Whether `llm` may encode llm blocks in this volume. An integer model's
/// blocks decode on any engine of the model: always. A float model's
/// decode only on an engine with the same fingerprint, so all of a
/// volume's float blocks must come from one: the first float encoder
/// records its engine (or the engine of float blocks already there), and
/// an engine that differs is refused with a message saying which to use.
pub fn check_float_engine(store: &Store, llm: &LlmCodec) -> Result<()> {
    if llm.portable() {
        return Ok(());
    }
    let ours = crate::model::hex(&llm.engine_id());
    store.write(Durability::Durable, |m| {
        m.lock_volume_settings()?;
        let recorded = match m.volume_setting(FLOAT_ENGINE_SETTING)? {
            Some(v) => Some(v),
            // A volume from before this setting: the engine of a float
            // block it already holds, if any.
            None => match m.llm_blocks_not_portable(0, 1)?.first() {
                Some(&(ino, idx)) => m
                    .block(ino, idx)?
                    .and_then(|r| float_engine_of(&r))
                    .map(|id| format!("{id} (the engine of the volume's float blocks)")),
                None => None,
            },
        };
        match recorded {
            Some(v) if v.split(' ').next() == Some(ours.as_str()) => {}
            Some(v) => {
                return Err(Error::Inconsistent(format!(
                    "this volume's float-model llm blocks were written by engine {v}; this \
                     worker runs {} ({ours}), whose blocks no reader of those could decode: \
                     archive on a machine with that engine, or use the integer model",
                    llm.description()
                )))
            }
            None => {}
        }
        m.set_volume_setting(
            FLOAT_ENGINE_SETTING,
            &format!("{ours} {}", llm.description()),
        )?;
        Ok::<_, Error>(())
    })
}

/// The engine id (hex) in a float-model llm record's payload header.
fn float_engine_of(record: &[u8]) -> Option<String> {
    let payload = record.get(crate::codec::RECORD_HEADER_LEN..)?;
    let header = crate::codec::llm::LlmHeader::parse(payload).ok()?;
    Some(crate::model::hex(&header.engine))
}
