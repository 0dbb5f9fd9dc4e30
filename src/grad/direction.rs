//! `<t(x), v>` and its gradient for the image `x`, one direction `v` per
//! image, for a tensor `t` of a model: a session of the tensor's
//! `direction:` backward graph. Unit analysis climbs it (a layer's units,
//! `units::ascent`); the attack's refinement reads the class scores'
//! margins and their gradients from it (`attack::gradient`).

use anyhow::{Context, Result, bail};
use ndarray::{Array4, ArrayView2, ArrayView4, Axis, IxDyn};

use super::{Objective, data_inputs, export, names};
use crate::onnx::shape::{self, Dim};
use crate::onnx::{self, ModelProto};
use crate::runtime::{Device, Feed, Model, Runtime};

/// The backward graph of `<t, v>` in a session.
pub struct DirectionGradient {
    model: Model,
    input: String,
    grad: String,
    /// `t`'s shape without the batch dimension, e.g. `[100]`, or
    /// `[32, 14, 14]` for a convolutional layer.
    shape: Vec<usize>,
}

impl DirectionGradient {
    /// Differentiates `<tensor, direction>` of `model` for its image input,
    /// in a session of `threads` intra-op threads; `name` names it in
    /// messages and `what` the tensor (e.g. "layer fc1").
    pub fn load(
        model: &ModelProto,
        tensor: &str,
        what: &str,
        name: &str,
        device: Device,
        threads: usize,
    ) -> Result<DirectionGradient> {
        let backward = export(model, &Objective::Direction(tensor.to_string()))?;
        let input = data_inputs(model).into_iter().next().context("the model has no input")?;
        let shape = direction_shape(&backward, what)?;
        let model = Runtime::get()?.load_proto_with_threads(&backward, name, device, threads)?;
        Ok(DirectionGradient { model, grad: names::grad(&input), input, shape })
    }

    /// The number of values of the tensor per image: the length of a
    /// direction.
    pub fn width(&self) -> usize {
        self.shape.iter().product()
    }

    /// `<t(x_i), v_i>` and its gradient with respect to `x_i`, for each
    /// image `x_i` and its own direction `v_i` (the rows of `directions`).
    pub fn run(&mut self, images: ArrayView4<f32>, directions: ArrayView2<f32>) -> Result<(Vec<f32>, Array4<f32>)> {
        let n = images.len_of(Axis(0));
        if directions.dim() != (n, self.width()) {
            bail!(
                "{} directions of {} values for {n} images of a {}-value tensor",
                directions.nrows(),
                directions.ncols(),
                self.width()
            );
        }
        let images = images.as_standard_layout();
        let shape: Vec<usize> = std::iter::once(n).chain(self.shape.iter().copied()).collect();
        let direction = directions.as_standard_layout().into_owned().into_shape_with_order(IxDyn(&shape))?;
        let feeds = [
            (self.input.as_str(), Feed::F32(images.view().into_dyn())),
            (names::DIRECTION, Feed::F32(direction.view())),
        ];
        self.model.run_loss_and_image_grad(&feeds, images.shape(), names::LOSS, &self.grad)
    }
}

/// The shape of one sample's direction: the backward graph's `direction`
/// input without its batch dimension (symbolic, or fixed in a fixed-batch
/// export, which `runtime::Model` pads), whose others must be static.
fn direction_shape(backward: &ModelProto, what: &str) -> Result<Vec<usize>> {
    let input = onnx::graph(backward)
        .input
        .iter()
        .find(|i| i.name() == names::DIRECTION)
        .context("the backward graph has no direction input")?;
    let (_, dims) = shape::of_value_info(input)?;
    match dims.split_first() {
        Some((Dim::Batch | Dim::Fixed(_), rest)) if rest.iter().all(|d| matches!(d, Dim::Fixed(_))) => {
            Ok(rest.iter().filter_map(|d| d.fixed()).collect())
        }
        _ => bail!("{what} is shaped {}; a direction needs a batch dimension and static others", shape::show(&dims)),
    }
}
