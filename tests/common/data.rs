//! Generated test data: reproducible, so a failure can be replayed.

/// `n` bytes of numbered lines of text (compressible, every line distinct),
/// starting at line `seed`.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut line = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!("line {line:08}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        line += 1;
    }
    out.truncate(n);
    out
}

/// `n` bytes of xorshift64 noise from `seed`: incompressible (every codec
/// stores it raw) and reproducible. Every test that wants noise uses this
/// one generator.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    // Spread the seed so small seeds give unrelated streams; xorshift's
    // state must not be zero.
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
