//! A bit-exact `exp` for turning logits into weights.
//!
//! The encoder and decoder must build identical frequency tables, possibly
//! on different machines, so this cannot call libm (`f64::exp` differs by an
//! ulp between implementations). After two IEEE-754 operations (a multiply
//! by log2(e) and an exact scaling by 2^32) everything is integer
//! arithmetic, which is the same everywhere:
//!
//! ```text
//! exp(d) = 2^y,  y = d * log2(e) = k + j/64 + u,  k = floor(y),  j in 0..64,  u in [0, 1/64)
//! 2^(j/64)  from a table (Q31)
//! 2^u       = sum_{n=0}^{4} (ln 2)^n / n! * u^n     (Horner, Q31 fixed point)
//! 2^k       = a right shift by -k
//! ```
//!
//! Integers rather than an f64 polynomial because every step then provably
//! rounds in one direction: all coefficients are positive and every step
//! truncates, so the result never decreases as `d` grows, including across
//! each jump from one table entry, or one `k`, to the next. That
//! monotonicity is what lets `FreqTable::from_logits` promise that a higher
//! logit never gets a lower frequency. The relative error, about 1e-9, is
//! far below what a 16-bit frequency can resolve.

/// The weight of the largest logit: 1.0 in Q31.
const ONE: u64 = 1 << 31;

/// Logits further than this (in nats) below the maximum are treated as
/// exactly this far below. Their weight is already 0: e^-40 * 2^31 < 1e-8.
/// The clamp only bounds the shift below (k >= -58).
const CLAMP: f64 = 40.0;

/// round(2^(j/64) * 2^31) for j = 0..=64; the last entry is exactly 2 * ONE.
#[rustfmt::skip]
const POW2_64THS: [u64; 65] = [
    2_147_483_648, 2_170_868_212, 2_194_507_417, 2_218_404_036,
    2_242_560_872, 2_266_980_759, 2_291_666_561, 2_316_621_173,
    2_341_847_524, 2_367_348_571, 2_393_127_307, 2_419_186_755,
    2_445_529_972, 2_472_160_047, 2_499_080_105, 2_526_293_303,
    2_553_802_834, 2_581_611_923, 2_609_723_834, 2_638_141_863,
    2_666_869_345, 2_695_909_648, 2_725_266_179, 2_754_942_382,
    2_784_941_738, 2_815_267_765, 2_845_924_021, 2_876_914_102,
    2_908_241_642, 2_939_910_317, 2_971_923_842, 3_004_285_971,
    3_037_000_500, 3_070_071_267, 3_103_502_151, 3_137_297_074,
    3_171_459_999, 3_205_994_934, 3_240_905_930, 3_276_197_082,
    3_311_872_529, 3_347_936_457, 3_384_393_094, 3_421_246_719,
    3_458_501_653, 3_496_162_267, 3_534_232_978, 3_572_718_252,
    3_611_622_603, 3_650_950_594, 3_690_706_840, 3_730_896_002,
    3_771_522_796, 3_812_591_987, 3_854_108_391, 3_896_076_880,
    3_938_502_376, 3_981_389_855, 4_024_744_348, 4_068_570_940,
    4_112_874_773, 4_157_661_043, 4_202_935_003, 4_248_701_965,
    4_294_967_296,
];

/// round((ln 2)^n / n! * 2^31) for n = 0..=4; the n = 5 term is below
/// 0.003 units for u < 1/64.
const COEFFS: [u64; 5] = [ONE, 1_488_522_236, 515_882_496, 119_194_166, 20_654_775];

/// `2^(frac / 2^32)` in Q31, for `frac < 2^32`; in `[ONE, 2 * ONE]`.
fn exp2_frac(frac: u64) -> u64 {
    debug_assert!(frac < 1 << 32);
    let j = (frac >> 26) as usize;
    let low = frac & ((1 << 26) - 1); // u = low / 2^32
    let mut p = COEFFS[4];
    for &c in COEFFS[..4].iter().rev() {
        // p < 2^32 and low < 2^26: no overflow.
        p = c + ((p * low) >> 32);
    }
    // POW2_64THS[j] < 2^32 and p < 2^31.02 (2^u < 2^(1/64)): below 2^64.
    let v = (POW2_64THS[j] * p) >> 31;
    // Never above where the next segment starts (at low = 0 its p is ONE,
    // so it starts at exactly POW2_64THS[j + 1]), or monotonicity across the
    // step would break. The product stays below that anyway; the clamp
    // makes the bound independent of the constants' rounding.
    v.min(POW2_64THS[j + 1])
}

/// `exp(d)` for `d <= 0`, as an integer weight in Q31: `ONE` at `d = 0`,
/// never decreasing in `d`. `d` above 0 is treated as 0; below `-CLAMP`, or
/// NaN, as `-CLAMP`.
pub fn exp_q31(d: f64) -> u64 {
    let d = if d > 0.0 {
        0.0
    } else if d >= -CLAMP {
        d
    } else {
        -CLAMP
    };
    let y = d * std::f64::consts::LOG2_E;
    // Exact: a power-of-two scaling; |y| * 2^32 < 2^38. `as` truncates
    // towards zero, which is monotone, as is everything after it.
    let fixed = (y * 4_294_967_296.0) as i64;
    let k = fixed >> 32; // floor, in -58..=0
    let frac = (fixed & 0xFFFF_FFFF) as u64;
    exp2_frac(frac) >> (-k) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_powers_of_two() {
        for (j, &v) in POW2_64THS.iter().enumerate() {
            let want = (2f64.powf(j as f64 / 64.0) * ONE as f64).round() as u64;
            assert_eq!(v, want, "j = {j}");
        }
    }

    #[test]
    fn coefficients_are_the_taylor_series_of_2_pow_t() {
        let ln2 = std::f64::consts::LN_2;
        let mut term = 1.0f64;
        for (n, &c) in COEFFS.iter().enumerate() {
            if n > 0 {
                term *= ln2 / n as f64;
            }
            assert_eq!(c, (term * ONE as f64).round() as u64, "n = {n}");
        }
    }

    #[test]
    fn exact_points() {
        assert_eq!(exp_q31(0.0), ONE);
        assert_eq!(exp_q31(-0.0), ONE);
        assert_eq!(exp_q31(5.0), ONE);
        assert_eq!(exp_q31(-std::f64::consts::LN_2), ONE / 2);
        assert_eq!(exp_q31(-CLAMP), 0);
        assert_eq!(exp_q31(f64::NEG_INFINITY), 0);
        assert_eq!(exp_q31(f64::NAN), 0);
        assert!(exp2_frac((1 << 32) - 1) < 2 * ONE);
        for j in 0..64u64 {
            assert_eq!(exp2_frac(j << 26), POW2_64THS[j as usize]);
            assert!(exp2_frac((j << 26) + (1 << 26) - 1) <= POW2_64THS[j as usize + 1]);
        }
    }

    #[test]
    fn close_to_exp() {
        let mut d = 0.0f64;
        while d > -20.0 {
            let got = exp_q31(d) as f64 / ONE as f64;
            let want = d.exp();
            assert!(
                (got - want).abs() <= want * 4e-9 + 2.0 / ONE as f64,
                "exp({d}) = {got}, want {want}"
            );
            d -= 0.0137;
        }
    }

    #[test]
    fn never_decreases() {
        // Dense sweep, then every step from one power of two to the next,
        // where a float polynomial could go down by an ulp.
        let mut prev = 0;
        let mut d = -CLAMP - 1.0;
        while d <= 0.5 {
            let w = exp_q31(d);
            assert!(w >= prev, "exp_q31({d}) = {w} < {prev}");
            prev = w;
            d += 1.0 / 4096.0;
        }
        let mut prev = 0;
        for frac in (0..1u64 << 32).step_by(4099) {
            let v = exp2_frac(frac);
            assert!(v >= prev, "exp2_frac({frac})");
            prev = v;
        }
        for k in 1..58i32 {
            let edge = -f64::from(k) * std::f64::consts::LN_2;
            let below = exp_q31(edge - 1e-12);
            let at = exp_q31(edge);
            let above = exp_q31(edge + 1e-12);
            assert!(below <= at && at <= above, "k = {k}");
        }
    }
}
