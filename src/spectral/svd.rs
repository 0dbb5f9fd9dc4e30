//! Largest singular values of dense matrices, real or complex.
//!
//! nalgebra's SVD (Householder bidiagonalisation, then implicit-shift QR
//! sweeps until the off-diagonal is below machine precision) is backward
//! stable: the computed σ_max is within a few ulps times ||A|| of the true
//! one, far tighter than the 1e-3 the bounds are reported to. Matrices here
//! are small (a weight matrix, or one Cout×Cin matrix per frequency).
//!
//! **The largest of many σ_max ([`Gram`]).** A convolution's norm is the
//! largest σ_max over hundreds of complex matrices, where a full SVD of each
//! would cost minutes. For a complex `r × l` matrix `A` (`r ≤ l`),
//! `σ_max(A)² = λ_max(H)` with `H = A Aᴴ`, the smaller Gram matrix. `H` is
//! formed from real products (`Re H = Ar Arᵀ + Ai Aiᵀ`, `Im H = Q − Qᵀ` with
//! `Q = Ai Arᵀ`), which nalgebra hands to matrixmultiply's blocked kernels.
//! Most matrices only need to be shown *not* to beat the largest value found
//! so far, `μ`: `λ_max(H) < μ` exactly when `μI − H` is positive definite,
//! which one Cholesky factorisation decides, a quarter of the cost of the
//! eigenvalues. It runs on the real symmetric form `[[Re H, −Im H], [Im H,
//! Re H]]`, whose eigenvalues are those of `H`, each twice: nalgebra's
//! complex Cholesky takes the square root of a negative pivot instead of
//! failing. Only a matrix that passes the test gets its eigenvalues (the
//! Hermitian tridiagonal QR, eigenvalues only).
//!
//! Accuracy: the Gram matrix is formed with an error `||ΔH|| ≤ γ_l ||A||²
//! √(r l)`, the eigenvalue solver and the Cholesky factorisation are
//! backward stable (`|Δλ| ≤ c r ε ||H||` by Weyl's inequality), so the result
//! is within about `(r l + r) ε` of the exact `σ_max²` relative to it, and
//! `σ_max` within half that: below 1e-10 for any layer of a real network
//! (`r l < 10⁶`), seven orders below the digits the bounds are shown with.
//! Squaring loses accuracy only in the *small* singular values, which are
//! never needed.

use anyhow::{Result, bail};
use nalgebra::{Cholesky, ComplexField, DMatrix};
use ndarray::ArrayView2;
use rustfft::num_complex::Complex;

/// σ_max of a real matrix given as f32 values.
pub fn sigma_max_f32(a: ArrayView2<f32>) -> Result<f64> {
    if a.iter().any(|v| !v.is_finite()) {
        bail!("the matrix holds NaN or infinite values");
    }
    let (rows, cols) = a.dim();
    Ok(sigma_max(DMatrix::from_fn(rows, cols, |i, j| a[[i, j]] as f64)))
}

/// σ_max of a matrix of finite values (0 for an empty one).
pub fn sigma_max<T: ComplexField<RealField = f64>>(a: DMatrix<T>) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.singular_values().iter().fold(0.0, |m, &s| m.max(s))
}

/// The Gram matrix of one complex matrix after another, with its buffers
/// kept between them.
#[derive(Default)]
pub struct Gram {
    transposed: DMatrix<f64>,
    re: DMatrix<f64>,
    q: DMatrix<f64>,
}

impl Gram {
    /// `σ_max(A)²` of a complex `r × l` matrix `A` when it exceeds `floor`,
    /// `None` when it does not. `rows` holds `A` a row per column, real
    /// parts above imaginary ones (a `2l × r` real matrix); it is cheapest
    /// with `r ≤ l`.
    pub fn sigma_max_sq_above(&mut self, rows: &DMatrix<f64>, floor: f64) -> Option<f64> {
        let (l, r) = (rows.nrows() / 2, rows.ncols());
        if r == 0 || l == 0 {
            return (floor < 0.0).then_some(0.0);
        }
        if r == 1 {
            return Some(rows.norm_squared()).filter(|&s| s > floor);
        }
        self.transposed.resize_mut(r, 2 * l, 0.0);
        rows.transpose_to(&mut self.transposed);
        self.re.resize_mut(r, r, 0.0);
        self.re.gemm(1.0, &self.transposed, rows, 0.0);
        self.q.resize_mut(r, r, 0.0);
        self.q.gemm(1.0, &self.transposed.columns(l, l), &rows.rows(0, l), 0.0);
        if floor > 0.0 && self.below(floor) {
            return None;
        }
        let h = DMatrix::from_fn(r, r, |i, j| Complex::new(self.re[(i, j)], self.q[(i, j)] - self.q[(j, i)]));
        Some(h.symmetric_eigenvalues().max())
    }

    /// Whether `floor · I − H` is positive definite, i.e. `λ_max(H) < floor`,
    /// by a Cholesky factorisation of its real symmetric form.
    fn below(&self, floor: f64) -> bool {
        let r = self.re.nrows();
        let im = |i: usize, j: usize| self.q[(i, j)] - self.q[(j, i)];
        let margin = DMatrix::from_fn(2 * r, 2 * r, |i, j| {
            let h = match (i < r, j < r) {
                (true, true) => self.re[(i, j)],
                (false, false) => self.re[(i - r, j - r)],
                (true, false) => -im(i, j - r),
                (false, true) => im(i - r, j),
            };
            if i == j { floor - h } else { -h }
        });
        Cholesky::new(margin).is_some()
    }
}
