//! The largest singular value of a linear operator known only by its
//! products `x ↦ A x` and `y ↦ Aᵀ y`, and the largest eigenvalue of a
//! symmetric positive semidefinite one: Lanczos with full
//! reorthogonalisation (Golub & Van Loan, *Matrix Computations*, §10.1).
//!
//! **Lanczos.** From a unit start `q₁`, each step makes one product with the
//! symmetric `M` and orthogonalises it against every earlier vector:
//!
//! ```text
//! β_k q_{k+1} = M q_k − α_k q_k − β_{k−1} q_{k−1},    α_k = q_kᵀ M q_k,
//! ```
//!
//! the new vector reorthogonalised against all earlier ones (they are kept,
//! so rounding never lets a converged direction come back as a ghost copy).
//! Then `Q_kᵀ M Q_k = T_k`, the `k × k` tridiagonal matrix of the `α`s and
//! `β`s, with `Q_k` orthonormal, and
//!
//! - **the estimate `θ_k = λ_max(T_k)` never exceeds `λ_max(M)`**: it is
//!   the largest Ritz value on the Krylov space `K_k(M, q₁) = span{q₁, M q₁,
//!   …, M^{k−1} q₁}`, the maximum of the Rayleigh quotient over it, which is
//!   what probabilistic bounds on Lanczos speak of ([`super::dense`] uses
//!   one). It grows with `k` and reaches `λ_max(M)` once the space holds its
//!   eigenvector.
//! - **the residual** of the Ritz pair `x = Q_k s` (`s` the top eigenvector
//!   of `T_k`): `||M x − θ x|| = β_k |s_k|`, and some eigenvalue of `M`
//!   lies within it of `θ` (true of any unit `x` and symmetric `M`). It says the
//!   pair has converged, not that `θ` is the largest: only the other bounds
//!   do that.
//!
//! **Singular values ([`sigma_max`]).** `σ_max(A)² = λ_max(M)` for the
//! normal operator on the smaller side, `M = AᵀA` when `A` has no more
//! columns than rows, else `AAᵀ`: one product with `A` and one with `Aᵀ`
//! per step, as Golub–Kahan bidiagonalisation would make, but only the
//! vectors of the smaller side are kept. A convolution at 224×224 with 64
//! output channels has 21 times more outputs than inputs, and keeping both
//! sides' vectors took 22 times the memory. On the smaller side `K_n` is
//! the whole space, so `θ_n` is exact. `θ = √θ_k` stays below `σ_max(A)`;
//! an eigenvalue `λ` of `M` within `r` of `θ_k` puts the singular value `√λ`
//! within `r / θ` of `θ` (`|√λ − θ| = |λ − θ²| / (√λ + θ)`), the residual
//! reported. Squaring loses accuracy only in the small singular values,
//! which are never needed.
//!
//! The start is uniform on the unit sphere (a normalised Gaussian vector,
//! seeded). The top eigenpair of `T_k` is computed every few steps (a small
//! dense eigendecomposition), and the iteration stops once the residual is
//! below the requested fraction of `θ`, the space is exhausted (a
//! breakdown: the Krylov space is invariant, and `θ` is exact for it), or at
//! the step limit.
//!
//! Keeping every vector costs memory and time: `k n` f64 values, each step
//! reading them all twice (the dots, then the updates), which for a large
//! layer and a few hundred steps costs as much as the products themselves.

use anyhow::Result;
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::parallel;
use crate::simd::fast;

/// A linear map `A` (`rows × cols`) known by its products, which may fail
/// (an ONNX Runtime run, a stop request).
pub trait Operator {
    /// `(rows, cols)` of `A`.
    fn shape(&self) -> (usize, usize);
    /// `out = A x`, `x` with `cols` entries and `out` with `rows`.
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()>;
    /// `out = Aᵀ y`, `y` with `rows` entries and `out` with `cols`.
    fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> Result<()>;
}

/// `Aᵀ` of an operator: the same singular values, with the Krylov space on
/// the other side.
pub struct Transposed<'a, O: Operator>(pub &'a mut O);

impl<O: Operator> Operator for Transposed<'_, O> {
    fn shape(&self) -> (usize, usize) {
        let (rows, cols) = self.0.shape();
        (cols, rows)
    }

    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()> {
        self.0.apply_transpose(x, out)
    }

    fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> Result<()> {
        self.0.apply(y, out)
    }
}

/// When to stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Stop once the residual is at most this fraction of the estimate; 0
    /// runs every step up to `max_steps`.
    pub tolerance: f64,
    /// The most steps (products with `A`, each with one by `Aᵀ`).
    pub max_steps: usize,
    /// The seed of the random start.
    pub seed: u64,
}

/// What the iteration found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// `θ`: the largest Ritz value of `M` ([`lambda_max`]) or its square
    /// root ([`sigma_max`]), never above the true value.
    pub value: f64,
    /// Steps taken: the dimension of the Krylov space.
    pub steps: usize,
    /// How far from `θ` some eigenvalue (or singular value) is known to lie
    /// (module docs).
    pub residual: f64,
}

impl Estimate {
    /// The residual as a fraction of the estimate (0 for a zero operator).
    pub fn relative_residual(&self) -> f64 {
        if self.value > 0.0 { self.residual / self.value } else { 0.0 }
    }
}

/// A product this much smaller than the largest `α` or `β` seen means the
/// Krylov space is invariant (rounding leaves about 1e-16 of the scale).
const BREAKDOWN: f64 = 1e-12;

/// σ_max of `op` by Lanczos on its normal operator on the side of the
/// smaller dimension (module docs), from a random start; `options.tolerance`
/// is relative to σ.
pub fn sigma_max(op: &mut impl Operator, options: &Options) -> Result<Estimate> {
    // An eigenvalue residual `r ≤ t θ²` is a singular value residual `r / θ ≤ t θ`.
    let e = lambda_max(&mut Normal::new(op), options)?;
    let sigma = e.value.max(0.0).sqrt();
    let residual = if sigma > 0.0 { e.residual / sigma } else { 0.0 };
    Ok(Estimate { value: sigma, steps: e.steps, residual })
}

/// `AᵀA` (or `AAᵀ` when `A` has more columns than rows) as one symmetric
/// operator on the smaller side, with the larger side's vector kept.
struct Normal<'a, O: Operator> {
    op: &'a mut O,
    wide: bool,
    scratch: Vec<f64>,
}

impl<'a, O: Operator> Normal<'a, O> {
    fn new(op: &'a mut O) -> Self {
        let (rows, cols) = op.shape();
        Normal { op, wide: cols > rows, scratch: vec![0.0; rows.max(cols)] }
    }
}

impl<O: Operator> Symmetric for Normal<'_, O> {
    fn dim(&self) -> usize {
        let (rows, cols) = self.op.shape();
        rows.min(cols)
    }

    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()> {
        if self.wide {
            self.op.apply_transpose(x, &mut self.scratch)?;
            self.op.apply(&self.scratch, out)
        } else {
            self.op.apply(x, &mut self.scratch)?;
            self.op.apply_transpose(&self.scratch, out)
        }
    }
}

/// A symmetric positive semidefinite operator `M` known by its products
/// (`x ↦ AᵀA x`, or one that costs less as a single product: a dense `A`
/// read once per step instead of twice).
pub trait Symmetric {
    fn dim(&self) -> usize;
    /// `out = M x`.
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()>;
}

/// The largest eigenvalue of `M` by Lanczos from a uniformly random start
/// (module docs): at most `options.max_steps` steps, fewer when the Krylov
/// space becomes invariant or the residual reaches `options.tolerance`
/// times the estimate (0 takes every step).
pub fn lambda_max(op: &mut impl Symmetric, options: &Options) -> Result<Estimate> {
    let n = op.dim();
    let limit = options.max_steps.min(n);
    if limit == 0 {
        return Ok(Estimate { value: 0.0, steps: 0, residual: 0.0 });
    }
    let mut basis = Basis::new(n, limit);
    let (mut alphas, mut betas) = (Vec::new(), Vec::<f64>::new());
    let (mut q, mut w) = (start(n, options.seed), vec![0.0; n]);
    let mut scale = 0.0f64;
    let mut check_at = 1;
    loop {
        crate::interrupt::check()?;
        op.apply(&q, &mut w)?;
        let alpha = dot(&q, &w);
        axpy(-alpha, &q, &mut w);
        if let (Some(previous), Some(&beta)) = (basis.last(), betas.last()) {
            axpy(-beta, previous, &mut w);
        }
        basis.push(&q);
        basis.orthogonalise(&mut w);
        let beta = norm(&w);
        scale = scale.max(alpha.abs()).max(beta);
        alphas.push(alpha);
        let k = alphas.len();
        let done = k == limit || beta <= BREAKDOWN * scale;
        if done || (options.tolerance > 0.0 && k >= check_at) {
            let (value, last) = ritz(&alphas, &betas)?;
            let residual = beta * last;
            if done || residual <= options.tolerance * value {
                return Ok(Estimate { value, steps: k, residual });
            }
            check_at = k + (k / 8).max(1);
        }
        betas.push(beta);
        q.iter_mut().zip(&w).for_each(|(q, &w)| *q = w / beta);
    }
}

/// A unit vector uniform on the sphere: a normalised standard Gaussian one.
pub fn start(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    let length = norm(&v);
    v.iter_mut().for_each(|x| *x /= length);
    v
}

/// The largest eigenvalue of the tridiagonal matrix of `alphas`
/// (diagonal) and `betas` (off-diagonal, one fewer), with `|s_k|`, the last
/// entry of its eigenvector.
fn ritz(alphas: &[f64], betas: &[f64]) -> Result<(f64, f64)> {
    let k = alphas.len();
    let t = DMatrix::from_fn(k, k, |i, j| match j {
        _ if j == i => alphas[i],
        _ if j == i + 1 => betas[i],
        _ if i == j + 1 => betas[j],
        _ => 0.0,
    });
    let eigen = t
        .try_symmetric_eigen(f64::EPSILON, 0)
        .ok_or_else(|| anyhow::anyhow!("the eigenvalues of the {k}×{k} Lanczos matrix did not converge"))?;
    let (top, value) = eigen.eigenvalues.argmax();
    Ok((value, eigen.eigenvectors[(k - 1, top)].abs()))
}

/// Orthonormal vectors of one length, kept one after another.
struct Basis {
    dim: usize,
    vectors: Vec<f64>,
}

impl Basis {
    /// Room for `most` vectors, reserved at once: never moved while it
    /// grows, and only the pages written are taken from the system.
    fn new(dim: usize, most: usize) -> Basis {
        Basis { dim, vectors: Vec::with_capacity(dim * most) }
    }

    fn push(&mut self, v: &[f64]) {
        self.vectors.extend_from_slice(v);
    }

    fn last(&self) -> Option<&[f64]> {
        self.vectors.rchunks_exact(self.dim).next()
    }

    /// Removes `x`'s components along the basis (classical Gram–Schmidt:
    /// all the dots, then all the updates, each split over the cores), a
    /// second time when the first pass cancelled most of `x` (Kahan's "twice
    /// is enough": rounding may then have left components of the size of
    /// the cancellation).
    fn orthogonalise(&self, x: &mut [f64]) {
        let (dim, count) = (self.dim, self.vectors.len() / self.dim.max(1));
        let threads = parallel::threads();
        let mut dots = vec![0.0; count];
        for _ in 0..2 {
            let before = norm(x);
            let per_part = parallel::rows_per_part(count, dim, threads);
            let parts = self.vectors.chunks(per_part * dim).zip(dots.chunks_mut(per_part));
            let x_ = &*x;
            parallel::for_each_part(parts, |(vectors, dots)| {
                fast(|| vectors.chunks_exact(dim).zip(dots).for_each(|(b, d)| *d = dot(b, x_)))
            });
            let width = parallel::rows_per_part(dim, count, threads);
            parallel::for_each_part(x.chunks_mut(width).enumerate(), |(part, x)| {
                let range = part * width..part * width + x.len();
                fast(|| self.vectors.chunks_exact(dim).zip(&dots).for_each(|(b, &d)| axpy(-d, &b[range.clone()], x)))
            });
            if norm(x) >= 0.7 * before {
                break;
            }
        }
    }
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            sums[l] += x[l] * y[l];
        }
    }
    sums.iter().sum::<f64>() + tail
}

#[inline(always)]
fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

/// `y += a x`.
#[inline(always)]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diagonal operator: its singular values are the entries' sizes.
    struct Diagonal(Vec<f64>);

    impl Operator for Diagonal {
        fn shape(&self) -> (usize, usize) {
            (self.0.len(), self.0.len())
        }
        fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()> {
            out.iter_mut().zip(x).zip(&self.0).for_each(|((o, x), d)| *o = x * d);
            Ok(())
        }
        fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> Result<()> {
            self.apply(y, out)
        }
    }

    #[test]
    fn the_start_is_a_seeded_unit_vector() {
        let v = start(1000, 7);
        assert!((norm(&v) - 1.0).abs() < 1e-12);
        assert_eq!(v, start(1000, 7));
        assert_ne!(v, start(1000, 8));
    }

    #[test]
    fn an_invariant_space_stops_the_iteration_with_the_exact_value() {
        // Two distinct singular values: the Krylov space of any start has
        // dimension 2, and the third step breaks down.
        let mut op = Diagonal([3.0, -3.0, 1.0, 1.0, 3.0, 1.0].to_vec());
        let options = Options { tolerance: 0.0, max_steps: 6, seed: 1 };
        let e = sigma_max(&mut op, &options).unwrap();
        assert!((e.value - 3.0).abs() < 1e-12, "{e:?}");
        assert!(e.steps <= 3, "{e:?}");
        assert!(e.relative_residual() < 1e-10, "{e:?}");
        let zero = sigma_max(&mut Diagonal(vec![0.0; 5]), &options).unwrap();
        assert_eq!((zero.value, zero.steps), (0.0, 1));
    }
}
