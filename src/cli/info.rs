//! `advx info`: what is inside an ONNX model, and whether advx can
//! differentiate it.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::grad::{self, Unsupported};
use crate::onnx::{self, summary::Summary};

/// Inputs, outputs, ops and parameter count of an ONNX model, and the
/// result of the checks `advx grad` makes first. Exits 1 for an invalid model.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let model = onnx::load(&args.model)?;
    println!("{}", args.model.display());
    println!("{}", Summary::of(&model));
    let manifest = crate::train::manifest::path_for(&args.model);
    if let Some(m) = crate::train::Manifest::for_model(&args.model) {
        println!(
            "  manifest:   {} (train error {:.2}%, test error {:.2}%)",
            manifest.display(),
            100.0 * m.train_error,
            100.0 * m.test_error
        );
    }
    match grad::validate(&model) {
        Ok(()) => println!("  check:      valid (every node's inputs, attributes and shapes agree)"),
        Err(e) if e.chain().any(|c| c.is::<Unsupported>()) => {
            println!("  check:      not differentiable by advx: {e:#}")
        }
        Err(e) => {
            println!("  check:      invalid: {e:#}");
            bail!("{} is not a valid model", args.model.display());
        }
    }
    Ok(())
}
