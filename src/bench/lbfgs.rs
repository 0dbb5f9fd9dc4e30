//! The attack benchmark: the paper's box-constrained L-BFGS with its
//! search over c (`attack::search`, default options, random targets from a
//! fixed seed) on the first test images (MNIST's, or `--data`), three ways:
//!
//! - advx as it runs by default (the search, then the refinement);
//! - advx with `refine: false`, the paper's method alone;
//! - for the models named by `--reference`, the usual way: scipy's
//!   `fmin_l_bfgs_b` per example, ONNX Runtime (Python) evaluating the same
//!   exported backward graph at batch 1, the same search
//!   (`bench/reference/lbfgs_scipy.py`), on the (image, target) pairs advx
//!   attacked (written to `<out>-reference/<model>/`), with one ORT
//!   intra-op thread, its fastest at batch 1 (14.6 examples/s against 9.3
//!   with two on the 2-core machine this was written on).
//!
//! The reference keeps scipy's stopping rules; advx stops each L-BFGS-B run
//! at f32's rounding (`search::F32_NOISE`, README.md section Benchmarks).
//!
//! Only the attack is timed, never loading models or data, on both sides.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Axis, s};
use serde::{Deserialize, Serialize};

use super::{Options, machine::Machine, say};
use crate::attack::search::{self, Found};
use crate::attack::target::Target;
use crate::attack::workers;
use crate::runtime::Device;
use crate::session::LoadedModel;
use crate::stats::{mean, median};

/// ONNX Runtime intra-op threads of the reference: its calls are single
/// images, where a second thread only adds hand-offs.
const REFERENCE_THREADS: usize = 1;

/// Examples per ONNX Runtime call when `--attack-batch` is not given: on
/// the CPU the attack's default (a small batch per core); on a GPU a large
/// one, since a call costs about the same at 25 images as at 1000.
pub fn default_batch(device: Device) -> usize {
    match device {
        Device::Cpu => search::Options::default().batch,
        _ => GPU_BATCH,
    }
}

const GPU_BATCH: usize = 1000;

/// One way of running the attack on one model.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub method: String,
    /// Examples attacked (those with a target).
    pub examples: usize,
    pub seconds: f64,
    pub examples_per_second: f64,
    /// CPU time of the whole process (every thread) during the attack, and
    /// examples per CPU-second: less sensitive than wall time to other
    /// work on the machine, but it counts ONNX Runtime's spinning threads.
    pub cpu_seconds: Option<f64>,
    pub examples_per_cpu_second: Option<f64>,
    pub success_rate: f64,
    /// Average minimum distortion sqrt(Σr²/n) over the successes.
    pub mean_distortion: f64,
    pub median_distortion: f64,
    pub evaluations_per_example: f64,
    pub iterations_per_example: f64,
    /// Gradient evaluations × the backward graph's FLOPs, per second.
    pub gflops: f64,
    pub peak_fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<serde_json::Value>,
    /// Per example, in the order attacked: (index, success, distortion).
    #[serde(skip)]
    pub outcomes: Vec<(usize, bool, f64)>,
}

/// advx against the reference on one model.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Examples the reference attacked (the first ones advx attacked).
    pub examples: usize,
    /// Examples both succeeded on; the distortion ratios are over these.
    pub common_successes: usize,
    /// advx's examples per second over the reference's.
    pub speed_ratio: f64,
    pub speed_ratio_no_refine: f64,
    /// The same ratios in examples per CPU-second.
    pub cpu_speed_ratio: Option<f64>,
    pub cpu_speed_ratio_no_refine: Option<f64>,
    /// advx's average minimum distortion over the reference's (< 1: advx's are smaller).
    pub distortion_ratio: f64,
    pub distortion_ratio_no_refine: f64,
    /// advx's evaluations per example over the reference's.
    pub evaluations_ratio_no_refine: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub images: usize,
    /// Examples per ONNX Runtime call.
    pub batch: usize,
    pub target: String,
    /// f32 FLOPs of one gradient evaluation of one example (the xent
    /// backward graph, its forward part included).
    pub flops_per_evaluation: f64,
    pub advx: Run,
    pub advx_no_refine: Run,
    pub reference: Option<Run>,
    pub comparison: Option<Comparison>,
}

pub fn run(options: &Options, model: &str, machine: &Machine) -> Result<Row> {
    let test = options.data.load()?;
    let n = options.images.min(test.len());
    let images = test.images.slice(s![..n, .., .., ..]);
    let labels = &test.labels[..n];
    let loaded =
        LoadedModel::load(model, &super::model_path(options, model), options.device, options.preprocess.clone())?;
    loaded.check_shape("bench lbfgs", &options.data.to_string(), images.shape())?;
    let (model_path, backward_path) = (loaded.file()?.to_path_buf(), loaded.backward()?.to_path_buf());
    let flops = 2.0 * super::flops::macs_per_example(&crate::onnx::load(&backward_path)?)?;
    let mut workers = workers::workers(&model_path, &backward_path, options.device)?;
    let batch = options.attack_batch.unwrap_or_else(|| default_batch(workers[0].device()));
    let mut attack = |refine: bool| -> Result<(Vec<Found>, Timing)> {
        let opts =
            search::Options { target: Target::Random { seed: options.seed }, refine, batch, ..Default::default() };
        let (started, cpu) = (Instant::now(), super::cpu_seconds());
        let found = search::attack(&mut workers, images, labels, &opts, |_| Ok(()))?.complete()?;
        let cpu = cpu.zip(super::cpu_seconds()).map(|(a, b)| b - a);
        Ok((found, Timing { seconds: started.elapsed().as_secs_f64(), cpu_seconds: cpu }))
    };
    let (found, timing) = attack(true)?;
    let advx = summarize("advx", &found, timing, flops, machine);
    say(&format!("lbfgs {model}: advx {:.1} examples/s", advx.examples_per_second));
    let (plain, timing) = attack(false)?;
    let advx_no_refine = summarize("advx, refine off", &plain, timing, flops, machine);
    say(&format!("lbfgs {model}: advx, refine off {:.1} examples/s", advx_no_refine.examples_per_second));
    let search = search::Options { batch, ..Default::default() };
    let mut row = Row {
        model: model.to_string(),
        images: n,
        batch,
        target: Target::Random { seed: options.seed }.to_string(),
        flops_per_evaluation: flops,
        advx,
        advx_no_refine,
        reference: None,
        comparison: None,
    };
    if options.reference.iter().any(|m| m == model) {
        let attacked: Vec<(usize, usize)> = found.iter().filter_map(|f| f.target.map(|t| (f.index, t))).collect();
        let take = options.reference_images.unwrap_or(attacked.len()).min(attacked.len());
        let pairs = &attacked[..take];
        let dir = reference_dir(&options.out).join(model);
        let reference = reference(options, &model_path, &backward_path, &dir, images, labels, pairs, &search)?;
        let reference = summarize_reference(reference, pairs, flops, machine)?;
        say(&format!("lbfgs {model}: {} {:.2} examples/s", reference.method, reference.examples_per_second));
        row.comparison = Some(compare(&row.advx, &row.advx_no_refine, &reference));
        row.reference = Some(reference);
    }
    Ok(row)
}

/// Wall and CPU time of one attack.
#[derive(Clone, Copy)]
struct Timing {
    seconds: f64,
    cpu_seconds: Option<f64>,
}

fn summarize(method: &str, found: &[Found], timing: Timing, flops: f64, machine: &Machine) -> Run {
    let outcomes: Vec<(usize, bool, f64)> =
        found.iter().filter(|f| f.target.is_some()).map(|f| (f.index, f.success, f.distortion)).collect();
    let attacked: Vec<&Found> = found.iter().filter(|f| f.target.is_some()).collect();
    let evaluations: Vec<f64> = attacked.iter().map(|f| f.evaluations as f64).collect();
    let iterations: Vec<f64> = attacked.iter().map(|f| f.iterations as f64).collect();
    build(method, outcomes, timing, &evaluations, &iterations, flops, machine)
}

fn build(
    method: &str,
    outcomes: Vec<(usize, bool, f64)>,
    timing: Timing,
    evaluations: &[f64],
    iterations: &[f64],
    flops: f64,
    machine: &Machine,
) -> Run {
    let distortions: Vec<f64> = outcomes.iter().filter(|o| o.1).map(|o| o.2).collect();
    let examples = outcomes.len();
    let seconds = timing.seconds;
    let gflops = evaluations.iter().sum::<f64>() * flops / seconds.max(1e-9) / 1e9;
    Run {
        method: method.to_string(),
        examples,
        seconds,
        examples_per_second: examples as f64 / seconds.max(1e-9),
        cpu_seconds: timing.cpu_seconds,
        examples_per_cpu_second: timing.cpu_seconds.map(|c| examples as f64 / c.max(1e-9)),
        success_rate: distortions.len() as f64 / examples.max(1) as f64,
        mean_distortion: mean(&distortions),
        median_distortion: median(&distortions),
        evaluations_per_example: mean(evaluations),
        iterations_per_example: mean(iterations),
        gflops,
        peak_fraction: machine.fraction(gflops),
        versions: None,
        outcomes,
    }
}

/// What the reference writes.
#[derive(Deserialize)]
struct ReferenceOutput {
    /// How the table names it; the scipy reference's name when absent.
    method: Option<String>,
    seconds: f64,
    cpu_seconds: Option<f64>,
    examples: Vec<ReferenceExample>,
    versions: serde_json::Value,
}

#[derive(Deserialize)]
struct ReferenceExample {
    success: bool,
    distortion: f64,
    iterations: usize,
    evaluations: usize,
}

/// Runs `bench/reference/lbfgs_scipy.py` on the given (index, target)
/// pairs: the images go to it as raw little-endian f32, the pairs and the
/// search's options as JSON, in `dir`.
#[allow(clippy::too_many_arguments)]
fn reference(
    options: &Options,
    model: &Path,
    backward: &Path,
    dir: &Path,
    images: ndarray::ArrayView4<f32>,
    labels: &[crate::data::Label],
    pairs: &[(usize, usize)],
    search: &search::Options,
) -> Result<ReferenceOutput> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let indices: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    let chosen = images.select(Axis(0), &indices);
    let bytes: Vec<u8> = chosen.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (images_path, pairs_path, out_path) = (dir.join("images.f32"), dir.join("pairs.json"), dir.join("result.json"));
    crate::artefact::write_atomic(&images_path, &bytes)?;
    let description = serde_json::json!({
        "shape": chosen.shape(),
        "indices": indices,
        "labels": indices.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
        "targets": pairs.iter().map(|p| p.1).collect::<Vec<_>>(),
        "options": {
            "c_min": search.c_min, "c_max": search.c_max, "steps": search.steps,
            "max_iterations": search.solver.max_iterations, "max_evaluations": search.solver.max_evaluations,
            "memory": search.solver.memory, "pgtol": search.solver.pgtol, "factr": search.solver.factr,
            "shrink_steps": crate::attack::boundary::STEPS,
            "batch": search.batch,
        },
    });
    crate::artefact::write_atomic(&pairs_path, serde_json::to_string_pretty(&description)?.as_bytes())?;
    let _ = std::fs::remove_file(&out_path);
    let script = super::locate(&options.reference_script);
    let path = |p: &Path| p.display().to_string();
    let args: Vec<String> = vec![
        path(&script),
        "--model".into(),
        path(model),
        "--backward".into(),
        path(backward),
        "--pairs".into(),
        path(&pairs_path),
        "--images".into(),
        path(&images_path),
        "--threads".into(),
        REFERENCE_THREADS.to_string(),
        "--device".into(),
        options.device.to_string().replace("auto", "cpu"),
        "--out".into(),
        path(&out_path),
    ];
    say(&format!("lbfgs: the reference on {} examples ({} {})", pairs.len(), options.python.display(), args.join(" ")));
    // numpy's BLAS would start a thread per core that spins between the
    // tiny products of one example: CPU time doubled for nothing, and the
    // wall time collapsed on a loaded machine. One thread, as advx's side.
    let child = Command::new(&options.python)
        .args(&args)
        .envs(["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"].map(|v| (v, "1")))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!("cannot run {} (scripts/setup.sh makes .venv; or pass --python)", options.python.display())
        })?;
    let status = wait_or_stop(child)?;
    if !status.success() {
        // Ctrl-C in a terminal reaches the reference too, which then fails.
        crate::interrupt::check()?;
        bail!("the reference {} failed ({status}); its messages are above", script.display());
    }
    let text = std::fs::read_to_string(&out_path).with_context(|| format!("cannot read {}", out_path.display()))?;
    let output: ReferenceOutput =
        serde_json::from_str(&text).with_context(|| format!("{} is not the reference's output", out_path.display()))?;
    if output.examples.len() != pairs.len() {
        bail!("the reference answered {} examples of {}", output.examples.len(), pairs.len());
    }
    Ok(output)
}

/// Waits for the reference to end; a signal to advx (a SIGTERM sent to it
/// alone does not reach the child) kills it and fails with `Interrupted`.
pub(super) fn wait_or_stop(mut child: std::process::Child) -> Result<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for the reference")? {
            return Ok(status);
        }
        if let Err(interrupted) = crate::interrupt::check() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(interrupted);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn summarize_reference(
    output: ReferenceOutput,
    pairs: &[(usize, usize)],
    flops: f64,
    machine: &Machine,
) -> Result<Run> {
    let outcomes = pairs.iter().zip(&output.examples).map(|(p, e)| (p.0, e.success, e.distortion)).collect();
    let evaluations: Vec<f64> = output.examples.iter().map(|e| e.evaluations as f64).collect();
    let iterations: Vec<f64> = output.examples.iter().map(|e| e.iterations as f64).collect();
    let timing = Timing { seconds: output.seconds, cpu_seconds: output.cpu_seconds };
    let method = output.method.as_deref().unwrap_or("scipy reference");
    let mut run = build(method, outcomes, timing, &evaluations, &iterations, flops, machine);
    run.versions = Some(output.versions);
    Ok(run)
}

/// advx's rows against the reference's, on the examples the reference took.
fn compare(advx: &Run, plain: &Run, reference: &Run) -> Comparison {
    let paired = |run: &Run| -> (f64, usize) {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for &(i, ok, d) in &reference.outcomes {
            if let Some(&(_, mine, m)) = run.outcomes.iter().find(|o| o.0 == i)
                && ok
                && mine
            {
                ours.push(m);
                theirs.push(d);
            }
        }
        (mean(&ours) / mean(&theirs), ours.len())
    };
    let (distortion_ratio, common) = paired(advx);
    let (distortion_ratio_no_refine, _) = paired(plain);
    Comparison {
        examples: reference.examples,
        common_successes: common,
        speed_ratio: advx.examples_per_second / reference.examples_per_second,
        speed_ratio_no_refine: plain.examples_per_second / reference.examples_per_second,
        cpu_speed_ratio: advx.examples_per_cpu_second.zip(reference.examples_per_cpu_second).map(|(a, b)| a / b),
        cpu_speed_ratio_no_refine: plain
            .examples_per_cpu_second
            .zip(reference.examples_per_cpu_second)
            .map(|(a, b)| a / b),
        distortion_ratio,
        distortion_ratio_no_refine,
        evaluations_ratio_no_refine: plain.evaluations_per_example / reference.evaluations_per_example,
    }
}

/// Where the reference's inputs and output go: `<out>-reference/` beside
/// the results (`bench/results-reference/` for `bench/results.yaml`).
pub fn reference_dir(out: &Path) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("results");
    out.with_file_name(format!("{stem}-reference"))
}

/// Where the reference script is, by default.
pub fn default_script() -> PathBuf {
    super::locate(Path::new("bench/reference/lbfgs_scipy.py"))
}
