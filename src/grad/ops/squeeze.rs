//! Unsqueeze and Squeeze: insert or remove dimensions of size 1, the axes
//! an int64 input (opset 13). The values stay in order, so the gradient is
//! dY reshaped back to X, and int64 shapes fold unchanged.

use anyhow::{Result, bail};
use ndarray::ArrayD;

use super::reshape::same_values;
use super::samples::{checked, uniform};
use super::signature::{NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::{Node, normalize_axis};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const UNSQUEEZE: Rule = Rule {
    op: "Unsqueeze",
    grads: "dX = reshape(dY, shape(X)); the axes input has no gradient",
    signature: AXES,
    infer: unsqueeze_infer,
    backward,
    samples: unsqueeze_samples,
    fold: Some(same_values),
};

pub const SQUEEZE: Rule = Rule {
    op: "Squeeze",
    grads: "dX = reshape(dY, shape(X)); the axes input has no gradient",
    signature: AXES,
    infer: squeeze_infer,
    backward,
    samples: squeeze_samples,
    fold: Some(same_values),
};

/// X, and its axes as an int64 input (required by Unsqueeze).
const AXES: Signature = Signature {
    since: 1,
    inputs: 1..=2,
    outputs: 1..=1,
    inputs_since: &[],
    typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
    t: NUMERIC,
    attributes: &[],
};

/// The axes, normalised against `rank` and checked to be distinct;
/// `None` when the node has none.
fn axes(n: &Node, rank: usize) -> Result<Option<Vec<usize>>> {
    let Some(values) = n.known_vector(1)? else { return Ok(None) };
    let mut axes = values
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<Vec<usize>>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", n.describe()))?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        bail!("{} names an axis twice in {values:?}", n.describe());
    }
    Ok(Some(axes))
}

fn unsqueeze_infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let count = n.opt_input(1).and_then(|t| t.ints.as_ref()).map_or(0, Vec::len);
    let Some(axes) = axes(n, x.len() + count)? else { bail!("{} has no axes", n.describe()) };
    let mut rest = x.iter();
    let out =
        (0..x.len() + axes.len()).map(|i| if axes.contains(&i) { Some(Dim::Fixed(1)) } else { rest.next().copied() });
    out.collect::<Option<Shape>>()
        .map(|s| vec![s])
        .ok_or_else(|| anyhow::anyhow!("{}: axes out of range", n.describe()))
}

fn squeeze_infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let axes = match axes(n, x.len())? {
        Some(axes) => axes,
        None if x.contains(&Dim::Batch) => bail!(
            "{} squeezes every dimension of size 1 of {}, which depends on the batch size N; advx needs its axes",
            n.describe(),
            shape::show(x)
        ),
        None => (0..x.len()).filter(|&i| x[i] == Dim::Fixed(1)).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| x[a] != Dim::Fixed(1)) {
        bail!("{} squeezes axis {a} of {}, whose size is not 1", n.describe(), shape::show(x));
    }
    Ok(vec![x.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect()])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    if let Some(dy) = &dy[0] {
        grads[0] = Some(e.reshape_like(dy, &n.input(0)?.name));
    }
    Ok(grads)
}

fn with_axes(x: ArrayD<f32>, axes: &[i64]) -> Sample {
    Sample { inputs: vec![SampleInput::Checked(x), SampleInput::Ints(axes.to_vec())], attrs: vec![], outputs: 1 }
}

fn unsqueeze_samples() -> Vec<Sample> {
    vec![with_axes(uniform(&[2, 3], 1), &[0]), with_axes(uniform(&[2, 3], 2), &[-1, 1])]
}

fn squeeze_samples() -> Vec<Sample> {
    vec![with_axes(uniform(&[2, 1, 3, 1], 3), &[1, -1]), checked(vec![uniform(&[1, 3, 1], 4)], vec![])]
}
