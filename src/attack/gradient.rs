//! What the attack differentiates, for a whole batch in one ONNX Runtime
//! call: the cross-entropy of the search over c (the model's exported
//! `xent` backward graph) and the logit margins of the refinement (the
//! `direction:` graph of the class scores, exported when an attack starts).

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2, ArrayView4, Axis};

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
}

/// One image's margins (the target's own is 0) and their gradients, one
/// row per class.
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
        Ok(Margins { scores: DirectionGradient::load(&proto, &scores, &what, &name, device, threads)? })
    }

    pub fn classes(&self) -> usize {
        self.scores.width()
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
        let (margins, grads) = self.scores.run(images, directions.view())?;
        let pixels = images.len() / n.max(1);
        let grads = grads.into_shape_with_order((n, pixels))?.mapv(f64::from);
        Ok((margins.into_iter().map(f64::from).collect(), grads))
    }

    /// Each image repeated once per class, with direction e_j - e_t: one
    /// call gives every margin (the loss) and its gradient.
    pub fn run(&mut self, images: ArrayView4<f32>, targets: &[usize]) -> Result<Vec<Linearized>> {
        let classes = self.scores.width();
        let (n, pixels) = (targets.len(), images.len() / targets.len().max(1));
        let rows: Vec<usize> = (0..n * classes).map(|row| row / classes).collect();
        let repeated = images.select(Axis(0), &rows);
        let directions = Array2::from_shape_fn((n * classes, classes), |(row, k)| {
            let (i, j) = (row / classes, row % classes);
            f32::from(k == j) - f32::from(k == targets[i])
        });
        let (margins, grads) = self.scores.run(repeated.view(), directions.view())?;
        let grads = grads.into_shape_with_order((n, classes, pixels))?;
        Ok((0..n)
            .map(|i| Linearized {
                margins: margins[i * classes..(i + 1) * classes].iter().map(|&m| m as f64).collect(),
                gradients: grads.index_axis(Axis(0), i).mapv(f64::from),
            })
            .collect())
    }
}
