//! Adversarial training as the paper describes it (Szegedy et al. §4.2):
//! a pool of adversarial examples, a random part of which is continually
//! replaced by new ones made against the model as it is at that moment,
//! mixed into the training minibatches all the time.
//!
//! Every `refresh_every` steps (from epoch `from_epoch`), `replace` training
//! examples drawn at random are attacked by `lbfgs` (the same engine as
//! the `lbfgs` operation, batched over the cores) against the current
//! weights; each success joins the pool with its true label, filling it up
//! to `pool` examples, then taking the place of a pool example drawn at
//! random. Each minibatch then holds `batch_size` clean examples (an epoch
//! is still one pass over the training set, so the learning-rate schedule
//! is unchanged) and as many pool examples again as makes them `share` of
//! the whole.

use std::time::Instant;

use anyhow::{Context, Result};
use ndarray::{Array4, ArrayD, Axis};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::recipe::Adversarial;
use crate::attack::search::{self, Options};
use crate::attack::workers;
use crate::data::{Dataset, Label};
use crate::grad::{self, Objective};
use crate::onnx::{self, ModelProto};
use crate::runtime::Device;

/// What one refresh of the pool did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Refresh {
    /// The epoch it ran in, from 1, and the step of that epoch, from 0.
    pub epoch: usize,
    pub step: usize,
    /// Training examples attacked, and the adversarial examples made (the
    /// successes).
    pub attacked: usize,
    pub made: usize,
    /// The mean distortion of the examples made (`sqrt(Σ r² / n)`, as
    /// `lbfgs` reports it).
    pub mean_distortion: f64,
    pub seconds: f64,
}

/// The pool and its random draws.
pub struct Pool<'a> {
    pub settings: &'a Adversarial,
    images: Vec<f32>,
    labels: Vec<Label>,
    pixels: usize,
    shape: [usize; 3],
    rng: ChaCha8Rng,
    pub refreshes: Vec<Refresh>,
}

impl<'a> Pool<'a> {
    /// An empty pool for images of `shape` (`[C, H, W]`).
    pub fn new(settings: &'a Adversarial, shape: [usize; 3], seed: u64) -> Self {
        Pool {
            settings,
            images: Vec::new(),
            labels: Vec::new(),
            pixels: shape.iter().product(),
            shape,
            rng: ChaCha8Rng::seed_from_u64(seed),
            refreshes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the pool is refreshed before step `step` (from 0) of epoch
    /// `epoch` (from 1).
    pub fn due(&self, epoch: usize, step: usize) -> bool {
        epoch >= self.settings.from_epoch && step.is_multiple_of(self.settings.refresh_every)
    }

    /// Pool examples to add to a minibatch of `clean` examples: `share` of
    /// the whole, none while the pool is empty.
    pub fn extra(&self, clean: usize) -> usize {
        if self.is_empty() {
            return 0;
        }
        let share = self.settings.share as f64;
        ((clean as f64 * share / (1.0 - share)).round() as usize).max(1)
    }

    /// Attacks `replace` random examples of `data` with `model` (the
    /// current weights) and puts the successes in the pool.
    pub fn refresh(&mut self, model: &ModelProto, data: &Dataset, device: Device, at: (usize, usize)) -> Result<()> {
        let started = Instant::now();
        let chosen = index::sample(&mut self.rng, data.len(), self.settings.replace.min(data.len())).into_vec();
        let images = data.images.select(Axis(0), &chosen);
        let labels: Vec<Label> = chosen.iter().map(|&i| data.labels[i]).collect();
        let options = self.settings.attack.options(self.rng.random())?;
        let found = attack(model, &images, &labels, &options, device)?;
        let mut distortion = 0.0;
        let mut made = 0;
        for f in found.iter().filter(|f| f.success) {
            self.add(&f.image, f.label);
            distortion += f.distortion;
            made += 1;
        }
        self.refreshes.push(Refresh {
            epoch: at.0,
            step: at.1,
            attacked: chosen.len(),
            made,
            mean_distortion: if made > 0 { distortion / made as f64 } else { f64::NAN },
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// One example into the pool: appended while there is room, else in
    /// the place of one drawn at random.
    fn add(&mut self, image: &[f32], label: Label) {
        if self.len() < self.settings.pool {
            self.images.extend_from_slice(image);
            self.labels.push(label);
        } else {
            let slot = self.rng.random_range(0..self.len());
            self.images[slot * self.pixels..(slot + 1) * self.pixels].copy_from_slice(image);
            self.labels[slot] = label;
        }
    }

    /// `count` pool examples drawn at random (with replacement), as a
    /// `[count, C, H, W]` batch with their labels.
    pub fn draw(&mut self, count: usize) -> (ArrayD<f32>, Vec<usize>) {
        let mut images = Vec::with_capacity(count * self.pixels);
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            let i = self.rng.random_range(0..self.len());
            images.extend_from_slice(&self.images[i * self.pixels..(i + 1) * self.pixels]);
            labels.push(self.labels[i] as usize);
        }
        let [c, h, w] = self.shape;
        let images = Array4::from_shape_vec((count, c, h, w), images).expect("sized by the pool").into_dyn();
        (images, labels)
    }

    /// The clean examples `batch` of `data`, then the pool examples a
    /// minibatch of them gets ([`Pool::extra`]), with their labels.
    pub fn mixed(&mut self, data: &Dataset, batch: &[usize]) -> (ArrayD<f32>, Vec<usize>) {
        let clean = data.images.select(Axis(0), batch);
        let mut labels: Vec<usize> = batch.iter().map(|&i| data.labels[i] as usize).collect();
        let extra = self.extra(batch.len());
        if extra == 0 {
            return (clean.into_dyn(), labels);
        }
        let (drawn, drawn_labels) = self.draw(extra);
        labels.extend(drawn_labels);
        let images = ndarray::concatenate(Axis(0), &[clean.view().into_dyn(), drawn.view()]).expect("same image shape");
        (images, labels)
    }

    /// The pool for a progress line: its size, refreshes and the mean
    /// distortion of the last refresh's examples.
    pub fn summary(&self) -> String {
        let last =
            self.refreshes.last().map(|r| format!(", last made {} at distortion {:.4}", r.made, r.mean_distortion));
        format!("pool {} after {} refreshes{}", self.len(), self.refreshes.len(), last.unwrap_or_default())
    }
}

/// Refreshes summed: examples attacked and made, the mean distortion of
/// those made, and the attacks' seconds.
pub struct Totals {
    pub attacked: usize,
    pub made: usize,
    pub mean_distortion: f64,
    pub seconds: f64,
}

impl Totals {
    pub fn of(refreshes: &[Refresh]) -> Totals {
        let made: usize = refreshes.iter().map(|r| r.made).sum();
        let distortion: f64 = refreshes.iter().filter(|r| r.made > 0).map(|r| r.mean_distortion * r.made as f64).sum();
        Totals {
            attacked: refreshes.iter().map(|r| r.attacked).sum(),
            made,
            mean_distortion: if made > 0 { distortion / made as f64 } else { f64::NAN },
            seconds: refreshes.iter().map(|r| r.seconds).sum(),
        }
    }
}

/// `lbfgs` against `model`: it and its `xent` backward graph are written to
/// a temporary folder, where the attack's workers load them.
fn attack(
    model: &ModelProto,
    images: &Array4<f32>,
    labels: &[Label],
    options: &Options,
    device: Device,
) -> Result<Vec<search::Found>> {
    let dir = tempfile::tempdir().context("cannot make a folder for the pool's attack")?;
    let (model_path, backward_path) = (dir.path().join("model.onnx"), dir.path().join("model.xent.onnx"));
    onnx::save(model, &model_path)?;
    onnx::save(&grad::export(model, &Objective::Xent)?, &backward_path)?;
    let mut workers = workers::workers(&model_path, &backward_path, device)?;
    let attacked = search::attack(&mut workers, images.view(), labels, options, |_| crate::interrupt::check())
        .context("attacking the current weights for the adversarial pool")?;
    attacked.complete()
}
