//! Read-ahead of slow blocks (llm and cm): the policy (which misses are
//! sequential, which blocks are worth decoding ahead) and the second model
//! engine that runs it, kept out of the POSIX core.
//!
//! Decoding an llm block takes the model a long time per block, and a cm
//! block a tenth of a second, so a sequential reader that misses on one
//! would wait for each block in turn with one core busy. When a miss on
//! such a block `idx` follows one on `idx - 1` of the same inode (or `idx`
//! is 0), the next block, if it is an llm or cm block not yet cached, is
//! decoded on another thread (llm: on the read-ahead engine) while this one
//! decodes, and cached. Other codecs decode faster than a read-ahead saves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::in_flight::Decoding;
use crate::codec::progress;
use crate::codec::{record_codec, CodecId, CodecSet};
use crate::error::{Error, Result};

/// Inodes whose last miss is remembered; past this the memory is dropped
/// (a reader then just starts a new sequence).
const TRACKED_INODES: usize = 4096;

/// The read-ahead engine and what it remembers of past misses.
pub(super) struct ReadAhead {
    /// Codecs with their own llm engine, used only for blocks decoded ahead.
    codecs: CodecSet,
    /// Per inode, the block a sequential reader's next miss would be: the
    /// one after the last slow block decoded on a miss (or read ahead).
    last_llm_miss: Mutex<HashMap<u64, u64>>,
}

impl ReadAhead {
    pub(super) fn new(codecs: CodecSet) -> ReadAhead {
        ReadAhead {
            codecs,
            last_llm_miss: Mutex::new(HashMap::new()),
        }
    }

    /// Records a miss on block `idx` holding `record`; returns the block to
    /// decode ahead when the miss is on a slow block and continues a
    /// sequential read.
    fn next_after_miss(&self, ino: u64, idx: u64, record: &[u8]) -> Option<u64> {
        if !slow_to_decode(record) {
            return None;
        }
        let next = idx + 1;
        let mut last = self.last_llm_miss.lock().unwrap_or_else(|p| p.into_inner());
        let sequential = idx == 0 || last.get(&ino) == Some(&(idx - 1));
        last.insert(ino, if sequential { next } else { idx });
        if last.len() > TRACKED_INODES {
            last.clear();
        }
        sequential.then_some(next)
    }
}

impl Decoding {
    /// Decodes block `idx` (a cache miss) and, when the read-ahead policy
    /// says so, the next block at the same time on the read-ahead engine,
    /// which goes into the cache. Errors of the block read ahead are not
    /// this read's: the next read reports them.
    pub(super) fn decode_reading_ahead(
        &self,
        ino: u64,
        idx: u64,
        record: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = None;
        self.decode_reading_ahead_then(ino, idx, record, |r| out = Some(r));
        out.unwrap_or_else(|| Err(Error::Inconsistent("block not decoded".into())))
    }

    /// As [`Decoding::decode_reading_ahead`], handing this block's result
    /// to `done` as soon as it is decoded, before the block read ahead is.
    pub(super) fn decode_reading_ahead_then(
        &self,
        ino: u64,
        idx: u64,
        record: &[u8],
        done: impl FnOnce(Result<Vec<u8>>),
    ) {
        let target = match self.read_ahead_target(ino, idx, record) {
            Ok(t) => t,
            Err(e) => return done(Err(e)),
        };
        let Some((ahead, next, next_record, next_epoch)) = target else {
            return done(self.decode(ino, idx, record));
        };
        // Readers of the next block meanwhile wait on this decode instead
        // of starting their own; none is started if one runs already.
        let Some(finish) = self.in_flight.register_ahead((ino, next), next_record) else {
            return done(self.decode(ino, idx, record));
        };
        let decode = finish.decode();
        let sink = finish.sink();
        let cancel = std::sync::Arc::clone(&self.in_flight.cancel);
        let next_data = std::thread::scope(|scope| {
            let h = scope.spawn(|| {
                super::priority::leave_ring_scheduling();
                progress::with_cancel(cancel, || {
                    progress::with_sink(sink, || {
                        ahead.decode_block(decode.record(), self.block_size)
                    })
                })
            });
            done(self.decode(ino, idx, record));
            h.join()
        });
        let result = match next_data {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => {
                // Decoded again on the reading engine, which also reloads
                // the volume's dictionaries: its error is the block's.
                log::debug!("read-ahead of inode {ino} block {next}: {e}");
                self.decode(ino, next, decode.record())
            }
            // `finish`, dropped, fails the block's waiters.
            Err(_) => return log::error!("read-ahead thread panicked"),
        };
        let result = result.map(Arc::new);
        if let Ok(d) = &result {
            self.cache.insert(ino, next, Arc::clone(d), next_epoch);
        }
        finish.finish(result);
    }

    /// The read-ahead codecs, and the next block's index, record and cache
    /// epoch, when the policy picks a next block that is a slow block not
    /// cached yet.
    #[allow(clippy::type_complexity)]
    fn read_ahead_target(
        &self,
        ino: u64,
        idx: u64,
        record: &[u8],
    ) -> Result<Option<(&CodecSet, u64, Vec<u8>, u64)>> {
        let Some(ahead) = &self.read_ahead else {
            return Ok(None);
        };
        let Some(next) = ahead.next_after_miss(ino, idx, record) else {
            return Ok(None);
        };
        let Err(next_epoch) = self.cache.get(ino, next) else {
            return Ok(None);
        };
        match self.store.read(|m| Ok::<_, Error>(m.block(ino, next)?))? {
            Some(r) if slow_to_decode(&r) => Ok(Some((&ahead.codecs, next, r, next_epoch))),
            _ => Ok(None),
        }
    }
}

/// Whether a record's codec decodes slowly enough for a read-ahead on the
/// other core to pay: the model, or cm (a few hundred KB/s).
pub(super) fn slow_to_decode(record: &[u8]) -> bool {
    matches!(record_codec(record), Some(CodecId::Llm | CodecId::Cm))
}
