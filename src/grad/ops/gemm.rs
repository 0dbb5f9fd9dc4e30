//! Gemm: `Y = alpha * A' @ B' + beta * C`, where `A'` is `A` or its
//! transpose (`transA`) and likewise `B'`; the layer torch.onnx.export
//! writes for `nn.Linear` (with `transB = 1`).

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "Gemm",
    grads: "dA = alpha * dY @ B'^T (transposed back if transA); dB = alpha * A'^T @ dY (likewise); dC = beta * dY summed to C's shape",
    signature: Signature {
        since: 1,
        inputs: 2..=3,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[],
        t: FLOAT,
        attributes: &[
            Attribute::of("alpha", Kind::Float),
            Attribute::of("beta", Kind::Float),
            Attribute::of("transA", Kind::Int).flag(),
            Attribute::of("transB", Kind::Int).flag(),
        ],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// `transA` and `transB`, flags the signature checks to be 0 or 1 (the
/// backward Gemms flip them as `1 - t`).
fn transposed(n: &Node) -> (i64, i64) {
    (n.int("transA", 0), n.int("transB", 0))
}

/// `[M, N]` from A' `[M, K]` and B' `[K, N]`, whose K must agree, and C
/// must broadcast to `[M, N]` (one way: C is never stretched by it).
fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (a, b) = (n.in_shape(0)?, n.in_shape(1)?);
    if a.len() != 2 || b.len() != 2 {
        bail!("{} needs 2-D A and B, got {} and {}", n.describe(), shape::show(a), shape::show(b));
    }
    let (ta, tb) = transposed(n);
    let (m, k_a) = if ta == 0 { (a[0], a[1]) } else { (a[1], a[0]) };
    let (k_b, cols) = if tb == 0 { (b[0], b[1]) } else { (b[1], b[0]) };
    if k_a != k_b {
        bail!(
            "{} multiplies A {} by B {} (transA {ta}, transB {tb}): the inner dimensions {k_a} and {k_b} differ",
            n.describe(),
            shape::show(a),
            shape::show(b)
        );
    }
    let y = vec![m, cols];
    if let Some(c) = n.opt_input(2)
        && shape::broadcast(&c.shape, &y).ok().as_ref() != Some(&y)
    {
        bail!(
            "{} adds C {} to a product of shape {}, which C does not broadcast to",
            n.describe(),
            shape::show(&c.shape),
            shape::show(&y)
        );
    }
    Ok(vec![y])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None, None, None]) };
    let (a, b) = (&n.input(0)?.name, &n.input(1)?.name);
    let (ta, tb) = transposed(n);
    let alpha = n.float("alpha", 1.0);
    let gemm = |e: &mut Emit, x: &str, y: &str, tx: i64, ty: i64| {
        e.op("Gemm", &[x, y], vec![attr::float("alpha", alpha), attr::int("transA", tx), attr::int("transB", ty)])
    };
    let da = if ta == 0 { gemm(e, dy, b, 0, 1 - tb) } else { gemm(e, b, dy, tb, 1) };
    let db = if tb == 0 { gemm(e, a, dy, 1 - ta, 0) } else { gemm(e, dy, a, 1, ta) };
    let dc = match n.opt_input(2) {
        Some(c) => {
            let scaled = e.scale(dy, n.float("beta", 1.0));
            Some(e.sum_to(&scaled, &n.outputs[0].shape, c))
        }
        None => None,
    };
    Ok(vec![Some(da), Some(db), dc])
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for (ta, tb) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let a = if ta == 0 { [3, 4] } else { [4, 3] };
        let b = if tb == 0 { [4, 5] } else { [5, 4] };
        out.push(checked(
            vec![uniform(&a, 1), uniform(&b, 2), uniform(&[5], 3)],
            vec![attr::int("transA", ta), attr::int("transB", tb), attr::float("alpha", 0.7), attr::float("beta", 1.3)],
        ));
    }
    out.push(checked(vec![uniform(&[3, 4], 4), uniform(&[4, 5], 5), uniform(&[3, 1], 6)], vec![]));
    out.push(checked(vec![uniform(&[3, 4], 7), uniform(&[5, 4], 8)], vec![attr::int("transB", 1)]));
    out
}
