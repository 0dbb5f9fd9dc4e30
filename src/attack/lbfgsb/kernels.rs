//! The inner loops. The passes over the variables and the memory's rows
//! are most of the solver's time, so each runs inside [`fast`]
//! ([`crate::simd`]), in an AVX2 copy where the CPU has it; the helpers
//! here are `inline(always)` so that they are compiled into that copy.

pub(super) use crate::simd::fast;

/// a·b with four partial sums (so that it vectorises), over the shorter length.
#[inline(always)]
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (blocks_a, blocks_b) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = blocks_a.remainder().iter().zip(blocks_b.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0.0; 4];
    for (x, y) in blocks_a.zip(blocks_b) {
        for j in 0..4 {
            lanes[j] += x[j] * y[j];
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Numbers as many as a memory row has (2k): `[f64; W]` for the widths of
/// a memory of up to ten pairs, which the compiler keeps in registers
/// through a pass over the rows, else [`AnyWidth`]. [`with_row_sums!`]
/// picks the type from the width at run time.
pub(super) trait RowSums: Copy {
    fn zeros(width: usize) -> Self;
    fn values(&self) -> &[f64];
    fn values_mut(&mut self) -> &mut [f64];

    /// The first `width` numbers of `from`.
    #[inline(always)]
    fn copied(from: &[f64]) -> Self {
        let mut sums = Self::zeros(from.len());
        let width = sums.values().len();
        sums.values_mut().copy_from_slice(&from[..width]);
        sums
    }
}

impl<const W: usize> RowSums for [f64; W] {
    #[inline(always)]
    fn zeros(_: usize) -> Self {
        [0.0; W]
    }

    #[inline(always)]
    fn values(&self) -> &[f64] {
        self
    }

    #[inline(always)]
    fn values_mut(&mut self) -> &mut [f64] {
        self
    }
}

/// Row sums of any width up to that of [`MAX_MEMORY`](super::MAX_MEMORY) pairs.
#[derive(Clone, Copy)]
pub(super) struct AnyWidth {
    values: [f64; 2 * super::MAX_MEMORY],
    width: usize,
}

impl RowSums for AnyWidth {
    #[inline(always)]
    fn zeros(width: usize) -> Self {
        AnyWidth { values: [0.0; 2 * super::MAX_MEMORY], width }
    }

    #[inline(always)]
    fn values(&self) -> &[f64] {
        &self.values[..self.width]
    }

    #[inline(always)]
    fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values[..self.width]
    }
}

/// `with_row_sums!(width, S => expression)`: the expression with the type
/// `S` the [`RowSums`] of that width.
macro_rules! with_row_sums {
    ($width:expr, $sums:ident => $body:expr) => {
        match $width {
            2 => {
                type $sums = [f64; 2];
                $body
            }
            4 => {
                type $sums = [f64; 4];
                $body
            }
            6 => {
                type $sums = [f64; 6];
                $body
            }
            8 => {
                type $sums = [f64; 8];
                $body
            }
            10 => {
                type $sums = [f64; 10];
                $body
            }
            12 => {
                type $sums = [f64; 12];
                $body
            }
            14 => {
                type $sums = [f64; 14];
                $body
            }
            16 => {
                type $sums = [f64; 16];
                $body
            }
            18 => {
                type $sums = [f64; 18];
                $body
            }
            20 => {
                type $sums = [f64; 20];
                $body
            }
            _ => {
                type $sums = $crate::attack::lbfgsb::kernels::AnyWidth;
                $body
            }
        }
    };
}
pub(super) use with_row_sums;

/// Σ c_i · row_i over every row (row i at `rows[i·stride..]`): a zero c_i
/// costs a row's arithmetic, less than a branch on it would.
#[inline(always)]
pub(super) fn combine_rows<S: RowSums>(rows: &[f64], stride: usize, width: usize, c: &[f64]) -> S {
    let mut sums = S::zeros(width);
    let acc = sums.values_mut();
    for (i, &c_i) in c.iter().enumerate() {
        let row = &rows[i * stride..][..acc.len()];
        for (a, &w) in acc.iter_mut().zip(row) {
            *a += c_i * w;
        }
    }
    sums
}

/// The largest of `value(i)` for i in 0..n and 0, in four lanes without
/// branches (so that it vectorises); no value may be NaN.
#[inline(always)]
pub(super) fn largest(n: usize, value: impl Fn(usize) -> f64) -> f64 {
    let mut lanes = [0.0f64; 4];
    for block in (0..n / 4 * 4).step_by(4) {
        for (j, lane) in lanes.iter_mut().enumerate() {
            let v = value(block + j);
            *lane = if v > *lane { v } else { *lane };
        }
    }
    let tail = (n / 4 * 4..n).map(&value).fold(0.0, f64::max);
    lanes.into_iter().fold(tail, f64::max)
}

/// The smallest of `value(i)` for i in 0..n and +∞, as [`largest`].
#[inline(always)]
pub(super) fn smallest(n: usize, value: impl Fn(usize) -> f64) -> f64 {
    let mut lanes = [f64::INFINITY; 4];
    for block in (0..n / 4 * 4).step_by(4) {
        for (j, lane) in lanes.iter_mut().enumerate() {
            let v = value(block + j);
            *lane = if v < *lane { v } else { *lane };
        }
    }
    let tail = (n / 4 * 4..n).map(&value).fold(f64::INFINITY, f64::min);
    lanes.into_iter().fold(tail, f64::min)
}

/// y += alpha x.
#[inline(always)]
pub(super) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

/// out = a − b, returning g·out (four partial sums, as [`dot`]).
#[inline(always)]
pub(super) fn difference_dot(out: &mut [f64], a: &[f64], b: &[f64], g: &[f64]) -> f64 {
    let n = out.len();
    let (a, b, g) = (&a[..n], &b[..n], &g[..n]);
    let mut lanes = [0.0; 4];
    let blocks = n / 4 * 4;
    let (out_blocks, out_tail) = out.split_at_mut(blocks);
    let inputs = a.chunks_exact(4).zip(b.chunks_exact(4)).zip(g.chunks_exact(4));
    for (o, ((a, b), g)) in out_blocks.chunks_exact_mut(4).zip(inputs) {
        for (j, lane) in lanes.iter_mut().enumerate() {
            o[j] = a[j] - b[j];
            *lane += g[j] * o[j];
        }
    }
    let mut tail = 0.0;
    for (j, o) in out_tail.iter_mut().enumerate() {
        let i = blocks + j;
        *o = a[i] - b[i];
        tail += g[i] * *o;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Whether every number of `g` is finite, and g·d (as [`dot`]), in one pass.
#[inline(always)]
pub(super) fn finite_and_dot(g: &[f64], d: &[f64]) -> (bool, f64) {
    let finite = g.iter().fold(true, |finite, v| finite & v.is_finite());
    (finite, dot(g, d))
}
