//! Split: X cut into consecutive parts along one axis, their sizes an
//! int64 input (opset 13), or `num_outputs` equal parts (opset 18).

use anyhow::{Result, bail};

use super::samples::uniform;
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Split",
    grads: "dX = concat(dY_i) along axis, zeros for an output without a gradient",
    signature: Signature {
        since: 1,
        inputs: 1..=2,
        outputs: 1..=usize::MAX,
        inputs_since: &[],
        typed: &[(Port::Input(1), Ty::Is(crate::onnx::proto::tensor_proto::DataType::Int64))],
        t: FLOAT,
        attributes: &[Attribute::of("axis", Kind::Int), Attribute::since("num_outputs", Kind::Int, 18)],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// The split axis and each part's size.
fn parts(n: &Node) -> Result<(usize, Vec<usize>)> {
    let x = n.in_shape(0)?;
    let axis = n.axis("axis", 0, x.len())?;
    let Some(size) = x[axis].fixed() else {
        bail!("{} splits {} along axis {axis}, the batch dimension", n.describe(), shape::show(x));
    };
    let outputs = n.proto.output.len();
    let sizes: Vec<usize> = match n.known_vector(1)? {
        Some(v) if v.iter().all(|&s| s >= 0) => v.into_iter().map(|s| s as usize).collect(),
        Some(v) => bail!("{} has split sizes {v:?}", n.describe()),
        // Equal parts, the last smaller when they do not divide (opset 18's rule).
        None => {
            let each = size.div_ceil(outputs.max(1));
            (0..outputs).map(|i| each.min(size.saturating_sub(i * each))).collect()
        }
    };
    if sizes.len() != outputs || sizes.iter().sum::<usize>() != size {
        bail!("{} splits axis {axis} of size {size} into {sizes:?} for {outputs} outputs", n.describe());
    }
    Ok((axis, sizes))
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let (axis, sizes) = parts(n)?;
    Ok(sizes
        .into_iter()
        .map(|s| {
            let mut part = x.clone();
            part[axis] = Dim::Fixed(s);
            part
        })
        .collect())
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let (axis, _) = parts(n)?;
    let pieces: Vec<String> =
        dy.iter().zip(&n.outputs).map(|(d, y)| d.clone().unwrap_or_else(|| e.zeros_like(&y.name))).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    grads[0] = Some(e.op("Concat", &refs, vec![attr::int("axis", axis as i64)]));
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    let x = |seed| SampleInput::Checked(uniform(&[2, 6, 3], seed));
    vec![
        Sample { inputs: vec![x(1), SampleInput::Ints(vec![2, 4])], attrs: vec![attr::int("axis", 1)], outputs: 2 },
        Sample { inputs: vec![x(2), SampleInput::Ints(vec![1, 1, 1])], attrs: vec![attr::int("axis", -1)], outputs: 3 },
        Sample { inputs: vec![x(3)], attrs: vec![attr::int("axis", 1)], outputs: 3 },
    ]
}
