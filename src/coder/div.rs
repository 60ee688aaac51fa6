//! Exact integer division from a float guess.
//!
//! A 64-bit `div` costs tens of cycles on common x86-64 cores; a float
//! division or multiply plus an integer multiply to check it costs a few.
//! The float only proposes a quotient: the integer correction makes the
//! result the exact `n / d`, so results cannot differ between machines
//! whatever their float arithmetic does.

/// The largest quotient callers need: frequencies and targets are below
/// `2^16`.
const MAX_QUOTIENT: u64 = 1 << 16;

/// `(n / d, n % d)`, for `0 < d < 2^47` and `n / d <= 2^16`, from `guess`,
/// an estimate of the quotient such as `n as f64 / d as f64`. With operands
/// below 2^53 (exact in f64) such a guess is within one of the quotient and
/// each loop runs at most once; from any other guess the loops still end at
/// the exact answer, only later.
#[inline]
pub fn div_from_guess(n: u64, d: u64, guess: f64) -> (u64, u64) {
    debug_assert!(d > 0 && d < 1 << 47 && n / d <= MAX_QUOTIENT);
    // `as` saturates (NaN becomes 0); q * d <= 2^16 * 2^47 cannot overflow.
    let mut q = (guess as u64).min(MAX_QUOTIENT);
    while q * d > n {
        q -= 1;
    }
    let mut r = n - q * d;
    while r >= d {
        q += 1;
        r -= d;
    }
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exact_for_any_guess(d in 1u64..1 << 47, q in 0u64..=MAX_QUOTIENT, frac in any::<u64>(), guess in any::<f64>()) {
            let n = q * d + frac % d;
            prop_assert_eq!(div_from_guess(n, d, guess), (n / d, n % d));
            prop_assert_eq!(div_from_guess(n, d, n as f64 / d as f64), (n / d, n % d));
        }
    }
}
