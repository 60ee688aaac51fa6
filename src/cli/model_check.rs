//! `llmfs model-check`: loads a model on an engine, runs the self-test and
//! prints the engine's fingerprint and the digest of its logits on a fixed
//! input. For an integer model that digest is the same on every machine
//! and engine; comparing it across machines (or under emulated CPUs) is
//! how portability is checked.

use std::process::ExitCode;

use clap::Args;

use super::compress::ModelArgs;
use super::error::CliError;
use crate::model::{logits_digest, self_test, Engine};

#[derive(Args, Debug, Clone)]
pub struct ModelCheckArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ModelCheckArgs) -> Result<ExitCode, CliError> {
    let bytes = args.model.model_bytes()?;
    let mut engine = Engine::load(&bytes, &args.model.options())?;
    let self_test = self_test(&mut engine);
    let digest = logits_digest(&mut engine)?;
    let fp = &engine.fingerprint;
    if args.json {
        let doc = serde_json::json!({
            "model_sha256": crate::model::hex(&fp.model_sha256),
            "engine": fp.describe(),
            "engine_id": crate::model::hex(&fp.id()),
            "portable": fp.portable(),
            "semantics": fp.semantics,
            "cpu_class": fp.cpu_class,
            "self_test": self_test.as_ref().map_or_else(|e| e.to_string(), |_| "passed".into()),
            "logits_sha256": digest,
        });
        println!("{doc}");
    } else {
        println!("model          {}", crate::model::hex(&fp.model_sha256));
        println!("engine         {}", fp.describe());
        println!("engine id      {}", crate::model::hex(&fp.id()));
        println!(
            "portable       {}",
            if fp.portable() {
                "yes: any engine of this model decodes its blocks"
            } else {
                "no: float model, its blocks decode on this engine class only"
            }
        );
        match &self_test {
            Ok(()) => println!("self-test      passed"),
            Err(e) => println!("self-test      FAILED: {e}"),
        }
        println!("logits sha256  {digest}");
    }
    Ok(if self_test.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
