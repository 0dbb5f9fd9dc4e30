//! Add, Sub, Mul, Div: elementwise with numpy broadcasting. Each gradient
//! is formed at the output's shape and then summed back to its input's
//! shape (`Emit::sum_to`). On int64 shapes they are folded: N stays N when
//! added to 0 or multiplied or divided by 1.

use anyhow::{Context, Result};
use ndarray::ArrayD;

use super::samples::{checked, positive, uniform};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx::shape::{self, Shape};

pub const ADD: Rule = Rule {
    op: "Add",
    grads: "dA = dY; dB = dY (each summed to its input's shape)",
    signature: Signature::numeric(2, &[]),
    infer,
    backward: add,
    samples,
    fold: Some(fold_add),
};

pub const SUB: Rule = Rule {
    op: "Sub",
    grads: "dA = dY; dB = -dY (each summed to its input's shape)",
    signature: Signature::numeric(2, &[]),
    infer,
    backward: sub,
    samples,
    fold: Some(fold_sub),
};

pub const MUL: Rule = Rule {
    op: "Mul",
    grads: "dA = dY * B; dB = dY * A (each summed to its input's shape)",
    signature: Signature::numeric(2, &[]),
    infer,
    backward: mul,
    samples,
    fold: Some(fold_mul),
};

pub const DIV: Rule = Rule {
    op: "Div",
    grads: "dA = dY / B; dB = -dY * A / B^2, computed as -dY * Y / B (each summed to its input's shape)",
    signature: Signature::numeric(2, &[]),
    infer,
    backward: div,
    samples: div_samples,
    fold: Some(fold_div),
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (a, b) = (n.in_shape(0)?, n.in_shape(1)?);
    Ok(vec![shape::broadcast(a, b).with_context(|| n.describe())?])
}

/// Emits the gradients of A and B at the output's shape with `local`
/// (given dY, A, B and Y), then sums each back to its input's shape.
fn broadcast_back(
    e: &mut Emit,
    n: &Node,
    dy: &[Option<String>],
    local: impl FnOnce(&mut Emit, &str, &str, &str, &str) -> (String, String),
) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None, None]);
    };
    let (a, b, y) = (n.input(0)?, n.input(1)?, &n.outputs[0]);
    let (da, db) = local(e, dy, &a.name, &b.name, &y.name);
    Ok(vec![Some(e.sum_to(&da, &y.shape, a)), Some(e.sum_to(&db, &y.shape, b))])
}

fn add(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    broadcast_back(e, n, dy, |_, dy, _, _, _| (dy.to_string(), dy.to_string()))
}

fn sub(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    broadcast_back(e, n, dy, |e, dy, _, _, _| (dy.to_string(), e.neg(dy)))
}

fn mul(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    broadcast_back(e, n, dy, |e, dy, a, b, _| (e.mul(dy, b), e.mul(dy, a)))
}

fn div(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    broadcast_back(e, n, dy, |e, dy, _, b, y| {
        let da = e.div(dy, b);
        let y_over_b = e.div(y, b);
        let dy_y_over_b = e.mul(dy, &y_over_b);
        (da, e.neg(&dy_y_over_b))
    })
}

/// Folds an elementwise op on known values; `exact` computes two numbers
/// (`None` on overflow or division by zero), `batch` says what N with a
/// number gives (N on the left when `left`).
fn fold_with(
    n: &Node,
    exact: fn(i64, i64) -> Option<i64>,
    batch: fn(i64, bool) -> Option<Int>,
) -> Result<Option<Vec<Int>>> {
    let (Some(a), Some(b)) = (fold::input(n, 0), fold::input(n, 1)) else { return Ok(None) };
    Ok(fold::zip(&a, &b, |x, y| match (x, y) {
        (Int::Known(x), Int::Known(y)) => exact(x, y).map(Int::Known),
        (Int::Batch, Int::Known(y)) => batch(y, true),
        (Int::Known(x), Int::Batch) => batch(x, false),
        (Int::Batch, Int::Batch) => None,
    }))
}

fn fold_add(n: &Node) -> Result<Option<Vec<Int>>> {
    fold_with(n, i64::checked_add, |v, _| (v == 0).then_some(Int::Batch))
}

fn fold_sub(n: &Node) -> Result<Option<Vec<Int>>> {
    fold_with(n, i64::checked_sub, |v, left| (v == 0 && left).then_some(Int::Batch))
}

fn fold_mul(n: &Node) -> Result<Option<Vec<Int>>> {
    fold_with(n, i64::checked_mul, |v, _| (v == 1).then_some(Int::Batch))
}

/// ONNX's integer Div truncates, as Rust's does.
fn fold_div(n: &Node) -> Result<Option<Vec<Int>>> {
    fold_with(n, i64::checked_div, |v, left| (v == 1 && left).then_some(Int::Batch))
}

/// Shape pairs covering equal shapes, a trailing and a leading broadcast,
/// both operands stretched, and a 1-element operand.
const SHAPES: [(&[usize], &[usize]); 5] =
    [(&[2, 3], &[2, 3]), (&[2, 3, 4], &[3, 1]), (&[1], &[2, 3]), (&[2, 1, 4], &[3, 1]), (&[4], &[2, 3, 4])];

/// One sample per shape pair; `second` draws the second operand.
fn pairs(second: fn(&[usize], u64) -> ArrayD<f32>) -> Vec<Sample> {
    let seeds = (1u64..).step_by(2);
    SHAPES.iter().zip(seeds).map(|((a, b), s)| checked(vec![uniform(a, s), second(b, s + 1)], vec![])).collect()
}

fn samples() -> Vec<Sample> {
    pairs(uniform)
}

fn div_samples() -> Vec<Sample> {
    pairs(positive)
}
