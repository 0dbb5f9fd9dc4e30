//! Forward against forward+backward: for each model and batch size, the
//! median time of one ONNX Runtime run of the model and of its exported
//! xent backward graph (`backward/<model>.xent.onnx`, which computes the
//! scores, the per-sample loss and the input gradient). The ratio is the
//! cost of a gradient in forward passes; reverse mode's cheap-gradient
//! principle puts it near 2 to 3 for these networks.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ndarray::{Array1, ArrayD, IxDyn};
use serde::Serialize;

use super::{Options, machine::Machine, say};
use crate::grad::names;
use crate::runtime::{Feed, Model, Runtime};

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub batch: usize,
    /// Median milliseconds of one run.
    pub forward_ms: f64,
    pub forward_backward_ms: f64,
    /// forward+backward time over forward time.
    pub ratio: f64,
    pub forward_images_per_second: f64,
    pub forward_backward_images_per_second: f64,
    /// f32 FLOPs per image of each graph (2 × the counted multiply-adds).
    pub forward_flops: f64,
    pub forward_backward_flops: f64,
    pub forward_gflops: f64,
    pub forward_backward_gflops: f64,
    pub forward_peak_fraction: f64,
    pub forward_backward_peak_fraction: f64,
}

pub fn run(options: &Options, model: &str, machine: &Machine) -> Result<Vec<Row>> {
    let rt = Runtime::get()?;
    let (forward_path, backward_path) = (super::model_path(options, model), super::backward_path(options, model)?);
    let forward_flops = 2.0 * super::flops::macs_per_example(&crate::onnx::load(&forward_path)?)?;
    let backward_flops = 2.0 * super::flops::macs_per_example(&crate::onnx::load(&backward_path)?)?;
    let mut forward = rt.load(&forward_path, options.device)?;
    let mut backward = rt
        .load(&backward_path, options.device)
        .with_context(|| format!("the backward graph of {model} (make it with `advx grad`)"))?;
    let input = forward.input_names().into_iter().next().context("the model has no input")?;
    let mut rows = Vec::new();
    for &batch in &options.batches {
        let batch = batch.max(1);
        let images = ArrayD::from_shape_fn(IxDyn(&[batch, 1, 28, 28]), |ix| {
            ((ix[0] * 31 + ix[2] * 7 + ix[3]) % 17) as f32 / 17.0
        });
        let targets: ArrayD<i64> = Array1::from_shape_fn(batch, |i| (i % 10) as i64).into_dyn();
        let f = time(options.seconds, || run_once(&mut forward, &[(&input, Feed::F32(images.view()))]))?;
        let fb = time(options.seconds, || {
            run_once(&mut backward, &[(&input, Feed::F32(images.view())), (names::TARGET, Feed::I64(targets.view()))])
        })?;
        let (f, fb) = (f.as_secs_f64(), fb.as_secs_f64());
        let rate = |seconds: f64| batch as f64 / seconds;
        let gflops = |flops: f64, seconds: f64| flops * rate(seconds) / 1e9;
        let row = Row {
            model: model.to_string(),
            batch,
            forward_ms: f * 1e3,
            forward_backward_ms: fb * 1e3,
            ratio: fb / f,
            forward_images_per_second: rate(f),
            forward_backward_images_per_second: rate(fb),
            forward_flops,
            forward_backward_flops: backward_flops,
            forward_gflops: gflops(forward_flops, f),
            forward_backward_gflops: gflops(backward_flops, fb),
            forward_peak_fraction: machine.fraction(gflops(forward_flops, f)),
            forward_backward_peak_fraction: machine.fraction(gflops(backward_flops, fb)),
        };
        say(&format!("backward {model} batch {batch}: ratio {:.2}", row.ratio));
        rows.push(row);
    }
    Ok(rows)
}

fn run_once(model: &mut Model, feeds: &[(&str, Feed)]) -> Result<()> {
    model.run(feeds).map(|_| ())
}

/// The median of repeated runs after a warm-up: at least 5 runs and
/// `seconds` of them.
fn time(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    for _ in 0..3 {
        f()?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || start.elapsed().as_secs_f64() < seconds {
        crate::interrupt::check()?;
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}
