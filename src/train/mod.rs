//! Training the paper's networks from YAML recipes, with exported training
//! graphs run by ONNX Runtime: no Python at training time.
//!
//! A step feeds the current weights and a minibatch to the training graph
//! (`grad::Objective::Train`), reads back every weight's gradient, and lets
//! [`optim::Stepper`] update the weights in Rust.
//!
//! Ctrl-C or SIGTERM stops the training within a step with
//! [`Interrupted`](crate::interrupt::Interrupted). Half-trained weights are
//! not the recipe's model, so `<name>.onnx` and its manifest are not
//! written; the model after the last finished epoch is, as
//! `<name>.checkpoint.onnx` (written atomically at every epoch's end,
//! removed once the model is trained), and the error names it.

pub mod arch;
pub mod manifest;
pub mod optim;
pub mod pool;
pub mod recipe;

pub use manifest::Manifest;
pub use recipe::Recipe;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, ArrayD, Axis, IxDyn};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::classifier::Classifier;
use crate::data::{self, Dataset, Split};
use crate::grad::{self, Objective, names};
use crate::onnx::{self, ModelProto, tensor};
use crate::runtime::{Device, Feed, Model, Runtime};
use optim::Stepper;
use pool::Pool;
use recipe::{Activation, Layer, Optimizer};

/// Weights by initializer name, in the model's order.
pub type Weights = Vec<(String, ArrayD<f32>)>;

/// Mixed into a phase's seed for its dropout masks, so that they are drawn
/// apart from the order of the examples.
const DROPOUT_SEED: u64 = 0xd20_9047;

/// Trains `recipe` and writes `<name>.onnx`, its backward graph and its
/// manifest into `out_dir`. Returns the manifest. Every epoch of the main
/// phase leaves the model so far in `<name>.checkpoint.onnx` there, which
/// a run stopped later keeps (and a finished one removes).
pub fn run(recipe_path: &Path, out_dir: &Path, device: Device) -> Result<Manifest> {
    let recipe = Recipe::load(recipe_path)?;
    let started = Instant::now();
    let train_set = training_set(&recipe)?;
    let test_set = data::load(&recipe.dataset, Split::Test)?;
    let net = arch::build(&recipe.name, &recipe.layers, 10, recipe.seed)?;
    let mut weights = weights_of(&net.model)?;
    let mut final_loss = f64::NAN;
    if let Some(pre) = &recipe.pretrain {
        pretrain(&recipe, pre, &train_set, &mut weights, device)?;
        if pre.classifier_epochs > 0 {
            let classifier = Optimizer { epochs: pre.classifier_epochs, ..recipe.optimizer.clone() };
            let frozen = first_layer_names(&weights).into_iter().collect();
            let phase = Phase::new("classifier", Objective::Train, &classifier, frozen, recipe.seed ^ 2);
            final_loss = phase.fit(&net, &mut weights, &train_set, device, None, None)?;
        }
    }
    let (_, c, h, w) = train_set.images.dim();
    let mut pool = recipe.adversarial.as_ref().map(|a| Pool::new(a, [c, h, w], recipe.seed ^ POOL_SEED));
    if recipe.optimizer.epochs > 0 {
        std::fs::create_dir_all(out_dir).with_context(|| format!("cannot make {}", out_dir.display()))?;
        let checkpoint = Checkpoint {
            path: out_dir.join(format!("{}.checkpoint.onnx", recipe.name)),
            model: &net.model,
            test: &test_set,
            device,
        };
        let phase = Phase::new("training", Objective::Train, &recipe.optimizer, HashSet::new(), recipe.seed ^ 3);
        final_loss = phase
            .fit(&net, &mut weights, &train_set, device, pool.as_mut(), Some(&checkpoint))
            .map_err(|e| checkpoint.said(e))?;
        checkpoint.remove()?;
    }
    let model = with_weights(&net.model, &weights);
    let seconds = started.elapsed().as_secs_f64();
    crate::interrupt::check()?;
    let record = pool.as_ref().map(manifest::PoolRecord::of);
    write_outputs(&recipe, recipe_path, out_dir, &model, &train_set, &test_set, final_loss, seconds, device, record)
}

/// Mixed into the recipe's seed for the pool's draws.
const POOL_SEED: u64 = 0x9001;

/// The model with the weights so far, written at the end of every epoch of
/// the main phase, with its test error for the progress line.
struct Checkpoint<'a> {
    path: PathBuf,
    model: &'a ModelProto,
    test: &'a Dataset,
    device: Device,
}

impl Checkpoint<'_> {
    /// Writes the checkpoint (atomically) and says its test error.
    fn keep(&self, weights: &Weights) -> Result<String> {
        let model = with_weights(self.model, weights);
        crate::artefact::write_atomic(&self.path, &prost::Message::encode_to_vec(&model))?;
        let session =
            Runtime::get()?.load_proto(&model, &format!("checkpoint {}", self.path.display()), self.device)?;
        let error = Classifier::new(session)?.evaluate(self.test.images.view(), &self.test.labels)?.error_rate();
        Ok(format!("test error {:.2}%", 100.0 * error))
    }

    /// `error`, saying where the last epoch's weights are when there are any.
    fn said(&self, error: anyhow::Error) -> anyhow::Error {
        if self.path.is_file() {
            error.context(format!("the model after the last finished epoch is kept in {}", self.path.display()))
        } else {
            error
        }
    }

    /// Removes the checkpoint once the model is trained.
    fn remove(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

fn training_set(recipe: &Recipe) -> Result<Dataset> {
    let full = data::load(&recipe.dataset, Split::Train)?;
    match recipe.subset {
        Some([start, end]) => full.slice(start..end).with_context(|| format!("recipe {}: subset", recipe.name)),
        None => Ok(full),
    }
}

/// The trainable weights of a model (see [`grad::float_initializers`]), by name.
pub fn weights_of(model: &ModelProto) -> Result<Weights> {
    let names = grad::float_initializers(model);
    onnx::graph(model)
        .initializer
        .iter()
        .filter(|t| names.iter().any(|n| n == t.name()))
        .map(|t| Ok((t.name().to_string(), tensor::to_f32(t)?)))
        .collect()
}

/// A copy of `model` with the given weights in its initializers.
pub fn with_weights(model: &ModelProto, weights: &Weights) -> ModelProto {
    let mut model = model.clone();
    let graph = model.graph.as_mut().expect("model has a graph");
    for init in graph.initializer.iter_mut() {
        if let Some((_, w)) = weights.iter().find(|(n, _)| n == init.name()) {
            *init = tensor::from_f32(init.name(), w);
        }
    }
    model
}

fn first_layer_names(weights: &Weights) -> Vec<String> {
    weights.iter().filter(|(n, _)| n.starts_with("layer1.")).map(|(n, _)| n.clone()).collect()
}

/// One phase of training: what it minimises, with which optimiser, and
/// which weights it leaves alone.
struct Phase<'a> {
    label: &'a str,
    objective: Objective,
    optimizer: &'a Optimizer,
    frozen: HashSet<String>,
    seed: u64,
}

impl<'a> Phase<'a> {
    fn new(label: &'a str, objective: Objective, optimizer: &'a Optimizer, frozen: HashSet<String>, seed: u64) -> Self {
        Phase { label, objective, optimizer, frozen, seed }
    }

    /// Minimises the objective over `data` (and the adversarial `pool`'s
    /// examples, when there is one), updating every weight of `net`'s
    /// training graph not frozen; keeps a `checkpoint` after every epoch.
    /// Returns the mean loss of the last epoch.
    fn fit(
        &self,
        net: &arch::Network,
        weights: &mut Weights,
        data: &Dataset,
        device: Device,
        mut pool: Option<&mut Pool>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<f64> {
        let (opt, label) = (self.optimizer, self.label);
        let backward = grad::export(&with_weights(&net.training, weights), &self.objective)?;
        let name = onnx::graph(&net.model).name();
        let mut session = Runtime::get()?.load_proto(&backward, &format!("{label} graph of {name}"), device)?;
        let steps_per_epoch = data.len().div_ceil(opt.batch_size);
        let shapes: Vec<&[usize]> = weights.iter().map(|(_, w)| w.shape()).collect();
        let mut stepper = Stepper::new(opt, &shapes, steps_per_epoch * opt.epochs);
        let dropout = Dropout::new(&net.masks, self.seed ^ DROPOUT_SEED);
        let mut minibatch = Minibatch { objective: &self.objective, decay: &net.decay, frozen: &self.frozen, dropout };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut order: Vec<usize> = (0..data.len()).collect();
        let bar = crate::progress::bar((steps_per_epoch * opt.epochs) as u64, label);
        let mut epoch_loss = f64::NAN;
        for epoch in 1..=opt.epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0;
            for (step, batch) in order.chunks(opt.batch_size).enumerate() {
                let loss = crate::interrupt::check()
                    .and_then(|()| match pool.as_deref_mut() {
                        Some(pool) => {
                            if pool.due(epoch, step) {
                                let model = with_weights(&net.model, weights);
                                pool.refresh(&model, data, device, (epoch, step))?;
                            }
                            let (images, labels) = pool.mixed(data, batch);
                            minibatch.step_on(&mut session, weights, &mut stepper, images, &labels)
                        }
                        None => minibatch.step(&mut session, weights, &mut stepper, data, batch),
                    })
                    .with_context(|| format!("{label} at epoch {epoch}, step {}", step + 1))?;
                loss_sum += loss * batch.len() as f64;
                bar.inc(1);
            }
            epoch_loss = loss_sum / data.len() as f64;
            let mut said = vec![format!("loss {epoch_loss:.4}")];
            if let Some(checkpoint) = checkpoint {
                said.push(checkpoint.keep(weights)?);
            }
            if let Some(pool) = pool.as_deref() {
                said.push(pool.summary());
            }
            crate::progress::line(&bar, &format!("{label}: epoch {epoch}/{}, {}", opt.epochs, said.join(", ")));
        }
        bar.finish_and_clear();
        Ok(epoch_loss)
    }
}

/// One minibatch step of training, as `advx train` and the benchmark run
/// it: the weights, the batch and fresh dropout masks go to the exported
/// training graph, every weight's gradient comes back, and the optimiser
/// updates in Rust every weight not frozen, with its own weight decay.
pub struct Minibatch<'a> {
    pub objective: &'a Objective,
    pub decay: &'a HashMap<String, f32>,
    pub frozen: &'a HashSet<String>,
    pub dropout: Dropout<'a>,
}

/// The training graph's dropout masks, drawn anew for every minibatch.
pub struct Dropout<'a> {
    masks: &'a [arch::Mask],
    rng: ChaCha8Rng,
}

impl<'a> Dropout<'a> {
    pub fn new(masks: &'a [arch::Mask], seed: u64) -> Self {
        Dropout { masks, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// A mask per dropout layer for `batch` examples: each value `1/(1 − rate)`
    /// with probability `1 − rate`, else 0 (so a unit's expected output is
    /// the same as without dropout, and the model written needs no scaling).
    fn draw(&mut self, batch: usize) -> Vec<(&'a str, ArrayD<f32>)> {
        let rng = &mut self.rng;
        self.masks
            .iter()
            .map(|m| {
                let keep = 1.0 - m.rate;
                let shape: Vec<usize> = std::iter::once(batch).chain(m.shape.iter().copied()).collect();
                let mask = ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
                    if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 }
                });
                (m.input.as_str(), mask)
            })
            .collect()
    }
}

impl Minibatch<'_> {
    /// One step on the images `batch` of `data`; returns the graph's loss
    /// (the batch mean), failing when it is not finite.
    pub fn step(
        &mut self,
        session: &mut Model,
        weights: &mut Weights,
        stepper: &mut Stepper,
        data: &Dataset,
        batch: &[usize],
    ) -> Result<f64> {
        let images = data.images.select(Axis(0), batch).into_dyn();
        let labels: Vec<usize> = batch.iter().map(|&i| data.labels[i] as usize).collect();
        self.step_on(session, weights, stepper, images, &labels)
    }

    /// One step on `images` (`[N, C, H, W]`) of classes `labels`.
    pub fn step_on(
        &mut self,
        session: &mut Model,
        weights: &mut Weights,
        stepper: &mut Stepper,
        images: ArrayD<f32>,
        labels: &[usize],
    ) -> Result<f64> {
        let targets: ArrayD<i64> = Array1::from_iter(labels.iter().map(|&l| l as i64)).into_dyn();
        let masks = self.dropout.draw(labels.len());
        let mut feeds: Vec<(&str, Feed)> = vec![(arch::INPUT, Feed::F32(images.view()))];
        if matches!(self.objective, Objective::Train) {
            feeds.push((names::TARGET, Feed::I64(targets.view())));
        }
        feeds.extend(masks.iter().map(|(n, m)| (*n, Feed::F32(m.view()))));
        feeds.extend(weights.iter().map(|(n, w)| (n.as_str(), Feed::F32(w.view()))));
        let mut out = session.run(&feeds)?;
        let loss = out.take(names::LOSS)?.sum() as f64;
        if !loss.is_finite() {
            bail!("the loss is {loss}: training diverged");
        }
        let grads: Vec<ArrayD<f32>> = weights.iter().map(|(n, _)| out.take(&names::grad(n))).collect::<Result<_>>()?;
        stepper.begin_step();
        for (i, ((name, w), g)) in weights.iter_mut().zip(&grads).enumerate() {
            if !self.frozen.contains(name.as_str()) {
                stepper.update(i, w, g, self.decay.get(name.as_str()).copied().unwrap_or(0.0));
            }
        }
        Ok(loss)
    }
}

/// Trains the first dense layer as the encoder of a sigmoid autoencoder
/// and copies its weights into `weights`.
fn pretrain(
    recipe: &Recipe,
    pre: &recipe::Pretrain,
    data: &Dataset,
    weights: &mut Weights,
    device: Device,
) -> Result<()> {
    let Some(encoder @ Layer::Dense { weight_decay, .. }) = recipe.layers.first() else {
        bail!("pretraining needs a dense first layer");
    };
    let auto = autoencoder(&recipe.name, encoder.clone(), *weight_decay, recipe.seed)?;
    let mut auto_weights = weights_of(&auto.model)?;
    let objective = Objective::Reconstruction(pre.reconstruction());
    let phase = Phase::new("autoencoder", objective, &pre.optimizer, HashSet::new(), recipe.seed ^ 1);
    phase.fit(&auto, &mut auto_weights, data, device, None, None)?;
    let encoder = first_layer_names(&auto_weights);
    for (name, w) in weights.iter_mut().filter(|(n, _)| encoder.contains(n)) {
        let (_, trained) = auto_weights.iter().find(|(n, _)| n == name).expect("same first layer");
        *w = trained.clone();
    }
    Ok(())
}

/// `encoder` followed by a sigmoid decoder back to the 784 pixels, whose
/// weights decay like the encoder's.
pub fn autoencoder(name: &str, encoder: Layer, decay: f32, seed: u64) -> Result<arch::Network> {
    let decoder = Layer::Dense { units: 784, activation: Activation::Sigmoid, weight_decay: decay };
    arch::build(&format!("{name}-autoencoder"), &[encoder, decoder], 784, seed)
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    recipe: &Recipe,
    recipe_path: &Path,
    out_dir: &Path,
    model: &ModelProto,
    train_set: &Dataset,
    test_set: &Dataset,
    final_loss: f64,
    seconds: f64,
    device: Device,
    adversarial: Option<manifest::PoolRecord>,
) -> Result<Manifest> {
    // The model, its backward graph, then the manifest, each atomically: a
    // run stopped between them leaves a manifest whose `model_sha256` no
    // longer matches, which readers ignore, never one lending its numbers.
    let model_path = out_dir.join(format!("{}.onnx", recipe.name));
    let model_bytes = prost::Message::encode_to_vec(model);
    let model_sha256 = crate::artefact::provenance::sha256(&model_bytes);
    crate::artefact::write_atomic(&model_path, &model_bytes)?;
    let backward_path = grad::backward_path(&model_path, &Objective::Xent);
    onnx::save(&grad::export_stamped(model, &model_sha256, &Objective::Xent)?, &backward_path)?;
    let mut classifier = Classifier::load(&model_path, device)?;
    let train_error = classifier.evaluate(train_set.images.view(), &train_set.labels)?.error_rate();
    let test_error = classifier.evaluate(test_set.images.view(), &test_set.labels)?.error_rate();
    let relative = |p: &Path| relative_to(p, out_dir);
    let manifest = Manifest {
        name: recipe.name.clone(),
        description: recipe.description.clone(),
        model: relative(&model_path),
        backward: relative(&backward_path),
        recipe: relative(recipe_path),
        recipe_sha256: manifest::sha256_file(recipe_path)?,
        model_sha256,
        dataset: recipe.dataset.clone(),
        train_subset: recipe.subset.unwrap_or([0, train_set.len()]),
        parameters: parameter_count(model)?,
        train_error,
        test_error,
        final_loss,
        training_seconds: (seconds * 10.0).round() / 10.0,
        advx_version: env!("CARGO_PKG_VERSION").into(),
        onnxruntime_version: Runtime::get()?.version(),
        paper: recipe.paper.clone(),
        adversarial,
    };
    manifest.save(&manifest::path_for(&model_path))?;
    Ok(manifest)
}

/// `path` relative to `base` when it lies inside it, else as given.
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b): (PathBuf, PathBuf) = (abs(path), abs(base));
    p.strip_prefix(&b).map(|r| r.display().to_string()).unwrap_or_else(|_| path.display().to_string())
}

/// The number of values in a model's initializers, every size checked
/// (the same count `advx info` shows).
pub fn parameter_count(model: &ModelProto) -> Result<usize> {
    onnx::summary::parameter_count(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_masks_zero_the_rate_and_keep_the_expected_value() {
        let masks = [arch::Mask { input: "m".into(), shape: vec![50, 40], rate: 0.3 }];
        let mut dropout = Dropout::new(&masks, 7);
        let drawn = dropout.draw(100);
        let (name, mask) = &drawn[0];
        assert_eq!((*name, mask.shape()), ("m", &[100, 50, 40][..]));
        let kept = 1.0 / 0.7;
        assert!(mask.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-6));
        let zeros = mask.iter().filter(|&&v| v == 0.0).count() as f64 / mask.len() as f64;
        let mean = mask.iter().map(|&v| v as f64).sum::<f64>() / mask.len() as f64;
        // 200000 draws: a standard error of about 0.001 on each.
        assert!((zeros - 0.3).abs() < 0.005 && (mean - 1.0).abs() < 0.01, "zeros {zeros}, mean {mean}");
        assert_ne!(dropout.draw(100)[0].1, *mask, "a new draw every minibatch");
        assert_eq!(Dropout::new(&masks, 7).draw(100)[0].1, *mask, "seeded");
    }
}
