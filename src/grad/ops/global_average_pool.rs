//! GlobalAveragePool: `Y[n, c, 1, ..., 1] = mean of X[n, c]` over the
//! spatial dimensions.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "GlobalAveragePool",
    grads: "dX = dY / (H * W), broadcast over H and W",
    signature: Signature::floats(1, &[]),
    infer,
    backward,
    samples,
    fold: None,
};

/// The number of spatial positions averaged.
fn area(n: &Node) -> Result<usize> {
    let x = n.in_shape(0)?;
    if x.len() < 3 {
        bail!("{} needs an input of rank 3 or more (N, C, spatial...), got {}", n.describe(), shape::show(x));
    }
    let spatial = shape::all_fixed(&x[2..], &format!("the spatial size of {}'s input", n.describe()))?;
    Ok(spatial.iter().product())
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    area(n)?;
    let x = n.in_shape(0)?;
    let mut y = x[..2].to_vec();
    y.resize(x.len(), Dim::Fixed(1));
    Ok(vec![y])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let x = &n.input(0)?.name;
    let scaled = e.scale(dy, 1.0 / area(n)? as f32);
    let shape = e.shape_of(x);
    Ok(vec![Some(e.op("Expand", &[&scaled, &shape], vec![]))])
}

fn samples() -> Vec<Sample> {
    vec![checked(vec![uniform(&[2, 3, 4, 5], 1)], vec![]), checked(vec![uniform(&[1, 2, 3, 3], 2)], vec![])]
}
