//! The attack's loss and gradient: the model's exported `xent` backward
//! graph, run by ONNX Runtime for a whole batch in one call.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array4, ArrayView4, Ix4};

use crate::grad::names;
use crate::runtime::{Device, Feed, Model, Runtime, check_finite};

pub struct CrossEntropy {
    model: Model,
    input: String,
    grad: String,
}

impl CrossEntropy {
    pub fn load(backward: &Path, device: Device) -> Result<CrossEntropy> {
        let model = Runtime::get()?.load(backward, device)?;
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

    /// Per-sample cross-entropy to `targets` and its gradient for the images.
    pub fn run(&mut self, images: ArrayView4<f32>, targets: &[usize]) -> Result<(Vec<f32>, Array4<f32>)> {
        let images = images.as_standard_layout();
        let targets: Array1<i64> = targets.iter().map(|&t| t as i64).collect();
        let targets = targets.into_dyn();
        let feeds =
            [(self.input.as_str(), Feed::F32(images.view().into_dyn())), (names::TARGET, Feed::I64(targets.view()))];
        let mut outputs = self.model.run(&feeds)?;
        let loss = outputs.take(names::LOSS)?;
        let grad = outputs.take(&self.grad)?;
        check_finite(self.model.name(), names::LOSS, &loss)?;
        check_finite(self.model.name(), &self.grad, &grad)?;
        let grad = grad.into_dimensionality::<Ix4>().context("the input gradient is not [N, C, H, W]")?;
        Ok((loss.iter().copied().collect(), grad))
    }
}
