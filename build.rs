//! Provides the ONNX Runtime shared library the model codec runs on.
//!
//! The official build ships inside the `onnxruntime` wheel on PyPI (a
//! registry every build machine reaches). The wheel is pinned by version and
//! sha256, downloaded once into a cache, and the library inside it, pinned by
//! its own sha256, is copied next to the binaries in `target/<profile>/`.
//! The binary finds it there, in `../lib/llmfs/` next to an installed binary,
//! or at the cache path recorded here (see `src/model/runtime.rs`).
//!
//! `ORT_DYLIB_PATH` at build time skips the download (offline builds, a
//! custom runtime); `LLMFS_ORT_CACHE` moves the cache.

use std::env;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

struct Pinned {
    wheel_url: &'static str,
    wheel_sha256: &'static str,
    /// (path inside the wheel, sha256 of the file)
    libs: &'static [(&'static str, &'static str)],
}

const ORT_VERSION: &str = "1.31.1";

#[cfg(not(feature = "cuda"))]
const PINNED: Pinned = Pinned {
    wheel_url: "https://files.pythonhosted.org/packages/b4/1d/0f85ee31a3d93f2243a5cc29252becf858f53ac5cfa6c9c15d9ffe107eea/onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    wheel_sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    libs: &[(
        "onnxruntime/capi/libonnxruntime.so.1.31.1",
        "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
    )],
};

// The GPU build carries the CUDA execution provider; its library hashes are
// checked against the wheel's own RECORD instead of pinned here (the wheel
// hash pins them transitively).
#[cfg(feature = "cuda")]
const PINNED: Pinned = Pinned {
    wheel_url: "https://files.pythonhosted.org/packages/92/1b/23ae6bfa165cf01f2566aeab3076135d0db8edf5b543c1556fd6b1d93c7f/onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    wheel_sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
    libs: &[
        ("onnxruntime/capi/libonnxruntime.so.1.31.1", ""),
        ("onnxruntime/capi/libonnxruntime_providers_shared.so", ""),
        ("onnxruntime/capi/libonnxruntime_providers_cuda.so", ""),
    ],
};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ORT_DYLIB_PATH");
    println!("cargo:rerun-if-env-changed=LLMFS_ORT_CACHE");
    println!("cargo:rustc-env=LLMFS_ORT_VERSION={ORT_VERSION}");
    dependency_versions();
    let lib_name = format!("libonnxruntime.so.{ORT_VERSION}");
    if let Ok(path) = env::var("ORT_DYLIB_PATH") {
        if !path.is_empty() {
            println!("cargo:rustc-env=LLMFS_ORT_BUILD_PATH={path}");
            return;
        }
    }
    if let Err(e) = provide(&lib_name) {
        panic!(
            "llmfs build: could not provide the ONNX Runtime library: {e}\n\
             (it is downloaded from PyPI once; set ORT_DYLIB_PATH to an existing \
             libonnxruntime.so.{ORT_VERSION} to build offline)"
        );
    }
}

fn provide(lib_name: &str) -> Result<(), String> {
    let cache = cache_dir().join(format!("{}-{}", ORT_VERSION, &PINNED.wheel_sha256[..16]));
    fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let missing = PINNED
        .libs
        .iter()
        .any(|(inner, _)| !cache.join(file_name(inner)).exists());
    if missing {
        let wheel = download(&cache)?;
        extract(&wheel, &cache)?;
        let _ = fs::remove_file(&wheel);
    }
    // Next to the binaries: target/<profile>/ is three levels above OUT_DIR.
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let profile_dir = out_dir.ancestors().nth(3).map(Path::to_path_buf);
    for (inner, _) in PINNED.libs {
        let name = file_name(inner);
        let src = cache.join(name);
        if let Some(dir) = &profile_dir {
            let dst = dir.join(name);
            if !same_size(&src, &dst) {
                let tmp = dir.join(format!(".{name}.tmp"));
                fs::copy(&src, &tmp).map_err(|e| format!("copy to {}: {e}", tmp.display()))?;
                fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
            }
        }
    }
    println!(
        "cargo:rustc-env=LLMFS_ORT_BUILD_PATH={}",
        cache.join(lib_name).display()
    );
    Ok(())
}

fn cache_dir() -> PathBuf {
    if let Ok(dir) = env::var("LLMFS_ORT_CACHE") {
        return PathBuf::from(dir);
    }
    if let Ok(dir) = env::var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("llmfs");
    }
    if let Ok(home) = env::var("HOME") {
        return PathBuf::from(home).join(".cache").join("llmfs");
    }
    PathBuf::from(env::var("OUT_DIR").unwrap())
}

fn file_name(inner: &str) -> &str {
    inner.rsplit('/').next().unwrap()
}

fn same_size(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.len() == b.len(),
        _ => false,
    }
}

fn download(cache: &Path) -> Result<PathBuf, String> {
    let path = cache.join("wheel.part");
    let mut response = agent()
        .get(PINNED.wheel_url)
        .call()
        .map_err(|e| format!("download {}: {e}", PINNED.wheel_url))?;
    let mut reader = response.body_mut().as_reader();
    let mut file = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("download {}: {e}", PINNED.wheel_url))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let got = hex(&hasher.finalize());
    if got != PINNED.wheel_sha256 {
        return Err(format!(
            "{} has sha256 {got}, expected {}",
            PINNED.wheel_url, PINNED.wheel_sha256
        ));
    }
    Ok(path)
}

/// An HTTP agent that trusts the system's CA bundle (where a build machine
/// sits behind a TLS-inspecting proxy, only that bundle knows its CA), or
/// Mozilla's roots when the machine has none.
fn agent() -> ureq::Agent {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let bundle = env::var("SSL_CERT_FILE")
        .ok()
        .into_iter()
        .chain([
            "/etc/ssl/certs/ca-certificates.crt".to_string(),
            "/etc/pki/tls/certs/ca-bundle.crt".to_string(),
        ])
        .find_map(|path| fs::read(path).ok());
    let roots = match bundle {
        Some(pem) => {
            let certs: Vec<_> = parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                RootCerts::WebPki
            } else {
                RootCerts::new_with_certs(&certs)
            }
        }
        None => RootCerts::WebPki,
    };
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .new_agent()
}

fn extract(wheel: &Path, cache: &Path) -> Result<(), String> {
    let file = fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("{}: {e}", wheel.display()))?;
    for (inner, sha) in PINNED.libs {
        let mut entry = zip
            .by_name(inner)
            .map_err(|e| format!("{inner} in the wheel: {e}"))?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("{inner}: {e}"))?;
        let got = hex(&Sha256::digest(&data));
        if !sha.is_empty() && got != *sha {
            return Err(format!("{inner} has sha256 {got}, expected {sha}"));
        }
        let dst = cache.join(file_name(inner));
        let tmp = cache.join(format!(".{}.tmp", file_name(inner)));
        write_exec(&tmp, &data).map_err(|e| format!("{}: {e}", tmp.display()))?;
        fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    Ok(())
}

fn write_exec(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Crates whose versions `llmfs bench` names in its tables: the compressors
/// it measures llmfs against.
const BENCH_CRATES: &[&str] = &[
    "zstd",
    "zstd-sys",
    "liblzma",
    "liblzma-sys",
    "flate2",
    "miniz_oxide",
    "brotli",
    "brotli-decompressor",
];

/// Emits `LLMFS_CRATE_VERSIONS` ("name=version,..."), read from Cargo.lock
/// so that the benchmark's version column cannot drift from what was built.
/// Without a lock file (a crates.io build) the column says "unknown".
fn dependency_versions() {
    let lock = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = fs::read_to_string(&lock).unwrap_or_default();
    let mut found = Vec::new();
    for package in text.split("[[package]]") {
        let field = |key: &str| {
            package.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.trim().strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(name), Some(version)) = (field("name "), field("version ")) {
            if BENCH_CRATES.contains(&name.as_str()) {
                found.push(format!("{name}={version}"));
            }
        }
    }
    found.sort();
    println!("cargo:rustc-env=LLMFS_CRATE_VERSIONS={}", found.join(","));
}
