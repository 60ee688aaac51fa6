//! Early delivery of a block's decoded prefix.
//!
//! The slow decoders (llm, cm) produce a block front to back: cm byte by
//! byte, llm one wave (64 chunks of 256 bytes, 16 KiB) at a time, each wave's
//! bytes contiguous and final once the wave is done (`llm::mixed`). A caller
//! that wants those bytes before the whole block is decoded (the read path:
//! `fs::in_flight`) runs the decode inside [`with_sink`]; the decoders then
//! call [`report`] with the prefix decoded so far. The sink is per thread, so
//! a decode on another thread (read-ahead) reports nothing, and codecs that
//! decode fast never report: their caller just waits for the block.
//!
//! A reported prefix is final (no later step of the decode changes it).
//! Whether it is also *checked* depends on the payload: the record's
//! CRC-32C covers the whole block and is checked only at the end, but an
//! llm payload of version 5 carries a CRC-32C of each wave, and the decoder
//! reports a wave's end as checked once the wave's bytes matched it. The
//! read path hands out checked prefixes by default and unchecked ones only
//! when asked to (`--early-reads`). Decoders report only where the prefix
//! is what the encoder coded whenever the payload is intact: an llm payload
//! of another engine class (float models) reports nothing.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::LocalKey;

/// Receives the decoded prefix of the block (from its first byte), and
/// whether the payload's own checksums vouch for it; called with ever
/// longer prefixes.
pub type Sink = Arc<dyn Fn(&[u8], Checked) + Send + Sync>;

/// Whether a reported prefix matched a checksum of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Final, but only the block's CRC-32C, at the end, will tell whether
    /// the payload was intact.
    No,
    /// Matched the checksums the payload carries for it.
    Yes,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Bytes between two reports of the byte-by-byte decoders (cm).
pub const STEP: usize = 4096;

/// Runs `f` with `value` in the thread-local `slot`; the previous value
/// (normally none) is restored after, also when `f` panics.
fn with_local<T: 'static, R>(
    slot: &'static LocalKey<RefCell<Option<T>>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: 'static> {
        slot: &'static LocalKey<RefCell<Option<T>>>,
        old: Option<T>,
    }
    impl<T: 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            let old = self.old.take();
            self.slot.with(|s| *s.borrow_mut() = old);
        }
    }
    let _restore = Restore {
        slot,
        old: slot.with(|s| s.borrow_mut().replace(value)),
    };
    f()
}

/// Runs `f` with `sink` receiving the prefixes that decoders on this thread
/// report; the previous sink (normally none) is restored after, also when
/// `f` panics.
pub fn with_sink<R>(sink: Sink, f: impl FnOnce() -> R) -> R {
    with_local(&SINK, sink, f)
}

/// Runs `f` with `flag` as this thread's cancellation flag: once it is
/// set, the slow decoders on this thread stop at their next step (llm:
/// one model step; cm: 4 KiB) with [`super::CodecError::Cancelled`]. The
/// filesystem sets it when it is dropped at unmount, so that the decodes
/// nobody waits for any more (a read-ahead, a read that returned early) do
/// not hold the store, and with it its lock, for up to a block's decode.
pub fn with_cancel<R>(flag: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    with_local(&CANCEL, flag, f)
}

/// Whether this thread's decode should stop (see [`with_cancel`]).
pub fn cancelled() -> bool {
    CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

/// Whether a sink listens on this thread (a decoder may skip work that only
/// a report needs).
pub fn active() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Hands the decoded prefix of the block to this thread's sink, if any.
pub fn report(prefix: &[u8], checked: Checked) {
    let sink = SINK.with(|s| s.borrow().clone());
    if let Some(sink) = sink {
        sink(prefix, checked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn cancellation_is_per_thread_and_restored() {
        let flag = Arc::new(AtomicBool::new(false));
        assert!(!cancelled());
        with_cancel(Arc::clone(&flag), || {
            assert!(!cancelled());
            flag.store(true, Ordering::Relaxed);
            assert!(cancelled());
            assert!(!std::thread::spawn(cancelled).join().unwrap());
        });
        assert!(!cancelled());
    }

    #[test]
    fn sink_is_per_thread_and_restored() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        assert!(!active());
        with_sink(
            Arc::new(move |p: &[u8], c: Checked| s.lock().unwrap().push((p.len(), c))),
            || {
                assert!(active());
                report(b"ab", Checked::Yes);
                std::thread::spawn(|| report(b"abc", Checked::No))
                    .join()
                    .unwrap();
                report(b"abcd", Checked::No);
            },
        );
        assert!(!active());
        report(b"abcde", Checked::No);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(2, Checked::Yes), (4, Checked::No)]
        );
    }
}
