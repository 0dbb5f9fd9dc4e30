//! Gelu (opset 20): `Y = X Phi(X)`, Phi the standard normal CDF, or its
//! tanh approximation (`approximate = "tanh"`). Exporters before opset 20
//! write it out with Erf, Div, Add and Mul.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, Signature, same_shape};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;

pub const RULE: Rule = Rule {
    op: "Gelu",
    grads: "dX = dY * (Phi(X) + X phi(X)); tanh: with t = tanh(c (X + k X^3)), \
            dX = dY * (0.5 (1 + t) + 0.5 X (1 - t^2) c (1 + 3 k X^2)), c = sqrt(2 / pi), k = 0.044715",
    signature: Signature::floats(1, &[Attribute::of("approximate", Kind::String)]).introduced(20),
    infer: same_shape,
    backward,
    samples,
    fold: None,
};

/// The tanh approximation's constants.
const C: f32 = 0.797_884_6;
const K: f32 = 0.044_715;

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let x = &n.input(0)?.name;
    let slope = match crate::onnx::attr_string(n.proto, "approximate").as_deref() {
        None | Some("none") => exact(e, x),
        Some("tanh") => tanh(e, x),
        Some(other) => bail!("{} has approximate '{other}'; ONNX knows 'none' and 'tanh'", n.describe()),
    };
    Ok(vec![Some(e.mul(dy, &slope))])
}

/// `Phi(X) + X phi(X)`.
fn exact(e: &mut Emit, x: &str) -> String {
    let scaled = e.scale(x, std::f32::consts::FRAC_1_SQRT_2);
    let erf = e.op("Erf", &[&scaled], vec![]);
    let one = e.scalar(1.0);
    let shifted = e.add(&erf, &one);
    let cdf = e.scale(&shifted, 0.5);
    let square = e.mul(x, x);
    let exponent = e.scale(&square, -0.5);
    let bell = e.op("Exp", &[&exponent], vec![]);
    let density = e.scale(&bell, 0.398_942_3);
    let weighted = e.mul(x, &density);
    e.add(&cdf, &weighted)
}

fn tanh(e: &mut Emit, x: &str) -> String {
    let square = e.mul(x, x);
    let cube = e.mul(&square, x);
    let cubic = e.scale(&cube, K);
    let inner = e.add(x, &cubic);
    let u = e.scale(&inner, C);
    let t = e.op("Tanh", &[&u], vec![]);
    let one = e.scalar(1.0);
    let shifted = e.add(&t, &one);
    let level = e.scale(&shifted, 0.5);
    let t2 = e.mul(&t, &t);
    let sech2 = e.sub(&one, &t2);
    let three_k = e.scale(&square, 3.0 * K);
    let du = e.add(&one, &three_k);
    let du = e.scale(&du, 0.5 * C);
    let rise = e.mul(&sech2, &du);
    let rise = e.mul(x, &rise);
    e.add(&level, &rise)
}

fn samples() -> Vec<Sample> {
    let x = |seed| uniform(&[3, 4], seed).mapv(|v| 3.0 * v);
    vec![
        checked(vec![x(1)], vec![attr::string("approximate", "none")]),
        checked(vec![x(2)], vec![attr::string("approximate", "tanh")]),
    ]
}
