//! Pools, each channel on its own (so the bound of one channel is the
//! layer's).
//!
//! - MaxPool: `√m`, `m` the most windows any input value falls in (1 for
//!   windows that do not overlap). `|max_W a - max_W b| ≤ max_W |a - b|`,
//!   so `Σ_windows (Δy)² ≤ Σ_windows Σ_{i∈W} (Δx_i)² ≤ m ||Δx||²`; raising
//!   one value of a zero input that `m` windows share reaches it, so `√m`
//!   is exact.
//! - AveragePool: linear. A 2-D window's divisor (taps inside the input,
//!   or inside the padded input with `count_include_pad`) is the product of
//!   its row and column counts, so the operator is the Kronecker product
//!   `A_h ⊗ A_w` of two 1-D averaging matrices and its norm, exactly, is
//!   `σ_max(A_h) σ_max(A_w)`. For `k`-wide windows that neither overlap
//!   nor pad that is `1/√k` per axis.
//! - GlobalAveragePool: the mean of `H·W` values, `1/√(H·W)`, exact.
//!
//! Window positions follow ONNX Runtime as the derivative rules do: the
//! output size comes from their shape inference (`ceil_mode` included),
//! the pads from the node.

use anyhow::{Result, bail};
use nalgebra::DMatrix;

use super::graph::Step;
use super::layers::base;
use super::{Layer, svd};
use crate::onnx::shape::Dim;

/// A pool's windows along one spatial axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_begin: usize,
    pub pad_end: usize,
}

impl Axis {
    /// The input positions window `o` reads, padding included (negative or
    /// past the end).
    fn taps(&self, o: usize) -> impl Iterator<Item = i64> + '_ {
        let start = (o * self.stride) as i64 - self.pad_begin as i64;
        (0..self.kernel).map(move |k| start + (k * self.dilation) as i64)
    }

    /// The input positions window `o` reads inside the input.
    fn inside(&self, o: usize) -> impl Iterator<Item = usize> + '_ {
        self.taps(o).filter(|&p| p >= 0 && p < self.input as i64).map(|p| p as usize)
    }

    /// The most windows any input position falls in.
    pub fn cover(&self) -> usize {
        let mut counts = vec![0usize; self.input];
        for p in (0..self.output).flat_map(|o| self.inside(o)) {
            counts[p] += 1;
        }
        counts.into_iter().max().unwrap_or(0)
    }

    /// The averaging matrix (outputs × inputs), dividing by the taps inside
    /// the input, or inside the padded input when `include_pad`.
    pub fn average(&self, include_pad: bool) -> DMatrix<f64> {
        let (lo, hi) = match include_pad {
            true => (-(self.pad_begin as i64), (self.input + self.pad_end) as i64),
            false => (0, self.input as i64),
        };
        let mut a = DMatrix::zeros(self.output, self.input);
        for o in 0..self.output {
            let count = self.taps(o).filter(|&p| p >= lo && p < hi).count().max(1);
            for p in self.inside(o) {
                a[(o, p)] += 1.0 / count as f64;
            }
        }
        a
    }
}

/// MaxPool, AveragePool or GlobalAveragePool.
pub fn layer(step: &Step) -> Result<Layer> {
    let [h, w] = spatial(step, step.input())?;
    if step.node.op() == "GlobalAveragePool" {
        let bound = 1.0 / ((h * w) as f64).sqrt();
        return Ok(base(step, bound, format!("mean of {h}×{w}: 1/√{}", h * w)));
    }
    let axes = axes(step, [h, w])?;
    let mut layer = if step.node.op() == "MaxPool" {
        let m = axes[0].cover() * axes[1].cover();
        let method = if m == 1 { "disjoint windows".to_string() } else { format!("√(windows per value) = √{m}") };
        base(step, (m as f64).sqrt(), method)
    } else {
        let include_pad = step.node.int("count_include_pad", 0) != 0;
        let bound: f64 = axes.iter().map(|a| svd::sigma_max(a.average(include_pad))).product();
        base(step, bound, "exact: σ_max(A_h)·σ_max(A_w)")
    };
    layer.stride = Some([axes[0].stride, axes[1].stride]);
    Ok(layer)
}

/// The static spatial size of an NCHW shape.
fn spatial(step: &Step, shape: &[Dim]) -> Result<[usize; 2]> {
    match shape {
        &[_, _, Dim::Fixed(h), Dim::Fixed(w)] => Ok([h, w]),
        other => bail!("{} needs [N, C, H, W] with static H and W, got {other:?}", step.node.describe()),
    }
}

/// The windows along height and width.
pub fn axes(step: &Step, input: [usize; 2]) -> Result<[Axis; 2]> {
    let n = &step.node;
    let output = spatial(step, &step.output)?;
    let pair = |name: &str, default: Option<[usize; 2]>| -> Result<[usize; 2]> {
        match (n.ints(name).as_deref(), default) {
            (None, Some(d)) => Ok(d),
            (Some(&[a, b]), _) if a >= 1 && b >= 1 => Ok([a as usize, b as usize]),
            (v, _) => bail!("{} has {name} {v:?}; advx supports two positive values", n.describe()),
        }
    };
    let kernel = pair("kernel_shape", None)?;
    let (strides, dilations) = (pair("strides", Some([1, 1]))?, pair("dilations", Some([1, 1]))?);
    let auto = crate::onnx::attr_string(n.proto, "auto_pad").unwrap_or_default();
    let pads: [usize; 4] = match auto.as_str() {
        "" | "NOTSET" => match n.ints("pads").as_deref() {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => [0, 1, 2, 3].map(|i| p[i] as usize),
            Some(p) => bail!("{} has pads {p:?}; advx supports four non-negative pads", n.describe()),
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            // As ONNX Runtime: from the undilated kernel, the odd pad at the end (UPPER) or start.
            let needed =
                [0, 1].map(|a| ((input[a].div_ceil(strides[a]) - 1) * strides[a] + kernel[a]).saturating_sub(input[a]));
            let head = needed.map(|p| if auto == "SAME_UPPER" { p / 2 } else { p.div_ceil(2) });
            [head[0], head[1], needed[0] - head[0], needed[1] - head[1]]
        }
        other => bail!("{} has unknown auto_pad '{other}'", n.describe()),
    };
    Ok([0, 1].map(|a| Axis {
        input: input[a],
        output: output[a],
        kernel: kernel[a],
        stride: strides[a],
        dilation: dilations[a],
        pad_begin: pads[a],
        pad_end: pads[a + 2],
    }))
}
