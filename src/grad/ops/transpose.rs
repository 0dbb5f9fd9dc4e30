//! Transpose: permutes the axes (by default, reverses them).

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::Shape;

pub const RULE: Rule = Rule {
    op: "Transpose",
    grads: "dX = transpose(dY, inverse(perm))",
    signature: Signature::floats(1, &[Attribute::of("perm", Kind::Ints)]),
    infer,
    backward,
    samples,
    fold: None,
};

/// The node's permutation, checked to be one.
fn perm(n: &Node) -> Result<Vec<usize>> {
    let rank = n.in_shape(0)?.len();
    let perm: Vec<usize> = match n.ints("perm") {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX)).collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if !sorted.iter().copied().eq(0..rank) {
        bail!("{}: perm {perm:?} is not a permutation of the {rank} axes of its input", n.describe());
    }
    Ok(perm)
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    Ok(vec![perm(n)?.iter().map(|&a| x[a]).collect()])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let perm = perm(n)?;
    let mut inverse = vec![0i64; perm.len()];
    for (i, &a) in perm.iter().enumerate() {
        inverse[a] = i as i64;
    }
    Ok(vec![Some(e.transpose(dy, &inverse))])
}

fn samples() -> Vec<Sample> {
    let x = |seed| vec![uniform(&[2, 3, 4], seed)];
    vec![
        checked(x(1), vec![]),
        checked(x(2), vec![attr::ints("perm", &[1, 2, 0])]),
        checked(x(3), vec![attr::ints("perm", &[0, 2, 1])]),
        checked(vec![uniform(&[2, 1, 3, 2], 4)], vec![attr::ints("perm", &[3, 0, 2, 1])]),
    ]
}
