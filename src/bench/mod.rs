//! `advx bench`: the benchmark suite. Four parts, one file each:
//!
//! - `lbfgs`: the paper's attack on test images (MNIST's, or `--data`; examples per second,
//!   success rate, average minimum distortion, gradient evaluations per
//!   example, GFLOP/s), with and without the refinement, against the usual
//!   way of running it: scipy's `fmin_l_bfgs_b` per example with ONNX
//!   Runtime answering each evaluation (`bench/reference/lbfgs_scipy.py`),
//!   on the same (image, target) pairs in the same run;
//! - `backward`: forward against forward+backward throughput of each
//!   model's exported xent graph;
//! - `train`: training throughput (images per second) of each recipe's
//!   phases;
//! - `units`: unit analysis over the test set;
//! - `optimality` (only when asked for): how minimal the attack's examples
//!   are against the best of strong minimum-norm attacks, per example.
//!
//! `flops` counts the multiply-adds of one evaluation from the graphs and
//! `machine` estimates the CPU's peak, so that rates can be read as a
//! fraction of what the hardware allows. `report` writes the YAML and the
//! table. Timings never include loading models or data.

pub mod backward;
pub mod flops;
pub mod lbfgs;
pub mod machine;
pub mod optimality;
pub mod report;
pub mod train;
pub mod units;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::runtime::{Device, Runtime};

/// One part of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Lbfgs,
    Backward,
    Train,
    Units,
    Optimality,
}

impl Part {
    /// What a run without `--only` runs: the optimality part needs the
    /// peers' setup (`scripts/peers.sh`) and an hour, and runs when asked.
    pub const ALL: [Part; 4] = [Part::Lbfgs, Part::Backward, Part::Train, Part::Units];
    /// The order parts run in.
    const ORDER: [Part; 5] = [Part::Lbfgs, Part::Backward, Part::Train, Part::Units, Part::Optimality];
}

/// What to run, and how big.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub parts: Vec<Part>,
    /// Model names: `<models_dir>/<name>.onnx`, `<name>.recipe.yaml`,
    /// `backward/<name>.xent.onnx`.
    pub models: Vec<String>,
    pub models_dir: PathBuf,
    /// Test images attacked per model (the first ones).
    pub images: usize,
    /// What the lbfgs part attacks.
    #[serde(serialize_with = "as_text")]
    pub data: crate::data::DataSpec,
    /// What the models do to pixels first (the lbfgs part runs them
    /// adapted, as a script's `model` statement does).
    pub preprocess: crate::runtime::Preprocess,
    /// Examples per ONNX Runtime call of the attack; None: the device's
    /// default (`lbfgs::default_batch`).
    pub attack_batch: Option<usize>,
    /// Seed of the random targets.
    pub seed: u64,
    /// Models the scipy reference attacks too.
    pub reference: Vec<String>,
    /// Only the first N (image, target) pairs for the reference.
    pub reference_images: Option<usize>,
    /// The Python that runs the reference (with scipy and onnxruntime).
    pub python: PathBuf,
    pub reference_script: PathBuf,
    /// Steps of the boundary walk of advx's attack in the optimality part.
    pub walk: usize,
    /// Steps of advx's augmented Lagrangian start in the optimality part
    /// (0: the search over c).
    pub lagrangian: usize,
    /// Steps of the peers' attacks (C&W: per binary-search step).
    pub peer_steps: usize,
    /// Processes kept spinning during the optimality part's timing.
    pub busy: usize,
    /// Reuse the peers' answers of an earlier run on the same pairs.
    pub reuse_peers: bool,
    /// The Python with PyTorch, adv-lib and advertorch (`scripts/peers.sh`).
    pub peers_python: PathBuf,
    /// Batch sizes of the backward part.
    pub batches: Vec<usize>,
    /// Least time measured per figure of the backward part, in seconds.
    pub seconds: f64,
    /// Training images per phase of the train part.
    pub train_images: usize,
    /// Test images of the unit analysis.
    pub units_images: usize,
    #[serde(serialize_with = "as_text")]
    pub device: Device,
    /// The YAML file; the table goes beside it as `.txt`.
    pub out: PathBuf,
    /// Overrides the estimated peak of the CPU (GFLOP/s, f32).
    pub peak_gflops: Option<f64>,
}

/// Everything a run measured, as written to the YAML file.
#[derive(Serialize)]
pub struct Results {
    /// `running` while parts remain (a killed run leaves it so),
    /// `complete` at the end, else what stopped it (`interrupted
    /// (Ctrl-C)`, `failed: ...`): the rows are then only the parts done.
    pub status: String,
    pub machine: machine::Machine,
    pub versions: Versions,
    pub options: Options,
    /// advx's ONNX Runtime intra-op threads (`ADVX_THREADS`, else every
    /// core), also the L-BFGS-B bookkeeping's; the reference runs one.
    pub threads: usize,
    pub lbfgs: Vec<lbfgs::Row>,
    pub backward: Vec<backward::Row>,
    pub train: Vec<train::Row>,
    pub units: Vec<units::Row>,
    pub optimality: Vec<optimality::Row>,
    /// Load average at the end (1, 5 and 15 minutes): the machine was shared if high.
    pub load_average_after: Option<[f64; 3]>,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct Versions {
    pub advx: String,
    pub git: Option<String>,
    pub onnxruntime: String,
    /// The reference's Python packages, when it ran.
    pub reference: Option<serde_json::Value>,
    /// The optimality part's peers' packages, when they ran.
    pub peers: Option<serde_json::Value>,
}

/// Runs the suite, writing the YAML file (and the table beside it) after
/// each part so that an interrupted run keeps what it measured; its
/// `status` says whether the run completed.
pub fn run(options: &Options) -> Result<Results> {
    let started = Instant::now();
    let device = check(options)?;
    let rt = Runtime::get()?;
    let machine = machine::Machine { on_gpu: device != Device::Cpu, ..machine::Machine::detect(options.peak_gflops) };
    let mut results = Results {
        status: "running".to_string(),
        machine,
        versions: Versions {
            advx: env!("CARGO_PKG_VERSION").to_string(),
            git: git_describe(),
            onnxruntime: rt.version(),
            reference: None,
            peers: None,
        },
        options: options.clone(),
        threads: rt.threads(),
        lbfgs: Vec::new(),
        backward: Vec::new(),
        train: Vec::new(),
        units: Vec::new(),
        optimality: Vec::new(),
        load_average_after: None,
        seconds: 0.0,
    };
    say(&format!(
        "advx bench: {} ({} cores, peak ≈ {:.0} GFLOP/s), ONNX Runtime {} with {} threads, device {}",
        results.machine.cpu,
        results.machine.cores,
        results.machine.peak_gflops,
        results.versions.onnxruntime,
        results.threads,
        options.device
    ));
    if let Err(error) = run_parts(options, &mut results, started) {
        results.status = match error.chain().find_map(|c| c.downcast_ref::<crate::interrupt::Interrupted>()) {
            Some(interrupted) => interrupted.to_string(),
            None => format!("failed: {error:#}"),
        };
        finish(&mut results, started).with_context(|| format!("after {error:#}"))?;
        return Err(error);
    }
    results.status = "complete".to_string();
    finish(&mut results, started)?;
    Ok(results)
}

/// Every part for every model, the results written after each.
fn run_parts(options: &Options, results: &mut Results, started: Instant) -> Result<()> {
    for part in Part::ORDER.into_iter().filter(|p| options.parts.contains(p)) {
        for model in &options.models {
            crate::interrupt::check()?;
            match part {
                Part::Lbfgs => {
                    let row = lbfgs::run(options, model, &results.machine)?;
                    if let Some(v) = row.reference.as_ref().and_then(|r| r.versions.clone()) {
                        results.versions.reference = Some(v);
                    }
                    results.lbfgs.push(row);
                }
                Part::Backward => results.backward.extend(backward::run(options, model, &results.machine)?),
                Part::Train => results.train.extend(train::run(options, model)?),
                Part::Units => results.units.push(units::run(options, model)?),
                Part::Optimality => {
                    let (row, versions) = optimality::run(options, model)?;
                    results.versions.peers = Some(versions);
                    results.optimality.push(row);
                }
            }
            finish(results, started)?;
        }
    }
    Ok(())
}

fn finish(results: &mut Results, started: Instant) -> Result<()> {
    results.seconds = started.elapsed().as_secs_f64();
    results.load_average_after = machine::load_average();
    report::write(results, &results.options.out)
}

/// Fails early, before anything long runs: unknown parts of the
/// configuration, missing files, and a device that cannot start.
fn check(options: &Options) -> Result<Device> {
    if options.models.is_empty() {
        bail!("no models to benchmark");
    }
    let attacks = options.parts.contains(&Part::Lbfgs) || options.parts.contains(&Part::Optimality);
    if attacks && options.images == 0 {
        bail!("--images must be at least 1");
    }
    if options.attack_batch == Some(0) {
        bail!("--attack-batch must be at least 1");
    }
    if let Some(batch) = options.attack_batch.filter(|&b| b > MAX_ATTACK_BATCH) {
        bail!("--attack-batch must be at most {MAX_ATTACK_BATCH}, not {batch}");
    }
    if let Some(&batch) = options.batches.iter().find(|&&b| b == 0 || b > MAX_BATCH) {
        bail!("--batches must each be from 1 to {MAX_BATCH}, not {batch}");
    }
    if !(options.seconds.is_finite() && options.seconds > 0.0) {
        bail!("--seconds must be a positive number, not {}", options.seconds);
    }
    if options.parts.contains(&Part::Optimality) {
        if options.peer_steps == 0 {
            bail!("--peer-steps must be at least 1");
        }
        optimality::check_peers(&options.peers_python)?;
    }
    if let Some(peak) = options.peak_gflops.filter(|p| !(p.is_finite() && *p > 0.0)) {
        bail!("--peak-gflops must be a positive number, not {peak}");
    }
    for model in &options.models {
        let path = model_path(options, model);
        if !path.is_file() {
            bail!(
                "no model {} (looked for {}); --models takes names from {}",
                model,
                path.display(),
                options.models_dir.display()
            );
        }
    }
    let script = locate(&options.reference_script);
    if !options.reference.is_empty() && !script.is_file() {
        bail!("no reference script {}", script.display());
    }
    for model in &options.reference {
        if !options.models.contains(model) {
            bail!("--reference names {model}, which is not among --models ({})", options.models.join(", "));
        }
    }
    // The device: an explicit cuda that cannot start is an error here, not
    // after an hour of CPU work.
    let first = model_path(options, &options.models[0]);
    let model = Runtime::get()?
        .load(&first, options.device)
        .with_context(|| format!("the benchmark cannot run on device {}", options.device))?;
    Ok(model.device())
}

/// Examples per ONNX Runtime call of the attack at most: each holds its
/// L-BFGS-B memory (as the `lbfgs` operation's `batch`).
const MAX_ATTACK_BATCH: usize = 10_000;
/// Images per run of the backward part at most (a batch of 1e9 images
/// would not fit in memory).
const MAX_BATCH: usize = 65_536;

pub fn model_path(options: &Options, model: &str) -> PathBuf {
    options.models_dir.join(format!("{model}.onnx"))
}

/// The model's verified `xent` backward graph (exported afresh when the
/// one beside it was made from another model; see `artefact::backward`).
pub fn backward_path(options: &Options, model: &str) -> anyhow::Result<PathBuf> {
    let path = model_path(options, model);
    let sha256 = crate::train::manifest::sha256_file(&path)?;
    crate::artefact::backward::backward_graph(&path, &sha256, &crate::grad::Objective::Xent)
}

/// `path` as given when it exists, else relative to the crate's sources
/// (so that the installed binary finds `models/` and `bench/` from anywhere
/// in the checkout's build).
pub fn locate(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if beside.exists() { beside } else { path.to_path_buf() }
}

/// The Python of `.venv-peers` (`scripts/peers.sh`), else `python3`.
pub fn default_peers_python() -> PathBuf {
    let venv = locate(Path::new(".venv-peers/bin/python"));
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// The Python of the project's `.venv`, else `python3`.
pub fn default_python() -> PathBuf {
    let venv = locate(Path::new(".venv/bin/python"));
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// The commit, with `-dirty` when the tree has changes; None without git.
fn git_describe() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["describe", "--always", "--dirty"]).output();
    out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn as_text<S: serde::Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A progress line on stderr.
pub fn say(line: &str) {
    eprintln!("[bench] {line}");
}

/// CPU time (user and system, every thread) of this process so far, from
/// `/proc/self/stat`; None where there is no procfs.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, may hold spaces: count fields after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
