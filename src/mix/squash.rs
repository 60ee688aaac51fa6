//! The logistic function and its inverse in fixed point, integer only.
//!
//! Probabilities are 16-bit (`p / 65536`); the logistic domain ("stretch",
//! `ln(p / (1 - p))`) has 8 fractional bits and is clamped to +-2047, that
//! is +-8.0. Both tables are built from integers alone, so every platform
//! computes the same values: the predictor's output must be bit-identical
//! in the encoder and the decoder.

/// `65536 / (1 + e^-x)` for `x = -8.0, -7.5, ..., 8.0`, rounded (computed
/// once with f64 and frozen here; the values are part of the format).
const SQUASH_POINTS: [i32; 33] = [
    22, 36, 60, 98, 162, 267, 439, 720, 1179, 1921, 3108, 4971, 7812, 11955, 17625, 24743, 32768,
    40793, 47911, 53581, 57724, 60565, 62428, 63615, 64357, 64816, 65097, 65269, 65374, 65438,
    65476, 65500, 65514,
];

/// Largest magnitude in the stretch domain.
pub const STRETCH_MAX: i32 = 2047;

/// The logistic function: `x` in 1/256 units, result a probability in
/// `1..=65535` (of 65536), linearly interpolated between the points.
#[inline]
pub fn squash(x: i32) -> u32 {
    let x = x.clamp(-STRETCH_MAX, STRETCH_MAX) + 2048;
    let i = (x >> 7) as usize;
    let frac = x & 127;
    let p = (SQUASH_POINTS[i] * (128 - frac) + SQUASH_POINTS[i + 1] * frac + 64) >> 7;
    p.clamp(1, 65535) as u32
}

/// The inverse of [`squash`], indexed by a 12-bit probability.
static STRETCH: [i16; 4096] = build_stretch();

const fn build_stretch() -> [i16; 4096] {
    // For each 12-bit probability, the smallest x whose squash reaches it:
    // a monotone inverse, as in lpaq.
    let mut table = [0i16; 4096];
    let mut next = 0usize;
    let mut x = -STRETCH_MAX;
    while x <= STRETCH_MAX {
        let v = {
            let xx = x + 2048;
            let i = (xx >> 7) as usize;
            let frac = xx & 127;
            let p = (SQUASH_POINTS[i] * (128 - frac) + SQUASH_POINTS[i + 1] * frac + 64) >> 7;
            (p >> 4) as usize
        };
        while next <= v && next < 4096 {
            table[next] = x as i16;
            next += 1;
        }
        x += 1;
    }
    while next < 4096 {
        table[next] = STRETCH_MAX as i16;
        next += 1;
    }
    table
}

/// `ln(p / (1 - p))` in 1/256 units, for a 16-bit probability.
#[inline]
pub fn stretch(p16: u32) -> i32 {
    i32::from(STRETCH[(p16.min(65535) >> 4) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_monotone_and_centred() {
        assert_eq!(squash(0), 32768);
        let mut last = 0;
        for x in -2100..2100 {
            let p = squash(x);
            assert!(p >= last, "squash({x})");
            last = p;
        }
        assert_eq!(squash(-5000), squash(-STRETCH_MAX));
    }

    #[test]
    fn stretch_inverts_squash() {
        for x in (-1500..1500).step_by(7) {
            let back = stretch(squash(x));
            // 12-bit indexing loses precision where squash is flat.
            assert!((back - x).abs() <= 48, "x {x} back {back}");
        }
        assert!(stretch(1) < -1900);
        assert!(stretch(65535) > 1900);
    }
}
