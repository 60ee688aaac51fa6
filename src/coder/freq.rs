//! Integer frequency tables: what a model's prediction becomes before it
//! reaches the range coder.
//!
//! Every table has between 2 and [`MAX_SYMBOLS`] symbols, every symbol a
//! frequency of at least 1 (a symbol with frequency 0 could not be coded at
//! all, and a model is never certain), and the frequencies sum to exactly
//! [`TOTAL`]. [`FreqTable`]'s documentation gives the exact rule by which
//! counts and logits become frequencies.

use super::div::div_from_guess;
use super::exp::exp_q31;
use super::CoderError;

/// Frequencies of a table sum to `2^TOTAL_BITS`.
pub const TOTAL_BITS: u32 = 16;
/// The sum of a table's frequencies.
pub const TOTAL: u32 = 1 << TOTAL_BITS;
/// At most half the total, so that at least half of it is shared out by
/// probability rather than spent on the floor of 1 per symbol.
pub const MAX_SYMBOLS: usize = (TOTAL / 2) as usize;

/// A probability distribution over symbols `0..symbols()`, as integer
/// frequencies summing to [`TOTAL`].
///
/// # How weights become frequencies
///
/// [`FreqTable::from_counts`] and [`FreqTable::from_logits`] both turn
/// non-negative integer weights `w_i` (counts, or `exp(logit_i - max)` in
/// Q31 from a bit-exact integer `exp`) into frequencies the same way. With
/// `n` symbols, `B = TOTAL - n` (what is left after the floor of 1 each)
/// and `W = sum w_i`:
///
/// ```text
/// f_i = 1 + floor(w_i * B / W) + bonus_i
/// ```
///
/// where the `R = B - sum floor(w_i * B / W)` leftover units (`R < n`) go,
/// one each, to the `R` symbols with the largest remainders
/// `(w_i * B) mod W`, ties going to the lower symbol index (the
/// largest-remainder method). This is all integer arithmetic, so the table
/// is the same on every machine. Consequences worth relying on:
///
/// - a larger weight never gets a smaller frequency (so a higher logit
///   never does either, as the weights are monotone in the logits);
/// - a symbol of weight 0 gets exactly 1;
/// - equal weights may differ by one, the lower index getting the extra unit.
///
/// If every weight is 0, all weights count as 1 (a uniform table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreqTable {
    freqs: Vec<u32>,
    /// `cums[i]` is the sum of `freqs[..i]`; one entry longer than `freqs`,
    /// ending in `TOTAL`.
    cums: Vec<u32>,
}

fn check_size(symbols: usize) -> Result<(), CoderError> {
    if (2..=MAX_SYMBOLS).contains(&symbols) {
        Ok(())
    } else {
        Err(CoderError::TableSize { symbols })
    }
}

impl FreqTable {
    /// Takes frequencies as they are; they must be at least 1 each and sum to
    /// exactly [`TOTAL`].
    pub fn from_freqs(freqs: Vec<u32>) -> Result<Self, CoderError> {
        check_size(freqs.len())?;
        if let Some(symbol) = freqs.iter().position(|&f| f == 0) {
            return Err(CoderError::ZeroFrequency { symbol });
        }
        let sum: u64 = freqs.iter().map(|&f| u64::from(f)).sum();
        if sum != u64::from(TOTAL) {
            return Err(CoderError::TableSum { sum });
        }
        Ok(Self::with_cums(freqs))
    }

    /// Frequencies proportional to `counts`, by the rule in the type's
    /// documentation. All-zero counts give a uniform table.
    pub fn from_counts(counts: &[u32]) -> Result<Self, CoderError> {
        check_size(counts.len())?;
        let weights: Vec<u64> = counts.iter().map(|&c| u64::from(c)).collect();
        Ok(quantize(&weights))
    }

    /// Frequencies proportional to `softmax(logits)`, bit-identical on every
    /// platform: weights are `exp(logit - max)` in Q31, computed with integer
    /// arithmetic after one float multiply (see `exp.rs`), then quantised by
    /// the rule in the type's documentation. Special values never panic and
    /// mean:
    ///
    /// - NaN counts as the minimum, like `-inf`: weight 0, frequency 1;
    /// - `+inf` is the maximum; if several logits are `+inf` they share the
    ///   probability and every finite logit gets frequency 1;
    /// - if every logit is `-inf` or NaN, the table is uniform;
    /// - a logit more than about 21.5 below the maximum has weight 0 (e^-21.5
    ///   is below the weights' Q31 resolution), hence frequency exactly 1,
    ///   which it would round to anyway.
    pub fn from_logits(logits: &[f32]) -> Result<Self, CoderError> {
        check_size(logits.len())?;
        Ok(quantize(&logit_weights(logits)))
    }

    fn with_cums(freqs: Vec<u32>) -> Self {
        let mut cums = Vec::with_capacity(freqs.len() + 1);
        let mut acc = 0u32;
        cums.push(0);
        for &f in &freqs {
            acc += f;
            cums.push(acc);
        }
        FreqTable { freqs, cums }
    }

    /// How many symbols the table has.
    pub fn symbols(&self) -> usize {
        self.freqs.len()
    }

    /// The frequency of `symbol`. Panics if `symbol >= symbols()`.
    #[inline]
    pub fn freq(&self, symbol: usize) -> u32 {
        self.freqs[symbol]
    }

    /// The sum of the frequencies of the symbols below `symbol`. Panics if
    /// `symbol >= symbols()`.
    #[inline]
    pub fn cum(&self, symbol: usize) -> u32 {
        self.cums[symbol]
    }

    /// All frequencies, in symbol order.
    pub fn freqs(&self) -> &[u32] {
        &self.freqs
    }

    /// The symbol whose interval `[cum, cum + freq)` contains `target`;
    /// an error if `target >= TOTAL`.
    #[inline]
    pub fn symbol_for(&self, target: u32) -> Result<usize, CoderError> {
        if target >= TOTAL {
            return Err(CoderError::Corrupt);
        }
        // The number of symbols whose interval ends at or below target.
        Ok(self.cums[1..].partition_point(|&c| c <= target))
    }
}

/// The rule in [`FreqTable`]'s documentation. `weights` has a checked
/// length and each weight is below 2^32, so a weight times `TOTAL` fits in a
/// u64 and the sum is below 2^47, as `div_from_guess` needs.
fn quantize(weights: &[u64]) -> FreqTable {
    let n = weights.len();
    let budget = u64::from(TOTAL) - n as u64;
    let mut sum: u64 = weights.iter().sum();
    let ones;
    let weights = if sum == 0 {
        ones = vec![1u64; n];
        sum = n as u64;
        &ones[..]
    } else {
        weights
    };

    let mut freqs = Vec::with_capacity(n);
    let mut given = 0u64;
    // Symbols that lost a fraction to the floor, as `remainder << 15 |
    // (32767 - symbol)`: one u64 whose order is the order of the rule, larger
    // remainder first, then lower symbol. Remainders are below the sum of
    // the weights, at most 2^47, so this fits.
    let mut rems: Vec<u64> = Vec::with_capacity(n);
    // A 64-bit division per symbol would be the slowest step here; a float
    // multiply guesses the quotient and integers make it exact.
    let inv = 1.0 / sum as f64;
    for (i, &w) in weights.iter().enumerate() {
        let scaled = w * budget;
        let (q, r) = div_from_guess(scaled, sum, scaled as f64 * inv);
        given += q;
        freqs.push(1 + q as u32);
        if r > 0 {
            rems.push(r << 15 | (MAX_SYMBOLS - 1 - i) as u64);
        }
    }
    // The leftover is a sum of fractions each below 1, so fewer units than
    // there are symbols with a remainder: only those can get one.
    let leftover = (budget - given) as usize;
    if leftover > 0 {
        // Keys are distinct, so which ones end up in the top `leftover`
        // does not depend on the selection algorithm.
        let first = rems.len() - leftover;
        rems.select_nth_unstable(first);
        for &key in &rems[first..] {
            freqs[MAX_SYMBOLS - 1 - (key & 0x7FFF) as usize] += 1;
        }
    }
    FreqTable::with_cums(freqs)
}

/// Each logit's weight before quantization: `exp(logit - max)` in
/// Q31, NaN taken as minus infinity.
fn logit_weights(logits: &[f32]) -> Vec<u64> {
    let sane = |l: f32| {
        if l.is_nan() {
            f64::NEG_INFINITY
        } else {
            f64::from(l)
        }
    };
    let max = logits
        .iter()
        .map(|&l| sane(l))
        .fold(f64::NEG_INFINITY, f64::max);
    logits
        .iter()
        .map(|&l| {
            let l = sane(l);
            // Equal to the max (this covers +inf, and all -inf) means
            // d = 0, not inf - inf = NaN.
            let d = if l == max { 0.0 } else { l - max };
            exp_q31(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_invariants(t: &FreqTable) {
        assert!(t.freqs().iter().all(|&f| f >= 1));
        assert_eq!(t.freqs().iter().map(|&f| u64::from(f)).sum::<u64>(), 65536);
        assert_eq!(t.cum(0), 0);
        for s in 0..t.symbols() {
            assert_eq!(t.symbol_for(t.cum(s)), Ok(s));
            assert_eq!(t.symbol_for(t.cum(s) + t.freq(s) - 1), Ok(s));
        }
    }

    /// FNV-1a over the frequencies: pins a whole table in one number.
    fn fingerprint(t: &FreqTable) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &f in t.freqs() {
            for b in f.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    /// A fixed, unremarkable logit vector: a sawtooth plus a slope, in f32.
    fn test_logits(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32) * 0.173 - (i as f32) * 0.0041 - 3.0)
            .collect()
    }

    #[test]
    fn sizes_are_checked() {
        for n in [0, 1, MAX_SYMBOLS + 1] {
            let err = Err(CoderError::TableSize { symbols: n });
            assert_eq!(FreqTable::from_counts(&vec![1; n]), err);
            assert_eq!(FreqTable::from_logits(&vec![0.0; n]), err);
            assert_eq!(FreqTable::from_freqs(vec![1; n]), err);
        }
        check_invariants(&FreqTable::from_logits(&vec![0.0; MAX_SYMBOLS]).unwrap());
        check_invariants(&FreqTable::from_logits(&[0.0; 2]).unwrap());
    }

    #[test]
    fn from_freqs_validates() {
        assert_eq!(
            FreqTable::from_freqs(vec![0, 65536]),
            Err(CoderError::ZeroFrequency { symbol: 0 })
        );
        assert_eq!(
            FreqTable::from_freqs(vec![1, 65536]),
            Err(CoderError::TableSum { sum: 65537 })
        );
        assert_eq!(
            FreqTable::from_freqs(vec![u32::MAX, u32::MAX]),
            Err(CoderError::TableSum {
                sum: 2 * u64::from(u32::MAX)
            })
        );
        let t = FreqTable::from_freqs(vec![65535, 1]).unwrap();
        check_invariants(&t);
        assert_eq!(t.symbol_for(65535), Ok(1));
        assert_eq!(t.symbol_for(65536), Err(CoderError::Corrupt));
    }

    #[test]
    fn counts_rule_examples() {
        // Uniform: budget 65536 - 256 divides evenly.
        let t = FreqTable::from_counts(&[1; 256]).unwrap();
        assert!(t.freqs().iter().all(|&f| f == 256));
        // All zero is uniform too.
        assert_eq!(FreqTable::from_counts(&[0; 256]).unwrap(), t);
        // 65533 * {1,1,1} / 3: one leftover unit, tie to the lowest index.
        assert_eq!(
            FreqTable::from_counts(&[5, 5, 5]).unwrap().freqs(),
            &[21846, 21845, 21845]
        );
        // A zero count gets exactly 1.
        assert_eq!(
            FreqTable::from_counts(&[0, 3, 1]).unwrap().freqs(),
            &[1, 49151, 16384]
        );
        // Huge counts do not overflow.
        let t = FreqTable::from_counts(&[u32::MAX, u32::MAX, 1]).unwrap();
        check_invariants(&t);
        assert_eq!(t.freqs(), &[32768, 32767, 1]);
    }

    #[test]
    fn logits_pinned_small() {
        // Computed once with this implementation; any change to the exp or
        // the quantisation shows up here. The encoder and decoder of a stored
        // block depend on these exact numbers.
        let cases: [(&[f32], &[u32]); 5] = [
            (&[0.0, 0.0], &[32768, 32768]),
            (&[1.0, 0.0], &[47910, 17626]),
            (&[2.0, -1.0, 0.5, 0.5], &[43804, 2182, 9775, 9775]),
            (&[-3.25, 7.5, 7.5, 0.0, -100.0], &[2, 32757, 32757, 19, 1]),
            (
                &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                &[5624, 6216, 6869, 7592, 8390, 9272, 10248, 11325],
            ),
        ];
        for (logits, want) in cases {
            let t = FreqTable::from_logits(logits).unwrap();
            check_invariants(&t);
            assert_eq!(t.freqs(), want, "logits {logits:?}");
        }
    }

    #[test]
    fn logits_pinned_fingerprints() {
        for (n, want) in [
            (256usize, 14_807_433_075_869_693_445u64),
            (4096, 14_907_742_203_300_631_544),
            (MAX_SYMBOLS, 12_773_526_739_826_104_975),
        ] {
            let t = FreqTable::from_logits(&test_logits(n)).unwrap();
            check_invariants(&t);
            assert_eq!(fingerprint(&t), want, "{n} symbols");
        }
    }

    #[test]
    fn special_logits() {
        let nan = f32::NAN;
        let inf = f32::INFINITY;
        let ninf = f32::NEG_INFINITY;
        // NaN is the minimum: frequency 1, like -inf.
        let t = FreqTable::from_logits(&[nan, 0.0, ninf, 1.0]).unwrap();
        check_invariants(&t);
        assert_eq!((t.freq(0), t.freq(2)), (1, 1));
        // +inf takes everything but the floors, shared between the +infs.
        let t = FreqTable::from_logits(&[inf, 1e30, inf, nan]).unwrap();
        assert_eq!(t.freqs(), &[32767, 1, 32767, 1]);
        // Nothing finite: uniform.
        let t = FreqTable::from_logits(&[nan, ninf, nan, ninf]).unwrap();
        assert_eq!(t.freqs(), &[16384; 4]);
        // Huge finite values of both signs.
        let t = FreqTable::from_logits(&[f32::MAX, f32::MIN, 0.0, f32::MAX]).unwrap();
        assert_eq!(t.freqs(), &[32767, 1, 1, 32767]);
        // Tiny differences near a huge value are lost to f32, not to us.
        check_invariants(&FreqTable::from_logits(&[1e-40, -1e-40, 0.0]).unwrap());
    }

    #[test]
    fn logits_closer_than_a_weight_share_it() {
        // Found by the property test below: 0 and -8e-22 get the same
        // weight, and the quantizer gave the smaller logit the extra unit.
        let logits = [f32::NAN, -8.215_665e-22, 0.0];
        let t = FreqTable::from_logits(&logits).unwrap();
        check_invariants(&t);
        let w = logit_weights(&logits);
        assert_eq!(w[1], w[2]);
        assert!(t.freq(1).abs_diff(t.freq(2)) <= 1);
    }

    #[test]
    fn dominant_logit_keeps_almost_everything() {
        let mut logits = vec![0.0f32; 256];
        logits[42] = 60.0;
        let t = FreqTable::from_logits(&logits).unwrap();
        assert_eq!(t.freq(42), 65536 - 255);
    }

    fn logit() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => -30.0f32..30.0,
            1 => Just(f32::NAN),
            1 => Just(f32::NEG_INFINITY),
            1 => Just(f32::INFINITY),
            1 => any::<f32>(),
        ]
    }

    proptest! {
        #[test]
        fn logits_make_valid_monotone_tables(logits in prop::collection::vec(logit(), 2..600)) {
            let t = FreqTable::from_logits(&logits).unwrap();
            check_invariants(&t);
            // Rank by logit with NaN as the minimum: the weights follow
            // the logits, and the frequencies the weights. Logits closer
            // than a weight's resolution (e.g. 0 and -8e-22) share a
            // weight, and the quantizer may then give either symbol the
            // extra unit.
            let key = |l: f32| if l.is_nan() { f32::NEG_INFINITY } else { l };
            let w = logit_weights(&logits);
            for i in 0..logits.len() {
                for j in 0..logits.len() {
                    if key(logits[i]) > key(logits[j]) {
                        prop_assert!(w[i] >= w[j], "weights {i} vs {j}");
                    }
                    if w[i] > w[j] {
                        prop_assert!(t.freq(i) >= t.freq(j), "{i} vs {j}");
                    }
                }
            }
            prop_assert_eq!(&FreqTable::from_logits(&logits).unwrap(), &t);
        }

        #[test]
        fn logits_follow_softmax(logits in prop::collection::vec(-20.0f32..20.0, 2..600)) {
            // Against a float reference: each symbol is within one unit of
            // 1 + B * softmax_i (the floor, plus possibly a leftover unit),
            // up to the exp's tiny error.
            let t = FreqTable::from_logits(&logits).unwrap();
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            let budget = f64::from(TOTAL) - logits.len() as f64;
            for (i, e) in exps.iter().enumerate() {
                let ideal = 1.0 + budget * e / sum;
                let f = f64::from(t.freq(i));
                prop_assert!(f > ideal - 1.01 && f < ideal + 1.01, "{i}: {f} vs {ideal}");
            }
        }

        #[test]
        fn counts_make_valid_monotone_tables(counts in prop::collection::vec(any::<u32>().prop_map(|c| c >> (c % 32)), 2..600)) {
            let t = FreqTable::from_counts(&counts).unwrap();
            check_invariants(&t);
            for i in 0..counts.len() {
                for j in 0..counts.len() {
                    if counts[i] > counts[j] {
                        prop_assert!(t.freq(i) >= t.freq(j));
                    }
                }
            }
        }

        #[test]
        fn symbol_for_matches_linear_scan(counts in prop::collection::vec(0u32..1000, 2..300), target in 0u32..65536) {
            let t = FreqTable::from_counts(&counts).unwrap();
            let linear = (0..t.symbols()).find(|&s| t.cum(s) + t.freq(s) > target).unwrap();
            prop_assert_eq!(t.symbol_for(target), Ok(linear));
        }
    }
}
