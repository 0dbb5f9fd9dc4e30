//! Forward against forward+backward time of the exported xent backward
//! graphs, at batch 256 on the CPU (issue: "the ratio should be at most 3").
//!
//! Run with `cargo bench --bench backward`; results are printed as a table
//! and written to `target/bench/backward.yaml`.

use std::path::Path;
use std::time::{Duration, Instant};

use advx::grad::{self, Objective, names};
use advx::runtime::{Device, Feed, Model, Runtime};
use anyhow::Result;
use ndarray::{Array1, ArrayD, IxDyn};

const BATCH: usize = 256;
const MODELS: &[&str] = &["models/mnist/fc200-200-10.onnx", "models/mnist/cnn.onnx"];

fn main() -> Result<()> {
    let rt = Runtime::get()?;
    println!("ONNX Runtime {} on the CPU, {} threads, batch {BATCH}", rt.version(), rt.threads());
    println!("{:<34} {:>12} {:>16} {:>7}", "model", "forward", "forward+backward", "ratio");
    let mut rows = Vec::new();
    for path in MODELS {
        let path = Path::new(path);
        let model = advx::onnx::load(path)?;
        let mut forward = rt.load(path, Device::Cpu)?;
        let mut backward = rt.load_proto(&grad::export(&model, &Objective::Xent)?, "backward", Device::Cpu)?;
        let images = ArrayD::from_shape_fn(IxDyn(&[BATCH, 1, 28, 28]), |ix| {
            ((ix[0] * 31 + ix[2] * 7 + ix[3]) % 17) as f32 / 17.0
        });
        let targets: ArrayD<i64> = Array1::from_shape_fn(BATCH, |i| (i % 10) as i64).into_dyn();
        let input = forward.input_names()[0].clone();
        let f = time(|| run(&mut forward, &[(&input, Feed::F32(images.view()))]))?;
        let fb = time(|| {
            run(&mut backward, &[(&input, Feed::F32(images.view())), (names::TARGET, Feed::I64(targets.view()))])
        })?;
        let ratio = fb.as_secs_f64() / f.as_secs_f64();
        println!("{:<34} {:>10.3}ms {:>14.3}ms {:>7.2}", path.display(), ms(f), ms(fb), ratio);
        rows.push(format!(
            "- model: {}\n  batch: {BATCH}\n  forward_ms: {:.4}\n  forward_backward_ms: {:.4}\n  ratio: {ratio:.3}\n",
            path.display(),
            ms(f),
            ms(fb)
        ));
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/backward.yaml", rows.concat())?;
    Ok(())
}

fn run(model: &mut Model, feeds: &[(&str, Feed)]) -> Result<()> {
    model.run(feeds).map(|_| ())
}

/// The median of repeated runs after a warm-up, for at least a second.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    for _ in 0..5 {
        f()?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 20 || start.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
