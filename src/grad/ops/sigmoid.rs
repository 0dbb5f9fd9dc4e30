//! Sigmoid: `Y = 1 / (1 + exp(-X))`, the paper's activation.

use anyhow::Result;

use super::samples::{checked, uniform};
use super::{Rule, Sample, Signature, same_shape};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;

pub const RULE: Rule = Rule {
    op: "Sigmoid",
    grads: "dX = dY * Y * (1 - Y)",
    signature: Signature::floats(1, &[]),
    infer: same_shape,
    backward,
    samples,
    fold: None,
};

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let y = &n.outputs[0].name;
    let one = e.scalar(1.0);
    let one_minus = e.sub(&one, y);
    let slope = e.mul(y, &one_minus);
    Ok(vec![Some(e.mul(dy, &slope))])
}

fn samples() -> Vec<Sample> {
    vec![checked(vec![uniform(&[3, 4], 1).mapv(|v| 3.0 * v)], vec![])]
}
