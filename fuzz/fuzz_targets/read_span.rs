//! Arbitrary bytes as a block record of a 64 KiB-block volume, read in
//! part the way a small read of a framed zstd record is (the record's
//! header and frame table plan which of its bytes hold the frames of a
//! range; those are decoded, each against its checksum): must return an
//! error or frames of the declared lengths, never panic, hang or
//! allocate beyond a frame. The first two bytes pick the range.
//!
//!   cargo fuzz run read_span      (from the repository root)
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmfs::codec::Span;

const BLOCK: usize = 65536;

fuzz_target!(|data: &[u8]| {
    let Some((pick, record)) = data.split_first_chunk::<2>() else {
        return;
    };
    let start = usize::from(u16::from_le_bytes(*pick));
    let end = (start + 4096).min(BLOCK);
    if let Ok(Some(span)) = Span::plan(record, record.len(), BLOCK, start, end) {
        let range = span.record_range();
        assert!(range.end <= record.len());
        if let Ok(frames) = span.decode(&record[range]) {
            for f in frames {
                assert!(f.len() <= span.frame_bytes());
            }
        }
    }
});
