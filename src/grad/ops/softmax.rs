//! Softmax and LogSoftmax along one axis (opset 13 semantics: default axis
//! -1, no coercion to 2-D).

use anyhow::Result;

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::Shape;

pub const SOFTMAX: Rule = Rule {
    op: "Softmax",
    grads: "dX = Y * (dY - sum(dY * Y, axis))",
    signature: Signature::floats(1, &[Attribute::of("axis", Kind::Int)]),
    infer,
    backward: softmax,
    samples,
    fold: None,
};

pub const LOG_SOFTMAX: Rule = Rule {
    op: "LogSoftmax",
    grads: "dX = dY - exp(Y) * sum(dY, axis)",
    signature: Signature::floats(1, &[Attribute::of("axis", Kind::Int)]),
    infer,
    backward: log_softmax,
    samples,
    fold: None,
};

/// The node's axis, normalised.
fn axis(n: &Node) -> Result<i64> {
    Ok(n.axis("axis", -1, n.in_shape(0)?.len())? as i64)
}

/// X's shape, once the axis is checked to be one of X's.
fn infer(n: &Node) -> Result<Vec<Shape>> {
    axis(n)?;
    Ok(vec![n.in_shape(0)?.clone()])
}

fn softmax(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let y = &n.outputs[0].name;
    let dy_y = e.mul(dy, y);
    let total = e.reduce_sum(&dy_y, &[axis(n)?], true);
    let centred = e.sub(dy, &total);
    Ok(vec![Some(e.mul(y, &centred))])
}

fn log_softmax(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let total = e.reduce_sum(dy, &[axis(n)?], true);
    let probs = e.op("Exp", &[&n.outputs[0].name], vec![]);
    let spread = e.mul(&probs, &total);
    Ok(vec![Some(e.sub(dy, &spread))])
}

fn samples() -> Vec<Sample> {
    let x = |dims: &[usize], seed| uniform(dims, seed).mapv(|v| 2.0 * v);
    vec![
        checked(vec![x(&[3, 4], 1)], vec![]),
        checked(vec![x(&[2, 3, 4], 2)], vec![attr::int("axis", 1)]),
        checked(vec![x(&[2, 3, 2], 3)], vec![attr::int("axis", -3)]),
        checked(vec![x(&[5], 4)], vec![attr::int("axis", 0)]),
    ]
}
