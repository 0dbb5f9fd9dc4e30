//! LRN, local response normalisation across channels:
//! `Y = X / S^beta` with `S = bias + alpha / size * sum of X^2` over the
//! channels `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)`.
//! ONNX Runtime runs odd sizes only, so advx refuses even ones.

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::samples::{checked, positive};
use super::signature::{Attribute, Kind};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "LRN",
    grads: "dX = dY * S^-beta - 2 alpha beta / size * X * W'(dY * Y / S), W' the channel-window sum transposed",
    signature: Signature::floats(
        1,
        &[
            Attribute::of("alpha", Kind::Float),
            Attribute::of("beta", Kind::Float),
            Attribute::of("bias", Kind::Float),
            Attribute::of("size", Kind::Int),
        ],
    ),
    infer,
    backward,
    samples,
    fold: None,
};

/// The window size and the channel count.
fn geometry(n: &Node) -> Result<(usize, usize)> {
    let size = n.int("size", 0);
    if size < 1 || size % 2 == 0 {
        bail!("{} needs an odd positive 'size' (ONNX Runtime runs no other), got {size}", n.describe());
    }
    let (alpha, beta) = (n.float("alpha", 1e-4), n.float("beta", 0.75));
    if !(alpha > 0.0 && beta > 0.0) {
        bail!("{} has alpha {alpha} and beta {beta}; ONNX Runtime runs positive ones only", n.describe());
    }
    if size as usize > shape::MAX_ELEMENTS {
        bail!("{} has size {size}, larger than the 2^{} advx handles", n.describe(), shape::MAX_ELEMENTS_LOG2);
    }
    let x = n.in_shape(0)?;
    match x.get(1) {
        Some(Dim::Fixed(c)) if x.len() >= 3 => Ok((size as usize, *c)),
        _ => bail!("{} needs an input [N, C, spatial...] with a static C, got {}", n.describe(), shape::show(x)),
    }
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    geometry(n)?;
    Ok(vec![n.in_shape(0)?.clone()])
}

/// Sums `t` (shaped like X) over a window of channels, `before` channels
/// below and `after` above each one, as a convolution with a ones kernel
/// over `[N, 1, C, rest]`.
fn channel_window(
    e: &mut Emit,
    t: &str,
    like: &str,
    channels: usize,
    size: usize,
    before: usize,
    after: usize,
) -> String {
    let columns = e.reshape(t, &[0, 1, channels as i64, -1]);
    let ones = ArrayD::from_elem(IxDyn(&[1, 1, size, 1]), 1.0f32);
    let ones = e.b.const_f32("advx_lrn_window", &ones);
    let summed = e.op("Conv", &[&columns, &ones], vec![attr::ints("pads", &[before as i64, 0, after as i64, 0])]);
    e.reshape_like(&summed, like)
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let (size, channels) = geometry(n)?;
    let x = &n.input(0)?.name;
    let y = &n.outputs[0].name;
    let (alpha, beta, bias) = (n.float("alpha", 1e-4), n.float("beta", 0.75), n.float("bias", 1.0));
    let (lo, hi) = ((size - 1) / 2, size / 2);

    let squares = e.mul(x, x);
    let sums = channel_window(e, &squares, x, channels, size, lo, hi);
    let scaled = e.scale(&sums, alpha / size as f32);
    let bias = e.scalar(bias);
    let s = e.add(&scaled, &bias);

    let exponent = e.scalar(-beta);
    let factor = e.op("Pow", &[&s, &exponent], vec![]);
    let direct = e.mul(dy, &factor);

    let dy_y = e.mul(dy, y);
    let per_sum = e.div(&dy_y, &s);
    // Channel i is in the window of c when c - lo <= i <= c + hi, i.e. c runs i - hi ..= i + lo.
    let spread = channel_window(e, &per_sum, x, channels, size, hi, lo);
    let through = e.mul(x, &spread);
    let through = e.scale(&through, 2.0 * alpha * beta / size as f32);
    Ok(vec![Some(e.sub(&direct, &through))])
}

fn samples() -> Vec<Sample> {
    let lrn = |x: &[usize], seed: u64, size: i64, alpha: f32, beta: f32, bias: f32| {
        checked(
            vec![positive(x, seed)],
            vec![
                attr::int("size", size),
                attr::float("alpha", alpha),
                attr::float("beta", beta),
                attr::float("bias", bias),
            ],
        )
    };
    vec![
        lrn(&[2, 5, 3, 3], 1, 3, 0.5, 0.75, 1.0),
        lrn(&[1, 4, 3, 2], 2, 1, 1.0, 0.5, 1.0),
        lrn(&[1, 5, 2, 3], 3, 5, 2.0, 0.6, 2.0),
        lrn(&[1, 3, 2, 2], 4, 5, 1.5, 1.0, 0.5),
    ]
}
