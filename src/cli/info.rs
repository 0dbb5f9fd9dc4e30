//! `advx info`: what is inside an ONNX model, its tensors (the layers
//! `units` and `visualize` name), and whether advx can differentiate it.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::grad::{self, Unsupported};
use crate::onnx::summary::{Summary, Tensors};
use crate::onnx::{self, ModelProto};

/// Inputs, outputs, ops and parameter count of an ONNX model, every node
/// output with its inferred shape, and the result of the checks `advx grad`
/// makes first. Exits 1 for an invalid model.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let model = onnx::load(&args.model)?;
    let mut text = format!("{}\n{}\n", args.model.display(), Summary::of(&model));
    let manifest = crate::train::manifest::path_for(&args.model);
    if let Some(m) = crate::train::Manifest::for_model(&args.model) {
        text += &format!(
            "  manifest:   {} (train error {:.2}%, test error {:.2}%)\n",
            manifest.display(),
            100.0 * m.train_error,
            100.0 * m.test_error
        );
    }
    text += &format!("{}\n", tensors(&model));
    let verdict = grad::validate(&model);
    text += &match &verdict {
        Ok(()) => "  check:      valid (every node's inputs, attributes and shapes agree)\n".to_string(),
        Err(e) if e.chain().any(|c| c.is::<Unsupported>()) => {
            format!("  check:      not differentiable by advx: {e:#}\n")
        }
        Err(e) => format!("  check:      invalid: {e:#}\n"),
    };
    print(&text)?;
    if verdict.is_err_and(|e| !e.chain().any(|c| c.is::<Unsupported>())) {
        bail!("{} is not a valid model", args.model.display());
    }
    Ok(())
}

/// Writes to stdout; a reader that stops early (`advx info m.onnx | head`
/// on a long list of tensors) ends the output, not the process in a panic.
fn print(text: &str) -> Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The model's node outputs with the shapes advx infers (the batch as N).
pub fn tensors(model: &ModelProto) -> Tensors {
    let (inferred, stopped) = grad::infer_tensors(model);
    let inferred: HashMap<String, _> = inferred.into_iter().map(|t| (t.name, (t.elem, t.shape))).collect();
    Tensors::of(model, &inferred, stopped.map(|e| format!("{e:#}")))
}
