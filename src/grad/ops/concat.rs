//! Concat: joins tensors along one axis; the gradient slices dY back apart.
//! On int64 tensors (the parts of a shape) it is folded.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind, NUMERIC};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Concat",
    grads: "dX_i = dY[..., offset_i : offset_i + len_i, ...] along axis",
    signature: Signature {
        since: 1,
        inputs: 1..=usize::MAX,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[],
        t: NUMERIC,
        attributes: &[Attribute::of("axis", Kind::Int)],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

/// The concatenation axis (a required attribute), normalised.
fn axis(n: &Node) -> Result<usize> {
    if onnx::attr(n.proto, "axis").is_none() {
        bail!("{} has no 'axis' attribute", n.describe());
    }
    n.axis("axis", 0, n.in_shape(0)?.len())
}

/// Each input's extent along the concatenation axis, which must be known.
fn lengths(n: &Node, axis: usize) -> Result<Vec<usize>> {
    n.inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let Some(x) = x else { bail!("{} lacks input {i}", n.describe()) };
            match x.shape.get(axis) {
                Some(Dim::Fixed(len)) => Ok(*len),
                _ => bail!(
                    "{} joins along axis {axis}, where input '{}' is {}; advx needs fixed sizes along the concatenation axis",
                    n.describe(),
                    x.name,
                    shape::show(&x.shape)
                ),
            }
        })
        .collect()
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let first = n.in_shape(0)?;
    let axis = axis(n)?;
    for x in n.inputs.iter().flatten() {
        let same = x.shape.len() == first.len()
            && x.shape.iter().zip(first).enumerate().all(|(i, (a, b))| i == axis || a == b);
        if !same {
            bail!(
                "{} joins {} and {} along axis {axis}; their other dimensions differ",
                n.describe(),
                shape::show(first),
                shape::show(&x.shape)
            );
        }
    }
    let mut out = first.clone();
    out[axis] = Dim::Fixed(lengths(n, axis)?.iter().sum());
    Ok(vec![out])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let axis = axis(n)?;
    let Some(parts) = (0..n.inputs.len()).map(|i| fold::input(n, i)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(ndarray::Axis(axis), &views).ok().and_then(fold::flat))
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None; n.inputs.len()]);
    };
    let axis = axis(n)?;
    let lengths = lengths(n, axis)?;
    if lengths.len() == 1 {
        return Ok(vec![Some(dy.clone())]);
    }
    let axes = e.ints(&[axis as i64]);
    let mut start = 0;
    let mut grads = Vec::with_capacity(lengths.len());
    for len in lengths {
        let (starts, ends) = (e.ints(&[start as i64]), e.ints(&[(start + len) as i64]));
        grads.push(Some(e.op("Slice", &[dy, &starts, &ends, &axes], vec![])));
        start += len;
    }
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    let three = |axis: i64, dims: [[usize; 3]; 3]| {
        let inputs = dims.iter().zip(1..).map(|(d, seed)| uniform(d, seed)).collect();
        checked(inputs, vec![attr::int("axis", axis)])
    };
    vec![
        three(1, [[2, 1, 3], [2, 2, 3], [2, 3, 3]]),
        three(-1, [[2, 2, 1], [2, 2, 2], [2, 2, 1]]),
        three(0, [[1, 2, 2], [2, 2, 2], [1, 2, 2]]),
        checked(vec![uniform(&[2, 3], 4)], vec![attr::int("axis", 0)]),
    ]
}
