//! The measured operator norm of one linear layer at the model's input
//! size, to set beside its bound: where the two differ, the bound is loose.
//!
//! A layer affine in its data, `f(x) = J x + c`, is measured through the
//! graphs advx runs anyway: a one-node model of the layer (its constants as
//! initializers, its data as the input, batch 1) gives `J x = f(x) − f(0)`,
//! and the vector–Jacobian product of that model, exported by [`crate::grad`]
//! with the `direction` objective, gives `Jᵀ y`. Lanczos on `JᵀJ`
//! ([`lanczos::sigma_max`]) on those products converges to `σ_max(J)` from below:
//! the measured value never exceeds the true norm (up to the f32 rounding
//! of the runs, about 1e-6 relative), so `bound / measured ≥ bound / true`.
//! It stops once the residual of its Ritz pair is at most the requested
//! fraction of the estimate, which puts a singular value of `J` that close
//! to it, or after [`MAX_STEPS`] steps, fewer for a layer so large that
//! its Lanczos vectors would outgrow [`MAX_VECTOR_BYTES`].
//!
//! The bias-like constants (Conv's and Gemm's bias, BatchNormalization's
//! shift and mean) are set to zero in the measured model: they do not
//! change `J`, and without them `f(0) = 0`, so no f32 rounding of a large
//! offset enters `J x`. The backward graph has the gradient as its only
//! output ([`crate::grad::export_gradients`]): the forward output and the
//! loss would cost another pass over the layer on every run.
//!
//! Measured ops: [`OPS`]. Any other op (an activation, a pool of maxima,
//! pure data movement) is `None`: it is not linear, or its norm is 1.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::graph::Step;
use super::lanczos::{self, Operator};
use crate::grad::{Objective, TensorInfo, names};
use crate::onnx::builder::{Elem, GraphBuilder};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{Dim, Shape};
use crate::onnx::{ModelProto, NodeProto};
use crate::runtime::{Device, Feed, Model, Runtime};

/// The ops whose norm is measured: affine in their data.
pub const OPS: &[&str] = &[
    "AveragePool",
    "BatchNormalization",
    "Conv",
    "Div",
    "Gemm",
    "GlobalAveragePool",
    "MatMul",
    "Mul",
    "ReduceMean",
    "ReduceSum",
];

/// The most Lanczos steps a measurement takes.
pub const MAX_STEPS: usize = 300;
/// The most memory the Lanczos vectors may take, `k · min(inputs,
/// outputs)` f64 values: a layer with millions of values on both sides gets
/// fewer steps, and says whether they reached the tolerance. (VGG-11's
/// largest, 256 channels at 56×56, has 802816; its 300 steps take 1.8 GiB.)
pub const MAX_VECTOR_BYTES: usize = 2 << 30;
/// The seed of the Lanczos start vector.
const SEED: u64 = 0x6e6f726d;
/// The measured layer's data input and output.
const X: &str = "x";
const Y: &str = "y";

/// A measured operator norm.
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    /// The Lanczos estimate of `σ_max(J)`: at most the true norm.
    pub value: f64,
    /// Lanczos steps, each one forward and one backward run.
    pub steps: usize,
    /// The residual reached, as a fraction of `value`.
    pub residual: f64,
    /// Whether the residual reached the tolerance asked for (else the
    /// steps ran out, and `value` may be further below the norm).
    pub converged: bool,
    /// Wall time of the measurement, graphs and sessions included.
    pub seconds: f64,
}

/// Measures the operator norm of `step`'s layer on `device`, to a relative
/// residual of `tolerance`; `None` for an op that is not measured.
pub fn measure(step: &Step, device: Device, tolerance: f64) -> Result<Option<Norm>> {
    if !measured(step) {
        return Ok(None);
    }
    let started = Instant::now();
    let node = step.node.describe();
    let mut layer = Layer::new(step, device).with_context(|| format!("cannot measure the norm of {node}"))?;
    let (rows, cols) = layer.shape();
    let max_steps = MAX_STEPS.min(MAX_VECTOR_BYTES / (8 * rows.min(cols)).max(1)).max(1);
    let options = lanczos::Options { tolerance, max_steps, seed: SEED };
    let estimate = lanczos::sigma_max(&mut layer, &options).with_context(|| format!("measuring the norm of {node}"))?;
    let residual = estimate.relative_residual();
    Ok(Some(Norm {
        value: estimate.value,
        steps: estimate.steps,
        residual,
        converged: residual <= tolerance,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Whether the layer is affine in its data (Div only of the data by a constant).
fn measured(step: &Step) -> bool {
    let op = step.node.op();
    OPS.contains(&op) && matches!(step.node.proto.domain(), "" | "ai.onnx") && !(op == "Div" && step.data != 0)
}

/// A layer's Jacobian as a Lanczos operator: runs of its one-node model
/// and of that model's vector–Jacobian product.
struct Layer {
    node: String,
    forward: Model,
    backward: Model,
    /// Whether the backward graph still reads the data (for its shape).
    backward_reads_x: bool,
    input: Vec<usize>,
    output: Vec<usize>,
    /// `f(0)`, subtracted from every forward run.
    offset: Vec<f64>,
}

impl Layer {
    fn new(step: &Step, device: Device) -> Result<Layer> {
        let node = step.node.describe();
        let (input, output) = (batch_one(step.input()), batch_one(&step.output));
        let model = one_node(step, &input, &output)?;
        let backward = crate::grad::export_gradients(&model, &Objective::Direction(Y.into()), &[X.into()])?;
        let backward_reads_x = crate::onnx::graph(&backward).input.iter().any(|i| i.name() == X);
        let runtime = Runtime::get()?;
        let forward = runtime.load_proto(&model, &format!("the one-node model of {node}"), device)?;
        let backward = runtime.load_proto(&backward, &format!("the vector-Jacobian product of {node}"), device)?;
        let rows = output.iter().product();
        let mut layer = Layer { node, forward, backward, backward_reads_x, input, output, offset: vec![0.0; rows] };
        let cols = layer.input.iter().product();
        let mut offset = vec![0.0; rows];
        layer.apply(&vec![0.0; cols], &mut offset)?;
        layer.offset = offset;
        Ok(layer)
    }
}

impl Operator for Layer {
    fn shape(&self) -> (usize, usize) {
        (self.output.iter().product(), self.input.iter().product())
    }

    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()> {
        let x = f32_array(&self.input, x);
        let feeds = [(X, Feed::F32(x.view()))];
        read(&mut self.forward, &feeds, Y, &self.node, out)?;
        out.iter_mut().zip(&self.offset).for_each(|(o, c)| *o -= c);
        Ok(())
    }

    fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> Result<()> {
        let direction = f32_array(&self.output, y);
        let zeros = ArrayD::<f32>::zeros(IxDyn(&self.input));
        let mut feeds = vec![(names::DIRECTION, Feed::F32(direction.view()))];
        if self.backward_reads_x {
            feeds.push((X, Feed::F32(zeros.view())));
        }
        read(&mut self.backward, &feeds, &names::grad(X), &self.node, out)
    }
}

/// Runs `model` and copies its output `name` into `out`, checked finite.
fn read(model: &mut Model, feeds: &[(&str, Feed)], name: &str, node: &str, out: &mut [f64]) -> Result<()> {
    model.run_in_place(feeds, |outputs| {
        let (_, value) = outputs.iter().find(|(n, _)| *n == name).with_context(|| format!("no output '{name}'"))?;
        if value.len() != out.len() {
            bail!("{node} gave {} values where {} were expected", value.len(), out.len());
        }
        if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
            bail!("{node} computes {bad} (its weights or inputs are not finite)");
        }
        out.iter_mut().zip(value.iter()).for_each(|(o, &v)| *o = v as f64);
        Ok(())
    })
}

fn f32_array(shape: &[usize], values: &[f64]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), values.iter().map(|&v| v as f32).collect()).expect("sized by the shape")
}

/// A shape with the batch as 1.
fn batch_one(shape: &Shape) -> Vec<usize> {
    shape.iter().map(|d| d.fixed().unwrap_or(1)).collect()
}

/// The layer's node alone: its data as input `x` (batch 1), its constants
/// as initializers, bias-like ones zeroed (module docs), its output `y`.
fn one_node(step: &Step, input: &[usize], output: &[usize]) -> Result<ModelProto> {
    let proto = step.node.proto;
    let node = step.node.describe();
    let fixed = |dims: &[usize]| dims.iter().map(|&d| Dim::Fixed(d)).collect::<Vec<_>>();
    let mut b = GraphBuilder::new();
    b.input(X, Elem::F32, &fixed(input));
    b.reserve(Y);
    let mut inputs = Vec::with_capacity(proto.input.len());
    for (slot, info) in step.node.inputs.iter().enumerate() {
        inputs.push(match info {
            None => String::new(),
            Some(_) if slot == step.data => X.to_string(),
            Some(_) if zeroed(proto.op_type(), slot) == Some(Zeroed::Dropped) => String::new(),
            Some(info) => constant(&mut b, info, zeroed(proto.op_type(), slot).is_some())
                .with_context(|| format!("{node}: its input '{}'", info.name))?,
        });
    }
    while inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    b.push(NodeProto { input: inputs, output: vec![Y.into()], ..proto.clone() });
    b.output(Y, Elem::F32, &fixed(output));
    Ok(b.into_model("advx_layer", step.opset, &format!("{node}, its bias zeroed, for its measured norm")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Zeroed {
    /// An optional input left out (a bias).
    Dropped,
    /// A required input set to zeros (a shift, a mean).
    Zeros,
}

/// The constants that shift an op's output without changing its Jacobian.
fn zeroed(op: &str, slot: usize) -> Option<Zeroed> {
    match (op, slot) {
        ("Conv" | "Gemm", 2) => Some(Zeroed::Dropped),
        ("BatchNormalization", 2 | 3) => Some(Zeroed::Zeros),
        _ => None,
    }
}

/// A constant input as an initializer (float, or int64 such as axes).
fn constant(b: &mut GraphBuilder, info: &TensorInfo, zero: bool) -> Result<String> {
    if let Some(value) = &info.value {
        if value.iter().any(|v| !v.is_finite()) {
            bail!("holds NaN or infinite values");
        }
        let value = if zero { ArrayD::zeros(value.raw_dim()) } else { value.clone() };
        return Ok(b.const_f32("c", &value));
    }
    match info.known_ints() {
        Some(ints) if info.elem == DataType::Int64 as i32 && info.shape.len() <= 1 => {
            let name = b.fresh("c");
            let dims: Vec<usize> = info.shape.iter().filter_map(|d| d.fixed()).collect();
            b.initializers.push(crate::onnx::tensor::from_i64(&name, &dims, &ints));
            Ok(name)
        }
        _ => bail!("is not a float or int64 constant advx can copy"),
    }
}
