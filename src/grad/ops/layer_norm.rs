//! LayerNormalization (opset 17): each example normalised over the axes
//! from `axis` on, `Y = (X - mean) / sqrt(var + eps) * Scale + B`; ConvNeXt
//! and ViT's norm.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "LayerNormalization",
    grads: "with means over the normalised axes, r = 1 / sqrt(var + eps), Xh = (X - mean) * r, G = dY * Scale: \
            dX = r * (G - mean(G) - Xh * mean(G * Xh)); dScale = dY * Xh and dB = dY, each summed to its shape",
    signature: Signature {
        since: 17,
        inputs: 2..=3,
        outputs: 1..=3,
        inputs_since: &[],
        typed: &[],
        t: super::signature::FLOAT,
        attributes: &[
            Attribute::of("axis", Kind::Int),
            Attribute::of("epsilon", Kind::Float),
            Attribute::of("stash_type", Kind::Int),
        ],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// The normalised axes and how many elements they hold, which must be static.
fn normalised(n: &Node) -> Result<(Vec<i64>, usize)> {
    let x = n.in_shape(0)?;
    let axis = n.axis("axis", -1, x.len())?;
    let Ok(dims) = shape::all_fixed(&x[axis..], "") else {
        bail!("{} normalises {} from axis {axis}, over the batch dimension", n.describe(), shape::show(x));
    };
    Ok(((axis as i64..x.len() as i64).collect(), dims.iter().product()))
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let (axes, _) = normalised(n)?;
    let inner = &x[axes[0] as usize..];
    for (i, what) in [(1, "Scale"), (2, "B")] {
        if let Some(t) = n.opt_input(i)
            && shape::broadcast(inner, &t.shape).ok().as_deref() != Some(inner)
        {
            bail!(
                "{} has {what} of shape {}, which does not broadcast to {}",
                n.describe(),
                shape::show(&t.shape),
                shape::show(inner)
            );
        }
    }
    let mut stats = x.clone();
    for &a in &axes {
        stats[a as usize] = shape::Dim::Fixed(1);
    }
    Ok(vec![x.clone(), stats.clone(), stats])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    if dy.iter().skip(1).any(Option::is_some) {
        bail!("{}: a gradient reaches its Mean or InvStdDev output; advx differentiates Y only", n.describe());
    }
    let Some(dy) = &dy[0] else { return Ok(vec![None; n.inputs.len()]) };
    let (x, scale) = (n.input(0)?, n.input(1)?);
    let (axes, count) = normalised(n)?;
    let mean = |e: &mut Emit, t: &str| {
        let total = e.reduce_sum(t, &axes, true);
        e.scale(&total, 1.0 / count as f32)
    };
    let mu = mean(e, &x.name);
    let centred = e.sub(&x.name, &mu);
    let squares = e.mul(&centred, &centred);
    let var = mean(e, &squares);
    let eps = e.scalar(n.float("epsilon", 1e-5));
    let var_eps = e.add(&var, &eps);
    let root = e.op("Sqrt", &[&var_eps], vec![]);
    let one = e.scalar(1.0);
    let r = e.div(&one, &root);
    let xh = e.mul(&centred, &r);
    let g = e.mul(dy, &scale.name);
    let g_mean = mean(e, &g);
    let gxh = e.mul(&g, &xh);
    let gxh_mean = mean(e, &gxh);
    let along = e.mul(&xh, &gxh_mean);
    let centred_g = e.sub(&g, &g_mean);
    let inner = e.sub(&centred_g, &along);
    let dx = e.mul(&r, &inner);
    let dy_xh = e.mul(dy, &xh);
    let mut grads = vec![Some(dx), Some(e.sum_to(&dy_xh, &x.shape, scale))];
    if let Some(b) = n.opt_input(2) {
        grads.push(Some(e.sum_to(dy, &x.shape, b)));
    }
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    let with_bias = |x: &[usize], inner: &[usize], seed, attrs| {
        checked(vec![uniform(x, seed), uniform(inner, seed + 1), uniform(inner, seed + 2)], attrs)
    };
    vec![
        with_bias(&[2, 3, 4], &[4], 1, vec![]),
        with_bias(&[2, 3, 4], &[3, 4], 4, vec![attr::int("axis", 1), attr::float("epsilon", 1e-3)]),
        Sample {
            inputs: vec![SampleInput::Checked(uniform(&[3, 5], 7)), SampleInput::Checked(uniform(&[5], 8))],
            attrs: vec![attr::int("axis", -1)],
            outputs: 1,
        },
    ]
}
