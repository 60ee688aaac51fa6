//! The default model, built into the binary so that an installed llmfs
//! needs no model file. A volume stores the model it was written with, so a
//! later default does not strand old data.

/// `models/default/model.onnx` (see its README for how it was made).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../models/default/model.onnx");

/// SHA-256 of earlier files of the built-in model. Each holds the same
/// canonical graph and parameters as today's (canonical part
/// de4e5c78…, `intmodel.py`'s `canonical_bytes`) and differs only in the
/// CPU variant it carried (docs/INTEGER_MODEL.md, "The CPU variant"), so
/// it computes the same integers: a block or container that names one
/// decodes with the built-in model. Rebuilding the variant changes the
/// file's digest, and with it the model a payload names; the file it
/// replaces goes here.
const EARLIER_DEFAULT_FILES: [&str; 3] = [
    // 42a64aa: the canonical graph alone.
    "de4e5c78112e0ff5917d868171087b950f95a67bc3c95df0cff5779b557d8c31",
    // b63dd18: the first CPU variant (uint8 operands).
    "34769749bdb5cb8111d21a12bb806d81473e84c919623c0cd3dda326991b24cc",
    // 46332c3: GatherElements tables, the division as a shift.
    "76cce55a766a03d74abe26d885ca672715f59874d6962de895887ede2b292dde",
];

/// The earlier files' digests that name the same model as the file whose
/// digest is `sha256`: those of [`EARLIER_DEFAULT_FILES`] when it is the
/// built-in model, none otherwise.
pub fn same_model_as(sha256: &[u8; 32]) -> Vec<[u8; 32]> {
    static CURRENT: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if sha256 != CURRENT.get_or_init(|| super::sha256(DEFAULT_MODEL)) {
        return Vec::new();
    }
    EARLIER_DEFAULT_FILES
        .iter()
        .map(|h| super::digest_from_hex(h).expect("a hex SHA-256"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_files_of_the_built_in_model_are_its_aliases() {
        let current = super::super::sha256(DEFAULT_MODEL);
        let same = same_model_as(&current);
        assert_eq!(same.len(), EARLIER_DEFAULT_FILES.len());
        assert!(
            !same.contains(&current),
            "the current file is not an earlier one"
        );
        assert!(same_model_as(&[0u8; 32]).is_empty());
    }
}
