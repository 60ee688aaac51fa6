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

/// `n` bytes of the README's prose (real text, which the archive tiers
/// code with cm or the model), variant `variant` starting `variant * 97`
/// bytes in, behind a line naming it, so that variants differ. Run from
/// the crate root (as cargo runs tests).
pub fn readme_prose(n: usize, variant: usize) -> Vec<u8> {
    let base = std::fs::read_to_string("README.md").unwrap();
    let mut out = format!("variant {variant}\n").into_bytes();
    out.extend(base.bytes().skip(variant * 97).cycle().take(n));
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

/// Log lines of a few templates with varying fields: what repeats across
/// blocks is the templates, which a dictionary carries to every block.
pub fn log_lines(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut out = Vec::with_capacity(n + 200);
    let mut t = 1_700_000_000u64 + seed * 1000;
    while out.len() < n {
        t += next(3);
        let line = match next(4) {
            0 => format!(
                "{t} INFO  [http-nio-8080-exec-{}] o.a.c.c.C.[Tomcat].[localhost] GET /api/v2/orders/{} status=200 bytes={} elapsed_ms={}\n",
                next(16), next(100_000), next(90_000), next(400)
            ),
            1 => format!(
                "{t} WARN  [scheduler-{}] c.example.billing.InvoiceJob retrying invoice {} after timeout (attempt {} of 5)\n",
                next(4), next(1_000_000), next(5) + 1
            ),
            2 => format!(
                "{t} DEBUG [pool-{}-thread-{}] c.example.cache.RegionCache evicted {} entries from region users-{}\n",
                next(8), next(32), next(5000), next(12)
            ),
            _ => format!(
                "{t} ERROR [kafka-producer-network-thread | producer-{}] o.a.k.c.NetworkClient Connection to node {} (broker-{}.internal/10.0.{}.{}:9092) could not be established\n",
                next(4), next(9), next(9), next(255), next(255)
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(n);
    out
}

/// The 44-byte header of a 16-bit PCM WAV of `frames` frames.
pub fn wav_header(channels: u16, rate: u32, frames: usize) -> Vec<u8> {
    let frame = 2 * u32::from(channels);
    let data = frames as u32 * frame;
    let mut v = b"RIFF".to_vec();
    v.extend((36 + data).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes()); // PCM
    v.extend(channels.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend((rate * frame).to_le_bytes());
    v.extend((frame as u16).to_le_bytes());
    v.extend(16u16.to_le_bytes());
    v.extend(b"data");
    v.extend(data.to_le_bytes());
    v
}

/// A 16-bit mono WAV of `frames` samples of a decaying two-tone chord: what
/// the media codec's audio model stores well below zstd.
pub fn wav_tone(frames: usize) -> Vec<u8> {
    let mut v = wav_header(1, 8000, frames);
    // Integer synthesis (a triangle pair), so the bytes are the same on
    // every machine.
    for i in 0..frames as i64 {
        let tri = |period: i64| {
            let p = i % period;
            (if p < period / 2 { p } else { period - p }) * 4 - period
        };
        let s = (tri(40) * 150 + tri(61) * 90) * (frames as i64 - i) / frames as i64;
        v.extend((s as i16).to_le_bytes());
    }
    v
}

/// xorshift64*: a test's own deterministic choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
