//! What the attack differentiates, for a whole batch in one ONNX Runtime
//! call: the cross-entropy of the search over c (the model's exported
//! `xent` backward graph) and the logit margins of the refinement (the
//! `direction:` graph of the class scores, exported when an attack starts).

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2, ArrayView2, ArrayView4, Axis};

use crate::grad::direction::DirectionGradient;
use crate::grad::names;
use crate::runtime::{Device, Feed, Model, Runtime};

/// Both of an attack's gradients for one model.
pub struct Gradients {
    pub xent: CrossEntropy,
    pub margins: Margins,
}

impl Gradients {
    /// `backward` is the model's `xent` graph (the session exports and
    /// caches it); sessions of `threads` intra-op threads.
    pub fn load(model: &Path, backward: &Path, device: Device, threads: usize) -> Result<Gradients> {
        Ok(Gradients {
            xent: CrossEntropy::load(backward, device, threads)?,
            margins: Margins::load(model, device, threads)?,
        })
    }
}

pub struct CrossEntropy {
    model: Model,
    input: String,
    grad: String,
}

impl CrossEntropy {
    pub fn load(backward: &Path, device: Device, threads: usize) -> Result<CrossEntropy> {
        let model = Runtime::get()?.load_with_threads(backward, device, threads)?;
        let input = model
            .input_names()
            .into_iter()
            .find(|n| n != names::TARGET)
            .with_context(|| format!("{} has no image input", backward.display()))?;
        let grad = names::grad(&input);
        if !model.output_names().contains(&grad) {
            bail!("{} has no output {grad}: is it an xent backward graph?", backward.display());
        }
        Ok(CrossEntropy { model, input, grad })
    }

    /// Hands `read` the per-sample cross-entropy to `targets` and its
    /// gradient for the images, in ONNX Runtime's buffers (the attack reads
    /// them once, every round, and keeps nothing).
    pub fn run<R>(
        &mut self,
        images: ArrayView4<f32>,
        targets: &[usize],
        read: impl FnOnce(&[f32], ArrayView4<f32>) -> Result<R>,
    ) -> Result<R> {
        let images = images.as_standard_layout();
        let targets: Array1<i64> = targets.iter().map(|&t| t as i64).collect();
        let targets = targets.into_dyn();
        let feeds =
            [(self.input.as_str(), Feed::F32(images.view().into_dyn())), (names::TARGET, Feed::I64(targets.view()))];
        self.model.run_loss_and_image_grad_in_place(&feeds, images.shape(), names::LOSS, &self.grad, read)
    }
}

/// The margins `z_j - z_t` of every class j over the target t, and their
/// gradients for the image: the model linearised around a point.
pub struct Margins {
    scores: DirectionGradient,
    /// The classifier's output is a Softmax of the class scores (see
    /// [`Margins::logits`]).
    probabilities: bool,
}

/// One image's margins z_j - z_target to some rivals j and their
/// gradients, one row per rival.
pub struct Linearized {
    pub margins: Vec<f64>,
    pub gradients: Array2<f64>,
}

impl Margins {
    pub fn load(model: &Path, device: Device, threads: usize) -> Result<Margins> {
        let proto = crate::onnx::load(model)?;
        let scores = crate::grad::class_scores(&proto)?;
        let name = format!("{} (backward, direction:{scores})", model.display());
        let what = format!("the class scores {scores}");
        let probabilities = output_is_softmax(&proto);
        Ok(Margins { scores: DirectionGradient::load(&proto, &scores, &what, &name, device, threads)?, probabilities })
    }

    /// The class scores the gradients are taken on, up to a constant per
    /// image, from the classifier's output: the output itself, or the log
    /// of a final Softmax (a LogSoftmax differs from them by a constant).
    /// Probabilities that underflowed to 0 read as f32's least positive.
    pub fn logits(&self, output: ArrayView2<f32>) -> Array2<f64> {
        if self.probabilities {
            output.mapv(|p| f64::from(p.max(f32::MIN_POSITIVE)).ln())
        } else {
            output.mapv(f64::from)
        }
    }

    /// For each image, `<z, v>` of its class scores z and its own
    /// direction v (a row of `directions`), and that product's gradient
    /// (a row per image): one evaluation each.
    pub fn along(&mut self, images: ArrayView4<f32>, directions: ArrayView2<f32>) -> Result<(Vec<f64>, Array2<f64>)> {
        let n = directions.nrows();
        let (values, grads) = self.scores.run(images, directions)?;
        let pixels = images.len() / n.max(1);
        let grads = grads.into_shape_with_order((n, pixels))?.mapv(f64::from);
        Ok((values.into_iter().map(f64::from).collect(), grads))
    }

    /// For each image, its margin z_target - z_rival and that margin's
    /// gradient (a row per image): one evaluation each.
    pub fn against(
        &mut self,
        images: ArrayView4<f32>,
        targets: &[usize],
        rivals: &[usize],
    ) -> Result<(Vec<f64>, Array2<f64>)> {
        let (n, classes) = (targets.len(), self.scores.width());
        let directions =
            Array2::from_shape_fn((n, classes), |(i, k)| f32::from(k == targets[i]) - f32::from(k == rivals[i]));
        self.along(images, directions.view())
    }

    /// Each image repeated once per rival j of its own list, with
    /// direction e_j - e_t: one call gives those margins and their
    /// gradients, one evaluation per rival.
    pub fn run(
        &mut self,
        images: ArrayView4<f32>,
        targets: &[usize],
        rivals: &[Vec<usize>],
    ) -> Result<Vec<Linearized>> {
        let classes = self.scores.width();
        let pixels = images.len() / targets.len().max(1);
        let rows: Vec<(usize, usize)> =
            rivals.iter().enumerate().flat_map(|(i, js)| js.iter().map(move |&j| (i, j))).collect();
        let repeated = images.select(Axis(0), &rows.iter().map(|&(i, _)| i).collect::<Vec<_>>());
        let directions = Array2::from_shape_fn((rows.len(), classes), |(row, k)| {
            let (i, j) = rows[row];
            f32::from(k == j) - f32::from(k == targets[i])
        });
        let (margins, grads) = self.scores.run(repeated.view(), directions.view())?;
        let grads = grads.into_shape_with_order((rows.len(), pixels))?;
        let mut first = 0;
        Ok(rivals
            .iter()
            .map(|js| {
                let range = first..first + js.len();
                first = range.end;
                Linearized {
                    margins: margins[range.clone()].iter().map(|&m| m as f64).collect(),
                    gradients: grads.slice(ndarray::s![range, ..]).mapv(f64::from),
                }
            })
            .collect())
    }
}

/// Whether the model's first output is made by a Softmax (its class scores
/// are then that Softmax's input).
fn output_is_softmax(model: &crate::onnx::ModelProto) -> bool {
    let graph = crate::onnx::graph(model);
    let Some(output) = graph.output.first() else { return false };
    graph.node.iter().any(|n| n.op_type() == "Softmax" && n.output.iter().any(|o| o == output.name()))
}
