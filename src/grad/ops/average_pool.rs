//! AveragePool (2-D, NCHW): the mean of each window, over the taps inside
//! the input (`count_include_pad = 0`) or inside the padded input (1), with
//! pads, strides, dilations (opset 19) and `ceil_mode`.

use anyhow::{Context, Result};
use ndarray::{Array4, ArrayD, IxDyn};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind};
use super::window::{self, Family, Nchw, Window};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "AveragePool",
    grads: "dX = ConvTranspose(dY / count, ones kernel per channel) with the pool's strides, \
            dilations and pads, cropped to X",
    signature: Signature::floats(
        1,
        &[
            Attribute::of("auto_pad", Kind::String),
            Attribute::of("ceil_mode", Kind::Int).flag(),
            Attribute::of("count_include_pad", Kind::Int).flag(),
            Attribute::since("dilations", Kind::Ints, 19),
            Attribute::of("kernel_shape", Kind::Ints),
            Attribute::of("pads", Kind::Ints),
            Attribute::of("strides", Kind::Ints),
        ],
    ),
    infer,
    backward,
    samples,
    fold: None,
};

/// The window, checked to leave room for the ones kernel the backward
/// graph spreads gradients with.
fn geometry(n: &Node) -> Result<(Window, Nchw)> {
    let x = window::nchw(n, 0)?;
    let w = Window::of(n, Family::Pool, window::kernel(n, None)?, x.spatial)?;
    shape::volume(&spreading_kernel(&w, x.channels))
        .with_context(|| format!("{}: the kernel that spreads its gradient", n.describe()))?;
    Ok((w, x))
}

/// One ones kernel per channel: `[C, 1, kh, kw]`.
fn spreading_kernel(w: &Window, channels: usize) -> [usize; 4] {
    [channels, 1, w.kernel[0], w.kernel[1]]
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (w, x) = geometry(n)?;
    Ok(vec![vec![x.batch, Dim::Fixed(x.channels), Dim::Fixed(w.output[0]), Dim::Fixed(w.output[1])]])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let (w, x) = geometry(n)?;
    let channels = x.channels;
    let include_pad = n.int("count_include_pad", 0) != 0;
    let (rows, cols) = (w.counts(0, include_pad), w.counts(1, include_pad));
    let counts = Array4::from_shape_fn((1, 1, rows.len(), cols.len()), |(_, _, i, j)| {
        // A window with no tap inside the input gets no gradient either way.
        (rows[i] * cols[j]).max(1) as f32
    });
    let counts = e.b.const_f32("advx_pool_counts", &counts.into_dyn());
    let ones = ArrayD::from_elem(IxDyn(&spreading_kernel(&w, channels)), 1.0f32);
    let ones = e.b.const_f32("advx_pool_ones", &ones);
    let per_tap = e.div(dy, &counts);
    let mut attrs = w.transposed_attrs();
    attrs.push(attr::int("group", channels as i64));
    Ok(vec![Some(e.op("ConvTranspose", &[&per_tap, &ones], attrs))])
}

fn samples() -> Vec<Sample> {
    let pool = |x: &[usize], seed: u64, kernel: &[i64], strides: &[i64], mut attrs: Vec<_>| {
        attrs.push(attr::ints("kernel_shape", kernel));
        attrs.push(attr::ints("strides", strides));
        checked(vec![uniform(x, seed)], attrs)
    };
    let pads = |p: &[i64], include: i64| vec![attr::ints("pads", p), attr::int("count_include_pad", include)];
    let ceil = |p: &[i64], include: i64| {
        let mut a = pads(p, include);
        a.push(attr::int("ceil_mode", 1));
        a
    };
    vec![
        pool(&[2, 3, 4, 4], 1, &[2, 2], &[2, 2], vec![]),
        pool(&[1, 2, 5, 5], 2, &[3, 3], &[2, 2], pads(&[1, 1, 1, 1], 0)),
        pool(&[1, 2, 5, 5], 3, &[3, 3], &[2, 2], pads(&[1, 1, 1, 1], 1)),
        pool(&[1, 2, 6, 7], 4, &[3, 2], &[2, 2], ceil(&[0, 1, 0, 0], 0)),
        pool(&[1, 2, 6, 7], 5, &[3, 2], &[2, 2], ceil(&[0, 1, 0, 0], 1)),
        pool(&[1, 2, 7, 7], 6, &[2, 3], &[3, 2], ceil(&[0, 0, 0, 0], 0)),
        pool(&[1, 2, 6, 5], 7, &[3, 3], &[2, 2], vec![attr::string("auto_pad", "SAME_UPPER")]),
        pool(
            &[1, 2, 6, 5],
            8,
            &[2, 3],
            &[2, 1],
            vec![attr::string("auto_pad", "SAME_LOWER"), attr::int("count_include_pad", 1)],
        ),
        pool(&[1, 2, 7, 6], 9, &[2, 2], &[3, 3], vec![]),
    ]
}
