//! Shape and Size: a tensor's dimensions, or their product, as int64. They
//! start the shape computations exporters write; folded with the batch
//! dimension as N. No gradient flows through them.

use anyhow::Result;

use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Signature, no_gradient, no_samples};
use crate::grad::graph::{Int, Node};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{Dim, Shape};

pub const SHAPE: Rule = Rule {
    op: "Shape",
    grads: "none: the output is X's shape (dimensions start to end), an int64 tensor",
    signature: Signature {
        since: 1,
        inputs: 1..=1,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Any), (Port::Output(0), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[Attribute::since("start", Kind::Int, 15), Attribute::since("end", Kind::Int, 15)],
    },
    infer: shape_infer,
    backward: no_gradient,
    samples: no_samples,
    fold: Some(shape_fold),
};

pub const SIZE: Rule = Rule {
    op: "Size",
    grads: "none: the output is X's number of elements, an int64 scalar",
    signature: Signature {
        since: 1,
        inputs: 1..=1,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Any), (Port::Output(0), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[],
    },
    infer: size_infer,
    backward: no_gradient,
    samples: no_samples,
    fold: Some(size_fold),
};

/// The dimensions Shape returns: `start..end`, each negative one counted
/// from the end, both clamped to the rank (ONNX's rule).
fn dims<'a>(n: &'a Node) -> Result<&'a [Dim]> {
    let x = n.in_shape(0)?;
    let rank = x.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(n.int("start", 0)), clamp(n.int("end", rank)));
    Ok(&x[start..end.max(start)])
}

fn shape_infer(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![vec![Dim::Fixed(dims(n)?.len())]])
}

fn shape_fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let value = dims(n)?.iter().map(|d| d.fixed().map_or(Int::Batch, |v| Int::Known(v as i64)));
    Ok(Some(value.collect()))
}

fn size_infer(_: &Node) -> Result<Vec<Shape>> {
    Ok(vec![vec![]])
}

/// The product of the dimensions: a number, N when the others multiply to
/// 1, and unknown otherwise (a multiple of N).
fn size_fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let x = n.in_shape(0)?;
    let fixed: usize = x.iter().filter_map(|d| d.fixed()).product();
    Ok(match x.iter().filter(|d| d.fixed().is_none()).count() {
        0 => Some(vec![Int::Known(fixed as i64)]),
        1 if fixed == 1 => Some(vec![Int::Batch]),
        _ => None,
    })
}
