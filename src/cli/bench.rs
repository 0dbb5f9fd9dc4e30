//! `advx bench`: the benchmark suite (see `bench` and README.md, section Benchmarks).

use std::path::PathBuf;

use anyhow::Result;

use crate::bench::{self, Part};
use crate::runtime::Device;

/// Run the benchmark suite and write its results (YAML and a table).
///
/// Parts: `lbfgs` (the paper's attack on MNIST test images: examples per
/// second, success rate, average minimum distortion, gradient evaluations
/// per example; against scipy's fmin_l_bfgs_b driving ONNX Runtime per
/// example, the usual way, for the models given to --reference), `backward`
/// (forward against forward+backward throughput of each exported backward
/// graph), `train` (training images per second of each recipe's phases)
/// and `units` (unit analysis over the test images); `optimality`, only
/// when asked for, measures how minimal the attack's examples are against
/// the best of DDN, ALMA, FMN and C&W per example (`scripts/peers.sh`). ONNX Runtime uses
/// ADVX_THREADS intra-op threads (default: every core) on advx's side; the
/// reference, which evaluates one image at a time, runs one.
#[derive(clap::Args)]
pub struct Args {
    /// Parts to run, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Models, by the name of their files in --models-dir.
    #[arg(long, value_delimiter = ',', default_value = "fc100-100-10,fc200-200-10,ae400-10,cnn")]
    models: Vec<String>,
    /// Where the models, their recipes and backward/ graphs are.
    #[arg(long, default_value = "models/mnist")]
    models_dir: PathBuf,
    /// Test images attacked per model (the first ones).
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// The images the lbfgs part attacks: mnist:test, or any data advx
    /// reads (images:DIR, numpy:FILE, cifar10, ...) of the models' shape.
    #[arg(long, default_value = "mnist:test")]
    data: crate::data::DataSpec,
    #[command(flatten)]
    preprocess: super::preprocess::Preprocessing,
    /// Examples per ONNX Runtime call in the lbfgs part [default: 25 on
    /// the CPU, a batch per core; 1000 on a GPU].
    #[arg(long)]
    attack_batch: Option<usize>,
    /// Seed of the random targets (and of the unit analysis' random directions).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Models the scipy reference attacks too, comma-separated; `none` for
    /// none, `all` for every model of --models.
    #[arg(long, value_delimiter = ',', default_value = "fc100-100-10")]
    reference: Vec<String>,
    /// Only the first N attacked examples for the reference [default: all].
    #[arg(long)]
    reference_images: Option<usize>,
    /// The reference's script: bench/reference/lbfgs_scipy.py (scipy per
    /// example), or lbfgs_torch.py (PyTorch on a batch, the GPU peer).
    #[arg(long)]
    reference_script: Option<PathBuf>,
    /// The Python with scipy and onnxruntime [default: .venv/bin/python, else python3].
    #[arg(long)]
    python: Option<PathBuf>,
    /// Steps of the boundary walk of advx's attack in the optimality part
    /// (`lbfgs`'s `walk`).
    #[arg(long, default_value_t = 0)]
    walk: usize,
    /// Steps at most of the augmented Lagrangian method that replaces the
    /// search over c in advx's attack in the optimality part (`lbfgs`'s
    /// `lagrangian`; 0: the search, then the refinement).
    #[arg(long, default_value_t = crate::attack::search::LAGRANGIAN_STEPS)]
    lagrangian: usize,
    /// Steps of each peer attack in the optimality part (C&W: per binary
    /// search step, 9 of them).
    #[arg(long, default_value_t = 1000)]
    peer_steps: usize,
    /// Processes kept spinning during the optimality part (a shared machine).
    #[arg(long, default_value_t = 0)]
    busy: usize,
    /// Reuse the peers' answers left by an earlier optimality run on the
    /// same pairs and settings (beside --out), to measure advx alone again.
    #[arg(long)]
    reuse_peers: bool,
    /// The Python with PyTorch, adv-lib and advertorch [default:
    /// .venv-peers/bin/python, made by scripts/peers.sh].
    #[arg(long)]
    peers_python: Option<PathBuf>,
    /// Batch sizes of the backward part, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,256")]
    batches: Vec<usize>,
    /// Least time measured for each figure of the backward part, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Training images per phase in the train part.
    #[arg(long, default_value_t = 6000)]
    train_images: usize,
    /// Test images of the unit analysis.
    #[arg(long, default_value_t = 10000)]
    units_images: usize,
    /// cpu, cuda[:N] or auto; cuda that cannot start is an error.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// The YAML file to write; the table goes beside it as .txt.
    #[arg(long, default_value = "bench/results.yaml")]
    out: PathBuf,
    /// This CPU's peak f32 GFLOP/s, instead of the estimate.
    #[arg(long)]
    peak_gflops: Option<f64>,
}

pub fn run(args: Args) -> Result<()> {
    // Ctrl-C or SIGTERM: the part running stops, the YAML keeps the parts
    // done with `status: interrupted`, and advx exits 130 or 143.
    crate::interrupt::catch_signals();
    let reference = match args.reference.as_slice() {
        [one] if one == "none" => Vec::new(),
        [one] if one == "all" => args.models.clone(),
        list => list.to_vec(),
    };
    let options = bench::Options {
        parts: if args.only.is_empty() { Part::ALL.to_vec() } else { args.only },
        models: args.models,
        models_dir: bench::locate(&args.models_dir),
        images: args.images,
        data: args.data,
        preprocess: args.preprocess.into(),
        attack_batch: args.attack_batch,
        seed: args.seed,
        reference,
        reference_images: args.reference_images,
        python: args.python.unwrap_or_else(bench::default_python),
        reference_script: args.reference_script.unwrap_or_else(bench::lbfgs::default_script),
        walk: args.walk,
        lagrangian: args.lagrangian,
        peer_steps: args.peer_steps,
        busy: args.busy,
        reuse_peers: args.reuse_peers,
        peers_python: args.peers_python.unwrap_or_else(bench::default_peers_python),
        batches: args.batches,
        seconds: args.seconds,
        train_images: args.train_images,
        units_images: args.units_images,
        device: crate::runtime::Runtime::get()?.announce(args.device),
        out: args.out,
        peak_gflops: args.peak_gflops,
    };
    let results = bench::run(&options)?;
    println!("{}", bench::report::table(&results));
    println!("results: {} (table: {})", options.out.display(), options.out.with_extension("txt").display());
    Ok(())
}
