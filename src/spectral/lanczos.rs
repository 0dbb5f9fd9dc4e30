//! The largest singular value of a linear operator known only by its
//! products `x ↦ A x` and `y ↦ Aᵀ y`: Golub–Kahan–Lanczos bidiagonalisation
//! (Golub & Van Loan, *Matrix Computations*, §10.4).
//!
//! From a unit start `v₁`, each step makes one product with `A` and one
//! with `Aᵀ`:
//!
//! ```text
//! α_k u_k = A v_k − β_{k−1} u_{k−1},     β_k v_{k+1} = Aᵀ u_k − α_k v_k,
//! ```
//!
//! each new vector orthogonalised against all earlier ones (full
//! reorthogonalisation: the vectors are kept, so rounding never lets a
//! converged direction come back as a ghost copy). Then `A V_k = U_k B_k`
//! with `B_k` the `k × k` upper bidiagonal matrix of the `α`s and `β`s, and
//! `U_k`, `V_k` orthonormal, so `B_k = U_kᵀ A V_k` and
//!
//! - **the estimate `θ_k = σ_max(B_k)` never exceeds `σ_max(A)`**: it is the
//!   norm of a compression of `A`. It is the square root of the largest
//!   Ritz value of `AᵀA` on the Krylov space `K_k(AᵀA, v₁) = span{v₁,
//!   AᵀA v₁, …, (AᵀA)^{k−1} v₁}` (as `V_kᵀ AᵀA V_k = B_kᵀ B_k`), which is
//!   what probabilistic bounds on Lanczos speak of ([`super::dense`] uses
//!   one, with the symmetric form [`lambda_max`] run on `WᵀW`). It grows
//!   with `k` and reaches `σ_max(A)` once the space holds its singular
//!   vector.
//! - **the residual** of the Ritz pair `x = V_k q`, `y = U_k p` (the top
//!   singular vectors of `B_k`): `A x = θ y` exactly and
//!   `||Aᵀ y − θ x|| = β_k |p_k|`. Some singular value of `A` (or 0) lies
//!   within that residual of `θ` (it is the residual of the eigenpair `(θ, (y, x)/√2)`
//!   of `[[0, A], [Aᵀ, 0]]`, scaled by √2). It says the pair has converged,
//!   not that `θ` is the largest: only the other bounds do that.
//!
//! The start is uniform on the unit sphere (a normalised Gaussian vector,
//! seeded). The top singular value of `B_k` is computed every few steps
//! (a small dense SVD), and the iteration stops once the residual is below
//! the requested fraction of `θ`, the space is exhausted (a breakdown:
//! the Krylov space is invariant, and `θ` is exact for it), or at the step
//! limit. The start is on the side of the smaller dimension (see
//! [`sigma_max`]).
//!
//! Keeping every vector costs memory and time: `k (rows + cols)` f64 values,
//! and each step reads them all twice (the dots, then the updates), which
//! for a large layer (AlexNet's conv1, 150528 inputs, 193600 outputs) and a
//! hundred steps costs more than the products themselves.

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
    /// `θ = σ_max(B_k)`, never above `σ_max(A)`.
    pub sigma: f64,
    /// Steps taken: the dimension of the Krylov space.
    pub steps: usize,
    /// `||Aᵀ y − θ x||` of the Ritz pair (module docs).
    pub residual: f64,
}

impl Estimate {
    /// The residual as a fraction of the estimate (0 for a zero operator).
    pub fn relative_residual(&self) -> f64 {
        if self.sigma > 0.0 { self.residual / self.sigma } else { 0.0 }
    }
}

/// A product this much smaller than the largest `α` or `β` seen means the
/// Krylov space is invariant (rounding leaves about 1e-16 of the scale).
const BREAKDOWN: f64 = 1e-12;

/// σ_max of `op` by Golub–Kahan–Lanczos from a random start (module docs),
/// on the side of the smaller dimension `n` (`x` when `cols ≤ rows`, else
/// `y`, through `Aᵀ`): there `K_n` is the whole space and `θ_n` is exact,
/// while from the larger side the Krylov space stops one dimension short
/// of `A`'s row space.
pub fn sigma_max(op: &mut impl Operator, options: &Options) -> Result<Estimate> {
    let (rows, cols) = op.shape();
    if cols > rows { bidiagonalise(&mut Transposed(op), options) } else { bidiagonalise(op, options) }
}

/// [`sigma_max`] with the start on the `cols` side.
fn bidiagonalise(op: &mut impl Operator, options: &Options) -> Result<Estimate> {
    let (rows, cols) = op.shape();
    let limit = options.max_steps.min(rows).min(cols);
    if limit == 0 {
        return Ok(Estimate { sigma: 0.0, steps: 0, residual: 0.0 });
    }
    let (mut us, mut vs) = (Basis::new(rows, limit), Basis::new(cols, limit));
    let (mut alphas, mut betas) = (Vec::new(), Vec::new());
    let (mut u, mut v, mut w) = (vec![0.0; rows], start(cols, options.seed), vec![0.0; cols]);
    let (mut beta, mut scale) = (0.0f64, 0.0f64);
    let mut check_at = 1;
    loop {
        crate::interrupt::check()?;
        op.apply(&v, &mut u)?;
        if let Some(previous) = us.last() {
            axpy(-beta, previous, &mut u);
        }
        us.orthogonalise(&mut u);
        let alpha = norm(&u);
        scale = scale.max(alpha);
        alphas.push(alpha);
        if alpha <= BREAKDOWN * scale {
            // `A v_k` lies in the span of the earlier `u`s: the space is
            // invariant, and what is left of the product is the residual.
            let (sigma, _) = ritz(&alphas, &betas)?;
            return Ok(Estimate { sigma, steps: alphas.len(), residual: alpha });
        }
        u.iter_mut().for_each(|x| *x /= alpha);
        vs.push(&v);
        op.apply_transpose(&u, &mut w)?;
        axpy(-alpha, &v, &mut w);
        vs.orthogonalise(&mut w);
        us.push(&u);
        beta = norm(&w);
        scale = scale.max(beta);
        betas.push(beta);
        let k = alphas.len();
        let done = k == limit || beta <= BREAKDOWN * scale;
        if done || (options.tolerance > 0.0 && k >= check_at) {
            let (sigma, last) = ritz(&alphas, &betas)?;
            let residual = beta * last;
            if done || residual <= options.tolerance * sigma {
                return Ok(Estimate { sigma, steps: k, residual });
            }
            check_at = k + (k / 8).max(1);
        }
        v.iter_mut().zip(&w).for_each(|(v, &w)| *v = w / beta);
    }
}

/// A symmetric positive semidefinite operator `M` known by its products:
/// for [`lambda_max`], when `x ↦ AᵀA x` costs less as one product than as
/// two (a dense `A` read once per step instead of twice).
pub trait Symmetric {
    fn dim(&self) -> usize;
    /// `out = M x`.
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<()>;
}

/// The largest Ritz value of `M` after `steps` steps of Lanczos from a
/// uniformly random start (fewer when the Krylov space becomes invariant),
/// with the steps taken: the largest eigenvalue of the tridiagonal
/// `T_k = Q_kᵀ M Q_k`, never above `λ_max(M)`. Every new vector is
/// reorthogonalised against all earlier ones, as in [`sigma_max`].
pub fn lambda_max(op: &mut impl Symmetric, steps: usize, seed: u64) -> Result<(f64, usize)> {
    let n = op.dim();
    let limit = steps.min(n);
    if limit == 0 {
        return Ok((0.0, 0));
    }
    let mut basis = Basis::new(n, limit);
    let (mut alphas, mut betas) = (Vec::new(), Vec::<f64>::new());
    let (mut q, mut w) = (start(n, seed), vec![0.0; n]);
    let mut scale = 0.0f64;
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
        if alphas.len() == limit || beta <= BREAKDOWN * scale {
            break;
        }
        betas.push(beta);
        q.iter_mut().zip(&w).for_each(|(q, &w)| *q = w / beta);
    }
    let k = alphas.len();
    let t = DMatrix::from_fn(k, k, |i, j| match j {
        _ if j == i => alphas[i],
        _ if j == i + 1 => betas[i],
        _ if i == j + 1 => betas[j],
        _ => 0.0,
    });
    Ok((t.symmetric_eigenvalues().max(), k))
}

/// A unit vector uniform on the sphere: a normalised standard Gaussian one.
pub fn start(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    let length = norm(&v);
    v.iter_mut().for_each(|x| *x /= length);
    v
}

/// σ_max of the bidiagonal matrix of `alphas` (diagonal) and the first
/// `k − 1` `betas` (superdiagonal), with `|p_k|`, the last entry of its top
/// left singular vector.
fn ritz(alphas: &[f64], betas: &[f64]) -> Result<(f64, f64)> {
    let k = alphas.len();
    let b = DMatrix::from_fn(k, k, |i, j| match j {
        _ if j == i => alphas[i],
        _ if j == i + 1 => betas[i],
        _ => 0.0,
    });
    let svd = b
        .try_svd(true, false, f64::EPSILON, 0)
        .ok_or_else(|| anyhow::anyhow!("the SVD of the {k}×{k} Lanczos bidiagonal matrix did not converge"))?;
    let (top, sigma) = svd.singular_values.argmax();
    let u = svd.u.expect("asked for U");
    Ok((sigma, u[(k - 1, top)].abs()))
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
        assert!((e.sigma - 3.0).abs() < 1e-12, "{e:?}");
        assert!(e.steps <= 3, "{e:?}");
        assert!(e.relative_residual() < 1e-10, "{e:?}");
        let zero = sigma_max(&mut Diagonal(vec![0.0; 5]), &options).unwrap();
        assert_eq!((zero.sigma, zero.steps), (0.0, 1));
    }
}
