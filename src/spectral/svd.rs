//! Largest singular values of dense matrices, real or complex.
//!
//! nalgebra's SVD (Householder bidiagonalisation, then implicit-shift QR
//! sweeps until the off-diagonal is below machine precision) is backward
//! stable: the computed σ_max is within a few ulps times ||A|| of the true
//! one, far tighter than the 1e-3 the bounds are reported to. Matrices here
//! are small (a weight matrix, or one Cout×Cin matrix per frequency).

use anyhow::{Result, bail};
use nalgebra::{ComplexField, DMatrix};
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
