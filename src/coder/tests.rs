//! Round trips through the trait with a few models, robustness against bad
//! input, and compression efficiency.

use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The same table for every symbol.
struct Fixed(FreqTable);

impl SymbolModel for Fixed {
    type Error = CoderError;
    fn table(&mut self) -> Result<&FreqTable, CoderError> {
        Ok(&self.0)
    }
    fn update(&mut self, _: usize) {}
}

/// Adaptive order-0: counts of the symbols seen so far, rebuilt into a table
/// after every symbol, halved when they grow large.
struct Order0 {
    counts: Vec<u32>,
    table: FreqTable,
}

impl Order0 {
    fn new(symbols: usize) -> Self {
        let counts = vec![1; symbols];
        let table = FreqTable::from_counts(&counts).unwrap();
        Order0 { counts, table }
    }
}

impl SymbolModel for Order0 {
    type Error = CoderError;
    fn table(&mut self) -> Result<&FreqTable, CoderError> {
        Ok(&self.table)
    }
    fn update(&mut self, symbol: usize) {
        self.counts[symbol] += 24;
        if self.counts[symbol] > 1 << 13 {
            for c in &mut self.counts {
                *c = c.div_ceil(2);
            }
        }
        self.table = FreqTable::from_counts(&self.counts).unwrap();
    }
}

/// Cycles through a list of tables, one per symbol.
struct Cycle {
    tables: Vec<FreqTable>,
    step: usize,
}

impl SymbolModel for Cycle {
    type Error = CoderError;
    fn table(&mut self) -> Result<&FreqTable, CoderError> {
        Ok(&self.tables[self.step % self.tables.len()])
    }
    fn update(&mut self, _: usize) {
        self.step += 1;
    }
}

fn uniform() -> FreqTable {
    FreqTable::from_counts(&[1; 256]).unwrap()
}

/// Symbol 0 has 65536 - 255, the other 255 symbols 1 each.
fn skewed() -> FreqTable {
    let mut f = vec![1u32; 256];
    f[0] = 65536 - 255;
    FreqTable::from_freqs(f).unwrap()
}

/// A geometric-looking distribution, like bytes of text under a decent model.
fn text_like() -> FreqTable {
    let logits: Vec<f32> = (0..256).map(|i| -0.045 * i as f32).collect();
    FreqTable::from_logits(&logits).unwrap()
}

/// `n` symbols drawn from `table`'s own distribution.
fn sample(table: &FreqTable, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| table.symbol_for(rng.random_range(0..TOTAL)).unwrap())
        .collect()
}

/// -sum log2 p(symbol) under a fixed table, in bits.
fn ideal_bits(table: &FreqTable, symbols: &[usize]) -> f64 {
    symbols
        .iter()
        .map(|&s| -(f64::from(table.freq(s)) / f64::from(TOTAL)).log2())
        .sum()
}

fn round_trip<M: SymbolModel<Error = CoderError>>(
    mut make: impl FnMut() -> M,
    symbols: &[usize],
) -> Vec<u8> {
    let bytes = encode_symbols(&mut make(), symbols).unwrap();
    let back = decode_symbols(&mut make(), &bytes, symbols.len()).unwrap();
    assert_eq!(back, symbols);
    bytes
}

#[test]
fn round_trip_uniform() {
    assert!(round_trip(|| Fixed(uniform()), &[]).is_empty());
    round_trip(|| Fixed(uniform()), &[0]);
    round_trip(|| Fixed(uniform()), &[255]);
    let syms = sample(&uniform(), 100_000, 1);
    let bytes = round_trip(|| Fixed(uniform()), &syms);
    // 8 bits a symbol exactly, plus at most the flush.
    assert!(
        (100_000..=100_004).contains(&bytes.len()),
        "{}",
        bytes.len()
    );
}

#[test]
fn round_trip_skewed() {
    assert!(round_trip(|| Fixed(skewed()), &[]).is_empty());
    round_trip(|| Fixed(skewed()), &[0]);
    round_trip(|| Fixed(skewed()), &[200]);
    let syms = sample(&skewed(), 100_000, 2);
    assert!(syms.iter().any(|&s| s != 0));
    round_trip(|| Fixed(skewed()), &syms);
    // The rare symbols only, and the likely one only.
    let rare: Vec<usize> = (0..100_000).map(|i| 1 + i % 255).collect();
    round_trip(|| Fixed(skewed()), &rare);
    let bytes = round_trip(|| Fixed(skewed()), &[0; 100_000]);
    // 100k * -log2(65281/65536) = 562.4 bits.
    assert!(bytes.len() <= 72, "{}", bytes.len());
}

#[test]
fn round_trip_adaptive_order0() {
    round_trip(|| Order0::new(256), &[]);
    round_trip(|| Order0::new(256), &[17]);
    // A source whose statistics change halfway through.
    let mut syms = sample(&text_like(), 50_000, 3);
    syms.extend(sample(&text_like(), 50_000, 4).iter().map(|&s| 255 - s));
    let adaptive = round_trip(|| Order0::new(256), &syms).len();
    // A uniform table would take 100_000 bytes; this source has about 5.9
    // bits of entropy a symbol.
    assert!(adaptive < 80_000, "{adaptive}");
}

#[test]
fn size_is_near_entropy() {
    for (table, seed) in [(text_like(), 5), (skewed(), 6)] {
        let syms = sample(&table, 100_000, seed);
        let bytes = round_trip(|| Fixed(table.clone()), &syms);
        let ideal = ideal_bits(&table, &syms);
        let got = bytes.len() as f64 * 8.0;
        assert!(got <= ideal * 1.01 + 32.0, "{got} bits, ideal {ideal}");
        assert!(got >= ideal - 8.0, "{got} bits below ideal {ideal}?");
    }
}

#[test]
fn symbol_outside_table_is_an_error() {
    let table = FreqTable::from_counts(&[1; 4]).unwrap();
    assert_eq!(
        encode_symbols(&mut Fixed(table), &[1, 4]),
        Err(CoderError::SymbolOutOfRange {
            symbol: 4,
            symbols: 4
        })
    );
}

/// A model with its own error type, failing after a few symbols.
#[derive(Debug, PartialEq)]
enum ModelError {
    Inference,
    Coder(CoderError),
}

impl From<CoderError> for ModelError {
    fn from(e: CoderError) -> Self {
        ModelError::Coder(e)
    }
}

struct Flaky {
    table: FreqTable,
    left: usize,
}

impl SymbolModel for Flaky {
    type Error = ModelError;
    fn table(&mut self) -> Result<&FreqTable, ModelError> {
        if self.left == 0 {
            return Err(ModelError::Inference);
        }
        Ok(&self.table)
    }
    fn update(&mut self, _: usize) {
        self.left -= 1;
    }
}

#[test]
fn model_errors_pass_through() {
    let flaky = |left| Flaky {
        table: uniform(),
        left,
    };
    assert_eq!(
        encode_symbols(&mut flaky(2), &[1, 2, 3]),
        Err(ModelError::Inference)
    );
    assert_eq!(
        encode_symbols(&mut flaky(9), &[1, 999]),
        Err(ModelError::Coder(CoderError::SymbolOutOfRange {
            symbol: 999,
            symbols: 256
        }))
    );
    let bytes = encode_symbols(&mut flaky(3), &[1, 2, 3]).unwrap();
    assert_eq!(
        decode_symbols(&mut flaky(2), &bytes, 3),
        Err(ModelError::Inference)
    );
    assert_eq!(decode_symbols(&mut flaky(3), &bytes, 3), Ok(vec![1, 2, 3]));
}

#[test]
fn truncation_is_detected_for_incompressible_data() {
    // With 8 bits a symbol there is no slack for a missing tail to hide in.
    let syms = sample(&uniform(), 1000, 7);
    let bytes = encode_symbols(&mut Fixed(uniform()), &syms).unwrap();
    let cut = &bytes[..bytes.len() - 10];
    assert!(matches!(
        decode_symbols(&mut Fixed(uniform()), cut, syms.len()),
        Err(CoderError::Overrun { .. })
    ));
}

#[test]
fn long_decode_of_garbage_terminates() {
    // The skewed table spends almost no bits on its likely symbol, so the
    // decoder may produce many symbols from few bytes; it still stops after
    // `count` steps.
    let garbage = [0x5Au8; 3];
    let r = decode_symbols(&mut Fixed(skewed()), &garbage, 1_000_000);
    if let Ok(v) = r {
        assert_eq!(v.len(), 1_000_000);
    }
}

fn table_strategy() -> impl Strategy<Value = FreqTable> {
    prop_oneof![
        prop::collection::vec(any::<u32>().prop_map(|c| c >> (c % 32)), 2..300)
            .prop_map(|c| FreqTable::from_counts(&c).unwrap()),
        prop::collection::vec(-20.0f32..20.0, 2..300)
            .prop_map(|l| FreqTable::from_logits(&l).unwrap()),
        (2usize..300, any::<prop::sample::Index>()).prop_map(|(n, i)| {
            let mut f = vec![1u32; n];
            f[i.index(n)] = 65536 - (n as u32 - 1);
            FreqTable::from_freqs(f).unwrap()
        }),
    ]
}

/// Tables and symbols valid in them: symbol i is coded with table i % len.
fn tables_and_symbols() -> impl Strategy<Value = (Vec<FreqTable>, Vec<usize>)> {
    prop::collection::vec(table_strategy(), 1..4).prop_flat_map(|tables| {
        let min = tables.iter().map(FreqTable::symbols).min().unwrap();
        // Bias towards low symbols so that likely ones come up often.
        let sym = prop_oneof![0..min, 0..2usize.min(min)];
        (Just(tables), prop::collection::vec(sym, 0..2000))
    })
}

fn model_strategy() -> impl Strategy<Value = u8> {
    0u8..3
}

/// Decodes with one of three fixed models, or with the adaptive one
/// (kind 3); checks only what holds for any input.
fn decode_any(kind: u8, bytes: &[u8], count: usize) -> Result<Vec<usize>, CoderError> {
    let r = match kind {
        0 => decode_symbols(&mut Fixed(uniform()), bytes, count),
        1 => decode_symbols(&mut Fixed(skewed()), bytes, count),
        2 => decode_symbols(&mut Fixed(text_like()), bytes, count),
        _ => decode_symbols(&mut Order0::new(256), bytes, count),
    };
    if let Ok(v) = &r {
        assert_eq!(v.len(), count);
        assert!(v.iter().all(|&s| s < 256));
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_random_tables((tables, syms) in tables_and_symbols()) {
        let mk = || Cycle { tables: tables.clone(), step: 0 };
        let bytes = encode_symbols(&mut mk(), &syms).unwrap();
        prop_assert_eq!(decode_symbols(&mut mk(), &bytes, syms.len()).unwrap(), syms);
    }

    #[test]
    fn random_bytes_never_panic(kind in 0u8..4, bytes in prop::collection::vec(any::<u8>(), 0..200), count in 0usize..3000) {
        let _ = decode_any(kind, &bytes, count);
    }

    #[test]
    fn damaged_streams_never_panic(
        kind in model_strategy(),
        seed in any::<u64>(),
        n in 0usize..2000,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        extra in 0usize..50,
    ) {
        let table = match kind { 0 => uniform(), 1 => skewed(), _ => text_like() };
        let syms = sample(&table, n, seed);
        let bytes = match kind {
            0 => encode_symbols(&mut Fixed(uniform()), &syms),
            1 => encode_symbols(&mut Fixed(skewed()), &syms),
            _ => encode_symbols(&mut Fixed(text_like()), &syms),
        }.unwrap();
        prop_assert_eq!(decode_any(kind, &bytes, n).unwrap(), syms);
        // Truncated.
        let _ = decode_any(kind, &bytes[..cut.index(bytes.len() + 1)], n);
        // One bit flipped.
        if !bytes.is_empty() {
            let mut b = bytes.clone();
            let bit = flip.index(b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
            let _ = decode_any(kind, &b, n);
        }
        // Asked for more symbols than were coded.
        let _ = decode_any(kind, &bytes, n + extra);
    }
}
