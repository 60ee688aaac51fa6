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
//! A reported prefix is final (no later step of the decode changes it) but
//! not verified: the record's CRC-32C covers the whole block and is checked
//! only at the end. Decoders report only where the prefix is what the
//! encoder coded whenever the payload is intact: an llm payload of another
//! engine class (float models) reports nothing.

use std::cell::RefCell;
use std::sync::Arc;

/// Receives the decoded prefix of the block (from its first byte); called
/// with ever longer prefixes.
pub type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Bytes between two reports of the byte-by-byte decoders (cm).
pub const STEP: usize = 4096;

/// Runs `f` with `sink` receiving the prefixes that decoders on this thread
/// report; the previous sink (normally none) is restored after, also when
/// `f` panics.
pub fn with_sink<R>(sink: Sink, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Sink>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            SINK.with(|s| *s.borrow_mut() = old);
        }
    }
    let _restore = Restore(SINK.with(|s| s.borrow_mut().replace(sink)));
    f()
}

/// Whether a sink listens on this thread (a decoder may skip work that only
/// a report needs).
pub fn active() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Hands the decoded prefix of the block to this thread's sink, if any.
pub fn report(prefix: &[u8]) {
    let sink = SINK.with(|s| s.borrow().clone());
    if let Some(sink) = sink {
        sink(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn sink_is_per_thread_and_restored() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        assert!(!active());
        with_sink(
            Arc::new(move |p: &[u8]| s.lock().unwrap().push(p.len())),
            || {
                assert!(active());
                report(b"ab");
                std::thread::spawn(|| report(b"abc")).join().unwrap();
                report(b"abcd");
            },
        );
        assert!(!active());
        report(b"abcde");
        assert_eq!(*seen.lock().unwrap(), vec![2, 4]);
    }
}
