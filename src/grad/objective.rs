//! What a backward graph differentiates: the loss, and the gradient it
//! seeds the reverse sweep with.
//!
//! Objectives seed the sweep at the logits (or the tensor, or the
//! autoencoder's pre-activation) with their closed-form gradient, e.g.
//! `softmax(z) - onehot(t)` for cross-entropy: cheaper and more accurate
//! than differentiating the loss nodes one by one.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use super::graph::Tensors;
use super::names;
use crate::onnx::builder::{Elem, GraphBuilder, attr};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};
use crate::onnx::{GraphProto, NodeProto};

/// The loss a backward graph computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Per-sample cross-entropy of the class scores against `target`: the
    /// attack's loss. A final Softmax or LogSoftmax is skipped and the
    /// logits before it used.
    Xent,
    /// Per-sample dot product of a named tensor with the `direction` input:
    /// unit analysis and feature visualisation.
    Direction(String),
    /// Batch-mean cross-entropy, with gradients for every weight.
    Train,
    /// Batch-mean reconstruction loss of an autoencoder against its input,
    /// with gradients for every weight.
    Reconstruction(Reconstruction),
}

/// The autoencoder's reconstruction loss, summed over pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconstruction {
    SquaredError,
    /// Binary cross-entropy; needs a final Sigmoid, whose input is used for stability.
    BinaryCrossEntropy,
}

impl Objective {
    /// Whether the gradients are for the weights (training) rather than the input.
    pub fn trains_weights(&self) -> bool {
        matches!(self, Objective::Train | Objective::Reconstruction(_))
    }
}

impl FromStr for Objective {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xent" => Ok(Objective::Xent),
            "train" => Ok(Objective::Train),
            "reconstruction:mse" => Ok(Objective::Reconstruction(Reconstruction::SquaredError)),
            "reconstruction:bce" => Ok(Objective::Reconstruction(Reconstruction::BinaryCrossEntropy)),
            other => match other.strip_prefix("direction:") {
                Some(t) if !t.is_empty() => Ok(Objective::Direction(t.to_string())),
                _ => bail!(
                    "unknown objective '{s}': expected xent, direction:TENSOR, train, reconstruction:mse or reconstruction:bce"
                ),
            },
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Xent => write!(f, "xent"),
            Objective::Direction(t) => write!(f, "direction:{t}"),
            Objective::Train => write!(f, "train"),
            Objective::Reconstruction(Reconstruction::SquaredError) => write!(f, "reconstruction:mse"),
            Objective::Reconstruction(Reconstruction::BinaryCrossEntropy) => write!(f, "reconstruction:bce"),
        }
    }
}

/// The objective's nodes in the backward graph.
pub(super) struct Attached {
    /// The loss output, `[N]` per sample or a scalar batch mean.
    pub loss: String,
    pub loss_shape: Shape,
    /// Where the reverse sweep starts: (tensor, its gradient).
    pub seed: (String, String),
}

/// What the objective needs to see of the forward graph.
pub(super) struct Forward<'a> {
    pub graph: &'a GraphProto,
    pub tensors: &'a Tensors,
    pub producer: &'a dyn Fn(&str) -> Option<&'a NodeProto>,
}

impl Objective {
    pub(super) fn attach(&self, b: &mut GraphBuilder, fwd: &Forward) -> Result<Attached> {
        match self {
            Objective::Xent => xent(b, fwd, false),
            Objective::Train => xent(b, fwd, true),
            Objective::Direction(t) => direction(b, fwd, t),
            Objective::Reconstruction(kind) => reconstruction(b, fwd, *kind),
        }
    }
}

fn first_output(fwd: &Forward) -> Result<String> {
    let out = fwd.graph.output.first().context("the model has no outputs")?;
    Ok(out.name().to_string())
}

/// The node that computes `tensor`, looking through Identity nodes (which
/// exporters and advx use to name outputs).
fn producer<'a>(fwd: &Forward<'a>, tensor: &str) -> Option<&'a NodeProto> {
    let mut node = (fwd.producer)(tensor)?;
    while node.op_type() == "Identity" {
        node = (fwd.producer)(node.input.first()?)?;
    }
    Some(node)
}

/// The class scores before a final Softmax or LogSoftmax.
fn logits(fwd: &Forward) -> Result<String> {
    let out = first_output(fwd)?;
    Ok(match producer(fwd, &out) {
        Some(node) if matches!(node.op_type(), "Softmax" | "LogSoftmax") => {
            node.input.first().cloned().with_context(|| format!("{} has no input", crate::onnx::describe(node)))?
        }
        _ => out,
    })
}

/// The tensor a classifier's cross-entropy is taken on: its first output,
/// or the input of a final Softmax or LogSoftmax.
pub fn class_scores(model: &crate::onnx::ModelProto) -> Result<String> {
    let graph = crate::onnx::graph(model);
    let producers: std::collections::HashMap<&str, &NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let producer = |name: &str| producers.get(name).copied();
    let tensors = Tensors::default();
    logits(&Forward { graph, tensors: &tensors, producer: &producer })
}

fn xent(b: &mut GraphBuilder, fwd: &Forward, batch_mean: bool) -> Result<Attached> {
    let z = logits(fwd)?;
    let info = fwd.tensors.get(&z).context("logits tensor not found")?;
    let classes = match info.shape.as_slice() {
        [_, Dim::Fixed(c)] if *c > 0 && info.is_float() => *c as i64,
        s => bail!("cross-entropy needs float class scores shaped [N, classes], but '{z}' is {}", shape::show(s)),
    };
    b.input(names::TARGET, Elem::I64, &[Dim::Batch]);
    let probs = b.op("Softmax", &[&z], vec![attr::int("axis", 1)]);
    let depth = b.const_i64("advx_classes", &[classes]);
    let off_on = b.const_f32("advx_off_on", &ndarray::arr1(&[0.0f32, 1.0]).into_dyn());
    let onehot = b.op("OneHot", &[names::TARGET, &depth, &off_on], vec![attr::int("axis", -1)]);
    let mut dz = b.op("Sub", &[&probs, &onehot], vec![]);
    let logp = b.op("LogSoftmax", &[&z], vec![attr::int("axis", 1)]);
    let axis1 = b.const_i64("advx_axis1", &[1]);
    let index = b.op("Unsqueeze", &[names::TARGET, &axis1], vec![]);
    let picked = b.op("GatherElements", &[&logp, &index], vec![attr::int("axis", 1)]);
    let flat = b.const_i64("advx_flat", &[-1]);
    let picked = b.op("Reshape", &[&picked, &flat], vec![]);
    let per_sample = b.op("Neg", &[&picked], vec![]);
    let (loss, loss_shape) = if batch_mean {
        dz = divide_by_batch(b, &dz, &z);
        (b.op("ReduceMean", &[&per_sample], vec![attr::int("keepdims", 0)]), vec![])
    } else {
        (per_sample, vec![Dim::Batch])
    };
    Ok(Attached { loss, loss_shape, seed: (z, dz) })
}

/// `x / N`, N being the batch size of `like` at run time.
fn divide_by_batch(b: &mut GraphBuilder, x: &str, like: &str) -> String {
    let shape = b.op("Shape", &[like], vec![]);
    let first = b.const_i64("advx_first", &[0]);
    let n = b.op("Gather", &[&shape, &first], vec![]);
    let n = b.op("Cast", &[&n], vec![attr::int("to", DataType::Float as i64)]);
    b.op("Div", &[x, &n], vec![])
}

fn direction(b: &mut GraphBuilder, fwd: &Forward, tensor: &str) -> Result<Attached> {
    let Some(info) = fwd.tensors.get(tensor) else {
        bail!("the model has no tensor '{tensor}' to take a direction on");
    };
    if !info.is_float() {
        bail!("tensor '{tensor}' does not hold floats");
    }
    b.input(names::DIRECTION, Elem::F32, &info.shape);
    let product = b.op("Mul", &[tensor, names::DIRECTION], vec![]);
    let loss = if info.shape.len() > 1 {
        let axes: Vec<i64> = (1..info.shape.len() as i64).collect();
        let axes = b.const_i64("advx_axes", &axes);
        b.op("ReduceSum", &[&product, &axes], vec![attr::int("keepdims", 0)])
    } else {
        product
    };
    let loss_shape = info.shape.first().map(|d| vec![*d]).unwrap_or_default();
    Ok(Attached { loss, loss_shape, seed: (tensor.to_string(), names::DIRECTION.to_string()) })
}

fn reconstruction(b: &mut GraphBuilder, fwd: &Forward, kind: Reconstruction) -> Result<Attached> {
    let y = first_output(fwd)?;
    let x = fwd
        .graph
        .input
        .iter()
        .map(|i| i.name())
        .find(|n| fwd.graph.initializer.iter().all(|t| t.name() != *n))
        .context("the model has no input to reconstruct")?
        .to_string();
    let (Some(x_info), Some(y_info)) = (fwd.tensors.get(&x), fwd.tensors.get(&y)) else {
        bail!("the model's input '{x}' or output '{y}' is unknown");
    };
    let examples = |s: &Shape| !s.is_empty() && shape::per_example(s).is_ok_and(|n| n > 0);
    if !y_info.is_float()
        || !examples(&y_info.shape)
        || !examples(&x_info.shape)
        || shape::per_example(&y_info.shape)? != shape::per_example(&x_info.shape)?
    {
        bail!(
            "a reconstruction needs a float output [N, ...] with as many values per example as the input (and \
             some), but \
             '{y}' is {} and '{x}' {}",
            shape::show(&y_info.shape),
            shape::show(&x_info.shape)
        );
    }
    let y_shape = b.op("Shape", &[&y], vec![]);
    let x_like_y = b.op("Reshape", &[&x, &y_shape], vec![]);
    let error = b.op("Sub", &[&y, &x_like_y], vec![]);
    let (per_pixel, seed_at, slope) = match kind {
        Reconstruction::SquaredError => {
            let sq = b.op("Mul", &[&error, &error], vec![]);
            let two = b.scalar(2.0);
            (sq, y.clone(), b.op("Mul", &[&error, &two], vec![]))
        }
        Reconstruction::BinaryCrossEntropy => {
            let sigmoid = producer(fwd, &y).filter(|n| n.op_type() == "Sigmoid");
            let Some(sigmoid) = sigmoid else {
                bail!("binary cross-entropy needs the model's output '{y}' to come from a Sigmoid");
            };
            let z = sigmoid.input.first().cloned().context("the Sigmoid has no input")?;
            (bce_from_logits(b, &z, &x_like_y), z, error)
        }
    };
    let axes = b.const_i64("advx_pixel_axes", &[1]);
    let flat_shape = b.const_i64("advx_rows", &[0, -1]);
    let rows = b.op("Reshape", &[&per_pixel, &flat_shape], vec![]);
    let per_sample = b.op("ReduceSum", &[&rows, &axes], vec![attr::int("keepdims", 0)]);
    let loss = b.op("ReduceMean", &[&per_sample], vec![attr::int("keepdims", 0)]);
    let seed = divide_by_batch(b, &slope, &y);
    Ok(Attached { loss, loss_shape: vec![], seed: (seed_at, seed) })
}

/// `max(z, 0) - x z + log(1 + exp(-|z|))`: the cross-entropy of sigmoid(z)
/// against x without overflow.
fn bce_from_logits(b: &mut GraphBuilder, z: &str, x: &str) -> String {
    let relu = b.op("Relu", &[z], vec![]);
    let xz = b.op("Mul", &[x, z], vec![]);
    let abs = b.op("Abs", &[z], vec![]);
    let neg = b.op("Neg", &[&abs], vec![]);
    let exp = b.op("Exp", &[&neg], vec![]);
    let one = b.scalar(1.0);
    let sum = b.op("Add", &[&one, &exp], vec![]);
    let log = b.op("Log", &[&sum], vec![]);
    let diff = b.op("Sub", &[&relu, &xz], vec![]);
    b.op("Add", &[&diff, &log], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_and_print_alike() {
        for s in ["xent", "train", "direction:h1", "reconstruction:mse", "reconstruction:bce"] {
            assert_eq!(s.parse::<Objective>().unwrap().to_string(), s);
        }
        let err = "softmax".parse::<Objective>().unwrap_err().to_string();
        assert!(err.contains("'softmax'") && err.contains("direction:TENSOR"), "{err}");
        assert!("direction:".parse::<Objective>().is_err());
    }
}
