//! Clip: `Y = min(max(X, min), max)`, with `min` and `max` optional scalar
//! inputs (opset 11 and later).

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::samples::distinct;
use super::signature::FLOAT;
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "Clip",
    grads: "dX = dY where min <= X <= max, else 0; min and max get no gradient",
    signature: Signature {
        since: 1,
        inputs: 1..=3,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[],
        t: FLOAT,
        attributes: &[],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// X's shape; `min` and `max` must each hold one value (ONNX says a
/// scalar; ONNX Runtime takes any one-element tensor).
fn infer(n: &Node) -> Result<Vec<Shape>> {
    for (i, what) in [(1, "min"), (2, "max")] {
        if let Some(bound) = n.opt_input(i)
            && (bound.shape.iter().any(|d| d.fixed().is_none()) || shape::per_example(&bound.shape)? != 1)
        {
            bail!(
                "{} has {what} '{}' of shape {}, not a single value",
                n.describe(),
                bound.name,
                shape::show(&bound.shape)
            );
        }
    }
    Ok(vec![n.in_shape(0)?.clone()])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let Some(dy) = &dy[0] else {
        return Ok(grads);
    };
    let x = &n.input(0)?.name;
    let above_min = n.opt_input(1).map(|min| e.op("GreaterOrEqual", &[x, &min.name], vec![]));
    let below_max = n.opt_input(2).map(|max| e.op("LessOrEqual", &[x, &max.name], vec![]));
    let inside = match (above_min, below_max) {
        (Some(a), Some(b)) => Some(e.op("And", &[&a, &b], vec![])),
        (a, b) => a.or(b),
    };
    grads[0] = Some(match inside {
        Some(inside) => e.mask(dy, &inside),
        None => dy.clone(),
    });
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    // distinct() gives multiples of 0.1; the bounds sit halfway between
    // them, further from every value than the check's step.
    let scalar = |v: f32| SampleInput::Const(ArrayD::from_elem(IxDyn(&[]), v));
    let x = |seed| SampleInput::Checked(distinct(&[3, 4], seed));
    let sample = |inputs| Sample { inputs, attrs: vec![], outputs: 1 };
    vec![
        sample(vec![x(1), scalar(-0.25), scalar(0.35)]),
        sample(vec![x(2), SampleInput::Absent, scalar(0.15)]),
        sample(vec![x(3), scalar(-0.05)]),
        sample(vec![x(4)]),
    ]
}
