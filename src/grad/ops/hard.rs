//! HardSigmoid and HardSwish, MobileNetV3's cheap activations:
//! `hardsigmoid(X) = max(0, min(1, alpha X + beta))` and
//! `hardswish(X) = X hardsigmoid(X)` with alpha 1/6, beta 1/2.

use anyhow::Result;

use super::samples::{checked, distinct};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, Signature, same_shape};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;

pub const HARD_SIGMOID: Rule = Rule {
    op: "HardSigmoid",
    grads: "dX = dY * alpha where 0 < Y < 1, else 0",
    signature: Signature::floats(1, &[Attribute::of("alpha", Kind::Float), Attribute::of("beta", Kind::Float)]),
    infer: same_shape,
    backward: hard_sigmoid,
    samples: hard_sigmoid_samples,
    fold: None,
};

pub const HARD_SWISH: Rule = Rule {
    op: "HardSwish",
    grads: "dX = dY * (X / 3 + 1/2) where -3 < X < 3; dY where X >= 3; 0 where X <= -3",
    signature: Signature::floats(1, &[]).introduced(14),
    infer: same_shape,
    backward: hard_swish,
    samples: hard_swish_samples,
    fold: None,
};

fn hard_sigmoid(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let y = &n.outputs[0].name;
    let (zero, one) = (e.scalar(0.0), e.scalar(1.0));
    let above = e.op("Greater", &[y, &zero], vec![]);
    let below = e.op("Less", &[y, &one], vec![]);
    let inside = e.op("And", &[&above, &below], vec![]);
    let scaled = e.scale(dy, n.float("alpha", 0.2));
    Ok(vec![Some(e.mask(&scaled, &inside))])
}

fn hard_swish(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None]) };
    let x = &n.input(0)?.name;
    let (three, minus_three, half, one) = (e.scalar(3.0), e.scalar(-3.0), e.scalar(0.5), e.scalar(1.0));
    let third = e.scale(x, 1.0 / 3.0);
    let ramp = e.add(&third, &half);
    let alive = e.op("Greater", &[x, &minus_three], vec![]);
    let rising = e.mask(&ramp, &alive);
    let saturated = e.op("GreaterOrEqual", &[x, &three], vec![]);
    let slope = e.op("Where", &[&saturated, &one, &rising], vec![]);
    Ok(vec![Some(e.mul(dy, &slope))])
}

fn hard_sigmoid_samples() -> Vec<Sample> {
    // distinct() gives multiples of 0.1; scaled, they stay 0.1 or more from
    // the kinks (X = +-1 for alpha = beta = 1/2, +-2.5 by default).
    vec![
        checked(
            vec![distinct(&[3, 4], 1).mapv(|v| 3.0 * v)],
            vec![attr::float("alpha", 0.5), attr::float("beta", 0.5)],
        ),
        checked(vec![distinct(&[2, 3, 2], 2).mapv(|v| 6.0 * v)], vec![]),
    ]
}

fn hard_swish_samples() -> Vec<Sample> {
    vec![checked(vec![distinct(&[3, 4], 3).mapv(|v| 9.0 * v)], vec![])]
}
