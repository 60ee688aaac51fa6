//! The default model, built into the binary so that an installed llmfs
//! needs no model file. A volume stores the model it was written with, so a
//! later default does not strand old data.

/// `models/default/model.onnx` (see its README for how it was made).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../models/default/model.onnx");
