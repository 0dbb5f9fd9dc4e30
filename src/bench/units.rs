//! Unit analysis over the test images, as `units MODEL layer: L on
//! mnist.test { natural: "all", random: 100 }` runs it (Section 3 of the
//! paper): the layer's activations for every image (ONNX Runtime, batches
//! of 1000), then the top 8 images of each direction (every unit up to
//! 100, and 100 random directions) with their purity and similarity, and
//! the chance level from 1000 random sets. The layer is the model's first
//! hidden activation (a Sigmoid or Relu output), the one `paper.advx`
//! analyses for FC100-100-10. Loading the model is not timed.

use std::time::Instant;

use anyhow::{Context, Result};
use ndarray::s;
use serde::Serialize;

use super::{Options, say};
use crate::data::{self, Split};
use crate::units::{self as analysis, Layer, Natural, directions};

/// Images per ONNX Runtime call (the `units` op's default).
const BATCH: usize = 1000;
const RANDOM: usize = 100;
const NATURAL: usize = 100;
const TOP: usize = 8;
const CHANCE_DRAWS: usize = 1000;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub layer: String,
    pub width: usize,
    pub images: usize,
    pub directions: usize,
    /// The activations of every image.
    pub activations_seconds: f64,
    /// Top images, purity and similarity of every direction, and the chance level.
    pub ranking_seconds: f64,
    pub seconds: f64,
    /// Images analysed per second, both stages together.
    pub images_per_second: f64,
    /// Mean purity of the top images, natural and random directions (a
    /// sanity check: well above chance, about 0.1, on MNIST).
    pub purity_natural: f64,
    pub purity_random: f64,
}

pub fn run(options: &Options, model: &str) -> Result<Row> {
    let path = super::model_path(options, model);
    let proto = crate::onnx::load(&path)?;
    let layer = crate::onnx::graph(&proto)
        .node
        .iter()
        .find(|n| matches!(n.op_type(), "Sigmoid" | "Relu"))
        .and_then(|n| n.output.first().cloned())
        .with_context(|| format!("{model} has no Sigmoid or Relu layer to analyse"))?;
    let test = data::load("mnist", Split::Test)?;
    let n = options.units_images.clamp(TOP, test.len());
    let images = test.images.slice(s![..n, .., .., ..]);
    let labels = &test.labels[..n];
    let mut phi_layer = Layer::open(&path, &layer, model, options.device)?;
    let started = Instant::now();
    let phi = phi_layer.activations(images, BATCH, |_| crate::interrupt::check())?;
    let activations_seconds = started.elapsed().as_secs_f64();
    let width = phi.ncols();
    let ranking = Instant::now();
    let mut dirs = directions::natural(&Natural::First(width.min(NATURAL)).resolve(width)?, width);
    dirs.extend(directions::random(RANDOM, width, options.seed));
    let ranked = analysis::rank(phi.view(), Some(labels), &dirs, TOP)?;
    let chance = analysis::chance(phi.view(), Some(labels), TOP, CHANCE_DRAWS, options.seed)?;
    let ranking_seconds = ranking.elapsed().as_secs_f64();
    let seconds = activations_seconds + ranking_seconds;
    let purity = |family: directions::Family| {
        let p: Vec<f64> = ranked.iter().filter(|r| r.direction.family == family).filter_map(|r| r.purity).collect();
        crate::stats::mean(&p)
    };
    say(&format!("units {model} {layer}: {:.2} s ({} chance sets)", seconds, chance.similarity.len()));
    Ok(Row {
        model: model.to_string(),
        layer,
        width,
        images: n,
        directions: dirs.len(),
        activations_seconds,
        ranking_seconds,
        seconds,
        images_per_second: n as f64 / seconds.max(1e-9),
        purity_natural: purity(directions::Family::Natural),
        purity_random: purity(directions::Family::Random),
    })
}
