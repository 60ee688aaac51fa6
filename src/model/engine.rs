//! One model engine over an llmfs model graph, and the two ways of running
//! it: the full pass (encoder path) and one-token cached steps (decoder
//! path).
//!
//! Two kinds of model graph:
//! - **float** (`models/tools/graph.py`): float32 throughout; its logits are
//!   exact only on the same runtime build, execution provider and CPU
//!   kernel class (docs/DESIGN.md, "The model contract"), so its blocks
//!   record all of that in their engine fingerprint;
//! - **integer** (`llmfs-int8-v1`, `models/tools/intmodel.py`,
//!   docs/INTEGER_MODEL.md): every value that reaches the logits is an
//!   integer, computed the same by every kernel, so its fingerprint is the
//!   model and the semantics version alone, and ONNX Runtime on any CPU or
//!   GPU, or the pure-Rust reference engine, decodes its blocks.

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::reference::{RefCache, Reference};
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

/// The initializer under which an integer model embeds its CPU variant.
const CPU_GRAPH: &str = "llmfs.cpu_graph";

/// The integer semantics this build implements (docs/INTEGER_MODEL.md).
pub const INT_SEMANTICS: &str = super::reference::SEMANTICS;
/// An integer model's logit `L` stands for `L / 2^LOGIT_FRAC` nats.
pub(super) const LOGIT_FRAC: i32 = 10;

/// The shape of a model, read from the graph's `llmfs.config` metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    pub context: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    /// An integer model (`semantics` = [`INT_SEMANTICS`]); float otherwise.
    pub integer: bool,
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
        let integer = match v.get("semantics") {
            None => false,
            Some(serde_json::Value::String(s)) if s == INT_SEMANTICS => true,
            Some(other) => {
                return Err(ModelError::BadModel(format!(
                    "model semantics {other} unknown to this llmfs (it implements {INT_SEMANTICS})"
                )))
            }
        };
        let c = ModelConfig {
            context: get("context")?,
            d_model: get("d_model")?,
            n_heads: get("n_heads")?,
            n_layers: get("n_layers")?,
            integer,
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
    /// The pure-Rust reference engine: integer models only, slower than
    /// ONNX Runtime, and available wherever llmfs builds.
    Reference,
}

impl Device {
    pub fn parse(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "reference" => Ok(Device::Reference),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Device::Cuda(n)),
                _ => Err(format!(
                    "unknown device {s:?} (cpu, cuda, cuda:N, reference)"
                )),
            },
        }
    }

    fn name(self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Cuda(n) => format!("cuda:{n}"),
            Device::Reference => "reference".into(),
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

/// Everything the logits depend on besides the input. For a float model:
/// which model, which runtime build, which execution provider and which CPU
/// kernels; a block only decodes exactly on an engine with the same
/// fingerprint. For an integer model: the model and the semantics version
/// alone (`semantics`), which every engine computes the same. Blocks record
/// its [`Fingerprint::id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub model_sha256: [u8; 32],
    /// What runs the model: `onnxruntime <version>` or `reference`.
    pub runtime: String,
    pub device: String,
    pub cpu_class: String,
    /// The integer semantics of an integer model; `None` for a float one.
    pub semantics: Option<&'static str>,
}

impl Fingerprint {
    pub fn describe(&self) -> String {
        match self.semantics {
            Some(sem) => format!(
                "model {} ({sem}, portable) on {} {}",
                hex(&self.model_sha256[..8]),
                self.runtime,
                self.device,
            ),
            None => format!(
                "model {} on {} {} ({}, graph optimisation {})",
                hex(&self.model_sha256[..8]),
                self.runtime,
                self.device,
                self.cpu_class,
                OPT_LEVEL_NAME
            ),
        }
    }

    /// First 8 bytes of the model file's sha256.
    pub fn model_id(&self) -> [u8; 8] {
        self.model_sha256[..8].try_into().unwrap()
    }

    /// Whether blocks coded on this engine decode on every engine of the
    /// same model (an integer model).
    pub fn portable(&self) -> bool {
        self.semantics.is_some()
    }

    /// First 8 bytes of the sha256 of what the logits depend on: for an
    /// integer model the model and the semantics version only, so every
    /// engine of it, on any machine, has the same id.
    pub fn id(&self) -> [u8; 8] {
        let full = match self.semantics {
            Some(sem) => format!("{}|{sem}", hex(&self.model_sha256)),
            None => format!(
                "{}|{}|{}|{}|{}",
                hex(&self.model_sha256),
                self.runtime.trim_start_matches("onnxruntime "),
                self.device,
                self.cpu_class,
                OPT_LEVEL_NAME
            ),
        };
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
    backend: Backend,
    pub config: ModelConfig,
    pub fingerprint: Fingerprint,
    /// For an integer model on ONNX Runtime: the reference engine over the
    /// same model. Loading it checks the model's bounds (which ONNX Runtime
    /// does not), and the self-test compares the two engines' logits.
    oracle: Option<Reference>,
    /// Every model run's sequence length (full passes) and batch (steps of
    /// more than one sequence) is padded to a multiple of this. The CUDA
    /// provider's int8 matrix product (cuBLAS `GemmEx`) refuses some shapes
    /// with CUBLAS_STATUS_NOT_SUPPORTED, e.g. 31 rows by 32 columns, or one
    /// column and several rows; with every dimension a multiple of 4, or one
    /// row, it took every shape probed on an H200
    /// (bench/results/2026-12-04-cuda-h200/). Padding is exact: padded
    /// positions come after the used ones under the causal mask, and padded
    /// sequences are rows of their own.
    shape_multiple: usize,
}

/// The shape multiple the CUDA provider needs (see `Engine::shape_multiple`).
const CUDA_SHAPE_MULTIPLE: usize = 4;

/// What computes the logits.
enum Backend {
    /// `cache_u8`: the graph is an integer model's CPU variant, whose cache
    /// holds `value + 128` as uint8.
    Ort { session: Session, cache_u8: bool },
    /// The pure-Rust integer engine (integer models only).
    Reference(Reference),
}

/// A key/value cache: the graph's `past_*` inputs by name, or the
/// reference engine's own.
enum Cache {
    Ort(Vec<(String, DynValue)>),
    Reference(RefCache),
}

/// The decoder's state for a batch of sequences advancing in lockstep.
pub struct DecodeState {
    batch: usize,
    /// `batch` padded to the engine's shape multiple: the cache's rows.
    rows: usize,
    cache: Option<Cache>,
    logits: Vec<f32>,
    steps: usize,
}

impl Engine {
    pub fn load(model: &[u8], options: &EngineOptions) -> Result<Engine, ModelError> {
        if options.device == Device::Reference {
            return Engine::load_reference(model);
        }
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
        // An integer model may carry a CPU variant of its graph (same
        // semantics, faster kernels; docs/INTEGER_MODEL.md): the CPU runs
        // that one, the self-test checks it against the reference engine.
        let cpu_graph = match options.device {
            Device::Cpu => cpu_variant(model),
            _ => None,
        };
        if cpu_graph.is_some() {
            log::debug!("running the model's embedded CPU variant graph");
        }
        let session = builder.commit_from_memory(cpu_graph.unwrap_or(model))?;
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
            runtime: format!("onnxruntime {}", rt.version),
            device: options.device.name(),
            cpu_class: cpu_class(),
            semantics: config.integer.then_some(INT_SEMANTICS),
        };
        let oracle = if config.integer {
            let reference = Reference::load(model)?;
            let shape = (
                reference.context(),
                reference.d_model(),
                reference.n_heads(),
                reference.n_layers(),
            );
            if shape
                != (
                    config.context,
                    config.d_model,
                    config.n_heads,
                    config.n_layers,
                )
            {
                return Err(ModelError::BadModel(format!(
                    "the graph's configuration {config:?} and its parameters {shape:?} disagree"
                )));
            }
            Some(reference)
        } else {
            None
        };
        let cache_u8 = cpu_graph.is_some();
        let shape_multiple = match options.device {
            Device::Cuda(_) => CUDA_SHAPE_MULTIPLE,
            _ => 1,
        };
        Ok(Engine {
            backend: Backend::Ort { session, cache_u8 },
            config,
            fingerprint,
            oracle,
            shape_multiple,
        })
    }

    /// The reference engine: integer models only, no ONNX Runtime needed.
    fn load_reference(model: &[u8]) -> Result<Engine, ModelError> {
        let reference = Reference::load(model)?;
        let config = ModelConfig {
            context: reference.context(),
            d_model: reference.d_model(),
            n_heads: reference.n_heads(),
            n_layers: reference.n_layers(),
            integer: true,
        };
        let fingerprint = Fingerprint {
            model_sha256: sha256(model),
            runtime: "llmfs reference engine".into(),
            device: Device::Reference.name(),
            cpu_class: cpu_class(),
            semantics: Some(INT_SEMANTICS),
        };
        Ok(Engine {
            backend: Backend::Reference(reference),
            config,
            fingerprint,
            oracle: None,
            shape_multiple: 1,
        })
    }

    /// Pads every later run's length and batch to a multiple of `multiple`
    /// (at least 1), as the CUDA engine does: the logits do not change.
    /// Lets a CPU test run the CUDA engine's shapes.
    pub fn set_shape_multiple(&mut self, multiple: usize) {
        self.shape_multiple = multiple.max(1);
    }

    /// `n` rounded up to the shape multiple.
    fn padded(&self, n: usize) -> usize {
        n.next_multiple_of(self.shape_multiple)
    }

    /// The reference engine's integer logits for `chunks` (each from BOS),
    /// when this engine runs an integer model on ONNX Runtime: the
    /// self-test's second opinion.
    pub fn reference_logits(&self, chunks: &[&[u8]]) -> Option<Result<Vec<Vec<f32>>, ModelError>> {
        let oracle = self.oracle.as_ref()?;
        Some(
            chunks
                .iter()
                .map(|c| {
                    let mut tokens = vec![BOS];
                    tokens.extend(c[..c.len().saturating_sub(1)].iter().map(|&b| i64::from(b)));
                    let mut cache = RefCache::new(oracle, 1);
                    let logits = oracle.run(&tokens, 1, tokens.len(), &mut cache)?;
                    Ok(int_logits(&logits[..c.len() * VOCAB]))
                })
                .collect(),
        )
    }

    fn empty_cache(&self, batch: usize) -> Result<Cache, ModelError> {
        let (h, dh) = (self.config.n_heads, self.config.head_dim());
        let cache_u8 = match &self.backend {
            Backend::Reference(r) => return Ok(Cache::Reference(RefCache::new(r, batch))),
            Backend::Ort { cache_u8, .. } => *cache_u8,
        };
        let mut cache = Vec::with_capacity(2 * self.config.n_layers);
        for l in 0..self.config.n_layers {
            let (k, v) = if cache_u8 {
                (
                    Tensor::<u8>::from_array(([batch, h, dh, 0], Vec::<u8>::new()))?.into_dyn(),
                    Tensor::<u8>::from_array(([batch, h, 0, dh], Vec::<u8>::new()))?.into_dyn(),
                )
            } else if self.config.integer {
                (
                    Tensor::<i8>::from_array(([batch, h, dh, 0], Vec::<i8>::new()))?.into_dyn(),
                    Tensor::<i8>::from_array(([batch, h, 0, dh], Vec::<i8>::new()))?.into_dyn(),
                )
            } else {
                (
                    Tensor::<f32>::from_array(([batch, h, dh, 0], Vec::<f32>::new()))?.into_dyn(),
                    Tensor::<f32>::from_array(([batch, h, 0, dh], Vec::<f32>::new()))?.into_dyn(),
                )
            };
            cache.push((format!("past_k_{l}"), k));
            cache.push((format!("past_v_{l}"), v));
        }
        Ok(Cache::Ort(cache))
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
            let t = self.padded(t).min(self.config.context);
            let mut tokens = Vec::with_capacity(group.len() * t);
            for (i, c) in group.iter().enumerate() {
                tokens.push(BOS);
                tokens.extend(c[..c.len().saturating_sub(1)].iter().map(|&b| i64::from(b)));
                tokens.resize((i + 1) * t, 0);
            }
            let cache = self.empty_cache(group.len())?;
            let logits = self.run(group.len(), t, tokens, cache)?.0;
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
        // One sequence is one row, a shape every provider takes.
        let rows = if batch > 1 { self.padded(batch) } else { batch };
        Ok(DecodeState {
            batch,
            rows,
            cache: Some(self.empty_cache(rows)?),
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
        let mut tokens: Vec<i64> = if state.steps == 0 {
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
        let cache = state
            .cache
            .take()
            .ok_or_else(|| ModelError::Inference("decoder state lost after an error".into()))?;
        // Padding rows read BOS, then byte 0, and their logits are dropped.
        tokens.resize(state.rows, if state.steps == 0 { BOS } else { 0 });
        let (mut logits, cache) = self.run(state.rows, 1, tokens, cache)?;
        logits.truncate(state.batch * VOCAB);
        state.logits = logits;
        state.cache = Some(cache);
        state.steps += 1;
        Ok(&state.logits)
    }

    /// One run of the model: `tokens` is `[batch, t]`, after the positions
    /// in `cache`. Returns the logits (an integer model's converted
    /// exactly: `L / 2^LOGIT_FRAC` is a float32 for every `|L| < 2^24`) and
    /// the cache with this run's positions appended.
    fn run(
        &mut self,
        batch: usize,
        t: usize,
        tokens: Vec<i64>,
        cache: Cache,
    ) -> Result<(Vec<f32>, Cache), ModelError> {
        let session = match (&mut self.backend, cache) {
            (Backend::Reference(r), Cache::Reference(mut c)) => {
                let logits = r.run(&tokens, batch, t, &mut c)?;
                return Ok((int_logits(&logits), Cache::Reference(c)));
            }
            (Backend::Ort { session, .. }, Cache::Ort(c)) => (session, c),
            _ => return Err(ModelError::Inference("cache of another engine".into())),
        };
        let (session, cache) = session;
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
        let mut outputs = session.run(inputs)?;
        let logits = if self.config.integer {
            let (shape, logits) = outputs["logits"].try_extract_tensor::<i32>()?;
            check_logits_shape(shape, batch * t)?;
            int_logits(logits)
        } else {
            let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
            check_logits_shape(shape, batch * t)?;
            logits.to_vec()
        };
        let mut new_cache = Vec::with_capacity(2 * self.config.n_layers);
        for l in 0..self.config.n_layers {
            for kind in ["k", "v"] {
                let value = outputs
                    .remove(format!("present_{kind}_{l}"))
                    .ok_or_else(|| ModelError::BadModel(format!("no present_{kind}_{l}")))?;
                new_cache.push((format!("past_{kind}_{l}"), value));
            }
        }
        Ok((logits, Cache::Ort(new_cache)))
    }
}

/// The CPU variant graph an integer model file embeds (initializer
/// `llmfs.cpu_graph`, the serialised variant), if any. A file this reader
/// cannot take apart (a float model may hold what it does not know) runs
/// as it is.
fn cpu_variant(model: &[u8]) -> Option<&[u8]> {
    let proto = super::onnx_proto::parse_model(model).ok()?;
    let tensor = proto.initializers.iter().find(|t| t.name == CPU_GRAPH)?;
    tensor.u8_bytes().ok()
}

fn check_logits_shape(shape: &[i64], rows: usize) -> Result<(), ModelError> {
    if shape.iter().product::<i64>() as usize != rows * VOCAB {
        return Err(ModelError::BadModel(format!("logits of shape {shape:?}")));
    }
    Ok(())
}

/// An integer model's logits as the floats the frequency tables take:
/// `L / 2^LOGIT_FRAC`, exact (a power-of-two scaling of an integer below
/// 2^24 in magnitude; the graph clamps to 2^20).
fn int_logits(logits: &[i32]) -> Vec<f32> {
    let scale = (-LOGIT_FRAC as f32).exp2();
    logits.iter().map(|&l| l as f32 * scale).collect()
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
