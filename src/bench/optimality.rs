//! How minimal advx's adversarial examples are: AttackBench's measure.
//! advx's `lbfgs` (default options, `--walk` steps of the boundary walk)
//! and the reference minimum-norm attacks (`bench/reference/minnorm_torch.py`:
//! DDN, ALMA and FMN as adv-lib implements them, C&W-L2 as advertorch does,
//! on Debian's PyTorch, set up by `scripts/peers.sh`) attack the same
//! (image, target) pairs; for every example the best is the least
//! distortion any of them found, and each attack is read as its mean ratio
//! to that best, its share of examples within 1% of it, its success rate
//! and its examples per second.
//!
//! advertorch's `LBFGSAttack`, run one example at a time, its fastest
//! setting, is the speed peer: the paper's attack as PyTorch users run it.
//! It takes the first `--reference-images` examples of the models named by
//! `--reference` and is not among the best (it is never the least
//! distorted, and it would only take part on those examples).
//!
//! `--busy N` keeps N more processes spinning during both sides' timing,
//! for a figure on a machine shared with other work.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Axis, s};
use serde::{Deserialize, Serialize};

use super::{Options, say};
use crate::attack::search::{self, Found};
use crate::attack::target::Target;
use crate::attack::workers;
use crate::session::LoadedModel;
use crate::stats::mean;

/// The reference attacks that take part in the best, by their names in
/// `minnorm_torch.py`.
pub const PEERS: [&str; 4] = ["ddn", "alma", "fmn", "cw"];
/// The speed peer.
pub const SPEED_PEER: &str = "lbfgs";
/// Within this ratio of the best counts as "within 1%".
const NEAR_BEST: f64 = 1.01;
/// PyTorch's CPU threads on the peers' side, as advx's ONNX Runtime: every core.
fn peer_threads() -> usize {
    crate::runtime::Runtime::get().map(|rt| rt.threads()).unwrap_or(1)
}

/// One attack's figures on one model.
#[derive(Clone, Debug, Serialize)]
pub struct Method {
    pub name: String,
    pub examples: usize,
    pub seconds: f64,
    pub examples_per_second: f64,
    pub success_rate: f64,
    /// Over the successes.
    pub mean_distortion: f64,
    /// Mean of distortion / best over the successes whose best is not 0
    /// (an original the model already gives the target), and the share of
    /// all examples within 1% of the best (where the best is 0: left
    /// alone); NaN for the speed peer.
    pub mean_ratio_to_best: f64,
    pub within_1_percent: f64,
    /// Gradient evaluations per example (advx only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluations_per_example: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// advx against the speed peer, on the examples the peer attacked.
#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    pub examples: usize,
    /// advx's examples per second (over the whole run) over the peer's.
    pub speed_ratio: f64,
    /// Mean distortions over the examples both succeeded on, and their ratio.
    pub advx_mean_distortion: f64,
    pub peer_mean_distortion: f64,
    pub distortion_ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub images: usize,
    pub target: String,
    /// Steps of advx's boundary walk.
    pub walk: usize,
    /// Steps of advx's augmented Lagrangian start (0: the search over c).
    pub lagrangian: usize,
    /// Processes kept spinning beside the timing.
    pub busy: usize,
    pub peer_steps: usize,
    pub methods: Vec<Method>,
    pub speed: Option<Speed>,
}

/// What `minnorm_torch.py` writes.
#[derive(Deserialize)]
struct PeersOutput {
    attacks: std::collections::BTreeMap<String, PeerRun>,
    versions: serde_json::Value,
}

#[derive(Deserialize)]
struct PeerRun {
    seconds: f64,
    settings: serde_json::Value,
    examples: Vec<PeerExample>,
}

#[derive(Deserialize)]
struct PeerExample {
    success: bool,
    distortion: f64,
}

pub fn run(options: &Options, model: &str) -> Result<(Row, serde_json::Value)> {
    let test = options.data.load()?;
    let n = options.images.min(test.len());
    let (images, labels) = (test.images.slice(s![..n, .., .., ..]), &test.labels[..n]);
    let loaded =
        LoadedModel::load(model, &super::model_path(options, model), options.device, options.preprocess.clone())?;
    loaded.check_shape("bench optimality", &options.data.to_string(), images.shape())?;
    let (model_path, backward_path) = (loaded.file()?.to_path_buf(), loaded.backward()?.to_path_buf());
    let mut workers = workers::workers(&model_path, &backward_path, options.device)?;
    let target = Target::Random { seed: options.seed };
    let batch = options.attack_batch.unwrap_or_else(|| super::lbfgs::default_batch(workers[0].device()));
    let search = search::Options {
        target: target.clone(),
        batch,
        walk: options.walk,
        lagrangian: options.lagrangian,
        ..Default::default()
    };
    let busy = Busy::start(options.busy)?;
    let started = Instant::now();
    let found = search::attack(&mut workers, images, labels, &search, |_| Ok(()))?.complete()?;
    let seconds = started.elapsed().as_secs_f64();
    let found: Vec<Found> = found.into_iter().filter(|f| f.target.is_some()).collect();
    say(&format!("optimality {model}: advx {:.1} examples/s", found.len() as f64 / seconds));
    let speed_peer = options.reference.iter().any(|m| m == model);
    let peers = run_peers(options, model, &model_path, &backward_path, images, &found, speed_peer)?;
    drop(busy);
    let row = measure(options, model, n, &target, &found, seconds, &peers)?;
    Ok((row, peers.versions))
}

/// The table's figures from advx's and the peers' outcomes.
fn measure(
    options: &Options,
    model: &str,
    images: usize,
    target: &Target,
    found: &[Found],
    seconds: f64,
    peers: &PeersOutput,
) -> Result<Row> {
    let ours: Vec<Option<f64>> = found.iter().map(|f| f.success.then_some(f.distortion)).collect();
    let mut outcomes: Vec<(String, Vec<Option<f64>>)> = vec![("advx".into(), ours)];
    for name in PEERS {
        let run = peers.attacks.get(name).with_context(|| format!("the peers wrote no {name}"))?;
        if run.examples.len() != found.len() {
            bail!("the peers' {name} answered {} examples of {}", run.examples.len(), found.len());
        }
        outcomes.push((name.into(), run.examples.iter().map(|e| e.success.then_some(e.distortion)).collect()));
    }
    let best: Vec<f64> =
        (0..found.len()).map(|i| outcomes.iter().filter_map(|(_, o)| o[i]).fold(f64::INFINITY, f64::min)).collect();
    let mut methods: Vec<Method> = outcomes
        .iter()
        .map(|(name, o)| {
            let peer_seconds = peers.attacks.get(name.as_str()).map(|r| r.seconds);
            method(name, o, &best, peer_seconds.unwrap_or(seconds))
        })
        .collect();
    methods[0].evaluations_per_example = Some(mean(&found.iter().map(|f| f.evaluations as f64).collect::<Vec<_>>()));
    for m in methods.iter_mut().skip(1) {
        m.settings = peers.attacks.get(&m.name).map(|r| r.settings.clone());
    }
    let speed = peers.attacks.get(SPEED_PEER).map(|peer| {
        let theirs: Vec<Option<f64>> = peer.examples.iter().map(|e| e.success.then_some(e.distortion)).collect();
        let mut m = method(SPEED_PEER, &theirs, &[], peer.seconds);
        m.settings = Some(peer.settings.clone());
        let both: Vec<(f64, f64)> =
            theirs.iter().zip(&outcomes[0].1).filter_map(|(t, o)| Some(((*o)?, (*t)?))).collect();
        let (a, p) =
            (mean(&both.iter().map(|b| b.0).collect::<Vec<_>>()), mean(&both.iter().map(|b| b.1).collect::<Vec<_>>()));
        let speed = Speed {
            examples: theirs.len(),
            speed_ratio: methods[0].examples_per_second / m.examples_per_second,
            advx_mean_distortion: a,
            peer_mean_distortion: p,
            distortion_ratio: a / p,
        };
        methods.push(m);
        speed
    });
    Ok(Row {
        model: model.to_string(),
        images,
        target: target.to_string(),
        walk: options.walk,
        lagrangian: options.lagrangian,
        busy: options.busy,
        peer_steps: options.peer_steps,
        methods,
        speed,
    })
}

/// One attack's figures; `best` empty: no ratios (the speed peer).
fn method(name: &str, outcomes: &[Option<f64>], best: &[f64], seconds: f64) -> Method {
    let successes: Vec<f64> = outcomes.iter().flatten().copied().collect();
    let ratios: Vec<f64> = outcomes.iter().zip(best).filter_map(|(o, b)| o.map(|d| ratio(d, *b))).collect();
    let near = ratios.iter().filter(|&&r| r <= NEAR_BEST).count();
    // An original the model already gives the target (best 0) has no ratio
    // to average; only the share counts whether an attack left it alone.
    let averaged: Vec<f64> =
        outcomes.iter().zip(best).filter(|(_, b)| **b > 0.0).filter_map(|(o, b)| o.map(|d| d / b)).collect();
    let examples = outcomes.len();
    Method {
        name: name.to_string(),
        examples,
        seconds,
        examples_per_second: examples as f64 / seconds.max(1e-9),
        success_rate: successes.len() as f64 / examples.max(1) as f64,
        mean_distortion: mean(&successes),
        mean_ratio_to_best: if best.is_empty() { f64::NAN } else { mean(&averaged) },
        within_1_percent: if best.is_empty() { f64::NAN } else { near as f64 / examples.max(1) as f64 },
        evaluations_per_example: None,
        settings: None,
    }
}

/// d over the best; 1 where both are 0 (the original already said the target).
fn ratio(d: f64, best: f64) -> f64 {
    if best > 0.0 {
        d / best
    } else if d == 0.0 {
        1.0
    } else {
        f64::INFINITY
    }
}

/// Fails, before any work, where `python` cannot import what the peers need.
pub fn check_peers(python: &Path) -> Result<()> {
    let probe = "import importlib.util as u, sys; \
                 sys.exit(0 if all(u.find_spec(m) for m in ('torch', 'adv_lib', 'advertorch', 'onnx')) else 3)";
    let status = Command::new(python).args(["-c", probe]).stdin(Stdio::null()).stdout(Stdio::null()).status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => bail!(
            "{} lacks PyTorch, adv-lib, advertorch or onnx, which the optimality part's peers need: \
             `bash scripts/peers.sh` sets them up (or pass --peers-python)",
            python.display()
        ),
        Err(e) => bail!(
            "cannot run {} ({e}), the optimality part's Python: `bash scripts/peers.sh` sets it up (or pass --peers-python)",
            python.display()
        ),
    }
}

/// Writes the pairs advx attacked and runs the peers on them. With
/// `--reuse-peers`, the answers of an earlier run on the same pairs and
/// settings stand in for the quality peers, but the speed peer always runs
/// afresh: its time is compared with this run's.
fn run_peers(
    options: &Options,
    model: &str,
    model_path: &Path,
    backward: &Path,
    images: ndarray::ArrayView4<f32>,
    found: &[Found],
    speed_peer: bool,
) -> Result<PeersOutput> {
    let dir = super::lbfgs::reference_dir(&options.out).join(model).join("optimality");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let indices: Vec<usize> = found.iter().map(|f| f.index).collect();
    let chosen = images.select(Axis(0), &indices);
    let bytes: Vec<u8> = chosen.iter().flat_map(|v| v.to_le_bytes()).collect();
    let images_path = dir.join("images.f32");
    crate::artefact::write_atomic(&images_path, &bytes)?;
    let script = Script { options, model, model_path, backward, images: &images_path };
    let take = options.reference_images.unwrap_or(found.len()).min(found.len());
    let describe = |attacks: &[&str]| -> Result<String> {
        let limits =
            if attacks.contains(&SPEED_PEER) { serde_json::json!({ SPEED_PEER: take }) } else { serde_json::json!({}) };
        let description = serde_json::json!({
            "shape": chosen.shape(),
            "indices": indices,
            "targets": found.iter().map(|f| f.target).collect::<Vec<_>>(),
            "options": { "attacks": attacks, "steps": options.peer_steps, "batch": PEER_BATCH, "limits": limits },
        });
        Ok(serde_json::to_string_pretty(&description)?)
    };
    let (pairs, out) = (dir.join("pairs.json"), dir.join("result.json"));
    let quality = describe(&PEERS)?;
    let earlier = if options.reuse_peers { earlier_answers(&pairs, &quality, &out) } else { None };
    let mut answers = match earlier {
        Some(earlier) => {
            say(&format!(
                "optimality {model}: the peers' answers of an earlier run on the same pairs, {}",
                out.display()
            ));
            earlier
        }
        None => script.run(&pairs, &quality, &out, found.len())?,
    };
    if speed_peer {
        let (pairs, out) = (dir.join("speed-pairs.json"), dir.join("speed-result.json"));
        let mut speed = script.run(&pairs, &describe(&[SPEED_PEER])?, &out, take)?;
        let run = speed.attacks.remove(SPEED_PEER).context("the speed peer wrote no answers")?;
        answers.attacks.insert(SPEED_PEER.into(), run);
    }
    Ok(answers)
}

/// `minnorm_torch.py` on one model's pairs.
struct Script<'a> {
    options: &'a Options,
    model: &'a str,
    model_path: &'a Path,
    backward: &'a Path,
    images: &'a Path,
}

impl Script<'_> {
    /// Writes `description` to `pairs`, runs the script, reads `out`.
    fn run(&self, pairs: &Path, description: &str, out: &Path, examples: usize) -> Result<PeersOutput> {
        crate::artefact::write_atomic(pairs, description.as_bytes())?;
        let _ = std::fs::remove_file(out);
        let script = super::locate(Path::new("bench/reference/minnorm_torch.py"));
        let path = |p: &Path| p.display().to_string();
        let args = [
            path(&script),
            "--model".into(),
            path(self.model_path),
            "--backward".into(),
            path(self.backward),
            "--pairs".into(),
            path(pairs),
            "--images".into(),
            path(self.images),
            "--threads".into(),
            peer_threads().to_string(),
            "--out".into(),
            path(out),
        ];
        let python = &self.options.peers_python;
        say(&format!(
            "optimality {}: peers on {examples} examples ({} {})",
            self.model,
            python.display(),
            args.join(" ")
        ));
        let child = Command::new(python)
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {} (bash scripts/peers.sh makes it)", python.display()))?;
        let status = super::lbfgs::wait_or_stop(child)?;
        if !status.success() {
            crate::interrupt::check()?;
            bail!("the peers {} failed ({status}); their messages are above", script.display());
        }
        let text = std::fs::read_to_string(out).with_context(|| format!("cannot read {}", out.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not the peers' output", out.display()))
    }
}

/// The answers an earlier run left, when it attacked the same images
/// with the same settings (its pairs file reads the same and the images
/// are rewritten identically before this is asked).
fn earlier_answers(pairs: &Path, description: &str, out: &Path) -> Option<PeersOutput> {
    let same = std::fs::read_to_string(pairs).ok()? == description;
    same.then(|| std::fs::read_to_string(out).ok().and_then(|t| serde_json::from_str(&t).ok())).flatten()
}

/// Examples per call of the peers (adv-lib's attacks run on a batch).
const PEER_BATCH: usize = 250;

/// Processes that keep cores busy while they live.
struct Busy(Vec<Child>);

impl Busy {
    fn start(n: usize) -> Result<Busy> {
        let spin = |_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .spawn()
                .context("cannot start a busy process (sh)")
        };
        Ok(Busy((0..n).map(spin).collect::<Result<_>>()?))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_each_examples_best_and_failures_count_against_the_share() {
        let best = [0.1, 0.2, 0.0, 0.4];
        let outcomes = [Some(0.1), Some(0.21), Some(0.0), None];
        let m = method("x", &outcomes, &best, 2.0);
        assert_eq!((m.examples, m.examples_per_second), (4, 2.0));
        assert_eq!(m.success_rate, 0.75);
        assert!((m.mean_ratio_to_best - (1.0 + 1.05) / 2.0).abs() < 1e-12, "{}", m.mean_ratio_to_best);
        assert_eq!(m.within_1_percent, 0.5, "0.21 is 5% above its best; the failure is not within 1%");
        let peer = method("lbfgs", &outcomes, &[], 1.0);
        assert!(peer.mean_ratio_to_best.is_nan() && peer.within_1_percent.is_nan());
        assert_eq!(ratio(0.1, 0.0), f64::INFINITY);
        let trivial = method("x", &[Some(0.02), Some(0.2)], &[0.0, 0.2], 1.0);
        assert_eq!(trivial.mean_ratio_to_best, 1.0, "an example whose best is 0 is not averaged");
        assert_eq!(trivial.within_1_percent, 0.5, "but perturbing it is not within 1% of leaving it alone");
    }
}
