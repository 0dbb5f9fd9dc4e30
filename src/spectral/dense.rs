//! Fully connected layers. `x ↦ W x + b` moves two inputs apart by
//! `||W (x - x')||`, so its Lipschitz constant is exactly the operator norm
//! `||W||₂ = σ_max(W)`, the largest singular value; the bias cancels.
//! Transposing `W` (Gemm's `transB`) keeps its singular values, and Gemm's
//! `alpha` scales them.
//!
//! **Small weights: exact.** A weight whose SVD takes under a second
//! ([`EXACT_WORK`]: every MNIST layer, 1000×1000 in about half a second)
//! gets nalgebra's dense SVD ([`svd`]).
//!
//! **Large weights: a probabilistic upper bound.** The FC layers of
//! torchvision's nets (AlexNet's 9216×4096, VGG's 25088×4096) would take
//! minutes. Their bound comes from `k` steps of Lanczos
//! ([`lanczos::lambda_max`]) on the `n × n` positive semidefinite matrix
//! `M = WᵀW`, `n` the stored weight's column count, from a start uniform on
//! the sphere; `k` is the dimension of the Krylov space `K_k(M, v₁)`, the
//! number of products with `M`, and `θ_k²` the largest eigenvalue of the
//! tridiagonal matrix `Q_kᵀ M Q_k`. Kuczyński and Woźniakowski (SIAM J.
//! Matrix Anal. Appl. 13(4), 1992, Theorem 4.2(a); restated by Martinsson
//! and Tropp, "Randomized numerical linear algebra", Acta Numerica 2020,
//! §6) bound Lanczos for every PSD `M`:
//!
//! ```text
//! P[ θ_k² < (1 − ε) λ_max(M) ] ≤ 1.648 √n e^{−√ε (2k − 1)}.
//! ```
//!
//! With `λ_max(M) = σ_max(W)²`, the event `σ_max(W) > θ_k / √(1 − ε)` is
//! that one, so `σ_max(W) ≤ θ_k / √(1 − ε)` with probability at least
//! `1 − δ` once `√ε (2k − 1) = ln(1.648 √n / δ)`. advx takes `δ` =
//! [`FAILURE`] (1e-12) and the `k` that makes the inflation `1/√(1 − ε)`
//! at most [`INFLATION`] (0.5%, half the 1% a layer's bound is read to):
//! about 165 steps for the sizes above. The
//! probability is over the start vector only, which is drawn independently
//! of `W` (a fixed seed, so the bound is reproducible). Should the Krylov
//! space become invariant before `k` steps, `K_k = K_j` and the bound with
//! `k` still holds. The theorem is about exact arithmetic; the products are
//! accumulated in f64 over the f32 weights and every vector is
//! reorthogonalised, so the computed `θ_k` differs from the exact one by
//! rounding of at most about 1e-12 relative, eight orders below
//! the inflation.
//!
//! `WᵀW` rather than `WWᵀ` even when `W` has fewer rows than columns: a
//! product with `WᵀW` reads each row of `W` once (its dot with `x`, then the
//! row times that, while it is in cache), where `WWᵀ` would read `W` twice
//! or need a transposed copy, and the larger `n` only enters through `√n`
//! inside the logarithm (25088 instead of 4096: 264 steps instead of 257).
//! The products read `W` as stored (f32), accumulate in f64, and split the
//! rows over the cores.

use anyhow::{Result, bail};
use ndarray::{ArrayView2, Ix2};

use super::graph::Step;
use super::lanczos;
use super::layers::{base, constant};
use super::{Layer, svd};
use crate::parallel;
use crate::simd::fast;

/// The largest `rows × cols × min(rows, cols)` (the SVD's work) whose σ_max
/// is computed exactly: about half a second of nalgebra's SVD (1000×1000).
pub const EXACT_WORK: usize = 1 << 30;
/// The probability that a Lanczos bound is not an upper bound.
pub const FAILURE: f64 = 1e-12;
/// The most a Lanczos bound exceeds its estimate, `1/√(1 − ε)`.
pub const INFLATION: f64 = 1.005;
/// The seed of the Lanczos start vector.
const SEED: u64 = 0x5eed;

/// Gemm `alpha · A·op(B) + beta·C` with the data as A and constant B.
pub fn gemm(step: &Step) -> Result<Layer> {
    let n = &step.node;
    if step.data != 0 {
        bail!("{} takes the data as its B input; advx bounds Gemm as data × weights only", n.describe());
    }
    if n.int("transA", 0) != 0 {
        bail!("{} transposes its data (transA = 1), which would mix the samples of a batch", n.describe());
    }
    let alpha = n.float("alpha", 1.0) as f64;
    let mut layer = weighted(step, 1)?;
    layer.bound *= alpha.abs();
    if alpha != 1.0 {
        layer.method.push_str(&format!(" × |alpha| {alpha}"));
    }
    Ok(layer)
}

/// MatMul of the data by a constant matrix.
pub fn matmul(step: &Step) -> Result<Layer> {
    if step.data != 0 {
        bail!("{} multiplies a constant by the data; advx bounds MatMul as data × weights only", step.node.describe());
    }
    weighted(step, 1)
}

/// The layer of a 2-D weight in input `slot`, bounded by its σ_max.
fn weighted(step: &Step, slot: usize) -> Result<Layer> {
    let (name, w) = constant(step, slot, "weight")?;
    let Ok(matrix) = w.view().into_dimensionality::<Ix2>() else {
        bail!("{}: weight '{name}' is shaped {:?}; advx bounds 2-D weights only", step.node.describe(), w.shape());
    };
    let (bound, method) = sigma_bound(matrix, EXACT_WORK)?;
    let mut layer = base(step, bound, method);
    layer.weight = Some((name.to_string(), w.shape().to_vec()));
    Ok(layer)
}

/// An upper bound of σ_max(W) and how it was obtained: exact when the SVD's
/// work is at most `exact_work`, else the Lanczos bound (module docs).
pub fn sigma_bound(w: ArrayView2<f32>, exact_work: usize) -> Result<(f64, String)> {
    let (rows, cols) = w.dim();
    if rows.saturating_mul(cols).saturating_mul(rows.min(cols)) <= exact_work {
        return Ok((svd::sigma_max_f32(w)?, format!("σ_max of {rows}×{cols}")));
    }
    if w.iter().any(|v| !v.is_finite()) {
        bail!("the matrix holds NaN or infinite values");
    }
    let (steps, epsilon) = plan(cols);
    let w = w.as_standard_layout();
    let mut gram = Gram::new(w.as_slice().expect("standard layout"), rows, cols);
    let every_step = lanczos::Options { tolerance: 0.0, max_steps: steps, seed: SEED };
    let sigma = lanczos::lambda_max(&mut gram, &every_step)?.value.max(0.0).sqrt();
    let method = format!(
        "σ_max of {rows}×{cols} ≤ Lanczos σ̂ {sigma:.6} / √(1−ε), ε = {epsilon:.2e}, P ≥ 1 − {FAILURE:e} \
         ({steps} steps, Kuczyński–Woźniakowski)"
    );
    Ok((sigma / (1.0 - epsilon).sqrt(), method))
}

/// The Lanczos steps `k` for an `n × n` Gram matrix and the `ε` they give:
/// `1.648 √n e^{−√ε (2k − 1)} = δ` with `1/√(1 − ε)` at most [`INFLATION`].
pub fn plan(n: usize) -> (usize, f64) {
    let log = (1.648 * (n.max(1) as f64).sqrt() / FAILURE).ln();
    let target = 1.0 - INFLATION.powi(-2);
    let steps = ((log / target.sqrt() + 1.0) / 2.0).ceil() as usize;
    (steps, (log / (2 * steps - 1) as f64).powi(2))
}

/// `WᵀW` of a row-major f32 matrix `W` as a Lanczos operator: one pass
/// over the rows per product, each row's dot with `x` then the row times
/// it added to the sum while the row is in cache; f64 sums, rows split
/// over the cores, each part's sum kept between products.
struct Gram<'w> {
    w: &'w [f32],
    cols: usize,
    per_part: usize,
    partials: Vec<f64>,
}

impl<'w> Gram<'w> {
    fn new(w: &'w [f32], rows: usize, cols: usize) -> Self {
        let per_part = parallel::rows_per_part(rows, cols, parallel::threads());
        let partials = vec![0.0; rows.div_ceil(per_part) * cols];
        Gram { w, cols, per_part, partials }
    }
}

impl lanczos::Symmetric for Gram<'_> {
    fn dim(&self) -> usize {
        self.cols
    }

    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()> {
        let cols = self.cols;
        let parts = self.partials.chunks_mut(cols).zip(self.w.chunks(self.per_part * cols));
        parallel::for_each_part(parts, |(sum, rows)| {
            fast(|| {
                sum.fill(0.0);
                for row in rows.chunks_exact(cols) {
                    let c = dot(row, x);
                    sum.iter_mut().zip(row).for_each(|(s, &r)| *s += c * r as f64);
                }
            })
        });
        out.fill(0.0);
        for sum in self.partials.chunks_exact(cols) {
            out.iter_mut().zip(sum).for_each(|(o, s)| *o += s);
        }
        Ok(())
    }
}

/// `row · x` in f64, in eight independent sums (so that it vectorises).
#[inline(always)]
fn dot(row: &[f32], x: &[f64]) -> f64 {
    let mut sums = [0.0f64; 8];
    let (r8, x8) = (row.chunks_exact(8), x.chunks_exact(8));
    let tail: f64 = r8.remainder().iter().zip(x8.remainder()).map(|(&r, &x)| r as f64 * x).sum();
    for (r, x) in r8.zip(x8) {
        for l in 0..8 {
            sums[l] += r[l] as f64 * x[l];
        }
    }
    sums.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_meets_the_failure_probability_and_the_inflation() {
        for n in [1, 100, 4096, 25088, 1 << 20] {
            let (k, epsilon) = plan(n);
            let failure = 1.648 * (n as f64).sqrt() * (-epsilon.sqrt() * (2 * k - 1) as f64).exp();
            assert!(failure <= FAILURE * (1.0 + 1e-9), "n = {n}: {failure}");
            assert!(1.0 / (1.0 - epsilon).sqrt() <= INFLATION, "n = {n}: ε = {epsilon}");
            let fewer = (1.648 * (n as f64).sqrt() / FAILURE).ln() / (2 * k - 3) as f64;
            assert!(1.0 / (1.0 - fewer * fewer).sqrt() > INFLATION, "n = {n}: {k} steps are more than needed");
        }
    }
}
