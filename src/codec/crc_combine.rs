//! The CRC-32C of two byte strings put together, from their own CRCs and
//! the second one's length, without reading either again: what lets the
//! zstd frame table's per-frame checksums give the record's whole-block
//! checksum (one pass over a block instead of two).
//!
//! `crc32c::crc32c_combine` computes the same but builds its shift
//! operator bit by bit on every call (zlib's old method: about as long as
//! checksumming 64 KiB directly). This is zlib's newer method: the CRC of
//! the first string times x^(8 * len2) modulo the polynomial, with the
//! powers x^(2^k) tabulated once, at compile time.

/// CRC-32C's polynomial (Castagnoli), bit-reflected: bit 31 is x^0.
const POLY: u32 = 0x82F6_3B78;

/// `a * b` modulo the polynomial, both in the reflected representation.
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// `X2N[k]` = x^(2^k) modulo the polynomial.
const X2N: [u32; 64] = {
    let mut t = [0u32; 64];
    // x^1: bit 30 in the reflected representation.
    let mut p = 1u32 << 30;
    let mut k = 0;
    while k < 64 {
        t[k] = p;
        p = mul_mod(p, p);
        k += 1;
    }
    t
};

/// x^(8 * bytes) modulo the polynomial: what shifting a CRC past `bytes`
/// zero bytes multiplies it by.
fn x_pow_8n(bytes: u64) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut n = bytes;
    let mut k = 3; // 8 * bytes = bytes * 2^3
    while n != 0 {
        if n & 1 != 0 {
            p = mul_mod(X2N[k & 63], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32C of `a` followed by `b`, given `crc_a` = crc32c(a),
/// `crc_b` = crc32c(b) and `len_b` = b.len().
pub fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    mul_mod(x_pow_8n(len_b as u64), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::combine;

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn combines_as_the_checksum_of_the_joined_bytes() {
        let data = bytes(70_000, 9);
        for split in [0, 1, 7, 8, 255, 4096, 16384, 16385, 40_000, 65_536, 70_000] {
            let (a, b) = data.split_at(split);
            let got = combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len());
            assert_eq!(got, crc32c::crc32c(&data), "split at {split}");
        }
        for len in [1usize, 2, 3, 100, 1000, 16384, 65_536] {
            for seed in 0..4 {
                let a = bytes(len / 2 + seed as usize, seed);
                let b = bytes(len, seed + 100);
                let joined = [a.as_slice(), b.as_slice()].concat();
                assert_eq!(
                    combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len()),
                    crc32c::crc32c(&joined)
                );
                // The crate's slow combine computes the same.
                assert_eq!(
                    combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len()),
                    crc32c::crc32c_combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len())
                );
            }
        }
    }

    #[test]
    fn folds_frames_from_an_empty_start() {
        let data = bytes(65_536 + 1234, 3);
        let mut crc = 0;
        for chunk in data.chunks(16384) {
            crc = combine(crc, crc32c::crc32c(chunk), chunk.len());
        }
        assert_eq!(crc, crc32c::crc32c(&data));
    }
}
