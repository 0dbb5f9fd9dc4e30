//! Forward against forward+backward time of the exported xent backward
//! graphs at batch 256 on the CPU (issue: "the ratio should be at most 3"):
//! the `backward` part of `advx bench` alone, for FC200-200-10 and the
//! conv net.
//!
//! Run with `cargo bench --bench backward`; results are printed as a table
//! and written to `target/bench/backward.yaml`. The whole suite is
//! `advx bench` (README.md, section Benchmarks).

use std::path::PathBuf;

use advx::bench::{self, Part};
use advx::runtime::Device;
use anyhow::Result;

fn main() -> Result<()> {
    let options = bench::Options {
        parts: vec![Part::Backward],
        models: vec!["fc200-200-10".into(), "cnn".into()],
        models_dir: bench::locate(&PathBuf::from("models/mnist")),
        images: 0,
        data: "mnist:test".parse()?,
        preprocess: Default::default(),
        attack_batch: None,
        seed: 0,
        reference: Vec::new(),
        reference_images: None,
        python: bench::default_python(),
        reference_script: bench::lbfgs::default_script(),
        walk: 0,
        lagrangian: 0,
        peer_steps: 1000,
        busy: 0,
        reuse_peers: false,
        peers_python: bench::default_peers_python(),
        batches: vec![256],
        seconds: 1.0,
        train_images: 0,
        units_images: 0,
        device: Device::Cpu,
        out: PathBuf::from("target/bench/backward.yaml"),
        peak_gflops: None,
    };
    let results = bench::run(&options)?;
    println!("{}", bench::report::table(&results));
    Ok(())
}
