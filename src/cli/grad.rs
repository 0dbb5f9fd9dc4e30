//! `advx grad`: export a backward graph.

use std::path::PathBuf;

use anyhow::Result;

use crate::grad::{self, Objective, ops};
use crate::onnx;

/// Export the backward graph of an ONNX model as another ONNX model.
///
/// The exported graph takes the model's inputs (plus `target` or
/// `direction`) and returns the model's outputs, the per-sample `loss`, and
/// `grad.<tensor>` for each gradient. It runs in ONNX Runtime, opens in
/// Netron and passes onnx.checker. Its metadata records the model's
/// SHA-256, the objective and the advx that exported it, and the file is
/// written atomically: a failed write leaves any earlier file as it was.
#[derive(clap::Args)]
pub struct Args {
    /// The model to differentiate.
    #[arg(required_unless_present = "ops")]
    model: Option<PathBuf>,
    /// What to differentiate: `xent` (per-sample cross-entropy against an
    /// int64 `target`, gradient for the input), `direction:TENSOR`
    /// (per-sample <TENSOR, direction>), `train` (batch-mean
    /// cross-entropy, gradients for every weight), `reconstruction:mse` or
    /// `reconstruction:bce` (autoencoder training).
    #[arg(long, default_value = "xent")]
    objective: Objective,
    /// Where to write the backward graph [default: backward/MODEL.OBJECTIVE.onnx beside MODEL].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// List the ops advx can differentiate, with their derivatives, and exit.
    #[arg(long)]
    ops: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.ops {
        for rule in ops::RULES {
            println!("{:<20} {}", rule.op, rule.grads);
        }
        return Ok(());
    }
    let path = args.model.expect("clap requires MODEL unless --ops");
    let backward = grad::export_file(&path, &args.objective)?;
    let out = args.output.unwrap_or_else(|| grad::backward_path(&path, &args.objective));
    onnx::save(&backward, &out)?;
    let graph = onnx::graph(&backward);
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    println!("wrote {} ({} nodes; outputs: {})", out.display(), graph.node.len(), outputs.join(", "));
    Ok(())
}
