//! Equal: an elementwise comparison, boolean, with numpy broadcasting.
//! Exporters compare shapes with -1; folded, N equal to no number below 1.

use anyhow::{Context, Result};

use super::signature::{NUMERIC, Port, Ty};
use super::{Rule, Signature, no_gradient, no_samples};
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Shape};

pub const EQUAL: Rule = Rule {
    op: "Equal",
    grads: "none: the output is boolean",
    signature: Signature {
        since: 1,
        inputs: 2..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Output(0), Ty::Is(DataType::Bool))],
        t: NUMERIC,
        attributes: &[],
    },
    infer,
    backward: no_gradient,
    samples: no_samples,
    fold: Some(fold),
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![shape::broadcast(n.in_shape(0)?, n.in_shape(1)?).with_context(|| n.describe())?])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let (Some(a), Some(b)) = (fold::input(n, 0), fold::input(n, 1)) else { return Ok(None) };
    let truth = |v: bool| Some(Int::Known(i64::from(v)));
    Ok(fold::zip(&a, &b, |x, y| match (x, y) {
        (Int::Known(x), Int::Known(y)) => truth(x == y),
        (Int::Batch, Int::Batch) => truth(true),
        (Int::Batch, Int::Known(v)) | (Int::Known(v), Int::Batch) if v < 1 => truth(false),
        _ => None,
    }))
}
