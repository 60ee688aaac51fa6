use std::fmt;
use std::path::PathBuf;

/// Why the model engine could not be set up or run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// No ONNX Runtime library was found where llmfs looks for it.
    RuntimeMissing { searched: Vec<PathBuf> },
    /// The library was found but could not be loaded or is the wrong build.
    RuntimeLoad { path: PathBuf, detail: String },
    /// The library's checksum is not the pinned one.
    RuntimeChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The model file is not an llmfs model graph.
    BadModel(String),
    /// ONNX Runtime failed while building a session or running the model.
    Inference(String),
    /// The requested execution provider is not available.
    Device { device: String, detail: String },
    /// The encoder and decoder paths disagree: the engine cannot code exactly.
    SelfTest(String),
    /// A stored model is needed but the volume does not hold it.
    ModelMissing { sha256: String },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::RuntimeMissing { searched } => {
                write!(f, "the ONNX Runtime library was not found (looked at ")?;
                for (i, p) in searched.iter().enumerate() {
                    write!(f, "{}{}", if i > 0 { ", " } else { "" }, p.display())?;
                }
                write!(
                    f,
                    "); rebuild llmfs, or set ORT_DYLIB_PATH to libonnxruntime.so.{}",
                    super::runtime::ORT_VERSION
                )
            }
            ModelError::RuntimeLoad { path, detail } => {
                write!(
                    f,
                    "cannot load ONNX Runtime from {}: {detail}",
                    path.display()
                )
            }
            ModelError::RuntimeChecksum {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{} is not the pinned ONNX Runtime build (sha256 {actual}, expected {expected}); \
                 set ORT_DYLIB_PATH to use it anyway",
                path.display()
            ),
            ModelError::BadModel(d) => write!(f, "not an llmfs model: {d}"),
            ModelError::Inference(d) => write!(f, "model inference failed: {d}"),
            ModelError::Device { device, detail } => {
                write!(f, "execution provider {device} is not available: {detail}")
            }
            ModelError::SelfTest(d) => write!(
                f,
                "model self-test failed: the encoder and decoder paths disagree ({d}); \
                 neural coding is disabled"
            ),
            ModelError::ModelMissing { sha256 } => write!(
                f,
                "model {sha256} is needed to decode this data but is not available"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<ort::Error> for ModelError {
    fn from(e: ort::Error) -> Self {
        ModelError::Inference(e.to_string())
    }
}
