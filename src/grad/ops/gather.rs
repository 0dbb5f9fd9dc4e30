//! Gather: `Y = X[..., indices, ...]` along one axis. On floats it takes
//! class tokens (`x[:, 0]`) and attention's query, key and value; on int64
//! it picks dimensions out of a shape, and is folded.

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayD, Axis, IxDyn};

use super::samples::uniform;
use super::signature::{Attribute, Kind, NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx::builder::attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "Gather",
    grads: "dX = dY scattered back along axis, summed where an index repeats: dY (its index dims flattened to k) \
            times the one-hot matrix [k, X.shape[axis]] of the constant indices",
    signature: Signature {
        since: 1,
        inputs: 2..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
        t: NUMERIC,
        attributes: &[Attribute::of("axis", Kind::Int)],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

fn axis(n: &Node) -> Result<usize> {
    n.axis("axis", 0, n.in_shape(0)?.len())
}

/// The indices, each checked against the gathered axis when both are known
/// and made non-negative; `None` when they are only known at run time.
fn indices(n: &Node) -> Result<Option<Vec<usize>>> {
    let (x, axis) = (n.in_shape(0)?, axis(n)?);
    let Some(values) = n.input(1)?.known_ints() else { return Ok(None) };
    let Some(size) = x[axis].fixed() else {
        bail!("{} gathers along axis {axis} of {}, the batch dimension", n.describe(), shape::show(x))
    };
    let size = size as i64;
    let normalised = values.iter().map(|&i| match i {
        i if (0..size).contains(&i) => Ok(i as usize),
        i if (-size..0).contains(&i) => Ok((i + size) as usize),
        i => bail!("{} gathers index {i} along axis {axis} of {}, out of range", n.describe(), shape::show(x)),
    });
    normalised.collect::<Result<Vec<_>>>().map(Some)
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (x, axis) = (n.in_shape(0)?, axis(n)?);
    indices(n)?;
    let index_shape = n.in_shape(1)?;
    Ok(vec![x[..axis].iter().chain(index_shape).chain(&x[axis + 1..]).copied().collect()])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let (Some(x), Some(picks)) = (fold::input(n, 0), indices(n)?) else { return Ok(None) };
    let Ok(out) = shape::all_fixed(&n.outputs[0].shape, "") else { return Ok(None) };
    let picked = x.select(Axis(axis(n)?), &picks);
    Ok(picked.as_standard_layout().into_owned().into_shape_with_order(IxDyn(&out)).ok().and_then(fold::flat))
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None, None]) };
    let x = n.in_shape(0)?;
    let axis = axis(n)?;
    let Some(picks) = indices(n)? else {
        bail!(
            "{} takes its indices from '{}', computed at run time; advx differentiates Gather with constant indices",
            n.describe(),
            n.input(1)?.name
        )
    };
    let size = x[axis].fixed().context("the gathered axis is static")?;
    let mut one_hot = Array2::<f32>::zeros((picks.len(), size));
    for (row, &i) in picks.iter().enumerate() {
        one_hot[[row, i]] = 1.0;
    }
    let (rank, index_rank) = (x.len(), n.in_shape(1)?.len());
    // dY [outer, index dims, inner] -> [outer, inner, k] @ one-hot -> [outer, inner, size] -> dX.
    let mut to_end: Vec<i64> = (0..axis).chain(axis + index_rank..rank - 1 + index_rank).map(|a| a as i64).collect();
    to_end.extend((axis..axis + index_rank).map(|a| a as i64));
    let moved =
        if to_end.iter().enumerate().all(|(i, &a)| a == i as i64) { dy.clone() } else { e.transpose(dy, &to_end) };
    let mut flat = vec![0i64; rank - 1];
    flat.push(picks.len() as i64);
    let rows = e.reshape(&moved, &flat);
    let one_hot = e.b.const_f32("advx_one_hot", &one_hot.into_dyn());
    let spread = e.op("MatMul", &[&rows, &one_hot], vec![]);
    let back: Vec<i64> = (0..axis).chain([rank - 1]).chain(axis..rank - 1).map(|a| a as i64).collect();
    let dx = if axis == rank - 1 { spread } else { e.transpose(&spread, &back) };
    Ok(vec![Some(dx), None])
}

fn samples() -> Vec<Sample> {
    let sample = |x: &[usize], indices: ArrayD<i64>, axis: i64, seed| Sample {
        inputs: vec![SampleInput::Checked(uniform(x, seed)), SampleInput::IntArray(indices)],
        attrs: vec![attr::int("axis", axis)],
        outputs: 1,
    };
    let scalar = |i: i64| ArrayD::from_elem(IxDyn(&[]), i);
    let list = |v: &[i64]| ndarray::arr1(v).into_dyn();
    vec![
        sample(&[3, 4], list(&[2, 0, 2]), 0, 1),
        sample(&[2, 5, 3], scalar(0), 1, 2),
        sample(&[2, 3, 4], ndarray::arr2(&[[1, -1], [0, 3]]).into_dyn(), -1, 3),
        sample(&[3, 2, 2], scalar(-1), 0, 4),
        sample(&[4], scalar(2), 0, 5),
    ]
}
