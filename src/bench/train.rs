//! Training throughput: images per second of each phase of a model's
//! recipe (`<model>.recipe.yaml`): the autoencoder pre-training and the
//! classifier on its frozen code when the recipe has them, then the
//! training proper.
//!
//! A step is `train::Minibatch::step`, the one `advx train` runs: feed the
//! weights and the batch to the exported training graph, read back every
//! gradient, update the weights (Adam or SGD, weight decay) in Rust. The
//! phases start from the recipe's initial weights on the first
//! `--train-images` training images; the first step (ORT's first run) is
//! not timed, nor is exporting the graph. Throughput does not depend on
//! what the weights have learnt.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{Options, say};
use crate::data::{self, Dataset, Split};
use crate::grad::{self, Objective};
use crate::runtime::Runtime;
use crate::train::optim::Stepper;
use crate::train::recipe::{Layer, Optimizer};
use crate::train::{Dropout, Minibatch, Recipe, arch, autoencoder, weights_of, with_weights};

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub recipe: String,
    pub phase: String,
    pub batch: usize,
    /// Images in the timed steps.
    pub images: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    /// f32 FLOPs per image of one training step's graph.
    pub flops_per_image: f64,
    pub gflops: f64,
}

pub fn run(options: &Options, model: &str) -> Result<Vec<Row>> {
    let path = super::locate(&options.models_dir.join(format!("{model}.recipe.yaml")));
    let recipe = Recipe::load(&path)?;
    let train = data::load(&recipe.dataset, Split::Train)?;
    let net = arch::build(&recipe.name, &recipe.layers, 10, recipe.seed)?;
    let mut rows = Vec::new();
    if let Some(pre) = &recipe.pretrain {
        let Some(encoder @ Layer::Dense { weight_decay, .. }) = recipe.layers.first() else {
            bail!("recipe {}: pretraining needs a dense first layer", recipe.name);
        };
        let auto = autoencoder(&recipe.name, encoder.clone(), *weight_decay, recipe.seed)?;
        let objective = Objective::Reconstruction(pre.reconstruction());
        let phase = Phase { objective, frozen: HashSet::new(), optimizer: &pre.optimizer };
        rows.push(phase.time(options, &recipe.name, "autoencoder", &auto, &train)?);
        if pre.classifier_epochs > 0 {
            let frozen =
                weights_of(&net.model)?.into_iter().map(|(n, _)| n).filter(|n| n.starts_with("layer1.")).collect();
            let phase = Phase { objective: Objective::Train, frozen, optimizer: &recipe.optimizer };
            rows.push(phase.time(options, &recipe.name, "classifier", &net, &train)?);
        }
    }
    if recipe.optimizer.epochs > 0 {
        let phase = Phase { objective: Objective::Train, frozen: HashSet::new(), optimizer: &recipe.optimizer };
        rows.push(phase.time(options, &recipe.name, "training", &net, &train)?);
    }
    Ok(rows)
}

struct Phase<'a> {
    objective: Objective,
    frozen: HashSet<String>,
    optimizer: &'a Optimizer,
}

impl Phase<'_> {
    fn time(&self, options: &Options, recipe: &str, phase: &str, net: &arch::Network, data: &Dataset) -> Result<Row> {
        let batch = self.optimizer.batch_size.max(1);
        // At least one untimed and one timed step.
        let n = options.train_images.max(2 * batch).min(data.len());
        let mut weights = weights_of(&net.model)?;
        let graph = grad::export(&with_weights(&net.training, &weights), &self.objective)?;
        let flops = 2.0 * super::flops::macs_per_example(&graph)?;
        let mut session = Runtime::get()?.load_proto(&graph, &format!("{phase} graph of {recipe}"), options.device)?;
        let shapes: Vec<&[usize]> = weights.iter().map(|(_, w)| w.shape()).collect();
        let steps = n.div_ceil(batch);
        let mut stepper = Stepper::new(self.optimizer, &shapes, steps);
        let order: Vec<usize> = (0..n).collect();
        let dropout = Dropout::new(&net.masks, 0);
        let mut minibatch = Minibatch { objective: &self.objective, decay: &net.decay, frozen: &self.frozen, dropout };
        let mut timed = (0usize, 0.0f64);
        for (step, chunk) in order.chunks(batch).enumerate() {
            crate::interrupt::check()?;
            let started = Instant::now();
            minibatch
                .step(&mut session, &mut weights, &mut stepper, data, chunk)
                .with_context(|| format!("{phase} of {recipe}, step {}", step + 1))?;
            if step > 0 {
                timed = (timed.0 + chunk.len(), timed.1 + started.elapsed().as_secs_f64());
            }
        }
        let rate = timed.0 as f64 / timed.1.max(1e-9);
        say(&format!("train {recipe} {phase}: {rate:.0} images/s"));
        Ok(Row {
            recipe: recipe.to_string(),
            phase: phase.to_string(),
            batch,
            images: timed.0,
            seconds: timed.1,
            images_per_second: rate,
            flops_per_image: flops,
            gflops: flops * rate / 1e9,
        })
    }
}
