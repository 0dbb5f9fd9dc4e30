//! Convolutions, by the Fourier method of Szegedy et al. §4.3.
//!
//! **Circular, stride 1 (exact).** A circular convolution on an `Nh × Nw`
//! torus is diagonalised by the 2-D DFT: for each frequency `(u, v)` it
//! multiplies the input's channel vector `x̂(u, v)` by the `Cout × Cin`
//! matrix `K̂(u, v)`, the DFT of the kernel taps (ONNX's cross-correlation
//! gives the conjugate matrix, with the same singular values). The
//! normalised DFT is unitary, so the operator norm is exactly
//! `max over (u, v) of σ_max(K̂(u, v))`.
//!
//! **Zero padding (a bound).** Let the padded input span `P = H + pt + pb`
//! rows (likewise columns) and take the torus `N = P`. The zero-padded
//! (linear) convolution reads input rows `p` in `[-pt, H + pb)`, a range of
//! `N` consecutive integers, so reducing them mod `N` hits every residue
//! once: the circular convolution of the input placed on the torus with
//! zeros around it reads the same values at the same taps, and the linear
//! outputs are some of its outputs, at distinct positions. So the linear
//! map is `R ∘ C ∘ E` with `E` the zero extension (norm 1), `C` the circular
//! convolution and `R` a restriction to some outputs (norm ≤ 1), and
//! `||linear|| ≤ ||C||`. (This is the "grid of size at least `H + kh - 1`"
//! argument for the usual `pt + pb = kh - 1`; with no padding `N = H`.)
//!
//! **Stride `s` (a bound).** A strided convolution is the stride-1 one
//! followed by keeping every `s`-th output, a restriction of norm ≤ 1, so
//! the stride-1 bound holds. Dilation only moves the taps on the torus;
//! groups make `K̂(u, v)` block diagonal, and each block is bounded alone.
//! The bias shifts and does not stretch.

use anyhow::{Result, bail};
use nalgebra::DMatrix;
use ndarray::{ArrayView4, Ix4};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::graph::Step;
use super::layers::{base, constant};
use super::{Layer, svd};
use crate::onnx::shape::Dim;

/// A 2-D convolution's geometry, per spatial axis (height, width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Total padding per axis (begin + end).
    pub pads: [usize; 2],
    pub group: usize,
    /// The input's spatial size.
    pub input: [usize; 2],
}

impl Geometry {
    /// The torus whose circular convolution contains the layer's
    /// (zero-padded) convolution: the padded input's size.
    pub fn torus(&self, kernel: [usize; 2]) -> [usize; 2] {
        [0, 1].map(|a| (self.input[a] + self.pads[a]).max((kernel[a] - 1) * self.dilations[a] + 1))
    }
}

/// The operator norm of the circular convolution by `weights`
/// (`[Cout, Cin / group, kh, kw]`, ONNX's layout) on a `torus`: the largest
/// singular value over the per-frequency matrices of the kernel's DFT.
pub fn circular_norm(weights: ArrayView4<f32>, group: usize, dilations: [usize; 2], torus: [usize; 2]) -> Result<f64> {
    let (cout, cin, kh, kw) = weights.dim();
    if group == 0 || cout % group != 0 {
        bail!("{cout} output channels do not split into {group} groups");
    }
    if weights.iter().any(|v| !v.is_finite()) {
        bail!("the kernel holds NaN or infinite values");
    }
    let [nh, nw] = torus;
    let cells = nh * nw;
    let mut planner = FftPlanner::<f64>::new();
    let (rows, cols) = (planner.plan_fft_forward(nw), planner.plan_fft_forward(nh));
    let mut spectra = vec![Complex::default(); cout * cin * cells];
    for (pair, spectrum) in spectra.chunks_mut(cells).enumerate() {
        crate::interrupt::check()?;
        let (o, i) = (pair / cin, pair % cin);
        for (y, x) in (0..kh).flat_map(|y| (0..kw).map(move |x| (y, x))) {
            let at = ((y * dilations[0]) % nh) * nw + (x * dilations[1]) % nw;
            spectrum[at] += Complex::new(weights[[o, i, y, x]] as f64, 0.0);
        }
        dft2(spectrum, nw, rows.as_ref(), cols.as_ref());
    }
    let per_group = cout / group;
    let mut norm = 0.0f64;
    for cell in 0..cells {
        crate::interrupt::check()?;
        for g in 0..group {
            let block =
                DMatrix::from_fn(per_group, cin, |o, i| spectra[((g * per_group + o) * cin + i) * cells + cell]);
            norm = norm.max(svd::sigma_max(block));
        }
    }
    Ok(norm)
}

/// The 2-D DFT of a row-major grid `width` wide, in place up to a
/// transposition of the frequencies (which the maximum over them ignores).
fn dft2(grid: &mut [Complex<f64>], width: usize, rows: &dyn Fft<f64>, cols: &dyn Fft<f64>) {
    rows.process(grid);
    let height = grid.len() / width;
    let mut transposed: Vec<Complex<f64>> = (0..grid.len()).map(|k| grid[(k % height) * width + k / height]).collect();
    cols.process(&mut transposed);
    grid.copy_from_slice(&transposed);
}

/// A Conv node: the Fourier bound on the torus of its padded input.
pub fn layer(step: &Step) -> Result<Layer> {
    let (name, w) = constant(step, 1, "weight")?;
    let Ok(w4) = w.view().into_dimensionality::<Ix4>() else {
        bail!("{}: weight '{name}' is shaped {:?}; advx bounds 2-D convolutions only", step.node.describe(), w.shape());
    };
    let kernel = [w4.dim().2, w4.dim().3];
    let geometry = geometry(step, w4.dim().1, kernel)?;
    let torus = geometry.torus(kernel);
    let bound = circular_norm(w4, geometry.group, geometry.dilations, torus)?;
    let mut notes = Vec::new();
    if geometry.pads != [0, 0] {
        notes.push("zero pads");
    }
    if geometry.strides != [1, 1] {
        notes.push("stride");
    }
    let mut method = format!("Fourier, {}×{} torus", torus[0], torus[1]);
    if !notes.is_empty() {
        method.push_str(&format!(" ({}: bound)", notes.join(", ")));
    }
    let mut layer = base(step, bound, method);
    layer.weight = Some((name.to_string(), w.shape().to_vec()));
    layer.stride = Some(geometry.strides);
    Ok(layer)
}

/// Reads strides, dilations, pads (explicit or `auto_pad`) and groups.
fn geometry(step: &Step, cin_per_group: usize, kernel: [usize; 2]) -> Result<Geometry> {
    let n = &step.node;
    let input = match step.input().as_slice() {
        &[_, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)] => {
            let group = n.int("group", 1);
            if group < 1 || c != cin_per_group * group as usize {
                bail!("{}: {c} input channels, but {cin_per_group} per group × {group} groups", n.describe());
            }
            [h, w]
        }
        other => bail!("{} needs an input [N, C, H, W] with static C, H, W, got {other:?}", n.describe()),
    };
    let pair = |name: &str| -> Result<[usize; 2]> {
        match n.ints(name).as_deref() {
            None => Ok([1, 1]),
            Some(&[a, b]) if a >= 1 && b >= 1 => Ok([a as usize, b as usize]),
            Some(v) => bail!("{} has {name} {v:?}; advx supports two positive values", n.describe()),
        }
    };
    let (strides, dilations) = (pair("strides")?, pair("dilations")?);
    let pads = total_pads(step, input, kernel, strides, dilations)?;
    Ok(Geometry { strides, dilations, pads, group: n.int("group", 1) as usize, input })
}

/// The padding added to each axis, begin and end together.
fn total_pads(
    step: &Step,
    input: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Result<[usize; 2]> {
    let n = &step.node;
    let auto = crate::onnx::attr_string(n.proto, "auto_pad").unwrap_or_default();
    match auto.as_str() {
        "" | "NOTSET" => match n.ints("pads").as_deref() {
            None => Ok([0, 0]),
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| p >= 0) => Ok([(t + b) as usize, (l + r) as usize]),
            Some(p) => bail!("{} has pads {p:?}; advx supports four non-negative pads", n.describe()),
        },
        "VALID" => Ok([0, 0]),
        "SAME_UPPER" | "SAME_LOWER" => Ok([0, 1].map(|a| {
            let span = (kernel[a] - 1) * dilations[a] + 1;
            let out = input[a].div_ceil(strides[a]);
            ((out - 1) * strides[a] + span).saturating_sub(input[a])
        })),
        other => bail!("{} has unknown auto_pad '{other}'", n.describe()),
    }
}
