//! Finding and loading the pinned ONNX Runtime library, once per process.
//!
//! Search order: `ORT_DYLIB_PATH`; next to the executable (where `cargo
//! build` puts it); `../lib/llmfs/` from the executable (where install.sh
//! puts it); the build cache recorded by build.rs. A library found by the
//! search (not the override) must carry the pinned sha256, since the model
//! contract holds only for the exact build it was measured on.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{hex, sha256, ModelError};

pub const ORT_VERSION: &str = env!("LLMFS_ORT_VERSION");
const BUILD_PATH: &str = env!("LLMFS_ORT_BUILD_PATH");
/// sha256 of libonnxruntime.so.1.31.1 from the onnxruntime 1.31.1 wheel.
#[cfg(not(feature = "cuda"))]
const PINNED_SHA256: Option<&str> =
    Some("fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3");
#[cfg(feature = "cuda")]
const PINNED_SHA256: Option<&str> = None;

/// The loaded runtime: where it came from, and the ONNX Runtime environment
/// every session of the process shares.
pub struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, ModelError>> = OnceLock::new();

/// The process's runtime, loading it on first use.
pub fn runtime() -> Result<&'static Runtime, ModelError> {
    RUNTIME.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn lib_name() -> String {
    format!("libonnxruntime.so.{ORT_VERSION}")
}

/// Where the library is looked for, in order, and whether a found file must
/// match the pinned checksum.
fn candidates() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push((PathBuf::from(p), false));
        return out;
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            out.push((dir.join(lib_name()), true));
            out.push((dir.join("../lib/llmfs").join(lib_name()), true));
            // Test and bench binaries live in target/<profile>/deps.
            out.push((dir.join("..").join(lib_name()), true));
        }
    }
    out.push((PathBuf::from(BUILD_PATH), PINNED_SHA256.is_some()));
    out
}

fn load() -> Result<Runtime, ModelError> {
    let candidates = candidates();
    let Some((path, pinned)) = candidates.iter().find(|(p, _)| p.is_file()) else {
        return Err(ModelError::RuntimeMissing {
            searched: candidates.into_iter().map(|(p, _)| p).collect(),
        });
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.clone());
    if *pinned {
        if let Some(expected) = PINNED_SHA256 {
            let actual = sha256_file(&path)?;
            if actual != expected {
                return Err(ModelError::RuntimeChecksum {
                    path,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
    }
    let builder = ort::init_from(&path).map_err(|e| ModelError::RuntimeLoad {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let environment = builder
        .with_name("llmfs")
        .build()
        .map_err(|e| ModelError::RuntimeLoad {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    let version = ort::info()
        .split(',')
        .find_map(|part| part.trim().strip_prefix("git-branch=rel-"))
        .unwrap_or(ORT_VERSION)
        .to_string();
    log::debug!("ONNX Runtime {version} loaded from {}", path.display());
    Ok(Runtime {
        path,
        version,
        environment,
    })
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let data = std::fs::read(path).map_err(|e| ModelError::RuntimeLoad {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(hex(&sha256(&data)))
}
