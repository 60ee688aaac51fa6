//! The CLI's JSON output: every document is a typed value serialised by
//! serde_json, so strings are escaped as JSON requires (control characters,
//! quotes) whatever a path or a name holds.

use std::path::Path;

use serde::Serialize;

/// `v` rounded to `digits` decimals, for figures printed as JSON numbers.
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// A path as a JSON string. JSON strings are Unicode: bytes of a path that
/// are not UTF-8 become U+FFFD, as in the table output.
pub fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One JSON document on one line.
pub fn to_line(value: &impl Serialize) -> String {
    // Serialising these types cannot fail: they hold only strings, numbers,
    // sequences and maps with string keys.
    serde_json::to_string(value).expect("CLI JSON documents always serialise")
}
