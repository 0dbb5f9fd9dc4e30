//! `advx train`: train a model from a recipe.

use std::path::PathBuf;

use anyhow::Result;

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

pub fn run(args: Args) -> Result<()> {
    for recipe in &args.recipes {
        let dir = match &args.out {
            Some(d) => d.clone(),
            None => recipe.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        };
        let m = crate::train::run(recipe, &dir, args.device)?;
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
