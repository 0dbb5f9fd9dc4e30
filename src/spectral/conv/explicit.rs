//! The exact norm of a small convolution, from its explicit zero-padded
//! strided operator.
//!
//! A grouped convolution is block diagonal over its groups, so its norm is
//! the largest of the groups'. Group `g`'s operator `A_g` has a row per
//! output `(co, oy, ox)` of the group and a column per input `(ci, y, x)`;
//! row `(co, oy, ox)` reads input `(ci, oy·s_h + ky·d_h − p_top, ox·s_w +
//! kx·d_w − p_left)`, when it lies inside the image, with weight
//! `w[co, ci, ky, kx]`. `σ_max(A_g)² = λ_max(G)` for the Gram matrix `G` on
//! the smaller side: `A_gᵀA_g`, the sum of the outer products of the rows,
//! when the inputs are fewer, else `A_g A_gᵀ`, the sum of those of the
//! columns. Each row or column has at most `Cin/group · kh · kw` (or
//! `Cout/group · ⌈kh/s_h⌉ · ⌈kw/s_w⌉`) nonzeros, so `G` is accumulated from
//! them, its lower triangle only, without ever forming `A_g`; its largest
//! eigenvalue comes from nalgebra's `symmetric_eigenvalues` (Householder
//! tridiagonalisation, then implicit QR, eigenvalues only).
//!
//! **Cost.** Measured in the test profile (advx at opt-level 1, nalgebra
//! at 2) on the 2-core machine, the eigenvalues of an `n × n` Gram take
//! 0.10 s for n = 512, 0.65 s for 1024, 2.7 s for 1536 and 7.1 s for 2048
//! (a Cholesky factorisation of the same matrix, 0.01 to 0.8 s, could only
//! test a guess, not find the value). So a layer is computed exactly when
//! every group's side is at most [`EXACT_SIDE`] (1024) and the work,
//! `Σ_g n_g³` for the eigenvalues plus `Σ nnz²/2` over the lines
//! accumulated, is at most [`EXACT_WORK`]; the groups are shared among
//! threads. Whole layers, measured: 0.34 s for the MNIST CNN's first
//! convolution (Gram 784), 0.6 to 0.66 s for Gram 1024 (3×3 and 11×11
//! kernels), 0.45 s for Gram 512 with an accumulation of 6·10⁸, 0.34 s for
//! 64 depthwise groups of 256. Larger layers keep the Fourier bound.
//!
//! **Rounding.** Each entry of `G` sums at most `T` products of two f32
//! weights (each exact in f64), `T` the other side's channels per group
//! times the kernel's taps, so it is off by at most `T ε` (`ε` = 1.1e-16)
//! times the sum of the products' magnitudes; the eigenvalue solver is
//! backward stable (`|Δλ| ≤ c n ε ||G||`, by Weyl's inequality). Both are
//! bounded by `(T + c n) ε ||A_g||_F²`, and `||A_g||_F² ≤ n σ_max²`: for
//! the sizes allowed the computed `σ_max` is within 1e-9 relative of the
//! exact one in the worst case (about 1e-14 in practice), far below the
//! digits a bound is shown with, so no inflation is added (as for the
//! exact SVD in `svd.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use nalgebra::DMatrix;
use ndarray::{ArrayView4, s};

use super::Geometry;

/// The largest side of a Gram matrix whose eigenvalues are computed (0.65 s
/// measured for 1024, 2.7 s for 1536: module docs).
pub const EXACT_SIDE: usize = 1024;

/// The most work (multiply-adds) an exact layer may take: `Σ_g n_g³` for
/// the eigenvalues plus the accumulation's `Σ nnz²/2` (and a step per
/// line). `1.25 · 1024³`: one 1024 × 1024 Gram matrix (0.65 s) with room
/// for its accumulation; measured at 0.6 to 0.75 ns a unit, the most an
/// exact layer takes is about 0.9 s (module docs).
pub const EXACT_WORK: usize = 5 << 28;

/// A layer's exact norm, with the side of each group's Gram matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exact {
    pub norm: f64,
    pub side: usize,
}

/// The exact norm of the zero-padded strided convolution by `weights`
/// (`[Cout, Cin / group, kh, kw]`) with `geometry`, or `None` when it costs
/// more than [`EXACT_SIDE`] and [`EXACT_WORK`] allow (or the layer has no
/// output, which ONNX refuses).
pub fn norm(weights: ArrayView4<f32>, geometry: &Geometry) -> Result<Option<Exact>> {
    let Some(operator) = Operator::new(weights, geometry) else { return Ok(None) };
    let side = operator.side();
    let per_group = side.checked_pow(3).and_then(|e| e.checked_add(operator.accumulation()?));
    let work = per_group.and_then(|w| w.checked_mul(geometry.group));
    if side > EXACT_SIDE || work.is_none_or(|w| w > EXACT_WORK) {
        return Ok(None);
    }
    let largest = AtomicU64::new(0);
    let groups: Vec<usize> = (0..geometry.group).collect();
    let parts = groups.chunks(groups.len().div_ceil(crate::parallel::threads()).max(1));
    crate::parallel::try_for_each_part(parts, |groups| {
        let mut gram = DMatrix::zeros(side, side);
        for &g in groups {
            crate::interrupt::check()?;
            operator.gram(g, &mut gram);
            let lambda = if side == 0 { 0.0 } else { gram.symmetric_eigenvalues().max().max(0.0) };
            largest.fetch_max(lambda.to_bits(), Ordering::Relaxed);
        }
        Ok(())
    })?;
    Ok(Some(Exact { norm: f64::from_bits(largest.load(Ordering::Relaxed)).sqrt(), side }))
}

/// One spatial axis of the layer: which input position each tap of each
/// output reads, and the converse.
struct Axis {
    /// Per output, `(tap, input)` for the taps that read inside the image.
    by_output: Vec<Vec<(usize, usize)>>,
    /// Per input, `(tap, output)` for the outputs that read it, in
    /// increasing output order.
    by_input: Vec<Vec<(usize, usize)>>,
}

impl Axis {
    /// Output `o`'s tap `t` reads padded position `o·stride + t·dilation`,
    /// input position that minus the pads before; `None` when no output
    /// fits, or when inputs or outputs exceed [`EXACT_SIDE`] (no Gram side
    /// could then be small enough; checked before anything is allocated).
    fn new(geometry: &Geometry, axis: usize, taps: usize) -> Option<Axis> {
        let (stride, dilation, input) = (geometry.strides[axis], geometry.dilations[axis], geometry.input[axis]);
        let span = (taps - 1).checked_mul(dilation)?.checked_add(1)?;
        let outputs = (input.checked_add(geometry.pads[axis])?.checked_sub(span)?) / stride + 1;
        if input.max(outputs) > EXACT_SIDE {
            return None;
        }
        let mut by_output = vec![Vec::new(); outputs];
        let mut by_input = vec![Vec::new(); input];
        for (o, reads) in by_output.iter_mut().enumerate() {
            for t in 0..taps {
                let at = (o * stride + t * dilation).checked_sub(geometry.begin[axis]).filter(|&i| i < input);
                if let Some(i) = at {
                    reads.push((t, i));
                    by_input[i].push((t, o));
                }
            }
        }
        Some(Axis { by_output, by_input })
    }

    /// The lines' reads along this axis: per output when the lines are the
    /// operator's rows, per input when they are its columns.
    fn reads(&self, by_rows: bool) -> &[Vec<(usize, usize)>] {
        if by_rows { &self.by_output } else { &self.by_input }
    }

    /// The positions a line's entries are at: inputs for rows, outputs for
    /// columns.
    fn positions(&self, by_rows: bool) -> usize {
        self.reads(!by_rows).len()
    }

    /// `Σ |reads|²` over the lines' positions.
    fn squares(&self, by_rows: bool) -> usize {
        self.reads(by_rows).iter().map(|l| l.len() * l.len()).sum()
    }
}

/// The zero-padded operator of one group at a time, read by lines: its
/// rows when the inputs are the smaller side, else its columns.
struct Operator<'w> {
    weights: ArrayView4<'w, f32>,
    axes: [Axis; 2],
    /// Output channels per group.
    outputs: usize,
    /// Input channels per group.
    inputs: usize,
    by_rows: bool,
}

impl<'w> Operator<'w> {
    fn new(weights: ArrayView4<'w, f32>, geometry: &Geometry) -> Option<Self> {
        let (cout, inputs, kh, kw) = weights.dim();
        let axes = [Axis::new(geometry, 0, kh)?, Axis::new(geometry, 1, kw)?];
        let outputs = cout / geometry.group.max(1);
        let size = |channels: usize, by_rows: bool| {
            channels.checked_mul(axes[0].positions(by_rows))?.checked_mul(axes[1].positions(by_rows))
        };
        let by_rows = size(inputs, true)? <= size(outputs, false)?;
        Some(Operator { weights, axes, outputs, inputs, by_rows })
    }

    /// Channels per group of the lines, and of their entries.
    fn channels(&self) -> (usize, usize) {
        if self.by_rows { (self.outputs, self.inputs) } else { (self.inputs, self.outputs) }
    }

    /// The side of each group's Gram matrix.
    fn side(&self) -> usize {
        self.channels().1 * self.axes[0].positions(self.by_rows) * self.axes[1].positions(self.by_rows)
    }

    /// One group's accumulation: `Σ nnz²/2` over its lines, and one step
    /// per line.
    fn accumulation(&self) -> Option<usize> {
        let (channels, entries) = self.channels();
        let [h, w] = [0, 1].map(|a| self.axes[a].squares(self.by_rows));
        let squares = channels.checked_mul(entries.checked_mul(entries)?)?.checked_mul(h)?.checked_mul(w)?;
        let lines = [0, 1].map(|a| self.axes[a].reads(self.by_rows).len());
        squares.checked_div(2)?.checked_add(channels.checked_mul(lines[0])?.checked_mul(lines[1])?)
    }

    /// Group `g`'s Gram matrix on the smaller side, its lower triangle.
    fn gram(&self, g: usize, gram: &mut DMatrix<f64>) {
        gram.fill(0.0);
        let n = gram.nrows();
        let (lines, entries) = self.channels();
        let [hs, ws] = [0, 1].map(|a| self.axes[a].reads(self.by_rows));
        let [rows, cols] = [0, 1].map(|a| self.axes[a].positions(self.by_rows));
        let mut line = Vec::new();
        for (c, y, x) in (0..lines).flat_map(|c| (0..hs.len()).flat_map(move |y| (0..ws.len()).map(move |x| (c, y, x))))
        {
            line.clear();
            for i in 0..entries {
                let (o, k) = if self.by_rows { (c, i) } else { (i, c) };
                let kernel = self.weights.slice(s![g * self.outputs + o, k, .., ..]);
                for (&(ty, py), &(tx, px)) in hs[y].iter().flat_map(|r| ws[x].iter().map(move |q| (r, q))) {
                    line.push(((i * rows + py) * cols + px, kernel[[ty, tx]] as f64));
                }
            }
            add_outer(gram.as_mut_slice(), n, &line);
        }
    }
}

/// Adds `v vᵀ` to the lower triangle of a column-major `n × n` matrix, `v`
/// given by its nonzeros in increasing index order.
fn add_outer(data: &mut [f64], n: usize, v: &[(usize, f64)]) {
    for (b, &(jb, vb)) in v.iter().enumerate() {
        let column = &mut data[jb * n..(jb + 1) * n];
        v[b..].iter().for_each(|&(ja, va)| column[ja] += va * vb);
    }
}
