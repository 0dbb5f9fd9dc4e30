//! `advx train`: train a model from a recipe.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::runtime::Device;

/// Train a model from a YAML recipe (see models/README.md).
///
/// Writes <name>.onnx, its xent backward graph <name>.grad.onnx and the
/// manifest <name>.yaml (training and test error, parameter count, recipe
/// hash, training time) into the output directory.
#[derive(clap::Args)]
pub struct Args {
    /// The recipe file(s).
    #[arg(required = true)]
    recipes: Vec<PathBuf>,
    /// Where to write the model [default: the recipe's directory].
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// cpu, cuda[:N] or auto.
    #[arg(long, default_value = "cpu")]
    device: Device,
}

/// Ctrl-C or SIGTERM stops the training within a step: the models of the
/// recipes already done stay, the one in training is not written as the
/// recipe's model (its weights are not that), the model after its last
/// finished epoch stays in `<name>.checkpoint.onnx`, and advx exits 130 or
/// 143.
pub fn run(args: Args) -> Result<()> {
    crate::interrupt::catch_signals();
    let device = crate::runtime::Runtime::get()?.announce(args.device);
    for (done, recipe) in args.recipes.iter().enumerate() {
        let dir = match &args.out {
            Some(d) => d.clone(),
            None => recipe.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        };
        let m = crate::train::run(recipe, &dir, device).with_context(|| match done {
            0 => format!("{}", recipe.display()),
            _ => format!("{} (the {done} model(s) trained before it are written)", recipe.display()),
        })?;
        println!(
            "{:<18} train error {:>6.2}%  test error {:>6.2}%  {} parameters  {:.0} s",
            m.name,
            100.0 * m.train_error,
            100.0 * m.test_error,
            m.parameters,
            m.training_seconds
        );
    }
    Ok(())
}
