//! Pow: `Y = A^B` elementwise with numpy broadcasting; exporters write
//! LayerNorm's variance before opset 17 as `Pow(X - mean, 2)`.

use anyhow::{Context, Result};

use super::samples::{checked, positive, uniform};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "Pow",
    grads: "dA = dY * B * A^(B - 1); dB = dY * Y * log(A) (each summed to its input's shape)",
    signature: Signature::floats(2, &[]),
    infer,
    backward,
    samples,
    fold: None,
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![shape::broadcast(n.in_shape(0)?, n.in_shape(1)?).with_context(|| n.describe())?])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None, None]) };
    let (a, b, y) = (n.input(0)?, n.input(1)?, &n.outputs[0]);
    let one = e.scalar(1.0);
    let lower = e.sub(&b.name, &one);
    let power = e.op("Pow", &[&a.name, &lower], vec![]);
    let slope = e.mul(&b.name, &power);
    let da = e.mul(dy, &slope);
    let log = e.op("Log", &[&a.name], vec![]);
    let growth = e.mul(&y.name, &log);
    let db = e.mul(dy, &growth);
    Ok(vec![Some(e.sum_to(&da, &y.shape, a)), Some(e.sum_to(&db, &y.shape, b))])
}

fn samples() -> Vec<Sample> {
    let exponent = |v: f32| SampleInput::Const(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), v));
    let square =
        Sample { inputs: vec![SampleInput::Checked(uniform(&[2, 3], 1)), exponent(2.0)], attrs: vec![], outputs: 1 };
    let cube =
        Sample { inputs: vec![SampleInput::Checked(uniform(&[3], 2)), exponent(3.0)], attrs: vec![], outputs: 1 };
    vec![square, cube, checked(vec![positive(&[2, 3], 3), uniform(&[3], 4)], vec![])]
}
