//! The bound of each op, dispatched by op type. Weighted layers, pools and
//! contrast normalisation have their own files; the ops here have bounds in
//! closed form, each with the reason it holds (all in Euclidean norms, per
//! sample; the batch is never mixed).
//!
//! - Relu, Clip: 1. Each coordinate moves by at most as much as its input.
//! - Tanh: 1, since `tanh' = 1 - tanh² ≤ 1`. Sigmoid: 1/4, since
//!   `σ' = σ (1 - σ) ≤ 1/4`. Neg: 1 (an isometry). HardSigmoid
//!   `max(0, min(1, αx + β))`: `|α|`. HardSwish `x · relu6(x + 3) / 6`:
//!   3/2, its slope `(2x + 3)/6` on `(-3, 3)` and 1 above.
//! - Gelu: `max Φ(x) + x φ(x) = Φ(√2) + e⁻¹/√π = 1.1289041…` (where its
//!   second derivative `φ(x)(2 − x²)` vanishes), rounded up to 1.128905;
//!   with `approximate = "tanh"` 1.12900, the maximum of its slope on a
//!   fine grid (1.128993), rounded up.
//! - Identity, Dropout (identity at inference), Flatten, Reshape, Transpose,
//!   Squeeze, Unsqueeze: 1; they move values without changing them. Concat
//!   with constants, Pad with a constant: 1 (they add values that do not
//!   move). Slice, Split: 1 (they keep some of the values).
//! - Add or Sub of a constant (a bias): 1. Mul by a constant `c`: `max|c|`,
//!   Div by one: `max 1/|c|` (diagonal maps). When the constant broadcasts
//!   the data up, each value is copied `k` times, and the bound gains `√k`.
//! - Softmax: 1/2. Its Jacobian `diag(p) - p pᵀ` is symmetric and positive
//!   semidefinite with `vᵀJv = Var_p(v)`, the variance of a variable taking
//!   `v_i` with probability `p_i`; by Popoviciu's inequality that is at most
//!   `(max v - min v)²/4 ≤ (v_max² + v_min²)/2 ≤ 1/2` for a unit `v`, and
//!   `p = (½, ½, 0, …)` reaches it. 1 would be valid too, but loose.
//! - LogSoftmax: `√n` for `n` classes. Its Jacobian is `I - 1pᵀ`; for a unit
//!   `x`, `||x - (p·x) 1||²` is convex in `p·x`, so largest at `p·x = x_k`,
//!   where it is at most `n` (maximise over `x_k`); one-hot `p` reaches it.
//! - BatchNormalization (inference): `max_c |γ_c / √(var_c + ε)|`, a
//!   per-channel scaling.
//! - ReduceSum over groups of `k`: `√k`; ReduceMean: `1/√k` (each output
//!   is a sum of `k` inputs no other output reads).
//! - Exp, Log: refused. Their derivatives are unbounded, so no constant
//!   bounds them on all inputs.
//!
//! Any other op is an error naming it and its node: a silent 1 would make
//! the product a bound of nothing.

use anyhow::{Context, Result, bail};
use ndarray::ArrayD;

use super::graph::Step;
use super::{Join, Layer, Measurement, conv, dense, lrn, pool};
use crate::onnx::shape::Dim;
use crate::onnx::{self, NodeProto};

/// The ops with a bound.
pub const OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "Gelu",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LogSoftmax",
    "LRN",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pad",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Fails, naming the op and the node, when an op has no bound.
pub fn check_supported(node: &NodeProto) -> Result<()> {
    let op = node.op_type();
    if ["Exp", "Log"].contains(&op) {
        bail!("{} has no Lipschitz bound: the derivative of {op} is unbounded", onnx::describe(node));
    }
    if !OPS.contains(&op) || !(node.domain().is_empty() || node.domain() == "ai.onnx") {
        bail!(
            "{} is an op advx has no Lipschitz bound for ({op}); bounded ops: {}",
            onnx::describe(node),
            OPS.join(", ")
        );
    }
    Ok(())
}

/// The bound of a node with one data input.
pub fn bound(step: &Step) -> Result<Layer> {
    let op = step.node.op();
    let (bound, method) = match op {
        "Gemm" => return dense::gemm(step),
        "MatMul" => return dense::matmul(step),
        "Conv" => return conv::layer(step),
        "MaxPool" | "AveragePool" | "GlobalAveragePool" => return pool::layer(step),
        "LRN" => return lrn::layer(step),
        "BatchNormalization" => return batch_norm(step),
        "Relu" => (1.0, "slopes 0 and 1"),
        "Clip" => (1.0, "a projection"),
        "Tanh" => (1.0, "tanh' ≤ 1"),
        "Sigmoid" => (0.25, "σ' = σ(1−σ) ≤ 1/4"),
        "Neg" => (1.0, "an isometry"),
        "HardSwish" => (1.5, "slope (2x+3)/6 ≤ 3/2"),
        "HardSigmoid" => return Ok(base(step, step.node.float("alpha", 0.2).abs() as f64, "|alpha|")),
        "Gelu" => gelu(step)?,
        "Pad" => pad(step)?,
        "Slice" | "Split" => (1.0, "keeps some values"),
        "Identity" | "Dropout" => (1.0, "identity at inference"),
        "Flatten" | "Reshape" | "Transpose" | "Squeeze" | "Unsqueeze" => (1.0, "moves values"),
        "Concat" => (1.0, "appends constants"),
        "Softmax" => {
            classes(step)?;
            (0.5, "Jacobian diag(p) − ppᵀ ≤ 1/2")
        }
        "LogSoftmax" => {
            let n = classes(step)?;
            return Ok(base(step, (n as f64).sqrt(), format!("Jacobian I − 1pᵀ ≤ √n, n = {n}")));
        }
        "Add" | "Sub" | "Mul" | "Div" => return elementwise(step),
        "ReduceSum" | "ReduceMean" => return reduce(step),
        _ => {
            check_supported(step.node.proto)?;
            bail!("{} has no bound rule", step.node.describe());
        }
    };
    Ok(base(step, bound, method))
}

/// GELU's largest slope, exact or with the tanh approximation.
fn gelu(step: &Step) -> Result<(f64, &'static str)> {
    match crate::onnx::attr_string(step.node.proto, "approximate").as_deref() {
        None | Some("none") => Ok((1.128905, "max slope Φ(√2) + e⁻¹/√π")),
        Some("tanh") => Ok((1.129, "max slope of the tanh form")),
        Some(other) => bail!("{} has approximate = '{other}'", step.node.describe()),
    }
}

/// Pad with a constant: the data's values are kept, constants added.
fn pad(step: &Step) -> Result<(f64, &'static str)> {
    match crate::onnx::attr_string(step.node.proto, "mode").as_deref() {
        None | Some("constant") => Ok((1.0, "adds constants")),
        Some(mode) => bail!(
            "{} pads in mode '{mode}', which copies values; advx bounds constant padding only",
            step.node.describe()
        ),
    }
}

/// A layer with no weight or stride.
pub fn base(step: &Step, bound: f64, method: impl Into<String>) -> Layer {
    let proto = step.node.proto;
    let name = match proto.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => proto.output.first().cloned().unwrap_or_default(),
    };
    Layer {
        name,
        op: proto.op_type().to_string(),
        weight: None,
        stride: None,
        bound,
        method: method.into(),
        inputs: vec![],
        join: Join::Through,
        seconds: 0.0,
        input: vec![],
        output: vec![],
        norm: Measurement::None,
    }
}

/// The float constant in input `slot`, with its name, checked to be finite.
pub fn constant<'s>(step: &'s Step, slot: usize, what: &str) -> Result<(&'s str, &'s ArrayD<f32>)> {
    let n = &step.node;
    let input = n.input(slot)?;
    let value = input.value.as_ref().with_context(|| {
        format!("{}: its {what} '{}' must be a float constant (initializer or Constant)", n.describe(), input.name)
    })?;
    if value.iter().any(|v| !v.is_finite()) {
        bail!("{}: its {what} '{}' holds NaN or infinite values", n.describe(), input.name);
    }
    Ok((input.name.as_str(), value))
}

/// Values per sample: the product of the fixed dimensions.
pub fn per_sample(shape: &[Dim]) -> usize {
    shape.iter().filter_map(|d| d.fixed()).product()
}

/// How many values Softmax or LogSoftmax normalises together, refusing an
/// axis that reaches into the batch (that would mix samples).
fn classes(step: &Step) -> Result<usize> {
    let n = &step.node;
    let shape = step.input();
    let legacy = step.opset < 13;
    let axis = n.axis("axis", if legacy { 1 } else { -1 }, shape.len())?;
    let dims = if legacy { &shape[axis..] } else { &shape[axis..=axis] };
    if dims.contains(&Dim::Batch) {
        bail!("{} normalises along the batch axis, which mixes samples", n.describe());
    }
    Ok(per_sample(dims))
}

/// Add, Sub, Mul or Div of the data and a constant.
fn elementwise(step: &Step) -> Result<Layer> {
    let n = &step.node;
    let (_, c) = constant(step, 1 - step.data, "constant operand")?;
    let scale = match (n.op(), step.data) {
        ("Add" | "Sub", _) => 1.0,
        ("Mul", _) => c.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)),
        ("Div", 0) => {
            if c.iter().any(|&v| v == 0.0) {
                bail!("{} divides by zero", n.describe());
            }
            c.iter().fold(0.0f64, |m, &v| m.max(1.0 / v.abs() as f64))
        }
        _ => bail!("{} divides a constant by the data, which has no Lipschitz bound near 0", n.describe()),
    };
    let (before, after) = (per_sample(step.input()), per_sample(&step.output));
    if before == 0 || after % before != 0 {
        bail!("{} maps {before} values per sample to {after}", n.describe());
    }
    let copies = after / before;
    let method = match (n.op(), copies) {
        ("Add" | "Sub", 1) => "adds a constant".to_string(),
        (_, 1) => "max |scale|".to_string(),
        (_, k) => format!("max |scale| × √{k} (broadcast copies)"),
    };
    Ok(base(step, scale * (copies as f64).sqrt(), method))
}

/// BatchNormalization at inference: a per-channel affine map.
fn batch_norm(step: &Step) -> Result<Layer> {
    let n = &step.node;
    if n.int("training_mode", 0) != 0 {
        bail!("{} runs in training mode, which mixes the samples of a batch", n.describe());
    }
    let (name, gamma) = constant(step, 1, "scale")?;
    let (_, var) = constant(step, 4, "variance")?;
    if gamma.len() != var.len() {
        bail!("{} has {} scales but {} variances", n.describe(), gamma.len(), var.len());
    }
    let eps = n.float("epsilon", 1e-5) as f64;
    let bound = gamma.iter().zip(var).fold(0.0f64, |m, (&g, &v)| m.max((g as f64).abs() / (v as f64 + eps).sqrt()));
    let mut layer = base(step, bound, "max |γ/√(var+ε)|");
    layer.weight = Some((name.to_string(), gamma.shape().to_vec()));
    Ok(layer)
}

/// ReduceSum or ReduceMean over groups of `k` values.
fn reduce(step: &Step) -> Result<Layer> {
    let n = &step.node;
    if step.input().contains(&Dim::Batch) && !step.output.contains(&Dim::Batch) {
        bail!("{} reduces over the batch axis, which mixes samples", n.describe());
    }
    let (before, after) = (per_sample(step.input()), per_sample(&step.output));
    if after == 0 || before % after != 0 {
        bail!("{} maps {before} values per sample to {after}", n.describe());
    }
    let k = (before / after) as f64;
    let (bound, method) = match n.op() {
        "ReduceSum" => (k.sqrt(), format!("sum of {k}: √{k}")),
        _ => (1.0 / k.sqrt(), format!("mean of {k}: 1/√{k}")),
    };
    Ok(base(step, bound, method))
}
