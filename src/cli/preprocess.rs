//! `--scale`, `--mean`, `--std`: a model's preprocessing on the command
//! line, as a script's `model m = onnx "..." { scale, mean, std }` declares it.

use crate::runtime::Preprocess;

/// What the models do to pixels x in [0, 1] before their first layer.
#[derive(clap::Args, Clone, Debug)]
pub struct Preprocessing {
    /// The models take (scale · x − mean) / std of pixels x in [0, 1]: scale, e.g. 255.
    #[arg(long)]
    scale: Option<f32>,
    /// Per-channel mean (in scaled units), e.g. 0.485,0.456,0.406.
    #[arg(long, value_delimiter = ',')]
    mean: Vec<f32>,
    /// Per-channel standard deviation (in scaled units), e.g. 0.229,0.224,0.225.
    #[arg(long, value_delimiter = ',')]
    std: Vec<f32>,
}

impl From<Preprocessing> for Preprocess {
    fn from(args: Preprocessing) -> Preprocess {
        Preprocess { scale: args.scale, mean: args.mean, std: args.std }
    }
}
