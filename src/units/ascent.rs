//! The gradient alternative to ranking a dataset: images optimised to
//! maximise `<phi(x), v>` inside the pixel box [0, 1], by projected
//! gradient ascent on the `direction:` backward graph of the model with
//! phi's spatial reduction appended (`phi`).
//!
//! Every image of a batch has its own direction (the graph's `direction`
//! input has one row per sample), so all directions and all starting
//! images ascend together, one ONNX Runtime call per step.

use std::path::Path;

use anyhow::Result;
use ndarray::{Array4, ArrayView2, ArrayView4, Axis, Zip};

use super::phi::{Phi, Spec};
use crate::grad::direction::DirectionGradient;
use crate::onnx;
use crate::runtime::{Device, Runtime};

/// How far and how long to climb.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Options {
    pub steps: usize,
    /// The L2 length of each step in pixel space (the image has 784
    /// pixels in [0, 1], so 0.1 moves it very little per step).
    pub step: f32,
}

impl Default for Options {
    fn default() -> Options {
        Options { steps: 100, step: 0.1 }
    }
}

/// The outcome for each image of the batch.
pub struct Ascended {
    /// The best image met on the way (the box projection can make a step
    /// go down; the best is never worse than the start).
    pub images: Array4<f32>,
    /// `<phi(x), v>` at the start.
    pub initial: Vec<f32>,
    /// `<phi(x), v>` of the returned images.
    pub best: Vec<f32>,
    /// `<phi(x), v>` after each step, `steps + 1` rows (the start first).
    pub trace: Vec<Vec<f32>>,
}

/// The backward graph of `<phi(x), v>` in a session.
pub struct Ascent {
    gradient: DirectionGradient,
    phi: Phi,
}

impl Ascent {
    /// Differentiates `<phi, direction>` for the model at `path`, a
    /// convolutional layer reduced over space by its default.
    pub fn open(path: &Path, layer_name: &str, model_name: &str, device: Device) -> Result<Ascent> {
        let spec = Spec::plain(layer_name, model_name, path);
        Self::open_spec(path, &spec, device, Runtime::get()?.threads())
    }

    /// Differentiates `<phi, direction>` for the layer `spec` asks for: the
    /// backward graph of the model with phi's reduction appended, so the
    /// ascent climbs the very function `units` ranks by.
    pub fn open_spec(path: &Path, spec: &Spec, device: Device, threads: usize) -> Result<Ascent> {
        let proto = onnx::load(path)?;
        let phi = Phi::find(&proto, spec)?;
        let (graph, output) = phi.append(&proto);
        let name = format!("{} (backward, direction:{output})", path.display());
        let what = format!("layer {}", spec.layer);
        let gradient = DirectionGradient::load(&graph, &output, &what, &name, device, threads)?;
        Ok(Ascent { gradient, phi })
    }

    /// The layer and how it is read.
    pub fn phi(&self) -> &Phi {
        &self.phi
    }

    /// The number of units of the layer: the length of a direction.
    pub fn width(&self) -> usize {
        self.gradient.width()
    }

    /// `<phi(x_i), v_i>` and its gradient with respect to `x_i`, for each
    /// image `x_i` and its own direction `v_i` (the rows of `directions`).
    pub fn run(&mut self, images: ArrayView4<f32>, directions: ArrayView2<f32>) -> Result<(Vec<f32>, Array4<f32>)> {
        self.gradient.run(images, directions)
    }

    /// Projected gradient ascent from `starts`, image `i` along direction
    /// row `i`: each step moves `options.step` in L2 along the normalised
    /// gradient, then clips to [0, 1]. Normalising makes the step size
    /// mean the same for every layer and direction, whose raw gradients
    /// differ by orders of magnitude (saturated sigmoids). `each` hears
    /// the step number and can stop the climb by failing.
    pub fn ascend(
        &mut self,
        starts: Array4<f32>,
        directions: ArrayView2<f32>,
        options: Options,
        mut each: impl FnMut(usize) -> Result<()>,
    ) -> Result<Ascended> {
        let mut x = starts.mapv(|v| v.clamp(0.0, 1.0));
        let mut best = x.clone();
        let (mut best_value, mut trace) = (vec![f32::NEG_INFINITY; x.len_of(Axis(0))], Vec::new());
        for step in 0..=options.steps {
            let (value, grad) = self.run(x.view(), directions)?;
            keep_best(&mut best, &mut best_value, x.view(), &value);
            trace.push(value);
            if step < options.steps {
                climb(&mut x, &grad, options.step);
                each(step + 1)?;
            }
        }
        Ok(Ascended { images: best, initial: trace[0].clone(), best: best_value, trace })
    }
}

/// One step along each image's normalised gradient, projected on the box.
/// An image whose gradient vanishes stays where it is.
fn climb(x: &mut Array4<f32>, grad: &Array4<f32>, step: f32) {
    for (mut image, g) in x.outer_iter_mut().zip(grad.outer_iter()) {
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            let scale = step / norm;
            Zip::from(&mut image).and(&g).for_each(|p, &d| *p = (*p + scale * d).clamp(0.0, 1.0));
        }
    }
}

fn keep_best(best: &mut Array4<f32>, best_value: &mut [f32], x: ArrayView4<f32>, value: &[f32]) {
    for (i, &v) in value.iter().enumerate() {
        if v > best_value[i] {
            best_value[i] = v;
            best.index_axis_mut(Axis(0), i).assign(&x.index_axis(Axis(0), i));
        }
    }
}
