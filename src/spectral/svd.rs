//! Largest singular values of dense matrices, real or complex.
//!
//! nalgebra's SVD (Householder bidiagonalisation, then implicit-shift QR
//! sweeps until the off-diagonal is below machine precision) is backward
//! stable: the computed σ_max is within a few ulps times ||A|| of the true
//! one, far tighter than the 1e-3 the bounds are reported to.
//!
//! **The largest of many σ_max ([`Gram`]).** A convolution's norm is the
//! largest σ_max over hundreds of complex matrices, where a full SVD of each
//! would cost minutes. For a complex `r × l` matrix `A` (`r ≤ l`),
//! `σ_max(A)² = λ_max(H)` with `H = A Aᴴ`, the smaller Gram matrix. `H` is
//! formed from real products (`Re H = Ar Arᵀ + Ai Aiᵀ`, `Im H = Q − Qᵀ` with
//! `Q = Ai Arᵀ`), which nalgebra hands to matrixmultiply's blocked kernels.
//! Most matrices only need to be shown *not* to beat the largest value found
//! so far, `μ`: `λ_max(H) < μ` exactly when `μI − H` is positive definite,
//! which one Cholesky factorisation decides (`r³/6` complex multiply-adds, a
//! fraction of the cost of the eigenvalues). Only a matrix that fails the
//! test gets its eigenvalues (nalgebra's Hermitian tridiagonal QR,
//! eigenvalues only).
//!
//! Accuracy: the Gram matrix is formed with an error `||ΔH|| ≤ 2l ε
//! ||A||_F² ≤ 2 r l ε ||A||²` (`ε` = 1.1e-16), the eigenvalue solver is
//! backward stable (`|Δλ| ≤ c r ε ||H||` by Weyl's inequality), and a matrix
//! the Cholesky test sets aside may exceed `μ` by no more than its backward
//! error, `c r ε (μ + ||H||)`. So the largest `σ_max²` is found within about
//! `2 r l ε` of itself, relative, in the worst case, and `σ_max` within half
//! that: below 1e-9 for any block with `r l < 4·10⁶` (AlexNet's largest has
//! `r l` ≈ 10⁵), far below the digits the bounds are shown with.
//! Squaring loses accuracy only in the *small* singular values, which are
//! never needed.

use anyhow::{Result, bail};
use nalgebra::{Complex, ComplexField, DMatrix};
use ndarray::ArrayView2;

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
    margin: DMatrix<Complex<f64>>,
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

    /// Whether `floor · I − H` is positive definite, i.e. `λ_max(H) < floor`:
    /// a Cholesky factorisation of its lower triangle, column by column,
    /// that stops at the first pivot that is not positive. (nalgebra's
    /// complex Cholesky takes the square root of a negative pivot and goes
    /// on, so it cannot tell; its real one on the `2r × 2r` real form can,
    /// at twice the cost.)
    fn below(&mut self, floor: f64) -> bool {
        let r = self.re.nrows();
        self.margin.resize_mut(r, r, Complex::default());
        for (j, i) in (0..r).flat_map(|j| (j..r).map(move |i| (j, i))) {
            let h = Complex::new(self.re[(i, j)], self.q[(i, j)] - self.q[(j, i)]);
            self.margin[(i, j)] = if i == j { Complex::new(floor, 0.0) - h } else { -h };
        }
        let data = self.margin.as_mut_slice();
        for j in 0..r {
            let pivot = data[j * r + j].re;
            if pivot <= 0.0 || !pivot.is_finite() {
                return false;
            }
            let (done, rest) = data.split_at_mut((j + 1) * r);
            let column = &mut done[j * r..];
            let scale = 1.0 / pivot.sqrt();
            column[j + 1..].iter_mut().for_each(|v| *v *= scale);
            for (k, trailing) in (j + 1..r).zip(rest.chunks_mut(r)) {
                let factor = column[k].conj();
                trailing[k..].iter_mut().zip(&column[k..]).for_each(|(t, &l)| *t -= l * factor);
            }
        }
        true
    }
}
