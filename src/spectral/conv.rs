//! Convolutions, by the Fourier method of Szegedy et al. §4.3, with the
//! stride's phases kept apart (the polyphase form).
//!
//! **Circular, stride 1 (exact).** A circular convolution on an `Nh × Nw`
//! torus is diagonalised by the 2-D DFT: for each frequency `k = (u, v)` it
//! multiplies the input's channel vector `x̂(k)` by the `Cout × Cin` matrix
//! `K̂(k)`, the DFT of the kernel taps (ONNX's cross-correlation gives the
//! conjugate matrix, with the same singular values). The normalised DFT is
//! unitary, so the operator norm is exactly `max over k of σ_max(K̂(k))`.
//!
//! **Circular, stride `s` (exact).** Keeping the outputs at multiples of the
//! stride, on a torus with `N_a` a multiple of `s_a`, gives outputs on the
//! `M = N / s` torus. Along one axis, `y[r] = Σ_t w[t] x[r s + t d]`; write
//! `x` by its inverse DFT, `x[n] = (1/N) Σ_k x̂[k] e^{2πi k n / N}`:
//! `y[r] = (1/N) Σ_k x̂[k] K̂*(k) e^{2πi k r / M}`, since `k r s / N = k r / M`.
//! That exponential depends on `k` only mod `M`: with `k = u + j M`
//! (`0 ≤ u < M`, `0 ≤ j < s`), the DFT of `y` on `M` points is
//! `ŷ[u] = (M / N) Σ_j K̂*(u + jM) x̂(u + jM)`. In the unitary DFTs
//! (`x̂ / √N`, `ŷ / √M`) the factor becomes `√(M/N) = 1/√s`, and in 2-D,
//! with channels, output frequency `u` reads only the `s_h s_w` aliased input
//! frequencies `u + j·M`, through the block `(1/√(s_h s_w)) [K̂*(u + j·M)]_j`,
//! a `Cout × (s_h s_w Cin)` matrix. Each input frequency belongs to exactly
//! one `u`, so the operator is block diagonal in these unitary coordinates
//! and its norm is exactly `max over u of σ_max` of the blocks (the
//! conjugation changes no singular value). Stride 1 is the case `s = 1`.
//!
//! **Zero padding (a bound).** Let the padded input span `P = H + pt + pb`
//! rows (likewise columns) and take the torus `N` = the smallest multiple of
//! the stride that is at least `P` and the dilated kernel's span. The linear
//! convolution's output `o` reads padded rows `o s + t d ≤ P − 1 < N`: place
//! the input on the torus with zeros around it (rows `[0, P)` as padded,
//! `[P, N)` zeros), and the circular strided convolution's output `o`,
//! sitting at torus position `o s`, reads the same values at the same taps,
//! without wrapping. The linear outputs (`o ≤ (P − span) / s < M`) are
//! distinct outputs of the circular one. So the linear map is `R ∘ C ∘ E`
//! with `E` the zero extension (norm 1), `C` the circular strided
//! convolution and `R` a restriction to some outputs (norm ≤ 1), and
//! `||linear|| ≤ ||C||`. (With no padding and stride 1, `N = H`.)
//!
//! **Small layers (exact).** No torus sees the border: on small maps the
//! zero-padded layer loses enough energy there that the torus bound is
//! loose, against a dense SVD of the explicit operator by 0.6% (3×3 stride
//! 2 pad 1 on 16×16), 2.4% (7×7 stride 2 pad 3 on 24×24), 2.7%
//! (depthwise stride 2), 3.8% (11×11 stride 4 pad 2 on 32×32), 4.5% (5×5
//! stride 2 pad 2 on 16×16), and the smallest valid torus narrows 2.4% to
//! 2.2% only. So a layer whose Gram matrix, per group, has a side of at
//! most [`EXACT_SIDE`] (1024) and whose work is at most [`EXACT_WORK`]
//! (under a second) gets its exact norm from the explicit zero-padded
//! strided operator (`conv/explicit.rs`); its method says so, and how far
//! above the torus bound was. Larger layers (AlexNet's at 224×224, whose
//! borders are thin) keep the torus bound, and their method says "bound".
//!
//! Dilation only moves the taps on the torus; groups make each block block
//! diagonal across channels, and each group's block is bounded alone. The
//! bias shifts and does not stretch.
//!
//! **Speed.** A real kernel has `K̂(−k) = conj K̂(k)`, so the block at `−u` is
//! the conjugate of the block at `u` with its columns permuted: the same
//! singular values. Only the output frequencies `(u_h, u_w)` with
//! `u_w ≤ M_w / 2` are visited (every `u_h`, so the self-conjugate columns
//! `u_w = 0` and `u_w = M_w / 2` are kept whole). The kernel has few taps,
//! so its DFT is evaluated where a block needs it, separably (widths once
//! per column of frequencies, then heights per block), rather than stored
//! for the whole torus. The blocks of a column are shared among threads
//! (`ADVX_THREADS`, else every core), and most are only shown not to beat
//! the largest σ found so far ([`svd::Gram`]). Ctrl-C is heard between rows
//! of blocks.

use std::f64::consts::TAU;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use nalgebra::{Complex, DMatrix};
use ndarray::{ArrayView4, Ix4};

use super::graph::Step;
use super::layers::{base, constant};
use super::{Layer, svd};
use crate::onnx::shape::Dim;

mod explicit;
pub use explicit::{EXACT_SIDE, EXACT_WORK};

/// Tori with more cells than this (a 4096×4096 image) are refused rather
/// than swept for hours.
const MAX_CELLS: usize = 1 << 24;

/// Polyphase blocks with more entries than this are refused rather than
/// allocated (a stride far beyond the kernel makes blocks of mostly zeros).
const MAX_BLOCK: usize = 1 << 24;

/// A 2-D convolution's geometry, per spatial axis (height, width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Total padding per axis (begin + end).
    pub pads: [usize; 2],
    /// The padding before the first row and column (top, left).
    pub begin: [usize; 2],
    pub group: usize,
    /// The input's spatial size.
    pub input: [usize; 2],
}

impl Geometry {
    /// The torus whose circular strided convolution contains the layer's
    /// (zero-padded) convolution: the padded input's size, rounded up to a
    /// multiple of the stride.
    pub fn torus(&self, kernel: [usize; 2]) -> [usize; 2] {
        [0, 1].map(|a| {
            let span = (kernel[a].max(1) - 1).saturating_mul(self.dilations[a]).saturating_add(1);
            self.padded(a).max(span).checked_next_multiple_of(self.strides[a]).unwrap_or(usize::MAX)
        })
    }

    fn padded(&self, axis: usize) -> usize {
        self.input[axis].saturating_add(self.pads[axis])
    }
}

/// The operator norm of the circular convolution (stride 1) by `weights`
/// (`[Cout, Cin / group, kh, kw]`, ONNX's layout) on a `torus`: the largest
/// singular value over the per-frequency matrices of the kernel's DFT.
pub fn circular_norm(weights: ArrayView4<f32>, group: usize, dilations: [usize; 2], torus: [usize; 2]) -> Result<f64> {
    strided_norm(weights, group, dilations, [1, 1], torus)
}

/// The operator norm of the circular convolution by `weights` on a `torus`
/// whose outputs are kept at multiples of `strides`: the largest singular
/// value over the polyphase blocks.
pub fn strided_norm(
    weights: ArrayView4<f32>,
    group: usize,
    dilations: [usize; 2],
    strides: [usize; 2],
    torus: [usize; 2],
) -> Result<f64> {
    let cout = weights.dim().0;
    if group == 0 || !cout.is_multiple_of(group) {
        bail!("{cout} output channels do not split into {group} groups");
    }
    if weights.iter().any(|v| !v.is_finite()) {
        bail!("the kernel holds NaN or infinite values");
    }
    if (0..2).any(|a| strides[a] == 0 || torus[a] == 0 || !torus[a].is_multiple_of(strides[a])) {
        bail!("a {}×{} torus does not split into strides {strides:?}", torus[0], torus[1]);
    }
    if torus[0].checked_mul(torus[1]).is_none_or(|cells| cells > MAX_CELLS) {
        bail!("a {}×{} torus is too large to bound", torus[0], torus[1]);
    }
    let block =
        [cout / group, weights.dim().1, strides[0], strides[1]].iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if block.is_none_or(|entries| entries > MAX_BLOCK) {
        bail!("strides {strides:?} make polyphase blocks too large to bound");
    }
    let kernel = Kernel { weights, group, dilations, strides, torus };
    let largest = AtomicU64::new(0);
    let threads = crate::parallel::threads();
    for uw in 0..=kernel.outputs()[1] / 2 {
        crate::interrupt::check()?;
        let column = kernel.column(uw);
        let rows: Vec<usize> = (0..kernel.outputs()[0]).collect();
        let parts = rows.chunks(rows.len().div_ceil(threads).max(1));
        crate::parallel::try_for_each_part(parts, |uhs| kernel.sweep(&column, uhs, &largest))?;
    }
    let phases = (strides[0] * strides[1]) as f64;
    Ok((f64::from_bits(largest.load(Ordering::Relaxed)) / phases).sqrt())
}

/// A kernel on its torus, with what its polyphase blocks are made of.
struct Kernel<'w> {
    weights: ArrayView4<'w, f32>,
    group: usize,
    dilations: [usize; 2],
    strides: [usize; 2],
    torus: [usize; 2],
}

impl Kernel<'_> {
    /// The output torus.
    fn outputs(&self) -> [usize; 2] {
        [0, 1].map(|a| self.torus[a] / self.strides[a])
    }

    /// `e^{−2πi k t d / N}` for frequency `k` and tap `t` on `axis`, its
    /// phase reduced mod `N` first so that it stays exact for large `k t`.
    fn twiddle(&self, axis: usize, k: usize, tap: usize) -> Complex<f64> {
        let n = self.torus[axis];
        let turns = (k % n) * ((tap % n) * (self.dilations[axis] % n) % n) % n;
        Complex::cis(-TAU * turns as f64 / n as f64)
    }

    /// For output width frequency `uw`, the width DFT of every kernel row at
    /// each of its aliased input frequencies `uw + jw Mw`: indexed
    /// `[jw][o][i][y]`, flattened.
    fn column(&self, uw: usize) -> Vec<Complex<f64>> {
        let (cout, cin, kh, kw) = self.weights.dim();
        let mut column = Vec::with_capacity(self.strides[1] * cout * cin * kh);
        for jw in 0..self.strides[1] {
            let k = uw + jw * self.outputs()[1];
            let twiddles: Vec<_> = (0..kw).map(|x| self.twiddle(1, k, x)).collect();
            for ((o, i), y) in
                (0..cout).flat_map(|o| (0..cin).map(move |i| (o, i))).flat_map(|p| (0..kh).map(move |y| (p, y)))
            {
                column.push((0..kw).map(|x| twiddles[x] * self.weights[[o, i, y, x]] as f64).sum());
            }
        }
        column
    }

    /// Visits the blocks of output frequencies `(uh, uw)` for `uh` in `uhs`
    /// (`column` from [`Kernel::column`] for `uw`), raising `largest` (the
    /// bits of the largest `σ_max²` of an unscaled block) to theirs.
    fn sweep(&self, column: &[Complex<f64>], uhs: &[usize], largest: &AtomicU64) -> Result<()> {
        let (cout, cin, kh, _) = self.weights.dim();
        let per_group = cout / self.group;
        let phases = self.strides[0] * self.strides[1];
        let (r, l) = (per_group.min(phases * cin), per_group.max(phases * cin));
        let mut rows = DMatrix::zeros(2 * l, r);
        let mut gram = svd::Gram::default();
        let mut twiddles = vec![Complex::default(); self.strides[0] * kh];
        for &uh in uhs {
            crate::interrupt::check()?;
            for (jh, row) in twiddles.chunks_mut(kh).enumerate() {
                let k = uh + jh * self.outputs()[0];
                row.iter_mut().enumerate().for_each(|(y, t)| *t = self.twiddle(0, k, y));
            }
            for g in 0..self.group {
                self.block(column, &twiddles, g, &mut rows);
                let floor = f64::from_bits(largest.load(Ordering::Relaxed));
                if let Some(s) = gram.sigma_max_sq_above(&rows, floor).filter(|&s| s > 0.0) {
                    largest.fetch_max(s.to_bits(), Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Group `g`'s block, `[K̂(u + j·M)]_j` with outputs down and (phase,
    /// input) across, or its transpose when that is wider, written in
    /// [`svd::Gram`]'s layout (a row of the matrix per column of `rows`).
    fn block(&self, column: &[Complex<f64>], twiddles: &[Complex<f64>], g: usize, rows: &mut DMatrix<f64>) {
        let (cout, cin, kh, _) = self.weights.dim();
        let per_group = cout / self.group;
        let wide = per_group <= self.strides[0] * self.strides[1] * cin;
        let l = rows.nrows() / 2;
        let data = rows.as_mut_slice();
        for (jh, jw) in (0..self.strides[0]).flat_map(|jh| (0..self.strides[1]).map(move |jw| (jh, jw))) {
            let phase = jh * self.strides[1] + jw;
            for (o, i) in (0..per_group).flat_map(|o| (0..cin).map(move |i| (o, i))) {
                let taps = &column[((jw * cout + g * per_group + o) * cin + i) * kh..][..kh];
                let value: Complex<f64> = taps.iter().zip(&twiddles[jh * kh..][..kh]).map(|(a, b)| a * b).sum();
                let (row, col) = if wide { (o, phase * cin + i) } else { (phase * cin + i, o) };
                data[row * 2 * l + col] = value.re;
                data[row * 2 * l + l + col] = value.im;
            }
        }
    }
}

/// A Conv node: the Fourier bound on the torus of its padded input.
pub fn layer(step: &Step) -> Result<Layer> {
    let (name, w) = constant(step, 1, "weight")?;
    let Ok(w4) = w.view().into_dimensionality::<Ix4>() else {
        bail!("{}: weight '{name}' is shaped {:?}; advx bounds 2-D convolutions only", step.node.describe(), w.shape());
    };
    let kernel = [w4.dim().2, w4.dim().3];
    if kernel.contains(&0) {
        bail!("{}: weight '{name}' is shaped {:?}, an empty kernel", step.node.describe(), w.shape());
    }
    let geometry = geometry(step, w4.dim().1, kernel)?;
    let torus = geometry.torus(kernel);
    let fourier = strided_norm(w4, geometry.group, geometry.dilations, geometry.strides, torus)?;
    let (bound, method) = match explicit::norm(w4, &geometry)? {
        Some(exact) => (exact.norm, exact_method(&geometry, exact, torus, fourier)),
        None => (fourier, method(&geometry, kernel, torus)),
    };
    let mut layer = base(step, bound, method);
    layer.weight = Some((name.to_string(), w.shape().to_vec()));
    layer.stride = Some(geometry.strides);
    Ok(layer)
}

/// The exact route: the Gram matrices' side, and how far above the Fourier
/// bound would have been (both 0 for a kernel of zeros).
fn exact_method(geometry: &Geometry, exact: explicit::Exact, torus: [usize; 2], fourier: f64) -> String {
    let pads = if geometry.pads == [0, 0] { "" } else { " with its zero pads" };
    let groups = if geometry.group > 1 { format!(" per group, {} groups", geometry.group) } else { String::new() };
    let n = exact.side;
    let ratio = if exact.norm > 0.0 { fourier / exact.norm } else { 1.0 };
    format!(
        "exact: σ_max of the operator{pads} (Gram {n}×{n}{groups}); Fourier bound on the {}×{} torus {ratio:.4}× higher",
        torus[0], torus[1]
    )
}

/// The Fourier route: what was computed, and whether it is the layer's
/// norm or a bound of it. Without pads, on a torus the input's size, only
/// a 1×1 kernel keeps every output of the circular convolution (exact);
/// a wider one keeps part of them (a bound).
fn method(geometry: &Geometry, kernel: [usize; 2], torus: [usize; 2]) -> String {
    let mut notes = Vec::new();
    if geometry.pads != [0, 0] {
        notes.push("zero pads");
    }
    if (0..2).any(|a| torus[a] > geometry.padded(a)) {
        notes.push("torus past the input");
    }
    if notes.is_empty() && kernel != [1, 1] {
        notes.push("part of its outputs");
    }
    let polyphase = match geometry.strides {
        [1, 1] => String::new(),
        [h, w] if h == w => format!("polyphase stride {h}, "),
        [h, w] => format!("polyphase stride {h}×{w}, "),
    };
    let mut method = format!("Fourier, {polyphase}{}×{} torus", torus[0], torus[1]);
    if !notes.is_empty() {
        method.push_str(&format!(" ({}: bound)", notes.join(", ")));
    }
    method
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
    let [begin, pads] = pads(step, input, kernel, strides, dilations)?;
    Ok(Geometry { strides, dilations, pads, begin, group: n.int("group", 1) as usize, input })
}

/// The padding before each axis, and its total (begin and end together).
/// `SAME_UPPER` puts an odd pad's extra at the end, `SAME_LOWER` at the
/// beginning.
fn pads(
    step: &Step,
    input: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Result<[[usize; 2]; 2]> {
    let n = &step.node;
    let auto = crate::onnx::attr_string(n.proto, "auto_pad").unwrap_or_default();
    match auto.as_str() {
        "" | "NOTSET" => match n.ints("pads").as_deref() {
            None => Ok([[0, 0]; 2]),
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| p >= 0) => {
                Ok([[t as usize, l as usize], [(t + b) as usize, (l + r) as usize]])
            }
            Some(p) => bail!("{} has pads {p:?}; advx supports four non-negative pads", n.describe()),
        },
        "VALID" => Ok([[0, 0]; 2]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let total = [0, 1].map(|a| {
                let span = (kernel[a] - 1) * dilations[a] + 1;
                let out = input[a].div_ceil(strides[a]);
                ((out - 1) * strides[a] + span).saturating_sub(input[a])
            });
            let begin = total.map(|p| if auto == "SAME_UPPER" { p / 2 } else { p.div_ceil(2) });
            Ok([begin, total])
        }
        other => bail!("{} has unknown auto_pad '{other}'", n.describe()),
    }
}
