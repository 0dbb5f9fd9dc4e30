//! Conv (2-D, NCHW): `Y[n, m] = B[m] + sum_c X[n, group(m) c] * W[m, c]`,
//! with strides, pads (or `auto_pad`), dilations and groups.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind};
use super::window::{self, Family, Window};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Conv",
    grads: "dX = ConvTranspose(dY, W) with the same strides, dilations and groups, cropped to X; \
            dW = Conv(X with batch and channels swapped, dY as weights) with strides and dilations exchanged; \
            dB = dY summed over N, H, W",
    signature: Signature {
        since: 1,
        inputs: 2..=3,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[],
        t: FLOAT,
        attributes: &[
            Attribute::of("auto_pad", Kind::String),
            Attribute::of("dilations", Kind::Ints),
            Attribute::of("group", Kind::Int),
            Attribute::of("kernel_shape", Kind::Ints),
            Attribute::of("pads", Kind::Ints),
            Attribute::of("strides", Kind::Ints),
        ],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// Below this many input channels dX stays a ConvTranspose: measured on the
/// conv net, a 16-to-1-channel Conv ran 4x slower than the ConvTranspose.
const MIN_CHANNELS_FOR_CONV: usize = 8;

/// What Conv's backward needs to know of a node.
struct Geometry {
    window: Window,
    batch: Dim,
    group: usize,
    /// Input channels per group.
    per_group: usize,
    out_channels: usize,
}

fn geometry(n: &Node) -> Result<Geometry> {
    let x = window::nchw(n, 0)?;
    let w = n.input(1)?;
    let w_shape = match w.shape.as_slice() {
        [m, c, kh, kw] => {
            let d = [*m, *c, *kh, *kw].map(Dim::fixed);
            match d {
                [Some(m), Some(c), Some(kh), Some(kw)] => [m, c, kh, kw],
                _ => bail!("{} needs weights of static shape, got {}", n.describe(), shape::show(&w.shape)),
            }
        }
        s => bail!("{} supports only 2-D convolutions (4-D weights), but W is {}", n.describe(), shape::show(s)),
    };
    let [m, per_group, kh, kw] = w_shape;
    let group = n.int("group", 1);
    if group < 1 {
        bail!("{} has group {group}", n.describe());
    }
    let group = usize::try_from(group).unwrap_or(usize::MAX);
    if per_group.checked_mul(group) != Some(x.channels) || m % group != 0 || m == 0 {
        bail!(
            "{} has group {group}, input channels {} and weights {}, which do not fit together",
            n.describe(),
            x.channels,
            shape::show(&w.shape)
        );
    }
    if let Some(b) = n.opt_input(2).filter(|b| b.shape != [Dim::Fixed(m)]) {
        bail!("{} has bias {} for {m} output channels", n.describe(), shape::show(&b.shape));
    }
    let kernel = window::kernel(n, Some([kh, kw]))?;
    let window = Window::of(n, Family::Conv, kernel, x.spatial)?;
    Ok(Geometry { window, batch: x.batch, group, per_group, out_channels: m })
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let g = geometry(n)?;
    let [oh, ow] = g.window.output;
    Ok(vec![vec![g.batch, Dim::Fixed(g.out_channels), Dim::Fixed(oh), Dim::Fixed(ow)]])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let Some(dy) = &dy[0] else { return Ok(grads) };
    let g = geometry(n)?;
    let (x, w) = (&n.input(0)?.name, &n.input(1)?.name);
    let group = g.group as i64;

    grads[0] = Some(match flipped_pads(&g.window, g.per_group * g.group) {
        Some(pads) => input_grad_by_conv(e, &g, w, dy, pads),
        None => {
            let mut attrs = g.window.transposed_attrs();
            attrs.push(attr::int("group", group));
            e.op("ConvTranspose", &[dy, w], attrs)
        }
    });
    grads[1] = Some(weight_grad(e, &g, x, dy));
    if n.opt_input(2).is_some() {
        grads[2] = Some(e.reduce_sum(dy, &[0, 2, 3], false));
    }
    Ok(grads)
}

/// For stride 1, the pads that make dX a plain convolution of dY with the
/// flipped kernel: `span - 1 - pad` on each side (`None` when one would be
/// negative, or the stride is not 1, or X has too few channels for
/// ONNX Runtime's blocked Conv to beat its ConvTranspose).
fn flipped_pads(w: &Window, input_channels: usize) -> Option<[i64; 4]> {
    if w.strides != [1, 1] || input_channels < MIN_CHANNELS_FOR_CONV {
        return None;
    }
    let mut pads = [0i64; 4];
    for (i, pad) in pads.iter_mut().enumerate() {
        *pad = w.span(i % 2) as i64 - 1 - w.pads[i] as i64;
    }
    pads.iter().all(|&p| p >= 0).then_some(pads)
}

/// dX for stride 1 as a Conv rather than a ConvTranspose: ONNX Runtime's
/// Conv has blocked (NCHWc) kernels and its ConvTranspose does not, which
/// made the conv net's backward graph run 2x slower than needed. The kernel
/// is W with input and output channels swapped within each group and both
/// spatial axes reversed.
fn input_grad_by_conv(e: &mut Emit, g: &Geometry, w: &str, dy: &str, pads: [i64; 4]) -> String {
    let [kh, kw] = g.window.kernel.map(|v| v as i64);
    let (group, ci) = (g.group as i64, g.per_group as i64);
    let co = (g.out_channels / g.group) as i64;
    let swapped = if g.group == 1 {
        e.transpose(w, &[1, 0, 2, 3])
    } else {
        let split = e.reshape(w, &[group, co, ci, kh, kw]);
        let inner = e.transpose(&split, &[0, 2, 1, 3, 4]);
        e.reshape(&inner, &[group * ci, co, kh, kw])
    };
    let starts = e.ints(&[-1, -1]);
    let ends = e.ints(&[-kh - 1, -kw - 1]);
    let axes = e.ints(&[2, 3]);
    let steps = e.ints(&[-1, -1]);
    let flipped = e.op("Slice", &[&swapped, &starts, &ends, &axes, &steps], vec![]);
    let attrs = vec![
        attr::ints("dilations", &g.window.dilations.map(|v| v as i64)),
        attr::ints("pads", &pads),
        attr::int("group", group),
    ];
    e.op("Conv", &[dy, &flipped], attrs)
}

/// dW[m, c, a, b] = sum_{n, i, j} dY[n, m, i, j] X[n, group(m) c, i s + a d - p, j s + b d - p]:
/// a convolution over X with the batch as channels and dY as the kernel,
/// strides and dilations exchanged.
fn weight_grad(e: &mut Emit, g: &Geometry, x: &str, dy: &str) -> String {
    let w = &g.window;
    let [h, wd] = w.input.map(|v| v as i64);
    let (ci, group) = (g.per_group as i64, g.group as i64);
    // X [N, g*Ci, H, W] -> [Ci, g*N, H, W], channel block k holding group k's images.
    let images = if g.group == 1 {
        e.transpose(x, &[1, 0, 2, 3])
    } else {
        let split = e.reshape(x, &[0, group, ci, h, wd]);
        let swapped = e.transpose(&split, &[2, 1, 0, 3, 4]);
        e.reshape(&swapped, &[ci, -1, h, wd])
    };
    // dY [N, M, oh, ow] -> [M, N, oh, ow]: M kernels over N channels per group.
    let kernels = e.transpose(dy, &[1, 0, 2, 3]);
    // End pads just long enough for the last tap; trailing rows the forward
    // never read are left out.
    let end = [w.overhang(0).max(0), w.overhang(1).max(0)];
    let pads = [w.pads[0] as i64, w.pads[1] as i64, end[0], end[1]];
    let attrs = vec![
        attr::ints("strides", &w.dilations.map(|v| v as i64)),
        attr::ints("dilations", &w.strides.map(|v| v as i64)),
        attr::ints("pads", &pads),
        attr::int("group", group),
    ];
    let full = e.op("Conv", &[&images, &kernels], attrs);
    // The correlation can be longer than the kernel when trailing input rows
    // were never read (they then sit past the last tap); keep the kernel.
    let reach = |axis: usize| {
        let padded = w.input[axis] as i64 + pads[axis] + pads[axis + 2];
        let span = ((w.output[axis] - 1) * w.strides[axis] + 1) as i64;
        (padded - span) / w.dilations[axis] as i64 + 1
    };
    let kernel = w.kernel.map(|v| v as i64);
    let cropped = if reach(0) != kernel[0] || reach(1) != kernel[1] {
        let starts = e.ints(&[0, 0]);
        let ends = e.ints(&kernel);
        let axes = e.ints(&[2, 3]);
        e.op("Slice", &[&full, &starts, &ends, &axes], vec![])
    } else {
        full
    };
    e.transpose(&cropped, &[1, 0, 2, 3])
}

fn samples() -> Vec<Sample> {
    let conv = |x: &[usize], w: &[usize], bias: bool, seed: u64, attrs| {
        let mut inputs = vec![uniform(x, seed), uniform(w, seed + 1)];
        if bias {
            inputs.push(uniform(&[w[0]], seed + 2));
        }
        checked(inputs, attrs)
    };
    vec![
        conv(&[2, 4, 5, 5], &[3, 4, 3, 3], true, 1, vec![attr::ints("pads", &[1, 1, 1, 1])]),
        conv(
            &[2, 4, 5, 5],
            &[3, 4, 3, 2],
            false,
            4,
            vec![attr::ints("strides", &[2, 2]), attr::ints("pads", &[1, 0, 0, 1])],
        ),
        conv(
            &[1, 2, 7, 7],
            &[3, 2, 2, 3],
            true,
            7,
            vec![attr::ints("dilations", &[2, 2]), attr::ints("strides", &[1, 2]), attr::ints("pads", &[0, 1, 1, 0])],
        ),
        conv(
            &[2, 4, 5, 5],
            &[4, 2, 3, 3],
            true,
            10,
            vec![attr::int("group", 2), attr::ints("strides", &[2, 2]), attr::ints("pads", &[1, 1, 1, 1])],
        ),
        conv(
            &[1, 4, 5, 6],
            &[4, 1, 3, 3],
            false,
            13,
            vec![attr::int("group", 4), attr::ints("dilations", &[2, 2]), attr::ints("pads", &[2, 2, 2, 2])],
        ),
        conv(
            &[2, 2, 5, 6],
            &[3, 2, 3, 3],
            true,
            16,
            vec![
                attr::string("auto_pad", "SAME_UPPER"),
                attr::ints("strides", &[2, 2]),
                attr::ints("kernel_shape", &[3, 3]),
            ],
        ),
        conv(
            &[1, 2, 6, 5],
            &[2, 2, 2, 2],
            false,
            19,
            vec![attr::string("auto_pad", "SAME_LOWER"), attr::ints("strides", &[1, 2])],
        ),
        conv(
            &[1, 2, 7, 8],
            &[2, 2, 2, 2],
            true,
            22,
            vec![attr::string("auto_pad", "VALID"), attr::ints("strides", &[3, 3])],
        ),
        conv(&[1, 2, 4, 4], &[2, 2, 2, 2], true, 25, vec![attr::ints("pads", &[3, 2, 3, 3])]),
        // Stride 1 with at least MIN_CHANNELS_FOR_CONV input channels: dX as a flipped-kernel Conv.
        conv(&[1, 8, 4, 4], &[3, 8, 3, 3], true, 28, vec![attr::ints("pads", &[1, 0, 2, 1])]),
        conv(
            &[1, 8, 5, 5],
            &[4, 4, 2, 3],
            false,
            31,
            vec![attr::int("group", 2), attr::ints("dilations", &[2, 1]), attr::ints("pads", &[1, 1, 0, 1])],
        ),
    ]
}
