//! Throughput of the range coder, of frequency-table construction and of
//! the in-block mixer (`llmfs::mix`).
//!
//! `cargo bench --bench coder`; symbol throughput is reported as bytes,
//! one symbol standing for one byte. The llm codec's own speed, end to end,
//! is `llmfs bench` (README, "Benchmarks").

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use llmfs::coder::{decode_symbols, encode_symbols, CoderError, FreqTable, SymbolModel, TOTAL};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SYMBOLS: usize = 1 << 20;

struct Fixed(FreqTable);

impl SymbolModel for Fixed {
    type Error = CoderError;
    fn table(&mut self) -> Result<&FreqTable, CoderError> {
        Ok(&self.0)
    }
    fn update(&mut self, _: usize) {}
}

/// A skewed 256-symbol table (about 5.9 bits a symbol), like text bytes
/// under a modest model.
fn table() -> FreqTable {
    let logits: Vec<f32> = (0..256).map(|i| -0.045 * i as f32).collect();
    FreqTable::from_logits(&logits).unwrap()
}

fn logits(n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(9);
    (0..n).map(|_| rng.random_range(-12.0f32..12.0)).collect()
}

fn coding(c: &mut Criterion) {
    let table = table();
    let mut rng = StdRng::seed_from_u64(1);
    let symbols: Vec<usize> = (0..SYMBOLS)
        .map(|_| table.symbol_for(rng.random_range(0..TOTAL)).unwrap())
        .collect();
    let bytes = encode_symbols(&mut Fixed(table.clone()), &symbols).unwrap();

    let mut g = c.benchmark_group("range");
    g.throughput(Throughput::Bytes(SYMBOLS as u64));
    g.sample_size(20);
    g.bench_function("encode_1MiB_256sym", |b| {
        b.iter(|| encode_symbols(&mut Fixed(table.clone()), black_box(&symbols)).unwrap())
    });
    g.bench_function("decode_1MiB_256sym", |b| {
        b.iter(|| decode_symbols(&mut Fixed(table.clone()), black_box(&bytes), SYMBOLS).unwrap())
    });
    g.finish();
}

fn tables(c: &mut Criterion) {
    let mut g = c.benchmark_group("freq");
    for n in [256usize, 4096] {
        let l = logits(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("from_logits_{n}"), |b| {
            b.iter(|| FreqTable::from_logits(black_box(&l)).unwrap())
        });
    }
    // The decoder's per-symbol search of a table, over every target slot.
    let t = table();
    let targets: Vec<u32> = (0..4096u32).map(|i| i * (TOTAL / 4096)).collect();
    g.throughput(Throughput::Elements(targets.len() as u64));
    g.bench_function("symbol_for_4096", |b| {
        b.iter(|| {
            targets
                .iter()
                .map(|&x| t.symbol_for(black_box(x)).unwrap())
                .sum::<usize>()
        })
    });
    let counts: Vec<u32> = (0..256u32).map(|i| (i * 7919) % 1000).collect();
    g.throughput(Throughput::Elements(256));
    g.bench_function("from_counts_256", |b| {
        b.iter(|| FreqTable::from_counts(black_box(&counts)).unwrap())
    });
    g.finish();
}

/// The in-block mixer coding a 64 KiB block of text in the codec's order
/// (waves of 64 chunks of 256 bytes), with a fixed transformer table: the
/// mixer's own cost per byte, which the llm codec adds to the model's.
fn mixer(c: &mut Criterion) {
    use llmfs::coder::range::Encoder;
    use llmfs::mix::{ByteEncoder, Predictor};
    let text = std::fs::read("README.md").unwrap();
    let block: Vec<u8> = text.iter().copied().cycle().take(65536).collect();
    let table = table();
    let mut g = c.benchmark_group("mix");
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.sample_size(10);
    g.bench_function("encode_64KiB_text", |b| {
        b.iter(|| {
            let mut p = Predictor::new(block.len(), 256);
            let mut enc = Encoder::new();
            for w0 in (0..256).step_by(64) {
                for t in 0..256 {
                    for chunk in w0..w0 + 64 {
                        let mut bits = ByteEncoder {
                            encoder: &mut enc,
                            byte: block[chunk * 256 + t],
                            next: 0,
                        };
                        p.code_byte(chunk, &table, &mut bits).unwrap();
                    }
                }
            }
            black_box(enc.finish())
        })
    });
    g.finish();
}

criterion_group!(benches, coding, tables, mixer);
criterion_main!(benches);
