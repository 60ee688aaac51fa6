//! sha256 and its hex form: how models and runtime builds are named.

use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The model id (first 8 bytes of the sha256) of a model named by its
/// sha256 in hex; `None` if `sha` is not at least 16 hex digits.
pub fn model_id_from_hex(sha: &str) -> Option<[u8; 8]> {
    let mut id = [0u8; 8];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(sha.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// Parses a lowercase or uppercase hex SHA-256.
pub fn digest_from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
