//! One ONNX Runtime session over an llmfs model graph, and the two ways of
//! running it: the full pass (encoder path) and one-token cached steps
//! (decoder path). `models/tools/graph.py` documents the graph's inputs and
//! outputs; DESIGN.md's "model contract" says why both paths give
//! bitwise-equal logits.

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::runtime::runtime;
use super::ModelError;
use super::{hex, sha256};

/// Byte symbols; token 256 is BOS, which starts every chunk.
pub const VOCAB: usize = 256;
pub const BOS: i64 = 256;
/// Graph optimisation level, part of the engine fingerprint: encoder and
/// decoder must use the same one (the model contract, rule 1).
const OPT_LEVEL: GraphOptimizationLevel = GraphOptimizationLevel::Level1;
const OPT_LEVEL_NAME: &str = "basic";
/// Most chunks per full-pass run: bounds the attention scratch memory
/// (batch x heads x context^2 floats).
const SCORE_BATCH: usize = 32;

/// The shape of a model, read from the graph's `llmfs.config` metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    pub context: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
}

impl ModelConfig {
    fn parse(json: &str) -> Result<ModelConfig, ModelError> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ModelError::BadModel(e.to_string()))?;
        let get = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .filter(|&x| x > 0 && x <= 1 << 16)
                .map(|x| x as usize)
                .ok_or_else(|| ModelError::BadModel(format!("config lacks a valid {k}")))
        };
        let c = ModelConfig {
            context: get("context")?,
            d_model: get("d_model")?,
            n_heads: get("n_heads")?,
            n_layers: get("n_layers")?,
        };
        if c.d_model % c.n_heads != 0 || c.context < 2 {
            return Err(ModelError::BadModel(format!("inconsistent config {json}")));
        }
        Ok(c)
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
}

impl Device {
    pub fn parse(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Device::Cuda(n)),
                _ => Err(format!("unknown device {s:?} (cpu, cuda, cuda:N)")),
            },
        }
    }

    fn name(self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Cuda(n) => format!("cuda:{n}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    pub device: Device,
    /// Intra-op threads; the logits do not depend on it.
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            device: Device::Cpu,
            threads: 1,
        }
    }
}

/// Everything the logits depend on besides the input: which model, which
/// runtime build, which execution provider and which CPU kernels. Blocks
/// record its [`Fingerprint::id`]; a block only decodes exactly on an engine
/// with the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub model_sha256: [u8; 32],
    pub runtime: String,
    pub device: String,
    pub cpu_class: String,
}

impl Fingerprint {
    pub fn describe(&self) -> String {
        format!(
            "model {} on onnxruntime {} {} ({}, graph optimisation {})",
            hex(&self.model_sha256[..8]),
            self.runtime,
            self.device,
            self.cpu_class,
            OPT_LEVEL_NAME
        )
    }

    /// First 8 bytes of the model file's sha256.
    pub fn model_id(&self) -> [u8; 8] {
        self.model_sha256[..8].try_into().unwrap()
    }

    /// First 8 bytes of the sha256 of the full description.
    pub fn id(&self) -> [u8; 8] {
        let full = format!(
            "{}|{}|{}|{}|{}",
            hex(&self.model_sha256),
            self.runtime,
            self.device,
            self.cpu_class,
            OPT_LEVEL_NAME
        );
        sha256(full.as_bytes())[..8].try_into().unwrap()
    }
}

/// The CPU feature class that decides which MLAS kernels run (and so the
/// last bits of every float).
pub fn cpu_class() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "x86_64-avx512f".into()
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            "x86_64-avx2-fma".into()
        } else if std::arch::is_x86_feature_detected!("avx") {
            "x86_64-avx".into()
        } else {
            "x86_64-sse2".into()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.into()
    }
}

pub struct Engine {
    session: Session,
    pub config: ModelConfig,
    pub fingerprint: Fingerprint,
}

/// A key/value cache: the graph's `past_*` inputs by name.
type Cache = Vec<(String, DynValue)>;

/// The decoder's state for a batch of sequences advancing in lockstep.
pub struct DecodeState {
    batch: usize,
    cache: Cache,
    logits: Vec<f32>,
    steps: usize,
}

impl Engine {
    pub fn load(model: &[u8], options: &EngineOptions) -> Result<Engine, ModelError> {
        let rt = runtime()?;
        let mut builder = Session::builder(&rt.environment)?
            .with_optimization_level(OPT_LEVEL)
            .map_err(ort::Error::from)?
            .with_intra_threads(options.threads.max(1))
            .map_err(ort::Error::from)?
            .with_inter_threads(1)
            .map_err(ort::Error::from)?
            // Spinning workers only steal the core from the other engine
            // or from FUSE threads; the logits do not depend on it.
            .with_intra_op_spinning(false)
            .map_err(ort::Error::from)?;
        if let Device::Cuda(id) = options.device {
            builder = with_cuda(builder, id)?;
        }
        let session = builder.commit_from_memory(model)?;
        let config_json = session
            .metadata()?
            .custom("llmfs.config")
            .ok_or_else(|| ModelError::BadModel("no llmfs.config metadata".into()))?;
        let config = ModelConfig::parse(&config_json)?;
        let expected_inputs = 1 + 2 * config.n_layers;
        if session.inputs().len() != expected_inputs || session.outputs().len() != expected_inputs {
            return Err(ModelError::BadModel(format!(
                "expected {expected_inputs} inputs and outputs for {} layers",
                config.n_layers
            )));
        }
        let fingerprint = Fingerprint {
            model_sha256: sha256(model),
            runtime: rt.version.clone(),
            device: options.device.name(),
            cpu_class: cpu_class(),
        };
        Ok(Engine {
            session,
            config,
            fingerprint,
        })
    }

    fn empty_cache(&self, batch: usize) -> Result<Cache, ModelError> {
        let (h, dh) = (self.config.n_heads, self.config.head_dim());
        let mut cache = Vec::with_capacity(2 * self.config.n_layers);
        for l in 0..self.config.n_layers {
            let k = Tensor::<f32>::from_array(([batch, h, dh, 0], Vec::<f32>::new()))?;
            let v = Tensor::<f32>::from_array(([batch, h, 0, dh], Vec::<f32>::new()))?;
            cache.push((format!("past_k_{l}"), k.into_dyn()));
            cache.push((format!("past_v_{l}"), v.into_dyn()));
        }
        Ok(cache)
    }

    /// The full pass over `chunks` (each at most `context` bytes): for chunk
    /// `i` and position `t < chunks[i].len()`, the logits predicting
    /// `chunks[i][t]` from BOS and `chunks[i][..t]` are at
    /// `out[i][t * VOCAB..(t + 1) * VOCAB]`.
    pub fn score(&mut self, chunks: &[&[u8]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(chunks.len());
        for group in chunks.chunks(SCORE_BATCH) {
            let t = group.iter().map(|c| c.len()).max().unwrap_or(0);
            if t == 0 {
                out.extend(group.iter().map(|_| Vec::new()));
                continue;
            }
            if t > self.config.context {
                return Err(ModelError::Inference(format!(
                    "chunk of {t} bytes exceeds the model context {}",
                    self.config.context
                )));
            }
            // Shorter chunks are padded at the end: the causal mask keeps
            // padding from touching the rows that are used.
            let mut tokens = Vec::with_capacity(group.len() * t);
            for (i, c) in group.iter().enumerate() {
                tokens.push(BOS);
                tokens.extend(c[..c.len().saturating_sub(1)].iter().map(|&b| i64::from(b)));
                tokens.resize((i + 1) * t, 0);
            }
            let logits = self.run(group.len(), t, tokens, None)?.0;
            for (i, c) in group.iter().enumerate() {
                let row = i * t * VOCAB;
                out.push(logits[row..row + c.len() * VOCAB].to_vec());
            }
        }
        Ok(out)
    }

    /// A decoder for `batch` sequences; the first [`Engine::step`] takes
    /// no tokens and yields the predictions for each sequence's first byte.
    pub fn decoder(&self, batch: usize) -> Result<DecodeState, ModelError> {
        Ok(DecodeState {
            batch,
            cache: self.empty_cache(batch)?,
            logits: Vec::new(),
            steps: 0,
        })
    }

    /// Advances every sequence of `state` by one byte (`prev[i]` for
    /// sequence `i`; empty on the first step) and returns the logits for
    /// the next byte of each, `VOCAB` per sequence.
    pub fn step<'s>(
        &mut self,
        state: &'s mut DecodeState,
        prev: &[u8],
    ) -> Result<&'s [f32], ModelError> {
        let tokens: Vec<i64> = if state.steps == 0 {
            vec![BOS; state.batch]
        } else {
            if prev.len() != state.batch {
                return Err(ModelError::Inference(format!(
                    "step with {} tokens for a batch of {}",
                    prev.len(),
                    state.batch
                )));
            }
            prev.iter().map(|&b| i64::from(b)).collect()
        };
        if state.steps >= self.config.context {
            return Err(ModelError::Inference(format!(
                "decoder stepped past the model context {}",
                self.config.context
            )));
        }
        let cache = std::mem::take(&mut state.cache);
        let (logits, cache) = self.run(state.batch, 1, tokens, Some(cache))?;
        state.logits = logits;
        state.cache = cache;
        state.steps += 1;
        Ok(&state.logits)
    }

    /// One run of the graph: `tokens` is `[batch, t]`; with no cache, an
    /// empty one. Returns the logits and, when a cache was given, the new
    /// cache.
    fn run(
        &mut self,
        batch: usize,
        t: usize,
        tokens: Vec<i64>,
        cache: Option<Cache>,
    ) -> Result<(Vec<f32>, Cache), ModelError> {
        let keep_cache = cache.is_some();
        let cache = match cache {
            Some(c) => c,
            None => self.empty_cache(batch)?,
        };
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(1 + cache.len());
        inputs.push((
            "tokens".into(),
            Tensor::<i64>::from_array(([batch, t], tokens))?
                .into_dyn()
                .into(),
        ));
        for (name, value) in cache {
            inputs.push((name, value.into()));
        }
        let mut outputs = self.session.run(inputs)?;
        let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
        if shape.iter().product::<i64>() as usize != batch * t * VOCAB {
            return Err(ModelError::BadModel(format!("logits of shape {shape:?}")));
        }
        let logits = logits.to_vec();
        let mut new_cache = Vec::new();
        if keep_cache {
            for l in 0..self.config.n_layers {
                for kind in ["k", "v"] {
                    let value = outputs
                        .remove(format!("present_{kind}_{l}"))
                        .ok_or_else(|| ModelError::BadModel(format!("no present_{kind}_{l}")))?;
                    new_cache.push((format!("past_{kind}_{l}"), value));
                }
            }
        }
        Ok((logits, new_cache))
    }
}

#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
    id: i32,
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    use ort::ep::ExecutionProvider;
    let cuda = ort::ep::CUDA::default().with_device_id(id);
    match ort::ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(ModelError::Device {
                device: format!("cuda:{id}"),
                detail: "this ONNX Runtime build has no CUDA provider".into(),
            })
        }
        Err(e) => {
            return Err(ModelError::Device {
                device: format!("cuda:{id}"),
                detail: e.to_string(),
            })
        }
    }
    builder
        .with_execution_providers([cuda.build().error_on_failure()])
        .map_err(|e| ModelError::Device {
            device: format!("cuda:{id}"),
            detail: format!(
                "{e} (the CUDA provider needs the CUDA runtime and cuDNN libraries on the library path)"
            ),
        })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _builder: ort::session::builder::SessionBuilder,
    id: i32,
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    Err(ModelError::Device {
        device: format!("cuda:{id}"),
        detail:
            "llmfs was built without the `cuda` feature (cargo build --release --features cuda)"
                .into(),
    })
}
