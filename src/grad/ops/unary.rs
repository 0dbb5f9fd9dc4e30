//! Elementwise functions of one tensor: Erf (in GELU), Exp, Log, Neg,
//! Sqrt, Tanh.

use anyhow::Result;

use super::samples::{checked, positive, uniform};
use super::{Rule, Sample, Signature, same_shape};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;

pub const ERF: Rule = Rule {
    op: "Erf",
    grads: "dX = dY * 2 / sqrt(pi) * exp(-X^2)",
    signature: ONE,
    infer: same_shape,
    backward: erf,
    samples,
    fold: None,
};

pub const SQRT: Rule = Rule {
    op: "Sqrt",
    grads: "dX = dY / (2 Y)",
    signature: ONE,
    infer: same_shape,
    backward: sqrt,
    samples: log_samples,
    fold: None,
};

pub const EXP: Rule =
    Rule { op: "Exp", grads: "dX = dY * Y", signature: ONE, infer: same_shape, backward: exp, samples, fold: None };

pub const LOG: Rule = Rule {
    op: "Log",
    grads: "dX = dY / X",
    signature: ONE,
    infer: same_shape,
    backward: log,
    samples: log_samples,
    fold: None,
};

pub const NEG: Rule =
    Rule { op: "Neg", grads: "dX = -dY", signature: ONE, infer: same_shape, backward: neg, samples, fold: None };

pub const TANH: Rule = Rule {
    op: "Tanh",
    grads: "dX = dY * (1 - Y^2)",
    signature: ONE,
    infer: same_shape,
    backward: tanh,
    samples,
    fold: None,
};

/// One float in, one float out, no attributes.
const ONE: Signature = Signature::floats(1, &[]);

fn erf(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let x = &n.input(0)?.name;
    let square = e.mul(x, x);
    let minus = e.neg(&square);
    let bell = e.op("Exp", &[&minus], vec![]);
    let slope = e.scale(&bell, std::f32::consts::FRAC_2_SQRT_PI);
    Ok(vec![Some(e.mul(dy, &slope))])
}

fn sqrt(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let half = e.scale(dy, 0.5);
    Ok(vec![Some(e.div(&half, &n.outputs[0].name))])
}

fn exp(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    Ok(vec![dy[0].as_ref().map(|dy| e.mul(dy, &n.outputs[0].name))])
}

fn log(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let x = &n.input(0)?.name;
    Ok(vec![dy[0].as_ref().map(|dy| e.div(dy, x))])
}

fn neg(e: &mut Emit, _: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    Ok(vec![dy[0].as_ref().map(|dy| e.neg(dy))])
}

fn tanh(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let y = &n.outputs[0].name;
    let one = e.scalar(1.0);
    let y2 = e.mul(y, y);
    let slope = e.sub(&one, &y2);
    Ok(vec![Some(e.mul(dy, &slope))])
}

fn samples() -> Vec<Sample> {
    vec![checked(vec![uniform(&[3, 4], 1).mapv(|v| 2.0 * v)], vec![]), checked(vec![uniform(&[2, 1, 3], 2)], vec![])]
}

fn log_samples() -> Vec<Sample> {
    vec![checked(vec![positive(&[3, 4], 3)], vec![]), checked(vec![positive(&[5], 4).mapv(|v| 3.0 * v)], vec![])]
}
