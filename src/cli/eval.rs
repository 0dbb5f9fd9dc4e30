//! `advx eval`: error rates of models on a dataset.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::data::{self, DataSpec};
use crate::runtime::{Device, Preprocess};
use crate::session::LoadedModel;
use crate::train::Manifest;

/// Error rates of models on a dataset, beside their manifests' figures.
#[derive(clap::Args)]
pub struct Args {
    /// ONNX classifiers taking [N,C,H,W] pixels in [0,1] (the data's shape).
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Dataset and split, e.g. mnist:test, fashion-mnist:train or cifar10; or files with labels:
    /// images:DIR (one subfolder per class, or a labels.csv) or numpy:FILE (.npz, or .npy with
    /// FILE_labels.npy beside it).
    #[arg(long, default_value = "mnist:test")]
    data: DataSpec,
    /// Only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// cpu, cuda[:N] or auto.
    #[arg(long, default_value = "auto")]
    device: Device,
    /// Also print each class's error rate.
    #[arg(long)]
    per_class: bool,
    #[command(flatten)]
    preprocess: super::preprocess::Preprocessing,
}

/// Ctrl-C or SIGTERM stops the model being evaluated: the rows printed
/// stay, and advx exits 130 or 143.
pub fn run(args: Args) -> Result<()> {
    crate::interrupt::catch_signals();
    let mut set = args.data.load()?;
    if let Some(n) = args.limit {
        set = set.slice(0..n.min(set.len()))?;
    }
    if set.is_empty() {
        bail!("no images to evaluate on: {} limited to {} images", args.data, set.len());
    }
    println!("{} images of {}", set.len(), args.data);
    println!("{:<40} {:>10} {:>10} {:>8}", "model", "error", "manifest", "device");
    let device = crate::runtime::Runtime::get()?.announce(args.device);
    let preprocess = Preprocess::from(args.preprocess.clone());
    let mut failures = 0;
    for path in &args.models {
        crate::interrupt::check()?;
        match evaluate_one(path, &set, device, &preprocess) {
            Ok(Row { rate, per_class, recorded, device }) => {
                let recorded = recorded.map_or("-".to_string(), |r| format!("{:.2}%", 100.0 * r));
                println!("{:<40} {:>9.2}% {:>10} {:>8}", path.display(), 100.0 * rate, recorded, device.to_string());
                if args.per_class {
                    let rate = |e: f64| if e.is_nan() { "-".to_string() } else { format!("{:.1}%", 100.0 * e) };
                    let cells: Vec<String> =
                        per_class.iter().enumerate().map(|(c, &e)| format!("{c}: {}", rate(e))).collect();
                    println!("    {}", cells.join("  "));
                }
            }
            // The rows printed stay; the rest is not evaluated.
            Err(e) if crate::interrupt::is_interrupted(&e) => return Err(e),
            Err(e) => {
                failures += 1;
                eprintln!("error: {}: {e:#}", path.display());
            }
        }
    }
    anyhow::ensure!(failures == 0, "{failures} of {} models could not be evaluated", args.models.len());
    Ok(())
}

/// One model's line of the table.
struct Row {
    rate: f64,
    per_class: Vec<f64>,
    /// The manifest's error on the same split, when the whole split was evaluated.
    recorded: Option<f64>,
    /// Where the model ran (what `auto` chose).
    device: Device,
}

/// The model as a script's `model` statement loads it, so that an NHWC,
/// flat, fixed-batch or normalising model runs adapted, as it would there.
fn evaluate_one(path: &Path, set: &data::Dataset, device: Device, preprocess: &Preprocess) -> Result<Row> {
    let model = LoadedModel::load(&path.display().to_string(), path, device, preprocess.clone())?;
    model.check_shape("eval", &set.name, set.images.shape())?;
    let mut classifier = model.classifier()?;
    let eval = classifier
        .evaluate(set.images.view(), &set.labels)
        .with_context(|| format!("evaluating {}", path.display()))?;
    let manifest = Manifest::for_model(path);
    let recorded = manifest.filter(|m| m.dataset == set.name).and_then(|m| match set.split {
        data::Split::Test if set.len() == 10000 => Some(m.test_error),
        _ => None,
    });
    Ok(Row {
        rate: eval.error_rate(),
        per_class: eval.per_class_error(),
        recorded,
        device: classifier.model().device(),
    })
}
